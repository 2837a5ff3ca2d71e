"""R0 (chapter 2): 'training converges by about step 5000 with ~100% accuracy', on hand-made tables."""
from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

from modadd import claims
from modadd.claims import ch02


def accuracy_table(final: dict, seeds=5, steps=(0, 2500, 5000, 6000), start=0.125):
    """Accuracy rising linearly from ``start`` to ``final[m]`` (a scalar or one value per seed)."""
    rows = []
    for m, last in final.items():
        last = np.broadcast_to(np.asarray(last, float), (seeds,))
        for s in range(seeds):
            for step in steps:
                rows.append((s, m, step, start + (last[s] - start) * step / max(steps)))
    return {"accuracy": pd.DataFrame(rows, columns=["seed", "m", "step", "value"]),
            "n_steps": max(steps), "chance": 0.125}


def test_every_seed_at_target_is_supported():
    tables = accuracy_table({1: 1.0, 2: 1.0}, steps=(0, 5000))
    rec = claims.evaluate("R0", tables)
    assert rec.verdict == "supported" and rec.null_passes is False
    assert rec.null_verdict == "not supported"         # the untrained model is at chance


def test_the_null_itself_is_not_supported():
    tables = accuracy_table({1: 0.125, 2: 0.125})
    assert claims.evaluate("R0", tables).verdict == "not supported"


def test_one_seed_below_target_fails_and_the_deadline_is_step_5000():
    # seed 4 on m=4 is at 0.94 at step 5000 and reaches 1.0 only at step 6000
    tables = accuracy_table({1: 1.0, 4: [1.0, 1.0, 1.0, 1.0, 0.94]}, steps=(0, 5000))
    late = tables["accuracy"][tables["accuracy"].step == 5000].assign(step=6000, value=1.0)
    tables = {**tables, "accuracy": pd.concat([tables["accuracy"], late]), "n_steps": 6000}
    ev = ch02.measure(tables)
    assert ev["min_accuracy"] == pytest.approx(0.94)
    assert ev["min_mean_accuracy"] == pytest.approx((4 + 0.94) / 5)
    rec = claims.evaluate("R0", tables)
    assert rec.verdict == "not supported" and "seed 4, m=4" in rec.effect
    assert "step 5000" in rec.effect                  # judged at 5000, not at the end (6000)


def test_borderline_table_pins_the_threshold():
    # lowest seed exactly 0.95 passes; the rule's 0.95 moved to 0.951 would fail it
    tables = accuracy_table({1: [1.0, 1.0, 1.0, 1.0, 0.95]}, steps=(0, 5000))
    assert claims.evaluate("R0", tables).verdict == "supported"
    assert ch02.CLAIMS[0].rule.thresholds == {"target": 0.95}
    rec = claims.evaluate("R0", tables)
    assert rec.flips == ["target = 0.99 (rule: 0.95) → not supported"]


def test_interval_stays_inside_zero_one():
    tables = accuracy_table({4: [1.0, 1.0, 1.0, 0.88, 0.99]}, steps=(0, 5000))
    high = float(claims.evaluate("R0", tables).ci.split(", ")[-1].rstrip("]"))
    assert high <= 1.0

