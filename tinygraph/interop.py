"""numpy on Tensors: ``np.exp(t)`` records tinygraph's ``exp``; a numpy function with no
tinygraph op raises, naming what to use instead, rather than silently leaving the graph."""
from __future__ import annotations

import numpy as np

from . import ops
from .tensor import Tensor


def _data(x):
    return x.data if isinstance(x, Tensor) else x


def _no_grad_result(fn, args, kwargs):
    """Comparisons and tests give plain (non-differentiable) Tensors."""
    try:
        return Tensor(fn(*[_data(a) for a in args], **kwargs))
    except (TypeError, ValueError) as exc:    # mismatched shapes, strings, None
        # (a plain ValueError or TypeError: numpy's own subclasses take other arguments)
        kind = ValueError if isinstance(exc, ValueError) else TypeError
        raise kind(f"numpy.{fn.__name__} on a Tensor: {exc}; expected numbers, or arrays "
                   f"whose shapes broadcast with the Tensor's") from None


UFUNCS = {
    np.add: ops.add, np.subtract: ops.sub, np.multiply: ops.mul, np.true_divide: ops.div,
    np.power: ops.pow, np.negative: ops.neg, np.matmul: ops.matmul, np.exp: ops.exp,
    np.log: ops.log, np.sqrt: ops.sqrt, np.absolute: ops.abs, np.maximum: ops.maximum,
    np.minimum: ops.minimum, np.tanh: ops.tanh, np.positive: lambda x: x,
}

NON_DIFFERENTIABLE_UFUNCS = {
    np.greater, np.greater_equal, np.less, np.less_equal, np.equal, np.not_equal, np.sign,
    np.isfinite, np.isnan, np.isinf, np.logical_and, np.logical_or, np.logical_not,
}

SUGGESTIONS = {
    "sin": "a tinygraph.Function of your own (there is no sin op yet)",
    "divide": "tinygraph.div (the / operator)",
    "square": "t ** 2 or t * t",
    "reciprocal": "1 / t",
    "log1p": "tinygraph.log(1 + t)",
    "expm1": "tinygraph.exp(t) - 1",
}


def _unsupported(name: str) -> TypeError:
    hint = SUGGESTIONS.get(name, "a tinygraph op, or write one as a tinygraph.Function")
    return TypeError(
        f"numpy.{name} is not a tinygraph op: applied to a Tensor it would drop out of the "
        f"graph and lose its gradient. Use {hint}; or apply it to tensor.data for values "
        f"without gradient.")


def array_ufunc(ufunc, method, inputs, kwargs):
    if method != "__call__":
        raise _unsupported(f"{ufunc.__name__}.{method}")
    if kwargs.get("out") is not None:
        raise TypeError(f"numpy.{ufunc.__name__}(..., out=...) on a Tensor: in-place writes are "
                        f"not recorded in the graph; assign the result instead (y = np.{ufunc.__name__}(...))")
    extra = {k: v for k, v in kwargs.items() if k != "out"}
    if ufunc in NON_DIFFERENTIABLE_UFUNCS:
        return _no_grad_result(ufunc, inputs, extra)
    fn = UFUNCS.get(ufunc)
    if fn is None:
        raise _unsupported(ufunc.__name__)
    if extra:
        raise TypeError(f"numpy.{ufunc.__name__} on a Tensor: keyword arguments {sorted(extra)} "
                        f"are not supported")
    return fn(*inputs)


def _reduction(op):
    def call(a, axis=None, dtype=None, out=None, keepdims=False, **rest):
        if dtype is not None or out is not None or rest:
            raise TypeError(f"numpy reduction on a Tensor: only axis and keepdims are supported "
                            f"(got dtype/out/{sorted(rest)})")
        return op(a, axis=axis, keepdims=bool(keepdims))
    return call


def _where(cond, x=None, y=None):
    if x is None or y is None:
        raise TypeError("numpy.where(cond) with one argument gives indices, which are not "
                        "differentiable; use np.nonzero(t.data)")
    return ops.where(_data(cond), x, y)


def _clip(a, a_min=None, a_max=None, out=None, **kw):
    a_min = kw.pop("min", a_min)
    a_max = kw.pop("max", a_max)
    if out is not None or kw:
        raise TypeError("numpy.clip on a Tensor: only the bounds are supported")
    return ops.clip(a, _data(a_min), _data(a_max))


def _dot(a, b, out=None):
    if out is not None:
        raise TypeError("numpy.dot(..., out=...) on a Tensor is not supported")
    if np.ndim(_data(a)) == 0 or np.ndim(_data(b)) == 0:
        return ops.mul(a, b)
    if np.ndim(_data(a)) > 2 or np.ndim(_data(b)) > 2:
        raise TypeError("numpy.dot of arrays with more than 2 dimensions differs from matmul; "
                        "use tinygraph.matmul (the @ operator) with explicit axes")
    return ops.matmul(a, b)


def _only(name: str, kw: dict, defaults: dict) -> None:
    """Refuse keyword arguments tinygraph's op would ignore (rather than ignoring them)."""
    extra = sorted(f"{k}={v!r}" for k, v in kw.items() if k not in defaults or v != defaults[k])
    if extra:
        usual = ", ".join(f"{k}={v!r}" for k, v in defaults.items())
        raise TypeError(f"numpy.{name} on a Tensor: {', '.join(extra)} is not supported; "
                        f"tinygraph's {name} works with the defaults only ({usual})")


def _reshape(a, shape=None, *args, **kw):
    if "newshape" in kw:                  # numpy < 2.1 spelled it newshape
        shape = kw.pop("newshape")
    order = args[0] if args else kw.pop("order", "C")
    _only("reshape", dict(kw, order=order), {"order": "C", "copy": None})
    return ops.reshape(a, shape)


def _joiner(name: str, op):
    def call(arrays, axis=0, out=None, **kw):
        if out is not None:
            raise TypeError(f"numpy.{name}(..., out=...) on a Tensor is not supported")
        _only(name, kw, {"dtype": None, "casting": "same_kind"})
        if axis is None:
            raise TypeError(f"numpy.{name}(..., axis=None) on a Tensor: flatten the inputs "
                            f"first (t.reshape(-1)) and join them along axis 0")
        return op(arrays, axis)
    return call


FUNCTIONS = {
    np.sum: _reduction(ops.sum), np.mean: _reduction(ops.mean),
    np.max: _reduction(ops.max), np.min: _reduction(ops.min),
    np.reshape: _reshape,
    np.transpose: lambda a, axes=None: ops.transpose(a, axes),
    np.swapaxes: ops.swapaxes, np.expand_dims: ops.expand_dims,
    np.squeeze: lambda a, axis=None: ops.squeeze(a, axis),
    np.broadcast_to: lambda a, shape, subok=False: ops.broadcast_to(a, shape),
    np.concatenate: _joiner("concatenate", ops.concatenate),
    np.stack: _joiner("stack", ops.stack),
    np.where: _where, np.clip: _clip, np.dot: _dot,
}
for _alias in ("amax", "amin"):
    if hasattr(np, _alias):
        FUNCTIONS[getattr(np, _alias)] = FUNCTIONS[np.max if _alias == "amax" else np.min]

# Questions about an array's metadata are answered from the data.
METADATA = {np.shape, np.ndim, np.size, np.result_type}


def array_function(func, args, kwargs):
    if func in METADATA:
        return func(*[_data(a) for a in args], **kwargs)
    fn = FUNCTIONS.get(func)
    if fn is None:
        raise _unsupported(func.__name__)
    return fn(*args, **kwargs)
