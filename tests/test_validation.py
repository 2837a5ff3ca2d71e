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
    kw("task-T-bool", T, "T", True),
    kw("task-T-float", T, "T", 16.0),
    kw("task-T-str", T, "T", "16"),
    kw("task-T-none", T, "T", None),
    kw("task-T-small", T, "T", 3),
    kw("task-C-below-2", T, "C", 1),
    kw("task-C-float", T, "C", 8.0),
    kw("task-C-bool", T, "C", False),
    kw("task-vocab-float", T, "vocab_size", 256.0),
    kw("task-vocab-below-C+2", T, "vocab_size", 9),
    kw("task-vocab-markers", T, "vocab_size", 102),
    kw("task-vocab-query", T, "vocab_size", 104, readout="query"),
    kw("task-vocab-no-distractor", T, "vocab_size", 12, C=8, marker_offset=8),
    kw("task-marker-offset-collides", T, "marker_offset", 5),
    kw("task-marker-offset-str", T, "marker_offset", "100"),
    # ---- TaskConfig: m_values (a tuple or list of ints) -------------------------------------
    kw("task-m-float-entry", T, "m_values", (1.7,)),
    kw("task-m-str", T, "m_values", "12"),
    kw("task-m-int", T, "m_values", 3),
    kw("task-m-none", T, "m_values", None),
    kw("task-m-bool-entry", T, "m_values", (True, 2)),
    kw("task-m-set", T, "m_values", {1, 2}),
    kw("task-m-empty", T, "m_values", ()),
    kw("task-m-duplicate", T, "m_values", (1, 1)),
    kw("task-m-zero", T, "m_values", (0, 1)),
    kw("task-m-too-large", T, "m_values", (8,)),
    kw("task-m-too-large-short-T", T, "m_values", (4,), T=8),
    # ---- TaskConfig: choices ----------------------------------------------------------------
    kw("task-op", T, "op", "sub"),
    kw("task-op-case", T, "op", "ADD"),
    kw("task-op-none", T, "op", None),
    kw("task-marker-ids", T, "marker_ids", "many"),
    kw("task-positions", T, "positions", "fixed"),
    kw("task-readout", T, "readout", "first"),
    kw("task-readout-int", T, "readout", 0),
    row("task-mul-composite-C", lambda: T(op="mul", C=8), "C", "C=8"),
    row("task-mul-C2", lambda: T(op="mul", C=2), "C", "C=2"),
    # ---- AlgorithmicTask --------------------------------------------------------------------
    kw("alg-p-composite", A, "p", 12),
    kw("alg-p-2", A, "p", 2),
    kw("alg-p-float", A, "p", 97.0),
    kw("alg-p-bool", A, "p", True),
    kw("alg-p-str", A, "p", "97"),
    kw("alg-op", A, "op", "%"),
    kw("alg-op-word", A, "op", "plus"),
    kw("alg-fraction-str", A, "train_fraction", "0.4"),
    kw("alg-fraction-bool", A, "train_fraction", True),
    kw("alg-fraction-none", A, "train_fraction", None),
    kw("alg-fraction-zero", A, "train_fraction", 0.0),
    kw("alg-fraction-one", A, "train_fraction", 1.0),
    kw("alg-fraction-int-one", A, "train_fraction", 1, "1.0"),
    kw("alg-fraction-negative", A, "train_fraction", -0.5),
    kw("alg-fraction-nan", A, "train_fraction", NAN),
    kw("alg-fraction-inf", A, "train_fraction", INF),
    kw("alg-empty-train-split", A, "train_fraction", 0.01, p=3),
    row("alg-empty-train-split-says-why", lambda: A(p=3, train_fraction=0.01),
        "train_fraction", "leaves 0 of the 9 pairs"),
    kw("alg-empty-heldout-split", A, "train_fraction", 0.99, p=3),
    row("alg-division-pair-count", lambda: A(p=5, op="/", train_fraction=0.02),
        "train_fraction", "of the 20 pairs"),
    kw("alg-split-seed-negative", A, "split_seed", -1),
    kw("alg-split-seed-float", A, "split_seed", 1.0),
    kw("alg-split-seed-str", A, "split_seed", "0"),
    # ---- ModelConfig ------------------------------------------------------------------------
    kw("model-layers-zero", M, "n_layers", 0),
    kw("model-layers-float", M, "n_layers", 2.0),
    kw("model-layers-bool", M, "n_layers", True),
    kw("model-width-str", M, "d_model", "128"),
    kw("model-width-none", M, "d_model", None),
    kw("model-heads-zero", M, "n_heads", 0),
    kw("model-width-not-divisible", M, "d_model", 130),
    kw("model-attention-only-int", M, "attention_only", 1),
    kw("model-attention-only-str", M, "attention_only", "no"),
    kw("model-layer-norm-int", M, "layer_norm", 0),
    kw("model-layer-norm-none", M, "layer_norm", None),
    kw("model-activation", M, "activation", "tanh"),
    kw("model-activation-case", M, "activation", "GELU"),
    kw("model-d-mlp-negative", M, "d_mlp", -1),
    kw("model-d-mlp-float", M, "d_mlp", 512.0),
    kw("model-d-mlp-bool", M, "d_mlp", False),
    # ---- TrainConfig: choices ---------------------------------------------------------------
    kw("train-optimizer", R, "optimizer", "adam"),
    kw("train-schedule", R, "schedule", "random"),
    kw("train-mixed-per", R, "mixed_per", "step"),
    kw("train-lr-schedule", R, "lr_schedule", "linear"),
    kw("train-wd-schedule", R, "wd_schedule", "cosine"),
    kw("train-precision", R, "precision", "fp16"),
    kw("train-precision-none", R, "precision", None),
    # ---- TrainConfig: floats (int or float, finite, in range) -------------------------------
    kw("train-lr-zero", R, "lr", 0.0),
    kw("train-lr-negative", R, "lr", -1e-3),
    kw("train-lr-inf", R, "lr", INF),
    kw("train-lr-minus-inf", R, "lr", -INF),
    kw("train-lr-nan", R, "lr", NAN),
    kw("train-lr-str", R, "lr", "3e-4"),
    kw("train-lr-bool", R, "lr", True),
    kw("train-lr-none", R, "lr", None),
    kw("train-wd-inf", R, "weight_decay", INF),
    kw("train-wd-bool", R, "weight_decay", True),
    kw("train-wd-negative", R, "weight_decay", -0.1),
    kw("train-wd-nan", R, "weight_decay", NAN),
    kw("train-momentum-one", R, "momentum", 1.0, **SGD),
    kw("train-momentum-negative", R, "momentum", -0.1, **SGD),
    kw("train-momentum-nan", R, "momentum", NAN, **SGD),
    kw("train-momentum-str", R, "momentum", "0.9", **SGD),
    kw("train-lr-final-ratio-above-1", R, "lr_final_ratio", 1.5),
    kw("train-lr-final-ratio-nan", R, "lr_final_ratio", NAN),
    kw("train-beta2-one", R, "beta2", 1.0),
    kw("train-beta2-zero", R, "beta2", 0.0),
    kw("train-beta2-inf", R, "beta2", INF),
    kw("train-plateau-factor-one", R, "plateau_factor", 1.0, **PLATEAU),
    kw("train-plateau-factor-nan", R, "plateau_factor", NAN, **PLATEAU),
    kw("train-plateau-patience-zero", R, "plateau_patience", 0, **PLATEAU),
    kw("train-plateau-patience-float", R, "plateau_patience", 10.0, **PLATEAU),
    kw("train-wd-final-ratio-negative", R, "wd_final_ratio", -1.0, **LINEAR),
    kw("train-wd-final-ratio-inf", R, "wd_final_ratio", INF, **LINEAR),
    kw("train-wd-ramp-negative", R, "wd_ramp_steps", -1, **LINEAR),
    kw("train-early-stop-above-1", R, "early_stop_accuracy", 1.5),
    kw("train-early-stop-nan", R, "early_stop_accuracy", NAN),
    kw("train-perturbation-inf", R, "init_perturbation", INF),
    kw("train-perturbation-negative", R, "init_perturbation", -1e-3),
    kw("train-perturbation-str", R, "init_perturbation", "0.001"),
    # ---- TrainConfig: integers --------------------------------------------------------------
    kw("train-batch-zero", R, "batch_size", 0),
    kw("train-batch-float", R, "batch_size", 128.0),
    kw("train-batch-bool", R, "batch_size", True),
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
    kw("train-store-full-params-str", R, "store_full_params", "no"),
    kw("train-store-full-params-int", R, "store_full_params", 1),
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
    kw("train-operand-str", R, "operand_curriculum", "0.5"),
    kw("train-operand-short-pair", R, "operand_curriculum", ((0.5,),)),
    kw("train-operand-float-step", R, "operand_curriculum", ((0.5, 100.0),)),
    kw("train-operand-str-fraction", R, "operand_curriculum", (("0.5", 100),)),
    kw("train-operand-bool-fraction", R, "operand_curriculum", ((True, 100),)),
    kw("train-operand-nan", R, "operand_curriculum", ((NAN, 100),)),
    kw("train-operand-inf", R, "operand_curriculum", ((INF, 100),)),
    kw("train-operand-above-1", R, "operand_curriculum", ((1.5, 100),)),
    kw("train-operand-zero", R, "operand_curriculum", ((0.0, 100),)),
    kw("train-operand-decreasing-steps", R, "operand_curriculum", ((0.3, 200), (0.5, 100))),
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
    kw("run-seed-negative", RunConfig, "seed", -1),
    kw("run-seed-float", RunConfig, "seed", 1.0),
    kw("run-seed-bool", RunConfig, "seed", True),
    kw("run-seed-none", RunConfig, "seed", None),
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
