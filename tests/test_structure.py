"""Structural checks of the package that anyone can run: no import cycle between modadd's
modules (counting imports inside functions too), and a README layout that names every module."""
from __future__ import annotations

import ast
import re

from modadd import paths

PACKAGE = paths.ROOT / "modadd"


def _module_name(path) -> str:
    parts = path.relative_to(paths.ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of modadd it imports}`` from every import statement (module level or
    inside a function), relative imports resolved; ``modadd`` (the package) itself excluded."""
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([node.module] if node.module else []))
                candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in modules and c != name}
        graph[name] = targets - {"modadd"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a path ``[a, b, ..., a]``, or ``[]``."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        state[node] = 2
        stack.pop()
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def test_the_cycle_finder_finds_cycles():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) == []


def test_the_import_graph_sees_function_level_and_relative_imports():
    graph = import_graph()
    assert "modadd.ensemble" in graph["modadd.runner"]        # module level, relative
    assert "modadd.durable" in graph["modadd.claims.lock"]    # inside a function, two dots


def test_no_import_cycle():
    assert _cycle(import_graph()) == []


def test_the_readme_layout_names_every_module():
    readme = (paths.ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `modadd/` |"))
    named = set(re.findall(r"`([a-z_]+)`", row))
    modules = {p.stem for p in PACKAGE.glob("[a-z]*.py")} | {"claims"}
    assert modules - named == set(), f"README layout row misses {sorted(modules - named)}"


def test_the_papermill_plugin_does_not_import_torch():
    """papermill imports the plug-in on every ``import papermill``: it must stay light."""
    import subprocess
    import sys
    code = "import sys, modadd.papermill_io; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_no_private_name_is_imported_across_modules():
    """A ``_name`` is its module's own: another module importing it means it is public."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or
                                                     (node.module or "").startswith("modadd")):
                found += [f"{path.name}: {alias.name}" for alias in node.names
                          if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert found == []


def test_a_long_module_says_why():
    """Over ~400 lines (450 with tolerance), a module's docstring states its reason
    (a paragraph starting "Length:")."""
    long = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if text.count("\n") > 450 and "\nLength: " not in (ast.get_docstring(ast.parse(text))
                                                         or ""):
            long.append(f"{path.relative_to(PACKAGE)} ({text.count(chr(10))} lines)")
    assert long == []


# Public names several modules define on purpose, each with one meaning: a protocol every module
# of a kind implements, or one quantity on another input.
SHARED_NAMES = {
    # every claims chapter module (modadd/claims/chNN.py): the registry reads these by name
    "load": "a chapter's cached tables", "measure": "a claim's statistic",
    "null_tables": "a claim's null data", "alternatives": "a claim's alternative analyses",
    "summary": "a chapter's verdict prose", "decide_v1": "a rule's decision",
    "decide_v2": "a rule's decision", "measure_v1": "a rule version's own statistic",
    "main": "a module's command line",
    "compute_tables": "an analysis module's cached tables for a set of runs",
    "read_manifest": "a store's manifest (sweeps, analysis cache)",
    "grok_step": "the one ground truth (grokking.first_step_at) on metrics or on a Series",
    "outcomes": "detector outcomes: one run (detect), every run of the tables (claims.ch10)",
    "transitions": "10-90% entropy transition windows: run metrics (bubbling), claim tables "
                   "(claims.ch04)",
    "evaluate": "a claim's verdict (claims; claims.core is its implementation)",
}


def test_public_names_defined_twice_share_one_meaning():
    """No two public functions or classes of modadd share a name with different meanings: a
    name defined in two modules must be a listed protocol."""
    where: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(_module_name(path))
    twice = {name: mods for name, mods in where.items() if len(mods) > 1}
    assert set(twice) - set(SHARED_NAMES) == set(), {n: twice[n] for n in
                                                     set(twice) - set(SHARED_NAMES)}
    assert set(SHARED_NAMES) <= set(twice), "a listed name is no longer shared: drop it"
