"""The analysis cache: ``cached(name, version, inputs, compute)`` stores a table, a dict of
arrays or a JSON dict under ``data/results/analysis/<name>-<key>`` (the key hashes the name, the
version, the inputs and the schema version) and reads it back; under ``MODADD_NO_TRAIN=1`` a
miss is a :class:`CacheMiss` (a book build reads its inputs, never writes them).

``data/results/analysis/manifest.json`` names the producer of every result file: its analysis
name, version, inputs and schema, from which the file's key is recomputed.  ``cached`` adds the
entry when it writes a result, and when it reads one that has none (never under
``MODADD_NO_TRAIN=1``, unless ``MODADD_RECORD_ANALYSIS=1`` asks a read-only build to record what
it reads).  :func:`manifest_problems` lists orphans (files without an entry) and dangling
entries; a test keeps it empty for the committed results."""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from . import paths
from .durable import (READ_ERRORS, CacheMiss, CorruptFile, atomic_path, atomic_write_text,
                      key_lock, load_npz, read_gzip_text, write_gzip_text)
from .runs import SCHEMA_VERSION


def analysis_key(name: str, version: int, inputs: Any) -> str:
    """Key of an analysis: its name, version, JSON-able inputs (run keys, parameters), schema."""
    text = json.dumps({"name": name, "version": version, "inputs": inputs,
                       "schema": SCHEMA_VERSION}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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
    path = stem.with_suffix(suffix)
    if path.name not in read_manifest() and _may_record():
        _record(path, name, version, inputs)
    return read_result(path)


# ---- the manifest ------------------------------------------------------------------------------
MANIFEST = "manifest.json"
RECORD_VARIABLE = "MODADD_RECORD_ANALYSIS"
_FILE_PATTERN = re.compile(r"(?P<name>.+)-(?P<key>[0-9a-f]{16})(?P<suffix>\.[a-z.]+)")
_MANIFESTS: dict[tuple, dict] = {}          # (path, mtime_ns, size) -> parsed manifest


def _may_record() -> bool:
    return paths.training_allowed() or os.environ.get(RECORD_VARIABLE, "") == "1"


def read_manifest() -> dict:
    """``{file name: {"name", "version", "inputs", "schema"}}`` of ``data/results/analysis``
    (empty when there is no manifest yet)."""
    path = paths.results_dir() / "analysis" / MANIFEST
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    memo = (str(path), stat.st_mtime_ns, stat.st_size)
    if memo not in _MANIFESTS:
        try:
            _MANIFESTS[memo] = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as error:
            raise CorruptFile(path, MANIFEST, f"{type(error).__name__}: {error}",
                              f"restore it (`git checkout -- {path}`)") from error
    return _MANIFESTS[memo]


def _record(path: Path, name: str, version: int, inputs: Any) -> None:
    """Add the entry of the result file ``path`` to the manifest (read-modify-write under an
    inter-process lock, written atomically)."""
    entry = {"name": name, "version": version, "schema": SCHEMA_VERSION,
             "inputs": json.loads(json.dumps(inputs, sort_keys=True, default=str))}
    with key_lock(paths.cache_dir() / "locks" / "analysis-manifest.lock"):
        manifest = dict(read_manifest())
        manifest[path.name] = entry
        atomic_write_text(path.parent / MANIFEST,
                          json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def manifest_problems() -> dict[str, list[str]]:
    """What is wrong with ``data/results/analysis``'s manifest: ``orphans`` (result files
    without an entry), ``dangling`` (entries without a file) and ``mismatched`` (entries whose
    name, version, inputs and schema do not hash to the file's key)."""
    folder = paths.results_dir() / "analysis"
    files = {p.name for p in folder.iterdir() if _FILE_PATTERN.fullmatch(p.name)} \
        if folder.is_dir() else set()
    manifest = read_manifest()
    mismatched = []
    for file_name, entry in manifest.items():
        match = _FILE_PATTERN.fullmatch(file_name)
        text = json.dumps({"name": entry["name"], "version": entry["version"],
                           "inputs": entry["inputs"], "schema": entry["schema"]},
                          sort_keys=True, default=str)
        if match is None or match["name"] != entry["name"] or \
                hashlib.sha256(text.encode()).hexdigest()[:16] != match["key"]:
            mismatched.append(file_name)
    return {"orphans": sorted(files - set(manifest)),
            "dangling": sorted(set(manifest) - files), "mismatched": sorted(mismatched)}


def read_result(path: Path) -> Any:
    """An analysis result file, any failure to read it raised as :class:`CorruptFile`.  (The
    gzip and zip containers carry CRC-32 checksums, so a damaged byte is an error, never a
    silently wrong value.)"""
    suffix = next(s for s in _READERS if path.name.endswith(s))
    try:
        return _READERS[suffix](path)
    except READ_ERRORS as error:
        raise CorruptFile(path, path.name.split(".")[0], f"{type(error).__name__}: {error}",
                          f"delete {path} and rerun the analysis to recompute it (committed "
                          f"results: `git checkout -- {path}`)") from error


def _write_result(stem: Path, result: Any) -> None:
    if isinstance(result, pd.DataFrame):
        write_gzip_text(stem.with_suffix(".csv.gz"), result.to_csv(index=False))
    elif isinstance(result, dict) and result and all(isinstance(v, np.ndarray)
                                                     for v in result.values()):
        with atomic_path(stem.with_suffix(".npz")) as tmp:
            with open(tmp, "wb") as handle:
                np.savez_compressed(handle, **result)
    elif isinstance(result, dict):
        write_gzip_text(stem.with_suffix(".json.gz"), json.dumps(result, indent=1))
    else:
        raise TypeError(f"cached: result must be a DataFrame, a dict of arrays or a JSON dict, "
                        f"got {type(result).__name__}")


# results are written gzip-compressed (CSV and JSON); plain files from before are still read
_READERS = {
    ".csv.gz": pd.read_csv,
    ".csv": pd.read_csv,
    ".npz": load_npz,
    ".json.gz": lambda p: json.loads(read_gzip_text(p)),
    ".json": lambda p: json.loads(p.read_text()),
}
