"""modadd.detect: causality of every detector, the grokking-analysis framework's score by hand,
outcome bookkeeping and lead times on synthetic curves with known grokking steps."""
from __future__ import annotations

import numpy as np
import pytest

from modadd import detect as D


def _curve(grok_at: float | None, n: int = 60, every: int = 10, seed: int = 0) -> D.Series:
    """Synthetic run: memorises by step 100; held-out accuracy a logistic jump centred 50 steps
    before ``grok_at`` (reaching 0.99 at about ``grok_at``); held-out loss falls ahead of it;
    Σw² peaks at memorisation and decays towards grokking."""
    rng = np.random.default_rng(seed)
    steps = np.arange(n) * every
    train_acc = np.clip(steps / 100, 0, 1)
    train_loss = np.maximum(2.0 * (1 - train_acc), 0) + 1e-3 + 1e-5 * rng.random(n)
    if grok_at is None:
        test_acc = np.full(n, 0.02) + 0.002 * rng.random(n)
        test_loss = 5.0 + 0.5 * steps / steps[-1]
        weight = 1 + np.minimum(steps, 100) / 100
    else:
        centre = grok_at - 50
        test_acc = 1 / (1 + np.exp(-(steps - centre) / 10.9))
        test_loss = 5.0 / (1 + np.exp((steps - (centre - 60)) / 20)) + 0.01
        weight = 1 + np.minimum(steps, 100) / 100 - np.clip((steps - 100) / 400, 0, 0.9)
    fingerprint = np.stack([np.log(np.clip(test_acc, 1e-6, 1))] * 5, axis=1)
    return D.Series(steps, test_loss, test_acc, train_loss, train_acc, weight, fingerprint)


def test_every_detector_is_causal():
    series = _curve(400)
    for det in D.DETECTORS:
        full = det.score(series)
        for i, t in enumerate(series.steps):
            part = det.score(series.until(int(t)))
            assert len(part) == i + 1
            np.testing.assert_allclose(part, full[:i + 1], err_msg=det.name)


def test_seed002_score_by_hand():
    s = D.Series(np.arange(4), test_loss=np.array([4.0, 3.0, 2.0, 1.0]),
                 test_accuracy=np.zeros(4), train_loss=np.array([1.0, 1.0, 0.5, 0.5]),
                 train_accuracy=np.zeros(4))
    score = D.seed002_score(s, window=3)
    # window at index 3: test [3, 2, 1], train [1, .5, .5]
    t, r = np.array([3.0, 2, 1]), np.array([1.0, .5, .5])
    expected = (3 - 1) / 3 * (t.mean() / r.mean()) / (r.std() + 1e-8)
    assert score[3] == pytest.approx(expected)
    assert score[0] == 0.0          # a one-point window has no improvement
    # flat training loss: the denominator is 1e-8 and a tiny test-loss dip explodes the score
    flat = D.Series(np.arange(3), np.array([2.0, 2.0, 1.999]), np.zeros(3), np.full(3, 1e-3),
                    np.ones(3))
    assert D.seed002_score(flat, window=3)[-1] > 1e3


def test_grok_step_and_outcomes():
    s = _curve(400)
    g = D.grok_step(s)
    assert g is not None and abs(g - 400) <= 20
    steps = np.array([0, 10, 20, 30])
    assert D.outcomes(np.array([0, 1, 0, 0]), steps, 30, 0.5) == \
        {"fire": 10, "kind": "TP", "lead": 20.0}
    late = D.outcomes(np.array([0, 0, 0, 1]), steps, 30, 0.5)
    assert late["kind"] == "miss" and np.isnan(late["lead"])
    assert D.outcomes(np.array([0, 0, 1, 0]), steps, None, 0.5)["kind"] == "FP"
    assert D.outcomes(np.zeros(4), steps, None, 0.5)["kind"] == "TN"


def test_evaluation_on_synthetic_runs_gives_expected_lead_times():
    runs = {f"g{k}": _curve(g, seed=k) for k, g in enumerate((300, 400, 500))}
    runs |= {f"n{k}": _curve(None, seed=k) for k in range(3)}
    truth = {k: D.grok_step(s) for k, s in runs.items()}
    acc = D.Detector("acc 0.5", D.partial_accuracy, 0.5)
    per_run, summary, roc = D.evaluate_detectors([acc], runs, truth)
    row = summary.iloc[0]
    assert (row.TP, row.FP, row.miss, row.TN) == (3, 0, 0, 3)
    assert row.precision == 1 and row.recall == 1
    # accuracy 0.5 at the logistic's centre, 50 steps before 0.99 (resolution 10 steps)
    leads = per_run[per_run.kind == "TP"].lead
    assert ((leads >= 40) & (leads <= 60)).all()
    assert row["ROC AUC"] == pytest.approx(1.0)
    # a detector that fires everywhere at the start: recall 1, precision 1/2, FPR 1
    always = D.Detector("always", lambda s: np.ones(len(s.steps)), 0.5)
    s2 = D.evaluate_detectors([always], runs, truth)[1].iloc[0]
    assert s2.precision == pytest.approx(0.5) and s2["false-positive rate"] == 1
    assert s2["ROC AUC"] == pytest.approx(0.5)   # the chance diagonal (0,0)-(1,1)


def test_detectors_needing_missing_series_are_skipped():
    s = _curve(400)
    bare = D.Series(s.steps, s.test_loss, s.test_accuracy, s.train_loss, s.train_accuracy)
    weight = next(d for d in D.DETECTORS if "Σw²" in d.name)
    assert not weight.usable(bare) and weight.usable(s)
    with pytest.raises(ValueError, match="weight_sq"):
        D.weight_norm_decay(bare)
    per_run, summary, _ = D.evaluate_detectors([weight], {"a": bare, "b": s}, {"a": 400, "b": 400})
    assert summary.iloc[0].runs == 1


def test_series_validation_names_the_field():
    with pytest.raises(ValueError, match="test_loss"):
        D.Series(np.arange(3), np.zeros(2), np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match="steps"):
        D.Series(np.array([0, 2, 1]), *(np.zeros(3),) * 4)


def test_weight_norm_decay_counts_from_memorisation():
    steps = np.arange(6)
    s = D.Series(steps, np.ones(6), np.zeros(6), np.ones(6),
                 train_accuracy=np.array([0, 0, 1, 1, 1, 1.0]),
                 weight_sq=np.array([10.0, 5, 4, 6, 3, 6]))
    # before memorisation 0 (the fall from 10 to 5 is the initialisation's); then vs the peak
    # since step 2: 4 -> 0, 6 -> 0, 3 -> 1 - 3/6, 6 -> 0
    np.testing.assert_allclose(D.weight_norm_decay(s), [0, 0, 0, 0, 0.5, 0])


def test_fingerprint_dmd_growth_sees_an_accelerating_fingerprint():
    n = 30
    steps = np.arange(n) * 10
    growing = np.exp(0.1 * np.arange(n))[:, None] * np.linspace(1, 2, 5)[None, :]
    flat = np.ones((n, 5)) + 1e-3 * np.sin(np.arange(n))[:, None] * np.arange(5)[None, :]
    memorised = np.ones(n)
    kwargs = dict(test_loss=np.ones(n), test_accuracy=np.zeros(n), train_loss=np.ones(n),
                  train_accuracy=memorised)
    up = D.fingerprint_dmd_growth(D.Series(steps, fingerprint=growing, **kwargs))
    still = D.fingerprint_dmd_growth(D.Series(steps, fingerprint=flat, **kwargs))
    assert np.all(up[:14] == 0)                       # fewer than `window` records yet
    # a centred exponential: the rank-2 fit finds the growth factor e^0.1 (and the unit root)
    assert up[-1] == pytest.approx(np.exp(0.1) - 1, abs=1e-6)
    assert np.all(still[14:] < 0.02)                  # an oscillation: no growing mode
