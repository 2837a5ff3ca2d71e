"""modadd.bubbling on a tiny run with full parameters, against direct recomputation."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import modadd.store as store
from modadd import bubbling as B
from modadd import metrics as M
from modadd.config import RunConfig, TrainConfig
from modadd.model import ModelConfig
from modadd.task import TaskConfig
from modadd.taskdata import probe_sets

TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=2, d_model=8, n_heads=2),
                 train=TrainConfig(lr=1e-2, batch_size=16, n_steps=30, snapshot_every=10,
                                   probe_size=32, checkpoint_every=30, store_full_params=True))


def test_profile_matches_direct_computation():
    profile = B.attention_profile(TINY, n_examples=16)
    run = store.load_or_train(TINY, trajectories=True, progress=False)
    assert len(profile) == 4 * 2 * 2 * 2          # snapshots x m x layers x heads
    batch = probe_sets(TINY)[2]
    model = run.model_at(2)
    with torch.no_grad():
        logits, cache = model.run_with_cache(batch.tokens[:16])
    attn = cache["attn"][1]
    row = profile[(profile.step == 20) & (profile.m == 2) & (profile.layer == 1)
                  & (profile["head"] == 0)].iloc[0]
    assert row.entropy == pytest.approx(float(M.attention_entropy(attn)[:, 0].mean()), rel=1e-5)
    assert row.top1 == pytest.approx(float(attn[:, 0, -1].max(-1).values.mean()), rel=1e-5)
    classes = M.position_classes(batch.marker_positions[:16], TINY.task.seq_len)
    values = (attn[:, 0, -1] * (classes == 2)).sum(-1).mean()
    assert row.mass_value == pytest.approx(float(values), rel=1e-5)
    total = row[["mass_marker", "mass_value", "mass_distractor", "mass_query"]].sum()
    assert total == pytest.approx(1.0, abs=1e-5)
    accuracy = float((logits.argmax(-1) == batch.labels[:16]).float().mean())
    assert row.accuracy == pytest.approx(accuracy)


def test_ablation_table_k_T_equals_plain_accuracy():
    table = B.ablation_table(TINY, fractions=(1.0,), n_examples=32)
    assert sorted(table.k.unique(), reverse=True) == [8, 4, 2, 1]
    profile = B.attention_profile(TINY, n_examples=32)
    plain = profile[(profile.step == 30) & (profile.layer == 0) & (profile["head"] == 0)]
    full = table[table.k == 8].set_index("m").accuracy
    np.testing.assert_allclose(full.sort_index().to_numpy(),
                               plain.set_index("m").accuracy.sort_index().to_numpy())


def test_transitions_per_group():
    metrics = pd.DataFrame({
        "step": np.tile(np.arange(0, 50, 10), 2), "m": 1, "layer": 0, "metric": "entropy",
        "seed": np.repeat([0, 1], 5),
        "value": [2, 2, 1, 0, 0, 2, 1, 0, 0, 1]})
    out = B.transitions(metrics).set_index("seed")
    assert out.loc[0, "width"] == 10 and out.loc[0, "rebound"] == 0
    assert out.loc[1, "start"] == 10 and out.loc[1, "end"] == 20 and out.loc[1, "rebound"] == 0.5


def test_readout_heatmaps_match_the_model():
    maps = B.readout_heatmaps(TINY, [0, 3], m=2, example=1)
    run = store.load_or_train(TINY, trajectories=True, progress=False)
    assert maps["attention"].shape == (2, 2 * 2, TINY.task.seq_len)
    np.testing.assert_array_equal(maps["steps"], [0, 30])
    with torch.no_grad():
        _, cache = run.model_at(3).run_with_cache(probe_sets(TINY)[2].tokens[1:2])
    np.testing.assert_allclose(maps["attention"][1][2], cache["attn"][1][0, 0, -1].numpy(),
                               rtol=1e-6)
    np.testing.assert_allclose(maps["attention"].sum(-1), 1.0, rtol=1e-5)
    assert sorted(set(maps["classes"].tolist())) == [0, 1, 2]
