"""C13–C16 (chapters 8–11) on hand-made tables: each rule's supportive, null, borderline and
threshold-mutation cases, measure() against hand computations, and the notebooks' parameter
defaults against the loaders'."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import claims
from modadd import openq as Q
from modadd.claims import ch08, ch09, ch10, ch11
from modadd.stats import mean_ci, wilson_ci

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_defaults(stem: str) -> dict:
    path = next(NOTEBOOKS.glob(f"{stem}_*.py"))
    cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
    return {n.target.id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body
            if isinstance(n, ast.AnnAssign)}


def loader_defaults(module) -> dict:
    return {k: p.default for k, p in inspect.signature(module.load.__wrapped__).parameters.items()
            if k not in ("variant",)}


@pytest.mark.parametrize("stem, module, names", [
    ("08", ch08, {"preset", "seeds", "null_draws"}),
    ("09", ch09, {"preset", "seeds", "perturbations", "n_delays", "rank", "ridge", "n_perm"}),
    ("10", ch10, {"seeds"}),
    ("11", ch11, {"preset", "success", "n_perm", "bootstrap"})])
def test_notebook_defaults_match_the_loader(stem, module, names):
    nb, loader = notebook_defaults(stem), loader_defaults(module)
    assert names <= set(nb) and names <= set(loader)
    for name in names:
        assert nb[name] == loader[name], name
    if stem == "10":     # chapter 10 calls the book's scale "detect"
        assert ch10.grid_preset(loader["preset"]) == nb["preset"] == "detect"


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
