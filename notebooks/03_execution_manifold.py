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
# # 3. Execution manifolds: how low-dimensional are the weight trajectories?
#
# The paper's central claim (§4.1, Fig. 1) is that the training trajectory of every attention
# matrix ($W_Q, W_K, W_V, W_O$, $d^2 = 16384$ entries each) "collapses" onto a 3–4-dimensional
# subspace within the first 20–30% of training, with the same dimension in every seed, a
# seed-dependent orientation, and $W_V, W_O$ lower-dimensional than $W_Q, W_K$ (claims C1–C5).
#
# **The measure.** For one matrix, stack the snapshots $W_t - W_0$ as rows of
# $X \in \mathbb{R}^{n \times d^2}$, centre over time and take the PCA explained-variance ratios
# $\lambda_k / \sum \lambda$ (through the $n \times n$ Gram matrix; `modadd.metrics`). The
# *effective rank* $r_{90}$ is the smallest $k$ whose first $k$ ratios reach 90%; the
# *participation ratio* $(\sum\lambda)^2/\sum\lambda^2$ is a threshold-free alternative.
#
# **The missing baseline.** Any trajectory that wanders has a small $r_{90}$: a pure random walk
# in $\mathbb{R}^{16384}$ has PCA ratios $\approx 6/(\pi^2 k^2)$ {cite}`antognini2018pca`, which
# reach 90% at $k = 6$ whatever the dimension. The original code never compared with this. We
# compare every number with two nulls, each drawn 20 times per run with the same snapshot count
# and the same rule:
#
# - **random walk**: isotropic Gaussian steps with the *same per-interval step norms* as the real
#   trajectory (drawn exactly in $n$ dimensions through the Bartlett decomposition of the
#   Wishart Gram matrix);
# - **shuffled increments**: the real increments $W_{t+1} - W_t$ in random order. It keeps every
#   step and all their mutual angles and destroys only their order, so it separates "the steps
#   live in a few directions" from "the steps keep going the same way". (The original's unused
#   "shuffled" control permuted snapshots, which leaves PCA unchanged: a no-op; a unit test
#   checks this.)

# %% tags=["hide-input"]
from typing import Optional
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

import modadd
from modadd import claims
from modadd import manifold
from modadd import registry
from modadd.claims import ch03
from modadd.plots import band_plot, point_ci, book_style, figure_data, panels, shared_legend
from modadd.report import conclusion, fmt_ci
from modadd.stats import mean_ci, seed_summary

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # "smoke" (CI, seconds) | "book" (2-core CPU) | "original" | "paper"
seeds: Optional[int] = None     # independent training seeds of the mixed-m runs (0..seeds-1)
single_m_seeds: Optional[int] = None # seeds of the single-m runs (orientation across m)
k_subspace: Optional[int] = None # dimension of the subspaces compared by principal angles
null_draws: Optional[int] = None # null trajectories per run and block
window: Optional[int] = None    # sliding-window width in snapshots (time-resolved r90)
paper_setting_seeds: Optional[int] = None # seeds of the paper's own setting (§6; 0: none)
workers: int = 0                # training processes on a cache miss (0: one per run)

# %% tags=["hide-input"]
S = registry.from_namespace("ch03", globals())
display(S)
roles = S.runs()
used = ["main", "constant lr", "original lr", "single m"]      # the roles this chapter reads
# (and "dense snapshots", §3; "main bf16" and "longer budget", §5)
modadd.load_or_train_many([c for r in used for c in roles[r]], n_workers=workers or None)
main = roles["main"]
cfg = main[0]
steps = manifold.block_grams(cfg)[2]
n_snapshots = len(steps)
window = min(S.window, n_snapshots // 2)
k_subspace = min(S.k_subspace, n_snapshots - 2)
MATRICES = ["W_Q", "W_K", "W_V", "W_O"]
SOURCES = ["real", "random walk", "shuffled increments"]
palette = dict(zip(SOURCES, ["#1f4e79", "#b0b0b0", "#e69f00"]))
book_style()
display(Markdown(
    f"Preset `{preset}`: {len(main)} seeds, {cfg.model.n_layers} layers, "
    f"$d = {cfg.model.d_model}$ ($d^2 = {cfg.model.d_model ** 2}$ per matrix), "
    f"**{n_snapshots} snapshots** every {cfg.train.snapshot_every} steps over "
    f"{cfg.train.n_steps} steps (the original code used {20_000 // 500} snapshots)."))

# %% [markdown]
# ## 1. Effective rank per layer and matrix, against the nulls (the paper's Fig. 1)
# Mean and 95% CI over seeds (the paper's Fig. 1 shows mean ± s.d. of a single setting, without
# a baseline). Each null point is first averaged over its draws within a run, then over seeds
# ({numref}`fig-ch03-r90-layers`).

# %% tags=["hide-input"]
dims = manifold.dimension_summary(main, null_draws=S.null_draws)
r90_blocks = dims[(dims.group == "block") & (dims.threshold == 0.9)]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Our reproduction of the paper's Fig. 1, with its missing baselines: effective rank $r_{90}$ (components for 90% of the variance) of each attention matrix's weight trajectory, one panel per matrix type, against layer; points: mean over seeds, bars: 95% CI over seeds, for the real trajectory, the matched random-walk null and the shuffled-increments null (each null averaged over its draws within a run first); shaded band: the range the paper reports.", "name": "fig-ch03-r90-layers"}, "image": {"alt": "Four panels, W_Q, W_K, W_V and W_O, each showing effective rank per layer as points with error bars for the real trajectory and two null trajectories, over a light band marking the paper's range"}}
fig, axes = panels(len(MATRICES), height=2.6, sharey=True)
for ax, matrix in zip(axes, MATRICES):
    point_ci(r90_blocks[r90_blocks.matrix == matrix], x="layer", hue="source", value="rank",
             ax=ax, palette=palette, order=SOURCES)
    ax.set(title=matrix, xlabel="layer", xticks=range(cfg.model.n_layers))
for ax in axes[::2]:
    ax.set_ylabel("$r_{90}$ (components\nfor 90% variance)")
for ax in axes:
    ax.axhspan(3, 4, color="#1f4e79", alpha=0.08, lw=0, label="paper: 3–4")
handles, labels = axes[0].get_legend_handles_labels()
fig.suptitle(f"Effective rank of each attention matrix's trajectory vs. matched nulls\n"
             f"(mean, 95% CI over {len(main)} seeds; cf. paper Fig. 1)")
fig.tight_layout()
shared_legend(fig, axes, handles, labels, ncol=len(labels))
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it (its own cell: myst-nb puts every output of
# a figure cell inside the figure)
figure_data(r90_blocks[["seed", "layer", "matrix", "source", "rank", "participation"]],
            "fig-ch03-r90-layers",
            what="one row per seed, layer, matrix and source (real or null, nulls averaged over "
                 "their draws): r90 and participation ratio")

# %% [markdown]
# The same numbers per matrix type (each seed's $r_{90}$ averaged over layers first, so the CI is
# over seeds), with the participation ratio beside it:

# %% tags=["hide-input"]
def by_matrix(table, value):
    per_seed = table.groupby(["seed", "matrix", "source"], as_index=False)[value].mean()
    out = seed_summary(per_seed, ["matrix", "source"], value)
    out["value"] = [fmt_ci((r.mean, r.low, r.high)) for r in out.itertuples()]
    return out.pivot(index="matrix", columns="source", values="value").loc[MATRICES, SOURCES]


pr_blocks = dims[(dims.group == "block") & (dims.threshold == 0.9)]
pd.concat({"r90": by_matrix(r90_blocks, "rank"),
           "participation ratio": by_matrix(pr_blocks, "participation")}, axis=1)

# %% [markdown]
# **Blocks jointly.** The Gram matrix of several blocks concatenated is the sum of their Gram
# matrices, so the dimension of a whole layer's attention weights, and of all of them, costs
# nothing extra. The nulls use the joint step norms in the joint dimension.

# %% tags=["hide-input"]
joint = dims[(dims.group != "block") & (dims.threshold == 0.9)]
summary = seed_summary(joint, ["label", "source"], "rank")
summary["r90"] = [fmt_ci((r.mean, r.low, r.high)) for r in summary.itertuples()]
summary.pivot(index="label", columns="source", values="r90")[SOURCES]

# %% [markdown]
# ### Does the learning-rate schedule set the dimension?
# The `book` preset decays its learning rate (cosine); the original code kept it constant
# (chapter 2). A decaying rate shrinks late steps, which by itself concentrates variance in the
# early, large moves. The same analysis on the two constant-rate controls (same seeds, same
# budget): peak rate held constant, and the original rate $3 \times 10^{-4}$.

# %% tags=["hide-input"]
settings = {"book (cosine)": main, "constant lr": roles["constant lr"],
            "original lr (constant 3e-4)": roles["original lr"]}
ROLE = dict(zip(settings, ["main", "constant lr", "original lr"]))    # the claims' role names
schedule_dims = pd.concat(
    [manifold.dimension_summary(cs, thresholds=(0.9,), null_draws=max(1, S.null_draws // 4))
     .assign(setting=name) for name, cs in settings.items()], ignore_index=True)
schedule_dims = schedule_dims[schedule_dims.group == "block"]
per_seed = schedule_dims.groupby(["setting", "seed", "matrix", "source"], as_index=False)["rank"].mean()
per_seed = per_seed[per_seed.source != "shuffled increments"]
per_seed["series"] = np.where(per_seed.source == "real", per_seed.setting,
                              per_seed.setting + " – null")
per_seed["x"] = per_seed.matrix.map({m: i for i, m in enumerate(MATRICES)})
order = [s for name in settings for s in (name, name + " – null")]
colours = dict(zip(order, sns.color_palette("Paired", len(order))[::-1]))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Effective rank $r_{90}$ per matrix type (mean over layers within each seed) under three optimisation schedules at the same seeds and step budget: the preset's cosine schedule, its peak rate held constant, and the original code's constant rate; each with its matched random-walk null (paler colour); points: mean over seeds, bars: 95% CI over seeds. Not a figure of the paper.", "name": "fig-ch03-r90-schedules"}, "image": {"alt": "Points with error bars for W_Q, W_K, W_V and W_O, six series side by side at each matrix: three learning-rate schedules and a random-walk null for each"}}
fig, ax = plt.subplots(figsize=(7, 3.4))
point_ci(per_seed, x="x", hue="series", value="rank", ax=ax, palette=colours, order=order,
         dodge=0.3)
ax.set(xticks=range(4), xticklabels=MATRICES, ylabel="$r_{90}$ (mean over layers)",
       title="Effective rank under three optimisation schedules,\nwith random-walk nulls")
handles, labels = ax.get_legend_handles_labels()
by_label = dict(zip(labels, handles))
shown_order = order[::2] + order[1::2]         # two columns: each setting, then its null
fig.tight_layout()
fig.legend([by_label[s] for s in shown_order], shown_order, loc="upper center",
           bbox_to_anchor=(0.5, 0.0), ncol=2, frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(per_seed[["setting", "seed", "matrix", "source", "rank"]], "fig-ch03-r90-schedules",
            what="one row per schedule, seed, matrix type and source (real or random walk): r90 "
                 "averaged over layers")

# %% [markdown]
# ## 2. How much does $r_{90}$ depend on the snapshot count, spacing and threshold?
# The same trajectories subsampled to fewer snapshots (first and last kept), evenly spaced at
# three thresholds, and log-spaced (dense early, where the weights move most) at 90%; real and
# random-walk null matched to the kept intervals. The paper does not state its snapshot count;
# the original code took 40, evenly spaced.

# %% tags=["hide-input"]
counts = sorted({c for c in (6, 11, 21, 31, 41, 61) if c <= n_snapshots} | {n_snapshots})
sens = manifold.snapshot_sensitivity(main, counts=counts, null_draws=max(1, S.null_draws // 4))
sens["kind"] = np.where(sens.matrix.isin(["W_Q", "W_K"]), "W_Q, W_K", "W_V, W_O")
sens["series"] = sens.kind + np.where(sens.source == "real", "", " – random walk")
sens_seed = sens.groupby(["seed", "spacing", "threshold", "count", "series"],
                         as_index=False)["rank"].mean()
sens_panels = [("even", t) for t in sorted(sens.threshold.unique())] + [("log", 0.9)]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Effective rank against the number of snapshots used, one panel per spacing (even or log-spaced) and variance threshold (panel titles); one series per matrix group ($W_Q, W_K$ and $W_V, W_O$), real trajectory and its matched random-walk null, each the mean over layers and matrices within a seed; line: mean over seeds, band: 95% CI over seeds. Not a figure of the paper, which does not state its snapshot count.", "name": "fig-ch03-snapshot-sensitivity"}, "image": {"alt": "Four panels of effective rank against snapshot count, each with four curves and shaded bands: two matrix groups, real and random-walk null"}}
fig, axes = panels(len(sens_panels), height=2.6, sharey=True)
for ax, (spacing, threshold) in zip(axes, sens_panels):
    part = sens_seed[(sens_seed.spacing == spacing) & (sens_seed.threshold == threshold)]
    band_plot(part, x="count", hue="series", value="rank", ax=ax, palette="Paired")
    ax.set(title=f"{spacing} spacing, threshold {threshold:.0%}", xlabel="snapshots used")
for ax in axes[::2]:
    ax.set_ylabel("effective rank\n(mean over layers)")
fig.suptitle("Effective rank vs. snapshot count, spacing and variance threshold\n"
             "(mean, 95% CI over seeds)")
fig.tight_layout()
shared_legend(fig, axes, ncol=2)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(sens_seed, "fig-ch03-snapshot-sensitivity",
            what="one row per seed, spacing, threshold, snapshot count and series: effective "
                 "rank averaged over layers and matrices")

# %% [markdown]
# ## 3. When does the trajectory become low-dimensional?
# Three time-resolved views, per block, averaged over layers and shown with seed bands:
# $r_{90}$ of the **growing window** (snapshots $0..t$), of a **sliding window** of the last
# `window` snapshots, and the fraction of $\lVert W_t - W_0 \rVert$ lying **outside the final
# subspace** (the top-$k$ uncentred singular subspace of the whole trajectory, $k$ = the
# block's own $r_{90}$).
#
# **Lock-in** is the first snapshot from which $W_t - W_0$ keeps at least 90% of its squared norm
# inside that final subspace until the end (outside fraction $\le \sqrt{0.1}$). The paper's
# "within the first 20–30% of training" is tested as: lock-in, as a fraction of training, is at most
# 0.3. The same statistic on matched random walks (with their own $k$ by the same rule) says
# how early a structureless trajectory "locks in".

# %% tags=["hide-input"]
timed = manifold.time_resolved(main, window=window)
layer_mean = timed.groupby(["seed", "matrix", "fraction"], as_index=False)[
    ["growing", "sliding", "outside", "growing_null", "sliding_null"]].mean()
null_mean = layer_mean.groupby("fraction")[["growing_null", "sliding_null"]].mean()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Time-resolved dimension against the fraction of training, one colour per matrix type (mean over layers within a seed; line: mean over seeds, band: 95% CI over seeds): $r_{90}$ of the growing window of snapshots, $r_{90}$ of a sliding window of the last `window` snapshots (dashed: matched random walks, mean), and the fraction of $\\lVert W_t - W_0 \\rVert$ outside the final subspace (dotted: the lock-in level; shaded: the paper's 20–30% of training). Not a figure of the paper.", "name": "fig-ch03-time-resolved"}, "image": {"alt": "Three panels over the fraction of training: growing-window and sliding-window effective rank with a dashed random-walk line, and the outside fraction falling below a dotted lock-in level, one curve per matrix type"}}
fig, axes = panels(3, height=2.7)
for ax, column, label in zip(axes, ["growing", "sliding", "outside"],
                             ["$r_{90}$, growing window", f"$r_{{90}}$, last {window} snapshots",
                              "outside fraction of $\\|W_t - W_0\\|$"]):
    band_plot(layer_mean, x="fraction", hue="matrix", value=column, ax=ax, palette="deep")
    if column != "outside":
        ax.plot(null_mean.index, null_mean[column + "_null"], color="k", ls="--", lw=1,
                label="random walk")
    ax.set(xlabel="fraction of training", ylabel=label)
axes[2].axhline(manifold.LOCK_IN_LEVEL, color="k", ls=":", lw=1, label="lock-in level")
axes[2].axvspan(0.2, 0.3, color="k", alpha=0.06, lw=0, label="the paper's 20–30%")
handles, labels = axes[0].get_legend_handles_labels()
extra = {l: h for h, l in zip(*axes[2].get_legend_handles_labels())}
handles += [extra["lock-in level"], extra["the paper's 20–30%"]]
labels += ["lock-in level", "the paper's 20–30%"]
fig.suptitle("Time-resolved dimension (mean over layers; 95% CI over seeds)")
fig.tight_layout()
# the legend in the grid's empty fourth cell, beside the outside-fraction panel
right, bottom = axes[1].get_position(), axes[2].get_position()
fig.legend(handles, labels, loc="center", frameon=False,
           bbox_to_anchor=((right.x0 + right.x1) / 2, (bottom.y0 + bottom.y1) / 2))
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(layer_mean, "fig-ch03-time-resolved",
            what="one row per seed, matrix type and snapshot (fraction of training): growing- "
                 "and sliding-window r90, outside fraction, and the random-walk nulls' r90, "
                 "each averaged over layers")

# %% tags=["hide-input"]
lock = manifold.lock_in_table(main, null_draws=S.null_draws)
lock_run = (lock.groupby(["seed", "layer", "matrix", "source"], as_index=False)["lock_in"].mean()
            .groupby(["seed", "source"], as_index=False)["lock_in"].median())
lock_summary = seed_summary(lock_run, ["source"], "lock_in")
lock_by_matrix = seed_summary(
    lock.groupby(["seed", "matrix", "source"], as_index=False)["lock_in"].mean(),
    ["matrix", "source"], "lock_in")
display(Markdown("Lock-in as a fraction of training, mean and 95% CI over seeds: per matrix "
                 "type (mean over layers per seed), and per seed the median over the "
                 f"{cfg.model.n_layers * 4} blocks; nulls are averaged over their draws first."))
lock_by_matrix["lock-in"] = [fmt_ci((r.mean, r.low, r.high), 3, bounds=(0, 1))
                             for r in lock_by_matrix.itertuples()]
lock_summary["matrix"] = "all (median over blocks)"
lock_summary["lock-in"] = [fmt_ci((r.mean, r.low, r.high), 3, bounds=(0, 1))
                           for r in lock_summary.itertuples()]
pd.concat([lock_by_matrix, lock_summary]).pivot(index="matrix", columns="source",
                                                values="lock-in")

# %% [markdown]
# ### Lock-in at 10-step resolution
# At the regular spacing the lock-in falls on the 4th–5th snapshot, and the matched random walks
# lock in at the same snapshot: the grid cannot tell them apart. The **dense-snapshot runs** are
# the same seeds trained again with extra snapshots (and evaluations) every tenth of the regular
# spacing up to a sixth of training (book: every 10 steps to step 1000). Training is the same
# computation (a unit test checks that the stored losses and weights are bit-identical to a
# run without the dense phase); only what is recorded differs. On them the final top-$k$
# subspace and $k$ are taken from the **regular snapshots** (as above), and the outside fraction
# is measured at **every** snapshot against it (`modadd.metrics.outside_fraction_against`), so
# only the time resolution changes. Two nulls: walks whose steps have the real per-interval
# norms of the uneven intervals (chapter 3's null on the dense grid, the rule's null), and the
# regular grid's walks refined in time (steps rescaled within each regular interval so that its
# displacement matches the real one; `modadd.manifold.regular_matched_norms`), which asks only
# whether finer snapshots move the lock-in.

# %% tags=["hide-input"]
dense_cfgs = roles["dense snapshots"]
modadd.load_or_train_many(dense_cfgs, n_workers=workers or None)
dense_lock = manifold.dense_lock_in_table(dense_cfgs, null_draws=S.null_draws)
curves = manifold.dense_outside_curves(dense_cfgs, null_draws=S.null_draws)
curve_seed = curves.groupby(["seed", "step"], as_index=False)[["real", "null"]].mean()
dense_until = dense_cfgs[0].train.dense_until
shown = curve_seed[curve_seed.step <= 1.5 * dense_until]
long = (shown.rename(columns={"null": "random walk"})
        .melt(["seed", "step"], var_name="series", value_name="outside"))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Outside fraction of $\\lVert W_t - W_0 \\rVert$ (the part of the displacement outside the final subspace, mean over blocks within a seed) against step, early in training on the dense-snapshot runs: real trajectory and random walks with the real per-interval step norms (line: mean over seeds, band: 95% CI over seeds); orange points: the real curve at the regular snapshots only; dotted line: the lock-in level. Not a figure of the paper.", "name": "fig-ch03-dense-outside"}, "image": {"alt": "Two curves with shaded bands, real trajectory and random walk, of the outside fraction over the early steps, with a dotted horizontal lock-in level and orange points marking the regular snapshots"}}
fig, ax = plt.subplots(figsize=(7, 3.6))
band_plot(long, x="step", hue="series", value="outside", ax=ax,
          palette=["#b0b0b0", "#1f4e79"])      # levels in sorted order: random walk, real
regular_points = shown[shown.step % cfg.train.snapshot_every == 0].groupby("step").real.mean()
ax.plot(regular_points.index, regular_points.values, "o", color="#e69f00", ms=5,
        label=f"regular snapshots ({cfg.train.snapshot_every} steps)")
ax.axhline(manifold.LOCK_IN_LEVEL, color="k", ls=":", lw=1, label="lock-in level $\\sqrt{0.1}$")
ax.set(xlabel="step", ylabel="outside fraction (mean over blocks)",
       title="Outside fraction of $\\|W_t - W_0\\|$ at dense snapshots\n"
             "(95% CI over seeds; null: walks on the real per-interval norms)")
ax.legend(loc="upper right")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(long, "fig-ch03-dense-outside",
            what="one row per seed, dense snapshot step and series (real or random walk, walks "
                 "averaged over their draws): outside fraction, mean over blocks")

# %% tags=["hide-input"]
dense_seed = (dense_lock.groupby(["grid", "seed", "layer", "matrix", "source"], as_index=False)
              ["lock_in"].mean().groupby(["grid", "seed", "source"])["lock_in"].median()
              .unstack("source"))
GRID_LABELS = {"regular": f"regular snapshots ({cfg.train.snapshot_every} steps)",
               "dense": "dense snapshots; walks on the real per-interval norms",
               "dense, regular-matched null": "dense snapshots; regular walks refined in time"}
rows = []
for grid, label in GRID_LABELS.items():
    part = dense_seed.loc[grid]
    rows.append({"grid and null": label,
                 "real lock-in": fmt_ci(mean_ci(part["real"]), 3, bounds=(0, 1)),
                 "random walk": fmt_ci(mean_ci(part["random walk"]), 3, bounds=(0, 1)),
                 "paired real − walk": fmt_ci(mean_ci(part["real"] - part["random walk"]), 3,
                                              signed=True),
                 "real lock-in step": fmt_ci(mean_ci(part["real"] * cfg.train.n_steps), 0)})
display(Markdown("Lock-in (fraction of training; per seed the median over blocks, walks "
                 "averaged over their draws first), mean and 95% CI over seeds, on the "
                 "dense-snapshot runs at each grid and null:"))
pd.DataFrame(rows).set_index("grid and null")

# %% [markdown]
# ## 4. Orientation: are the subspaces the same across seeds, layers and $m$?
# Top-$k$ PCA subspaces ($k$ = `k_subspace`) of the same block compared by principal angles,
# summarised by the normalised projection distance $\sqrt{\overline{\sin^2\theta}}$ (0: same
# subspace; 1: orthogonal) and by the overlap $\overline{\cos^2\theta}$, whose expectation for two
# uniformly random $k$-dimensional subspaces of $\mathbb{R}^{D}$ is $k/D$:
#
# - **seed**: the same block in two mixed-$m$ runs with different seeds;
# - **layer**: the same matrix type at two layers of one run (same coordinates, different weights);
# - **m (same seed)**: single-$m$ runs trained on different $m$ from the *same* initial weights;
# - **seed (same m)**: single-$m$ runs with the same $m$ and different seeds (seeds 0–1, and the
#   pairs among seeds 2–4, added later at bf16 precision; seeds 0–1's trajectories were not kept,
#   so pairs across the two groups are not computed);
# - **random**: pairs of uniformly random $k$-dimensional subspaces in the same $D$ coordinates.

# %% tags=["hide-input"]
mixed = {c.seed: c for c in main}
single = {(c.train.single_m, c.seed): c for c in roles["single m"]}
angles = manifold.replicated_angle_table(mixed, single, k=k_subspace, random_draws=50,
                                   kept_from=ch03.SINGLE_M_KEPT_FROM)
COMPARISONS = ["seed", "layer", "m (same seed)", "seed (same m)", "random"]
dim = cfg.model.d_model ** 2
angles["overlap"] = np.where(angles.comparison == "random", 1 - angles.distance ** 2,
                             angles.mean_cos2)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Orientation of the top-$k$ PCA subspaces ($k$ = `k_subspace`) of the same block, compared by principal angles, per kind of pair (x axis: different seeds, different layers, different $m$ from the same initialisation, different seeds at the same $m$, uniformly random subspaces). Top: projection distance of each pair (0: same subspace, 1: orthogonal). Bottom: overlap $\\overline{\\cos^2\\theta}$ on a log scale (box: quartiles over pairs), dotted: its expectation $k/D$ for random subspaces. Not a figure of the paper.", "name": "fig-ch03-subspace-angles"}, "image": {"alt": "Two panels for five kinds of subspace pairs: a strip plot of projection distances, and box plots of overlap on a log scale with a dotted line for the random expectation"}}
fig, axes = panels(2, height=2.7, columns=1, sharex=True)
sns.stripplot(angles, x="comparison", y="distance", order=COMPARISONS, hue="comparison",
              legend=False, alpha=0.6, size=3, ax=axes[0], palette="deep")
axes[0].set(ylabel="projection distance", title=f"Distance between top-{k_subspace} subspaces")
sns.boxplot(angles, x="comparison", y="overlap", order=COMPARISONS, ax=axes[1], color="#cfd8e3",
            fliersize=2)
axes[1].axhline(k_subspace / dim, color="k", ls=":", lw=1, label="random: $k/D$")
axes[1].set(yscale="log", ylabel="overlap $\\overline{\\cos^2\\theta}$",
            title="Overlap (log scale) vs. random expectation")
axes[1].legend(loc="upper right")
axes[0].set_xlabel("")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(angles[["comparison", "a", "b", "layer", "matrix", "distance", "overlap"]],
            "fig-ch03-subspace-angles",
            what="one row per compared pair of subspaces (a, b) of one block: projection "
                 "distance and overlap")

# %% tags=["hide-input"]
overlap = angles.groupby("comparison")["overlap"].agg(["mean", "median", "min", "max", "count"])
overlap["× random (k/D)"] = overlap["mean"] / (k_subspace / dim)
overlap.loc[[c for c in COMPARISONS if c in overlap.index]].style.format(
    {"mean": "{:.2e}", "median": "{:.2e}", "min": "{:.2e}", "max": "{:.2e}",
     "× random (k/D)": "{:.1f}"})

# %% [markdown]
# Cross-seed overlap at equal $m$, per $m$ (single-$m$ runs; one row per $m$, the pairs of
# seeds available, see the list above):

# %% tags=["hide-input"]
same_m = angles[angles.comparison == "seed (same m)"].copy()
same_m["m"] = same_m.a.str.extract(r"^m(\d+)", expand=False).astype(int)
per_pair_m = same_m.groupby(["m", "a", "b"], as_index=False).overlap.mean()
(per_pair_m.groupby("m").overlap.agg(["mean", "min", "max", "count"])
 .rename(columns={"count": "seed pairs"})
 .assign(**{"mean / random (k/D)": lambda t: t["mean"] / (k_subspace / dim)})
 .style.format({"mean": "{:.2e}", "min": "{:.2e}", "max": "{:.2e}",
                "mean / random (k/D)": "{:.1f}"}))

# %% [markdown]
# ## 5. Twice the budget: do the verdicts depend on convergence?
# At 6000 steps the book's runs are still improving on their largest $m$ (chapter 2). The
# **longer-budget arm** trains the same seeds for twice the steps (the cosine schedule stretched
# over them, snapshots at the same spacing; `presets.longer_budget`). It trains in bf16 mixed
# precision (validated against fp32 on the book's main runs, see the precision page), so it is
# compared with the same seeds at the book budget *also in bf16*; the budget is then the only
# difference. The fp32 book runs are listed for the accuracies. Per seed, the final held-out
# accuracy of each $m$:

# %% tags=["hide-input"]
from modadd import convergence

short_label = f"{cfg.train.n_steps} steps, bf16"
long_label = f"{roles['longer budget'][0].train.n_steps} steps, bf16"
budget_arms = {f"{cfg.train.n_steps} steps, fp32 (the book's runs)": main,
               short_label: roles["main bf16"], long_label: roles["longer budget"]}
modadd.load_or_train_many(roles["main bf16"] + roles["longer budget"],
                          n_workers=workers or None)
final_acc = convergence.final_accuracy(budget_arms)
convergence.accuracy_table(final_acc)

# %% [markdown]
# Chapter 3's claims that need no single-$m$ runs (C1, C2, C4, C5), by the same rules with the
# same nulls, at both budgets (regular snapshots: neither arm has a dense phase):

# %% tags=["hide-input"]
budget_recs = convergence.budget_records({short_label: roles["main bf16"],
                                          long_label: roles["longer budget"]},
                                         null_draws=S.null_draws)
display(Markdown(convergence.summary_text(final_acc, budget_recs, short_label, long_label,
                                          max(cfg.task.m_values))))
convergence.budget_summary(budget_recs)

# %% [markdown]
# ## 6. The paper's own setting: $T = 32$, plain SGD
# The paper states its setup as sequences of length $T = 32$ trained with SGD at learning rate
# $10^{-3}$, batch 64, for 20 000 steps (the `paper` preset); every chapter above uses the book's
# $T = 16$ and AdamW. Two arms measure that setting, each over the same seeds: **the stated
# setup** as written, and **the same $T = 32$ task under the book's optimiser** (AdamW, cosine
# schedule, batch 128, 6000 steps), so that C1 is tested at the paper's sequence length. Both
# train in bf16 (validated on the book's main runs, precision page), so the book's runs appear
# at bf16 too (`main bf16`). The stated arm keeps a snapshot every 500 steps (the original
# code's spacing; the paper states none); the nulls are matched to each run's own snapshots.
# The task of both $T = 32$ arms is the `paper` preset's (marker positions drawn per batch, as
# in the original code); the book's draws them per example. Final held-out accuracy per $m$
# (chance is $1/C$):

# %% tags=["hide-input"]
paper_roles = ["paper setting: stated", "paper setting: book optimizer"]


def arm_label(c):
    t = c.train
    schedule = "" if t.lr_schedule == "constant" else f" {t.lr_schedule}"
    return (f"T={c.task.T}, {t.optimizer.upper() if t.optimizer == 'sgd' else 'AdamW'} "
            f"{t.lr:g}{schedule}, batch {t.batch_size}, {t.n_steps} steps")


if S.paper_setting_seeds:
    paper_arms = {arm_label(roles["main bf16"][0]) + " (book)": roles["main bf16"][:S.paper_setting_seeds],
                  **{arm_label(roles[r][0]): roles[r] for r in paper_roles}}
    modadd.load_or_train_many([c for r in paper_roles for c in roles[r]],
                              n_workers=workers or None)
    paper_acc = convergence.final_accuracy(paper_arms)
    display(Markdown(f"Chance: {1 / cfg.task.C:.3f}."))
    display(convergence.accuracy_table(paper_acc))
else:
    display(Markdown(f"Preset `{preset}` has no paper-setting arms."))

# %% [markdown]
# $r_{90}$ per matrix type in each arm, against the same two nulls as in §1 (each seed's value
# averaged over layers first; 95% CI over seeds):

# %% tags=["hide-input"]
if S.paper_setting_seeds:
    paper_dims = {arm: manifold.dimension_summary(cs, thresholds=(0.9,), null_draws=S.null_draws)
                  for arm, cs in paper_arms.items()}
    display(pd.concat({arm: by_matrix(d[d.group == "block"], "rank")
                       for arm, d in paper_dims.items()}, axis=0))

# %% [markdown]
# Chapter 3's claims that need no single-$m$ runs (C1, C2, C4, C5), by the same rules, thresholds
# and nulls, in each arm:

# %% tags=["hide-input"]
if S.paper_setting_seeds:
    paper_recs = convergence.budget_records(paper_arms, null_draws=S.null_draws)
    c1 = {arm: recs["C1"] for arm, recs in paper_recs.items()}
    display(Markdown("\n".join(
        f"- **C1 at {arm}**: *{r.verdict}*; {r.effect} ({r.ci})." for arm, r in c1.items())))
    display(convergence.budget_summary(paper_recs))

# %% [markdown]
# ## 7. Claims ledger rows
# The verdict rules live in `modadd.claims.ch03`, as tested library code: each rule is stated
# before it is applied, versioned, and run on its own null (C1, C2, C5: the random-walk ranks of
# the same runs in place of the real ones; C3: the same-seed, different-$m$ runs, which share
# their initialisation, as a positive control for "does not vary"; C4: one random-walk draw in
# place of the real trajectory). A rule its null passes tests nothing and gives *not testable*.
# Intervals are over seeds (layers, blocks and null draws averaged within a seed first). Each
# record below lists every control with its number, what flips the verdict (thresholds at the
# ends of their stated ranges, another null), the earlier rule versions on the same data, and
# the verdict at the two constant-rate schedules ("original lr": the original code's constant
# $3 \times 10^{-4}$; "constant lr": the peak rate held constant). **C4 is measured at 10-step
# resolution** (the dense-snapshot runs of §3; its record also shows the verdict on the regular
# snapshots only, and its schedule variants at the regular spacing, the only one those runs
# have). The rules as they stand:

# %% tags=["hide-input"]
role_dims = {ROLE[name]: schedule_dims[schedule_dims.setting == name] for name in settings}
regular_tables = ch03.tables_from_analyses(dims, lock, angles, k=k_subspace, dim=dim,
                                           steps=steps, schedules=role_dims)
# C4 reads the dense-snapshot lock-in (§3); the regular snapshots are its variant
grids = manifold.dense_lock_in(dense_cfgs[0], null_draws=S.null_draws)
tables = ch03.with_dense_lock_in(regular_tables, dense_lock, grids["steps"], grids["regular"])
variant_tables = {
    role: ch03.tables_from_analyses(role_dims[role],
                                    manifold.lock_in_table(roles[role], null_draws=S.null_draws), None,
                                    k=k_subspace, dim=dim, steps=steps, schedules=role_dims,
                                    setting=role)
    for role in ch03.VARIANTS}
# the same dense-snapshot runs at the regular spacing only: only the resolution differs
variant_tables[ch03.REGULAR] = ch03.with_dense_lock_in(regular_tables, dense_lock, grids["steps"],
                                                       grids["regular"], "regular")
display(Markdown("\n".join(
    f"- **{cid}** (rule v{claims.spec(cid).rule.version}, {claims.spec(cid).rule.date}): "
    f"{claims.spec(cid).rule.text} ("
    + ", ".join(f"`{name}` = {value:g}" for name, value in claims.spec(cid).rule.thresholds.items())
    + ")" for cid in ch03.IDS)))

# %% tags=["hide-input"]
records = {cid: claims.evaluate(cid, tables, preset,
                                {v: variant_tables[v] for v in claims.spec(cid).variants})
           for cid in ch03.IDS}
for record in records.values():
    display(record)

# %% [markdown]
# The verdicts by optimisation schedule (C3 has no constant-rate counterpart: there are no
# single-$m$ runs, and no stored trajectories for subspace angles, at those schedules):

# %% tags=["hide-input"]
by_schedule = pd.DataFrame({cid: {"preset schedule": r.verdict,
                                  **{v: r.variants[v].verdict for v in ch03.VARIANTS
                                     if v in r.variants}}
                            for cid, r in records.items()}).T
by_schedule

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
conclusion(*(records[cid] for cid in ch03.IDS))

# %% [markdown]
# ### Where we agree and disagree with the paper
# Computed from the tables above (paired differences are per seed, real minus the same run's
# random-walk null, mean over layers).

# %% tags=["hide-input"]
def paired(setting_dims, matrices):
    part = setting_dims[setting_dims.matrix.isin(matrices) & (setting_dims.source != "shuffled increments")]
    wide = part.groupby(["seed", "source"])["rank"].mean().unstack("source")
    return mean_ci(wide["real"] - wide["random walk"]), mean_ci(wide["real"])


lines = []
for name, cs in settings.items():
    sd = schedule_dims[(schedule_dims.setting == name) & (schedule_dims.threshold == 0.9)]
    for label, matrices in (("W_Q, W_K", ["W_Q", "W_K"]), ("W_V, W_O", ["W_V", "W_O"])):
        difference, r90 = paired(sd, matrices)
        lines.append(f"| {name} | {label} | {fmt_ci(r90)} | {fmt_ci(difference, signed=True)} |")
display(Markdown("\n".join([
    "| setting | matrices | $r_{90}$ (mean over layers) | real − random walk |",
    "|---|---|---|---|", *lines])))

display(Markdown(ch03.summary(records, tables, variant_tables,
                              ch03.local_dimension(layer_mean), window)))
