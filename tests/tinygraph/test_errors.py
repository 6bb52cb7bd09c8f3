"""Shape errors: tinygraph.ShapeError (a ValueError) naming the op and the shapes."""
from __future__ import annotations

import re

import numpy as np
import pytest

import tinygraph as tg


def T(shape, requires_grad=True):
    return tg.Tensor(np.ones(shape), requires_grad=requires_grad)


def test_shape_error_is_a_value_error_and_tinygraph_error():
    assert issubclass(tg.ShapeError, ValueError)
    assert issubclass(tg.ShapeError, tg.TinygraphError)
    assert issubclass(tg.BackwardError, tg.TinygraphError)
    assert issubclass(tg.InPlaceModificationError, tg.TinygraphError)


def test_matmul_inner_dimension_message_is_exact():
    with pytest.raises(tg.ShapeError) as info:
        T((64, 784)) @ T((256, 128))
    assert "matmul: (64, 784) @ (256, 128): inner dimensions 784 and 256 differ" in str(info.value)
    with pytest.raises(ValueError):
        tg.matmul(T((3,)), T((4,)))
    with pytest.raises(tg.ShapeError) as info:
        tg.matmul(T((2, 3)), T((4,)))
    assert "(2, 3)" in str(info.value) and "(4,)" in str(info.value)


def test_matmul_batch_mismatch_and_0d():
    with pytest.raises(tg.ShapeError) as info:
        T((2, 3, 4)) @ T((5, 4, 6))
    assert "matmul" in str(info.value)
    with pytest.raises(tg.ShapeError) as info:
        tg.matmul(T(()), T((3,)))
    assert "matmul" in str(info.value)


@pytest.mark.parametrize("name,call", [
    ("add", lambda a, b: a + b),
    ("sub", lambda a, b: a - b),
    ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b),
    ("pow", lambda a, b: a ** b),
    ("maximum", tg.maximum),
    ("minimum", tg.minimum),
    ("where", lambda a, b: tg.where(np.ones((2, 3), dtype=bool), a, b)),
])
def test_broadcast_failures_name_op_and_shapes(name, call):
    with pytest.raises(tg.ShapeError) as info:
        call(T((2, 3)), T((4,)))
    msg = str(info.value)
    assert name in msg and "(2, 3)" in msg and "(4,)" in msg
    # also with a numpy array operand and without grad
    with pytest.raises(tg.ShapeError):
        call(T((2, 3), requires_grad=False), np.ones(4))
    with tg.no_grad():
        with pytest.raises(tg.ShapeError):
            call(T((2, 3)), T((4,)))


def test_reshape_to_wrong_size():
    with pytest.raises(tg.ShapeError) as info:
        T((2, 3)).reshape(4, 2)
    msg = str(info.value)
    assert "reshape" in msg and "(2, 3)" in msg and "(4, 2)" in msg


def test_concatenate_and_stack_mismatch():
    with pytest.raises(tg.ShapeError) as info:
        tg.concatenate([T((2, 3)), T((2, 4))], axis=0)
    msg = str(info.value)
    assert "concatenate" in msg and "(2, 3)" in msg and "(2, 4)" in msg
    tg.concatenate([T((2, 3)), T((2, 4))], axis=1)    # fine along the differing axis
    with pytest.raises(tg.ShapeError) as info:
        tg.concatenate([T((2, 3)), T((3,))])
    assert "concatenate" in str(info.value)
    with pytest.raises(tg.ShapeError) as info:
        tg.stack([T((2, 3)), T((3, 2))])
    assert "stack" in str(info.value) and "(3, 2)" in str(info.value)


@pytest.mark.parametrize("name,call", [
    ("sum", lambda t: tg.sum(t, axis=2)),
    ("sum", lambda t: t.sum(axis=(0, -3))),
    ("mean", lambda t: tg.mean(t, axis=-3)),
    ("max", lambda t: tg.max(t, axis=5)),
    ("min", lambda t: tg.min(t, axis=2)),
    ("logsumexp", lambda t: tg.logsumexp(t, axis=2)),
    ("softmax", lambda t: tg.softmax(t, axis=2)),
    ("log_softmax", lambda t: tg.log_softmax(t, axis=-3)),
    ("swapaxes", lambda t: tg.swapaxes(t, 0, 2)),
    ("squeeze", lambda t: tg.squeeze(t, 0)),
    ("expand_dims", lambda t: tg.expand_dims(t, 4)),
    ("transpose", lambda t: tg.transpose(t, (0, 0))),
    ("transpose", lambda t: tg.transpose(t, (0, 2))),
    ("concatenate", lambda t: tg.concatenate([t, t], axis=2)),
    ("stack", lambda t: tg.stack([t, t], axis=4)),
])
def test_bad_axis(name, call):
    with pytest.raises(tg.ShapeError) as info:
        call(T((2, 3)))
    assert name in str(info.value)


def test_linear_shape_errors():
    with pytest.raises(tg.ShapeError) as info:
        tg.linear(T((5, 3)), T((4, 2)))
    msg = str(info.value)
    assert "linear" in msg and "(5, 3)" in msg and "(4, 2)" in msg
    with pytest.raises(tg.ShapeError) as info:
        tg.linear(T((5, 3)), T((4, 3)), T((3,)))
    assert "linear" in str(info.value) and "(3,)" in str(info.value)


def test_broadcast_to_incompatible():
    with pytest.raises(tg.ShapeError) as info:
        tg.broadcast_to(T((2, 3)), (3, 3))
    assert "broadcast_to" in str(info.value) and "(2, 3)" in str(info.value)


def test_index_errors_name_the_op():
    with pytest.raises(IndexError) as info:
        T((2, 3))[5]
    assert "getitem" in str(info.value)


def test_failed_op_leaves_operands_usable():
    a = T((2, 3))
    with pytest.raises(tg.ShapeError):
        a @ T((4, 5))
    a.data[0, 0] = 3.0          # nothing was locked by the failed op
    (a * 2.0).sum().backward()
    np.testing.assert_array_equal(a.grad, np.full((2, 3), 2.0))


@pytest.mark.parametrize("operand", [
    "a", [[1, 2], [3]], {"x": 1},
    # arrays of other dtypes gave a complex, object or timedelta result that silently left
    # the graph (requires_grad False), or numpy's own error from inside the op
    np.array([1j, 1.0]), np.array([1.0, 2.0], dtype=object), np.array([1, 2], dtype="m8[s]"),
    np.array(["a", "b"])])
def test_non_numeric_operands_get_a_type_error_naming_the_op(operand):
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    for call in (lambda: x + operand, lambda: operand * x, lambda: tg.exp(operand)):
        with pytest.raises(TypeError, match=r"^(add|mul|exp): (an )?operand"):
            call()


@pytest.mark.parametrize("dtype", [np.complex128, object, "U3", "m8[s]"])
def test_cast_to_a_dtype_tinygraph_does_not_compute_with_is_refused(dtype):
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^cast: dtype .* is not a bool, integer or float "
                                        r"dtype"):
        tg.cast(x, dtype)


class _ReturnsThis(tg.Function):
    result = None

    @staticmethod
    def forward(ctx, x):
        return _ReturnsThis.result(x)

    @staticmethod
    def backward(ctx, g):
        return g


@pytest.mark.parametrize("result, shown", [
    (lambda x: None, "None (a NoneType"), (lambda x: "hello", "'hello' (a str"),
    (lambda x: x.astype(complex), "an array of dtype complex128")])
@pytest.mark.parametrize("recording", [True, False])
def test_a_user_forward_returning_no_numeric_array_is_named(result, shown, recording):
    # it made an object Tensor that needed no grad: backward then blamed detach/no_grad
    _ReturnsThis.result = staticmethod(result)
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^_returnsthis: forward returned " + re.escape(shown)):
        with tg.enable_grad() if recording else tg.no_grad():
            _ReturnsThis.apply(x)


@pytest.mark.parametrize("result, shown", [
    # of two shapes: numpy's "inhomogeneous shape" from deep inside apply, the op unnamed;
    # of one shape: stacked silently into one tensor, whose backward then failed
    (lambda x: (x * 2, x.sum()), "a tuple of 2; a tinygraph op has one output"),
    (lambda x: (x * 2, x * 3), "a tuple of 2; a tinygraph op has one output"),
    (lambda x: [x, x[:1]], "[array"),
])
@pytest.mark.parametrize("recording", [True, False])
def test_a_user_forward_returning_several_outputs_is_named(result, shown, recording):
    _ReturnsThis.result = staticmethod(result)
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^_returnsthis: forward returned " + re.escape(shown)):
        with tg.enable_grad() if recording else tg.no_grad():
            _ReturnsThis.apply(x)


def test_a_user_forward_returning_a_tuple_of_numbers_is_one_array_as_before():
    for result in (lambda x: (float(x.mean()), float(x.max())), lambda x: (x.mean(), x.max())):
        _ReturnsThis.result = staticmethod(result)
        out = _ReturnsThis.apply(tg.Tensor([1.0, 2.0], requires_grad=True))
        np.testing.assert_array_equal(out.data, [1.5, 2.0])


class _ExpWithTgOps(tg.Function):
    """A backward written with tinygraph's ops instead of numpy's."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.exp(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * tg.exp(tg.Tensor(x))


def test_a_user_backward_returning_a_tensor_is_named():
    # Tensor.__array__'s message told the learner to use "a tinygraph op to stay in the
    # graph", which is what they had done; the op was named only in a note (3.11+)
    x = tg.Tensor([0.0, 1.0], requires_grad=True)
    with pytest.raises(tg.BackwardError, match=r"^_ExpWithTgOpsBackward: backward returned a "
                                               r"Tensor for input 0; .*use numpy \(np\.exp"):
        _ExpWithTgOps.apply(x).sum().backward()
    assert x.grad is None


_X = tg.Tensor([1.0, 2.0], requires_grad=True)


@pytest.mark.parametrize("op, call", [
    ("add", lambda: _X + None), ("add", lambda: None + _X), ("sub", lambda: _X - None),
    ("sub", lambda: None - _X), ("mul", lambda: _X * None), ("mul", lambda: None * _X),
    ("div", lambda: _X / None), ("div", lambda: None / _X), ("pow", lambda: _X ** None),
    ("pow", lambda: None ** _X), ("maximum", lambda: tg.maximum(_X, None)),
    ("minimum", lambda: tg.minimum(None, _X)), ("matmul", lambda: _X @ None),
    ("matmul", lambda: None @ _X), ("exp", lambda: tg.exp(None)), ("sum", lambda: tg.sum(None)),
    ("relu", lambda: tg.relu(None)), ("tanh", lambda: tg.tanh(None)),
    ("linear", lambda: tg.linear(None, _X.reshape(1, 2))),
    ("linear", lambda: tg.linear(_X.reshape(1, 2), None)),
    ("stack", lambda: tg.stack([None, None])), ("stack", lambda: tg.stack([_X, None, _X])),
    ("concatenate", lambda: tg.concatenate([_X, None])),
])
def test_a_none_operand_gets_a_type_error_naming_the_op(op, call):
    # numpy's own words were "unsupported operand type(s) for +: 'float' and 'NoneType'",
    # "(...) @ (2,)" with shape () for None, or an AttributeError about .ndim
    with pytest.raises(TypeError, match=f"^{op}: got None as an operand; expected a number"):
        call()
    (_X * 2.0).sum().backward()          # nothing was left locked or half-recorded
    _X.grad = None


def test_where_with_a_none_condition_is_refused():
    with pytest.raises(TypeError, match="^where: cond must be a boolean array or Tensor, got "
                                        "cond=None"):
        tg.where(None, _X, _X)               # it gave b, silently


def test_other_type_errors_of_an_op_keep_numpy_words():
    # only a None operand is renamed: numpy's own TypeError for a boolean subtract stays
    with pytest.raises(TypeError, match="boolean subtract"):
        tg.Tensor([True, False]) - tg.Tensor([True, True])


class _Optional(tg.Function):
    """A user op whose one input may be None (then a default)."""

    @staticmethod
    def forward(ctx, x, scale=1.0):
        return np.zeros(2) if x is None else x * scale

    @staticmethod
    def backward(ctx, g):
        return g * 1.0


def test_none_stays_a_valid_optional_input_of_an_op():
    z = tg.linear(tg.Tensor(np.ones((1, 3))), tg.Tensor(np.ones((2, 3)), requires_grad=True), None)
    np.testing.assert_array_equal(z.data, [[3.0, 3.0]])
    # user ops take None as a constant, alone or beside other inputs, unless they opt in
    np.testing.assert_array_equal(_Optional.apply(None).data, [0.0, 0.0])
    np.testing.assert_array_equal(_Optional.apply(None, scale=2.0).data, [0.0, 0.0])
    assert _Optional.rejects_none is False


def test_a_user_op_can_ask_for_none_to_be_rejected():
    class Strict(_Optional):
        rejects_none = True
    with pytest.raises(TypeError, match="^strict: got None as an operand"):
        Strict.apply(None)


@pytest.mark.parametrize("call, expected", [
    (lambda: tg.sum(2.0), 2.0), (lambda: tg.mean(3), 3.0), (lambda: tg.max(2.0), 2.0),
    (lambda: tg.logsumexp(2.0), 2.0), (lambda: tg.squeeze(2.0), 2.0),
    (lambda: tg.reshape(2.0, (1,)), [2.0]), (lambda: tg.clip(2.0, 0, 1), 1.0),
    (lambda: tg.cast(2.0, "float32"), 2.0), (lambda: tg.exp(0.0), 1.0)])
def test_a_python_number_is_a_0d_constant_for_one_input_ops(call, expected):
    # sum(2.0) and the like used to stop with "'float' object has no attribute 'ndim'"
    out = call()
    assert isinstance(out, tg.Tensor) and not out.requires_grad
    np.testing.assert_array_equal(out.data, expected)


def test_a_python_number_keeps_its_weak_type_in_two_input_ops():
    x32 = tg.Tensor(np.ones(2, np.float32), requires_grad=True)
    assert (x32 * 2.0).dtype == np.float32 and (3 - x32).dtype == np.float32


@pytest.mark.parametrize("call, error, message", [
    (lambda x: x > tg.Tensor(np.ones(2)), tg.ShapeError,
     r"^comparison >: shapes \(2, 3\) and \(2,\) cannot be broadcast"),
    (lambda x: x <= "a", TypeError,
     r"^comparison <=: cannot compare a Tensor of dtype float64 with 'a' \(a str\)"),
    (lambda x: x > [1, [2, 3]], TypeError,
     r"^comparison >: cannot compare a Tensor with \[1, \[2, 3\]\], which is not a rectangular"),
    (lambda x: tg.concatenate([x, x], axis=None), TypeError,
     r"^concatenate: axis must be an int, got None; to join flattened tensors"),
    (lambda x: tg.stack([x, x], axis=None), TypeError, r"^stack: axis must be an int, got None"),
    (lambda x: tg.expand_dims(x, 1.0), TypeError,
     r"^expand_dims: axis must be an int or a tuple of ints, got 1\.0"),
    (lambda x: tg.broadcast_to(x, (2.0, 3)), TypeError,
     r"^broadcast_to: shape must be a tuple of ints, got \(2\.0, 3\)"),
    (lambda x: tg.clip(x, "a", 1), TypeError, r"^clip: bound lo='a' is not a number"),
    (lambda x: (x * 2).backward("abc"), tg.BackwardError,
     r"^backward: grad 'abc' is not an array of numbers; expected one of shape \(2, 3\)"),
    (lambda x: x.sum(keepdims="yes"), TypeError, r"^sum: keepdims must be True or False"),
    # max's own reshape took any truthy value as True: "no" kept the dimensions silently
    (lambda x: tg.max(x, axis=0, keepdims="no"), TypeError,
     r"^max: keepdims must be True or False, got 'no'"),
    (lambda x: tg.softmax(tg.Tensor(1.0)), tg.ShapeError,
     r"^softmax: axis -1 is out of range for an array with 0 dimension\(s\); a 0-d array "
     r"\(a scalar\) has no axes"),
])
def test_bad_arguments_are_named_instead_of_numpys_own_errors(call, error, message):
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(error, match=message):
        call(x)


def test_keepdims_takes_a_numpy_bool_and_0_or_1():
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    assert tg.sum(x, axis=1, keepdims=np.True_).shape == (2, 1)
    assert tg.max(x, axis=1, keepdims=np.False_).shape == (2,)
    assert x.sum(keepdims=1).shape == (1, 1) and tg.mean(x, axis=0, keepdims=0).shape == (3,)
    assert tg.logsumexp(x, axis=1, keepdims=np.int64(1)).shape == (2, 1)
    with pytest.raises(TypeError, match=r"^min: keepdims must be True or False, got 2"):
        tg.min(x, keepdims=2)
