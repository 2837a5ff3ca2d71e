"""The study registry: one place for each chapter's settings at every scale, read alike by the
notebooks, ``make study`` and the claims' loaders."""
from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

import jupytext
import pytest

from modadd import claims, openq, precision, registry, sae, study
from modadd.claims import ch02, ch04, ch06, ch07, ch11
from modadd.commutator import CommutatorSettings
from modadd.grokking import GROKKING_PRESETS
from modadd.presets import PRESETS
from modadd.runs import run_key

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = {p.stem: p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py")}


def parameters_cell(stem: str) -> dict:
    """``{name: (annotation, default)}`` of notebook ``stem``'s parameters cell."""
    cell = next(c for c in jupytext.read(NOTEBOOKS[stem]).cells
                if "parameters" in c.metadata.get("tags", []))
    return {n.target.id: (ast.unparse(n.annotation), ast.literal_eval(n.value))
            for n in ast.parse(cell.source).body if isinstance(n, ast.AnnAssign)}


# ----------------------------------------------------------------------------------- notebooks

def test_every_notebook_has_an_entry_and_every_entry_a_notebook() -> None:
    assert sorted(c.notebook for c in registry.CHAPTERS.values()) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("key", list(registry.CHAPTERS))
def test_a_notebook_declares_exactly_its_registry_settings_left_at_none(key) -> None:
    entry = registry.chapter(key)
    cell = parameters_cell(entry.notebook)
    assert cell.pop("preset") == ("str", "book")
    for name in registry.EXECUTION:
        cell.pop(name, None)
    assert set(cell) == set(entry.book)
    for name, (annotation, default) in cell.items():
        assert default is None, name
        assert annotation.startswith("Optional["), name     # papermill and sweeps read it


@pytest.mark.parametrize("stem", sorted(NOTEBOOKS))
def test_no_notebook_builds_its_runs_or_translates_a_preset(stem) -> None:
    source = NOTEBOOKS[stem].read_text()
    for call in ("study_configs(", "preset_seeds(", "grokking_study(", "detection_study(",
                 "scaling_study(", "prediction_study(", "grid_preset(", '== "smoke"',
                 "ProbeSettings(", "CommutatorSettings("):
        assert call not in source, call
    assert f'registry.from_namespace("{stem[:2].join(("ch", ""))}", globals())' in source


def test_the_notebook_smoke_test_passes_only_the_preset() -> None:
    tree = ast.parse((ROOT / "tests" / "test_notebooks.py").read_text())
    smoke = next(n.value for n in tree.body if isinstance(n, ast.Assign)
                 and any(getattr(t, "id", "") == "SMOKE" for t in n.targets))
    assert ast.literal_eval(smoke) == {"preset": "smoke"}


# ---------------------------------------------------------------------------------- semantics

def test_none_keeps_the_registry_value_and_a_value_overrides_it() -> None:
    book = registry.settings("ch06")
    assert book.n_train == 8192 and book.stages == (0.05, 0.25, 1.0) and book.given == set()
    smoke = registry.settings("ch06", "smoke", n_train=None, sae_steps=50, stages=[0.5, 1])
    assert smoke.n_train == 1024 and smoke.sae_steps == 50 and smoke.stages == (0.5, 1.0)
    assert smoke.given == {"sae_steps", "stages"}
    assert dict(smoke)["n_eval"] == smoke["n_eval"] == 128
    assert "`sae_steps` = 50 (set)" in smoke._repr_markdown_()


def test_from_namespace_reads_a_notebooks_parameters() -> None:
    ns = {"preset": "smoke", "seeds": 3, "n_samples": None, "workers": 0}
    with pytest.raises(ValueError, match="ch02: the parameters cell lacks n_steps"):
        registry.from_namespace("ch02", ns)
    assert registry.from_namespace("ch01", {"preset": "smoke", "n_samples": None,
                                           "seed": 4})._values == {"n_samples": 2000, "seed": 4}


@pytest.mark.parametrize("call, message", [
    (lambda: registry.settings("ch13"), "chapter: must be one of ch01, .*, got 'ch13'"),
    (lambda: registry.settings("ch10", "original"), "preset: ch10 runs at 'smoke', 'book', "
                                                      "got 'original'"),
    (lambda: registry.settings("ch05", pair=3), "ch05: no setting pair; its settings are seeds"),
    (lambda: registry.settings("ch05", pairs="9"), r"ch05 setting pairs: must be int \(the "
                                                    r"registry's value is 9\), got '9'"),
    (lambda: registry.settings("ch05", pairs=True), "ch05 setting pairs: must be int"),
    (lambda: registry.settings("ch06", stages=0.5), "ch06 setting stages: must be a list"),
    (lambda: registry.settings("ch06").no_such, "ch06 has no setting 'no_such'"),
])
def test_bad_input_names_the_setting_and_the_allowed_values(call, message) -> None:
    with pytest.raises((ValueError, AttributeError), match=message):
        call()


def test_an_int_passes_for_a_float_setting() -> None:
    assert registry.settings("ch09", ridge=0).ridge == 0.0


def test_a_scale_may_only_change_declared_settings() -> None:
    with pytest.raises(ValueError, match="scale 'smoke' sets \\['seedz'\\]"):
        registry.Chapter("chXX", "xx", {"seeds": 5}, {"book": {}, "smoke": {"seedz": 2}})
    with pytest.raises(ValueError, match="scales must include 'book'"):
        registry.Chapter("chXX", "xx", {"seeds": 5}, {"smoke": {}})


# ------------------------------------------------------------------------- one source of truth

def test_scales_are_the_families_own_preset_names() -> None:
    for key in ("ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08"):
        assert set(registry.chapter(key).scales) == set(PRESETS)
    assert set(registry.chapter("ch09").scales) <= set(GROKKING_PRESETS)
    assert {registry.settings("ch10", p).grid for p in ("smoke", "book")} <= set(GROKKING_PRESETS)
    assert set(registry.chapter("ch11").scales) == set(openq.SCALES)
    for preset in ("smoke", "book", "paper"):
        assert registry.settings("ch03", preset).seeds == PRESETS[preset].seeds
    assert registry.settings("ch11", "smoke").seeds == openq.SCALES["smoke"].seeds


def test_registry_thresholds_are_the_rules_thresholds() -> None:
    assert registry.settings("ch02").target_accuracy == ch02.CLAIMS[0].rule.thresholds["target"]
    assert registry.settings("ch04").smooth_fraction == ch04.SMOOTH_FRACTION
    assert registry.settings("ch04").smooth_fraction == \
        claims.spec("C6").rule.thresholds["smooth_fraction"]
    thresholds = ch06.CLAIMS[0].rule.thresholds
    assert registry.settings("ch06").strong == thresholds["strong"] == ch06.STRONG
    assert registry.settings("ch06").small_drop == thresholds["small_drop"]
    assert registry.settings("ch07").learned == ch07.C11_V1.thresholds["learned"] \
        == ch07.C12_V1.thresholds["learned"] == ch07.LEARNED
    s = registry.settings("ch11")
    assert (s.success, s.n_perm, s.bootstrap) == (ch11.SUCCESS, ch11.N_PERM, ch11.BOOTSTRAP)


def test_module_defaults_agree_with_the_book_scale() -> None:
    book6 = registry.settings("ch06")
    assert registry.probe_settings(book6) == sae.ProbeSettings()
    assert book6.stages == sae.STAGES
    assert registry.commutator_settings(registry.settings("ch05")) == CommutatorSettings()
    assert precision.NULL_DRAWS == registry.settings("ch03").null_draws
    assert ch04.lock_in_null_draws("smoke") == registry.settings("ch03", "smoke").null_draws


def test_the_book_study_is_the_committed_study() -> None:
    """Every run the registry's book study names is committed, under its unchanged key."""
    committed = {p.parent.name for p in (ROOT / "data" / "results" / "runs").glob("*/meta.json")}
    runs = registry.study_runs("book")
    keys = {run_key(c) for cfgs in runs.values() for c in cfgs}
    assert keys <= committed, sorted(keys - committed)[:5]
    # a few runs serve two roles; issue 25 added 28 (the paper setting, the Nanda and Power
    # sweeps, both Power presets' sweeps and the Nanda ablation); issue 28 added chapter 12's 6
    assert len(keys) == 319


def _recording_warm(monkeypatch, warmed: list) -> None:
    """Replace every chapter's ``warm`` by one that records (chapter, settings, runs)."""
    for entry in list(registry.CHAPTERS.values()):
        monkeypatch.setitem(registry.CHAPTERS, entry.key, replace(
            entry, warm=lambda s, runs, w: warmed.append((s.chapter.key, dict(s), runs))))


def test_study_trains_and_warms_what_the_registry_names(monkeypatch) -> None:
    trained, warmed = [], []
    monkeypatch.setattr(study, "load_or_train_many",
                        lambda cfgs, **kw: trained.append(cfgs) or [])
    _recording_warm(monkeypatch, warmed)
    study.main(["--preset", "smoke"])
    expected = registry.study_runs("smoke")
    assert trained == list(expected.values())
    assert [k for k, _, _ in warmed] == list(registry.CHAPTERS)
    for key, values, runs in warmed:
        s = registry.settings(key, "smoke")
        assert values == dict(s) and runs == s.runs()


def test_study_roles_subset_and_seeds(monkeypatch) -> None:
    trained, warmed = [], []
    monkeypatch.setattr(study, "load_or_train_many",
                        lambda cfgs, **kw: trained.append(cfgs) or [])
    _recording_warm(monkeypatch, warmed)
    study.main(["--preset", "smoke", "--roles", "main,detection", "--seeds", "1"])
    assert [len(c) for c in trained] == [1, 2]        # detection: 2 smoke cells, 1 seed
    assert all(set(runs) <= {"main", "detection"} for _, _, runs in warmed)
    assert {k: v["seeds"] for k, v, _ in warmed if "seeds" in v} == {
        k: 1 for k in registry.CHAPTERS if k != "ch01"}
    with pytest.raises(SystemExit):
        study.main(["--preset", "smoke", "--roles", "nope"])


def test_a_claims_loader_resolves_its_chapter_through_the_registry(monkeypatch) -> None:
    seen = []
    real = registry.settings
    monkeypatch.setattr(registry, "settings",
                        lambda *a, **k: seen.append((a, k)) or real(*a, **k))
    with pytest.raises(ValueError, match="ch02 setting seeds: must be int"):
        ch02.load.__wrapped__("smoke", None, seeds="1")
    assert seen == [(("ch02", "smoke"), {"seeds": "1"})]
