"""C6 and C7 (chapter 4): the readout-entropy drop and its timing against lock-in, on hand-made
tables (no runs, no data/results)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import claims
from modadd.claims import ch04
from claim_checks import assert_mutation_flips, says

T, N_STEPS = 16, 6000
LN_T = math.log(T)


def ramp_entropy(ramps: dict, spacing: int, n_steps: int = N_STEPS, drop=0.8, layers=(0,),
                 ms=(1, 2)) -> pd.DataFrame:
    """Entropy falling linearly by ``drop`` × ln T between ``ramps[seed] = (a, b)`` steps (``drop``:
    a scalar or ``{m: value}``), on steps 0, spacing, 2·spacing, ... n_steps."""
    steps = np.arange(0, n_steps + 1, spacing)
    rows = []
    for seed, (a, b) in ramps.items():
        for m in ms:
            d = drop[m] if isinstance(drop, dict) else drop
            d = d[seed] if isinstance(d, (list, tuple)) else d
            for layer in layers:
                fallen = np.clip((steps - a) / (b - a), 0, 1)
                for step, f in zip(steps, fallen):
                    rows.append((seed, m, layer, int(step), LN_T * (1 - d * f)))
    return pd.DataFrame(rows, columns=["seed", "m", "layer", "step", "value"])


def tables_for(entropy: pd.DataFrame, lock=None, n_steps: int = N_STEPS) -> dict:
    if lock is None:
        lock = pd.DataFrame([(s, l, 1000.0) for s in entropy.seed.unique()
                             for l in entropy.layer.unique()], columns=["seed", "layer",
                                                                        "lock_step"])
    return {"entropy": entropy, "lock": lock, "T": T, "n_steps": n_steps}


# ------------------------------------------------------------------------------------ C6

SMOOTH_RAMPS = {s: (1000 + 20 * s, 2000 + 40 * s) for s in range(5)}


def test_c6_large_resolved_slow_drop_is_supported():
    tables = tables_for(ramp_entropy(SMOOTH_RAMPS, spacing=10))
    rec = claims.evaluate("C6", tables)
    assert rec.verdict == "supported", rec.why
    assert rec.null_passes is False and rec.null_verdict == "not supported"
    assert "smooth" in rec.why


def test_c6_the_null_itself_is_not_supported():
    flat = ramp_entropy(SMOOTH_RAMPS, spacing=10, drop=0.0)
    rec = claims.evaluate("C6", tables_for(flat))
    assert rec.verdict == "not supported"
    null = ch04.null_c6(tables_for(ramp_entropy(SMOOTH_RAMPS, spacing=10)))
    assert np.allclose(null["entropy"].value, LN_T)


def test_c6_same_transition_untestable_at_coarse_snapshots_decided_at_dense_ones():
    # a true 10-90% window of ~200 steps: at 100-step snapshots it spans 2 intervals (not
    # resolved); at 10-step snapshots the same rule resolves it and calls it abrupt (< 300 steps)
    ramps = {s: (100 + 5 * s, 350 + 5 * s) for s in range(5)}
    coarse = claims.evaluate("C6", tables_for(ramp_entropy(ramps, spacing=100)))
    assert coarse.verdict == "partly supported"
    assert "not testable at 100-step snapshots" in coarse.why
    dense = claims.evaluate("C6", tables_for(ramp_entropy(ramps, spacing=10)))
    assert dense.verdict == "partly supported"
    assert "abrupt" in dense.why and "not testable" not in dense.why


def test_c6_drop_threshold_mutation_flips():
    # every seed drops 0.52 ln T: just above the rule's 0.5, below the range end 0.6
    assert_mutation_flips("C6", tables_for(ramp_entropy(SMOOTH_RAMPS, spacing=10, drop=0.52)),
                          ch04.measure_c6, "drop = 0.6 (rule: 0.5) → partly supported", "drop",
                          0.53)


def test_c6_one_weak_m_fails_the_drop_and_v1_is_kept():
    drop = {1: [0.4, 0.45, 0.5, 0.42, 0.48], 2: 0.8}
    rec = claims.evaluate("C6", tables_for(ramp_entropy(SMOOTH_RAMPS, spacing=10, drop=drop)))
    assert rec.verdict == "partly supported" and "m=1" in rec.why    # smooth, drop fails
    assert [p["version"] for p in rec.previous] == [1]


def test_c6_measure_matches_a_hand_computation():
    drop = {1: [0.6, 0.7, 0.8, 0.65, 0.75], 2: 0.9}
    tables = tables_for(ramp_entropy(SMOOTH_RAMPS, spacing=10, drop=drop))
    ev = ch04.measure_c6(tables)
    # linear ramp a -> b on a 10-step grid: 10% at a + 0.1 (b - a), 90% at a + 0.9 (b - a),
    # each rounded up to the grid
    widths = []
    for a, b in SMOOTH_RAMPS.values():
        start = math.ceil((a + 0.1 * (b - a)) / 10 - 1e-9) * 10
        end = math.ceil((a + 0.9 * (b - a)) / 10 - 1e-9) * 10
        widths.append(end - start)
    w = np.array(widths, float)
    half = stats.t.ppf(0.975, 4) * w.std(ddof=1) / math.sqrt(5)
    assert ev["width"] == pytest.approx(w.mean())
    assert ev["width_low"] == pytest.approx(w.mean() - half)
    assert ev["width_high"] == pytest.approx(w.mean() + half)
    assert ev["spacing"] == 10
    d1 = np.array(drop[1])
    low1 = d1.mean() - stats.t.ppf(0.975, 4) * d1.std(ddof=1) / math.sqrt(5)
    assert ev["weakest_m"] == 1 and ev["min_drop_low"] == pytest.approx(low1)
    assert ev.p_value == pytest.approx(stats.ttest_1samp(d1 - 0.5, 0, alternative="greater")
                                       .pvalue)


def test_c6_intervals_respect_ranges():
    # drops near 1 ln T with spread: the upper bound is cut at 1; widths near 0 cut at 0
    drop = {1: [0.99, 0.9, 1.0, 0.95, 0.999], 2: 1.0}
    ramps = {0: (100, 110), 1: (100, 110), 2: (100, 110), 3: (100, 110), 4: (100, 3000)}
    ev = ch04.measure_c6(tables_for(ramp_entropy(ramps, spacing=10, drop=drop)))
    assert ev["width_low"] >= 0
    rec = claims.evaluate("C6", tables_for(ramp_entropy(ramps, spacing=10, drop=drop)))
    highs = [float(part.split(", ")[1].rstrip("]")) for part in rec.ci.split("; ")
             if part.startswith(("drop per m: m=", "m="))]
    assert highs and max(highs) <= 1.0


# ------------------------------------------------------------------------------------ C7

def timing_tables(mids: list, lock_offsets: list, spacing: int = 10, layers=(0, 1)):
    """Ramps centred on ``mids[seed]`` (400 steps wide); lock-in at mid + offset (+ 20 per
    layer)."""
    ramps = {s: (m - 200, m + 200) for s, m in enumerate(mids)}
    entropy = ramp_entropy(ramps, spacing, layers=layers)
    lock = pd.DataFrame([(s, l, mids[s] + lock_offsets[s] + 20 * l) for s in range(len(mids))
                         for l in layers], columns=["seed", "layer", "lock_step"])
    return tables_for(entropy, lock)


MIDS = [1000, 1200, 1400, 1600, 1800]


def test_c7_correlated_timing_over_seeds_is_supported():
    tables = timing_tables(MIDS, [100, 80, 120, 90, 110])
    rec = claims.evaluate("C7", tables)
    assert rec.verdict == "supported", rec.why
    assert rec.null_passes is False and rec.null_verdict == "not supported"
    assert rec.p_value == pytest.approx(1 / 120)       # the observed pairing is the best of 5!


def test_c7_broken_pairing_itself_is_not_supported():
    tables = timing_tables(MIDS, [100, 80, 120, 90, 110])
    rec = claims.evaluate("C7", ch04.null_c7(tables))
    assert rec.verdict == "not supported"


def test_c7_midpoints_on_one_snapshot_are_not_testable():
    # every midpoint on the same 100-step snapshot: any r could only come from the lock-in
    ramps = {s: (150, 250) for s in range(5)}
    lock = pd.DataFrame([(s, 0, 300.0 + 50 * s) for s in range(5)],
                        columns=["seed", "layer", "lock_step"])
    rec = claims.evaluate("C7", tables_for(ramp_entropy(ramps, 100), lock))
    assert rec.verdict == "not testable" and "100-step snapshots" in rec.why


def test_c7_off_mode_threshold_mutation_flips():
    # 10 seeds, 7 with the midpoint at step 200 and 3 at 300 (30% off the mode), lock-in tracking
    mids = [200] * 7 + [300] * 3
    ramps = {s: (m - 60, m + 40) for s, m in enumerate(mids)}
    lock = pd.DataFrame([(s, 0, m + 50.0 + s) for s, m in enumerate(mids)],
                        columns=["seed", "layer", "lock_step"])
    tables = tables_for(ramp_entropy(ramps, 100, layers=(0,)), lock)
    ev = ch04.measure_c7(tables)
    assert ev["off_mode"] == pytest.approx(0.3) and ev["mode"] == 200
    rec = claims.evaluate("C7", tables)
    assert rec.verdict == "supported"
    assert "min_off_mode = 0.5 (rule: 0.25) → not testable" in rec.flips


def test_c7_measure_matches_a_hand_computation():
    offsets = [100, 80, 120, 90, 110]
    tables = timing_tables(MIDS, offsets)
    ev = ch04.measure_c7(tables)
    # seed unit: layer-mean lock-in = mid + offset + 10; midpoints exactly on the 10-step grid
    x = np.array([m + o + 10 for m, o in zip(MIDS, offsets)], float)
    y = np.array(MIDS, float)
    r = np.corrcoef(x, y)[0, 1]
    z, half = np.arctanh(r), 1.959963984540054 / math.sqrt(2)
    assert ev["r"] == pytest.approx(r)
    assert ev["r_low"] == pytest.approx(np.tanh(z - half))
    assert ev["off_mode"] == pytest.approx(0.8)          # 5 distinct midpoints, each 2 of 10
    gap = -np.array(offsets, float) - 10
    assert f"{gap.mean():+.0f}" in ev.controls["midpoint − lock-in"]


def test_c7_v1_is_evaluated_on_the_same_tables():
    tables = timing_tables(MIDS, [100, 80, 120, 90, 110], layers=(0, 1, 2, 3))
    rec = claims.evaluate("C7", tables)
    assert [p["version"] for p in rec.previous] == [1]
    # v1 pools the 20 seed × layer points: r high and the gap (-130 steps) within ±600
    assert rec.previous[0]["verdict"] == "supported"
    ev = ch04.measure_c7_v1(tables)
    assert -160 < ev["gap_low"] < -130 < ev["gap_high"] < -100


# ------------------------------------------------------------------------------------ notebook

# -------------------------------------------------------------------------------------- prose

def test_timing_text_before_and_indistinguishable_wordings():
    mids = pd.Series([200.0] * 9 + [300.0, float("nan")])
    before = ch04.timing_text((-231.4, -293.0, -169.0), (0.04, -0.87, 0.89, 5), mids)
    says(before, "-231 [-293, -169] steps", "the entropy falls before the weights lock in",
                 "r = 0.04 [-0.87, 0.89] (n = 5)")
    # 9 of the 11 rows sit on the modal step 200; 10 midpoints are defined
    assert f"Of the 10 seed × layer × m midpoints, {9 / 11:.0%} sit on one snapshot (step 200)" \
        in before
    same = ch04.timing_text((31.4159, -50.0, 120.0), (0.5, 0.1, 0.8, 6), mids)
    assert "+31 [-50, +120] steps" in same
    assert "at the same step as the weights lock in, within the CI" in same
    assert "before the weights" not in same
    after = ch04.timing_text((300.0, 100.0, 500.0), (0.5, 0.1, 0.8, 6), mids)
    assert "falls after the weights lock in" in after


def test_timing_text_keeps_r_inside_its_range():
    text = ch04.timing_text((-1.0, -2.0, 0.5), (0.9, 0.2, 1.3, 4), pd.Series([100.0, 200.0]))
    assert "r = 0.90 [0.20, 1.00] (n = 4)" in text
    assert "50% sit on one snapshot (step 100)" in text      # the smaller of two modes


def test_resolution_text_numbers_come_from_the_inputs():
    trans = pd.DataFrame({"width": [150.0, 314.16, float("nan")], "mid": [200.0, 271.8, 400.0]})
    text = ch04.resolution_text(trans, 100)
    says(text, "Snapshots are 100 steps apart",
               f"median 10–90% window is {np.median([150, 314.16]) / 100:.1f} snapshot",
               "median midpoint is at step 272")


def test_resolution_text_says_whether_the_window_is_resolved():
    trans = pd.DataFrame({"width": [150.0, 250.0], "mid": [120.0, 130.0]})
    assert "at the resolution limit" in ch04.resolution_text(trans, 100)      # 2 intervals
    text = ch04.resolution_text(trans, 10)                                    # 20 intervals
    assert "20.0 snapshot intervals (200 steps)" in text and "is resolved" in text


def test_resolution_text_names_both_aggregates():
    """The median over every curve, and (given seed, m and layer) the last layer's mean over
    seeds of the per-seed mean over m: the aggregate claim C6 quotes."""
    rows = [(seed, m, layer, 100.0 + 10 * seed + 40 * layer + m, 200.0)
            for seed in range(3) for m in (1, 2) for layer in (0, 1)]
    trans = pd.DataFrame(rows, columns=["seed", "m", "layer", "width", "mid"])
    text = ch04.resolution_text(trans, 10)
    median = np.median(trans.width)
    mean_last = trans[trans.layer == 1].groupby("seed").width.mean().mean()     # 151.5
    says(text, f"the median 10–90% window is {median / 10:.1f} snapshot intervals",
               "**mean over seeds**", f"{mean_last / 10:.1f} snapshot intervals "
                                      f"({mean_last:.0f} steps)", "not two measurements")
    assert "Claim C6" not in ch04.resolution_text(trans[["width", "mid"]], 10)


def test_resolution_table_per_layer_and_grid():
    rows = [(seed, m, layer, 100.0 * (1 + layer) + 10 * seed, 200.0 + m, 0.1)
            for seed in range(4) for m in (1, 2) for layer in (0, 1)]
    trans = pd.DataFrame(rows, columns=["seed", "m", "layer", "width", "mid", "rebound"])
    table = ch04.resolution_table({"coarse": trans, "fine": trans},
                                  {"coarse": 100, "fine": 10}, 6000)
    assert list(table.index) == [(0, "coarse"), (1, "coarse"), (0, "fine"), (1, "fine")]
    width = ch04.mean_ci(np.array([100.0, 110, 120, 130]))
    assert table.loc[(0, "coarse"), "10–90% window (steps)"] == ch04.fmt_ci(width, 0)
    assert table.loc[(0, "fine"), "snapshot intervals"] == "11.5"        # 115 / 10
    assert table.loc[(1, "coarse"), "snapshot intervals"] == "2.1"       # 215 / 100
    assert table.loc[(1, "coarse"), "midpoint (step)"].startswith("202 ")


def test_on_regular_steps_and_divergence_text():
    metrics = pd.DataFrame({"step": [0, 10, 20, 100, 150, 200, 250], "value": range(7)})
    assert ch04.on_regular_steps(metrics, 100, 250).step.tolist() == [0, 100, 200, 250]
    assert "up to step 6 (first difference per seed: 6, 9, none)" in \
        ch04.divergence_text([6, 9, None])
    assert "equal the book runs' at every step in all 2 seeds" in \
        ch04.divergence_text([None, None])


def test_resolution_verdicts_name_both_grids():
    ramps = {s: (100 + 10 * s, 300 + 10 * s) for s in range(5)}
    fine, coarse = ramp_entropy(ramps, spacing=10), ramp_entropy(ramps, spacing=100)
    rec = claims.evaluate("C6", tables_for(fine), "test",
                          {ch04.REGULAR: tables_for(coarse)})
    text = ch04.resolution_verdicts({"C6": rec})
    assert text.startswith("- **C6** at 10-step snapshots: *")
    assert "at the regular 100-step snapshots only: *" in text
    same = rec.verdict == rec.variants[ch04.REGULAR].verdict
    assert ("the same verdict" if same else "a different verdict") in text


def test_report_percent():
    from modadd.report import percent
    assert percent(0.973) == "97%" and percent(0.973, 1) == "97.3%"
    assert percent(float("nan")) == "—"
