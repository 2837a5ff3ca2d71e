# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. The task: marker-based modular arithmetic
#
# A sequence of $T$ tokens holds $m$ non-adjacent **markers**; each marker is immediately followed
# by a **value** in $\{0,\dots,C-1\}$; every other position holds an i.i.d. **distractor**. The model
# reads the last position and must output
#
# $$y = \Big(\sum_{i=1}^{m} v_i\Big) \bmod C \qquad\text{(or } \textstyle\prod_i v_i \bmod C \text{ for multiplication).}$$
#
# This chapter shows the vocabulary layout, example sequences, and checks — by sampling and by exact
# enumeration — that labels are uniform, that marker positions are uniform over the non-adjacent
# sets, and what chance level is. It ends with the ways our task differs from the original code
# (bubble-modadd) and the paper (Xu 2026, §3).

# %% tags=["hide-input"]
from typing import Optional
import itertools
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from scipy import stats

import modadd
from modadd.plots import book_style, figure_data, panels
from modadd.report import conclusion
from modadd import registry
from modadd.task import TaskConfig, chance_accuracy, describe, render, sample_batch

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # "smoke" (CI, seconds) | "book" (2-core CPU) | "original" | "paper"
n_samples: Optional[int] = None # sampled examples per (m, C) for the label and position statistics
seed: Optional[int] = None      # seed of the sampling generator (measurement stream)

# %% tags=["hide-input"]
S = registry.from_namespace("ch01", globals())
display(S)
task = modadd.preset(preset).task
generator = torch.Generator().manual_seed(modadd.stream_seed(S.seed, "measure"))
book_style()

# %% [markdown]
# ## Vocabulary layout
# The `book` preset keeps the original code's layout (vocabulary size, value ids, marker ids, the
# $i$-th marker from the left being its own token) but draws distractors from **one fixed set** that
# excludes every marker id of the configuration.

# %% tags=["hide-input"]
print(describe(task))

# %% [markdown]
# ## Example sequences
# `[Mi]` is the $i$-th marker token, `<v>` a value, `·` a distractor; the label follows the arrow.

# %% tags=["hide-input"]
lines = []
for m in task.m_values:
    batch = sample_batch(task, 3, m, generator=generator)
    lines += [f"m={m}:  " + render(task, batch, i) for i in range(3)]
print("\n".join(lines))


# %% [markdown]
# ## Are labels uniform?
# For addition, the sum of $m$ independent uniform values mod $C$ is exactly uniform for every $m$
# (one uniform summand suffices). For multiplication the values are drawn from $1..C-1$ with $C$
# prime, so the product is uniform on the multiplicative group; with a value 0 or a composite $C$
# the label would pile up on 0 (we reject those configurations). We test both by sampling
# (`n_samples` per cell, $\chi^2$ goodness of fit against the uniform law).

# %% tags=["hide-input"]
def label_table(task: TaskConfig) -> pd.DataFrame:
    """Empirical label frequencies and a chi-square test per m."""
    rows = []
    for m in task.m_values:
        labels = sample_batch(task, S.n_samples, m, generator=generator).labels.numpy()
        support = np.array(task.value_tokens if task.op == "mul" else range(task.C))
        counts = np.array([(labels == k).sum() for k in support])
        p_value = stats.chisquare(counts).pvalue
        rows += [dict(op=task.op, C=task.C, m=m, label=int(k), frequency=c / S.n_samples,
                      p_uniform=p_value) for k, c in zip(support, counts)]
    return pd.DataFrame(rows)


variants = [task, replace(task, C=5), replace(task, C=16), replace(task, op="mul", C=7)]
labels = pd.concat([label_table(v) for v in variants], ignore_index=True)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Label distribution of the task sampler: the empirical frequency of each label (bars, one colour per $m$) for four task variants (panel titles: operation and modulus $C$), from `n_samples` sampled sequences per $m$; dashed line: the uniform law, which is also chance accuracy. Not a figure of the paper, which does not show its label law.", "name": "fig-ch01-labels"}, "image": {"alt": "Four bar-chart panels, one per task variant, each with bars of the frequency of every label for every m, and a dashed horizontal line at the uniform frequency"}}
fig, axes = panels(len(variants), height=2.7)
for ax, variant in zip(axes, variants):
    part = labels[(labels.op == variant.op) & (labels.C == variant.C)]
    sns.barplot(part, x="label", y="frequency", hue="m", ax=ax, palette="viridis")
    ax.axhline(chance_accuracy(variant), color="k", ls="--", lw=1, label="uniform")
    ax.set(title=f"{variant.op}, C={variant.C}", xlabel="label", ylabel="frequency")
    if len(part.label.unique()) > 8:                 # C=16: every other label
        ax.set_xticks(ax.get_xticks()[::2])
    ax.get_legend().remove()
handles, names = axes[0].get_legend_handles_labels()
fig.suptitle(f"Label distribution per m ({S.n_samples} samples per m)")
fig.tight_layout()
fig.legend(handles, [n if n == "uniform" else f"m={n}" for n in names], loc="upper center",
           bbox_to_anchor=(0.5, 0.0), ncol=len(names), frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it (its own cell: myst-nb puts every output of
# a figure cell inside the figure)
figure_data(labels, "fig-ch01-labels",
            what="one row per operation, modulus C, m and label: sampled frequency and the "
                 "chi-square p-value of that (op, C, m) against the uniform law")

# %% tags=["hide-input"]
label_tests = (labels.groupby(["op", "C", "m"])["p_uniform"].first().unstack("m")
               .rename(columns=lambda m: f"p (m={m})"))
label_tests.style.format("{:.2g}", na_rep="")

# %% [markdown]
# ## Marker positions
# Markers sit in positions $1..T-2$ with consecutive markers at least 2 apart (the value sits in
# between). Our sampler maps a uniform $m$-subset of $\{0..n-m\}$ ($n=T-2$ slots) to positions
# $1+c_i+i$, a bijection onto the non-adjacent sets, so it is exactly uniform with no rejection
# loop. {numref}`fig-ch01-marker-positions` shows the probability that position $p$ holds a
# marker, sampled (bars) against exact enumeration of every valid set (black dots).

# %% tags=["hide-input"]
def exact_marker_occupancy(T: int, m: int) -> np.ndarray:
    """P(position p holds a marker) under the uniform law on non-adjacent m-sets, by enumeration."""
    valid = [s for s in itertools.combinations(range(1, T - 1), m)
             if all(b - a >= 2 for a, b in zip(s, s[1:]))]
    counts = np.zeros(T)
    for subset in valid:
        counts[list(subset)] += 1
    return counts / len(valid)


occupancy = []
for m in task.m_values:
    positions = sample_batch(task, S.n_samples, m, generator=generator).marker_positions.numpy()
    occupancy.append(pd.DataFrame({
        "m": m, "position": np.arange(task.T),
        "sampled": np.bincount(positions.ravel(), minlength=task.T)[:task.T] / S.n_samples,
        "exact": exact_marker_occupancy(task.T, m)}))
occupancy = pd.concat(occupancy, ignore_index=True)
occupancy_error = {m: float((part.sampled - part.exact).abs().max())
                   for m, part in occupancy.groupby("m")}

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Marker position occupancy: the probability that position $p$ of a length-$T$ sequence holds a marker, one panel per $m$; bars: sampled with the task's sampler (`n_samples` sequences per $m$), black dots: exact, by enumerating every non-adjacent marker set. Not a figure of the paper.", "name": "fig-ch01-marker-positions"}, "image": {"alt": "One bar-chart panel per m of marker probability against sequence position, with black dots for the exact values sitting on top of the bars"}}
fig, axes = panels(len(task.m_values), height=2.5, sharey=True)
for ax, (m, part) in zip(axes, occupancy.groupby("m")):
    ax.bar(part.position, part.sampled, color="tab:blue", alpha=0.6, label="sampled")
    ax.plot(part.position, part.exact, "k.", label="exact")
    ax.set(title=f"m={m}", xlabel="position", ylabel="P(marker at position)")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
for ax in axes[1::2]:
    ax.set_ylabel("")                                   # shared with the panel on its left
handles, names = axes[0].get_legend_handles_labels()
fig.suptitle(f"Marker position occupancy, T={task.T}")
fig.tight_layout()
fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(occupancy, "fig-ch01-marker-positions",
            what="one row per m and position: sampled and exact probability of a marker there")

# %% tags=["hide-input"]
pd.Series(occupancy_error, name="max |sampled − exact|").rename_axis("m").to_frame().T

# %% [markdown]
# ### How often is the readout position a value token?
# With `readout="last"` (the original), the last position $T-1$ holds a value whenever a marker
# sits at $T-2$. The model then reads out *at* a value token: a shortcut-prone position. A dedicated
# query token (`readout="query"`) removes this; the table gives the exact probability per $m$.

# %% tags=["hide-input"]
readout_value = pd.DataFrame({
    "m": list(task.m_values),
    "exact": [exact_marker_occupancy(task.T, m)[task.T - 2] for m in task.m_values],
    "sampled": [float((sample_batch(task, S.n_samples, m, generator=generator)
                       .marker_positions == task.T - 2).any(dim=1).float().mean())
                for m in task.m_values],
})
readout_value

# %% [markdown]
# ## Chance level
# Labels are uniform, so no input-blind predictor beats $1/C$; a model that ignores one of the $m$
# values is also at chance, because the missing value shifts the sum uniformly. Anything above
# $1/C$ on the held-out probes therefore needs *all* marked values.

# %% tags=["hide-input"]
chance = pd.DataFrame({"op": [v.op for v in variants], "C": [v.C for v in variants],
                       "chance accuracy": [chance_accuracy(v) for v in variants]})
chance

# %% [markdown]
# ## Differences from the original code and from the paper
# Every row is a choice; the original behaviour stays available as an option (the `original`
# preset uses it where the row says so). The paper's text differs from its own code in several
# rows; we follow the code for the `book` preset and offer the paper's text as the `paper` preset.

# %% tags=["hide-input"]
original = modadd.preset("original")
book = modadd.preset("book")
paper = modadd.preset("paper")
differences = pd.DataFrame([
    ("sequence length T", original.task.T, paper.task.T, book.task.T),
    ("modulus C", original.task.C, f"{paper.task.C} (text: 8 or 16)", book.task.C),
    ("m values", "1–4", "text: 1–6", ",".join(map(str, book.task.m_values))),
    ("distractor set", "{0..255} minus values and the markers of the current m (changes with m)",
     "not stated", f"one fixed set of {book.task.n_distractors} ids"),
    ("marker positions", "one set per batch, shared by all examples", "not stated",
     book.task.positions.replace("_", " ")),
    ("readout", "last position (a value token in up to "
     f"{readout_value.exact.max():.0%} of m=4 sequences)", "not stated", book.task.readout),
    ("data RNG", "Python random (unseeded) + torch", "—", "own torch.Generator per stream"),
    ("held-out evaluation", "one fresh batch of 128", "—",
     f"fixed probe set of {book.train.probe_size} per m"),
    ("multiplication", "no code", "claimed (4–6D)", "op='mul', prime C, values 1..C−1"),
], columns=["aspect", "original code", "paper text", "this study (book)"])
differences.style.hide(axis="index")

# %% [markdown]
# ## Claims ledger rows
# This chapter tests no claim of the paper, so it adds no row to the claims ledger; it checks the
# task's own invariants, which every later verdict relies on (a failed check reads FAIL).

# %% tags=["hide-input"]
checks = pd.DataFrame([
    ("T1", "labels uniform for every m and C (add) and on 1..C−1 (mul)",
     "pass" if labels.p_uniform.min() > 1e-3 else "FAIL",
     f"min χ² p = {labels.p_uniform.min():.3f}", "uniform law"),
    ("T2", "marker positions uniform over non-adjacent sets",
     "pass" if max(occupancy_error.values()) < 5 / np.sqrt(S.n_samples) else "FAIL",
     f"max occupancy error {max(occupancy_error.values()):.4f}", "exact enumeration"),
], columns=["id", "check", "result", "effect", "control"])
checks.style.hide(axis="index")

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
passed = checks.set_index("id").result == "pass"          # T1: labels, T2: marker positions
labels_uniform, positions_uniform = passed["T1"], passed["T2"]
conclusion(lead=(
    f"The task's sampler gives {'uniform' if labels_uniform else 'NON-UNIFORM'} labels for "
    f"every $m$ and modulus tested (smallest $\\chi^2$ p-value "
    f"{labels.p_uniform.min():.3f}) and {'uniform' if positions_uniform else 'NON-UNIFORM'} "
    f"marker positions over the non-adjacent sets (largest error against exact enumeration "
    f"{max(occupancy_error.values()):.4f}), so chance accuracy is $1/C$ "
    f"({chance_accuracy(task):.3f} at the `{preset}` preset) and held-out accuracy above it "
    f"needs every marked value."))

# %% [markdown] tags=["remove-cell"]
# Headline values recorded for parameter sweeps (`modadd.sweep.collect`; hidden in the book).

# %% tags=["remove-cell"]
from modadd.sweep import record_value

record_value("min_label_p", float(labels.p_uniform.min()))
record_value("max_occupancy_error", float(max(occupancy_error.values())))
