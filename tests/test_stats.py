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
