"""Parameter sweeps: run one notebook with papermill over a grid of parameters, resumably.

A sweep is a YAML spec::

    name: task_seeds                      # folder name: [A-Za-z0-9][A-Za-z0-9._-]*
    notebook: notebooks/01_task.py        # .py (py:percent) or .ipynb, relative to the repo root
    parameters: {preset: smoke}           # base parameters of every point
    grid: {seed: [0, 1, 2]}               # cartesian product of lists ...
    points: [{seed: 7, n_samples: 500}]   # ... and/or listed points (after the grid points)
    description: free text                # optional, ignored

Every point is the base parameters updated with the point's values; its key, e.g.
``seed=1-542667b8``, shows the values the point sets (sorted by name; ``base`` if none) and ends
with 8 hex digits of a SHA-256 over the full parameter dict and the notebook path, so it does
not depend on the order of the grid keys. Each point is executed by papermill into
``data/cache/sweeps/<name>/<key>.ipynb`` (written under a temporary name and renamed when
complete); a point whose notebook raised keeps the executed notebook, with the error, as
``<key>.failed.ipynb``. ``manifest.json`` beside them records every point: parameters, status
(``pending | running | done | failed``), duration, output and error; it is rewritten atomically
whenever a point changes state (entries of points since removed from the spec stay in it).

Run with ``python -m modadd.sweep SPEC.yaml`` (or ``make sweep SPEC=...``):

* ``--workers N``: N local processes (spawned; default 1 = this process);
* ``--dask-local N``: a ``distributed.LocalCluster`` of N one-thread worker processes;
* ``--scheduler tcp://host:port``: an existing Dask scheduler (e.g. ``dask-jobqueue`` on Slurm).

All three go through the ``concurrent.futures`` interface (``Client.get_executor()`` for Dask),
with at most one point in flight per worker thread. Rerunning a spec skips the points that are
done with their notebook present; failed points are retried only with ``--retry-failed``;
points left ``running`` by an interrupted sweep run again. A failing point does not stop the
others; the command prints a summary table and exits 1 if any point of the spec failed.

Guarantees against crashes and kills:

* **Local workers die with their driver.** The ``--workers`` processes and the ``--dask-local``
  worker processes (children of the driver, whose nannies live in the driver process) run a
  watchdog (:func:`modadd.durable.die_with_parent`) that ends them within a second of the
  driver's death, even by ``kill -9``; a point's papermill kernel watches its worker the same
  way (ipykernel's parent poller, ``JPY_PARENT_PID``), so nothing keeps executing points of a
  killed sweep. Workers of an external ``--scheduler`` are *not* tied to the driver: a point
  they are executing when the driver dies runs to its end (the lock below keeps a resumed sweep
  from running it a second time meanwhile, where the file system's ``flock`` spans machines).
* **A point is never executed twice at once.** :func:`run_point` holds the inter-process lock
  ``.<key>.lock`` beside the notebook for the whole execution; a second call for the same
  point waits, then finds the complete notebook the first one wrote and returns it as done
  (outcome ``"reused": True``, summary action ``reused``) without executing it again.
* **A damaged notebook of a done point** (not JSON, truncated, empty, or without cells or
  metadata) is not trusted: the next run moves it aside to ``<key>.ipynb.damaged`` (with a
  warning) and executes the point again; :func:`collect` raises ``ValueError`` naming the
  notebook rather than drawing a table from fewer points.
* **A damaged manifest** makes :func:`read_manifest` (and so :func:`collect`) raise
  ``ValueError`` naming it; the next run of the sweep moves it aside to
  ``manifest.json.damaged`` and rebuilds it, with a warning, from the notebooks present: every
  complete ``<key>.ipynb`` becomes a done point (kept, not re-executed; parameters from its
  papermill metadata), every ``<key>.failed.ipynb`` a failed one, the rest run again.

``collect(name)`` returns one row per done point: key, status, duration, every parameter, and
the scalar values the executed notebook glued (``myst_nb.glue``) or recorded with
:func:`record_value`. Every point runs with ``OMP_NUM_THREADS=1`` (its kernel inherits it).

Length: longer than ~400 lines because it holds the whole life of a sweep (spec validation,
point keys, the manifest and its rebuild, one point's execution under its lock, three executors,
``collect`` and the command line), each step reading the files the previous one wrote; a split
into spec / execution / results modules is natural once a second front end needs them.
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures as cf
import contextlib
import copy
import datetime as dt
import hashlib
import importlib
import itertools
import json
import math
import multiprocessing
import os
import re
import sys
import threading
import time
import traceback
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
from tqdm.auto import tqdm

from . import paths
from .durable import atomic_write_text, die_with_parent, key_lock, try_key_lock
from .parallel import environment

SPEC_FIELDS = ("name", "notebook", "parameters", "grid", "points", "description")
STATUSES = ("pending", "running", "done", "failed")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
NOTEBOOK_SUFFIXES = (".py", ".ipynb")
RECORD_KEY = "modadd_record"        # display-output metadata key written by record_value()
GLUE_KEY = "scrapbook"              # display-output metadata key written by myst_nb.glue
MANIFEST = "manifest.json"
DAMAGED = ".damaged"                # suffix of a damaged manifest / notebook moved aside
READABLE_MAX = 120                  # characters of a key before its hash
TRACEBACK_LINES = 15
THREAD_ENV = {"OMP_NUM_THREADS": "1"}
PASSED_ENV = ("MODADD_RESULTS_DIR", "MODADD_CACHE_DIR", "MODADD_NO_TRAIN")
_TYPES: dict[str, tuple[type, ...]] = {"int": (int,), "float": (int, float), "str": (str,),
                                       "bool": (bool,), "list": (list,), "dict": (dict,)}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# ---- spec ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Point:
    """One execution of the notebook: its key and full parameter dict."""
    key: str
    parameters: dict


@dataclass
class Spec:
    """A validated sweep spec (see the module docstring)."""
    name: str
    notebook: Path                      # absolute
    notebook_id: str                    # as hashed into keys: relative to the repo root if inside
    parameters: dict = field(default_factory=dict)
    grid: dict = field(default_factory=dict)
    points: list = field(default_factory=list)
    declared: dict = field(default_factory=dict)    # notebook parameter name -> type name

    @property
    def folder(self) -> Path:
        """``data/cache/sweeps/<name>``."""
        return sweep_dir(self.name)

    def expand(self) -> list[Point]:
        """Grid points (cartesian product, in the spec's order), then the listed points."""
        names = list(self.grid)
        overrides = [dict(zip(names, values))
                     for values in itertools.product(*(self.grid[n] for n in names))] if names else []
        overrides += [dict(p) for p in self.points]
        points, seen = [], {}
        for i, override in enumerate(overrides):
            full = {**self.parameters, **override}
            same = json.dumps(full, sort_keys=True)
            if same in seen:
                raise ValueError(f"grid/points: point {i} ({override}) repeats point {seen[same]} "
                                 f"(same parameters {full}); drop one")
            seen[same] = i
            points.append(Point(point_key(full, override, self.notebook_id), full))
        return points


def sweep_dir(name: str) -> Path:
    """Folder of sweep ``name``: ``<cache_dir>/sweeps/<name>``."""
    _check_name(name)
    return paths.cache_dir() / "sweeps" / name


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"name: must be a folder name of 1-100 characters from [A-Za-z0-9._-] "
                         f"starting with a letter or digit, got {name!r}")


def notebook_parameters(path: Path) -> dict[str, str]:
    """Names declared in the notebook's single ``parameters`` cell, with their annotated type
    name (``"None"`` when unannotated), in order."""
    from papermill.translators import PythonTranslator
    cells = [c for c in read_notebook(path).cells
             if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"notebook: {path} must have exactly one cell tagged 'parameters', "
                         f"found {len(cells)}")
    return {p.name: p.inferred_type_name for p in PythonTranslator.inspect(cells[0])}


def read_notebook(path: Path):
    """The notebook at ``path`` (py:percent or .ipynb) as an nbformat NotebookNode."""
    import jupytext
    return jupytext.read(path)


def _check_value(where: str, name: str, value: Any, declared: dict[str, str]) -> None:
    if name not in declared:
        raise ValueError(f"{where}: {name!r} is not a parameter of the notebook; declared "
                         f"parameters: {', '.join(declared)}")
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name}={value!r} must be a YAML/JSON value (number, string, "
                         f"bool, null, list, mapping)") from None
    optional = re.fullmatch(r"Optional\[(\w+)\]", declared[name])   # None: the registry's value
    if optional and value is None:
        return
    allowed = _TYPES.get(optional.group(1) if optional else declared[name])
    if allowed and (not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed)):
        hint = (" (YAML reads 1e-3 as a string: write 1.0e-3)"
                if isinstance(value, str) and declared[name] == "float" else "")
        raise ValueError(f"{where}: {name}={value!r} is a {type(value).__name__}, the notebook "
                         f"declares {name}: {declared[name]}{hint}")


def parse_spec(raw: Any, base: Path | None = None) -> Spec:
    """Validate a spec mapping (as read from YAML) and return it as a :class:`Spec`.

    ``notebook`` is resolved against ``base`` (default: the repository root) unless absolute.
    Raises ``ValueError`` naming the offending field and what it allows."""
    if not isinstance(raw, dict):
        raise ValueError(f"spec: must be a mapping with fields {', '.join(SPEC_FIELDS)}, "
                         f"got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SPEC_FIELDS))
    if unknown:
        raise ValueError(f"spec: unknown field(s) {', '.join(map(str, unknown))}; allowed: "
                         f"{', '.join(SPEC_FIELDS)}")
    for required in ("name", "notebook"):
        if required not in raw:
            raise ValueError(f"{required}: required field missing")
    _check_name(raw["name"])
    notebook = raw["notebook"]
    if not isinstance(notebook, str) or Path(notebook).suffix not in NOTEBOOK_SUFFIXES:
        raise ValueError(f"notebook: must be a path ending in {' or '.join(NOTEBOOK_SUFFIXES)}, "
                         f"got {notebook!r}")
    path = Path(notebook) if Path(notebook).is_absolute() else (base or paths.ROOT) / notebook
    path = path.resolve()
    if not path.is_file():
        raise ValueError(f"notebook: {notebook!r} does not exist ({path})")
    try:
        notebook_id = path.relative_to(paths.ROOT).as_posix()
    except ValueError:
        notebook_id = path.as_posix()
    declared = notebook_parameters(path)

    parameters = raw.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ValueError(f"parameters: must be a mapping of notebook parameter to value, got "
                         f"{parameters!r}")
    for name, value in parameters.items():
        _check_value("parameters", name, value, declared)

    grid = raw.get("grid") or {}
    if not isinstance(grid, dict):
        raise ValueError(f"grid: must be a mapping of notebook parameter to a list of values, "
                         f"got {grid!r}")
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid: {name!r} must be a non-empty list of values, got {values!r}")
        for i, value in enumerate(values):
            _check_value(f"grid.{name}[{i}]", name, value, declared)

    points = raw.get("points") or []
    if not isinstance(points, list) or not all(isinstance(p, dict) or p is None for p in points):
        raise ValueError(f"points: must be a list of mappings of notebook parameter to value "
                         f"(an empty mapping {{}} runs the base parameters), got {points!r}")
    points = [p or {} for p in points]
    for i, point in enumerate(points):
        for name, value in point.items():
            _check_value(f"points[{i}]", name, value, declared)
    if not grid and not points:
        raise ValueError("grid/points: give a non-empty grid, a non-empty list of points, or "
                         "both (points: [{}] runs the base parameters once)")
    spec = Spec(raw["name"], path, notebook_id, dict(parameters), dict(grid), points, declared)
    spec.expand()                       # duplicate points raise here
    return spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate a YAML sweep spec (``notebook`` is relative to the repository root)."""
    import yaml
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"spec: file {str(path)!r} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"spec: {path} is not valid YAML: {exc}") from None
    return parse_spec(raw)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", text)


def point_key(parameters: dict, shown: dict, notebook_id: str) -> str:
    """Deterministic, filename-safe key of a point: ``name=value,...`` of ``shown`` (sorted by
    name; ``base`` when empty) + ``-`` + 8 hex of SHA-256 over the sorted JSON of the full
    ``parameters`` and the notebook."""
    digest = hashlib.sha256(json.dumps({"notebook": notebook_id, "parameters": parameters},
                                       sort_keys=True).encode()).hexdigest()[:8]
    parts = [f"{_safe(str(n))}={_safe(v if isinstance(v, str) else json.dumps(v, separators=(',', ':')))}"
             for n, v in sorted(shown.items())]
    readable = ",".join(parts)[:READABLE_MAX] or "base"
    return f"{readable}-{digest}"


# ---- manifest -----------------------------------------------------------------------------------
def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")


class DamagedManifest(ValueError):
    """``manifest.json`` does not read as a sweep manifest (``path``: the file, ``problem``:
    what is wrong with it)."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = path, problem
        super().__init__(
            f"manifest: {path} is damaged ({problem}). Run the sweep again (python -m "
            f"modadd.sweep SPEC.yaml) to rebuild it from the notebooks in {path.parent}: "
            f"complete <key>.ipynb files are kept as done points (not re-executed), "
            f"<key>.failed.ipynb as failed ones, and the damaged file is moved aside to "
            f"{path.name}{DAMAGED}")


def _manifest_problem(manifest: Any) -> str | None:
    if not isinstance(manifest, dict) or not isinstance(manifest.get("points"), list):
        return "not a mapping with a 'points' list"
    for i, entry in enumerate(manifest["points"]):
        if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                and entry.get("status") in STATUSES and isinstance(entry.get("parameters"), dict)):
            return f"points[{i}] is not a point with key, status and parameters"
    return None


def read_manifest(name: str) -> dict:
    """The manifest of sweep ``name`` (an empty one if it never ran). Raises
    :class:`DamagedManifest` (a ``ValueError`` naming the file and how to recover) if it does
    not read as a manifest."""
    path = sweep_dir(name) / MANIFEST
    if not path.exists():
        return {"sweep": name, "points": []}
    try:
        manifest = json.loads(path.read_bytes())
    except (ValueError, UnicodeDecodeError) as exc:     # JSONDecodeError is a ValueError
        raise DamagedManifest(path, f"not JSON: {exc}") from None
    problem = _manifest_problem(manifest)
    if problem:
        raise DamagedManifest(path, problem)
    return manifest


def _rebuilt_manifest(name: str, damaged: DamagedManifest) -> dict:
    """Move the damaged manifest aside and return the manifest the notebooks in its folder
    stand for (see the module docstring); warns."""
    folder = damaged.path.parent
    aside = damaged.path.with_name(damaged.path.name + DAMAGED)
    os.replace(damaged.path, aside)
    entries = []
    for path in sorted(folder.glob("*.ipynb")):
        if path.name.startswith("."):
            continue
        failed = path.name.endswith(".failed.ipynb")
        key = path.name[:-len(".failed.ipynb")] if failed else path.stem
        try:
            nb = _read_executed(path)
        except ValueError:                  # damaged too: the point runs again
            continue
        meta = nb.metadata.get("papermill", {})
        parameters = meta.get("parameters")
        if not isinstance(parameters, dict):
            continue
        if failed:
            if (folder / f"{key}.ipynb").exists():
                continue                    # an older failure of a point done since
            error = _notebook_error(nb) or {
                "type": "unknown", "message": f"rebuilt from {path.name}", "where": "unknown",
                "traceback": ""}
        else:
            error = None
        entries.append({"key": key, "parameters": parameters,
                        "status": "failed" if failed else "done",
                        "duration_s": meta.get("duration"), "output": path.name, "error": error,
                        "started": meta.get("start_time"), "finished": meta.get("end_time"),
                        "rebuilt": True})
    done = sum(e["status"] == "done" for e in entries)
    warnings.warn(f"sweep {name!r}: {damaged}\nRebuilt the manifest from the notebooks present: "
                  f"{done} done and {len(entries) - done} failed point(s) kept; the damaged "
                  f"manifest is now {aside}", stacklevel=3)
    return {"sweep": name, "points": entries}


def _write_manifest(folder: Path, manifest: dict) -> None:
    manifest["updated"] = _now()
    atomic_write_text(folder / MANIFEST, json.dumps(manifest, indent=1) + "\n")


# ---- one point (runs in a worker) ---------------------------------------------------------------
def _error_record(exc: BaseException) -> dict:
    from papermill.exceptions import PapermillExecutionError
    if isinstance(exc, PapermillExecutionError):
        kind, message = exc.ename, exc.evalue
        lines = _ANSI.sub("", "\n".join(exc.traceback)).splitlines()
        where = f"cell {exc.cell_index}"
    else:
        kind, message = type(exc).__name__, str(exc)
        lines = "".join(traceback.format_exception(exc)).splitlines()
        where = "outside the notebook"
    return {"type": kind, "message": message, "where": where,
            "traceback": "\n".join(lines[-TRACEBACK_LINES:])}


def _notebook_error(nb) -> dict | None:
    """The error record of the first error output of an executed notebook, if any."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                lines = _ANSI.sub("", "\n".join(output.get("traceback", []))).splitlines()
                return {"type": output.get("ename"), "message": output.get("evalue"),
                        "where": f"cell {index}",
                        "traceback": "\n".join(lines[-TRACEBACK_LINES:])}
    return None


def _read_executed(path: Path):
    """The executed notebook at ``path`` as a NotebookNode; ``ValueError`` saying what is wrong
    if it does not read (not JSON, truncated, empty) or has no cells or metadata."""
    import nbformat
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:                    # noqa: BLE001 - NotJSONError, ValidationError...
        message = " ".join(str(exc).split())
        raise ValueError(f"{type(exc).__name__}: {message[:160]}") from None
    if not isinstance(nb.get("metadata"), dict):
        raise ValueError("no notebook metadata")
    if not isinstance(nb.get("cells"), list) or not nb.cells:
        raise ValueError("no cells")
    return nb


def notebook_problem(path: Path) -> str | None:
    """``None`` if ``path`` holds a complete executed notebook, else what is wrong with it."""
    try:
        _read_executed(Path(path))
    except ValueError as exc:
        return str(exc)
    return None


def _process_start(pid: int) -> str | None:
    """Start time (clock ticks since boot) of a live, non-zombie process; None if there is
    none (Linux /proc; elsewhere any existing process counts, with start time "")."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return None
    except OSError:                             # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    return None if fields[0] in "ZXx" else fields[19]


_DRIVERS: set[int] = set()


def die_with_driver(driver: int, interval: float = 0.5) -> None:
    """End this worker process (``os._exit``) soon after the driver process ``driver`` dies.

    The driver's own children use :func:`modadd.durable.die_with_parent`; a worker whose parent
    is another process (a forkserver, a separate nanny) watches the driver's pid (and start
    time, against pid reuse) itself. Idempotent."""
    if driver in _DRIVERS:
        return
    _DRIVERS.add(driver)
    if os.getppid() == driver:
        die_with_parent(interval)
        return
    start = _process_start(driver)

    def watch() -> None:
        while _process_start(driver) == start and start is not None:
            time.sleep(interval)
        os._exit(70)

    threading.Thread(target=watch, name="modadd-die-with-driver", daemon=True).start()


def _die_with_driver_plugin(driver: int):
    """A Dask worker plugin installing :func:`die_with_driver` in every worker, also the ones
    a nanny restarts later."""
    import distributed

    class DieWithDriver(distributed.WorkerPlugin):
        name = "modadd-die-with-driver"

        def __init__(self, pid: int):
            self.pid = pid

        def setup(self, worker) -> None:
            die_with_driver(self.pid)

    return DieWithDriver(driver)


def _reused(task: dict, out: Path, started: str, clock: float) -> dict | None:
    """The done outcome of a point whose complete notebook is already there, else None."""
    try:
        nb = _read_executed(out)
    except (ValueError, FileNotFoundError):
        return None
    meta = nb.metadata.get("papermill", {})
    return {"key": task["key"], "started": meta.get("start_time") or started, "status": "done",
            "output": out.name, "error": None, "reused": True, "notebook_s": meta.get("duration"),
            "duration_s": meta.get("duration", round(time.perf_counter() - clock, 3)),
            "finished": meta.get("end_time") or _now()}


def run_point(task: dict) -> dict:
    """Execute one point (a task dict built by :func:`run_sweep`) and return its outcome.

    Module-level so that process pools and Dask can pickle it. Never raises for a failing
    notebook: the error goes into the outcome. The notebook is executed into a temporary file
    beside the output and renamed over it only once complete. The whole execution holds the
    point's lock ``.<key>.lock``: a call that had to wait for another execution of the same
    point and then finds its complete notebook returns it (``"reused": True``) unexecuted."""
    out = Path(task["output"])
    started, clock = _now(), time.perf_counter()
    with key_lock(out.with_name(f".{task['key']}.lock")):
        reused = _reused(task, out, started, clock)
        if reused is not None:
            return reused
        return _execute_point(task, out)


def _execute_point(task: dict, out: Path) -> dict:
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError
    failed_out = out.with_name(out.stem + ".failed.ipynb")
    # a hidden name beside the output (same file system: os.replace is atomic); not mkstemp,
    # whose 0600 mode would stick to the output
    tmp = str(out.with_name(f".{out.stem}.{uuid.uuid4().hex[:12]}.tmp.ipynb"))
    if failed_out.exists():                     # the previous failure's notebook
        failed_out.unlink()
    started, clock = _now(), time.perf_counter()
    outcome = {"key": task["key"], "started": started, "output": None, "error": None}
    try:
        with environment(task["env"]):
            nb = read_notebook(Path(task["notebook"]))
            executed = papermill.execute_notebook(
                nb, tmp, parameters=task["parameters"], kernel_name="python3",
                language="python", cwd=str(Path(task["notebook"]).parent), progress_bar=False,
                extra_arguments=["--log-level=ERROR"])    # no kernel start-up warnings
        # papermill stores the input NotebookNode itself as input_path: keep the path instead
        executed.metadata.papermill["input_path"] = task["notebook_id"]
        nbformat.write(executed, tmp)
        os.replace(tmp, out)
        outcome.update(status="done", output=out.name,
                       notebook_s=executed.metadata.papermill.get("duration"))
    except PapermillExecutionError as exc:      # papermill wrote the notebook with the error
        os.replace(tmp, failed_out)
        outcome.update(status="failed", output=failed_out.name, error=_error_record(exc))
    except Exception as exc:                    # noqa: BLE001 - recorded, the sweep goes on
        outcome.update(status="failed", error=_error_record(exc))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    outcome.update(duration_s=round(time.perf_counter() - clock, 3), finished=_now())
    return outcome


# ---- executors ----------------------------------------------------------------------------------
class _InlineExecutor(cf.Executor):
    """Runs each submitted call at once, in this process (``--workers 1``)."""

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_running_or_notify_cancel()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:            # noqa: BLE001 - delivered through the future
            future.set_exception(exc)
        return future


@contextlib.contextmanager
def _executor(workers: int = 1, scheduler: str | None = None,
              dask_local: int | None = None) -> Iterator[tuple[cf.Executor, Callable[[], int]]]:
    """Yield ``(executor, slots)``: a concurrent.futures executor and a function giving how many
    points may be in flight now (the worker threads available)."""
    if scheduler is not None or dask_local is not None:
        import distributed
        with contextlib.ExitStack() as stack:
            if dask_local is not None:
                cluster = stack.enter_context(distributed.LocalCluster(
                    n_workers=dask_local, threads_per_worker=1, processes=True,
                    dashboard_address=None))
                client = stack.enter_context(distributed.Client(cluster))
                # its worker processes are children of this process (the nannies run here):
                # they end when it dies, also by kill -9 (Dask's own parent pipe does too)
                client.register_plugin(_die_with_driver_plugin(os.getpid()))
            else:
                client = stack.enter_context(distributed.Client(scheduler))
            executor = client.get_executor(pure=False)
            try:
                yield executor, lambda: max(1, sum(client.nthreads().values()))
            finally:
                executor.shutdown(wait=False)
    elif workers == 1:
        yield _InlineExecutor(), lambda: 1
    else:
        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=die_with_parent) as pool:
            yield pool, lambda: workers


def _check_executor_args(workers: int, scheduler: str | None, dask_local: int | None) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if dask_local is not None and (isinstance(dask_local, bool) or not isinstance(dask_local, int)
                                   or dask_local < 1):
        raise ValueError(f"dask_local: must be an integer >= 1 (Dask worker processes), got "
                         f"{dask_local!r}")
    if scheduler is not None and not (isinstance(scheduler, str) and "://" in scheduler):
        raise ValueError(f"scheduler: must be a Dask scheduler address like tcp://host:8786, "
                         f"got {scheduler!r}")
    if sum([workers != 1, scheduler is not None, dask_local is not None]) > 1:
        raise ValueError("workers/scheduler/dask_local: choose one executor")


# ---- the sweep ----------------------------------------------------------------------------------
def run_sweep(spec: Spec | dict | str | Path, workers: int = 1, scheduler: str | None = None,
              dask_local: int | None = None, retry_failed: bool = False) -> pd.DataFrame:
    """Run every point of ``spec`` not done yet and return the summary: one row per point of the
    spec with ``key``, ``status``, ``duration_s`` (of its last execution) and ``action``
    (``executed``, ``skipped (done)``, ``skipped (failed)``, or ``reused`` for a point found
    complete once its lock was free: executed meanwhile by another run).

    ``spec`` is a :class:`Spec`, a spec mapping or a YAML path. Points done with their notebook
    present are skipped; failed points too unless ``retry_failed``. Executors: ``workers``
    local processes (1: this process), a ``dask_local``-worker LocalCluster, or the Dask
    ``scheduler`` at that address. Only one sweep of a name may run at a time."""
    if not isinstance(spec, Spec):
        spec = parse_spec(spec) if isinstance(spec, dict) else load_spec(spec)
    _check_executor_args(workers, scheduler, dask_local)
    points = spec.expand()
    folder = spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    with _lock(folder / ".lock", spec.name):
        return _run_locked(spec, points, folder, workers, scheduler, dask_local, retry_failed)


class SweepBusy(RuntimeError):
    """Another process is running the same sweep."""


@contextlib.contextmanager
def _lock(path: Path, name: str) -> Iterator[None]:
    import fcntl
    with open(path, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepBusy(f"sweep {name!r} is already running (lock {path})") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_locked(spec: Spec, points: list[Point], folder: Path, workers: int,
                scheduler: str | None, dask_local: int | None,
                retry_failed: bool) -> pd.DataFrame:
    try:
        previous = read_manifest(spec.name)
    except DamagedManifest as damaged:
        previous = _rebuilt_manifest(spec.name, damaged)
    old = {e["key"]: e for e in previous["points"]}
    current = {p.key for p in points}
    entries: dict[str, dict] = {}
    action: dict[str, str] = {}
    for point in points:
        entry = old.get(point.key)
        out = folder / f"{point.key}.ipynb"
        if entry and entry["status"] == "done" and out.exists():
            problem = notebook_problem(out)
            if problem is None:
                entries[point.key], action[point.key] = entry, "skipped (done)"
                continue
            with try_key_lock(folder / f".{point.key}.lock") as free:
                if free:                    # else being executed (e.g. by a remote worker)
                    os.replace(out, out.with_name(out.name + DAMAGED))
            warnings.warn(f"sweep {spec.name!r}: the notebook {out} of done point {point.key} "
                          f"is damaged ({problem}); "
                          + (f"moved aside to {out.name}{DAMAGED}, " if free else
                             "another process is executing the point, ")
                          + "the point runs again", stacklevel=3)
        if entry and entry["status"] == "failed" and not retry_failed:
            action[point.key] = "skipped (failed)"
        else:
            entry = {"key": point.key, "parameters": point.parameters, "status": "pending",
                     "duration_s": None, "output": None, "error": None,
                     "started": None, "finished": None}
            action[point.key] = "executed"
        entries[point.key] = entry
    # entries of points no longer in the spec stay in the manifest as they were
    manifest = {"sweep": spec.name, "notebook": spec.notebook_id,
                "points": list(entries.values()) + [e for k, e in old.items() if k not in current]}
    _write_manifest(folder, manifest)
    for stale in folder.glob(".*.tmp.ipynb"):           # left by a killed run
        key = stale.name[1:].rsplit(".", 3)[0]          # .<key>.<hex12>.tmp.ipynb
        with try_key_lock(folder / f".{key}.lock") as free:
            if free:                                    # else still being executed
                stale.unlink(missing_ok=True)
    for stale in folder.glob(f".{MANIFEST}.*.tmp"):     # manifest writes of a killed driver
        stale.unlink(missing_ok=True)                   # (only the lock holder writes it)

    todo = [p for p in points if action[p.key] == "executed"]
    env = {**{k: os.environ[k] for k in PASSED_ENV if k in os.environ}, **THREAD_ENV}
    count = {s: sum(e["status"] == s for e in entries.values()) for s in STATUSES}
    bar = tqdm(total=len(points), initial=count["done"] + count["failed"], desc=spec.name,
               unit="point", disable=not todo)
    bar.set_postfix(done=count["done"], failed=count["failed"], running=0)
    worker = importlib.import_module("modadd.sweep").run_point      # by name, also under -m
    queue = list(todo)
    in_flight: dict[cf.Future, str] = {}
    try:
        with _executor(workers, scheduler, dask_local) as (executor, slots):
            while queue or in_flight:
                while queue and len(in_flight) < slots():
                    point = queue.pop(0)
                    entry = entries[point.key]
                    entry.update(status="running", started=_now(), finished=None,
                                 duration_s=None, error=None)
                    _write_manifest(folder, manifest)
                    bar.set_postfix(done=count["done"], failed=count["failed"],
                                    running=len(in_flight) + 1)
                    task = {"key": point.key, "parameters": point.parameters,
                            "notebook": str(spec.notebook), "notebook_id": spec.notebook_id,
                            "output": str(folder / f"{point.key}.ipynb"), "env": env}
                    in_flight[executor.submit(worker, task)] = point.key
                finished, _ = cf.wait(in_flight, timeout=2.0, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    key = in_flight.pop(future)
                    try:
                        outcome = future.result()
                    except Exception as exc:            # noqa: BLE001 - worker/process lost
                        outcome = {"status": "failed", "error": _error_record(exc),
                                   "finished": _now()}
                    outcome.pop("key", None)
                    if outcome.get("reused"):
                        action[key] = "reused"
                    entries[key].update(outcome)
                    count[outcome["status"]] += 1
                    _write_manifest(folder, manifest)
                    bar.set_postfix(done=count["done"], failed=count["failed"],
                                    running=len(in_flight), refresh=False)
                    bar.update()
    finally:
        # interrupted (Ctrl-C, lost scheduler): what did not finish is pending again
        interrupted = [e for e in entries.values() if e["status"] == "running"]
        for entry in interrupted:
            entry.update(status="pending", started=None)
        if interrupted:
            _write_manifest(folder, manifest)
        bar.close()
    return pd.DataFrame([{"key": p.key, "status": entries[p.key]["status"],
                          "duration_s": entries[p.key]["duration_s"], "action": action[p.key]}
                         for p in points])


# ---- results ------------------------------------------------------------------------------------
def record_value(name: str, value: Any) -> None:
    """Record a scalar result of the running notebook for :func:`collect`.

    Displays ``value`` (its repr) with the output metadata ``{"modadd_record": {name: value}}``.
    ``value`` must be a number, bool, string or None; one-element numpy/torch values are
    converted with ``.item()``. NaN and infinities are recorded as None (JSON has no such
    numbers): :func:`collect` turns them into NaN."""
    from IPython.display import display
    if not isinstance(name, str) or not name:
        raise ValueError(f"name: must be a non-empty string, got {name!r}")
    if not isinstance(value, (bool, int, float, str)) and hasattr(value, "item"):
        with contextlib.suppress(ValueError, RuntimeError):     # more than one element
            value = value.item()
    if value is not None and not isinstance(value, (bool, int, float, str)):
        raise ValueError(f"value: {name} must be a scalar (int, float, bool, str or None), got "
                         f"{type(value).__name__}")
    if isinstance(value, float):
        value = float(value) if math.isfinite(value) else None
    display({"text/plain": repr(value)}, raw=True, metadata={RECORD_KEY: {name: value}})


_CALL = re.compile(r"[A-Za-z_][\w.]*\((.*)\)", re.S)


def parse_scalar(text: str) -> Any:
    """The scalar a ``text/plain`` repr stands for: a Python literal (``3``, ``0.5``, ``'a'``,
    ``True``, ``None``) or a number wrapped in a call (``np.float64(0.5)``, ``tensor(3.)``).
    Raises ``ValueError`` for anything else (a table, a figure's repr, a list)."""
    text = text.strip()
    with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
        value = ast.literal_eval(text)
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
    call = _CALL.fullmatch(text)
    if call:
        with contextlib.suppress(ValueError, SyntaxError, MemoryError, RecursionError):
            value = ast.literal_eval(call.group(1).split(",")[0].strip())
            if isinstance(value, (bool, int, float)):
                return value
    raise ValueError(f"text: {text[:60]!r} is not the repr of a scalar")


def notebook_values(nb) -> dict[str, Any]:
    """Scalars a notebook glued (``myst_nb.glue``: outputs whose metadata names a ``scrapbook``
    entry) or recorded (:func:`record_value`), by name; later outputs win."""
    values: dict[str, Any] = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            meta = output.get("metadata", {})
            if GLUE_KEY in meta:
                prefix = meta[GLUE_KEY].get("mime_prefix", "")
                data = output.get("data", {})
                text = data.get(prefix + "text/plain")
                with contextlib.suppress(ValueError):       # non-scalar glue: not collected
                    if text is not None:
                        values[meta[GLUE_KEY]["name"]] = parse_scalar(
                            text if isinstance(text, str) else "".join(text))
            if RECORD_KEY in meta:
                values.update(meta[RECORD_KEY])
    return values


def collect(name: str) -> pd.DataFrame:
    """One row per done point of sweep ``name``: ``key``, ``status``, ``duration_s``, every
    parameter, then every scalar the executed notebook glued or recorded (a name that clashes
    with a column gets the suffix ``_output``). Numbers stay numbers (ready for seaborn).

    Raises ``ValueError`` naming the file if the manifest or the notebook of a done point is
    damaged or missing, so a table is never silently drawn from fewer points: rerunning the
    sweep repairs either (it rebuilds the manifest from the notebooks, re-executes the point)."""
    folder = sweep_dir(name)
    if not (folder / MANIFEST).exists():
        known = sorted(p.parent.name for p in folder.parent.glob(f"*/{MANIFEST}"))
        raise ValueError(f"name: no sweep {name!r} in {folder.parent}; known: "
                         f"{', '.join(known) or 'none'}")
    rows = []
    for entry in read_manifest(name)["points"]:
        out = folder / f"{entry['key']}.ipynb"
        if entry["status"] != "done":
            continue
        if not out.exists():
            raise ValueError(f"collect: the notebook {out} of done point {entry['key']} is "
                             f"missing; run the sweep again (python -m modadd.sweep SPEC.yaml) "
                             f"to re-execute that point")
        try:
            nb = _read_executed(out)
        except ValueError as exc:
            raise ValueError(f"collect: the notebook {out} of done point {entry['key']} is "
                             f"damaged ({exc}); run the sweep again (python -m modadd.sweep "
                             f"SPEC.yaml) to re-execute that point") from None
        row = {"key": entry["key"], "status": entry["status"],
               "duration_s": entry.get("duration_s"), **copy.deepcopy(entry["parameters"])}
        for value_name, value in notebook_values(nb).items():
            row[f"{value_name}_output" if value_name in row else value_name] = value
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["key", "status", "duration_s"])
    frame = pd.DataFrame(rows)
    for column in frame.columns[3:]:
        values = frame[column].tolist()
        if frame[column].dtype == object and all(
                v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
                for v in values):          # numbers with gaps (NaN recorded as None): float
            frame[column] = frame[column].astype(float)
    return frame


# ---- command line -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """``python -m modadd.sweep SPEC.yaml [--workers N | --scheduler ADDR | --dask-local N]
    [--retry-failed]``; returns 1 if any point of the spec failed, else 0."""
    parser = argparse.ArgumentParser(prog="python -m modadd.sweep",
                                     description="Run a notebook over a grid of parameters "
                                                 "with papermill (resumable).")
    parser.add_argument("spec", help="YAML sweep spec (see modadd/sweep.py)")
    executor = parser.add_mutually_exclusive_group()
    executor.add_argument("--workers", type=int, default=1, metavar="N",
                          help="local worker processes (default 1: run in this process)")
    executor.add_argument("--scheduler", metavar="ADDRESS",
                          help="address of a running Dask scheduler, e.g. tcp://host:8786")
    executor.add_argument("--dask-local", type=int, metavar="N",
                          help="start a Dask LocalCluster of N one-thread worker processes")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run the points that failed before again (default: keep them)")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
        summary = run_sweep(spec, workers=args.workers, scheduler=args.scheduler,
                            dask_local=args.dask_local, retry_failed=args.retry_failed)
    except ValueError as exc:
        parser.error(str(exc))
    except SweepBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with pd.option_context("display.max_colwidth", 80, "display.width", 200):
        print(summary.to_string(index=False))
    failed = summary[summary.status == "failed"]
    kept = failed[failed.action == "skipped (failed)"]
    print(f"{spec.name}: {int((summary.status == 'done').sum())}/{len(summary)} done, "
          f"{len(failed)} failed"
          + (f" ({len(kept)} from before: --retry-failed runs them again)" if len(kept) else "")
          + f"; manifest {spec.folder / MANIFEST}")
    return 1 if len(failed) else 0


if __name__ == "__main__":
    sys.exit(main())
