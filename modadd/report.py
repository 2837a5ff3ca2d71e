"""How numbers are written in the book: one place for interval formatting, effect phrasing and
verdict colours (notebooks and the ledger page import from here; no notebook keeps a copy).

Formats, all from seed values or from a ``(mean, low, high)`` triple:

- ``ci_text([...])`` -> ``"3.71 [3.53, 3.89]"``; one value -> ``"3.71 (n=1)"``; none -> ``"—"``;
- ``digits`` fixed decimals (``fmt="g"``: significant digits, ``fmt="e"``: scientific);
- ``signed=True`` writes ``+0.28 [-0.03, +0.59]`` for differences;
- ``bounds=(0, 1)`` keeps the interval inside the quantity's range (accuracies, proportions,
  distances): see :func:`modadd.stats.clip_interval`.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

from .stats import clip_interval, mean_ci

DASH = "—"
VERDICT_COLOURS = {"supported": "#d9f0d3", "partly supported": "#fdf5c9",
                   "not supported": "#f9d3cf", "not testable": "#e6e6e6",
                   "not yet measured": "#eeeeee"}


def number(value: float, digits: int = 2, fmt: str = "f", signed: bool = False) -> str:
    """One number: ``digits`` decimals (``fmt="f"``), significant digits ("g") or scientific
    ("e"); ``signed`` prefixes ``+`` on non-negative values; NaN/inf -> ``"—"``."""
    if fmt not in ("f", "g", "e"):
        raise ValueError(f"fmt: must be 'f', 'g' or 'e', got {fmt!r}")
    if value is None or not math.isfinite(float(value)):
        return DASH
    sign = "+" if signed else ""
    return f"{float(value):{sign}.{digits}{fmt}}"


def interval(ci: Sequence[float], digits: int = 2, fmt: str = "f", signed: bool = False,
             bounds: Optional[tuple[float, float]] = None) -> str:
    """``"[low, high]"`` of a ``(mean, low, high)`` triple (``""`` when the bounds are NaN)."""
    mean, low, high = (float(v) for v in ci)
    if bounds is not None:
        mean, low, high = clip_interval((mean, low, high), bounds)
    if not (math.isfinite(low) and math.isfinite(high)):
        return ""
    return f"[{number(low, digits, fmt, signed)}, {number(high, digits, fmt, signed)}]"


def fmt_ci(ci: Sequence[float], digits: int = 2, fmt: str = "f", signed: bool = False,
           bounds: Optional[tuple[float, float]] = None) -> str:
    """``"mean [low, high]"`` of a ``(mean, low, high)`` triple; ``"mean (n=1)"`` when the bounds
    are NaN; ``"—"`` when the mean is."""
    mean = float(ci[0])
    if not math.isfinite(mean):
        return DASH
    bracket = interval(ci, digits, fmt, signed, bounds)
    return f"{number(mean, digits, fmt, signed)} {bracket or '(n=1)'}"


def ci_text(values: Sequence[float], digits: int = 2, fmt: str = "f", signed: bool = False,
            bounds: Optional[tuple[float, float]] = None) -> str:
    """Mean and Student-t 95% CI over independent seeds, written as :func:`fmt_ci` does."""
    return fmt_ci(mean_ci(values), digits, fmt, signed, bounds)


def pvalue(p: float) -> str:
    """A p-value for the reader: ``"p = 0.012"``, ``"p < 0.001"``, ``"—"`` when undefined."""
    if p is None or not math.isfinite(float(p)):
        return DASH
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def compare(value: float, other: float, more: str = "above", less: str = "below",
            same: str = "equal to") -> str:
    """The word relating ``value`` to ``other`` (``"above"``/``"below"``/``"equal to"``)."""
    return more if value > other else less if value < other else same


def ci_relation(ci: Sequence[float], ref: float = 0.0, more: str = "above", less: str = "below",
                neither: str = "indistinguishable from") -> str:
    """Whether an interval lies wholly above ``ref``, wholly below it, or covers it."""
    _, low, high = ci
    return more if low > ref else less if high < ref else neither


def verdict_style(verdict: str) -> str:
    """CSS for a verdict cell (background colour by verdict)."""
    return f"background-color: {VERDICT_COLOURS.get(verdict, '#ffffff')}"


def percent(value: float, digits: int = 0) -> str:
    """A fraction as a percentage: ``percent(0.973)`` -> ``"97%"``, ``percent(0.973, 1)`` ->
    ``"97.3%"``; NaN/inf -> ``"—"``."""
    if value is None or not math.isfinite(float(value)):
        return DASH
    return f"{float(value):.{digits}%}"


def conclusion(*records, lead: str = "") -> "Markdown":
    """A chapter's "Conclusion" opening, the same on every page: one plain sentence per claim
    the chapter decides (its verdict and the criterion that decided it, from the claim's rule),
    or, for a chapter that decides none, ``lead`` alone.  ``records``: the chapter's
    :class:`~modadd.claims.core.VerdictRecord` objects, in the order the chapter shows them."""
    from IPython.display import Markdown
    lines = [lead] if lead else []
    if records:
        lines.append("The verdicts of this chapter's claims, as their rules in `modadd.claims` "
                     "decide them (the [claims ledger](../book/claims.md) has every claim):")
        lines.append("")
        for r in records:
            why = r.why.rstrip(".")
            lines.append(f"- **{r.id}** — *{r.claim}* ({r.source}): **{r.verdict}**, because "
                         f"{why}.")
    elif not lead:
        raise ValueError("conclusion: give the chapter's verdict records or a lead sentence")
    return Markdown("\n".join(lines))
