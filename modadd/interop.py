"""TransformerLens interop: a model of this study as a ``HookedTransformer``, and back.

Interpretability work happens in TransformerLens (TL): its hook names, ``run_with_cache``,
activation patching and attention visualisations.  :func:`to_hooked_transformer` converts a
trained :class:`~modadd.model.Transformer` (marker task or a∘b mod p) into a TL 3.x
``HookedTransformer`` with the same logits at the readout (the last position; TL returns every
position's logits, ours only the readout's); :func:`from_hooked_transformer` converts back where
the architecture allows.  TL is an optional extra (``pip install -e '.[interop]'``, pinned
``transformer-lens>=3,<4``: 4.0 removes ``HookedTransformer``); only the functions that build a TL
model import it.

The weights map one to one (ours → TL; ``d`` the width, ``H`` heads of width ``dh``)::

    embed.weight                        → embed.W_E                 [vocab, d]
    pos_embed.weight (or pos_table)     → pos_embed.W_pos           [n_positions, d]
    blocks.l.ln_attn / ln_mlp           → blocks.l.ln1 / ln2        (.w, .b)
    blocks.l.attn.qkv.weight  [3d, d]   → attn.W_Q, W_K, W_V        [H, d, dh]  (rows Q|K|V, head-major)
    blocks.l.attn.qkv.bias    [3d]      → attn.b_Q, b_K, b_V        [H, dh]
    blocks.l.attn.out.weight  [d, d]    → attn.W_O                  [H, dh, d]
    blocks.l.attn.out.bias              → attn.b_O                  [d]
    blocks.l.mlp.0 / mlp.2              → mlp.W_in, b_in / W_out, b_out (transposed)
    ln_final                            → ln_final
    head.weight [classes, d], head.bias → unembed.W_U [d, classes], unembed.b_U

A bias our layout does not have (``ModelConfig.biases``) is a TL zero; a fixed sinusoidal table
(``positions="sinusoidal"``) becomes TL's ``W_pos`` with the same values (a parameter there).
No LayerNorm (``layer_norm=False``, Nanda et al.'s model) is TL's ``normalization_type=None``.
Post-LN blocks (``norm_position="post"``, openai/grok's ``LN(x + f(x))``) have no TL form and are
refused.  Back from TL, ``normalization_type="LNPre"`` (after TL's ``fold_ln``) becomes our
LayerNorm with unit gain and zero shift, so processed weights convert too.

Activations (:func:`hook_name`): our ``run_with_cache`` cache ``resid[l]`` is TL's
``blocks.{l}.hook_resid_pre`` (``resid[n_layers]``: ``blocks.{n_layers-1}.hook_resid_post``),
``attn[l]`` is ``blocks.{l}.attn.hook_pattern``; :func:`cache_from_tl` turns a TL cache into
ours.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import Optional

import numpy as np
import torch

from .algorithmic import AlgorithmicTask
from .model import ModelConfig, Transformer, sinusoidal_positions
from .store import cached, load_or_train, run_key
from .taskdata import AlgorithmicData, probe_sets
from .validate import check_int

TL_REQUIREMENT = "transformer-lens>=3.0,<4"
HOOK_KINDS = ("resid", "attn")


def _transformer_lens():
    try:
        import transformer_lens
    except ImportError as error:      # the optional extra
        raise ImportError(f"modadd.interop needs TransformerLens 3.x: pip install -e "
                          f"'.[interop]' (or pip install '{TL_REQUIREMENT}')") from error
    if not hasattr(transformer_lens, "HookedTransformer"):
        raise ImportError(f"modadd.interop needs TransformerLens 3.x ({TL_REQUIREMENT}): this "
                          f"version has no HookedTransformer")
    return transformer_lens


# ---- weights: pure tensor maps (no TransformerLens needed) ------------------------------------
def _check_pre_ln(cfg: ModelConfig) -> None:
    if cfg.norm_position != "pre":
        raise ValueError(f"norm_position: TransformerLens has no post-LN block (LN(x + f(x))); "
                         f"only 'pre' converts, got {cfg.norm_position!r}")


def tl_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """``model``'s weights under TransformerLens's parameter names and shapes (copies); absent
    biases as zeros, a sinusoidal table as ``W_pos``.  Raises for post-LN models."""
    cfg = model.cfg
    _check_pre_ln(cfg)
    state = {k: v.detach() for k, v in model.state_dict().items()}
    d, heads, dh = cfg.d_model, cfg.n_heads, cfg.d_head
    like = state["embed.weight"]

    def bias(name: str, size: int) -> torch.Tensor:
        return state.get(name, like.new_zeros(size))

    out = {"embed.W_E": state["embed.weight"],
           "pos_embed.W_pos": model.positional(model.n_positions).detach()}
    for layer in range(cfg.n_layers):
        ours, tl = f"blocks.{layer}.", f"blocks.{layer}."
        if cfg.layer_norm:
            out[tl + "ln1.w"], out[tl + "ln1.b"] = (state[ours + "ln_attn.weight"],
                                                    state[ours + "ln_attn.bias"])
        qkv = state[ours + "attn.qkv.weight"].view(3, heads, dh, d)
        qkv_bias = bias(ours + "attn.qkv.bias", 3 * d).view(3, heads, dh)
        for index, name in enumerate("QKV"):
            out[tl + f"attn.W_{name}"] = qkv[index].transpose(1, 2)
            out[tl + f"attn.b_{name}"] = qkv_bias[index]
        out[tl + "attn.W_O"] = state[ours + "attn.out.weight"].view(d, heads, dh).permute(1, 2, 0)
        out[tl + "attn.b_O"] = bias(ours + "attn.out.bias", d)
        if not cfg.attention_only:
            if cfg.layer_norm:
                out[tl + "ln2.w"], out[tl + "ln2.b"] = (state[ours + "ln_mlp.weight"],
                                                        state[ours + "ln_mlp.bias"])
            out[tl + "mlp.W_in"] = state[ours + "mlp.0.weight"].T
            out[tl + "mlp.b_in"] = bias(ours + "mlp.0.bias", cfg.mlp_width)
            out[tl + "mlp.W_out"] = state[ours + "mlp.2.weight"].T
            out[tl + "mlp.b_out"] = bias(ours + "mlp.2.bias", d)
    if cfg.layer_norm:
        out["ln_final.w"], out["ln_final.b"] = state["ln_final.weight"], state["ln_final.bias"]
    out["unembed.W_U"] = state["head.weight"].T
    out["unembed.b_U"] = bias("head.bias", state["head.weight"].shape[0])
    return {k: v.clone().contiguous() for k, v in out.items()}


def _zero_or_fail(tensor: torch.Tensor, name: str, why: str) -> None:
    if bool((tensor != 0).any()):
        raise ValueError(f"{name}: must be all zeros ({why}), got max |value| "
                         f"{float(tensor.abs().max()):.3g}")


def modadd_state_dict(tl_state: dict[str, torch.Tensor], model: Transformer
                      ) -> dict[str, torch.Tensor]:
    """The inverse of :func:`tl_state_dict` for the architecture of ``model``: our parameter
    names and shapes (a ``state_dict`` for ``model``).  A TL bias that ``model``'s layout has no
    place for must be zero, and a sinusoidal model's ``W_pos`` must equal its fixed table; each
    violation raises ``ValueError`` naming the TL parameter.  LayerNorm weights missing from
    ``tl_state`` (TL's ``LNPre``) become unit gains and zero shifts."""
    cfg = model.cfg
    d = cfg.d_model
    layout = f"biases={cfg.biases!r} has no such bias"
    state = {"embed.weight": tl_state["embed.W_E"]}
    if cfg.positions == "learned":
        state["pos_embed.weight"] = tl_state["pos_embed.W_pos"]
    else:
        table = sinusoidal_positions(model.n_positions, d).to(tl_state["pos_embed.W_pos"])
        if not torch.equal(tl_state["pos_embed.W_pos"], table):
            raise ValueError("pos_embed.W_pos: must equal the fixed sinusoidal table of "
                             "positions='sinusoidal' (it was changed, e.g. trained in TL)")
        state["pos_table"] = table

    def norm(ours: str, tl: str) -> None:
        if not cfg.layer_norm:
            return
        weight = tl_state.get(tl + ".w")
        state[ours + ".weight"] = weight if weight is not None else torch.ones(d).to(
            tl_state["embed.W_E"])
        shift = tl_state.get(tl + ".b")
        state[ours + ".bias"] = shift if shift is not None else torch.zeros(d).to(
            tl_state["embed.W_E"])

    def take_bias(ours: str, tl: str, keep: bool) -> None:
        if keep:
            state[ours] = tl_state[tl]
        else:
            _zero_or_fail(tl_state[tl], tl, layout)

    for layer in range(cfg.n_layers):
        p = f"blocks.{layer}."
        norm(p + "ln_attn", p + "ln1")
        state[p + "attn.qkv.weight"] = torch.stack(
            [tl_state[p + f"attn.W_{n}"].transpose(1, 2) for n in "QKV"]).reshape(3 * d, d)
        attention_bias = cfg.biases == "all"
        if attention_bias:
            state[p + "attn.qkv.bias"] = torch.stack(
                [tl_state[p + f"attn.b_{n}"] for n in "QKV"]).reshape(3 * d)
        else:
            for n in "QKV":
                _zero_or_fail(tl_state[p + f"attn.b_{n}"], p + f"attn.b_{n}", layout)
        state[p + "attn.out.weight"] = tl_state[p + "attn.W_O"].permute(2, 0, 1).reshape(d, d)
        take_bias(p + "attn.out.bias", p + "attn.b_O", attention_bias)
        if not cfg.attention_only:
            norm(p + "ln_mlp", p + "ln2")
            state[p + "mlp.0.weight"] = tl_state[p + "mlp.W_in"].T
            take_bias(p + "mlp.0.bias", p + "mlp.b_in", cfg.biases != "none")
            state[p + "mlp.2.weight"] = tl_state[p + "mlp.W_out"].T
            take_bias(p + "mlp.2.bias", p + "mlp.b_out", cfg.biases != "none")
    norm("ln_final", "ln_final")
    state["head.weight"] = tl_state["unembed.W_U"].T
    take_bias("head.bias", "unembed.b_U", cfg.biases == "all")
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


# ---- models ------------------------------------------------------------------------------------
def hooked_config(model: Transformer):
    """The ``HookedTransformerConfig`` of ``model``'s architecture (causal attention scaled by
    ``sqrt(d_head)``, LayerNorm eps 1e-5 as ``torch.nn.LayerNorm``, no start token prepended:
    TL is fed our token ids as they are)."""
    tl = _transformer_lens()
    cfg = model.cfg
    _check_pre_ln(cfg)
    parameter = next(model.parameters())
    return tl.HookedTransformerConfig(
        n_layers=cfg.n_layers, d_model=cfg.d_model, n_heads=cfg.n_heads, d_head=cfg.d_head,
        n_ctx=model.n_positions, d_vocab=model.embed.num_embeddings,
        d_vocab_out=model.head.out_features, attn_only=cfg.attention_only,
        d_mlp=None if cfg.attention_only else cfg.mlp_width,
        act_fn=None if cfg.attention_only else cfg.activation,
        normalization_type="LN" if cfg.layer_norm else None, eps=1e-5,
        positional_embedding_type="standard", attention_dir="causal",
        default_prepend_bos=False, tokenizer_prepends_bos=False, original_architecture="modadd",
        model_name="modadd", dtype=parameter.dtype, device=str(parameter.device))


def _new_hooked(tl, config):
    # TL 3.x announces HookedTransformer's removal in 4.0 on every construction; the pin
    # (TL_REQUIREMENT) is our answer to that, so the warning is not repeated to the reader.
    # TL initialises its weights from the global RNG (then overwritten): forked, so converting
    # a model never moves another stream
    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.filterwarnings("ignore", message="HookedTransformer is deprecated",
                                category=DeprecationWarning)
        return tl.HookedTransformer(config, move_to_device=False)


def to_hooked_transformer(model: Transformer):
    """``model`` as a TransformerLens ``HookedTransformer`` (eval mode, same dtype and device):
    ``hooked(tokens)[:, -1]`` equals ``model(tokens)`` up to float rounding."""
    tl = _transformer_lens()
    hooked = _new_hooked(tl, hooked_config(model))
    weights = tl_state_dict(model)
    params = dict(hooked.named_parameters())
    unmatched = sorted(set(params) ^ set(weights))
    if unmatched:       # a TL version whose parameters this map does not know
        raise RuntimeError(f"TransformerLens {tl.__version__ if hasattr(tl, '__version__') else ''}"
                           f" parameters and modadd's map differ in: {unmatched}")
    with torch.no_grad():
        for name, value in weights.items():
            params[name].copy_(value)
    return hooked.eval()


_UNSUPPORTED = (   # TL config field, the value modadd's Transformer has, in words
    ("positional_embedding_type", "standard", "learned absolute positions"),
    ("attention_dir", "causal", "causal attention"),
    ("gated_mlp", False, "a plain two-layer MLP"),
    ("parallel_attn_mlp", False, "attention before the MLP"),
    ("final_rms", False, "LayerNorm, not RMSNorm"),
    ("uses_rms_norm", False, "LayerNorm, not RMSNorm"),
    ("post_embedding_ln", False, "no LayerNorm after the embedding"),
    ("use_normalization_before_and_after", False, "pre-LN blocks only"),
    ("use_qk_norm", False, "no query/key norm"),
    ("use_local_attn", False, "global attention"),
    ("scale_attn_by_inverse_layer_idx", False, "the same scale in every layer"),
    ("n_key_value_heads", None, "one key/value head per query head"),
    ("num_experts", None, "no mixture of experts"),
    ("use_attn_scale", True, "scores divided by sqrt(d_head)"),
)


def _check_convertible(c) -> None:
    for field, value, words in _UNSUPPORTED:
        got = getattr(c, field, value)
        if got != value and not (value is False and not got):
            raise ValueError(f"{field}: modadd's Transformer has {words} ({field}={value!r}), "
                             f"got {got!r}")
    if c.n_heads * c.d_head != c.d_model:
        raise ValueError(f"d_head: must be d_model / n_heads = {c.d_model / c.n_heads:g}, got "
                         f"{c.d_head!r}")
    if not math.isclose(c.attn_scale, math.sqrt(c.d_head)):
        raise ValueError(f"attn_scale: must be sqrt(d_head) = {math.sqrt(c.d_head):g}, got "
                         f"{c.attn_scale!r}")
    for field in ("attn_scores_soft_cap", "output_logits_soft_cap"):
        if getattr(c, field, -1.0) > 0:
            raise ValueError(f"{field}: must be off (<= 0), got {getattr(c, field)!r}")
    if c.normalization_type not in (None, "LN", "LNPre"):
        raise ValueError(f"normalization_type: must be 'LN', 'LNPre' or None, got "
                         f"{c.normalization_type!r}")
    if not c.attn_only and c.act_fn not in ("gelu", "relu"):
        raise ValueError(f"act_fn: must be 'gelu' (exact) or 'relu', got {c.act_fn!r}")


def _infer_biases(tl_state: dict) -> str:
    attention = [k for k in tl_state if ".attn.b_" in k] + ["unembed.b_U"]
    if any(bool((tl_state[k] != 0).any()) for k in attention):
        return "all"
    mlp = [k for k in tl_state if ".mlp.b_" in k]
    return "mlp" if any(bool((tl_state[k] != 0).any()) for k in mlp) else "none"


def from_hooked_transformer(hooked, seq_len: Optional[int] = None,
                            config: Optional[ModelConfig] = None) -> Transformer:
    """A TransformerLens ``HookedTransformer`` as our :class:`~modadd.model.Transformer` (eval
    mode), whose ``forward`` equals ``hooked(tokens)[:, -1]`` up to float rounding.

    ``seq_len``: the input length our model reads (default ``n_ctx``; a model trained with
    ``eos_target`` embeds one more position than it reads).  ``config``: the architecture to
    load into (default: inferred; biases as the smallest layout that holds every non-zero TL
    bias, learned positions).  Architectures our model cannot express raise ``ValueError``
    naming the TL config field."""
    c = hooked.cfg
    _check_convertible(c)
    tl_state = {k: v.detach() for k, v in hooked.state_dict().items()}
    if config is None:
        config = ModelConfig(
            n_layers=c.n_layers, d_model=c.d_model, n_heads=c.n_heads,
            attention_only=bool(c.attn_only), layer_norm=c.normalization_type is not None,
            activation=(c.act_fn if not c.attn_only else "gelu"),
            d_mlp=0 if c.attn_only or c.d_mlp == 4 * c.d_model else c.d_mlp,
            biases=_infer_biases(tl_state))
    wanted = {"n_layers": c.n_layers, "d_model": c.d_model, "n_heads": c.n_heads,
              "attention_only": bool(c.attn_only),
              "layer_norm": c.normalization_type is not None}
    if not c.attn_only:
        wanted.update(mlp_width=c.d_mlp, activation=c.act_fn)
    for field, value in wanted.items():
        if getattr(config, field) != value:
            raise ValueError(f"config.{field}: the HookedTransformer has {value!r}, got "
                             f"{getattr(config, field)!r}")
    seq_len = c.n_ctx if seq_len is None else seq_len
    if not 1 <= seq_len <= c.n_ctx:
        raise ValueError(f"seq_len: must be in 1..n_ctx={c.n_ctx}, got {seq_len!r}")
    with torch.random.fork_rng(devices=[]):     # its init is overwritten: no stream moves
        model = Transformer(config, c.d_vocab, seq_len, c.d_vocab_out, n_positions=c.n_ctx)
    model.load_state_dict(modadd_state_dict(tl_state, model))
    return model.to(next(hooked.parameters()).device).eval()


# ---- activations -------------------------------------------------------------------------------
def hook_name(kind: str, layer: int, n_layers: int) -> str:
    """TransformerLens's hook name of our cache entry ``cache[kind][layer]``
    (:meth:`Transformer.run_with_cache`): ``"resid"`` (``layer`` in ``0..n_layers``) or
    ``"attn"`` (``0..n_layers-1``)."""
    if kind not in HOOK_KINDS:
        raise ValueError(f"kind: must be one of {HOOK_KINDS}, got {kind!r}")
    top = n_layers if kind == "resid" else n_layers - 1
    if not isinstance(layer, (int, np.integer)) or not 0 <= layer <= top:
        raise ValueError(f"layer: must be an integer in 0..{top} for kind={kind!r}, got "
                         f"{layer!r}")
    if kind == "attn":
        return f"blocks.{layer}.attn.hook_pattern"
    if layer == n_layers:
        return f"blocks.{n_layers - 1}.hook_resid_post"
    return f"blocks.{layer}.hook_resid_pre"


def cache_from_tl(tl_cache, n_layers: int) -> dict[str, list[torch.Tensor]]:
    """A TransformerLens ``ActivationCache`` (or a dict of its names) in the layout of our
    ``run_with_cache``: ``{"resid": [n_layers + 1 × [B,T,d]], "attn": [n_layers × [B,H,T,T]]}``."""
    return {kind: [tl_cache[hook_name(kind, layer, n_layers)]
                   for layer in range(n_layers + (kind == "resid"))] for kind in HOOK_KINDS}


def model_from_run(run) -> Transformer:
    """The trained model of a stored run (its ``final_model.pt``: a cache copy, e.g.
    ``load_or_train(cfg, trajectories=True)``), in eval mode."""
    with torch.random.fork_rng(devices=[]):
        model = Transformer.for_task(run.config.model, run.config.task)
    model.load_state_dict(run.final_state_dict())
    return model.eval()


def hooked_from_run(run):
    """The trained model of a stored run as a ``HookedTransformer``."""
    return to_hooked_transformer(model_from_run(run))


# ---- the book's check: one stored run, ours against TransformerLens ----------------------------
AGREEMENT_VERSION = 1


def _evaluation_sets(cfg) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{name: (tokens, labels)}``: the fixed probe set per m (marker task), or the held-out and
    training probes (a∘b mod p)."""
    if isinstance(cfg.task, AlgorithmicTask):
        data = AlgorithmicData(cfg)
        return {name: (batch.tokens, batch.labels) for name, batch in data.probes.items()}
    return {f"m={m}": (batch.tokens, batch.labels) for m, batch in probe_sets(cfg).items()}


def _agreement(cfg, n_examples: int, example: int) -> dict:
    run = load_or_train(cfg, trajectories=True, progress=False)
    model = model_from_run(run)
    hooked = to_hooked_transformer(model)
    # the same weights in float64 on both sides: what is left is the map, not float32 rounding
    model64 = copy.deepcopy(model).double()
    hooked64 = to_hooked_transformer(model64)
    n_layers = cfg.model.n_layers
    names, rows = [], []
    with torch.no_grad():
        for name, (tokens, labels) in _evaluation_sets(cfg).items():
            tokens, labels = tokens[:n_examples], labels[:n_examples]
            ours, cache = model.run_with_cache(tokens)
            theirs, tl_cache = hooked.run_with_cache(tokens)
            theirs = theirs[:, -1]
            mapped = cache_from_tl(tl_cache, n_layers)
            rows.append([float((ours - theirs).abs().max()), float(ours.abs().max()),
                         float((ours.argmax(-1) == theirs.argmax(-1)).float().mean()),
                         float((ours.argmax(-1) == labels).float().mean()),
                         float((theirs.argmax(-1) == labels).float().mean()),
                         max(float((a - b).abs().max()) for a, b in zip(cache["attn"],
                                                                        mapped["attn"])),
                         max(float((a - b).abs().max()) for a, b in zip(cache["resid"],
                                                                        mapped["resid"])),
                         float((model64(tokens) - hooked64(tokens)[:, -1]).abs().max())])
            names.append(name)
            if example >= len(tokens):
                raise ValueError(f"example: set {name!r} has {len(tokens)} examples, got "
                                 f"{example!r}")
            # one example's readout rows, read by TL's hook names (the last set's is kept)
            patterns = np.stack([tl_cache[hook_name("attn", layer, n_layers)][example, :, -1]
                                 .numpy() for layer in range(n_layers)])
            example_tokens = tokens[example].numpy()
    origin = {"cpu": run.meta.get("cpu", "unknown"), "finished": run.meta.get("finished", ""),
              "train_log_sha256": run.meta.get("checksums", {}).get("train_log.npz", "")}
    return {"sets": np.array(names), "columns": np.array(AGREEMENT_COLUMNS),
            "values": np.array(rows), "readout_pattern": patterns,
            "example_tokens": example_tokens, "example_set": np.array(names[-1]),
            **{f"weights_{k}": np.array(v) for k, v in origin.items()}}


AGREEMENT_COLUMNS = ("max_abs_logit_diff", "max_abs_logit", "argmax_agreement", "accuracy_ours",
                     "accuracy_tl", "max_abs_pattern_diff", "max_abs_resid_diff",
                     "max_abs_logit_diff_fp64")


def tl_agreement(cfg, n_examples: int = 512, example: int = 0) -> dict:
    """A stored run's final model, ours against its TransformerLens conversion, on the run's
    fixed evaluation sets (the probe set of each m; a∘b mod p: the held-out and training probes;
    the first ``n_examples`` of each): ``{"sets": [S], "columns": AGREEMENT_COLUMNS,
    "values": [S, 8]`` (max |Δ logit| at the readout, max |logit|, share of equal argmax,
    accuracy of each, max |Δ| of the attention patterns and of the residual streams read
    through TL's hook names, max |Δ logit| with both models in float64), ``"readout_pattern": [n_layers, H, T]`` (the readout query's row
    of ``blocks.{l}.attn.hook_pattern`` for probe ``example`` of the last set: the largest m),
    ``"example_tokens"``, ``"example_set"``, and where the weights came from: ``"weights_cpu"``
    (the CPU signature of the host that trained them), ``"weights_finished"``,
    ``"weights_train_log_sha256"`` (equal to the committed run's when the same trajectory was
    retrained bit for bit)}.  Needs the run's weights (trains on a cache miss) and
    TransformerLens; cached, so a book build reads it without either."""
    check_int("n_examples", n_examples, 1)
    check_int("example", example, 0)
    if example >= n_examples:
        raise ValueError(f"example: must be in 0..n_examples-1 = 0..{n_examples - 1}, got "
                         f"{example!r}")
    inputs = {"run": run_key(cfg), "n_examples": n_examples, "example": example}
    return cached("tl-agreement", AGREEMENT_VERSION, inputs,
                  lambda: _agreement(cfg, n_examples, example))
