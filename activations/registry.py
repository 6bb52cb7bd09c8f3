"""Look activations up by name, and rebuild them from ``(name, config)``.

>>> get("relu")
ReLU()
>>> get("LeakyReLU", alpha=0.2)
LeakyReLU(alpha=0.2)
>>> get("gelu_tanh")
GELU(approximate=True)
>>> act = get("gelu", approximate=True)
>>> from_config(act.name, act.config())
GELU(approximate=True)
"""

import inspect
from collections.abc import Mapping
from typing import Any

from .base import Activation
from .functions import GELU, LeakyReLU, ReLU, SiLU, Sigmoid, Tanh

__all__ = ["NAMES", "get", "from_config"]

# name -> (class, parameters implied by the name)
_REGISTRY: dict[str, tuple[type[Activation], dict[str, Any]]] = {
    "relu": (ReLU, {}),
    "leaky_relu": (LeakyReLU, {}),
    "leakyrelu": (LeakyReLU, {}),
    "sigmoid": (Sigmoid, {}),
    "tanh": (Tanh, {}),
    "gelu": (GELU, {}),
    "gelu_tanh": (GELU, {"approximate": True}),
    "silu": (SiLU, {}),
    "swish": (SiLU, {}),
}

NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""Every name accepted by :func:`get` (lower case; lookup is case-insensitive)."""


def get(name: str | Activation, **params: Any) -> Activation:
    """Return an activation given its name, or pass an instance through.

    Args:
        name: One of :data:`NAMES`, in any letter case and with any surrounding
            whitespace (``"ReLU"``, ``"leaky_relu"``/``"LeakyReLU"``, ``"gelu_tanh"``
            for ``GELU(approximate=True)``, ``"swish"`` for ``SiLU``, ...), or an
            :class:`Activation` instance, which is returned unchanged.
        **params: Constructor parameters, e.g. ``alpha=0.2`` for LeakyReLU.

    Returns:
        A new activation instance (or ``name`` itself if it is an instance).

    Raises:
        ValueError: unknown name, or a parameter contradicting the name
            (``get("gelu_tanh", approximate=False)``).
        TypeError: ``name`` is neither a string nor an Activation, parameters
            given together with an instance, or a parameter the class does
            not take.
    """
    if isinstance(name, Activation):
        if params:
            raise TypeError(
                f"get() got parameters {sorted(params)} together with the instance {name!r}; "
                "parameters can only be given with a name"
            )
        return name
    if not isinstance(name, str):
        raise TypeError(f"activations.get: activation must be a name (str) or an Activation "
                        f"instance, got {name!r}")

    key = name.strip().lower()      # (" ReLU" as the MLPs take it)
    if key not in _REGISTRY:
        raise ValueError(f"activations.get: unknown activation {name!r}; valid names are: "
                         f"{', '.join(NAMES)}")
    cls, implied = _REGISTRY[key]

    for param, value in implied.items():
        if param in params and params[param] != value:
            raise ValueError(
                f"activation {name!r} means {param}={value!r}, but {param}={params[param]!r} was given"
            )
    accepted = list(inspect.signature(cls).parameters)
    unexpected = sorted(set(params) - set(accepted))
    if unexpected:
        raise TypeError(
            f"{cls.__name__} got unexpected parameter(s) {unexpected}; "
            f"it accepts {accepted if accepted else 'no parameters'}"
        )
    return cls(**{**implied, **params})


def from_config(name: str, config: Mapping[str, Any]) -> Activation:
    """Rebuild an activation from its ``name`` and ``config()``.

    ``from_config(act.name, act.config())`` returns a new activation of the
    same class and configuration as ``act`` (without its cache).  Used to save
    and load models as plain data.
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"from_config: config must be a dict of the activation's parameters "
                        f"(what config() returned, e.g. {{}} or {{'alpha': 0.01}}), got "
                        f"{type(config).__name__}")
    return get(name, **dict(config))
