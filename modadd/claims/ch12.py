"""Chapter 12's claims N1–N3: each trajectory signal marks a mechanistic phase boundary of a
grokking run (Nanda et al.'s phases by the stated rule v2), tested against the same signal
shuffled in time.

- N1: the weight trajectory's lock-in (the paper's execution manifold, §4.1: the first
  snapshot from which ``W_t − W_0`` stays 90% inside its final top-k subspace; all parameters);
- N2: the fingerprint's DMD spectral change (the fingerprint study: the step where the DMD
  spectra of the windows before and after differ most);
- N3: the peak of the local learning coefficient (developmental interpretability: the LLC
  changes at phase transitions).

Table (``load`` / :func:`modadd.mechanism.event_table`): ``events`` — one row per run × event
(``run, seed, weight_decay, event, step, last_step``; ``step`` NaN: never): the boundaries
``train fit``, ``cleanup start``, ``cleanup end`` and the signals of
:data:`modadd.mechanism.SIGNALS`.  The grokking runs (weight decay > 0) are the replicates;
the weight-decay-0 run is a control.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd

from ..report import fmt_ci, interval, number
from ..stats import mean_ci
from .core import ClaimSpec, Decision, Evidence, Tables, declared, finite

BOUNDARIES = ("train fit", "cleanup start", "cleanup end")
N_DRAWS = 10_000                 # time-shuffled null: Monte Carlo draws
NULL_SEED = 20261207             # its fixed generator (and the null tables' fixed draw)
MIN_SEEDS = 3
SIGNAL = {"N1": "lock-in (all parameters)", "N2": "fingerprint spectral change",
          "N3": "LLC peak"}


@lru_cache(maxsize=None)
def load(preset: str = "book", variant: Optional[str] = None, **given) -> Tables:
    """N1–N3's table at ``preset`` from chapter 12's cached analyses (``given``: chapter 12's
    registry settings to change)."""
    from .. import mechanism as ME
    from .. import registry
    if variant is not None:
        raise ValueError(f"variant: N1–N3 have no variants, got {variant!r}")
    study = ME.study(registry.settings("ch12", preset, **given))
    return {"events": study["events"]}


def _per_seed(tables: Tables, signal: str) -> pd.DataFrame:
    """Grokking runs with the signal and all three boundaries: one row per seed with columns
    ``signal``, the boundaries and ``last_step``."""
    from ..mechanism import one_run_per_seed
    ev = tables["events"]
    grok = ev[ev.weight_decay > 0]
    one_run_per_seed(grok)
    wide = grok.pivot_table(index="seed", columns="event", values="step", dropna=False)
    for name in (signal, *BOUNDARIES):
        if name not in wide:
            wide[name] = np.nan
    last = grok.groupby("seed").last_step.max()
    out = wide[[signal, *BOUNDARIES]].rename(columns={signal: "signal"})
    out["last_step"] = last.reindex(out.index)
    return out.dropna()


def shuffled_distances(boundaries: np.ndarray, last: np.ndarray, n_draws: int = N_DRAWS,
                       seed: int = NULL_SEED) -> np.ndarray:
    """``[n_draws]`` mean over seeds of the distance from a step drawn uniformly from
    ``0..last[i]`` to seed i's nearest boundary (``boundaries [S, B]``)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, np.asarray(last, np.int64) + 1, size=(n_draws, len(last)))
    return np.abs(draws[..., None] - np.asarray(boundaries)[None]).min(axis=-1).mean(axis=1)


def _measure(tables: Tables, signal: str) -> Evidence:
    """Mean over seeds of the distance (steps) from the signal to the nearest phase boundary,
    its t interval, and the time-shuffled null (the signal's step drawn uniformly from each
    run's steps, :data:`N_DRAWS` draws): p = share of draws at least as close."""
    per = _per_seed(tables, signal)
    b = per[list(BOUNDARIES)].to_numpy(float)
    s = per.signal.to_numpy(float)
    gaps = s[:, None] - b
    nearest = np.abs(gaps).argmin(axis=1)
    dist = np.abs(gaps).min(axis=1)
    n = len(per)
    d = mean_ci(dist) if n else (np.nan, np.nan, np.nan)
    if n:
        null = shuffled_distances(b, per.last_step.to_numpy(float))
        p = float((1 + np.sum(null <= d[0])) / (1 + len(null)))
        null_ci = (float(null.mean()), *np.quantile(null, [0.025, 0.975]).tolist())
    else:
        p, null_ci = np.nan, (np.nan, np.nan, np.nan)
    lags = {name: mean_ci(gaps[:, j]) if n else (np.nan,) * 3
            for j, name in enumerate(BOUNDARIES)}
    counts = pd.Series([BOUNDARIES[j] for j in nearest]).value_counts() if n else pd.Series()
    closest = counts.index[0] if len(counts) else "—"
    ev = tables["events"]
    control = ev[(ev.weight_decay == 0) & (ev.event == signal)].step
    values = {"distance": d[0], "distance_low": d[1], "distance_high": d[2],
              "null_distance": null_ci[0], "null_low": null_ci[1], "null_high": null_ci[2],
              "p": p, "seeds": float(n)}
    for name, (mean, low, high) in lags.items():
        values.update({f"lag|{name}": mean, f"lag_low|{name}": low, f"lag_high|{name}": high})
    lag = lags.get(closest, (np.nan,) * 3)
    return Evidence(
        values=values,
        effect=(f"{signal}: {number(d[0], 0)} steps from the nearest phase boundary (mean over "
                f"{n} seeds), against {number(null_ci[0], 0)} for the same signal shuffled in "
                f"time; nearest boundary most often {closest} "
                f"({int(counts.iloc[0]) if len(counts) else 0} of {n}), lag "
                f"{number(lag[0], 0, signed=True)} steps" if n else
                f"{signal}: no grokking seed has the signal and all three boundaries"),
        ci=f"{interval(d, digits=0) or '—'} steps (t, over {n} seeds)",
        controls={"time-shuffled null: mean distance (2.5–97.5% of draws)":
                  f"{number(null_ci[0], 0)} [{number(null_ci[1], 0)}, {number(null_ci[2], 0)}]"
                  if n else "—",
                  "weight decay 0 (no grokking): signal at step":
                  ", ".join(number(v, 0) for v in control) if len(control) else "never"},
        p_value=p,
        notes={f"lag behind {name}": fmt_ci(lags[name], signed=True, digits=0)
               for name in BOUNDARIES})


def measure_n1(tables: Tables) -> Evidence:
    """N1: the lock-in of the whole parameter trajectory."""
    return _measure(tables, SIGNAL["N1"])


def measure_n2(tables: Tables) -> Evidence:
    """N2: the fingerprint's DMD spectral change."""
    return _measure(tables, SIGNAL["N2"])


def measure_n3(tables: Tables) -> Evidence:
    """N3: the LLC's peak."""
    return _measure(tables, SIGNAL["N3"])


def null_tables_for(signal: str):
    """The null data: each grokking run's signal step (where it has one: the same seeds as
    the claim's) replaced by a fixed uniform draw from its steps (generator ``NULL_SEED + 1``),
    the boundaries untouched."""
    def null_tables(tables: Tables) -> Tables:
        ev = tables["events"].copy()
        rng = np.random.default_rng(NULL_SEED + 1)
        rows = ev.index[(ev.event == signal) & (ev.weight_decay > 0) & ev.step.notna()]
        ev.loc[rows, "step"] = rng.integers(0, ev.loc[rows, "last_step"].to_numpy(np.int64) + 1)
        return {**tables, "events": ev}
    return null_tables


def _attention(tables: Tables) -> dict:
    """N1 with the attention matrices' lock-in (median of W_Q, W_K, W_V, W_O; the paper's
    per-block object) in place of the whole parameter vector's."""
    ev = tables["events"]
    swapped = ev[ev.event != SIGNAL["N1"]].copy()
    att = ev[ev.event == "lock-in (attention, median)"].assign(event=SIGNAL["N1"])
    return {"attention matrices' lock-in (median)": {**tables, "events": pd.concat(
        [swapped, att], ignore_index=True)}}


def decide_v1(ev: Evidence, th) -> Decision:
    n = int(ev["seeds"])
    if n < MIN_SEEDS:
        return Decision("not testable", f"{n} grokking seeds have the signal and all three "
                                        f"boundaries (needs {MIN_SEEDS})")
    text = (f"mean distance to the nearest boundary {ev['distance']:.0f} steps against "
            f"{ev['null_distance']:.0f} for the time-shuffled signal: p = {ev['p']:.3g}")
    if ev["p"] < th["alpha"]:
        return Decision("supported", f"{text} < {th['alpha']:g}")
    return Decision("not supported", f"{text} ≥ {th['alpha']:g}")


RULES = {cid: declared(cid, 1, __name__) for cid in SIGNAL}
RULES["N3"] = declared("N3", 2, __name__)             # v2: the LLC cadence actually used
HISTORY = {"N3": (declared("N3", 1, __name__),)}
_MEASURES = {"N1": measure_n1, "N2": measure_n2, "N3": measure_n3}
_CLAIMS = {
    "N1": ("the weight trajectory locks into its low-dimensional subspace at a mechanistic "
           "phase boundary of grokking", "§4.1 (lock-in) × Nanda et al. §5 (phases)"),
    "N2": ("the fingerprint's DMD spectrum changes at a mechanistic phase boundary of grokking",
           "the fingerprint study × Nanda et al. §5"),
    "N3": ("the local learning coefficient peaks at a mechanistic phase boundary of grokking",
           "developmental interpretability (LLC) × Nanda et al. §5"),
}

CLAIMS = tuple(ClaimSpec(
    id=cid, claim=_CLAIMS[cid][0], source=_CLAIMS[cid][1], chapter="12", tables=("events",),
    measure=_MEASURES[cid], null_tables=null_tables_for(SIGNAL[cid]), rule=RULES[cid],
    history=HISTORY.get(cid, ()),
    alternatives=_attention if cid == "N1" else None) for cid in SIGNAL)


def lag_sentence(record) -> str:
    """The lag of a record's signal behind each boundary, in words (mean and CI over seeds)."""
    v = record.values
    parts = []
    for name in BOUNDARIES:
        mean = v.get(f"lag|{name}", np.nan)
        if finite(mean):
            parts.append(f"{number(mean, 0, signed=True)} "
                         f"{interval((mean, v[f'lag_low|{name}'], v[f'lag_high|{name}']), digits=0, signed=True) or ''}"
                         f" behind {name}".replace("  ", " "))
    return "; ".join(parts)
