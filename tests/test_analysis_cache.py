"""The analysis cache's manifest: every result file has an entry naming its producer, from which
its key is recomputed; the committed results have no orphans and no dangling entries."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from modadd import analysis_cache, paths
from modadd.analysis_cache import MANIFEST, cached, manifest_problems, read_manifest


def _table():
    return pd.DataFrame({"a": [1, 2, 3]})


def test_a_computed_result_gets_its_entry_and_the_key_recomputes():
    cached("thing", 2, {"runs": ("k1", "k2"), "p": 0.5}, _table)
    cached("arrays", 1, {"n": 3}, lambda: {"x": np.arange(3.0)})
    manifest = read_manifest()
    assert sorted(e["name"] for e in manifest.values()) == ["arrays", "thing"]
    entry = next(e for e in manifest.values() if e["name"] == "thing")
    assert entry == {"name": "thing", "version": 2, "schema": 1,
                     "inputs": {"p": 0.5, "runs": ["k1", "k2"]}}
    assert manifest_problems() == {"orphans": [], "dangling": [], "mismatched": []}


def test_problems_name_orphans_dangling_and_mismatched_entries():
    cached("thing", 1, {}, _table)
    cached("other", 1, {}, _table)
    folder = paths.results_dir() / "analysis"
    (folder / "stray-0123456789abcdef.csv.gz").write_bytes(b"")
    manifest = json.loads((folder / MANIFEST).read_text())
    other = next(name for name in manifest if name.startswith("other-"))
    (folder / other).unlink()
    thing = next(name for name in manifest if name.startswith("thing-"))
    manifest[thing]["version"] = 7                  # no longer hashes to the file's key
    (folder / MANIFEST).write_text(json.dumps(manifest))
    assert manifest_problems() == {"orphans": ["stray-0123456789abcdef.csv.gz"],
                                   "dangling": [other], "mismatched": [thing]}


def test_a_read_without_an_entry_records_it_but_never_under_no_train(monkeypatch):
    cached("thing", 1, {}, _table)
    (paths.results_dir() / "analysis" / MANIFEST).unlink()
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    cached("thing", 1, {}, _table)
    assert not (paths.results_dir() / "analysis" / MANIFEST).exists()   # a build only reads
    monkeypatch.setenv(analysis_cache.RECORD_VARIABLE, "1")             # ... unless asked
    cached("thing", 1, {}, _table)
    assert [e["name"] for e in read_manifest().values()] == ["thing"]


def test_a_damaged_manifest_is_a_clear_error():
    cached("thing", 1, {}, _table)
    path = paths.results_dir() / "analysis" / MANIFEST
    path.write_text(path.read_text()[:10])
    with pytest.raises(analysis_cache.CorruptFile, match="manifest.json is damaged"):
        read_manifest()


def test_the_committed_results_have_a_complete_manifest(monkeypatch):
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(paths.ROOT / "data" / "results"))
    problems = manifest_problems()
    assert problems == {"orphans": [], "dangling": [], "mismatched": []}, problems
    assert len(read_manifest()) >= 100
