"""modadd.claims.core: null guard, sensitivity, rule history, variants, and the registry."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modadd import claims
from modadd.claims.core import ClaimSpec, Decision, Evidence, Rule, evaluate
from modadd.stats import mean_ci


def _measure(tables):
    ci = mean_ci(tables["x"])
    return Evidence(values={"low": ci[1], "mean": ci[0]}, effect=f"x {ci[0]:.2f}",
                    ci=f"[{ci[1]:.2f}, {ci[2]:.2f}]", controls={"null": "0"})


def _decide(ev, th):
    if ev["low"] > th["bar"]:
        return Decision("supported", f"CI low {ev['low']:.2f} > {th['bar']}")
    return Decision("not supported", f"CI low {ev['low']:.2f} ≤ {th['bar']}")


def _decide_mean(ev, th):                       # a bad old rule: passed by any positive mean
    ok = ev["mean"] > th["bar"]
    return Decision("supported" if ok else "not supported", f"mean {ev['mean']:.2f}")


def _spec(null=lambda t: {"x": np.zeros(5)}, **kw) -> ClaimSpec:
    rule = Rule(version=2, date="2026-12-01", text="CI low above bar", statistic="mean x",
                unit="seed", direction="higher", thresholds={"bar": 0.0},
                ranges={"bar": (-0.5, 1.5)}, decide=_decide, null="zeros", reason="calibrated")
    old = Rule(version=1, date="2026-11-01", text="mean above bar", statistic="mean x",
               unit="seed", direction="higher", thresholds={"bar": 0.0}, decide=_decide_mean)
    return ClaimSpec(id="CX", claim="x is positive", source="test", chapter="00", tables=("x",),
                     measure=_measure, null_tables=null, rule=rule, history=(old,), **kw)


def test_supportive_table_is_supported_and_its_null_does_not_pass():
    rec = evaluate(_spec(), {"x": np.array([1.0, 1.2, 0.9, 1.1, 1.0])})
    assert rec.verdict == "supported" and rec.null_passes is False
    assert rec.null_verdict == "not supported" and rec.rule_version == 2
    # the bar's upper range end (1.5) is above the CI's lower bound (≈ 0.9): that flip is listed
    assert rec.flips == ["bar = 1.5 (rule: 0) → not supported"]


def test_a_rule_that_its_null_passes_yields_not_testable():
    spec = _spec(null=lambda t: {"x": np.array([1.0, 1.1, 0.9, 1.0, 1.05])})
    rec = evaluate(spec, {"x": np.array([1.0, 1.2, 0.9, 1.1, 1.0])})
    assert rec.verdict == "not testable" and rec.null_passes is True
    assert "passed by its own null" in rec.why


def test_earlier_rule_versions_are_evaluated_on_the_same_tables():
    # mean 0.2 > 0 passes v1, but the CI covers 0, so v2 does not
    rec = evaluate(_spec(null=lambda t: {"x": np.array([0.3, -0.3, 0.1, -0.1, 0.05])}),
                   {"x": np.array([0.6, -0.4, 0.5, -0.2, 0.5])})
    assert rec.verdict == "not supported"
    assert rec.previous[0]["version"] == 1 and rec.previous[0]["verdict"] == "not testable"
    assert rec.previous[0]["null_passes"] is True   # v1 was passed by its null: that is why it went


def test_alternatives_and_variants_are_evaluated():
    spec = _spec(alternatives=lambda t: {"first seed left out": {"x": t["x"][1:]},
                                         "first two seeds": {"x": t["x"][:2]}})
    rec = evaluate(spec, {"x": np.array([1.0, 1.1, -0.2, 1.0, 1.05])},
                   variant_tables={"other schedule": {"x": np.array([-1.0, -1.1, -1.2])}})
    assert rec.verdict == "supported"
    # dropping seed 0 widens the interval past 0; the first two seeds alone agree with the verdict
    assert rec.flips == ["bar = 1.5 (rule: 0) → not supported",
                         "first seed left out → not supported"]
    assert rec.variants["other schedule"].verdict == "not supported"
    assert rec.row()["other settings"] == "other schedule: not supported"


def test_bad_rules_and_tables_name_the_field():
    with pytest.raises(ValueError, match="ranges"):
        Rule(version=1, date="", text="", statistic="", unit="", direction="",
             thresholds={"bar": 0.0}, ranges={"bar": (0.5, 1.0)}, decide=_decide)
    with pytest.raises(ValueError, match="ranges"):
        Rule(version=1, date="", text="", statistic="", unit="", direction="",
             thresholds={"bar": 0.0}, ranges={"other": (0.0, 1.0)}, decide=_decide)
    with pytest.raises(ValueError, match="verdict"):
        Decision("probably", "")
    with pytest.raises(KeyError, match="tables"):
        evaluate(_spec(), {"y": [1.0]})
    with pytest.raises(KeyError, match="no value"):
        _measure({"x": [1.0, 2.0]})["missing"]
    with pytest.raises(ValueError, match="versions"):
        _spec().__class__(**{**_spec().__dict__, "history": (_spec().rule,)})


def test_registry_holds_every_chapter_claim_once_in_ledger_order():
    ids = list(claims.REGISTRY)
    assert ids == sorted(ids, key=claims._order)
    assert ids[0] == "R0"
    for cid, s in claims.REGISTRY.items():
        assert s.id == cid and s.load is not None
        assert s.rule.text and s.rule.unit and s.rule.null, f"{cid}: rule must be stated"
    with pytest.raises(ValueError, match="claim_id"):
        claims.spec("C99")


def test_record_renders_as_html_with_every_part():
    rec = evaluate(_spec(), {"x": np.array([1.0, 1.2, 0.9, 1.1, 1.0])})
    page = rec._repr_html_()
    for part in ("supported", "null passes the rule", "flips under", "rule v2",
                 "earlier rule v1", "control: null"):
        assert part in page
    assert "<script" not in claims.record_html(
        evaluate(_spec(), {"x": pd.Series([1.0, 1.2, 0.9])}))
