"""Chapter 11's machinery: the run grids, early features that see no future (a genuinely
truncated training run gives the same features), cross-validated scores against independent
computations, per-seed trends, and the late-window subspaces of question 3."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import manifold as MF
from modadd import metrics as M
from modadd import openq as Q
from modadd import stats as ST
from modadd.model import build_model
from modadd.config import stream_seed
from modadd.store import load_or_train, run_key
from modadd.train import snapshot_steps, train


def _prediction_cfg():
    """A smoke prediction run (diagnostics on) that moves enough to have rank > 1."""
    return Q.prediction_study("smoke")[0]


# ------------------------------------------------------------------------------------ grids

def test_grids_have_the_promised_shape_and_share_initial_weights():
    scale = Q.open_scale("book")
    roles = Q.scaling_study("book")
    assert len(roles["width"]) == len(scale.widths) * scale.seeds
    assert len(roles["depth"]) == len(scale.depths) * scale.seeds
    assert {c.model.d_model for c in roles["width"]} == set(Q.WIDTHS)
    assert {c.model.n_layers for c in roles["depth"]} == set(Q.DEPTHS)
    # the base shape is one run in both sweeps (trained once)
    shared = {run_key(c) for c in roles["width"]} & {run_key(c) for c in roles["depth"]}
    assert len(shared) == scale.seeds
    # multiplication = addition with op changed: same seed and shape -> same initial weights
    add, mul = roles["width"][7], roles["width mul"][7]
    assert (mul.task.op, add.task.op) == ("mul", "add") and mul.seed == add.seed
    a = build_model(add.model, add.task, stream_seed(add.seed, "init")).state_dict()
    b = build_model(mul.model, mul.task, stream_seed(mul.seed, "init")).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)
    runs = Q.prediction_study("book")
    assert len(runs) == len(scale.m_values) * len(scale.optimizers) * scale.prediction_seeds
    assert len({run_key(c) for c in runs}) == len(runs) >= 40
    assert {Q.setting_of(c) for c in runs} == set(scale.optimizers)
    assert all(c.train.diagnostics_every > 0 and c.train.schedule == "single" for c in runs)


def test_bad_names_are_refused_with_the_allowed_values():
    with pytest.raises(ValueError, match="scale: must be one of 'book', 'smoke'"):
        Q.open_scale("huge")
    with pytest.raises(ValueError, match="optimizer setting: must be one of"):
        Q.with_optimizer(Q.OPEN_BASE, "adam")
    with pytest.raises(ValueError, match="seeds: must be >= 1"):
        Q.scaling_study("smoke", 0)


# ---------------------------------------------------------------- early features: no future

def test_truncated_training_gives_the_same_features(tmp_path):
    cfg = _prediction_cfg()
    step = Q._window_step(cfg, 0.2)
    full = train(cfg, tmp_path / "full")
    cut = train(cfg, tmp_path / "cut", stop_after=step)     # training really ends at `step`
    assert np.isnan(cut["train_loss"][step:]).all()
    steps = snapshot_steps(cfg)

    def record(logs, folder):
        snaps = np.load(folder / "snapshots.npy", mmap_mode="r")
        return Q.RunRecord.build(cfg.train.n_steps, logs["train_loss"], logs["grad_norm"],
                                 steps, snaps, pd.DataFrame(logs["metrics"]))

    whole = record(full, tmp_path / "full")
    partial = record(cut, tmp_path / "cut")
    assert Q.early_features(whole, step) == Q.early_features(partial, step)
    # and the window ends where it says: one more step of the full run does change them
    assert Q.early_features(whole, step + cfg.train.snapshot_every) != \
        Q.early_features(whole, step)


def test_features_ignore_everything_after_the_window_and_read_what_is_before():
    cfg = _prediction_cfg()
    record = Q.RunRecord.from_run(load_or_train(cfg, trajectories=True, progress=False))
    step = Q._window_step(cfg, 0.15)
    reference = Q.early_features(record, step)
    # scramble the future: losses, gradients, diagnostics and increments after `step`
    loss, grad = record.train_loss.copy(), record.grad_norm.copy()
    loss[step:], grad[step:] = 1e9, 1e-9
    diag = record.diagnostics.copy()
    diag.loc[diag.step >= step, "value"] = -7.0
    gram = record.increment_gram.copy()
    k = int(np.searchsorted(record.snapshot_steps, step, side="right")) - 1   # increments so far
    gram[k:, :] = gram[:, k:] = 123.0
    future = Q.RunRecord(record.n_steps, loss, grad, record.snapshot_steps, gram, diag)
    assert Q.early_features(future, step) == reference
    # a change before the window does show
    loss[step - 1] += 10.0
    changed = Q.RunRecord(record.n_steps, loss, grad, record.snapshot_steps, gram, diag)
    assert Q.early_features(changed, step)["train_loss"] != reference["train_loss"]


def test_feature_values_against_independent_computations():
    cfg = _prediction_cfg()
    run = load_or_train(cfg, trajectories=True, progress=False)
    record = Q.RunRecord.from_run(run)
    step = Q._window_step(cfg, 0.2)
    got = Q.early_features(record, step, smooth=5)
    # r90 / PR: SVD of the stacked attention weights, W_t - W_0 for snapshots t <= step, centred
    keep = run.snapshot_steps <= step
    X = np.asarray(run.snapshots, np.float64)[keep].reshape(keep.sum(), -1)
    X = X - X[0]
    X = X - X.mean(axis=0)
    s2 = np.linalg.svd(X, compute_uv=False) ** 2
    ratios = s2 / s2.sum()
    assert got["r90_so_far"] == np.searchsorted(np.cumsum(ratios), 0.9 - 1e-9) + 1
    assert got["pr_so_far"] == pytest.approx(s2.sum() ** 2 / np.sum(s2 ** 2), rel=1e-9)
    log = run.train_log
    before = log[log.step <= step]          # train_log row s = the loss of update s (1-based)
    assert got["train_loss"] == pytest.approx(before.loss.iloc[-5:].mean())
    grads = before.grad_norm.iloc[-5:].to_numpy()
    assert got["log_grad_norm"] == pytest.approx(np.log(grads.mean()))
    assert got["grad_norm_cv"] == pytest.approx(grads.std() / grads.mean())
    m = run.metrics
    ent = m[(m.metric == "attn_entropy") & (m.layer == cfg.model.n_layers - 1)]
    last = ent.step[ent.step < step].max()
    assert got["attn_entropy"] == pytest.approx(ent[ent.step == last].value.mean()
                                                / ent[ent.step == 0].value.mean())
    wsq = m[m.metric == "weight_sq"].set_index("step").value
    assert got["weight_growth"] == pytest.approx(wsq[last] / wsq[0])


def test_window_steps_and_bad_windows():
    cfg = Q.OPEN_BASE
    assert [Q._window_step(cfg, f) for f in (0.1, 0.15, 0.2)] == [200, 300, 400]
    record = Q.RunRecord(100, np.zeros(100), np.ones(100), np.array([0, 50, 100]),
                         np.eye(2), pd.DataFrame(columns=["step", "metric", "layer", "name",
                                                          "value"]))
    with pytest.raises(ValueError, match="step: must be in 1..100"):
        Q.early_features(record, 0)
    with pytest.raises(ValueError, match="needs >= 3 snapshots"):
        Q.early_features(record, 60)


# ----------------------------------------------------------------------- scores and models

def test_auc_is_the_mann_whitney_statistic():
    rng = np.random.default_rng(0)
    scores = np.round(rng.normal(size=40), 1)       # rounded: ties
    labels = rng.random(40) < 0.4
    u = stats.mannwhitneyu(scores[labels], scores[~labels]).statistic
    assert Q.auc(scores, labels) == pytest.approx(u / (labels.sum() * (~labels).sum()))
    assert Q.auc([0.1, 0.2, 0.9], [False, False, True]) == 1.0
    assert Q.auc([0.9, 0.2, 0.1], [False, False, True]) == 0.0
    assert np.isnan(Q.auc([0.1, 0.2], [True, True]))


def test_r_squared_and_ridge_against_closed_forms():
    actual = np.array([1.0, 2.0, 3.0, 4.0])
    assert Q.r_squared(actual, actual) == 1.0
    assert Q.r_squared(np.full(4, actual.mean()), actual) == pytest.approx(0.0)
    assert Q.r_squared(actual[::-1], actual) == pytest.approx(1 - 20 / 5)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(30, 3)), rng.normal(size=30)
    w0 = np.linalg.lstsq(np.column_stack([np.ones(30), X]), y, rcond=None)[0]
    np.testing.assert_allclose(ST.fit_ridge(X, y, penalty=0.0), w0, atol=1e-10)
    # penalty: slopes shrink, the intercept does not (centred X: intercept = mean y)
    Xc = X - X.mean(axis=0)
    w = ST.fit_ridge(Xc, y, penalty=5.0)
    assert w[0] == pytest.approx(y.mean())
    np.testing.assert_allclose(w[1:], np.linalg.solve(Xc.T @ Xc + 5 * np.eye(3),
                                                      Xc.T @ (y - y.mean())), atol=1e-10)


def test_logistic_recovers_known_coefficients_and_handles_one_class():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20000, 2))
    truth = np.array([-0.5, 1.5, -1.0])
    y = rng.random(20000) < 1 / (1 + np.exp(-(truth[0] + X @ truth[1:])))
    np.testing.assert_allclose(ST.fit_logistic(X, y, penalty=1e-6, balanced=False), truth,
                               atol=0.08)
    # balanced weights: the slopes stay, the intercept no longer follows the class mix —
    # doubling every negative leaves the balanced fit unchanged and moves the plain one
    twice = np.r_[np.arange(len(y)), np.flatnonzero(~y)]
    np.testing.assert_allclose(ST.fit_logistic(X[twice], y[twice], 1e-6),
                               ST.fit_logistic(X, y, 1e-6), atol=1e-4)
    plain = ST.fit_logistic(X[twice], y[twice], 1e-6, balanced=False)
    assert plain[0] == pytest.approx(truth[0] - np.log(2), abs=0.1)
    w = ST.fit_logistic(X[:10], np.zeros(10, bool))
    assert np.all(w[1:] == 0) and w[0] < -5          # constant "no": ranks nothing


def test_cross_validation_finds_a_real_signal_and_not_a_fake_one():
    rng = np.random.default_rng(3)
    rows = []
    for cell in range(8):
        for seed in range(5):
            signal = rng.normal()
            rows.append({"key": f"{cell}-{seed}", "m": cell, "optimizer": "x", "seed": seed,
                         "fraction": 0.1, "signal": signal, "noise": rng.normal(),
                         "final_accuracy": 1 / (1 + np.exp(-3 * signal))})
    table = pd.DataFrame(rows).assign(success=lambda f: f.final_accuracy >= 0.5)
    scores, predictions = Q.cross_validate(table, {"noise": ["noise"], "signal": ["signal"]},
                                           bootstrap=200, permutations=50)
    noise, signal = scores.iloc[0], scores.iloc[1]
    assert signal.AUC > 0.95 and signal["AUC low"] > signal["AUC null 95%"]
    assert signal["ΔAUC low"] > 0 and signal["R²"] > 0.8
    assert noise["AUC low"] < 0.5 < noise["AUC high"] or noise.AUC < 0.65
    assert len(predictions) == 2 * len(table)


def test_out_of_fold_predictions_never_see_their_own_group():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(12, 1))
    groups = np.repeat(np.arange(4), 3)
    y = X[:, 0] > 0
    value = X[:, 0].copy()
    prob, pred = Q.out_of_fold(X, y, value, groups)
    # change group 0's outcomes: its own predictions must not move, the others' must
    value2, y2 = value.copy(), y.copy()
    value2[groups == 0] += 100.0
    prob2, pred2 = Q.out_of_fold(X, y2, value2, groups)
    np.testing.assert_array_equal(pred[groups == 0], pred2[groups == 0])
    assert not np.allclose(pred[groups != 0], pred2[groups != 0])


# ---------------------------------------------------------------------------------- trends

def test_trend_is_the_per_seed_least_squares_slope():
    rows = [{"seed": s, "width": w, "r": 2.0 + 0.5 * np.log2(w) + 0.1 * s}
            for s in range(3) for w in (32, 64, 128, 256)]
    fit = Q.trend(pd.DataFrame(rows), "width", "r", log2=True)
    assert fit["slope"] == pytest.approx(0.5) and fit["n"] == 3
    assert fit["low"] == pytest.approx(0.5) and fit["high"] == pytest.approx(0.5)
    flat = Q.trend(pd.DataFrame([{"seed": s, "x": x, "r": 3.0} for s in range(3)
                                 for x in (1, 2, 3)]), "x", "r")
    assert flat["slope"] == 0.0 and flat["high"] == 0.0


def test_dimension_sweep_matches_the_manifold_tables():
    cfgs = Q.scaling_study("smoke", 1)["width"]
    table = Q.dimension_sweep(cfgs, null_draws=2)
    real = table[(table.source == "real") & (table.group == "block")]
    reference = MF.dimension_table(cfgs[:1], thresholds=(0.9,), null_draws=0)
    reference = reference[(reference.group == "block") & (reference.source == "real")]
    mine = real[real.key == run_key(cfgs[0])].set_index("label")["rank"]
    np.testing.assert_array_equal(mine.loc[reference.label].to_numpy(),
                                  reference["rank"].to_numpy())
    per_run = Q.per_run_dimensions(table)
    assert set(per_run.width) == set(Q.open_scale("smoke").widths)
    row = per_run[(per_run.key == run_key(cfgs[0])) & (per_run.source == "real")].iloc[0]
    assert row.block_r90 == pytest.approx(mine.mean())


# ------------------------------------------------------------------------- question 3

def test_late_window_and_final_subspace():
    assert MF.late_window(61, 0.25) == slice(45, 61)
    assert MF.late_window(61, 1.0) == slice(0, 61)
    assert MF.late_window(5, 0.01) == slice(3, 5)           # at least two snapshots
    with pytest.raises(ValueError, match="last_fraction: must be in"):
        MF.late_window(10, 0.0)
    # a trajectory that moves along e1 early and e2 late: the final subspace is e2
    n, D = 21, 6
    X = np.zeros((n, D))
    X[:11, 0] = np.arange(11)
    X[11:, 0] = 10
    X[11:, 1] = np.arange(1, 11)
    late = M.top_subspace(X[MF.late_window(n, 0.4)], 1)
    assert abs(late[0, 1]) == pytest.approx(1.0)
    whole = M.top_subspace(X, 1)
    assert abs(whole[0, 1]) < 0.99


def test_whole_trajectory_angle_cache_keys_are_unchanged(monkeypatch):
    seen = []
    monkeypatch.setattr(MF, "cached", lambda name, version, inputs, compute: seen.append(inputs))
    cfg = Q.OPEN_BASE
    MF.pair_angle_table({"a": cfg}, [("x", "a", "a")], k=2)
    MF.pair_angle_table({"a": cfg}, [("x", "a", "a")], k=2, last_fraction=0.25)
    assert "last_fraction" not in seen[0] and seen[1]["last_fraction"] == 0.25
    assert {k: v for k, v in seen[1].items() if k != "last_fraction"} == seen[0]


def test_block_permutation_moves_whole_blocks():
    rng = np.random.default_rng(5)
    blocks = np.repeat(["a", "b", "c", "d"], 3)
    y = np.repeat([1, 2, 3, 4], 3)
    for _ in range(20):
        order = Q.block_permutation(blocks, rng)
        permuted = y[order]
        assert sorted(permuted) == sorted(y)
        assert all(len(set(permuted[blocks == b])) == 1 for b in "abcd")   # whole blocks
    uneven = np.array(["a", "a", "b"])
    assert sorted(Q.block_permutation(uneven, rng)) == [0, 1, 2]


def test_balanced_cv_gives_chance_auc_for_a_useless_feature():
    # outcomes shared within cells, a feature with no information: the pooled
    # leave-one-cell-out AUC of an unbalanced fit is biased low; the balanced one is not
    rng = np.random.default_rng(6)
    cells, seeds = 12, 4
    y = np.repeat(np.arange(cells) < 5, seeds)
    X = rng.normal(size=(cells * seeds, 1))
    groups = np.repeat(np.arange(cells), seeds)
    aucs = []
    for draw in range(10):
        X = rng.normal(size=(cells * seeds, 1))
        aucs.append(Q.auc(Q.out_of_fold(X, y, y.astype(float), groups)[0], y))
    assert 0.35 < np.mean(aucs) < 0.65
