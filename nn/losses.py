"""Losses as graph nodes, with the spec's scaling (mean over the n samples of a batch)."""
from __future__ import annotations

from typing import Any

import numpy as np

import tinygraph as tg

from .data.preprocessing import onehot_rows
from .data._validation import check_class_labels
from .manual import _check_eps
from .module import Module


def _numeric_target(target: Any, where: str) -> np.ndarray:
    if isinstance(target, tg.Tensor) and target.requires_grad and tg.is_grad_enabled():
        raise ValueError(f"{where}: the targets require grad, but a loss does not differentiate "
                         f"its targets (they would get no gradient, silently); pass "
                         f"target.detach(), or write the loss with tinygraph ops, e.g. "
                         f"((a - b) ** 2).mean(), to differentiate both sides")
    try:
        t = np.asarray(target.data if isinstance(target, tg.Tensor) else target)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: targets must be a numeric array, got a {type(target).__name__} "
                        f"numpy cannot convert ({str(exc).split('. ')[0]})") from None
    if t.dtype.kind not in "biuf":
        raise TypeError(f"{where}: targets must be numeric, got dtype {t.dtype}; expected integer "
                        f"labels or float targets")
    return t


def _target_dtype(dtype: Any) -> np.dtype:
    """Targets take the predictions' float dtype (float32 stays float32); integer
    predictions or logits get float64 targets, not 0.5 truncated to 0."""
    dtype = np.dtype(dtype)
    return dtype if dtype.kind == "f" else np.dtype(np.float64)


def _labels_or_onehot(target: np.ndarray, n: int, k: int, where: str) -> np.ndarray:
    """Integer labels (n,) or one-hot targets (n, k), checked; returns one-hot (n, k)."""
    t = np.asarray(target)
    if t.ndim == 1:
        if t.shape[0] != n:
            raise ValueError(f"{where}: {t.shape[0]} labels for {n} samples; expected one label "
                             f"per row of the logits")
        labels = check_class_labels(t, k, where, name="target",
                                    classes_from=f"the logits have {k} columns (classes)")
        return onehot_rows(labels, k, np.float64)     # the caller casts it
    if t.shape != (n, k):
        column = (" (a column of class labels? pass y.ravel(), shape (n,))"
                  if t.shape == (n, 1) and k > 1 else "")
        raise ValueError(f"{where}: one-hot targets of shape {t.shape} do not match the "
                         f"logits' shape {(n, k)}{column}")
    t = t.astype(np.float64, copy=False)
    if not np.all((t >= 0) & (t <= 1)):
        raise ValueError(f"{where}: target probabilities must lie in [0, 1], got range "
                         f"[{np.nanmin(t) if not np.isnan(t).all() else 'nan'}, "
                         f"{np.nanmax(t) if not np.isnan(t).all() else 'nan'}]"
                         f"{' and NaN' if np.isnan(t).any() else ''}")
    sums = t.sum(axis=1)
    off = np.abs(sums - 1.0) > 1e-6 * max(k, 10)
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(f"{where}: target row {i} sums to {sums[i].item():.6g}; expected every "
                         f"row of one-hot (or soft) targets to sum to 1 (the fused gradient "
                         f"(softmax - Y)/n is only right then); give integer labels, or "
                         f"normalise the rows")
    return t


class _SoftmaxCrossEntropyNode(tg.Function):
    """L = -(1/n) Σ_i Σ_k Y_ik log softmax(z)_ik, computed by log-sum-exp (stable).

    dL/dz = (softmax(z) - Y)/n: the spec's δ^(L) for a softmax output.

    Forward keeps the softmax p = a^(L) it computes on the way, so backward is one
    subtraction and one scaling. It keeps z too, for a recorded backward
    (``create_graph``): there p is recomputed from z so that the graph sees how δ^(L)
    depends on z (second derivatives).
    """
    op_name = "softmax_cross_entropy"
    check_backward = False     # tested: one gradient of z's shape

    @staticmethod
    def forward(ctx, z, onehot=None):
        if onehot.shape != z.shape:      # the gradient must have z's shape: no broadcasting
            raise tg.ShapeError(f"SoftmaxCrossEntropy: targets of shape {onehot.shape} for "
                                f"logits of shape {z.shape}; expected one row per row of the "
                                f"logits (check_targets() makes them)")
        if z.dtype.kind != "f":          # integer logits (constants): compute in float64
            z = z.astype(np.float64)
        shifted = z - z.max(axis=1, keepdims=True)   # ≤ 0: exp cannot overflow
        p = np.exp(shifted)
        s = p.sum(axis=1, keepdims=True)
        p /= s                                       # softmax(z), in place
        shifted -= np.log(s)                         # log softmax(z), in place
        # a private copy (astype always copies): the caller's targets may change before backward
        onehot = ctx.onehot = onehot.astype(z.dtype)
        ctx.save_for_backward(z, p)
        loss = -(onehot * shifted).sum() / z.shape[0]
        if loss != loss:             # NaN: a -inf logit (a masked class) where Y is 0 gives
            with np.errstate(invalid="ignore"):      # 0·(-inf); numpy has warned once above
                loss = -np.where(onehot != 0, onehot * shifted, 0).sum() / z.shape[0]
        return loss

    @staticmethod
    def backward(ctx, g):
        z, p = ctx.saved_tensors
        if isinstance(z, tg.Tensor):                 # recorded backward: p as a function of z
            # The shift by the row max is a constant: softmax does not depend on it.
            e = np.exp(z - z.data.max(axis=1, keepdims=True))
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
        if logits.shape[0] == 0:
            raise ValueError("SoftmaxCrossEntropy: empty batch (0 samples)")
        return self.node(logits, self.check_targets(target, logits.shape, logits.dtype))

    def check_targets(self, target: Any, shape: tuple, dtype: Any) -> np.ndarray:
        """Labels (n,) or one-hot/soft rows (n, K) for logits of ``shape``, checked; returns
        the (n, K) target rows. Rows of checked targets stay valid when sliced into batches."""
        n, k = shape
        onehot = _labels_or_onehot(_numeric_target(target, "SoftmaxCrossEntropy"),
                                   n, k, "SoftmaxCrossEntropy")
        return onehot.astype(_target_dtype(dtype), copy=False)   # (the node keeps its own copy)

    def node(self, logits: tg.Tensor, onehot: np.ndarray) -> tg.Tensor:
        """The loss node for targets that ``check_targets`` already returned."""
        return _SoftmaxCrossEntropyNode.apply(logits, onehot=onehot)


def _as_target(pred: Any, target: Any, where: str) -> np.ndarray:
    if not isinstance(pred, tg.Tensor):
        raise TypeError(f"{where}: predictions must be a Tensor (the model's output), got "
                        f"{type(pred).__name__}")
    return _target_like(tuple(pred.shape), pred.dtype, target, where)


def _target_like(shape: tuple, dtype: Any, target: Any, where: str) -> np.ndarray:
    """Targets for predictions of ``shape`` and ``dtype``: numeric, same shape, finite."""
    t = _numeric_target(target, where)
    if t.shape != shape:
        if t.ndim == 1 and len(shape) == 2 and shape[1] == 1 and t.shape[0] == shape[0]:
            t = t.reshape(-1, 1)
        else:
            raise tg.ShapeError(f"{where}: targets of shape {t.shape} do not match predictions "
                                f"of shape {shape}; expected the same shape")
    if len(shape) == 0 or shape[0] == 0:
        raise ValueError(f"{where}: empty batch (predictions of shape {shape}); expected "
                         f"at least one sample")
    t = t.astype(_target_dtype(dtype), copy=False)
    if t.dtype.kind == "f" and not np.all(np.isfinite(t)):
        raise ValueError(f"{where}: targets contain {int(np.sum(~np.isfinite(t)))} NaN or "
                         f"infinite value(s); expected finite numbers")
    return t


class MSELoss(Module):
    """L = (1/2n) Σ_i ||a_i - y_i||², the spec's regression loss; dL/da = (a - y)/n."""

    def forward(self, pred: tg.Tensor, target: Any) -> tg.Tensor:
        return self.node(pred, _as_target(pred, target, "MSELoss"))

    def check_targets(self, target: Any, shape: tuple, dtype: Any) -> np.ndarray:
        """Targets for predictions of ``shape``, checked (see ``SoftmaxCrossEntropy``)."""
        return _target_like(tuple(shape), dtype, target, "MSELoss")

    def node(self, pred: tg.Tensor, t: np.ndarray) -> tg.Tensor:
        """The loss nodes for targets that ``check_targets`` already returned."""
        diff = pred - t
        return (diff * diff).sum() * (0.5 / pred.shape[0])


class _SigmoidBCENode(tg.Function):
    """L = (1/n) Σ [max(z, 0) - z y + log(1 + e^(-|z|))] = BCE of p = σ(z), from the logits z.

    Never takes log(0), however saturated σ(z) is; dL/dz = (σ(z) - y)/n, the spec's δ^(L)
    for a sigmoid output, exactly (clipping p would cut it to 0 where σ saturates).
    """
    op_name = "sigmoid_bce"
    check_backward = False     # tested: one gradient of z's shape

    @staticmethod
    def forward(ctx, z, target=None):
        if np.shape(target) != z.shape:  # the gradient must have z's shape: no broadcasting
            raise tg.ShapeError(f"BCEWithLogits: targets of shape {np.shape(target)} for "
                                f"logits of shape {z.shape}; expected the logits' shape "
                                f"(check_targets() makes them)")
        target = ctx.target = np.array(target)         # a private copy (see above)
        ctx.save_for_backward(z)
        per_element = np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))
        return per_element.sum() / z.shape[0]

    @staticmethod
    def backward(ctx, g):
        (z,) = ctx.saved_tensors
        # σ(z) by tinygraph's stable sigmoid (e^z/(1+e^z) for z < 0: (tanh(z/2)+1)/2 cancels
        # there, to 0 below z = -17 in float32), a recorded op under create_graph
        p = tg.sigmoid(z)
        if not isinstance(z, tg.Tensor):
            p = p.data
        return (p - ctx.target) * (g / z.shape[0])

    @property
    def name(self) -> str:
        return "SigmoidBCEBackward"


class BCEWithLogits(Module):
    """Binary cross-entropy of a sigmoid output, as one node from the logits z (n, d).

    ``loss(z, y)`` = -(1/n) Σ [y log σ(z) + (1-y) log(1-σ(z))], stable for any z; its
    gradient is (σ(z) - y)/n. ``nn.MLP`` uses it for a ``Sigmoid`` output layer, as it
    uses ``SoftmaxCrossEntropy`` for a softmax one.
    """

    def forward(self, logits: tg.Tensor, target: Any) -> tg.Tensor:
        if not isinstance(logits, tg.Tensor):
            logits = tg.Tensor(logits)
        t = self.check_targets(target, logits.shape, logits.dtype)
        if logits.ndim < 1 or logits.shape[0] == 0:
            raise ValueError(f"BCEWithLogits: empty batch (logits of shape {logits.shape})")
        return self.node(logits, t)

    def check_targets(self, target: Any, shape: tuple, dtype: Any) -> np.ndarray:
        """0/1 (or soft) targets for logits of ``shape``, checked (see ``SoftmaxCrossEntropy``)."""
        t = _target_like(tuple(shape), dtype, target, "BCEWithLogits")
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"BCEWithLogits: targets must lie in [0, 1], got range "
                             f"[{t.min()}, {t.max()}]")
        return t

    def node(self, logits: tg.Tensor, t: np.ndarray) -> tg.Tensor:
        """The loss node for targets that ``check_targets`` already returned."""
        return _SigmoidBCENode.apply(logits, target=t)


class BCELoss(Module):
    """L = -(1/n) Σ [y log p + (1-y) log(1-p)] for probabilities p (clipped away from 0).

    Through a sigmoid's backward this gives dL/dz = (p - y)/n wherever p is not clipped;
    where the sigmoid saturates, the clipping cuts the gradient: prefer ``BCEWithLogits``
    on the logits (what ``nn.MLP`` does).
    """

    def __init__(self, eps: float = 1e-12) -> None:
        super().__init__()
        self.eps = _check_eps("BCELoss", eps)      # the manual MLP's rule for the same eps

    def forward(self, pred: tg.Tensor, target: Any) -> tg.Tensor:
        t = _as_target(pred, target, "BCELoss")
        if t.size and (t.min() < 0 or t.max() > 1):
            raise ValueError(f"BCELoss: targets must lie in [0, 1], got range "
                             f"[{t.min()}, {t.max()}]")
        p_values = pred.data
        if np.any((p_values < 0) | (p_values > 1)):    # (NaN passes: the loss shows it)
            raise ValueError(f"BCELoss: predictions must be probabilities in [0, 1], got range "
                             f"[{np.nanmin(p_values)}, {np.nanmax(p_values)}] (the clipping "
                             f"would hide it: loss 0, gradient 0); for logits use BCEWithLogits")
        n = pred.shape[0]
        # p and 1 - p are clipped separately (as the manual MLP does): 1 - eps rounds to 1
        # in float32, so clipping p to [eps, 1 - eps] would still take log(0) there.
        p = tg.clip(pred, self.eps, 1.0)
        q = tg.clip(1 - pred, self.eps, 1.0)
        return -(t * tg.log(p) + (1 - t) * tg.log(q)).sum() * (1.0 / n)
