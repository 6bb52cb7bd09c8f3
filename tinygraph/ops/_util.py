"""Helpers shared by the ops' backward passes. They work on numpy arrays and on Tensors."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError


def unbroadcast(grad, shape: tuple):
    """Sum ``grad`` over the axes that broadcasting added or stretched, back to ``shape``.

    Handles unequal ranks: a (2, 3) gradient for a (3,) input sums axis 0; for a (2, 1)
    input it sums axis 1 keeping it. Returns ``grad`` itself when nothing was broadcast.
    """
    gshape = grad.shape
    if gshape == shape:
        return grad
    lead = len(gshape) - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and gshape[lead + i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)


def broadcast_error(op: str, *shapes) -> ShapeError:
    joined = " and ".join(str(tuple(s)) for s in shapes)
    return ShapeError(f"{op}: shapes {joined} cannot be broadcast together (numpy rules: "
                      f"trailing dimensions must be equal or 1)")


def shape_of(x) -> tuple:
    return np.shape(x) if not hasattr(x, "shape") else tuple(x.shape)


def normalize_axis(axis, ndim: int, op: str):
    """Validate an axis (int, tuple of ints or None) against ``ndim``; negative axes allowed.

    Returns None, a non-negative int, or a tuple of them (as given).
    """
    if axis is None:
        return None
    single = np.ndim(axis) == 0               # (a float or a string is caught just below)
    axes = (axis,) if single else tuple(axis)
    out = []
    for a in axes:
        if not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            if not (type(a) is np.ndarray and a.ndim == 0 and a.dtype.kind in "iu"):
                raise TypeError(f"{op}: axis must be an int or a tuple of ints, got {axis!r}")
            a = int(a)                    # a 0-d integer array, as numpy takes it
        if not -ndim <= a < ndim:
            valid = (f"valid axes are {-ndim}..{ndim - 1}" if ndim else
                     "a 0-d array (a scalar) has no axes: give it at least one dimension, "
                     "e.g. reshape(1)")
            raise ShapeError(f"{op}: axis {a} is out of range for an array with {ndim} "
                             f"dimension(s); {valid}")
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ShapeError(f"{op}: repeated axis in {axis!r}")
    return out[0] if single else tuple(out)
