"""Chapter 3's claims C1–C5 (paper §4.1, Fig. 1): the dimension of the attention matrices' weight
trajectories, its stability across seeds, the subspace orientation, the timing of the collapse,
and W_V, W_O below W_Q, W_K.

Tables (``load`` / :func:`tables_from_analyses`):

- ``r90``: effective rank at 90% of every block (one row per seed × layer × matrix × source;
  sources ``real``, ``random walk``, ``shuffled increments``; nulls already averaged over their
  draws within a run), for the schedule under test (``setting``);
- ``schedules``: the same at each optimisation schedule of the chapter (column ``setting``:
  ``main``, ``constant lr``, ``original lr``; nulls of 1/4 the draws, as the chapter draws them);
- ``lock_in``: lock-in fraction of every block (``seed, layer, matrix, source, draw, lock_in``;
  the random-walk draws kept apart); ``resolution``: one snapshot interval as a fraction of
  training (the grid lock-in is measured on, where the lock-ins lie).  At ``variant=None`` the
  lock-in is measured on the dense-snapshot copies of the main runs (``presets.dense_early``:
  every 10 steps to step 1000 at the book preset; identical training) and ``lock_in_grids``
  holds every grid of :func:`modadd.manifold.dense_lock_in_table`; variant
  :data:`REGULAR` gives the same runs' regular snapshots only (the spacing chapter 3 used
  before issue 22), so that only the resolution differs;
- ``angles``: top-k subspace overlaps (``comparison, a, b, layer, matrix, overlap``; comparisons
  ``seed``, ``layer``, ``m (same seed)``, ``seed (same m)``, ``random``); ``k``, ``dim``: the
  subspace dimension and the ambient dimension ``d^2`` (random overlap expectation ``k/dim``).

Units of replication: seeds (every statistic is first averaged within a seed: over layers and
blocks, over null draws); for the orientation, runs (per run the mean overlap with the others).

Length: longer than ~400 lines because one chapter's five claims (each rule's measure, nulls,
variants, alternatives and sentence) sit together: the ledger, the notebook and the rule lock
address them as ``ch03.<name>``; splitting them by claim belongs with the study registry
(issue 24).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from ..report import ci_relation, fmt_ci, interval, number
from ..stats import bounded_mean_ci, mean_ci, one_sided_p
from .core import ClaimSpec, Decision, Evidence, Tables, declared, finite

# the chapter's parameter defaults (notebooks/03_execution_manifold.py, parameters cell)
# single-m seeds whose trajectories were kept only from this seed on (seeds 0-1: summaries only)
SINGLE_M_KEPT_FROM = 2
ANGLE_RANDOM_DRAWS = 50          # random subspace pairs of the angle table (a literal there too)

MATRICES = ("W_Q", "W_K", "W_V", "W_O")
SCHEDULES = ("main", "constant lr", "original lr")
VARIANTS = ("original lr", "constant lr")
REGULAR = "regular snapshots only"   # the dense runs at the preset's snapshot spacing only
DENSE_GRID, MATCHED_GRID = "dense", "dense, regular-matched null"   # manifold.GRIDS
SCHEDULE_LABELS = {"main": "preset schedule (book: cosine)", "constant lr": "constant peak rate",
                   "original lr": "original constant rate 3e-4"}
POSITIVE = (0.0, float("inf"))   # ranks, ratios: non-negative
IDS = ("C1", "C2", "C3", "C4", "C5")


# ------------------------------------------------------------------------------------- tables

@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """C1–C5's tables at ``preset`` from the cached analyses chapter 3 reads (the same calls
    with the same arguments, so no null is redrawn); ``variant`` ``"original lr"`` or
    ``"constant lr"``: the same tables for that schedule's runs (no angle table: no single-m
    runs or trajectories at those schedules); ``given``: chapter 3's registry settings to change."""
    from .. import manifold as MF
    from .. import registry
    if variant is not None and variant not in (*VARIANTS, REGULAR):
        raise ValueError(f"variant: must be one of {(*VARIANTS, REGULAR)} or None, got "
                         f"{variant!r}")
    s = registry.settings("ch03", preset, **given)
    roles, null_draws = s.runs(), s.null_draws
    main = roles["main"]
    steps = MF.block_grams(main[0])[2]
    k = min(s.k_subspace, len(steps) - 2)
    schedules = {role: MF.dimension_summary(roles[role], thresholds=(0.9,),
                                            null_draws=max(1, null_draws // 4))
                 for role in SCHEDULES}
    dim = main[0].model.d_model ** 2
    if variant in (None, REGULAR):
        mixed = {c.seed: c for c in main}
        single = {(c.train.single_m, c.seed): c for c in roles["single m"]}
        regular = tables_from_analyses(
            MF.dimension_summary(main, null_draws=null_draws),
            MF.lock_in_table(main, null_draws=null_draws),
            MF.replicated_angle_table(mixed, single, k=k, random_draws=ANGLE_RANDOM_DRAWS,
                                      kept_from=SINGLE_M_KEPT_FROM),
            k=k, dim=dim, steps=steps, schedules=schedules)
        dense = roles["dense snapshots"]
        grids = MF.dense_lock_in(dense[0], null_draws=null_draws)
        return with_dense_lock_in(regular, MF.dense_lock_in_table(dense, null_draws=null_draws),
                                  grids["steps"], grids["regular"],
                                  "regular" if variant == REGULAR else DENSE_GRID)
    return tables_from_analyses(schedules[variant],
                                MF.lock_in_table(roles[variant], null_draws=null_draws), None,
                                k=k, dim=dim, steps=steps, schedules=schedules, setting=variant)


def grid_spacing(steps, upto: float) -> float:
    """The coarsest spacing of the snapshot ``steps`` up to step ``upto`` (at least the first
    interval): the resolution of an event observed by then on an uneven grid."""
    steps = np.sort(np.asarray(steps, float))
    if steps.size < 2:
        return float("nan")
    upto = max(float(upto), float(steps[1])) if np.isfinite(upto) else float(steps[-1])
    gaps = np.diff(steps[steps <= upto])
    return float(gaps.max()) if gaps.size else float(np.diff(steps).max())


def with_dense_lock_in(tables: Tables, dense: pd.DataFrame, steps, regular,
                       grid: str = "dense") -> Tables:
    """``tables`` with C4's lock-in measured on a dense-snapshot run's ``grid``: ``dense`` is
    :func:`modadd.manifold.dense_lock_in_table` of the same seeds, ``steps`` their snapshot
    steps and ``regular`` the mask of the regular grid among them.  ``lock_in`` becomes that
    grid's rows (real trajectory and its walks; ``"regular"``: the same runs at the regular
    spacing only, so that only the resolution differs from ``"dense"``), ``resolution`` the
    grid's spacing where the real lock-ins lie (as a fraction of training), ``lock_in_grids``
    keeps every grid (alternatives)."""
    if grid not in set(dense.grid):
        raise ValueError(f"grid: must be one of {sorted(set(dense.grid))}, got {grid!r}")
    steps = np.asarray(steps, float)
    on = steps[np.asarray(regular, bool)] if grid == "regular" else steps
    part = dense[dense.grid == grid]
    latest = part[part.source == "real"].step.max()
    return {**tables, "lock_in": part[["seed", "layer", "matrix", "source", "draw", "lock_in"]]
            .reset_index(drop=True),
            "resolution": grid_spacing(on, latest) / steps[-1],
            "lock_in_grids": dense.reset_index(drop=True)}


def block_r90(dims: pd.DataFrame) -> pd.DataFrame:
    """The per-block r90 rows of a :func:`~modadd.manifold.dimension_summary` table."""
    part = dims[(dims.group == "block") & np.isclose(dims.threshold, 0.9)]
    return part[["seed", "layer", "matrix", "source", "rank"]].reset_index(drop=True)


def tables_from_analyses(dims: pd.DataFrame, lock: pd.DataFrame,
                         angles: Optional[pd.DataFrame], k: int, dim: int, steps,
                         schedules: Optional[Mapping[str, pd.DataFrame]] = None,
                         setting: str = "main") -> Tables:
    """C1–C5's tables from the chapter's objects: ``dims`` (dimension summary of the tested
    runs), ``lock`` (their lock-in table), ``angles`` (angle table, or None), the subspace
    dimension ``k``, ambient dimension ``dim``, snapshot ``steps``, and the dimension summaries
    of the other schedules (``schedules``: role -> table)."""
    steps = np.asarray(steps, float)
    tables = {"r90": block_r90(dims), "setting": setting,
              "schedules": pd.concat([block_r90(d).assign(setting=name)
                                      for name, d in (schedules or {}).items()],
                                     ignore_index=True)
              if schedules else pd.DataFrame(columns=["seed", "layer", "matrix", "source",
                                                      "rank", "setting"]),
              "lock_in": lock[["seed", "layer", "matrix", "source", "draw", "lock_in"]]
              .reset_index(drop=True),
              "resolution": float(np.min(np.diff(steps)) / steps[-1]),
              "k": int(k), "dim": int(dim)}
    if angles is not None:
        overlap = np.where(angles.comparison == "random", 1 - angles.distance ** 2,
                           angles.mean_cos2)
        tables["angles"] = angles.assign(overlap=overlap)[
            ["comparison", "a", "b", "layer", "matrix", "overlap"]].reset_index(drop=True)
    return tables


def _wide(r90: pd.DataFrame, by=("seed", "matrix")) -> pd.DataFrame:
    """Sources as columns, averaged over the blocks within each ``by`` group."""
    return r90.groupby([*by, "source"])["rank"].mean().unstack("source")


def _replace_source(r90: pd.DataFrame, target: str, source: str) -> pd.DataFrame:
    """``r90`` with the rows of ``target`` replaced by those of ``source`` (relabelled)."""
    return pd.concat([r90[r90.source != target],
                      r90[r90.source == source].assign(source=target)], ignore_index=True)


def _types(wide: pd.DataFrame) -> list[str]:
    present = set(wide.index.get_level_values("matrix"))
    return [m for m in MATRICES if m in present]


def _paired_by_type(wide: pd.DataFrame, null: str = "random walk") -> dict:
    return {m: mean_ci(wide.xs(m, level="matrix")["real"] - wide.xs(m, level="matrix")[null])
            for m in _types(wide)}


def _signed(ci) -> str:
    return fmt_ci(ci, 2, signed=True)


# -------------------------------------------------------------------------------- C1: r90 3–4

C1_THRESHOLDS = {"low": 2.5, "high": 4.5}


def measure_c1(tables: Tables) -> Evidence:
    """Per matrix type: mean r90 over seeds (layers averaged within a seed) and the CI of the
    per-seed paired difference real − random walk (same run); over all blocks the same, with
    every control: shuffled increments, and the other schedules' paired differences."""
    r90 = tables["r90"]
    wide = _wide(r90)
    seed = _wide(r90, ("seed",))
    overall, walk = mean_ci(seed["real"]), mean_ci(seed["random walk"])
    paired = _paired_by_type(wide)
    values = {}
    for m in _types(wide):
        values[f"mean {m}"] = float(wide.xs(m, level="matrix")["real"].mean())
        values[f"paired high {m}"] = paired[m][2]
    diff = seed["real"] - seed["random walk"]
    values.update({"overall": overall[0], "overall low": overall[1], "overall high": overall[2],
                   "null": walk[0], "null low": walk[1], "null high": walk[2]})
    lo, hi = C1_THRESHOLDS["low"], C1_THRESHOLDS["high"]
    effect = (f"r90 {number(overall[0])} over all blocks (random walk {number(walk[0])}); "
              f"tested per matrix type: mean r90 in [{lo:g}, {hi:g}] and the CI of real − "
              f"random walk below 0: "
              + "; ".join(f"{m} {number(values[f'mean {m}'])} ({_signed(paired[m])})"
                          for m in _types(wide)))
    controls = {"random walk (same step norms)":
                f"{fmt_ci(walk, bounds=POSITIVE)}; real − random walk {_signed(mean_ci(diff))}"}
    if "shuffled increments" in seed:
        shuffled = _paired_by_type(wide, "shuffled increments")
        controls["shuffled increments"] = (
            f"{fmt_ci(mean_ci(seed['shuffled increments']), bounds=POSITIVE)}; real − shuffled "
            + "; ".join(f"{m} {_signed(ci)}" for m, ci in shuffled.items()))
    controls.update(_schedule_controls(tables))
    return Evidence(values=values, effect=effect, ci=interval(overall, bounds=POSITIVE),
                    controls=controls, p_value=one_sided_p(diff, "less"),
                    notes={"C1 p": "one-sided t-test over seeds of real − random walk "
                                   "(all blocks), direction: below"})


def _schedule_controls(tables: Tables) -> dict:
    out = {}
    schedules = tables.get("schedules")
    if schedules is None or len(schedules) == 0:
        return out
    for name in SCHEDULES:
        part = schedules[schedules.setting == name]
        if name == tables.get("setting", "main") or part.empty:
            continue
        wide = _wide(part)
        seed = _wide(part, ("seed",))
        out[f"{SCHEDULE_LABELS[name]}, real − random walk per type"] = (
            f"real {number(seed['real'].mean())} vs null {number(seed['random walk'].mean())}; "
            + "; ".join(f"{m} {_signed(ci)}" for m, ci in _paired_by_type(wide).items()))
    return out


def _c1_types(ev: Evidence, th, below) -> tuple[list, list]:
    types = [k.split(" ", 1)[1] for k in ev.values if k.startswith("mean ")]
    ok = [m for m in types if th["low"] <= ev[f"mean {m}"] <= th["high"] and below(m)]
    return types, ok


def _c1_verdict(types, ok, th, what) -> Decision:
    tail = (f"{len(ok)}/{len(types)} matrix types have mean r90 in [{th['low']:g}, "
            f"{th['high']:g}] and {what}" + (f" ({', '.join(ok)})" if ok else ""))
    if types and len(ok) == len(types):
        return Decision("supported", tail)
    return Decision("partly supported" if ok else "not supported", tail)


def decide_c1_v2(ev: Evidence, th) -> Decision:
    types = [k.split(" ", 1)[1] for k in ev.values if k.startswith("mean ")]
    if not all(finite(ev[f"paired high {m}"]) for m in types):
        return Decision("not testable", "fewer than 2 seeds: no interval for the paired "
                                        "difference")
    types, ok = _c1_types(ev, th, lambda m: ev[f"paired high {m}"] < 0)
    return _c1_verdict(types, ok, th, "a paired real − random walk CI below 0")


def measure_c1_v1(tables: Tables) -> Evidence:
    """v1: per matrix type, the real CI and the random-walk null's CI side by side (unpaired)."""
    wide = _wide(tables["r90"])
    values = {}
    for m in _types(wide):
        real, null = mean_ci(wide.xs(m, level="matrix")["real"]), \
            mean_ci(wide.xs(m, level="matrix")["random walk"])
        values.update({f"mean {m}": real[0], f"real high {m}": real[2],
                       f"null low {m}": null[1]})
    base = measure_c1(tables)
    return Evidence(values=values, effect=base.effect, ci=base.ci, controls=base.controls,
                    p_value=base.p_value)


def decide_c1_v1(ev: Evidence, th) -> Decision:
    types, ok = _c1_types(ev, th, lambda m: ev[f"real high {m}"] < ev[f"null low {m}"])
    return _c1_verdict(types, ok, th, "a CI wholly below the random-walk null's CI")


# ------------------------------------------------------------------------- C2: seed stability

def _block_matrix(r90: pd.DataFrame, source: str) -> pd.DataFrame:
    return r90[r90.source == source].pivot_table(index="seed", columns=["layer", "matrix"],
                                                 values="rank")


def measure_c2_v1(tables: Tables) -> Evidence:
    """v1: per block, the range (max − min) of the seeds' r90."""
    real = _block_matrix(tables["r90"], "real")
    span = real.max() - real.min()
    base = measure_c2(tables)
    values = {f"span L{layer} {m}": float(v) for (layer, m), v in span.items()}
    return Evidence(values=values, effect=base.effect, ci=f"max seed range {number(span.max())}",
                    controls=base.controls, p_value=base.p_value)


def decide_c2_v1(ev: Evidence, th) -> Decision:
    spans = [v for k, v in ev.values.items() if k.startswith("span ")]
    share = float(np.mean([s <= th["span"] for s in spans]))
    why = (f"{share:.0%} of {len(spans)} blocks have a seed range of r90 ≤ {th['span']:g} "
           f"(largest {max(spans):g})")
    if share == 1:
        return Decision("supported", why)
    return Decision("partly supported" if share >= th["share"] else "not supported", why)


def _seed_sd_gap(real: np.ndarray, null: np.ndarray, n_boot: int = 10_000, seed: int = 0):
    """Mean over blocks of the seed s.d. of real minus that of null (arrays seeds × blocks), and
    its percentile-bootstrap distribution over seeds (the same seeds resampled for both)."""
    def gap(r, n):
        return np.mean(np.std(r, axis=-2, ddof=1), axis=-1) - \
            np.mean(np.std(n, axis=-2, ddof=1), axis=-1)
    point = float(gap(real, null))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, real.shape[0], (n_boot, real.shape[0]))
    return point, gap(real[idx], null[idx])


def measure_c2(tables: Tables, null: str = "random walk") -> Evidence:
    """Per block the s.d. of r90 over seeds, real and null, averaged over blocks; the difference
    real − null with a percentile bootstrap over seeds (the same seeds for real and null)."""
    r90 = tables["r90"]
    real, walk = _block_matrix(r90, "real"), _block_matrix(r90, null)
    walk = walk.loc[real.index, real.columns]
    values = {"seeds": float(real.shape[0])}
    sd_real = float(real.std().mean()) if real.shape[0] > 1 else np.nan
    sd_null = float(walk.std().mean()) if real.shape[0] > 1 else np.nan
    if real.shape[0] >= 2:
        point, boot = _seed_sd_gap(real.to_numpy(float), walk.to_numpy(float))
        low, high = (float(q) for q in np.quantile(boot, [0.025, 0.975]))
        p = float(np.mean(boot >= 0))
    else:
        point, low, high, p = np.nan, np.nan, np.nan, np.nan
    values.update({"sd real": sd_real, "sd null": sd_null, "gap": point, "gap low": low,
                   "gap high": high})
    controls = {f"{null} null seed s.d.": number(sd_null)}
    if null == "random walk" and "shuffled increments" in set(r90.source):
        shuffled = _block_matrix(r90, "shuffled increments").loc[real.index, real.columns]
        controls["shuffled increments seed s.d."] = number(float(shuffled.std().mean()))
    return Evidence(
        values=values,
        effect=f"seed s.d. of r90 {number(sd_real)} (mean over blocks) vs {number(sd_null)} for "
               f"the {null} null: real − null {number(point, signed=True)}",
        ci=interval((point, low, high), signed=True) + " (bootstrap over seeds)",
        controls=controls, p_value=p,
        notes={"C2 null": "the null's ranks are means over its draws within each run, which "
                          "makes their seed spread smaller than one walk's: the comparison "
                          "favours the null",
               "C2 p": "bootstrap share of resampled seed sets with real − null ≥ 0"})


def decide_c2_v2(ev: Evidence, th) -> Decision:
    if ev["seeds"] < 3 or not finite(ev["gap high"]):
        return Decision("not testable", f"{ev['seeds']:g} seeds: too few for a seed spread "
                                        f"with an interval")
    why = (f"seed s.d. real − null {number(ev['gap'], signed=True)} "
           f"[{number(ev['gap low'], signed=True)}, {number(ev['gap high'], signed=True)}]")
    bound = "0" if th["margin"] == 0 else f"−{th['margin']:g}"
    if ev["gap high"] < -th["margin"]:
        return Decision("supported", f"{why}: the CI lies below {bound}, the real "
                                     f"dimension varies less across seeds than the null's")
    return Decision("not supported", f"{why}: the CI does not lie below {bound}, so "
                                     f"the real dimension is not shown to vary less across "
                                     f"seeds than a matched null's")


# ------------------------------------------------------------------------ C3: orientation

C3_THRESHOLDS = {"ratio": 10.0}


def _per_run(pairs: pd.DataFrame) -> pd.Series:
    """Per run, the mean (over its pairs) of each pair's mean overlap over blocks."""
    pair = pairs.groupby(["a", "b"])["overlap"].mean()
    rows = [(run, v) for (a, b), v in pair.items() for run in (a, b)]
    return pd.DataFrame(rows, columns=["run", "overlap"]).groupby("run")["overlap"].mean()


def measure_c3(tables: Tables) -> Evidence:
    """Cross-seed overlap of the top-k subspaces, in units of the random expectation k/D: per
    block (mean over seed pairs) and per run (its mean overlap with the other seeds; the CI is
    over runs, i.e. seeds)."""
    angles, chance = tables["angles"], tables["k"] / tables["dim"]
    seeds = angles[angles.comparison == "seed"]
    block = seeds.groupby(["layer", "matrix"])["overlap"].mean() / chance
    per_run = _per_run(seeds) / chance
    ci = bounded_mean_ci(per_run, POSITIVE)
    controls = {}
    for name, label in (("random", "random k-subspaces"),
                        ("m (same seed)", "same seed, different m (shared initialisation)"),
                        ("seed (same m)", "different seed, same m"),
                        ("layer", "other layers of the same run")):
        part = angles[angles.comparison == name]
        if len(part):
            controls[label] = f"{number(part.overlap.mean() / chance, 1)}× random"
    return Evidence(
        values={"max block ratio": float(block.max()), "mean ratio": float(per_run.mean()),
                "mean ratio low": ci[1], "mean ratio high": ci[2], "runs": float(len(per_run))},
        effect=f"cross-seed overlap {number(ci[0], 1)}× random (k/D = {tables['k']}/"
               f"{tables['dim']}); largest block {number(block.max(), 1)}×",
        ci=interval(ci, 1) + f"× (over {len(per_run)} seeds: per seed the mean overlap with the "
                              f"others)",
        controls=controls,
        p_value=one_sided_p(per_run - C3_THRESHOLDS["ratio"], "less"),
        notes={"C3 p": f"one-sided t-test over seeds of overlap/(k/D) − "
                       f"{C3_THRESHOLDS['ratio']:g}, direction: below"})


def decide_c3_v1(ev: Evidence, th) -> Decision:
    if ev["max block ratio"] < th["ratio"]:
        return Decision("supported", f"every block's cross-seed overlap is below "
                                     f"{th['ratio']:g}× random (largest "
                                     f"{ev['max block ratio']:.1f}×)")
    if ev["mean ratio"] < th["ratio"]:
        return Decision("partly supported", f"the mean overlap {ev['mean ratio']:.1f}× is below "
                                            f"{th['ratio']:g}× random, but the largest block's "
                                            f"{ev['max block ratio']:.1f}× is not")
    return Decision("not supported", f"the mean cross-seed overlap {ev['mean ratio']:.1f}× is "
                                     f"not below {th['ratio']:g}× random")


# ---------------------------------------------------------------------------- C4: lock-in

def _lock_per_seed(lock: pd.DataFrame) -> pd.DataFrame:
    """Per seed and source: the median over blocks of the block's lock-in (null draws averaged
    within the block first), as the chapter computes it."""
    block = lock.groupby(["seed", "layer", "matrix", "source"], as_index=False)["lock_in"].mean()
    return block.groupby(["seed", "source"])["lock_in"].median().unstack("source")


def measure_c4(tables: Tables) -> Evidence:
    """Lock-in (fraction of training) per seed, real and random walk, and their paired
    difference; the snapshot interval it is resolved to."""
    per_seed = _lock_per_seed(tables["lock_in"])
    real = bounded_mean_ci(per_seed["real"], (0.0, 1.0))
    null = bounded_mean_ci(per_seed["random walk"], (0.0, 1.0))
    diff = per_seed["real"] - per_seed["random walk"]
    d = mean_ci(diff)
    res = tables["resolution"]
    return Evidence(
        values={"real": real[0], "real low": real[1], "real high": real[2], "null low": null[1],
                "null high": null[2], "diff": d[0], "diff low": d[1], "diff high": d[2],
                "resolution": res},
        effect=f"lock-in at {number(real[0], 3)} of training (random walk {number(null[0], 3)}); "
               f"paired real − random walk {number(d[0], 3, signed=True)}; one snapshot "
               f"interval = {number(res, 3)}",
        ci=interval(real, 3, bounds=(0.0, 1.0)),
        controls={"random walk (same step norms, own k)": fmt_ci(null, 3, bounds=(0.0, 1.0)),
                  "paired real − random walk": fmt_ci(d, 3, signed=True)},
        p_value=one_sided_p(diff, "less"),
        notes={"C4 p": "one-sided t-test over seeds of real − random-walk lock-in, direction: "
                       "earlier"})


def decide_c4_v1(ev: Evidence, th) -> Decision:
    if not ev["real high"] <= th["early"]:
        return Decision("not supported", f"lock-in CI upper bound {ev['real high']:.3f} > "
                                         f"{th['early']:g}")
    if ev["real high"] < ev["null low"]:
        return Decision("supported", f"lock-in CI upper bound {ev['real high']:.3f} ≤ "
                                     f"{th['early']:g} and below the null's CI "
                                     f"(from {ev['null low']:.3f})")
    return Decision("partly supported", f"lock-in CI upper bound {ev['real high']:.3f} ≤ "
                                        f"{th['early']:g} but not below the null's CI "
                                        f"(from {ev['null low']:.3f})")


def decide_c4_v2(ev: Evidence, th) -> Decision:
    if not finite(ev["real high"]) or not finite(ev["diff high"]):
        return Decision("not testable", "fewer than 2 seeds: no interval")
    paired = (f"paired real − random walk {ev['diff']:+.3f} [{ev['diff low']:+.3f}, "
              f"{ev['diff high']:+.3f}]")
    if ev["real high"] > th["early"]:
        return Decision("not supported", f"lock-in CI upper bound {ev['real high']:.3f} > "
                                         f"{th['early']:g} of training")
    band = th["resolution"] * ev["resolution"]
    if -band <= ev["diff low"] and ev["diff high"] <= band:
        return Decision("not testable", f"lock-in ≤ {th['early']:g} (CI to "
                                        f"{ev['real high']:.3f}), but {paired} lies within "
                                        f"±{band:.3f} ({th['resolution']:g} snapshot interval of "
                                        f"{ev['resolution']:.3f}): real and null cannot be told "
                                        f"apart at this snapshot resolution")
    if ev["diff high"] < 0:
        return Decision("supported", f"lock-in CI upper bound {ev['real high']:.3f} ≤ "
                                     f"{th['early']:g} and {paired} below 0, beyond the "
                                     f"±{band:.3f} snapshot resolution")
    return Decision("not supported", f"lock-in ≤ {th['early']:g}, but {paired} is not below 0: "
                                     f"matched random walks lock in as early")


# ---------------------------------------------------------------------------- C5: V,O < Q,K

def _qk_minus_vo(r90: pd.DataFrame, source: str = "real", by=("seed",)) -> pd.Series:
    part = r90[r90.source == source]
    qk = part[part.matrix.isin(["W_Q", "W_K"])].groupby(list(by))["rank"].mean()
    vo = part[part.matrix.isin(["W_V", "W_O"])].groupby(list(by))["rank"].mean()
    return qk - vo


def measure_c5(tables: Tables) -> Evidence:
    """Per seed, mean r90 of W_Q, W_K minus that of W_V, W_O (over layers); per layer the mean
    over seeds of the same difference."""
    r90 = tables["r90"]
    per_seed = _qk_minus_vo(r90)
    layer = _qk_minus_vo(r90, by=("layer",))
    d = mean_ci(per_seed)
    controls = {}
    for null in ("random walk", "shuffled increments"):
        if null in set(r90.source):
            controls[f"{null} (same runs)"] = _signed(mean_ci(_qk_minus_vo(r90, null)))
    return Evidence(
        values={"diff": d[0], "diff low": d[1], "diff high": d[2],
                "min layer": float(layer.min()), "layers": float(len(layer)),
                "positive layers": float((layer > 0).sum())},
        effect=f"r90(Q,K) − r90(V,O) = {number(d[0], signed=True)}; positive in "
               f"{int((layer > 0).sum())}/{len(layer)} layers (smallest "
               f"{number(layer.min(), signed=True)})",
        ci=interval(d, signed=True), controls=controls,
        p_value=one_sided_p(per_seed, "greater"),
        notes={"C5 per layer": "; ".join(f"L{int(k)} {number(v, signed=True)}"
                                         for k, v in layer.items())})


def decide_c5_v1(ev: Evidence, th) -> Decision:
    if not finite(ev["diff low"]):
        return Decision("not testable", "fewer than 2 seeds: no interval")
    ci = f"{ev['diff']:+.2f} [{ev['diff low']:+.2f}, {ev['diff high']:+.2f}]"
    if ev["diff low"] > th["margin"] and ev["min layer"] > 0:
        return Decision("supported", f"paired difference {ci} above {th['margin']:g} and the "
                                     f"layer-wise difference positive in every layer "
                                     f"(smallest {ev['min layer']:+.2f})")
    if ev["diff low"] > th["margin"]:
        return Decision("partly supported", f"paired difference {ci} above {th['margin']:g}, "
                                            f"but one layer's difference is "
                                            f"{ev['min layer']:+.2f}")
    return Decision("not supported", f"paired difference {ci} not above {th['margin']:g}")


# ------------------------------------------------------------------------------------ nulls

def null_random_walk(tables: Tables) -> Tables:
    """C1, C2, C5: the random-walk ranks in place of the real ones (same runs, same shape)."""
    return {**tables, "r90": _replace_source(tables["r90"], "real", "random walk")}


def null_same_init(tables: Tables) -> Tables:
    """C3: a positive control for sameness: runs on different m from the same initial weights
    in place of the cross-seed pairs ("does not vary")."""
    angles = tables["angles"]
    same = angles[angles.comparison == "m (same seed)"].assign(comparison="seed")
    return {**tables, "angles": pd.concat([angles[angles.comparison != "seed"], same],
                                          ignore_index=True)}


def null_lock_in(tables: Tables) -> Tables:
    """C4: one random-walk draw in place of the real trajectory, the other draws as its null."""
    lock = tables["lock_in"]
    walks = lock[lock.source == "random walk"]
    first = walks.draw.min()
    rest = walks[walks.draw != first] if walks.draw.nunique() > 1 else walks
    return {**tables, "lock_in": pd.concat([walks[walks.draw == first].assign(source="real"),
                                            rest], ignore_index=True)}


def alternatives_shuffled(tables: Tables) -> dict:
    """No per-draw ranks are cached: the other null (shuffled increments) as another null."""
    if "shuffled increments" not in set(tables["r90"].source):
        return {}
    return {"shuffled-increments null in place of the random walk":
            {**tables, "r90": _replace_source(tables["r90"], "random walk",
                                              "shuffled increments")}}


def alternatives_c3(tables: Tables) -> dict:
    angles = tables["angles"]
    same_m = angles[angles.comparison == "seed (same m)"]
    if same_m.empty:
        return {}
    return {"different-seed, same-m single-m pairs in place of the mixed-m seed pairs":
            {**tables, "angles": pd.concat([angles[angles.comparison != "seed"],
                                            same_m.assign(comparison="seed")],
                                           ignore_index=True)}}


def alternatives_c4(tables: Tables) -> dict:
    """Other subsets of the random-walk draws (the lock-in table keeps every draw); on a dense
    grid, also the regular grid's null refined in time (walks matched per regular interval)."""
    lock = tables["lock_in"]
    draws = np.sort(lock[lock.source == "random walk"].draw.unique())
    out = {}
    grids = tables.get("lock_in_grids")
    if grids is not None and MATCHED_GRID in set(grids.grid):
        matched = grids[grids.grid == MATCHED_GRID]
        out["walks matched per regular interval (the regular grid's null, refined in time)"] = {
            **tables, "lock_in": matched[["seed", "layer", "matrix", "source", "draw",
                                          "lock_in"]].reset_index(drop=True)}
    if len(draws) < 2:
        return out
    half = len(draws) // 2
    for label, keep in ((f"null draws {draws[0]}–{draws[half - 1]} only", draws[:half]),
                        (f"null draws {draws[half]}–{draws[-1]} only", draws[half:])):
        out[label] = {**tables, "lock_in": lock[(lock.source == "real")
                                                | lock.draw.isin(keep)]}
    return out


# ----------------------------------------------------------------------------------- claims


CLAIMS = (
    ClaimSpec(
        id="C1", claim="attention-only trajectories of each W_Q/W_K/W_V/W_O collapse to r90 ≈ 3–4",
        source="§4.1, Fig 1", chapter="03", tables=("r90", "schedules", "setting"),
        measure=measure_c1, null_tables=null_random_walk, alternatives=alternatives_shuffled,
        variants=VARIANTS,
        history=(declared("C1", 1, __name__),),
        rule=declared("C1", 2, __name__)),
    ClaimSpec(
        id="C2", claim="that dimension is stable across seeds", source="§4.1", chapter="03",
        tables=("r90",), measure=measure_c2, null_tables=null_random_walk,
        alternatives=alternatives_shuffled,
        variants=VARIANTS,
        history=(declared("C2", 1, __name__),),
        rule=declared("C2", 2, __name__)),
    ClaimSpec(
        id="C3", claim="the subspace orientation varies across seeds", source="§4.1",
        chapter="03", tables=("angles", "k", "dim"), measure=measure_c3,
        null_tables=null_same_init, alternatives=alternatives_c3,
        rule=declared("C3", 1, __name__)),
    ClaimSpec(
        id="C4", claim="collapse happens within the first 20–30% of training", source="§4.1",
        chapter="03", tables=("lock_in", "resolution"), measure=measure_c4,
        null_tables=null_lock_in, alternatives=alternatives_c4, variants=(*VARIANTS, REGULAR),
        history=(declared("C4", 1, __name__),),
        rule=declared("C4", 2, __name__)),
    ClaimSpec(
        id="C5", claim="W_V, W_O lower-dimensional than W_Q, W_K; consistent across layers",
        source="Fig 1", chapter="03", tables=("r90",), measure=measure_c5,
        null_tables=null_random_walk, variants=VARIANTS,
        rule=declared("C5", 1, __name__)),
)


# ------------------------------------------------------------------------------------- prose
# The chapter's conclusions ("Where we agree and disagree with the paper") from its verdict
# records and tables: every number through modadd.report, every word that depends on a result
# chosen here (tested in tests/test_claims_ch03.py), none in the notebook.

LOCAL_WINDOW = (0.3, 0.8)        # "mid-training": the fractions of training the local r90 reads


def schedule_words(record) -> str:
    """How a claim's verdict depends on the optimisation schedule, in words: ``"supported at all
    3 schedules"``, or each schedule's verdict (the :data:`REGULAR` grid is not a schedule)."""
    by_setting = {"the preset's schedule": record.verdict,
                  **{name: v.verdict for name, v in record.variants.items()
                     if name != REGULAR}}
    if len(set(by_setting.values())) == 1:
        return f"{record.verdict} at all {len(by_setting)} schedules"
    return "; ".join(f"{outcome} at {name}" for name, outcome in by_setting.items())


def local_dimension(layer_mean: pd.DataFrame, window=LOCAL_WINDOW) -> tuple:
    """Mid-training local dimension against the null: per seed, the mean sliding-window r90 minus
    the matched random walks' over the snapshots at fractions ``window`` of training (columns
    ``seed, fraction, sliding, sliding_null``; blocks averaged first); mean and CI over seeds."""
    lo, hi = window
    mid = layer_mean[(layer_mean.fraction >= lo) & (layer_mean.fraction <= hi)]
    mid = mid.groupby("seed")[["sliding", "sliding_null"]].mean()
    return mean_ci(mid["sliding"] - mid["sliding_null"])


def versus_shuffled(tables: Tables) -> tuple:
    """Per seed, r90 of the real trajectory minus that of its shuffled increments (all blocks);
    mean and CI over seeds."""
    seed = _wide(tables["r90"], ("seed",))
    return mean_ci(seed["real"] - seed["shuffled increments"])


def below_null(values) -> list[str]:
    """The matrix types whose paired real − random-walk CI lies below 0 (C1's values)."""
    return [m for m in MATRICES if finite(values.get(f"paired high {m}", float("nan")))
            and values[f"paired high {m}"] < 0]


def same_init_ratio(tables: Tables) -> float:
    """Mean overlap of same-seed, different-m runs (shared initialisation), × random (k/D)."""
    angles = tables["angles"]
    part = angles[angles.comparison == "m (same seed)"]
    return float(part["overlap"].mean() / (tables["k"] / tables["dim"]))


def _local_sentence(local, window: int) -> str:
    relation = ci_relation(local, 0.0, "higher than", "lower than", "indistinguishable from")
    tail = ("motion stays confined to fewer directions than a random walk's even mid-training."
            if local[2] < 0 else
            "the low whole-trajectory dimension comes from the large early moves, not from "
            "motion confined to a few directions throughout.")
    lo, hi = LOCAL_WINDOW
    return (f"- **Local dimension.** In sliding windows of {window} snapshots between "
            f"{lo:.0%} and {hi:.0%} of training, $r_{{90}}$ is {relation} that of matched random "
            f"walks (difference {fmt_ci(local, signed=True)}): {tail}")


def _c1_sentence(record, tables: Tables, variant_tables: Mapping[str, Tables]) -> str:
    v = record.values
    overall = (v["overall"], v["overall low"], v["overall high"])
    null = (v["null"], v["null low"], v["null high"])
    if overall[2] < null[1]:
        versus = (f"below the null by {number(null[0] - overall[0])} dimensions: part of the low "
                  f"dimension is specific to these trajectories, but most of the distance from "
                  f"the ambient {tables['dim']} to {number(overall[0], 1)} is what any wandering "
                  f"trajectory shows at this snapshot count")
    else:
        versus = ("not distinguishable from the null: at this snapshot count a random walk is as "
                  "low-dimensional")
    by_rate = {role: below_null(record.variants[role].values)
               for role in ("constant lr", "original lr") if role in record.variants}
    rates = ""
    if by_rate:
        labels = {"constant lr": "at the constant peak rate",
                  "original lr": "at the original constant rate 3e-4"}
        rates = ("; the types with a paired CI below it "
                 + "; ".join(f"{labels[role]}: {', '.join(types) or 'none'}"
                             for role, types in by_rate.items()))
        if "constant lr" in by_rate and {"W_Q", "W_K"} - set(by_rate["constant lr"]):
            rates += (" — whether $W_Q, W_K$ fall below their null depends on the learning "
                      "rate, not on the task alone")
    schedules = {"preset schedule": tables,
                 **{n: t for n, t in variant_tables.items() if n != REGULAR}}
    shuffled = "; ".join(f"{name} {fmt_ci(versus_shuffled(t), signed=True)}"
                         for name, t in schedules.items())
    return (f"- **Dimension (C1).** The paper reports $r_{{90}}$ of 3–4 (3–5 in its Fig. 1 "
            f"caption). Over all blocks we measure {fmt_ci(overall)}; a random walk with the "
            f"same step norms gives {fmt_ci(null)}, {versus}. C1 is {schedule_words(record)}: "
            f"the table above gives each schedule's matrices against their null{rates}. Real "
            f"minus shuffled increments (the same steps in random order): {shuffled}; where "
            f"this is not below 0, the low dimension lies in the directions of the steps, not "
            f"in their order.")


def _c2_sentence(record) -> str:
    text = (f"- **Stability across seeds (C2).** Compared with the null's seed spread, C2 is "
            f"{schedule_words(record)}")
    if record.previous:
        v1 = record.previous[0]
        text += (f"; under rule v1 (seed range ≤ 1 in every block) it was {v1['verdict']}"
                 + (", because a matched random walk passes that rule too"
                    if v1["null_passes"] else ""))
    return text + "."


def _c4_sentence(record) -> str:
    v = record.values
    if record.verdict == "supported":
        versus = "earlier than the matched random walks, beyond the snapshot resolution"
    elif record.verdict == "not testable":
        versus = (f"but matched random walks lock in within one snapshot interval "
                  f"({number(v['resolution'], 4)} of training) of it, so early lock-in is not "
                  f"evidence of a task-specific manifold at this resolution")
    else:
        versus = ("but matched random walks lock in as early, so early lock-in is not "
                  "evidence of a task-specific manifold")
    text = (f"- **Timing (C4).** On snapshots {number(v['resolution'], 4)} of training apart "
            f"where the lock-ins lie, trajectories lock into their final subspace at "
            f"{number(v['real'], 3)} of training, {versus}. C4 is {schedule_words(record)}")
    regular = record.variants.get(REGULAR)
    if regular is not None:
        text += (f"; at the regular snapshots only ({number(regular.values['resolution'], 3)} "
                 f"of training apart) it is {regular.verdict} (lock-in "
                 f"{number(regular.values['real'], 3)})")
    if record.flips:
        text += f". It flips under: {'; '.join(record.flips)}"
    return text + "."


def _c3_sentence(record, tables: Tables) -> str:
    v = record.values
    same = same_init_ratio(tables)
    conclusion = ("Orientation is set by the initialisation far more than by the task variant."
                  if same > 10 * max(v["mean ratio high"], 1.0) else
                  "Sharing the initialisation does not make the subspaces much more alike.")
    return (f"- **Orientation (C3).** Across seeds the top-{tables['k']} subspaces overlap "
            f"{number(v['mean ratio'], 1)}× as much as random subspaces; runs trained on "
            f"different $m$ from the same initial weights overlap {number(same, 1)}× random. "
            f"{conclusion}")


def _c5_sentence(record) -> str:
    v = record.values
    return (f"- **W_V, W_O vs W_Q, W_K (C5).** The difference is "
            f"{fmt_ci((v['diff'], v['diff low'], v['diff high']))} effective dimensions, "
            f"positive in {v['positive layers']:.0f}/{v['layers']:.0f} layers; C5 is "
            f"{schedule_words(record)}.")


def summary(records: Mapping, tables: Tables, variant_tables: Mapping[str, Tables],
            local, window: int) -> str:
    """The chapter's conclusions as Markdown: from the verdict records of C1–C5 (``records``;
    their ``values`` are the numbers each rule read, ``variants`` the other schedules'
    records), the preset schedule's tables and the other schedules' (``variant_tables``), the
    mid-training local dimension against the null (``local``: :func:`local_dimension`) and the
    sliding-window width in snapshots."""
    return "\n".join([
        _local_sentence(local, window),
        _c1_sentence(records["C1"], tables, variant_tables),
        _c2_sentence(records["C2"]),
        _c4_sentence(records["C4"]),
        _c3_sentence(records["C3"], tables),
        _c5_sentence(records["C5"])])
