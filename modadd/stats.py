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


def wilson_ci(successes: int, trials: int, confidence: float = 0.95
              ) -> tuple[float, float, float]:
    """(proportion, low, high): the Wilson score interval of a binomial proportion (NaNs when
    ``trials`` is 0); better than the normal approximation at small ``trials`` or extreme rates."""
    if trials == 0:
        return (np.nan, np.nan, np.nan)
    if not 0 <= successes <= trials:
        raise ValueError(f"successes: must be in 0..{trials}, got {successes}")
    z = stats.norm.ppf(0.5 + confidence / 2)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return (p, max(0.0, centre - half), min(1.0, centre + half))
