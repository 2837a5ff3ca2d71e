"""The run store: the on-disk layout of a run, reading (verified), publishing and repair.

A run is identified by ``RunConfig.key(SCHEMA_VERSION)``.  Layout::

    data/cache/runs/<key>.partial/   while training (checkpoint.pt, snapshots.npy, ...)
    data/cache/runs/<key>/           finished: + config.json metrics.csv.gz train_log.npz
                                     meta.json final_model.pt snapshots.npy [params.npy]
    data/results/runs/<key>/         committed summaries: config.json metrics.csv.gz
                                     train_log.npz meta.json (no weights; runs stored before
                                     compression hold a plain metrics.csv, read alike)

Bump ``SCHEMA_VERSION`` whenever training behaviour or the stored format changes: keys then
change and stale results can never load silently.

Training lives in :mod:`modadd.runner`, the analysis cache in :mod:`modadd.analysis_cache`;
:mod:`modadd.store` re-exports all three.

Length: longer than ~400 lines because it owns every invariant of a run's folders (what is
written in which order, what a finished run is, what a crash may leave and how it is repaired),
and they are only checkable side by side.

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

import hashlib
import json
import os
import platform
import shutil
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from . import paths
from .config import RunConfig
from .durable import (READ_ERRORS, CacheMiss, CorruptFile, atomic_path, atomic_write_text, fault,
                      file_mode, key_lock, load_npz, sha256_file, staging_dir, try_key_lock,
                      write_gzip_text)
from .model import Transformer
from .train import snapshot_index, snapshot_steps

SCHEMA_VERSION = 1
SUMMARY_FILES = ("config.json", "metrics.csv.gz", "train_log.npz", "meta.json")
# runs stored before metrics were compressed hold a plain metrics.csv; both are read
METRICS_FILES = ("metrics.csv.gz", "metrics.csv")
OPTIONAL_SUMMARY_FILES = ("fingerprints.npz",)   # algorithmic tasks


class DamagedCopyWarning(UserWarning):
    """One copy of a run's summaries was damaged and the other copy was read instead."""


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
        path = (self.summary_path or results_run_dir(self.key)) / "fingerprints.npz"
        if not path.exists():
            raise FileNotFoundError(f"run {self.key}: no fingerprints.npz (not an algorithmic "
                                    f"task, or a run stored before fingerprints existed)")
        _verify(path, self.key, self.meta)
        return _read_file(path, self.key, lambda p: load_npz(p))

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
        path = (self.cache_path or cache_run_dir(self.key)) / name
        if not path.exists():
            raise CacheMiss(f"run {self.key}: {name} is not in the cache ({path}); the committed "
                            f"results hold summaries only. Recompute it with "
                            f"load_or_train(cfg, trajectories=True) or `make study`.")
        _verify(path, self.key, self.meta)
        return path


def require_parameter_snapshots(run, purpose: str) -> None:
    """Raise a ValueError unless ``run`` is an ``a ∘ b mod p`` run (a fixed training set) that
    stored its full parameter vectors (``store_full_params``): what ``purpose`` (e.g. "progress
    measures", "the LLC") is computed from, without retraining."""
    from .algorithmic import AlgorithmicTask
    cfg = run.config
    if not isinstance(cfg.task, AlgorithmicTask):
        raise ValueError(f"run {run.key}: {purpose} need an a∘b mod p task (a fixed training "
                         f"set), got {type(cfg.task).__name__}")
    if not cfg.train.store_full_params:
        raise ValueError(f"run {run.key}: stored no full-parameter snapshots "
                         f"(train.store_full_params=False), which {purpose} are computed from; "
                         f"train it with store_full_params=True (a different cache key) and load "
                         f"it with load_or_train(cfg, trajectories=True)")


def run_key(cfg: RunConfig) -> str:
    """Cache key of a run (config + schema version)."""
    return cfg.key(SCHEMA_VERSION)


def cache_run_dir(key: str) -> Path:
    return paths.cache_dir() / "runs" / key


def results_run_dir(key: str) -> Path:
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
    heavy, results = cache_run_dir(key), results_run_dir(key)
    if _needs_repair(key):
        with key_lock(lock_file(key)):
            repair(key)
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
        if "meta_sha256" in _verify_folder(results, key):
            return                  # sealed: its checksums vouch for every file (no re-parse)
        _read_run(cfg, key, results, heavy)
    except CorruptFile as error:
        warnings.warn(f"{error} -- republished it from the intact cache copy {heavy}",
                      DamagedCopyWarning, stacklevel=3)
        with key_lock(lock_file(key)):
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
    train_log = _read_file(folder / "train_log.npz", key, _train_log_frame)
    metrics = _read_file(metrics_path, key, pd.read_csv)
    if not {"step", "m", "metric", "layer", "value"} <= set(metrics.columns):
        raise CorruptFile(metrics_path, key, f"columns {list(metrics.columns)} lack step, m, "
                          f"metric, layer, value", _recovery(folder))
    return Run(cfg, key, metrics, train_log, meta, heavy, folder)


def _train_log_frame(path: Path) -> pd.DataFrame:
    log = load_npz(path)
    return pd.DataFrame({"step": np.arange(1, len(log["loss"]) + 1), "loss": log["loss"],
                         "grad_norm": log["grad_norm"]})


def _verify_folder(folder: Path, key: str) -> dict:
    """The folder's ``meta.json``, after checking every file it has a checksum for (a summary
    file it lists must be there; weight files live in the cache copy only)."""
    meta = _read_meta(folder, key)
    for name in meta.get("checksums", {}):
        if (folder / name).exists():
            _verify(folder / name, key, meta)
        elif name in SUMMARY_FILES + OPTIONAL_SUMMARY_FILES + METRICS_FILES:
            raise CorruptFile(folder / name, key, "missing", _recovery(folder))
    return meta


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
    except READ_ERRORS as error:
        raise CorruptFile(path, key, f"{type(error).__name__}: {error}",
                          _recovery(path.parent)) from error


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
def lock_file(key: str) -> Path:
    return paths.cache_dir() / "runs" / ".locks" / f"{key}.lock"


_OPENED: set = set()
_KEY_HEX = set("0123456789abcdef")


def _leftovers(key: str) -> list[Path]:
    """What an interrupted train → move → publish of ``key`` may have left behind."""
    cache, results = cache_run_dir(key), results_run_dir(key)
    found = [*cache.parent.glob(f"{key}.old-*"), *results.parent.glob(f"{key}.old-*"),
             *results.parent.glob(f"{key}.publish-*"), *results.parent.glob(f"{key}.tmp*")]
    if (partial_run_dir(key) / "meta.json").exists():
        found.append(partial_run_dir(key))
    return found


def _needs_repair(key: str) -> bool:
    cache, results = cache_run_dir(key), results_run_dir(key)
    return bool(_leftovers(key)) or ((cache / "meta.json").exists()
                                     and not (results / "meta.json").exists())


def repair(key: str) -> None:
    """Finish or undo what an interrupted train → move → publish of ``key`` left (the key's lock
    held): a finished ``.partial`` is moved in, folders moved aside are restored (or removed when
    their replacement is in place), staging folders removed, and a finished cache copy missing
    from the results republished."""
    cache, results, partial = cache_run_dir(key), results_run_dir(key), partial_run_dir(key)
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
        try:
            _publish(cache, results)
        except OSError as error:        # a read-only results folder: read the cache copy
            warnings.warn(f"{key}: could not republish the finished run to {results} "
                          f"({type(error).__name__}: {error}); reading the cache copy",
                          RuntimeWarning, stacklevel=3)


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
        with try_key_lock(lock_file(key)) as free:
            if free and _needs_repair(key):
                repair(key)



def cache_finished(cfg: RunConfig) -> bool:
    """Whether the cache holds the finished run of ``cfg`` with all its weight files."""
    final = cache_run_dir(run_key(cfg))
    return (final / "meta.json").exists() and all((final / n).exists() for n in heavy_files(cfg))


def partial_run_dir(key: str) -> Path:
    """Where run ``key`` trains (``<key>.partial`` beside its cache folder) until published."""
    return cache_run_dir(key).with_name(key + ".partial")


def store_trained(cfg: RunConfig, log: dict, partial: Path) -> Path:
    """Publish the run of ``cfg`` trained in ``partial`` (logs ``log``, as ``train`` returns
    them) to the cache and results dirs; returns its cache folder.  The caller holds the key's
    lock (:func:`train_and_store`, :func:`modadd.ensemble.train_and_store_ensembles`).

    Order: summaries and the sealed ``meta.json`` into ``partial`` (from then on the run counts
    as finished: a crash is completed by the next read), checkpoint removed, ``partial`` swapped
    in as the cache folder, summaries swapped into the results folder."""
    key = run_key(cfg)
    final = cache_run_dir(key)
    _write_summaries(cfg, key, log, partial)
    fault("store:summaries-written")
    (partial / "checkpoint.pt").unlink(missing_ok=True)
    fault("store:checkpoint-removed")
    _swap_in(partial, final, "cache")
    _publish(final, results_run_dir(key))
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
    write_gzip_text(folder / "metrics.csv.gz", metrics.to_csv(index=False, float_format="%.6g"))
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
            "cpu_count": os.cpu_count(), "concurrent_processes": log.get("concurrent_processes", 1),
            "ensemble_size": log.get("ensemble_size", 1),   # seeds trained as one model
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu": cpu_signature(),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "final_accuracy": {str(int(r.m)): r.value for r in final_acc.itertuples()}}
    _seal_meta(folder, meta)       # last: its presence marks the run as finished


def cpu_signature() -> str:
    """What decides a CPU run's float rounding beyond the code: the CPU's vendor and model
    (``/proc/cpuinfo``; ``platform.processor()`` elsewhere), the kernel set PyTorch dispatches
    to and PyTorch's version, e.g. ``"AuthenticAMD AMD EPYC / AVX512 / torch 2.13.0+cpu"``.
    Runs on hosts of one signature are expected to agree bit for bit; across hosts they part
    within a few steps by a unit in the last place (chapter 9 §7)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            name, _, value = line.partition(":")
            fields.setdefault(name.strip(), value.strip())
    except OSError:
        pass
    cpu = " ".join(v for v in (fields.get("vendor_id"), fields.get("model name")) if v)
    return (f"{cpu or platform.processor() or 'unknown CPU'} / "
            f"{torch.backends.cpu.get_cpu_capability()} / torch {torch.__version__}")


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
            meta = _verify_folder(folder, key)
            cfg = _read_file(folder / "config.json", key,
                             lambda p: RunConfig.from_dict(json.loads(p.read_text())))
            if run_key(cfg) != key:
                raise CorruptFile(folder / "config.json", key, f"its config hashes to "
                                  f"{run_key(cfg)}", _recovery(folder))
            _read_run(cfg, key, folder, None)
        except CorruptFile as error:
            rows.append({"key": key, "copy": copy, "status": "damaged", "detail": str(error)})
            continue
        status = "ok" if "meta_sha256" in meta else "unsealed"
        if status == "unsealed" and seal:
            with key_lock(lock_file(key)):
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
