"""Every test runs in its own results/cache folders, training allowed, one torch thread."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def isolated_store(tmp_path, monkeypatch):
    """Point the run cache at temporary folders so no test touches data/."""
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setenv("MODADD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MODADD_NO_TRAIN", raising=False)
    torch.set_num_threads(1)
    yield tmp_path



# Longest tests first (seconds on 2 cores, measured with --durations): with pytest-xdist a long
# test that starts last leaves the other worker idle at the end of the run.
SLOW_FIRST = {"test_notebooks.py::test_notebook_runs_at_smoke_preset[11_open_questions]": 56,
              "test_ledger.py::test_the_book_ledger_from_the_committed_caches": 53,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[09_grokking_fingerprints]": 42,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[03_execution_manifold]": 37,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[05_commutators]": 35,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[02_training]": 34,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[10_grokking_diagnostics]": 30,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[06_sae_probing]": 30,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[04_attention_bubbling]": 25,
              "test_precision.py::test_validation_end_to_end_on_smoke_runs": 23,
              "test_notebooks.py::test_notebook_runs_at_smoke_preset[07_architecture_curriculum]": 21,
              "test_sweep.py::test_run_resume_and_collect": 17}


def pytest_collection_modifyitems(items):
    """Run the tests of :data:`SLOW_FIRST` first, longest first; the rest keep their order."""
    def cost(item) -> int:
        return -SLOW_FIRST.get(item.nodeid.split("/", 1)[-1], 0)
    items.sort(key=cost)
