"""Model: shapes, a by-hand attention recomputation, hooks, causality, parameter counts, FLOPs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from modadd.model import (MATRIX_NAMES, ModelConfig, build_model, count_flops_per_step,
                          readout_entropy)
from modadd.task import TaskConfig, sample_batch

TASK = TaskConfig(T=8, C=5, m_values=(1, 2))
CFG = ModelConfig(n_layers=2, d_model=32, n_heads=4)


@pytest.fixture
def model():
    return build_model(CFG, TASK, seed=0)


@pytest.fixture
def tokens():
    return sample_batch(TASK, 6, None, generator=torch.Generator().manual_seed(1)).tokens


def test_shapes_rows_sum_to_one_and_causal(model, tokens):
    logits, cache = model.run_with_cache(tokens)
    assert logits.shape == (6, TASK.C)
    assert len(cache["resid"]) == CFG.n_layers + 1 and len(cache["attn"]) == CFG.n_layers
    assert all(r.shape == (6, TASK.T, CFG.d_model) for r in cache["resid"])
    for attn in cache["attn"]:
        assert attn.shape == (6, CFG.n_heads, TASK.T, TASK.T)
        torch.testing.assert_close(attn.sum(-1), torch.ones(6, CFG.n_heads, TASK.T))
        assert (attn.triu(1) == 0).all()
    torch.testing.assert_close(model(tokens), logits)


def test_layer0_attention_recomputed_by_hand(model, tokens):
    """Embeddings → LayerNorm → W_Q, W_K (+ biases) → masked softmax, in numpy."""
    d, h, dh = CFG.d_model, CFG.n_heads, CFG.d_head
    x = (model.embed.weight[tokens] + model.pos_embed.weight[:TASK.T]).detach().numpy()
    ln = model.blocks[0].ln_attn
    normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + ln.eps)
    normed = normed * ln.weight.detach().numpy() + ln.bias.detach().numpy()
    bias = model.blocks[0].attn.qkv.bias.detach().numpy()
    w_q = model.attention_matrix(0, "W_Q").detach().numpy()
    w_k = model.attention_matrix(0, "W_K").detach().numpy()
    q = (normed @ w_q.T + bias[:d]).reshape(6, TASK.T, h, dh).transpose(0, 2, 1, 3)
    k = (normed @ w_k.T + bias[d:2 * d]).reshape(6, TASK.T, h, dh).transpose(0, 2, 1, 3)
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    scores = np.where(np.triu(np.ones((TASK.T, TASK.T)), 1) > 0, -np.inf, scores)
    expected = np.exp(scores - scores.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    _, cache = model.run_with_cache(tokens)
    np.testing.assert_allclose(cache["attn"][0].detach().numpy(), expected, atol=1e-5)


def test_named_matrices_are_views_in_documented_order(model):
    stacked = model.attention_matrices()
    assert stacked.shape == (CFG.n_layers, 4, CFG.d_model, CFG.d_model)
    for layer in range(CFG.n_layers):
        qkv = model.blocks[layer].attn.qkv.weight
        for i, name in enumerate(MATRIX_NAMES[:3]):
            assert torch.equal(stacked[layer, i], qkv[i * 32:(i + 1) * 32])
        assert torch.equal(stacked[layer, 3], model.blocks[layer].attn.out.weight)
    with torch.no_grad():
        model.attention_matrix(1, "W_V").zero_()
    assert (model.blocks[1].attn.qkv.weight[64:96] == 0).all()
    with pytest.raises(ValueError, match="name: must be one of"):
        model.attention_matrix(0, "W_X")


def test_parameter_counts_closed_form():
    d, vocab, T, C, layers = 32, TASK.vocab_size, TASK.T, TASK.C, 2
    attn_block = 2 * d + (3 * d * d + 3 * d) + (d * d + d)
    common = vocab * d + T * d + 2 * d + (d * C + C)
    attention_only = build_model(ModelConfig(layers, d, 4, True), TASK, 0)
    assert not any("mlp" in n for n, _ in attention_only.named_parameters())
    assert sum(p.numel() for p in attention_only.parameters()) == common + layers * attn_block
    with_mlp = build_model(ModelConfig(layers, d, 4, False), TASK, 0)
    mlp_block = 2 * d + (d * 4 * d + 4 * d) + (4 * d * d + d)
    assert sum(p.numel() for p in with_mlp.parameters()) == \
        common + layers * (attn_block + mlp_block)


def test_identity_hook_bit_identical_and_additive_hook_edits(model, tokens):
    base, _ = model.run_with_cache(tokens)
    same, _ = model.run_with_cache(tokens, resid_hooks={1: lambda r: r.clone()})
    assert torch.equal(base, same)
    shift = torch.randn(CFG.d_model)
    edited, cache = model.run_with_cache(tokens, resid_hooks={1: lambda r: r + shift})
    _, clean = model.run_with_cache(tokens)
    torch.testing.assert_close(cache["resid"][1], clean["resid"][1] + shift)
    assert not torch.allclose(edited, base)


def test_final_layer_hook_acts_only_through_readout(model, tokens):
    """Editing non-readout positions after the last block cannot change the logits."""
    def edit_all_but_last(resid):
        resid = resid.clone()
        resid[:, :-1] += 10.0
        return resid
    base, _ = model.run_with_cache(tokens)
    after, _ = model.run_with_cache(tokens, resid_hooks={CFG.n_layers: edit_all_but_last})
    assert torch.equal(base, after)
    inner, _ = model.run_with_cache(tokens, resid_hooks={1: edit_all_but_last})
    assert not torch.allclose(base, inner)
    for bad in (3, -1):
        with pytest.raises(ValueError, match="layer must be in 0..2"):
            model.run_with_cache(tokens, resid_hooks={bad: lambda r: r})


def test_final_layer_hook_on_readout_changes_logits_by_hand(model, tokens):
    """A hook after the last block feeds ln_final → head at the readout, recomputed by hand."""
    shift = torch.linspace(-1, 1, CFG.d_model)
    logits, cache = model.run_with_cache(tokens, resid_hooks={CFG.n_layers: lambda r: r + shift})
    _, clean = model.run_with_cache(tokens)
    torch.testing.assert_close(cache["resid"][CFG.n_layers], clean["resid"][CFG.n_layers] + shift)
    readout = clean["resid"][CFG.n_layers][:, -1] + shift
    expected = F.linear(F.layer_norm(readout, (CFG.d_model,), model.ln_final.weight,
                                     model.ln_final.bias, model.ln_final.eps),
                        model.head.weight, model.head.bias)
    torch.testing.assert_close(logits, expected)


def test_attention_override_replaces_pattern(model, tokens):
    uniform = torch.tril(torch.ones(TASK.T, TASK.T))
    uniform = (uniform / uniform.sum(-1, keepdim=True)).expand(6, CFG.n_heads, -1, -1)
    _, cache = model.run_with_cache(tokens, attn_overrides={0: uniform})
    assert torch.equal(cache["attn"][0], uniform)


def test_causality(model, tokens):
    changed = tokens.clone()
    changed[:, 5] = (changed[:, 5] + 1) % TASK.vocab_size
    _, a = model.run_with_cache(tokens)
    _, b = model.run_with_cache(changed)
    for layer in range(CFG.n_layers + 1):
        assert torch.equal(a["resid"][layer][:, :5], b["resid"][layer][:, :5])
        assert not torch.equal(a["resid"][layer][:, 5:], b["resid"][layer][:, 5:])


def test_build_model_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = build_model(CFG, TASK, seed=7)
    after = torch.rand(3)
    assert torch.equal(expected, after)
    b = build_model(CFG, TASK, seed=7)
    c = build_model(CFG, TASK, seed=8)
    assert torch.equal(a.flat_parameters(), b.flat_parameters())
    assert not torch.equal(a.flat_parameters(), c.flat_parameters())


def test_readout_entropy_values():
    attn = torch.softmax(torch.randn(3, 2, 5, 5, generator=torch.Generator().manual_seed(0)),
                         dim=-1)
    row = attn[:, :, -1].numpy()
    np.testing.assert_allclose(readout_entropy(attn).numpy(), -(row * np.log(row)).sum(-1),
                               rtol=1e-5)
    uniform_first_k = torch.zeros(1, 1, 5, 5)
    uniform_first_k[..., -1, :3] = 1 / 3
    torch.testing.assert_close(readout_entropy(uniform_first_k), torch.full((1, 1), math.log(3)))


def test_wrong_token_shape_rejected(model):
    with pytest.raises(ValueError, match=r"tokens: expected shape \[B, 8\]"):
        model(torch.zeros(2, 9, dtype=torch.long))


def test_flops_hand_count():
    cfg = ModelConfig(n_layers=1, d_model=4, n_heads=2)
    # per token: QKV 3*16 + O 16 MACs; attention: 2 * T * d MACs per token; head d*C MACs at 1 token
    T, C, B = 3, 2, 5
    macs = B * (T * (3 * 16 + 16) + 2 * T * T * 4 + 4 * C)
    assert count_flops_per_step(cfg, T, C, B) == 3 * 2 * macs
    mlp = ModelConfig(n_layers=1, d_model=4, n_heads=2, attention_only=False)
    assert count_flops_per_step(mlp, T, C, B) - count_flops_per_step(cfg, T, C, B) == \
        3 * 2 * B * T * 2 * 4 * 16


def test_flat_offset_locates_each_parameter():
    from modadd.model import ModelConfig, build_model
    from modadd.task import TaskConfig
    model = build_model(ModelConfig(n_layers=1, d_model=8, n_heads=2), TaskConfig(T=8, C=5,
                        m_values=(1, 2)), 0)
    flat = model.flat_parameters()
    for p in model.parameters():
        start = model.flat_offset(p)
        assert torch.equal(flat[start:start + p.numel()], p.detach().reshape(-1))
    import pytest
    with pytest.raises(ValueError, match="param"):
        model.flat_offset(torch.zeros(3))


def test_nanda_init_matches_his_parameter_layout_and_scales():
    """Nanda et al.'s 1-layer model (p=113, d=128, d_mlp=512): 226 816 parameters (his
    transformers.py: W_E, W_pos, W_Q/K/V/O, W_in, b_in, W_out, b_out, W_U); every weight's
    variance 1/d (the head's 1/(p+1)), every bias zero, Σw² near his ~1781."""
    from modadd.algorithmic import AlgorithmicTask
    task = AlgorithmicTask(p=113, train_fraction=0.3, operator_token=False,
                           readout_all_tokens=True)
    cfg = ModelConfig(1, 128, 4, attention_only=False, layer_norm=False, activation="relu",
                      d_mlp=512, init="nanda", biases="mlp")
    model = build_model(cfg, task, seed=0)
    d, p1 = 128, 114
    expected = p1 * d + 3 * d + 4 * d * d + (512 * d + 512) + (d * 512 + d) + d * p1
    assert sum(p.numel() for p in model.parameters()) == expected == 226_816
    named = dict(model.named_parameters())
    assert {n for n in named if n.endswith("bias")} == {"blocks.0.mlp.0.bias",
                                                         "blocks.0.mlp.2.bias"}
    for name, p in named.items():
        if name.endswith("bias"):
            assert float(p.abs().max()) == 0.0
        else:
            var = 1 / p1 if name.startswith("head") else 1 / d
            assert float(p.double().var()) == pytest.approx(var, rel=0.1), name
    # E Σw² = Σ_tensors n_entries × variance = 114 + 3 + 4·128 + 512 + 512 + 128 = 1781
    assert model.weight_sq() == pytest.approx(1781, rel=0.03)
    default = build_model(ModelConfig(1, 128, 4, attention_only=False, layer_norm=False,
                                      d_mlp=512), task, seed=0)
    assert default.weight_sq() > 5 * model.weight_sq()


def test_nanda_init_keeps_layer_norm_gains_and_lean_forward_without_biases(tokens):
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, attention_only=False, init="nanda",
                      biases="mlp")
    model = build_model(cfg, TASK, seed=3)
    assert float(model.ln_final.weight.min()) == 1.0 == float(model.ln_final.weight.max())
    assert model.blocks[1].attn.qkv.bias is None and model.head.bias is None
    torch.testing.assert_close(model.lean_logits(tokens), model(tokens), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("field,value", [("init", "xavier"), ("biases", "some")])
def test_init_and_bias_options_are_validated(field, value):
    with pytest.raises(ValueError, match=f"{field}: must be one of"):
        ModelConfig(**{field: value})


def test_post_ln_block_recomputed_by_hand(tokens):
    """openai/grok's block, written out: a1 = LN(x + attn(x)), a2 = LN(a1 + mlp(a1)), no final
    LN, no linear biases, a fixed sinusoidal table added to the token embeddings."""
    cfg = ModelConfig(n_layers=1, d_model=32, n_heads=4, attention_only=False, activation="relu",
                      biases="none", norm_position="post", positions="sinusoidal")
    model = build_model(cfg, TASK, seed=2)
    assert not any(n.endswith("bias") and "ln_" not in n for n, _ in model.named_parameters())
    assert model.pos_embed is None and "pos_table" in dict(model.named_buffers())
    d, h, dh, T = 32, 4, 8, TASK.T
    table = np.array([[math.sin(t / 10000 ** (i / d)) if i % 2 == 0
                       else math.cos(t / 10000 ** ((i - 1) / d)) for i in range(d)]
                      for t in range(T)])
    np.testing.assert_allclose(model.pos_table.numpy(), table, atol=1e-6)
    block = model.blocks[0]

    def layer_norm(x, ln):
        normed = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + ln.eps)
        return normed * ln.weight.detach().numpy() + ln.bias.detach().numpy()

    x = model.embed.weight[tokens].detach().numpy() + table
    w = {n: model.attention_matrix(0, n).detach().numpy() for n in MATRIX_NAMES}
    q, k, v = ((x @ w[n].T).reshape(6, T, h, dh).transpose(0, 2, 1, 3)
               for n in ("W_Q", "W_K", "W_V"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(dh)
    scores = np.where(np.triu(np.ones((T, T)), 1) > 0, -np.inf, scores)
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    mixed = (probs @ v).transpose(0, 2, 1, 3).reshape(6, T, d)
    a1 = layer_norm(x + mixed @ w["W_O"].T, block.ln_attn)
    w_in, w_out = (block.mlp[i].weight.detach().numpy() for i in (0, 2))
    a2 = layer_norm(a1 + np.maximum(a1 @ w_in.T, 0) @ w_out.T, block.ln_mlp)
    expected = a2[:, -1] @ model.head.weight.detach().numpy().T
    np.testing.assert_allclose(model(tokens).detach().numpy(), expected, atol=1e-4)
    torch.testing.assert_close(model.lean_logits(tokens), model(tokens), rtol=1e-5, atol=1e-5)


def test_post_ln_two_layers_lean_forward_matches(tokens):
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, attention_only=False,
                      norm_position="post", positions="sinusoidal", biases="none")
    model = build_model(cfg, TASK, seed=4)
    torch.testing.assert_close(model.lean_logits(tokens), model(tokens), rtol=1e-5, atol=1e-5)
    attn_only = build_model(ModelConfig(n_layers=2, d_model=32, n_heads=4,
                                        norm_position="post"), TASK, seed=4)
    torch.testing.assert_close(attn_only.lean_logits(tokens), attn_only(tokens), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("field,value", [("norm_position", "sandwich"),
                                         ("positions", "rotary")])
def test_norm_and_position_options_are_validated(field, value):
    with pytest.raises(ValueError, match=f"{field}: must be one of"):
        ModelConfig(**{field: value})


def test_post_ln_without_layer_norm_is_refused():
    with pytest.raises(ValueError, match="norm_position: 'post' needs layer_norm=True"):
        ModelConfig(norm_position="post", layer_norm=False)


@pytest.mark.parametrize("options", [{}, {"norm_position": "post", "positions": "sinusoidal",
                                          "biases": "none"}], ids=["pre-LN", "post-LN"])
def test_sequence_logits_read_every_position_and_past_the_readout(options):
    """``sequence_logits``: its last row is the readout of ``forward``; with one extra embedded
    position (``eos_target``) the row at the readout of a longer input equals ``forward`` of the
    shorter one (causality), and the row after it is that of the longer input alone."""
    from modadd.model import Transformer
    torch.manual_seed(3)
    cfg = ModelConfig(n_layers=2, d_model=32, n_heads=4, **options)
    model = Transformer(cfg, vocab_size=11, seq_len=5, n_classes=11, n_positions=6).eval()
    short = torch.randint(11, (4, 5))
    long = torch.cat([short, torch.randint(11, (4, 1))], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model.sequence_logits(short)[:, -1], model(short),
                                   rtol=1e-6, atol=1e-6)
        rows = model.sequence_logits(long)
        torch.testing.assert_close(rows[:, -2], model(short), rtol=1e-6, atol=1e-6)
        other = torch.cat([short, (long[:, -1:] + 1) % 11], dim=1)
        assert not torch.allclose(model.sequence_logits(other)[:, -1], rows[:, -1])
        torch.testing.assert_close(model.sequence_logits(other)[:, -2], rows[:, -2])
    with pytest.raises(ValueError, match=r"tokens: expected shape \[B, T\] with 1 <= T <= 6"):
        model.sequence_logits(torch.zeros(2, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="n_positions: must be >= seq_len=5"):
        Transformer(cfg, vocab_size=11, seq_len=5, n_classes=11, n_positions=4)
