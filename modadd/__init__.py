"""modadd: how small transformers learn marker-based modular arithmetic.

Modules (imports go downward only; ``tests/test_structure.py`` checks there is no cycle):
``task`` ← ``model`` ← ``config`` ← ``train`` ← ``runs`` ← ``ensemble`` ← ``runner``, with
``durable`` (I/O) and ``parallel`` below them and ``analysis_cache`` beside; ``store`` re-exports
the store's three; ``presets`` names configurations; ``metrics`` depends on numpy/torch only.
"""
from .config import RunConfig, TrainConfig, stream_seed
from .model import ModelConfig, Transformer, build_model
from .presets import PRESETS, preset, preset_seeds, with_precision
from .store import CacheMiss, Run, cached, load_or_train, load_or_train_many, run_key
from .task import Batch, TaskConfig, describe, sample_batch

__all__ = [
    "Batch", "CacheMiss", "ModelConfig", "PRESETS", "Run", "RunConfig", "TaskConfig",
    "TrainConfig", "Transformer", "build_model", "cached", "describe", "load_or_train",
    "load_or_train_many", "preset", "preset_seeds", "run_key", "sample_batch", "stream_seed",
    "with_precision",
]
__version__ = "0.1.0"
