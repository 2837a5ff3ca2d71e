"""Shared plotting helpers: seed means with confidence bands."""
from __future__ import annotations

from typing import Optional, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .stats import seed_summary


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
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.3), sharey=True,
                             squeeze=False)
    for ax, layer in zip(axes[0], layers):
        band_plot(entropy[entropy.layer == layer], x="step", hue="m", ax=ax, label_fmt="m={}")
        ax.axhline(np.log(seq_len), color="k", ls=":", lw=1)
        ax.set(title=f"layer {layer}", xlabel="step", ylabel="readout entropy (nats)")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
