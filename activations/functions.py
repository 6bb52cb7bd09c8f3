r"""The activation functions: ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU (= Swish).

Each class states :math:`f(x)`, :math:`f'(x)` and what it caches.  The
``backward`` of every class returns ``grad_output * f'(x)``, with ``f'(x)``
rebuilt from the cache alone (see :mod:`activations.base`).

Two numerical habits run through this file:

* **No upcasting.**  Constants are plain Python floats (``math.sqrt``, not
  ``np.sqrt``).  NumPy treats Python scalars as "weak" and keeps the array's
  dtype, whereas an ``np.float64`` scalar would turn a float32 array into
  float64 under NumPy 2's promotion rules.
* **No overflow, no NaN.**  Exponentials are only taken of non-positive
  numbers, and where a formula would compute ``inf * 0`` for infinite (or
  huge) inputs, the input is clipped at a point beyond which the result is
  already exactly saturated in floating point, so the clipping changes no
  finite result.
"""

import math
import numbers

import numpy as np

from ._erf import erfc
from .base import Activation

__all__ = ["ReLU", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Swish"]

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715

# For |x| >= 40 both GELU variants are exactly x (or 0) and their derivatives
# exactly 1 (or 0) in float64, and so in float32/float16 too: the Gaussian
# tails there are below 1e-348, and the tanh variant's sigmoid saturates
# already at |x| ~ 22.
_GELU_SATURATION = 40.0
# Likewise sigma(x) is exactly 0 for x < -746 and exactly 1 for x > 37 in
# float64, so for |x| >= 800 SiLU is exactly x (or 0) and its derivative 1 (or 0).
_SILU_SATURATION = 800.0


def _sigmoid(x: np.ndarray) -> np.ndarray:
    r"""Numerically stable logistic function :math:`\sigma(x) = 1 / (1 + e^{-x})`.

    The naive formula overflows in ``exp(-x)`` for ``x`` around -1000.  Only
    ever exponentiating :math:`-|x| \le 0` avoids that: with
    :math:`t = e^{-|x|} \in (0, 1]`,

    .. math::
        \sigma(x) = \frac{1}{1 + t} \ (x \ge 0), \qquad
        \sigma(x) = \frac{t}{1 + t} \ (x < 0).

    The second form keeps full relative accuracy for very negative ``x``
    (``1 - sigma(|x|)`` would cancel to 0).  The numerator, 1 or ``t``, is
    ``np.maximum(t, x >= 0)`` (as ``t <= 1``), and every step works in place:
    several times faster on large arrays than ``np.where`` over two
    temporaries, where each new temporary costs page faults.
    """
    flat = np.asarray(x).reshape(-1)     # 1-d, so the in-place steps work for 0-d too
    t = np.abs(flat)
    np.negative(t, out=t)
    np.exp(t, out=t)                     # underflows harmlessly to 0 for |x| > ~745
    sigma = np.maximum(t, flat >= 0)
    t += 1
    sigma /= t
    return sigma.reshape(np.shape(x))


class ReLU(Activation):
    r"""Rectified linear unit.

    .. math::
        f(x) = \max(0, x), \qquad
        f'(x) = \mathbb{1}[x > 0] = \begin{cases} 1 & x > 0 \\ 0 & x \le 0 \end{cases}

    ``f`` has a kink at ``x = 0`` where the derivative does not exist; like
    PyTorch and JAX we use the subgradient **0** there.

    Cache: the output :math:`y = \max(0, x)` itself (``caches_output``), since
    :math:`y > 0 \iff x > 0`: backward is ``grad_output * (cache > 0)``.  The
    output is returned read-only.  In a network the next layer keeps the same
    array as its input, so ReLU adds nothing to the memory kept for backward.
    Both directions are exact (a copy or a zero), so nothing can underflow and
    they skip the ``errstate`` guard (``can_underflow = False``).
    """

    name = "relu"
    caches_output = True
    can_underflow = False

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.maximum(x, 0)
        return y, y

    def _backward(self, grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
        return grad_output * (cache > 0)


class LeakyReLU(Activation):
    r"""Leaky rectified linear unit with slope ``alpha`` for negative inputs.

    .. math::
        f(x) = \begin{cases} x & x > 0 \\ \alpha x & x \le 0 \end{cases}, \qquad
        f'(x) = \begin{cases} 1 & x > 0 \\ \alpha & x \le 0 \end{cases}

    At the kink ``x = 0`` the derivative is taken to be ``alpha``.

    Args:
        alpha: Slope for ``x <= 0``; any finite real number (default 0.01).
            Fixed at construction (read-only attribute).

    Cache: the local derivative (1 where ``x > 0``, ``alpha`` elsewhere) in
    the input's dtype, so backward is ``grad_output * cache`` and does not
    even need ``alpha``.
    """

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01) -> None:
        super().__init__()
        is_real = isinstance(alpha, numbers.Real) and not isinstance(alpha, (bool, np.bool_))
        if not is_real or not math.isfinite(alpha):
            raise ValueError(f"LeakyReLU alpha must be a finite real number, got alpha={alpha!r}")
        self._alpha = float(alpha)

    @property
    def alpha(self) -> float:
        """Slope for ``x <= 0``."""
        return self._alpha

    def config(self) -> dict[str, float]:
        return {"alpha": self._alpha}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        alpha = x.dtype.type(self._alpha)
        positive = x > 0
        derivative = np.where(positive, x.dtype.type(1), alpha)
        # alpha · x only where x < 0 (NaN and ±0 stay): alpha · x everywhere made 0 · -inf
        # NaN for alpha = 0, and an alpha beyond float16's range (inf) times 0 NaN at x = 0
        out = x.copy()
        negative = x < 0
        if self._alpha == 0:
            out[negative] = 0               # (f = 0 there, -inf included, as ReLU's)
        else:
            np.multiply(x, alpha, out=out, where=negative)
        return out, derivative

    def _backward(self, grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
        return grad_output * cache


class Sigmoid(Activation):
    r"""Logistic sigmoid.

    .. math::
        f(x) = \sigma(x) = \frac{1}{1 + e^{-x}}, \qquad
        f'(x) = \sigma(x)\,\bigl(1 - \sigma(x)\bigr)

    Evaluated in a numerically stable way (no overflow at ``x = -1000``):
    see :func:`_sigmoid`.

    Cache: the output :math:`s = \sigma(x)` (a separate copy), since
    :math:`f' = s(1 - s)` needs nothing else. Computed from the output, as the spec's
    formula (and PyTorch) does, :math:`f'` loses its relative accuracy once ``s`` rounds
    near 1, and is 0 where it rounds to 1: ``x`` from ~17 in float32, ~37 in float64 (the
    true value there is below 5e-8 and 9e-17; the left tail keeps full accuracy).
    """

    name = "sigmoid"

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s = _sigmoid(x)
        return s, s.copy()

    def _backward(self, grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
        s = cache
        return grad_output * s * (1 - s)


class Tanh(Activation):
    r"""Hyperbolic tangent.

    .. math::
        f(x) = \tanh(x) = \frac{e^x - e^{-x}}{e^x + e^{-x}}, \qquad
        f'(x) = 1 - \tanh^2(x)

    Cache: the output :math:`t = \tanh(x)` (a separate copy), since
    :math:`f' = 1 - t^2` needs nothing else. Computed from the output, as the spec's
    formula (and PyTorch) does, :math:`f'` loses its relative accuracy once ``|t|`` rounds
    near 1, and is 0 where it rounds to 1: ``|x|`` from ~10 in float32 (44 % off at 8.5),
    ~19 in float64 (the true value there is below 1e-8 and 2e-16).
    """

    name = "tanh"

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.tanh(x)
        return t, t.copy()

    def _backward(self, grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
        t = cache
        return grad_output * (1 - t * t)


class GELU(Activation):
    r"""Gaussian error linear unit.

    Exact form (``approximate=False``, the default), with the standard normal
    CDF :math:`\Phi` and density :math:`\varphi`:

    .. math::
        f(x) = x\,\Phi(x) = \tfrac12 x \bigl(1 + \operatorname{erf}(x/\sqrt2)\bigr),
        \qquad
        f'(x) = \Phi(x) + x\,\varphi(x), \quad
        \varphi(x) = \frac{e^{-x^2/2}}{\sqrt{2\pi}} .

    :math:`\Phi(x)` is computed as :math:`\tfrac12\operatorname{erfc}(-x/\sqrt2)`,
    which stays accurate in the left tail where ``1 + erf`` would cancel to 0.

    Tanh approximation (``approximate=True``, as in GPT-2), with
    :math:`u(x) = \sqrt{2/\pi}\,(x + 0.044715\,x^3)`:

    .. math::
        f(x) = \tfrac12 x\bigl(1 + \tanh u(x)\bigr) = x\,\sigma\bigl(2u(x)\bigr),
        \qquad
        f'(x) = \sigma(2u) + x\,\sigma(2u)\bigl(1 - \sigma(2u)\bigr)\, 2u'(x),
        \quad u'(x) = \sqrt{2/\pi}\,(1 + 3 \cdot 0.044715\,x^2),

    using the identity :math:`\tfrac12(1 + \tanh u) = \sigma(2u)`; the sigmoid
    form is evaluated stably and keeps relative accuracy for negative ``x``.
    The two variants differ by less than 1e-3 everywhere.

    Args:
        approximate: ``False`` for the exact erf form, ``True`` for the tanh
            approximation.  Fixed at construction (read-only attribute).

    Cache: a copy of the input ``x``; backward evaluates ``f'(x)`` from it.
    """

    name = "gelu"

    def __init__(self, approximate: bool = False) -> None:
        super().__init__()
        if not isinstance(approximate, (bool, np.bool_)):
            raise ValueError(f"GELU approximate must be True or False, got approximate={approximate!r}")
        self._approximate = bool(approximate)

    @property
    def approximate(self) -> bool:
        """Whether the tanh approximation is used instead of the exact erf form."""
        return self._approximate

    def config(self) -> dict[str, bool]:
        return {"approximate": self._approximate}

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # The gate (Phi(x) or sigma(2u)) is exactly 0 for x <= -40, so clipping
        # the factor x there changes nothing but turns (-inf) * 0 into 0.
        x_factor = np.maximum(x, -_GELU_SATURATION)
        return x_factor * self._gate(x), x.copy()

    def _backward(self, grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
        # f'(x) is exactly 1 (or 0) for |x| >= 40, the same as at the clip
        # points, so evaluating it on the clipped x is exact and avoids
        # inf * 0 and overflow in x**2 / x**3.
        x = np.clip(cache, -_GELU_SATURATION, _GELU_SATURATION)
        if self._approximate:
            gate = self._gate(x)
            two_du_dx = (2 * _SQRT_2_OVER_PI) * (1 + (3 * _GELU_CUBIC) * x * x)
            derivative = gate + x * gate * (1 - gate) * two_du_dx
        else:
            normal_pdf = _INV_SQRT_2PI * np.exp(-0.5 * x * x)
            derivative = self._gate(x) + x * normal_pdf
        return grad_output * derivative

    def _gate(self, x: np.ndarray) -> np.ndarray:
        r"""The factor multiplying ``x``: :math:`\Phi(x)`, or :math:`\sigma(2u(x))` if approximate."""
        if self._approximate:
            x = np.clip(x, -_GELU_SATURATION, _GELU_SATURATION)  # keeps x**3 finite
            two_u = (2 * _SQRT_2_OVER_PI) * (x + _GELU_CUBIC * x * x * x)
            return _sigmoid(two_u)
        return 0.5 * erfc(-_SQRT_HALF * x)


class SiLU(Activation):
    r"""Sigmoid linear unit, also known as Swish (with :math:`\beta = 1`).

    .. math::
        f(x) = x\,\sigma(x), \qquad
        f'(x) = \sigma(x) + x\,\sigma(x)\bigl(1 - \sigma(x)\bigr)
              = \sigma(x)\,\bigl(1 + x\,(1 - \sigma(x))\bigr)

    :math:`\sigma` is :func:`_sigmoid` (stable: ``x = ±1000`` gives ``1000`` /
    ``-0.0`` with no warning, and full relative accuracy in the left tail), and
    the rest works in place, so a forward or backward pass is a few passes over
    the array.  ``Swish`` is an alias: ``Swish is SiLU``.

    Cache: a copy of the input ``x``; backward recomputes :math:`\sigma(x)`.
    """

    name = "silu"

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = _sigmoid(x)
        # sigma(x) is exactly 0 for x <= -800: clipping the factor x there
        # changes nothing but turns (-inf) * 0 into 0.
        y *= np.maximum(x, -_SILU_SATURATION)
        return y, x.copy()

    def _backward(self, grad_output: np.ndarray, cache: np.ndarray) -> np.ndarray:
        # f'(x) is exactly 1 (or 0) for |x| >= 800: clip to avoid inf * 0.
        x = np.clip(cache, -_SILU_SATURATION, _SILU_SATURATION)
        sigma = _sigmoid(x)
        derivative = 1 - sigma                     # then sigma (1 + x (1 - sigma)), in place
        derivative *= x
        derivative += 1
        derivative *= sigma
        derivative *= grad_output
        return derivative


Swish = SiLU
"""Swish (Ramachandran et al., 2017) with beta = 1 is SiLU: the very same class."""
