"""Invalid configurations raise ValueError naming the field; keys are stable and sensitive."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

import pytest
import torch

from modadd import preset
from modadd.config import RunConfig, TrainConfig, stream_seed
from modadd.model import ModelConfig
from modadd.schedules import lr_at_step, m_at_step, stage_at_step
from modadd.task import TaskConfig, sample_batch

INVALID = [
    ("T-small", lambda: TaskConfig(T=3), r"T: must be >= 4"),
    ("T-not-int", lambda: TaskConfig(T=16.0), r"T: must be an integer"),
    ("C-below-2", lambda: TaskConfig(C=1), r"C: must be >= 2"),
    ("m-empty", lambda: TaskConfig(m_values=()), r"m_values: must name"),
    ("m-duplicate", lambda: TaskConfig(m_values=(1, 1)), r"m_values: entries must be distinct"),
    ("m-too-large", lambda: TaskConfig(T=8, m_values=(4,)), r"m_values: each m must be in 1\.\.3"),
    ("m-zero", lambda: TaskConfig(m_values=(0, 1)), r"m_values: each m must be in 1\.\.7"),
    ("op", lambda: TaskConfig(op="sub"), r"op: must be one of 'add', 'mul'"),
    ("mul-composite", lambda: TaskConfig(op="mul", C=8), r"C: op='mul' needs a prime C >= 3"),
    ("mul-C2", lambda: TaskConfig(op="mul", C=2), r"C: op='mul' needs a prime C >= 3"),
    ("marker-ids", lambda: TaskConfig(marker_ids="many"), r"marker_ids: must be one of"),
    ("positions", lambda: TaskConfig(positions="fixed"), r"positions: must be one of"),
    ("readout", lambda: TaskConfig(readout="first"), r"readout: must be one of"),
    ("marker-offset", lambda: TaskConfig(marker_offset=5), r"marker_offset: must be >= 8"),
    ("vocab-markers", lambda: TaskConfig(vocab_size=102), r"vocab_size: must exceed the last marker id 103"),
    ("vocab-query", lambda: TaskConfig(vocab_size=104, readout="query"), r"vocab_size: .*query"),
    ("vocab-no-distractor", lambda: TaskConfig(C=8, marker_offset=8, vocab_size=12),
     r"vocab_size: leaves no distractor"),
    ("heads", lambda: ModelConfig(d_model=130, n_heads=4), r"d_model: must be divisible by n_heads=4"),
    ("layers", lambda: ModelConfig(n_layers=0), r"n_layers: must be >= 1"),
    ("attention-only", lambda: ModelConfig(attention_only=1), r"attention_only: must be True or False"),
    ("optimizer", lambda: TrainConfig(optimizer="adam"), r"optimizer: must be one of 'adamw', 'sgd'"),
    ("lr", lambda: TrainConfig(lr=0), r"lr: must be a number > 0"),
    ("weight-decay", lambda: TrainConfig(weight_decay=-0.1), r"weight_decay: must be a number >= 0"),
    ("momentum", lambda: TrainConfig(optimizer="sgd", momentum=1.0), r"momentum: must be a number in \[0, 1\)"),
    ("batch", lambda: TrainConfig(batch_size=0), r"batch_size: must be >= 1"),
    ("snapshot-every", lambda: TrainConfig(snapshot_every=0), r"snapshot_every: must be >= 1"),
    ("schedule", lambda: TrainConfig(schedule="random"), r"schedule: must be one of"),
    ("curriculum-sum", lambda: TrainConfig(schedule="curriculum", curriculum=((1, 5), (2, 5)), n_steps=20),
     r"n_steps: must equal the sum of curriculum stage lengths \(10\)"),
    ("curriculum-empty", lambda: TrainConfig(schedule="curriculum"), r"curriculum: schedule='curriculum' needs"),
    ("curriculum-unused", lambda: TrainConfig(curriculum=((1, 5),)), r"curriculum: only used with"),
    ("single-missing", lambda: TrainConfig(schedule="single"), r"single_m: schedule='single' needs"),
    ("single-not-in-m", lambda: RunConfig(train=TrainConfig(schedule="single", single_m=5)),
     r"single_m: m must be one of task\.m_values=\(1, 2, 3, 4\)"),
    ("curriculum-m", lambda: RunConfig(train=TrainConfig(schedule="curriculum", curriculum=((6, 10),),
                                                         n_steps=10)), r"curriculum: m must be one of"),
    ("mixed-per-example", lambda: RunConfig(task=TaskConfig(positions="per_batch"),
                                            train=TrainConfig(mixed_per="example")),
     r"mixed_per: 'example' needs task\.positions='per_example'"),
    ("seed", lambda: RunConfig(seed=-1), r"seed: must be >= 0"),
    ("lr-schedule", lambda: TrainConfig(lr_schedule="linear"),
     r"lr_schedule: must be one of 'constant', 'cosine'"),
    ("warmup-negative", lambda: TrainConfig(warmup_steps=-1), r"warmup_steps: must be >= 0"),
    ("warmup-too-long", lambda: TrainConfig(n_steps=100, warmup_steps=100),
     r"warmup_steps: must be in \[0, n_steps=100\)"),
    ("lr-final-ratio", lambda: TrainConfig(lr_final_ratio=1.5),
     r"lr_final_ratio: must be a number in \[0, 1\]"),
    ("batch-size-call", lambda: sample_batch(TaskConfig(), 0, generator=torch.Generator()),
     r"batch_size: must be an integer >= 1"),
    ("m-call", lambda: sample_batch(TaskConfig(), 4, 5, generator=torch.Generator()),
     r"m: must be one of m_values"),
    ("per-batch-mixed-call", lambda: sample_batch(TaskConfig(positions="per_batch"), 64, None,
                                                  generator=torch.Generator().manual_seed(0)),
     r"m: positions='per_batch' shares one position set"),
    ("preset", lambda: preset("huge"), r"preset: must be one of 'smoke', 'book'"),
]


@pytest.mark.parametrize("build,message", [(b, m) for _, b, m in INVALID],
                         ids=[name for name, _, _ in INVALID])
def test_invalid_configuration_names_field(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_round_trip_and_key():
    cfg = preset("book", seed=3)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.key(1) == RunConfig.from_dict(cfg.to_dict()).key(1)
    assert len(cfg.key(1)) == 16
    changed = [replace(cfg, seed=4), replace(cfg, task=replace(cfg.task, C=5)),
               replace(cfg, model=replace(cfg.model, n_heads=8)),
               replace(cfg, train=replace(cfg.train, lr=2 * cfg.train.lr))]
    keys = {cfg.key(1), cfg.key(2), *(c.key(1) for c in changed)}
    assert len(keys) == 6


# One alternative valid value per field: changing any single field must change the key.
FIELD_CHANGES = {
    "task": dict(T=12, C=5, m_values=(1, 2, 3), op="mul", marker_ids="single",
                 positions="per_batch", readout="query", vocab_size=200, marker_offset=120),
    "model": dict(n_layers=2, d_model=64, n_heads=2, attention_only=False, layer_norm=False,
                  activation="relu", d_mlp=256, init="nanda", biases="mlp",
                  norm_position="post", positions="sinusoidal"),
    "train": dict(optimizer="sgd", lr=1e-3, weight_decay=0.0, momentum=0.5, batch_size=64,
                  n_steps=999, schedule="single", mixed_per="example", curriculum=None,
                  reset_optimizer=False, single_m=1, snapshot_every=7, store_full_params=True,
                  probe_size=99, checkpoint_every=11, lr_schedule="cosine", warmup_steps=10,
                  lr_final_ratio=0.1, beta2=0.98, early_stop_accuracy=0.9,
                  early_stop_delay=200, init_perturbation=1e-3, perturbation_seed=3,
                  record_every=5, fingerprint_train=True, fingerprint_directions=4,
                  fingerprint_seed=2, cycle_steps=50, plateau_patience=10, plateau_factor=0.3,
                  wd_schedule="linear", wd_final_ratio=10.0, wd_ramp_steps=500,
                  operand_curriculum=((0.3, 100),), diagnostics_every=10,
                  precision="bf16", lean_step=True, dense_every=10, dense_until=200,
                  loss_dtype="float64", sampling="epochs"),
}
# options read only under one setting of another field (refused elsewhere): that setting
ENABLED_BY = {"momentum": dict(optimizer="sgd"), "cycle_steps": dict(lr_schedule="cyclic"),
              "plateau_patience": dict(lr_schedule="plateau"),
              "plateau_factor": dict(lr_schedule="plateau"),
              "wd_final_ratio": dict(wd_schedule="linear"),
              "wd_ramp_steps": dict(wd_schedule="linear"),
              "reset_optimizer": dict(schedule="curriculum", curriculum=((1, 500), (2, 500)),
                                      n_steps=1000)}
# fields that only an algorithmic task accepts
ALGORITHMIC_ONLY = {"early_stop_accuracy", "record_every", "fingerprint_directions",
                    "operand_curriculum", "sampling"}


def _changed_configs(base: RunConfig):
    for part, changes in FIELD_CHANGES.items():
        for name, value in changes.items():
            sub = getattr(base, part)
            if name == "curriculum":
                new = replace(sub, schedule="curriculum", curriculum=((1, 500), (2, 500)),
                              n_steps=1000)
            elif name == "single_m":
                new = replace(sub, schedule="single", single_m=2)
            elif name == "schedule":
                new = replace(sub, schedule="single", single_m=1)
            elif name == "positions" and part == "task":
                new = replace(sub, positions="per_batch")
            elif name == "dense_every":
                new = replace(sub, dense_every=10, dense_until=200)
            elif name == "dense_until":
                new = replace(sub, dense_every=5, dense_until=100)
            elif name in ALGORITHMIC_ONLY:
                continue
            elif name in ENABLED_BY:
                new = replace(sub, **ENABLED_BY[name], **{name: value})
            else:
                new = replace(sub, **{name: value})
            assert new != sub, (part, name)
            yield f"{part}.{name}", replace(base, **{part: new})
    yield "seed", replace(base, seed=base.seed + 1)


def test_every_field_changes_the_key():
    base = RunConfig(task=TaskConfig(C=7, m_values=(1, 2)), train=TrainConfig(n_steps=1000))
    names = [name for name, _ in _changed_configs(base)]
    covered = {n.split(".")[1] for n in names if "." in n} | ALGORITHMIC_ONLY
    import dataclasses
    every = {f.name for part in (TaskConfig, ModelConfig, TrainConfig)
             for f in dataclasses.fields(part)}
    assert covered == every, every - covered  # a new field must be added to FIELD_CHANGES
    keys = {base.key(1)} | {cfg.key(1) for _, cfg in _changed_configs(base)}
    assert len(keys) == len(names) + 1
    assert base.key(1) == RunConfig(task=TaskConfig(C=7, m_values=(1, 2)),
                                    train=TrainConfig(n_steps=1000)).key(1)
    assert base.key(1) != base.key(2)


def test_json_round_trip_with_curriculum():
    """Through real JSON (tuples become lists): equal config, equal key."""
    import json
    cfg = RunConfig(task=TaskConfig(m_values=(1, 2, 4)),
                    train=TrainConfig(schedule="curriculum", curriculum=((1, 5), (4, 7)),
                                      n_steps=12), seed=9)
    back = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.key(1) == cfg.key(1)
    assert back.train.curriculum == ((1, 5), (4, 7)) and back.task.m_values == (1, 2, 4)


def test_equal_configs_have_equal_keys():
    a = RunConfig(train=TrainConfig(weight_decay=0, lr=1))
    b = RunConfig(train=TrainConfig(weight_decay=0.0, lr=1.0))
    assert a == b
    assert a.key(1) == b.key(1)


def test_non_int_vocab_size_rejected():
    with pytest.raises(ValueError, match="vocab_size"):
        TaskConfig(vocab_size=256.0)


def test_stream_seeds_distinct_and_stable():
    names = ["data", "init", "eval", "measure"]
    seeds = {stream_seed(0, n) for n in names} | {stream_seed(1, n) for n in names}
    assert len(seeds) == 8
    assert stream_seed(7, "data") == stream_seed(7, "data")
    assert all(0 <= s < 2**63 for s in seeds)


def test_curriculum_stage_lookup():
    train = TrainConfig(schedule="curriculum", curriculum=((1, 3), (2, 2), (4, 5)), n_steps=10)
    assert [m_at_step(train, s) for s in range(10)] == [1, 1, 1, 2, 2, 4, 4, 4, 4, 4]
    assert [stage_at_step(train, s) for s in range(10)] == [0, 0, 0, 1, 1, 2, 2, 2, 2, 2]


def test_lr_schedule_values():
    constant = TrainConfig(lr=0.1, n_steps=11)
    assert [lr_at_step(constant, s) for s in (0, 5, 10)] == [0.1, 0.1, 0.1]
    cosine = TrainConfig(lr=0.1, n_steps=11, lr_schedule="cosine", warmup_steps=2,
                         lr_final_ratio=0.2)
    # warm-up 0.05, 0.1; cosine over steps 2..10 from 0.1 to 0.02, midpoint at step 6
    assert lr_at_step(cosine, 0) == pytest.approx(0.05)
    assert lr_at_step(cosine, 1) == pytest.approx(0.1)
    assert lr_at_step(cosine, 2) == pytest.approx(0.1)
    assert lr_at_step(cosine, 6) == pytest.approx(0.06)
    assert lr_at_step(cosine, 10) == pytest.approx(0.02)
    lrs = [lr_at_step(cosine, s) for s in range(2, 11)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


def test_new_fields_at_default_keep_old_keys():
    """Fields added after schema 1 stay out of the key at their defaults: this key was
    computed before they existed and names committed results."""
    cfg = replace(preset("book", seed=0), train=replace(preset("book").train, lr_schedule="constant",
                                                        warmup_steps=0))
    assert cfg.key(1) == "ce481bb4a9936b3d"
    assert replace(cfg, train=replace(cfg.train, lr_final_ratio=0.5)).key(1) != cfg.key(1)


def test_algorithmic_fields_change_the_key_and_round_trip():
    from modadd.algorithmic import AlgorithmicTask
    base = RunConfig(task=AlgorithmicTask(p=11), train=TrainConfig(n_steps=1000))
    changed = [replace(base, train=replace(base.train, **{name: FIELD_CHANGES["train"][name]}))
               for name in sorted(ALGORITHMIC_ONLY)]
    changed += [replace(base, task=replace(base.task, **change))
                for change in (dict(p=13), dict(op="*"), dict(train_fraction=0.5),
                               dict(split_seed=1), dict(operator_token=False),
                               dict(readout_all_tokens=True),
                               dict(split_method="python-shuffle"),
                               dict(split_method="numpy-shuffle"), dict(start_token=True))]
    keys = {base.key(1)} | {cfg.key(1) for cfg in changed}
    assert len(keys) == len(changed) + 1
    for cfg in [base, *changed]:
        again = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg and again.key(1) == cfg.key(1)


def test_algorithmic_only_fields_are_refused_for_marker_tasks():
    for name in ALGORITHMIC_ONLY:
        with pytest.raises(ValueError, match=name):
            RunConfig(train=replace(TrainConfig(), **{name: FIELD_CHANGES["train"][name]}))
    from modadd.algorithmic import AlgorithmicTask
    with pytest.raises(ValueError, match="schedule"):
        RunConfig(task=AlgorithmicTask(p=11), train=TrainConfig(schedule="single", single_m=1))


def test_new_field_validation_names_the_field():
    for name, value in (("beta2", 1.0), ("early_stop_accuracy", 1.5), ("early_stop_delay", 7),
                        ("init_perturbation", -1.0), ("record_every", -1),
                        ("fingerprint_train", 1)):
        with pytest.raises(ValueError, match=name):
            TrainConfig(**{name: value})
    for name, value in (("layer_norm", 0), ("activation", "tanh"), ("d_mlp", -1)):
        with pytest.raises(ValueError, match=name):
            ModelConfig(**{name: value})


# ------------------------------------------------------------------------------- key layout

def test_the_key_layout_is_frozen():
    """Adding a field to KEY_LAYOUT would re-key every committed run: never edit it."""
    from modadd.config import KEY_LAYOUT
    digest = hashlib.sha256(json.dumps(KEY_LAYOUT, sort_keys=True).encode()).hexdigest()[:16]
    assert digest == "9e47afa83deb860d"


def test_a_field_outside_the_layout_enters_the_key_only_when_set():
    from modadd.config import KEY_LAYOUT
    base = RunConfig()
    hashed = base.key_fields()
    for section in ("task", "model", "train"):
        assert set(KEY_LAYOUT[section]) & set(hashed[section]) == \
            set(KEY_LAYOUT[section]) & set(base.to_dict()[section])
    assert "precision" not in hashed["train"] and "d_mlp" not in hashed["model"]
    bf16 = replace(base, train=replace(base.train, precision="bf16"))
    assert bf16.key_fields()["train"]["precision"] == "bf16" and bf16.key(1) != base.key(1)


def test_a_new_option_at_its_default_keeps_every_key():
    """An option added to TrainConfig (here in a subclass) leaves the keys of runs that do not
    set it unchanged, with no list to update."""
    @dataclass(frozen=True)
    class Newer(TrainConfig):
        new_option: int = 0

    base = RunConfig()
    assert RunConfig(train=Newer()).key(1) == base.key(1)
    assert RunConfig(train=Newer(new_option=3)).key(1) != base.key(1)


def test_the_train_config_is_its_four_parts():
    """Every TrainConfig field belongs to exactly one part, and each part validates its own."""
    from dataclasses import fields

    from modadd.config import (AlgorithmicOptions, OptimizerOptions, RecordingOptions,
                               ScheduleOptions)
    parts = [{f.name for f in fields(p)} for p in (OptimizerOptions, ScheduleOptions,
                                                    RecordingOptions, AlgorithmicOptions)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == len(fields(TrainConfig))
    for field_name, part in (("lr", "check_optimizer"), ("n_steps", "check_schedule"),
                             ("probe_size", "check_recording"),
                             ("record_every", "check_algorithmic")):
        bad = object.__new__(TrainConfig)
        for f in fields(TrainConfig):
            object.__setattr__(bad, f.name, f.default if f.name != "curriculum" else ())
        object.__setattr__(bad, field_name, -1)
        with pytest.raises(ValueError, match=field_name):
            getattr(bad, part)()
