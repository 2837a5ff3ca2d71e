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
# # 9. Grokking, training fingerprints and their DMD spectra
#
# The fingerprint study (grokking runs with fingerprint recording and DMD-RRR spectra) is built
# on a fork of openai/grok {cite}`power2022grokking` ("the fork" below). Its recipe: train a small
# transformer on $a + b \bmod 97$ with 40% of the pairs at weight decay 0, 1 and 2; every few
# steps record a **fingerprint** (the 19 quantiles $0.05, 0.10, …, 0.95$ of the log-probability
# the model gives the correct answer on a fixed probe set); then embed the fingerprint sequence
# with time delays (a Hankel matrix) and fit a linear model of its dynamics by **dynamic mode
# decomposition (DMD)**, reading the eigenvalues against the unit circle. Claim **C14**: these
# spectra characterize a run — they separate the weight decays and are stable across seeds and
# under $10^{-3}$ initial-weight perturbations.
#
# **What we fix in the fork** ([peer recipes §2](../book/peer_recipes.md); each fix has a test in
# `tests/test_grokking.py`):
#
# | | fork | here |
# |---|---|---|
# | log-prob read at | the position after the answer: $\log p(\text{EOS} \mid \dots, c)$ | the `=` position: $\log p(c \mid a \circ b =)$ |
# | probe set | 100 pairs from the **training** split (saturate after memorisation) | 500 **held-out** pairs (and, as a control, 500 training pairs), the same for every seed |
# | "DMD-RRR" | truncated-SVD (projected) DMD | both: TSVD DMD *and* reduced-rank-regression DMD {cite}`kostic2022koopman` |
# | Hankel embedding | two versions, off by one lag | one `modadd.dmd.hankel`, tested |
#
# **Scale.** The model is openai/grok's: 2 layers, $d = 128$, 4 heads, ReLU MLP $4d$, AdamW lr
# $10^{-3}$, $\beta = (0.9, 0.98)$, 10-step warm-up, batch 512, 40% of the $97^2$ pairs for
# training, early stop 1000 steps after held-out accuracy first reaches 99%, as in the fingerprint
# study. The `book` preset caps every run at 6000 steps (the fingerprint study gave wd = 0 10 000
# steps; 6000 keeps the 20 runs within a CPU budget) and records a fingerprint every 10 steps (the
# fingerprint study: every 2). Blocks are pre-LN with learned positions, where openai/grok is
# post-LN with sinusoidal positions; the loss is on the answer token only (openai/grok also scores
# a trailing end token).
# `modadd.grokking.grokking_preset("fingerprint")` is the fork's exact schedule and
# `grokking_preset("power")` / `("nanda")` the two papers' setups.

# %% tags=["hide-input"]
from typing import Optional
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

from modadd import grokking
from modadd import claims
from modadd import registry
from modadd.claims import ch09
from modadd.plots import book_style, figure_data, panels
from modadd.report import ci_text, conclusion, fmt_ci, number

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # grokking preset: "smoke" (CI, seconds) | "book" | "fingerprint" | "power" | "nanda"
seeds: Optional[int] = None     # training seeds per weight decay (0..seeds-1)
perturbations: Optional[int] = None # 1e-3 init perturbations of seed 0 at weight decay 1
n_delays: Optional[int] = None  # Hankel delays (the fingerprint study: 32)
rank: Optional[int] = None      # DMD rank (the fingerprint study's k_mode: 10)
ridge: Optional[float] = None   # RRR Tikhonov regulariser (kooplearn's default alpha)
n_perm: Optional[int] = None    # label permutations of the separation test
nanda_preset: Optional[str] = None   # §7: the preset run at Nanda et al.'s training fractions
power_preset: Optional[str] = None   # §7: the preset run at Power et al.'s recipe's fractions
power_default_preset: Optional[str] = None # §7: the same recipe on this study's defaults
power_answer_preset: Optional[str] = None # §7: power with the loss on the answer alone
reference_fractions: Optional[list] = None # §7: the training fractions of both sweeps
reference_seeds: Optional[int] = None # §7: seeds per fraction of both sweeps
reference_steps: Optional[int] = None # §7: step cap of the Nanda sweep (stops at 99% + 1000)
ablation_fraction: Optional[float] = None # §7: the training fraction of both ablations (seed 0)
nanda_arms: Optional[list] = None    # §7: arms of grokking.NANDA_ABLATIONS run
power_arms: Optional[list] = None    # §7: arms of grokking.POWER_ABLATIONS run
workers: int = 0                # training processes on a cache miss (0: one per core)

# %% [markdown]
# ## 1. The runs
# Weight decay 0, 1 and 2 at `seeds` seeds each, and seed 0 at weight decay 1 again under
# `perturbations` independent $10^{-3}$ perturbations of its initial weights (every entry
# $w \to w(1 + 10^{-3} z)$, $z \sim \mathcal N(0, 1)$; same data order, split and probes).
# The split (a permutation with its own seed) is the same for every run, as in openai/grok.

# %% tags=["hide-input"]
S = registry.from_namespace("ch09", globals())
display(S)
runs = S.load("grokking", "grokking perturbed", workers=workers)
n_main = len(S.runs()["grokking"])                # every weight decay × seed
main_runs, perturbed_runs = runs[:n_main], runs[n_main:]
labels = grokking.run_labels(runs)
labels["role"] = np.where(labels.perturbation >= 0, "perturbed", "main")
wds = sorted(labels.weight_decay.unique())
cfg = main_runs[0].config
book_style()
display(grokking.grokking_preset_table().loc[[preset]].T)   # one column: fits the page

# %% [markdown]
# ## 2. Training curves and steps to grok
# Accuracy and loss on the **whole** training and held-out splits, evaluated every
# `snapshot_every` steps (the resolution of every step count below), on a log-step axis; one
# line per seed. Dotted verticals: each seed's grokking step, the first evaluation with held-out
# accuracy ≥ 99%.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Accuracy (left) and cross-entropy loss (right, log axis) on the whole training split (dashed) and the held-out split (solid) against training step (log axis), one row per weight decay and one colour per training seed; dotted verticals mark each seed's grokking step, the first evaluation with held-out accuracy $\\geq 99\\%$. The fingerprint study's setup; the paper has no such figure.", "name": "fig-ch09-training-curves"}, "image": {"alt": "A grid of line plots, one row per weight decay: accuracy curves on the left and loss curves on the right, one colour per seed, dashed for the training split and solid for the held-out split, with dotted vertical lines at each seed's grokking step"}}
curves = pd.concat([grokking.curves(r).assign(seed=r.config.seed, weight_decay=r.config.train.weight_decay)
                    for r in main_runs])
# one row per weight decay: accuracy (left) and loss (right)
fig, axes = plt.subplots(len(wds), 2, figsize=(7, 2.4 * len(wds) + 0.4), sharex=True,
                         sharey="col", squeeze=False)
colours = sns.color_palette("deep", S.seeds)
for row, wd in enumerate(wds):
    part = curves[curves.weight_decay == wd]
    for seed, run in part.groupby("seed"):
        run = run[run.step > 0]
        c = colours[seed % len(colours)]
        axes[row, 0].plot(run.step, run.train_accuracy, color=c, ls="--", lw=1)
        axes[row, 0].plot(run.step, run.accuracy, color=c, lw=1.4, label=f"seed {seed}")
        axes[row, 1].plot(run.step, run.train_loss, color=c, ls="--", lw=1)
        axes[row, 1].plot(run.step, run.loss, color=c, lw=1.4)
        g = labels[(labels.role == "main") & (labels.weight_decay == wd) &
                   (labels.seed == seed)].grok_step.iloc[0]
        if pd.notna(g):
            for ax in axes[row]:
                ax.axvline(g, color=c, ls=":", lw=1)
    axes[row, 0].set(title=f"weight decay {wd:g}: accuracy", xscale="log", ylim=(-0.02, 1.02),
                     ylabel="accuracy")
    axes[row, 1].set(title=f"weight decay {wd:g}: loss", yscale="log", ylabel="cross-entropy")
for ax in axes[-1]:
    ax.set_xlabel("step")
styles = [plt.Line2D([], [], color="grey", ls=ls, lw=lw, label=name) for name, ls, lw in
          (("training", "--", 1), ("held-out", "-", 1.4), ("grokking step", ":", 1))]
handles = axes[0, 0].get_legend_handles_labels()[0] + styles
fig.suptitle("Accuracy and loss on the training and held-out splits, one colour per seed")
fig.tight_layout()
fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4,
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it (its own cell: myst-nb puts every output of
# a figure cell inside the figure)
curve_data = curves.merge(labels[labels.role == "main"][["weight_decay", "seed", "grok_step"]],
                          on=["weight_decay", "seed"])
figure_data(curve_data[["weight_decay", "seed", "step", "train_accuracy", "accuracy",
                        "train_loss", "loss", "grok_step"]]
            .rename(columns={"accuracy": "heldout_accuracy", "loss": "heldout_loss"}),
            "fig-ch09-training-curves",
            what="one row per weight decay, seed and evaluation step (grok_step: the seed's "
                 "grokking step, empty if it never grokked)")

# %% tags=["hide-input"]
main_labels = labels[labels.role == "main"]
n_steps = {wd: int(main_labels[main_labels.weight_decay == wd].last_step.max()) for wd in wds}
grok_rows = []
for wd, part in main_labels.groupby("weight_decay"):
    grokked = part.grok_step.notna()
    grok_rows.append({
        "weight decay": wd,
        "grokked": f"{int(grokked.sum())}/{len(part)}",
        "memorised (train acc ≥ 99%) at": ci_text(part.memorise_step.astype(float), 0),
        "grokked (held-out acc ≥ 99%) at": ci_text(part.grok_step.astype(float), 0),
        "grok − memorise": ci_text((part.grok_step - part.memorise_step).astype(float), 0),
        "final held-out accuracy": ci_text([r.metrics[(r.metrics.metric == "accuracy") &
                                                      (r.metrics.step == r.last_step)].value.iloc[0]
                                            for r in main_runs if r.config.train.weight_decay == wd],
                                           3, bounds=(0, 1)),
        "steps trained": ci_text(part.last_step.astype(float), 0),
    })
grok_table = pd.DataFrame(grok_rows)
display(Markdown(f"**Steps to grok** (mean [95% CI] over the seeds that grokked; resolution "
                 f"{cfg.train.snapshot_every} steps; cap {cfg.train.n_steps}):"))
grok_table.style.hide(axis="index").format({"weight decay": "{:g}"})

# %% [markdown]
# ## 3. The fingerprints
# Each column is one fingerprint: the 19 quantiles of $\log p(\text{correct answer})$ over the
# probe set, coloured by value, for seed 0 at each weight decay (one row each). Left: the 500
# **held-out** probes (what we record); right: 500 **training** probes (the fork's choice of
# split). Once the training set is memorised the training probes pile up at $\log p \approx 0$
# and stop moving, while the held-out ones carry the generalisation.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Fingerprint sequences of seed 0, one row per weight decay: each column of a panel is one fingerprint, the 19 quantile levels (vertical axis) of $\\log p(\\text{correct answer})$ over the probe set, coloured by value (one colour scale), against training step. Left: the held-out probes this chapter records; right: training probes, the fork's choice of split. The paper has no such figure.", "name": "fig-ch09-fingerprints"}, "image": {"alt": "Pairs of heat maps, one row per weight decay, with training step across, quantile level upwards and colour for the log-probability of the correct answer; held-out probes on the left, training probes on the right"}}
# one row per weight decay: held-out probes (left), training probes (right)
fig, axes = plt.subplots(len(wds), 2, figsize=(7, 2.2 * len(wds) + 0.9), sharey=True,
                         squeeze=False, layout="constrained")
vmin = min(float(np.percentile(grokking.fingerprint_series(r)[1], 1)) for r in main_runs)
fingerprint_data = []
for row, wd in enumerate(wds):
    run = next(r for r in main_runs if r.config.train.weight_decay == wd)
    for col, split in enumerate(("heldout", "train")):
        ax = axes[row, col]
        if split not in run.fingerprints:
            ax.set_visible(False)
            continue
        steps, series = grokking.fingerprint_series(run, split)
        q = run.fingerprints["quantiles"]
        mesh = ax.pcolormesh(steps, q, series.T, shading="nearest", cmap="magma",
                             vmin=vmin, vmax=0)
        fingerprint_data.append(pd.DataFrame(series, columns=[f"q{level:.2f}" for level in q])
                                .assign(weight_decay=wd, seed=run.config.seed,
                                        probes=split, step=steps))
        ax.set(title=f"wd {wd:g}, {'held-out' if split == 'heldout' else 'training'} probes",
               xlabel="step" if row == len(wds) - 1 else None)
    axes[row, 1].sharex(axes[row, 0])
for ax in axes[:, 0]:
    ax.set_ylabel("quantile level")
fig.colorbar(mesh, ax=axes, label="log p(correct answer)", location="bottom", shrink=0.6,
             aspect=30)
fig.get_layout_engine().set(wspace=0.08)
fig.suptitle("Fingerprint sequences, seed 0")
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
fingerprint_data = pd.concat(fingerprint_data, ignore_index=True)
figure_data(fingerprint_data[["weight_decay", "seed", "probes", "step",
                              *[c for c in fingerprint_data if c.startswith("q")]]],
            "fig-ch09-fingerprints",
            what="one row per weight decay, probe set and recorded step; columns q0.05 … q0.95: "
                 "the quantiles of log p(correct answer) over the probes")

# %% [markdown]
# **How much each probe set still moves after memorisation**: the standard deviation over time of
# each quantile, averaged over the 19 quantiles, over the records after the run's memorisation
# step (training accuracy ≥ 99%), mean [95% CI] over the runs that memorised.

# %% tags=["hide-input"]
motion = []
for run, lab in zip(main_runs, labels[labels.role == "main"].itertuples()):
    if np.isnan(lab.memorise_step) or "train" not in run.fingerprints:
        continue
    for split in ("heldout", "train"):
        steps, series = grokking.fingerprint_series(run, split)
        after = series[steps >= lab.memorise_step]
        if len(after) > 1:
            motion.append({"weight decay": lab.weight_decay, "probes": split,
                           "std over time": float(after.std(axis=0).mean())})
motion = pd.DataFrame(motion, columns=["weight decay", "probes", "std over time"])
motion_table = (motion.groupby(["weight decay", "probes"])["std over time"]
                .agg(lambda v: ci_text(v, 3, bounds=(0, np.inf))).unstack("probes")
                .rename(columns={"heldout": "held-out probes", "train": "training probes"})
                .rename_axis(columns=None).reset_index())
motion_ratio = (motion[motion.probes == "heldout"]["std over time"].mean() /
                motion[motion.probes == "train"]["std over time"].mean())
motion_table.style.hide(axis="index").format({"weight decay": "{:g}"})

# %% [markdown]
# ## 4. DMD spectra
# Each run's held-out fingerprint sequence, centred per quantile over time, embedded with
# `n_delays` delays (a $19 \cdot n$-dimensional state per record), and fitted with rank
# `rank`: **TSVD DMD** (what the fork computes: the subspace that best *explains* the states)
# and **RRR DMD** (reduced-rank regression: the subspace that best *predicts* the next state,
# ridge `ridge`; the exact Kostic et al. estimator, the rank-`rank` minimiser of the
# ridge-regularised one-step error, as kooplearn's `Ridge(reduced_rank=True)` — before issue 25
# a ridge > 0 took the subspace from the fitted values alone, another estimator). All seeds of a weight decay are overlaid; black crosses: one fit to all seeds
# of the weight decay at once (their Hankel pairs stacked without crossing from one run to the
# next, `modadd.dmd.data_matrices`); the unit circle is drawn.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "DMD eigenvalues $\\lambda$ of each run's held-out fingerprint sequence in the complex plane, with the unit circle (grey): TSVD DMD (left) and RRR DMD (right), one row per weight decay. Coloured dots: one seed's spectrum each; black crosses: one fit to all seeds of the weight decay pooled. Mirrors the fingerprint study's eigenvalue spectrum plots (`spectrum.png`).", "name": "fig-ch09-spectra"}, "image": {"alt": "A grid of complex-plane scatter plots, one row per weight decay and one column per DMD estimator, each with a grey unit circle, coloured eigenvalue dots for each seed and black crosses for the pooled fit"}}
eig, errors = grokking.spectra_tables(runs, S.n_delays, S.rank, S.ridge)
eig = eig.merge(labels[["key", "weight_decay", "seed", "role"]], on="key")
theta = np.linspace(0, 2 * np.pi, 400)
pooled_data = []
# one row per weight decay: TSVD (left) and RRR (right)
fig, axes = plt.subplots(len(wds), 2, figsize=(7, 2.7 * len(wds) + 0.3), sharex=True,
                         sharey=True, squeeze=False)
for col, method in enumerate(("tsvd", "rrr")):
    for row, wd in enumerate(wds):
        ax = axes[row, col]
        ax.plot(np.cos(theta), np.sin(theta), color="grey", lw=0.8)
        part = eig[(eig.method == method) & (eig.weight_decay == wd) & (eig.role == "main")]
        for seed, one in part.groupby("seed"):
            ax.scatter(one.re, one.im, s=14, alpha=0.75, color=colours[seed % len(colours)],
                       label=f"seed {seed}")
        pooled = grokking.pooled_spectrum([r for r in main_runs if r.config.train.weight_decay == wd],
                                   S.n_delays, S.rank, S.ridge, method)
        ax.scatter(pooled.real, pooled.imag, marker="x", s=40, color="k",
                   label="all seeds pooled")
        pooled_data.append(pd.DataFrame({"method": method, "weight_decay": wd,
                                         "seed": "pooled", "re": pooled.real,
                                         "im": pooled.imag}))
        ax.set(title=f"{method.upper()}, wd {wd:g}", aspect="equal")
for ax in axes[-1]:
    ax.set_xlabel("Re λ")
for ax in axes[:, 0]:
    ax.set_ylabel("Im λ")
handles, names = axes[0, 0].get_legend_handles_labels()
fig.tight_layout()
fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
spectra_data = pd.concat([eig[eig.role == "main"][["method", "weight_decay", "seed", "re", "im"]]
                          .astype({"seed": str}), *pooled_data], ignore_index=True)
spectra_data["method"] = spectra_data.method.str.upper()
figure_data(spectra_data, "fig-ch09-spectra",
            what="one row per eigenvalue: DMD method, weight decay, seed (or 'pooled': the fit "
                 "to all seeds at once), real and imaginary part")

# %% [markdown]
# **Reconstruction errors** (relative, mean [95% CI] over seeds): one step on the fitted pairs,
# and $h$-step rollouts from 10 evenly spaced starts. RRR minimises the one-step error among
# rank-`rank` maps, so at equal rank it can only lose to TSVD through the ridge; the line above
# the table counts the runs in which it does at least as well.

# %% tags=["hide-input"]
err = errors.merge(labels[["key", "weight_decay", "role"]], on="key")
err = err[err.role == "main"]
metrics_cols = [c for c in errors.columns if c not in ("key", "method")]
err_table = err.groupby(["weight_decay", "method"])[metrics_cols].agg(
    lambda v: ci_text(v, 3, bounds=(0, np.inf))).reset_index()
paired = err.pivot_table(index="key", columns="method", values="one-step")
rrr_wins = int((paired["rrr"] <= paired["tsvd"] * (1 + 1e-9)).sum())
display(Markdown(f"RRR's one-step error ≤ TSVD's in **{rrr_wins} of {len(paired)}** runs."))
(err_table.assign(method=err_table.method.str.upper())
 .rename(columns={"weight_decay": "weight decay"})
 .style.hide(axis="index").format({"weight decay": "{:g}"}))

# %% [markdown]
# **Do the two estimators give different spectra?** The distance between a run's TSVD and RRR
# spectra, against the distance between two seeds' RRR spectra at the same weight decay. When the
# Hankel state has more coordinates ($19 \cdot$ `n_delays`) than there are records, the
# least-squares map interpolates, RRR's fitted values are the next states themselves, and RRR
# reduces to the POD subspace of $Z'$ instead of $Z$: nearly TSVD.

# %% tags=["hide-input"]
from modadd.dmd import spectral_distance  # noqa: E402


def spectrum(key, method):
    part = eig[(eig.key == key) & (eig.method == method)]
    return part.re.to_numpy() + 1j * part.im.to_numpy()


main_keys = labels[labels.role == "main"].key
tsvd_vs_rrr = np.array([spectral_distance(spectrum(k, "tsvd"), spectrum(k, "rrr"))
                        for k in main_keys])
states = S.n_delays * len(main_runs[0].fingerprints["quantiles"])
records = labels[labels.role == "main"].last_step // cfg.train.record_every + 1 - S.n_delays
display(Markdown(f"TSVD-to-RRR distance within a run: {ci_text(tsvd_vs_rrr, 4, bounds=(0, np.inf))} (mean over "
                 f"{len(tsvd_vs_rrr)} runs); Hankel state {states} coordinates, "
                 f"{int(records.min())}–{int(records.max())} snapshot pairs per run."))

# %% [markdown]
# ## 5. Spectral distances: within vs between weight decays, and under perturbations
# The distance between two runs is the Wasserstein-1 distance between their eigenvalue sets
# (optimal one-to-one matching in $\mathbb C$, as in the comparison of training dynamics by
# {cite}`redman2024identifying`). Runs are ordered by weight decay and seed; the last block is seed 0 at wd 1 under
# the perturbations.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Spectral (Wasserstein-1) distance between the DMD eigenvalue sets of every pair of runs, TSVD DMD (left) and RRR DMD (right) on one colour scale. Runs are ordered by weight decay and seed; the last block is seed 0 at weight decay 1 under the $10^{-3}$ initial-weight perturbations; white lines separate the blocks. The paper has no such figure.", "name": "fig-ch09-distances"}, "image": {"alt": "Two square heat maps of the pairwise distances between runs, divided by white lines into blocks for each weight decay and a last block for the perturbed runs"}}
order = labels.sort_values(["role", "weight_decay", "seed", "perturbation"]).reset_index(drop=True)
D = {m: grokking.distance_matrix(eig, order.key, m) for m in ("tsvd", "rrr")}
# blocks of runs labelled once (seeds in order within a block), one colour scale for both
blocks = pd.Series([f"wd {r.weight_decay:g}" if r.role == "main" else "perturbed"
                    for r in order.itertuples()])
edges = np.flatnonzero(blocks.ne(blocks.shift()).to_numpy()).tolist() + [len(blocks)]
centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
vmax = max(float(np.nanmax(D[m])) for m in D)
fig, axes = plt.subplots(1, 2, figsize=(7, 3.7), layout="constrained")
for ax, method in zip(axes, ("tsvd", "rrr")):
    sns.heatmap(D[method], ax=ax, cmap="viridis", square=True, vmin=0, vmax=vmax, cbar=False,
                xticklabels=False, yticklabels=False)
    for edge in edges[1:-1]:
        ax.axhline(edge, color="w", lw=1)
        ax.axvline(edge, color="w", lw=1)
    ax.set_xticks(centres, blocks.iloc[edges[:-1]], rotation=0)
    ax.set_yticks(centres, blocks.iloc[edges[:-1]] if ax is axes[0] else [])
    ax.set_title(f"{method.upper()} DMD")
fig.colorbar(axes[0].collections[0], ax=axes, label="spectral distance", shrink=0.8)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
run_names = order[["weight_decay", "seed", "perturbation"]]
first, second = (ix.ravel() for ix in np.indices((len(order), len(order))))
pairs_of_runs = pd.concat([run_names.iloc[first].add_prefix("a_").reset_index(drop=True),
                           run_names.iloc[second].add_prefix("b_").reset_index(drop=True)], axis=1)
distance_data = pd.concat([pairs_of_runs.assign(method=method.upper(), distance=D[method].ravel())
                           for method in ("tsvd", "rrr")], ignore_index=True)
figure_data(distance_data, "fig-ch09-distances",
            what="one row per DMD method and ordered pair of runs a, b (perturbation -1: the "
                 "unperturbed run)")

# %% [markdown]
# **Test of separation.** For the main runs: the mean distance between runs at the same weight
# decay (different seeds) and at different weight decays, with 95% bootstrap CIs over seeds; the
# permutation p-value of *between − within* (weight-decay labels shuffled, `n_perm` draws); and
# leave-one-out nearest-neighbour classification of the weight decay. **Perturbations:** the
# mean distance between the runs of seed 0 at wd 1 (original and perturbed), against the
# seed-to-seed distance at the same weight decay.
#
# **Control for run length.** Runs that grok stop 1000 steps later, so wd > 0 sequences are
# shorter than wd = 0 ones; a spectrum could separate weight decays through length alone. The
# second analysis truncates every run to the records up to the shortest run's last step.

# %% tags=["hide-input"]
def separation_rows(eigenvalues, window: str) -> list[dict]:
    out = []
    main = order[order.role == "main"].index.to_numpy()
    fam = order[(order.weight_decay == 1.0) & (order.seed == 0)].index.to_numpy()
    seed_pairs = order[(order.role == "main") & (order.weight_decay == 1.0)].index.to_numpy()
    for method in ("tsvd", "rrr"):
        Dm = grokking.distance_matrix(eigenvalues, order.key, method)
        sub = Dm[np.ix_(main, main)]
        s = grokking.separation(sub, order.weight_decay.to_numpy()[main], order.seed.to_numpy()[main],
                         n_perm=S.n_perm)
        pert = grokking.pair_distances(Dm, fam) if len(fam) > 1 else np.array([np.nan])
        seeds_wd1 = grokking.pair_distances(Dm, seed_pairs)
        out.append({"window": window, "method": method.upper(),
                    "within wd": fmt_ci((s["within"], *s["within CI"]), 3),
                    "between wd": fmt_ci((s["between"], *s["between CI"]), 3),
                    "between / within": fmt_ci((s["ratio"], *s["ratio CI"])),
                    "p (permutation)": s["p (permutation)"],
                    "1-NN accuracy": f"{number(s['1-NN accuracy'])} (chance {number(s['chance'])})",
                    "perturbed pairs (wd 1)": ci_text(pert, 3, bounds=(0, np.inf)),
                    "seed pairs (wd 1)": ci_text(seeds_wd1, 3, bounds=(0, np.inf)),
                    "_p": s["p (permutation)"], "_pert": float(np.nanmean(pert)),
                    "_seed": float(np.mean(seeds_wd1))})
    return out


common = int(labels.last_step.min())
eig_window, _ = grokking.spectra_tables(runs, S.n_delays, S.rank, S.ridge, until=common)
sep = pd.DataFrame(separation_rows(eig, "whole run") +
                   separation_rows(eig_window, f"first {common} steps"))
display(Markdown(f"Shortest run: {common} steps."))
sep[[c for c in sep.columns if not c.startswith("_")]].style.hide(axis="index").format(
    {"p (permutation)": "{:.4f}"})

# %% [markdown]
# **Sensitivity to the DMD settings.** The same separation test (RRR, whole runs, 1000
# permutations) for other numbers of delays and ranks. With fewer delays the Hankel state has
# fewer coordinates than there are records, and RRR and TSVD part ways.

# %% tags=["hide-input"]
sens = []
main_idx = order[order.role == "main"].index.to_numpy()
for nd in sorted({8, 16, S.n_delays}):
    for r in sorted({4, S.rank}):
        if r > 19 * nd:
            continue
        e, _ = grokking.spectra_tables(runs, nd, r, S.ridge)
        for method in ("tsvd", "rrr"):
            Dm = grokking.distance_matrix(e, order.key, method)[np.ix_(main_idx, main_idx)]
            s = grokking.separation(Dm, order.weight_decay.to_numpy()[main_idx],
                             order.seed.to_numpy()[main_idx], n_boot=500,
                             n_perm=min(S.n_perm, 1000))
            sens.append({"delays": nd, "rank": r, "method": method.upper(),
                         "between / within": fmt_ci((s["ratio"], *s["ratio CI"])),
                         "p": s["p (permutation)"], "1-NN": s["1-NN accuracy"]})
sens = pd.DataFrame(sens)
sens.style.hide(axis="index").format({"p": "{:.3f}", "1-NN": "{:.2f}"})

# %% [markdown]
# ## 6. Claims ledger rows
# **ch09.** The rule lives in `modadd.claims.ch09` (version 2; version 1 is kept and evaluated on
# the same tables): with RRR DMD, *supported* if the weight decays separate (label-permutation
# p < 0.05 and the between/within ratio's bootstrap CI over seeds above 1) both on whole runs and
# in the common window, and the perturbed runs are stable (the upper CI of their distance to the
# unperturbed run, one value per perturbation, below the between-wd mean; version 1 took the CI
# over all pairs of the perturbation family, whose pairs share runs); *partly supported* if the
# separation holds on whole runs only or the perturbations are not stable; *not supported* if
# the weight decays do not separate on whole runs. The null reassigns the weight-decay labels
# across conditions; TSVD DMD is shown as an alternative analysis.

# %% tags=["hide-input"]
tables = ch09.tables_from_spectra(labels, eig, eig_window, common, S.n_perm)
record = claims.evaluate("C14", tables, preset)
display(record)

# %% [markdown]
# ## 7. The published references: Nanda et al.'s sweep and Power et al.'s recipe
# A preset named after a paper has to reproduce that paper's numbers. Two external references:
#
# **Nanda et al.'s train-fraction sweep** {cite}`nanda2023progress` (his saved runs,
# `mod_addition_frac_train_sweep.pth`: 1 layer, $p = 113$, full-batch AdamW, lr $10^{-3}$,
# weight decay 1): the epoch (= full-batch step) at which train loss and test loss first fall
# below $10^{-2}$, and the test-loss peak (cited constants, `grokking.NANDA_REFERENCE`). The
# `nanda` preset before issue 25 (kept as `nanda-default-init`) grokked well after his runs
# (measured once, for issue 25; not rerun in this chapter). Reading his code (`transformers.py` of the progress-measures paper) against ours:
#
# | | Nanda et al.'s code | `nanda-default-init` | `nanda` |
# |---|---|---|---|
# | input | `a b =`, three tokens; the `=` position scored over all $p + 1$ tokens | `a + b =`, four tokens, scored over the $p$ residues | his |
# | embeddings | $\mathcal N(0, 1/d)$ | `nn.Embedding`'s $\mathcal N(0, 1)$ | his |
# | attention | $W_{Q,K,V,O} \sim \mathcal N(0, 1/d)$, no biases | fused `Linear`, Kaiming-uniform, with biases | his |
# | MLP | $W_{in}, W_{out} \sim \mathcal N(0, 1/d)$, biases initialised to 0 | `Linear` defaults | his |
# | unembedding | $\mathcal N(0, 1/(p+1))$, no bias | `Linear` default, with bias | his |
# | learning rate | linear warm-up $\min(t/10, 1)$ | constant | warm-up $(t+1)/10$: the same ramp one update earlier (his first update has lr 0) |
# | loss | float64 log-softmax | float32 | float64 |
# | split | the first $\lfloor f N \rfloor$ pairs of Python's `random.shuffle` | our permutation, $\mathrm{round}(f N)$ pairs | ours: another split of (nearly) the same size |
#
# The fields the two presets differ in (everything else, model size, optimiser and full batch
# included, is shared):

# %% tags=["hide-input"]
from modadd.presets import config_differences

display(config_differences(grokking.grokking_preset("nanda"),
                           grokking.grokking_preset("nanda-default-init"),
                           "nanda", "nanda-default-init").style.hide(axis="index"))
reference_roles = ("nanda sweep", "nanda ablation", "power sweep", "power sweep: answer loss",
                   "power sweep: default arch", "power ablation")
reference_runs = dict(zip(reference_roles, (S.load(role, workers=workers)
                                            for role in reference_roles)))
nanda_runs, power_runs = reference_runs["nanda sweep"], reference_runs["power sweep"]
power_default_runs = reference_runs["power sweep: default arch"]
power_answer_runs = reference_runs["power sweep: answer loss"]
nanda_cfg = nanda_runs[0].config
display(Markdown(
    f"The sweep: preset `{S.nanda_preset}` at training fractions "
    f"{', '.join(f'{f:g}' for f in S.reference_fractions)}, {S.reference_seeds} seeds each, "
    f"full batch, both splits evaluated every {nanda_cfg.train.snapshot_every} steps (the "
    f"resolution of the test milestones; train loss is logged at every step), stopped "
    f"{nanda_cfg.train.early_stop_delay} steps after held-out accuracy first reached 99% "
    f"(every milestone comes before), at most {nanda_cfg.train.n_steps} steps. Training pairs "
    "per fraction, ours and his: "
    + "; ".join(f"{f:g}: {r.config.task.n_train} vs {int(f * r.config.task.n_pairs)}"
                for f, r in {r.config.task.train_fraction: r for r in nanda_runs}.items())
    + "."))

# %% tags=["hide-input"]
nanda_steps = grokking.nanda_table(nanda_runs)
nanda_vs = grokking.nanda_comparison(nanda_steps)
within = nanda_vs.dropna(subset=["Nanda et al."])
hit = within[[c for c in within if c.startswith("every seed within")][0]]
display(nanda_steps.style.hide(axis="index").format(
    {"train fraction": "{:g}", "test-loss peak": "{:.2f}",
     **{m: "{:.0f}" for m in grokking.MILESTONES}}, na_rep="never"))
display(nanda_vs.style.hide(axis="index").format(
    {"train fraction": "{:g}", "mean": "{:.4g}", "min": "{:.4g}", "max": "{:.4g}",
     "Nanda et al.": "{:g}", "mean / his": "{:.2f}"}, na_rep="—"))
display(Markdown(
    f"**Against Nanda et al.'s sweep** (target: every seed within "
    f"±{grokking.NANDA_TOLERANCE:.0%} of his epoch): {int(hit.sum())} of {len(hit)} compared "
    f"milestones are on target"
    + ("." if hit.all() else "; off target: " + ", ".join(
        f"{r.milestone} at fraction {r['train fraction']:g} (mean / his "
        f"{number(r['mean / his'])}; our {r.seeds} seeds span {number(r['min'], 0)}–"
        f"{number(r['max'], 0)}, his {number(r['Nanda et al.'], 0)})"
        for _, r in within[~hit.astype(bool)].iterrows()) + ".")))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss (dashed, every update) and test loss (solid, at each evaluation) of the sweep's preset (setting `nanda_preset`) against step, log loss axis, one panel per training fraction and one colour per seed. Grey dotted line: loss $10^{-2}$; black verticals: the epochs at which Nanda et al.'s saved runs first reach train loss (dashed) and test loss (solid) below $10^{-2}$.", "name": "fig-ch09-nanda-losses"}, "image": {"alt": "Line plots, one panel per training fraction, of training and test loss falling over steps for each seed on a log scale, with a horizontal dotted line at loss 0.01 and black vertical lines at Nanda et al.'s epochs"}}
fig, axes = panels(len(S.reference_fractions), height=3.0, sharey=True)
for ax, fraction in zip(axes, S.reference_fractions):
    for run in (r for r in nanda_runs if r.config.task.train_fraction == fraction):
        c = colours[run.config.seed % len(colours)]
        curve = grokking.curves(run)
        ax.plot(run.train_log.step - 1, run.train_log.loss, color=c, ls="--", lw=1)
        ax.plot(curve.step, curve.loss, color=c, lw=1.4, label=f"seed {run.config.seed}")
    for name, ls in (("train loss < 1e-2", "--"), ("test loss < 1e-2", "-")):
        ref = grokking.NANDA_REFERENCE.get(fraction, {}).get(name)
        if ref:
            ax.axvline(ref, color="k", ls=ls, lw=0.8, alpha=0.6)
    ax.axhline(1e-2, color="grey", ls=":", lw=0.8)
    ax.set(title=f"train fraction {fraction:g}", yscale="log", xlabel="step (updates)")
for ax in axes[::2]:
    ax.set_ylabel("cross-entropy")
handles = axes[0].get_legend_handles_labels()[0] + [
    plt.Line2D([], [], color="grey", ls="--", lw=1, label="train loss"),
    plt.Line2D([], [], color="grey", lw=1.4, label="test loss"),
    plt.Line2D([], [], color="k", ls="--", lw=0.8, alpha=0.6,
               label="Nanda et al.: train loss < 1e-2"),
    plt.Line2D([], [], color="k", lw=0.8, alpha=0.6, label="Nanda et al.: test loss < 1e-2")]
fig.suptitle(f"Preset `{S.nanda_preset}` against Nanda et al.'s epochs of loss < 1e-2")
fig.tight_layout()
fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3,
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
# the training loss at every 10th update (the figure draws every update), the test loss at every
# evaluation, and his epochs as rows with no loss
his_epochs = pd.DataFrame([{"train_fraction": fraction, "series": f"Nanda et al.: {name}",
                            "step": grokking.NANDA_REFERENCE.get(fraction, {}).get(name)}
                           for fraction in S.reference_fractions
                           for name in ("train loss < 1e-2", "test loss < 1e-2")])
loss_data = pd.concat(
    [pd.DataFrame({"train_fraction": run.config.task.train_fraction, "seed": run.config.seed,
                   "series": "train loss", "step": run.train_log.step - 1,
                   "loss": run.train_log.loss}).iloc[::10]
     for run in nanda_runs]
    + [grokking.curves(run)[["step", "loss"]].assign(
           train_fraction=run.config.task.train_fraction, seed=run.config.seed,
           series="test loss") for run in nanda_runs]
    + [his_epochs.dropna(subset=["step"])], ignore_index=True)
figure_data(loss_data[["train_fraction", "seed", "series", "step", "loss"]]
            .astype({"seed": "Int64"}),
            "fig-ch09-nanda-losses",
            what="one row per training fraction, seed, series and step (train loss: every 10th "
                 "update; Nanda et al.'s epochs: rows without seed and loss)")

# %% [markdown]
# **One recipe difference at a time.** Where the preset misses his epochs, each arm below puts
# back one of this study's defaults (or, for the split, takes his) into the preset's run of seed
# 0 at one training fraction, `grokking.NANDA_ABLATIONS`; everything else, the data order
# included, stays that run's. One seed per arm: read a change against the seed-to-seed spread of
# the sweep table above, not as an effect with an interval.

# %% tags=["hide-input"]
def first_of(run, fraction):
    """The sweep run of seed 0 at ``fraction`` (the unchanged arm of an ablation)."""
    return next(r for r in run if r.config.task.train_fraction == fraction and r.config.seed == 0)


nanda_ablation_table = grokking.recipe_ablation_table(
    first_of(nanda_runs, S.ablation_fraction),
    dict(zip(S.nanda_arms, reference_runs["nanda ablation"])), grokking.milestones,
    "test loss < 1e-2")
his = grokking.NANDA_REFERENCE.get(S.ablation_fraction, {})
for name in ("train loss < 1e-2", "test loss < 1e-2"):
    nanda_ablation_table[f"{name}: / his"] = (nanda_ablation_table[name].astype(float) / his[name]
                                              if his.get(name) else np.nan)
display(nanda_ablation_table.style.hide(axis="index").format(
    {"test-loss peak": "{:.2f}", **{m: "{:.0f}" for m in grokking.MILESTONES},
     **{c: "{:.2f}" for c in nanda_ablation_table if "/ " in c}}, na_rep="—"))
ratio = nanda_ablation_table["test loss < 1e-2: / his"].astype(float)
sweep_at = nanda_steps[nanda_steps["train fraction"] == S.ablation_fraction]["test loss < 1e-2"]
spread = float(sweep_at.max() / sweep_at.min() - 1)      # the sweep's seeds, same fraction
moved = [f"{r.arm} ({number(r['test loss < 1e-2: / unchanged'])}× unchanged)"
         for _, r in nanda_ablation_table.iloc[1:].iterrows()
         if abs(r["test loss < 1e-2: / unchanged"] - 1) > spread]
if ratio.notna().any():
    closest = nanda_ablation_table.loc[(ratio - 1).abs().idxmin()]
    display(Markdown(
        f"At training fraction {S.ablation_fraction:g}, seed 0, the unchanged preset reaches test "
        f"loss < 1e-2 at {number(ratio.iloc[0])}× his epoch; the arm closest to his is "
        f"**{closest.arm}** ({number(closest['test loss < 1e-2: / his'])}× his). The sweep's "
        f"seeds at this fraction differ by {spread:.0%}; arms that move the milestone by more: "
        + (", ".join(moved) or "none") + "."))

# %% [markdown]
# **Power et al.'s recipe** {cite}`power2022grokking` (App. A.1.2; its code, openai/grok, read in
# [peer recipes §1](../book/peer_recipes.md)) against the `power` preset (his code's recipe,
# since issue 25) and `power-default-arch` (the same recipe on this study's defaults, the `power`
# preset before issue 25 and the base of this chapter's `book` preset):
#
# | | Power et al. / openai/grok | `power-default-arch` | `power` |
# |---|---|---|---|
# | task | $a + b \bmod 97$; the first $\mathrm{round}(fN)$ rows of numpy's `RandomState(0).shuffle` | our own permutation, $\mathrm{round}(fN)$ pairs | his split |
# | model | 2 layers, $d = 128$, 4 heads, ReLU MLP $4d$ | the same | the same |
# | blocks | post-LN, no final LayerNorm | pre-LN and a final LayerNorm | his |
# | positions | fixed sinusoidal | learned | his |
# | biases | none in the linear layers | in every linear layer | his |
# | input | `<eos> a + b =`, the `=` position scored over his whole vocabulary (239 tokens, every task's) | `a + b =`, scored over the 97 residues | `<s> a + b =`, scored over this task's 100 tokens |
# | loss | on $c$ *and* the trailing `<eos>` (the mean over both positions) | on the answer only | his: `<s> a + b = c` is fed, the output at `c` must predict the end token (the start token's id, as his `<eos>` serves both) |
# | optimiser | AdamW lr $10^{-3}$, $\beta = (0.9, 0.98)$, weight decay 1, warm-up 10 updates (his first update has lr 0) | the same, the ramp one update earlier | the same as `power-default-arch` |
# | batch | $\min(512, \lceil N_{train}/2 \rceil)$, shuffled epochs (the last batch smaller) | the same size, drawn afresh each step | his |
# | budget | $10^5$ updates | $10^5$, stopped 1000 updates after held-out accuracy ≥ 99% | the same as `power-default-arch` |
#
# Since the end-token loss landed, `power` keeps only two differences from his recipe: the
# vocabulary (this task's tokens, not all 239 of his tasks') and a first update at lr $> 0$. His
# accuracy also needs the end token right; ours reads the answer alone (evaluation reads the `=`
# position of `<s> a + b =`, which a causal model computes the same with or without the appended
# answer). `power-answer-loss` is `power` with the loss on the answer alone (the `power` preset
# before the end-token loss landed): the same runs without that one difference. Power et al. publish no step counts for this task: their
# Fig. 2 gives only the best validation accuracy reached within the $10^5$-update budget, so
# the reference a reader can check is that budget. Steps to held-out accuracy ≥ 99% of the
# three presets at both fractions (resolution: the evaluation spacing):

# %% tags=["hide-input"]
display(config_differences(grokking.grokking_preset("power"),
                           grokking.grokking_preset("power-default-arch"),
                           "power", "power-default-arch").style.hide(axis="index"))


def power_row(run):
    g = grokking.grok_step(run.metrics)
    return {"held-out accuracy ≥ 99% at": g, "resolution": run.config.train.snapshot_every,
            "within the 1e5 budget": g is not None and g <= 100_000}


power_steps = pd.DataFrame([
    {"preset": name, "train fraction": run.config.task.train_fraction, "seed": run.config.seed,
     "batch": run.config.train.batch_size, **power_row(run)}
    for name, group in ((S.power_preset, power_runs), (S.power_answer_preset, power_answer_runs),
                        (S.power_default_preset, power_default_runs))
    for run in group])
display(power_steps.style.hide(axis="index").format(
    {"train fraction": "{:g}", "held-out accuracy ≥ 99% at": "{:.0f}"}, na_rep="never"))
display(Markdown("Per preset and fraction, the seeds' steps and their mean: " + "; ".join(
    f"`{name}` at {f:g}: " + ", ".join(number(v, 0) for v in part['held-out accuracy ≥ 99% at'].astype(float))
    + f" (mean {number(part['held-out accuracy ≥ 99% at'].astype(float).mean(), 0)})"
    for (name, f), part in power_steps.groupby(["preset", "train fraction"], sort=False)) + "."))


def steps_by(name):
    """``{(fraction, seed): steps to 99%}`` of one preset's rows of ``power_steps``."""
    part = power_steps[power_steps["preset"] == name]
    return {(r["train fraction"], r.seed): r["held-out accuracy ≥ 99% at"]
            for _, r in part.iterrows()}


with_eos, answer_only = steps_by(S.power_preset), steps_by(S.power_answer_preset)
eos_pairs = [(f, seed, with_eos[f, seed] / answer_only[f, seed])
             for f, seed in with_eos if with_eos[f, seed] and answer_only.get((f, seed))]
if S.power_preset != S.power_answer_preset and eos_pairs:
    display(Markdown(
        "The end-token loss alone, paired by seed (`power` against `power-answer-loss`: same "
        "split, data order and initialisation): steps to 99% in ratio "
        + ", ".join(f"{r:.2f} (fraction {f:g}, seed {seed})" for f, seed, r in eos_pairs)
        + f"; geometric mean {np.exp(np.mean([np.log(r) for *_, r in eos_pairs])):.2f}."))

# %% [markdown]
# Which of the other differences change the step count: each arm of `grokking.POWER_ABLATIONS`
# puts one of this study's defaults back into the `power-answer-loss` run of seed 0 at the
# ablation's training fraction (the arms were run before the end-token loss landed; its own
# effect is the paired comparison above). One seed per arm: read it against the seed spread
# above. The arms run at this scale are the setting `power_arms`.

# %% tags=["hide-input"]
if S.power_arms:
    power_ablation_table = grokking.recipe_ablation_table(
        first_of(power_answer_runs, S.ablation_fraction),
        dict(zip(S.power_arms, reference_runs["power ablation"])), power_row,
        "held-out accuracy ≥ 99% at")
    display(power_ablation_table.style.hide(axis="index").format(
        {"held-out accuracy ≥ 99% at": "{:.0f}",
         "held-out accuracy ≥ 99% at: / unchanged": "{:.2f}"}, na_rep="never"))
    seeds_at = [v for (f, _), v in answer_only.items() if f == S.ablation_fraction and v]
    ratios = power_ablation_table["held-out accuracy ≥ 99% at: / unchanged"].iloc[1:]
    if len(seeds_at) > 1 and ratios.notna().any():
        spread = max(seeds_at) / min(seeds_at) - 1
        moved = [f"{arm} ({r:.2f}×)" for arm, r in
                 zip(power_ablation_table["arm"].iloc[1:], ratios) if abs(r - 1) > spread]
        display(Markdown(
            f"The arms move the step count by {ratios.min():.2f}× to {ratios.max():.2f}× the "
            f"unchanged run's; its seeds at this fraction differ by {spread:.0%}. Arms that move "
            "it by more: " + (", ".join(moved) or "none") + "."))
else:
    display(Markdown(
        f"No arm of `grokking.POWER_ABLATIONS` is run at preset `{preset}` (setting "
        f"`power_arms` is empty): which of the {len(grokking.POWER_ABLATIONS)} differences "
        f"({', '.join(grokking.POWER_ABLATIONS)}) moves the step count is not measured here. "
        "Compare the two presets' rows above for their joint effect."))

# %% [markdown]
# **How precise is a grokking step?** At the default training fraction the `power-default-arch`
# preset trains exactly as this chapter's weight-decay-1 runs of the same seed: the presets differ only in what
# they record and in the step cap (recording never changes training:
# `tests/test_grokking.py`). The chapter's runs were trained on another host, though, and float
# rounding is not the same across CPU kernels: their training losses part at the step below, by
# about one unit in the last place, and the runs then go their own ways. Their grokking steps, side by side, show how much of a
# step count is rounding chaos rather than recipe (a lower bound on the seed-to-seed spread
# worth reading):

# %% tags=["hide-input"]
same_training = []
for run in power_default_runs:
    twin = next((r for r in main_runs if r.config.seed == run.config.seed
                 and r.config.train.weight_decay == run.config.train.weight_decay
                 and r.config.task == run.config.task), None)
    if twin is None:
        continue
    a, b = run.train_log.loss.to_numpy(), twin.train_log.loss.to_numpy()
    n = min(len(a), len(b))
    parted = np.flatnonzero(a[:n] != b[:n])
    same_training.append({
        "seed": run.config.seed,
        f"`{S.power_default_preset}` (this host): grokked at": grokking.grok_step(run.metrics),
        "this chapter's run: grokked at": grokking.grok_step(twin.metrics),
        "training losses first differ at step": int(run.train_log.step.iloc[parted[0]]) if parted.size else None,
        "their difference there": float(abs(a[parted[0]] - b[parted[0]])) if parted.size else 0.0,
        "same host": run.meta.get("platform") == twin.meta.get("platform")})
if same_training:
    display(pd.DataFrame(same_training).style.hide(axis="index")
            .format({"their difference there": "{:.1e}"}, na_rep="—"))
else:
    display(Markdown(f"No `{S.power_default_preset}` run shares its training with this chapter's runs at "
                     f"preset `{preset}`."))

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
display(conclusion(record))

# %% [markdown]
# ### Where we agree and disagree with the fingerprint study

# %% tags=["hide-input"]
display(Markdown(ch09.summary(record, grok_table, sep, motion_ratio, rrr_wins, len(paired),
                             tsvd_vs_rrr, states, int(records.max()), cfg.train.snapshot_every,
                             cfg.train.n_steps, common)))
