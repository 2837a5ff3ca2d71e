"""modadd: how small transformers learn marker-based modular arithmetic.

Modules (imports go downward only; ``tests/test_structure.py`` checks there is no cycle):
``task`` ← ``model`` ← ``config`` ← ``train`` ← ``runs`` ← ``ensemble`` ← ``runner``, with
``durable`` (I/O) and ``parallel`` below them and ``analysis_cache`` beside; ``store`` re-exports
the store's three; ``presets`` names configurations; ``metrics`` depends on numpy/torch only.

The names below are loaded on first use (PEP 562), so ``import modadd.papermill_io`` (which
papermill does on every ``import papermill``) does not import torch.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "config": ("RunConfig", "TrainConfig", "stream_seed"),
    "model": ("ModelConfig", "Transformer", "build_model"),
    "presets": ("PRESETS", "preset", "preset_seeds", "with_precision"),
    "store": ("CacheMiss", "Run", "cached", "load_or_train", "load_or_train_many", "run_key"),
    "task": ("Batch", "TaskConfig", "describe", "sample_batch"),
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_HOME)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name in _HOME:
        value = getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'modadd' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
