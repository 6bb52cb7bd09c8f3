"""Weight initialisers shared by the hand-written MLP and the graph MLP.

Both MLPs draw their weights through :func:`init_weight` from one
:class:`numpy.random.Generator`, layer by layer in order ``l = 1 .. L``, so a
model built with the same ``seed`` and the same ``layer_sizes`` starts from
the same weights in both implementations.

Notation (as in the MLP spec): layer ``l`` has weight matrix
``W^(l)`` of shape ``(n_l, n_{l-1})`` = ``(n_out, n_in)`` and bias ``b^(l)`` of
shape ``(n_l,)``.

* He / Kaiming (for ReLU-like activations): ``W ~ N(0, 2 / n_in)``.
  ReLU zeroes about half of its inputs, halving the variance of what it
  passes on; the factor 2 compensates so ``Var(z^(l))`` stays constant.
* Xavier / Glorot (for sigmoid, tanh): ``W ~ N(0, 2 / (n_in + n_out))``,
  the average of the forward condition ``Var(w) = 1/n_in`` and the backward
  condition ``Var(w) = 1/n_out``.
* Biases are always zero.

The second argument of ``N(mean, .)`` above is the *variance*; the standard
deviation is its square root.

Every draw is made in float64 and then cast to ``dtype``, so a float32 model
and a float64 model built from the same seed have the same weights up to
float32 rounding.
"""

from __future__ import annotations

import math
import numbers
from typing import Callable

import numpy as np
from numpy.typing import DTypeLike

from nn.data._validation import check_float_dtype

__all__ = [
    "INIT_METHODS",
    "he_normal",
    "xavier_normal",
    "check_init_method",
    "init_weight",
    "zeros_bias",
    "make_rng",
]


def _check_size(name: str, value: object) -> int:
    """Return ``value`` as an int >= 1 or raise naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be a positive integer, got {value!r} of type {type(value).__name__}"
        )
    if value < 1:
        raise ValueError(f"{name} must be a positive integer (>= 1), got {value}")
    return int(value)


def _check_float_dtype(dtype: DTypeLike) -> np.dtype:
    return check_float_dtype("dtype", dtype)


def make_rng(seed_or_rng: int | np.random.Generator | None = None,
             where: str | None = None) -> np.random.Generator:
    """Turn ``None``, a non-negative int or a Generator into a Generator.

    Args:
        seed_or_rng: ``None`` gives fresh, unpredictable randomness; an int
            gives ``np.random.default_rng(seed)`` (reproducible); an existing
            :class:`numpy.random.Generator` is returned as is (so the caller's
            generator is advanced by later draws).
        where: what the error messages call the argument, with its caller
            (``"nn.MLP: seed"``); ``"seed"`` by default.

    Raises:
        TypeError: any other type (including ``bool`` and the legacy
            ``np.random.RandomState``).
        ValueError: a negative integer seed.
    """
    if seed_or_rng is None:
        return np.random.default_rng()
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    if isinstance(seed_or_rng, (bool, np.bool_)) or not isinstance(
        seed_or_rng, numbers.Integral
    ):
        raise TypeError(
            f"{where or 'seed'} must be None, a non-negative integer or a "
            "numpy.random.Generator, "
            f"got {seed_or_rng!r} of type {type(seed_or_rng).__name__}"
        )
    if seed_or_rng < 0:
        raise ValueError(
            f"{where or 'seed'} must be None, a non-negative integer or a "
            "numpy.random.Generator, "
            f"got {seed_or_rng}"
        )
    return np.random.default_rng(int(seed_or_rng))


def _normal(
    n_out: int, n_in: int, std: float, rng: np.random.Generator, dtype: DTypeLike
) -> np.ndarray:
    dtype = _check_float_dtype(dtype)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"rng must be a numpy.random.Generator (see nn.init.make_rng), "
            f"got {type(rng).__name__}"
        )
    # Draw in float64 regardless of dtype, then cast: same seed -> same weights.
    return (rng.standard_normal((n_out, n_in)) * std).astype(dtype, copy=False)


def he_normal(
    n_out: int, n_in: int, rng: np.random.Generator, dtype: DTypeLike = np.float64
) -> np.ndarray:
    """He/Kaiming normal: ``W ~ N(0, 2 / n_in)``, shape ``(n_out, n_in)``.

    The default for ReLU networks: with ``Var(w) = 2/n_in`` a ReLU layer keeps
    ``Var(z^(l))`` the same from layer to layer.
    """
    n_out = _check_size("n_out", n_out)
    n_in = _check_size("n_in", n_in)
    return _normal(n_out, n_in, math.sqrt(2.0 / n_in), rng, dtype)


def xavier_normal(
    n_out: int, n_in: int, rng: np.random.Generator, dtype: DTypeLike = np.float64
) -> np.ndarray:
    """Xavier/Glorot normal: ``W ~ N(0, 2 / (n_in + n_out))``, shape ``(n_out, n_in)``.

    Suited to sigmoid and tanh: it averages the forward-pass condition
    ``Var(w) = 1/n_in`` and the backward-pass condition ``Var(w) = 1/n_out``.
    """
    n_out = _check_size("n_out", n_out)
    n_in = _check_size("n_in", n_in)
    return _normal(n_out, n_in, math.sqrt(2.0 / (n_in + n_out)), rng, dtype)


#: Valid values of ``init_method``, mapped to their initialiser.
INIT_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "he": he_normal,
    "xavier": xavier_normal,
}


def check_init_method(init_method: object, where: str = "init_method") -> str:
    """Return the normalised (lower-case) init method name or raise.

    Raises:
        TypeError: ``init_method`` is not a string.
        ValueError: it is not one of :data:`INIT_METHODS`.
    """
    valid = ", ".join(repr(k) for k in INIT_METHODS)
    if not isinstance(init_method, str):
        raise TypeError(
            f"{where} must be one of {valid}, got {init_method!r} "
            f"of type {type(init_method).__name__}"
        )
    key = init_method.strip().lower()
    if key not in INIT_METHODS:
        raise ValueError(f"{where} must be one of {valid}, got {init_method!r}")
    return key


def init_weight(
    method: str,
    n_out: int,
    n_in: int,
    rng: np.random.Generator,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """Initialise a weight matrix of shape ``(n_out, n_in)`` by name.

    Args:
        method: ``"he"`` (``N(0, 2/n_in)``) or ``"xavier"``
            (``N(0, 2/(n_in + n_out))``); case-insensitive.
        n_out, n_in: Output and input width of the layer.
        rng: Generator to draw from (advanced by ``n_out * n_in`` normals).
        dtype: Floating-point dtype of the result (drawn in float64, then cast).

    Raises:
        ValueError: unknown ``method`` (the message lists the valid names).
    """
    key = check_init_method(method, "method")
    return INIT_METHODS[key](n_out, n_in, rng, dtype)


def zeros_bias(n_out: int, dtype: DTypeLike = np.float64) -> np.ndarray:
    """Zero bias vector of shape ``(n_out,)``: biases are always initialised to 0."""
    n_out = _check_size("n_out", n_out)
    return np.zeros(n_out, dtype=_check_float_dtype(dtype))
