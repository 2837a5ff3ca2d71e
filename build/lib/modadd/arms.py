"""Chapter 7's analyses of training arms (paper §4.5): forgetting under a curriculum, and the
trajectory geometry of MLP weights.

The attention matrices of every arm are analysed with :mod:`modadd.manifold` (their increment
Grams are cached per run); MLP weights are not in ``snapshots.npy``, so MLP arms store full
parameter vectors and their Grams are computed here from ``params.npy``.
"""
from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from . import manifold as MF
from . import metrics as M
from .config import RunConfig, stream_seed
from .model import Transformer
from .store import Run, cached, load_or_train, load_or_train_many, run_key

MLP_GRAM_VERSION = 1
MLP_MATRICES = ("W_in", "W_out")


def forgetting(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per m of one run: peak held-out accuracy over training, its step, the final accuracy and
    the forgetting ``peak − final`` (≥ 0).  ``metrics`` is a run's tidy metrics table."""
    acc = metrics[metrics.metric == "accuracy"]
    if acc.empty:
        raise ValueError("metrics: no accuracy rows")
    rows = []
    for m, part in acc.groupby("m"):
        part = part.sort_values("step")
        peak = part.loc[part.value.idxmax()]
        final = float(part.value.iloc[-1])
        rows.append((int(m), float(peak.value), int(peak.step), final,
                     float(peak.value) - final))
    return pd.DataFrame(rows, columns=["m", "peak", "peak_step", "final", "forgetting"])


def mlp_slices(model: Transformer) -> dict[tuple[int, str], slice]:
    """Where each block's MLP weight matrices (``W_in [4d, d]``, ``W_out [d, 4d]``) sit in the
    flat parameter vector (:meth:`Transformer.flat_parameters` order)."""
    if model.cfg.attention_only:
        raise ValueError("model: attention-only, it has no MLP weights")
    out = {}
    for layer, block in enumerate(model.blocks):
        for name, linear in zip(MLP_MATRICES, (block.mlp[0], block.mlp[2])):
            first = model.flat_offset(linear.weight)
            out[(layer, name)] = slice(first, first + linear.weight.numel())
    return out


def _mlp_grams(run: Run) -> dict:
    cfg = run.config
    slices = mlp_slices(Transformer.for_task(cfg.model, cfg.task))
    params = run.params
    n = params.shape[0]
    out = np.empty((cfg.model.n_layers, len(MLP_MATRICES), n - 1, n - 1))
    for (layer, name), where in slices.items():
        steps = np.diff(np.asarray(params[:, where], np.float64), axis=0)
        out[layer, MLP_MATRICES.index(name)] = steps @ steps.T
    return {"increment_grams": out.astype(np.float32), "steps": run.snapshot_steps,
            "dims": np.array([slices[(0, name)].stop - slices[(0, name)].start
                              for name in MLP_MATRICES])}


def mlp_increment_grams(cfg: RunConfig) -> dict:
    """``{"increment_grams": [L, 2, n-1, n-1], "steps": [n], "dims": [2]}`` of an MLP run's
    ``W_in``/``W_out`` trajectories (cached; needs ``store_full_params``)."""
    if cfg.model.attention_only or not cfg.train.store_full_params:
        raise ValueError("cfg: needs attention_only=False and store_full_params=True")
    return cached("mlp-increment-grams", MLP_GRAM_VERSION, run_key(cfg),
                  lambda: _mlp_grams(load_or_train(cfg, trajectories=True, progress=False)))


# ------------------------------------------------------------------------------ arm summaries

def arm_metrics(arms: dict[str, list[RunConfig]], metric: str = "accuracy") -> pd.DataFrame:
    """One metric (held-out, per m) of every run of every arm: ``arm, seed, step, m, value``
    rows, from the runs' stored summaries (no training unless a run is missing)."""
    frames = []
    for arm, cfgs in arms.items():
        for run in load_or_train_many(cfgs, progress=False):
            part = run.metrics[run.metrics.metric == metric]
            frames.append(part[["step", "m", "value"]].assign(arm=arm, seed=run.config.seed))
    if not frames:
        raise ValueError("arms: no runs")
    return pd.concat(frames, ignore_index=True)[["arm", "seed", "step", "m", "value"]]


def forgetting_table(acc: pd.DataFrame) -> pd.DataFrame:
    """:func:`forgetting` of every run in ``acc`` (the accuracy table of :func:`arm_metrics`):
    ``arm, seed, m, peak, peak_step, final, forgetting`` rows."""
    frames = [forgetting(part.assign(metric="accuracy")).assign(arm=arm, seed=seed)
              for (arm, seed), part in acc.groupby(["arm", "seed"], sort=False)]
    return pd.concat(frames, ignore_index=True)[["arm", "seed", "m", "peak", "peak_step",
                                                 "final", "forgetting"]]


def stage_starts(cfg: RunConfig) -> list[tuple[int, int]]:
    """``(first step, m)`` of each curriculum stage of ``cfg`` (empty unless a curriculum)."""
    out, step = [], 0
    for m, length in cfg.train.curriculum if cfg.train.schedule == "curriculum" else ():
        out.append((step, m))
        step += length
    return out


def mlp_dimension_table(cfgs, thresholds=(0.8, 0.9, 0.95), null_draws: int = 20) -> pd.DataFrame:
    """Effective dimension of each MLP weight matrix (``W_in``, ``W_out`` per layer, and all
    jointly) of MLP runs, with both nulls of :func:`modadd.manifold.dimension_rows`; columns as
    :func:`modadd.manifold.dimension_table` (group ``"mlp block"`` | ``"all mlp"``)."""
    rows = []
    for cfg in cfgs:
        stored = mlp_increment_grams(cfg)
        H = stored["increment_grams"].astype(np.float64)
        dims = stored["dims"]
        rng = np.random.default_rng(stream_seed(cfg.seed, "measure:mlp-nulls"))
        groups = [("mlp block", f"L{layer} {name}", layer, name, [(layer, i)])
                  for layer in range(H.shape[0]) for i, name in enumerate(MLP_MATRICES)]
        groups.append(("all mlp", "all MLP", -1, "joint",
                       [(layer, i) for layer in range(H.shape[0])
                        for i in range(len(MLP_MATRICES))]))
        for group, label, layer, matrix, blocks in groups:
            h = sum(H[l, i] for l, i in blocks)
            dim = int(sum(dims[i] for _, i in blocks))
            for row in MF.dimension_rows(M.walk_gram(h), h, dim, rng, null_draws, thresholds):
                rows.append((cfg.seed, group, label, layer, matrix, *row))
    return pd.DataFrame(rows, columns=MF.DIMENSION_COLUMNS)


def arm_angle_table(arms: dict[str, list[RunConfig]], k: int = 4,
                    random_draws: int = 50, last_fraction: float = 1.0) -> pd.DataFrame:
    """Do arms reach the same execution subspace?  Subspace distances (top-k PCA subspaces of
    ``W_t - W_0``, per attention block) between every two arms at the same seed (same data
    stream; attention-only arms also share their initial weights), beside the distances between
    seeds within each arm and between random k-subspaces
    (:func:`modadd.manifold.pair_angle_table`).  Comparison labels: ``"A vs B"`` (same seed)
    and ``"seeds: A"``.  ``last_fraction``: subspaces of the end of training only (see
    :func:`modadd.manifold.pair_angle_table`)."""
    named = {f"{arm} s{c.seed}": c for arm, cfgs in arms.items() for c in cfgs}
    seeds = {arm: sorted(c.seed for c in cfgs) for arm, cfgs in arms.items()}
    pairs = [(f"{a} vs {b}", f"{a} s{s}", f"{b} s{s}")
             for a, b in combinations(arms, 2) for s in seeds[a] if s in seeds[b]]
    pairs += [(f"seeds: {arm}", f"{arm} s{s1}", f"{arm} s{s2}")
              for arm in arms for s1, s2 in combinations(seeds[arm], 2)]
    first = min(c.seed for cfgs in arms.values() for c in cfgs)
    return MF.pair_angle_table(named, pairs, k, random_draws, first, last_fraction)
