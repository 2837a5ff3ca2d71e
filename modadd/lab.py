"""JupyterLab on the repository (``make lab``): the chapters open as notebooks, on this environment.

The chapters are stored as py:percent files (``notebooks/*.py``).  Jupytext's JupyterLab extension
(installed with ``jupytext``) opens them as notebooks; the settings written here make that the
default for every ``.py`` file, so a double click in the file browser opens a chapter as a
notebook.  Saving writes the ``.py`` file and its paired, git-ignored ``.ipynb`` (pairing from
``jupytext.toml``).  The kernel is ``python3`` of the environment that runs the server, i.e. the
project's ``.venv`` with ``modadd`` installed.

A chapter run from the committed results trains nothing (``data/results`` holds every run the book
draws from at the ``book`` preset); a run that is missing is trained and cached like any other.

``python -m modadd.lab [--port N] [--no-browser] [-- extra jupyter-lab arguments]``
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence

from .durable import atomic_write_text
from .paths import ROOT

# JupyterLab's settings overrides (``<app_settings_dir>/overrides.json``): defaults a user can
# still change in Settings.
OVERRIDES = {
    # "Jupytext Notebook" is the document factory of Jupytext's extension
    "@jupyterlab/docmanager-extension:plugin": {"defaultViewers": {"python": "Jupytext Notebook"}},
    # no news feed and no update check: the environment is pinned and may be offline
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false",
                                                    "checkForUpdates": False},
}


def settings_dir() -> Path:
    """Where ``make lab`` keeps JupyterLab's application settings (git-ignored ``.cache``)."""
    return ROOT / ".cache" / "jupyter" / "lab-settings"


def write_settings(folder: Path, extra: Optional[dict] = None) -> Path:
    """Write ``overrides.json`` (``OVERRIDES``, each plugin's keys updated from ``extra``)."""
    settings = {plugin: dict(values) for plugin, values in OVERRIDES.items()}
    for plugin, values in (extra or {}).items():
        if not isinstance(values, dict):
            raise ValueError(f"extra[{plugin!r}]: must be a dict of settings, got {values!r}")
        settings.setdefault(plugin, {}).update(values)
    path = Path(folder) / "overrides.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(settings, indent=2) + "\n")
    return path


def command(root: Path, settings: Path, port: Optional[int] = None, token: Optional[str] = None,
            open_browser: bool = True, extra: Sequence[str] = ()) -> list[str]:
    """The ``jupyter lab`` command line serving ``root`` with the settings folder ``settings``."""
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"port: must be in 1..65535, got {port}")
    argv = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={Path(root)}",
            f"--LabApp.app_settings_dir={Path(settings)}"]
    if port is not None:
        argv += [f"--ServerApp.port={port}", "--ServerApp.port_retries=0"]
    if token is not None:
        argv.append(f"--IdentityProvider.token={token}")
    if not open_browser:
        argv.append("--no-browser")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        argv.append("--allow-root")   # containers and CI run as root; Jupyter refuses otherwise
    return argv + list(extra)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modadd.lab", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=None, help="port (default: Jupyter's 8888+)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser")
    parser.add_argument("extra", nargs="*", help="further jupyter-lab arguments (after --)")
    args = parser.parse_args(argv)
    folder = settings_dir()
    write_settings(folder)
    cmd = command(ROOT, folder, port=args.port, open_browser=not args.no_browser, extra=args.extra)
    os.execv(cmd[0], cmd)


if __name__ == "__main__":
    main()
