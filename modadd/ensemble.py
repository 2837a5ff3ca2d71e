"""Seed ensembles: S seeds of one configuration trained as one batched model.

The S models' parameters are stacked into tensors ``[S, ...]`` (``torch.func.stack_module_state``)
and the forward pass runs once for all seeds (``torch.func.functional_call`` under
``torch.func.vmap``), each seed on its own batch.  Nothing about a seed's run changes:

- **initialisation** – each seed's model is built exactly as :func:`modadd.train.train` builds it
  (``build_model`` from the seed's "init" stream, then the optional initial perturbation);
- **data** – each seed draws its batches from its own "data" stream with ``training_batch``, in
  the same order as its sequential run, so seed ``s`` sees the same batches;
- **gradients** – the loss is the *sum* over seeds of each seed's mean cross-entropy, so the
  gradient of seed ``s``'s slice is exactly its own sequential gradient (the other seeds' terms
  do not depend on it);
- **optimizer** – AdamW and SGD (with momentum, L2 weight decay) update every entry from its own
  gradient, moments and the step's lr and weight decay only; the one shared quantity, AdamW's
  step count (bias correction), is the same for all seeds because they all step together, and a
  curriculum's optimizer reset happens at the same step for every seed.  One optimizer built by
  ``make_optimizer`` over the stacked tensors therefore applies each seed's sequential update;
- **recording** – at snapshot steps each seed's slice is copied into a per-seed
  :class:`~modadd.model.Transformer` that is recorded (``snapshots.npy``, and with
  ``store_full_params`` ``params.npy`` / ``updates.npy``) and evaluated on the seed's own probe
  sets exactly as in ``train``; ``final_model.pt`` is written the same way.

Results equal the sequential runs up to float rounding: the batched matmuls may sum in another
order (on CPU, differences below 3e-7 over 30 steps of the smoke preset; ``tests/test_ensemble.py``
checks rtol 1e-4 / atol 1e-5).  One parameter is the exception under AdamW: the key bias
(``qkv.bias[d:2d]``) has an exactly zero true gradient (softmax ignores a constant shift of the
scores), so its computed gradient is rounding noise that AdamW normalises into full-size steps; it
wanders differently in the two runs (and between any two float orders) without changing any
output.

Not supported (refused with a ``ValueError``; :func:`modadd.store.load_or_train_many` trains such
runs sequentially): algorithmic tasks, ``diagnostics_every``, the ``plateau`` lr schedule (its cuts
depend on each seed's own loss), a float64 ``loss_dtype``.  No checkpoints are written: an interrupted ensemble restarts
from scratch, and a run directory holding a sequential ``checkpoint.pt`` is refused (resume it
with ``train``).
"""
from __future__ import annotations

import contextlib
import shutil

import copy
import time
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import torch
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional as F
from tqdm.auto import tqdm

from .algorithmic import AlgorithmicTask
from .config import PRECISIONS, RunConfig
from .durable import key_lock
from .model import Transformer
from .runs import cache_finished, lock_file, partial_run_dir, repair, run_key, store_trained
from .taskdata import MarkerData, training_batch
from .train import (NonFiniteTraining, Recorder, check_finite, data_generator, initial_model,
                    initial_state, make_optimizer, resets_optimizer, set_schedule,
                    snapshot_steps)

Device = Union[str, torch.device]


def unsupported_reason(cfg: RunConfig) -> Optional[str]:
    """Why ``cfg`` cannot be trained in an ensemble, or None when it can."""
    t = cfg.train
    if isinstance(cfg.task, AlgorithmicTask):
        return "task: algorithmic tasks are not supported (only marker tasks, TaskConfig)"
    if t.diagnostics_every:
        return (f"diagnostics_every: must be 0 (diagnostics are per-model), "
                f"got {t.diagnostics_every}")
    if t.lr_schedule == "plateau":
        return ("lr_schedule: 'plateau' is not supported (each seed would cut its lr at its own "
                "plateau); use 'constant', 'cosine' or 'cyclic'")
    if t.loss_dtype != "float32":
        return f"loss_dtype: must be 'float32' in an ensemble, got {t.loss_dtype!r}"
    return None


def _flat_fields(cfg: RunConfig) -> dict:
    """``{"section.field": value}`` of every field except the seed."""
    return {f"{section}.{name}": value for section, part in cfg.to_dict().items()
            if isinstance(part, dict) for name, value in part.items()}


def check_ensemble(cfgs: list[RunConfig]) -> None:
    """Raise ``ValueError`` unless ``cfgs`` are >= 1 supported configs with distinct seeds that
    are identical in every other field (the message names the first differing field)."""
    if not cfgs:
        raise ValueError("cfgs: need at least one configuration, got none")
    reason = unsupported_reason(cfgs[0])
    if reason:
        raise ValueError(f"ensemble: {reason}")
    first = _flat_fields(cfgs[0])
    for index, cfg in enumerate(cfgs[1:], start=1):
        fields = _flat_fields(cfg)
        for name, value in first.items():
            if fields[name] != value:
                raise ValueError(f"{name}: an ensemble's configs must differ only in seed; "
                                 f"cfgs[0] has {value!r}, cfgs[{index}] has {fields[name]!r}")
    seeds = [cfg.seed for cfg in cfgs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed: an ensemble's seeds must be distinct, got {seeds}")


def seedless_key(cfg: RunConfig) -> tuple:
    """What configs of one ensemble share: every field but the seed (hashable)."""
    return tuple(sorted((name, repr(value)) for name, value in _flat_fields(cfg).items()))


class StackedModels:
    """S models of one architecture as stacked parameter tensors ``[S, ...]`` on ``device``.

    ``parameters()`` lists the stacked tensors (leaves), so ``make_optimizer(cfg, stacked)``
    builds the run's optimizer over all seeds at once.
    """

    def __init__(self, models: list[Transformer], device: Device = "cpu",
                 precision: str = "fp32", lean: bool = False):
        params, buffers = stack_module_state(models)
        self.size = len(models)
        self.params = {name: p.detach().to(device).requires_grad_(True)
                       for name, p in params.items()}
        self.buffers = {name: b.to(device) for name, b in buffers.items()}
        self.device = torch.device(device)
        base = copy.deepcopy(models[0]).to("meta")    # the architecture only, no storage

        if precision not in PRECISIONS:
            raise ValueError(f"precision: must be one of {PRECISIONS}, got {precision!r}")
        lean = lean or precision != "fp32"
        bf16 = precision == "bf16"
        device_type = self.device.type

        def loss(params: dict, buffers: dict, tokens: torch.Tensor,
                 labels: torch.Tensor) -> torch.Tensor:
            # as modadd.train.training_logits: bf16 autocast of the lean forward, fp32 loss
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
                logits = functional_call(base, (params, buffers), (tokens,),
                                         {"lean": lean, "fused": False})
            return F.cross_entropy(logits.float(), labels)

        self._losses = vmap(loss)

    def parameters(self) -> list[torch.Tensor]:
        """The stacked parameter tensors (what the optimizer updates)."""
        return list(self.params.values())

    def step(self, optimizer: torch.optim.Optimizer, tokens: torch.Tensor,
             labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One update of every seed on its batch (``tokens [S,B,T]``, ``labels [S,B]``);
        returns each seed's training loss and gradient L2 norm before the update, ``[S]`` each
        (on the CPU)."""
        losses = self._losses(self.params, self.buffers, tokens, labels)
        optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        with torch.no_grad():
            per_tensor = torch.stack([p.grad.reshape(self.size, -1).norm(dim=1)
                                      for p in self.params.values()])
            grad_norms = torch.linalg.vector_norm(per_tensor, dim=0)
        optimizer.step()
        return losses.detach().cpu(), grad_norms.cpu()

    @torch.no_grad()
    def load_into(self, model: Transformer, index: int) -> Transformer:
        """Copy seed ``index``'s current weights into ``model`` (same architecture)."""
        for name, p in model.named_parameters():
            p.copy_(self.params[name][index])
        for name, b in model.named_buffers():
            b.copy_(self.buffers[name][index])
        return model


def ensemble_batches(cfgs: list[RunConfig], step: int, generators: list[torch.Generator],
                     device: Device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Each seed's batch of ``step`` from its own data stream, stacked: ``tokens [S,B,T]``,
    ``labels [S,B]``."""
    batches = [training_batch(cfg, step, generator) for cfg, generator in zip(cfgs, generators)]
    return (torch.stack([b.tokens for b in batches]).to(device),
            torch.stack([b.labels for b in batches]).to(device))


def data_generators(cfgs: list[RunConfig]) -> list[torch.Generator]:
    """Each seed's training-data generator (:func:`modadd.train.data_generator`)."""
    return [data_generator(cfg) for cfg in cfgs]


def train_ensemble(cfgs: list[RunConfig], run_dirs: list[Path],
                   progress: Optional[Callable[[int], None]] = None,
                   device: Device = "cpu") -> list[dict]:
    """Train ``cfgs`` (identical but for the seed) as one batched model, seed ``s`` in
    ``run_dirs[s]``.

    Returns per seed the logs :func:`modadd.train.train` returns (``metrics``, ``train_loss``,
    ``grad_norm``, ``wall_s``, ``done``, ``last_step``, ``reached_at=None``, ``arrays={}``) and
    writes the same files (``snapshots.npy``, ``final_model.pt``, with ``store_full_params``
    ``params.npy`` and ``updates.npy``); they equal the sequential runs' up to float rounding.
    ``wall_s`` is the whole ensemble's wall time (every seed trained throughout it).
    ``progress(n)`` receives the model-steps just completed (S per step).  ``device``: where the
    stacked models train (evaluation stays on the CPU, as in ``train``).

    No checkpoints: an interrupted ensemble restarts from scratch.  Raises ``ValueError`` for
    configs that differ in more than the seed, unsupported options (see
    :func:`unsupported_reason`) and run directories holding a ``checkpoint.pt``.
    """
    cfgs, run_dirs = list(cfgs), [Path(d) for d in run_dirs]
    check_ensemble(cfgs)
    if len(run_dirs) != len(cfgs) or len(set(run_dirs)) != len(run_dirs):
        raise ValueError(f"run_dirs: need {len(cfgs)} distinct directories (one per config), "
                         f"got {len(run_dirs)} ({len(set(run_dirs))} distinct)")
    for run_dir in run_dirs:
        if (run_dir / "checkpoint.pt").exists():
            raise ValueError(f"run_dirs: {run_dir} holds a checkpoint.pt of an interrupted "
                             f"sequential run; resume it with modadd.train.train or delete it")
    t, size = cfgs[0].train, len(cfgs)
    for run_dir in run_dirs:
        run_dir.mkdir(parents=True, exist_ok=True)
    models = [initial_model(cfg) for cfg in cfgs]
    stacked = StackedModels(models, device, t.precision, t.lean_step)
    optimizer = make_optimizer(cfgs[0], stacked)
    generators = data_generators(cfgs)
    data = [MarkerData(cfg) for cfg in cfgs]
    recorders = [Recorder(cfg, d, m, resume=False) for cfg, d, m in zip(cfgs, run_dirs, models)]
    states = [initial_state(cfg) for cfg in cfgs]
    snapshots = set(int(s) for s in snapshot_steps(cfgs[0]))

    def measure(step: int) -> None:
        """Record and evaluate every seed at snapshot steps (and store the update after one)."""
        if step not in snapshots and not (t.store_full_params and step - 1 in snapshots):
            return
        for index, (model, recorder, state) in enumerate(zip(models, recorders, states)):
            stacked.load_into(model, index)
            recorder.record_update(model, step)
            if step in snapshots:
                recorder.record(model, step)
                state["metrics"] += data[index].evaluate(model, step)

    measure(0)
    started, cpu_started = time.perf_counter(), time.process_time()
    for step in range(t.n_steps):
        if resets_optimizer(cfgs[0], step):
            optimizer = make_optimizer(cfgs[0], stacked)
        set_schedule(cfgs[0], optimizer, step)
        tokens, labels = ensemble_batches(cfgs, step, generators, device)
        losses, grad_norms = stacked.step(optimizer, tokens, labels)
        for index, state in enumerate(states):
            state["train_loss"][step] = float(losses[index])
            state["grad_norm"][step] = float(grad_norms[index])
            check_finite(cfgs[index], step + 1, state["train_loss"][step],
                          state["grad_norm"][step])
        measure(step + 1)
        if progress is not None:
            progress(size)
    for cfg, model in zip(cfgs, models):       # the final weights (the last step is a snapshot)
        check_finite(cfg, t.n_steps, 0.0, 0.0, model)
    wall_s, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    for model, recorder, state, run_dir in zip(models, recorders, states, run_dirs):
        recorder.flush()
        state.update(step=t.n_steps, wall_s=wall_s, cpu_s=cpu_s, done=True, last_step=t.n_steps,
                     arrays={}, device=str(stacked.device), ensemble_size=size)
        torch.save(model.state_dict(), run_dir / "final_model.pt")  # synced at the last snapshot
    return states


def train_and_store_ensembles(cfgs: Iterable[RunConfig], progress: bool = True,
                              device: Device = "cpu") -> list[RunConfig]:
    """Train the ``cfgs`` that form ensembles (>= 2 supported configs differing only in seed,
    none with a sequential checkpoint to resume) and store each run exactly as
    :func:`modadd.store.train_and_store` does.  Returns the configs left to train sequentially
    (groups of one, unsupported configs, interrupted sequential runs), in their given order."""
    cfgs = list(cfgs)
    groups: dict[tuple, dict[str, RunConfig]] = {}
    for cfg in cfgs:
        key = run_key(cfg)
        if unsupported_reason(cfg) is None and \
                not (partial_run_dir(key) / "checkpoint.pt").exists():
            groups.setdefault(seedless_key(cfg), {})[key] = cfg
    ensembles = [list(group.values()) for group in groups.values() if len(group) > 1]
    trained = {run_key(cfg) for group in ensembles for cfg in group}
    total = sum(cfg.train.n_steps for group in ensembles for cfg in group)
    with tqdm(total=total, desc=f"training {len(trained)} run(s) as {len(ensembles)} "
              f"ensemble(s)", unit="step", disable=not progress or not ensembles,
              mininterval=1.0) as bar:
        for group in ensembles:
            # one writer per key: lock every member (in key order, so two processes locking
            # overlapping groups cannot deadlock); members another process finished meanwhile,
            # or left resumable, are trained (or read) sequentially instead
            with contextlib.ExitStack() as locks:
                for key in sorted(run_key(cfg) for cfg in group):
                    locks.enter_context(key_lock(lock_file(key)))
                for cfg in group:
                    repair(run_key(cfg))
                busy = [cfg for cfg in group if cache_finished(cfg) or
                        (partial_run_dir(run_key(cfg)) / "checkpoint.pt").exists()]
                if busy:
                    trained -= {run_key(cfg) for cfg in group}
                    bar.update(sum(cfg.train.n_steps for cfg in group))
                    continue
                partials = [partial_run_dir(run_key(cfg)) for cfg in group]
                try:
                    logs = train_ensemble(group, partials, progress=bar.update, device=device)
                except NonFiniteTraining:
                    for partial in partials:            # nothing half-written stays
                        shutil.rmtree(partial, ignore_errors=True)
                    raise
                for cfg, log, partial in zip(group, logs, partials):
                    store_trained(cfg, log, partial)
    return [cfg for cfg in cfgs if run_key(cfg) not in trained]
