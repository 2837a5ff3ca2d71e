"""Training engine: one loop for both task families, snapshots, resumable checkpoints.

A run writes into one directory:

- ``snapshots.npy``  ``[n_snapshots, n_layers, 4, d, d]`` float32 (W_Q, W_K, W_V, W_O), a
  memory-mapped file filled as training goes;
- ``params.npy``     ``[n_snapshots, n_params]`` float32 (only with ``store_full_params``);
- ``updates.npy``    ``[n_snapshots - 1, n_params]`` float32 (only with ``store_full_params``):
  row ``i`` is the optimizer's single update applied right after snapshot ``i``,
  ``θ(s_i + 1) − θ(s_i)`` (differenced in float64), the "actual update" control of chapter 5;
- ``checkpoint.pt``  model, optimizer, data-RNG state, step and logs, written atomically every
  ``checkpoint_every`` steps; a killed run restarts from it and ends bit-identical on CPU.

Snapshot ``i`` holds the weights after ``snapshot_steps(cfg)[i]`` optimizer updates: step 0 is
the initialisation and the final step is always included (the original code skipped it).

One loop serves both task families: it reads a run's data through the task-data interface
(:func:`modadd.taskdata.task_data`: batches, probes, evaluation, fingerprints) and has no
task-family branches.  The seed ensemble (:mod:`modadd.ensemble`) shares its initial model,
data streams, schedules and optimizer resets (:func:`initial_model`, :func:`data_generator`,
:func:`set_schedule`, :func:`resets_optimizer`), and the benchmarks its step (:func:`train_step`).
"""
from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Callable, Optional, Union

import numpy as np
import torch
from torch.nn import functional as F

from .durable import atomic_path, fault
from .config import RunConfig, stream_seed
from .diagnostics import Diagnostics
from .model import MATRIX_NAMES, Transformer, build_model
from .schedules import PlateauTracker, lr_at_step, stage_at_step, wd_at_step
from .task import Batch
from .taskdata import task_data

ProgressFn = Callable[[int], None]
DeviceLike = Union[str, torch.device]


def snapshot_steps(cfg: RunConfig) -> np.ndarray:
    """Steps at which weights are stored and probes evaluated: ``[n_snapshots] int``, sorted.

    Every ``snapshot_every`` steps from 0 and the final step; with a dense early phase also every
    ``dense_every`` steps up to ``dense_until`` (the regular grid stays a subset, so an analysis
    can be repeated at the regular spacing by keeping only those steps: :func:`regular_steps`).
    """
    t = cfg.train
    every, total = t.snapshot_every, t.n_steps
    steps = np.arange(0, total + 1, every)
    if steps[-1] != total:
        steps = np.append(steps, total)
    if t.dense_every:
        steps = np.union1d(steps, np.arange(0, t.dense_until + 1, t.dense_every))
    return steps


def regular_steps(cfg: RunConfig) -> np.ndarray:
    """Boolean mask over :func:`snapshot_steps`: the steps of the regular ``snapshot_every`` grid
    (and the final step), i.e. the snapshots a run without the dense phase would hold."""
    steps = snapshot_steps(cfg)
    return (steps % cfg.train.snapshot_every == 0) | (steps == cfg.train.n_steps)


def make_optimizer(cfg: RunConfig, model: Transformer) -> torch.optim.Optimizer:
    """AdamW (PyTorch defaults otherwise) or SGD, as the config says."""
    t = cfg.train
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                 betas=(0.9, t.beta2), foreach=True)
    return torch.optim.SGD(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                           momentum=t.momentum)


def initial_model(cfg: RunConfig) -> Transformer:
    """The model a run of ``cfg`` starts from: the init stream, then any initial perturbation."""
    model = build_model(cfg.model, cfg.task, stream_seed(cfg.seed, "init"))
    t = cfg.train
    if t.init_perturbation:
        perturb_parameters(model, t.init_perturbation,
                           stream_seed(cfg.seed, f"perturb:{t.perturbation_seed}"))
    return model


def data_generator(cfg: RunConfig) -> torch.Generator:
    """The generator of a run's training data (its own stream of the seed)."""
    return torch.Generator().manual_seed(stream_seed(cfg.seed, "data"))


def resets_optimizer(cfg: RunConfig, step: int) -> bool:
    """Whether a curriculum with optimizer resets starts a new stage (fresh optimizer) at
    ``step``."""
    t = cfg.train
    return step > 0 and t.schedule == "curriculum" and t.reset_optimizer \
        and stage_at_step(t, step) != stage_at_step(t, step - 1)


def set_schedule(cfg: RunConfig, optimizer: torch.optim.Optimizer, step: int,
                 scale: float = 1.0) -> None:
    """The learning rate (times the plateau ``scale``) and scheduled weight decay of the update
    taken at ``step``."""
    t = cfg.train
    for group in optimizer.param_groups:
        group["lr"] = lr_at_step(t, step) * scale
        if t.wd_schedule != "constant":
            group["weight_decay"] = wd_at_step(t, step)


def perturb_parameters(model: Transformer, eps: float, seed: int) -> None:
    """Multiply every parameter entry by ``1 + eps * z``, ``z ~ N(0, 1)`` drawn from ``seed``
    (seed 001's perturbation; zero entries such as fresh biases stay zero)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.0 + eps * torch.randn(p.shape, generator=generator).to(p.device))


class Recorder:
    """Memory-mapped snapshot arrays in the run directory."""

    def __init__(self, cfg: RunConfig, run_dir: Path, model: Transformer, resume: bool):
        n = len(snapshot_steps(cfg))
        d, layers = cfg.model.d_model, cfg.model.n_layers
        mode = "r+" if resume else "w+"
        self.weights = _open_array(run_dir / "snapshots.npy", mode, (n, layers, 4, d, d))
        self.params = self.updates = None
        if cfg.train.store_full_params:
            n_params = sum(p.numel() for p in model.parameters())
            self.params = _open_array(run_dir / "params.npy", mode, (n, n_params))
            # a run resumed from before updates were recorded starts the file afresh
            updates_mode = mode if (run_dir / "updates.npy").exists() else "w+"
            self.updates = _open_array(run_dir / "updates.npy", updates_mode,
                                       (n - 1, n_params))
        self.index = {int(s): i for i, s in enumerate(snapshot_steps(cfg))}

    def record(self, model: Transformer, step: int) -> None:
        i = self.index[step]
        self.weights[i] = model.attention_matrices().cpu().numpy()
        if self.params is not None:
            self.params[i] = model.flat_parameters().cpu().numpy()

    def record_update(self, model: Transformer, step: int) -> None:
        """After the update that follows snapshot ``step - 1``: store ``θ(step) − θ(step-1)``."""
        i = self.index.get(step - 1)
        if self.updates is None or i is None or i >= len(self.updates):
            return
        after = model.flat_parameters().double().cpu().numpy()
        self.updates[i] = after - np.asarray(self.params[i], np.float64)

    def flush(self) -> None:
        for array in (self.weights, self.params, self.updates):
            if array is not None:
                array.flush()


def _open_array(path: Path, mode: str, shape: tuple) -> np.memmap:
    if mode == "r+":
        return np.load(path, mmap_mode="r+")
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)


def _save_atomic(obj, path: Path) -> None:
    """``torch.save`` under a unique temporary name, renamed over ``path`` once complete."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
        fault("train:checkpoint-written")


class NonFiniteTraining(FloatingPointError):
    """Training produced a non-finite loss, gradient or parameter; nothing was stored."""


def _suspect(cfg: RunConfig) -> str:
    """The config field most likely behind a divergence, for the error message."""
    t = cfg.train
    if t.init_perturbation >= 1.0:
        return f"init_perturbation={t.init_perturbation!r} (>= 1 flips and blows up weights)"
    if t.lr >= (1e-2 if t.optimizer == "adamw" else 1.0):
        return f"lr={t.lr!r} (too large for {t.optimizer})"
    if t.weight_decay * t.lr >= 1.0:
        return (f"weight_decay={t.weight_decay!r} (lr * weight_decay >= 1 overshoots the "
                f"decay)")
    if t.precision != "fp32":
        return f"precision={t.precision!r} (try 'fp32')"
    return f"lr={t.lr!r} (the usual cause; then weight_decay={t.weight_decay!r})"


def check_finite(cfg: RunConfig, step: int, loss: float, grad_norm: float,
                  model: Optional[Transformer] = None) -> None:
    """Raise :class:`NonFiniteTraining` naming the step and the likely field when the update of
    ``step`` (1-based count of updates so far) went non-finite."""
    what = None
    if not math.isfinite(loss):
        what = f"training loss {loss}"
    elif not math.isfinite(grad_norm):
        what = f"gradient norm {grad_norm}"
    elif model is not None and not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        what = "a parameter"
    if what is not None:
        raise NonFiniteTraining(f"training diverged: non-finite {what} at step {step} of "
                                f"{cfg.train.n_steps}; most likely {_suspect(cfg)}. Nothing was "
                                f"stored as finished.")


def train(cfg: RunConfig, run_dir: Path, progress: Optional[ProgressFn] = None,
          stop_after: Optional[int] = None, device: DeviceLike = "cpu") -> dict:
    """Train ``cfg`` in ``run_dir`` (resuming from ``checkpoint.pt`` if present).

    ``device``: where the model, batches and probes live ("cpu", "cuda", "cuda:1", ...).  Every
    RNG stream stays on the CPU (batches are drawn there and moved), so a run's data, init and
    probes do not depend on the device; results agree with the CPU run up to float rounding.

    ``progress(n)`` is called with the number of steps just completed; ``stop_after`` ends the
    call after that global step's checkpoint (for tests of resumption). Returns the logs:
    ``{"metrics": rows, "train_loss": [n_steps], "grad_norm": [n_steps], "wall_s", "done",
    "last_step", "reached_at", "arrays", "cpu_s", "device"}``; ``cpu_s`` is the process CPU time
    spent training (all threads; accumulated over resumptions); ``last_step`` is ``n_steps`` unless the run stopped
    early, ``reached_at`` the first evaluation step at which held-out accuracy reached
    ``early_stop_accuracy`` (algorithmic tasks with early stopping, else None) and ``arrays`` the
    extra files to store (``{"fingerprints.npz": {...}}`` for algorithmic tasks).
    """
    device = check_device(device)
    t = cfg.train
    if t.diagnostics_every and device.type != "cpu":
        raise ValueError(f"diagnostics_every: diagnostics run on the CPU only; got "
                         f"{t.diagnostics_every} with device={str(device)!r} (set it to 0)")
    run_dir.mkdir(parents=True, exist_ok=True)
    for stale in run_dir.glob(".*.tmp"):        # a temporary file of a killed write (the caller
        stale.unlink()                          # holds the run's lock: not a live writer's)
    checkpoint_path = run_dir / "checkpoint.pt"
    model = initial_model(cfg).to(device)
    optimizer = make_optimizer(cfg, model)
    generator = data_generator(cfg)
    data = task_data(cfg)
    resume = checkpoint_path.exists()
    state = initial_state(cfg)
    if resume:
        # on the CPU: the data generator's state must stay there; load_state_dict moves the
        # model's and the optimizer's tensors to the parameters' device
        state = {**state, **torch.load(checkpoint_path, weights_only=False,
                                       map_location="cpu")}
        model.load_state_dict(state.pop("model"))
        optimizer.load_state_dict(state.pop("optimizer"))
        generator.set_state(state.pop("generator"))
    recorder = Recorder(cfg, run_dir, model, resume)
    plateau = PlateauTracker(t, state["plateau"]) if t.lr_schedule == "plateau" else None
    diagnostics = Diagnostics(model, data.diagnostic_tokens()) if t.diagnostics_every else None

    def measure(step: int) -> None:
        """Evaluations and fingerprints due at ``step`` (never touch a training RNG)."""
        if step in recorder.index:
            recorder.record(model, step)
            rows = data.evaluate(model, step)
            state["metrics"] += rows
            if t.early_stop_accuracy and state["reached_at"] is None \
                    and data.heldout_accuracy(rows) >= t.early_stop_accuracy:
                state["reached_at"] = step
                state["end"] = min(t.n_steps, step + t.early_stop_delay)
        if t.record_every and step % t.record_every == 0:
            state["fingerprints"].append((step, data.fingerprint(model)))

    if state["step"] == 0:
        measure(0)
    started = time.perf_counter() - state["wall_s"]
    cpu_started = time.process_time() - state["cpu_s"]
    while state["step"] < state["end"]:
        step = state["step"]
        if resets_optimizer(cfg, step):
            optimizer = make_optimizer(cfg, model)
        set_schedule(cfg, optimizer, step, plateau.scale if plateau else 1.0)
        inspect = diagnostics if diagnostics and step % t.diagnostics_every == 0 else None
        batch = to_device(data.training_batch(step, generator), device)
        loss, grad_norm = train_step(cfg, model, optimizer, batch, inspect, step, state["metrics"])
        checkpointing = (step + 1) % t.checkpoint_every == 0 or step + 1 >= state["end"]
        # loss and gradient every step; the parameters (a full pass) at checkpoints and the end
        check_finite(cfg, step + 1, loss, grad_norm, model if checkpointing else None)
        if plateau is not None:
            plateau.update(loss)
        state["train_loss"][step], state["grad_norm"][step] = loss, grad_norm
        state["step"] = step = step + 1
        recorder.record_update(model, step)
        measure(step)
        stopping = stop_after is not None and step >= stop_after
        if step % t.checkpoint_every == 0 or step >= state["end"] or stopping:
            recorder.flush()
            state["wall_s"] = time.perf_counter() - started
            state["cpu_s"] = time.process_time() - cpu_started
            _save_atomic({**state, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(),
                          "generator": generator.get_state()}, checkpoint_path)
        if progress is not None:
            progress(1)
        if stopping:
            break
    recorder.flush()
    state["wall_s"] = time.perf_counter() - started
    state["cpu_s"] = time.process_time() - cpu_started
    state["device"] = str(device)
    state["done"] = state["step"] >= state["end"]
    state["last_step"] = state["step"]
    state["arrays"] = data.arrays(state["fingerprints"])
    if state["done"]:
        if state["end"] < t.n_steps and progress is not None:
            progress(t.n_steps - state["end"])     # steps skipped by the early stop
        _save_atomic({name: value.cpu() for name, value in model.state_dict().items()},
                     run_dir / "final_model.pt")
    return state


def initial_state(cfg: RunConfig) -> dict:
    n = cfg.train.n_steps
    return {"step": 0, "metrics": [], "wall_s": 0.0, "cpu_s": 0.0,
            "train_loss": np.full(n, np.nan, np.float32),
            "grad_norm": np.full(n, np.nan, np.float32),
            "end": n, "reached_at": None, "fingerprints": [],
            "plateau": {"best": float("inf"), "bad": 0, "scale": 1.0}}


def train_step(cfg: RunConfig, model: Transformer, optimizer: torch.optim.Optimizer,
          batch: Batch, inspect: Optional[Diagnostics] = None, step: int = 0,
          rows: Optional[list] = None) -> tuple[float, float]:
    """One optimizer update; returns (training loss, gradient L2 norm) before the update.

    With ``inspect``, its diagnostic rows for ``step`` (gradients before the optimizer step,
    update ratios after it, then activations) are appended to ``rows``.
    """
    loss = training_loss(cfg, training_logits(cfg, model, batch.tokens, batch.labels),
                         training_targets(cfg, batch.labels))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    if inspect is not None:
        rows += inspect.before_step(step)
    optimizer.step()
    if inspect is not None:
        rows += inspect.after_step(step)
        rows += inspect.activations(step)
    return float(loss.detach()), float(grad_norm)


def training_loss(cfg: RunConfig, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of the training step, its log-softmax in ``cfg.train.loss_dtype``:
    ``logits [B, C]`` against ``targets [B]``, or ``[B, 2, C]`` against ``[B, 2]`` with
    ``eos_target`` (the mean over all ``2B`` outputs, as openai/grok's ``cross_entropy`` over
    its right-hand side)."""
    if cfg.train.loss_dtype == "float64":
        logits = logits.double()
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _eos_target(cfg: RunConfig) -> bool:
    return getattr(cfg.task, "eos_target", False)


def training_targets(cfg: RunConfig, labels: torch.Tensor) -> torch.Tensor:
    """What the training step's outputs are scored against: the answers ``[B]``, or with
    ``eos_target`` ``[B, 2]``: the answer, then the end token."""
    if not _eos_target(cfg):
        return labels
    return torch.stack([labels, torch.full_like(labels, cfg.task.end_token)], dim=1)


def training_logits(cfg: RunConfig, model: Transformer, tokens: torch.Tensor,
                    labels: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The training step's readout logits ``[B, C]``, float32: the exact forward by default, the
    lean forward (:meth:`Transformer.lean_logits`) with ``lean_step``, and the lean forward under
    bfloat16 autocast with ``precision="bf16"`` (float32 master weights; gradients arrive in
    float32; the loss is taken on float32 logits).  With ``eos_target``, ``[B, 2, C]``: the
    outputs at ``=`` and at the answer ``labels`` appended to ``tokens`` (exact forward)."""
    t = cfg.train
    if _eos_target(cfg):
        if labels is None:
            raise ValueError("labels: eos_target appends the answers to the input; pass them")
        return model.sequence_logits(torch.cat([tokens, labels[:, None]], dim=1))[:, -2:]
    if not t.lean:
        return model(tokens)
    with torch.autocast(tokens.device.type, dtype=torch.bfloat16,
                        enabled=t.precision == "bf16"):
        logits = model.lean_logits(tokens)
    return logits.float()


def check_device(device: DeviceLike) -> torch.device:
    """``device`` as a ``torch.device``; a clear error when it does not exist here."""
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device: not a torch device, got {device!r} ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {str(device)!r} requested but CUDA is not available here "
                         f"(use 'cpu')")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device: must be 'cpu' or 'cuda[:n]', got {str(device)!r}")
    return device


def to_device(batch, device: torch.device):
    """``batch`` (any dataclass of tensors) with its tensors on ``device``; itself on the CPU."""
    if device.type == "cpu":
        return batch
    return dataclasses.replace(batch, **{f.name: getattr(batch, f.name).to(device)
                                         for f in dataclasses.fields(batch)
                                         if isinstance(getattr(batch, f.name), torch.Tensor)})


def snapshot_index(cfg: RunConfig) -> list[tuple[int, str]]:
    """(layer, matrix name) for the second and third axes of ``snapshots.npy``, in order."""
    return [(layer, name) for layer in range(cfg.model.n_layers) for name in MATRIX_NAMES]
