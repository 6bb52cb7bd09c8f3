"""Argument checks shared by the :mod:`nn.data` modules.

Every helper raises an error whose message names the argument, the value it
received and what was expected, e.g.::

    ValueError: n_samples must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

__all__ = [
    "check_int",
    "check_real",
    "check_float_dtype",
    "check_dtype",
    "as_rng",
]


def check_int(name: str, value: Any, minimum: int | None = None) -> int:
    """Return ``value`` as a Python ``int`` after checking it.

    Args:
        name: Argument name used in error messages.
        value: The value to check. ``bool`` is rejected even though it is an
            ``int`` subclass, because ``n_samples=True`` is always a mistake.
        minimum: Smallest allowed value (inclusive), or ``None`` for no bound.

    Raises:
        TypeError: ``value`` is not an integer.
        ValueError: ``value`` is smaller than ``minimum``.
    """
    bound = f" >= {minimum}" if minimum is not None else ""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer{bound}, got {value!r} "
            f"of type {type(value).__name__}"
        )
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer{bound}, got {value}")
    return value


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Return ``value`` as a finite Python ``float`` inside the given bounds.

    Args:
        name: Argument name used in error messages.
        value: The value to check (any real number, not ``bool``).
        low, high: Optional bounds.
        low_inclusive, high_inclusive: Whether each bound itself is allowed.

    Raises:
        TypeError: ``value`` is not a real number.
        ValueError: ``value`` is NaN, infinite or outside the bounds.
    """
    parts = []
    if low is not None:
        parts.append(f"{'>=' if low_inclusive else '>'} {low:g}")
    if high is not None:
        parts.append(f"{'<=' if high_inclusive else '<'} {high:g}")
    expected = "a finite number" + (" " + " and ".join(parts) if parts else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be {expected}, got {value!r} of type {type(value).__name__}"
        )
    value = float(value)
    bad = not math.isfinite(value)
    if low is not None:
        bad |= value < low if low_inclusive else value <= low
    if high is not None:
        bad |= value > high if high_inclusive else value >= high
    if bad:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_dtype(name: str, dtype: Any) -> np.dtype:
    """Return ``np.dtype(dtype)`` for any numeric (bool, integer or float) dtype.

    Raises:
        TypeError: ``dtype`` is not understood by numpy or is not numeric.
    """
    try:
        result = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be a numpy numeric dtype such as np.float64, got {dtype!r}"
        ) from exc
    if not (np.issubdtype(result, np.number) or result == np.bool_):
        raise TypeError(
            f"{name} must be a numpy numeric dtype such as np.float64, got {result}"
        )
    return result


def check_float_dtype(name: str, dtype: Any) -> np.dtype:
    """Return ``np.dtype(dtype)`` after checking it is a floating-point dtype.

    Raises:
        TypeError: ``dtype`` is not a real floating-point dtype.
    """
    try:
        result = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(
            f"{name} must be a floating-point dtype such as np.float32 or "
            f"np.float64, got {dtype!r}"
        ) from exc
    if not np.issubdtype(result, np.floating):
        raise TypeError(
            f"{name} must be a floating-point dtype such as np.float32 or "
            f"np.float64, got {result}"
        )
    return result


def as_rng(seed: int | np.random.Generator | None, name: str = "seed") -> np.random.Generator:
    """Turn ``seed`` into a :class:`numpy.random.Generator`.

    Args:
        seed: ``None`` (fresh, unpredictable randomness), a non-negative
            integer (reproducible), or an existing ``Generator`` which is used
            as is (and therefore advanced by the caller's draws).
        name: Argument name used in error messages.

    Raises:
        TypeError: ``seed`` is of another type.
        ValueError: ``seed`` is a negative integer.
    """
    if seed is None:
        return np.random.default_rng()
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be None, a non-negative integer or a "
            f"numpy.random.Generator, got {seed!r} of type {type(seed).__name__}"
        )
    if seed < 0:
        raise ValueError(
            f"{name} must be None, a non-negative integer or a "
            f"numpy.random.Generator, got {seed}"
        )
    return np.random.default_rng(int(seed))
