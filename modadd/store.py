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
"""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import hashlib
import json
import multiprocessing
import os
import platform
import queue
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import paths
from .config import RunConfig
from .model import Transformer
from .train import snapshot_index, snapshot_steps, train

SCHEMA_VERSION = 1
SUMMARY_FILES = ("config.json", "metrics.csv.gz", "train_log.npz", "meta.json")
# runs stored before metrics were compressed hold a plain metrics.csv; both are read
METRICS_FILES = ("metrics.csv.gz", "metrics.csv")
OPTIONAL_SUMMARY_FILES = ("fingerprints.npz",)   # algorithmic tasks


class CacheMiss(RuntimeError):
    """A result is not cached and ``MODADD_NO_TRAIN=1`` forbids computing it."""


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
        with np.load(path) as arrays:
            return dict(arrays)

    @property
    def snapshot_index(self) -> list[tuple[int, str]]:
        """(layer, matrix) of axes 1-2 of :attr:`snapshots`."""
        return snapshot_index(self.config)

    @property
    def snapshots(self) -> np.ndarray:
        """Memory-mapped ``[n_snapshots, n_layers, 4, d, d]`` float32 (W_Q, W_K, W_V, W_O)."""
        return np.load(self._heavy("snapshots.npy"), mmap_mode="r")[:len(self.snapshot_steps)]

    @property
    def params(self) -> np.ndarray:
        """Memory-mapped ``[n_snapshots, n_params]`` float32 (needs ``store_full_params``)."""
        return np.load(self._heavy("params.npy"), mmap_mode="r")[:len(self.snapshot_steps)]

    @property
    def updates(self) -> np.ndarray:
        """Memory-mapped ``[n_snapshots - 1, n_params]`` float32: row ``i`` is the single
        optimizer update applied right after snapshot ``i`` (needs ``store_full_params``)."""
        return np.load(self._heavy("updates.npy"), mmap_mode="r")[:len(self.snapshot_steps) - 1]

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
        return torch.load(self._heavy("final_model.pt"), weights_only=True)

    def _heavy(self, name: str) -> Path:
        path = (self.cache_path or _cache_run_dir(self.key)) / name
        if not path.exists():
            raise CacheMiss(f"run {self.key}: {name} is not in the cache ({path}); the committed "
                            f"results hold summaries only. Recompute it with "
                            f"load_or_train(cfg, trajectories=True) or `make study`.")
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
    """The cached run of ``cfg`` or None (with ``trajectories``: only if the cache has weights)."""
    key = run_key(cfg)
    heavy = _cache_run_dir(key)
    for folder in (heavy, _results_run_dir(key)):
        if (folder / "meta.json").exists():
            if trajectories and not all((heavy / name).exists() for name in heavy_files(cfg)):
                return None     # not cached, or cached by a version that stored less: retrain
            return _read_run(cfg, key, folder, heavy if heavy.exists() else None)
    return None


def _read_run(cfg: RunConfig, key: str, folder: Path, heavy: Optional[Path]) -> Run:
    # through from_dict, so fields added after a run was stored compare at their defaults
    stored = RunConfig.from_dict(json.loads((folder / "config.json").read_text())).to_dict()
    if json.loads(json.dumps(stored)) != json.loads(json.dumps(cfg.to_dict())):
        raise RuntimeError(f"run {key}: stored config in {folder} differs from the requested "
                           f"one (hash collision or hand-edited file); delete the folder")
    log = np.load(folder / "train_log.npz")
    train_log = pd.DataFrame({"step": np.arange(1, len(log["loss"]) + 1),
                              "loss": log["loss"], "grad_norm": log["grad_norm"]})
    return Run(cfg, key, pd.read_csv(_metrics_file(folder)), train_log,
               json.loads((folder / "meta.json").read_text()), heavy, folder)


def _metrics_file(folder: Path) -> Path:
    """The run's metrics table: ``metrics.csv.gz``, or a plain ``metrics.csv`` of old runs."""
    for name in METRICS_FILES:
        if (folder / name).exists():
            return folder / name
    raise FileNotFoundError(f"{folder}: no metrics.csv.gz (or metrics.csv)")


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
    results dirs."""
    partial = partial_run_dir(run_key(cfg))
    return store_trained(cfg, train(cfg, partial, progress=progress, device=device), partial)


def partial_run_dir(key: str) -> Path:
    """Where run ``key`` trains (``<key>.partial`` beside its cache folder) until published."""
    return _cache_run_dir(key).with_name(key + ".partial")


def store_trained(cfg: RunConfig, log: dict, partial: Path) -> Path:
    """Publish the run of ``cfg`` trained in ``partial`` (logs ``log``, as ``train`` returns
    them) to the cache and results dirs; returns its cache folder."""
    key = run_key(cfg)
    final = _cache_run_dir(key)
    _write_summaries(cfg, key, log, partial)
    (partial / "checkpoint.pt").unlink(missing_ok=True)
    if final.exists():
        shutil.rmtree(final)
    os.replace(partial, final)
    _publish(final, _results_run_dir(key))
    return final


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
    atomic_write_text(folder / "meta.json", json.dumps(meta, indent=1))


def _save_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)


def _publish(source: Path, target: Path) -> None:
    """Copy the summary files to the committed results folder, atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=target.name + ".tmp"))
    for name in SUMMARY_FILES + OPTIONAL_SUMMARY_FILES:
        if name in METRICS_FILES:
            name = _metrics_file(source).name
        if name in SUMMARY_FILES or (source / name).exists():
            shutil.copy2(source / name, staging / name)
    if target.exists():
        shutil.rmtree(target)
    os.replace(staging, target)


# ---- atomic writes -----------------------------------------------------------------------------
@contextlib.contextmanager
def atomic_path(path: Path):
    """Yield a temporary path beside ``path``; on success rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


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
            ProcessPoolExecutor(min(workers, len(jobs)), initializer=torch.set_num_threads,
                                initargs=(1,),
                                mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in tqdm(pool.map(worker, jobs), total=len(jobs), desc=desc):
            pass


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
    return _READERS[suffix](stem.with_suffix(suffix))


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
    ".npz": lambda p: dict(np.load(p)),
    ".json.gz": lambda p: json.loads(_read_gzip_text(p)),
    ".json": lambda p: json.loads(p.read_text()),
}
