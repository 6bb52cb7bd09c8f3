"""Argument checks shared by the :mod:`nn.data` modules.

:func:`check_class_labels` is also the one label check of :mod:`nn`'s MLPs and
:class:`nn.SoftmaxCrossEntropy`.

Every helper raises an error whose message names the argument, the value it
received and what was expected, e.g.::

    ValueError: n_samples must be an integer >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "check_int",
    "check_real",
    "check_float_dtype",
    "check_dtype",
    "as_rng",
    "check_class_labels",
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


def check_class_labels(
    y: ArrayLike,
    n_classes: int | None,
    where: str,
    *,
    name: str = "y",
    classes_from: str | None = None,
    allow_bool: bool = False,
) -> np.ndarray:
    """Return 1-D class labels as an int64 array after checking them.

    The one check behind :func:`nn.data.one_hot`, the MLPs' ``fit``/``loss``/``score``
    and :class:`nn.SoftmaxCrossEntropy`, so they accept and refuse the same labels.

    Args:
        y: Labels in ``0 .. n_classes - 1``: an integer array, or a float array whose
            values are all whole numbers (``2.0``).
        n_classes: The number of classes K, already checked by the caller; ``None``
            checks only that labels are ``>= 0`` (the caller infers K).
        where: The public call, put first in every message (``"nn.MLP.fit"``).
        name: The argument's name in messages (``"y"``, ``"target"``).
        classes_from: Why there are K classes, for the out-of-range message, e.g.
            ``"the output layer has 3 units"``; by default ``"there are K classes"``.
        allow_bool: Read a bool array as the labels 0 and 1 instead of refusing it.

    Raises:
        TypeError: ``y`` is not an integer or float array (or bool, without
            ``allow_bool``).
        ValueError: ``y`` is not 1-D, or holds a NaN, an infinity, a non-integral
            float or a label outside ``0 .. n_classes - 1``; the message names the first
            such value and its index; or ``y`` is a ragged nested list.
    """
    try:
        arr = np.asarray(y)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {name} is not an array: {str(exc).split('. ')[0]}; "
                         f"expected 1-D class labels") from None
    in_range = "" if n_classes is None else f" in 0..{n_classes - 1}"
    if not (arr.dtype.kind in "iuf" or (allow_bool and arr.dtype.kind == "b")):
        raise TypeError(
            f"{where}: {name} must hold integer class labels{in_range} (an integer array, "
            f"or a float array of whole numbers), got dtype {arr.dtype}"
        )
    if arr.ndim != 1:
        raise ValueError(
            f"{where}: {name} must be a 1-D array of class labels, got shape {arr.shape}"
        )
    if arr.dtype.kind == "f":
        bad = ~np.isfinite(arr) | (arr != np.round(arr))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{where}: {name} must hold integer class labels{in_range}, got "
                f"non-integral value {arr[i].item()!r} at index {i}"
            )
    # Compare before casting: a float such as 1e30 or a large uint64 would wrap around in
    # int64 and be reported as some other label. Without K, the labels must still fit the
    # int64 result (the caller infers K from their maximum). Floats are compared in float64,
    # where the bound is exact (float16 would overflow it).
    high = 2**63 if n_classes is None else n_classes
    values = arr.astype(np.float64, copy=False) if arr.dtype.kind == "f" else arr
    bad = (values < 0) | (values >= high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        if n_classes is not None:
            reason = classes_from or f"there are {n_classes} classes"
            expected = f"{reason}, so labels must be integers in 0..{n_classes - 1}"
        elif arr[i] < 0:
            expected = "class labels must be integers >= 0"
        else:
            expected = "class labels must fit in int64"
        raise ValueError(
            f"{where}: {name} contains label {arr[i].item()!r} at index {i} but {expected}"
        )
    return arr.astype(np.int64, copy=False)
