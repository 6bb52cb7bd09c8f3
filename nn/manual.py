r"""A multilayer perceptron with hand-written backpropagation (no autodiff).

This is the reference MLP of the spec (``multilayer-perceptron.md``): every
gradient below is derived by hand with the chain rule and coded directly in
numpy, so it can be cross-checked against the autodiff (graph) MLP and
against finite differences.

Notation (the spec's)
---------------------
For a network with :math:`L` layers and a batch of :math:`n` samples:

* ``a^(0) = X``, the input, shape ``(n, n_0)``;
* ``W^(l)`` of shape ``(n_l, n_{l-1})`` and ``b^(l)`` of shape ``(n_l,)``;
* ``z^(l)`` the pre-activation and ``a^(l) = f^(l)(z^(l))`` the
  post-activation of layer ``l``, both of shape ``(n, n_l)``.

Forward pass, for ``l = 1 .. L``::

    z^(l) = a^(l-1) W^(l)T + b^(l)
    a^(l) = f^(l)(z^(l))

Losses (``Y`` one-hot, ``y`` targets)::

    cross-entropy  L = -(1/n) sum_i sum_k Y_ik log a^(L)_ik
    MSE            L = (1/2n) sum_i ||a^(L)_i - y_i||^2
    binary CE      L = -(1/n) sum_i sum_j [y_ij log a_ij + (1 - y_ij) log(1 - a_ij)]

Backward pass::

    δ^(L) = dL/dz^(L) = (1/n) (a^(L) - Y)          (see MLP for each output)
    dL/dW^(l) = δ^(l)T a^(l-1)                       shape (n_l, n_{l-1})
    dL/db^(l) = sum over rows of δ^(l)               shape (n_l,)
    dL/da^(l) = δ^(l+1) W^(l+1)                      shape (n, n_l)
    δ^(l) = (δ^(l+1) W^(l+1)) ⊙ f'^(l)(z^(l))

The factor ``f'^(l)(z^(l))`` is never computed here: ``δ^(l+1) W^(l+1)``
is handed as ``grad_output`` to the layer's activation object's
``backward()``, which uses what its own ``forward()`` cached.

Gradient descent: ``W^(l) <- W^(l) - alpha dL/dW^(l)``, same for ``b^(l)``.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from nn._spec_mlp import (SpecMLP, _activation_name, _as_numeric, _check_float_dtype, _check_int,
                          _check_learning_rate, _check_on_nonfinite, _first_nonfinite,
                          _loss_trouble, _resolve_activation, resolve_architecture)
from nn.checkpoint import Checkpointer
from nn.init import check_init_method, init_weight, make_rng, zeros_bias

__all__ = [
    "softmax",
    "cross_entropy_loss",
    "mse_loss",
    "binary_cross_entropy_loss",
    "Layer",
    "MLP",
]

# ---------------------------------------------------------------------------
# Softmax and the losses
# ---------------------------------------------------------------------------


def softmax(z: ArrayLike) -> np.ndarray:
    r"""Numerically stable softmax over the last axis.

    ``softmax(z)_k = exp(z_k - max_j z_j) / sum_j exp(z_j - max_j z_j)``.

    Subtracting the row maximum does not change the result (it cancels
    between numerator and denominator) but makes every exponent ``<= 0``, so
    ``exp`` cannot overflow: logits of 1000 give finite probabilities.

    Args:
        z: Logits of shape ``(n, K)`` (or ``(K,)`` for one sample). Float
            input keeps its dtype; integer input is computed in float64.

    Returns:
        Probabilities of the same shape; each row sums to 1.
    """
    z = np.asarray(z)
    if not np.issubdtype(z.dtype, np.floating):
        z = z.astype(np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"softmax: z has shape {z.shape}; expected at least one class on the "
                         f"last axis, e.g. logits of shape (n, K) with K >= 1")
    shifted = z - np.max(z, axis=-1, keepdims=True)
    with np.errstate(under="ignore"):  # exp(-2000) -> 0 is the right answer
        e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


def _check_loss_args(
    name: str, p: ArrayLike, t: ArrayLike, tname: str
) -> tuple[np.ndarray, np.ndarray, int]:
    p = _as_numeric(name, "predictions", p)
    t = _as_numeric(name, tname, t)
    if p.shape != t.shape:
        raise ValueError(
            f"{name}: predictions has shape {p.shape} but {tname} has shape {t.shape}; "
            f"they must be equal"
        )
    if p.ndim not in (1, 2):
        raise ValueError(f"{name}: predictions must be 1-D or 2-D, got shape {p.shape}")
    n = p.shape[0] if p.ndim == 2 else 1
    if p.size == 0 or n == 0:
        raise ValueError(f"{name}: predictions is empty (shape {p.shape})")
    return p, t, n


def _check_eps(name: str, eps: Any) -> float:
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"{name}: eps must be a number in (0, 0.5), got {eps!r}")
    if not 0.0 < float(eps) < 0.5:
        raise ValueError(f"{name}: eps must be a number in (0, 0.5), got {eps!r}")
    return float(eps)


def cross_entropy_loss(
    predictions: ArrayLike, targets_onehot: ArrayLike, eps: float = 1e-12
) -> float:
    r"""Mean categorical cross-entropy ``-(1/n) sum_i sum_k Y_ik log a_ik``.

    Since ``Y`` is one-hot only the true class survives:
    ``L_i = -log a_{i,c}``.  Predictions are clipped to ``[eps, 1]`` before
    the log, so a predicted probability of exactly 0 gives the finite loss
    ``-log(eps)`` (about 27.6 for the default) instead of ``inf``.

    Args:
        predictions: Probabilities ``a^(L)`` of shape ``(n, K)`` (rows sum to 1),
            or ``(K,)`` for a single sample.
        targets_onehot: One-hot (or probability) targets, same shape.
        eps: Clipping floor, in ``(0, 0.5)``.

    Returns:
        The loss as a Python float.
    """
    p, t, n = _check_loss_args("cross_entropy_loss", predictions, targets_onehot, "targets_onehot")
    eps = _check_eps("cross_entropy_loss", eps)
    clipped = np.clip(p, eps, 1.0)
    return float(-np.sum(t * np.log(clipped)) / n)


def mse_loss(predictions: ArrayLike, targets: ArrayLike) -> float:
    r"""Mean squared error with the 1/2 factor: ``(1/2n) sum_i ||a_i - y_i||^2``.

    The ``1/2`` cancels the 2 of the power rule, so ``dL/da = (a - y)/n``.
    ``n`` is the number of rows (samples); a 1-D input is ``n`` samples of
    one output each.

    Returns:
        The loss as a Python float.
    """
    p = _as_numeric("mse_loss", "predictions", predictions)
    t = _as_numeric("mse_loss", "targets", targets)
    if p.shape != t.shape:
        raise ValueError(
            f"mse_loss: predictions has shape {p.shape} but targets has shape {t.shape}; "
            f"they must be equal (reshape a (n,) target to (n, 1) or vice versa)"
        )
    if p.ndim == 0 or p.shape[0] == 0:
        raise ValueError(
            f"mse_loss: predictions must hold at least one sample, got shape {p.shape}"
        )
    n = p.shape[0]
    diff = p - t
    return float(np.sum(diff * diff) / (2 * n))


def binary_cross_entropy_loss(
    predictions: ArrayLike, targets: ArrayLike, eps: float = 1e-12
) -> float:
    r"""Mean binary cross-entropy of sigmoid outputs.

    ``L = -(1/n) sum_i sum_j [y_ij log p_ij + (1 - y_ij) log(1 - p_ij)]``
    (``n`` = rows; with one output unit this is the usual logistic loss).
    Both ``p`` and ``1 - p`` are clipped to ``[eps, 1]`` before the log, so
    ``p`` of exactly 0 or 1 (sigmoid saturation, also in float32) stays finite.

    Args:
        predictions: Probabilities ``p`` in ``[0, 1]``, shape ``(n, d)`` or ``(n,)``.
        targets: Labels in ``[0, 1]`` (usually 0/1), same shape.
        eps: Clipping floor, in ``(0, 0.5)``.

    Returns:
        The loss as a Python float.
    """
    p, t, _ = _check_loss_args("binary_cross_entropy_loss", predictions, targets, "targets")
    eps = _check_eps("binary_cross_entropy_loss", eps)
    n = p.shape[0]
    log_p = np.log(np.clip(p, eps, 1.0))
    log_1mp = np.log(np.clip(1.0 - p, eps, 1.0))
    return float(-np.sum(t * log_p + (1.0 - t) * log_1mp) / n)


# ---------------------------------------------------------------------------
# Layer
# ---------------------------------------------------------------------------


class Layer:
    r"""One fully connected layer: a linear map followed by an activation.

    Forward::

        z = a_prev W^T + b          (n, n_in) x (n_in, n_out) -> (n, n_out)
        a = f(z)

    Backward, given ``delta = dL/dz`` of shape ``(n, n_out)``::

        dW = delta^T a_prev         (n_out, n) x (n, n_in) -> (n_out, n_in)
        db = sum over rows of delta (n_out,)
        dL/da_prev = delta W        (n, n_out) x (n_out, n_in) -> (n, n_in)

    Args:
        n_in: Input width ``n_{l-1}``.
        n_out: Output width ``n_l``.
        activation: An ``Activation`` instance from the activations module, an
            activation name (``"relu"``, ``"tanh"``, ...), ``None`` for a
            linear layer, or ``"softmax"`` (only meaningful as the output of
            an :class:`MLP`, which pairs it with cross-entropy).
        init_method: ``"he"`` (``W ~ N(0, 2/n_in)``) or ``"xavier"``
            (``W ~ N(0, 2/(n_in + n_out))``).
        rng: ``None``, an int seed or a ``numpy.random.Generator`` for the weights.
        dtype: Floating-point dtype of the parameters and of every cached array.

    Attributes:
        W: Weights ``W^(l)``, shape ``(n_out, n_in)`` (may be replaced by hand: an array of
            another shape or dtype is refused, by name, at the next :meth:`forward`).
        b: Biases ``b^(l)``, shape ``(n_out,)``, initialised to zero.
        activation: The resolved activation (instance, ``"softmax"`` or ``None``).
        a_prev, z, a: Caches of the last :meth:`forward` (``None`` before it).
        dW, db: ``dL/dW`` and ``dL/db`` from the last :meth:`backward`
            (``None`` before it).
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation: Any,
        init_method: str = "he",
        rng: int | np.random.Generator | None = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        self.n_in = _check_int("Layer: n_in", n_in, 1)
        self.n_out = _check_int("Layer: n_out", n_out, 1)
        self.dtype = _check_float_dtype("Layer", dtype)
        self.activation = _resolve_activation(activation, "Layer: activation")
        self.init_method = check_init_method(init_method, "Layer: init_method")
        rng = make_rng(rng)
        self.W: np.ndarray = init_weight(self.init_method, self.n_out, self.n_in, rng, self.dtype)
        self.b: np.ndarray = zeros_bias(self.n_out, self.dtype)
        self.a_prev: np.ndarray | None = None
        self.z: np.ndarray | None = None
        self.a: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    def __repr__(self) -> str:
        return (
            f"Layer(n_in={self.n_in}, n_out={self.n_out}, "
            f"activation={_activation_name(self.activation)!r}, dtype={self.dtype})"
        )

    def forward(self, a_prev: ArrayLike) -> np.ndarray:
        r"""``z = a_prev W^T + b``, ``a = f(z)``; caches ``a_prev``, ``z`` and ``a``.

        The activation's own ``forward`` also caches what its ``backward``
        will need.

        Args:
            a_prev: Input ``a^(l-1)`` of shape ``(n, n_in)``; cast to the layer dtype.

        Returns:
            ``a^(l)`` of shape ``(n, n_out)``; read-only when the activation
            caches its output (ReLU), because backward needs it unchanged:
            ``.copy()`` it to modify it.
        """
        a_prev = _as_numeric("Layer.forward", "a_prev", a_prev)
        if a_prev.ndim != 2 or a_prev.shape[1] != self.n_in:
            raise ValueError(
                f"Layer.forward: a_prev must have shape (n, {self.n_in}), got {a_prev.shape}"
            )
        a_prev = a_prev.astype(self.dtype, copy=False)
        W, b = self.W, self.b
        if (type(W) is not np.ndarray or W.shape != (self.n_out, self.n_in)
                or W.dtype != self.dtype or type(b) is not np.ndarray
                or b.shape != (self.n_out,) or b.dtype != self.dtype):
            self._refuse_parameters()     # (set by hand: numpy would fail deep inside, or not)
        z = a_prev @ W.T + b
        act = self.activation
        if act is None:
            a = z
        elif isinstance(act, str):  # "softmax"
            a = softmax(z)
        else:
            a = np.asarray(act.forward(z))
            if a.shape != z.shape:
                raise ValueError(
                    f"Layer.forward: activation {_activation_name(act)!r} returned shape "
                    f"{a.shape} for input of shape {z.shape}"
                )
            a = a.astype(self.dtype, copy=False)
        self.a_prev, self.z, self.a = a_prev, z, a
        return a

    def _refuse_parameters(self) -> None:
        """Say which of ``W``, ``b`` (set by hand) does not fit this layer, and how."""
        for name, value, shape in (("W", self.W, (self.n_out, self.n_in)),
                                   ("b", self.b, (self.n_out,))):
            where = f"Layer.forward: {name} of the layer {self.n_in} -> {self.n_out}"
            if type(value) is not np.ndarray:
                raise TypeError(f"{where} is a {type(value).__name__}, expected a numpy array "
                                f"of shape {shape} and dtype {self.dtype}; e.g. "
                                f"np.asarray(values, dtype=np.{self.dtype})")
            if value.shape != shape:
                hint = (f" (W is (n_out, n_in): this looks like its transpose, use .T)"
                        if name == "W" and value.shape == shape[::-1] else "")
                raise ValueError(f"{where} has shape {value.shape}, expected {shape}{hint}")
            if value.dtype != self.dtype:
                raise TypeError(f"{where} has dtype {value.dtype}, expected the layer's dtype "
                                f"{self.dtype}; use .astype(np.{self.dtype})")

    def activation_backward(self, grad_a: ArrayLike) -> np.ndarray:
        r"""``delta = dL/dz`` from ``grad_a = dL/da``: ``delta = grad_a ⊙ f'(z)``.

        For an ``Activation`` this is exactly ``activation.backward(grad_a)``,
        which uses the activation's own cache from :meth:`forward` (the
        derivative is never recomputed here). Linear: ``delta = grad_a``.
        Softmax (full Jacobian, not element-wise):
        ``delta = a ⊙ (grad_a - sum_k grad_a_k a_k)``.
        """
        if self.z is None:
            raise RuntimeError(
                "Layer.activation_backward called before forward: there is no cached z/a"
            )
        grad_a = np.asarray(grad_a, dtype=self.dtype)
        act = self.activation
        if act is None:
            return grad_a
        if isinstance(act, str):  # softmax Jacobian-vector product
            s = self.a
            return s * (grad_a - np.sum(grad_a * s, axis=-1, keepdims=True))
        return np.asarray(act.backward(grad_a)).astype(self.dtype, copy=False)

    def backward(self, delta: ArrayLike, compute_input_grad: bool = True) -> np.ndarray | None:
        r"""Store ``dW``, ``db`` from ``delta = dL/dz``; return ``dL/da_prev``.

        ``dW = delta^T a_prev`` and ``db = sum_rows delta``. For a batch of one
        sample, ``delta^T a_prev`` has inner dimension 1, which numpy's ``@`` runs
        on a slow path; ``np.dot`` computes the identical outer product through
        BLAS instead (faster than ``np.outer``, which gives the same numbers).

        Args:
            delta: ``δ^(l)`` of shape ``(n, n_out)``.
            compute_input_grad: If False (first layer) skip ``delta W``.

        Returns:
            ``dL/da^(l-1) = delta W`` of shape ``(n, n_in)``, or ``None``.
        """
        if self.a_prev is None or self.z is None:
            raise RuntimeError(
                "Layer.backward called before forward: there is no cached a_prev; "
                "call forward(a_prev) first"
            )
        delta = np.asarray(delta, dtype=self.dtype)
        if delta.shape != self.z.shape:
            raise ValueError(
                f"Layer.backward: delta must have the shape of z {self.z.shape}, got {delta.shape}"
            )
        if delta.shape[0] == 1:
            self.dW = np.dot(delta.T, self.a_prev)
            self.db = delta[0].copy()
        else:
            self.dW = delta.T @ self.a_prev
            self.db = delta.sum(axis=0)
        if not compute_input_grad:
            return None
        return delta @ self.W


# ---------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------


class MLP(SpecMLP):
    r"""Multilayer perceptron trained with hand-derived backpropagation.

    Forward, for ``l = 1 .. L``: ``z^(l) = a^(l-1) W^(l)T + b^(l)``,
    ``a^(l) = f^(l)(z^(l))``, with ``a^(0) = X``. Every ``a^(l-1)``, ``z^(l)``
    and ``a^(l)`` is cached on its :class:`Layer`.

    Output layer: the loss and the first error ``δ^(L) = dL/dz^(L)``
    ---------------------------------------------------------------------
    ``n`` is the batch size. The loss is chosen by the output activation:

    * ``"softmax"`` -> cross-entropy ``-(1/n) sum Y log a^(L)``;
      ``δ^(L) = (a^(L) - Y) / n``. Integer labels are one-hot encoded
      with ``K`` = the output width.
    * ``None`` (linear output) -> MSE ``(1/2n) sum ||a^(L) - y||^2``;
      ``a^(L) = z^(L)`` so ``δ^(L) = (a^(L) - y) / n``.
    * a ``Sigmoid`` instance (e.g. the spec's XOR network 2 -> 4 ReLU -> 1
      sigmoid) -> binary cross-entropy
      ``-(1/n) sum [y log a + (1 - y) log(1 - a)]``; because
      ``sigma'(z) = a (1 - a)`` cancels the loss's denominator,
      ``δ^(L) = (a^(L) - y) / n`` again.
    * any other activation ``f`` (tanh, ReLU, ...) -> MSE through that
      activation: ``δ^(L) = f.backward((a^(L) - y) / n)``.

    Hidden layers, ``l = L-1 .. 1`` (the backprop recurrence)::

        δ^(l) = (δ^(l+1) W^(l+1)) ⊙ f'^(l)(z^(l))

    where ``⊙ f'^(l)(z^(l))`` is done by the layer's activation object:
    ``δ^(l) = f^(l).backward(δ^(l+1) W^(l+1))`` using the cache of its
    own forward pass. Then ``dL/dW^(l) = δ^(l)T a^(l-1)`` and
    ``dL/db^(l) = sum_rows δ^(l)``.

    Args:
        layer_sizes: Widths ``[n_0, n_1, ..., n_L]``, e.g. ``[784, 256, 128, 10]``.
        activations: One entry per layer (``len(layer_sizes) - 1``): an
            ``Activation`` instance (e.g. ``ReLU()``), a name resolved with
            ``activations.get`` (``"relu"``, ``"leaky_relu"``, ``"sigmoid"``,
            ``"tanh"``, ``"gelu"``, ``"silu"``), ``None`` (linear) or
            ``"softmax"`` (output layer only). Each layer gets an instance of
            its own, because the activation caches its input for backward: an
            instance listed twice, or already used by a layer of another MLP
            (manual or ``nn.MLP``, e.g. one list given to both), is deep-copied.
        init_method: ``"he"`` (default, ``N(0, 2/n_in)``) or ``"xavier"``
            (``N(0, 2/(n_in + n_out))``); biases start at zero.
        seed: Int seed for the weights and the mini-batch shuffling.
        rng: A ``numpy.random.Generator`` to use instead of ``seed`` (give one
            or neither). Weights are drawn from it layer by layer, ``l = 1..L``,
            so the same seed gives the same weights as the graph MLP.
        dtype: ``np.float64`` (default) or ``np.float32``. Parameters, caches,
            gradients and updates all stay in this dtype; inputs are cast to it.

    Attributes:
        layers: The :class:`Layer` objects, input side first.
        layer_sizes: The widths as a list of ints.
        init_method, dtype, rng: As given (``rng`` also drives shuffling in :meth:`fit`).
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activations: Sequence[Any],
        init_method: str = "he",
        seed: int | None = None,
        rng: np.random.Generator | None = None,
        dtype: DTypeLike = np.float64,
    ) -> None:
        sizes, resolved = resolve_architecture(layer_sizes, activations, seed, rng, "MLP")
        self.init_method = check_init_method(init_method, "MLP: init_method")
        self.dtype = _check_float_dtype("MLP", dtype)
        self.rng = make_rng(rng if rng is not None else seed,
                            "MLP: rng" if rng is not None else "MLP: seed")
        self.layer_sizes: list[int] = sizes
        self.layers: list[Layer] = [
            Layer(sizes[i], sizes[i + 1], resolved[i], self.init_method, self.rng, self.dtype)
            for i in range(len(sizes) - 1)
        ]
        # State of the caches: None (no forward yet), "forward", "update", "predict".
        self._cache_state: str | None = None

    # -- description -------------------------------------------------------

    def __repr__(self) -> str:
        acts = [_activation_name(layer.activation) for layer in self.layers]
        return (
            f"MLP(layer_sizes={self.layer_sizes}, activations={acts}, "
            f"init_method={self.init_method!r}, dtype={self.dtype})"
        )

    @property
    def output_activation(self) -> Any:
        """The output layer's activation: an Activation, ``"softmax"`` or ``None``."""
        return self.layers[-1].activation

    # -- forward / backward / update -------------------------------------------

    def _forward(self, X: np.ndarray) -> np.ndarray:
        a = X
        for layer in self.layers:
            a = layer.forward(a)
        return a

    def forward(self, X: ArrayLike) -> np.ndarray:
        r"""Run ``z^(l) = a^(l-1) W^(l)T + b^(l)``, ``a^(l) = f^(l)(z^(l))`` for all layers.

        Every layer caches ``a^(l-1)``, ``z^(l)`` and ``a^(l)`` (and its
        activation caches its input) for :meth:`backward`.

        Args:
            X: ``a^(0)``, shape ``(n, layer_sizes[0])``; cast to the model dtype.

        Returns:
            ``a^(L)`` of shape ``(n, layer_sizes[-1])`` (probabilities for a
            softmax or sigmoid output, raw values for a linear one), a copy:
            changing it, or changing ``X`` afterwards, does not change what
            :meth:`backward` computes (the layers cache their own arrays).
        """
        Xc = self._check_X(X, "MLP.forward")
        if isinstance(X, np.ndarray) and np.may_share_memory(Xc, X):
            Xc = Xc.copy()              # layer 1 caches it as a^(0) for backward
        out = self._forward(Xc)
        self._cache_state = "forward"
        return out.copy()

    def _output_delta(self, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """Loss and ``δ^(L) = dL/dz^(L)`` (see the class docstring)."""
        out = self.layers[-1]
        a = out.a
        assert a is not None            # (the callers checked that forward ran)
        n = a.shape[0]
        residual = (a - targets) / n  # (a^(L) - y) / n, in the model dtype
        kind = self.output_kind
        if kind == "softmax":
            return cross_entropy_loss(a, targets), residual
        if kind == "sigmoid":
            return binary_cross_entropy_loss(a, targets), residual
        if kind == "linear":
            return mse_loss(a, targets), residual
        # MSE through another output activation: delta = f.backward(dL/da).
        return mse_loss(a, targets), out.activation_backward(residual)

    def _backward(self, targets: np.ndarray) -> float:
        loss, delta = self._output_delta(targets)
        for l in range(len(self.layers) - 1, -1, -1):
            grad_a_prev = self.layers[l].backward(delta, compute_input_grad=l > 0)
            if grad_a_prev is not None:     # (l > 0: layer 1 needs no dL/da^(0))
                # δ^(l) = (δ^(l+1) W^(l+1)) ⊙ f'(z^(l)), via the activation's backward.
                delta = self.layers[l - 1].activation_backward(grad_a_prev)
        return loss

    def backward(self, y: ArrayLike) -> float:
        r"""Backpropagate from the last :meth:`forward`; store ``dW``, ``db``; return the loss.

        Computes the loss and ``δ^(L)`` for the output (see the class
        docstring), then for ``l = L .. 1``::

            dL/dW^(l) = δ^(l)T a^(l-1),   dL/db^(l) = sum_rows δ^(l)
            δ^(l-1) = f^(l-1).backward(δ^(l) W^(l))

        Gradients are overwritten (not accumulated), so calling ``backward``
        twice gives the same gradients.

        Args:
            y: Targets for the rows of the last forward pass: integer labels
                ``(n,)`` or one-hot ``(n, K)`` for softmax; 0/1 labels ``(n,)``
                or ``(n, 1)`` for a single sigmoid unit; floats ``(n, d)`` (or
                ``(n,)`` when ``d == 1``) for regression.

        Returns:
            The loss of the last forward pass as a Python float.
        """
        if self._cache_state is None:
            raise RuntimeError(
                "MLP.backward called before forward: call forward(X) first so every layer "
                "has cached z, a and a_prev"
            )
        if self._cache_state == "update":
            raise RuntimeError(
                "MLP.backward: the cached forward pass is stale because update() changed "
                "the weights since; call forward(X) again before backward(y)"
            )
        if self._cache_state == "predict":
            raise RuntimeError(
                "MLP.backward: the caches hold the forward pass of predict()/"
                "predict_proba()/score(); call forward(X) again before backward(y)"
            )
        a_out = self.layers[-1].a
        assert a_out is not None        # (the cache state was checked above)
        n = a_out.shape[0]
        if n == 0:
            raise ValueError("MLP.backward: the last forward pass had 0 samples")
        targets = self._prepare_targets(y, "MLP.backward", n)
        return self._backward(targets)

    def update(self, learning_rate: float) -> None:
        r"""Vanilla gradient descent: ``W^(l) -= alpha dL/dW^(l)``, ``b^(l) -= alpha dL/db^(l)``.

        Updates are in place and keep the model dtype.
        """
        lr = _check_learning_rate("MLP.update", learning_rate)
        for i, layer in enumerate(self.layers):
            if layer.dW is None or layer.db is None:
                raise RuntimeError(
                    f"MLP.update: layer {i + 1} has no gradients; call forward(X) and "
                    f"backward(y) before update(learning_rate)"
                )
        self._step(lr)

    def _unclipped_loss(self, targets: np.ndarray, loss: float) -> float:
        r"""The batch loss that ``fit`` watches for divergence.

        The spec's cross-entropies clip probabilities at ``eps`` before the log, so they
        cannot exceed ``-log(eps)`` (~27.6) and never show a network that has blown up. For
        softmax and sigmoid outputs the loss is therefore recomputed here from the cached
        logits ``z^(L)`` without clipping (``logsumexp(z) - sum_k y_k z_k``, and
        ``softplus(z) - y z``), which is what the autodiff MLP's fused losses compute; the
        two agree wherever no probability was clipped. Other outputs return ``loss``.
        """
        kind = self.output_kind
        if kind not in ("softmax", "sigmoid"):
            return loss
        z_out = self.layers[-1].z
        assert z_out is not None        # (called right after the forward pass)
        z = z_out.astype(np.float64)
        t = targets.astype(np.float64).reshape(z.shape)
        if kind == "softmax":
            top = z.max(axis=1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
            per_row = lse * t.sum(axis=1) - (t * z).sum(axis=1)
        else:
            per_row = (np.maximum(z, 0.0) - t * z + np.log1p(np.exp(-np.abs(z)))).sum(axis=1)
        return float(per_row.sum() / z.shape[0])

    def _named_weights(self) -> Iterator[tuple[str, np.ndarray]]:
        return ((f"layer {i} {name}", arr) for i, layer in enumerate(self.layers, start=1)
                for name, arr in (("W", layer.W), ("b", layer.b)))

    def _put_back_weights(self, arrays: list) -> None:
        for layer, W, b in zip(self.layers, arrays[0::2], arrays[1::2]):
            layer.W, layer.b = W, b

    def _step(self, lr: float) -> None:
        for layer in self.layers:
            assert layer.dW is not None and layer.db is not None    # (backward ran)
            layer.W -= lr * layer.dW
            layer.b -= lr * layer.db
        if self._cache_state is not None:
            self._cache_state = "update"

    def zero_grad(self) -> None:
        """Set every ``dW`` and ``db`` to zeros (``backward`` overwrites them anyway)."""
        for layer in self.layers:
            layer.dW = np.zeros_like(layer.W)
            layer.db = np.zeros_like(layer.b)

    # -- training -----------------------------------------------------------------

    def fit(
        self,
        X: ArrayLike,
        y: ArrayLike,
        epochs: int,
        learning_rate: float,
        batch_size: int | None = None,
        verbose: bool = False,
        verbose_every: int | None = None,
        on_nonfinite: str = "raise",
        checkpoint: Any = None,
        checkpoint_every: int | None = None,
    ) -> list[float]:
        r"""Train with (mini-batch) gradient descent; return the per-epoch losses.

        Each epoch: shuffle the rows with the model's ``rng`` (only when
        ``batch_size`` is given), split them into batches of ``batch_size``
        (the last one may be smaller), and for each batch run
        forward -> loss -> backward -> update. The recorded epoch loss is the
        average of the batch losses weighted by batch size (for equal batches,
        the plain average across batches; a smaller last batch does not count
        as much as a full one).

        Args:
            X: Inputs ``(n, layer_sizes[0])``.
            y: Targets, as for :meth:`backward` (integer labels are converted
                to one-hot with ``K`` = the output width).
            epochs: Number of passes over the data, >= 1.
            learning_rate: Step size ``alpha`` > 0.
            batch_size: Rows per update, in ``1..n``; ``None`` means full batch
                (no shuffling).
            verbose: Print the loss of the first epoch, every
                ``verbose_every``-th epoch and the last.
            verbose_every: Print interval in epochs (default ``max(1, epochs // 10)``).
            on_nonfinite: What to do when a batch loss or gradient becomes NaN
                or infinite, or the loss explodes (more than ``DIVERGENCE_FACTOR``
                times the first batch loss; for softmax and sigmoid outputs the
                loss computed from the logits without clipping, see
                :meth:`_unclipped_loss`): ``"raise"`` (default) a
                ``FloatingPointError`` naming the epoch and batch, or ``"warn"``
                (a ``RuntimeWarning``) and return the losses of the epochs
                completed before. Either way, and on Ctrl-C (a
                ``KeyboardInterrupt`` saying so, its ``.history`` the completed
                epochs), the model is put back as it was after its last whole
                epoch (or before this fit), with its shuffling state.
            checkpoint: Path of a ``.npz`` file: the model (with its random
                state, which drives the shuffling) is saved there atomically
                after every ``checkpoint_every``-th epoch (default 1) and after
                the last, so ``nn.load(path, kind="manual")`` resumes exactly.

        Returns:
            ``history``: list of ``epochs`` floats (fewer if training stopped).
        """
        where = "MLP.fit"
        on_nonfinite = _check_on_nonfinite(where, on_nonfinite)
        saver = Checkpointer(self, checkpoint, checkpoint_every, where)
        X, targets, epochs, lr, batch_size = self._fit_arguments(
            X, y, epochs, learning_rate, batch_size)
        n = X.shape[0]
        if verbose_every is None:
            verbose_every = max(1, epochs // 10)
        else:
            verbose_every = _check_int("MLP.fit: verbose_every", verbose_every, 1)
        history: list[float] = []
        width = len(str(epochs))
        reference = None            # the first batch loss: see DIVERGENCE_FACTOR
        fit_start = self.epochs_trained
        snapshot = self._snapshot()     # where a stop inside an epoch puts the model back
        epoch = 1
        try:
            # numpy's overflow warnings are silenced: every batch is checked (and named) below
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                for epoch in range(1, epochs + 1):
                    total = 0.0
                    stopped = False
                    for b, (Xb, Tb) in enumerate(self._batches(X, targets, batch_size), start=1):
                        self._forward(Xb)
                        self._cache_state = "forward"
                        loss = self._backward(Tb)
                        watched = self._unclipped_loss(Tb, loss)
                        if reference is None:
                            reference = watched
                        bad = _loss_trouble(watched, reference)
                        if bad is None:
                            found = _first_nonfinite(
                                (f"layer {i + 1} {name}", g)
                                for i, layer in enumerate(self.layers)
                                for name, g in (("dW", layer.dW), ("db", layer.db)))
                            if found is not None:
                                bad = (f"the gradient {found} became NaN or infinite (the loss "
                                       f"was {loss:.6g})")
                        if bad is not None:
                            self._nonfinite(bad, epoch, b, lr, on_nonfinite,
                                            self._restore(snapshot, fit_start, saver))
                            stopped = True
                            break
                        total += loss * Xb.shape[0]
                        self._step(lr)
                    if stopped:
                        break
                    broken = self._broken_weight()
                    bad = (f"the weights became NaN or infinite ({broken}) in an update"
                           if broken is not None else self._overflowing_outputs(Xb))
                    if bad is not None:                        # the last update overflowed
                        self._nonfinite(bad, epoch, None, lr, on_nonfinite,
                                        self._restore(snapshot, fit_start, saver))
                        break
                    epoch_loss = total / n
                    history.append(epoch_loss)
                    self.epochs_trained += 1
                    saver.epoch_counted()    # (first: the file now lacks this epoch)
                    snapshot = self._snapshot()
                    if verbose and (epoch == 1 or epoch % verbose_every == 0 or epoch == epochs):
                        print(f"epoch {epoch:>{width}}/{epochs}  loss {epoch_loss:.6f}")
                    saver.epoch_done(epoch, last=epoch == epochs)
        except KeyboardInterrupt:
            raise self._interrupted(snapshot, fit_start, saver, history, epoch) from None
        except FloatingPointError:
            raise                       # fit's own stop: the model is put back already
        except Exception:               # anything else inside an epoch: put back all the same
            self._restore(snapshot, fit_start, saver, catch_up=False)
            raise
        return history

    # -- prediction -----------------------------------------------------------------

    def _inference(self, X: ArrayLike, where: str) -> np.ndarray:
        X = self._check_X(X, where)
        out = self._forward(X)
        # The layer caches now hold this pass, not the caller's training pass.
        self._cache_state = "predict"
        return out

    def _output_unrecorded(self, X: np.ndarray) -> np.ndarray:
        # fit's overflow check: the caches (the layers' and their activations') stay those
        # of the last training pass
        kept = [(layer.a_prev, layer.z, layer.a, getattr(layer.activation, "cache", None))
                for layer in self.layers]
        try:
            return self._forward(X)
        finally:
            for layer, (a_prev, z, a, cache) in zip(self.layers, kept):
                layer.a_prev, layer.z, layer.a = a_prev, z, a
                if hasattr(layer.activation, "cache"):
                    layer.activation.cache = cache
