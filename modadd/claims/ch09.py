"""Chapter 9's claim C14: "DMD spectra of training fingerprints characterize grokking runs: they
separate weight decays and are stable across seeds and 1e-3 init perturbations" (the fingerprint
study: grokking runs with fingerprint recording and DMD-RRR spectra).

Tables (``load`` / :func:`tables_from_spectra`):

- ``runs`` — one row per run, in the chapter's order (columns ``key, weight_decay, seed,
  perturbation, role``; ``role`` is ``"main"`` or ``"perturbed"``; perturbation -1: none);
- ``distances`` — ``{"whole run": D, "common window": D}``: the RRR-DMD spectral
  (Wasserstein-1) distance matrices between the runs of ``runs``, on whole runs and on the
  records up to the shortest run's last step (the control for run length);
- ``tsvd`` — the same for TSVD DMD (an alternative analysis);
- ``n_perm`` — label permutations of the separation test; ``common`` — the window's last step.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

from ..report import fmt_ci, interval, number, pvalue
from ..stats import clip_interval, mean_ci
from .core import ClaimSpec, Decision, Evidence, Tables, declared, finite

WINDOWS = ("whole run", "common window")


@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """C14's tables at grokking preset ``preset`` from chapter 9's cached runs and spectra;
    ``given``: chapter 9's registry settings to change."""
    import modadd
    from .. import grokking as G
    from .. import registry
    if variant is not None:
        raise ValueError(f"variant: C14 has no variants, got {variant!r}")
    s = registry.settings("ch09", preset, **given)
    roles = s.runs()
    runs = modadd.load_or_train_many(roles["grokking"] + roles["grokking perturbed"],
                                     progress=False)
    labels = G.run_labels(runs)
    labels["role"] = np.where(labels.perturbation >= 0, "perturbed", "main")
    common = int(labels.last_step.min())
    eig, _ = G.spectra_tables(runs, s.n_delays, s.rank, s.ridge)
    eig_window, _ = G.spectra_tables(runs, s.n_delays, s.rank, s.ridge, until=common)
    return tables_from_spectra(labels, eig, eig_window, common, s.n_perm)


def run_order(labels: pd.DataFrame) -> pd.DataFrame:
    """The chapter's run order: role, weight decay, seed, perturbation."""
    return labels.sort_values(["role", "weight_decay", "seed", "perturbation"]) \
        .reset_index(drop=True)


def tables_from_spectra(labels: pd.DataFrame, eig: pd.DataFrame, eig_window: pd.DataFrame,
                        common: int, n_perm: int) -> Tables:
    """C14's tables from the run labels (with ``role``) and both windows' eigenvalue tables
    (``G.spectra_tables``), as chapter 9 has them."""
    from .. import grokking as G
    order = run_order(labels)[["key", "weight_decay", "seed", "perturbation", "role"]]
    dist = {m: {w: G.distance_matrix(e, order.key, m) for w, e in zip(WINDOWS, (eig, eig_window))}
            for m in ("rrr", "tsvd")}
    return {"runs": order, "distances": dist["rrr"], "tsvd": dist["tsvd"],
            "n_perm": int(n_perm), "common": int(common)}


_MEMO: dict = {}


def _window(runs: pd.DataFrame, D: np.ndarray, n_perm: int) -> dict:
    """One window's statistics (memoised on the matrix and labels: the record measures the
    same tables under every rule version)."""
    key = (np.asarray(D, float).tobytes(), tuple(runs.weight_decay), tuple(runs.seed),
           tuple(runs.role), int(n_perm))
    if key not in _MEMO:
        if len(_MEMO) > 64:
            _MEMO.clear()
        _MEMO[key] = _window_stats(runs, np.asarray(D, float), n_perm)
    return _MEMO[key]


def _window_stats(runs: pd.DataFrame, D: np.ndarray, n_perm: int) -> dict:
    from .. import grokking as G
    main = runs.index[runs.role == "main"].to_numpy()
    s = G.separation(D[np.ix_(main, main)], runs.weight_decay.to_numpy()[main],
                     runs.seed.to_numpy()[main], n_perm=n_perm)
    family = runs.index[(runs.weight_decay == 1.0) & (runs.seed == 0)].to_numpy()
    original = runs.index[(runs.weight_decay == 1.0) & (runs.seed == 0)
                          & (runs.role == "main")].to_numpy()
    perturbed = runs.index[runs.role == "perturbed"].to_numpy()
    seed_pairs = runs.index[(runs.role == "main") & (runs.weight_decay == 1.0)].to_numpy()
    pairs = G.pair_distances(D, family) if len(family) > 1 else np.array([np.nan])
    to_original = (D[original[0], perturbed] if len(original) and len(perturbed)
                   else np.array([np.nan]))
    return {**s, "pairs": clip_interval(mean_ci(pairs), (0.0, np.inf)),
            "to_original": clip_interval(mean_ci(to_original), (0.0, np.inf)),
            "seed_pairs": float(np.mean(G.pair_distances(D, seed_pairs)))
            if len(seed_pairs) > 1 else np.nan, "n_perturbed": len(perturbed)}


def measure(tables: Tables) -> Evidence:
    """Per window: between/within-weight-decay distance ratio with its bootstrap CI over seeds
    and the label-permutation p; the perturbed runs' distances (to the unperturbed run: one
    value per perturbation; among all pairs of the family: v1's statistic) against the
    between-weight-decay mean.  p: the larger of the two windows' permutation p-values (both
    must separate: an intersection–union test)."""
    runs = tables["runs"].reset_index(drop=True)
    w = {name: _window(runs, tables["distances"][name], tables["n_perm"]) for name in WINDOWS}
    whole, window = w["whole run"], w["common window"]
    ratio = {n: (s["ratio"], *s["ratio CI"]) for n, s in w.items()}
    return Evidence(
        values={"p_whole": whole["p (permutation)"], "p_window": window["p (permutation)"],
                "ratio_low_whole": ratio["whole run"][1],
                "ratio_low_window": ratio["common window"][1],
                "between": whole["between"], "pert_pairs_high": whole["pairs"][2],
                "pert_high": whole["to_original"][2], "pert": whole["to_original"][0],
                "n_perturbed": float(whole["n_perturbed"])},
        effect=f"RRR between/within-wd distance {number(ratio['whole run'][0])} (whole runs), "
               f"{number(ratio['common window'][0])} (first {tables['common']} steps); "
               f"perturbed runs {number(whole['to_original'][0], 3)} from the unperturbed run "
               f"vs seed pairs {number(whole['seed_pairs'], 3)}",
        ci=f"ratio {interval(ratio['whole run']) or '—'} / "
           f"{interval(ratio['common window']) or '—'} (bootstrap over seeds); "
           f"{pvalue(whole['p (permutation)'])} / {pvalue(window['p (permutation)'])}",
        controls={"weight-decay label permutation (whole run)": pvalue(whole["p (permutation)"]),
                  f"common-length window (first {tables['common']} steps)":
                      pvalue(window["p (permutation)"]),
                  "between-wd mean distance (whole run)": number(whole["between"], 3),
                  "perturbed to unperturbed (over perturbations)":
                      fmt_ci(whole["to_original"], 3),
                  "all pairs of the perturbation family (v1)": fmt_ci(whole["pairs"], 3),
                  "1-NN accuracy": f"{number(whole['1-NN accuracy'])} (chance "
                                   f"{number(whole['chance'])})"},
        p_value=max(whole["p (permutation)"], window["p (permutation)"]))


def null_tables(tables: Tables) -> Tables:
    """The weight-decay labels of the main runs reassigned across conditions: the k-th seed of
    the g-th weight decay gets the label of weight decay g + k (cyclically), so every new label
    holds one run per seed, drawn from all the original weight decays as evenly as possible.
    The spectra stay; their labels no longer mean anything."""
    runs = tables["runs"].reset_index(drop=True).copy()
    main = runs[runs.role == "main"]
    wds = sorted(main.weight_decay.unique())
    seeds = sorted(main.seed.unique())
    new = {i: wds[(wds.index(r.weight_decay) + seeds.index(r.seed)) % len(wds)]
           for i, r in main.iterrows()}
    runs.loc[list(new), "weight_decay"] = list(new.values())
    return {**tables, "runs": runs}


def alternatives(tables: Tables) -> dict:
    """TSVD DMD (the fork's estimator) in place of RRR."""
    return {"TSVD DMD": {**tables, "distances": tables["tsvd"]}} if "tsvd" in tables else {}


def _separates(ev: Evidence, window: str, th) -> tuple[bool, str]:
    p, low = ev[f"p_{window}"], ev[f"ratio_low_{window}"]
    ok = bool(p < th["alpha"] and low > th["min_ratio"])
    return ok, f"{window}: p = {p:.4f}, ratio CI low {low:.2f}"


def _decide(ev: Evidence, th, stable_key: str, stable_what: str) -> Decision:
    whole, whole_text = _separates(ev, "whole", th)
    window, window_text = _separates(ev, "window", th)
    high = ev[stable_key]
    stable = bool(finite(high) and high < ev["between"])
    stability = (f"{stable_what} upper CI {high:.3f} "
                 f"{'<' if stable else 'not below'} the between-wd mean {ev['between']:.3f}")
    need = f"(needs p < {th['alpha']:g} and ratio CI above {th['min_ratio']:g})"
    if whole and window and stable:
        return Decision("supported", f"weight decays separate in both windows {need} "
                                     f"({whole_text}; {window_text}) and {stability}")
    if whole:
        return Decision("partly supported", f"separation on whole runs ({whole_text}) but "
                        + ("not in the common window " + need + f" ({window_text})"
                           if not window else f"the perturbations are not stable: {stability}"))
    return Decision("not supported", f"weight decays do not separate on whole runs {need} "
                                     f"({whole_text})")


def decide_v1(ev: Evidence, th) -> Decision:
    return _decide(ev, th, "pert_pairs_high", "the mean distance over the perturbation "
                                              "family's pairs has")


def decide_v2(ev: Evidence, th) -> Decision:
    if not ev["n_perturbed"] >= 2:
        return Decision("not testable", f"{int(ev['n_perturbed'])} perturbed run(s): no interval "
                                        "over perturbations")
    return _decide(ev, th, "pert_high", "the perturbed runs' distance to the unperturbed run "
                                        "(over perturbations) has")


RULE_V1 = declared("C14", 1, __name__)
RULE_V2 = declared("C14", 2, __name__)

CLAIMS = (ClaimSpec(
    id="C14", claim="DMD spectra of training fingerprints characterize grokking runs: they "
                    "separate weight decays and are stable across seeds and 1e-3 init "
                    "perturbations",
    source="the fingerprint study", chapter="09", tables=("runs", "distances", "n_perm",
                                                          "common"),
    measure=measure, null_tables=null_tables, rule=RULE_V2, history=(RULE_V1,),
    alternatives=alternatives),)


# ---- prose

def summary(record, grok_table: pd.DataFrame, sep: pd.DataFrame, motion_ratio: float,
            rrr_wins: int, n_compared: int, tsvd_vs_rrr, states: int, max_pairs: int,
            snapshot_every: int, n_steps: int, common: int) -> str:
    """Chapter 9's "where we agree and disagree with the fingerprint study" list (Markdown) from
    the C14 record and the chapter's tables: ``grok_table`` (per weight decay: ``"weight decay"``,
    ``"grokked"``, ``"grokked (held-out acc ≥ 99%) at"``), ``sep`` (the separation rows: method,
    window, ``"between / within"``, ``"1-NN accuracy"``, ``_p``, ``_pert``, ``_seed``; RRR's
    whole-run row first), the held-out/training fingerprint ``motion_ratio``, the runs where
    RRR's one-step error ≤ TSVD's (``rrr_wins`` of ``n_compared``), the per-run TSVD-to-RRR
    spectral distances, the Hankel state size ``states`` against the most snapshot pairs of a
    run ``max_pairs``, the snapshot resolution, the step cap and the common window."""
    rrr = sep[sep.method == "RRR"].set_index("window")
    whole, window = rrr.iloc[0], rrr.iloc[1]
    grokking = "; ".join(f"wd {number(r['weight decay'], 6, 'g')}: {r['grokked']} seeds "
                         f"grokked, at step {r['grokked (held-out acc ≥ 99%) at']}"
                         for _, r in grok_table.iterrows())
    return "\n".join([
        f"- **Grokking.** {grokking} (resolution {snapshot_every} steps, cap {n_steps}).",
        f"- **Fingerprints.** After memorisation the held-out fingerprint moves "
        f"{number(motion_ratio, 1)}× as much as the training-probe fingerprint (std over time, "
        "section 3): "
        + ("training probes saturate, so the fork's training-split probes see little of "
           "grokking." if motion_ratio > 2 else "both probe sets keep moving at this scale."),
        f"- **TSVD vs RRR.** RRR's one-step error is at most TSVD's in {rrr_wins} of "
        f"{n_compared} runs. The two spectra of one run lie {number(np.mean(tsvd_vs_rrr), 4)} "
        f"apart against {number(whole['_seed'], 3)} between seeds"
        + (f": with more Hankel coordinates ({states}) than snapshot pairs (at most "
           f"{max_pairs}), least squares interpolates and both estimators compress the same "
           "map, so the fork's mislabelled estimator gives nearly RRR's eigenvalues here."
           if states > max_pairs else "."),
        f"- **C14 ({record.verdict}).** With RRR, between/within-wd distance "
        f"{whole['between / within']} on whole runs ({pvalue(whole['_p'])}), "
        f"{window['between / within']} in the first {common} steps ({pvalue(window['_p'])}); "
        f"1-NN recovers the weight decay with accuracy {whole['1-NN accuracy']}. Perturbed "
        f"copies of one run sit at {number(whole['_pert'], 3)} from each other (and "
        f"{number(record.values['pert'], 3)} from the unperturbed run) against "
        f"{number(whole['_seed'], 3)} between seeds at the same weight decay.",
    ])
