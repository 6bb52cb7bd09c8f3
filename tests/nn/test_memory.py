"""The spec's memory analysis: ``nn.memory_table`` (the formulas) and
``nn.measure_memory`` (what one training step's graph really saves for backward)."""

from __future__ import annotations

import numpy as np
import pytest

import nn
import tinygraph as tg

SPEC_SIZES = [784, 256, 128, 10]


def test_memory_table_for_the_spec_network():
    """(784, 256, 128, 10), B = 64.

    The spec's table prints 234,624 weights and 235,018 gradients, but its own formula
    Σ n_l n_(l-1) gives 784·256 + 256·128 + 128·10 = 200,704 + 32,768 + 1,280 =
    234,752, hence 234,752 + 394 = 235,146 gradients. The other rows are right.
    """
    t = nn.memory_table(SPEC_SIZES, 64)
    assert isinstance(t, nn.MemoryTable)
    assert t.weights == 784 * 256 + 256 * 128 + 128 * 10 == 234_752
    assert t.biases == 256 + 128 + 10 == 394
    assert t.cached_activations == 64 * (784 + 256 + 128 + 10) == 75_392
    assert t.cached_preactivations == 64 * (256 + 128 + 10) == 25_216
    assert t.gradients == t.weights + t.biases == 235_146
    assert t.training == 234_752 + 394 + 75_392 + 25_216 + 235_146
    assert t.inference == 234_752 + 394 + 64 * 784
    text = str(t)
    for number in ("234,752", "394", "75,392", "25,216", "235,146"):
        assert number in text
    assert dict(t.rows())["Weights W"] == 234_752


def test_memory_table_matches_the_models_parameter_counts():
    model = nn.MLP([13, 7, 5, 3], ["relu", "tanh", "softmax"], seed=0)
    t = nn.memory_table([13, 7, 5, 3], 9)
    assert t.weights == sum(lin.W.size for lin in model.linears)
    assert t.biases == sum(lin.b.size for lin in model.linears)
    assert t.gradients == sum(p.size for p in model.parameters())
    assert t.cached_activations == 9 * (13 + 7 + 5 + 3)


def test_memory_table_rejects_bad_arguments():
    with pytest.raises(ValueError):
        nn.memory_table([784], 64)
    with pytest.raises(ValueError):
        nn.memory_table([784, 0, 10], 64)
    with pytest.raises(ValueError):
        nn.memory_table(SPEC_SIZES, 0)
    # values int() would have bent into a wrong table: "784" -> [7, 8, 4], 2.7 -> 2
    for sizes, batch, message in (("784", 64, "layer_sizes must be a list"),
                                  ([784.9, 10.5], 64, r"layer_sizes\[0\] must be an integer"),
                                  (SPEC_SIZES, 2.7, "batch_size must be an integer"),
                                  (SPEC_SIZES, True, "batch_size must be an integer"),
                                  (None, 64, "layer_sizes must be a list")):
        with pytest.raises(TypeError, match=f"memory_table: {message}"):
            nn.memory_table(sizes, batch)
    assert nn.memory_table(np.array(SPEC_SIZES), np.int64(64)) == nn.memory_table(SPEC_SIZES, 64)


def test_measure_memory_of_the_manual_mlp_points_to_its_graph_twin():
    manual = nn.manual.MLP([2, 3], ["softmax"], seed=0)
    with pytest.raises(TypeError, match=r"measure_memory: expected a graph MLP.*"
                                        r"nn\.MLP\.from_manual\(model\)"):
        nn.measure_memory(manual, np.ones((2, 2)), [0, 1])
    assert nn.measure_memory(nn.MLP.from_manual(manual), np.ones((2, 2)), [0, 1]).itemsize == 8


def _targets(output, n, k, rng):
    if output == "softmax":
        return rng.integers(0, k, size=n)
    return rng.normal(size=(n, k))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hidden,output", [("relu", "softmax"), ("gelu", "softmax"),
                                           ("tanh", None), ("silu", None)])
def test_measure_memory_within_the_spec_formula(hidden, output, dtype):
    rng = np.random.default_rng(0)
    B = 64
    X = rng.normal(size=(B, 784)).astype(dtype)
    model = nn.MLP(SPEC_SIZES, [hidden, hidden, output], seed=0, dtype=dtype)
    m = nn.measure_memory(model, X, _targets(output, B, 10, rng))
    itemsize = np.dtype(dtype).itemsize
    assert m.itemsize == itemsize
    assert m.formula_bytes == (75_392 + 25_216) * itemsize
    # the formula counts activations and pre-activations; the fused loss also keeps its own
    # copy of the targets (B·K) for backward. GELU, which needs its input z, holds exactly
    # the formula's a and z, so with the targets it is B·K above it
    targets = B * 10 * itemsize if output == "softmax" else 0
    assert m.activation_saved_bytes <= m.formula_bytes + targets
    # at least the input batch is kept (dL/dW^(1) = δ^(1)ᵀ x needs it)
    assert m.activation_saved_bytes >= B * 784 * itemsize
    assert m.training_saved_bytes >= m.activation_saved_bytes
    assert m.inference_saved_bytes == 0
    assert f"{m.activation_saved_bytes:,}" in str(m)
    # measuring leaves no graph behind: every parameter can be updated again
    assert all(p.data.flags.writeable for p in model.parameters())


def test_measure_memory_counts_what_the_graph_saves():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(16, 784))
    y = rng.integers(0, 10, size=16)
    model = nn.MLP(SPEC_SIZES, ["relu", "relu", "softmax"], seed=0)
    m = nn.measure_memory(model, X, y)
    loss = model.loss(X, y)
    assert m.training_saved_bytes == tg.graph.saved_bytes(loss)
    assert m.activation_saved_bytes == tg.graph.saved_bytes(loss, include_parameters=False)
    params = {id(p.data) for p in model.parameters()}
    saved = list(tg.graph.saved_arrays(loss))
    assert m.training_saved_bytes - m.activation_saved_bytes == sum(
        a.nbytes for _, a in saved if id(a) in params)
    loss.backward()
    # scales with the batch: 4x the batch, 4x the activations (the parameters do not scale)
    m4 = nn.measure_memory(model, np.tile(X, (4, 1)), np.tile(y, 4))
    assert m4.activation_saved_bytes == 4 * m.activation_saved_bytes


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_network_keeps_one_array_per_layer(dtype):
    # ReLU caches its output, which the next Linear keeps as its input anyway: the graph
    # holds the input batch, each hidden output once, the softmax for the loss's backward,
    # the logits for a recorded (create_graph) backward and the loss's own copy of the
    # one-hot targets, i.e. B·(784 + 256 + 128 + 10 + 10 + 10) numbers: the spec's a
    # (75,392 at B = 64) plus z^(L) and the targets, without the hidden layers' z.
    rng = np.random.default_rng(2)
    B = 64
    X = rng.normal(size=(B, 784)).astype(dtype)
    model = nn.MLP(SPEC_SIZES, ["relu", "relu", "softmax"], seed=0, dtype=dtype)
    m = nn.measure_memory(model, X, rng.integers(0, 10, size=B))
    itemsize = np.dtype(dtype).itemsize
    assert m.activation_saved_bytes == B * (784 + 256 + 128 + 10 + 10 + 10) * itemsize
    assert m.activation_saved_bytes == (75_392 + 64 * 20) * itemsize
    assert m.activation_saved_bytes < 0.77 * m.formula_bytes


def test_measure_memory_of_an_empty_batch_names_measure_memory():
    model = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    with pytest.raises(ValueError, match=r"^measure_memory: X has 0 samples"):
        nn.measure_memory(model, np.zeros((0, 3)), np.zeros(0, int))
