"""A helper for the sweep tests: a small py:percent notebook written to a test's folder."""
from __future__ import annotations

from pathlib import Path


def write_notebook(folder: Path, name: str, text: str) -> Path:
    """``text`` written as notebook ``<folder>/nbs/<name>``; its path."""
    path = folder / "nbs" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path
