"""Chapter 4's claims on the readout attention (paper §4.2, Fig. 2):

- **C6** "attention entropy at the readout drops sharply ('bubbling'), smoothly";
- **C7** "bubble timing correlates with manifold stabilization".

Tables (``load`` / :func:`tables_from_metrics`): ``entropy`` — readout attention entropy per seed,
m, layer and evaluated step (columns ``seed, m, layer, step, value``; the snapshot spacing the
rules need is read from its steps); ``lock`` — chapter 3's lock-in step per seed and layer (median
over the layer's four attention matrices; columns ``seed, layer, lock_step``); ``T`` — the
sequence length (uniform causal attention at the readout has entropy ln T); ``n_steps`` — the
training budget.  Optional ``layers``: ``"last"`` (default: the paper's layer) or ``"all"``.

At ``variant=None`` both come from the dense-snapshot copies of the main runs
(``presets.dense_early``: snapshots and evaluations every 10 steps to step 1000 at the book
preset, identical training), the lock-in on their dense grid (chapter 3's
:func:`~modadd.claims.ch03.with_dense_lock_in`); variant :data:`REGULAR` gives the same runs at
their regular snapshots only (the spacing chapter 4 used before issue 22), so that only the
resolution differs.

Length: longer than ~400 lines because claims C6 and C7 at both snapshot resolutions (the dense
and the regular-only variant), their nulls and sentences; the two share the entropy and lock-in
tables, so they stay in one module.
"""
from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

from ..report import ci_relation, fmt_ci, interval, number, percent, pvalue
from ..stats import bounded_mean_ci, clip_interval, mean_ci, one_sided_p
from .ch03 import DENSE_GRID, REGULAR
from .core import ClaimSpec, Decision, Evidence, Tables, declared, finite

SMOOTH_FRACTION = 0.05   # chapter 4's `smooth_fraction`: abrupt if the 10-90% window <= 5% of training


# ------------------------------------------------------------------------------------ tables

def lock_in_null_draws(preset: str = "book") -> int:
    """The null draws of chapter 3's dense lock-in table at ``preset``: chapter 4 reads that
    cached table, so it asks with chapter 3's registry setting."""
    from .. import registry
    return registry.settings("ch03", preset).null_draws


@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """C6's and C7's tables at ``preset`` from the run store and chapter 3's cached lock-in table
    (trains only on a miss, never under ``MODADD_NO_TRAIN=1``); ``given``: chapter 4's registry
    settings to change."""
    import modadd
    from .. import manifold as MF
    from .. import registry
    if variant not in (None, REGULAR):
        raise ValueError(f"variant: must be None or {REGULAR!r}, got {variant!r}")
    roles = registry.settings("ch04", preset, **given).runs()
    cfg, dense = roles["main"][0], roles["dense snapshots"]
    runs = modadd.load_or_train_many(dense, progress=False)
    metrics = pd.concat([r.metrics.assign(seed=r.config.seed) for r in runs], ignore_index=True)
    grid = "regular" if variant == REGULAR else DENSE_GRID
    lock = dense_lock(MF.dense_lock_in_table(dense, null_draws=lock_in_null_draws(preset)), grid)
    if variant == REGULAR:
        metrics = on_regular_steps(metrics, cfg.train.snapshot_every, cfg.train.n_steps)
    return tables_from_metrics(metrics, lock, cfg.task.seq_len, cfg.train.n_steps)


def dense_lock(table: pd.DataFrame, grid: str = DENSE_GRID) -> pd.DataFrame:
    """The real trajectories' lock-in on ``grid`` of a
    :func:`modadd.manifold.dense_lock_in_table` (the rows :func:`tables_from_metrics` reads)."""
    return table[(table.grid == grid) & (table.source == "real")].reset_index(drop=True)


def on_regular_steps(metrics: pd.DataFrame, snapshot_every: int, n_steps: int) -> pd.DataFrame:
    """The rows of a dense-snapshot run's metrics at the regular snapshots (every
    ``snapshot_every`` steps and the last): what the same run records without the dense phase."""
    keep = (metrics.step % snapshot_every == 0) | (metrics.step == n_steps)
    return metrics[keep].reset_index(drop=True)


def tables_from_metrics(metrics: pd.DataFrame, lock: pd.DataFrame, T: int, n_steps: int
                        ) -> Tables:
    """C6's and C7's tables from tidy run metrics (with a ``seed`` column) and
    :func:`modadd.manifold.lock_in_table` (what chapter 4 passes in)."""
    entropy = metrics[metrics.metric == "entropy"][["seed", "m", "layer", "step", "value"]]
    real = lock[lock.source == "real"] if "source" in lock.columns else lock
    per_layer = real.groupby(["seed", "layer"], as_index=False)["lock_in"].median()
    per_layer["lock_step"] = per_layer.lock_in * n_steps
    return {"entropy": entropy.sort_values(["seed", "m", "layer", "step"]).reset_index(drop=True),
            "lock": per_layer[["seed", "layer", "lock_step"]],
            "T": int(T), "n_steps": int(n_steps)}


def transitions(entropy: pd.DataFrame) -> pd.DataFrame:
    """The 10-90% transition of every seed × m × layer entropy curve (see
    :func:`modadd.metrics.transition_window`), plus the snapshot spacing at its end
    (``spacing``: steps between the 90% snapshot and the one before it)."""
    from ..metrics import transition_window
    rows = []
    for (seed, m, layer), part in entropy.sort_values("step").groupby(["seed", "m", "layer"]):
        steps, values = part.step.to_numpy(float), part.value.to_numpy(float)
        out = transition_window(steps, values)
        spacing = np.nan
        if np.isfinite(out["end"]):
            i = int(np.searchsorted(steps, out["end"]))
            spacing = float(steps[i] - steps[i - 1]) if i > 0 else np.nan
        rows.append({"seed": seed, "m": m, "layer": layer, **out, "spacing": spacing})
    return pd.DataFrame(rows, columns=["seed", "m", "layer", "start", "mid", "end", "width",
                                       "rebound", "drop", "spacing"])


def _snapshot_spacing(entropy: pd.DataFrame, trans: pd.DataFrame) -> float:
    """The coarsest spacing of the evaluated steps up to the latest 90% point of ``trans`` (the
    grid the windows are measured on; a dense early grid gives its own, smaller, spacing)."""
    steps = np.unique(entropy.step.to_numpy(float))
    if steps.size < 2:
        return float("nan")
    ends = trans.end.dropna()
    upto = float(ends.max()) if len(ends) else float(steps[-1])
    upto = max(upto, float(steps[1]))
    gaps = np.diff(steps[steps <= upto])
    return float(gaps.max()) if gaps.size else float(np.diff(steps).max())


def _selected(tables: Tables, trans: pd.DataFrame, default: str = "last") -> pd.DataFrame:
    """The layers a claim analyses: ``tables["layers"]`` if given, else ``default``
    (``"last"``: the last layer only; ``"all"``: every layer)."""
    if tables.get("layers", default) == "all":
        return trans
    return trans[trans.layer == trans.layer.max()]


# ------------------------------------------------------------------------------------ C6

def measure_c6(tables: Tables) -> Evidence:
    """Per m: the drop of the chosen layer's readout entropy as a share of ln T (per seed, its
    t-CI over seeds kept in [0, 1]); the 10-90% window in steps (per seed, mean over m; CI over
    seeds kept >= 0), in snapshot intervals and as a share of training; the rebound."""
    ln_t = math.log(tables["T"])
    n_steps = tables["n_steps"]
    trans = transitions(tables["entropy"])
    delta = _snapshot_spacing(tables["entropy"], trans)
    chosen = _selected(tables, trans).copy()
    chosen["drop_fraction"] = chosen["drop"] / ln_t
    # layers averaged within each seed first (when more than one is analysed)
    per_seed_m = chosen.groupby(["seed", "m"], as_index=False)[
        ["drop_fraction", "width", "rebound"]].mean()
    drops = {m: bounded_mean_ci(p.drop_fraction, (0.0, 1.0))
             for m, p in per_seed_m.groupby("m")}
    per_seed = per_seed_m.groupby("seed")[["drop_fraction", "width", "rebound"]].mean()
    drop_all = bounded_mean_ci(per_seed.drop_fraction, (0.0, 1.0))
    width = clip_interval(mean_ci(per_seed.width), (0.0, float(n_steps)))
    rebound = bounded_mean_ci(per_seed.rebound, (0.0, 1.0))
    weakest = min(drops, key=lambda m: drops[m][1] if finite_low(drops[m]) else -np.inf)
    ps = [one_sided_p(p.drop_fraction - 0.5) for _, p in per_seed_m.groupby("m")]
    p = float(max(ps)) if ps and all(np.isfinite(ps)) else float("nan")
    layer = "every layer (averaged per seed)" if tables.get("layers", "last") == "all" else \
        f"last layer ({int(trans.layer.max())})" if len(trans) else "last layer"
    intervals = width[0] / delta if delta > 0 else np.nan
    return Evidence(
        values={"min_drop_low": float(drops[weakest][1]) if drops else float("nan"),
                "weakest_m": float(weakest) if drops else float("nan"),
                "weakest_drop": float(drops[weakest][0]) if drops else float("nan"),
                "width": width[0], "width_low": width[1], "width_high": width[2],
                "spacing": delta, "n_steps": float(n_steps), "n_seeds": float(len(per_seed))},
        effect=f"{layer}: drop {number(drop_all[0])} of ln T (weakest m={weakest}: "
               f"{number(drops[weakest][0])}), 10–90% window {number(width[0], 0)} steps "
               f"(≈{number(intervals, 1)} snapshot intervals of {number(delta, 0)} steps; "
               f"{number(width[0] / n_steps, 3)} of training), rebound "
               f"{number(rebound[0])} of the drop" if drops else "no entropy curve",
        ci="drop per m: " + "; ".join(f"m={m}: {interval(v, bounds=(0, 1))}"
                                      for m, v in drops.items())
           + f"; window {interval(width, 0, bounds=(0, n_steps))} steps",
        controls={"uniform attention": f"entropy ln T = {number(ln_t)} at every step, drop 0",
                  "abrupt/smooth boundary": f"{number(SMOOTH_FRACTION * n_steps, 0)} steps "
                                            f"({SMOOTH_FRACTION:.0%} of training)",
                  "snapshot spacing": f"{number(delta, 0)} steps"},
        p_value=p,
        notes={"drop over m": f"{fmt_ci(drop_all, bounds=(0, 1))} of ln T (per seed, mean over m)",
               "primary test": f"drop > 0.5 ln T in every m (intersection-union, the weakest m's "
                               f"one-sided t over seeds): {pvalue(p)}"})


def finite_low(ci) -> bool:
    return bool(np.isfinite(ci[1]))


def measure_c6_v1(tables: Tables) -> Evidence:
    """Version 1's statistics (chapter 4 as of 2026-11-21): per m the lower t-bound of the drop
    / ln T and of the window / training, last layer."""
    ln_t, n_steps = math.log(tables["T"]), tables["n_steps"]
    trans = transitions(tables["entropy"])
    last = trans[trans.layer == trans.layer.max()].copy()
    last["drop_fraction"] = last["drop"] / ln_t
    last["width_fraction"] = last.width / n_steps
    drop_low = min(mean_ci(p.drop_fraction)[1] for _, p in last.groupby("m"))
    width_low = min(mean_ci(p.width_fraction)[1] for _, p in last.groupby("m"))
    drop = mean_ci(last.groupby("seed").drop_fraction.mean())
    width = mean_ci(last.groupby("seed").width_fraction.mean())
    return Evidence(values={"drop_low": float(drop_low), "width_low": float(width_low)},
                    effect=f"last layer: drop {number(drop[0])} of ln T, 10–90% window "
                           f"{number(width[0])} of training",
                    ci=f"drop {interval(drop)}; window {interval(width)}")


def decide_c6_v1(ev: Evidence, th) -> Decision:
    drop_ok = finite(ev["drop_low"]) and ev["drop_low"] >= th["drop"]
    smooth_ok = finite(ev["width_low"]) and ev["width_low"] > th["smooth_fraction"]
    verdict = ("supported" if drop_ok and smooth_ok else
               "partly supported" if drop_ok or smooth_ok else "not supported")
    return Decision(verdict, f"lowest per-m lower bound of drop / ln T {number(ev['drop_low'])} "
                             f"({'≥' if drop_ok else '<'} {th['drop']:g}); of the 10–90% "
                             f"window / training {number(ev['width_low'], 3)} "
                             f"({'>' if smooth_ok else '≤'} {th['smooth_fraction']:g}: "
                             f"{'smooth' if smooth_ok else 'abrupt'})")


def smoothness(ev: Evidence, th) -> tuple[str, str]:
    """C6's smooth/abrupt part: ``(outcome, words)``, outcome one of ``smooth``, ``abrupt``,
    ``undecided``, ``not testable``."""
    delta, width = ev["spacing"], ev["width"]
    boundary = th["smooth_fraction"] * ev["n_steps"]
    if not (finite(width) and finite(delta) and delta > 0):
        return "not testable", "no transition window to measure"
    intervals = width / delta
    if intervals <= th["resolved_intervals"]:
        return "not testable", (f"not testable at {delta:g}-step snapshots: the 10–90% window "
                                f"({width:.0f} steps) is within {th['resolved_intervals']:g} "
                                f"snapshot intervals ({intervals:.1f}), so its shape is not "
                                f"resolved")
    low, high = ev["width_low"], ev["width_high"]
    if finite(low) and low > boundary:
        return "smooth", (f"smooth: the window's CI [{low:.0f}, {high:.0f}] steps lies above "
                          f"the boundary {boundary:.0f} steps")
    if finite(high) and high <= boundary:
        return "abrupt", (f"abrupt: the window's CI [{low:.0f}, {high:.0f}] steps lies at or "
                          f"below the boundary {boundary:.0f} steps")
    return "undecided", (f"undecided: the window's CI [{low:.0f}, {high:.0f}] steps contains "
                         f"the boundary {boundary:.0f} steps")


def decide_c6(ev: Evidence, th) -> Decision:
    outcome, words = smoothness(ev, th)
    low = ev["min_drop_low"]
    drop_ok = finite(low) and low >= th["drop"]
    drop_words = (f"the drop holds (every m: CI lower bound ≥ {th['drop']:g} ln T; weakest "
                  f"m={ev['weakest_m']:g}: {low:.2f})" if drop_ok else
                  f"the drop fails (m={ev['weakest_m']:g}: CI lower bound "
                  f"{number(low)} < {th['drop']:g} ln T)")
    if drop_ok and outcome == "smooth":
        return Decision("supported", f"{drop_words}; {words}")
    if drop_ok or outcome == "smooth":
        return Decision("partly supported", f"{drop_words}; {words}")
    return Decision("not supported", f"{drop_words}; {words}")


def null_c6(tables: Tables) -> Tables:
    """Uniform causal attention: the readout entropy stays at ln T at every step (no drop)."""
    entropy = tables["entropy"].assign(value=math.log(tables["T"]))
    return {**tables, "entropy": entropy}


def alternatives_c6(tables: Tables) -> dict:
    return {"every layer, averaged per seed (not only the last)": {**tables, "layers": "all"}}


# ------------------------------------------------------------------------------------ C7

def _timing(tables: Tables) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per seed × layer: entropy midpoint (mean over m) and lock-in step; and the raw midpoints."""
    trans = _selected(tables, transitions(tables["entropy"]), default="all")
    mid = trans.groupby(["seed", "layer"], as_index=False)["mid"].mean()
    return mid.merge(tables["lock"], on=["seed", "layer"]), trans


def permutation_p(x: np.ndarray, y: np.ndarray, max_exact: int = 8, draws: int = 20_000,
                  seed: int = 0) -> float:
    """One-sided permutation p of Pearson r(x, y) > observed: the share of pairings of ``y``
    with ``x`` (all of them for ``len(x) <= max_exact``, else ``draws`` random ones, the observed
    pairing included) whose r is at least the observed r; NaN if r is undefined."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")

    def r(yy):
        return float(np.corrcoef(x, yy)[0, 1])
    observed = r(y) - 1e-12
    if len(x) <= max_exact:
        values = [r(y[list(p)]) for p in itertools.permutations(range(len(y)))]
    else:
        rng = np.random.default_rng(seed)
        values = [r(y)] + [r(rng.permutation(y)) for _ in range(draws - 1)]
    return float(np.mean(np.asarray(values) >= observed))


def measure_c7(tables: Tables) -> Evidence:
    """Seed as the unit: per seed the entropy midpoint and the lock-in step, each averaged over
    layers (midpoints over m first); Pearson r over seeds with a Fisher-z CI and an exact
    permutation p; and how far the midpoints vary beyond the snapshot grid (share of the raw
    seed × layer × m midpoints off the modal snapshot)."""
    from ..metrics import pearson_ci
    timing, trans = _timing(tables)
    per_seed = timing.groupby("seed")[["mid", "lock_step"]].mean()
    r = pearson_ci(per_seed.lock_step, per_seed["mid"])
    p = permutation_p(per_seed.lock_step.to_numpy(), per_seed["mid"].to_numpy())
    mids = trans["mid"].dropna()
    mode = float(mids.mode().min()) if len(mids) else float("nan")
    off_mode = float((mids != mode).mean()) if len(mids) else float("nan")
    delta = _snapshot_spacing(tables["entropy"], trans)
    gap = mean_ci(timing.assign(g=timing["mid"] - timing.lock_step).groupby("seed").g.mean())
    n_steps = tables["n_steps"]
    broken, _ = _timing(null_c7(tables))
    broken = broken.groupby("seed")[["mid", "lock_step"]].mean()
    r_null = pearson_ci(broken.lock_step, broken["mid"])
    return Evidence(
        values={"r": r[0], "r_low": r[1], "r_high": r[2], "n_seeds": float(r[3]),
                "off_mode": off_mode, "mode": mode, "spacing": delta,
                "n_midpoints": float(len(mids))},
        effect=f"r = {number(r[0])} over {r[3]} seeds (layer means); midpoints: "
               f"{off_mode:.0%} of {len(mids)} off the modal snapshot (step {number(mode, 0)}; "
               f"snapshots {number(delta, 0)} steps apart)",
        ci=f"r {interval(r[:3], bounds=(-1, 1))}",
        controls={"pairing broken (midpoints of one seed vs lock-in of another)":
                  f"r = {number(r_null[0])} {interval(r_null[:3], bounds=(-1, 1))}",
                  "midpoint − lock-in": f"{fmt_ci(gap, 0, signed=True)} steps (per seed, mean "
                                        f"over layers; {number(0.1 * n_steps, 0)} steps = 10% "
                                        f"of training)"},
        p_value=p,
        notes={"permutation p (over seeds)": pvalue(p)})


def measure_c7_v1(tables: Tables) -> Evidence:
    """Version 1's statistics: r over the seed × layer points (Fisher-z CI treating them as
    independent) and the mean gap midpoint − lock-in (per seed, CI over seeds)."""
    from ..metrics import pearson_ci
    timing, _ = _timing(tables)
    r = pearson_ci(timing.lock_step, timing["mid"])
    gap = mean_ci(timing.assign(g=timing["mid"] - timing.lock_step).groupby("seed").g.mean())
    return Evidence(values={"r_low": r[1], "gap_low": gap[1], "gap_high": gap[2],
                            "n_steps": float(tables["n_steps"])},
                    effect=f"r = {number(r[0])} (seed×layer); midpoint − lock-in "
                           f"{number(gap[0], 0)} steps",
                    ci=f"r {interval(r[:3])}; gap {interval(gap, 0)}")


def decide_c7_v1(ev: Evidence, th) -> Decision:
    corr_ok = finite(ev["r_low"]) and ev["r_low"] > 0
    bound = th["close_fraction"] * ev["n_steps"]
    close_ok = (finite(ev["gap_low"]) and abs(ev["gap_low"]) <= bound
                and abs(ev["gap_high"]) <= bound)
    verdict = ("supported" if corr_ok and close_ok else
               "partly supported" if corr_ok or close_ok else "not supported")
    return Decision(verdict, f"seed×layer r lower bound {number(ev['r_low'])} "
                             f"({'>' if corr_ok else '≤'} 0); gap CI "
                             f"[{number(ev['gap_low'], 0)}, {number(ev['gap_high'], 0)}] "
                             f"{'inside' if close_ok else 'not inside'} ±{bound:.0f} steps")


def decide_c7(ev: Evidence, th) -> Decision:
    if not ev["n_seeds"] >= 4:
        return Decision("not testable", f"{ev['n_seeds']:g} seeds: no interval over seeds")
    if not (finite(ev["off_mode"]) and ev["off_mode"] >= th["min_off_mode"]):
        return Decision("not testable",
                        f"not testable at {ev['spacing']:g}-step snapshots: only "
                        f"{number(ev['off_mode'] * 100, 0)}% of the {ev['n_midpoints']:g} "
                        f"entropy midpoints lie off the modal snapshot (step {ev['mode']:g}), "
                        f"fewer than {th['min_off_mode']:.0%}: the midpoints do not vary beyond "
                        f"the snapshot grid, so a correlation could only come from the lock-in")
    if finite(ev["r_low"]) and ev["r_low"] > th["r_floor"]:
        return Decision("supported", f"r over seeds {ev['r']:.2f}, CI lower bound "
                                     f"{ev['r_low']:.2f} > {th['r_floor']:g}")
    return Decision("not supported", f"r over seeds {number(ev['r'])}, CI lower bound "
                                     f"{number(ev['r_low'])} ≤ {th['r_floor']:g}")


def null_c7(tables: Tables) -> Tables:
    """The pairing broken: each seed's lock-in steps given to the seed ``shift`` places on (a
    derangement of the seeds; the layer structure stays); ``shift`` is ``tables["null_shift"]``,
    default 1."""
    shift = int(tables.get("null_shift", 1))
    lock = tables["lock"]
    seeds = sorted(lock.seed.unique())
    if len(seeds) < 2:
        return tables
    moved = {s: seeds[(i + shift) % len(seeds)] for i, s in enumerate(seeds)}
    return {**tables, "lock": lock.assign(seed=lock.seed.map(moved))}


def alternatives_c7(tables: Tables) -> dict:
    return {"last layer only (the paper's)": {**tables, "layers": "last"},
            "another broken pairing as null (shift by 2 seeds)": {**tables, "null_shift": 2}}


# ------------------------------------------------------------------------------------ rules

C6_V1 = declared("C6", 1, __name__)

C6_V2 = declared("C6", 2, __name__)

C7_V1 = declared("C7", 1, __name__)

C7_V2 = declared("C7", 2, __name__)


CLAIMS = (
    ClaimSpec(id="C6", claim="attention entropy at the readout drops sharply (\"bubbling\"), "
                             "smoothly",
              source="§4.2, Fig 2", chapter="04", tables=("entropy", "T", "n_steps"),
              measure=measure_c6, null_tables=null_c6, rule=C6_V2, history=(C6_V1,),
              alternatives=alternatives_c6, variants=(REGULAR,)),
    ClaimSpec(id="C7", claim="bubble timing correlates with manifold stabilization",
              source="§4.2", chapter="04", tables=("entropy", "lock", "n_steps"),
              measure=measure_c7, null_tables=null_c7, rule=C7_V2, history=(C7_V1,),
              alternatives=alternatives_c7, variants=(REGULAR,)),
)


# ------------------------------------------------------------------------------------- prose
# The chapter's computed sentences, from its tables: numbers through modadd.report, words that
# depend on a result chosen here (tested in tests/test_claims_ch04.py), none in the notebook.

def resolution_text(trans: pd.DataFrame, snapshot_every: int) -> str:
    """How the transition windows compare with the snapshot spacing (``trans``: the
    seed × layer × m transitions, columns ``width`` and ``mid`` in steps; ``snapshot_every``:
    the spacing of the grid they were measured on, where the transitions lie).  The window is
    the median over every curve; with ``seed``, ``m`` and ``layer`` columns the text also gives
    the aggregate claim C6 reads (last layer, per seed the mean over m, then the mean over
    seeds), so that the two numbers are not read as a disagreement."""
    intervals = np.nanmedian(trans.width) / snapshot_every
    resolved = intervals > C6_V2.thresholds["resolved_intervals"]
    text = (f"**Time resolution.** Snapshots are {snapshot_every} steps apart here. Over the "
            f"{int(trans.width.notna().sum())} transition curves (seed × layer × m), the median "
            f"10–90% window is {number(intervals, 1)} snapshot intervals "
            f"({number(np.nanmedian(trans.width), 0)} steps) and the median midpoint is at step "
            f"{number(np.nanmedian(trans['mid']), 0)}. ")
    if {"seed", "m", "layer"} <= set(trans.columns) and trans.width.notna().any():
        last = trans[trans.layer == trans.layer.max()]
        width = float(last.groupby(["seed", "m"]).width.mean().groupby("seed").mean().mean())
        text += (f"Claim C6 (section 6) summarises the same kind of windows differently: the "
                 f"last layer only, per seed the mean over m, then the **mean over seeds**; "
                 f"here that is {number(width / snapshot_every, 1)} snapshot intervals "
                 f"({number(width, 0)} steps). The median and the mean are two summaries of "
                 f"one set of windows, not two measurements that disagree. ")
    if resolved:
        return text + (f"The median exceeds {C6_V2.thresholds['resolved_intervals']:g} "
                       f"intervals: the window's shape is resolved at this spacing.")
    return text + ("A window of a few intervals is at the resolution limit: 'abrupt' here means "
                   "'faster than the snapshot spacing can resolve', and finer snapshots early "
                   "in training are needed to see its shape.")


def resolution_table(transitions_by_grid: dict, spacing: dict, n_steps: int) -> pd.DataFrame:
    """Per layer and grid: the 10–90% window (steps, share of training, snapshot intervals),
    midpoint and rebound, each per seed the mean over m, then mean and 95% CI over seeds.
    ``transitions_by_grid``: grid label -> :func:`transitions`-like table; ``spacing``: grid
    label -> its snapshot spacing (steps) where the transitions lie."""
    rows = []
    for grid, trans in transitions_by_grid.items():
        per_seed = trans.groupby(["layer", "seed"], as_index=False)[
            ["width", "mid", "rebound"]].mean()
        for layer, part in per_seed.groupby("layer"):
            width = mean_ci(part.width)
            rows.append({"layer": int(layer), "grid": grid,
                         "10–90% window (steps)": fmt_ci(clip_interval(width, (0, n_steps)), 0),
                         "window / training": fmt_ci(tuple(np.clip(np.asarray(width) / n_steps,
                                                                   0, 1)), 3),
                         "snapshot intervals": number(width[0] / spacing[grid], 1),
                         "midpoint (step)": fmt_ci(mean_ci(part["mid"]), 0),
                         "rebound / drop": fmt_ci(bounded_mean_ci(part.rebound, (0, 1)))})
    return pd.DataFrame(rows).set_index(["layer", "grid"])


def divergence_text(first_differing: list) -> str:
    """How the dense-snapshot runs relate to the committed book runs of the same seeds, from the
    first training step at which their losses differ (per seed; None: equal throughout)."""
    steps = [s for s in first_differing if s is not None]
    if not steps:
        return (f"The dense-snapshot runs' training losses equal the book runs' at every step "
                f"in all {len(first_differing)} seeds.")
    return (f"The committed book runs were trained by an earlier version of the code whose "
            f"float rounding differs: the dense-snapshot runs' training losses equal theirs up "
            f"to step {min(steps)} (first difference per seed: "
            f"{', '.join('none' if s is None else str(s) for s in first_differing)}), and the "
            f"trajectories then drift apart as chaotic training amplifies rounding. So chapter "
            f"4's other sections (the committed runs) and this comparison (the dense runs at "
            f"both spacings) are different draws of the same seeds; both resolutions here are "
            f"read off the same runs, so only the resolution differs between them.")


def resolution_verdicts(records: dict) -> str:
    """C6's and C7's verdicts at the dense and at the regular snapshots, one line each
    (``records``: claim id -> record with a :data:`REGULAR` variant)."""
    lines = []
    for cid, rec in records.items():
        regular = rec.variants.get(REGULAR)
        spacing = rec.values.get("spacing", float("nan"))
        line = (f"- **{cid}** at {number(spacing, 0)}-step snapshots: *{rec.verdict}* "
                f"({rec.why})")
        if regular is not None:
            same = "the same" if regular.verdict == rec.verdict else "a different"
            line += (f"; at the regular {number(regular.values.get('spacing'), 0)}-step "
                     f"snapshots only: *{regular.verdict}* ({regular.why}) — {same} verdict")
        lines.append(line + ".")
    return "\n".join(lines)


def timing_text(gap, r_last, mids: pd.Series) -> str:
    """Entropy midpoint against lock-in: ``gap`` the (mean, low, high) over seeds of the
    midpoint minus the lock-in step (layers averaged within a seed), ``r_last`` the last
    layer's (r, low, high, n) across seeds, ``mids`` every seed × layer × m midpoint (steps)."""
    order = ci_relation(gap, 0.0, "after the weights lock in", "before the weights lock in",
                        "at the same step as the weights lock in, within the CI")
    mids = pd.Series(mids, dtype=float)
    mode = float(mids.mode().min()) if mids.notna().any() else float("nan")
    return (f"Entropy midpoint minus lock-in step: {fmt_ci(gap, 0, signed=True)} steps (mean "
            f"over layers, CI over seeds): the entropy falls {order}. Last layer, across "
            f"seeds: r = {fmt_ci(r_last[:3], bounds=(-1, 1))} (n = {r_last[3]}). Of the "
            f"{int(mids.notna().sum())} seed × layer × m midpoints, "
            f"{percent(float((mids == mode).mean()))} sit on one snapshot (step "
            f"{number(mode, 0)}).")
