"""Seed statistics: t-based 95% intervals (optionally kept inside a quantity's range), Wilson
intervals, percentile bootstrap over independent units, one-sided t p-values, Holm adjustment;
and the small models chapter 11 cross-validates (penalised logistic and ridge regression, AUC,
R², leave-one-group-out predictions, block permutations)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
from scipy import optimize, stats


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


# ---- small models (chapter 11's cross-validation) ---------------------------------------------
def _standardize(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean, std = train.mean(axis=0), train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (train - mean) / std, (test - mean) / std


def fit_logistic(X: np.ndarray, y: np.ndarray, penalty: float = 1.0,
                 balanced: bool = True) -> np.ndarray:
    """L2-penalised logistic regression (intercept unpenalised): weights ``[1 + p]``
    minimising ``Σ c_i log(1 + e^{-s_i z_i}) + penalty/2 ||w||²``, s = ±1, with
    ``balanced`` class weights ``c_i = n / (2 n_{class(i)})`` (else 1).  Balancing keeps the
    intercept from following the class mix of the training folds: without it, leaving out a
    group of positives lowers the intercept exactly for them, which biases a pooled
    out-of-fold AUC below 0.5 for uninformative features.  A single-class ``y`` gives the
    intercept of its (clipped) base rate and zero slopes: a constant prediction, which ranks
    nothing (ties in an AUC)."""
    X1 = np.column_stack([np.ones(len(X)), X])
    y = np.asarray(y, bool)
    if y.all() or not y.any():      # one class: the (clipped) base rate, no slopes
        rate = np.clip(y.mean(), 1e-3, 1 - 1e-3)
        return np.r_[np.log(rate / (1 - rate)), np.zeros(X.shape[1])]
    s = np.where(y, 1.0, -1.0)
    c = np.where(y, len(y) / (2 * y.sum()), len(y) / (2 * (~y).sum())) if balanced \
        else np.ones(len(y))

    def loss(w):
        z = s * (X1 @ w)
        value = np.sum(c * np.logaddexp(0.0, -z)) + penalty / 2 * np.sum(w[1:] ** 2)
        grad = -(X1.T @ (c * s * _sigmoid(-z))) + penalty * np.r_[0.0, w[1:]]
        return value, grad
    result = optimize.minimize(loss, np.zeros(X1.shape[1]), jac=True, method="L-BFGS-B",
                               bounds=[(-30, 30)] + [(None, None)] * X.shape[1])
    return result.x


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(z / 2.0))


def fit_ridge(X: np.ndarray, y: np.ndarray, penalty: float = 1.0) -> np.ndarray:
    """Ridge regression (intercept unpenalised): weights ``[1 + p]``."""
    X1 = np.column_stack([np.ones(len(X)), X])
    P = penalty * np.eye(X1.shape[1])
    P[0, 0] = 0.0
    return np.linalg.solve(X1.T @ X1 + P, X1.T @ y)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC = P(score of a random positive > score of a random negative), ties ½
    (the Mann–Whitney statistic); NaN without both classes."""
    scores, labels = np.asarray(scores, float), np.asarray(labels, bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return np.nan
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def percentile(values, q: float) -> float:
    """``q``-th percentile of the finite ``values`` (NaN if none)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.percentile(values, q)) if values.size else np.nan


def r_squared(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Out-of-sample R² = 1 − SSE/SST around the mean of ``actual`` (can be negative)."""
    actual = np.asarray(actual, float)
    sst = np.sum((actual - actual.mean()) ** 2)
    return float(1.0 - np.sum((actual - np.asarray(predicted, float)) ** 2) / sst) \
        if sst > 0 else np.nan


def out_of_fold(X: np.ndarray, y_class: np.ndarray, y_value: np.ndarray,
                groups: np.ndarray, penalty: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-group-out predictions: (success probability, predicted final accuracy) for
    every run, each from models fitted on the other groups only (features standardised on
    the training folds)."""
    prob, value = np.empty(len(X)), np.empty(len(X))
    for g in np.unique(groups):
        test = groups == g
        train_X, test_X = _standardize(X[~test], X[test])
        w = fit_logistic(train_X, y_class[~test], penalty)
        prob[test] = _sigmoid(np.column_stack([np.ones(test.sum()), test_X]) @ w)
        v = fit_ridge(train_X, y_value[~test], penalty)
        value[test] = np.column_stack([np.ones(test.sum()), test_X]) @ v
    return prob, value


def block_permutation(blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices that give every block (equal-sized, runs in order of appearance) the outcomes
    of another block, whole: the null "outcomes belong to settings at random" when outcomes
    are shared within a setting.  Unequal block sizes fall back to a shuffle of single runs."""
    names, inverse, sizes = np.unique(blocks, return_inverse=True, return_counts=True)
    if len(set(sizes)) != 1:
        return rng.permutation(len(blocks))
    members = [np.flatnonzero(inverse == b) for b in range(len(names))]
    target = rng.permutation(len(names))
    out = np.empty(len(blocks), dtype=int)
    for b, t in enumerate(target):
        out[members[b]] = members[t]
    return out
