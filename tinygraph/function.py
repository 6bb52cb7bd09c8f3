"""``Function``: the node of the graph and the contract every op follows.

An op is a subclass with two static methods, written side by side::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):             # numpy arrays in, numpy array out
            y = np.exp(x)
            ctx.save_for_backward(y)     # keep what backward needs
            return y

        @staticmethod
        def backward(ctx, grad_output):  # dL/dy in, one dL/d(input) per input out
            (y,) = ctx.saved_tensors
            return grad_output * y

    y = Exp.apply(x)                     # Tensors in, Tensor out, one node recorded

``apply`` creates the node (the ``ctx`` above *is* the node, as in early tinygrad),
runs ``forward`` on the inputs' arrays, and links the node to its inputs' nodes.
``backward`` returns ``None`` for an input that is not differentiable.

Saved arrays are made read-only while the graph holds them, so an in-place write
such as ``x.data[0] = 5`` between forward and backward fails at once instead of
silently corrupting a gradient; they become writable again when backward releases
the graph or the graph is dropped.

Backward code written with numpy operators and functions (``*``, ``@``, ``np.exp``,
``.sum(axis=...)``) also runs on Tensors, because Tensors implement numpy's dispatch
protocols. That is how ``tinygraph.grad(..., create_graph=True)`` records the
backward pass itself and gives second derivatives. Under ``create_graph`` a saved
array that is one of the op's inputs or its output is handed to ``backward`` as the
matching Tensor; any other saved array is a constant, so ops save only inputs,
outputs and non-differentiable helpers (masks, indices).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from .grad_mode import _state

# id(array) -> number of live nodes that hold it read-only. The nodes keep the arrays
# alive, so an id cannot be reused while it is in this table.
_lock_counts: dict[int, int] = {}


def _lock(arrays: tuple) -> list:
    locked = []
    for a in arrays:
        if type(a) is not np.ndarray:
            continue
        key = id(a)
        count = _lock_counts.get(key)
        if count is None:
            if not a.flags.writeable:
                continue          # read-only before we came: not ours to unlock
            a.flags.writeable = False
            _lock_counts[key] = 1
        else:
            _lock_counts[key] = count + 1
        locked.append(a)
    return locked


def _unlock(arrays: list) -> None:
    for a in arrays:
        key = id(a)
        count = _lock_counts.get(key, 0) - 1
        if count > 0:
            _lock_counts[key] = count
        else:
            _lock_counts.pop(key, None)
            a.flags.writeable = True


class Function:
    """Base class of every op; an instance is one node of the graph (and the ``ctx``)."""

    __slots__ = ("parents", "needs_input_grad", "saved_tensors", "_saved_src", "_locked",
                 "_released", "_input_meta", "_trace", "__dict__", "__weakref__")

    #: name used in error messages and pictures; defaults to the class name in lower case
    op_name: str | None = None

    # -- used inside forward -------------------------------------------------
    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for ``backward``; read them back as ``ctx.saved_tensors``."""
        self.saved_tensors = arrays

    # -- the contract ----------------------------------------------------------
    @staticmethod
    def forward(ctx: "Function", *arrays: np.ndarray) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError("a Function subclass must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx: "Function", grad_output):  # pragma: no cover
        raise NotImplementedError("a Function subclass must define backward(ctx, grad_output)")

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any):
        """Run the op on Tensors (or arrays and Python scalars, taken as constants).

        Keyword arguments are passed to ``forward`` unchanged (axis, shape, ...).
        """
        from .tensor import Tensor  # local: tensor.py imports this module

        arrays = []
        parents = []
        needs = []
        record = False
        for x in inputs:
            if isinstance(x, Tensor):
                arrays.append(x.data)
                if x.requires_grad:
                    record = True
                    needs.append(True)
                    parents.append(x.grad_fn if x.grad_fn is not None else x)
                    continue
            else:
                arrays.append(x)
            needs.append(False)
            parents.append(None)
        record = record and _state.grad_enabled

        ctx = cls.__new__(cls)
        ctx.saved_tensors = ()
        ctx.needs_input_grad = needs
        out = cls.forward(ctx, *arrays, **kwargs)
        if type(out) is not np.ndarray:
            out = np.asarray(out)    # reductions may give numpy scalars: keep arrays
        if not record:
            return Tensor._from_op(out, None)

        ctx.parents = parents
        ctx._released = False
        ctx._input_meta = [(a.shape, a.dtype) if type(a) is np.ndarray else None
                           for a in arrays]
        saved = ctx.saved_tensors
        if saved:
            ctx._saved_src = _sources(saved, arrays, out)
            ctx._locked = _lock(saved)
        else:
            ctx._saved_src = ()
            ctx._locked = None
        ctx._trace = _anomaly_trace() if _state.anomaly else None
        result = Tensor._from_op(out, ctx)
        if _state.anomaly:
            from .anomaly import check_forward
            check_forward(ctx, arrays, out)
        return result

    # -- used by the engine ----------------------------------------------------
    @property
    def name(self) -> str:
        """Display name of the backward node, e.g. ``MulBackward``."""
        return type(self).__name__ + "Backward"

    @classmethod
    def _op_label(cls) -> str:
        return cls.op_name or cls.__name__.lower()

    def _release(self) -> None:
        """Drop saved arrays (after a backward without ``retain_graph``)."""
        self._check_saved()
        if self._locked:
            _unlock(self._locked)
        self._locked = None
        self.saved_tensors = ()
        self._released = True

    def _check_saved(self) -> None:
        from .errors import InPlaceModificationError
        if self._locked:
            for a in self._locked:
                if a.flags.writeable:
                    raise InPlaceModificationError(
                        f"{self.name}: an array of shape {a.shape} saved for backward by "
                        f"{self._op_label()} was made writable and may have been modified in "
                        f"place after the forward pass; its gradient would be wrong. Redo the "
                        f"forward pass after changing the data.")

    def __del__(self):
        locked = getattr(self, "_locked", None)
        if locked:
            _unlock(locked)

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _sources(saved: tuple, arrays: list, out: np.ndarray) -> tuple:
    """Where each saved array came from: input index, -1 for the output, None otherwise."""
    src = []
    for s in saved:
        if s is out:
            src.append(-1)
            continue
        for i, a in enumerate(arrays):
            if s is a:
                src.append(i)
                break
        else:
            src.append(None)
    return tuple(src)


def _anomaly_trace():
    from .anomaly import user_frame
    return user_frame()
