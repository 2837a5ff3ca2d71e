"""Nanda et al.'s Fourier progress measures (modadd.progress), each checked against an independent
computation: the basis against its formula, norms against hand-built spectra, the restricted and
excluded logits against a least-squares projection, the Gini coefficient against its pairwise
definition, phase boundaries on synthetic curves with known boundaries, and the measures of a
stored run against a direct forward pass of its snapshots."""
from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from modadd import progress as pg
from modadd.algorithmic import AlgorithmicTask
from modadd.config import RunConfig, TrainConfig
from modadd.model import ModelConfig, build_model
from modadd.runner import load_or_train


def _angles(p: int):
    """``a, b, c`` as float64 tensors broadcasting to ``[p, p, p]``."""
    r = torch.arange(p, dtype=torch.float64)
    return r.view(p, 1, 1), r.view(1, p, 1), r.view(1, 1, p)


def _cos_logits(p: int, freqs, scale: float = 6.0, sign: int = 1) -> torch.Tensor:
    """``Σ_k scale · cos(w_k(a ± b − c))``: the logits of a perfect Fourier-multiplication model."""
    a, b, c = _angles(p)
    return sum(scale * torch.cos(2 * math.pi * k * (a + sign * b - c) / p) for k in freqs)


# ---- basis, norms, key frequencies, Gini --------------------------------------------------------
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-6), (torch.float64, 1e-12)])
def test_the_fourier_basis_is_orthonormal(dtype, tol):
    for p in (7, 11, 113):
        basis, names = pg.fourier_basis(p, dtype)
        assert basis.dtype == dtype and basis.shape == (p, p) and len(names) == p
        assert torch.allclose(basis @ basis.T, torch.eye(p, dtype=dtype), atol=tol, rtol=0)


def test_the_fourier_basis_rows_are_the_formula():
    p = 11
    basis, names = pg.fourier_basis(p)
    a = np.arange(p)
    assert names[:5] == ["const", "cos 1", "sin 1", "cos 2", "sin 2"] and names[-1] == "sin 5"
    np.testing.assert_allclose(basis[0].numpy(), np.full(p, 1 / math.sqrt(p)), atol=1e-15)
    for k in range(1, 6):
        np.testing.assert_allclose(basis[names.index(f"cos {k}")].numpy(),
                                   math.sqrt(2 / p) * np.cos(2 * np.pi * k * a / p), atol=1e-14)
        np.testing.assert_allclose(basis[names.index(f"sin {k}")].numpy(),
                                   math.sqrt(2 / p) * np.sin(2 * np.pi * k * a / p), atol=1e-14)


@pytest.mark.parametrize("p", [2, 9.0, 1, 12])
def test_the_fourier_basis_names_a_bad_modulus(p):
    with pytest.raises(ValueError, match=r"p: must be an odd integer >= 3.*got"):
        pg.fourier_basis(p)


def _embedding(p: int, d: int, freqs, rng) -> tuple[np.ndarray, dict]:
    """A ``[p, d]`` embedding ``Σ_k u_k cos(w_k a) + v_k sin(w_k a)`` and each frequency's
    expected norm ``√(p/2) · √(‖u_k‖² + ‖v_k‖²)`` (Σ_a cos² = Σ_a sin² = p/2, cross terms 0)."""
    a = np.arange(p)[:, None]
    out, expected = np.zeros((p, d)), {}
    for k in freqs:
        u, v = rng.normal(size=d), rng.normal(size=d)
        out += u * np.cos(2 * np.pi * k * a / p) + v * np.sin(2 * np.pi * k * a / p)
        expected[k] = math.sqrt(p / 2) * math.sqrt(u @ u + v @ v)
    return out, expected


def test_frequency_norms_of_a_hand_built_spectrum():
    rng = np.random.default_rng(0)
    matrix, expected = _embedding(11, 6, (2, 5), rng)
    matrix += 3.0                                   # a constant row: norm 3 √p per column
    norms = pg.frequency_norms(matrix)
    assert norms.shape == (6,)
    np.testing.assert_allclose(norms[[2, 5]], [expected[2], expected[5]], rtol=1e-12)
    np.testing.assert_allclose(norms[[1, 3, 4]], 0, atol=1e-12)
    assert norms[0] == pytest.approx(3.0 * math.sqrt(11) * math.sqrt(6), rel=1e-12)
    # orthonormal basis: Parseval on a random matrix
    other = rng.normal(size=(13, 4))
    assert (pg.frequency_norms(other) ** 2).sum() == pytest.approx((other ** 2).sum(), rel=1e-12)


def _tiny_model(p: int = 11, d: int = 16, d_mlp: int = 16):
    task = AlgorithmicTask(p=p, op="+", train_fraction=0.5, operator_token=False,
                           readout_all_tokens=True)
    cfg = ModelConfig(n_layers=1, d_model=d, n_heads=2, attention_only=False, layer_norm=False,
                      activation="relu", d_mlp=d_mlp, biases="mlp")
    return build_model(cfg, task, seed=0), task


def test_the_key_frequency_rule_recovers_the_hand_built_frequencies():
    rng = np.random.default_rng(1)
    model, task = _tiny_model()
    matrix, _ = _embedding(task.p, 16, (2, 5), rng)
    with torch.no_grad():
        model.embed.weight[:task.p] = torch.tensor(matrix + 1e-3 * rng.normal(size=matrix.shape))
    assert pg.key_frequencies(pg.embedding_norms(model, task.p)) == [2, 5]
    # one frequency alone, at p = 7 (3 frequencies)
    single, _ = _embedding(7, 8, (3,), rng)
    assert pg.key_frequencies(pg.frequency_norms(single + 1e-3 * rng.normal(size=(7, 8)))) == [3]


def test_a_flat_spectrum_has_no_key_frequency():
    """A random 113 × 128 embedding (the initialisation): every frequency near the mean."""
    rng = np.random.default_rng(2)
    assert pg.key_frequencies(pg.frequency_norms(rng.normal(size=(113, 128)))) == []
    assert pg.key_frequencies(np.zeros(6)) == []
    with pytest.raises(ValueError, match=r"factor: must be a number >= 1, got 0.5"):
        pg.key_frequencies(np.ones(6), factor=0.5)


def test_the_neuron_logit_map_is_w_u_w_out_with_its_frequencies():
    rng = np.random.default_rng(3)
    model, task = _tiny_model(d=16, d_mlp=16)
    readout, expected = _embedding(task.p, 16, (4,), rng)
    with torch.no_grad():
        model.blocks[0].mlp[2].weight.copy_(torch.eye(16))
        model.head.weight[:task.p] = torch.tensor(readout)
    w_l = pg.neuron_logit_map(model, task.p)
    np.testing.assert_allclose(w_l.numpy(), readout, atol=1e-6)
    norms = pg.neuron_logit_norms(model, task.p)
    assert norms[4] == pytest.approx(expected[4], rel=1e-6)
    assert pg.key_frequencies(norms) == [4]
    attention_only = build_model(replace(model.cfg, attention_only=True), task, seed=0)
    with pytest.raises(ValueError, match=r"model: the neuron-logit map needs an MLP"):
        pg.neuron_logit_map(attention_only, task.p)


def test_gini_against_its_pairwise_definition():
    assert pg.gini(np.full(7, 2.5)) == pytest.approx(0.0, abs=1e-15)
    for n in (1, 2, 5, 56):
        one_hot = np.zeros(n)
        one_hot[n // 2] = 3.0
        assert pg.gini(one_hot) == pytest.approx((n - 1) / n, abs=1e-15)
    x = np.random.default_rng(4).exponential(size=40)
    pairwise = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) * x.sum())
    assert pg.gini(x) == pytest.approx(pairwise, rel=1e-12)
    assert pg.gini(np.zeros(5)) == 0.0
    with pytest.raises(ValueError, match=r"values: must be a non-empty array of finite numbers"):
        pg.gini([1.0, -0.5])


# ---- restricted and excluded loss ---------------------------------------------------------------
@pytest.mark.parametrize("op, sign", [("+", 1), ("-", -1)])
def test_a_pure_fourier_model_keeps_its_loss_and_loses_everything_without_its_keys(op, sign):
    p, keys = 11, [1, 3]
    logits = _cos_logits(p, keys, sign=sign)
    full = pg.logit_loss(logits, op)
    assert full < 0.01                                       # it is a good model
    assert pg.restricted_loss(logits, keys, op) == pytest.approx(full, abs=1e-12)
    assert pg.excluded_loss(logits, keys, op) == pytest.approx(math.log(p), abs=1e-12)
    # removing one key leaves the other's cosine alone: its loss
    assert pg.excluded_loss(logits, [1], op) == pytest.approx(
        pg.logit_loss(_cos_logits(p, [3], sign=sign), op), abs=1e-12)
    # the same on a subset of pairs (a split's flat indices)
    index = np.arange(0, p * p, 3)
    assert pg.excluded_loss(logits, keys, op, index) == pytest.approx(math.log(p), abs=1e-12)


def test_restricted_and_excluded_logits_are_the_least_squares_projection():
    """Independent: per class, the least-squares fit on explicit direction columns over the
    p² pairs; an extra (non-residue) class is left unchanged by both."""
    p, keys = 11, [2, 4]
    rng = np.random.default_rng(5)
    logits = torch.tensor(rng.normal(size=(p, p, p + 1)))
    for op, sign in (("+", 1), ("-", -1)):
        a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
        s = (a + sign * b).ravel()
        columns = [np.cos(2 * np.pi * k * s / p) for k in keys] + \
                  [np.sin(2 * np.pi * k * s / p) for k in keys]
        key_dirs = np.stack(columns, axis=1)                               # [p², 2K]
        with_const = np.concatenate([np.ones((p * p, 1)), key_dirs], axis=1)
        flat = logits.numpy().reshape(p * p, p + 1)[:, :p]
        fit = with_const @ np.linalg.lstsq(with_const, flat, rcond=None)[0]
        on_keys = key_dirs @ np.linalg.lstsq(key_dirs, flat, rcond=None)[0]
        restricted = pg.restrict_logits(logits, keys, op).numpy().reshape(p * p, p + 1)
        excluded = pg.exclude_logits(logits, keys, op).numpy().reshape(p * p, p + 1)
        np.testing.assert_allclose(restricted[:, :p], fit, atol=1e-12)
        np.testing.assert_allclose(excluded[:, :p], flat - on_keys, atol=1e-12)
        np.testing.assert_array_equal(restricted[:, p], logits.numpy().reshape(p * p, -1)[:, p])
        np.testing.assert_array_equal(excluded[:, p], logits.numpy().reshape(p * p, -1)[:, p])


def test_logit_loss_is_the_cross_entropy_against_the_answers():
    p = 7
    logits = torch.tensor(np.random.default_rng(6).normal(size=(p, p, p + 1)))
    a, b = np.meshgrid(np.arange(p), np.arange(p), indexing="ij")
    answers = ((a + b) % p).ravel()
    flat = logits.numpy().reshape(p * p, -1)
    log_probs = flat - np.log(np.exp(flat).sum(axis=1, keepdims=True))
    assert pg.logit_loss(logits) == pytest.approx(-log_probs[np.arange(p * p), answers].mean(),
                                                  rel=1e-12)


def test_bad_logits_keys_and_ops_are_named():
    logits = _cos_logits(11, [1])
    with pytest.raises(ValueError, match=r"logits: must be a \[p, p, C\] tensor with C >= p, "
                                         r"got \(11, 11, 5\)"):
        pg.restricted_loss(logits[..., :5], [1])
    with pytest.raises(ValueError, match=r"keys: must be distinct integer frequencies in 1\.\.5 "
                                         r"\(p=11\), got \[1, 6\]"):
        pg.excluded_loss(logits, [1, 6])
    with pytest.raises(ValueError, match=r"keys: .*got \[2, 2\]"):
        pg.restrict_logits(logits, [2, 2])
    with pytest.raises(ValueError, match=r"op: the Fourier progress measures need '\+' or '-'.*"
                                         r"got '\*'"):
        pg.excluded_loss(logits, [1], op="*")


# ---- phases -------------------------------------------------------------------------------------
def _tidy(steps, **curves) -> pd.DataFrame:
    return pd.DataFrame([{"step": int(s), "measure": name.replace("_", " "), "value": float(v)}
                         for name, values in curves.items() for s, v in zip(steps, values)])


def _synthetic_curves(steps):
    """Known boundaries: train loss 4e^(−t/5) is < 1e-2 from t = 30; the excluded loss falls to
    its minimum at t = 50 and then rises e-fold every 10 steps; test loss rises to 8, stays until
    t = 120, then falls as 8e^(−(t−120)/5): ≤ 4 from t = 124, < 1e-2 from t = 154."""
    t = steps.astype(float)
    train = 4 * np.exp(-t / 5)
    bottom = 1e-3 + 4 * np.exp(-50 / 6)
    excluded = np.where(t <= 50, 1e-3 + 4 * np.exp(-t / 6), bottom * np.exp((t - 50) / 10))
    test = np.where(t <= 40, np.log(11) + (8 - np.log(11)) * t / 40, 8.0)
    test = np.where(t > 120, 8 * np.exp(-(t - 120) / 5), test)
    return train, excluded, test


def test_phase_boundaries_of_synthetic_curves():
    steps = np.arange(0, 201)
    train, excluded, test = _synthetic_curves(steps)
    restricted = np.where(steps < 100, 3.0, 0.1)
    table = _tidy(steps, train_loss=train, test_loss=test, excluded_loss=excluded,
                  restricted_loss=restricted)
    bounds = pg.phase_boundaries(table)
    assert bounds == {"train fit": 30, "memorisation end": 50, "cleanup start": 124,
                      "cleanup end": 154}
    phases = pg.phase_table(table, bounds)
    assert list(phases.phase.unique()) == list(pg.PHASES)
    circuit = phases[(phases.phase == "circuit formation")].set_index("measure")
    assert (circuit.start.iloc[0], circuit.end.iloc[0]) == (50, 124)
    assert circuit.at["excluded loss", "at end"] > circuit.at["excluded loss", "at start"]
    assert circuit.at["restricted loss", "at end"] == 0.1
    # sampled every 10 steps: the next snapshot at or after each boundary
    coarse = table[table.step % 10 == 0]
    assert pg.phase_boundaries(coarse) == {"train fit": 30, "memorisation end": 50,
                                           "cleanup start": 130, "cleanup end": 160}


def test_phase_boundaries_when_phases_never_come():
    steps = np.arange(0, 201)
    train, excluded, test = _synthetic_curves(steps)
    # no circuit: excluded loss stays at its bottom, test loss never falls
    flat = np.minimum(excluded, excluded[50])
    bounds = pg.phase_boundaries(_tidy(steps, train_loss=train, test_loss=np.full(201, 8.0),
                                       excluded_loss=flat))
    assert bounds == {"train fit": 30, "memorisation end": None, "cleanup start": None,
                      "cleanup end": None}
    # a tenfold rise that stays below the fit threshold (float noise on a tiny minimum)
    tiny = np.where(steps <= 50, 1e-3 * np.exp(-steps / 5), 1e-3 * np.exp(-10 + (steps - 50) / 20))
    bounds = pg.phase_boundaries(_tidy(steps, train_loss=train, test_loss=test,
                                       excluded_loss=tiny))
    assert tiny.max() < 1e-2 and tiny[50:].max() > 10 * tiny.min()
    assert bounds == {"train fit": 30, "memorisation end": None, "cleanup start": 124,
                      "cleanup end": 154}
    # never fits the training set: nothing after
    bounds = pg.phase_boundaries(_tidy(steps, train_loss=np.full(201, 1.0), test_loss=test,
                                       excluded_loss=excluded))
    assert set(bounds.values()) == {None}
    with pytest.raises(ValueError, match=r"table: needs the measures \['excluded loss'\]"):
        pg.phase_boundaries(_tidy(steps, train_loss=train, test_loss=test))
    with pytest.raises(ValueError, match=r"drop: must be a number in \(0, 1\), got 1.5"):
        pg.phase_boundaries(_tidy(steps, train_loss=train, test_loss=test,
                                  excluded_loss=excluded), drop=1.5)


# ---- a stored run -------------------------------------------------------------------------------
def _tiny_run_config(store_full_params: bool = True) -> RunConfig:
    task = AlgorithmicTask(p=11, op="+", train_fraction=0.5, split_seed=1, operator_token=False,
                           readout_all_tokens=True)
    model = ModelConfig(n_layers=1, d_model=16, n_heads=2, attention_only=False,
                        layer_norm=False, activation="relu", d_mlp=32, init="nanda",
                        biases="mlp")
    train = TrainConfig(lr=3e-3, weight_decay=1.0, beta2=0.98, batch_size=60, n_steps=20,
                        snapshot_every=5, checkpoint_every=10, probe_size=20,
                        store_full_params=store_full_params)
    return RunConfig(task=task, model=model, train=train, seed=2)


def test_progress_measures_of_a_stored_run_equal_a_direct_forward_pass():
    cfg = _tiny_run_config()
    run = load_or_train(cfg, trajectories=True, progress=False)
    table = pg.progress_measures(run, keys=[1, 4])
    assert table.attrs["key_frequencies"] == [1, 4]
    assert list(table.columns) == ["step", "measure", "value"]
    assert sorted(table.step.unique()) == [0, 5, 10, 15, 20]
    assert set(table.measure) == {"train loss", "test loss", "restricted loss", "excluded loss",
                                  "Gini W_E", "Gini W_L", "sum of squared weights"}
    value = table.set_index(["step", "measure"]).value
    data = cfg.task.split_data()
    for index, step in enumerate(run.snapshot_steps):
        model = run.model_at(index)                       # the store's own float32 reading
        with torch.no_grad():
            for split, name in (("train", "train loss"), ("heldout", "test loss")):
                tokens, labels = data[split]
                direct = torch.nn.functional.cross_entropy(model(tokens).double(), labels)
                assert value[(step, name)] == pytest.approx(float(direct), rel=1e-5)
        assert value[(step, "sum of squared weights")] == pytest.approx(
            float((np.asarray(run.params[index], np.float64) ** 2).sum()), rel=1e-9)
        w_e = model.embed.weight[:11].detach().double().numpy()
        assert value[(step, "Gini W_E")] == pytest.approx(
            pg.gini(pg.frequency_norms(w_e)[1:]), rel=1e-5)
    # the restricted (held-out pairs) and excluded (training pairs) losses of the last snapshot
    logits = pg.all_logits(run.model_at(-1).double(), cfg.task)
    train_index, heldout_index = cfg.task.split()
    assert value[(20, "restricted loss")] == pytest.approx(
        pg.restricted_loss(logits, [1, 4], "+", heldout_index), rel=1e-9)
    assert value[(20, "excluded loss")] == pytest.approx(
        pg.excluded_loss(logits, [1, 4], "+", train_index), rel=1e-9)
    # default keys: the rule on the final embedding; a subset of steps
    final = run.model_at(-1)
    expected = pg.key_frequencies(pg.embedding_norms(final, 11))
    part = pg.progress_measures(run, steps=[0, 20])
    assert part.attrs["key_frequencies"] == expected and sorted(part.step.unique()) == [0, 20]
    with pytest.raises(ValueError, match=r"steps: must be stored snapshot steps.*got \[7\]"):
        pg.progress_measures(run, keys=[1], steps=[0, 7])


def test_progress_measures_name_what_a_run_did_not_store():
    """Checked before any weight is read: a run without full-parameter snapshots, a marker
    task, and an operation the Fourier basis does not diagonalise."""
    cfg = _tiny_run_config(store_full_params=False)
    with pytest.raises(ValueError, match=r"run k0: stored no full-parameter snapshots "
                                         r"\(train.store_full_params=False\)"):
        pg.progress_measures(SimpleNamespace(config=cfg, key="k0"))
    times = replace(_tiny_run_config(), task=replace(cfg.task, op="*"))
    with pytest.raises(ValueError, match=r"op: the Fourier progress measures need"):
        pg.progress_measures(SimpleNamespace(config=times, key="k1"))
    marker = SimpleNamespace(config=SimpleNamespace(task=object()), key="k2")
    with pytest.raises(ValueError, match=r"run k2: progress measures need an a∘b mod p task"):
        pg.progress_measures(marker)
