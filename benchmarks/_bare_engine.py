"""A reference for overhead.py: a minimal reverse-mode engine on numpy, not part of tinygraph.

One object per value: its array, its parents, and one closure per parent mapping the
value's gradient to that parent's share. ``backward`` orders the graph (iterative
depth-first post-order, so a long chain does not recurse) and runs the closures from the
output back, summing shares on fan-out. Nothing else: no separate node objects, no
needs-grad flags, no broadcasting, no protection of saved arrays, no checks, no second
derivatives. It shows roughly what the per-node bookkeeping of a general graph engine in
Python costs at the least (a tape that records ops in order, with no graph to sort, could be
a little cheaper still); what tinygraph pays above it buys those features
(docs/performance.md, section 1).
"""
from __future__ import annotations

import numpy as np


class Value:
    __slots__ = ("data", "grad", "parents", "shares")

    def __init__(self, data, parents=(), shares=()):
        self.data = data
        self.grad = None
        self.parents = parents
        self.shares = shares          # shares[i](g) = this value's gradient share for parents[i]

    # other: a Value of the same shape, or a constant (no broadcasting is handled)
    def __mul__(self, other) -> "Value":
        if isinstance(other, Value):
            a, b = self.data, other.data
            return Value(a * b, (self, other), (lambda g: g * b, lambda g: g * a))
        return Value(self.data * other, (self,), (lambda g: g * other,))

    def __add__(self, other) -> "Value":
        if isinstance(other, Value):
            return Value(self.data + other.data, (self, other), (lambda g: g, lambda g: g))
        return Value(self.data + other, (self,), (lambda g: g,))

    def tanh(self) -> "Value":
        y = np.tanh(self.data)
        return Value(y, (self,), (lambda g: g * (1 - y * y),))

    def backward(self, grad: np.ndarray) -> None:
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            v, expanded = stack.pop()
            if expanded:
                order.append(v)
            elif id(v) not in seen:
                seen.add(id(v))
                stack.append((v, True))
                stack.extend((p, False) for p in v.parents)
        self.grad = grad
        for v in reversed(order):            # outputs first: every consumer runs before its input
            for p, share in zip(v.parents, v.shares):
                g = share(v.grad)
                p.grad = g if p.grad is None else p.grad + g
