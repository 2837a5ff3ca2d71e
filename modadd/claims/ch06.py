"""Chapter 6's claim C9 (paper §4.4, Fig. 6): "a few SAE latents correlate strongly with m /
positions, yet zeroing them barely changes accuracy; largest drop early".

Tables (``load`` or :func:`tables_from_probes`):

- ``drops``: one row per seed × stage × layer × SAE kind (each seed's mean over m), columns
  ``seed, stage, layer, sae, reconstruction cost, drop: zero m / positions, drop: zero label /
  values, drop: zero random`` — the accuracy lost beyond the SAE reconstruction when the chosen
  latents are zeroed (random: each seed's mean over its draws);
- ``association``: the association (|Pearson r|) of the top-ranked m/position latents, one row
  per seed × SAE kind × layer × stage × rank (columns ``seed, sae, layer, stage, rank, value``);
- ``stages``: stage names in time order; ``kind``: the SAE kind judged ("relu", the paper's);
  ``n_latents``: latents zeroed per ablation; ``n_train``: examples the associations are
  measured on (sets the association's sampling-noise level, the null's association).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

from ..report import fmt_ci, interval, number, percent
from ..stats import bounded_mean_ci, one_sided_p
from .core import ClaimSpec, Decision, Evidence, Tables, declared

STRONG = 0.5             # association counted as "strong" (the notebook's `strong`)
SMALL_DROP = 0.05        # accuracy drop counted as "barely changes" (the notebook's `small_drop`)
FEW = 3                  # "a few": at least this many latents must be strong
SELECTION = "m / positions"
DROP = "drop: zero m / positions"
RANDOM = "drop: zero random"
LABEL = "drop: zero label / values"
CONDITIONS = ("reconstruction", "zero m / positions", "zero label / values", "zero random")
DROP_COLUMNS = ("reconstruction cost", DROP, LABEL, RANDOM)
ACC_BOUNDS = (-1.0, 1.0)          # an accuracy difference


def stage_names(steps) -> dict:
    """Step -> stage name ("early", "mid", "late" for up to three stages, else "step N")."""
    steps = list(steps)
    names = (["early", "mid", "late"][-len(steps):] if len(steps) <= 3
             else [f"step {s}" for s in steps])
    return dict(zip(steps, names))


def ablation_drops(table: pd.DataFrame) -> pd.DataFrame:
    """Per seed × stage × layer × SAE kind: the reconstruction's cost against the clean model
    and each ablation's drop beyond the reconstruction, each seed's mean over m (random: mean
    over its draws first). ``table``: the probe table with a ``stage`` column and ``sae`` filled
    ("none" for the model-only rows)."""
    acc = table[table.quantity.str.startswith("accuracy:")].copy()
    acc["condition"] = acc.quantity.str.split(":").str[1]
    acc = acc.groupby(["seed", "step", "stage", "layer", "sae", "condition", "m"],
                      as_index=False, observed=True).value.mean()
    clean = acc[acc.condition == "clean"].drop(columns=["sae", "condition"]).drop_duplicates()
    wide = acc[acc.sae != "none"].pivot_table(index=["seed", "stage", "layer", "sae", "m"],
                                              columns="condition", values="value",
                                              observed=True).reset_index()
    clean_by = clean.set_index(["seed", "stage", "layer", "m"]).value
    wide["reconstruction cost"] = clean_by.reindex(
        pd.MultiIndex.from_frame(wide[["seed", "stage", "layer", "m"]])).to_numpy() \
        - wide["reconstruction"]
    for c in CONDITIONS[1:]:
        wide[f"drop: {c}"] = wide["reconstruction"] - wide[c]
    return wide.groupby(["seed", "stage", "layer", "sae"], as_index=False, observed=True)[
        list(DROP_COLUMNS)].mean()


def tables_from_probes(table: pd.DataFrame, stages, kinds, n_latents: int, n_train: int
                       ) -> Tables:
    """C9's tables from the chapter's probe table (``stage`` column added, ``sae`` filled).
    (An optional ``exclude`` entry, cells ``(layer, stage)``, leaves those cells out of the
    'barely changes' test: the sensitivity alternative.)"""
    assoc = table[table.quantity == f"association:{SELECTION}"]
    assoc = assoc.rename(columns={"draw": "rank"})[["seed", "sae", "layer", "stage", "rank",
                                                      "value"]]
    assoc = assoc.assign(stage=assoc.stage.astype(str)).reset_index(drop=True)
    drops = ablation_drops(table)
    drops = drops.assign(stage=drops.stage.astype(str))
    kind = "relu" if "relu" in kinds else list(kinds)[0]
    return {"drops": drops, "association": assoc, "stages": tuple(stages), "kind": kind,
            "n_latents": int(n_latents), "n_train": int(n_train)}


@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """C9's tables at ``preset`` from the cached probe tables of chapter 6 (the same calls as
    the notebook; nothing trains under ``MODADD_NO_TRAIN=1``); ``given``: chapter 6's registry
    settings to change."""
    from .. import registry
    from .. import sae as S
    if variant is not None:
        raise ValueError(f"variant: C9 has no variants, got {variant!r}")
    chapter = registry.settings("ch06", preset, **given)
    configs = chapter.runs()["full params"]
    steps, layers = registry.probe_points(chapter, configs[0])
    settings = registry.probe_settings(chapter)
    table = pd.concat([S.probe_table(c, steps, layers, settings) for c in configs],
                      ignore_index=True)
    names = stage_names(steps)
    table["stage"] = table.step.map(names)
    table["sae"] = table.sae.fillna("none")
    return tables_from_probes(table, list(names.values()), settings.kinds, settings.n_latents,
                              settings.n_train)


# ----------------------------------------------------------------------------------- measure

def _cells(tables: Tables, kind: Optional[str] = None) -> dict:
    """Per (layer, stage) of SAE ``kind``: the seed values of the m/position latents' drop, the
    random latents' drop, the label/value latents' drop, the third-strongest latent's
    association and the number of latents at association >= STRONG."""
    kind = kind or tables["kind"]
    drops = tables["drops"][tables["drops"].sae == kind]
    assoc = tables["association"][tables["association"].sae == kind]
    out = {}
    for layer in sorted(drops.layer.unique()):
        for stage in tables["stages"]:
            d = drops[(drops.layer == layer) & (drops.stage == stage)].sort_values("seed")
            a = assoc[(assoc.layer == layer) & (assoc.stage == stage)]
            third = a.groupby("seed").value.apply(
                lambda v: np.sort(v.to_numpy())[::-1][FEW - 1] if len(v) >= FEW else 0.0)
            count = a.assign(strong=a.value >= STRONG).groupby("seed").strong.sum()
            out[(int(layer), stage)] = {"drop": d[DROP].to_numpy(float),
                                        "random": d[RANDOM].to_numpy(float),
                                        "label": d[LABEL].to_numpy(float),
                                        "third": third.to_numpy(float),
                                        "count": count.to_numpy(float)}
    return out


def _key(name: str, layer: int, stage: str) -> str:
    return f"{name}|{layer}|{stage}"


def _parse(values) -> tuple[list, list]:
    layers = sorted({int(k.split("|")[1]) for k in values if k.startswith("drop|")})
    stages = []
    for k in values:
        if k.startswith("drop|") and k.split("|")[2] not in stages:
            stages.append(k.split("|")[2])
    return layers, stages


def measure(tables: Tables) -> Evidence:
    """Per probed layer and stage (SAE ``kind``): the m/position latents' accuracy drop beyond
    the reconstruction (mean and 95% CI over seeds, kept in [-1, 1]), the same for as many
    random live latents and for the label/value latents, the seed-mean association of the
    third-strongest m/position latent, and the seed-mean number of latents at association
    >= 0.5 (rule v1's count)."""
    cells = _cells(tables)
    stages = list(tables["stages"])
    layers = sorted({layer for layer, _ in cells})
    ci = {c: bounded_mean_ci(v["drop"], ACC_BOUNDS) for c, v in cells.items()}
    rnd = {c: bounded_mean_ci(v["random"], ACC_BOUNDS) for c, v in cells.items()}
    lab = {c: bounded_mean_ci(v["label"], ACC_BOUNDS) for c, v in cells.items()}
    values: dict = {}
    for (layer, stage), v in cells.items():
        values[_key("drop", layer, stage)] = ci[(layer, stage)][0]
        values[_key("drop_hi", layer, stage)] = ci[(layer, stage)][2]
        values[_key("third", layer, stage)] = float(np.mean(v["third"])) if v["third"].size \
            else math.nan
        values[_key("count", layer, stage)] = float(np.mean(v["count"])) if v["count"].size \
            else math.nan
    for layer, stage in tables.get("exclude", ()):
        values[_key("excluded", layer, stage)] = 1.0
    worst = max(layers, key=lambda l: max(ci[(l, st)][0] for st in stages))
    later = stages[1:] or stages
    best = max(layers, key=lambda l: min(values[_key("third", l, st)] for st in later))
    values["worst_layer"] = float(worst)
    values["best_layer"] = float(best)
    # primary test: "a few latents correlate strongly", the third-strongest latent's
    # association above 0.5 at the best layer (each seed's mean over the later stages)
    third = np.mean([cells[(best, st)]["third"] for st in later], axis=0)
    p = one_sided_p(third - STRONG, "greater")
    top = max(ci.items(), key=lambda kv: kv[1][2])
    row = lambda d, l: ", ".join(f"{st} {number(d[(l, st)][0], 3, signed=True)}"  # noqa: E731
                                 for st in stages)
    controls = {f"{tables['n_latents']} random live latents zeroed (layer {worst})":
                row(rnd, worst),
                f"label/value latents zeroed (layer {worst})": row(lab, worst)}
    for other in sorted(set(tables["drops"].sae) - {tables["kind"]}):
        oc = {c: bounded_mean_ci(v["drop"], ACC_BOUNDS)
              for c, v in _cells(tables, other).items()}
        (ol, ost), o = max(oc.items(), key=lambda kv: kv[1][0])
        controls[f"{other} SAE largest drop"] = (f"{fmt_ci(o, 3, signed=True)} "
                                                 f"(layer {ol}, {ost})")
    return Evidence(
        values=values,
        effect=(f"{tables['kind']} SAE: association of the 3rd-strongest m/position latent "
                f"(layer {best}): "
                + ", ".join(f"{st} {number(values[_key('third', best, st)], 2)}"
                            for st in stages)
                + f"; latents with association ≥ {STRONG:g}: "
                + ", ".join(f"{st} {number(values[_key('count', best, st)], 1)}"
                            for st in stages)
                + f"; accuracy drop when {tables['n_latents']} m/position latents are zeroed "
                  f"(layer {worst}): {row(ci, worst)}"),
        ci="drop " + "; ".join(f"{st} {interval(ci[(worst, st)], 3, signed=True)}"
                               for st in stages)
           + f"; highest upper bound {number(top[1][2], 4)} (layer {top[0][0]}, {top[0][1]})",
        controls=controls, p_value=p,
        notes={"barely-changes part": _part_sensitivity(ci),
               "drops per layer": "; ".join(
                   f"layer {l}, {st}: {fmt_ci(ci[(l, st)], 4, signed=True)}"
                   for l in layers for st in stages),
               "p-value": "one-sided t over seeds: third-strongest m/position latent's "
                          f"association (layer {best}, mean over {', '.join(later)}) > "
                          f"{STRONG:g}"})


def _part_sensitivity(ci: dict) -> str:
    """Where the 'barely changes' part stands against the notebook's bar: which cells reach it,
    and the bar (or the cell left out) at which the part would turn."""
    upper = {c: v[2] for c, v in ci.items() if math.isfinite(v[2])}
    if not upper:
        return "no CI (fewer than two seeds)"
    bad = sorted((c for c in upper if upper[c] >= SMALL_DROP), key=upper.get, reverse=True)
    top = max(upper.values())
    if not bad:
        return (f"holds at small_drop = {SMALL_DROP:g} (highest upper bound {top:.4f}); it "
                f"would fail at a bar ≤ {top:.4f}")
    rest = [u for c, u in upper.items() if c not in bad[:1]]
    text = (f"fails at small_drop = {SMALL_DROP:g} on "
            + ", ".join(f"layer {l} {s} (upper {upper[(l, s)]:.4f})" for l, s in bad)
            + f"; it holds at a bar above {top:.4f}")
    if len(bad) == 1:
        text += (f", or without the layer {bad[0][0]} {bad[0][1]} cell (next highest upper "
                 f"bound {max(rest) if rest else float('nan'):.4f}); under rule v1 that turns "
                 f"the verdict to partly supported, under v2 only if the correlation holds")
    return text


def null_tables(tables: Tables) -> Tables:
    """Random live latents in place of the m/position latents: their ablation drops (the
    'zero random' condition, same seeds, layers and stages) and, for their association, its
    sampling-noise level at ``n_train`` examples (1.96/sqrt(n); the random latents'
    association itself is not in the probe cache)."""
    drops = tables["drops"].copy()
    drops[DROP] = drops[RANDOM]
    noise = 1.96 / math.sqrt(tables["n_train"])
    return {**tables, "drops": drops, "association": tables["association"].assign(value=noise)}


def alternatives(tables: Tables) -> dict:
    """The same rule with the 'barely changes' part judged without the cell (layer × stage)
    whose drop has the highest CI upper bound, and on the other SAE kind(s)."""
    ev = measure(tables)
    layers, stages = _parse(ev.values)
    layer, stage = max(((l, s) for l in layers for s in stages),
                       key=lambda c: ev.values[_key("drop_hi", *c)])
    drops = tables["drops"]
    out = {f"without the layer {layer} {stage} cell (highest drop upper bound)":
           {**tables, "exclude": ((layer, stage),)}}
    for other in sorted(set(drops.sae) - {tables["kind"]}):
        out[f"{other} SAE instead of {tables['kind']}"] = {**tables, "kind": other}
    return out


# ------------------------------------------------------------------------------------ decide

def _parts(ev: Evidence, th) -> dict:
    layers, stages = _parse(ev.values)
    cells = [(l, s) for l in layers for s in stages]
    later = stages[1:] or stages
    hi = {c: ev.values[_key("drop_hi", *c)] for c in cells}
    bad = [c for c in cells if not hi[c] < th["small_drop"]
           and _key("excluded", *c) not in ev.values]
    worst = int(ev["worst_layer"])
    drop = {s: ev.values[_key("drop", worst, s)] for s in stages}
    return {"layers": layers, "stages": stages, "later": later, "hi": hi, "bad": bad,
            "small": not bad, "worst": worst, "drop": drop,
            "early": len(stages) > 1 and all(drop[stages[0]] > drop[s] for s in stages[1:])}


def _small_text(p: dict, th) -> str:
    if p["small"]:
        top = max(p["hi"], key=p["hi"].get)
        return (f"zeroing them costs < {th['small_drop']:g} at every layer and stage (highest "
                f"CI upper bound {p['hi'][top]:.4f}, layer {top[0]} {top[1]})")
    cells = ", ".join(f"layer {l} {s} (upper {p['hi'][(l, s)]:.4f})" for l, s in p["bad"])
    return f"the drop's CI upper bound reaches {th['small_drop']:g} at {cells}"


def _early_text(p: dict) -> str:
    drops = ", ".join(f"{s} {p['drop'][s]:+.3f}" for s in p["stages"])
    return (f"the drop is {'' if p['early'] else 'not '}largest early (layer {p['worst']}: "
            f"{drops})")


def decide_v1(ev: Evidence, th) -> Decision:
    p = _parts(ev, th)
    counts = {l: {s: ev.values[_key("count", l, s)] for s in p["stages"]} for l in p["layers"]}
    correlate = any(all(counts[l][s] >= FEW for s in p["later"]) for l in p["layers"])
    best = max(p["layers"], key=lambda l: min(counts[l][s] for s in p["later"]))
    corr = (f"{'at least' if correlate else 'fewer than'} {FEW} latents reach association "
            f"{STRONG:g} at the {', '.join(p['later'])} stages (best layer {best}: "
            + ", ".join(f"{s} {counts[best][s]:.1f}" for s in p["later"]) + ")")
    why = f"{corr}; {_small_text(p, th)}; {_early_text(p)}"
    if correlate and p["small"] and p["early"]:
        return Decision("supported", why)
    if correlate or p["small"]:
        return Decision("partly supported", why)
    return Decision("not supported", why)


def decide_v2(ev: Evidence, th) -> Decision:
    p = _parts(ev, th)
    third = {l: {s: ev.values[_key("third", l, s)] for s in p["stages"]} for l in p["layers"]}
    best = max(p["layers"], key=lambda l: min(third[l][s] for s in p["later"]))
    correlate = all(third[best][s] >= th["strong"] for s in p["later"])
    corr = (f"the third-strongest m/position latent's association (seed mean, best layer "
            f"{best}) is " + ", ".join(f"{s} {third[best][s]:.3f}" for s in p["later"])
            + f": {'at or above' if correlate else 'below'} {th['strong']:g}")
    why = f"{corr}; {_small_text(p, th)}; {_early_text(p)}"
    if not correlate:
        return Decision("not supported",
                        f"fewer than {FEW} latents correlate strongly ({corr}), so the ablation "
                        f"tests no task latents; for the record: {_small_text(p, th)}; "
                        f"{_early_text(p)}")
    if p["small"] and p["early"]:
        return Decision("supported", why)
    if p["small"] or p["early"]:
        return Decision("partly supported", why)
    return Decision("not supported", why)


RULE_V1 = declared("C9", 1, __name__)

RULE_V2 = declared("C9", 2, __name__)

CLAIMS = (ClaimSpec(
    id="C9", claim="SAE latents correlate with m / positions, but ablating them barely changes "
                   "accuracy; largest drop early",
    source="§4.4, Fig 6", chapter="06",
    tables=("drops", "association", "stages", "kind", "n_latents", "n_train"),
    measure=measure, null_tables=null_tables, rule=RULE_V2, history=(RULE_V1,),
    alternatives=alternatives),)


# ------------------------------------------------------------------------------------- prose
# The chapter's rule list and computed summary: numbers through modadd.report, words that
# depend on a result chosen here (tested in tests/test_claims_ch06.py), none in the notebook.

def rules_markdown(spec) -> str:
    """Every rule version of ``spec`` (oldest first) as a Markdown list, with why it changed."""
    lines = []
    for rule in (*spec.history, spec.rule):
        line = f"- rule v{rule.version} ({rule.date}): {rule.text}"
        if rule.reason:
            line += f" — *changed because* {rule.reason}"
        lines.append(line)
    return "\n".join(lines)


def per_stage(ci: dict, digits: int = 3) -> str:
    """``"early +0.011, mid +0.014"``: the mean of each stage's (mean, low, high), signed."""
    return ", ".join(f"{stage} {number(value[0], digits, signed=True)}"
                     for stage, value in ci.items())


def exceeds_random(drop_ci: dict, random_ci: dict) -> bool:
    """Whether the task latents' drop CI lies above the random latents' at every stage after the
    first (at the only stage if there is one)."""
    stages = list(drop_ci)
    return all(drop_ci[st][1] > random_ci[st][2] for st in stages[1:] or stages)


def summary(record, kind: str, n_latents: int, layer: int, drop_ci: dict, random_ci: dict,
            reconstruction: dict, association: dict, probes: dict) -> str:
    """The chapter's summary as Markdown, from C9's verdict ``record`` and: the SAE ``kind``;
    the ``n_latents`` m/position latents zeroed at ``layer`` (the layer with the largest drop),
    their per-stage accuracy drop beyond the reconstruction (``drop_ci``: stage -> (mean, low,
    high) over seeds) and that of as many random latents (``random_ci``); the reconstruction's
    own cost per stage (``reconstruction``: stage -> mean); the best latent's association
    (``association``: ``"m / positions"`` -> |r|, ``"label / values"`` -> correlation ratio);
    and the final-residual probes (``probes``: ``"m"``/``"label"`` -> (accuracy, majority
    rate))."""
    verb = "exceeds" if exceeds_random(drop_ci, random_ci) else "does not clearly exceed"
    recon = ", ".join(f"{stage} {number(value, 3, signed=True)}"
                      for stage, value in reconstruction.items())
    (m_acc, m_major), (label_acc, label_major) = probes["m"], probes["label"]
    return "\n".join([
        f"- **Associations:** with the {kind} SAE, the best latent reaches |r| ≈ "
        f"{number(association['m / positions'])} with m or a marker position, and a "
        f"correlation ratio ≈ {number(association['label / values'])} with the label or a "
        f"value (mean over seeds, layers and stages).",
        f"- **Ablation through the model:** zeroing the {n_latents} m/position latents at layer "
        f"{layer} lowers accuracy by {per_stage(drop_ci)} beyond the reconstruction (negative: "
        f"raises); random latents by {per_stage(random_ci)}. The task latents' drop {verb} "
        f"the random one (CI).",
        f"- **Reconstruction alone** costs {recon} accuracy.",
        f"- **Verdict (C9):** {record.verdict} — {record.why}.",
        f"- **Probes:** held-out linear probes on the final residual read m at "
        f"{percent(m_acc, 1)} and the label at {percent(label_acc, 1)} (late; majority rates "
        f"{percent(m_major, 1)} and {percent(label_major, 1)})."])
