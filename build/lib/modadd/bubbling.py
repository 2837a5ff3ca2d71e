"""Attention-bubbling analyses of stored runs (paper §4.2): per-head readout attention over
training, routing to marker/value tokens, top-k ablation, transition timing.

Runs must store full parameter vectors (``store_full_params=True``) so the model can be rebuilt
at any snapshot; every table is cached in ``data/results/analysis``.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import metrics as M
from .config import RunConfig
from .store import cached, load_or_train, run_key
from .taskdata import probe_sets
from .train import snapshot_steps

PROFILE_VERSION = 1
ABLATION_VERSION = 1


def with_full_params(cfg: RunConfig) -> RunConfig:
    """``cfg`` storing the full parameter vector at each snapshot (training is unchanged); the
    ``full params`` role of ``presets.study_configs``."""
    return replace(cfg, train=replace(cfg.train, store_full_params=True))


def _probe_subset(cfg: RunConfig, n_examples: int) -> dict:
    return {m: (batch.tokens[:n_examples], batch.labels[:n_examples],
                M.position_classes(batch.marker_positions[:n_examples], cfg.task.seq_len,
                                   cfg.task.readout == "query"))
            for m, batch in probe_sets(cfg).items()}


def _profile(cfg: RunConfig, n_examples: int, every: int) -> pd.DataFrame:
    run = load_or_train(cfg, trajectories=True, progress=False)   # may train: not under no_grad
    with torch.no_grad():
        return _profile_rows(run, cfg, n_examples, every)


def _profile_rows(run, cfg: RunConfig, n_examples: int, every: int) -> pd.DataFrame:
    probes = _probe_subset(cfg, n_examples)
    rows = []
    indices = range(0, len(run.snapshot_steps), every)
    for index in tqdm(indices, desc=f"attention profile seed {cfg.seed}", leave=False):
        model = run.model_at(index)
        for m, (tokens, labels, classes) in probes.items():
            logits, cache = model.run_with_cache(tokens)
            accuracy = float((logits.argmax(-1) == labels).float().mean())
            for layer, attn in enumerate(cache["attn"]):
                stats = {"entropy": M.attention_entropy(attn),
                         "entropy_norm": M.attention_entropy(attn, normalize=True),
                         "top1": M.top_k_mass(attn, 1), "top2": M.top_k_mass(attn, 2),
                         "top4": M.top_k_mass(attn, 4)}
                mass = M.class_mass(attn, classes)
                for c, name in enumerate(M.POSITION_CLASSES):
                    stats[f"mass_{name}"] = mass[..., c]
                means = {k: v.mean(dim=0) for k, v in stats.items()}      # [H]
                for head in range(attn.shape[1]):
                    rows.append({"step": int(run.snapshot_steps[index]), "m": m, "layer": layer,
                                 "head": head, "accuracy": accuracy,
                                 **{k: float(v[head]) for k, v in means.items()}})
    return pd.DataFrame(rows)


def attention_profile(cfg: RunConfig, n_examples: int = 256, every: int = 1) -> pd.DataFrame:
    """Readout attention per snapshot (every ``every``-th), m, layer and head, averaged over the
    first ``n_examples`` of the fixed probe set: entropy (nats and normalised by log T), top-1/2/4
    mass, mass on each position class (``mass_marker``, ``mass_value``, ``mass_distractor``,
    ``mass_query``), and the probe accuracy.  Cached; needs ``store_full_params``."""
    inputs = {"run": run_key(cfg), "n_examples": n_examples, "every": every}
    return cached("attention-profile", PROFILE_VERSION, inputs,
                  lambda: _profile(cfg, n_examples, every))


def _ablation(cfg: RunConfig, indices: list[int], ks: list[int], n_examples: int) -> pd.DataFrame:
    run = load_or_train(cfg, trajectories=True, progress=False)   # may train: not under no_grad
    with torch.no_grad():
        return _ablation_rows(run, cfg, indices, ks, n_examples)


def _ablation_rows(run, cfg: RunConfig, indices: list[int], ks: list[int],
                   n_examples: int) -> pd.DataFrame:
    probes = _probe_subset(cfg, n_examples)
    rows = []
    for index in indices:
        model = run.model_at(index)
        for m, (tokens, labels, _) in probes.items():
            for k in ks:
                logits = M.top_k_ablation_logits(model, tokens, k)
                rows.append({"step": int(run.snapshot_steps[index]), "m": m, "k": k,
                             "accuracy": float((logits.argmax(-1) == labels).float().mean())})
    return pd.DataFrame(rows)


def ablation_table(cfg: RunConfig, fractions=(1 / 3, 2 / 3, 1.0), ks=None,
                   n_examples: int = 1024) -> pd.DataFrame:
    """Accuracy per m under top-k attention ablation (all layers, patterns from the unablated
    pass) at the snapshots nearest the given fractions of training; ``ks`` defaults to
    (T, 8, 4, 2, 1) with T the sequence length (k = T is the unablated model).  Cached."""
    steps = snapshot_steps(cfg)
    indices = sorted({int(np.abs(steps - f * cfg.train.n_steps).argmin()) for f in fractions})
    ks = sorted(set(ks or (cfg.task.seq_len, 8, 4, 2, 1)), reverse=True)
    inputs = {"run": run_key(cfg), "indices": indices, "ks": ks, "n_examples": n_examples}
    return cached("topk-ablation", ABLATION_VERSION, inputs,
                  lambda: _ablation(cfg, indices, ks, n_examples))


def transitions(metrics: pd.DataFrame, by=("seed", "m", "layer")) -> pd.DataFrame:
    """10-90% transition window of the readout entropy per group (``metrics``: tidy run metrics
    with a ``seed`` column): columns ``[*by, start, mid, end, width, rebound, drop]``."""
    entropy = metrics[metrics.metric == "entropy"].sort_values("step")
    rows = []
    for group, part in entropy.groupby(list(by)):
        rows.append({**dict(zip(by, group)),
                     **M.transition_window(part.step.to_numpy(), part.value.to_numpy())})
    return pd.DataFrame(rows)


HEATMAP_VERSION = 1


def _heatmaps(cfg: RunConfig, indices: list[int], m: int, example: int) -> dict:
    run = load_or_train(cfg, trajectories=True, progress=False)   # may train: not under no_grad
    batch = probe_sets(cfg)[m]
    tokens = batch.tokens[example:example + 1]
    rows = []
    with torch.no_grad():
        for index in indices:
            _, cache = run.model_at(index).run_with_cache(tokens)
            rows.append(torch.cat([a[0, :, -1] for a in cache["attn"]]).numpy())
    classes = M.position_classes(batch.marker_positions[example:example + 1], cfg.task.seq_len,
                                 cfg.task.readout == "query")[0]
    return {"attention": np.stack(rows), "steps": run.snapshot_steps[indices],
            "classes": classes.numpy()}


def readout_heatmaps(cfg: RunConfig, indices: list[int], m: int, example: int = 0) -> dict:
    """Readout attention rows of one probe example (``example`` of the m-probe set) at the given
    snapshot indices: ``{"attention": [len(indices), n_layers * n_heads, T] (layer-major),
    "steps": [len(indices)], "classes": [T]}`` (position classes).  Cached."""
    inputs = {"run": run_key(cfg), "indices": [int(i) for i in indices], "m": m,
              "example": example}
    return cached("readout-heatmaps", HEATMAP_VERSION, inputs,
                  lambda: _heatmaps(cfg, [int(i) for i in indices], m, example))
