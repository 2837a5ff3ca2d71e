"""Every notebook runs top to bottom with papermill at the smoke preset, in a fresh store.

The notebooks of one test session share that store (its runs and cached analyses): chapters 2-6
read the same smoke runs, which are then trained once, not once per chapter.  The store lets
concurrent readers of one key wait for its single writer, so the two xdist workers share it too.
"""
from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import jupytext
import papermill
import pytest
from PIL import Image

from browser_check import OBJECT_REPR

# a figure's natural width: PAGE_WIDTH inches at DPI, plus what a tight bounding box may add
# (a legend beside the panels); the book's ~685 px column shows it at >= 0.6x
MAX_FIGURE_PX = 1120
NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.py"))
# everything else a notebook needs at the smoke scale comes from the study registry
SMOKE = {"preset": "smoke"}


def declared_parameters(notebook) -> set[str]:
    """Names assigned in the notebook's single ``parameters`` cell."""
    cells = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one parameters cell"
    return {line.split(":")[0].split("=")[0].strip() for line in cells[0].source.splitlines()
            if line and not line.startswith("#")}


@pytest.fixture
def session_store(tmp_path_factory, monkeypatch) -> Path:
    """One results/cache store for every notebook test of this session (all xdist workers)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent       # the session's folder, above each worker's own
    store = base / "notebook-store"
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(store / "results"))
    monkeypatch.setenv("MODADD_CACHE_DIR", str(store / "cache"))
    return store


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_at_smoke_preset(path: Path, tmp_path: Path, monkeypatch,
                                       session_store: Path) -> None:
    # one thread in the kernel, as in every other test process: two xdist workers then use the
    # two cores without oversubscribing them (training pools use one thread per process already)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        monkeypatch.setenv(name, "1")
    notebook = jupytext.read(path)
    names = declared_parameters(notebook)
    assert "preset" in names
    executed = papermill.execute_notebook(notebook, str(tmp_path / f"{path.stem}.ipynb"),
                                          parameters=SMOKE, kernel_name="python3",
                                          cwd=str(path.parent), progress_bar=False)
    errors = [o for c in executed.cells for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    images = [o["data"]["image/png"] for c in executed.cells for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) >= 1, "the notebook drew no figure"
    # no matplotlib object's repr as a cell's result (a cell ending in fig.legend(...))
    reprs = [o["data"]["text/plain"] for c in executed.cells for o in c.get("outputs", [])
             if set(o.get("data", {})) == {"text/plain"}          # not a figure's fallback text
             and OBJECT_REPR.search(o["data"]["text/plain"])]
    assert reprs == [], f"end these cells with plt.show(): {reprs}"
    # drawn for the page (modadd.plots): no wider than the book's column can show at >= 0.6x
    widths = [Image.open(io.BytesIO(base64.b64decode(png))).size[0] for png in images]
    assert max(widths) <= MAX_FIGURE_PX, f"figure widths {widths} px (most {MAX_FIGURE_PX})"


def test_every_notebook_is_in_the_toc() -> None:
    toc = (Path(__file__).resolve().parent.parent / "_toc.yml").read_text()
    missing = [p.stem for p in NOTEBOOKS if f"notebooks/{p.stem}" not in toc]
    assert not missing


# what the book shows of a code cell: its input behind a toggle, or nothing at all
HIDING = {"hide-input", "hide-cell", "remove-input", "remove-cell"}


def test_the_book_shows_only_the_parameters_cells_code() -> None:
    """Code out of the reader's way: every code cell but the parameters cell is hidden
    (``hide-input``: a toggle shows it) or removed; the parameters cell stays visible."""
    shown = []
    for path in NOTEBOOKS:
        for index, cell in enumerate(jupytext.read(path).cells):
            tags = set(cell.metadata.get("tags", []))
            if cell.cell_type == "code" and not tags & HIDING and "parameters" not in tags:
                shown.append(f"{path.name} cell {index}")
            if "parameters" in tags and tags & HIDING:
                shown.append(f"{path.name} cell {index}: the parameters cell is hidden")
    assert shown == []
