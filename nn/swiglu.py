r"""``SwiGLU``: the gated feed-forward block of LLaMA-style transformers, as an ``nn.Module``.

Built only from public pieces: three ``nn.Linear`` (``w1``, ``w3``, ``w2``), one
``nn.ActivationLayer(activations.SiLU())`` and tinygraph's elementwise multiply.
"""
from __future__ import annotations

from typing import Any

import numpy as np

import activations as acts
import tinygraph as tg

from .init import make_rng
from .layers import ActivationLayer, Linear, _widens
from .module import Module


class SwiGLU(Module):
    r"""Gated feed-forward network  FFN(x) = (SiLU(x W1ᵀ) ⊙ (x W3ᵀ)) W2ᵀ  (Shazeer 2020; LLaMA).

    Shapes: W1 and W3 are (d_hidden, d_model), W2 is (d_model, d_hidden); with ``bias=True``
    each Linear adds its bias (b1, b3: (d_hidden,), b2: (d_model,)). The input is
    (..., d_model) — e.g. (batch, d_model) or (batch, seq, d_model) — and so is the output;
    inputs with more than one leading dimension are flattened to (rows, d_model) for
    the three matmuls (one BLAS call each instead of one per batch) and reshaped back.

    Forward, with SiLU(u) = u σ(u)::

        g = x W1ᵀ (+ b1)          gate pre-activation          (..., d_hidden)
        u = x W3ᵀ (+ b3)          "up" projection              (..., d_hidden)
        a = SiLU(g)
        h = a ⊙ u
        y = h W2ᵀ (+ b2)          "down" projection            (..., d_model)

    Gradient flow (δy = dL/dy; sums over all leading dimensions, flattened to rows)::

        dL/dW2 = δyᵀ h            dL/db2 = Σ_rows δy           δh = δy W2
        δa = δh ⊙ u               δu = δh ⊙ a                   (the multiply node)
        δg = δa ⊙ SiLU'(g),       SiLU'(g) = σ(g) (1 + g (1 − σ(g)))   (SiLU's own backward)
        dL/dW1 = δgᵀ x            dL/db1 = Σ_rows δg
        dL/dW3 = δuᵀ x            dL/db3 = Σ_rows δu
        dL/dx  = δg W1 + δu W3    (x feeds two branches: the engine adds both)

    The gate branch is x → w1 → SiLU, the value branch x → w3; their product goes through
    w2. Parameters are named by place: ``w1.W``, ``w3.W``, ``w2.W`` (and ``w1.b``, ...).

    ``init`` ("xavier" or "he") is passed to each Linear; all three draw from one generator
    (``rng``: None, a seed or a ``numpy.random.Generator``) in the order w1, w3, w2.
    ``dtype`` is the parameters' dtype, and the block computes in it: an input numpy would
    promote past it (float64 data into float32 parameters) is converted first, once (a
    ``cast`` node when it needs a gradient), as ``Linear`` does. A wrong feature count
    raises ``tinygraph.ShapeError`` (the one ``Linear`` raises, prefixed with this block's
    shape).
    """

    def __init__(self, d_model: int, d_hidden: int, bias: bool = False, init: str = "xavier",
                 rng: Any = None, dtype: Any = np.float64) -> None:
        super().__init__()
        for arg, value in (("d_model", d_model), ("d_hidden", d_hidden)):
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
                    or value < 1:
                raise ValueError(f"SwiGLU: {arg} must be a positive integer, got {value!r}")
        self.d_model, self.d_hidden = int(d_model), int(d_hidden)
        gen = make_rng(rng)
        self.w1 = Linear(self.d_model, self.d_hidden, init=init, bias=bias, rng=gen, dtype=dtype)
        self.w3 = Linear(self.d_model, self.d_hidden, init=init, bias=bias, rng=gen, dtype=dtype)
        self.w2 = Linear(self.d_hidden, self.d_model, init=init, bias=bias, rng=gen, dtype=dtype)
        self.w1.label, self.w3.label, self.w2.label = "Linear w1", "Linear w3", "Linear w2"
        self.act = ActivationLayer(acts.SiLU())

    def forward(self, x: Any) -> tg.Tensor:
        if not isinstance(x, tg.Tensor):
            x = tg.Tensor(x)             # once, so both branches read the same leaf
        dtype = self.w1.W.dtype
        if x.dtype is not dtype and _widens(x.dtype, dtype):     # (once here for w1 and w3:
            x = tg.cast(x, dtype)                              # one cast node, one copy)
        lead = x.shape[:-1]
        if x.ndim > 2 and x.shape[-1] == self.d_model:
            # numpy runs (b, s, d) @ (d, h) as b separate matmuls; one (b·s, d) matmul is
            # faster, and the reshapes are views (their backward reshapes the gradient back)
            x = tg.reshape(x, (-1, self.d_model))
        try:
            gate = self.act(self.w1(x))
        except tg.ShapeError as e:
            raise tg.ShapeError(f"SwiGLU(d_model={self.d_model}, d_hidden={self.d_hidden}) "
                                f"expects inputs of shape (..., {self.d_model}): {e}") from None
        y = self.w2(tg.mul(gate, self.w3(x)))
        return tg.reshape(y, lead + (self.d_model,)) if len(lead) > 1 else y

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_hidden={self.d_hidden}, "
                f"bias={self.w1.b is not None}")
