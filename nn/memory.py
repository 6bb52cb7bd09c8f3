"""The spec's memory analysis, computed and measured.

``memory_table`` evaluates the spec's formulas (counts of floats); ``measure_memory``
runs a real training step of the graph MLP and adds up the bytes its graph saves for
backward (each array once), and does the same for inference under ``no_grad``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

import tinygraph as tg

from .data._validation import check_int


@dataclass
class MemoryTable:
    """Counts of floats, by the spec's formulas, for layer sizes [n_0, ..., n_L] and batch B."""
    layer_sizes: list
    batch_size: int
    weights: int                  # Σ n_l n_(l-1)
    biases: int                   # Σ n_l
    cached_activations: int       # B Σ_(l=0..L) n_l
    cached_preactivations: int    # B Σ_(l=1..L) n_l
    gradients: int                # weights + biases

    @property
    def training(self) -> int:
        """weights + biases + cached activations + cached pre-activations + gradients."""
        return (self.weights + self.biases + self.cached_activations
                + self.cached_preactivations + self.gradients)

    @property
    def inference(self) -> int:
        """weights + biases + the widest layer's activations, B max(n_l)."""
        return self.weights + self.biases + self.batch_size * max(self.layer_sizes)

    def rows(self) -> list:
        """(label, count of numbers) for each line of the table, weights to gradients."""
        return [("Weights W", self.weights), ("Biases b", self.biases),
                ("Cached activations a", self.cached_activations),
                ("Cached pre-activations z", self.cached_preactivations),
                ("Gradients dW, db", self.gradients),
                ("Training total", self.training), ("Inference total", self.inference)]

    def __str__(self) -> str:
        lines = [f"memory for layer sizes {self.layer_sizes}, batch {self.batch_size} "
                 f"(counts of floats; x8 bytes in float64, x4 in float32)"]
        lines += [f"  {name:<26}{count:>14,}" for name, count in self.rows()]
        return "\n".join(lines)


def memory_table(layer_sizes: Sequence[int], batch_size: int) -> MemoryTable:
    """The spec's memory table for ``layer_sizes`` and ``batch_size``.

    For [784, 256, 128, 10] and B = 64: 234,752 weights (the spec prints 234,624, but
    784·256 + 256·128 + 128·10 = 234,752), 394 biases, 75,392 cached activations,
    25,216 cached pre-activations, 235,146 gradients.
    """
    try:
        raw = None if isinstance(layer_sizes, (str, bytes)) else list(layer_sizes)
    except TypeError:
        raw = None
    if raw is None or len(raw) < 2:
        raise (TypeError if raw is None else ValueError)(
            f"memory_table: layer_sizes must be a list of at least two positive widths, e.g. "
            f"[784, 256, 128, 10], got {layer_sizes!r}")
    sizes = [check_int(f"memory_table: layer_sizes[{i}]", n, 1) for i, n in enumerate(raw)]
    B = check_int("memory_table: batch_size", batch_size, 1)
    weights = sum(a * b for a, b in zip(sizes[1:], sizes[:-1]))
    biases = sum(sizes[1:])
    return MemoryTable(layer_sizes=sizes, batch_size=B, weights=weights, biases=biases,
                       cached_activations=B * sum(sizes), cached_preactivations=B * sum(sizes[1:]),
                       gradients=weights + biases)


@dataclass
class MeasuredMemory:
    """Bytes held for backward by one training step's graph, and by an inference pass."""
    training_saved_bytes: int     # every array the graph holds for backward
    activation_saved_bytes: int   # the same without the parameters (what training adds)
    inference_saved_bytes: int
    formula_bytes: int            # (cached activations + pre-activations) x itemsize
    itemsize: int

    def __str__(self) -> str:
        return (f"saved for backward by one training step: {self.activation_saved_bytes:,} bytes "
                f"of activations and the loss's targets (spec formula a + z: "
                f"{self.formula_bytes:,} bytes), "
                f"{self.training_saved_bytes:,} bytes counting the weights it also keeps; "
                f"inference under no_grad: {self.inference_saved_bytes:,} bytes")


def measure_memory(model: Any, X: Any, y: Any) -> MeasuredMemory:
    """Measure what the graph MLP ``model`` saves for backward on the batch (X, y)."""
    from .mlp import MLP
    if not isinstance(model, MLP):
        hint = (" (the hand-written MLP has no graph: measure nn.MLP.from_manual(model))"
                if hasattr(model, "layers") and hasattr(model, "backward") else "")
        raise TypeError(f"measure_memory: expected a graph MLP, an nn.MLP, got a "
                        f"{type(model).__name__}{hint}")
    X = model._check_batch(X, "measure_memory")
    loss = model.loss(X, y)
    training = tg.graph.saved_bytes(loss)
    activations_only = tg.graph.saved_bytes(loss, include_parameters=False)
    with tg.no_grad():
        out = model(tg.Tensor(X))
    inference = tg.graph.saved_bytes(out)
    table = memory_table(model.layer_sizes, X.shape[0])
    itemsize = np.dtype(model.dtype).itemsize
    del loss
    return MeasuredMemory(training_saved_bytes=training, activation_saved_bytes=activations_only,
                          inference_saved_bytes=inference,
                          formula_bytes=(table.cached_activations + table.cached_preactivations) * itemsize,
                          itemsize=itemsize)
