"""modadd.sweep (spec, keys, execution, resume, failures, Dask, collect) and papermill reading
the py:percent notebooks (modadd.papermill_io). The sweeps run a tiny notebook written here."""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from notebook_files import write_notebook

import modadd.sweep as S
from modadd import paths

TINY = '''# %% tags=["parameters"]
x: int = 1                # a number
fail: bool = False        # raise in the second cell
label: str = "a"          # free text
use_record: bool = False  # also call modadd.sweep.record_value (imports modadd: slower)

# %%
if fail:
    raise ValueError(f"failing on purpose at x={x}")

# %%
import os
import numpy as np
from myst_nb import glue
glue("glued", np.float64(x) * 2, display=False)   # numpy scalar, hidden glue
glue("shown", x + 1)
glue("table", {"not": ["a", "scalar"]})            # not collected
if use_record:
    from modadd.sweep import record_value
    record_value("double", x * 2)
    record_value("cwd", os.getcwd())
    record_value("threads", os.environ.get("OMP_NUM_THREADS"))
    record_value("missing", float("nan"))
'''
NOTEBOOKS = sorted((paths.ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


@pytest.fixture
def notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path, "tiny.py", TINY)


def spec_of(notebook: Path, /, **fields) -> dict:
    return {"name": "tiny", "notebook": str(notebook), **fields}


def manifest(name: str = "tiny") -> dict[str, dict]:
    return {e["key"]: e for e in S.read_manifest(name)["points"]}


def leftovers(name: str = "tiny") -> list[str]:
    return [p.name for p in S.sweep_dir(name).iterdir() if ".tmp" in p.name]


# ---- spec and keys ------------------------------------------------------------------------------
def test_grid_expands_to_cartesian_product_then_points(notebook: Path) -> None:
    spec = S.parse_spec(spec_of(notebook, parameters={"fail": False},
                                grid={"x": [1, 2, 3], "label": ["a", "b"]},
                                points=[{"x": 9}, {}]))
    points = spec.expand()
    assert [(p.parameters["x"], p.parameters["label"]) for p in points[:6]] == [
        (1, "a"), (1, "b"), (2, "a"), (2, "b"), (3, "a"), (3, "b")]
    assert points[6].parameters == {"fail": False, "x": 9}
    assert points[7].parameters == {"fail": False}
    assert re.fullmatch(r"label=a,x=1-[0-9a-f]{8}", points[0].key)
    assert re.fullmatch(r"x=9-[0-9a-f]{8}", points[6].key)
    assert re.fullmatch(r"base-[0-9a-f]{8}", points[7].key)
    assert len({p.key for p in points}) == 8
    # the documented hash: full parameters + notebook path, sorted JSON
    text = json.dumps({"notebook": spec.notebook_id, "parameters": points[0].parameters},
                      sort_keys=True)
    assert points[0].key.endswith(hashlib.sha256(text.encode()).hexdigest()[:8])


def test_keys_do_not_depend_on_grid_key_order_but_on_every_parameter(notebook: Path) -> None:
    a = S.parse_spec(spec_of(notebook, grid={"x": [1, 2], "label": ["a", "b"]})).expand()
    b = S.parse_spec(spec_of(notebook, grid={"label": ["b", "a"], "x": [2, 1]})).expand()
    assert {p.key: p.parameters for p in a} == {p.key: p.parameters for p in b}
    c = S.parse_spec(spec_of(notebook, parameters={"fail": True},
                             grid={"x": [1, 2], "label": ["a", "b"]})).expand()
    assert not {p.key for p in a} & {p.key for p in c}         # base parameters are hashed too
    other = notebook.with_name("other.py")
    other.write_text(TINY)
    d = S.parse_spec(spec_of(other, grid={"x": [1, 2], "label": ["a", "b"]})).expand()
    assert not {p.key for p in a} & {p.key for p in d}         # so is the notebook


def test_keys_are_safe_file_names(notebook: Path) -> None:
    (point,) = S.parse_spec(spec_of(notebook, points=[{"label": "a/b c:*?"}])).expand()
    assert re.fullmatch(r"label=a_b_c___-[0-9a-f]{8}", point.key)


@pytest.mark.parametrize("fields, message", [
    ({"grid": {"x": [1]}, "grdi": {}}, r"spec: unknown field\(s\) grdi; allowed: name, notebook"),
    ({"grid": {"x": []}}, r"grid: 'x' must be a non-empty list"),
    ({"grid": {"x": 3}}, r"grid: 'x' must be a non-empty list"),
    ({"grid": {"y": [1, 2]}}, r"grid\.y\[0\]: 'y' is not a parameter of the notebook; declared "
                              r"parameters: x, fail, label, use_record"),
    ({"parameters": {"seed": 1}, "points": [{}]}, r"parameters: 'seed' is not a parameter"),
    ({"points": [{"x": "3"}]}, r"points\[0\]: x='3' is a str, the notebook declares x: int"),
    ({"points": [{"x": True}]}, r"points\[0\]: x=True is a bool, the notebook declares x: int"),
    ({"points": [{"x": 1}, {"x": 1}]}, r"grid/points: point 1 .* repeats point 0"),
    ({"parameters": {"x": 1}, "points": [{}, {"x": 1}]}, r"grid/points: point 1 .* repeats"),
    ({"points": "x=1"}, r"points: must be a list of mappings"),
    ({}, r"grid/points: give a non-empty grid"),
    ({"name": "../up", "points": [{}]}, r"name: must be a folder name"),
    ({"notebook": "notebooks/nope.py", "points": [{}]}, r"notebook: 'notebooks/nope.py' does not"),
    ({"notebook": "notes.txt", "points": [{}]}, r"notebook: must be a path ending in \.py or"),
])
def test_spec_validation_names_the_field(notebook: Path, fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        S.parse_spec(spec_of(notebook, **fields))


def test_bad_executor_arguments(notebook: Path) -> None:
    spec = spec_of(notebook, points=[{}])
    with pytest.raises(ValueError, match="workers: must be an integer >= 1, got 0"):
        S.run_sweep(spec, workers=0)
    with pytest.raises(ValueError, match="dask_local: must be an integer >= 1"):
        S.run_sweep(spec, dask_local=0)
    with pytest.raises(ValueError, match="scheduler: must be a Dask scheduler address"):
        S.run_sweep(spec, scheduler="localhost")
    assert not S.sweep_dir("tiny").exists()             # validated before anything is written


# ---- running ------------------------------------------------------------------------------------
def test_run_resume_and_collect(notebook: Path) -> None:
    spec = spec_of(notebook, parameters={"use_record": True}, grid={"x": [1, 2, 3]})
    summary = S.run_sweep(spec)
    assert summary.status.tolist() == ["done"] * 3
    assert summary.action.tolist() == ["executed"] * 3
    first = manifest()
    assert all(e["duration_s"] > 0 and e["error"] is None for e in first.values())
    folder = S.sweep_dir("tiny")
    assert sorted(p.name for p in folder.glob("*.ipynb")) == sorted(f"{k}.ipynb" for k in first)
    assert leftovers() == []

    again = S.run_sweep(spec)                   # resume: nothing runs, nothing is rewritten
    assert again.action.tolist() == ["skipped (done)"] * 3
    assert manifest() == {k: e for k, e in first.items()}

    table = S.collect("tiny").sort_values("x")
    assert table.x.tolist() == [1, 2, 3]
    assert table.double.tolist() == [2, 4, 6]                  # record_value()
    assert table.glued.tolist() == [2.0, 4.0, 6.0]             # glue(display=False), np.float64
    assert table.shown.tolist() == [2, 3, 4]                   # glue()
    assert pd.api.types.is_integer_dtype(table.double)
    assert pd.api.types.is_float_dtype(table.glued)
    assert table.missing.isna().all() and pd.api.types.is_float_dtype(table.missing)
    assert "table" not in table                                # a dict is not a scalar
    assert set(table.cwd) == {str(notebook.parent)}            # executed in the notebook's folder
    assert set(table.threads) == {"1"}
    assert set(table.use_record) == {True}

    # a done point whose notebook disappeared runs again, alone
    gone = table.key.iloc[1]
    (folder / f"{gone}.ipynb").unlink()
    third = S.run_sweep(spec)
    assert dict(zip(third.key, third.action)) == {
        k: "executed" if k == gone else "skipped (done)" for k in first}
    assert manifest()[gone]["finished"] > first[gone]["finished"]


def test_failure_is_isolated_and_recorded(notebook: Path, tmp_path: Path, capsys) -> None:
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(f"name: tiny\nnotebook: {notebook}\ngrid:\n  x: [1, 2]\n"
                         f"points:\n  - {{x: 3, fail: true}}\n")
    assert S.main([str(spec_path), "--workers", "2"]) == 1
    out = capsys.readouterr().out
    assert "1 failed" in out and re.search(r"fail=true,x=3-\w{8}\s+failed", out)
    entries = manifest()
    status = {e["parameters"]["x"]: e["status"] for e in entries.values()}
    assert status == {1: "done", 2: "done", 3: "failed"}
    (failed,) = [e for e in entries.values() if e["status"] == "failed"]
    assert failed["error"]["type"] == "ValueError"
    assert failed["error"]["message"] == "failing on purpose at x=3"
    assert "raise ValueError" in failed["error"]["traceback"]
    assert "\x1b[" not in failed["error"]["traceback"]         # ANSI colours stripped
    folder = S.sweep_dir("tiny")
    assert failed["output"] == f"{failed['key']}.failed.ipynb"
    assert (folder / failed["output"]).exists()                # kept for debugging
    assert not (folder / f"{failed['key']}.ipynb").exists()
    assert leftovers() == []
    assert len(S.collect("tiny")) == 2

    # kept as failed unless asked: nothing runs, still non-zero
    assert S.main([str(spec_path)]) == 1
    assert manifest() == entries
    # --retry-failed runs the failed point only
    assert S.main([str(spec_path), "--retry-failed"]) == 1
    retried = manifest()
    assert retried[failed["key"]]["finished"] > failed["finished"]
    assert all(retried[k] == e for k, e in entries.items() if k != failed["key"])


def test_crash_leaves_no_partial_notebook(notebook: Path, monkeypatch) -> None:
    import papermill

    def crash(nb, output_path, **kwargs):
        Path(output_path).write_text('{"half": ')              # papermill's partial write
        raise OSError("disk full")

    monkeypatch.setattr(papermill, "execute_notebook", crash)
    summary = S.run_sweep(spec_of(notebook, points=[{}]))
    assert summary.status.tolist() == ["failed"]
    (entry,) = manifest().values()
    assert entry["error"]["type"] == "OSError" and entry["error"]["message"] == "disk full"
    assert entry["output"] is None
    assert sorted(p.name for p in S.sweep_dir("tiny").iterdir()) == [
        f".{entry['key']}.lock", ".lock", "manifest.json"]             # + the point's lock


def test_interrupted_points_go_back_to_pending(notebook: Path, monkeypatch) -> None:
    import papermill

    def interrupt(nb, output_path, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(papermill, "execute_notebook", interrupt)
    with pytest.raises(KeyboardInterrupt):
        S.run_sweep(spec_of(notebook, grid={"x": [1, 2]}))
    assert [e["status"] for e in manifest().values()] == ["pending", "pending"]
    assert leftovers() == []


def test_one_sweep_of_a_name_at_a_time(notebook: Path) -> None:
    folder = S.sweep_dir("tiny")
    folder.mkdir(parents=True)
    with open(folder / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(S.SweepBusy, match="sweep 'tiny' is already running"):
            S.run_sweep(spec_of(notebook, points=[{}]))


@pytest.mark.slow
def test_dask_local_cluster_end_to_end(notebook: Path, tmp_path: Path) -> None:
    spec_path = tmp_path / "tiny.yaml"
    spec_path.write_text(f"name: tiny\nnotebook: {notebook}\ngrid: {{x: [4, 5, 6]}}\n")
    assert S.main([str(spec_path), "--dask-local", "2"]) == 0
    assert [e["status"] for e in manifest().values()] == ["done"] * 3
    assert leftovers() == []
    table = S.collect("tiny").sort_values("x")
    assert table.glued.tolist() == [8.0, 10.0, 12.0]
    assert table.shown.tolist() == [5, 6, 7]


# ---- results ------------------------------------------------------------------------------------
def test_parse_scalar() -> None:
    assert S.parse_scalar("np.float64(0.25)") == 0.25
    assert S.parse_scalar("tensor(3)") == 3
    assert S.parse_scalar("tensor(0.5000, grad_fn=<MeanBackward0>)") == 0.5
    assert S.parse_scalar("'seed 3'") == "seed 3"
    assert S.parse_scalar("True") is True and S.parse_scalar("None") is None
    for text in ("[1, 2]", "   a  b\n0  1  2", "<Figure size 640x480 with 1 Axes>",
                 "Decimal('1.5')"):
        with pytest.raises(ValueError, match="text: .* is not the repr of a scalar"):
            S.parse_scalar(text)


def test_record_metadata(monkeypatch) -> None:
    shown = []
    monkeypatch.setattr("IPython.display.display",
                        lambda data, raw, metadata: shown.append((data, metadata)))
    S.record_value("acc", np.float32(0.5))
    S.record_value("steps", np.int64(7))
    S.record_value("loss", float("inf"))
    assert shown == [({"text/plain": "0.5"}, {"modadd_record": {"acc": 0.5}}),
                     ({"text/plain": "7"}, {"modadd_record": {"steps": 7}}),
                     ({"text/plain": "None"}, {"modadd_record": {"loss": None}})]
    assert type(shown[1][1]["modadd_record"]["steps"]) is int
    with pytest.raises(ValueError, match="value: curve must be a scalar"):
        S.record_value("curve", np.arange(3))
    with pytest.raises(ValueError, match="name: must be a non-empty string"):
        S.record_value("", 1)


def test_collect_unknown_sweep() -> None:
    with pytest.raises(ValueError, match="name: no sweep 'nope' .* known: none"):
        S.collect("nope")


# ---- papermill reads the py:percent notebooks ---------------------------------------------------
def declared_lines(path: Path) -> list[tuple[str, str, str]]:
    """(name, type, comment) of every line of the notebook's parameters cell; fails on a line
    without a type annotation or a comment."""
    import jupytext
    (cell,) = [c for c in jupytext.read(path).cells if "parameters" in c.metadata.get("tags", [])]
    rows = []
    for line in cell.source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = re.fullmatch(r"(\w+)\s*:\s*(\w+|Optional\[\w+\])\s*=\s*.+?\s+#\s*(.+)", line)
        assert match, f"{path.name}: parameter line without type or comment: {line!r}"
        rows.append(match.groups())
    return rows


def check_help(path: Path, out: str) -> None:
    """``out`` (papermill's help text of ``path``) names every declared parameter, its type, a
    default and its comment."""
    declared = declared_lines(path)
    assert declared
    for name, kind, comment in declared:
        assert re.search(rf"^  {name}: {re.escape(kind)} \(default .*\)", out, re.M), (path.name, name)
        assert comment.strip() in out, (path.name, comment)


@pytest.mark.slow
def test_papermill_help_notebook_reads_every_notebook(capsys) -> None:
    # the command line, on chapter 1 by relative path and by file:// URI (a subprocess each) ...
    papermill = Path(sys.executable).with_name("papermill")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    targets = [str(NOTEBOOKS[0].relative_to(paths.ROOT)), NOTEBOOKS[0].as_uri()]
    runs = [subprocess.Popen([str(papermill), "--help-notebook", t], cwd=paths.ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for t in targets]
    for (out, err), code in [(run.communicate(timeout=120), run.returncode) for run in runs]:
        assert code == 0, err
        assert "Warning" not in err, err
        check_help(NOTEBOOKS[0], out)
    # ... and every notebook through the function behind it, in this process (papermill's own
    # I/O registry, so our py:percent handler is what reads them)
    from papermill.inspection import display_notebook_help
    import click
    assert len(NOTEBOOKS) >= 11
    for path in NOTEBOOKS:
        with click.Context(click.Command("papermill")) as ctx:
            assert display_notebook_help(ctx, str(path), {}) == 0
        check_help(path, capsys.readouterr().out)
