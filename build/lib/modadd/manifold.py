"""Execution-manifold analyses of stored runs (paper §4.1): dimensions, nulls, timing, angles.

Heavy work (reading weight trajectories) happens once per run and is cached in
``data/results/analysis``: the Gram matrices of each block's increments (``[L, 4, n-1, n-1]``,
float32, ~0.3 MB per book run), and the principal-angle tables.  Everything else is computed
from those Gram matrices in milliseconds, so the book rebuilds without trajectories.

Length: longer than ~400 lines because every chapter-3 quantity (dimensions, nulls, timing,
lock-in at both resolutions, angles) is computed from the same cached Gram matrices, and the
caching keys must stay side by side with the computations they name.
"""
from __future__ import annotations

from itertools import combinations
from typing import Iterable, Optional

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import metrics as M
from .config import RunConfig, stream_seed
from .model import MATRIX_NAMES
from .store import Run, cached, load_or_train, run_key

GRAM_VERSION = 1
ANGLE_VERSION = 1
SUMMARY_VERSION = 1     # cached tables: dimension_summary, time_resolved, lock_in, sensitivity
LOCK_IN_LEVEL = float(np.sqrt(0.1))  # outside fraction of ||W_t - W_0|| when 90% of its square is inside


# ------------------------------------------------------------------------ per-run Gram matrices

def compute_increment_grams(run: Run) -> dict:
    snapshots = run.snapshots                      # [n, L, 4, d, d] memory-mapped
    n, layers = snapshots.shape[:2]
    out = np.empty((layers, 4, n - 1, n - 1), np.float64)
    for layer in range(layers):
        for block in range(4):
            steps = np.diff(np.asarray(snapshots[:, layer, block], np.float64)
                            .reshape(n, -1), axis=0)
            out[layer, block] = steps @ steps.T
    return {"increment_grams": out.astype(np.float32), "steps": run.snapshot_steps}


def increment_grams(cfg: RunConfig) -> dict:
    """``{"increment_grams": [L, 4, n-1, n-1], "steps": [n]}`` of a run (cached; computing it
    needs the run's weight trajectories)."""
    return cached("increment-grams", GRAM_VERSION, run_key(cfg),
                  lambda: compute_increment_grams(load_or_train(cfg, trajectories=True,
                                                         progress=False)))


def block_grams(cfg: RunConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(trajectory Grams ``[L, 4, n, n]`` of ``W_t - W_0``, increment Grams
    ``[L, 4, n-1, n-1]``, steps ``[n]``), float64."""
    stored = increment_grams(cfg)
    H = stored["increment_grams"].astype(np.float64)
    G = np.stack([[M.walk_gram(h) for h in layer] for layer in H])
    return G, H, stored["steps"]


def groupings(n_layers: int) -> list[tuple[str, str, list[tuple[int, int]]]]:
    """(group, label, blocks) for every block alone, each layer jointly, everything jointly."""
    out = [("block", f"L{layer} {name}", [(layer, b)])
           for layer in range(n_layers) for b, name in enumerate(MATRIX_NAMES)]
    out += [("layer", f"L{layer} all", [(layer, b) for b in range(4)])
            for layer in range(n_layers)]
    out.append(("all", "all attention", [(l, b) for l in range(n_layers) for b in range(4)]))
    return out


def _joint(G: np.ndarray, blocks: list[tuple[int, int]]) -> np.ndarray:
    return sum(G[layer, b] for layer, b in blocks)


# ------------------------------------------------------------------------------ dimension table

def dimension_table(cfgs: Iterable[RunConfig], thresholds=(0.8, 0.9, 0.95),
                    null_draws: int = 20) -> pd.DataFrame:
    """Effective dimension of every block and grouping of every run, with both nulls.

    Rows: seed, group, label, layer, matrix, source (``real`` | ``random walk`` |
    ``shuffled increments``), draw, threshold, rank, participation (participation ratio).
    Nulls use the run's own increment norms (a) or increments (b), the same snapshot count and
    the same rank rule; their RNG is the run's ``measure`` stream.
    """
    rows = []
    for cfg in cfgs:
        G, H, _ = block_grams(cfg)
        dim = cfg.model.d_model ** 2
        rng = np.random.default_rng(stream_seed(cfg.seed, "measure:manifold-nulls"))
        for group, label, blocks in groupings(cfg.model.n_layers):
            layer = blocks[0][0] if group != "all" else -1
            matrix = MATRIX_NAMES[blocks[0][1]] if group == "block" else "joint"
            for row in dimension_rows(_joint(G, blocks), _joint(H, blocks), dim * len(blocks),
                                      rng, null_draws, thresholds):
                rows.append((cfg.seed, group, label, layer, matrix, *row))
    return pd.DataFrame(rows, columns=DIMENSION_COLUMNS)


DIMENSION_COLUMNS = ["seed", "group", "label", "layer", "matrix", "source", "draw", "threshold",
                     "rank", "participation"]


def dimension_rows(G: np.ndarray, H: np.ndarray, dim: int, rng: np.random.Generator,
                   null_draws: int, thresholds) -> list[tuple]:
    """``(source, draw, threshold, rank, participation)`` rows for one trajectory: its Gram
    ``G`` (of ``W_t - W_0``), and ``null_draws`` draws of both nulls built from its increment
    Gram ``H`` in a ``dim``-dimensional space: a Gaussian random walk with the same step norms,
    and the run's own increments in shuffled order."""
    sources = [("real", 0, G)]
    norms = np.sqrt(np.clip(np.diag(H), 0, None))
    for draw in range(null_draws):
        sources.append(("random walk", draw, M.random_walk_gram(norms, dim, rng)))
        sources.append(("shuffled increments", draw, M.shuffled_walk_gram(H, rng)))
    rows = []
    for source, draw, g in sources:
        ratios = M.spectrum_from_gram(g)
        pr = M.participation_ratio(ratios)
        rows += [(source, draw, threshold, M.rank_at(ratios, threshold), pr)
                 for threshold in thresholds]
    return rows


def dimension_summary(cfgs: Iterable[RunConfig], thresholds=(0.8, 0.9, 0.95),
                      null_draws: int = 20) -> pd.DataFrame:
    """:func:`null_means` of :func:`dimension_table`, cached (the book reads it instead of
    redrawing the nulls on every build; same numbers: the nulls come from each run's own
    measurement stream)."""
    cfgs = list(cfgs)
    inputs = {"runs": [run_key(c) for c in cfgs], "thresholds": list(thresholds),
              "null_draws": null_draws}
    return cached("dimension-summary", SUMMARY_VERSION, inputs,
                  lambda: null_means(dimension_table(cfgs, thresholds, null_draws)))


def null_means(table: pd.DataFrame) -> pd.DataFrame:
    """Average the null draws within each run, so every (seed, source) is one value."""
    keys = ["seed", "group", "label", "layer", "matrix", "source", "threshold"]
    return table.groupby(keys, as_index=False)[["rank", "participation"]].mean()


def subsample(n: int, count: int, spacing: str = "even") -> np.ndarray:
    """Indices of ``count`` of ``n`` snapshots, first and last included: ``"even"`` spacing, or
    ``"log"`` (geometric in the step, dense early, where the weights move most).  Rounding can
    merge indices, so fewer than ``count`` may come back."""
    if spacing == "even":
        picks = np.linspace(0, n - 1, count)
    elif spacing == "log":
        picks = np.geomspace(1, n, count) - 1
    else:
        raise ValueError(f"spacing: must be 'even' or 'log', got {spacing!r}")
    return np.unique(picks.round().astype(int))


def snapshot_sensitivity(cfgs: Iterable[RunConfig], counts=(6, 11, 21, 31, 41, 61),
                         thresholds=(0.8, 0.9, 0.95), spacings=("even", "log"),
                         null_draws: int = 5) -> pd.DataFrame:
    """Cached :func:`_snapshot_sensitivity` (see there)."""
    cfgs = list(cfgs)
    inputs = {"runs": [run_key(c) for c in cfgs], "counts": list(counts),
              "thresholds": list(thresholds), "spacings": list(spacings),
              "null_draws": null_draws}
    return cached("snapshot-sensitivity", SUMMARY_VERSION, inputs, lambda: _snapshot_sensitivity(
        cfgs, counts, thresholds, spacings, null_draws))


def _snapshot_sensitivity(cfgs: list[RunConfig], counts, thresholds, spacings,
                          null_draws: int) -> pd.DataFrame:
    """r at each threshold for every block when only ``count`` snapshots are kept (see
    :func:`subsample`), real and random-walk null (matched to the kept intervals).  Rows: seed,
    layer, matrix, source, spacing, count (snapshots actually kept), threshold, rank (nulls:
    mean over draws)."""
    rows = []
    for cfg in cfgs:
        G, _, _ = block_grams(cfg)
        rng = np.random.default_rng(stream_seed(cfg.seed, "measure:manifold-sensitivity"))
        n = G.shape[-1]
        for spacing in spacings:
            for count in counts:
                if count > n:
                    continue
                keep = subsample(n, count, spacing)
                for layer in range(G.shape[0]):
                    for b, name in enumerate(MATRIX_NAMES):
                        g = G[layer, b][np.ix_(keep, keep)]
                        norms = np.sqrt(np.clip(np.diag(M.increments_from_gram(g)), 0, None))
                        sources = [("real", M.spectrum_from_gram(g))]
                        sources += [("random walk", M.spectrum_from_gram(
                            M.random_walk_gram(norms, cfg.model.d_model ** 2, rng)))
                            for _ in range(null_draws)]
                        for source, ratios in sources:
                            for threshold in thresholds:
                                rows.append((cfg.seed, layer, name, source, spacing, len(keep),
                                             threshold, M.rank_at(ratios, threshold)))
    table = pd.DataFrame(rows, columns=["seed", "layer", "matrix", "source", "spacing", "count",
                                        "threshold", "rank"])
    keys = ["seed", "layer", "matrix", "source", "spacing", "count", "threshold"]
    return table.groupby(keys, as_index=False)["rank"].mean()


# ------------------------------------------------------------------------------------- timing

def time_resolved(cfgs: Iterable[RunConfig], window: int, min_snapshots: int = 5,
                  threshold: float = 0.9, null_draws: int = 3) -> pd.DataFrame:
    """Cached :func:`_time_resolved` (see there)."""
    cfgs = list(cfgs)
    inputs = {"runs": [run_key(c) for c in cfgs], "window": window,
              "min_snapshots": min_snapshots, "threshold": threshold, "null_draws": null_draws}
    return cached("time-resolved", SUMMARY_VERSION, inputs, lambda: _time_resolved(
        cfgs, window, min_snapshots, threshold, null_draws))


def _time_resolved(cfgs: list[RunConfig], window: int, min_snapshots: int,
                   threshold: float, null_draws: int) -> pd.DataFrame:
    """Per block and snapshot: r of the growing window ``[0, t]``, of the sliding window of
    ``window`` snapshots ending at t, and the fraction of ``||W_t - W_0||`` outside the final
    top-k uncentred subspace (k = the block's whole-trajectory r); ``*_null``: the same window
    ranks of matched random walks (mean over ``null_draws``).  Rows: seed, layer, matrix, step,
    fraction (of training), growing, sliding, outside, k, growing_null, sliding_null."""
    rows = []
    for cfg in cfgs:
        G, H, steps = block_grams(cfg)
        rng = np.random.default_rng(stream_seed(cfg.seed, "measure:manifold-time"))
        n = len(steps)
        growing = [(0, t + 1) for t in range(n)]
        sliding = [(max(0, t + 1 - window), t + 1) for t in range(n)]
        for layer in range(G.shape[0]):
            for b, name in enumerate(MATRIX_NAMES):
                norms = np.sqrt(np.clip(np.diag(H[layer, b]), 0, None))
                walks = [M.random_walk_gram(norms, cfg.model.d_model ** 2, rng)
                         for _ in range(null_draws)]
                columns = {}
                for label, windows, first in (("growing", growing, min_snapshots - 1),
                                              ("sliding", sliding, window - 1)):
                    for suffix, grams in (("", [G[layer, b]]), ("_null", walks)):
                        ranks = np.mean([M.window_ranks(g, windows, threshold) for g in grams],
                                        axis=0) if grams else np.full(n, np.nan)
                        ranks[:first] = np.nan
                        columns[label + suffix] = ranks
                k = M.rank_at(M.spectrum_from_gram(G[layer, b]), threshold)
                outside = M.outside_fraction_from_gram(G[layer, b], k)
                for t in range(n):
                    rows.append((cfg.seed, layer, name, int(steps[t]), steps[t] / steps[-1],
                                 columns["growing"][t], columns["sliding"][t], outside[t], k,
                                 columns["growing_null"][t], columns["sliding_null"][t]))
    return pd.DataFrame(rows, columns=["seed", "layer", "matrix", "step", "fraction",
                                       "growing", "sliding", "outside", "k", "growing_null",
                                       "sliding_null"])


def lock_in_table(cfgs: Iterable[RunConfig], level: float = LOCK_IN_LEVEL,
                  threshold: float = 0.9, null_draws: int = 20) -> pd.DataFrame:
    """Cached :func:`_lock_in_table` (see there)."""
    cfgs = list(cfgs)
    inputs = {"runs": [run_key(c) for c in cfgs], "level": level, "threshold": threshold,
              "null_draws": null_draws}
    return cached("lock-in", SUMMARY_VERSION, inputs,
                  lambda: _lock_in_table(cfgs, level, threshold, null_draws))


def _block_lock_in(g: np.ndarray, level: float, threshold: float) -> tuple[int, Optional[int]]:
    """(k, lock-in index) of one trajectory Gram: k = its r at ``threshold``, the index of the
    first snapshot from which the outside fraction of the top-k subspace stays at most
    ``level`` (None if never)."""
    k = M.rank_at(M.spectrum_from_gram(g), threshold)
    return k, M.lock_in_index(M.outside_fraction_from_gram(g, k), level)


def _lock_in_table(cfgs: list[RunConfig], level: float, threshold: float,
                   null_draws: int) -> pd.DataFrame:
    """Lock-in of every block: the first snapshot from which ``W_t - W_0`` stays at least
    ``1 - level^2`` (90%) inside the final top-k subspace (k = the block's r), as a fraction
    of training; with the same statistic for matched random walks (their own k by the same
    rule).  Rows: seed, layer, matrix, source, draw, k, lock_in (fraction; NaN if never)."""
    rows = []
    for cfg in cfgs:
        G, H, steps = block_grams(cfg)
        rng = np.random.default_rng(stream_seed(cfg.seed, "measure:manifold-lock-in"))
        for layer in range(G.shape[0]):
            for b, name in enumerate(MATRIX_NAMES):
                norms = np.sqrt(np.clip(np.diag(H[layer, b]), 0, None))
                sources = [("real", 0, G[layer, b])]
                sources += [("random walk", draw,
                             M.random_walk_gram(norms, cfg.model.d_model ** 2, rng))
                            for draw in range(null_draws)]
                for source, draw, g in sources:
                    k, index = _block_lock_in(g, level, threshold)
                    fraction = np.nan if index is None else steps[index] / steps[-1]
                    rows.append((cfg.seed, layer, name, source, draw, k, fraction))
    return pd.DataFrame(rows, columns=["seed", "layer", "matrix", "source", "draw", "k",
                                       "lock_in"])


# ------------------------------------------------------------- lock-in at dense-snapshot resolution

DENSE_VERSION = 1       # cached per-run lock-in arrays of dense-snapshot runs
# the grids (and nulls) of dense_lock_in: chapter 3's regular grid; every snapshot with the
# walks' steps matched to the real per-interval norms; every snapshot with walks whose steps are
# rescaled within each regular interval so its displacement matches the real one (the regular
# grid's null, refined in time)
GRIDS = ("regular", "dense", "dense, regular-matched null")


def _dense_block_lock_in(g: np.ndarray, regular: np.ndarray, steps: np.ndarray, level: float,
                         threshold: float) -> tuple[int, float, np.ndarray]:
    """For one trajectory Gram ``g`` over every snapshot: (k, lock-in step, outside fraction at
    every snapshot).  k and the final subspace come from the regular snapshots alone (as a run
    without the dense phase defines them); the lock-in is the first of *all* snapshots from
    which every later one stays inside that subspace."""
    k = M.rank_at(M.spectrum_from_gram(g[np.ix_(regular, regular)]), threshold)
    outside = M.outside_fraction_against(g, k, regular)
    index = M.lock_in_index(outside, level)
    return k, np.nan if index is None else float(steps[index]), outside


def regular_matched_norms(dense_norms: np.ndarray, regular_norms: np.ndarray,
                          regular: np.ndarray) -> np.ndarray:
    """Per-interval step norms of a walk on every snapshot whose steps within each regular
    interval are the real ``dense_norms`` rescaled by one factor, so that an isotropic walk's
    displacement over the interval has the real regular displacement ``regular_norms`` in
    expectation of its square (``sum c^2 n_j^2 = N^2``)."""
    index = np.cumsum(regular)[:-1] - 1         # regular interval of each dense interval
    power = np.bincount(index, weights=dense_norms ** 2, minlength=len(regular_norms))
    with np.errstate(invalid="ignore", divide="ignore"):
        scale = np.where(power > 0, regular_norms / np.sqrt(power), 0.0)
    return dense_norms * scale[index]


def _dense_lock_in(cfg: RunConfig, level: float, threshold: float, null_draws: int) -> dict:
    from .train import regular_steps
    run = load_or_train(cfg, trajectories=True, progress=False)
    snapshots, steps = run.snapshots, np.asarray(run.snapshot_steps)
    regular = regular_steps(cfg)
    if len(steps) != len(regular) or regular.all():
        raise ValueError(f"cfg: run {run_key(cfg)} has no dense snapshots (dense_every "
                         f"{cfg.train.dense_every}); use lock_in_table")
    n, layers = snapshots.shape[:2]
    dim = cfg.model.d_model ** 2
    # the regular grid's walks from chapter 3's stream (the same draws on the same norms)
    names = ("measure:manifold-lock-in", "measure:manifold-lock-in-dense",
             "measure:manifold-lock-in-dense-matched")
    rngs = [np.random.default_rng(stream_seed(cfg.seed, name)) for name in names]
    sources = 1 + null_draws
    lock = np.full((len(GRIDS), layers, 4, sources), np.nan)
    ks = np.zeros((len(GRIDS), layers, 4, sources), np.int64)
    out_real = np.zeros((layers, 4, n))
    out_null = np.zeros((len(GRIDS) - 1, layers, 4, n))
    for layer in range(layers):
        for b in range(4):
            X = M.trajectory_matrix(snapshots[:, layer, b])
            g = X @ X.T
            norms = {"dense": np.linalg.norm(np.diff(X, axis=0), axis=1),
                     "regular": np.linalg.norm(np.diff(X[regular], axis=0), axis=1)}
            norms["matched"] = regular_matched_norms(norms["dense"], norms["regular"], regular)
            reg_steps = steps[regular]
            for source in range(sources):
                # the regular grid: chapter 3's statistic (a walk on the regular grid only)
                g_reg = (g[np.ix_(regular, regular)] if source == 0 else
                         M.random_walk_gram(norms["regular"], dim, rngs[0]))
                k, index = _block_lock_in(g_reg, level, threshold)
                lock[0, layer, b, source] = np.nan if index is None else reg_steps[index]
                ks[0, layer, b, source] = k
                for gi in (1, 2):
                    if source == 0 and gi == 2:        # the real values are the dense grid's
                        lock[2, layer, b, 0] = lock[1, layer, b, 0]
                        ks[2, layer, b, 0] = ks[1, layer, b, 0]
                        continue
                    walk = g if source == 0 else M.random_walk_gram(
                        norms["dense" if gi == 1 else "matched"], dim, rngs[gi])
                    k, at, outside = _dense_block_lock_in(walk, regular, steps, level, threshold)
                    lock[gi, layer, b, source], ks[gi, layer, b, source] = at, k
                    if source == 0:
                        out_real[layer, b] = outside
                    else:
                        out_null[gi - 1, layer, b] += outside / null_draws
    return {"lock_step": lock, "k": ks, "outside_real": out_real, "outside_null": out_null,
            "steps": steps.astype(np.int64), "regular": regular}


def dense_lock_in(cfg: RunConfig, level: float = LOCK_IN_LEVEL, threshold: float = 0.9,
                  null_draws: int = 20) -> dict:
    """Lock-in of every block of a dense-snapshot run (``presets.dense_early``) on both grids,
    cached per run (a few kB; computing it needs the run's trajectories):

    - ``lock_step [3, L, 4, 1 + null_draws]``: grid (:data:`GRIDS`) × layer × block × source
      (0: the real trajectory; then matched random walks), the lock-in step (NaN if never).
      ``regular``: exactly :func:`lock_in_table`'s statistic on the regular snapshots (k,
      subspace and walks from them, the walks from the same stream).  ``dense``: k and the final
      top-k subspace from the regular snapshots, the outside fraction at *every* snapshot
      against it (:func:`modadd.metrics.outside_fraction_against`), so only the time resolution
      changes; its walks take the real per-interval step norms of the uneven intervals and
      define their own k and subspace the same way.  ``dense, regular-matched null``: the same
      real values, walks whose steps are rescaled per regular interval
      (:func:`regular_matched_norms`): the regular grid's null, refined in time.
    - ``k``: the subspace dimension used (same shape); ``outside_real [L, 4, n]``,
      ``outside_null [2, L, 4, n]``: the outside fraction at every snapshot, real and the mean
      over each dense grid's walks; ``steps [n]``, ``regular [n]`` (mask of the regular grid)."""
    inputs = {"run": run_key(cfg), "level": level, "threshold": threshold,
              "null_draws": null_draws}
    return cached("dense-lock-in", DENSE_VERSION, inputs,
                  lambda: _dense_lock_in(cfg, level, threshold, null_draws))


def dense_lock_in_table(cfgs: Iterable[RunConfig], level: float = LOCK_IN_LEVEL,
                        threshold: float = 0.9, null_draws: int = 20) -> pd.DataFrame:
    """:func:`dense_lock_in` of every run as :func:`lock_in_table`'s rows plus a ``grid``
    column (:data:`GRIDS`) and the lock-in ``step``: seed, layer, matrix, source, draw, k,
    lock_in (fraction of training), step, grid."""
    rows = []
    for cfg in cfgs:
        out = dense_lock_in(cfg, level, threshold, null_draws)
        lock, ks = out["lock_step"], out["k"]
        total = float(cfg.train.n_steps)
        for gi, grid in enumerate(GRIDS):
            for layer in range(lock.shape[1]):
                for b, name in enumerate(MATRIX_NAMES):
                    for source in range(lock.shape[3]):
                        step = float(lock[gi, layer, b, source])
                        rows.append((cfg.seed, layer, name,
                                     "real" if source == 0 else "random walk",
                                     0 if source == 0 else source - 1,
                                     int(ks[gi, layer, b, source]), step / total, step, grid))
    return pd.DataFrame(rows, columns=["seed", "layer", "matrix", "source", "draw", "k",
                                       "lock_in", "step", "grid"])


def dense_outside_curves(cfgs: Iterable[RunConfig], null_draws: int = 20) -> pd.DataFrame:
    """The outside fraction of every block at every snapshot of dense-snapshot runs against the
    final subspace (real, and the mean over the walks matched to the real per-interval norms):
    seed, layer, matrix, step, regular (bool), real, null."""
    frames = []
    for cfg in cfgs:
        out = dense_lock_in(cfg, null_draws=null_draws)
        L, _, n = out["outside_real"].shape
        idx = pd.MultiIndex.from_product([range(L), MATRIX_NAMES, range(n)],
                                         names=["layer", "matrix", "i"])
        frame = pd.DataFrame({"real": out["outside_real"].ravel(),
                              "null": out["outside_null"][0].ravel()}, index=idx).reset_index()
        frame["step"] = out["steps"][frame.pop("i")]
        frame["regular"] = out["regular"][np.searchsorted(out["steps"], frame.step)]
        frames.append(frame.assign(seed=cfg.seed))
    return pd.concat(frames, ignore_index=True)[["seed", "layer", "matrix", "step", "regular",
                                                 "real", "null"]]


# ------------------------------------------------------------------------------------- angles

def late_window(n: int, last_fraction: float) -> slice:
    """The snapshots of the last ``last_fraction`` of a run of ``n`` snapshots (at least 2)."""
    if not 0 < last_fraction <= 1:
        raise ValueError(f"last_fraction: must be in (0, 1], got {last_fraction!r}")
    return slice(min(n - 2, int(np.floor((n - 1) * (1 - last_fraction)))), n)


def _bases(run: Run, k: int, last_fraction: float = 1.0) -> np.ndarray:
    snapshots = run.snapshots
    n, layers = snapshots.shape[:2]
    window = late_window(n, last_fraction)
    out = np.empty((layers, 4, k, snapshots.shape[-1] ** 2))
    for layer in range(layers):
        for b in range(4):
            X = M.trajectory_matrix(snapshots[:, layer, b])
            out[layer, b] = M.top_subspace(X[window], k)
    return out


def _angles(named: dict[str, RunConfig], pairs: list[tuple[str, str, str]], k: int,
            random_draws: int, seed: int, last_fraction: float = 1.0) -> pd.DataFrame:
    bases = {}
    for name in tqdm(sorted({a for _, a, _ in pairs} | {b for _, _, b in pairs}),
                     desc="subspace bases", leave=False):
        bases[name] = _bases(load_or_train(named[name], trajectories=True, progress=False), k,
                             last_fraction)
    rows = []
    for kind, a, b in pairs:
        A, B = bases[a], bases[b]
        for layer in range(A.shape[0]):
            for bi, matrix in enumerate(MATRIX_NAMES):
                if kind == "layer":       # a == b: compare this layer with every later one
                    others = [(other, B[other, bi]) for other in range(layer + 1, A.shape[0])]
                else:
                    others = [(layer, B[layer, bi])]
                for other, basis in others:
                    theta = M.principal_angles(A[layer, bi], basis)
                    rows.append((kind, a, b, layer, other, matrix,
                                 float(np.sqrt(np.mean(np.sin(theta) ** 2))),
                                 float(np.degrees(theta[0])),
                                 float(np.mean(np.cos(theta) ** 2))))
    dim = next(iter(bases.values())).shape[-1]
    rng = np.random.default_rng(stream_seed(seed, "measure:manifold-angles"))
    for draw, distance in enumerate(M.random_angle_baseline(k, dim, random_draws, rng)):
        rows.append(("random", "random", "random", -1, -1, "", distance, np.nan, np.nan))
    return pd.DataFrame(rows, columns=["comparison", "a", "b", "layer", "other_layer",
                                       "matrix", "distance", "smallest_angle_deg",
                                       "mean_cos2"])


def angle_table(mixed: dict[int, RunConfig], single: dict[tuple[int, int], RunConfig],
                k: int = 4, random_draws: int = 50) -> pd.DataFrame:
    """Subspace distances between top-k PCA subspaces (same block): across seeds (mixed runs),
    across layers (same run), across m (single-m runs sharing a seed, hence the initial
    weights), across seeds at equal m, and pairs of random k-subspaces of R^(d^2).

    ``mixed``: seed -> config; ``single``: (m, seed) -> config.  Rows: comparison, a, b,
    layer, other_layer, matrix, distance (normalised projection distance), smallest angle
    (degrees), mean cos^2.
    """
    named = {f"mixed s{s}": c for s, c in mixed.items()}
    named.update({f"m{m} s{s}": c for (m, s), c in single.items()})
    pairs = [("seed", f"mixed s{a}", f"mixed s{b}") for a, b in combinations(sorted(mixed), 2)]
    pairs += [("layer", f"mixed s{s}", f"mixed s{s}") for s in sorted(mixed)]
    for (m1, s1), (m2, s2) in combinations(sorted(single), 2):
        if s1 == s2:
            pairs.append(("m (same seed)", f"m{m1} s{s1}", f"m{m2} s{s2}"))
        elif m1 == m2:
            pairs.append(("seed (same m)", f"m{m1} s{s1}", f"m{m2} s{s2}"))
    return pair_angle_table(named, pairs, k, random_draws, mixed[min(mixed)].seed)


def replicated_angle_table(mixed: dict[int, RunConfig],
                           single: dict[tuple[int, int], RunConfig], k: int = 4,
                           random_draws: int = 50, kept_from: int = 2) -> pd.DataFrame:
    """:func:`angle_table` when the single-m runs of seeds below ``kept_from`` have no stored
    trajectories any more (only their summaries are committed) and later seeds were added: the
    table of the mixed runs with the single-m seeds ``< kept_from`` (as before, same cache
    key), plus the single-m pairs among the seeds ``>= kept_from`` ("m (same seed)" and
    "seed (same m)"); pairs between the two groups are not computed.  Same columns."""
    old = {key: c for key, c in single.items() if key[1] < kept_from}
    new = {key: c for key, c in single.items() if key[1] >= kept_from}
    base = angle_table(mixed, old, k=k, random_draws=random_draws)
    if not new:
        return base
    named = {f"m{m} s{s}": c for (m, s), c in new.items()}
    pairs = []
    for (m1, s1), (m2, s2) in combinations(sorted(new), 2):
        if s1 == s2:
            pairs.append(("m (same seed)", f"m{m1} s{s1}", f"m{m2} s{s2}"))
        elif m1 == m2:
            pairs.append(("seed (same m)", f"m{m1} s{s1}", f"m{m2} s{s2}"))
    extra = pair_angle_table(named, pairs, k, random_draws=0, seed=min(s for _, s in new))
    return pd.concat([base, extra], ignore_index=True)


def pair_angle_table(named: dict[str, RunConfig], pairs: list[tuple[str, str, str]],
                     k: int = 4, random_draws: int = 50, seed: int = 0,
                     last_fraction: float = 1.0) -> pd.DataFrame:
    """Subspace distances between the top-k PCA subspaces (of ``W_t - W_0``, same block) of
    named runs, for each ``(comparison, a, b)`` pair (comparison ``"layer"`` with ``a == b``:
    each layer against every later one of the same run), plus ``random_draws`` pairs of random
    k-subspaces drawn from measurement stream ``seed``.  ``last_fraction < 1``: PCA of the
    snapshots of the last ``last_fraction`` of training only (:func:`late_window`; centred, so
    the directions the weights still move along at the end: the *final* execution subspace).
    Cached; columns as :func:`angle_table`."""
    inputs = {"runs": {n: run_key(c) for n, c in named.items()}, "pairs": pairs, "k": k,
              "random_draws": random_draws}
    if last_fraction != 1.0:        # whole-trajectory keys stay as they were
        inputs["last_fraction"] = last_fraction
    return cached("subspace-angles", ANGLE_VERSION, inputs,
                  lambda: _angles(named, pairs, k, random_draws, seed, last_fraction))
