"""The study registry: what each chapter trains and analyses, at every scale it runs at.

One entry per chapter (``"ch01"`` … ``"ch12"``, the notebooks' numbers): its analysis settings
at the ``book`` scale, what changes at its other scales (``smoke`` for CI, ``original`` and
``paper`` for the marker-task chapters, the grokking presets for chapter 9), the runs it reads
(by role) and the analysis caches it reads (``warm``).  The three users read the same entry:

- a notebook's parameters cell leaves every setting at ``None`` ("the registry's value at this
  preset") and resolves them with :func:`from_namespace`; papermill overrides any of them;
- ``make study`` (:mod:`modadd.study`) trains :func:`study_runs` and calls each chapter's
  ``warm`` with the same settings, so it precomputes exactly the cache keys the notebooks read;
- a claim's loader (``modadd.claims.chNN.load``) takes the chapter's settings at its preset, so
  the ledger evaluates what the chapter shows.

``settings("ch06", "smoke")`` is all a caller needs to know about scales: no chapter translates
preset names (chapter 10's ``book`` scale names its grid preset, ``grid="detect"``, here).

Length: longer than ~400 lines because it is the one table of every chapter's settings, scales
and runs (the ``CHAPTERS`` entries at the end), plus the "Reproduce this chapter" box each
chapter shows from it; splitting the table would scatter one chapter's entry over files.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from .config import RunConfig
from .grokking import NANDA_ABLATIONS, POWER_ABLATIONS
from .presets import PRESETS

Runs = dict[str, list[RunConfig]]
MARKER_SCALES = ("smoke", "book", "original", "paper")   # presets.PRESETS
# the notebook parameters that are not settings of the study: how to run, not what
EXECUTION = ("workers",)


def no_warm(settings: "Settings", runs: Runs, workers: int) -> None:
    """A chapter without analysis caches: its pages read the runs' summaries only."""


@dataclass(frozen=True)
class Chapter:
    """A chapter's entry: ``book`` holds every setting at the book scale; ``scales`` maps each
    scale the chapter runs at to what differs there from ``book``."""

    key: str                                   # "ch06"
    notebook: str                              # "06_sae_probing"
    book: Mapping[str, Any]                    # setting -> value at the book scale
    scales: Mapping[str, Mapping[str, Any]]    # scale -> {setting: value} differing from book
    runs: Callable[["Settings"], Runs] = field(default=lambda s: {}, repr=False)
    # warm(settings, runs by role, workers): compute the analysis caches the chapter reads from
    # these runs (a subset of settings.runs(), possibly at another training precision)
    warm: Callable[["Settings", Runs, int], None] = field(default=no_warm, repr=False)

    def __post_init__(self) -> None:
        if "book" not in self.scales:
            raise ValueError(f"{self.key}: scales must include 'book', got {sorted(self.scales)}")
        for scale, changes in self.scales.items():
            unknown = sorted(set(changes) - set(self.book))
            if unknown:
                raise ValueError(f"{self.key}: scale {scale!r} sets {unknown}, which the book "
                                 f"scale does not declare")


class Settings(Mapping):
    """A chapter's settings at one preset (read-only; ``s.seeds`` or ``s["seeds"]``)."""

    def __init__(self, chapter: Chapter, preset: str, values: dict, given: frozenset):
        self.chapter, self.preset = chapter, preset
        self._values, self.given = values, given       # given: set by the caller, not the registry

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{self.chapter.key} has no setting {name!r}; it has "
                                 f"{', '.join(self._values)}") from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Settings({self.chapter.key!r}, {self.preset!r}, {self._values!r})"

    def runs(self) -> Runs:
        """The chapter's runs at these settings, by role."""
        return self.chapter.runs(self)

    def load(self, *roles: str, workers: int = 0) -> list:
        """The :class:`~modadd.runs.Run` of every run of ``roles`` in order (trained on a cache
        miss by ``workers`` processes, 0: one per core; never under ``MODADD_NO_TRAIN=1``)."""
        from .runner import load_or_train_many
        by_role = self.runs()
        unknown = [r for r in roles if r not in by_role]
        if unknown:
            raise ValueError(f"roles: {self.chapter.key} has no role {', '.join(unknown)}; its "
                             f"roles are {', '.join(by_role)}")
        return load_or_train_many([c for r in roles for c in by_role[r]],
                                  n_workers=workers or None)

    def warm(self, workers: int = 0) -> None:
        """Compute the analysis caches the chapter reads (cache misses only; ``workers``: 0 for
        the chapter's default): what ``make study`` calls after training."""
        self.chapter.warm(self, self.runs(), workers)

    def _repr_markdown_(self) -> str:
        shown = ", ".join(f"`{k}` = {_show(v)}" + (" (set)" if k in self.given else "")
                          for k, v in self._values.items())
        return (f"Settings of {self.chapter.key} at preset `{self.preset}` (`modadd.registry`;"
                f" \"(set)\": given as a parameter): {shown or 'none'}.")

    def command(self) -> str:
        """The papermill command that executes the chapter at these settings."""
        given = "".join(f" -p {k} {_cli(self._values[k])}" for k in sorted(self.given))
        return (f"papermill notebooks/{self.chapter.notebook}.py {self.chapter.notebook}.ipynb"
                f" -p preset {self.preset}{given}")

    def cost(self) -> dict:
        """What the chapter's runs cost, from the stored runs' metadata (``meta.json``, written
        when a run finished): ``runs`` planned, ``stored``, their ``process_hours``."""
        import json

        from .paths import results_dir
        from .runs import run_key
        keys = {run_key(c) for cfgs in self.runs().values() for c in cfgs}
        metas = [results_dir() / "runs" / k / "meta.json" for k in sorted(keys)]
        walls = [json.loads(m.read_text())["wall_s"] for m in metas if m.exists()]
        return {"runs": len(keys), "stored": len(walls), "process_hours": sum(walls) / 3600}

    def reproduce(self) -> str:
        """The chapter's "Reproduce this chapter" box (HTML: the book and JupyterLab both show
        it): the command, the preset, the training cost from run metadata, whether the page
        needs weights, and these settings."""
        import html
        cost = self.cost()
        if cost["runs"] == 0:
            training = "none: the chapter trains nothing"
        elif cost["stored"] == cost["runs"]:
            training = (f"{cost['runs']} runs, {cost['process_hours']:.2f} process-hours (one "
                        f"thread per run; from the runs' metadata), all stored")
        else:
            training = (f"{cost['runs']} runs, {cost['stored']} stored "
                        f"({cost['process_hours']:.2f} process-hours); the rest train on first use")
        weights = ("no: it reads the runs' stored summaries only" if self.chapter.warm is no_warm
                   else "no to rebuild the page (it reads the committed analysis results); yes "
                        "to change an analysis setting, whose results are computed from the runs'"
                        " weight trajectories (retrained into <code>data/cache</code> when "
                        "missing)")
        settings = ", ".join(f"<code>{html.escape(k)}</code> = {html.escape(_show(v))}"
                             + (" (set)" if k in self.given else "")
                             for k, v in self._values.items()) or "none"
        rows = [("command", f"<code>{html.escape(self.command())}</code>"),
                ("preset", f"<code>{html.escape(self.preset)}</code> (the "
                           f"<a href=\"../book/presets.html\">presets page</a>)"),
                ("training", training), ("weights needed", weights),
                ("settings", f"{settings} (<code>modadd.registry</code>; \"(set)\": given as "
                             f"a parameter)")]
        items = "".join(f"<li><b>{k}</b>: {v}</li>" for k, v in rows)
        return ('<div class="admonition tip reproduce-chapter"><p class="admonition-title">'
                f'Reproduce this chapter</p><ul class="simple">{items}</ul></div>')

    def _repr_html_(self) -> str:
        return self.reproduce()


def _show(value: Any) -> str:
    return "[" + ", ".join(map(str, value)) + "]" if isinstance(value, tuple) else f"{value}"


def _cli(value: Any) -> str:
    """A setting as papermill's ``-p`` reads it (YAML)."""
    if isinstance(value, tuple):
        return "'[" + ", ".join(map(str, value)) + "]'"
    return str(value).lower() if isinstance(value, bool) else str(value)


def _checked(key: str, name: str, value: Any, default: Any) -> Any:
    """``value`` for setting ``name`` of chapter ``key`` if it has ``default``'s type (lists
    become tuples, ints pass as floats); else a ValueError naming the setting."""
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} setting {name}: must be a list, got {value!r}")
        return tuple(value)
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(default, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise ValueError(f"{key} setting {name}: must be {type(default).__name__} "
                         f"(the registry's value is {default!r}), got {value!r}")
    return value


def chapter(key: str) -> Chapter:
    """The registry entry ``key`` (``"ch01"`` … ``"ch12"``)."""
    if key not in CHAPTERS:
        raise ValueError(f"chapter: must be one of {', '.join(CHAPTERS)}, got {key!r}")
    return CHAPTERS[key]


def settings(key: str, preset: str = "book", **given: Any) -> Settings:
    """Chapter ``key``'s settings at ``preset``: the book scale's values, what the preset
    changes, then ``given`` (a value of ``None`` keeps the registry's)."""
    entry = chapter(key)
    if preset not in entry.scales:
        raise ValueError(f"preset: {key} runs at {', '.join(map(repr, entry.scales))}, got "
                         f"{preset!r}")
    unknown = sorted(set(given) - set(entry.book))
    if unknown:
        raise ValueError(f"{key}: no setting {', '.join(unknown)}; its settings are "
                         f"{', '.join(entry.book) or 'none'}")
    values = {**entry.book, **entry.scales[preset]}
    values = {k: _checked(key, k, v, entry.book[k]) for k, v in values.items()}
    chosen = {k: v for k, v in given.items() if v is not None}
    values.update({k: _checked(key, k, v, entry.book[k]) for k, v in chosen.items()})
    return Settings(entry, preset, values, frozenset(chosen))


def from_namespace(key: str, namespace: Mapping[str, Any]) -> Settings:
    """A notebook's settings: ``preset`` and each of chapter ``key``'s settings read from
    ``namespace`` (the notebook's ``globals()``, after papermill's injected parameters)."""
    entry = chapter(key)
    missing = [k for k in ("preset", *entry.book) if k not in namespace]
    if missing:
        raise ValueError(f"{key}: the parameters cell lacks {', '.join(missing)}")
    return settings(key, namespace["preset"], **{k: namespace[k] for k in entry.book})


def chapters_at(preset: str) -> list[Chapter]:
    """The chapters that run at ``preset``, in book order."""
    return [c for c in CHAPTERS.values() if preset in c.scales]


def study_runs(preset: str = "book", seeds: int | None = None) -> Runs:
    """Every run the chapters read at ``preset`` (``seeds``: every chapter's seed count), by
    role; a role several chapters read is listed once per run (first chapter's order)."""
    out: Runs = {}
    for entry in chapters_at(preset):
        s = settings(entry.key, preset, **({"seeds": seeds} if "seeds" in entry.book else {}))
        for role, cfgs in s.runs().items():
            if cfgs:                    # a role left empty at this scale (an empty setting)
                _merge(out.setdefault(role, []), cfgs)
    return out


def settings_table(keys: list[str] | None = None):
    """One row per (chapter, setting), one column per scale any of them runs at: each setting's
    value there ("" where the chapter does not run at that scale).  The book's presets page."""
    import pandas as pd
    rows = []
    for key in keys or list(CHAPTERS):
        entry = chapter(key)
        for name in entry.book:
            rows.append({"chapter": key, "setting": name,
                         **{scale: _show(settings(key, scale)[name]) for scale in entry.scales}})
    order = [*MARKER_SCALES, *(c for r in rows for c in r if c not in
                               (*MARKER_SCALES, "chapter", "setting"))]
    table = pd.DataFrame(rows).set_index(["chapter", "setting"])
    return table[list(dict.fromkeys(c for c in order if c in table))].fillna("")


def main(argv: list[str] | None = None) -> None:
    """``python -m modadd.registry [chNN ...]``: print the chapters' settings at every scale."""
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="*", help=f"default: all of {', '.join(CHAPTERS)}")
    args = parser.parse_args(argv)
    for key in args.chapters:
        if key not in CHAPTERS:
            parser.error(f"chapter: must be one of {', '.join(CHAPTERS)}, got {key!r}")
    print(settings_table(args.chapters or None).to_string())


def _merge(into: list[RunConfig], cfgs: list[RunConfig]) -> None:
    """Append to ``into`` each of ``cfgs`` it does not hold yet."""
    for cfg in cfgs:
        if cfg not in into:
            into.append(cfg)


# ----------------------------------------------------------------------------------- chapters
# Imports inside the functions: the registry is read by every notebook and by the claims, so it
# loads nothing heavy until a chapter's runs are asked for.

def _marker_roles(s: Settings, *roles: str, **counts: int) -> Runs:
    from .presets import study_configs
    by_role = study_configs(s.preset, s.seeds, **counts)
    return {role: by_role[role] for role in roles}


def _runs_ch02(s: Settings) -> Runs:
    from dataclasses import replace

    from .presets import constant_lr, preset_seeds
    main = preset_seeds(s.preset, s.seeds)
    if s.n_steps:
        main = [replace(c, train=replace(c.train, n_steps=s.n_steps)) for c in main]
    return {"main": main, "constant lr": [constant_lr(c) for c in main],
            "original lr": [constant_lr(c, s.control_lr) for c in main]}


def _runs_ch03(s: Settings) -> Runs:
    from .presets import paper_setting
    runs = _marker_roles(s, "main", "constant lr", "original lr", "single m", "dense snapshots",
                         "main bf16", "longer budget", single_m_seeds=s.single_m_seeds)
    if s.paper_setting_seeds:       # §6: the paper's stated setting (T=32) and its task under
        runs.update(paper_setting(s.preset, s.paper_setting_seeds))     # the book's optimiser
    return runs


def _grams(runs: Runs, roles: tuple[str, ...]) -> None:
    """Cache the attention-increment Grams (chapter 3's measures) of the runs of ``roles``."""
    from .manifold import increment_grams
    for role in roles:
        for cfg in runs.get(role, []):
            increment_grams(cfg)


def _warm_ch03(s: Settings, runs: Runs, workers: int) -> None:
    from .manifold import dense_lock_in
    _grams(runs, ("main", "constant lr", "original lr", "single m", "main bf16",
                  "longer budget", "paper setting: stated", "paper setting: book optimizer"))
    for cfg in runs.get("dense snapshots", []):     # lock-in at 10-step resolution (a few kB)
        dense_lock_in(cfg)


def _runs_ch04(s: Settings) -> Runs:
    return _marker_roles(s, "main", "full params", "dense snapshots")


def _runs_full_params(s: Settings) -> Runs:
    return _marker_roles(s, "full params")


def commutator_settings(s: Settings):
    """Chapter 5's :class:`~modadd.commutator.CommutatorSettings` from its registry settings."""
    from .commutator import CommutatorSettings
    return CommutatorSettings(pairs=s.pairs)


def _warm_ch05(s: Settings, runs: Runs, workers: int) -> None:
    from .commutator import compute_tables
    cfgs = runs.get("full params", [])
    if cfgs:
        compute_tables(cfgs, commutator_settings(s), workers=workers or min(2, len(cfgs)))


def probe_settings(s: Settings):
    """Chapter 6's :class:`~modadd.sae.ProbeSettings` from its registry settings."""
    from .sae import ProbeSettings
    return ProbeSettings(n_train=s.n_train, n_eval=s.n_eval, n_latents=s.n_latents,
                         random_draws=s.random_draws, sae_steps=s.sae_steps)


def probe_points(s: Settings, cfg: RunConfig) -> tuple[list[int], list[int]]:
    """Chapter 6's measured (steps, layers) on runs like ``cfg``: the snapshots nearest the
    ``stages`` and the listed layers (none listed: the middle and last block)."""
    from .sae import default_layers, stage_steps
    return stage_steps(cfg, list(s.stages)), sorted(set(s.layers)) or default_layers(cfg)


def _warm_ch06(s: Settings, runs: Runs, workers: int) -> None:
    from .sae import compute_tables
    cfgs = runs.get("full params", [])
    if cfgs:
        steps, layers = probe_points(s, cfgs[0])
        compute_tables(cfgs, steps, layers, probe_settings(s),
                       workers=workers or min(2, len(cfgs)))


CH07_ROLES = ("main", "mlp", "curriculum", "curriculum (no reset)", "largest m only")


def _runs_ch07(s: Settings) -> Runs:
    runs = _marker_roles(s, *CH07_ROLES, "paper sgd", "difficulty", "single m",
                         few_seeds=s.few_seeds, sgd_seeds=s.sgd_seeds)
    # the difficulty grid's table adds chapter 3's single-m runs of its first seeds
    runs["single m"] = [c for c in runs["single m"] if c.seed < s.few_seeds]
    return runs


def _warm_ch07(s: Settings, runs: Runs, workers: int) -> None:
    from .arms import mlp_increment_grams
    _grams(runs, CH07_ROLES)                  # the difficulty grid and SGD: accuracies only
    for cfg in runs.get("mlp", []):           # the MLP weights' own trajectories
        mlp_increment_grams(cfg)


def _runs_ch08(s: Settings) -> Runs:
    return _marker_roles(s, "mul C7", "add C7")


def _warm_ch08(s: Settings, runs: Runs, workers: int) -> None:
    _grams(runs, ("mul C7", "add C7"))


def _runs_ch09(s: Settings) -> Runs:
    from .grokking import (fraction_sweep, grokking_study, nanda_ablation, nanda_sweep,
                           power_ablation)
    study = grokking_study(s.preset, seeds=s.seeds, perturbations=s.perturbations)
    return {"grokking": study["main"], "grokking perturbed": study["perturbed"],
            # §7: the published references (Nanda et al.'s sweep; Power et al.'s recipe), and
            # one recipe difference at a time at one fraction and seed 0
            "nanda sweep": nanda_sweep(s.nanda_preset, s.reference_fractions,
                                       s.reference_seeds, s.reference_steps),
            "nanda ablation": list(nanda_ablation(s.nanda_arms, s.ablation_fraction, 0,
                                                  s.reference_steps, s.nanda_preset).values()),
            "power sweep": fraction_sweep(s.power_preset, s.reference_fractions,
                                          s.reference_seeds),
            "power sweep: answer loss": fraction_sweep(s.power_answer_preset,
                                                       s.reference_fractions, s.reference_seeds),
            "power sweep: default arch": fraction_sweep(s.power_default_preset,
                                                        s.reference_fractions, s.reference_seeds),
            "power ablation": list(power_ablation(s.power_arms, s.ablation_fraction, 0,
                                                  s.power_answer_preset).values())}


def _runs_ch10(s: Settings) -> Runs:
    from .grokking import detection_study
    study = detection_study(s.grid, seeds=s.seeds)
    return {"detection": study["grid"], "detection showcase": study["showcase"]}


def _runs_ch11(s: Settings) -> Runs:
    from .openq import prediction_study, scaling_study
    sweeps = scaling_study(s.preset, s.seeds)
    return {"open width": sweeps["width"], "open depth": sweeps["depth"],
            "open width mul": sweeps["width mul"], "open prediction": prediction_study(s.preset),
            # question 3 compares chapter 7's arms at the same seeds
            **_marker_roles(s, *CH07_ROLES)}


def _runs_ch12(s: Settings) -> Runs:
    from .grokking import mechanism_runs
    r = mechanism_runs(s.mechanism_preset, s.seeds, s.fraction, s.weight_decay, s.null_seeds,
                       s.null_steps, s.every, s.n_steps)
    return {"mechanism": r["grok"], "mechanism null": r["null"]}


def _warm_ch12(s: Settings, runs: Runs, workers: int) -> None:
    from .mechanism import study
    if runs.get("mechanism") and runs.get("mechanism null"):   # both roles chosen (trained)
        study(s, progress=True)


def _marker(smoke: dict) -> dict:
    """The scales of a marker-task chapter (the presets of :data:`~modadd.presets.PRESETS`):
    each preset's own seed count, ``smoke``'s other changes, the book's analysis settings."""
    return {name: {"seeds": PRESETS[name].seeds, **(smoke if name == "smoke" else {})}
            for name in MARKER_SCALES}


BOOK_SEEDS = PRESETS["book"].seeds


CHAPTERS: dict[str, Chapter] = {c.key: c for c in [
    Chapter("ch01", "01_task", {"n_samples": 20_000, "seed": 0},
            {"smoke": {"n_samples": 2000}, "book": {}, "original": {}, "paper": {}}),
    Chapter("ch02", "02_training",
            {"seeds": BOOK_SEEDS, "n_steps": 0, "target_accuracy": 0.95, "control_lr": 3e-4},
            _marker({}), _runs_ch02),
    Chapter("ch03", "03_execution_manifold",
            {"seeds": BOOK_SEEDS, "single_m_seeds": 5, "k_subspace": 4, "null_draws": 20,
             "window": 15, "paper_setting_seeds": 5},
            {**_marker({"paper_setting_seeds": 2}), "original": {"seeds": PRESETS["original"].seeds,
                                                                 "paper_setting_seeds": 0},
             "paper": {"seeds": PRESETS["paper"].seeds, "paper_setting_seeds": 0}},
            _runs_ch03, _warm_ch03),
    Chapter("ch04", "04_attention_bubbling",
            {"seeds": BOOK_SEEDS, "n_examples": 256, "ablation_examples": 1024,
             "smooth_fraction": 0.05},
            _marker({}), _runs_ch04),
    Chapter("ch05", "05_commutators",
            {"seeds": BOOK_SEEDS, "pairs": 9, "k_main": 3, "early": 0.2, "late": 0.2},
            _marker({}), _runs_full_params, _warm_ch05),
    Chapter("ch06", "06_sae_probing",
            {"seeds": BOOK_SEEDS, "stages": (0.05, 0.25, 1.0), "layers": (), "n_train": 8192,
             "n_eval": 1024, "n_latents": 6, "random_draws": 20, "sae_steps": 3000,
             "strong": 0.5, "small_drop": 0.05},
            _marker({"n_train": 1024, "n_eval": 128, "random_draws": 4, "sae_steps": 300}),
            _runs_full_params, _warm_ch06),
    Chapter("ch07", "07_architecture_curriculum",
            {"seeds": BOOK_SEEDS, "few_seeds": 3, "sgd_seeds": 3, "null_draws": 20,
             "k_subspace": 4, "random_draws": 50, "learned": 0.9},
            _marker({"random_draws": 4}), _runs_ch07, _warm_ch07),
    Chapter("ch08", "08_multiplication",
            {"seeds": BOOK_SEEDS, "null_draws": 20, "learned": 0.9},
            _marker({}), _runs_ch08, _warm_ch08),
    # chapter 9's scales are the grokking presets (modadd.grokking.GROKKING_PRESETS)
    # (its references, §7, are the same runs at every scale but smoke)
    Chapter("ch09", "09_grokking_fingerprints",
            {"seeds": 5, "perturbations": 5, "n_delays": 32, "rank": 10, "ridge": 1e-6,
             "n_perm": 5000, "nanda_preset": "nanda", "power_preset": "power",
             "power_default_preset": "power-default-arch",
             "power_answer_preset": "power-answer-loss",
             "reference_fractions": (0.5, 0.4), "reference_seeds": 2, "reference_steps": 8000,
             "ablation_fraction": 0.4, "nanda_arms": tuple(NANDA_ABLATIONS),
             "power_arms": tuple(POWER_ABLATIONS)},
            {"smoke": {"seeds": 2, "perturbations": 2, "n_perm": 200, "nanda_preset": "smoke",
                       "power_preset": "smoke", "power_default_preset": "smoke",
                       "power_answer_preset": "smoke",
                       "reference_fractions": (0.7,), "reference_seeds": 1,
                       "reference_steps": 400, "ablation_fraction": 0.7,
                       "nanda_arms": ("his split",), "power_arms": ("no start token",)},
             "book": {}, "fingerprint": {}, "power": {}, "nanda": {}}, _runs_ch09),
    # chapter 10's grid runs at grokking preset ``grid``
    Chapter("ch10", "10_grokking_diagnostics", {"seeds": 4, "n_boot": 2000, "grid": "detect"},
            {"smoke": {"seeds": 2, "grid": "smoke"}, "book": {}}, _runs_ch10),
    # chapter 11's scales are modadd.openq.SCALES
    Chapter("ch11", "11_open_questions",
            {"seeds": 5, "null_draws": 10, "n_perm": 200, "bootstrap": 2000, "success": 0.9,
             "k_subspace": 4, "last_fraction": 0.25, "random_draws": 50},
            {"smoke": {"seeds": 2, "random_draws": 4}, "book": {}}, _runs_ch11),
    # chapter 12: Nanda's recipe at train fraction 0.5 with full-parameter snapshots; the LLC
    # grid is modadd.mechanism.LLC_GRID
    Chapter("ch12", "12_mechanism_and_development",
            {"mechanism_preset": "nanda", "seeds": 5, "fraction": 0.5, "weight_decay": 1.0,
             "null_seeds": 1, "null_steps": 2000, "every": 10, "n_steps": 8000,
             "null_draws": 20, "llc_every": 100, "llc_chains": 4, "llc_draws": 200,
             "llc_burnin": 100, "llc_batch": 256,
             "llc_step_sizes": (2.5e-5, 5e-5, 1e-4, 2e-4),
             "llc_localizations": (100.0, 300.0, 1000.0)},
            {"smoke": {"mechanism_preset": "smoke", "seeds": 2, "fraction": 0.7,
                       "null_steps": 300, "n_steps": 300, "null_draws": 4, "llc_every": 150,
                       "llc_chains": 2, "llc_draws": 40, "llc_burnin": 20, "llc_batch": 64,
                       "llc_step_sizes": (1e-4, 1e-3), "llc_localizations": (100.0, 1000.0)},
             "book": {}}, _runs_ch12, _warm_ch12),
]}


if __name__ == "__main__":
    main()
