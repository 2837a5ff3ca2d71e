"""modadd.mechanism (chapter 12), each piece checked against an independent computation: the
increment Gram against explicit differences, the trajectory curves against an explicit SVD of a
synthetic trajectory with a known lock-in, the DMD spectral change against the eigenvalues of
two known damped oscillations, phase rule v2 on hand-made loss curves with known crossings, and
the across-run tables (events, lags, nearest boundary, settings, correlations) on hand-made
inputs."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modadd import mechanism as ME
from modadd.grokking import mechanism_runs
from modadd.llc import SGLDSettings
from modadd.manifold import LOCK_IN_LEVEL
from modadd.store import run_key


@pytest.fixture(scope="module")
def cfgs():
    """Real chapter-12 configs (building them trains nothing): two grokking seeds, one wd-0 run."""
    runs = mechanism_runs("smoke", seeds=2, fraction=0.7, null_steps=400, n_steps=400)
    return runs["grok"] + runs["null"]


# ---- increment_gram -----------------------------------------------------------------------------
@pytest.mark.parametrize("chunk", [1, 5, 7, 13, 37, 1000])     # 37 = D, 7 and 13 do not divide it
def test_increment_gram_is_the_gram_of_the_differences(chunk):
    X = np.random.default_rng(0).standard_normal((9, 37))
    d = np.diff(X, axis=0)
    H = ME.increment_gram(X, chunk=chunk)
    assert H.shape == (8, 8) and H.dtype == np.float64
    np.testing.assert_allclose(H, d @ d.T, rtol=1e-12, atol=1e-12)


def test_increment_gram_flattens_the_trailing_axes_and_reads_a_memmap(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((6, 4, 5)).astype(np.float32)
    flat = X.reshape(6, 20).astype(np.float64)
    # hand-written Gram of the increments, entry by entry
    expected = np.array([[sum((flat[i + 1, c] - flat[i, c]) * (flat[j + 1, c] - flat[j, c])
                               for c in range(20)) for j in range(5)] for i in range(5)])
    for chunk in (3, 20, 64):
        np.testing.assert_allclose(ME.increment_gram(X, chunk=chunk), expected, rtol=1e-10,
                                   atol=1e-10)
    mm = np.memmap(tmp_path / "snaps.f32", dtype=np.float32, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    np.testing.assert_allclose(ME.increment_gram(mm, chunk=6), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("chunk", [0, -1])
def test_increment_gram_names_a_bad_chunk(chunk):
    X = np.random.default_rng(2).standard_normal((5, 7))
    with pytest.raises(ValueError, match="chunk"):
        ME.increment_gram(X, chunk=chunk)


# ---- trajectory_curves --------------------------------------------------------------------------
D, N, T0 = 50, 40, 10


def _trajectory(seed: int = 0):
    """Snapshots ``[N, D]``: T0 random-direction increments of norm 0.5, then unit increments
    that turn through 3 rad inside a random plane (so the late trajectory is a 2-D arc)."""
    rng = np.random.default_rng(seed)
    inc = np.empty((N - 1, D))
    r = rng.standard_normal((T0, D))
    inc[:T0] = 0.5 * r / np.linalg.norm(r, axis=1, keepdims=True)
    plane, _ = np.linalg.qr(rng.standard_normal((D, 2)))
    angle = np.linspace(0.0, 3.0, N - 1 - T0)
    inc[T0:] = np.cos(angle)[:, None] * plane[:, 0] + np.sin(angle)[:, None] * plane[:, 1]
    X = np.vstack([np.zeros(D), np.cumsum(inc, axis=0)]) + rng.standard_normal(D)
    return X, plane


def _r90(rows: np.ndarray, threshold: float = 0.9) -> int:
    """Centred-PCA components needed for ``threshold`` of the variance (explicit SVD)."""
    s = np.linalg.svd(rows - rows.mean(axis=0), compute_uv=False)
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    return int(np.argmax(share >= threshold)) + 1


def _outside(X: np.ndarray, k: int) -> np.ndarray:
    """sqrt(1 − ||proj||²/||row||²) of each row of W_t − W_0 onto its top-k uncentred right
    singular vectors (NaN for the zero row)."""
    W = X - X[0]
    V = np.linalg.svd(W, full_matrices=False)[2][:k]
    out = np.full(len(W), np.nan)
    for t in range(1, len(W)):
        row2 = W[t] @ W[t]
        proj2 = np.sum((V @ W[t]) ** 2)
        out[t] = math.sqrt(max(0.0, 1.0 - proj2 / row2))
    return out


def _stays_below(values: np.ndarray, level: float):
    """First index from which every non-NaN value is ≤ level (None: the last one is above)."""
    for i in range(len(values)):
        if all(not (v > level) for v in values[i:]):
            return i
    return None


def test_trajectory_curves_against_an_explicit_svd():
    X, plane = _trajectory()
    curves = ME.trajectory_curves(ME.increment_gram(X), D, np.random.default_rng(0), 0)
    k = _r90(X)
    assert curves["k"] == k == 2                      # the 2-D arc carries > 90% of the variance
    expected = _outside(X, k)
    assert np.isnan(curves["outside"][0]) and np.isnan(expected[0])
    np.testing.assert_allclose(curves["outside"][1:], expected[1:], atol=1e-7)
    lock = _stays_below(expected, LOCK_IN_LEVEL)
    assert curves["lock_in"] == lock
    # where we expect it: after the turn into the plane, once the in-plane displacement
    # (1 per step) outweighs the random prefix (norm ≈ 0.5·√10 ≈ 1.6) three to one
    Wt = X - X[0]
    off_plane = np.linalg.norm(Wt - Wt @ plane @ plane.T, axis=1)[1:] / \
        np.linalg.norm(Wt, axis=1)[1:]
    by_plane = 1 + _stays_below(off_plane, LOCK_IN_LEVEL)
    assert T0 < curves["lock_in"] <= T0 + 8 and abs(curves["lock_in"] - by_plane) <= 3


def test_trajectory_curves_growing_window_is_the_r90_of_the_snapshots_so_far():
    X, _ = _trajectory(seed=3)
    curves = ME.trajectory_curves(ME.increment_gram(X), D, np.random.default_rng(0), 0,
                                  min_snapshots=5)
    growing = curves["growing"]
    assert growing.shape == (N,) and np.isnan(growing[:4]).all() and np.isfinite(growing[4:]).all()
    for t in (4, 7, T0, T0 + 3, 25, N - 1):
        assert growing[t] == _r90(X[:t + 1]), t
    assert growing[N - 1] == curves["k"]
    # the null: all NaN without draws
    assert curves["null"].shape == (N,) and np.isnan(curves["null"]).all()


def test_trajectory_curves_never_locking_in_and_the_random_walk_null():
    # an isotropic random walk in R^50 never settles in a small subspace of its own: its late
    # snapshots keep leaving it, so the outside fraction ends above the level for a small k
    rng = np.random.default_rng(4)
    X = np.cumsum(rng.standard_normal((30, D)), axis=0)
    a = ME.trajectory_curves(ME.increment_gram(X), D, np.random.default_rng(7), 3, threshold=0.3)
    assert a["k"] == _r90(X, 0.3)
    expected = _outside(X, a["k"])
    np.testing.assert_allclose(a["outside"][1:], expected[1:], atol=1e-7)
    assert a["lock_in"] is None and _stays_below(expected, LOCK_IN_LEVEL) is None
    assert expected[-1] > LOCK_IN_LEVEL
    # the null is the mean of three windowed ranks: finite after min_snapshots, a multiple of
    # 1/3, at most the window's own rank bound t, and deterministic for a given generator
    null = a["null"]
    assert np.isnan(null[:4]).all()
    t = np.arange(30)[4:]
    assert np.all((null[4:] >= 1) & (null[4:] <= t))
    np.testing.assert_allclose(3 * null[4:], np.round(3 * null[4:]), atol=1e-9)
    b = ME.trajectory_curves(ME.increment_gram(X), D, np.random.default_rng(7), 3, threshold=0.3)
    np.testing.assert_array_equal(null, b["null"])


def test_trajectory_curves_rejects_min_snapshots_below_one():
    X, _ = _trajectory()
    with pytest.raises(ValueError, match="min_snapshots"):
        ME.trajectory_curves(ME.increment_gram(X), D, np.random.default_rng(0), 0,
                             min_snapshots=0)
    curves = ME.trajectory_curves(ME.increment_gram(X), D, np.random.default_rng(0), 0,
                                  min_snapshots=1)
    assert np.isfinite(curves["growing"][1:]).all()     # one snapshot has no variance


# ---- spectral_change ----------------------------------------------------------------------------
R, Q, SWITCH = 80, 4, 40
R1, W1, R2, W2 = 0.99, 0.3, 0.93, 1.3


def _two_oscillations() -> np.ndarray:
    """``[R, Q]``: r1^t cos(w1 t + φ_q) up to SWITCH, then r2^u cos(w2 u + φ_q), u = t − SWITCH."""
    phase = np.linspace(0.0, 1.5, Q)
    F = np.empty((R, Q))
    for i in range(R):
        if i < SWITCH:
            F[i] = R1 ** i * np.cos(W1 * i + phase)
        else:
            F[i] = R2 ** (i - SWITCH) * np.cos(W2 * (i - SWITCH) + phase)
    return F


def test_spectral_change_peaks_at_the_switch_with_the_eigenvalue_distance():
    window = 15
    out = ME.spectral_change(_two_oscillations(), window=window, n_delays=3, rank=2)
    assert out.shape == (R,)
    assert np.isnan(out[:window]).all() and np.isnan(out[R - window + 1:]).all()
    assert np.isfinite(out[window:R - window + 1]).all()
    assert abs(int(np.nanargmax(out)) - SWITCH) <= 3
    # each window of one regime has DMD eigenvalues r e^{±iw}; at the switch the two rank-2
    # spectra differ by |r1 e^{iw1} − r2 e^{iw2}| (matched conjugate to conjugate)
    expected = abs(R1 * np.exp(1j * W1) - R2 * np.exp(1j * W2))
    assert out[SWITCH] == pytest.approx(expected, rel=0.05)
    # windows wholly inside one regime see (almost) the same spectrum
    assert np.all(out[window:window + 8] < 0.05) and np.all(out[R - window - 6:R - window + 1] < 0.05)


def test_spectral_change_of_a_constant_is_all_nan_and_bad_input_names_the_field():
    assert np.isnan(ME.spectral_change(np.full((60, 3), 2.5))).all()
    F = _two_oscillations()
    with pytest.raises(ValueError, match="window"):
        ME.spectral_change(F, window=7, n_delays=3)            # needs >= 2·3 + 2 = 8
    ME.spectral_change(F[:30], window=8, n_delays=3)           # the smallest allowed window
    with pytest.raises(ValueError, match="n_delays"):
        ME.spectral_change(F, window=15, n_delays=0)
    with pytest.raises(ValueError, match="rank"):
        ME.spectral_change(F, rank=0)
    with pytest.raises(ValueError, match="fingerprint"):
        ME.spectral_change(F[:, 0])


# ---- phase rule v2 ------------------------------------------------------------------------------
STEPS = list(range(0, 210, 10))
TRAIN = [3.0, 2.0, 1.0, 0.5, 0.1, 1e-2, 9e-3] + [1e-3] * 8 + [0.05] + [1e-3] * 5
# the pre-fit maximum (10) is above the post-fit peak (5 at step 90): only the latter counts
TEST = [10.0, 8.0, 6.0, 5.0, 4.5, 4.2, 4.0, 4.4, 4.8, 5.0, 4.0, 3.0, 2.6, 2.5, 1.0, 0.1, 1e-2,
        5e-3, 0.02, 3e-3, 2e-3]
EXCLUDED = [5.0, 3.0, 1.0, 0.5, 0.2, 0.1, 0.08, 0.06, 0.05, 0.07, 0.1, 0.15, 0.2, 0.2, 0.1, 0.05,
            0.02, 0.01, 5e-3, 2e-3, 1e-3]


def _tidy(train, test, excluded, shuffle_seed: int = 0) -> pd.DataFrame:
    rows = [(s, name, v) for name, values in (("train loss", train), ("test loss", test),
                                              ("excluded loss", excluded), ("gini", test))
            for s, v in zip(STEPS, values)]
    table = pd.DataFrame(rows, columns=["step", "measure", "value"])
    return table.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)


def test_phase_boundaries_v2_on_known_crossings():
    out = ME.phase_boundaries_v2(_tidy(TRAIN, TEST, EXCLUDED))
    # train loss: 1e-2 at step 50 is not below 1e-2; 9e-3 at step 60 is
    # test loss: max since step 60 is 5.0 (step 90); 2.6 at 120 is above ½ of it, 2.5 at 130 is not
    # test loss: 1e-2 at 160 is not below 1e-2, 5e-3 at 170 is
    # excluded loss: lowest up to step 130 at step 80 (lower values after 130 do not count)
    assert out == {"train fit": 60, "memorisation end": 60, "cleanup start": 130,
                   "cleanup end": 170, "excluded-loss minimum": 80}


def test_phase_boundaries_v2_excluded_minimum_includes_cleanup_start():
    excluded = list(EXCLUDED)
    excluded[13] = 0.01            # step 130 = cleanup start: counts
    excluded[14] = 0.001           # step 140: after cleanup start, does not
    out = ME.phase_boundaries_v2(_tidy(TRAIN, TEST, excluded, 1))
    assert out["excluded-loss minimum"] == 130 and out["cleanup start"] == 130


def test_phase_boundaries_v2_without_a_fit_has_only_the_excluded_minimum():
    train = [max(v, 1e-2) for v in TRAIN]          # never below 1e-2
    excluded = list(EXCLUDED)
    excluded[17] = 5e-4                            # the whole run's minimum is at step 170
    out = ME.phase_boundaries_v2(_tidy(train, TEST, excluded, 2))
    assert out == {"train fit": None, "memorisation end": None, "cleanup start": None,
                   "cleanup end": None, "excluded-loss minimum": 170}


def test_phase_boundaries_v2_fit_without_cleanup_takes_the_whole_runs_excluded_minimum():
    test = TEST[:7] + [4.0] * 14                   # never falls to half of its post-fit peak
    out = ME.phase_boundaries_v2(_tidy(TRAIN, test, EXCLUDED, 3))
    assert out == {"train fit": 60, "memorisation end": 60, "cleanup start": None,
                   "cleanup end": None, "excluded-loss minimum": 200}


def test_phase_boundaries_v2_names_a_missing_measure():
    table = _tidy(TRAIN, TEST, EXCLUDED)
    with pytest.raises(ValueError, match="excluded loss"):
        ME.phase_boundaries_v2(table[table.measure != "excluded loss"])


# ---- llc_peak -----------------------------------------------------------------------------------
def test_llc_peak_ignores_non_finite_estimates():
    llc = pd.DataFrame({"step": [0, 50, 100, 150, 200, 250],
                        "llc": [1.0, np.nan, 7.5, np.inf, 9.0, -np.inf]})
    assert ME.llc_peak(llc) == 200
    assert ME.llc_peak(llc.iloc[:4]) == 100                   # the inf at 150 is not a peak
    assert ME.llc_peak(pd.DataFrame({"step": [0, 50], "llc": [np.nan, np.nan]})) is None
    assert ME.llc_peak(pd.DataFrame({"step": [0, 50], "llc": [np.inf, np.nan]})) is None


# ---- event_table --------------------------------------------------------------------------------
def test_event_table_one_row_per_run_and_event(cfgs):
    g0, g1, null = cfgs
    per_run = {g0: {"last step": 400, "train fit": 120, "cleanup start": None, "LLC peak": 300},
               g1: {"train fit": 140, "cleanup start": 260, "LLC peak": None, "last step": 390},
               null: {"train fit": None, "cleanup start": None, "LLC peak": 50, "last step": 400}}
    table = ME.event_table(per_run)
    assert list(table.columns) == ["run", "seed", "weight_decay", "event", "step", "last_step"]
    assert len(table) == 9 and "last step" not in set(table.event)
    expected = {(run_key(g0), "train fit"): (0, 1.0, 120.0, 400.0),
                (run_key(g0), "cleanup start"): (0, 1.0, np.nan, 400.0),
                (run_key(g0), "LLC peak"): (0, 1.0, 300.0, 400.0),
                (run_key(g1), "train fit"): (1, 1.0, 140.0, 390.0),
                (run_key(g1), "cleanup start"): (1, 1.0, 260.0, 390.0),
                (run_key(g1), "LLC peak"): (1, 1.0, np.nan, 390.0),
                (run_key(null), "train fit"): (0, 0.0, np.nan, 400.0),
                (run_key(null), "cleanup start"): (0, 0.0, np.nan, 400.0),
                (run_key(null), "LLC peak"): (0, 0.0, 50.0, 400.0)}
    assert len({run_key(c) for c in cfgs}) == 3
    for row in table.itertuples():
        seed, wd, step, last = expected[(row.run, row.event)]
        assert (row.seed, row.weight_decay, row.last_step) == (seed, wd, last)
        assert (math.isnan(row.step) and math.isnan(step)) or row.step == step


# ---- lag_table ----------------------------------------------------------------------------------
def _events(per_seed: dict, wd: float = 1.0, last: float = 2000.0) -> list[dict]:
    return [{"run": f"r{seed}-{wd}", "seed": seed, "weight_decay": wd, "event": name,
             "step": np.nan if step is None else float(step), "last_step": last}
            for seed, ev in per_seed.items() for name, step in ev.items()]


def _t_interval(x):
    x = np.asarray(x, float)
    half = stats.t.ppf(0.975, len(x) - 1) * np.std(x, ddof=1) / math.sqrt(len(x))
    return x.mean(), x.mean() - half, x.mean() + half


def test_lag_table_over_the_grokking_seeds_with_t_intervals():
    lock, fp = "lock-in (all parameters)", "fingerprint spectral change"
    grok = {0: {"train fit": 300, "cleanup start": 700, "cleanup end": 1000, lock: 690, fp: 310,
                "grokking (accuracy ≥ 0.99)": 720, "alarm: dmd": 650},
            1: {"train fit": 250, "cleanup start": 600, "cleanup end": 900, lock: 640, fp: 200,
                "grokking (accuracy ≥ 0.99)": 650, "alarm: dmd": 500},
            2: {"train fit": 350, "cleanup start": 800, "cleanup end": 1100, lock: 790, fp: None,
                "grokking (accuracy ≥ 0.99)": 820, "alarm: dmd": 700},
            3: {"train fit": 280, "cleanup start": 650, "cleanup end": None, lock: 700, fp: 300,
                "grokking (accuracy ≥ 0.99)": 700, "alarm: dmd": 640}}
    control = {0: {"train fit": 10, "cleanup start": 20, "cleanup end": 30, lock: 5000, fp: 5000,
                   "alarm: dmd": 5000}}
    events = pd.DataFrame(_events(grok) + _events(control, wd=0.0))
    table = ME.lag_table(events)
    assert list(table.columns) == ["signal", "boundary", "seeds", "lag", "low", "high", "before"]
    # default signals: the trajectory signals and the alarms, not the grokking step
    assert list(dict.fromkeys(table.signal)) == [lock, fp, "alarm: dmd"]
    assert len(table) == 9
    for row in table.itertuples():
        lags = [g[row.signal] - g[row.boundary] for g in grok.values()
                if g[row.signal] is not None and g[row.boundary] is not None]
        mean, low, high = _t_interval(lags)
        assert row.seeds == len(lags) and row.before == sum(v < 0 for v in lags)
        assert (row.lag, row.low, row.high) == pytest.approx((mean, low, high), rel=1e-12)
    # spot values by hand: lock-in − cleanup start = −10, +40, −10, +50
    row = table[(table.signal == lock) & (table.boundary == "cleanup start")].iloc[0]
    assert row.lag == 17.5 and row.before == 2 and row.seeds == 4
    row = table[(table.signal == fp) & (table.boundary == "cleanup end")].iloc[0]
    assert row.seeds == 2 and row.lag == pytest.approx(((310 - 1000) + (200 - 900)) / 2)
    # an explicit signal list and a boundary no run has
    only = ME.lag_table(events, signals=["grokking (accuracy ≥ 0.99)"],
                        boundaries=("cleanup start", "no such boundary"))
    assert len(only) == 1 and only.lag.iloc[0] == pytest.approx(np.mean([20, 50, 20, 50]))


# ---- nearest_boundary ---------------------------------------------------------------------------
def test_nearest_boundary_ignores_nan_and_broadcasts_over_draws():
    boundaries = np.array([[100.0, 400.0, 900.0], [np.nan, 300.0, 800.0],
                           [200.0, np.nan, np.nan]])
    signal = np.array([350.0, 10.0, 1000.0])
    np.testing.assert_array_equal(ME.nearest_boundary(signal, boundaries), [50.0, 290.0, 800.0])
    draws = np.random.default_rng(0).integers(0, 1200, size=(7, 3)).astype(float)
    got = ME.nearest_boundary(draws, boundaries)
    assert got.shape == (7, 3)
    for d in range(7):
        for s in range(3):
            assert got[d, s] == min(abs(draws[d, s] - b) for b in boundaries[s] if b == b)


# ---- chosen_settings ----------------------------------------------------------------------------
BASE = SGLDSettings(chains=2, draws=40, burnin=20, batch_size=64)


def _calibration(acceptable, recommended, batch=64.0) -> pd.DataFrame:
    grid = [(ss, loc) for ss in (2.5e-5, 5e-5, 1e-4) for loc in (100.0, 300.0)]
    return pd.DataFrame({"step_size": [g[0] for g in grid], "localization": [g[1] for g in grid],
                         "acceptable": acceptable, "recommended": recommended,
                         "chains": 3, "draws": 50, "burnin": 10, "batch_size": batch})


def test_chosen_settings_prefers_the_recommended_row():
    cal = _calibration([True, True, True, True, False, False],
                       [False, False, False, True, False, False], batch=np.nan)
    settings, how = ME.chosen_settings(cal, BASE)
    assert (settings.step_size, settings.localization) == (5e-5, 300.0)
    assert (settings.chains, settings.draws, settings.burnin, settings.batch_size) == \
        (3, 50, 10, None)
    assert "recommended" in how


def test_chosen_settings_falls_back_to_the_largest_acceptable_step_then_to_base():
    cal = _calibration([True, False, False, True, False, False], [False] * 6)
    settings, how = ME.chosen_settings(cal, BASE)
    assert (settings.step_size, settings.localization) == (5e-5, 300.0)
    # the rest comes from the base setting, not from the table
    assert (settings.chains, settings.draws, settings.burnin, settings.batch_size) == \
        (2, 40, 20, 64)
    assert "largest step size" in how
    settings, how = ME.chosen_settings(_calibration([False] * 6, [False] * 6), BASE)
    assert settings == BASE and "base" in how


def _checkpoints(rows) -> pd.DataFrame:
    """(step, step size, acceptable) rows at localization 300."""
    return pd.DataFrame([{"step": st, "step_size": ss, "localization": 300.0, "acceptable": ok}
                         for st, ss, ok in rows])


def test_settings_across_takes_the_largest_step_size_stable_at_every_checkpoint():
    # the last snapshot recommends (5e-5, 300); at 300, 1e-4 is acceptable there too (row 5
    # is not: make it so), but 1e-4 diverges at checkpoint 200; 5e-5 is fine everywhere
    last = _calibration([True, True, True, True, True, True],
                        [False, False, False, True, False, False]).assign(step=1600)
    chk = _checkpoints([(200, 2.5e-5, True), (200, 5e-5, True), (200, 1e-4, False),
                        (400, 2.5e-5, True), (400, 5e-5, True), (400, 1e-4, True)])
    settings, how = ME.settings_across(last, chk, BASE)
    assert (settings.step_size, settings.localization) == (5e-5, 300.0)
    assert "every checkpoint (3)" in how
    # 1e-4 stable everywhere too -> it is chosen (larger than the last snapshot's own choice)
    chk.loc[chk.step_size == 1e-4, "acceptable"] = True
    assert ME.settings_across(last, chk, BASE)[0].step_size == 1e-4
    # nothing stable everywhere -> the smallest step size, and the reason says so
    chk["acceptable"] = False
    settings, how = ME.settings_across(last, chk, BASE)
    assert settings.step_size == 2.5e-5 and "smallest" in how
    # no checkpoints (a run without phase boundaries): the last snapshot's acceptable sizes
    settings, how = ME.settings_across(last, chk.iloc[:0], BASE)
    assert settings.step_size == 1e-4 and "every checkpoint (1)" in how


# ---- correlation_table --------------------------------------------------------------------------
X1, X2, Y1, Y2 = ("r90 growing (all parameters)", "r90 growing, random walk (all parameters)",
                  "LLC", "key frequencies (count)")


def _timeline(steps, values: dict) -> pd.DataFrame:
    return pd.DataFrame([{"step": s, "measure": m, "value": v}
                         for m, vals in values.items() for s, v in zip(steps, vals)])


def _ranks(x):
    return np.argsort(np.argsort(np.asarray(x, float))).astype(float)


def test_correlation_table_is_spearman_over_the_joined_steps(cfgs):
    g0, g1, _ = cfgs
    rng = np.random.default_rng(5)
    steps = np.arange(0, 200, 10)
    tables = {}
    for cfg in (g0, g1):
        vals = {X1: rng.permutation(20) + 1.0, X2: rng.permutation(20) + 0.5,
                Y2: rng.permutation(20).astype(float)}
        vals[Y2][6] = np.nan                               # step 60: no key-frequency count
        # the LLC every 30 steps, plus two steps the timeline does not have
        llc_steps = np.r_[np.arange(0, 200, 30), 205, 400]
        llc = pd.DataFrame({"step": llc_steps, "llc": rng.permutation(len(llc_steps)) + 0.25})
        tables[cfg] = (_timeline(steps, vals), llc, vals)
    out = ME.correlation_table({cfg: t[:2] for cfg, t in tables.items()})
    assert list(out.columns) == ["seed", "weight_decay", "x", "y", "rho", "points"]
    assert len(out) == 8
    for row in out.itertuples():
        cfg = g0 if row.seed == 0 else g1
        _, llc, vals = tables[cfg]
        llc_at = dict(zip(llc.step, llc.llc))
        pairs = []
        for i, s in enumerate(steps):
            if s not in llc_at:
                continue
            x = vals[row.x][i]
            y = llc_at[s] if row.y == "LLC" else vals[row.y][i]
            if not (np.isnan(x) or np.isnan(y)):
                pairs.append((x, y))
        x, y = np.array(pairs).T
        assert row.points == len(pairs) == (7 if row.y == "LLC" else 6)   # 0, 30, …, 180
        assert row.rho == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        assert row.rho == pytest.approx(np.corrcoef(_ranks(x), _ranks(y))[0, 1], abs=1e-12)
        assert row.weight_decay == cfg.train.weight_decay


def test_correlation_table_needs_three_points(cfgs):
    g0 = cfgs[0]
    table = _timeline([0, 10, 20], {X1: [1.0, 2.0, 3.0], X2: [1.0, 2.0, 3.0],
                                    Y2: [3.0, 2.0, 1.0]})
    llc = pd.DataFrame({"step": [0, 10], "llc": [1.0, 2.0]})
    out = ME.correlation_table({g0: (table, llc)})
    assert out.points.tolist() == [2, 2, 2, 2] and out.rho.isna().all()
    # a constant curve has no rank correlation
    table = _timeline([0, 10, 20, 30], {X1: [1.0, 2.0, 3.0, 4.0], X2: [5.0] * 4,
                                        Y2: [4.0, 3.0, 2.0, 1.0]})
    llc = pd.DataFrame({"step": [0, 10, 20, 30], "llc": [1.0, 3.0, 2.0, 4.0]})
    out = ME.correlation_table({g0: (table, llc)}).set_index(["x", "y"]).rho
    assert out[(X1, Y1)] == pytest.approx(0.8) and out[(X1, Y2)] == pytest.approx(-1.0)
    assert out[(X2, Y1)] != out[(X2, Y1)] and out[(X2, Y2)] != out[(X2, Y2)]     # NaN
