"""Algorithmic datasets of the grokking literature: every pair ``(a, b)`` of ``a ∘ b mod p``.

``∘`` is ``+``, ``-``, ``*`` or ``/`` (``a · b⁻¹``, so ``b ≠ 0`` and ``p`` must be prime).  An
example is the token sequence ``a ∘ b =``; the answer ``c`` is predicted **at the ``=`` position**,
the last input position (the fingerprint fork read the position after the answer instead,
peer_anchors §2 (a)).  Token ids: ``0..p-1`` the residues, ``p`` the operator, ``p+1`` the ``=``.
Nanda et al.'s format (``operator_token=False``): ``a b =``, three tokens, ``p`` the ``=``; with
``readout_all_tokens`` the readout scores every token of the vocabulary (his unembedding has
``p + 1`` outputs, the ``=`` among them), not only the ``p`` residues.  openai/grok's format
(``start_token=True``) opens every sequence with a start token (its ``<|eos|>``/``<|bos|>``),
id ``vocab_size - 1``: ``<s> a ∘ b =``.  With ``eos_target`` training also scores what
openai/grok's loss scores after the answer: the sequence ``<s> a ∘ b = c`` is fed and the
output at ``c`` must predict the end token (the start token's id, as its ``<|eos|>`` serves
both); the loss is the mean over the two positions (:func:`modadd.train.training_loss`).
Evaluation and every measurement still read the ``=`` position of ``<s> a ∘ b =``: the model is
causal, so its output there is the same with or without the appended answer.

The train/held-out split is a permutation drawn from its own ``split_seed``, independent of any
model or data-order seed; :meth:`AlgorithmicTask.split` returns the index arrays that a run stores.
"""
from __future__ import annotations

import random
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .validate import as_float, check_bool, check_choice, check_float, check_int, is_int, is_prime

OPERATIONS = ("+", "-", "*", "/")
SPLIT_METHODS = ("permutation", "python-shuffle", "numpy-shuffle")


@dataclass(frozen=True)
class AlgorithmicTask:
    """All pairs of ``a ∘ b mod p``, split into a training and a held-out set."""

    p: int = 97                  # modulus, prime (>= 3)
    op: str = "+"                # one of OPERATIONS
    train_fraction: float = 0.4  # share of the pairs in the training split, in (0, 1)
    split_seed: int = 0          # seed of the split permutation, >= 0
    operator_token: bool = True  # True: "a op b =" (4 tokens); False: "a b =" (3, Nanda et al.)
    readout_all_tokens: bool = False   # True: the answer is scored over the whole vocabulary
                                       # (Nanda et al.: p + 1 outputs); False: the p residues
    split_method: str = "permutation"  # "permutation": numpy's, round(f N) training pairs;
                                       # "python-shuffle": Nanda et al.'s, Python's
                                       # random.Random(split_seed).shuffle, floor(f N) pairs;
                                       # "numpy-shuffle": openai/grok's, numpy's legacy
                                       # RandomState(split_seed).shuffle, round(f N) pairs
    start_token: bool = False    # True: a start token opens each sequence (openai/grok)
    eos_target: bool = False     # True: training also predicts the end token after the answer
                                 # (openai/grok's loss over "c <eos>"); needs start_token and
                                 # readout_all_tokens

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_fraction", as_float(self.train_fraction))
        if not is_int(self.p) or not is_prime(self.p) or self.p < 3:
            raise ValueError(f"p: must be a prime >= 3 (so that '/' is defined and every "
                             f"residue but 0 is invertible), got {self.p!r}")
        check_choice("op", self.op, OPERATIONS)
        check_float("train_fraction", self.train_fraction, 0.0, 1.0,
                     low_open=True, high_open=True)
        check_int("split_seed", self.split_seed, 0)
        check_bool("operator_token", self.operator_token)
        check_bool("readout_all_tokens", self.readout_all_tokens)
        check_bool("start_token", self.start_token)
        check_choice("split_method", self.split_method, SPLIT_METHODS)
        check_bool("eos_target", self.eos_target)
        if self.eos_target and not (self.start_token and self.readout_all_tokens):
            raise ValueError(f"eos_target: True needs start_token=True (the end token is the "
                             f"start token's id) and readout_all_tokens=True (the readout must "
                             f"score that token), got start_token={self.start_token}, "
                             f"readout_all_tokens={self.readout_all_tokens}")
        n, n_train = self.n_pairs, self.n_train
        if not 1 <= n_train < n:
            raise ValueError(f"train_fraction: leaves {n_train} of the {n} pairs of p={self.p}, "
                             f"op={self.op!r} for training; both splits must be non-empty, i.e. "
                             f"round(train_fraction * {n}) in 1..{n - 1}, "
                             f"got {self.train_fraction!r}")

    @property
    def n_pairs(self) -> int:
        """How many operand pairs there are: ``p²``, or ``p (p - 1)`` for ``/`` (``b ≠ 0``)."""
        return self.p * (self.p - 1 if self.op == "/" else self.p)

    @property
    def n_train(self) -> int:
        """Size of the training split (:meth:`split`): ``round(train_fraction * n_pairs)``
        (``floor`` with ``split_method="python-shuffle"``, as Nanda et al.'s ``int(f * N)``)."""
        if self.split_method == "python-shuffle":
            return int(self.train_fraction * self.n_pairs)
        return int(round(self.train_fraction * self.n_pairs))

    @property
    def vocab_size(self) -> int:
        """Residues, the operator token (unless ``operator_token=False``), the ``=`` token and
        the start token (``start_token=True``), in this order."""
        return self.p + 1 + int(self.operator_token) + int(self.start_token)

    @property
    def seq_len(self) -> int:
        """``a ∘ b =``: four input tokens (``a b =``: three without the operator token; one more
        with the start token)."""
        return 3 + int(self.operator_token) + int(self.start_token)

    @property
    def n_positions(self) -> int:
        """Positions the model embeds: :attr:`seq_len`, one more with ``eos_target`` (the
        appended answer)."""
        return self.seq_len + int(self.eos_target)

    @property
    def end_token(self) -> int:
        """The id ``eos_target`` trains the output after the answer towards: the start
        token's."""
        if not self.start_token:
            raise ValueError("end_token: defined only with start_token=True")
        return self.vocab_size - 1

    @property
    def operand_positions(self) -> tuple[int, int]:
        """The input positions of ``a`` and ``b``."""
        return int(self.start_token), self.seq_len - 2

    @property
    def equals_token(self) -> int:
        """The id of the ``=`` token: ``p + 1`` (``p`` without the operator token)."""
        return self.p + int(self.operator_token)

    @property
    def n_classes(self) -> int:
        """Readout classes: the ``p`` residues, or every token (``readout_all_tokens``)."""
        return self.vocab_size if self.readout_all_tokens else self.p

    @property
    def answer_position(self) -> int:
        """Index of the input position whose output predicts the answer (the ``=``)."""
        return self.seq_len - 1

    def pairs(self) -> np.ndarray:
        """``[N, 2]`` every operand pair, ``a`` major (``b ≠ 0`` for ``/``)."""
        low = 1 if self.op == "/" else 0
        a, b = np.meshgrid(np.arange(self.p), np.arange(low, self.p), indexing="ij")
        return np.stack([a.ravel(), b.ravel()], axis=1)

    def labels(self, pairs: np.ndarray) -> np.ndarray:
        """``a ∘ b mod p`` for each row of ``pairs``."""
        a, b = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
        if self.op == "+":
            return (a + b) % self.p
        if self.op == "-":
            return (a - b) % self.p
        if self.op == "*":
            return (a * b) % self.p
        if np.any(b % self.p == 0):
            raise ValueError("pairs: division by 0 is undefined")
        inverse = np.array([pow(int(x), self.p - 2, self.p) for x in b])   # Fermat
        return (a * inverse) % self.p

    def tokens(self, pairs: np.ndarray) -> torch.Tensor:
        """``[N, 4]`` long: ``a, op, b, =`` (``[N, 3]``: ``a, b, =`` without the operator; the
        start token first with ``start_token``)."""
        n = len(pairs)
        out = np.empty((n, self.seq_len), dtype=np.int64)
        first, second = self.operand_positions
        out[:, first], out[:, second], out[:, -1] = pairs[:, 0], pairs[:, 1], self.equals_token
        if self.operator_token:
            out[:, first + 1] = self.p
        if self.start_token:
            out[:, 0] = self.vocab_size - 1
        return torch.from_numpy(out)

    def split(self) -> tuple[np.ndarray, np.ndarray]:
        """(train indices, held-out indices) into :meth:`pairs`: disjoint, covering, sorted,
        a function of ``p``, ``op``, ``train_fraction`` and ``split_seed`` only."""
        n, n_train = self.n_pairs, self.n_train     # both splits non-empty (__post_init__)
        if self.split_method == "numpy-shuffle":    # openai/grok's: its equation list (a
            order = np.arange(n)                    # major) shuffled, the first rows trained
            np.random.RandomState(self.split_seed).shuffle(order)
        elif self.split_method == "python-shuffle":   # Nanda et al.'s: shuffling the pair list
            order = list(range(n))                  # (a major) shuffles its indices alike
            random.Random(self.split_seed).shuffle(order)
            order = np.array(order)
        else:
            order = np.random.default_rng([self.split_seed, 0x5917]).permutation(n)
        return np.sort(order[:n_train]), np.sort(order[n_train:])

    def split_data(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """``{"train": (tokens, labels), "heldout": (tokens, labels)}`` in split-index order."""
        pairs = self.pairs()
        out = {}
        for name, index in zip(("train", "heldout"), self.split()):
            out[name] = (self.tokens(pairs[index]),
                         torch.from_numpy(self.labels(pairs[index])))
        return out

    def to_dict(self) -> dict:
        """Plain-JSON form (for hashing and storage)."""
        return asdict(self)
