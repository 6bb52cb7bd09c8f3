"""Ops that move elements around without arithmetic: reshape, transpose, indexing, joining."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..function import Function
from ._util import normalize_axis, unbroadcast


def _in_shape(ctx, i=0):
    return ctx.input_shape(i)


class Reshape(Function):
    """y = x viewed with a new shape (same number of elements); dL/dx = g reshaped back."""
    op_name = "reshape"

    @staticmethod
    def forward(ctx, x, shape=None):
        try:
            return x.reshape(shape)
        except (ValueError, TypeError):
            raise ShapeError(f"reshape: cannot reshape an array of shape {x.shape} ({x.size} "
                             f"elements) into shape {shape}") from None

    @staticmethod
    def backward(ctx, g):
        return g.reshape(_in_shape(ctx))


class ExpandDims(Reshape):
    """y = x with a new axis of length 1 at ``axis``; dL/dx = g reshaped back."""
    op_name = "expand_dims"

    @staticmethod
    def forward(ctx, x, axis=0):
        try:
            return np.expand_dims(x, axis)
        except (ValueError, IndexError):
            raise ShapeError(f"expand_dims: axis {axis} is out of range for an array of shape "
                             f"{x.shape}") from None
        except TypeError:
            raise TypeError(f"expand_dims: axis must be an int or a tuple of ints, got "
                            f"{axis!r}") from None


class Squeeze(Reshape):
    """y = x without axes of length 1 (all, or ``axis``); dL/dx = g reshaped back."""
    op_name = "squeeze"

    @staticmethod
    def forward(ctx, x, axis=None):
        axis = normalize_axis(axis, x.ndim, "squeeze")
        axes = (axis,) if isinstance(axis, int) else axis
        if axes is not None:
            bad = [a for a in axes if x.shape[a] != 1]
            if bad:
                raise ShapeError(f"squeeze: axis {bad[0]} of shape {x.shape} has length "
                                 f"{x.shape[bad[0]]}, not 1")
        out = np.squeeze(x, axis=axis)
        # numpy gives back x itself when there is nothing to squeeze: the engine's promise
        # (check_backward = False) is a new array, or a leaf's array saved by the next node
        # would go unprotected
        return out if out is not x else x.view()


class Transpose(Function):
    """y = x with axes permuted (reversed by default); dL/dx = g with the inverse permutation."""
    op_name = "transpose"

    @staticmethod
    def forward(ctx, x, axes=None):
        if axes is not None:
            axes = tuple(axes)
            if sorted(normalize_axis(axes, x.ndim, "transpose")) != list(range(x.ndim)):
                raise ShapeError(f"transpose: axes {axes} are not a permutation of the "
                                 f"{x.ndim} axes of shape {x.shape}")
            axes = normalize_axis(axes, x.ndim, "transpose")
        ctx.axes = axes
        return np.transpose(x, axes)

    @staticmethod
    def backward(ctx, g):
        if ctx.axes is None:
            return g.transpose()
        return g.transpose(tuple(np.argsort(ctx.axes)))


class SwapAxes(Function):
    """y = x with two axes exchanged; dL/dx = g with the same two axes exchanged."""
    op_name = "swapaxes"

    @staticmethod
    def forward(ctx, x, axis1=0, axis2=1):
        ctx.axes = (normalize_axis(axis1, x.ndim, "swapaxes"),
                    normalize_axis(axis2, x.ndim, "swapaxes"))
        return np.swapaxes(x, *ctx.axes)

    @staticmethod
    def backward(ctx, g):
        return np.swapaxes(g, *ctx.axes)


class BroadcastTo(Function):
    """y = x broadcast to ``shape``; dL/dx = g summed over the broadcast axes."""
    op_name = "broadcast_to"

    @staticmethod
    def forward(ctx, x, shape=None):
        try:
            return np.broadcast_to(x, shape)
        except ValueError:
            raise ShapeError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}") from None
        except TypeError:
            raise TypeError(f"broadcast_to: shape must be a tuple of ints, got {shape!r}") from None

    @staticmethod
    def backward(ctx, g):
        return unbroadcast(g, _in_shape(ctx))


def _plain_index(index):
    """Turn Tensors inside an index into arrays (indices are never differentiated)."""
    from ..tensor import Tensor
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):               # x[t0, 1:], x[[t0, t1], 0]
        return tuple(_plain_index(i) for i in index)
    if isinstance(index, list) and index:
        try:
            return np.asarray(index)           # (numpy reads a list index as this array)
        except TypeError:                      # Tensors inside refuse the conversion
            return [_plain_index(i) for i in index]
        except ValueError:                     # ragged: getitem names it (numpy's ValueError)
            return index
    return index


def _private_index(index):
    """``index`` with its arrays and lists copied (slices, ints, None and ... are immutable)."""
    if isinstance(index, tuple):
        return tuple(_private_index(i) for i in index)
    if isinstance(index, (np.ndarray, list)):
        arr = np.array(index)
        if arr.size == 0 and arr.dtype.kind == "f":   # [] is an empty integer index to numpy
            arr = arr.astype(np.intp)
        return arr
    return index


def _is_basic(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return all(p is None or p is Ellipsis or isinstance(p, (slice, int, np.integer))
               and not isinstance(p, bool) for p in parts)


class GetItem(Function):
    """y = x[index] (slices, ints, None, ..., integer or boolean arrays).

    dL/dx scatters g back into zeros of x's shape; repeated indices accumulate.
    """
    op_name = "getitem"

    @staticmethod
    def forward(ctx, x, index=None):
        try:
            out = x[index]
        except (IndexError, ValueError) as exc:     # (ValueError: a ragged list index)
            raise type(exc)(f"getitem: index {index!r} does not fit an array of shape "
                            f"{x.shape}: {exc}") from None
        # the caller may change an index array after this: keep a private copy for backward
        ctx.index = _private_index(index) if ctx.needs_input_grad[0] else index
        return out if isinstance(out, np.ndarray) else np.asarray(out)

    @staticmethod
    def backward(ctx, g):
        return index_add(g, ctx.index, _in_shape(ctx))


class IndexAdd(Function):
    """y = zeros(shape) with g added at ``index`` (repeats accumulate): getitem's backward.

    dL/dg = (dL/dy)[index].
    """
    op_name = "index_add"

    @staticmethod
    def forward(ctx, g, index=None, shape=None):
        ctx.index = index
        out = np.zeros(shape, dtype=g.dtype)
        if _is_basic(index):
            out[index] = g                # a basic index cannot repeat an element
        else:
            np.add.at(out, index, g)
        return out

    @staticmethod
    def backward(ctx, gy):
        return gy[ctx.index]


def index_add(g, index, shape):
    """Scatter-add ``g`` into zeros of ``shape`` at ``index`` (arrays or Tensors)."""
    from ..tensor import Tensor
    if isinstance(g, Tensor):                  # a recorded backward (create_graph)
        return IndexAdd.apply(g, index=index, shape=shape)
    return IndexAdd.forward(IndexAdd.__new__(IndexAdd), np.asarray(g), index=index, shape=shape)


def _one_axis(axis, ndim: int, op: str) -> int:
    """One axis, given as an int (numpy's axis=None, flattening first, is not supported)."""
    if axis is None or isinstance(axis, (tuple, list)):
        hint = ("; to join flattened tensors, reshape(-1) each of them first"
                if op == "concatenate" else ", e.g. axis=0")
        raise TypeError(f"{op}: axis must be an int, got {axis!r}{hint}")
    return normalize_axis(axis, ndim, op)


class Concatenate(Function):
    """y = the inputs joined along ``axis``; each input's gradient is its slice of g."""
    op_name = "concatenate"

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        if not arrays:
            raise ValueError("concatenate: needs at least one tensor")
        shapes = [np.shape(a) for a in arrays]
        ndim = len(shapes[0])
        if ndim == 0:
            raise ShapeError("concatenate: zero-dimensional tensors cannot be concatenated; "
                             "use stack")
        ax = _one_axis(axis, ndim, "concatenate")
        for s in shapes[1:]:
            if len(s) != ndim or any(a != b for i, (a, b) in enumerate(zip(s, shapes[0])) if i != ax):
                raise ShapeError(f"concatenate: shapes {shapes} differ outside axis {ax}")
        ctx.axis = ax
        bounds = [0]                  # ints, not an array: nothing on ctx to free (see Function)
        for s in shapes:
            bounds.append(bounds[-1] + s[ax])
        ctx.bounds = tuple(bounds)
        return np.concatenate(arrays, axis=ax)

    @staticmethod
    def backward(ctx, g):
        ax, bounds = ctx.axis, ctx.bounds
        lead = (slice(None),) * ax
        return tuple(g[lead + (slice(bounds[i], bounds[i + 1]),)] if need else None
                     for i, need in enumerate(ctx.needs_input_grad))


class Stack(Function):
    """y = the inputs stacked along a new ``axis``; each input's gradient is g[..., i, ...]."""
    op_name = "stack"

    @staticmethod
    def forward(ctx, *arrays, axis=0):
        if not arrays:
            raise ValueError("stack: needs at least one tensor")
        shapes = [np.shape(a) for a in arrays]
        if any(s != shapes[0] for s in shapes):
            raise ShapeError(f"stack: all tensors must have the same shape, got {shapes}")
        ax = _one_axis(axis, len(shapes[0]) + 1, "stack")
        ctx.axis = ax
        return np.stack(arrays, axis=ax)

    @staticmethod
    def backward(ctx, g):
        lead = (slice(None),) * ctx.axis
        return tuple(g[lead + (i,)] if need else None
                     for i, need in enumerate(ctx.needs_input_grad))
