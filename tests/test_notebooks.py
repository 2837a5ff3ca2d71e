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


def figure_cells(path: Path) -> list:
    """The code cells of notebook ``path`` that draw a figure (call ``plt.show()``)."""
    return [c for c in jupytext.read(path).cells
            if c.cell_type == "code" and "plt.show()" in c.source]


def figure_problems(path: Path) -> list[str]:
    """What a reader would miss in notebook ``path``'s figures: each figure cell draws one figure
    (one ``plt.show()``) and carries a numbered caption and alt text in its ``mystnb`` metadata
    (``{"figure": {"caption", "name"}, "image": {"alt"}}``), names unique and ``fig-`` prefixed."""
    problems, names = [], []
    for index, cell in enumerate(figure_cells(path)):
        where = f"{path.name} figure cell {index} ({cell.source.splitlines()[0][:40]!r})"
        meta = cell.metadata.get("mystnb", {})
        figure, image = meta.get("figure", {}), meta.get("image", {})
        if cell.source.count("plt.show()") != 1:
            problems.append(f"{where}: {cell.source.count('plt.show()')} figures in one cell")
        elif not cell.source.rstrip().endswith("plt.show()"):
            problems.append(f"{where}: code after plt.show() (myst-nb puts every output of a "
                            f"figure cell inside the figure: figure_data goes in the next cell)")
        if len(figure.get("caption", "")) < 40:
            problems.append(f"{where}: no caption (mystnb.figure.caption, >= 40 characters)")
        if not str(figure.get("name", "")).startswith("fig-"):
            problems.append(f"{where}: no figure name (mystnb.figure.name = 'fig-...')")
        if len(image.get("alt", "")) < 20:
            problems.append(f"{where}: no alt text (mystnb.image.alt, >= 20 characters)")
        names.append(figure.get("name"))
    duplicated = sorted({n for n in names if n and names.count(n) > 1})
    return problems + [f"{path.name}: figure name {n} used twice" for n in duplicated]


def test_every_figure_has_a_caption_and_alt_text() -> None:
    problems = [p for path in NOTEBOOKS for p in figure_problems(path)]
    assert problems == []


def test_figure_problems_are_found(tmp_path: Path) -> None:
    """The check above fails a figure without metadata and one cell with two figures."""
    bare = tmp_path / "00_bare.py"
    bare.write_text("# %%\nimport matplotlib.pyplot as plt\nplt.plot([1]); plt.show()\n"
                    "plt.plot([2]); plt.show()\n# %%\nplt.plot([3]); plt.show()\nx = 1\n")
    found = figure_problems(bare)
    assert any("code after plt.show()" in p for p in found)
    assert any("2 figures" in p for p in found) and any("caption" in p for p in found)
    assert any("alt text" in p for p in found) and any("figure name" in p for p in found)
    good = tmp_path / "00_good.py"
    good.write_text('# %% mystnb={"figure": {"caption": "Accuracy per m over training, mean '
                    'over seeds", "name": "fig-x"}, "image": {"alt": "four curves rising to 1"}}\n'
                    "import matplotlib.pyplot as plt\nplt.plot([1]); plt.show()\n")
    assert figure_problems(good) == []


def test_every_chapter_ends_with_a_conclusion() -> None:
    """Every chapter's last section is "## Conclusion", opened by ``modadd.report.conclusion``,
    and the chapter shows its "Reproduce this chapter" box (``display(S)`` of its settings)."""
    problems = []
    for path in NOTEBOOKS:
        cells = jupytext.read(path).cells
        heads = [line for c in cells if c.cell_type == "markdown"
                 for line in c.source.splitlines() if line.startswith("## ")]
        if not heads or heads[-1].strip() != "## Conclusion":
            problems.append(f"{path.name}: last section is {heads[-1] if heads else None!r}")
        start = max((i for i, c in enumerate(cells) if c.cell_type == "markdown"
                     and "## Conclusion" in c.source.splitlines()), default=len(cells))
        if not any("conclusion(" in c.source for c in cells[start:] if c.cell_type == "code"):
            problems.append(f"{path.name}: the Conclusion does not call report.conclusion")
        if not any("display(S)" in c.source for c in cells if c.cell_type == "code"):
            problems.append(f"{path.name}: no display(S) (the Reproduce this chapter box)")
    assert problems == []
