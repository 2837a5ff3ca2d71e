"""Dynamic mode decomposition of snapshot sequences: Hankel embedding, TSVD (projected) DMD and
reduced-rank-regression DMD, reconstruction errors and a spectral distance between runs.

Conventions: a trajectory is ``Y [d, T]``, **columns are time**.  ``hankel(Y, h)`` stacks ``h``
consecutive snapshots into one column.  ``Z`` and ``Zp`` hold matching columns ``z_t`` and
``z_{t+1}``; several trajectories are joined with :func:`data_matrices`, which never pairs the last
column of one trajectory with the first of the next.

Both estimators return a rank-``r`` linear map ``A = L @ R`` (``L [D, r]``, ``R [r, D]``) with
``z_{t+1} ≈ A z_t``; its non-zero eigenvalues are those of the ``r × r`` matrix ``R @ L`` and its
modes are ``L @ W`` for that matrix's eigenvectors ``W``.

- **TSVD DMD** (projected / POD-Galerkin DMD, what the "dmd_rrr" of the fingerprint fork computes):
  ``Z ≈ U_r Σ_r V_rᵀ``, ``Ã = U_rᵀ Zp V_r Σ_r⁻¹``, ``A = U_r Ã U_rᵀ``.  The subspace is chosen to
  explain ``Z``, not to predict ``Zp``.
- **RRR DMD** (reduced-rank regression, Kostic et al. 2022, as kooplearn's ``reduced_rank``):
  the rank-``r`` map minimising ``‖Zp − A Z‖_F² + n γ ‖A‖_F²``.  With ``A_γ = Zp Zᵀ (Z Zᵀ +
  n γ I)⁻¹`` (the ridge solution) it is ``A = Q_r Q_rᵀ A_γ``, ``Q_r`` the top-``r`` left singular
  vectors of ``[A_γ Z, √(n γ) A_γ]`` — the fitted values of the ridge problem written as least
  squares on the augmented data ``[Z, √(n γ) I]`` — i.e. the top eigenvectors of
  ``C_YX C_γ⁻¹ C_XY`` (``C_γ = C_X + γ I``).  With ``γ = 0`` it is the rank-``r`` map with the
  smallest one-step error ``‖Zp − A Z‖_F``.  (Before issue 25 a ridge > 0 took ``Q_r`` from
  ``A_γ Z`` alone: the eigenvectors of ``C_YX C_γ⁻¹ C_X C_γ⁻¹ C_XY``, not the estimator.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment


def hankel(Y: np.ndarray, n_delays: int) -> np.ndarray:
    """Time-delay embedding of ``Y [d, T]``: ``[n_delays * d, T - n_delays + 1]``, column ``t``
    is ``[y_t; y_{t+1}; …; y_{t+n_delays-1}]``."""
    Y = np.asarray(Y)
    if Y.ndim != 2:
        raise ValueError(f"Y: must be 2-D [d, T] (columns are time), got shape {Y.shape}")
    d, T = Y.shape
    if not 1 <= n_delays <= T:
        raise ValueError(f"n_delays: must be in 1..{T} (the number of snapshots), got {n_delays}")
    return np.concatenate([Y[:, i:T - n_delays + 1 + i] for i in range(n_delays)], axis=0)


def data_matrices(trajectories: Sequence[np.ndarray], n_delays: int = 1
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(Z, Zp)`` from one or more trajectories ``[d, T_i]`` (Hankel-embedded with
    ``n_delays``), joined column-wise with no pair crossing from one trajectory to the next."""
    if isinstance(trajectories, np.ndarray) and trajectories.ndim == 2:
        trajectories = [trajectories]
    Zs, Zps = [], []
    for i, Y in enumerate(trajectories):
        H = hankel(Y, n_delays)
        if H.shape[1] < 2:
            raise ValueError(f"trajectories[{i}]: needs at least n_delays + 1 = {n_delays + 1} "
                             f"snapshots, got {np.shape(Y)[1]}")
        Zs.append(H[:, :-1])
        Zps.append(H[:, 1:])
    if not Zs:
        raise ValueError("trajectories: need at least one")
    if len({Z.shape[0] for Z in Zs}) > 1:
        raise ValueError("trajectories: all must have the same number of coordinates d")
    return np.concatenate(Zs, axis=1), np.concatenate(Zps, axis=1)


@dataclass(frozen=True)
class DMD:
    """A fitted rank-r DMD model ``z_{t+1} ≈ L @ R @ z_t``."""

    method: str               # "tsvd" | "rrr"
    L: np.ndarray             # [D, r]
    R: np.ndarray             # [r, D]
    eigenvalues: np.ndarray   # [r] complex, sorted by decreasing modulus
    modes: np.ndarray         # [D, r] complex, column i belongs to eigenvalues[i]

    @property
    def rank(self) -> int:
        return self.L.shape[1]

    def predict(self, Z: np.ndarray) -> np.ndarray:
        """One step ahead for every column of ``Z``."""
        return self.L @ (self.R @ Z)

    def one_step_error(self, Z: np.ndarray, Zp: np.ndarray) -> float:
        """Relative one-step error ``‖Zp − A Z‖_F / ‖Zp‖_F``."""
        return float(np.linalg.norm(Zp - self.predict(Z)) / np.linalg.norm(Zp))

    def rollout(self, z0: np.ndarray, n_steps: int) -> np.ndarray:
        """``[D, n_steps + 1]``: ``z0`` and ``n_steps`` iterates of the model."""
        out = [np.asarray(z0, dtype=float)]
        for _ in range(n_steps):
            out.append(self.predict(out[-1]))
        return np.stack(out, axis=1)

    def multi_step_error(self, Y: np.ndarray) -> np.ndarray:
        """Relative error of the rollout from the first column of ``Y [D, T]`` (already
        embedded) at every horizon ``1..T-1``: ``‖ŷ_t − y_t‖ / ‖y_t‖``."""
        pred = self.rollout(Y[:, 0], Y.shape[1] - 1)
        norms = np.linalg.norm(Y[:, 1:], axis=0)
        return np.linalg.norm(pred[:, 1:] - Y[:, 1:], axis=0) / np.where(norms > 0, norms, 1.0)


def _check(Z: np.ndarray, Zp: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    Z, Zp = np.asarray(Z, float), np.asarray(Zp, float)
    if Z.ndim != 2 or Z.shape != Zp.shape:
        raise ValueError(f"Z, Zp: must be 2-D with equal shapes, got {Z.shape} and {Zp.shape}")
    top = min(Z.shape)
    if not 1 <= rank <= top:
        raise ValueError(f"rank: must be in 1..{top} (min of Z's shape {Z.shape}), got {rank}")
    return Z, Zp


def _finish(method: str, L: np.ndarray, R: np.ndarray) -> DMD:
    values, W = np.linalg.eig(R @ L)
    order = np.argsort(-np.abs(values), kind="stable")
    return DMD(method, L, R, values[order], L @ W[:, order])


def tsvd_dmd(Z: np.ndarray, Zp: np.ndarray, rank: int) -> DMD:
    """Projected (TSVD) DMD of rank ``rank``: the POD subspace of ``Z``."""
    Z, Zp = _check(Z, Zp, rank)
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    U, s, Vt = U[:, :rank], s[:rank], Vt[:rank]
    if s[-1] <= s[0] * np.finfo(float).eps * max(Z.shape):
        raise ValueError(f"rank: Z has numerical rank below {rank}")
    reduced = U.T @ Zp @ Vt.T / s
    return _finish("tsvd", U, reduced @ U.T)


def rrr_dmd(Z: np.ndarray, Zp: np.ndarray, rank: int, ridge: float = 1e-6) -> DMD:
    """Reduced-rank-regression DMD of rank ``rank`` with Tikhonov ``ridge`` (γ, ≥ 0; the
    regulariser is ``n γ I`` for ``n`` columns, as kooplearn's ``alpha``): the Kostic et al.
    estimator (module docstring)."""
    Z, Zp = _check(Z, Zp, rank)
    if not ridge >= 0:
        raise ValueError(f"ridge: must be >= 0, got {ridge}")
    n = Z.shape[1]
    if ridge > 0:
        A_ols = np.linalg.solve(Z @ Z.T + n * ridge * np.eye(Z.shape[0]), Z @ Zp.T).T
    else:
        # cut singular values at matrix_rank's tolerance: numpy's default rcond (1e-15) keeps
        # round-off directions of a rank-deficient Z (e.g. a Hankel matrix of a low-rank
        # signal) and amplifies them by 1e13
        A_ols = Zp @ np.linalg.pinv(Z, rcond=np.finfo(float).eps * max(Z.shape))
    fitted = A_ols @ Z if ridge == 0 else np.concatenate([A_ols @ Z, np.sqrt(n * ridge) * A_ols],
                                                         axis=1)
    Q = np.linalg.svd(fitted, full_matrices=False)[0][:, :rank]
    return _finish("rrr", Q, Q.T @ A_ols)


def spectral_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Wasserstein-1 distance between two equally weighted eigenvalue sets of equal size in ℂ:
    the mean ``|λ_i − μ_π(i)|`` under the optimal matching ``π`` (Hungarian algorithm)."""
    a, b = np.ravel(a), np.ravel(b)
    if a.size != b.size or a.size == 0:
        raise ValueError(f"a, b: need the same non-zero number of eigenvalues, got {a.size} "
                         f"and {b.size}")
    cost = np.abs(a[:, None] - b[None, :])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].mean())
