"""Fault injection for modadd.sweep: kill -9 of a sweep driver (its workers and kernels must die
with it, and the sweep resumes), one point run twice at once (executed once), damaged manifest
and damaged notebooks of done points (rebuilt / re-executed, never silently dropped).

The points run a tiny notebook that records its kernel's pid and its worker's pid (the kernel's
parent) in a folder passed as a parameter, appends a line to ``runs.txt`` every time it runs,
and waits while the file ``hold`` exists there: the killing tests hold the points running."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from notebook_files import write_notebook

import modadd.sweep as S
from modadd import paths

SLEEPY = '''# %% tags=["parameters"]
x: int = 1                # point number
pids: str = "."           # folder of the pid files, runs.txt and the hold file
fail: bool = False        # raise after the hold

# %%
import os
import time
from pathlib import Path
folder = Path(pids)
tmp = folder / f".x{x}.{os.getpid()}"
tmp.write_text(f"{os.getpid()} {os.getppid()}")
os.replace(tmp, folder / f"x{x}.pids")              # kernel pid, worker pid
with open(folder / "runs.txt", "a") as runs:
    runs.write(f"{x} {os.getpid()}\\n")
start = time.time()
while (folder / "hold").exists() and time.time() - start < 60:
    time.sleep(0.1)
if fail:
    raise ValueError(f"failing on purpose at x={x}")

# %%
from IPython.display import display
display({"text/plain": repr(10 * x)}, raw=True, metadata={"modadd_record": {"value": 10 * x}})
'''
KILL_WITHIN_S = 10.0


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path, "sleepy.py", SLEEPY)


@pytest.fixture
def pids(tmp_path: Path) -> Path:
    folder = tmp_path / "pids"
    folder.mkdir()
    return folder


def spec_of(notebook: Path, pids: Path, name: str = "faults", **fields) -> dict:
    return {"name": name, "notebook": str(notebook), "parameters": {"pids": str(pids)}, **fields}


def write_spec(path: Path, spec: dict) -> Path:
    path.write_text(json.dumps(spec))           # JSON is YAML
    return path


def child_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "MODADD_CACHE_DIR": str(tmp_path / "cache"),
            "MODADD_RESULTS_DIR": str(tmp_path / "results"), "OMP_NUM_THREADS": "1"}


def stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None


def alive(pid: int) -> bool:
    fields = stat(pid)
    return fields is not None and fields[0] not in "ZXx"


def parent(pid: int) -> int:
    return int(stat(pid)[1])


def wait_for(condition, timeout: float, what: str, poll: float = 0.05) -> float:
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - start


def recorded(pids: Path, xs) -> dict[int, tuple[int, int]]:
    """x -> (kernel pid, worker pid) written by the points."""
    return {x: tuple(map(int, (pids / f"x{x}.pids").read_text().split())) for x in xs}


def runs(pids: Path) -> list[str]:
    path = pids / "runs.txt"
    return path.read_text().splitlines() if path.exists() else []


def kill_leftovers(numbers) -> None:
    for pid in numbers:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def entries(name: str = "faults") -> dict[str, dict]:
    return {e["key"]: e for e in S.read_manifest(name)["points"]}


# ---- kill -9 of the driver ----------------------------------------------------------------------
def kill_driver_mid_sweep(notebook: Path, pids: Path, tmp_path: Path, executor: list[str]) -> None:
    spec = spec_of(notebook, pids, grid={"x": [1, 2]})
    spec_path = write_spec(tmp_path / "faults.yaml", spec)
    (pids / "hold").touch()
    log = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen([sys.executable, "-m", "modadd.sweep", str(spec_path), *executor],
                              cwd=paths.ROOT, env=child_env(tmp_path), stdout=log, stderr=log)
    watched: list[int] = []
    try:
        wait_for(lambda: all((pids / f"x{x}.pids").exists() for x in (1, 2)) or
                 driver.poll() is not None, 90, "both points to start")
        assert driver.poll() is None, (tmp_path / "driver.log").read_text()
        pairs = recorded(pids, (1, 2))
        kernels, workers = [k for k, _ in pairs.values()], [w for _, w in pairs.values()]
        watched = kernels + workers
        assert len(set(workers)) == 2 and all(map(alive, watched))
        # the worker processes are the driver's children, the kernels the workers'
        assert [parent(w) for w in workers] == [driver.pid] * 2
        assert [parent(k) for k in kernels] == workers
        assert {e["status"] for e in entries().values()} == {"running"}

        driver.send_signal(signal.SIGKILL)
        driver.wait()
        waited = wait_for(lambda: not any(map(alive, watched)), KILL_WITHIN_S,
                          f"workers {workers} and kernels {kernels} to die with their driver")
        print(f"{' '.join(executor)}: last worker/kernel gone {waited:.2f} s after kill -9")
        assert len(runs(pids)) == 2                     # nothing ran again meanwhile
    finally:
        (pids / "hold").unlink(missing_ok=True)
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        kill_leftovers(watched)
        log.close()

    # the interrupted sweep resumes: both points run again, to completion
    summary = S.run_sweep(spec_path)
    assert summary.status.tolist() == ["done", "done"]
    assert summary.action.tolist() == ["executed", "executed"]
    assert len(runs(pids)) == 4
    table = S.collect("faults").sort_values("x")
    assert table.x.tolist() == [1, 2] and table.value.tolist() == [10, 20]
    assert [p.name for p in S.sweep_dir("faults").iterdir() if ".tmp" in p.name] == []


def test_kill_9_of_a_workers_driver_takes_its_workers_and_kernels(notebook, pids, tmp_path):
    kill_driver_mid_sweep(notebook, pids, tmp_path, ["--workers", "2"])


def test_kill_9_of_a_dask_local_driver_takes_its_workers_and_kernels(notebook, pids, tmp_path):
    kill_driver_mid_sweep(notebook, pids, tmp_path, ["--dask-local", "2"])


def test_die_with_driver_that_is_not_the_parent(tmp_path: Path) -> None:
    """A worker whose parent is not the driver (forkserver, separate nanny) watches the driver's
    pid; a killed driver left unreaped (a zombie) counts as dead."""
    driver = subprocess.Popen(["sleep", "60"])
    code = ("import sys, time; from modadd.sweep import die_with_driver; "
            "die_with_driver(int(sys.argv[1]), interval=0.1); print('ready', flush=True); "
            "time.sleep(60)")
    worker = subprocess.Popen([sys.executable, "-c", code, str(driver.pid)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline() == "ready\n"
        time.sleep(0.3)
        assert worker.poll() is None                # the driver lives: the worker too
        driver.send_signal(signal.SIGKILL)          # not reaped yet: a zombie
        wait_for(lambda: stat(driver.pid)[0] == "Z", 5, "the driver to be a zombie")
        worker.wait(timeout=5)
        assert worker.returncode == 70
    finally:
        for process in (driver, worker):
            if process.poll() is None:
                process.kill()
            process.wait()


# ---- one point, two executions at once ----------------------------------------------------------
RUN_POINT = ("import json, sys; from modadd.sweep import run_point; "
             "print(json.dumps(run_point(json.loads(sys.argv[1]))))")


def test_same_point_twice_at_once_executes_once(notebook, pids, tmp_path):
    spec = S.parse_spec(spec_of(notebook, pids, points=[{"x": 3}]))
    (point,) = spec.expand()
    spec.folder.mkdir(parents=True)
    task = {"key": point.key, "parameters": point.parameters, "notebook": str(spec.notebook),
            "notebook_id": spec.notebook_id, "output": str(spec.folder / f"{point.key}.ipynb"),
            "env": {"OMP_NUM_THREADS": "1"}}
    (pids / "hold").touch()
    calls = [subprocess.Popen([sys.executable, "-c", RUN_POINT, json.dumps(task)], cwd=paths.ROOT,
                              env=child_env(tmp_path), stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        wait_for(lambda: runs(pids), 60, "one call to execute the point")
        # the other call started as early but only needed its imports to reach the lock
        time.sleep(1.5)
        with S.try_key_lock(spec.folder / f".{point.key}.lock") as free:
            assert not free                     # held by the executing call
        (pids / "hold").unlink()
        outcomes = [json.loads(call.communicate(timeout=60)[0]) for call in calls]
    finally:
        (pids / "hold").unlink(missing_ok=True)
        for call in calls:
            if call.poll() is None:
                call.kill()
            call.wait()
    assert len(runs(pids)) == 1                 # executed exactly once
    assert [o["status"] for o in outcomes] == ["done", "done"]
    assert sorted(bool(o.get("reused")) for o in outcomes) == [False, True]
    assert {o["output"] for o in outcomes} == {f"{point.key}.ipynb"}
    assert S.notebook_problem(spec.folder / f"{point.key}.ipynb") is None


# ---- damaged files ------------------------------------------------------------------------------
def good_notebook() -> str:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
    return nbformat.writes(nb)


DAMAGES = {
    "truncated": lambda text: text[: len(text) // 2],
    "garbage": lambda text: "\x00\x13 not a notebook \xff" * 20,
    "empty": lambda text: "",
    "json list": lambda text: "[]",
    "json without cells": lambda text: "{}",
    "no cells": lambda text: json.dumps({**json.loads(text), "cells": []}),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_notebook_problem_says_what_is_wrong(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "x.ipynb"
    path.write_text(good_notebook())
    assert S.notebook_problem(path) is None
    path.write_text(DAMAGES[damage](good_notebook()))
    assert S.notebook_problem(path)


def fake_manifest(name: str, keys: list[str]) -> Path:
    folder = S.sweep_dir(name)
    folder.mkdir(parents=True)
    manifest = {"sweep": name, "points": [
        {"key": k, "parameters": {"x": i}, "status": "done", "duration_s": 1.0, "output": None,
         "error": None} for i, k in enumerate(keys)]}
    (folder / S.MANIFEST).write_text(json.dumps(manifest, indent=1))
    return folder / S.MANIFEST


@pytest.mark.parametrize("text, problem", [
    ('{"sweep": "fake", "points": [{"key": "a", ', r"not JSON: "),
    ("", r"not JSON: "),
    ('{"sweep": "fake"}', r"not a mapping with a 'points' list"),
    ('{"points": [{"key": "a"}]}', r"points\[0\] is not a point with key, status and parameters"),
])
def test_damaged_manifest_is_named(text: str, problem: str) -> None:
    path = fake_manifest("fake", ["a"])
    path.write_text(text)
    message = rf"manifest: {re.escape(str(path))} is damaged \({problem}"
    for read in (S.read_manifest, S.collect):
        with pytest.raises(ValueError, match=message) as info:
            read("fake")
        assert "Run the sweep again" in str(info.value) and "moved aside" in str(info.value)


def test_collect_names_a_damaged_notebook() -> None:
    path = fake_manifest("fake", ["x=0-00000000", "x=1-00000000"])
    (path.parent / "x=0-00000000.ipynb").write_text(good_notebook())
    damaged = path.parent / "x=1-00000000.ipynb"
    damaged.write_text(good_notebook()[:40])
    with pytest.raises(ValueError, match=rf"collect: the notebook {re.escape(str(damaged))} of "
                                         rf"done point x=1-00000000 is damaged \(NotJSONError"
                                         rf".*run the sweep again .* to re-execute that point"):
        S.collect("fake")
    damaged.unlink()                                        # missing: also an error
    with pytest.raises(ValueError, match=rf"collect: the notebook {re.escape(str(damaged))} of "
                                         rf"done point x=1-00000000 is missing; run the sweep"):
        S.collect("fake")


def test_damaged_notebooks_rerun_and_damaged_manifest_rebuilds(notebook, pids, tmp_path):
    spec = spec_of(notebook, pids, grid={"x": [1, 2, 3, 4]}, points=[{"x": 5, "fail": True}])
    first = S.run_sweep(spec)
    assert first.status.tolist() == ["done"] * 4 + ["failed"]
    folder = S.sweep_dir("faults")
    keys = first.key.tolist()
    good = (folder / f"{keys[0]}.ipynb").read_text()
    # a done point's notebook truncated, garbage, emptied; the fourth stays intact
    for key, damage in zip(keys[1:4], ("truncated", "garbage", "empty")):
        (folder / f"{key}.ipynb").write_text(DAMAGES[damage](good))
    with pytest.raises(ValueError,
                       match=rf"collect: the notebook {re.escape(str(folder))}/.* is damaged"):
        S.collect("faults")

    with pytest.warns(UserWarning, match=r"is damaged .*moved aside to .*\.ipynb\.damaged, the "
                                         r"point runs again") as caught:
        second = S.run_sweep(spec)
    assert len(caught) == 3
    assert second.action.tolist() == ["skipped (done)"] + ["executed"] * 3 + ["skipped (failed)"]
    assert second.status.tolist() == ["done"] * 4 + ["failed"]
    assert len(runs(pids)) == 5 + 3
    assert sorted(p.name for p in folder.glob("*.damaged")) == sorted(
        f"{k}.ipynb.damaged" for k in keys[1:4])
    table = S.collect("faults").sort_values("x")
    assert table.x.tolist() == [1, 2, 3, 4] and table.value.tolist() == [10, 20, 30, 40]

    # a truncated manifest: named by readers, rebuilt by the next run without re-executing
    before = entries()
    manifest_path = folder / S.MANIFEST
    manifest_path.write_text(manifest_path.read_text()[:300])
    with pytest.raises(ValueError,
                       match=rf"manifest: {re.escape(str(manifest_path))} is damaged \(not JSON"):
        S.collect("faults")
    with pytest.warns(UserWarning, match=r"Rebuilt the manifest from the notebooks present: 4 "
                                         r"done and 1 failed point\(s\) kept"):
        third = S.run_sweep(spec)
    assert third.action.tolist() == ["skipped (done)"] * 4 + ["skipped (failed)"]
    assert len(runs(pids)) == 8                             # nothing executed again
    assert (folder / (S.MANIFEST + S.DAMAGED)).exists()
    rebuilt = entries()
    assert {k: e["status"] for k, e in rebuilt.items()} == {
        k: e["status"] for k, e in before.items()}
    assert all(rebuilt[k]["parameters"] == before[k]["parameters"] for k in keys)
    failed = rebuilt[keys[4]]
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"] == "failing on purpose at x=5"
    assert S.collect("faults").sort_values("x").value.tolist() == [10, 20, 30, 40]
