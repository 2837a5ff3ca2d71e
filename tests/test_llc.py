"""The SGLD estimator of the local learning coefficient (modadd.llc) against models whose LLC is
known: regular linear regression (λ = d/2), a model with a redundant parameter (y = (w₁+w₂)x,
λ = 1/2 < d/2 = 1) and the singular product model y = a·b·x at the origin (λ → 1/2 as n → ∞;
at finite n and localisation γ, the exact value of the finite-n quantity by quadrature); then
its diagnostics, the calibration rule, reproducibility and argument checks.

For a quadratic loss the quantity SGLD samples at finite n, β and γ is ½ Σᵢ hᵢ / (hᵢ + γ/(nβ))
(hᵢ the Hessian's eigenvalues), which the tests check is close to the theoretical λ.  Seeds are
fixed, so the numbers are deterministic on one machine; each tolerance is stated in standard
deviations of the estimate over seeds (measured), so that it holds on other machines too."""
from __future__ import annotations

import math
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from modadd import llc
from modadd.llc import SGLDSettings, estimate_llc

SIGMA = 1.0


def gaussian_nll(model, x, y):
    """Per-example negative log-likelihood of y ~ N(model(x), σ²), up to a constant."""
    return (model(x).reshape(-1) - y) ** 2 / (2 * SIGMA ** 2)


def regression(d: int, n: int = 1000, seed: int = 0):
    """``(model at the least-squares fit, data, exact localised value at γ)``: y = w₀·x + σ ε."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = x @ torch.randn(d, generator=g, dtype=torch.float64) \
        + SIGMA * torch.randn(n, generator=g, dtype=torch.float64)
    fit = torch.linalg.lstsq(x, y[:, None]).solution[:, 0]
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(fit[None])
    hessian = np.linalg.eigvalsh((x.T @ x / n).numpy()) / SIGMA ** 2
    nbeta = n / math.log(n)

    def exact(gamma: float) -> float:
        return float(0.5 * np.sum(hessian / (hessian + gamma / nbeta)))

    return model, (x, y), exact


class TwoScalars(nn.Module):
    """y = (a + b)·x ("sum": one redundant parameter) or y = a·b·x ("product": singular)."""

    def __init__(self, a: float, b: float, kind: str):
        super().__init__()
        self.a = nn.Parameter(torch.tensor(a, dtype=torch.float64))
        self.b = nn.Parameter(torch.tensor(b, dtype=torch.float64))
        self.kind = kind

    def forward(self, x):
        return (self.a + self.b if self.kind == "sum" else self.a * self.b) * x


def scalar_data(n: int, seed: int, zero_slope: bool):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, generator=g, dtype=torch.float64)
    y = torch.randn(n, generator=g, dtype=torch.float64)
    if zero_slope:      # the least-squares slope is exactly 0: (0, 0) minimises L_n
        y = y - x * (x @ y) / (x @ x)
    return x, y


@pytest.mark.parametrize("d, batch_size", [(4, None), (8, 200)])
def test_regular_regression_gives_d_over_2(d, batch_size):
    """λ = d/2 for a regular model: the estimate lies within 20% of d/2.  The exact value of the
    finite-n localised quantity is 0.993 d/2 here, and over seeds the estimate's relative
    error has a standard deviation of about 6% (d = 4) and 4.5% (d = 8, minibatches of 200)."""
    model, data, exact = regression(d)
    assert exact(1.0) == pytest.approx(d / 2, rel=0.01)
    settings = SGLDSettings(step_size=5e-4, localization=1.0, chains=4, draws=1000, burnin=200,
                            batch_size=batch_size)
    estimate = estimate_llc(model, gaussian_nll, data, settings, seed=0)
    assert estimate.problems() == []
    assert abs(estimate.llc - d / 2) <= 0.2 * d / 2, (estimate.llc, d / 2)
    assert estimate.n_params == d and estimate.n == 1000
    assert estimate.nbeta == pytest.approx(1000 / math.log(1000))


def test_a_redundant_parameter_halves_the_coefficient():
    """y = (a + b)·x: two parameters, one direction of the loss, λ = 1/2 < d/2 = 1.  Within 20%
    of 1/2 (over seeds: +4% mean, the step size's bias, and 5% standard deviation)."""
    x, y = scalar_data(1000, seed=1, zero_slope=False)
    slope = float(x @ y / (x @ x))
    model = TwoScalars(slope / 2, slope / 2, "sum")
    estimate = estimate_llc(model, gaussian_nll, (x, y),
                            SGLDSettings(step_size=5e-4, localization=1.0, chains=4, draws=2000,
                                         burnin=100), seed=0)
    h = 2 * float((x * x).mean())          # the curvature along a + b
    exact = 0.5 * h / (h + 1.0 / (1000 / math.log(1000)))
    assert exact == pytest.approx(0.5, abs=0.01)
    assert estimate.problems() == []
    assert abs(estimate.llc - 0.5) <= 0.2 * 0.5, estimate.llc
    assert estimate.llc < 0.75 * (2 / 2)


def product_model_exact(n: int, s: float, gamma: float) -> float:
    """E[nβ (L_n(w) − L_n(0))] under exp(−nβ s (ab)²/2 − γ(a² + b²)/2): given a, b is Gaussian,
    leaving a 1-D integral over a (on a fine grid)."""
    k = n / math.log(n) * s
    a = np.linspace(-10, 10, 400_001) / math.sqrt(gamma)
    density = np.exp(-gamma * a * a / 2) / np.sqrt(k * a * a + gamma)
    return float((density * 0.5 * k * a * a / (k * a * a + gamma)).sum() / density.sum())


def test_the_singular_product_model_is_below_the_regular_value():
    """y = a·b·x at the origin (true slope 0): d = 2 but λ = 1/2 as n → ∞ (the RLCT of (ab)²),
    approached as log n: at n = 1000 and γ = √(nβ/14.5) the exact value of the finite-n
    quantity is 0.278.  The estimate lies within 30% of it (over seeds its relative error has
    a standard deviation of about 9%: the flat directions mix slowly), far below d/2 = 1."""
    n = 1000
    x, y = scalar_data(n, seed=0, zero_slope=True)
    s = float((x * x).mean())
    gamma = math.sqrt(n / math.log(n) * s / 14.5)
    exact = product_model_exact(n, s, gamma)
    assert exact == pytest.approx(0.278, abs=0.001)
    estimate = estimate_llc(TwoScalars(0.0, 0.0, "product"), gaussian_nll, (x, y),
                            SGLDSettings(step_size=2e-3, localization=gamma, chains=8,
                                         draws=800, burnin=200), seed=0)
    assert estimate.problems() == []
    assert abs(estimate.llc - exact) <= 0.3 * exact, (estimate.llc, exact)
    assert estimate.llc < 0.5 * (2 / 2)


def test_the_model_and_the_global_rng_are_untouched_and_seeds_reproduce():
    model, data, _ = regression(4, n=200)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    settings = SGLDSettings(step_size=1e-3, localization=1.0, chains=2, draws=50, burnin=10,
                            batch_size=50, mala_every=5)
    first = estimate_llc(model, gaussian_nll, data, settings, seed=7)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and all(p.grad is None for p in model.parameters())
    again = estimate_llc(model, gaussian_nll, data, settings, seed=7)
    np.testing.assert_array_equal(first.llc_trace, again.llc_trace)
    np.testing.assert_array_equal(first.loss_trace, again.loss_trace)
    np.testing.assert_array_equal(first.mala, again.mala)
    assert first.llc == again.llc
    other = estimate_llc(model, gaussian_nll, data, settings, seed=8)
    assert not np.array_equal(first.llc_trace, other.llc_trace)
    # the traces: step 0 is w* itself; the two chains differ
    assert first.llc_trace.shape == first.loss_trace.shape == (2, 60)
    np.testing.assert_allclose(first.llc_trace[:, 0], 0.0, atol=1e-9)
    assert not np.array_equal(first.llc_trace[0], first.llc_trace[1])


def test_a_point_that_is_not_a_minimum_is_flagged_negative():
    """Away from the fit the sampler finds loss below L_n(w*): the check says so."""
    model, data, _ = regression(4, n=500)
    with torch.no_grad():
        model.weight.add_(0.3)
    estimate = estimate_llc(model, gaussian_nll, data,
                            SGLDSettings(step_size=5e-4, localization=1.0, chains=3, draws=200,
                                         burnin=50), seed=0)
    assert estimate.llc < 0 and estimate.negative().all()
    assert any("below L(w*)" in p for p in estimate.problems())


def test_a_step_size_too_large_diverges_and_is_reported():
    model, data, _ = regression(4, n=500)
    estimate = estimate_llc(model, gaussian_nll, data,
                            SGLDSettings(step_size=0.1, localization=1.0, chains=2, draws=100,
                                         burnin=10), seed=0)
    assert estimate.diverged.all() and math.isnan(estimate.llc)
    assert np.isnan(estimate.chain_llc).all() and np.isnan(estimate.llc_trace[:, -1]).all()
    stopped = np.isnan(estimate.llc_trace).argmax(axis=1)     # the first step after the stop
    bound = llc.divergence_bound(4)
    assert all(estimate.llc_trace[c, stopped[c] - 1] > bound for c in range(2))
    assert (stopped < 60).all()        # geometric growth: caught long before float64 overflows
    assert any("diverged" in p for p in estimate.problems())


def test_mala_acceptance_falls_with_the_step_size():
    model, data, _ = regression(4, n=500)
    rates = []
    for eps in (1e-4, 3e-3):
        estimate = estimate_llc(model, gaussian_nll, data,
                                SGLDSettings(step_size=eps, localization=1.0, chains=2,
                                             draws=100, burnin=20, mala_every=1), seed=0)
        rates.append(float(np.mean(estimate.mala)))
    assert rates[0] > 0.95 and rates[1] < rates[0]


def test_calibration_recommends_the_largest_stable_step_on_the_plateau():
    """ε = 0.05 diverges (ε·nβh reaches ULA's stability limit of 4 along the steepest direction);
    ε = 1e-5 has not equilibrated after the burn-in (its chains still rise, each at its own pace:
    split-R̂ ≈ 1.8), so ε = 2e-4, acceptable, has no acceptable smaller ε to confirm it; ε = 5e-4
    agrees with 2e-4 at both γ: the rule picks (5e-4, the smaller γ = 1)."""
    model, data, _ = regression(4, n=500)
    settings = SGLDSettings(chains=3, draws=500, burnin=50)
    calibration = llc.calibrate(model, gaussian_nll, data, step_sizes=(1e-5, 2e-4, 5e-4, 0.05),
                                localizations=(1.0, 300.0), settings=settings, seed=0)
    table = calibration.table.set_index(["step_size", "localization"])
    assert (table.xs(0.05, level="step_size").diverged == 1.0).all()
    assert not table.xs(1e-5, level="step_size").acceptable.any()
    assert "split-R̂" in table.loc[(1e-5, 1.0), "problems"]
    assert table.xs(2e-4, level="step_size").acceptable.all()
    assert not table.xs(2e-4, level="step_size").plateau.any()
    assert table.xs(5e-4, level="step_size").plateau.all()
    # stronger localisation pulls the estimate down (towards w*)
    assert table.loc[(5e-4, 300.0), "llc"] < table.loc[(5e-4, 1.0), "llc"]
    assert calibration.recommended == replace(settings, step_size=5e-4, localization=1.0)
    assert table.recommended.sum() == 1 and table.loc[(5e-4, 1.0), "recommended"]
    assert set(calibration.estimates) == set(table.index)


def test_calibration_sees_the_bias_near_the_stability_limit():
    """Just below ULA's stability limit the chains stay finite and look stationary, but the
    estimate has grown with ε (the variance along the steepest direction scales as
    1/(1 − ε a/4)): acceptable, yet off the plateau, so not recommended."""
    model, data, _ = regression(4, n=500)
    settings = SGLDSettings(chains=3, draws=500, burnin=50)
    calibration = llc.calibrate(model, gaussian_nll, data, step_sizes=(5e-4, 0.035),
                                localizations=(1.0,), settings=settings, seed=0)
    table = calibration.table.set_index("step_size")
    assert table.loc[0.035, "acceptable"] and not table.loc[0.035, "plateau"]
    assert table.loc[0.035, "llc"] > 1.5 * table.loc[5e-4, "llc"]
    assert calibration.recommended is None


def test_llc_over_training_evaluates_every_snapshot():
    model, data, exact = regression(4, n=500)
    fit = model.weight.detach().reshape(-1).numpy()
    snapshots = np.stack([fit, fit + 0.3]).astype(np.float64)
    settings = SGLDSettings(step_size=5e-4, localization=1.0, chains=2, draws=500, burnin=50)
    table = llc.llc_over_training(lambda: nn.Linear(4, 1, bias=False).double(), snapshots,
                                  gaussian_nll, data, settings, steps=[100, 200], seed=3)
    assert list(table.step) == [100, 200]
    assert table.acceptable.tolist() == [True, False]
    assert table.llc[0] == pytest.approx(exact(1.0), rel=0.35)
    single = estimate_llc(model, gaussian_nll, data, settings, seed=3)
    assert table.llc[0] == pytest.approx(single.llc, rel=1e-9)   # same seed, same numbers
    with pytest.raises(ValueError, match="snapshots: rows must hold the model's 4 parameters"):
        llc.llc_over_training(lambda: nn.Linear(4, 1, bias=False).double(), snapshots[:, :3],
                              gaussian_nll, data, settings)


def test_run_llc_reads_a_runs_snapshots_and_training_split():
    """On a stand-in for a stored run (the smoke preset with full parameter vectors): one row per
    requested snapshot, labelled with its step; the loss is the run's training loss per
    example."""
    from modadd.grokking import grokking_preset
    from modadd.model import build_model
    from modadd.train import training_logits, training_loss, training_targets
    cfg = grokking_preset("smoke")
    cfg = replace(cfg, train=replace(cfg.train, store_full_params=True))
    model = build_model(cfg.model, cfg.task, 0)
    flat = model.flat_parameters().numpy()
    run = SimpleNamespace(config=cfg, key="stand-in", snapshot_steps=np.array([0, 10, 20]),
                          params=np.stack([flat, flat, flat]))
    tokens, labels = cfg.task.split_data()["train"]
    nll = llc.example_nll(cfg)(model, tokens[:64], labels[:64])
    mean = training_loss(cfg, training_logits(cfg, model, tokens[:64], labels[:64]),
                         training_targets(cfg, labels[:64]))
    assert nll.shape == (64,) and float(nll.detach().mean()) == pytest.approx(
        float(mean.detach()), rel=1e-6)
    table = llc.run_llc(run, SGLDSettings(step_size=1e-5, localization=100.0, chains=2,
                                          draws=4, burnin=0, batch_size=32), indices=[0, 2])
    assert list(table.step) == [0, 20] and np.isfinite(table.llc).all()
    with pytest.raises(ValueError, match="indices: must be snapshot indices in"):
        llc.run_llc(run, SGLDSettings(), indices=[3])
    with pytest.raises(ValueError, match="store_full_params"):
        llc.run_llc(replace_config(run, replace(cfg, train=replace(
            cfg.train, store_full_params=False))), SGLDSettings())


def replace_config(run, cfg):
    return SimpleNamespace(**{**vars(run), "config": cfg})


def test_the_loss_of_an_end_token_run_counts_both_outputs():
    """With ``eos_target`` the per-example NLL is the answer's plus the end token's: twice the
    training loss, which averages over the two outputs."""
    from modadd.grokking import grokking_preset
    from modadd.model import build_model
    from modadd.train import training_logits, training_loss, training_targets
    cfg = grokking_preset("power")
    assert cfg.task.eos_target
    model = build_model(cfg.model, cfg.task, 0)
    tokens, labels = cfg.task.split_data()["train"]
    tokens, labels = tokens[:16], labels[:16]
    nll = llc.example_nll(cfg)(model, tokens, labels)
    mean = training_loss(cfg, training_logits(cfg, model, tokens, labels),
                         training_targets(cfg, labels))
    assert float(nll.detach().mean()) == pytest.approx(2 * float(mean.detach()), rel=1e-6)


@pytest.mark.parametrize("field, value, message", [
    ("step_size", 0.0, "step_size: must be a number > 0"),
    ("step_size", float("nan"), "step_size: must be a finite number > 0"),
    ("step_size", "1e-4", "step_size: must be a finite number > 0"),
    ("localization", -1.0, "localization: must be a number >= 0"),
    ("beta", 0.0, "beta: must be a number > 0"),
    ("chains", 0, "chains: must be >= 1"),
    ("chains", 2.0, "chains: must be an integer >= 1"),
    ("draws", 1, "draws: must be >= 2"),
    ("burnin", -1, "burnin: must be >= 0"),
    ("batch_size", 0, "batch_size: must be >= 1"),
    ("mala_every", -1, "mala_every: must be >= 0"),
    ("mala_every", True, "mala_every: must be an integer >= 0"),
])
def test_bad_settings_raise_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message) as error:
        SGLDSettings(**{field: value})
    assert repr(value) in str(error.value)


def test_bad_arguments_raise_naming_the_argument():
    model, data, _ = regression(2, n=20)
    ok = SGLDSettings(chains=1, draws=2, burnin=0)
    cases = [
        (dict(model="model"), "model: must be a torch.nn.Module"),
        (dict(loss_fn=3), "loss_fn: must be callable"),
        (dict(loss_fn=lambda m, x, y: gaussian_nll(m, x, y).mean()),
         r"loss_fn: must return the per-example negative log-likelihoods, shape \[20\]"),
        (dict(data=data[0]), "data: must be a non-empty tuple or list of tensors"),
        (dict(data=(data[0], data[1][:10])), "data: every tensor must have the same first axis"),
        (dict(data=(data[0][:1], data[1][:1])), "data: needs at least 2 examples"),
        (dict(data=(data[0], [1.0] * 20)), "data: every entry must be a tensor"),
        (dict(settings={"step_size": 1e-3}), "settings: must be an SGLDSettings"),
        (dict(seed=-1), "seed: must be an integer >= 0, got -1"),
        (dict(model=nn.Linear(2, 1).requires_grad_(False).double()),
         "model: has no parameter with requires_grad=True"),
    ]
    for change, message in cases:
        arguments = dict(model=model, loss_fn=gaussian_nll, data=data, settings=ok, seed=0)
        arguments.update(change)
        with pytest.raises(ValueError, match=message):
            estimate_llc(**arguments)
    with pytest.raises(ValueError, match="step_sizes: must be a non-empty sequence"):
        llc.calibrate(model, gaussian_nll, data, (), (1.0,), ok)
    with pytest.raises(ValueError, match="localizations: must be a number >= 0"):
        llc.calibrate(model, gaussian_nll, data, (1e-3,), (-1.0,), ok)
    with pytest.raises(ValueError, match="rule: must be a StabilityRule"):
        llc.calibrate(model, gaussian_nll, data, (1e-3,), (1.0,), ok, rule={"rhat_max": 1.1})
    with pytest.raises(ValueError, match="drift_tol: must be a number >= 0, got -0.1"):
        llc.StabilityRule(drift_tol=-0.1)
    with pytest.raises(ValueError, match="rhat_max: must be a number >= 1, got 0.9"):
        llc.StabilityRule(rhat_max=0.9)
    with pytest.raises(ValueError, match="snapshots: must be an array"):
        llc.llc_over_training(lambda: model, [1.0, 2.0], gaussian_nll, data, ok)
    with pytest.raises(ValueError, match="steps: must hold one number per snapshot"):
        llc.llc_over_training(lambda: model, np.zeros((2, 2)), gaussian_nll, data, ok, steps=[0])


def test_split_rhat_and_batch_means():
    rng = np.random.default_rng(0)
    mixed = rng.normal(size=(4, 1000))
    assert llc.split_rhat(mixed) == pytest.approx(1.0, abs=0.01)
    assert llc.split_rhat(mixed + np.arange(4)[:, None]) > 1.5        # chains disagree
    assert llc.split_rhat(mixed + np.linspace(0, 3, 1000)) > 1.1       # each chain drifts
    assert math.isnan(llc.split_rhat(np.ones((2, 10))))
    assert llc.batch_means_se(rng.normal(size=10_000)) == pytest.approx(0.01, rel=0.35)
    assert math.isnan(llc.batch_means_se(np.array([1.0])))


# ---- optional: the same number as devinterp's estimator -----------------------------------------
@pytest.mark.slow
def test_agrees_with_devinterp_where_installed(tmp_path):
    """A categorical model with one free logit per (input, class) at its maximum-likelihood
    point: softmax ignores a shift per input, so λ = V(C − 1)/2 (= 2 for V = 2, C = 3) < d/2 =
    3.  Ours lies within 15% of the exact localised value (½ Σ h/(h + γ/nβ) over the Hessian's
    eigenvalues) and devinterp's (2.x: a language-model API of ``input_ids`` rows and per-token
    losses, averaging every step including burn-in, hence none here) within 20% of ours.
    Skipped where devinterp is not installed: it is not a dependency."""
    pytest.importorskip("devinterp")
    datasets = pytest.importorskip("datasets")
    from devinterp.slt.llc import llc as devinterp_llc
    V, C, n, gamma, eps = 2, 3, 2000, 1.0, 3e-3
    g = torch.Generator().manual_seed(0)
    x = torch.randint(V, (n,), generator=g)
    y = torch.randint(C, (n,), generator=g)
    counts = torch.zeros(V, C).index_put_((x, y), torch.ones(n), accumulate=True)
    frequencies = counts / counts.sum(1, keepdim=True)
    model = nn.Embedding(V, C)
    with torch.no_grad():
        model.weight.copy_(frequencies.log())
    nbeta = n / math.log(n)
    hessian = np.concatenate([
        np.linalg.eigvalsh(float(counts[v].sum()) / n * (np.diag(p) - np.outer(p, p)))
        for v, p in enumerate(frequencies.double().numpy())])
    exact = float(0.5 * np.sum(hessian / (hessian + gamma / nbeta)))
    assert exact == pytest.approx(V * (C - 1) / 2, rel=0.05)

    def nll(m, inputs, targets):
        return nn.functional.cross_entropy(m(inputs), targets, reduction="none")

    ours = estimate_llc(model, nll, (x, y), SGLDSettings(step_size=eps, localization=gamma,
                                                         chains=4, draws=1000, burnin=0))
    assert ours.llc == pytest.approx(exact, rel=0.15)

    def per_token(m, input_ids):
        return nll(m, input_ids[:, 0], input_ids[:, 1])[:, None]

    rows = datasets.Dataset.from_dict({"input_ids": torch.stack([x, y], 1).tolist()})
    rows.set_format("torch")
    theirs = devinterp_llc(model, rows, {}, lr=eps, n_beta=nbeta, localization=gamma,
                           num_chains=4, num_draws=1000, batch_size=n, loss_fn=per_token,
                           num_init_loss_batches=1, output_path=str(tmp_path / "dv.zarr"),
                           device="cpu")
    print(f"categorical model: exact {exact:.3f}, ours {ours.llc:.3f}, devinterp "
          f"{float(theirs['llc_mean']):.3f}")
    assert float(theirs["llc_mean"]) == pytest.approx(ours.llc, rel=0.2)
