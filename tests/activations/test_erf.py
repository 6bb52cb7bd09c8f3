"""Accuracy and robustness of the NumPy erf/erfc used by the exact GELU."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from activations import erf, erfc

SPECIAL_POINTS = [0.0, 1e-8, 0.5, 1.0, 2.0, 5.0, 6.0, 30.0, 1000.0, math.inf]
SPECIAL_POINTS = sorted({sign * v for v in SPECIAL_POINTS for sign in (1.0, -1.0)})


def dense_grid() -> np.ndarray:
    """Fine grid where erf varies, coarser grid out to the tails, and special points."""
    return np.concatenate(
        [
            np.linspace(-7.0, 7.0, 140_001),
            np.linspace(-40.0, 40.0, 8_001),
            np.geomspace(1e-300, 1e300, 601),
            -np.geomspace(1e-300, 1e300, 601),
            # both sides of the switch between series and continued fraction
            [np.nextafter(2.0, 0.0), np.nextafter(2.0, 3.0), -np.nextafter(2.0, 0.0)],
            SPECIAL_POINTS,
        ]
    )


def reference(function, x: np.ndarray) -> np.ndarray:
    return np.array([function(float(v)) for v in x])


def test_erf_matches_math_erf_to_1e_14_on_a_dense_grid():
    x = dense_grid()
    error = np.abs(erf(x) - reference(math.erf, x))
    assert error.max() <= 1e-14


def test_erfc_matches_math_erfc_to_1e_14_on_a_dense_grid():
    x = dense_grid()
    error = np.abs(erfc(x) - reference(math.erfc, x))
    assert error.max() <= 1e-14


def test_erfc_keeps_relative_accuracy_in_the_right_tail():
    # 1 - erf(x) would be exactly 0 beyond x ~ 6; erfc must not be.
    x = np.linspace(-5.0, 26.0, 31_001)
    expected = reference(math.erfc, x)
    relative_error = np.abs(erfc(x) - expected) / expected
    assert relative_error.max() <= 1e-12
    assert erfc(np.array(10.0)) == pytest.approx(2.088487583762545e-45, rel=1e-13)


@pytest.mark.parametrize("x", SPECIAL_POINTS)
def test_special_points(x):
    assert float(erf(x)) == pytest.approx(math.erf(x), abs=1e-15)
    assert float(erfc(x)) == pytest.approx(math.erfc(x), abs=1e-15)


def test_limits_and_signed_zero():
    assert erf(np.inf) == 1.0
    assert erf(-np.inf) == -1.0
    assert erfc(np.inf) == 0.0
    assert erfc(-np.inf) == 2.0
    assert erf(-0.0) == 0.0 and np.signbit(erf(-0.0))
    assert not np.signbit(erf(0.0))
    assert erfc(0.0) == 1.0


def test_erf_is_exactly_odd():
    x = np.linspace(0.0, 8.0, 8_001)
    np.testing.assert_array_equal(erf(-x), -erf(x))


def test_erf_is_monotonic_across_the_method_switch():
    x = np.linspace(1.9, 2.1, 20_001)
    assert np.all(np.diff(erf(x)) >= 0)
    assert np.all(np.diff(erfc(x)) <= 0)


def test_erf_plus_erfc_is_one():
    x = np.linspace(-6.0, 6.0, 1_201)
    np.testing.assert_allclose(erf(x) + erfc(x), 1.0, rtol=0, atol=2e-16)


def test_no_floating_point_warnings_for_huge_and_infinite_inputs():
    x = np.array([-np.inf, -1e308, -1e300, -1000.0, -30.0, 30.0, 1000.0, 1e300, 1e308, np.inf, 5e-324])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        y, yc = erf(x), erfc(x)
    np.testing.assert_array_equal(y, [-1, -1, -1, -1, -1, 1, 1, 1, 1, 1, erf(5e-324)])
    np.testing.assert_array_equal(yc[:4], [2, 2, 2, 2])
    np.testing.assert_array_equal(yc[5:10], [0, 0, 0, 0, 0])


def test_nan_propagates():
    assert np.isnan(erf(np.nan))
    assert np.isnan(erfc(np.nan))
    result = erf(np.array([0.5, np.nan, -0.5]))
    assert np.isnan(result[1]) and np.isfinite(result[[0, 2]]).all()


@pytest.mark.parametrize("function", [erf, erfc], ids=["erf", "erfc"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_float_dtype_is_preserved(function, dtype):
    x = np.linspace(-4, 4, 81).astype(dtype)
    result = function(x)
    assert result.dtype == dtype
    # the computation is done in float64 and rounded once to the input's dtype
    expected = reference(math.erf if function is erf else math.erfc, x)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(result, expected, rtol=eps, atol=max(eps, 1e-14))


def test_integer_input_gives_float64_and_shapes_are_preserved():
    assert erf([0, 1, -2]).dtype == np.float64
    assert erf(np.zeros((2, 3, 4), dtype=np.int32)).shape == (2, 3, 4)
    assert erf(0.5).shape == ()
    assert erfc(np.empty((0, 3))).shape == (0, 3)


def test_complex_input_is_rejected():
    with pytest.raises(TypeError, match="real numbers"):
        erf(np.array([1 + 2j]))


@given(st.floats(allow_nan=False, allow_infinity=True))
def test_erf_and_erfc_match_math_for_any_float(x):
    with np.errstate(all="raise"):
        assert abs(float(erf(x)) - math.erf(x)) <= 1e-14
        assert abs(float(erfc(x)) - math.erfc(x)) <= 1e-14
