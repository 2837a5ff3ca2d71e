"""C13–C16 (chapters 8–11) on hand-made tables: each rule's supportive, null, borderline and
threshold-mutation cases, measure() against hand computations, and the notebooks' parameter
defaults against the loaders'."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import claims
from modadd import openq as Q
from modadd.claims import ch08, ch09, ch10, ch11
from modadd.stats import mean_ci, wilson_ci
from claim_checks import says

# --------------------------------------------------------------------------------------- C13

def c13_tables(mul, add, mul_null=None, add_null=None):
    seeds = range(len(mul))
    mul_null = [4.8, 4.7, 4.9, 4.8, 4.75] if mul_null is None else mul_null
    add_null = [4.75, 4.8, 4.85, 4.7, 4.8] if add_null is None else add_null
    rows = [(arm, s, src, v) for arm, src, vals in
            ((ch08.MUL, "real", mul), (ch08.ADD, "real", add),
             (ch08.MUL, "random walk", mul_null), (ch08.ADD, "random walk", add_null))
            for s, v in zip(seeds, vals)]
    ranks = pd.DataFrame(rows, columns=["arm", "seed", "source", "rank"])
    return {"ranks": ranks, "joint": ranks}


def test_c13_clear_gap_in_the_bands_is_supported():
    rec = claims.evaluate("C13", c13_tables([5.0, 5.1, 4.9, 5.2, 5.0], [3.5, 3.6, 3.4, 3.5, 3.6]))
    assert rec.verdict == "supported" and rec.null_passes is False
    assert rec.null_verdict == "not supported"


def test_c13_real_equal_to_null_is_not_supported():
    null_mul, null_add = [4.8, 4.7, 4.9, 4.8, 4.75], [4.75, 4.8, 4.85, 4.7, 4.8]
    rec = claims.evaluate("C13", c13_tables(null_mul, null_add, null_mul, null_add))
    assert rec.verdict == "not supported"


def test_c13_gap_outside_the_bands_is_partly_and_tolerance_flips_it():
    # mul 6.4 is inside [4, 6] only with the 0.5 tolerance: at tolerance 0.25 it is outside
    tables = c13_tables([6.4, 6.5, 6.3, 6.4, 6.4], [3.5, 3.6, 3.4, 3.5, 3.6])
    rec = claims.evaluate("C13", tables)
    assert rec.verdict == "supported"
    assert "band_tolerance = 0.25 (rule: 0.5) → partly supported" in rec.flips
    far = claims.evaluate("C13", c13_tables([7.5, 7.6, 7.4, 7.5, 7.5],
                                            [3.5, 3.6, 3.4, 3.5, 3.6]))
    assert far.verdict == "partly supported"


def test_c13_gap_just_above_zero_flips_with_the_gap_floor():
    add = [3.5, 3.6, 3.4, 3.5, 3.6]
    mul = [a + d for a, d in zip(add, [0.15, 0.2, 0.1, 0.15, 0.2])]   # CI ≈ [0.10, 0.22]
    rec = claims.evaluate("C13", c13_tables(mul, add))
    assert rec.verdict == "supported"
    assert "min_gap = 0.25 (rule: 0) → not supported" in rec.flips


def test_c13_measure_matches_a_hand_computation():
    mul, add = [4.1, 4.0, 3.9, 4.3, 4.0], [3.75, 4.05, 3.7, 3.75, 3.65]
    ev = ch08.measure(c13_tables(mul, add))
    d = np.subtract(mul, add)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert ev["gap"] == pytest.approx(d.mean())
    assert ev["gap_low"] == pytest.approx(d.mean() - half)
    assert ev["mul"] == pytest.approx(np.mean(mul)) and ev["add"] == pytest.approx(np.mean(add))
    assert ev.p_value == pytest.approx(stats.ttest_1samp(d, 0, alternative="greater").pvalue)
    assert ev.ci.startswith(f"[{d.mean() - half:+.2f}, {d.mean() + half:+.2f}]")


def test_c13_one_seed_is_not_testable():
    assert claims.evaluate("C13", c13_tables([5.0], [3.5], [4.8], [4.8])).verdict == \
        "not testable"


# --------------------------------------------------------------------------------------- C14

def c14_tables(seed_spread=0.1, pert_step=0.005, window=None, scale=1.0, n_perm=500):
    """Runs at positions on a line (distance = |difference|): weight decay w at w * scale, seeds
    spread by ``seed_spread``; five perturbations of seed 0 at wd 1, ``pert_step`` apart."""
    rows, pos = [], []
    for wd in (0.0, 1.0, 2.0):
        for s in range(5):
            rows.append((f"wd{wd}s{s}", wd, s, -1, "main"))
            pos.append(wd * scale + seed_spread * s / 4)
    for k in range(5):
        rows.append((f"p{k}", 1.0, 0, k, "perturbed"))
        pos.append(1.0 * scale + pert_step * (k + 1))
    runs = pd.DataFrame(rows, columns=["key", "weight_decay", "seed", "perturbation", "role"])
    pos = np.array(pos)
    D = np.abs(pos[:, None] - pos[None, :])
    W = D if window is None else window
    return {"runs": runs, "distances": {"whole run": D, "common window": W},
            "tsvd": {"whole run": D, "common window": W}, "n_perm": n_perm, "common": 1000}


def test_c14_clear_separation_and_stable_perturbations_are_supported():
    rec = claims.evaluate("C14", c14_tables())
    assert rec.verdict == "supported" and rec.null_passes is False
    assert rec.previous[0]["verdict"] == "supported"          # v1 agrees here


def test_c14_unstructured_spectra_are_not_supported():
    rng = np.random.default_rng(1)
    t = c14_tables()
    X = rng.normal(size=(20, 2))
    D = np.linalg.norm(X[:, None] - X[None, :], axis=-1)
    t = {**t, "distances": {"whole run": D, "common window": D}}
    assert claims.evaluate("C14", t).verdict == "not supported"


def test_c14_null_tables_are_the_null():
    t = c14_tables()
    rec = claims.evaluate("C14", ch09.null_tables(t))
    assert rec.verdict == "not supported"
    runs = ch09.null_tables(t)["runs"]
    main = runs[runs.role == "main"]
    assert (main.groupby("weight_decay").seed.nunique() == 5).all()   # one run per seed


def test_c14_separation_on_whole_runs_only_is_partly_supported():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(20, 2))
    window = np.linalg.norm(X[:, None] - X[None, :], axis=-1)
    assert claims.evaluate("C14", c14_tables(window=window)).verdict == "partly supported"


def test_c14_unstable_perturbations_are_partly_supported():
    # the perturbed copies wander as far as another weight decay
    assert claims.evaluate("C14", c14_tables(pert_step=0.4)).verdict == "partly supported"


def test_c14_ratio_just_above_one_flips_with_min_ratio():
    # within pairs ~ spread/2, between ~ scale: choose the spread so the ratio CI sits in (1, 1.2)
    t = c14_tables(seed_spread=1.6, scale=1.0, n_perm=2000)
    ev = ch09.measure(t)
    assert 1.0 < ev["ratio_low_whole"] < 1.2 and ev["p_whole"] < 0.05
    rec = claims.evaluate("C14", t)
    assert rec.verdict == "supported"
    # both windows hold the same matrix here, so both fail at 1.2
    assert rec.flips == ["min_ratio = 1.2 (rule: 1) → not supported"]


def test_c14_measure_matches_a_hand_computation():
    t = c14_tables()
    ev = ch09.measure(t)
    D, runs = t["distances"]["whole run"], t["runs"]
    main = runs.index[runs.role == "main"].to_numpy()
    wd = runs.weight_decay.to_numpy()
    i, j = np.triu_indices(len(main), 1)
    a, b = main[i], main[j]
    between = D[a, b][wd[a] != wd[b]].mean()
    assert ev["between"] == pytest.approx(between)
    original = runs.index[(runs.role == "main") & (runs.weight_decay == 1.0) & (runs.seed == 0)][0]
    to_original = D[original, runs.index[runs.role == "perturbed"]]
    assert ev["pert"] == pytest.approx(to_original.mean())       # 0.005 * (1+…+5) / 5
    assert ev["pert_high"] == pytest.approx(mean_ci(to_original)[2])
    assert ev.p_value == pytest.approx(1 / 501)                  # every permutation is worse


# --------------------------------------------------------------------------------------- C15

def c15_tables(detectors: dict, grok=lambda wd, fr, s: wd > 0 and fr >= 0.55):
    """36 runs (wd 0/1/2 × fraction 0.4/0.55/0.7 × seeds 0–3); ``detectors``: name ->
    (signal, fire(wd, fraction, seed, truth) -> step or None)."""
    runs, fires = [], []
    for wd in (0.0, 1.0, 2.0):
        for fr in (0.4, 0.55, 0.7):
            for s in range(4):
                key = f"wd{wd}f{fr}s{s}"
                truth = 1000.0 if grok(wd, fr, s) else np.nan
                runs.append((key, wd, fr, s, truth))
                for name, (signal, fire) in detectors.items():
                    step = fire(wd, fr, s, truth)
                    fires.append((name, signal, key, np.nan if step is None else float(step)))
    return {"runs": pd.DataFrame(runs, columns=["run", "weight_decay", "fraction", "seed",
                                                "truth"]),
            "fires": pd.DataFrame(fires, columns=["detector", "signal", "run", "fire"])}


GOOD = ("training", lambda wd, fr, s, t: 500 if np.isfinite(t) else None)
WEIGHT_DECAY = ("training", lambda wd, fr, s, t: 100 if wd > 0 else None)
YARD = ("held-out", lambda wd, fr, s, t: 900 if np.isfinite(t) else None)


def test_c15_specific_training_detector_is_supported():
    t = c15_tables({"good": GOOD, "Σw²-like": WEIGHT_DECAY, ch10.YARDSTICK: YARD})
    rec = claims.evaluate("C15", t)
    assert rec.verdict == "supported" and rec.null_passes is False
    assert "chosen on even seeds: good" in rec.effect
    assert rec.previous[0]["verdict"] == "supported"


def test_c15_weight_decay_detector_is_not_supported_and_v1_is_not_testable():
    # the book's case: the training-side detector fires in every weight-decayed run, and only
    # wd 1 at fraction 0.4 never groks (4 of 24 weight-decayed runs)
    t = c15_tables({"Σw²-like": WEIGHT_DECAY, ch10.YARDSTICK: YARD},
                   grok=lambda wd, fr, s: wd > 0 and not (wd == 1 and fr == 0.4))
    rec = claims.evaluate("C15", t)
    assert rec.verdict == "not supported" and "recognises weight decay" in rec.why
    assert rec.previous[0]["verdict"] == "not testable"          # v1's null passes v1
    assert rec.previous[0]["null_passes"] is True


def test_c15_null_tables_are_not_supported():
    t = c15_tables({"good": GOOD, ch10.YARDSTICK: YARD})
    null = ch10.null_tables(t)
    assert claims.evaluate("C15", null).verdict == "not supported"
    kept = null["runs"][null["runs"].weight_decay == 0]
    assert kept.truth.isna().all()                               # wd 0 keeps its labels


def test_c15_borderline_one_false_positive_is_partly_supported():
    # fires in one of the 4 odd-seed weight-decayed runs that never grok: rate 0.25 < 0.5, but
    # the Wilson upper bound of 1/4 is 0.70
    fire = ("training", lambda wd, fr, s, t: 500 if np.isfinite(t) or
            (wd == 1.0 and fr == 0.4 and s == 1) else None)
    rec = claims.evaluate("C15", c15_tables({"good": fire}))
    assert rec.verdict == "partly supported" and "not with confidence" in rec.why


def test_c15_too_few_controls_is_not_testable_and_max_fpr_flips_it():
    # only wd 1 × fraction 0.4 never groks: 2 odd-seed controls, 0/2 has Wilson upper 0.66
    few = c15_tables({"good": GOOD}, grok=lambda wd, fr, s: wd > 0 and not (wd == 1 and fr == 0.4))
    rec = claims.evaluate("C15", few)
    assert rec.verdict == "not testable" and "resolution" in rec.why
    # 4 controls: 0/4 has upper 0.49 < 0.5, but at max_fpr = 0.33 it no longer is
    full = claims.evaluate("C15", c15_tables({"good": GOOD}))
    assert full.verdict == "supported"
    assert "max_fpr = 0.33 (rule: 0.5) → not testable" in full.flips


def test_c15_held_out_detector_only_is_partly_supported():
    rec = claims.evaluate("C15", c15_tables({"held-out good": ("held-out", GOOD[1])}))
    assert rec.verdict == "partly supported" and "held-out split" in rec.why


def test_c15_measure_matches_a_hand_computation():
    fire = ("training", lambda wd, fr, s, t: 500 if np.isfinite(t) and s != 3 or
            (wd == 1.0 and fr == 0.4 and s == 1) else None)
    ev = ch10.measure_v2(c15_tables({"good": fire}))
    # odd seeds: grokkers wd 1/2 × fr 0.55/0.7 × seeds 1, 3 = 8; seed 3 misses -> 4/8
    assert ev["recall"] == pytest.approx(0.5)
    assert ev["recall_low"] == pytest.approx(wilson_ci(4, 8)[1])
    assert ev["fp_wd"] == 1 and ev["n_neg_wd"] == 4
    assert ev["fpr_wd_high"] == pytest.approx(wilson_ci(1, 4)[2])
    assert ev["lead"] == pytest.approx(500.0)
    assert ev.p_value == pytest.approx(stats.fisher_exact([[4, 4], [1, 3]],
                                                          alternative="greater")[1])


# --------------------------------------------------------------------------------------- C16

SETS = {ch11.BASELINE: ["loss"], ch11.DIAGNOSTICS: ["d1"], ch11.BOTH: ["d1", "loss"]}


def c16_features(signal=3.0, loss_signal=0.0, success=None, seed=0):
    """12 settings (m 1–4 × 3 optimizers) × 4 seeds at fractions 0.1 and 0.15; outcome shared by
    a setting; ``d1`` = signal × outcome + noise, ``loss`` = −loss_signal × outcome + noise."""
    rng = np.random.default_rng(seed)
    outcome = {(m, o): (m + o) % 2 == 0 for m in range(1, 5) for o in range(3)} \
        if success is None else success
    rows = []
    for fraction in (0.1, 0.15):
        for (m, o), ok in outcome.items():
            for s in range(4):
                rows.append({"key": f"{m}-{o}-{s}", "m": m, "optimizer": f"opt{o}", "seed": s,
                             "fraction": fraction, "success": bool(ok),
                             "final_accuracy": 0.95 if ok else 0.3,
                             "d1": signal * ok + rng.normal(),
                             "loss": -loss_signal * ok + rng.normal()})
    return pd.DataFrame(rows)


def c16_tables(n_perm=50, bootstrap=200, **kw):
    return ch11.tables_from_features(c16_features(**kw), n_perm=n_perm, bootstrap=bootstrap,
                                     sets=SETS)


def test_c16_informative_diagnostics_beyond_the_loss_are_supported():
    rec = claims.evaluate("C16", c16_tables())
    assert rec.verdict == "supported" and rec.null_passes is False


def test_c16_noise_features_are_not_supported():
    assert claims.evaluate("C16", c16_tables(signal=0.0)).verdict == "not supported"


def test_c16_null_tables_are_the_null():
    t = c16_tables()
    assert claims.evaluate("C16", ch11.null_tables(t)).verdict == "not supported"


def test_c16_diagnostics_no_better_than_an_informative_loss_are_partly_supported():
    rec = claims.evaluate("C16", c16_tables(signal=3.0, loss_signal=3.0))
    assert rec.verdict == "partly supported"


def test_c16_p_just_under_alpha_flips_at_the_low_end_of_its_range():
    rec = claims.evaluate("C16", c16_tables())          # p = 1/51 ≈ 0.0196
    assert rec.p_value == pytest.approx(1 / 51)
    # at alpha 0.01 the 50 permutations cannot resolve it (smallest p 1/51 ≥ 0.01)
    assert rec.flips == ["alpha = 0.01 (rule: 0.05) → not testable"]


def test_c16_resolution_and_contrast_limits_are_not_testable():
    assert claims.evaluate("C16", c16_tables(n_perm=10)).verdict == "not testable"
    everyone = {(m, o): True for m in range(1, 5) for o in range(3)}
    assert claims.evaluate("C16", c16_tables(success=everyone)).verdict == "not testable"


def test_c16_replays_the_chapter_cv_and_measures_by_hand():
    features = c16_features(signal=1.0)
    scores, _ = Q.cross_validate(features, SETS, bootstrap=200, permutations=30)
    t = ch11.tables_from_features(features, n_perm=30, bootstrap=200, sets=SETS)
    ev = ch11.measure(t)
    row = scores[(scores.fraction == 0.15) & (scores.features == ch11.DIAGNOSTICS)].iloc[0]
    assert ev["p"] == pytest.approx(row["AUC p"])                  # the chapter's p
    both = scores[(scores.fraction == 0.15) & (scores.features == ch11.BOTH)].iloc[0]
    assert ev["delta_low_runs"] == pytest.approx(both["ΔAUC low"])  # v1: bootstrap over runs
    # AUC by hand (Mann–Whitney) on the leave-one-setting-out predictions
    part = features[features.fraction == 0.15].reset_index(drop=True)
    groups = part[["m", "optimizer"]].astype(str).agg("/".join, axis=1).to_numpy()
    prob = Q.out_of_fold(part[["d1"]].to_numpy(float), part.success.to_numpy(bool),
                         part.final_accuracy.to_numpy(float), groups)[0]
    y = part.success.to_numpy(bool)
    u = stats.mannwhitneyu(prob[y], prob[~y]).statistic
    assert ev["auc"] == pytest.approx(u / (y.sum() * (~y).sum()))
    assert ev["p"] == pytest.approx((1 + np.sum(t["null_auc"] >= ev["auc"])) / 31)


# ------------------------------------------------------------ earlier rule versions, directly

def evidence(**values):
    return claims.Evidence(values=values, effect="", ci="")


def test_c14_v1_and_v2_read_different_stability_intervals():
    base = dict(p_whole=0.001, p_window=0.001, ratio_low_whole=2.0, ratio_low_window=1.5,
                between=0.2, n_perturbed=5.0)
    # pairs among the family look stable, the distances to the unperturbed run do not
    ev = evidence(**base, pert_pairs_high=0.1, pert_high=0.25, pert=0.2)
    th = ch09.RULE_V2.thresholds
    assert ch09.decide_v1(ev, th).verdict == "supported"
    assert ch09.decide_v2(ev, th).verdict == "partly supported"
    one = evidence(**{**base, "n_perturbed": 1.0}, pert_pairs_high=0.1, pert_high=np.nan,
                   pert=0.1)
    assert ch09.decide_v2(one, th).verdict == "not testable"
    # p just under alpha: alpha 0.01 flips v1 too
    edge = evidence(**{**base, "p_whole": 0.02}, pert_pairs_high=0.1, pert_high=0.1, pert=0.05)
    assert ch09.decide_v1(edge, th).verdict == "supported"
    assert ch09.decide_v1(edge, {**th, "alpha": 0.01}).verdict == "not supported"


def test_c15_v1_thresholds_flip_its_verdict():
    ev = evidence(**{"d|precision_low": 0.55, "d|recall_low": 0.8, "d|recall": 1.0,
                     "d|lead": 300.0, "d|fpr_wd": 0.2, "d|training": 1.0})
    th = ch10.RULE_V1.thresholds
    assert ch10.decide_v1(ev, th).verdict == "supported"
    assert ch10.decide_v1(ev, {**th, "precision_low": 0.6}).verdict == "not supported"
    assert ch10.decide_v1(ev, {**th, "max_fpr": 0.2}).verdict == "partly supported"


def test_c16_v1_uses_runs_and_v2_settings():
    ev = evidence(successes=20.0, n=48.0, n_perm=200.0, p=0.01, auc=0.8, delta_low=-0.01,
                  delta_low_runs=0.04)
    th = ch11.RULE_V2.thresholds
    assert ch11.decide_v1(ev, th).verdict == "supported"
    assert ch11.decide_v2(ev, th).verdict == "partly supported"
    assert ch11.decide_v2(evidence(**{**ev.values, "p": 0.124}), th).verdict == "not supported"


# ------------------------------------------------------------------------------ prose
def _rec(verdict="supported", **kw):
    return SimpleNamespace(verdict=verdict, why=kw.pop("why", "it held"), values=kw, effect="",
                           ci="", previous=[])


def c8_prose_inputs(mul_rank, add_rank, acc):
    ranks, accuracy, diff = [], [], []
    for seed, off in enumerate((-0.1, 0.0, 0.1)):
        for arm, rank in (("mul mod 7", mul_rank), ("add mod 7", add_rank)):
            ranks.append((arm, seed, "real", rank + off))
            accuracy.append((arm, seed, 1, acc))
        for matrix, real in (("W_Q", 0.2), ("W_V", 0.6), ("all attention", 0.1)):
            diff.append((seed, matrix, real + off, 0.03))
    composite = pd.Series({"most frequent": 0, "P(most frequent label)": 0.31416,
                           "entropy (bits)": 1.2345, "max entropy": 3.0}, dtype=object)
    return ({"ranks": pd.DataFrame(ranks, columns=["arm", "seed", "source", "rank"])},
            composite, pd.DataFrame(accuracy, columns=["arm", "seed", "m", "value"]),
            pd.DataFrame(diff, columns=["seed", "matrix", "real: mul − add", "null: mul − add"]))


def test_c13_summary_wording_follows_the_numbers():
    tables, composite, accuracy, diff = c8_prose_inputs(5.0, 3.5, 0.95)
    rec = _rec(gap=1.5, gap_low=1.2, gap_high=1.8, mul=5.0, add=3.5)
    text = ch08.summary(rec, tables, composite, accuracy, diff)
    assert "a constant guess of 0 is right with probability 0.314, and the label carries 1.23 of 3 bits" in text
    assert "both tasks are learned." in text
    assert "(C13: supported)" in text and "+1.50 [+1.20, +1.80]" in text
    assert "higher-dimensional, as the paper says (both means lie inside" in text
    assert "Largest per-type gap: W_V +0.60 [" in text      # the widest type, signed
    assert "all attention is +0.03 [+0.03, +0.03]" in text

    tables, composite, accuracy, diff = c8_prose_inputs(3.0, 3.0, 0.5)
    rec = _rec("not supported", gap=-0.05, gap_low=-0.3, gap_high=0.2, mul=3.0, add=3.0)
    other = ch08.summary(rec, tables, composite, accuracy, diff)
    assert "not both are learned at this budget" in other
    assert "No difference is detectable at 3 seeds; the point estimate points against the " \
        "paper; the paper's bands (4–6 vs 3–4) are not reproduced." in other


def c9_prose_inputs(p_whole=0.002):
    grok = pd.DataFrame({"weight decay": [0.0, 1.0], "grokked": ["0/5", "5/5"],
                         "grokked (held-out acc ≥ 99%) at": ["—", "3141 [3000, 3282]"]})
    sep = pd.DataFrame({"method": ["TSVD", "RRR", "RRR"],
                        "window": ["whole run", "whole run", "first 900 steps"],
                        "between / within": ["x", "2.72 [1.50, 3.90]", "1.10 [0.90, 1.30]"],
                        "1-NN accuracy": ["y", "0.93 (chance 0.33)", "z"],
                        "_p": [0.5, p_whole, 0.2], "_pert": [9.0, 0.0123, 0.0],
                        "_seed": [9.0, 0.4567, 0.0]})
    return grok, sep


def test_c14_summary_wording_follows_the_numbers():
    grok, sep = c9_prose_inputs()
    rec = _rec(pert=0.0271)
    text = ch09.summary(rec, grok, sep, 3.14, 7, 10, [0.001, 0.003], 76, 40, 100, 5000, 900)
    assert "wd 0: 0/5 seeds grokked, at step —; wd 1: 5/5 seeds grokked, at step 3141" in text
    assert "(resolution 100 steps, cap 5000)" in text
    assert "moves 3.1× as much" in text and "training probes saturate" in text
    assert "in 7 of 10 runs" in text and "lie 0.0020 apart against 0.457 between" in text
    says(text, "more Hankel coordinates (76) than snapshot pairs (at most 40)",
               "2.72 [1.50, 3.90] on whole runs (p = 0.002)",
               "in the first 900 steps (p = 0.200)",
               "at 0.012 from each other (and 0.027 from the unperturbed run)")

    grok, sep = c9_prose_inputs(p_whole=0.0001)
    other = ch09.summary(_rec("partly supported", pert=0.0), grok, sep, 1.5, 7, 10,
                         [0.001], 20, 40, 100, 5000, 900)
    assert "both probe sets keep moving at this scale." in other
    assert "between seeds." in other and "Hankel" not in other
    assert "(C14 (partly supported)" not in other and "**C14 (partly supported).**" in other
    assert "(p < 0.001)" in other


def c10_prose_inputs():
    comparison = pd.DataFrame({
        "detector": ["Σw² drop", "framework's score", "held-out accuracy ≥ 0.5"],
        "signal": ["training", "training", "held-out"],
        "TP / FP / miss / TN": ["9 / 3 / 1 / 11", "8 / 13 / 2 / 1", "10 / 0 / 0 / 14"],
        "precision": ["0.75 [0.5, 0.9]", "0.38 [0.2, 0.6]", "1"],
        "recall": ["0.90 [0.6, 1.0]", "0.80 [0.5, 0.9]", "1"],
        "median lead (steps)": ["314", "50", "271"], "lead / grok step": ["0.1", "0", "0"]})
    within = pd.DataFrame({"detector": ["Σw² drop"], "false-positive rate": ["0.60 [0.3, 0.8]"]})
    grad = pd.DataFrame({"group": ["attention", "attention", "mlp"],
                         "value": [0.0031416, 2.7182, 99.0]})
    v1 = SimpleNamespace(values={"Σw² drop|precision_low": 0.6, "Σw² drop|recall_low": 0.6,
                                 "Σw² drop|lead": 314.0, "Σw² drop|training": 1.0,
                                 "Σw² drop|fpr_wd": 0.6, "Σw² drop|recall": 0.9})
    return v1, comparison, within, grad


def test_c15_summary_wording_follows_the_numbers():
    v1, comparison, within, grad = c10_prose_inputs()
    rec = SimpleNamespace(verdict="not supported", why="its recall on the odd seeds is low",
                          effect="Σw² drop, chosen on the even seeds", values={},
                          previous=[{"version": 1, "null_passes": True}])
    text = ch10.summary(rec, v1, comparison, within, grad, 24, 10)
    says(text, "gradient norm spans 0.0031–2.7 over training",
               "fires in 13 of the 14 runs that never grok",
               "the best detector is Σw² drop (training signal) with precision 0.75")
    assert "median lead 314 steps" in text and "a share 0.60 [0.3, 0.8]" in text
    says(text, "v1's own null passes it",
               "the detector is σw² drop, chosen on the even seeds. Its recall",
               "passes 0.5 a median 271 steps before 0.99")
    rec.previous = [{"version": 1, "null_passes": False}]
    assert "v1's own null does not pass it" in ch10.summary(rec, v1, comparison, within, grad,
                                                           24, 10)


def c11_trends(block_low):
    rows = []
    for axis in ("width (per doubling)", "depth (per layer)"):
        for measure in ("block_r90", "joint_r90"):
            for source in ("real", "random walk"):
                rows.append((axis, measure, source, 0.31416, block_low, 0.9))
    return pd.DataFrame(rows, columns=["axis", "measure", "source", "slope", "low", "high"])


def c11_runs(null_offset):
    width, depth = [], []
    for seed in range(3):
        for w in (32, 128):
            width.append(("real", w, seed, 3.0 + seed * 0.1, 4.0))
            width.append(("random walk", w, seed, 3.0 + seed * 0.1 + null_offset, 5.0))
        for layers in (1, 4):
            depth.append(("real", layers, seed, 3.0, 6.5 + seed * 0.1))
    cols = ["source", "width", "seed", "block_r90", "joint_r90"]
    return (pd.DataFrame(width, columns=cols),
            pd.DataFrame(depth, columns=["source", "layers", "seed", "block_r90", "joint_r90"]))


def test_c16_answer_1_wording_follows_the_numbers():
    width, depth = c11_runs(null_offset=2.0)
    text = ch11.answer_1(c11_trends(0.1), width, depth, 11)
    assert "grows (+0.31 [+0.10, +0.90] per doubling of d) with width" in text
    assert "cap 10 with 11 snapshots" in text and "at 4 layers: 6.60 [" in text
    says(text, "width range of 4×, where a block's parameter count grows 16×",
               "below its random-walk null at every width", "grows about logarithmically")
    width, depth = c11_runs(null_offset=0.0)
    other = ch11.answer_1(c11_trends(-0.2), width, depth, 11)
    assert "shows no trend (+0.31 [-0.20, +0.90] per doubling of d)" in other
    assert "not always below its random-walk null: bounded in this range." in other


def c11_scores(successes=6):
    rows = []
    for folds in ("unseen setting", "unseen seed"):
        for name, auc in (("training loss (baseline)", 0.61), ("diagnostics", 0.7314),
                          ("diagnostics + loss", 0.75)):
            rows.append({"folds": folds, "fraction": 0.15, "features": name, "AUC": auc,
                         "AUC low": auc - 0.1, "AUC high": auc + 0.1, "AUC p": 0.04,
                         "AUC null 95%": 0.66, "R²": 0.123, "ΔAUC low": -0.05,
                         "successes": successes, "n": 12})
    single = pd.DataFrame({"fraction": [0.15, 0.15], "features": ["attn entropy", "r90"],
                           "AUC": [0.58, 0.81]})
    head = pd.DataFrame({"m": [1, 1, 2, 2], "optimizer": ["adam"] * 4,
                         "success": [1, 0, 1, 1]})
    return pd.DataFrame(rows), single, head


def test_c16_answer_2_wording_follows_the_numbers():
    scores, single, head = c11_scores()
    c16 = SimpleNamespace(values={"auc": 0.7314, "p": 0.01, "delta": 0.14, "delta_low": 0.02},
                          ci="diagnostics [0.55, 0.88]; ΔAUC [+0.02, +0.30] (cluster bootstrap)")
    text = ch11.answer_2(c16, scores, single, head, 0.15)
    assert "At 15% of training (12 runs, 6 generalized)" in text
    assert "diagnostics alone reach 0.73 ([0.55, 0.88] resampling whole settings; " \
        "setting-permutation p = 0.010, null 95%: 0.66)" in text
    says(text, "change the AUC by +0.14 [+0.02, +0.30] (over settings)",
               "best single feature is r90 (AUC 0.81; one of 2 tried",
               "1 of 2 settings had seeds that disagreed", "R² for the final accuracy: loss 0.12")
    assert text.endswith("Early diagnostics predict success, and beyond what the loss says.")
    c16.values = {**c16.values, "p": 0.3}
    assert ch11.answer_2(c16, scores, single, head, 0.15).endswith(
        "do not predict success above the permutation null.")
    scores, single, head = c11_scores(successes=12)
    assert "Not testable at this preset: 12 of 12 runs generalized." in \
        ch11.answer_2(c16, scores, single, head, 0.15)


def c11_overlaps(cur, ctl):
    rows = []
    for view in ("final", "whole trajectory"):
        for seed, off in enumerate((-1e-4, 0.0, 1e-4)):
            rows += [(view, "mixed vs curriculum (same seed)", f"m s{seed}", cur + off),
                     (view, "control: mixed vs m=4 only (same seed)", f"c s{seed}", ctl + off),
                     (view, "seeds within mixed", f"s{seed}", 2.6e-4),
                     (view, "curriculum vs no reset (same seed)", f"r s{seed}", 0.31416)]
    return pd.DataFrame(rows, columns=["view", "comparison", "pair", "overlap"])


def test_c16_answer_3_wording_follows_the_numbers():
    text = ch11.answer_3(c11_overlaps(2.5e-3, 2.5e-3), "m=4 only", 2.5e-4, (3000, 4), 4000,
                         3500)
    assert text.startswith("**Answer 3.** No shared attractor in weight space.")
    assert "overlap 2.50e-03 (10× random)" in text and "overlap 0.31 at the end" in text
    says(text, "paired difference +0.0e+00 [+0.0e+00, +0.0e+00]",
               "not detectably larger than what the shared initialisation",
               "starts at step 3000 of 4000, so its final subspace is that stage's")
    other = ch11.answer_3(c11_overlaps(0.6, 2.5e-3), "m=4 only", 2.5e-4, (3800, 4), 4000,
                          3500)
    assert other.startswith("**Answer 3.** Yes: the same final subspace.")
    assert "mixed and curriculum runs reach ≥ 0.5." in other
    assert "spans its last two stages" in other


def test_c16_answer_4_wording_follows_the_numbers():
    c13 = SimpleNamespace(verdict="not supported", effect="mul − add +0.05", ci="[-0.2, +0.3]")
    gap = pd.DataFrame({"width": [32, 32, 32, 64, 64, 64], "seed": [0, 1, 2] * 2,
                        "real": [0.3, 0.31416, 0.33, -0.1, 0.0, 0.1]})
    trend = {"slope": -0.2718, "low": -0.5, "high": 0.1}
    text = ch11.answer_4(c13, gap, trend)
    assert text.startswith("**Answer 4.** Chapter 8 finds C13 *not supported* "
                           "(mul − add +0.05, CI [-0.2, +0.3]). Across widths 32, 64,")
    says(text, "slope of -0.27 [-0.50, +0.10] per doubling",
               "The gap's CI lies above 0 at width(s) 32.",
               f"is {ch11.fmt_ci(mean_ci(gap.groupby('seed').real.mean()), signed=True)}")
    other = ch11.answer_4(c13, gap.assign(real=gap.real - 0.5), trend)
    assert "At no width is the gap's CI above 0." in other
    assert "does not hold at this scale either." in other
