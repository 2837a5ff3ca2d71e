"""SGD commutators (paper §4.3), measured so that the numbers mean what they say.

Two plain SGD steps of size ``eta`` on minibatches A and B, taken in the two orders, end at

    θ_AB = θ − η g_A(θ) − η g_B(θ − η g_A),      θ_BA = θ − η g_B(θ) − η g_A(θ − η g_B),

and their *commutator* is ``δ = θ_AB − θ_BA``.  To second order ``δ ≈ η² (H_B g_A − H_A g_B)``.

What this module does differently from the original code (``original_code_spec.md`` §5, §10):

- ``δ`` is computed **directly**, ``δ = η[(g_A(θ−ηg_B) − g_A(θ)) − (g_B(θ−ηg_A) − g_B(θ))]``, in
  float64 on a float64 copy of the model; the original's float32 difference of two parameter
  vectors is kept (:func:`commutator_by_difference`) to measure its cancellation error.
- Besides the original's normalised defect ``‖δ‖ / (η²‖g_A‖‖g_B‖)``, which grows by construction
  as gradients shrink (it scales like ``‖H‖/‖g‖``), the raw norms, the batch losses and a
  Hessian-scale normalisation ``‖δ‖ / (η² λ (‖g_A‖ + ‖g_B‖))`` are reported, with ``λ`` the top
  Hessian eigenvalue magnitude from power iteration.  The latter is at most about 1 whatever the
  gradient scale.
- Projections on the execution basis (top-k trajectory PCs of each attention block) report the
  norm fraction ``ρ = ‖Πδ‖/‖δ‖``; the energy fraction is ``ρ²`` and the perpendicular norm
  fraction ``√(1−ρ²)`` (the original plotted ``1−ρ`` under that name).
- Random baselines live in the **same coordinates** as the execution basis (k random directions
  per attention block), and over all live parameters; the original drew them over 1.03M
  coordinates of which 658k were dead weights where δ is exactly 0.

Every measurement is post hoc, on the parameter vectors a ``store_full_params`` run stored at
its snapshots; batches and random directions come from the run's ``measure`` RNG streams, so
measuring cannot change training.

Length: longer than ~400 lines because the direct commutator, its Hessian-vector-product check,
the null, the measurement schedule and their caching are one measurement with one set of
settings.
"""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, replace
from typing import Optional

import numpy as np
import pandas as pd
import torch
from torch.func import functional_call, grad, jvp
from torch.nn import functional as F
from tqdm.auto import tqdm

from . import metrics as M
from .config import RunConfig, stream_seed
from .model import MATRIX_NAMES, Transformer
from .store import cached, is_cached, load_or_train, load_or_train_many, run_key, run_parallel
from .task import Batch, TaskConfig, sample_batch
from .taskdata import training_batch
from .train import snapshot_steps

COMMUTATOR_VERSION = 1
BASES = ("causal", "final", "held-out seed", "random (same blocks)", "random (all live)")
VECTORS = ("delta", "g_a", "g_b")    # per pair (plus "delta32" with the float32 check)


# --------------------------------------------------------------------------- loss of a flat vector

class FlatLoss:
    """Mean cross-entropy of a model as a function of its flat parameter vector.

    The vector is in ``model.parameters()`` order (as :meth:`Transformer.flat_parameters`);
    ``dtype`` is the precision every gradient and Hessian-vector product is computed in.
    """

    def __init__(self, model: Transformer, dtype: torch.dtype = torch.float64):
        self.model = copy.deepcopy(model).to(dtype).train()
        self.dtype = dtype
        self._names = [name for name, _ in self.model.named_parameters()]
        self._shapes = [p.shape for p in self.model.parameters()]
        self._sizes = [p.numel() for p in self.model.parameters()]
        self.n_params = sum(self._sizes)

    def _unflatten(self, flat: torch.Tensor) -> dict:
        return {name: part.view(shape) for name, part, shape
                in zip(self._names, flat.split(self._sizes), self._shapes)}

    def loss(self, flat: torch.Tensor, batch: Batch, with_aux: bool = False):
        """Scalar loss at ``flat`` on ``batch`` (``with_aux``: ``(loss, detached loss)``, the
        form :func:`torch.func.grad` with ``has_aux`` needs)."""
        if flat.shape != (self.n_params,) or flat.dtype != self.dtype:
            raise ValueError(f"flat: expected a {self.dtype} vector of shape ({self.n_params},), "
                             f"got {flat.dtype} {tuple(flat.shape)}")
        logits = functional_call(self.model, self._unflatten(flat), (batch.tokens,))
        value = F.cross_entropy(logits, batch.labels)
        return (value, value.detach()) if with_aux else value

    def grad(self, flat: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, float]:
        """(gradient ``[n_params]``, loss) at ``flat`` on ``batch``."""
        gradient, loss = grad(self.loss, has_aux=True)(flat, batch, True)
        return gradient, float(loss)

    def hvp(self, flat: torch.Tensor, batch: Batch, vector: torch.Tensor) -> torch.Tensor:
        """Hessian-vector product ``H(flat) @ vector`` (forward-over-reverse)."""
        return jvp(lambda f: grad(self.loss)(f, batch), (flat,), (vector,))[1]


def commutator(loss: FlatLoss, theta: torch.Tensor, batch_a: Batch, batch_b: Batch,
               eta: float) -> dict:
    """The commutator of one SGD step on A and one on B, computed directly.

    Returns ``{"delta", "g_a", "g_b"}`` (vectors, ``loss.dtype``) and ``{"loss_a", "loss_b"}``.
    """
    g_a, loss_a = loss.grad(theta, batch_a)
    g_b, loss_b = loss.grad(theta, batch_b)
    g_a_after_b, _ = loss.grad(theta - eta * g_b, batch_a)
    g_b_after_a, _ = loss.grad(theta - eta * g_a, batch_b)
    delta = eta * ((g_a_after_b - g_a) - (g_b_after_a - g_b))
    return {"delta": delta, "g_a": g_a, "g_b": g_b, "loss_a": loss_a, "loss_b": loss_b}


def commutator_by_difference(loss: FlatLoss, theta: torch.Tensor, batch_a: Batch,
                             batch_b: Batch, eta: float) -> torch.Tensor:
    """The original's form: ``θ_AB − θ_BA`` as a difference of two parameter vectors, all in
    ``loss.dtype`` (float32 reproduces its cancellation error)."""
    g_a, _ = loss.grad(theta, batch_a)
    g_b, _ = loss.grad(theta, batch_b)
    theta_a, theta_b = theta - eta * g_a, theta - eta * g_b
    theta_ab = theta_a - eta * loss.grad(theta_a, batch_b)[0]
    theta_ba = theta_b - eta * loss.grad(theta_b, batch_a)[0]
    return theta_ab - theta_ba


def hessian_norm(loss, theta: torch.Tensor, batch, max_products: int = 30,
                 rng: Optional[np.random.Generator] = None, tol: float = 1e-3) -> tuple[float, int]:
    """(largest |eigenvalue| of the loss Hessian on ``batch``, Hessian-vector products used).

    Lanczos (``scipy.sparse.linalg.eigsh``, ``which="LM"``) on Hessian-vector products: it
    converges in far fewer products than power iteration when the top two eigenvalues are close.
    ``loss`` needs ``hvp(theta, batch, vector)``; the start vector comes from ``rng``.
    """
    from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
    if max_products < 4:
        raise ValueError(f"max_products: must be >= 4, got {max_products}")
    n, count = theta.numel(), [0]

    def matvec(v: np.ndarray) -> np.ndarray:
        count[0] += 1
        vector = torch.from_numpy(np.ascontiguousarray(v, np.float64).reshape(-1))
        return loss.hvp(theta, batch, vector.to(theta.dtype)).double().numpy()

    rng = rng or np.random.default_rng(0)
    operator = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    try:
        values = eigsh(operator, k=1, which="LM", v0=rng.standard_normal(n),
                       ncv=min(n, max(3, min(10, max_products - 1))), tol=tol,
                       maxiter=max(1, max_products // 10), return_eigenvectors=False)
    except ArpackNoConvergence as stop:      # best estimate so far
        values = stop.eigenvalues
        if len(values) == 0:
            return np.nan, count[0]
    return float(np.abs(values).max()), count[0]


# ------------------------------------------------------------------------ coordinates and bases

def block_slices(model: Transformer) -> dict[tuple[int, str], slice]:
    """Where each attention matrix ``(layer, W_*)`` sits in the flat parameter vector.

    Each is contiguous and row-major, so ``flat[s].view(d, d)`` equals
    :meth:`Transformer.attention_matrix` (tested).
    """
    d = model.cfg.d_model
    out = {}
    for layer, block in enumerate(model.blocks):
        qkv = model.flat_offset(block.attn.qkv.weight)
        for index, name in enumerate(MATRIX_NAMES[:3]):
            out[(layer, name)] = slice(qkv + index * d * d, qkv + (index + 1) * d * d)
        o = model.flat_offset(block.attn.out.weight)
        out[(layer, "W_O")] = slice(o, o + d * d)
    return out


def live_mask(model: Transformer, task: TaskConfig) -> np.ndarray:
    """``[n_params] bool``: coordinates whose gradient can be non-zero on this task.

    Every parameter of an attention-only model is live except embedding rows of token ids the
    task never emits (e.g. the value 0 under multiplication).  The original's P = 1.03M counted
    658k MLP weights that never entered the forward pass.
    """
    emitted = set(task.value_tokens) | set(task.marker_tokens)
    emitted |= set(task.distractor_tokens.tolist())
    if task.query_token is not None:
        emitted.add(task.query_token)
    parts = []
    for param in model.parameters():
        mask = np.ones(param.shape, bool)
        if param is model.embed.weight:
            mask[[t for t in range(param.shape[0]) if t not in emitted]] = False
        parts.append(mask.reshape(-1))
    return np.concatenate(parts)


def trajectory_bases(snapshots: np.ndarray, k: int, upto: Optional[int] = None) -> np.ndarray:
    """Top-k trajectory PCs of every block, ``[L, 4, k, d²]``, from ``snapshots[: upto + 1]``
    (default: all), centred over time.  Components that do not exist yet (n snapshots span at
    most n − 1 directions) are NaN rows, so ``out[:, :, :j]`` is the top-j basis for any j."""
    snapshots = snapshots if upto is None else snapshots[: upto + 1]
    n, layers = snapshots.shape[:2]
    out = np.full((layers, 4, k, snapshots.shape[-1] ** 2), np.nan)
    for layer in range(layers):
        for b in range(4):
            X = M.trajectory_matrix(snapshots[:, layer, b])
            for available in range(min(k, n - 1), 0, -1):
                try:
                    out[layer, b, :available] = M.top_subspace(X, available)
                    break
                except ValueError:      # the block moved in fewer directions
                    continue
    return out


def nested_bases(bases: np.ndarray, ks) -> dict[int, np.ndarray]:
    """``{k: bases[:, :, :k]}`` for each k (top-k PCs are nested, so one SVD serves all k)."""
    return {k: bases[:, :, :k] for k in ks}


def random_block_bases(layers: int, k: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """``[L, 4, k, dim]``: k Haar-random orthonormal directions in each block's coordinates."""
    gauss = rng.standard_normal((layers, 4, dim, k))
    q, r = np.linalg.qr(gauss)
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
    return np.swapaxes(q, -1, -2)


def block_energy(vector: np.ndarray, slices: dict, bases: np.ndarray) -> float:
    """``‖Πv‖²`` for the block-diagonal projector of ``bases [L, 4, k, d²]`` (orthonormal rows
    per block; blocks are disjoint, so energies add).  NaN bases give NaN."""
    total = 0.0
    for (layer, name), where in slices.items():
        coefficients = bases[layer, MATRIX_NAMES.index(name)] @ vector[where]
        total += float(coefficients @ coefficients)
    return total


def projected_fraction(vector: np.ndarray, slices: dict, bases: np.ndarray) -> float:
    """``ρ = ‖Πv‖/‖v‖``: the norm fraction of ``vector`` inside the block subspaces."""
    vector = np.asarray(vector, np.float64)
    norm2 = float(vector @ vector)
    if norm2 == 0:
        return np.nan
    return float(np.sqrt(block_energy(vector, slices, bases) / norm2))


def random_subspace_fraction(vector_norm2_live: float, vector_norm2: float, K: int, P: int,
                             rng: np.random.Generator, size: int) -> np.ndarray:
    """``size`` draws of ``ρ`` for a Haar-random K-dim subspace of the P live coordinates.

    Exact in law and cheap: the energy a fixed vector leaves in a random K-subspace of R^P is its
    norm² times Beta(K/2, (P−K)/2) (tested against explicit QR bases).  ``vector_norm2_live`` is
    the vector's energy on live coordinates (all of it, for a gradient-built vector).
    """
    if not 1 <= K < P:
        raise ValueError(f"K: must be in [1, {P}), got {K}")
    share = rng.beta(K / 2, (P - K) / 2, size=size)
    return np.sqrt(share * vector_norm2_live / vector_norm2)


# ------------------------------------------------------------------------------------ settings

@dataclass(frozen=True)
class CommutatorSettings:
    """What a commutator measurement does at each measured snapshot. Validated on construction."""

    eta: float = 1e-3                    # SGD step size of the two steps (original: 1e-3), > 0
    pairs: int = 9                       # independent (A, B) batch pairs per point, >= 1
    batch_size: Optional[int] = None     # examples per batch (None: the run's batch size)
    ks: tuple = (1, 3, 5, 10)            # PCs per attention block of the execution basis
    random_trials: int = 10              # random bases per point and k, >= 1
    hessian_products: int = 30           # Hessian-vector products allowed for ‖H‖, >= 4
    hessian_batch: int = 256             # examples (all m, equal shares) for ‖H‖, >= 1
    steps: Optional[tuple] = None        # snapshot steps measured (None: DEFAULT_STEPS ∩ run)
    float32_check: bool = True           # also compute the original's float32 difference form

    def __post_init__(self) -> None:
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if self.steps is not None:
            object.__setattr__(self, "steps", tuple(int(s) for s in self.steps))
        if not (isinstance(self.eta, (int, float)) and self.eta > 0):
            raise ValueError(f"eta: must be a number > 0, got {self.eta!r}")
        for name in ("pairs", "random_trials", "hessian_products", "hessian_batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")
        if self.batch_size is not None and (not isinstance(self.batch_size, int)
                                            or self.batch_size < 1):
            raise ValueError(f"batch_size: must be None or an integer >= 1, got "
                             f"{self.batch_size!r}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks: must be a non-empty tuple of integers >= 1, got {self.ks}")

    def measured_steps(self, cfg: RunConfig) -> list[int]:
        """The snapshot steps of ``cfg`` this measures (each must be a snapshot step)."""
        available = snapshot_steps(cfg).tolist()
        wanted = self.steps if self.steps is not None else default_steps(cfg)
        missing = [s for s in wanted if s not in available]
        if missing:
            raise ValueError(f"steps: {missing} are not snapshot steps of the run "
                             f"(every {cfg.train.snapshot_every}, up to {cfg.train.n_steps})")
        return list(wanted)


def default_steps(cfg: RunConfig, count: int = 16) -> tuple:
    """About ``count`` snapshot steps, log-spaced early (where the basis forms) and then even."""
    available = snapshot_steps(cfg)
    grid = np.unique(np.concatenate([np.geomspace(1, len(available) - 1, count // 2).round(),
                                     np.linspace(0, len(available) - 1, count // 2).round()]))
    return tuple(int(available[int(i)]) for i in grid)


# ---------------------------------------------------------------------------------- measurement

def _hessian_batch(cfg: RunConfig, size: int, generator: torch.Generator) -> Batch:
    """``size`` examples, equal shares of every m (one sub-batch per m, so per-batch marker
    positions work too); only tokens, labels and m are filled in."""
    share = -(-size // len(cfg.task.m_values))
    parts = [sample_batch(cfg.task, share, m, generator=generator) for m in cfg.task.m_values]
    return Batch(torch.cat([p.tokens for p in parts]), torch.cat([p.labels for p in parts]),
                 None, None, torch.cat([p.m for p in parts]))


def _measure_batch(cfg: RunConfig, settings: CommutatorSettings, step: int,
                   generator: torch.Generator) -> Batch:
    """A batch drawn as training draws its batches (m per batch under the mixed schedule)."""
    size = settings.batch_size or cfg.train.batch_size
    return training_batch(replace(cfg, train=replace(cfg.train, batch_size=size)), step,
                          generator)


def _point_rows(cfg: RunConfig, run, index: int, step: int, settings: CommutatorSettings,
                bases: dict, slices: dict, live: np.ndarray) -> list[tuple]:
    """All rows of one measured snapshot: scalars per pair, then projections."""
    rng = np.random.default_rng(stream_seed(cfg.seed, f"measure:commutator-bases:{step}"))
    generator = torch.Generator().manual_seed(stream_seed(cfg.seed, f"measure:commutator:{step}"))
    theta32 = torch.from_numpy(np.array(run.params[index], dtype=np.float32))
    model = run.model_at(index)
    loss64, loss32 = FlatLoss(model, torch.float64), FlatLoss(model, torch.float32)
    theta = theta32.double()
    eta = settings.eta
    rows = []
    P_live, K_dim = int(live.sum()), run.snapshots.shape[-1] ** 2
    n_blocks = len(slices)
    random_bases = {k: [random_block_bases(cfg.model.n_layers, k, K_dim, rng)
                        for _ in range(settings.random_trials)] for k in settings.ks}
    h_batch = _hessian_batch(cfg, settings.hessian_batch, torch.Generator().manual_seed(
        stream_seed(cfg.seed, f"measure:commutator-hessian:{step}")))
    # a normalising scale, not a cancellation-prone difference: float32 is ample (and ~6x faster)
    lam, products = hessian_norm(loss32, theta32, h_batch, settings.hessian_products, rng)
    rows += [(step, -1, "hessian_norm", "", 0, lam), (step, -1, "hessian_products", "", 0,
                                                       float(products))]
    vectors_by_pair = []
    for pair in range(settings.pairs):
        batch_a = _measure_batch(cfg, settings, step, generator)
        batch_b = _measure_batch(cfg, settings, step, generator)
        out = commutator(loss64, theta, batch_a, batch_b, eta)
        delta, g_a, g_b = (out[v].numpy() for v in VECTORS)
        na, nb, nd = (float(np.linalg.norm(v)) for v in (g_a, g_b, delta))
        scalars = {"m_a": _batch_m(batch_a), "m_b": _batch_m(batch_b),
                   "loss_a": out["loss_a"], "loss_b": out["loss_b"],
                   "grad_norm_a": na, "grad_norm_b": nb,
                   "grad_cos": float(g_a @ g_b) / max(na * nb, 1e-300),
                   "delta_norm": nd,
                   "defect_original": nd / max(eta * na * eta * nb, 1e-300),
                   "defect_hessian": nd / max(eta ** 2 * lam * (na + nb), 1e-300)}
        vectors = {"delta": delta, "g_a": g_a, "g_b": g_b}
        if settings.float32_check:
            d32 = commutator_by_difference(loss32, theta32, batch_a, batch_b, eta).double()
            scalars["delta32_norm"] = float(torch.linalg.vector_norm(d32))
            scalars["delta32_error"] = float(torch.linalg.vector_norm(d32 - out["delta"])) / \
                max(nd, 1e-300)
            vectors["delta32"] = d32.numpy()
        rows += [(step, pair, name, "", 0, float(value)) for name, value in scalars.items()]
        vectors_by_pair.append((pair, vectors))
    # the optimizer's own movement: its single update after this snapshot, and the net of the
    # updates to the next snapshot (both NaN at the last snapshot)
    moves = {}
    if index < len(run.updates):
        moves["update"] = np.asarray(run.updates[index], np.float64)
        moves["next_interval"] = (np.asarray(run.params[index + 1], np.float64)
                                  - np.asarray(run.params[index], np.float64))
    vectors_by_pair.append((-1, moves))
    for pair, vectors in vectors_by_pair:
        for name, vector in vectors.items():
            norm2 = float(vector @ vector)
            for k in settings.ks:
                for basis in ("causal", "final", "held-out seed"):
                    rows.append((step, pair, f"rho:{name}", basis, k,
                                 projected_fraction(vector, slices, bases[basis][k])))
                trials = [projected_fraction(vector, slices, b) for b in random_bases[k]]
                rows.append((step, pair, f"rho:{name}", "random (same blocks)", k,
                             float(np.mean(trials))))
                draws = random_subspace_fraction(float(vector[live] @ vector[live]), norm2,
                                                 n_blocks * k, P_live, rng,
                                                 settings.random_trials)
                rows.append((step, pair, f"rho:{name}", "random (all live)", k,
                             float(np.mean(draws))))
            attention = sum(float(vector[s] @ vector[s]) for s in slices.values())
            rows.append((step, pair, f"attention_share:{name}", "", 0,
                         float(np.sqrt(attention / norm2)) if norm2 else np.nan))
    return rows


def _batch_m(batch: Batch) -> int:
    """The batch's m, or -1 when its examples mix several."""
    values = batch.m.unique()
    return int(values[0]) if len(values) == 1 else -1


def _measure(cfg: RunConfig, heldout: RunConfig, settings: CommutatorSettings) -> pd.DataFrame:
    run = load_or_train(cfg, trajectories=True, progress=False)
    other = load_or_train(heldout, trajectories=True, progress=False)
    snapshots = run.snapshots
    model = run.model_at(0)
    slices, live = block_slices(model), live_mask(model, cfg.task)
    steps = run.snapshot_steps.tolist()
    k_max = max(settings.ks)
    final = nested_bases(trajectory_bases(snapshots, k_max), settings.ks)
    held = nested_bases(trajectory_bases(other.snapshots, k_max), settings.ks)
    rows = []
    for step in tqdm(settings.measured_steps(cfg), desc=f"commutators seed {cfg.seed}",
                     leave=False):
        index = steps.index(step)
        bases = {"final": final, "held-out seed": held,
                 "causal": nested_bases(trajectory_bases(snapshots, k_max, upto=index),
                                        settings.ks)}
        rows += _point_rows(cfg, run, index, step, settings, bases, slices, live)
    frame = pd.DataFrame(rows, columns=["step", "pair", "quantity", "basis", "k", "value"])
    frame.insert(0, "seed", cfg.seed)
    return frame


def commutator_table(cfg: RunConfig, heldout: RunConfig,
                     settings: CommutatorSettings = CommutatorSettings()) -> pd.DataFrame:
    """Every commutator measurement of one run (cached), as tidy rows
    ``seed, step, pair, quantity, basis, k, value``.

    ``cfg`` and ``heldout`` must store full parameters; ``heldout`` (another seed) supplies the
    held-out basis.  Quantities per pair: ``m_a, m_b, loss_a, loss_b, grad_norm_a/b, grad_cos,
    delta_norm, defect_original, defect_hessian, delta32_norm, delta32_error``; per point
    (``pair = -1``): ``hessian_norm, hessian_products``; and ``rho:<vector>`` for ``delta,
    delta32, g_a, g_b`` (per pair)
    and ``update, next_interval`` (the optimizer's movement, pair -1) on each basis and k, and
    ``attention_share:<vector>`` (norm fraction on attention-weight coordinates).
    """
    return cached("commutators", COMMUTATOR_VERSION, _inputs(cfg, heldout, settings),
                  lambda: _measure(cfg, heldout, settings))


def _inputs(cfg: RunConfig, heldout: RunConfig, settings: CommutatorSettings) -> dict:
    if cfg.seed == heldout.seed:
        raise ValueError(f"heldout: must be another seed than {cfg.seed}")
    return {"run": run_key(cfg), "heldout": run_key(heldout), "settings": asdict(settings)}


def commutator_tables(cfgs: list[RunConfig],
                      settings: CommutatorSettings = CommutatorSettings()) -> pd.DataFrame:
    """:func:`commutator_table` of every run, each with the next seed's run as held-out basis."""
    if len(cfgs) < 2:
        raise ValueError(f"cfgs: need >= 2 runs (one supplies the held-out basis), got "
                         f"{len(cfgs)}")
    return pd.concat([commutator_table(c, cfgs[(i + 1) % len(cfgs)], settings)
                      for i, c in enumerate(cfgs)], ignore_index=True)


def _table_worker(args: tuple) -> None:
    commutator_table(*args)


def compute_tables(cfgs: list[RunConfig], settings: CommutatorSettings = CommutatorSettings(),
                   workers: int = 1) -> None:
    """Fill the cache of :func:`commutator_tables` with ``workers`` processes (one thread each,
    one run per job), skipping runs already cached; missing runs are trained first."""
    jobs = [(c, cfgs[(i + 1) % len(cfgs)], settings) for i, c in enumerate(cfgs)]
    jobs = [j for j in jobs if not is_cached("commutators", COMMUTATOR_VERSION, _inputs(*j))]
    if jobs:
        needed = list({run_key(c): c for job in jobs for c in job[:2]}.values())
        load_or_train_many(needed, n_workers=workers, trajectories=True)  # before jobs share them
        run_parallel(_table_worker, jobs, workers, desc="commutator runs")


# ------------------------------------------------------------------------------------- summaries

def pair_values(table: pd.DataFrame, quantities=None) -> pd.DataFrame:
    """Scalar quantities as a wide frame, one row per (seed, step, pair); per-point quantities
    (``pair = -1``, e.g. ``hessian_norm``) are broadcast to every pair of their point."""
    scalars = table[~table.quantity.str.contains(":")]
    wide = scalars.pivot_table(index=["seed", "step", "pair"], columns="quantity",
                               values="value", aggfunc="first").reset_index()
    wide.columns.name = None
    point = wide[wide.pair == -1].drop(columns="pair").dropna(axis=1, how="all")
    pairs = wide[wide.pair >= 0].drop(columns=[c for c in point.columns
                                               if c not in ("seed", "step")])
    out = pairs.merge(point, on=["seed", "step"], how="left")
    if quantities is not None:
        out = out[["seed", "step", "pair", *quantities]]
    return out.reset_index(drop=True)


def rho_table(table: pd.DataFrame) -> pd.DataFrame:
    """Projected norm fractions as ``seed, step, pair, vector, basis, k, rho`` plus the energy
    fraction ``rho2 = ρ²``, the perpendicular norm fraction ``perp = √(1−ρ²)``, and ``ratio`` =
    ρ / ρ(random k-directions in the same blocks) for the same vector, point and k."""
    rows = table[table.quantity.str.startswith("rho:")].copy()
    rows["vector"] = rows.quantity.str.slice(4)
    rows = rows.rename(columns={"value": "rho"}).drop(columns="quantity")
    rows["rho2"] = rows.rho ** 2
    rows["perp"] = np.sqrt(1 - rows.rho2)
    keys = ["seed", "step", "pair", "vector", "k"]
    random = rows[rows.basis == "random (same blocks)"].set_index(keys).rho
    rows["ratio"] = rows.rho.to_numpy() / random.reindex(
        pd.MultiIndex.from_frame(rows[keys])).to_numpy()
    return rows[["seed", "step", "pair", "vector", "basis", "k", "rho", "rho2", "perp",
                 "ratio"]].reset_index(drop=True)


def over_pairs(frame: pd.DataFrame, value: str, by=(), q: float = 0.5) -> pd.DataFrame:
    """Quantile ``q`` (default the median) of ``value`` over the pairs of each (seed, step,
    *by) point; the per-point statistic the figures average over seeds."""
    keys = ["seed", "step", *by]
    return frame.groupby(keys, as_index=False)[value].quantile(q)


def phase(steps, n_steps: int, early: float = 0.2, late: float = 0.2) -> np.ndarray:
    """``"early"`` for steps in (0, early·n], ``"late"`` for steps ≥ (1 − late)·n, else
    ``"mid"``; step 0 (the initialisation, no trajectory yet) is ``"init"``."""
    steps = np.asarray(steps)
    out = np.where(steps <= early * n_steps, "early",
                   np.where(steps >= (1 - late) * n_steps, "late", "mid"))
    return np.where(steps == 0, "init", out)
