"""Reductions and the softmax family: sum mean max min logsumexp softmax log_softmax.
Gradcheck with hypothesis-drawn shapes, axes and keepdims; ties; stability; float32."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygraph as tg
from _tgutil import (SETTINGS, assert_float32_everywhere, assert_gradcheck, distinct, leaf,
                     nonscalar_shapes, normal, rng_of, seeds, shapes, shapes_with_empty)


@st.composite
def shape_axis_keepdims(draw, allow_tuple=True):
    shape = draw(shapes)
    nd = len(shape)
    choices = [st.none()]
    if nd:
        choices.append(st.integers(-nd, nd - 1))
        if allow_tuple:
            choices.append(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                    unique=True).map(tuple))
    axis = draw(st.one_of(*choices))
    keepdims = draw(st.booleans())
    return shape, axis, keepdims


REDUCTIONS = {
    "sum": (tg.sum, np.sum, normal),
    "mean": (tg.mean, np.mean, normal),
    "max": (tg.max, np.max, distinct),
    "min": (tg.min, np.min, distinct),
    "logsumexp": (tg.logsumexp, None, normal),
}


def _np_logsumexp(x, axis, keepdims):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis) if axis is not None else out.reshape(())


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
@SETTINGS
@given(sak=shape_axis_keepdims(), seed=seeds)
def test_reduction_gradcheck(name, sak, seed):
    shape, axis, keepdims = sak
    fn, ref, gen = REDUCTIONS[name]
    x = gen(rng_of(seed), shape)
    out = fn(tg.Tensor(x), axis=axis, keepdims=keepdims)
    expected = (ref(x, axis=axis, keepdims=keepdims) if ref is not None
                else _np_logsumexp(x, axis, keepdims))
    assert out.shape == np.shape(expected)
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    assert_gradcheck(lambda t: fn(t, axis=axis, keepdims=keepdims), [x])


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
@SETTINGS
@given(sak=shape_axis_keepdims(), seed=seeds)
def test_reduction_methods_match_functions(name, sak, seed):
    shape, axis, keepdims = sak
    fn = getattr(tg, name)
    x = REDUCTIONS[name][2](rng_of(seed), shape)
    a, b = leaf(x), leaf(x)
    getattr(a, name)(axis=axis, keepdims=keepdims).sum().backward()
    fn(b, axis=axis, keepdims=keepdims).sum().backward()
    np.testing.assert_array_equal(a.grad, b.grad)
    assert a.grad.shape == x.shape


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@SETTINGS
@given(shape=shapes.filter(lambda s: len(s) >= 1), seed=seeds, data=st.data())
def test_softmax_family_gradcheck(name, shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = normal(rng_of(seed), shape, scale=2.0)
    fn = getattr(tg, name)
    out = fn(tg.Tensor(x), axis=axis)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    sm = e / e.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(out.data, sm if name == "softmax" else np.log(sm),
                               rtol=1e-10, atol=1e-12)
    assert_gradcheck(lambda t: fn(t, axis=axis), [x])


# -- ties split the gradient evenly -------------------------------------------------------

def test_max_min_ties_split_gradient_evenly_all_axes():
    x = leaf([1.0, 3.0, 3.0, 2.0, 3.0])
    tg.max(x).backward()
    np.testing.assert_allclose(x.grad, [0, 1 / 3, 1 / 3, 0, 1 / 3])
    x = leaf([1.0, 0.5, 2.0, 0.5])
    x.min().backward()
    np.testing.assert_allclose(x.grad, [0, 0.5, 0, 0.5])


def test_max_ties_along_axis_with_keepdims():
    x = leaf([[1.0, 1.0, 0.0],
              [2.0, 5.0, 5.0],
              [7.0, 7.0, 7.0]])
    y = tg.max(x, axis=1, keepdims=True)
    assert y.shape == (3, 1)
    (y * np.array([[1.0], [2.0], [3.0]])).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.5, 0.5, 0.0],
                                        [0.0, 1.0, 1.0],
                                        [1.0, 1.0, 1.0]])
    x = leaf([[1.0, 1.0], [0.0, 1.0]])
    tg.min(x, axis=0).sum().backward()
    np.testing.assert_allclose(x.grad, [[0.0, 0.5], [1.0, 0.5]])


def test_mean_gradient_is_one_over_count():
    x = leaf(np.ones((2, 3, 4)))
    x.mean(axis=(0, 2)).sum().backward()
    np.testing.assert_allclose(x.grad, np.full((2, 3, 4), 1 / 8))


@pytest.mark.parametrize("shape", [(3, 5), (80, 60)])     # below and above the fill threshold
@pytest.mark.parametrize("axis", [None, 0, (0, 1)])
def test_sum_and_mean_gradients_small_and_large(shape, axis):
    # Small gradients are expanded into a new array, large ones into a broadcast view:
    # both must give the same exact values, and .grad must be an array of its own.
    rng = np.random.default_rng(0)
    x = leaf(rng.normal(size=shape))
    g_shape = np.sum(x.data, axis=axis).shape
    g = rng.normal(size=g_shape)
    (tg.sum(x, axis=axis) + 2 * tg.mean(x, axis=axis)).backward(g)
    count = x.data.size // max(1, int(np.prod(g_shape)))
    keep = np.sum(x.data, axis=axis, keepdims=True).shape
    expected = np.broadcast_to(g.reshape(keep) * (1 + 2 / count), shape)
    np.testing.assert_allclose(x.grad, expected, rtol=1e-15)
    assert x.grad.flags.writeable and x.grad.base is None
    # one reduction straight into a leaf: the expanded gradient itself reaches .grad
    y = leaf(x.data.copy())
    tg.sum(y, axis=axis).backward(g)
    np.testing.assert_array_equal(y.grad, np.broadcast_to(g.reshape(keep), shape))
    assert y.grad.flags.writeable and y.grad.base is None


# -- stability -------------------------------------------------------------------------------

def test_softmax_logsumexp_log_softmax_are_stable_for_large_logits():
    z = np.array([[1000.0, 1000.0, -1000.0], [-1000.0, 0.0, 1000.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = tg.softmax(leaf(z))
        ls = tg.log_softmax(leaf(z))
        lse = tg.logsumexp(leaf(z), axis=1)
    np.testing.assert_allclose(s.data, [[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]], atol=1e-300)
    np.testing.assert_allclose(ls.data[0, :2], [-np.log(2)] * 2)
    np.testing.assert_allclose(ls.data[1, 2], 0.0, atol=1e-12)
    np.testing.assert_allclose(lse.data, [1000 + np.log(2), 1000.0])
    x = leaf(z)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        (tg.log_softmax(x) * np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])).sum().backward()
    assert np.all(np.isfinite(x.grad))
    np.testing.assert_allclose(x.grad, [[0.5, -0.5, 0.0], [0.0, 0.0, 0.0]], atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("c", [100.0, 1e4, 1e5])
def test_log_softmax_keeps_its_precision_for_large_logits(dtype, c):
    # x - logsumexp(x) rounded log(s) + m to m's precision: 5e-4 relative error in float32
    # near 1e4, 6e-3 near 1e5 (value and gradient)
    x = tg.Tensor(np.array([[c, c - 1, c - 2, c - 3]], dtype=dtype), requires_grad=True)
    y = tg.log_softmax(x)
    shifted = np.array([0.0, -1.0, -2.0, -3.0])
    ref = shifted - np.log(np.sum(np.exp(shifted)))            # exact: it depends on x - c
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(y.data[0], ref, rtol=tol)
    w = np.array([[1.0, 0.0, 0.0, 0.0]])
    (y * w).sum().backward()
    np.testing.assert_allclose(x.grad[0], w[0] - np.exp(ref), rtol=tol, atol=tol)


def test_logsumexp_of_infinite_rows_is_infinite_not_nan():
    # the shift by the row's max would be inf - inf = NaN without the guard
    z = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [0.0, -np.inf]])
    with np.errstate(invalid="raise"):
        out = tg.logsumexp(tg.Tensor(z), axis=1)
    np.testing.assert_array_equal(out.data, [-np.inf, np.inf, 0.0])


def test_softmax_rows_sum_to_one_and_default_axis_is_last():
    x = normal(np.random.default_rng(0), (4, 5, 6))
    s = tg.softmax(tg.Tensor(x))
    np.testing.assert_allclose(s.data.sum(axis=-1), 1.0)
    s0 = tg.softmax(tg.Tensor(x), axis=0)
    np.testing.assert_allclose(s0.data.sum(axis=0), 1.0)


def test_logsumexp_gradient_is_softmax():
    x0 = np.array([[0.1, 2.0, -1.0], [3.0, 3.0, 0.0]])
    x = leaf(x0)
    tg.logsumexp(x, axis=1).sum().backward()
    e = np.exp(x0 - x0.max(axis=1, keepdims=True))
    np.testing.assert_allclose(x.grad, e / e.sum(axis=1, keepdims=True), rtol=1e-12)


# -- float32 ---------------------------------------------------------------------------------

R = np.random.default_rng(3)
X = R.uniform(-2, 2, (3, 4, 2))
XD = distinct(R, (3, 4, 2))

FLOAT32_CASES = {
    "sum": (lambda a: a.sum() * 2.0, [X]),
    "sum_axis": (lambda a: tg.sum(a, axis=1), [X]),
    "sum_keepdims": (lambda a: tg.sum(a, axis=(0, 2), keepdims=True) + 1, [X]),
    "mean": (lambda a: a.mean(), [X]),
    "mean_axis": (lambda a: tg.mean(a, axis=-1) / 2, [X]),
    "max": (lambda a: a.max(), [XD]),
    "max_axis": (lambda a: tg.max(a, axis=0, keepdims=True), [XD]),
    "max_ties": (lambda a: tg.max(a * 0.0 + 1.0, axis=1), [X]),
    "min": (lambda a: a.min(axis=2), [XD]),
    "logsumexp": (lambda a: tg.logsumexp(a, axis=1), [X]),
    "logsumexp_all": (lambda a: tg.logsumexp(a), [X]),
    "softmax": (lambda a: tg.softmax(a) * 3.0, [X]),
    "log_softmax": (lambda a: tg.log_softmax(a, axis=1), [X]),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_preserved_in_output_and_gradients(name):
    build, arrays = FLOAT32_CASES[name]
    assert_float32_everywhere(build, arrays)


@pytest.mark.parametrize("op, axis", [(tg.logsumexp, None), (tg.logsumexp, 0), (tg.softmax, 0),
                                      (tg.log_softmax, 0)])
def test_the_softmax_family_over_an_empty_axis_is_a_named_error(op, axis):
    t = tg.Tensor(np.zeros((0, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=rf"{op.__name__}: cannot reduce over an axis of length 0 "
                                         rf"\(input of shape \(0, 3\), axis"):
        op(t, axis=axis)
    # over the other axis there is nothing to refuse: an empty result
    assert op(t, axis=1).shape == ((0,) if op is tg.logsumexp else (0, 3))


@pytest.mark.parametrize("name", ["max", "min", "mean"])
def test_max_min_mean_refuse_an_empty_axis_and_reduce_around_one(name):
    """(0, 3) over axis 1 is three-wide rows of which there are none: an empty result, as
    numpy and PyTorch give (these three used to refuse every empty input)."""
    t = tg.Tensor(np.zeros((0, 3)), requires_grad=True)
    reduce = getattr(t, name)
    y = reduce(axis=1)
    assert y.shape == (0,)
    y.sum().backward()
    assert t.grad.shape == (0, 3)
    for axis in (0, None):
        with pytest.raises(ValueError, match=rf"{name}: cannot reduce over an axis of length 0"):
            reduce(axis=axis)


def test_an_axis_that_is_not_an_int_is_a_named_error():
    t = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    for bad in (0.0, "0", (0, 1.5)):
        with pytest.raises(TypeError, match=r"sum: axis must be an int or a tuple of ints"):
            t.sum(axis=bad)
    for axes in (np.array([0, 1]), range(2), [0, 1]):   # sequences of ints still work
        assert t.sum(axis=axes).item() == 6.0


def test_an_axis_may_be_a_0d_integer_array_as_in_numpy():
    x = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    np.testing.assert_array_equal(tg.sum(x, axis=np.array(1)).data, [3.0, 12.0])
    tg.mean(x, axis=(np.array(0), -1)).backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 1 / 6))
    for bad in (np.array(1.0), np.array(True)):
        with pytest.raises(TypeError, match=r"^sum: axis must be an int or a tuple of ints"):
            tg.sum(x, axis=bad)


@pytest.mark.parametrize("call, fragment", [
    (lambda t: t.sum(dim=0), "sum(): tinygraph takes numpy's keyword names: axis= (not dim=)"),
    (lambda t: t.max(dim=1, keepdim=True), "max(): tinygraph takes numpy's keyword names: "
                                           "axis= (not dim=), keepdims= (not keepdim=)"),
    (lambda t: t.mean(axis=0, keepdim=True), "mean(): tinygraph takes numpy's keyword names: "
                                             "keepdims= (not keepdim=)"),
    (lambda t: tg.softmax(t, dim=1), "softmax(): tinygraph takes numpy's keyword names: axis="),
    (lambda t: tg.log_softmax(t, dim=1), "log_softmax(): tinygraph takes numpy's keyword"),
    (lambda t: tg.logsumexp(t, dim=1), "logsumexp(): tinygraph takes numpy's keyword"),
    (lambda t: t.min(dim=1), "min(): tinygraph takes numpy's keyword names: axis="),
    (lambda t: tg.stack([t, t], dim=0), "stack(): tinygraph takes numpy's keyword names: axis="),
    (lambda t: tg.concatenate([t, t], dim=0), "concatenate(): tinygraph takes numpy's keyword"),
    (lambda t: t.expand_dims(dim=0), "expand_dims(): tinygraph takes numpy's keyword"),
    (lambda t: t.squeeze(dim=0), "squeeze(): tinygraph takes numpy's keyword names: axis="),
])
def test_pytorch_keyword_names_are_answered_with_numpys(call, fragment):
    # Python's own words were "got an unexpected keyword argument 'dim'"
    t = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TypeError) as exc:
        call(t)
    assert str(exc.value).startswith(fragment)
    with pytest.raises(TypeError, match="unexpected keyword argument 'axes'"):
        t.sum(axes=0)                       # other wrong keywords: Python's message
    assert tg.sum.__name__ == "sum" and t.sum(axis=0, keepdims=True).shape == (1, 3)


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min", "logsumexp"])
@SETTINGS
@given(shape=shapes_with_empty, seed=seeds, data=st.data())
def test_reductions_over_shapes_with_empty_dimensions(name, shape, seed, data):
    # no strategy drew a dimension of size 0 (a batch of 0 rows)
    nd = len(shape)
    axis = data.draw(st.none() | (st.integers(-nd, nd - 1) if nd else st.none()), label="axis")
    keepdims = data.draw(st.booleans(), label="keepdims")
    reduced = range(nd) if axis is None else [axis % nd]
    empty_reduction = any(shape[a] == 0 for a in reduced) or (axis is None and 0 in shape)
    x = (distinct if name in ("max", "min") else normal)(rng_of(seed), shape)
    fn = lambda t: getattr(tg, name)(t, axis=axis, keepdims=keepdims)  # noqa: E731
    if empty_reduction and name != "sum":       # nothing to take a mean or maximum of
        with pytest.raises(ValueError, match=rf"^{name}: cannot reduce over an axis of length "
                                             rf"0 .* an empty set has no {name}"):
            fn(leaf(x))
        return
    assert_gradcheck(fn, [x])
    t = leaf(x)
    fn(t).sum().backward()
    assert t.grad.shape == shape


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
@SETTINGS
@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
def test_softmax_family_over_several_axes_or_all(name, shape, seed, data):
    # only a single integer axis was checked
    nd = len(shape)
    axis = data.draw(st.none() | st.lists(st.integers(-nd, nd - 1), min_size=1, max_size=nd,
                                          unique_by=lambda a: a % nd).map(tuple), label="axis")
    x = normal(rng_of(seed), shape, scale=2.0)
    fn = lambda t: getattr(tg, name)(t, axis=axis)  # noqa: E731
    total = fn(tg.Tensor(x)).data
    if name == "softmax":
        summed = total.sum(axis=axis if axis is not None else None)
        np.testing.assert_allclose(summed, 1.0, rtol=1e-12)
    assert_gradcheck(fn, [x])


def test_clip_takes_numpy_2s_and_pytorchs_min_and_max():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    t = tg.Tensor(x, requires_grad=True)
    np.testing.assert_array_equal(t.clip(min=-1.0, max=1.0).data, np.clip(x, -1.0, 1.0))
    np.testing.assert_array_equal(tg.clip(t, min=0.0).data, np.clip(x, 0.0, None))
    np.testing.assert_array_equal(tg.clip(t, max=0.0).data, np.clip(x, None, 0.0))
    with pytest.raises(TypeError, match=r"^clip: give the bounds as lo/hi or as min/max, not both"):
        tg.clip(t, -1.0, max=1.0)
