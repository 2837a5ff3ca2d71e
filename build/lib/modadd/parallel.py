"""Processes: ``run_parallel`` (a spawned pool, one torch thread per worker, workers that die
with their parent), and the environment helpers the pools and the sweeps share."""
from __future__ import annotations

import contextlib
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import torch
from tqdm.auto import tqdm

from .durable import die_with_parent


def run_parallel(worker: Callable, jobs: list, workers: int = 1, desc: str = "jobs") -> None:
    """Call ``worker(job)`` for every job, in ``workers`` spawned processes with one torch thread
    each (or in this process when ``workers == 1`` or there is one job), with a progress bar.
    ``worker`` must be a module-level function; its return values are discarded (workers fill
    the analysis cache)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers: must be an integer >= 1, got {workers!r}")
    if workers == 1 or len(jobs) <= 1:
        for job in tqdm(jobs, desc=desc, disable=not jobs):
            worker(job)
        return
    with single_threaded_children(), \
            ProcessPoolExecutor(min(workers, len(jobs)), initializer=_worker_init,
                                mp_context=multiprocessing.get_context("spawn")) as pool:
        for _ in tqdm(pool.map(worker, jobs), total=len(jobs), desc=desc):
            pass


def _worker_init() -> None:
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
