"""Threshold mutation check for the claims registry (``make mutants``; not part of ``make test``).

Every threshold of every current rule is moved, one at a time, to each end of its stated
sensitivity range (±20% if it has none), and the claim's tests are run in this process: a
mutation that no test notices is a rule whose threshold the tests do not pin.  Prints one line
per mutation and exits 1 if any survived.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from modadd import claims  # noqa: E402

TESTS = ROOT / "tests"
SHARED = TESTS / "test_claims_thresholds.py"


def claim_tests(chapter: str) -> Path:
    """The test file of a chapter's claims (chapters 8–11 share one)."""
    own = TESTS / f"test_claims_ch{chapter}.py"
    return own if own.exists() else TESTS / "test_claims_ch08_11.py"


def run(path: Path) -> int:
    args = ["-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist", str(path)]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return int(pytest.main(args))


def fails(path: Path) -> bool:
    """Whether the claim's tests, or the shared boundary tests, fail."""
    return bool(run(path) or run(SHARED))


def main() -> int:
    survived, total = [], 0
    for cid, spec in claims.REGISTRY.items():
        rule = spec.rule
        path = claim_tests(spec.chapter)
        if fails(path):
            print(f"{cid}: its tests fail before any mutation ({path.name})")
            return 2
        for name, value in rule.thresholds.items():
            low, high = rule.ranges.get(name, (value * 0.8, value * 1.2))
            for new in sorted({low, high} - {value}) or [value + 0.1]:
                original = dict(rule.thresholds)
                object.__setattr__(rule, "thresholds", {**original, name: new})
                try:
                    caught = fails(path)
                finally:
                    object.__setattr__(rule, "thresholds", original)
                total += 1
                print(f"{cid} {name}: {value:g} -> {new:g}: {'caught' if caught else 'SURVIVED'}",
                      flush=True)
                if not caught:
                    survived.append(f"{cid} {name} -> {new:g}")
    print(f"{total - len(survived)} of {total} threshold mutations caught")
    for line in survived:
        print(f"survived: {line}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
