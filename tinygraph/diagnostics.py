"""Why is this gradient None or zero? ``grad_report`` answers, for every parameter.

    >>> report = tinygraph.diagnostics.grad_report(lambda: model.loss(X, y),
    ...                                            dict(model.named_parameters()))
    >>> print(report)            # every parameter whose gradient is None or all zeros, and why

A parameter's gradient is None or all zeros for one of these reasons (``GradEntry.reason``
starts with the key in brackets):

- ``[not connected]`` the loss does not depend on it at all;
- ``[cut off]`` the loss depends on its values, but through ``detach()``, ``.data`` or an
  op run under ``no_grad()``, so no gradient can flow back to it;
- ``[unknown]`` one of the two above, but the loss is NaN or infinite, so nudging the
  parameter cannot tell which;
- ``[dead relu]`` every path from it to the loss goes through a ReLU whose units are all
  dead on this batch (output 0 for every sample), so the gradient arriving there is 0;
- ``[zero]`` the gradient that reached it is exactly zero for another reason (multiplied by
  0, a flat op, a zero upstream gradient);
- ``[no backward]`` it is connected but has no ``.grad``: backward has not run since the
  gradients were cleared.

A gradient that is there but tiny next to the others is reported too (status
``"vanishing"``): ``[vanishing]`` its norm is below ``VANISHING_RATIO`` (1e-6) times the
largest parameter gradient's norm, so an update moves it by nothing next to the others
(saturated sigmoid or tanh layers in a deep network do this).

Give ``grad_report`` a function that computes the loss (it is called once with recording
on, and, to tell "cut off" from "not connected", once per unconnected parameter under
``no_grad()`` with that parameter nudged; it must be deterministic) and it finds all of
these itself, without touching any ``.grad``. Given a loss tensor instead, it reads the
parameters' ``.grad`` after your ``backward()``: the structure of the graph survives
backward, but the arrays ReLUs saved do not, unless you ran
``backward(retain_graph=True)``; so a function gives the more precise answer.

If the loss depends on none of the parameters, ``grad_report`` raises ``BackwardError``
with the reason for each, as backward would have nothing to compute.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .autograd import grad as _grad
from .errors import BackwardError
from .function import Function
from .grad_mode import enable_grad, no_grad
from .tensor import Tensor

__all__ = ["GradEntry", "GradReport", "grad_report", "REASONS", "VANISHING_RATIO"]

#: The reason keys, in the order they are looked for.
REASONS = ("not connected", "cut off", "unknown", "dead relu", "zero", "no backward",
           "not finite", "vanishing")
#: A gradient whose norm is below this fraction of the largest parameter gradient's norm is
#: reported as vanishing (the first layers of a 20-layer sigmoid network: ~1e-10)
VANISHING_RATIO = 1e-6


@dataclass
class GradEntry:
    """One parameter: ``status`` is ``"ok"``, ``"none"`` (no gradient), ``"zero"`` (all
    zeros), ``"nonfinite"`` (NaN or Inf inside) or ``"vanishing"`` (tiny next to the
    others); ``reason`` says why for all but the first (see the module docstring)."""
    name: str
    shape: tuple
    status: str
    reason: str | None = None
    norm: float | None = None

    @property
    def key(self) -> str | None:
        """The reason's key: one of ``REASONS``, or None for a healthy gradient."""
        if self.reason is None:
            return None
        return self.reason[1:self.reason.index("]")]

    def __str__(self) -> str:
        if self.status == "ok":
            return f"{self.name} {self.shape}: ok (norm {self.norm:.4g})"
        what = {"none": "no gradient", "zero": "gradient all zeros",
                "nonfinite": "gradient not finite",
                "vanishing": "gradient vanishing"}[self.status]
        return f"{self.name} {self.shape}: {what}: {self.reason}"


@dataclass
class GradReport:
    """The gradient of every parameter after one backward pass, with the reasons."""
    entries: list = field(default_factory=list)
    loss: float | None = None

    @property
    def problems(self) -> list:
        """The entries whose gradient is None, all zeros, not finite, or vanishing."""
        return [e for e in self.entries if e.status != "ok"]

    @property
    def ok(self) -> bool:
        """True when no entry has a problem (a gradient that is None, all zeros, not finite
        or vanishing)."""
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def __getitem__(self, name: str) -> GradEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(f"GradReport: no parameter named {name!r}; the parameters are "
                       f"{[e.name for e in self.entries]}")

    def __str__(self) -> str:
        head = (f"gradient report (loss {self.loss:.6g}): " if self.loss is not None
                else "gradient report: ")
        bad = self.problems
        if not bad:
            return head + f"all {len(self.entries)} parameters have a nonzero gradient"
        lines = [head + f"{len(bad)} of {len(self.entries)} parameters have no gradient, an "
                        f"all-zero one, one with NaN or Inf, or a vanishing one"]
        lines += [f"  {e}" for e in bad]
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------

def _named(params: Any, loss: Tensor | None) -> list[tuple[str, Tensor]]:
    if params is None:
        if loss is None:
            raise TypeError("grad_report: params=None needs a loss tensor")
        from .graph import leaves
        found = leaves(loss)
        return [(p.name or f"leaf {i}", p) for i, p in enumerate(found)]
    if isinstance(params, Tensor):
        params = [params]
    if isinstance(params, Mapping):
        items = list(params.items())
    else:
        try:
            items = [(p.name or f"param {i}", p) for i, p in enumerate(params)]
        except (TypeError, AttributeError):
            raise TypeError(f"grad_report: params must be Tensors (a list or a dict name -> "
                            f"Tensor), got {type(params).__name__}") from None
    for name, p in items:
        if not isinstance(p, Tensor) or not p.requires_grad or not p.is_leaf:
            raise TypeError(f"grad_report: parameter {name!r} must be a leaf Tensor with "
                            f"requires_grad=True, got {type(p).__name__}")
    return items


def _is_relu(node: Function) -> bool:
    """tinygraph's relu, or nn's activation node around a ReLU object."""
    if getattr(type(node), "op_name", None) == "relu":
        return True
    act = getattr(node, "activation", None)
    return act is not None and getattr(act, "name", None) == "relu"


def _relu_alive(node: Function) -> np.ndarray | None:
    """For a ReLU node (``_is_relu``), a boolean array 'unit passes gradient' (its output
    shape), if the arrays it saved are still there, or, for nn's activation node after
    backward released them, if this call's cache is still alive (``node.cache_ref``, a weak
    reference: the activation object holds it until a later forward pass, an evaluation
    batch, replaces it); None otherwise."""
    saved = node.saved_tensors
    cache = saved[0] if saved else None
    if not isinstance(cache, np.ndarray):
        ref = getattr(node, "cache_ref", None)  # alive: this call's array, still held
        cache = ref() if ref is not None else None
        if cache is None:
            return None
    shape = node.input_shape(0) if getattr(node, "input_shapes", None) else None
    if shape is not None and cache.shape != shape:
        return None
    return cache > 0


def _describe_node(node: Function) -> str:
    label = getattr(node, "module", None)
    text = f"{node.name}" + (f" (module {label!r})" if label else "")
    trace = getattr(node, "_trace", None)
    if trace:
        text += f", created at {trace}"
    return text


def _walk(roots: list, blocked: set) -> tuple[set, dict]:
    """Leaf ids reached from ``roots`` without entering nodes in ``blocked``; and for each
    node reached, itself (ids)."""
    leaves: set = set()
    seen: dict = {}
    stack = [r for r in roots if id(r) not in blocked]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen[id(node)] = node
        for p in node.parents:
            if isinstance(p, Function):
                if id(p) not in seen and id(p) not in blocked:
                    stack.append(p)
            elif isinstance(p, Tensor):
                leaves.add(id(p))
    return leaves, seen


def _ancestors_leaves(node: Function) -> set:
    leaves, _ = _walk([node], set())
    return leaves


def _saved_constants(nodes: Iterable[Function]) -> set:
    """ids of arrays nodes saved that came from constant inputs (detached data, ...)."""
    out = set()
    for node in nodes:
        for a in node.saved_tensors or ():
            if isinstance(a, np.ndarray):
                out.add(id(a))
                if a.base is not None:
                    out.add(id(a.base))
    return out


def grad_report(loss: Tensor | Callable[[], Tensor], params: Any = None) -> GradReport:
    """Report every parameter whose gradient is None or all zeros, with the reason.

    ``loss`` is a scalar loss Tensor (after your ``backward()``), or better a function
    that computes it (see the module docstring). ``params`` is a dict name → Tensor
    (e.g. ``dict(model.named_parameters())``), a list of Tensors (named by their
    ``name``), or None for the leaves the loss depends on.

    Raises ``BackwardError`` when the loss depends on none of the parameters.
    """
    # The analysis runs in its own frame, so that no graph (and no array it holds
    # read-only) outlives it, not even in the traceback of the error below.
    entries, value, n_unconnected = _analyze(loss, params)
    _mark_vanishing(entries)
    report = GradReport(entries, value)
    if entries and n_unconnected == len(entries):
        raise BackwardError(
            f"grad_report: the loss depends on none of the {len(entries)} parameters, so "
            f"backward has nothing to compute; " +
            "; ".join(f"{e.name}: {e.reason}" for e in entries[:5]) +
            ("; ..." if len(entries) > 5 else ""))
    return report


def _mark_vanishing(entries: list) -> None:
    """Healthy gradients below ``VANISHING_RATIO`` of the largest one become "vanishing"."""
    healthy = [e for e in entries if e.status == "ok"]
    if len(healthy) < 2:
        return
    top = max(healthy, key=lambda e: e.norm)
    for e in healthy:
        if e.norm < VANISHING_RATIO * top.norm:
            e.status = "vanishing"
            e.reason = (f"[vanishing] its norm {e.norm:.3g} is {e.norm / top.norm:.1e} of the "
                        f"largest parameter gradient's ({top.name}, {top.norm:.3g}): an update "
                        f"moves it by nothing next to the others. Saturated sigmoid or tanh "
                        f"layers in a deep network do this: try ReLU, He or Xavier "
                        f"initialization, or fewer layers")


def _analyze(loss: Any, params: Any) -> tuple[list, float, int]:
    fn = loss if callable(loss) and not isinstance(loss, Tensor) else None
    if fn is not None:
        with enable_grad():
            loss = fn()
    if not isinstance(loss, Tensor):
        raise TypeError(f"grad_report: loss must be a scalar Tensor or a function returning "
                        f"one, got {type(loss).__name__}")
    if loss.size != 1:
        raise ValueError(f"grad_report: the loss must be a scalar, got shape {loss.shape}; "
                         f"reduce it first, e.g. loss.sum()")
    named = _named(params, loss)
    value = float(loss.data.reshape(-1)[0])
    roots = [loss.grad_fn] if loss.grad_fn is not None else []
    reached, nodes = _walk(roots, set())
    if loss.requires_grad and loss.grad_fn is None:
        reached.add(id(loss))                        # the loss is itself a leaf

    # gradients: computed here for a function, read from .grad for a tensor
    connected = [(n, p) for n, p in named if id(p) in reached]
    grads: dict = {}
    if fn is not None and connected:
        found = _grad(loss, [p for _, p in connected], retain_graph=True)
        grads = {id(p): g for (_, p), g in zip(connected, found)}
    elif fn is None:
        grads = {id(p): p.grad for _, p in named}

    # ReLUs dead on the whole batch block every path through them
    dead = {}
    unchecked = False                   # a ReLU whose saved arrays are gone (after backward)
    for node in nodes.values():
        if not _is_relu(node):
            continue
        alive = _relu_alive(node)
        if alive is None:
            unchecked = True
        elif not alive.any():
            dead[id(node)] = node
    live_leaves, _ = _walk(roots, set(dead)) if dead else (reached, nodes)
    behind: dict = {}                   # id(dead node) -> the leaves behind it, walked once
    constants = _saved_constants(nodes.values())

    entries = []
    unconnected = []
    by_entry: dict = {}                 # id(entry) -> its parameter (names may repeat: "W")
    for name, p in named:
        shape = tuple(p.shape)
        if id(p) not in reached:
            entries.append(GradEntry(name, shape, "none"))
            unconnected.append(entries[-1])
            by_entry[id(entries[-1])] = p
            if id(p.data) in constants:
                entries[-1].reason = ("[cut off] the loss uses its values as a constant (through "
                                      "detach() or .data), so no gradient flows back to it; use "
                                      "the tensor itself")
            continue
        g = grads.get(id(p))
        if g is None:
            entries.append(GradEntry(name, shape, "none", "[no backward] it is connected to the "
                                     "loss but has no .grad: run loss.backward() first (or do "
                                     "not clear the gradients before the report)"))
            continue
        g = np.asarray(g.data if isinstance(g, Tensor) else g)
        norm = float(np.sqrt(np.sum(np.square(g, dtype=np.float64))))
        finite = np.isfinite(g)
        if not finite.all():        # (NaN != 0 is true: it was reported "ok")
            n_nan = int(np.isnan(g).sum())
            entries.append(GradEntry(
                name, shape, "nonfinite",
                f"[not finite] {n_nan} NaN and {int(g.size - finite.sum()) - n_nan} inf in the "
                f"gradient: run the step inside tg.detect_anomaly() to find the op that made "
                f"them (often an input or a weight that is already NaN or inf, or a log of 0)",
                norm))
            continue
        if np.any(g != 0):
            entries.append(GradEntry(name, shape, "ok", None, norm))
            continue
        if id(p) not in live_leaves:
            for k, n in dead.items():
                if k not in behind:
                    behind[k] = _ancestors_leaves(n)
            blockers = [n for k, n in dead.items() if id(p) in behind[k]]
            where = "; ".join(_describe_node(n) for n in blockers[:3]) or "a ReLU"
            reason = (f"[dead relu] every path from it to the loss goes through a ReLU whose "
                      f"units are all dead on this batch (output 0 for every sample): {where}. "
                      f"Lower the learning rate, use LeakyReLU, or check the input scaling")
        else:
            reason = ("[zero] the gradient that reached it is exactly 0 on this batch (it is "
                      "multiplied by 0, goes through a flat op, or the loss is at a stationary "
                      "point)")
            if dead:
                reason += ("; the graph has ReLUs dead on this batch, and a layer fed only by a "
                           "dead ReLU gets a zero weight gradient: " +
                           "; ".join(_describe_node(n) for n in list(dead.values())[:3]))
            elif fn is None and unchecked:
                reason += ("; dead ReLUs cannot be checked after backward released the graph: "
                           "pass a function, or call backward(retain_graph=True)")
        entries.append(GradEntry(name, shape, "zero", reason, 0.0))

    # unconnected: tell "cut off" (the loss changes with it) from "not connected"
    for e in unconnected:
        if e.reason is not None:
            continue
        p = by_entry[id(e)]
        if fn is None:
            e.reason = ("[not connected] the loss does not depend on it through the graph: it "
                        "is not used, or only through detach(), .data or no_grad() (pass a "
                        "function instead of a loss tensor to tell which)")
        elif (changes := _changes_loss(fn, p, value)) is None:
            e.reason = ("[unknown] the loss is NaN or infinite, so nudging the parameter cannot "
                        "show whether the loss depends on it; find where the NaN or inf comes "
                        "from first (run the step inside tg.detect_anomaly())")
        elif changes:
            e.reason = ("[cut off] the loss depends on its values, but through detach(), .data "
                        "or an op run under no_grad(), so no gradient can flow back to it; "
                        "compute the loss from the tensor itself, outside no_grad()")
        else:
            e.reason = ("[not connected] the loss does not depend on it through the graph, and "
                        "did not change when it was nudged: it is not used to compute the loss, "
                        "or only through a comparison or threshold that a small change does not "
                        "cross (t.data > 0), which has no gradient anyway")
    return entries, value, len(unconnected)


def _changes_loss(fn: Callable[[], Tensor], p: Tensor, value: float) -> bool | None:
    """Does the loss change when ``p`` is nudged? (Run under no_grad; ``p`` is restored.)
    None when the loss is not finite (NaN != NaN: every parameter would seem to change it);
    a ``ValueError`` when ``fn`` gives another value than ``value`` at the same point."""
    original = p.data
    scale = 1e-3 * (float(np.max(np.abs(original))) + 1.0) if original.size else 1.0
    pattern = np.linspace(1.0, 2.0, num=max(original.size, 1))[:original.size]
    nudged = (original + scale * pattern.reshape(original.shape)).astype(original.dtype)
    p.data = nudged
    try:
        with no_grad():
            out = fn()
        changed = float(np.asarray(out.data if isinstance(out, Tensor) else out).reshape(-1)[0])
    finally:
        p.data = original
    with no_grad():
        base = fn()
    base_value = float(np.asarray(base.data if isinstance(base, Tensor) else base).reshape(-1)[0])
    if not (math.isfinite(base_value) and math.isfinite(changed)):
        return None
    if not math.isclose(base_value, value, rel_tol=1e-12, abs_tol=1e-300):
        raise ValueError(f"grad_report: fn gave two different losses for the same parameters "
                         f"({value!r} and then {base_value!r}): it is not deterministic (random "
                         f"numbers drawn inside it, or state it changes), so nudging a parameter "
                         f"cannot tell whether the loss depends on it; draw the random numbers "
                         f"once outside fn, or seed a generator inside it")
    return changed != base_value
