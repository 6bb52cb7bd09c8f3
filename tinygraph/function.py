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
``backward`` returns ``None`` for an input that is not differentiable. Both compute new
arrays: the arrays a user op is given that the graph may read again (inputs made by other
ops, its gradient) are read-only, and writing into one is named (``_user_forward``).

Nothing a node saved can change before backward reads it: the data of a tensor made by
a recorded op is only ever shown read-only, and a leaf's array (a parameter, the user's
data) is made read-only while a graph holds it, so ``x.data[0] = 5`` between forward
and backward fails at once instead of silently corrupting a gradient; it becomes
writable again when backward releases the graph or the graph is dropped (unless it was
read-only before: then it is watched the same way and left read-only). A saved view is
copied, since it could change through the array that owns its memory.

Backward code written with numpy operators and functions (``*``, ``@``, ``np.exp``,
``.sum(axis=...)``) also runs on Tensors, because Tensors implement numpy's dispatch
protocols. That is how ``tinygraph.grad(..., create_graph=True)`` records the
backward pass itself and gives second derivatives. Under ``create_graph`` a saved
array that is one of the op's inputs or its output is handed to ``backward`` as the
matching Tensor; any other saved array is a constant, so ops save only inputs,
outputs and non-differentiable helpers (masks, indices).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .errors import InPlaceModificationError, ReadOnlyWriteError
from .grad_mode import _state

if TYPE_CHECKING:
    from .tensor import Tensor as _Tensor

Tensor: Any = None   # set by tensor.py once the class exists (they refer to each other)

# id(array) -> number of live nodes that hold it read-only. The nodes keep the arrays
# alive, so an id cannot be reused while it is in this table.
_lock_counts: dict[int, int] = {}
# Threads may build and free graphs over the same arrays (a shared input batch, shared
# parameters): a count and its flag change together, under this lock. Re-entrant, because
# the garbage collector may free a node (whose locks then go) in the middle of one of these
# updates, in the same thread: that node's arrays wait in _deferred, and the update that was
# interrupted unlocks them before it lets go of the lock.
_counts_guard = threading.RLock()
_deferred: list = []
# ids (in _lock_counts) of arrays that were read-only before the first node took them:
# frozen by their owner. Counted and checked like the others, but left read-only at the end.
_frozen_before: set = set()


def _lock_shared(a: np.ndarray, locked: list) -> bool:
    """Make ``a`` read-only until every node holding it is released (counted). An array
    that was read-only already (frozen by its owner) is counted too, so that backward sees
    it if the owner makes it writable again meanwhile, and is left read-only at the end.

    Returns False, and takes no lock, for an array that a node holds already but that was
    made writable again by hand (``setflags(write=True)``): making it read-only would hide
    that from the older node's backward, so the caller keeps a private copy instead."""
    key = id(a)
    # A with block, not acquire() and try/finally: an interrupt (Ctrl-C) that lands between
    # acquire() returning and the try would leave the guard held for good.
    with _counts_guard:
        count = _lock_counts.get(key)
        if count is None:               # the first node to hold it
            if a.flags.writeable:
                # write=False, passed positionally: numpy's parser takes it so (its stubs say
                # keyword-only), ~0.08 us cheaper than the keyword, ~0.2 us than flags.writeable
                a.setflags(False)       # type: ignore[call-arg]
            else:
                _frozen_before.add(key)
            count = 0
        elif a.flags.writeable:
            count = None                # forced writable: no lock (the caller copies it)
        if count is not None:
            _lock_counts[key] = count + 1
            locked.append(a)
        while _deferred:
            _decrement(_deferred.pop())
    return count is not None


def held_by_graph(array: np.ndarray) -> bool:
    """Whether a recorded graph holds ``array`` read-only for its backward pass (saved by a
    node whose backward has not run, or kept with ``retain_graph=True``). An array made
    read-only by its owner alone is not held."""
    with _counts_guard:
        return id(array) in _lock_counts


class _Locks(list):
    """The counted locks of one node; unlocked when released or when the node is freed."""
    __slots__ = ()

    def release(self) -> None:
        _unlock(self)
        self.clear()

    def __del__(self):
        if self:
            # _is_owned: true only in this thread's own count update (threading.Condition
            # relies on the same RLock method); other threads just wait for the lock
            if _counts_guard._is_owned():
                _deferred.extend(self)
            else:
                _unlock(self)


def _unlock(arrays: list) -> None:
    with _counts_guard:                 # (a with block: see _lock_shared)
        for a in arrays:
            _decrement(a)
        while _deferred:
            _decrement(_deferred.pop())


def _decrement(a: np.ndarray) -> None:
    """One node less holds ``a``; the last one makes it writable again. Under the guard."""
    key = id(a)
    count = _lock_counts.get(key, 0) - 1
    if count > 0:
        _lock_counts[key] = count
    else:
        _lock_counts.pop(key, None)
        if _frozen_before and key in _frozen_before:
            _frozen_before.discard(key)     # not ours to make writable
        else:
            a.setflags(True)            # type: ignore[call-arg]  # write=True, see _lock_shared


def _protect(saved: tuple, arrays: tuple, out: np.ndarray, parents: tuple) -> tuple:
    """Keep the saved arrays from being changed before backward reads them.

    For each saved item, where it came from: input index, -1 for the output, None for
    anything else (arrays made inside forward, scalars); then
    - arrays made inside forward (masks, indices) are private: nothing to do;
    - an op's output, or an intermediate tensor's array: users only ever see it read-only
      (``Tensor.data`` of a non-leaf is a read-only view): nothing to do;
    - a leaf's or a constant's array (parameters, the user's data) is made read-only,
      counted per array, until the last node holding it is released (one that was
      read-only already stays so; backward still checks that nobody made it writable; one
      made writable by hand while an older node holds it is copied instead);
    - a view (a slice of a dataset, a transpose of a weight) could still be written through
      the array that owns its memory, so a private copy is saved instead.
    Returns (the arrays to keep, their sources, the locks or None).
    """
    locks: _Locks | None = None
    kept: list | None = None
    sources: list[int | None] = []
    for i, a in enumerate(saved):
        if type(a) is not np.ndarray:
            sources.append(None)        # scalars and None: constants
            continue
        if a is out:
            src = -1
        else:
            for src, x in enumerate(arrays):
                if a is x:
                    break
            else:
                src = None
        sources.append(src)
        if src is None:
            continue
        if a.base is not None:
            if kept is None:
                kept = list(saved)
            for j in range(i):          # the same view saved twice: one copy
                if saved[j] is a:
                    kept[i] = kept[j]
                    break
            else:
                kept[i] = np.array(a, copy=True)
            continue
        if src == -1 or isinstance(parents[src], Function):
            continue
        if locks is None:
            locks = _Locks()
        if not _lock_shared(a, locks):     # forced writable while an older node holds it
            if kept is None:
                kept = list(saved)
            kept[i] = np.array(a, copy=True)
    return (saved if kept is None else tuple(kept)), tuple(sources), locks


class Function:
    """Base class of every op; an instance is one node of the graph (and the ``ctx``)."""

    __slots__ = ("parents", "needs_input_grad", "saved_tensors", "_saved_src", "_locked",
                 "input_shapes", "output_dtype", "module", "__dict__", "__weakref__")

    # (what the slots hold, for type checkers)
    parents: tuple[Any, ...]            # per input: its leaf Tensor, its node, or None
    needs_input_grad: tuple[bool, ...]
    saved_tensors: tuple[Any, ...]
    _saved_src: tuple[int | None, ...] | None     # None once released
    _locked: _Locks | None
    input_shapes: tuple[tuple[int, ...], ...]
    output_dtype: np.dtype          # of the array forward returned (pictures show it)
    module: str | None

    # Read from the class until set: a node knows where it was created only under
    # detect_anomaly().
    _trace: str | None = None

    #: name used in error messages and pictures; defaults to the class name in lower case
    op_name: str | None = None
    #: The engine checks that ``backward`` returned one gradient per input, each of its
    #: input's shape, and names the op if not, and makes an output that is an input's own
    #: array a view. Ops tested to do so (tinygraph's own, nn's nodes) set this to False
    #: to skip both (~1 us per node): they promise never to return an input's array.
    check_backward: bool = True
    #: Whether ``forward`` may keep arrays as attributes of ``ctx`` (``ctx.cache = ...``)
    #: besides ``save_for_backward``: backward without ``retain_graph`` deletes them (and
    #: tuples or lists holding arrays) to free their memory. Ops that keep every array in
    #: ``saved_tensors`` (tinygraph's own but getitem's and index_add's indices, nn's
    #: activation node) set this to False, and their nodes are freed without looking (~1-2
    #: us less per node inside a training step). Arrays kept this way are not protected
    #: like saved ones: keep a private copy of anything the caller could still change (an
    #: index, targets).
    keeps_arrays_on_ctx: bool = True
    #: Whether a None input is an error, named by ``apply`` before ``forward`` runs, rather
    #: than a constant that ``forward`` handles (an optional input). tinygraph's ops set it
    #: True, but ``linear`` (``b=None``: no bias) and ``where`` (which names the None
    #: argument itself).
    rejects_none: bool = False

    if TYPE_CHECKING:
        # an op keeps what its backward needs as attributes of ctx (``ctx.axis = axis``):
        # said to type checkers only (a real __getattr__ would slow every attribute read)
        def __getattr__(self, name: str) -> Any: ...
        def __setattr__(self, name: str, value: Any) -> None: ...

    # -- used inside forward -------------------------------------------------
    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for ``backward``; read them back as ``ctx.saved_tensors``."""
        self.saved_tensors = arrays

    # -- the contract ----------------------------------------------------------
    # (typed loosely, as PyTorch's are, so that a subclass may name its own inputs and
    # keyword arguments without its type checker calling the override incompatible)
    @staticmethod
    def forward(ctx: Any, /, *arrays: Any, **kwargs: Any) -> Any:  # pragma: no cover
        """Compute the op's output from its inputs' numpy arrays;
        ``ctx.save_for_backward(...)`` keeps what backward needs. Return one new array (write
        into no input)."""
        raise NotImplementedError("a Function subclass must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx: Any, grad_output: Any, /) -> Any:  # pragma: no cover
        """dL/d(output) in, one dL/d(input) per input out (None for an input that is not
        differentiable), each of its input's shape; new arrays, from numpy."""
        raise NotImplementedError("a Function subclass must define backward(ctx, grad_output)")

    @classmethod
    def apply(cls, *inputs: Any, **kwargs: Any) -> _Tensor:
        """Run the op on Tensors (or arrays and Python scalars, taken as constants).

        Keyword arguments are passed to ``forward`` unchanged (axis, shape, ...).
        """
        # This is the hot path of the whole engine (about a microsecond per op), so the
        # common cases, one or two inputs, are unpacked inline rather than in a loop.
        ctx = _new(cls)
        ctx.saved_tensors = ()
        n_inputs = len(inputs)
        if n_inputs == 1 and isinstance(inputs[0], Tensor):
            x = inputs[0]
            d = x._data
            # (annotated once for all branches: a tuple of any length; no run-time cost)
            arrays: tuple[Any, ...] = (d,)
            shapes: tuple[Any, ...] = (d.shape,)
            record = x.requires_grad
            needs: tuple[bool, ...] = (record,)
            parents: tuple[Any, ...] = ((x if x.grad_fn is None else x.grad_fn) if record else None,)
        elif n_inputs == 2:
            a, b = inputs
            if isinstance(a, Tensor):
                da, ra = a._data, a.requires_grad
                pa = (a if a.grad_fn is None else a.grad_fn) if ra else None
            else:
                da = a if type(a) in _PLAIN and (type(a) is not np.ndarray or
                                                 a.dtype.kind in "biuf") else _constant(a, cls)
                ra, pa = False, None
            if isinstance(b, Tensor):
                db, rb = b._data, b.requires_grad
                pb = (b if b.grad_fn is None else b.grad_fn) if rb else None
            else:
                db = b if type(b) in _PLAIN and (type(b) is not np.ndarray or
                                                 b.dtype.kind in "biuf") else _constant(b, cls)
                rb, pb = False, None
            if da is db and pa is not pb and type(db) is np.ndarray:
                db = db.view()         # one array as two different inputs: see _distinct
            arrays = (da, db)
            shapes = (da.shape if type(da) is np.ndarray else (),
                      db.shape if type(db) is np.ndarray else ())
            needs = (ra, rb)
            parents = (pa, pb)
            record = ra or rb
        elif n_inputs == 3 and type(inputs[2]) is Tensor and type(inputs[1]) is Tensor \
                and type(inputs[0]) is Tensor:                  # linear(x, W, b)
            a, b, c = inputs
            arrays = (a._data, b._data, c._data)
            shapes = (arrays[0].shape, arrays[1].shape, arrays[2].shape)
            needs = (a.requires_grad, b.requires_grad, c.requires_grad)
            parents = ((a if a.grad_fn is None else a.grad_fn) if needs[0] else None,
                       (b if b.grad_fn is None else b.grad_fn) if needs[1] else None,
                       (c if c.grad_fn is None else c.grad_fn) if needs[2] else None)
            record = needs[0] or needs[1] or needs[2]
            if arrays[0] is arrays[1] or arrays[1] is arrays[2] or arrays[0] is arrays[2]:
                arrays = _distinct(arrays, parents)
        else:
            arrays, parents, needs, shapes, record = _unpack(inputs, cls)
            if record and n_inputs > 1 and (
                    arrays[0] is arrays[1] or arrays[-1] is arrays[-2] or arrays[0] is arrays[-1]
                    if n_inputs <= 3 else len(set(map(id, arrays))) < n_inputs):
                arrays = _distinct(arrays, parents)

        state = _state
        recording = record and state.grad_enabled
        ctx.needs_input_grad = needs if recording else (False,) * n_inputs
        # spelled out for one to three inputs: a call with *arrays costs ~0.2 us more
        if cls.check_backward:          # a user op: its inputs made by other ops read-only
            out = _user_forward(cls, ctx, arrays, parents, kwargs)
        elif kwargs:
            out = cls.forward(ctx, *arrays, **kwargs)
        elif n_inputs == 2:
            out = cls.forward(ctx, arrays[0], arrays[1])
        elif n_inputs == 1:
            out = cls.forward(ctx, arrays[0])
        elif n_inputs == 3:
            out = cls.forward(ctx, arrays[0], arrays[1], arrays[2])
        else:
            out = cls.forward(ctx, *arrays)
        if not recording:
            if type(out) is not np.ndarray:
                raw, out = out, (_as_output(cls, out) if cls.check_backward else np.asarray(out))
                if out.dtype.kind not in "biuf":
                    raise _non_numeric_output(cls, raw, out)
            elif cls.check_backward and out.dtype.kind not in "biuf":    # (a user op)
                raise _non_numeric_output(cls, out, out)
            if state.anomaly:
                _check_anomaly(ctx, arrays, out)
            return Tensor._from_op(out, None)

        if type(out) is not np.ndarray:
            raw, out = out, _output_array(ctx, out)
        else:
            raw = out
        if out.dtype.kind != "f":    # integer/bool results are not differentiable
            if out.dtype.kind not in "biu":
                raise _non_numeric_output(cls, raw, out)
            for x in inputs:
                if isinstance(x, Tensor) and x.requires_grad and x._data.dtype.kind != "f":
                    raise integer_requires_grad(x._data, cls._op_label())
            if state.anomaly:
                _check_anomaly(ctx, arrays, out)
            return Tensor._from_op(out, None)
        if cls.check_backward:       # a user op may give back an input's own array (an
            for a in arrays:         # identity): make it a view, so that nodes saving it
                if a is out:         # copy it (_protect); trusted ops never do (~0.07 us)
                    out = out.view()
                    break
            if out.flags.writeable:  # the graph's from now on, for good: its own backward,
                out.setflags(False)  # or a later call, must not write into it (see
                #                      _user_forward; a view's base is not touched)

        ctx.parents = parents
        ctx.input_shapes = shapes
        # (the output's dtype cannot be inferred later from the inputs' dtypes: a 0-d array
        # constant promotes float32 to float64, a Python number does not, and both have
        # shape ())
        ctx.output_dtype = out.dtype
        ctx.module = state.scope           # the nn module (or scope) that recorded it
        saved = ctx.saved_tensors
        ctx._locked = None
        if not saved:
            ctx._saved_src = ()
        elif len(saved) == 1 and saved[0] is out and out.base is None:
            ctx._saved_src = (-1,)         # its own output: users only see it read-only
        else:
            for s in saved:
                if type(s) is np.ndarray:
                    ctx.saved_tensors, ctx._saved_src, ctx._locked = _protect(
                        saved, arrays, out, parents)
                    break
            else:                          # only scalars and None (x * 2.0): nothing to guard
                ctx._saved_src = (None,) * len(saved)
        if state.anomaly:
            try:
                _check_anomaly(ctx, arrays, out)
            except BaseException:
                # the half-made node stays reachable from the traceback (a notebook keeps
                # it): it must not keep the user's arrays read-only
                ctx._release()
                raise
        t = _new(Tensor)
        t._data = out
        t._grad = None
        t.requires_grad = True
        t.grad_fn = ctx
        t.name = None
        return t

    def input_shape(self, i: int) -> tuple:
        """Shape of input ``i`` as it was in forward (for reducing broadcast gradients);
        ``ctx.input_shapes`` holds them all."""
        return self.input_shapes[i]

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
        if self._locked:
            self._locked.release()
            self._locked = None
        self.saved_tensors = ()
        self._saved_src = None          # None marks a released node
        if self.keeps_arrays_on_ctx:    # arrays a user op kept as attributes (ctx.cache, ...)
            extra = self.__dict__
            if extra:                   # (most nodes have none: skip making the list)
                for key in [k for k, v in extra.items() if _holds_arrays(v)]:
                    del extra[key]

    @property
    def _released(self) -> bool:
        return self._saved_src is None

    def _check_saved(self) -> None:
        """Raise if a saved array was made writable again (and so may have changed)."""
        for a in self._locked or ():
            if a.flags.writeable:
                raise InPlaceModificationError(
                    f"{self.name}: an array of shape {a.shape} saved for backward by "
                    f"{self._op_label()} was made writable and may have been modified in "
                    f"place after the forward pass; its gradient would be wrong. Redo the "
                    f"forward pass after changing the data.")

    def __repr__(self) -> str:
        return f"<{self.name}>"


def _arrays_in(values: Any) -> Iterator[np.ndarray]:
    """The arrays among ``values``, also inside tuples and lists (an index, a cache)."""
    for v in values:
        if isinstance(v, np.ndarray):
            yield v
        elif isinstance(v, (tuple, list)):
            yield from _arrays_in(v)


def _holds_arrays(value: Any) -> bool:
    """An array, or a tuple or list with arrays inside (``ctx.cache = (x, mask)``, an index)."""
    if isinstance(value, np.ndarray):
        return True
    return isinstance(value, (tuple, list)) and any(_holds_arrays(v) for v in value)


def _user_forward(cls: type[Function], ctx: Function, arrays: tuple, parents: tuple,
                  kwargs: dict) -> Any:
    """Run a user op's ``forward`` (one whose ``check_backward`` is on).

    The arrays of its inputs made by other ops are the graph's: the node that made one, and
    the nodes that used it, may have saved it for their backward. tinygraph's own ops never
    write into an input; a user op that did (``x *= 2``) silently changed what those nodes'
    backward read. So those arrays are made read-only here, for good (a built-in op's
    result is a fresh array nobody else holds, shown only read-only by ``Tensor.data``; a
    user op's recorded result is read-only already, see ``apply``), and numpy's bare
    "output array is read-only" becomes an error naming the op."""
    for a, p in zip(arrays, parents):
        if isinstance(p, Function) and type(a) is np.ndarray and a.flags.writeable:
            a.setflags(False)       # type: ignore[call-arg]  # write=False, see _lock_shared
    try:
        return cls.forward(ctx, *arrays, **kwargs)
    except ValueError as exc:
        if str(exc) not in _NUMPY_READ_ONLY:
            raise                   # (the op's own ValueError, whatever its words)
        raise _read_only_error(f"{cls._op_label()}: forward", "an input",
                               "y = x * 2, not x *= 2", exc) from exc


#: numpy's words (2.x) for a write into a read-only array: a ufunc's out=, an assignment,
#: sort, partition, put, putmask, fill_diagonal and .flat, shuffle, place and take(out=),
#: einsum(out=). (numpy's ufunc.at, np.add.at, ignores the flag: it cannot be caught.)
_NUMPY_READ_ONLY = frozenset((
    "output array is read-only", "assignment destination is read-only",
    "sort array is read-only", "partition array is read-only", "put: output array is read-only",
    "putmask: output array is read-only", "underlying array is read-only", "array is read-only",
    "WRITEBACKIFCOPY base is read-only",
    "operand array with iterator write flag set is read-only"))


def _read_only_error(where: str, what: str, example: str,
                     exc: Exception) -> ReadOnlyWriteError:
    """A user op wrote into a read-only array (numpy raised ``exc``, which does not say
    which array): most likely one the graph may still read."""
    return ReadOnlyWriteError(
        f"{where} wrote into a read-only array (numpy: {exc}). The arrays an op is given "
        f"that the graph may read again are read-only: an input made by another op, a "
        f"leaf's array that a node saved, the gradient backward receives, and the op's own "
        f"recorded output (a buffer it writes every call into is read-only after the first "
        f"recorded one: return a new array). Compute a new array instead of changing {what} "
        f"in place ({example}); code that needs a writable buffer (ctypes, a Cython "
        f"memoryview) takes a copy")


def _as_output(op: type[Function], out: Any) -> np.ndarray:
    """A user op's ``forward`` result that is no array (a number, a list) as one. A tuple
    holding arrays is refused: one op has one output (a PyTorch Function returns several
    so), where numpy would stack them or fail on their shapes. A tuple of numbers (numpy
    scalars too, ``(x.min(), x.max())``) is one array, as before."""
    if isinstance(out, tuple) and any(isinstance(v, np.ndarray) for v in out):
        raise TypeError(f"{op._op_label()}: forward returned a tuple of {len(out)}; a "
                        f"tinygraph op has one output: write an op per output (they may "
                        f"share a helper), or return one array that holds them all and "
                        f"index its result")
    try:
        return np.asarray(out)
    except (TypeError, ValueError) as exc:      # a ragged list
        raise TypeError(f"{op._op_label()}: forward returned {out!r:.40} (a "
                        f"{type(out).__name__}) that is not an array of numbers "
                        f"({str(exc).split('. ')[0]}); expected one array") from None


def _output_array(ctx: "Function", out: Any) -> np.ndarray:
    """``forward``'s result as an array (reductions and 0-d math give numpy scalars). A
    scalar that ``forward`` also saved is replaced there by the same array, so the engine
    still knows it as the op's output (a recorded backward links it to this node)."""
    # (trusted ops give a numpy scalar at most: numpy's own conversion, ~70 ns cheaper)
    scalar, out = out, (_as_output(type(ctx), out) if ctx.check_backward else np.asarray(out))
    saved = ctx.saved_tensors
    for s in saved:
        if s is scalar:
            ctx.saved_tensors = tuple(out if s is scalar else s for s in saved)
            break
    return out


def _check_anomaly(ctx: "Function", arrays, out: np.ndarray) -> None:
    """Under detect_anomaly(): remember the user's line, and check the forward output
    (of recorded ops and of inference alike)."""
    from .anomaly import check_forward, user_frame
    ctx._trace = user_frame()
    check_forward(ctx, arrays, out)


# What an op takes as it is (Python numbers; arrays of a numeric dtype); apply checks it
# inline before calling _constant, to save the call on the hot path. (None goes through
# _constant: rejects_none. An array of another dtype too: a complex or object array would
# give a result that silently drops out of the graph.)
_PLAIN = frozenset((np.ndarray, float, int, bool))
_new = object.__new__


def python_scalar(x: Any) -> Any:
    """A numpy scalar of a bool, integer or float dtype (``np.float64(2)``, ``x.mean()``) as
    the Python number it holds, anything else as it is. A Python number takes the dtype of
    the array it meets, so float32 stays float32; numpy would promote float32 to float64 for
    a ``np.float64`` (NEP 50), silently, in a graph whose leaves stay float32."""
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return x.item()
    return x


def _constant(x: Any, op: type[Function]) -> Any:
    """A non-Tensor input of ``op`` as forward gets it: Python numbers and numeric arrays as
    they are, numpy scalars as Python numbers (``python_scalar``), None as it is unless
    ``op.rejects_none``, anything else (lists) as an array; an array of another dtype
    (complex, object, str) is refused."""
    if type(x) is np.ndarray:
        arr = x
    elif type(x) in _PLAIN:
        return x
    elif type(number := python_scalar(x)) in _PLAIN:       # a numpy scalar
        return number
    elif x is None:
        if op.rejects_none:
            reject_none(op._op_label(), x)
        return x
    else:
        try:
            arr = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op._op_label()}: operand {x!r} cannot be made a numeric array "
                            f"({str(exc).split('. ')[0]}); expected a number, a numeric array "
                            f"or a Tensor") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{op._op_label()}: an operand has dtype {arr.dtype} (shape "
                        f"{arr.shape}); expected a number, a bool, integer or float array, "
                        f"or a Tensor")
    return arr


def integer_requires_grad(data: np.ndarray, where: str) -> TypeError:
    """A tensor of a bool or integer dtype with requires_grad set as an attribute (the
    constructor and ``requires_grad_()`` refuse it): its gradient cannot be held."""
    return TypeError(f"{where}: a tensor of dtype {data.dtype} (shape {data.shape}) has "
                     f"requires_grad=True, set as an attribute; only floating-point tensors "
                     f"can have gradients: make it Tensor(data, dtype=np.float64, "
                     f"requires_grad=True)")


def _non_numeric_output(op: type[Function], raw: Any, out: np.ndarray) -> TypeError:
    """A user op's forward gave back something that is no bool, integer or float array."""
    what = (f"an array of dtype {out.dtype}" if type(raw) is np.ndarray else
            f"{raw!r:.40} (a {type(raw).__name__}, dtype {out.dtype} as an array)")
    return TypeError(f"{op._op_label()}: forward returned {what}; expected a bool, integer or "
                     f"float array (or a number)")


def reject_none(op: str, *operands) -> None:
    """Raise a TypeError naming ``op`` if an operand is None (a variable that was never
    set, a layer without a bias...), where numpy would name a float and NoneType, a shape
    () or make an object array. ``apply`` calls it for ops with ``rejects_none`` (off the
    fast paths: only a non-Tensor input is looked at). It does not say which operand:
    ``None + x`` reaches ``add`` as ``(x, None)``."""
    if any(x is None for x in operands):
        raise TypeError(f"{op}: got None as an operand; expected a number, a numeric array or "
                        f"a Tensor (was a variable that should hold one never set?)")


def _distinct(arrays, parents: tuple) -> tuple:
    """One array object given as two inputs that are different tensors (``x * x.detach()``,
    two leaves over one array): each input that is another tensor than the array's first
    input gets a view of its own, so that ``_protect`` can tell which input a saved array is
    and a recorded backward (gradients of gradients) links it to the right one. The same
    tensor twice (``x * x``) needs nothing; inputs that are one tensor share one view.
    (Called only when an array repeats.)"""
    first_parent: dict = {}         # id(array) -> the parent of its first input
    views: dict = {}                # (id(array), id(parent)) -> the view its inputs get
    out = list(arrays)
    for i, a in enumerate(arrays):
        if type(a) is not np.ndarray:
            continue
        p = parents[i]
        if first_parent.setdefault(id(a), p) is p:
            continue
        key = (id(a), id(p))
        view = views.get(key)
        if view is None:
            view = views[key] = a.view()
        out[i] = view
    return tuple(out)


def _unpack(inputs: tuple, op: type[Function]) -> tuple:
    """(arrays, parents, needs_input_grad, shapes, record) for the inputs of ``op``."""
    arrays = []
    parents = []
    needs = []
    shapes = []
    record = False
    for x in inputs:
        if isinstance(x, Tensor):
            d = x._data
            arrays.append(d)
            shapes.append(d.shape)
            if x.requires_grad:
                record = True
                needs.append(True)
                parents.append(x if x.grad_fn is None else x.grad_fn)
                continue
        else:
            x = _constant(x, op)
            if len(inputs) == 1 and type(x) in _PLAIN and type(x) is not np.ndarray:
                x = np.asarray(x)     # a one-input op (sum, reshape) reads .ndim or .shape
            arrays.append(x)
            shapes.append(x.shape if type(x) is np.ndarray else ())
        needs.append(False)
        parents.append(None)
    return arrays, tuple(parents), tuple(needs), tuple(shapes), record
