"""``make bench``: training throughput, FLOP rate against the machine's matmul rate, data share,
the cost of chapter 5's commutator measurements (float32 vs float64 gradients), the grokking
presets' speed with the overhead of evaluation, fingerprints and diagnostics (chapters 9-10), and
seed ensembles (S seeds as one stacked model) against the same seeds trained one by one.

Usage: ``python -m modadd.bench [--threads 1] [--steps 60] [--presets original book]``.
Prints one table; figures are wall-clock and vary with machine load: compare ratios within one
run, not across runs.
"""
from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import pandas as pd
import torch

from .ensemble import StackedModels, data_generators, ensemble_batches, initial_model
from .model import build_model, count_flops_per_step
from .presets import preset
from .train import _step, evaluate, make_optimizer, probe_sets, training_batch


def _seconds_per_call(fn, repeats: int, warmup: int = 3) -> float:
    """Mean wall-clock seconds per call of ``fn`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def matmul_gflops(m: int, k: int, n: int, repeats: int = 50) -> float:
    """Measured fp32 GFLOP/s of an ``[m,k] @ [k,n]`` matmul on the current threads."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    return 2 * m * k * n / _seconds_per_call(lambda: a @ b, repeats) / 1e9


def bench_preset(name: str, steps: int) -> dict:
    """Steps/s, FLOP rate and data-generation share of one training step of preset ``name``."""
    cfg = preset(name)
    model = build_model(cfg.model, cfg.task, 0)
    optimizer = make_optimizer(cfg, model)
    generator = torch.Generator().manual_seed(0)
    batches = [training_batch(cfg, i, generator) for i in range(steps)]
    data_s = _seconds_per_call(lambda: training_batch(cfg, 0, generator), steps)
    cycle = iter(batches * 2)
    step_s = _seconds_per_call(lambda: _step(cfg, model, optimizer, next(cycle)), steps)
    probes = probe_sets(cfg)
    eval_s = _seconds_per_call(lambda: evaluate(model, probes, 0), 2, warmup=1)
    flops = count_flops_per_step(cfg.model, cfg.task.seq_len, cfg.task.n_classes,
                                 cfg.train.batch_size)
    total_s = step_s + data_s + eval_s / cfg.train.snapshot_every
    return {
        "preset": name, "steps/s (train only)": 1 / (step_s + data_s),
        "steps/s (with evaluation)": 1 / total_s,
        "GFLOP per step": flops / 1e9, "achieved GFLOP/s": flops / step_s / 1e9,
        "data share of step": data_s / (step_s + data_s),
        "evaluation share": eval_s / cfg.train.snapshot_every / total_s,
        "minutes per run": cfg.train.n_steps * total_s / 60,
    }


def bench_commutator(name: str, repeats: int = 5) -> dict:
    """Seconds per gradient in float32 and float64, per float32 Hessian-vector product, and per
    float64 direct commutator (4 gradients) for preset ``name``'s model and batch (chapter 5)."""
    from .commutator import FlatLoss, commutator
    cfg = preset(name)
    model = build_model(cfg.model, cfg.task, 0)
    generator = torch.Generator().manual_seed(0)
    a, b = training_batch(cfg, 0, generator), training_batch(cfg, 0, generator)
    loss32, loss64 = FlatLoss(model, torch.float32), FlatLoss(model, torch.float64)
    theta = model.flat_parameters()
    vector = torch.randn(theta.shape, generator=generator)
    return {
        "preset": name,
        "grad float32 (s)": _seconds_per_call(lambda: loss32.grad(theta, a), repeats, 1),
        "grad float64 (s)": _seconds_per_call(lambda: loss64.grad(theta.double(), a),
                                              repeats, 1),
        "HVP float32 (s)": _seconds_per_call(lambda: loss32.hvp(theta, a, vector), repeats, 1),
        "commutator float64 (s)": _seconds_per_call(
            lambda: commutator(loss64, theta.double(), a, b, 1e-3), repeats, 1),
    }


def bench_grokking(name: str, steps: int) -> dict:
    """Chapters 9-10: steps/s of grokking preset ``name`` and the cost of what is measured
    alongside training (evaluation on both whole splits, one fingerprint, one diagnostic record)
    as shares of a run's time at the preset's intervals."""
    from .diagnostics import Diagnostics
    from .grokking import grokking_preset
    from .train import AlgorithmicData, evaluate_algorithmic, record_fingerprint
    cfg = grokking_preset(name)
    model = build_model(cfg.model, cfg.task, 0)
    optimizer = make_optimizer(cfg, model)
    data = AlgorithmicData(cfg)
    generator = torch.Generator().manual_seed(0)
    step_s = _seconds_per_call(
        lambda: _step(cfg, model, optimizer, training_batch(cfg, 0, generator, data)), steps)
    eval_s = _seconds_per_call(lambda: evaluate_algorithmic(model, data, 0), 3, warmup=1)
    fp_s = _seconds_per_call(lambda: record_fingerprint(model, data, cfg), 5, warmup=1)
    probe = Diagnostics(model, data.probes["heldout"].tokens)
    diag_s = _seconds_per_call(lambda: (probe.before_step(0), probe.after_step(0),
                                        probe.activations(0)), 3, warmup=1)
    t = cfg.train
    run_s = step_s + eval_s / t.snapshot_every + (fp_s / t.record_every if t.record_every else 0)
    return {"grokking preset": name, "steps/s (train only)": 1 / step_s,
            "steps/s (with measurements)": 1 / run_s,
            "evaluation share": eval_s / t.snapshot_every / run_s,
            "fingerprint share": (fp_s / t.record_every / run_s) if t.record_every else 0.0,
            "one diagnostic record / one step": diag_s / step_s,
            "minutes per 1000 steps": 1000 * run_s / 60}


def bench_ensemble(name: str = "paper", seeds: int = 20, steps: int = 5, warmup: int = 2,
                   device: str = "cpu") -> dict:
    """Model-steps/s (seeds × steps / wall seconds) of ``seeds`` seeds of preset ``name`` trained
    as one stacked model (:mod:`modadd.ensemble`) and trained one after another, and their ratio.

    Training steps only: every seed's batches are drawn beforehand, no evaluation or snapshots;
    ``warmup`` untimed steps precede the ``steps`` timed ones, for each sequential seed and for the
    ensemble alike.  On a CPU the stacked model does the same FLOPs in larger matmuls (expect about
    1×); on a GPU (``device="cuda"``) it fills the device that one small model leaves idle.
    """
    cfgs = [preset(name, seed) for seed in range(seeds)]
    generators = data_generators(cfgs)
    batches = [ensemble_batches(cfgs, step, generators, device) for step in range(warmup + steps)]
    models = [initial_model(cfg) for cfg in cfgs]
    stacked = StackedModels(models, device)
    ensemble_optimizer = make_optimizer(cfgs[0], stacked)
    cycle = iter(batches)
    stacked_s = _seconds_per_call(lambda: stacked.step(ensemble_optimizer, *next(cycle)), steps,
                                  warmup)
    sequential_s = 0.0
    for index, (cfg, model) in enumerate(zip(cfgs, models)):
        model = model.to(device)
        optimizer = make_optimizer(cfg, model)
        seed_batches = iter([SimpleNamespace(tokens=tokens[index], labels=labels[index])
                             for tokens, labels in batches])
        sequential_s += _seconds_per_call(
            lambda: _step(cfg, model, optimizer, next(seed_batches)), steps, warmup)
    sequential_rate, stacked_rate = seeds / sequential_s, seeds / stacked_s
    return {"preset": name, "seeds": seeds, "timed steps": steps, "device": str(device),
            "torch threads": torch.get_num_threads(),
            "sequential model-steps/s": sequential_rate, "stacked model-steps/s": stacked_rate,
            "stacked / sequential": stacked_rate / sequential_rate}


def main(argv: list[str] | None = None) -> pd.DataFrame:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per preset")
    parser.add_argument("--presets", nargs="+", default=["original", "book"])
    parser.add_argument("--grokking", nargs="*", default=["book", "detect"],
                        help="grokking presets to time (chapters 9-10)")
    parser.add_argument("--ensemble", nargs="*", default=["paper"],
                        help="presets to time as seed ensembles against sequential seeds")
    parser.add_argument("--ensemble-seeds", type=int, default=20, help="seeds per ensemble")
    parser.add_argument("--ensemble-steps", type=int, default=5,
                        help="timed steps per seed (ensembles; the sequential seeds are slow)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [bench_preset(name, args.steps) for name in args.presets]
    cfg = preset(args.presets[0])
    tokens = cfg.train.batch_size * cfg.task.seq_len
    peak_model = matmul_gflops(tokens, cfg.model.d_model, 3 * cfg.model.d_model)
    peak_square = matmul_gflops(1024, 1024, 1024, repeats=10)
    table = pd.DataFrame(rows).set_index("preset")
    table["matmul GFLOP/s (model shape)"] = peak_model
    table["ratio achieved / matmul"] = table["achieved GFLOP/s"] / peak_model
    pd.set_option("display.width", 200)
    print(f"torch {torch.__version__}, {args.threads} thread(s); "
          f"fp32 matmul [{tokens}x{cfg.model.d_model}]@[{cfg.model.d_model}x"
          f"{3 * cfg.model.d_model}]: {peak_model:.1f} GFLOP/s; 1024^3: {peak_square:.1f} GFLOP/s")
    print(table.T.to_string(float_format=lambda v: f"{v:.3f}"))
    commutators = pd.DataFrame([bench_commutator(name) for name in args.presets])
    print("\nchapter 5 measurement costs (batch of the preset):")
    print(commutators.set_index("preset").T.to_string(float_format=lambda v: f"{v:.4f}"))
    if args.grokking:
        grokking = pd.DataFrame([bench_grokking(name, max(10, args.steps // 3))
                                 for name in args.grokking])
        print("\nchapters 9-10: grokking presets and their measurement overhead:")
        print(grokking.set_index("grokking preset").T.to_string(
            float_format=lambda v: f"{v:.3f}"))
    if args.ensemble:
        ensembles = pd.DataFrame([bench_ensemble(name, args.ensemble_seeds, args.ensemble_steps)
                                  for name in args.ensemble])
        print("\nseed ensembles (one stacked model) against the same seeds one by one:")
        print(ensembles.set_index("preset").T.to_string(float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()
