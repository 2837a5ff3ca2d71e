"""Grokking detection: the ground truth, early-warning detectors that see only the past, and their
evaluation (lead time, precision, recall, ROC) over many runs.

A detector maps a run's :class:`Series` to one score per evaluation step, computed only from what
was known at that step (tested: truncating the series after step ``t`` leaves every score up to
``t`` unchanged).  It *fires* at the first evaluation whose score reaches its threshold.

Ground truth: the grokking step is the first evaluation with held-out accuracy ≥ ``threshold``
(default 0.99); its resolution is the evaluation interval.  A detector's firing is a **true
positive** if the run groks and the detector fires strictly before the grokking step, a **false
positive** if it fires in a run that never groks, and a **miss** if the run groks and the
detector stays silent until then (firing at or after the grokking step is no early warning).
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Callable, Optional

import numpy as np
import pandas as pd

from .grokking import first_step_at


@dataclass(frozen=True)
class Series:
    """What a detector may read about one run, each array indexed by evaluation (``steps``)."""

    steps: np.ndarray                          # [E] evaluation steps, increasing
    test_loss: np.ndarray                      # [E] held-out loss
    test_accuracy: np.ndarray                  # [E] held-out accuracy
    train_loss: np.ndarray                     # [E] training-split loss
    train_accuracy: np.ndarray                 # [E] training-split accuracy
    weight_sq: Optional[np.ndarray] = None     # [E] Σ w² over all parameters
    fingerprint: Optional[np.ndarray] = None   # [E, Q] held-out log-prob quantiles

    def __post_init__(self) -> None:
        n = len(self.steps)
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and len(value) != n:
                raise ValueError(f"{f.name}: must have one entry per evaluation step ({n}), "
                                 f"got {len(value)}")
        if n and np.any(np.diff(self.steps) <= 0):
            raise ValueError("steps: must be strictly increasing")

    def until(self, step: int) -> "Series":
        """The series as known at ``step``: evaluations at steps ≤ ``step`` only."""
        keep = self.steps <= step
        return replace(self, **{f.name: (None if getattr(self, f.name) is None
                                         else np.asarray(getattr(self, f.name))[keep])
                                for f in fields(self)})

    @classmethod
    def from_run(cls, run) -> "Series":
        """From a stored algorithmic run: its metrics table, and its fingerprints and Σw² when
        recorded (fingerprints are matched to evaluation steps; missing ones stay None)."""
        wide = run.metrics.pivot_table(index="step", columns="metric", values="value")
        steps = wide.index.to_numpy()
        weight_sq = wide["weight_sq"].to_numpy() if "weight_sq" in wide else None
        fingerprint = None
        try:
            arrays = run.fingerprints
        except FileNotFoundError:
            arrays = None
        if arrays is not None:
            where = {int(s): i for i, s in enumerate(arrays["steps"])}
            if all(int(s) in where for s in steps):
                fingerprint = arrays["heldout"][[where[int(s)] for s in steps]]
        return cls(steps, wide["loss"].to_numpy(), wide["accuracy"].to_numpy(),
                   wide["train_loss"].to_numpy(), wide["train_accuracy"].to_numpy(),
                   weight_sq, fingerprint)


def grok_step(series: Series, threshold: float = 0.99) -> Optional[int]:
    """:func:`modadd.grokking.grok_step` of a :class:`Series` (the same ground truth,
    :func:`modadd.grokking.first_step_at`, on its held-out accuracy)."""
    return first_step_at(series.steps, series.test_accuracy, threshold)


def _lag(values: np.ndarray, lag: int) -> np.ndarray:
    """``values[i - lag]`` (the first value where the history is shorter)."""
    index = np.maximum(np.arange(len(values)) - lag, 0)
    return np.asarray(values, float)[index]


def _rolling(values: np.ndarray, window: int, fn: Callable) -> np.ndarray:
    """``fn`` of the last ``window`` values up to and including each index (causal)."""
    values = np.asarray(values, float)
    return np.array([fn(values[max(0, i - window + 1):i + 1]) for i in range(len(values))])


# ---- detectors: Series -> scores [E], causal --------------------------------------------------
def seed002_score(series: Series, window: int = 10) -> np.ndarray:
    """The grokking-analysis framework's "early grokking score", re-implemented faithfully over
    the last ``window`` evaluations: ``(test[-w] − test[-1]) / test[-w] · mean(test[-w:]) /
    mean(train[-w:]) / (std(train[-w:]) + 1e-8)`` with ``test``/``train`` the held-out/training
    losses (population std, as numpy's default).  The framework flags a run when the score
    exceeds 0.1.  Its denominator vanishes once the training loss is flat after memorisation,
    so any small dip of the held-out loss makes it explode."""
    test, train = np.asarray(series.test_loss, float), np.asarray(series.train_loss, float)
    out = np.zeros(len(test))
    for i in range(len(test)):
        lo = max(0, i - window + 1)
        t, r = test[lo:i + 1], train[lo:i + 1]
        improvement = (t[0] - t[-1]) / t[0]
        out[i] = improvement * (t.mean() / r.mean()) / (r.std() + 1e-8)
    return out


def loss_trend(series: Series, window: int = 10) -> np.ndarray:
    """Fall of the log held-out loss over the last ``window`` evaluations, counted only once the
    training split is memorised (training accuracy ≥ 0.99; 0 before): the held-out loss turning
    down after memorisation is the precursor of grokking."""
    log_loss = np.log(np.maximum(np.asarray(series.test_loss, float), 1e-12))
    fall = _lag(log_loss, window - 1) - log_loss
    memorised = np.maximum.accumulate(np.asarray(series.train_accuracy) >= 0.99)
    return np.where(memorised, fall, 0.0)


def weight_norm_decay(series: Series) -> np.ndarray:
    """Relative fall of Σw² since memorisation: ``1 − Σw²(t) / max Σw²(s)`` over the evaluations
    ``s ≤ t`` at or after the first with training accuracy ≥ 0.99 (0 before).  Counting from
    memorisation skips the fall every weight-decayed run shows from its initialisation."""
    if series.weight_sq is None:
        raise ValueError("weight_sq: this detector needs Σw² recorded at every evaluation")
    w = np.asarray(series.weight_sq, float)
    memorised = np.maximum.accumulate(np.asarray(series.train_accuracy) >= 0.99)
    peak = np.maximum.accumulate(np.where(memorised, w, -np.inf))
    return np.where(memorised, 1.0 - w / np.where(memorised, peak, 1.0), 0.0)


def partial_accuracy(series: Series) -> np.ndarray:
    """Held-out accuracy itself: a baseline that fires when generalisation is already under way
    (its lead time says how gradual the transition is)."""
    return np.asarray(series.test_accuracy, float)


def fingerprint_rise(series: Series, window: int = 10) -> np.ndarray:
    """Rise of the median held-out log-prob of the correct answer (the fingerprint's middle
    quantile) over the last ``window`` evaluations, once the training split is memorised."""
    if series.fingerprint is None:
        raise ValueError("fingerprint: this detector needs fingerprints at every evaluation step")
    fp = np.asarray(series.fingerprint, float)
    median = fp[:, fp.shape[1] // 2]
    rise = median - _lag(median, window - 1)
    memorised = np.maximum.accumulate(np.asarray(series.train_accuracy) >= 0.99)
    return np.where(memorised, rise, 0.0)


def fingerprint_dmd_growth(series: Series, window: int = 15, n_delays: int = 3,
                           rank: int = 2) -> np.ndarray:
    """Largest DMD eigenvalue modulus minus 1 of the fingerprint over the last ``window``
    evaluations (centred, ``n_delays`` delays, rank-``rank`` RRR DMD), once the training split is
    memorised: a growing mode (> 0) means the fingerprint is accelerating."""
    from .dmd import data_matrices, rrr_dmd
    if series.fingerprint is None:
        raise ValueError("fingerprint: this detector needs fingerprints at every evaluation step")
    fp = np.asarray(series.fingerprint, float)
    memorised = np.maximum.accumulate(np.asarray(series.train_accuracy) >= 0.99)
    out = np.zeros(len(fp))
    for i in range(len(fp)):
        if not memorised[i] or i + 1 < window:
            continue
        Y = fp[i + 1 - window:i + 1]
        Y = (Y - Y.mean(axis=0)).T
        Z, Zp = data_matrices([Y], n_delays)
        if np.linalg.norm(Z) < 1e-9:
            continue
        top = min(rank, np.linalg.matrix_rank(Z))
        if top < 1:
            continue
        out[i] = float(np.abs(rrr_dmd(Z, Zp, top).eigenvalues).max()) - 1.0
    return out


@dataclass(frozen=True)
class Detector:
    """A named causal score with the threshold at which it fires."""

    name: str
    score: Callable[[Series], np.ndarray]
    threshold: float
    needs: tuple = ()          # optional Series fields the score reads
    signal: str = "held-out"   # "training" (reads only the training side) | "held-out"

    def usable(self, series: Series) -> bool:
        return all(getattr(series, name) is not None for name in self.needs)


FRAMEWORK_SCORE = "framework's score > 0.1"   # the grokking-analysis framework's detector

DETECTORS = (
    # the grokking-analysis framework's score: a 100-epoch window of full-batch training = 100
    # steps = 5 evaluations every 20 (the name is displayed only; no stored result holds it)
    Detector(FRAMEWORK_SCORE, lambda s: seed002_score(s, window=5), 0.1),
    Detector("held-out loss falls after memorisation", loss_trend, 0.1),
    Detector("Σw² 10% below its peak", weight_norm_decay, 0.1, ("weight_sq",), "training"),
    Detector("median answer log-prob rises", fingerprint_rise, 0.5, ("fingerprint",)),
    Detector("fingerprint DMD mode grows", fingerprint_dmd_growth, 0.02, ("fingerprint",)),
    Detector("held-out accuracy ≥ 0.5", partial_accuracy, 0.5),
)


def first_fire(scores: np.ndarray, steps: np.ndarray, threshold: float) -> Optional[int]:
    """Step of the first score ≥ ``threshold`` (None if never)."""
    hit = np.flatnonzero(np.asarray(scores) >= threshold)
    return None if hit.size == 0 else int(steps[hit[0]])


def outcomes(scores: np.ndarray, steps: np.ndarray, truth: Optional[int],
             threshold: float) -> dict:
    """One run's outcome for one threshold: ``fire`` step, ``kind`` ("TP", "FP", "miss", "TN")
    and ``lead`` (truth − fire for a TP, else NaN).  Only scores before ``truth`` count for a
    grokking run."""
    if truth is not None:
        early = np.asarray(steps) < truth
        fire = first_fire(np.asarray(scores)[early], np.asarray(steps)[early], threshold)
        kind = "TP" if fire is not None else "miss"
        lead = float(truth - fire) if fire is not None else np.nan
    else:
        fire = first_fire(scores, steps, threshold)
        kind, lead = ("FP" if fire is not None else "TN"), np.nan
    return {"fire": fire, "kind": kind, "lead": lead}


def summarize(table: pd.DataFrame) -> dict:
    """Precision, recall, false-positive rate and lead times from per-run outcome rows."""
    counts = table.kind.value_counts()
    tp, fp, miss, tn = (int(counts.get(k, 0)) for k in ("TP", "FP", "miss", "TN"))
    leads = table.loc[table.kind == "TP", "lead"].to_numpy(float)
    return {"TP": tp, "FP": fp, "miss": miss, "TN": tn,
            "precision": tp / (tp + fp) if tp + fp else np.nan,
            "recall": tp / (tp + miss) if tp + miss else np.nan,
            "false-positive rate": fp / (fp + tn) if fp + tn else np.nan,
            "median lead": float(np.median(leads)) if leads.size else np.nan,
            "mean lead": float(leads.mean()) if leads.size else np.nan}


def evaluate_detectors(detectors, series: dict, truth: dict, n_thresholds: int = 60
             ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Every detector on every run (``series``/``truth``: run id → Series / grok step or None).

    Returns ``(per_run, summary, roc)``: per-run outcomes at each detector's threshold; one
    summary row per detector (:func:`summarize`); and the ROC curve (recall against
    false-positive rate) over ``n_thresholds`` score quantiles, with its area.
    """
    per_run, summary, roc = [], [], []
    for det in detectors:
        usable = {k: s for k, s in series.items() if det.usable(s)}
        scores = {k: det.score(s) for k, s in usable.items()}
        rows = [{"detector": det.name, "run": k, "truth": truth[k],
                 **outcomes(scores[k], usable[k].steps, truth[k], det.threshold)}
                for k in usable]
        per_run += rows
        summary.append({"detector": det.name, "signal": det.signal,
                        "threshold": det.threshold, "runs": len(rows),
                        **summarize(pd.DataFrame(rows, columns=["kind", "lead"]))})
        pooled = np.concatenate([v for v in scores.values()]) if scores else np.array([])
        finite = pooled[np.isfinite(pooled)]
        levels = np.unique(np.quantile(finite, np.linspace(0, 1, n_thresholds))) \
            if finite.size else np.array([])
        curve = []
        for level in np.concatenate([[-np.inf], levels, [np.inf]]):
            s = summarize(pd.DataFrame([outcomes(scores[k], usable[k].steps, truth[k], level)
                                        for k in usable], columns=["fire", "kind", "lead"]))
            curve.append((s["false-positive rate"], s["recall"], level))
        curve = sorted(curve)
        for fpr, tpr, level in curve:
            roc.append({"detector": det.name, "threshold": level, "fpr": fpr, "tpr": tpr})
        xs = np.array([c[0] for c in curve], float)
        ys = np.array([c[1] for c in curve], float)
        ok = np.isfinite(xs) & np.isfinite(ys)
        summary[-1]["ROC AUC"] = float(np.trapezoid(ys[ok], xs[ok])) if ok.sum() > 1 else np.nan
    return pd.DataFrame(per_run), pd.DataFrame(summary), pd.DataFrame(roc)
