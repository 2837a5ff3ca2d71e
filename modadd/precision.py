"""bf16 mixed precision, validated against float32 on the book preset's seeds.

``precision="bf16"`` (``TrainConfig``) trains with bfloat16 autocast of the step's matmuls and the
lean forward; weights, optimizer state, snapshots, evaluation and every measurement stay float32
or float64.  This module asks whether that changes any result the book reports.  The same
seeds (hence the same data, initial weights and probe sets) are trained at both precisions, and
for every seed and quantity the fp32 and bf16 values are paired:

- final held-out accuracy per m;
- r90 and the participation ratio of every attention-matrix type (layers averaged within a
  seed), and the same statistics of both matched nulls (random walk with the run's step norms,
  the run's own increments shuffled) — chapter 3's measurements;
- the lock-in fraction (median over blocks; chapter 3) and its random-walk null;
- the drop of the readout-attention entropy from the first to the last evaluation (mean over
  m and layers, and in the last layer; chapter 4), and the final training loss.

**Agreement rule** (:func:`agreement`, version 1, fixed on 2026-12-01 before any bf16 run was
trained).  Per quantity, ``d_s = bf16_s − fp32_s`` over seeds ``s``; its mean and 95% t interval;
a margin ``max(floor, 0.5 × SD of the fp32 values over seeds)`` (half a seed-to-seed standard
deviation, never below the quantity's resolution ``floor``):

- **equivalent** — the interval lies inside ``±margin``;
- **different** — the interval excludes 0 and ``|mean d| > margin``;
- **undetermined** — otherwise (too few seeds to tell).

bf16 *agrees* when no quantity is different and no claim's verdict changes (:func:`validation`).
The rule is calibrated on its own controls: a **null** that pairs fp32 seed ``s`` with fp32
seed ``s+1`` (two independent draws of the same distribution: a rule that calls these different
has a false-alarm problem) and a **positive control** that pairs the preset's schedule with the
constant-peak-rate runs of the same seeds (chapter 3 finds their r90 differ: a rule that cannot
see that has no power).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional

import numpy as np
import pandas as pd

from .stats import mean_ci

RULE_VERSION = 1
RULE_DATE = "2026-12-01"
MARGIN_SD = 0.5                   # the margin, in fp32 seed-to-seed standard deviations
VERDICTS = ("equivalent", "different", "undetermined")
# the resolution below which a difference is not a difference, per quantity family
FLOORS = {"accuracy": 0.01, "r90": 0.5, "participation": 0.1, "lock-in": None,
          "entropy drop": 0.02, "final loss": 0.01}
MATRICES = ("W_Q", "W_K", "W_V", "W_O")
SOURCES = {"real": "", "random walk": " (random walk)",
           "shuffled increments": " (shuffled increments)"}
NULL_DRAWS = 20          # chapter 3's draws per run at the book scale (tests/test_registry.py)
LOSS_WINDOW = 100        # final training loss: mean of the last this many steps
SINGLE_M_SEEDS = 2       # chapter 3's single-m seeds (its angle table's key)


def agreement(diffs, reference, floor: float) -> dict:
    """The agreement rule on one quantity: ``diffs`` the per-seed paired differences (bf16 −
    fp32), ``reference`` the fp32 per-seed values (their SD sets the margin), ``floor`` the
    smallest margin.  Returns ``{mean, low, high, margin, verdict}``."""
    diffs, reference = np.asarray(diffs, float), np.asarray(reference, float)
    if diffs.size < 2 or reference.size < 2 or not np.all(np.isfinite(diffs)):
        raise ValueError(f"diffs: need >= 2 finite paired differences, got {diffs.tolist()}")
    if not floor > 0:
        raise ValueError(f"floor: must be > 0, got {floor!r}")
    mean, low, high = mean_ci(diffs)
    if not np.isfinite(low):          # all differences equal: a zero-width interval
        low = high = mean
    margin = max(floor, MARGIN_SD * float(np.std(reference, ddof=1)))
    if -margin <= low and high <= margin:
        verdict = "equivalent"
    elif (low > 0 or high < 0) and abs(mean) > margin:
        verdict = "different"
    else:
        verdict = "undetermined"
    return {"mean": float(mean), "low": float(low), "high": float(high),
            "margin": float(margin), "verdict": verdict}


def _family(quantity: str) -> str:
    return next(f for f in FLOORS if quantity.startswith(f))


def per_seed_values(cfgs, null_draws: int = NULL_DRAWS) -> pd.DataFrame:
    """``[seed, quantity, value]`` of every validated quantity for the runs ``cfgs`` (loaded from
    the store; the dimension and lock-in analyses are the cached calls chapter 3 makes for its
    schedule comparison: r90 and participation at 90% with ``null_draws // 4`` null draws per
    run, lock-in with ``null_draws``)."""
    from . import manifold as MF
    from .store import load_or_train_many
    cfgs = list(cfgs)
    runs = load_or_train_many(cfgs, progress=False)
    rows = []
    for run in runs:
        seed, metrics = run.config.seed, run.metrics
        accuracy = metrics[metrics.metric == "accuracy"]
        last = accuracy[accuracy.step == accuracy.step.max()]
        rows += [(seed, f"accuracy m={int(r.m)}", float(r.value)) for r in last.itertuples()]
        entropy = metrics[metrics.metric == "entropy"]
        first_step, last_step = entropy.step.min(), entropy.step.max()
        start = entropy[entropy.step == first_step].set_index(["m", "layer"]).value
        end = entropy[entropy.step == last_step].set_index(["m", "layer"]).value
        drop = start - end
        top = drop.index.get_level_values("layer").max()
        rows.append((seed, "entropy drop (mean over m, layers)", float(drop.mean())))
        rows.append((seed, "entropy drop (last layer)", float(drop.xs(top, level="layer").mean())))
        loss = np.asarray(run.train_log.loss, float)
        rows.append((seed, "final loss", float(np.mean(loss[-LOSS_WINDOW:]))))
    dims = MF.dimension_summary(cfgs, thresholds=(0.9,), null_draws=max(1, null_draws // 4))
    block = dims[(dims.group == "block") & np.isclose(dims.threshold, 0.9)]
    for (seed, matrix, source), part in block.groupby(["seed", "matrix", "source"]):
        rows.append((seed, f"r90 {matrix}{SOURCES[source]}", float(part["rank"].mean())))
        rows.append((seed, f"participation {matrix}{SOURCES[source]}",
                     float(part["participation"].mean())))
    lock = MF.lock_in_table(cfgs, null_draws=null_draws)
    for (seed, source), part in lock.groupby(["seed", "source"]):
        per_block = part.groupby(["layer", "matrix"]).lock_in.mean()   # null draws averaged
        rows.append((seed, f"lock-in{SOURCES[source]}", float(per_block.median())))
    return pd.DataFrame(rows, columns=["seed", "quantity", "value"])


def agreement_table(reference: pd.DataFrame, other: pd.DataFrame, resolution: float,
            pairing: Optional[dict] = None) -> pd.DataFrame:
    """The agreement rule on every quantity of two :func:`per_seed_values` tables: one row per
    quantity with both means and CIs over seeds, the paired difference (``other − reference``)
    with its CI, the margin and the verdict.  ``pairing``: reference seed -> other seed
    (default: the same seed); ``resolution``: one snapshot interval as a fraction of training
    (the floor of lock-in differences)."""
    ref = reference.pivot(index="seed", columns="quantity", values="value")
    oth = other.pivot(index="seed", columns="quantity", values="value")
    pairing = pairing or {s: s for s in ref.index}
    seeds = [s for s in ref.index if s in pairing and pairing[s] in oth.index]
    rows = []
    for quantity in ref.columns:
        if quantity not in oth.columns:
            continue
        a = ref.loc[seeds, quantity].to_numpy(float)
        b = oth.loc[[pairing[s] for s in seeds], quantity].to_numpy(float)
        family = _family(quantity)
        floor = resolution if FLOORS[family] is None else FLOORS[family]
        result = agreement(b - a, a, floor)
        ma, mb = mean_ci(a), mean_ci(b)
        rows.append({"quantity": quantity, "family": family, "seeds": len(seeds),
                     "reference": ma[0], "reference low": ma[1], "reference high": ma[2],
                     "other": mb[0], "other low": mb[1], "other high": mb[2],
                     "difference": result["mean"], "difference low": result["low"],
                     "difference high": result["high"], "margin": result["margin"],
                     "verdict": result["verdict"]})
    return pd.DataFrame(rows)


def validation_configs(preset: str = "book", seeds: int = 5) -> dict[str, list]:
    """The runs of the validation: ``fp32`` and ``bf16`` (the preset's seeds, identical but for
    the precision) and ``constant lr`` (the positive control: chapter 3's constant-peak-rate
    runs of the same seeds)."""
    from .presets import constant_lr, preset_seeds, single_m, with_precision
    main = preset_seeds(preset, seeds)
    return {"fp32": main, "bf16": [with_precision(c, "bf16") for c in main],
            "constant lr": [constant_lr(c) for c in main],
            # chapter 3's single-m runs: only to find its cached fp32 angle table
            "single m": {(m, c.seed): single_m(c, m) for c in main[:SINGLE_M_SEEDS]
                         for m in c.task.m_values}}


def _resolution(cfg) -> float:
    from .train import snapshot_steps
    steps = snapshot_steps(cfg)
    return float(np.min(np.diff(steps)) / steps[-1])


def validation(preset: str = "book", seeds: int = 5, null_draws: int = NULL_DRAWS) -> dict:
    """The bf16 validation at ``preset``: ``{"values"}`` (per-seed values of every run set),
    ``"comparison"`` (fp32 vs bf16, same seeds), ``"null"`` (fp32 vs fp32 of the next seed),
    ``"positive control"`` (fp32 vs constant peak rate, same seeds), ``"verdicts"`` (the claims
    measured on the main runs alone, by both precisions) and ``"agrees"`` (bool).
    ``null_draws``: null draws per run (chapter 3's count reuses its cached analyses)."""
    cfgs = validation_configs(preset, seeds)
    resolution = _resolution(cfgs["fp32"][0])
    values = {name: per_seed_values(cfgs[name], null_draws)
              for name in ("fp32", "bf16", "constant lr")}
    seed_ids = [c.seed for c in cfgs["fp32"]]
    shifted = {s: seed_ids[(i + 1) % len(seed_ids)] for i, s in enumerate(seed_ids)}
    comparison = agreement_table(values["fp32"], values["bf16"], resolution)
    verdicts = claim_verdicts(cfgs["fp32"], cfgs["bf16"], cfgs["single m"], null_draws)
    agrees = bool((comparison.verdict != "different").all() and
                  (verdicts["fp32"] == verdicts["bf16"]).all())
    return {"values": values, "comparison": comparison,
            "null": agreement_table(values["fp32"], values["fp32"], resolution, shifted),
            "positive control": agreement_table(values["fp32"], values["constant lr"], resolution),
            "verdicts": verdicts, "agrees": agrees}


# claims whose tables the main runs alone provide (chapters 2-4); the others need more roles
MAIN_ONLY_CLAIMS = ("R0", "C1", "C2", "C3", "C4", "C5", "C6", "C7")


ANGLE_COMPARISONS = ("seed", "layer", "random")


def _claim_tables(cfgs, single=None, null_draws: int = NULL_DRAWS) -> dict:
    """Every :data:`MAIN_ONLY_CLAIMS` claim's tables built from the runs ``cfgs``, by the
    chapters' own table builders.  C3's subspace overlaps keep the comparisons among ``cfgs``
    (:data:`ANGLE_COMPARISONS`); ``single`` (``(m, seed) -> config``) only lets the fp32 side
    reuse chapter 3's cached angle table (which also holds the single-m runs' pairs)."""
    from . import manifold as MF
    from . import registry
    from .claims import ch02, ch03, ch04
    from .store import load_or_train_many
    from .task import chance_accuracy
    cfgs = list(cfgs)
    runs = load_or_train_many(cfgs, progress=False)
    cfg = cfgs[0]
    steps = MF.block_grams(cfg)[2]
    k = min(registry.settings("ch03").k_subspace, len(steps) - 2)
    lock = MF.lock_in_table(cfgs, null_draws=null_draws)
    ch3 = ch03.tables_from_analyses(
        MF.dimension_summary(cfgs, null_draws=null_draws), lock,
        _angles_among(MF.angle_table({c.seed: c for c in cfgs}, single or {}, k=k,
                                     random_draws=ch03.ANGLE_RANDOM_DRAWS)),
        k=k, dim=cfg.model.d_model ** 2, steps=steps,
        schedules={"main": MF.dimension_summary(cfgs, thresholds=(0.9,),
                                                null_draws=max(1, null_draws // 4))})
    metrics = pd.concat([r.metrics.assign(seed=r.config.seed) for r in runs], ignore_index=True)
    ch4 = ch04.tables_from_metrics(metrics, MF.lock_in_table(cfgs, null_draws=1),
                                   cfg.task.seq_len, cfg.train.n_steps)
    ch2 = ch02.tables_from_runs(runs, chance_accuracy(cfg.task))
    return {"R0": ch2, **{c: ch3 for c in ch03.IDS}, "C6": ch4, "C7": ch4}


def _angles_among(angles: pd.DataFrame) -> pd.DataFrame:
    return angles[angles.comparison.isin(ANGLE_COMPARISONS)].reset_index(drop=True)


def claim_verdicts(reference, other, single=None, null_draws: int = NULL_DRAWS) -> pd.DataFrame:
    """``[claim, fp32, bf16, fp32 why, bf16 why]``: each :data:`MAIN_ONLY_CLAIMS` claim's verdict
    from the tables of the runs ``reference`` and of ``other`` (built identically; ``single``:
    see :func:`_claim_tables`, for ``reference`` only)."""
    from . import claims
    tables = {"fp32": _claim_tables(reference, single, null_draws),
              "bf16": _claim_tables(other, None, null_draws)}
    rows = []
    for claim in MAIN_ONLY_CLAIMS:
        spec = replace(claims.spec(claim), variants=())
        records = {name: claims.core.evaluate(spec, t[claim]) for name, t in tables.items()}
        rows.append({"claim": claim, "fp32": records["fp32"].verdict,
                     "bf16": records["bf16"].verdict, "fp32 why": records["fp32"].why,
                     "bf16 why": records["bf16"].why})
    return pd.DataFrame(rows)
