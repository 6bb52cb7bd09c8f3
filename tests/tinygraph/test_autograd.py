"""The engine: backward/grad traversal, fan-out, accumulation, retain_graph, released graphs,
aliasing, the custom-Function API, and a hypothesis fuzz of random DAGs against finite
differences."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygraph as tg
from _tgutil import SETTINGS, leaf, numerical_grad, run_in_threads, seeds


# -- fan-out, diamonds, shared subexpressions --------------------------------------------------

def test_fan_out_tensor_used_three_times_gets_the_sum():
    x0 = np.array([0.5, -1.0, 2.0])
    x = leaf(x0)
    y = x * 2.0 + x * x + tg.exp(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 2.0 + 2 * x0 + np.exp(x0), rtol=1e-12)


def test_fan_out_of_an_intermediate_three_uses():
    x0 = np.array([0.5, -1.0, 2.0])
    x = leaf(x0)
    h = x * 3.0
    h.retain_grad()
    out = (h + h * h + tg.tanh(h)).sum()
    out.backward()
    h0 = 3 * x0
    dh = 1 + 2 * h0 + (1 - np.tanh(h0) ** 2)
    np.testing.assert_allclose(h.grad, dh, rtol=1e-12)
    np.testing.assert_allclose(x.grad, 3 * dh, rtol=1e-12)


def test_diamond():
    a0 = np.array([1.5, -0.5])
    a = leaf(a0)
    b = a * 2.0
    c = a * 3.0
    d = b * c            # 6 a^2
    d.sum().backward()
    np.testing.assert_allclose(a.grad, 12 * a0)


def test_nested_diamonds_and_shared_subexpression():
    x0, y0 = np.array([0.3, 1.2]), np.array([-0.7, 0.4])
    x, y = leaf(x0), leaf(y0)
    s = x * y                       # shared
    t = s * s + s                   # uses s twice
    u = tg.tanh(s) * t              # and again
    u.sum().backward()
    s0 = x0 * y0
    t0 = s0 ** 2 + s0
    du_ds = (1 - np.tanh(s0) ** 2) * t0 + np.tanh(s0) * (2 * s0 + 1)
    np.testing.assert_allclose(x.grad, du_ds * y0, rtol=1e-12)
    np.testing.assert_allclose(y.grad, du_ds * x0, rtol=1e-12)


def test_one_leaf_reused_in_many_places():
    x0 = np.array([0.1, 0.2, 0.3])
    x = leaf(x0)
    total = x * 0.0
    for i in range(1, 101):
        total = total + x * float(i)
    total = total + tg.sum(x) + x[0] + x[[1, 1]].sum()
    total.sum().backward()
    expected = np.full(3, 5050.0) + 3.0
    expected[0] += 3.0
    expected[1] += 6.0
    np.testing.assert_allclose(x.grad, expected)


def test_leaf_used_three_times_through_adds():
    # x + (x + x) == 3x; the gradient buffer handed to x by the outer add is the same
    # array the inner add hands to x twice more
    x = leaf([1.0, 2.0])
    ((x + (x + x)) * 1.0).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])
    x = leaf([1.0, 2.0])
    (x + (x + x)).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_leaf_and_node_receiving_the_same_buffer_do_not_corrupt_each_other():
    # d = a - c and e = c + a both feed the output; out == 2a, so dc contributions cancel.
    # Add/Sub hand the same gradient buffer to a leaf and to a pending node: the leaf's
    # accumulation must not write into the buffer the node has not consumed yet.
    a0, b0 = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    a, b = leaf(a0), leaf(b0)
    c = a * b
    loss = (((a - c) + (c + a)) * 1.0).sum()
    loss.backward()
    np.testing.assert_allclose(a.grad, [2.0, 2.0])
    np.testing.assert_allclose(b.grad, [0.0, 0.0], atol=1e-15)


# -- random DAG fuzz -------------------------------------------------------------------------

OPS = ["add", "sub", "mul", "tanh", "scale", "sum_bcast", "exp", "getitem", "div", "maximum"]
# add/sub pass the same gradient buffer to both inputs: weight them up, they stress the
# engine's buffer ownership the most
WEIGHTED_OPS = OPS + ["add"] * 4 + ["sub"] * 2


@st.composite
def programs(draw):
    n_leaves = draw(st.integers(1, 3))
    n_ops = draw(st.integers(1, 8))
    prog = []
    for i in range(n_ops):
        op = draw(st.sampled_from(WEIGHTED_OPS))
        a = draw(st.integers(0, n_leaves + i - 1))
        b = draw(st.integers(0, n_leaves + i - 1))
        prog.append((op, a, b))
    extra = draw(st.lists(st.integers(0, n_leaves + n_ops - 1), max_size=4))
    seed = draw(st.integers(0, 2**32 - 1))
    return n_leaves, prog, extra, seed


def _eval(prog, extra, vals, T):
    """Evaluate the program on numpy arrays (T = numpy-compatible namespace) or Tensors."""
    vals = list(vals)
    for op, i, j in prog:
        x, y = vals[i], vals[j]
        if op == "add":
            r = x + y
        elif op == "sub":
            r = x - y
        elif op == "mul":
            r = x * y
        elif op == "tanh":
            r = T.tanh(x)
        elif op == "scale":
            r = x * 0.7
        elif op == "sum_bcast":
            r = y + T.sum(x, axis=0, keepdims=True) * 0.1
        elif op == "exp":
            r = T.exp(x * 0.1)
        elif op == "getitem":
            r = x[np.array([2, 0, 0])] * 1.0 + y
        elif op == "div":
            r = x / (y * y + 1.0)
        else:
            r = T.maximum(x, y * 0.5 + 0.05)
        vals.append(r)
    out = vals[-1]
    for k in extra:
        out = out + vals[k] * 0.3
    return out


class _NP:
    tanh = staticmethod(np.tanh)
    exp = staticmethod(np.exp)
    maximum = staticmethod(np.maximum)

    @staticmethod
    def sum(x, axis=None, keepdims=False):
        return np.sum(x, axis=axis, keepdims=keepdims)


@settings(SETTINGS, max_examples=200)
@given(p=programs(), use_grad=st.booleans())
def test_random_dags_match_finite_differences(p, use_grad):
    n_leaves, prog, extra, seed = p
    r = np.random.default_rng(seed)
    init = [r.uniform(-1.5, 1.5, 3) for _ in range(n_leaves)]
    w = r.standard_normal(3)

    def f(*arrays):
        return float((_eval(prog, extra, arrays, _NP) * w).sum())

    leaves = [leaf(v) for v in init]
    loss = (_eval(prog, extra, leaves, tg) * w).sum()
    if use_grad:
        grads = tg.grad(loss, leaves)
    else:
        loss.backward()
        grads = [t.grad for t in leaves]
    num = numerical_grad(f, init)
    for k in range(n_leaves):
        g = np.zeros(3) if grads[k] is None else np.asarray(grads[k])
        np.testing.assert_allclose(g, num[k], rtol=1e-5, atol=1e-6,
                                   err_msg=f"leaf {k}, program {prog}, extra {extra}")
        np.testing.assert_array_equal(leaves[k].data, init[k])   # inputs not mutated


# -- the long chain ----------------------------------------------------------------------------

def test_chain_of_a_million_nodes_has_no_recursion_error():
    x = tg.Tensor(1.0, requires_grad=True)
    z = x
    for _ in range(1_000_000):
        z = z * 1.0
    z.backward()
    assert x.grad == pytest.approx(1.0)
    del z


# -- accumulation, retain_graph, released graphs ---------------------------------------------

@pytest.mark.parametrize("how", ["retain_grad", "grad", "grad create_graph"])
def test_a_non_leaf_gradient_has_its_tensors_dtype(how):
    """y is float32, the loss mixes in a float64 weight: y's gradient is float32, as a
    leaf's is (docs/architecture.md)."""
    x = tg.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = tg.exp(x)
    loss = (y * np.full(3, 2.0)).sum()
    if how == "retain_grad":
        y.retain_grad()
        loss.backward()
        g = y.grad
    else:
        (g,) = tg.grad(loss, y, create_graph=how.endswith("create_graph"))
        g = g.data if isinstance(g, tg.Tensor) else g
    assert g.dtype == np.float32
    np.testing.assert_array_equal(g, np.full(3, 2.0, np.float32))


def test_leaf_gradients_accumulate_across_backward_calls():
    x = leaf([1.0, 2.0])
    (x * x).sum().backward()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [2.0 + 3.0, 4.0 + 3.0])
    x.zero_grad()
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 3.0])


def test_retain_graph_allows_a_second_backward_and_accumulates():
    x = leaf([1.0, 2.0])
    y = (tg.exp(x) * x).sum()
    y.backward(retain_graph=True)
    g1 = x.grad.copy()
    y.backward()
    np.testing.assert_allclose(x.grad, 2 * g1)


def test_second_backward_through_released_graph_raises_naming_retain_graph():
    x = leaf([1.0, 2.0])
    y = (tg.exp(x) * x).sum()
    y.backward()
    with pytest.raises(tg.BackwardError) as info:
        y.backward()
    assert "retain_graph=True" in str(info.value)
    # also for ops that saved nothing
    z = (x + 1.0).sum()
    z.backward()
    with pytest.raises(tg.BackwardError, match="retain_graph=True"):
        z.backward()


def test_released_partially_shared_graph_raises_when_reused():
    x = leaf([1.0, 2.0])
    h = tg.tanh(x)
    h.sum().backward()
    with pytest.raises(tg.BackwardError, match="retain_graph=True"):
        (h * 2.0).sum().backward()


def test_saved_buffers_released_after_backward_unless_retained():
    x = leaf([1.0, 2.0])
    y = tg.exp(x)
    node = y.grad_fn
    assert len(node.saved_tensors) == 1
    y.sum().backward(retain_graph=True)
    assert len(node.saved_tensors) == 1
    y.sum().backward()
    assert node.saved_tensors == () or len(node.saved_tensors) == 0


class _CachesOnCtx(tg.Function):
    """A user op that keeps an array as an attribute of ctx, beside a plain number."""

    @staticmethod
    def forward(ctx, x):
        ctx.cache = 2 * x
        ctx.scale = 2.0
        return x * x

    @staticmethod
    def backward(ctx, g):
        return g * ctx.cache


def test_arrays_kept_on_ctx_are_freed_by_backward_unless_the_op_says_it_keeps_none():
    from tinygraph.ops import ALL_FUNCTIONS
    from tinygraph.ops.shape import GetItem, IndexAdd
    assert tg.Function.keeps_arrays_on_ctx is True          # the safe default
    # every op keeps its arrays in saved_tensors but getitem/index_add, which keep an index
    assert {f for f in ALL_FUNCTIONS if f.keeps_arrays_on_ctx} == {GetItem, IndexAdd}
    x = leaf([1.0, 2.0])
    y = _CachesOnCtx.apply(x)
    node = y.grad_fn
    y.sum().backward(retain_graph=True)
    assert isinstance(node.cache, np.ndarray)                # kept for the next backward
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [4.0, 8.0])
    assert not hasattr(node, "cache") and node.scale == 2.0  # the array went, the number not

    class Promised(_CachesOnCtx):                            # the flag is a promise: not checked
        keeps_arrays_on_ctx = False

    y = Promised.apply(leaf([1.0, 2.0]))
    node = y.grad_fn
    y.sum().backward()
    assert isinstance(node.cache, np.ndarray)


# -- errors of backward ------------------------------------------------------------------------

def test_non_scalar_backward_without_grad_raises_clear_error():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    with pytest.raises(tg.BackwardError) as info:
        y.backward()
    msg = str(info.value)
    assert "(2,)" in msg and "scalar" in msg
    # a one-element non-0-d output counts as a scalar
    z = (x * 2.0).sum(keepdims=True)
    z.backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_builtin_ops_skip_the_gradient_check_and_user_ops_keep_it():
    # The check itself: test_custom_function_returning_wrong_number_or_shape_of_gradients_raises
    from tinygraph.ops import ALL_FUNCTIONS
    assert tg.Function.check_backward is True
    assert all(f.check_backward is False for f in ALL_FUNCTIONS)

    class Trusted(_WrongShapeGradient):     # the flag really turns the check off
        check_backward = False

    x = leaf([1.0, 2.0])
    y = Trusted.apply(x)
    # the node's check is off; the leaf's own shape still stops it before .grad
    with pytest.raises(tg.BackwardError, match=r"^backward: a gradient of shape \(7,\) for a "
                                               r"leaf of shape \(2,\).*check_backward = False"):
        y.backward()
    assert x.grad is None
    with pytest.raises(tg.BackwardError, match=r"^grad: a gradient of shape \(7,\) for a leaf "
                                               r"of shape \(2,\)"):
        tg.grad(Trusted.apply(x), [x])                 # grad() returns none of that shape


@pytest.mark.parametrize("returned", [(), ("g", "g")], ids=["too few", "too many"])
def test_an_unchecked_op_returning_the_wrong_number_of_gradients_still_raises(returned):
    # The shape check is skipped for trusted ops, the count check never: too few gradients
    # would leave part of the graph unvisited without a word.
    class Miscounted(tg.Function):
        check_backward = False

        @staticmethod
        def forward(ctx, a, b):
            return a * b

        @staticmethod
        def backward(ctx, g):
            return tuple(g for _ in returned) + (g,)

    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    with pytest.raises(tg.BackwardError,
                       match=rf"MiscountedBackward: backward returned {len(returned) + 1} "
                             rf"gradient\(s\) for 2 input\(s\)"):
        Miscounted.apply(a, b).sum().backward()
    assert a.grad is None and b.grad is None


def test_non_scalar_backward_with_grad():
    x = leaf([1.0, 2.0, 3.0])
    y = x * x
    y.backward(np.array([1.0, 0.5, 0.0]))
    np.testing.assert_allclose(x.grad, [2.0, 2.0, 0.0])
    x2 = leaf([1.0, 2.0])
    with pytest.raises(tg.BackwardError):
        (x2 * 2.0).backward(np.ones(3))


def test_backward_on_tensor_without_grad_raises():
    t = tg.Tensor([1.0, 2.0]).sum()
    with pytest.raises(tg.BackwardError):
        t.backward()


# -- aliasing and mutation -----------------------------------------------------------------------

def test_gradients_do_not_alias_each_other_after_backward():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    z = (a + b).sum()
    z.backward()
    assert a.grad is not b.grad
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[0] = 100.0
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])
    # non-scalar output with a user grad: neither leaf aliases the user's array
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    G = np.array([1.0, 2.0])
    (a + b).backward(G)
    assert not np.shares_memory(a.grad, G) and not np.shares_memory(b.grad, G)
    assert not np.shares_memory(a.grad, b.grad)
    a.grad += 1.0
    np.testing.assert_array_equal(G, [1.0, 2.0])
    np.testing.assert_array_equal(b.grad, [1.0, 2.0])


def test_gradients_from_grad_do_not_alias_each_other_or_grad_outputs():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    ga, gb = tg.grad(((a + b) * np.array([2.0, 3.0])).sum(), [a, b])
    assert ga is not gb and not np.shares_memory(ga, gb)
    ga[0] = 50.0
    np.testing.assert_array_equal(gb, [2.0, 3.0])
    a0, b0 = leaf(1.0), leaf(2.0)
    ga, gb = tg.grad(a0 + b0, [a0, b0])
    assert ga is not gb and not np.shares_memory(ga, gb)
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    go = np.array([1.0, 1.0])
    ga, gb = tg.grad(a + b, [a, b], grad_outputs=go)
    assert not np.shares_memory(ga, gb)
    assert not np.shares_memory(ga, go) and not np.shares_memory(gb, go)
    ga[0] = 50.0
    np.testing.assert_array_equal(gb, [1.0, 1.0])
    np.testing.assert_array_equal(go, [1.0, 1.0])


def test_leaf_output_gradient_does_not_alias_user_grad():
    x = leaf([1.0, 2.0])
    G = np.array([3.0, 4.0])
    x.backward(G)
    np.testing.assert_array_equal(x.grad, G)
    assert not np.shares_memory(x.grad, G)


def test_backward_does_not_mutate_inputs_or_user_grad():
    x0 = np.array([[0.5, -1.0], [2.0, 0.1]])
    w0 = np.array([[1.0, 2.0], [3.0, -4.0]])
    x, w = leaf(x0), leaf(w0)
    G = np.array([[1.0, -1.0], [0.5, 2.0]])
    G0 = G.copy()
    y = tg.tanh(x @ w) + x * w
    y.backward(G)
    np.testing.assert_array_equal(x.data, x0)
    np.testing.assert_array_equal(w.data, w0)
    np.testing.assert_array_equal(G, G0)


# -- grad() --------------------------------------------------------------------------------------

def test_grad_leaves_dot_grad_untouched():
    x = leaf([1.0, 2.0])
    w = leaf([3.0, 4.0])
    (gx, gw) = tg.grad((x * w).sum(), [x, w])
    np.testing.assert_allclose(gx, [3.0, 4.0])
    np.testing.assert_allclose(gw, [1.0, 2.0])
    assert x.grad is None and w.grad is None
    x.grad = np.array([10.0, 10.0])
    tg.grad((x * w).sum(), [x])
    np.testing.assert_array_equal(x.grad, [10.0, 10.0])
    assert w.grad is None


def test_grad_returns_numpy_arrays_of_input_shape_even_for_0d():
    x = leaf(2.0)
    (g,) = tg.grad(x * 3.0, [x])
    assert type(g) is np.ndarray, type(g)
    assert g.shape == () and g == 3.0
    v = leaf([1.0, 2.0])
    (g,) = tg.grad((v * v).sum(), [v])
    assert type(g) is np.ndarray and g.shape == (2,)


def test_grad_unused_input_gets_none_and_single_tensor_input():
    x, y = leaf([1.0]), leaf([2.0])
    gx, gy = tg.grad((x * 2.0).sum(), [x, y])
    assert gy is None
    np.testing.assert_allclose(gx, [2.0])
    res = tg.grad((x * 5.0).sum(), x)
    assert isinstance(res, tuple) and len(res) == 1
    np.testing.assert_allclose(res[0], [5.0])


def test_grad_with_respect_to_intermediate_and_multiple_outputs():
    x = leaf([1.0, 2.0])
    h = x * 3.0
    y1 = (h * h).sum()
    y2 = h.sum()
    gh, gx = tg.grad([y1, y2], [h, x])
    np.testing.assert_allclose(gh, 2 * h.data + 1.0)
    np.testing.assert_allclose(gx, 3 * (2 * h.data + 1.0))


def test_grad_with_grad_outputs_for_non_scalar():
    x = leaf([1.0, 2.0, 3.0])
    (g,) = tg.grad(x * x, [x], grad_outputs=np.array([1.0, 0.0, 2.0]))
    np.testing.assert_allclose(g, [2.0, 0.0, 12.0])
    with pytest.raises(tg.BackwardError):
        tg.grad(x * x, [x])


def test_grad_releases_graph_unless_retained():
    x = leaf([1.0, 2.0])
    y = tg.exp(x).sum()
    tg.grad(y, [x], retain_graph=True)
    tg.grad(y, [x])
    with pytest.raises(tg.BackwardError, match="retain_graph=True"):
        tg.grad(y, [x])


class _CountedExp(tg.Function):
    """exp, counting its backward calls."""
    calls = 0

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        _CountedExp.calls += 1
        (y,) = ctx.saved_tensors
        return g * y


def test_grad_runs_only_the_part_of_the_graph_below_the_requested_tensors():
    # grad() with respect to a non-leaf ran (and freed) the graph above it too: a later
    # backward through that part failed, and a user op there had its backward called
    _CountedExp.calls = 0
    x = leaf([1.0, 2.0])
    y = _CountedExp.apply(x)
    (gy,) = tg.grad((y * y).sum(), [y])
    np.testing.assert_allclose(gy, 2 * np.exp([1.0, 2.0]))
    assert _CountedExp.calls == 0
    (y * 3).sum().backward()                       # exp's saved array is still there
    np.testing.assert_allclose(x.grad, 3 * np.exp([1.0, 2.0]))
    assert _CountedExp.calls == 1
    # a branch that leads to no requested tensor is not run either
    w, v = leaf([3.0, 4.0]), leaf([0.5, 0.25])
    _CountedExp.calls = 0
    e = _CountedExp.apply(v)
    out = (w * w).sum() + e.sum()
    (gw,) = tg.grad(out, [w])
    np.testing.assert_allclose(gw, [6.0, 8.0])
    assert _CountedExp.calls == 0
    (2 * e).sum().backward()                       # that branch was not freed
    np.testing.assert_allclose(v.grad, 2 * np.exp([0.5, 0.25]))
    with pytest.raises(tg.BackwardError, match="a second time"):
        out.backward()                             # the path to w was run, and freed
    # a requested leaf below a requested non-leaf: the path between them runs
    x = leaf([1.0, 2.0])
    h = _CountedExp.apply(x)
    gh, gx = tg.grad((h * h).sum(), [h, x])
    np.testing.assert_allclose(gh, 2 * h.data)
    np.testing.assert_allclose(gx, 2 * h.data * h.data)


# -- custom Function API -----------------------------------------------------------------------

class Cube(tg.Function):
    seen_needs = None

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x ** 3

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * 3 * x ** 2


class ScaleShift(tg.Function):
    """y = x * s + shift (shift a keyword constant); s is marked not differentiable."""

    @staticmethod
    def forward(ctx, x, s, shift=0.0):
        ctx.save_for_backward(s)
        ctx.record = list(ctx.needs_input_grad)
        return x * s + shift

    @staticmethod
    def backward(ctx, g):
        (s,) = ctx.saved_tensors
        return g * s, None


def test_custom_function_forward_backward_and_saved_tensors():
    x0 = np.array([1.0, -2.0, 0.5])
    x = leaf(x0)
    y = Cube.apply(x)
    assert isinstance(y, tg.Tensor)
    assert isinstance(y.grad_fn, Cube)
    assert y.grad_fn.saved_tensors[0] is x.data
    np.testing.assert_allclose(y.data, x0 ** 3)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, 3 * x0 ** 2)
    assert tg.gradcheck(Cube.apply, [x0])


def test_custom_function_needs_input_grad_none_gradient_and_kwargs():
    x, s = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    c = tg.Tensor([1.0, 1.0])
    y = ScaleShift.apply(x, s, shift=10.0)
    np.testing.assert_allclose(y.data, [13.0, 18.0])
    assert y.grad_fn.record == [True, True]
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 4.0])
    assert s.grad is None
    y2 = ScaleShift.apply(x, c)
    assert y2.grad_fn.record == [True, False]
    y3 = ScaleShift.apply(tg.Tensor([1.0]), np.array([2.0]))
    assert y3.grad_fn is None and not y3.requires_grad


class _WrongShapeGradient(tg.Function):
    """A user op whose backward returns a gradient of shape (7,) for an input of shape (2,)."""

    @staticmethod
    def forward(ctx, x):
        return x.sum()

    @staticmethod
    def backward(ctx, g):
        return np.ones(7)


def test_custom_function_returning_wrong_number_or_shape_of_gradients_raises():
    class TooMany(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2, g

    x = leaf([1.0, 2.0])
    with pytest.raises(tg.BackwardError, match=r"returned 2 gradient\(s\) for 1 input\(s\)"):
        TooMany.apply(x).sum().backward()
    with pytest.raises(tg.BackwardError) as info:
        _WrongShapeGradient.apply(leaf([1.0, 2.0])).backward()
    assert "gradient of shape (7,) for input 0 of shape (2,)" in str(info.value)


class _DoubleInPlace(tg.Function):
    """y = 2x written as numpy code often is: into the input (x *= 2)."""

    @staticmethod
    def forward(ctx, x):
        x *= 2
        return x

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class _DoubleGradInPlace(tg.Function):
    """y = 2x whose backward scales its gradient in place (g *= 2)."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, g):
        g *= 2
        return g


class _ExpScratch(tg.Function):
    """y = e^x whose backward reuses its saved output as scratch space."""

    @staticmethod
    def forward(ctx, x):
        y = np.exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        y *= g
        return y


def test_a_user_op_writing_into_an_input_made_by_another_op_is_named():
    # x *= 2 in a user forward changed the array exp had saved (its output): x.grad came
    # out twice too large, and y, shown read-only, had changed
    x = leaf([0.0, 1.0])
    y = tg.exp(x)
    with pytest.raises(tg.ReadOnlyWriteError,
                       match=r"^_doubleinplace: forward wrote into a read-only array \(numpy: "
                             r"output array is read-only\)\. .*\(y = x \* 2, not x \*= 2\)"):
        _DoubleInPlace.apply(y)
    np.testing.assert_array_equal(y.data, np.exp([0.0, 1.0]))
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([0.0, 1.0]))
    # still a ValueError, as numpy's own error was
    with pytest.raises(ValueError):
        _DoubleInPlace.apply(tg.exp(x))
    # on a leaf's array nothing is saved yet: the op may change its own data (as before)
    z = leaf([1.0, 2.0])
    _DoubleInPlace.apply(z)
    np.testing.assert_array_equal(z.data, [2.0, 4.0])


def test_a_value_error_of_the_users_own_is_not_relabelled():
    class Checked(tg.Function):
        @staticmethod
        def forward(ctx, x, mode="rw"):
            if mode not in ("rw", "r"):
                raise ValueError(f"mode must be 'rw' or 'r' (read-only), got {mode!r}")
            return x * 1.0

        @staticmethod
        def backward(ctx, g):
            raise ValueError("this backward is read-only")

    x = leaf([1.0, 2.0])
    with pytest.raises(ValueError, match=r"^mode must be 'rw' or 'r' \(read-only\)") as info:
        Checked.apply(x * 1.0, mode="x")
    assert type(info.value) is ValueError
    with pytest.raises(ValueError, match=r"^this backward is read-only") as info:
        Checked.apply(x * 1.0).sum().backward()
    assert type(info.value) is ValueError

    class OwnView(tg.Function):
        @staticmethod
        def forward(ctx, x):
            out = np.broadcast_to(np.zeros(1), x.shape)     # read-only, the op's own
            out += x
            return out

        @staticmethod
        def backward(ctx, g):
            return g

    # numpy's own words, whichever array it was: named, and still a ValueError
    with pytest.raises(ValueError, match=r"\(numpy: output array is read-only\)") as info:
        OwnView.apply(x)
    assert isinstance(info.value, tg.ReadOnlyWriteError)

    class ZeroDiagonal(tg.Function):
        @staticmethod
        def forward(ctx, a):
            np.fill_diagonal(a, 0.0)        # numpy words this one differently
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            return g

    with pytest.raises(tg.ReadOnlyWriteError, match=r"^zerodiagonal: forward wrote into a "
                                                    r"read-only array \(numpy: underlying"):
        ZeroDiagonal.apply(tg.exp(leaf(np.zeros((2, 2)))))


def test_a_user_backward_writing_into_its_gradient_or_a_saved_array_is_named():
    # g *= 2 changed the gradient add had handed to both of its inputs: both leaves got
    # [4, 4] instead of [2, 2], silently
    x, w = leaf([1.0, 2.0]), leaf([1.0, 2.0])
    with pytest.raises(tg.ReadOnlyWriteError,
                       match=r"^_DoubleGradInPlaceBackward: backward wrote into a read-only "
                             r"array .*\(g = g \* 2, not g \*= 2\)"):
        (_DoubleGradInPlace.apply(x) + _DoubleGradInPlace.apply(w)).sum().backward()
    assert x.grad is None and w.grad is None
    # y *= g on the saved output: with retain_graph the second pass read the changed y
    x = leaf([0.0, 1.0])
    loss = _ExpScratch.apply(x).sum()
    with pytest.raises(tg.ReadOnlyWriteError, match=r"^_ExpScratchBackward: backward "):
        loss.backward(retain_graph=True)
    # a backward that computes new arrays is untouched (the gradient given is a view)
    x, w = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    (Cube.apply(x) + Cube.apply(w)).sum().backward()
    np.testing.assert_allclose(x.grad, [3.0, 12.0])
    np.testing.assert_allclose(w.grad, [27.0, 48.0])


class _IntoBuffer(tg.Function):
    """y = 2x written into a buffer the op reuses."""
    buffer = np.zeros(2)

    @staticmethod
    def forward(ctx, x):
        return np.multiply(x, 2, out=_IntoBuffer.buffer)

    @staticmethod
    def backward(ctx, g):
        return 2 * g


class _Transposed(tg.Function):
    """A user op whose output is a view of its input."""

    @staticmethod
    def forward(ctx, x):
        return x.T

    @staticmethod
    def backward(ctx, g):
        return g.T


def test_a_user_op_output_is_read_only_once_recorded():
    # A buffer rewritten at every call was the previous output, which the graph (and the
    # op's own backward) may still read: refused once recorded, with the reason
    _IntoBuffer.buffer = np.zeros(2)
    x = leaf([1.0, 2.0])
    with tg.no_grad():
        out = _IntoBuffer.apply(x)                          # a plain result, the user's
    assert out.data.flags.writeable
    y = _IntoBuffer.apply(x)
    assert not _IntoBuffer.buffer.flags.writeable
    with pytest.raises(tg.ReadOnlyWriteError, match=r"a buffer it writes every call into is "
                                                    r"read-only after the first recorded one"):
        _IntoBuffer.apply(leaf([5.0, 6.0]))
    y.sum().backward()
    np.testing.assert_array_equal(y.data, [2.0, 4.0])
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    # a view: the view is the graph's, the array it looks into is left alone
    W = leaf(np.ones((3, 4)))
    other = (W * W).sum()                   # a second graph holding W
    t = _Transposed.apply(W)
    assert not t._data.flags.writeable and W.data.base is None
    t.sum().backward()
    other.backward()
    assert W.data.flags.writeable and not tg.held_by_graph(W.data)
    np.testing.assert_array_equal(W.grad, 1.0 + 2.0 * np.ones((3, 4)))
    # a built-in op's result given to a user op stays read-only: a fresh array nobody holds
    z = tg.exp(x)
    Cube.apply(z).sum().backward()
    assert not z._data.flags.writeable


def test_custom_function_with_python_scalar_and_array_constants():
    x = leaf([1.0, 2.0])
    y = ScaleShift.apply(x, 2.0)
    y.sum().backward()
    np.testing.assert_allclose(x.grad, [2.0, 2.0])


def test_grad_outputs_must_match_outputs_in_number():
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(tg.BackwardError, match="1 grad_outputs for 2 outputs"):
        tg.grad([x.sum(), (x * 2).sum()], x, grad_outputs=[None])


class Boom(tg.Function):
    """An op whose backward fails."""
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        raise RuntimeError("boom")


def test_a_backward_that_fails_half_way_frees_the_graph_and_says_so():
    a = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    b = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = (a * b).sum() + Boom.apply(a * b).sum() + (b * b).sum()
    with pytest.raises(RuntimeError, match="boom"):
        y.backward()
    assert a.data.flags.writeable and b.data.flags.writeable      # locks released
    # leaf gradients are summed in only when the whole pass has run: none of this one
    assert a.grad is None and b.grad is None
    with pytest.raises(tg.BackwardError, match="earlier backward failed at BoomBackward .*"
                                               "no .grad was changed"):
        y.backward()


def test_power_zero_has_zero_gradient_even_at_zero():
    x = tg.Tensor([0.0, 1.0, -2.0], requires_grad=True)
    (x ** 0).sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


def test_a_leaf_used_many_times_keeps_one_gradient_buffer_during_backward():
    # Contributions are summed as they come: a weight used 100 times must not hold 100
    # gradient arrays until the end of the pass.
    import tracemalloc

    w = tg.Tensor(np.ones(125_000), requires_grad=True)       # 1 MB
    y = w * 1.0
    for _ in range(100):
        y = y + w * 1.0
    loss = y.sum()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_allclose(w.grad, np.full(125_000, 101.0))
    assert peak < 8 * w.data.nbytes, f"peak {peak / 1e6:.1f} MB during backward"


def test_a_failed_pass_changes_no_retained_grad_either():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = (x * 2.0).retain_grad()
    y = Boom.apply(x).sum() + h.sum()
    with pytest.raises(RuntimeError, match="boom"):
        y.backward()
    assert h.grad is None and x.grad is None
    h2 = (x * 2.0).retain_grad()
    (h2 * 3.0).sum().backward()
    np.testing.assert_array_equal(h2.grad, [3.0, 3.0])
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])


def test_a_grad_of_the_wrong_shape_set_by_hand_is_named_and_nothing_is_stored():
    a = tg.Tensor([1.0, 2.0], requires_grad=True)
    b = tg.Tensor([1.0, 2.0], requires_grad=True)
    y = (a * 2.0).sum() + (b * 3.0).sum()
    a.grad = np.zeros(3)
    with pytest.raises(tg.BackwardError, match=r"a leaf of shape \(2,\) has a \.grad of shape "
                                               r"\(3,\).*No \.grad was changed"):
        y.backward()
    assert b.grad is None and a.grad.shape == (3,)


# -- 0-d gradients, numbers from user backward, threads with retain_grad ------------------------

def test_a_0d_node_with_three_consumers_sums_all_three_gradients():
    # numpy adds two 0-d arrays into a scalar, which cannot be added into in place: the
    # engine keeps its sums arrays, so a third contribution is not lost
    x = leaf([1.0, 2.0, 3.0])
    m = x.mean()
    (m * m * m).backward()                                   # d(m^3)/dx_i = 3 m^2 / 3 = 4
    np.testing.assert_allclose(x.grad, [4.0, 4.0, 4.0], rtol=1e-12)
    y = tg.Tensor(2.0, requires_grad=True)
    (y * y * y * y).backward()                               # a 0-d leaf used four times
    assert type(y.grad) is np.ndarray and y.grad.shape == () and y.grad == 32.0
    (y * y).backward()                                       # added to the existing .grad
    assert type(y.grad) is np.ndarray and y.grad == 36.0


def test_a_user_backward_may_return_a_number_for_a_0d_input_but_not_a_string():
    class Double(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return 2.0 if ctx.answer == "number" else "two"

    x = tg.Tensor(3.0, requires_grad=True)
    y = Double.apply(x)
    y.grad_fn.answer = "number"
    y.backward()
    assert type(x.grad) is np.ndarray and x.grad == 2.0
    y = Double.apply(x)
    y.grad_fn.answer = "string"
    with pytest.raises(tg.BackwardError, match=r"DoubleBackward: backward returned a str for "
                                               r"input 0; expected a numeric array"):
        y.backward()


def test_threads_running_backward_with_retain_grad_tensors_do_not_collide():
    w = leaf(np.ones(3))
    errors, grads = [], []

    def worker():
        try:
            for _ in range(60):
                hs = [(w * float(k)).retain_grad() for k in range(20)]
                total = hs[0].sum()
                for h in hs[1:]:
                    total = total + h.sum()
                total.backward()
                grads.append(hs[3].grad.copy())
        except Exception as exc:              # pragma: no cover - what the test looks for
            errors.append(repr(exc))

    run_in_threads(worker, 4)
    assert errors == []
    assert len(grads) == 240 and all(np.array_equal(g, np.ones(3)) for g in grads)


# -- create_graph reads what forward saved ------------------------------------------------------

def test_create_graph_uses_the_saved_values_when_a_leafs_data_was_replaced():
    x = leaf(np.array([2.0]))
    y = (x * x).sum()
    x.data = np.array([5.0])                       # replaced after the forward pass
    (g,) = tg.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.data, [4.0])      # 2x at x = 2, as without create_graph
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h, [2.0])           # and the second derivative still flows


def test_create_graph_uses_the_saved_copy_of_a_view_leaf():
    base = np.array([1.0, 2.0, 3.0, 4.0])
    x = tg.Tensor(base[::2], requires_grad=True)   # a view: its forward value is saved as a copy
    y = (x * x * x).sum()
    before = x.data.copy()
    base[0] = 100.0                                # changed through the array owning the memory
    (g,) = tg.grad(y, x, create_graph=True)
    np.testing.assert_allclose(g.data, 3 * before ** 2)
    (h,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(h, 6 * before)


def test_create_graph_also_refuses_a_saved_array_made_writable_and_changed():
    w = leaf(np.array([2.0, 3.0]))
    y = (w * w).sum()
    w.data.setflags(write=True)                    # forcing past the lock
    w.data[0] = 10.0
    with pytest.raises(tg.InPlaceModificationError):
        tg.grad(y, w, create_graph=True)


def test_an_op_saving_its_0d_output_keeps_it_linked_under_create_graph():
    # np.exp of a 0-d array gives a numpy scalar; the engine turns the output into an array
    # and must still know the saved value as the op's output (second derivatives)
    for op, second in ((tg.exp, math.exp(0.5)), (tg.tanh, -2 * math.tanh(0.5) * (1 - math.tanh(0.5) ** 2)),
                       (tg.sqrt, -0.25 * 0.5 ** -1.5)):
        x = tg.Tensor(0.5, requires_grad=True)
        (g,) = tg.grad(op(x) + x * x, x, create_graph=True)
        (h,) = tg.grad(g, x)
        assert h == pytest.approx(second + 2.0, rel=1e-12), op


def test_an_op_that_gives_back_its_input_array_does_not_expose_it_to_later_changes():
    class Identity(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x                                   # the input's own array

        @staticmethod
        def backward(ctx, g):
            return g

    x = leaf(np.array([1.0, 2.0]))
    w = leaf(np.array([3.0, 4.0]))
    loss = (Identity.apply(x) * w).sum()
    x.data = np.array([100.0, 100.0])                 # replaced: the graph keeps what it saw
    loss.backward()
    np.testing.assert_array_equal(w.grad, [1.0, 2.0])
    x2 = leaf(np.array([1.0, 2.0]))
    loss = (Identity.apply(x2) * w).sum()
    x2.data[0] = 50.0                                  # the leaf is not locked by this graph...
    w.grad = None
    loss.backward()
    np.testing.assert_array_equal(w.grad, [1.0, 2.0])  # ...but the product saved a copy


def test_arrays_inside_tuples_kept_on_ctx_are_freed_too():
    class KeepsTuple(tg.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.cache = (x * 2, "label", [x * 3])
            ctx.note = ("no arrays", 1)
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    y = KeepsTuple.apply(leaf([1.0, 2.0]))
    node = y.grad_fn
    y.sum().backward()
    assert not hasattr(node, "cache") and node.note == ("no arrays", 1)


@st.composite
def _random_graph_and_request(draw):
    """A random DAG over three leaves (ops with fan-out), and which of its tensors to ask
    grad() for: (seed, op choices, requested indices)."""
    steps = draw(st.lists(st.tuples(st.sampled_from(["add", "mul", "tanh", "exp", "sub"]),
                                    st.integers(0, 100), st.integers(0, 100)),
                          min_size=1, max_size=8))
    n_tensors = 3 + len(steps)
    requested = draw(st.lists(st.integers(0, n_tensors - 1), min_size=1, max_size=4,
                              unique=True))
    return draw(seeds), steps, requested


@SETTINGS
@given(case=_random_graph_and_request(), create_graph=st.booleans())
def test_grad_of_any_requested_tensors_matches_a_full_backward(case, create_graph):
    # grad() runs only the nodes with a requested tensor below them: what it returns must
    # be what a full backward (with retain_grad on the non-leaves) gives
    seed, steps, requested = case

    def build():
        rng = np.random.default_rng(seed)
        tensors = [tg.Tensor(0.5 * rng.standard_normal((2, 3)), requires_grad=True)
                   for _ in range(3)]
        for op, i, j in steps:
            a, b = tensors[i % len(tensors)], tensors[j % len(tensors)]
            tensors.append({"add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
                            "tanh": lambda: tg.tanh(a), "exp": lambda: tg.exp(a * 0.1)}[op]())
        return tensors, (tensors[-1] * tensors[-1]).sum() + tensors[0].sum()

    tensors, loss = build()
    wanted = [tensors[k] for k in requested]
    got = tg.grad(loss, wanted, create_graph=create_graph)

    tensors, loss = build()
    for t in tensors[3:]:
        t.retain_grad()
    loss.backward()
    for k, g in zip(requested, got):
        expected = tensors[k].grad
        if g is None:
            assert expected is None or not np.any(expected), k
        else:
            np.testing.assert_allclose(g.data if create_graph else g, expected, rtol=1e-12,
                                       atol=1e-15)


def test_a_leaf_that_stopped_requiring_grad_gets_no_grad():
    # backward stored .grad into it anyway (PyTorch's AccumulateGrad skips it)
    x, w = leaf([1.0, 2.0, 3.0]), leaf([1.0, 1.0, 1.0])
    loss = (x * x * w).sum()
    x.requires_grad_(False)
    loss.backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad, [1.0, 4.0, 9.0])


def test_a_leaf_whose_data_changed_shape_since_the_forward_pass_is_named():
    # .grad kept the forward's shape (3,) on a leaf of shape (5,), silently
    x, w = leaf([1.0, 2.0, 3.0]), leaf([1.0, 1.0, 1.0])
    loss = (x * w).sum()
    x.data = np.zeros(5)
    with pytest.raises(tg.BackwardError, match=r"a gradient of shape \(3,\) for a leaf of "
                                               r"shape \(5,\): the leaf's data was replaced"):
        loss.backward()
    assert x.grad is None and w.grad is None              # no .grad was changed


def test_held_by_graph_tells_a_graphs_hold_from_an_owners_freeze():
    w = tg.Tensor(np.ones(3), requires_grad=True)
    x = np.ones(3)
    x.setflags(write=False)                      # frozen by its owner
    assert not tg.held_by_graph(w.data) and not tg.held_by_graph(x)
    y = (w * tg.Tensor(x, requires_grad=True)).sum()      # mul saves both arrays
    assert tg.held_by_graph(w.data) and tg.held_by_graph(x)
    y.backward(retain_graph=True)
    assert tg.held_by_graph(w.data)              # kept for a second backward
    del y
    import gc
    gc.collect()
    assert not tg.held_by_graph(w.data) and not tg.held_by_graph(x)
    assert not x.flags.writeable                 # its owner's freeze stays


# ((3,) then (1,): also caught before, once the pass had summed the two; the message is checked)
@pytest.mark.parametrize("before,after", [((1,), (3,)), ((2,), (3,)), ((3,), (1,))])
@pytest.mark.parametrize("how", ["backward", "grad"])
def test_a_leaf_used_before_and_after_its_data_changed_shape_is_named(before, after, how):
    # each use gave a gradient of its own shape: (1,) and (3,) were broadcast into a (3,)
    # .grad without a word, (2,) and (3,) ended in numpy's bare "operands could not be
    # broadcast"
    x, w = leaf(np.ones(before)), leaf(np.ones(3))
    first = (x * 2.0).sum()
    x.data = np.ones(after)
    loss = first + (x * 3.0).sum() + (w * w).sum()
    with pytest.raises(tg.BackwardError, match=rf"{how}: a gradient of shape .* for a leaf of "
                                               rf"shape \({after[0]},\): the leaf's data was "
                                               r"replaced by an array of another shape"):
        if how == "backward":
            loss.backward()
        else:
            tg.grad(loss, [x, w])
    assert x.grad is None and w.grad is None              # no .grad was changed


def test_a_new_graph_over_an_array_forced_writable_while_an_old_one_holds_it():
    # The old graph's backward must refuse (its saved values may have changed); a forward
    # pass run after the change is right and must not be refused. It was, with "redo the
    # forward pass" advice that redoing could not satisfy while the old graph lived.
    w = leaf(np.array([1.0, 2.0, 3.0]))
    old = (w * w).sum()
    w.data.setflags(write=True)                    # forcing past the lock
    w.data[0] = 10.0
    new = (w * w).sum()
    new.backward()
    np.testing.assert_array_equal(w.grad, [20.0, 4.0, 6.0])
    assert tg.held_by_graph(w.data) and w.data.flags.writeable
    with pytest.raises(tg.InPlaceModificationError, match="made writable"):
        old.backward()
    del old
    import gc
    gc.collect()
    assert not tg.held_by_graph(w.data) and w.data.flags.writeable
    w.grad = None                                  # the same under create_graph
    old = (w * w * w).sum()
    w.data.setflags(write=True)
    w.data[0] = 1.0
    (g,) = tg.grad((w * w * w).sum(), w, create_graph=True)
    np.testing.assert_allclose(g.data, 3 * np.array([1.0, 2.0, 3.0]) ** 2)
    (h,) = tg.grad(g.sum(), w)
    np.testing.assert_allclose(h, 6 * np.array([1.0, 2.0, 3.0]))
    with pytest.raises(tg.InPlaceModificationError):
        tg.grad(old, w)
