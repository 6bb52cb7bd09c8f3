"""Shared fixtures for the activations tests."""

from collections.abc import Callable

import pytest

from activations import GELU, Activation, LeakyReLU, ReLU, SiLU, Sigmoid, Tanh

# One factory per activation variant under test.  LeakyReLU uses a
# non-default alpha so that a backward ignoring alpha would be caught.
ACTIVATION_FACTORIES: dict[str, Callable[[], Activation]] = {
    "ReLU": ReLU,
    "LeakyReLU": lambda: LeakyReLU(alpha=0.1),
    "Sigmoid": Sigmoid,
    "Tanh": Tanh,
    "GELU": GELU,
    "GELU-tanh": lambda: GELU(approximate=True),
    "SiLU": SiLU,
}


@pytest.fixture(params=list(ACTIVATION_FACTORIES), scope="session")
def make_activation(request: pytest.FixtureRequest) -> Callable[[], Activation]:
    """A zero-argument factory returning a fresh activation (one per variant)."""
    return ACTIVATION_FACTORIES[request.param]

