"""Named configurations: ``smoke`` (CI), ``book`` (2-core CPU), ``original``, ``paper``.

``preset(name, seed=0)`` returns a :class:`RunConfig`; ``PRESETS[name].seeds`` says how many
seeds the preset is meant to be run with.  ``preset_table()`` is the table shown in the book.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from .config import RunConfig, TrainConfig
from .model import ModelConfig
from .task import TaskConfig, max_markers


@dataclass(frozen=True)
class Preset:
    """A run configuration plus the seed count and a one-line purpose."""

    config: RunConfig   # the configuration (seed 0)
    seeds: int          # independent seeds the preset is meant to be run with
    purpose: str        # what the preset is for


_ORIGINAL = RunConfig(
    task=TaskConfig(T=16, C=8, m_values=(1, 2, 3, 4), op="add", marker_ids="ordinal",
                    positions="per_batch", readout="last"),
    model=ModelConfig(n_layers=5, d_model=128, n_heads=4, attention_only=True),
    train=TrainConfig(optimizer="adamw", lr=3e-4, weight_decay=0.01, batch_size=128,
                      n_steps=20_000, schedule="mixed", mixed_per="batch",
                      snapshot_every=500, checkpoint_every=1000),
)

PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                  model=ModelConfig(n_layers=1, d_model=32, n_heads=2),
                  train=TrainConfig(lr=3e-3, batch_size=32, n_steps=60, snapshot_every=5,
                                    probe_size=128, checkpoint_every=30)),
        seeds=2, purpose="CI: every notebook end to end in seconds"),
    "book": Preset(
        replace(_ORIGINAL, task=replace(_ORIGINAL.task, positions="per_example"),
                train=replace(_ORIGINAL.train, lr=1e-3, lr_schedule="cosine", warmup_steps=100,
                              n_steps=6_000, snapshot_every=100)),
        seeds=5, purpose="the scale the book is computed at on a 2-core CPU"),
    "original": Preset(_ORIGINAL, seeds=2,
                       purpose="the original code (bubble-modadd train.py), defects removed"),
    "paper": Preset(
        RunConfig(task=replace(_ORIGINAL.task, T=32),
                  model=_ORIGINAL.model,
                  train=TrainConfig(optimizer="sgd", lr=1e-3, weight_decay=0.0, batch_size=64,
                                    n_steps=20_000, snapshot_every=100)),
        seeds=20, purpose="the paper's stated setup (T=32, SGD 1e-3, batch 64, 20 seeds)"),
}


def constant_lr(cfg: RunConfig, lr: float | None = None) -> RunConfig:
    """``cfg`` with the original's optimisation schedule: constant learning rate ``lr`` (default:
    ``cfg``'s peak rate), no warm-up.  The book's learning-rate controls."""
    return replace(cfg, train=replace(cfg.train, lr=cfg.train.lr if lr is None else lr,
                                      lr_schedule="constant", warmup_steps=0,
                                      lr_final_ratio=0.0))


def single_m(cfg: RunConfig, m: int) -> RunConfig:
    """``cfg`` trained on one m only; same seed, hence the same initial weights and probes."""
    return replace(cfg, train=replace(cfg.train, schedule="single", single_m=m,
                                      mixed_per="batch", curriculum=(), reset_optimizer=True))


def with_mlp(cfg: RunConfig) -> RunConfig:
    """``cfg`` with a pre-LN GELU MLP in every block (same task, optimiser, steps and seed)."""
    return replace(cfg, model=replace(cfg.model, attention_only=False))


def curriculum(cfg: RunConfig, reset_optimizer: bool = True) -> RunConfig:
    """``cfg`` trained on one m at a time, in increasing order, in equal stages over the same
    number of steps (the remainder goes to the last stage); ``reset_optimizer``: a fresh
    optimizer at each stage (the original) or one carried through."""
    ms = sorted(cfg.task.m_values)
    length, extra = divmod(cfg.train.n_steps, len(ms))
    if length < 1:
        raise ValueError(f"n_steps: need >= {len(ms)} steps for {len(ms)} curriculum stages, "
                         f"got {cfg.train.n_steps}")
    stages = tuple((m, length + (extra if i == len(ms) - 1 else 0)) for i, m in enumerate(ms))
    return replace(cfg, train=replace(cfg.train, schedule="curriculum", curriculum=stages,
                                      reset_optimizer=reset_optimizer, single_m=None))


def paper_optimizer(cfg: RunConfig) -> RunConfig:
    """``cfg`` trained with the paper's stated optimizer: plain SGD, constant lr 1e-3, batch 64,
    no weight decay (the original code used AdamW; same steps and seed)."""
    paper = PRESETS["paper"].config.train
    return replace(cfg, train=replace(cfg.train, optimizer=paper.optimizer, lr=paper.lr,
                                      weight_decay=paper.weight_decay, momentum=paper.momentum,
                                      batch_size=paper.batch_size, lr_schedule="constant",
                                      warmup_steps=0, lr_final_ratio=0.0))


def with_precision(cfg: RunConfig, precision: str) -> RunConfig:
    """``cfg`` trained at ``precision`` ("fp32" | "bf16"; see ``TrainConfig.precision``): same
    seed, data, initial weights and probes, another run key unless "fp32"."""
    return replace(cfg, train=replace(cfg.train, precision=precision))


def dense_early(cfg: RunConfig, every: int | None = None, until: int | None = None
                ) -> RunConfig:
    """``cfg`` with extra snapshots and evaluations every ``every`` steps up to ``until`` (issue
    22's time resolution for the early transitions; defaults scale with ``cfg``: a tenth of its
    snapshot spacing, to a sixth of training — every 10 steps to step 1000 at the book preset);
    training is identical, only what is recorded differs (``tests/test_train.py``)."""
    t = cfg.train
    every = max(1, t.snapshot_every // 10) if every is None else every
    until = t.n_steps // 6 if until is None else until
    return replace(cfg, train=replace(t, dense_every=every, dense_until=min(until, t.n_steps)))


def longer_budget(cfg: RunConfig, factor: int = 2) -> RunConfig:
    """``cfg`` trained ``factor`` times as many steps (the cosine schedule stretched over them,
    snapshots at the same spacing): issue 22's convergence arm."""
    if factor < 1:
        raise ValueError(f"factor: must be an integer >= 1, got {factor!r}")
    return replace(cfg, train=replace(cfg.train, n_steps=cfg.train.n_steps * factor))


def with_task(cfg: RunConfig, **changes) -> RunConfig:
    """``cfg`` with task fields replaced (validated), e.g. ``with_task(cfg, op="mul", C=7)``."""
    return replace(cfg, task=replace(cfg.task, **changes))


# chapter 8: multiplication needs a prime modulus (values 1..C-1 form the cyclic group Z_C^*);
# C=7 is the prime nearest the book's C=8.  Its multiplicative group has order 6, so addition
# mod 6 is the same group (via the discrete log) and the tightest control.
MUL_C = 7


def operation_arms(cfg: RunConfig) -> dict[str, RunConfig]:
    """Chapter 8's arms for one seed: multiplication mod 7, addition mod 7 (equal settings) and
    addition mod 6 (the isomorphic group: Z_7^* ≅ Z_6)."""
    return {"mul C7": with_task(cfg, op="mul", C=MUL_C),
            "add C7": with_task(cfg, op="add", C=MUL_C),
            "add C6": with_task(cfg, op="add", C=MUL_C - 1)}


def difficulty_arms(cfg: RunConfig, grid: dict[int, tuple[int, ...]] | None = None,
                    largest_m: int = 6) -> dict[tuple[int, str], RunConfig]:
    """Chapter 7's difficulty grid for one seed, keyed ``(C, arm)``: at each modulus ``C`` of
    ``grid`` (default ``{8: (5,), 16: (2, 3)}``: the first m not learned from scratch at C=8
    is 4 (chapter 3's runs), so the grid asks whether 5 fails too, and where C=16 stops), mixed training on ``cfg``'s own m values and on ``1..largest_m``, and
    from-scratch training on each listed single m.  A single-m arm uses the narrowest task that
    holds its m (``cfg``'s m values when they include it), so the book's existing single-m runs
    at C=8 are the same runs.  ``largest_m`` and the singles are clipped to what fits in ``T``
    (the book's T=16 fits 7 markers)."""
    grid = {8: (5,), 16: (2, 3)} if grid is None else grid
    largest_m = min(largest_m, max_markers(cfg.task.T))
    own = cfg.task.m_values
    out = {}
    for C, singles in grid.items():
        narrow = with_task(cfg, C=C)
        wide = with_task(cfg, C=C, m_values=tuple(range(1, largest_m + 1)))
        out[(C, f"mixed 1-{max(own)}")] = narrow
        if wide.task.m_values != own:
            out[(C, f"mixed 1-{largest_m}")] = wide
        for m in (m for m in singles if m <= largest_m):
            out[(C, f"only m={m}")] = single_m(narrow if m in own else wide, m)
    return out


# the roles of study_configs that the book's chapters read (``make study`` trains these)
BOOK_ROLES = ("main", "constant lr", "original lr", "single m", "full params", "mlp",
              "curriculum", "curriculum (no reset)", "largest m only", "paper sgd", "difficulty",
              "mul C7", "add C7", "dense snapshots", "main bf16", "longer budget")


# replication seeds added by issue 22 train at bf16 (validated against fp32 on the book's main
# runs, book/precision.md); the seeds trained before it stay fp32: single-m seeds 0-1, the
# difficulty grid's seed 0.  The longer-budget arm is bf16 too, compared with the bf16 book runs.
REPLICATION_PRECISION = "bf16"
_FP32_SINGLE_M_SEEDS, _FP32_FEW_SEEDS = 2, 1


def _replicated(cfgs: list[RunConfig], fp32_count: int, precision: str) -> list[RunConfig]:
    """``cfgs`` (one per seed, in seed order) with those past the first ``fp32_count`` at
    :data:`REPLICATION_PRECISION` (all at ``precision`` when that is not fp32)."""
    if precision != "fp32":
        return cfgs
    return [c if i < fp32_count else with_precision(c, REPLICATION_PRECISION)
            for i, c in enumerate(cfgs)]


def study_configs(name: str = "book", seeds: int | None = None,
                  single_m_seeds: int = 5, few_seeds: int = 3,
                  sgd_seeds: int = 3, precision: str = "fp32") -> dict[str, list[RunConfig]]:
    """Every run the chapters draw from at preset ``name``, by role: the preset's seeds, its
    learning-rate controls (constant peak rate; constant original rate 3e-4), single-m runs
    (every m of the task, seeds ``0..single_m_seeds-1``), and the preset's seeds again storing
    full parameter vectors (chapter 4; identical training), and chapter 7's arms: with MLPs,
    curriculum with and without optimizer resets, the largest m alone from scratch, the paper's
    SGD (``sgd_seeds`` seeds) and the difficulty grid (``few_seeds`` seeds); chapter 8's
    multiplication and addition at the same modulus.  ``precision``: every run at that training
    precision (:func:`with_precision`)."""
    main = [with_precision(c, precision) for c in preset_seeds(name, seeds)]
    original_lr = _ORIGINAL.train.lr
    return {
        "main": main,
        "constant lr": [constant_lr(c) for c in main],
        "original lr": [constant_lr(c, original_lr) for c in main],
        "single m": [single_m(c, m) for c in
                     _replicated(main[:single_m_seeds], _FP32_SINGLE_M_SEEDS, precision)
                     for m in c.task.m_values],
        "full params": [replace(c, train=replace(c.train, store_full_params=True))
                        for c in main],
        # chapter 7: architecture and curriculum arms, same seeds and steps
        # full parameters: the MLP weights' own trajectories (snapshots hold attention only)
        "mlp": [replace(with_mlp(c), train=replace(c.train, store_full_params=True))
                for c in main],
        "curriculum": [curriculum(c) for c in main],
        "curriculum (no reset)": [curriculum(c, reset_optimizer=False) for c in main],
        "largest m only": [single_m(c, max(c.task.m_values)) for c in main],
        "paper sgd": [paper_optimizer(c) for c in main[:sgd_seeds]],
        "difficulty": [arm for c in _replicated(main[:few_seeds], _FP32_FEW_SEEDS, precision)
                       for arm in difficulty_arms(c).values()],
        # issue 22: the main runs with dense early snapshots (identical training; chapters 3-4
        # measure lock-in and the entropy transition on them), at bf16 (the longer arm's
        # baseline), and trained twice as long
        "dense snapshots": [dense_early(c) for c in main],
        "main bf16": [with_precision(c, REPLICATION_PRECISION) for c in main],
        "longer budget": [longer_budget(with_precision(c, REPLICATION_PRECISION)) for c in main],
        # chapter 8
        "mul C7": [operation_arms(c)["mul C7"] for c in main],
        "add C7": [operation_arms(c)["add C7"] for c in main],
    }


# issue 25: the paper's own setting (T=32), never run before; bf16 training (validated on the
# book's main runs, book/precision.md) halves its cost on the 2-core CPU
PAPER_SETTING_PRECISION = "bf16"


def paper_setting(name: str = "book", seeds: int = 5, precision: str = PAPER_SETTING_PRECISION
                  ) -> dict[str, list[RunConfig]]:
    """The paper's stated setting measured (chapter 3), seeds ``0..seeds-1`` at ``precision``:

    - ``"paper setting: stated"``: the ``paper`` preset as the paper states it (T=32, plain SGD
      lr 1e-3, batch 64, 20 000 steps), a snapshot every 500 steps (the original code's spacing;
      the paper states none; 41 snapshots keep its analysis caches small);
    - ``"paper setting: book optimizer"``: the same task (T=32) trained with preset ``name``'s
      optimisation (the book's: AdamW 1e-3, cosine with a 100-step warm-up, batch 128, 6000
      steps), so C1 is tested at the paper's sequence length.

    At another preset than ``book`` (CI's ``smoke``) both arms keep that preset's task and only
    the optimiser differs (:func:`paper_optimizer`): the paper preset is too long to smoke-test."""
    own = PRESETS[name].config.train
    if name == "book":      # snapshots at the original code's spacing, 500 steps: 41 of them
        stated = [replace(c, train=replace(c.train, snapshot_every=500))  # (the paper states
                  for c in preset_seeds("paper", seeds)]                  # none)
    else:
        stated = [paper_optimizer(preset(name, s)) for s in range(seeds)]
    stated = [with_precision(c, precision) for c in stated]
    return {"paper setting: stated": stated,
            "paper setting: book optimizer": [
                replace(c, train=replace(own, precision=c.train.precision)) for c in stated]}


def preset(name: str, seed: int = 0) -> RunConfig:
    """The configuration of preset ``name`` with ``seed``."""
    if name not in PRESETS:
        raise ValueError(f"preset: must be one of {', '.join(map(repr, PRESETS))}, got {name!r}")
    return PRESETS[name].config.with_seed(seed)


def preset_seeds(name: str, seeds: int | None = None) -> list[RunConfig]:
    """``seeds`` (default: the preset's count) configurations of preset ``name``, seeds 0..n-1."""
    count = PRESETS[name].seeds if seeds is None else seeds
    if count < 1:
        raise ValueError(f"seeds: must be >= 1, got {count}")
    return [preset(name, seed) for seed in range(count)]


def preset_table() -> pd.DataFrame:
    """One row per preset, one column per setting that differs between presets."""
    rows = {}
    for name, p in PRESETS.items():
        c = p.config
        rows[name] = {
            "T": c.task.T, "C": c.task.C, "m": ",".join(map(str, c.task.m_values)),
            "positions": c.task.positions, "layers": c.model.n_layers, "d": c.model.d_model,
            "heads": c.model.n_heads, "optimizer": c.train.optimizer, "lr": c.train.lr,
            "lr schedule": c.train.lr_schedule + (f" (warm-up {c.train.warmup_steps})"
                                                  if c.train.warmup_steps else ""),
            "wd": c.train.weight_decay, "batch": c.train.batch_size, "steps": c.train.n_steps,
            "schedule": c.train.schedule, "snapshot every": c.train.snapshot_every,
            "seeds": p.seeds, "purpose": p.purpose,
        }
    return pd.DataFrame(rows).T


def preset_differences(a: str, b: str) -> pd.DataFrame:
    """The settings in which preset ``a`` differs from preset ``b``: ``[setting, a, b]`` rows."""
    return config_differences(preset(a), preset(b), a, b)


def config_differences(first: RunConfig, second: RunConfig, a: str = "first",
                       b: str = "second") -> pd.DataFrame:
    """The fields in which two configurations differ: ``[setting, a, b]`` rows, in field order
    (a field only one of them has, e.g. across task types, shows None for the other)."""
    flat = [{f"{part}.{k}": v for part, sub in cfg.to_dict().items()
             if isinstance(sub, dict) for k, v in sub.items()} for cfg in (first, second)]
    names = list(dict.fromkeys([*flat[0], *flat[1]]))
    rows = [(k, flat[0].get(k), flat[1].get(k)) for k in names
            if flat[0].get(k) != flat[1].get(k)]
    return pd.DataFrame(rows, columns=["setting", a, b])
