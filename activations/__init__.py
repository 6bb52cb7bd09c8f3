"""Elementwise activation functions with hand-written forward and backward passes.

Pure NumPy (no dependency on ``tinygraph`` or ``nn``), used by the manual MLP
and wrapped by tinygraph's graph adapter.  Every activation follows the same
contract (see :mod:`activations.base`)::

    act = ReLU()
    y = act.forward(x)            # or act(x); caches what backward needs in act.cache
    dx = act.backward(dy)         # dL/dx = dy * f'(x), from act.cache alone

Classes: :class:`ReLU`, :class:`LeakyReLU`, :class:`Sigmoid`, :class:`Tanh`,
:class:`GELU`, :class:`SiLU` (``Swish`` is the same class).
Registry: :func:`get`, :func:`from_config`, :data:`NAMES`.
Helpers: :func:`erf`, :func:`erfc` (NumPy has none; SciPy is not used).
"""

from ._erf import erf, erfc
from .base import Activation
from .functions import GELU, LeakyReLU, ReLU, SiLU, Sigmoid, Swish, Tanh
from .registry import NAMES, from_config, get

#: tells this package from another of the same name (tinygraph._requirements.require_sibling)
_PROJECT = "tinygraph"

__all__ = [
    "Activation",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "SiLU",
    "Swish",
    "NAMES",
    "get",
    "from_config",
    "erf",
    "erfc",
]
