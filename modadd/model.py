"""Pre-LN transformer (post-LN as an option), with named attention matrices and a residual cache.

Orientation of the attention matrices (one convention everywhere in the study): each is stored
as PyTorch stores a ``Linear`` weight, ``[d_out, d_in]``, and acts on a row vector ``h`` as
``h @ W.T``.  ``W_Q, W_K, W_V`` map the LayerNorm-ed residual (``d_in``) to the concatenated
heads (``d_out``; head ``i`` owns rows ``i*d_head:(i+1)*d_head``); ``W_O`` maps the concatenated
head outputs back to the residual stream.  Biases are separate and not part of ``W_*``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F

from .validate import check_bool, check_choice, check_int, is_int


MATRIX_NAMES = ("W_Q", "W_K", "W_V", "W_O")
ACTIVATIONS = ("gelu", "relu")
INITS = ("torch", "nanda")
BIASES = ("all", "mlp", "none")
NORM_POSITIONS = ("pre", "post")
POSITIONS = ("learned", "sinusoidal")
ResidHook = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture. Validated on construction."""

    n_layers: int = 5              # transformer blocks, >= 1
    d_model: int = 128             # residual width, divisible by n_heads
    n_heads: int = 4               # attention heads per block, >= 1
    attention_only: bool = True    # True: no MLP modules at all; False: pre-LN MLP per block
    layer_norm: bool = True        # False: no LayerNorm anywhere (Nanda et al.'s grokking model)
    activation: str = "gelu"       # MLP non-linearity: "gelu" | "relu"
    d_mlp: int = 0                 # MLP hidden width, >= 1; 0 means 4 * d_model
    init: str = "torch"            # "torch": PyTorch's default initialisation; "nanda": Nanda et
                                   # al.'s (every weight N(0, 1/d_model), the head N(0, 1/classes),
                                   # every bias 0)
    biases: str = "all"            # "all": biases in every linear layer; "mlp": in the MLP only
                                   # (no attention or head biases: Nanda et al.'s layout);
                                   # "none": in no linear layer (openai/grok's; LayerNorm keeps
                                   # its shift)
    norm_position: str = "pre"     # "pre": x + f(LN(x)), a final LN before the head; "post":
                                   # LN(x + f(x)) and no final LN (openai/grok's decoder block)
    positions: str = "learned"     # "learned": a trained position embedding; "sinusoidal":
                                   # openai/grok's fixed table (sin at even, cos at odd
                                   # dimensions), not a parameter

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending field and its allowed range."""
        for name in ("n_layers", "d_model", "n_heads"):
            check_int(name, getattr(self, name), 1)
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model: must be divisible by n_heads={self.n_heads}, "
                             f"got {self.d_model!r}")
        for name in ("attention_only", "layer_norm"):
            check_bool(name, getattr(self, name))
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("init", self.init, INITS)
        check_choice("biases", self.biases, BIASES)
        check_choice("norm_position", self.norm_position, NORM_POSITIONS)
        check_choice("positions", self.positions, POSITIONS)
        if self.norm_position == "post" and not self.layer_norm:
            raise ValueError("norm_position: 'post' needs layer_norm=True (without LayerNorm "
                             "the two positions are one model), got 'post' with "
                             "layer_norm=False")
        if not is_int(self.d_mlp) or self.d_mlp < 0:
            raise ValueError(f"d_mlp: must be an integer >= 1, or 0 for 4 * d_model, "
                             f"got {self.d_mlp!r}")

    @property
    def mlp_width(self) -> int:
        """Hidden width of the MLP (``d_mlp``, or ``4 * d_model`` when it is 0)."""
        return self.d_mlp or 4 * self.d_model

    @property
    def d_head(self) -> int:
        """Width of one attention head."""
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


class Attention(nn.Module):
    """Causal multi-head self-attention with a fused QKV projection."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.d_head
        bias = cfg.biases == "all"
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=bias)
        self.out = nn.Linear(cfg.d_model, cfg.d_model, bias=bias)

    def forward(self, h: torch.Tensor, attn_override: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """``h [B,T,d]`` → (output ``[B,T,d]``, probabilities ``[B,H,T,T]``)."""
        batch, length, width = h.shape
        q, k, v = self.qkv(h).view(batch, length, 3, self.n_heads, self.d_head).unbind(dim=2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.d_head)
        future = torch.ones(length, length, dtype=torch.bool, device=h.device).triu(1)
        probs = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        if attn_override is not None:
            probs = attn_override
        mixed = (probs @ v).transpose(1, 2).reshape(batch, length, width)
        return self.out(mixed), probs


def _fp32_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool,
                    fused: bool = True) -> torch.Tensor:
    """Softmax attention ``[B,H,Tq,dh]`` in (at least) float32 whatever the autocast state (a bf16
    attention core of these tiny shapes is slower on CPU, and its softmax less accurate):
    one fused ``scaled_dot_product_attention`` call, or (``fused=False``, for ``torch.func.vmap``,
    which has no batching rule for the fused CPU kernel) the same in plain matmuls."""
    with torch.autocast(q.device.type, enabled=False):
        dtype = torch.promote_types(q.dtype, torch.float32)      # float64 models stay float64
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
        if fused:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
        if causal:
            length = scores.shape[-1]
            future = torch.ones(length, length, dtype=torch.bool, device=q.device).triu(1)
            scores = scores.masked_fill(future, float("-inf"))
        return scores.softmax(dim=-1) @ v


def _norm(cfg: ModelConfig) -> nn.Module:
    return nn.LayerNorm(cfg.d_model) if cfg.layer_norm else nn.Identity()


class Block(nn.Module):
    """Pre-LN block: ``x + attn(LN(x))`` and, unless attention-only, ``+ mlp(LN(x))`` (without
    LayerNorm, ``LN`` is the identity); post-LN (``norm_position="post"``): ``LN(x + attn(x))``,
    then ``LN(· + mlp(·))``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.post = cfg.norm_position == "post"
        self.ln_attn = _norm(cfg)
        self.attn = Attention(cfg)
        self.ln_mlp = None if cfg.attention_only else _norm(cfg)
        bias = cfg.biases != "none"
        self.mlp = None if cfg.attention_only else nn.Sequential(
            nn.Linear(cfg.d_model, cfg.mlp_width, bias=bias),
            nn.GELU() if cfg.activation == "gelu" else nn.ReLU(),
            nn.Linear(cfg.mlp_width, cfg.d_model, bias=bias))

    def attention_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the attention reads: ``LN(x)`` (pre-LN) or ``x`` itself (post-LN)."""
        return x if self.post else self.ln_attn(x)

    def add_attention(self, x: torch.Tensor, update: torch.Tensor) -> torch.Tensor:
        """The residual after the attention: ``x + update`` (post-LN: ``LN(x + update)``)."""
        return self.ln_attn(x + update) if self.post else x + update

    def add_mlp(self, x: torch.Tensor) -> torch.Tensor:
        """The residual after the MLP (``x`` itself in an attention-only block)."""
        if self.mlp is None:
            return x
        if self.post:
            return self.ln_mlp(x + self.mlp(x))
        return x + self.mlp(self.ln_mlp(x))

    def forward(self, x: torch.Tensor, attn_override: Optional[torch.Tensor] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Residual ``[B,T,d]`` in and out, plus the attention probabilities."""
        update, probs = self.attn(self.attention_input(x), attn_override)
        return self.add_mlp(self.add_attention(x, update)), probs


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """openai/grok's fixed position table ``[length, width]``: at position ``t``, dimension
    ``2j`` holds ``sin(t / 10000^(2j / width))`` and ``2j + 1`` holds ``cos`` of the same angle."""
    t = torch.arange(length, dtype=torch.float64)[:, None]
    even = torch.arange(0, width, 2, dtype=torch.float64)
    angle = t / 10000.0 ** (even / width)
    table = torch.empty(length, width, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, :width // 2])
    return table.float()


class Transformer(nn.Module):
    """Token + position embeddings, pre-LN blocks, final LN, linear head at the readout
    (post-LN blocks: no final LN; sinusoidal positions: a fixed buffer ``pos_table``).

    The readout is the last position (the query token when the task appends one).  The model
    embeds ``n_positions`` positions (default ``seq_len``): more where training reads past the
    readout (:meth:`sequence_logits`, ``AlgorithmicTask.eos_target``).
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, seq_len: int, n_classes: int,
                 n_positions: Optional[int] = None):
        super().__init__()
        n_positions = seq_len if n_positions is None else n_positions
        if n_positions < seq_len:
            raise ValueError(f"n_positions: must be >= seq_len={seq_len}, got {n_positions}")
        self.cfg, self.seq_len, self.n_positions = cfg, seq_len, n_positions
        self.embed = nn.Embedding(vocab_size, cfg.d_model)
        self.pos_embed = None
        if cfg.positions == "learned":
            self.pos_embed = nn.Embedding(n_positions, cfg.d_model)
        else:
            self.register_buffer("pos_table", sinusoidal_positions(n_positions, cfg.d_model))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_final = nn.Identity() if cfg.norm_position == "post" else _norm(cfg)
        self.head = nn.Linear(cfg.d_model, n_classes, bias=cfg.biases == "all")
        if cfg.init == "nanda":
            self._nanda_init()

    @torch.no_grad()
    def _nanda_init(self) -> None:
        """Nanda et al.'s initialisation (progress-measures-paper ``transformers.py``): every
        weight ``N(0, 1/d_model)`` (embeddings, attention, both MLP layers: his ``W_out`` too is
        scaled by ``d_model``, not by its fan-in), the head ``N(0, 1/n_classes)``, every bias 0.
        LayerNorm gains and shifts keep their ones and zeros.  The draws come from the global
        RNG, which :func:`build_model` seeds."""
        for name, p in self.named_parameters():
            if name.startswith("ln_") or ".ln_" in name:
                continue
            if name.endswith("bias"):
                p.zero_()
            elif name.startswith("head"):
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[0]))
            else:
                p.normal_(0.0, 1.0 / math.sqrt(self.cfg.d_model))

    def positional(self, length: int) -> torch.Tensor:
        """The position vectors of the first ``length`` positions, ``[length, d_model]``."""
        if self.pos_embed is None:
            return self.pos_table[:length]
        return self.pos_embed.weight[:length]

    @classmethod
    def for_task(cls, cfg: ModelConfig, task) -> "Transformer":
        """A model whose vocabulary, length and classes match ``task``."""
        return cls(cfg, task.vocab_size, task.seq_len, task.n_classes, task.n_positions)

    def forward(self, tokens: torch.Tensor, lean: bool = False, fused: bool = True
                ) -> torch.Tensor:
        """``tokens [B,T] long`` → readout logits ``[B, n_classes]`` (``lean``: by
        :meth:`lean_logits`, ``fused`` passed on)."""
        if lean:
            return self.lean_logits(tokens, fused)
        return self.run_with_cache(tokens, keep_cache=False)[0]

    def lean_logits(self, tokens: torch.Tensor, fused: bool = True) -> torch.Tensor:
        """Readout logits ``[B, n_classes]`` by the lean training forward: equal to
        :meth:`forward` up to float rounding (~1e-7 relative in float32), not bit for bit.

        Two changes: the attention core (scores, causal softmax, mixing) is one fused
        ``scaled_dot_product_attention`` call, always in float32 (under bf16 autocast only the
        projections, MLP and head run in bfloat16); and the last block computes only the readout
        row, the one the head reads: keys and values of every position, the query, attention
        output, residual update and MLP of the last position alone.  Used by training when
        ``precision="bf16"`` or ``lean_step=True`` (:func:`modadd.train.forward_for_training`);
        evaluation and every measurement use the exact :meth:`run_with_cache`.  ``fused=False``:
        the attention core in plain matmuls (what seed ensembles use under ``vmap``).
        """
        if tokens.dim() != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"tokens: expected shape [B, {self.seq_len}], got "
                             f"{tuple(tokens.shape)}")
        batch, length = tokens.shape
        x = self.embed(tokens) + self.positional(length)
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            h = block.attention_input(x)
            attention = block.attn
            heads, d_head, width = attention.n_heads, attention.d_head, self.cfg.d_model
            if index < last:
                q, k, v = attention.qkv(h).view(batch, length, 3, heads, d_head) \
                    .permute(2, 0, 3, 1, 4)
                mixed = _fp32_attention(q, k, v, True, fused)
                x = block.add_attention(
                    x, attention.out(mixed.transpose(1, 2).reshape(batch, length, width)))
            else:       # the readout row only: its query against every position's key
                weight, bias = attention.qkv.weight, attention.qkv.bias
                k, v = F.linear(h, weight[width:], None if bias is None else bias[width:]) \
                    .view(batch, length, 2, heads, d_head).permute(2, 0, 3, 1, 4)
                q = F.linear(h[:, -1:], weight[:width], None if bias is None else bias[:width]) \
                    .view(batch, 1, heads, d_head).transpose(1, 2)
                mixed = _fp32_attention(q, k, v, False, fused)   # the last row sees all
                x = block.add_attention(x[:, -1:], attention.out(mixed.reshape(batch, 1, width)))
            x = block.add_mlp(x)
        return self.head(self.ln_final(x[:, -1]))

    def sequence_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at every position, ``tokens [B,T] long`` → ``[B, T, n_classes]``, for any
        length ``1 <= T <= n_positions`` (the exact forward: at ``T = seq_len`` its last row is
        :meth:`forward`'s; by causality row ``t`` depends on tokens ``0..t`` only)."""
        if tokens.dim() != 2 or not 1 <= tokens.shape[1] <= self.n_positions:
            raise ValueError(f"tokens: expected shape [B, T] with 1 <= T <= "
                             f"{self.n_positions}, got {tuple(tokens.shape)}")
        x = self.embed(tokens) + self.positional(tokens.shape[1])
        for block in self.blocks:
            x = block(x)[0]
        return self.head(self.ln_final(x))

    def run_with_cache(self, tokens: torch.Tensor,
                       resid_hooks: Optional[dict[int, ResidHook]] = None,
                       attn_overrides: Optional[dict[int, torch.Tensor]] = None,
                       keep_cache: bool = True) -> tuple[torch.Tensor, dict]:
        """Forward pass returning ``(logits [B,C], cache)``.

        ``cache["resid"][l]`` is the residual stream ``[B,T,d]`` entering block ``l``
        (``l = n_layers``: after the last block, before the final LN), *after* any hook;
        ``cache["attn"][l]`` is block ``l``'s attention ``[B,H,T,T]``.  ``resid_hooks[l]``
        replaces the residual entering block ``l`` by ``hook(resid)``; ``attn_overrides[l]``
        replaces block ``l``'s attention probabilities.
        """
        if tokens.dim() != 2 or tokens.shape[1] != self.seq_len:
            raise ValueError(f"tokens: expected shape [B, {self.seq_len}], got "
                             f"{tuple(tokens.shape)}")
        hooks, overrides = resid_hooks or {}, attn_overrides or {}
        bad = [k for k in (*hooks, *overrides) if not 0 <= k <= self.cfg.n_layers]
        if bad:
            raise ValueError(f"resid_hooks/attn_overrides: layer must be in "
                             f"0..{self.cfg.n_layers}, got {bad[0]}")
        x = self.embed(tokens) + self.positional(tokens.shape[1])
        resid, attn = [], []
        for layer in range(self.cfg.n_layers + 1):
            if layer in hooks:
                x = hooks[layer](x)
            if keep_cache:
                resid.append(x)
            if layer == self.cfg.n_layers:
                break
            x, probs = self.blocks[layer](x, overrides.get(layer))
            if keep_cache:
                attn.append(probs)
        logits = self.head(self.ln_final(x[:, -1]))
        return logits, {"resid": resid, "attn": attn}

    # ---- named weight access --------------------------------------------------------------
    def attention_matrix(self, layer: int, name: str) -> torch.Tensor:
        """The ``[d, d]`` weight ``name`` ∈ W_Q/W_K/W_V/W_O of ``layer`` (a view, not a copy)."""
        if name not in MATRIX_NAMES:
            raise ValueError(f"name: must be one of {MATRIX_NAMES}, got {name!r}")
        attention = self.blocks[layer].attn
        if name == "W_O":
            return attention.out.weight
        index = MATRIX_NAMES.index(name)
        d = self.cfg.d_model
        return attention.qkv.weight[index * d:(index + 1) * d]

    def attention_matrices(self) -> torch.Tensor:
        """All attention matrices, detached copy ``[n_layers, 4, d, d]`` (order W_Q,W_K,W_V,W_O)."""
        with torch.no_grad():
            return torch.stack([torch.stack([self.attention_matrix(layer, name)
                                             for name in MATRIX_NAMES])
                                for layer in range(self.cfg.n_layers)]).clone()

    def flat_parameters(self) -> torch.Tensor:
        """All parameters as one detached vector ``[n_params]`` (``named_parameters`` order)."""
        with torch.no_grad():
            return torch.cat([p.reshape(-1) for p in self.parameters()]).clone()

    def flat_offset(self, param: torch.Tensor) -> int:
        """Where ``param`` starts in :meth:`flat_parameters` (``parameters()`` order)."""
        start = 0
        for p in self.parameters():
            if p is param:
                return start
            start += p.numel()
        raise ValueError("param: not a parameter of this model")

    def weight_sq(self) -> float:
        """Σ w² over every parameter, accumulated in float64."""
        with torch.no_grad():
            return sum(float((p.double() ** 2).sum()) for p in self.parameters())

    def load_flat_parameters(self, vector) -> "Transformer":
        """Inverse of :meth:`flat_parameters`: copy ``vector [n_params]`` into the parameters."""
        vector = torch.as_tensor(vector, dtype=torch.float32)
        total = sum(p.numel() for p in self.parameters())
        if vector.shape != (total,):
            raise ValueError(f"vector: expected shape ({total},), got {tuple(vector.shape)}")
        with torch.no_grad():
            start = 0
            for p in self.parameters():
                p.copy_(vector[start:start + p.numel()].view_as(p))
                start += p.numel()
        return self


def build_model(cfg: ModelConfig, task, seed: int) -> Transformer:
    """A freshly initialised model (PyTorch default init) from its own RNG stream ``seed``.

    The global RNG is forked, so building a model never perturbs other streams.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Transformer.for_task(cfg, task)


def readout_entropy(attn: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the readout query's attention row, ``[B,H,T,T]`` → ``[B,H]``."""
    row = attn[:, :, -1]
    return -(row * torch.log(row.clamp_min(1e-30))).sum(dim=-1)


def count_flops_per_step(cfg: ModelConfig, seq_len: int, n_classes: int, batch_size: int,
                         lean: bool = False) -> int:
    """Matmul FLOPs of one training step (forward + backward ≈ 3× forward), 2 FLOPs per MAC.

    Counts the QKV/O projections, the two attention matmuls, the MLP (if any) and the head; the
    embedding lookups, LayerNorms, softmax and optimizer are elementwise and not counted.
    ``lean``: the step of :meth:`Transformer.lean_logits`, whose last block computes the keys
    and values of every position but the query, output projection and MLP of the readout row
    only (the causal mask is not exploited by either: full ``T×T`` score matrices).
    """
    d, T = cfg.d_model, seq_len
    mlp = 0 if cfg.attention_only else 2 * 2 * d * cfg.mlp_width     # per position
    per_layer = 2 * T * (3 * d * d + d * d) + 2 * 2 * T * T * d + T * mlp
    last = per_layer
    if lean:
        last = 2 * T * 2 * d * d + 2 * (d * d + d * d) + 2 * 2 * T * d + mlp
    forward = batch_size * ((cfg.n_layers - 1) * per_layer + last + 2 * d * n_classes)
    return 3 * forward


def model_device(model: torch.nn.Module) -> torch.device:
    """Where ``model``'s parameters live (the CPU for a model without any)."""
    first = next(model.parameters(), None)
    return torch.device("cpu") if first is None else first.device
