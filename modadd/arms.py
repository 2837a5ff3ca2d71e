"""Chapter 7's analyses of training arms (paper §4.5): forgetting under a curriculum, and the
trajectory geometry of MLP weights.

The attention matrices of every arm are analysed with :mod:`modadd.manifold` (their increment
Grams are cached per run); MLP weights are not in ``snapshots.npy``, so MLP arms store full
parameter vectors and their Grams are computed here from ``params.npy``.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .config import RunConfig
from .model import Transformer
from .store import Run, cached, load_or_train, run_key

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
