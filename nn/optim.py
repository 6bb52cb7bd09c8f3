"""Optimizers that update parameters in place: ``SGD`` (with momentum) and ``Adam``.

A step is all or nothing: every parameter is checked before any is changed, so a refused
step (a parameter still held read-only by a pending graph) leaves the parameters and the
optimizer's state exactly as they were. ``state_dict()`` / ``load_state_dict()`` carry the
state (velocities, moments, step count); ``config()`` the hyperparameters. ``nn.save(model,
path, optimizer=True)`` stores both, so training can resume bit for bit. The state has each
parameter's dtype: it follows a parameter cast after it was made at the next ``step()`` that
updates the parameter, and ``load_state_dict`` casts floating-point state to each
parameter's dtype.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, Iterable

import numpy as np

import tinygraph as tg


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_lr(where: str, lr: Any) -> float:
    if not _is_real(lr):
        raise TypeError(f"{where}: learning rate lr must be a positive finite number, got {lr!r} "
                        f"of type {type(lr).__name__}; expected e.g. lr=0.01")
    if not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{where}: learning rate lr must be a positive finite number, got "
                         f"{lr!r}; expected e.g. lr=0.01")
    return float(lr)


def _name(p: tg.Tensor) -> Any:
    """A parameter as error messages name it: its name, else its shape."""
    return p.name or tuple(p.shape)


def _check_unit_interval(where: str, name: str, value: Any) -> float:
    """A number in [0, 1)."""
    if not _is_real(value):
        raise TypeError(f"{where}: {name} must be a number in [0, 1), got {value!r} of type "
                        f"{type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{where}: {name} must be in [0, 1), got {value!r}")
    return float(value)


class Optimizer:
    """Holds the parameters; ``step()`` updates them from ``.grad``; ``zero_grad()`` clears.
    A parameter with ``requires_grad=False`` (frozen) is kept but not updated while frozen."""

    def __init__(self, params: Iterable[tg.Tensor], lr: float) -> None:
        where = type(self).__name__
        if hasattr(params, "named_parameters") and hasattr(params, "parameters"):
            raise TypeError(f"{where}: params must be the model's parameters, got the "
                            f"{type(params).__name__} itself; expected "
                            f"{where}(model.parameters(), lr=...)")
        if isinstance(params, tg.Tensor):
            params = [params]
        try:
            self.params = list(params)
        except TypeError:
            raise TypeError(f"{where}: params must be an iterable of Tensors (e.g. "
                            f"model.parameters()), got {type(params).__name__}") from None
        if not self.params:
            raise ValueError(f"{where}: got no parameters to optimize (an empty list); "
                             f"expected model.parameters() of a model with parameters")
        for i, p in enumerate(self.params):
            # (a frozen parameter, requires_grad=False, is kept and skipped while frozen, as
            # PyTorch does: model.parameters() of a partly frozen model is a valid argument)
            if not isinstance(p, tg.Tensor) or p.dtype.kind != "f":
                what = (f" of dtype {p.dtype}" if isinstance(p, tg.Tensor) else "")
                raise TypeError(f"{where}: every parameter must be a floating-point Tensor, "
                                f"got {type(p).__name__}{what} at position {i}; expected "
                                f"model.parameters()")
            if not p.is_leaf:
                raise ValueError(f"{where}: parameter {i} ({p.name or tuple(p.shape)}) is the "
                                 f"result of an op, not a leaf; expected leaf tensors such as "
                                 f"a layer's W and b")
        first: dict[int, int] = {}
        for i, p in enumerate(self.params):     # a tensor listed twice would step twice
            j = first.setdefault(id(p), i)
            if j != i:
                raise ValueError(f"{where}: parameter {p.name or tuple(p.shape)} is listed "
                                 f"twice (positions {j} and {i}); each step would update it "
                                 f"twice; expected each parameter once")
        self.lr = _check_lr(where, lr)

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None (gradients add up over ``backward()`` calls
        until then)."""
        for p in self.params:
            p.grad = None

    def _check_step(self) -> list[int]:
        """Indices of the parameters to update; raises before anything is changed."""
        where = f"{type(self).__name__}.step"
        _check_lr(where, self.lr)           # (an attribute: it may have been set since)
        todo = []
        per_parameter = self._state_lists()
        # state made before its parameter was cast (p.data = p.data.astype(...)) follows it:
        # float64 moments would run every update of a float32 model in float64, float32 ones
        # would round a float64 model's updates (as PyTorch's load_state_dict casts state)
        recast: list[tuple[list, int, np.ndarray]] = []
        for i, p in enumerate(self.params):
            g = p.grad
            if g is None or not p.requires_grad:     # no gradient, or frozen
                continue
            data = p.data
            if getattr(g, "shape", None) != data.shape:
                got = f"has shape {g.shape}" if hasattr(g, "shape") else f"is a {type(g).__name__}"
                raise ValueError(
                    f"{where}: parameter {_name(p)} has shape {data.shape} but its .grad {got} "
                    f"(its data replaced by another shape after backward, or .grad set by "
                    f"hand); set .grad = None (zero_grad()) and run backward again. Nothing "
                    f"was updated")
            for states in per_parameter:
                state = states[i]
                if state is None:
                    continue
                if state.shape != data.shape:
                    raise ValueError(
                        f"{where}: the {type(self).__name__} state of parameter {_name(p)} has "
                        f"shape {state.shape}, but the parameter now has shape {data.shape} "
                        f"(its data was replaced by another shape); make a new optimizer for "
                        f"it. Nothing was updated")
                if state.dtype != data.dtype:
                    with np.errstate(over="ignore"):
                        cast = state.astype(data.dtype)
                    if not np.all(np.isfinite(cast)):
                        raise ValueError(
                            f"{where}: the {type(self).__name__} state of parameter {_name(p)} "
                            f"holds values too large for its new dtype {data.dtype} (up to "
                            f"{np.abs(state).max():.3g}); make a new optimizer for it. "
                            f"Nothing was updated")
                    recast.append((states, i, cast))
            if not data.flags.writeable and not tg.held_by_graph(data):
                raise RuntimeError(
                    f"{where}: parameter {_name(p)} holds a read-only array (made so by its "
                    f"owner, not by a graph), which cannot be updated in place; give it a "
                    f"writable copy (p.data = p.data.copy()). Nothing was updated")
            if not data.flags.writeable:
                raise RuntimeError(
                    f"{where}: parameter {_name(p)} is still held read-only by a graph that "
                    f"has not been backpropagated (or was kept with retain_graph=True); "
                    f"updating it now would make that graph's gradients wrong. Run backward() "
                    f"first, or drop the graph (del loss; also a kept traceback holds one: an "
                    f"exception variable, or sys.last_traceback in a notebook after an error). "
                    f"Nothing was updated")
            todo.append(i)
        for states, i, cast in recast:          # (after every check: all or nothing)
            states[i] = cast
        return todo

    def step(self) -> None:  # pragma: no cover - abstract
        """Update every parameter that has a gradient, in place, from its ``.grad``."""
        raise NotImplementedError

    def _state_lists(self) -> tuple[list, ...]:
        """The per-parameter state: lists holding one array (or None) per parameter."""
        return ()

    def config(self) -> dict:
        """The hyperparameters, as plain JSON-able values (numpy numbers set by hand, such as
        ``opt.lr = np.float32(0.01)``, are given as Python floats)."""
        return {"lr": float(self.lr)}

    def state_dict(self) -> dict:
        """The optimizer's state (copies of its per-parameter arrays), as ``load_state_dict``
        takes it."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Load a state made by ``state_dict``, checked (one array per parameter, of its
        shape) and cast to each parameter's dtype."""
        pass

    def _check_state_arrays(self, name: str, arrays: Any, allow_none: bool = False,
                            nonnegative: bool = False) -> list:
        """One array per parameter, each of its parameter's shape, copied into its dtype."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(arrays, (list, tuple)) or len(arrays) != len(self.params):
            got = len(arrays) if isinstance(arrays, (list, tuple)) else type(arrays).__name__
            raise ValueError(f"{where}: {name} must hold one entry per parameter, got {got}; "
                             f"expected {len(self.params)}")
        out: list[np.ndarray | None] = []
        for i, (a, p) in enumerate(zip(arrays, self.params)):
            if a is None and allow_none:
                out.append(None)
                continue
            try:
                a = np.asarray(a)
            except (TypeError, ValueError) as exc:        # ragged nested lists
                raise ValueError(f"{where}: {name}[{i}] is not an array of numbers "
                                 f"({str(exc).split('. ')[0]}); expected shape {p.shape} and "
                                 f"dtype {p.dtype}") from None
            if a.shape != p.shape or a.dtype.kind != "f":
                raise ValueError(f"{where}: {name}[{i}] has shape {a.shape} and dtype {a.dtype}; "
                                 f"expected shape {p.shape} and a floating-point dtype "
                                 f"(parameter {p.name or i}, {p.dtype})")
            # another floating dtype is cast to the parameter's, as Module's load_state_dict
            # casts weights: a float64 state loads into a float32 model
            with np.errstate(over="ignore"):
                cast = a.astype(p.dtype)    # (a copy, also when the dtype is the same)
            if not np.all(np.isfinite(cast)) or (nonnegative and np.any(cast < 0)):
                if np.all(np.isfinite(cast)):
                    what = "negative values"
                elif np.all(np.isfinite(a)):
                    what = f"values too large for {p.dtype} (up to {np.abs(a).max():.3g})"
                else:
                    what = "NaN or infinite values"
                raise ValueError(f"{where}: {name}[{i}] holds {what}; expected the finite "
                                 f"{'non-negative ' if nonnegative else ''}state of an optimizer "
                                 f"(the next step would turn the weights into NaN)")
            out.append(cast)
        return out


class SGD(Optimizer):
    """θ ← θ - α g, or with momentum μ: v ← μ v + g, θ ← θ - α v."""

    def __init__(self, params: Iterable[tg.Tensor], lr: float = 0.01, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = _check_unit_interval("SGD", "momentum", momentum)
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def step(self) -> None:
        todo = self._check_step()
        lr = float(self.lr)     # (a numpy float64 set by hand would make α g float64)
        for i in todo:
            p = self.params[i]
            data = p.data
            g: Any = p.grad                 # (not None: _check_step saw to it)
            if self.momentum:
                v = self.velocity[i]
                if v is None:
                    v = self.velocity[i] = g.copy()
                else:
                    v *= self.momentum
                    v += g
                g = v
            # α g in a temporary: a scratch buffer kept per parameter was measured slower
            # inside a step (~6 us at batch 1; docs/performance.md, section 7) and held a
            # second copy of the parameters' size between steps
            data -= lr * g

    def _state_lists(self) -> tuple[list, ...]:
        return (self.velocity,)

    def config(self) -> dict:
        return {"lr": float(self.lr), "momentum": float(self.momentum)}

    def state_dict(self) -> dict:
        return {"velocity": [None if v is None else v.copy() for v in self.velocity]}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or "velocity" not in state:
            raise ValueError(f"SGD.load_state_dict: expected a dict with key 'velocity', got "
                             f"{type(state).__name__} with keys "
                             f"{sorted(state) if isinstance(state, dict) else None}")
        self.velocity = self._check_state_arrays("velocity", state["velocity"], allow_none=True)


class Adam(Optimizer):
    """Adam: m ← β1 m + (1-β1) g, v ← β2 v + (1-β2) g², θ ← θ - α m̂ / (√v̂ + ε).

    The bias corrections m̂ = m/(1-β1ᵗ), v̂ = v/(1-β2ᵗ) use each parameter's own count of
    updates t, as PyTorch does: a parameter without a gradient in a step is not updated and
    its count does not advance, so its first real update is a full one (~lr) however late
    it comes. ``t`` counts the calls of ``step()``, ``steps[i]`` the updates of parameter i.
    """

    def __init__(self, params: Iterable[tg.Tensor], lr: float = 1e-3,
                 betas: tuple = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair (beta1, beta2) of numbers in [0, 1), "
                             f"got {betas!r}; expected e.g. betas=(0.9, 0.999)")
        b1 = _check_unit_interval("Adam", "betas[0]", betas[0])
        b2 = _check_unit_interval("Adam", "betas[1]", betas[1])
        if not _is_real(eps):
            raise TypeError(f"Adam: eps must be a positive finite number, got {eps!r} of type "
                            f"{type(eps).__name__}; expected e.g. eps=1e-8")
        if not (math.isfinite(eps) and eps > 0):
            raise ValueError(f"Adam: eps must be a positive finite number, got {eps!r}; "
                             f"expected e.g. eps=1e-8")
        self.betas, self.eps = (b1, b2), float(eps)
        self.t = 0
        self.steps = [0] * len(self.params)
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        todo = self._check_step()
        self.t += 1
        # (Python floats, as SGD's: numpy numbers set by hand compute as the file's floats)
        b1, b2 = float(self.betas[0]), float(self.betas[1])
        lr, eps = float(self.lr), float(self.eps)
        for i in todo:
            t = self.steps[i] = self.steps[i] + 1
            correction1 = 1 - b1 ** t
            correction2 = 1 - b2 ** t
            step_size = lr * math.sqrt(correction2) / correction1
            p, m, v = self.params[i], self.m[i], self.v[i]
            data = p.data
            g: Any = p.grad                 # (not None: _check_step saw to it)
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            data -= step_size * m / (np.sqrt(v) + eps * math.sqrt(correction2))

    def _state_lists(self) -> tuple[list, ...]:
        return (self.m, self.v)

    def config(self) -> dict:
        return {"lr": float(self.lr), "betas": [float(b) for b in self.betas],
                "eps": float(self.eps)}

    def state_dict(self) -> dict:
        return {"t": self.t, "steps": list(self.steps), "m": [a.copy() for a in self.m],
                "v": [a.copy() for a in self.v]}

    def load_state_dict(self, state: dict) -> None:
        if not isinstance(state, dict) or not {"t", "m", "v"} <= set(state):
            raise ValueError(f"Adam.load_state_dict: expected a dict with keys 't', 'm', 'v' "
                             f"(and optionally 'steps'), got "
                             f"{type(state).__name__} with keys "
                             f"{sorted(state) if isinstance(state, dict) else None}")
        t = state["t"]
        if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral) or t < 0:
            raise ValueError(f"Adam.load_state_dict: t (the step count) must be an integer >= 0, "
                             f"got {t!r}")
        n = len(self.params)
        # (a state without "steps", from before per-parameter counts: every parameter was
        # updated at every step, which is what the old single count assumed)
        steps = state.get("steps", [t] * n)
        if (not isinstance(steps, (list, tuple)) or len(steps) != n
                or not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_))
                           and 0 <= int(s) <= int(t) for s in steps)):
            raise ValueError(f"Adam.load_state_dict: steps (each parameter's update count) must "
                             f"be a list of {n} integers from 0 to t={t}, got {steps!r}")
        m = self._check_state_arrays("m", state["m"])
        v = self._check_state_arrays("v", state["v"], nonnegative=True)
        self.t, self.steps, self.m, self.v = int(t), [int(s) for s in steps], m, v
