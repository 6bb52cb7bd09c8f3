"""Elementwise ops. Binary ops broadcast like numpy; backward sums each gradient back to
its input's shape (``unbroadcast``). Python scalars are constants that take the
tensor's dtype (numpy's weak-scalar rule), so float32 stays float32.
"""
from __future__ import annotations

import math

import numpy as np

from .. import function as _function
from ..errors import ShapeError
from ..function import Function, python_scalar
from ._util import broadcast_error, shape_of, unbroadcast


class Add(Function):
    """z = a + b;  dz/da = 1, dz/db = 1."""
    op_name = "add"

    @staticmethod
    def forward(ctx, a, b):
        try:
            return a + b
        except ValueError:
            raise broadcast_error("add", shape_of(a), shape_of(b)) from None

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        return (unbroadcast(g, ctx.input_shapes[0]) if n[0] else None,
                unbroadcast(g, ctx.input_shapes[1]) if n[1] else None)


class Sub(Function):
    """z = a - b;  dz/da = 1, dz/db = -1."""
    op_name = "sub"

    @staticmethod
    def forward(ctx, a, b):
        try:
            return a - b
        except ValueError:
            raise broadcast_error("sub", shape_of(a), shape_of(b)) from None

    @staticmethod
    def backward(ctx, g):
        n = ctx.needs_input_grad
        return (unbroadcast(g, ctx.input_shapes[0]) if n[0] else None,
                unbroadcast(-g, ctx.input_shapes[1]) if n[1] else None)


class Mul(Function):
    """z = a * b;  dz/da = b, dz/db = a."""
    op_name = "mul"

    @staticmethod
    def forward(ctx, a, b):
        n = ctx.needs_input_grad
        ctx.save_for_backward(a if n[1] else None, b if n[0] else None)
        try:
            return a * b
        except ValueError:
            raise broadcast_error("mul", shape_of(a), shape_of(b)) from None

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        return (unbroadcast(g * b, ctx.input_shapes[0]) if n[0] else None,
                unbroadcast(g * a, ctx.input_shapes[1]) if n[1] else None)


class Div(Function):
    """z = a / b;  dz/da = 1/b, dz/db = -a/b² (as -(g/b)·a/b: b² alone can overflow or
    underflow where the gradient itself is finite)."""
    op_name = "div"

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        try:
            return a / b
        except ValueError:
            raise broadcast_error("div", shape_of(a), shape_of(b)) from None

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        g_over_b = g / b
        return (unbroadcast(g_over_b, ctx.input_shapes[0]) if n[0] else None,
                unbroadcast(-g_over_b * a / b, ctx.input_shapes[1]) if n[1] else None)


class Pow(Function):
    """z = a ** p;  dz/da = p·a^(p-1), dz/dp = a^p·log(a) (a > 0)."""
    op_name = "pow"

    @staticmethod
    def forward(ctx, a, p):
        try:
            out = a ** p
        except ValueError as exc:
            try:
                np.broadcast_shapes(shape_of(a), shape_of(p))
            except ValueError:
                raise broadcast_error("pow", shape_of(a), shape_of(p)) from None
            raise ValueError(f"pow: an integer array to a negative integer power has no "
                             f"integer result (numpy: {exc}); use a float array or exponent, "
                             f"e.g. t.cast(np.float64) ** -1") from None
        ctx.save_for_backward(a, p, out if ctx.needs_input_grad[1] else None)
        return out

    @staticmethod
    def backward(ctx, g):
        a, p, out = ctx.saved_tensors
        n = ctx.needs_input_grad
        ga = gp = None
        if n[0]:
            p_values = _values(p)
            if isinstance(p, (int, float)) and p == 0:
                ga = g * 0                                   # d(a^0)/da = 0, also at a = 0
            elif type(p_values) is np.ndarray and (p_values == 0).any():
                # the same where p and a are 0: not 0 * 0^(-1) = NaN. Also under create_graph
                # (p a Tensor): a is swapped for 1 there, so that no NaN flows back either
                zero = (p_values == 0) & np.equal(_values(a), 0)
                with np.errstate(divide="ignore", invalid="ignore"):
                    slope = np.where(zero, 0, p * np.where(zero, 1, a) ** (p - 1))
                ga = unbroadcast(g * slope, ctx.input_shapes[0])
            else:
                ga = unbroadcast(g * p * a ** (p - 1), ctx.input_shapes[0])
        if n[1]:
            if isinstance(a, (int, float)):
                # math.log keeps a Python-number base a weak scalar (no float64 upcast); it
                # raises for a <= 0, where the slope a^p·log(a) has no real value
                log_a = math.log(a) if a > 0 else (-math.inf if a == 0 else math.nan)
            else:
                with np.errstate(divide="ignore", invalid="ignore"):
                    log_a = np.log(a)
            with np.errstate(invalid="ignore"):
                gp = g * out * log_a
            zero_base = np.equal(_values(a), 0)
            if np.any(zero_base):
                # 0^p is 0 for every p > 0 (and 1 at p = 0): slope 0 there, not 0·(-inf),
                # as PyTorch gives (np.where records a where node when gp is a Tensor)
                gp = np.where(zero_base & np.greater_equal(_values(p), 0), 0, gp)
            gp = unbroadcast(gp, ctx.input_shapes[1])
        return ga, gp


def _values(v):
    """The numbers of a saved input: a Tensor's array under create_graph (masks built from
    it are constants), anything else as it is."""
    return v.data if isinstance(v, _function.Tensor) else v


class Neg(Function):
    """z = -a;  dz/da = -1."""
    op_name = "neg"

    @staticmethod
    def forward(ctx, a):
        return -a

    @staticmethod
    def backward(ctx, g):
        return -g


class Exp(Function):
    """y = exp(x);  dy/dx = y (the saved output)."""
    op_name = "exp"

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y


class Log(Function):
    """y = log(x);  dy/dx = 1/x."""
    op_name = "log"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g / x


class Sqrt(Function):
    """y = √x;  dy/dx = 1/(2y)."""
    op_name = "sqrt"

    @staticmethod
    def forward(ctx, x):
        y = np.sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g / (y * 2)


class Abs(Function):
    """y = |x|;  dy/dx = sign(x) (0 at x = 0)."""
    op_name = "abs"

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(np.sign(x))
        return np.abs(x)

    @staticmethod
    def backward(ctx, g):
        (sign,) = ctx.saved_tensors
        return g * sign


class _Extremum(Function):
    """Shared backward of maximum/minimum: the gradient goes to the winner; ties split it in half."""

    @staticmethod
    def backward(ctx, g):
        (wa,) = ctx.saved_tensors
        n = ctx.needs_input_grad
        return (unbroadcast(g * wa, ctx.input_shapes[0]) if n[0] else None,
                unbroadcast(g * (1 - wa), ctx.input_shapes[1]) if n[1] else None)


class Maximum(_Extremum):
    """z = max(a, b) elementwise; dz/da = 1 where a > b, 1/2 where a == b, else 0."""
    op_name = "maximum"

    @staticmethod
    def forward(ctx, a, b):
        try:
            out = np.maximum(a, b)
        except ValueError:
            raise broadcast_error("maximum", shape_of(a), shape_of(b)) from None
        ctx.save_for_backward(((a > b) + (a == b) * 0.5).astype(out.dtype))
        return out


class Minimum(_Extremum):
    """z = min(a, b) elementwise; dz/da = 1 where a < b, 1/2 where a == b, else 0."""
    op_name = "minimum"

    @staticmethod
    def forward(ctx, a, b):
        try:
            out = np.minimum(a, b)
        except ValueError:
            raise broadcast_error("minimum", shape_of(a), shape_of(b)) from None
        ctx.save_for_backward(((a < b) + (a == b) * 0.5).astype(out.dtype))
        return out


class Clip(Function):
    """y = clip(x, lo, hi);  dy/dx = 1 where lo ≤ x ≤ hi, else 0 (the bounds are constants)."""
    op_name = "clip"

    @staticmethod
    def forward(ctx, x, lo=None, hi=None):
        if lo is None and hi is None:
            raise ValueError("clip: give at least one of lo and hi")
        lo, hi = python_scalar(lo), python_scalar(hi)     # (np.float64 bounds: x's dtype kept)
        for name, bound in (("lo", lo), ("hi", hi)):
            if bound is not None and np.asarray(bound).dtype.kind not in "biuf":
                raise TypeError(f"clip: bound {name}={bound!r:.40} is not a number; expected a "
                                f"number or a numeric array")
            if bound is not None and np.ndim(bound):
                try:
                    fits = np.broadcast_shapes(np.shape(bound), x.shape) == x.shape
                except ValueError:
                    fits = False
                if not fits:            # the result has x's shape: a bound may not widen it
                    raise ShapeError(f"clip: bound {name} of shape {np.shape(bound)} does not "
                                     f"broadcast to x's shape {x.shape}; expected a number or "
                                     f"an array that broadcasts to {x.shape}")
        if lo is not None and hi is not None and np.any(np.asarray(lo) > np.asarray(hi)):
            raise ValueError(f"clip: lo={lo} is greater than hi={hi}")
        inside = np.ones(x.shape, dtype=bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        ctx.save_for_backward(inside)
        return np.clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved_tensors
        return g * inside


class ReLU(Function):
    """y = max(x, 0);  dy/dx = 1[x > 0] (0 at x = 0), read from the saved output."""
    op_name = "relu"

    @staticmethod
    def forward(ctx, x):
        y = np.maximum(x, 0)
        ctx.save_for_backward(y)   # the next layer saves it too: one array, not two
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (y > 0)


def _stable_sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))            # never overflows
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Sigmoid(Function):
    """y = σ(x) = 1/(1+e^(-x)) (computed without overflow);  dy/dx = y(1 - y)."""
    op_name = "sigmoid"

    @staticmethod
    def forward(ctx, x):
        y = _stable_sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * y * (1 - y)


class Tanh(Function):
    """y = tanh(x);  dy/dx = 1 - y²."""
    op_name = "tanh"

    @staticmethod
    def forward(ctx, x):
        y = np.tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g * (1 - y * y)


class Where(Function):
    """z = where(cond, a, b);  dz/da = cond, dz/db = not cond (cond is not differentiable)."""
    op_name = "where"

    @staticmethod
    def forward(ctx, cond, a, b):
        if cond is None:                 # (np.asarray(None, bool) is False: b, silently)
            raise TypeError("where: cond must be a boolean array or Tensor, got cond=None")
        if a is None or b is None:       # (np.where would make an object array of it)
            raise TypeError(f"where: the values to pick from must be numbers, arrays or "
                            f"Tensors, got {'a' if a is None else 'b'}=None")
        cond = np.asarray(cond, dtype=bool)
        ctx.save_for_backward(cond)
        try:
            return np.where(cond, a, b)
        except ValueError:
            raise broadcast_error("where", shape_of(cond), shape_of(a), shape_of(b)) from None

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved_tensors
        n = ctx.needs_input_grad
        return (None,
                unbroadcast(np.where(cond, g, 0), ctx.input_shapes[1]) if n[1] else None,
                unbroadcast(np.where(cond, 0, g), ctx.input_shapes[2]) if n[2] else None)


class Cast(Function):
    """y = x.astype(dtype);  dy/dx = 1, the gradient cast back to x's dtype."""
    op_name = "cast"

    @staticmethod
    def forward(ctx, x, dtype=None):
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"cast: {dtype!r} is not a numpy dtype; expected e.g. np.float32, "
                            f"np.float64 or 'float32'") from None
        if dtype.kind not in "biuf":
            raise TypeError(f"cast: dtype {dtype} is not a bool, integer or float dtype, which "
                            f"are all that tinygraph computes with; expected e.g. np.float32")
        ctx.input_dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.input_dtype)
