"""Subprocess for tests/test_faults.py: load (or train) one run and report what happened.

``python tests/fault_worker.py CONFIG_JSON OUT_JSON [BARRIER_DIR N]``: with a barrier, waits until
N workers are ready, then all ask for the run at once.  Writes ``{"trained": calls of train,
"metrics": sha256 of the metrics table, "snapshots": sha256 of the snapshot array}``.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import torch

import modadd.runner as runner
import modadd.store as store
from modadd.config import RunConfig


def main() -> None:
    cfg = RunConfig.from_dict(json.loads(Path(sys.argv[1]).read_text()))
    torch.set_num_threads(1)
    calls = []
    real_train = runner.train

    def counting(*args, **kwargs):
        calls.append(1)
        return real_train(*args, **kwargs)

    runner.train = counting
    if len(sys.argv) > 3:                     # start together: every worker has imported torch
        barrier, n = Path(sys.argv[3]), int(sys.argv[4])
        (barrier / f"{os.getpid()}.ready").touch()
        deadline = time.time() + 60
        while len(list(barrier.glob("*.ready"))) < n and time.time() < deadline:
            time.sleep(0.01)
    run = store.load_or_train(cfg, trajectories=True, progress=False)
    out = {"trained": len(calls),
           "metrics": hashlib.sha256(run.metrics.to_csv().encode()).hexdigest(),
           "snapshots": hashlib.sha256(run.snapshots.tobytes()).hexdigest()}
    Path(sys.argv[2]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
