"""Presets: what each one is, and how `book` departs from `original`."""
from __future__ import annotations

from modadd.bench import bench_preset
from modadd.presets import PRESETS, preset, preset_differences, preset_seeds, preset_table
from modadd.stats import mean_ci, seed_summary

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from modadd.config import RunConfig, stream_seed
from modadd.model import build_model
from modadd.task import sample_batch
from modadd.schedules import m_at_step


def flatten(cfg) -> dict:
    return {f"{part}.{k}": v for part, sub in cfg.to_dict().items() if isinstance(sub, dict)
            for k, v in sub.items()}


def test_book_differs_from_original_only_where_documented():
    book, original = flatten(preset("book")), flatten(preset("original"))
    differing = {k for k in book if book[k] != original[k]}
    assert differing == {"task.positions", "train.lr", "train.lr_schedule", "train.warmup_steps",
                         "train.n_steps", "train.snapshot_every"}
    assert set(preset_differences("book", "original").setting) == differing
    assert book["task.positions"] == "per_example" and original["task.positions"] == "per_batch"


def test_original_and_paper_match_their_sources():
    original = preset("original")
    assert (original.task.T, original.task.C, original.task.m_values) == (16, 8, (1, 2, 3, 4))
    assert (original.model.n_layers, original.model.d_model, original.model.n_heads) == (5, 128, 4)
    assert (original.train.optimizer, original.train.lr, original.train.weight_decay,
            original.train.batch_size, original.train.n_steps) == ("adamw", 3e-4, 0.01, 128, 20_000)
    paper = preset("paper")
    assert (paper.task.T, paper.train.optimizer, paper.train.lr, paper.train.batch_size,
            paper.train.snapshot_every, PRESETS["paper"].seeds) == (32, "sgd", 1e-3, 64, 100, 20)


def test_preset_seeds_and_table():
    configs = preset_seeds("book")
    assert [c.seed for c in configs] == list(range(PRESETS["book"].seeds)) and len(configs) >= 5
    assert len({c.key(1) for c in configs}) == len(configs)
    assert list(preset_table().index) == list(PRESETS)


def test_mean_ci_matches_scipy():
    values = np.array([0.9, 0.95, 0.97, 0.92, 0.99])
    mean, low, high = mean_ci(values)
    expected = stats.t.interval(0.95, 4, loc=values.mean(), scale=stats.sem(values))
    np.testing.assert_allclose([low, high], expected)
    assert mean == values.mean() and np.isnan(mean_ci([1.0])[1])
    frame = pd.DataFrame({"g": [0, 0, 1, 1, 1], "value": [1.0, 3.0, 2.0, 2.0, 2.0]})
    summary = seed_summary(frame, ["g"])
    assert summary["mean"].tolist() == [2.0, 2.0] and summary["n"].tolist() == [2, 3]
    assert summary["low"].iloc[1] == summary["high"].iloc[1] == 2.0


def test_bench_runs_on_smoke_preset():
    row = bench_preset("smoke", steps=3)
    assert 0 < row["data share of step (fp32)"] < 1
    for mode in ("fp32", "fp32 lean", "bf16"):
        assert row[f"{mode}: steps/s (train only)"] > 0
        assert 0 < row[f"{mode}: evaluation share"] < 1
        assert row[f"{mode}: matmul GFLOP/s (own shapes)"] > 0
    assert row["bf16 / fp32 (train only)"] == pytest.approx(
        row["bf16: steps/s (train only)"] / row["fp32: steps/s (train only)"])
    from modadd.bench import step_costs
    costs = step_costs(preset("smoke"), steps=4)
    assert costs["fp32 s/step"] > 0 and costs["bf16 s/step"] > 0
    assert 0 < costs["measurement share (fp32)"] < 1
    from modadd.bench import bench_commutator
    costs = bench_commutator("smoke", repeats=1)
    assert all(v > 0 for k, v in costs.items() if k != "preset")


@pytest.mark.parametrize("name", list(PRESETS))
def test_each_preset_builds_samples_and_runs_forward(name):
    cfg = preset(name, seed=4)
    assert isinstance(cfg, RunConfig) and cfg.seed == 4
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    model = build_model(cfg.model, cfg.task, stream_seed(cfg.seed, "init"))
    m = cfg.task.m_values[-1]
    batch = sample_batch(cfg.task, 2, m, generator=torch.Generator().manual_seed(0))
    assert batch.tokens.shape == (2, cfg.task.seq_len)
    assert model(batch.tokens).shape == (2, cfg.task.C)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params > cfg.task.vocab_size * cfg.model.d_model


def test_paper_preset_settings():
    paper = preset("paper")
    assert (paper.train.optimizer, paper.train.lr, paper.train.batch_size, paper.task.T) == \
        ("sgd", 1e-3, 64, 32)


def test_preset_table_rows_match_configs_and_seeds_distinct():
    table = preset_table()
    assert len(table) == len(PRESETS)
    for name, p in PRESETS.items():
        row, c = table.loc[name], p.config
        assert (row["T"], row["C"], row["layers"], row["d"], row["optimizer"], row["lr"],
                row["batch"], row["steps"], row["seeds"]) == \
            (c.task.T, c.task.C, c.model.n_layers, c.model.d_model, c.train.optimizer,
             c.train.lr, c.train.batch_size, c.train.n_steps, p.seeds)
        configs = preset_seeds(name)
        assert [c.seed for c in configs] == list(range(p.seeds))
        assert len({c.key(1) for c in configs}) == p.seeds
        assert all(c.with_seed(0) == preset(name) for c in configs)
    assert [c.seed for c in preset_seeds("smoke", 3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="seeds"):
        preset_seeds("smoke", 0)


def test_chapter7_arms_change_only_their_setting():
    from dataclasses import replace

    from modadd.presets import curriculum, study_configs, with_mlp
    base = preset("book", 3)
    arms = study_configs("book", seeds=2)
    assert [c.seed for c in arms["mlp"]] == [0, 1] and arms["mlp"][0].train.store_full_params
    mlp = with_mlp(base)
    assert not mlp.model.attention_only and mlp.train == base.train and mlp.task == base.task
    cur = curriculum(base)
    assert cur.train.curriculum == ((1, 1500), (2, 1500), (3, 1500), (4, 1500))
    assert cur.train.reset_optimizer and cur.seed == 3 and cur.model == base.model
    assert [m_at_step(cur.train, s) for s in (0, 1499, 1500, 5999)] == [1, 1, 2, 4]
    assert not curriculum(base, reset_optimizer=False).train.reset_optimizer
    odd = replace(base, train=replace(base.train, n_steps=6002))
    assert curriculum(odd).train.curriculum[-1] == (4, 1502)
    largest = arms["largest m only"][1]
    assert largest.train.schedule == "single" and largest.train.single_m == 4
    assert largest == arms["single m"][-1]          # seed 1, m = 4: the same run, reused
    with pytest.raises(ValueError, match="n_steps"):
        curriculum(replace(base, train=replace(base.train, n_steps=3, snapshot_every=1,
                                               warmup_steps=0)))


def test_book_roles_are_study_roles():
    from modadd.presets import BOOK_ROLES, study_configs
    assert set(BOOK_ROLES) <= set(study_configs("smoke", seeds=1))


def test_chapter7_and_8_extra_arms():
    from modadd.presets import (difficulty_arms, operation_arms, paper_optimizer, single_m,
                                study_configs)
    base = preset("book", 2)
    sgd = paper_optimizer(base)
    assert (sgd.train.optimizer, sgd.train.lr, sgd.train.batch_size, sgd.train.weight_decay,
            sgd.train.lr_schedule, sgd.train.warmup_steps) == ("sgd", 1e-3, 64, 0.0, "constant", 0)
    assert sgd.train.n_steps == base.train.n_steps and sgd.task == base.task
    ops = operation_arms(base)
    assert (ops["mul C7"].task.op, ops["mul C7"].task.C) == ("mul", 7)
    assert ops["mul C7"].task.value_tokens == (1, 2, 3, 4, 5, 6)
    assert (ops["add C7"].task.op, ops["add C7"].task.C, ops["add C6"].task.C) == ("add", 7, 6)
    for arm in ops.values():   # only the task changes
        assert arm.model == base.model and arm.train == base.train and arm.seed == 2
    grid = difficulty_arms(base)
    assert sorted(grid) == [(8, "mixed 1-4"), (8, "mixed 1-6"), (8, "only m=5"),
                            (16, "mixed 1-4"), (16, "mixed 1-6"), (16, "only m=2"),
                            (16, "only m=3")]
    assert grid[(8, "mixed 1-4")] == base                         # the main run, reused
    assert grid[(16, "only m=3")] == single_m(replace_task(base, C=16), 3)
    assert grid[(8, "only m=5")].task.m_values == (1, 2, 3, 4, 5, 6)
    assert grid[(16, "only m=2")].task.m_values == (1, 2, 3, 4)        # narrowest task
    smoke = difficulty_arms(preset("smoke"))                    # T=8 fits 3 markers
    assert max(max(c.task.m_values) for c in smoke.values()) == 3
    roles = study_configs("book", few_seeds=2)
    assert len(roles["difficulty"]) == 2 * len(grid) and len(roles["paper sgd"]) == 3
    assert [c.seed for c in roles["difficulty"][:len(grid)]] == [0] * len(grid)  # seed-major
    assert len(study_configs("book")["difficulty"]) == 3 * len(grid)


def test_replication_roles_precision_and_keys():
    """Issue 22's seeds: single-m seeds 0-1 and the difficulty grid's seed 0 stay fp32 (their
    committed runs), later seeds train at bf16; the dense-snapshot copies keep the committed
    keys; the longer arm doubles the steps at bf16; a study at bf16 trains everything at bf16."""
    from modadd.presets import REPLICATION_PRECISION, study_configs
    from modadd.store import run_key
    roles = study_configs("book")
    single = {(c.train.single_m, c.seed): c.train.precision for c in roles["single m"]}
    assert sorted(single) == [(m, s) for m in (1, 2, 3, 4) for s in range(5)]
    assert all(p == ("fp32" if s < 2 else REPLICATION_PRECISION)
               for (_, s), p in single.items())
    assert {c.train.precision for c in roles["difficulty"] if c.seed == 0} == {"fp32"}
    assert {c.train.precision for c in roles["difficulty"] if c.seed > 0} == {"bf16"}
    assert [run_key(c) for c in roles["dense snapshots"]] == [
        "67a005a0f415e7ae", "8019d1d033462c10", "c6f1374646e70f37", "e3602981e1296dd2",
        "6fdf7973ac3283cc"]
    assert all(c.train.dense_every == 10 and c.train.dense_until == 1000
               for c in roles["dense snapshots"])
    assert [c.train.n_steps for c in roles["longer budget"]] == [12000] * 5
    assert [c.train.precision for c in roles["longer budget"] + roles["main bf16"]] == \
        ["bf16"] * 10
    assert {c.train.precision for r in study_configs("book", precision="bf16").values()
            for c in r} == {"bf16"}


def replace_task(cfg, **changes):
    from dataclasses import replace
    return replace(cfg, task=replace(cfg.task, **changes))


@pytest.mark.parametrize("arch", ["attention", "mlp"])
def test_step_matmuls_add_up_to_the_flop_count(arch):
    """The benchmark's list of the step's matmuls (forward and both backward products) holds
    exactly the FLOPs ``count_flops_per_step`` counts, exact and lean."""
    from modadd.bench import step_matmuls
    from modadd.model import count_flops_per_step
    from modadd.presets import with_mlp
    cfg = preset("book") if arch == "attention" else with_mlp(preset("book"))
    for lean in (False, True):
        listed = sum(2 * max(b, 1) * m * k * n * count
                     for b, m, k, n, count, _ in step_matmuls(cfg, lean, "bf16"))
        assert listed == count_flops_per_step(cfg.model, cfg.task.seq_len, cfg.task.n_classes,
                                              cfg.train.batch_size, lean=lean)
