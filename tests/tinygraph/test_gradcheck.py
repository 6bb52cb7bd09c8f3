"""gradcheck: passes on correct code, fails (with the right input index and element) on a
wrong backward, computes in float64, has a directions mode, and warns near kinks."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tinygraph as tg
from _tgutil import numerical_grad


class WrongAtOneElement(tg.Function):
    """y = a * b, but backward corrupts d/db at element (1, 2)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        gb = g * a
        gb = gb + np.where(np.arange(gb.size).reshape(gb.shape) == 1 * gb.shape[1] + 2, 0.5, 0.0)
        return g * b, gb


class WrongScale(tg.Function):
    """y = x², backward off by a factor 1.5."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * g


def test_passes_on_correct_functions_and_result_is_truthy():
    r = np.random.default_rng(0)
    a, b = r.standard_normal((2, 3)), r.uniform(0.5, 2, (3,))
    res = tg.gradcheck(lambda x, y: tg.tanh(x) / y + x * y, [a, b])
    assert res
    assert bool(res) is True
    assert isinstance(res, tg.GradcheckResult)
    assert res.mismatches == []
    assert res.checked == a.size + b.size
    assert "PASSED" in str(res)


def test_fails_for_a_wrong_backward_with_input_index_and_element():
    r = np.random.default_rng(1)
    a, b = r.standard_normal((3, 4)), r.standard_normal((3, 4))
    res = tg.gradcheck(WrongAtOneElement.apply, [a, b])
    assert not res
    assert bool(res) is False
    assert len(res.mismatches) == 1
    m = res.mismatches[0]
    assert m.input_index == 1
    assert tuple(m.element) == (1, 2)
    assert abs(m.analytic - m.numerical) > 0.1
    assert m.rel_error > 1e-3
    # the numerical value is the true derivative of sum(out * r) wrt b[1, 2]: r[1,2] * a[1,2]
    text = str(res)
    assert "FAILED" in text
    assert "input 1" in text and "(1, 2)" in text


def test_fails_for_every_element_of_a_wrong_scale_backward():
    x0 = np.array([[0.5, -1.0], [2.0, 1.5]])
    res = tg.gradcheck(WrongScale.apply, [x0])
    assert not res
    assert {tuple(m.element) for m in res.mismatches} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert all(m.input_index == 0 for m in res.mismatches)
    for m in res.mismatches:
        assert m.analytic == pytest.approx(1.5 * m.numerical, rel=1e-5)


class ScaledSquare(tg.Function):
    """y = x² with a backward of ``factor`` times the true one: a gradient too small (factor
    below 1, down to 0) or off by a hair (1 + 1e-4)."""
    factor = 1.0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @classmethod
    def backward(cls, ctx, g):
        (x,) = ctx.saved_tensors
        return cls.factor * 2 * x * g


@pytest.mark.parametrize("factor", [0.5, 0.0, 1 + 1e-4, 1 - 1e-4])
@pytest.mark.parametrize("x0", [np.array(0.7), np.array([0.5, 1.0, 2.0])])
def test_fails_for_a_backward_too_small_or_off_by_a_hair(factor, x0):
    # A relative error without its absolute value passed every gradient below the true one
    # (an all-zero backward included), and no test sat near the tolerance (5e-5 against the
    # default 1e-5: a 10x looser comparison passed it).
    wrong = type("Scaled", (ScaledSquare,), {"factor": factor})
    res = tg.gradcheck(lambda x: wrong.apply(x).sum(), [x0])
    assert not res and len(res.mismatches) == x0.size
    assert all(m.rel_error >= 4e-5 for m in res.mismatches)
    right = type("Scaled", (ScaledSquare,), {"factor": 1.0})
    assert tg.gradcheck(lambda x: right.apply(x).sum(), [x0])


def test_an_input_the_output_does_not_depend_on_passes_with_zero_gradient():
    a, b = np.array([0.5, -1.0]), np.array([2.0, 3.0])
    res = tg.gradcheck(lambda x, y: (x * x).sum(), [a, b])
    assert res and res.checked == 4 and res.max_rel_error < 1e-8


def test_scalar_output_and_scalar_input():
    res = tg.gradcheck(lambda t: tg.exp(t) * 2.0, [np.array(0.3)])
    assert res and res.checked == 1
    res = tg.gradcheck(WrongScale.apply, [np.array(0.7)])
    assert not res and res.mismatches[0].input_index == 0


def test_computes_in_float64_whatever_the_input_dtype():
    seen = []

    def fn(t):
        seen.append(t.dtype)
        return tg.exp(t * 3.0).sum()

    x32 = np.array([0.1, 0.2, 0.3], dtype=np.float32)
    res = tg.gradcheck(fn, [x32], eps=1e-6, tol=1e-6)
    assert res, str(res)
    assert set(seen) == {np.dtype(np.float64)}
    res = tg.gradcheck(fn, [tg.Tensor(x32, requires_grad=True)], eps=1e-6, tol=1e-6)
    assert res, str(res)
    assert x32.dtype == np.float32           # inputs are not converted in place


def test_does_not_modify_inputs():
    a = np.array([0.5, 1.5])
    t = tg.Tensor(a.copy(), requires_grad=True)
    tg.gradcheck(lambda x: x * x, [a])
    tg.gradcheck(lambda x: x * x, [t])
    np.testing.assert_array_equal(a, [0.5, 1.5])
    np.testing.assert_array_equal(t.data, [0.5, 1.5])
    assert t.grad is None


def test_directions_mode_for_big_inputs():
    r = np.random.default_rng(2)
    big = r.standard_normal((60, 50))          # 3000 > default max_elements
    w = r.standard_normal((50,))
    res = tg.gradcheck(lambda x, y: tg.tanh(x @ y), [big, w])
    assert res, str(res)
    assert res.mode == "directions"
    assert res.checked < big.size
    res = tg.gradcheck(lambda x: WrongScale.apply(x), [big], mode="directions")
    assert not res and res.mode == "directions"
    res = tg.gradcheck(lambda x: tg.exp(x), [np.ones(3)], mode="directions")
    assert res and res.mode == "directions"


def test_agrees_with_an_independent_finite_difference():
    r = np.random.default_rng(3)
    a = r.standard_normal((2, 3))

    def f_np(x):
        return float(np.sum(np.tanh(x) ** 2 * np.arange(6).reshape(2, 3)))

    x = tg.Tensor(a.copy(), requires_grad=True)
    (tg.tanh(x) ** 2 * np.arange(6.0).reshape(2, 3)).sum().backward()
    np.testing.assert_allclose(x.grad, numerical_grad(f_np, [a])[0], rtol=1e-6, atol=1e-9)
    assert tg.gradcheck(lambda t: (tg.tanh(t) ** 2 * np.arange(6.0).reshape(2, 3)).sum(), [a])


@pytest.mark.parametrize("fn,x", [
    (tg.relu, np.array([0.0, 1.0, -2.0])),
    (tg.abs, np.array([1.0, 0.0])),
    (lambda t: tg.max(t), np.array([1.0, 3.0, 3.0])),
    (lambda t: tg.maximum(t, 0.5), np.array([0.5, 2.0])),
])
def test_warns_near_a_kink(fn, x):
    with pytest.warns(RuntimeWarning, match="kink"):
        res = tg.gradcheck(fn, [x])
    assert res.kinks


def test_no_kink_warning_for_smooth_functions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = tg.gradcheck(lambda t: tg.sigmoid(t) * tg.relu(t), [np.array([0.7, -0.4, 1.3])])
        # a strongly curved but smooth function: the one-sided slopes at step eps differ by
        # curvature x eps (0.02 here), which shrinks with the step, unlike at a kink
        curved = tg.gradcheck(lambda t: (1000 * t * t).sum(), [np.array([0.0, 0.3])])
    assert res and not res.kinks
    assert curved and not curved.kinks


def test_warns_when_fn_computes_in_float32_and_names_no_kinks():
    """A float32 parameter closed over by fn makes the output float32: the finite differences
    are rounding noise, and gradcheck says so instead of blaming kinks."""
    W = np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32)
    x = np.random.default_rng(1).standard_normal((4, 3))
    with pytest.warns(RuntimeWarning, match=r"fn returned float32 from float64 inputs") as got:
        result = tg.gradcheck(lambda t: tg.tanh(tg.cast(t, np.float32) @ W), [x])
    assert not any("kink" in str(w.message) for w in got)
    assert result.kinks == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the float64 version: checked without a word
        assert tg.gradcheck(lambda t: tg.tanh(t @ W.astype(np.float64)), [x]).ok


def test_bad_arguments():
    with pytest.raises(ValueError):
        tg.gradcheck(tg.exp, [np.ones(2)], mode="nope")
    with pytest.raises(ValueError):
        tg.gradcheck(tg.exp, [np.ones(2)], eps=0.0)
    with pytest.raises(TypeError):
        tg.gradcheck(lambda t: 3.0, [np.ones(2)])


def test_nan_gradient_never_passes():
    class NanBackward(tg.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * np.nan

    for x in (np.array([1.0, 2.0]), np.ones(3000)):        # element mode and direction mode
        result = tg.gradcheck(lambda t: NanBackward.apply(t).sum(), [x])
        assert not result.ok
        assert result.max_rel_error == np.inf


def test_central_difference_error_tells_rounding_and_curvature_from_a_clean_difference():
    assert "central_difference_error" in tg.__all__
    x = np.array([0.5, 2.0])
    # a quadratic: the central difference is exact up to the loss's rounding
    quiet = tg.central_difference_error(lambda: float((x ** 2).sum()), x, 1, 1e-5)
    assert 0 < quiet < 1e-9
    # a loss near 1e16: rounding alone is ~1e16 · 1.8e-15 / 2e-5 ~ 1e6
    loud = tg.central_difference_error(lambda: float(1e16 + (x ** 2).sum()), x, 1, 1e-5)
    assert loud > 1e5
    # a kink crossed within the step: the halved step sees another slope
    kink = tg.central_difference_error(lambda: float(np.abs(x - 2.0 - 3e-6).sum()), x, 1, 1e-5)
    assert kink > 0.1
    np.testing.assert_array_equal(x, [0.5, 2.0])                # put back exactly


def test_central_difference_is_public_probes_one_element_and_restores_it():
    W = np.array([[1.0, 2.0], [3.0, 4.0]])
    flat = W.reshape(-1)
    plus, minus, slope = tg.central_difference(lambda: float((W ** 3).sum()), flat, 2, 1e-4)
    assert "central_difference" in tg.__all__
    assert plus == pytest.approx(3.0001 ** 3 + 1 + 8 + 64) and minus == pytest.approx(2.9999 ** 3 + 73)
    assert slope == pytest.approx(3 * 3.0 ** 2, rel=1e-7)      # d(w^3)/dw at w = 3
    np.testing.assert_array_equal(W, [[1.0, 2.0], [3.0, 4.0]])  # put back exactly


def test_central_difference_takes_the_array_itself_of_any_layout():
    # the old recipe, W.reshape(-1), is a copy for a transposed W: every difference was 0
    W = np.arange(6.0).reshape(2, 3).T                          # not C-contiguous
    for j in range(W.size):
        slope = tg.central_difference(lambda: float((W ** 2).sum()), W, j, 1e-6)[2]
        assert slope == pytest.approx(2 * W.reshape(-1)[j], abs=1e-6)
    np.testing.assert_array_equal(W, np.arange(6.0).reshape(2, 3).T)

    def failing():
        raise RuntimeError("loss failed")
    with pytest.raises(RuntimeError, match="loss failed"):
        tg.central_difference(failing, W, 4, 0.5)
    np.testing.assert_array_equal(W, np.arange(6.0).reshape(2, 3).T)   # restored anyway
    with pytest.raises(TypeError, match=r"^central_difference: array must be the numpy array "
                                        r"that loss\(\) reads \(for a Tensor, its \.data\)"):
        tg.central_difference(lambda: 0.0, tg.Tensor(W), 0, 1e-6)


def test_central_difference_divides_by_the_step_the_array_really_took():
    # It divided by 2 eps: a float32 element of 1 took a step of 2.0027e-5 (slope 2.0027 for
    # a true 2), and gradcheck FAILED the exact gradient of a linear function at 1e7 (stored
    # to ~2e-9), in both modes, with a note blaming the rounding of a loss of size 0.3.
    W = np.array([1000.0, 1.0], dtype=np.float32)
    loss = lambda: float(2.0 * W.astype(np.float64).sum())      # noqa: E731
    assert tg.central_difference(loss, W, 1, 1e-5)[2] == 2.0
    x0 = np.array([1e7 + 0.123, 3e7 + 0.77])
    for mode in ("elements", "directions"):
        result = tg.gradcheck(lambda x: ((x - np.round(x0)) * 3).sum(), [x0], mode=mode)
        assert result.ok and result.max_rel_error < 1e-12, result
    # a step that rounds away (1000 +- 1e-5 in float32) gave a silent 0
    with pytest.raises(ValueError, match=r"^central_difference: a step of ±1e-05 does not "
                                         r"move element 0 \(1000\.0\) of this float32 array "
                                         r"both ways \(neighbouring values there are 6\.1e-05 "
                                         r"apart\)"):
        tg.central_difference(loss, W, 0, 1e-5)
    np.testing.assert_array_equal(W, [1000.0, 1.0])
    # an integer array truncated x + eps: a one-sided difference of step 1, silently
    with pytest.raises(TypeError, match=r"^central_difference: array has dtype int64, which "
                                        r"cannot hold x ± eps"):
        tg.central_difference(lambda: 0.0, np.arange(3, dtype=np.int64), 0, 1e-5)
    # the result also holds those steps, and the one-sided slopes over them
    x = np.array([2.0 ** 34])
    difference = tg.central_difference(lambda: float(((x - 2.0 ** 34) * 3.0).sum()), x, 0, 1e-5)
    assert isinstance(difference, tg.CentralDifference) and len(difference) == 3
    assert (difference.step_up, difference.step_down) == (3 * 2.0 ** -18, 5 * 2.0 ** -19)
    assert difference.slopes(0.0) == (3.0, 3.0) and difference[2] == 3.0
    # the step of a long double element is measured in long double, not rounded to float64
    L = np.array([1.0], dtype=np.longdouble)
    slope = tg.central_difference(lambda: float(3 * (L - 1).sum()), L, 0, 1e-10)[2]
    assert abs(slope - 3) < 1e-9
    for eps in (-1e-5, 0.0, float("nan")):       # (a negative eps gave a "step ±-1e-05")
        with pytest.raises(ValueError, match=r"^central_difference: eps must be a positive "
                                             r"finite number"):
            tg.central_difference(loss, W, 1, eps)
    with pytest.raises(ValueError, match=r"^central_difference: element 1 is nan; a finite "
                                         r"difference needs a finite value there"):
        tg.central_difference(lambda: 0.0, np.array([1.0, np.nan]), 1, 1e-5)


class _Frac3(tg.Function):
    """y = 3 (x - round(x)), whose backward says ``beyond`` (not 3) for |x| > 1e6: wrong."""
    beyond = 5.0

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return 3 * (x - np.round(x))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * np.where(np.abs(x) > 1e6, _Frac3.beyond, 3.0)


@pytest.mark.parametrize("beyond", [5.0, 0.0])
def test_gradcheck_refuses_a_direction_that_leaves_an_element_that_matters_unmoved(beyond):
    # The 1e12 element's step rounded away on both sides, so its wrong gradient dropped out
    # of both the analytic and the numerical side: PASSED. A gradient wrongly 0 there loses
    # nothing on the analytic side, but its component of the direction is not small, so
    # the element matters all the same.
    _Frac3.beyond = beyond
    with pytest.raises(ValueError, match=r"^gradcheck: in random direction 0 the step eps·v "
                                         r"does not move inputs\[0\] element \(0,\) = 1e\+12"):
        tg.gradcheck(lambda x: _Frac3.apply(x).sum(), [np.array([1e12 + 0.25, 0.25, 0.3])],
                     mode="directions")


def test_gradcheck_refuses_steps_that_cannot_move_an_input_and_nan_inputs():
    _Frac3.beyond = 5.0
    fn = lambda x: _Frac3.apply(x).sum()            # noqa: E731
    # elements: the check's own steps of eps/2 and eps/4 stopped it with a message about a
    # step the user never asked for
    with pytest.raises(ValueError, match=r"^gradcheck: eps=1e-05 is too small for inputs\[0\]: "
                                         r"element \(0,\) = 1e\+11 does not move by ±eps/4 .*"
                                         r"expected eps >= 6\.1e-05"):
        tg.gradcheck(fn, [np.array([1e11 + 0.25])])
    assert not tg.gradcheck(fn, [np.array([1e8 + 0.25])], eps=1e-4).ok    # caught there
    # a component of v of ~1e-8 among 1e5 that rounds away is no reason to refuse
    big = np.random.default_rng(0).uniform(1e3, 1e4, 100_000)
    result = tg.gradcheck(lambda x: ((x - big) * 3.0).sum(), [big.copy()], mode="directions")
    assert result.ok and result.max_rel_error < 1e-9, result
    with pytest.raises(ValueError, match=r"^gradcheck: inputs\[0\] holds NaN \(element "
                                         r"\(1,\)\); finite differences need numbers"):
        tg.gradcheck(lambda x: (x * 2).sum(), [np.array([1.0, np.nan])])


def test_gradcheck_leaves_infinite_inputs_out_and_says_so():
    # masked logits (-inf where a class is not allowed) are a normal input of log_softmax:
    # they are not perturbed, and the others are checked in both modes
    logits = np.array([[0.5, -np.inf, 1.0], [2.0, 0.1, -np.inf]])
    weights = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]])
    for mode in ("elements", "directions"):
        with np.errstate(invalid="ignore"):
            result = tg.gradcheck(
                lambda z: (tg.where(np.isinf(logits), 0.0, tg.log_softmax(z, axis=1))
                           * weights).sum(), [logits], mode=mode)
        assert result.ok and result.max_rel_error < 1e-6, result
        assert result.checked == (4 if mode == "elements" else 8)
        assert "2 element(s) of the inputs are ±inf (masked values?): they were not " \
               "perturbed" in str(result)


def test_gradcheck_one_sided_slopes_use_the_real_steps_too():
    # At 2**34 float64 values are 3.8e-6 apart above and 1.9e-6 below: x + 1e-5 is stored
    # 1.14e-5 up, x - 1e-5 9.5e-6 down. Over the nominal eps the one-sided slopes of 3x
    # read 3.43 and 2.86 and named a kink that is not there (also at eps/4: 4.57, 2.28).
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = tg.gradcheck(lambda x: ((x - 2.0 ** 34) * 3.0).sum(), [np.array([2.0 ** 34])])
    assert result.ok and result.kinks == [] and result.max_rel_error < 1e-12


@pytest.mark.parametrize("options, message", [
    ({"mode": "directions", "n_directions": 0}, r"n_directions must be an integer >= 1, got 0; "
                                                r"a check of 0 directions would pass anything"),
    ({"mode": "directions", "n_directions": -3}, r"n_directions must be an integer >= 1"),
    ({"max_elements": -1}, r"max_elements must be a number >= 0, got -1"),
    ({"seed": -1}, r"seed -1 is not a seed numpy takes"),
    ({"tol": float("inf")}, r"tol must be a number in \(0, 1\), got inf .*would pass anything"),
    ({"tol": 1.0}, r"tol must be a number in \(0, 1\), got 1\.0"),
    ({"eps": float("inf")}, r"eps must be a positive finite number, got inf"),
])
def test_options_that_would_check_nothing_are_refused(options, message):
    # n_directions=0 printed "PASSED: 0 directions checked" for a wrong gradient
    with pytest.raises(ValueError, match=r"^gradcheck: " + message):
        tg.gradcheck(lambda t: WrongScale.apply(t).sum(), [np.ones(3)], **options)


def test_a_node_that_saved_an_input_but_was_not_needed_does_not_block_the_check():
    # grad() leaves such a node (x.detach() * W) alone; its read-only hold on x's array
    # made the perturbation fail with numpy's "assignment destination is read-only"
    W = tg.Tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    for mode in ("elements", "directions"):
        result = tg.gradcheck(lambda x: (x * W).sum() + (x.detach() * W).sum(),
                              [np.array([0.3, -0.7, 1.2])], mode=mode)
        assert not result.ok            # detach hides the second term from the gradient
        assert result.max_rel_error == pytest.approx(1 / 3)


def test_seeds_and_options_numpy_takes_still_work():
    fn = lambda t: (t * t).sum()  # noqa: E731
    for seed in (None, np.int64(3), np.random.default_rng(1), np.random.SeedSequence(2)):
        assert tg.gradcheck(fn, [np.ones(3)], mode="directions", seed=seed)
    assert tg.gradcheck(fn, [np.ones(3)], max_elements=float("inf"))
    with pytest.raises(TypeError, match=r"^gradcheck: n_directions must be an integer"):
        tg.gradcheck(fn, [np.ones(3)], n_directions=2.0)
    W = np.arange(6.0).reshape(2, 3)
    assert tg.central_difference(lambda: float((W ** 2).sum()), W, -1, 1e-6)[2] == \
        pytest.approx(10.0, abs=1e-6)                       # the last element, as W.flat[-1]
    with pytest.raises(IndexError, match=r"^central_difference: element 6 is out of range"):
        tg.central_difference(lambda: 0.0, W, 6, 1e-6)


def test_a_function_that_draws_random_numbers_inside_is_named_not_failed():
    # It was reported as FAILED (analytic -0.109 against numerical -65706), which sent the
    # learner looking for a wrong derivative.
    x = tg.Tensor(np.ones(3), requires_grad=True)
    rng = np.random.default_rng(0)

    def noisy(x):
        return (x * tg.Tensor(rng.standard_normal(3))).sum()

    with pytest.raises(ValueError, match=r"^gradcheck: fn gave two different values for the same "
                                         r"inputs .*not deterministic.*draw the random numbers "
                                         r"once outside fn"):
        tg.gradcheck(noisy, [x])
    fixed = tg.Tensor(np.random.default_rng(0).standard_normal(3))
    assert tg.gradcheck(lambda x: (x * fixed).sum(), [x]).ok


def test_a_function_that_returns_nan_is_not_called_random():
    x = tg.Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    with np.errstate(invalid="ignore"):
        result = tg.gradcheck(lambda x: tg.log(x).sum(), [x])
    assert not result.ok



def test_inputs_without_elements_say_that_nothing_was_checked():
    # "PASSED: 0 elements checked" and nothing more (the property tests over shapes do reach
    # empty ones, where only the gradients' shapes can be checked)
    result = tg.gradcheck(lambda t: WrongScale.apply(t).sum(), [np.zeros((0, 3))])
    assert result.checked == 0 and result.notes == [
        "nothing was checked: the inputs hold no numbers (shapes [(0, 3)])"]
    assert "note: nothing was checked" in str(result)


def test_runs_under_no_grad():
    # It raised "backward: the output depends on no tensor that requires grad ... no_grad()".
    with tg.no_grad():
        assert tg.gradcheck(lambda t: (t * t).sum(), [np.array([0.3, -0.7])])
        assert not tg.gradcheck(lambda t: WrongScale.apply(t).sum(), [np.array([0.3, -0.7])])
        assert not tg.is_grad_enabled()          # the caller's mode is put back
    assert tg.is_grad_enabled()


class _TanhFirstOrderOnly(tg.Function):
    """tanh whose recorded backward gives the right values but drops their dependence on the
    input (it reads .data): a wrong second derivative."""
    @staticmethod
    def forward(ctx, a):
        ctx.save_for_backward(a)
        return np.tanh(a)

    @staticmethod
    def backward(ctx, g):
        (a,) = ctx.saved_tensors
        a = a.data if isinstance(a, tg.Tensor) else a
        return g * (1 - np.tanh(a) ** 2)


def test_checks_second_derivatives_through_grad_inside_fn():
    # fn calling tinygraph.grad(create_graph=True) was evaluated under no_grad at the
    # perturbed points and raised: second derivatives could not be checked at all.
    x = np.array([0.3, -0.7, 1.2])

    def second(op):
        return lambda a: tg.grad(op(a).sum(), [a], create_graph=True)[0].sum()

    assert tg.gradcheck(second(tg.tanh), [x])
    result = tg.gradcheck(second(_TanhFirstOrderOnly.apply), [x])
    assert not result and len(result.mismatches) == 3
    assert all(m.analytic == 0.0 for m in result.mismatches)


class _HalfWrongMul(WrongAtOneElement):
    """x * y (WrongAtOneElement's forward) whose backward doubles the gradient of x."""
    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        return 2 * g * b, g * a


def test_gradients_too_small_to_judge_are_warned_about():
    # A backward off by a factor 2 passed without a word on a loss scaled by 1e-14: the
    # criterion's +1e-8 makes every relative error small there.
    x, y = np.array([0.5, 1.5]), np.array([2.0, -1.0])
    with pytest.warns(RuntimeWarning, match=r"gradcheck: every gradient checked is tiny "
                                            r"\(largest .*\): .*multiply fn's output by a large "
                                            r"factor"):
        result = tg.gradcheck(lambda a, b: _HalfWrongMul.apply(a, b).sum() * 1e-14, [x, y])
    assert result.ok and result.notes and "note: every gradient checked is tiny" in str(result)
    # scaled up as the note says, the same backward fails
    assert not tg.gradcheck(lambda a, b: _HalfWrongMul.apply(a, b).sum() * 1e-14 * 1e14, [x, y])
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # ordinary gradients: no such note
        assert tg.gradcheck(lambda a, b: (a * b).sum(), [x, y]).notes == []
        # nor gradients exactly 0 on both sides (a relu below 0): they do agree, and a
        # wrong nonzero analytic one above ~1e-13 would fail
        assert tg.gradcheck(lambda a: tg.relu(a).sum(), [-x]).notes == []


@pytest.mark.parametrize("fn, x", [
    (lambda a: (a * a * a).sum(), np.array([0.0, 1.0, -2.0])),    # true gradient 0: curvature
    (lambda a: (a * a).sum(), np.array([1e8, -3e8])),              # a huge loss: rounding
])
def test_a_mismatch_within_the_finite_differences_own_error_says_so(fn, x):
    # FAILED with no word on why, for correct gradients.
    result = tg.gradcheck(fn, [x])
    assert not result.ok
    assert len(result.notes) == len(result.mismatches) >= 1
    assert all("is within the finite differences' own error at eps=1e-05" in n
               and "check again with another eps" in n for n in result.notes)


def test_a_real_mismatch_gets_no_such_note():
    result = tg.gradcheck(lambda a, b: _HalfWrongMul.apply(a, b).sum(),
                          [np.array([0.5, 1.5]), np.array([2.0, -1.0])])
    assert not result.ok and len(result.mismatches) == 2 and result.notes == []
