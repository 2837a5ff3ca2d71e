"""Sparse autoencoders on the residual stream (paper §4.4), latent selection by correlation with
task features, ablation *through the model*, and held-out linear probes.

Differences from the original code (``original_code_spec.md`` §6, §10.11–10.12):

- Two SAE kinds: ``"relu"`` (ReLU encoder + L1 penalty, the paper's text) and ``"topk"`` (the
  original code: the k largest pre-activations kept with their signs, no ReLU).  Decoder columns
  are kept at unit norm in both (the original had no constraint, so an L1 penalty could be
  dodged by shrinking codes and growing the decoder).
- Activations are collected under **mixed** m on held-out examples (the original fixed m = 4,
  which makes a correlation with m impossible).
- Latents are chosen by their association with m and the marker positions (the original took
  the highest-variance latents); the same number of random live latents is the control.
- The ablation replaces the residual stream *entering* a layer by the SAE reconstruction with
  the chosen latents zeroed, and the remaining layers run (a hook), so the edit reaches the
  logits.  The original edited non-readout positions after the last layer, which almost never
  reached the readout.  Reconstruction alone (no latent zeroed) is always reported beside it.
- Linear probes are scored on held-out examples (the original scored them on their training set).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .model import Transformer
from .task import Batch

SAE_KINDS = ("relu", "topk")


@dataclass(frozen=True)
class SAEConfig:
    """Sparse-autoencoder architecture and training. Validated on construction."""

    kind: str = "relu"          # "relu" (ReLU + L1, the paper) | "topk" (the original code)
    d_sae: int = 256            # latents, >= 1 (original: 256 = 2 d_model)
    l1: float = 0.1             # relu: L1 weight on the codes of normalised activations, >= 0
    k: int = 16                 # topk: latents kept per input, in [1, d_sae] (original: 16)
    lr: float = 1e-3            # Adam learning rate, > 0
    steps: int = 3000           # optimizer steps, >= 1
    batch_size: int = 512       # activations per step (sampled with replacement), >= 1
    seed: int = 0               # initialisation and batch-sampling stream

    def __post_init__(self) -> None:
        if self.kind not in SAE_KINDS:
            raise ValueError(f"kind: must be one of {SAE_KINDS}, got {self.kind!r}")
        for name in ("d_sae", "steps", "batch_size", "k"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        if self.kind == "topk" and self.k > self.d_sae:
            raise ValueError(f"k: must be in [1, d_sae={self.d_sae}], got {self.k}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr!r}")
        if not self.l1 >= 0:
            raise ValueError(f"l1: must be >= 0, got {self.l1!r}")

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


class SparseAutoencoder(nn.Module):
    """``x ↦ z = f(W_enc (x/s − b_pre) + b_enc) ↦ x̂ = s (W_dec z + b_pre)``.

    ``s`` (a buffer set from the training data) scales activations to unit mean squared norm, so
    the L1 weight means the same at every layer and stage.  ``W_dec`` has unit-norm columns.
    """

    def __init__(self, d_in: int, cfg: SAEConfig):
        super().__init__()
        self.cfg = cfg
        generator = torch.Generator().manual_seed(cfg.seed)
        enc = torch.randn(cfg.d_sae, d_in, generator=generator) / np.sqrt(d_in)
        self.W_enc = nn.Parameter(enc)
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.W_dec = nn.Parameter(enc.T.clone())
        self.b_pre = nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.ones(()))
        self.normalize_decoder()

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale every decoder column to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``[..., d_sae]`` of activations ``[..., d_in]``."""
        pre = (x / self.scale - self.b_pre) @ self.W_enc.T + self.b_enc
        if self.cfg.kind == "relu":
            return torch.relu(pre)
        values, index = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, index, values)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Reconstruction ``[..., d_in]`` of codes ``[..., d_sae]``."""
        return (z @ self.W_dec.T + self.b_pre) * self.scale

    def forward(self, x: torch.Tensor, ablate: Sequence[int] = ()) -> torch.Tensor:
        """Reconstruction of ``x`` with the latents ``ablate`` set to zero."""
        z = self.encode(x)
        if len(ablate):
            z = z.clone()
            z[..., list(ablate)] = 0
        return self.decode(z)


def train_sae(acts: torch.Tensor, cfg: SAEConfig, progress: bool = True
              ) -> tuple[SparseAutoencoder, pd.DataFrame]:
    """Train an SAE on activations ``[N, d]``; returns it (eval mode) and its log (step, mse,
    l1, explained variance on the batch)."""
    if acts.dim() != 2 or len(acts) < 2:
        raise ValueError(f"acts: expected a [N >= 2, d] matrix, got {tuple(acts.shape)}")
    acts = acts.float()
    sae = SparseAutoencoder(acts.shape[1], cfg)
    with torch.no_grad():
        sae.scale.fill_(float(acts.pow(2).sum(1).mean().sqrt()))
        sae.b_pre.copy_(acts.mean(0) / sae.scale)
    optimizer = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    log = []
    for step in tqdm(range(cfg.steps), desc=f"SAE ({cfg.kind})", leave=False,
                     disable=not progress):
        raw = acts[torch.randint(len(acts), (cfg.batch_size,), generator=generator)]
        z = sae.encode(raw)
        x, x_hat = raw / sae.scale, z @ sae.W_dec.T + sae.b_pre      # normalised units
        mse = (x_hat - x).pow(2).sum(-1).mean()
        l1 = z.abs().sum(-1).mean()
        loss = mse + (cfg.l1 * l1 if cfg.kind == "relu" else 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        sae.normalize_decoder()
        if step % 100 == 0 or step == cfg.steps - 1:
            total = (x - x.mean(0)).pow(2).sum(-1).mean()
            log.append((step, float(mse.detach()), float(l1.detach()),
                        float(1 - mse.detach() / total)))
    return sae.eval(), pd.DataFrame(log, columns=["step", "mse", "l1", "explained_variance"])


@torch.no_grad()
def sae_quality(sae: SparseAutoencoder, acts: torch.Tensor) -> dict:
    """Explained variance ``1 − Σ‖x−x̂‖²/Σ‖x−x̄‖²``, mean L0, and the dead-latent fraction
    (latents never active) on ``acts``."""
    acts = acts.float()
    z = sae.encode(acts)
    error = (sae.decode(z) - acts).pow(2).sum()
    total = (acts - acts.mean(0)).pow(2).sum()
    active = z != 0
    return {"explained_variance": float(1 - error / total),
            "l0": float(active.sum(-1).float().mean()),
            "dead_fraction": float((~active.any(0)).float().mean())}


# ------------------------------------------------------------------------ activations and hooks

def readout_positions(batch: Batch, seq_len: int, where: str) -> torch.Tensor:
    """``[B, T] bool``: the positions an SAE reads and edits.  ``where``: ``"readout"`` (the last
    position), ``"task"`` (markers, their values and the readout) or ``"all"``."""
    mask = torch.zeros(batch.tokens.shape, dtype=torch.bool)
    if where == "all":
        return ~mask
    mask[:, seq_len - 1] = True
    if where == "readout":
        return mask
    if where != "task":
        raise ValueError(f"where: must be 'readout', 'task' or 'all', got {where!r}")
    rows, cols = torch.nonzero(batch.marker_positions >= 0, as_tuple=True)
    markers = batch.marker_positions[rows, cols]
    mask[rows, markers] = True
    mask[rows, markers + 1] = True
    return mask


@torch.no_grad()
def collect(model: Transformer, batch: Batch, layer: int, where: str = "readout",
            chunk: int = 1024) -> torch.Tensor:
    """Residual-stream vectors ``[n, d]`` entering block ``layer`` (``n_layers``: after the last
    block) at the positions ``where`` selects, example-major."""
    out = []
    for start in range(0, len(batch.tokens), chunk):
        tokens = batch.tokens[start:start + chunk]
        _, cache = model.run_with_cache(tokens)
        part = _slice(batch, start, chunk)
        out.append(cache["resid"][layer][readout_positions(part, model.seq_len, where)])
    return torch.cat(out)


def _slice(batch: Batch, start: int, size: int) -> Batch:
    return Batch(*(getattr(batch, f)[start:start + size] for f in Batch.__dataclass_fields__))


@torch.no_grad()
def logits_with_edit(model: Transformer, batch: Batch, layer: int,
                     edit: Optional[callable], where: str = "readout",
                     chunk: int = 1024) -> torch.Tensor:
    """Logits ``[B, C]`` when the residual entering ``layer`` at the ``where`` positions is
    replaced by ``edit(vectors)`` (None: no hook) and the remaining layers run."""
    out = []
    for start in range(0, len(batch.tokens), chunk):
        part = _slice(batch, start, chunk)
        mask = readout_positions(part, model.seq_len, where)

        def hook(resid: torch.Tensor, mask=mask) -> torch.Tensor:
            resid = resid.clone()
            resid[mask] = edit(resid[mask]).to(resid.dtype)
            return resid

        hooks = {} if edit is None else {layer: hook}
        out.append(model.run_with_cache(part.tokens, resid_hooks=hooks, keep_cache=False)[0])
    return torch.cat(out)


# ------------------------------------------------------------------------ features and selection

def example_features(batch: Batch, max_m: int) -> pd.DataFrame:
    """Per-example task features: ``m``, ``label``, ``pos_i`` (position of marker i, NaN if
    absent) and ``value_i`` (its value), i = 1..max_m."""
    frame = {"m": batch.m.numpy().astype(float), "label": batch.labels.numpy().astype(float)}
    width = batch.marker_positions.shape[1]
    for i in range(max_m):
        pos = batch.marker_positions[:, i].numpy() if i < width else np.full(len(batch.m), -1)
        val = batch.values[:, i].numpy() if i < width else np.full(len(batch.m), -1)
        frame[f"pos_{i + 1}"] = np.where(pos >= 0, pos, np.nan)
        frame[f"value_{i + 1}"] = np.where(pos >= 0, val, np.nan)
    return pd.DataFrame(frame)


CATEGORICAL = ("label",)       # plus every value_i: association by the correlation ratio


def association(codes: np.ndarray, features: pd.DataFrame) -> pd.DataFrame:
    """``[d_sae, n_features]`` association in [0, 1] of every latent with every feature:
    ``|Pearson r|`` for ordered features (m, marker positions), the correlation ratio η (the
    share of a latent's standard deviation explained by the category means) for categorical
    ones (label, values).  Rows where a feature is NaN are left out; constant latents give 0."""
    codes = np.asarray(codes, np.float64)
    out = {}
    for name in features.columns:
        f = features[name].to_numpy(np.float64)
        keep = np.isfinite(f)
        z, f = codes[keep], f[keep]
        zc = z - z.mean(0)
        total = (zc ** 2).sum(0)
        with np.errstate(invalid="ignore", divide="ignore"):
            if name in CATEGORICAL or name.startswith("value_"):
                between = sum(((f == c).sum() * (z[f == c].mean(0) - z.mean(0)) ** 2)
                              for c in np.unique(f))
                value = np.sqrt(between / total)
            else:
                fc = f - f.mean()
                value = np.abs(fc @ zc) / np.sqrt((fc @ fc) * total)
        out[name] = np.nan_to_num(value, nan=0.0)
    return pd.DataFrame(out)


def select_latents(assoc: pd.DataFrame, n: int, features: Sequence[str],
                   alive: np.ndarray) -> list[int]:
    """The ``n`` live latents with the largest association with any of ``features``."""
    score = assoc[list(features)].max(axis=1).to_numpy().copy()
    score[~alive] = -np.inf
    order = np.argsort(-score, kind="stable")
    return [int(i) for i in order[:n] if np.isfinite(score[i])]


# --------------------------------------------------------------------------------------- probes

def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                 test_y: torch.Tensor, l2: float = 1e-3, iterations: int = 200) -> dict:
    """Multinomial logistic regression (standardised inputs, L2 ``l2``, L-BFGS, float64).

    Returns train and **held-out** accuracy and the majority-class rate of the test labels."""
    mean, std = train_x.mean(0), train_x.std(0).clamp_min(1e-8)
    xs = [((x - mean) / std).double() for x in (train_x, test_x)]
    classes, y_train = torch.unique(train_y, return_inverse=True)
    weight = torch.zeros(xs[0].shape[1], len(classes), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(classes), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(xs[0] @ weight + bias, y_train) \
            + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        predict = [classes[(x @ weight + bias).argmax(-1)] for x in xs]
    majority = float((test_y == torch.mode(test_y).values).float().mean())
    return {"train_accuracy": float((predict[0] == train_y).float().mean()),
            "test_accuracy": float((predict[1] == test_y).float().mean()),
            "majority": majority}
