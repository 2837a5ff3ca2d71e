"""modadd.arms: forgetting on hand-made metrics, MLP slices and Grams against numpy."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import modadd.store as store
from modadd import arms as A
from modadd.config import RunConfig, TrainConfig
from modadd.model import ModelConfig, build_model
from modadd.task import TaskConfig

MLP = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                model=ModelConfig(n_layers=2, d_model=8, n_heads=2, attention_only=False),
                train=TrainConfig(lr=1e-2, batch_size=16, n_steps=20, snapshot_every=5,
                                  probe_size=32, checkpoint_every=20, store_full_params=True))


def test_forgetting_is_peak_minus_final():
    rows = [(s, m, "accuracy", -1, v) for m, values in {1: [0.2, 1.0, 0.7], 2: [0.1, 0.4, 0.9]}
            .items() for s, v in zip((0, 10, 20), values)]
    rows.append((20, 1, "loss", -1, 9.0))
    table = A.forgetting(pd.DataFrame(rows, columns=["step", "m", "metric", "layer", "value"]))
    one, two = table.set_index("m").loc[1], table.set_index("m").loc[2]
    assert (one.peak, one.peak_step, one.final) == (1.0, 10, 0.7)
    assert one.forgetting == pytest.approx(0.3) and two.forgetting == 0.0
    with pytest.raises(ValueError, match="metrics"):
        A.forgetting(pd.DataFrame(rows[-1:], columns=["step", "m", "metric", "layer", "value"]))


def test_mlp_slices_address_the_mlp_weights():
    model = build_model(MLP.model, MLP.task, 0)
    flat = model.flat_parameters()
    slices = A.mlp_slices(model)
    assert len(slices) == 2 * MLP.model.n_layers
    np.testing.assert_array_equal(flat[slices[(1, "W_in")]].numpy(),
                                  model.blocks[1].mlp[0].weight.detach().reshape(-1).numpy())
    np.testing.assert_array_equal(flat[slices[(0, "W_out")]].numpy(),
                                  model.blocks[0].mlp[2].weight.detach().reshape(-1).numpy())
    attention_only = build_model(ModelConfig(n_layers=1, d_model=8, n_heads=2), MLP.task, 0)
    with pytest.raises(ValueError, match="attention-only"):
        A.mlp_slices(attention_only)


def test_mlp_increment_grams_match_numpy():
    grams = A.mlp_increment_grams(MLP)
    run = store.load_or_train(MLP, trajectories=True, progress=False)
    params = np.asarray(run.params, np.float64)
    where = A.mlp_slices(build_model(MLP.model, MLP.task, 0))[(1, "W_out")]
    steps = np.diff(params[:, where], axis=0)
    np.testing.assert_allclose(grams["increment_grams"][1, 1], steps @ steps.T, rtol=1e-5,
                               atol=1e-12)
    assert grams["dims"].tolist() == [4 * 8 * 8, 4 * 8 * 8]
    with pytest.raises(ValueError, match="store_full_params"):
        A.mlp_increment_grams(RunConfig())


TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=1, d_model=8, n_heads=2),
                 train=TrainConfig(lr=1e-2, batch_size=16, n_steps=20, snapshot_every=5,
                                   probe_size=32, checkpoint_every=20))


def numpy_rank(X: np.ndarray, threshold: float) -> int:
    """Centred PCA rank at ``threshold`` of the rows of X, straight from numpy's SVD."""
    s = np.linalg.svd(X - X.mean(0), compute_uv=False) ** 2
    return int(np.searchsorted(np.cumsum(s) / s.sum(), threshold - 1e-12) + 1)


def test_mlp_dimension_table_real_rank_matches_numpy():
    table = A.mlp_dimension_table([MLP], thresholds=(0.8, 0.9), null_draws=3)
    params = np.asarray(store.load_or_train(MLP, trajectories=True, progress=False).params,
                        np.float64)
    slices = A.mlp_slices(build_model(MLP.model, MLP.task, 0))
    for (layer, name), where in slices.items():
        X = params[:, where] - params[0, where]
        for threshold in (0.8, 0.9):
            row = table[(table.label == f"L{layer} {name}") & (table.source == "real")
                        & (table.threshold == threshold)]
            assert row["rank"].item() == numpy_rank(X, threshold)
    joint = np.concatenate([params[:, w] - params[0, w] for w in slices.values()], axis=1)
    real_all = table[(table.group == "all mlp") & (table.source == "real")
                     & (table.threshold == 0.9)]
    assert real_all["rank"].item() == numpy_rank(joint, 0.9)
    nulls = table[table.source != "real"]
    assert set(nulls.draw) == {0, 1, 2} and set(nulls.source) == {"random walk",
                                                                  "shuffled increments"}


def test_stage_starts_and_forgetting_table():
    from modadd.presets import curriculum
    cur = curriculum(TINY)
    assert A.stage_starts(cur) == [(0, 1), (10, 2)] and A.stage_starts(TINY) == []
    table = A.forgetting_table(A.arm_metrics({"mixed": [TINY], "curriculum": [cur]}))
    assert list(table.arm.unique()) == ["mixed", "curriculum"]
    run = store.load_or_train(cur, progress=False)
    direct = A.forgetting(run.metrics).set_index("m")
    mine = table[table.arm == "curriculum"].set_index("m")
    pd.testing.assert_series_equal(mine.forgetting, direct.forgetting)
    assert (table.forgetting >= 0).all()


def test_arm_angle_table_same_run_is_distance_zero():
    from dataclasses import replace
    seeds = [TINY, replace(TINY, seed=1)]
    table = A.arm_angle_table({"a": seeds, "b": seeds}, k=2, random_draws=3)
    same = table[table.comparison == "a vs b"]
    assert len(same) == 2 * 4 and np.allclose(same.distance, 0, atol=1e-6)
    across = table[table.comparison == "seeds: a"]
    assert len(across) == 4 and (across.distance > 0.1).all()
    assert (table.comparison == "random").sum() == 3
