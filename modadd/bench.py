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
import os
import time
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from .ensemble import StackedModels, data_generators, ensemble_batches
from .model import build_model
from .presets import preset
from .taskdata import AlgorithmicData, evaluate_probes, probe_sets, task_data, training_batch
from .train import check_device, initial_model, make_optimizer, to_device, train_step


def _seconds_per_call(fn, repeats: int, warmup: int = 3) -> float:
    """Mean wall-clock seconds per call of ``fn`` over ``repeats`` calls, after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    _synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    _synchronize()
    return (time.perf_counter() - start) / repeats


def _synchronize() -> None:
    """Wait for queued CUDA work (GPU timings would otherwise measure only the launches)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# the training-step variants timed: (label, precision, lean_step)
MODES = (("fp32", "fp32", False), ("fp32 lean", "fp32", True), ("bf16", "bf16", False))


def matmul_gflops(m: int, k: int, n: int, repeats: int = 50, dtype=torch.float32,
                  batch: int = 0, device: str = "cpu") -> float:
    """Measured GFLOP/s of an ``[m,k] @ [k,n]`` matmul (``batch`` > 0: a batched matmul of that
    many) in ``dtype`` on the current threads (or ``device``): the best of three timings of
    ``repeats`` calls."""
    shape = (batch,) if batch else ()
    a = torch.randn(*shape, m, k).to(device=device, dtype=dtype)
    b = torch.randn(*shape, k, n).to(device=device, dtype=dtype)
    # the best of 3 timings: the rate the hardware gives these shapes, not the load of the moment
    best = min(_seconds_per_call(lambda: a @ b, repeats) for _ in range(3))
    return 2 * max(batch, 1) * m * k * n / best / 1e9


def step_matmuls(cfg, lean: bool = False, precision: str = "fp32") -> list[tuple]:
    """Every matmul of one training step of ``cfg``, forward and backward:
    ``(batch, m, k, n, count, dtype)`` (``batch`` 0 for a plain matmul).  Each forward product
    ``[m,k]@[k,n]`` has two backward products of the same FLOPs (input and weight gradients),
    listed with their own shapes; the attention core runs in float32 in the lean step."""
    c, d, T = cfg.model, cfg.model.d_model, cfg.task.seq_len
    B, H, dh, C = cfg.train.batch_size, c.n_heads, c.d_head, cfg.task.n_classes
    low = DTYPES[precision]
    core = torch.float32 if lean else low

    def linear(m, k, n, count=1):          # forward, grad of input, grad of weight
        return [(0, m, k, n, count, low), (0, m, n, k, count, low), (0, n, m, k, count, low)]

    def bmm(batch, m, k, n, count=1):
        return [(batch, m, k, n, count, core), (batch, m, n, k, count, core),
                (batch, k, m, n, count, core)]

    full, rows = c.n_layers - (1 if lean else 0), B * T
    out = linear(rows, d, 3 * d, full) + linear(rows, d, d, full)
    out += bmm(B * H, T, dh, T, full) + bmm(B * H, T, T, dh, full)
    if not c.attention_only:
        out += linear(rows, d, c.mlp_width, full) + linear(rows, c.mlp_width, d, full)
    if lean:                                # the last block: keys/values everywhere, one query
        out += linear(rows, d, 2 * d) + linear(B, d, d) + linear(B, d, d)
        out += bmm(B * H, 1, dh, T) + bmm(B * H, 1, T, dh)
        if not c.attention_only:
            out += linear(B, d, c.mlp_width) + linear(B, c.mlp_width, d)
    return out + linear(B, d, C)


def matmul_bound(cfg, lean: bool = False, precision: str = "fp32", repeats: int = 20,
                 device: str = "cpu") -> tuple[float, float]:
    """(GFLOP per step, GFLOP/s) of the step's own matmuls (:func:`step_matmuls`) timed alone,
    back to back: the rate a step would reach if it were nothing but its matmuls."""
    flops = seconds = 0.0
    rates: dict[tuple, float] = {}
    for batch, m, k, n, count, dtype in step_matmuls(cfg, lean, precision):
        key = (batch, m, k, n, dtype)
        if key not in rates:
            rates[key] = matmul_gflops(m, k, n, repeats, dtype, batch, device)
        work = 2 * max(batch, 1) * m * k * n * count
        flops += work
        seconds += work / (rates[key] * 1e9)
    return flops / 1e9, flops / seconds / 1e9


def _timed_modes(cfg, batches: list, rounds: int = 3, device: str = "cpu") -> dict[str, float]:
    """Median seconds per training step of each of :data:`MODES`, the modes interleaved in
    ``rounds`` rounds (so drifting machine load hits them alike); same model, batches, threads."""
    device = check_device(device)
    batches = [to_device(batch, device) for batch in batches]
    steps = len(batches)
    per_round = max(2, steps // rounds)
    trainers = {}
    for label, precision, lean in MODES:
        mode_cfg = replace(cfg, train=replace(cfg.train, precision=precision, lean_step=lean))
        model = build_model(cfg.model, cfg.task, 0).to(device)
        trainers[label] = (mode_cfg, model, make_optimizer(mode_cfg, model))
    times: dict[str, list[float]] = {label: [] for label in trainers}
    for round_index in range(rounds):
        for label, (mode_cfg, model, optimizer) in trainers.items():
            cycle = iter(batches[round_index::rounds] * (2 + per_round))
            times[label].append(_seconds_per_call(
                lambda: train_step(mode_cfg, model, optimizer, next(cycle)), per_round,
                warmup=2 if round_index == 0 else 1))
    return {label: float(np.median(values)) for label, values in times.items()}


def bench_preset(name: str, steps: int, cfg=None, device: str = "cpu") -> dict:
    """Steps/s of preset ``name``'s training step at fp32, fp32 lean and bf16 (interleaved,
    one run), each step's achieved GFLOP/s against the matmul rate of its own shapes at its
    precision (:func:`matmul_bound`), the data-generation and evaluation shares (evaluation is
    float32 at every precision) and the minutes per run."""
    cfg = cfg or preset(name)
    generator = torch.Generator().manual_seed(0)
    data_s = _seconds_per_call(lambda: training_batch(cfg, 0, generator), max(steps, 5))
    step_s = _timed_modes(cfg, [training_batch(cfg, i, generator) for i in range(steps)],
                          device=device)
    model = build_model(cfg.model, cfg.task, 0).to(device)
    probes = probe_sets(cfg)
    eval_s = _seconds_per_call(lambda: evaluate_probes(model, probes, 0), 2, warmup=1)
    row = {"preset": name, "device": str(device),
           "data share of step (fp32)": data_s / (step_s["fp32"] + data_s)}
    for label, precision, lean in MODES:
        flops, bound = matmul_bound(cfg, lean, precision, device=device)
        total_s = step_s[label] + data_s + eval_s / cfg.train.snapshot_every
        row.update({f"{label}: steps/s (train only)": 1 / (step_s[label] + data_s),
                    f"{label}: steps/s (with evaluation)": 1 / total_s,
                    f"{label}: achieved GFLOP/s": flops / step_s[label],
                    f"{label}: matmul GFLOP/s (own shapes)": bound,
                    f"{label}: achieved / matmul": flops / step_s[label] / bound,
                    f"{label}: evaluation share": eval_s / cfg.train.snapshot_every / total_s,
                    f"{label}: minutes per run": cfg.train.n_steps * total_s / 60})
    row["bf16 / fp32 (train only)"] = (row["bf16: steps/s (train only)"]
                                       / row["fp32: steps/s (train only)"])
    row["fp32 lean / fp32 (train only)"] = (row["fp32 lean: steps/s (train only)"]
                                            / row["fp32: steps/s (train only)"])
    return row


def step_profile(cfg, precision: str = "fp32", lean: bool = False, steps: int = 10,
                 top: int = 8) -> pd.DataFrame:
    """Where one training step's time goes: the ``top`` operators by self CPU time over
    ``steps`` profiled steps (torch.profiler), as ``[operator, ms per step, share]`` plus a
    row for the rest."""
    from torch.profiler import ProfilerActivity, profile
    cfg = replace(cfg, train=replace(cfg.train, precision=precision, lean_step=lean))
    model = build_model(cfg.model, cfg.task, 0)
    optimizer = make_optimizer(cfg, model)
    generator = torch.Generator().manual_seed(0)
    batches = [training_batch(cfg, i, generator) for i in range(steps + 3)]
    for batch in batches[:3]:
        train_step(cfg, model, optimizer, batch)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for batch in batches[3:]:
            train_step(cfg, model, optimizer, batch)
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    rows = [(e.key, e.self_cpu_time_total / 1e3 / steps, e.self_cpu_time_total / total)
            for e in events[:top]]
    rest = total - sum(e.self_cpu_time_total for e in events[:top])
    rows.append(("(all other operators)", rest / 1e3 / steps, rest / total))
    return pd.DataFrame(rows, columns=["operator", "ms per step", "share"])


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
    """Chapters 9-10: steps/s of grokking preset ``name`` (fp32, and the fp32-lean and bf16 steps
    interleaved with it) and the cost of what is measured alongside training (evaluation on both whole splits, one fingerprint, one diagnostic record)
    as shares of a run's time at the preset's intervals."""
    from .diagnostics import Diagnostics
    from .grokking import grokking_preset
    cfg = grokking_preset(name)
    model = build_model(cfg.model, cfg.task, 0)
    data = AlgorithmicData(cfg)
    generator = torch.Generator().manual_seed(0)
    modes = _timed_modes(cfg, [data.training_batch(i, generator) for i in range(steps)])
    step_s = modes["fp32"]
    eval_s = _seconds_per_call(lambda: data.evaluate(model, 0), 3, warmup=1)
    fp_s = _seconds_per_call(lambda: data.fingerprint(model), 5, warmup=1)
    probe = Diagnostics(model, data.probes["heldout"].tokens)
    diag_s = _seconds_per_call(lambda: (probe.before_step(0), probe.after_step(0),
                                        probe.activations(0)), 3, warmup=1)
    t = cfg.train
    run_s = step_s + eval_s / t.snapshot_every + (fp_s / t.record_every if t.record_every else 0)
    return {"grokking preset": name, "steps/s (train only)": 1 / step_s,
            "fp32 lean: steps/s (train only)": 1 / modes["fp32 lean"],
            "bf16: steps/s (train only)": 1 / modes["bf16"],
            "bf16 / fp32 (train only)": step_s / modes["bf16"],
            "steps/s (with measurements)": 1 / run_s,
            "evaluation share": eval_s / t.snapshot_every / run_s,
            "fingerprint share": (fp_s / t.record_every / run_s) if t.record_every else 0.0,
            "one diagnostic record / one step": diag_s / step_s,
            "minutes per 1000 steps": 1000 * run_s / 60}


COST_VERSION = 1


def step_costs(cfg, steps: int = 20) -> dict:
    """Seconds per training step of ``cfg`` at fp32 and bf16, measurements included: the step
    (the two precisions interleaved, :func:`_timed_modes`), batch drawing, and the evaluation
    (and, for algorithmic tasks, fingerprint) amortised over its interval.  Measured on
    ``cfg``'s own shapes; evaluation is float32 at both precisions."""
    if getattr(cfg.task, "eos_target", False):
        # the lean and bf16 steps refuse the end-token loss: time the answer-loss step (one
        # position fewer in the forward; the estimate is a slight underestimate)
        cfg = replace(cfg, task=replace(cfg.task, eos_target=False))
    t = cfg.train
    model = build_model(cfg.model, cfg.task, 0)
    generator = torch.Generator().manual_seed(0)
    data = task_data(cfg)
    batches = [data.training_batch(i, generator) for i in range(steps)]
    data_s = _seconds_per_call(lambda: data.training_batch(0, generator), 5, warmup=1)
    modes = _timed_modes(cfg, batches, rounds=2)
    extra = _seconds_per_call(lambda: data.evaluate(model, 0), 1, warmup=1) / t.snapshot_every
    if t.record_every:
        extra += _seconds_per_call(lambda: data.fingerprint(model), 2, warmup=1) / t.record_every
    return {"fp32 s/step": modes["fp32"] + data_s + extra,
            "bf16 s/step": modes["bf16"] + data_s + extra,
            "measurement share (fp32)": extra / (modes["fp32"] + data_s + extra)}


def study_cost(preset_name: str = "book", steps: int = 20) -> pd.DataFrame:
    """The study's training cost per role (``modadd.study.all_roles``), cached for the book.

    Per role: its runs and optimizer steps (a run's stored ``last_step`` where it stopped early);
    the committed runs' summed wall time (hours of one single-thread process each; the study ran
    up to 5 such processes on 2 cores, so this overstates core time by up to 2.5x, and runs
    committed before ``cpu_s`` existed record nothing better); and the core-hours at fp32 and
    bf16 estimated from :func:`step_costs` of the role's first run (one thread, one process:
    core-seconds), times the role's steps.  The measured subset is the role's first run for
    ``steps`` steps per precision; the whole study at bf16 was not retrained.
    """
    from .store import find_run, run_key
    from .study import all_roles
    roles = all_roles(preset_name)
    inputs = {"preset": preset_name, "steps": steps,
              "roles": {role: [run_key(c) for c in cfgs] for role, cfgs in roles.items()}}

    def compute() -> pd.DataFrame:
        rows = []
        for role, cfgs in tqdm(roles.items(), desc="study cost per role", unit="role"):
            runs = [find_run(c) for c in cfgs]
            run_steps = [int(r.meta.get("last_step", c.train.n_steps)) if r else c.train.n_steps
                         for r, c in zip(runs, cfgs)]
            costs = step_costs(cfgs[0], steps)
            rows.append({"role": role, "runs": len(cfgs), "steps": sum(run_steps),
                         "committed runs": sum(r is not None for r in runs),
                         "committed wall hours": sum(r.meta["wall_s"] for r in runs
                                                     if r is not None) / 3600,
                         "fp32 s/step": costs["fp32 s/step"], "bf16 s/step": costs["bf16 s/step"],
                         "fp32 core-hours": sum(run_steps) * costs["fp32 s/step"] / 3600,
                         "bf16 core-hours": sum(run_steps) * costs["bf16 s/step"] / 3600,
                         "measurement share (fp32)": costs["measurement share (fp32)"],
                         "measured on": f"{os.cpu_count()} cores, {torch.get_num_threads()} "
                                        f"thread(s), torch {torch.__version__}"})
        table = pd.DataFrame(rows)
        table["bf16 / fp32 cost"] = table["bf16 core-hours"] / table["fp32 core-hours"]
        return table

    from .store import cached
    return cached("study-cost", COST_VERSION, inputs, compute)


def bench_ensemble(name: str = "paper", seeds: int = 20, steps: int = 5, warmup: int = 2,
                   device: str = "cpu", precision: str = "fp32") -> dict:
    """Model-steps/s (seeds × steps / wall seconds) of ``seeds`` seeds of preset ``name`` trained
    as one stacked model (:mod:`modadd.ensemble`) and trained one after another, and their ratio.

    Training steps only: every seed's batches are drawn beforehand, no evaluation or snapshots;
    ``warmup`` untimed steps precede the ``steps`` timed ones, for each sequential seed and for the
    ensemble alike.  On a CPU the stacked model does the same FLOPs in larger matmuls (expect about
    1×); on a GPU (``device="cuda"``) it fills the device that one small model leaves idle.
    """
    from .presets import with_precision
    cfgs = [with_precision(preset(name, seed), precision) for seed in range(seeds)]
    generators = data_generators(cfgs)
    batches = [ensemble_batches(cfgs, step, generators, device) for step in range(warmup + steps)]
    models = [initial_model(cfg) for cfg in cfgs]
    stacked = StackedModels(models, device, precision)
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
            lambda: train_step(cfg, model, optimizer, next(seed_batches)), steps, warmup)
    sequential_rate, stacked_rate = seeds / sequential_s, seeds / stacked_s
    return {"preset": name, "precision": precision, "seeds": seeds, "timed steps": steps,
            "device": str(device),
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
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda[:n]: the presets' steps and the ensembles")
    parser.add_argument("--profile", action="store_true",
                        help="also print where the first preset's step spends its time")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = [bench_preset(name, args.steps, device=args.device) for name in args.presets]
    cfg = preset(args.presets[0])
    tokens = cfg.train.batch_size * cfg.task.seq_len
    d = cfg.model.d_model
    peak = {label: matmul_gflops(tokens, d, 3 * d, dtype=DTYPES[label],
                                 device=args.device)
            for label in ("fp32", "bf16")}
    table = pd.DataFrame(rows).set_index("preset")
    pd.set_option("display.width", 200)
    print(f"torch {torch.__version__}, {args.threads} thread(s); matmul "
          f"[{tokens}x{d}]@[{d}x{3 * d}]: fp32 {peak['fp32']:.1f} GFLOP/s, bf16 "
          f"{peak['bf16']:.1f} GFLOP/s ({peak['bf16'] / peak['fp32']:.2f}x)")
    print(table.T.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\ntargets (benchmark, not a test):")
    for name, row in table.iterrows():
        ratio, share = row["bf16 / fp32 (train only)"], row["fp32: achieved / matmul"]
        print(f"  {name}: bf16 / fp32 = {ratio:.2f}x (target >= 2.5x: "
              f"{'met' if ratio >= 2.5 else 'missed'}); fp32 achieved / matmul of its shapes = "
              f"{share:.0%} (target >= 70%: {'met' if share >= 0.7 else 'missed'})")
    if args.profile:
        for precision, lean in (("fp32", False), ("bf16", True)):
            print(f"\nwhere one {args.presets[0]} step's time goes ({precision}"
                  f"{', lean' if lean and precision == 'fp32' else ''}):")
            print(step_profile(cfg, precision, lean).to_string(
                index=False, float_format=lambda v: f"{v:.3f}"))
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
        ensembles = pd.DataFrame([bench_ensemble(name, args.ensemble_seeds, args.ensemble_steps,
                                                 device=args.device, precision=precision)
                                  for name in args.ensemble for precision in ("fp32", "bf16")])
        ensembles.index = ensembles.preset + " " + ensembles.precision
        print("\nseed ensembles (one stacked model) against the same seeds one by one:")
        print(ensembles.drop(columns=["preset", "precision"]).T.to_string(
            float_format=lambda v: f"{v:.3f}"))
    return table


if __name__ == "__main__":
    main()
