"""The local learning coefficient (LLC) of a network at given parameters, by SGLD sampling.

Reference: Lau, Furman, Wang, Murfet & Wei (2023), arXiv:2308.12108 ("Quantifying degeneracy in
singular models via the learning coefficient"; published as "The local learning coefficient: a
singularity-aware complexity measure"), §4 and Appendix; the inverse temperature β = 1/log n is
Watanabe's WBIC temperature (Watanabe 2013, JMLR 14); the sampler is SGLD (Welling & Teh 2011).
The devinterp library's estimator (``estimate_learning_coefficient`` up to 1.x,
``devinterp.slt.llc.llc`` in 2.x, with its ``SGLD`` sampler) computes the same quantity; this
module is written from the paper, so that the study does not depend on it
(``tests/test_llc.py`` compares the two where devinterp is installed).  Two of devinterp's
defaults differ from ours: its ``n β`` is ``m / log m`` for the batch size ``m`` (ours:
``n / log n`` over the whole data, the paper's), and 2.x averages every step, burn-in included.

**What is estimated.**  With ``L_n(w)`` the average per-example negative log-likelihood over the
``n`` examples, ``w*`` the parameters at which the LLC is wanted, inverse temperature ``β``
(default ``1/log n``) and localisation strength ``γ``, the localised tempered posterior is

    p(w) ∝ exp(−n β L_n(w) − γ/2 ‖w − w*‖²),

and ``λ̂ = n β (E_p[L_n(w)] − L_n(w*))``.  For a regular model at a strict minimum ``λ̂ → d/2``
(``d`` parameters); degenerate (singular) minima give less.

**How.**  Each chain starts at ``w*`` and takes ``burnin + draws`` SGLD steps

    w ← w − ε/2 (n β ∇L_B(w) + γ (w − w*)) + η,   η ~ N(0, ε I),

``L_B`` the mean loss of a minibatch ``B`` of ``batch_size`` examples drawn without replacement
afresh each step (the whole data when ``batch_size`` is None).  At each step the chain records
``n β (L_B(w) − L_B(w*))`` at the current ``w``, before the update; ``L_B(w*)`` is read from the
per-example losses at ``w*`` computed once, so this is an unbiased estimate of
``n β (L_n(w) − L_n(w*))`` (exact with the whole data) whose batch-to-batch noise mostly
cancels (devinterp records ``L_B(w)`` alone and subtracts an estimate of ``L_n(w*)``: the same
expectation, more noise).  A chain's LLC is the mean of its ``draws`` post-burn-in records; the
estimate is the mean over chains, with a Student-t 95% interval over chains.

**Reproducibility.**  The model passed in is copied and never changed; every random number
(noise and batches) comes from one ``torch.Generator`` per chain, seeded from ``seed`` and the
chain's index (:func:`modadd.config.stream_seed`), and the global torch RNG is restored after
the call, so estimating never moves a training stream.  The same seed, data and thread count
give identical numbers.

**Diagnostics** (:class:`LLCEstimate`): chains that diverged (a non-finite loss, or a record
above :func:`divergence_bound`; stopped there, no estimate), chains significantly below
``L_n(w*)`` (their LLC below −2 batch-means standard errors: ``w*`` is not a local minimum of
``L_n`` at this localisation, e.g. the equilibrium of the loss and a weight decay), the drift
between the first and second halves of the draws (a burn-in too short, a chain still wandering
off), the split-R̂ of the draws (Gelman et al., BDA3 §11.4) and, optionally, the mean
Metropolis acceptance probability that MALA would have given the SGLD proposals (on the same
batch at both ends; no step is ever rejected).  :class:`StabilityRule` turns them into a
verdict; :func:`calibrate` sweeps ``(ε, γ)`` and recommends a setting by the rule stated there;
:func:`llc_over_training` and :func:`run_llc` evaluate one setting at every stored snapshot of a
run.

Length: the estimator, the diagnostics that say when to trust it and the calibration rule built
on them are one definition, to be read together; the rest (over a run's snapshots) is a few
lines of glue.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .config import stream_seed
from .stats import mean_ci
from .validate import check_float, check_int, is_int, is_number

LossFn = Callable[..., torch.Tensor]     # loss_fn(model, *rows) -> per-example NLL [B]
_CHUNK = 4096                             # rows per forward pass when evaluating all the data


def divergence_bound(n_params: int) -> float:
    """The record ``n β (L_B(w) − L_B(w*))`` above which a chain counts as diverged:
    ``5 d + 100`` for ``d`` sampled parameters.  The LLC is at most ``d/2``, so the records of a
    stationary chain average at most ``d/2`` and have exponential tails (the posterior weighs
    them by ``exp(−record)``); ten times the largest possible mean plus 100 is reached only by a
    chain that blows up (ε beyond the stability limit of the steepest direction), which then
    grows geometrically and would take hundreds of steps to overflow in float64."""
    return 5.0 * n_params + 100.0


@dataclass(frozen=True)
class SGLDSettings:
    """The sampler's settings. Validated on construction."""

    step_size: float = 1e-4            # ε, > 0
    localization: float = 100.0        # γ, >= 0 (0: no localisation)
    beta: Optional[float] = None       # inverse temperature β > 0; None: 1 / log n
    chains: int = 4                    # independent chains from w*, >= 1 (an interval needs 2)
    draws: int = 200                   # post-burn-in steps averaged per chain, >= 2
    burnin: int = 100                  # steps discarded first, >= 0
    batch_size: Optional[int] = None   # minibatch rows per step, >= 1; None (or >= n): all data
    mala_every: int = 0                # the MALA acceptance check every k-th step (an extra
                                       # forward and backward pass; free with the whole data);
                                       # 0: never

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending field, its value and its allowed range."""
        check_float("step_size", self.step_size, 0.0, low_open=True)
        check_float("localization", self.localization, 0.0)
        if self.beta is not None:
            check_float("beta", self.beta, 0.0, low_open=True, why="or None for 1/log n")
        check_int("chains", self.chains, 1)
        check_int("draws", self.draws, 2, why="the drift check compares two halves")
        check_int("burnin", self.burnin, 0)
        if self.batch_size is not None:
            check_int("batch_size", self.batch_size, 1, why="or None for all the data")
        check_int("mala_every", self.mala_every, 0, why="0 turns the check off")

    @property
    def steps(self) -> int:
        """SGLD steps per chain (``burnin + draws``)."""
        return self.burnin + self.draws

    def to_dict(self) -> dict:
        """Plain-JSON form."""
        return asdict(self)


@dataclass
class LLCEstimate:
    """The result of :func:`estimate_llc`.  Traces are ``[chains, burnin + draws]``, step ``t``
    holding the value at the parameters after ``t`` updates (step 0 is ``w*``); a chain that
    diverged holds NaN after the step where it did (a non-finite loss is NaN there too)."""

    llc: float                      # mean of the chains' LLCs that did not diverge (NaN: none)
    llc_ci: tuple[float, float]     # Student-t 95% interval over those chains (NaN if < 2)
    chain_llc: np.ndarray           # [chains] mean of each chain's post-burn-in llc_trace (NaN:
                                    # diverged)
    chain_se: np.ndarray            # [chains] batch-means standard error of chain_llc
    llc_trace: np.ndarray           # [chains, steps] n β (L_B(w_t) − L_B(w*))
    loss_trace: np.ndarray          # [chains, steps] L_B(w_t), the minibatch loss stepped on
    mala: np.ndarray                # [chains] mean MALA acceptance after burn-in (NaN: unchecked)
    diverged: np.ndarray            # [chains] bool: non-finite or above divergence_bound
    init_loss: float                # L_n(w*) over all the data
    nbeta: float                    # n β
    n: int                          # examples
    n_params: int                   # parameters sampled (those with requires_grad)
    settings: SGLDSettings
    seed: int
    seconds: float = field(default=float("nan"))

    @property
    def draws(self) -> np.ndarray:
        """``[chains, draws]``: the post-burn-in part of :attr:`llc_trace`."""
        return self.llc_trace[:, self.settings.burnin:]

    def negative(self, n_se: float = 2.0) -> np.ndarray:
        """``[chains]`` bool: the chain's LLC lies below ``−n_se`` standard errors (batch means),
        i.e. the chain found loss significantly below ``L_n(w*)``."""
        se = np.where(np.isfinite(self.chain_se), self.chain_se, 0.0)
        return np.isfinite(self.chain_llc) & (self.chain_llc < -n_se * se)

    @property
    def llc_se(self) -> float:
        """Standard error of :attr:`llc` over the chains that did not diverge (NaN if < 2)."""
        finite = self.chain_llc[np.isfinite(self.chain_llc)]
        return float(finite.std(ddof=1) / math.sqrt(len(finite))) if len(finite) > 1 \
            else float("nan")

    def drift(self) -> tuple[float, float]:
        """``(mean, standard error)`` over the chains that did not diverge of (mean of the second
        half of the draws − mean of the first half); the error is NaN with fewer than two
        chains."""
        draws = self.draws[~self.diverged]
        if len(draws) == 0:
            return (float("nan"), float("nan"))
        half = draws.shape[1] // 2
        change = draws[:, -half:].mean(axis=1) - draws[:, :half].mean(axis=1)
        se = change.std(ddof=1) / math.sqrt(len(change)) if len(change) > 1 else float("nan")
        return (float(change.mean()), float(se))

    @property
    def rhat(self) -> float:
        """Split-R̂ of the draws of the chains that did not diverge (BDA3 §11.4): near 1 when
        the half-chains agree; NaN when it cannot be computed (no such chain, a constant
        trace)."""
        return split_rhat(self.draws[~self.diverged])

    def problems(self, rule: Optional["StabilityRule"] = None) -> list[str]:
        """Why this estimate is not trustworthy by ``rule`` (default :class:`StabilityRule`), or
        ``[]`` when it passes every check."""
        rule = _check_rule(rule)
        found = []
        chains = self.settings.chains
        if self.diverged.any():
            found.append(f"{int(self.diverged.sum())} of {chains} chains diverged")
        negative = self.negative(rule.negative_se)
        if negative.any():
            found.append(f"{int(negative.sum())} of {chains} chains significantly below L(w*)")
        if not self.llc > 0:
            found.append(f"estimate {self.llc:.4g} is not positive")
        change, se = self.drift()
        if math.isfinite(change) and abs(change) > rule.drift_tol * abs(self.llc) \
                and not abs(change) <= rule.drift_se * se:
            found.append(f"draws drift by {change:+.4g} between halves (tolerance "
                         f"{rule.drift_tol:g} × |λ̂| = {rule.drift_tol * abs(self.llc):.4g}, "
                         f"{rule.drift_se:g} SE = {rule.drift_se * se:.4g})")
        if self.rhat > rule.rhat_max:
            found.append(f"split-R̂ {self.rhat:.3f} > {rule.rhat_max:g}")
        return found

    def summary(self, rule: Optional["StabilityRule"] = None) -> dict:
        """One flat row: the estimate, its interval and every diagnostic, judged by ``rule``."""
        rule = _check_rule(rule)
        change, se = self.drift()
        problems = self.problems(rule)
        finite_mala = self.mala[np.isfinite(self.mala)]
        return {"llc": self.llc, "llc_low": self.llc_ci[0], "llc_high": self.llc_ci[1],
                "llc_se": self.llc_se,
                "init_loss": self.init_loss, "nbeta": self.nbeta,
                "diverged": float(self.diverged.mean()),
                "negative": float(self.negative(rule.negative_se).mean()), "drift": change,
                "drift_se": se, "rhat": self.rhat,
                "mala": float(finite_mala.mean()) if finite_mala.size else float("nan"),
                "acceptable": not problems, "problems": "; ".join(problems),
                "seconds": self.seconds}


@dataclass(frozen=True)
class StabilityRule:
    """When an estimate's chains count as stable and converged (:meth:`LLCEstimate.problems`,
    the acceptability of :func:`calibrate`): no chain diverged; no chain's LLC below
    ``−negative_se`` batch-means standard errors; a positive estimate; the draws' mean changes
    between their first and second half by at most ``drift_tol`` × |λ̂| or by less than
    ``drift_se`` standard errors over chains; split-R̂ at most ``rhat_max`` (BDA3's 1.1; not
    checked where it cannot be computed).  :func:`calibrate` also asks the estimate to have
    stopped depending on the step size: it agrees with the estimate at the next smaller step
    size of the grid within ``plateau_tol`` × that estimate or ``drift_se`` combined standard
    errors.  Validated on construction."""

    negative_se: float = 2.0
    drift_tol: float = 0.1
    drift_se: float = 3.0
    rhat_max: float = 1.1
    plateau_tol: float = 0.2

    def __post_init__(self) -> None:
        check_float("negative_se", self.negative_se, 0.0)
        check_float("drift_tol", self.drift_tol, 0.0)
        check_float("drift_se", self.drift_se, 0.0)
        check_float("rhat_max", self.rhat_max, 1.0)
        check_float("plateau_tol", self.plateau_tol, 0.0)


def _check_rule(rule) -> StabilityRule:
    if rule is None:
        return StabilityRule()
    if not isinstance(rule, StabilityRule):
        raise ValueError(f"rule: must be a StabilityRule or None, got {type(rule).__name__}")
    return rule


def split_rhat(chains: np.ndarray) -> float:
    """Split-R̂ (Gelman et al., BDA3 §11.4) of ``[chains, draws]``: each chain cut into two
    halves (the middle draw of an odd length dropped), then √(var⁺ / W) over the halves, with
    ``W`` the mean within-half variance and ``var⁺ = (m−1)/m · W + B/m`` (``m`` draws per half,
    ``B/m`` the variance of the half means).  NaN for no chain, halves of < 2 draws or W = 0."""
    chains = np.asarray(chains, dtype=float)
    if chains.ndim != 2 or chains.shape[0] == 0 or chains.shape[1] < 4:
        return float("nan")
    m = chains.shape[1] // 2
    halves = np.concatenate([chains[:, :m], chains[:, -m:]])
    within = halves.var(axis=1, ddof=1).mean()
    between_over_m = halves.mean(axis=1).var(ddof=1)
    if not within > 0:
        return float("nan")
    return float(math.sqrt(((m - 1) / m * within + between_over_m) / within))


def batch_means_se(values: np.ndarray, n_batches: int = 10) -> float:
    """Standard error of the mean of an autocorrelated series by non-overlapping batch means
    (``n_batches`` batches of equal length; the first ``len % n_batches`` values dropped); NaN
    for fewer than 2 values or a non-finite value."""
    values = np.asarray(values, dtype=float)
    k = min(n_batches, len(values))
    if k < 2 or not np.isfinite(values).all():
        return float("nan")
    size = len(values) // k
    means = values[len(values) - k * size:].reshape(k, size).mean(axis=1)
    return float(means.std(ddof=1) / math.sqrt(k))


# ---- the estimator ------------------------------------------------------------------------------
def _check_data(data) -> tuple[torch.Tensor, ...]:
    if isinstance(data, torch.Tensor) or not isinstance(data, (tuple, list)) or not data:
        raise ValueError(f"data: must be a non-empty tuple or list of tensors sharing their first "
                         f"axis (e.g. (inputs, targets)), got {type(data).__name__}")
    if not all(isinstance(t, torch.Tensor) and t.dim() >= 1 for t in data):
        raise ValueError(f"data: every entry must be a tensor of >= 1 axis, got "
                         f"{[type(t).__name__ for t in data]}")
    sizes = {len(t) for t in data}
    if len(sizes) != 1:
        raise ValueError(f"data: every tensor must have the same first axis, got sizes "
                         f"{[len(t) for t in data]}")
    if sizes.pop() < 2:
        raise ValueError(f"data: needs at least 2 examples (β = 1/log n), got {len(data[0])}")
    return tuple(data)


def _check_seed(seed) -> None:
    if not is_int(seed) or seed < 0:
        raise ValueError(f"seed: must be an integer >= 0, got {seed!r}")


def _per_example(loss_fn: LossFn, model: nn.Module, rows: tuple) -> torch.Tensor:
    """``loss_fn(model, *rows)``, checked to be the per-example losses ``[B]``."""
    losses = loss_fn(model, *rows)
    if not isinstance(losses, torch.Tensor) or losses.shape != (len(rows[0]),):
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(f"loss_fn: must return the per-example negative log-likelihoods, shape "
                         f"[{len(rows[0])}] for {len(rows[0])} rows, got {shape}")
    return losses


@torch.no_grad()
def _all_losses(loss_fn: LossFn, model: nn.Module, data: tuple) -> torch.Tensor:
    """Per-example losses ``[n]`` (float64) over all the data, in chunks."""
    n = len(data[0])
    return torch.cat([_per_example(loss_fn, model, tuple(t[i:i + _CHUNK] for t in data)).double()
                      for i in range(0, n, _CHUNK)])


def _sq_distance(params: list, anchor: list) -> float:
    return sum(float(((p.double() - a.double()) ** 2).sum()) for p, a in zip(params, anchor))


def _chain(model: nn.Module, params: list, anchor: list, loss_fn: LossFn, data: tuple,
           reference: torch.Tensor, nbeta: float, s: SGLDSettings, generator: torch.Generator
           ) -> tuple[np.ndarray, np.ndarray, float, bool]:
    """One SGLD chain from ``w*``: ``(llc_trace, loss_trace, mean MALA acceptance, diverged)``;
    a chain stops at its first non-finite loss or record above :func:`divergence_bound`."""
    n = len(data[0])
    bound = divergence_bound(sum(p.numel() for p in params))
    full = s.batch_size is None or s.batch_size >= n
    eps, gamma = s.step_size, s.localization
    llc_trace = np.full(s.steps, np.nan)
    loss_trace = np.full(s.steps, np.nan)
    accepted: list[float] = []
    with torch.no_grad():
        for p, a in zip(params, anchor):
            p.copy_(a)
    reuse = None     # (losses, loss, gradients) at the current w on the whole data (MALA check)
    for t in range(s.steps):
        if full:
            rows, ref = data, reference
        else:
            index = torch.randperm(n, generator=generator, device=generator.device)[:s.batch_size]
            rows, ref = tuple(x[index] for x in data), reference[index]
        losses, loss, grads = reuse or _loss_and_grad(loss_fn, model, params, rows)
        reuse = None
        record = nbeta * float((losses - ref).mean())
        loss_trace[t] = loss
        llc_trace[t] = record if math.isfinite(record) else np.nan
        if not (math.isfinite(loss) and record <= bound):
            return llc_trace, loss_trace, float("nan"), True
        noise = [torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device)
                 .mul_(math.sqrt(eps)) for p in params]
        check = s.mala_every and t % s.mala_every == 0
        old = [p.detach().clone() for p in params] if check else []
        with torch.no_grad():       # w ← w − ε/2 (nβ ∇L_B(w) + γ (w − w*)) + η
            for p, g, a, z in zip(params, grads, anchor, noise):
                drift = (p - a).mul_(gamma).add_(g, alpha=nbeta)
                p.add_(drift, alpha=-eps / 2).add_(z)
        if not check:
            continue
        # the Metropolis ratio MALA would have computed for this proposal (on the same batch)
        new_losses, new_loss, new_grads = _loss_and_grad(loss_fn, model, params, rows)
        with torch.no_grad():
            potential = nbeta * loss + gamma / 2 * _sq_distance(old, anchor)
            new_potential = nbeta * new_loss + gamma / 2 * _sq_distance(params, anchor)
            back = sum(float((w - q + eps / 2 * (nbeta * g + gamma * (q - a))).double()
                             .pow(2).sum())
                       for w, q, g, a in zip(old, params, new_grads, anchor))
            forth = sum(float(z.double().pow(2).sum()) for z in noise)
        log_ratio = potential - new_potential - (back - forth) / (2 * eps)
        if t >= s.burnin:
            accepted.append(math.exp(min(log_ratio, 0.0)) if math.isfinite(log_ratio) else 0.0)
        if full:
            reuse = (new_losses, new_loss, new_grads)
    mala = float(np.mean(accepted)) if accepted else float("nan")
    return llc_trace, loss_trace, mala, False


def _loss_and_grad(loss_fn: LossFn, model: nn.Module, params: list, rows: tuple
                   ) -> tuple[torch.Tensor, float, tuple]:
    """``(per-example losses [B] float64, their mean, gradients of the mean)``."""
    losses = _per_example(loss_fn, model, rows)
    mean = losses.mean()
    grads = torch.autograd.grad(mean, params, allow_unused=True)
    grads = tuple(torch.zeros_like(p) if g is None else g for p, g in zip(params, grads))
    return losses.detach().double(), float(mean.detach()), grads


def estimate_llc(model: nn.Module, loss_fn: LossFn, data: Sequence[torch.Tensor],
                 settings: Optional[SGLDSettings] = None, seed: int = 0) -> LLCEstimate:
    """The LLC of ``model`` at its current parameters ``w*`` on ``data`` (module docstring).

    ``loss_fn(model, *rows)`` must return the **per-example negative log-likelihood** ``[B]`` of
    the rows ``rows`` (one slice of each tensor of ``data``): a mean-squared error is a valid
    loss only divided by ``2σ²`` for a known noise variance ``σ²`` (the log-likelihood's scale
    sets λ̂'s).  ``data`` is a tuple of tensors sharing their first axis (``n`` examples) on the
    model's device.  Samples every parameter with ``requires_grad`` (a copy of the model in eval
    mode); the model passed in, its gradients and the global RNG are left as they were.  Cost:
    one forward pass over all the data, then per chain and step one forward and backward pass
    on a batch (two with the MALA check on a minibatch)."""
    settings = SGLDSettings() if settings is None else settings
    if not isinstance(settings, SGLDSettings):
        raise ValueError(f"settings: must be an SGLDSettings or None, got "
                         f"{type(settings).__name__}")
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise ValueError(f"loss_fn: must be callable as loss_fn(model, *rows), got "
                         f"{type(loss_fn).__name__}")
    data = _check_data(data)
    _check_seed(seed)
    started = time.perf_counter()
    sampler = copy.deepcopy(model).eval()
    params = [p for p in sampler.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model: has no parameter with requires_grad=True to sample")
    for p in params:
        p.grad = None
    anchor = [p.detach().clone() for p in params]
    n = len(data[0])
    beta = 1.0 / math.log(n) if settings.beta is None else settings.beta
    nbeta = n * beta
    device = params[0].device
    with torch.random.fork_rng(devices=[]), torch.enable_grad():
        reference = _all_losses(loss_fn, sampler, data)
        if not torch.isfinite(reference).all():
            raise ValueError("model: its loss at the given parameters is not finite")
        traces = []
        for chain in range(settings.chains):
            generator = torch.Generator(device=device)
            generator.manual_seed(stream_seed(seed, f"llc-chain:{chain}"))
            traces.append(_chain(sampler, params, anchor, loss_fn, data, reference, nbeta,
                                 settings, generator))
    llc_trace = np.stack([t[0] for t in traces])
    diverged = np.array([t[3] for t in traces])
    draws = llc_trace[:, settings.burnin:]
    chain_llc = np.where(diverged, np.nan, draws.mean(axis=1))
    mean, low, high = mean_ci(chain_llc)
    return LLCEstimate(
        llc=mean, llc_ci=(low, high), chain_llc=chain_llc,
        chain_se=np.array([batch_means_se(row) for row in draws]), llc_trace=llc_trace,
        loss_trace=np.stack([t[1] for t in traces]), mala=np.array([t[2] for t in traces]),
        diverged=diverged, init_loss=float(reference.mean()), nbeta=nbeta, n=n,
        n_params=sum(p.numel() for p in params), settings=settings, seed=seed,
        seconds=time.perf_counter() - started)


# ---- calibration --------------------------------------------------------------------------------
@dataclass
class Calibration:
    """The result of :func:`calibrate`: one table row per ``(step_size, localization)``, the
    estimates themselves (traces included) and the recommended settings (None: none passed)."""

    table: pd.DataFrame
    estimates: dict             # (step_size, localization) -> LLCEstimate
    recommended: Optional[SGLDSettings]


def _check_grid(name: str, values, low_open: bool) -> tuple[float, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"{name}: must be a non-empty sequence of numbers, got {values!r}")
    values = tuple(values)
    if not values:
        raise ValueError(f"{name}: must be a non-empty sequence of numbers, got {values!r}")
    for value in values:
        check_float(name, value, 0.0, low_open=low_open)
    if len(set(values)) != len(values):
        raise ValueError(f"{name}: values must be distinct, got {values!r}")
    return tuple(float(v) for v in values)


def calibrate(model: nn.Module, loss_fn: LossFn, data: Sequence[torch.Tensor],
              step_sizes: Sequence[float], localizations: Sequence[float],
              settings: Optional[SGLDSettings] = None, seed: int = 0,
              rule: Optional[StabilityRule] = None) -> Calibration:
    """Estimate the LLC at every ``(ε, γ)`` of ``step_sizes × localizations`` (the other fields
    from ``settings``, same seed for all) and recommend one.

    The rule (devinterp's guidance made explicit: the largest step size whose loss traces are
    stable, converged and not negative; plus a plateau in ε): a setting is **acceptable** when
    :meth:`LLCEstimate.problems` finds nothing by ``rule`` (:class:`StabilityRule`: no chain
    diverged, none significantly below ``L_n(w*)``, a positive estimate, draws without drift
    between their halves, split-R̂ ≤ 1.1); it is on the **plateau** when, in addition, the next
    smaller ε of the grid (same γ) is acceptable and the two estimates agree within
    ``rule.plateau_tol`` (20%) or 3 combined standard errors: near ULA's stability limit the
    chains stay finite but the estimate grows with ε (discretisation bias), which the single-ε
    checks cannot see.  The **recommended** setting is the one on the plateau with the largest
    ε (the fastest mixing), and among those the smallest γ (the weakest localisation that keeps
    the chains stable, so the least pulled towards ``w*``).  The smallest ε of the grid is never
    on the plateau (nothing to compare it with); the MALA acceptance is reported, not used.
    None on the plateau: ``recommended`` is None (extend the grid or lengthen the chains)."""
    step_sizes = _check_grid("step_sizes", step_sizes, low_open=True)
    localizations = _check_grid("localizations", localizations, low_open=False)
    settings = SGLDSettings() if settings is None else settings
    rule = _check_rule(rule)
    rows, estimates = [], {}
    for eps in step_sizes:
        for gamma in localizations:
            estimate = estimate_llc(model, loss_fn, data,
                                    replace(settings, step_size=eps, localization=gamma), seed)
            estimates[(eps, gamma)] = estimate
            rows.append({"step_size": eps, "localization": gamma,
                         **estimate.summary(rule)})
    table = pd.DataFrame(rows)
    table["plateau"] = False
    ordered = sorted(step_sizes)
    for row in table.itertuples():
        position = ordered.index(row.step_size)
        if not row.acceptable or position == 0:
            continue
        below = table[(table.step_size == ordered[position - 1])
                      & (table.localization == row.localization)].iloc[0]
        gap = abs(row.llc - below.llc)
        table.loc[row.Index, "plateau"] = bool(below.acceptable) and (
            gap <= rule.plateau_tol * abs(below.llc)
            or gap <= rule.drift_se * math.hypot(row.llc_se, below.llc_se))
    good = table[table.plateau]
    table["recommended"] = False
    recommended = None
    if len(good):
        best = good.sort_values(["step_size", "localization"],
                                ascending=[False, True]).index[0]
        table.loc[best, "recommended"] = True
        recommended = replace(settings, step_size=float(table.step_size[best]),
                              localization=float(table.localization[best]))
    return Calibration(table, estimates, recommended)


# ---- over a run's snapshots ---------------------------------------------------------------------
def llc_over_training(model_factory: Callable[[], nn.Module], snapshots, loss_fn: LossFn,
                      data: Sequence[torch.Tensor], settings: SGLDSettings,
                      steps: Optional[Sequence[int]] = None, seed: int = 0,
                      rule: Optional[StabilityRule] = None, progress: bool = False
                      ) -> pd.DataFrame:
    """The LLC at each stored parameter vector of a run (no retraining): one row per snapshot,
    ``step`` then :meth:`LLCEstimate.summary`'s columns.

    ``model_factory()`` builds the architecture (its initial weights are overwritten; the global
    RNG it draws from is restored); ``snapshots`` is ``[S, n_params]`` (e.g. a run's memory-mapped
    ``params.npy``), each row in ``model.parameters()`` order (as
    :meth:`modadd.model.Transformer.flat_parameters` writes it); ``steps`` labels the rows
    (default ``0..S-1``).  Every snapshot is sampled with the same ``settings`` and ``seed``
    (common random numbers: differences between snapshots are not blurred by different noise)."""
    if not callable(model_factory):
        raise ValueError(f"model_factory: must be callable with no argument, got "
                         f"{type(model_factory).__name__}")
    if not isinstance(settings, SGLDSettings):
        raise ValueError(f"settings: must be an SGLDSettings (a calibrated one), got "
                         f"{type(settings).__name__}")
    shape = getattr(snapshots, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] < 1:
        raise ValueError(f"snapshots: must be an array [n_snapshots >= 1, n_params], got "
                         f"{shape if shape is not None else type(snapshots).__name__}")
    steps = list(range(shape[0])) if steps is None else list(steps)
    if len(steps) != shape[0] or not all(is_number(s) for s in steps):
        raise ValueError(f"steps: must hold one number per snapshot ({shape[0]}), got "
                         f"{len(steps)} entries")
    rule = _check_rule(rule)
    with torch.random.fork_rng(devices=[]):
        model = model_factory()
    if not isinstance(model, nn.Module):
        raise ValueError(f"model_factory: must return a torch.nn.Module, got "
                         f"{type(model).__name__}")
    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    if shape[1] != total:
        raise ValueError(f"snapshots: rows must hold the model's {total} parameters, got "
                         f"{shape[1]}")
    from tqdm.auto import tqdm
    rows = []
    for step, index in zip(steps, tqdm(range(shape[0]), desc="LLC", disable=not progress)):
        vector = torch.as_tensor(np.asarray(snapshots[index]), dtype=parameters[0].dtype,
                                 device=parameters[0].device)
        with torch.no_grad():
            nn.utils.vector_to_parameters(vector, parameters)
        estimate = estimate_llc(model, loss_fn, data, settings, seed)
        rows.append({"step": step, **estimate.summary(rule)})
    return pd.DataFrame(rows)


def example_nll(cfg) -> LossFn:
    """The per-example negative log-likelihood a run of ``cfg`` (a RunConfig) trains on, as a
    ``loss_fn(model, tokens, labels) -> [B]``: the cross-entropy of the training forward
    (:func:`modadd.train.training_logits`, log-softmax in ``cfg.train.loss_dtype``), summed over
    an example's scored outputs (with ``eos_target`` the answer and the end token: twice the
    training loss, which averages over outputs)."""
    from .train import training_logits, training_targets

    def nll(model: nn.Module, tokens: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        logits = training_logits(cfg, model, tokens, labels)
        if cfg.train.loss_dtype == "float64":
            logits = logits.double()
        targets = training_targets(cfg, labels)
        losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                 reduction="none")
        return losses.view(len(labels), -1).sum(dim=1)

    return nll


def run_llc(run, settings: SGLDSettings, indices: Optional[Sequence[int]] = None,
            seed: int = 0, rule: Optional[StabilityRule] = None, progress: bool = False
            ) -> pd.DataFrame:
    """:func:`llc_over_training` on a stored run (:class:`modadd.runs.Run`) of an algorithmic
    task: its snapshots ``run.params`` (the run needs ``store_full_params=True``; a
    :class:`modadd.durable.CacheMiss` otherwise), its training split as the data and
    :func:`example_nll` as the loss; ``indices`` selects snapshots (default: all); the ``step``
    column holds their training steps."""
    from .model import Transformer
    from .runs import require_parameter_snapshots
    require_parameter_snapshots(run, "the LLC estimates")
    cfg = run.config
    all_steps = np.asarray(run.snapshot_steps)
    chosen = list(range(len(all_steps))) if indices is None else list(indices)
    bad = [i for i in chosen if not is_int(i) or not 0 <= i < len(all_steps)]
    if bad:
        raise ValueError(f"indices: must be snapshot indices in [0, {len(all_steps)}), got {bad}")
    params = run.params         # memory-mapped: read row by row unless a subset is chosen
    snapshots = params if indices is None else np.stack([np.asarray(params[i]) for i in chosen])
    tokens, labels = cfg.task.split_data()["train"]
    return llc_over_training(lambda: Transformer.for_task(cfg.model, cfg.task), snapshots,
                             example_nll(cfg), (tokens, labels), settings,
                             [int(all_steps[i]) for i in chosen], seed, rule, progress)
