"""Schedules: what a training run does at each step, as pure functions of its
:class:`~modadd.config.TrainConfig` and the step, and the plateau schedule's state.

- :func:`lr_at_step`, :func:`wd_at_step`: the learning rate and weight decay of an update;
- :func:`m_at_step`, :func:`stage_at_step`: the marker count and curriculum stage of a batch;
- :func:`operand_fraction_at_step`: the operand-size limit of an algorithmic batch;
- :class:`PlateauTracker`: the "plateau" schedule's cuts (state saved in checkpoints).
"""
from __future__ import annotations

import math
from typing import Optional

from .config import TrainConfig


def lr_at_step(t: TrainConfig, step: int) -> float:
    """Learning rate of the update taken at ``step`` (0-based), a pure function of the step.

    Warm-up: ``lr * (step + 1) / warmup_steps`` for ``step < warmup_steps``.  Then constant,
    or a half cosine from ``lr`` at the first post-warm-up step to ``lr * lr_final_ratio``
    at the last step (``n_steps - 1``), or a triangle of period ``cycle_steps`` rising from
    ``lr * lr_final_ratio`` to ``lr`` and back ("cyclic", as torch's CyclicLR).  "plateau"
    returns ``lr`` here; ``train`` multiplies it by ``plateau_factor`` at each plateau of the
    training loss (:class:`PlateauTracker`).  Curriculum stages share one global schedule.
    """
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    if t.lr_schedule in ("constant", "plateau"):     # plateau cuts are applied by train()
        return t.lr
    if t.lr_schedule == "cyclic":
        phase = ((step - t.warmup_steps) % t.cycle_steps) / t.cycle_steps
        floor = t.lr * t.lr_final_ratio
        return floor + (t.lr - floor) * (1.0 - abs(2.0 * phase - 1.0))
    span = t.n_steps - 1 - t.warmup_steps
    progress = 1.0 if span <= 0 else (step - t.warmup_steps) / span
    floor = t.lr * t.lr_final_ratio
    return floor + (t.lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def wd_at_step(t: TrainConfig, step: int) -> float:
    """Weight decay of the update taken at ``step``: constant, or linear from
    ``weight_decay`` to ``weight_decay * wd_final_ratio`` over ``wd_ramp_steps``."""
    if t.wd_schedule == "constant":
        return t.weight_decay
    ramp = t.wd_ramp_steps or t.n_steps
    progress = min(1.0, step / ramp)
    return t.weight_decay * (1.0 + (t.wd_final_ratio - 1.0) * progress)


def operand_fraction_at_step(t: TrainConfig, step: int) -> float:
    """The operand-size limit of ``step`` (1.0: every pair)."""
    for fraction, until in t.operand_curriculum:
        if step < until:
            return fraction
    return 1.0


def m_at_step(t: TrainConfig, step: int) -> Optional[int]:
    """The fixed m of ``step`` (curriculum stage or single), None for mixed."""
    if t.schedule == "single":
        return t.single_m
    if t.schedule == "curriculum":
        return t.curriculum[stage_at_step(t, step)][0]
    return None


def stage_at_step(t: TrainConfig, step: int) -> int:
    """Curriculum stage index of ``step`` (0 for other schedules)."""
    if t.schedule != "curriculum":
        return 0
    end = 0
    for index, (_, length) in enumerate(t.curriculum):
        end += length
        if step < end:
            return index
    return len(t.curriculum) - 1


class PlateauTracker:
    """ReduceLROnPlateau on the per-step training loss ("plateau" schedule): after more than
    ``plateau_patience`` steps without a loss below ``best * (1 - 1e-4)``, multiply the lr scale by
    ``plateau_factor`` (never below ``lr_final_ratio``) and start counting again."""

    def __init__(self, train: TrainConfig, state: Optional[dict] = None):
        self.cfg = train
        self.state = state or {"best": math.inf, "bad": 0, "scale": 1.0}

    @property
    def scale(self) -> float:
        return self.state["scale"]

    def update(self, loss: float) -> None:
        s = self.state
        if loss < s["best"] * (1 - 1e-4):
            s["best"], s["bad"] = loss, 0
            return
        s["bad"] += 1
        if s["bad"] > self.cfg.plateau_patience:
            s["scale"] = max(s["scale"] * self.cfg.plateau_factor, self.cfg.lr_final_ratio)
            s["bad"] = 0
