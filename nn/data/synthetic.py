"""Small synthetic data sets for checking that a network can learn at all.

All generators return ``(X, y)`` where ``X`` has shape ``(n_samples,
n_features)``. Classification labels are ``int64`` class indices
``0 .. n_classes - 1``; the regression target of :func:`sine` is a float column.

Randomness: every random generator takes ``seed``, which may be ``None``
(different data on each call), a non-negative ``int`` (the same data on each
call) or a :class:`numpy.random.Generator` (drawn from, and so advanced).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import DTypeLike

from ._validation import as_rng, check_float_dtype, check_int, check_real

__all__ = ["xor", "blobs", "spiral", "sine"]

Seed = int | np.random.Generator | None


def xor(dtype: DTypeLike = np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The four points of the XOR truth table.

    The smallest problem a linear model cannot solve and a network with one
    hidden layer can.

    Args:
        dtype: Floating-point dtype of ``X``.

    Returns:
        ``X`` of shape ``(4, 2)`` with rows ``(0, 0), (0, 1), (1, 0), (1, 1)``
        and ``y`` of shape ``(4,)``, ``int64``, equal to ``[0, 1, 1, 0]``.
    """
    dtype = check_float_dtype("xor: dtype", dtype)
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    y = np.array([0, 1, 1, 0], dtype=np.int64)
    return X, y


def _class_sizes(n_samples: int, n_classes: int) -> np.ndarray:
    """Split ``n_samples`` as evenly as possible; the first classes get the extra."""
    sizes = np.full(n_classes, n_samples // n_classes, dtype=np.int64)
    sizes[: n_samples % n_classes] += 1
    return sizes


def _blob_centres(n_classes: int, n_features: int, distance: float) -> np.ndarray:
    """Fixed class centres whose closest pair is exactly ``distance`` apart.

    With two or more features the centres are evenly spaced on a circle in the
    first two coordinates; with one feature they are evenly spaced on a line.
    """
    centres = np.zeros((n_classes, n_features))
    if n_features == 1:
        centres[:, 0] = distance * (np.arange(n_classes) - (n_classes - 1) / 2)
    else:
        radius = distance / (2.0 * math.sin(math.pi / n_classes))
        angle = 2.0 * math.pi * np.arange(n_classes) / n_classes
        centres[:, 0] = radius * np.cos(angle)
        centres[:, 1] = radius * np.sin(angle)
    return centres


def blobs(
    n_samples: int = 200,
    n_classes: int = 2,
    n_features: int = 2,
    spread: float = 0.5,
    seed: Seed = None,
    dtype: DTypeLike = np.float64,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs, one per class, that are guaranteed linearly separable.

    The class centres are fixed (they do not depend on ``seed``): evenly spaced
    on a circle in the first two features (on a line when ``n_features == 1``)
    with the closest two centres 4.0 apart. Each point is its centre plus
    ``N(0, spread**2)`` noise in every feature. A noise vector longer than 1.9
    (just under half the closest centre distance) is shrunk to length 1.9, so
    every point is nearer its own centre than any other; the nearest-centre
    rule is a linear classifier, so the classes are always linearly
    separable. With the default ``spread=0.5`` in 2-D that shrinking touches
    about one point in 1,500; with a large ``spread`` or many features it
    touches most points and the blobs become balls of radius 1.9.

    Args:
        n_samples: Total number of points, >= ``n_classes``; split as evenly
            as possible between the classes.
        n_classes: Number of classes, >= 2.
        n_features: Dimension of each point, >= 1.
        spread: Standard deviation of each blob, > 0.
        seed: ``None``, a non-negative int, or a ``numpy.random.Generator``.
        dtype: Floating-point dtype of ``X``.
        shuffle: If False the points are ordered by class.

    Returns:
        ``X`` of shape ``(n_samples, n_features)`` and ``y`` of shape
        ``(n_samples,)``, ``int64``.
    """
    n_classes = check_int("blobs: n_classes", n_classes, 2)
    n_samples = check_int("blobs: n_samples", n_samples, 1)
    if n_samples < n_classes:
        raise ValueError(
            f"blobs: n_samples must be >= n_classes ({n_classes}) so every class has a "
            f"point, got {n_samples}"
        )
    n_features = check_int("blobs: n_features", n_features, 1)
    spread = check_real("blobs: spread", spread, low=0.0, low_inclusive=False)
    dtype = check_float_dtype("blobs: dtype", dtype)
    rng = as_rng(seed, "blobs: seed")

    distance = 4.0
    max_offset = 0.475 * distance
    centres = _blob_centres(n_classes, n_features, distance)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), _class_sizes(n_samples, n_classes))
    offsets = rng.normal(0.0, spread, size=(n_samples, n_features))
    norms = np.linalg.norm(offsets, axis=1, keepdims=True)
    offsets *= np.minimum(1.0, max_offset / np.maximum(norms, 1e-300))
    X = centres[y] + offsets
    if shuffle:
        order = rng.permutation(n_samples)
        X, y = X[order], y[order]
    return X.astype(dtype, copy=False), y


def spiral(
    n_per_class: int = 100,
    n_classes: int = 3,
    noise: float = 0.2,
    seed: Seed = None,
    dtype: DTypeLike = np.float64,
    shuffle: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """The classic K-armed 2-D spiral: not linearly separable, easy for an MLP.

    Class ``k`` is one arm: its ``i``-th point has radius ``r = i / (n - 1)``
    (0 at the centre, 1 at the tip) and angle ``2*pi*k/K + 4*r`` radians plus
    ``N(0, noise**2)`` jitter, i.e. ``(r*sin(angle), r*cos(angle))``. The arms
    start at evenly spaced angles and each turns through 4 radians, so they
    interleave. All points lie in the unit disc.

    Args:
        n_per_class: Points per arm, >= 1.
        n_classes: Number of arms / classes, >= 2.
        noise: Standard deviation of the angular jitter in radians, >= 0.
        seed: ``None``, a non-negative int, or a ``numpy.random.Generator``.
        dtype: Floating-point dtype of ``X``.
        shuffle: If False the points are ordered by class, centre to tip.

    Returns:
        ``X`` of shape ``(n_per_class * n_classes, 2)`` and ``y`` of shape
        ``(n_per_class * n_classes,)``, ``int64``.
    """
    n_per_class = check_int("spiral: n_per_class", n_per_class, 1)
    n_classes = check_int("spiral: n_classes", n_classes, 2)
    noise = check_real("spiral: noise", noise, low=0.0)
    dtype = check_float_dtype("spiral: dtype", dtype)
    rng = as_rng(seed, "spiral: seed")

    n = n_per_class * n_classes
    radius = np.linspace(0.0, 1.0, n_per_class) if n_per_class > 1 else np.ones(1)
    r = np.tile(radius, n_classes)
    y = np.repeat(np.arange(n_classes, dtype=np.int64), n_per_class)
    angle = 2.0 * np.pi * y / n_classes + 4.0 * r + noise * rng.standard_normal(n)
    X = np.column_stack([r * np.sin(angle), r * np.cos(angle)])
    if shuffle:
        order = rng.permutation(n)
        X, y = X[order], y[order]
    return X.astype(dtype, copy=False), y


def sine(
    n_samples: int = 200,
    low: float = -math.pi,
    high: float = math.pi,
    noise: float = 0.0,
    seed: Seed = None,
    dtype: DTypeLike = np.float64,
) -> tuple[np.ndarray, np.ndarray]:
    """A 1-D regression problem: ``y = sin(x) + noise``.

    ``x`` is drawn uniformly from ``[low, high)`` (unsorted; sort by
    ``X[:, 0]`` before drawing a line plot).

    Args:
        n_samples: Number of points, >= 1.
        low, high: Interval to draw ``x`` from; ``low < high``, both finite.
        noise: Standard deviation of Gaussian noise added to ``y``, >= 0.
        seed: ``None``, a non-negative int, or a ``numpy.random.Generator``.
        dtype: Floating-point dtype of ``X`` and ``y``.

    Returns:
        ``X`` of shape ``(n_samples, 1)`` and ``y`` of shape
        ``(n_samples, 1)``, both of ``dtype``.
    """
    n_samples = check_int("sine: n_samples", n_samples, 1)
    low = check_real("sine: low", low)
    high = check_real("sine: high", high)
    if not low < high:
        raise ValueError(f"sine: low must be < high, got low={low!r}, high={high!r}")
    noise = check_real("sine: noise", noise, low=0.0)
    dtype = check_float_dtype("sine: dtype", dtype)
    rng = as_rng(seed, "sine: seed")

    x = rng.uniform(low, high, size=(n_samples, 1))
    y = np.sin(x)
    if noise > 0.0:
        y = y + noise * rng.standard_normal(y.shape)
    return x.astype(dtype, copy=False), y.astype(dtype, copy=False)
