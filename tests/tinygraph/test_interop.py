"""numpy functions on Tensors record the matching tinygraph op; unsupported ones raise
TypeError naming the numpy function; every op class in ALL_FUNCTIONS records a node."""
from __future__ import annotations

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import ops
from tinygraph.ops import elementwise, linalg, reduce, shape

X0 = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]])
W0 = np.array([[1.0, -2.0], [0.5, 3.0], [-1.0, 0.2]])
C = np.array([[True, False, True], [False, True, True]])


def _x():
    return tg.Tensor(X0.copy(), requires_grad=True)


NUMPY_CASES = {
    # name: (call on x, expected grad_fn class, numpy reference for the forward,
    #        expected dL/dx of L = sum(out * ones))
    "exp": (lambda x: np.exp(x), elementwise.Exp, np.exp(X0), np.exp(X0)),
    "log": (lambda x: np.log(x * x), elementwise.Log, np.log(X0 * X0), 2 / X0),
    "sqrt": (lambda x: np.sqrt(x * x), elementwise.Sqrt, np.abs(X0), np.sign(X0)),
    "abs": (lambda x: np.abs(x), elementwise.Abs, np.abs(X0), np.sign(X0)),
    "tanh": (lambda x: np.tanh(x), elementwise.Tanh, np.tanh(X0), 1 - np.tanh(X0) ** 2),
    "negative": (lambda x: np.negative(x), elementwise.Neg, -X0, -np.ones_like(X0)),
    "add": (lambda x: np.add(x, 2.0), elementwise.Add, X0 + 2, np.ones_like(X0)),
    "subtract": (lambda x: np.subtract(1.0, x), elementwise.Sub, 1 - X0, -np.ones_like(X0)),
    "multiply": (lambda x: np.multiply(x, 3.0), elementwise.Mul, X0 * 3, np.full_like(X0, 3)),
    "divide": (lambda x: np.divide(x, 4.0), elementwise.Div, X0 / 4, np.full_like(X0, 0.25)),
    "power": (lambda x: np.power(x, 2), elementwise.Pow, X0 ** 2, 2 * X0),
    "maximum": (lambda x: np.maximum(x, 0), elementwise.Maximum, np.maximum(X0, 0),
                (X0 > 0).astype(float)),
    "minimum": (lambda x: np.minimum(x, 0), elementwise.Minimum, np.minimum(X0, 0),
                (X0 < 0).astype(float)),
    "clip": (lambda x: np.clip(x, -0.8, 1.0), elementwise.Clip, np.clip(X0, -0.8, 1.0),
             ((X0 >= -0.8) & (X0 <= 1.0)).astype(float)),
    "where": (lambda x: np.where(C, x, 0), elementwise.Where, np.where(C, X0, 0),
              C.astype(float)),
    "sum_axis": (lambda x: np.sum(x, axis=0), reduce.Sum, X0.sum(axis=0), np.ones_like(X0)),
    "sum": (lambda x: np.sum(x), reduce.Sum, X0.sum(), np.ones_like(X0)),
    "mean": (lambda x: np.mean(x, axis=1, keepdims=True), reduce.Mean,
             X0.mean(axis=1, keepdims=True), np.full_like(X0, 1 / 3)),
    "max": (lambda x: np.max(x, axis=1), reduce.Max, X0.max(axis=1),
            (X0 == X0.max(axis=1, keepdims=True)).astype(float)),
    "min": (lambda x: np.min(x), reduce.Min, X0.min(), (X0 == X0.min()).astype(float)),
    "amax": (lambda x: np.amax(x, axis=0), reduce.Max, X0.max(axis=0),
             (X0 == X0.max(axis=0, keepdims=True)).astype(float)),
    "dot": (lambda x: np.dot(x, W0), linalg.MatMul, X0 @ W0,
            np.ones((2, 2)) @ W0.T),
    "matmul": (lambda x: np.matmul(x, W0), linalg.MatMul, X0 @ W0, np.ones((2, 2)) @ W0.T),
    "matmul_operator_left_array": (lambda x: W0.T @ x.T, linalg.MatMul, W0.T @ X0.T,
                                   (np.ones((2, 2)) @ W0.T)),
    "concatenate": (lambda x: np.concatenate([x, x]), shape.Concatenate,
                    np.concatenate([X0, X0]), np.full_like(X0, 2.0)),
    "stack": (lambda x: np.stack([x, x * 1.0], axis=1), shape.Stack,
              np.stack([X0, X0], axis=1), np.full_like(X0, 2.0)),
    "reshape": (lambda x: np.reshape(x, (3, 2)), shape.Reshape, X0.reshape(3, 2),
                np.ones_like(X0)),
    "transpose": (lambda x: np.transpose(x), shape.Transpose, X0.T, np.ones_like(X0)),
    "swapaxes": (lambda x: np.swapaxes(x, 0, 1), shape.SwapAxes, X0.swapaxes(0, 1),
                 np.ones_like(X0)),
    "expand_dims": (lambda x: np.expand_dims(x, 0), shape.ExpandDims, X0[None],
                    np.ones_like(X0)),
    "squeeze": (lambda x: np.squeeze(x[None]), shape.Squeeze, X0, np.ones_like(X0)),
    "broadcast_to": (lambda x: np.broadcast_to(x, (4, 2, 3)), shape.BroadcastTo,
                     np.broadcast_to(X0, (4, 2, 3)), np.full_like(X0, 4.0)),
}


@pytest.mark.parametrize("name", sorted(NUMPY_CASES))
def test_numpy_function_records_matching_op_and_gradient(name):
    call, cls, forward, expected_grad = NUMPY_CASES[name]
    x = _x()
    y = call(x)
    assert isinstance(y, tg.Tensor), f"np call returned {type(y).__name__}"
    assert type(y.grad_fn) is cls, f"{name}: grad_fn {type(y.grad_fn).__name__}"
    np.testing.assert_allclose(y.data, forward, rtol=1e-12)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, expected_grad, rtol=1e-12, atol=1e-12)


def test_numpy_operators_with_array_on_the_left_dispatch_to_tensor():
    x = _x()
    c = np.full((2, 3), 2.0)
    for expr, cls in [(c + x, elementwise.Add), (c - x, elementwise.Sub),
                      (c * x, elementwise.Mul), (c / x, elementwise.Div),
                      (c ** x, elementwise.Pow)]:
        assert isinstance(expr, tg.Tensor) and type(expr.grad_fn) is cls


@pytest.mark.parametrize("call,name", [
    (lambda t: np.sin(t), "sin"),
    (lambda t: np.cumsum(t), "cumsum"),
    (lambda t: np.asarray(t), "asarray"),
    (lambda t: np.cos(t), "cos"),
    (lambda t: np.sort(t), "sort"),
    (lambda t: np.add.reduce(t), "reduce"),
    (lambda t: np.exp(t, out=np.empty((2, 3))), "exp"),
])
def test_unsupported_numpy_functions_raise_type_error_naming_them(call, name):
    x = _x()
    with pytest.raises(TypeError) as info:
        call(x)
    assert name in str(info.value), str(info.value)


def test_metadata_functions_answer_from_data():
    x = _x()
    assert np.shape(x) == (2, 3)
    assert np.ndim(x) == 2
    assert np.size(x) == 6


# -- every op class records a node --------------------------------------------------------

def _leaf(shape=(2, 3), lo=0.5, hi=2.0, seed=0):
    r = np.random.default_rng(seed)
    return tg.Tensor(r.uniform(lo, hi, shape), requires_grad=True)


RECIPES = {
    "Add": lambda: ops.add(_leaf(), _leaf()),
    "Sub": lambda: ops.sub(_leaf(), 1.0),
    "Mul": lambda: ops.mul(2.0, _leaf()),
    "Div": lambda: ops.div(_leaf(), _leaf()),
    "Pow": lambda: ops.pow(_leaf(), _leaf()),
    "Neg": lambda: ops.neg(_leaf()),
    "MatMul": lambda: ops.matmul(_leaf((2, 3)), _leaf((3, 4))),
    "Linear": lambda: ops.linear(_leaf((2, 3)), _leaf((4, 3)), _leaf((4,))),
    "Exp": lambda: ops.exp(_leaf()),
    "Log": lambda: ops.log(_leaf()),
    "Sqrt": lambda: ops.sqrt(_leaf()),
    "Abs": lambda: ops.abs(_leaf()),
    "Maximum": lambda: ops.maximum(_leaf(), 1.0),
    "Minimum": lambda: ops.minimum(_leaf(), 1.0),
    "Clip": lambda: ops.clip(_leaf(), 0.7, 1.5),
    "ReLU": lambda: ops.relu(_leaf()),
    "Sigmoid": lambda: ops.sigmoid(_leaf()),
    "Tanh": lambda: ops.tanh(_leaf()),
    "Where": lambda: ops.where(np.array([True, False, True]), _leaf(), 0.0),
    "Cast": lambda: ops.cast(_leaf(), np.float32),
    "Sum": lambda: ops.sum(_leaf(), axis=1),
    "Mean": lambda: ops.mean(_leaf()),
    "Max": lambda: ops.max(_leaf(), axis=0),
    "Min": lambda: ops.min(_leaf()),
    "LogSumExp": lambda: ops.logsumexp(_leaf(), axis=1),
    "Softmax": lambda: ops.softmax(_leaf()),
    "LogSoftmax": lambda: ops.log_softmax(_leaf()),
    "Reshape": lambda: ops.reshape(_leaf(), 3, 2),
    "Transpose": lambda: ops.transpose(_leaf()),
    "SwapAxes": lambda: ops.swapaxes(_leaf(), 0, 1),
    "ExpandDims": lambda: ops.expand_dims(_leaf(), 0),
    "Squeeze": lambda: ops.squeeze(_leaf((2, 1, 3)), 1),
    "BroadcastTo": lambda: ops.broadcast_to(_leaf((1, 3)), (4, 3)),
    "GetItem": lambda: ops.getitem(_leaf(), (slice(None), [0, 0, 2])),
    "IndexAdd": lambda: shape.IndexAdd.apply(_leaf((3,)), index=np.array([0, 2, 0]),
                                             shape=(4,)),
    "Concatenate": lambda: ops.concatenate([_leaf(), _leaf((1, 3))]),
    "Stack": lambda: ops.stack([_leaf(), _leaf()], axis=1),
}


def test_all_functions_is_complete_and_classes_are_functions():
    assert len(ops.ALL_FUNCTIONS) >= 37
    for cls in ops.ALL_FUNCTIONS:
        assert issubclass(cls, tg.Function)
    missing = [c.__name__ for c in ops.ALL_FUNCTIONS if c.__name__ not in RECIPES]
    assert not missing, f"add a recipe for {missing}"


@pytest.mark.parametrize("cls", ops.ALL_FUNCTIONS, ids=lambda c: c.__name__)
def test_every_op_records_a_node_and_backpropagates(cls):
    assert cls.__name__ in RECIPES, f"no recipe for {cls.__name__}"
    out = RECIPES[cls.__name__]()
    assert isinstance(out.grad_fn, cls)
    assert type(out.grad_fn) is cls
    assert out.requires_grad and not out.is_leaf
    leaves = [p for p in out.grad_fn.parents if isinstance(p, tg.Tensor)]
    assert leaves, "the node links to its input leaves"
    (out * 1.0).sum().backward()
    for t in leaves:
        assert t.grad is not None and t.grad.shape == t.shape
        assert np.all(np.isfinite(t.grad))


@pytest.mark.parametrize("call, message", [
    (lambda t: np.reshape(t, (3, 2), order="F"), r"numpy.reshape on a Tensor: order='F' is not supported"),
    (lambda t: np.concatenate([t, t], dtype=np.float32), r"numpy.concatenate on a Tensor: dtype="),
    (lambda t: np.stack([t, t], dtype=np.float32), r"numpy.stack on a Tensor: dtype="),
    (lambda t: np.concatenate([t, t], axis=None), r"axis=None\) on a Tensor: flatten the inputs"),
])
def test_numpy_options_tinygraph_cannot_honour_are_refused_not_ignored(call, message):
    t = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    with pytest.raises(TypeError, match=message):
        call(t)
    # the defaults, spelled out, are fine
    assert np.reshape(t, (3, 2), order="C").shape == (3, 2)
    assert np.reshape(t, (3, 2), "C").shape == (3, 2)
    assert np.concatenate([t, t], axis=1).shape == (2, 6)


@pytest.mark.parametrize("call, error, fragment", [
    (lambda x: np.greater(x, [1.0, 2.0, 3.0]), ValueError, "could not be broadcast"),
    (lambda x: np.greater(x, "a"), TypeError, "did not contain a loop"),
    (lambda x: np.logical_and(x, None), TypeError, "dtype object"),
])
def test_numpy_comparisons_on_tensors_name_the_call(call, error, fragment):
    x = tg.Tensor(np.ones(2), requires_grad=True)
    with pytest.raises(error, match=r"^numpy\.\w+ on a Tensor: .*" + fragment):
        call(x)
