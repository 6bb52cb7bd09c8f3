"""``Tensor``: a numpy array plus what autodiff needs (``grad``, ``grad_fn``,
``requires_grad``)."""
# mypy: disable-error-code="method-assign"
# (the operators and op methods are attached after the class, which declares them for type checkers)
from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from . import autograd
from . import grad_mode as _grad_mode

if TYPE_CHECKING:
    from . import ops as _ops
    from .ops import TensorLike


def _as_array(data: Any, dtype: Any = None) -> np.ndarray:
    if isinstance(data, Tensor):
        data = data.data    # (a recorded result's is a read-only view: the graph may need it)
    try:
        arr = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError) as exc:
        if isinstance(data, (list, tuple)) and _holds_tensor(data):   # (looked for only here)
            raise TypeError(f"Tensor: got a {type(data).__name__} of Tensors; "
                            f"tinygraph.stack(...) joins them into one tensor in the graph "
                            f"(or pass [t.item() ...] / [t.data ...] for their values "
                            f"alone)") from None
        ragged = "inhomogeneous" in str(exc) or "sequence" in str(exc)
        why = ("its nested lists have different lengths (a ragged array)" if ragged
               else str(exc).split(". ")[0])
        raise TypeError(f"Tensor: cannot make a numeric array from {type(data).__name__}: "
                        f"{why}; pass numbers, nested lists of equal-length rows of numbers, or "
                        f"a numpy array") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"Tensor: data of dtype {arr.dtype} is not supported; tinygraph works on "
                        f"bool, integer and floating-point arrays (got {arr.dtype.kind!r} kind)")
    return arr


def _holds_tensor(items: Any) -> bool:
    """Whether nested lists or tuples hold a Tensor anywhere."""
    return any(isinstance(v, Tensor) or (isinstance(v, (list, tuple)) and _holds_tensor(v))
               for v in items)


class Tensor:
    """An n-dimensional array that records the ops applied to it.

    ``Tensor(data, requires_grad=False, dtype=None, name=None)``. The data is wrapped, not
    copied, when it already is a numpy array of the right dtype. Float data keeps its dtype
    (Python floats give float64); integer data stays integer and cannot require grad.

    Attributes follow PyTorch: ``data``, ``grad`` (numpy array or None, same shape and
    dtype as ``data``), ``requires_grad``, ``grad_fn`` (the node that made this tensor;
    None for leaves), ``is_leaf``, ``shape``, ``dtype``, ``ndim``, ``name``.
    """

    __slots__ = ("_data", "_grad", "requires_grad", "grad_fn", "name", "__weakref__")
    _data: np.ndarray
    _grad: np.ndarray | None
    requires_grad: bool
    grad_fn: Any
    name: str | None
    __array_priority__ = 1000  # numpy defers to our reflected operators

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None,
                 name: str | None = None):
        arr = _as_array(data, dtype)
        if requires_grad and arr.dtype.kind != "f":
            raise TypeError(
                f"Tensor: requires_grad=True needs floating-point data, got dtype {arr.dtype}; "
                f"pass dtype=np.float64 (or np.float32), e.g. Tensor(data, dtype=np.float64, "
                f"requires_grad=True)")
        self._data = arr
        self._grad = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn = None
        self.name = name

    @classmethod
    def _from_op(cls, data: np.ndarray, grad_fn) -> "Tensor":
        # Hot path: no checks, the op produced a valid array.
        t = cls.__new__(cls)
        t._data = data
        t._grad = None
        t.requires_grad = grad_fn is not None
        t.grad_fn = grad_fn
        t.name = None
        return t

    # -- properties ------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The values. A leaf's array is yours to change (outside a pending backward); the
        array of a tensor made by a recorded op is shown read-only, because the graph may
        need it for backward: copy it (``t.data.copy()``) to change it."""
        if self.grad_fn is None:
            return self._data
        view = self._data.view()
        view.setflags(write=False)
        return view

    @data.setter
    def data(self, value: Any) -> None:
        if self.grad_fn is not None:
            raise RuntimeError("cannot assign .data of a tensor made by a recorded op; "
                               "detach() it first")
        arr = _as_array(value)
        if self.requires_grad and arr.dtype.kind != "f":
            raise TypeError(f"Tensor.data: a tensor that requires grad needs floating-point "
                            f"data, got dtype {arr.dtype}")
        self._data = arr

    @property
    def grad(self) -> np.ndarray | None:
        """d(output)/d(self) summed over ``backward()`` calls: set on leaves that require
        grad, and on tensors made by an op only after ``retain_grad()``. Reading it on such a
        tensor without ``retain_grad()`` warns (it is None, whatever ran), as in PyTorch."""
        g = self._grad
        if g is None and self.grad_fn is not None and not autograd.is_retained(self):
            warnings.warn(
                f"Tensor.grad of a tensor made by an op ({self.grad_fn.name}, shape "
                f"{self._data.shape}) is None: backward() keeps gradients of leaves only. Call "
                f".retain_grad() on it before backward() to keep its gradient (a layer's delta, "
                f"say), or use tinygraph.grad(loss, [it])", UserWarning, stacklevel=2)
        return g

    @grad.setter
    def grad(self, value: np.ndarray | None) -> None:
        self._grad = value

    @property
    def shape(self) -> tuple[int, ...]:
        """The array's shape, a tuple (as ``ndarray.shape``)."""
        return self._data.shape

    @property
    def dtype(self) -> np.dtype:
        """The array's numpy dtype."""
        return self._data.dtype

    @property
    def ndim(self) -> int:
        """The number of axes."""
        return self._data.ndim

    @property
    def size(self) -> int:
        """The number of elements."""
        return self._data.size

    @property
    def is_leaf(self) -> bool:
        """True for a tensor made by the user (``grad_fn`` is None), False for one made by a
        recorded op."""
        return self.grad_fn is None

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d Tensor")
        return len(self._data)

    def __iter__(self):
        # (without it Python would iterate by t[0], t[1], ... until an IndexError, and a
        # 0-d Tensor would silently look empty: list(Tensor(5.0)) == [])
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d Tensor; use .item() for its value")
        return (self[i] for i in range(len(self._data)))

    # -- conversions -----------------------------------------------------------
    def item(self) -> float:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(f"item(): tensor has {self._data.size} elements (shape {self.shape}); "
                             f"only one-element tensors convert to a Python number")
        return self._data.item()

    def numpy(self) -> np.ndarray:
        """The values as a numpy array (shared, not copied; read-only for an op's result)."""
        return self.data

    def tolist(self) -> Any:
        """The values as nested Python lists (numbers for a 0-d tensor), as ``ndarray.tolist``."""
        return self._data.tolist()

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(f"the truth value of a Tensor with {self._data.size} elements is "
                             f"ambiguous; use (t > 0).data.any() or .all()")
        return bool(self._data)

    def detach(self) -> "Tensor":
        """A new leaf sharing this tensor's data, cut off from the graph.

        Detaching a tensor made by a recorded op gives read-only data (the graph may still
        need it); ``Tensor(t.data.copy())`` gives a writable copy."""
        return Tensor._from_op(self._data if self.grad_fn is None else self.data, None)

    def astype(self, dtype: Any) -> "Tensor":
        """A copy converted to ``dtype``, recorded as a ``cast`` node (the gradient is
        converted back)."""
        from .ops import cast
        return cast(self, dtype)

    # -- autograd --------------------------------------------------------------
    def backward(self, grad: Any = None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` that requires grad.

        A scalar needs no ``grad``; a non-scalar needs ``grad`` of its shape (the vector
        of the vector-Jacobian product). Leaf gradients add up across calls, as in
        PyTorch: call ``zero_grad()`` between steps. The graph's saved arrays are
        released afterwards unless ``retain_graph=True``.
        """
        autograd.backward(self, grad, retain_graph=retain_graph)

    def retain_grad(self) -> "Tensor":
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad(): this tensor does not require grad")
        if self.grad_fn is not None:
            autograd.register_retained(self)
        return self

    def zero_grad(self) -> None:
        """Forget the accumulated gradient (set ``.grad`` to None)."""
        self._grad = None

    def requires_grad_(self, flag: bool = True) -> "Tensor":
        """Set ``requires_grad`` in place (only a floating-point leaf can require grad);
        returns the tensor."""
        if flag and self._data.dtype.kind != "f":
            raise TypeError(f"requires_grad_(): dtype {self._data.dtype} cannot require grad; "
                            f"use .astype(np.float64)")
        if self.grad_fn is not None and not flag:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = bool(flag)
        return self

    def __repr__(self) -> str:
        body = np.array2string(self._data, precision=4, threshold=20, edgeitems=2,
                               separator=", ", prefix="Tensor(")
        extras = [f"shape={self.shape}", f"dtype={self.dtype}"]
        if self.name:
            extras.insert(0, f"name={self.name!r}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return f"Tensor({body}, {', '.join(extras)})"

    def __format__(self, spec: str) -> str:
        """``f"{loss:.3f}"`` formats a 0-d tensor's value, as PyTorch does."""
        if not spec:
            return str(self)
        if self._data.ndim == 0:
            return format(self._data.item(), spec)
        raise TypeError(f"format(Tensor, {spec!r}): a format spec needs a 0-d tensor (one "
                        f"number); this one has shape {self.shape}: format t.item() of one "
                        f"element, or np.array2string(t.data)")

    def __deepcopy__(self, memo: dict) -> "Tensor":
        """A copy of a leaf (data, ``.grad``, flags). A tensor made by an op is refused, as in
        PyTorch: its copy would carry a copy of the whole graph, and a backward through it
        would reach copies of the leaves, never the leaves themselves."""
        if self.grad_fn is not None:
            raise RuntimeError(f"deepcopy of a tensor made by an op ({self.grad_fn.name}, shape "
                               f"{self.shape}): only leaves can be copied; copy "
                               f"t.detach() (its values, cut from the graph) instead")
        import copy
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        new._data = copy.deepcopy(self._data, memo)
        new._grad = copy.deepcopy(self._grad, memo)
        new.requires_grad = self.requires_grad
        new.grad_fn = None
        new.name = self.name
        return new

    # hashing by identity (== is elementwise, so define __hash__ explicitly)
    __hash__ = object.__hash__

    # -- numpy interoperability: see interop.py -------------------------------
    def __array__(self, dtype=None, copy=None):
        raise TypeError(
            "numpy.asarray / numpy.array (or a numpy function without a tinygraph op) tried to "
            "convert a tinygraph Tensor to a numpy array, which would silently drop it out of "
            "the graph; use tensor.data (or .numpy()) for the values without gradient, or a "
            "tinygraph op to stay in the graph")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        from .interop import array_ufunc
        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        from .interop import array_function
        return array_function(func, args, kwargs)

    if TYPE_CHECKING:
        # The operators and op methods are attached below the class, because tinygraph.ops
        # imports Tensor; here they are named for type checkers and editors: the same
        # functions, or (for those made by a factory below) their signatures.
        __neg__, __abs__, __getitem__ = _ops.neg, _ops.abs, _ops.getitem
        exp, log, sqrt, abs = _ops.exp, _ops.log, _ops.sqrt, _ops.abs
        relu, sigmoid, tanh = _ops.relu, _ops.sigmoid, _ops.tanh
        sum, mean, max, min = _ops.sum, _ops.mean, _ops.max, _ops.min
        logsumexp, softmax, log_softmax = _ops.logsumexp, _ops.softmax, _ops.log_softmax
        swapaxes, expand_dims, squeeze = _ops.swapaxes, _ops.expand_dims, _ops.squeeze
        clip, matmul, broadcast_to = _ops.clip, _ops.matmul, _ops.broadcast_to

        def __add__(self, other: TensorLike, /) -> Tensor: ...
        def __radd__(self, other: TensorLike, /) -> Tensor: ...
        def __sub__(self, other: TensorLike, /) -> Tensor: ...
        def __rsub__(self, other: TensorLike, /) -> Tensor: ...
        def __mul__(self, other: TensorLike, /) -> Tensor: ...
        def __rmul__(self, other: TensorLike, /) -> Tensor: ...
        def __truediv__(self, other: TensorLike, /) -> Tensor: ...
        def __rtruediv__(self, other: TensorLike, /) -> Tensor: ...
        def __pow__(self, other: TensorLike, /) -> Tensor: ...
        def __rpow__(self, other: TensorLike, /) -> Tensor: ...
        def __matmul__(self, other: TensorLike, /) -> Tensor: ...
        def __rmatmul__(self, other: TensorLike, /) -> Tensor: ...
        def __iadd__(self, other: TensorLike, /) -> Tensor: ...
        def __isub__(self, other: TensorLike, /) -> Tensor: ...
        def __imul__(self, other: TensorLike, /) -> Tensor: ...
        def __itruediv__(self, other: TensorLike, /) -> Tensor: ...
        def __ipow__(self, other: TensorLike, /) -> Tensor: ...
        def __imatmul__(self, other: TensorLike, /) -> Tensor: ...
        def __pos__(self) -> Tensor: ...
        def __gt__(self, other: TensorLike) -> Tensor: ...
        def __ge__(self, other: TensorLike) -> Tensor: ...
        def __lt__(self, other: TensorLike) -> Tensor: ...
        def __le__(self, other: TensorLike) -> Tensor: ...
        def __eq__(self, other: TensorLike) -> Tensor: ...  # type: ignore[override]
        def __ne__(self, other: TensorLike) -> Tensor: ...  # type: ignore[override]
        def reshape(self, *shape: int | Sequence[int]) -> Tensor: ...
        def transpose(self, *axes: int | Sequence[int]) -> Tensor: ...
        @property
        def T(self) -> Tensor: ...


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None, name: str | None = None) -> Tensor:
    """Make a Tensor that owns a copy of ``data`` (``Tensor(...)`` wraps without copying)."""
    return Tensor(np.array(_as_array(data, dtype)), requires_grad=requires_grad, name=name)


# -- operators and methods: each calls the one op defined in tinygraph.ops ---------------
from . import function as _function  # noqa: E402
from . import ops as _ops  # noqa: E402  (ops needs Tensor defined first)
from .errors import ShapeError  # noqa: E402
from .ops._util import broadcast_error  # noqa: E402

_function.Tensor = Tensor


def _reflected(fn):
    def method(self, other):
        return fn(other, self)
    method.__name__ = f"r{fn.__name__}"
    return method


def _comparison(ufunc, symbol: str):
    def method(self, other):
        b = other._data if isinstance(other, Tensor) else other
        try:
            return Tensor._from_op(ufunc(self._data, b), None)
        except ValueError:
            try:
                shape = np.shape(b)
            except ValueError:             # a ragged list
                shape = None
            if shape is not None:
                raise broadcast_error(f"comparison {symbol}", self._data.shape, shape) from None
            raise TypeError(f"comparison {symbol}: cannot compare a Tensor with {b!r:.40}, "
                            f"which is not a rectangular array of numbers") from None
        except TypeError:
            raise TypeError(f"comparison {symbol}: cannot compare a Tensor of dtype "
                            f"{self._data.dtype} with {b!r:.40} (a {type(b).__name__}); "
                            f"expected a number, a numeric array or a Tensor") from None
    method.__name__ = ufunc.__name__
    return method


def _in_place(op, ufunc, symbol: str):
    """``t op= v``. On a parameter (a leaf that requires grad) it changes ``t.data`` in place
    under ``no_grad()``, an optimizer's update as in PyTorch, and is refused while gradients
    are recorded (without this, Python would bind the name to a new tensor: ``p -= lr *
    p.grad`` would silently update nothing). On any other tensor it is ``t = t op v``: a new
    tensor, recorded as a node when it needs a gradient."""
    def method(self, other):
        if self.grad_fn is not None or not self.requires_grad:
            return op(self, other)
        what = f"in-place {symbol} on {self.name or 'a leaf'} {self._data.shape}"
        if _grad_mode.is_grad_enabled():
            raise RuntimeError(
                f"{what}: the tensor requires grad and gradients are being recorded; an update "
                f"of a parameter goes inside `with tg.no_grad():` (or write `t.data {symbol} "
                f"...`), and a recorded computation is written `t = t {symbol[:-1]} v`")
        if other is None:
            raise TypeError(f"{what}: got None (a .grad before any backward() is None); "
                            f"expected a number, a numeric array or a Tensor")
        b = other._data if isinstance(other, Tensor) else other
        try:
            ufunc(self._data, b, out=self._data)
        except ValueError:
            if not self._data.flags.writeable:
                if id(self._data) in _function._lock_counts:
                    raise RuntimeError(
                        f"{what}: its array is held read-only by a graph that has not been "
                        f"backpropagated (or was kept with retain_graph=True); updating it now "
                        f"would make that graph's gradients wrong. Run backward() first, or "
                        f"drop the graph (del loss)") from None
                raise RuntimeError(
                    f"{what}: its array is read-only (frozen by its owner, or the result of "
                    f"an op: see Tensor.data); give the tensor a writable copy first: "
                    f"t.data = t.data.copy()") from None
            try:
                value = f"a value of shape {np.shape(b)}"
            except ValueError:
                value = "a ragged list"
            raise ShapeError(f"{what}: {value} does not broadcast to the tensor's shape "
                             f"{self._data.shape} (an in-place update keeps the tensor's "
                             f"shape)") from None
        except TypeError:
            raise TypeError(f"{what}: cannot combine dtype {self._data.dtype} with {b!r:.40} "
                            f"(a {type(b).__name__}) in place; expected a number, a numeric "
                            f"array or a Tensor whose values fit dtype {self._data.dtype}") from None
        return self
    return method


Tensor.__add__ = Tensor.__radd__ = _ops.add
Tensor.__sub__ = _ops.sub
Tensor.__rsub__ = _reflected(_ops.sub)
Tensor.__mul__ = Tensor.__rmul__ = _ops.mul
Tensor.__truediv__ = _ops.div
Tensor.__rtruediv__ = _reflected(_ops.div)
Tensor.__pow__ = _ops.pow
Tensor.__rpow__ = _reflected(_ops.pow)
Tensor.__matmul__ = _ops.matmul
Tensor.__rmatmul__ = _reflected(_ops.matmul)
for _name, _op, _ufunc, _symbol in (("__iadd__", _ops.add, np.add, "+="),
                                    ("__isub__", _ops.sub, np.subtract, "-="),
                                    ("__imul__", _ops.mul, np.multiply, "*="),
                                    ("__itruediv__", _ops.div, np.divide, "/="),
                                    ("__ipow__", _ops.pow, np.power, "**=")):
    setattr(Tensor, _name, _in_place(_op, _ufunc, _symbol))
    getattr(Tensor, _name).__name__ = _name


def _imatmul(self, other):
    """``t @= m``: a new tensor (the shape may change), but never on a parameter, whose name
    would then silently stop being the parameter (see ``_in_place``)."""
    if self.grad_fn is None and self.requires_grad:
        raise RuntimeError(f"in-place @= on {self.name or 'a leaf'} {self._data.shape}: a "
                           f"tensor that requires grad cannot be replaced by a product; write "
                           f"`t.data = t.data @ m` (inside no_grad) or `y = t @ m`")
    return _ops.matmul(self, other)


Tensor.__imatmul__ = _imatmul
Tensor.__neg__ = _ops.neg
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = _ops.abs
Tensor.__getitem__ = _ops.getitem
Tensor.__gt__ = _comparison(np.greater, ">")
Tensor.__ge__ = _comparison(np.greater_equal, ">=")
Tensor.__lt__ = _comparison(np.less, "<")
Tensor.__le__ = _comparison(np.less_equal, "<=")
Tensor.__eq__ = _comparison(np.equal, "==")
Tensor.__ne__ = _comparison(np.not_equal, "!=")

for _name in ("exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh", "sum", "mean", "max",
              "min", "logsumexp", "softmax", "log_softmax", "swapaxes", "expand_dims",
              "squeeze", "clip", "matmul", "broadcast_to"):
    setattr(Tensor, _name, getattr(_ops, _name))


def _reshape(self, *shape):
    """``t.reshape(2, 3)`` or ``t.reshape((2, 3))``."""
    return _ops.reshape(self, *shape)


def _transpose(self, *axes):
    """``t.transpose()`` reverses the axes; ``t.transpose(1, 0, 2)`` permutes them (numpy's
    meaning: the new order of all axes). ``t.swapaxes(0, 1)`` exchanges two axes, as
    ``torch.transpose(t, 0, 1)`` does; ``t.transpose(0, 1)`` on a 2-D tensor, which numpy
    reads as "keep the order", is refused for that reason."""
    if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        axes = tuple(axes[0])
    elif len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes):
        nd = self._data.ndim
        keeps = nd == 2 and all(-2 <= a < 2 for a in axes) and [a % 2 for a in axes] == [0, 1]
        if keeps or nd != 2:           # PyTorch's "swap these two axes", or nothing for numpy
            what = ("keeps a 2-D tensor as it is (numpy reads the arguments as the new order "
                    "of all axes)" if keeps else
                    f"is no order of the {nd} axes of shape {self._data.shape}")
            raise ShapeError(f"transpose{axes}: {what}; to exchange two axes, as "
                             f"torch.transpose does, write t.swapaxes{axes}" +
                             (" or t.T" if nd == 2 else ""))
    return _ops.transpose(self, axes or None)


Tensor.reshape = _reshape
Tensor.transpose = _transpose
Tensor.T = property(lambda self: _ops.transpose(self),  # type: ignore[assignment]
                    doc="The transpose (axes reversed).")
