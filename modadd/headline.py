"""The front page's summary: per claim one number — the paper's value, ours with its 95% CI, and
the null's — and per group of claims one plain sentence; both computed from the claims ledger.

Each claim's verdict record (:func:`modadd.ledger.ledger_records`) holds the numbers its rule read
(``values``) and its effect, CI and controls as text.  :data:`HEADLINES` says, per claim, which of
them is the claim's headline quantity, which control is its null, and what the source states
(``paper``: the range the claim quotes, ``None`` where it gives no number).  The paper's values
are the claims as stated (``CLAIMS.md``), not results; every measured number is read from the
record.  :func:`headline_table` returns one row per claim, :func:`summary_figure` draws it and
:func:`group_sentences` writes the plain-language findings.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Callable, Optional

import pandas as pd

NAN = float("nan")
Triple = tuple[float, float, float]          # estimate, CI low, CI high (NaN: not given)
_NUMBER = r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?"
_TRIPLE = re.compile(rf"({_NUMBER})\s*\[({_NUMBER}),\s*({_NUMBER})\]")
_INTERVAL = re.compile(rf"\[({_NUMBER}),\s*({_NUMBER})\]")


def _triple_in(text: str, after: str = "") -> Triple:
    """The first ``estimate [low, high]`` in ``text`` (after the substring ``after``, if
    given); a ValueError if there is none."""
    start = text.find(after) if after else 0
    found = _TRIPLE.search(text, max(start, 0)) if start >= 0 else None
    if found is None:
        raise ValueError(f"no 'estimate [low, high]' after {after!r} in {text!r}")
    return tuple(float(g) for g in found.groups())          # type: ignore[return-value]


def _interval_in(text: str, after: str = "") -> tuple[float, float]:
    """The first ``[low, high]`` in ``text`` after the substring ``after``."""
    start = text.find(after) if after else 0
    found = _INTERVAL.search(text, max(start, 0)) if start >= 0 else None
    if found is None:
        raise ValueError(f"no '[low, high]' after {after!r} in {text!r}")
    return float(found.group(1)), float(found.group(2))


def _number_after(text: str, after: str) -> float:
    """The first number in ``text`` after the substring ``after``."""
    start = text.find(after)
    found = re.search(_NUMBER, text[start + len(after):]) if start >= 0 else None
    if found is None:
        raise ValueError(f"no number after {after!r} in {text!r}")
    return float(found.group(0))


@dataclass(frozen=True)
class Headline:
    """How one claim's headline number is read from its verdict record."""

    quantity: str                                   # what is measured, in words (with unit)
    measured: Callable[["object"], Triple]          # record -> (estimate, low, high)
    null_label: str                                 # what the null or control is
    null: Callable[["object"], Triple]              # record -> the null's (estimate, low, high)
    paper: Optional[tuple[float, float]] = None     # the range the source states (lo == hi: one)
    paper_note: str = ""                            # how the source states it
    plain: str = ""                                 # the claim in plain words


def _v(*names: str) -> Callable:
    """Read ``values[name]`` for each name (NaN for an empty name)."""
    return lambda r: tuple(float(r.values[n]) if n else NAN for n in names)


def _const(value: float) -> Callable:
    return lambda r: (value, NAN, NAN)


def _control(name: str, after: str = "") -> Callable:
    return lambda r: _triple_in(r.controls[name], after)


def _c9(r) -> Triple:
    layer = int(r.values["worst_layer"])
    return (r.values[f"drop|{layer}|late"], NAN, r.values[f"drop_hi|{layer}|late"])


def _c9_null(r) -> Triple:
    text = next(v for k, v in r.controls.items() if k.startswith("6 random live latents"))
    return (_number_after(text, "late"), NAN, NAN)


HEADLINES: dict[str, Headline] = {
    "R0": Headline("lowest held-out accuracy, seed × m, at step 5000", _v("min_accuracy", "", ""),
                   "chance", lambda r: (float(r.controls["chance"]), NAN, NAN),
                   (1.0, 1.0), "~100% by step 5000",
                   plain="training reaches ~100% accuracy by step 5000"),
    "C1": Headline("r90 of the weight trajectory (mean over blocks)",
                   _v("overall", "overall low", "overall high"),
                   "random walk, same step norms", _v("null", "null low", "null high"),
                   (3.0, 4.0), "r90 ≈ 3–4",
                   plain="each attention matrix's weight trajectory collapses to 3–4 dimensions"),
    "C2": Headline("seed s.d. of r90: real − random walk", _v("gap", "gap low", "gap high"),
                   "same spread as the null", _const(0.0), None, "stable (no number)",
                   plain="that dimension is the same across seeds"),
    "C3": Headline("cross-seed subspace overlap (× random)",
                   _v("mean ratio", "mean ratio low", "mean ratio high"),
                   "random subspaces", _const(1.0), None, "varies (no number)",
                   plain="the subspace's orientation differs between seeds"),
    "C4": Headline("lock-in (fraction of training)", _v("real", "real low", "real high"),
                   "random walk, same step norms",
                   lambda r: ((r.values["null low"] + r.values["null high"]) / 2,
                              r.values["null low"], r.values["null high"]),
                   (0.2, 0.3), "within the first 20–30%",
                   plain="the collapse happens in the first 20–30% of training"),
    "C5": Headline("r90(Q,K) − r90(V,O)", _v("diff", "diff low", "diff high"),
                   "random walk, same runs", _control("random walk (same runs)"),
                   None, "V, O lower (no number)",
                   plain="W_V and W_O are lower-dimensional than W_Q and W_K"),
    "C6": Headline("readout entropy drop, weakest m (fraction of ln T)",
                   _v("weakest_drop", "min_drop_low", ""),
                   "uniform attention", _const(0.0), None, "sharp drop (no number)",
                   plain="the readout's attention entropy drops sharply and smoothly"),
    "C7": Headline("correlation of bubble and lock-in times over seeds", _v("r", "r_low", "r_high"),
                   "pairing broken across seeds",
                   lambda r: _triple_in(next(v for k, v in r.controls.items()
                                         if k.startswith("pairing broken")), "r ="),
                   None, "correlated (no number)",
                   plain="that drop is timed with the manifold's lock-in"),
    "C8": Headline("commutator enrichment: exec / random subspace (early)",
                   _v("fair_early", "fair_early_low", "fair_early_high"),
                   "random directions", _const(1.0), (2.0, 10.0), "2–10×",
                   plain="minibatch commutators are small inside the execution subspace"),
    "C9": Headline("accuracy drop, m/position SAE latents zeroed (late)", _c9,
                   "random latents zeroed", _c9_null, None, "barely changes (no number)",
                   plain="SAE latents track m and positions but ablating them barely matters"),
    "C10": Headline("joint attention r90: with − without MLP",
                    lambda r: _triple_in(r.effect, "with − without MLP"),
                    "no difference", _const(0.0), None, "MLPs raise it (no number)",
                    plain="MLPs break the low-dimensional collapse and hurt generalisation"),
    "C11": Headline("forgetting of m=1 under a strict curriculum",
                    lambda r: (r.values["f1"], *_interval_in(r.ci)),
                    "mixed training, same seeds",
                    _control("mixed training at the same seeds (forgetting on m=1)"),
                    None, "curriculum forgets (no number)",
                    plain="mixed training learns every m while a strict curriculum forgets"),
    "C12": Headline("m=4 accuracy, trained on m=4 only",
                    lambda r: (r.values["only"], *_interval_in(r.ci, "only")),
                    "chance", lambda r: (float(r.controls["chance (1/C)"]), NAN, NAN),
                    None, "fails (no number)",
                    plain="m = 4 from scratch fails where curriculum and mixed training succeed"),
    "C13": Headline("r90: multiplication − addition", _v("gap", "gap_low", "gap_high"),
                    "random walk: mul − add", _control("random-walk null: mul − add"),
                    (0.0, 3.0), "4–6 vs 3–4",
                    plain="multiplication needs a higher-dimensional manifold than addition"),
    "C14": Headline("DMD spectra: between / within weight-decay distance",
                    lambda r: (_number_after(r.effect, "distance"), *_interval_in(r.ci, "ratio")),
                    "no separation", _const(1.0), None, "separate (no number)",
                    plain="fingerprint DMD spectra separate weight decays and are stable"),
    "C15": Headline("detector firing in weight-decayed runs that never grok",
                    lambda r: (r.values["fpr_wd"],
                               *_interval_in(r.ci, "false-positive rate")),
                    "a detector that always fires", _const(1.0), None, "early (no number)",
                    plain="grokking can be detected before test accuracy jumps"),
    "C16": Headline("AUC of early low-dimensional diagnostics",
                    lambda r: (r.values["auc"], *_interval_in(r.ci, "diagnostics")),
                    "chance", _const(0.5), None, "open question",
                    plain="early low-dimensional diagnostics predict eventual success"),
    **{cid: Headline(f"{what}: distance to the nearest phase boundary (steps)",
                     _v("distance", "distance_low", "distance_high"),
                     "the same signal shuffled in time", _v("null_distance", "null_low",
                                                            "null_high"),
                     None, "not a claim of the paper", plain=plain)
       for cid, what, plain in (
           ("N1", "weight-trajectory lock-in",
            "the weight trajectory locks in at a mechanistic phase boundary of grokking"),
           ("N2", "fingerprint spectral change",
            "the fingerprint's DMD spectrum changes at a phase boundary"),
           ("N3", "LLC peak", "the local learning coefficient peaks at a phase boundary"))},
}

# the claims in groups a reader asks about, in the book's order: (title, claims, chapter page)
GROUPS = (
    ("Training", ("R0",)),
    ("The execution manifold", ("C1", "C2", "C3", "C4", "C5")),
    ("Attention bubbling", ("C6", "C7")),
    ("Commutators", ("C8",)),
    ("Sparse autoencoders", ("C9",)),
    ("Architecture and curriculum", ("C10", "C11", "C12")),
    ("Multiplication", ("C13",)),
    ("Grokking fingerprints", ("C14",)),
    ("Predicting grokking and success", ("C15", "C16")),
    ("Mechanism meets trajectory", ("N1", "N2", "N3")),
)


def headline_table(records: dict) -> pd.DataFrame:
    """One row per claim of ``records`` (claim id -> VerdictRecord, or an exception for a
    claim not measured): its headline quantity, measured triple, null triple, paper range and
    verdict.  A claim without a headline or a record is a ValueError naming it."""
    missing = sorted(set(records) - set(HEADLINES))
    if missing:
        raise ValueError(f"records: no headline declared for {', '.join(missing)}")
    rows = []
    for claim, h in HEADLINES.items():
        record = records.get(claim)
        if record is None or isinstance(record, Exception):
            rows.append({"id": claim, "quantity": h.quantity, "verdict": "not yet measured"})
            continue
        est, lo, hi = h.measured(record)
        n_est, n_lo, n_hi = h.null(record)
        rows.append({"id": claim, "quantity": h.quantity, "verdict": record.verdict,
                     "measured": est, "low": lo, "high": hi, "null": h.null_label,
                     "null_value": n_est, "null_low": n_lo, "null_high": n_hi,
                     "paper_low": h.paper[0] if h.paper else NAN,
                     "paper_high": h.paper[1] if h.paper else NAN, "paper": h.paper_note,
                     "chapter": record.chapter})
    return pd.DataFrame(rows)


def summary_figure(table: pd.DataFrame):
    """One row per claim, each on its own scale: the paper's range (blue band, or a tick for a
    single value), our estimate with its 95% CI (coloured by verdict) and the null (grey
    diamond, with its CI where it has one).  Returns the figure."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from .plots import PAGE_WIDTH
    colours = {"supported": "#1a9850", "partly supported": "#d49a00",
               "not supported": "#d73027", "not testable": "#777777"}
    shown = table.dropna(subset=["measured"]).reset_index(drop=True)
    fig, axes = plt.subplots(len(shown), 1, figsize=(PAGE_WIDTH, 0.5 * len(shown) + 1.0),
                             squeeze=False)
    for ax, row in zip(axes[:, 0], shown.itertuples()):
        points = [row.measured, row.low, row.high, row.null_value, row.null_low, row.null_high,
                  row.paper_low, row.paper_high]
        finite = [p for p in points if isinstance(p, float) and math.isfinite(p)]
        span = (max(finite) - min(finite)) or max(abs(max(finite)), 1.0)
        ax.set_xlim(min(finite) - 0.12 * span, max(finite) + 0.12 * span)
        if math.isfinite(row.paper_low):
            if row.paper_high > row.paper_low:
                ax.axvspan(row.paper_low, row.paper_high, color="#9ecae1", alpha=0.6, lw=0)
            else:
                ax.axvline(row.paper_low, color="#3182bd", lw=2.5)
        null_err = [[row.null_value - row.null_low if math.isfinite(row.null_low) else 0],
                    [row.null_high - row.null_value if math.isfinite(row.null_high) else 0]]
        ax.errorbar([row.null_value], [0], xerr=null_err, fmt="D", color="#888888", ms=5,
                    capsize=2, lw=1)
        err = [[row.measured - row.low if math.isfinite(row.low) else 0],
               [row.high - row.measured if math.isfinite(row.high) else 0]]
        ax.errorbar([row.measured], [0], xerr=err, fmt="o", ms=6, capsize=3, lw=1.8,
                    color=colours.get(row.verdict, "#000000"))
        ax.set_yticks([])
        ax.set_ylim(-1, 1)
        ax.grid(axis="y", visible=False)
        ax.tick_params(axis="x", labelsize=9, pad=1)
        ax.set_ylabel(row.id, rotation=0, ha="right", va="center", fontsize=10,
                      fontweight="bold")
        ax.set_title(row.quantity, fontsize=9, loc="left", pad=2)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=v) for v, c in colours.items()
               if v in set(shown.verdict)]
    handles += [Line2D([], [], marker="D", ls="", color="#888888", label="null or control"),
                Patch(color="#9ecae1", label="the paper's value")]
    fig.tight_layout(h_pad=0.6, rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    fig.legend(handles=handles, loc="upper center", ncol=3, frameon=False, fontsize=9,
               bbox_to_anchor=(0.5, 1.0))
    return fig


def _fmt(est: float, lo: float, hi: float) -> str:
    from .report import number
    if est == 0 and not (math.isfinite(lo) or math.isfinite(hi)):
        return "0"
    digits = 3 if max(abs(est), 1e-12) < 0.1 else 2
    text = number(est, digits)
    if math.isfinite(lo) and math.isfinite(hi):
        text += f" [{number(lo, digits)}, {number(hi, digits)}]"
    elif math.isfinite(hi):
        text += f" (upper bound {number(hi, digits)})"
    elif math.isfinite(lo):
        text += f" (lower bound {number(lo, digits)})"
    return text


# "not supported" says the evidence does not show the claim, not that it is false
WORDS = {"supported": "Supported", "partly supported": "Partly supported",
         "not supported": "Not supported by our data", "not testable": "Not testable",
         "not yet measured": "Not yet measured"}


def group_sentences(table: pd.DataFrame) -> list[str]:
    """One Markdown paragraph per claim group, in plain words: which of its claims hold, hold
    in part or do not (by the verdicts in ``table``), then the group's first claim's number
    against its null and what the source says."""
    from .ledger import NOT_MEASURED, VERDICTS
    rows = table.set_index("id")
    out = []
    for title, claims in GROUPS:
        part = rows.loc[[c for c in claims if c in rows.index]]
        said = []
        for verdict in (*VERDICTS, NOT_MEASURED):
            chosen = part[part.verdict == verdict]
            if len(chosen):
                said.append(f"{WORDS[verdict]}: " + "; ".join(
                    f"{HEADLINES[c].plain} ({c})" for c in chosen.index) + ".")
        sentence = f"**{title}.** " + " ".join(said)
        lead = part.iloc[0]
        if isinstance(lead.get("measured"), float) and math.isfinite(lead.measured):
            sentence += (f" In numbers ({lead.name}): {lead.quantity} "
                         f"{_fmt(lead.measured, lead.low, lead.high)}, against "
                         f"{_fmt(lead.null_value, lead.null_low, lead.null_high)} for "
                         f"{lead.null}; the source: {lead.paper}.")
        out.append(sentence)
    return out
