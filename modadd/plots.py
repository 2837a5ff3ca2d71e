"""Shared plotting: the book's figure style (:func:`book_style`, :func:`panels`) and seed means
with confidence bands.

The book's text column is about 685 px wide at 1280 px.  A figure is drawn for it: at most
``PAGE_WIDTH`` inches wide at ``DPI`` dots per inch (a natural width of at most 1050 px, shown at
no less than ~0.65x), every font at least ``MIN_FONT`` points, legends beside or below the data;
wide panel rows become grids of at most ``MAX_COLUMNS`` columns.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .stats import seed_summary

PAGE_WIDTH = 7.0     # inches: the widest figure of the book
DPI = 150            # dots per inch of every figure shown (natural width <= 1050 px)
MIN_FONT = 9.0       # points: no text of a figure is smaller
MAX_COLUMNS = 2      # panels per row on the page
BOOK_RC = {"figure.dpi": DPI, "savefig.dpi": DPI, "figure.figsize": (PAGE_WIDTH, 4.2),
           "font.size": 10, "axes.titlesize": 10, "axes.labelsize": 10,
           "xtick.labelsize": MIN_FONT, "ytick.labelsize": MIN_FONT,
           "legend.fontsize": MIN_FONT, "legend.title_fontsize": MIN_FONT,
           "figure.titlesize": 11, "legend.framealpha": 0.9}


MAX_DATA_BYTES = 1_500_000   # a figure's data, as CSV, embedded in its page


def figure_data(frame: pd.DataFrame, name: str, what: str = "",
                label: str = "Download this figure's data") -> None:
    """Show a link under a figure that downloads the data it was drawn from (``frame``, as
    ``<name>.csv``).  The CSV travels inside the page (a ``data:`` URI), so the link works in
    the built book, offline and in JupyterLab alike.  ``what`` describes the rows (for example
    "one row per seed, step and m").  Draw the figure from a tidy frame and pass that frame:
    the download is then the figure's data, not a copy of it.  ``label``: the link's text (a
    table's download says so)."""
    import base64
    import html
    import re

    from IPython.display import HTML, display
    if not isinstance(frame, pd.DataFrame):
        raise ValueError(f"frame: must be a pandas DataFrame, got {type(frame).__name__}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name or ""):
        raise ValueError(f"name: letters, digits, '.', '_' and '-' only, got {name!r}")
    data = frame.to_csv(index=not isinstance(frame.index, pd.RangeIndex),
                        float_format="%.6g").encode()
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"frame: {len(data)} bytes as CSV, more than MAX_DATA_BYTES = "
                         f"{MAX_DATA_BYTES}; aggregate it (seed means, fewer steps) first")
    uri = "data:text/csv;base64," + base64.b64encode(data).decode()
    rows = f"{len(frame)} rows" + (f", {what}" if what else "")
    display(HTML(f'<p class="figure-data"><a download="{html.escape(name)}.csv" '
                 f'href="{uri}">{html.escape(label)}</a> (<code>{html.escape(name)}.csv'
                 f'</code>, {html.escape(rows)})</p>'))


def book_style() -> None:
    """The book's figure style for every chapter: seaborn's white grid with :data:`BOOK_RC`."""
    sns.set_theme(style="whitegrid", context="notebook", rc=BOOK_RC)


def panels(n: int, height: float = 2.6, columns: int = MAX_COLUMNS, **kwargs):
    """``fig, axes`` for ``n`` panels in rows of at most ``columns`` (<= :data:`MAX_COLUMNS`),
    :data:`PAGE_WIDTH` wide, ``height`` inches per row; ``axes`` is flat, unused panels removed.
    ``kwargs`` go to ``plt.subplots`` (``sharey``, ``sharex``...)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n: must be an integer >= 1, got {n!r}")
    if not isinstance(columns, int) or not 1 <= columns <= MAX_COLUMNS:
        raise ValueError(f"columns: must be in 1..{MAX_COLUMNS}, got {columns!r}")
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(PAGE_WIDTH, height * rows), squeeze=False,
                             **kwargs)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def shared_legend(fig: plt.Figure, axes: Sequence[plt.Axes], handles=None, labels=None,
                  ncol: Optional[int] = None, **kwargs):
    """One legend for a figure of :func:`panels`, never over the data: in the grid's empty last
    cell when an odd number (> 1) of panels fills rows of two, else centred below the panels.
    ``handles``/``labels`` default to every panel's entries, each label once (first wins);
    call it after ``fig.tight_layout()``.  ``kwargs`` go to ``fig.legend``."""
    if handles is None:
        entries: dict = {}
        for ax in axes:
            for handle, label in zip(*ax.get_legend_handles_labels()):
                entries.setdefault(label, handle)
        labels, handles = list(entries), list(entries.values())
    for ax in axes:                              # the per-panel legends it replaces
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if len(axes) > 1 and len(axes) % 2:
        left, bottom = axes[-2].get_position(), axes[-1].get_position()
        return fig.legend(handles, labels, loc="center", frameon=False, ncol=ncol or 1,
                          bbox_to_anchor=((left.x0 + left.x1) / 2, (bottom.y0 + bottom.y1) / 2),
                          **kwargs)
    return fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                      ncol=ncol or min(len(labels), 4), frameon=False, **kwargs)


def band_plot(frame: pd.DataFrame, x: str, hue: Optional[str] = None, value: str = "value",
              ax: Optional[plt.Axes] = None, palette: str = "viridis",
              label_fmt: str = "{}", log: bool = False) -> plt.Axes:
    """Line of the seed mean of ``value`` against ``x`` with its 95% CI band, one per ``hue``.

    ``log=True`` averages ``log(value)`` (a geometric mean with a CI on the log scale), for
    positive quantities drawn on a log axis, such as losses.
    """
    ax = ax or plt.gca()
    by: Sequence[str] = [hue, x] if hue else [x]
    if log:
        frame = frame.assign(**{value: np.log(frame[value])})
    summary = seed_summary(frame, by, value)
    if log:
        summary[["mean", "low", "high"]] = np.exp(summary[["mean", "low", "high"]])
        ax.set_yscale("log")
    groups = summary.groupby(hue) if hue else [(None, summary)]
    levels = sorted(summary[hue].unique()) if hue else [None]
    colours = dict(zip(levels, sns.color_palette(palette, len(levels))))
    for level, part in groups:
        colour = colours[level]
        ax.plot(part[x], part["mean"], color=colour,
                label=label_fmt.format(level) if hue else None)
        ax.fill_between(part[x], part["low"], part["high"], color=colour, alpha=0.25, lw=0)
    return ax


def point_ci(frame: pd.DataFrame, x: str, hue: str, value: str = "value",
             ax: Optional[plt.Axes] = None, palette="deep", dodge: float = 0.25,
             order: Optional[Sequence] = None, **style) -> plt.Axes:
    """Seed mean of ``value`` at each ``x`` with 95% CI error bars, one series per ``hue``,
    dodged sideways so series at the same ``x`` do not overlap (``x`` must be numeric);
    ``style`` goes to ``errorbar`` (e.g. ``fmt="s--"`` for squares joined by dashes)."""
    ax = ax or plt.gca()
    summary = seed_summary(frame, [hue, x], value)
    levels = list(order) if order is not None else sorted(summary[hue].unique())
    colours = palette if isinstance(palette, dict) else \
        dict(zip(levels, sns.color_palette(palette, len(levels))))
    offsets = np.linspace(-dodge, dodge, len(levels)) if len(levels) > 1 else [0.0]
    for offset, level in zip(offsets, levels):
        part = summary[summary[hue] == level]
        low = (part["mean"] - part["low"]).fillna(0).to_numpy()
        high = (part["high"] - part["mean"]).fillna(0).to_numpy()
        ax.errorbar(part[x] + offset, part["mean"], yerr=[low, high],
                    **{"fmt": "o", "capsize": 3, "ms": 5, **style},
                    color=colours[level], label=str(level))
    return ax


def entropy_panels(metrics: pd.DataFrame, seq_len: int, title: str) -> plt.Figure:
    """Readout entropy over training, one panel per layer, one band per m (seed CIs), with the
    uniform-attention entropy ``ln seq_len`` dotted; ``metrics`` is tidy with a seed column."""
    entropy = metrics[metrics.metric == "entropy"]
    layers = sorted(entropy.layer.unique())
    fig, axes = panels(len(layers), sharey=True)
    for index, (ax, layer) in enumerate(zip(axes, layers)):
        band_plot(entropy[entropy.layer == layer], x="step", hue="m", ax=ax, label_fmt="m={}")
        ax.axhline(np.log(seq_len), color="k", ls=":", lw=1)
        ax.set(title=f"layer {layer}", xlabel="step",      # y label on the left column only
               ylabel="readout entropy (nats)" if index % 2 == 0 else "")
    fig.suptitle(title)
    fig.tight_layout()
    shared_legend(fig, axes)
    return fig
