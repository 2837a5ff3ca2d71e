"""Grokking on algorithmic tasks (seed 001): presets, steps to grok, fingerprint DMD spectra.

Presets (``grokking_preset(name, weight_decay, seed)``), all on the one training engine of
:mod:`modadd.train`:

- ``power``: Power et al. (2022), App. A.1.2: ``a + b mod 97``, 40% training pairs, 2 layers,
  d=128, 4 heads, ReLU MLP 4d, AdamW lr 1e-3, β=(0.9, 0.98), 10-step linear warm-up, batch
  min(512, ⌈N_train/2⌉), 10⁵ updates; early stop 1000 steps after held-out accuracy ≥ 99%.
- ``fingerprint``: seed 001's study of the same model: 6000 steps (10 000 at wd=0), early stop
  as above, a fingerprint every 2 steps on 100 probes — but probes from the **held-out** split
  and log-probs of the **answer** (the fork's two defects, peer_anchors §2).
- ``nanda``: Nanda et al. (2023): p=113, 30% training pairs, 1 layer, d=128, 4 heads, ReLU MLP
  512, no LayerNorm, full-batch AdamW lr 1e-3, wd 1, β=(0.9, 0.98), 25 000 steps.
- ``book``: the scale the book is computed at on a 2-core CPU (see the notebook for why).
- ``smoke``: CI scale (p=23), seconds per run.

Differences from openai/grok that every preset shares: pre-LN blocks with learned position
embeddings (openai/grok: post-LN, sinusoidal), the loss on the answer only (openai/grok also
scores the trailing end token, which halves its reported loss), biases in the linear layers,
and minibatches drawn uniformly without replacement per step (openai/grok: shuffled epochs).
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Optional

import numpy as np
import pandas as pd

from .algorithmic import AlgorithmicTask
from .config import RunConfig, TrainConfig
from .model import ModelConfig

WEIGHT_DECAYS = (0.0, 1.0, 2.0)


def power_batch_size(task: AlgorithmicTask) -> int:
    """openai/grok's default batch: ``min(512, ⌈N_train / 2⌉)``."""
    return min(512, math.ceil(len(task.split()[0]) / 2))


def _power() -> RunConfig:
    task = AlgorithmicTask(p=97, op="+", train_fraction=0.4, split_seed=0)
    return RunConfig(
        task=task,
        model=ModelConfig(n_layers=2, d_model=128, n_heads=4, attention_only=False,
                          activation="relu"),
        train=TrainConfig(optimizer="adamw", lr=1e-3, beta2=0.98, warmup_steps=10,
                          weight_decay=1.0, batch_size=power_batch_size(task),
                          n_steps=100_000, snapshot_every=100, checkpoint_every=1000,
                          early_stop_accuracy=0.99, early_stop_delay=1000,
                          record_every=100, probe_size=100))


def _fingerprint() -> RunConfig:
    cfg = _power()
    return replace(cfg, train=replace(cfg.train, n_steps=6000, snapshot_every=50,
                                      record_every=2, probe_size=100))


def _nanda() -> RunConfig:
    task = AlgorithmicTask(p=113, op="+", train_fraction=0.3, split_seed=0)
    return RunConfig(
        task=task,
        model=ModelConfig(n_layers=1, d_model=128, n_heads=4, attention_only=False,
                          layer_norm=False, activation="relu", d_mlp=512),
        train=TrainConfig(optimizer="adamw", lr=1e-3, beta2=0.98, weight_decay=1.0,
                          batch_size=len(task.split()[0]), n_steps=25_000,
                          snapshot_every=100, record_every=100, probe_size=1000))


def _book() -> RunConfig:
    cfg = _power()
    return replace(cfg, train=replace(cfg.train, n_steps=6000, snapshot_every=50,
                                      record_every=10, probe_size=500, fingerprint_train=True))


def _smoke() -> RunConfig:
    task = AlgorithmicTask(p=23, op="+", train_fraction=0.5, split_seed=0)
    return RunConfig(
        task=task,
        model=ModelConfig(n_layers=1, d_model=32, n_heads=2, attention_only=False,
                          activation="relu"),
        train=TrainConfig(optimizer="adamw", lr=3e-3, beta2=0.98, warmup_steps=10,
                          weight_decay=1.0, batch_size=power_batch_size(task), n_steps=300,
                          snapshot_every=10, checkpoint_every=100, early_stop_accuracy=0.99,
                          early_stop_delay=50, record_every=2, probe_size=64,
                          fingerprint_train=True, fingerprint_directions=4))


GROKKING_PRESETS = {"smoke": _smoke, "book": _book, "fingerprint": _fingerprint,
                    "power": _power, "nanda": _nanda}
# steps for wd = 0 (no early stop can fire in practice): seed 001 gave those runs 10 000 steps
_WD0_STEPS = {"fingerprint": 10_000}


def grokking_preset(name: str = "book", weight_decay: Optional[float] = None, seed: int = 0,
                    perturbation_seed: Optional[int] = None, eps: float = 1e-3) -> RunConfig:
    """The run of grokking preset ``name`` at ``weight_decay`` (default: the preset's) and
    ``seed``; with ``perturbation_seed``, the same run with its initial weights multiplied
    entrywise by ``1 + eps·z`` (same data order, split and probes)."""
    if name not in GROKKING_PRESETS:
        raise ValueError(f"preset: must be one of {', '.join(map(repr, GROKKING_PRESETS))}, "
                         f"got {name!r}")
    cfg = GROKKING_PRESETS[name]().with_seed(seed)
    t = cfg.train
    if weight_decay is not None:
        t = replace(t, weight_decay=float(weight_decay))
        if weight_decay == 0 and name in _WD0_STEPS:
            t = replace(t, n_steps=_WD0_STEPS[name])
    if perturbation_seed is not None:
        t = replace(t, init_perturbation=float(eps), perturbation_seed=perturbation_seed)
    return replace(cfg, train=t)


def grokking_study(name: str = "book", seeds: int = 5, weight_decays=WEIGHT_DECAYS,
                   perturbations: int = 5, perturbed_weight_decays=(1.0,),
                   perturbed_seed: int = 0) -> dict[str, list[RunConfig]]:
    """The runs of chapter 9: ``"main"`` (every weight decay × ``seeds`` seeds) and
    ``"perturbed"`` (seed ``perturbed_seed`` at each of ``perturbed_weight_decays``, with
    ``perturbations`` 1e-3 init perturbations)."""
    # the runs most likely to grok first (wd = 0 trains the whole budget)
    order = sorted(weight_decays, key=lambda wd: (wd == 0, wd))
    main = [grokking_preset(name, wd, s) for wd in order for s in range(seeds)]
    perturbed = [grokking_preset(name, wd, perturbed_seed, perturbation_seed=k)
                 for wd in perturbed_weight_decays for k in range(perturbations)]
    return {"main": main, "perturbed": perturbed}


def grokking_preset_table() -> pd.DataFrame:
    """One row per grokking preset: the settings that distinguish them."""
    rows = {}
    for name in GROKKING_PRESETS:
        c = grokking_preset(name)
        t = c.train
        rows[name] = {
            "task": f"a{c.task.op}b mod {c.task.p}", "train fraction": c.task.train_fraction,
            "layers": c.model.n_layers, "d": c.model.d_model, "heads": c.model.n_heads,
            "MLP": c.model.mlp_width, "LayerNorm": c.model.layer_norm,
            "lr": t.lr, "β2": t.beta2, "wd": t.weight_decay, "batch": t.batch_size,
            "steps": t.n_steps, "early stop": (f"≥{t.early_stop_accuracy:.0%} +{t.early_stop_delay}"
                                               if t.early_stop_accuracy else "—"),
            "fingerprint every": t.record_every, "probes": t.probe_size,
        }
    return pd.DataFrame(rows).T


def grok_step(metrics: pd.DataFrame, threshold: float = 0.99,
              metric: str = "accuracy") -> Optional[int]:
    """First evaluated step whose ``metric`` (default: held-out accuracy) is ≥ ``threshold``
    (None if never); the resolution is the evaluation interval (``snapshot_every``)."""
    rows = metrics[metrics.metric == metric].sort_values("step")
    hit = rows[rows.value >= threshold]
    return None if hit.empty else int(hit.step.iloc[0])


def curves(run) -> pd.DataFrame:
    """Wide table ``step × {loss, accuracy, train_loss, train_accuracy}`` of one run."""
    table = run.metrics.pivot_table(index="step", columns="metric", values="value")
    return table.reset_index()


def centered(series: np.ndarray) -> np.ndarray:
    """Subtract each coordinate's mean over time: ``[R, D]`` → ``[R, D]``."""
    series = np.asarray(series, float)
    return series - series.mean(axis=0, keepdims=True)
