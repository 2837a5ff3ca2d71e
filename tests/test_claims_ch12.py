"""N1–N3 (chapter 12) on hand-made event tables: the time-shuffled null against its exact
expectation, each rule's supportive, far, too-few-seeds and control cases, the signal each claim
reads, the attention-lock-in alternative, and the null tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import claims
from modadd.claims import ch12

LOCK, ATTENTION = "lock-in (all parameters)", "lock-in (attention, median)"
SPECTRAL, LLC = "fingerprint spectral change", "LLC peak"
BOUNDS = ("train fit", "cleanup start", "cleanup end")
# five grokking seeds: (train fit, cleanup start, cleanup end, last step)
SEEDS = {0: (250, 600, 900, 1600), 1: (300, 700, 1000, 1800), 2: (280, 650, 1100, 2000),
         3: (350, 750, 1050, 1700), 4: (260, 620, 980, 1900)}
OFFSETS = {0: 5, 1: -8, 2: 10, 3: -3, 4: 0}          # signal − cleanup start, steps


def _exact_null(bounds, last) -> float:
    """E over u uniform on {0..last} of min_j |u − b_j|, averaged over seeds, in closed form: the
    two ends contribute triangular sums, a gap g between boundaries floor(g²/4)."""
    total = 0.0
    for b, L in zip(bounds, last):
        b = sorted(int(v) for v in b)
        s = b[0] * (b[0] + 1) // 2 + (L - b[-1]) * (L - b[-1] + 1) // 2
        s += sum((hi - lo) ** 2 // 4 for lo, hi in zip(b, b[1:]))
        total += s / (L + 1)
    return total / len(last)


def _spread(bounds, last) -> float:
    """Standard deviation of one draw's seed-mean distance (brute force over every step)."""
    var = 0.0
    for b, L in zip(bounds, last):
        u = np.arange(L + 1)[:, None]
        d = np.abs(u - np.asarray(b)[None]).min(axis=1)
        var += d.var()
    return math.sqrt(var) / len(last)


def _events(signals: dict[str, dict[int, float]], control: dict | None = None) -> dict:
    """``{"events": …}``: the five grokking seeds' boundaries and the given signals (name →
    {seed: step, None for NaN}), plus one weight-decay-0 run (seed 0, 400 steps) whose rows
    would change every number if they were counted."""
    rows = []
    for seed, (*bounds, last) in SEEDS.items():
        events = dict(zip(BOUNDS, bounds))
        events.update({name: at[seed] for name, at in signals.items() if seed in at})
        rows += [{"run": f"grok{seed}", "seed": seed, "weight_decay": 1.0, "event": name,
                  "step": np.nan if step is None else float(step), "last_step": float(last)}
                 for name, step in events.items()]
    control = {"train fit": 40, "cleanup start": 60, "cleanup end": None, LOCK: 200,
               ATTENTION: 210, SPECTRAL: 220, LLC: 230} if control is None else control
    rows += [{"run": "wd0", "seed": 0, "weight_decay": 0.0, "event": name,
              "step": np.nan if step is None else float(step), "last_step": 400.0}
             for name, step in control.items()]
    return {"events": pd.DataFrame(rows)}


def _at_cleanup(offsets=OFFSETS) -> dict[int, float]:
    return {seed: SEEDS[seed][1] + off for seed, off in offsets.items()}


def _at_end() -> dict[int, float]:
    return {seed: SEEDS[seed][3] for seed in SEEDS}


# ---- the time-shuffled null ---------------------------------------------------------------------
def test_exact_null_helper_by_brute_force():
    b, last = [[3, 7], [0, 10]], [12, 10]
    brute = np.mean([np.mean([min(abs(u - x) for x in bb) for u in range(L + 1)])
                     for bb, L in zip(b, last)])
    assert _exact_null(b, last) == pytest.approx(brute, abs=1e-12)


def test_shuffled_distances_converge_to_the_exact_expectation():
    bounds = np.array([v[:3] for v in SEEDS.values()], float)
    last = np.array([v[3] for v in SEEDS.values()], float)
    draws = ch12.shuffled_distances(bounds, last, n_draws=20000, seed=11)
    assert draws.shape == (20000,)
    exact, spread = _exact_null(bounds, last), _spread(bounds, last)
    assert draws.mean() == pytest.approx(exact, abs=5 * spread / math.sqrt(20000))
    assert draws.std() == pytest.approx(spread, rel=0.05)
    np.testing.assert_array_equal(draws, ch12.shuffled_distances(bounds, last, 20000, seed=11))
    assert not np.array_equal(draws, ch12.shuffled_distances(bounds, last, 20000, seed=12))
    # a one-seed run with a boundary at each end: the mean distance to {0, L} is floor(L²/4)/(L+1)
    one = ch12.shuffled_distances(np.array([[0.0, 100.0]]), np.array([100.0]), 20000, seed=3)
    assert one.mean() == pytest.approx(2500 / 101, abs=5 * 14.5 / math.sqrt(20000))
    assert one.min() >= 0 and one.max() <= 50


# ---- N1: measure and rule -----------------------------------------------------------------------
def _gaps(signal: dict[int, float]) -> np.ndarray:
    return np.array([[signal[s] - b for b in SEEDS[s][:3]] for s in sorted(signal)], float)


def test_n1_signal_at_cleanup_start_is_supported():
    signal = _at_cleanup()
    rec = claims.evaluate("N1", _events({LOCK: signal, ATTENTION: _at_cleanup()}))
    assert rec.verdict == "supported", rec.why
    gaps = _gaps(signal)
    assert rec.values["seeds"] == 5
    assert rec.values["distance"] == pytest.approx(np.abs(gaps).min(axis=1).mean(), abs=1e-12)
    assert rec.values["distance"] == pytest.approx((5 + 8 + 10 + 3 + 0) / 5, abs=1e-12)
    # nothing in 10 000 shuffled draws comes as close: p = (1 + 0) / (1 + 10 000)
    assert rec.values["p"] == pytest.approx(1 / (1 + ch12.N_DRAWS)) and rec.p_value < 1e-3
    # the Monte Carlo null's mean against its exact expectation
    bounds = [v[:3] for v in SEEDS.values()]
    exact = _exact_null(bounds, [v[3] for v in SEEDS.values()])
    assert rec.values["null_distance"] == pytest.approx(exact, rel=0.03)
    assert rec.values["null_low"] < rec.values["null_distance"] < rec.values["null_high"]
    # the distance's t interval over seeds
    d = np.abs(gaps).min(axis=1)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / math.sqrt(5)
    assert (rec.values["distance_low"], rec.values["distance_high"]) == \
        pytest.approx((d.mean() - half, d.mean() + half), abs=1e-9)
    # the null tables (the signal drawn uniformly in time) do not pass the rule
    assert rec.null_passes is False and rec.null_verdict == "not supported"
    assert rec.flips == []                       # attention lock-in on the boundaries too
    # the control's own signal step is reported, not counted
    assert rec.controls["weight decay 0 (no grokking): signal at step"] == "200"


def test_n1_lags_behind_each_boundary():
    signal = _at_cleanup()
    rec = claims.evaluate("N1", _events({LOCK: signal, ATTENTION: _at_cleanup()}))
    gaps = _gaps(signal)
    for j, name in enumerate(BOUNDS):
        lag = gaps[:, j]
        half = stats.t.ppf(0.975, len(lag) - 1) * lag.std(ddof=1) / math.sqrt(len(lag))
        assert rec.values[f"lag|{name}"] == pytest.approx(lag.mean(), abs=1e-9)
        assert rec.values[f"lag_low|{name}"] == pytest.approx(lag.mean() - half, abs=1e-9)
        assert rec.values[f"lag_high|{name}"] == pytest.approx(lag.mean() + half, abs=1e-9)
    # cleanup start: +5 −8 +10 −3 +0 → mean +0.8, written to whole steps
    lag = np.array(list(OFFSETS.values()), float)
    assert lag.mean() == pytest.approx(0.8) and rec.values["lag|cleanup start"] == pytest.approx(0.8)
    half = stats.t.ppf(0.975, 4) * lag.std(ddof=1) / math.sqrt(5)
    assert rec.notes["lag behind cleanup start"] == \
        f"{lag.mean():+.0f} [{lag.mean() - half:+.0f}, {lag.mean() + half:+.0f}]"
    assert "cleanup start" in rec.effect and "5 seeds" in rec.effect


def test_n1_signal_far_from_every_boundary_is_not_supported():
    rec = claims.evaluate("N1", _events({LOCK: _at_end(), ATTENTION: _at_end()}))
    assert rec.verdict == "not supported", rec.why
    # last step − cleanup end per seed
    expected = np.mean([v[3] - v[2] for v in SEEDS.values()])
    assert rec.values["distance"] == pytest.approx(expected, abs=1e-12)
    assert rec.values["p"] == 1.0                 # every shuffled draw is at least as close
    assert rec.null_passes is False and rec.flips == []


@pytest.mark.parametrize("missing", ["rows", "nan"])
def test_n1_with_two_seeds_is_not_testable(missing):
    signal = {s: v for s, v in _at_cleanup().items() if s in (0, 1)}
    if missing == "nan":
        signal.update({s: None for s in (2, 3, 4)})
    rec = claims.evaluate("N1", _events({LOCK: signal, ATTENTION: signal}))
    assert rec.verdict == "not testable" and rec.values["seeds"] == 2
    assert "needs 3" in rec.why
    # a seed missing any boundary does not count either
    tables = _events({LOCK: _at_cleanup()})
    ev = tables["events"]
    ev.loc[(ev.seed.isin([2, 3, 4])) & (ev.event == "cleanup end") & (ev.weight_decay > 0),
           "step"] = np.nan
    assert claims.evaluate("N1", tables).values["seeds"] == 2


# ---- N2, N3: the signal each reads -------------------------------------------------------------
def test_n2_and_n3_read_their_own_signal():
    near, far = _at_cleanup(), _at_end()
    tables = _events({SPECTRAL: near, LLC: far})
    assert claims.evaluate("N2", tables).verdict == "supported"
    assert claims.evaluate("N3", tables).verdict == "not supported"
    n1 = claims.evaluate("N1", tables)                 # no lock-in rows at all
    assert n1.verdict == "not testable" and n1.values["seeds"] == 0
    swapped = _events({SPECTRAL: far, LLC: near})
    assert claims.evaluate("N2", swapped).verdict == "not supported"
    n3 = claims.evaluate("N3", swapped)
    assert n3.verdict == "supported"
    assert n3.values["distance"] == pytest.approx(np.mean(np.abs(list(OFFSETS.values()))))
    assert n3.controls["weight decay 0 (no grokking): signal at step"] == "230"


# ---- N1's alternative: the attention matrices' lock-in -----------------------------------------
def test_n1_attention_lock_in_far_from_the_boundaries_is_a_flip():
    rec = claims.evaluate("N1", _events({LOCK: _at_cleanup(), ATTENTION: _at_end()}))
    assert rec.verdict == "supported"
    assert rec.flips == ["attention matrices' lock-in (median) → not supported"]
    # and the other way round: attention on the boundaries, all parameters far
    rec = claims.evaluate("N1", _events({LOCK: _at_end(), ATTENTION: _at_cleanup()}))
    assert rec.verdict == "not supported"
    assert rec.flips == ["attention matrices' lock-in (median) → supported"]


def test_n1_alternative_tables_swap_only_the_lock_in_rows():
    tables = _events({LOCK: _at_cleanup(), ATTENTION: _at_end(), SPECTRAL: _at_cleanup()})
    (label, alt), = ch12._attention(tables).items()
    assert label == "attention matrices' lock-in (median)"
    ev, new = tables["events"], alt["events"]
    for seed, last in ((s, v[3]) for s, v in SEEDS.items()):
        row = new[(new.seed == seed) & (new.weight_decay > 0) & (new.event == LOCK)]
        assert row.step.tolist() == [float(last)]
    untouched = ev[ev.event != LOCK]
    kept = new[new.event != LOCK]
    pd.testing.assert_frame_equal(untouched.reset_index(drop=True), kept.reset_index(drop=True))


# ---- the null tables ----------------------------------------------------------------------------
@pytest.mark.parametrize("signal", [LOCK, SPECTRAL, LLC])
def test_null_tables_redraw_only_the_grokking_signal_rows(signal):
    tables = _events({LOCK: _at_cleanup(), SPECTRAL: _at_cleanup(), LLC: _at_end()})
    before = tables["events"].copy()
    null = ch12.null_tables_for(signal)(tables)
    pd.testing.assert_frame_equal(tables["events"], before)          # the input is not changed
    ev = null["events"]
    assert list(ev.columns) == list(before.columns) and ev.index.equals(before.index)
    moved = (before.event == signal) & (before.weight_decay > 0)
    pd.testing.assert_frame_equal(ev[~moved], before[~moved])
    drawn = ev[moved]
    assert len(drawn) == 5
    assert (drawn.step >= 0).all() and (drawn.step <= drawn.last_step).all()
    assert (drawn.step == drawn.step.round()).all()
    assert not np.array_equal(drawn.step.to_numpy(), before[moved].step.to_numpy())
    again = ch12.null_tables_for(signal)(tables)["events"]
    pd.testing.assert_frame_equal(again, ev)


def test_null_tables_keep_the_seeds_without_the_signal_without_it():
    """A seed whose signal never happened stays without it: the null compares the same seeds."""
    at = _at_cleanup()
    at[3] = None
    tables = _events({LOCK: at})
    null = ch12.null_tables_for(LOCK)(tables)["events"]
    row = (null.event == LOCK) & (null.seed == 3) & (null.weight_decay > 0)
    assert null[row].step.isna().all()
    assert claims.evaluate("N1", tables).values["seeds"] == ch12.measure_n1(
        {"events": null}).values["seeds"] == 4


def test_two_grokking_runs_of_one_seed_are_refused():
    tables = _events({LOCK: _at_cleanup()})
    ev = tables["events"]
    twin = ev[(ev.seed == 1) & (ev.weight_decay > 0)].assign(run="grok1-other")
    with pytest.raises(ValueError, match="one grokking run per seed"):
        ch12.measure_n1({"events": pd.concat([ev, twin], ignore_index=True)})
