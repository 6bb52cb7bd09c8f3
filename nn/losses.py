"""Losses as graph nodes, with the spec's scaling (mean over the n samples of a batch)."""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg

from .module import Module


def _labels_or_onehot(target: np.ndarray, n: int, k: int, where: str) -> np.ndarray:
    """Integer labels (n,) or one-hot targets (n, k), checked; returns one-hot (n, k)."""
    t = np.asarray(target)
    if t.ndim == 1:
        if t.shape[0] != n:
            raise ValueError(f"{where}: {t.shape[0]} labels for {n} samples")
        if t.dtype.kind == "f":
            if not np.all(np.isfinite(t)) or not np.all(t == np.round(t)):
                raise TypeError(f"{where}: float labels must be whole numbers (class indices); "
                                f"got values such as {t[np.argmax(t != np.round(t))]!r}")
            t = t.astype(np.int64)
        if t.dtype.kind not in "iu":
            raise TypeError(f"{where}: labels must be integers, got dtype {t.dtype}")
        if t.size and (t.min() < 0 or t.max() >= k):
            bad = t[(t < 0) | (t >= k)][0]
            raise ValueError(f"{where}: label {bad} is out of range for {k} classes "
                             f"(expected 0..{k - 1})")
        onehot = np.zeros((n, k))
        onehot[np.arange(n), t] = 1.0
        return onehot
    if t.shape != (n, k):
        raise ValueError(f"{where}: one-hot targets of shape {t.shape} do not match the "
                         f"logits' shape {(n, k)}")
    return t


class _SoftmaxCrossEntropyNode(tg.Function):
    """L = -(1/n) Σ_i Σ_k Y_ik log softmax(z)_ik, computed by log-sum-exp (stable).

    dL/dz = (softmax(z) - Y)/n: the spec's δ^(L) for a softmax output.
    """
    op_name = "softmax_cross_entropy"

    @staticmethod
    def forward(ctx, z, onehot=None):
        m = z.max(axis=1, keepdims=True)
        log_p = z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))
        ctx.onehot = onehot.astype(z.dtype, copy=False)
        ctx.save_for_backward(z)
        return -(ctx.onehot * log_p).sum() / z.shape[0]

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        # The shift by the row max is a constant: softmax does not depend on it.
        shift = (z.data if isinstance(z, tg.Tensor) else z).max(axis=1, keepdims=True)
        e = np.exp(z - shift)
        p = e / e.sum(axis=1, keepdims=True)
        return (p - ctx.onehot) * (g / z.shape[0])

    @property
    def name(self) -> str:
        return "SoftmaxCrossEntropyBackward"


class SoftmaxCrossEntropy(Module):
    """One fused node from logits (n, K) to the mean cross-entropy loss.

    ``loss(logits, target)``: target is integer labels (n,) or one-hot (n, K).
    """

    def forward(self, logits: Any, target: Any) -> tg.Tensor:
        if not isinstance(logits, tg.Tensor):
            logits = tg.Tensor(logits)
        if logits.ndim != 2:
            raise tg.ShapeError(f"SoftmaxCrossEntropy: logits must be 2-D (n, K), got shape "
                                f"{logits.shape}")
        n, k = logits.shape
        if n == 0:
            raise ValueError("SoftmaxCrossEntropy: empty batch (0 samples)")
        onehot = _labels_or_onehot(target.data if isinstance(target, tg.Tensor) else target,
                                   n, k, "SoftmaxCrossEntropy")
        return _SoftmaxCrossEntropyNode.apply(logits, onehot=onehot)


def _as_target(pred: tg.Tensor, target: Any, where: str) -> np.ndarray:
    t = np.asarray(target.data if isinstance(target, tg.Tensor) else target)
    if t.shape != pred.shape:
        if t.ndim == 1 and pred.ndim == 2 and pred.shape[1] == 1 and t.shape[0] == pred.shape[0]:
            t = t.reshape(-1, 1)
        else:
            raise tg.ShapeError(f"{where}: targets of shape {t.shape} do not match predictions "
                                f"of shape {pred.shape}")
    if t.dtype.kind not in "biuf":
        raise TypeError(f"{where}: targets must be numeric, got dtype {t.dtype}")
    return t.astype(pred.dtype, copy=False)


class MSELoss(Module):
    """L = (1/2n) Σ_i ||a_i - y_i||², the spec's regression loss; dL/da = (a - y)/n."""

    def forward(self, pred: tg.Tensor, target: Any) -> tg.Tensor:
        t = _as_target(pred, target, "MSELoss")
        n = pred.shape[0]
        diff = pred - t
        return (diff * diff).sum() * (0.5 / n)


class BCELoss(Module):
    """L = -(1/n) Σ [y log p + (1-y) log(1-p)] for a sigmoid output p (clipped to [eps, 1-eps]).

    Through the sigmoid's backward, dL/dz = (p - y)/n, the same delta as the spec's.
    """

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, pred: tg.Tensor, target: Any) -> tg.Tensor:
        t = _as_target(pred, target, "BCELoss")
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"BCELoss: targets must lie in [0, 1], got range "
                             f"[{t.min()}, {t.max()}]")
        n = pred.shape[0]
        p = tg.clip(pred, self.eps, 1 - self.eps)
        return -(t * tg.log(p) + (1 - t) * tg.log(1 - p)).sum() * (1.0 / n)
