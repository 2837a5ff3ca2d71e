"""The pre-registration trail: no locked rule version changes silently."""
from __future__ import annotations

import json
from dataclasses import replace

from modadd import claims
from modadd.claims import lock


def test_every_registered_rule_version_is_locked_and_unchanged() -> None:
    assert lock.problems() == []


def test_any_change_to_a_rule_changes_its_fingerprint() -> None:
    rule = claims.spec("R0").rule
    base = lock.fingerprint(rule)
    assert lock.fingerprint(replace(rule, thresholds={"target": 0.9})) != base
    assert lock.fingerprint(replace(rule, text=rule.text + ".")) != base
    assert lock.fingerprint(replace(rule, decide=lambda ev, th: None)) != base
    assert lock.fingerprint(replace(rule)) == base


def test_update_adds_new_versions_and_never_rewrites_locked_ones(tmp_path) -> None:
    path = tmp_path / "rules.lock.json"
    path.write_text(json.dumps({"R0": {"v1": "edited-by-hand"}}))
    added = lock.update(path)
    assert "R0 v1" not in added and len(added) == sum(len(v) for v in lock.current().values()) - 1
    assert json.loads(path.read_text())["R0"]["v1"] == "edited-by-hand"
    assert lock.problems(path) == ["R0 v1: the rule changed after it was locked; add a new "
                                   "version instead (and keep this one in the claim's history)"]


def test_rules_toml_declares_exactly_the_registered_versions() -> None:
    from modadd.claims.core import declarations
    declared = {(cid, v) for cid, versions in declarations().items() for v in versions}
    registered = {(cid, f"v{r.version}") for cid, s in claims.REGISTRY.items()
                  for r in (*s.history, s.rule)}
    assert declared == registered


def test_a_version_missing_from_rules_toml_is_named() -> None:
    import pytest

    from modadd.claims.core import declared
    with pytest.raises(ValueError, match="C8 v9: not declared in rules.toml"):
        declared("C8", 9, "modadd.claims.ch05")
