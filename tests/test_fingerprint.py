"""modadd.fingerprint against hand computations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from modadd import fingerprint as F


def test_answer_logprobs_are_log_softmax_at_the_answer():
    logits = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    answers = torch.tensor([1, 0, 0])
    expected = [np.log(0.5), 2 - np.log(np.exp(2) + 1), -np.log(1 + np.e)]
    np.testing.assert_allclose(F.answer_logprobs(logits, answers), expected, rtol=1e-12)
    with pytest.raises(ValueError, match="logits, answers"):
        F.answer_logprobs(logits, answers[:2])


def test_quantile_fingerprint_by_hand():
    values = np.arange(11.0)                       # order statistics 0..10
    q = F.quantile_fingerprint(values, [0.0, 0.25, 0.5, 0.95, 1.0])
    np.testing.assert_allclose(q, [0.0, 2.5, 5.0, 9.5, 10.0])
    assert len(F.DEFAULT_QUANTILES) == 19 and F.DEFAULT_QUANTILES[0] == 0.05 \
        and F.DEFAULT_QUANTILES[-1] == 0.95
    with pytest.raises(ValueError, match="quantiles"):
        F.quantile_fingerprint(values, [0.5, 0.2])


def test_sliced_embedding_uses_projections_direction_major():
    hidden = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    directions = np.array([[1.0, 0.0], [0.0, 1.0]])
    out = F.sliced_quantile_embedding(hidden, directions, [0.0, 0.5, 1.0])
    np.testing.assert_allclose(out, [0.0, 1.0, 3.0, 0.0, 2.0, 4.0])
    d = F.random_directions(5, 7, seed=3)
    assert d.shape == (7, 5) and np.allclose(np.linalg.norm(d, axis=1), 1.0)
    assert np.array_equal(d, F.random_directions(5, 7, seed=3))
    with pytest.raises(ValueError, match="hidden, directions"):
        F.sliced_quantile_embedding(hidden, d, [0.5])
