"""Run configuration: task + model + optimisation + seed, hashed into the cache key.

The key hashes :meth:`RunConfig.key_fields`: the fields of :data:`KEY_LAYOUT` always, any other
field only when set away from its default.  What a configuration does at each step (learning
rate, weight decay, curriculum stage, plateau cuts) is in :mod:`modadd.schedules`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass, replace
from typing import Optional, Union

from .algorithmic import AlgorithmicTask
from .model import ModelConfig
from .task import TaskConfig
from .validate import as_float, as_pairs, check_bool, check_choice, check_float, check_int

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("mixed", "curriculum", "single")
MIXED_PER = ("batch", "example")
LR_SCHEDULES = ("constant", "cosine", "cyclic", "plateau")
WD_SCHEDULES = ("constant", "linear")
PRECISIONS = ("fp32", "bf16")
LOSS_DTYPES = ("float32", "float64")
SAMPLINGS = ("uniform", "epochs")

# The cache key's layout: per config section, the fields runs have been keyed by since schema 1
# (the algorithmic task's since it was added).  They always enter the key; any other field
# (every option added since) enters it only when set away from its default, so adding an option
# never re-keys a committed run and needs no entry here.  tests/test_config.py pins this layout;
# tests/test_faults.py re-hashes every committed run to its folder name.
KEY_LAYOUT = {
    "task": ("T", "C", "m_values", "op", "marker_ids", "positions", "readout", "vocab_size",
             "marker_offset",                        # the marker task (TaskConfig)
             "p", "train_fraction", "split_seed"),   # a∘b mod p (AlgorithmicTask)
    "model": ("n_layers", "d_model", "n_heads", "attention_only"),
    "train": ("optimizer", "lr", "weight_decay", "momentum", "batch_size", "n_steps", "schedule",
              "mixed_per", "curriculum", "reset_optimizer", "single_m", "snapshot_every",
              "store_full_params", "probe_size", "checkpoint_every"),
}
AnyTask = Union[TaskConfig, AlgorithmicTask]
# TrainConfig's float fields: an int is stored as the equal float, so that 0 and 0.0 hash alike
_FLOAT_FIELDS = ("lr", "weight_decay", "momentum", "lr_final_ratio", "beta2",
                 "early_stop_accuracy", "init_perturbation", "plateau_factor", "wd_final_ratio")


@dataclass(frozen=True)
class OptimizerOptions:
    """The optimiser and the arithmetic of its step (a part of :class:`TrainConfig`)."""

    optimizer: str = "adamw"          # "adamw" (original) | "sgd" (the paper's text)
    lr: float = 3e-4                  # (peak) learning rate, > 0
    weight_decay: float = 0.01        # decoupled (AdamW) or L2 (SGD), >= 0
    beta2: float = 0.999              # AdamW's second-moment decay, in (0, 1) (grokking: 0.98)
    momentum: float = 0.0             # SGD momentum in [0, 1); must stay 0 with AdamW
    batch_size: int = 128             # examples per step, >= 1
    # -- arithmetic of the training step (evaluation, snapshots and every measurement are float32
    #    or float64 whatever these say; the fp32 exact step is the original's, bit for bit)
    precision: str = "fp32"           # "fp32" | "bf16": bfloat16 autocast of the step's matmuls
                                      # (projections, MLP, head) with float32 master weights,
                                      # optimizer state, attention core, losses and gradients
    lean_step: bool = False           # True: the lean forward (fused attention, last block on
                                      # the readout row only) in float32 too; bf16 always uses it
    loss_dtype: str = "float32"       # the training loss's log-softmax in "float32" or "float64"
                                      # (Nanda et al.: float64, no float32 floor near loss 1e-7)

    def check_optimizer(self) -> None:
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("loss_dtype", self.loss_dtype, LOSS_DTYPES)
        check_bool("lean_step", self.lean_step)
        check_int("batch_size", self.batch_size, 1)
        check_float("lr", self.lr, 0.0, low_open=True)
        check_float("weight_decay", self.weight_decay, 0.0)
        check_float("beta2", self.beta2, 0.0, 1.0, low_open=True, high_open=True)
        check_float("momentum", self.momentum, 0.0, 1.0, high_open=True)

    @property
    def lean(self) -> bool:
        """Whether training takes the lean forward (:meth:`Transformer.lean_logits`)."""
        return self.lean_step or self.precision != "fp32"


@dataclass(frozen=True)
class ScheduleOptions:
    """How long training runs and what each step does (a part of :class:`TrainConfig`): the
    learning-rate and weight-decay schedules (:mod:`modadd.schedules`) and which m a batch holds
    (mixed, curriculum, single)."""

    n_steps: int = 20_000             # optimizer updates, >= 1 (curriculum: sum of stages)
    lr_schedule: str = "constant"     # "constant" (original) | "cosine" (warm-up, cosine decay) |
                                      # "cyclic" (triangle) | "plateau" (cut on a training-loss plateau)
    warmup_steps: int = 0             # linear warm-up from 0 to lr over these steps, in [0, n_steps)
    lr_final_ratio: float = 0.0       # cosine: lr at the last step = lr * this; cyclic and plateau:
                                      # the lowest lr = lr * this; in [0, 1]
    cycle_steps: int = 0              # cyclic: period of the triangle in steps, >= 2
    plateau_patience: int = 1000      # plateau: steps without a 1e-4 relative improvement, >= 1
    plateau_factor: float = 0.5       # plateau: lr multiplier at each cut, in (0, 1)
    wd_schedule: str = "constant"     # "constant" | "linear" (from weight_decay to
                                      # weight_decay * wd_final_ratio over wd_ramp_steps)
    wd_final_ratio: float = 1.0       # linear: the final weight decay / weight_decay, >= 0
    wd_ramp_steps: int = 0            # linear: steps of the ramp, >= 0 (0 = the whole run)
    schedule: str = "mixed"           # "mixed" | "curriculum" | "single"
    mixed_per: str = "batch"          # mixed: draw m per "batch" (original) or per "example"
    curriculum: tuple = ()            # curriculum: ((m, steps), ...) stages in order
    reset_optimizer: bool = True      # curriculum: fresh optimizer at each stage (original)
    single_m: Optional[int] = None    # single: the one m trained on

    def check_schedule(self) -> None:
        for name, choices in (("schedule", SCHEDULES), ("mixed_per", MIXED_PER),
                              ("lr_schedule", LR_SCHEDULES), ("wd_schedule", WD_SCHEDULES)):
            check_choice(name, getattr(self, name), choices)
        check_bool("reset_optimizer", self.reset_optimizer)
        for name in ("n_steps", "plateau_patience"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "cycle_steps", "wd_ramp_steps"):
            check_int(name, getattr(self, name), 0)
        if self.single_m is not None:
            check_int("single_m", self.single_m, 1)
        check_float("lr_final_ratio", self.lr_final_ratio, 0.0, 1.0)
        check_float("plateau_factor", self.plateau_factor, 0.0, 1.0,
                    low_open=True, high_open=True)
        check_float("wd_final_ratio", self.wd_final_ratio, 0.0)
        if any(m < 1 or n < 1 for m, n in self.curriculum):
            raise ValueError(f"curriculum: every stage needs m >= 1 and >= 1 step, "
                             f"got {self.curriculum!r}")

    def check_schedule_settings(self) -> None:
        """The rules between the schedule's own fields (after the options-in-use check)."""
        if self.lr_schedule == "cyclic" and self.cycle_steps < 2:
            raise ValueError(f"cycle_steps: lr_schedule='cyclic' needs a period >= 2, "
                             f"got {self.cycle_steps!r}")
        if self.warmup_steps >= self.n_steps:
            raise ValueError(f"warmup_steps: must be in [0, n_steps={self.n_steps}), "
                             f"got {self.warmup_steps!r}")
        if self.schedule == "curriculum":
            if not self.curriculum:
                raise ValueError("curriculum: schedule='curriculum' needs stages ((m, steps), "
                                 "...), got ()")
            total = sum(n for _, n in self.curriculum)
            if total != self.n_steps:
                raise ValueError(f"n_steps: must equal the sum of curriculum stage lengths "
                                 f"({total}), got {self.n_steps!r}")
        if self.schedule == "single" and self.single_m is None:
            raise ValueError("single_m: schedule='single' needs the m to train on, got None")


@dataclass(frozen=True)
class RecordingOptions:
    """What a run records while it trains (a part of :class:`TrainConfig`): snapshots and
    evaluations, checkpoints, diagnostics."""

    snapshot_every: int = 100         # steps between weight snapshots and evaluations, >= 1
    dense_every: int = 0              # extra snapshots/evaluations every this many steps ...
    dense_until: int = 0              # ... up to this step (both 0: none); a dense early phase
    store_full_params: bool = False   # also store the full parameter vector at each snapshot
    probe_size: int = 1024            # held-out probe examples per m, >= 1
    checkpoint_every: int = 1000      # steps between resumable checkpoints, >= 1
    # -- diagnostics (modadd.diagnostics): grad/param norms, update ratios, activation statistics,
    #    readout attention, sum of w^2, every this many steps (0 = off)
    diagnostics_every: int = 0

    def check_recording(self) -> None:
        check_bool("store_full_params", self.store_full_params)
        for name in ("snapshot_every", "probe_size", "checkpoint_every"):
            check_int(name, getattr(self, name), 1)
        for name in ("diagnostics_every", "dense_every", "dense_until"):
            check_int(name, getattr(self, name), 0)
        if (self.dense_every == 0) != (self.dense_until == 0):
            raise ValueError(f"dense_every, dense_until: set both (a dense early phase) or "
                             f"neither, got dense_every={self.dense_every!r}, "
                             f"dense_until={self.dense_until!r}")


@dataclass(frozen=True)
class AlgorithmicOptions:
    """Options of the algorithmic tasks (a part of :class:`TrainConfig`; chapters 9-10;
    :class:`RunConfig` refuses them with the marker task): early stopping, initial-weight
    perturbation, fingerprints, the operand-size curriculum."""

    # -- early stopping (algorithmic tasks): stop `early_stop_delay` steps after the first
    #    evaluation whose held-out accuracy is >= early_stop_accuracy (0 = never stop early)
    early_stop_accuracy: float = 0.0  # in [0, 1]
    early_stop_delay: int = 0         # >= 0, a multiple of snapshot_every
    # -- initial-weight perturbation: every parameter entry w becomes w * (1 + eps * z),
    #    z ~ N(0, 1) from the stream "perturb:<perturbation_seed>" (seed 001's scheme)
    init_perturbation: float = 0.0    # eps >= 0 (0 = none)
    perturbation_seed: int = 0        # >= 0
    # -- fingerprints (algorithmic tasks): every `record_every` steps, quantiles of the log-prob
    #    of the correct answer on a fixed held-out probe set of `probe_size` pairs
    record_every: int = 0             # >= 0 (0 = no fingerprints)
    fingerprint_train: bool = False   # also on a train-split probe set of the same size
    fingerprint_directions: int = 0   # J >= 0 random directions of the sliced hidden-state
                                      # embedding at the answer position (0 = off)
    fingerprint_seed: int = 0         # >= 0: probe sets and directions (shared across seeds)
    # -- operand-size curriculum (algorithmic tasks; seed 002's): ((fraction, until_step), ...):
    #    before until_step, train only on pairs with (a + b) / (2 (p - 1)) <= fraction
    operand_curriculum: tuple = ()
    # -- how minibatches are drawn (algorithmic tasks): "uniform": batch_size distinct training
    #    pairs drawn afresh each step; "epochs": openai/grok's shuffled epochs, a fresh
    #    permutation of the training split per epoch cut into consecutive batches (the last
    #    one of an epoch smaller when batch_size does not divide the split)
    sampling: str = "uniform"

    def check_algorithmic(self) -> None:
        check_choice("sampling", self.sampling, SAMPLINGS)
        if self.sampling == "epochs" and self.operand_curriculum:
            raise ValueError(f"sampling: 'epochs' cannot be combined with an operand curriculum "
                             f"(its pool changes within an epoch), got sampling='epochs' with "
                             f"operand_curriculum={self.operand_curriculum!r}")
        check_bool("fingerprint_train", self.fingerprint_train)
        for name in ("early_stop_delay", "perturbation_seed", "record_every",
                     "fingerprint_directions", "fingerprint_seed"):
            check_int(name, getattr(self, name), 0)
        check_float("early_stop_accuracy", self.early_stop_accuracy, 0.0, 1.0, why="0 = off")
        check_float("init_perturbation", self.init_perturbation, 0.0, why="0 = none")
        until = [n for _, n in self.operand_curriculum]
        if any(not 0 < f <= 1 for f, _ in self.operand_curriculum) or \
                any(b <= a for a, b in zip(until, until[1:])) or any(n < 1 for n in until):
            raise ValueError(f"operand_curriculum: need ((fraction in (0, 1], until_step >= 1), "
                             f"...) with increasing steps, got {self.operand_curriculum!r}")


@dataclass(frozen=True)
class TrainConfig(AlgorithmicOptions, RecordingOptions, ScheduleOptions, OptimizerOptions):
    """Optimisation and recording: the fields of its four parts (:class:`OptimizerOptions`,
    :class:`ScheduleOptions`, :class:`RecordingOptions`, :class:`AlgorithmicOptions`), read and
    set flat (``TrainConfig(lr=1e-3)``, ``cfg.train.lr``). Validated on construction."""

    def __post_init__(self) -> None:
        # the JSON form (lists) is accepted and stored as tuples; nothing else is converted
        object.__setattr__(self, "curriculum", as_pairs(
            "curriculum", self.curriculum, "(int m, int steps)", ("int", "int"),
            "((1, 500), (2, 500))"))
        object.__setattr__(self, "operand_curriculum", as_pairs(
            "operand_curriculum", self.operand_curriculum,
            "(finite number fraction, int until_step)", ("number", "int"), "((0.5, 1000),)"))
        for name in _FLOAT_FIELDS:  # 0 and 0.0 must hash alike
            object.__setattr__(self, name, as_float(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending field and its allowed range: each part's
        fields, the options that only one setting of another field reads, then the rules
        across parts."""
        self.check_optimizer()
        self.check_schedule()
        self.check_recording()
        self.check_algorithmic()
        # options refused away from their default under any other setting of their owner
        # (they would change the key and do nothing)
        for name, owner, needed in _ONLY_USED_WITH:
            value = getattr(self, name)
            if getattr(self, owner) != needed and value != _TRAIN_DEFAULTS[name]:
                raise ValueError(f"{name}: only used with {owner}={needed!r}, got "
                                 f"{name}={value!r} with {owner}={getattr(self, owner)!r}")
        self.check_schedule_settings()
        if self.early_stop_delay % self.snapshot_every:
            raise ValueError(f"early_stop_delay: must be a multiple of snapshot_every="
                             f"{self.snapshot_every} (the run then ends on a snapshot), "
                             f"got {self.early_stop_delay!r}")
        if self.dense_until > self.n_steps:
            raise ValueError(f"dense_until: must be in [0, n_steps={self.n_steps}], "
                             f"got {self.dense_until!r}")
        if self.dense_every and self.early_stop_accuracy:
            raise ValueError(f"dense_every: a dense early phase cannot be combined with early "
                             f"stopping (early_stop_accuracy > 0): a run must end on a "
                             f"snapshot, got dense_every={self.dense_every!r} with "
                             f"early_stop_accuracy={self.early_stop_accuracy!r}")


_TRAIN_DEFAULTS = {f.name: f.default for f in fields(TrainConfig)}
# (option, field, the setting of that field under which the option is read)
_ONLY_USED_WITH = (
    ("single_m", "schedule", "single"),
    ("curriculum", "schedule", "curriculum"),
    ("reset_optimizer", "schedule", "curriculum"),
    ("mixed_per", "schedule", "mixed"),
    ("momentum", "optimizer", "sgd"),
    ("cycle_steps", "lr_schedule", "cyclic"),
    ("plateau_patience", "lr_schedule", "plateau"),
    ("plateau_factor", "lr_schedule", "plateau"),
    ("wd_final_ratio", "wd_schedule", "linear"),
    ("wd_ramp_steps", "wd_schedule", "linear"),
)


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a training run; its hash is the run's cache key."""

    task: AnyTask = field(default_factory=TaskConfig)       # the data (marker or algorithmic)
    model: ModelConfig = field(default_factory=ModelConfig)  # the architecture
    train: TrainConfig = field(default_factory=TrainConfig)  # optimisation and recording
    seed: int = 0                                            # master seed, >= 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Cross-field checks (each part validates itself)."""
        for name, kinds in (("task", (TaskConfig, AlgorithmicTask)), ("model", (ModelConfig,)),
                            ("train", (TrainConfig,))):
            value = getattr(self, name)
            if not isinstance(value, kinds):
                wanted = " or an ".join(kind.__name__ for kind in kinds)
                hint = (f" (build the dataclass, {kinds[0].__name__}(**...), or load the JSON "
                        f"form with RunConfig.from_dict)" if isinstance(value, dict) else "")
                raise ValueError(f"{name}: must be a {wanted}{hint}, got {value!r}")
        check_int("seed", self.seed, 0)
        task, train = self.task, self.train
        if isinstance(task, AlgorithmicTask):
            if train.schedule != "mixed":
                raise ValueError(f"schedule: algorithmic tasks have no marker count; must be "
                                 f"'mixed', got {train.schedule!r}")
            if task.eos_target and train.lean:
                raise ValueError(f"eos_target: scores two positions, which only the exact "
                                 f"forward computes; needs lean_step=False and "
                                 f"precision='fp32', got lean_step={train.lean_step}, "
                                 f"precision={train.precision!r}")
            return
        fingerprint_fields = ("early_stop_accuracy", "record_every", "fingerprint_directions",
                              "operand_curriculum", "sampling")
        for name in fingerprint_fields:
            if getattr(train, name) != _TRAIN_DEFAULTS[name]:
                raise ValueError(f"{name}: only supported for algorithmic tasks (a marker "
                                 f"task has no single held-out split), "
                                 f"got {getattr(train, name)!r}")
        used = set()
        if train.schedule == "single":
            used = {train.single_m}
        elif train.schedule == "curriculum":
            used = {m for m, _ in train.curriculum}
        for m in used:
            if m not in task.m_values:
                raise ValueError(f"{'single_m' if train.schedule == 'single' else 'curriculum'}: "
                                 f"m must be one of task.m_values={task.m_values}, got {m!r}")
        if train.schedule == "mixed" and train.mixed_per == "example" and \
                task.positions == "per_batch":
            raise ValueError("mixed_per: 'example' needs task.positions='per_example' "
                             "(one shared position set cannot serve several m), got "
                             "mixed_per='example' with task.positions='per_batch'")

    def to_dict(self) -> dict:
        """Nested plain-JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """Inverse of :meth:`to_dict`, also on its JSON form (lists for tuples)."""
        if not isinstance(data, dict) or set(data) != {"task", "model", "train", "seed"}:
            got = f"keys {sorted(data)!r}" if isinstance(data, dict) else repr(data)
            raise ValueError(f"data: must be a dict with exactly the keys 'task', 'model', "
                             f"'train', 'seed' (RunConfig.to_dict's form), got {got}")
        task_class = AlgorithmicTask if isinstance(data["task"], dict) and "p" in data["task"] \
            else TaskConfig
        parts = []
        for name, kind in (("task", task_class), ("model", ModelConfig), ("train", TrainConfig)):
            section = data[name]
            if not isinstance(section, dict):
                raise ValueError(f"{name}: must be a dict of {kind.__name__} fields, "
                                 f"got {section!r}")
            unknown = sorted(set(section) - {f.name for f in fields(kind)})
            if unknown:
                raise ValueError(f"{name}: {kind.__name__} has no field(s) "
                                 f"{', '.join(map(repr, unknown))}")
            parts.append(kind(**section))
        return cls(*parts, data["seed"])

    def with_seed(self, seed: int) -> "RunConfig":
        """The same run with another seed."""
        return replace(self, seed=seed)

    def key_fields(self) -> dict:
        """What the cache key hashes: :meth:`to_dict` without the fields outside
        :data:`KEY_LAYOUT` that are at their default."""
        config = self.to_dict()
        for section in ("task", "model", "train"):
            defaults = field_defaults(type(getattr(self, section)))
            for name in list(config[section]):
                if name not in KEY_LAYOUT[section] and config[section][name] == defaults[name]:
                    del config[section][name]
        return config

    def key(self, schema_version: int) -> str:
        """16-hex-digit hash of :meth:`key_fields` as sorted JSON plus the code schema
        version."""
        text = json.dumps({"config": self.key_fields(), "schema": schema_version},
                          sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def field_defaults(cls) -> dict:
    """``{field: default}`` of dataclass ``cls`` (default factories called), in its JSON form."""
    out = {}
    for f in fields(cls):
        value = f.default if f.default is not MISSING else f.default_factory()
        out[f.name] = asdict(value) if is_dataclass(value) else value
    return out


def stream_seed(seed: int, stream: str) -> int:
    """Seed of the named RNG stream ("data", "init", "eval", "measure", ...) of a run.

    Streams are derived by hashing, so drawing from one never shifts another.
    """
    digest = hashlib.sha256(f"modadd:{seed}:{stream}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)
