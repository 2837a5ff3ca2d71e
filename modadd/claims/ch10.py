"""Chapter 10's claim C15: "grokking can be detected early (before test accuracy jumps) from
training signals" (the grokking-analysis framework), on the detection grid (weight decay ×
training fraction × seeds).

Tables (``load`` / :func:`tables_from_series`):

- ``fires`` — one row per detector × run the detector can score (columns ``detector, signal,
  run, fire``): the step of the detector's first firing over the whole run (NaN: never).  A
  firing counts for a grokking run only if it comes before the grokking step, so any labelling
  of the runs can be scored from it;
- ``runs`` — one row per run (``run, weight_decay, fraction, seed, truth``): ``truth`` is the
  grokking step (first evaluation with held-out accuracy ≥ 99%; NaN: never groks).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd
from scipy import stats

from ..report import interval, number, pvalue
from ..stats import wilson_ci
from .core import ClaimSpec, Decision, Evidence, Tables, declared, finite

YARDSTICK = "held-out accuracy ≥ 0.5"      # not a predictor: how long the jump itself takes
SELECT_PARITY = 0                          # v2: even seeds select the detector, odd evaluate
NULL_SEED = 20261201                       # the fixed draw of the label permutation


@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """C15's tables at ``preset`` from the run store (the registry names the grid's grokking
    preset: "detect" at the book scale); ``given``: chapter 10's registry settings to change."""
    import modadd
    from .. import detect as DT
    from .. import registry
    if variant is not None:
        raise ValueError(f"variant: C15 has no variants, got {variant!r}")
    grid = registry.settings("ch10", preset, **given).runs()["detection"]
    runs = modadd.load_or_train_many(grid, progress=False)
    series = {r.key: DT.Series.from_run(r) for r in runs}
    return tables_from_series(runs, series)


def tables_from_series(runs, series: dict, detectors=None) -> Tables:
    """C15's tables from the grid runs and their detector series (``DT.Series.from_run``),
    as chapter 10 has them."""
    from .. import detect as DT
    detectors = DT.DETECTORS if detectors is None else detectors
    fires = []
    for det in detectors:
        for run in runs:
            s = series[run.key]
            if det.usable(s):
                fire = DT.first_fire(det.score(s), s.steps, det.threshold)
                fires.append({"detector": det.name, "signal": det.signal, "run": run.key,
                              "fire": np.nan if fire is None else float(fire)})
    table = pd.DataFrame([{"run": r.key, "weight_decay": r.config.train.weight_decay,
                           "fraction": r.config.task.train_fraction, "seed": r.config.seed,
                           "truth": np.nan if DT.grok_step(series[r.key]) is None
                           else float(DT.grok_step(series[r.key]))} for r in runs])
    return {"fires": pd.DataFrame(fires, columns=["detector", "signal", "run", "fire"]),
            "runs": table}


def outcomes(tables: Tables) -> pd.DataFrame:
    """Per detector × run: ``kind`` (TP: fired before the grokking step; miss; FP: fired in a
    run that never groks; TN) and ``lead`` (grokking step − firing step of a TP)."""
    f = tables["fires"].merge(tables["runs"], on="run", how="inner")
    grok = f.truth.notna()
    fired = f.fire.notna()
    early = grok & fired & (f.fire < f.truth)
    kind = np.select([early, grok, fired], ["TP", "miss", "FP"], "TN")
    return f.assign(kind=kind, lead=np.where(early, f.truth - f.fire, np.nan))


def _counts(part: pd.DataFrame) -> dict:
    c = part.kind.value_counts()
    tp, fp, miss, tn = (int(c.get(k, 0)) for k in ("TP", "FP", "miss", "TN"))
    decayed = part[part.weight_decay > 0]
    dc = decayed.kind.value_counts()
    fp_wd, tn_wd = int(dc.get("FP", 0)), int(dc.get("TN", 0))
    leads = part.lead.dropna().to_numpy(float)
    return {"TP": tp, "FP": fp, "miss": miss, "TN": tn, "FP_wd": fp_wd, "TN_wd": tn_wd,
            "precision": wilson_ci(tp, tp + fp), "recall": wilson_ci(tp, tp + miss),
            "fpr_wd": wilson_ci(fp_wd, fp_wd + tn_wd),
            "lead": float(np.median(leads)) if leads.size else np.nan}


def _per_detector(out: pd.DataFrame) -> dict:
    return {name: {**_counts(part), "signal": part.signal.iloc[0]}
            for name, part in out.groupby("detector", sort=False)}


def _rate(ci) -> str:
    return f"{number(ci[0])} {interval(ci) or ''}".strip() if finite(ci[0]) else "—"


# ------------------------------------------------------------------------------------ rule v1

def measure_v1(tables: Tables) -> Evidence:
    """v1: every detector over all runs (precision, recall with Wilson intervals over runs,
    median lead, false-positive rate among the weight-decayed runs); the best one picked after
    the fact."""
    stats_ = _per_detector(outcomes(tables))
    values = {}
    for name, s in stats_.items():
        values.update({f"{name}|precision_low": s["precision"][1],
                       f"{name}|recall_low": s["recall"][1], f"{name}|recall": s["recall"][0],
                       f"{name}|lead": s["lead"], f"{name}|fpr_wd": s["fpr_wd"][0],
                       f"{name}|training": float(s["signal"] == "training")})
    best = _best_v1(values, {"precision_low": 0.5, "recall_low": 0.5, "max_fpr": 0.5})
    b = stats_[best]
    s002 = next((s for n, s in stats_.items() if n.startswith("seed 002")), None)
    runs = tables["runs"]
    return Evidence(
        values=values,
        effect=f"best: {best} ({b['signal']}), precision {number(b['precision'][0])}, recall "
               f"{number(b['recall'][0])}, median lead {number(b['lead'], 0)} steps"
               + (f"; seed 002's score: precision {number(s002['precision'][0])}, recall "
                  f"{number(s002['recall'][0])}" if s002 else ""),
        ci=f"precision {interval(b['precision']) or '—'}, recall "
           f"{interval(b['recall']) or '—'} (Wilson, over runs)",
        controls={"runs that never grok": str(int(runs.truth.isna().sum())),
                  "false-positive rate among weight-decayed runs (best)": _rate(b["fpr_wd"])})


def _good_v1(values, name, th) -> bool:
    return bool(values[f"{name}|precision_low"] >= th["precision_low"]
                and values[f"{name}|recall_low"] >= th["recall_low"]
                and values[f"{name}|lead"] > 0)


def _names(values) -> list[str]:
    return list(dict.fromkeys(k.split("|")[0] for k in values if "|" in k))


def _groups_v1(values, th):
    names = _names(values)
    ok = [n for n in names if _good_v1(values, n, th)]
    training = [n for n in ok if values[f"{n}|training"] == 1.0]
    specific = [n for n in training if finite(values[f"{n}|fpr_wd"])
                and values[f"{n}|fpr_wd"] < th["max_fpr"]]
    return names, ok, training, specific


def _best_v1(values, th) -> str:
    names, ok, training, specific = _groups_v1(values, th)
    pool = specific or training or ok or names
    return sorted(pool, key=lambda n: -np.nan_to_num(values[f"{n}|recall"], nan=-1.0))[0]


def decide_v1(ev: Evidence, th) -> Decision:
    names, ok, training, specific = _groups_v1(ev.values, th)
    need = (f"Wilson lower bounds of precision ≥ {th['precision_low']:g} and recall ≥ "
            f"{th['recall_low']:g}, positive median lead")
    if specific:
        return Decision("supported", f"{specific[0]} reads only the training side, has {need}, "
                                     f"and fires in a share "
                                     f"{ev[specific[0] + '|fpr_wd']:.2f} < {th['max_fpr']:g} of "
                                     "the weight-decayed runs that never grok")
    if ok:
        b = _best_v1(ev.values, th)
        return Decision("partly supported", f"{', '.join(ok)} pass(es) ({need}), but "
                        + (f"the training-side detector fires in a share "
                           f"{ev[b + '|fpr_wd']:.2f} ≥ {th['max_fpr']:g} of the weight-decayed "
                           "runs that never grok" if training else
                           "only detectors that read the held-out split pass"))
    return Decision("not supported", f"no detector has {need}")


# ------------------------------------------------------------------------------------ rule v2

def split(runs: pd.DataFrame, parity: int = SELECT_PARITY) -> tuple[set, set]:
    """(selection runs, evaluation runs): seeds of parity ``parity`` select, the others
    evaluate; every (weight decay, fraction) cell has seeds of both parities, so both halves
    are balanced over settings."""
    select = runs.seed.to_numpy() % 2 == parity
    return set(runs.run[select]), set(runs.run[~select])


def _select(out: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The detector with the largest Youden index within weight decay (recall − false-positive
    rate among the weight-decayed runs that never grok) on the selection runs; ties: training
    signal, longer median lead, then the detectors' order."""
    rows = []
    for i, (name, s) in enumerate(_per_detector(out[out.detector != YARDSTICK]).items()):
        recall = s["recall"][0]
        fpr = s["fpr_wd"][0] if finite(s["fpr_wd"][0]) else 0.0
        rows.append({"detector": name, "signal": s["signal"], "recall": recall,
                     "fpr_wd": s["fpr_wd"][0],
                     "J": np.nan_to_num(recall, nan=0.0) - fpr, "lead": s["lead"], "order": i})
    table = pd.DataFrame(rows)
    ranked = table.assign(training=table.signal == "training",
                          lead_key=table.lead.fillna(-np.inf)) \
        .sort_values(["J", "training", "lead_key", "order"],
                     ascending=[False, False, False, True], kind="stable")
    return ranked.detector.iloc[0], table


def measure_v2(tables: Tables, parity: int = SELECT_PARITY) -> Evidence:
    """v2: the detector is chosen on one half of the runs (seed parity) by its Youden index
    within weight decay, then scored on the other half: recall (Wilson over runs), median lead,
    false-positive rate among the weight-decayed runs that never grok (Wilson), and the
    one-sided Fisher test that it fires more often in grokking runs (before grokking) than in
    weight-decayed runs that never grok."""
    out = outcomes(tables)
    selection, evaluation = split(tables["runs"], parity)
    chosen, ranking = _select(out[out.run.isin(selection)])
    part = out[out.run.isin(evaluation) & (out.detector == chosen)]
    s = _counts(part)
    n_neg = s["FP_wd"] + s["TN_wd"]
    p = float(stats.fisher_exact([[s["TP"], s["miss"]], [s["FP_wd"], s["TN_wd"]]],
                                 alternative="greater")[1]) \
        if s["TP"] + s["miss"] and n_neg else np.nan
    signal = part.signal.iloc[0] if len(part) else "held-out"
    sel = ranking.set_index("detector").loc[chosen]
    return Evidence(
        values={"recall": s["recall"][0], "recall_low": s["recall"][1], "lead": s["lead"],
                "fpr_wd": s["fpr_wd"][0], "fpr_wd_high": s["fpr_wd"][2],
                "n_pos": float(s["TP"] + s["miss"]), "n_neg_wd": float(n_neg),
                "fp_wd": float(s["FP_wd"]), "training": float(signal == "training")},
        effect=f"chosen on {'even' if parity == 0 else 'odd'} seeds: {chosen} ({signal}); on "
               f"the {'odd' if parity == 0 else 'even'} seeds recall {number(s['recall'][0])} "
               f"({s['TP']}/{s['TP'] + s['miss']}), median lead {number(s['lead'], 0)} steps, "
               f"fires in {s['FP_wd']}/{n_neg} weight-decayed runs that never grok",
        ci=f"recall {interval(s['recall']) or '—'}, false-positive rate within weight decay "
           f"{interval(s['fpr_wd']) or '—'} (Wilson, over the evaluation runs)",
        controls={"weight-decayed runs that never grok (evaluation half)":
                      f"{s['FP_wd']}/{n_neg} fired",
                  "precision (evaluation half, all runs)": _rate(s["precision"]),
                  "Fisher test, grokking vs never-grokking weight-decayed runs": pvalue(p),
                  "selection half: recall / within-wd FPR of the chosen detector":
                      f"{number(sel.recall)} / {number(sel.fpr_wd)}"},
        p_value=p,
        notes={"selection (Youden within weight decay, selection half)": "; ".join(
            f"{r.detector}: {number(r.J)}" for r in ranking.itertuples())})


def decide_v2(ev: Evidence, th) -> Decision:
    if not ev["n_pos"] or not ev["n_neg_wd"]:
        return Decision("not testable", f"the evaluation half has {int(ev['n_pos'])} grokking "
                                        f"runs and {int(ev['n_neg_wd'])} weight-decayed runs that "
                                        "never grok: no within-weight-decay control")
    detects = bool(finite(ev["recall_low"]) and ev["recall_low"] >= th["recall_low"]
                   and ev["lead"] > 0)
    if not detects:
        return Decision("not supported", f"on the evaluation half the chosen detector's recall "
                                         f"has Wilson lower bound {ev['recall_low']:.2f} (needs "
                                         f"≥ {th['recall_low']:g}) with median lead "
                                         f"{ev['lead']:.0f} steps (needs > 0)")
    fires = (f"it fires in {int(ev['fp_wd'])} of {int(ev['n_neg_wd'])} weight-decayed runs "
             f"that never grok (rate {ev['fpr_wd']:.2f}, Wilson upper {ev['fpr_wd_high']:.2f})")
    if ev["fpr_wd"] >= th["max_fpr"]:
        return Decision("not supported", f"it detects grokking runs early (recall Wilson low "
                                         f"{ev['recall_low']:.2f}), but {fires} ≥ "
                                         f"{th['max_fpr']:g}: it recognises weight decay, not "
                                         "the coming transition")
    if ev["fpr_wd_high"] >= th["max_fpr"]:
        floor = wilson_ci(0, int(ev["n_neg_wd"]))[2]
        if floor >= th["max_fpr"]:
            return Decision("not testable", f"{fires}; with {int(ev['n_neg_wd'])} such runs even "
                                            f"no false positive leaves the Wilson upper bound "
                                            f"at {floor:.2f} ≥ {th['max_fpr']:g}: specificity "
                                            "cannot be shown at this resolution")
        return Decision("partly supported", f"early detection (recall Wilson low "
                                            f"{ev['recall_low']:.2f}) and {fires}: specific at "
                                            f"the point estimate, not with confidence (upper "
                                            f"bound ≥ {th['max_fpr']:g})")
    if ev["training"] == 1.0:
        return Decision("supported", f"a training-side detector detects early on the "
                                     f"evaluation half (recall Wilson low "
                                     f"{ev['recall_low']:.2f}, median lead {ev['lead']:.0f} "
                                     f"steps) and {fires} < {th['max_fpr']:g}")
    return Decision("partly supported", f"early and specific ({fires}), but the chosen detector "
                                        "reads the held-out split, not only training signals")


def null_tables(tables: Tables) -> Tables:
    """The grokking labels (grokking step or never) permuted among the weight-decayed runs (a
    fixed draw; runs without weight decay keep theirs): the detectors' firings stay, their
    relation to grokking within weight decay is broken."""
    runs = tables["runs"].reset_index(drop=True).copy()
    decayed = runs.index[runs.weight_decay > 0].to_numpy()
    rng = np.random.default_rng(NULL_SEED)
    runs.loc[decayed, "truth"] = rng.permutation(runs.truth.to_numpy()[decayed])
    return {**tables, "runs": runs}


def alternatives(tables: Tables) -> dict:
    """The other half selects: odd seeds choose the detector, even seeds evaluate it."""
    runs = tables["runs"]
    return {"odd seeds select, even seeds evaluate": {**tables, "runs": runs.assign(
        seed=runs.seed + 1)}}


RULE_V1 = declared("C15", 1, __name__)
RULE_V2 = declared("C15", 2, __name__)

CLAIMS = (ClaimSpec(
    id="C15", claim="grokking can be detected early (before test accuracy jumps) from training "
                    "signals",
    source="the grokking-analysis framework", chapter="10", tables=("fires", "runs"),
    measure=measure_v2, null_tables=null_tables, rule=RULE_V2, history=(RULE_V1,),
    alternatives=alternatives),)


# ---- prose

def _sentence(text: str) -> str:
    """``text`` with its first letter capitalised (a clause used as a sentence)."""
    return text[:1].upper() + text[1:]


def _clause(text: str) -> str:
    """``text`` with its first letter in lower case (a sentence used as a clause)."""
    return text[:1].lower() + text[1:]


def summary(record, evidence_v1: Evidence, comparison: pd.DataFrame,
            within_decay: pd.DataFrame, grad: pd.DataFrame, n_runs: int, n_pos: int) -> str:
    """Chapter 10's "where we agree and disagree with the grokking-analysis framework" list
    (Markdown) from the C15 record, rule v1's evidence (``measure_v1``: which detector it would
    pick), the detector ``comparison`` table (detector, signal, ``"TP / FP / miss / TN"``,
    precision, recall, ``"median lead (steps)"``, ``"lead / grok step"``; the framework's own
    detector named ``detect.FRAMEWORK_SCORE``), the ``within_decay`` table (detector,
    ``"false-positive rate"`` among the weight-decayed runs), the showcase's gradient norms
    ``grad`` (group, value) and the grid's ``n_runs`` runs of which ``n_pos`` grok."""
    best_name = _best_v1(evidence_v1.values, RULE_V1.thresholds)
    v1_null_passes = any(p["version"] == RULE_V1.version and p["null_passes"]
                         for p in record.previous)
    best = comparison[comparison.detector == best_name].iloc[0]
    best_wd = within_decay[within_decay.detector == best_name].iloc[0]
    s002 = comparison[comparison.detector.str.startswith("framework")].iloc[0]
    attention = grad[grad.group == "attention"].value
    jump = comparison.loc[comparison.detector.str.startswith("held-out accuracy"),
                          "median lead (steps)"].iloc[0]
    return "\n".join([
        "- **Gradient flow.** Read before the optimizer step, the gradients are not empty: the "
        "showcase's attention-block gradient norm spans "
        f"{number(attention.min(), 2, 'g')}–{number(attention.max(), 2, 'g')} over training.",
        f"- **The framework's early-grokking score** fires in "
        f"{s002['TP / FP / miss / TN'].split(' / ')[1]} of the {n_runs - n_pos} runs that never "
        f"grok (precision {s002['precision']}, recall {s002['recall']}).",
        f"- **C15 ({record.verdict}).** Picked after the fact over all runs (rule v1), the best "
        f"detector is {best.detector} ({best.signal} signal) with precision {best['precision']}, "
        f"recall {best['recall']} and median lead {best['median lead (steps)']} steps (a share "
        f"{best['lead / grok step']} of the grokking step); but among the weight-decayed runs "
        f"that do not grok it fires in a share {best_wd['false-positive rate']}, and v1's own "
        f"null {'passes' if v1_null_passes else 'does not pass'} it. Under rule v2 the detector is {_clause(record.effect)}. "
        f"{_sentence(record.why)}.",
        f"- **The jump is gradual here**: held-out accuracy passes 0.5 a median {jump} steps "
        "before 0.99, so 'before the jump' and 'before 99%' differ.",
    ])
