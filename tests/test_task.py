"""Task statistics against independent computations: exact enumeration, recomputed labels, χ²."""
from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats

from modadd.task import TaskConfig, chance_accuracy, describe, max_markers, sample_batch


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def recompute_labels(task: TaskConfig, tokens: np.ndarray) -> list[int]:
    """Labels read off the token rows alone: the token after each marker, summed/multiplied."""
    markers = set(task.marker_tokens)
    labels = []
    for row in tokens:
        marked = [int(row[p + 1]) for p in range(len(row) - 1) if int(row[p]) in markers]
        acc = 0 if task.op == "add" else 1
        for value in marked:
            acc = (acc + value) % task.C if task.op == "add" else (acc * value) % task.C
        labels.append(acc)
    return labels


@pytest.mark.parametrize("task", [TaskConfig(), TaskConfig(C=5, marker_ids="single"),
                                  TaskConfig(op="mul", C=7), TaskConfig(readout="query"),
                                  TaskConfig(positions="per_batch")],
                         ids=["add-C8", "add-C5-single", "mul-C7", "query", "per-batch"])
def test_labels_equal_recomputation_from_tokens(task):
    for m in task.m_values:
        batch = sample_batch(task, 300, m, generator=gen(m))
        assert batch.labels.tolist() == recompute_labels(task, batch.tokens.numpy())


@pytest.mark.parametrize("op,C", [("add", 8), ("add", 5), ("mul", 7)])
def test_labels_uniform_for_every_m(op, C):
    task = TaskConfig(op=op, C=C)
    support = list(task.value_tokens) if op == "mul" else list(range(C))
    for m in task.m_values:
        labels = sample_batch(task, 20_000, m, generator=gen(10 + m)).labels.numpy()
        assert set(np.unique(labels)) <= set(support)
        counts = [(labels == k).sum() for k in support]
        assert stats.chisquare(counts).pvalue > 1e-3, (m, counts)
    if op == "mul":
        assert 0 not in labels


def test_positions_non_adjacent_and_value_follows_marker():
    task = TaskConfig(T=12, m_values=(1, 2, 3, 4, 5))
    for m in task.m_values:
        batch = sample_batch(task, 500, m, generator=gen(m))
        positions = batch.marker_positions.numpy()
        assert positions.shape == (500, m)
        assert positions.min() >= 1 and positions.max() <= task.T - 2
        assert (np.diff(positions, axis=1) >= 2).all()
        tokens = batch.tokens.numpy()
        rows = np.arange(500)[:, None]
        assert (tokens[rows, positions] == task.marker_offset + np.arange(m)).all()
        assert np.isin(tokens[rows, positions + 1], task.value_tokens).all()
        assert (tokens[rows, positions + 1] == batch.values.numpy()).all()


@pytest.mark.parametrize("task", [TaskConfig(op="mul", C=7, T=10, m_values=(1, 2, 3, 4)),
                                  TaskConfig(marker_ids="single", T=10, m_values=(1, 2, 3, 4))],
                         ids=["mul-ordinal", "add-single"])
def test_marker_ids_and_value_tokens_read_off_tokens(task):
    """Scan each row for marker tokens (no use of batch.marker_positions or batch.values)."""
    markers = set(task.marker_tokens)
    for m in task.m_values:
        tokens = sample_batch(task, 400, m, generator=gen(20 + m)).tokens.numpy()
        for row in tokens:
            found = [p for p, t in enumerate(row.tolist()) if t in markers]
            assert len(found) == m
            assert all(1 <= p <= task.T - 2 for p in found)
            assert all(b - a >= 2 for a, b in zip(found, found[1:]))
            expected_ids = ([task.marker_offset + i for i in range(m)]
                            if task.marker_ids == "ordinal" else [task.marker_offset] * m)
            assert [int(row[p]) for p in found] == expected_ids
            low = 1 if task.op == "mul" else 0
            assert all(low <= int(row[p + 1]) < task.C for p in found)


def non_adjacent_subsets(T: int, m: int) -> list[tuple[int, ...]]:
    return [s for s in itertools.combinations(range(1, T - 1), m)
            if all(b - a >= 2 for a, b in zip(s, s[1:]))]


@pytest.mark.parametrize("m", [2, 3])
def test_positions_uniform_over_all_non_adjacent_subsets(m):
    task = TaskConfig(T=8, m_values=(m,))
    subsets = non_adjacent_subsets(task.T, m)
    drawn = sample_batch(task, 30_000, m, generator=gen(m)).marker_positions.numpy()
    counts = {s: 0 for s in subsets}
    for row in map(tuple, drawn):
        counts[row] += 1  # KeyError if a drawn set is not a valid non-adjacent set
    assert min(counts.values()) > 0
    assert stats.chisquare(list(counts.values())).pvalue > 1e-3


def test_max_markers_matches_enumeration():
    for T in range(4, 13):
        assert max_markers(T) == max(m for m in range(1, T) if non_adjacent_subsets(T, m))


def test_distractors_fixed_set_excluding_values_markers_query():
    task = TaskConfig(readout="query")
    distractors = set(task.distractor_tokens.tolist())
    assert distractors.isdisjoint(range(task.C))
    assert distractors.isdisjoint(range(100, 104))  # markers of m=4, even in m=1 batches
    assert task.query_token not in distractors
    assert len(distractors) == task.vocab_size - task.C - 4 - 1 == task.n_distractors
    for m in task.m_values:
        batch = sample_batch(task, 400, m, generator=gen(m))
        tokens = batch.tokens.numpy()
        marked = np.zeros_like(tokens, dtype=bool)
        rows = np.arange(400)[:, None]
        marked[rows, batch.marker_positions.numpy()] = True
        marked[rows, batch.marker_positions.numpy() + 1] = True
        marked[:, -1] = True  # query
        assert set(np.unique(tokens[~marked])) <= distractors
        assert (tokens[:, -1] == task.query_token).all()
        assert tokens.shape == (400, task.T + 1)


def test_distractor_set_is_the_same_for_every_m():
    """Expected set computed by hand; every m draws from all of it and nothing else."""
    task = TaskConfig(T=8, C=5, m_values=(1, 2, 3), vocab_size=24, marker_offset=10,
                      readout="query")
    expected = set(range(24)) - set(range(5)) - {10, 11, 12} - {23}
    assert set(task.distractor_tokens.tolist()) == expected
    assert task.n_distractors == 24 - 5 - 3 - 1 == len(expected)
    for m in task.m_values:
        batch = sample_batch(task, 3000, m, generator=gen(30 + m))
        tokens = batch.tokens.numpy()
        marked = np.zeros_like(tokens, dtype=bool)
        rows = np.arange(len(tokens))[:, None]
        marked[rows, batch.marker_positions.numpy()] = True
        marked[rows, batch.marker_positions.numpy() + 1] = True
        marked[:, -1] = True
        seen = tokens[~marked]
        assert set(np.unique(seen).tolist()) == expected  # all of the set, in every m
        counts = [(seen == t).sum() for t in sorted(expected)]
        assert stats.chisquare(counts).pvalue > 1e-3  # i.i.d. uniform over the set


def test_single_marker_id():
    task = TaskConfig(marker_ids="single")
    batch = sample_batch(task, 100, 4, generator=gen())
    rows = torch.arange(100)[:, None]
    assert (batch.tokens[rows, batch.marker_positions] == task.marker_offset).all()
    assert 101 in task.distractor_tokens.tolist()


def test_per_batch_positions_shared_per_example_varied():
    shared = sample_batch(TaskConfig(positions="per_batch"), 64, 3, generator=gen())
    assert (shared.marker_positions == shared.marker_positions[0]).all()
    varied = sample_batch(TaskConfig(), 64, 3, generator=gen())
    assert len({tuple(r) for r in varied.marker_positions.tolist()}) > 10


def test_mixed_m_per_example_padding():
    task = TaskConfig()
    batch = sample_batch(task, 2000, None, generator=gen())
    counts = np.bincount(batch.m.numpy(), minlength=5)[1:]
    assert stats.chisquare(counts).pvalue > 1e-3
    rank = torch.arange(4)[None, :]
    assert ((batch.marker_positions == -1) == (rank >= batch.m[:, None])).all()
    assert ((batch.values == -1) == (rank >= batch.m[:, None])).all()
    assert batch.labels.tolist() == recompute_labels(task, batch.tokens.numpy())


def test_same_seed_same_batch_different_seed_differs():
    task = TaskConfig()
    a, b = (sample_batch(task, 32, None, generator=gen(5)) for _ in range(2))
    c = sample_batch(task, 32, None, generator=gen(6))
    assert torch.equal(a.tokens, b.tokens) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.tokens, c.tokens)


def test_chance_and_describe():
    assert chance_accuracy(TaskConfig(C=8)) == 1 / 8
    assert chance_accuracy(TaskConfig(op="mul", C=7)) == 1 / 6
    text = describe(TaskConfig())
    assert "100..103" in text and "244 tokens" in text
    assert "query:       255" in describe(replace(TaskConfig(), readout="query"))
    single = describe(TaskConfig(C=5, marker_ids="single", marker_offset=50, readout="query"))
    assert "50..50" in single and f"{256 - 5 - 1 - 1} tokens" in single
    assert "0..4" in single and "T=16 + 1 query token" in single


def test_multiplication_mod_7_is_addition_mod_6_through_the_discrete_log():
    """Z_7^* is cyclic of order 6 (generator 3): the product label is 3^(sum of logs mod 6).
    Chapter 8's control (addition mod 6) rests on this isomorphism."""
    task = TaskConfig(op="mul", C=7, m_values=(1, 2, 3, 4))
    power = {pow(3, k, 7): k for k in range(6)}
    assert sorted(power) == list(task.value_tokens)        # 3 generates every value 1..6
    markers = set(task.marker_tokens)
    for m in task.m_values:
        batch = sample_batch(task, 400, m, generator=gen(20 + m))
        for row, label in zip(batch.tokens.numpy(), batch.labels.tolist()):
            logs = [power[int(row[p + 1])] for p in range(len(row) - 1) if int(row[p]) in markers]
            assert len(logs) == m and label == pow(3, sum(logs) % 6, 7)
