"""Does the training budget change chapter 3's numbers? (issue 22's convergence arm)

The book preset trains 6000 steps, and every setting is still rising on its largest m at the end.
The *longer-budget* arm (``presets.longer_budget``: twice the steps, the cosine schedule stretched
over them, snapshots at the same spacing) is compared with the same seeds at the book budget:

- :func:`final_accuracy` — per seed and m, the final held-out accuracy of each arm;
- :func:`budget_records` — claims C1, C2, C4 and C5 (chapter 3's rules and nulls, unchanged) on
  each arm's runs, so a verdict that depends on the budget shows up side by side.

Both arms of the comparison train at the same precision (bf16, validated against fp32 on the
book's main runs: ``book/precision.md``), so the budget is the only difference; the fp32 book runs
are listed beside them for the accuracies.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import pandas as pd

from .config import RunConfig

CLAIMS = ("C1", "C2", "C4", "C5")   # chapter 3's claims that need no single-m runs
LEARNED = 0.95                      # "reaches 95%": the convergence criterion


def final_accuracy(arms: Mapping[str, Sequence[RunConfig]]) -> pd.DataFrame:
    """Per arm, seed and m: the final held-out accuracy (``arm, seed, m, accuracy, steps,
    precision``; ``steps`` the run's last step).  Reads stored runs (trains only on a miss)."""
    from .store import load_or_train_many
    rows = []
    for arm, cfgs in arms.items():
        for cfg, run in zip(cfgs, load_or_train_many(list(cfgs), progress=False)):
            last = int(run.meta.get("last_step", cfg.train.n_steps))
            for m, value in run.meta["final_accuracy"].items():
                rows.append((arm, cfg.seed, int(m), float(value), last, cfg.train.precision))
    return pd.DataFrame(rows, columns=["arm", "seed", "m", "accuracy", "steps", "precision"])


def accuracy_table(acc: pd.DataFrame, threshold: float = LEARNED) -> pd.DataFrame:
    """:func:`final_accuracy` as one row per arm and m: every seed's accuracy, the mean with
    its 95% CI over seeds (kept in [0, 1]), and how many seeds reach ``threshold``."""
    from .report import fmt_ci
    from .stats import bounded_mean_ci
    rows = []
    for (arm, m), part in acc.groupby(["arm", "m"], sort=False):
        part = part.sort_values("seed")
        row = {"arm": arm, "m": int(m)}
        row.update({f"seed {int(s)}": f"{v:.3f}" for s, v in zip(part.seed, part.accuracy)})
        row["mean [95% CI]"] = fmt_ci(bounded_mean_ci(part.accuracy, (0.0, 1.0)), 3,
                                      bounds=(0.0, 1.0))
        row[f"seeds ≥ {threshold:.0%}"] = f"{int((part.accuracy >= threshold).sum())}/{len(part)}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["arm", "m"])


def all_reach(acc: pd.DataFrame, arm: str, m: int, threshold: float = LEARNED) -> bool:
    """Whether every seed of ``arm`` reaches ``threshold`` on ``m``."""
    part = acc[(acc.arm == arm) & (acc.m == m)]
    if part.empty:
        raise ValueError(f"arm, m: no runs of arm {arm!r} at m={m}; arms {sorted(set(acc.arm))}")
    return bool((part.accuracy >= threshold).all())


def budget_tables(cfgs: Sequence[RunConfig], null_draws: int = 20, k_subspace: int = 4):
    """Chapter 3's claim tables (no angles) for one arm's runs, from the same cached analyses
    and with the same null draws as the chapter (:func:`modadd.claims.ch03.tables_from_analyses`)."""
    from . import manifold as MF
    from .claims import ch03
    cfgs = list(cfgs)
    steps = MF.block_grams(cfgs[0])[2]
    dims = MF.dimension_summary(cfgs, null_draws=null_draws)
    lock = MF.lock_in_table(cfgs, null_draws=null_draws)
    return ch03.tables_from_analyses(dims, lock, None, k=min(k_subspace, len(steps) - 2),
                                     dim=cfgs[0].model.d_model ** 2, steps=steps,
                                     schedules={"main": dims})


def budget_records(arms: Mapping[str, Sequence[RunConfig]], null_draws: int = 20,
                   claim_ids: Sequence[str] = CLAIMS) -> dict[str, dict]:
    """arm -> claim id -> verdict record of :data:`CLAIMS` on that arm's runs (chapter 3's
    rules, thresholds and nulls; no schedule variants)."""
    from . import claims
    out = {}
    for arm, cfgs in arms.items():
        tables = budget_tables(cfgs, null_draws)
        out[arm] = {cid: claims.evaluate(cid, tables, arm) for cid in claim_ids}
    return out


def budget_summary(records: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per claim, per arm its verdict and effect, and whether the verdicts agree."""
    arms = list(records)
    rows = []
    for cid in next(iter(records.values())):
        row = {"claim": cid}
        for arm in arms:
            rec = records[arm][cid]
            row[f"{arm}: verdict"] = rec.verdict
            row[f"{arm}: effect"] = rec.effect
        row["same verdict"] = "yes" if len({records[a][cid].verdict for a in arms}) == 1 else "no"
        rows.append(row)
    return pd.DataFrame(rows).set_index("claim")


def changed(records: Mapping[str, Mapping]) -> list[str]:
    """The claims whose verdict differs between the arms."""
    first = next(iter(records.values()))
    return [cid for cid in first
            if len({records[a][cid].verdict for a in records}) > 1]



def summary_text(acc: pd.DataFrame, records: Mapping[str, Mapping], short: str, long: str,
                 m: int, threshold: float = LEARNED) -> str:
    """The convergence arm in words: how many seeds reach ``threshold`` on ``m`` in the
    ``short`` and ``long`` arms (labels of ``acc.arm`` and of ``records``), which verdicts
    change with the budget, and whether the book preset should move to the longer budget (it
    should if the longer budget converges every seed and some verdict depends on the budget;
    if no verdict changes, the shorter budget gives the same verdicts at half the cost)."""
    from .report import number

    def reached(arm):
        part = acc[(acc.arm == arm) & (acc.m == m)]
        return int((part.accuracy >= threshold).sum()), len(part)

    (s_ok, s_n), (l_ok, l_n) = reached(short), reached(long)
    moved = changed(records)
    lines = [f"On m = {m}, {s_ok}/{s_n} seeds reach {threshold:.0%} held-out accuracy at "
             f"{short} and {l_ok}/{l_n} at {long} (lowest seed: "
             f"{number(acc[(acc.arm == short) & (acc.m == m)].accuracy.min(), 3)} and "
             f"{number(acc[(acc.arm == long) & (acc.m == m)].accuracy.min(), 3)})."]
    if moved:
        lines.append("Verdicts that change with the budget: " + "; ".join(
            f"{cid} ({records[short][cid].verdict} → {records[long][cid].verdict}; "
            f"{short}: {records[short][cid].effect}; {long}: {records[long][cid].effect})"
            for cid in moved) + ".")
    else:
        lines.append(f"No verdict of {', '.join(next(iter(records.values())))} changes with "
                     f"the budget (same rules, same nulls).")
    every = all_reach(acc, long, m, threshold)
    if every and moved:
        lines.append("The longer budget converges every seed and the verdicts above depend on "
                     "the budget: by this rule the book preset should move to it, at twice the "
                     "training steps per run.")
    elif every:
        lines.append("The longer budget converges every seed, but no verdict depends on the "
                     "budget: the book preset can stay where it is, at half the training "
                     "cost; only the accuracies themselves would change.")
    else:
        lines.append("Not every seed converges even at the longer budget, so it is no "
                     "convergence point for the book preset either.")
    return " ".join(lines)
