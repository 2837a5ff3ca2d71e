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
# # 8. Modular multiplication
#
# The paper (§4.6) reports, from "preliminary experiments", that modular multiplication
# converges to slightly higher-dimensional execution manifolds than addition: 4–6 dimensions
# against 3–4 (claim **C13**). No multiplication code exists in the original repository
# ({doc}`original-code notes §7 <../book/original_code>`), and the paper gives neither the
# modulus nor the value range.
#
# **Choosing a task that is not degenerate.** With the book's $C = 8$ and values $0..7$, a
# product of $m$ values mod 8 is dominated by 0 and the even residues (a zero or enough factors
# of 2 absorb everything), so a constant guess does well and the label says little about most
# marked values. The cell below computes the label law exactly. We therefore use a **prime
# modulus $C = 7$ with values $1..6$**: the non-zero residues form a group under multiplication,
# every label is uniform for every $m$ (tested in `tests/test_task.py`), and each marked value
# matters.
#
# **What to expect.** The group $(\mathbb{Z}_7^*, \times)$ is cyclic of order 6: through the
# discrete logarithm (base 3), multiplication mod 7 *is* addition mod 6 with the value tokens
# relabelled (tested in `tests/test_task.py`). The model learns its token embeddings from an
# initialisation that treats every token id alike, so a relabelling of tokens cannot by itself
# make the task harder; the only differences from addition mod 7 are the group order (6 vs 7)
# and one output class that never occurs. A higher-dimensional manifold for multiplication would
# therefore be a surprise here. We compare multiplication mod 7 with **addition mod 7 at
# otherwise identical settings** (same seeds, hence the same initial weights, same steps and
# optimizer; the `book` preset with only `op` and `C` changed).

# %% tags=["hide-input"]
from typing import Optional
from itertools import product

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from IPython.display import Markdown, display

import modadd
import modadd.arms
from modadd import claims
from modadd import manifold
from modadd import registry
from modadd.claims import ch08
from modadd.plots import band_plot, figure_data, point_ci, book_style, panels
from modadd.report import ci_text, conclusion
from modadd.task import chance_accuracy

# %% tags=["parameters"]
# None: the study registry's value at `preset` (modadd.registry; shown below the cell)
preset: str = "book"            # "smoke" (CI, seconds) | "book" (2-core CPU) | "original" | "paper"
seeds: Optional[int] = None     # independent training seeds (0..seeds-1)
null_draws: Optional[int] = None # random-walk null draws per run and matrix
learned: Optional[float] = None # held-out accuracy counted as "learned"
workers: int = 0                # training processes on a cache miss (0: one per core)

# %% tags=["hide-input"]
S = registry.from_namespace("ch08", globals())
display(S)

# %% [markdown]
# ## 1. Why not multiplication mod 8
# Exact label law of the product of $m$ independent uniform values mod $C$ (enumerating every
# tuple), for the book's composite $C = 8$ with values $0..7$ and for prime $C = 7$ with values
# $1..6$: the probability of the most frequent label (the accuracy of a constant guess) and the
# label entropy against its maximum $\log_2 C$.

# %% tags=["hide-input"]
def label_law(C: int, values, m: int) -> np.ndarray:
    counts = np.zeros(C)
    for combo in product(values, repeat=m):
        counts[int(np.prod(combo)) % C] += 1
    return counts / counts.sum()


rows = []
for C, values in ((8, range(8)), (7, range(1, 7))):
    for m in (1, 2, 3, 4):
        p = label_law(C, list(values), m)
        nz = p[p > 0]
        rows.append({"task": f"mul mod {C}, values {min(values)}..{max(values)}", "m": m,
                     "P(most frequent label)": p.max(), "most frequent": int(p.argmax()),
                     "entropy (bits)": float(-(nz * np.log2(nz)).sum()),
                     "max entropy": np.log2(len(values) if C == 7 else C)})
law = pd.DataFrame(rows)
law.style.format({"P(most frequent label)": "{:.3f}", "entropy (bits)": "{:.2f}",
                  "max entropy": "{:.2f}"}).hide(axis="index")

# %% [markdown]
# ## 2. Learning both tasks

# %% tags=["hide-input"]
roles = S.runs()
arms = {"mul mod 7": roles["mul C7"], "add mod 7": roles["add C7"]}
modadd.load_or_train_many([c for cfgs in arms.values() for c in cfgs],
                          n_workers=workers or None)
cfg = arms["mul mod 7"][0]
acc = modadd.arms.arm_metrics(arms)
final = acc[acc.step == acc.step.max()]
book_style()

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Held-out accuracy per $m$ over training steps, multiplication mod 7 (values $1..6$) and addition mod 7 at otherwise identical settings (same seeds, initial weights, steps and optimizer): mean over seeds (line) and 95% CI over seeds (band); dotted line: chance accuracy. The paper shows no figure for multiplication.", "name": "fig-ch08-accuracy"}, "image": {"alt": "Two panels, multiplication mod 7 and addition mod 7, each with one held-out accuracy curve and shaded band per m over training steps, and a dotted chance line"}}
fig, axes = panels(len(arms), height=3.0, sharey=True)
for ax, (arm, cfgs) in zip(axes, arms.items()):
    band_plot(acc[acc.arm == arm], x="step", hue="m", ax=ax, label_fmt="m={}")
    ax.axhline(chance_accuracy(cfgs[0].task), color="grey", ls=":", lw=1)
    ax.set(title=arm, xlabel="step", ylim=(0, 1.05))
axes[0].set_ylabel("held-out accuracy")
handles, labels = axes[0].get_legend_handles_labels()
fig.suptitle(f"Held-out accuracy per m\n(mean, 95% CI over {len(arms['mul mod 7'])} "
             "seeds; dotted: chance)")
fig.tight_layout()
fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it (its own cell: myst-nb puts every output of
# a figure cell inside the figure)
figure_data(acc, "fig-ch08-accuracy",
            what="one row per task, seed, evaluation step and m (held-out accuracy)")

# %% tags=["hide-input"]
display(Markdown(f"**Final held-out accuracy** (step {acc.step.max()}), mean [95% CI]:"))
final.groupby(["arm", "m"]).value.apply(lambda v: ci_text(v, 3, bounds=(0, 1))).unstack("m")

# %% [markdown]
# ## 3. Effective dimension: multiplication against addition
# $r_{90}$ of each attention matrix's trajectory (chapter 3's measure and random-walk null), per
# layer and matrix type; each seed's value averaged over layers first, so the CI is over seeds.

# %% tags=["hide-input"]
THRESHOLD = 0.9
MATRICES = ["W_Q", "W_K", "W_V", "W_O"]
dims = pd.concat({arm: manifold.dimension_summary(cfgs, null_draws=S.null_draws)
                  for arm, cfgs in arms.items()}, names=["arm"]).reset_index("arm")
dims = dims[(dims.threshold == THRESHOLD) & (dims.source != "shuffled increments")]
blocks = dims[dims.group == "block"].assign(series=lambda f: f.arm + ", " + f.source)

# %% tags=["hide-input"] mystnb={"figure": {"caption": "Effective rank $r_{90}$ (principal components holding 90% of the variance) of each attention matrix's trajectory, per layer, for multiplication and addition mod 7 and for each task's random-walk null (a Gaussian walk with the run's own step norms). Markers: mean over seeds; bars: 95% CI over seeds. Shaded bands: the paper's stated ranges, 3–4 for addition and 4–6 for multiplication (§4.6). Same layout as the paper's Fig. 1.", "name": "fig-ch08-rank"}, "image": {"alt": "Four panels, one per attention matrix W_Q, W_K, W_V, W_O, each plotting effective rank against layer with error bars for multiplication, addition and their random-walk nulls, over two shaded horizontal bands"}}
order = ["add mod 7, real", "mul mod 7, real", "add mod 7, random walk",
         "mul mod 7, random walk"]
palette = dict(zip(order, ["#1f4e79", "#c0392b", "#9dbbd6", "#e6a9a2"]))
fig, axes = panels(len(MATRICES), height=2.6, sharey=True, sharex=True)
for i, (ax, matrix) in enumerate(zip(axes, MATRICES)):
    point_ci(blocks[blocks.matrix == matrix], x="layer", hue="series", value="rank", ax=ax,
             palette=palette, order=order)
    ax.axhspan(3, 4, color="#1f4e79", alpha=0.07, lw=0)
    ax.axhspan(4, 6, color="#c0392b", alpha=0.07, lw=0)
    ax.set(title=matrix, xlabel="layer" if i >= len(MATRICES) - 2 else "",
           xticks=range(cfg.model.n_layers), ylabel="$r_{90}$" if i % 2 == 0 else "")
handles, labels = axes[0].get_legend_handles_labels()
fig.suptitle("Effective rank per block (mean, 95% CI over seeds)\nshaded: the paper's 3–4 "
             "(addition) and 4–6 (multiplication)")
fig.tight_layout()
fig.legend(handles, labels, loc="upper center", ncol=2, bbox_to_anchor=(0.5, 0.0),
           frameon=False)
plt.show()

# %% tags=["remove-input"]
# the figure's data, as a download under it
figure_data(blocks[["arm", "source", "matrix", "layer", "seed", "rank"]]
            .sort_values(["arm", "source", "matrix", "layer", "seed"]), "fig-ch08-rank",
            what=f"one row per task, source (real trajectory or random-walk null), matrix, layer "
                 f"and seed; rank: r90 at variance fraction {THRESHOLD}")

# %% tags=["hide-input"]
per_seed = blocks.groupby(["arm", "seed", "matrix", "source"], as_index=False)["rank"].mean()
joint = dims[dims.group == "all"].assign(matrix="all attention")
table = pd.concat([per_seed, joint[per_seed.columns]])
table.groupby(["matrix", "arm", "source"])["rank"].apply(ci_text).unstack("source")

# %% [markdown]
# **Paired difference** (same seed, hence the same initial weights): multiplication minus
# addition, per matrix type (mean over layers) and for all attention weights jointly, with the
# same difference for the random-walk nulls as a control (their step norms come from the runs,
# so a difference in how far the runs move shows up there too).

# %% tags=["hide-input"]
wide = table.pivot_table(index=["seed", "matrix"], columns=["arm", "source"], values="rank")
diff = pd.DataFrame({
    "real: mul − add": wide[("mul mod 7", "real")] - wide[("add mod 7", "real")],
    "null: mul − add": (wide[("mul mod 7", "random walk")]
                        - wide[("add mod 7", "random walk")])}).reset_index()
diff_summary = diff.groupby("matrix")[["real: mul − add", "null: mul − add"]].agg(
    lambda v: ci_text(v, signed=True))
diff_summary.loc[MATRICES + ["all attention"]]

# %% [markdown]
# ## 4. Claims ledger rows
# **C13** (multiplication needs 4–6 dimensions against 3–4 for addition). The rule lives in
# `modadd.claims.ch08` (version 1): *supported* if the paired difference mul − add of the
# per-matrix $r_{90}$ (mean over all blocks, one value per seed) has a 95% CI above 0 and
# multiplication's mean lies in $[4, 6]$ with addition's in $[3, 4]$ (±0.5); *partly* if only
# the difference is positive; *not supported* otherwise. Its null is the same difference for the
# random-walk nulls (the runs' own step norms); the record also shows the joint $r_{90}$ of all
# attention weights as an alternative analysis.

# %% tags=["hide-input"]
tables = ch08.tables_from_dimensions(dims)
record = claims.evaluate("C13", tables, preset)
display(record)

# %% [markdown]
# ## Conclusion

# %% tags=["hide-input"]
display(conclusion(record))

# %% [markdown]
# ### Where we agree and disagree with the paper

# %% tags=["hide-input"]
composite = law[(law.task.str.startswith("mul mod 8")) & (law.m == 4)].iloc[0]
display(Markdown(ch08.summary(record, tables, composite, final, diff, S.learned)))
