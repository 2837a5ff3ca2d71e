"""modadd.commutator against closed forms (quadratic losses), autograd, finite differences and
explicit random bases."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn import functional as F

import modadd.store as store
from modadd import commutator as C
from modadd.config import RunConfig, TrainConfig
from modadd.model import ModelConfig, build_model
from modadd.task import TaskConfig, sample_batch
from modadd.taskdata import training_batch

TINY = RunConfig(task=TaskConfig(T=8, C=5, m_values=(1, 2)),
                 model=ModelConfig(n_layers=2, d_model=8, n_heads=2),
                 train=TrainConfig(lr=1e-2, batch_size=16, n_steps=40, snapshot_every=5,
                                   probe_size=32, checkpoint_every=40, store_full_params=True))


class Quadratic:
    """L_i(θ) = ½ θᵀ H_i θ + b_iᵀ θ; a "batch" is the pair (H_i, b_i)."""

    def grad(self, theta, batch):
        H, b = batch
        return H @ theta + b, float(0.5 * theta @ H @ theta + b @ theta)

    def hvp(self, theta, batch, vector):
        return batch[0] @ vector


def _random_quadratic(n: int, rng: np.random.Generator):
    A = rng.standard_normal((n, n))
    return torch.from_numpy(A + A.T), torch.from_numpy(rng.standard_normal(n))


def test_quadratic_commutator_matches_closed_form_to_float64_precision():
    rng = np.random.default_rng(0)
    a, b = _random_quadratic(12, rng), _random_quadratic(12, rng)
    theta = torch.from_numpy(rng.standard_normal(12))
    eta = 1e-2
    out = C.commutator(Quadratic(), theta, a, b, eta)
    g_a, g_b = a[0] @ theta + a[1], b[0] @ theta + b[1]
    closed = eta ** 2 * (b[0] @ g_a - a[0] @ g_b)
    assert torch.linalg.vector_norm(out["delta"] - closed) <= 1e-13 * \
        torch.linalg.vector_norm(closed)
    torch.testing.assert_close(out["g_a"], g_a, rtol=0, atol=1e-12)
    # the difference form is exact algebraically, but loses digits to cancellation
    diff = C.commutator_by_difference(Quadratic(), theta, a, b, eta)
    assert torch.linalg.vector_norm(diff - closed) < 1e-9 * torch.linalg.vector_norm(closed)
    # commuting Hessians with equal gradients give δ = 0
    assert torch.count_nonzero(C.commutator(Quadratic(), theta, a, a, eta)["delta"]) == 0


def test_float32_difference_form_loses_digits_when_delta_is_small():
    rng = np.random.default_rng(1)
    a, b = _random_quadratic(50, rng), _random_quadratic(50, rng)
    a, b = (a[0] * 1e-3, a[1] * 1e-3), (b[0] * 1e-3, b[1] * 1e-3)   # tiny gradients
    theta = torch.from_numpy(rng.standard_normal(50))
    direct = C.commutator(Quadratic(), theta, a, b, 1e-3)["delta"]
    f32 = (a[0].float(), a[1].float()), (b[0].float(), b[1].float())
    diff32 = C.commutator_by_difference(Quadratic(), theta.float(), *f32, 1e-3).double()
    error = torch.linalg.vector_norm(diff32 - direct) / torch.linalg.vector_norm(direct)
    assert error > 0.5     # rounding: ‖δ‖ ~ 1e-12 against ulp(θ) ~ 1e-7 (here δ32 == 0)


def test_hessian_norm_is_the_largest_eigenvalue_magnitude():
    rng = np.random.default_rng(2)
    H, _ = _random_quadratic(40, rng)
    expected = float(np.abs(np.linalg.eigvalsh(H.numpy())).max())
    value, products = C.hessian_norm(Quadratic(), torch.zeros(40, dtype=torch.float64),
                                     (H, None), max_products=200, tol=1e-10)
    assert value == pytest.approx(expected, rel=1e-8)
    assert products >= 4
    with pytest.raises(ValueError, match="max_products"):
        C.hessian_norm(Quadratic(), torch.zeros(4, dtype=torch.float64), (H, None), 2)


def _tiny_model_and_batches(seed: int = 0):
    model = build_model(TINY.model, TINY.task, seed)
    generator = torch.Generator().manual_seed(seed)
    return model, training_batch(TINY, 0, generator), training_batch(TINY, 0, generator)


def test_flat_loss_gradient_and_hvp_match_autograd_and_finite_differences():
    model, batch, _ = _tiny_model_and_batches()
    loss = C.FlatLoss(model, torch.float64)
    theta = model.flat_parameters().double()
    gradient, value = loss.grad(theta, batch)
    reference = model.double()
    out = F.cross_entropy(reference(batch.tokens), batch.labels)
    out.backward()
    expected = torch.cat([p.grad.reshape(-1) for p in reference.parameters()])
    assert value == pytest.approx(float(out.detach()), rel=1e-12)
    torch.testing.assert_close(gradient, expected, rtol=1e-10, atol=1e-14)
    v = torch.randn(theta.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    h = 1e-5
    finite = (loss.grad(theta + h * v, batch)[0] - loss.grad(theta - h * v, batch)[0]) / (2 * h)
    torch.testing.assert_close(loss.hvp(theta, batch, v), finite, rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="flat"):
        loss.loss(theta.float(), batch)


def test_direct_and_difference_forms_agree_early_in_training():
    model, a, b = _tiny_model_and_batches()
    eta = 1e-3
    theta = model.flat_parameters()
    direct = C.commutator(C.FlatLoss(model, torch.float64), theta.double(), a, b, eta)["delta"]
    diff64 = C.commutator_by_difference(C.FlatLoss(model, torch.float64), theta.double(), a, b,
                                        eta)
    diff32 = C.commutator_by_difference(C.FlatLoss(model, torch.float32), theta, a, b, eta)
    norm = torch.linalg.vector_norm(direct)
    assert norm > 0
    assert torch.linalg.vector_norm(diff64 - direct) / norm < 1e-6
    assert torch.linalg.vector_norm(diff32.double() - direct) / norm < 0.5
    # and second order: δ ≈ η²(H_B g_A − H_A g_B)
    loss = C.FlatLoss(model, torch.float64)
    g_a, g_b = loss.grad(theta.double(), a)[0], loss.grad(theta.double(), b)[0]
    taylor = eta ** 2 * (loss.hvp(theta.double(), b, g_a) - loss.hvp(theta.double(), a, g_b))
    assert torch.linalg.vector_norm(taylor - direct) / norm < 1e-2


def test_block_slices_address_the_attention_matrices():
    model = build_model(TINY.model, TINY.task, 0)
    flat = model.flat_parameters()
    slices = C.block_slices(model)
    assert len(slices) == TINY.model.n_layers * 4
    d = TINY.model.d_model
    for (layer, name), where in slices.items():
        torch.testing.assert_close(flat[where].view(d, d), model.attention_matrix(layer, name),
                                   rtol=0, atol=0)


def test_live_mask_marks_only_never_emitted_embeddings_dead():
    model = build_model(TINY.model, TINY.task, 0)
    n = sum(p.numel() for p in model.parameters())
    assert C.live_mask(model, TINY.task).all() and C.live_mask(model, TINY.task).shape == (n,)
    mul = replace(TINY.task, op="mul")               # the value 0 never occurs
    mask = C.live_mask(build_model(TINY.model, mul, 0), mul)
    d = TINY.model.d_model
    assert (~mask).sum() == d and not mask[:d].any()   # embedding row 0 comes first


def test_projection_on_a_random_basis_is_sqrt_k_over_p():
    rng = np.random.default_rng(4)
    layers, k, dim = 2, 3, 64
    slices = {(layer, name): slice((4 * layer + b) * dim, (4 * layer + b + 1) * dim)
              for layer in range(layers) for b, name in enumerate(("W_Q", "W_K", "W_V", "W_O"))}
    P = 8 * dim
    vector = rng.standard_normal(P)
    rhos = [C.projected_fraction(vector, slices, C.random_block_bases(layers, k, dim, rng))
            for _ in range(400)]
    assert np.mean(rhos) == pytest.approx(np.sqrt(8 * k / P), rel=0.03)
    bases = C.random_block_bases(layers, k, dim, rng)
    np.testing.assert_allclose(bases[1, 2] @ bases[1, 2].T, np.eye(k), atol=1e-12)
    # a vector inside the span projects fully; one in an untouched block not at all
    inside = np.zeros(P)
    inside[slices[(1, "W_V")]] = bases[1, 2].T @ rng.standard_normal(k)
    assert C.projected_fraction(inside, slices, bases) == pytest.approx(1.0, abs=1e-12)


def test_beta_law_matches_explicit_random_subspaces():
    rng = np.random.default_rng(5)
    P, K = 300, 12
    vector = rng.standard_normal(P)
    explicit = []
    for _ in range(2000):
        q, _ = np.linalg.qr(rng.standard_normal((P, K)))
        explicit.append(np.linalg.norm(q.T @ vector) / np.linalg.norm(vector))
    norm2 = float(vector @ vector)
    law = C.random_subspace_fraction(norm2, norm2, K, P, rng, 20000)
    assert np.mean(law) == pytest.approx(np.mean(explicit), rel=0.02)
    assert np.std(law) == pytest.approx(np.std(explicit), rel=0.1)
    assert np.mean(law) == pytest.approx(np.sqrt(K / P), rel=0.05)
    with pytest.raises(ValueError, match="K"):
        C.random_subspace_fraction(1.0, 1.0, P, P, rng, 1)


def test_trajectory_bases_are_orthonormal_causal_and_nan_when_short():
    rng = np.random.default_rng(6)
    snapshots = np.cumsum(rng.standard_normal((9, 1, 4, 3, 3)), axis=0)
    full = C.trajectory_bases(snapshots, 2)
    assert full.shape == (1, 4, 2, 9)
    np.testing.assert_allclose(full[0, 1] @ full[0, 1].T, np.eye(2), atol=1e-10)
    early = C.trajectory_bases(snapshots, 2, upto=2)       # 3 snapshots: 2 directions
    assert np.isfinite(early).all()
    too_early = C.trajectory_bases(snapshots, 2, upto=1)    # 2 snapshots: 1 direction
    assert np.isfinite(too_early[:, :, 0]).all() and np.isnan(too_early[:, :, 1]).all()
    np.testing.assert_allclose(np.abs(too_early[0, 3, 0]),
                               np.abs(snapshots[1, 0, 3] - snapshots[0, 0, 3]).ravel()
                               / np.linalg.norm(snapshots[1, 0, 3] - snapshots[0, 0, 3]))
    assert np.isnan(C.trajectory_bases(snapshots, 2, upto=0)).all()
    # nested: the top-1 basis is the first row of the top-2 basis
    np.testing.assert_allclose(np.abs(C.trajectory_bases(snapshots, 1)[0, 2, 0]),
                               np.abs(full[0, 2, 0]), atol=1e-10)
    # the causal basis ignores later snapshots
    changed = snapshots.copy()
    changed[5:] += 100.0
    np.testing.assert_allclose(np.abs(C.trajectory_bases(changed, 2, upto=4)),
                               np.abs(C.trajectory_bases(snapshots, 2, upto=4)))


def test_settings_validation_names_the_field():
    with pytest.raises(ValueError, match="eta"):
        C.CommutatorSettings(eta=0)
    with pytest.raises(ValueError, match="pairs"):
        C.CommutatorSettings(pairs=0)
    with pytest.raises(ValueError, match="ks"):
        C.CommutatorSettings(ks=())
    with pytest.raises(ValueError, match="steps"):
        C.CommutatorSettings(steps=(7,)).measured_steps(TINY)
    steps = C.default_steps(TINY)
    assert steps[0] == 0 and steps[-1] == TINY.train.n_steps and list(steps) == sorted(steps)


def test_commutator_table_on_a_tiny_run():
    settings = C.CommutatorSettings(pairs=3, ks=(1, 2), random_trials=4, hessian_batch=16,
                                    hessian_products=12, steps=(0, 20, 40))
    other = TINY.with_seed(1)
    run = store.load_or_train(TINY, trajectories=True, progress=False)
    params_before = np.array(run.params)
    table = C.commutator_table(TINY, other, settings)
    np.testing.assert_array_equal(np.array(run.params), params_before)   # nothing trained
    assert set(table.step) == {0, 20, 40} and (table.seed == 0).all()
    scalars = table[table.basis.isna() | (table.basis == "")]
    norms = scalars[scalars.quantity == "delta_norm"]
    assert len(norms) == 3 * 3 and (norms.value > 0).all()
    rho = table[table.quantity == "rho:delta"]
    assert set(rho.basis) == set(C.BASES) and set(rho.k) == {1, 2}
    assert ((rho.value >= 0) & (rho.value <= 1 + 1e-9) | rho.value.isna()).all()
    # causal basis at step 0 (one snapshot) does not exist; at the last step it is the final one
    causal = rho[rho.basis == "causal"]
    assert causal[causal.step == 0].value.isna().all()
    final = rho[(rho.basis == "final") & (rho.step == 40)].value.to_numpy()
    np.testing.assert_allclose(causal[causal.step == 40].value.to_numpy(), final, rtol=1e-9)
    # the actual update after snapshot 20 is row 4 of updates.npy (20 / snapshot_every)
    update = table[(table.quantity == "rho:update") & (table.step == 20)
                   & (table.basis == "final") & (table.k == 1)].value.item()
    model = run.model_at(4)
    by_hand = C.projected_fraction(np.asarray(run.updates[4], np.float64),
                                   C.block_slices(model), C.trajectory_bases(run.snapshots, 1))
    assert update == pytest.approx(by_hand, rel=1e-9)
    assert table[(table.quantity == "rho:update") & (table.step == 40)].empty   # no next step
    # recomputing pair 0 at step 20 by hand (same measurement stream) gives the stored norm
    from modadd.config import stream_seed
    generator = torch.Generator().manual_seed(stream_seed(0, "measure:commutator:20"))
    a, b = (C._measure_batch(TINY, settings, 20, generator) for _ in range(2))
    delta = C.commutator(C.FlatLoss(model, torch.float64), model.flat_parameters().double(),
                         a, b, settings.eta)["delta"]
    stored = norms[(norms.step == 20) & (norms.pair == 0)].value.item()
    assert float(torch.linalg.vector_norm(delta)) == pytest.approx(stored, rel=1e-6)
    again = C.commutator_table(TINY, other, settings)
    np.testing.assert_array_equal(again.value.to_numpy(), table.value.to_numpy())
    # random baselines in the same blocks sit near sqrt(k / d^2) times the attention share
    share = table[(table.quantity == "attention_share:delta")].set_index(["step", "pair"]).value
    random_same = rho[(rho.basis == "random (same blocks)") & (rho.k == 2)] \
        .set_index(["step", "pair"]).value
    expected = share.loc[random_same.index] * np.sqrt(2 / TINY.model.d_model ** 2)
    assert np.median(random_same / expected) == pytest.approx(1.0, rel=0.25)
    with pytest.raises(ValueError, match="heldout"):
        C.commutator_table(TINY, TINY, settings)


def test_hessian_batch_has_every_m():
    batch = C._hessian_batch(TINY, 10, torch.Generator().manual_seed(0))
    assert batch.tokens.shape[0] == 10 and set(batch.m.tolist()) == {1, 2}
    reference = sample_batch(TINY.task, 5, 1, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(batch.tokens[:5], reference.tokens)


def _fake_table() -> pd.DataFrame:
    rows = []
    for pair in (0, 1, 2):
        rows.append((0, 10, pair, "delta_norm", "", 0, float(pair + 1)))
        for basis, rho in (("causal", 0.3), ("random (same blocks)", 0.1)):
            rows.append((0, 10, pair, "rho:delta", basis, 3, rho * (pair + 1)))
    rows.append((0, 10, -1, "hessian_norm", "", 0, 7.0))
    return pd.DataFrame(rows, columns=["seed", "step", "pair", "quantity", "basis", "k",
                                       "value"])


def test_summaries_pivot_ratios_and_phases():
    table = _fake_table()
    wide = C.pair_values(table)
    assert wide.delta_norm.tolist() == [1.0, 2.0, 3.0] and (wide.hessian_norm == 7.0).all()
    rho = C.rho_table(table)
    causal = rho[rho.basis == "causal"]
    np.testing.assert_allclose(causal.ratio, 3.0)
    np.testing.assert_allclose(causal.perp, np.sqrt(1 - causal.rho ** 2))
    median = C.over_pairs(causal, "rho", by=["basis"])
    assert median.rho.item() == pytest.approx(0.6)
    assert C.phase([0, 10, 50, 90], 100).tolist() == ["init", "early", "mid", "late"]
