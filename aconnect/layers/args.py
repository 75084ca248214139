"""Constructor argument checks that name the argument and the bad value."""

from __future__ import annotations

from typing import Any


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r} must be a positive integer")
    return value


def int_tuple(name: str, value: Any, rank: int) -> tuple[int, ...]:
    """An int or a sequence of ``rank`` positive ints, as a tuple."""
    values = (value,) * rank if isinstance(value, int) and not isinstance(value, bool) else value
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(f"{name}={value!r} must be a positive integer or {rank} of them") from None
    if len(values) != rank or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values
    ):
        raise ValueError(f"{name}={value!r} must be a positive integer or {rank} of them")
    return values


def choice(name: str, value: Any, allowed: tuple[str, ...]) -> str:
    lowered = value.lower() if isinstance(value, str) else value
    if lowered not in allowed:
        raise ValueError(f"{name}={value!r} must be one of {list(allowed)}")
    return lowered
