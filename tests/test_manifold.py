"""modadd.manifold on real (tiny) runs, against direct numpy recomputation from snapshots."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

import modadd.store as store
from modadd import manifold as MF
from modadd import metrics as M
from modadd.config import RunConfig, TrainConfig
from modadd.model import MATRIX_NAMES, ModelConfig
from modadd.presets import constant_lr, single_m, study_configs
from modadd.task import TaskConfig

TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=2, d_model=8, n_heads=2),
                 train=TrainConfig(lr=1e-2, batch_size=16, n_steps=40, snapshot_every=4,
                                   probe_size=16, checkpoint_every=40))


@pytest.fixture
def runs():
    cfgs = [TINY, TINY.with_seed(1)]
    return {c.seed: store.load_or_train(c, trajectories=True, progress=False) for c in cfgs}


def test_grams_match_snapshots(runs):
    run = runs[0]
    G, H, steps = MF.block_grams(run.config)
    snaps = np.asarray(run.snapshots, np.float64)
    assert G.shape == (2, 4, 11, 11) and H.shape == (2, 4, 10, 10)
    np.testing.assert_array_equal(steps, np.arange(0, 41, 4))
    for layer in range(2):
        for b in range(4):
            X = M.trajectory_matrix(snaps[:, layer, b])
            np.testing.assert_allclose(G[layer, b], X @ X.T, rtol=1e-5, atol=1e-8)


def test_dimension_table_real_rows_match_direct_r90(runs):
    table = MF.dimension_table([r.config for r in runs.values()], null_draws=2)
    real = table[(table.source == "real") & (table.threshold == 0.9)]
    snaps = np.asarray(runs[1].snapshots, np.float64)
    for layer in range(2):
        for b, name in enumerate(MATRIX_NAMES):
            row = real[(real.seed == 1) & (real.layer == layer) & (real.matrix == name)]
            assert row["rank"].item() == M.r90(M.trajectory_matrix(snaps[:, layer, b]))
    everything = np.concatenate([M.trajectory_matrix(snaps[:, l, b])
                                 for l in range(2) for b in range(4)], axis=1)
    joint = real[(real.seed == 1) & (real.group == "all")]
    assert joint["rank"].item() == M.r90(everything)
    assert joint.participation.item() == pytest.approx(
        M.participation_ratio(M.pca_spectrum(everything)), rel=1e-6)
    # 2 runs x (8 blocks + 2 layers + 1 joint) x (1 + 2 x 2 nulls) x 3 thresholds
    assert len(table) == 2 * 11 * 5 * 3
    assert set(table.source) == {"real", "random walk", "shuffled increments"}


def test_nulls_are_reproducible_and_seeded(runs):
    cfgs = [r.config for r in runs.values()]
    a = MF.dimension_table(cfgs, null_draws=3)
    b = MF.dimension_table(cfgs, null_draws=3)
    pd.testing.assert_frame_equal(a, b)
    means = MF.null_means(a)
    assert len(means) == len(a[a.draw == 0])


def test_time_resolved_last_growing_window_is_the_whole_trajectory(runs):
    table = MF.time_resolved([runs[0].config], window=4, min_snapshots=3)
    snaps = np.asarray(runs[0].snapshots, np.float64)
    last = table[table.step == 40]
    for row in last.itertuples():
        X = M.trajectory_matrix(snaps[:, row.layer, MATRIX_NAMES.index(row.matrix)])
        assert row.growing == M.r90(X) == row.k
        assert row.sliding == M.r90(X[-4:])
    assert table[table.step < 8].growing.isna().all()


def test_lock_in_of_a_straight_line_is_immediate():
    G = M.gram(np.outer(np.arange(6.0), np.ones(4)))
    outside = M.outside_fraction_from_gram(G, 1)
    assert M.lock_in_index(outside, MF.LOCK_IN_LEVEL) == 0


def test_angle_table_matches_direct_principal_angles(runs):
    singles = {(m, s): single_m(runs[s].config, m) for m in (1, 2) for s in (0, 1)}
    table = MF.angle_table({s: r.config for s, r in runs.items()}, singles, k=2,
                           random_draws=4)
    counts = table.comparison.value_counts()
    assert counts["seed"] == 8                 # one seed pair x 8 blocks
    assert counts["layer"] == 2 * 4            # 2 runs x one layer pair x 4 matrices
    assert counts["m (same seed)"] == 2 * 8 and counts["seed (same m)"] == 2 * 8
    assert counts["random"] == 4
    snaps = [np.asarray(runs[s].snapshots, np.float64) for s in (0, 1)]
    row = table[(table.comparison == "seed") & (table.layer == 1) & (table.matrix == "W_V")]
    bases = [M.top_subspace(M.trajectory_matrix(s[:, 1, 2]), 2) for s in snaps]
    assert row.distance.item() == pytest.approx(M.subspace_distance(*bases), abs=1e-9)


def test_study_configs_roles():
    roles = study_configs("smoke", seeds=3, single_m_seeds=2)
    assert [c.seed for c in roles["main"]] == [0, 1, 2]
    assert all(c.train.lr_schedule == "constant" and c.train.warmup_steps == 0
               for c in roles["constant lr"])
    assert {c.train.lr for c in roles["original lr"]} == {3e-4}
    assert sorted((c.train.single_m, c.seed) for c in roles["single m"]) == \
        [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert constant_lr(TINY).train.lr == TINY.train.lr
    full = roles["full params"]
    assert [c.train.store_full_params for c in full] == [True] * 3
    assert [replace(c, train=replace(c.train, store_full_params=False)) for c in full] == \
        roles["main"]


def test_subsample_spacings():
    even = MF.subsample(61, 7, "even")
    np.testing.assert_array_equal(even, [0, 10, 20, 30, 40, 50, 60])
    log = MF.subsample(61, 7, "log")
    assert log[0] == 0 and log[-1] == 60
    assert np.all(np.diff(log) > 0) and np.all(np.diff(np.diff(log)) >= 0)   # dense early
    with pytest.raises(ValueError, match="spacing"):
        MF.subsample(61, 7, "random")


def test_sensitivity_full_count_equals_the_dimension_table(runs):
    cfgs = [runs[0].config]
    sens = MF.snapshot_sensitivity(cfgs, counts=(11,), thresholds=(0.9,), null_draws=1)
    dims = MF.dimension_table(cfgs, thresholds=(0.9,), null_draws=1)
    real = sens[(sens.source == "real") & (sens.spacing == "even")].set_index(["layer", "matrix"])
    ref = dims[(dims.source == "real") & (dims.group == "block")].set_index(["layer", "matrix"])
    pd.testing.assert_series_equal(real["rank"].astype(float).sort_index(),
                                   ref["rank"].astype(float).sort_index())


# ------------------------------------------------------------- dense snapshots (issue 22)

DENSE_TINY = replace(TINY, train=replace(TINY.train, n_steps=40, snapshot_every=8,
                                         dense_every=2, dense_until=16))


def test_outside_fraction_against_a_subset_matches_explicit_projection():
    """Rows outside the basis are measured against the top-k uncentred subspace of the basis
    rows: the Gram-only formula against an explicit SVD and projection; all rows as the basis
    gives outside_fraction_from_gram."""
    rng = np.random.default_rng(0)
    X = np.cumsum(rng.standard_normal((13, 40)) * np.linspace(2, 0.2, 13)[:, None], axis=0)
    X[0] = 0.0                                      # W_0 - W_0: a zero row (NaN)
    basis = np.zeros(13, bool)
    basis[::3] = True
    G = X @ X.T
    for k in (1, 2, 4):
        _, _, vt = np.linalg.svd(X[basis], full_matrices=False)
        P = vt[:k].T @ vt[:k]
        norms = np.linalg.norm(X, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            expected = np.linalg.norm(X - X @ P, axis=1) / norms
        got = M.outside_fraction_against(G, k, basis)
        assert np.isnan(got[0]) and np.isnan(expected[0])
        np.testing.assert_allclose(got[1:], expected[1:], atol=1e-6)   # sqrt of rounding
        np.testing.assert_allclose(M.outside_fraction_against(G, k, np.ones(13, bool)),
                                   M.outside_fraction_from_gram(G, k), atol=1e-6)
    with pytest.raises(ValueError, match="k: must be in"):
        M.outside_fraction_against(G, 6, basis)


def test_regular_matched_norms_keep_each_regular_interval():
    """Within each regular interval the dense norms are rescaled by one factor so that their
    squares sum to the real regular displacement's square."""
    regular = np.array([1, 0, 0, 1, 0, 1, 1], bool)      # intervals of 3, 2 and 1 dense steps
    dense = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 0.5])
    reg = np.array([6.0, 10.0, 2.0])
    out = MF.regular_matched_norms(dense, reg, regular)
    np.testing.assert_allclose(out[:3] / dense[:3], 6.0 / 3.0)           # sqrt(1 + 4 + 4) = 3
    np.testing.assert_allclose(out[3:5] / dense[3:5], 10.0 / 5.0)        # sqrt(9 + 16) = 5
    np.testing.assert_allclose(out[5], 2.0)
    sums = [np.sum(out[:3] ** 2), np.sum(out[3:5] ** 2), out[5] ** 2]
    np.testing.assert_allclose(sums, reg ** 2)


def test_dense_lock_in_regular_grid_is_the_regular_runs_and_bounds_the_dense_one():
    """On a dense-snapshot run, the regular grid's lock-in (real and every null draw) equals
    lock_in_table of the same run without the dense phase (identical training, the same null
    stream on the same norms); the dense lock-in lies within one regular interval before it
    and no later than the regular snapshot after it."""
    regular_run, dense_cfg = replace(DENSE_TINY, train=replace(
        DENSE_TINY.train, dense_every=0, dense_until=0)), DENSE_TINY
    table = MF.dense_lock_in_table([dense_cfg], null_draws=3)
    plain = MF.lock_in_table([regular_run], null_draws=3)
    reg = table[table.grid == "regular"].reset_index(drop=True)
    cols = ["seed", "layer", "matrix", "source", "draw", "k"]
    pd.testing.assert_frame_equal(reg[cols], plain[cols])
    np.testing.assert_allclose(reg.lock_in, plain.lock_in)
    every, total = dense_cfg.train.snapshot_every, dense_cfg.train.n_steps
    real = table[table.source == "real"].pivot_table(index=["layer", "matrix"], columns="grid",
                                                     values="step")
    ok = real.dropna()
    assert len(ok) > 0
    assert (ok["dense"] > ok["regular"] - every).all()
    assert (ok["regular"] <= np.minimum(np.ceil(ok["dense"] / every) * every, total)).all()
    # the regular-matched null's real rows are the dense grid's real rows
    np.testing.assert_array_equal(real["dense"].to_numpy(),
                                  real["dense, regular-matched null"].to_numpy())
    curves = MF.dense_outside_curves([dense_cfg], null_draws=3)
    assert set(curves.step) == set(range(0, 17, 2)) | set(range(0, 41, 8))
    assert curves.regular.sum() == len(set(range(0, 41, 8))) * 2 * 4
    with pytest.raises(ValueError, match="has no dense snapshots"):
        MF.dense_lock_in(regular_run, null_draws=1)


def test_replicated_angle_table_pairs(monkeypatch):
    """Seeds below kept_from keep angle_table's call (same cache key); the pairs among the later
    seeds are added; none across the two groups."""
    calls = {}

    def fake_angle_table(mixed, single, k, random_draws):
        calls["base"] = sorted(single)
        return pd.DataFrame({"comparison": ["seed"], "a": ["x"], "b": ["y"]})

    def fake_pairs(named, pairs, k, random_draws, seed):
        calls["pairs"], calls["draws"] = pairs, random_draws
        return pd.DataFrame({"comparison": [p[0] for p in pairs], "a": [p[1] for p in pairs],
                             "b": [p[2] for p in pairs]})
    monkeypatch.setattr(MF, "angle_table", fake_angle_table)
    monkeypatch.setattr(MF, "pair_angle_table", fake_pairs)
    single = {(m, s): TINY.with_seed(s) for m in (1, 2) for s in range(5)}
    out = MF.replicated_angle_table({0: TINY}, single, k=2, random_draws=7, kept_from=2)
    assert calls["base"] == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert calls["draws"] == 0
    same_m = [p for p in calls["pairs"] if p[0] == "seed (same m)"]
    same_seed = [p for p in calls["pairs"] if p[0] == "m (same seed)"]
    assert len(same_m) == 2 * 3 and len(same_seed) == 3          # C(3, 2) per m; one per seed
    assert all(int(a.split(" s")[1]) >= 2 and int(b.split(" s")[1]) >= 2
               for _, a, b in calls["pairs"])
    assert len(out) == 1 + 9
    # nothing added without later seeds
    single = {k: v for k, v in single.items() if k[1] < 2}
    assert len(MF.replicated_angle_table({0: TINY}, single, k=2, kept_from=2)) == 1
