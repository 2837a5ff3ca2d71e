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
