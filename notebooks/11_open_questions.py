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
# # 11. Open questions, measured
#
# The paper (§5.3) and the original code's README (the bubble-modadd repository's README) end
# with questions they leave open. Here four of them are answered with measurements, at a scale
# a 2-core CPU runs in about an hour (about 110 short runs, stated below), using only functions
# already in `modadd`:
#
# 1. **Scaling.** Does the execution dimension ($r_{90}$, participation ratio) stay bounded as
#    the model gets wider (d = 32…256) and deeper (1–6 layers)?
# 2. **Early prediction (claim C16).** Do low-dimensional diagnostics of the first 10–20% of
#    training predict whether a run will generalize — better than the training loss at the same
#    time?
# 3. **Same attractor?** Do mixed- and curriculum-trained models end in the same execution
#    subspace?
# 4. **Multiplication against addition across widths.** Does chapter 8's (absent) dimension gap
#    appear at other widths?
#
# **Scale.** Questions 1, 2 and 4 use a smaller base run than the book preset, because ~110
# runs at the book preset would take ~18 hours here: the same marker-sum task with $T = 16$ but
# **addition mod 7** (so that chapter 8's multiplication mod 7 is the same task with another
# operation), $m \in \{1, 2, 3\}$, a **2-layer, d = 64** attention-only model, AdamW with a
# cosine schedule, **2000 steps** and a snapshot every 25 steps (81 snapshots; the book preset
# has 61). Question 3 reuses chapter 7's book-preset runs through the cache. The table below is
# computed from the configurations.

# %% tags=["hide-input"]
from typing import Optional
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

import modadd
from modadd import arms
from modadd import claims
from modadd import manifold
from modadd import openq
from modadd import registry
from modadd.claims import ch11
from modadd.plots import point_ci, book_style, figure_data, panels, shared_legend
from modadd.presets import preset as preset_config
from modadd.report import ci_text, conclusion, fmt_ci, number, pvalue
from modadd.task import chance_accuracy

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # "smoke" (CI, seconds) | "book" (2-core CPU)
seeds: Optional[int] = None     # seeds per width/depth/operation, and of chapter 7's arms
null_draws: Optional[int] = None # random-walk null draws per run and block
n_perm: Optional[int] = None    # label permutations for the AUC null
bootstrap: Optional[int] = None # bootstrap resamples of runs for AUC / R² intervals
success: Optional[float] = None # final held-out accuracy counted as "generalized"
k_subspace: Optional[int] = None # dimension of the subspaces compared by principal angles
last_fraction: Optional[float] = None # question 3: the "final" subspace is PCA of this last share of training
random_draws: Optional[int] = None # random subspace pairs (angle baseline)
workers: int = 0                # training processes on a cache miss (0: one per core)

# %% tags=["hide-input"]
S = registry.from_namespace("ch11", globals())
display(S)
scale = openq.open_scale(preset)
roles = S.runs()
prediction_cfgs = roles["open prediction"]
modadd.load_or_train_many(roles["open width"] + roles["open depth"] + prediction_cfgs
                          + roles["open width mul"], n_workers=workers or None)
book_style()
warnings.filterwarnings("ignore", category=RuntimeWarning)

base, book = scale.base, preset_config(preset)
pd.DataFrame({
    "this chapter (Q1, Q2, Q4)": [base.task.T, base.task.C, str(base.task.m_values),
                                  base.model.n_layers, base.model.d_model,
                                  base.train.optimizer, base.train.lr, base.train.n_steps,
                                  base.train.snapshot_every],
    "book preset (Q3: chapter 7's runs)": [
        book.task.T, book.task.C, str(book.task.m_values), book.model.n_layers,
        book.model.d_model, book.train.optimizer, book.train.lr, book.train.n_steps,
        book.train.snapshot_every]},
    index=["T", "C", "m values", "layers", "d_model", "optimizer", "lr", "steps",
           "snapshot every"])

# %% [markdown]
# ## 1. Does the execution dimension stay bounded with width and depth?
# Widths $d \in$ {32, 64, 128, 256} at 2 layers and depths 1–6 at $d = 64$ (4 heads each),
# every shape with the same seeds. For each run, chapter 3's measures of the trajectory
# $W_t - W_0$: $r_{90}$ and the participation ratio (PR) of each attention matrix, averaged
# over the run's blocks ("per block"), and of all attention weights jointly ("joint"), each
# beside its random-walk null (a Gaussian walk with the run's own step norms in the same number
# of dimensions). First, how well each shape learns:

# %% tags=["hide-input"]
dims = openq.dimension_sweep(roles["open width"] + roles["open depth"] + roles["open width mul"],
                         null_draws=S.null_draws)
per_run = openq.per_run_dimensions(dims)
add = per_run[per_run.op == "add"]
base_depth, base_width = base.model.n_layers, base.model.d_model
width_runs = add[add.layers == base_depth]
depth_runs = add[add.width == base_width]


def final_accuracy(cfgs) -> pd.DataFrame:
    rows = []
    for run in modadd.load_or_train_many(cfgs, progress=False):
        acc = run.metrics[run.metrics.metric == "accuracy"]
        rows.append({"op": run.config.task.op, "layers": run.config.model.n_layers,
                     "width": run.config.model.d_model, "seed": run.config.seed,
                     "accuracy": acc[acc.step == acc.step.max()].value.mean()})
    return pd.DataFrame(rows)


accuracy = final_accuracy(roles["open width"] + roles["open depth"] + roles["open width mul"])
shape = accuracy.assign(shape=lambda f: f.layers.astype(str) + " × " + f.width.astype(str))
display(Markdown(f"Final held-out accuracy (mean over m), mean [95% CI] over seeds; chance "
                 f"{chance_accuracy(base.task):.3f}:"))
shape.groupby(["op", "layers", "width"]).accuracy.apply(
    lambda v: ci_text(v, 3, bounds=(0, 1))).unstack("op").fillna("—")

# %% [markdown]
# {numref}`fig-ch11-dimension-scaling` shows both measures against width and depth, beside
# their random-walk nulls.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Execution dimension of the addition runs against model size: $r_{90}$ (top) and participation ratio (bottom) of the attention-weight trajectory $W_t - W_0$, against width $d$ (left, log scale, at the base depth) and against the number of layers (right, at the base width); the title names both. Circles on solid lines: per block (each attention matrix's measure, averaged over the run's blocks); squares on dashed lines: all attention weights jointly. Dark blue: the real runs; light blue: the random-walk null (a Gaussian walk with the run's own step norms). Points: mean over seeds; bars: 95% CI over seeds. Answers the paper's open question on scaling (§5.3); the paper's Fig. 1 shows the dimension at one model size only.", "name": "fig-ch11-dimension-scaling"}, "image": {"alt": "Four panels of points with error bars: r90 and participation ratio against width and against depth, each with per-block and joint series for the real runs and their random-walk nulls"}}
SOURCES = {"real": "#1f4e79", "random walk": "#9dbbd6"}
fig, axes = plt.subplots(2, 2, figsize=(7, 5.6))
long = add.melt(id_vars=["layers", "width", "seed", "source"],
                value_vars=["block_r90", "joint_r90", "block_pr", "joint_pr"], var_name="measure")
for col, (x, runs) in enumerate((("width", long[long.layers == base_depth]),
                                 ("layers", long[long.width == base_width]))):
    for row, kind in enumerate(("r90", "pr")):
        ax = axes[row, col]
        for measure, marker in ((f"block_{kind}", "o"), (f"joint_{kind}", "s")):
            part = runs[runs.measure == measure].assign(
                series=lambda f, m=measure: f.source + (", per block" if "block" in m
                                                        else ", joint"))
            point_ci(part, x=x, hue="series", ax=ax, dodge=0.0,
                     palette={f"{s}, {'per block' if 'block' in measure else 'joint'}": c
                              for s, c in SOURCES.items()},
                     order=[f"{s}, {'per block' if 'block' in measure else 'joint'}"
                            for s in SOURCES], fmt=f"{marker}-" if "block" in measure
                     else f"{marker}--")
        ax.set(xlabel="width $d$" if x == "width" else "layers",
               ylabel="$r_{90}$" if kind == "r90" else "participation ratio")
        if x == "width":
            ax.set_xscale("log", base=2)
fig.suptitle(f"Execution dimension against width ({base_depth} layers) and depth "
             f"(d = {base_width})\nmean, 95% CI over seeds")
fig.tight_layout()
shared_legend(fig, list(axes.ravel()), ncol=2)
plt.show()

# %% tags=["remove-input"]
# the figure's data, in a cell of its own: myst-nb puts every output of a figure cell
# inside the figure (a second caption and a duplicate label)
figure_data(long, "fig-ch11-dimension-scaling",
            what="one row per addition run (layers, width, seed), source (real or random walk) "
                 "and measure")

# %% [markdown]
# **Fitted trends.** A least-squares line of each measure against $\log_2 d$ (width) or the
# number of layers (depth), fitted separately for each seed; the slope's mean and t interval
# over seeds. "Per block" asks whether one matrix's trajectory needs more directions in a
# bigger model; "joint" counts all $4L$ matrices together, so it may grow with depth even if
# each block stays put. The random-walk rows are the control: a walk's $r_{90}$ depends on the
# number of snapshots, not on the dimension, so its slope should be ≈ 0.

# %% tags=["hide-input"]
trend_rows = []
for axis, runs, log2 in (("width (per doubling)", width_runs, True),
                         ("depth (per layer)", depth_runs, False)):
    x = "width" if log2 else "layers"
    for measure in ("block_r90", "joint_r90", "block_pr", "joint_pr"):
        for source in SOURCES:
            fit = openq.trend(runs[runs.source == source], x, measure, log2=log2)
            trend_rows.append({"axis": axis, "measure": measure, "source": source, **fit})
trends = pd.DataFrame(trend_rows)
trends.assign(slope=lambda f: [fmt_ci(ci, signed=True) for ci in
                               zip(f.slope, f.low, f.high)]) \
    .pivot_table(index=["axis", "measure"], columns="source", values="slope", aggfunc="first")

# %% tags=["hide-input"]
n_snap = len(modadd.load_or_train(roles["open width"][0], progress=False).snapshot_steps)
answer_1 = ch11.answer_1(trends, width_runs, depth_runs, n_snap)
display(Markdown(answer_1))

# %% [markdown]
# ## 2. Can early diagnostics predict generalization? (C16)
# **Runs.** Each $m \in$ {1, 2, 3, 4} trained alone from scratch (chapter 7: $m = 4$ alone does
# not converge at the book preset) under three optimizer settings (AdamW 1e-3 with the cosine
# schedule; AdamW 3e-4 constant, the original code's rate; SGD 0.1 with momentum 0.9, no weight
# decay), several seeds each, recording diagnostics at every snapshot. The outcome is the final
# held-out accuracy, and "generalized" means accuracy ≥ `success`.
#
# **Features at 10, 15 and 20% of training**, computed from what the run had recorded by then
# (`RunRecord.until`; a unit test checks that truncating a run after the window leaves them
# unchanged): $r_{90}$ and PR of all attention weights over the snapshots so far; the last
# layer's readout attention entropy relative to its start; the mean and coefficient of
# variation of the gradient norm over the last 25 updates; the relative update size; the growth
# of $\sum w^2$. The **baseline** is the training loss at the same time (mean of the last 25
# updates). Distances to the eventual subspace are not used: they need the end of the run.
#
# **Cross-validation.** Logistic regression (for "generalized", scored by AUC) and ridge
# regression (for the final accuracy, scored by out-of-sample R²), L2 penalty 1 on
# standardized features, the logistic fit with balanced class weights (so the intercept does
# not follow the class mix of the training folds, which would bias a pooled out-of-fold AUC
# below 0.5 — a unit test shows the size of that bias). The headline folds leave out one whole (m, optimizer) cell — every
# seed of one setting — so each prediction is for a setting the model never saw ("unseen
# setting"); a second CV leaves out one seed of every cell at a time ("unseen seed": the
# setting was seen, with other seeds). The table's intervals bootstrap single runs; since the
# seeds of a setting (almost) always share its outcome, the claim record (section 5) resamples
# whole settings instead (a cluster bootstrap). The null permutes the outcomes of whole settings
# among settings (same CV); p is the share of permutations with an AUC at least as high.

# %% tags=["hide-input"]
features = openq.feature_table(prediction_cfgs, success=S.success)
cells = features[features.fraction == features.fraction.min()]
cells.groupby(["m", "optimizer"]).agg(
    runs=("seed", "size"), generalized=("success", "sum"),
    final_accuracy=("final_accuracy", lambda v: ci_text(v, 3, bounds=(0, 1))))   # one row per cell

# %% tags=["hide-input"]
FEATURE_SETS = {"training loss (baseline)": list(openq.BASELINE_FEATURES),
                "diagnostics": list(openq.DIAGNOSTIC_FEATURES),
                "diagnostics + loss": list(openq.DIAGNOSTIC_FEATURES + openq.BASELINE_FEATURES)}
FOLDS = {"unseen setting": ("m", "optimizer"), "unseen seed": ("seed",)}
all_scores = pd.concat([openq.cv_scores(prediction_cfgs, FEATURE_SETS, success=S.success,
                                    group_by=group, bootstrap=S.bootstrap, permutations=S.n_perm)
                        .assign(folds=name) for name, group in FOLDS.items()],
                       ignore_index=True)
scores = all_scores[all_scores.folds == "unseen setting"]
single = openq.cv_scores(prediction_cfgs, {f: [f] for f in openq.DIAGNOSTIC_FEATURES + openq.BASELINE_FEATURES},
                     success=S.success, bootstrap=min(S.bootstrap, 500), permutations=0)
table = all_scores.assign(
    AUC=lambda f: [fmt_ci(ci, bounds=(0, 1)) for ci in zip(f.AUC, f["AUC low"], f["AUC high"])],
    R2=lambda f: [fmt_ci(ci) for ci in zip(f["R²"], f["R² low"], f["R² high"])],
    null=lambda f: [f"{number(q)} ({pvalue(p)})" for q, p in zip(f["AUC null 95%"], f["AUC p"])],
    delta=lambda f: [("" if np.isnan(d) else fmt_ci((d, lo, hi), signed=True)) for d, lo, hi
                     in zip(f.get("ΔAUC", np.nan), f.get("ΔAUC low", np.nan),
                            f.get("ΔAUC high", np.nan))])
# shown narrower: folds, window and feature set as the row labels; the run counts said once
# (they are the same in every row) unless they differ
same_counts = table[["n", "successes"]].drop_duplicates().shape[0] == 1
if same_counts:
    display(Markdown(f"{int(table.n.iloc[0])} runs, {int(table.successes.iloc[0])} of them "
                     "generalized; AUC and R² with 95% bootstrap intervals over runs:"))
shown_columns = ["AUC", "null", "delta", "R2"] + ([] if same_counts else ["n", "successes"])
for folds, part in table.groupby("folds", sort=False):
    display(Markdown(f"**{folds.capitalize()}** folds:"))
    display(part.assign(seen=[f"{f:.0%}" for f in part.fraction])
            .set_index(["seen", "features"])[shown_columns]
            .rename_axis(index=["training seen", "features"])
            .rename(columns={"null": "null 95% (p)", "delta": "ΔAUC vs baseline", "R2": "R²"}))

# %% [markdown]
# {numref}`fig-ch11-prediction` shows the unseen-setting scores against the share of training
# seen.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Cross-validated prediction for unseen settings (each (m, optimizer) setting left out in turn) against the share of training seen when the features are taken. Left: AUC for 'generalized'; right: out-of-sample $R^2$ for the final held-out accuracy (axis clipped below, as its title states). Grey: the training loss alone (baseline); dark blue: the diagnostics; red: diagnostics and loss together (dodged sideways). Points: cross-validated estimate; bars: 95% bootstrap intervals over runs (too narrow when the seeds of a setting share its outcome; the claim record resamples whole settings). Dotted black: the 95th percentile of the setting-permutation null, the highest of the three feature sets; grey horizontal lines: chance AUC and zero $R^2$. The legend sits below the panels. Answers the paper's open question on early-training diagnostics (§5.3); not a figure of the paper.", "name": "fig-ch11-prediction"}, "image": {"alt": "Two panels against the fraction of training seen: cross-validated AUC with a dotted null line, and cross-validated R squared, each with points and error bars for the loss baseline, the diagnostics and both together, legend below"}}
fig, axes = plt.subplots(1, 2, figsize=(7, 3.4))
palette = dict(zip(FEATURE_SETS, ["#7f7f7f", "#1f4e79", "#c0392b"]))
offsets = dict(zip(FEATURE_SETS, (-0.008, 0.0, 0.008)))
for name in FEATURE_SETS:
    part = scores[scores.features == name]
    for ax, (value, low, high) in zip(axes, (("AUC", "AUC low", "AUC high"),
                                             ("R²", "R² low", "R² high"))):
        ax.errorbar(part.fraction + offsets[name], part[value],
                    yerr=[part[value] - part[low], part[high] - part[value]], fmt="o-",
                    capsize=3, color=palette[name], label=name)
axes[0].plot(scores.fraction.unique(),
             scores.groupby("fraction")["AUC null 95%"].max(), "k:",
             label="null 95% (highest of the sets)")
axes[0].axhline(0.5, color="grey", lw=0.8)
axes[0].set(xlabel="fraction of training seen", ylabel="cross-validated AUC",
            title="predicting 'generalized'")
axes[1].axhline(0.0, color="grey", lw=0.8)
axes[1].set(xlabel="fraction of training seen", ylabel="cross-validated R²",
            title="predicting final accuracy\n(axis clipped at −1)", ylim=(max(-1.0, scores["R² low"].min() - 0.05),
                                                     1.0))
handles, names = axes[0].get_legend_handles_labels()
fig.suptitle("Prediction for unseen settings (leave one (m, optimizer) cell out)\n"
             "95% bootstrap intervals over runs")
fig.tight_layout()
shared_legend(fig, axes, handles, names, ncol=2)
plt.show()

# %% tags=["remove-input"]
figure_data(scores[["fraction", "features", "n", "successes", "AUC", "AUC low", "AUC high",
                    "AUC null 95%", "AUC p", "R²", "R² low", "R² high"]],
            "fig-ch11-prediction",
            what="one row per share of training seen and feature set (unseen-setting folds)")

# %% [markdown]
# Each feature alone (unseen-setting CV, no permutation null), and how the features look at
# the headline window (15% of training; colour: final accuracy):

# %% tags=["hide-input"]
HEADLINE = 0.15 if 0.15 in set(features.fraction) else float(features.fraction.median())
single_view = single.pivot_table(index="features", columns="fraction", values="AUC")
single_view.columns = [f"{f:.0%} of training" for f in single_view.columns]
single_view.index.name = "feature (AUC)"
single_view.style.format("{:.2f}")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Four of the early features at the headline window (the title gives the share of training) against each run's final held-out accuracy, one dot per run of the early-prediction grid, coloured by that final accuracy. Features: the training loss (the baseline), $r_{90}$ of all attention weights over the snapshots so far, the last layer's readout attention entropy relative to its start, and the log gradient norm. Not a figure of the paper.", "name": "fig-ch11-early-features"}, "image": {"alt": "Four scatter panels in two rows, each an early feature on the horizontal axis against final held-out accuracy on the vertical axis, dots coloured from dark (low accuracy) to yellow (high)"}}
head = features[features.fraction == HEADLINE]
shown = {"train_loss": "training loss (baseline)", "r90_so_far": "$r_{90}$ so far (joint)",
         "attn_entropy": "readout attention entropy\n(relative to its start)",
         "log_grad_norm": "log gradient norm"}
fig, axes = panels(len(shown), height=2.5, sharey=True)
for i, (ax, (feature, label)) in enumerate(zip(axes, shown.items())):
    ax.scatter(head[feature], head.final_accuracy, c=head.final_accuracy, cmap="viridis",
               vmin=0, vmax=1, s=22, edgecolor="k", lw=0.3)
    ax.set(xlabel=label, ylabel="final accuracy" if i % 2 == 0 else "")
fig.suptitle(f"Features at {HEADLINE:.0%} of training against the final held-out accuracy\n"
             f"({len(head)} runs)")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
figure_data(head[["m", "optimizer", "seed", *shown, "final_accuracy", "success"]],
            "fig-ch11-early-features", what="one row per run at the headline window")

# %% tags=["hide-input"]
c16_tables = ch11.tables_from_features(features, n_perm=S.n_perm, bootstrap=S.bootstrap)
c16_record = claims.evaluate("C16", c16_tables, preset)      # shown in section 5
answer_2 = ch11.answer_2(c16_record, all_scores, single, head, HEADLINE)
display(Markdown(answer_2))

# %% [markdown]
# ## 3. Do mixed and curriculum training reach the same subspace?
# Chapter 7's book-preset runs (through the cache; nothing is retrained): mixed training, the
# original curriculum (fresh optimizer per stage), the curriculum without resets, and — as a
# control for the shared initialisation — the largest $m$ alone (which does not learn). Runs of
# one seed share their initial weights and data stream. For each attention block we compare
# top-$k$ PCA subspaces in two ways:
#
# - **whole trajectory** ($W_t - W_0$ over all of training; chapter 7's measure, read from its
#   cache), and
# - **final**: PCA of the last `last_fraction` of training only (centred), the directions the
#   weights still move along at the end — the execution subspace the run ends in.
#
# Overlap is the mean $\cos^2$ of the $k$ principal angles (1: the same subspace; random
# $k$-subspaces of $\mathbb{R}^{d^2}$: $k/d^2$); each pair is first averaged over blocks, so
# intervals are over seeds (same-seed pairs) or seed pairs (within an arm).

# %% tags=["hide-input"]
arm_roles = roles                # chapter 7's arms, at this chapter's seeds
book_cfg = arm_roles["main"][0]
ONLY = f"m={max(book_cfg.task.m_values)} only"
# chapter 7's names, so the whole-trajectory table is chapter 7's cached one
angle_arms = {"attention-only, mixed": arm_roles["main"], "curriculum": arm_roles["curriculum"],
              "curriculum (no reset)": arm_roles["curriculum (no reset)"],
              ONLY: arm_roles["largest m only"], "with MLP": arm_roles["mlp"]}
n_snapshots = len(modadd.load_or_train(book_cfg, progress=False).snapshot_steps)
k = min(S.k_subspace, max(1, int(n_snapshots * S.last_fraction) - 1))
tables = {"whole trajectory": arms.arm_angle_table(angle_arms, k=k, random_draws=S.random_draws),
          "final": arms.arm_angle_table(angle_arms, k=k, random_draws=S.random_draws,
                                     last_fraction=S.last_fraction)}
COMPARISONS = {"mixed vs curriculum (same seed)": "attention-only, mixed vs curriculum",
               "mixed vs curriculum, no reset (same seed)":
                   "attention-only, mixed vs curriculum (no reset)",
               "curriculum vs no reset (same seed)": "curriculum vs curriculum (no reset)",
               f"control: mixed vs {ONLY} (same seed)": f"attention-only, mixed vs {ONLY}",
               "seeds within mixed": "seeds: attention-only, mixed",
               "seeds within curriculum": "seeds: curriculum"}
dim = book_cfg.model.d_model ** 2
rows = []
for view, angles in tables.items():
    pairs = angles[angles.comparison != "random"]
    per_pair = pairs.groupby(["comparison", "a", "b"], as_index=False)[
        ["mean_cos2", "distance"]].mean()
    for label, comparison in COMPARISONS.items():
        values = per_pair[per_pair.comparison == comparison]
        rows += [{"view": view, "comparison": label, "pair": a, "overlap": v, "distance": d}
                 for a, v, d in zip(values.a, values.mean_cos2, values.distance)]
overlaps = pd.DataFrame(rows)
summary3 = overlaps.groupby(["comparison", "view"], sort=False).overlap.apply(
    lambda v: ci_text(v, 4)).unstack("view")
summary3["pairs"] = overlaps.groupby("comparison", sort=False).pair.size() // len(tables)
display(Markdown(f"{k}-dimensional subspaces of $\\mathbb{{R}}^{{{dim}}}$; random pairs: "
                 f"overlap $k/D$ = {k / dim:.1e}. Overlap, mean [95% CI]:"))
summary3.loc[list(COMPARISONS)]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Subspace overlap (mean $\\cos^2$ of the $k$ principal angles between two runs' top-$k$ PCA subspaces of an attention block, averaged over blocks; log scale) for each comparison: same-seed pairs of chapter 7's training schedules (mixed, curriculum with and without optimizer resets), the control pair (mixed training against the largest $m$ alone, which shares the initialisation but does not learn the task), and pairs of seeds within one schedule. Blue circles: whole trajectory ($W_t - W_0$); red squares: the final window (the last `last_fraction` of training). Points: mean; bars: 95% bootstrap CI over same-seed pairs (one per seed) or seed pairs. Dotted grey line: the overlap of random subspaces, $k/D$. Tests the paper's §4.5 account of mixed against curriculum training; not a figure of the paper.", "name": "fig-ch11-subspace-overlap"}, "image": {"alt": "Horizontal point plot on a log axis, one row per comparison of training schedules, each with a whole-trajectory and a final-window point with error bars, to the right of a dotted line marking the random-subspace overlap"}}
fig, ax = plt.subplots(figsize=(7, 3.6))
sns.pointplot(overlaps, y="comparison", x="overlap", hue="view", order=list(COMPARISONS),
              dodge=0.4, linestyle="none", errorbar=("ci", 95), ax=ax, log_scale=True,
              palette=["#1f4e79", "#c0392b"], markers=["o", "s"])
ax.axvline(k / dim, color="grey", ls=":", label="random $k/D$")
ax.set(xlabel="subspace overlap\n(mean cos² of principal angles, log scale)", ylabel="")
handles, names = ax.get_legend_handles_labels()
if ax.get_legend() is not None:
    ax.get_legend().remove()
fig.tight_layout()
fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
figure_data(overlaps, "fig-ch11-subspace-overlap",
            what="one row per view (whole trajectory or final), comparison and run pair; "
                 "overlap and distance averaged over blocks")

# %% tags=["hide-input"]
last_stage = arms.stage_starts(angle_arms["curriculum"][0])[-1]
final_start = int(modadd.load_or_train(book_cfg, progress=False).snapshot_steps[
    manifold.late_window(n_snapshots, S.last_fraction).start])
answer_3 = ch11.answer_3(overlaps, ONLY, k / dim, last_stage, book_cfg.train.n_steps,
                        final_start)
display(Markdown(answer_3))

# %% [markdown]
# ## 4. Multiplication against addition, across widths
# Chapter 8 compared multiplication mod 7 with addition mod 7 at the book preset. Here the same
# pair at every width of question 1 (2 layers; the multiplication run of a seed has the same
# initial weights as the addition run of that seed and shape). Paired difference mul − add of
# the per-block $r_{90}$, with the same difference for the random-walk nulls (their step norms
# come from the runs, so a difference in how far the runs move shows there too):

# %% tags=["hide-input"]
# chapter 8's claim, evaluated here from chapter 8's cached tables (no file hand-off)
c13 = claims.record("C13", preset)        # chapter 8's verdict, as the ledger has it
widths = per_run[per_run.layers == base_depth]
pivot = widths.pivot_table(index=["width", "seed", "source"], columns="op",
                           values="block_r90").dropna().reset_index()
pivot["mul − add"] = pivot["mul"] - pivot["add"]
gap = pivot.pivot_table(index=["width", "seed"], columns="source", values="mul − add") \
    .reset_index()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Paired difference multiplication minus addition of the per-block $r_{90}$ (the same seed and initial weights for both operations) against width $d$ (log scale), at the base depth: dark blue for the real runs, light blue for their random-walk nulls (whose step norms come from the runs). Points: mean over seeds; bars: 95% CI over seeds; grey line: no difference. Tests across widths the paper's statement (§4.6) that multiplication needs a higher-dimensional manifold than addition; not a figure of the paper.", "name": "fig-ch11-mul-add-gap"}, "image": {"alt": "Points with error bars of the multiplication-minus-addition difference in r90 at each width, for the real runs and the random-walk null, around a horizontal zero line"}}
fig, ax = plt.subplots(figsize=(6, 3.4))
point_ci(pivot.rename(columns={"mul − add": "value"}), x="width", hue="source", ax=ax,
         palette=SOURCES, order=list(SOURCES), dodge=0.0)
ax.axhline(0, color="grey", lw=0.8)
ax.set(xscale="log", xlabel="width $d$", ylabel="$r_{90}$: mul − add (per block)",
       title="Multiplication minus addition, paired by seed (mean, 95% CI)")
ax.set_xscale("log", base=2)
handles, names = ax.get_legend_handles_labels()
fig.tight_layout()
fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
figure_data(pivot.rename_axis(columns=None), "fig-ch11-mul-add-gap",
            what="one row per width, seed and source (real or random walk): per-block r90 of "
                 "both operations and their difference")

# %% [markdown]
# The same gaps per width (mean [95% CI] over seeds), with the paired difference in final
# held-out accuracy:

# %% tags=["hide-input"]
gap_table = gap.groupby("width")[list(SOURCES)].agg(lambda v: ci_text(v, signed=True))
acc_gap = accuracy[accuracy.layers == base_depth].pivot_table(
    index=["width", "seed"], columns="op", values="accuracy").reset_index()
gap_table["accuracy: mul − add"] = (acc_gap["mul"] - acc_gap["add"]).groupby(
    acc_gap.width).apply(lambda v: ci_text(v, 3, signed=True))
gap_table

# %% tags=["hide-input"]
gap_trend = openq.trend(gap.rename(columns={"real": "gap"}), "width", "gap", log2=True)
answer_4 = ch11.answer_4(c13, gap, gap_trend)
display(Markdown(answer_4))

# %% [markdown]
# ## 5. Claims ledger rows
# **C16** (early low-dimensional diagnostics predict eventual success). The rule lives in
# `modadd.claims.ch11` (version 2; version 1 is evaluated on the same tables): at 15% of
# training, *supported* if the diagnostics alone beat the setting-permutation null (p < 0.05)
# and, added to the training loss, raise the cross-validated AUC (ΔAUC interval above 0);
# *partly* if they beat the null but add nothing to the loss; *not supported* if they do not
# beat the null; *not testable* if every run (or none) generalized. Version 1 took the ΔAUC
# interval from a bootstrap over runs; version 2 resamples whole settings, because outcomes
# cluster by setting. The null moves the outcomes between whole settings (the chapter's
# permutation null).

# %% tags=["hide-input"]
display(c16_record)

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
display(conclusion(c16_record))

# %% [markdown]
# ### Answers to the four questions

# %% tags=["hide-input"]
display(Markdown("\n\n".join([answer_1, answer_2, answer_3, answer_4])))

# %% [markdown] tags=["remove-cell"]
# Headline values recorded for parameter sweeps (`modadd.sweep.collect`; hidden in the book).

# %% tags=["remove-cell"]
from modadd.sweep import record_value

record_value("block_r90_slope_per_width_doubling",
       ch11.trend_row(trends, "width (per doubling)", "block_r90").slope)
record_value("block_r90_slope_per_layer", ch11.trend_row(trends, "depth (per layer)", "block_r90").slope)
for name, features_name in (("loss", "training loss (baseline)"), ("diagnostics", "diagnostics"),
                            ("diagnostics_loss", "diagnostics + loss")):
    record_value(f"auc_{name}", ch11.score_row(scores, HEADLINE, features_name).AUC)
record_value("final_overlap_mixed_curriculum",
       ch11.overlap_mean(overlaps, "final", "mixed vs curriculum (same seed)"))
record_value("mul_minus_add_r90", ch11.pooled_gap(gap)[0])
