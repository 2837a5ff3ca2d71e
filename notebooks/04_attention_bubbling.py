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
# # 4. Attention bubbling: how and when the readout attention concentrates
#
# The paper (§4.2, Fig. 2) reports that the readout position's attention entropy drops sharply
# during training ("bubbling"), that the drop is smooth rather than abrupt, and that its timing
# coincides with the stabilisation of the execution manifold (claims C6, C7). The original code
# measured the last layer only, on one probe batch per $m$, and never correlated the two timings.
#
# Here: every layer and head, on the fixed held-out probe sets; a stated criterion for "smooth";
# where the attention goes (marker and value tokens vs distractors); top-$k$ attention ablation;
# and the timing against chapter 3's lock-in step, seed by seed. The last section before the
# Conclusion opens the chapter's run in TransformerLens.
#
# The runs are the `book` preset with the full parameter vector stored at every snapshot, so the
# model can be rebuilt at any step. Storing more does not change training (independent RNG
# streams): the first cell checks that these runs' metrics equal those of chapter 2's runs.

# %% tags=["hide-input"]
from typing import Optional
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

import modadd
from modadd import bubbling
from modadd import claims
from modadd import interop
from modadd import manifold
import modadd.metrics
from modadd import registry
from modadd.claims import ch04
from modadd.plots import (band_plot, book_style, entropy_panels, figure_data, panels,
                          shared_legend)
from modadd.report import conclusion, fmt_ci
from modadd.stats import bounded_mean_ci, mean_ci

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # "smoke" (CI, seconds) | "book" (2-core CPU) | "original" | "paper"
seeds: Optional[int] = None     # independent training seeds (0..seeds-1)
n_examples: Optional[int] = None # probe examples per m for the per-head attention profile
ablation_examples: Optional[int] = None # probe examples per m for top-k ablation
smooth_fraction: Optional[float] = None # a drop is "abrupt" if its 10-90% window is at most this share of training
workers: int = 0                # training processes on a cache miss (0: one per run)

# %% tags=["hide-input"]
S = registry.from_namespace("ch04", globals())
display(S)
roles = S.runs()
main, configs = roles["main"], roles["full params"]
runs = modadd.load_or_train_many(configs + main, n_workers=workers or None)
full_runs, main_runs = runs[:len(configs)], runs[len(configs):]
cfg = configs[0]
T = cfg.task.seq_len
metrics = pd.concat([r.metrics.assign(seed=r.config.seed) for r in full_runs], ignore_index=True)
same = all(a.metrics.equals(b.metrics) and a.train_log.equals(b.train_log)
           for a, b in zip(full_runs, main_runs))
# the same seeds with dense early snapshots and evaluations (§1b; identical training)
dense_cfgs = roles["dense snapshots"]
dense_runs = modadd.load_or_train_many(dense_cfgs, n_workers=workers or None)
dense_metrics = pd.concat([r.metrics.assign(seed=r.config.seed) for r in dense_runs],
                          ignore_index=True)
book_style()
# where the dense runs' training losses first differ from the committed book runs' (per seed)
diverge = [int(np.flatnonzero(d.train_log.loss.to_numpy() != r.train_log.loss.to_numpy())[0])
           if (d.train_log.loss.to_numpy() != r.train_log.loss.to_numpy()).any() else None
           for d, r in zip(dense_runs, main_runs)]
display(Markdown(f"Training metrics identical with and without full-parameter snapshots in all "
                 f"{len(main)} seeds: **{same}**."))

# %% [markdown]
# ## 1. Readout entropy over training, per layer and $m$
# Entropy of the readout row (mean over heads and probe examples); dotted: uniform causal
# attention, $\ln T$. The paper's Fig. 2 shows the last layer only ({numref}`fig-ch04-entropy`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Readout attention entropy (nats) over training steps, one panel per layer and one colour per $m$: mean over independent seeds (line) and 95% CI over seeds (band). Each seed's value is the mean over heads and held-out probe examples. Dotted: $\\ln T$, the entropy of uniform causal attention at the readout. Mirrors the paper's Fig. 2, which shows the last layer only.", "name": "fig-ch04-entropy"}, "image": {"alt": "One panel per layer; in each, four entropy curves (one per m) start near the dotted uniform-attention line and fall early in training, with shaded bands over seeds"}}
entropy = metrics[metrics.metric == "entropy"][["seed", "m", "layer", "step", "value"]]
entropy_panels(entropy.assign(metric="entropy"), T,
               f"Readout attention entropy (mean, 95% CI over {len(main)} seeds)")
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it (its own cell: myst-nb puts every output of
# a figure cell inside the figure)
figure_data(entropy.rename(columns={"value": "entropy"}).reset_index(drop=True),
            "fig-ch04-entropy", what="one row per seed, m, layer and step (entropy in nats)")

# %% [markdown]
# **Smooth or abrupt, and does it rebound?** For each seed, layer and $m$: the drop from the
# initial entropy to the minimum, the 10–90% transition window (steps between falling 10% and
# 90% of the drop), and the rebound (how much of the drop is recovered by the end). A transition
# counts as *abrupt* if its window is at most `smooth_fraction` of training.

# %% tags=["hide-input"]
trans = bubbling.transitions(metrics)
trans["width_fraction"] = trans.width / cfg.train.n_steps
trans["drop_fraction"] = trans["drop"] / np.log(T)
table = []
for (layer, m), part in trans.groupby(["layer", "m"]):
    row = {"layer": layer, "m": m}
    for column, label, bounds in (("drop_fraction", "drop / ln T", (0, 1)),
                                  ("width_fraction", "10–90% width / training", (0, 1)),
                                  ("rebound", "rebound / drop", (0, np.inf))):
        row[label] = fmt_ci(bounded_mean_ci(part[column], bounds))
    row["abrupt seeds"] = f"{(part.width_fraction <= S.smooth_fraction).sum()}/{len(part)}"
    table.append(row)
display(Markdown(ch04.resolution_text(trans, cfg.train.snapshot_every)))
pd.DataFrame(table).set_index(["layer", "m"])

# %% [markdown]
# ### 1b. The transition at 10-step resolution
# The same seeds trained again with snapshots and evaluations every tenth of the regular spacing
# up to a sixth of training (book: every 10 steps to step 1000; `presets.dense_early`). Training
# is the same computation, only what is recorded differs: with today's code a run with and
# without the dense phase has bit-identical losses and weights (`tests/test_train.py`). Solid
# lines: the dense evaluations; dots: the same runs' values at the regular snapshots. The last
# layer, the paper's, per $m$ ({numref}`fig-ch04-dense-entropy`).

# %% tags=["hide-input"]
display(Markdown(ch04.divergence_text(diverge)))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Last-layer readout attention entropy (nats) over the first training steps of the dense-snapshot runs, one colour per $m$. Lines: evaluations at the dense spacing, mean over independent seeds, with the 95% CI over seeds as a band; dots: the seed mean at the regular snapshot spacing (the same runs). Dotted: $\\ln T$ (uniform attention). A closer look at the early part of the paper's Fig. 2.", "name": "fig-ch04-dense-entropy"}, "image": {"alt": "Four entropy curves, one per m, sampled finely in early training with shaded bands, falling from the dotted uniform-attention line; dots mark the coarser regular snapshots on each curve"}}
dense_until = dense_cfgs[0].train.dense_until
early = dense_metrics[(dense_metrics.metric == "entropy")
                      & (dense_metrics.layer == cfg.model.n_layers - 1)
                      & (dense_metrics.step <= 1.5 * dense_until)]
early = early.assign(regular_snapshot=early.step % cfg.train.snapshot_every == 0)
fig, ax = plt.subplots(figsize=(7, 3.4))
band_plot(early, x="step", hue="m", value="value", ax=ax, label_fmt="m={}")
on_grid = early[early.regular_snapshot].groupby(["m", "step"]).value.mean()
line_colour = {line.get_label(): line.get_color() for line in ax.get_lines()}
for m, part in on_grid.groupby(level="m"):
    ax.plot(part.index.get_level_values("step"), part.values, "o", ms=4, mec="k", mew=0.5,
            color=line_colour.get(f"m={m}", "k"))
ax.axhline(np.log(T), color="k", ls=":", lw=1)
ax.set(xlabel="step", ylabel="readout entropy (last layer)",
       title=f"Last-layer readout entropy, every {dense_cfgs[0].train.dense_every} steps\n"
             f"(lines, 95% CI over seeds) and every {cfg.train.snapshot_every} (dots)")
handles, names = ax.get_legend_handles_labels()
fig.tight_layout()
fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(early[["seed", "m", "layer", "step", "regular_snapshot", "value"]]
            .rename(columns={"value": "entropy"}).reset_index(drop=True),
            "fig-ch04-dense-entropy",
            what="one row per seed, m and evaluated step, last layer (entropy in nats)")

# %% [markdown]
# The transition per layer at both resolutions, on the same dense-snapshot runs (their regular
# snapshots alone, and all of them; per seed the mean over $m$; mean and 95% CI over seeds; width
# and midpoint in steps, and the width in snapshot intervals of the grid it was measured on):

# %% tags=["hide-input"]
dense_trans = bubbling.transitions(dense_metrics)
sparse_trans = bubbling.transitions(ch04.on_regular_steps(dense_metrics, cfg.train.snapshot_every,
                                                  cfg.train.n_steps))
display(Markdown(ch04.resolution_text(dense_trans, dense_cfgs[0].train.dense_every)))
ch04.resolution_table({f"every {cfg.train.snapshot_every} steps": sparse_trans,
                      f"every {dense_cfgs[0].train.dense_every} steps": dense_trans},
                     {f"every {cfg.train.snapshot_every} steps": cfg.train.snapshot_every,
                      f"every {dense_cfgs[0].train.dense_every} steps":
                      dense_cfgs[0].train.dense_every}, cfg.train.n_steps)

# %% [markdown]
# ## 2. Where the readout looks: heatmaps early, mid-training and late
# One held-out example of the largest $m$ (seed 0). Rows: layer.head; columns: positions,
# labelled `M` for a marker, `v` for its value, `·` for a distractor (and `Q` for a query token).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Readout attention of one held-out example with the largest $m$ (seed 0) at an early snapshot, mid-training and the end of training (one panel each). Rows: every head (layer.head); columns: input positions, labelled M for a marker, v for its value, · for a distractor and Q for a query token; colour: the attention weight the readout position gives each position, from 0 to 1. One example from one seed, for illustration only.", "name": "fig-ch04-heatmaps"}, "image": {"alt": "Three heatmaps in a two-column grid, one per training step, with heads as rows and input positions as columns, darker cells meaning more weight; at the earliest step the weight is spread more evenly, later most rows put nearly all their weight on one or two marker or value positions"}}
n_snapshots = len(full_runs[0].snapshot_steps)
picks = sorted({1, n_snapshots // 2, n_snapshots - 1})
m_show = max(cfg.task.m_values)
maps = bubbling.readout_heatmaps(configs[0], picks, m_show)
labels = [{0: "·", 1: "M", 2: "v", 3: "Q"}[int(c)] for c in maps["classes"]]
fig, axes = panels(len(picks), height=max(2.0, 0.15 * cfg.model.n_layers * cfg.model.n_heads + 0.6),
                   sharey=True)
for ax, rows, step in zip(axes, maps["attention"], maps["steps"]):
    sns.heatmap(rows, ax=ax, cmap="mako_r", vmin=0, vmax=1, cbar=False,
                xticklabels=labels,
                yticklabels=[f"{l}.{h}" for l in range(cfg.model.n_layers)
                             for h in range(cfg.model.n_heads)])
    ax.set(title=f"step {step}", xlabel="position")
    ax.tick_params(axis="x", labelrotation=0)
for ax in axes[::2]:
    ax.set_ylabel("layer.head")
fig.suptitle(f"Readout attention of one m={m_show} example over training (seed 0)\n"
             "positions: M marker, v value, · distractor")
fig.tight_layout()
if len(axes) > 1 and len(axes) % 2:     # the colour bar in the grid's empty last cell
    beside, row = axes[-2].get_position(), axes[-1].get_position()
    cax = fig.add_axes([beside.x0, row.y0, 0.03, row.height])
else:                                   # else beside the last row, in room made for it
    fig.subplots_adjust(right=0.86)
    row = axes[-1].get_position()
    cax = fig.add_axes([0.89, row.y0, 0.03, row.height])
fig.colorbar(axes[0].collections[0], cax=cax, label="attention weight")
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
heat = pd.DataFrame(
    [{"step": int(step), "layer": r // cfg.model.n_heads, "head": r % cfg.model.n_heads,
      "position": p, "position_class": labels[p], "attention": float(rows[r, p])}
     for rows, step in zip(np.asarray(maps["attention"]), maps["steps"])
     for r in range(rows.shape[0]) for p in range(rows.shape[1])])
figure_data(heat, "fig-ch04-heatmaps", what=f"one row per step, layer, head and input position "
                                            f"(seed 0, one m={m_show} example)")

# %% [markdown]
# ## 3. Attention mass on the task tokens: which layers route
# Mass of the readout row on marker and value positions, per layer (mean over heads and $m$);
# the dotted line is what uniform attention would give (the share of marker and value positions).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Where each layer's readout attention goes over training: the mass on marker tokens, on value tokens, and the largest single weight (top-1 mass), one colour per layer. Per seed the mean over heads, $m$ and held-out probe examples; line: mean over independent seeds, band: 95% CI over seeds. Dotted: the mass uniform causal attention would put on markers (and on values).", "name": "fig-ch04-routing"}, "image": {"alt": "Three panels of curves over training steps, one curve per layer with a shaded band: attention mass on marker tokens, on value tokens, and the top-1 attention mass, with a dotted uniform-attention reference in the first two"}}
profiles = pd.concat([bubbling.attention_profile(c, n_examples=S.n_examples).assign(seed=c.seed)
                      for c in configs], ignore_index=True)
profiles["task_mass"] = profiles.mass_marker + profiles.mass_value
per_layer = profiles.groupby(["seed", "step", "layer"], as_index=False)[
    ["task_mass", "mass_marker", "mass_value", "top1", "entropy_norm"]].mean()
uniform_share = np.mean([2 * m / T for m in cfg.task.m_values])
fig, axes = panels(3, height=2.7)
for ax, column, label in zip(axes, ["mass_marker", "mass_value", "top1"],
                             ["mass on marker tokens", "mass on value tokens",
                              "top-1 mass (largest weight)"]):
    band_plot(per_layer, x="step", hue="layer", value=column, ax=ax, label_fmt="layer {}")
    ax.set(xlabel="step", ylabel=label)
axes[0].axhline(uniform_share / 2, color="k", ls=":", lw=1, label="uniform attention")
axes[1].axhline(uniform_share / 2, color="k", ls=":", lw=1)
handles, names = axes[0].get_legend_handles_labels()
fig.suptitle("Readout routing per layer\n(mean over heads and m; 95% CI over seeds)")
fig.tight_layout()
# the legend in the grid's empty fourth cell
right, bottom = axes[1].get_position(), axes[2].get_position()
fig.legend(handles, names, loc="center", frameon=False,
           bbox_to_anchor=((right.x0 + right.x1) / 2, (bottom.y0 + bottom.y1) / 2))
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(per_layer[["seed", "step", "layer", "mass_marker", "mass_value", "top1"]]
            .assign(uniform_marker=uniform_share / 2, uniform_value=uniform_share / 2),
            "fig-ch04-routing", what="one row per seed, step and layer (means over heads and m)")

# %% [markdown]
# Per head: the normalised readout entropy ($1$ = uniform) of each head over training, one panel
# per layer. Heads are **not aligned across seeds**: the head with index $h$ in one seed and the
# head with index $h$ in another start from independent initialisations and need not do the same
# job, so averaging a head *index* over seeds would mix unrelated heads. Instead, within each seed
# and layer the heads are **ranked by their normalised entropy at the end of training** (mean over
# $m$; rank 1 = the most focused head, the lowest entropy). "The rank-1 head of layer $l$" is then
# the same kind of object in every seed, and a mean and 95% CI over seeds of rank-matched heads
# is legitimate. The ranking is fixed at the end, so each curve follows the head that *ends* at
# that rank back through training ({numref}`fig-ch04-head-entropy`). Heads of one layer need not
# bubble together.

# %% tags=["hide-input"]
per_head = profiles.groupby(["seed", "step", "layer", "head"], as_index=False)["entropy_norm"].mean()
final = per_head[per_head.step == per_head.step.max()]
# rank 1: the lowest normalised entropy at the end of training, within each seed and layer
head_rank = final.assign(rank=final.groupby(["seed", "layer"]).entropy_norm
                         .rank(method="first").astype(int))[["seed", "layer", "head", "rank"]]
per_head = per_head.merge(head_rank, on=["seed", "layer", "head"])

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Normalised readout entropy (entropy / $\\ln T$; 1 = uniform attention) of each head over training, one panel per layer. Within each seed and layer the heads are ranked by their normalised entropy at the end of training (rank 1: the most focused head), and each colour is one rank: mean over independent seeds of the rank-matched heads (line) and 95% CI over seeds (band). Per seed, a head's value is the mean over $m$ and held-out probe examples. Head indices are not matched across seeds.", "name": "fig-ch04-head-entropy"}, "image": {"alt": "One panel per layer, each with one curve per head rank over training steps with shaded bands; the curves start near 1 (uniform), drop early in training and then spread apart, with rank 1 lowest"}}
fig, axes = panels(cfg.model.n_layers, height=2.4, sharey=True)
for ax, layer in zip(axes, range(cfg.model.n_layers)):
    band_plot(per_head[per_head.layer == layer], x="step", hue="rank", value="entropy_norm",
              ax=ax, palette="crest", label_fmt="rank {}")
    ax.set(title=f"layer {layer}", xlabel="step", ylabel="entropy / ln T")
for ax in axes[1::2]:
    ax.set_ylabel("")                                   # shared with the panel on its left
handles, names = axes[0].get_legend_handles_labels()
fig.suptitle("Normalised readout entropy per head, ranked within each seed\n"
             "(rank 1: most focused at the end; mean over m; 95% CI over seeds)")
fig.tight_layout()
shared_legend(fig, axes, handles, names, ncol=None if len(axes) % 2 else len(names))
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(per_head, "fig-ch04-head-entropy",
            what="one row per seed, step, layer and head, with the head's rank in its seed and "
                 "layer (normalised entropy, mean over m)")

# %% [markdown]
# Per head at the end of training, ranked as above: the mass on values, markers and distractors,
# the largest single weight and the normalised entropy (per seed the mean over $m$, then the mean
# over seeds of the rank-matched heads). The last column lists, seed by seed, which head index
# holds the rank, so one can see whether an index keeps its role across seeds.

# %% tags=["hide-input"]
ends = {"mass_value": "value", "mass_marker": "marker", "mass_distractor": "distractor",
        "top1": "top-1", "entropy_norm": "entropy / ln T"}
last = profiles[profiles.step == profiles.step.max()]
last = (last.groupby(["seed", "layer", "head"], as_index=False)[list(ends)].mean()
        .merge(head_rank, on=["seed", "layer", "head"]))
end_table = last.groupby(["layer", "rank"])[list(ends)].mean().rename(columns=ends).round(3)
end_table["head, seed by seed"] = (last.sort_values("seed").groupby(["layer", "rank"])["head"]
                                   .agg(lambda h: " ".join(str(int(i)) for i in h)))
end_table.style.format("{:.3f}", subset=list(ends.values())) \
    .background_gradient(cmap="mako_r", subset=["value", "marker"])

# %% [markdown]
# ## 4. Timing: does bubbling coincide with manifold lock-in?
# Per seed and layer: the entropy transition midpoint (50% of the drop, mean over $m$) against the
# lock-in step of that layer's four attention matrices (chapter 3's definition; median over
# blocks), both measured on the dense-snapshot runs (10-step resolution at the book preset;
# {numref}`fig-ch04-timing`). The title's correlation pools the seed-by-layer points, which are
# not independent (they cluster by seed); the per-seed correlation (last layer) is shown as well,
# and claim C7 (section 6) takes the seed as its unit.

# %% tags=["hide-input"]
dense_lock = ch04.dense_lock(manifold.dense_lock_in_table(dense_cfgs, null_draws=ch04.lock_in_null_draws(preset)))
lock = dense_lock.groupby(["seed", "layer"], as_index=False)["lock_in"].median()
lock["lock_step"] = lock.lock_in * cfg.train.n_steps
mid = dense_trans.groupby(["seed", "layer"], as_index=False)["mid"].mean()
timing = mid.merge(lock, on=["seed", "layer"])
r_all = modadd.metrics.pearson_ci(timing.lock_step, timing["mid"])
last_layer = timing[timing.layer == timing.layer.max()]
r_last = modadd.metrics.pearson_ci(last_layer.lock_step, last_layer["mid"])
gap = mean_ci(timing.groupby("seed").apply(lambda p: (p["mid"] - p.lock_step).mean()))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Bubbling against lock-in, one point per seed and layer (colour: layer; marker shape: seed): the step at which the layer's readout entropy passes the midpoint of its drop (mean over $m$) against the step at which the layer's four attention matrices lock in (chapter 3's definition; median over the four), both on the dense-snapshot runs. Dotted: the same step on both axes. The title's Pearson r, with its 95% CI, pools the seed × layer points, which cluster by seed and are not independent; claim C7 takes the seed as its unit.", "name": "fig-ch04-timing"}, "image": {"alt": "Scatter plot of entropy-midpoint step against lock-in step, points coloured by layer and shaped by seed, with a dotted diagonal where the two steps are equal"}}
fig, ax = plt.subplots(figsize=(5.5, 4))
sns.scatterplot(timing, x="lock_step", y="mid", hue="layer", style="seed", ax=ax, palette="viridis")
top = max(timing.lock_step.max(), timing["mid"].max()) * 1.05
ax.plot([0, top], [0, top], color="k", ls=":", lw=1, label="same step")
ax.set(xlabel="lock-in step (chapter 3, dense snapshots)",
       ylabel="entropy transition midpoint (step)",
       title=f"r = {fmt_ci(r_all[:3], bounds=(-1, 1))} over {r_all[3]} seed×layer points")
ax.legend(bbox_to_anchor=(1.02, 1), loc="upper left")
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(timing.rename(columns={"mid": "entropy_midpoint_step", "lock_in": "lock_in_fraction",
                                   "lock_step": "lock_in_step"}), "fig-ch04-timing",
            what="one row per seed and layer (midpoint: mean over m; lock-in: median over the "
                 "layer's four attention matrices)")

# %% tags=["hide-input"]
display(Markdown(ch04.timing_text(gap, r_last, dense_trans["mid"])))

# %% [markdown]
# Per seed (the unit C7 takes), at 10-step resolution: the entropy midpoint and the lock-in step,
# each the mean over layers (midpoints over $m$ first), and their difference:

# %% tags=["hide-input"]
per_seed_timing = timing.groupby("seed")[["mid", "lock_step"]].mean()
per_seed_timing["midpoint − lock-in"] = per_seed_timing["mid"] - per_seed_timing.lock_step
per_seed_timing.rename(columns={"mid": "entropy midpoint (step)",
                                "lock_step": "lock-in (step)"}).round(0)

# %% [markdown]
# ## 5. Top-$k$ attention ablation
# Every layer's attention fixed to the unablated pass's patterns, cut to their $k$ largest weights
# per row and renormalised (the original's protocol); accuracy per $m$ on `ablation_examples` held-out
# examples, at three points of training. $k = T$ is the unablated model
# ({numref}`fig-ch04-topk-ablation`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Top-$k$ attention ablation at three points of training (one panel each): held-out accuracy per $m$ when every layer's attention keeps only its $k$ largest weights per row (renormalised; patterns from the unablated pass), against $k$ on a log axis; $k = T$ is the unablated model. Line: mean over independent seeds; band: 95% CI over seeds.", "name": "fig-ch04-topk-ablation"}, "image": {"alt": "Three panels, one per training step, each with one accuracy curve per m against the number of attention weights kept per row on a logarithmic axis, with shaded bands over seeds"}}
ablation = pd.concat([bubbling.ablation_table(c, n_examples=S.ablation_examples).assign(seed=c.seed)
                      for c in configs], ignore_index=True)
points = sorted(ablation.step.unique())
fig, axes = panels(len(points), height=2.7, sharey=True)
for ax, step in zip(axes, points):
    band_plot(ablation[ablation.step == step], x="k", hue="m", value="accuracy", ax=ax,
              label_fmt="m={}")
    ax.set(xscale="log", title=f"step {step}", xlabel="k (attention weights kept per row)",
           ylabel="held-out accuracy")
    ax.set_xticks(sorted(ablation.k.unique()), labels=[str(k) for k in sorted(ablation.k.unique())])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
for ax in axes[1::2]:
    ax.set_ylabel("")                                   # shared with the panel on its left
handles, names = axes[0].get_legend_handles_labels()
fig.suptitle("Top-k attention ablation (mean, 95% CI over seeds)")
fig.tight_layout()
shared_legend(fig, axes, handles, names, ncol=None if len(axes) % 2 else len(names))
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(ablation, "fig-ch04-topk-ablation",
            what="one row per seed, step, m and k (held-out accuracy)")

# %% [markdown]
# ## 6. Claims ledger rows
# The rules live in `modadd.claims.ch04` (listed below with their versions); each record shows
# the verdict, the criterion that decided it, its null (uniform attention for C6; the lock-in of
# another seed for C7), what flips it, and the verdict of the earlier rule on the same tables.
# In short: **C6** tests the last layer's drop (every $m$: CI lower bound ≥ half of $\ln T$) and
# judges smooth vs abrupt only when the 10–90% window spans more than a stated number of
# snapshot intervals, so that a denser re-measurement is decided by the same rule. **C7** takes
# the seed as its unit (layers averaged within seed) and is not testable where the entropy
# midpoints do not vary beyond the snapshot grid. **Both are measured at 10-step resolution**
# (the dense-snapshot runs, §1b and §4); each record also shows the verdict on the regular
# snapshots only, by the same rule.

# %% tags=["hide-input"]
display(Markdown("\n".join(f"- **{spec.id}**, rule v{spec.rule.version} ({spec.rule.date}): "
                            f"{spec.rule.text}." for spec in ch04.CLAIMS)))
tables = ch04.tables_from_metrics(dense_metrics, dense_lock, T, cfg.train.n_steps)
# the same dense-snapshot runs at the regular spacing only: only the resolution differs
regular = {ch04.REGULAR: ch04.tables_from_metrics(
    ch04.on_regular_steps(dense_metrics, cfg.train.snapshot_every, cfg.train.n_steps),
    ch04.dense_lock(manifold.dense_lock_in_table(dense_cfgs, null_draws=ch04.lock_in_null_draws(preset)), "regular"),
    T, cfg.train.n_steps)}
records = {cid: claims.evaluate(cid, tables, preset, regular) for cid in ("C6", "C7")}
display(Markdown(ch04.resolution_verdicts(records)))
display(records["C6"])

# %% tags=["hide-input"]
records["C7"]

# %% [markdown]
# ## 7. This chapter's run in TransformerLens
# Interpretability work on models like these is done in
# TransformerLens (TL) {cite}`nanda2022transformerlens`: its hook names,
# `run_with_cache`, activation patching. `modadd.interop.to_hooked_transformer` converts any
# pre-LN model of this study (marker task or a∘b mod p) into a TL `HookedTransformer`, and
# `from_hooked_transformer` converts back; the map of weights and hook names is in the module's
# docstring (post-LN models have no TL form and are refused). Below, seed 0's final model of this
# chapter's book runs against its conversion, on the run's fixed probe set of each $m$: the
# logits at the readout, the attention patterns read through TL's `blocks.{l}.attn.hook_pattern`
# and the residual stream through `blocks.{l}.hook_resid_pre`. The comparison is cached, so this
# page needs neither the weights nor TL. To open the run yourself (the `interop` extra; the
# weights are not committed, so `load_or_train` retrains the run into `data/cache` first):
#
# ```python
# run = modadd.load_or_train(main[0], trajectories=True)
# hooked = interop.hooked_from_run(run)            # a transformer_lens.HookedTransformer
# logits, cache = hooked.run_with_cache(tokens)    # logits[:, -1] is our readout
# cache["blocks.4.attn.hook_pattern"][:, :, -1]    # the readout row of each last-layer head
# ```

# %% tags=["hide-input"]
agreement = interop.tl_agreement(main[0])
table = pd.DataFrame(agreement["values"], index=agreement["sets"], columns=agreement["columns"])
n_probe = min(512, main[0].train.probe_size)
display(Markdown(
    f"Over the first {n_probe} probe examples of each m, the largest difference between our "
    f"readout logits and TL's is **{table.max_abs_logit_diff.max():.1e}** in float32, where "
    f"logits reach {table.max_abs_logit.max():.1f} in size (the two implementations round "
    f"differently through {main[0].model.n_layers} layers), and "
    f"**{table.max_abs_logit_diff_fp64.max():.0e}** with both models in float64: the conversion "
    f"itself is exact. The predicted answer is the same in "
    f"**{table.argmax_agreement.min():.0%}** of the examples"
    f"{' (so the accuracies are equal)' if (table.accuracy_ours == table.accuracy_tl).all() else ''}; "
    f"the attention patterns differ by at most {table.max_abs_pattern_diff.max():.1e} and the "
    f"residual streams by {table.max_abs_resid_diff.max():.1e}."))
committed = main_runs[0].meta
same_run = str(agreement["weights_train_log_sha256"]) == committed.get("checksums", {}).get(
    "train_log.npz")
final_acc = ", ".join(f"m={m}: {a:.3f}" for m, a in committed["final_accuracy"].items())
display(Markdown(
    "The weights are this run's bit for bit (the same training log)." if same_run else
    f"The committed results keep no weights, so these are the same configuration retrained on "
    f"another host (`{agreement['weights_cpu']}`): its float rounding parts from the committed "
    f"run's within the first steps (as chapter 9 §7 measures across hosts), so it is a sibling "
    f"of the committed run, not the run itself. Its probe accuracies below compare with the "
    f"committed run's final ones ({final_acc})."))
formats = {"max |Δ logit|": "{:.1e}", "max |logit|": "{:.1f}", "same answer": "{:.0%}",
           "accuracy (ours)": "{:.3f}", "accuracy (TL)": "{:.3f}", "max |Δ pattern|": "{:.1e}",
           "max |Δ residual|": "{:.1e}", "max |Δ logit|, float64": "{:.0e}"}
shown = table.rename(columns=dict(zip(agreement["columns"], formats))).T   # sets as columns
styler = shown.style
for row, fmt in formats.items():
    styler = styler.format(fmt, subset=pd.IndexSlice[[row], :])
styler

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The readout row of every head's attention pattern, read through TransformerLens's `blocks.{l}.attn.hook_pattern` on the converted model (seed 0's final model, the first probe example of one $m$). Rows: layer and head; columns: the input tokens (* a marker, v its value; the last column is the readout position); colour: attention weight from 0 to 1. It shows the hook names at work on one example, not a result over seeds.", "name": "fig-ch04-tl-pattern"}, "image": {"alt": "Heatmap with one row per layer and head and one column per input token, colour showing how much attention the readout position gives each token"}}
pattern = agreement["readout_pattern"]                   # [layer, head, position]
layers, heads, length = pattern.shape
example_tokens = agreement["example_tokens"]
is_marker = np.isin(example_tokens, main[0].task.marker_tokens)
is_value = np.r_[False, is_marker[:-1]]                 # the token after a marker is its value
labels = [f"{t}{'*' if marker else ''}{'v' if value else ''}"
          for t, marker, value in zip(example_tokens, is_marker, is_value)]
fig, ax = plt.subplots(figsize=(7, 0.32 * layers * heads + 1.4))
sns.heatmap(pattern.reshape(layers * heads, length), ax=ax, cmap="viridis", vmin=0, vmax=1,
            cbar_kws={"label": "attention weight"},
            yticklabels=[f"L{l} H{h}" for l in range(layers) for h in range(heads)],
            xticklabels=labels)
ax.set(xlabel="input token (* marker, v value; the last is the readout position)",
       ylabel="layer, head",
       title=f"Readout row of blocks.{{l}}.attn.hook_pattern, probe example 0 of "
             f"{agreement['example_set']}")
ax.tick_params(axis="x", rotation=90)
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(pd.DataFrame([{"layer": l, "head": h, "position": p, "token": int(example_tokens[p]),
                           "marker": bool(is_marker[p]), "value": bool(is_value[p]),
                           "attention": float(pattern[l, h, p])}
                          for l in range(layers) for h in range(heads) for p in range(length)]),
            "fig-ch04-tl-pattern", what="one row per layer, head and input position (seed 0, "
                                        f"probe example 0 of {agreement['example_set']})")

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
conclusion(records["C6"], records["C7"])
