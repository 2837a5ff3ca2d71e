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
# # 6. Sparse autoencoders: do task-correlated latents matter?
#
# The paper (§4.4, Fig. 6) trains sparse autoencoders (SAEs) on intermediate activations and
# reports that a few latents (3–5 of several hundred) correlate strongly with the number of
# markers $m$ or the marker positions, yet zeroing them barely changes accuracy at any stage, the
# largest drop coming early (claim **C9**). Its reading: SAEs capture auxiliary routing structure,
# while execution stays distributed over the low-dimensional manifold.
#
# The original measurement could not have shown anything else
# ({doc}`original-code notes §6 and §10.11 <../book/original_code>`): it edited non-readout
# positions *after the last layer*, so in most batches the edit never reached the logits; it
# trained on $m = 4$ only, so no latent could correlate with $m$; it chose latents by variance,
# not by correlation; and its TopK encoder had no ReLU, while the paper describes ReLU + L1.
# Here:
#
# - two SAE kinds side by side: ReLU + L1 (the paper's text) and TopK with signed codes (the
#   original code), decoder columns at unit norm;
# - activations: the residual stream entering a layer, at the readout position, on held-out
#   examples with **mixed** $m$ (per example), from each run's measurement RNG stream;
# - latents chosen by their association with $m$ and the marker positions (|Pearson r|), and, as a
#   second selection, with the label and the marked values (correlation ratio);
# - ablation **through the model**: the residual entering the layer is replaced by the SAE
#   reconstruction with the chosen latents zeroed, and the remaining layers run. Always beside
#   it: the reconstruction alone (no latent zeroed) and the same number of random live latents
#   zeroed (many draws);
# - linear probes for $m$ and the label scored on held-out examples at every layer.
#
# The runs are the `book` runs with full parameters (chapters 4–5), at three stages of training.

# %% tags=["hide-input"]
from typing import Optional
from functools import partial

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from modadd import claims
from modadd import sae
from modadd import registry
from modadd.claims import ch06
from modadd.plots import band_plot, book_style, figure_data, panels, point_ci
from modadd.report import ci_text, conclusion
from modadd.stats import mean_ci

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # "smoke" (CI, seconds) | "book" (2-core CPU) | "original" | "paper"
seeds: Optional[int] = None     # independent training seeds (0..seeds-1)
stages: Optional[list] = None   # training stages, as fractions of the run (nearest snapshot)
layers: Optional[list] = None   # residual streams probed (entering layer l); empty: middle and last block
n_train: Optional[int] = None   # mixed-m examples the SAEs and probes are trained on
n_eval: Optional[int] = None    # held-out examples per m for ablation and probe testing
n_latents: Optional[int] = None # latents zeroed per ablation (the original: 6)
random_draws: Optional[int] = None # random-latent draws per ablation
sae_steps: Optional[int] = None # SAE optimizer steps
strong: Optional[float] = None  # association counted as "strong"
small_drop: Optional[float] = None # accuracy drop counted as "barely changes"
workers: int = 0                # processes on a cache miss (0: min(2, seeds))

# %% tags=["hide-input"]
S = registry.from_namespace("ch06", globals())
display(S)
configs = S.runs()["full params"]
cfg = configs[0]
steps, layers = registry.probe_points(S, cfg)
settings = registry.probe_settings(S)
S.warm(workers)                 # the SAE and probe tables, computed on a cache miss only
table = pd.concat([sae.probe_table(c, steps, layers, settings) for c in configs],
                  ignore_index=True)
probes = pd.concat([sae.linear_probe_table(c, steps, settings) for c in configs],
                   ignore_index=True)
stage_name = ch06.stage_names(steps)
stage_order = list(stage_name.values())
table["stage"] = pd.Categorical(table.step.map(stage_name), stage_order, ordered=True)
table["sae"] = table.sae.fillna("none")          # model-only rows (the clean accuracy)
book_style()
display(Markdown(
    f"{len(configs)} seeds; stages at steps {steps} ({', '.join(stage_name.values())}); "
    f"residual entering layers {S.layers}; SAEs with {settings.d_sae} latents trained on "
    f"{S.n_train} readout vectors; ablation and probes on {S.n_eval} held-out examples per m."))

# %% [markdown]
# ## 1. SAE quality
# Explained variance on held-out readout vectors, mean number of active latents ($L_0$), and
# latents never active. Mean [95% CI] over seeds.

# %% tags=["hide-input"]
ci3 = partial(ci_text, digits=3, fmt="g")      # mean [95% CI] over seeds, 3 significant digits
quality = table[table.quantity.isin(["explained_variance", "l0", "dead_fraction",
                                     "alive_latents"])]
(quality.groupby(["sae", "layer", "stage", "quantity"], observed=True).value.apply(ci3)
 .unstack("quantity"))

# %% [markdown]
# ## 2. How strongly do the best latents track $m$ and positions?
# Two selections, measured by two **different** quantities, so each has its own figure and axis:
# the latents most associated with $m$ or a marker position, by |Pearson r| (for ordered
# features; {numref}`fig-ch06-assoc-m`), and the latents most associated with the label or a
# marked value, by the correlation ratio $\eta$ (for categorical features: the share of a
# latent's standard deviation explained by the category means; {numref}`fig-ch06-assoc-label`).
# Both lie in $[0, 1]$, but a value of one is not comparable with a value of the other. Each is
# shown by rank (rank 1: the most associated live latent). The "strong" threshold (`strong`,
# dotted) is the one claim C9 applies to |r|.

# %% tags=["hide-input"]
assoc = table[table.quantity.str.startswith("association:")].copy()
assoc["selection"] = assoc.quantity.str.split(":").str[1]
# numbered stage names: the legend in time order
assoc["stage name"] = (assoc.stage.cat.codes + 1).astype(str) + " " + assoc.stage.astype(str)
cells = [(kind, layer) for kind in settings.kinds for layer in layers]


def association_figure(selection: str, ylabel: str, title: str, threshold=None) -> pd.DataFrame:
    """One panel per SAE kind and layer: the seed mean and 95% CI over seeds of the association
    of the top-ranked latents of ``selection``, by rank, one line per stage; returns the rows."""
    rows = assoc[assoc.selection == selection].rename(columns={"draw": "rank"})
    rows = rows.assign(rank=rows["rank"] + 1)                 # rank 1: the strongest latent
    fig, axes = panels(len(cells), height=2.6, sharey=True)
    for i, (ax, (kind_, layer)) in enumerate(zip(axes, cells)):
        part = rows[(rows.sae == kind_) & (rows.layer == layer)]
        band_plot(part, x="rank", hue="stage name", value="value", ax=ax, palette="viridis")
        if threshold is not None:
            ax.axhline(threshold, color="k", ls=":", lw=1, label=f"strong ({threshold:g})")
        ax.set(title=f"{kind_} SAE, layer {layer}", xlabel="latent rank",
               ylabel=ylabel if i % 2 == 0 else "")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle(title)
    fig.tight_layout()
    fig.legend(handles, labels, title="stage", loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=len(labels), frameon=False)
    return rows[["seed", "sae", "layer", "stage", "rank", "value"]].reset_index(drop=True)


# %% tags=["hide-input"] mystnb={"figure": {"caption": "How strongly the top latents track $m$ and the marker positions: the absolute Pearson correlation $|r|$ of the most associated live latents with $m$ or a marker position (the larger of the two), by latent rank (1: strongest), one panel per SAE kind (ReLU + L1, TopK) and probed layer, one colour per training stage. Line: mean over independent seeds; band: 95% CI over seeds. Dotted: the `strong` threshold claim C9 applies. The correlation half of the paper's SAE result (§4.4).", "name": "fig-ch06-assoc-m"}, "image": {"alt": "Four panels, one per SAE kind and layer, each with three falling curves (one per training stage) of absolute Pearson correlation against latent rank, with shaded bands and a dotted horizontal threshold line"}}
rows = association_figure("m / positions", "|r| with m or a position",
                          "Top latents vs m and marker positions: |Pearson r|\n"
                          "(mean, 95% CI over seeds)", threshold=S.strong)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it (its own cell: myst-nb puts every output of
# a figure cell inside the figure)
figure_data(rows.rename(columns={"value": "abs_pearson_r"}), "fig-ch06-assoc-m",
            what="one row per seed, SAE kind, layer, stage and latent rank")

# %% [markdown]
# The number of $m$/position latents at |r| ≥ `strong`, per seed (mean [95% CI] over seeds):

# %% tags=["hide-input"]
n_strong = (assoc[assoc.selection == "m / positions"].assign(strong=lambda f: f.value >= S.strong)
            .groupby(["seed", "sae", "layer", "stage"], observed=True).strong.sum().reset_index())
n_strong.groupby(["sae", "layer", "stage"], observed=True).strong.apply(ci3).unstack("stage")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "How strongly the top latents track the label and the marked values: the correlation ratio $\\eta$ (the share of a latent's standard deviation explained by the category means) of the most associated live latents with the label or a marked value (the larger), by latent rank (1: strongest), one panel per SAE kind (ReLU + L1, TopK) and probed layer, one colour per training stage. Line: mean over independent seeds; band: 95% CI over seeds. A different quantity from the $|r|$ of the previous figure, so it has its own axis.", "name": "fig-ch06-assoc-label"}, "image": {"alt": "Four panels, one per SAE kind and layer, each with three falling curves (one per training stage) of the correlation ratio against latent rank, with shaded bands"}}
rows = association_figure("label / values", "η with the label or a value",
                          "Top latents vs the label and marked values: correlation ratio η\n"
                          "(mean, 95% CI over seeds)")
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(rows.rename(columns={"value": "correlation_ratio"}), "fig-ch06-assoc-label",
            what="one row per seed, SAE kind, layer, stage and latent rank")

# %% [markdown]
# What the three latents most associated with $m$ or positions encode (seed 0, last stage): their
# mean code for each value of $m$ and of each marker's position (markers absent from an example
# do not count). One figure per SAE kind: {numref}`fig-ch06-profile-relu` (ReLU + L1) and
# {numref}`fig-ch06-profile-topk` (TopK).

# %% tags=["hide-input"]
profile = pd.concat([sae.latent_profile(configs[0], steps[-1], layer, settings)
                     for layer in layers], ignore_index=True)
profile = profile[profile.selection == "m / positions"]
profile = profile.assign(rank=profile["rank"] + 1)          # rank 1: the most associated latent
features = [f for f in profile.feature.unique()]


def profile_figure(kind_: str) -> pd.DataFrame:
    """A feature per row, a layer per column: the mean code of SAE ``kind_``'s top-3
    m/position latents by feature value (seed 0, last stage); returns the rows drawn."""
    cells = [(feature, layer) for feature in features for layer in layers]
    fig, axes = panels(len(cells), height=1.8)
    for i, (ax, (feature, layer)) in enumerate(zip(axes, cells)):
        part = profile[(profile.sae == kind_) & (profile.layer == layer)
                       & (profile.feature == feature)]
        sns.lineplot(part, x="feature_value", y="mean_code", hue="rank", marker="o", ax=ax,
                     palette="crest", legend=(i == 0))
        ax.xaxis.get_major_locator().set_params(integer=True)     # m and positions are integers
        ax.set(title=f"layer {layer}" if i < 2 or len(layers) != 2 else "", xlabel=feature,
               ylabel="mean code" if i % 2 == 0 else "")
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].get_legend().remove()
    fig.suptitle(f"{kind_} SAE, top-3 m/position latents: mean code by m and by marker "
                 f"position\n(seed 0, step {steps[-1]})")
    fig.tight_layout()
    fig.legend(handles, labels, title="latent rank", loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=len(labels), frameon=False)
    columns = ["seed", "step", "layer", "rank", "latent", "feature", "feature_value",
               "mean_code", "n"]
    return profile[profile.sae == kind_][columns].reset_index(drop=True)


# %% tags=["hide-input"] mystnb={"figure": {"caption": "What the ReLU + L1 SAE's three latents most associated with $m$ or a marker position encode: each latent's mean code (one colour per latent rank) for each value of $m$ (top row) and of each marker's position (further rows), one column per probed layer; training examples of seed 0 at the last stage, markers absent from an example not counted. One seed, for illustration.", "name": "fig-ch06-profile-relu"}, "image": {"alt": "Grid of small line plots, one row per feature (m, then each marker position) and one column per layer, each with three lines of a latent's mean code against the feature's value"}}
rows = profile_figure("relu")
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(rows, "fig-ch06-profile-relu",
            what="one row per layer, latent rank, feature and feature value (seed 0, last stage)")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "What the TopK SAE's three latents most associated with $m$ or a marker position encode: each latent's mean code (one colour per latent rank) for each value of $m$ (top row) and of each marker's position (further rows), one column per probed layer; training examples of seed 0 at the last stage, markers absent from an example not counted. One seed, for illustration.", "name": "fig-ch06-profile-topk"}, "image": {"alt": "Grid of small line plots, one row per feature (m, then each marker position) and one column per layer, each with three lines of a TopK latent's mean code against the feature's value"}}
rows = profile_figure("topk")
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(rows, "fig-ch06-profile-topk",
            what="one row per layer, latent rank, feature and feature value (seed 0, last stage)")

# %% [markdown]
# ## 3. Ablation through the model
# The residual entering the layer is replaced, at the readout, by the SAE reconstruction (no
# latent zeroed), or by it with the `n_latents` latents most associated with $m$/positions
# zeroed, those most associated with the label/values zeroed, or as many random live latents
# zeroed (mean over draws); the remaining layers run. Plotted: the accuracy the reconstruction
# costs against the clean model, and what each ablation costs **beyond** the reconstruction
# (mean over $m$; mean and 95% CI over seeds; {numref}`fig-ch06-ablation`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Accuracy lost to the SAE and to zeroing latents, at three training stages, one panel per SAE kind (ReLU + L1, TopK) and probed layer: the accuracy the SAE reconstruction costs against the clean model, and what zeroing the `n_latents` latents most associated with $m$/positions, those most associated with the label/values, or as many random live latents (mean over draws) costs beyond the reconstruction. Per seed the mean over $m$; marker: mean over independent seeds, bar: 95% CI over seeds. Solid line: no drop. Corresponds to the paper's Fig. 6, which shows accuracy before and after ablation.", "name": "fig-ch06-ablation"}, "image": {"alt": "Four panels, one per SAE kind and layer, each with four series of points with error bars at the early, mid and late stages: the reconstruction cost and the accuracy drops from zeroing m/position, label/value and random latents, around a horizontal zero line"}}
acc = table[table.quantity.str.startswith("accuracy:")].copy()
acc["condition"] = acc.quantity.str.split(":").str[1]
acc = acc.groupby(["seed", "step", "stage", "layer", "sae", "condition", "m"],
                  as_index=False, observed=True).value.mean()      # random: mean over draws
drop_columns = list(ch06.DROP_COLUMNS)
drops = ch06.ablation_drops(table)      # per seed, stage, layer, SAE kind: mean over m
long = drops.melt(id_vars=["seed", "stage", "layer", "sae"], value_vars=drop_columns,
                  var_name="effect", value_name="drop")
long["stage index"] = long.stage.cat.codes.astype(float)
cells = [(k, l) for k in settings.kinds for l in layers]
fig, axes = panels(len(cells), height=2.7, sharey=True)
for i, (ax, (kind_, layer)) in enumerate(zip(axes, cells)):
    point_ci(long[(long.sae == kind_) & (long.layer == layer)], x="stage index", hue="effect",
             value="drop", ax=ax, order=drop_columns, dodge=0.2)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(stage_order)), labels=stage_order)
    ax.set(title=f"{kind_} SAE, layer {layer}", xlabel="stage",
           ylabel="accuracy drop" if i % 2 == 0 else "")
handles, labels = axes[0].get_legend_handles_labels()
fig.suptitle("Accuracy lost to the SAE and to zeroing latents\n"
             "(mean over m; 95% CI over seeds)")
fig.tight_layout()
fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(long.drop(columns="stage index"), "fig-ch06-ablation",
            what="one row per seed, stage, layer, SAE kind and effect (accuracy drop, mean over m)")

# %% [markdown]
# The same drops as numbers, and the held-out accuracy per $m$ at the last stage (mean [95% CI]
# over seeds).

# %% tags=["hide-input"]
display(drops.groupby(["sae", "layer", "stage"], observed=True)[drop_columns].agg(ci3))
last_stage = acc[acc.step == steps[-1]]        # random: each seed's mean over its draws
(last_stage.groupby(["sae", "layer", "condition", "m"], observed=True).value.apply(ci3)
 .unstack("m"))

# %% [markdown]
# ## 4. Held-out linear probes per layer
# Test accuracy of a multinomial logistic probe on the readout residual entering each layer
# (layer $L$: after the last block), for $m$ and for the label; dotted: majority-class rate
# ({numref}`fig-ch06-probes`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out accuracy of a multinomial logistic probe on the readout residual stream entering each layer (the last point: after the last block), for $m$ (left) and for the label (right), one colour per training stage. Line: mean over independent seeds; band: 95% CI over seeds. Dotted: the majority-class rate, what a probe that ignores its input would score.", "name": "fig-ch06-probes"}, "image": {"alt": "Two panels, probe for m and probe for the label, each with three curves of held-out probe accuracy against layer, one per training stage, with shaded bands and a dotted majority-class line"}}
fig, axes = panels(2, height=3.0, sharey=True)
for ax, target in zip(axes, ["m", "label"]):
    part = probes[probes.target == target].assign(       # numbered: legend in time order
        stage=lambda f: f.step.map({s: f"{i + 1} {stage_name[s]}" for i, s in enumerate(steps)}))
    band_plot(part, x="layer", hue="stage", value="test_accuracy", ax=ax, palette="viridis")
    ax.axhline(part.majority.mean(), color="k", ls=":", lw=1)
    ax.set(title=f"probe for {target}", xlabel="layer (residual entering it)")
axes[0].set_ylabel("held-out accuracy")
handles, labels = axes[0].get_legend_handles_labels()
fig.suptitle("Held-out linear probes (mean, 95% CI over seeds)")
fig.tight_layout()
fig.legend(handles, labels, title="stage", loc="upper center", bbox_to_anchor=(0.5, 0.0),
           ncol=len(labels), frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(probes, "fig-ch06-probes",
            what="one row per seed, step, layer and probe target (held-out accuracy)")

# %% [markdown]
# ## 5. Claims ledger row
# **C9**'s rule lives in `modadd.claims.ch06` (printed below with its version history). In
# brief, judged on the ReLU SAE (the paper's kind) over every probed layer: *correlate* — at
# some layer the third-strongest m/position latent reaches association `strong` at the mid and
# late stages (seed mean); without that, **not supported** (the ablation then tests no task
# latents). With it: **supported** if zeroing the latents lowers accuracy by less than
# `small_drop` beyond the reconstruction at every layer and stage (CI upper bound over seeds)
# *and* the early drop is the largest; **partly** if one of the two holds. The null is the same
# rule on random live latents in place of the m/position latents; the record shows each
# control, whether the null passes, and what flips the verdict (the bars moved over their
# stated ranges, the cell with the highest drop bound left out, the TopK SAE).

# %% tags=["hide-input"]
kind = "relu" if "relu" in settings.kinds else settings.kinds[0]
order = [stage_name[s] for s in steps]
c9_tables = ch06.tables_from_probes(table, order, settings.kinds, S.n_latents, S.n_train)
record = claims.evaluate("C9", c9_tables, preset)
spec = claims.spec("C9")
display(Markdown(ch06.rules_markdown(spec)))
display(record)

# %% tags=["hide-input"]
column = "drop: zero m / positions"


def drop_stats(sae_kind: str, layer: int, col: str = column) -> dict:
    part = drops[(drops.sae == sae_kind) & (drops.layer == layer)]
    return {st: mean_ci(part[part.stage == st][col]) for st in order}


by_layer = {layer: drop_stats(kind, layer) for layer in layers}
worst = max(layers, key=lambda l: max(by_layer[l][st][0] for st in order))
drop_ci = by_layer[worst]
random_ci = drop_stats(kind, worst, "drop: zero random")

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
conclusion(record)

# %% [markdown]
# ### Summary of the measurements (computed)

# %% tags=["hide-input"]
recon_cost = drops[drops.sae == kind].groupby("stage", observed=True)["reconstruction cost"] \
    .apply(lambda v: mean_ci(v)[0])
probe_last = probes[(probes.step == steps[-1]) & (probes.layer == cfg.model.n_layers)]
m_probe = mean_ci(probe_last[probe_last.target == "m"].test_accuracy)
label_probe = mean_ci(probe_last[probe_last.target == "label"].test_accuracy)
best = assoc[(assoc.sae == kind) & (assoc.draw == 0)].groupby("selection").value.mean()
majority = probe_last.groupby("target").majority.mean()
display(Markdown(ch06.summary(
    record, kind, S.n_latents, worst, drop_ci, random_ci, recon_cost.to_dict(), best.to_dict(),
    probes={"m": (m_probe[0], majority["m"]), "label": (label_probe[0], majority["label"])})))
