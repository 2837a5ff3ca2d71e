"""Training engine: schedules, evaluation on fixed probe sets, snapshots, resumable checkpoints.

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
"""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
from torch.nn import functional as F

from .config import RunConfig, stream_seed
from .model import MATRIX_NAMES, Transformer, build_model, readout_entropy
from .task import Batch, sample_batch

ProgressFn = Callable[[int], None]


def snapshot_steps(cfg: RunConfig) -> np.ndarray:
    """Steps at which weights are stored and probes evaluated: ``[n_snapshots] int``."""
    every, total = cfg.train.snapshot_every, cfg.train.n_steps
    steps = np.arange(0, total + 1, every)
    return steps if steps[-1] == total else np.append(steps, total)


def probe_sets(cfg: RunConfig) -> dict[int, Batch]:
    """The fixed held-out probe set per m (eval RNG stream, positions drawn per example)."""
    task = dataclasses.replace(cfg.task, positions="per_example")
    generator = torch.Generator().manual_seed(stream_seed(cfg.seed, "eval"))
    return {m: sample_batch(task, cfg.train.probe_size, m, generator=generator)
            for m in cfg.task.m_values}


@torch.no_grad()
def evaluate(model: Transformer, probes: dict[int, Batch], step: int,
             chunk: int = 1024) -> list[dict]:
    """Loss, accuracy and per-layer readout-attention entropy on each probe set.

    Returns tidy rows ``{step, m, metric, layer, value}`` (layer = -1 for loss and accuracy).
    """
    was_training = model.training
    model.eval()
    rows = []
    for m, batch in probes.items():
        losses, correct, entropies = [], [], []
        for start in range(0, batch.tokens.shape[0], chunk):
            tokens = batch.tokens[start:start + chunk]
            labels = batch.labels[start:start + chunk]
            logits, cache = model.run_with_cache(tokens)
            losses.append(F.cross_entropy(logits, labels, reduction="sum"))
            correct.append((logits.argmax(-1) == labels).sum())
            entropies.append(torch.stack([readout_entropy(a).mean(dim=1).sum()
                                          for a in cache["attn"]]))
        n = batch.tokens.shape[0]
        rows.append(dict(step=step, m=m, metric="loss", layer=-1,
                         value=float(sum(losses)) / n))
        rows.append(dict(step=step, m=m, metric="accuracy", layer=-1,
                         value=float(sum(correct)) / n))
        for layer, total in enumerate(torch.stack(entropies).sum(dim=0).tolist()):
            rows.append(dict(step=step, m=m, metric="entropy", layer=layer, value=total / n))
    model.train(was_training)
    return rows


def make_optimizer(cfg: RunConfig, model: Transformer) -> torch.optim.Optimizer:
    """AdamW (PyTorch defaults otherwise) or SGD, as the config says."""
    t = cfg.train
    if t.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                           momentum=t.momentum)


def training_batch(cfg: RunConfig, step: int, generator: torch.Generator) -> Batch:
    """The batch of ``step``: m from the schedule, all randomness from the data stream."""
    t = cfg.train
    m = t.m_at_step(step)
    if m is None and t.mixed_per == "batch":
        options = cfg.task.m_values
        m = options[int(torch.randint(len(options), (1,), generator=generator))]
    return sample_batch(cfg.task, t.batch_size, m, generator=generator)


class _Recorder:
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
        self.weights[i] = model.attention_matrices().numpy()
        if self.params is not None:
            self.params[i] = model.flat_parameters().numpy()

    def record_update(self, model: Transformer, step: int) -> None:
        """After the update that follows snapshot ``step - 1``: store ``θ(step) − θ(step-1)``."""
        i = self.index.get(step - 1)
        if self.updates is None or i is None or i >= len(self.updates):
            return
        after = model.flat_parameters().double().numpy()
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
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(cfg: RunConfig, run_dir: Path, progress: Optional[ProgressFn] = None,
          stop_after: Optional[int] = None) -> dict:
    """Train ``cfg`` in ``run_dir`` (resuming from ``checkpoint.pt`` if present).

    ``progress(n)`` is called with the number of steps just completed; ``stop_after`` ends the
    call after that global step's checkpoint (for tests of resumption). Returns the logs:
    ``{"metrics": rows, "train_loss": [n_steps], "grad_norm": [n_steps], "wall_s", "done"}``.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = run_dir / "checkpoint.pt"
    model = build_model(cfg.model, cfg.task, stream_seed(cfg.seed, "init"))
    optimizer = make_optimizer(cfg, model)
    generator = torch.Generator().manual_seed(stream_seed(cfg.seed, "data"))
    probes = probe_sets(cfg)
    resume = checkpoint_path.exists()
    state = _initial_state(cfg)
    if resume:
        state = torch.load(checkpoint_path, weights_only=False)
        model.load_state_dict(state.pop("model"))
        optimizer.load_state_dict(state.pop("optimizer"))
        generator.set_state(state.pop("generator"))
    recorder = _Recorder(cfg, run_dir, model, resume)
    if state["step"] == 0:
        recorder.record(model, 0)
        state["metrics"] += evaluate(model, probes, 0)
    started = time.perf_counter() - state["wall_s"]
    while state["step"] < cfg.train.n_steps:
        step = state["step"]
        if step > 0 and cfg.train.schedule == "curriculum" and cfg.train.reset_optimizer \
                and cfg.train.stage_at_step(step) != cfg.train.stage_at_step(step - 1):
            optimizer = make_optimizer(cfg, model)
        for group in optimizer.param_groups:
            group["lr"] = cfg.train.lr_at_step(step)
        loss, grad_norm = _step(cfg, model, optimizer, training_batch(cfg, step, generator))
        state["train_loss"][step], state["grad_norm"][step] = loss, grad_norm
        state["step"] = step = step + 1
        recorder.record_update(model, step)
        if step in recorder.index:
            recorder.record(model, step)
            state["metrics"] += evaluate(model, probes, step)
        stopping = stop_after is not None and step >= stop_after
        if step % cfg.train.checkpoint_every == 0 or step == cfg.train.n_steps or stopping:
            recorder.flush()
            state["wall_s"] = time.perf_counter() - started
            _save_atomic({**state, "model": model.state_dict(),
                          "optimizer": optimizer.state_dict(),
                          "generator": generator.get_state()}, checkpoint_path)
        if progress is not None:
            progress(1)
        if stopping:
            break
    recorder.flush()
    state["wall_s"] = time.perf_counter() - started
    state["done"] = state["step"] >= cfg.train.n_steps
    if state["done"]:
        torch.save(model.state_dict(), run_dir / "final_model.pt")
    return state


def _initial_state(cfg: RunConfig) -> dict:
    n = cfg.train.n_steps
    return {"step": 0, "metrics": [], "wall_s": 0.0,
            "train_loss": np.full(n, np.nan, np.float32),
            "grad_norm": np.full(n, np.nan, np.float32)}


def _step(cfg: RunConfig, model: Transformer, optimizer: torch.optim.Optimizer,
          batch: Batch) -> tuple[float, float]:
    """One optimizer update; returns (training loss, gradient L2 norm) before the update."""
    logits = model(batch.tokens)
    loss = F.cross_entropy(logits, batch.labels)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
    optimizer.step()
    return float(loss.detach()), float(grad_norm)


def snapshot_index(cfg: RunConfig) -> list[tuple[int, str]]:
    """(layer, matrix name) for the second and third axes of ``snapshots.npy``, in order."""
    return [(layer, name) for layer in range(cfg.model.n_layers) for name in MATRIX_NAMES]
