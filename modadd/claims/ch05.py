"""Chapter 5's claim on SGD commutators (paper §4.3, Figs 3–5):

- **C8** "commutators are large in ambient space but their projection on the execution subspace
  is small (ρ → 0, > 92–95% perpendicular); exec/random ratio 2–10×".

Tables (``load`` / :func:`tables_from_rho`): ``rho`` — :func:`modadd.commutator.rho_table` rows
(``seed, step, pair, vector, basis, k, rho, perp, ratio``; ``ratio`` = ρ / ρ of random k
directions in the same attention blocks, same vector, point and k) for the vectors ``delta,
delta32, g_a, g_b`` at step > 0; ``n_steps``; ``early`` / ``late`` — the phase shares of
training; ``k`` — PCs per attention block of the headline numbers; ``basis`` — the execution
basis judged (``"causal"``); ``n_blocks``, ``P_original`` — for the original's √(K/P) baseline.

Per seed every statistic is the median over its pairs and snapshots in the phase (the seed is the
unit of every interval).
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

from ..report import ci_relation, fmt_ci, interval, number, percent, pvalue
from ..stats import bounded_mean_ci, one_sided_p
from .core import ClaimSpec, Decision, Evidence, Tables, declared, finite

RANDOM = "random (same blocks)"
VECTORS = ("delta", "delta32", "g_a", "g_b")
PHASES = ("early", "late")
POSITIVE = (0.0, math.inf)


# ------------------------------------------------------------------------------------ tables

@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """C8's tables at ``preset`` from the cached commutator tables (computed only on a miss,
    never under ``MODADD_NO_TRAIN=1``); ``given``: chapter 5's registry settings to change."""
    from .. import commutator as CM
    from .. import registry
    if variant is not None:
        raise ValueError(f"variant: C8 has no variants, got {variant!r}")
    s = registry.settings("ch05", preset, **given)
    configs = s.runs()["full params"]
    table = CM.commutator_tables(configs, registry.commutator_settings(s))
    cfg = configs[0]
    n_blocks, p_original = parameter_counts(cfg)
    return tables_from_rho(CM.rho_table(table), cfg.train.n_steps, s.k_main, s.early, s.late,
                           n_blocks, p_original)


def parameter_counts(cfg) -> tuple[int, int]:
    """``(n_blocks, P_original)``: attention matrices with a basis, and the original's P (live
    parameters plus the dead MLP weights its model carried)."""
    from .. import commutator as CM
    from ..model import ModelConfig, Transformer
    model = Transformer.for_task(cfg.model, cfg.task)
    p_live = int(CM.live_mask(model, cfg.task).sum())
    with_mlp = Transformer.for_task(ModelConfig(**{**cfg.model.to_dict(), "attention_only": False}),
                                    cfg.task)
    p_dead = sum(p.numel() for b in with_mlp.blocks for p in b.mlp.parameters())
    return len(CM.block_slices(model)), p_live + p_dead


def tables_from_rho(rho: pd.DataFrame, n_steps: int, k_main: int, early: float, late: float,
                    n_blocks: int, p_original: int, basis: str = "causal") -> Tables:
    """C8's tables from :func:`modadd.commutator.rho_table` (what chapter 5 passes in)."""
    keep = rho[rho.vector.isin(VECTORS) & (rho.step > 0)]
    return {"rho": keep[["seed", "step", "pair", "vector", "basis", "k", "rho", "perp",
                         "ratio"]].reset_index(drop=True),
            "n_steps": int(n_steps), "early": float(early), "late": float(late),
            "k": int(k_main), "basis": basis, "n_blocks": int(n_blocks),
            "P_original": int(p_original)}


def _phased(tables: Tables, vector: str, basis: str) -> pd.DataFrame:
    from ..commutator import phase
    rho = tables["rho"]
    part = rho[(rho.vector == vector) & (rho.basis == basis) & (rho.k == tables["k"])].copy()
    part["phase"] = phase(part.step, tables["n_steps"], tables["early"], tables["late"])
    return part


def seed_medians(frame: pd.DataFrame, column: str, which: str) -> pd.Series:
    """Per seed: the median of ``column`` over its pairs and snapshots in phase ``which``."""
    return frame[frame.phase == which].groupby("seed")[column].median()


def _per_phase(frame: pd.DataFrame, column: str, bounds=POSITIVE) -> dict:
    return {w: bounded_mean_ci(seed_medians(frame, column, w), bounds) for w in PHASES}


# ------------------------------------------------------------------------------------ C8

def measure(tables: Tables) -> Evidence:
    """Fair ratio ρ_exec / ρ_random(same blocks) per phase (per-seed medians, t-CI over seeds,
    kept > 0), ρ of the execution basis and of the random directions, the smallest √(1−ρ²) of
    each, and the controls: δ's enrichment over the gradients', the held-out seed's basis, and the
    original's arithmetic (float32 δ against √(K/P) with the dead MLP weights)."""
    basis = tables.get("basis", "causal")
    exec_ = _phased(tables, "delta", basis)
    rand = _phased(tables, "delta", RANDOM)
    fair = _per_phase(exec_, "ratio")
    rho = _per_phase(exec_, "rho", (0.0, 1.0))
    rho_rand = _per_phase(rand, "rho", (0.0, 1.0))
    perp_min = float(exec_.groupby(["seed", "step"]).perp.median().min())
    perp_rand = float(rand.groupby(["seed", "step"]).perp.median().min())
    # δ's enrichment divided by the gradients' (same pairs)
    grads = pd.concat([_phased(tables, v, basis) for v in ("g_a", "g_b")])
    grad_ratio = grads.groupby(["seed", "step", "pair"]).ratio.mean().rename("grad_ratio")
    spec = exec_.merge(grad_ratio.reset_index(), on=["seed", "step", "pair"])
    spec["specificity"] = spec.ratio / spec.grad_ratio
    specificity = _per_phase(spec, "specificity")
    held = _per_phase(_phased(tables, "delta", "held-out seed"), "ratio")
    d32 = _phased(tables, "delta32", basis)
    d32["original"] = d32.rho / np.sqrt(tables["n_blocks"] * tables["k"] / tables["P_original"])
    original = _per_phase(d32, "original")
    ratio_change = fair["late"][0] / fair["early"][0] if fair["early"][0] else np.nan
    ps = [one_sided_p(seed_medians(exec_, "ratio", w) - 2.0) for w in PHASES]
    p = float(max(ps)) if all(np.isfinite(ps)) else float("nan")
    n_seeds = int(exec_.seed.nunique())
    values = {"perp_min": perp_min, "perp_min_random": perp_rand, "ratio_change": ratio_change,
              "n_seeds": float(n_seeds)}
    for w in PHASES:
        values.update({f"fair_{w}": fair[w][0], f"fair_{w}_low": fair[w][1],
                       f"fair_{w}_high": fair[w][2], f"rho_{w}": rho[w][0],
                       f"rho_{w}_low": rho[w][1], f"rho_{w}_high": rho[w][2],
                       f"rho_random_{w}": rho_rand[w][0]})
    return Evidence(
        values=values,
        effect=f"fair ratio (exec/random, same blocks, k={tables['k']}) early "
               f"{number(fair['early'][0])}×, late {number(fair['late'][0])}× (late/early "
               f"{number(ratio_change)}); ρ early {number(rho['early'][0], 3)}, late "
               f"{number(rho['late'][0], 3)} (random directions {number(rho_rand['early'][0], 3)}, "
               f"{number(rho_rand['late'][0], 3)}); min √(1−ρ²) {number(perp_min, 3)} "
               f"(random directions {number(perp_rand, 4)})",
        ci=f"fair ratio early {interval(fair['early'], bounds=POSITIVE)}, late "
           f"{interval(fair['late'], bounds=POSITIVE)}; ρ early "
           f"{interval(rho['early'], 3, bounds=(0, 1))}, late {interval(rho['late'], 3, bounds=(0, 1))}",
        controls={"random k directions in the same blocks": f"ratio 1 by construction; their ρ "
                  f"early {number(rho_rand['early'][0], 4)}, late {number(rho_rand['late'][0], 4)}; "
                  f"min √(1−ρ²) {number(perp_rand, 4)}",
                  "held-out seed's basis (fair ratio)":
                      f"early {fmt_ci(held['early'], bounds=POSITIVE)}, late "
                      f"{fmt_ci(held['late'], bounds=POSITIVE)}",
                  "δ enrichment / gradient enrichment":
                      f"early {fmt_ci(specificity['early'], bounds=POSITIVE)}, late "
                      f"{fmt_ci(specificity['late'], bounds=POSITIVE)}",
                  "original's arithmetic (float32 δ vs √(K/P), dead weights)":
                      f"early {number(original['early'][0])}×, late {number(original['late'][0])}×"},
        p_value=p,
        notes={"primary test": f"fair ratio > 2 in both phases (intersection-union: the larger "
                               f"one-sided t p over seeds): {pvalue(p)}",
               "unit": f"{n_seeds} seeds; pairs and snapshots of a phase are medianed within "
                       f"each seed first"})


def decide(ev: Evidence, th) -> Decision:
    lows = {w: ev[f"fair_{w}_low"] for w in PHASES}
    enriched = all(finite(v) and v >= th["enrichment"] for v in lows.values())
    above_one = [w for w, v in lows.items() if finite(v) and v > 1]
    change = ev["ratio_change"]
    falling = (finite(change) and change <= th["vanish"]
               and ev["fair_late_high"] < ev["fair_early_low"])
    enrich_words = (f"fair ratio CI lower bounds early {number(lows['early'])}, late "
                    f"{number(lows['late'])} ({'both ≥' if enriched else 'not both ≥'} "
                    f"{th['enrichment']:g})")
    fall_words = (f"the enrichment {'falls' if falling else 'does not fall'} towards random "
                  f"(late/early {number(change)}, {'≤' if falling else 'needs ≤'} {th['vanish']:g} "
                  f"with separated CIs)")
    perp = (f"perpendicularity is not a test (min √(1−ρ²) {number(ev['perp_min'], 3)}, but "
            f"random directions are ≥ "
            f"{number(ev['perp_min_random'], 4)} perpendicular too)")
    if enriched and falling:
        return Decision("supported", f"{enrich_words}; {fall_words}; {perp}")
    if above_one:
        return Decision("partly supported", f"{enrich_words}, above 1 in "
                                            f"{' and '.join(above_one)}; {fall_words}; {perp}")
    return Decision("not supported", f"{enrich_words}, not above 1 in either phase; {perp}")


def measure_v1(tables: Tables) -> Evidence:
    """Version 1's statistics (chapter 5 as of 2026-11-21)."""
    ev = measure(tables)
    v = ev.values
    vanishing = (v["rho_late"] <= 0.5 * v["rho_early"] and v["rho_late_high"] < v["rho_early_low"])
    return Evidence(values={**v, "vanishing_abs": float(vanishing)}, effect=ev.effect, ci=ev.ci,
                    controls=ev.controls, p_value=ev.p_value)


def decide_v1(ev: Evidence, th) -> Decision:
    perp_ok = finite(ev["perp_min"]) and ev["perp_min"] > th["perpendicular"]
    lows = [ev[f"fair_{w}_low"] for w in PHASES]
    enriched = all(finite(v) and v >= th["enrichment"] for v in lows)
    above_one = any(finite(v) and v > 1 for v in lows)
    vanishing = bool(ev["vanishing_abs"])
    verdict = ("supported" if perp_ok and enriched and vanishing else
               "partly supported" if perp_ok and above_one else "not supported")
    return Decision(verdict, f"min √(1−ρ²) {number(ev['perp_min'], 3)} "
                             f"({'>' if perp_ok else '≤'} {th['perpendicular']:g}); fair ratio CI "
                             f"lower bounds {number(lows[0])}, {number(lows[1])} "
                             f"({'both ≥' if enriched else 'not both ≥'} {th['enrichment']:g}); "
                             f"ρ {'vanishing' if vanishing else 'not vanishing'} (late ≤ half "
                             f"early with separated CIs)")


def null_tables(tables: Tables) -> Tables:
    """Random k directions in the same blocks put in place of the execution basis (their ρ, ratio
    1), for every vector and k."""
    rho = tables["rho"]
    basis = tables.get("basis", "causal")
    random = rho[rho.basis == RANDOM].assign(basis=basis, ratio=1.0)
    return {**tables, "rho": pd.concat([rho[rho.basis != basis], random], ignore_index=True)}


def alternatives(tables: Tables) -> dict:
    ks = sorted(set(tables["rho"].k.unique()) - {tables["k"]})
    out = {"final-trajectory basis instead of causal": {**tables, "basis": "final"}}
    out.update({f"k = {k} per block": {**tables, "k": int(k)} for k in ks})
    return out


CLAIMS = (ClaimSpec(
    id="C8", claim="commutators are large in ambient space but their projection on the "
                   "execution subspace is small (ρ → 0, > 92–95% perpendicular); exec/random "
                   "ratio 2–10×",
    source="§4.3, Figs 3–5", chapter="05",
    tables=("rho", "n_steps", "early", "late", "k", "n_blocks", "P_original"),
    measure=measure, null_tables=null_tables, rule=declared("C8", 2, __name__),
    history=(declared("C8", 1, __name__),),
    alternatives=alternatives),)


# ------------------------------------------------------------------------------------- prose
# The chapter's computed summary, from C8's verdict record and the chapter's per-phase numbers:
# numbers through modadd.report, words that depend on a result chosen here (tested in
# tests/test_claims_ch05.py), none in the notebook.

def _triple(values, name: str) -> tuple:
    return (values[name], values[f"{name}_low"], values[f"{name}_high"])


def specificity_word(specificity) -> str:
    """``"more"``/``"less"`` if the commutator's enrichment over the gradients' (per phase, a
    (mean, low, high) ratio) lies above/below 1 in every phase; ``"about as"`` otherwise."""
    words = {ci_relation(specificity[w], 1.0, "more", "less", "about as") for w in PHASES}
    return words.pop() if len(words) == 1 else "about as"


_ENRICHED = {"more": "more enriched than", "less": "less enriched than",
             "about as": "about as enriched as"}


def summary(record, k_main: int, specificity, original, f32_late: float, held, defect,
            hessian) -> str:
    """The chapter's summary as Markdown, from C8's verdict ``record`` (its ``values``: the
    numbers the rule read) and, per phase (``"early"``, ``"late"``: (mean, low, high) over
    seeds): ``specificity`` (the commutator's fair ratio over the gradients'), ``original``
    (the original's float32 ratio against √(K/P) with dead weights), ``held`` (the fair ratio
    in a held-out seed's basis), ``defect`` and ``hessian`` (the two defects); ``f32_late``:
    the float32 form's median relative error late; ``k_main``: directions per block."""
    v = record.values
    fair = {w: _triple(v, f"fair_{w}") for w in PHASES}
    artefact = original["late"][2] < fair["late"][1]
    held_null = all(ci_relation(held[w], 1.0) == "indistinguishable from" for w in PHASES)
    arithmetic = (f"; its late value lies below the fair one because late in training the "
                  f"float32 commutator is mostly rounding noise (median error "
                  f"{number(f32_late, 0)}× its norm)." if artefact else ".")
    other_seed = (", and a basis from another seed gives no enrichment, so the enrichment "
                  "reflects where this run's gradients and weights move." if held_null else ".")
    positive = (0.0, math.inf)
    return "\n".join([
        f"- **Perpendicular, but so is a random direction:** the commutator's norm fraction in "
        f"the execution subspace is ρ = {number(v['rho_early'], 3)} early and "
        f"{number(v['rho_late'], 3)} late (k = {k_main} per block), so at least "
        f"{percent(v['perp_min'], 1)} of its norm is perpendicular; random directions in the "
        f"same blocks give ρ = {number(v['rho_random_early'], 4)} and "
        f"{number(v['rho_random_late'], 4)} ({percent(v['perp_min_random'], 2)} "
        f"perpendicular).",
        f"- **Enrichment, fairly measured:** against random directions in the same attention "
        f"blocks the commutator is {fmt_ci(fair['early'], 1, bounds=positive)}× enriched early "
        f"and {fmt_ci(fair['late'], 1, bounds=positive)}× late (late/early "
        f"{number(v['ratio_change'])}); C8 is **{record.verdict}**.",
        f"- **The original's arithmetic** (float32 difference form, √(K/P) with the dead MLP "
        f"coordinates) gives {number(original['early'][0], 1)}× early and "
        f"{number(original['late'][0], 1)}× late on these runs{arithmetic}",
        f"- **Control:** the commutator is {_ENRICHED[specificity_word(specificity)]} the "
        f"gradients it is built from (ratio of enrichments {number(specificity['early'][0])} "
        f"early, {number(specificity['late'][0])} late){other_seed}",
        f"- **Defect:** the original's normalised defect goes from "
        f"{number(defect['early'][0], 1)} to {number(defect['late'][0], 1)}, the Hessian-scale "
        f"defect from {number(hessian['early'][0], 3, 'g')} to "
        f"{number(hessian['late'][0], 3, 'g')}."])
