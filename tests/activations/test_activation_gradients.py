"""backward() against central finite differences, and robustness for extreme inputs."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from activations import Activation, LeakyReLU, ReLU, Sigmoid

EPS = 1e-6


def has_kink_at_zero(act: Activation) -> bool:
    """ReLU and LeakyReLU are not differentiable at 0: finite differences must avoid it."""
    return isinstance(act, (ReLU, LeakyReLU))


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    return np.abs(analytic - numeric) / (np.abs(analytic) + np.abs(numeric) + 1e-8)


def numerical_input_gradient(act: Activation, x: np.ndarray, grad_output: np.ndarray) -> np.ndarray:
    """dL/dx for L(x) = sum(grad_output * f(x)), one central difference per element.

    Perturbing one element at a time (rather than all at once) also checks that
    backward treats f as elementwise: every other output must stay unchanged.
    """
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += EPS
        minus[index] -= EPS
        change = act.forward(plus) - act.forward(minus)
        grad[index] = np.sum(grad_output * change) / (2 * EPS)
    return grad


def test_backward_matches_finite_differences_on_random_inputs(make_activation):
    rng = np.random.default_rng(12345)
    act = make_activation()
    # |x| in [0.05, 5]: away from ReLU's kink, covering both signs and the curved region
    x = rng.uniform(0.05, 5.0, size=(4, 5)) * rng.choice([-1.0, 1.0], size=(4, 5))
    grad_output = rng.normal(size=(4, 5))

    act.forward(x)
    analytic = act.backward(grad_output)
    numeric = numerical_input_gradient(make_activation(), x, grad_output)

    assert relative_error(analytic, numeric).max() < 1e-6


def test_finite_difference_check_detects_a_wrong_gradient(make_activation):
    # Guard against a vacuous check: a gradient that is off by 1% must fail it.
    rng = np.random.default_rng(7)
    x = rng.uniform(0.5, 3.0, size=(3, 3)) * rng.choice([-1.0, 1.0], size=(3, 3))
    grad_output = np.ones((3, 3))
    act = make_activation()
    act.forward(x)
    wrong = 1.01 * act.backward(grad_output)
    numeric = numerical_input_gradient(make_activation(), x, grad_output)
    assert relative_error(wrong, numeric).max() > 1e-6


def _elements(kink: bool) -> st.SearchStrategy[float]:
    if kink:
        return st.floats(1e-3, 10.0) | st.floats(-10.0, -1e-3)
    return st.floats(-10.0, 10.0)


@st.composite
def input_and_upstream_gradient(draw, kink: bool):
    shape = draw(array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    x = draw(arrays(np.float64, shape, elements=_elements(kink)))
    grad_output = draw(arrays(np.float64, shape, elements=st.floats(-2.0, 2.0)))
    return x, grad_output


@settings(deadline=None)
@given(data=st.data())
def test_backward_matches_finite_differences_for_any_shape(make_activation, data):
    act = make_activation()
    x, grad_output = data.draw(input_and_upstream_gradient(has_kink_at_zero(act)))

    act.forward(x)
    analytic = act.backward(grad_output)
    # f is elementwise, so all elements can be perturbed at once
    numeric = grad_output * (make_activation().forward(x + EPS) - make_activation().forward(x - EPS)) / (2 * EPS)

    assert analytic.shape == x.shape
    # relative criterion, with an absolute floor for gradients near 0 (e.g. at
    # GELU's and SiLU's minima) where finite differences only resolve ~1e-11
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------------------
# Extreme inputs
# ---------------------------------------------------------------------------------------

LARGE = np.array([[-1000.0, -999.0, -700.0, -40.0], [40.0, 700.0, 999.0, 1000.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_inputs_give_finite_results_without_warnings(make_activation, dtype):
    act = make_activation()
    x = LARGE.astype(dtype)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = act.forward(x)
        dx = act.backward(np.ones_like(y))
    assert np.isfinite(y).all()
    assert np.isfinite(dx).all()


def test_underflow_is_not_reported_even_if_the_caller_asks_for_it():
    # exp(-1000) == 0 is the right answer, not an error worth raising.
    act = Sigmoid()
    with np.errstate(under="raise"):
        y = act.forward(np.array([-1000.0]))
        dx = act.backward(np.array([1e-300]))
    assert y[0] == 0.0 and dx[0] == 0.0


@settings(deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_classes_without_the_underflow_guard_cannot_underflow(make_activation, dtype, data):
    # can_underflow = False skips np.errstate(under="ignore"): then no input and no upstream
    # gradient, subnormals included, may raise when the caller asks numpy to raise on
    # everything.
    act = make_activation()
    if act.can_underflow:
        assert not isinstance(act, ReLU)      # ReLU is the class that promises it
        return
    width = np.finfo(dtype).bits
    tiny = float(np.finfo(dtype).smallest_subnormal)
    elements = st.one_of(st.floats(allow_nan=False, allow_infinity=False, width=width),
                         st.sampled_from([tiny, -tiny, 2 * tiny, -3 * tiny]))
    shape = data.draw(array_shapes(max_dims=2, max_side=5))
    x = data.draw(arrays(dtype, shape, elements=elements))
    g = data.draw(arrays(dtype, shape, elements=elements))
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = act.forward(x)
        dx = act.backward(g)
    assert y.dtype == dx.dtype == dtype


@settings(deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_non_nan_input_gives_no_nan_and_no_warning(make_activation, dtype, data):
    # Includes +-inf and the largest finite floats of each dtype.
    width = np.finfo(dtype).bits
    elements = st.floats(allow_nan=False, allow_infinity=True, width=width)
    x = data.draw(arrays(dtype, array_shapes(max_dims=2, max_side=5), elements=elements))
    grad_output = np.ones_like(x)
    act = make_activation()
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y = act.forward(x)
        dx = act.backward(grad_output)
    assert not np.isnan(y).any()
    assert np.isfinite(dx).all()
    # f(+inf) is +inf or 1 for every activation here, never NaN
    assert np.all(y[x == np.inf] > 0)
