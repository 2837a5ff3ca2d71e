"""The pre-registration trail: a fingerprint of every rule version (declared in ``rules.toml``),
committed in ``rules.lock.json``, so that a rule cannot change silently once its verdict has been shown.

A fingerprint covers everything that decides a verdict: the rule's text, statistic, unit,
direction, thresholds, sensitivity ranges, null, and the source code of its ``decide`` (and of its
own ``measure``, if it has one). ``tests/test_claims_lock.py`` fails when a locked version's
fingerprint changes: change a rule by adding a new version (the old one goes to the claim's
``history``, with its own ``measure`` if the statistic changed) and a row appears in the methods
page's rule history. New versions are added to the lock with::

    python -m modadd.claims.lock            # adds unlocked versions; never rewrites locked ones
    python -m modadd.claims.lock --check    # what the test checks
"""
from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import sys
from pathlib import Path

from .core import Rule

LOCK = Path(__file__).with_name("rules.lock.json")


def _source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):
        return repr(fn)


def fingerprint(rule: Rule) -> str:
    """A hash of everything in ``rule`` that decides a verdict."""
    parts = {"version": rule.version, "text": rule.text, "statistic": rule.statistic,
             "unit": rule.unit, "direction": rule.direction,
             "thresholds": {k: float(v) for k, v in sorted(rule.thresholds.items())},
             "ranges": {k: [float(a), float(b)] for k, (a, b) in sorted(rule.ranges.items())},
             "null": rule.null, "decide": _source(rule.decide),
             "measure": _source(rule.measure) if rule.measure is not None else ""}
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def current() -> dict[str, dict[str, str]]:
    """``{claim: {"v1": fingerprint, ...}}`` of every registered rule version."""
    from . import REGISTRY
    return {cid: {f"v{r.version}": fingerprint(r) for r in (*spec.history, spec.rule)}
            for cid, spec in REGISTRY.items()}


def read_lock(path: Path = LOCK) -> dict[str, dict[str, str]]:
    return json.loads(path.read_text()) if path.exists() else {}


def problems(path: Path = LOCK) -> list[str]:
    """Locked versions whose rule changed, and registered versions not yet locked."""
    locked, now = read_lock(path), current()
    out = []
    for cid, versions in now.items():
        for version, fp in versions.items():
            old = locked.get(cid, {}).get(version)
            if old is None:
                out.append(f"{cid} {version}: not in the lock (python -m modadd.claims.lock)")
            elif old != fp:
                out.append(f"{cid} {version}: the rule changed after it was locked; add a new "
                           f"version instead (and keep this one in the claim's history)")
    for cid, versions in locked.items():
        for version in versions:
            if version not in now.get(cid, {}):
                out.append(f"{cid} {version}: locked but no longer registered (keep old "
                           f"versions in the claim's history)")
    return out


def update(path: Path = LOCK) -> list[str]:
    """Add every registered version that is not locked yet; return what was added."""
    from ..durable import atomic_write_text
    locked, added = read_lock(path), []
    for cid, versions in current().items():
        for version, fp in versions.items():
            if version not in locked.setdefault(cid, {}):
                locked[cid][version] = fp
                added.append(f"{cid} {version}")
    atomic_write_text(path, json.dumps(locked, indent=1, sort_keys=True) + "\n")
    return added


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modadd.claims.lock", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report problems")
    args = parser.parse_args(argv)
    if not args.check:
        for line in update():
            print(f"locked {line}")
    found = problems()
    for line in found:
        print(line, file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
