"""The claims ledger: each chapter records its computed verdict rows; book/claims.md shows them.

Rows live in ``data/results/claims/<chapter>-<preset>.csv`` (written atomically each time the
chapter runs), so the ledger page never holds a typed verdict.  ``CLAIMS`` holds the static part
(each claim as stated, its source, planned control and chapter); ``assemble_ledger`` joins the two
into one row per claim.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from . import paths
from .store import atomic_write_text

COLUMNS = ["id", "claim", "verdict", "effect", "CI", "control"]
VERDICTS = ("supported", "partly supported", "not supported", "not testable")


def ledger_table(rows: list[dict]) -> pd.DataFrame:
    """Validated ledger rows: the columns of ``COLUMNS``, verdicts from ``VERDICTS``."""
    table = pd.DataFrame(rows)
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"rows: missing column(s) {missing}; need {COLUMNS}")
    bad = sorted(set(table.verdict) - set(VERDICTS))
    if bad:
        raise ValueError(f"verdict: must be one of {VERDICTS}, got {bad}")
    return table[COLUMNS]


def record(chapter: str, rows: list[dict], preset: str) -> pd.DataFrame:
    """Validate ``rows``, store them as chapter ``chapter``'s ledger at ``preset``, return them."""
    table = ledger_table(rows)
    path = paths.results_dir() / "claims" / f"{chapter}-{preset}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, table.to_csv(index=False))
    return table


def read_ledger(preset: str = "book") -> pd.DataFrame:
    """All recorded rows at ``preset``, with a ``chapter`` column, in chapter order."""
    files = sorted((paths.results_dir() / "claims").glob(f"*-{preset}.csv"))
    frames = [pd.read_csv(f, dtype=str, keep_default_na=False)
              .assign(chapter=f.name[: -len(f"-{preset}.csv")]) for f in files]
    if not frames:
        return pd.DataFrame(columns=["chapter", *COLUMNS])
    return pd.concat(frames, ignore_index=True)[["chapter", *COLUMNS]]


# ---- the sixteen claims: static text, where each is tested ---------------------------------------
@dataclass(frozen=True)
class Claim:
    """One claim the study gives a verdict on, as its source states it."""

    id: str        # "C1".."C16"
    claim: str     # the claim, as the paper (or the seed system) states it
    source: str    # where it is stated: paper section / figure, or the seed system
    control: str   # the control or null it is to be measured against
    chapter: str   # the chapter (notebooks/<chapter>_*.py) that records its verdict


CLAIMS: tuple[Claim, ...] = (
    Claim("C1", "attention-only trajectories of each W_Q/W_K/W_V/W_O collapse to r90 ≈ 3–4",
          "§4.1, Fig 1", "random walk with matched increments; shuffled-increment walk", "03"),
    Claim("C2", "that dimension is stable across seeds", "§4.1", "CI width", "03"),
    Claim("C3", "the subspace orientation varies across seeds", "§4.1",
          "principal angles vs random-subspace angles", "03"),
    Claim("C4", "collapse happens within the first 20–30% of training", "§4.1",
          "time-resolved r90 / distance to final subspace", "03"),
    Claim("C5", "W_V, W_O lower-dimensional than W_Q, W_K; consistent across layers", "Fig 1",
          "paired seed differences", "03"),
    Claim("C6", "attention entropy at the readout drops sharply (\"bubbling\"), smoothly",
          "§4.2, Fig 2", "per m, per layer; uniform-attention entropy", "04"),
    Claim("C7", "bubble timing correlates with manifold stabilization", "§4.2",
          "across seeds: correlation of the two times", "04"),
    Claim("C8", "commutators are large in ambient space but their projection on the execution "
          "subspace is small (ρ → 0, > 92–95% perpendicular); exec/random ratio 2–10×",
          "§4.3, Figs 3–5", "random K-dim subspace in the same coordinates; float64 direct δ",
          "05"),
    Claim("C9", "SAE latents correlate with m / positions, but ablating them barely changes "
          "accuracy; largest drop early", "§4.4, Fig 6",
          "random-latent ablation; reconstruction-only", "06"),
    Claim("C10", "MLPs disrupt the low-dimensional collapse and hurt generalization at equal "
          "budget", "§4.5", "attention-only, same steps, same seeds", "07"),
    Claim("C11", "mixed training finds one manifold for all m; strict curriculum forgets small m",
          "§4.5", "per-m accuracy over time; principal angles between final subspaces", "07"),
    Claim("C12", "m ≥ 4 from scratch fails; curriculum / mixed succeed (optimization barrier, "
          "not capacity)", "seed 000 (code README)", "m=4-only from scratch, same budget", "07"),
    Claim("C13", "multiplication needs a higher-dimensional manifold (4–6 vs 3–4)", "§4.6",
          "addition at equal settings (prime C = 7)", "08"),
    Claim("C14", "DMD spectra of training fingerprints characterize grokking runs: they separate "
          "weight decays and are stable across seeds and 1e-3 init perturbations",
          "seed 001 (fingerprints)", "spectral Wasserstein between vs within conditions", "09"),
    Claim("C15", "grokking can be detected early (before test accuracy jumps) from training "
          "signals", "seed 002 (diagnostics)",
          "ground-truth grok step; precision/recall over seeds × wd", "10"),
    Claim("C16", "early low-dimensional diagnostics predict eventual success", "open question",
          "AUC over many runs", "11"),
)
NOT_MEASURED = "not yet measured"
LEDGER_COLUMNS = ["id", "claim", "source", "verdict", "effect", "CI", "control", "preset",
                  "chapter", "page", "section"]
_LEDGER_HEADING = re.compile(r"^# #+ (?P<title>(?:\d+\.\s*)?Claims ledger rows?)\s*$", re.M)


def section_anchor(title: str) -> str:
    """The HTML id Sphinx gives a section titled ``title`` ("5. Claims ledger rows" ->
    "claims-ledger-rows"): lower case, runs of other characters as one hyphen, no leading digits."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower())
    return re.sub(r"^[-0-9]+|-+$", "", slug)


def chapter_section(chapter: str) -> tuple[str, str]:
    """``(page, anchor)`` of chapter ``chapter``'s claims-ledger section: the book page
    (``notebooks/03_execution_manifold``) and the id of its "Claims ledger rows" heading."""
    found = sorted((paths.ROOT / "notebooks").glob(f"{chapter}_*.py"))
    if len(found) != 1:
        raise ValueError(f"chapter: need exactly one notebooks/{chapter}_*.py, found {len(found)}")
    heading = _LEDGER_HEADING.search(found[0].read_text())
    if heading is None:
        raise ValueError(f"chapter: {found[0].name} has no 'Claims ledger rows' heading")
    return f"notebooks/{found[0].stem}", section_anchor(heading["title"])


def assemble_ledger(preset: str = "book") -> pd.DataFrame:
    """One row per claim of ``CLAIMS`` (in order), ``LEDGER_COLUMNS``: the claim as stated, the
    verdict, effect, CI and control its chapter recorded at ``preset``, and the chapter's ledger
    section (``page``, ``section``).  A claim with no recorded row has the verdict
    ``NOT_MEASURED``, empty effect and CI, and its planned control."""
    if not isinstance(preset, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", preset):
        raise ValueError(f"preset: must be a preset name (letters, digits, _ or -), got {preset!r}")
    recorded = read_ledger(preset)
    rows = []
    for claim in CLAIMS:
        mine = recorded[recorded.id == claim.id]
        # a later chapter may record a claim again (e.g. at another scale): the home chapter wins
        home = mine[mine.chapter == claim.chapter]
        row = (home if len(home) else mine).head(1).to_dict("records")
        page, section = chapter_section(claim.chapter)
        if row:
            measured = {**{k: row[0][k] for k in ("verdict", "effect", "CI", "control")},
                        "preset": preset}
        else:
            measured = {"verdict": NOT_MEASURED, "effect": "", "CI": "", "control": claim.control,
                        "preset": ""}
        rows.append({"id": claim.id, "claim": claim.claim, "source": claim.source, **measured,
                     "chapter": claim.chapter, "page": page, "section": section})
    return pd.DataFrame(rows, columns=LEDGER_COLUMNS)
