"""Helpers shared by the claims tests."""
from __future__ import annotations

from modadd import claims


def says(text: str, *phrases: str) -> None:
    """Assert that ``text`` contains every one of ``phrases`` (the message lists those missing)."""
    missing = [p for p in phrases if p not in text]
    assert not missing, f"missing {missing!r} in:\n{text}"


def assert_mutation_flips(claim_id: str, tables, measure, flip: str, name: str, value: float,
                          to: str = "partly supported") -> None:
    """Claim ``claim_id`` is supported on ``tables``; its sensitivity table lists ``flip``; and
    its rule's ``decide`` with threshold ``name`` moved to ``value`` (just past the data) gives
    ``to``: the rule's verdict hangs on that threshold, where the data put it."""
    rec = claims.evaluate(claim_id, tables)
    assert rec.verdict == "supported"
    assert flip in rec.flips
    rule = claims.spec(claim_id).rule
    assert rule.decide(measure(tables), {**rule.thresholds, name: value}).verdict == to
