"""Attention metrics on hand-made patterns, and top-k ablation against the unablated model."""
from __future__ import annotations

import math

import pytest
import torch

from modadd import metrics as M
from modadd.model import ModelConfig, build_model
from modadd.task import TaskConfig, sample_batch


def causal_uniform(batch=2, heads=3, length=6):
    """Uniform attention over the visible (causal) keys of every row."""
    mask = torch.ones(length, length).tril()
    return (mask / mask.sum(-1, keepdim=True)).expand(batch, heads, length, length).clone()


def with_last_row(row):
    attn = causal_uniform(1, 1, len(row))
    attn[0, 0, -1] = torch.tensor(row)
    return attn


def test_entropy_closed_forms():
    attn = causal_uniform(length=8)
    torch.testing.assert_close(M.attention_entropy(attn), torch.full((2, 3), math.log(8)))
    torch.testing.assert_close(M.attention_entropy(attn, normalize=True), torch.ones(2, 3))
    torch.testing.assert_close(M.attention_entropy(attn, query=2), torch.full((2, 3), math.log(3)))
    torch.testing.assert_close(M.attention_entropy(attn, query=2, normalize=True),
                               torch.ones(2, 3))
    assert M.attention_entropy(attn, query=0, normalize=True).abs().max() == 0
    one_hot = with_last_row([0, 0, 1.0, 0])
    assert M.attention_entropy(one_hot).item() == pytest.approx(0.0, abs=1e-6)
    mixture = with_last_row([0.5, 0.25, 0.25, 0])
    assert M.attention_entropy(mixture).item() == pytest.approx(1.5 * math.log(2))


def test_top_k_mass_closed_forms():
    attn = causal_uniform(length=8)
    for k in (1, 3, 8, 20):
        torch.testing.assert_close(M.top_k_mass(attn, k), torch.full((2, 3), min(k, 8) / 8))
    mixture = with_last_row([0.1, 0.5, 0.15, 0.25])
    assert M.top_k_mass(mixture, 1).item() == pytest.approx(0.5)
    assert M.top_k_mass(mixture, 2).item() == pytest.approx(0.75)
    assert M.top_k_mass(with_last_row([0, 1.0, 0, 0]), 1).item() == 1.0
    with pytest.raises(ValueError, match="k"):
        M.top_k_mass(mixture, 0)


def test_position_classes_and_class_mass_hand_case():
    markers = torch.tensor([[1, 4], [2, -1]])
    classes = M.position_classes(markers, seq_len=7, query_token=True)
    assert classes.tolist() == [[0, 1, 2, 0, 1, 2, 3], [0, 0, 1, 2, 0, 0, 3]]
    attn = causal_uniform(2, 1, 7)
    attn[0, 0, -1] = torch.tensor([0.0, 0.1, 0.6, 0.0, 0.0, 0.2, 0.1])
    mass = M.class_mass(attn, classes)
    torch.testing.assert_close(mass[0, 0], torch.tensor([0.0, 0.1, 0.8, 0.1]))
    torch.testing.assert_close(mass[1, 0], torch.tensor([4 / 7, 1 / 7, 1 / 7, 1 / 7]))
    torch.testing.assert_close(mass.sum(-1), torch.ones(2, 1))


def test_position_classes_match_sampled_batches():
    task = TaskConfig(T=12, C=5, m_values=(1, 3))
    batch = sample_batch(task, 64, generator=torch.Generator().manual_seed(0))
    classes = M.position_classes(batch.marker_positions, task.seq_len)
    markers = torch.tensor(task.marker_tokens)
    assert torch.isin(batch.tokens[classes == 1], markers).all()
    assert (batch.tokens[classes == 2] < task.C).all()
    assert torch.isin(batch.tokens[classes == 0], task.distractor_tokens).all()
    assert ((classes == 1).sum(1) == batch.m).all()


def test_top_k_patterns_keep_the_largest_weights_renormalised():
    attn = with_last_row([0.1, 0.5, 0.15, 0.25])
    cut = M.top_k_patterns(attn, 2)
    torch.testing.assert_close(cut[0, 0, -1], torch.tensor([0, 0.5, 0, 0.25]) / 0.75)
    torch.testing.assert_close(cut.sum(-1), torch.ones(1, 1, 4))
    assert (cut[0, 0, 0] == attn[0, 0, 0]).all()          # a row with one visible key
    assert M.top_k_patterns(attn, 4) is attn and M.top_k_patterns(attn, 9) is attn
    one = M.top_k_patterns(causal_uniform(1, 1, 5) + torch.rand(1, 1, 5, 5) * 1e-3, 1)
    assert ((one > 0).sum(-1) == 1).all()


def test_top_k_ablation_with_k_T_is_exact_and_k1_changes_the_model():
    task = TaskConfig(T=10, C=5, m_values=(1, 2))
    model = build_model(ModelConfig(n_layers=2, d_model=16, n_heads=2), task, seed=3).eval()
    batch = sample_batch(task, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = model(batch.tokens)
    assert torch.equal(M.top_k_ablation_logits(model, batch.tokens, task.seq_len), reference)
    assert not torch.allclose(M.top_k_ablation_logits(model, batch.tokens, 1), reference)


def test_transition_window_hand_case():
    import numpy as np
    steps = np.arange(0, 110, 10)
    values = np.array([10, 10, 9, 7, 5, 3, 1, 0, 0, 1, 2], float)   # drop 10, rebound 2
    out = M.transition_window(steps, values)
    assert (out["start"], out["mid"], out["end"]) == (20, 40, 60)
    assert out["width"] == 40 and out["rebound"] == pytest.approx(0.2) and out["drop"] == 10
    flat = M.transition_window(steps, np.ones(11))
    assert np.isnan(flat["width"])


def test_pearson_ci_against_scipy():
    import numpy as np
    from scipy import stats
    rng = np.random.default_rng(0)
    x = rng.standard_normal(30)
    y = x + rng.standard_normal(30)
    r, low, high, n = M.pearson_ci(x, y)
    assert r == pytest.approx(stats.pearsonr(x, y)[0]) and n == 30
    ci = stats.pearsonr(x, y).confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high), abs=1e-3)
    assert np.isnan(M.pearson_ci(x[:3], y[:3])[1])
