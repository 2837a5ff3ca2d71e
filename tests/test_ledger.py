"""The assembled claims ledger: every registered claim evaluated from its cached tables."""
from __future__ import annotations

import numpy as np
import pytest

from modadd import claims, ledger, paths
from modadd.stats import holm


def test_without_cached_tables_every_claim_says_not_yet_measured(monkeypatch) -> None:
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")        # the results folder is an empty temp one
    for spec in claims.REGISTRY.values():
        if spec.load is not None and hasattr(spec.load, "cache_clear"):
            spec.load.cache_clear()
    table = ledger.assemble_ledger("smoke")
    assert table.id.tolist() == list(claims.REGISTRY)
    assert table.columns.tolist() == ledger.LEDGER_COLUMNS
    assert (table.verdict == ledger.NOT_MEASURED).all()
    assert table.why.str.startswith("no cached tables at preset 'smoke'").all()
    assert table["p (Holm)"].isna().all()


def test_holm_column_adjusts_the_recorded_p_values() -> None:
    from dataclasses import replace

    import pandas as pd
    tables = {"accuracy": pd.DataFrame({"seed": [0, 0, 1, 1], "m": [1, 1, 1, 1],
                                        "step": [0, 5000, 0, 5000],
                                        "value": [0.1, 1.0, 0.1, 1.0]}),
              "n_steps": 5000, "chance": 0.1}
    rec = claims.evaluate("R0", tables, "book")
    ids = list(claims.REGISTRY)
    records = {cid: KeyError("absent") for cid in ids}
    records[ids[0]] = replace(rec, p_value=0.01)
    if len(ids) > 1:
        records[ids[1]] = replace(rec, id=ids[1], p_value=0.04)
    table = ledger.assemble_ledger("book", records)
    assert table.id.tolist() == ids
    assert table.verdict.iloc[0] == "supported"
    expected = [0.02, 0.04] if len(ids) > 1 else [0.01]
    assert table["p (Holm)"].dropna().tolist() == pytest.approx(expected)
    assert (table.verdict.iloc[2:] == ledger.NOT_MEASURED).all()


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
    assert ledger.rule_anchor("C12") == "rule-c12"


def test_the_book_ledger_from_the_committed_caches(monkeypatch) -> None:
    """All 20 rows are measured from data/results; none passes by a rule that its null passes;
    evaluating writes nothing into data/results."""
    results = paths.ROOT / "data" / "results"
    monkeypatch.setenv("MODADD_RESULTS_DIR", str(results))
    monkeypatch.setenv("MODADD_NO_TRAIN", "1")
    before = sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file())
    for spec in claims.REGISTRY.values():
        if hasattr(spec.load, "cache_clear"):
            spec.load.cache_clear()
    records = ledger.ledger_records("book")
    table = ledger.assemble_ledger("book", records)
    assert table.id.tolist() == ["R0", *(f"C{i}" for i in range(1, 17)), "N1", "N2", "N3"]
    assert (table.verdict != ledger.NOT_MEASURED).all(), table[["id", "why"]].to_string()
    passing = table.verdict.isin(["supported", "partly supported"])
    assert not (passing & (table["null passes"] == "yes")).any()
    assert (table.why.str.len() > 0).all() and (table.rule.str.match(r"v\d+$")).all()
    p = table.p.astype(float).to_numpy()
    assert np.allclose(table["p (Holm)"].to_numpy(float), holm(p), equal_nan=True)
    assert sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file()) == before
    front_page_headlines(records)
    for spec in claims.REGISTRY.values():          # later tests must not see book tables
        if hasattr(spec.load, "cache_clear"):
            spec.load.cache_clear()


def front_page_headlines(records: dict) -> None:
    """The front page (modadd.headline) on the committed records: a finite estimate for every
    claim, equal to what its rule read where the rule reads it by name; one sentence per group;
    one row of the summary figure per claim."""
    import math

    import matplotlib.pyplot as plt

    from modadd import headline
    table = headline.headline_table(records).set_index("id")
    assert list(table.index) == list(records)
    assert table.measured.map(math.isfinite).all()
    assert table.loc["C1"].measured == records["C1"].values["overall"]
    assert table.loc["C13"].low == records["C13"].values["gap_low"]
    grouped = [c for _, claims_ in headline.GROUPS for c in claims_]
    assert sorted(grouped) == sorted(records)
    sentences = headline.group_sentences(table.reset_index())
    assert [s.split("**")[1].rstrip(".") for s in sentences] == [t for t, _ in headline.GROUPS]
    fig = headline.summary_figure(table.reset_index())
    assert len(fig.axes) == len(records)
    plt.close(fig)
