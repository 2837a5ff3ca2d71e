"""modadd.dmd against closed forms: a linear system with known eigenvalues, the optimality of
reduced-rank regression, Hankel layout, trajectory stacking and the spectral distance."""
from __future__ import annotations

import numpy as np
import pytest

from modadd import dmd

TRUE = np.array([0.95, 0.8 * np.exp(0.3j), 0.8 * np.exp(-0.3j), 0.5, -0.3])


def linear_system(eigenvalues, d: int, T: int, seed: int, noise: float = 0.0):
    """Real A = P diag-block(eigenvalues) P⁻¹ in d dims (d >= len) and one trajectory."""
    rng = np.random.default_rng(seed)
    blocks, i = [], 0
    while i < len(eigenvalues):
        lam = eigenvalues[i]
        if abs(lam.imag) > 0:
            r, th = abs(lam), np.angle(lam)
            blocks.append(r * np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]]))
            i += 2
        else:
            blocks.append(np.array([[lam.real]]))
            i += 1
    k = sum(b.shape[0] for b in blocks)
    D = np.zeros((k, k))
    at = 0
    for b in blocks:
        D[at:at + len(b), at:at + len(b)] = b
        at += len(b)
    P = rng.normal(size=(d, k))
    Y = np.empty((d, T))
    x = rng.normal(size=k)
    for t in range(T):
        Y[:, t] = P @ x
        x = D @ x
    return Y + noise * rng.normal(size=Y.shape)


def sort_complex(values):
    return np.array(sorted(values, key=lambda v: (round(abs(v), 6), v.imag)))


@pytest.mark.parametrize("method", ["tsvd", "rrr"])
def test_noise_free_linear_system_eigenvalues_recovered(method):
    Y = linear_system(TRUE, d=8, T=60, seed=0)
    Z, Zp = dmd.data_matrices(Y)
    fit = dmd.tsvd_dmd(Z, Zp, 5) if method == "tsvd" else dmd.rrr_dmd(Z, Zp, 5, ridge=0.0)
    np.testing.assert_allclose(sort_complex(fit.eigenvalues), sort_complex(TRUE), atol=1e-8)
    assert fit.one_step_error(Z, Zp) < 1e-10
    # modes are eigenvectors of the fitted map
    A = fit.L @ fit.R
    np.testing.assert_allclose(A @ fit.modes, fit.modes * fit.eigenvalues, atol=1e-8)


def test_rrr_with_small_ridge_still_recovers():
    Y = linear_system(TRUE, d=8, T=60, seed=1)
    fit = dmd.rrr_dmd(*dmd.data_matrices(Y), 5, ridge=1e-14)
    np.testing.assert_allclose(sort_complex(fit.eigenvalues), sort_complex(TRUE), atol=1e-8)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_rrr_one_step_error_never_worse_than_tsvd_with_noise(seed, rank):
    Y = linear_system(TRUE, d=10, T=80, seed=seed, noise=0.3)
    Z, Zp = dmd.data_matrices(dmd.hankel(Y, 1))
    rrr = dmd.rrr_dmd(Z, Zp, rank, ridge=0.0).one_step_error(Z, Zp)
    tsvd = dmd.tsvd_dmd(Z, Zp, rank).one_step_error(Z, Zp)
    assert rrr <= tsvd + 1e-12


def test_hankel_layout_and_shapes():
    Y = np.arange(2 * 6).reshape(2, 6)          # d=2, T=6
    H = dmd.hankel(Y, 3)
    assert H.shape == (6, 4)
    np.testing.assert_array_equal(H[:, 1], np.concatenate([Y[:, 1], Y[:, 2], Y[:, 3]]))
    assert dmd.hankel(Y, 1).shape == (2, 6) and dmd.hankel(Y, 6).shape == (12, 1)
    for bad in (0, 7):
        with pytest.raises(ValueError, match="n_delays"):
            dmd.hankel(Y, bad)
    with pytest.raises(ValueError, match="columns are time"):
        dmd.hankel(np.arange(5), 2)


def test_stacking_never_crosses_trajectories():
    rng = np.random.default_rng(3)
    runs = [rng.normal(size=(3, T)) for T in (10, 7, 12)]
    Z, Zp = dmd.data_matrices(runs, n_delays=4)
    assert Z.shape == (12, (10 - 4) + (7 - 4) + (12 - 4)) == Zp.shape
    # every pair is a one-step shift inside one trajectory: Zp's first blocks are Z's last ones
    np.testing.assert_array_equal(Zp[:9], Z[3:])
    # and the columns are exactly the per-run pairs, in order
    first = dmd.hankel(runs[1], 4)
    np.testing.assert_array_equal(Z[:, 6:9], first[:, :-1])
    np.testing.assert_array_equal(Zp[:, 6:9], first[:, 1:])
    with pytest.raises(ValueError, match="trajectories\\[1\\]"):
        dmd.data_matrices([runs[0], runs[1][:, :4]], n_delays=4)


def test_rollout_and_multi_step_error_on_exact_model():
    Y = linear_system(TRUE, d=6, T=40, seed=4)
    fit = dmd.tsvd_dmd(*dmd.data_matrices(Y), 5)
    np.testing.assert_allclose(fit.rollout(Y[:, 0], 39), Y, atol=1e-8)
    assert fit.multi_step_error(Y).max() < 1e-7
    worse = dmd.tsvd_dmd(*dmd.data_matrices(Y), 1).multi_step_error(Y)
    assert worse[-1] > 0.1


def test_spectral_distance_is_optimal_matching():
    a = np.array([1.0, 1j, -1.0])
    assert dmd.spectral_distance(a, a[::-1]) == 0.0
    b = np.array([-1.0 + 0.1, 1.0 + 0.2, 1j])    # best match: shifts 0.1 and 0.2, mean 0.1
    assert dmd.spectral_distance(a, b) == pytest.approx(0.1)
    assert dmd.spectral_distance(a, b) == pytest.approx(dmd.spectral_distance(b, a))
    with pytest.raises(ValueError, match="same non-zero number"):
        dmd.spectral_distance(a, a[:2])


def test_bad_arguments_name_their_field():
    Z = np.ones((3, 5))
    with pytest.raises(ValueError, match="rank: must be in 1..3"):
        dmd.tsvd_dmd(Z, Z, 4)
    with pytest.raises(ValueError, match="ridge"):
        dmd.rrr_dmd(Z, Z, 1, ridge=-1.0)
    with pytest.raises(ValueError, match="equal shapes"):
        dmd.rrr_dmd(Z, Z[:, :4], 1)


def test_rrr_differs_from_tsvd_under_noise():
    """The ≤ above must not hold only because both fits coincide."""
    gaps = []
    for seed in range(6):
        Y = linear_system(TRUE, d=10, T=80, seed=seed, noise=0.3)
        Z, Zp = dmd.data_matrices(Y)
        gaps.append(dmd.tsvd_dmd(Z, Zp, 2).one_step_error(Z, Zp)
                    - dmd.rrr_dmd(Z, Zp, 2, ridge=0.0).one_step_error(Z, Zp))
    assert max(gaps) > 1e-3


def kostic_rrr_eigenvalues(Z, Zp, rank, ridge):
    """An independent implementation of the reduced-rank estimator with a ridge, from its
    covariance form: Q = the top-``rank`` eigenvectors of C_YX C_γ⁻¹ C_XY (symmetric, eigh),
    A = Q Qᵀ C_YX C_γ⁻¹; the non-zero eigenvalues of A."""
    n, D = Z.shape[1], Z.shape[0]
    C_X, C_XY = Z @ Z.T / n, Z @ Zp.T / n
    C_gamma_inv = np.linalg.inv(C_X + ridge * np.eye(D))
    M = C_XY.T @ C_gamma_inv @ C_XY
    values, vectors = np.linalg.eigh((M + M.T) / 2)
    Q = vectors[:, np.argsort(values)[::-1][:rank]]
    A = Q @ Q.T @ C_XY.T @ C_gamma_inv
    eig = np.linalg.eigvals(Q.T @ A @ Q)
    return eig[np.argsort(-np.abs(eig), kind="stable")]


@pytest.mark.parametrize("seed, ridge", [(0, 1e-6), (1, 1e-3), (2, 0.1), (3, 1.0)])
def test_rrr_with_a_ridge_is_the_kostic_estimator(seed, ridge):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((6, 60)).cumsum(axis=1) * 0.1 + rng.standard_normal((6, 60))
    Z, Zp = dmd.data_matrices(Y, n_delays=3)
    fit = dmd.rrr_dmd(Z, Zp, 4, ridge=ridge)
    reference = kostic_rrr_eigenvalues(Z, Zp, 4, ridge)
    assert dmd.spectral_distance(fit.eigenvalues, reference) < 1e-8
    # the previous formula (the SVD of the fitted values alone) is another estimator here
    A = Zp @ Z.T @ np.linalg.inv(Z @ Z.T + Z.shape[1] * ridge * np.eye(Z.shape[0]))
    Q_old = np.linalg.svd(A @ Z, full_matrices=False)[0][:, :4]
    old = np.linalg.eigvals(Q_old.T @ A @ Q_old)
    if ridge >= 0.1:
        assert dmd.spectral_distance(old, reference) > 1e-6


def test_rrr_minimises_the_regularised_objective_among_rank_r_maps():
    """A = Q Qᵀ A_γ beats the old projection on ‖Zp − A Z‖² + nγ‖A‖² (the estimator's objective)."""
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((8, 40))
    Zp = rng.standard_normal((8, 8)) @ Z * 0.3 + 0.5 * rng.standard_normal((8, 40))
    ridge, n = 0.5, Z.shape[1]
    fit = dmd.rrr_dmd(Z, Zp, 3, ridge=ridge)
    A_new = fit.L @ fit.R
    A_ridge = Zp @ Z.T @ np.linalg.inv(Z @ Z.T + n * ridge * np.eye(8))
    Q_old = np.linalg.svd(A_ridge @ Z, full_matrices=False)[0][:, :3]
    A_old = Q_old @ Q_old.T @ A_ridge

    def objective(A):
        return np.linalg.norm(Zp - A @ Z) ** 2 + n * ridge * np.linalg.norm(A) ** 2
    assert objective(A_new) < objective(A_old)
    for _ in range(20):                      # and every random rank-3 projection of A_ridge
        Q = np.linalg.qr(rng.standard_normal((8, 3)))[0]
        assert objective(A_new) <= objective(Q @ Q.T @ A_ridge) + 1e-9
