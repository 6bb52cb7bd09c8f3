"""Reading a recorded graph: its nodes in a fixed order, and what they saved.

The walk is iterative (no recursion limit) and deterministic: nodes come in the order a
depth-first search from the outputs first reaches them, following each node's inputs in
order, so the same graph always gives the same sequence (and the same pictures).
"""
from __future__ import annotations

from typing import Iterable, Iterator

import numpy as np

from .function import Function, _arrays_in
from .tensor import Tensor


def _roots(outputs) -> list:
    outs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    return [o.grad_fn for o in outs if isinstance(o, Tensor) and o.grad_fn is not None]


def nodes(outputs: Tensor | Iterable[Tensor]) -> list[Function]:
    """Every backward node reachable from ``outputs``, each once, outputs first."""
    order: list[Function] = []
    seen: set[int] = set()
    stack = list(reversed(_roots(outputs)))
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        order.append(node)
        for p in reversed(node.parents):
            if isinstance(p, Function) and id(p) not in seen:
                stack.append(p)
    return order


def leaves(outputs: Tensor | Iterable[Tensor]) -> list[Tensor]:
    """The leaf tensors that require grad and that ``outputs`` depend on, in walk order."""
    found: list[Tensor] = []
    seen: set[int] = set()
    for node in nodes(outputs):
        for p in node.parents:
            if isinstance(p, Tensor) and id(p) not in seen:
                seen.add(id(p))
                found.append(p)
    return found


def saved_arrays(outputs: Tensor | Iterable[Tensor]) -> Iterator[tuple[Function, np.ndarray]]:
    """(node, array) for every array a node holds for backward: saved with
    ``save_for_backward``, or kept on ``ctx`` by an op that does so (``keeps_arrays_on_ctx``:
    getitem's index, the fused losses' targets); an array held twice comes once."""
    seen: set[int] = set()
    for node in nodes(outputs):
        held = node.saved_tensors
        if node.keeps_arrays_on_ctx and node.__dict__:
            held = (*held, *_arrays_in(node.__dict__.values()))
        for a in held:
            if isinstance(a, np.ndarray) and id(a) not in seen:
                seen.add(id(a))
                yield node, a


def saved_bytes(outputs: Tensor | Iterable[Tensor], include_parameters: bool = True) -> int:
    """Bytes held for backward by the graph of ``outputs``, counting each array once.

    With ``include_parameters=False``, arrays that are a leaf's own data (parameters, which
    live in memory anyway) are left out: what remains is the memory the graph adds.
    """
    skip = set() if include_parameters else {id(t._data) for t in leaves(outputs)}
    return int(sum(a.nbytes for _, a in saved_arrays(outputs) if id(a) not in skip))
