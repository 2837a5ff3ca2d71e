"""`make publish-html` (the push half of `make publish`): ghp-import puts the built book on the
gh-pages branch of PUBLISH_REMOTE. Run on a throwaway repository and a bare remote in tmp_path,
never on this repository."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("git") is None
    or not (VENV / "bin" / "ghp-import").exists(),
    reason="needs make, git and ghp-import in .venv (pip install -e '.[publish]')")


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, Path]:
    """A work repository with one commit, and an empty bare repository as its remote."""
    work, bare = tmp_path / "work", tmp_path / "remote.git"
    work.mkdir()
    git("init", "-q", "-b", "main", cwd=work)
    git("config", "user.name", "Test", cwd=work)
    git("config", "user.email", "test@example.invalid", cwd=work)
    (work / "README").write_text("x\n")
    git("add", "README", cwd=work)
    git("commit", "-q", "-m", "source", cwd=work)
    git("init", "-q", "--bare", str(bare), cwd=tmp_path)
    return work, bare


def publish(work: Path, html: Path, remote: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "GIT_"))}
    return subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), "-C", str(work),
         "publish-html", f"VENV={VENV}", f"HTML={html}", f"PUBLISH_REMOTE={remote}"],
        capture_output=True, text=True, env=env, timeout=120)


def site(folder: Path, pages: dict[str, str]) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    for name, text in pages.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def branch_files(bare: Path) -> dict[str, str]:
    names = git("ls-tree", "-r", "--name-only", "gh-pages", cwd=bare).split()
    return {n: git("show", f"gh-pages:{n}", cwd=bare) for n in names}


def test_the_html_becomes_the_gh_pages_branch(repo: tuple[Path, Path], tmp_path: Path) -> None:
    work, bare = repo
    html = site(tmp_path / "html", {"index.html": "<p>one</p>", "sub/page.html": "<p>two</p>"})
    done = publish(work, html, bare)
    assert done.returncode == 0, done.stdout + done.stderr
    assert branch_files(bare) == {".nojekyll": "", "index.html": "<p>one</p>",
                                  "sub/page.html": "<p>two</p>"}
    source = git("rev-parse", "--short", "HEAD", cwd=work).strip()
    assert git("log", "-1", "--format=%s", "gh-pages", cwd=bare).strip() == \
        f"Book built from {source}"

    # a rebuilt book replaces the branch's contents (a page removed is gone)
    html = site(html, {"index.html": "<p>changed</p>", "new.html": "<p>new</p>"})
    done = publish(work, html, bare)
    assert done.returncode == 0, done.stdout + done.stderr
    assert branch_files(bare) == {".nojekyll": "", "index.html": "<p>changed</p>",
                                  "new.html": "<p>new</p>"}
    assert git("rev-list", "--count", "gh-pages", cwd=bare).strip() == "2"
    assert "main" not in git("branch", "--list", cwd=bare)   # only gh-pages was pushed


def test_a_missing_book_is_a_clear_error_and_pushes_nothing(repo: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    work, bare = repo
    for html in (tmp_path / "absent", site(tmp_path / "no-index", {"other.html": "x"})):
        done = publish(work, html, bare)
        assert done.returncode != 0
        assert f"publish-html: no {html}/index.html" in done.stderr
        assert "build the book first (make book)" in done.stderr
    assert git("for-each-ref", cwd=bare) == ""
    assert "gh-pages" not in git("branch", "--list", cwd=work)
