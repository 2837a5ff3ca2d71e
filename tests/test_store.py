"""Run cache: keying, invalidation, NO_TRAIN, atomic layout, analysis cache, parallel training."""
from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import modadd.runner as runner
import modadd.runs as runs
import modadd.store as store
from modadd import paths
from modadd.config import RunConfig, TrainConfig
from modadd.model import ModelConfig
from modadd.task import TaskConfig

TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=1, d_model=16, n_heads=2),
                 train=TrainConfig(lr=3e-3, batch_size=16, n_steps=30, snapshot_every=10,
                                   probe_size=32, checkpoint_every=10))


def forbid_training(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("trained although the run is cached")
    monkeypatch.setattr(runner, "train", fail)


def test_trains_once_then_loads(monkeypatch):
    first = store.load_or_train(TINY, progress=False)
    forbid_training(monkeypatch)
    second = store.load_or_train(TINY, progress=False)
    pd.testing.assert_frame_equal(first.metrics, second.metrics)
    assert first.key == second.key == store.run_key(TINY)
    assert set(first.metrics.columns) == {"step", "m", "metric", "layer", "value"}
    assert first.train_log.step.tolist() == list(range(1, 31))


def test_layout_results_hold_summaries_cache_holds_weights():
    run = store.load_or_train(TINY, progress=False)
    results = paths.results_dir() / "runs" / run.key
    cache = paths.cache_dir() / "runs" / run.key
    assert sorted(p.name for p in results.iterdir()) == \
        ["config.json", "meta.json", "metrics.csv.gz", "train_log.npz"]  # no weights
    assert {"snapshots.npy", "final_model.pt", *store.SUMMARY_FILES} <= \
        {p.name for p in cache.iterdir()}
    assert not (cache / "checkpoint.pt").exists()
    leftovers = [p for p in paths.cache_dir().rglob("*") if ".partial" in p.name
                 or p.name.endswith(".tmp")]
    leftovers += [p for p in paths.results_dir().rglob("*") if ".tmp" in p.name]
    assert not leftovers
    meta = json.loads((results / "meta.json").read_text())
    assert meta["key"] == run.key and meta["schema_version"] == store.SCHEMA_VERSION
    final = run.metrics[(run.metrics.metric == "accuracy") & (run.metrics.step == 30)]
    assert meta["final_accuracy"] == {str(r.m): r.value for r in final.itertuples()}


def test_results_only_run_loads_summaries_and_retrains_for_weights(monkeypatch):
    run = store.load_or_train(TINY, progress=False)
    shutil.rmtree(paths.cache_dir() / "runs" / run.key)
    summary = store.load_or_train(TINY, progress=False)
    pd.testing.assert_frame_equal(run.metrics, summary.metrics)
    with pytest.raises(store.CacheMiss, match="make study"):
        summary.snapshots
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    with pytest.raises(store.CacheMiss, match=run.key):
        store.load_or_train(TINY, trajectories=True, progress=False)
    monkeypatch.delenv("MODADD_NO_TRAIN")
    full = store.load_or_train(TINY, trajectories=True, progress=False)
    pd.testing.assert_frame_equal(run.metrics, full.metrics)
    assert full.snapshots.shape == (4, 1, 4, 16, 16)


def test_no_train_miss_fails_at_once(monkeypatch):
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    forbid_training(monkeypatch)
    with pytest.raises(store.CacheMiss, match=store.run_key(TINY)):
        store.load_or_train(TINY, progress=False)


def test_schema_bump_invalidates(monkeypatch):
    store.load_or_train(TINY, progress=False)
    assert store.find_run(TINY) is not None
    old_key = store.run_key(TINY)
    monkeypatch.setattr(runs, "SCHEMA_VERSION", runs.SCHEMA_VERSION + 1)
    assert store.run_key(TINY) != old_key
    assert store.find_run(TINY) is None


def test_config_change_is_a_different_run():
    store.load_or_train(TINY, progress=False)
    assert store.find_run(replace(TINY, seed=1)) is None
    assert store.find_run(replace(TINY, train=replace(TINY.train, lr=1e-3))) is None


def test_hand_edited_config_is_refused():
    run = store.load_or_train(TINY, progress=False)
    for folder in (paths.cache_dir() / "runs" / run.key, paths.results_dir() / "runs" / run.key):
        stored = json.loads((folder / "config.json").read_text())
        stored["train"]["lr"] = 1.0
        (folder / "config.json").write_text(json.dumps(stored))
    with pytest.raises(store.CorruptFile, match="config.json is damaged .*SHA-256"):
        store.load_or_train(TINY, progress=False)
    for folder in (paths.cache_dir() / "runs" / run.key, paths.results_dir() / "runs" / run.key):
        meta = json.loads((folder / "meta.json").read_text())      # a run without checksums
        del meta["checksums"], meta["meta_sha256"]
        (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(store.CorruptFile, match="stored config differs"):
        store.load_or_train(TINY, progress=False)


def test_interrupted_run_leaves_only_partial_in_cache():
    key = store.run_key(TINY)
    partial = paths.cache_dir() / "runs" / f"{key}.partial"
    runner.train(TINY, partial, stop_after=15)
    assert (partial / "checkpoint.pt").exists()
    assert store.find_run(TINY) is None
    assert [p.name for p in (paths.cache_dir() / "runs").iterdir()] == [f"{key}.partial"]
    assert not paths.results_dir().exists() or not any(paths.results_dir().rglob("*"))
    run = store.load_or_train(TINY, progress=False)  # resumes the partial run
    assert not partial.exists() and run.meta["final_accuracy"]


def test_analysis_cache_computes_once_per_inputs():
    calls = []

    def compute(kind):
        def inner():
            calls.append(kind)
            if kind == "frame":
                return pd.DataFrame({"a": [1, 2], "b": [0.5, 0.25]})
            if kind == "arrays":
                return {"x": np.arange(4.0), "y": np.eye(2)}
            return {"answer": 42, "list": [1, 2]}
        return inner

    for kind in ("frame", "arrays", "json"):
        first = store.cached(f"t-{kind}", 1, {"run": "abc"}, compute(kind))
        second = store.cached(f"t-{kind}", 1, {"run": "abc"}, compute(kind))
        if kind == "frame":
            pd.testing.assert_frame_equal(first, second)
        elif kind == "arrays":
            assert all(np.array_equal(first[k], second[k]) for k in first)
        else:
            assert first == second
    assert calls == ["frame", "arrays", "json"]
    store.cached("t-json", 2, {"run": "abc"}, compute("json"))
    store.cached("t-json", 1, {"run": "xyz"}, compute("json"))
    assert calls == ["frame", "arrays", "json", "json", "json"]
    with pytest.raises(TypeError, match="cached: result must be"):
        store.cached("t-bad", 1, {}, lambda: [1, 2, 3])


def test_analysis_miss_under_no_train_fails_and_writes_nothing(monkeypatch):
    frame = pd.DataFrame({"a": [1.0]})
    store.cached("kept", 1, {}, lambda: frame)
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    pd.testing.assert_frame_equal(store.cached("kept", 1, {}, lambda: 1 / 0), frame)  # a hit
    with pytest.raises(store.CacheMiss, match="analysis missing-.* is not cached"):
        store.cached("missing", 1, {}, lambda: frame)
    assert not list((paths.results_dir() / "analysis").glob("missing-*"))


def test_analysis_cache_hit_equals_miss_for_indexed_frame():
    frame = pd.DataFrame({"g": ["a", "a", "b"], "v": [1.0, 2.0, 3.0]}).groupby("g").mean()
    miss = store.cached("indexed", 1, {}, lambda: frame)
    hit = store.cached("indexed", 1, {}, lambda: frame)
    pd.testing.assert_frame_equal(miss, hit)


def test_duplicate_configs_train_once(monkeypatch):
    calls = []
    real_train = runner.train

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runner, "train", counting)
    runs = store.load_or_train_many([TINY, TINY], n_workers=1, progress=False)
    pd.testing.assert_frame_equal(runs[0].metrics, runs[1].metrics)
    assert len(calls) == 1


def test_parallel_pool_equals_serial(tmp_path, monkeypatch):
    configs = [TINY, replace(TINY, seed=1)]
    parallel = store.load_or_train_many(configs, n_workers=2, progress=False)
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(tmp_path / "serial-results"))
    monkeypatch.setenv("MODADD_CACHE_DIR", str(tmp_path / "serial-cache"))
    serial = store.load_or_train_many(configs, n_workers=1, progress=False)
    for a, b in zip(parallel, serial):
        pd.testing.assert_frame_equal(a.metrics, b.metrics)
        pd.testing.assert_frame_equal(a.train_log, b.train_log)
        assert np.array_equal(a.snapshots, b.snapshots)


def test_full_params_run_missing_a_heavy_file_is_retrained_bit_identically():
    cfg = replace(TINY, train=replace(TINY.train, store_full_params=True))
    run = store.load_or_train(cfg, trajectories=True, progress=False)
    updates = np.array(run.updates)
    (paths.cache_dir() / "runs" / run.key / "updates.npy").unlink()   # an older cache version
    assert store.find_run(cfg, trajectories=True) is None
    assert store.find_run(cfg) is not None                              # summaries still load
    again = store.load_or_train(cfg, trajectories=True, progress=False)
    np.testing.assert_array_equal(np.array(again.updates), updates)


def test_cached_results_are_gzipped_deterministic_and_legacy_plain_files_still_read():
    import gzip
    cached = store.cached
    frame = pd.DataFrame({"a": [1.5, 2.25], "b": ["x", "y"]})
    first = cached("demo", 1, {"k": 1}, lambda: frame)
    pd.testing.assert_frame_equal(first, frame)
    folder = paths.results_dir() / "analysis"
    (path,) = folder.glob("demo-[0-9a-f]*")
    assert path.name.endswith(".csv.gz")
    raw = path.read_bytes()
    path.unlink()
    cached("demo", 1, {"k": 1}, lambda: frame)
    assert path.read_bytes() == raw                      # no timestamp in the gzip header
    assert gzip.decompress(raw).decode() == frame.to_csv(index=False)
    record = cached("demo-json", 1, {}, lambda: {"x": [1, 2]})
    assert record == {"x": [1, 2]} and next(folder.glob("demo-json-*")).name.endswith(".json.gz")
    # a plain CSV written before compression existed is still found and read
    legacy = path.with_name(path.name[:-3])
    path.rename(legacy)
    legacy.write_text(frame.to_csv(index=False))
    pd.testing.assert_frame_equal(cached("demo", 1, {"k": 1}, lambda: 1 / 0), frame)


def test_runs_stored_with_a_plain_metrics_csv_still_load():
    import gzip
    run = store.load_or_train(TINY, progress=False)
    for folder in (paths.results_dir() / "runs" / run.key, paths.cache_dir() / "runs" / run.key):
        packed = folder / "metrics.csv.gz"
        (folder / "metrics.csv").write_bytes(gzip.decompress(packed.read_bytes()))
        packed.unlink()
    again = store.load_or_train(TINY, progress=False)
    pd.testing.assert_frame_equal(again.metrics, run.metrics)


def test_metrics_are_written_deterministically():
    run = store.load_or_train(TINY, progress=False)
    packed = (paths.results_dir() / "runs" / run.key / "metrics.csv.gz").read_bytes()
    assert packed[4:8] == b"\x00\x00\x00\x00"      # gzip mtime 0: equal tables, equal bytes
