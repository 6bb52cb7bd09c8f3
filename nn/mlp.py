"""The spec's MLP built from graph nodes: autodiff does the backward pass.

Same constructor and the same ``fit / predict / predict_proba / score`` as the manual MLP
(``nn.manual.MLP``); with the same seed both start from the same weights and shuffle the
same way, so their training runs can be compared step by step.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

import activations as acts
import tinygraph as tg

from ._spec_mlp import (SOFTMAX, SpecMLP, _activation_name, _check_float_dtype, resolve_architecture)
from .init import check_init_method, make_rng
from .layers import ActivationLayer, Linear
from .losses import BCELoss, MSELoss, SoftmaxCrossEntropy
from .module import Module, Sequential
from .optim import SGD, Optimizer


class History(list):
    """Per-epoch average training loss (a list, as the manual MLP returns), plus
    ``train_accuracy`` and, with validation data, ``val_loss`` and ``val_accuracy``."""

    def __init__(self) -> None:
        super().__init__()
        self.train_accuracy: list[float] = []
        self.val_loss: list[float] = []
        self.val_accuracy: list[float] = []


class MLP(Module, SpecMLP):
    r"""Multilayer perceptron whose gradients come from tinygraph's reverse-mode autodiff.

    The network is a ``Sequential`` of nodes: for each layer l, a ``Linear`` node
    z^(l) = a^(l-1) W^(l)ᵀ + b^(l) and an ``ActivationLayer`` a^(l) = f^(l)(z^(l)) that calls
    the activation object's own forward and backward. The output layer and the loss node:

    * ``"softmax"`` → no activation node; ``SoftmaxCrossEntropy`` fuses softmax and the
      cross-entropy: one node from the logits z^(L), with gradient (softmax − Y)/n;
    * ``None`` → linear output and ``MSELoss`` (1/2n);
    * a ``Sigmoid`` → ``BCELoss`` (binary cross-entropy);
    * any other activation → ``MSELoss`` through that activation.

    Calling the model (``model(X)``) returns the graph's output Tensor: the logits for a
    softmax output (the probabilities come from ``predict_proba``), a^(L) otherwise.
    Parameters are named by their place: ``layers.0.W``, ``layers.0.b``, ``layers.2.W``, ...
    """

    _where = "nn.MLP"

    def __init__(self, layer_sizes: Sequence[int], activations: Sequence[Any],
                 init_method: str = "he", seed: int | None = None,
                 rng: np.random.Generator | None = None, dtype: DTypeLike = np.float64) -> None:
        super().__init__()
        sizes, resolved = resolve_architecture(layer_sizes, activations, seed, rng, "nn.MLP")
        self.init_method = check_init_method(init_method, "nn.MLP: init_method")
        self.dtype = _check_float_dtype("nn.MLP", dtype)
        object.__setattr__(self, "rng", make_rng(rng if rng is not None else seed))
        self.layer_sizes = sizes
        object.__setattr__(self, "_resolved", resolved)
        modules: list[Module] = []
        for i, act in enumerate(resolved):
            linear = Linear(sizes[i], sizes[i + 1], init=self.init_method, rng=self.rng,
                            dtype=self.dtype)
            linear.label = f"Linear {i + 1}"
            modules.append(linear)
            if act is not None and act != SOFTMAX:
                layer = ActivationLayer(act)
                layer.label = f"{type(act).__name__} {i + 1}"
                modules.append(layer)
        self.layers = Sequential(*modules)
        self.name_parameters()
        kind = self.output_kind
        self.loss_fn = (SoftmaxCrossEntropy() if kind == "softmax" else
                        BCELoss() if kind == "sigmoid" else MSELoss())

    # -- what SpecMLP needs ----------------------------------------------------------
    @property
    def output_activation(self) -> Any:
        return self._resolved[-1]

    @property
    def linears(self) -> list[Linear]:
        """The Linear layers, input side first (W^(1), ..., W^(L))."""
        return [m for m in self.layers if isinstance(m, Linear)]

    def _inference(self, X: ArrayLike, where: str) -> np.ndarray:
        X = self._check_X(X, where)
        with tg.no_grad():
            out = self(tg.Tensor(X)).data
        if self.output_kind == "softmax":
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)
        return out

    # -- the graph -------------------------------------------------------------------
    def forward(self, x: Any) -> tg.Tensor:
        """The network's output node: logits z^(L) for a softmax output, else a^(L)."""
        return self.layers(x if isinstance(x, tg.Tensor) else tg.Tensor(x))

    def loss(self, X: ArrayLike, y: ArrayLike) -> tg.Tensor:
        """The scalar loss node of a batch (cross-entropy, BCE or MSE, as the output says)."""
        Xc = self._check_X(X, f"{self._where}.loss")
        targets = self._prepare_targets(y, f"{self._where}.loss", Xc.shape[0])
        return self._loss(Xc, targets)

    def _loss(self, X: np.ndarray, targets: np.ndarray) -> tg.Tensor:
        out = self(tg.Tensor(X))
        loss = self.loss_fn(out, targets)
        if loss.grad_fn is not None:
            loss.grad_fn.module = "Loss"
        return loss

    def compute_gradients(self, X: ArrayLike, y: ArrayLike) -> float:
        """Forward, loss, backward on one batch: fills every parameter's ``.grad`` (after
        clearing it) and returns the loss. The autodiff twin of the manual MLP's
        ``forward(X)`` followed by ``backward(y)``."""
        self.zero_grad()
        loss = self.loss(X, y)
        loss.backward()
        return float(loss.item())

    def gradients(self) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        """[(dL/dW^(l), dL/db^(l)) for each layer], as arrays (None before backward)."""
        return [(lin.W.grad, lin.b.grad) for lin in self.linears]

    # -- training --------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int, learning_rate: float = 0.01,
            batch_size: int | None = None, verbose: bool = False,
            optimizer: Optimizer | str | None = None,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None) -> History:
        """Train with mini-batches; return the per-epoch losses (a ``History`` list).

        Each epoch shuffles the rows with the model's ``rng`` (when ``batch_size`` is
        given; the last batch may be smaller), and for each batch runs forward → loss →
        backward → optimizer step. ``optimizer`` is ``"sgd"`` (default: vanilla gradient
        descent with ``learning_rate``, as the spec), ``"adam"``, or an Optimizer built on
        ``model.parameters()``. ``verbose=True`` shows a progress bar with the running
        loss. ``validation_data=(X_val, y_val)`` adds the validation loss and accuracy of
        each epoch to the history. Stops with ``FloatingPointError`` naming the epoch and
        batch as soon as the loss becomes NaN or infinite.
        """
        X, targets, epochs, lr, batch_size = self._fit_arguments(X, y, epochs, learning_rate,
                                                                 batch_size)
        opt = self._make_optimizer(optimizer, lr)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError(f"{self._where}.fit: validation_data must be a pair (X_val, "
                                f"y_val), got {type(validation_data).__name__}")
            Xv = self._check_X(validation_data[0], f"{self._where}.fit: validation_data")
            val = (Xv, self._prepare_targets(validation_data[1],
                                             f"{self._where}.fit: validation_data", Xv.shape[0]))
        classify = self.output_kind in ("softmax", "sigmoid")
        history = History()
        n = X.shape[0]
        bar = None
        if verbose:
            from tqdm.auto import tqdm
            n_batches = 1 if batch_size is None else math.ceil(n / batch_size)
            bar = tqdm(total=epochs * n_batches, desc="training", unit="batch",
                       dynamic_ncols=True, leave=True, mininterval=0.5)
        try:
            for epoch in range(epochs):
                total = 0.0
                for b, (Xb, Tb) in enumerate(self._batches(X, targets, batch_size)):
                    opt.zero_grad()
                    loss = self._loss(Xb, Tb)
                    value = float(loss.item())
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"{self._where}.fit: the loss became {value} at epoch {epoch + 1}, "
                            f"batch {b + 1}; learning_rate={lr} is probably too large (or the "
                            f"inputs are not scaled). Training stopped before the weights "
                            f"were updated with it")
                    loss.backward()
                    opt.step()
                    total += value * Xb.shape[0]
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}", refresh=False)
                history.append(total / n)
                if classify:
                    history.train_accuracy.append(self._accuracy(X, targets))
                if val is not None:
                    with tg.no_grad():
                        history.val_loss.append(float(self._loss(*val).item()))
                    if classify:
                        history.val_accuracy.append(self._accuracy(*val))
                if bar is not None:
                    post = {"epoch": epoch + 1, "loss": f"{history[-1]:.4f}"}
                    if history.val_accuracy:
                        post["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
                    bar.set_postfix(post)
        finally:
            if bar is not None:
                bar.close()
        return history

    def _make_optimizer(self, optimizer: Any, lr: float) -> Optimizer:
        if optimizer is None or optimizer == "sgd":
            return SGD(self.parameters(), lr=lr)
        if optimizer == "adam":
            from .optim import Adam
            return Adam(self.parameters(), lr=lr)
        if isinstance(optimizer, Optimizer):
            return optimizer
        raise ValueError(f"{self._where}.fit: optimizer must be 'sgd', 'adam' or an "
                         f"nn.optim.Optimizer, got {optimizer!r}")

    def _accuracy(self, X: np.ndarray, targets: np.ndarray) -> float:
        p = self._inference(X, f"{self._where}.fit")
        if self.output_kind == "softmax":
            return float(np.mean(np.argmax(p, axis=1) == np.argmax(targets, axis=1)))
        return float(np.mean((p > 0.5) == (targets > 0.5)))

    # -- the manual twin -------------------------------------------------------------
    @classmethod
    def from_manual(cls, manual: Any) -> "MLP":
        """A graph MLP with the manual MLP's architecture and a copy of its weights."""
        acts_ = [_copy_activation(layer.activation) for layer in manual.layers]
        model = cls(manual.layer_sizes, acts_, init_method=manual.init_method, seed=0,
                    dtype=manual.dtype)
        for lin, layer in zip(model.linears, manual.layers):
            lin.W.data = np.array(layer.W, dtype=manual.dtype, copy=True)
            lin.b.data = np.array(layer.b, dtype=manual.dtype, copy=True)
        return model

    def to_manual(self) -> Any:
        """A manual MLP (``nn.manual.MLP``) with this architecture and a copy of the weights."""
        from .manual import MLP as ManualMLP
        acts_ = [_copy_activation(a) for a in self._resolved]
        manual = ManualMLP(self.layer_sizes, acts_, init_method=self.init_method, seed=0,
                           dtype=self.dtype)
        for lin, layer in zip(self.linears, manual.layers):
            layer.W[...] = lin.W.data
            layer.b[...] = lin.b.data
        return manual

    def extra_repr(self) -> str:
        return (f"layer_sizes={self.layer_sizes}, activations="
                f"{[_activation_name(a) for a in self._resolved]}")


def _copy_activation(act: Any) -> Any:
    """A fresh activation of the same kind and parameters (each model keeps its own cache)."""
    if act is None or isinstance(act, str):
        return act
    return acts.from_config(act.name, act.config())
