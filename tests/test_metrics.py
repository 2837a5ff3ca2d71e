"""modadd.metrics against independent computations: numpy SVD/covariance, closed forms,
constructed subspaces with known angles, and the random-walk law 6 / (pi^2 k^2)."""
import numpy as np
import pytest

from modadd import metrics as M


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def _svd_ratios(X):
    Xc = X - X.mean(axis=0)
    s = np.linalg.svd(Xc, compute_uv=False)
    return s ** 2 / np.sum(s ** 2)


def test_pca_spectrum_matches_numpy_svd(rng):
    X = rng.standard_normal((25, 300)) @ np.diag(np.linspace(3, 0.1, 300))
    ratios = M.pca_spectrum(X)
    assert ratios.shape == (25,)
    np.testing.assert_allclose(ratios, _svd_ratios(X)[:25], atol=1e-12)
    assert ratios.sum() == pytest.approx(1.0)
    assert np.all(np.diff(ratios) <= 1e-15)


def test_gram_path_equals_covariance_path_small_d(rng):
    X = rng.standard_normal((40, 12)) * np.arange(1, 13)     # n > D: rank-deficient Gram
    cov = np.cov(X, rowvar=False, bias=True)                  # the paper's eq. 1
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    ratios = M.pca_spectrum(X)
    np.testing.assert_allclose(ratios[:12], eig / eig.sum(), atol=1e-12)
    np.testing.assert_allclose(ratios[12:], 0, atol=1e-12)


def test_r90_hand_cases():
    assert M.rank_at(np.array([0.5, 0.3, 0.1, 0.1])) == 3      # 0.9 reached exactly at k=3
    assert M.rank_at(np.array([0.5, 0.3, 0.1, 0.1]), 0.8) == 2
    assert M.rank_at(np.array([0.95, 0.05])) == 1
    flat = np.full(20, 0.05)
    assert M.rank_at(flat) == 18                              # no cap (the original capped at 9)
    line = np.outer(np.arange(10.0), np.ones(50))             # a straight trajectory
    assert M.r90(line) == 1
    assert M.participation_ratio(np.array([1.0, 0, 0])) == pytest.approx(1.0)
    assert M.participation_ratio(np.full(4, 0.25)) == pytest.approx(4.0)
    with pytest.raises(ValueError, match="threshold"):
        M.rank_at(flat, 1.5)
    with pytest.raises(ValueError, match="zero variance"):
        M.pca_spectrum(np.ones((5, 3)))


def test_r90_on_planted_dimension(rng):
    t = np.linspace(0, 1, 50)[:, None]
    basis = np.linalg.qr(rng.standard_normal((500, 3)))[0].T
    X = np.hstack([np.sin(3 * t), np.cos(2 * t), t ** 2]) @ basis
    ratios = M.pca_spectrum(X)
    assert np.count_nonzero(ratios > 1e-10) == 3
    assert M.r90(X) == M.rank_at(_svd_ratios(X))


def test_top_subspace_is_the_svd_subspace(rng):
    X = rng.standard_normal((30, 200)) * np.linspace(5, 0.1, 200)
    B = M.top_subspace(X, 4)
    np.testing.assert_allclose(B @ B.T, np.eye(4), atol=1e-10)
    vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2][:4]
    np.testing.assert_allclose(np.abs(B @ vt.T), np.eye(4), atol=1e-8)
    with pytest.raises(ValueError, match="k"):
        M.top_subspace(X, 0)


def test_principal_angles_known_subspaces():
    dim = 6
    e = np.eye(dim)
    angles = np.array([0.0, 0.3, 1.1])
    A = e[:3]
    B = np.stack([np.cos(a) * e[i] + np.sin(a) * e[3 + i] for i, a in enumerate(angles)])
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((dim, dim)))[0]
    got = M.principal_angles(A @ rotation, B @ rotation)   # angles are rotation-invariant
    np.testing.assert_allclose(got, angles, atol=1e-7)
    assert M.subspace_distance(A, B) == pytest.approx(np.sqrt(np.mean(np.sin(angles) ** 2)))
    PA, PB = A.T @ A, B.T @ B
    assert M.subspace_distance(A, B) == pytest.approx(np.linalg.norm(PA - PB) / np.sqrt(6))
    assert M.subspace_distance(A, A[[2, 0, 1]]) == pytest.approx(0, abs=1e-7)
    assert M.subspace_distance(e[:2], e[2:4]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="orthonormal"):
        M.principal_angles(2 * A, B)
    with pytest.raises(ValueError, match="same dimension"):
        M.principal_angles(A, np.eye(7)[:2])


def test_distance_to_subspace_hand_case():
    basis = np.eye(4)[:2]
    X = np.array([[0, 0, 0, 0], [3, 4, 0, 0], [0, 0, 1, 0], [1, 0, 1, 0]], float)
    got = M.distance_to_subspace(X, basis)
    assert np.isnan(got[0])
    np.testing.assert_allclose(got[1:], [0.0, 1.0, np.sqrt(0.5)])


def test_outside_fraction_from_gram_matches_projection(rng):
    X = np.vstack([np.zeros(80), np.cumsum(rng.standard_normal((20, 80)), axis=0)])
    vt = np.linalg.svd(X, full_matrices=False)[2]               # uncentred subspace
    direct = M.distance_to_subspace(X, vt[:3])
    np.testing.assert_allclose(M.outside_fraction_from_gram(M.gram(X), 3), direct,
                               atol=1e-7, equal_nan=True)


def test_walk_and_increment_grams_are_exact(rng):
    steps = rng.standard_normal((15, 40))
    walk = np.vstack([np.zeros(40), np.cumsum(steps, axis=0)])
    np.testing.assert_allclose(M.walk_gram(steps @ steps.T), walk @ walk.T, atol=1e-9)
    np.testing.assert_allclose(M.increments_from_gram(walk @ walk.T), steps @ steps.T,
                               atol=1e-9)
    order = np.random.default_rng(5).permutation(15)
    shuffled = np.vstack([np.zeros(40), np.cumsum(steps[order], axis=0)])
    np.testing.assert_allclose(M.shuffled_walk_gram(steps @ steps.T, np.random.default_rng(5)),
                               shuffled @ shuffled.T, atol=1e-9)


def test_shuffling_rows_is_a_no_op_but_shuffling_increments_is_not(rng):
    # the original's "shuffled" control permuted snapshots: PCA cannot see that
    steps = rng.standard_normal((30, 100)) + 0.3                # a drift: low-dimensional
    walk = np.vstack([np.zeros(100), np.cumsum(steps, axis=0)])
    np.testing.assert_allclose(M.pca_spectrum(walk[rng.permutation(31)]), M.pca_spectrum(walk),
                               atol=1e-12)
    G = M.gram(walk)
    H = M.increments_from_gram(G)
    assert not np.allclose(M.spectrum_from_gram(M.shuffled_walk_gram(H, rng)),
                           M.spectrum_from_gram(G))


def test_gaussian_increments_have_the_requested_norms(rng):
    norms = rng.uniform(0.5, 2.0, 12)
    for dim in (5, 1000):                                       # direct and Bartlett paths
        H = M.gaussian_increment_gram(norms, dim, rng)
        np.testing.assert_allclose(np.sqrt(np.diag(H)), norms)
        assert np.linalg.matrix_rank(H) == min(dim, 12)


def test_bartlett_walk_matches_direct_walk_in_distribution(rng):
    n, dim, draws = 20, 400, 400
    bartlett = np.mean([M.spectrum_from_gram(M.random_walk_gram(np.ones(n), dim, rng))[:4]
                        for _ in range(draws)], axis=0)
    direct = []
    for _ in range(draws):
        steps = rng.standard_normal((n, dim))
        steps /= np.linalg.norm(steps, axis=1, keepdims=True)
        direct.append(M.pca_spectrum(np.vstack([np.zeros(dim), np.cumsum(steps, 0)]))[:4])
    direct = np.array(direct)
    standard_error = direct.std(axis=0) / np.sqrt(draws)
    assert np.all(np.abs(bartlett - direct.mean(axis=0)) < 4 * np.sqrt(2) * standard_error)


def test_random_walk_follows_the_6_over_pi2k2_law(rng):
    # Antognini & Sohl-Dickstein (2018): high-dimensional random walks, ratios -> 6/(pi^2 k^2)
    n, draws = 200, 300
    spectra = np.array([M.spectrum_from_gram(M.random_walk_gram(np.ones(n), 10**6, rng))[:5]
                        for _ in range(draws)])
    law = M.random_walk_law(5)
    standard_error = spectra.std(axis=0) / np.sqrt(draws)
    # finite n biases the ratios by O(1/n); allow that plus 4 standard errors
    assert np.all(np.abs(spectra.mean(axis=0) - law) < 4 * standard_error + 2.0 / n)
    assert np.sum(law[:5]) < 0.9 < np.sum(M.random_walk_law(6))   # hence r90 = 6
    ranks = [M.rank_at(s) for s in (M.spectrum_from_gram(M.random_walk_gram(
        np.ones(60), 16384, rng)) for _ in range(50))]
    assert np.median(ranks) == 6


def test_random_angle_baseline_matches_closed_form(rng):
    # E[sum cos^2] = k^2 / dim for independent uniform k-subspaces of R^dim
    k, dim = 3, 60
    distances = M.random_angle_baseline(k, dim, 400, rng)
    mean_cos2 = 1 - np.mean(distances ** 2)
    assert mean_cos2 == pytest.approx(k / dim, rel=0.15)


def test_window_ranks_and_lock_in():
    line = np.outer(np.arange(10.0), [1.0, 0.0])
    turn = np.vstack([line, line[-1] + np.outer(np.arange(1, 6.0), [0.0, 1.0])])
    G = M.gram(turn)
    ranks = M.window_ranks(G, [(0, 10), (0, 15), (10, 15), (3, 4)])
    assert ranks[0] == 1 and ranks[1] == 2 and ranks[2] == 1 and np.isnan(ranks[3])
    assert M.lock_in_index(np.array([np.nan, 0.9, 0.2, 0.5, 0.1, 0.1]), 0.3) == 4
    assert M.lock_in_index(np.array([np.nan, 0.1, 0.2]), 0.3) == 0
    assert M.lock_in_index(np.array([0.1, 0.2, 0.9]), 0.3) is None


def test_random_walk_null_on_uneven_intervals_matches_its_closed_form():
    """Snapshots at uneven spacing (dense early, sparse late) give increments of very different
    norms; the matched walk keeps each interval's own norm.  Its Gram has the closed form
    E[G_ij] = sum_{k <= min(i, j)} n_k^2 (independent isotropic steps), and its diagonal is that
    exactly up to the chi-square spread of each step's squared norm."""
    rng = np.random.default_rng(7)
    norms = np.concatenate([np.full(10, 0.1), np.full(5, 1.0), [3.0]])   # dense, then sparse
    cumulative = np.concatenate([[0.0], np.cumsum(norms ** 2)])
    expected = np.minimum.outer(cumulative, cumulative)
    draws = np.mean([M.random_walk_gram(norms, 4000, rng) for _ in range(200)], axis=0)
    np.testing.assert_allclose(draws, expected, rtol=0.02, atol=5e-3)
    one = M.random_walk_gram(norms, 4000, rng)
    steps = np.diag(one)[1:] + np.diag(one)[:-1] - 2 * np.diag(one, 1)    # |S_i - S_{i-1}|^2
    np.testing.assert_allclose(np.sqrt(steps), norms, rtol=1e-9)          # each interval's norm
