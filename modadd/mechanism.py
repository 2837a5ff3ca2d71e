"""Chapter 12: the mechanistic, developmental and trajectory views of one grokking run on one
time axis, and the lags between them.

Per run (all read from stored snapshots; nothing is retrained, every result is cached in
``data/results/analysis``):

- :func:`timeline` — a tidy ``(step, measure, value)`` table at every snapshot: Nanda et al.'s
  progress measures (:mod:`modadd.progress`: train/test, restricted and excluded loss, Gini,
  Σw², the number of key frequencies each snapshot's embedding has by the stated rule), the
  held-out accuracy, the growing-window r90 of the whole parameter trajectory with its
  random-walk null, the fraction of ``W_t − W_0`` outside the final top-k subspace (all
  parameters and each attention matrix), and the fingerprint's DMD spectral change;
- :func:`events` — the steps of the phase boundaries (both phase-rule versions), of the
  trajectory signals (lock-in, spectral change, LLC peak) and of every early-warning detector's
  first alarm;
- :func:`llc_timeline` — the local learning coefficient (:mod:`modadd.llc`) every
  ``llc_every`` steps at settings calibrated once (:func:`llc_calibration`).

Across runs, :func:`event_table` and :func:`lag_table` give the lag of each signal behind each
boundary (signal − boundary, steps) with Student-t intervals over seeds, and
:func:`nearest_boundary` the distance to the nearest boundary that claims N1–N3 test against a
time-shuffled null (:mod:`modadd.claims.ch12`).

Length: longer than ~400 lines because the chapter's three views (progress measures, LLC with
its calibration across checkpoints, trajectory signals) meet here on one time axis, and each
cached piece keeps its cache key beside the computation it names; :func:`study` ties them to
the registry and :func:`summary` writes the chapter's computed conclusions.
"""
from __future__ import annotations

from dataclasses import asdict
from typing import Iterable, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from . import metrics as M
from . import progress as P
from .analysis_cache import cached, is_cached
from .config import RunConfig, stream_seed
from .manifold import LOCK_IN_LEVEL
from .model import MATRIX_NAMES, Transformer, build_model
from .runs import require_parameter_snapshots
from .stats import mean_ci
from .store import load_or_train, run_key
from .validate import check_float, check_int

TIMELINE_VERSION = 1
LLC_VERSION = 1
THRESHOLD = 0.9                      # r90
SPECTRAL_WINDOW, SPECTRAL_DELAYS, SPECTRAL_RANK = 15, 3, 2   # as the DMD-growth detector
# the boundaries the lags are measured against (phase rule v2), in time order
BOUNDARIES = ("train fit", "cleanup start", "cleanup end")
# the trajectory signals (one step per run); the detectors' alarms are added by name
SIGNALS = ("lock-in (all parameters)", "lock-in (attention, median)",
           "fingerprint spectral change", "LLC peak")
LLC_GRID = {"step_sizes": (2.5e-5, 5e-5, 1e-4, 2e-4), "localizations": (100.0, 300.0, 1000.0)}


# ---- phase rule v2 ------------------------------------------------------------------------------
PHASE_RULE = 2


def phase_boundaries_v2(table: pd.DataFrame, fit_loss: float = 1e-2, drop: float = 0.5,
                        test_loss: float = 1e-2) -> dict[str, Optional[int]]:
    """Phase rule v2 (fixed 2026-12-07, after the pilot runs showed v1's memorisation end never
    fires at train fraction 0.5): memorisation ends when the training split is fit; the rest as
    v1 (:func:`modadd.progress.phase_boundaries`).

    - ``train fit`` = ``memorisation end``: first step with train loss < ``fit_loss``;
    - ``cleanup start``: first step from then on with test loss ≤ ``drop`` × its highest value
      since ``train fit``;
    - ``cleanup end``: first step from ``cleanup start`` on with test loss < ``test_loss``;
    - ``excluded-loss minimum``: the step of the lowest excluded loss up to ``cleanup start``
      (from there on the key-frequency directions carry the fit): not a boundary, reported to
      show whether circuit formation began before the training split was fit.

    v1's ``memorisation end`` (that minimum, when followed by a 10× rise) does not fire on the
    chapter's runs, where the excluded loss rises only ~2–4× (the book shows both versions)."""
    v1 = P.phase_boundaries(table, fit_loss=fit_loss, drop=drop, test_loss=test_loss)
    out = {"train fit": v1["train fit"], "memorisation end": v1["train fit"],
           "cleanup start": v1["cleanup start"], "cleanup end": v1["cleanup end"],
           "excluded-loss minimum": None}
    wide = table.pivot_table(index="step", columns="measure", values="value").sort_index()
    last = wide.index[-1] if out["cleanup start"] is None else out["cleanup start"]
    upto = wide.loc[:last, "excluded loss"]
    if len(upto):
        out["excluded-loss minimum"] = int(upto.idxmin())
    return out


# ---- trajectory: lock-in and growing-window r90 -------------------------------------------------
def increment_gram(snapshots, chunk: int = 65536) -> np.ndarray:
    """Gram matrix ``[n-1, n-1]`` (float64) of the increments of ``snapshots [n, D]`` (rows are
    flattened states; a memory-mapped array is read ``chunk`` columns at a time)."""
    check_int("chunk", chunk, 1)
    n, dim = snapshots.shape[0], int(np.prod(snapshots.shape[1:]))
    flat = snapshots.reshape(n, dim) if hasattr(snapshots, "reshape") else snapshots
    H = np.zeros((n - 1, n - 1))
    for start in range(0, dim, chunk):
        d = np.diff(np.asarray(flat[:, start:start + chunk], np.float64), axis=0)
        H += d @ d.T
    return H


def trajectory_curves(H: np.ndarray, dim: int, rng: np.random.Generator, null_draws: int,
                      threshold: float = THRESHOLD, level: float = LOCK_IN_LEVEL,
                      min_snapshots: int = 5) -> dict:
    """From an increment Gram ``H``: per snapshot the growing-window r (windows ``[0, t]``;
    NaN before ``min_snapshots``), its random-walk null (mean over ``null_draws`` walks with the
    same per-interval step norms in R^dim), the outside fraction of the final top-k subspace
    (k = the whole trajectory's r), and the lock-in index (first snapshot from which the
    outside fraction stays ≤ ``level``; None: never)."""
    check_int("min_snapshots", min_snapshots, 1)
    G = M.walk_gram(H)
    n = len(G)
    windows = [(0, t + 1) for t in range(n)]
    growing = M.window_ranks(G, windows, threshold)
    norms = np.sqrt(np.clip(np.diag(H), 0, None))
    walks = [M.random_walk_gram(norms, dim, rng) for _ in range(null_draws)]
    null = np.mean([M.window_ranks(g, windows, threshold) for g in walks], axis=0) \
        if walks else np.full(n, np.nan)
    growing[:min_snapshots - 1] = np.nan
    null[:min_snapshots - 1] = np.nan
    k = M.rank_at(M.spectrum_from_gram(G), threshold)
    outside = M.outside_fraction_from_gram(G, k)
    return {"growing": growing, "null": null, "outside": outside, "k": k,
            "lock_in": M.lock_in_index(outside, level)}


# ---- fingerprint: DMD spectral change -----------------------------------------------------------
def spectral_change(fingerprint: np.ndarray, window: int = SPECTRAL_WINDOW,
                    n_delays: int = SPECTRAL_DELAYS, rank: int = SPECTRAL_RANK) -> np.ndarray:
    """``[R]``: at record ``i``, the spectral distance (:func:`modadd.dmd.spectral_distance`)
    between the rank-``rank`` RRR-DMD eigenvalues of the fingerprint over the ``window``
    records before ``i`` and over the ``window`` records from ``i`` on (each window centred,
    ``n_delays`` delays); NaN where a window does not fit or has no variance.  Its maximum
    marks where the fingerprint's dynamics change most (a two-sided, descriptive statistic;
    :data:`modadd.detect.DETECTORS` holds the causal alarm)."""
    from .dmd import data_matrices, rrr_dmd, spectral_distance
    check_int("window", window, 2 * n_delays + 2)
    check_int("n_delays", n_delays, 1)
    check_int("rank", rank, 1)
    F = np.asarray(fingerprint, float)
    if F.ndim != 2:
        raise ValueError(f"fingerprint: must be [records, quantiles], got shape {F.shape}")

    def spectrum(Y: np.ndarray) -> Optional[np.ndarray]:
        Y = (Y - Y.mean(axis=0)).T
        Z, Zp = data_matrices([Y], n_delays)
        if np.linalg.norm(Z) < 1e-9:
            return None
        return rrr_dmd(Z, Zp, rank).eigenvalues

    out = np.full(len(F), np.nan)
    for i in range(window, len(F) - window + 1):
        before, after = spectrum(F[i - window:i]), spectrum(F[i:i + window])
        if before is not None and after is not None and len(before) == len(after):
            out[i] = spectral_distance(before, after)
    return out


# ---- one run ------------------------------------------------------------------------------------
def _long(step, name: str, values) -> list[dict]:
    return [{"step": int(s), "measure": name, "value": float(v)} for s, v in zip(step, values)]


def compute_timeline(run, null_draws: int = 20) -> dict:
    """:func:`timeline`'s content for a loaded run (weights needed): ``{"table": rows,
    "keys": key frequencies, "k": {block: k}, "lock_in": {block: step or None}}``."""
    require_parameter_snapshots(run, "the chapter-12 timeline")
    cfg = run.config
    steps = np.asarray(run.snapshot_steps)
    measures = P.progress_measures(run)
    keys = measures.attrs["key_frequencies"]
    rows = measures.to_dict("records")
    # the key-frequency count of each snapshot's own embedding, by the same rule
    model = build_model(cfg.model, cfg.task, seed=0).to(torch.float64)
    counts = []
    for index in range(len(steps)):
        model.load_flat_parameters(np.array(run.params[index]))
        counts.append(len(P.key_frequencies(P.embedding_norms(model, cfg.task.p))))
    rows += _long(steps, "key frequencies (count)", counts)
    acc = run.metrics[run.metrics.metric == "accuracy"].groupby("step").value.mean()
    rows += _long(acc.index, "test accuracy", acc.to_numpy())
    rng = np.random.default_rng(stream_seed(cfg.seed, "measure:mechanism-trajectory"))
    params = run.params
    blocks = {"all parameters": (increment_gram(params), int(params.shape[1]))}
    snaps = run.snapshots                                   # [n, L, 4, d, d]
    for layer in range(snaps.shape[1]):
        for b, name in enumerate(MATRIX_NAMES):
            label = name if snaps.shape[1] == 1 else f"L{layer} {name}"
            blocks[label] = (increment_gram(snaps[:, layer, b]), int(np.prod(snaps.shape[-2:])))
    k, lock = {}, {}
    for label, (H, dim) in blocks.items():
        curves = trajectory_curves(H, dim, rng, null_draws if label == "all parameters" else 0)
        if label == "all parameters":
            rows += _long(steps, "r90 growing (all parameters)", curves["growing"])
            rows += _long(steps, "r90 growing, random walk (all parameters)", curves["null"])
        rows += _long(steps, f"outside fraction ({label})", curves["outside"])
        k[label] = int(curves["k"])
        lock[label] = None if curves["lock_in"] is None else int(steps[curves["lock_in"]])
    fp = run.fingerprints
    rows += _long(fp["steps"], "fingerprint spectral change", spectral_change(fp["heldout"]))
    table = pd.DataFrame(rows, columns=["step", "measure", "value"])
    return {"table": table.to_dict("list"), "keys": [int(x) for x in keys], "k": k,
            "lock_in": lock}


def _timeline_inputs(cfg: RunConfig, null_draws: int) -> dict:
    return {"run": run_key(cfg), "null_draws": null_draws, "threshold": THRESHOLD,
            "level": LOCK_IN_LEVEL, "spectral": [SPECTRAL_WINDOW, SPECTRAL_DELAYS,
                                                 SPECTRAL_RANK]}


def _llc_inputs(cfg: RunConfig, settings, every: int) -> dict:
    return {"run": run_key(cfg), "settings": settings.to_dict(), "every": every}


def _timeline_result(cfg: RunConfig, null_draws: int) -> dict:
    inputs = _timeline_inputs(cfg, null_draws)
    return cached("mechanism-timeline", TIMELINE_VERSION, inputs, lambda: compute_timeline(
        load_or_train(cfg, trajectories=True, progress=False), null_draws))


def timeline(cfg: RunConfig, null_draws: int = 20) -> pd.DataFrame:
    """Tidy ``(step, measure, value)`` table of one run's chapter-12 measures (cached; computing
    it needs the run's full-parameter snapshots).  ``attrs``: ``key_frequencies`` (the final
    embedding's, by :func:`modadd.progress.key_frequencies`), ``k`` and ``lock_in`` (step or
    None) per block ("all parameters" and each attention matrix)."""
    check_int("null_draws", null_draws, 0)
    result = _timeline_result(cfg, null_draws)
    table = pd.DataFrame(result["table"])
    table.attrs.update(key_frequencies=result["keys"], k=result["k"], lock_in=result["lock_in"])
    return table


def llc_calibration(cfg: RunConfig, base=None, grid: Optional[dict] = None,
                    index: int = -1) -> pd.DataFrame:
    """:func:`modadd.llc.calibrate` at snapshot ``index`` (default: the last, a grokked model)
    of run ``cfg`` over ``grid`` (step sizes × localizations; default :data:`LLC_GRID`), other
    settings from ``base`` (default 4 chains × 200 draws after 100 burn-in, batches of 256);
    cached.  The table's ``recommended`` row is the setting every LLC of the chapter uses."""
    from . import llc as L
    base = L.SGLDSettings(chains=4, draws=200, burnin=100, batch_size=256) if base is None \
        else base
    grid = dict(LLC_GRID if grid is None else grid)
    inputs = {"run": run_key(cfg), "base": base.to_dict(), "grid": grid, "index": index}

    def compute() -> pd.DataFrame:
        run = load_or_train(cfg, trajectories=True, progress=False)
        require_parameter_snapshots(run, "the LLC calibration")
        model = _model(cfg)
        model.load_flat_parameters(np.array(run.params[index]))
        data = cfg.task.split_data()["train"]
        result = L.calibrate(model, L.example_nll(cfg), data, grid["step_sizes"],
                             grid["localizations"], base, seed=cfg.seed)
        table = result.table.copy()
        table["step"] = int(np.asarray(run.snapshot_steps)[index])
        for name in ("chains", "draws", "burnin", "batch_size"):
            table[name] = getattr(base, name)
        return table

    return cached("mechanism-llc-calibration", LLC_VERSION, inputs, compute)


def _model(cfg: RunConfig) -> Transformer:
    with torch.random.fork_rng(devices=[]):       # a throwaway init must not move the RNG
        return Transformer.for_task(cfg.model, cfg.task)


def recommended_settings(calibration: pd.DataFrame):
    """The SGLD settings the calibration table recommends (``ValueError`` if none is)."""
    from . import llc as L
    rows = calibration[calibration.recommended.fillna(False).astype(bool)]
    if rows.empty:
        raise ValueError("calibration: no setting is acceptable and on a plateau; widen the grid")
    row = rows.iloc[0]
    return L.SGLDSettings(step_size=float(row.step_size), localization=float(row.localization),
                          chains=int(row.chains), draws=int(row.draws), burnin=int(row.burnin),
                          batch_size=None if pd.isna(row.batch_size) else int(row.batch_size))


def checkpoint_calibration(cfg: RunConfig, base, step_sizes: Sequence[float],
                           localization: float, steps: Sequence[int]) -> pd.DataFrame:
    """:func:`modadd.llc.calibrate` over ``step_sizes`` at one ``localization`` at each of the
    stored snapshots ``steps`` of run ``cfg`` (other settings from ``base``), cached; one row
    per (step, step size) with the estimator's diagnostics and ``acceptable``."""
    from . import llc as L
    steps = [int(x) for x in steps]
    inputs = {"run": run_key(cfg), "base": base.to_dict(), "step_sizes": list(step_sizes),
              "localization": float(localization), "steps": steps}

    def compute() -> pd.DataFrame:
        run = load_or_train(cfg, trajectories=True, progress=False)
        require_parameter_snapshots(run, "the LLC calibration")
        stored = np.asarray(run.snapshot_steps)
        missing = sorted(set(steps) - set(stored.tolist()))
        if missing:
            raise ValueError(f"steps: must be stored snapshot steps of run {run.key}, got "
                             f"{missing}")
        data = cfg.task.split_data()["train"]
        tables = []
        for step in steps:
            model = _model(cfg)
            model.load_flat_parameters(np.array(run.params[int(np.flatnonzero(stored == step)[0])]))
            result = L.calibrate(model, L.example_nll(cfg), data, step_sizes, (localization,),
                                 base, seed=cfg.seed)
            tables.append(result.table.assign(step=step))
        return pd.concat(tables, ignore_index=True)

    return cached("mechanism-llc-checkpoints", LLC_VERSION, inputs, compute)


def settings_across(last: pd.DataFrame, checkpoints: pd.DataFrame, base):
    """``(settings, how)`` by the chapter's calibration rule: the localization γ that the
    calibration at the last snapshot (``last``, :func:`llc_calibration`) chooses
    (:func:`chosen_settings`), then the largest step size ε that is acceptable (no divergence,
    no negative chain, no drift, split-R̂ ≤ 1.1) at the last snapshot *and* at every checkpoint
    of ``checkpoints`` (:func:`checkpoint_calibration` at that γ); if none is, the smallest
    step size.  Devinterp's guidance: the largest step size whose chains are stable at every
    checkpoint the estimate will be read at."""
    from dataclasses import replace as _replace
    single, _ = chosen_settings(last, base)
    gamma = single.localization
    rows = pd.concat([last[last.localization == gamma], checkpoints[checkpoints.localization
                                                                    == gamma]],
                     ignore_index=True)
    ok = rows.assign(acceptable=rows.acceptable.fillna(False).astype(bool)) \
        .groupby("step_size").acceptable.all()
    if ok.any():
        eps = float(ok[ok].index.max())
        how = (f"γ from the last snapshot's calibration; ε the largest step size acceptable at "
               f"every checkpoint ({rows.step.nunique()})")
    else:
        eps = float(ok.index.min())
        how = "no step size is acceptable at every checkpoint: the smallest one"
    return _replace(single, step_size=eps, localization=gamma), how


def llc_timeline(cfg: RunConfig, settings, every: int = 50) -> pd.DataFrame:
    """The LLC (:func:`modadd.llc.run_llc`, chain seed = the run's seed) at every stored snapshot
    whose step is a multiple of ``every``, cached: one row per snapshot (``step``, ``llc``, its
    interval and the estimator's diagnostics)."""
    from . import llc as L
    check_int("every", every, 1)
    inputs = _llc_inputs(cfg, settings, every)

    def compute() -> pd.DataFrame:
        run = load_or_train(cfg, trajectories=True, progress=False)
        steps = np.asarray(run.snapshot_steps)
        chosen = [i for i, s in enumerate(steps) if s % every == 0]
        return L.run_llc(run, settings, chosen, seed=cfg.seed, progress=True)

    return cached("mechanism-llc", LLC_VERSION, inputs, compute)


def llc_peak(llc: pd.DataFrame) -> Optional[int]:
    """Step of the highest finite LLC estimate (None if there is none)."""
    finite = llc[np.isfinite(llc.llc.astype(float))]
    return None if finite.empty else int(finite.step.iloc[int(np.argmax(finite.llc))])


def events(cfg: RunConfig, table: pd.DataFrame, llc: Optional[pd.DataFrame] = None) -> dict:
    """The steps of one run's events (None: did not happen): phase boundaries by rule v1
    (``"v1: …"``) and v2, the grokking step (held-out accuracy ≥ 0.99), the trajectory
    signals of :data:`SIGNALS` and each detector's first alarm (``"alarm: <detector>"``, over
    the whole run, at the detectors' chapter-10 thresholds)."""
    from . import detect as DT
    run = load_or_train(cfg, progress=False)
    measures = table[table.measure.isin(["train loss", "test loss", "excluded loss"])]
    out: dict[str, Optional[int]] = {}
    out.update({f"v1: {k}": v for k, v in P.phase_boundaries(measures).items()})
    out.update(phase_boundaries_v2(measures))
    series = DT.Series.from_run(run)
    out["grokking (accuracy ≥ 0.99)"] = DT.grok_step(series)
    lock = table.attrs["lock_in"]
    out["lock-in (all parameters)"] = lock["all parameters"]
    attention = [step for block, step in lock.items() if block != "all parameters"]
    out["lock-in (attention, median)"] = (None if not attention or any(v is None for v in attention)
                                          else int(np.median(attention)))
    change = table[table.measure == "fingerprint spectral change"].dropna(subset=["value"])
    out["fingerprint spectral change"] = None if change.empty else \
        int(change.step.iloc[int(np.argmax(change.value))])
    out["LLC peak"] = None if llc is None else llc_peak(llc)
    for det in DT.DETECTORS:
        if det.usable(series):
            # the framework's score divides by a mean that can be 0 (inf is its value then)
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = det.score(series)
            out[f"alarm: {det.name}"] = DT.first_fire(scores, series.steps, det.threshold)
    out["last step"] = int(run.last_step)
    return out


# ---- across runs --------------------------------------------------------------------------------
def event_table(per_run: dict[RunConfig, dict]) -> pd.DataFrame:
    """One row per run × event: ``run, seed, weight_decay, event, step`` (NaN: never), plus
    ``last_step``."""
    rows = []
    for cfg, ev in per_run.items():
        if "last step" not in ev:
            raise ValueError(f"per_run: the events of run {run_key(cfg)} lack 'last step'")
        for name, step in ev.items():
            if name == "last step":
                continue
            rows.append({"run": run_key(cfg), "seed": cfg.seed,
                         "weight_decay": cfg.train.weight_decay, "event": name,
                         "step": np.nan if step is None else float(step),
                         "last_step": float(ev["last step"])})
    return pd.DataFrame(rows, columns=["run", "seed", "weight_decay", "event", "step",
                                       "last_step"])


def lag_table(events_: pd.DataFrame, signals: Optional[Sequence[str]] = None,
              boundaries: Sequence[str] = BOUNDARIES) -> pd.DataFrame:
    """Lag of each signal behind each boundary (signal − boundary, steps; negative: the signal
    comes first) over the grokking runs (weight decay > 0) that have both: mean, Student-t 95%
    interval over seeds, the seeds and how many of them have the signal before the boundary."""
    grok = events_[events_.weight_decay > 0]
    one_run_per_seed(grok)
    wide = grok.pivot_table(index="seed", columns="event", values="step", dropna=False)
    if signals is None:
        signals = [e for e in dict.fromkeys(grok.event)
                   if e in SIGNALS or e.startswith("alarm: ")]
    rows = []
    for signal in signals:
        for boundary in boundaries:
            if signal not in wide or boundary not in wide:
                continue
            lag = (wide[signal] - wide[boundary]).dropna().to_numpy(float)
            mean, low, high = mean_ci(lag) if lag.size else (np.nan, np.nan, np.nan)
            rows.append({"signal": signal, "boundary": boundary, "seeds": int(lag.size),
                         "lag": mean, "low": low, "high": high,
                         "before": int((lag < 0).sum())})
    return pd.DataFrame(rows, columns=["signal", "boundary", "seeds", "lag", "low", "high",
                                       "before"])


def one_run_per_seed(grok: pd.DataFrame) -> None:
    """ValueError unless the grokking runs of an event table have one run per seed (the seeds
    are the replicates every interval is over)."""
    runs = grok.groupby("seed").run.nunique()
    if (runs > 1).any():
        raise ValueError(f"events: one grokking run per seed is needed (seeds are the "
                         f"replicates), got several for seeds {runs[runs > 1].index.tolist()}")


def nearest_boundary(signal: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """Distance of each signal step to the nearest of its run's boundaries: ``signal [..., S]``
    against ``boundaries [S, B]`` (NaN boundaries ignored) → ``[..., S]``."""
    b = np.asarray(boundaries, float)
    s = np.asarray(signal, float)[..., None]
    return np.nanmin(np.abs(s - b), axis=-1)


def correlation_table(per_run: dict[RunConfig, tuple[pd.DataFrame, pd.DataFrame]],
                      pairs=(("r90 growing (all parameters)", "LLC"),
                             ("r90 growing (all parameters)", "key frequencies (count)"),
                             ("r90 growing, random walk (all parameters)", "LLC"),
                             ("r90 growing, random walk (all parameters)",
                              "key frequencies (count)"))) -> pd.DataFrame:
    """Per run and pair of curves, the Spearman correlation over the steps where the LLC was
    estimated (``per_run``: cfg → (timeline, llc table)); rows ``seed, weight_decay, x, y,
    rho, points``.  The random-walk r90 grows with time too: its correlation is the control."""
    from scipy.stats import spearmanr
    rows = []
    for cfg, (table, llc) in per_run.items():
        wide = table.pivot_table(index="step", columns="measure", values="value")
        wide = wide.join(llc.set_index("step")["llc"].rename("LLC"), how="inner")
        for x, y in pairs:
            part = wide[[x, y]].dropna()
            varies = len(part) > 2 and part[x].nunique() > 1 and part[y].nunique() > 1
            rho = spearmanr(part[x], part[y]).statistic if varies else np.nan   # else undefined
            rows.append({"seed": cfg.seed, "weight_decay": cfg.train.weight_decay, "x": x,
                         "y": y, "rho": float(rho), "points": len(part)})
    return pd.DataFrame(rows)


# ---- the chapter's study ------------------------------------------------------------------------
def llc_base(s):
    """The SGLD settings the calibration varies (``ε``, ``γ``) around, from chapter 12's registry
    settings ``s``."""
    from . import llc as L
    return L.SGLDSettings(chains=s.llc_chains, draws=s.llc_draws, burnin=s.llc_burnin,
                          batch_size=s.llc_batch)


def chosen_settings(calibration: pd.DataFrame, base):
    """``(settings, how)``: the calibration's recommended setting, or — when no setting is both
    acceptable and on a plateau (small models, short chains) — the acceptable one with the
    largest step size, else ``base``; ``how`` says which."""
    from dataclasses import replace as _replace
    try:
        return recommended_settings(calibration), "recommended by the calibration"
    except ValueError:
        ok = calibration[calibration.acceptable.astype(bool)]
        if ok.empty:
            return base, "no calibrated setting was acceptable: the base setting"
        row = ok.sort_values(["step_size", "localization"]).iloc[-1]
        return (_replace(base, step_size=float(row.step_size),
                         localization=float(row.localization)),
                "no setting on a plateau: the acceptable one with the largest step size")


def study(s, progress: bool = False) -> dict:
    """Everything chapter 12 shows, from its registry settings ``s`` (``registry.settings("ch12",
    preset)``): ``runs`` (role → configs), ``timelines`` and ``llc`` (run key → table),
    ``calibration`` (at the first run's last snapshot), ``single`` (the setting it alone
    recommends, with ``single_how``) and ``single_llc`` (the first run's LLC at that setting,
    None if it is the one used), ``checkpoints`` (:func:`checkpoint_calibration` at the first
    run's phase boundaries), ``settings`` (the setting used: :func:`settings_across`) and
    ``settings_how``, ``events`` (:func:`event_table`).  Each piece is a cached analysis; computing one on a miss needs
    the run's weights (never under ``MODADD_NO_TRAIN=1``)."""
    from tqdm.auto import tqdm
    roles = s.runs()
    cfgs = roles["mechanism"] + roles["mechanism null"]
    grid = {"step_sizes": tuple(s.llc_step_sizes), "localizations": tuple(s.llc_localizations)}
    first = roles["mechanism"][0]
    calibration = llc_calibration(first, llc_base(s), grid)
    single, single_how = chosen_settings(calibration, llc_base(s))
    # the checkpoints: the first run's phase boundaries (rule v2) that exist, and its last step
    first_table = timeline(first, s.null_draws)
    bounds = phase_boundaries_v2(first_table[first_table.measure.isin(
        ["train loss", "test loss", "excluded loss"])])
    last_step = int(first_table.step.max())
    marks = sorted({bounds[b] for b in BOUNDARIES if bounds[b] is not None} - {last_step})
    checkpoints = checkpoint_calibration(first, llc_base(s), grid["step_sizes"],
                                         single.localization, marks) if marks else \
        calibration.iloc[:0]
    settings, how = settings_across(calibration, checkpoints, llc_base(s))
    # the estimate a last-snapshot-only calibration would have used, on the first run
    single_llc = llc_timeline(first, single, s.llc_every) if single != settings else None
    timelines, llcs, per_run = {}, {}, {}
    # a bar only while something is computed (a page read from the caches shows none)
    missing = any(not is_cached("mechanism-timeline", TIMELINE_VERSION,
                                _timeline_inputs(c, s.null_draws))
                  or not is_cached("mechanism-llc", LLC_VERSION,
                                   _llc_inputs(c, settings, s.llc_every)) for c in cfgs)
    for cfg in tqdm(cfgs, desc="chapter 12 runs", disable=not (progress and missing)):
        key = run_key(cfg)
        timelines[key] = timeline(cfg, s.null_draws)
        llcs[key] = llc_timeline(cfg, settings, s.llc_every)
        per_run[cfg] = events(cfg, timelines[key], llcs[key])
    return {"runs": roles, "timelines": timelines, "llc": llcs, "calibration": calibration,
            "checkpoints": checkpoints, "single": single, "single_how": single_how,
            "single_llc": single_llc, "settings": settings, "settings_how": how,
            "events": event_table(per_run)}


# ---- the chapter's computed summary -------------------------------------------------------------
def summary(records, overview: pd.DataFrame, lags: pd.DataFrame, at_boundary: pd.DataFrame,
            correlations: pd.DataFrame, s) -> str:
    """Chapter 12's "where the views meet" list (Markdown), every number from its arguments:
    the N1–N3 ``records``, the per-run ``overview`` (columns ``weight decay``, ``key
    frequencies``, the boundaries, ``excluded-loss minimum``, ``v1: memorisation end``), the
    :func:`lag_table`, the LLC ``at_boundary`` table (one row per grokking seed) and the
    grokking runs' :func:`correlation_table`; ``s``: the chapter's registry settings."""
    from .grokking import NANDA_REFERENCE
    from .report import ci_text, fmt_ci, number
    grok = overview[overview["weight decay"] > 0]
    n = len(grok)
    lines = []
    fits = grok["train fit"].to_numpy(float)
    starts, ends = grok["cleanup start"].to_numpy(float), grok["cleanup end"].to_numpy(float)
    ref = NANDA_REFERENCE.get(float(s.fraction))
    lines.append(
        f"- **Phases.** Over {n} seeds: train fit at step {ci_text(fits, 0)}, cleanup start "
        f"{ci_text(starts, 0)}, cleanup end {ci_text(ends, 0)} (mean [95% CI])."
        + (f" Nanda et al.'s own run at fraction {s.fraction:g} reached training loss "
           f"< 1e-2 at {ref['train loss < 1e-2']} and held-out loss < 1e-2 at "
           f"{ref['test loss < 1e-2']} (chapter 9 §7)." if ref else ""))
    early = grok["excluded-loss minimum"].to_numpy(float) < fits
    v1 = int(np.isfinite(grok["v1: memorisation end"].to_numpy(float)).sum())
    lines.append(
        f"- **Memorisation and circuit formation overlap.** The excluded loss turns up before "
        f"the training split is fit in {int(early.sum())} of {n} seeds: removing the key "
        f"frequencies starts to hurt while memorisation is still going on, unlike the separated "
        f"phases of Nanda et al.'s fraction-0.3 run. Phase rule v1's memorisation end (a tenfold "
        f"rise of the excluded loss) fires in {v1} of {n} seeds; v2 is used throughout.")
    counts = np.array([0 if k == "none" else len(str(k).split(", "))
                       for k in grok["key frequencies"]], float)
    lines.append(f"- **Key frequencies.** {ci_text(counts, 1)} per seed (Nanda et al.: 5 on "
                 "their run); the sets differ between seeds (table in section 1).")
    for record in records:
        v = record.values
        nearest = min(BOUNDARIES, key=lambda b: abs(v.get(f"lag|{b}", np.inf))
                      if np.isfinite(v.get(f"lag|{b}", np.nan)) else np.inf)
        lag = (v.get(f"lag|{nearest}", np.nan), v.get(f"lag_low|{nearest}", np.nan),
               v.get(f"lag_high|{nearest}", np.nan))
        lines.append(
            f"- **{record.id} ({record.verdict}).** {record.effect}. Its mean lag is smallest "
            f"behind {nearest}: {fmt_ci(lag, 0, signed=True)} steps.")
    alarm = lags[lags.signal.str.startswith("alarm: ") & (lags.boundary == "cleanup start")]
    if len(alarm):
        first = alarm.sort_values("lag").iloc[0]
        lines.append(
            f"- **Detectors.** Behind cleanup start, the earliest alarm on average is "
            f"\"{first.signal.replace('alarm: ', '')}\" at "
            f"{fmt_ci((first.lag, first.low, first.high), 0, signed=True)} steps "
            f"({first.before} of {first.seeds} seeds before it).")
    if len(at_boundary) and {"train fit", "cleanup end"} <= set(at_boundary.columns):
        drop = (at_boundary["cleanup end"] - at_boundary["train fit"]).to_numpy(float)
        lines.append(
            f"- **LLC.** At train fit {ci_text(at_boundary['train fit'], 0)}, at cleanup end "
            f"{ci_text(at_boundary['cleanup end'], 0)}; paired change over circuit formation "
            f"and cleanup {ci_text(drop, 0, signed=True)} (mean [95% CI] over seeds).")
    if len(correlations):
        rho = correlations.groupby(["x", "y"], sort=False).rho.apply(list)
        real = [(x, y) for x, y in rho.index if "random walk" not in x
                and (x.replace("growing", "growing, random walk"), y) in rho.index]
        control = "; ".join(
            f"with the {y.replace(' (count)', '')} "
            f"{ci_text(rho[(x.replace('growing', 'growing, random walk'), y)], 2)}"
            for x, y in real)
        defined = [(x, y) for x, y in real if np.isfinite(rho[(x, y)]).any()]
        if real and not defined:
            lines.append(
                "- **Does r90 track the circuit or the LLC?** Neither: over the steps where the "
                "LLC was estimated, the growing-window r90 of the whole parameter trajectory "
                "does not change in any grokking seed (Spearman ρ undefined), while the LLC and "
                "the number of key frequencies do. The random walks' r90, which keeps growing, "
                f"has ρ {control} (mean [95% CI] over seeds): the control a growing rank would "
                "give by time alone.")
        elif real:
            parts = [f"with the {y.replace(' (count)', '')}: {ci_text(rho[(x, y)], 2)}"
                     for x, y in real]
            lines.append("- **Does r90 track the circuit or the LLC?** Spearman ρ of the "
                         "growing-window r90 " + "; ".join(parts) + f" (random-walk control: "
                         f"{control}).")
    lines.append(
        f"- **Where we differ from Nanda et al.** Training fraction {s.fraction:g} (theirs "
        "0.3: ~10 000 steps per run, beyond this CPU budget for five seeds); phase boundaries "
        "by a stated rule on the losses, not by eye; key frequencies by a stated threshold on "
        "the embedding's spectrum; the LLC from our re-implementation of devinterp's SGLD "
        "estimator (devinterp's torch pin conflicts with this study's), calibrated across "
        "checkpoints as shown above.")
    return "\n".join(lines)
