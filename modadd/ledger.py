"""The claims ledger: each chapter records its computed verdict rows; book/claims.md shows them.

Rows live in ``data/results/claims/<chapter>-<preset>.csv`` (written atomically each time the
chapter runs), so the ledger page never holds a typed verdict.
"""
from __future__ import annotations

import pandas as pd

from . import paths
from .store import atomic_write_text

COLUMNS = ["id", "claim", "verdict", "effect", "CI", "control"]
VERDICTS = ("supported", "partly supported", "not supported", "not testable")


def ledger_table(rows: list[dict]) -> pd.DataFrame:
    """Validated ledger rows: the columns of ``COLUMNS``, verdicts from ``VERDICTS``."""
    table = pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"rows: missing column(s) {missing}; need {COLUMNS}")
    bad = sorted(set(table.verdict) - set(VERDICTS))
    if bad:
        raise ValueError(f"verdict: must be one of {VERDICTS}, got {bad}")
    return table[COLUMNS]


def record(chapter: str, rows: list[dict], preset: str) -> pd.DataFrame:
    """Validate ``rows``, store them as chapter ``chapter``'s ledger at ``preset``, return them."""
    table = ledger_table(rows)
    path = paths.results_dir() / "claims" / f"{chapter}-{preset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, table.to_csv(index=False))
    return table


def read_ledger(preset: str = "book") -> pd.DataFrame:
    """All recorded rows at ``preset``, with a ``chapter`` column, in chapter order."""
    files = sorted((paths.results_dir() / "claims").glob(f"*-{preset}.csv"))
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False)
              .assign(chapter=f.name[: -len(f"-{preset}.csv")]) for f in files]
    if not frames:
        return pd.DataFrame(columns=["chapter", *COLUMNS])
    return pd.concat(frames, ignore_index=True)[["chapter", *COLUMNS]]
