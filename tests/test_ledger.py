"""The assembled claims ledger: one row per claim, recorded verdicts carried, gaps marked."""
from __future__ import annotations

import pytest

from modadd import ledger, paths

ROW = {"id": "C1", "claim": "r90 ≈ 3–4", "verdict": "partly supported", "effect": "r90 3.71",
       "CI": "[3.53, 3.89]", "control": "random walk 4.75"}


def test_every_claim_appears_once_in_order() -> None:
    table = ledger.assemble_ledger("book")
    assert table.id.tolist() == [f"C{i}" for i in range(1, 17)]
    assert table.columns.tolist() == ledger.LEDGER_COLUMNS


def test_recorded_verdicts_are_carried_and_gaps_say_not_measured() -> None:
    ledger.record("03", [ROW], "book")
    ledger.record("04", [{**ROW, "id": "C6", "verdict": "not supported", "effect": "drop 0.74",
                          "CI": "[0.67, 0.81]", "control": "uniform"}], "book")
    table = ledger.assemble_ledger("book").set_index("id")
    assert table.loc["C1", ["verdict", "effect", "CI", "control", "preset"]].tolist() == \
        ["partly supported", "r90 3.71", "[3.53, 3.89]", "random walk 4.75", "book"]
    assert table.loc["C6", "verdict"] == "not supported"
    assert table.loc["C6", "effect"] == "drop 0.74"
    # the claim text is the source's statement, not the chapter's paraphrase
    assert table.loc["C1", "claim"].startswith("attention-only trajectories")
    missing = table.drop(index=["C1", "C6"])
    assert (missing.verdict == ledger.NOT_MEASURED).all()
    assert (missing.effect == "").all() and (missing.preset == "").all()
    assert missing.loc["C16", "control"] == "AUC over many runs"


def test_rows_of_another_preset_are_not_used() -> None:
    ledger.record("03", [ROW], "smoke")
    table = ledger.assemble_ledger("book").set_index("id")
    assert table.loc["C1", "verdict"] == ledger.NOT_MEASURED
    assert ledger.assemble_ledger("smoke").set_index("id").loc["C1", "preset"] == "smoke"


def test_home_chapter_row_wins_over_a_later_chapters_row() -> None:
    ledger.record("11", [{**ROW, "verdict": "not supported", "effect": "again"}], "book")
    assert ledger.assemble_ledger("book").set_index("id").loc["C1", "effect"] == "again"
    ledger.record("03", [ROW], "book")
    assert ledger.assemble_ledger("book").set_index("id").loc["C1", "effect"] == "r90 3.71"


def test_bad_preset_names_the_field() -> None:
    with pytest.raises(ValueError, match="preset"):
        ledger.assemble_ledger("*")
    with pytest.raises(ValueError, match="preset"):
        ledger.assemble_ledger("../book")


def test_section_anchor_follows_sphinx_ids() -> None:
    assert ledger.section_anchor("5. Claims ledger rows") == "claims-ledger-rows"
    assert ledger.section_anchor("Claims ledger row") == "claims-ledger-row"
    assert ledger.section_anchor("2. Float32 difference vs float64 direct") == \
        "float32-difference-vs-float64-direct"


def test_every_claims_chapter_has_a_notebook_and_a_ledger_section() -> None:
    for chapter in sorted({c.chapter for c in ledger.CLAIMS}):
        page, anchor = ledger.chapter_section(chapter)
        assert (paths.ROOT / f"{page}.py").exists()
        assert page.startswith(f"notebooks/{chapter}_")
        assert anchor.startswith("claims-ledger-row")
    with pytest.raises(ValueError, match="chapter"):
        ledger.chapter_section("99")
