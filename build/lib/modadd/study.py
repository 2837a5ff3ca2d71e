"""``make study``: (re)train every run the book draws from, at the ``book`` preset.

Usage: ``python -m modadd.study [--preset book] [--seeds N] [--roles main,...] [--workers N]
[--ensemble] [--precision fp32|bf16] [--device cpu|cuda]``.
The runs are the study registry's (:func:`modadd.registry.study_runs`): every chapter that runs
at the preset, with the settings its notebook resolves there, by role.  Finished runs are
loaded, missing ones trained (up to 5 processes per role, one thread each) and published to
``data/results``; interrupted runs resume from their last checkpoint.  Then each chapter's
``warm`` caches the analyses its notebook reads from those runs (chapter 3's Gram matrices and
dense lock-in, chapter 5's commutator tables, chapter 6's SAE tables, chapters 7-8's Grams),
with the same settings, so the notebooks find every cache key they ask for.
"""
from __future__ import annotations

import argparse
import time

from . import registry
from .config import PRECISIONS
from .presets import PRESETS, with_precision
from .store import load_or_train_many


def at_precision(by_role: dict, precision: str) -> dict:
    """``by_role`` with every run at training ``precision`` (unchanged at "fp32": the study's
    own bf16 roles stay bf16)."""
    if precision == "fp32":
        return by_role
    return {role: [with_precision(c, precision) for c in cfgs] for role, cfgs in by_role.items()}


def all_roles(preset: str = "book", seeds: int | None = None, precision: str = "fp32") -> dict:
    """The study's runs at ``preset`` by role (:func:`modadd.registry.study_runs`), every run at
    training ``precision``."""
    return at_precision(registry.study_runs(preset, seeds), precision)


def main(argv: list[str] | None = None) -> None:
    """Train the study's runs and print their final accuracies."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="book", choices=sorted(PRESETS))
    parser.add_argument("--seeds", type=int, default=None,
                        help="every chapter's seed count (default: the registry's)")
    parser.add_argument("--roles", default=None,
                        help="comma-separated subset of the preset's roles (default: all of "
                             "them, the runs the book's chapters read)")
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
    chosen = list(by_role) if args.roles is None else args.roles.split(",")
    for role in chosen:
        if role not in by_role:
            parser.error(f"--roles: {role!r} is not one of {', '.join(by_role)}")
        configs = by_role[role]
        # One single-threaded process per run: on 2 cores, 5 concurrent runs lose ~12% throughput
        # against 2 (measured) but finish together instead of leaving a core idle in a last round.
        runs = load_or_train_many(configs, n_workers=args.workers or min(len(configs), 5),
                                  trajectories=True, ensemble=args.ensemble, device=args.device)
        for run in runs:
            print(f"{role} seed {run.config.seed} {run.key}: final accuracy "
                  f"{run.meta['final_accuracy']}, {run.meta['wall_s'] / 60:.1f} min")
    # the analyses each chapter reads, from the chosen roles' runs, at the chapter's settings
    for entry in registry.chapters_at(args.preset):
        s = registry.settings(entry.key, args.preset,
                              **({"seeds": args.seeds} if "seeds" in entry.book else {}))
        mine = at_precision({role: cfgs for role, cfgs in s.runs().items() if role in chosen},
                            args.precision)
        entry.warm(s, mine, args.workers or 0)
    print(f"ready in {(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
