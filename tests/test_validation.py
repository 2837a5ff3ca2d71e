"""Strict validation of run configurations, table-driven.

Every row of ``TABLE`` is an invalid configuration: building it must raise ``ValueError`` whose
message starts with the offending field's name and shows the bad value's repr (or a stated
substring).  The positive tests below check that the JSON form still round-trips and that the
options refused elsewhere are accepted under the setting that reads them.  No training.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from modadd.algorithmic import AlgorithmicTask
from modadd.config import RunConfig, TrainConfig
from modadd.model import ModelConfig
from modadd.task import TaskConfig

NAN, INF = math.nan, math.inf


def row(name, build, field, expect):
    """An invalid configuration built by ``build()``: the message names ``field`` and
    contains ``expect``."""
    return pytest.param(build, field, expect, id=name)


def kw(name, cls, field, value, expect=None, **others):
    """``cls(field=value, **others)``; by default the message must contain ``repr(value)``."""
    return row(name, lambda: cls(**{field: value}, **others), field,
               repr(value) if expect is None else expect)


def bad(prefix, cls, field, cases):
    """One :func:`kw` row per ``{suffix: value}`` of ``cases``, id ``<prefix>-<suffix>``."""
    return [kw(f"{prefix}-{suffix}", cls, field, value) for suffix, value in cases.items()]


T, A, M, R = TaskConfig, AlgorithmicTask, ModelConfig, TrainConfig
SGD, PLATEAU, LINEAR = dict(optimizer="sgd"), dict(lr_schedule="plateau"), dict(wd_schedule="linear")
CURRICULUM = dict(schedule="curriculum", n_steps=10)
SINGLE = dict(schedule="single")


def from_json(base: RunConfig | None = None, **changes):
    """The JSON form of ``base`` (default: the default RunConfig) with section entries changed
    (a dict), a section replaced (anything else) or a key removed (None)."""
    data = json.loads(json.dumps((base or RunConfig()).to_dict()))
    for name, change in changes.items():
        if isinstance(change, dict) and name in data:
            data[name] = {**data[name], **change}
        elif change is None:
            del data[name]
        else:
            data[name] = change
    return data


TABLE = [
    # ---- TaskConfig: integers --------------------------------------------------------------
    *bad("task-T", T, "T", {"bool": True, "float": 16.0, "str": "16", "none": None, "small": 3}),
    *bad("task-C", T, "C", {"below-2": 1, "float": 8.0, "bool": False}),
    *bad("task-vocab", T, "vocab_size", {"float": 256.0, "below-C+2": 9, "markers": 102}),
    kw("task-vocab-query", T, "vocab_size", 104, readout="query"),
    kw("task-vocab-no-distractor", T, "vocab_size", 12, C=8, marker_offset=8),
    *bad("task-marker-offset", T, "marker_offset", {"collides": 5, "str": "100"}),
    # ---- TaskConfig: m_values (a tuple or list of ints) -------------------------------------
    *bad("task-m", T, "m_values", {"float-entry": (1.7,), "str": "12", "int": 3, "none": None,
         "bool-entry": (True, 2), "set": {1, 2}, "empty": (), "duplicate": (1, 1), "zero": (0, 1),
         "too-large": (8,)}),
    kw("task-m-too-large-short-T", T, "m_values", (4,), T=8),
    # ---- TaskConfig: choices ----------------------------------------------------------------
    *bad("task", T, "op", {"op": "sub", "op-case": "ADD", "op-none": None}),
    kw("task-marker-ids", T, "marker_ids", "many"),
    kw("task-positions", T, "positions", "fixed"),
    *bad("task", T, "readout", {"readout": "first", "readout-int": 0}),
    row("task-mul-composite-C", lambda: T(op="mul", C=8), "C", "C=8"),
    row("task-mul-C2", lambda: T(op="mul", C=2), "C", "C=2"),
    # ---- AlgorithmicTask --------------------------------------------------------------------
    *bad("alg-p", A, "p", {"composite": 12, "2": 2, "float": 97.0, "bool": True, "str": "97"}),
    *bad("alg", A, "op", {"op": "%", "op-word": "plus"}),
    *bad("alg-fraction", A, "train_fraction", {"str": "0.4", "bool": True, "none": None,
         "zero": 0.0, "one": 1.0}),
    kw("alg-fraction-int-one", A, "train_fraction", 1, "1.0"),
    *bad("alg-fraction", A, "train_fraction", {"negative": -0.5, "nan": NAN, "inf": INF}),
    kw("alg-empty-train-split", A, "train_fraction", 0.01, p=3),
    row("alg-empty-train-split-says-why", lambda: A(p=3, train_fraction=0.01),
        "train_fraction", "leaves 0 of the 9 pairs"),
    kw("alg-empty-heldout-split", A, "train_fraction", 0.99, p=3),
    row("alg-division-pair-count", lambda: A(p=5, op="/", train_fraction=0.02),
        "train_fraction", "of the 20 pairs"),
    *bad("alg-split-seed", A, "split_seed", {"negative": -1, "float": 1.0, "str": "0"}),
    # ---- ModelConfig ------------------------------------------------------------------------
    *bad("model-layers", M, "n_layers", {"zero": 0, "float": 2.0, "bool": True}),
    *bad("model-width", M, "d_model", {"str": "128", "none": None}),
    kw("model-heads-zero", M, "n_heads", 0),
    kw("model-width-not-divisible", M, "d_model", 130),
    *bad("model-attention-only", M, "attention_only", {"int": 1, "str": "no"}),
    *bad("model-layer-norm", M, "layer_norm", {"int": 0, "none": None}),
    *bad("model", M, "activation", {"activation": "tanh", "activation-case": "GELU"}),
    *bad("model-d-mlp", M, "d_mlp", {"negative": -1, "float": 512.0, "bool": False}),
    # ---- TrainConfig: choices ---------------------------------------------------------------
    kw("train-optimizer", R, "optimizer", "adam"),
    kw("train-schedule", R, "schedule", "random"),
    kw("train-mixed-per", R, "mixed_per", "step"),
    kw("train-lr-schedule", R, "lr_schedule", "linear"),
    kw("train-wd-schedule", R, "wd_schedule", "cosine"),
    *bad("train", R, "precision", {"precision": "fp16", "precision-none": None}),
    # ---- TrainConfig: floats (int or float, finite, in range) -------------------------------
    *bad("train-lr", R, "lr", {"zero": 0.0, "negative": -1e-3, "inf": INF, "minus-inf": -INF,
         "nan": NAN, "str": "3e-4", "bool": True, "none": None}),
    *bad("train-wd", R, "weight_decay", {"inf": INF, "bool": True, "negative": -0.1, "nan": NAN}),
    kw("train-momentum-one", R, "momentum", 1.0, **SGD),
    kw("train-momentum-negative", R, "momentum", -0.1, **SGD),
    kw("train-momentum-nan", R, "momentum", NAN, **SGD),
    kw("train-momentum-str", R, "momentum", "0.9", **SGD),
    *bad("train-lr-final-ratio", R, "lr_final_ratio", {"above-1": 1.5, "nan": NAN}),
    *bad("train-beta2", R, "beta2", {"one": 1.0, "zero": 0.0, "inf": INF}),
    kw("train-plateau-factor-one", R, "plateau_factor", 1.0, **PLATEAU),
    kw("train-plateau-factor-nan", R, "plateau_factor", NAN, **PLATEAU),
    kw("train-plateau-patience-zero", R, "plateau_patience", 0, **PLATEAU),
    kw("train-plateau-patience-float", R, "plateau_patience", 10.0, **PLATEAU),
    kw("train-wd-final-ratio-negative", R, "wd_final_ratio", -1.0, **LINEAR),
    kw("train-wd-final-ratio-inf", R, "wd_final_ratio", INF, **LINEAR),
    kw("train-wd-ramp-negative", R, "wd_ramp_steps", -1, **LINEAR),
    *bad("train-early-stop", R, "early_stop_accuracy", {"above-1": 1.5, "nan": NAN}),
    *bad("train-perturbation", R, "init_perturbation", {"inf": INF, "negative": -1e-3,
         "str": "0.001"}),
    # ---- TrainConfig: integers --------------------------------------------------------------
    *bad("train-batch", R, "batch_size", {"zero": 0, "float": 128.0, "bool": True}),
    kw("train-steps-str", R, "n_steps", "20000"),
    kw("train-snapshot-zero", R, "snapshot_every", 0),
    kw("train-probe-float", R, "probe_size", 1024.5),
    kw("train-checkpoint-none", R, "checkpoint_every", None),
    kw("train-warmup-negative", R, "warmup_steps", -1),
    kw("train-warmup-too-long", R, "warmup_steps", 100, n_steps=100),
    kw("train-cycle-negative", R, "cycle_steps", -1),
    kw("train-cycle-too-short", R, "cycle_steps", 1, lr_schedule="cyclic"),
    kw("train-diagnostics-negative", R, "diagnostics_every", -1),
    kw("train-record-negative", R, "record_every", -1),
    kw("train-directions-float", R, "fingerprint_directions", 1.5),
    kw("train-fingerprint-seed-negative", R, "fingerprint_seed", -1),
    kw("train-perturbation-seed-str", R, "perturbation_seed", "1"),
    kw("train-early-stop-delay-not-multiple", R, "early_stop_delay", 7),
    kw("train-dense-every-alone", R, "dense_every", 10),
    kw("train-dense-until-alone", R, "dense_until", 100),
    kw("train-dense-until-past-end", R, "dense_until", 300, dense_every=10, n_steps=200),
    row("train-dense-with-early-stop", lambda: R(dense_every=10, dense_until=100,
                                                 early_stop_accuracy=0.9), "dense_every", "0.9"),
    # ---- TrainConfig: booleans --------------------------------------------------------------
    kw("train-reset-optimizer-str", R, "reset_optimizer", "no"),
    kw("train-reset-optimizer-int", R, "reset_optimizer", 0, **CURRICULUM,
       curriculum=((1, 10),)),
    *bad("train-store-full-params", R, "store_full_params", {"str": "no", "int": 1}),
    kw("train-fingerprint-train-int", R, "fingerprint_train", 1),
    kw("train-lean-step-str", R, "lean_step", "yes"),
    # ---- TrainConfig: single_m --------------------------------------------------------------
    kw("train-single-m-float", R, "single_m", 2.0, **SINGLE),
    kw("train-single-m-bool", R, "single_m", True, **SINGLE),
    kw("train-single-m-str", R, "single_m", "2", **SINGLE),
    kw("train-single-m-zero", R, "single_m", 0, **SINGLE),
    row("train-single-missing", lambda: R(schedule="single"), "single_m", "None"),
    # ---- TrainConfig: curriculum ((int m, int steps), ...) ----------------------------------
    kw("train-curriculum-str", R, "curriculum", "12", **CURRICULUM),
    kw("train-curriculum-int", R, "curriculum", 3, **CURRICULUM),
    kw("train-curriculum-none", R, "curriculum", None, **CURRICULUM),
    kw("train-curriculum-flat-pair", R, "curriculum", (1, 10), **CURRICULUM),
    kw("train-curriculum-triple", R, "curriculum", ((1, 10, 2),), **CURRICULUM),
    kw("train-curriculum-float-m", R, "curriculum", ((1.0, 10),), **CURRICULUM),
    kw("train-curriculum-float-steps", R, "curriculum", ((1, 10.0),), **CURRICULUM),
    kw("train-curriculum-bool-m", R, "curriculum", ((True, 10),), **CURRICULUM),
    kw("train-curriculum-zero-steps", R, "curriculum", ((1, 0), (2, 10)), **CURRICULUM),
    kw("train-curriculum-zero-m", R, "curriculum", ((0, 10),), **CURRICULUM),
    row("train-curriculum-empty", lambda: R(schedule="curriculum"), "curriculum", "()"),
    row("train-curriculum-wrong-sum", lambda: R(schedule="curriculum",
                                                curriculum=((1, 5), (2, 5)), n_steps=20),
        "n_steps", "20"),
    # ---- TrainConfig: operand_curriculum ((number fraction, int until_step), ...) -----------
    *bad("train-operand", R, "operand_curriculum", {"str": "0.5", "short-pair": ((0.5,),),
         "float-step": ((0.5, 100.0),), "str-fraction": (("0.5", 100),),
         "bool-fraction": ((True, 100),), "nan": ((NAN, 100),), "inf": ((INF, 100),),
         "above-1": ((1.5, 100),), "zero": ((0.0, 100),),
         "decreasing-steps": ((0.3, 200), (0.5, 100))}),
    # ---- TrainConfig: options that the chosen setting does not read -------------------------
    row("train-single-m-with-mixed", lambda: R(single_m=2), "single_m",
        "single_m: only used with schedule='single', got single_m=2 with schedule='mixed'"),
    row("train-single-m-with-curriculum", lambda: R(single_m=1, curriculum=((1, 10),),
                                                    **CURRICULUM),
        "single_m", "schedule='curriculum'"),
    row("train-curriculum-with-mixed", lambda: R(curriculum=((1, 5),)), "curriculum",
        "curriculum=((1, 5),) with schedule='mixed'"),
    row("train-reset-optimizer-with-mixed", lambda: R(reset_optimizer=False),
        "reset_optimizer", "reset_optimizer=False with schedule='mixed'"),
    row("train-mixed-per-with-single", lambda: R(mixed_per="example", single_m=1, **SINGLE),
        "mixed_per", "mixed_per='example' with schedule='single'"),
    row("train-momentum-with-adamw", lambda: R(momentum=0.9), "momentum",
        "momentum=0.9 with optimizer='adamw'"),
    row("train-cycle-without-cyclic", lambda: R(cycle_steps=50, lr_schedule="cosine"),
        "cycle_steps", "cycle_steps=50 with lr_schedule='cosine'"),
    row("train-plateau-patience-without-plateau", lambda: R(plateau_patience=10),
        "plateau_patience", "plateau_patience=10 with lr_schedule='constant'"),
    row("train-plateau-factor-without-plateau", lambda: R(plateau_factor=0.3),
        "plateau_factor", "plateau_factor=0.3 with lr_schedule='constant'"),
    row("train-wd-final-ratio-without-linear", lambda: R(wd_final_ratio=0.0),
        "wd_final_ratio", "wd_final_ratio=0.0 with wd_schedule='constant'"),
    row("train-wd-ramp-without-linear", lambda: R(wd_ramp_steps=500),
        "wd_ramp_steps", "wd_ramp_steps=500 with wd_schedule='constant'"),
    # ---- RunConfig: seed, nested configs ----------------------------------------------------
    *bad("run-seed", RunConfig, "seed", {"negative": -1, "float": 1.0, "bool": True,
         "none": None}),
    row("run-task-dict", lambda: RunConfig(task=TaskConfig().to_dict()), "task",
        "RunConfig.from_dict"),
    row("run-model-dict", lambda: RunConfig(model=dict(n_layers=1)), "model",
        "{'n_layers': 1}"),
    row("run-model-dict-hint", lambda: RunConfig(model=dict(n_layers=1)), "model",
        "ModelConfig(**...)"),
    row("run-train-dict", lambda: RunConfig(train={}), "train", "RunConfig.from_dict"),
    kw("run-task-none", RunConfig, "task", None),
    kw("run-model-str", RunConfig, "model", "tiny"),
    row("run-train-is-a-task", lambda: RunConfig(train=TaskConfig()), "train", "TaskConfig("),
    row("run-model-is-a-train", lambda: RunConfig(model=TrainConfig()), "model",
        "must be a ModelConfig"),
    # ---- RunConfig: cross-part rules --------------------------------------------------------
    row("run-single-m-not-in-task", lambda: RunConfig(train=R(single_m=5, **SINGLE)),
        "single_m", "got 5"),
    row("run-curriculum-m-not-in-task",
        lambda: RunConfig(train=R(curriculum=((6, 10),), **CURRICULUM)), "curriculum", "got 6"),
    row("run-per-example-with-per-batch",
        lambda: RunConfig(task=T(positions="per_batch"), train=R(mixed_per="example")),
        "mixed_per", "positions='per_batch'"),
    row("run-algorithmic-single",
        lambda: RunConfig(task=A(p=11), train=R(single_m=1, **SINGLE)), "schedule", "'single'"),
    row("run-marker-record-every", lambda: RunConfig(train=R(record_every=5)),
        "record_every", "5"),
    row("run-marker-early-stop", lambda: RunConfig(train=R(early_stop_accuracy=0.9)),
        "early_stop_accuracy", "0.9"),
    row("run-marker-operand-curriculum",
        lambda: RunConfig(train=R(operand_curriculum=((0.5, 10),))), "operand_curriculum",
        "((0.5, 10),)"),
    row("run-marker-fingerprint-directions",
        lambda: RunConfig(train=R(fingerprint_directions=4)), "fingerprint_directions", "4"),
    # ---- RunConfig.from_dict on the JSON form -----------------------------------------------
    row("json-unknown-field", lambda: RunConfig.from_dict(from_json(train={"lrate": 1.0})),
        "train", "'lrate'"),
    row("json-missing-seed", lambda: RunConfig.from_dict(from_json(seed=None)), "data",
        "got keys ['model', 'task', 'train']"),
    row("json-not-a-dict", lambda: RunConfig.from_dict([1, 2]), "data", "[1, 2]"),
    row("json-section-not-dict", lambda: RunConfig.from_dict(from_json(model=[5, 128, 4])),
        "model", "[5, 128, 4]"),
    row("json-m-values-str", lambda: RunConfig.from_dict(from_json(task={"m_values": "12"})),
        "m_values", "'12'"),
    row("json-curriculum-triple", lambda: RunConfig.from_dict(from_json(train={
        "schedule": "curriculum", "n_steps": 10, "curriculum": [[1, 10, 0]]})),
        "curriculum", "[[1, 10, 0]]"),
    row("json-algorithmic-fraction-str",
        lambda: RunConfig.from_dict(from_json(RunConfig(task=A(p=11)),
                                              task={"train_fraction": "0.5"})),
        "train_fraction", "'0.5'"),
]


def test_table_is_large():
    assert len(TABLE) >= 100


@pytest.mark.parametrize("build,field,expect", TABLE)
def test_invalid_configuration_is_refused(build, field, expect):
    with pytest.raises(ValueError) as caught:
        build()
    message = str(caught.value)
    # the message opens with the field's name (a rule on two fields names both: "a, b: ...")
    named = [name.strip() for name in message.split(":", 1)[0].split(",")]
    assert field in named, message
    assert expect in message, message


# ---- what stays valid ---------------------------------------------------------------------
ROUND_TRIP = {
    "default": RunConfig(),
    "curriculum": RunConfig(task=T(m_values=(1, 2, 4)),
                            train=R(schedule="curriculum", curriculum=((1, 5), (4, 7)),
                                    n_steps=12, reset_optimizer=False), seed=9),
    "algorithmic": RunConfig(task=A(p=11, op="/", train_fraction=0.5, split_seed=2),
                             train=R(n_steps=1000, record_every=10, early_stop_accuracy=0.99,
                                     early_stop_delay=100,
                                     operand_curriculum=((0.25, 100), (1, 200)))),
    "single-m": RunConfig(train=R(schedule="single", single_m=3, optimizer="sgd",
                                  momentum=0.9), seed=2),
}


@pytest.mark.parametrize("cfg", ROUND_TRIP.values(), ids=ROUND_TRIP.keys())
def test_json_round_trip_keeps_config_and_key(cfg):
    back = RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.key(1) == cfg.key(1)
    assert type(back.task) is type(cfg.task)


def test_list_forms_become_tuples():
    task = T(m_values=[1, 2])
    train = R(schedule="curriculum", curriculum=[[1, 3], [2, 4]], n_steps=7,
              operand_curriculum=[[1, 5]])
    assert task.m_values == (1, 2) and task == T(m_values=(1, 2))
    assert train.curriculum == ((1, 3), (2, 4))
    assert train.operand_curriculum == ((1.0, 5),)
    assert isinstance(train.operand_curriculum[0][0], float)


def test_int_floats_hash_like_floats():
    ints = RunConfig(train=R(lr=1, weight_decay=0, lr_final_ratio=1, early_stop_accuracy=0,
                             init_perturbation=0))
    floats = RunConfig(train=R(lr=1.0, weight_decay=0.0, lr_final_ratio=1.0,
                               early_stop_accuracy=0.0, init_perturbation=0.0))
    assert ints == floats and ints.key(1) == floats.key(1)
    assert isinstance(ints.train.lr, float) and isinstance(ints.train.weight_decay, float)
    assert A(p=11, train_fraction=0.5) == replace(A(p=11), train_fraction=0.5)


ENABLED = {
    "momentum-with-sgd": lambda: R(optimizer="sgd", momentum=0.9),
    "cycle-with-cyclic": lambda: R(lr_schedule="cyclic", cycle_steps=50),
    "plateau-options-with-plateau": lambda: R(lr_schedule="plateau", plateau_patience=10,
                                              plateau_factor=0.3),
    "wd-ramp-with-linear": lambda: R(wd_schedule="linear", wd_final_ratio=0.0,
                                     wd_ramp_steps=500),
    "mixed-per-example-with-mixed": lambda: R(mixed_per="example"),
    "reset-kept-with-curriculum": lambda: R(reset_optimizer=False, curriculum=((1, 10),),
                                            **CURRICULUM),
    "single-m-with-single": lambda: R(single_m=1, **SINGLE),
    "defaults-stated-explicitly": lambda: R(single_m=None, curriculum=(), reset_optimizer=True,
                                            mixed_per="batch", momentum=0, cycle_steps=0,
                                            plateau_patience=1000, plateau_factor=0.5,
                                            wd_final_ratio=1, wd_ramp_steps=0),
    "smallest-feasible-split": lambda: A(p=3, train_fraction=0.06),      # round(0.54) = 1
    "largest-feasible-split": lambda: A(p=3, train_fraction=0.94),       # round(8.46) = 8
}


@pytest.mark.parametrize("build", ENABLED.values(), ids=ENABLED.keys())
def test_options_are_accepted_where_they_apply(build):
    build()


def test_feasible_split_sizes_match_split():
    for task in (A(p=3, train_fraction=0.06), A(p=3, train_fraction=0.94),
                 A(p=5, op="/", train_fraction=0.03), A(p=11, train_fraction=0.4)):
        train, held = task.split()
        assert len(train) == task.n_train >= 1 and len(held) >= 1
        assert len(train) + len(held) == task.n_pairs == len(task.pairs())
