"""Seed statistics: t-based 95% intervals (optionally kept inside a quantity's range), Wilson
intervals, percentile bootstrap over independent units, one-sided t p-values, Holm adjustment."""
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


def clip_interval(ci: tuple[float, float, float], bounds: tuple[float, float]
                  ) -> tuple[float, float, float]:
    """``(mean, low, high)`` with both bounds cut to the quantity's range ``bounds`` (an accuracy
    cannot exceed 1, a distance cannot be negative); a cut bound says that the data are
    consistent with the edge of the range."""
    lo, hi = bounds
    if not lo <= hi:
        raise ValueError(f"bounds: need low <= high, got {bounds}")
    mean, low, high = ci
    return (mean, float(np.clip(low, lo, hi)) if np.isfinite(low) else low,
            float(np.clip(high, lo, hi)) if np.isfinite(high) else high)


def bounded_mean_ci(values: Sequence[float], bounds: tuple[float, float],
                    confidence: float = 0.95) -> tuple[float, float, float]:
    """The Student-t interval of :func:`mean_ci`, kept inside ``bounds``."""
    return clip_interval(mean_ci(values, confidence), bounds)


def one_sided_p(values: Sequence[float], direction: str = "greater") -> float:
    """One-sample t-test p-value of mean > 0 (``direction="greater"``) or mean < 0 ("less");
    NaN with fewer than two finite values; 0 or 1 for a sample that is constant (up to
    round-off) away from 0, 0.5 at 0."""
    if direction not in ("greater", "less"):
        raise ValueError(f"direction: must be 'greater' or 'less', got {direction!r}")
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size < 2:
        return float("nan")
    m = float(np.mean(x))
    if np.ptp(x) <= 1e-12 * max(1.0, abs(m)):     # constant up to round-off: no spread to test
        m = 0.0 if abs(m) <= 1e-12 else m
        if m == 0:
            return 0.5
        return 0.0 if (m > 0) == (direction == "greater") else 1.0
    return float(stats.ttest_1samp(x, 0.0, alternative=direction).pvalue)


def bootstrap_ci(values: Sequence[float], statistic=np.mean, n_boot: int = 10_000,
                 confidence: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(statistic, low, high): percentile bootstrap over the independent units in ``values``
    (resampled with replacement, ``seed`` fixed so the interval is reproducible)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return (np.nan, np.nan, np.nan)
    point = float(statistic(x))
    if x.size < 2:
        return (point, np.nan, np.nan)
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(x[rng.integers(0, x.size, x.size)]) for _ in range(n_boot)])
    alpha = (1 - confidence) / 2
    return (point, float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha)))


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (same order as ``pvalues``; NaNs stay NaN and do not
    count as tests): controls the family-wise error rate over the finite p-values."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    if finite.size == 0:
        return out
    if ((p[finite] < 0) | (p[finite] > 1)).any():
        raise ValueError("pvalues: every finite p-value must lie in [0, 1]")
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    adjusted = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adjusted, 1.0)
    return out
