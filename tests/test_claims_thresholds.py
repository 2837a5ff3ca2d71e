"""Boundary tests for thresholds that the per-chapter tests do not pin by their behaviour: each
evidence sits between the rule's threshold and one end of its stated sensitivity range, so moving
the threshold (a mutation of the rule) changes the verdict and fails the test.  Found by moving
every threshold of every current rule to both ends of its range and running the claim's tests
(43 of 53 such mutations failed a test before this file, all 53 after)."""
from __future__ import annotations

import pytest

from modadd import claims
from modadd.claims.core import Evidence


def decide(cid: str, **values) -> str:
    rule = claims.spec(cid).rule
    return rule.decide(Evidence(values=values, effect="", ci=""), rule.thresholds).verdict


@pytest.mark.parametrize("real_high, verdict", [(0.25, "supported"), (0.35, "not supported")])
def test_c4_lock_in_must_end_by_the_early_bar(real_high, verdict):
    # the paired difference is clearly below 0, beyond the snapshot resolution
    assert decide("C4", **{"real high": real_high, "diff": -0.1, "diff low": -0.15,
                           "diff high": -0.05, "resolution": 1 / 60}) == verdict


@pytest.mark.parametrize("width, verdict", [(350.0, "not supported"), (500.0, "supported")])
def test_c6_shape_is_resolved_beyond_four_snapshot_intervals(width, verdict):
    # 100-step snapshots: 350 steps = 3.5 intervals (≤ 4: shape not resolved, the drop alone
    # cannot support); 500 steps = 5 intervals, smooth (CI above 5% of 6000 = 300 steps)
    values = {"spacing": 100.0, "width": width, "width_low": width - 20, "width_high": width + 20,
              "n_steps": 6000.0, "min_drop_low": 0.7, "weakest_m": 1.0}
    assert decide("C6", **values) == ("partly supported" if verdict == "not supported"
                                      else "supported")


@pytest.mark.parametrize("r_low, verdict", [(0.1, "supported"), (-0.1, "not supported")])
def test_c7_correlation_floor(r_low, verdict):
    values = {"n_seeds": 5.0, "off_mode": 0.5, "min_off_mode": 0.25, "spacing": 100.0,
              "n_midpoints": 100.0, "mode": 200.0, "r": 0.6, "r_low": r_low}
    assert decide("C7", **values) == verdict


@pytest.mark.parametrize("mixed_max, verdict", [(0.03, "supported"), (0.07, "partly supported")])
def test_c11_mixed_training_keeps_every_m_below_the_forgetting_bar(mixed_max, verdict):
    values = {"f1": 0.8, "f1_lo": 0.7, "mixed_max": mixed_max, "mixed_min_final": 0.97}
    assert decide("C11", **values) == verdict


@pytest.mark.parametrize("p, verdict", [(0.03, "supported"), (0.07, "partly supported")])
def test_c14_separation_needs_p_below_alpha_in_both_windows(p, verdict):
    values = {"p_whole": 0.001, "ratio_low_whole": 2.0, "p_window": p, "ratio_low_window": 1.5,
              "between": 0.2, "pert_high": 0.05, "n_perturbed": 5.0}
    assert decide("C14", **values) == verdict


@pytest.mark.parametrize("recall_low, verdict", [(0.55, "supported"), (0.45, "not supported")])
def test_c15_recall_lower_bound_bar(recall_low, verdict):
    values = {"n_pos": 10.0, "n_neg_wd": 20.0, "recall": 0.9, "recall_low": recall_low,
              "lead": 500.0, "fp_wd": 1.0, "fpr_wd": 0.05, "fpr_wd_high": 0.24,
              "training": 1.0}
    assert decide("C15", **values) == verdict


@pytest.mark.parametrize("cid", ["N1", "N2", "N3"])
@pytest.mark.parametrize("p, verdict", [(0.03, "supported"), (0.07, "not supported")])
def test_n1_n3_shuffled_null_p_bar(cid, p, verdict):
    # between alpha (0.05) and each end of its range (0.01, 0.1)
    values = {"seeds": 5.0, "distance": 40.0, "null_distance": 220.0, "p": p}
    assert decide(cid, **values) == verdict
