r"""The :class:`Activation` base class: the forward / backward / cache contract.

An activation is an elementwise function :math:`y = f(x)`.  In backprop we are
handed the upstream gradient :math:`g = \partial L / \partial y` and must return

.. math::

    \frac{\partial L}{\partial x} = g \odot f'(x),

because the Jacobian of an elementwise function is diagonal.  ``f'(x)`` needs
information from the forward pass (``x`` itself, or ``f(x)``, or a mask), so
``forward`` stores exactly that in the public attribute ``cache`` and
``backward`` reads it from there -- and from nowhere else.

Contract kept by every activation in this package:

* ``cache`` is ``None`` until the first ``forward``.
* After ``forward`` the cache is a single **read-only** ndarray with the shape
  and dtype of the output.  It shares no memory with the input, so the caller
  may modify the input in place without corrupting ``backward``.
* The cache is private (it shares no memory with the output either), except
  for activations whose class attribute ``caches_output`` is True (ReLU): their
  cache *is* the output array, which ``forward`` then returns read-only.  That
  keeps one array alive instead of two (the next layer keeps the output anyway,
  as its input), and a caller who writes into the output gets an error at once
  instead of a wrong gradient later; ``y.copy()`` gives a writable copy.
* ``backward`` uses only ``cache`` (plus the constructor configuration, which
  cannot change), and never modifies it.  The cache can therefore be saved and
  put back later (``saved = act.cache`` ... ``act.cache = saved``) and
  ``backward`` may be called any number of times with it.
* Integer (and boolean) input becomes float64; float input keeps its dtype
  (float32 stays float32), and so do the output and the gradient.
* One object holds one cache: ``backward`` differentiates at the input of the
  *last* ``forward``.  An object shared by two layers therefore gives the first
  layer the second layer's derivative (silently, when the two have the same
  width): give each layer an instance of its own.  ``nn.manual.MLP`` and
  ``nn.MLP`` copy an instance they are given twice (or that another model uses).
"""

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["Activation"]


def _as_float_array(x: ArrayLike, owner: Any, method: str) -> np.ndarray:
    """Return ``x`` as a float ndarray: floats keep their dtype, integers become float64.

    ``owner`` and ``method`` name the caller in the error (``ReLU.forward``)."""
    if type(x) is np.ndarray:
        array = x
    else:
        try:
            array = np.asarray(x)
        except (TypeError, ValueError) as exc:          # a ragged list
            raise TypeError(f"{type(owner).__name__}.{method} expects an array of real "
                            f"numbers, got a {type(x).__name__} numpy cannot convert "
                            f"({str(exc).split('. ')[0]})") from None
    kind = array.dtype.kind
    if kind == "f":
        return array
    if kind in "biu":
        return array.astype(np.float64)
    raise TypeError(f"{type(owner).__name__}.{method} expects real numbers, got an array of "
                    f"dtype {array.dtype}")


class Activation(ABC):
    r"""Base class of elementwise activations :math:`y = f(x)`.

    Attributes:
        name: Registry name of the activation (class level), e.g. ``"relu"``.
        cache: ``None`` before the first :meth:`forward`; afterwards whatever
            :meth:`backward` needs (see each subclass), as a read-only array.

    Subclasses implement the math only:

    * ``_forward(x) -> (output, cache)`` for a float array ``x`` (``cache`` may be
      ``output`` itself only if the class sets ``caches_output = True``);
    * ``_backward(grad_output, cache) -> grad_input``, where ``grad_output``
      has already been checked to match the cache's shape and converted to
      its dtype.

    Underflow to zero (e.g. ``exp(-1000)``) is the correct result for
    saturated activations, so it is not reported as a floating-point error
    (a class whose math cannot underflow sets ``can_underflow = False`` and
    skips that guard); overflow and invalid operations never happen for finite
    inputs.
    """

    name: ClassVar[str]
    #: True when the cache is the output itself (returned read-only), see the module docs
    caches_output: ClassVar[bool] = False
    #: False when forward and backward are exact or zero and so can never underflow (ReLU):
    #: they then run without the ``np.errstate(under="ignore")`` guard described above
    can_underflow: ClassVar[bool] = True

    def __init__(self) -> None:
        self.cache: np.ndarray | None = None

    # -- the math, provided by subclasses ---------------------------------------------

    @abstractmethod
    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(f(x), cache)``; the cache must not share memory with ``x``, nor with the
        output unless it is the output (``caches_output``)."""

    @abstractmethod
    def _backward(self, grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
        """Return ``grad_output * f'(x)`` computed from ``cache`` alone."""

    # -- the public interface ----------------------------------------------------------

    def forward(self, x: ArrayLike) -> np.ndarray:
        """Compute ``f(x)`` elementwise and cache what :meth:`backward` needs.

        Args:
            x: Array-like of real numbers, any shape.

        Returns:
            ``f(x)`` with the shape of ``x`` and its float dtype
            (float64 for integer input); read-only when the class caches its
            output (``caches_output``, e.g. ReLU).
        """
        if type(x) is not np.ndarray or x.dtype.kind != "f":    # (skip the call for the
            x = _as_float_array(x, self, "forward")              # usual float array)
        if self.can_underflow:
            with np.errstate(under="ignore"):
                output, cache = self._forward(x)
        else:                               # (the errstate guard costs ~1 us a call)
            output, cache = self._forward(x)
        # (numpy gives scalars for 0-d results: asarray makes a new array of each; the type
        # tests skip the call for arrays, the common case)
        if type(cache) is not np.ndarray:
            cache = np.asarray(cache)
        cache.setflags(False)  # type: ignore[call-arg]  # write=False: backward must never modify it
        self.cache = cache
        if self.caches_output:
            return cache
        return output if type(output) is np.ndarray else np.asarray(output)

    def backward(self, grad_output: ArrayLike) -> np.ndarray:
        r"""Return :math:`\partial L/\partial x = g \odot f'(x)` using only ``self.cache``.

        Args:
            grad_output: :math:`g = \partial L/\partial y`, same shape as the
                output of the last :meth:`forward`.  It is converted to the
                output's dtype, so the gradient has the input's dtype.

        Raises:
            RuntimeError: if called before any :meth:`forward`.
            ValueError: if ``grad_output`` does not have the output's shape.
        """
        cache = self.cache
        if cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called before forward: call forward(x) first "
                "so the activation can cache what backward needs"
            )
        if type(grad_output) is not np.ndarray:
            grad_output = np.asarray(grad_output)
        if grad_output.dtype.kind not in "biuf":
            raise TypeError(
                f"{type(self).__name__}.backward: grad_output has dtype {grad_output.dtype}; "
                f"expected numbers (dL/d output, an array of the forward output's shape "
                f"{cache.shape})"
            )
        if grad_output.shape != cache.shape:
            raise ValueError(
                f"{type(self).__name__}.backward: grad_output shape {grad_output.shape} does not "
                f"match the forward output shape {cache.shape}"
            )
        if grad_output.dtype != cache.dtype:
            grad_output = grad_output.astype(cache.dtype)
        if self.can_underflow:
            with np.errstate(under="ignore"):
                grad = self._backward(grad_output, cache)
        else:
            grad = self._backward(grad_output, cache)
        return grad if type(grad) is np.ndarray else np.asarray(grad)

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """Same as :meth:`forward`."""
        return self.forward(x)

    def config(self) -> dict[str, Any]:
        """Constructor parameters, e.g. ``{"alpha": 0.01}``; ``{}`` if there are none.

        ``activations.from_config(act.name, act.config())`` rebuilds ``act``.
        """
        return {}

    def __repr__(self) -> str:
        params = ", ".join(f"{key}={value!r}" for key, value in self.config().items())
        return f"{type(self).__name__}({params})"
