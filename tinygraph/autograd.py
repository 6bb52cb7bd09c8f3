"""The reverse-mode traversal: ``backward`` and ``grad``.

1. Count, for every node reachable from the outputs, how many edges point into it
   from nodes that still have to run (an iterative walk: no recursion, so a chain of
   a million nodes is fine).
2. Run nodes whose count has dropped to zero, starting from the outputs. Each node's
   ``backward`` turns the gradient of its output into gradients of its inputs; those
   are summed per input node (fan-out) and, for leaves, into ``.grad``.

Every node runs at most once, after all its consumers, so the cost is linear in the
size of the graph. Gradients are summed into buffers the engine owns; an array that
may be shared with anything else is copied before it is modified or stored in ``.grad``.
"""
from __future__ import annotations

import threading
import weakref
from typing import Any, Sequence

import numpy as np

from .errors import BackwardError
from .function import _NUMPY_READ_ONLY, Function, _read_only_error, integer_requires_grad
from .grad_mode import _state, enable_grad

# Backward passes in several threads may sum into the same leaf's .grad (shared parameters).
_grad_guard = threading.Lock()

# Non-leaf tensors that asked for retain_grad(), by their node.
_retained: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()
# Threads register and copy it concurrently (a copy iterates: no insertion meanwhile).
_retained_guard = threading.Lock()


def register_retained(t) -> None:
    with _retained_guard:
        _retained[id(t.grad_fn)] = t


def is_retained(t) -> bool:
    """Whether ``retain_grad()`` was called on ``t`` (a tensor made by an op)."""
    return _retained.get(id(t.grad_fn)) is t


def _retained_now() -> dict:
    """A copy of the live entries. Another thread's garbage collection may still remove a
    dead entry while the copy iterates (WeakValueDictionary's guard has a race there): then
    the copy is simply made again."""
    with _retained_guard:
        while True:
            try:
                return dict(_retained.items())
            except RuntimeError:          # "dictionary changed size during iteration"
                continue


def _topological_counts(roots: list) -> dict:
    """Number of consumers of every node reachable from ``roots`` (leaves excluded)."""
    counts: dict = {}
    stack = list(roots)
    for r in roots:
        counts.setdefault(r, 0)
    while stack:
        node = stack.pop()
        for p in node.parents:
            if p is None or not isinstance(p, Function):
                continue
            c = counts.get(p)
            if c is None:
                counts[p] = 1
                stack.append(p)
            else:
                counts[p] = c + 1
    return counts


def _needed(roots: list, wanted: dict, wanted_nodes: dict) -> set:
    """For ``grad()``: the nodes whose backward must run, those with a requested tensor (a
    leaf, or a non-leaf's node) somewhere below them. The rest of the graph is neither run
    nor freed, as in PyTorch's ``autograd.grad``."""
    counts = _topological_counts(roots)
    order, ready = [], [r for r in roots if counts[r] == 0]
    while ready:                        # consumers before the nodes they read from
        node = ready.pop()
        order.append(node)
        for p in node.parents:
            if isinstance(p, Function):
                counts[p] -= 1
                if counts[p] == 0:
                    ready.append(p)
    needed: set = set()
    for node in reversed(order):        # inputs first: what lies below is known
        for p in node.parents:
            if (p in needed or p in wanted_nodes) if isinstance(p, Function) else \
                    (p is not None and id(p) in wanted):
                needed.add(node)
                break
    return needed


def _root_grad(out, grad):
    if grad is None:
        if out._data.size != 1:
            raise BackwardError(
                f"backward: output has shape {out.shape}, not a scalar; pass grad= an array of "
                f"shape {out.shape} (the gradient of the final loss with respect to this output), "
                f"or reduce it first, e.g. out.sum().backward()")
        shape = out._data.shape
        # np.array(1) is ~0.6 us cheaper than np.ones for the usual 0-d loss
        return np.array(1, out._data.dtype) if not shape else np.ones(shape, out._data.dtype)
    if type(grad) is np.ndarray:
        if grad.dtype != out._data.dtype:
            grad = grad.astype(out._data.dtype)
    else:
        from .tensor import Tensor
        if isinstance(grad, Tensor) and not _state.create_graph:
            grad = grad._data
        if not isinstance(grad, Tensor):
            try:
                grad = np.asarray(grad, dtype=out.dtype)
            except (TypeError, ValueError):
                raise BackwardError(f"backward: grad {grad!r:.40} is not an array of numbers; "
                                    f"expected one of shape {out.shape} (the gradient of the final "
                                    f"loss with respect to this output)") from None
    if grad.shape != out.shape:
        raise BackwardError(f"backward: grad has shape {grad.shape} but the output has shape "
                            f"{out.shape}; they must match")
    return grad


def _run(outputs: Sequence, grads: Sequence, retain_graph: bool, create_graph: bool,
         inputs: Sequence | None = None) -> dict:
    """The traversal. Returns {id(input tensor): gradient} when ``inputs`` is given."""

    node_grads: dict = {}        # node -> gradient of its output so far
    owned: set = set()           # ids of buffers the engine made (safe to add into in place)
    wanted = None
    if inputs is not None:
        wanted = {id(t): t for t in inputs}
        # non-leaf inputs: gradient of their node's output
        wanted_nodes = {t.grad_fn: t for t in inputs if t.grad_fn is not None}
    else:
        wanted_nodes = {}
    retained = _retained_now() if _retained and inputs is None else None
    # Leaf gradients are summed per leaf during the pass and stored in .grad (and in the
    # .grad of retain_grad() tensors) only once it has run: a pass that fails half way
    # changes no .grad.
    leaf_sink = _LeafGrads(wanted)
    leaf_grads = leaf_sink.collected
    retained_grads: list = []

    roots = []
    for out, g in zip(outputs, grads):
        if not out.requires_grad:
            raise BackwardError(
                "backward: the output depends on no tensor that requires grad, so there is no "
                "graph to run back through: every input is a constant, was detach()ed or taken "
                "as .data, or the output was computed under no_grad(). Make parameters Tensors "
                "with requires_grad=True and compute the output outside no_grad(); "
                "tinygraph.grad_report(fn, params) names the reason for each parameter")
        leaf_sink.handed.add(id(g))
        if out.grad_fn is None:        # a leaf as output: its gradient is grad itself
            leaf_sink.add(out, g)
            continue
        node = out.grad_fn
        if node in node_grads:
            node_grads[node] = _sum(node_grads[node], g)
        else:
            node_grads[node] = g
            roots.append(node)

    if wanted is None:
        needed = None
        counts = _topological_counts(roots)
    else:
        needed = _needed(roots, wanted, wanted_nodes)
        counts = {r: 0 for r in roots}          # consumers among the nodes that will run
        for n in needed:
            for p in n.parents:
                if isinstance(p, Function):
                    counts[p] = counts.get(p, 0) + 1
    ready = [n for n in roots if counts[n] == 0]
    previous_create = _state.create_graph
    _state.create_graph = create_graph
    special = create_graph or bool(wanted_nodes) or retained is not None
    # inside detect_anomaly() every node's gradients are checked, also nodes recorded
    # before the block (their forward line is then unknown)
    anomaly = _state.anomaly
    node = None
    try:
        while ready:
            node = ready.pop()
            g = node_grads.pop(node, None)
            if needed is not None and node not in needed:
                if g is not None:                       # a requested non-leaf's node
                    owned.discard(id(g))
                    _note_grad(node, g, wanted_nodes, leaf_grads, retained, retained_grads)
                continue
            if g is None:
                input_grads = None
            else:
                if owned:
                    owned.discard(id(g))
                if node._saved_src is None:             # released by an earlier backward
                    _raise_released(node)
                if special:
                    _note_grad(node, g, wanted_nodes, leaf_grads, retained, retained_grads)
                if create_graph or anomaly or node._trace is not None or node.check_backward:
                    input_grads = _call_backward(node, g, create_graph, anomaly)
                else:                                   # the hot path: a built-in op
                    if node._locked:
                        node._check_saved()
                    input_grads = node.backward(node, g)
                    if type(input_grads) is not tuple:
                        input_grads = (input_grads,)
                    if len(input_grads) != len(node.parents):
                        # a wrong count from a trusted op must not leave part of the graph
                        # unvisited without a word (_call_backward checks the others)
                        _raise_count(node, input_grads)
            if not retain_graph:                        # free the saved arrays now
                if node._locked or node.keeps_arrays_on_ctx:
                    node._release()
                else:
                    node.saved_tensors = ()
                    node._saved_src = None
            # (the counts are checked above: a plain zip is ~0.1 us cheaper per node than
            # zip(strict=True))
            for p, ig in zip(node.parents, input_grads or _nones(node)):
                if p is None:
                    continue
                if type(ig) is not np.ndarray and ig is not None and not create_graph:
                    ig = np.asarray(ig)                  # numpy gives scalars for 0-d results
                if not isinstance(p, Function):          # a leaf tensor
                    if ig is not None:
                        leaf_sink.add(p, ig)
                    continue
                if ig is not None:
                    prev = node_grads.get(p)
                    if prev is None:
                        node_grads[p] = ig
                    elif create_graph:
                        node_grads[p] = prev + ig
                    elif id(prev) in owned:
                        prev += ig
                    else:
                        new = _sum(prev, ig)
                        owned.add(id(new))
                        node_grads[p] = new
                c = counts[p] - 1
                counts[p] = c
                if c == 0:
                    ready.append(p)
    except Exception as exc:
        _abandon(counts if needed is None else needed, node, exc, retain_graph)
        raise
    finally:
        _state.create_graph = previous_create
    leaf_sink.commit()
    for t, g in retained_grads:
        t._grad = g if t._grad is None else _sum(t._grad, g)
    return leaf_grads


def _sum(a, b):
    """a + b as an array: numpy gives a scalar for two 0-d arrays, and a scalar cannot be
    added into in place (``+=`` would only rebind a name: a third gradient would be lost)."""
    total = a + b
    return np.asarray(total) if isinstance(total, np.generic) else total


def _nones(node: Function) -> tuple:
    return (None,) * len(node.parents)


def _raise_count(node: Function, input_grads: tuple) -> None:
    raise BackwardError(f"{node.name}: backward returned {len(input_grads)} gradient(s) for "
                        f"{len(node.parents)} input(s); return one per input (None where not "
                        f"differentiable)")


def _raise_released(node: Function) -> None:
    failed = node.__dict__.get("_failed")
    if failed:
        raise BackwardError(f"backward through {node.name}: an earlier {failed}")
    raise BackwardError(
        f"backward through {node.name} a second time: the first backward released this "
        f"graph and its saved arrays (a second pass would also add the same gradients into "
        f".grad again); pass retain_graph=True to the first backward() if you need to run "
        f"backward twice")


def _note_grad(node: Function, g, wanted_nodes: dict, found: dict, retained,
               retained_grads: list) -> None:
    """grad() asked for this non-leaf tensor, or it called retain_grad(): keep its gradient
    (for retain_grad, in ``retained_grads``, stored in ``.grad`` when the pass has run)."""
    if node in wanted_nodes:
        t = wanted_nodes[node]
        found[id(t)] = (t, _in_dtype_of(t, g))
    if retained is not None and id(node) in retained:
        t = retained[id(node)]
        retained_grads.append((t, _stored_copy(_in_dtype_of(t, g))))


def _in_dtype_of(t, g):
    """A gradient has its tensor's dtype (a float32 result in float64 math gets float32),
    leaf or not."""
    dtype = t._data.dtype
    return g if g.dtype == dtype else g.astype(dtype)


def _abandon(nodes, failed, exc: Exception, retain_graph: bool) -> None:
    """A backward pass raised half way: free the graph's ``nodes`` (unless retained) and
    say so."""
    where = failed.name if failed is not None else "the start"
    message = (f"backward failed at {where} ({type(exc).__name__}: {exc}); no .grad was changed: "
               f"run the forward pass again")
    if not retain_graph:
        for n in nodes:
            if n._saved_src is not None:
                n._release()
            n.__dict__["_failed"] = message
    if hasattr(exc, "add_note"):                # Python 3.11+
        exc.add_note(f"tinygraph: {message}")


def _call_backward(node: Function, g, create_graph: bool, anomaly: bool = False):
    if node._locked:
        node._check_saved()
    if create_graph:
        saved = node.saved_tensors
        node.saved_tensors = _saved_as_tensors(node)
        try:
            with enable_grad():
                result = type(node).backward(node, g)
        finally:
            node.saved_tensors = saved
    elif node.check_backward:
        # a user op gets its gradient read-only: it may be another node's gradient too
        # (add hands one array to both inputs), which `g *= 2` would silently change
        if type(g) is np.ndarray and g.flags.writeable:
            g = g.view()
            g.setflags(False)       # type: ignore[call-arg]  # write=False, positionally
        try:
            result = type(node).backward(node, g)
        except ValueError as exc:
            if str(exc) not in _NUMPY_READ_ONLY:
                raise
            raise _read_only_error(f"{node.name}: backward", "grad_output or a saved array",
                                   "g = g * 2, not g *= 2", exc) from exc
    else:
        result = type(node).backward(node, g)
    if type(result) is not tuple:
        result = (result,)
    if len(result) != len(node.parents):
        _raise_count(node, result)
    result = _check_grad_shapes(node, result, create_graph)
    if anomaly or node._trace is not None:   # run or recorded under detect_anomaly()
        from .anomaly import check_backward
        check_backward(node, result)
    return result


def _check_grad_shapes(node: Function, result: tuple, create_graph: bool = False) -> tuple:
    shapes = node.input_shapes
    for i, ig in enumerate(result):
        if ig is None or node.parents[i] is None:
            continue
        if not create_graph and type(ig) is not np.ndarray and hasattr(ig, "grad_fn"):
            raise BackwardError(
                f"{node.name}: backward returned a Tensor for input {i}; backward computes "
                f"with numpy arrays (grad_output and ctx.saved_tensors are arrays): use numpy "
                f"(np.exp(x)), not tinygraph's ops (tg.exp(x)). Written with numpy, backward "
                f"is recorded itself under grad(..., create_graph=True)")
        if not hasattr(ig, "shape"):       # a Python number or a list: take it as an array
            ig = _gradient_array(node, i, ig)
            result = result[:i] + (ig,) + result[i + 1:]
        shape = shapes[i]
        if ig.shape != shape:
            raise BackwardError(
                f"{node.name}: backward returned a gradient of shape {ig.shape} for input {i} "
                f"of shape {shape}; a gradient must have its input's shape")
    return result


def _gradient_array(node: Function, i: int, ig: Any) -> np.ndarray:
    try:
        arr = np.asarray(ig)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.dtype.kind not in "biuf":
        raise BackwardError(f"{node.name}: backward returned a {type(ig).__name__} for input {i}; "
                            f"expected a numeric array of the input's shape (or None)")
    return arr if arr.dtype.kind == "f" else arr.astype(np.float64)


def _saved_as_tensors(node: Function) -> tuple:
    """The saved arrays as Tensors linked into the graph, for a recorded backward."""
    from .tensor import Tensor
    out = []
    for arr, src in zip(node.saved_tensors, node._saved_src or ()):
        if src is None or type(arr) is not np.ndarray:
            out.append(arr if type(arr) is not np.ndarray else Tensor._from_op(arr, None))
        elif src == -1:
            out.append(Tensor._from_op(arr, node))
        else:
            p = node.parents[src]
            if p is None:
                out.append(Tensor._from_op(arr, None))
            elif isinstance(p, Function):
                out.append(Tensor._from_op(arr, p))
            elif p._data is arr:
                out.append(p)              # the leaf itself
            else:                          # its data was replaced since, or arr is a private
                out.append(_SavedValue.apply(p, arr))     # copy of a view: the saved values
    return tuple(out)


class _SavedValue(Function):
    """Under ``create_graph``, a leaf's array as ``forward`` saved it, when the leaf now holds
    another array (``x.data = ...`` after the forward pass, or a view saved as a copy): the
    saved values, with gradients flowing to the leaf as through an identity, so the
    recorded backward is the derivative at the point the forward pass was run."""
    op_name = "saved_value"
    check_backward = False

    @staticmethod
    def forward(ctx, x, saved):
        return saved.copy()

    @staticmethod
    def backward(ctx, g):
        return g, None


def _stored_copy(g):
    if isinstance(g, np.ndarray):
        return np.array(g, copy=True)
    return g


class _LeafGrads:
    """Leaf gradients of one pass: summed per leaf as they come (one buffer per leaf, however
    often the leaf is used), then stored into ``.grad``, or handed to ``grad()``, by
    ``commit`` once the pass has run.

    A gradient is stored as it is only when nothing else can hold it (not a view, not the
    array given to ``backward``, not already stored in another leaf's ``.grad``: ``add``
    hands one array to both of its inputs); it is added into in place only when this pass
    made the buffer itself (a sum).
    """

    def __init__(self, wanted: dict | None) -> None:
        self.wanted = wanted
        self.collected: dict = {}     # id -> (tensor, gradient), for grad()
        self.handed: set = set()      # ids of arrays someone else holds
        self.sums: dict = {}          # id(leaf) -> [leaf, gradient so far, made by this pass]

    def add(self, leaf, ig) -> None:
        """One more contribution to ``leaf``'s gradient in this pass."""
        key = id(leaf)
        if self.wanted is None:
            if not leaf.requires_grad:      # requires_grad_(False) since the forward pass:
                return                      # no .grad, as PyTorch's AccumulateGrad
        elif key not in self.wanted:
            return
        ig = _in_dtype_of(leaf, ig)      # (a Tensor from a recorded backward: a cast node)
        if ig.shape != leaf._data.shape:
            # checked per contribution: a leaf used before and after its data was replaced
            # by another shape would otherwise have its two gradients broadcast together
            _raise_leaf_shape(leaf, ig, "backward" if self.wanted is None else "grad")
        entry = self.sums.get(key)
        if entry is None:
            self.sums[key] = [leaf, ig, False]
        elif entry[2] and type(entry[1]) is np.ndarray:
            entry[1] += ig
        else:                          # (a recorded backward sums Tensors, never in place)
            entry[1] = _sum(entry[1], ig)
            entry[2] = True

    def commit(self) -> None:
        """Store the pass's sums: all of them, or none if one cannot be added to ``.grad``."""
        if self.wanted is not None:
            for key, (leaf, g, _) in self.sums.items():
                if leaf._data.dtype.kind != "f":
                    raise integer_requires_grad(leaf._data, "grad")
                self.collected[key] = (leaf, g)
            return
        handed = self.handed
        with _grad_guard:       # another thread may be adding into the same .grad
            new = []
            for leaf, g, made in self.sums.values():
                if leaf._data.dtype.kind != "f":    # (its gradient would be cast to zeros)
                    raise integer_requires_grad(leaf._data, "backward")
                if not isinstance(g, np.ndarray):
                    g = g._data                 # a Tensor from a recorded backward
                current = leaf._grad
                if current is not None:
                    if type(current) is not np.ndarray:
                        raise BackwardError(
                            f"backward: a leaf of shape {leaf.shape} has a .grad that is a "
                            f"{type(current).__name__}, set by hand; .grad must be a numpy "
                            f"array (or None) for gradients to be added to it. No .grad was "
                            f"changed")
                    if np.shape(current) != g.shape:
                        raise BackwardError(
                            f"backward: a leaf of shape {leaf.shape} has a .grad of shape "
                            f"{np.shape(current)}, which its gradient cannot be added to; set "
                            f".grad = None (zero_grad()) first. No .grad was changed")
                    g = _sum(current, g)
                elif not made and (g.base is not None or id(g) in handed
                                   or not g.flags.writeable):
                    g = np.array(g, copy=True)
                handed.add(id(g))
                new.append((leaf, g))
            for leaf, g in new:
                leaf._grad = g


def _raise_leaf_shape(leaf, g, where: str) -> None:
    """A leaf's gradient must have the leaf's shape: nothing is stored or returned."""
    name = f" {leaf.name!r}" if leaf.name else ""
    raise BackwardError(
        f"{where}: a gradient of shape {g.shape} for a leaf{name} of shape "
        f"{leaf._data.shape}: the leaf's data was replaced by an array of another shape after "
        f"the graph used it (a leaf has one shape per graph: replace .data before its first "
        f"use, or make a new Tensor, and run the forward pass again), or the backward of an op "
        f"with check_backward = False returned a wrong shape."
        + (" No .grad was changed" if where == "backward" else ""))


def backward(output, grad: Any = None, retain_graph: bool = False) -> None:
    """``output.backward(grad, retain_graph)``: see ``Tensor.backward``."""
    g = _root_grad(output, grad)
    _run([output], [g], retain_graph=retain_graph, create_graph=False)


def grad(outputs, inputs, grad_outputs=None, retain_graph: bool | None = None,
         create_graph: bool = False):
    """Gradients of ``outputs`` with respect to ``inputs``, without touching ``.grad``.

    Returns a tuple with one entry per input: a numpy array, or a Tensor when
    ``create_graph=True`` (that Tensor is itself differentiable: gradients of gradients).
    An input that the outputs do not depend on gets None.
    ``retain_graph`` defaults to ``create_graph``.
    """
    from .tensor import Tensor
    single_out = isinstance(outputs, Tensor)
    outs = [outputs] if single_out else list(outputs)
    single_in = isinstance(inputs, Tensor)
    ins = [inputs] if single_in else list(inputs)
    for i, t in enumerate(ins):
        if not isinstance(t, Tensor) or not t.requires_grad:
            got = ("a Tensor with requires_grad=False" if isinstance(t, Tensor)
                   else f"a {type(t).__name__}")
            raise BackwardError(f"grad: inputs[{i}] is {got}; expected a Tensor with "
                                f"requires_grad=True (a leaf, or a tensor computed from one)")
    gouts: list
    if grad_outputs is None:
        gouts = [None] * len(outs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)) and single_out:
        gouts = [grad_outputs]
    else:
        gouts = list(grad_outputs)
    if len(gouts) != len(outs):
        raise BackwardError(f"grad: {len(gouts)} grad_outputs for {len(outs)} outputs; give one "
                            f"per output (None for a scalar output)")
    if retain_graph is None:
        retain_graph = create_graph
    previous = _state.create_graph
    _state.create_graph = create_graph
    try:
        roots = [_root_grad(o, g) for o, g in zip(outs, gouts)]
    finally:
        _state.create_graph = previous
    if create_graph:
        roots = [r if isinstance(r, Tensor) else Tensor._from_op(r, None) for r in roots]
    found = _run(outs, roots, retain_graph=retain_graph, create_graph=create_graph, inputs=ins)
    result = []
    seen = {id(r) for r in roots}        # grad_outputs must not come back as results
    for t in ins:
        entry = found.get(id(t))
        g = None if entry is None else entry[1]
        if create_graph and g is not None and not isinstance(g, Tensor):
            g = Tensor._from_op(np.asarray(g), None)
        if not create_graph and g is not None:
            g = np.asarray(g)
            if id(g) in seen or g.base is not None or not g.flags.writeable:
                g = np.array(g, copy=True)   # every result is its own array
            seen.add(id(g))
        result.append(g)
    return tuple(result)
