"""Forward values, known derivatives, dtypes, configuration and reprs."""

import math

import numpy as np
import pytest

from activations import GELU, Activation, LeakyReLU, ReLU, SiLU, Sigmoid, Swish, Tanh


def gradient_at(act: Activation, x) -> np.ndarray:
    """f'(x): backward with an upstream gradient of ones."""
    y = act.forward(x)
    return act.backward(np.ones_like(y))


# ---------------------------------------------------------------------------------------
# Known values
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "x", "expected"),
    [
        (ReLU(), -1.0, 0.0),
        (ReLU(), 0.0, 0.0),
        (ReLU(), 2.5, 2.5),
        (LeakyReLU(), -2.0, -0.02),
        (LeakyReLU(alpha=0.2), -3.0, -0.6),
        (LeakyReLU(alpha=0.2), 3.0, 3.0),
        (Sigmoid(), 0.0, 0.5),
        (Sigmoid(), 1.0, 0.7310585786300049),
        (Sigmoid(), -1.0, 0.2689414213699951),
        (Tanh(), 0.0, 0.0),
        (Tanh(), 0.5, 0.46211715726000974),
        (GELU(), 0.0, 0.0),
        (GELU(), 1.0, 0.8413447460685429),
        (GELU(), -1.0, -0.15865525393145707),
        (GELU(approximate=True), 1.0, 0.8411919906082768),
        (SiLU(), 0.0, 0.0),
        (SiLU(), 1.0, 0.7310585786300049),
        (SiLU(), -1.0, -0.2689414213699951),
    ],
    ids=repr,
)
def test_known_values(act, x, expected):
    assert float(act.forward(x)) == pytest.approx(expected, rel=1e-15, abs=1e-300)


@pytest.mark.parametrize(
    ("act", "x", "expected"),
    [
        (ReLU(), -1.0, 0.0),
        (ReLU(), 0.0, 0.0),  # documented choice at the kink
        (ReLU(), 3.0, 1.0),
        (LeakyReLU(alpha=0.2), -1.0, 0.2),
        (LeakyReLU(alpha=0.2), 0.0, 0.2),  # documented choice at the kink
        (LeakyReLU(alpha=0.2), 1.0, 1.0),
        (Sigmoid(), 0.0, 0.25),
        (Tanh(), 0.0, 1.0),
        (Tanh(), 1.0, 1.0 - math.tanh(1.0) ** 2),
        (GELU(), 0.0, 0.5),
        (GELU(), 1.0, 0.8413447460685429 + math.exp(-0.5) / math.sqrt(2 * math.pi)),
        (GELU(approximate=True), 0.0, 0.5),
        (SiLU(), 0.0, 0.5),
        (SiLU(), 1.0, 0.7310585786300049 * (1 + (1 - 0.7310585786300049))),
    ],
    ids=repr,
)
def test_known_derivatives(act, x, expected):
    assert float(gradient_at(act, x)) == pytest.approx(expected, rel=1e-14)


# ---------------------------------------------------------------------------------------
# Agreement with straightforward scalar formulas from the math module
# ---------------------------------------------------------------------------------------


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v))


def _gelu_tanh_u(v: float) -> float:
    return math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)


SCALAR_REFERENCES = {
    # name: (activation, f, f')
    "ReLU": (ReLU(), lambda v: max(0.0, v), lambda v: 1.0 if v > 0 else 0.0),
    "LeakyReLU": (LeakyReLU(0.3), lambda v: v if v > 0 else 0.3 * v, lambda v: 1.0 if v > 0 else 0.3),
    "Sigmoid": (Sigmoid(), _sigmoid, lambda v: _sigmoid(v) * (1 - _sigmoid(v))),
    "Tanh": (Tanh(), math.tanh, lambda v: 1 - math.tanh(v) ** 2),
    "GELU": (
        GELU(),
        lambda v: 0.5 * v * (1 + math.erf(v / math.sqrt(2))),
        lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2))) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi),
    ),
    "GELU-tanh": (
        GELU(approximate=True),
        lambda v: 0.5 * v * (1 + math.tanh(_gelu_tanh_u(v))),
        lambda v: 0.5 * (1 + math.tanh(_gelu_tanh_u(v)))
        + 0.5 * v * (1 - math.tanh(_gelu_tanh_u(v)) ** 2) * math.sqrt(2 / math.pi) * (1 + 3 * 0.044715 * v * v),
    ),
    "SiLU": (SiLU(), lambda v: v * _sigmoid(v), lambda v: _sigmoid(v) * (1 + v * (1 - _sigmoid(v)))),
}


@pytest.mark.parametrize("name", list(SCALAR_REFERENCES))
def test_forward_and_derivative_match_scalar_reference(name):
    act, f, f_prime = SCALAR_REFERENCES[name]
    x = np.linspace(-12.0, 12.0, 2_401).reshape(49, 49)
    expected_y = np.vectorize(f)(x)
    expected_dy = np.vectorize(f_prime)(x)
    # The absolute floor covers the references' own rounding error: their
    # 1 + erf(...) and 1 + tanh(...) cancel for negative x (ours do not).
    np.testing.assert_allclose(act.forward(x), expected_y, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gradient_at(act, x), expected_dy, rtol=1e-13, atol=1e-14)


def test_gelu_is_accurate_in_the_left_tail():
    # 0.5 * x * (1 + erf(x / sqrt 2)) cancels to 0 here; x * Phi(x) via erfc does not.
    x = -10.0
    assert float(GELU().forward(x)) == pytest.approx(x * 0.5 * math.erfc(-x / math.sqrt(2)), rel=1e-12)
    # The tanh form equals x * sigmoid(2u), which is also evaluated without cancellation.
    expected = x / (1 + math.exp(-2 * _gelu_tanh_u(x)))
    assert expected != 0.0
    assert float(GELU(approximate=True).forward(x)) == pytest.approx(expected, rel=1e-12)


def test_sigmoid_is_accurate_for_very_negative_inputs():
    assert float(Sigmoid().forward(-700.0)) == pytest.approx(math.exp(-700.0), rel=1e-13)
    assert float(SiLU().forward(-700.0)) == pytest.approx(-700.0 * math.exp(-700.0), rel=1e-13)


@pytest.mark.parametrize("dtype,x", [(np.float16, -12.0), (np.float32, -89.0),
                                     (np.float32, -90.0), (np.float64, -705.0)])
def test_silu_tail_is_not_flushed_to_zero(dtype, x):
    # x·σ(x) and f'(x) are normal numbers of the dtype here, although e^(-x) would overflow
    # in it (float16 beyond -11, float32 beyond -88): they must come out close to the
    # exact values, not as 0.
    s = math.exp(x) / (1 + math.exp(x))
    expected_y, expected_d = x * s, s * (1 + x * (1 - s))
    act = SiLU()
    y = act.forward(np.array([x], dtype))
    d = act.backward(np.ones(1, dtype))
    assert y.dtype == d.dtype == dtype
    rtol = {np.float16: 2e-2, np.float32: 1e-5, np.float64: 1e-12}[dtype]
    assert y[0] != 0 and float(y[0]) == pytest.approx(expected_y, rel=rtol)
    assert d[0] != 0 and float(d[0]) == pytest.approx(expected_d, rel=rtol)


def test_gelu_exact_and_tanh_approximation_are_close_but_different():
    x = np.linspace(-10.0, 10.0, 20_001)
    difference = np.abs(GELU().forward(x) - GELU(approximate=True).forward(x))
    assert difference.max() < 1e-3
    assert difference.max() > 1e-4
    assert not np.array_equal(GELU().forward(x), GELU(approximate=True).forward(x))


@pytest.mark.parametrize(
    ("act", "at_minus_1000", "at_plus_1000", "slope_minus", "slope_plus"),
    [
        (ReLU(), 0.0, 1000.0, 0.0, 1.0),
        (LeakyReLU(alpha=0.1), -100.0, 1000.0, 0.1, 1.0),
        (Sigmoid(), 0.0, 1.0, 0.0, 0.0),
        (Tanh(), -1.0, 1.0, 0.0, 0.0),
        (GELU(), 0.0, 1000.0, 0.0, 1.0),
        (GELU(approximate=True), 0.0, 1000.0, 0.0, 1.0),
        (SiLU(), 0.0, 1000.0, 0.0, 1.0),
    ],
    ids=repr,
)
def test_saturation_at_plus_minus_1000(act, at_minus_1000, at_plus_1000, slope_minus, slope_plus):
    x = np.array([-1000.0, 1000.0])
    np.testing.assert_allclose(act.forward(x), [at_minus_1000, at_plus_1000], rtol=1e-15, atol=0)
    np.testing.assert_allclose(act.backward(np.ones(2)), [slope_minus, slope_plus], rtol=1e-15, atol=0)


# ---------------------------------------------------------------------------------------
# dtypes and shapes
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtype_is_kept_by_output_and_gradient(make_activation, dtype):
    act = make_activation()
    x = np.linspace(-3, 3, 24).reshape(2, 3, 4).astype(dtype)
    y = act.forward(x)
    assert y.dtype == dtype
    assert act.cache.dtype == dtype
    assert act.backward(np.ones_like(y)).dtype == dtype
    # an upstream gradient of another dtype is converted: dL/dx has x's dtype
    assert act.backward(np.ones(y.shape, dtype=np.float64)).dtype == dtype


def test_float32_results_agree_with_float64(make_activation):
    x64 = np.linspace(-6, 6, 121)
    x32 = x64.astype(np.float32)
    act = make_activation()
    y32, dy32 = act.forward(x32), act.backward(np.ones(121, dtype=np.float32))
    y64, dy64 = act.forward(x32.astype(np.float64)), act.backward(np.ones(121))
    np.testing.assert_allclose(y32, y64, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(dy32, dy64, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("x", [[-2, 0, 3], np.array([[1, -1]], dtype=np.int32), np.array([True, False])])
def test_integer_and_boolean_input_become_float64(make_activation, x):
    act = make_activation()
    y = act.forward(x)
    assert y.dtype == np.float64
    assert y.shape == np.shape(x)
    np.testing.assert_array_equal(y, act.forward(np.asarray(x, dtype=np.float64)))
    assert act.backward(np.ones(y.shape, dtype=np.int64)).dtype == np.float64


def test_complex_input_is_rejected(make_activation):
    act = make_activation()
    with pytest.raises(TypeError, match=rf"{type(act).__name__}\.forward expects real numbers"):
        act.forward(np.array([1 + 1j]))


@pytest.mark.parametrize("shape", [(), (0,), (5,), (2, 0, 3), (2, 3, 4)])
def test_shapes_are_preserved(make_activation, shape):
    act = make_activation()
    x = np.full(shape, 0.5)
    y = act.forward(x)
    assert isinstance(y, np.ndarray) and y.shape == shape
    dx = act.backward(np.ones(shape))
    assert isinstance(dx, np.ndarray) and dx.shape == shape


def test_call_is_forward(make_activation):
    act = make_activation()
    x = np.linspace(-2, 2, 9)
    np.testing.assert_array_equal(act(x), act.forward(x))
    assert act.cache is not None


# ---------------------------------------------------------------------------------------
# names, configuration, reprs
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("act", "name", "config", "text"),
    [
        (ReLU(), "relu", {}, "ReLU()"),
        (LeakyReLU(), "leaky_relu", {"alpha": 0.01}, "LeakyReLU(alpha=0.01)"),
        (LeakyReLU(alpha=0.25), "leaky_relu", {"alpha": 0.25}, "LeakyReLU(alpha=0.25)"),
        (Sigmoid(), "sigmoid", {}, "Sigmoid()"),
        (Tanh(), "tanh", {}, "Tanh()"),
        (GELU(), "gelu", {"approximate": False}, "GELU(approximate=False)"),
        (GELU(approximate=True), "gelu", {"approximate": True}, "GELU(approximate=True)"),
        (SiLU(), "silu", {}, "SiLU()"),
    ],
    ids=repr,
)
def test_name_config_and_repr(act, name, config, text):
    assert act.name == name
    assert type(act).name == name
    assert act.config() == config
    assert repr(act) == text
    assert act.cache is None


def test_config_returns_a_fresh_dict():
    act = LeakyReLU(alpha=0.3)
    act.config()["alpha"] = 5.0
    assert act.alpha == 0.3
    assert act.config() == {"alpha": 0.3}


def test_configuration_is_read_only():
    with pytest.raises(AttributeError):
        LeakyReLU().alpha = 0.5
    with pytest.raises(AttributeError):
        GELU().approximate = True


def test_swish_is_silu():
    assert Swish is SiLU
    act = Swish()
    assert isinstance(act, SiLU)
    assert act.name == "silu"
    assert repr(act) == "SiLU()"


def test_activation_base_class_is_abstract():
    with pytest.raises(TypeError):
        Activation()
    for cls in (ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU):
        assert issubclass(cls, Activation)


def test_leaky_relu_alpha_accepts_ints_and_numpy_scalars():
    assert LeakyReLU(alpha=0).config() == {"alpha": 0.0}
    assert LeakyReLU(alpha=np.float64(0.2)).alpha == 0.2
    assert type(LeakyReLU(alpha=np.float32(0.5)).alpha) is float
    np.testing.assert_array_equal(LeakyReLU(alpha=-0.5).forward([-2.0, 2.0]), [1.0, 2.0])


@pytest.mark.parametrize("alpha", [math.nan, math.inf, -math.inf, "0.1", None, True, [0.1], 1 + 0j])
def test_leaky_relu_rejects_invalid_alpha(alpha):
    with pytest.raises(ValueError, match="alpha") as error:
        LeakyReLU(alpha=alpha)
    assert repr(alpha) in str(error.value)


@pytest.mark.parametrize("approximate", ["tanh", 1, None])
def test_gelu_rejects_non_boolean_approximate(approximate):
    with pytest.raises(ValueError, match="approximate") as error:
        GELU(approximate=approximate)
    assert repr(approximate) in str(error.value)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_leaky_relu_multiplies_only_negative_inputs(dtype):
    # alpha · x on every element: 0 · -inf was NaN for alpha = 0 (ReLU gives 0), and an
    # alpha beyond float16's range (inf) times 0 was NaN at x = 0
    x = np.array([-np.inf, -1.0, -0.0, 0.0, 2.0, np.inf, np.nan], dtype=dtype)
    out = LeakyReLU(0.0).forward(x)
    np.testing.assert_array_equal(out, np.array([0, 0, 0, 0, 2, np.inf, np.nan], dtype=dtype))
    assert out.dtype == dtype
    out = LeakyReLU(0.5).forward(x)
    np.testing.assert_array_equal(out, np.array([-np.inf, -0.5, 0, 0, 2, np.inf, np.nan],
                                                dtype=dtype))
    if dtype == np.float16:
        with np.errstate(over="ignore"):     # (alpha itself overflows to inf in float16)
            big = LeakyReLU(1e5).forward(np.array([0.0, -1.0, 3.0], dtype=dtype))
        np.testing.assert_array_equal(big, np.array([0.0, -np.inf, 3.0], dtype=dtype))
