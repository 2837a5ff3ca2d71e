"""Nanda et al.'s (2023) Fourier progress measures of ``a ∘ b mod p`` models, from stored weights.

A model that has grokked ``a + b mod p`` computes it by "Fourier multiplication": it embeds each
residue as points on circles at a few *key frequencies* ``k`` (``w_k = 2πk/p``), forms
``cos/sin(w_k(a+b))`` in its MLP and reads out logits ``≈ Σ_k α_k cos(w_k(a+b−c))``
(Nanda, Chan, Lieberum, Smith & Steinhardt 2023, "Progress measures for grokking via mechanistic
interpretability", arXiv 2301.05217, §4).  Knowing the algorithm makes its progress measurable
while test loss still says nothing (§5):

- per-frequency norms of the embedding ``W_E`` and of the neuron-logit map ``W_L = W_U W_out`` in
  the real Fourier basis of Z_p (:func:`fourier_basis`, :func:`frequency_norms`), their **Gini
  coefficients** (:func:`gini`: how concentrated on few frequencies the weights are) and the
  **key frequencies** (:func:`key_frequencies`, the rule is stated there);
- the **restricted loss** (only the key-frequency directions of the logits kept) and the
  **excluded loss** (exactly those directions removed, on the training pairs):
  :func:`restrict_logits`, :func:`exclude_logits`; the definition is stated there;
- the sum of squared weights, and the train and test losses on the full splits;
- the three phases (memorisation, circuit formation, cleanup) by a stated rule
  (:func:`phase_boundaries`; the paper drew its boundaries by eye from the curves).

Everything is computed from a run's stored full-parameter snapshots (``store_full_params``):
:func:`progress_measures` never retrains.  The functions of logits take a ``[p, p, C]`` tensor
(``a`` major, ``C ≥ p`` classes, the residues first), so each can be checked on hand-built logits.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from .algorithmic import AlgorithmicTask
from .model import Transformer, build_model, model_device
from .runs import require_parameter_snapshots
from .validate import check_choice, check_float, is_int

ADDITIVE_OPS = ("+", "-")           # ops whose answer is a character-diagonal function of (a, b)
SPLITS = ("heldout", "train", "all")
SOURCES = ("embedding", "neuron-logit")


# ---- the Fourier basis of Z_p and per-frequency norms -------------------------------------------
def _check_p(p) -> None:
    if not is_int(p) or p < 3 or p % 2 == 0:
        raise ValueError(f"p: must be an odd integer >= 3 (the basis of an odd modulus is the "
                         f"constant and (p-1)/2 cos/sin pairs), got {p!r}")


def fourier_basis(p: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, list[str]]:
    """The real orthonormal Fourier basis of Z_p as rows of a ``[p, p]`` tensor, and their names.

    Row 0 is the constant ``1/√p`` ("const"); rows ``2k-1`` and ``2k`` (k = 1..(p-1)/2) are
    ``√(2/p) cos(2πka/p)`` and ``√(2/p) sin(2πka/p)`` ("cos k", "sin k").  Frequency ``k`` and
    ``p − k`` are one real frequency (a cos/sin pair), so an odd ``p`` has exactly these rows.
    Computed in float64 and then cast, so a float32 basis is orthonormal to float32 rounding.
    """
    _check_p(p)
    a = torch.arange(p, dtype=torch.float64)
    rows, names = [torch.full((p,), 1.0 / math.sqrt(p), dtype=torch.float64)], ["const"]
    for k in range(1, (p - 1) // 2 + 1):
        angle = 2 * math.pi * k * a / p
        rows += [math.sqrt(2.0 / p) * torch.cos(angle), math.sqrt(2.0 / p) * torch.sin(angle)]
        names += [f"cos {k}", f"sin {k}"]
    return torch.stack(rows).to(dtype), names


def frequency_norms(matrix) -> np.ndarray:
    """Per-frequency norms ``[(p+1)/2]`` of a matrix whose ``p`` rows are indexed by residues.

    The rows are expanded in :func:`fourier_basis` (``F @ matrix``); entry ``k ≥ 1`` is the norm
    of the cos k and sin k coefficient rows together, ``√(‖c_k‖² + ‖s_k‖²)`` (phase-invariant:
    a shift of the residues rotates the pair), entry 0 the norm of the constant row.  The basis is
    orthonormal, so the squares sum to ``‖matrix‖_F²``.
    """
    m = matrix if torch.is_tensor(matrix) else torch.as_tensor(np.asarray(matrix, dtype=float))
    m = m.detach().to(torch.float64).cpu()
    m = m[:, None] if m.dim() == 1 else m
    if m.dim() != 2:
        raise ValueError(f"matrix: must be [p] or [p, m], got shape {tuple(m.shape)}")
    basis, _ = fourier_basis(m.shape[0])
    sq = ((basis @ m) ** 2).sum(dim=1)
    per_frequency = torch.cat([sq[:1], sq[1::2] + sq[2::2]])
    return per_frequency.sqrt().numpy()


def embedding_norms(model: Transformer, p: int) -> np.ndarray:
    """:func:`frequency_norms` of the embedding of the residue tokens ``0..p-1`` (``[p, d]``)."""
    weight = model.embed.weight
    if weight.shape[0] < p:
        raise ValueError(f"p: the embedding has {weight.shape[0]} rows, fewer than p={p}")
    return frequency_norms(weight[:p])


def neuron_logit_map(model: Transformer, p: int) -> torch.Tensor:
    """``W_L = W_U W_out`` restricted to the residue outputs: ``[p, d_mlp]`` float64, the map from
    the last block's MLP neurons to the residue logits (Nanda et al. §4.2).

    It is the exact neuron→logit map of a model without a final LayerNorm (the ``nanda`` preset's;
    with one, the LayerNorm's scaling sits between and ``W_L`` describes its direction only) and
    leaves out the head's bias, which is constant in the inputs."""
    if model.cfg.attention_only:
        raise ValueError("model: the neuron-logit map needs an MLP (attention_only=False), "
                         "got attention_only=True")
    if model.head.weight.shape[0] < p:
        raise ValueError(f"p: the head has {model.head.weight.shape[0]} outputs, fewer than p={p}")
    w_out = model.blocks[-1].mlp[2].weight                   # [d_model, d_mlp]
    return (model.head.weight[:p] @ w_out).detach().to(torch.float64)


def neuron_logit_norms(model: Transformer, p: int) -> np.ndarray:
    """:func:`frequency_norms` of :func:`neuron_logit_map` over the output-residue dimension."""
    return frequency_norms(neuron_logit_map(model, p))


def key_frequencies(norms, factor: float = 2.0) -> list[int]:
    """The key frequencies of per-frequency ``norms`` (:func:`frequency_norms`, entry 0 the
    constant): every ``k ≥ 1`` whose squared norm exceeds ``factor`` times the mean squared norm
    of the frequencies ``1..(p-1)/2`` (its share of the total exceeds ``factor`` times a fair
    share ``2/(p-1)``).

    Why this rule: a spectrum that is not sparse has no key frequencies — a random ``p × d``
    embedding puts a squared norm of about the mean on every frequency, with relative spread
    ``≈ 1/√d`` (9% at d = 128), so none reaches twice the mean; a spectrum concentrated on ``m``
    frequencies gives each about ``1/m`` of the total, far above ``2/(p-1)`` when ``m ≪ p/4``.
    Unlike "the smallest set holding 90%", it does not add noise frequencies to reach a quota
    when the key ones hold a little less, and it needs no count.  Limits: at most
    ``(p-1)/(2·factor)`` frequencies can be key, and the constant is never one.  Nanda et al.
    read their key frequencies off the final model's ``W_E``/``W_L`` spectra (§4.1); as they
    do, :func:`progress_measures` applies the rule to the final snapshot."""
    check_float("factor", factor, 1.0)
    sq = np.asarray(norms, dtype=float)[1:] ** 2
    if sq.size == 0 or not np.isfinite(sq).all():
        raise ValueError(f"norms: must hold the constant and at least one finite frequency "
                         f"norm, got {np.asarray(norms)!r}")
    if sq.sum() == 0:
        return []
    return [int(k) for k in np.flatnonzero(sq > factor * sq.mean()) + 1]


def gini(values) -> float:
    """Gini coefficient ``Σ_i Σ_j |x_i − x_j| / (2 n Σ x)`` of non-negative ``values``: 0 when
    all are equal, ``(n−1)/n`` when one holds everything (0 for an all-zero vector).  Nanda et
    al. (§5.1) take it of the Fourier-component norms of ``W_E`` and ``W_L``; here of the
    per-frequency norms ``1..(p-1)/2`` (the constant left out, as it carries no frequency)."""
    x = np.sort(np.asarray(values, dtype=float).ravel())
    if x.size == 0 or not np.isfinite(x).all() or (x < 0).any():
        raise ValueError(f"values: must be a non-empty array of finite numbers >= 0, got {x!r}")
    total, n = x.sum(), x.size
    if total == 0:
        return 0.0
    # the sorted form of the pairwise sum: Σ_i (2i − n − 1) x_(i), i = 1..n
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * total))


# ---- logits over every pair, restricted and excluded logits -------------------------------------
def all_logits(model: Transformer, task: AlgorithmicTask, chunk: int = 4096) -> torch.Tensor:
    """The model's readout logits on every pair, ``[p, p, n_classes]`` float64 (``a`` major, the
    order of ``task.pairs()``, so a flat index is a split index), in eval mode without grad."""
    if not isinstance(task, AlgorithmicTask) or task.op == "/":
        raise ValueError(f"task: needs an a∘b mod p task defined on all p² pairs (op '+', '-' "
                         f"or '*'), got {getattr(task, 'op', type(task).__name__)!r}")
    tokens = task.tokens(task.pairs()).to(model_device(model))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(tokens[i:i + chunk]) for i in range(0, len(tokens), chunk)])
    model.train(was_training)
    return logits.to(torch.float64).cpu().view(task.p, task.p, -1)


def _answer_index(p: int, op: str) -> torch.Tensor:
    """``[p²]`` long: ``(a ± b) mod p`` per pair, ``a`` major: the answer, and the variable the
    key directions ``cos/sin(w_k(a ± b))`` depend on."""
    if op not in ADDITIVE_OPS:
        raise ValueError(f"op: the Fourier progress measures need '+' or '-' (the Fourier basis "
                         f"of Z_p diagonalises addition; '*' and '/' would need the "
                         f"multiplicative group's), got {op!r}")
    a, b = torch.arange(p)[:, None], torch.arange(p)[None, :]
    return ((a + b if op == "+" else a - b) % p).reshape(-1)


def _check_keys(keys: Sequence[int], p: int) -> None:
    top = (p - 1) // 2
    keys = list(keys)
    bad = [k for k in keys if not isinstance(k, (int, np.integer)) or isinstance(k, bool)
           or not 1 <= k <= top]
    if bad or len(set(keys)) != len(keys):
        raise ValueError(f"keys: must be distinct integer frequencies in 1..{top} (p={p}), "
                         f"got {keys}")


def _check_logits(logits: torch.Tensor, keys: Optional[Sequence[int]] = None) -> int:
    if not torch.is_tensor(logits) or logits.dim() != 3 or logits.shape[0] != logits.shape[1] \
            or logits.shape[2] < logits.shape[0]:
        shape = tuple(logits.shape) if torch.is_tensor(logits) else type(logits).__name__
        raise ValueError(f"logits: must be a [p, p, C] tensor with C >= p, got {shape}")
    p = logits.shape[0]
    _check_p(p)
    if keys is not None:
        _check_keys(keys, p)
    return p


def _project(logits: torch.Tensor, keys: Sequence[int], op: str, constant: bool) -> torch.Tensor:
    """For each residue class ``c``, the orthogonal projection of ``logits[:, :, c]`` (a vector
    over the ``p²`` pairs) onto the directions ``cos/sin(w_k(a ± b))``, k in ``keys`` (and the
    constant).  Those directions are functions of ``s = a ± b`` alone, and every ``s`` is the
    answer of exactly ``p`` pairs, so the projection is the basis projection of the fibre means
    ``M[s, c]`` (the mean logit of class ``c`` over the pairs whose answer is ``s``), read back at
    each pair's ``s``."""
    p = logits.shape[0]
    s = _answer_index(p, op)
    flat = logits[..., :p].to(torch.float64).reshape(p * p, p)
    fibre_means = torch.zeros(p, p, dtype=torch.float64).index_add_(0, s, flat) / p
    basis, _ = fourier_basis(p)
    rows = ([0] if constant else []) + [r for k in keys for r in (2 * int(k) - 1, 2 * int(k))]
    kept = basis[rows]
    return (kept.T @ (kept @ fibre_means))[s].view(p, p, p)


def restrict_logits(logits: torch.Tensor, keys: Sequence[int], op: str = "+") -> torch.Tensor:
    """The logits with only the key-frequency directions kept (float64, same shape).

    Definition (Nanda et al. 2023, §4.4 and §5.1; their analysis ablates these directions in
    the MLP neurons' activations, which the logits are linear in through ``W_L``): for every residue class ``c``, the
    function ``(a, b) ↦ logits[a, b, c]`` is projected onto the span of the constant and of
    ``cos(w_k(a+b))``, ``sin(w_k(a+b))`` for the key frequencies ``k`` (``1 + 2K`` directions of
    the ``p²`` inputs).  This span holds every ``cos(w_k(a+b−c)) = cos(w_k(a+b)) cos(w_k c) +
    sin(w_k(a+b)) sin(w_k c)``, the algorithm's output, so a model that computes only that keeps
    its logits.  It is narrower than the outer product of 1D key-frequency masks over ``a`` and
    ``b``, which would also keep the cross terms ``cos(w_i a) cos(w_j b)`` the algorithm never
    uses.  Done on the logits rather than the neurons, it applies to any model; on the neuron
    path the two coincide, and a direct path ``f(a) + g(b)`` has no component along these
    directions.  Classes beyond the ``p`` residues (the ``=`` token of a whole-vocabulary
    readout) are kept unchanged: they stay in the softmax, as in the model's own loss.  With
    ``op="-"`` the directions are those of ``a − b``.
    """
    p = _check_logits(logits, keys)
    out = logits.to(torch.float64).clone()
    out[..., :p] = _project(logits, keys, op, constant=True)
    return out


def exclude_logits(logits: torch.Tensor, keys: Sequence[int], op: str = "+") -> torch.Tensor:
    """The logits with exactly the key directions of :func:`restrict_logits` removed (the
    constant kept): what is left of the model's fit without its Fourier circuit.  A memorised
    fit is spread over all directions and survives the removal; the circuit's does not."""
    p = _check_logits(logits, keys)
    out = logits.to(torch.float64).clone()
    out[..., :p] -= _project(logits, keys, op, constant=False)
    return out


def logit_loss(logits: torch.Tensor, op: str = "+", index=None) -> float:
    """Mean cross-entropy (float64, over all ``C`` classes) of ``[p, p, C]`` logits against the
    answers ``(a ± b) mod p``, over the flat pair indices ``index`` (a split of
    ``AlgorithmicTask.split()``; default every pair)."""
    p = _check_logits(logits)
    flat, labels = logits.to(torch.float64).reshape(p * p, -1), _answer_index(p, op)
    if index is not None:
        index = torch.as_tensor(np.asarray(index), dtype=torch.long)
        flat, labels = flat[index], labels[index]
    return float(F.cross_entropy(flat, labels))


def restricted_loss(logits: torch.Tensor, keys: Sequence[int], op: str = "+",
                    index=None) -> float:
    """:func:`logit_loss` of :func:`restrict_logits`."""
    return logit_loss(restrict_logits(logits, keys, op), op, index)


def excluded_loss(logits: torch.Tensor, keys: Sequence[int], op: str = "+",
                  index=None) -> float:
    """:func:`logit_loss` of :func:`exclude_logits` (Nanda et al. evaluate it on the training
    pairs: how much of the training fit the key frequencies carry)."""
    return logit_loss(exclude_logits(logits, keys, op), op, index)


# ---- one model, a run's snapshots ---------------------------------------------------------------
def model_measures(model: Transformer, task: AlgorithmicTask, keys: Sequence[int],
                   restricted_split: str = "heldout") -> dict[str, float]:
    """The progress measures of one model: train and test loss (the full splits), the restricted
    loss (on ``restricted_split``: "heldout" by default, where the circuit alone is compared with
    the test loss; "train" or "all"), the excluded loss (training pairs), the Gini coefficients
    of the ``W_E`` and (with an MLP) ``W_L`` frequency norms and the sum of squares of every
    parameter (Nanda et al.'s weight norm)."""
    check_choice("restricted_split", restricted_split, SPLITS)
    train, heldout = task.split()
    logits = all_logits(model, task)
    restricted_on = {"heldout": heldout, "train": train, "all": None}[restricted_split]
    out = {"train loss": logit_loss(logits, task.op, train),
           "test loss": logit_loss(logits, task.op, heldout),
           "restricted loss": restricted_loss(logits, keys, task.op, restricted_on),
           "excluded loss": excluded_loss(logits, keys, task.op, train),
           "Gini W_E": gini(embedding_norms(model, task.p)[1:])}
    if not model.cfg.attention_only:
        out["Gini W_L"] = gini(neuron_logit_norms(model, task.p)[1:])
    out["sum of squared weights"] = model.weight_sq()
    return out


def progress_measures(run, keys: Optional[Sequence[int]] = None,
                      source: str = "embedding", factor: float = 2.0,
                      restricted_split: str = "heldout",
                      steps: Optional[Sequence[int]] = None) -> pd.DataFrame:
    """Tidy ``(step, measure, value)`` table of :func:`model_measures` at every stored snapshot
    of ``run`` (or those at ``steps``), from its stored full parameters: nothing is retrained.

    The key frequencies are ``keys`` or, by default, :func:`key_frequencies` (with
    ``factor``) of the final snapshot's ``source`` spectrum ("embedding": ``W_E``;
    "neuron-logit": ``W_L``), one set for every step as in Nanda et al.; the table's
    ``attrs["key_frequencies"]`` holds it.  Models are evaluated in float64.  Raises ValueError
    for a run that stored no full-parameter snapshots (``store_full_params=False``) or is not
    an ``a ± b mod p`` task; a run whose weights are not in this cache raises
    :class:`~modadd.durable.CacheMiss` (load it with ``load_or_train(cfg, trajectories=True)``).
    """
    require_parameter_snapshots(run, "progress measures")
    cfg = run.config
    _answer_index(cfg.task.p, cfg.task.op)                # '+' or '-' only, before any work
    check_choice("source", source, SOURCES)
    check_choice("restricted_split", restricted_split, SPLITS)
    params, all_steps = run.params, np.asarray(run.snapshot_steps)
    model = build_model(cfg.model, cfg.task, seed=0).to(torch.float64)  # weights overwritten
    if keys is None:
        model.load_flat_parameters(np.array(params[-1]))
        spectrum = embedding_norms if source == "embedding" else neuron_logit_norms
        keys = key_frequencies(spectrum(model, cfg.task.p), factor)
    _check_keys(keys, cfg.task.p)
    wanted = all_steps if steps is None else np.asarray(steps)
    missing = sorted(set(wanted.tolist()) - set(all_steps.tolist()))
    if missing:
        raise ValueError(f"steps: must be stored snapshot steps of run {run.key} (every "
                         f"{cfg.train.snapshot_every}, up to {run.last_step}), got {missing}")
    rows = []
    for step in wanted:
        index = int(np.flatnonzero(all_steps == step)[0])
        model.load_flat_parameters(np.array(params[index]))
        rows += [{"step": int(step), "measure": name, "value": value}
                 for name, value in model_measures(model, cfg.task, keys,
                                                   restricted_split).items()]
    table = pd.DataFrame(rows, columns=["step", "measure", "value"])
    table.attrs["key_frequencies"] = [int(k) for k in keys]
    return table


# ---- phases -------------------------------------------------------------------------------------
PHASES = ("memorisation", "circuit formation", "cleanup")


def phase_boundaries(table: pd.DataFrame, fit_loss: float = 1e-2, drop: float = 0.5,
                     rise: float = 10.0, test_loss: float = 1e-2) -> dict[str, Optional[int]]:
    """Phase boundaries of one run's progress measures (a tidy :func:`progress_measures` table;
    it needs "train loss", "test loss" and "excluded loss") by this rule, in order:

    1. ``train fit``: the first step with train loss < ``fit_loss`` (default 1e-2, the study's
       "train loss < 1e-2" milestone of :data:`modadd.grokking.MILESTONES`).
    2. ``cleanup start``: the first step from ``train fit`` on at which the test loss is at most
       ``drop`` (½) times its highest value since ``train fit``: the sudden fall of test loss
       that opens cleanup (§5.2).
    3. ``cleanup end``: the first step from ``cleanup start`` on with test loss < ``test_loss``
       (1e-2, the "test loss < 1e-2" milestone).
    4. ``memorisation end``: the step of the lowest excluded loss up to ``cleanup start`` (up to
       the last step if there is none), provided the excluded loss later rises to at least
       ``rise`` (10) times that minimum and to at least ``fit_loss`` (without the key
       frequencies the training set is no longer fit; this keeps float noise on a tiny minimum
       from counting): memorisation lowers train and excluded loss together, circuit formation
       raises the excluded loss while train loss stays low (§5.2).  Without such a rise (no
       circuit, e.g. no weight decay) it is None; the cleanup boundaries, read off the test
       loss, do not depend on it.

    Phases: memorisation up to ``memorisation end``, circuit formation up to ``cleanup start``,
    cleanup up to ``cleanup end``.  A boundary never reached is None, and so are those that the
    rule places after it (no ``train fit``: all; no ``cleanup start``: ``cleanup end``).  Nanda
    et al. drew theirs by eye at the curves' inflections; the thresholds here make the
    boundaries reproducible, at the resolution of the snapshots.  On a flat excluded-loss
    minimum ``memorisation end`` can fall anywhere on the flat part.
    """
    for name, value in (("fit_loss", fit_loss), ("test_loss", test_loss)):
        check_float(name, value, 0.0, low_open=True)
    check_float("drop", drop, 0.0, 1.0, low_open=True, high_open=True)
    check_float("rise", rise, 1.0, low_open=True)
    wide = table.pivot_table(index="step", columns="measure", values="value").sort_index()
    needed = [m for m in ("train loss", "test loss", "excluded loss") if m not in wide]
    if needed:
        raise ValueError(f"table: needs the measures {needed}, got {sorted(wide.columns)}")
    steps = wide.index.to_numpy()
    train, test = wide["train loss"].to_numpy(), wide["test loss"].to_numpy()
    excluded = wide["excluded loss"].to_numpy()
    out: dict[str, Optional[int]] = dict.fromkeys(
        ("train fit", "memorisation end", "cleanup start", "cleanup end"))
    fit = np.flatnonzero(train < fit_loss)
    if fit.size == 0:
        return out
    i_fit = int(fit[0])
    out["train fit"] = int(steps[i_fit])
    peak = np.maximum.accumulate(test[i_fit:])
    falling = np.flatnonzero(test[i_fit:] <= drop * peak)
    i_clean = None if falling.size == 0 else i_fit + int(falling[0])
    if i_clean is not None:
        out["cleanup start"] = int(steps[i_clean])
        done = np.flatnonzero(test[i_clean:] < test_loss)
        out["cleanup end"] = None if done.size == 0 else int(steps[i_clean + int(done[0])])
    last = len(steps) - 1 if i_clean is None else i_clean
    i_min = int(np.argmin(excluded[:last + 1]))
    if excluded[i_min:].max() >= max(rise * excluded[i_min], fit_loss):
        out["memorisation end"] = int(steps[i_min])
    return out


def phase_table(table: pd.DataFrame, boundaries: dict[str, Optional[int]]) -> pd.DataFrame:
    """Every measure at the start and end of each phase whose both ends are known: rows
    ``phase, start, end, measure, at start, at end`` — e.g. to check that the excluded loss rises
    and the restricted loss falls over circuit formation, as Nanda et al. report."""
    wide = table.pivot_table(index="step", columns="measure", values="value").sort_index()
    edges = [int(wide.index[0]), boundaries.get("memorisation end"),
             boundaries.get("cleanup start"), boundaries.get("cleanup end")]
    rows = []
    for phase, start, end in zip(PHASES, edges[:-1], edges[1:]):
        if start is None or end is None:
            continue
        for measure in wide.columns:
            rows.append({"phase": phase, "start": start, "end": end, "measure": measure,
                         "at start": float(wide.at[start, measure]),
                         "at end": float(wide.at[end, measure])})
    return pd.DataFrame(rows, columns=["phase", "start", "end", "measure", "at start", "at end"])
