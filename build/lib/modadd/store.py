"""The store's public face: runs, training what is missing, and the analysis cache.

It re-exports the names of three modules that each do one job (import them directly inside the
package; this module only gathers them for users and notebooks):

- :mod:`modadd.runs`: a run's on-disk layout, verified reading, publishing, crash repair
  (``Run``, ``find_run``, ``run_key``, ``verify_store``, ``CorruptFile`` ...);
- :mod:`modadd.runner`: ``load_or_train`` / ``load_or_train_many`` (the process pool, seed
  ensembles, one writer per key);
- :mod:`modadd.analysis_cache`: ``cached`` / ``is_cached`` / ``read_result``;

and, from the helpers below them, :mod:`modadd.durable` (atomic writes, checksums, locks) and
:mod:`modadd.parallel` (``run_parallel``).  ``python -m modadd.store verify [--seal]`` checks
every stored run.
"""
from __future__ import annotations

from .analysis_cache import analysis_key, cached, is_cached, read_result
from .durable import CacheMiss, CorruptFile, atomic_path, atomic_write_text
from .parallel import environment, run_parallel, single_threaded_children
from .runner import load_or_train, load_or_train_many, train_and_store
from .runs import (METRICS_FILES, OPTIONAL_SUMMARY_FILES, SCHEMA_VERSION, SUMMARY_FILES,
                   DamagedCopyWarning, Run, add_checksums, find_run, heavy_files, main,
                   partial_run_dir, run_key, store_trained, verify_store)

__all__ = [
    "CacheMiss", "CorruptFile", "DamagedCopyWarning", "METRICS_FILES", "OPTIONAL_SUMMARY_FILES",
    "Run", "SCHEMA_VERSION", "SUMMARY_FILES", "add_checksums", "analysis_key", "atomic_path",
    "atomic_write_text", "cached", "environment", "find_run", "heavy_files", "is_cached",
    "load_or_train", "load_or_train_many", "main", "partial_run_dir", "read_result",
    "run_key", "run_parallel", "single_threaded_children", "store_trained", "train_and_store",
    "verify_store",
]

if __name__ == "__main__":
    raise SystemExit(main())
