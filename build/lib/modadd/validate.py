"""Validation helpers shared by every config dataclass (task, algorithmic task, model, training).

Each ``check_*`` raises ``ValueError("<field>: must be ..., got <repr of the value>")``; the
``as_*`` helpers normalise the JSON form (lists) and reject everything else with the same kind of
message.
"""
from __future__ import annotations

import math
from typing import Optional


def is_prime(n: int) -> bool:
    """True when ``n`` is a prime number."""
    return n >= 2 and all(n % d for d in range(2, int(n**0.5) + 1))


def is_int(value) -> bool:
    """True for a Python ``int`` that is not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for an ``int`` or ``float`` that is not a ``bool``."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value, minimum: int, why: str = "") -> None:
    """``value`` must be an ``int`` (not a bool) ``>= minimum``."""
    if not is_int(value):
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: must be >= {minimum}{' (' + why + ')' if why else ''}, "
                         f"got {value!r}")


def check_bool(name: str, value) -> None:
    """``value`` must be ``True`` or ``False`` (not 0, 1 or a string)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name}: must be True or False, got {value!r}")


def _interval(low, high, low_open: bool, high_open: bool) -> str:
    """The allowed range as text: ``in (0, 1]``, ``>= 0``, ``> 0``."""
    if high is None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_float(name: str, value, low: float, high: Optional[float] = None, *,
                 low_open: bool = False, high_open: bool = False, why: str = "") -> None:
    """``value`` must be a finite ``int`` or ``float`` (not a bool or a string) between ``low``
    and ``high`` (``None``: no upper bound), each end closed unless ``*_open``."""
    span = _interval(low, high, low_open, high_open)
    if not is_number(value) or not math.isfinite(value):
        raise ValueError(f"{name}: must be a finite number {span}, got {value!r}")
    below = value <= low if low_open else value < low
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        raise ValueError(f"{name}: must be a number {span}{' (' + why + ')' if why else ''}, "
                         f"got {value!r}")


def as_float(value):
    """An ``int`` (not a bool) as the equal ``float``, so that ``0`` and ``0.0`` hash alike;
    anything else unchanged (for the validator to judge)."""
    return float(value) if is_int(value) else value


def check_choice(name: str, value, allowed: tuple[str, ...]) -> None:
    """``value`` must be one of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name}: must be one of {', '.join(map(repr, allowed))}, got {value!r}")


def _check_sequence(name: str, value, form: str) -> None:
    """``value`` must be a tuple or a list (the JSON form of a tuple), not a string or a
    scalar; ``form`` describes the expected content."""
    if not isinstance(value, (tuple, list)):
        raise ValueError(f"{name}: must be {form}, got {value!r}")


def as_int_tuple(name: str, value, what: str) -> tuple[int, ...]:
    """``value``, a tuple or list of ints (not bools) describing ``what``, as a tuple."""
    form = f"a tuple or list of integers ({what})"
    _check_sequence(name, value, form)
    for entry in value:
        if not is_int(entry):
            raise ValueError(f"{name}: must be {form}, got {value!r} "
                             f"(entry {entry!r} is not an integer)")
    return tuple(value)


def as_pairs(name: str, value, form: str, kinds: tuple[str, str],
              example: str) -> tuple[tuple, ...]:
    """``value``, a tuple or list of 2-sequences whose entries have ``kinds`` ("int": an int;
    "number": a finite int or float, stored as a float), as a tuple of tuples; ``form``
    describes a pair and ``example`` shows a valid value, for the message."""
    expected = f"a tuple or list of {form} pairs, e.g. {example}"
    _check_sequence(name, value, expected)
    out = []
    for entry in value:
        ok = isinstance(entry, (tuple, list)) and len(entry) == 2 and all(
            is_int(x) if kind == "int" else is_number(x) and math.isfinite(x)
            for x, kind in zip(entry, kinds))
        if not ok:
            raise ValueError(f"{name}: must be {expected}, got {value!r} (bad entry {entry!r})")
        out.append(tuple(float(x) if kind == "number" else x for x, kind in zip(entry, kinds)))
    return tuple(out)
