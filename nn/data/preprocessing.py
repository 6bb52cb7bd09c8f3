"""Splitting, standardising and one-hot encoding.

* :func:`train_test_split` - shuffled (optionally stratified) split.
* :class:`Standardizer` - fit a per-column mean/std on training data, apply
  it to any array; :func:`standardize` is the one-call shortcut.
* :func:`one_hot` - integer class labels to one-hot rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from ._validation import (
    as_rng,
    check_class_labels,
    check_dtype,
    check_float_dtype,
    check_int,
    check_real,
)

__all__ = ["train_test_split", "Standardizer", "standardize", "one_hot"]

Seed = int | np.random.Generator | None


def _stratified_test_counts(counts: np.ndarray, n_test: int) -> np.ndarray:
    """How many of each class go to the test set (largest-remainder method).

    Each class gets ``counts[c] * n_test / n`` rounded so the total is exactly
    ``n_test``; ties in the remainders go to the lower class index.
    """
    quota = counts * (n_test / counts.sum())
    take = np.floor(quota).astype(np.int64)
    short = n_test - int(take.sum())
    if short > 0:
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:short]] += 1
    # Keep at least one training example per class; what that leaves out of the test set
    # goes to the classes that still have room, furthest below their quota first (not by
    # the first remainders: a class already rounded up would get a second row) (the total
    # stays n_test whenever n_test <= n - number of classes).
    room = counts - 1
    over = take - np.minimum(take, room)
    take = np.minimum(take, room)
    missing = int(over.sum())
    for c in np.argsort(-(quota - take), kind="stable"):
        if missing == 0:
            break
        extra = min(missing, int(room[c] - take[c]))
        take[c] += extra
        missing -= extra
    return take


def train_test_split(
    X: ArrayLike,
    y: ArrayLike,
    test_size: float = 0.2,
    seed: Seed = None,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Shuffle and split ``X`` and ``y`` into training and test parts.

    The test set has ``ceil(test_size * n)`` rows (at least 1, at most
    ``n - 1``). With ``stratify=True`` each class is split separately in the
    same proportion (rounded so the total is as above, and never taking a
    class's last training example), so class balance is preserved; ``y`` must
    then be 1-D labels and every class needs at least 2 samples. Both parts
    are shuffled. The same ``seed`` always gives the same split.

    Args:
        X: Array of shape ``(n, ...)``.
        y: Array whose first dimension is also ``n`` (labels or targets).
        test_size: Fraction of rows for the test set, ``0 < test_size < 1``.
        seed: ``None``, a non-negative int, or a ``numpy.random.Generator``.
        stratify: Preserve the class proportions of ``y`` in both parts.

    Returns:
        ``(X_train, X_test, y_train, y_test)``, new arrays.

    Raises:
        ValueError: bad ``test_size``, mismatched lengths, fewer than 2 rows,
            or (``stratify``) non-1-D ``y``, a class with a single sample, or a
            ``test_size`` that would leave some class no training example.
    """
    where = "train_test_split"
    X = _array(X, where, "X")
    y = _array(y, where, "y")
    test_size = check_real(f"{where}: test_size", test_size, low=0.0, high=1.0,
                           low_inclusive=False, high_inclusive=False)
    if X.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"{where}: X and y must be arrays with a sample axis, got shapes {X.shape} and "
            f"{y.shape}"
        )
    n = X.shape[0]
    if y.shape[0] != n:
        raise ValueError(
            f"{where}: X and y must have the same number of rows, got X with {n} "
            f"(shape {X.shape}) and y with {y.shape[0]} (shape {y.shape})"
        )
    if n < 2:
        raise ValueError(f"{where}: need at least 2 samples to split, got {n}")
    rng = as_rng(seed, f"{where}: seed")
    n_test = min(max(math.ceil(test_size * n - 1e-9), 1), n - 1)

    if not stratify:
        order = rng.permutation(n)
        test_idx, train_idx = order[:n_test], order[n_test:]
    else:
        if y.ndim != 1:
            raise ValueError(
                f"{where}: stratify=True needs 1-D class labels y, got shape {y.shape}"
            )
        classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
        if counts.min() < 2:
            lonely = classes[counts < 2]
            raise ValueError(
                f"{where}: stratify=True needs at least 2 samples of every class, but "
                f"class(es) {lonely.tolist()} have only 1"
            )
        if n_test > n - len(classes):
            raise ValueError(
                f"train_test_split: test_size={test_size} asks for {n_test} test rows, but "
                f"with stratify=True at most {n - len(classes)} fit (each of the "
                f"{len(classes)} classes keeps one training example); use a smaller test_size"
            )
        take = _stratified_test_counts(counts, n_test)
        test_parts, train_parts = [], []
        for c, k in enumerate(take):
            members = rng.permutation(np.flatnonzero(inverse == c))
            test_parts.append(members[:k])
            train_parts.append(members[k:])
        test_idx = rng.permutation(np.concatenate(test_parts))
        train_idx = rng.permutation(np.concatenate(train_parts))
    return X[train_idx], X[test_idx], y[train_idx], y[test_idx]


def _array(X: ArrayLike, where: str, name: str) -> np.ndarray:
    """``np.asarray(X)``; a ragged nested list is named instead of numpy's own error."""
    try:
        return np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {name} is not an array: {str(exc).split('. ')[0]}; "
                         f"expected rows of equal length") from None


def _numeric_array(X: ArrayLike, where: str, name: str) -> np.ndarray:
    X = _array(X, where, name)
    if not (np.issubdtype(X.dtype, np.number) or X.dtype == np.bool_):
        raise TypeError(f"{where}: {name} must be numeric, got dtype {X.dtype}")
    return X


class Standardizer:
    """Per-column standardisation ``(X - mean) / std`` fitted on training data.

    Constant columns (every value the same, for example a pixel that is always 0, or a
    timestamp column of one value) and columns whose standard deviation is ``<= eps`` are
    divided by 1 instead, with the mean taken as the column's value, so the training data
    becomes exactly 0 there rather than NaN or huge values. Fit on the training set only
    and apply the same transform to validation/test data.

    Attributes:
        mean_: Column means, shape ``(n_features,)`` (``None`` before ``fit``).
        std_: The divisors actually used: column standard deviations with
            those of constant columns and values ``<= eps`` replaced by 1.

    Example::

        scaler = Standardizer().fit(X_train)
        X_train_s = scaler.transform(X_train)
        X_test_s = scaler.transform(X_test)
    """

    def __init__(self, eps: float = 1e-8) -> None:
        """Args:
            eps: Standard deviations ``<= eps`` count as zero, >= 0.
        """
        self.eps = check_real("Standardizer: eps", eps, low=0.0)
        self.mean_: np.ndarray | None = None
        self.std_: np.ndarray | None = None

    def fit(self, X: ArrayLike) -> "Standardizer":
        """Compute per-feature means and standard deviations over axis 0 of ``X``.

        ``X`` is usually ``(n_samples, n_features)``; any ``ndim >= 1`` works
        (e.g. ``(n, 8, 8)`` images give per-pixel statistics).

        Returns:
            ``self``, so ``Standardizer().fit(X)`` can be chained.

        Raises:
            ValueError: ``X`` has no rows, is ragged, or holds NaN or infinite values.
            TypeError: ``X`` is not numeric.
        """
        where = "Standardizer.fit"
        X = _numeric_array(X, where, "X")
        if X.ndim < 1 or X.shape[0] == 0:
            raise ValueError(
                f"{where}: X must have at least one row to fit a Standardizer, got shape "
                f"{X.shape}"
            )
        work = X.astype(np.result_type(X.dtype, np.float64), copy=False)
        bad = ~np.isfinite(work)
        if bad.any():       # (a NaN mean would make the column NaN in every array transformed)
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{where}: X holds {int(bad.sum())} NaN or infinite value(s), the first "
                f"{work[first]} at index {first}; expected finite data: drop or fill the "
                f"missing values before standardising"
            )
        mean = work.mean(axis=0)
        std = work.std(axis=0)
        # a constant column's computed std is rounding noise (~1e-6 for values near 1e9),
        # which would pass eps and blow a test value 1 away from it up to ~1e5
        constant = work.max(axis=0) == work.min(axis=0)
        self.mean_ = np.where(constant, work[0], mean)
        self.std_ = np.where(constant | (std <= self.eps), 1.0, std)
        return self

    def transform(self, X: ArrayLike, dtype: DTypeLike | None = None) -> np.ndarray:
        """Return ``(X - mean_) / std_`` as a new array.

        Args:
            X: Array whose trailing shape matches the fitted data.
            dtype: Floating-point output dtype; by default ``X``'s dtype if it
                is floating, else float64.
        """
        return self._apply(X, dtype, "Standardizer.transform", "X", inverse=False)

    def fit_transform(self, X: ArrayLike, dtype: DTypeLike | None = None) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X, dtype=dtype)

    def inverse_transform(self, Z: ArrayLike, dtype: DTypeLike | None = None) -> np.ndarray:
        """Undo :meth:`transform`: ``Z * std_ + mean_``."""
        return self._apply(Z, dtype, "Standardizer.inverse_transform", "Z", inverse=True)

    def _apply(self, X: ArrayLike, dtype: DTypeLike | None, where: str, name: str,
               inverse: bool) -> np.ndarray:
        """``transform`` or ``inverse_transform`` of ``X``, its errors naming ``where``/``name``."""
        if self.mean_ is None or self.std_ is None:
            raise RuntimeError(f"{where}: the Standardizer is not fitted yet: call "
                               f"fit(X_train) first")
        X = _numeric_array(X, where, name)
        if X.shape[1:] != self.mean_.shape:
            hint = (f"; one sample of shape {X.shape} must be a row: {name}.reshape(1, -1)"
                    if X.shape == self.mean_.shape else "")
            raise ValueError(
                f"{where}: {name} must be rows of feature shape {self.mean_.shape} (as "
                f"fitted), got an array of shape {X.shape}{hint}"
            )
        if dtype is None:
            out_dtype = X.dtype if np.issubdtype(X.dtype, np.floating) else np.dtype(np.float64)
        else:
            out_dtype = check_float_dtype(f"{where}: dtype", dtype)
        out = X * self.std_ + self.mean_ if inverse else (X - self.mean_) / self.std_
        return out.astype(out_dtype, copy=False)

    def __repr__(self) -> str:
        state = "unfitted" if self.mean_ is None else f"n_features={self.mean_.size}"
        return f"Standardizer(eps={self.eps!r}, {state})"


def standardize(X_train: ArrayLike, *others: ArrayLike, eps: float = 1e-8) -> tuple[Any, ...]:
    """Standardise ``X_train`` with its own column statistics, and ``others`` with the same.

    Shortcut for :class:`Standardizer`. Constant columns (and std ``<= eps``)
    are divided by 1, so they become 0 instead of NaN.

    Args:
        X_train: Training data, rows are samples.
        *others: Any number of further arrays (validation, test) with the
            same feature shape; they are transformed with the training
            statistics, never their own.
        eps: Standard deviations ``<= eps`` count as zero.

    Returns:
        ``(X_train_std, *others_std, mean, std)`` where ``std`` holds the
        divisors used (zero-variance columns replaced by 1). For example
        ``Xtr, Xte, mean, std = standardize(X_train, X_test)``.
    """
    scaler = Standardizer(eps=eps).fit(X_train)
    names = ["X_train"] + [f"others[{k}]" for k in range(len(others))]
    arrays = tuple(scaler._apply(a, None, "standardize", name, inverse=False)
                   for a, name in zip((X_train, *others), names))
    assert scaler.mean_ is not None and scaler.std_ is not None
    return (*arrays, scaler.mean_.copy(), scaler.std_.copy())


def one_hot(
    y: ArrayLike,
    n_classes: int | None = None,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """Integer class labels to one-hot rows.

    Args:
        y: 1-D array of labels in ``0 .. n_classes - 1``. Integer arrays are
            used as is; float arrays are accepted only when every value is
            integral (e.g. ``2.0``).
        n_classes: Number of columns, >= 1. ``None`` means ``max(y) + 1``.
        dtype: Numeric dtype of the result (float64 by default).

    Returns:
        Array of shape ``(len(y), n_classes)`` with a single 1 per row.

    Raises:
        TypeError: ``y`` is not numeric (strings, objects, booleans, complex).
        ValueError: ``y`` is not 1-D, holds non-integral floats, negative
            labels or labels ``>= n_classes`` (the message names the first such
            value and its index); or ``n_classes`` cannot be inferred from an
            empty ``y``.
    """
    out_dtype = check_dtype("one_hot: dtype", dtype)
    n_classes_given = n_classes is not None
    if n_classes is not None:
        n_classes = check_int("one_hot: n_classes", n_classes, 1)
    labels = check_class_labels(
        y, n_classes, "one_hot",
        classes_from=None if n_classes is None else f"n_classes={n_classes}",
    )
    if n_classes is None:
        if labels.size == 0:
            raise ValueError("one_hot: n_classes must be given when y is empty (cannot infer it)")
        n_classes = int(labels.max()) + 1
    try:
        return onehot_rows(labels, n_classes, out_dtype)
    except (ValueError, MemoryError):
        raise ValueError(
            f"one_hot: a ({labels.size}, {n_classes}) array of {out_dtype} does not fit in "
            f"memory (n_classes{'' if n_classes_given else ', inferred as max(y) + 1,'} = "
            f"{n_classes}); check the labels, or pass the real n_classes"
        ) from None


def onehot_rows(labels: np.ndarray, n_classes: int, dtype: DTypeLike) -> np.ndarray:
    """One-hot rows for int64 labels that ``check_class_labels`` already checked (no second
    check: the MLPs and the loss check their labels with their own messages first)."""
    out = np.zeros((labels.size, n_classes), dtype=dtype)
    out[np.arange(labels.size), labels] = 1
    return out
