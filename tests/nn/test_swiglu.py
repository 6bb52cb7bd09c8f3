"""nn.SwiGLU: shapes, gradients against finite differences, dtypes, a numpy reference,
parameter names and shape errors."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nn
import tinygraph as tg


def _silu(z):
    return z / (1.0 + np.exp(-z))


def _ref_forward(x, W1, W3, W2, b1=None, b3=None, b2=None):
    g = x @ W1.T + (0 if b1 is None else b1)
    u = x @ W3.T + (0 if b3 is None else b3)
    return (_silu(g) * u) @ W2.T + (0 if b2 is None else b2)


def _ref_backward(x, W1, W3, W2, dy):
    """Hand-written gradients of sum(y * dy) w.r.t. x, W1, W3, W2 (no biases)."""
    g, u = x @ W1.T, x @ W3.T
    s = 1.0 / (1.0 + np.exp(-g))
    a = g * s
    h = a * u
    dh = dy @ W2
    dg = dh * u * (s * (1 + g * (1 - s)))
    du = dh * a
    rows = lambda t: t.reshape(-1, t.shape[-1])  # noqa: E731
    return {"x": dg @ W1 + du @ W3,
            "w1.W": rows(dg).T @ rows(x), "w3.W": rows(du).T @ rows(x),
            "w2.W": rows(dy).T @ rows(h)}


def _module_as_function(m: nn.SwiGLU):
    """fn(x, W1, W3, W2[, b1, b3, b2]) that runs the module itself on those parameters."""
    def fn(x, W1, W3, W2, *biases):
        m.w1.W, m.w3.W, m.w2.W = W1, W3, W2
        if biases:
            m.w1.b, m.w3.b, m.w2.b = biases
        return m(x)
    return fn


@pytest.mark.parametrize("shape", [(5, 8), (2, 3, 8)])
def test_output_shape(shape):
    m = nn.SwiGLU(8, 20, rng=0)
    x = np.random.default_rng(1).standard_normal(shape)
    y = m(x)
    assert isinstance(y, tg.Tensor)
    assert y.shape == shape
    assert y.dtype == np.float64


def test_parameter_shapes_and_names():
    m = nn.SwiGLU(6, 16, rng=0)
    m.name_parameters()
    named = list(m.named_parameters())
    assert [n for n, _ in named] == ["w1.W", "w3.W", "w2.W"]
    assert [p.name for _, p in named] == ["w1.W", "w3.W", "w2.W"]
    assert [p.shape for _, p in named] == [(16, 6), (16, 6), (6, 16)]
    assert list(m.state_dict()) == ["w1.W", "w3.W", "w2.W"]

    mb = nn.SwiGLU(6, 16, bias=True, rng=0)
    mb.name_parameters()
    assert [p.name for p in mb.parameters()] == ["w1.W", "w1.b", "w3.W", "w3.b", "w2.W", "w2.b"]
    assert [p.shape for p in mb.parameters()] == [(16, 6), (16,), (16, 6), (16,), (6, 16), (6,)]
    assert all(np.all(b.data == 0) for b in (mb.w1.b, mb.w3.b, mb.w2.b))


def test_same_seed_same_weights_and_branches_differ():
    a, b = nn.SwiGLU(4, 10, rng=3), nn.SwiGLU(4, 10, rng=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
    assert not np.array_equal(a.w1.W.data, a.w3.W.data)


@pytest.mark.parametrize("shape", [(4, 7), (2, 3, 7)])
def test_matches_numpy_reference_forward(shape):
    m = nn.SwiGLU(7, 19, rng=0)
    x = np.random.default_rng(2).standard_normal(shape) * 2
    y = m(x).data
    ref = _ref_forward(x, m.w1.W.data, m.w3.W.data, m.w2.W.data)
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)


def test_matches_numpy_reference_forward_with_bias():
    m = nn.SwiGLU(5, 11, bias=True, rng=0)
    rng = np.random.default_rng(4)
    for lin in (m.w1, m.w3, m.w2):            # non-zero biases, so they count
        lin.b.data = rng.standard_normal(lin.b.shape)
    x = rng.standard_normal((3, 5))
    ref = _ref_forward(x, m.w1.W.data, m.w3.W.data, m.w2.W.data,
                       m.w1.b.data, m.w3.b.data, m.w2.b.data)
    np.testing.assert_allclose(m(x).data, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(4, 3), (2, 2, 3)])
def test_gradcheck_module_all_parameters_and_input(shape):
    m = nn.SwiGLU(3, 5, rng=0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape)
    inputs = [x, m.w1.W.data, m.w3.W.data, m.w2.W.data]
    res = tg.gradcheck(_module_as_function(m), inputs, mode="elements")
    assert res.ok, str(res)
    assert res.checked == sum(np.size(a) for a in inputs)


def test_gradcheck_module_with_bias():
    m = nn.SwiGLU(3, 4, bias=True, rng=0)
    rng = np.random.default_rng(6)
    inputs = [rng.standard_normal((3, 3)), m.w1.W.data, m.w3.W.data, m.w2.W.data,
              rng.standard_normal(4), rng.standard_normal(4), rng.standard_normal(3)]
    res = tg.gradcheck(_module_as_function(m), inputs, mode="elements")
    assert res.ok, str(res)


@pytest.mark.parametrize("shape", [(6, 4), (2, 3, 4)])
def test_module_gradients_match_hand_written_backward(shape):
    m = nn.SwiGLU(4, 9, rng=1)
    rng = np.random.default_rng(7)
    x = tg.Tensor(rng.standard_normal(shape), requires_grad=True)
    dy = rng.standard_normal(shape)
    (m(x) * dy).sum().backward()
    ref = _ref_backward(x.data, m.w1.W.data, m.w3.W.data, m.w2.W.data, dy)
    np.testing.assert_allclose(x.grad, ref["x"], rtol=1e-10, atol=1e-12)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, ref[name], rtol=1e-10, atol=1e-12, err_msg=name)


def test_module_called_twice_in_one_graph():
    """The one SiLU object serves two calls; each node keeps its own cache."""
    m = nn.SwiGLU(3, 6, rng=2)
    rng = np.random.default_rng(8)
    x1, x2 = rng.standard_normal((2, 3)), rng.standard_normal((4, 3))
    (m(x1).sum() + m(x2).sum()).backward()
    W = (m.w1.W.data, m.w3.W.data, m.w2.W.data)
    r1 = _ref_backward(x1, *W, np.ones((2, 3)))
    r2 = _ref_backward(x2, *W, np.ones((4, 3)))
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, r1[name] + r2[name], rtol=1e-10, err_msg=name)


@pytest.mark.parametrize("shape", [(4, 8), (2, 3, 8)])
def test_float32_block_computes_in_float32_for_float64_data(shape):
    m = nn.SwiGLU(8, 12, rng=0, dtype=np.float32)
    X = np.random.default_rng(9).standard_normal(shape)               # float64 data
    x = tg.Tensor(X, requires_grad=True)
    y = m(x)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.data, m(X.astype(np.float32)).data)
    y.sum().backward()
    assert x.grad.dtype == np.float64                    # back in the input's own dtype
    assert all(p.grad.dtype == np.float32 for p in m.parameters())
    y = m(x)                                             # x is cast once for both branches
    assert [n.name for n in tg.graph.nodes(y)].count("CastBackward") == 1


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("shape", [(4, 8), (2, 3, 8)])
def test_float32_stays_float32(shape, bias):
    m = nn.SwiGLU(8, 12, bias=bias, rng=0, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    if bias:                                   # (they start at 0: make them count)
        for k, lin in enumerate((m.w1, m.w3, m.w2)):
            lin.b.data[...] = np.linspace(-0.5, 0.5, lin.b.shape[0]) * (k + 1)
    x = tg.Tensor(np.random.default_rng(9).standard_normal(shape).astype(np.float32),
                  requires_grad=True)
    y = m(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32
    for name, p in m.named_parameters():
        assert p.grad is not None and p.grad.dtype == np.float32, name
        assert p.grad.shape == p.shape, name
    # and close to the float64 computation on the same (float32-rounded) numbers
    f64 = lambda t: None if t is None else t.data.astype(np.float64)  # noqa: E731
    ref = _ref_forward(f64(x), *(f64(lin.W) for lin in (m.w1, m.w3, m.w2)),
                       *(f64(lin.b) for lin in (m.w1, m.w3, m.w2)))
    np.testing.assert_allclose(y.data, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5), (5,)])
def test_wrong_feature_count_raises_shape_error(shape):
    m = nn.SwiGLU(8, 16, rng=0)
    with pytest.raises(tg.ShapeError) as info:
        m(np.zeros(shape))
    msg = str(info.value)
    assert "SwiGLU" in msg
    assert "5 features" in msg and "expects 8" in msg
    assert "(..., 8)" in msg


def test_scalar_input_raises_shape_error():
    with pytest.raises(tg.ShapeError):
        nn.SwiGLU(2, 4, rng=0)(np.float64(1.0))


@pytest.mark.parametrize("args", [(0, 4), (4, 0), (2.5, 4), (True, 4), (4, -1)])
def test_bad_sizes_rejected(args):
    with pytest.raises(ValueError, match="SwiGLU"):
        nn.SwiGLU(*args)


def test_exported_and_repr():
    assert "SwiGLU" in nn.__all__
    text = repr(nn.SwiGLU(4, 8, rng=0))
    assert "(w1): Linear(n_in=4, n_out=8, bias=False)" in text
    assert "(w2): Linear(n_in=8, n_out=4, bias=False)" in text
    assert "SiLU" in text


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(lead=st.lists(st.integers(1, 3), max_size=3).map(tuple), d_model=st.integers(1, 3),
       d_hidden=st.integers(1, 4), bias=st.booleans(), seed=st.integers(0, 2**16))
def test_gradcheck_module_for_any_leading_shape_and_width(lead, d_model, d_hidden, bias, seed):
    # SwiGLU was checked at two fixed shapes
    m = nn.SwiGLU(d_model, d_hidden, bias=bias, rng=seed)
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(lead + (d_model,)), m.w1.W.data, m.w3.W.data, m.w2.W.data]
    if bias:
        inputs += [rng.standard_normal(d_hidden), rng.standard_normal(d_hidden),
                   rng.standard_normal(d_model)]
    res = tg.gradcheck(_module_as_function(m), inputs, mode="elements")
    assert res.ok, str(res)
    assert res.checked == sum(np.size(a) for a in inputs)
