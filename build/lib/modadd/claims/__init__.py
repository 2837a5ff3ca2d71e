"""The claims registry: every claim the book gives a verdict on (R0, C1–C16), its rule as data,
the cached tables it reads, and the pure function from those tables to a verdict record.

Each chapter's claims live in ``modadd/claims/chNN.py``, which defines

- ``CLAIMS``: a tuple of :class:`~modadd.claims.core.ClaimSpec` (claim as stated, rule with its
  thresholds, sensitivity ranges, null, version history; ``measure`` and ``null_tables``);
- ``load(preset, variant=None)``: the claims' tables at a preset, read from the committed caches
  (it never trains when ``MODADD_NO_TRAIN=1``; it is memoised, so a page that asks for five claims
  of one chapter reads its caches once).

Use::

    from modadd import claims
    record = claims.evaluate("C1", tables)      # tables a notebook already computed
    record = claims.record("C1", "book")        # or: load the cached tables and evaluate
    records = claims.ledger("book")             # all of them, in order (R0, C1..C16)

A record renders itself in a notebook (``_repr_html_``): verdict, why, effect, CI, every control,
whether the null passes, what flips it, rule version and text.
"""
from __future__ import annotations

import html
import importlib
import pkgutil
from dataclasses import replace
from typing import Optional

import pandas as pd

from .core import (PASSING, VERDICTS, ClaimSpec, Decision, Evidence, Rule, Tables,  # noqa: F401
                   VerdictRecord, apply_rule, evaluate as evaluate_spec, finite, sensitivity)

__all__ = ["ClaimSpec", "Decision", "Evidence", "PASSING", "REGISTRY", "Rule", "VERDICTS",
           "VerdictRecord", "apply_rule", "evaluate", "finite", "history_verdicts", "ledger",
           "record", "record_html", "rule_history", "sensitivity", "spec"]
ORDER = ("R0", *(f"C{i}" for i in range(1, 17)))


def _chapter_modules() -> list:
    names = sorted(m.name for m in pkgutil.iter_modules(__path__)
                   if m.name.startswith("ch") and m.name[2:].isdigit())
    return [importlib.import_module(f"{__name__}.{name}") for name in names]


def _registry() -> dict[str, ClaimSpec]:
    specs: dict[str, ClaimSpec] = {}
    for module in _chapter_modules():
        for spec in module.CLAIMS:
            if spec.id in specs:
                raise ValueError(f"claim {spec.id} is defined twice")
            specs[spec.id] = spec if spec.load else _with_load(spec, module.load)
    return {cid: specs[cid] for cid in sorted(specs, key=_order)}


def _with_load(spec: ClaimSpec, load) -> ClaimSpec:
    return replace(spec, load=load)


def _order(cid: str) -> tuple[int, str]:
    return (ORDER.index(cid), cid) if cid in ORDER else (len(ORDER), cid)


REGISTRY: dict[str, ClaimSpec] = _registry()


def spec(claim_id: str) -> ClaimSpec:
    """The registered claim ``claim_id`` (``ValueError`` naming the known ids otherwise)."""
    if claim_id not in REGISTRY:
        raise ValueError(f"claim_id: must be one of {list(REGISTRY)}, got {claim_id!r}")
    return REGISTRY[claim_id]


def evaluate(claim_id: str, tables: Tables, preset: str = "",
             variant_tables: Optional[dict[str, Tables]] = None) -> VerdictRecord:
    """The verdict record of claim ``claim_id`` on ``tables`` (pure: reads nothing else)."""
    return evaluate_spec(spec(claim_id), tables, preset, variant_tables)


def record(claim_id: str, preset: str = "book") -> VerdictRecord:
    """Load claim ``claim_id``'s cached tables at ``preset`` (and its variants) and evaluate."""
    s = spec(claim_id)
    variants = {name: s.load(preset, name) for name in s.variants}
    return evaluate_spec(s, s.load(preset), preset, variants)


def ledger(preset: str = "book") -> list[VerdictRecord]:
    """Every registered claim's record at ``preset``, in ledger order."""
    return [record(cid, preset) for cid in REGISTRY]


def rule_history() -> pd.DataFrame:
    """One row per rule version that was replaced: claim, old and new version, date, the old and
    new rule in words, and why it changed (verdicts under each come from :func:`history_verdicts`)."""
    rows = []
    for cid, s in REGISTRY.items():
        versions = [*s.history, s.rule]
        for old, new in zip(versions, versions[1:]):
            rows.append({"claim": cid, "old": f"v{old.version}", "new": f"v{new.version}",
                         "date": new.date, "old rule": old.text, "new rule": new.text,
                         "reason": new.reason})
    return pd.DataFrame(rows, columns=["claim", "old", "new", "date", "old rule", "new rule",
                                       "reason"])


def history_verdicts(records: list[VerdictRecord]) -> pd.DataFrame:
    """For every record with earlier rule versions: the verdict under each version, on the same
    tables, and whether each version's null passes."""
    rows = []
    for rec in records:
        for past in rec.previous:
            rows.append({"claim": rec.id, "rule": f"v{past['version']}", "date": past["date"],
                         "verdict": past["verdict"],
                         "null passes": "yes" if past["null_passes"] else "no",
                         "flips under": "; ".join(past.get("flips", [])) or "—",
                         "why": past["why"]})
        if rec.previous:
            rows.append({"claim": rec.id, "rule": f"v{rec.rule_version} (current)",
                         "date": spec(rec.id).rule.date, "verdict": rec.verdict,
                         "null passes": "yes" if rec.null_passes else "no",
                         "flips under": "; ".join(rec.flips) or "—", "why": rec.why})
    return pd.DataFrame(rows, columns=["claim", "rule", "date", "verdict", "null passes",
                                       "flips under", "why"])


def record_html(rec: VerdictRecord) -> str:
    """A verdict record as a small HTML table (what a chapter shows under its ledger heading)."""
    from ..report import verdict_style
    esc = html.escape
    rows = [("verdict", f'<b style="{verdict_style(rec.verdict)}; padding: 0 0.3em">'
                        f"{esc(rec.verdict)}</b>"),
            ("why", esc(rec.why)), ("effect", esc(rec.effect)), ("95% CI", esc(rec.ci))]
    rows += [(f"control: {esc(k)}", esc(v)) for k, v in rec.controls.items()]
    rows += [("null passes the rule", ("yes" if rec.null_passes else "no")
              + f" (on its null the rule says: {esc(rec.null_verdict)} — {esc(rec.null_why)})"),
             ("flips under", esc("; ".join(rec.flips) or "nothing tried flips it")),
             (f"rule v{rec.rule_version}", esc(rec.rule_text)),
             ("unit of replication", esc(rec.unit))]
    rows += [(f"earlier rule v{p['version']}", esc(
        f"{p['verdict']}: {p['why']}" + (" (null passes it)" if p["null_passes"] else "")
        + (f"; flips under: {'; '.join(p['flips'])}" if p.get("flips") else "")))
        for p in rec.previous]
    rows += [(f"at {esc(name)}", esc(f"{v.verdict}: {v.why} ({v.effect})"))
             for name, v in rec.variants.items()]
    rows += [(esc(k), esc(v)) for k, v in rec.notes.items()]
    body = "".join(f'<tr><th style="text-align: left; vertical-align: top">{k}</th>'
                   f'<td style="text-align: left">{v}</td></tr>' for k, v in rows)
    return (f'<table class="verdict-record"><caption><b>{esc(rec.id)}</b>: '
            f"{esc(rec.claim)} ({esc(rec.source)})</caption>{body}</table>")


VerdictRecord._repr_html_ = record_html  # type: ignore[attr-defined]
