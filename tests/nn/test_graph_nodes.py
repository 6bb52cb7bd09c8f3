"""The graph nodes of ``nn``: the activation adapter, the losses, ``Module``,
``Linear`` and ``Sequential``."""

from __future__ import annotations

import math
import threading
import time
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import activations
import nn
import nn.manual
import tinygraph as tg
from nn.layers import _ActivationNode

#: Every activation of the activations package, by registry name.
ALL_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"]


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# ActivationLayer: any activations object as a node
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_activation_layer_forward_and_backward_are_the_objects_own(name):
    act = activations.get(name)
    layer = nn.ActivationLayer(act)
    assert layer.activation is act
    z = tg.Tensor(np.random.default_rng(0).normal(size=(4, 5)), requires_grad=True)
    out = layer(z)
    assert isinstance(out, tg.Tensor)
    assert isinstance(out.grad_fn, _ActivationNode)
    reference = activations.get(name)
    np.testing.assert_array_equal(out.data, reference.forward(z.data))
    g = np.random.default_rng(1).normal(size=(4, 5))
    out.backward(g)
    np.testing.assert_array_equal(z.grad, reference.backward(g))


def test_activation_layer_takes_a_name():
    layer = nn.ActivationLayer("gelu_tanh")
    assert isinstance(layer.activation, activations.GELU)
    assert layer.activation.config() == {"approximate": True}
    with pytest.raises(ValueError):
        nn.ActivationLayer("no_such_activation")


def _shared_net(act):
    """x -> Linear -> act -> Linear -> act -> Linear: ONE activation object, twice."""
    rng = np.random.default_rng(5)
    l1 = nn.Linear(3, 4, rng=rng)
    l2 = nn.Linear(4, 4, rng=rng)
    l3 = nn.Linear(4, 2, rng=rng)
    for lin in (l1, l2, l3):  # off the kinks of relu / leaky_relu
        lin.b.data[...] = 0.1 * rng.standard_normal(lin.b.shape)
    shared = nn.ActivationLayer(act)
    return nn.Sequential(l1, shared, l2, shared, l3), (l1, l2, l3)


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_one_activation_object_at_two_places_gradcheck(name):
    """Each call of the shared object keeps its own cache: finite differences agree."""
    act = activations.get(name)
    shared = nn.ActivationLayer(act)
    rng = np.random.default_rng(6)
    x = rng.normal(size=(5, 3))
    W1, b1 = rng.normal(size=(4, 3)), 0.1 * rng.normal(size=4)
    W2, b2 = rng.normal(size=(4, 4)) / 2, 0.1 * rng.normal(size=4)

    def fn(x, W1, b1, W2, b2):
        return shared(tg.linear(shared(tg.linear(x, W1, b1)), W2, b2))

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a kink warning would make the check meaningless
        result = tg.gradcheck(fn, [x, W1, b1, W2, b2])
    assert result.ok, str(result)
    assert result.checked == x.size + W1.size + b1.size + W2.size + b2.size


@pytest.mark.parametrize("name", ALL_ACTIVATIONS)
def test_one_activation_object_at_two_places_matches_manual_mlp(name):
    """A graph with one shared activation object gives the gradients of the manual MLP
    with two separate objects of that activation (same weights)."""
    net, linears = _shared_net(activations.get(name))
    manual = nn.manual.MLP([3, 4, 4, 2], [name, name, "softmax"], seed=0)
    for layer, lin in zip(manual.layers, linears):
        layer.W[...] = lin.W.data
        layer.b[...] = lin.b.data
    rng = np.random.default_rng(7)
    X = rng.normal(size=(6, 3))
    y = rng.integers(0, 2, size=6)
    loss = nn.SoftmaxCrossEntropy()(net(X), y)
    acts_nodes = [n for n in tg.graph.nodes(loss) if isinstance(n, _ActivationNode)]
    assert len(acts_nodes) == 2 and acts_nodes[0].activation is acts_nodes[1].activation
    assert acts_nodes[0].cache is not acts_nodes[1].cache
    loss.backward()
    manual.forward(X)
    manual_loss = manual.backward(y)
    assert float(loss.item()) == pytest.approx(manual_loss, rel=1e-12)
    for layer, lin in zip(manual.layers, linears):
        np.testing.assert_allclose(lin.W.grad, layer.dW, rtol=1e-10, atol=1e-15)
        np.testing.assert_allclose(lin.b.grad, layer.db, rtol=1e-10, atol=1e-15)


class _SlowSquare:
    """An activation whose forward lets other threads run between setting its cache and
    returning (a real one can be interrupted there too, only less often)."""

    def __init__(self):
        self.cache = None

    def forward(self, x):
        self.cache = x
        time.sleep(0.001)
        return x * x

    def backward(self, grad_output):
        return 2 * self.cache * grad_output


def test_threads_sharing_an_activation_object_each_get_their_own_gradient():
    layer = nn.ActivationLayer(_SlowSquare())
    wrong = []

    def work(k):
        x0 = np.full(3, float(k + 1))
        for _ in range(15):
            x = tg.Tensor(x0, requires_grad=True)
            (g,) = tg.grad(layer(x).sum(), x)
            if not np.array_equal(g, 2 * x0):
                wrong.append(g)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_activation_layer_under_no_grad_leaves_the_objects_cache_alone():
    # Inference must not keep the last batch's activations alive in the objects, and must
    # not overwrite what the last training step left there (grad_report reads it).
    rng = np.random.default_rng(3)
    model = nn.MLP([4, 6, 3], ["relu", "softmax"], seed=0)
    X = rng.normal(size=(5, 4))
    relu = model.layers[1].activation
    assert relu.cache is None
    model.predict(X)
    assert relu.cache is None
    loss = model.loss(X, np.arange(5) % 3)
    trained = relu.cache
    assert trained is not None and trained.shape == (5, 6)
    loss.backward()
    with tg.no_grad():
        hidden = model.layers[1](model.layers[0](tg.Tensor(rng.normal(size=(7, 4)))))
    assert relu.cache is trained
    # a leaf made under no_grad is the caller's to change, also when ReLU made it
    assert hidden.is_leaf and hidden.data.flags.writeable
    hidden.data[0] = 1.0


def test_activation_adapter_refuses_second_derivatives_clearly():
    layer = nn.ActivationLayer("tanh")
    z = tg.Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    loss = (layer(z) * layer(z)).sum()
    with pytest.raises(NotImplementedError, match="differentiated twice"):
        tg.grad(loss, z, create_graph=True)


class _WrongShapeActivation:
    """A plug-in activation (any object with forward/backward/cache) whose backward is wrong."""

    def __init__(self, result):
        self.cache = None
        self.result = result

    def forward(self, x):
        self.cache = np.asarray(x)
        return np.tanh(x)

    def backward(self, grad_output):
        return self.result(grad_output)


@pytest.mark.parametrize("result, got", [
    (lambda g: g.sum(axis=0), "returned shape (3,) for an input of shape (2, 3)"),
    (lambda g: g[:, :, None], "returned shape (2, 3, 1) for an input of shape (2, 3)"),
    (lambda g: g.tolist(), "returned a list for an input of shape (2, 3)"),
])
def test_activation_adapter_names_a_plug_in_whose_gradient_has_the_wrong_shape(result, got):
    # The adapter skips the engine's generic gradient check (check_backward = False) and
    # checks the object's result itself: a wrong shape must not reach the Linear below.
    layer = nn.ActivationLayer(_WrongShapeActivation(result))
    assert _ActivationNode.check_backward is False
    z = tg.Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    with pytest.raises(tg.BackwardError) as info:
        layer(z).sum().backward()
    msg = str(info.value)
    assert f"_WrongShapeActivation.backward {got}" in msg


class _PlugIn:
    """A plug-in activation with a correct backward, written with plain numpy."""

    def __init__(self, forward, backward):
        self.cache = None
        self._f, self._b = forward, backward

    def forward(self, x):
        self.cache = np.asarray(x)
        return self._f(self.cache)

    def backward(self, grad_output):
        return self._b(grad_output, self.cache)


def test_activation_adapter_accepts_plug_ins_with_a_correct_backward():
    # 0-d input: numpy arithmetic gives numpy scalars, not arrays
    square = _PlugIn(lambda x: x * x, lambda g, x: g * 2 * x)
    z = tg.Tensor(np.array(3.0), requires_grad=True)
    nn.ActivationLayer(square)(z).backward()
    assert z.grad.shape == () and z.grad == 6.0
    # an ndarray subclass of the right shape
    masked = _PlugIn(np.tanh, lambda g, x: np.ma.masked_array(g * (1 - np.tanh(x) ** 2)))
    z = tg.Tensor(np.linspace(-1, 1, 6).reshape(2, 3), requires_grad=True)
    nn.ActivationLayer(masked)(z).sum().backward()
    np.testing.assert_allclose(z.grad, 1 - np.tanh(z.data) ** 2)
    # a plug-in that changes the shape (pairwise sums), with a gradient of the input's shape
    pairs = _PlugIn(lambda x: x[:, ::2] + x[:, 1::2], lambda g, x: np.repeat(g, 2, axis=1))
    z = tg.Tensor(np.arange(8.0).reshape(2, 4), requires_grad=True)
    nn.ActivationLayer(pairs)(z).sum().backward()
    np.testing.assert_allclose(z.grad, np.ones((2, 4)))


class _TupleCache:
    """A plug-in whose cache is a tuple of two arrays: f(x) = x * s, with s saved beside x."""

    def __init__(self):
        self.cache = None

    def forward(self, x):
        s = np.full_like(x, 3.0)
        self.cache = (x.copy(), s)
        return x * s

    def backward(self, grad_output):
        _, s = self.cache
        return grad_output * s


class _DictCache(_TupleCache):
    """The same plug-in with its cache as a dict."""

    def forward(self, x):
        out = super().forward(x)
        x_copy, s = self.cache
        self.cache = {"x": x_copy, "s": s, "note": "kept"}
        return out

    def backward(self, grad_output):
        return grad_output * self.cache["s"]


def test_activation_node_with_a_dict_cache_and_a_cache_set_by_hand():
    z = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    plug = _DictCache()
    out = nn.ActivationLayer(plug)(z * 1.0)
    node = out.grad_fn
    assert node.cache is plug.cache
    assert tg.graph.saved_bytes(out, include_parameters=False) == 2 * z.data.nbytes
    smaller = {"s": np.full((2, 3), 5.0)}            # set by hand: the old arrays go with it
    node.cache = smaller
    assert node.cache is smaller
    assert tg.graph.saved_bytes(out, include_parameters=False) == z.data.nbytes
    out.sum().backward()
    np.testing.assert_array_equal(z.grad, np.full((2, 3), 5.0))
    assert node.cache is None


class _NumpyOnlyDouble(tg.Function):
    """A user op whose backward gives numpy arrays even under create_graph."""

    @staticmethod
    def forward(ctx, x):
        return 2.0 * x

    @staticmethod
    def backward(ctx, g):
        return 2.0 * np.asarray(g.data if isinstance(g, tg.Tensor) else g)


def test_activation_node_takes_a_numpy_gradient_under_create_graph():
    # A numpy gradient reaches the node in a recorded backward: the node hands the object
    # its cache as an array (create_graph wraps saved arrays as Tensors)
    act = activations.Tanh()
    x = tg.Tensor(np.array([0.1, -0.4, 0.7]), requires_grad=True)
    (gx,) = tg.grad(_NumpyOnlyDouble.apply(nn.ActivationLayer(act)(x)).sum(), x,
                    create_graph=True)
    np.testing.assert_allclose(gx.data, 2.0 * (1 - np.tanh(x.data) ** 2), rtol=1e-12)
    assert isinstance(act.cache, np.ndarray)


def test_activation_node_keeps_a_tuple_cache_counts_its_arrays_and_frees_them():
    z = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    plug = _TupleCache()
    out = nn.ActivationLayer(plug)(z * 1.0)
    node = out.grad_fn
    assert node.cache is plug.cache                          # the cache of its own call
    plug.cache = None                                        # the object forgets it...
    cache_bytes = 2 * z.data.nbytes
    assert tg.graph.saved_bytes(out, include_parameters=False) == cache_bytes
    out.sum().backward()                                     # ...the node still has it
    np.testing.assert_array_equal(z.grad, np.full((2, 3), 3.0))
    assert node.cache is None and tg.graph.saved_bytes(out) == 0   # freed by backward


# ---------------------------------------------------------------------------
# SoftmaxCrossEntropy
# ---------------------------------------------------------------------------


def _logits_problem(n=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, k)) * 2, rng.integers(0, k, size=n)


def test_softmax_cross_entropy_is_one_fused_node():
    rng = np.random.default_rng(1)
    x = tg.Tensor(rng.normal(size=(5, 3)))
    lin = nn.Linear(3, 4, rng=0)
    logits = lin(x)
    loss = nn.SoftmaxCrossEntropy()(logits, rng.integers(0, 4, size=5))
    node = loss.grad_fn
    assert node is not None and node.name == "SoftmaxCrossEntropyBackward"
    assert len(node.parents) == 1 and node.parents[0] is logits.grad_fn
    # The whole graph: the loss node and the linear node, nothing else.
    assert tg.graph.nodes(loss) == [node, logits.grad_fn]
    # From a leaf: its parent is the leaf Tensor itself.
    z = tg.Tensor(rng.normal(size=(5, 4)), requires_grad=True)
    loss2 = nn.SoftmaxCrossEntropy()(z, np.zeros(5, dtype=int))
    assert len(loss2.grad_fn.parents) == 1 and loss2.grad_fn.parents[0] is z
    assert len(tg.graph.nodes(loss2)) == 1


def test_softmax_cross_entropy_value_is_mean_negative_log_softmax():
    Z, labels = _logits_problem()
    loss = nn.SoftmaxCrossEntropy()(tg.Tensor(Z), labels)
    expected = -np.mean(np.log(_softmax(Z)[np.arange(5), labels]))
    assert loss.shape == ()
    assert float(loss.item()) == pytest.approx(expected, rel=1e-13)


def test_softmax_cross_entropy_stable_for_logits_of_1000():
    Z = np.array([[1000.0, 0.0, -1000.0], [-1000.0, 1000.0, 1000.0], [1000.0, 1000.0, 1000.0]])
    labels = np.array([2, 0, 1])
    z = tg.Tensor(Z, requires_grad=True)
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss = nn.SoftmaxCrossEntropy()(z, labels)
        loss.backward()
    # exact: -log softmax = logsumexp - z_label
    expected = (2000.0 + (1000.0 + math.log(2) + 1000.0) + math.log(3)) / 3
    assert float(loss.item()) == pytest.approx(expected, rel=1e-14)
    assert np.all(np.isfinite(z.grad))
    p = np.array([[1, 0, 0], [0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]])
    np.testing.assert_allclose(z.grad, (p - np.eye(3)[labels]) / 3, atol=1e-15)


def test_softmax_cross_entropy_labels_and_one_hot_agree():
    Z, labels = _logits_problem(seed=2)
    loss_fn = nn.SoftmaxCrossEntropy()
    z1 = tg.Tensor(Z, requires_grad=True)
    z2 = tg.Tensor(Z, requires_grad=True)
    l1 = loss_fn(z1, labels)
    l2 = loss_fn(z2, np.eye(4)[labels])
    l1.backward()
    l2.backward()
    assert float(l1.item()) == float(l2.item())
    np.testing.assert_array_equal(z1.grad, z2.grad)
    # Labels given as a Tensor, or as whole-number floats, are the same labels.
    assert float(loss_fn(tg.Tensor(Z), tg.Tensor(labels)).item()) == float(l1.item())
    assert float(loss_fn(tg.Tensor(Z), labels.astype(float)).item()) == float(l1.item())


def test_softmax_cross_entropy_gradient_closed_form_and_gradcheck():
    Z, labels = _logits_problem(n=6, k=5, seed=3)
    z = tg.Tensor(Z, requires_grad=True)
    nn.SoftmaxCrossEntropy()(z, labels).backward()
    np.testing.assert_allclose(z.grad, (_softmax(Z) - np.eye(5)[labels]) / 6, rtol=1e-12,
                               atol=1e-16)
    loss_fn = nn.SoftmaxCrossEntropy()
    result = tg.gradcheck(lambda t: loss_fn(t, labels), [Z])
    assert result.ok, str(result)
    assert result.checked == Z.size
    # Soft targets whose rows sum to 1 (label smoothing) are also differentiated right.
    soft = 0.9 * np.eye(5)[labels] + 0.02
    result = tg.gradcheck(lambda t: loss_fn(t, soft), [Z])
    assert result.ok, str(result)


def test_softmax_cross_entropy_targets_whose_rows_do_not_sum_to_1():
    """The backward returns (softmax - Y)/n, the derivative of the forward
    -(1/n) Σ Y log softmax(z) only when every row of Y sums to 1. Targets that do not
    (a multi-hot row, an all-zero row) are refused, naming the first such row."""
    Z = np.random.default_rng(0).normal(size=(3, 4))
    Y = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    loss_fn = nn.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"row 0 sums to 2"):
        loss_fn(tg.Tensor(Z), Y)
    with pytest.raises(ValueError, match=r"row 0 sums to 0"):
        loss_fn(tg.Tensor(Z[1:]), Y[1:])
    z = tg.Tensor(Z, requires_grad=True)
    loss_fn(z, Y[2:].repeat(3, axis=0)).backward()                    # rows of 1: accepted
    assert z.grad.shape == Z.shape


def test_softmax_cross_entropy_second_derivative_closed_form():
    """d²L/dz_i dz_i = (diag(p_i) - p_i p_iᵀ)/n per sample; zero across samples."""
    n, k = 4, 3
    Z, labels = _logits_problem(n=n, k=k, seed=4)
    z = tg.Tensor(Z, requires_grad=True)
    loss = nn.SoftmaxCrossEntropy()(z, labels)
    (g,) = tg.grad(loss, z, create_graph=True)
    assert isinstance(g, tg.Tensor)
    p = _softmax(Z)
    np.testing.assert_allclose(g.data, (p - np.eye(k)[labels]) / n, rtol=1e-12, atol=1e-16)
    H = np.zeros((n, k, n, k))
    for i in range(n):
        for c in range(k):
            (h,) = tg.grad(g[i, c], z, retain_graph=True)
            H[i, c] = 0.0 if h is None else h
    for i in range(n):
        expected = (np.diag(p[i]) - np.outer(p[i], p[i])) / n
        np.testing.assert_allclose(H[i, :, i, :], expected, rtol=1e-10, atol=1e-16)
        others = [j for j in range(n) if j != i]
        assert np.all(H[i, :, others, :] == 0)


def test_softmax_cross_entropy_keeps_float32():
    Z, labels = _logits_problem(seed=5)
    z = tg.Tensor(Z.astype(np.float32), requires_grad=True)
    loss = nn.SoftmaxCrossEntropy()(z, labels)
    loss.backward()
    assert loss.dtype == np.float32 and z.grad.dtype == np.float32


def test_softmax_cross_entropy_rejects_bad_input():
    loss_fn = nn.SoftmaxCrossEntropy()
    Z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"label 4 at index 1 .* integers in 0\.\.3"):
        loss_fn(tg.Tensor(Z), np.array([0, 4, 1]))
    with pytest.raises(ValueError):
        loss_fn(tg.Tensor(Z), np.array([0, 1]))
    with pytest.raises(ValueError):
        loss_fn(tg.Tensor(Z), np.zeros((3, 5)))
    with pytest.raises(tg.ShapeError):
        loss_fn(tg.Tensor(np.zeros(4)), np.array([1]))
    # A ValueError, as from one_hot and the MLPs: the float dtype is accepted, the value is not.
    # More label cases: test_class_labels.py.
    with pytest.raises(ValueError, match=r"non-integral value 0\.5 at index 0"):
        loss_fn(tg.Tensor(Z), np.array([0.5, 1.0, 2.0]))


def test_fused_loss_nodes_refuse_targets_that_would_broadcast():
    # node() takes targets that check_targets() made; given others, numpy would broadcast
    # them and the logits would get a gradient of the wrong shape. The nodes refuse them.
    z = tg.Tensor(np.zeros((3, 4)), requires_grad=True)
    with pytest.raises(tg.ShapeError, match=r"SoftmaxCrossEntropy: targets of shape \(2, 3, 4\) "
                                            r"for logits of shape \(3, 4\)"):
        nn.SoftmaxCrossEntropy().node(z, np.full((2, 3, 4), 0.25))
    with pytest.raises(tg.ShapeError, match=r"BCEWithLogits: targets of shape \(1, 4\) for "
                                            r"logits of shape \(3, 4\)"):
        nn.BCEWithLogits().node(z, np.zeros((1, 4)))


def test_softmax_cross_entropy_takes_integer_logits_as_constants():
    value = nn.SoftmaxCrossEntropy()(np.array([[1, 2], [3, 4]]), [0, 1])
    expected = -(np.log(1 / (1 + np.e)) + np.log(np.e / (1 + np.e))) / 2
    assert value.data.dtype == np.float64
    assert float(value.item()) == pytest.approx(expected, rel=1e-12)


# ---------------------------------------------------------------------------
# MSELoss and BCELoss
# ---------------------------------------------------------------------------


def test_mse_loss_value_and_gradient():
    rng = np.random.default_rng(8)
    A, Y = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    a = tg.Tensor(A, requires_grad=True)
    loss = nn.MSELoss()(a, Y)
    assert float(loss.item()) == pytest.approx(np.sum((A - Y) ** 2) / (2 * 7), rel=1e-13)
    assert float(loss.item()) == pytest.approx(nn.manual.mse_loss(A, Y), rel=1e-13)
    loss.backward()
    np.testing.assert_allclose(a.grad, (A - Y) / 7, rtol=1e-13, atol=1e-16)
    result = tg.gradcheck(lambda t: nn.MSELoss()(t, Y), [A])
    assert result.ok, str(result)
    # (n,) targets for an (n, 1) output are taken as a column.
    col = tg.Tensor(A[:, :1], requires_grad=True)
    assert float(nn.MSELoss()(col, Y[:, 0]).item()) == pytest.approx(
        np.sum((A[:, 0] - Y[:, 0]) ** 2) / 14, rel=1e-13)
    with pytest.raises(tg.ShapeError):
        nn.MSELoss()(a, Y[:, :2])


def test_bce_loss_value_and_gradient():
    rng = np.random.default_rng(9)
    P = rng.uniform(0.05, 0.95, size=(6, 2))
    Y = rng.integers(0, 2, size=(6, 2)).astype(float)
    p = tg.Tensor(P, requires_grad=True)
    loss = nn.BCELoss()(p, Y)
    expected = -np.sum(Y * np.log(P) + (1 - Y) * np.log(1 - P)) / 6
    assert float(loss.item()) == pytest.approx(expected, rel=1e-13)
    assert float(loss.item()) == pytest.approx(nn.manual.binary_cross_entropy_loss(P, Y),
                                               rel=1e-13)
    loss.backward()
    np.testing.assert_allclose(p.grad, (P - Y) / (P * (1 - P)) / 6, rtol=1e-12)
    result = tg.gradcheck(lambda t: nn.BCELoss()(t, Y), [P])
    assert result.ok, str(result)
    # Through a sigmoid: dL/dz = (p - y)/n, the spec's delta.
    Z = rng.normal(size=(6, 2)) * 3
    z = tg.Tensor(Z, requires_grad=True)
    nn.BCELoss()(tg.sigmoid(z), Y).backward()
    np.testing.assert_allclose(z.grad, (1 / (1 + np.exp(-Z)) - Y) / 6, rtol=1e-10, atol=1e-16)
    with pytest.raises(ValueError):
        nn.BCELoss()(p, Y + 1.0)


def test_bce_loss_clips_probabilities_of_exactly_0_and_1():
    P = np.array([[0.0], [1.0], [1.0], [0.0]])
    Y = np.array([[1.0], [0.0], [1.0], [0.0]])
    loss = nn.BCELoss()(tg.Tensor(P, requires_grad=True), Y)
    assert math.isfinite(float(loss.item()))
    assert float(loss.item()) == pytest.approx(2 * -math.log(1e-12) / 4, rel=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_bce_through_saturated_sigmoid_is_finite(dtype):
    """A confident and right sigmoid output (p rounds to exactly 1.0 or 0.0, which
    happens for |z| > ~17 in float32, > ~37 in float64) costs ~0, not NaN."""
    z = tg.Tensor(np.array([[40.0], [-40.0], [3.0]], dtype=dtype), requires_grad=True)
    Y = np.array([[1.0], [0.0], [1.0]])
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        loss = nn.BCELoss()(tg.sigmoid(z), Y)
        loss.backward()
    assert math.isfinite(float(loss.item())), f"{np.dtype(dtype).name}: loss {loss.item()}"
    assert float(loss.item()) == pytest.approx(math.log1p(math.exp(-3.0)) / 3, rel=1e-4)
    assert np.all(np.isfinite(z.grad)), z.grad


# ---------------------------------------------------------------------------
# Module, Linear, Sequential
# ---------------------------------------------------------------------------


class _TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(3, 5, rng=0), nn.ActivationLayer("tanh"),
                                    nn.Linear(5, 2, rng=1))
        self.scale = tg.Tensor(np.ones(2), requires_grad=True)
        self.constant = tg.Tensor(np.ones(2))  # no grad: not a parameter
        self.name_parameters()

    def forward(self, x):
        return self.layers(x) * self.scale


def test_module_parameters_and_names():
    m = _TwoLayer()
    names = [name for name, _ in m.named_parameters()]
    assert names == ["scale", "layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"]
    assert [p.name for p in m.parameters()] == names
    assert all(isinstance(p, tg.Tensor) and p.requires_grad for p in m.parameters())
    assert m.parameters()[1] is m.layers[0].W
    mlp = nn.MLP([4, 6, 5, 3], ["relu", "gelu", "softmax"], seed=0)
    names = [name for name, _ in mlp.named_parameters()]
    assert names == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b", "layers.4.W",
                     "layers.4.b"]
    assert [p.name for _, p in mlp.named_parameters()] == names


def test_module_call_zero_grad_and_forward():
    m = _TwoLayer()
    X = np.random.default_rng(0).normal(size=(4, 3))
    out = m(X)
    assert isinstance(out, tg.Tensor) and out.shape == (4, 2)
    ref = np.tanh(X @ m.layers[0].W.data.T + m.layers[0].b.data) @ m.layers[2].W.data.T
    np.testing.assert_allclose(out.data, ref + m.layers[2].b.data, rtol=1e-13)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())


def test_gradients_accumulate_until_zero_grad():
    m = _TwoLayer()
    X = np.random.default_rng(1).normal(size=(4, 3))
    m(X).sum().backward()
    first = m.layers[0].W.grad.copy()
    m(X).sum().backward()
    np.testing.assert_allclose(m.layers[0].W.grad, 2 * first, rtol=1e-13)
    m.zero_grad()
    m(X).sum().backward()
    np.testing.assert_allclose(m.layers[0].W.grad, first, rtol=1e-13)


def test_state_dict_round_trip_and_errors():
    a = nn.MLP([4, 6, 3], ["relu", "softmax"], seed=0)
    b = nn.MLP([4, 6, 3], ["relu", "softmax"], seed=1)
    X = np.random.default_rng(2).normal(size=(5, 4))
    state = a.state_dict()
    assert list(state) == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b"]
    # copies, not views of the parameters
    state["layers.0.W"][0, 0] += 1.0
    assert a.linears[0].W.data[0, 0] != state["layers.0.W"][0, 0]
    state = a.state_dict()
    assert not np.allclose(b.predict_proba(X), a.predict_proba(X))
    b.load_state_dict(state)
    np.testing.assert_array_equal(b.predict_proba(X), a.predict_proba(X))
    for name, p in b.named_parameters():
        np.testing.assert_array_equal(p.data, state[name])
        assert p.data is not state[name]
    bad = dict(state)
    bad["layers.0.W"] = np.zeros((6, 5))
    with pytest.raises(ValueError, match="layers.0.W"):
        b.load_state_dict(bad)
    missing = dict(state)
    del missing["layers.2.b"]
    with pytest.raises(KeyError, match="layers.2.b"):
        b.load_state_dict(missing)
    extra = dict(state, **{"layers.9.W": np.zeros(1)})
    with pytest.raises(KeyError, match="layers.9.W"):
        b.load_state_dict(extra)
    # non-strict: loads what is there and says what it left out
    assert b.load_state_dict(missing, strict=False) == (["layers.2.b"], [])
    assert b.load_state_dict(extra, strict=False).unexpected_keys == ["layers.9.W"]


def test_load_state_dict_refuses_what_it_would_load_wrong():
    # NaN loaded silently (nn.load refuses it); 1e39 into float32 became inf with only
    # numpy's cast warning; strict=False with no matching key loaded nothing, said nothing;
    # a shared parameter's two entries with different values kept one; loaded between
    # forward and backward, the old weights' gradient was then applied to the new ones
    model = nn.MLP([4, 6, 3], ["relu", "softmax"], seed=0, dtype=np.float32)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    good = model.state_dict()
    cases = [
        (dict(good, **{"layers.2.b": np.array([0.0, np.nan, 0.0])}), ValueError,
         r"^MLP.load_state_dict: layers.2.b holds NaN or infinite values; expected finite"),
        (dict(good, **{"layers.2.b": np.array([0.0, 1e39, 0.0])}), ValueError,
         r"^MLP.load_state_dict: layers.2.b holds values too large for float32 \(up to 1e\+39\)"),
        ({"W": np.zeros((6, 4))}, KeyError,
         r"none of the state's keys \['W'\] names a parameter of this model"),
    ]
    for state, error, message in cases:
        with warnings.catch_warnings():
            warnings.simplefilter("error")              # (no numpy cast warning either)
            with pytest.raises(error, match=message):
                model.load_state_dict(state, strict=False)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])   # nothing loaded by a refusal

    X = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    loss = model.loss(X, np.arange(5) % 3)
    with pytest.raises(RuntimeError, match=r"parameter layers.2.W is held read-only by a graph "
                                           r"that has not been backpropagated .* Nothing was "
                                           r"loaded"):
        model.load_state_dict(nn.MLP([4, 6, 3], ["relu", "softmax"], seed=1,
                                     dtype=np.float32).state_dict())
    loss.backward()
    model.load_state_dict(good)                         # after backward: fine

    shared = nn.Linear(3, 3, rng=0)
    tied = nn.Sequential(shared, nn.ActivationLayer("tanh"), shared)
    state = tied.state_dict()
    assert list(state) == ["0.W", "0.b", "2.W", "2.b"]
    tied.load_state_dict(state)                         # equal values: fine
    state["2.W"] = state["2.W"] + 1.0
    with pytest.raises(ValueError, match=r"^Sequential.load_state_dict: 0.W and 2.W are one "
                                         r"shared parameter, but the state holds different "
                                         r"values for them"):
        tied.load_state_dict(state)


def test_linear_shapes_init_and_forward():
    lin = nn.Linear(300, 200, init="he", rng=0)
    assert lin.W.shape == (200, 300) and lin.b.shape == (200,)
    assert np.all(lin.b.data == 0)
    assert lin.W.data.var() == pytest.approx(2 / 300, rel=0.05)
    xav = nn.Linear(300, 200, init="xavier", rng=0)
    assert xav.W.data.var() == pytest.approx(2 / 500, rel=0.05)
    X = np.random.default_rng(3).normal(size=(7, 300))
    out = lin(X)
    assert out.shape == (7, 200)
    np.testing.assert_allclose(out.data, X @ lin.W.data.T + lin.b.data, rtol=1e-12)
    with pytest.raises(tg.ShapeError, match=r"Linear: input of shape \(2, 299\) has 299 "
                                            r"features but this layer expects 300"):
        lin(np.zeros((2, 299)))
    with pytest.raises(tg.ShapeError, match=r"Linear: input of shape \(\) has 0 features"):
        lin(np.float64(1.0))
    lin.b = tg.Tensor(np.zeros(3), requires_grad=True)     # a bias replaced by hand: the
    with pytest.raises(tg.ShapeError, match=r"^linear: bias of shape \(3,\)"):  # node says so
        lin(X)
    with pytest.raises(ValueError):
        nn.Linear(0, 3)
    small = nn.Linear(3, 2, rng=1)
    result = tg.gradcheck(lambda x, W, b: tg.linear(x, W, b), [X[:4, :3], small.W.data,
                                                               small.b.data + 0.1])
    assert result.ok, str(result)


@pytest.mark.parametrize("given,converted", [(np.float64, True), (np.int64, True),
                                             (np.float16, False), (np.uint8, False)])
def test_linear_computes_in_its_own_dtype(given, converted):
    """A float32 layer fed float64 (or int64) data computes in float32, as nn.MLP does with
    X, instead of numpy promoting the product to float64: a cast node when the input needs
    a gradient. Narrower inputs (float16, uint8 pixels) numpy already computes in float32:
    they are not copied (the node saves the input as given)."""
    lin = nn.Linear(4, 3, rng=0, dtype=np.float32)
    X = np.arange(8).reshape(2, 4).astype(given)
    out = lin(X)
    assert out.dtype == np.float32
    expected = X.astype(np.float32) @ lin.W.data.T + lin.b.data
    np.testing.assert_array_equal(out.data, expected)
    held = [a for _, a in tg.graph.saved_arrays(out) if a.shape == X.shape]
    assert [a.dtype for a in held] == [np.float32 if converted else np.dtype(given)]
    if np.dtype(given).kind != "f":
        return                          # (integer tensors cannot require a gradient)
    x = tg.Tensor(X, requires_grad=True)
    y = lin(x)
    assert y.dtype == np.float32
    assert (y.grad_fn.parents[0].name == "CastBackward") == converted
    y.sum().backward()
    assert x.grad.dtype == given and lin.W.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, np.tile(lin.W.data.sum(axis=0), (2, 1)), rtol=1e-3)
    same = tg.Tensor(X.astype(np.float32), requires_grad=True)     # same dtype: no cast node
    assert lin(same).grad_fn.parents[0] is same


def test_linear_with_an_integer_weight_set_by_hand_does_not_truncate_its_input():
    lin = nn.Linear(2, 2, rng=0)
    del lin.W                    # (a parameter is replaced by a constant only on purpose)
    lin.W = tg.Tensor(np.array([[1, 0], [0, 1]]))
    np.testing.assert_array_equal(lin(np.array([[0.5, 1.7]])).data, [[0.5, 1.7]])


def test_sequential_applies_in_order_and_indexes():
    seq = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ActivationLayer("relu"), nn.Linear(3, 1, rng=1))
    assert len(seq) == 3
    assert isinstance(seq[1], nn.ActivationLayer)
    assert [type(m) for m in seq] == [nn.Linear, nn.ActivationLayer, nn.Linear]
    X = np.random.default_rng(4).normal(size=(5, 2))
    ref = np.maximum(X @ seq[0].W.data.T + seq[0].b.data, 0) @ seq[2].W.data.T + seq[2].b.data
    np.testing.assert_allclose(seq(X).data, ref, rtol=1e-13)
    assert [name for name, _ in seq.named_parameters()] == ["0.W", "0.b", "2.W", "2.b"]
    with pytest.raises(TypeError):
        nn.Sequential(nn.Linear(2, 3), "relu")


def test_loss_nodes_keep_their_own_copy_of_targets_the_caller_changes_later():
    z = tg.Tensor(np.zeros((1, 2)), requires_grad=True)
    Y = np.array([[1.0, 0.0]])
    loss = nn.SoftmaxCrossEntropy()(z, Y)
    Y[0] = [0.0, 1.0]                              # changed between forward and backward
    loss.backward()
    np.testing.assert_allclose(z.grad, [[-0.5, 0.5]])
    z = tg.Tensor(np.zeros((2, 1)), requires_grad=True)
    t = np.array([[1.0], [0.0]])
    loss = nn.BCEWithLogits()(z, t)
    t[:] = 0.5
    loss.backward()
    np.testing.assert_allclose(z.grad, [[-0.25], [0.25]])
    z32 = tg.Tensor(np.zeros((1, 2), np.float32), requires_grad=True)
    loss = nn.SoftmaxCrossEntropy()(z32, np.array([[1.0, 0.0]]))   # float64 targets
    assert loss.dtype == np.float32


def test_a_plug_in_activation_that_gives_back_its_input_does_not_share_it():
    class Identity:
        cache = None

        def forward(self, x):
            self.cache = np.ones_like(x)
            return x

        def backward(self, g):
            return g * self.cache

    z = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w = tg.Tensor(np.array([3.0, 4.0]), requires_grad=True)
    loss = (nn.ActivationLayer(Identity())(z) * w).sum()
    z.data[0] = 50.0                # z is not saved by the adapter: still writable...
    loss.backward()
    np.testing.assert_array_equal(w.grad, [1.0, 2.0])   # ...but the product saved a copy


def test_bce_loss_and_activation_layer_check_their_arguments():
    for eps, error in ((0, ValueError), (0.7, ValueError), ("x", TypeError), (True, TypeError)):
        with pytest.raises(error, match=r"BCELoss: eps must be a number in \(0, 0\.5\)"):
            nn.BCELoss(eps=eps)
    assert nn.BCELoss(eps=1e-7).eps == 1e-7
    with pytest.raises(TypeError, match=r"got the class ReLU; pass an instance, e\.g\. "
                                        r"nn\.ActivationLayer\(ReLU\(\)\)"):
        nn.ActivationLayer(activations.ReLU)
    with pytest.raises(TypeError, match=r"expected an activation name .* got None"):
        nn.ActivationLayer(None)


def test_linear_names_its_init_argument():
    with pytest.raises(ValueError, match=r"Linear: init must be one of 'he', 'xavier', got 'foo'"):
        nn.Linear(2, 3, init="foo")
    assert nn.Linear(2, 3, init="Xavier", rng=0).W.shape == (3, 2)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"rng": "x"}, TypeError, r"^Linear: rng: seed must be None, a non-negative integer or a "
                              r"numpy.random.Generator, got 'x'"),
    ({"rng": -1}, ValueError, r"^Linear: rng: seed must be None"),
    ({"dtype": np.int64}, TypeError, r"^Linear: dtype must be a floating-point dtype"),
])
def test_linear_names_its_rng_and_dtype_arguments(kwargs, error, message):
    # the messages named neither Linear nor rng ("seed must be ...")
    with pytest.raises(error, match=message):
        nn.Linear(2, 3, **kwargs)


# ---------------------------------------------------------------------------
# Found by an outside audit of the modules and losses
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("make, pred, target, expected", [
    (lambda: nn.MSELoss(), np.array([[1], [2]]), [[1.5], [2.5]], 0.125),
    (lambda: nn.SoftmaxCrossEntropy(), np.array([[0, 0]]), [[0.5, 0.5]], np.log(2)),
    (lambda: nn.BCEWithLogits(), np.array([[2, -1]]), [[0.5, 0.25]], 1.6901896985611953),
    (lambda: nn.BCELoss(), np.array([[1]]), [[0.5]], 13.815510557964274),
])
def test_integer_predictions_do_not_truncate_float_targets(make, pred, target, expected):
    # the targets took the predictions' integer dtype: 0.5 became 0, silently
    with np.errstate(divide="ignore"):
        loss = make()(tg.Tensor(pred), target)
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_bce_loss_lets_nan_predictions_through_and_takes_0_and_1():
    p = tg.Tensor(np.array([[np.nan], [0.2], [0.9]]))
    assert np.isnan(nn.BCELoss()(p, [[1.0], [0.0], [1.0]]).item())   # a diverged model
    assert np.isfinite(nn.BCELoss()(tg.Tensor(np.array([[0.0], [1.0]])), [[0.0], [1.0]]).item())


def test_load_state_dict_names_a_ragged_entry():
    lin = nn.Linear(2, 2, rng=0)
    state = lin.state_dict()
    state["W"] = [[1.0, 2.0], [3.0]]
    with pytest.raises(ValueError, match=r"^Linear\.load_state_dict: W is not an array of numbers"):
        lin.load_state_dict(state)


def test_bce_loss_refuses_predictions_outside_0_1():
    # logits given by mistake were clipped: loss 0 and gradient 0, so training stalled
    p = tg.Tensor(np.array([[1.5], [-0.3]]), requires_grad=True)
    with pytest.raises(ValueError, match=r"^BCELoss: predictions must be probabilities in "
                                         r"\[0, 1\], got range \[-0\.3, 1\.5\].*BCEWithLogits"):
        nn.BCELoss()(p, [[1.0], [0.0]])


def test_softmax_cross_entropy_with_a_masked_class_is_finite():
    # a -inf logit where the target is 0 gave 0 * -inf = NaN
    z = tg.Tensor(np.array([[-np.inf, 1.0, 2.0]]), requires_grad=True)
    with warnings.catch_warnings():
        # numpy's "invalid value" from the first, fast product (a check before it would
        # cost every training step ~1 us); the loss is then recomputed without it
        warnings.simplefilter("ignore", RuntimeWarning)
        loss = nn.SoftmaxCrossEntropy()(z, [2])
    assert loss.item() == pytest.approx(np.log1p(np.exp(-1.0)), rel=1e-12)
    loss.backward()
    p = np.exp(1.0) / (np.exp(1.0) + np.exp(2.0))
    np.testing.assert_allclose(z.grad, [[0.0, p, -p]], rtol=1e-12)


def test_a_loss_refuses_targets_that_require_grad():
    a = tg.Tensor([[1.0]], requires_grad=True)
    b = tg.Tensor([[0.0]], requires_grad=True)
    for loss in (nn.MSELoss(), nn.BCEWithLogits()):
        with pytest.raises(ValueError, match=r"the targets require grad, but a loss does not "
                                             r"differentiate its targets"):
            loss(a, b)
    assert nn.MSELoss()(a, b.detach()).item() == pytest.approx(0.5)
    with tg.no_grad():                                  # nothing is differentiated there
        assert nn.MSELoss()(a, b).item() == pytest.approx(0.5)


def test_a_shared_layer_or_tied_weight_is_one_parameter():
    # listed twice, an optimizer refused the model (it would have stepped them twice);
    # state_dict keeps every name, as PyTorch's does, so older state dicts still load
    layer = nn.Linear(3, 3, rng=0)
    model = nn.Sequential(layer, nn.ActivationLayer("tanh"), layer)
    assert [name for name, _ in model.named_parameters()] == ["0.W", "0.b"]
    assert list(model.state_dict()) == ["0.W", "0.b", "2.W", "2.b"]
    model.load_state_dict(model.state_dict())
    nn.SGD(model.parameters(), lr=0.1)
    decoder = nn.Linear(3, 3, rng=1)
    decoder.W = layer.W                                   # a tied weight
    tied = nn.Sequential(layer, decoder)
    assert [name for name, _ in tied.named_parameters()] == ["0.W", "0.b", "1.b"]
    untied = nn.Sequential(nn.Linear(3, 3, rng=2), nn.Linear(3, 3, rng=3))
    untied.load_state_dict(tied.state_dict())
    np.testing.assert_array_equal(untied.state_dict()["1.W"], layer.W.data)


def test_a_model_with_tied_weights_is_refused_by_save_before_training(tmp_path):
    # it trained, then wrote a checkpoint nn.load could not read (3 optimizer entries for
    # 4 layer arrays); a plain save would have untied the weights silently
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), np.arange(8) % 3
    model = nn.MLP([3, 3, 3], ["tanh", "softmax"], seed=0)
    model.linears[1].W = model.linears[0].W
    monkey = model._loss
    model._loss = lambda *a: pytest.fail("trained before checking")
    with pytest.raises(ValueError, match=r"checkpoint: layer 2's W is the same array as layer "
                                         r"1's W \(tied weights\)"):
        model.fit(X, y, epochs=1, learning_rate=0.1, checkpoint=tmp_path / "ck.npz")
    model._loss = monkey
    with pytest.raises(ValueError, match=r"^save: layer 2's W is the same array"):
        nn.save(model, tmp_path / "m.npz")
    model.fit(X, y, epochs=1, learning_rate=0.1)        # without a file it trains


def test_load_state_dict_changes_nothing_when_it_refuses():
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.Linear(3, 1, rng=1))
    before = model.state_dict()
    bad = {k: v + 100 for k, v in before.items()}
    bad["1.W"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match=r"1\.W has shape \(2, 2\)"):
        model.load_state_dict(bad)
    for name, array in model.state_dict().items():
        np.testing.assert_array_equal(array, before[name], err_msg=name)


def test_deleting_a_parameter_or_submodule_forgets_it():
    lin = nn.Linear(2, 2, rng=0)
    del lin.b
    assert list(lin.state_dict()) == ["W"] and not hasattr(lin, "b")
    inner = nn.Module()
    inner.layer = nn.Linear(2, 2, rng=1)
    inner.other = nn.Linear(2, 2, rng=2)
    del inner.layer
    assert [name for name, _ in inner.named_parameters()] == ["other.W", "other.b"]


def test_a_plug_in_without_a_cache_attribute_works_under_no_grad():
    class Doubler:
        name = "doubler"

        def forward(self, x):
            self.cache = np.asarray(x)        # made here, not in __init__
            return 2 * self.cache

        def backward(self, grad_output):
            return 2 * grad_output

    with tg.no_grad():
        out = nn.ActivationLayer(Doubler())(tg.Tensor(np.ones(3)))
    np.testing.assert_array_equal(out.data, [2.0, 2.0, 2.0])


@pytest.mark.parametrize("value, what", [
    (np.ones((2, 3)), "a numpy array"),
    (tg.Tensor(np.ones((2, 3))), "a tensor that does not require grad"),
])
def test_assigning_a_non_parameter_to_a_parameter_is_refused(value, what):
    # It used to drop W from named_parameters without a word: fit then trained without it.
    lin = nn.Linear(3, 2, rng=0)
    W = lin.W
    with pytest.raises(TypeError, match=rf"Linear.W is a parameter: assigning {what} would "
                                        rf"take it out of training.*\.W\.data = array"):
        lin.W = value
    assert lin.W is W and [n for n, _ in lin.named_parameters()] == ["W", "b"]


def test_a_frozen_parameter_can_be_given_back_and_names_its_in_place_update():
    lin = nn.Linear(3, 2, rng=0)
    lin.W.requires_grad = False
    W = lin.W
    lin.W = lin.W                                  # given back unchanged: kept
    assert lin.W is W and [n for n, _ in lin.named_parameters()] == ["W", "b"]
    with tg.no_grad(), pytest.raises(TypeError, match=r"Linear.W is a frozen parameter "
                                                      r"\(requires_grad=False\).*\.W\.data -= "):
        lin.W -= 1.0                               # (a new tensor: W does not require grad)
    assert lin.W is W


def test_replacing_a_parameter_keeps_its_place_and_none_removes_it():
    lin = nn.Linear(3, 2, rng=0)
    lin.W = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    assert [n for n, _ in lin.named_parameters()] == ["W", "b"]      # not moved to the end
    lin.b = None
    assert [n for n, _ in lin.named_parameters()] == ["W"]
    seq = nn.Sequential(nn.Linear(2, 2, rng=0))
    seq.extra = nn.Linear(2, 2, rng=1)
    seq.extra = None                               # a submodule removed by None
    assert [n for n, _ in seq.named_parameters()] == ["0.W", "0.b"]


@pytest.mark.parametrize("value, what", [
    (np.tanh, r"<ufunc 'tanh'> \(of type ufunc, not a Module\).*skip it\)\. Assign a Module, or"),
    (activations.Tanh(), r"Tanh\(\) \(of type Tanh, not a Module\).*nn\.ActivationLayer"),
    (nn.Linear, r"the class Linear \(not an instance of it\).*Linear\(\.\.\.\) makes one"),
])
def test_assigning_a_non_module_to_a_child_is_refused(value, what):
    # setattr(seq, "1", np.tanh) used to unregister the child without a word: the
    # Sequential's forward then skipped that layer and still ran.
    seq = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ActivationLayer(activations.Tanh()),
                        nn.Linear(3, 1, rng=1))
    X = np.random.default_rng(0).normal(size=(4, 2))
    before = seq(tg.Tensor(X)).data.copy()
    with pytest.raises(TypeError, match=r"Sequential\.1 is a child module \(Tanh\): assigning "
                                        + what):
        setattr(seq, "1", value)
    assert len(seq) == 3 and isinstance(seq[1], nn.ActivationLayer)
    np.testing.assert_array_equal(seq(tg.Tensor(X)).data, before)
    m = nn.Module()
    m.head = nn.Linear(2, 2, rng=0)
    with pytest.raises(TypeError, match=r"Module\.head is a child module \(Linear\).*the "
                                        r"optimizers, state_dict and save would no longer see "
                                        r"it\)\. Assign a Module"):
        m.head = 3
    assert [n for n, _ in m.named_parameters()] == ["head.W", "head.b"]
    del m.head                                       # on purpose: allowed
    m.head = 3
    assert m.head == 3 and m.parameters() == []


def test_named_modules_lists_a_shared_module_once_under_its_first_path():
    shared = nn.Linear(2, 2, rng=0)
    tanh = nn.ActivationLayer(activations.Tanh())
    seq = nn.Sequential(shared, tanh, shared)
    outer = nn.Module()
    outer.body = seq
    outer.again = seq
    assert [(path, type(m).__name__) for path, m in outer.named_modules()] == [
        ("", "Module"), ("body", "Sequential"), ("body.0", "Linear"),
        ("body.1", "ActivationLayer")]
    assert [path for path, _ in seq.named_modules("net.")] == ["net", "net.0", "net.1"]


def test_a_layer_updated_in_place_under_no_grad_keeps_its_parameters():
    model = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    X, y = np.random.default_rng(0).normal(size=(8, 3)), np.arange(8) % 2
    names = [n for n, _ in model.named_parameters()]
    losses = []
    for _ in range(5):
        model.zero_grad()
        loss = model.loss(X, y)
        losses.append(loss.item())
        loss.backward()
        with tg.no_grad():
            for lin in model.linears:
                lin.W -= 0.5 * lin.W.grad
                lin.b -= 0.5 * lin.b.grad
    assert [n for n, _ in model.named_parameters()] == names
    assert losses[-1] < losses[0] - 0.05


def test_a_hand_built_sequential_names_its_parameters_by_their_paths():
    # Every weight was named "W": the backward graph drew identical boxes for all of them
    inner = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ActivationLayer("relu"))
    custom = nn.Linear(4, 2, rng=1)
    custom.W.name = "readout"
    seq = nn.Sequential(inner, custom)
    assert [p.name for p in seq.parameters()] == ["0.0.W", "0.0.b", "readout", "1.b"]
    loss = seq(np.ones((2, 3))).sum()
    dot = tg.viz.backward_graph(loss).source
    assert all(f"{n} (" in dot for n in ("0.0.W", "0.0.b", "readout", "1.b")), dot


@pytest.mark.parametrize("dtype, z", [(np.float32, -17.0), (np.float32, -30.0), (np.float32, -12.0),
                                      (np.float64, -45.0)])
def test_bce_with_logits_keeps_the_gradient_of_strongly_negative_logits(dtype, z):
    # σ(z) rebuilt as (tanh(z/2) + 1)/2 cancelled: 0 below z = -17 in float32 (true 4e-8),
    # 5e-4 relative at -12, which a float32 crosscheck reported as DISAGREE
    logits = tg.Tensor(np.array([[z]], dtype=dtype), requires_grad=True)
    nn.BCEWithLogits()(logits, np.array([[0.0]], dtype=dtype)).backward()
    true = 1.0 / (1.0 + math.exp(-z))                          # (y = 0, n = 1)
    assert logits.grad.dtype == dtype
    np.testing.assert_allclose(logits.grad[0, 0], true, rtol=1e-6 if dtype == np.float32 else 1e-14)



_PROPERTY = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.too_slow])


def _assert_gradcheck_with_floor(fn, inputs, floor=1e-8):
    """gradcheck in float64; differences below ``floor`` are finite-difference noise (a
    saturated softmax's gradient entries of 1e-12 have no correct relative digits)."""
    res = tg.gradcheck(fn, [np.asarray(x, dtype=np.float64) for x in inputs], mode="elements")
    bad = [m for m in res.mismatches if abs(m.analytic - m.numerical) > floor]
    assert (res.ok or res.mismatches) and not bad, str(res)
    assert res.checked == sum(np.size(x) for x in inputs)


@_PROPERTY
@given(n=st.integers(1, 5), k=st.integers(1, 4), scale=st.sampled_from([0.5, 3.0, 6.0]),
       seed=st.integers(0, 2**16))
def test_every_loss_node_gradchecks_for_any_batch_and_width(n, k, scale, seed):
    # the losses were checked at one fixed shape each, BCEWithLogits only through an MLP
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, k)) * scale
    Y = rng.uniform(0, 1, (n, k))
    if k > 1:
        labels = rng.integers(0, k, n)
        _assert_gradcheck_with_floor(lambda z: nn.SoftmaxCrossEntropy()(z, labels), [Z])
    _assert_gradcheck_with_floor(lambda z: nn.BCEWithLogits()(z, Y), [Z])
    _assert_gradcheck_with_floor(lambda a: nn.MSELoss()(a, Y), [Z])
    _assert_gradcheck_with_floor(lambda p: nn.BCELoss()(p, Y), [rng.uniform(0.05, 0.95, (n, k))])


@_PROPERTY
@given(n=st.integers(1, 4), k=st.integers(2, 4), seed=st.integers(0, 2**16))
def test_the_fused_loss_nodes_second_derivatives_gradcheck(n, k, seed):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, k)) * 2
    Y = rng.uniform(0, 1, (n, k))
    labels = rng.integers(0, k, n)
    v = rng.standard_normal((n, k))
    for loss in (lambda z: nn.SoftmaxCrossEntropy()(z, labels), lambda z: nn.BCEWithLogits()(z, Y)):
        def gradient_along_v(z, loss=loss):          # its gradient is the Hessian times v
            with tg.enable_grad():
                return (tg.grad(loss(z), [z], create_graph=True)[0] * v).sum()
        _assert_gradcheck_with_floor(gradient_along_v, [Z])


def test_bce_with_logits_second_derivative_is_the_closed_form():
    # a sigmoid treated as a constant in the recorded backward passed every test
    rng = np.random.default_rng(1)
    Z, Y = rng.standard_normal((4, 3)), rng.uniform(0, 1, (4, 3))
    z = tg.Tensor(Z, requires_grad=True)
    (g,) = tg.grad(nn.BCEWithLogits()(z, Y), [z], create_graph=True)
    (h,) = tg.grad(g.sum(), [z])
    s = 1 / (1 + np.exp(-Z))
    np.testing.assert_allclose(h, s * (1 - s) / 4, rtol=1e-12)      # the loss averages rows


@pytest.mark.parametrize("name", ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh",
                                  "silu"])
@_PROPERTY
@given(shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3),
       seed=st.integers(0, 2**16))
def test_the_activation_adapter_gradchecks_for_any_shape(name, shape, seed):
    # the adapter was checked at one shape; 0-d and empty inputs never
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    # distinct values away from ReLU's kink at 0
    x = ((rng.permutation(n) - n / 2) * 0.1 + 0.013).reshape(shape)
    layer = nn.ActivationLayer(name)
    _assert_gradcheck_with_floor(lambda t: layer(t) * layer(t * 0.5), [x])


def test_the_activation_adapter_scales_a_0d_input_by_the_upstream_gradient():
    x = tg.Tensor(np.array(0.7), requires_grad=True)
    (nn.ActivationLayer("tanh")(x) * 3.0).backward()
    assert x.grad == pytest.approx(3.0 * (1 - np.tanh(0.7) ** 2), rel=1e-12)


@pytest.mark.parametrize("container", [list, tuple, lambda ms: dict(enumerate(ms)),
                                       lambda ms: [ms], lambda ms: {"block": list(ms)},
                                       lambda ms: ((tuple(ms),),), set])
def test_modules_kept_in_a_plain_container_are_refused_with_sequential(container):
    # (nested containers and sets were accepted silently, their modules never registered)
    # layers in a Python list were never trained (their .grad filled, their W unchanged
    # after every step) and left out of state_dict and save, without a word
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = container([nn.Linear(3, 4, rng=0), nn.ActivationLayer("relu")])

    with pytest.raises(TypeError, match=r"^Net.hidden: a (list|tuple|dict|set) of modules or "
                                        r"parameters is not registered: parameters\(\), the "
                                        r"optimizers, state_dict and save would never see them"):
        Net()

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.hidden = nn.Sequential(nn.Linear(3, 4, rng=0), nn.ActivationLayer("relu"))
            self.sizes = [3, 4]                        # a list of anything else: fine

        def forward(self, x):
            for layer in self.hidden:
                x = layer(x)
            return self.hidden[0](np.ones((1, 3))).sum() + x.sum()

    net = Fixed()
    assert [name for name, _ in net.named_parameters()] == ["hidden.0.W", "hidden.0.b"]
    net(np.ones((2, 3))).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_a_list_that_holds_itself_is_an_ordinary_attribute():
    loop: list = [1]
    loop.append(loop)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.loop = loop

    assert Net().loop is loop and Net().parameters() == []


def test_a_tensor_made_by_an_op_kept_as_an_attribute_is_not_a_parameter():
    # It was registered (requires_grad and all): after one forward pass the optimizers
    # refused the model, state_dict listed it, load_state_dict failed half way (after
    # changing the parameters before it), and a forward under no_grad was refused
    class Keep(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3, rng=0)

        def forward(self, x):
            self.last = self.lin(x)                  # kept for later, as a hook would
            return self.last

    model = nn.Sequential(nn.Linear(3, 3, rng=1), Keep())
    model(np.ones((2, 3))).sum().backward()
    names = ["0.W", "0.b", "1.lin.W", "1.lin.b"]
    assert [n for n, _ in model.named_parameters()] == names
    assert list(model.state_dict()) == names
    nn.SGD(model.parameters(), lr=0.1).step()
    model.load_state_dict(model.state_dict())
    with tg.no_grad():
        model(np.ones((2, 3)))
    assert not model[1].last.requires_grad          # the plain attribute, replaced

    class Param(nn.Module):
        def __init__(self):
            super().__init__()
            self.W = tg.Tensor(np.ones(2), requires_grad=True)

    m = Param()
    with pytest.raises(TypeError, match=r"Param.W is a parameter: assigning a tensor made by "
                                        r"an op \(not a leaf\) would take it out of training"):
        m.W = m.W * 2.0


def test_load_state_dict_takes_tensors_as_the_values():
    # dict(other.named_parameters()) was refused: "W is not an array of numbers"
    a, b = nn.Linear(3, 2, rng=0), nn.Linear(3, 2, rng=1)
    b.load_state_dict(dict(a.named_parameters()))
    assert np.array_equal(b.W.data, a.W.data) and b.W.data is not a.W.data
    assert np.array_equal(b.b.data, a.b.data)


def test_read_only_parameters_made_so_by_their_owner_are_told_apart_from_a_graphs():
    # load_state_dict and the optimizers said "held read-only by a graph" for an array the
    # user had made read-only; load_state_dict refused to replace it (harmless to replace)
    lin = nn.Linear(3, 2, rng=0)
    frozen = lin.W.data.copy()
    frozen.setflags(write=False)
    lin.W.data = frozen
    assert not tg.held_by_graph(frozen)
    lin.load_state_dict(nn.Linear(3, 2, rng=1).state_dict())
    np.testing.assert_array_equal(lin.W.data, nn.Linear(3, 2, rng=1).W.data)
    lin.W.data = frozen
    lin.W.grad = np.ones((2, 3))
    with pytest.raises(RuntimeError, match=r"holds a read-only array \(made so by its owner, not "
                                           r"by a graph\), which cannot be updated in place"):
        nn.SGD(lin.parameters(), lr=0.1).step()
    out = lin(tg.Tensor(np.ones((4, 3)), requires_grad=True))
    assert tg.held_by_graph(lin.W.data)
    out.sum().backward()
    assert not tg.held_by_graph(lin.W.data)


def test_a_list_of_activations_kept_on_a_module_is_not_refused():
    # the list check took any tensor that requires grad for a parameter: an activation
    # kept in forward (self.acts = [h]) was refused
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3, rng=0)

        def forward(self, x):
            h = self.lin(x)
            self.acts = [h]
            return h

    net = Net()
    net(np.ones((2, 3))).sum().backward()
    assert net.acts[0].requires_grad and [n for n, _ in net.named_parameters()] == ["lin.W",
                                                                                    "lin.b"]
