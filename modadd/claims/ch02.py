"""Chapter 2's reproduction check R0: "training converges by about step 5000, with ~100% accuracy"
(paper §4), on the mixed-m runs of a preset.

Tables (``load``): ``accuracy`` — held-out probe accuracy, one row per seed × m × evaluated step
(columns ``seed, m, step, value``); ``n_steps`` — the training budget; ``chance`` — 1/C.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import pandas as pd

from ..report import fmt_ci, interval, number
from ..stats import bounded_mean_ci
from .core import ClaimSpec, Decision, Evidence, Tables, declared

DEADLINE = 5000          # the paper's "by about step 5000"


@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """R0's tables at ``preset`` from the run store (trains only on a miss, never under
    ``MODADD_NO_TRAIN=1``); ``given``: chapter 2's registry settings to change."""
    import modadd
    from .. import registry
    from ..task import chance_accuracy
    if variant is not None:
        raise ValueError(f"variant: R0 has no variants, got {variant!r}")
    s = registry.settings("ch02", preset, **given)
    runs = modadd.load_or_train_many(s.runs()["main"], progress=False)
    return tables_from_runs(runs, chance_accuracy(runs[0].config.task))


def tables_from_runs(runs, chance: float) -> Tables:
    """R0's tables from loaded runs (what chapter 2 passes in)."""
    metrics = pd.concat([r.metrics.assign(seed=r.config.seed) for r in runs], ignore_index=True)
    accuracy = metrics[metrics.metric == "accuracy"][["seed", "m", "step", "value"]]
    return {"accuracy": accuracy.reset_index(drop=True),
            "n_steps": int(runs[0].config.train.n_steps), "chance": float(chance)}


def _at_deadline(tables: Tables) -> pd.DataFrame:
    accuracy = tables["accuracy"]
    deadline = min(DEADLINE, tables["n_steps"])
    step = accuracy.step[accuracy.step <= deadline].max()
    return accuracy[accuracy.step == step]


def measure(tables: Tables) -> Evidence:
    """Per m: mean accuracy at the last evaluation ≤ step 5000, its CI over seeds (kept in
    [0, 1]), and the lowest seed."""
    at = _at_deadline(tables)
    per_m = {m: bounded_mean_ci(part.value, (0.0, 1.0)) for m, part in at.groupby("m")}
    lowest = at.loc[at.value.idxmin()]
    step = int(at.step.iloc[0])
    return Evidence(
        values={"min_accuracy": float(at.value.min()),
                "min_mean_accuracy": float(min(v[0] for v in per_m.values()))},
        effect=f"accuracy at step {step}: "
               + "; ".join(f"m={m}: {number(v[0], 3)}" for m, v in per_m.items())
               + f"; lowest seed {number(lowest.value, 3)} (seed {int(lowest.seed)}, "
                 f"m={int(lowest.m)})",
        ci="; ".join(f"m={m}: {interval(v, 3)}" for m, v in per_m.items()),
        controls={"chance": number(tables["chance"], 3)},
        notes={"per m": "; ".join(f"m={m}: {fmt_ci(v, 3)}" for m, v in per_m.items())})


def null_tables(tables: Tables) -> Tables:
    """The untrained model: every seed's accuracy at its first evaluation, put at the deadline."""
    accuracy = tables["accuracy"]
    first = accuracy[accuracy.step == accuracy.step.min()]
    step = _at_deadline(tables).step.iloc[0]
    return {**tables, "accuracy": first.assign(step=step)}


def decide_v1(ev: Evidence, th) -> Decision:
    if ev["min_accuracy"] >= th["target"]:
        return Decision("supported", f"every seed reaches {th['target']:g} on every m by step "
                                     f"{DEADLINE}")
    return Decision("not supported", f"the lowest seed × m accuracy is "
                                     f"{ev['min_accuracy']:.3f} < {th['target']:g}")


CLAIMS = (ClaimSpec(
    id="R0", claim="training converges by about step 5000 with ~100% accuracy",
    source="§4, text", chapter="02", tables=("accuracy", "n_steps", "chance"),
    measure=measure, null_tables=null_tables,
    rule=declared("R0", 1, __name__)),)
