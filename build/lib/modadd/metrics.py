"""Measurements: trajectory geometry (PCA spectra, effective dimension, subspaces, random-walk
nulls; numpy) and attention structure (entropy, concentration, routing, top-k ablation; torch).

Pure functions of arrays.  A trajectory is ``X [n_snapshots, D]``, one flattened
parameter block per row, usually ``W_t - W_0``.  Everything spectral goes through the
``n x n`` Gram matrix ``X X^T`` (never the ``D x D`` covariance): with ``n`` ~ 10^2 snapshots and
``D`` up to ~3 * 10^5 attention parameters this is exact and cheap, and Gram matrices of
concatenated blocks are sums of the blocks' Gram matrices.

Conventions
-----------
- Spectra are explained-variance ratios of the trajectory *centred over time* (the paper's
  eq. 1), sorted descending, length ``n``.
- Subspace bases are ``[k, D]`` arrays with orthonormal rows.
- Angles are in radians, ascending.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

_EPS = 1e-12


def trajectory_matrix(snapshots: np.ndarray) -> np.ndarray:
    """Displacements from the first snapshot, flattened: ``[n, ...] -> [n, D]`` float64."""
    flat = np.asarray(snapshots, dtype=np.float64).reshape(len(snapshots), -1)
    return flat - flat[0]


def gram(X: np.ndarray) -> np.ndarray:
    """Uncentred Gram matrix ``X X^T``: ``[n, D] -> [n, n]`` float64."""
    X = np.asarray(X, dtype=np.float64)
    return X @ X.T


def center_gram(G: np.ndarray) -> np.ndarray:
    """Gram matrix of the rows centred over time, ``J G J`` with ``J = I - 11^T / n``."""
    G = np.asarray(G, dtype=np.float64)
    row = G.mean(axis=0, keepdims=True)
    return G - row - row.T + G.mean()


def _eigh_desc(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values, vectors = np.linalg.eigh((G + G.T) / 2)
    order = np.argsort(values)[::-1]
    return np.clip(values[order], 0.0, None), vectors[:, order]


def spectrum_from_gram(G: np.ndarray, center: bool = True) -> np.ndarray:
    """Explained-variance ratios ``[n]`` (descending, summing to 1) from a Gram matrix."""
    values, _ = _eigh_desc(center_gram(G) if center else G)
    total = values.sum()
    if total <= 0:
        raise ValueError("trajectory: has zero variance (all snapshots identical)")
    return values / total


def pca_spectrum(X: np.ndarray, center: bool = True) -> np.ndarray:
    """Explained-variance ratios ``[n]`` of the rows of ``X [n, D]``, via the Gram matrix."""
    return spectrum_from_gram(gram(X), center=center)


def rank_at(ratios: np.ndarray, threshold: float = 0.9) -> int:
    """Smallest k whose first k ratios sum to at least ``threshold`` (no cap)."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold: must be in (0, 1], got {threshold!r}")
    cumulative = np.cumsum(ratios)
    return int(np.searchsorted(cumulative, threshold - 1e-9) + 1)


def r90(X: np.ndarray, threshold: float = 0.9) -> int:
    """The paper's effective rank: components needed for ``threshold`` of the variance."""
    return rank_at(pca_spectrum(X), threshold)


def participation_ratio(ratios: np.ndarray) -> float:
    """Threshold-free dimension ``(sum l)^2 / sum l^2`` of a spectrum (1 for a line)."""
    ratios = np.asarray(ratios, dtype=np.float64)
    return float(ratios.sum() ** 2 / np.sum(ratios ** 2))


def top_subspace(X: np.ndarray, k: int, center: bool = True) -> np.ndarray:
    """Orthonormal basis ``[k, D]`` of the top-k principal directions of the rows of ``X``."""
    X = np.asarray(X, dtype=np.float64)
    if center:
        X = X - X.mean(axis=0)
    if not 1 <= k <= min(X.shape):
        raise ValueError(f"k: must be in [1, {min(X.shape)}], got {k}")
    values, vectors = _eigh_desc(X @ X.T)
    if values[k - 1] <= _EPS * max(values[0], _EPS):
        raise ValueError(f"k: the trajectory spans fewer than {k} directions")
    basis = (vectors[:, :k].T @ X) / np.sqrt(values[:k])[:, None]
    # one Gram-Schmidt pass removes the round-off the division leaves
    q, _ = np.linalg.qr(basis.T)
    return (q * np.sign(np.sum(q * basis.T, axis=0))).T


def _check_basis(name: str, basis: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    basis = np.atleast_2d(np.asarray(basis, dtype=np.float64))
    error = np.abs(basis @ basis.T - np.eye(len(basis))).max()
    if error > tol:
        raise ValueError(f"{name}: rows must be orthonormal (max |B B^T - I| = {error:.2g})")
    return basis


def principal_angles(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Principal angles (radians, ascending) between the row spaces of bases ``[k1, D]``,
    ``[k2, D]``; ``min(k1, k2)`` of them."""
    A, B = _check_basis("A", A), _check_basis("B", B)
    if A.shape[1] != B.shape[1]:
        raise ValueError(f"B: must live in the same dimension as A ({A.shape[1]}), "
                         f"got {B.shape[1]}")
    cosines = np.linalg.svd(A @ B.T, compute_uv=False)
    return np.sort(np.arccos(np.clip(cosines, 0.0, 1.0)))


def subspace_distance(A: np.ndarray, B: np.ndarray) -> float:
    """Normalised projection distance ``sqrt(mean sin^2 theta)`` in [0, 1]: 0 for the same
    subspace, 1 for orthogonal ones; for equal dimensions ``||P_A - P_B||_F / sqrt(2k)``."""
    return float(np.sqrt(np.mean(np.sin(principal_angles(A, B)) ** 2)))


def distance_to_subspace(X: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """Fraction ``||x - P x|| / ||x||`` of each row outside the row space of ``basis``: ``[n]``
    (NaN for zero rows, e.g. ``W_0 - W_0``)."""
    X = np.asarray(X, dtype=np.float64)
    basis = _check_basis("basis", basis)
    inside = (X @ basis.T) @ basis
    norms = np.linalg.norm(X, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, np.linalg.norm(X - inside, axis=1) / norms, np.nan)


def outside_fraction_from_gram(G: np.ndarray, k: int) -> np.ndarray:
    """``distance_to_subspace`` of each row onto the top-k *uncentred* singular subspace of the
    whole trajectory, from its Gram matrix alone: ``[n]`` (NaN for zero rows)."""
    values, vectors = _eigh_desc(G)
    captured = (vectors[:, :k] ** 2) @ values[:k]
    norms2 = np.clip(np.diag(G), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        outside = np.clip(1.0 - captured / norms2, 0.0, 1.0)
        return np.where(norms2 > _EPS * max(norms2.max(), _EPS), np.sqrt(outside), np.nan)


def outside_fraction_against(G: np.ndarray, k: int, basis: np.ndarray) -> np.ndarray:
    """``distance_to_subspace`` of *every* row onto the top-k uncentred singular subspace of the
    rows ``basis`` (a boolean mask or indices) only, from the Gram matrix ``G [n, n]`` of all
    rows: ``[n]`` (NaN for zero rows).  With the subspace of rows ``B`` (``X_B = U S V^T``),
    ``V_k^T x_t = S_k^{-1} U_k^T G[B, t]``, so rows outside ``B`` (a denser snapshot grid) are
    measured against the subspace the coarser grid defines; ``basis`` = every row gives
    :func:`outside_fraction_from_gram`."""
    G = np.asarray(G, dtype=np.float64)
    rows = np.arange(len(G))[basis]
    if len(rows) == 0:
        raise ValueError("basis: selects no rows")
    if not 1 <= k <= len(rows):
        raise ValueError(f"k: must be in [1, {len(rows)}] (rows in basis), got {k!r}")
    values, vectors = _eigh_desc(G[np.ix_(rows, rows)])
    keep = values[:k] > _EPS * max(values[0], _EPS)
    coords = vectors[:, :k][:, keep].T @ G[rows]                # [k', n]
    captured = (coords ** 2 / values[:k][keep, None]).sum(axis=0)
    norms2 = np.clip(np.diag(G), 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        outside = np.clip(1.0 - captured / norms2, 0.0, 1.0)
        return np.where(norms2 > _EPS * max(norms2.max(), _EPS), np.sqrt(outside), np.nan)


def random_angle_baseline(k: int, dim: int, draws: int,
                          rng: np.random.Generator) -> np.ndarray:
    """``subspace_distance`` between pairs of uniformly random k-dim subspaces of R^dim:
    ``[draws]``."""
    out = np.empty(draws)
    for i in range(draws):
        a = np.linalg.qr(rng.standard_normal((dim, k)))[0].T
        b = np.linalg.qr(rng.standard_normal((dim, k)))[0].T
        out[i] = subspace_distance(a, b)
    return out


# ---------------------------------------------------------------- trajectories from increments

def increments_from_gram(G: np.ndarray) -> np.ndarray:
    """Gram matrix ``[n-1, n-1]`` of the increments ``x_{i+1} - x_i`` of a trajectory whose
    Gram matrix is ``G [n, n]``."""
    D = np.diff(np.eye(len(G)), axis=0)         # [n-1, n]: row i = e_{i+1} - e_i
    return D @ G @ D.T


def walk_gram(increment_gram: np.ndarray, start_at_zero: bool = True) -> np.ndarray:
    """Gram matrix ``[n, n]`` of the walk ``x_0 = 0, x_i = sum_{j<i} dx_j`` built from
    increments whose Gram matrix is ``increment_gram [n-1, n-1]``."""
    steps = len(increment_gram)
    C = np.tril(np.ones((steps, steps)))
    if start_at_zero:
        C = np.vstack([np.zeros(steps), C])
    return C @ increment_gram @ C.T


def gaussian_increment_gram(norms: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Gram matrix of ``len(norms)`` isotropic Gaussian directions in R^dim rescaled to the
    given norms, drawn exactly without forming dim-dimensional vectors (Bartlett: the Gram of
    ``n`` standard Gaussian vectors in R^dim is ``L L^T`` with ``L`` lower-triangular,
    ``L_ii ~ chi(dim - i)``, ``L_ij ~ N(0, 1)``)."""
    norms = np.asarray(norms, dtype=np.float64)
    n = len(norms)
    if dim < 1:
        raise ValueError(f"dim: must be >= 1, got {dim}")
    if dim < n:                                  # low dimension: draw the vectors themselves
        L = rng.standard_normal((n, dim))
    else:
        L = np.tril(rng.standard_normal((n, n)), -1)
        L[np.diag_indices(n)] = np.sqrt(rng.chisquare(dim - np.arange(n)))
    L *= (norms / np.linalg.norm(L, axis=1))[:, None]
    return L @ L.T


def random_walk_gram(norms: np.ndarray, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Null (a): Gram ``[n+1, n+1]`` of a random walk from 0 with isotropic Gaussian steps in
    R^dim whose norms match ``norms [n]`` (the real trajectory's per-interval increments)."""
    return walk_gram(gaussian_increment_gram(norms, dim, rng))


def shuffled_walk_gram(increment_gram: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Null (b): Gram of the walk made of the real increments in a random order.  Keeps every
    increment and all their mutual inner products; destroys only their temporal order."""
    order = rng.permutation(len(increment_gram))
    return walk_gram(increment_gram[np.ix_(order, order)])


def random_walk_law(n_components: int) -> np.ndarray:
    """Asymptotic PCA ratios of a high-dimensional random walk, ``6 / (pi^2 k^2)``, k = 1..K."""
    k = np.arange(1, n_components + 1)
    return 6.0 / (np.pi ** 2 * k ** 2)


# ------------------------------------------------------------------------- windows

def window_ranks(G: np.ndarray, windows: list[tuple[int, int]], threshold: float = 0.9,
                 min_variance: float = 0.0) -> np.ndarray:
    """r at ``threshold`` of the snapshots ``[a, b)`` for each window: ``[len(windows)]`` float
    (NaN where the window's total variance is at most ``min_variance``)."""
    out = np.full(len(windows), np.nan)
    for i, (a, b) in enumerate(windows):
        block = center_gram(G[a:b, a:b])
        if np.trace(block) > min_variance:
            out[i] = rank_at(spectrum_from_gram(block, center=False), threshold)
    return out


def lock_in_index(outside: np.ndarray, level: float) -> Optional[int]:
    """First index from which ``outside`` stays at or below ``level`` to the end (NaNs at the
    start are skipped); None if the last value is above ``level``."""
    above = np.flatnonzero(~(np.nan_to_num(outside, nan=0.0) <= level))
    if len(above) == 0:
        return 0
    last = int(above[-1])
    return None if last == len(outside) - 1 else last + 1


# ------------------------------------------------------------------------ attention (torch)
# Attention probabilities are ``[B, H, T, T]`` tensors (query, key) from
# ``Transformer.run_with_cache``; the readout query is the last row unless ``query`` says otherwise.

POSITION_CLASSES = ("distractor", "marker", "value", "query")


def attention_entropy(attn, query: int = -1, normalize: bool = False):
    """Entropy (nats) of query row ``query``: ``[B, H]``.  ``normalize`` divides by the entropy
    of uniform causal attention from that row, ``log(number of visible keys)``."""
    row = attn[:, :, query]
    entropy = -(row * torch.log(row.clamp_min(1e-30))).sum(dim=-1)
    if normalize:
        visible = (query % attn.shape[-1]) + 1
        entropy = entropy / math.log(visible) if visible > 1 else torch.zeros_like(entropy)
    return entropy


def top_k_mass(attn, k: int, query: int = -1):
    """Attention mass on the ``k`` largest weights of row ``query``: ``[B, H]`` in (0, 1]."""
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    row = attn[:, :, query]
    return row.topk(min(k, row.shape[-1]), dim=-1).values.sum(dim=-1)


def position_classes(marker_positions, seq_len: int, query_token: bool = False):
    """Class of every position, ``[B, seq_len]`` long, indexing ``POSITION_CLASSES``: markers at
    ``marker_positions [B, max m]`` (-1 padded), values right after them, the appended query
    token last (if ``query_token``), distractors elsewhere."""
    batch = marker_positions.shape[0]
    classes = torch.zeros(batch, seq_len, dtype=torch.long)
    valid = marker_positions >= 0
    rows = torch.arange(batch)[:, None].expand_as(marker_positions)
    classes[rows[valid], marker_positions[valid]] = 1
    classes[rows[valid], marker_positions[valid] + 1] = 2
    if query_token:
        classes[:, -1] = 3
    return classes


def class_mass(attn, classes, query: int = -1):
    """Attention mass of row ``query`` on each position class: ``[B, H, len(POSITION_CLASSES)]``
    (rows sum to the row's total mass, 1 for softmax attention)."""
    row = attn[:, :, query]                                        # [B, H, T]
    onehot = torch.nn.functional.one_hot(classes, len(POSITION_CLASSES)).to(row.dtype)
    return torch.einsum("bht,btc->bhc", row, onehot)


def top_k_patterns(attn, k: int):
    """Every query row of ``attn`` cut to its ``k`` largest weights and renormalised:
    ``[B, H, T, T]``.  ``k >= T`` returns ``attn`` itself (so ablating with it is exact)."""
    if k < 1:
        raise ValueError(f"k: must be >= 1, got {k}")
    if k >= attn.shape[-1]:
        return attn
    values, index = attn.topk(k, dim=-1)
    kept = torch.zeros_like(attn).scatter_(-1, index, values)
    return kept / kept.sum(dim=-1, keepdim=True)


@torch.no_grad()
def top_k_ablation_logits(model, tokens, k: int):
    """Logits ``[B, C]`` of a second forward pass in which every layer's attention is fixed to
    the first pass's patterns cut to their top ``k`` per row (the original's protocol: patterns
    from the unablated pass, all layers at once)."""
    _, cache = model.run_with_cache(tokens)
    overrides = {layer: top_k_patterns(a, k) for layer, a in enumerate(cache["attn"])}
    return model.run_with_cache(tokens, attn_overrides=overrides, keep_cache=False)[0]


# ------------------------------------------------------------------------ transitions (numpy)

def transition_window(steps: np.ndarray, values: np.ndarray, low: float = 0.1,
                      high: float = 0.9) -> dict:
    """Timing of a drop in ``values`` from its first value to its minimum.

    With ``drop = values[0] - min(values)``: ``start``/``mid``/``end`` are the first steps at
    which the curve has fallen by ``low``/0.5/``high`` of the drop, ``width = end - start`` (the
    10-90% transition window by default), and ``rebound = (values[-1] - min) / drop`` (0: no
    rebound; 1: back to the start).  NaN everywhere if nothing drops."""
    steps, values = np.asarray(steps, float), np.asarray(values, float)
    drop = values[0] - np.nanmin(values)
    if not drop > 0:
        return dict(start=np.nan, mid=np.nan, end=np.nan, width=np.nan, rebound=np.nan,
                    drop=0.0)
    fallen = (values[0] - values) / drop

    def first(level):
        return float(steps[np.argmax(fallen >= level - 1e-12)])

    start, mid, end = first(low), first(0.5), first(high)
    return dict(start=start, mid=mid, end=end, width=end - start,
                rebound=float((values[-1] - np.nanmin(values)) / drop), drop=float(drop))


def pearson_ci(x: np.ndarray, y: np.ndarray, confidence: float = 0.95) -> tuple:
    """Pearson r with a Fisher-z confidence interval: ``(r, low, high, n)`` (NaN bounds if
    n < 4)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = len(x)
    if n < 3 or x.std() == 0 or y.std() == 0:
        return (np.nan, np.nan, np.nan, n)
    r = float(np.corrcoef(x, y)[0, 1])
    if n < 4:
        return (r, np.nan, np.nan, n)
    from scipy import stats
    z, half = np.arctanh(np.clip(r, -0.999999, 0.999999)), \
        stats.norm.ppf(0.5 + confidence / 2) / np.sqrt(n - 3)
    return (r, float(np.tanh(z - half)), float(np.tanh(z + half)), n)
