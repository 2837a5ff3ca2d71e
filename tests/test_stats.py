"""modadd.stats: t intervals and Wilson intervals against closed forms."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as st

from modadd.stats import mean_ci, wilson_ci


def test_mean_ci_is_the_student_t_interval():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    mean, low, high = mean_ci(x)
    half = st.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert (mean, low, high) == pytest.approx((3.5, 3.5 - half, 3.5 + half))
    assert np.isnan(mean_ci([1.0])[1])


def test_wilson_interval_closed_form_and_edges():
    # 8 of 10, z = 1.959964: centre (0.8 + z²/20) / (1 + z²/10)
    z = st.norm.ppf(0.975)
    p, low, high = wilson_ci(8, 10)
    centre = (0.8 + z * z / 20) / (1 + z * z / 10)
    half = z * np.sqrt(0.8 * 0.2 / 10 + z * z / 400) / (1 + z * z / 10)
    assert (p, low, high) == pytest.approx((0.8, centre - half, centre + half))
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)   # published value
    assert wilson_ci(0, 5)[1] == 0.0 and wilson_ci(5, 5)[2] == 1.0
    assert wilson_ci(0, 5)[2] > 0 and np.isnan(wilson_ci(0, 0)[0])
    with pytest.raises(ValueError, match="successes"):
        wilson_ci(6, 5)


def test_bounded_interval_is_cut_to_the_range_and_keeps_the_mean():
    from modadd.stats import bounded_mean_ci, clip_interval
    x = [0.90, 1.0, 1.0, 1.0, 0.93]
    mean, low, high = mean_ci(x)
    assert high > 1.0                                   # the t interval runs past 1
    assert bounded_mean_ci(x, (0.0, 1.0)) == pytest.approx((mean, low, 1.0))
    assert clip_interval((0.1, -0.2, 0.4), (0.0, np.inf)) == pytest.approx((0.1, 0.0, 0.4))
    with pytest.raises(ValueError, match="bounds"):
        clip_interval((0.0, 0.0, 0.0), (1.0, 0.0))


def test_one_sided_p_matches_scipy_and_handles_constant_samples():
    from modadd.stats import one_sided_p
    x = np.array([0.3, -0.1, 0.5, 0.2, 0.4])
    t = x.mean() / (x.std(ddof=1) / np.sqrt(5))
    assert one_sided_p(x, "greater") == pytest.approx(st.t.sf(t, 4))
    assert one_sided_p(x, "less") == pytest.approx(st.t.cdf(t, 4))
    assert one_sided_p([1.0, 1.0], "greater") == 0.0 and one_sided_p([1.0, 1.0], "less") == 1.0
    assert one_sided_p([0.0, 0.0]) == 0.5 and np.isnan(one_sided_p([1.0]))
    with pytest.raises(ValueError, match="direction"):
        one_sided_p(x, "two-sided")


def test_bootstrap_is_reproducible_and_covers_the_sample_mean():
    from modadd.stats import bootstrap_ci
    x = np.arange(10.0)
    a, b = bootstrap_ci(x, seed=1), bootstrap_ci(x, seed=1)
    assert a == b and a[0] == 4.5 and a[1] < 4.5 < a[2]
    # the percentile interval of the mean of 0..9 is close to the normal one, 4.5 ± 1.96·σ/√n
    half = 1.96 * x.std(ddof=0) / np.sqrt(10)
    assert a[1] == pytest.approx(4.5 - half, abs=0.25) and a[2] == pytest.approx(4.5 + half, abs=0.25)
    assert np.isnan(bootstrap_ci([2.0])[1])


def test_holm_against_a_hand_computation():
    from modadd.stats import holm
    # sorted 0.01, 0.02, 0.04, 0.30 times 4, 3, 2, 1 -> 0.04, 0.06, 0.08, 0.30 (monotone)
    adjusted = holm([0.04, 0.01, np.nan, 0.30, 0.02])
    assert adjusted[[1, 4, 0, 3]] == pytest.approx([0.04, 0.06, 0.08, 0.30])
    assert np.isnan(adjusted[2])
    assert holm([0.5, 0.6]).tolist() == [1.0, 1.0]      # capped at 1, made monotone
    with pytest.raises(ValueError, match="pvalues"):
        holm([1.5])


def test_one_sided_p_of_a_constant_sample_with_round_off_spread():
    from modadd.stats import one_sided_p
    x = np.array([0.1 + 0.77] * 5) - np.array([0.0, 1e-17, 0.0, 0.0, 0.0])
    assert one_sided_p(x, "greater") == 0.0 and one_sided_p(-x, "greater") == 1.0
