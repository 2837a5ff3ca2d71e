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
# # 12. Mechanism meets trajectory: progress measures, the LLC and the manifold on one run
#
# Three views of a grokking run rarely meet. The **mechanistic** one (Nanda et al., *Progress
# measures for grokking via mechanistic interpretability* {cite}`nanda2023progress`) reads the model's circuit: the
# embedding concentrates on a few *key frequencies* of $\mathbb{Z}_p$, and the loss of the
# logits restricted to those frequencies (*restricted loss*) or with them removed (*excluded
# loss*) splits training into **memorisation**, **circuit formation** and **cleanup**. The
# **developmental** one estimates the *local learning coefficient* (LLC), a measure of the
# loss landscape's effective dimension around the current weights {cite}`lau2025llc`, by SGLD
# sampling (devinterp's estimator {cite}`devinterp2024`). The **trajectory** views are this study's: the weight trajectory's
# lock-in into its low-dimensional subspace (chapter 3), the fingerprint's DMD spectra
# (chapter 9) and the early-warning detectors (chapter 10). This chapter asks one question
# with all of them: **do the trajectory signals happen at the mechanistic phase boundaries,
# before them, or unrelated to them?** Claims **N1–N3** test three signals against the same
# signals shuffled in time.
#
# **What `modadd` provides** (tests in `tests/test_progress.py`, `tests/test_llc.py`,
# `tests/test_mechanism.py`, `tests/test_claims_ch12.py`):
#
# | piece | here |
# |---|---|
# | Fourier basis of $\mathbb{Z}_p$, per-frequency norms of $W_E$ and of the neuron-logit map $W_L$ | `modadd.progress` (orthonormality and a hand-built embedding tested) |
# | key frequencies | frequencies whose squared norm exceeds twice the mean, from the final embedding (Nanda reads them off the same spectrum by eye) |
# | restricted / excluded loss, Gini | on the logits of every $(a, b)$, as Nanda defines them; a model that uses only given frequencies has restricted loss = full loss (tested) |
# | phase boundaries | a stated rule (below), not by eye |
# | LLC | `modadd.llc`: devinterp's SGLD estimator re-implemented (devinterp pins an older torch than this study's 2.13), with its calibration made explicit and tested against closed-form LLCs |
# | all of it from stored weights | every snapshot's full parameter vector is stored; nothing is retrained to measure |
#
# **Runs.** Nanda et al.'s recipe (the `nanda` preset: $a + b \bmod 113$, one layer, $d = 128$,
# 4 heads, $d_\text{mlp} = 512$, no LayerNorm, his initialisation, full-batch AdamW with lr
# $10^{-3}$ and weight decay 1) at **training fraction 0.5**, five seeds, an evaluation, a
# full-parameter snapshot and a fingerprint every 10 steps, stopped 1000 steps after held-out
# accuracy first reaches 99%; and the same recipe **without weight decay** for 2000 steps as a
# run that does not grok. Nanda's paper run uses fraction 0.3 and groks after about 10 000
# full-batch steps, beyond this study's CPU budget for five seeds; at 0.5 his own sweep groks
# an order of magnitude sooner (chapter 9 §7 reproduces it; his milestones are compared with
# ours in the Conclusion).

# %% tags=["hide-input"]
from typing import Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from modadd import claims
from modadd import mechanism as ME
from modadd import registry
from modadd.claims import ch12
from modadd.plots import PAGE_WIDTH, book_style, figure_data, panels, shared_legend
from modadd.report import ci_text, conclusion, fmt_ci, number

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"               # "smoke" (CI, seconds) | "book" (2-core CPU)
mechanism_preset: Optional[str] = None   # grokking preset of the runs (modadd.grokking)
seeds: Optional[int] = None        # grokking seeds
fraction: Optional[float] = None   # training fraction
weight_decay: Optional[float] = None     # weight decay of the grokking runs
null_seeds: Optional[int] = None   # seeds of the weight-decay-0 control
null_steps: Optional[int] = None   # its steps
every: Optional[int] = None        # evaluation, snapshot and fingerprint interval (steps)
n_steps: Optional[int] = None      # step budget of the grokking runs (early stop 1000 after)
null_draws: Optional[int] = None   # random walks per run for the r90 null
llc_every: Optional[int] = None    # an LLC estimate every this many steps
llc_chains: Optional[int] = None   # SGLD chains per estimate
llc_draws: Optional[int] = None    # draws per chain after burn-in
llc_burnin: Optional[int] = None   # burn-in steps per chain
llc_batch: Optional[int] = None    # SGLD minibatch size
llc_step_sizes: Optional[tuple] = None      # calibration grid: step sizes ε
llc_localizations: Optional[tuple] = None   # calibration grid: localizations γ
workers: int = 0                   # training processes on a cache miss (0: one per core)

# %% [markdown]
# ## 1. The runs, their key frequencies and their phases
# **Phase rule.** Version 1 (fixed before any run) placed the end of memorisation at the
# lowest excluded loss, provided the excluded loss later rose tenfold. On pilot runs at
# fraction 0.5 it never fired: the excluded loss rises only a few-fold, and its minimum comes
# *before* the training split is fit. Version 2 (fixed before the book runs finished, and used
# for every lag below) reads all boundaries off the losses:
#
# - **train fit** = end of memorisation: first step with training loss $< 10^{-2}$ (the
#   milestone of chapter 9 §7);
# - **cleanup start**: first step after that at which the held-out loss has fallen to half its
#   highest value since train fit;
# - **cleanup end**: first step from then on with held-out loss $< 10^{-2}$.
#
# Circuit formation lies between train fit and cleanup start. The table also gives v1's
# memorisation end and the step of the lowest excluded loss (from there on, removing the key
# frequencies hurts the training fit more and more: the circuit is forming).

# %% tags=["hide-input"]
S = registry.from_namespace("ch12", globals())
display(S)
runs = S.load("mechanism", "mechanism null", workers=workers)
study = ME.study(S, progress=True)
events = study["events"]
book_style()
grok_keys = [r.key for r in runs if r.config.train.weight_decay > 0]
null_keys = [r.key for r in runs if r.config.train.weight_decay == 0]
label = {r.key: (f"seed {r.config.seed}" if r.config.train.weight_decay > 0
                 else f"wd 0, seed {r.config.seed}") for r in runs}
wide_events = events.pivot_table(index="run", columns="event", values="step", dropna=False)
alarms = sorted(e for e in events.event.unique() if e.startswith("alarm: "))
keys_of = {k: study["timelines"][k].attrs["key_frequencies"] for k in label}
overview = pd.DataFrame([{
    "run": label[k], "weight decay": r.config.train.weight_decay, "last step": r.last_step,
    "key frequencies": ", ".join(map(str, keys_of[k])) or "none",
    **{name: wide_events.loc[k].get(name, np.nan) for name in (
        "grokking (accuracy ≥ 0.99)", "excluded-loss minimum", "v1: memorisation end",
        "train fit", "cleanup start", "cleanup end")}}
    for r in runs for k in [r.key]])
n_keys = np.array([len(keys_of[k]) for k in grok_keys], float)
display(Markdown(
    f"**{len(grok_keys)} grokking runs and {len(null_keys)} without weight decay.** Key "
    f"frequencies per grokking seed: {ci_text(n_keys, 1)} (mean [95% CI] over seeds; Nanda "
    "et al. report 5 on their run). Steps of each event (empty: never)."))
overview.style.hide(axis="index").format(
    {c: "{:.0f}" for c in overview.columns if c not in ("run", "key frequencies",
                                                        "weight decay")} |
    {"weight decay": "{:g}"}, na_rep="—")

# %% [markdown]
# ## 2. Progress measures
# {numref}`fig-ch12-losses` shows the four losses of every run; {numref}`fig-ch12-sparsity`
# the Gini coefficient of the embedding's frequency norms and the number of key frequencies
# each snapshot's own embedding has (by the same rule).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Nanda et al.'s progress measures against the training step, one panel per run (the five grokking seeds and the run without weight decay): training loss, held-out loss, restricted loss (held-out logits projected onto the run's final key frequencies) and excluded loss (training logits with those frequencies removed), log scale floored at 1e-6 for display. Vertical lines: train fit (dotted), cleanup start (dashed), cleanup end (solid), by phase rule v2. One run per panel, so no intervals. Mirrors Nanda et al.'s Figure 7 (restricted and excluded loss).", "name": "fig-ch12-losses"}, "image": {"alt": "Six log-scale line panels, one per run, each with four loss curves against training step and up to three vertical lines marking the phase boundaries"}}
LOSSES = ("train loss", "test loss", "restricted loss", "excluded loss")
BOUNDARY_STYLE = {"train fit": ":", "cleanup start": "--", "cleanup end": "-"}
SIGNAL_MARKERS = {"lock-in (all parameters)": ("o", "C0"),
                  "lock-in (attention, median)": ("s", "C1"),
                  "fingerprint spectral change": ("^", "C2"), "LLC peak": ("*", "C4")}
loss_data = pd.concat([study["timelines"][k].query("measure in @LOSSES").assign(run=label[k])
                       for k in label], ignore_index=True)


def mark_boundaries(ax, key: str) -> None:
    for name, style in BOUNDARY_STYLE.items():
        step = wide_events.loc[key].get(name, np.nan)
        if np.isfinite(step):
            ax.axvline(step, color="grey", ls=style, lw=0.9, label=name)


fig, axes = panels(len(label), height=2.5, columns=2, sharey=True)
for ax, key in zip(axes, label):
    part = loss_data[loss_data.run == label[key]]
    for name in LOSSES:
        curve = part[part.measure == name]
        ax.plot(curve.step, curve.value.clip(lower=1e-6), label=name)
    mark_boundaries(ax, key)
    ax.set(yscale="log", title=label[key], xlabel="step")
axes[0].set_ylabel("loss (nats)")
fig.tight_layout()
shared_legend(fig, axes, ncol=2)
plt.show()

# %% tags=["remove-input"]
figure_data(loss_data, "fig-ch12-losses", what="one row per run, step and loss")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Sparsity of the embedding in the Fourier basis against the training step: the Gini coefficient of the per-frequency norms of W_E (left) and the number of key frequencies of each snapshot's own embedding by the chapter's rule, squared norm above twice the mean (right); one line per run, grey for the run without weight decay. One run per line, so no intervals. Mirrors Nanda et al.'s Figure 7 (Gini coefficients).", "name": "fig-ch12-sparsity"}, "image": {"alt": "Two line panels against training step: Gini coefficients rising for the grokking runs, and step-like counts of key frequencies, with a grey line for the run without weight decay"}}
SPARSITY = ("Gini W_E", "key frequencies (count)")
sparsity_data = pd.concat([study["timelines"][k].query("measure in @SPARSITY").assign(
    run=label[k]) for k in label], ignore_index=True)
fig, axes = panels(2, height=2.8)
for ax, name in zip(axes, SPARSITY):
    for key in label:
        curve = sparsity_data[(sparsity_data.run == label[key]) & (sparsity_data.measure == name)]
        ax.plot(curve.step, curve.value, label=label[key],
                color="grey" if key in null_keys else None, lw=1.2)
    ax.set(xlabel="step", ylabel=name.replace("W_E", "of $W_E$ norms"))
fig.tight_layout()
shared_legend(fig, axes, ncol=3)
plt.show()

# %% tags=["remove-input"]
figure_data(sparsity_data, "fig-ch12-sparsity", what="one row per run, step and measure")

# %% [markdown]
# ## 3. The local learning coefficient
# The LLC at weights $w^*$ is $\hat\lambda = n\beta\,(\mathbb{E}[L_n(w)] - L_n(w^*))$ over a
# posterior localised at $w^*$ (strength $\gamma$) and tempered at $\beta = 1/\log n$, sampled
# by SGLD with step size $\varepsilon$ on minibatches of the training split. Its value depends
# on $\varepsilon$ and $\gamma$, so they are calibrated, by the rule devinterp's documentation
# describes and `modadd.llc.calibrate` makes explicit: a setting is *acceptable* when no chain
# diverges, none falls significantly below $L_n(w^*)$, the draws do not drift between their
# halves and split-$\hat R \le 1.1$; among those, the largest step size whose estimate has
# reached a plateau in $\varepsilon$. Calibrated **at the last snapshot** of seed 0 (a grokked
# model) alone, that rule can pick a step size at which chains **diverge** at the snapshots of
# memorisation and circuit formation, where the loss landscape is far sharper (the count below
# and {numref}`fig-ch12-llc-single`). So the chapter keeps the last snapshot's $\gamma$ and
# takes **the largest $\varepsilon$ acceptable at every checkpoint**: the last snapshot and the
# first run's three phase boundaries (devinterp's advice: the chains must be stable at every
# checkpoint the estimate is read at). Every LLC below uses that one setting, and the same chain
# seed at every snapshot of a run (so differences between snapshots are not blurred by
# different noise).

# %% tags=["hide-input"]
cal, checkpoints = study["calibration"], study["checkpoints"]
used, single = study["settings"], study["single"]
display(Markdown(
    f"**Setting used:** $\\varepsilon$ = {used.step_size:g}, $\\gamma$ = {used.localization:g}, "
    f"{used.chains} chains × {used.draws} draws after {used.burnin} burn-in, batches of "
    f"{used.batch_size} ({study['settings_how']}). The last snapshot alone would give "
    f"$\\varepsilon$ = {single.step_size:g}, $\\gamma$ = {single.localization:g} "
    f"({study['single_how']})" + ("." if study["single_llc"] is None else
    f"; on the first run, {int((study['single_llc'].diverged >= 0.5).sum())} of "
    f"{len(study['single_llc'])} estimated snapshots lose at least half their chains to "
    f"divergence at that setting.") + " Calibration at the checkpoints (acceptable: ✓):"))
both = pd.concat([cal[cal.localization == used.localization], checkpoints], ignore_index=True)
smaller = sorted(e for e in both.step_size.unique() if e < used.step_size)
if smaller:     # how far the estimate is from converged in ε, checkpoint by checkpoint
    at = both.pivot_table(index="step", columns="step_size", values="llc")
    ratio = (at[used.step_size] / at[smaller[-1]]).dropna()
    display(Markdown(
        f"The estimate still depends on the step size: at each checkpoint (step "
        + ", ".join(f"{int(k)}" for k in ratio.index) + f"), the LLC at ε = {used.step_size:g} "
        f"is " + ", ".join(number(v, 2) for v in ratio) + f" times the LLC at ε = "
        f"{smaller[-1]:g}. Read the curves below as a comparison between snapshots and runs "
        "at one setting, not as converged absolute values."))
(both.assign(ok=np.where(both.acceptable.fillna(False).astype(bool), "✓", "✗"))
 .pivot_table(index="step_size", columns="step", values="ok", aggfunc="first")
 .rename_axis(index="ε", columns="checkpoint (step)"))

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The LLC calibration at the last snapshot of the first grokking run: the estimate against the SGLD step size, one line per localization strength, with the 95% interval over chains as error bars. Filled markers: settings the stability rule accepts; the ring marks the setting the chapter uses (chosen over all checkpoints, see the table above). Not a figure of the paper; devinterp's documentation recommends this scan.", "name": "fig-ch12-calibration"}, "image": {"alt": "Line plot of LLC estimates against step size on a log axis, one line per localization strength, with error bars, filled and open markers, and a ring around the chosen setting"}}
fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.75, 3.2))
for gamma, part in cal.groupby("localization"):
    line, = ax.plot(part.step_size, part.llc, label=f"γ = {gamma:g}")
    ax.errorbar(part.step_size, part.llc, yerr=[part.llc - part.llc_low,
                                                part.llc_high - part.llc],
                fmt="none", color=line.get_color(), lw=0.8)
    ok = part.acceptable.astype(bool)
    ax.scatter(part.step_size[ok], part.llc[ok], color=line.get_color(), zorder=3)
    ax.scatter(part.step_size[~ok], part.llc[~ok], facecolor="white",
               edgecolor=line.get_color(), zorder=3)
chosen = cal[(cal.step_size == study["settings"].step_size)
             & (cal.localization == study["settings"].localization)]
ax.scatter(chosen.step_size, chosen.llc, s=160, facecolor="none", edgecolor="k",
           label="setting used")
ax.set(xscale="log", xlabel="SGLD step size ε", ylabel="LLC estimate")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
plt.show()

# %% tags=["remove-input"]
figure_data(cal, "fig-ch12-calibration", what="one row per (step size, localization)")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Why one calibration snapshot is not enough: the first grokking run's LLC over training at the setting the last snapshot alone recommends (top), with the share of its SGLD chains that diverged at each snapshot (bottom); a diverged chain is dropped, so an estimate over few chains is unreliable and one over none is missing. Vertical lines: the phase boundaries as in the other figures. One run; the band is the interval over the chains that did not diverge. Not a figure of the paper.", "name": "fig-ch12-llc-single"}, "image": {"alt": "Two stacked panels for one run: an LLC curve with gaps, and bars of the share of diverged chains that are high during memorisation and circuit formation"}}
single_llc = study["single_llc"] if study["single_llc"] is not None else study["llc"][grok_keys[0]]
fig, axes = plt.subplots(2, 1, figsize=(PAGE_WIDTH, 4.6), sharex=True)
axes[0].plot(single_llc.step, single_llc.llc, color="C3", marker="o", ms=3)
axes[0].fill_between(single_llc.step, single_llc.llc_low, single_llc.llc_high, color="C3",
                     alpha=0.25)
axes[0].set(yscale="symlog", ylabel="LLC estimate",
            title=f"ε = {single.step_size:g}, γ = {single.localization:g}")
axes[1].bar(single_llc.step, single_llc.diverged, width=S.llc_every * 0.6, color="C3")
axes[1].set(ylim=(0, 1), ylabel="chains diverged", xlabel="step")
for ax in axes:
    mark_boundaries(ax, grok_keys[0])
fig.tight_layout()
plt.show()

# %% tags=["remove-input"]
figure_data(single_llc, "fig-ch12-llc-single", what="one row per estimated snapshot")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The LLC over training, one panel per run, with the 95% interval over SGLD chains as a band (it measures sampling noise at one snapshot, not seed-to-seed variation). Vertical lines: train fit (dotted), cleanup start (dashed), cleanup end (solid), by phase rule v2. Not a figure of the paper.", "name": "fig-ch12-llc"}, "image": {"alt": "Six line panels of LLC estimate against training step with narrow bands, one per run, with vertical lines at the phase boundaries"}}
llc_data = pd.concat([study["llc"][k][["step", "llc", "llc_low", "llc_high"]].assign(
    run=label[k]) for k in label], ignore_index=True)
fig, axes = panels(len(label), height=2.4, columns=2, sharey=True)
for ax, key in zip(axes, label):
    part = llc_data[llc_data.run == label[key]]
    ax.plot(part.step, part.llc, color="C4", label="LLC")
    ax.fill_between(part.step, part.llc_low, part.llc_high, color="C4", alpha=0.25)
    mark_boundaries(ax, key)
    ax.set(title=label[key], xlabel="step")
axes[0].set_ylabel("LLC estimate")
fig.tight_layout()
shared_legend(fig, axes, ncol=2)
plt.show()

# %% tags=["remove-input"]
figure_data(llc_data, "fig-ch12-llc", what="one row per run and estimated snapshot")

# %% tags=["hide-input"]
def value_at(frame: pd.DataFrame, step: float, column: str = "llc") -> float:
    """The value at the estimated step nearest ``step`` (NaN for a NaN step)."""
    if not np.isfinite(step) or frame.empty:
        return np.nan
    return float(frame[column].iloc[int(np.argmin(np.abs(frame.step.to_numpy() - step)))])


at_boundary = pd.DataFrame([{"seed": label[k], **{
    name: value_at(study["llc"][k], wide_events.loc[k].get(name, np.nan))
    for name in ("train fit", "cleanup start", "cleanup end")},
    "peak": study["llc"][k].llc.max(), "last": study["llc"][k].llc.iloc[-1]}
    for k in grok_keys])
display(Markdown("**LLC at the phase boundaries** (the estimate at the nearest estimated "
                 f"step, every {S.llc_every} steps; mean [95% CI] over grokking seeds): " +
                 "; ".join(f"{c} {ci_text(at_boundary[c], 0)}"
                           for c in at_boundary.columns[1:]) + "."))
at_boundary.style.hide(axis="index").format(precision=0, na_rep="—")

# %% [markdown]
# ## 4. The trajectory signals
# - **Lock-in** (chapter 3's statistic on the whole parameter vector): $k$ = the $r_{90}$ of
#   the trajectory $W_t - W_0$; the lock-in is the first snapshot from which at least 90% of
#   $\|W_t - W_0\|^2$ stays inside the trajectory's final top-$k$ subspace. The same for each
#   attention matrix ($W_Q, W_K, W_V, W_O$, the paper's objects; N1's alternative takes their
#   median). The growing-window $r_{90}$ (snapshots $0..t$) is compared with random walks with
#   the same per-interval step norms.
# - **Fingerprint spectral change** (the fingerprint study's DMD, two-sided): at each record,
#   the spectral distance between the rank-2 RRR-DMD eigenvalues of the 15 fingerprints before
#   and the 15 from there on (3 delays); the signal is its maximum.
# - **LLC peak**: the step of the highest LLC estimate.
# - **Detector alarms**: chapter 10's five detectors and its yardstick at their chapter-10
#   thresholds, each computed from the past only (their windows count evaluations, here every
#   10 steps rather than 20).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "The trajectory signals against the training step, one line per run (grey: without weight decay): the growing-window r90 of the whole parameter trajectory with the mean of 20 matched random walks (dashed, same colour), the fraction of the distance from the initial weights that lies outside the trajectory's final top-k subspace (lock-in: when it stays at most 0.32, the square root of 10%, shown as the black line), and the fingerprint's DMD spectral change. One run per line, so no intervals. The r90 panel mirrors the paper's Figure 1 over time.", "name": "fig-ch12-trajectory"}, "image": {"alt": "Three line panels against training step: stepwise growing r90 curves with dashed random-walk curves far above them, outside-fraction curves falling below a horizontal lock-in line, and spiky spectral-change curves"}}
TRAJ = ("r90 growing (all parameters)", "outside fraction (all parameters)",
        "fingerprint spectral change")
traj_data = pd.concat([study["timelines"][k].query(
    "measure in @TRAJ or measure == 'r90 growing, random walk (all parameters)'").assign(
    run=label[k]) for k in label], ignore_index=True)
fig, axes = panels(3, height=2.8)
for ax, name in zip(axes, TRAJ):
    for i, key in enumerate(label):
        color = "grey" if key in null_keys else f"C{i}"
        curve = traj_data[(traj_data.run == label[key]) & (traj_data.measure == name)]
        ax.plot(curve.step, curve.value, color=color, lw=1.1, label=label[key])
        if name.startswith("r90"):
            walk = traj_data[(traj_data.run == label[key]) & (
                traj_data.measure == "r90 growing, random walk (all parameters)")]
            ax.plot(walk.step, walk.value, color=color, lw=0.8, ls="--")
    ax.set(xlabel="step", ylabel=name.replace(" (all parameters)", ""))
axes[1].axhline(ME.LOCK_IN_LEVEL, color="k", lw=0.8)
fig.tight_layout()
shared_legend(fig, axes, ncol=2)
plt.show()

# %% tags=["remove-input"]
figure_data(traj_data, "fig-ch12-trajectory", what="one row per run, step and measure")

# %% [markdown]
# ## 5. Every view on one time axis
# {numref}`fig-ch12-one-run` stacks every measure of the first grokking seed on one shared
# step axis; {numref}`fig-ch12-events` then puts every run's boundaries and signals on one axis:
# where they fall relative to each other is the chapter's question.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "One grokking run (the first seed), every view on one shared step axis, top to bottom: training, held-out, restricted and excluded loss (log scale, floored at 1e-6 for display); Gini coefficient of the embedding's frequency norms and the number of key frequencies (right axis); the LLC with its interval over chains; the growing-window r90 of the whole parameter trajectory (random-walk mean dashed) and the fraction of the distance from the initial weights outside the final top-k subspace (right axis, lock-in level as a thin black line); the fingerprint's DMD spectral change; each detector's first alarm (one row per detector). Grey vertical lines: train fit (dotted), cleanup start (dashed), cleanup end (solid); coloured vertical lines: the lock-in, the spectral change's peak and the LLC peak. One run, so no intervals across seeds. Not a figure of the paper.", "name": "fig-ch12-one-run"}, "image": {"alt": "Six stacked panels sharing a training-step axis for one run: four loss curves, Gini and key-frequency count, the LLC, r90 and outside fraction, spectral change, and a row of alarm ticks per detector, with vertical lines at the phase boundaries and at the trajectory signals"}}
first = grok_keys[0]
one = study["timelines"][first].pivot_table(index="step", columns="measure", values="value")
one_llc = study["llc"][first]
fig, axes = plt.subplots(6, 1, figsize=(PAGE_WIDTH, 12), sharex=True,
                         gridspec_kw={"height_ratios": [3, 2, 2, 2, 2, 1.6]})
for name in LOSSES:
    axes[0].plot(one.index, one[name].clip(lower=1e-6), label=name)
axes[0].set(yscale="log", ylabel="loss (nats)")
for j, name in enumerate(alarms):
    step = wide_events.loc[first].get(name, np.nan)
    if np.isfinite(step):
        axes[5].plot(step, j, marker="|", color="0.2", ms=12, mew=2)
axes[5].set(yticks=range(len(alarms)), ylim=(-0.7, len(alarms) - 0.3), xlabel="step",
            yticklabels=[a.replace("alarm: ", "") for a in alarms], ylabel="first alarm")
axes[5].tick_params(axis="y", labelsize=7)
axes[1].plot(one.index, one["Gini W_E"], color="C0", label="Gini of $W_E$ norms")
axes[1].set(ylabel="Gini")
twin = axes[1].twinx()
twin.step(one.index, one["key frequencies (count)"], color="C3", where="post",
          label="key frequencies")
twin.set(ylabel="key frequencies")
twin.grid(False)
axes[2].plot(one_llc.step, one_llc.llc, color="C4", label="LLC")
axes[2].fill_between(one_llc.step, one_llc.llc_low, one_llc.llc_high, color="C4", alpha=0.25)
axes[2].set(ylabel="LLC")
axes[3].plot(one.index, one["r90 growing (all parameters)"], color="C0", label="r90 (growing)")
axes[3].plot(one.index, one["r90 growing, random walk (all parameters)"], color="C0", ls="--",
             label="r90, random walks")
axes[3].set(ylabel="r90")
twin3 = axes[3].twinx()
twin3.plot(one.index, one["outside fraction (all parameters)"], color="C1",
           label="outside fraction")
twin3.axhline(ME.LOCK_IN_LEVEL, color="k", lw=0.6)
twin3.set(ylabel="outside fraction")
twin3.grid(False)
axes[4].plot(one.index, one["fingerprint spectral change"], color="C2")
axes[4].set(ylabel="spectral change")
for ax in axes:
    mark_boundaries(ax, first)
    for name, (marker, color) in SIGNAL_MARKERS.items():
        step = wide_events.loc[first].get(name, np.nan)
        if np.isfinite(step) and name != "lock-in (attention, median)":
            ax.axvline(step, color=color, lw=1.0, alpha=0.8)
axes[0].set_title(label[first])
fig.tight_layout()
handles = {}
for ax in (*axes, twin, twin3):
    for h, name in zip(*ax.get_legend_handles_labels()):
        handles.setdefault(name, h)
handles.update({name: plt.Line2D([], [], color=color) for name, (marker, color)
                in SIGNAL_MARKERS.items() if name != "lock-in (attention, median)"})
fig.legend(list(handles.values()), list(handles), loc="upper center",
           bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False, fontsize=8)
plt.show()

# %% tags=["remove-input"]
figure_data(study["timelines"][first].assign(run=label[first]), "fig-ch12-one-run",
            what="one row per step and measure (the LLC is in fig-ch12-llc's data)")

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Every event of every run on one time axis (steps): the phase boundaries by rule v2 (grey vertical bars: train fit dotted, cleanup start dashed, cleanup end solid), the grokking step (held-out accuracy at least 99%, black diamond), the trajectory signals (coloured markers: lock-in of all parameters and of the attention matrices, fingerprint spectral change, LLC peak) and each detector's first alarm (small grey marks, one row per detector under the run). One row group per run; the run without weight decay has no boundaries. Not a figure of the paper.", "name": "fig-ch12-events"}, "image": {"alt": "Raster plot with one group of rows per run along a horizontal step axis, vertical grey bars at the phase boundaries, coloured markers for the trajectory signals and small grey ticks for detector alarms"}}
fig, ax = plt.subplots(figsize=(PAGE_WIDTH, 0.9 + 0.75 * len(label)))
for row, key in enumerate(label):
    y = len(label) - 1 - row
    for name, style in BOUNDARY_STYLE.items():
        step = wide_events.loc[key].get(name, np.nan)
        if np.isfinite(step):
            ax.plot([step, step], [y - 0.4, y + 0.4], color="grey", ls=style, lw=1.4)
    grok = wide_events.loc[key].get("grokking (accuracy ≥ 0.99)", np.nan)
    if np.isfinite(grok):
        ax.scatter(grok, y + 0.25, marker="D", color="k", s=30,
                   label="grokking (accuracy ≥ 0.99)")
    for name, (marker, color) in SIGNAL_MARKERS.items():
        step = wide_events.loc[key].get(name, np.nan)
        if np.isfinite(step):
            ax.scatter(step, y + 0.1, marker=marker, color=color, s=55, zorder=3, label=name)
    for j, name in enumerate(alarms):
        step = wide_events.loc[key].get(name, np.nan)
        if np.isfinite(step):
            ax.scatter(step, y - 0.12 - 0.05 * j, marker="|", color="0.4", s=40,
                       label="detector alarm")
ax.set(yticks=range(len(label)), yticklabels=list(label.values())[::-1], xlabel="step")
handles = {}
for h, name in zip(*reversed(ax.get_legend_handles_labels())):
    handles.setdefault(h, name)
handles.update({"train fit": plt.Line2D([], [], color="grey", ls=":"),
                "cleanup start": plt.Line2D([], [], color="grey", ls="--"),
                "cleanup end": plt.Line2D([], [], color="grey", ls="-")})
ax.legend(list(handles.values()), list(handles), loc="upper center",
          bbox_to_anchor=(0.5, -0.18), ncol=3, frameon=False, fontsize=8)
plt.show()

# %% tags=["remove-input"]
figure_data(events.assign(run=events.run.map(label)), "fig-ch12-events",
            what="one row per run and event (step empty: never)")

# %% [markdown]
# ## 6. Lags behind the phase boundaries
# The lag of a signal behind a boundary is signal step − boundary step (negative: the signal
# comes first), mean and Student-t 95% interval over the grokking seeds that have both;
# "before" counts the seeds in which the signal came first.

# %% tags=["hide-input"]
lags = ME.lag_table(events)
lag_view = lags.assign(**{"lag (steps)": [fmt_ci((m, lo, hi), 0, signed=True) for m, lo, hi in
                                          zip(lags.lag, lags.low, lags.high)],
                          "before": [f"{b}/{n}" for b, n in zip(lags.before, lags.seeds)]})
lag_view.pivot(index="signal", columns="boundary", values="lag (steps)")[
    list(ME.BOUNDARIES)].loc[lags.signal.unique()]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Lag of each signal behind each phase boundary (signal − boundary, steps; left of the black line: the signal comes first): mean over grokking seeds with its Student-t 95% interval, one colour per boundary, one row per signal (trajectory signals first, then the detectors' alarms). A signal missing from a row never happened in enough seeds. Not a figure of the paper.", "name": "fig-ch12-lags"}, "image": {"alt": "Dot-and-whisker plot with one row per signal or detector along a horizontal lag axis, three coloured points per row (one per boundary) and a vertical line at zero"}}
order = list(lags.signal.unique())
fig, ax = plt.subplots(figsize=(PAGE_WIDTH * 0.62, 0.8 + 0.38 * len(order)))
y = np.arange(len(order))[::-1]
for j, boundary in enumerate(ME.BOUNDARIES):
    part = lags[lags.boundary == boundary].set_index("signal").reindex(order)
    ax.errorbar(part.lag, y + 0.22 * (1 - j), xerr=[part.lag - part.low, part.high - part.lag],
                fmt="o", color=f"C{j}", ms=4, lw=1, label=f"behind {boundary}")
ax.axvline(0, color="k", lw=0.8)
ax.set(xlabel="lag (steps): signal − boundary", yticks=y,
       yticklabels=order, ylim=(-0.6, len(order) - 0.4))
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 1.0 / len(order)), ncol=3,
          frameon=False, fontsize=8)
plt.show()

# %% tags=["remove-input"]
figure_data(lags, "fig-ch12-lags", what="one row per signal and boundary")

# %% [markdown]
# ## 7. Does the trajectory's dimension track the circuit or the LLC?
# Over the steps where the LLC was estimated, per run, the Spearman correlation of the
# growing-window $r_{90}$ with the LLC and with the number of key frequencies. Anything that
# grows over training correlates with a growing-window rank, so the control is the same
# correlation for the random walks' $r_{90}$ (same step norms).

# %% tags=["hide-input"]
corr = ME.correlation_table({cfg: (study["timelines"][k], study["llc"][k])
                             for cfg, k in ((r.config, r.key) for r in runs)})
grok_corr = corr[corr.weight_decay > 0]
corr_view = (grok_corr.groupby(["x", "y"], sort=False).rho
             .agg(lambda v: ci_text(v, 2, bounds=(-1, 1))).unstack("y"))
corr_view.index = [i.replace(" (all parameters)", "") for i in corr_view.index]
display(Markdown("Spearman ρ, mean [95% CI] over grokking seeds (rows: which $r_{90}$; "
                 "columns: what it is correlated with)."))
corr_view

# %% [markdown]
# ## 8. Claims ledger rows
# **N1–N3**: *the signal marks a mechanistic phase boundary of grokking* (one claim per
# signal: N1 the weight trajectory's lock-in, N2 the fingerprint's spectral change, N3 the
# LLC's peak). The rule (`modadd.claims.ch12`, fixed before the book runs finished): per
# grokking seed, the distance from the signal to the nearest of the three boundaries; the
# claim is **supported** if the mean distance over seeds is smaller than for the same signal
# shuffled in time (its step drawn uniformly from the run's steps, 10 000 draws) at one-sided
# Monte Carlo $p < 0.05$; **not supported** otherwise; **not testable** with fewer than three
# grokking seeds that have the signal and all three boundaries. The run without weight decay
# is a control: its signal step is listed. N1's alternative analysis uses the attention
# matrices' lock-in.

# %% tags=["hide-input"]
tables = {"events": events}
records = [claims.evaluate(cid, tables, preset) for cid in ("N1", "N2", "N3")]
for record in records:
    display(record)

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
display(conclusion(*records))

# %% [markdown]
# ### Where the views meet, and where we differ from Nanda et al.

# %% tags=["hide-input"]
display(Markdown(ME.summary(records, overview, lags, at_boundary, grok_corr, S)))
