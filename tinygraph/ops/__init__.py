"""The public op functions. Each wraps one ``Function`` (defined in the modules beside this
one, forward and backward side by side) and is also reachable as a Tensor method or
operator and through numpy (``np.exp(t)`` calls ``exp``)."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .elementwise import (Abs, Add, Cast, Clip, Div, Exp, Log, Maximum, Minimum, Mul, Neg,
                          Pow, ReLU, Sigmoid, Sqrt, Sub, Tanh, Where)
from .linalg import Linear, MatMul
from .reduce import LogSoftmax, LogSumExp, Max, Mean, Min, Softmax, Sum
from .shape import (BroadcastTo, Concatenate, ExpandDims, GetItem, IndexAdd, Reshape, Squeeze,
                    Stack, SwapAxes, Transpose)

if TYPE_CHECKING:
    from ..tensor import Tensor

#: what an op takes as an operand: a Tensor, or anything numpy makes an array of (a constant)
TensorLike = Union["Tensor", ArrayLike]
#: an axis, several axes, or None for all of them
Axis = Union[int, "tuple[int, ...]", None]

_Op = TypeVar("_Op", bound=Callable[..., Any])

# PyTorch's keyword -> the numpy name tinygraph uses
_PYTORCH_KEYWORDS = {"dim": "axis", "keepdim": "keepdims"}


def _numpy_keywords(fn: _Op) -> _Op:
    """Say which numpy keyword is meant when a PyTorch one is passed (``t.sum(dim=0)``),
    instead of Python's "got an unexpected keyword argument 'dim'"."""
    @functools.wraps(fn)
    def op(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TypeError as exc:
            torch_names = [k for k in kwargs if k in _PYTORCH_KEYWORDS]
            if not torch_names or "unexpected keyword argument" not in str(exc):
                raise
            fixes = ", ".join(f"{_PYTORCH_KEYWORDS[k]}= (not {k}=)" for k in torch_names)
            raise TypeError(f"{fn.__name__}(): tinygraph takes numpy's keyword names: "
                            f"{fixes}") from None
    return op  # type: ignore[return-value]  # (the same signature: functools.wraps)


# -- arithmetic ------------------------------------------------------------------------

def add(a: TensorLike, b: TensorLike) -> Tensor:
    """a + b, broadcasting."""
    return Add.apply(a, b)


def sub(a: TensorLike, b: TensorLike) -> Tensor:
    """a - b, broadcasting."""
    return Sub.apply(a, b)


def mul(a: TensorLike, b: TensorLike) -> Tensor:
    """a * b elementwise, broadcasting."""
    return Mul.apply(a, b)


def div(a: TensorLike, b: TensorLike) -> Tensor:
    """a / b elementwise, broadcasting."""
    return Div.apply(a, b)


def pow(a: TensorLike, p: TensorLike) -> Tensor:  # noqa: A001 - mirrors the operator
    """a ** p; ``p`` may be a number or a Tensor (then differentiable too)."""
    return Pow.apply(a, p)


def neg(a: TensorLike) -> Tensor:
    """-a."""
    return Neg.apply(a)


def matmul(a: TensorLike, b: TensorLike) -> Tensor:
    """a @ b with numpy's rules (1-D, 2-D and batched)."""
    return MatMul.apply(a, b)


def linear(x: TensorLike, W: TensorLike, b: TensorLike | None = None) -> Tensor:
    """x @ W.T + b as one node (the spec's z = a W^T + b), saving only x and W; without a
    bias (b=None) the node has two inputs."""
    return Linear.apply(x, W) if b is None else Linear.apply(x, W, b)


# -- elementwise functions ---------------------------------------------------------------

def exp(x: TensorLike) -> Tensor:
    """eˣ elementwise; d/dx = eˣ (the output, which the node keeps)."""
    return Exp.apply(x)


def log(x: TensorLike) -> Tensor:
    """Natural logarithm elementwise; d/dx = 1/x."""
    return Log.apply(x)


def sqrt(x: TensorLike) -> Tensor:
    """√x elementwise; d/dx = 1/(2√x)."""
    return Sqrt.apply(x)


def abs(x: TensorLike) -> Tensor:  # noqa: A001
    """|x| elementwise; d/dx = sign(x), 0 at x = 0."""
    return Abs.apply(x)


def maximum(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise max; a tie sends half the gradient to each side."""
    return Maximum.apply(a, b)


def minimum(a: TensorLike, b: TensorLike) -> Tensor:
    """Elementwise min; a tie sends half the gradient to each side."""
    return Minimum.apply(a, b)


def clip(x: TensorLike, lo: TensorLike | None = None, hi: TensorLike | None = None, *,
         min: TensorLike | None = None,  # noqa: A002 - numpy 2's and torch's names
         max: TensorLike | None = None) -> Tensor:  # noqa: A002
    """Clamp to [lo, hi] (constants: a Tensor bound gives its values, as np.clip does); the
    gradient passes where lo <= x <= hi. ``min=``/``max=`` (numpy 2's and PyTorch's names)
    are the same bounds."""
    from ..tensor import Tensor
    if min is not None or max is not None:
        if lo is not None or hi is not None:
            raise TypeError("clip: give the bounds as lo/hi or as min/max, not both")
        lo, hi = min, max
    lo, hi = (b.data if isinstance(b, Tensor) else b for b in (lo, hi))
    return Clip.apply(x, lo=lo, hi=hi)


def relu(x: TensorLike) -> Tensor:
    """max(0, x) elementwise; d/dx = 1 where x > 0, else 0 (0 at the kink x = 0, as the spec's
    ReLU)."""
    return ReLU.apply(x)


def sigmoid(x: TensorLike) -> Tensor:
    """σ(x) = 1/(1 + e⁻ˣ) elementwise, computed without overflow; d/dx = σ(x)(1 - σ(x))."""
    return Sigmoid.apply(x)


def tanh(x: TensorLike) -> Tensor:
    """tanh x elementwise; d/dx = 1 - tanh² x."""
    return Tanh.apply(x)


def where(cond: TensorLike, a: TensorLike, b: TensorLike) -> Tensor:
    """Pick a where cond is true, else b (cond is not differentiated)."""
    return Where.apply(cond, a, b)


def cast(x: TensorLike, dtype: DTypeLike) -> Tensor:
    """x converted to ``dtype``; the gradient is converted back."""
    return Cast.apply(x, dtype=dtype)


# -- reductions and the softmax family ---------------------------------------------------

@_numpy_keywords
def sum(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes for None); the gradient is broadcast back to x's shape."""
    return Sum.apply(x, axis=axis, keepdims=keepdims)


@_numpy_keywords
def mean(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (all axes for None); the gradient is g / (number of elements
    averaged), broadcast back."""
    return Mean.apply(x, axis=axis, keepdims=keepdims)


@_numpy_keywords
def max(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis``. Tied maxima share the gradient equally (1/k each)."""
    return Max.apply(x, axis=axis, keepdims=keepdims)


@_numpy_keywords
def min(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis``. Tied minima share the gradient equally (1/k each)."""
    return Min.apply(x, axis=axis, keepdims=keepdims)


@_numpy_keywords
def logsumexp(x: TensorLike, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log Σ eˣ over ``axis``, computed as m + log Σ e^(x - m) (m the maximum); d/dx =
    softmax(x)."""
    return LogSumExp.apply(x, axis=axis, keepdims=keepdims)


@_numpy_keywords
def softmax(x: TensorLike, axis: Axis = -1) -> Tensor:
    """e^(x - m) / Σ e^(x - m) over ``axis`` (the last by default); its backward is s ⊙ (g - Σ
    g s)."""
    return Softmax.apply(x, axis=axis)


@_numpy_keywords
def log_softmax(x: TensorLike, axis: Axis = -1) -> Tensor:
    """x - logsumexp(x) over ``axis`` (the last by default), accurate for large logits;
    backward g - softmax(x) Σ g."""
    return LogSoftmax.apply(x, axis=axis)


# -- shape ------------------------------------------------------------------------------

def reshape(x: TensorLike, *shape: int | Sequence[int]) -> Tensor:
    """x with a new shape; ``reshape(x, 2, 3)`` and ``reshape(x, (2, 3))`` both work."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return Reshape.apply(x, shape=shape)


def transpose(x: TensorLike, axes: Sequence[int] | None = None) -> Tensor:
    """x with its axes permuted (reversed for None), as numpy; the gradient is permuted back."""
    return Transpose.apply(x, axes=axes)


@_numpy_keywords
def swapaxes(x: TensorLike, axis1: int, axis2: int) -> Tensor:
    """x with ``axis1`` and ``axis2`` swapped; the gradient is swapped back."""
    return SwapAxes.apply(x, axis1=axis1, axis2=axis2)


@_numpy_keywords
def expand_dims(x: TensorLike, axis: int | tuple[int, ...]) -> Tensor:
    """x with a new axis of length 1 at ``axis``; the gradient has it removed."""
    return ExpandDims.apply(x, axis=axis)


@_numpy_keywords
def squeeze(x: TensorLike, axis: Axis = None) -> Tensor:
    """x without its axes of length 1 (those of ``axis``, or all); the gradient has them back."""
    return Squeeze.apply(x, axis=axis)


def broadcast_to(x: TensorLike, shape: int | Sequence[int]) -> Tensor:
    """x broadcast to ``shape``; the gradient is summed over the broadcast axes."""
    return BroadcastTo.apply(x, shape=(shape,) if isinstance(shape, (int, np.integer))
                             else tuple(shape))


def getitem(x: TensorLike, index: Any) -> Tensor:
    """x[index]: basic slicing and integer/boolean array indexing; repeats accumulate."""
    from .shape import _plain_index
    return GetItem.apply(x, index=_plain_index(index))


@_numpy_keywords
def concatenate(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join tensors along an existing ``axis``; each gets its slice of the gradient."""
    return Concatenate.apply(*tensors, axis=axis)


@_numpy_keywords
def stack(tensors: Sequence[TensorLike], axis: int = 0) -> Tensor:
    """Join tensors along a new ``axis``; each gets its slice of the gradient."""
    return Stack.apply(*tensors, axis=axis)


#: every op Function, for tests that check each one records a node
ALL_FUNCTIONS = (Add, Sub, Mul, Div, Pow, Neg, MatMul, Linear, Exp, Log, Sqrt, Abs, Maximum,
                 Minimum, Clip, ReLU, Sigmoid, Tanh, Where, Cast, Sum, Mean, Max, Min,
                 LogSumExp, Softmax, LogSoftmax, Reshape, Transpose, SwapAxes, ExpandDims,
                 Squeeze, BroadcastTo, GetItem, IndexAdd, Concatenate, Stack)

for _f in ALL_FUNCTIONS:
    # every array they keep is in saved_tensors, except the index of getitem/index_add
    _f.keeps_arrays_on_ctx = _f in (GetItem, IndexAdd)
    _f.check_backward = False      # every op's gradients are checked by the test suite
    # a None input is a TypeError naming the op; linear's b=None is no bias, and where
    # names the argument that is None itself
    _f.rejects_none = _f not in (Linear, Where)
