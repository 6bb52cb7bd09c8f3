"""Gradients of gradients (grad(..., create_graph=True)): second derivatives and
Hessian-vector products against closed forms AND finite differences of the gradient."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

import tinygraph as tg
from _tgutil import (SETTINGS, assert_gradcheck, away_from_zero, distinct, leaf, normal,
                     positive, rng_of, seeds, stretched2)


def _grad_np(f, xs):
    """Gradient of the scalar tinygraph function f at numpy inputs xs (first order only)."""
    ts = [leaf(x) for x in xs]
    gs = tg.grad(f(*ts), ts)
    return [np.zeros_like(x) if g is None else np.asarray(g, dtype=np.float64)
            for x, g in zip(xs, gs)]


def _fd_hvp(f, xs, vs, eps=1e-5):
    """(∇f(x + εv) - ∇f(x - εv)) / 2ε: the Hessian-vector product by finite differences."""
    plus = _grad_np(f, [x + eps * v for x, v in zip(xs, vs)])
    minus = _grad_np(f, [x - eps * v for x, v in zip(xs, vs)])
    return [(p - m) / (2 * eps) for p, m in zip(plus, minus)]


def _hvp(f, xs, vs):
    """H v by double backward: grad(<∇f, v>, x) with create_graph=True on the first grad."""
    ts = [leaf(x) for x in xs]
    gs = tg.grad(f(*ts), ts, create_graph=True)
    assert all(g is None or isinstance(g, tg.Tensor) for g in gs)
    dot = None
    for g, v in zip(gs, vs):
        if g is None:
            continue
        term = (g * v).sum()
        dot = term if dot is None else dot + term
    if dot is None or not dot.requires_grad:
        return [np.zeros_like(x) for x in xs]
    hv = tg.grad(dot, ts)
    return [np.zeros_like(x) if h is None else np.asarray(h, dtype=np.float64)
            for x, h in zip(xs, hv)]


def _second_diag(fn, x0):
    """d²/dx² of sum(fn(x)) elementwise (the Hessian is diagonal for elementwise fn)."""
    x = leaf(x0)
    (g,) = tg.grad(fn(x).sum(), [x], create_graph=True)
    assert isinstance(g, tg.Tensor) and g.requires_grad
    (h,) = tg.grad(g.sum(), [x])
    return np.asarray(g.data), np.asarray(h)


X0 = np.array([-1.3, -0.2, 0.4, 1.1])
XP = np.array([0.3, 0.9, 1.7, 2.4])

ELEMENTWISE = {
    "tanh": (tg.tanh, X0, lambda x: 1 - np.tanh(x) ** 2,
             lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
    "sigmoid": (tg.sigmoid, X0, lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s),
                lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s)),
    "exp": (tg.exp, X0, np.exp, np.exp),
    "log": (tg.log, XP, lambda x: 1 / x, lambda x: -1 / x ** 2),
    "sqrt": (tg.sqrt, XP, lambda x: 0.5 / np.sqrt(x), lambda x: -0.25 * x ** -1.5),
    "pow3": (lambda t: t ** 3, X0, lambda x: 3 * x ** 2, lambda x: 6 * x),
    "recip": (lambda t: 1.0 / t, XP, lambda x: -1 / x ** 2, lambda x: 2 / x ** 3),
    "rpow": (lambda t: 2.0 ** t, X0, lambda x: np.log(2) * 2 ** x,
             lambda x: np.log(2) ** 2 * 2 ** x),
    "square_mul": (lambda t: t * t, X0, lambda x: 2 * x, lambda x: 2 * np.ones_like(x)),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_second_derivative_closed_form_and_finite_differences(name):
    fn, x0, d1, d2 = ELEMENTWISE[name]
    g, h = _second_diag(fn, x0)
    np.testing.assert_allclose(g, d1(x0), rtol=1e-10)
    np.testing.assert_allclose(h, d2(x0), rtol=1e-10, atol=1e-12)
    # finite differences of the (first-order) gradient
    fd = _fd_hvp(lambda t: fn(t).sum(), [x0], [np.ones_like(x0)])[0]
    np.testing.assert_allclose(h, fd, rtol=1e-6, atol=1e-8)


def test_third_derivative_of_exp_and_tanh():
    x = leaf(X0)
    (g,) = tg.grad(tg.exp(x).sum(), [x], create_graph=True)
    (h,) = tg.grad(g.sum(), [x], create_graph=True)
    (k,) = tg.grad(h.sum(), [x])
    np.testing.assert_allclose(k, np.exp(X0), rtol=1e-12)
    x = leaf(X0)
    (g,) = tg.grad(tg.tanh(x).sum(), [x], create_graph=True)
    (h,) = tg.grad(g.sum(), [x], create_graph=True)
    (k,) = tg.grad(h.sum(), [x])
    t = np.tanh(X0)
    np.testing.assert_allclose(k, -2 * (1 - t ** 2) ** 2 + 4 * t ** 2 * (1 - t ** 2), rtol=1e-10)


def test_mixed_second_derivatives_of_mul():
    x0, y0 = np.array([0.5, -1.5, 2.0]), np.array([1.2, 0.3, -0.7])
    x, y = leaf(x0), leaf(y0)
    f = (x * x * y).sum()                      # df/dx = 2xy, df/dy = x²
    gx, gy = tg.grad(f, [x, y], create_graph=True)
    np.testing.assert_allclose(gx.data, 2 * x0 * y0)
    np.testing.assert_allclose(gy.data, x0 ** 2)
    hxx, hxy = tg.grad(gx.sum(), [x, y], retain_graph=True)
    np.testing.assert_allclose(hxx, 2 * y0)     # d/dx Σ 2xy
    np.testing.assert_allclose(hxy, 2 * x0)     # d/dy Σ 2xy
    hyx, hyy = tg.grad(gy.sum(), [x, y])
    np.testing.assert_allclose(hyx, 2 * x0)
    assert hyy is None or np.allclose(hyy, 0.0)
    v = [np.array([1.0, -2.0, 0.5]), np.array([0.3, 0.1, -1.0])]
    f2 = lambda a, b: (a * a * b).sum()  # noqa: E731
    for got, fd in zip(_hvp(f2, [x0, y0], v), _fd_hvp(f2, [x0, y0], v)):
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)


def test_matmul_hessian_and_hvp():
    r = np.random.default_rng(0)
    A = r.standard_normal((5, 3))
    x0 = r.standard_normal(3)
    v = r.standard_normal(3)
    f = lambda t: ((tg.Tensor(A) @ t) ** 2).sum()  # noqa: E731   f = |Ax|², H = 2AᵀA
    (hv,) = _hvp(f, [x0], [v])
    np.testing.assert_allclose(hv, 2 * A.T @ A @ v, rtol=1e-10)
    np.testing.assert_allclose(hv, _fd_hvp(f, [x0], [v])[0], rtol=1e-6, atol=1e-8)
    # both operands differentiable, 2-D and batched: against finite differences
    B0, C0 = r.standard_normal((2, 4, 3)), r.standard_normal((3, 2))
    vB, vC = r.standard_normal(B0.shape), r.standard_normal(C0.shape)
    g = lambda b, c: tg.tanh(b @ c).sum()  # noqa: E731
    for got, fd in zip(_hvp(g, [B0, C0], [vB, vC]), _fd_hvp(g, [B0, C0], [vB, vC])):
        np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-8)
    # closed form of the mixed term of f(A, x) = sum(A @ x): d/dA (∂f/∂x · u) = 1 uᵀ
    a, xx = leaf(A), leaf(x0)
    (gx,) = tg.grad((a @ xx).sum(), [xx], create_graph=True)
    u = r.standard_normal(3)
    (ga,) = tg.grad((gx * u).sum(), [a])
    np.testing.assert_allclose(ga, np.outer(np.ones(5), u))


def _ce_from_log_softmax(z, Y):
    n = z.shape[0]
    return -(Y * tg.log_softmax(z, axis=1)).sum() / n


def _ce_from_softmax(z, Y):
    n = z.shape[0]
    return -(Y * tg.log(tg.softmax(z, axis=1))).sum() / n


@pytest.mark.parametrize("loss", [_ce_from_log_softmax, _ce_from_softmax])
def test_softmax_cross_entropy_hessian(loss):
    r = np.random.default_rng(1)
    n, c = 3, 4
    z0 = r.standard_normal((n, c))
    Y = np.eye(c)[r.integers(0, c, n)]
    z = leaf(z0)
    (g,) = tg.grad(loss(z, Y), [z], create_graph=True)
    e = np.exp(z0 - z0.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(g.data, (p - Y) / n, rtol=1e-10, atol=1e-14)
    # full Hessian by one HVP per basis direction
    H = np.zeros((n, c, n, c))
    for i in range(n):
        for j in range(c):
            E = np.zeros((n, c))
            E[i, j] = 1.0
            (col,) = tg.grad((g * E).sum(), [z], retain_graph=True)
            H[:, :, i, j] = col
    for i in range(n):
        expected = (np.diag(p[i]) - np.outer(p[i], p[i])) / n
        np.testing.assert_allclose(H[i, :, i, :], expected, rtol=1e-9, atol=1e-13)
        for k in range(n):
            if k != i:
                np.testing.assert_allclose(H[i, :, k, :], 0.0, atol=1e-13)
    # and finite differences of the gradient
    v = r.standard_normal((n, c))
    fd = _fd_hvp(lambda t: loss(t, Y), [z0], [v])[0]
    np.testing.assert_allclose(H.reshape(n * c, n * c) @ v.reshape(-1), fd.reshape(-1),
                               rtol=1e-6, atol=1e-9)


def test_hvp_of_a_small_mlp_against_finite_differences():
    r = np.random.default_rng(2)
    X = r.standard_normal((6, 3))
    Y = np.eye(4)[r.integers(0, 4, 6)]
    params = [r.standard_normal((5, 3)) * 0.5, r.standard_normal(5) * 0.1,
              r.standard_normal((4, 5)) * 0.5, r.standard_normal(4) * 0.1]
    vs = [r.standard_normal(p.shape) for p in params]

    def loss(W1, b1, W2, b2):
        h = tg.tanh(tg.linear(X, W1, b1))
        z = tg.linear(h, W2, b2)
        return -(Y * tg.log_softmax(z)).sum() / X.shape[0]

    got = _hvp(loss, params, vs)
    fd = _fd_hvp(loss, params, vs)
    for a, b in zip(got, fd):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


def test_create_graph_gradient_can_be_backwarded_into_dot_grad():
    x0 = np.array([0.5, 1.5])
    x = leaf(x0)
    (g,) = tg.grad((x ** 3).sum(), [x], create_graph=True)
    assert x.grad is None
    (g * g).sum().backward()       # d/dx Σ (3x²)² = 36 x³
    np.testing.assert_allclose(x.grad, 36 * x0 ** 3)


# -- every op survives a recorded backward: HVP of Σ R ⊙ op(x)² against finite differences ---

R = np.random.default_rng(11)
A34 = R.standard_normal((3, 4))
B4 = R.standard_normal(4)
P34 = R.uniform(0.5, 2.0, (3, 4))
D34 = distinct(R, (3, 4))
AWAY = away_from_zero(R, (3, 4))
COND = R.random((3, 4)) < 0.5

OPS = {
    "add": (lambda a, b: a + b, [A34, B4]),
    "sub": (lambda a, b: a - b, [A34, B4]),
    "mul": (lambda a, b: a * b, [A34, B4]),
    "div": (lambda a, b: a / b, [A34, P34]),
    "pow_scalar": (lambda a: a ** 3, [A34]),
    "pow_tensor": (lambda a, b: a ** b, [P34, A34]),
    "rpow": (lambda a: 2.0 ** a, [A34]),
    "neg": (lambda a: -a, [A34]),
    "exp": (tg.exp, [A34]),
    "log": (tg.log, [P34]),
    "sqrt": (tg.sqrt, [P34]),
    "abs": (tg.abs, [AWAY]),
    "maximum": (tg.maximum, [D34, D34[:, ::-1] + 0.05]),
    "minimum": (tg.minimum, [D34, D34[:, ::-1] + 0.05]),
    "clip": (lambda a: tg.clip(a, -0.5, 0.5), [AWAY * 0.5 + 0.03]),
    "relu": (tg.relu, [AWAY]),
    "sigmoid": (tg.sigmoid, [A34]),
    "tanh": (tg.tanh, [A34]),
    "where": (lambda a, b: tg.where(COND, a, b), [A34, B4]),
    "cast": (lambda a: tg.cast(a, np.float64), [A34]),
    "sum": (lambda a: tg.sum(a, axis=0), [A34]),
    "mean": (lambda a: tg.mean(a, axis=1, keepdims=True), [A34]),
    "max": (lambda a: tg.max(a, axis=1), [D34]),
    "min": (lambda a: tg.min(a), [D34]),
    "logsumexp": (lambda a: tg.logsumexp(a, axis=1), [A34]),
    "softmax": (lambda a: tg.softmax(a, axis=0), [A34]),
    "log_softmax": (lambda a: tg.log_softmax(a), [A34]),
    "reshape": (lambda a: a.reshape(2, 6), [A34]),
    "transpose": (lambda a: a.T, [A34]),
    "swapaxes": (lambda a: tg.swapaxes(a, 0, 1), [A34]),
    "expand_dims": (lambda a: tg.expand_dims(a, 1), [A34]),
    "squeeze": (lambda a: tg.squeeze(a[:, None, :], 1), [A34]),
    "broadcast_to": (lambda a: tg.broadcast_to(a, (2, 3, 4)), [A34]),
    "getitem_basic": (lambda a: a[1:, ::2], [A34]),
    "getitem_array": (lambda a: a[np.array([0, 2, 2])], [A34]),
    "concatenate": (lambda a, b: tg.concatenate([a, b[None, :]]), [A34, B4]),
    "stack": (lambda a, b: tg.stack([a, b * a]), [A34, A34 * 0.5]),
    "matmul_mm": (lambda a, b: a @ b, [A34, R.standard_normal((4, 2))]),
    "matmul_mv": (lambda a, b: a @ b, [A34, B4]),
    "matmul_vm": (lambda a, b: b @ a, [A34, R.standard_normal(3)]),
    "matmul_vv": (lambda a, b: a @ b, [B4, B4[::-1].copy()]),
    "matmul_row": (lambda a, b: a @ b, [R.standard_normal((1, 3)), A34]),
    "linear": (lambda x, w, b: tg.linear(x, w, b), [A34, R.standard_normal((2, 4)),
                                                     R.standard_normal(2)]),
    "linear_row": (lambda x, w, b: tg.linear(x, w, b), [B4[None, :], R.standard_normal((2, 4)),
                                                         R.standard_normal(2)]),
}


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_hvp_matches_finite_differences(name):
    op, xs = OPS[name]
    out_shape = op(*[tg.Tensor(x) for x in xs]).shape
    Rp = np.random.default_rng(5).standard_normal(out_shape)

    def f(*ts):
        y = op(*ts)
        return (y * y * Rp).sum()

    vs = [np.random.default_rng(6 + i).standard_normal(x.shape) for i, x in enumerate(xs)]
    got = _hvp(f, xs, vs)
    fd = _fd_hvp(f, xs, vs)
    for k, (a, b) in enumerate(zip(got, fd)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=f"input {k}")


@pytest.mark.parametrize("name", sorted(OPS))
def test_every_op_first_and_second_order_gradients_stay_float32(name):
    op, xs = OPS[name]
    ts = [tg.Tensor(np.asarray(x, dtype=np.float32), requires_grad=True) for x in xs]
    y = op(*ts)
    f = (y * y * 0.5).sum()
    gs = tg.grad(f, ts, create_graph=True)
    dot = None
    for i, g in enumerate(gs):
        assert g is not None
        assert g.dtype == np.float32, f"first-order gradient of input {i} is {g.dtype}"
        term = (g * 1.5).sum()
        dot = term if dot is None else dot + term
    hs = tg.grad(dot, ts)
    for i, h in enumerate(hs):
        if h is not None:
            assert np.asarray(h).dtype == np.float32, f"second-order gradient of input {i}"


def test_create_graph_gradients_have_their_leafs_dtype_like_plain_ones():
    x = tg.Tensor(np.full(3, 2.0, np.float32), requires_grad=True)
    loss = (x * x * np.ones(3)).sum()                 # a float64 constant promotes the graph
    (plain,) = tg.grad(loss, x, retain_graph=True)
    (g,) = tg.grad(loss, x, create_graph=True)
    assert plain.dtype == g.dtype == np.float32
    np.testing.assert_array_equal(g.data, [4.0, 4.0, 4.0])
    (h,) = tg.grad(g.sum(), x)
    assert h.dtype == np.float32
    np.testing.assert_array_equal(h, [2.0, 2.0, 2.0])


_BROADCAST_BINARY = {"add": (lambda a, b: a + b, normal), "mul": (lambda a, b: a * b, normal),
                     "div": (lambda a, b: a / b, positive), "pow": (lambda a, b: a ** b, None),
                     "maximum": (tg.maximum, None)}


@pytest.mark.parametrize("name", sorted(_BROADCAST_BINARY))
@SETTINGS
@given(shapes=stretched2(), seed=seeds)
def test_second_derivatives_through_broadcasting(name, shapes, seed):
    # second order was checked at one fixed shape per op, none broadcasting
    sa, sb = shapes
    r = rng_of(seed)
    f, gen = _BROADCAST_BINARY[name]
    if name == "pow":
        a, b = positive(r, sa), r.uniform(-2, 2, sb)
    elif name == "maximum":
        values = distinct(r, (int(np.prod(sa)) + int(np.prod(sb)),))
        a, b = values[:int(np.prod(sa))].reshape(sa), values[int(np.prod(sa)):].reshape(sb)
    else:
        a, b = normal(r, sa), gen(r, sb)
    weight = r.standard_normal(np.broadcast_shapes(sa, sb))
    va, vb = r.standard_normal(sa), r.standard_normal(sb)

    def gradient_along_v(x, y):     # <d L/d(x, y), v>, recorded: its gradient is H v
        with tg.enable_grad():      # (gradcheck's finite differences run under no_grad)
            gx, gy = tg.grad((f(x, y) ** 2 * weight).sum(), [x, y], create_graph=True)
            return (gx * va).sum() + (gy * vb).sum()
    assert_gradcheck(gradient_along_v, [a, b])


class _Product3(tg.Function):
    """a * b * c, saving all three (a user op on the general path of Function.apply)."""

    @staticmethod
    def forward(ctx, a, b, c):
        ctx.save_for_backward(a, b, c)
        return a * b * c

    @staticmethod
    def backward(ctx, g):
        a, b, c = ctx.saved_tensors
        return g * b * c, g * a * c, g * a * b


# One array object as two inputs that are different tensors: x and x.detach(), or two
# leaves over one array. Backward saved the array once and linked it to the first input
# that had it, so a recorded backward differentiated through the wrong input: first
# derivatives were right, second derivatives wrong. The oracle: the same inputs over two
# equal arrays that are distinct objects.
SHARED_ARRAY_OPS = {
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
    "matmul": lambda a, b: a @ b,
    "maximum": lambda a, b: tg.maximum(a, b) * tg.maximum(b, a * 0.5),
    "linear": lambda a, b: tg.linear(a, b, tg.Tensor(np.full(3, 0.1))),
    # (a bias given as an array: the general path of Function.apply, not the 3-Tensor one)
    "linear, array bias": lambda a, b: tg.linear(a, b, np.full(3, 0.1)),
    "three inputs": lambda a, b: _Product3.apply(b, a, b),
    # (maximum and where save masks, not their inputs: the fix changes nothing there, and
    # these check that it breaks nothing)
    "where": lambda a, b: tg.where(np.eye(3, dtype=bool), a, b) * a,
    "stack": lambda a, b: tg.stack([a, b, a * b]),
}


@pytest.mark.parametrize("op", SHARED_ARRAY_OPS)
@pytest.mark.parametrize("second", ["detached", "leaf"])
def test_one_array_as_two_different_inputs_has_the_derivatives_of_two(op, second):
    f = SHARED_ARRAY_OPS[op]
    A = positive(rng_of(3), (3, 3))

    def derivatives(shared: bool):
        x = tg.Tensor(A.copy(), requires_grad=True)
        other = A if not shared else x.data if second == "leaf" else None
        y = (x.detach() if second == "detached" and shared else
             tg.Tensor(A.copy() if other is None else other, requires_grad=second == "leaf"))
        if second == "leaf":
            assert (y.data is x.data) == shared
        leaves = [x, y] if second == "leaf" else [x]
        loss = (f(x, y) ** 2).sum()
        firsts = tg.grad(loss, leaves, create_graph=True)
        dot = sum((g * (i + 1.5)).sum() for i, g in enumerate(firsts))
        return [g.data.copy() for g in firsts] + list(tg.grad(dot, leaves))

    for got, expected in zip(derivatives(shared=True), derivatives(shared=False)):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_the_same_tensor_twice_is_not_copied():
    # x * x needs no view: both inputs are one tensor, whose own array is saved; x and
    # x.detach() are two, and mul saves the second one (x's gradient needs it) as a
    # private copy
    x = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    y = (x * x).sum()
    assert [s is x.data for _, s in tg.graph.saved_arrays(y)] == [True]
    y = (x * x.detach()).sum()
    saved = [s for _, s in tg.graph.saved_arrays(y)]
    assert len(saved) == 1 and saved[0] is not x.data and np.array_equal(saved[0], x.data)
    # one tensor given twice after another over the same array: one view, one copy
    y = _Product3.apply(x.detach(), x, x)
    first, second, third = y.grad_fn.saved_tensors
    assert first is x.data and second is third and second is not x.data
