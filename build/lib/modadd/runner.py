"""Training what is missing: ``load_or_train`` / ``load_or_train_many`` read runs from the store
(:mod:`modadd.runs`) and train the missing ones, in this process, in a spawned pool of one-thread
workers, or as seed ensembles (:mod:`modadd.ensemble`).  ``train_and_store`` holds the run key's
lock, so two processes asking for one run train it once."""
from __future__ import annotations

import concurrent.futures as futures
import contextlib
import multiprocessing
import os
import queue
import shutil
from pathlib import Path
from typing import Callable, Iterable, Optional

import torch
from tqdm.auto import tqdm

from . import paths
from .config import RunConfig
from .durable import CacheMiss, die_with_parent, key_lock
from .ensemble import train_and_store_ensembles
from .parallel import single_threaded_children
from .runs import (Run, cache_finished, cache_run_dir, find_run, lock_file, partial_run_dir,
                   repair, run_key, store_trained)
from .train import NonFiniteTraining, train


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
    with key_lock(lock_file(key)):
        repair(key)
        if cache_finished(cfg):
            if progress is not None:
                progress(cfg.train.n_steps)     # trained by another process meanwhile
            return cache_run_dir(key)
        partial = partial_run_dir(key)
        try:
            log = train(cfg, partial, progress=progress, device=device)
        except NonFiniteTraining:
            shutil.rmtree(partial, ignore_errors=True)      # nothing half-written stays
            raise
        log["concurrent_processes"] = _CONCURRENT
        return store_trained(cfg, log, partial)
