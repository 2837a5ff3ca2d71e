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

Length: longer than ~400 lines because the SAE, its training, latent selection, ablation through
the model and the held-out probes are one pipeline over the same cached activations and
settings.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from .config import RunConfig, stream_seed
from .model import Transformer
from .store import Run, cached, is_cached, load_or_train, load_or_train_many, run_key, run_parallel
from .task import Batch, sample_batch

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
def collect_activations(model: Transformer, batch: Batch, layer: int, where: str = "readout",
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


# ------------------------------------------------------------------------------ study analysis

@dataclass(frozen=True)
class ProbeSettings:
    """What :func:`probe_table` does at one (run, step, layer). Validated on construction."""

    n_train: int = 8192           # mixed-m examples for SAE and probe training, >= 16
    n_eval: int = 1024            # held-out examples per m for ablation and probe testing, >= 8
    where: str = "readout"        # positions the SAE reads and edits: "readout" | "task" | "all"
    n_latents: int = 6            # latents zeroed per ablation (the original: 6), >= 1
    random_draws: int = 20        # random-latent draws per ablation, >= 1
    kinds: tuple = SAE_KINDS      # SAE kinds trained
    d_sae: int = 256              # latents per SAE
    sae_steps: int = 3000         # SAE optimizer steps

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", tuple(self.kinds))
        for name, low in (("n_train", 16), ("n_eval", 8), ("n_latents", 1),
                          ("random_draws", 1), ("d_sae", 1), ("sae_steps", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
        if self.where not in ("readout", "task", "all"):
            raise ValueError(f"where: must be 'readout', 'task' or 'all', got {self.where!r}")
        bad = [k for k in self.kinds if k not in SAE_KINDS]
        if bad or not self.kinds:
            raise ValueError(f"kinds: must be a non-empty subset of {SAE_KINDS}, got "
                             f"{self.kinds}")

    def sae_config(self, kind: str, seed: int) -> SAEConfig:
        """The SAE trained for ``kind`` (seeded from the measurement stream)."""
        return SAEConfig(kind=kind, d_sae=self.d_sae, steps=self.sae_steps, seed=seed)


STAGES = (0.05, 0.25, 1.0)       # early, mid and late, as fractions of training


def stage_steps(cfg: RunConfig, fractions: Sequence[float] = STAGES) -> list[int]:
    """The snapshot steps nearest to ``fractions`` of training (sorted, distinct)."""
    from .train import snapshot_steps
    steps = snapshot_steps(cfg)
    bad = [f for f in fractions if not 0 <= f <= 1]
    if bad:
        raise ValueError(f"stages: fractions must be in [0, 1], got {bad}")
    return sorted({int(steps[np.abs(steps - f * cfg.train.n_steps).argmin()]) for f in fractions})


def default_layers(cfg: RunConfig) -> list[int]:
    """The residual streams probed by default: entering the middle block and the last block."""
    return sorted({cfg.model.n_layers // 2, cfg.model.n_layers - 1})


SELECTIONS = {"m / positions": ("m", "pos_"), "label / values": ("label", "value_")}


def _feature_names(features: pd.DataFrame, prefixes: Sequence[str]) -> list[str]:
    return [c for c in features.columns if any(c == p or (p.endswith("_") and c.startswith(p))
                                               for p in prefixes)]


def _measurement_data(cfg: RunConfig, step: int, settings: ProbeSettings):
    """(task with per-example positions, mixed-m training examples, held-out examples per m),
    from the run's measurement stream for ``step``."""
    task = replace(cfg.task, positions="per_example")
    generator = torch.Generator().manual_seed(stream_seed(cfg.seed, f"measure:sae:{step}"))
    train = sample_batch(task, settings.n_train, None, generator=generator)
    evals = {m: sample_batch(task, settings.n_eval, m, generator=generator)
             for m in task.m_values}
    return task, train, evals


def _fit(cfg: RunConfig, step: int, layer: int, kind: str, settings: ProbeSettings,
         acts: torch.Tensor, readout: torch.Tensor, features: pd.DataFrame):
    """(SAE, readout codes, alive mask, associations, chosen latents per selection) of one SAE
    kind at (step, layer); deterministic given the run's measurement streams."""
    sae, _ = train_sae(acts, settings.sae_config(
        kind, stream_seed(cfg.seed, f"measure:sae-init:{step}:{layer}:{kind}") % 2**31),
        progress=False)
    with torch.no_grad():
        codes = sae.encode(readout).numpy()
    alive = (codes != 0).mean(0) >= 1e-3
    assoc = association(codes, features)
    chosen = {selection: select_latents(assoc, settings.n_latents,
                                        _feature_names(features, prefixes), alive)
              for selection, prefixes in SELECTIONS.items()}
    return sae, codes, alive, assoc, chosen


def _probe_rows(cfg: RunConfig, run: Run, step: int, layer: int, settings: ProbeSettings
                ) -> list[tuple]:
    task, train, evals = _measurement_data(cfg, step, settings)
    rng = np.random.default_rng(stream_seed(cfg.seed, f"measure:sae-latents:{step}:{layer}"))
    model = run.model_at(list(run.snapshot_steps).index(step))
    rows = []
    readout_train = collect_activations(model, train, layer, "readout")
    eval_all = concat_batches(list(evals.values()), task.max_m)
    features = example_features(train, task.max_m)
    clean = {m: edited_accuracy(model, b, layer, None, settings.where) for m, b in evals.items()}
    for m, value in clean.items():
        rows.append(("", "accuracy:clean", m, -1, value))
    acts = collect_activations(model, train, layer, settings.where)
    held_acts = collect_activations(model, eval_all, layer, settings.where)
    for kind in settings.kinds:
        sae, codes, alive, assoc, chosen = _fit(cfg, step, layer, kind, settings, acts,
                                                readout_train, features)
        for name, value in sae_quality(sae, held_acts).items():
            rows.append((kind, name, -1, -1, value))
        rows.append((kind, "alive_latents", -1, -1, float(alive.sum())))
        for selection, prefixes in SELECTIONS.items():
            names = _feature_names(features, prefixes)
            top = assoc.loc[chosen[selection], names].max(axis=1).to_numpy()
            for rank, value in enumerate(top):
                rows.append((kind, f"association:{selection}", -1, rank, float(value)))
            for rank, latent in enumerate(chosen[selection][:3]):   # what the top latents encode
                for m_value in task.m_values:
                    part = features.m.to_numpy() == m_value
                    rows.append((kind, f"mean_code_by_m:{selection}", m_value, rank,
                                 float(codes[part, latent].mean())))
        ablations = {"reconstruction": [()], **{f"zero {s}": [tuple(c)]
                                               for s, c in chosen.items()}}
        live_ids = np.flatnonzero(alive)
        ablations["zero random"] = [tuple(rng.choice(live_ids, min(settings.n_latents,
                                                                   len(live_ids)),
                                                     replace=False).tolist())
                                    for _ in range(settings.random_draws)]
        for label, latent_sets in ablations.items():
            for draw, latents in enumerate(latent_sets):
                for m, batch in evals.items():
                    value = edited_accuracy(model, batch, layer,
                                       lambda v, latents=latents: sae(v, ablate=latents),
                                       settings.where)
                    rows.append((kind, f"accuracy:{label}", m, draw, value))
    return rows


def concat_batches(batches: Sequence[Batch], max_m: int) -> Batch:
    """One batch of all examples; marker positions and values padded with -1 to ``max_m``."""
    def pad(tensor: torch.Tensor) -> torch.Tensor:
        out = torch.full((tensor.shape[0], max_m), -1, dtype=tensor.dtype)
        out[:, :tensor.shape[1]] = tensor
        return out
    return Batch(torch.cat([b.tokens for b in batches]), torch.cat([b.labels for b in batches]),
                 torch.cat([pad(b.marker_positions) for b in batches]),
                 torch.cat([pad(b.values) for b in batches]), torch.cat([b.m for b in batches]))


def edited_accuracy(model: Transformer, batch: Batch, layer: int, edit, where: str) -> float:
    """Accuracy of ``model`` on ``batch`` with the residual edit of :func:`logits_with_edit`."""
    logits = logits_with_edit(model, batch, layer, edit, where)
    return float((logits.argmax(-1) == batch.labels).float().mean())


PROBE_VERSION = 1


def probe_table(cfg: RunConfig, steps: Sequence[int], layers: Sequence[int],
                settings: ProbeSettings = ProbeSettings()) -> pd.DataFrame:
    """SAE quality, latent associations, ablation accuracies and held-out probes of one run
    (needs ``store_full_params``) at each step and layer, cached, as tidy rows ``seed, step,
    layer, sae, quantity, m, draw, value``.

    Quantities: ``accuracy:clean`` per m; per SAE kind ``explained_variance, l0, dead_fraction,
    alive_latents``, ``association:<selection>`` (rank = draw), ``mean_code_by_m:<selection>``
    (top-3 latents, per m), and ``accuracy:{reconstruction, zero m / positions, zero label /
    values, zero random}`` per m (random: one row per draw).
    """
    inputs = _probe_inputs(cfg, steps, layers, settings)

    def compute() -> pd.DataFrame:
        run = load_or_train(cfg, trajectories=True, progress=False)
        missing = [s for s in steps if s not in set(run.snapshot_steps.tolist())]
        if missing:
            raise ValueError(f"steps: {missing} are not snapshot steps of the run")
        bad = [l for l in layers if not 0 <= l <= cfg.model.n_layers]
        if bad:
            raise ValueError(f"layers: must be in 0..{cfg.model.n_layers}, got {bad}")
        rows = []
        points = [(s, l) for s in steps for l in layers]
        for step, layer in tqdm(points, desc=f"SAE probing seed {cfg.seed}", leave=False):
            rows += [(cfg.seed, step, layer, *r) for r in _probe_rows(cfg, run, step, layer,
                                                                      settings)]
        return pd.DataFrame(rows, columns=["seed", "step", "layer", "sae", "quantity", "m",
                                           "draw", "value"])

    return cached("sae-probe", PROBE_VERSION, inputs, compute)


def linear_probe_table(cfg: RunConfig, steps: Sequence[int],
                       settings: ProbeSettings = ProbeSettings()) -> pd.DataFrame:
    """Held-out linear probes of the readout residual entering every layer (and after the last)
    for m and for the label, at each step (cached): rows ``seed, step, layer, target,
    train_accuracy, test_accuracy, majority``.  Same examples as :func:`probe_table`."""
    inputs = _linear_inputs(cfg, steps, settings)

    def compute() -> pd.DataFrame:
        run = load_or_train(cfg, trajectories=True, progress=False)
        rows = []
        for step in tqdm(steps, desc=f"linear probes seed {cfg.seed}", leave=False):
            task, train, evals = _measurement_data(cfg, step, settings)
            model = run.model_at(list(run.snapshot_steps).index(step))
            test = concat_batches(list(evals.values()), task.max_m)
            for layer in range(cfg.model.n_layers + 1):
                x_train = collect_activations(model, train, layer, "readout")
                x_test = collect_activations(model, test, layer, "readout")
                for target, field in (("m", "m"), ("label", "labels")):
                    probe = linear_probe(x_train, getattr(train, field), x_test,
                                         getattr(test, field))
                    rows.append((cfg.seed, step, layer, target, probe["train_accuracy"],
                                 probe["test_accuracy"], probe["majority"]))
        return pd.DataFrame(rows, columns=["seed", "step", "layer", "target", "train_accuracy",
                                           "test_accuracy", "majority"])

    return cached("linear-probes", PROBE_VERSION, inputs, compute)


def _probe_inputs(cfg: RunConfig, steps, layers, settings: ProbeSettings) -> dict:
    return {"run": run_key(cfg), "steps": [int(s) for s in steps],
            "layers": [int(l) for l in layers], "settings": asdict(settings)}


def _linear_inputs(cfg: RunConfig, steps, settings: ProbeSettings) -> dict:
    return {"run": run_key(cfg), "steps": [int(s) for s in steps],
            "n_train": settings.n_train, "n_eval": settings.n_eval}


def _tables_worker(job: tuple) -> None:
    cfg, steps, layers, settings = job
    probe_table(cfg, steps, layers, settings)
    linear_probe_table(cfg, steps, settings)


def compute_tables(cfgs: Sequence[RunConfig], steps: Sequence[int], layers: Sequence[int],
                   settings: ProbeSettings = ProbeSettings(), workers: int = 1) -> None:
    """Fill the caches of :func:`probe_table` and :func:`linear_probe_table` for every run with
    ``workers`` processes, skipping runs already cached; missing runs are trained first."""
    jobs = [(c, list(steps), list(layers), settings) for c in cfgs
            if not (is_cached("sae-probe", PROBE_VERSION, _probe_inputs(c, steps, layers,
                                                                       settings))
                    and is_cached("linear-probes", PROBE_VERSION,
                                  _linear_inputs(c, steps, settings)))]
    if jobs:
        load_or_train_many([j[0] for j in jobs], n_workers=workers, trajectories=True)
        run_parallel(_tables_worker, jobs, workers, desc="SAE probing runs")


def latent_profile(cfg: RunConfig, step: int, layer: int,
                   settings: ProbeSettings = ProbeSettings(), top: int = 3) -> pd.DataFrame:
    """What the ``top`` latents of each selection encode (cached): their mean code on the
    training examples for every value of m and of every marker position, for each SAE kind.

    The SAEs, data and selections are those of :func:`probe_table` at (step, layer). Rows:
    ``seed, step, layer, sae, selection, rank, latent, feature, feature_value, mean_code, n``.
    """
    inputs = {**_probe_inputs(cfg, [step], [layer], settings), "top": top}

    def compute() -> pd.DataFrame:
        run = load_or_train(cfg, trajectories=True, progress=False)
        task, train, _ = _measurement_data(cfg, step, settings)
        model = run.model_at(list(run.snapshot_steps).index(step))
        readout = collect_activations(model, train, layer, "readout")
        acts = collect_activations(model, train, layer, settings.where)
        features = example_features(train, task.max_m)
        names = ["m"] + [f"pos_{i + 1}" for i in range(task.max_m)]
        rows = []
        for kind in settings.kinds:
            _, codes, _, _, chosen = _fit(cfg, step, layer, kind, settings, acts, readout,
                                          features)
            for selection, latents in chosen.items():
                for rank, latent in enumerate(latents[:top]):
                    for name in names:
                        column = features[name].to_numpy()
                        for value in np.unique(column[np.isfinite(column)]):
                            part = column == value
                            rows.append((cfg.seed, step, layer, kind, selection, rank, latent,
                                         name, float(value), float(codes[part, latent].mean()),
                                         int(part.sum())))
        return pd.DataFrame(rows, columns=["seed", "step", "layer", "sae", "selection", "rank",
                                           "latent", "feature", "feature_value", "mean_code",
                                           "n"])

    return cached("sae-latent-profile", PROBE_VERSION, inputs, compute)
