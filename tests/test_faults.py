"""Fault injection on the run store: concurrent trainers of one key, a kill at every stage of
train → move → publish, every corruption kind on every stored file type, divergence, and the
environment (MODADD_NO_TRAIN values, file permissions, thread count).

Kills are real (SIGKILL, in a subprocess, at a point named by ``MODADD_FAULT``: see
``modadd.durable.fault``); recovery is checked bit for bit against a run trained without faults.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import modadd.runner as runner
import modadd.runs as runs
import modadd.store as store
from modadd import paths
from modadd.algorithmic import AlgorithmicTask
from modadd.config import RunConfig, TrainConfig
from modadd.model import ModelConfig
from modadd.task import TaskConfig
from modadd.train import NonFiniteTraining

WORKER = Path(__file__).with_name("fault_worker.py")
TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=1, d_model=16, n_heads=2),
                 train=TrainConfig(lr=3e-3, batch_size=16, n_steps=30, snapshot_every=10,
                                   probe_size=32, checkpoint_every=10, store_full_params=True))
ALGORITHMIC = RunConfig(task=AlgorithmicTask(p=11, train_fraction=0.5, split_seed=3),
                        model=ModelConfig(n_layers=1, d_model=16, n_heads=2,
                                          attention_only=False, activation="relu"),
                        train=TrainConfig(lr=3e-3, weight_decay=1.0, beta2=0.98, batch_size=16,
                                          n_steps=20, snapshot_every=5, checkpoint_every=10,
                                          probe_size=20, record_every=5), seed=4)


# ---- helpers -----------------------------------------------------------------------------------
def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MODADD_FAULT", "MODADD_NO_TRAIN")}
    env.update(OMP_NUM_THREADS="1", **extra)
    return env


def _start(cfg: RunConfig, where: Path, fault: str | None = None, barrier: tuple | None = None,
           name: str = "out") -> tuple[subprocess.Popen, Path]:
    """A subprocess asking the store (this test's folders) for ``cfg`` with trajectories."""
    config = where / f"{name}.config.json"
    config.write_text(json.dumps(cfg.to_dict()))
    out = where / f"{name}.json"
    args = [sys.executable, str(WORKER), str(config), str(out)]
    if barrier:
        args += [str(barrier[0]), str(barrier[1])]
    env = _env(**({"MODADD_FAULT": fault} if fault else {}))
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True), out


def _reference(cfg: RunConfig, where: Path) -> dict:
    """Train ``cfg`` without faults in a store of its own; its values and folders.  (One torch
    thread, as every worker: a module fixture runs before conftest's per-test setting.)"""
    torch.set_num_threads(1)
    with store.environment({"MODADD_CACHE_DIR": str(where / "cache"),
                            "MODADD_RESULTS_DIR": str(where / "results")}):
        run = store.load_or_train(cfg, trajectories=True, progress=False)
        values = _values(run)
    values["cache"], values["results"] = where / "cache", where / "results"
    return values


def _values(run: store.Run) -> dict:
    out = {"metrics": run.metrics, "train_log": run.train_log,
           "final_accuracy": run.meta["final_accuracy"],
           "snapshots": np.array(run.snapshots),
           "final": {k: v.clone() for k, v in run.final_state_dict().items()}}
    if run.config.train.store_full_params:
        out["params"], out["updates"] = np.array(run.params), np.array(run.updates)
    if isinstance(run.config.task, AlgorithmicTask):
        out["fingerprints"] = run.fingerprints
    return out


def _assert_equal(values: dict, reference: dict) -> None:
    pd.testing.assert_frame_equal(values["metrics"], reference["metrics"])
    pd.testing.assert_frame_equal(values["train_log"], reference["train_log"])
    assert values["final_accuracy"] == reference["final_accuracy"]
    for name in ("snapshots", "params", "updates"):
        if name in reference:
            np.testing.assert_array_equal(values[name], reference[name])
    for name, tensor in reference["final"].items():
        assert torch.equal(values["final"][name], tensor), name
    for name, array in reference.get("fingerprints", {}).items():
        np.testing.assert_array_equal(values["fingerprints"][name], array)


def _copy_store(reference: dict) -> None:
    shutil.copytree(reference["cache"], paths.cache_dir(), dirs_exist_ok=True)
    shutil.copytree(reference["results"], paths.results_dir(), dirs_exist_ok=True)


def _assert_complete_and_clean(cfg: RunConfig) -> None:
    """Both copies complete and verified; nothing else left in either runs folder."""
    key = store.run_key(cfg)
    cache, results = paths.cache_dir() / "runs", paths.results_dir() / "runs"
    assert sorted(p.name for p in cache.iterdir()) == [".locks", key]
    assert sorted(p.name for p in results.iterdir()) == [key]
    assert not [p for p in (cache / key).iterdir() if p.name.startswith(".")]
    for folder in (cache / key, results / key):
        meta = runs._read_meta(folder, key)
        runs._read_run(cfg, key, folder, cache / key)
        for name in meta["checksums"]:
            if (folder / name).exists():
                runs._verify(folder / name, key, meta)
    assert set(meta["checksums"]) >= set(store.heavy_files(cfg)) | {"config.json",
                                                                   "train_log.npz"}
    assert all((cache / key / name).exists() for name in store.heavy_files(cfg))


def _forbid_training(monkeypatch) -> None:
    def fail(*args, **kwargs):
        raise AssertionError("trained although the run was recoverable without training")
    monkeypatch.setattr(runner, "train", fail)


@pytest.fixture(scope="module")
def tiny_reference(tmp_path_factory):
    return _reference(TINY, tmp_path_factory.mktemp("tiny-reference"))


@pytest.fixture(scope="module")
def algorithmic_reference(tmp_path_factory):
    return _reference(ALGORITHMIC, tmp_path_factory.mktemp("algorithmic-reference"))


# ---- concurrency -------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_trainers_of_one_key_train_once_and_agree(n, tmp_path, tiny_reference):
    cfg = replace(TINY, train=replace(TINY.train, n_steps=300, snapshot_every=50,
                                      checkpoint_every=50))
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [_start(cfg, tmp_path, barrier=(barrier, n), name=f"w{i}") for i in range(n)]
    outs = []
    for process, out in workers:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        outs.append(json.loads(out.read_text()))
    assert sum(o["trained"] for o in outs) == 1, outs          # one trained, the others waited
    assert len({(o["metrics"], o["snapshots"]) for o in outs}) == 1
    _assert_complete_and_clean(cfg)


# ---- a kill at each stage of train -> move -> publish ------------------------------------------
# (point, whether the run is finished on disk when the kill hits: then recovery needs no training)
FRESH_POINTS = [("train:checkpoint-written", False), ("store:summaries-written", True),
                ("store:checkpoint-removed", True), ("store:cache-swapped", True),
                ("store:staged", True), ("store:results-swapped", True)]
# with a previous copy in place (a cache copy that stored less, retrained over): the swaps
REPLACE_POINTS = [("store:cache-aside", True), ("store:cache-swapped", True),
                  ("store:results-aside", True), ("store:results-swapped", True)]


def _killed_at(point: str, cfg: RunConfig) -> None:
    """Ask for ``cfg`` in a forked child process that SIGKILLs itself at ``point`` (a fork, not a
    fresh interpreter: torch is imported already, which saves ~2 s per kill)."""
    pid = os.fork()
    if pid == 0:                                            # the child: never returns
        code = 3                                            # 3: the point was not reached
        try:
            os.environ["MODADD_FAULT"] = point
            store.load_or_train(cfg, trajectories=True, progress=False)
        except BaseException:                               # noqa: BLE001 - reported by code
            code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, \
        f"{point} was not reached (exit status {status >> 8})"


def _kill_then_recover(point, finished, monkeypatch, tmp_path, reference):
    _killed_at(point, TINY)
    if finished:
        _forbid_training(monkeypatch)
        monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    run = store.load_or_train(TINY, trajectories=True, progress=False)
    _assert_equal(_values(run), reference)
    _assert_complete_and_clean(TINY)


@pytest.mark.parametrize("point,finished", FRESH_POINTS, ids=[p for p, _ in FRESH_POINTS])
def test_kill_during_first_store_recovers(point, finished, monkeypatch, tmp_path, tiny_reference):
    _kill_then_recover(point, finished, monkeypatch, tmp_path, tiny_reference)


@pytest.mark.parametrize("point,finished", REPLACE_POINTS, ids=[p for p, _ in REPLACE_POINTS])
def test_kill_while_replacing_a_copy_recovers(point, finished, monkeypatch, tmp_path,
                                              tiny_reference):
    _copy_store(tiny_reference)
    key = store.run_key(TINY)
    (paths.cache_dir() / "runs" / key / "final_model.pt").unlink()    # a copy that stored less
    _kill_then_recover(point, finished, monkeypatch, tmp_path, tiny_reference)


def test_repair_skips_a_key_another_process_holds(tmp_path, tiny_reference):
    """A staging folder beside a key that is being written (its lock held) is not touched."""
    _copy_store(tiny_reference)
    key = store.run_key(TINY)
    staging = paths.results_dir() / "runs" / f"{key}.publish-live"
    staging.mkdir()
    from modadd.durable import key_lock
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from pathlib import Path; from modadd.durable import key_lock\n"
        "with key_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(30)"),
        str(runs.lock_file(key))], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        assert holder.stdout.readline().strip() == "held"
        runs._open_store()
        assert staging.exists()
    finally:
        holder.kill()
        holder.wait()
    runs._OPENED.clear()
    with key_lock(runs.lock_file(key)):
        pass
    store.find_run(TINY)
    assert not staging.exists()


# ---- corruption --------------------------------------------------------------------------------
def _damage(path: Path, kind: str) -> None:
    data = path.read_bytes()
    if kind == "truncated":
        path.write_bytes(data[:len(data) // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif kind == "flipped byte":
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x5A]) + data[middle + 1:])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "missing":
        path.unlink()
    else:
        raise ValueError(kind)


KINDS = ("truncated", "garbage", "flipped byte", "empty")
SUMMARY_CASES = [(copy, name) for copy in ("cache", "results")
                 for name in ("config.json", "meta.json", "metrics.csv.gz", "train_log.npz")]
HEAVY = ("snapshots.npy", "final_model.pt", "params.npy", "updates.npy")


def _access_heavy(run: store.Run, name: str):
    if name == "final_model.pt":
        return run.final_state_dict()
    return np.array(getattr(run, name.split(".")[0]))


@pytest.mark.parametrize("kind", (*KINDS, "missing"))
@pytest.mark.parametrize("copy,name", SUMMARY_CASES, ids=[f"{c}-{n}" for c, n in SUMMARY_CASES])
def test_damaged_summary_copy_falls_back_to_the_other(copy, name, kind, tiny_reference,
                                                      monkeypatch):
    _copy_store(tiny_reference)
    key = store.run_key(TINY)
    damaged = (paths.cache_dir() if copy == "cache" else paths.results_dir()) / "runs" / key / name
    _damage(damaged, kind)
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    with pytest.warns(store.DamagedCopyWarning, match=str(damaged.parent)):
        run = store.load_or_train(TINY, trajectories=True, progress=False)
    _assert_equal(_values(run), tiny_reference)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", HEAVY)
def test_damaged_weight_file_is_a_clear_error(name, kind, tiny_reference):
    _copy_store(tiny_reference)
    key = store.run_key(TINY)
    damaged = paths.cache_dir() / "runs" / key / name
    _damage(damaged, kind)
    run = store.load_or_train(TINY, trajectories=True, progress=False)
    with pytest.raises(store.CorruptFile) as error:
        _access_heavy(run, name)
    assert error.value.path == damaged and error.value.key == key
    assert str(damaged) in str(error.value) and "delete" in str(error.value)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("copy", ("cache", "results"))
def test_damaged_fingerprints_fall_back_to_the_other_copy(copy, kind, algorithmic_reference):
    _copy_store(algorithmic_reference)
    key = store.run_key(ALGORITHMIC)
    root = paths.cache_dir() if copy == "cache" else paths.results_dir()
    _damage(root / "runs" / key / "fingerprints.npz", kind)
    with pytest.warns(store.DamagedCopyWarning, match="fingerprints.npz"):
        run = store.load_or_train(ALGORITHMIC, trajectories=True, progress=False)
    _assert_equal(_values(run), algorithmic_reference)


def test_both_copies_damaged_is_one_clear_error(tiny_reference):
    _copy_store(tiny_reference)
    key = store.run_key(TINY)
    for root in (paths.cache_dir(), paths.results_dir()):
        _damage(root / "runs" / key / "metrics.csv.gz", "flipped byte")
    with pytest.raises(store.CorruptFile, match="the other copy is damaged too"):
        store.load_or_train(TINY, progress=False)


ANALYSIS = {"table": pd.DataFrame({"a": np.arange(50), "b": np.linspace(0, 1, 50)}),
            "arrays": {"x": np.arange(200.0), "y": np.ones((5, 5))},
            "record": {"name": "r", "values": list(range(50))}}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("result", sorted(ANALYSIS))
def test_damaged_analysis_result_is_a_clear_error(result, kind):
    value = ANALYSIS[result]
    store.cached(result, 1, {"k": 1}, lambda: value)
    (path,) = (paths.results_dir() / "analysis").glob(f"{result}-*")
    _damage(path, kind)
    try:
        again = store.cached(result, 1, {"k": 1}, lambda: pytest.fail("recomputed"))
    except store.CorruptFile as error:
        assert error.path == path and str(path) in str(error) and "delete" in str(error)
        return
    # the container's CRC let the damage through only where it did not touch the value
    if isinstance(value, pd.DataFrame):
        pd.testing.assert_frame_equal(again, value)
    elif result == "arrays":
        assert all(np.array_equal(again[k], v) for k, v in value.items())
    else:
        assert again == value


# ---- divergence, environment -------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_divergence_stops_with_step_and_field_and_stores_nothing(optimizer):
    cfg = replace(TINY, train=replace(TINY.train, lr=1e6, optimizer=optimizer))
    with pytest.raises(NonFiniteTraining, match=r"at step \d+ of 30; most likely lr=1000000.0"):
        store.load_or_train(cfg, progress=False)
    assert [p.name for p in (paths.cache_dir() / "runs").iterdir()] == [".locks"]
    assert not (paths.results_dir() / "runs").exists()


def test_divergence_of_a_seed_ensemble_stores_nothing():
    from modadd.ensemble import unsupported_reason
    cfg = replace(TINY, train=replace(TINY.train, lr=1e6, store_full_params=False))
    assert unsupported_reason(cfg) is None
    with pytest.raises(NonFiniteTraining, match=r"at step \d+ of 30; most likely lr="):
        store.load_or_train_many([cfg.with_seed(s) for s in range(3)], n_workers=1,
                                 ensemble=True, progress=False)
    assert [p.name for p in (paths.cache_dir() / "runs").iterdir()] == [".locks"]


@pytest.mark.parametrize("value,allowed", [("", True), ("0", True), ("false", True),
                                           ("No", True), ("1", False), ("true", False),
                                           ("YES", False), (" yes ", False)])
def test_no_train_values(value, allowed, monkeypatch):
    monkeypatch.setenv("MODADD_NO_TRAIN", value)
    assert paths.training_allowed() is allowed


@pytest.mark.parametrize("value", ["2", "on", "ja", "fasle"])
def test_no_train_typo_is_an_error(value, monkeypatch):
    monkeypatch.setenv("MODADD_NO_TRAIN", value)
    with pytest.raises(ValueError, match=f"MODADD_NO_TRAIN: .*got {value!r}"):
        paths.training_allowed()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_stored_files_follow_the_umask(umask):
    previous = os.umask(umask)
    try:
        run = store.load_or_train(TINY, progress=False)
        store.cached("t", 1, {}, lambda: pd.DataFrame({"a": [1]}))
    finally:
        os.umask(previous)
    files = [p for root in (paths.cache_dir() / "runs" / run.key,
                            paths.results_dir() / "runs" / run.key,
                            paths.results_dir() / "analysis") for p in root.iterdir()]
    assert files and {p.stat().st_mode & 0o777 for p in files} == {0o666 & ~umask}
    assert (paths.results_dir() / "runs" / run.key).stat().st_mode & 0o777 == 0o777 & ~umask


def test_thread_count_is_recorded():
    run = store.load_or_train(TINY, progress=False)
    assert run.meta["torch_threads"] == torch.get_num_threads() == 1


def test_legacy_run_without_checksums_reads_and_can_be_sealed(tiny_reference):
    _copy_store(tiny_reference)
    key = store.run_key(TINY)
    for root in (paths.cache_dir(), paths.results_dir()):
        meta_path = root / "runs" / key / "meta.json"
        meta = json.loads(meta_path.read_text())
        del meta["checksums"], meta["meta_sha256"]
        meta_path.write_text(json.dumps(meta))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run = store.load_or_train(TINY, trajectories=True, progress=False)
    assert "checksums" not in run.meta
    folder = paths.cache_dir() / "runs" / key
    assert store.add_checksums(folder) and not store.add_checksums(folder)
    sealed = runs._read_meta(folder, key)
    assert set(sealed["checksums"]) >= set(store.heavy_files(TINY))
    _damage(folder / "snapshots.npy", "flipped byte")
    run = store.load_or_train(TINY, trajectories=True, progress=False)
    with pytest.raises(store.CorruptFile, match="SHA-256"):
        np.array(run.snapshots)


def test_every_committed_run_is_sealed_and_intact(monkeypatch):
    """Each folder of data/results/runs reads, hashes to its name and matches its checksums."""
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(paths.ROOT / "data" / "results"))
    table = store.verify_store(progress=False)
    assert len(table) >= 274 and set(table["copy"]) == {"results"}
    assert set(table.status) == {"ok"}, table[table.status != "ok"].detail.tolist()[:3]


def test_a_read_only_results_folder_still_reads_the_cache_copy(monkeypatch, tiny_reference):
    """Republishing is a repair, not a condition of reading: if it fails, the read goes on."""
    _copy_store(tiny_reference)
    shutil.rmtree(paths.results_dir() / "runs" / store.run_key(TINY))

    def refuse(source, target):
        raise PermissionError(13, "Permission denied", str(target))
    monkeypatch.setattr(runs, "_publish", refuse)
    with pytest.warns(RuntimeWarning, match="could not republish"):
        run = store.load_or_train(TINY, trajectories=True, progress=False)
    _assert_equal(_values(run), tiny_reference)
