"""modadd.algorithmic: labels by brute force, the split disjoint and deterministic, tokens."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from modadd.algorithmic import OPERATIONS, AlgorithmicTask


@pytest.mark.parametrize("op", OPERATIONS)
def test_labels_match_brute_force(op):
    task = AlgorithmicTask(p=11, op=op)
    pairs = task.pairs()
    expected = []
    for a, b in pairs:
        if op == "/":     # the c with c * b == a (mod p), found by search
            expected.append(next(c for c in range(11) if (c * b) % 11 == a))
        else:
            expected.append(eval(f"({a} {op} {b}) % 11"))
    assert task.labels(pairs).tolist() == expected
    assert len(pairs) == (11 * 10 if op == "/" else 121)
    assert len(np.unique(pairs, axis=0)) == len(pairs)


def test_split_is_disjoint_covering_and_deterministic():
    task = AlgorithmicTask(p=23, train_fraction=0.3, split_seed=5)
    train, held = task.split()
    n = len(task.pairs())
    assert len(train) == round(0.3 * n) and len(np.intersect1d(train, held)) == 0
    assert np.array_equal(np.sort(np.concatenate([train, held])), np.arange(n))
    again = AlgorithmicTask(p=23, train_fraction=0.3, split_seed=5).split()
    assert all(np.array_equal(x, y) for x, y in zip((train, held), again))
    other = replace(task, split_seed=6).split()[0]
    assert not np.array_equal(train, other)
    # the split does not depend on the operation's labels, only on the pair count
    assert np.array_equal(replace(task, op="*").split()[0], train)


def test_tokens_put_the_answer_after_the_equals_sign():
    task = AlgorithmicTask(p=7, op="-")
    pairs = task.pairs()[:5]
    tokens = task.tokens(pairs).numpy()
    assert tokens.shape == (5, 4) and task.vocab_size == 9
    assert (tokens[:, 1] == 7).all() and (tokens[:, task.answer_position] == 8).all()
    np.testing.assert_array_equal(tokens[:, [0, 2]], pairs)


@pytest.mark.parametrize("field,value,message", [
    ("p", 12, "p: must be a prime"), ("p", 2, "p: must be a prime"), ("op", "%", "op: must be"),
    ("train_fraction", 1.0, "train_fraction"), ("split_seed", -1, "split_seed")])
def test_bad_fields_are_named(field, value, message):
    with pytest.raises(ValueError, match=message):
        AlgorithmicTask(**{field: value})
    with pytest.raises(ValueError, match="both splits"):
        AlgorithmicTask(p=3, train_fraction=0.01).split()


def test_nanda_format_three_tokens_and_a_readout_over_the_vocabulary():
    task = AlgorithmicTask(p=7, op="+", operator_token=False, readout_all_tokens=True)
    pairs = task.pairs()[:5]
    tokens = task.tokens(pairs).numpy()
    # Nanda et al.: (a, b, p) with p the '=' token; d_vocab = p + 1 outputs
    assert tokens.shape == (5, 3) and task.seq_len == 3 and task.vocab_size == 8
    assert task.n_classes == 8 and task.equals_token == 7 and task.answer_position == 2
    np.testing.assert_array_equal(tokens, np.c_[pairs, np.full(5, 7)])
    assert AlgorithmicTask(p=7, operator_token=False).n_classes == 7
    # the split does not depend on the format
    for a, b in zip(task.split(), AlgorithmicTask(p=7).split()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("field", ["operator_token", "readout_all_tokens", "start_token",
                                   "eos_target"])
def test_format_switches_must_be_bools(field):
    with pytest.raises(ValueError, match=field):
        AlgorithmicTask(**{field: "no"})


def test_python_shuffle_split_is_nandas():
    """Nanda et al.'s gen_train_test: random.seed(seed); random.shuffle of the (i, j, p) tuples
    in i-major order; the first int(frac * N) train.  Recomputed on the tuples themselves."""
    import random
    p, fraction, seed = 13, 0.4, 3
    pairs = [(i, j, p) for i in range(p) for j in range(p)]
    random.seed(seed)
    random.shuffle(pairs)
    his_train = {(i, j) for i, j, _ in pairs[:int(fraction * len(pairs))]}
    task = AlgorithmicTask(p=p, train_fraction=fraction, split_seed=seed,
                           split_method="python-shuffle")
    train, heldout = task.split()
    ours = {tuple(x) for x in task.pairs()[train]}
    assert ours == his_train and task.n_train == int(fraction * p * p) == 67
    assert AlgorithmicTask(p=p, train_fraction=fraction).n_train == 68      # round(67.6)
    assert len(heldout) == p * p - 67
    with pytest.raises(ValueError, match="split_method: must be one of"):
        AlgorithmicTask(split_method="sorted")


def test_numpy_shuffle_split_is_openai_grok():
    """openai/grok's make_data: its equation strings (a major) shuffled in place by
    np.random.RandomState(seed), the first round(N * pct / 100) rows trained.  Recomputed on the
    strings themselves (a list, not an index array)."""
    p, pct, seed = 13, 40, 0
    eqs = [f"{a} + {b} = {(a + b) % p}" for a in range(p) for b in range(p)]
    np.random.RandomState(seed=seed).shuffle(eqs)
    n_train = round(len(eqs) * (pct / 100.0))
    his_train = {tuple(int(t) for t in e.split()[0:3:2]) for e in eqs[:n_train]}
    task = AlgorithmicTask(p=p, train_fraction=pct / 100, split_seed=seed,
                           split_method="numpy-shuffle")
    train, heldout = task.split()
    assert {tuple(x) for x in task.pairs()[train]} == his_train
    assert task.n_train == n_train == 68 and len(heldout) == p * p - 68
    assert set(train) != set(AlgorithmicTask(p=p, train_fraction=0.4).split()[0])


def test_start_token_opens_the_sequence():
    """openai/grok's ``<s> a + b =``: the start token is the last id, the answer still read at
    '=', the operands one position later (the operand curriculum reads them there)."""
    task = AlgorithmicTask(p=7, start_token=True)
    pairs = task.pairs()[[3, 20]]
    tokens = task.tokens(pairs).numpy()
    assert task.vocab_size == 10 and task.seq_len == 5 and task.answer_position == 4
    np.testing.assert_array_equal(tokens, [[9, 0, 7, 3, 8], [9, 2, 7, 6, 8]])
    assert task.operand_positions == (1, 3) and task.equals_token == 8
    nanda_like = AlgorithmicTask(p=7, start_token=True, operator_token=False)
    np.testing.assert_array_equal(nanda_like.tokens(pairs).numpy(), [[8, 0, 3, 7], [8, 2, 6, 7]])


def test_eos_target_needs_the_start_token_and_a_readout_over_the_vocabulary():
    task = AlgorithmicTask(p=7, start_token=True, readout_all_tokens=True, eos_target=True)
    assert task.seq_len == 5 and task.n_positions == 6 and task.end_token == 9
    assert AlgorithmicTask(p=7, start_token=True).n_positions == 5
    # the input the model reads out at is unchanged: the answer is appended by training only
    np.testing.assert_array_equal(task.tokens(task.pairs()[:3]).numpy(),
                                  AlgorithmicTask(p=7, start_token=True).tokens(
                                      task.pairs()[:3]).numpy())
    for options in ({"start_token": True}, {"readout_all_tokens": True}, {}):
        with pytest.raises(ValueError, match="eos_target: True needs start_token=True"):
            AlgorithmicTask(p=7, eos_target=True, **options)
    with pytest.raises(ValueError, match="end_token: defined only with start_token"):
        AlgorithmicTask(p=7).end_token
