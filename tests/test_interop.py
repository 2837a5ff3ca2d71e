"""modadd.interop: our models in TransformerLens and back.

The weight maps are checked without TransformerLens (exact round trip; the attention pattern
recomputed by hand in TL's conventions from the mapped weights).  With TransformerLens installed
(the ``interop`` extra; ``make unit`` sets ``MODADD_REQUIRE_INTEROP=1`` so CI never skips), TL's
own forward, an independent implementation, must give our readout logits and our cache to 1e-5
on random weights of every convertible architecture, on a trained run, and on the book's main
run where its weights are in the local cache."""
from __future__ import annotations

import dataclasses
import math
import os

import numpy as np
import pytest
import torch

from modadd import interop, paths
from modadd.algorithmic import AlgorithmicTask
from modadd.config import RunConfig, TrainConfig
from modadd.grokking import grokking_preset
from modadd.model import ModelConfig, Transformer
from modadd.presets import preset
from modadd.task import TaskConfig

TOL = 1e-5
# this checkout's run cache, read before conftest points every test at a temporary store
LOCAL_CACHE = os.environ.get("MODADD_CACHE_DIR", str(paths.ROOT / "data" / "cache"))
ARCHITECTURES = {   # name: (model config, vocab, seq_len, classes, n_positions)
    "marker task (book)": (preset("book").model, preset("book").task.vocab_size,
                           preset("book").task.seq_len, preset("book").task.n_classes, None),
    "mlp + relu": (ModelConfig(n_layers=2, d_model=16, n_heads=4, attention_only=False,
                               activation="relu", d_mlp=24), 13, 5, 11, None),
    "nanda (no LN, MLP biases only)": (ModelConfig(n_layers=1, d_model=16, n_heads=4,
                                                    attention_only=False, layer_norm=False,
                                                    activation="relu", biases="mlp"),
                                       14, 3, 14, None),
    "no biases, sinusoidal": (ModelConfig(n_layers=2, d_model=16, n_heads=2, biases="none",
                                          positions="sinusoidal", attention_only=False),
                              13, 6, 13, None),
    "end-token loss (one more position)": (ModelConfig(n_layers=2, d_model=16, n_heads=4),
                                           13, 6, 13, 7),
}


def _random_model(name: str, seed: int = 0) -> Transformer:
    """The architecture with every parameter moved off its init at the init's scale (LayerNorm
    gains and shifts too, so a swapped or dropped LayerNorm weight shows)."""
    cfg, vocab, seq_len, classes, n_positions = ARCHITECTURES[name]
    torch.manual_seed(seed)
    model = Transformer(cfg, vocab, seq_len, classes, n_positions)
    with torch.no_grad():       # off by about half their init's spread (0.1 for LayerNorm's)
        for p in model.parameters():
            spread = float(p.std()) if p.numel() > 1 and float(p.std()) > 0 else 0.2
            p.add_(0.5 * spread * torch.randn_like(p))
    return model.eval()


def _tokens(model: Transformer, n: int = 64, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, model.embed.num_embeddings, (n, model.seq_len), generator=generator)


@pytest.fixture(scope="module")
def tl():
    try:
        import transformer_lens
    except ImportError:
        if os.environ.get("MODADD_REQUIRE_INTEROP") == "1":
            pytest.fail("TransformerLens is not installed (make venv installs the interop extra)")
        pytest.skip("TransformerLens is not installed (pip install -e '.[interop]')")
    return transformer_lens


# ---- the maps, without TransformerLens ---------------------------------------------------------
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_the_weight_maps_are_inverse_bit_for_bit(name):
    model = _random_model(name)
    back = interop.modadd_state_dict(interop.tl_state_dict(model), model)
    state = model.state_dict()
    assert set(back) == set(state)
    assert all(torch.equal(back[k], state[k]) for k in state)


def test_the_mapped_weights_give_our_attention_in_tl_conventions():
    """Layer 0's attention pattern and residual update recomputed by hand from the TL-named
    weights (TL's einsum conventions: W_Q [H, d, dh], W_O [H, dh, d]) equal our cache."""
    model = _random_model("mlp + relu")
    w = interop.tl_state_dict(model)
    tokens = _tokens(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    x = w["embed.W_E"][tokens] + w["pos_embed.W_pos"][:tokens.shape[1]]
    assert torch.allclose(x, cache["resid"][0], atol=1e-6)
    h = torch.nn.functional.layer_norm(x, (x.shape[-1],), w["blocks.0.ln1.w"],
                                       w["blocks.0.ln1.b"], eps=1e-5)
    q = torch.einsum("btd,hdk->bhtk", h, w["blocks.0.attn.W_Q"]) + w["blocks.0.attn.b_Q"][:, None]
    k = torch.einsum("btd,hdk->bhtk", h, w["blocks.0.attn.W_K"]) + w["blocks.0.attn.b_K"][:, None]
    v = torch.einsum("btd,hdk->bhtk", h, w["blocks.0.attn.W_V"]) + w["blocks.0.attn.b_V"][:, None]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    length = tokens.shape[1]
    scores = scores.masked_fill(torch.ones(length, length, dtype=torch.bool).triu(1), -math.inf)
    pattern = scores.softmax(-1)
    assert torch.allclose(pattern, cache["attn"][0], atol=1e-6)
    update = torch.einsum("bhtk,hkd->btd", pattern @ v, w["blocks.0.attn.W_O"]) \
        + w["blocks.0.attn.b_O"]
    with torch.no_grad():
        ours = model.blocks[0].attn(model.blocks[0].ln_attn(cache["resid"][0]))[0]
    assert torch.allclose(update, ours, atol=1e-5)


def test_post_ln_models_are_refused_naming_the_field():
    model = Transformer(ModelConfig(n_layers=1, d_model=8, n_heads=2, norm_position="post"),
                        10, 4, 10)
    with pytest.raises(ValueError, match="norm_position: .*'post'"):
        interop.tl_state_dict(model)


def test_a_bias_the_layout_lacks_must_be_zero():
    model = _random_model("nanda (no LN, MLP biases only)")
    weights = interop.tl_state_dict(model)
    assert torch.equal(weights["blocks.0.attn.b_Q"], torch.zeros(4, 4))
    weights["blocks.0.attn.b_Q"][1, 2] = 0.5
    with pytest.raises(ValueError, match=r"blocks\.0\.attn\.b_Q: must be all zeros .*0\.5"):
        interop.modadd_state_dict(weights, model)


def test_a_changed_sinusoidal_table_is_refused():
    model = _random_model("no biases, sinusoidal")
    weights = interop.tl_state_dict(model)
    weights["pos_embed.W_pos"][0, 0] += 1e-3
    with pytest.raises(ValueError, match="pos_embed.W_pos"):
        interop.modadd_state_dict(weights, model)


def test_hook_names_and_their_range():
    assert interop.hook_name("resid", 0, 3) == "blocks.0.hook_resid_pre"
    assert interop.hook_name("resid", 3, 3) == "blocks.2.hook_resid_post"
    assert interop.hook_name("attn", 2, 3) == "blocks.2.attn.hook_pattern"
    with pytest.raises(ValueError, match=r"layer: must be an integer in 0\.\.2"):
        interop.hook_name("attn", 3, 3)
    with pytest.raises(ValueError, match="kind: must be one of"):
        interop.hook_name("mlp", 0, 3)


def test_the_agreement_check_validates_its_arguments():
    with pytest.raises(ValueError, match="example: must be in 0..n_examples-1 = 0..3"):
        interop.tl_agreement(preset("smoke"), n_examples=4, example=4)
    with pytest.raises(ValueError, match="n_examples: must be"):
        interop.tl_agreement(preset("smoke"), n_examples=0)


# ---- against TransformerLens -------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_tl_gives_our_logits_and_cache(tl, name, dtype):
    """float32: equal to 1e-5 (two implementations round differently); float64: to 1e-12, so
    what differs in float32 is rounding, not the map."""
    model = _random_model(name).to(dtype)
    tol = TOL if dtype == torch.float32 else 1e-12
    hooked = interop.to_hooked_transformer(model)
    assert hooked.cfg.dtype == dtype
    assert isinstance(hooked, tl.HookedTransformer)
    tokens = _tokens(model)
    with torch.no_grad():
        ours, cache = model.run_with_cache(tokens)
        theirs, tl_cache = hooked.run_with_cache(tokens)
    assert theirs.shape == (*tokens.shape, model.head.out_features)
    assert ours.abs().max() > 1.0                  # logits of a real scale, not all ~0
    assert torch.allclose(theirs[:, -1], ours, atol=tol, rtol=0)
    mapped = interop.cache_from_tl(tl_cache, model.cfg.n_layers)
    for kind in interop.HOOK_KINDS:
        assert len(mapped[kind]) == len(cache[kind])
        for a, b in zip(mapped[kind], cache[kind]):
            assert torch.allclose(a, b, atol=tol, rtol=0)


def test_converting_does_not_move_the_global_rng(tl):
    model = _random_model("mlp + relu")
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    interop.from_hooked_transformer(interop.to_hooked_transformer(model))
    assert torch.equal(torch.rand(3), expected)


def test_tl_reads_the_end_token_position_as_our_sequence_logits(tl):
    model = _random_model("end-token loss (one more position)")
    tokens = torch.randint(0, 13, (8, model.n_positions))
    with torch.no_grad():
        assert torch.allclose(interop.to_hooked_transformer(model)(tokens),
                              model.sequence_logits(tokens), atol=TOL, rtol=0)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_back_from_tl_is_the_same_model(tl, name):
    model = _random_model(name)
    hooked = interop.to_hooked_transformer(model)
    back = interop.from_hooked_transformer(hooked, seq_len=model.seq_len, config=model.cfg)
    assert back.seq_len == model.seq_len and back.n_positions == model.n_positions
    assert all(torch.equal(a, b) for a, b in zip(back.state_dict().values(),
                                                 model.state_dict().values()))
    inferred = interop.from_hooked_transformer(hooked, seq_len=model.seq_len)
    if model.cfg.positions == "learned":        # a fixed table is not inferred: it is a W_pos
        assert inferred.cfg.biases == model.cfg.biases
        assert inferred.cfg.mlp_width == model.cfg.mlp_width or model.cfg.attention_only
        tokens = _tokens(model)
        with torch.no_grad():
            assert torch.equal(inferred(tokens), model(tokens))


def test_tl_processed_weights_convert_back(tl):
    """After TL's fold_ln / centring (normalization_type LNPre), the model converted back gives
    the same log-probabilities (center_unembed shifts each row of logits by a constant)."""
    model = _random_model("mlp + relu")
    hooked = interop.to_hooked_transformer(model)
    hooked.process_weights_(fold_ln=True, center_writing_weights=True, center_unembed=True)
    assert hooked.cfg.normalization_type == "LNPre"
    back = interop.from_hooked_transformer(hooked)
    tokens = _tokens(model)
    with torch.no_grad():
        assert torch.allclose(back(tokens).log_softmax(-1), model(tokens).log_softmax(-1),
                              atol=TOL, rtol=0)
        assert not torch.allclose(back(tokens), model(tokens), atol=1e-3)   # it did change


def test_tl_architectures_we_cannot_express_are_refused(tl):
    config = tl.HookedTransformerConfig(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=4,
                                        d_vocab=10, attn_only=True, act_fn=None,
                                        positional_embedding_type="rotary", rotary_dim=4)
    hooked = tl.HookedTransformer(config)
    with pytest.raises(ValueError, match="positional_embedding_type: .*'rotary'"):
        interop.from_hooked_transformer(hooked)
    model = _random_model("mlp + relu")
    hooked = interop.to_hooked_transformer(model)
    with pytest.raises(ValueError, match="config.layer_norm"):
        interop.from_hooked_transformer(hooked, config=dataclasses.replace(model.cfg,
                                                                           layer_norm=False))
    with pytest.raises(ValueError, match="seq_len: must be in 1..n_ctx=5"):
        interop.from_hooked_transformer(hooked, seq_len=6)


TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=2, d_model=16, n_heads=2),
                 train=TrainConfig(lr=1e-2, batch_size=16, n_steps=40, snapshot_every=10,
                                   probe_size=48, checkpoint_every=40))


@pytest.mark.parametrize("cfg", [TINY, dataclasses.replace(
    grokking_preset("smoke"), train=dataclasses.replace(grokking_preset("smoke").train,
                                                        n_steps=20))],
    ids=["marker task", "a+b mod p"])
def test_the_agreement_check_on_a_trained_run(tl, cfg):
    """A trained run, converted: TL agrees with our model on the run's own evaluation sets,
    and the stored readout pattern is our cache's row read back by TL's hook name."""
    result = interop.tl_agreement(cfg, n_examples=32, example=3)
    table = dict(zip(result["columns"], result["values"].T))
    assert (table["max_abs_logit_diff"] <= TOL * np.maximum(1.0, table["max_abs_logit"])).all()
    assert (table["max_abs_logit_diff_fp64"] <= 1e-12).all()
    assert (table["max_abs_pattern_diff"] <= TOL).all()
    assert (table["max_abs_resid_diff"] <= TOL).all()
    assert (table["argmax_agreement"] == 1.0).all()
    assert np.array_equal(table["accuracy_ours"], table["accuracy_tl"])
    from modadd.store import load_or_train
    model = interop.model_from_run(load_or_train(cfg, trajectories=True, progress=False))
    tokens = torch.as_tensor(result["example_tokens"])[None]
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens)
    ours = np.stack([a[0, :, -1].numpy() for a in cache["attn"]])
    assert np.allclose(result["readout_pattern"], ours, atol=TOL)
    if isinstance(cfg.task, AlgorithmicTask):
        assert list(result["sets"]) == ["heldout", "train"]
    else:
        assert list(result["sets"]) == ["m=1", "m=2"]


def test_the_book_run_where_its_weights_are_cached(tl, monkeypatch):
    """The book's main run (seed 0) when `load_or_train(preset("book"), trajectories=True)` has
    put its final weights into this checkout's run cache (data/cache, or MODADD_CACHE_DIR as
    set when pytest started; CI has none: skipped there)."""
    monkeypatch.setenv("MODADD_CACHE_DIR", LOCAL_CACHE)
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(paths.ROOT / "data" / "results"))
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    from modadd.runs import find_run
    run = find_run(preset("book"), trajectories=True)
    if run is None:
        pytest.skip(f"the book's main run has no weights in {LOCAL_CACHE}")
    model = interop.model_from_run(run)
    hooked = interop.to_hooked_transformer(model)
    from modadd.taskdata import probe_sets
    model64 = interop.model_from_run(run).double()
    hooked64 = interop.to_hooked_transformer(model64)
    for batch in probe_sets(run.config).values():
        with torch.no_grad():
            ours = model(batch.tokens)
            # float32: 1e-5 of the logits' scale (~16 here: five layers round differently in
            # TL's einsums); float64: the map itself, exact to 1e-10
            scale = float(ours.abs().max())
            assert torch.allclose(hooked(batch.tokens)[:, -1], ours, atol=TOL * scale, rtol=0)
            assert torch.allclose(hooked64(batch.tokens)[:, -1], model64(batch.tokens),
                                  atol=1e-10, rtol=0)
