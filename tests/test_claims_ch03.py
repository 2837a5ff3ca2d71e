"""C1–C5 (chapter 3, execution manifolds) on hand-made tables: rules, nulls, thresholds, measures."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import claims
from modadd.claims import ch03
from claim_checks import says

MATRICES = ["W_Q", "W_K", "W_V", "W_O"]
JITTER = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])       # per-seed offsets, mean 0


def r90_table(real, walk, shuffled=None, seeds=5, layers=2, jitter=JITTER, walk_jitter=None):
    """Block r90 rows: ``real``/``walk``/``shuffled`` are per-matrix means (dict or scalar), each
    seed offset by ``jitter`` (the null by ``walk_jitter``, default the same)."""
    walk_jitter = jitter if walk_jitter is None else walk_jitter
    shuffled = walk if shuffled is None else shuffled
    rows = []
    for source, level, jit in (("real", real, jitter), ("random walk", walk, walk_jitter),
                               ("shuffled increments", shuffled, walk_jitter)):
        for s in range(seeds):
            for layer in range(layers):
                for m in MATRICES:
                    base = level[m] if isinstance(level, dict) else level
                    base = base[layer] if isinstance(base, (list, tuple)) else base
                    rows.append((s, layer, m, source, base + jit[s]))
    return pd.DataFrame(rows, columns=["seed", "layer", "matrix", "source", "rank"])


def tables(r90=None, lock=None, angles=None, resolution=1 / 60, setting="main"):
    return {"r90": r90 if r90 is not None else r90_table(3.5, 5.0), "setting": setting,
            "schedules": pd.DataFrame(columns=["seed", "layer", "matrix", "source", "rank",
                                               "setting"]),
            "lock_in": lock if lock is not None else lock_table([0.1] * 5, [0.3] * 5),
            "resolution": resolution, "k": 4, "dim": 16384,
            "angles": angles if angles is not None else angle_table(1.0, 100.0)}


# ----------------------------------------------------------------------------------------- C1

def test_c1_every_type_in_range_and_below_its_null_is_supported():
    rec = claims.evaluate("C1", tables())
    assert rec.verdict == "supported" and rec.null_passes is False
    assert rec.null_verdict == "not supported"
    assert rec.previous[0]["version"] == 1 and rec.previous[0]["verdict"] == "supported"
    assert "[2.5, 4.5]" in rec.effect                   # the text states what is tested


def test_c1_the_null_itself_is_not_supported():
    assert claims.evaluate("C1", tables(r90_table(5.0, 5.0))).verdict == "not supported"


def test_c1_types_at_the_null_make_it_partly_and_the_unpaired_v1_differs():
    # W_Q and W_K at the null; W_V, W_O 1 below.  The null's seeds vary a lot (unpaired CIs
    # overlap), but the paired difference is constant: v2 passes V, O; v1 passes none.
    real = {"W_Q": 4.0, "W_K": 4.0, "W_V": 3.0, "W_O": 3.0}
    walk = {"W_Q": 4.0, "W_K": 4.0, "W_V": 4.0, "W_O": 4.0}
    big = JITTER * 10
    rec = claims.evaluate("C1", tables(r90_table(real, walk, jitter=big)))
    assert rec.verdict == "partly supported" and "2/4" in rec.why
    assert rec.previous[0]["verdict"] == "not supported"


def test_c1_borderline_upper_edge_pins_the_threshold():
    # W_Q's mean is exactly 4.5: inside [2.5, 4.5]; the range end high = 4 flips it
    real = {"W_Q": 4.5, "W_K": 3.5, "W_V": 3.0, "W_O": 3.0}
    rec = claims.evaluate("C1", tables(r90_table(real, 6.0)))
    assert rec.verdict == "supported"
    assert ch03.CLAIMS[0].rule.thresholds == {"low": 2.5, "high": 4.5}
    assert "high = 4 (rule: 4.5) → partly supported" in rec.flips


def test_c1_measure_matches_a_hand_computation():
    real = {"W_Q": 4.0, "W_K": 4.2, "W_V": 3.0, "W_O": 2.8}
    t = tables(r90_table(real, 5.0, walk_jitter=np.array([0.3, -0.3, 0.1, -0.1, 0.0])))
    ev = ch03.measure_c1(t)
    assert ev["mean W_Q"] == pytest.approx(4.0)
    assert ev["overall"] == pytest.approx(np.mean(list(real.values())))
    diff = JITTER - np.array([0.3, -0.3, 0.1, -0.1, 0.0]) + 4.0 - 5.0       # W_Q per seed
    half = stats.t.ppf(0.975, 4) * diff.std(ddof=1) / np.sqrt(5)
    assert ev["paired high W_Q"] == pytest.approx(diff.mean() + half)
    overall_diff = diff + np.mean(list(real.values())) - 4.0
    assert ev.p_value == pytest.approx(stats.ttest_1samp(overall_diff, 0,
                                                         alternative="less").pvalue)
    assert set(ev.controls) == {"random walk (same step norms)", "shuffled increments"}


def test_c1_schedule_controls_and_variants_are_reported():
    sched = pd.concat([r90_table(3.0, 6.0).assign(setting="original lr"),
                       r90_table(6.0, 6.0).assign(setting="constant lr")], ignore_index=True)
    main = {**tables(), "schedules": sched}
    variant = {**main, "r90": r90_table(6.0, 6.0), "setting": "constant lr"}
    rec = claims.evaluate("C1", main, "test", {"constant lr": variant})
    assert any(k.startswith("constant peak rate") for k in rec.controls)
    assert any(k.startswith("original constant rate") for k in rec.controls)
    assert rec.variants["constant lr"].verdict == "not supported"
    assert not any(k.startswith("constant peak rate") for k in rec.variants["constant lr"].controls)


# ----------------------------------------------------------------------------------------- C2

def test_c2_less_seed_spread_than_the_null_is_supported():
    t = tables(r90_table(3.5, 5.0, jitter=JITTER * 0.1, walk_jitter=np.array([-1, 1, -1, 1, 0.])))
    rec = claims.evaluate("C2", t)
    assert rec.verdict == "supported" and rec.null_passes is False


def test_c2_the_null_itself_is_not_supported_and_v1_is_passed_by_its_null():
    rec = claims.evaluate("C2", tables(r90_table(4.0, 4.0)))
    assert rec.verdict == "not supported"
    # every block spans 0.4 <= 1, the null's too: v1 is passed by its null
    assert rec.previous[0]["verdict"] == "not testable" and rec.previous[0]["null_passes"]


def test_c2_borderline_margin_flips():
    # real s.d. just under the null's for every resampled seed set: supported at margin 0,
    # not at the range end 0.1
    t = tables(r90_table(4.0, 4.0, jitter=JITTER * 0.9, walk_jitter=JITTER))
    ev = ch03.measure_c2(t)
    assert ev["gap high"] < 0 < ev["gap high"] + 0.1
    rec = claims.evaluate("C2", t)
    assert rec.verdict == "supported"
    assert "margin = 0.1 (rule: 0) → not supported" in rec.flips


def test_c2_measure_matches_a_hand_computation():
    walk_jit = np.array([0.5, -0.5, 0.2, -0.2, 0.0])
    ev = ch03.measure_c2(tables(r90_table(3.5, 5.0, walk_jitter=walk_jit)))
    assert ev["sd real"] == pytest.approx(np.std(JITTER, ddof=1))
    assert ev["sd null"] == pytest.approx(np.std(walk_jit, ddof=1))
    assert ev["gap"] == pytest.approx(np.std(JITTER, ddof=1) - np.std(walk_jit, ddof=1))


def test_c2_too_few_seeds_is_not_testable():
    t = tables(r90_table(3.5, 5.0, seeds=2))
    assert claims.evaluate("C2", t).verdict == "not testable"


# ----------------------------------------------------------------------------------------- C3

def angle_table(seed_ratio, same_init_ratio, seeds=5, layers=2, k=4, dim=16384, block=None):
    """Overlaps in units of k/dim: cross-seed pairs at ``seed_ratio`` (block (0, W_Q) at
    ``block`` if given), same-seed different-m pairs at ``same_init_ratio``."""
    chance = k / dim
    rows = []
    for a in range(seeds):
        for b in range(a + 1, seeds):
            for layer in range(layers):
                for m in MATRICES:
                    r = block if (block is not None and layer == 0 and m == "W_Q") else seed_ratio
                    rows.append(("seed", f"mixed s{a}", f"mixed s{b}", layer, m, r * chance))
    for s in range(2):
        for layer in range(layers):
            for m in MATRICES:
                rows.append(("m (same seed)", f"m1 s{s}", f"m2 s{s}", layer, m,
                             same_init_ratio * chance))
    rows += [("random", "random", "random", -1, "", chance)] * 5
    return pd.DataFrame(rows, columns=["comparison", "a", "b", "layer", "matrix", "overlap"])


def test_c3_random_level_overlap_is_supported_and_same_init_is_not():
    rec = claims.evaluate("C3", tables(angles=angle_table(1.0, 100.0)))
    assert rec.verdict == "supported" and rec.null_passes is False
    assert "100.0× random" in rec.controls["same seed, different m (shared initialisation)"]


def test_c3_the_null_itself_is_not_supported():
    assert claims.evaluate("C3", tables(angles=angle_table(100.0, 100.0))).verdict \
        == "not supported"


def test_c3_borderline_block_pins_the_threshold():
    t = tables(angles=angle_table(1.0, 100.0, block=9.9))
    rec = claims.evaluate("C3", t)
    assert rec.verdict == "supported"
    assert "ratio = 5 (rule: 10) → partly supported" in rec.flips


def test_c3_measure_is_per_seed_mean_overlap():
    t = tables(angles=angle_table(2.0, 50.0, block=12.0))
    ev = ch03.measure_c3(t)
    assert ev["max block ratio"] == pytest.approx(12.0)
    # per pair: mean over 8 blocks = (12 + 7 * 2) / 8 for every pair; per seed the same
    assert ev["mean ratio"] == pytest.approx((12 + 7 * 2) / 8)
    assert ev["runs"] == 5 and "over 5 seeds" in ev.ci
    assert claims.evaluate("C3", t).verdict == "partly supported"


# ----------------------------------------------------------------------------------------- C4

def lock_table(real, null, draws=4, blocks=4, null_spread=0.0):
    """Per seed: every block locks in at ``real[s]``; the null's draws at ``null[s]`` ± spread."""
    rows = []
    for s, (r, n) in enumerate(zip(real, null)):
        for b in range(blocks):
            rows.append((s, 0, MATRICES[b % 4], "real", 0, r))
            for d in range(draws):
                rows.append((s, 0, MATRICES[b % 4], "random walk", d,
                             n + null_spread * (d - (draws - 1) / 2)))
    return pd.DataFrame(rows, columns=["seed", "layer", "matrix", "source", "draw", "lock_in"])


def test_c4_earlier_than_the_null_is_supported():
    rec = claims.evaluate("C4", tables(lock=lock_table([0.1, 0.12, 0.08, 0.1, 0.11],
                                                       [0.3, 0.32, 0.29, 0.3, 0.31])))
    assert rec.verdict == "supported" and rec.null_passes is False


def test_c4_the_null_itself_is_not_testable_at_the_snapshot_resolution():
    lock = lock_table([0.07] * 5, [0.07] * 5)
    rec = claims.evaluate("C4", tables(lock=lock))
    assert rec.verdict == "not testable" and "snapshot resolution" in rec.why
    # v1 called it partly supported, which its null passes: not testable there too
    assert rec.previous[0]["verdict"] == "not testable" and rec.previous[0]["null_passes"]


def test_c4_late_lock_in_is_not_supported():
    rec = claims.evaluate("C4", tables(lock=lock_table([0.5, 0.52, 0.48, 0.5, 0.5], [0.7] * 5)))
    assert rec.verdict == "not supported"


def test_c4_borderline_resolution_flips():
    # paired difference -0.02 exactly in every seed: beyond 1 snapshot interval (1/60), within 2
    real = [0.05, 0.06, 0.07, 0.06, 0.05]
    rec = claims.evaluate("C4", tables(lock=lock_table(real, [r + 0.02 for r in real])))
    assert rec.verdict == "supported"
    assert "resolution = 2 (rule: 1) → not testable" in rec.flips


def test_c4_measure_matches_a_hand_computation():
    real = [0.05, 0.06, 0.07, 0.06, 0.05]
    null = [0.09, 0.06, 0.08, 0.07, 0.1]
    ev = ch03.measure_c4(tables(lock=lock_table(real, null, null_spread=0.01)))
    d = np.array(real) - np.array(null)        # the spread is symmetric: draw means are null
    assert ev["diff"] == pytest.approx(d.mean())
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert ev["diff high"] == pytest.approx(d.mean() + half)
    assert ev["resolution"] == pytest.approx(1 / 60)
    assert ev.p_value == pytest.approx(stats.ttest_1samp(d, 0, alternative="less").pvalue)


def test_c4_alternatives_use_other_null_draws():
    alts = ch03.alternatives_c4(tables(lock=lock_table([0.1] * 5, [0.3] * 5, draws=4)))
    assert sorted(alts) == ["null draws 0–1 only", "null draws 2–3 only"]


# ----------------------------------------------------------------------------------------- C5

def test_c5_vo_below_qk_in_every_layer_is_supported():
    real = {"W_Q": 4.5, "W_K": 4.5, "W_V": 3.0, "W_O": 3.0}
    rec = claims.evaluate("C5", tables(r90_table(real, 5.0)))
    assert rec.verdict == "supported" and rec.null_passes is False


def test_c5_the_null_itself_is_not_supported():
    assert claims.evaluate("C5", tables(r90_table(5.0, 5.0))).verdict == "not supported"


def test_c5_one_layer_reversed_is_partly_and_the_margin_flips():
    # layer 0: Q,K − V,O = +2; layer 1: −0.4; mean +0.8 in every seed
    real = {"W_Q": [5.0, 3.0], "W_K": [5.0, 3.0], "W_V": [3.0, 3.4], "W_O": [3.0, 3.4]}
    rec = claims.evaluate("C5", tables(r90_table(real, 5.0)))
    assert rec.verdict == "partly supported"
    ev = ch03.measure_c5(tables(r90_table(real, 5.0)))
    assert ev["diff"] == pytest.approx(0.8) and ev["min layer"] == pytest.approx(-0.4)
    assert claims.spec("C5").rule.ranges["margin"] == (0.0, 0.5)


def test_c5_margin_mutation_flips_a_small_difference():
    real = {"W_Q": 3.7, "W_K": 3.7, "W_V": 3.3, "W_O": 3.3}       # +0.4 in every seed and layer
    rec = claims.evaluate("C5", tables(r90_table(real, 5.0)))
    assert rec.verdict == "supported"
    assert "margin = 0.5 (rule: 0) → not supported" in rec.flips


# ---------------------------------------------------------------------------------- loaders

def test_unknown_variant_is_refused():
    with pytest.raises(ValueError, match="variant"):
        ch03.load("smoke", "bogus")


def test_variants_are_declared():
    assert claims.spec("C1").variants == ("original lr", "constant lr")
    assert claims.spec("C4").variants == ("original lr", "constant lr", ch03.REGULAR)
    assert claims.spec("C3").variants == ()
    assert claims.spec("C6").variants == claims.spec("C7").variants == (ch03.REGULAR,)


# -------------------------------------------------------------------------------------- prose

def prose_inputs(real=3.5, walk=5.0, same_init=100.0, lock=None, variant_real=3.5):
    """Records of C1–C5 on hand-made tables at the preset schedule and two variants."""
    main = tables(r90_table(real, walk), lock=lock, angles=angle_table(1.0, same_init))
    variants = {role: {**tables(r90_table(variant_real, walk), lock=lock), "setting": role}
                for role in ch03.VARIANTS}
    variants[ch03.REGULAR] = main
    records = {cid: claims.evaluate(cid, main, "test",
                                    {v: variants[v] for v in claims.spec(cid).variants})
               for cid in ch03.IDS}
    return records, main, variants


def test_summary_below_the_null_and_confined_motion():
    records, main, variants = prose_inputs()
    text = ch03.summary(records, main, variants, (-0.5, -0.8, -0.2), 15)
    says(text, "below the null by 1.50 dimensions",
               "$r_{90}$ is lower than that of matched random walks",
               "motion stays confined to fewer directions",
               "sliding windows of 15 snapshots between 30% and 80%")
    # every type is below its null at the constant peak rate: no learning-rate caveat
    assert "at the constant peak rate: W_Q, W_K, W_V, W_O" in text
    assert "depends on the learning rate" not in text
    assert "Orientation is set by the initialisation" in text
    assert "overlap 100.0× random" in text


def test_summary_at_the_null_says_so():
    records, main, variants = prose_inputs(real=5.0, same_init=1.0, variant_real=5.0)
    text = ch03.summary(records, main, variants, (0.2, -0.1, 0.5), 15)
    assert "not distinguishable from the null" in text and "below the null by" not in text
    says(text, "indistinguishable from that of matched random walks",
               "comes from the large early moves", "at the constant peak rate: none",
               "depends on the learning rate, not on the task alone",
               "Sharing the initialisation does not make the subspaces much more alike.")


def test_summary_numbers_come_from_the_inputs():
    lock = lock_table([0.1416] * 5, [0.3] * 5)
    records, main, variants = prose_inputs(real=3.1416, lock=lock, variant_real=3.1416)
    text = ch03.summary(records, main, variants, (-2.7183, -3.0, -2.5), 7)
    assert "we measure 3.14 [" in text and "ambient 16384 to 3.1 " in text
    assert f"below the null by {5.0 - 3.1416:.2f} dimensions" in text       # 1.86
    assert "difference -2.72 [-3.00, -2.50]" in text and "of 7 snapshots" in text
    assert "lock into their final subspace at 0.142 of training" in text
    assert "earlier than the matched random walks" in text        # C4 supported here
    # the regular grid's record is named with its own resolution and lock-in
    assert "at the regular snapshots only (0.017 of training apart) it is supported (lock-in " \
           "0.142)" in text
    # real minus shuffled increments is real minus the (same) null: -1.86 at every schedule
    assert text.count("-1.86 [-1.86, -1.86]") == 3


def test_c4_sentence_states_the_resolution_when_not_supported():
    lock = lock_table([0.07] * 5, [0.07] * 5)
    records, main, variants = prose_inputs(lock=lock)
    text = ch03.summary(records, main, variants, (0.0, -0.1, 0.1), 15)
    assert records["C4"].verdict == "not testable"
    assert ("matched random walks lock in within one snapshot interval (0.0167 of training) "
            "of it") in text
    assert "On snapshots 0.0167 of training apart where the lock-ins lie" in text
    # a rule that finds real and null apart says so without the resolution caveat
    lock = lock_table([0.07] * 5, [0.2, 0.25, 0.3, 0.2, 0.22])
    records, main, variants = prose_inputs(lock=lock)
    text = ch03.summary(records, main, variants, (0.0, -0.1, 0.1), 15)
    assert records["C4"].verdict == "supported", records["C4"].why
    assert "earlier than the matched random walks, beyond the snapshot resolution" in text


def test_dense_lock_in_tables_and_resolution():
    """with_dense_lock_in takes the dense grid's rows and the spacing where the lock-ins lie;
    the regular-matched null is an alternative that can flip C4."""
    steps = np.union1d(np.arange(0, 61, 6), np.arange(0, 13, 1))    # dense to 12, then 6
    rows = []
    for seed in range(5):
        for grid, real, walk in (("regular", 6, 6), ("dense", 4, 9 + seed),
                                 ("dense, regular-matched null", 4, 4 + (seed % 2))):
            for layer in range(2):
                for matrix in ch03.MATRICES:
                    rows.append((seed, layer, matrix, "real", 0, 2, real / 60, real, grid))
                    for draw in range(2):
                        rows.append((seed, layer, matrix, "random walk", draw, 2, walk / 60,
                                     walk, grid))
    dense = pd.DataFrame(rows, columns=["seed", "layer", "matrix", "source", "draw", "k",
                                        "lock_in", "step", "grid"])
    base = tables(r90_table(3.5, 5.0), lock=lock_table([0.1] * 5, [0.1] * 5))
    regular = steps % 6 == 0
    out = ch03.with_dense_lock_in(base, dense, steps, regular)
    assert out["resolution"] == pytest.approx(1 / 60)        # real lock-ins at step 4 (dense)
    coarse = ch03.with_dense_lock_in(base, dense, steps, regular, "regular")
    assert coarse["resolution"] == pytest.approx(6 / 60)     # the regular grid's own spacing
    assert set(coarse["lock_in"].lock_in.round(6)) == {round(6 / 60, 6)}
    assert claims.evaluate("C4", coarse, "test").verdict == "not testable"
    with pytest.raises(ValueError, match="grid: must be one of"):
        ch03.with_dense_lock_in(base, dense, steps, regular, "bogus")
    assert set(out["lock_in"].lock_in.round(6)) == {round(4 / 60, 6)} | {
        round((9 + s) / 60, 6) for s in range(5)}
    rec = claims.evaluate("C4", out, "test")
    assert rec.verdict == "supported", rec.why
    assert any("matched per regular interval" in f and "not supported" in f
               for f in rec.flips), rec.flips
    assert ch03.grid_spacing(steps, 30) == 6 and ch03.grid_spacing(steps, 5) == 1


def test_schedule_words():
    records, *_ = prose_inputs()
    assert ch03.schedule_words(records["C1"]) == "supported at all 3 schedules"
    records, *_ = prose_inputs(variant_real=5.0)
    assert ch03.schedule_words(records["C1"]) == (
        "supported at the preset's schedule; not supported at original lr; not supported at "
        "constant lr")


def test_local_dimension_and_c2_history_in_the_summary():
    rows = [(s, f, 4.0 + 0.1 * s, 5.0) for s in range(3) for f in (0.1, 0.5, 0.9)]
    layer_mean = pd.DataFrame(rows, columns=["seed", "fraction", "sliding", "sliding_null"])
    ci = ch03.local_dimension(layer_mean)
    d = np.array([-1.0, -0.9, -0.8])                 # only the fraction 0.5 is mid-training
    assert ci[0] == pytest.approx(d.mean())
    assert ci[2] == pytest.approx(d.mean() + stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3))
    records, main, variants = prose_inputs()
    text = ch03.summary(records, main, variants, ci, 15)
    v1 = records["C2"].previous[0]
    assert f"under rule v1 (seed range ≤ 1 in every block) it was {v1['verdict']}" in text
