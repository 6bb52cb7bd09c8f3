"""Tensor: construction, attributes, dtypes, conversions, detach, retain_grad, zero_grad, repr."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygraph as tg


def test_attributes_of_a_leaf():
    t = tg.Tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True, name="w")
    assert isinstance(t.data, np.ndarray)
    np.testing.assert_array_equal(t.data, [[1, 2, 3], [4, 5, 6]])
    assert t.grad is None
    assert t.requires_grad is True
    assert t.grad_fn is None
    assert t.is_leaf
    assert t.shape == (2, 3)
    assert t.dtype == np.float64
    assert t.ndim == 2
    assert t.name == "w"
    u = tg.Tensor(3.0)
    assert u.requires_grad is False and u.name is None and u.shape == () and u.ndim == 0


def test_constructor_positional_signature():
    t = tg.Tensor([1, 2], True, np.float32, "p")
    assert t.requires_grad and t.dtype == np.float32 and t.name == "p"
    np.testing.assert_array_equal(t.data, [1.0, 2.0])


def test_attributes_of_an_op_result():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2.0
    assert y.requires_grad
    assert y.grad_fn is not None
    assert not y.is_leaf
    with pytest.warns(UserWarning, match="retain_grad"):
        assert y.grad is None
    z = tg.Tensor([1.0, 2.0]) * 2.0   # no input requires grad: no node
    assert z.grad_fn is None and not z.requires_grad and z.is_leaf


def test_reading_grad_of_an_op_result_without_retain_grad_warns_and_says_what_to_do():
    # A learner comparing hand-derived deltas reads h.grad after backward: None, silently,
    # before (PyTorch warns the same way)
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3.0
    kept = (x * 2.0).retain_grad()
    (h * kept).sum().backward()
    with pytest.warns(UserWarning, match=r"^Tensor.grad of a tensor made by an op \(MulBackward, "
                                         r"shape \(2,\)\) is None: backward\(\) keeps gradients "
                                         r"of leaves only. Call .retain_grad\(\) on it before "
                                         r"backward\(\)"):
        assert h.grad is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(kept.grad, [3.0, 6.0])     # retained: no warning
        np.testing.assert_allclose(x.grad, [2.0 * 3.0 * 2.0, 2.0 * 3.0 * 4.0])   # a leaf
        assert tg.Tensor([1.0], requires_grad=True).grad is None     # a leaf before backward
        h.grad = np.ones(2)                                   # set by hand: read back quietly
        np.testing.assert_allclose(h.grad, [1.0, 1.0])


def test_grad_has_shape_and_dtype_of_data():
    for dtype in (np.float64, np.float32, np.float16):
        x = tg.Tensor(np.ones((2, 3), dtype=dtype), requires_grad=True)
        (x * x).sum().backward()
        assert isinstance(x.grad, np.ndarray)
        assert x.grad.shape == x.shape
        assert x.grad.dtype == dtype


def test_float_dtypes_are_kept():
    assert tg.Tensor(1.5).dtype == np.float64
    assert tg.Tensor([1.5, 2.0]).dtype == np.float64
    assert tg.Tensor(np.zeros(3, dtype=np.float32)).dtype == np.float32
    assert tg.Tensor(np.zeros(3, dtype=np.float16)).dtype == np.float16
    assert tg.Tensor([1, 2], dtype=np.float32).dtype == np.float32
    assert tg.Tensor(np.float32(2.0)).dtype == np.float32
    assert tg.tensor([1.0], dtype=np.float32).dtype == np.float32


def test_integer_data_stays_integer_and_cannot_require_grad():
    t = tg.Tensor([1, 2, 3])
    assert t.dtype.kind == "i"
    with pytest.raises(TypeError) as info:
        tg.Tensor([1, 2, 3], requires_grad=True)
    assert "dtype=np.float64" in str(info.value)
    with pytest.raises(TypeError) as info:
        tg.Tensor(np.arange(3), requires_grad=True)
    assert "dtype=np.float64" in str(info.value)
    with pytest.raises(TypeError):
        tg.Tensor([True, False], requires_grad=True)
    # the suggested fix works
    ok = tg.Tensor([1, 2, 3], dtype=np.float64, requires_grad=True)
    assert ok.dtype == np.float64 and ok.requires_grad


def test_non_numeric_data_is_rejected_with_type_error():
    with pytest.raises(TypeError):
        tg.Tensor("abc")
    with pytest.raises(TypeError):
        tg.Tensor([1.0, "a"])


def test_tensor_wraps_and_tensor_function_copies():
    a = np.array([1.0, 2.0])
    t = tg.Tensor(a)
    assert t.data is a
    c = tg.tensor(a)
    assert c.data is not a
    a[0] = 10.0
    assert c.data[0] == 1.0


def test_wrapping_a_recorded_result_cannot_change_what_its_graph_saved():
    """Tensor(y) of a recorded result shares its values read-only, like y.detach(): writing
    through it must not change the output exp saved for its backward."""
    x = tg.Tensor([0.0, 1.0], requires_grad=True)
    y = tg.exp(x)
    wrapped = tg.Tensor(y)
    with pytest.raises(ValueError, match="read-only"):
        wrapped.data[...] = 100.0
    leaf = tg.Tensor([0.0])
    leaf.data = y                                  # (the .data setter takes the same way)
    with pytest.raises(ValueError, match="read-only"):
        leaf.data[0] = 100.0
    y.sum().backward()
    np.testing.assert_allclose(x.grad, np.exp([0.0, 1.0]))
    assert tg.Tensor(x).data is x.data             # a leaf's array is still wrapped as it is


def test_iteration_goes_over_the_first_axis_and_refuses_0d():
    x = tg.Tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = list(x)
    assert len(rows) == 3 and all(r.shape == (2,) for r in rows)
    sum(r.sum() for r in rows).backward()                    # each row is a recorded getitem
    np.testing.assert_array_equal(x.grad, np.ones((3, 2)))
    with pytest.raises(TypeError, match="iteration over a 0-d Tensor"):
        list(tg.Tensor(5.0))
    with pytest.raises(TypeError, match="iteration over a 0-d Tensor"):
        sum(tg.Tensor(5.0))


def test_item_and_numpy():
    assert tg.Tensor(2.5).item() == 2.5
    assert isinstance(tg.Tensor(2.5).item(), float)
    assert tg.Tensor([[7.0]]).item() == 7.0
    with pytest.raises(ValueError):
        tg.Tensor([1.0, 2.0]).item()
    t = tg.Tensor([1.0, 2.0])
    assert t.numpy() is t.data
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    y = (x * 3.0).sum()
    assert y.item() == pytest.approx(9.0)


def test_detach_shares_data_and_cuts_the_graph():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    d = y.detach()
    assert d.grad_fn is None and not d.requires_grad and d.is_leaf
    np.testing.assert_array_equal(d.data, y.data)
    assert np.shares_memory(d.data, y.data)
    # gradient does not flow through the detached branch
    (x * d).sum().backward()
    np.testing.assert_array_equal(x.grad, d.data)
    x2 = tg.Tensor([1.0, 2.0], requires_grad=True)
    (x2.detach() * 5.0 + x2).sum().backward()
    np.testing.assert_array_equal(x2.grad, [1.0, 1.0])


def test_retain_grad_on_intermediate():
    x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    h = x * 2.0
    r = h.retain_grad()
    assert r is h
    k = x * 3.0           # not retained
    loss = (h * h).sum() + k.sum()
    loss.backward()
    np.testing.assert_allclose(h.grad, 2 * h.data)
    assert h.grad.shape == h.shape and h.grad.dtype == h.dtype
    with pytest.warns(UserWarning, match="retain_grad"):
        assert k.grad is None
    np.testing.assert_allclose(x.grad, 2 * 2 * h.data + 3.0)


def test_retain_grad_on_0d_intermediate_is_an_array():
    x = tg.Tensor(1.5, requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    (h * 3.0).backward()
    assert type(h.grad) is np.ndarray and h.grad.shape == () and h.grad == 3.0
    assert type(x.grad) is np.ndarray and x.grad == 6.0


def test_retain_grad_accumulates_and_zero_grad_resets():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 1.0
    h.retain_grad()
    y = (h * 3.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(h.grad, [6.0, 6.0])
    np.testing.assert_allclose(x.grad, [6.0, 6.0])
    x.zero_grad()
    h.zero_grad()
    assert x.grad is None and h.grad is None


def test_repr_shows_shape_dtype_and_grad_fn():
    x = tg.Tensor(np.zeros((2, 3), dtype=np.float32), requires_grad=True)
    r = repr(x)
    assert "(2, 3)" in r and "float32" in r
    y = x * 2.0
    r = repr(y)
    assert "(2, 3)" in r and "float32" in r and "Mul" in r
    s = repr(tg.exp(x).sum())
    assert "()" in s and "Sum" in s


def test_len_float_and_comparisons_are_not_differentiable():
    x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert len(x) == 3
    m = x > 1.5
    assert isinstance(m, tg.Tensor)
    assert m.dtype == np.bool_ and m.grad_fn is None and not m.requires_grad
    np.testing.assert_array_equal(m.data, [False, True, True])
    assert float(tg.Tensor(2.0)) == 2.0


def test_numpy_1_is_refused_with_the_reason():
    from tinygraph._requirements import require_numpy2
    with pytest.raises(ImportError, match=r"needs numpy 2\.0 or newer, found numpy 1\.26\.4"):
        require_numpy2("1.26.4")
    require_numpy2("2.0.0")
    require_numpy2("2.4.6")
    require_numpy2(np.__version__)


def test_in_place_update_of_a_parameter_under_no_grad_changes_it_in_place():
    # The PyTorch habit `p -= lr * p.grad`: without __isub__ Python bound the name to a new
    # tensor, so the loop below updated nothing, without a word.
    values = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)
    W = tg.Tensor(values, requires_grad=True)
    W.grad = np.full((2, 2), 10.0, dtype=np.float32)
    params = [W]
    with tg.no_grad():
        for p in params:
            p -= 0.1 * p.grad
            p += 3.0
            p *= 2.0
            p /= 4.0
    np.testing.assert_allclose(W.data, [[1.5, 2.0], [2.5, 3.0]], rtol=1e-6)
    assert W.data is values and W.dtype == np.float32 and W.is_leaf and W.requires_grad


def test_in_place_update_of_a_parameter_while_recording_is_refused():
    W = tg.Tensor(np.ones(3), requires_grad=True, name="W")
    with pytest.raises(RuntimeError, match=r"in-place -= on W \(3,\): the tensor requires grad "
                                           r"and gradients are being recorded.*tg.no_grad"):
        W -= 1.0
    np.testing.assert_array_equal(W.data, np.ones(3))


def test_in_place_update_of_an_array_a_graph_saved_is_refused_and_changes_nothing():
    W = tg.Tensor(np.ones(3), requires_grad=True, name="W")
    loss = (W * W).sum()                       # saves W for backward
    with tg.no_grad(), pytest.raises(RuntimeError, match="its array is held read-only by a graph"):
        W -= 1.0
    np.testing.assert_array_equal(W.data, np.ones(3))
    loss.backward()
    with tg.no_grad():
        W -= 1.0                               # after backward the array is free again
    np.testing.assert_array_equal(W.data, np.zeros(3))


@pytest.mark.parametrize("value, error, match", [
    (np.ones((4, 3)), tg.ShapeError, r"in-place \+= on a leaf \(3,\): a value of shape \(4, 3\) "
                                     r"does not broadcast to the tensor's shape \(3,\)"),
    ([[1.0], [1.0, 2.0]], tg.ShapeError, r"a ragged list does not broadcast"),
    ("a", TypeError, r"in-place \+= on a leaf \(3,\): cannot combine dtype float64 with 'a'"),
])
def test_in_place_update_with_a_bad_value_names_the_problem(value, error, match):
    W = tg.Tensor(np.ones(3), requires_grad=True)
    with tg.no_grad(), pytest.raises(error, match=match):
        W += value
    np.testing.assert_array_equal(W.data, np.ones(3))


def test_power_in_place_and_matmul_in_place_on_a_parameter():
    W = tg.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True, name="W")
    with tg.no_grad():
        W **= 2
    np.testing.assert_array_equal(W.data, [1.0, 4.0, 9.0])
    assert W.requires_grad and W.is_leaf
    with pytest.raises(RuntimeError, match=r"in-place \*\*= on W \(3,\).*`t = t \*\* v`"):
        W **= 2
    with tg.no_grad(), pytest.raises(RuntimeError, match=r"in-place @= on W \(3,\): a tensor "
                                                         r"that requires grad cannot be replaced"):
        W @= np.eye(3)
    x = tg.Tensor(np.ones((1, 2)))
    x @= np.ones((2, 3))                           # anything else: a new tensor, any shape
    assert x.shape == (1, 3)


def test_in_place_update_says_why_an_array_is_read_only_and_what_none_means():
    frozen = np.ones(2)
    frozen.setflags(write=False)
    p = tg.Tensor(frozen, requires_grad=True, name="p")
    with tg.no_grad(), pytest.raises(RuntimeError, match=r"its array is read-only \(frozen by "
                                                         r"its owner.*t.data = t.data.copy\(\)"):
        p -= 1.0
    q = tg.Tensor(np.ones(2), requires_grad=True, name="q")
    with tg.no_grad(), pytest.raises(TypeError, match=r"in-place -= on q \(2,\): got None "
                                                      r"\(a .grad before any backward\(\)"):
        q -= q.grad


def test_in_place_operators_elsewhere_make_a_new_tensor_as_before():
    # An intermediate `h += b` stays a recorded node (its gradient flows), and a leaf that
    # needs no gradient is not written through (its array may be the caller's).
    a = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = a * 3.0
    h0 = h
    h += 1.0
    assert h is not h0 and h.grad_fn is not None
    h.sum().backward()
    np.testing.assert_array_equal(a.grad, [3.0, 3.0])
    arr = np.array([1.0, 2.0])
    x = tg.Tensor(arr)
    x -= 1.0
    np.testing.assert_array_equal(arr, [1.0, 2.0])
    np.testing.assert_array_equal(x.data, [0.0, 1.0])


@pytest.mark.parametrize("how", ["backward", "grad", "mul"])
def test_an_integer_tensor_made_to_require_grad_by_attribute_is_named(how):
    # the constructor and requires_grad_() refuse it; set as an attribute, backward stored
    # a gradient of integer zeros (x * 0.5) or said the output depended on nothing (x * x)
    xi = tg.tensor([1, 2, 3])
    xi.requires_grad = True
    message = (rf"^{how}: a tensor of dtype int64 \(shape \(3,\)\) has requires_grad=True, set "
               r"as an attribute; only floating-point tensors can have gradients")
    with pytest.raises(TypeError, match=message):
        if how == "backward":
            (xi * 0.5).sum().backward()
        elif how == "grad":
            tg.grad((xi * 0.5).sum(), [xi])
        else:
            xi * xi
    assert xi.grad is None


def test_a_0d_tensor_takes_a_format_spec_and_others_say_what_to_format():
    # f"{loss:.3f}" gave "unsupported format string passed to Tensor.__format__"
    loss = (tg.Tensor([1.0, 2.0], requires_grad=True) * 2.0).sum()
    assert f"{loss:.3f}" == "6.000" and f"{tg.Tensor(np.float32(0.5)):>6.2f}" == "  0.50"
    assert f"{loss}" == str(loss)
    with pytest.raises(TypeError, match=r"^format\(Tensor, '\.2f'\): a format spec needs a 0-d "
                                        r"tensor \(one number\); this one has shape \(2,\)"):
        f"{tg.Tensor([1.0, 2.0]):.2f}"


def test_deepcopy_copies_leaves_and_refuses_a_tensor_made_by_an_op():
    import copy
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    h = w * 2.0                       # w's array is now held read-only by the graph
    w.grad = np.ones(2)
    a, b = copy.deepcopy([w, w])
    assert a is b and a is not w and a.name == "w" and a.requires_grad and a.is_leaf
    np.testing.assert_array_equal(a.grad, w.grad)
    a.data[0] = 7.0                   # a private, writable copy
    a.grad[0] = 5.0
    assert w.data[0] == 1.0 and w.grad[0] == 1.0
    # a copy of h carried a copy of the graph: backward through it filled the copied
    # leaf's .grad, never w's
    with pytest.raises(RuntimeError, match=r"^deepcopy of a tensor made by an op \(MulBackward, "
                                           r"shape \(2,\)\): only leaves can be copied; copy "
                                           r"t.detach\(\)"):
        copy.deepcopy(h)
    np.testing.assert_array_equal(copy.deepcopy(h.detach()).data, [2.0, 4.0])

    class Named(tg.Tensor):
        __slots__ = ()
    assert type(copy.deepcopy(Named([1.0]))) is Named     # a subclass stays itself


def test_a_list_of_tensors_is_pointed_to_stack():
    t = tg.Tensor(1.0, requires_grad=True) * 2.0
    with pytest.raises(TypeError, match=r"^Tensor: got a list of Tensors; tinygraph.stack"):
        tg.tensor([t, t])
    with pytest.raises(TypeError, match=r"^Tensor: got a tuple of Tensors"):
        tg.Tensor((t, 1.0))
    with pytest.raises(TypeError, match=r"^Tensor: got a list of Tensors"):
        tg.Tensor([[t, 1.0], [2.0, 3.0]])                 # nested
    assert tg.stack([t, t]).shape == (2,)
