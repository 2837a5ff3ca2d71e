"""Chapter 11: the paper's open questions (§5.3 and seed 000), measured at a 2-core-CPU scale.

1. **Scaling** of the execution dimension with width and depth (:func:`scaling_study`,
   :func:`dimension_sweep`, :func:`trend`).
2. **Early prediction** of final held-out accuracy from diagnostics of the first 10–20% of
   training (:func:`prediction_study`, :func:`early_features`, :func:`cross_validate`).  The
   features of a window read only what a run had recorded by the window's last step
   (tested by truncating runs).
3. **Same attractor?** Principal angles between the *final* execution subspaces of mixed and
   curriculum runs (:func:`modadd.manifold.pair_angle_table` with ``last_fraction``).
4. **Multiplication against addition across widths** (the ``mul`` arm of :func:`scaling_study`).

The base run (:data:`OPEN_BASE`) is the book's marker-sum task at the smaller scale that ~110
runs need: ``T=16``, addition mod 7 (so that chapter 8's multiplication mod 7 is the same
task with another operation), m ∈ {1, 2, 3}, a 2-layer d=64 attention-only model, AdamW with a
cosine schedule, 2000 steps, a snapshot every 25 steps (81 snapshots).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import manifold as MF
from . import metrics as M
from .config import RunConfig, TrainConfig, stream_seed
from .model import ModelConfig
from .presets import MUL_C, single_m, with_task
from .stats import auc, block_permutation, out_of_fold, percentile, r_squared
from .store import Run, cached, load_or_train, run_key
from .task import TaskConfig

FEATURE_VERSION = 1
CV_VERSION = 2          # 2: balanced class weights, block permutation null, p-values
SWEEP_VERSION = 1
THRESHOLD = 0.9

OPEN_BASE = RunConfig(
    task=TaskConfig(T=16, C=MUL_C, m_values=(1, 2, 3)),
    model=ModelConfig(n_layers=2, d_model=64, n_heads=4, attention_only=True),
    train=TrainConfig(optimizer="adamw", lr=1e-3, lr_schedule="cosine", warmup_steps=100,
                      weight_decay=0.01, batch_size=128, n_steps=2000, snapshot_every=25,
                      probe_size=512, checkpoint_every=500))

_SMOKE_BASE = RunConfig(
    task=TaskConfig(T=8, C=5, m_values=(1, 2)),
    model=ModelConfig(n_layers=2, d_model=16, n_heads=2, attention_only=True),
    train=TrainConfig(optimizer="adamw", lr=1e-2, lr_schedule="cosine", warmup_steps=5,
                      batch_size=32, n_steps=120, snapshot_every=4, probe_size=64,
                      checkpoint_every=60))

WIDTHS = (32, 64, 128, 256)
DEPTHS = (1, 2, 3, 4, 5, 6)


@dataclass(frozen=True)
class OpenScale:
    """The grids of one scale: base run, widths (at the base depth), depths (at the base
    width), seeds, prediction grid (m values, optimizer settings, seeds)."""

    base: RunConfig
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    seeds: int
    m_values: tuple[int, ...]
    optimizers: tuple[str, ...]
    prediction_seeds: int


SCALES = {
    "book": OpenScale(OPEN_BASE, WIDTHS, DEPTHS, seeds=5, m_values=(1, 2, 3, 4),
                      optimizers=("adamw 1e-3", "adamw 3e-4 constant", "sgd 0.1 momentum"),
                      prediction_seeds=4),
    "smoke": OpenScale(_SMOKE_BASE, (8, 16), (1, 2), seeds=2, m_values=(1, 2),
                       optimizers=("adamw 1e-3", "sgd 0.1 momentum"), prediction_seeds=3),
}


def open_scale(name: str) -> OpenScale:
    """The grids of scale ``name`` (``"book"`` or ``"smoke"``)."""
    if name not in SCALES:
        raise ValueError(f"scale: must be one of {', '.join(map(repr, SCALES))}, got {name!r}")
    return SCALES[name]


def with_shape(cfg: RunConfig, n_layers: Optional[int] = None,
               d_model: Optional[int] = None) -> RunConfig:
    """``cfg`` with another depth and/or width (heads kept; head width ``d_model / n_heads``)."""
    model = cfg.model
    return replace(cfg, model=replace(model, n_layers=model.n_layers if n_layers is None
                                      else n_layers,
                                      d_model=model.d_model if d_model is None else d_model))


def with_optimizer(cfg: RunConfig, setting: str) -> RunConfig:
    """``cfg`` with one of the prediction grid's optimizer settings: ``"adamw 1e-3"`` (the
    base: cosine, warm-up), ``"adamw 3e-4 constant"`` (the original code's rate, no schedule)
    or ``"sgd 0.1 momentum"`` (SGD, momentum 0.9, cosine, warm-up, no weight decay)."""
    t = cfg.train
    if setting == "adamw 1e-3":
        train = replace(t, optimizer="adamw", lr=1e-3)
    elif setting == "adamw 3e-4 constant":
        train = replace(t, optimizer="adamw", lr=3e-4, lr_schedule="constant", warmup_steps=0)
    elif setting == "sgd 0.1 momentum":
        train = replace(t, optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.0)
    else:
        raise ValueError("optimizer setting: must be one of 'adamw 1e-3', "
                         f"'adamw 3e-4 constant', 'sgd 0.1 momentum', got {setting!r}")
    return replace(cfg, train=train)


def scaling_study(scale: str = "book", seeds: Optional[int] = None
                  ) -> dict[str, list[RunConfig]]:
    """Questions 1 and 4: by role, ``"width"`` (addition, every width at the base depth),
    ``"depth"`` (every depth at the base width; the base shape is shared with ``"width"``),
    ``"width mul"`` (multiplication at every width, same seeds, hence same initial weights as
    the addition runs of equal shape); seeds ``0..seeds-1`` (default: the scale's)."""
    s = open_scale(scale)
    count = s.seeds if seeds is None else seeds
    if count < 1:
        raise ValueError(f"seeds: must be >= 1, got {count}")
    seeds = range(count)
    width = [with_shape(s.base, d_model=d).with_seed(seed) for d in s.widths for seed in seeds]
    depth = [with_shape(s.base, n_layers=L).with_seed(seed) for L in s.depths for seed in seeds]
    mul = [with_task(c, op="mul") for c in width]
    return {"width": width, "depth": depth, "width mul": mul}


def prediction_study(scale: str = "book") -> list[RunConfig]:
    """Question 2's runs: every m of the grid trained alone from scratch, under every
    optimizer setting, with ``prediction_seeds`` seeds, recording diagnostics at every second
    snapshot (gradient and parameter norms, update ratios, activations, readout attention)."""
    s = open_scale(scale)
    base = replace(s.base, train=replace(s.base.train,
                                         diagnostics_every=2 * s.base.train.snapshot_every))
    out = []
    for m in s.m_values:
        task = with_task(base, m_values=(m,))
        for setting in s.optimizers:
            for seed in range(s.prediction_seeds):
                out.append(single_m(with_optimizer(task, setting), m).with_seed(seed))
    return out


def setting_of(cfg: RunConfig) -> str:
    """The prediction grid's optimizer label of ``cfg``."""
    t = cfg.train
    if t.optimizer == "sgd":
        return "sgd 0.1 momentum"
    return "adamw 3e-4 constant" if t.lr_schedule == "constant" else "adamw 1e-3"


# ------------------------------------------------------------------------ Q1/Q4: dimensions

def _sweep_rows(cfg: RunConfig, null_draws: int) -> list[tuple]:
    run = load_or_train(cfg, trajectories=True, progress=False)
    stored = MF.compute_increment_grams(run)
    H = stored["increment_grams"].astype(np.float64)
    G = np.stack([[M.walk_gram(h) for h in layer] for layer in H])
    rng = np.random.default_rng(stream_seed(cfg.seed, "measure:open-dimensions"))
    dim = cfg.model.d_model ** 2
    rows = []
    for group, label, blocks in MF.groupings(cfg.model.n_layers):
        if group == "layer":
            continue
        g = sum(G[layer, b] for layer, b in blocks)
        h = sum(H[layer, b] for layer, b in blocks)
        for row in MF.dimension_rows(g, h, dim * len(blocks), rng, null_draws, (THRESHOLD,)):
            rows.append((run_key(cfg), cfg.task.op, cfg.model.n_layers, cfg.model.d_model,
                         cfg.seed, group, label, *row))
    return rows


def dimension_sweep(cfgs: Sequence[RunConfig], null_draws: int = 10) -> pd.DataFrame:
    """r90 and participation ratio of every attention block and of all blocks jointly, for
    every run, with both nulls of :func:`modadd.manifold.dimension_rows` (null draws
    averaged).  Rows: key, op, layers, width, seed, group (``block`` | ``all``), label,
    source, rank, participation.  Cached as one table (computing it needs trajectories)."""
    def compute() -> pd.DataFrame:
        rows = []
        for cfg in tqdm(cfgs, desc="dimensions", leave=False):
            rows += _sweep_rows(cfg, null_draws)
        table = pd.DataFrame(rows, columns=["key", "op", "layers", "width", "seed", "group",
                                            "label", "source", "draw", "threshold", "rank",
                                            "participation"])
        keys = ["key", "op", "layers", "width", "seed", "group", "label", "source"]
        return table.groupby(keys, as_index=False, sort=False)[["rank", "participation"]].mean()
    inputs = {"runs": [run_key(c) for c in cfgs], "null_draws": null_draws,
              "threshold": THRESHOLD}
    return cached("open-dimensions", SWEEP_VERSION, inputs, compute)


def per_run_dimensions(table: pd.DataFrame) -> pd.DataFrame:
    """One row per run and source: ``block_r90`` and ``block_pr`` (mean over the run's
    blocks), ``joint_r90`` and ``joint_pr`` (all attention jointly)."""
    keys = ["key", "op", "layers", "width", "seed", "source"]
    blocks = table[table.group == "block"].groupby(keys, as_index=False)[
        ["rank", "participation"]].mean().rename(columns={"rank": "block_r90",
                                                          "participation": "block_pr"})
    joint = table[table.group == "all"][keys + ["rank", "participation"]].rename(
        columns={"rank": "joint_r90", "participation": "joint_pr"})
    return blocks.merge(joint, on=keys)


def trend(frame: pd.DataFrame, x: str, y: str, log2: bool = False,
          confidence: float = 0.95) -> dict:
    """Least-squares slope of ``y`` on ``x`` (``log2 x`` if ``log2``), fitted separately for
    each seed, then a t interval over seeds: ``{slope, low, high, n, intercept}``.  Seeds are
    the independent units (each fit uses one seed's runs at every x)."""
    from .stats import mean_ci
    slopes, intercepts = [], []
    for _, part in frame.groupby("seed"):
        xs = np.log2(part[x].to_numpy(float)) if log2 else part[x].to_numpy(float)
        if len(np.unique(xs)) < 2:
            continue
        slope, intercept = np.polyfit(xs, part[y].to_numpy(float), 1)
        slopes.append(round(float(slope), 12))      # exact zeros stay zero (flat integer ranks)
        intercepts.append(intercept)
    mean, low, high = mean_ci(slopes, confidence)
    return {"slope": mean, "low": low, "high": high, "n": len(slopes),
            "intercept": float(np.mean(intercepts)) if intercepts else np.nan}


# ---------------------------------------------------------------------- Q2: early prediction

@dataclass(frozen=True)
class RunRecord:
    """What a run had recorded, as plain arrays: the per-step training loss and gradient norm,
    the snapshot steps with the joint increment Gram of all attention blocks, and the tidy
    diagnostics table (rows ``step, metric, layer, name, value``).  :meth:`until` is what the
    run had recorded by a step — the only view :func:`early_features` reads."""

    n_steps: int
    train_loss: np.ndarray          # [n_steps], loss of the update at each step
    grad_norm: np.ndarray           # [n_steps]
    snapshot_steps: np.ndarray      # [n]
    increment_gram: np.ndarray      # [n-1, n-1], joint over attention blocks
    diagnostics: pd.DataFrame       # step, metric, layer, name, value

    @classmethod
    def build(cls, n_steps: int, train_loss, grad_norm, snapshot_steps, snapshots,
              metrics: pd.DataFrame) -> "RunRecord":
        """From raw logs: per-step ``train_loss`` and ``grad_norm``, the snapshot steps and
        attention snapshots ``[n, L, 4, d, d]``, and a tidy metrics table (its diagnostic
        rows are kept)."""
        n = len(snapshot_steps)
        flat = np.asarray(snapshots[:n], np.float64).reshape(n, -1)
        steps = np.diff(flat, axis=0)
        diag = metrics[metrics.metric.isin(DIAGNOSTIC_METRICS)]
        return cls(int(n_steps), np.asarray(train_loss, float), np.asarray(grad_norm, float),
                   np.asarray(snapshot_steps), steps @ steps.T,
                   diag[["step", "metric", "layer", "name", "value"]].reset_index(drop=True))

    @classmethod
    def from_run(cls, run: Run) -> "RunRecord":
        """From a stored run (needs its trajectories)."""
        log = run.train_log.sort_values("step")
        return cls.build(run.config.train.n_steps, log.loss, log.grad_norm,
                         run.snapshot_steps, run.snapshots, run.metrics)

    def until(self, step: int) -> "RunRecord":
        """The record as it stood after ``step`` updates: losses and gradient norms of steps
        ``< step``, snapshots at steps ``<= step``, diagnostics recorded at steps ``<= step``
        (a diagnostic row at step s is written while update s+1 is computed — its gradient,
        its size, the activations after it — so it is available for s < step only)."""
        keep = int(np.searchsorted(self.snapshot_steps, step, side="right"))
        d = self.diagnostics
        return RunRecord(self.n_steps, self.train_loss[:step], self.grad_norm[:step],
                         self.snapshot_steps[:keep],
                         self.increment_gram[:keep - 1, :keep - 1], d[d.step < step])


DIAGNOSTIC_METRICS = ("grad_norm", "param_norm", "update_ratio", "weight_sq", "attn_entropy")
BASELINE_FEATURES = ("train_loss",)
DIAGNOSTIC_FEATURES = ("r90_so_far", "pr_so_far", "attn_entropy", "attn_entropy_drop",
                       "log_grad_norm", "grad_norm_cv", "log_update_ratio", "weight_growth")


def early_features(record: RunRecord, step: int, smooth: int = 25) -> dict[str, float]:
    """Features of a run at training step ``step``, from :meth:`RunRecord.until` only:

    - ``train_loss``: mean training loss of the last ``smooth`` updates (the baseline);
    - ``r90_so_far`` / ``pr_so_far``: r90 and participation ratio of all attention weights
      jointly over the snapshots so far (the trajectory ``W_t − W_0``, t ≤ step);
    - ``attn_entropy``: the readout query's attention entropy in the last layer (mean over
      heads and probes) at the last diagnostic record, as a fraction of its value at step 0
      (``attn_entropy_drop`` = 1 − that);
    - ``log_grad_norm``: log of the mean gradient norm of the last ``smooth`` updates;
      ``grad_norm_cv``: their coefficient of variation;
    - ``log_update_ratio``: log of the mean (over tensors) relative update size at the last
      record;
    - ``weight_growth``: Σw² at the last record over Σw² at step 0.
    """
    if not 0 < step <= record.n_steps:
        raise ValueError(f"step: must be in 1..{record.n_steps}, got {step}")
    r = record.until(step)
    if len(r.snapshot_steps) < 3:
        raise ValueError(f"step: needs >= 3 snapshots by step {step}, "
                         f"got {len(r.snapshot_steps)}")
    out = {"train_loss": float(np.mean(r.train_loss[-smooth:]))}
    ratios = M.spectrum_from_gram(M.walk_gram(r.increment_gram))
    out["r90_so_far"] = float(M.rank_at(ratios, THRESHOLD))
    out["pr_so_far"] = M.participation_ratio(ratios)
    d = r.diagnostics
    entropy = d[(d.metric == "attn_entropy") & (d.layer == d.layer.max())]
    by_step = entropy.groupby("step").value.mean()
    out["attn_entropy"] = float(by_step.iloc[-1] / by_step.iloc[0])
    out["attn_entropy_drop"] = 1.0 - out["attn_entropy"]
    grads = r.grad_norm[-smooth:]
    out["log_grad_norm"] = float(np.log(np.mean(grads)))
    out["grad_norm_cv"] = float(np.std(grads) / np.mean(grads))
    updates = d[d.metric == "update_ratio"]
    last = updates[updates.step == updates.step.max()].value
    out["log_update_ratio"] = float(np.log(last.mean()))
    weights = d[d.metric == "weight_sq"].sort_values("step").value
    out["weight_growth"] = float(weights.iloc[-1] / weights.iloc[0])
    return out


def feature_table(cfgs: Sequence[RunConfig], fractions: Sequence[float] = (0.1, 0.15, 0.2),
                  success: float = 0.9) -> pd.DataFrame:
    """Early features (:func:`early_features`) of every run at each fraction of training,
    with the outcome: one row per run and fraction with columns key, m, optimizer, seed,
    fraction, step, the features, ``final_accuracy`` (held-out, last evaluation) and
    ``success`` (final accuracy ≥ ``success``).  Cached (computing it needs trajectories)."""
    def compute() -> pd.DataFrame:
        rows = []
        for cfg in tqdm(cfgs, desc="early features", leave=False):
            run = load_or_train(cfg, trajectories=True, progress=False)
            record = RunRecord.from_run(run)
            acc = run.metrics[(run.metrics.metric == "accuracy")]
            final = float(acc[acc.step == acc.step.max()].value.mean())
            for fraction in fractions:
                step = _window_step(cfg, fraction)
                rows.append({"key": run_key(cfg), "m": cfg.train.single_m,
                             "optimizer": setting_of(cfg), "seed": cfg.seed,
                             "fraction": fraction, "step": step,
                             **early_features(record, step), "final_accuracy": final})
        table = pd.DataFrame(rows)
        table["success"] = table.final_accuracy >= success
        return table
    inputs = {"runs": [run_key(c) for c in cfgs], "fractions": list(fractions),
              "success": success}
    return cached("open-features", FEATURE_VERSION, inputs, compute)


def _window_step(cfg: RunConfig, fraction: float) -> int:
    """The last snapshot step at or before ``fraction`` of training."""
    every = cfg.train.snapshot_every
    return max(every, int(fraction * cfg.train.n_steps) // every * every)


# ------------------------------------------------------------------- cross-validated models

def cross_validate(table: pd.DataFrame, feature_sets: dict[str, Sequence[str]],
                   group_by: Sequence[str] = ("m", "optimizer"), penalty: float = 1.0,
                   bootstrap: int = 2000, permutations: int = 200, seed: int = 0,
                   null_blocks: Sequence[str] = ("m", "optimizer")
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validated prediction of ``success`` (AUC) and ``final_accuracy`` (R²) from each
    feature set, per fraction of training.

    Folds leave out one whole group (default: one (m, optimizer) cell: every seed of one
    setting), so a prediction is always for a setting the model never saw.  Returns
    ``(scores, predictions)``: scores rows fraction, features, AUC, AUC low/high (bootstrap
    over runs), R², R² low/high, AUC null 95% (the 95th percentile of the AUC with permuted
    outcomes, the same CV; outcomes move between ``null_blocks`` — whole settings — see
    :func:`block_permutation`), AUC p (one-sided permutation p-value, (1 + #null ≥ AUC) /
    (1 + permutations)) and, for every set but the first, ``ΔAUC`` against the first set
    with its paired bootstrap interval; predictions: the out-of-fold predictions per run."""
    rng = np.random.default_rng(stream_seed(seed, "measure:open-cv"))
    score_rows, frames = [], []
    for fraction, part in table.groupby("fraction"):
        part = part.reset_index(drop=True)
        groups = part[list(group_by)].astype(str).agg("/".join, axis=1).to_numpy()
        blocks = part[list(null_blocks)].astype(str).agg("/".join, axis=1).to_numpy()
        y, value = part.success.to_numpy(bool), part.final_accuracy.to_numpy(float)
        n = len(part)
        boots = [rng.integers(0, n, n) for _ in range(bootstrap)]
        predictions = {}
        for name, features in feature_sets.items():
            X = part[list(features)].to_numpy(float)
            prob, pred = out_of_fold(X, y, value, groups, penalty)
            predictions[name] = (prob, pred)
            frames.append(part[["key", "m", "optimizer", "seed", "fraction", "success",
                                "final_accuracy"]].assign(features=name, probability=prob,
                                                           predicted=pred))
        first = next(iter(feature_sets))
        for name, features in feature_sets.items():
            prob, pred = predictions[name]
            boot_auc = [auc(prob[b], y[b]) for b in boots]
            boot_r2 = [r_squared(pred[b], value[b]) for b in boots]
            row = {"fraction": fraction, "features": name, "n": n, "successes": int(y.sum()),
                   "AUC": auc(prob, y), "AUC low": percentile(boot_auc, 2.5),
                   "AUC high": percentile(boot_auc, 97.5), "R²": r_squared(pred, value),
                   "R² low": percentile(boot_r2, 2.5), "R² high": percentile(boot_r2, 97.5)}
            X = part[list(features)].to_numpy(float)
            null = []
            for _ in range(permutations):
                order = block_permutation(blocks, rng)
                null.append(auc(out_of_fold(X, y[order], value[order], groups, penalty)[0],
                                y[order]))
            row["AUC null 95%"] = percentile(null, 95)
            row["AUC p"] = (1 + np.sum(np.asarray(null) >= row["AUC"])) / (1 + len(null)) \
                if null else np.nan
            if name != first:
                base = predictions[first][0]
                diff = [auc(prob[b], y[b]) - auc(base[b], y[b]) for b in boots]
                row["ΔAUC"] = row["AUC"] - auc(base, y)
                row["ΔAUC low"] = percentile(diff, 2.5)
                row["ΔAUC high"] = percentile(diff, 97.5)
            score_rows.append(row)
    return pd.DataFrame(score_rows), pd.concat(frames, ignore_index=True)


def cv_scores(cfgs: Sequence[RunConfig], feature_sets: dict[str, Sequence[str]],
              success: float = 0.9, fractions: Sequence[float] = (0.1, 0.15, 0.2),
              group_by: Sequence[str] = ("m", "optimizer"), penalty: float = 1.0,
              bootstrap: int = 2000, permutations: int = 200, seed: int = 0) -> pd.DataFrame:
    """The scores of :func:`cross_validate` on :func:`feature_table` of ``cfgs`` (cached, so
    the book renders without refitting)."""
    inputs = {"runs": [run_key(c) for c in cfgs], "sets": {k: list(v) for k, v in
                                                           feature_sets.items()},
              "success": success, "fractions": list(fractions), "group_by": list(group_by),
              "penalty": penalty, "bootstrap": bootstrap, "permutations": permutations,
              "seed": seed}
    return cached("open-cv", CV_VERSION, inputs, lambda: cross_validate(
        feature_table(cfgs, fractions, success), feature_sets, group_by, penalty, bootstrap,
        permutations, seed)[0])
