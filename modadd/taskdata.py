"""The task-data interface the training loop reads, and its two implementations.

:func:`task_data` gives a run's data object: :class:`MarkerData` (the marker task of chapters
1-8 and 11) or :class:`AlgorithmicData` (a∘b mod p, chapters 9-10).  Both provide

- ``training_batch(step, generator)``: the batch of an optimizer step, every random draw from the
  run's data stream;
- ``evaluate(model, step)``: tidy metric rows ``{step, m, metric, layer, value}`` on fixed probes;
- ``heldout_accuracy(rows)``: the accuracy early stopping reads from those rows;
- ``diagnostic_tokens()``: the probe tokens of the activation diagnostics;
- ``fingerprint(model)`` and ``arrays(records)``: the fingerprint of one step and the extra files
  of a run (``fingerprints.npz`` for algorithmic tasks, none for the marker task).

None of them touches a training RNG: measuring never changes training.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np
import torch
from torch.nn import functional as F

from . import fingerprint as fp
from .algorithmic import AlgorithmicTask
from .config import RunConfig, stream_seed
from .model import Transformer, model_device, readout_entropy
from .schedules import m_at_step, operand_fraction_at_step
from .task import Batch, sample_batch


def task_data(cfg: RunConfig) -> Union["MarkerData", "AlgorithmicData"]:
    """The data object of ``cfg``'s task family."""
    return AlgorithmicData(cfg) if isinstance(cfg.task, AlgorithmicTask) else MarkerData(cfg)


def probe_sets(cfg: RunConfig) -> dict[int, Batch]:
    """The fixed held-out probe set per m (eval RNG stream, positions drawn per example)."""
    task = dataclasses.replace(cfg.task, positions="per_example")
    generator = torch.Generator().manual_seed(stream_seed(cfg.seed, "eval"))
    return {m: sample_batch(task, cfg.train.probe_size, m, generator=generator)
            for m in cfg.task.m_values}


@torch.no_grad()
def evaluate_probes(model: Transformer, probes: dict[int, Batch], step: int,
             chunk: int = 1024) -> list[dict]:
    """Loss, accuracy and per-layer readout-attention entropy on each probe set.

    Returns tidy rows ``{step, m, metric, layer, value}`` (layer = -1 for loss and accuracy).
    """
    was_training = model.training
    model.eval()
    device = model_device(model)
    rows = []
    for m, batch in probes.items():
        losses, correct, entropies = [], [], []
        for start in range(0, batch.tokens.shape[0], chunk):
            tokens = batch.tokens[start:start + chunk].to(device)
            labels = batch.labels[start:start + chunk].to(device)
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


def training_batch(cfg: RunConfig, step: int, generator: torch.Generator) -> Batch:
    """The marker task's batch of ``step``: m from the schedule, all randomness from the data
    stream ``generator``."""
    t = cfg.train
    m = m_at_step(t, step)
    if m is None and t.mixed_per == "batch":
        options = cfg.task.m_values
        m = options[int(torch.randint(len(options), (1,), generator=generator))]
    return sample_batch(cfg.task, t.batch_size, m, generator=generator)


class MarkerData:
    """The marker task's data for one run (:func:`task_data`): training batches and the fixed
    probe set per m (:func:`probe_sets`)."""

    def __init__(self, cfg: RunConfig):
        self.cfg, self.probes = cfg, probe_sets(cfg)

    def training_batch(self, step: int, generator: torch.Generator) -> Batch:
        return training_batch(self.cfg, step, generator)

    def evaluate(self, model: Transformer, step: int) -> list[dict]:
        return evaluate_probes(model, self.probes, step)

    def heldout_accuracy(self, rows: list[dict]) -> float:
        """The lowest accuracy over m in ``rows`` (an evaluation's rows)."""
        return min(r["value"] for r in rows if r["metric"] == "accuracy")

    def diagnostic_tokens(self) -> torch.Tensor:
        """The probe tokens the activation diagnostics read: the largest m's, first 256."""
        return self.probes[max(self.probes)].tokens[:256]

    def fingerprint(self, model: Transformer) -> dict:
        raise ValueError("record_every: fingerprints are recorded on algorithmic tasks only")

    def arrays(self, records: list) -> dict:
        """The run's extra files: none."""
        return {}


@dataclass
class AlgorithmicBatch:
    """Tokens ``[B, 4]`` and answers ``[B]`` of an algorithmic task."""

    tokens: torch.Tensor
    labels: torch.Tensor
    index: Optional[np.ndarray] = None   # probe sets: their indices into the split


class AlgorithmicData:
    """The two splits of an algorithmic task and the fixed fingerprint probe sets.

    Probe sets are drawn without replacement from each split by ``fingerprint_seed`` (not the run
    seed), so every seed and every perturbation of a study reads the same probes.
    """

    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        task: AlgorithmicTask = cfg.task
        self.splits = task.split_data()
        tokens = self.splits["train"][0]
        # operand size of each training pair, (a + b) / (2 (p - 1)) in [0, 1] (seed 002's measure)
        first, second = task.operand_positions
        self.operand_size = (tokens[:, first] + tokens[:, second]).double() / (2 * (task.p - 1))
        self._pools: dict[float, torch.Tensor] = {}
        self._epoch: tuple[int, Optional[torch.Tensor]] = (-1, None)
        rng = np.random.default_rng([cfg.train.fingerprint_seed, 0xF1])
        self.probes = {}
        for name in ("heldout", "train"):
            tokens, labels = self.splits[name]
            n = min(cfg.train.probe_size, len(labels))
            index = np.sort(rng.choice(len(labels), size=n, replace=False))
            self.probes[name] = AlgorithmicBatch(tokens[index], labels[index], index)
        self.directions = None
        if cfg.train.fingerprint_directions:
            self.directions = fp.random_directions(cfg.model.d_model,
                                                   cfg.train.fingerprint_directions,
                                                   cfg.train.fingerprint_seed)

    def batch(self, batch_size: int, generator: torch.Generator,
              operand_fraction: float = 1.0) -> AlgorithmicBatch:
        """``batch_size`` distinct training pairs (all of them if fewer), restricted to operand
        size ≤ ``operand_fraction`` when it is below 1."""
        tokens, labels = self.splits["train"]
        if operand_fraction < 1.0:
            if operand_fraction not in self._pools:     # a curriculum has a few stages: once each
                self._pools[operand_fraction] = torch.nonzero(
                    self.operand_size <= operand_fraction)[:, 0]
            pool = self._pools[operand_fraction]
            tokens, labels = tokens[pool], labels[pool]
        if batch_size >= len(labels):
            return AlgorithmicBatch(tokens, labels)
        index = torch.randperm(len(labels), generator=generator)[:batch_size]
        return AlgorithmicBatch(tokens[index], labels[index])


    def training_batch(self, step: int, generator: torch.Generator) -> AlgorithmicBatch:
        """The batch of ``step``: ``batch_size`` distinct training pairs drawn uniformly from the
        data stream (at the operand curriculum's size limit), or the whole training split (no
        randomness) when ``batch_size`` is at least its size; with ``sampling="epochs"``, the
        step's slice of its epoch (:meth:`epoch_batch`)."""
        t = self.cfg.train
        if t.sampling == "epochs":
            return self.epoch_batch(step)
        return self.batch(t.batch_size, generator, operand_fraction_at_step(t, step))

    def epoch_batch(self, step: int) -> AlgorithmicBatch:
        """openai/grok's shuffled epochs: epoch ``e`` is a permutation of the training split from
        the stream ``"epoch:<e>"`` of the run seed, cut into ``ceil(N / batch_size)``
        consecutive batches, the last one smaller when ``batch_size`` does not divide ``N``.  A
        function of ``step`` alone, so a resumed run draws the same batches."""
        tokens, labels = self.splits["train"]
        n = len(labels)
        size = min(self.cfg.train.batch_size, n)
        epoch, index = divmod(step, math.ceil(n / size))
        if self._epoch[0] != epoch:
            generator = torch.Generator().manual_seed(stream_seed(self.cfg.seed, f"epoch:{epoch}"))
            self._epoch = (epoch, torch.randperm(n, generator=generator))
        rows = self._epoch[1][index * size:(index + 1) * size]
        return AlgorithmicBatch(tokens[rows], labels[rows])

    def evaluate(self, model: Transformer, step: int) -> list[dict]:
        return evaluate_algorithmic(model, self, step)

    def heldout_accuracy(self, rows: list[dict]) -> float:
        """The held-out accuracy in ``rows`` (an evaluation's rows)."""
        return next(r["value"] for r in rows if r["metric"] == "accuracy")

    def diagnostic_tokens(self) -> torch.Tensor:
        """The probe tokens the activation diagnostics read: the held-out probes."""
        return self.probes["heldout"].tokens

    def fingerprint(self, model: Transformer) -> dict:
        return record_fingerprint(model, self, self.cfg)

    def arrays(self, records: list) -> dict:
        """The run's extra files: ``fingerprints.npz`` (:func:`fingerprint_arrays`)."""
        return {"fingerprints.npz": fingerprint_arrays(self.cfg, self, records)}

@torch.no_grad()
def evaluate_algorithmic(model: Transformer, data: AlgorithmicData, step: int,
                         chunk: int = 4096) -> list[dict]:
    """Loss and accuracy on the whole held-out split (``metric`` "loss", "accuracy") and the whole
    training split ("train_loss", "train_accuracy"), and Σw² over every parameter ("weight_sq"),
    as tidy rows with ``m = 0``, ``layer = -1``.
    """
    was_training = model.training
    model.eval()
    rows = []
    for split, prefix in (("heldout", ""), ("train", "train_")):
        tokens, labels = data.splits[split]
        loss = correct = 0.0
        device = model_device(model)
        for start in range(0, len(labels), chunk):
            logits = model(tokens[start:start + chunk].to(device))
            target = labels[start:start + chunk].to(device)
            loss += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += float((logits.argmax(-1) == target).sum())
        rows.append(dict(step=step, m=0, metric=prefix + "loss", layer=-1,
                         value=loss / len(labels)))
        rows.append(dict(step=step, m=0, metric=prefix + "accuracy", layer=-1,
                         value=correct / len(labels)))
    rows.append(dict(step=step, m=0, metric="weight_sq", layer=-1, value=model.weight_sq()))
    model.train(was_training)
    return rows


@torch.no_grad()
def record_fingerprint(model: Transformer, data: AlgorithmicData, cfg: RunConfig) -> dict:
    """One fingerprint: ``{"heldout": [Q]}`` quantiles of log p(correct answer) at the answer
    position on the held-out probes, plus ``"heldout_accuracy"``, and with the options
    ``"train"`` ([Q], train probes) and ``"sliced"`` ([J·Q], the final residual stream at the
    answer position projected on J fixed random directions)."""
    was_training = model.training
    model.eval()
    out = {}
    splits = ("heldout", "train") if cfg.train.fingerprint_train else ("heldout",)
    for split in splits:
        probe = data.probes[split]
        device = model_device(model)
        logits, cache = model.run_with_cache(probe.tokens.to(device),
                                             keep_cache=split == "heldout" and
                                             data.directions is not None)
        logits = logits.cpu()
        out[split] = fp.quantile_fingerprint(fp.answer_logprobs(logits, probe.labels))
        if split == "heldout":
            out["heldout_accuracy"] = float((logits.argmax(-1) == probe.labels).double().mean())
            if data.directions is not None:
                hidden = cache["resid"][-1][:, cfg.task.answer_position].double().cpu().numpy()
                out["sliced"] = fp.sliced_quantile_embedding(hidden, data.directions)
    model.train(was_training)
    return out


def fingerprint_arrays(cfg: RunConfig, data: AlgorithmicData, records: list) -> dict:
    """The arrays of ``fingerprints.npz``: record steps, the fingerprint series, the quantile
    levels, the probe indices (into each split) and the split itself (indices into
    ``task.pairs()``)."""
    train_index, heldout_index = cfg.task.split()
    out = {"split_train": train_index.astype(np.int32),
           "split_heldout": heldout_index.astype(np.int32),
           "probe_heldout": data.probes["heldout"].index.astype(np.int32),
           "probe_train": data.probes["train"].index.astype(np.int32),
           "quantiles": np.asarray(fp.DEFAULT_QUANTILES),
           "steps": np.array([step for step, _ in records], dtype=np.int64)}
    if data.directions is not None:
        out["directions"] = data.directions.astype(np.float32)
    names = records[0][1].keys() if records else ()
    for name in names:
        out[name] = np.array([r[name] for _, r in records], dtype=np.float32)
    return out
