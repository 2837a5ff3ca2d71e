"""The reader's JupyterLab path (``make lab``), driven in a real browser.

A JupyterLab server (``modadd.lab.command``, the command ``make lab`` runs) serves a copy of
``notebooks/`` on a free local port with a token; Playwright drives Debian's Chromium
(``executable_path``: Playwright's own browser download does not work offline).  Chapter 1 and one
analysis chapter open as notebooks through Jupytext and run all cells from the committed results
(``MODADD_NO_TRAIN=1``: nothing may train); then chapter 1's parameters cell is edited in the
browser, the notebook rerun, and its output must change.  The server is shut down in every case.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from modadd import lab
from modadd.paths import ROOT

CHROMIUM = os.environ.get("CHROMIUM", "chromium")
ANALYSIS_CHAPTER = "05_commutators.py"   # an analysis chapter that reads cached tables (~10 s)
# MODADD_LAB_CHAPTERS=all (or a comma-separated list of file names) runs more chapters the same
# way; chapter 1 is always first (its parameters cell is edited)
_CHOSEN = os.environ.get("MODADD_LAB_CHAPTERS", ANALYSIS_CHAPTER)
CHAPTERS = ["01_task.py"] + [p.name for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
                             if p.name != "01_task.py"
                             and (_CHOSEN == "all" or p.name in _CHOSEN.split(","))]
# the test's own settings: every cell stays in the page (JupyterLab 4 virtualises the notebook
# otherwise, so outputs below the fold are not in the DOM); nothing is saved behind our back
TEST_SETTINGS = {"@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
                 "@jupyterlab/docmanager-extension:plugin": {"autosave": False}}
ACTIVE = ".jp-NotebookPanel:not(.lm-mod-hidden)"
START_S = 20.0     # seconds a Run All click may take to start a cell before it is repeated
PROMPTS = f"[...document.querySelectorAll('{ACTIVE} .jp-CodeCell .jp-InputPrompt')]" \
          ".map(e => e.textContent.trim())"


def test_settings_open_python_files_as_notebooks(tmp_path) -> None:
    path = lab.write_settings(tmp_path, {"@x:y": {"a": 1}})
    settings = json.loads(path.read_text())
    viewers = settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]
    assert viewers == {"python": "Jupytext Notebook"}
    assert settings["@x:y"] == {"a": 1}
    with pytest.raises(ValueError, match=r"extra\['@x:y'\]"):
        lab.write_settings(tmp_path, {"@x:y": 3})
    with pytest.raises(ValueError, match="port: must be in 1..65535, got 0"):
        lab.command(tmp_path, tmp_path, port=0)
    argv = lab.command(tmp_path, tmp_path, port=8123, token="t", open_browser=False)
    assert argv[:3] == [sys.executable, "-m", "jupyterlab"]
    assert {f"--ServerApp.root_dir={tmp_path}", "--ServerApp.port=8123",
            "--IdentityProvider.token=t", "--no-browser"} <= set(argv)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture
def lab_server(tmp_path):
    """A JupyterLab server on a copy of the chapters; yields (base url, token, runtime dir, root)."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints"))
    shutil.copy(ROOT / "jupytext.toml", root)
    settings = tmp_path / "settings"
    lab.write_settings(settings, TEST_SETTINGS)
    port, token = free_port(), "modadd-test-token"
    env = dict(os.environ, MODADD_RESULTS_DIR=str(ROOT / "data" / "results"), MODADD_NO_TRAIN="1",
               MODADD_CACHE_DIR=str(tmp_path / "cache"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_DATA_DIR=str(tmp_path / "jupyter"), OMP_NUM_THREADS="1")
    cmd = lab.command(root, settings, port=port, token=token, open_browser=False,
                      extra=["--LabApp.extension_manager=readonly"])
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                get_json(f"{base}/api/status?token={token}")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("JupyterLab did not start:\n"
                                       + (tmp_path / "server.log").read_text()[-3000:])
                time.sleep(0.3)
        yield base, token, tmp_path / "rt", root
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)   # the server and the kernels it started
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
        log.close()


def run_all(page, timeout_s: float = 1800, settle_s: float = 3.0) -> list[str]:
    """Run all cells of the active notebook; wait until every queued cell ran; its prompts.

    JupyterLab may run the cells one after the other, so a moment with no ``[*]`` prompt is not
    the end: done is when the prompts changed (each run cell gets a new execution count), none
    is queued, the kernel is idle, and all of that held for ``settle_s`` seconds."""
    page.wait_for_selector(f'{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status="idle"]',
                           timeout=60_000)
    before = settled_prompts(page)

    def click_run_all() -> float:
        page.click('.lm-MenuBar-itemLabel:text-is("Run")')
        page.click('.lm-Menu-itemLabel:text-is("Run All Cells")')
        return time.monotonic()

    # under load a click can land before the notebook takes commands: if no cell has started
    # (queued `*` or a new count) within START_S, Run All is clicked again
    clicked, clicks = click_run_all(), 1
    deadline, quiet_since, last = time.monotonic() + timeout_s, None, None
    while time.monotonic() < deadline:
        now = page.evaluate(f"() => {PROMPTS}")
        started = now != before
        if not started and time.monotonic() - clicked > START_S and clicks < 3:
            clicked, clicks = click_run_all(), clicks + 1
        idle = page.locator(f'{ACTIVE} .jp-Notebook-ExecutionIndicator[data-status="idle"]')
        done = started and not any("*" in p for p in now) and idle.count() == 1
        if done and now == last:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= settle_s:
                return now
        else:
            quiet_since = None
        last = now
        time.sleep(0.5)
    raise TimeoutError(f"Run All did not finish in {timeout_s} s: prompts {last}")


def settled_prompts(page, settle_s: float = 1.0, timeout_s: float = 60) -> list[str]:
    """The active notebook's code-cell prompts once every cell is rendered and they held still
    for ``settle_s`` seconds (a notebook still rendering would look like one that ran)."""
    deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        now = page.evaluate(f"() => {PROMPTS}")
        if now != last:
            last, since = now, time.monotonic()
        elif now and time.monotonic() - since >= settle_s:
            return now
        time.sleep(0.2)
    raise TimeoutError(f"the notebook's cells did not settle in {timeout_s} s: {last}")


def outputs(page) -> dict:
    """What the active notebook shows: figures, error/stderr outputs, every output's text."""
    area = f"{ACTIVE} .jp-OutputArea-output"
    return {"figures": page.locator(f"{area} img").count(),
            "stderr": page.locator(f'{area}[data-mime-type="application/vnd.jupyter.stderr"]')
                          .all_inner_texts(),
            "texts": page.locator(area).all_inner_texts()}


def kernel_identity(base: str, token: str, runtime: Path, notebook: str) -> str:
    """Ask the kernel the browser's session runs: its Python and where ``modadd`` comes from."""
    from jupyter_client import BlockingKernelClient
    sessions = [s for s in get_json(f"{base}/api/sessions?token={token}")
                if s["path"].endswith(notebook)]
    assert len(sessions) == 1, sessions
    assert sessions[0]["kernel"]["name"] == "python3"
    client = BlockingKernelClient(connection_file=str(
        runtime / f"kernel-{sessions[0]['kernel']['id']}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        text = []
        client.execute_interactive("import sys, modadd; print(sys.executable, modadd.__file__)",
                                   timeout=30, output_hook=lambda m: text.append(
                                       m["content"].get("text", "")))
        return "".join(text)
    finally:
        client.stop_channels()


@pytest.mark.slow
def test_chapters_open_and_rerun_in_jupyterlab(lab_server) -> None:
    if shutil.which(CHROMIUM) is None:
        if os.environ.get("MODADD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CHROMIUM={CHROMIUM!r} not found (make chromium installs Debian's)")
        pytest.skip(f"no {CHROMIUM} on PATH (make chromium installs Debian's)")
    from playwright.sync_api import sync_playwright
    base, token, runtime, root = lab_server
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which(CHROMIUM),
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            assert len(CHAPTERS) >= 2, f"MODADD_LAB_CHAPTERS={_CHOSEN!r} names no chapter"
            for notebook in CHAPTERS:
                # ?reset: a fresh workspace, so only this notebook is open
                page.goto(f"{base}/lab/tree/notebooks/{notebook}?reset&token={token}")
                page.wait_for_selector(f"{ACTIVE} .jp-Cell", timeout=60_000)
                # opened by Jupytext as a notebook (not the text editor), on the project kernel
                assert page.locator(f"{ACTIVE} .jp-Notebook").count() == 1
                prompts = run_all(page)
                shown = outputs(page)
                assert prompts and all(p.strip("[]: ").isdigit() for p in prompts), \
                    f"{notebook}: a cell did not run (an error stops Run All): {prompts}"
                assert not shown["stderr"], f"{notebook}: error or stderr output {shown['stderr']}"
                assert shown["figures"] >= 1, f"{notebook}: no figure rendered"
                identity = kernel_identity(base, token, runtime, notebook)
                assert identity.split()[0] == sys.executable, identity
                assert identity.split()[1] == str(ROOT / "modadd" / "__init__.py"), identity
                if notebook == "01_task.py":
                    first = shown["texts"]
                    rerun_with_other_seed(page)
                    second = outputs(page)
                    assert not second["stderr"] and second["figures"] >= 1
                    changed = [a != b for a, b in zip(first, second["texts"])]
                    assert len(first) == len(second["texts"]) and any(changed), \
                        "changing the seed in the parameters cell changed no output"
                    # the examples use the measurement stream of `seed`: they must change
                    examples = [i for i, t in enumerate(first) if t.startswith("m=")]
                    assert examples and all(changed[i] for i in examples)
        finally:
            browser.close()
    # nothing was written next to the committed chapters (autosave off, no save)
    assert not list((root / "notebooks").glob("*.ipynb"))


def rerun_with_other_seed(page) -> None:
    """Edit the parameters cell in the browser (seed None -> 12345) and run all cells again."""
    cells = page.locator(f"{ACTIVE} .jp-CodeCell")
    index = [i for i, text in enumerate(cells.locator(".cm-content").all_inner_texts())
             if "seed: Optional[int] = None" in text]
    assert len(index) == 1, "the parameters cell declares `seed: Optional[int] = None` once"
    editor = cells.nth(index[0]).locator(".cm-content")
    source = editor.inner_text()
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(source.replace("seed: Optional[int] = None",
                                             "seed: Optional[int] = 12345"))
    page.keyboard.press("Escape")
    assert "seed: Optional[int] = 12345" in editor.inner_text()
    run_all(page)
