"""modadd.report: the one interval formatter the book uses."""
from __future__ import annotations

import numpy as np
import pytest

from modadd import report
from modadd.stats import mean_ci


def test_ci_text_writes_mean_and_t_interval():
    x = [3.5, 3.7, 3.9, 3.6, 3.8]
    mean, low, high = mean_ci(x)
    assert report.ci_text(x) == f"{mean:.2f} [{low:.2f}, {high:.2f}]"
    assert report.ci_text(x, 3, signed=True).startswith("+3.700 [+")
    assert report.ci_text([2.0]) == "2.00 (n=1)"
    assert report.ci_text([]) == "—" and report.ci_text([np.nan, np.nan]) == "—"


def test_formats_and_bounds():
    assert report.fmt_ci((0.000123, 0.0001, 0.00015), 2, "e") == "1.23e-04 [1.00e-04, 1.50e-04]"
    assert report.fmt_ci((0.1234, 0.1, 0.15), 3, "g") == "0.123 [0.1, 0.15]"
    assert report.fmt_ci((0.96, 0.90, 1.02), 3, bounds=(0, 1)) == "0.960 [0.900, 1.000]"
    assert report.interval((1.0, np.nan, np.nan)) == ""
    assert report.number(float("inf")) == "—"
    with pytest.raises(ValueError, match="fmt"):
        report.number(1.0, fmt="x")


def test_words_follow_the_numbers():
    assert report.ci_relation((0.5, 0.1, 0.9)) == "above"
    assert report.ci_relation((-0.5, -0.9, -0.1)) == "below"
    assert report.ci_relation((0.0, -0.1, 0.1)) == "indistinguishable from"
    assert report.compare(2, 1) == "above" and report.compare(1, 1) == "equal to"
    assert report.pvalue(0.0004) == "p < 0.001" and report.pvalue(0.0123) == "p = 0.012"
    assert report.pvalue(float("nan")) == "—"
    assert report.verdict_style("supported") == "background-color: #d9f0d3"
