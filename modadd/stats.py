"""Seed statistics: means with t-based 95% confidence intervals (numpy/scipy only)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def mean_ci(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of a Student-t interval over independent seeds; NaN bounds if n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    mean = float(x.mean())
    if x.size < 2:
        return (mean, np.nan, np.nan)
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return (mean, mean - half, mean + half)


def seed_summary(frame: pd.DataFrame, by: Sequence[str], value: str = "value",
                 confidence: float = 0.95) -> pd.DataFrame:
    """Mean, CI bounds and seed count of ``value`` per group ``by`` (one row per seed per group).

    Returns columns ``[*by, mean, low, high, n]``.
    """
    rows = []
    for group, part in frame.groupby(list(by), sort=True):
        mean, low, high = mean_ci(part[value].to_numpy(), confidence)
        group = group if isinstance(group, tuple) else (group,)
        rows.append((*group, mean, low, high, int(part[value].notna().sum())))
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])
