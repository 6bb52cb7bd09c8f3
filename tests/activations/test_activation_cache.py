"""The cache contract: backward uses only ``cache``, which is independent of the caller's arrays."""

import re

import numpy as np
import pytest

from activations import Activation, Sigmoid


def random_input(seed: int, shape=(3, 4)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-3.0, 3.0, size=shape)


def gradient_at(make_activation, x: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
    """Reference gradient from a fresh activation that nobody else touches."""
    act: Activation = make_activation()
    act.forward(x.copy())
    return act.backward(grad_output)


def test_cache_is_none_before_forward(make_activation):
    assert make_activation().cache is None


def test_backward_before_forward_raises_runtime_error_naming_the_class(make_activation):
    act = make_activation()
    name = type(act).__name__
    with pytest.raises(RuntimeError, match=rf"^{name}\.backward called before forward: call forward\(x\) first"):
        act.backward(np.ones(3))


def test_backward_uses_the_cache_not_the_input_array(make_activation):
    x = random_input(0)
    grad_output = random_input(1)
    expected = gradient_at(make_activation, x, grad_output)

    act = make_activation()
    act.forward(x)
    # Mutate the caller's input in place with unrelated values.
    new_values = random_input(2)
    x[...] = new_values
    # Sanity: the gradient really is different at the new values (so the test
    # would fail if backward re-read the input array).
    assert not np.allclose(gradient_at(make_activation, new_values, grad_output), expected)

    np.testing.assert_array_equal(act.backward(grad_output), expected)


def test_backward_is_unaffected_by_modifying_the_output_in_place(make_activation):
    x = random_input(3)
    grad_output = random_input(4)
    expected = gradient_at(make_activation, x, grad_output)

    act = make_activation()
    y = act.forward(x)
    if act.caches_output:
        # The output is the cache: writing into it must fail at once, not corrupt backward.
        with pytest.raises(ValueError, match="read-only"):
            y[...] = 123.0
    else:
        y[...] = 123.0
    np.testing.assert_array_equal(act.backward(grad_output), expected)


@pytest.mark.parametrize("x", [random_input(5), np.array(-0.5), np.array(2.0)],
                         ids=["2-d", "0-d negative", "0-d positive"])
def test_cache_shares_no_memory_with_input_or_output(make_activation, x):
    act = make_activation()
    y = act.forward(x)
    assert not np.shares_memory(act.cache, x)
    if act.caches_output:
        assert act.cache is y and not y.flags.writeable
    else:
        assert not np.shares_memory(act.cache, y)
        assert y.flags.writeable


def test_only_relu_caches_its_output():
    # Which activations keep one array instead of two is a documented property:
    # a change here changes the memory a network keeps for backward.
    import activations
    caching = sorted(name for name in activations.NAMES
                     if activations.get(name).caches_output)
    assert caching == ["relu"]


def test_cache_is_read_only(make_activation):
    act = make_activation()
    act.forward(random_input(6))
    assert not act.cache.flags.writeable
    with pytest.raises(ValueError):
        act.cache[...] = 0.0


def test_backward_can_be_repeated_and_does_not_change_the_cache(make_activation):
    act = make_activation()
    act.forward(random_input(7))
    cache_before = act.cache.copy()
    grad_output = random_input(8)
    first = act.backward(grad_output)
    second = act.backward(grad_output)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(act.cache, cache_before)


def test_forward_and_backward_do_not_modify_their_arguments(make_activation):
    act = make_activation()
    x = random_input(9)
    grad_output = random_input(10)
    x_before, grad_before = x.copy(), grad_output.copy()
    act.forward(x)
    act.backward(grad_output)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(grad_output, grad_before)


def test_saved_cache_can_be_restored_later(make_activation):
    # The pattern of the graph adapter: one instance used twice, caches swapped.
    x1, x2 = random_input(11), random_input(12, shape=(2, 5))
    g1, g2 = random_input(13), random_input(14, shape=(2, 5))

    act = make_activation()
    act.forward(x1)
    saved1 = act.cache
    act.forward(x2)
    saved2 = act.cache

    act.cache = saved1
    np.testing.assert_array_equal(act.backward(g1), gradient_at(make_activation, x1, g1))
    act.cache = saved2
    np.testing.assert_array_equal(act.backward(g2), gradient_at(make_activation, x2, g2))
    act.cache = saved1
    np.testing.assert_array_equal(act.backward(g1), gradient_at(make_activation, x1, g1))


def test_cache_alone_describes_the_forward_pass(make_activation):
    # A second instance that never ran forward can backprop with the first one's cache.
    x, grad_output = random_input(15), random_input(16)
    first = make_activation()
    first.forward(x)
    second = make_activation()
    second.cache = first.cache
    np.testing.assert_array_equal(second.backward(grad_output), first.backward(grad_output))


def test_shape_mismatch_message():
    act = Sigmoid()
    act.forward(np.zeros((3, 5)))
    expected = "Sigmoid.backward: grad_output shape (3, 4) does not match the forward output shape (3, 5)"
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        act.backward(np.ones((3, 4)))


@pytest.mark.parametrize("grad_output", [["a", "b"], np.array([1j, 2.0]), [None, 1.0]])
def test_non_numeric_grad_output_is_named(make_activation, grad_output):
    # strings gave numpy's "could not convert string to float" from inside backward
    act = make_activation()
    act.forward(np.ones(2))
    name = type(act).__name__
    with pytest.raises(TypeError, match=rf"^{name}\.backward: grad_output has dtype .*; "
                                        rf"expected numbers"):
        act.backward(grad_output)


@pytest.mark.parametrize("grad_shape", [(3, 4), (5,), (1, 5), (3, 5, 1), (15,), ()])
def test_shape_mismatch_is_rejected_even_if_broadcastable(make_activation, grad_shape):
    act = make_activation()
    act.forward(np.ones((3, 5)))
    name = type(act).__name__
    with pytest.raises(ValueError) as error:
        act.backward(np.ones(grad_shape))
    message = str(error.value)
    assert message.startswith(f"{name}.backward:")
    assert str(grad_shape) in message and "(3, 5)" in message


def test_forward_replaces_the_cache(make_activation):
    act = make_activation()
    act.forward(np.ones((2, 2)))
    act.forward(np.ones(7))
    assert act.cache.shape == (7,)
    assert act.backward(np.ones(7)).shape == (7,)
    with pytest.raises(ValueError):
        act.backward(np.ones((2, 2)))


def test_read_only_input_and_gradient_are_accepted(make_activation):
    x, grad_output = random_input(17), random_input(18)
    expected = gradient_at(make_activation, x, grad_output)
    x.flags.writeable = False
    grad_output.flags.writeable = False
    act = make_activation()
    act.forward(x)
    np.testing.assert_array_equal(act.backward(grad_output), expected)
