"""modadd.convergence: the longer-budget arm's tables and words, on hand-made inputs."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from modadd import convergence as C
from modadd.stats import bounded_mean_ci


def accuracies(short: list, long: list, m: int = 4) -> pd.DataFrame:
    rows = [("short", s, m, v, 6000, "bf16") for s, v in enumerate(short)]
    rows += [("long", s, m, v, 12000, "bf16") for s, v in enumerate(long)]
    rows += [(arm, s, 1, 1.0, 0, "bf16") for arm in ("short", "long") for s in range(len(short))]
    return pd.DataFrame(rows, columns=["arm", "seed", "m", "accuracy", "steps", "precision"])


def records(short: dict, long: dict) -> dict:
    def rec(v):
        return SimpleNamespace(verdict=v, effect=f"effect {v}")
    return {"short": {c: rec(v) for c, v in short.items()},
            "long": {c: rec(v) for c, v in long.items()}}


def test_accuracy_table_values_and_counts():
    acc = accuracies([0.99, 0.90, 0.97], [0.99, 0.98, 0.96])
    table = C.accuracy_table(acc)
    row = table.loc[("short", 4)]
    assert [row["seed 0"], row["seed 1"], row["seed 2"]] == ["0.990", "0.900", "0.970"]
    assert row["seeds ≥ 95%"] == "2/3"
    assert table.loc[("long", 4), "seeds ≥ 95%"] == "3/3"
    mean, low, high = bounded_mean_ci(np.array([0.99, 0.90, 0.97]), (0.0, 1.0))
    assert row["mean [95% CI]"].startswith(f"{mean:.3f} [{low:.3f}, ")
    assert C.all_reach(acc, "long", 4) and not C.all_reach(acc, "short", 4)
    with pytest.raises(ValueError, match="no runs of arm 'x' at m=4"):
        C.all_reach(acc, "x", 4)


def test_summary_text_three_outcomes():
    acc = accuracies([0.99, 0.88, 0.97], [0.99, 0.98, 0.96])
    same = records({"C1": "supported", "C4": "not testable"},
                   {"C1": "supported", "C4": "not testable"})
    text = C.summary_text(acc, same, "short", "long", 4)
    assert "2/3 seeds reach 95% held-out accuracy at short and 3/3 at long" in text
    assert "(lowest seed: 0.880 and 0.960)" in text
    assert "No verdict of C1, C4 changes" in text and "can stay where it is" in text
    moved = records({"C1": "supported", "C4": "not testable"},
                    {"C1": "supported", "C4": "supported"})
    assert C.changed(moved) == ["C4"]
    text = C.summary_text(acc, moved, "short", "long", 4)
    assert ("C4 (not testable → supported; short: effect not testable; long: effect supported)"
            in text) and "should move to it" in text
    acc = accuracies([0.99, 0.88, 0.97], [0.99, 0.90, 0.96])
    assert "Not every seed converges even at the longer budget" in \
        C.summary_text(acc, same, "short", "long", 4)


def test_budget_summary_rows():
    recs = records({"C1": "supported", "C2": "not supported"},
                   {"C1": "partly supported", "C2": "not supported"})
    table = C.budget_summary(recs)
    assert table.loc["C1", "same verdict"] == "no" and table.loc["C2", "same verdict"] == "yes"
    assert table.loc["C1", "long: verdict"] == "partly supported"
    assert table.loc["C2", "short: effect"] == "effect not supported"


def test_longer_budget_preset():
    from modadd.presets import longer_budget, preset
    cfg = preset("book")
    long = longer_budget(cfg)
    assert long.train.n_steps == 2 * cfg.train.n_steps
    assert long.train.snapshot_every == cfg.train.snapshot_every
    assert long.key(0) != cfg.key(0)
    with pytest.raises(ValueError, match="factor: must be an integer >= 1, got 0"):
        longer_budget(cfg, 0)
