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
