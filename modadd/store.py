"""Run cache: ``load_or_train`` for training runs and ``cached`` for analysis results.

A run is identified by ``RunConfig.key(SCHEMA_VERSION)``.  Layout::

    data/cache/runs/<key>.partial/   while training (checkpoint.pt, snapshots.npy, ...)
    data/cache/runs/<key>/           finished: + config.json metrics.csv.gz train_log.npz
                                     meta.json final_model.pt snapshots.npy [params.npy]
    data/results/runs/<key>/         committed summaries: config.json metrics.csv.gz
                                     train_log.npz meta.json (no weights; runs stored before
                                     compression hold a plain metrics.csv, read alike)
    data/results/analysis/<name>-<key>.{csv.gz,json.gz,npz}   cached analysis results

Bump ``SCHEMA_VERSION`` whenever training behaviour or the stored format changes: keys then
change and stale results can never load silently.

Guarantees (tested by ``tests/test_faults.py``):

* **One writer per run key**, across processes (and machines sharing a file system whose
  ``flock`` works): training a key holds ``data/cache/runs/.locks/<key>.lock``; a second process
  asking for the same run waits, then reads the first one's result.  Every temporary file and
  folder has a unique name.
* **Crash-safe publish**: nothing is deleted before its replacement is in place (rename-swap:
  the old folder is moved aside, the new one renamed in, then the old one removed).  A kill at
  any point of train → move → publish leaves the old complete copy or the new one, and the next
  read repairs the rest: a finished run in the cache missing from ``data/results`` is
  republished, a finished ``.partial`` folder is moved in, folders moved aside are restored or
  removed and staging folders are cleaned (under the key's lock, so never a live writer's).
* **Integrity**: ``meta.json`` holds the SHA-256 of every file of the run (``checksums``) and of
  itself (``meta_sha256``); summaries are verified on every read, weight files on first access.
  Any damaged or unreadable file raises :class:`CorruptFile` naming the file, the run key and
  the way to recover; a damaged summary copy falls back to the other copy with a
  :class:`DamagedCopyWarning`.  Runs stored before checksums existed are verified by parsing
  only (``python -m modadd.store verify --seal`` adds checksums to them).
* Training that goes non-finite stops with :class:`modadd.train.NonFiniteTraining` naming the
  step and the likely field; nothing is stored and its ``.partial`` folder is removed.
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import gzip
import hashlib
import json
import multiprocessing
import os
import pickle
import platform
import queue
import shutil
import time
import uuid
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import paths
from .config import RunConfig
from .durable import (atomic_path, atomic_write_text, die_with_parent, fault, file_mode,
                      key_lock, sha256_file, staging_dir, try_key_lock)
from .model import Transformer
from .train import NonFiniteTraining, snapshot_index, snapshot_steps, train

SCHEMA_VERSION = 1
SUMMARY_FILES = ("config.json", "metrics.csv.gz", "train_log.npz", "meta.json")
# runs stored before metrics were compressed hold a plain metrics.csv; both are read
METRICS_FILES = ("metrics.csv.gz", "metrics.csv")
OPTIONAL_SUMMARY_FILES = ("fingerprints.npz",)   # algorithmic tasks


class CacheMiss(RuntimeError):
    """A result is not cached and ``MODADD_NO_TRAIN=1`` forbids computing it."""


class CorruptFile(RuntimeError):
    """A stored file (of a run or an analysis result) is damaged or unreadable.

    ``path`` is the file, ``key`` the run key or analysis stem, ``recovery`` what to do."""

    def __init__(self, path: Path, key: str, problem: str, recovery: str):
        self.path, self.key, self.problem, self.recovery = Path(path), key, problem, recovery
        super().__init__(f"{key}: {path} is damaged ({problem}); {recovery}")


class DamagedCopyWarning(UserWarning):
    """One copy of a run's summaries was damaged and the other copy was read instead."""


# what unreadable files raise, per reader (numpy, pandas, gzip, zipfile, json, torch, pickle)
_READ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError,
                zipfile.BadZipFile, gzip.BadGzipFile, pickle.UnpicklingError, RuntimeError,
                pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, zlib.error)


@dataclass
class Run:
    """A finished run: summaries always, weight trajectories when the cache holds them."""

    config: RunConfig
    key: str
    metrics: pd.DataFrame          # tidy: step, m, metric, layer, value
    train_log: pd.DataFrame        # step, loss, grad_norm (one row per optimizer update)
    meta: dict                     # wall time, steps/s, versions
    cache_path: Optional[Path] = field(default=None, repr=False)
    summary_path: Optional[Path] = field(default=None, repr=False)

    @property
    def last_step(self) -> int:
        """The step training ended at: ``n_steps``, or earlier after an early stop."""
        return int(self.meta.get("last_step", self.config.train.n_steps))

    @property
    def reached_at(self) -> Optional[int]:
        """First evaluated step with held-out accuracy >= ``early_stop_accuracy`` (or None)."""
        return self.meta.get("reached_at")

    @property
    def snapshot_steps(self) -> np.ndarray:
        """Steps of the stored snapshots ``[n_snapshots]`` (up to :attr:`last_step`)."""
        steps = snapshot_steps(self.config)
        return steps[steps <= self.last_step]

    @property
    def fingerprints(self) -> dict[str, np.ndarray]:
        """The arrays of ``fingerprints.npz`` (algorithmic tasks): ``steps [R]``, ``heldout
        [R, Q]``, ``heldout_accuracy [R]``, optionally ``train [R, Q]`` and ``sliced [R, J·Q]``,
        ``quantiles [Q]``, the probe and split indices."""
        path = (self.summary_path or _results_run_dir(self.key)) / "fingerprints.npz"
        if not path.exists():
            raise FileNotFoundError(f"run {self.key}: no fingerprints.npz (not an algorithmic "
                                    f"task, or a run stored before fingerprints existed)")
        _verify(path, self.key, self.meta)
        return _read_file(path, self.key, lambda p: _load_npz(p))

    @property
    def snapshot_index(self) -> list[tuple[int, str]]:
        """(layer, matrix) of axes 1-2 of :attr:`snapshots`."""
        return snapshot_index(self.config)

    @property
    def snapshots(self) -> np.ndarray:
        """Memory-mapped ``[n_snapshots, n_layers, 4, d, d]`` float32 (W_Q, W_K, W_V, W_O)."""
        return self._array("snapshots.npy")[:len(self.snapshot_steps)]

    @property
    def params(self) -> np.ndarray:
        """Memory-mapped ``[n_snapshots, n_params]`` float32 (needs ``store_full_params``)."""
        return self._array("params.npy")[:len(self.snapshot_steps)]

    @property
    def updates(self) -> np.ndarray:
        """Memory-mapped ``[n_snapshots - 1, n_params]`` float32: row ``i`` is the single
        optimizer update applied right after snapshot ``i`` (needs ``store_full_params``)."""
        return self._array("updates.npy")[:len(self.snapshot_steps) - 1]

    def model_at(self, index: int) -> Transformer:
        """The model after ``snapshot_steps[index]`` updates, in eval mode (needs
        ``store_full_params``)."""
        params = self.params
        if not -len(params) <= index < len(params):
            raise ValueError(f"index: must be in [0, {len(params)}), got {index}")
        model = Transformer.for_task(self.config.model, self.config.task)
        return model.load_flat_parameters(np.array(params[index], dtype=np.float32)).eval()

    def final_state_dict(self) -> dict:
        """The trained model's ``state_dict``."""
        return _read_file(self._heavy("final_model.pt"), self.key,
                          lambda p: torch.load(p, weights_only=True))

    def _array(self, name: str) -> np.ndarray:
        path = self._heavy(name)
        array = _read_file(path, self.key, lambda p: np.load(p, mmap_mode="r"))
        if array.dtype != np.float32 or array.ndim < 2:
            raise CorruptFile(path, self.key, f"expected a float32 array of >= 2 axes, got "
                                              f"{array.dtype} {array.shape}",
                              _heavy_recovery(path.parent))
        return array

    def _heavy(self, name: str) -> Path:
        path = (self.cache_path or _cache_run_dir(self.key)) / name
        if not path.exists():
            raise CacheMiss(f"run {self.key}: {name} is not in the cache ({path}); the committed "
                            f"results hold summaries only. Recompute it with "
                            f"load_or_train(cfg, trajectories=True) or `make study`.")
        _verify(path, self.key, self.meta)
        return path


def run_key(cfg: RunConfig) -> str:
    """Cache key of a run (config + schema version)."""
    return cfg.key(SCHEMA_VERSION)


def _cache_run_dir(key: str) -> Path:
    return paths.cache_dir() / "runs" / key


def _results_run_dir(key: str) -> Path:
    return paths.results_dir() / "runs" / key


def heavy_files(cfg: RunConfig) -> tuple[str, ...]:
    """The weight files a finished run of ``cfg`` keeps in the cache."""
    full = ("params.npy", "updates.npy") if cfg.train.store_full_params else ()
    return ("snapshots.npy", "final_model.pt", *full)


def find_run(cfg: RunConfig, trajectories: bool = False) -> Optional[Run]:
    """The cached run of ``cfg`` or None (with ``trajectories``: only if the cache has weights).

    Reading repairs what a crash left (see the module docstring): a finished run missing from
    ``data/results`` is republished.  A damaged summary copy falls back to the other copy
    (:class:`DamagedCopyWarning`); both damaged raises :class:`CorruptFile`."""
    key = run_key(cfg)
    _open_store()
    heavy, results = _cache_run_dir(key), _results_run_dir(key)
    if _needs_repair(key):
        with key_lock(_lock_file(key)):
            _repair(key)
    # a copy is there when its folder is (folders are only ever renamed in complete)
    in_cache, in_results = heavy.is_dir(), results.is_dir()
    if trajectories and not (in_cache and all((heavy / name).exists()
                                              for name in heavy_files(cfg))):
        return None     # not cached, or cached by a version that stored less: retrain
    errors: list[CorruptFile] = []
    for folder in [f for f, present in ((heavy, in_cache), (results, in_results)) if present]:
        try:
            if not (folder / "meta.json").exists():
                raise CorruptFile(folder / "meta.json", key, "missing", _recovery(folder))
            run = _read_run(cfg, key, folder, heavy if in_cache else None)
        except CorruptFile as error:
            errors.append(error)
            continue
        for error in errors:
            warnings.warn(f"{error} -- read the intact copy in {folder} instead",
                          DamagedCopyWarning, stacklevel=2)
        if folder == heavy and in_results:
            _check_results_copy(cfg, key, heavy, results)
        return run
    if len(errors) > 1:
        raise CorruptFile(errors[0].path, key, f"{errors[0].problem}; the other copy is damaged "
                          f"too: {errors[1].path} ({errors[1].problem})",
                          f"delete {heavy} and {results}, then retrain")
    if errors:
        raise errors[0]
    return None


def _check_results_copy(cfg: RunConfig, key: str, heavy: Path, results: Path) -> None:
    """The cache copy was read: verify the results copy too, and republish a damaged one from
    the intact cache copy (with a :class:`DamagedCopyWarning`)."""
    try:
        if not (results / "meta.json").exists():
            raise CorruptFile(results / "meta.json", key, "missing", _recovery(results))
        _read_run(cfg, key, results, heavy)
    except CorruptFile as error:
        warnings.warn(f"{error} -- republished it from the intact cache copy {heavy}",
                      DamagedCopyWarning, stacklevel=3)
        with key_lock(_lock_file(key)):
            _publish(heavy, results)


def _read_run(cfg: RunConfig, key: str, folder: Path, heavy: Optional[Path]) -> Run:
    """The run stored in ``folder`` (a cache or results copy), every summary file verified."""
    meta = _read_meta(folder, key)
    for name in SUMMARY_FILES + OPTIONAL_SUMMARY_FILES:
        if name in METRICS_FILES:
            continue
        if (folder / name).exists():
            _verify(folder / name, key, meta)
    metrics_path = _metrics_file(folder, key)
    _verify(metrics_path, key, meta)
    config_path = folder / "config.json"
    # through from_dict, so fields added after a run was stored compare at their defaults
    stored = _read_file(config_path, key, lambda p: RunConfig.from_dict(
        json.loads(p.read_text())).to_dict())
    if json.loads(json.dumps(stored)) != json.loads(json.dumps(cfg.to_dict())):
        raise CorruptFile(config_path, key, "the stored config differs from the requested one "
                          "(a hash collision or a hand-edited file)", _recovery(folder))
    log = _read_file(folder / "train_log.npz", key, _load_npz)
    train_log = _read_file(folder / "train_log.npz", key, lambda p: pd.DataFrame(
        {"step": np.arange(1, len(log["loss"]) + 1), "loss": log["loss"],
         "grad_norm": log["grad_norm"]}))
    metrics = _read_file(metrics_path, key, pd.read_csv)
    if not {"step", "m", "metric", "layer", "value"} <= set(metrics.columns):
        raise CorruptFile(metrics_path, key, f"columns {list(metrics.columns)} lack step, m, "
                          f"metric, layer, value", _recovery(folder))
    return Run(cfg, key, metrics, train_log, meta, heavy, folder)


def _metrics_file(folder: Path, key: str = "") -> Path:
    """The run's metrics table: ``metrics.csv.gz``, or a plain ``metrics.csv`` of old runs."""
    for name in METRICS_FILES:
        if (folder / name).exists():
            return folder / name
    raise CorruptFile(folder / METRICS_FILES[0], key or folder.name, "missing (nor a plain "
                      "metrics.csv)", _recovery(folder))


# ---- integrity ---------------------------------------------------------------------------------
def _recovery(folder: Path) -> str:
    """How to recover from a damaged file in the run folder ``folder``."""
    if folder.parent == paths.results_dir() / "runs":
        return (f"restore the committed copy (`git checkout -- {folder}`) or delete {folder}; "
                f"the next load republishes it from the cache copy if one exists, else retrains")
    return _heavy_recovery(folder)


def _heavy_recovery(folder: Path) -> str:
    return (f"delete {folder} (the committed summaries in data/results stay) and reload with "
            f"load_or_train(cfg, trajectories=True) to retrain the weights")


def _read_file(path: Path, key: str, reader: Callable[[Path], Any]) -> Any:
    """``reader(path)``, any failure to read raised as :class:`CorruptFile`."""
    try:
        return reader(path)
    except CorruptFile:
        raise
    except _READ_ERRORS as error:
        raise CorruptFile(path, key, f"{type(error).__name__}: {error}",
                          _recovery(path.parent)) from error


def _load_npz(path: Path) -> dict:
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


def _meta_digest(meta: dict) -> str:
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read_meta(folder: Path, key: str) -> dict:
    path = folder / "meta.json"
    meta = _read_file(path, key, lambda p: json.loads(p.read_text()))
    if not isinstance(meta, dict):
        raise CorruptFile(path, key, f"not a JSON object: {type(meta).__name__}",
                          _recovery(folder))
    if "meta_sha256" in meta and meta["meta_sha256"] != _meta_digest(meta):
        raise CorruptFile(path, key, "its content does not match its own checksum (meta_sha256)",
                          _recovery(folder))
    return meta


# checksums verified in this process: (path, size, mtime_ns) -> digest (weights are large)
_VERIFIED: dict[tuple, str] = {}


def _verify(path: Path, key: str, meta: dict) -> None:
    """Check ``path`` against ``meta["checksums"]`` (runs stored before checksums: no check)."""
    expected = meta.get("checksums", {}).get(path.name)
    if expected is None:
        return
    try:
        stat = path.stat()
        memo = (str(path), stat.st_size, stat.st_mtime_ns)
        if _VERIFIED.get(memo) != expected:
            actual = sha256_file(path)
            if actual != expected:
                raise CorruptFile(path, key, f"SHA-256 {actual[:12]}… differs from the "
                                             f"{expected[:12]}… recorded in meta.json",
                                  _recovery(path.parent))
            _VERIFIED[memo] = expected
    except OSError as error:
        raise CorruptFile(path, key, f"{type(error).__name__}: {error}",
                          _recovery(path.parent)) from error


def _seal_meta(folder: Path, meta: dict) -> None:
    """Write ``meta.json`` with the checksums of every other file in ``folder`` and its own."""
    meta["checksums"] = {p.name: sha256_file(p) for p in sorted(folder.iterdir())
                         if p.is_file() and p.name not in ("meta.json", "checkpoint.pt")
                         and not p.name.startswith(".")}
    meta.pop("meta_sha256", None)
    meta["meta_sha256"] = _meta_digest(meta)
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1))


def add_checksums(folder: Path) -> bool:
    """Seal a run folder stored before checksums existed (after checking that it reads);
    returns whether it changed."""
    meta = json.loads((folder / "meta.json").read_text())
    if "meta_sha256" in meta:
        return False
    _seal_meta(folder, meta)
    return True


# ---- recovery ----------------------------------------------------------------------------------
def _lock_file(key: str) -> Path:
    return paths.cache_dir() / "runs" / ".locks" / f"{key}.lock"


_OPENED: set = set()
_KEY_HEX = set("0123456789abcdef")


def _leftovers(key: str) -> list[Path]:
    """What an interrupted train → move → publish of ``key`` may have left behind."""
    cache, results = _cache_run_dir(key), _results_run_dir(key)
    found = [*cache.parent.glob(f"{key}.old-*"), *results.parent.glob(f"{key}.old-*"),
             *results.parent.glob(f"{key}.publish-*"), *results.parent.glob(f"{key}.tmp*")]
    if (partial_run_dir(key) / "meta.json").exists():
        found.append(partial_run_dir(key))
    return found


def _needs_repair(key: str) -> bool:
    cache, results = _cache_run_dir(key), _results_run_dir(key)
    return bool(_leftovers(key)) or ((cache / "meta.json").exists()
                                     and not (results / "meta.json").exists())


def _repair(key: str) -> None:
    """Finish or undo what an interrupted train → move → publish of ``key`` left (the key's lock
    held): a finished ``.partial`` is moved in, folders moved aside are restored (or removed when
    their replacement is in place), staging folders removed, and a finished cache copy missing
    from the results republished."""
    cache, results, partial = _cache_run_dir(key), _results_run_dir(key), partial_run_dir(key)
    if (partial / "meta.json").exists():        # summaries written: finished, not yet moved
        (partial / "checkpoint.pt").unlink(missing_ok=True)
        _swap_in(partial, cache, "cache")
    for target in (cache, results):
        for aside in sorted(target.parent.glob(f"{key}.old-*")):
            if target.exists():
                shutil.rmtree(aside)
            else:
                os.replace(aside, target)
    for staging in [*results.parent.glob(f"{key}.publish-*"), *results.parent.glob(f"{key}.tmp*")]:
        shutil.rmtree(staging)
    if (cache / "meta.json").exists() and not (results / "meta.json").exists():
        if results.is_dir():        # folders are renamed in complete: this one was damaged
            warnings.warn(f"{key}: {results / 'meta.json'} is missing -- republished the run "
                          f"from the intact cache copy {cache}", DamagedCopyWarning, stacklevel=3)
        _publish(cache, results)


def _open_store() -> None:
    """Once per process and store location: repair every key a crash left unfinished (skipping
    keys whose lock another process holds: they are being written now)."""
    where = (str(paths.cache_dir()), str(paths.results_dir()))
    if where in _OPENED:
        return
    _OPENED.add(where)
    keys = set()
    for folder in (paths.cache_dir() / "runs", paths.results_dir() / "runs"):
        if folder.is_dir():
            for entry in folder.iterdir():
                stem, _, rest = entry.name.partition(".")
                if rest and len(stem) == 16 and set(stem) <= _KEY_HEX and rest != "partial" \
                        or rest == "partial" and (entry / "meta.json").exists():
                    keys.add(stem)
    for key in sorted(keys):
        with try_key_lock(_lock_file(key)) as free:
            if free and _needs_repair(key):
                _repair(key)


def load_or_train(cfg: RunConfig, trajectories: bool = False, progress: bool = True) -> Run:
    """The run of ``cfg``: from ``data/results`` or ``data/cache``, training only on a miss.

    ``trajectories=True`` also requires the weight snapshots (cache only).  With
    ``MODADD_NO_TRAIN=1`` a miss raises :class:`CacheMiss` naming the key.
    """
    return load_or_train_many([cfg], n_workers=1, trajectories=trajectories,
                              progress=progress)[0]


def load_or_train_many(cfgs: Iterable[RunConfig], n_workers: Optional[int] = None,
                       trajectories: bool = False, progress: bool = True,
                       ensemble: bool = False, device: str = "cpu") -> list[Run]:
    """Runs of all ``cfgs``, training the missing ones in parallel processes (one thread each).

    ``n_workers`` defaults to ``MODADD_WORKERS`` or the number of CPU cores.  ``ensemble=True``
    first trains missing runs that differ only by seed as seed ensembles in this process
    (:func:`modadd.ensemble.train_and_store_ensembles`; stored exactly like sequential runs,
    equal to them up to float rounding); the rest trains as usual.  ``device``: where missing
    runs train (:func:`modadd.train.train`; keys and stored results do not depend on it).
    """
    cfgs = list(cfgs)
    keys = [run_key(c) for c in cfgs]
    found = {i: find_run(c, trajectories) for i, c in enumerate(cfgs)}
    missing = [i for i, run in found.items()
               if run is None and keys.index(keys[i]) == i]  # a duplicate config trains once
    if missing and not paths.training_allowed():
        absent = ", ".join(keys[i] for i in missing)
        raise CacheMiss(f"MODADD_NO_TRAIN=1 and {len(missing)} run(s) are not cached: {absent} "
                        f"(results dir {paths.results_dir()}); run `make study` or unset "
                        f"MODADD_NO_TRAIN")
    workers = n_workers or int(os.environ.get("MODADD_WORKERS", os.cpu_count() or 1))
    todo = [cfgs[i] for i in missing]
    if ensemble and todo:
        from .ensemble import train_and_store_ensembles
        todo = train_and_store_ensembles(todo, progress, device=device)
    _train_missing(todo, max(1, min(workers, len(todo))), progress, device)
    return [found[i] or find_run(cfgs[i], trajectories) for i in range(len(cfgs))]


def _train_missing(cfgs: list[RunConfig], workers: int, progress: bool,
                   device: str = "cpu") -> None:
    if not cfgs:
        return
    total = sum(c.train.n_steps for c in cfgs)
    with tqdm(total=total, desc=f"training {len(cfgs)} run(s)", unit="step",
              disable=not progress, mininterval=1.0) as bar:
        if workers == 1:
            for cfg in cfgs:
                train_and_store(cfg, bar.update, device)
            return
        _train_in_pool(cfgs, workers, bar, device)


def _train_in_pool(cfgs: list[RunConfig], workers: int, bar: tqdm, device: str = "cpu") -> None:
    context = multiprocessing.get_context("spawn")
    with single_threaded_children(), context.Manager() as manager:
        updates = manager.Queue()
        with futures.ProcessPoolExecutor(workers, mp_context=context,
                                         initializer=_worker_init,
                                         initargs=(updates, workers)) as pool:
            pending = {pool.submit(_worker_train, c.to_dict(), str(device)) for c in cfgs}
            while pending:
                done, pending = futures.wait(pending, timeout=0.5)
                _drain(updates, bar)
                for job in done:
                    job.result()
            _drain(updates, bar)


def _drain(updates, bar: tqdm) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            bar.update(updates.get_nowait())


_WORKER_QUEUE = None
# training processes running side by side in this process's pool (recorded in meta.json: with
# more processes than cores, wall time overstates a run's core time; cpu_s does not)
_CONCURRENT = 1


def _worker_init(updates, workers: int = 1) -> None:
    global _WORKER_QUEUE, _CONCURRENT
    _WORKER_QUEUE, _CONCURRENT = updates, workers
    torch.set_num_threads(1)
    die_with_parent()           # a killed driver must not leave its trainers running


def _worker_train(cfg_dict: dict, device: str = "cpu") -> str:
    pending = [0]

    def report(n: int) -> None:
        pending[0] += n
        if pending[0] >= 100:
            _WORKER_QUEUE.put(pending[0])
            pending[0] = 0

    cfg = RunConfig.from_dict(cfg_dict)
    train_and_store(cfg, report, device)
    _WORKER_QUEUE.put(pending[0])
    return run_key(cfg)


def train_and_store(cfg: RunConfig, progress: Optional[Callable[[int], None]] = None,
                    device: str = "cpu") -> Path:
    """Train ``cfg`` (resuming a partial run) on ``device`` and publish it to the cache and
    results dirs.  Holds the key's lock throughout: a second process training the same key waits
    and then finds the run finished (no second training)."""
    key = run_key(cfg)
    with key_lock(_lock_file(key)):
        _repair(key)
        final = _cache_run_dir(key)
        if _cache_finished(cfg):
            if progress is not None:
                progress(cfg.train.n_steps)     # trained by another process meanwhile
            return final
        partial = partial_run_dir(key)
        try:
            log = train(cfg, partial, progress=progress, device=device)
        except NonFiniteTraining:
            shutil.rmtree(partial, ignore_errors=True)      # nothing half-written stays
            raise
        return store_trained(cfg, log, partial)


def _cache_finished(cfg: RunConfig) -> bool:
    """Whether the cache holds the finished run of ``cfg`` with all its weight files."""
    final = _cache_run_dir(run_key(cfg))
    return (final / "meta.json").exists() and all((final / n).exists() for n in heavy_files(cfg))


def partial_run_dir(key: str) -> Path:
    """Where run ``key`` trains (``<key>.partial`` beside its cache folder) until published."""
    return _cache_run_dir(key).with_name(key + ".partial")


def store_trained(cfg: RunConfig, log: dict, partial: Path) -> Path:
    """Publish the run of ``cfg`` trained in ``partial`` (logs ``log``, as ``train`` returns
    them) to the cache and results dirs; returns its cache folder.  The caller holds the key's
    lock (:func:`train_and_store`, :func:`modadd.ensemble.train_and_store_ensembles`).

    Order: summaries and the sealed ``meta.json`` into ``partial`` (from then on the run counts
    as finished: a crash is completed by the next read), checkpoint removed, ``partial`` swapped
    in as the cache folder, summaries swapped into the results folder."""
    key = run_key(cfg)
    final = _cache_run_dir(key)
    _write_summaries(cfg, key, log, partial)
    fault("store:summaries-written")
    (partial / "checkpoint.pt").unlink(missing_ok=True)
    fault("store:checkpoint-removed")
    _swap_in(partial, final, "cache")
    _publish(final, _results_run_dir(key))
    return final


def _swap_in(source: Path, target: Path, label: str) -> None:
    """Rename ``source`` to ``target``; an existing ``target`` is first moved aside (to
    ``<target>.old-XXXX``) and removed only once ``source`` is in place, so a crash at any
    point leaves a complete copy (restored by :func:`_repair`)."""
    aside = None
    if target.exists():
        aside = target.with_name(f"{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, aside)
        fault(f"store:{label}-aside")
    os.replace(source, target)
    fault(f"store:{label}-swapped")
    if aside is not None:
        shutil.rmtree(aside)


def _write_summaries(cfg: RunConfig, key: str, log: dict, folder: Path) -> None:
    atomic_write_text(folder / "config.json", json.dumps(cfg.to_dict(), indent=1, sort_keys=True))
    columns = ["step", "m", "metric", "layer", "value"]
    if any("name" in row for row in log["metrics"]):      # diagnostics: per-tensor/point name
        columns.insert(4, "name")
    metrics = pd.DataFrame(log["metrics"], columns=columns)
    _gzip_text(folder / "metrics.csv.gz", metrics.to_csv(index=False, float_format="%.6g"))
    last = int(log.get("last_step", cfg.train.n_steps))
    _save_npz(folder / "train_log.npz", {"loss": log["train_loss"][:last],
                                         "grad_norm": log["grad_norm"][:last]})
    for name, arrays in log.get("arrays", {}).items():
        _save_npz(folder / name, arrays)
    final_acc = metrics[(metrics.metric == "accuracy") & (metrics.step == last)]
    meta = {"key": key, "schema_version": SCHEMA_VERSION, "wall_s": round(log["wall_s"], 2),
            "steps_per_s": round(last / max(log["wall_s"], 1e-9), 2),
            **({"last_step": last, "reached_at": log.get("reached_at")}
               if last != cfg.train.n_steps or log.get("reached_at") is not None else {}),
            **({"cpu_s": round(log["cpu_s"], 2)} if "cpu_s" in log else {}),
            "precision": cfg.train.precision, "device": log.get("device", "cpu"),
            "cpu_count": os.cpu_count(), "concurrent_processes": _CONCURRENT,
            "ensemble_size": log.get("ensemble_size", 1),   # seeds trained as one model
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "processor": platform.processor(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "final_accuracy": {str(int(r.m)): r.value for r in final_acc.itertuples()}}
    _seal_meta(folder, meta)       # last: its presence marks the run as finished


def _save_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def _publish(source: Path, target: Path) -> None:
    """Copy the summary files to the committed results folder: into a staging folder, then
    swapped in (:func:`_swap_in`).  The caller holds the key's lock."""
    staging = staging_dir(target, "publish")
    for name in SUMMARY_FILES + OPTIONAL_SUMMARY_FILES:
        if name in METRICS_FILES:
            name = _metrics_file(source).name
        if name in SUMMARY_FILES or (source / name).exists():
            shutil.copyfile(source / name, staging / name)     # umask permissions, not 0600
            os.chmod(staging / name, file_mode())
    fault("store:staged")
    _swap_in(staging, target, "results")


# ---- analysis cache ----------------------------------------------------------------------------
def analysis_key(name: str, version: int, inputs: Any) -> str:
    """Key of an analysis: its name, version, JSON-able inputs (run keys, parameters), schema."""
    text = json.dumps({"name": name, "version": version, "inputs": inputs,
                       "schema": SCHEMA_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_parallel(worker: Callable, jobs: list, workers: int = 1, desc: str = "jobs") -> None:
    """Call ``worker(job)`` for every job, in ``workers`` spawned processes with one torch thread
    each (or in this process when ``workers == 1`` or there is one job), with a progress bar.
    ``worker`` must be a module-level function; its return values are discarded (workers fill
    the analysis cache)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if workers == 1 or len(jobs) <= 1:
        for job in tqdm(jobs, desc=desc, disable=not jobs):
            worker(job)
        return
    with single_threaded_children(), \
            ProcessPoolExecutor(min(workers, len(jobs)), initializer=_analysis_worker_init,
                                mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in tqdm(pool.map(worker, jobs), total=len(jobs), desc=desc):
            pass


def _analysis_worker_init() -> None:
    torch.set_num_threads(1)
    die_with_parent()


# the thread-count variables of the BLAS/OpenMP runtimes numpy, scipy and torch load
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """While open, ``os.environ`` holds ``values`` (restored afterwards, absent ones removed)."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def single_threaded_children():
    """While open, processes spawned from here start with one BLAS/OpenMP thread (numpy's
    OpenBLAS otherwise starts one spinning thread per core in every worker: with one worker per
    core they compete with each other, e.g. in scipy's eigsh).  This process is unaffected
    (its libraries read the variables once, at import)."""
    return environment({name: "1" for name in _THREAD_VARIABLES})


def is_cached(name: str, version: int, inputs: Any) -> bool:
    """Whether :func:`cached` would read ``name`` with these inputs from disk."""
    stem = paths.results_dir() / "analysis" / f"{name}-{analysis_key(name, version, inputs)}"
    return any(stem.with_suffix(suffix).exists() for suffix in _READERS)


def cached(name: str, version: int, inputs: Any, compute: Callable[[], Any]) -> Any:
    """Result of ``compute()`` cached under ``data/results/analysis``.

    The result must be a DataFrame (stored as gzip-compressed CSV), a dict of numpy arrays (NPZ)
    or a JSON-able dict (gzip-compressed JSON). ``inputs`` must name everything the result depends on (e.g. run keys); bump
    ``version`` when the analysis code changes.  Under ``MODADD_NO_TRAIN=1`` a miss raises
    :class:`CacheMiss` instead of computing (a book build reads its inputs, never writes them).
    """
    stem = paths.results_dir() / "analysis" / f"{name}-{analysis_key(name, version, inputs)}"
    if not any(stem.with_suffix(suffix).exists() for suffix in _READERS):
        if not paths.training_allowed():
            raise CacheMiss(f"MODADD_NO_TRAIN=1 and analysis {stem.name} is not cached in "
                            f"{stem.parent}: compute it without MODADD_NO_TRAIN (a book build "
                            f"must not write its own inputs)")
        _write_result(stem, compute())
    # always read from disk, so a miss returns exactly what a later hit will
    suffix = next(s for s in _READERS if stem.with_suffix(s).exists())
    return read_result(stem.with_suffix(suffix))


def read_result(path: Path) -> Any:
    """An analysis result file, any failure to read it raised as :class:`CorruptFile`.  (The
    gzip and zip containers carry CRC-32 checksums, so a damaged byte is an error, never a
    silently wrong value.)"""
    suffix = next(s for s in _READERS if path.name.endswith(s))
    try:
        return _READERS[suffix](path)
    except _READ_ERRORS as error:
        raise CorruptFile(path, path.name.split(".")[0], f"{type(error).__name__}: {error}",
                          f"delete {path} and rerun the analysis to recompute it (committed "
                          f"results: `git checkout -- {path}`)") from error


def _gzip_text(path: Path, text: str) -> None:
    """Write ``text`` gzip-compressed (no name or timestamp in the header, so equal text gives equal
    bytes), atomically."""
    import gzip
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                   mtime=0) as handle:
            handle.write(text.encode())


def _read_gzip_text(path: Path) -> str:
    import gzip
    with gzip.open(path, "rt") as handle:
        return handle.read()


def _write_result(stem: Path, result: Any) -> None:
    if isinstance(result, pd.DataFrame):
        _gzip_text(stem.with_suffix(".csv.gz"), result.to_csv(index=False))
    elif isinstance(result, dict) and result and all(isinstance(v, np.ndarray)
                                                     for v in result.values()):
        with atomic_path(stem.with_suffix(".npz")) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **result)
    elif isinstance(result, dict):
        _gzip_text(stem.with_suffix(".json.gz"), json.dumps(result, indent=1))
    else:
        raise TypeError(f"cached: result must be a DataFrame, a dict of arrays or a JSON dict, "
                        f"got {type(result).__name__}")


# results are written gzip-compressed (CSV and JSON); plain files from before are still read
_READERS = {
    ".csv.gz": pd.read_csv,
    ".csv": pd.read_csv,
    ".npz": _load_npz,
    ".json.gz": lambda p: json.loads(_read_gzip_text(p)),
    ".json": lambda p: json.loads(p.read_text()),
}


# ---- command line: verify and seal the store ---------------------------------------------------
def verify_store(seal: bool = False, progress: bool = True) -> pd.DataFrame:
    """Read every run folder of the cache and the results (each against its own stored config)
    and report one row per folder: ``key``, ``copy`` (cache | results), ``status`` (ok |
    damaged | sealed | unsealed), ``detail``.  ``seal``: add checksums to the folders stored
    before checksums existed (only after they read without error)."""
    rows = []
    folders = [(copy, f) for copy, root in (("cache", paths.cache_dir()),
                                          ("results", paths.results_dir()))
               for f in sorted((root / "runs").glob("?" * 16)) if f.is_dir()]
    for copy, folder in tqdm(folders, desc="verifying runs", disable=not progress):
        key = folder.name
        try:
            meta = _read_meta(folder, key)
            cfg = _read_file(folder / "config.json", key,
                             lambda p: RunConfig.from_dict(json.loads(p.read_text())))
            if run_key(cfg) != key:
                raise CorruptFile(folder / "config.json", key, f"its config hashes to "
                                  f"{run_key(cfg)}", _recovery(folder))
            _read_run(cfg, key, folder, None)
            for name in meta.get("checksums", {}):
                if (folder / name).exists():
                    _verify(folder / name, key, meta)
        except CorruptFile as error:
            rows.append({"key": key, "copy": copy, "status": "damaged", "detail": str(error)})
            continue
        status = "ok" if "meta_sha256" in meta else "unsealed"
        if status == "unsealed" and seal:
            with key_lock(_lock_file(key)):
                add_checksums(folder)
            status = "sealed"
        rows.append({"key": key, "copy": copy, "status": status, "detail": ""})
    return pd.DataFrame(rows, columns=["key", "copy", "status", "detail"])


def main(argv: Optional[list] = None) -> int:
    """``python -m modadd.store verify [--seal]``: check every stored run (exit 1 if any is
    damaged); ``--seal`` adds checksums to runs stored before checksums existed."""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m modadd.store",
                                     description="Verify (and seal) the run store.")
    parser.add_argument("command", choices=["verify"])
    parser.add_argument("--seal", action="store_true",
                        help="add checksums to intact runs stored before checksums existed")
    args = parser.parse_args(argv)
    table = verify_store(seal=args.seal)
    counts = table.groupby(["copy", "status"]).size()
    print(counts.to_string())
    for row in table[table.status == "damaged"].itertuples():
        print(f"damaged: {row.detail}")
    return int((table.status == "damaged").any())


if __name__ == "__main__":
    raise SystemExit(main())
