"""The claims ledger: one row per registered claim (R0, C1–C16), computed by ``modadd.claims`` from
the cached tables, never from files a chapter wrote during the same build.

``assemble_ledger(preset)`` evaluates every claim (``modadd.claims.ledger``), adds Holm-adjusted
p-values over the claims' primary tests, and the link to each claim's chapter section and rule
definition.  A claim whose tables are not cached at ``preset`` (and may not be trained:
``MODADD_NO_TRAIN=1``) is shown as *not yet measured*, with the miss as its reason.
"""
from __future__ import annotations

import re
from typing import Optional, Union

import numpy as np
import pandas as pd

from . import paths
from .claims import REGISTRY, VERDICTS, VerdictRecord, record
from .stats import holm

__all__ = ["LEDGER_COLUMNS", "NOT_MEASURED", "VERDICTS", "assemble_ledger", "chapter_section",
           "ledger_records", "rule_anchor", "section_anchor"]

NOT_MEASURED = "not yet measured"
LEDGER_COLUMNS = ["id", "claim", "source", "verdict", "why", "effect", "CI", "controls",
                  "null passes", "flips under", "p", "p (Holm)", "rule", "other settings",
                  "preset", "chapter", "page", "section"]
_LEDGER_HEADING = re.compile(r"^# #+ (?P<title>(?:\d+\.\s*)?Claims ledger rows?)\s*$", re.M)


def section_anchor(title: str) -> str:
    """The HTML id Sphinx gives a section titled ``title`` ("5. Claims ledger rows" ->
    "claims-ledger-rows"): lower case, runs of other characters as one hyphen, no leading digits."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower())
    return re.sub(r"^[-0-9]+|-+$", "", slug)


def rule_anchor(claim_id: str) -> str:
    """The id of claim ``claim_id``'s rule definition on the methods page (``rule-c1``)."""
    return f"rule-{claim_id.lower()}"


def chapter_section(chapter: str) -> tuple[str, str]:
    """``(page, anchor)`` of chapter ``chapter``'s claims-ledger section: the book page
    (``notebooks/03_execution_manifold``) and the id of its "Claims ledger rows" heading."""
    found = sorted((paths.ROOT / "notebooks").glob(f"{chapter}_*.py"))
    if len(found) != 1:
        raise ValueError(f"chapter: need exactly one notebooks/{chapter}_*.py, found {len(found)}")
    heading = _LEDGER_HEADING.search(found[0].read_text())
    if heading is None:
        raise ValueError(f"chapter: {found[0].name} has no 'Claims ledger rows' heading")
    return f"notebooks/{found[0].stem}", section_anchor(heading["title"])


def _not_measured(claim_id: str, preset: str, error: Exception) -> dict:
    spec = REGISTRY[claim_id]
    return {"id": claim_id, "claim": spec.claim, "source": spec.source, "verdict": NOT_MEASURED,
            "why": f"no cached tables at preset {preset!r}: {error}", "effect": "", "CI": "",
            "controls": spec.rule.null, "null passes": "—", "flips under": "", "p": np.nan,
            "rule": f"v{spec.rule.version}", "other settings": "", "chapter": spec.chapter,
            "preset": ""}


def ledger_records(preset: str = "book") -> dict[str, Union[VerdictRecord, Exception]]:
    """Every claim's verdict record at ``preset``; where its tables are not cached (and may not
    be trained), the cache miss instead."""
    from .durable import CacheMiss
    _check_preset(preset)
    out: dict[str, Union[VerdictRecord, Exception]] = {}
    for cid in REGISTRY:
        try:
            out[cid] = record(cid, preset)
        except (CacheMiss, FileNotFoundError) as error:
            out[cid] = error
    return out


def _check_preset(preset: str) -> None:
    if not isinstance(preset, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", preset):
        raise ValueError(f"preset: must be a preset name (letters, digits, _ or -), got {preset!r}")


def assemble_ledger(preset: str = "book",
                    records: Optional[dict[str, Union[VerdictRecord, Exception]]] = None
                    ) -> pd.DataFrame:
    """One row per registered claim (ledger order), ``LEDGER_COLUMNS``: verdict, why, effect, CI,
    every control, whether the null passes the rule, what flips it, its primary p-value and the
    Holm-adjusted one over all claims with a test, rule version, verdicts at the other settings (schedules, snapshot grids),
    and the chapter's ledger section (``page``, ``section``)."""
    _check_preset(preset)
    records = ledger_records(preset) if records is None else records
    rows = []
    for cid in REGISTRY:
        rec = records.get(cid, KeyError(f"no record of {cid}"))
        rows.append(rec.row() if isinstance(rec, VerdictRecord) else
                    _not_measured(cid, preset, rec))
    table = pd.DataFrame(rows)
    table["p (Holm)"] = holm(table["p"].astype(float).to_numpy())
    sections = [chapter_section(c) for c in table.chapter]
    table["page"] = [s[0] for s in sections]
    table["section"] = [s[1] for s in sections]
    return table[LEDGER_COLUMNS]
