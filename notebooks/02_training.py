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
# # 2. Training: the `book` preset over seeds
#
# We train the attention-only model on the mixed schedule ($m$ drawn uniformly per batch, as in
# the original code) for several seeds, through `load_or_train`, which loads finished runs from
# `data/results` (summaries) or `data/cache` (weights) and trains only on a miss. Every curve is
# the mean over seeds with a 95% Student-$t$ confidence band, evaluated on a **fixed held-out probe
# set per $m$** drawn from its own RNG stream (the original evaluated single fresh batches of 128).

# %% tags=["hide-input"]
from typing import Optional
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

import modadd
from modadd import claims
from modadd import registry
from modadd.claims import ch02
from modadd.plots import band_plot, entropy_panels, book_style, figure_data, panels
from modadd.presets import preset_differences
from modadd.report import conclusion
from modadd.stats import mean_ci, seed_summary
from modadd.task import chance_accuracy
from modadd.train import snapshot_steps

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # "smoke" (CI, seconds) | "book" (2-core CPU) | "original" | "paper"
seeds: Optional[int] = None     # independent training seeds (0..seeds-1)
n_steps: Optional[int] = None   # 0: the preset's value; otherwise override the step count
workers: int = 0                # training processes (0: one per CPU core)
target_accuracy: Optional[float] = None # accuracy threshold for "learned" and time-to-learn
control_lr: Optional[float] = None # constant-rate control at the same budget (the original's rate)

# %% tags=["hide-input"]
S = registry.from_namespace("ch02", globals())
display(S)
roles = S.runs()
configs = roles["main"]
runs = modadd.load_or_train_many(configs, n_workers=workers or None)
cfg = runs[0].config
metrics = pd.concat([r.metrics.assign(seed=r.config.seed) for r in runs], ignore_index=True)
train_log = pd.concat([r.train_log.assign(seed=r.config.seed) for r in runs], ignore_index=True)
book_style()

# %% [markdown]
# ## How `book` differs from `original`
# All presets are listed on the {doc}`presets page <../book/presets>`. `book` changes the
# `original` configuration where the table below says, each for a reason: marker positions are drawn
# per example (the original shared one position set per batch, so each gradient step was
# position-specific); snapshots are denser (the paper says every 100 steps); and the step budget and
# optimisation (peak learning rate, warm-up, cosine decay) were chosen by measurement so that one
# condition × 5 seeds fits in 45 minutes on 2 CPU cores. The target was every $m$ learned to
# `target_accuracy`; the tables below report it both ways — the seed mean per $m$, and how many
# seeds reach it — and the last section shows the measurement behind the choice: the same budget
# at a constant peak rate and at the original constant rate.

# %% tags=["hide-input"]
preset_differences(preset, "original") if preset != "original" else None

# %% [markdown]
# ## Training loss
# Cross-entropy on each training batch (mixed $m$), averaged in windows of 100 steps per seed, then
# over seeds ({numref}`fig-ch02-training-loss`).

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Training loss (cross-entropy per training batch of mixed $m$, nats, log scale) against step: each seed's loss averaged over windows of steps, then the geometric mean over seeds (line) and its 95% CI over seeds (band); dotted line: $\\ln C$, the loss of a uniform guess. The paper shows no training-loss figure.", "name": "fig-ch02-training-loss"}, "image": {"alt": "One curve of training loss against step on a logarithmic axis with a shaded band over seeds, and a dotted horizontal line for the loss of a uniform guess"}}
window = max(1, min(100, cfg.train.n_steps // 20))
smoothed = (train_log.assign(window=(train_log.step - 1) // window * window + window)
            .groupby(["seed", "window"], as_index=False)["loss"].mean())
fig, ax = plt.subplots(figsize=(7, 3.5))
band_plot(smoothed.rename(columns={"loss": "value"}), x="window", ax=ax, log=True)
ax.axhline(np.log(cfg.task.C), color="k", ls=":", lw=1, label="ln C (uniform guess)")
ax.set(xlabel="step", ylabel="training loss (nats)",
       title=f"Training loss, {preset} preset, {len(runs)} seeds (geometric mean, 95% CI)")
ax.legend()
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it (its own cell: myst-nb puts every output of
# a figure cell inside the figure)
figure_data(smoothed.rename(columns={"window": "step"}), "fig-ch02-training-loss",
            what="one row per seed and window of steps (step: the window's last step): mean "
                 "training loss in nats")

# %% [markdown]
# ## Held-out loss and accuracy per $m$
# Loss is averaged on the log scale (geometric mean over seeds); the dashed line is chance ($1/C$).
# Compare {numref}`fig-ch02-heldout` with the original code's training overview figure
# (`fig_training_overview.png`, also shown in its README: accuracy ≈ 0.99 by step 1500 for the
# mixed run, read from the figure; {doc}`original-code notes §8 <../book/original_code>`); the
# paper says the loss converges by about step 5000.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out loss (left, nats, log scale) and held-out accuracy (right) per $m$ against step, on the fixed probe set of each $m$: mean over seeds (line; geometric mean for the loss) and 95% CI over seeds (band); dashed line: chance accuracy $1/C$. Mirrors the loss and accuracy panels of the original code's training overview figure (the paper has no accuracy figure).", "name": "fig-ch02-heldout"}, "image": {"alt": "Two panels: held-out loss falling on a log axis and held-out accuracy rising from a dashed chance line, one coloured curve with a shaded band per m"}}
fig, axes = panels(2, height=3.0)
for ax, name in zip(axes, ["loss", "accuracy"]):
    part = metrics[metrics.metric == name]
    band_plot(part, x="step", hue="m", ax=ax, label_fmt="m={}", log=name == "loss")
    ax.set(xlabel="step", ylabel=f"held-out {name}" + (" (nats)" if name == "loss" else ""),
           title=f"Held-out {name} per m")
axes[1].axhline(chance_accuracy(cfg.task), color="k", ls="--", lw=1, label="chance")
handles, labels = axes[1].get_legend_handles_labels()
fig.suptitle(f"Mean and 95% CI over {len(runs)} seeds")
fig.tight_layout()
fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(metrics[metrics.metric.isin(["loss", "accuracy"])][["seed", "m", "step", "metric",
                                                                 "value"]],
            "fig-ch02-heldout", what="one row per seed, m, evaluated step and metric (held-out "
                                     "loss in nats or accuracy)")

# %% [markdown]
# ### Final accuracy and time to learn
# Final held-out accuracy per $m$ (mean and 95% CI over seeds), and the first evaluation step at
# which each seed's accuracy reaches `target_accuracy`.

# %% tags=["hide-input"]
accuracy = metrics[metrics.metric == "accuracy"]
final = accuracy[accuracy.step == cfg.train.n_steps]
first_hit = (accuracy[accuracy.value >= S.target_accuracy].groupby(["seed", "m"])["step"].min()
             .reindex(pd.MultiIndex.from_product([[r.config.seed for r in runs],
                                                  cfg.task.m_values], names=["seed", "m"])))
learned = pd.DataFrame({
    "final accuracy": seed_summary(final, ["m"]).set_index("m")
    .apply(lambda r: f"{r['mean']:.4f} [{r['low']:.4f}, {r['high']:.4f}]", axis=1),
    "min over seeds": final.groupby("m")["value"].min(),
    f"seeds ≥ {S.target_accuracy:g}": final.groupby("m")["value"].apply(
        lambda v: f"{(v >= S.target_accuracy).sum()}/{len(v)}"),
    f"step reaching {S.target_accuracy:g} (mean [CI])": first_hit.groupby("m").apply(
        lambda v: "not reached" if v.isna().any() else
        "{:.0f} [{:.0f}, {:.0f}]".format(*mean_ci(v))),
})
learned

# %% [markdown]
# ## Readout attention entropy per layer
# Entropy (nats) of the readout position's attention row, averaged over heads and probe examples
# ({numref}`fig-ch02-entropy`). The dotted line is the entropy of uniform causal attention over all
# positions, $\ln T$. The paper's Fig. 2 plots the **last** layer only (layer 4 here); it is the
# subject of chapter 4.

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Readout attention entropy (nats: entropy of the readout position's attention row, averaged over heads and probe examples) against step, one panel per layer, one colour per $m$: mean over seeds (line) and 95% CI over seeds (band); dotted line: uniform causal attention over all positions, $\\ln T$. Mirrors the paper's Fig. 2, which shows the last layer only.", "name": "fig-ch02-entropy"}, "image": {"alt": "One panel per layer of attention entropy over training, one curve with a shaded band per m, below a dotted line for uniform attention"}}
entropy_panels(metrics, cfg.task.seq_len,
               f"Readout attention entropy (mean, 95% CI over {len(runs)} seeds)")
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(metrics[metrics.metric == "entropy"][["seed", "layer", "m", "step", "value"]],
            "fig-ch02-entropy",
            what="one row per seed, layer, m and evaluated step: readout attention entropy in nats")

# %% [markdown]
# ## Snapshot inventory
# What each run stores for the geometry chapters. Weights live in the git-ignored cache
# (`data/cache/runs/<key>/snapshots.npy`) and are regenerated by `make study`; the committed
# results hold the summaries drawn here.

# %% tags=["hide-input"]
steps = snapshot_steps(cfg)
d, n_layers = cfg.model.d_model, cfg.model.n_layers
inventory = pd.DataFrame({
    "snapshots per run": [len(steps)],
    "first / last step": [f"{steps[0]} / {steps[-1]}"],
    "every": [cfg.train.snapshot_every],
    "matrices per snapshot": [f"{n_layers} layers × W_Q,W_K,W_V,W_O ({d}×{d})"],
    "MB per run (float32)": [len(steps) * n_layers * 4 * d * d * 4 / 2**20],
    "weights cached locally": [sum(r.cache_path is not None and
                                   (r.cache_path / "snapshots.npy").exists() for r in runs)],
    "runs": [len(runs)],
})
inventory.T.rename(columns={0: ""})

# %% [markdown]
# ## Wall time
# Measured while training (one thread per process, one process per core); the condition's wall
# time is the span from the first run's start to the last run's end.

# %% tags=["hide-input"]
meta = pd.DataFrame([r.meta | {"seed": r.config.seed} for r in runs])
finished = pd.to_datetime(meta.finished)
started = finished - pd.to_timedelta(meta.wall_s, unit="s")
wall = pd.DataFrame({
    "seed": meta.seed, "wall time per run (min)": meta.wall_s / 60,
    "steps/s (incl. evaluation)": meta.steps_per_s, "torch": meta.torch,
})
span_min = (finished.max() - started.min()).total_seconds() / 60
display(Markdown(f"**{len(runs)} seeds of `{preset}` took {span_min:.1f} min of wall time** "
                 f"(per run: {wall.iloc[:, 1].mean():.1f} min mean)."))
wall.style.hide(axis="index").format(precision=2)

# %% [markdown]
# ## Controls: the learning-rate schedule and the original learning rate, same budget
# The measurement that set the `book` preset's optimisation. Same seeds, same step budget, and
# two controls: the `book` peak rate held **constant** (no warm-up, no decay), and the original
# code's constant AdamW rate `control_lr`. The constant peak rate was this chapter's first choice
# of preset; the table below shows how many seeds each setting brings to the target for every
# $m$. At a constant rate, late-training accuracy on $m=4$ keeps fluctuating from one evaluation to
# the next; the decay lets it settle. All three settings are still improving on $m=4$ at the end
# of the budget: a longer budget would raise every curve, and the 45-minute limit is what stops it.

# %% tags=["hide-input"]
controls = {f"constant lr={cfg.train.lr:g}": roles["constant lr"],
            f"constant lr={S.control_lr:g} (original)": roles["original lr"]}
setting_names = [f"{preset} ({cfg.train.lr_schedule} lr={cfg.train.lr:g})", *controls]
control_runs = modadd.load_or_train_many([c for cs in controls.values() for c in cs],
                                         n_workers=workers or None)
by_key = {r.key: r for r in [*runs, *control_runs]}
both = pd.concat([by_key[modadd.run_key(c)].metrics.assign(seed=c.seed, setting=name)
                  for name, cs in zip(setting_names, [configs, *controls.values()])
                  for c in cs], ignore_index=True)
both = both[both.metric == "accuracy"]

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out accuracy per $m$ (one panel each) against step for three optimisation settings at the same step budget and seeds: the preset's schedule, its peak rate held constant, and the original code's constant rate; mean over seeds (line) and 95% CI over seeds (band); dotted line: the target accuracy `target_accuracy`. Not a figure of the paper.", "name": "fig-ch02-lr-controls"}, "image": {"alt": "One panel per m of held-out accuracy over training, three coloured curves with shaded bands, one per learning-rate setting, and a dotted target line near the top"}}
fig, axes = panels(len(cfg.task.m_values), height=2.6, sharey=True)
for ax, m in zip(axes, cfg.task.m_values):
    band_plot(both[both.m == m], x="step", hue="setting", ax=ax, palette="rocket")
    ax.axhline(S.target_accuracy, color="k", ls=":", lw=1)
    ax.set(title=f"m={m}", xlabel="step", ylabel="held-out accuracy")
for ax in axes[1::2]:
    ax.set_ylabel("")                                   # shared with the panel on its left
handles, labels = axes[0].get_legend_handles_labels()
fig.suptitle(f"Learning-rate schedule and rate, same budget\n"
             f"(mean, 95% CI over {len(runs)} seeds; dotted: target accuracy)")
fig.tight_layout()
fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=2,
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(both[["setting", "seed", "m", "step", "value"]], "fig-ch02-lr-controls",
            what="one row per setting, seed, m and evaluated step: held-out accuracy")

# %% tags=["hide-input"]
last = both[both.step == cfg.train.n_steps]
summary = seed_summary(last, ["setting", "m"])
summary["accuracy"] = [f"{r.mean:.4f} [{r.low:.4f}, {r.high:.4f}]" for r in summary.itertuples()]
summary["seeds ≥ target"] = [
    f"{(last[(last.setting == r.setting) & (last.m == r.m)].value >= S.target_accuracy).sum()}/{r.n}"
    for r in summary.itertuples()]
summary.pivot(index="m", columns="setting", values=["accuracy", "seeds ≥ target"])[
    [(v, s) for v in ("accuracy", "seeds ≥ target") for s in setting_names]]

# %% [markdown]
# Late-training jitter: the mean absolute change of held-out accuracy between consecutive
# evaluations over the last 20% of training, per seed, then mean and 95% CI over seeds.

# %% tags=["hide-input"]
late = both[both.step >= 0.8 * cfg.train.n_steps].sort_values("step")
jitter = (late.groupby(["setting", "m", "seed"])["value"]
          .apply(lambda v: v.diff().abs().mean()).rename("value").reset_index())
jitter = seed_summary(jitter, ["setting", "m"])
jitter["jitter"] = [f"{r.mean:.4f} [{r.low:.4f}, {r.high:.4f}]" for r in jitter.itertuples()]
jitter.pivot(index="m", columns="setting", values="jitter")[setting_names]

# %% [markdown]
# ## Claims ledger rows
# Training itself carries one reproduction check against the paper's text ("loss converges by
# about step 5000, with 100% accuracy"). Its rule lives in `modadd.claims.ch02` (R0): every seed
# reaches the target held-out accuracy on every $m$ by step 5000 (or by the end of training, if
# shorter). The record below shows the verdict, the criterion that decided it, the untrained
# model as its null, and whether moving the target within its stated range flips it.

# %% tags=["hide-input"]
r0 = claims.evaluate("R0", ch02.tables_from_runs(runs, chance_accuracy(cfg.task)), preset)
r0

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
conclusion(r0)
