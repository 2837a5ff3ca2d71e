"""Helpers for the claims tests: a notebook's parameter defaults and a claims loader's defaults,
so a test can check that the chapter and the ledger evaluate the same configuration."""
from __future__ import annotations

import ast
import inspect
from pathlib import Path

import jupytext

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def notebook_defaults(stem: str) -> dict:
    """``{name: default}`` of the annotated assignments in notebook ``<stem>_*.py``'s
    parameters cell (the values papermill would override)."""
    path = next(NOTEBOOKS.glob(f"{stem}_*.py"))
    cell = next(c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", []))
    return {n.target.id: ast.literal_eval(n.value) for n in ast.parse(cell.source).body
            if isinstance(n, ast.AnnAssign)}


def loader_defaults(module) -> dict:
    """``{name: default}`` of ``module.load``'s keyword parameters (memoised or not)."""
    load = getattr(module.load, "__wrapped__", module.load)
    return {k: p.default for k, p in inspect.signature(load).parameters.items()
            if k != "variant"}
