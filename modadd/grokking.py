"""Grokking on algorithmic tasks (seed 001): presets, steps to grok, fingerprint DMD spectra.

Presets (``grokking_preset(name, weight_decay, seed)``), all on the one training engine of
:mod:`modadd.train`:

- ``power``: Power et al. (2022), App. A.1.2, as openai/grok runs it: ``a + b mod 97``, 40%
  training pairs (its numpy-shuffled split), ``<s> a + b =`` scored over the whole vocabulary,
  2 post-LN layers with fixed sinusoidal positions and no linear biases, d=128, 4 heads, ReLU MLP
  4d, AdamW lr 1e-3, β=(0.9, 0.98), 10-step linear warm-up, shuffled epochs of batch
  min(512, ⌈N_train/2⌉), 10⁵ updates, the loss over ``c <eos>`` (the answer and the end token
  after it); early stop 1000 steps after held-out accuracy ≥ 99%.
- ``power-answer-loss``: ``power`` with the loss on the answer alone (the ``power`` preset
  before the end-token loss landed, and the base of the :data:`POWER_ABLATIONS` runs).
- ``power-default-arch``: the same recipe on this study's defaults (``a + b =`` over the
  residues, pre-LN with learned positions and biases, its own split, a fresh uniform batch per
  step): the ``power`` preset before issue 25, the base of ``fingerprint`` and ``book``.
- ``fingerprint``: seed 001's study of the same model: 6000 steps (10 000 at wd=0), early stop
  as above, a fingerprint every 2 steps on 100 probes — but probes from the **held-out** split
  and log-probs of the **answer** (the fork's two defects, peer_anchors §2).
- ``nanda``: Nanda et al. (2023): p=113, 30% training pairs, 1 layer, d=128, 4 heads, ReLU MLP
  512, no LayerNorm, full-batch AdamW lr 1e-3, wd 1, β=(0.9, 0.98), 25 000 steps, and his code's
  input ``a b =`` (readout over all p+1 tokens), initialisation (weights N(0, 1/d), head
  N(0, 1/(p+1)), biases 0), biases in the MLP only, 10-step warm-up and float64 loss.
- ``nanda-default-init``: the same model and optimiser with this study's defaults (``a + b =``,
  PyTorch's initialisation, biases everywhere, no warm-up, float32 loss): the ``nanda`` preset
  before issue 25, which grokked well after his runs.
- ``book``: the scale the book is computed at on a 2-core CPU (see the notebook for why).
- ``smoke``: CI scale (p=23), seconds per run.

Differences from openai/grok that every preset keeps, ``power`` included: a
vocabulary of this task's tokens only (openai/grok's holds 239, for all its tasks), and a first
update at the warm-up's first step (openai/grok's LambdaLR gives its first update lr 0).  Every
other preset also keeps this study's pre-LN blocks with learned positions and biases, its own
split, uniform per-step batches and the loss on the answer alone (:data:`POWER_ABLATIONS` puts
each of the others back into ``power-answer-loss``, one at a time).  openai/grok's accuracy also
needs the end token right; ours reads the answer alone.

Length: the presets, the published references (Nanda et al.'s sweep, its milestones and
ablation arms) and the spectra analysis of chapter 9 share one vocabulary of grokking runs;
split apart, each part would import the others' presets and step definitions.
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


def _grokking_run(p: int, fraction: float, n_layers: int, d_model: int, n_heads: int,
                  batch: str = "power", model_options: Optional[dict] = None,
                  **train) -> RunConfig:
    """The shared shape of the grokking presets: ``a + b mod p`` (split seed 0), a ReLU-MLP
    transformer, AdamW with β = (0.9, 0.98) and weight decay 1; ``batch`` "power"
    (min(512, ⌈N_train/2⌉)) or "full"; other training fields as given."""
    task = AlgorithmicTask(p=p, op="+", train_fraction=fraction, split_seed=0)
    size = power_batch_size(task) if batch == "power" else len(task.split()[0])
    return RunConfig(
        task=task,
        model=ModelConfig(n_layers=n_layers, d_model=d_model, n_heads=n_heads,
                          attention_only=False, activation="relu", **(model_options or {})),
        train=TrainConfig(optimizer="adamw", beta2=0.98, weight_decay=1.0, batch_size=size,
                          **{"lr": 1e-3, **train}))


def _power_default_arch() -> RunConfig:
    return _grokking_run(97, 0.4, 2, 128, 4, warmup_steps=10, n_steps=100_000,
                         snapshot_every=100, checkpoint_every=1000, early_stop_accuracy=0.99,
                         early_stop_delay=1000, record_every=100, probe_size=100)


def _power_answer_loss() -> RunConfig:
    """``power`` with the loss on the answer alone (this study's default): the ``power`` preset
    of issue 25's third part, the base of its one-difference ablation."""
    cfg = _power_default_arch()
    return replace(cfg,
                   task=replace(cfg.task, start_token=True, readout_all_tokens=True,
                                split_method="numpy-shuffle"),
                   model=replace(cfg.model, norm_position="post", positions="sinusoidal",
                                 biases="none"),
                   train=replace(cfg.train, sampling="epochs"))


def _power() -> RunConfig:
    """Power et al.'s recipe as openai/grok's code runs it (``grok/data.py``,
    ``grok/transformer.py``, ``grok/training.py``): ``<s> a + b =`` read out over the whole
    vocabulary, its split (numpy's ``RandomState(0).shuffle``, the first ``round(f N)`` rows),
    post-LN blocks without a final LN, fixed sinusoidal positions, no biases in any linear
    layer, shuffled epochs, and its loss over the right-hand side ``c <eos>`` (the answer and
    the end token after it); everything else as ``power-default-arch``."""
    cfg = _power_answer_loss()
    return replace(cfg, task=replace(cfg.task, eos_target=True))


def _fingerprint() -> RunConfig:
    cfg = _power_default_arch()
    return replace(cfg, train=replace(cfg.train, n_steps=6000, snapshot_every=50,
                                      record_every=2, probe_size=100))


def _nanda_default_init() -> RunConfig:
    return _grokking_run(113, 0.3, 1, 128, 4, batch="full",
                         model_options={"layer_norm": False, "d_mlp": 512}, n_steps=25_000,
                         snapshot_every=100, record_every=100, probe_size=1000)


def _nanda() -> RunConfig:
    """Nanda et al.'s recipe as his code runs it (progress-measures-paper ``transformers.py``):
    ``a b =`` with ``=`` scored over all ``p + 1`` tokens, his initialisation, biases in the MLP
    only, a 10-step linear warm-up and a float64 loss; everything else as
    ``nanda-default-init``."""
    cfg = _nanda_default_init()
    return replace(cfg, task=replace(cfg.task, operator_token=False, readout_all_tokens=True),
                   model=replace(cfg.model, init="nanda", biases="mlp"),
                   train=replace(cfg.train, warmup_steps=10, loss_dtype="float64"))


def _book() -> RunConfig:
    cfg = _power_default_arch()
    return replace(cfg, train=replace(cfg.train, n_steps=6000, snapshot_every=50,
                                      record_every=10, probe_size=500, fingerprint_train=True))


def _smoke() -> RunConfig:
    return _grokking_run(23, 0.7, 1, 32, 2, lr=1e-2, warmup_steps=10, n_steps=800,
                         snapshot_every=10, checkpoint_every=200, early_stop_accuracy=0.99,
                         early_stop_delay=50, record_every=4, probe_size=64,
                         fingerprint_train=True, fingerprint_directions=4)


def _detect() -> RunConfig:
    """Chapter 10's small runs: p=31, 1 layer, d=64, full batch, an evaluation (and a
    fingerprint) every 20 steps, so that detectors see a dense record."""
    return _grokking_run(31, 0.55, 1, 64, 4, batch="full", lr=3e-3, warmup_steps=10,
                         n_steps=3000, snapshot_every=20, checkpoint_every=500,
                         early_stop_accuracy=0.99, early_stop_delay=200, record_every=20,
                         probe_size=200)


GROKKING_PRESETS = {"smoke": _smoke, "book": _book, "detect": _detect,
                    "fingerprint": _fingerprint, "power": _power, "nanda": _nanda,
                    "nanda-default-init": _nanda_default_init,
                    "power-default-arch": _power_default_arch,
                    "power-answer-loss": _power_answer_loss}
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


# Nanda et al.'s train-fraction sweep (neelnanda-io/Grokking, saved_runs/
# mod_addition_frac_train_sweep.pth, read for issue 25): the epoch (= full-batch step) at which
# his run first had train loss < 1e-2 and test loss < 1e-2, and its highest test loss (None:
# not read).  Reference numbers from an external source, cited, never computed here.
NANDA_REFERENCE = {0.5: {"train loss < 1e-2": 272, "test loss < 1e-2": 1109, "test-loss peak": 5.96},
                   0.4: {"train loss < 1e-2": 268, "test loss < 1e-2": 3324, "test-loss peak": None}}
NANDA_SWEEP_STEPS, NANDA_SWEEP_EVERY = 8000, 10


def nanda_sweep(name: str = "nanda", fractions=tuple(NANDA_REFERENCE), seeds: int = 2,
                n_steps: int = NANDA_SWEEP_STEPS) -> list[RunConfig]:
    """Grokking preset ``name`` at each training fraction of Nanda et al.'s sweep, seeds
    ``0..seeds-1`` (full batch stays full batch; split seed 0): an evaluation of both splits
    every ``NANDA_SWEEP_EVERY`` steps, at most ``n_steps`` steps, stopped 1000 steps after
    held-out accuracy first reaches 99% (his milestones all come before; training up to the stop
    is that of the full-length run)."""
    out = []
    for cfg in fraction_sweep(name, fractions, seeds):
        out.append(replace(cfg, train=replace(
            cfg.train, n_steps=n_steps, snapshot_every=NANDA_SWEEP_EVERY,
            early_stop_accuracy=0.99, early_stop_delay=1000)))
    return out



# chapter 12: Nanda's recipe at a fraction that groks on CPU in ~15 minutes, with every
# snapshot's full parameter vector (Fourier measures, LLC and r90 are read from them), an
# evaluation, a snapshot and a fingerprint every 10 steps (memorisation lasts ~250 steps)
MECHANISM_FRACTION, MECHANISM_NULL_STEPS = 0.5, 2000


def mechanism_runs(name: str = "nanda", seeds: int = 5, fraction: float = MECHANISM_FRACTION,
                   weight_decay: Optional[float] = None, null_seeds: int = 1, null_steps: int = MECHANISM_NULL_STEPS,
                   every: int = NANDA_SWEEP_EVERY, n_steps: int = NANDA_SWEEP_STEPS
                   ) -> dict[str, list[RunConfig]]:
    """The runs of chapter 12: ``"grok"`` (preset ``name`` at ``fraction`` and ``weight_decay``
    (default: the preset's), seeds
    ``0..seeds-1``, as :func:`nanda_sweep` runs it, plus full-parameter snapshots and a
    fingerprint every ``every`` steps; at most ``n_steps`` steps) and ``"null"`` (the same at
    weight decay 0, seeds ``0..null_seeds-1``, ``null_steps`` steps: a run that does not grok
    in that window)."""
    if every < 1:
        raise ValueError(f"every: must be >= 1, got {every!r}")
    base = nanda_sweep(name, (fraction,), max(seeds, null_seeds), n_steps)
    wd = {} if weight_decay is None else {"weight_decay": float(weight_decay)}
    base = [replace(c, train=replace(c.train, store_full_params=True, snapshot_every=every,
                                     record_every=every, **wd)) for c in base]
    grok = base[:seeds]
    null = [replace(c, train=replace(c.train, weight_decay=0.0,
                                     n_steps=min(int(null_steps), c.train.n_steps)))
            for c in base[:null_seeds]]
    return {"grok": grok, "null": null}

# one recipe difference at a time (chapter 9 §7): what each arm changes in the ``nanda`` preset
NANDA_ABLATIONS = {
    "his split": lambda c: replace(c, task=replace(c.task, split_method="python-shuffle")),
    "PyTorch init": lambda c: replace(c, model=replace(c.model, init="torch")),
    "biases everywhere": lambda c: replace(c, model=replace(c.model, biases="all")),
    "a + b = over the residues": lambda c: replace(c, task=replace(
        c.task, operator_token=True, readout_all_tokens=False)),
    "no warm-up": lambda c: replace(c, train=replace(c.train, warmup_steps=0)),
    "float32 loss": lambda c: replace(c, train=replace(c.train, loss_dtype="float32")),
}
# ... and in the ``power`` preset: each arm puts back one default of this study
POWER_ABLATIONS = {
    "pre-LN": lambda c: replace(c, model=replace(c.model, norm_position="pre")),
    "learned positions": lambda c: replace(c, model=replace(c.model, positions="learned")),
    "biases everywhere": lambda c: replace(c, model=replace(c.model, biases="all")),
    "no start token": lambda c: replace(c, task=replace(c.task, start_token=False)),
    "readout over the residues": lambda c: replace(c, task=replace(
        c.task, readout_all_tokens=False)),
    "our split": lambda c: replace(c, task=replace(c.task, split_method="permutation")),
    "uniform batches": lambda c: replace(c, train=replace(c.train, sampling="uniform")),
}


def _ablation(base: RunConfig, table: dict, arms) -> dict[str, RunConfig]:
    unknown = [a for a in arms if a not in table]
    if unknown:
        raise ValueError(f"arms: must be among {', '.join(map(repr, table))}, got {unknown}")
    return {arm: table[arm](base) for arm in arms}


def nanda_ablation(arms=tuple(NANDA_ABLATIONS), fraction: float = 0.5, seed: int = 0,
                   n_steps: int = NANDA_SWEEP_STEPS, name: str = "nanda"
                   ) -> dict[str, RunConfig]:
    """The :func:`nanda_sweep` run of preset ``name`` at ``fraction`` and ``seed`` with one
    recipe difference of :data:`NANDA_ABLATIONS` each (same seed: same data order; the
    initialisation differs only where the arm changes it)."""
    return _ablation(nanda_sweep(name, (fraction,), seed + 1, n_steps)[seed], NANDA_ABLATIONS,
                     arms)


def power_ablation(arms=tuple(POWER_ABLATIONS), fraction: float = 0.4, seed: int = 0,
                   name: str = "power-answer-loss") -> dict[str, RunConfig]:
    """The :func:`fraction_sweep` run of preset ``name`` at ``fraction`` and ``seed`` with one
    default of this study put back each (:data:`POWER_ABLATIONS`)."""
    return _ablation(fraction_sweep(name, (fraction,), seed + 1)[seed], POWER_ABLATIONS, arms)


def recipe_ablation_table(base, arms: dict, measure, against: str) -> pd.DataFrame:
    """One row per arm of an ablation, the unchanged run first (arm ``"none"``): the values of
    ``measure(run)`` (a dict of numbers or None) and, for its entry ``against``, the arm's value
    over the unchanged run's (NaN where either is None)."""
    rows = []
    for arm, run in {"none": base, **arms}.items():
        rows.append({"arm": arm, **measure(run)})
    table = pd.DataFrame(rows)
    values = table[against].astype(float)
    table[f"{against}: / unchanged"] = values / values.iloc[0]
    return table


def fraction_sweep(name: str, fractions, seeds: int) -> list[RunConfig]:
    """Grokking preset ``name`` at each of ``fractions`` (its batch carried over: full batch
    stays full, a power-style batch is recomputed), seeds ``0..seeds-1``, fraction-major."""
    out = []
    for fraction in fractions:
        for seed in range(seeds):
            cfg = grokking_preset(name, seed=seed)
            task = replace(cfg.task, train_fraction=float(fraction))
            out.append(replace(cfg, task=task,
                               train=replace(cfg.train, batch_size=_batch_like(cfg, task))))
    return out


def milestones(run) -> dict:
    """Nanda et al.'s milestones of one run, in updates completed (his epochs): the first with
    training loss < 1e-2 (the per-step training loss, which full batch takes on the whole split:
    ``train_log`` step ``s`` is the loss before update ``s``, i.e. after ``s - 1``), with
    held-out loss < 1e-2 and with held-out accuracy >= 0.95 (at evaluation steps), and the
    highest held-out loss."""
    log = run.train_log
    below = np.flatnonzero(log["loss"].to_numpy() < 1e-2)
    m = run.metrics[run.metrics.m == 0].pivot_table(index="step", columns="metric",
                                                    values="value")
    steps = m.index.to_numpy()
    test_below = np.flatnonzero(m["loss"].to_numpy() < 1e-2)
    return {"train loss < 1e-2": None if below.size == 0 else int(log["step"].iloc[below[0]]) - 1,
            "test loss < 1e-2": None if test_below.size == 0 else int(steps[test_below[0]]),
            "test accuracy >= 0.95": first_step_at(steps, m["accuracy"].to_numpy(), 0.95),
            "test-loss peak": float(m["loss"].max())}


MILESTONES = ("train loss < 1e-2", "test accuracy >= 0.95", "test loss < 1e-2")
NANDA_TOLERANCE = 0.25      # issue 25's target: within ±25% of his epochs


def nanda_table(runs) -> pd.DataFrame:
    """One row per run of :func:`nanda_sweep`: its training fraction and seed, each of
    :data:`MILESTONES` and the test-loss peak (:func:`milestones`)."""
    rows = [{"train fraction": r.config.task.train_fraction, "seed": r.config.seed,
             **milestones(r)} for r in runs]
    return pd.DataFrame(rows)


def nanda_comparison(table: pd.DataFrame, reference=None,
                     tolerance: float = NANDA_TOLERANCE) -> pd.DataFrame:
    """Per training fraction and milestone: the seeds' values (mean, min, max), Nanda et al.'s
    (``reference``, default :data:`NANDA_REFERENCE`), the ratio mean / his and whether every
    seed lies within ``±tolerance`` of his value (None where he gives none or a seed never got
    there: a seed that never reaches a milestone is outside)."""
    reference = NANDA_REFERENCE if reference is None else reference
    rows = []
    for fraction, part in table.groupby("train fraction", sort=False):
        his = reference.get(fraction, {})
        for name in (*MILESTONES, "test-loss peak"):
            values = part[name].astype(float)
            ref = his.get(name)
            reached = values.notna().all()
            rows.append({
                "train fraction": fraction, "milestone": name, "seeds": len(values),
                "mean": values.mean() if reached else np.nan,
                "min": values.min(), "max": values.max(), "Nanda et al.": ref,
                "mean / his": values.mean() / ref if ref and reached else np.nan,
                "his inside our seeds' range": (None if ref is None or not reached else
                                                bool(values.min() <= ref <= values.max())),
                f"every seed within ±{tolerance:.0%}": (
                    None if ref is None else
                    bool(reached and (abs(values / ref - 1) <= tolerance).all()))})
    return pd.DataFrame(rows)


# chapter 10's grids per preset (weight decays, training fractions); other presets use "detect"'s
DETECTION_GRIDS = {"smoke": ((0.0, 1.0), (0.7,)), "detect": (WEIGHT_DECAYS, (0.4, 0.55, 0.7))}


def detection_study(name: str = "detect", seeds: int = 4, weight_decays=None, fractions=None,
                    diagnostics_every: int = 50) -> dict[str, list[RunConfig]]:
    """Chapter 10's runs: ``"grid"`` (weight decays × training fractions × seeds, default
    :data:`DETECTION_GRIDS`; the split seed stays 0, so a fraction has one split; a fingerprint at
    every evaluation) and ``"showcase"`` (one run of the middle cell at wd 1 recording every
    diagnostic every ``diagnostics_every`` steps; training is identical to the grid's run of the
    same cell)."""
    default_wds, default_fractions = DETECTION_GRIDS.get(name, DETECTION_GRIDS["detect"])
    weight_decays = default_wds if weight_decays is None else weight_decays
    fractions = default_fractions if fractions is None else fractions
    base = grokking_preset(name)
    base = replace(base, train=replace(base.train, record_every=base.train.snapshot_every))
    grid = [replace(base, task=replace(base.task, train_fraction=f),
                    train=replace(base.train, weight_decay=float(wd),
                                  batch_size=_batch_like(base, replace(base.task,
                                                                       train_fraction=f))),
                    seed=s)
            for wd in sorted(weight_decays, key=lambda w: (w == 0, w)) for f in fractions
            for s in range(seeds)]
    middle = fractions[len(fractions) // 2]
    show = next(c for c in grid if c.task.train_fraction == middle and c.seed == 0 and
                c.train.weight_decay == max(weight_decays, key=lambda w: (w == 1.0, w)))
    return {"grid": grid, "showcase": [replace(show, train=replace(
        show.train, diagnostics_every=min(diagnostics_every, show.train.n_steps)))]}


def _batch_like(base: RunConfig, task: AlgorithmicTask) -> int:
    """The batch of ``base`` carried to another split size: full batch stays full batch, a
    power-style batch is recomputed, any other batch is kept."""
    if base.train.batch_size >= len(base.task.split()[0]):
        return len(task.split()[0])
    if base.train.batch_size == power_batch_size(base.task):
        return power_batch_size(task)
    return base.train.batch_size


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


def first_step_at(steps, values, threshold: float = 0.99) -> Optional[int]:
    """The study's one definition of "the step it grokked": the first of ``steps`` (sorted)
    whose value is ≥ ``threshold``, or None if none is."""
    hit = np.flatnonzero(np.asarray(values, float) >= threshold)
    return None if hit.size == 0 else int(np.asarray(steps)[hit[0]])


def grok_step(metrics: pd.DataFrame, threshold: float = 0.99,
              metric: str = "accuracy") -> Optional[int]:
    """First evaluated step whose ``metric`` (default: held-out accuracy) is ≥ ``threshold``
    (None if never; :func:`first_step_at`); the resolution is the evaluation interval
    (``snapshot_every``)."""
    rows = metrics[metrics.metric == metric].sort_values("step")
    return first_step_at(rows.step.to_numpy(), rows.value.to_numpy(), threshold)


def curves(run) -> pd.DataFrame:
    """Wide table ``step × {loss, accuracy, train_loss, train_accuracy}`` of one run."""
    table = run.metrics.pivot_table(index="step", columns="metric", values="value")
    return table.reset_index()


def centered(series: np.ndarray) -> np.ndarray:
    """Subtract each coordinate's mean over time: ``[R, D]`` → ``[R, D]``."""
    series = np.asarray(series, float)
    return series - series.mean(axis=0, keepdims=True)


# ---- fingerprint spectra (C14) ------------------------------------------------------------------
def fingerprint_series(run, split: str = "heldout", until: Optional[int] = None
                       ) -> tuple[np.ndarray, np.ndarray]:
    """``(steps [R], F [R, Q])``: the run's fingerprint sequence, records at steps ≤ ``until``."""
    arrays = run.fingerprints
    if split not in arrays:
        raise ValueError(f"split: run {run.key} recorded {sorted(k for k in arrays if k in ('heldout', 'train', 'sliced'))}, "
                         f"got {split!r}")
    steps = arrays["steps"]
    keep = steps <= (np.inf if until is None else until)
    return steps[keep], np.asarray(arrays[split][keep], float)


def fit_spectra(series: np.ndarray, n_delays: int = 32, rank: int = 10, ridge: float = 1e-6,
                horizons=(1, 10, 50), n_starts: int = 10) -> tuple[dict, pd.DataFrame]:
    """TSVD and RRR DMD of one fingerprint sequence ``[R, Q]`` (rows are records).

    The sequence is centred per coordinate over time (seed 001's ``per_snapshot_mean``), then
    Hankel-embedded with ``n_delays``.  Returns ``({method: DMD}, errors)`` where ``errors`` has
    one row per method: the relative one-step error on the fitted pairs and, for each horizon
    ``h``, the mean relative error of ``h``-step rollouts from ``n_starts`` evenly spaced starts.
    """
    from .dmd import data_matrices, hankel, rrr_dmd, tsvd_dmd
    Y = centered(series).T
    Z, Zp = data_matrices([Y], n_delays)
    H = hankel(Y, n_delays)
    models = {"tsvd": tsvd_dmd(Z, Zp, rank), "rrr": rrr_dmd(Z, Zp, rank, ridge)}
    rows = []
    for method, model in models.items():
        row = {"method": method, "one-step": model.one_step_error(Z, Zp)}
        for h in horizons:
            starts = np.unique(np.linspace(0, H.shape[1] - 1 - h, n_starts).astype(int))
            errs = []
            for s in starts[starts >= 0]:
                pred = model.rollout(H[:, s], h)[:, -1]
                errs.append(np.linalg.norm(pred - H[:, s + h]) /
                            max(np.linalg.norm(H[:, s + h]), 1e-12))
            row[f"{h}-step rollout"] = float(np.mean(errs)) if errs else np.nan
        rows.append(row)
    return models, pd.DataFrame(rows)


def run_labels(runs) -> pd.DataFrame:
    """One row per run: ``key, weight_decay, seed, perturbation`` (-1: unperturbed),
    ``last_step`` and the grokking and memorisation steps (first evaluation ≥ 99%)."""
    rows = []
    for run in runs:
        t = run.config.train
        rows.append({"key": run.key, "weight_decay": t.weight_decay, "seed": run.config.seed,
                     "perturbation": t.perturbation_seed if t.init_perturbation else -1,
                     "last_step": run.last_step,
                     "grok_step": grok_step(run.metrics, 0.99, "accuracy"),
                     "memorise_step": grok_step(run.metrics, 0.99, "train_accuracy")})
    table = pd.DataFrame(rows)
    for name in ("grok_step", "memorise_step"):       # None (never) becomes NaN
        table[name] = pd.to_numeric(table[name], errors="coerce").astype(float)
    return table


def spectra_tables(runs, n_delays: int = 32, rank: int = 10, ridge: float = 1e-6,
                   until: Optional[int] = None, split: str = "heldout"
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eigenvalues (``key, method, index, re, im, modulus``) and reconstruction errors (``key,
    method, one-step, h-step rollout…``) of every run's fingerprint DMD, cached by run keys and
    parameters."""
    from .store import cached
    inputs = {"runs": [r.key for r in runs], "n_delays": n_delays, "rank": rank,
              "ridge": ridge, "until": until, "split": split}

    def compute() -> dict:
        eig_rows, err_rows = [], []
        for run in runs:
            _, series = fingerprint_series(run, split, until)
            models, errors = fit_spectra(series, n_delays, rank, ridge)
            for method, model in models.items():
                for i, lam in enumerate(model.eigenvalues):
                    eig_rows.append({"key": run.key, "method": method, "index": i,
                                     "re": lam.real, "im": lam.imag})
            err_rows += errors.assign(key=run.key).to_dict("records")
        return {"eigenvalues": eig_rows, "errors": err_rows}

    result = cached("grok-spectra", 2, inputs, compute)   # 2: exact RRR with a ridge (issue 25)
    eig = pd.DataFrame(result["eigenvalues"])
    eig["modulus"] = np.hypot(eig.re, eig.im)
    return eig, pd.DataFrame(result["errors"])


def distance_matrix(eigenvalues: pd.DataFrame, keys, method: str) -> np.ndarray:
    """``[n, n]`` spectral (Wasserstein-1, optimal matching) distances between runs ``keys``."""
    from .dmd import spectral_distance
    sets = []
    for key in keys:
        part = eigenvalues[(eigenvalues.key == key) & (eigenvalues.method == method)]
        sets.append(part.re.to_numpy() + 1j * part.im.to_numpy())
    n = len(sets)
    D = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            D[i, j] = D[j, i] = spectral_distance(sets[i], sets[j])
    return D


def _group_means(D: np.ndarray, labels: np.ndarray, members: np.ndarray) -> tuple[float, float]:
    """Mean within-label and between-label distance over pairs of distinct runs in
    ``members`` (indices, possibly repeated by a bootstrap)."""
    i, j = np.triu_indices(len(members), 1)
    a, b = members[i], members[j]
    distinct = a != b
    a, b = a[distinct], b[distinct]
    same = labels[a] == labels[b]
    d = D[a, b]
    return (float(d[same].mean()) if same.any() else np.nan,
            float(d[~same].mean()) if (~same).any() else np.nan)


def separation(D: np.ndarray, labels, seeds, n_boot: int = 2000, n_perm: int = 5000,
               seed: int = 0) -> dict:
    """Do spectra separate the conditions ``labels``?  ``D`` is the distance matrix of runs with
    condition ``labels[i]`` and seed ``seeds[i]`` (every condition has the same seeds).

    Returns the mean within- and between-condition distances and their ratio, each with a 95%
    bootstrap CI over seeds (a resampled seed brings its run in every condition); the
    permutation p-value of ``between − within`` (condition labels shuffled over runs); and the
    leave-one-out 1-nearest-neighbour accuracy of the condition with its chance level.
    """
    labels, seeds = np.asarray(labels), np.asarray(seeds)
    everyone = np.arange(len(labels))
    within, between = _group_means(D, labels, everyone)
    rng = np.random.default_rng(seed)
    unique_seeds = np.unique(seeds)
    boots = []
    for _ in range(n_boot):
        drawn = rng.choice(unique_seeds, size=len(unique_seeds), replace=True)
        members = np.concatenate([np.flatnonzero(seeds == s) for s in drawn])
        boots.append(_group_means(D, labels, members))
    boots = np.array(boots)
    ratio = boots[:, 1] / boots[:, 0]
    observed = between - within
    count = 0
    for _ in range(n_perm):
        w, b = _group_means(D, rng.permutation(labels), everyone)
        count += (b - w) >= observed
    masked = D + np.diag(np.full(len(D), np.inf))
    nearest = masked.argmin(axis=1)
    values, counts = np.unique(labels, return_counts=True)
    return {"within": within, "within CI": tuple(np.nanpercentile(boots[:, 0], [2.5, 97.5])),
            "between": between,
            "between CI": tuple(np.nanpercentile(boots[:, 1], [2.5, 97.5])),
            "ratio": between / within, "ratio CI": tuple(np.nanpercentile(ratio, [2.5, 97.5])),
            "p (permutation)": (count + 1) / (n_perm + 1),
            "1-NN accuracy": float(np.mean(labels[nearest] == labels)),
            "chance": float(counts.max() / counts.sum())}


def pair_distances(D: np.ndarray, members) -> np.ndarray:
    """Distances of every pair of distinct runs among ``members`` (indices into ``D``)."""
    members = np.asarray(members)
    i, j = np.triu_indices(len(members), 1)
    return D[members[i], members[j]]


def pooled_spectrum(runs, n_delays: int = 32, rank: int = 10, ridge: float = 1e-6,
                    method: str = "rrr", split: str = "heldout") -> np.ndarray:
    """Eigenvalues of one DMD fitted to several runs' fingerprint sequences at once (each
    centred on its own, Hankel pairs stacked without crossing from one run to the next)."""
    from .dmd import data_matrices, rrr_dmd, tsvd_dmd
    trajectories = [centered(fingerprint_series(run, split)[1]).T for run in runs]
    Z, Zp = data_matrices(trajectories, n_delays)
    model = rrr_dmd(Z, Zp, rank, ridge) if method == "rrr" else tsvd_dmd(Z, Zp, rank)
    return model.eigenvalues
