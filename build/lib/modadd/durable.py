"""Durable files and processes: atomic writes with the process umask, checksums, one writer per
key across processes, workers that die with their parent, and deterministic fault injection.

Every file the store and the sweeps write goes through :func:`atomic_path`: written under a
unique temporary name beside its target and renamed over it once complete, so a reader (or a
crash) sees the old complete file or the new complete one, never half of one.  Temporary files
get the permissions a plain ``open()`` would give (``0666 & ~umask``), not ``mkstemp``'s 0600,
so other users of a shared file system can read the results.

:func:`key_lock` is an inter-process lock (``filelock``: ``flock`` on POSIX; it holds across
machines on file systems whose ``flock`` does, e.g. NFSv4 and Lustre with ``-o flock``).

:func:`fault` is a no-op unless the environment variable ``MODADD_FAULT`` names the point: the
process then kills itself with SIGKILL there (the fault-injection tests use it to stop a run at
each stage of train → move → publish).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import tempfile
import threading
import time
import gzip
import pickle
import zipfile
import zlib
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pandas as pd

FAULT_VARIABLE = "MODADD_FAULT"


class CacheMiss(RuntimeError):
    """A result is not cached and ``MODADD_NO_TRAIN=1`` forbids computing it."""


class CorruptFile(RuntimeError):
    """A stored file (of a run or an analysis result) is damaged or unreadable.

    ``path`` is the file, ``key`` the run key or analysis stem, ``recovery`` what to do."""

    def __init__(self, path: Path, key: str, problem: str, recovery: str):
        self.path, self.key, self.problem, self.recovery = Path(path), key, problem, recovery
        super().__init__(f"{key}: {path} is damaged ({problem}); {recovery}")


# what unreadable files raise, per reader (numpy, pandas, gzip, zipfile, json, torch, pickle)
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError,
                zipfile.BadZipFile, gzip.BadGzipFile, pickle.UnpicklingError, RuntimeError,
                pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, zlib.error)


def _read_umask() -> int:
    try:                                    # Linux: without changing it (thread-safe)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode(directory: bool = False) -> int:
    """The mode ``open()`` / ``mkdir()`` would give a new file / folder under the current umask."""
    return (0o777 if directory else 0o666) & ~_read_umask()


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on success rename it over ``path`` (the
    file then has the umask's permissions); on failure remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def staging_dir(beside: Path, tag: str) -> Path:
    """A new, uniquely named, empty folder ``<beside.name>.<tag>-XXXX`` next to ``beside`` with
    the umask's folder permissions (``mkdtemp`` alone gives 0700)."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(dir=beside.parent, prefix=f"{beside.name}.{tag}-"))
    os.chmod(folder, file_mode(directory=True))
    return folder


def write_gzip_text(path: Path, text: str) -> None:
    """Write ``text`` gzip-compressed (no name or timestamp in the header, so equal text gives equal
    bytes), atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb",
                                                   mtime=0) as handle:
            handle.write(text.encode())


def read_gzip_text(path: Path) -> str:
    with gzip.open(path, "rt") as handle:
        return handle.read()


def load_npz(path: Path) -> dict:
    """Every array of an ``.npz`` file, read into memory (the file is closed again)."""
    with np.load(path) as arrays:
        return {name: arrays[name] for name in arrays.files}


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def key_lock(lock_file: Path, timeout: float = -1, poll: float = 0.05) -> Iterator[None]:
    """Hold the inter-process lock ``lock_file`` (created if absent).  ``timeout < 0`` waits for
    ever; otherwise ``filelock.Timeout`` is raised after ``timeout`` seconds.  Not re-entrant
    across two ``key_lock`` calls of one thread: never nest the same key."""
    import filelock
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with filelock.FileLock(str(lock_file), timeout=timeout).acquire(poll_interval=poll):
        yield


@contextlib.contextmanager
def try_key_lock(lock_file: Path) -> Iterator[bool]:
    """Yield True holding ``lock_file`` if it is free now, else False (nothing held)."""
    import filelock
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def fault(point: str) -> None:
    """Kill this process with SIGKILL here when ``MODADD_FAULT`` names ``point`` (tests only)."""
    if os.environ.get(FAULT_VARIABLE) == point:
        os.kill(os.getpid(), signal.SIGKILL)


_WATCHED: Optional[int] = None


def die_with_parent(interval: float = 0.5) -> None:
    """Exit this process (``os._exit``) soon after its parent dies, whatever the parent died of
    (a SIGKILL'd driver cannot clean up its workers).  Idempotent; call it in a worker's
    initializer.  The check is the parent pid changing (the orphan is re-parented), which also
    catches a parent left as an unreaped zombie.  Kernels papermill starts from this process
    watch it the same way (ipykernel's parent poller), so they follow."""
    global _WATCHED
    if _WATCHED is not None:
        return
    _WATCHED = parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os._exit(70)

    threading.Thread(target=watch, name="modadd-die-with-parent", daemon=True).start()
