"""C8 (chapter 5): commutator enrichment in the execution subspace over random directions in the
same blocks, on hand-made ρ tables (no runs, no data/results)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import claims
from modadd.claims import ch05
from claim_checks import assert_mutation_flips, says

N_STEPS = 6000
EARLY_STEPS, LATE_STEPS = (600, 1000), (5000, 6000)
RANDOM_RHO = 0.01


def rho_tables(early, late, seeds=5, pairs=3, k=3, held=1.0, grad=None, ks=(3,)) -> dict:
    """Random directions at ρ = 0.01; the causal (and final) basis at ``ratio × 0.01`` with the
    per-seed ratio ``early[seed]`` / ``late[seed]`` (scalars broadcast); the gradients at
    ``grad`` (default: the same ratio) and the held-out basis at ``held``."""
    early = np.broadcast_to(np.asarray(early, float), (seeds,))
    late = np.broadcast_to(np.asarray(late, float), (seeds,))
    rows = []
    for s in range(seeds):
        for steps, ratio in ((EARLY_STEPS, early[s]), (LATE_STEPS, late[s])):
            for step in steps:
                for pair in range(pairs):
                    for kk in ks:
                        for vector in ch05.VECTORS:
                            r = ratio if vector in ("delta", "delta32") or grad is None else grad
                            for basis, value in (("causal", r), ("final", r),
                                                 ("held-out seed", held), (ch05.RANDOM, 1.0)):
                                rho = RANDOM_RHO * value
                                rows.append((s, step, pair, vector, basis, kk, rho,
                                             math.sqrt(1 - rho ** 2), value))
    frame = pd.DataFrame(rows, columns=["seed", "step", "pair", "vector", "basis", "k", "rho",
                                        "perp", "ratio"])
    return {"rho": frame, "n_steps": N_STEPS, "early": 0.2, "late": 0.2, "k": k,
            "basis": "causal", "n_blocks": 20, "P_original": 1_000_000}


def test_enriched_and_falling_towards_random_is_supported():
    rec = claims.evaluate("C8", rho_tables([8, 8.5, 9, 9.5, 10], [2.5, 2.6, 2.8, 3, 2.7]))
    assert rec.verdict == "supported", rec.why
    assert rec.null_passes is False and rec.null_verdict == "not supported"


def test_the_null_itself_is_not_supported():
    tables = rho_tables(1.0, 1.0)
    assert claims.evaluate("C8", tables).verdict == "not supported"
    null = ch05.null_tables(rho_tables([8, 9, 10, 9, 8], 3.0))
    causal = null["rho"][null["rho"].basis == "causal"]
    assert (causal.ratio == 1).all() and np.allclose(causal.rho, RANDOM_RHO)


def test_perpendicular_but_not_enriched_fails_v2_though_v1_perpendicularity_passes():
    # ρ = 0.011: 99.99% perpendicular like any random direction, enrichment only 1.1×
    rec = claims.evaluate("C8", rho_tables(1.1, 1.1))
    assert rec.verdict == "partly supported"       # CI [1.1, 1.1] excludes 1, but not 2×
    rec = claims.evaluate("C8", rho_tables([0.9, 1.1, 1.0, 1.05, 0.95], [0.9, 1.1, 1.0, 1.05,
                                                                        0.95]))
    assert rec.verdict == "not supported"
    ev = ch05.measure(rho_tables(1.0, 1.0))
    assert ev["perp_min"] > 0.92 and ev["perp_min_random"] > 0.92   # v1's test: passed by null


def test_borderline_enriched_but_not_falling_is_partly_and_vanish_range_flips_it():
    # book-like: 6× early, 4× late (late/early 0.67 > 0.5)
    rec = claims.evaluate("C8", rho_tables([6, 6.2, 6.4, 6.1, 6.3], [4, 4.1, 4.3, 4.2, 4.05]))
    assert rec.verdict == "partly supported"
    assert any(f.startswith("vanish = 0.7 (rule: 0.5) → supported") for f in rec.flips)
    assert rec.previous[0]["version"] == 1 and rec.previous[0]["verdict"] == "partly supported"


def test_enrichment_threshold_mutation_flips():
    # late ratio 2.05 in every seed: just above 2, below the range end 3
    assert_mutation_flips("C8", rho_tables([6, 6.5, 7, 6.2, 6.8], 2.05), ch05.measure,
                          "enrichment = 3 (rule: 2) → partly supported", "enrichment", 2.1)


def test_measure_matches_a_hand_computation():
    early = np.array([6.0, 6.5, 7.0, 6.2, 6.8])
    late = np.array([2.0, 2.5, 3.0, 2.2, 2.4])
    tables = rho_tables(early, late, grad=4.0, held=1.0)
    ev = ch05.measure(tables)
    t = stats.t.ppf(0.975, 4)
    for name, x in (("early", early), ("late", late)):
        half = t * x.std(ddof=1) / math.sqrt(5)
        assert ev[f"fair_{name}"] == pytest.approx(x.mean())
        assert ev[f"fair_{name}_low"] == pytest.approx(x.mean() - half)
        assert ev[f"rho_{name}"] == pytest.approx(RANDOM_RHO * x.mean())
    assert ev["ratio_change"] == pytest.approx(late.mean() / early.mean())
    assert ev["perp_min"] == pytest.approx(min(math.sqrt(1 - (RANDOM_RHO * v) ** 2)
                                               for v in np.r_[early, late]))
    p_late = stats.ttest_1samp(late - 2, 0, alternative="greater").pvalue
    p_early = stats.ttest_1samp(early - 2, 0, alternative="greater").pvalue
    assert ev.p_value == pytest.approx(max(p_late, p_early))
    # δ enrichment / gradient enrichment: early 6.5 / 4
    assert ev.controls["δ enrichment / gradient enrichment"].startswith(
        f"early {early.mean() / 4:.2f}")
    # original's arithmetic: ρ(δ32) / √(K/P), K = 20 × 3, P = 1e6
    assert f"early {RANDOM_RHO * early.mean() / math.sqrt(60 / 1e6):.2f}×" in \
        ev.controls["original's arithmetic (float32 δ vs √(K/P), dead weights)"]


def test_ratio_interval_stays_positive():
    tables = rho_tables([0.1, 0.1, 0.1, 0.1, 5.0], [0.1, 0.1, 0.1, 0.1, 5.0])
    ev = ch05.measure(tables)
    assert ev["fair_early_low"] >= 0
    assert "[0.00," in claims.evaluate("C8", tables).ci


def test_alternatives_cover_other_k_and_the_final_basis():
    tables = rho_tables(6, 2.5, ks=(1, 3, 5))
    names = sorted(ch05.alternatives(tables))
    assert names == ["final-trajectory basis instead of causal", "k = 1 per block",
                     "k = 5 per block"]


# -------------------------------------------------------------------------------------- prose

def verdict_record(verdict: str, values: dict):
    from modadd.claims.core import VerdictRecord
    return VerdictRecord(id="C8", claim="", source="", chapter="05", verdict=verdict, why="",
                         effect="", ci="", controls={}, p_value=float("nan"), null_passes=False,
                         null_verdict="not supported", null_why="", flips=[], rule_version=2,
                         rule_text="", unit="seed", values=values)


C8_VALUES = {"rho_early": 0.06512, "rho_late": 0.05431, "perp_min": 0.99712,
             "rho_random_early": 0.008912, "rho_random_late": 0.012934,
             "perp_min_random": 0.99991, "ratio_change": 0.6631,
             "fair_early": 6.3, "fair_early_low": 5.8, "fair_early_high": 6.8,
             "fair_late": 4.2, "fair_late_low": 3.8, "fair_late_high": 4.5}


def prose(specificity, held, original_late=(2.0, 1.5, 2.5), verdict="partly supported"):
    phase = {"early": (5.1, 4.0, 6.0), "late": (6.2, 5.0, 7.0)}
    return ch05.summary(verdict_record(verdict, C8_VALUES), 3, specificity,
                        {"early": (5.5, 5.0, 6.0), "late": original_late}, 26.1, held, phase,
                        {"early": (0.08791, 0.05, 0.1), "late": (0.007213, 0.005, 0.009)})


def test_summary_less_enriched_than_the_gradients_and_no_held_out_enrichment():
    text = prose({"early": (0.81, 0.7, 0.9), "late": (0.93, 0.88, 0.98)},
                 {"early": (1.02, 0.8, 1.2), "late": (0.99, 0.9, 1.1)})
    says(text, "the commutator is less enriched than the gradients",
               "ratio of enrichments 0.81 early, 0.93 late",
               "a basis from another seed gives no enrichment")
    assert "mostly rounding noise (median error 26× its norm)" in text      # 2.5 < 3.8


def test_summary_mixed_specificity_enriched_held_out_and_no_artefact():
    text = prose({"early": (1.3, 1.1, 1.5), "late": (0.93, 0.88, 0.98)},
                 {"early": (3.0, 2.0, 4.0), "late": (0.99, 0.9, 1.1)},
                 original_late=(4.0, 3.9, 4.1))
    assert "the commutator is about as enriched as the gradients" in text
    assert "another seed" not in text
    assert "rounding noise" not in text and "4.0× late on these runs." in text


def test_summary_numbers_come_from_the_inputs():
    text = prose({"early": (1.3, 1.1, 1.5), "late": (1.2, 1.1, 1.3)},
                 {"early": (1.02, 0.8, 1.2), "late": (0.99, 0.9, 1.1)})
    assert "more enriched than the gradients" in text
    assert "ρ = 0.065 early and 0.054 late (k = 3 per block)" in text
    assert "at least 99.7% of its norm" in text and "(99.99% perpendicular)" in text
    says(text, "ρ = 0.0089 and 0.0129",
               "6.3 [5.8, 6.8]× enriched early and 4.2 [3.8, 4.5]× late (late/early 0.66)",
               "C8 is **partly supported**", "gives 5.5× early and 2.0× late",
               "goes from 5.1 to 6.2, the Hessian-scale defect from 0.0879 to 0.00721")


def test_specificity_word():
    assert ch05.specificity_word({"early": (2, 1.5, 2.5), "late": (3, 2, 4)}) == "more"
    assert ch05.specificity_word({"early": (0.5, 0.4, 0.6), "late": (0.8, 0.7, 0.9)}) == "less"
    assert ch05.specificity_word({"early": (2, 1.5, 2.5), "late": (0.8, 0.7, 0.9)}) == "about as"
    assert ch05.specificity_word({"early": (1, 0.5, 1.5), "late": (1, 0.5, 1.5)}) == "about as"
