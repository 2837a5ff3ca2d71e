"""Training "fingerprints": distributional summaries of a model on a fixed probe set.

A fingerprint is the vector of ``Q`` empirical quantiles of the log-probabilities the model gives
the **correct answer** on a fixed probe set (default: the 19 quantiles 0.05, 0.10, …, 0.95), and
optionally a *sliced* quantile embedding of hidden states: ``J`` fixed random unit directions,
``Q`` quantiles of the probes' projections on each (``J·Q`` values).  A sequence of fingerprints
over training is the input of :mod:`modadd.dmd`.

Quantiles use linear interpolation between order statistics (numpy's default, type 7).
"""
from __future__ import annotations

import numpy as np
import torch

DEFAULT_QUANTILES = tuple(np.round(np.linspace(0.05, 0.95, 19), 10))


def _check_quantiles(quantiles) -> np.ndarray:
    q = np.asarray(quantiles, dtype=float)
    if q.ndim != 1 or q.size == 0 or np.any((q < 0) | (q > 1)) or np.any(np.diff(q) <= 0):
        raise ValueError(f"quantiles: must be increasing levels in [0, 1], got {quantiles}")
    return q


def answer_logprobs(logits: torch.Tensor, answers: torch.Tensor) -> np.ndarray:
    """``log p(answer)`` per example from answer-position logits ``[M, n_classes]``."""
    if logits.ndim != 2 or answers.shape != logits.shape[:1]:
        raise ValueError(f"logits, answers: need [M, n_classes] and [M], got "
                         f"{tuple(logits.shape)} and {tuple(answers.shape)}")
    logp = torch.log_softmax(logits.detach().double(), dim=-1)
    return logp.gather(1, answers.long()[:, None])[:, 0].numpy()


def quantile_fingerprint(values: np.ndarray, quantiles=DEFAULT_QUANTILES) -> np.ndarray:
    """``[Q]`` empirical quantiles of ``values [M]``."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values: need a non-empty 1-D array, got shape {values.shape}")
    return np.quantile(values, _check_quantiles(quantiles))


def random_directions(d: int, n_directions: int, seed: int) -> np.ndarray:
    """``[J, d]`` independent uniformly random unit vectors (Gaussian, normalised)."""
    if d < 1 or n_directions < 1:
        raise ValueError(f"d, n_directions: must be >= 1, got {d}, {n_directions}")
    v = np.random.default_rng(seed).normal(size=(n_directions, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sliced_quantile_embedding(hidden: np.ndarray, directions: np.ndarray,
                              quantiles=DEFAULT_QUANTILES) -> np.ndarray:
    """``[J·Q]``: for each direction (row of ``directions [J, d]``) the quantiles of the probes'
    projections ``hidden [M, d] @ direction``, direction-major."""
    hidden, directions = np.asarray(hidden, float), np.asarray(directions, float)
    if hidden.ndim != 2 or directions.ndim != 2 or hidden.shape[1] != directions.shape[1]:
        raise ValueError(f"hidden, directions: need [M, d] and [J, d], got {hidden.shape} and "
                         f"{directions.shape}")
    projections = hidden @ directions.T                       # [M, J]
    return np.quantile(projections, _check_quantiles(quantiles), axis=0).T.ravel()
