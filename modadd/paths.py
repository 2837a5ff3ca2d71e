"""Every path the study uses, resolved from the package location (never the current folder).

``MODADD_RESULTS_DIR`` and ``MODADD_CACHE_DIR`` override the two data folders (tests point them
at temporary folders).
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def results_dir() -> Path:
    """Committed, small results the book is drawn from (``data/results``)."""
    return Path(os.environ.get("MODADD_RESULTS_DIR", ROOT / "data" / "results"))


def cache_dir() -> Path:
    """Git-ignored heavy artifacts: trajectories, checkpoints (``data/cache``)."""
    return Path(os.environ.get("MODADD_CACHE_DIR", ROOT / "data" / "cache"))


def training_allowed() -> bool:
    """False when ``MODADD_NO_TRAIN=1``: a cache miss must then fail at once."""
    return os.environ.get("MODADD_NO_TRAIN", "0") in ("", "0")
