"""Helpers shared by the reliability tests: comparing two models exactly."""
from __future__ import annotations

import numpy as np

import nn


def weights(model) -> list:
    if isinstance(model, nn.MLP):
        return [a for lin in model.linears for a in (lin.W.data, lin.b.data)]
    return [a for layer in model.layers for a in (layer.W, layer.b)]


def activations_of(model) -> list:
    acts = model._resolved if isinstance(model, nn.MLP) else [l.activation for l in model.layers]
    return [a if a is None or isinstance(a, str) else (a.name, a.config()) for a in acts]


def optimizer_state(model):
    opt = getattr(model, "optimizer", None)
    if opt is None:
        return None
    return type(opt).__name__, opt.config(), opt.state_dict()


def assert_same_model(a, b, optimizer: bool = True) -> None:
    """Bit for bit: architecture, weights, random state, epochs, optimizer state."""
    assert type(a) is type(b)
    assert a.layer_sizes == b.layer_sizes
    assert activations_of(a) == activations_of(b)
    assert a.init_method == b.init_method and np.dtype(a.dtype) == np.dtype(b.dtype)
    for x, y in zip(weights(a), weights(b), strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x, y)
    assert a.rng.bit_generator.state == b.rng.bit_generator.state
    assert a.epochs_trained == b.epochs_trained
    if optimizer:
        sa, sb = optimizer_state(a), optimizer_state(b)
        assert (sa is None) == (sb is None)
        if sa is not None:
            assert sa[:2] == sb[:2]
            for key in sa[2]:
                va, vb = sa[2][key], sb[2][key]
                if isinstance(va, list):
                    for x, y in zip(va, vb, strict=True):
                        assert (x is None and y is None) or np.array_equal(x, y)
                else:
                    assert va == vb
