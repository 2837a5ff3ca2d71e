"""C10–C12 (chapter 7): MLPs and the collapse, curriculum forgetting, the from-scratch barrier
-- on hand-made tables."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import claims
from modadd.claims import ch07
from claim_checks import says

SEEDS = np.arange(5)
OFFSETS = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
HALF = stats.t.ppf(0.975, 4) * OFFSETS.std(ddof=1) / np.sqrt(5)
M_VALUES = (1, 2, 3, 4)
ONLY = ch07.only_arm(4)


# ------------------------------------------------------------------------------------- C10

def c10_tables(attn_up=0.0, closer=0.0, mlp_r90=2.6, gap=0.0, spread=0.01):
    plain = 4.0 + np.array([0, 0, 0, -1, 0])
    null_plain = np.full(5, 5.0)
    attn_mlp = plain + attn_up + spread * OFFSETS
    null_mlp = attn_mlp - (plain - null_plain) - closer        # distance below null: + closer
    acc_plain = np.full(5, 0.95)
    pairs = pd.DataFrame({"seed": SEEDS, "attn_mlp": attn_mlp, "attn_plain": plain,
                          "null_mlp": null_mlp, "null_plain": null_plain,
                          "mlp_r90": mlp_r90 + 0.1 * OFFSETS, "attn_type_plain": 3.7 + 0 * SEEDS,
                          "acc_mlp": acc_plain + gap + spread * OFFSETS, "acc_plain": acc_plain,
                          "acc_mlp_m": acc_plain + gap, "acc_plain_m": acc_plain})
    return {"mlp_pairs": pairs, "largest": 4}


def test_c10_higher_rank_and_lower_accuracy_is_supported():
    rec = claims.evaluate("C10", c10_tables(attn_up=1.0, gap=-0.1))
    assert rec.verdict == "supported", rec.why
    assert rec.null_passes is False and rec.null_verdict == "not supported"


def test_c10_the_null_itself_is_not_supported():
    tables = c10_tables(attn_up=1.0, gap=-0.1)
    assert claims.evaluate("C10", ch07.null_c10(tables)).verdict == "not supported"
    assert claims.evaluate("C10", c10_tables()).verdict == "not supported"


def test_c10_borderline_mlp_band_is_partly_and_flips():
    # only the MLP weights' r90 (4.6 > 4.5) holds: partly; the band's upper end 5.0 flips it
    rec = claims.evaluate("C10", c10_tables(mlp_r90=4.6))
    assert rec.verdict == "partly supported"
    assert rec.flips == ["mlp_band = 5 (rule: 4.5) → not supported"]
    assert ch07.decide_c10_v1(ch07.measure_c10(c10_tables(mlp_r90=4.6)),
                              {"mlp_band": 4.7}).verdict == "not supported"


def test_c10_measure_by_hand():
    tables = c10_tables(attn_up=0.5, closer=0.3, gap=-0.02, spread=0.01)
    ev = ch07.measure_c10(tables)
    assert ev["attn_lo"] == pytest.approx(0.5 - 0.01 * HALF)
    assert ev["closer_lo"] == pytest.approx(0.3)                       # no spread
    assert ev["mlp_r90"] == pytest.approx(2.6)
    assert ev["gap"] == pytest.approx(-0.02)
    assert ev["gap_hi"] == pytest.approx(-0.02 + 0.01 * HALF)
    p_acc = stats.ttest_1samp(-0.02 + 0.01 * OFFSETS, 0.0, alternative="less").pvalue
    assert ev.p_value == pytest.approx(max(0.0, p_acc))   # collapse p: 2 × 0 (no variance)


def test_c10_accuracy_difference_interval_is_bounded():
    tables = c10_tables(gap=-0.94, spread=0.02)           # acc_mlp near 0: gap near -0.95
    tables["mlp_pairs"]["acc_mlp"] = np.array([0.0, 0.0, 0.0, 0.0, 0.05])
    tables["mlp_pairs"]["acc_plain"] = np.array([1.0, 1.0, 1.0, 1.0, 0.0])
    ev = ch07.measure_c10(tables)
    low = float(ev.ci.split("[")[1].split(",")[0])
    assert low >= -1.0


# ------------------------------------------------------------------------------------- C11

def c11_tables(cur_forget=0.8, spread=0.03, mixed_forget=0.0, mixed_final=1.0):
    rows, final = [], []
    for arm in (ch07.MIXED, ch07.CURRICULUM, ch07.NO_RESET):
        for seed, off in zip(SEEDS, OFFSETS):
            for m in M_VALUES:
                f = (mixed_forget if arm == ch07.MIXED else
                     (cur_forget + spread * off if m == 1 else 0.5))
                value = mixed_final if arm == ch07.MIXED else 0.3
                rows.append((arm, seed, m, value + f, value, f))
                final.append((arm, seed, m, value))
    overlaps = pd.DataFrame(
        [(f"{ch07.MIXED} vs {ch07.CURRICULUM}", f"a{s}", f"b{s}", 0.03) for s in SEEDS]
        + [(f"seeds: {ch07.MIXED}", f"a{s}", f"a{s + 1}", 2.5e-4) for s in SEEDS],
        columns=["comparison", "a", "b", "mean_cos2"])
    return {"forgetting": pd.DataFrame(rows, columns=["arm", "seed", "m", "peak", "final",
                                                      "forgetting"]),
            "final": pd.DataFrame(final, columns=["arm", "seed", "m", "value"]),
            "overlaps": overlaps, "random_overlap": 2.44e-4, "smallest": 1}


def test_c11_strong_forgetting_mixed_keeps_all_is_supported():
    rec = claims.evaluate("C11", c11_tables())
    assert rec.verdict == "supported", rec.why
    assert rec.null_passes is False and rec.flips == []


def test_c11_the_null_itself_is_not_supported():
    rec = claims.evaluate("C11", ch07.null_c11(c11_tables()))
    assert rec.verdict == "not supported"
    assert claims.evaluate("C11", c11_tables(cur_forget=0.0, spread=0.0)).verdict \
        == "not supported"


def test_c11_borderline_forgetting_flips_with_the_bar():
    # CI lower bound just above 0.1: supported; at the range's end 0.2: partly
    rec = claims.evaluate("C11", c11_tables(cur_forget=0.101 + 0.03 * HALF))
    assert rec.verdict == "supported"
    assert rec.flips == ["forget = 0.2 (rule: 0.1) → partly supported"]


def test_c11_mixed_not_learning_every_m_is_partly():
    rec = claims.evaluate("C11", c11_tables(mixed_final=0.85))
    assert rec.verdict == "partly supported"
    assert "learned = 0.8 (rule: 0.9) → supported" in rec.flips


def test_c11_measure_by_hand():
    ev = ch07.measure_c11(c11_tables(cur_forget=0.5, spread=0.05, mixed_forget=0.01))
    assert ev["f1"] == pytest.approx(0.5)
    assert ev["f1_lo"] == pytest.approx(0.5 - 0.05 * HALF)
    assert ev["mixed_max"] == pytest.approx(0.01)
    expected = stats.ttest_1samp(0.49 + 0.05 * OFFSETS, 0.0, alternative="greater").pvalue
    assert ev.p_value == pytest.approx(expected)


def test_c11_forgetting_interval_stays_in_zero_one():
    ev = ch07.measure_c11(c11_tables(cur_forget=0.02, spread=0.05))
    assert float(ev.ci.strip("[]").split(",")[0]) >= 0.0


# ------------------------------------------------------------------------------------- C12

def c12_tables(only=0.12, mixed=0.99, cur=0.95, spread=0.0):
    rows = []
    for arm, value in ((ONLY, only), (ch07.MIXED, mixed), (ch07.CURRICULUM, cur),
                       (ch07.NO_RESET, 0.45)):
        for seed, off in zip(SEEDS, OFFSETS):
            rows.append((arm, seed, 4, value + spread * off))
    return {"final": pd.DataFrame(rows, columns=["arm", "seed", "m", "value"]), "largest": 4,
            "chance": 0.125}


def test_c12_barrier_with_both_successes_is_supported():
    rec = claims.evaluate("C12", c12_tables(spread=0.005))
    assert rec.verdict == "supported", rec.why
    assert rec.null_passes is False
    assert "the curriculum without optimizer resets → partly supported" in rec.flips


def test_c12_the_null_itself_is_not_supported():
    assert claims.evaluate("C12", ch07.null_c12(c12_tables())).verdict == "not supported"


def test_c12_borderline_curriculum_at_the_bar():
    rec = claims.evaluate("C12", c12_tables(cur=0.9))
    assert rec.verdict == "supported"
    assert "learned = 0.95 (rule: 0.9) → partly supported" in rec.flips
    assert claims.evaluate("C12", c12_tables(cur=0.899)).verdict == "partly supported"


def test_c12_one_seed_learning_from_scratch_is_not_supported():
    tables = c12_tables()
    tables["final"].loc[0, "value"] = 0.93                  # seed 0 of the from-scratch arm
    assert claims.evaluate("C12", tables).verdict == "not supported"


def test_c12_measure_by_hand_and_bounded():
    tables = c12_tables(mixed=0.96, spread=0.03)
    only = tables["final"].arm == ONLY
    tables["final"].loc[only, "value"] = 0.12                 # from scratch: no spread
    ev = ch07.measure_c12(tables)
    assert ev["mixed"] == pytest.approx(0.96)
    mixed_hi = float(ev.ci.split("mixed [")[1].split(",")[1].rstrip("];").split("]")[0])
    assert mixed_hi == 1.0                                 # 0.96 + 0.03 × 2.776 × 1.58 / √5 > 1
    expected = stats.ttest_1samp(0.84 + 0.03 * OFFSETS, 0.0,
                                 alternative="greater").pvalue
    assert ev.p_value == pytest.approx(expected)


def test_tables_from_arms_pairs_by_seed():
    dims, mlp_dims, final = [], [], []
    for seed in (0, 1):
        for arm, real, null in ((ch07.MIXED, 4.0 - seed, 5.0), (ch07.MLP, 4.0, 4.5)):
            for source, value in (("real", real), ("random walk", null)):
                dims.append((arm, seed, "all", -1, "joint", source, value))
            for layer, value in ((0, 3.5), (1, 3.9)):
                dims.append((arm, seed, "block", layer, "W_Q", "real", value + seed))
        for layer, value in ((0, 2.0), (1, 3.0)):
            mlp_dims.append((ch07.MLP, seed, "mlp block", layer, "W_in", "real", value + seed))
        for arm, acc in ((ch07.MIXED, 0.9), (ch07.MLP, 0.8)):
            for m in (1, 4):
                final.append((arm, seed, m, acc + 0.05 * (m == 4)))
    dims = pd.DataFrame(dims, columns=["arm", "seed", "group", "layer", "matrix", "source",
                                       "rank"])
    mlp_dims = pd.DataFrame(mlp_dims, columns=["arm", "seed", "group", "layer", "matrix",
                                               "source", "rank"])
    final = pd.DataFrame(final, columns=["arm", "seed", "m", "value"])
    pairs = ch07.mlp_pairs(dims, mlp_dims, final, largest=4).set_index("seed")
    assert pairs.loc[1, "attn_plain"] == 3.0 and pairs.loc[1, "attn_mlp"] == 4.0
    assert pairs.loc[0, "null_mlp"] == 4.5 and pairs.loc[0, "null_plain"] == 5.0
    assert pairs.loc[1, "mlp_r90"] == pytest.approx(3.5)            # mean of 3.0 and 4.0
    assert pairs.loc[0, "attn_type_plain"] == pytest.approx(3.7)    # attention-only arm only
    assert pairs.loc[0, "acc_mlp"] == pytest.approx(0.825)          # mean over m = 1, 4
    assert pairs.loc[0, "acc_plain_m"] == pytest.approx(0.95)


# ------------------------------------------------------------------------------ prose

def summary_inputs(attn_up=1.0, gap=-0.1, only=0.12, mixed=0.99, cur=0.95, overlap=0.03):
    tables = {**c10_tables(attn_up=attn_up, gap=gap), **c11_tables(),
              **c12_tables(only=only, mixed=mixed, cur=cur)}
    tables["overlaps"] = tables["overlaps"].assign(
        mean_cos2=lambda f: np.where(f.comparison.str.startswith("seeds"), 2.5e-4, overlap))
    records = {cid: claims.evaluate(cid, tables) for cid in ("C10", "C11", "C12")}
    return records, tables


def test_summary_wording_follows_the_numbers():
    mlp_below, fragment = -1.0 + 0 * OFFSETS, 3.1416 + OFFSETS
    records, tables = summary_inputs()
    text = ch07.summary(records, tables, mlp_below, fragment, [0.126] * 3, 2000)
    assert "joint attention $r_{90}$ rises (+1.00" not in text          # ci_text, not signed
    says(text, "joint attention $r_{90}$ rises (1.00 [", "Final accuracy falls",
               "1.00 below their random-walk null",
               f"paired by seed: {ch07.ci_text(fragment)}: more dimensions")
    assert "3.14 [" in text                                              # 3.1416, 2 decimals
    assert "nearly orthogonal subspaces" in text and "do not reach the same" in text
    assert f"{0.03 / 2.5e-4:.0f}× more aligned" in text                  # 120×
    says(text, "so capacity is not the limit. The curriculum also learns it.",
               "does not learn the task within 2000 steps", "chance 0.125")
    for cid in ("C10", "C11", "C12"):
        assert f"Verdict: {records[cid].verdict}." in text

    records, tables = summary_inputs(attn_up=0.0, gap=0.0, mixed=0.5, cur=0.5, overlap=0.7)
    other = ch07.summary(records, tables, -mlp_below, -fragment, [0.97] * 3, 2000)
    says(other, "joint attention $r_{90}$ does not change detectably",
                "Final accuracy does not change detectably", "1.00 above their random-walk null",
                "fewer dimensions, against the paper's fragmentation picture")
    assert "largely shared subspaces" in other and "entirely different execution" in other
    says(other, ": neither learns it at this budget.", "curriculum reaches 0.500 [",
                "learns the task within 2000 steps (held-out accuracy 0.970")
    assert "could not have produced" not in other
