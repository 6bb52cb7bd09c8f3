"""Shape ops: reshape transpose .T swapaxes expand_dims squeeze broadcast_to getitem
concatenate stack. Gradcheck with hypothesis-drawn shapes/axes/indices; repeated indices
accumulate; float32 preserved."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygraph as tg
from _tgutil import (SETTINGS, assert_float32_everywhere, assert_gradcheck, leaf, normal,
                     nonscalar_shapes, rng_of, seeds, shapes)


@st.composite
def reshape_case(draw):
    shape = draw(shapes)
    size = int(np.prod(shape, dtype=np.int64))
    target = draw(st.sampled_from([shape[::-1], (size,), (-1,), (1,) + shape, shape + (1,),
                                   (size, 1), (1, -1)]))
    return shape, target


@SETTINGS
@given(case=reshape_case(), seed=seeds, style=st.sampled_from(["fn", "varargs", "tuple"]))
def test_reshape_gradcheck(case, seed, style):
    shape, target = case
    x = normal(rng_of(seed), shape)
    if style == "fn":
        fn = lambda t: tg.reshape(t, target)  # noqa: E731
    elif style == "varargs":
        fn = lambda t: t.reshape(*target)  # noqa: E731
    else:
        fn = lambda t: t.reshape(target)  # noqa: E731
    out = fn(tg.Tensor(x))
    np.testing.assert_array_equal(out.data, x.reshape(target))
    assert_gradcheck(fn, [x])


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_transpose_gradcheck(shape, seed, data):
    perm = tuple(data.draw(st.permutations(range(len(shape))), label="perm"))
    use_neg = data.draw(st.booleans(), label="negative axes")
    axes = tuple(a - len(shape) for a in perm) if use_neg else perm
    x = normal(rng_of(seed), shape)
    permuted = np.transpose(x, perm)
    # (two separate axes are PyTorch's "exchange these": refused where numpy reads them
    # otherwise, tested below)
    as_arguments = len(axes) != 2 or perm == (1, 0)
    for fn, ref in [(lambda t: tg.transpose(t, axes), permuted),
                    (lambda t: t.transpose(*axes) if as_arguments else t.transpose(axes),
                     permuted),
                    (lambda t: t.transpose(axes), permuted),
                    (lambda t: t.T, x.T),
                    (lambda t: tg.transpose(t), x.T)]:
        out = fn(tg.Tensor(x))
        np.testing.assert_array_equal(out.data, ref)
        assert_gradcheck(fn, [x])


@SETTINGS
@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
def test_swapaxes_gradcheck(shape, seed, data):
    nd = len(shape)
    a1 = data.draw(st.integers(-nd, nd - 1), label="axis1")
    a2 = data.draw(st.integers(-nd, nd - 1), label="axis2")
    x = normal(rng_of(seed), shape)
    for fn in (lambda t: tg.swapaxes(t, a1, a2), lambda t: t.swapaxes(a1, a2)):
        np.testing.assert_array_equal(fn(tg.Tensor(x)).data, np.swapaxes(x, a1, a2))
        assert_gradcheck(fn, [x])


@SETTINGS
@given(shape=shapes, seed=seeds, data=st.data())
def test_expand_dims_gradcheck(shape, seed, data):
    nd = len(shape)
    axis = data.draw(st.integers(-(nd + 1), nd), label="axis")
    x = normal(rng_of(seed), shape)
    fn = lambda t: tg.expand_dims(t, axis)  # noqa: E731
    np.testing.assert_array_equal(fn(tg.Tensor(x)).data, np.expand_dims(x, axis))
    assert_gradcheck(fn, [x])
    assert_gradcheck(lambda t: t.expand_dims(axis), [x])


@st.composite
def squeeze_case(draw):
    shape = list(draw(shapes))
    n_ones = draw(st.integers(1, 2))
    for _ in range(n_ones):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    shape = tuple(shape)
    ones = [i for i, n in enumerate(shape) if n == 1]
    axis = draw(st.one_of(st.none(), st.sampled_from(ones),
                          st.sampled_from(ones).map(lambda i: i - len(shape))))
    return shape, axis


@SETTINGS
@given(case=squeeze_case(), seed=seeds)
def test_squeeze_gradcheck(case, seed):
    shape, axis = case
    x = normal(rng_of(seed), shape)
    fn = lambda t: tg.squeeze(t, axis)  # noqa: E731
    np.testing.assert_array_equal(fn(tg.Tensor(x)).data, np.squeeze(x, axis))
    assert_gradcheck(fn, [x])
    assert_gradcheck(lambda t: t.squeeze(axis), [x])


NO_OP_SHAPE_CALLS = {
    "squeeze, no axis of length 1": lambda t: tg.squeeze(t),
    "squeeze, axis=()": lambda t: tg.squeeze(t, axis=()),
    "reshape to its shape": lambda t: tg.reshape(t, (2, 3)),
    "transpose by the identity": lambda t: tg.transpose(t, (0, 1)),
    "broadcast_to its shape": lambda t: tg.broadcast_to(t, (2, 3)),
    "cast to its dtype": lambda t: tg.cast(t, np.float64),
    "t[...]": lambda t: t[...],
    "concatenate of one": lambda t: tg.concatenate([t]),
    "sum over axis=()": lambda t: tg.sum(t, axis=()),
}


@pytest.mark.parametrize("call", NO_OP_SHAPE_CALLS.values(), ids=NO_OP_SHAPE_CALLS.keys())
def test_an_op_that_changes_nothing_still_gives_a_new_array(call):
    # np.squeeze gives back its input itself when nothing is squeezed: the leaf's own array
    # then reached the next node unprotected, and writing the leaf changed its gradient
    x = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    w = tg.Tensor(np.full((2, 3), 2.0), requires_grad=True)
    y = call(x)
    assert y.data is not x.data and y._data is not x._data
    loss = (y * w).sum()                      # mul saves y for w's gradient
    x.data[0, 0] = 100.0                      # after the forward pass
    loss.backward()
    np.testing.assert_array_equal(w.grad, np.arange(6.0).reshape(2, 3))


@st.composite
def broadcast_to_case(draw):
    target = draw(nonscalar_shapes)
    drop = draw(st.integers(0, len(target)))
    src = list(target[drop:])
    for i in range(len(src)):
        if draw(st.booleans()):
            src[i] = 1
    return tuple(src), target


@SETTINGS
@given(case=broadcast_to_case(), seed=seeds)
def test_broadcast_to_gradcheck(case, seed):
    src, target = case
    x = normal(rng_of(seed), src)
    fn = lambda t: tg.broadcast_to(t, target)  # noqa: E731
    np.testing.assert_array_equal(fn(tg.Tensor(x)).data, np.broadcast_to(x, target))
    res = assert_gradcheck(fn, [x])
    assert res
    t = leaf(x)
    t.broadcast_to(target).sum().backward()
    np.testing.assert_allclose(t.grad, np.full(src, np.prod(target) / max(x.size, 1)))


# -- indexing -------------------------------------------------------------------------------

@SETTINGS
@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
def test_getitem_basic_indices_gradcheck(shape, seed, data):
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True),
                      label="index")
    x = normal(rng_of(seed), shape)
    fn = lambda t: t[index]  # noqa: E731
    np.testing.assert_array_equal(fn(tg.Tensor(x)).data, x[index])
    assert_gradcheck(fn, [x])
    # closed form: ones where selected (basic indices never repeat an element)
    t = leaf(x)
    t[index].sum().backward()
    expected = np.zeros_like(x)
    expected[index] = 1.0
    np.testing.assert_array_equal(t.grad, expected)


@SETTINGS
@given(shape=nonscalar_shapes, seed=seeds, data=st.data())
def test_getitem_integer_array_indices_accumulate(shape, seed, data):
    index = data.draw(hnp.integer_array_indices(
        shape, result_shape=hnp.array_shapes(min_dims=1, max_dims=2, max_side=5)), label="index")
    x = normal(rng_of(seed), shape)
    r = rng_of(seed + 1)
    fn = lambda t: t[index]  # noqa: E731
    out = fn(tg.Tensor(x))
    np.testing.assert_array_equal(out.data, x[index])
    assert_gradcheck(fn, [x])
    w = r.standard_normal(out.shape)
    t = leaf(x)
    tg.getitem(t, index).__mul__(w).sum().backward()
    expected = np.zeros_like(x)
    np.add.at(expected, index, w)
    np.testing.assert_allclose(t.grad, expected, rtol=1e-12, atol=1e-12)


def test_getitem_repeated_indices_accumulate():
    x = leaf([10.0, 20.0, 30.0, 40.0])
    y = x[[0, 0, 1, 3, 0]]
    np.testing.assert_array_equal(y.data, [10, 10, 20, 40, 10])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 1.0, 0.0, 1.0])
    x = leaf(np.arange(6.0).reshape(3, 2))
    idx = np.array([2, 2, 0])
    (x[idx] * np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])).sum().backward()
    np.testing.assert_array_equal(x.grad, [[5.0, 6.0], [0.0, 0.0], [4.0, 6.0]])


def test_getitem_mixed_and_boolean_indices():
    x0 = np.arange(12.0).reshape(3, 4)
    x = leaf(x0)
    (x[[0, 2, 0], 1:3] * 2.0).sum().backward()
    expected = np.zeros((3, 4))
    expected[0, 1:3] = 4.0
    expected[2, 1:3] = 2.0
    np.testing.assert_array_equal(x.grad, expected)
    x = leaf(x0)
    mask = x0 % 3 == 0
    x[mask].sum().backward()
    np.testing.assert_array_equal(x.grad, mask.astype(float))
    x = leaf(x0)
    x[tg.Tensor(mask)].sum().backward()
    np.testing.assert_array_equal(x.grad, mask.astype(float))
    x = leaf(x0)
    x[x > 5.0].sum().backward()
    np.testing.assert_array_equal(x.grad, (x0 > 5).astype(float))


def test_getitem_single_element_times_python_scalar():
    # a 0-d gradient times a Python scalar is a numpy scalar (np.float64), not an ndarray;
    # getitem's backward must still produce an array gradient
    x = leaf([1.0, 2.0, 3.0])
    (x[2] * 3.0).backward()
    assert isinstance(x.grad, np.ndarray)
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 3.0])
    x = leaf([1.0, 2.0, 3.0])
    (g,) = tg.grad(x[0] * 2.0, [x])
    assert type(g) is np.ndarray, type(g)
    np.testing.assert_array_equal(g, [2.0, 0.0, 0.0])


def test_getitem_scalar_element_and_negative_step():
    x = leaf([1.0, 2.0, 3.0])
    y = x[1]
    assert y.shape == () and y.item() == 2.0
    (x[-1] + x[-1] + y).backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 2.0])
    x = leaf(np.arange(5.0))
    (x[::-2] * np.array([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 0.0, 2.0, 0.0, 1.0])


# -- joining ---------------------------------------------------------------------------------

@st.composite
def concat_case(draw):
    base = list(draw(nonscalar_shapes))
    nd = len(base)
    axis = draw(st.integers(-nd, nd - 1))
    n = draw(st.integers(1, 3))
    out = []
    for _ in range(n):
        s = list(base)
        s[axis] = draw(st.integers(1, 3))
        out.append(tuple(s))
    return out, axis


@SETTINGS
@given(case=concat_case(), seed=seeds)
def test_concatenate_gradcheck(case, seed):
    shps, axis = case
    r = rng_of(seed)
    xs = [normal(r, s) for s in shps]
    fn = lambda *ts: tg.concatenate(list(ts), axis=axis)  # noqa: E731
    np.testing.assert_array_equal(fn(*[tg.Tensor(x) for x in xs]).data,
                                  np.concatenate(xs, axis=axis))
    assert_gradcheck(fn, xs)


@SETTINGS
@given(shape=shapes, seed=seeds, n=st.integers(1, 3), data=st.data())
def test_stack_gradcheck(shape, seed, n, data):
    nd = len(shape)
    axis = data.draw(st.integers(-(nd + 1), nd), label="axis")
    r = rng_of(seed)
    xs = [normal(r, shape) for _ in range(n)]
    fn = lambda *ts: tg.stack(ts, axis=axis)  # noqa: E731
    np.testing.assert_array_equal(fn(*[tg.Tensor(x) for x in xs]).data,
                                  np.stack(xs, axis=axis))
    assert_gradcheck(fn, xs)


def test_concatenate_with_constants_and_same_tensor_twice():
    a = leaf([1.0, 2.0])
    c = np.array([5.0])
    y = tg.concatenate([a, c, a, tg.Tensor([7.0])])
    np.testing.assert_array_equal(y.data, [1, 2, 5, 1, 2, 7])
    (y * np.arange(1.0, 7.0)).sum().backward()
    np.testing.assert_array_equal(a.grad, [1.0 + 4.0, 2.0 + 5.0])


# -- float32 ---------------------------------------------------------------------------------

R = np.random.default_rng(5)
X = R.uniform(-2, 2, (2, 3, 4))
X1 = R.uniform(-2, 2, (2, 1, 4))

FLOAT32_CASES = {
    "reshape": (lambda a: a.reshape(6, 4) * 2.0, [X]),
    "transpose": (lambda a: tg.transpose(a, (2, 0, 1)), [X]),
    "T": (lambda a: a.T + 1, [X]),
    "swapaxes": (lambda a: tg.swapaxes(a, 0, 2), [X]),
    "expand_dims": (lambda a: tg.expand_dims(a, 1), [X]),
    "squeeze": (lambda a: tg.squeeze(a, 1), [X1]),
    "broadcast_to": (lambda a: tg.broadcast_to(a, (5, 2, 3, 4)), [X1]),
    "getitem_basic": (lambda a: a[:, 1:, ::2] - 0.5, [X]),
    "getitem_int_array": (lambda a: a[np.array([0, 0, 1])], [X]),
    "getitem_bool": (lambda a: a[X > 0], [X]),
    "concatenate": (lambda a, b: tg.concatenate([a, b], axis=1), [X, X1]),
    "stack": (lambda a, b: tg.stack([a, b * 2.0], axis=-1), [X, X]),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_CASES))
def test_float32_preserved_in_output_and_gradients(name):
    build, arrays = FLOAT32_CASES[name]
    assert_float32_everywhere(build, arrays)


def test_getitem_keeps_its_own_copy_of_an_index_the_caller_changes_later():
    x = leaf(np.arange(4.0))
    idx = np.array([0, 1])
    as_list = [2, 3]
    y = x[idx] * np.array([1.0, 10.0]) + x[as_list] * np.array([100.0, 1000.0])
    idx[0] = 3                                    # changed between forward and backward
    as_list[0] = 0
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [1.0, 10.0, 100.0, 1000.0])
    z = x[(slice(None), )][np.array([1, 1])]      # tuple indices and repeats too
    node = z.grad_fn
    z.sum().backward()
    assert not hasattr(node, "index")             # the index went with the graph


def test_getitem_with_an_empty_list_index_has_a_zero_gradient():
    x = leaf(np.arange(3.0))
    x[[]].sum().backward()                        # numpy takes [] as an empty integer index
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])
    x.grad = None
    x[([],)].sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


def test_broadcast_to_takes_an_int_shape_like_numpy():
    x = tg.Tensor(np.array([2.0]), requires_grad=True)
    y = tg.broadcast_to(x, 4)
    assert y.shape == (4,) == np.broadcast_to(np.array([2.0]), 4).shape
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [4.0])


def test_concatenate_keeps_no_array_on_its_node():
    # it declares keeps_arrays_on_ctx = False: the slice bounds are ints, nothing to free
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    y = tg.concatenate([x, 2 * x], axis=1)
    node = y.grad_fn
    assert type(node).keeps_arrays_on_ctx is False
    assert node.bounds == (0, 3, 6) and all(type(b) is int for b in node.bounds)
    assert not any(isinstance(v, np.ndarray) for v in vars(node).values())
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, np.full((2, 3), 3.0))


def test_tensors_inside_a_list_index_are_taken_as_their_values():
    # x[[t0, t1]] stopped with the Tensor-to-array conversion error, naming no index
    x = tg.Tensor(np.arange(5.0), requires_grad=True)
    i, j = tg.Tensor(np.array(1)), tg.Tensor(np.array(3))
    y = x[[i, j, j]]
    np.testing.assert_array_equal(y.data, [1.0, 3.0, 3.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [0.0, 1.0, 0.0, 2.0, 0.0])
    m = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    np.testing.assert_array_equal(m[(i, [0, j - 1])].data, [3.0, 5.0])


def test_list_indices_mean_what_they_mean_to_numpy():
    x = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    for index in ([1, 0, 1], [True, False], [[0], [1]], ([0, 1], [2, 2]), [], ([], [])):
        np.testing.assert_array_equal(x[index].data, x.data[index], err_msg=repr(index))
    x[[1, 1]].sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]])
    with pytest.raises(ValueError, match=r"^getitem: index \[0, \[1, 2\]\] does not fit"):
        x[[0, [1, 2]]]                            # ragged


@pytest.mark.parametrize("shape, axes, fragment", [
    ((2, 2), (0, 1), "transpose(0, 1): keeps a 2-D tensor as it is (numpy reads the arguments "
                     "as the new order of all axes); to exchange two axes, as torch.transpose "
                     "does, write t.swapaxes(0, 1) or t.T"),
    ((2, 3), (-2, -1), "transpose(-2, -1): keeps a 2-D tensor as it is"),
    ((2, 3, 4), (1, 2), "transpose(1, 2): is no order of the 3 axes of shape (2, 3, 4); to "
                        "exchange two axes, as torch.transpose does, write t.swapaxes(1, 2)"),
])
def test_transpose_with_two_axes_as_pytorch_writes_it_is_refused_with_swapaxes(shape, axes,
                                                                               fragment):
    # numpy's transpose(0, 1) keeps a 2-D array as it is: a PyTorch user meaning "swap" got
    # the untransposed weights back, silently
    t = tg.Tensor(np.arange(np.prod(shape), dtype=float).reshape(shape))
    with pytest.raises(tg.ShapeError) as exc:
        t.transpose(*axes)
    assert fragment in str(exc.value)
    np.testing.assert_array_equal(t.swapaxes(*axes).data, np.swapaxes(t.data, *axes))
    np.testing.assert_array_equal(t.transpose(1, 0).data if len(shape) == 2 else
                                  t.transpose(0, 2, 1).data,
                                  np.swapaxes(t.data, -2, -1))    # a full order still works
    np.testing.assert_array_equal(t.transpose(tuple(range(len(shape)))).data, t.data)


@SETTINGS
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4), seed=seeds)
def test_getitem_with_masks_mixed_with_slices_arrays_and_new_axes(shape, seed):
    # boolean masks and mixed indices were checked by closed form only
    r = rng_of(seed)
    x = normal(r, shape)
    mask = r.random(shape) < 0.5
    rows = r.random(shape[0]) < 0.5
    for fn in (lambda t: t[mask], lambda t: t[rows], lambda t: t[rows, ..., None]):
        assert_gradcheck(fn, [x])
    if len(shape) >= 2 and shape[1]:
        repeated = r.integers(0, shape[1], size=4)              # repeated columns add up
        assert_gradcheck(lambda t: t[1:, repeated], [x])
        t = leaf(x)
        t[:, repeated].sum().backward()
        counts = np.bincount(repeated, minlength=shape[1]).astype(float)
        expected = np.broadcast_to(counts.reshape((1, shape[1]) + (1,) * (len(shape) - 2)),
                                   shape)
        np.testing.assert_array_equal(t.grad, expected)
