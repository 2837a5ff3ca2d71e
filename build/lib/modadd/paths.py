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


NO_TRAIN_VARIABLE = "MODADD_NO_TRAIN"
_TRUE = ("1", "true", "yes")
_FALSE = ("", "0", "false", "no")


def training_allowed() -> bool:
    """False when ``MODADD_NO_TRAIN`` is 1/true/yes (any case): a cache miss must then fail at
    once.  Unset, empty, 0/false/no allow training; any other value is an error (a typo must
    not silently train, or silently forbid training)."""
    value = os.environ.get(NO_TRAIN_VARIABLE, "").strip().lower()
    if value in _TRUE:
        return False
    if value in _FALSE:
        return True
    raise ValueError(f"{NO_TRAIN_VARIABLE}: must be one of 1, true, yes (forbid training) or 0, "
                     f"false, no (allow it), got {os.environ[NO_TRAIN_VARIABLE]!r}")
