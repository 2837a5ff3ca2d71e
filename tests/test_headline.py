"""modadd.headline: the front page's numbers are read from the ledger's records, not typed."""
from __future__ import annotations

import math
from types import SimpleNamespace

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from modadd import headline  # noqa: E402


def test_numbers_are_read_from_text() -> None:
    assert headline._triple_in("null 4.75 [4.38, 5.12]; real − x -1.04 [-1.36, -0.72]") == \
        (4.75, 4.38, 5.12)
    assert headline._triple_in("a 1 [0, 2]; b -1.04 [-1.36, -0.72]", "b") == (-1.04, -1.36, -0.72)
    assert headline._interval_in("only [0.100, 0.132]; mixed [0.9, 1.0]", "mixed") == (0.9, 1.0)
    assert headline._number_after("distance 2.92 (whole runs)", "distance") == 2.92
    with pytest.raises(ValueError, match="after 'missing'"):
        headline._triple_in("4.75 [4.38, 5.12]", "missing")


def record(**fields) -> SimpleNamespace:
    base = {"verdict": "supported", "chapter": "03", "values": {}, "controls": {}, "effect": "",
            "ci": ""}
    return SimpleNamespace(**{**base, **fields})


def test_a_headline_reads_its_record() -> None:
    r = record(values={"overall": 3.7, "overall low": 3.5, "overall high": 3.9, "null": 4.8,
                       "null low": 4.4, "null high": 5.1})
    table = headline.headline_table({"C1": r})
    row = table.set_index("id").loc["C1"]
    assert (row.measured, row.low, row.high) == (3.7, 3.5, 3.9)
    assert (row.null_value, row.null_low, row.null_high) == (4.8, 4.4, 5.1)
    assert (row.paper_low, row.paper_high) == (3.0, 4.0)
    # the other claims are listed as not measured, not dropped
    assert table.set_index("id").loc["C5"].verdict == "not yet measured"
    with pytest.raises(ValueError, match="C99"):
        headline.headline_table({"C99": r})
