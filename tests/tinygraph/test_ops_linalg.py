"""matmul (1-D, 2-D, batched, broadcasting batch dims) and the fused linear(x, W, b)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygraph as tg
from tinygraph.ops import linalg
from _tgutil import (SETTINGS, assert_float32_everywhere, assert_gradcheck, leaf, normal,
                     rng_of, seeds)

dim = st.integers(1, 4)


@st.composite
def matmul_shapes(draw):
    n, k, m = draw(dim), draw(dim), draw(dim)
    kind = draw(st.sampled_from(["vv", "vm", "mv", "mm", "bb", "bm", "mb", "vb", "bv",
                                 "broadcast_batch"]))
    batch = tuple(draw(st.lists(dim, min_size=1, max_size=2)))
    if kind == "vv":
        return (k,), (k,)
    if kind == "vm":
        return (k,), (k, m)
    if kind == "mv":
        return (n, k), (k,)
    if kind == "mm":
        return (n, k), (k, m)
    if kind == "bb":
        return batch + (n, k), batch + (k, m)
    if kind == "bm":
        return batch + (n, k), (k, m)
    if kind == "mb":
        return (n, k), batch + (k, m)
    if kind == "vb":
        return (k,), batch + (k, m)
    if kind == "bv":
        return batch + (n, k), (k,)
    # batch dims that broadcast against each other: (B, 1, n, k) @ (C, k, m)
    return (batch[0], 1, n, k), (draw(dim), k, m)


@SETTINGS
@given(shp=matmul_shapes(), seed=seeds)
def test_matmul_gradcheck(shp, seed):
    sa, sb = shp
    r = rng_of(seed)
    a, b = normal(r, sa), normal(r, sb)
    out = tg.matmul(tg.Tensor(a), tg.Tensor(b))
    np.testing.assert_allclose(out.data, np.matmul(a, b), rtol=1e-12, atol=1e-12)
    assert out.shape == np.matmul(a, b).shape
    assert_gradcheck(lambda x, y: x @ y, [a, b])
    ta, tb = leaf(a), leaf(b)
    (ta @ tb).sum().backward()
    assert ta.grad.shape == sa and tb.grad.shape == sb


@pytest.mark.parametrize("sa,sb", [((1, 3), (3, 4)), ((5, 1, 3), (3, 2)), ((1, 3), (2, 3, 4)),
                                   ((3,), (3, 1)), ((1, 1), (1, 1)), ((2, 1, 3), (2, 3, 1))])
def test_matmul_inner_or_outer_dimension_one(sa, sb):
    r = np.random.default_rng(0)
    a, b = normal(r, sa), normal(r, sb)
    assert_gradcheck(lambda x, y: x @ y, [a, b])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_one_weight_gradient_is_the_exact_outer_product_through_blas(dtype, monkeypatch):
    # An inner dimension of 1 is numpy matmul's slow path: linear and matmul hand the
    # product to np.dot instead, which gives the same exact products.
    r = np.random.default_rng(4)
    X, W, G = (normal(r, s).astype(dtype) for s in [(1, 7), (5, 7), (1, 5)])
    calls = []
    real_dot = np.dot
    monkeypatch.setattr(linalg.np, "dot", lambda a, b: calls.append((a.shape, b.shape))
                        or real_dot(a, b))
    w = leaf(W)
    tg.linear(tg.Tensor(X), w).backward(G)
    w2 = leaf(W.T.copy())
    (tg.Tensor(X) @ w2).backward(G)
    assert calls == [((5, 1), (1, 7)), ((7, 1), (1, 5))]
    assert w.grad.dtype == dtype and w2.grad.dtype == dtype
    np.testing.assert_array_equal(w.grad, G.T * X)          # identical, not just close
    np.testing.assert_array_equal(w2.grad, X.T * G)
    # batches of more rows keep matmul; a recorded backward (Tensors) keeps the broadcast
    tg.linear(tg.Tensor(np.vstack([X, X])), leaf(W)).backward(np.vstack([G, G]))
    assert len(calls) == 2
    w3 = leaf(W)
    (gw,) = tg.grad(tg.linear(tg.Tensor(X), w3).sum(), [w3], create_graph=True)
    assert isinstance(gw, tg.Tensor) and len(calls) == 2
    np.testing.assert_array_equal(gw.data, np.ones((5, 1), dtype) * X)


def test_batch_one_outer_product_with_mixed_dtypes_and_batched_operands(monkeypatch):
    r = np.random.default_rng(5)
    calls = []
    real_dot = np.dot
    monkeypatch.setattr(linalg.np, "dot", lambda a, b: calls.append(1) or real_dot(a, b))
    # a float32 constant row against a float64 weight: numpy's promotion, exact products
    X, W, G = normal(r, (1, 6)).astype(np.float32), normal(r, (4, 6)), normal(r, (1, 4))
    w = leaf(W)
    tg.linear(tg.Tensor(X), w).backward(G)
    assert calls == [1] and w.grad.dtype == np.float64
    np.testing.assert_array_equal(w.grad, G.T * X)
    # batched (2, 1, k) @ (k, m): numpy's np.dot means something else there: broadcast
    A, B = normal(r, (2, 1, 3)), normal(r, (3, 4))
    b = leaf(B)
    (tg.Tensor(A) @ b).sum().backward()
    assert calls == [1]
    np.testing.assert_allclose(b.grad, (np.swapaxes(A, -1, -2) * np.ones((2, 1, 4))).sum(0),
                               rtol=1e-12)


@pytest.mark.parametrize("x_dtype,w_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                             (np.float32, np.float64)])
def test_batch_one_weight_gradient_of_a_mid_sized_layer_is_padded_and_still_exact(
        x_dtype, w_dtype, monkeypatch):
    # Between _PAD_MIN and _PAD_MAX elements the outer product is a matmul padded to an
    # inner dimension of 2 (faster than np.dot there); it must give the same products,
    # special values included, and numpy's dtype for a float32 input into a float64 layer.
    r = np.random.default_rng(6)
    m, n = 130, 260
    assert linalg._PAD_MIN <= m * n <= linalg._PAD_MAX
    G = normal(r, (1, m)).astype(w_dtype)
    X = normal(r, (1, n)).astype(x_dtype)
    G[0, :4] = [np.inf, -np.inf, np.nan, 0.0]
    X[0, :3] = [0.0, np.inf, np.finfo(x_dtype).tiny / 4]       # a subnormal too
    calls = []
    real_dot = np.dot
    monkeypatch.setattr(linalg.np, "dot", lambda a, b: calls.append(1) or real_dot(a, b))
    w = leaf(normal(r, (m, n)).astype(w_dtype))
    with np.errstate(invalid="ignore", over="ignore"):
        tg.linear(tg.Tensor(X), w).backward(G)
        expected = np.outer(G, X)
    assert calls == []                                   # the padded product, not np.dot
    assert w.grad.dtype == w_dtype == expected.dtype
    np.testing.assert_array_equal(w.grad, expected)      # NaN where inf·0 and NaN, as numpy
    # outside the window (small layers, huge ones) np.dot keeps it
    small = leaf(normal(r, (5, 7)))
    tg.linear(tg.Tensor(normal(r, (1, 7))), small).backward(normal(r, (1, 5)))
    assert calls == [1]


def test_matmul_closed_form_2d():
    r = np.random.default_rng(1)
    A, B, G = normal(r, (4, 3)), normal(r, (3, 5)), normal(r, (4, 5))
    a, b = leaf(A), leaf(B)
    (a @ b).backward(G)
    np.testing.assert_allclose(a.grad, G @ B.T, rtol=1e-12)
    np.testing.assert_allclose(b.grad, A.T @ G, rtol=1e-12)


def test_matmul_only_one_side_requires_grad():
    r = np.random.default_rng(2)
    A, B = normal(r, (2, 3)), normal(r, (3, 4))
    b = leaf(B)
    (tg.Tensor(A) @ b).sum().backward()
    np.testing.assert_allclose(b.grad, A.T @ np.ones((2, 4)))
    a = leaf(A)
    (a @ B).sum().backward()
    np.testing.assert_allclose(a.grad, np.ones((2, 4)) @ B.T)


# -- linear --------------------------------------------------------------------------------

@st.composite
def linear_shapes(draw):
    n_in, n_out = draw(dim), draw(dim)
    lead = tuple(draw(st.lists(dim, min_size=0, max_size=2)))
    return lead + (n_in,), (n_out, n_in), draw(st.booleans())


@SETTINGS
@given(shp=linear_shapes(), seed=seeds)
def test_linear_gradcheck_and_matches_x_WT_plus_b(shp, seed):
    sx, sw, with_bias = shp
    r = rng_of(seed)
    x, W, b = normal(r, sx), normal(r, sw), normal(r, (sw[0],))
    expected = x @ W.T + (b if with_bias else 0.0)
    if with_bias:
        out = tg.linear(tg.Tensor(x), tg.Tensor(W), tg.Tensor(b))
        fn = tg.linear
        inputs = [x, W, b]
    else:
        out = tg.linear(tg.Tensor(x), tg.Tensor(W))
        fn = lambda xx, ww: tg.linear(xx, ww)  # noqa: E731
        inputs = [x, W]
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert_gradcheck(fn, inputs)
    # one node, and the same gradients as the unfused expression
    tx, tw, tb = leaf(x), leaf(W), leaf(b)
    y = tg.linear(tx, tw, tb if with_bias else None)
    assert type(y.grad_fn).__name__ == "Linear"
    G = r.standard_normal(y.shape)
    y.backward(G)
    ux, uw, ub = leaf(x), leaf(W), leaf(b)
    z = ux @ uw.T
    if with_bias:
        z = z + ub
    z.backward(G)
    np.testing.assert_allclose(tx.grad, ux.grad, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(tw.grad, uw.grad, rtol=1e-12, atol=1e-12)
    if with_bias:
        np.testing.assert_allclose(tb.grad, ub.grad, rtol=1e-12, atol=1e-12)


def test_linear_closed_form_like_the_spec():
    r = np.random.default_rng(3)
    X, W, b, D = normal(r, (5, 3)), normal(r, (4, 3)), normal(r, (4,)), normal(r, (5, 4))
    x, w, bb = leaf(X), leaf(W), leaf(b)
    tg.linear(x, w, bb).backward(D)
    np.testing.assert_allclose(x.grad, D @ W, rtol=1e-12)
    np.testing.assert_allclose(w.grad, D.T @ X, rtol=1e-12)
    np.testing.assert_allclose(bb.grad, D.sum(axis=0), rtol=1e-12)


def test_linear_with_constant_input_and_frozen_weight():
    r = np.random.default_rng(4)
    X, W, b = normal(r, (2, 3)), normal(r, (4, 3)), normal(r, (4,))
    w = leaf(W)
    tg.linear(X, w, b).sum().backward()
    np.testing.assert_allclose(w.grad, np.ones((2, 4)).T @ X)
    x = leaf(X)
    tg.linear(x, W).sum().backward()
    np.testing.assert_allclose(x.grad, np.ones((2, 4)) @ W)


class _TaggedTensor(tg.Tensor):
    """A Tensor subclass (apply's three-Tensor shortcut takes only exact Tensors)."""


@pytest.mark.parametrize("frozen", ["x", "W", "b", "x and W", None])
@pytest.mark.parametrize("tensor_type", [tg.Tensor, _TaggedTensor])
def test_linear_of_three_tensors_any_of_them_frozen(frozen, tensor_type):
    # three Tensors take a shortcut in Function.apply: each one's requires_grad must count
    r = np.random.default_rng(5)
    X, W, b = normal(r, (2, 3)), normal(r, (4, 3)), normal(r, (4,))
    made = {name: tensor_type(value, requires_grad=name not in (frozen or ""))
            for name, value in (("x", X), ("W", W), ("b", b))}
    out = tg.linear(made["x"], made["W"], made["b"])
    out.sum().backward()
    G = np.ones((2, 4))
    expected = {"x": G @ W, "W": G.T @ X, "b": G.sum(axis=0)}
    for name, t in made.items():
        if t.requires_grad:
            np.testing.assert_allclose(t.grad, expected[name], rtol=1e-12)
        else:
            assert t.grad is None
    assert out.grad_fn.needs_input_grad == tuple(t.requires_grad for t in made.values())


@pytest.mark.parametrize("x, W, b, expected", [
    (np.ones((2, 3)), np.ones((4, 5)), None, "x of shape (2, 3) cannot go through a weight of shape (4, 5)"),
    (np.ones((2, 3)), np.ones(3), None, "weight of shape (3,)"),
    (np.ones((2, 3)), 2.0, None, "weight of shape ()"),
    (2.0, np.ones((4, 3)), None, "x of shape () cannot go through"),
    (np.ones(()), np.ones((4, 3)), None, "x of shape () cannot go through"),
    (np.ones((2, 3)), np.ones((4, 3)), np.ones(3), "bias of shape (3,) does not fit a weight of shape (4, 3): expected (4,)"),
    (np.ones((2, 3)), np.ones((4, 3)), np.ones(1), "bias of shape (1,) does not fit"),
    (np.ones((2, 3)), np.ones((4, 3)), np.ones((1, 4)), "bias of shape (1, 4)"),
    (np.ones((2, 3)), np.ones((4, 3)), 1.0, "bias of shape ()"),
])
def test_linear_names_the_shapes_that_do_not_fit(x, W, b, expected):
    # numpy would broadcast a (1,)- or (1, 4)-shaped bias silently: linear must refuse it
    with pytest.raises(tg.ShapeError) as info:
        tg.linear(tg.Tensor(x, requires_grad=True) if np.ndim(x) else x, W, b)
    assert expected in str(info.value)


# -- float32 ---------------------------------------------------------------------------------

R = np.random.default_rng(9)

FLOAT32_CASES = {
    "vv": (lambda a, b: a @ b, [R.standard_normal(3), R.standard_normal(3)]),
    "vm": (lambda a, b: a @ b, [R.standard_normal(3), R.standard_normal((3, 2))]),
    "mv": (lambda a, b: tg.matmul(a, b), [R.standard_normal((4, 3)), R.standard_normal(3)]),
    "mm": (lambda a, b: a @ b * 2.0, [R.standard_normal((4, 3)), R.standard_normal((3, 2))]),
    "mm_row": (lambda a, b: a @ b, [R.standard_normal((1, 3)), R.standard_normal((3, 2))]),
    "batched": (lambda a, b: a @ b, [R.standard_normal((2, 4, 3)), R.standard_normal((3, 2))]),
    "linear": (lambda x, w, b: tg.linear(x, w, b), [R.standard_normal((5, 3)),
                                                     R.standard_normal((2, 3)),
                                                     R.standard_normal(2)]),
    "linear_row": (lambda x, w, b: tg.linear(x, w, b) + 1.0, [R.standard_normal((1, 3)),
                                                              R.standard_normal((2, 3)),
                                                              R.standard_normal(2)]),
    "linear_nobias": (lambda x, w: tg.linear(x, w), [R.standard_normal((5, 3)),
                                                     R.standard_normal((2, 3))]),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_preserved_in_output_and_gradients(name):
    build, arrays = FLOAT32_CASES[name]
    assert_float32_everywhere(build, arrays)


def test_linear_with_a_bias_of_another_dtype_promotes_as_numpy_would():
    x = tg.Tensor(np.ones((2, 3), np.float32))
    W = leaf(np.ones((4, 3), np.float32))
    b = leaf(np.full(4, 0.1))                               # float64
    z = tg.linear(x, W, b)
    expected = x.data @ W.data.T + b.data
    assert z.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(z.data, expected)
    z.sum().backward()
    assert W.grad.dtype == np.float32 and b.grad.dtype == np.float64


@SETTINGS
@given(lead=st.sampled_from([(), (2,), (3, 2)]), k=dim, m=dim, seed=seeds)
def test_matmul_with_a_numpy_array_on_the_left(lead, k, m, seed):
    # A @ t goes through Tensor.__rmatmul__: checked by closed form only
    r = rng_of(seed)
    A = r.standard_normal(lead + (2, k))
    x = normal(r, (k, m))
    np.testing.assert_allclose((A @ tg.Tensor(x)).data, A @ x, rtol=1e-12)
    assert_gradcheck(lambda t: A @ t, [x])


@pytest.mark.parametrize("x_shape", [(3,), (2, 4, 3)])
def test_linear_with_a_frozen_weight_trains_the_bias_for_any_leading_shape(x_shape):
    W = tg.Tensor(np.arange(6.0).reshape(2, 3))                  # frozen: no gradient
    b = tg.Tensor(np.zeros(2), requires_grad=True)
    x = np.random.default_rng(0).standard_normal(x_shape)
    tg.linear(tg.Tensor(x), W, b).sum().backward()
    np.testing.assert_array_equal(b.grad, np.full(2, x.size // 3, dtype=float))
    assert W.grad is None
    assert_gradcheck(lambda bias: tg.linear(tg.Tensor(x), W, bias), [np.zeros(2)])


@pytest.mark.parametrize("op", ["mul", "matmul", "linear", "softmax", "getitem", "div", "pow",
                                "logsumexp", "max"])
def test_a_transposed_strided_leaf_gets_the_gradient_of_its_contiguous_copy(op):
    r = np.random.default_rng(0)
    arr = r.uniform(0.5, 2.0, (8, 12))[::2, 1::3].T          # (4, 4), neither C nor F order
    assert not arr.flags.c_contiguous and not arr.flags.f_contiguous
    f = {"mul": lambda t: t * t, "matmul": lambda t: t @ t,
         "linear": lambda t: tg.linear(t, t, t[0]), "softmax": lambda t: tg.softmax(t, 0),
         "getitem": lambda t: t[[0, 0, 2]] * t[1:], "div": lambda t: t / t.T,
         "pow": lambda t: t ** t, "logsumexp": lambda t: tg.logsumexp(t, 1) * t[0],
         "max": lambda t: tg.max(t * t, axis=0)}[op]
    strided, copied = leaf(arr), leaf(np.ascontiguousarray(arr))
    for t in (strided, copied):
        (f(t) ** 2).sum().backward()
    np.testing.assert_allclose(strided.grad, copied.grad, rtol=1e-12)
    assert_gradcheck(lambda t: (f(t) ** 2).sum(), [arr])
