"""Layers as graph nodes: ``Linear`` (one fused node) and ``ActivationLayer``, the adapter
that turns any object of the ``activations`` package into a node."""
from __future__ import annotations

import threading
import weakref
from typing import Any

import numpy as np

import activations as acts
import tinygraph as tg

from .init import check_init_method, init_weight, make_rng, zeros_bias
from .module import Module


class Linear(Module):
    """z = x Wᵀ + b  with W of shape (n_out, n_in) and b of shape (n_out,), as in the spec.

    One ``tinygraph.linear`` node: dL/dx = δW, dL/dW = δᵀx, dL/db = Σ_rows δ.
    ``init`` is "he" (N(0, 2/n_in)) or "xavier" (N(0, 2/(n_in+n_out))); biases start at 0.

    The layer computes in the (floating) dtype of ``W``: an input that numpy would promote
    past it (float64 or int64 data into a float32 layer) is converted first, as ``MLP``
    does with ``X``, instead of making the product float64; through a ``cast`` node when it
    needs a gradient. Narrower inputs (uint8 pixels, float16) are left to numpy, which
    already computes them in ``W``'s dtype without a converted copy.
    """

    def __init__(self, n_in: int, n_out: int, init: str = "he", bias: bool = True,
                 rng: Any = None, dtype: Any = np.float64) -> None:
        super().__init__()
        for arg, value in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Linear: {arg} must be a positive integer, got {value!r}")
        self.n_in, self.n_out = int(n_in), int(n_out)
        init = check_init_method(init, "Linear: init")
        try:
            generator = make_rng(rng)
        except (TypeError, ValueError) as exc:     # (make_rng's message, named here)
            raise type(exc)(f"Linear: rng: {exc}") from None
        try:
            W = init_weight(init, self.n_out, self.n_in, generator, dtype)
        except (TypeError, ValueError) as exc:     # (a dtype that is not float32/float64)
            raise type(exc)(f"Linear: {exc}") from None
        self.W = tg.Tensor(W, requires_grad=True, name="W")
        self.b = tg.Tensor(zeros_bias(self.n_out, dtype), requires_grad=True, name="b") if bias else None

    def forward(self, x: Any) -> tg.Tensor:
        if not isinstance(x, tg.Tensor):
            x = tg.Tensor(x)
        dtype = self.W.dtype
        if x.dtype is not dtype and _widens(x.dtype, dtype):
            x = tg.cast(x, dtype)
        try:
            return tg.linear(x, self.W, self.b)
        except tg.ShapeError:      # (the node checks the shapes; the layer names itself)
            shape = x.shape
            if shape and shape[-1] == self.n_in:
                raise              # not the input (W or b replaced by hand): the node's words
            raise tg.ShapeError(f"{self.label}: input of shape {shape} has "
                                f"{shape[-1] if shape else 0} features but this layer expects "
                                f"{self.n_in} (W has shape {self.W.shape})") from None

    def extra_repr(self) -> str:
        return f"n_in={self.n_in}, n_out={self.n_out}, bias={self.b is not None}"


def _widens(given: np.dtype, dtype: np.dtype) -> bool:
    """Whether numpy would compute ``given`` with a floating ``dtype`` in a wider dtype."""
    return dtype.kind == "f" and np.promote_types(given, dtype) != dtype


# An activations object keeps one cache, set by its forward and read by its backward; when
# threads share a model (and so its activation objects), each pair runs under this lock, or
# another thread's call could come in between and leave its cache there. Re-entrant: a
# plug-in may itself call an ActivationLayer.
_cache_guard = threading.RLock()


_weak = weakref.ref


class _ActivationNode(tg.Function):
    """a = f(z) through an ``activations`` object: its forward, and its own backward.

    The object keeps one cache; a node keeps the cache of its own call and puts it back
    before calling backward, so one object can serve several places in one graph. A call
    that nothing will backpropagate through (under ``no_grad``, or on an input that needs
    no gradient) leaves the object's cache as it was, so inference keeps no activation
    alive.

    The node's cache is the first of its ``saved_tensors`` (read and set as ``node.cache``),
    so the engine frees it with the rest after backward. A plug-in whose cache is not one
    array (a tuple, a dict) has the arrays inside saved after it, for memory accounting.
    """
    __slots__ = ("activation", "cache_ref")    # (slots, not the node's __dict__: cheaper)
    op_name = "activation"
    check_backward = False     # backward checks the object's gradient itself (cheaper)
    keeps_arrays_on_ctx = False    # the cache is in saved_tensors: freed with them

    @staticmethod
    def forward(ctx, z, activation=None):
        if not ctx.needs_input_grad[0]:
            with _cache_guard:
                kept = getattr(activation, "cache", None)   # (a plug-in may make it in forward)
                a = activation.forward(z)
                activation.cache = kept
            if getattr(activation, "caches_output", False) and a.base is None:
                a.setflags(write=True)      # no cache holds it any more: it is the caller's
            return a
        with _cache_guard:
            a = activation.forward(z)
            cache = activation.cache
        if a is z:                 # a plug-in that gives back its input (an identity): the
            a = a.view()           # engine's promise (check_backward = False) is a new array
        ctx.activation = activation
        # after backward frees the node's arrays, grad_report may still read a ReLU's cache
        # while the object holds it (a later forward replaces it): a weak reference
        ctx.cache_ref = (_weak(cache) if type(cache) is np.ndarray
                         and getattr(activation, "name", None) == "relu" else None)
        ctx.save_for_backward(*_saved_cache(cache))
        return a

    @staticmethod
    def backward(ctx, grad_output):
        activation = ctx.activation
        if isinstance(grad_output, tg.Tensor):
            raise NotImplementedError(
                f"{type(activation).__name__} (an activations-package object) has a "
                f"numpy backward only, so it cannot be differentiated twice; for gradients "
                f"of gradients use tinygraph's own ops (tinygraph.relu, tanh, sigmoid, ...)")
        cache = ctx.saved_tensors[0]
        if isinstance(cache, tg.Tensor):     # a recorded backward (create_graph) wraps it
            cache = cache.data
        with _cache_guard:
            activation.cache = cache
            grad = activation.backward(grad_output)
        if type(grad) is not np.ndarray or grad.shape != ctx.input_shapes[0]:
            grad = _checked_gradient(activation, grad, ctx.input_shapes[0])
        return grad

    @property
    def cache(self) -> Any:
        """The activation's cache from this node's forward call (None once released)."""
        saved = self.saved_tensors
        return saved[0] if saved else None

    @cache.setter
    def cache(self, value: Any) -> None:
        self.saved_tensors = _saved_cache(value)

    @property
    def name(self) -> str:
        return type(self.activation).__name__ + "Backward"


def _checked_gradient(activation: Any, grad: Any, shape: tuple) -> np.ndarray:
    """The gradient a plug-in's backward returned, as an array of the input's shape."""
    if isinstance(grad, np.generic):            # numpy's 0-d results come as scalars
        grad = np.asarray(grad)
    # Any object with forward/backward may be plugged in: name it if it misbehaves.
    if not isinstance(grad, np.ndarray) or grad.shape != shape:
        got = (f"shape {grad.shape}" if isinstance(grad, np.ndarray)
               else f"a {type(grad).__name__}")
        raise tg.BackwardError(
            f"{type(activation).__name__}.backward returned {got} for an input of "
            f"shape {shape}; the gradient must be an array of the input's shape")
    return grad


def _saved_cache(cache: Any) -> tuple:
    """What the node saves of a cache: the cache first, then (for memory accounting) the
    arrays inside a cache that is not one array."""
    if type(cache) is np.ndarray:
        return (cache,)
    return (cache,) + _arrays_in(cache)


def _arrays_in(cache: Any) -> tuple:
    if isinstance(cache, np.ndarray):
        return (cache,)
    if isinstance(cache, (tuple, list)):
        return tuple(c for c in cache if isinstance(c, np.ndarray))
    if isinstance(cache, dict):
        return tuple(c for c in cache.values() if isinstance(c, np.ndarray))
    return ()


class ActivationLayer(Module):
    """Any ``activations`` object (ReLU(), GELU(), ...) or its name, as a graph node."""

    def __init__(self, activation: Any) -> None:
        super().__init__()
        # names are looked up; any object with forward/backward and a cache is used as is
        if isinstance(activation, type):
            raise TypeError(f"ActivationLayer: got the class {activation.__name__}; pass an "
                            f"instance, e.g. nn.ActivationLayer({activation.__name__}()), or a "
                            f"name such as 'relu'")
        if not isinstance(activation, str) and not (hasattr(activation, "forward")
                                                    and hasattr(activation, "backward")):
            raise TypeError(f"ActivationLayer: expected an activation name such as 'relu' or an "
                            f"object with forward(x) and backward(grad_output), got "
                            f"{activation!r}")
        self.activation = acts.get(activation) if isinstance(activation, str) else activation
        self.label = type(self.activation).__name__

    def forward(self, z: Any) -> tg.Tensor:
        return _ActivationNode.apply(z, activation=self.activation)

    def extra_repr(self) -> str:
        return repr(self.activation)
