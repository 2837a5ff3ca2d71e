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


