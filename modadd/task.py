"""Marker-based modular arithmetic: the task every notebook trains on.

A sequence holds ``m`` non-adjacent *marker* tokens; each is immediately followed by a *value*
token in ``0..C-1``.  The label is the sum (``op="add"``) or the product (``op="mul"``) of the
marked values mod ``C``.  Every other position holds an i.i.d. *distractor* drawn from one fixed
set that excludes every value, every marker id of the configuration and the query token.

Vocabulary layout (token ids)::

    0 .. C-1                          values
    marker_offset .. +n_marker_ids-1  markers ("ordinal": the i-th marker from the left is
                                      marker_offset+i; "single": every marker is marker_offset)
    vocab_size-1                      query token (only when readout="query")
    everything else                   distractors

Marker positions are drawn from ``1 .. T-2`` (position 0 is never a marker, the value after the
last marker is at most ``T-1``), uniformly over the subsets whose members differ by at least 2.
With ``readout="query"`` a query token is appended, so the model sees ``T+1`` tokens.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

import torch

from .validate import as_int_tuple, check_choice, check_int, is_prime

OPS = ("add", "mul")
MARKER_IDS = ("ordinal", "single")
POSITIONS = ("per_example", "per_batch")
READOUTS = ("last", "query")


def max_markers(T: int) -> int:
    """Largest m whose non-adjacent markers (with their values) fit in a length-T sequence."""
    n_slots = T - 2
    return (n_slots + 1) // 2


# Each raises ``ValueError("<field>: must be ..., got <repr of the value>")``.


@dataclass(frozen=True)
class TaskConfig:
    """One marker-sum task. Frozen and validated on construction."""

    T: int = 16                          # sequence length before any query token, >= 4
    C: int = 8                           # modulus = number of classes, >= 2
    m_values: tuple[int, ...] = (1, 2, 3, 4)  # the marker counts used, each in 1..(T-1)//2
    op: str = "add"                      # "add" | "mul" (mul needs a prime C >= 3, values 1..C-1)
    marker_ids: str = "ordinal"          # "ordinal" (original) | "single" (one marker token)
    positions: str = "per_example"       # "per_example" | "per_batch" (original: one set per batch)
    readout: str = "last"                # "last" (original) | "query" (append a query token)
    vocab_size: int = 256                # total token ids, values + markers + query + distractors
    marker_offset: int = 100             # id of the first marker token (original: 100)

    def __post_init__(self) -> None:
        # a list is accepted (the JSON form) and stored as a tuple; nothing else is converted
        object.__setattr__(self, "m_values",
                           as_int_tuple("m_values", self.m_values, "the marker counts"))
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending field and its allowed range."""
        check_int("T", self.T, 4)
        check_int("C", self.C, 2)
        check_choice("op", self.op, OPS)
        check_choice("marker_ids", self.marker_ids, MARKER_IDS)
        check_choice("positions", self.positions, POSITIONS)
        check_choice("readout", self.readout, READOUTS)
        if len(self.m_values) == 0:
            raise ValueError("m_values: must name at least one marker count, got ()")
        if len(set(self.m_values)) != len(self.m_values):
            raise ValueError(f"m_values: entries must be distinct, got {self.m_values!r}")
        top = max_markers(self.T)
        for m in self.m_values:
            if not 1 <= m <= top:
                raise ValueError(
                    f"m_values: each m must be in 1..{top} for T={self.T} "
                    f"(m non-adjacent markers with their values must fit in positions 1..T-1), "
                    f"got {m!r} in m_values={self.m_values!r}")
        if self.op == "mul" and not (is_prime(self.C) and self.C >= 3):
            raise ValueError(
                f"C: op='mul' needs a prime C >= 3, so that the values 1..C-1 form a group and "
                f"the label is uniform (with 0 or a composite C the product collapses to 0), "
                f"got C={self.C}")
        check_int("vocab_size", self.vocab_size, self.C + 2)
        check_int("marker_offset", self.marker_offset, self.C,
                   why="marker ids must not collide with the values 0..C-1")
        last_marker = self.marker_offset + self.n_marker_ids - 1
        last_free = self.vocab_size - 1 - (1 if self.readout == "query" else 0)
        if last_marker > last_free:
            raise ValueError(
                f"vocab_size: must exceed the last marker id {last_marker}"
                f"{' plus the query token' if self.readout == 'query' else ''}, "
                f"got {self.vocab_size}")
        if self.n_distractors < 1:
            raise ValueError(
                f"vocab_size: leaves no distractor token (values, markers and query use every "
                f"id); need vocab_size >= {self.vocab_size - self.n_distractors + 1}, "
                f"got {self.vocab_size}")

    # ---- derived layout -------------------------------------------------------------------
    @property
    def max_m(self) -> int:
        """Largest marker count in the configuration."""
        return max(self.m_values)

    @property
    def n_marker_ids(self) -> int:
        """How many distinct marker tokens the configuration uses."""
        return self.max_m if self.marker_ids == "ordinal" else 1

    @property
    def marker_tokens(self) -> tuple[int, ...]:
        """Ids of the marker tokens, leftmost marker first."""
        return tuple(range(self.marker_offset, self.marker_offset + self.n_marker_ids))

    @property
    def query_token(self) -> Optional[int]:
        """Id of the query token, or None when the readout is the last sequence position."""
        return self.vocab_size - 1 if self.readout == "query" else None

    @property
    def value_tokens(self) -> tuple[int, ...]:
        """Ids a value can take: 0..C-1 for add, 1..C-1 for mul."""
        return tuple(range(1 if self.op == "mul" else 0, self.C))

    @property
    def distractor_tokens(self) -> torch.Tensor:
        """The fixed distractor set ``[n_distractors] long`` (same for every m)."""
        excluded = set(range(self.C)) | set(self.marker_tokens)
        if self.query_token is not None:
            excluded.add(self.query_token)
        return torch.tensor([t for t in range(self.vocab_size) if t not in excluded])

    @property
    def n_distractors(self) -> int:
        """Size of the distractor set."""
        used = self.C + self.n_marker_ids + (1 if self.readout == "query" else 0)
        return self.vocab_size - used

    @property
    def seq_len(self) -> int:
        """Tokens the model sees: T, plus one for the query token."""
        return self.T + (1 if self.readout == "query" else 0)

    @property
    def n_positions(self) -> int:
        """Positions the model embeds: :attr:`seq_len`."""
        return self.seq_len

    @property
    def n_classes(self) -> int:
        """Number of output classes (C)."""
        return self.C

    def to_dict(self) -> dict:
        """Plain-JSON form (for hashing and storage)."""
        return asdict(self)


@dataclass
class Batch:
    """A sampled batch.

    ``tokens [B, seq_len] long``; ``labels [B] long``; ``marker_positions [B, max m] long``
    (leftmost first, padded with -1 where an example has fewer markers); ``values [B, max m]``
    (padded with -1); ``m [B] long``, the marker count of each example.
    """

    tokens: torch.Tensor
    labels: torch.Tensor
    marker_positions: torch.Tensor
    values: torch.Tensor
    m: torch.Tensor = field(repr=False)


def sample_positions(T: int, m: torch.Tensor, width: int, generator: torch.Generator
                     ) -> torch.Tensor:
    """Uniform non-adjacent marker positions in ``1..T-2``: ``[B, width] long``, -1 padded.

    Bijection: an increasing m-subset ``c`` of ``{0..n-m}`` (n = T-2 slots) maps to positions
    ``1 + c_i + i``, which differ by at least 2; a uniform subset therefore gives a uniform
    non-adjacent set, with no rejection loop.
    """
    batch_size = m.shape[0]
    n_slots = T - 2
    keys = torch.rand(batch_size, n_slots, generator=generator)
    column = torch.arange(n_slots)
    keys = keys.masked_fill(column[None, :] > (n_slots - m)[:, None], 2.0)
    chosen = keys.argsort(dim=1)[:, :width]
    rank = torch.arange(width)
    chosen = chosen.masked_fill(rank[None, :] >= m[:, None], n_slots + width)
    chosen, _ = chosen.sort(dim=1)
    positions = 1 + chosen + rank[None, :]
    return positions.masked_fill(rank[None, :] >= m[:, None], -1)


def _draw_m(task: TaskConfig, batch_size: int, m, generator: torch.Generator) -> torch.Tensor:
    """Marker count per example ``[B] long``: a given int, a given tensor, or uniform per example."""
    if m is None:
        options = torch.tensor(task.m_values)
        return options[torch.randint(len(options), (batch_size,), generator=generator)]
    if isinstance(m, torch.Tensor):
        m_per_example = m.to(torch.long)
        if m_per_example.shape != (batch_size,):
            raise ValueError(f"m: a tensor must have shape [{batch_size}], got "
                             f"{tuple(m_per_example.shape)}")
    else:
        m_per_example = torch.full((batch_size,), int(m), dtype=torch.long)
    bad = [v for v in m_per_example.unique().tolist() if v not in task.m_values]
    if bad:
        raise ValueError(f"m: must be one of m_values={task.m_values}, got {bad[0]}")
    return m_per_example


def sample_batch(task: TaskConfig, batch_size: int, m=None, *,
                 generator: torch.Generator) -> Batch:
    """Sample ``batch_size`` examples; ``m`` is an int (all examples), a ``[B]`` tensor, or
    None (uniform over ``m_values`` per example). Returns a :class:`Batch`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size!r}")
    m_per_example = _draw_m(task, batch_size, m, generator)
    width = int(m_per_example.max())
    if task.positions == "per_batch":
        if m_per_example.unique().numel() != 1:
            raise ValueError("m: positions='per_batch' shares one position set per batch, "
                             "so every example must have the same m")
        positions = sample_positions(task.T, m_per_example[:1], width, generator)
        positions = positions.expand(batch_size, -1).clone()
    else:
        positions = sample_positions(task.T, m_per_example, width, generator)
    valid = positions >= 0
    low = task.value_tokens[0]
    values = torch.randint(low, task.C, (batch_size, width), generator=generator)
    values = values.masked_fill(~valid, -1)
    distractors = task.distractor_tokens
    tokens = distractors[torch.randint(len(distractors), (batch_size, task.seq_len),
                                       generator=generator)]
    rows = torch.arange(batch_size)[:, None].expand(-1, width)
    marker_rank = torch.arange(width)[None, :].expand(batch_size, -1)
    marker_id = task.marker_offset + (marker_rank if task.marker_ids == "ordinal"
                                      else torch.zeros_like(marker_rank))
    tokens[rows[valid], positions[valid]] = marker_id[valid]
    tokens[rows[valid], positions[valid] + 1] = values[valid]
    if task.query_token is not None:
        tokens[:, -1] = task.query_token
    return Batch(tokens, _label(task, values, valid), positions, values, m_per_example)


def _label(task: TaskConfig, values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Sum or product of the valid values mod C: ``[B] long``."""
    if task.op == "add":
        return values.masked_fill(~valid, 0).sum(dim=1) % task.C
    label = torch.ones(values.shape[0], dtype=torch.long)
    for column in range(values.shape[1]):  # m <= 15 columns; keeps the product exact mod C
        factor = values[:, column].masked_fill(~valid[:, column], 1)
        label = label * factor % task.C
    return label


def chance_accuracy(task: TaskConfig) -> float:
    """Accuracy of a constant guess under the uniform label law (1/C add, 1/(C-1) mul)."""
    return 1.0 / len(task.value_tokens)


def describe(task: TaskConfig) -> str:
    """The vocabulary layout and sequence format as readable text."""
    markers = task.marker_tokens
    lines = [
        f"sequence: {task.seq_len} tokens (T={task.T}"
        f"{' + 1 query token' if task.query_token is not None else ''}); "
        f"readout at position {task.seq_len - 1}",
        f"values:      {task.value_tokens[0]}..{task.C - 1}  ({len(task.value_tokens)} tokens)",
        f"markers:     {markers[0]}..{markers[-1]}  ({task.marker_ids}: "
        + ("the i-th marker from the left is token marker_offset+i)"
           if task.marker_ids == "ordinal" else "one token marks every value)"),
        f"query:       {task.query_token if task.query_token is not None else 'none'}",
        f"distractors: {task.n_distractors} tokens, one fixed set for every m",
        f"label:       {'sum' if task.op == 'add' else 'product'} of the marked values mod "
        f"{task.C}; m in {list(task.m_values)}",
        f"positions:   markers in 1..{task.T - 2}, non-adjacent, "
        f"{'drawn per example' if task.positions == 'per_example' else 'shared per batch'}",
    ]
    return "\n".join(lines)


def render(task: TaskConfig, batch: Batch, index: int = 0) -> str:
    """One example as text: markers as ``[Mi]``, values as ``<v>``, distractors as ``·``."""
    tokens = batch.tokens[index].tolist()
    positions = set(batch.marker_positions[index][batch.marker_positions[index] >= 0].tolist())
    parts = []
    for pos, tok in enumerate(tokens):
        if pos in positions:
            parts.append(f"[M{tok - task.marker_offset}]")
        elif pos - 1 in positions:
            parts.append(f"<{tok}>")
        elif tok == task.query_token:
            parts.append("Q")
        else:
            parts.append("·")
    return " ".join(parts) + f"  → {int(batch.labels[index])}"
