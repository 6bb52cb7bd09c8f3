"""Pictures of a recorded graph, as ``graphviz.Digraph`` objects.

    >>> from tinygraph import viz
    >>> g = viz.forward_graph(loss)              # tensors and ops, data-flow order
    >>> g = viz.backward_graph(loss)             # backward nodes, saved arrays, memory
    >>> g = viz.backward_graph(loss, crosscheck=report)   # leaves coloured by rel. error
    >>> viz.render(g, "graph.svg")               # or .png; .pdf needs the system Graphviz

The graph is read through ``tinygraph.graph.nodes`` (an iterative, deterministic walk) and
never changed. Node ids come from that walk (``n0``, ``n1``, ...), so the same graph always
gives the same DOT text. Graphs with more than ``max_nodes`` backward nodes are cut, and an
elision node says how many were left out.

Rendering needs a ``dot`` program: the system Graphviz when it is on PATH, otherwise the
``graphviz-pure`` binary that the pip package of that name installs (svg and png; no pdf).
``render`` runs it directly on the DOT source, so ``graphviz.Digraph.render`` (which only
knows the system ``dot``) is not needed; the returned objects also display in Jupyter
through the same lookup.
"""
from __future__ import annotations

import numbers
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, Iterable

import graphviz  # type: ignore[import-untyped]  # (it ships no type hints)
import numpy as np

from . import autograd as _autograd
from . import graph as _graph
from .function import Function, _arrays_in
from .grad_mode import ScopeLabel
from .tensor import Tensor

__all__ = ["forward_graph", "backward_graph", "backward_state", "render", "find_dot", "Picture"]

# -- look ----------------------------------------------------------------------------------
FONT = "Helvetica"
PARAM_FILL = "#cfe2f3"      # parameters (leaves that require grad): light blue
INPUT_FILL = "#e3e3e3"      # inputs and constants: grey
OUTPUT_FILL = "#c6efce"     # outputs: green
INTER_FILL = "#ffffff"      # intermediates: white
OP_FILL = "#fff4cc"         # op nodes: pale yellow ellipses
BACKWARD_FILL = "#eeeeee"   # backward nodes
SAVED_FILL = "#fdd5a5"      # saved arrays: orange-ish
SAVED_EDGE = "#d98c2b"
OK_FILL = "#a8e0a0"         # cross-check: within tolerance
BAD_FILL = "#f29b9b"        # cross-check: beyond tolerance
LEGEND_FILL = "#fffbe6"

DASH = "\u2014"             # a gradient that is not there (never shown as 0.0)
SMALL = 6                   # tensors with at most this many elements show their numbers
_RANKDIRS = ("LR", "TB", "RL", "BT")


class Picture(graphviz.Digraph):
    """A ``graphviz.Digraph`` that displays in Jupyter through ``find_dot()``.

    ``graphviz.Digraph`` renders with the system ``dot`` only; this subclass renders its
    notebook display with whatever ``find_dot`` finds (system Graphviz or graphviz-pure).
    Everything else is plain ``graphviz.Digraph``.
    """

    def _repr_image_svg_xml(self) -> str:
        return _pipe(self.source, "svg", timeout=RENDER_TIMEOUT,
                     more_time=_NOTEBOOK_TIME).decode("utf-8")

    def _repr_image_png(self) -> bytes:
        return _pipe(self.source, "png", timeout=RENDER_TIMEOUT, more_time=_NOTEBOOK_TIME)

    def _repr_image_jpeg(self) -> bytes:
        return _pipe(self.source, "jpeg", timeout=RENDER_TIMEOUT, more_time=_NOTEBOOK_TIME)


# -- small helpers -------------------------------------------------------------------------
class _Ids:
    """n0, n1, ... in the order asked for (the walk order): never id()."""

    def __init__(self) -> None:
        self.count = 0

    def new(self) -> str:
        nid = f"n{self.count}"
        self.count += 1
        return nid


def _esc(text: Any) -> str:
    """User text (tensor names, titles) made safe inside a DOT label. A label the graphviz
    package would take for an HTML label ("<lambda>", "<b>x</b>") stays plain text. A NUL
    character, which the renderer cannot read, is shown as ``\\0``."""
    escaped = (str(text).replace("\\", "\\\\").replace("\r", "").replace("\n", "\\n")
               .replace("\0", "\\\\0"))
    return graphviz.nohtml(escaped)


def _shape(shape) -> str:
    return str(tuple(int(n) for n in shape))


def _num(v: float | np.floating) -> str:
    return f"{v:.4g}"


def _plain(a):
    """An array to read: a Tensor (a .grad set to one by hand) gives its data."""
    return a.data if isinstance(a, Tensor) else a


def _values(a) -> str:
    """Numbers of a small array, or norm/min/max of a large one."""
    a = np.asarray(_plain(a))
    if a.size == 0:
        return "empty"
    if a.size <= SMALL:
        if a.ndim == 0:
            return _num(a.item()) if a.dtype.kind == "f" else str(a.item())
        text = np.array2string(a, separator=", ", max_line_width=60,
                               formatter={"float_kind": _num})
        return "\\n".join(line.strip() for line in text.splitlines())
    f = a.astype(np.float64, copy=False)
    return f"norm {_num(float(np.linalg.norm(f)))}, min {_num(float(f.min()))}, " \
           f"max {_num(float(f.max()))}"


def _norm(a) -> float:
    return float(np.linalg.norm(np.asarray(_plain(a), dtype=np.float64)))


def _bytes(n: int) -> str:
    """Decimal units, 3 significant digits: 401408 -> '401 KB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            v = n / scale
            return f"{v:.3g} {unit}" if v < 100 else f"{v:.0f} {unit}"
    return f"{n} B"


def _outputs(outputs, where: str) -> list:
    outs = [outputs] if isinstance(outputs, Tensor) else None
    if outs is None:
        try:
            outs = list(outputs)
        except TypeError:
            outs = None
    if not outs or not all(isinstance(t, Tensor) for t in outs):
        raise TypeError(f"{where}: outputs must be a tinygraph Tensor or a non-empty list of "
                        f"Tensors, got {type(outputs).__name__}")
    return outs


def _limit(max_nodes, where: str):
    if max_nodes is None:
        return None
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, (int, np.integer)) or max_nodes < 1:
        raise ValueError(f"{where}: max_nodes must be a positive integer or None, "
                         f"got {max_nodes!r}")
    return int(max_nodes)


def _check_rankdir(rankdir: str, where: str) -> None:
    if rankdir not in _RANKDIRS:
        raise ValueError(f"{where}: rankdir must be one of {', '.join(_RANKDIRS)}, "
                         f"got {rankdir!r}")


def _new_digraph(name: str, rankdir: str, title: str | None) -> Picture:
    g = Picture(name)
    g.attr(rankdir=rankdir, fontname=FONT, nodesep="0.25", ranksep="0.35")
    g.attr("node", fontname=FONT, fontsize="10")
    g.attr("edge", fontname=FONT, fontsize="9", arrowsize="0.7")
    if title:
        g.attr(label=_esc(title), labelloc="t", fontsize="14")
    return g


def _op_label(node: Function) -> str:
    """'matmul', 'linear', ...; the activation adapter shows its activation ('ReLU')."""
    label = type(node)._op_label()
    if label == "activation":
        label = node.name.removesuffix("Backward")
    return label


def _module(node: Function):
    """The label the node was recorded under (None: none), as it is: see ``_group``."""
    return getattr(node, "module", None)


def _group(label: Any) -> Any:
    """What a cluster is keyed by: a ``ScopeLabel`` by the object (each nn module has its
    own, so two layers labelled "Linear" are two boxes), any other label by its text."""
    return id(label) if isinstance(label, ScopeLabel) else ("text", str(label))


def _elision_label(hidden: int, max_nodes: int, kind: str) -> str:
    return f"... {hidden:,} more {kind}\\n(not drawn: max_nodes={max_nodes})"


# -- forward graph -------------------------------------------------------------------------
def forward_graph(outputs: Tensor | Iterable[Tensor], show_values: bool = False,
                  show_grads: bool = False, clusters: bool = True, rankdir: str = "LR",
                  max_nodes: int | None = 300, title: str | None = None) -> graphviz.Digraph:
    """The forward computation: tensors (boxes) and ops (small ellipses), inputs → op → output.

    Parameters (leaves that require grad) are light-blue rounded boxes, inputs and constants
    grey, intermediates white, outputs green with a double border. Each tensor shows its
    name (if any), shape and dtype. Intermediate tensors are not kept by the graph: their
    shape is the one their consumer saw in forward, their dtype the one their node recorded.
    A constant's dtype is shown while a node still holds its array, and left out otherwise.

    ``show_values`` / ``show_grads``: a tensor of at most 6 elements shows its numbers, a
    larger one its norm, min and max; a value the graph no longer holds says so, and a
    gradient not computed (or not kept, as for intermediates without ``retain_grad``) shows
    as "—". ``clusters`` groups the nodes each module recorded (``node.module``, set by
    ``nn``) into a labelled box: one box per module, so two layers of one label are two boxes
    and a layer called twice is one. At most ``max_nodes`` op nodes are drawn (None: all).
    """
    where = "forward_graph"
    outs = _outputs(outputs, where)
    _check_rankdir(rankdir, where)
    limit = _limit(max_nodes, where)
    all_nodes = _graph.nodes(outs)
    drawn = all_nodes if limit is None else all_nodes[:limit]
    pos = {id(nd): i for i, nd in enumerate(drawn)}
    n = len(drawn)

    # What is known about each drawn node's output tensor.
    out_tensor: list = [None] * n
    out_array: list = [None] * n
    out_shape: list = [None] * n
    is_output = [False] * n
    for t in outs:
        if t.grad_fn is not None and id(t.grad_fn) in pos:
            i = pos[id(t.grad_fn)]
            is_output[i] = True
            if out_tensor[i] is None:
                out_tensor[i], out_array[i] = t, t.data
    retained = getattr(_autograd, "_retained", None)
    if retained:
        for i, nd in enumerate(drawn):
            t = retained.get(id(nd)) if out_tensor[i] is None else None
            if t is not None and t.grad_fn is nd:
                out_tensor[i], out_array[i] = t, t.data
    const_arrays: dict = {}          # (node index, input index) -> array of a constant input
    for i, nd in enumerate(drawn):
        for a, src in zip(nd.saved_tensors, getattr(nd, "_saved_src", None) or ()):
            if not isinstance(a, np.ndarray) or src is None:
                continue
            if src == -1:
                if out_array[i] is None:
                    out_array[i] = a
                continue
            p = nd.parents[src]
            if p is None:
                const_arrays[(i, src)] = a
            elif isinstance(p, Function) and id(p) in pos and out_array[pos[id(p)]] is None:
                out_array[pos[id(p)]] = a
    for i, nd in enumerate(drawn):
        for j, p in enumerate(nd.parents):
            if isinstance(p, Function) and id(p) in pos and out_shape[pos[id(p)]] is None:
                out_shape[pos[id(p)]] = tuple(nd.input_shapes[j])
    for i in range(n):
        if out_array[i] is not None:
            out_shape[i] = out_array[i].shape

    # dtypes: exact, recorded by each node (a constant's only when its array is at hand)
    out_dtype: list = [getattr(nd, "output_dtype", None) for nd in drawn]

    # Ids in walk order; tensor nodes for leaves and constants made on first sight.
    ids = _Ids()
    records: list = []               # (nid, module or None, attrs)
    edges: list = []                 # (tail, head, attrs)
    op_id = [""] * n
    val_id = [""] * n
    leaf_nodes: dict = {}            # id(tensor) -> [nid, tensor, consumer modules, output?]
    const_nodes: dict = {}           # key -> [nid, shape, array, consumer modules]
    pending: list = []               # (kind, key) in first-sight order, for emission
    elide_id = None
    hidden = len(all_nodes) - n
    if hidden:
        elide_id = "elided"

    def leaf_entry(t: Tensor, module, shape):
        e = leaf_nodes.get(id(t))
        if e is None:
            e = leaf_nodes[id(t)] = [ids.new(), t, [], False, shape]
            pending.append(("leaf", id(t)))
        elif shape != t.shape:          # any op that saw another shape than .data has now
            e[4] = shape
        e[2].append(module)
        return e[0]

    for i in range(n):
        op_id[i] = ids.new()
        val_id[i] = ids.new()
    for i, nd in enumerate(drawn):
        mod = _module(nd)
        for j, p in enumerate(nd.parents):
            if isinstance(p, Tensor):
                tail = leaf_entry(p, mod, tuple(nd.input_shapes[j]))
            elif p is None:
                a = const_arrays.get((i, j))
                key = ("array", id(a)) if a is not None else ("slot", i, j)
                e = const_nodes.get(key)
                if e is None:
                    e = const_nodes[key] = [ids.new(), tuple(nd.input_shapes[j]), a, []]
                    pending.append(("const", key))
                e[3].append(mod)
                tail = e[0]
            elif id(p) in pos:
                tail = val_id[pos[id(p)]]
            else:
                tail = elide_id
            edges.append((tail, op_id[i], {"style": "dashed"} if tail == elide_id else {}))
        edges.append((op_id[i], val_id[i], {}))

    loose_outputs: list = []         # outputs without a drawn node: (nid, tensor, elided?)
    for t in outs:
        if t.grad_fn is None:
            if id(t) not in leaf_nodes:
                leaf_nodes[id(t)] = [ids.new(), t, [], False, t.shape]
                pending.append(("leaf", id(t)))
            leaf_nodes[id(t)][3] = True
        elif id(t.grad_fn) not in pos and all(t is not o for _, o, _ in loose_outputs):
            loose_outputs.append((ids.new(), t, True))

    g = _new_digraph("forward", rankdir, title)

    def one_cluster(mods):
        distinct = {_group(m): m for m in mods}     # (as _emit groups them)
        if len(distinct) == 1:
            (m,) = distinct.values()
            return m
        return None

    # Op nodes and their outputs.
    for i, nd in enumerate(drawn):
        mod = _module(nd)
        records.append((op_id[i], mod, dict(
            label=_esc(_op_label(nd)), shape="ellipse", style="filled", fillcolor=OP_FILL,
            fontsize="9", height="0.3", margin="0.04,0.02", **{"class": "op"})))
        t = out_tensor[i]
        head = t.name if t is not None and t.name else ("output" if is_output[i] else None)
        grad = t._grad if t is not None else None
        label = _tensor_label(head, out_shape[i], out_dtype[i], out_array[i], grad,
                              show_values, show_grads, True)
        if is_output[i]:
            attrs = dict(fillcolor=OUTPUT_FILL, style="filled,bold", peripheries="2",
                         **{"class": "tensor output"})
        else:
            attrs = dict(fillcolor=INTER_FILL, style="filled", **{"class": "tensor intermediate"})
        records.append((val_id[i], mod, dict(label=label, shape="box", **attrs)))
    # Leaves and constants, in first-sight order.
    for kind, key in pending:
        if kind == "leaf":
            nid, t, mods, as_output, shape = leaf_nodes[key]
            head = t.name or ("parameter" if t.requires_grad else "input")
            label = _tensor_label(head, shape, t.dtype, t.data, t._grad, show_values,
                                  show_grads, t.requires_grad) + _replaced(t, shape)
            if as_output:
                attrs = dict(fillcolor=OUTPUT_FILL, style="filled,bold", peripheries="2",
                             **{"class": "tensor output"})
            elif t.requires_grad:
                attrs = dict(fillcolor=PARAM_FILL, style="rounded,filled",
                             **{"class": "tensor param"})
            else:
                attrs = dict(fillcolor=INPUT_FILL, style="filled", **{"class": "tensor input"})
            records.append((nid, one_cluster(mods) if mods else None,
                            dict(label=label, shape="box", **attrs)))
        else:
            nid, shape, a, mods = const_nodes[key]
            head = "constant" if shape == () else "input"
            label = _tensor_label(head, shape, None if a is None else a.dtype, a, None,
                                  show_values, False, False)
            records.append((nid, one_cluster(mods), dict(
                label=label, shape="box", style="filled", fillcolor=INPUT_FILL,
                **{"class": "tensor input"})))
    for nid, t, _ in loose_outputs:
        label = _tensor_label(t.name or "output", t.shape, t.dtype, t.data, t._grad,
                              show_values, show_grads, True)
        records.append((nid, None, dict(label=label, shape="box", fillcolor=OUTPUT_FILL,
                                        style="filled,bold", peripheries="2",
                                        **{"class": "tensor output"})))
        edges.append((elide_id, nid, {"style": "dashed"}))
    if elide_id is not None:
        records.append((elide_id, None, dict(
            label=_elision_label(hidden, limit, "op nodes"), shape="box", style="dashed",
            **{"class": "elided"})))

    _emit(g, records, edges, clusters)
    return g


def _tensor_label(head, shape, dtype, data, grad, show_values: bool, show_grads: bool,
                  has_grad: bool) -> str:
    lines = []
    if head:
        lines.append(_esc(head))
    desc = _shape(shape) if shape is not None else "shape ?"
    if dtype is not None:
        desc += f" {dtype}"
    lines.append(desc)
    if show_values:
        lines.append(_values(data) if data is not None else "value not kept")
    if show_grads and has_grad:
        lines.append("grad: " + (DASH if grad is None else _values(grad)))
    return "\\n".join(lines)


def _replaced(t: Tensor, shape: tuple) -> str:
    """A label line for a leaf whose ``.data`` was replaced by another shape after the forward
    pass (the graph computed with ``shape``; backward will refuse it), else nothing."""
    if tuple(t.shape) == tuple(shape):
        return ""
    return "\\n" + _esc(f"now {_shape(t.shape)}: .data replaced after forward")


def _emit(g: graphviz.Digraph, records: list, edges: list, clusters: bool) -> None:
    """Nodes (grouped into clusters by ``_group`` of their label, in first-appearance
    order), then edges."""
    groups: dict = {}
    loose = []
    for nid, mod, attrs in records:
        if clusters and mod is not None:
            groups.setdefault(_group(mod), (mod, []))[1].append((nid, attrs))
        else:
            loose.append((nid, attrs))
    for nid, attrs in loose:
        g.node(nid, **attrs)
    for k, (mod, members) in enumerate(groups.values()):
        with g.subgraph(name=f"cluster_{k}") as c:
            c.attr(label=_esc(mod), labeljust="l", style="rounded,dashed", color="#7f7f7f",
                   fontsize="11", fontname=FONT)
            for nid, attrs in members:
                c.node(nid, **attrs)
    for tail, head, attrs in edges:
        g.edge(tail, head, **attrs)


# -- backward graph ------------------------------------------------------------------------
def backward_graph(outputs: Tensor | Iterable[Tensor], crosscheck: Any = None,
                   max_nodes: int | None = 300, title: str | None = None,
                   rankdir: str = "TB") -> graphviz.Digraph:
    """The backward pass: one node per backward function, arrows in gradient-flow order.

    Arrows go from the output's node toward the leaves. Each leaf that receives a gradient
    is drawn as an accumulator (blue box) with its name, shape and ``‖grad‖`` (or
    "grad: —" while it has none). Each array saved for backward is a small orange box tied
    to the nodes that hold it by a dashed line without arrowhead (an array saved by two
    nodes is drawn once). A legend gives the total saved bytes (each array once), the
    number of backward nodes, and which state the graph is in: before backward, or after
    backward with the saved arrays released (read from the nodes and the leaves' ``.grad``).

    ``crosscheck``: an object with ``param_errors`` (parameter name -> relative error of the
    hand-derived gradient against autodiff) and ``tol``; accumulators named in it are
    filled green (error <= tol) or red (error > tol, or NaN) with the error in the label.
    """
    where = "backward_graph"
    outs = _outputs(outputs, where)
    _check_rankdir(rankdir, where)
    limit = _limit(max_nodes, where)
    errors, tol, shapes = _crosscheck_of(crosscheck)
    all_nodes = _graph.nodes(outs)
    drawn = all_nodes if limit is None else all_nodes[:limit]
    pos = {id(nd): i for i, nd in enumerate(drawn)}
    hidden = len(all_nodes) - len(drawn)
    elide_id = "elided" if hidden else None

    ids = _Ids()
    records: list = []
    edges: list = []
    node_id = [ids.new() for _ in drawn]
    leaf_ids: dict = {}              # id(tensor) -> nid
    saved_ids: dict = {}             # id(array) -> nid
    tied: set = set()                # (node nid, saved nid) already joined
    checked = {"ok": 0, "bad": 0}
    seen_names: set = set()
    seen_shape: dict = {}            # id(leaf) -> the shape an op saw, one that differs first
    for nd in drawn:
        for j, p in enumerate(nd.parents):
            if isinstance(p, Tensor):
                shape = tuple(nd.input_shapes[j])
                if id(p) not in seen_shape or shape != p.shape:
                    seen_shape[id(p)] = shape

    for i, nd in enumerate(drawn):
        nid = node_id[i]
        label = _esc(nd.name)
        mod = _module(nd)
        if mod is not None:
            label += "\\n" + _esc(f"[{mod}]")
        records.append((nid, None, dict(label=label, shape="box", style="rounded,filled",
                                        fillcolor=BACKWARD_FILL, **{"class": "backward"})))
        for j, p in enumerate(nd.parents):
            if isinstance(p, Function):
                if id(p) in pos:
                    edges.append((nid, node_id[pos[id(p)]], {}))
                else:
                    edges.append((nid, elide_id, {"style": "dashed"}))
            elif isinstance(p, Tensor):
                lid = leaf_ids.get(id(p))
                if lid is None:
                    lid = leaf_ids[id(p)] = ids.new()
                    records.append((lid, None, _accumulator(p, errors, tol, shapes,
                                                            checked, seen_names,
                                                            seen_shape[id(p)])))
                edges.append((nid, lid, {}))
        held = nd.saved_tensors
        if nd.keeps_arrays_on_ctx and nd.__dict__:     # (targets, an index: as the legend)
            held = (*held, *_arrays_in(nd.__dict__.values()))
        for a in held:
            if not isinstance(a, np.ndarray):
                continue
            sid = saved_ids.get(id(a))
            if sid is None:
                sid = saved_ids[id(a)] = ids.new()
                records.append((sid, None, dict(
                    label=f"{_shape(a.shape)} {a.dtype} \u00b7 {_bytes(a.nbytes)}",
                    shape="box", style="filled", fillcolor=SAVED_FILL, color=SAVED_EDGE,
                    fontsize="8", height="0.2", margin="0.05,0.02", **{"class": "saved"})))
            if (nid, sid) not in tied:
                tied.add((nid, sid))
                edges.append((nid, sid, dict(dir="none", style="dashed", color=SAVED_EDGE)))
    if elide_id is not None:
        records.append((elide_id, None, dict(
            label=_elision_label(hidden, limit, "backward nodes"), shape="box",
            style="dashed", **{"class": "elided"})))

    # Legend: whole-graph figures, also when the picture is cut.
    n_arrays = 0
    total = 0
    for _, a in _graph.saved_arrays(outs):
        n_arrays += 1
        total += a.nbytes
    leaves = _graph.leaves(outs)
    lines = [f"backward nodes: {len(all_nodes):,}"
             + (f" ({len(drawn):,} drawn)" if hidden else ""),
             f"leaves (gradient accumulators): {len(leaves):,}",
             f"saved for backward: {_bytes(total)} in {n_arrays:,} array"
             + ("" if n_arrays == 1 else "s") + " (each array counted once)",
             "state: " + backward_state(outs, all_nodes, leaves)]
    if errors is not None:
        lines.append(f"cross-check (tol {tol:.2g}): {checked['ok']} ok, {checked['bad']} "
                     f"failed")
        missing = sorted(set(errors) - seen_names)
        if missing and not hidden:
            lines.append("not in this graph: " + _esc(", ".join(missing)))
    records.append(("legend", None, dict(
        label="\\l".join(lines) + "\\l", shape="note", style="filled", fillcolor=LEGEND_FILL,
        fontsize="9", **{"class": "legend"})))

    g = _new_digraph("backward", rankdir, title)
    _emit(g, records, edges, clusters=False)
    return g


def backward_state(outputs, nodes: list | None = None, leaves: list | None = None) -> str:
    """Which backward pass the graph of ``outputs`` shows, read from the nodes and leaves.

    "before backward" while no node is released and no leaf has ``.grad``; "after backward
    (saved arrays released)" once backward has released every node.
    """
    if nodes is None or leaves is None:
        outputs = _outputs(outputs, "backward_state")
    if nodes is None:
        nodes = _graph.nodes(outputs)
    if leaves is None:
        leaves = _graph.leaves(outputs)
    total = len(nodes)
    if total == 0:
        outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
        if any(isinstance(t, Tensor) and t.requires_grad for t in outs):
            return "no backward graph (the outputs are leaves: their gradient is the one given)"
        return "no backward graph (the outputs do not depend on tensors requiring grad)"
    if any("_failed" in getattr(nd, "__dict__", {}) for nd in nodes):
        return "after a failed backward (no .grad was changed; run the forward pass again)"
    released = sum(1 for nd in nodes if getattr(nd, "_released", False))
    with_grad = sum(1 for t in leaves if t.grad is not None)
    if released == total:
        return "after backward (saved arrays released)"
    if released:
        return f"partly after backward ({released:,} of {total:,} nodes released)"
    if with_grad == 0:
        return "before backward"
    return (f"saved arrays held, {with_grad} of {len(leaves)} leaves have .grad: after "
            f"backward(retain_graph=True), or .grad left from an earlier step")


def _crosscheck_of(report):
    """(errors by name, tol, rows): ``rows`` holds what the report's ``rows`` tell besides
    (as nn.crosscheck's do): each parameter's shape and numerical (finite-difference) error,
    and the report's ``numerical_tol``; empty when it has none."""
    if report is None:
        return None, None, {}
    errors = getattr(report, "param_errors", None)
    tol = getattr(report, "tol", None)
    if errors is None or tol is None or not hasattr(errors, "items"):
        raise TypeError("backward_graph: crosscheck must have param_errors (a dict: parameter "
                        "name -> relative error) and tol (a float), like "
                        "nn.crosscheck's report")
    by_name = {str(r.name): r for r in getattr(report, "rows", ()) if hasattr(r, "name")}
    try:
        rows = {"shapes": {n: tuple(r.shape) for n, r in by_name.items() if hasattr(r, "shape")},
                "numerical": {n: float(r.numerical_rel_error) for n, r in by_name.items()
                              if getattr(r, "numerical_rel_error", None) is not None},
                "numerical_tol": (None if getattr(report, "numerical_tol", None) is None
                                  else float(report.numerical_tol))}
        return {str(k): float(v) for k, v in errors.items()}, float(tol), rows
    except (TypeError, ValueError):
        raise TypeError(f"backward_graph: crosscheck's param_errors and tol must be numbers "
                        f"(and its rows' numerical_rel_error, if any), got tol={tol!r} and "
                        f"errors {dict(errors)!r:.80}") from None


def _accumulator(t: Tensor, errors, tol, rows: dict, checked: dict, seen_names: set,
                 shape: tuple) -> dict:
    head = f"{t.name} {_shape(shape)}" if t.name else f"leaf {_shape(shape)}"
    lines = [_esc(head) + _replaced(t, shape)]
    lines.append("grad: " + DASH if t._grad is None
                 else f"\u2016grad\u2016 = {_norm(t._grad):.3g}")
    attrs = dict(shape="box", style="filled", fillcolor=PARAM_FILL)
    cls = "accumulator"
    if errors is not None and t.name is not None and t.name in errors:
        shapes = rows.get("shapes", {})
        if t.name in shapes and shapes[t.name] != tuple(t.shape):
            # matched by name only, another model's report would colour this one
            raise ValueError(f"backward_graph: the crosscheck report's {t.name} has shape "
                             f"{shapes[t.name]} but the graph's {t.name} has shape "
                             f"{tuple(t.shape)}; the report is of another model: pass the "
                             f"crosscheck of this model's weights")
        if t.name in seen_names:
            # one entry, two leaves: it would colour both, and count one check twice
            raise ValueError(f"backward_graph: two leaves of the graph are named {t.name!r}, "
                             f"and the crosscheck report has one entry for that name, so it "
                             f"cannot tell which one it checked; give the parameters distinct "
                             f"names (model.name_parameters() names them by their place, "
                             f"e.g. layers.0.W)")
        seen_names.add(t.name)
        err = errors[t.name]
        # The finite-difference check counts too: nn.MLP's adapter calls the same
        # hand-written activation backward as the manual MLP, so a wrong derivative there
        # makes manual and autodiff agree, and only the numerical check sees it.
        num, num_tol = rows.get("numerical", {}).get(t.name), rows.get("numerical_tol")
        num_bad = num is not None and num_tol is not None and not num <= num_tol
        if err <= tol and not num_bad:               # NaN compares False: red
            attrs["fillcolor"] = OK_FILL
            lines.append(f"rel err {err:.2g}")
            checked["ok"] += 1
            cls += " ok"
        else:
            attrs.update(fillcolor=BAD_FILL, penwidth="2")
            lines.append(f"rel err {err:.2g}" + (" > tol" if not err <= tol else ""))
            if num_bad:
                lines.append(f"numerical {num:.2g} > {num_tol:g}")
            checked["bad"] += 1
            cls += " bad"
    attrs["label"] = "\\n".join(lines)
    attrs["class"] = cls
    return attrs


# -- rendering -----------------------------------------------------------------------------
# Output formats of the graphviz-pure binary (`graphviz-pure -T?`); it has no pdf or ps.
PURE_FORMATS = frozenset({"svg", "png", "jpeg", "jpg", "jpe", "dot", "gv", "xdot", "xdot1.2",
                          "xdot1.4", "canon", "json", "json0", "dot_json", "xdot_json",
                          "plain", "plain-ext"})
_HOW_TO_GET = ("pip install graphviz-pure (svg, png) or install the system Graphviz, e.g. "
               "apt-get install graphviz / brew install graphviz (svg, png, pdf)")


def _graphviz_pure() -> str | None:
    """The graphviz-pure binary of this Python environment, or on PATH."""
    names = ["graphviz-pure.exe", "graphviz-pure"] if os.name == "nt" else ["graphviz-pure"]
    folders = [Path(sys.executable).parent]
    try:
        folders.append(Path(sysconfig.get_path("scripts")))
    except (KeyError, TypeError):  # pragma: no cover - unusual interpreters
        pass
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return shutil.which("graphviz-pure")


def find_dot(system: bool = True) -> str | None:
    """Path of a ``dot``-compatible program, or None.

    The system Graphviz ``dot`` on PATH first (all formats, pdf included), then the
    ``graphviz-pure`` binary of the pip package (next to ``sys.executable``, in the
    environment's scripts folder, or on PATH; svg and png). ``system=False`` skips the
    system ``dot``.
    """
    if system:
        found = shutil.which("dot")
        if found:
            return found
    return _graphviz_pure()


def _is_pure(binary: str) -> bool:
    return Path(binary).name.lower().startswith("graphviz-pure")


#: Seconds the renderer may take to display a picture in a notebook (None: no limit; read at
#: each display). ``render`` takes its own ``timeout`` argument, 120 s by default: the layout
#: of some graphs of a few hundred nodes (one weight feeding every step of a long loop)
#: takes graphviz-pure many minutes.
_DEFAULT_TIMEOUT = 120.0
RENDER_TIMEOUT: float | None = _DEFAULT_TIMEOUT


def _pipe(source: str, fmt: str, dot: str | None = None, timeout: float | None = None,
          more_time: str = "") -> bytes:
    """Run the renderer on DOT source; the rendered bytes. ``more_time`` says how to allow
    more than ``timeout`` seconds, for the message when it runs out."""
    binary = dot or find_dot()
    if binary is None:
        raise RuntimeError(f"no Graphviz renderer found (neither 'dot' nor 'graphviz-pure'); "
                           f"{_HOW_TO_GET}")
    if _is_pure(binary) and fmt not in PURE_FORMATS:
        raise RuntimeError(f"format {fmt!r} needs the system Graphviz: graphviz-pure "
                           f"({binary}) writes svg and png but not {fmt}; install it, e.g. "
                           f"apt-get install graphviz / brew install graphviz, or render "
                           f"svg/png")
    if timeout is not None and timeout > 1e7:     # (subprocess overflows on an infinite one)
        timeout = None
    try:
        done = subprocess.run([binary, f"-T{fmt}"], input=source.encode("utf-8"),
                              capture_output=True, check=False, timeout=timeout)
    except OSError as exc:
        raise RuntimeError(f"could not run the Graphviz renderer {binary}: {exc}") from None
    except subprocess.TimeoutExpired:
        edges = source.count("->")
        system = ("; write the DOT source to a .gv path and render it with the system "
                  "Graphviz (faster)" if _is_pure(binary) else "")
        raise RuntimeError(
            f"{binary} -T{fmt} did not finish within {timeout:g} s laying out a graph of "
            f"{edges:,} edges (it was stopped); draw fewer nodes (max_nodes=100){system}; or "
            f"allow more time: {more_time}") from None
    if done.returncode != 0 or not done.stdout:
        err = done.stderr.decode("utf-8", "replace").strip()
        raise RuntimeError(f"{binary} -T{fmt} failed (exit code {done.returncode}): {err}")
    return done.stdout


#: Suffixes that name a picture format: a file name ending in another one ("lr_0.01") gets the
#: format's suffix appended instead of being taken for a format.
PICTURE_SUFFIXES = frozenset({"svg", "svgz", "png", "pdf", "gv", "dot", "xdot", "plain",
                              "jpg", "jpeg", "gif", "ps", "eps", "json", "bmp", "tif", "tiff",
                              "webp"})


_NOTEBOOK_TIME = "tinygraph.viz.RENDER_TIMEOUT = 600 (None: no limit), then display again"
_SAME_FORMAT = {"jpg": "jpeg", "jpe": "jpeg", "tif": "tiff", "dot": "gv"}


def render(digraph: graphviz.Digraph | str, path: str | os.PathLike, format: str | None = None,
           dot: str | None = None, timeout: float | None = _DEFAULT_TIMEOUT) -> Path:
    """Write the picture of ``digraph`` (or DOT source text) to ``path``; returns the path.

    ``format`` is "svg", "png", "pdf", ... (default: from the path's suffix when it names a
    picture format, else "svg"; a path without such a suffix gets the format's, so
    "lr_0.01" becomes "lr_0.01.svg"; a suffix naming another format than ``format`` is an
    error). The renderer is ``dot`` if given, else ``find_dot()``:
    the system Graphviz, or graphviz-pure (svg, png; not pdf). A ``.gv`` or ``.dot`` path
    gets the DOT source itself (no renderer needed). When no renderer can make the format,
    the DOT source is written next to ``path``, named after it (``net.pdf.gv``: never a
    ``net.gv`` of the user's own), and ``RuntimeError`` says how to get one. A renderer
    still running after ``timeout`` seconds (None: no limit) is stopped, and
    ``RuntimeError`` says what to do instead; nothing is written.
    """
    if isinstance(digraph, str):
        source = digraph
    elif isinstance(getattr(digraph, "source", None), str):
        source = digraph.source
    else:
        hint = (": draw it first, viz.render(viz.backward_graph(loss), path)"
                if isinstance(digraph, Tensor) else "")
        raise TypeError(f"render: expected a picture (viz.forward_graph(...), "
                        f"viz.backward_graph(...)) or DOT source text, got a value of type "
                        f"{type(digraph).__name__}{hint}")
    if timeout is not None and (isinstance(timeout, (bool, np.bool_))
                                or not isinstance(timeout, numbers.Real) or not timeout > 0):
        raise ValueError(f"render: timeout must be a positive number of seconds or None, got "
                         f"{timeout!r}")
    path = Path(path)
    suffix = path.suffix.lstrip(".").lower()
    fmt = (format or (suffix if suffix in PICTURE_SUFFIXES else "") or "svg").lower()
    # (jpg and jpeg, tif and tiff, gv and dot: two names of one format)
    named = _SAME_FORMAT.get(suffix, suffix) == _SAME_FORMAT.get(fmt, fmt)
    if format is not None and suffix in PICTURE_SUFFIXES and not named:
        raise ValueError(f"render: format {fmt!r} does not match the file name {path.name}; "
                         f"name it {path.stem}.{fmt}, or ask for format={suffix!r}")
    if not named:                      # no suffix, or a dot in the name ("lr_0.01")
        path = path.with_name(f"{path.name}.{fmt}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"render: folder {path.parent} does not exist")
    if fmt in ("gv", "dot"):           # the source itself, as asked: no renderer needed
        path.write_text(source, encoding="utf-8")
        return path
    binary = dot or find_dot()
    if binary is None or (_is_pure(binary) and fmt not in PURE_FORMATS):
        if fmt.split(":")[0] not in graphviz.FORMATS:     # a typo: not worth a .gv file
            raise ValueError(f"render: unknown format {fmt!r}; expected a Graphviz output "
                             f"format such as 'svg', 'png' or 'pdf'")
        gv = path.with_name(path.name + ".gv")
        gv.write_text(source, encoding="utf-8")
        if binary is None:
            raise RuntimeError(f"render: no Graphviz renderer found (neither 'dot' on PATH "
                               f"nor 'graphviz-pure'); wrote the DOT source to {gv}. To get "
                               f"pictures: {_HOW_TO_GET}")
        raise RuntimeError(f"render: {fmt!r} needs the system Graphviz 'dot' (apt-get install "
                           f"graphviz / brew install graphviz); graphviz-pure ({binary}) "
                           f"writes svg and png only. Wrote the DOT source to {gv}.")
    path.write_bytes(_pipe(source, fmt, binary, timeout,
                           "render(..., timeout=600), or timeout=None for no limit"))
    return path
