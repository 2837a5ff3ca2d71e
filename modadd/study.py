"""``make study``: (re)train every run the book draws from, at the ``book`` preset.

Usage: ``python -m modadd.study [--preset book] [--seeds N] [--roles main,...] [--workers N]
[--ensemble] [--precision fp32|bf16] [--device cpu|cuda]``.
The runs are ``modadd.presets.study_configs``: the preset's seeds, its learning-rate controls,
its single-m runs, its seeds again with full parameter vectors (chapter 4) and with dense early
snapshots (chapters 3-4), at bf16 and at twice the budget (chapter 3's convergence arm), the arms
of chapters 7 and 8, chapters 9-10's grokking runs and chapter 11's sweeps.  Finished runs are loaded, missing ones trained (up to 5 processes per role,
one thread each) and published to ``data/results``; interrupted runs resume from their last
checkpoint.  Then the per-run Gram matrices the manifold chapter needs, the commutator tables
of chapter 5, the SAE tables of chapter 6 and the MLP weights' Grams of chapter 7 are cached.
"""
from __future__ import annotations

import argparse
import time

from . import arms, commutator, openq, sae
from .grokking import GROKKING_PRESETS, detection_study, grokking_study
from .manifold import dense_lock_in, increment_grams
from .config import PRECISIONS
from .presets import BOOK_ROLES, PRESETS, study_configs, with_precision
from .store import load_or_train_many

# roles whose attention Grams no chapter reads (chapter 4 reads the full-params runs' weights;
# chapter 7 reads only the difficulty grid's and the SGD runs' accuracies and losses)
# chapter 9: grokking on a + b mod p, at the grokking preset of the same name (else "book");
# chapter 10: the detection grid and its showcase run (preset "detect", or "smoke" at smoke)
GROKKING_ROLES = ("grokking", "grokking perturbed", "detection", "detection showcase")
# chapter 11: the open questions' width/depth/operation sweeps and prediction grid (their
# dimension and feature tables are cached whole by the chapter, not per run)
OPEN_ROLES = ("open width", "open depth", "open width mul", "open prediction")
# the dense-snapshot runs: chapters 3-4 read their per-run lock-in arrays (a few kB), not their
# Grams (151 snapshots: ~1.8 MB per run)
NO_GRAMS = ("full params", "difficulty", "paper sgd", "dense snapshots") + GROKKING_ROLES \
    + OPEN_ROLES


def all_roles(preset: str = "book", seeds: int | None = None, precision: str = "fp32") -> dict:
    """The study's runs by role: :func:`study_configs`, chapters 9-10's grokking runs and
    chapter 11's open-question sweeps (``open *``), every run at training ``precision``."""
    if precision != "fp32":
        by_role = all_roles(preset, seeds)
        return {role: [with_precision(c, precision) for c in cfgs]
                for role, cfgs in by_role.items()}
    by_role = study_configs(preset, seeds)
    grok = grokking_study(preset if preset in GROKKING_PRESETS else "book",
                          seeds=5 if seeds is None else seeds)
    by_role["grokking"], by_role["grokking perturbed"] = grok["main"], grok["perturbed"]
    detect = detection_study("smoke" if preset == "smoke" else "detect")
    by_role["detection"], by_role["detection showcase"] = detect["grid"], detect["showcase"]
    scale = "smoke" if preset == "smoke" else "book"
    sweeps = openq.scaling_study(scale, seeds)
    for role in ("width", "depth", "width mul"):
        by_role[f"open {role}"] = sweeps[role]
    by_role["open prediction"] = openq.prediction_study(scale)
    return by_role


def main(argv: list[str] | None = None) -> None:
    """Train the study's runs and print their final accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="book", choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, default=None, help="default: the preset's count")
    roles = all_roles()
    parser.add_argument("--roles", default=",".join(BOOK_ROLES + GROKKING_ROLES + OPEN_ROLES),
                        help=f"comma-separated subset of {', '.join(roles)} (default: the roles "
                             f"the book's chapters read)")
    parser.add_argument("--workers", type=int, default=None,
                        help="training processes (default: one per run, one thread each)")
    parser.add_argument("--ensemble", action="store_true",
                        help="train runs that differ only by seed as one stacked model each "
                             "(modadd.ensemble; equal up to float rounding; for GPUs)")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS,
                        help="training precision of every run (TrainConfig.precision; bf16: "
                             "validated against fp32 on the book's main runs, see the methods "
                             "page; other run keys, so the committed fp32 runs stay)")
    parser.add_argument("--device", default="cpu",
                        help="where runs train: cpu (default) or cuda[:n]")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    by_role = all_roles(args.preset, args.seeds, args.precision)
    for role in args.roles.split(","):
        if role not in by_role:
            parser.error(f"--roles: {role!r} is not one of {', '.join(by_role)}")
        configs = by_role[role]
        # One single-threaded process per run: on 2 cores, 5 concurrent runs lose ~12% throughput
        # against 2 (measured) but finish together instead of leaving a core idle in a last round.
        runs = load_or_train_many(configs, n_workers=args.workers or min(len(configs), 5),
                                  trajectories=True, ensemble=args.ensemble, device=args.device)
        for run in runs:
            if role not in NO_GRAMS:    # chapters 3, 7, 8 read the attention Grams
                increment_grams(run.config)
            if role == "mlp":           # chapter 7 reads the MLP weights' Grams too
                arms.mlp_increment_grams(run.config)
            if role == "dense snapshots":   # chapters 3-4: lock-in at 10-step resolution
                dense_lock_in(run.config)
            print(f"{role} seed {run.config.seed} {run.key}: final accuracy "
                  f"{run.meta['final_accuracy']}, {run.meta['wall_s'] / 60:.1f} min")
        if role == "full params":   # chapters 5 and 6 measure on the stored parameter vectors
            workers = min(2, len(configs))
            commutator.compute_tables(configs, workers=workers)
            sae.compute_tables(configs, sae.stage_steps(configs[0]),
                               sae.default_layers(configs[0]), workers=workers)
    print(f"ready in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
