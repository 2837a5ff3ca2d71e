"""The machinery every claim shares: evidence, rules, and the evaluation that turns tables into a
verdict record.

A claim (:class:`ClaimSpec`) is evaluated in three steps, all pure functions of its tables:

1. ``measure(tables) -> Evidence``: the statistics (the numbers the rule reads, the effect and its
   CI as text, every control with its own number, the primary one-sided p-value);
2. ``rule.decide(evidence, thresholds) -> Decision``: verdict and the criterion that decided it;
3. the same two steps on ``null_tables(tables)`` (the null or control data in the same shape):
   if the rule passes its own null it tests nothing, and the claim is *not testable* by it.

Then every threshold is moved to both ends of its stated range, and every named alternative
analysis (a new null draw, a cell left out, ...) is measured and decided again: a verdict that
changes is listed under ``flips``.  Older rule versions (``ClaimSpec.history``) are evaluated on
the same tables so the rule-history table shows what each would have said.
"""
from __future__ import annotations

import math
import sys
import tomllib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

VERDICTS = ("supported", "partly supported", "not supported", "not testable")
PASSING = ("supported", "partly supported")
Tables = Mapping[str, Any]


@dataclass(frozen=True)
class Evidence:
    """What ``measure`` found in one set of tables."""

    values: Mapping[str, float]            # the numbers ``decide`` reads (by name)
    effect: str                            # the effect in words, with its numbers
    ci: str                                # the effect's 95% interval, as text
    controls: Mapping[str, str] = field(default_factory=dict)   # control/null name -> its number
    p_value: float = float("nan")          # one-sided p of the primary test (Holm), NaN if none
    notes: Mapping[str, str] = field(default_factory=dict)      # anything else a reader needs

    def __getitem__(self, name: str) -> float:
        try:
            return self.values[name]
        except KeyError:
            raise KeyError(f"evidence has no value {name!r}; it has {sorted(self.values)}") \
                from None


@dataclass(frozen=True)
class Decision:
    """A verdict and, in words, the criterion that decided it."""

    verdict: str
    why: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Rule:
    """One version of a claim's rule, fixed before its data are seen."""

    version: int
    date: str                                  # ISO date this version was fixed
    text: str                                  # the rule in words (methods page, ledger)
    statistic: str                             # what is measured
    unit: str                                  # the unit of replication of its interval
    direction: str                             # which side supports the claim
    thresholds: Mapping[str, float]
    decide: Callable[[Evidence, Mapping[str, float]], Decision]
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # sensitivity
    null: str = ""                             # the null / control it is calibrated against
    measure: Optional[Callable[[Tables], Evidence]] = None   # only if it differs from the claim's
    reason: str = ""                           # why this version replaced the previous one

    def __post_init__(self) -> None:
        unknown = sorted(set(self.ranges) - set(self.thresholds))
        if unknown:
            raise ValueError(f"ranges: {unknown} are not thresholds of the rule "
                             f"({sorted(self.thresholds)})")
        for name, (lo, hi) in self.ranges.items():
            if not lo <= self.thresholds[name] <= hi:
                raise ValueError(f"ranges[{name!r}]: ({lo}, {hi}) must contain the threshold "
                                 f"{self.thresholds[name]}")


RULES = Path(__file__).with_name("rules.toml")     # every rule version, as pre-registered


@lru_cache(maxsize=None)
def declarations() -> dict:
    """``{claim: {"v1": {field: value}, ...}}`` as :data:`RULES` declares them."""
    return tomllib.loads(RULES.read_text(encoding="utf-8"))


def declared(claim_id: str, version: int, module: str) -> Rule:
    """Version ``version`` of claim ``claim_id``'s rule as :data:`RULES` declares it, with its
    ``decide`` (and ``measure``) looked up by name in module ``module`` (a chapter module passes
    its ``__name__`` while it is imported, after defining them)."""
    entry = declarations().get(claim_id, {}).get(f"v{version}")
    if entry is None:
        raise ValueError(f"{claim_id} v{version}: not declared in {RULES.name}")
    namespace = vars(sys.modules[module])
    values = dict(entry)
    decide = namespace[values.pop("decide")]
    measure = namespace[values.pop("measure")] if "measure" in values else None
    values["ranges"] = {k: tuple(v) for k, v in values.get("ranges", {}).items()}
    return Rule(version=version, decide=decide, measure=measure, **values)


@dataclass(frozen=True)
class ClaimSpec:
    """A claim as stated, where it is tested, and how its tables become a verdict."""

    id: str
    claim: str                                  # as the source states it
    source: str                                 # paper section / figure, or seed system
    chapter: str                                # "03": the chapter that shows it
    tables: tuple[str, ...]                     # names of the tables ``measure`` reads
    measure: Callable[[Tables], Evidence]
    null_tables: Callable[[Tables], Tables]     # the null/control data, same shape
    rule: Rule                                  # the current rule
    history: tuple[Rule, ...] = ()              # earlier versions, oldest first
    alternatives: Optional[Callable[[Tables], Mapping[str, Tables]]] = None
    load: Optional[Callable[..., Tables]] = None  # load(preset, variant=None) -> tables
    variants: tuple[str, ...] = ()              # other table sets load() can give (schedules)

    def __post_init__(self) -> None:
        versions = [r.version for r in (*self.history, self.rule)]
        if versions != sorted(set(versions)):
            raise ValueError(f"{self.id}: rule versions must increase, got {versions}")


@dataclass
class VerdictRecord:
    """Everything the ledger shows for one claim."""

    id: str
    claim: str
    source: str
    chapter: str
    verdict: str
    why: str
    effect: str
    ci: str
    controls: dict[str, str]
    p_value: float
    null_passes: Optional[bool]
    null_verdict: str
    null_why: str
    flips: list[str]
    rule_version: int
    rule_text: str
    unit: str
    previous: list[dict] = field(default_factory=list)   # older rules on the same tables
    variants: dict[str, "VerdictRecord"] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    preset: str = ""
    values: dict[str, float] = field(default_factory=dict)   # the numbers the rule read

    def row(self) -> dict:
        """A flat ledger row (strings and numbers)."""
        return {"id": self.id, "claim": self.claim, "source": self.source,
                "verdict": self.verdict, "why": self.why, "effect": self.effect, "CI": self.ci,
                "controls": "; ".join(f"{k}: {v}" for k, v in self.controls.items()),
                "null passes": {True: "yes", False: "no", None: "—"}[self.null_passes],
                "flips under": "; ".join(self.flips) or "nothing tried flips it",
                "p": self.p_value, "rule": f"v{self.rule_version}",
                "other settings": "; ".join(f"{name}: {rec.verdict}"
                                             for name, rec in self.variants.items()),
                "chapter": self.chapter, "preset": self.preset}


def _decide(rule: Rule, evidence: Evidence, thresholds: Optional[Mapping[str, float]] = None
            ) -> Decision:
    thresholds = {**rule.thresholds, **(thresholds or {})}
    decision = rule.decide(evidence, thresholds)
    if not isinstance(decision, Decision):
        raise TypeError(f"rule v{rule.version}: decide must return a Decision, got "
                        f"{type(decision).__name__}")
    return decision


def _measure(spec: ClaimSpec, rule: Rule, tables: Tables) -> Evidence:
    missing = [name for name in spec.tables if name not in tables]
    if missing:
        raise KeyError(f"{spec.id}: tables {missing} missing; it reads {list(spec.tables)}, "
                       f"got {sorted(tables)}")
    return (rule.measure or spec.measure)(tables)


def apply_rule(spec: ClaimSpec, rule: Rule, tables: Tables) -> dict:
    """One rule version on one set of tables: its decision, the decision on the null tables,
    whether the null passes, and the verdict after the null guard."""
    evidence = _measure(spec, rule, tables)
    decision = _decide(rule, evidence)
    null_evidence = _measure(spec, rule, spec.null_tables(tables))
    null_decision = _decide(rule, null_evidence)
    null_passes = null_decision.verdict in PASSING
    verdict, why = decision.verdict, decision.why
    if null_passes and verdict in PASSING:
        verdict = "not testable"
        why = (f"the rule is passed by its own null ({null_decision.verdict}: "
               f"{null_decision.why}), so it cannot tell the claim from the null; "
               f"as measured: {decision.why}")
    return {"evidence": evidence, "decision": decision, "verdict": verdict, "why": why,
            "null_evidence": null_evidence, "null_decision": null_decision,
            "null_passes": null_passes}


def sensitivity(spec: ClaimSpec, tables: Tables, verdict: str,
                evidence: Optional[Evidence] = None, rule: Optional[Rule] = None) -> list[str]:
    """The stated alternatives under which ``rule``'s verdict (default: the current rule's)
    changes: each threshold at both ends of its range, each named alternative analysis of
    ``spec.alternatives``."""
    rule = rule or spec.rule
    evidence = evidence or _measure(spec, rule, tables)
    flips = []
    for name, (lo, hi) in rule.ranges.items():
        for value in (lo, hi):
            if value == rule.thresholds[name]:
                continue
            other = _decide(rule, evidence, {name: value}).verdict
            if other != verdict:
                flips.append(f"{name} = {value:g} (rule: {rule.thresholds[name]:g}) → {other}")
    if spec.alternatives is not None:
        for label, alt_tables in spec.alternatives(tables).items():
            other = apply_rule(spec, rule, alt_tables)["verdict"]
            if other != verdict:
                flips.append(f"{label} → {other}")
    return flips


def evaluate(spec: ClaimSpec, tables: Tables, preset: str = "",
             variant_tables: Optional[Mapping[str, Tables]] = None) -> VerdictRecord:
    """The verdict record of ``spec`` on ``tables`` (and, per named variant, on its tables)."""
    result = apply_rule(spec, spec.rule, tables)
    evidence: Evidence = result["evidence"]
    previous = []
    for old in spec.history:
        past = apply_rule(spec, old, tables)
        previous.append({"version": old.version, "date": old.date, "text": old.text,
                         "verdict": past["verdict"], "why": past["why"],
                         "null_passes": past["null_passes"],
                         "flips": sensitivity(spec, tables, past["verdict"], past["evidence"],
                                              old)})
    record = VerdictRecord(
        id=spec.id, claim=spec.claim, source=spec.source, chapter=spec.chapter,
        verdict=result["verdict"], why=result["why"], effect=evidence.effect, ci=evidence.ci,
        controls=dict(evidence.controls), p_value=float(evidence.p_value),
        null_passes=result["null_passes"], null_verdict=result["null_decision"].verdict,
        null_why=result["null_decision"].why,
        flips=sensitivity(spec, tables, result["verdict"], evidence),
        rule_version=spec.rule.version, rule_text=spec.rule.text, unit=spec.rule.unit,
        previous=previous, notes=dict(evidence.notes), preset=preset,
        values=dict(evidence.values))
    for name, other in (variant_tables or {}).items():
        record.variants[name] = evaluate(replace(spec, variants=()), other, preset)
    return record


def finite(value: float) -> bool:
    """True for a finite number (NaN and inf are not evidence)."""
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False
