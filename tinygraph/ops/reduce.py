"""Reductions and the softmax family, along an axis (int, tuple or None = all axes)."""
from __future__ import annotations

import math

import numpy as np

from ..function import Function
from ._util import normalize_axis


def _keepdims_shape(shape: tuple, axis) -> tuple:
    """``shape`` with the reduced axes set to 1 (what keepdims=True gives)."""
    if axis is None:
        return (1,) * len(shape)
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _reduced_shape(shape: tuple, axis) -> tuple:
    """``shape`` without the reduced axes (what keepdims=False gives)."""
    if axis is None:
        return ()
    axes = (axis,) if isinstance(axis, int) else axis
    return tuple(n for i, n in enumerate(shape) if i not in axes)


# Below this many elements, filling a new array is cheaper than numpy's broadcast_to
# (about 2.5 us of Python); above it, the zero-copy view wins.
_FILL_BELOW = 4096


def _expand(g, shape: tuple, axis):
    """Broadcast a reduced gradient back over the input's shape."""
    g = g.reshape(_keepdims_shape(shape, axis))
    if type(g) is np.ndarray and math.prod(shape) < _FILL_BELOW:
        out = np.empty(shape, g.dtype)
        out[...] = g
        return out
    return np.broadcast_to(g, shape)


def _keepdims(keepdims, op: str) -> bool:
    """``keepdims`` as a bool (or 0/1): numpy would take any truthy value, such as "no", as
    True."""
    if keepdims is True or keepdims is False:
        return keepdims
    if isinstance(keepdims, (np.bool_, int, np.integer)) and keepdims in (0, 1):
        return bool(keepdims)
    raise TypeError(f"{op}: keepdims must be True or False, got {keepdims!r}")


class Sum(Function):
    """y = Σ x over ``axis``;  dy/dx = 1 (the gradient is broadcast back)."""
    op_name = "sum"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = normalize_axis(axis, x.ndim, "sum")
        keepdims = _keepdims(keepdims, "sum")
        return np.sum(x, axis=ctx.axis, keepdims=keepdims)

    @staticmethod
    def backward(ctx, g):
        return _expand(g, ctx.input_shape(0), ctx.axis)


class Mean(Function):
    """y = (1/N) Σ x over ``axis``;  dy/dx = 1/N."""
    op_name = "mean"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = normalize_axis(axis, x.ndim, "mean")
        keepdims = _keepdims(keepdims, "mean")
        _check_reducible(x, ctx.axis, "mean")     # (an empty axis left over is fine: (0,))
        out = np.mean(x, axis=ctx.axis, keepdims=keepdims)
        ctx.count = _reduced_count(x.shape, ctx.axis)
        return out

    @staticmethod
    def backward(ctx, g):
        return _expand(g / ctx.count, ctx.input_shape(0), ctx.axis)


class _Extreme(Function):
    """max/min over an axis. Ties split the gradient evenly among the tied elements."""
    reducer = staticmethod(np.max)

    @classmethod
    def _forward(cls, ctx, x, axis, keepdims):
        ctx.axis = normalize_axis(axis, x.ndim, cls.op_name)
        keepdims = _keepdims(keepdims, cls.op_name)
        _check_reducible(x, ctx.axis, cls.op_name)
        kept = cls.reducer(x, axis=ctx.axis, keepdims=True)
        winners = x == kept
        weights = winners / np.sum(winners, axis=ctx.axis, keepdims=True)
        ctx.save_for_backward(weights.astype(x.dtype, copy=False))
        return kept if keepdims else kept.reshape(_reduced_shape(x.shape, ctx.axis))

    @staticmethod
    def backward(ctx, g):
        (weights,) = ctx.saved_tensors
        return _expand(g, ctx.input_shape(0), ctx.axis) * weights


class Max(_Extreme):
    """y = max x over ``axis``;  dy/dx = 1/k on the k tied maxima, 0 elsewhere."""
    op_name = "max"
    reducer = staticmethod(np.max)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return Max._forward(ctx, x, axis, keepdims)


class Min(_Extreme):
    """y = min x over ``axis``;  dy/dx = 1/k on the k tied minima, 0 elsewhere."""
    op_name = "min"
    reducer = staticmethod(np.min)

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        return Min._forward(ctx, x, axis, keepdims)


def _reduced_count(shape: tuple, axis) -> int:
    """How many elements each output of a reduction over ``axis`` averages."""
    axes = range(len(shape)) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    count = 1
    for a in axes:
        count *= shape[a]
    return count


def _check_reducible(x: np.ndarray, axis, op: str) -> None:
    """A max over an axis of length 0 has no value: say so (numpy's message names neither
    the op nor the shape)."""
    if x.size == 0:
        axes = range(x.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
        if any(x.shape[a] == 0 for a in axes) or x.ndim == 0:
            raise ValueError(f"{op}: cannot reduce over an axis of length 0 (input of shape "
                             f"{x.shape}, axis {axis}); an empty set has no {op}")


def _logsumexp(x: np.ndarray, axis, keepdims: bool = True, op: str = "logsumexp") -> np.ndarray:
    _check_reducible(x, axis, op)
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)           # rows of -inf stay -inf, not NaN
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else out.reshape(_reduced_shape(x.shape, axis))


class LogSumExp(Function):
    """y = log Σ exp(x) over ``axis`` (shifted by the max: no overflow);  dy/dx = softmax(x)."""
    op_name = "logsumexp"

    @staticmethod
    def forward(ctx, x, axis=None, keepdims=False):
        ctx.axis = normalize_axis(axis, x.ndim, "logsumexp")
        keepdims = _keepdims(keepdims, "logsumexp")
        out = _logsumexp(x, ctx.axis, keepdims)
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved_tensors
        shape = ctx.input_shape(0)
        kshape = _keepdims_shape(shape, ctx.axis)
        return g.reshape(kshape) * np.exp(x - out.reshape(kshape))


class Softmax(Function):
    """s = exp(x - max) / Σ exp(x - max) along ``axis``;  dL/dx = s ⊙ (g - Σ g⊙s)."""
    op_name = "softmax"

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = normalize_axis(axis, x.ndim, "softmax")
        _check_reducible(x, ctx.axis, "softmax")
        e = np.exp(x - np.max(x, axis=ctx.axis, keepdims=True))
        s = e / np.sum(e, axis=ctx.axis, keepdims=True)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        return s * (g - (g * s).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """y = x - logsumexp(x) along ``axis``;  dL/dx = g - softmax(x) Σ g."""
    op_name = "log_softmax"

    @staticmethod
    def forward(ctx, x, axis=-1):
        ctx.axis = normalize_axis(axis, x.ndim, "log_softmax")
        _check_reducible(x, ctx.axis, "log_softmax")
        # (x - m) - log Σ e^(x - m), not x - logsumexp(x): for large x the sum log(s) + m is
        # rounded to m's precision and the subtraction cancels (float32, logits near 1e4:
        # 5e-4 relative error)
        m = np.max(x, axis=ctx.axis, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)           # rows of -inf stay -inf, not NaN
        shifted = x - m
        with np.errstate(divide="ignore"):
            y = shifted - np.log(np.sum(np.exp(shifted), axis=ctx.axis, keepdims=True))
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g - np.exp(y) * g.sum(axis=ctx.axis, keepdims=True)
