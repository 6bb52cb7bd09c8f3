"""Optimizers that update parameters in place: ``SGD`` (with momentum) and ``Adam``."""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np

import tinygraph as tg


def _check_lr(where: str, lr: float) -> float:
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.floating)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"{where}: learning rate must be a positive finite number, got {lr!r}")
    return float(lr)


class Optimizer:
    """Holds the parameters; ``step()`` updates them from ``.grad``; ``zero_grad()`` clears."""

    def __init__(self, params: Iterable[tg.Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got no parameters to optimize")
        for p in self.params:
            if not isinstance(p, tg.Tensor) or not p.requires_grad:
                raise TypeError(f"{type(self).__name__}: every parameter must be a Tensor with "
                                f"requires_grad=True, got {p!r}")
        self.lr = _check_lr(type(self).__name__, lr)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def _writable(self, p: tg.Tensor) -> np.ndarray:
        if not p.data.flags.writeable:
            raise RuntimeError(
                f"{type(self).__name__}.step: parameter {p.name or tuple(p.shape)} is still held "
                f"read-only by a graph that has not been backpropagated (or was kept with "
                f"retain_graph=True); updating it now would make that graph's gradients wrong. "
                f"Run backward() first, or drop the graph")
        return p.data

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class SGD(Optimizer):
    """θ ← θ - α g, or with momentum μ: v ← μ v + g, θ ← θ - α v."""

    def __init__(self, params: Iterable[tg.Tensor], lr: float = 0.01, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"SGD: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.velocity = [None] * len(self.params)

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            data = self._writable(p)
            g = p.grad
            if self.momentum:
                v = self.velocity[i]
                if v is None:
                    v = self.velocity[i] = g.copy()
                else:
                    v *= self.momentum
                    v += g
                g = v
            data -= self.lr * g

    def state_dict(self) -> dict:
        return {"velocity": [None if v is None else v.copy() for v in self.velocity]}

    def load_state_dict(self, state: dict) -> None:
        self.velocity = [None if v is None else np.array(v) for v in state["velocity"]]


class Adam(Optimizer):
    """Adam: m ← β1 m + (1-β1) g, v ← β2 v + (1-β2) g², θ ← θ - α m̂ / (√v̂ + ε)."""

    def __init__(self, params: Iterable[tg.Tensor], lr: float = 1e-3,
                 betas: tuple = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"Adam: betas must be in [0, 1), got {betas!r}")
        if not eps > 0:
            raise ValueError(f"Adam: eps must be positive, got {eps!r}")
        self.betas, self.eps = (float(b1), float(b2)), float(eps)
        self.t = 0
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]

    def step(self) -> None:
        self.t += 1
        b1, b2 = self.betas
        correction1 = 1 - b1 ** self.t
        correction2 = 1 - b2 ** self.t
        step_size = self.lr * math.sqrt(correction2) / correction1
        for p, m, v in zip(self.params, self.m, self.v):
            if p.grad is None:
                continue
            data = self._writable(p)
            g = p.grad
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * (g * g)
            data -= step_size * m / (np.sqrt(v) + self.eps * math.sqrt(correction2))

    def state_dict(self) -> dict:
        return {"t": self.t, "m": [a.copy() for a in self.m], "v": [a.copy() for a in self.v]}

    def load_state_dict(self, state: dict) -> None:
        self.t = int(state["t"])
        self.m = [np.array(a) for a in state["m"]]
        self.v = [np.array(a) for a in state["v"]]
