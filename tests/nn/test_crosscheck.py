"""``nn.crosscheck``: hand-derived backprop (``nn.manual``) against autodiff
(``nn.MLP``) and against finite differences, on the same weights and batch."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import activations
import nn
import nn.manual
import tinygraph as tg

ALL_ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "gelu", "gelu_tanh", "silu"]
SPEC_SIZES = [784, 256, 128, 10]
OUTPUTS = {"softmax_ce": "softmax", "linear_mse": None, "sigmoid_bce": "sigmoid"}


def _targets(output, n, k, rng):
    if output == "softmax":
        return rng.integers(0, k, size=n)
    if output is None:
        return rng.normal(size=(n, k))
    return rng.integers(0, 2, size=(n, k)).astype(float)


def _problem(sizes, hidden, output, n, seed=0, bias_scale=0.1):
    """A manual MLP (random small biases: off the ReLU kinks) and a batch."""
    rng = np.random.default_rng(seed)
    init = "xavier" if hidden in ("sigmoid", "tanh") else "he"
    model = nn.manual.MLP(sizes, [hidden] * (len(sizes) - 2) + [output], init_method=init,
                          seed=seed)
    for layer in model.layers:
        layer.b[...] = bias_scale * rng.standard_normal(layer.b.shape)
    X = rng.normal(size=(n, sizes[0]))
    return model, X, _targets(output, n, sizes[-1], rng)


def _assert_agree(report, tol=1e-10):
    assert report.ok, str(report)
    assert report.tol == tol
    for row in report.rows:
        assert row.max_rel_diff <= tol, str(report)
        assert row.numerical_rel_error < 1e-5, str(report)
        assert row.numerical_checked > 0


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


def test_report_fields_and_table():
    model, X, y = _problem([6, 5, 4, 3], "tanh", "softmax", n=8)
    W_before = [layer.W.copy() for layer in model.layers]
    report = nn.crosscheck(model, X, y)
    assert isinstance(report, nn.CrosscheckReport)
    assert report.ok is True and bool(report)
    assert report.dtype == "float64" and report.batch_size == 8
    assert report.manual_loss == pytest.approx(report.autodiff_loss, rel=1e-12)
    names = [r.name for r in report.rows]
    assert names == ["layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b", "layers.4.W",
                     "layers.4.b"]
    assert [(r.layer, r.kind) for r in report.rows] == [(1, "W"), (1, "b"), (2, "W"), (2, "b"),
                                                        (3, "W"), (3, "b")]
    assert [r.shape for r in report.rows] == [(5, 6), (5,), (4, 5), (4,), (3, 4), (3,)]
    for r in report.rows:
        assert 0.0 <= r.max_abs_diff < 1e-14 and 0.0 <= r.max_rel_diff <= 1e-10
        assert 0.0 <= r.numerical_rel_error < 1e-5 and r.numerical_checked == min(3, np.prod(r.shape))
    assert set(report.param_errors) == set(names)
    assert all(report.param_errors[r.name] == r.max_rel_diff for r in report.rows)
    text = str(report)
    assert "AGREE" in text and "DISAGREE" not in text
    rows = [line for line in text.splitlines() if any(name in line.split() for name in names)]
    assert len(rows) == len(names)
    assert all(line.rstrip().endswith("ok") for line in rows) and "MISMATCH" not in text
    # the manual model's weights are left alone
    for layer, W in zip(model.layers, W_before):
        np.testing.assert_array_equal(layer.W, W)


@pytest.mark.parametrize("shift", [-1.0, 1.0])
def test_a_manual_gradient_off_in_either_direction_is_reported(monkeypatch, shift):
    # The criterion without its absolute value passed every gradient below autodiff's (and
    # reported a negative error): a shift makes every element err the same way
    model, X, y = _problem([6, 5, 4, 3], "relu", "softmax", n=8, seed=1)
    layer = model.layers[0]
    original = layer.backward

    def broken(delta, compute_input_grad=True):
        result = original(delta, compute_input_grad)
        layer.db = layer.db + shift
        return result

    monkeypatch.setattr(layer, "backward", broken)
    report = nn.crosscheck(model, X, y)
    assert not report.ok
    assert report.param_errors["layers.0.b"] > 0.3


def test_the_numerical_check_of_a_float32_model_runs_in_float64():
    # compared with the float32 gradient instead, the error grows 1000x (1e-9 -> 1e-6) and
    # still passes the 1e-5 tolerance: only a tight bound sees it
    model, X, y = _problem([6, 5, 4, 3], "tanh", "softmax", n=8, seed=1)
    model32 = nn.manual.MLP([6, 5, 4, 3], ["tanh", "tanh", "softmax"], seed=1, dtype=np.float32)
    for a, b in zip(model32.layers, model.layers):
        a.W[...], a.b[...] = b.W, b.b
    report = nn.crosscheck(model32, X.astype(np.float32), y)
    assert report.ok
    assert max(r.numerical_rel_error for r in report.rows) < 1e-7


def test_broken_manual_gradient_is_reported(monkeypatch):
    """Scale one layer's dW by 1.01: the report is not ok and marks that parameter."""
    model, X, y = _problem([6, 5, 4, 3], "relu", "softmax", n=8, seed=1)
    layer = model.layers[1]
    original = layer.backward

    def broken(delta, compute_input_grad=True):
        result = original(delta, compute_input_grad)
        layer.dW = layer.dW * 1.01
        return result

    monkeypatch.setattr(layer, "backward", broken)
    report = nn.crosscheck(model, X, y)
    assert not report.ok and not bool(report)
    bad = [r.name for r in report.rows if r.max_rel_diff > report.tol]
    assert bad == ["layers.2.W"]
    # |1.01 a - a| / (|1.01 a| + |a|) = 0.01 / 2.01 wherever dW != 0
    assert report.param_errors["layers.2.W"] == pytest.approx(0.01 / 2.01, rel=1e-6)
    assert all(report.param_errors[n] <= 1e-10 for n in report.param_errors if n != "layers.2.W")
    # autodiff itself still agrees with finite differences
    assert all(r.numerical_rel_error < 1e-5 for r in report.rows)
    text = str(report)
    assert "DISAGREE" in text
    lines = {name: line for line in text.splitlines() for name in report.param_errors
             if name in line.split()}
    assert len(lines) == len(report.rows)
    assert "MISMATCH" in lines["layers.2.W"]
    assert all("MISMATCH" not in line and line.rstrip().endswith("ok")
               for name, line in lines.items() if name != "layers.2.W")


def test_float32_crosscheck_uses_float32_tolerance():
    model, X, y = _problem([5, 6, 3], "gelu", "softmax", n=10, seed=2)
    model32 = nn.manual.MLP([5, 6, 3], ["gelu", "softmax"], seed=2, dtype=np.float32)
    for a, b in zip(model32.layers, model.layers):
        a.W[...] = b.W
        a.b[...] = b.b
    report = nn.crosscheck(model32, X, y)
    assert report.dtype == "float32" and report.tol == 1e-4
    assert report.ok, str(report)


# ---------------------------------------------------------------------------
# Agreement: the spec's network, every activation, every output/loss
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("output", list(OUTPUTS))
@pytest.mark.parametrize("hidden", ALL_ACTIVATIONS)
def test_spec_network_every_activation_and_loss(hidden, output):
    model, X, y = _problem(SPEC_SIZES, hidden, OUTPUTS[output], n=64, seed=3)
    _assert_agree(nn.crosscheck(model, X, y, n_numerical=2))


@pytest.mark.parametrize("n_hidden", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("hidden", ["relu", "tanh", "silu"])
def test_depths_1_to_5_hidden_layers(n_hidden, hidden):
    sizes = [12] + [16] * n_hidden + [4]
    model, X, y = _problem(sizes, hidden, "softmax", n=20, seed=n_hidden)
    _assert_agree(nn.crosscheck(model, X, y))


@pytest.mark.parametrize("sizes,hidden,output", [
    ([20, 1024, 5], "relu", "softmax"),
    ([20, 1500, 3], "gelu", None),
    ([100, 2, 100], "relu", None),
    ([100, 2, 100], "tanh", "softmax"),
], ids=["wide_1024_relu", "wide_1500_gelu_mse", "bottleneck_relu_mse", "bottleneck_tanh_ce"])
def test_wide_layers_and_bottleneck(sizes, hidden, output):
    model, X, y = _problem(sizes, hidden, output, n=16, seed=4)
    _assert_agree(nn.crosscheck(model, X, y))


@pytest.mark.parametrize("n", [1, 37, 1000])
@pytest.mark.parametrize("output", list(OUTPUTS))
def test_batch_sizes(n, output):
    model, X, y = _problem([30, 24, 16, 6], "silu", OUTPUTS[output], n=n, seed=5)
    if n == 1:      # (a missing 1/n agrees at n = 1: said, in a warning and a note)
        with pytest.warns(RuntimeWarning, match=r"crosscheck: a batch of 1 sample: a gradient "
                                                r"off by a factor of the batch size"):
            report = nn.crosscheck(model, X, y)
        assert report.notes and report.notes[0].startswith("a batch of 1 sample")
        assert "note: a batch of 1 sample" in str(report)
    else:
        report = nn.crosscheck(model, X, y)
    assert report.batch_size == n
    _assert_agree(report)


def test_crosscheck_of_the_autodiff_model_says_to_pass_its_manual_twin():
    model = nn.MLP([2, 3, 3], ["relu", "softmax"], seed=0)
    X, y = np.ones((2, 2)), np.array([0, 1])
    with pytest.raises(TypeError, match=r"crosscheck: expected the hand-written MLP, an "
                                        r"nn\.manual\.MLP, got a nn\.mlp\.MLP \(an nn\.MLP: pass "
                                        r"model\.to_manual\(\)"):
        nn.crosscheck(model, X, y)
    with pytest.raises(TypeError, match=r"got a builtins\.str$"):
        nn.crosscheck("model", X, y)
    assert nn.crosscheck(model.to_manual(), X, y).ok


@pytest.mark.parametrize("options, error, message", [
    ({"n_numerical": -1}, ValueError, "n_numerical must be an integer >= 0, got -1"),
    ({"n_numerical": 2.5}, TypeError, "n_numerical must be an integer >= 0, got 2.5"),
    ({"eps": 0}, ValueError, r"crosscheck: eps must be a finite number > 0, got 0\.0"),
    ({"tol": "a"}, TypeError, r"crosscheck: tol must be a finite number > 0, got 'a'"),
    ({"numerical_tol": float("nan")}, ValueError,
     r"crosscheck: numerical_tol must be a finite number > 0, got nan"),
    ({"seed": -1}, ValueError, r"crosscheck: seed must be None, a non-negative integer"),
    ({"seed": "a"}, TypeError, r"crosscheck: seed must be None, a non-negative integer"),
])
def test_crosscheck_options_are_checked(options, error, message):
    manual = nn.manual.MLP([2, 3], ["softmax"], seed=0)
    with pytest.raises(error, match=message):
        nn.crosscheck(manual, np.ones((2, 2)), [0, 1], **options)


def test_crosscheck_between_backward_and_update_leaves_the_model_as_it_was():
    # A learner's loop: forward, backward, crosscheck on another batch, update. The update
    # must apply the gradients of the learner's own batch.
    model, X, y = _problem([5, 4, 3], "tanh", "softmax", n=6, seed=2)
    model.forward(X)
    model.backward(y)
    reference = copy.deepcopy(model)
    other_X, other_y = 2.0 * X[::-1], y[::-1]
    assert nn.crosscheck(model, other_X, other_y).ok
    for layer, ref in zip(model.layers, reference.layers):
        for name in ("a_prev", "z", "a", "dW", "db", "W", "b"):
            np.testing.assert_array_equal(getattr(layer, name), getattr(ref, name), err_msg=name)
        if hasattr(layer.activation, "cache"):          # (not the "softmax" output)
            np.testing.assert_array_equal(layer.activation.cache, ref.activation.cache)
    model.backward(y)                                   # still the learner's forward pass
    model.update(0.1)
    reference.update(0.1)
    for layer, ref in zip(model.layers, reference.layers):
        np.testing.assert_array_equal(layer.W, ref.W)
    fresh = nn.manual.MLP([5, 4, 3], ["tanh", "softmax"], seed=0)
    nn.crosscheck(fresh, X, y)                          # no forward before: none after either
    with pytest.raises(RuntimeError, match="called before forward"):
        fresh.backward(y)


def test_crosscheck_of_an_empty_batch_names_crosscheck():
    manual = nn.manual.MLP([2, 3], ["softmax"], seed=0)
    with pytest.raises(ValueError, match=r"^crosscheck: X has 0 samples \(shape \(0, 2\)\); "
                                         r"expected at least one row"):
        nn.crosscheck(manual, np.zeros((0, 2)), np.zeros(0, int))


class _LeCunTanh(activations.Tanh):
    """1.7159 tanh(2x/3): a subclass of a built-in that keeps its name "tanh"."""

    def _forward(self, x):
        t = np.tanh(2 * x / 3)
        return 1.7159 * t, t.copy()

    def _backward(self, grad_output, t):
        return grad_output * 1.7159 * (2 / 3) * (1 - t * t)


def test_a_subclassed_activation_is_kept_by_the_twins_and_the_crosscheck():
    # The twins rebuilt an activation from its name: this correct backprop was reported
    # as DISAGREE against plain tanh, and from_manual built another network.
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 8)), rng.integers(0, 3, 20)
    manual = nn.manual.MLP([8, 16, 3], [_LeCunTanh(), "softmax"], seed=0)
    report = nn.crosscheck(manual, X, y)
    assert report.ok
    graph = nn.MLP.from_manual(manual)
    assert type(graph._resolved[0]) is _LeCunTanh
    np.testing.assert_allclose(graph.predict_proba(X), manual.predict_proba(X), rtol=1e-12)
    twin = graph.to_manual()
    assert type(twin.layers[0].activation) is _LeCunTanh
    assert twin.layers[0].activation is not manual.layers[0].activation
    assert twin.layers[0].activation.cache is None


class _Cube(activations.Activation):
    """x³: an activation of the user's own, with a name the registry does not know."""
    name = "cube"

    def _forward(self, x):
        return x ** 3, x.copy()

    def _backward(self, grad_output, x):
        return grad_output * 3 * x * x


class _ScaledLeaky(activations.LeakyReLU):
    """A LeakyReLU subclass whose config has a parameter LeakyReLU does not take."""

    def __init__(self, negative_slope=0.01, scale=2.0):
        super().__init__(negative_slope)
        self.scale = scale

    def config(self):
        return {**super().config(), "scale": self.scale}

    def _forward(self, x):
        out, cache = super()._forward(x)
        return self.scale * out, cache

    def _backward(self, grad_output, cache):
        return self.scale * super()._backward(grad_output, cache)


@pytest.mark.parametrize("make", [_Cube, _ScaledLeaky])
def test_activations_the_registry_cannot_rebuild_are_copied_for_the_twins(make):
    # from_config raised for them ("unknown activation 'cube'", "unexpected parameter(s)")
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((10, 4)) * 0.5, rng.integers(0, 3, 10)
    manual = nn.manual.MLP([4, 6, 3], [make(), "softmax"], seed=0)
    assert nn.crosscheck(manual, X, y).ok
    twin = nn.MLP.from_manual(manual).to_manual()
    assert type(twin.layers[0].activation) is make
    np.testing.assert_allclose(twin.predict_proba(X), manual.predict_proba(X), rtol=1e-12)



def test_the_overlay_is_red_where_only_the_numerical_check_fails(monkeypatch):
    # A wrong activation derivative is shared by the manual MLP and nn.MLP's adapter (both
    # call activations.ReLU.backward): manual and autodiff agree, only the finite
    # differences disagree. The overlay read param_errors alone and drew every box green.
    original = activations.ReLU._backward
    monkeypatch.setattr(activations.ReLU, "_backward",
                        lambda self, g, cache: original(self, g, cache) * 2.0)
    model, X, y = _problem([4, 8, 3], "relu", "softmax", n=16, seed=3)
    report = nn.crosscheck(model, X, y)
    assert not report.ok and max(report.param_errors.values()) <= report.tol
    graph = nn.MLP.from_manual(model)
    loss = graph.loss(X, y)
    loss.backward(retain_graph=True)
    dot = tg.viz.backward_graph(loss, crosscheck=report).source
    assert "cross-check (tol 1e-10): 2 ok, 2 failed" in dot
    assert dot.count("numerical ") == 2 and "layers.0.W" in dot


# ---------------------------------------------------------------------------
# Verdicts the finite differences cannot give, and manual gradients that cannot be compared
# ---------------------------------------------------------------------------


def test_the_spec_xor_network_agrees_at_its_relu_kinks():
    # the input (0, 0) with zero biases puts every z^(1) exactly at the kink: the central
    # difference measured a slope of 0.5 where the derivative is 0, and a correct backprop
    # got DISAGREE for seeds 0-3
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    for seed in range(4):
        report = nn.crosscheck(nn.manual.MLP([2, 4, 1], ["relu", "sigmoid"], seed=seed), X, y)
        assert report.ok, str(report)
        b1 = report.rows[1]
        assert b1.name == "layers.0.b" and b1.numerical_checked == 3, str(report)
        assert any(n.startswith("layers.0.b: element(s) ") and "lie at a kink" in n
                   for n in report.notes), report.notes


class _LeakyBackwardReLU(activations.ReLU):
    """A ReLU whose backward gives slope 0.1 for negative inputs (should be 0)."""

    def _backward(self, grad_output, cache):
        return grad_output * np.where(cache > 0, 1.0, 0.1)


def test_a_derivative_between_the_one_sided_slopes_is_not_taken_for_a_kink():
    # at a kink the derivative is one of the one-sided slopes; a wrong slope on one side
    # lies between them, and was let through (AGREE for 2 of 50 seeds) when anything between
    # them passed
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    for seed in range(50):
        model = nn.manual.MLP([2, 4, 1], [_LeakyBackwardReLU(), "sigmoid"], seed=seed)
        report = nn.crosscheck(model, X, y, seed=seed)
        assert report.manual_ok and not report.numerical_ok, (seed, str(report))


def test_a_parameter_the_finite_differences_could_not_judge_is_named(monkeypatch):
    import importlib
    cc = importlib.import_module("nn.crosscheck")    # (nn.crosscheck is also the function)
    model, X, y = _problem([4, 5, 3], "tanh", "softmax", n=8)
    real = cc._numerical_error

    def never_on_b1(loss, array, j, *args):
        if array.ndim == 1 and array.shape == (5,):
            return None, False              # (as for an element within the FD's own error)
        return real(loss, array, j, *args)

    monkeypatch.setattr(cc, "_numerical_error", never_on_b1)
    report = nn.crosscheck(model, X, y)
    assert report.rows[1].numerical_checked == 0 and report.rows[1].numerical_unjudged == 5
    assert report.verdict() == ("manual backprop and autodiff AGREE (tolerance 1e-10); finite "
                                "differences could not judge layers.0.b (see the notes); finite "
                                "differences agree on the others (tolerance 1e-05)")
    assert any(n.startswith("layers.0.b: element(s) ") and "could not be judged" in n
               for n in report.notes)


class _SteepReLU(activations.ReLU):
    """A ReLU whose derivative is wrong (2 instead of 1): both MLPs use it."""

    def backward(self, grad_output):
        return 2.0 * super().backward(grad_output)


def test_a_wrong_derivative_at_a_kink_is_still_caught():
    # between the one-sided slopes is all that passes at a kink: a slope of 2 is not
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0.0, 1.0, 1.0, 0.0])
    model = nn.manual.MLP([2, 4, 1], [_SteepReLU(), "sigmoid"], seed=0)
    report = nn.crosscheck(model, X, y, n_numerical=4)
    assert report.manual_ok and not report.numerical_ok and not report.ok
    assert "but finite differences DISAGREE with autodiff" in str(report)


@pytest.mark.parametrize("batch", [7, 11, 13, 20, 50])
def test_a_correct_float32_backprop_agrees_at_odd_batch_sizes(batch):
    # (a - y)/n and (p - y)·(1/n) differ by one rounding; on a dW element whose sum nearly
    # cancels that was a relative difference of 1e-2: DISAGREE for a quarter of batch sizes
    X_train, X_test, y_train, y_test = nn.data.digits_split()
    model = nn.manual.MLP([64, 256, 128, 10], ["relu", "relu", "softmax"], seed=0,
                          dtype=np.float32)
    report = nn.crosscheck(model, X_test[:batch], y_test[:batch])
    assert report.ok, str(report)


def test_a_correct_backprop_of_saturated_units_agrees():
    # the finite differences' own error (rounding of a loss of ~20, curvature) exceeded the
    # 1e-5 tolerance on gradients near 1e-7: DISAGREE with manual == autodiff exactly
    model, X, y = _problem([8, 16, 16, 4], "tanh", "softmax", n=16, seed=0)
    for layer in model.layers:
        layer.W *= 30
    report = nn.crosscheck(model, X, y, n_numerical=8)
    assert report.ok, str(report)
    assert all(r.max_abs_diff == 0.0 for r in report.rows)


@pytest.mark.parametrize("change, message", [
    (lambda L: setattr(L, "db", L.db[None, :]),
     r"^crosscheck: layer 2's backward set db of shape \(1, 6\); expected \(6,\), the shape of "
     r"b\^\(2\) \(db summed with keepdims\?"),
    (lambda L: setattr(L, "dW", L.dW.T),
     r"^crosscheck: layer 2's backward set dW of shape \(5, 6\); expected \(6, 5\), the shape "
     r"of W\^\(2\) \(transposed\? the spec's dW\^\(l\)"),
    (lambda L: setattr(L, "dW", None),
     r"^crosscheck: layer 2's backward did not set dW \(it is None after backward\); expected an "
     r"array of shape \(6, 5\)"),
    (lambda L: setattr(L, "dW", L.dW.tolist()),
     r"^crosscheck: layer 2's backward set dW of a list; expected \(6, 5\)"),
])
def test_a_manual_gradient_of_the_wrong_shape_is_named(monkeypatch, change, message):
    # a (1, n) db broadcast against autodiff's (n,) and was reported AGREE; a transposed dW
    # gave numpy's "operands could not be broadcast together"
    model, X, y = _problem([4, 5, 6, 3], "tanh", "softmax", n=8)
    layer = model.layers[1]
    original = layer.backward

    def broken(delta, compute_input_grad=True):
        result = original(delta, compute_input_grad)
        change(layer)
        return result

    monkeypatch.setattr(layer, "backward", broken)
    with pytest.raises(ValueError, match=message):
        nn.crosscheck(model, X, y)


def test_a_backward_that_stores_nothing_is_not_judged_on_an_earlier_call(monkeypatch):
    # the gradients of the learner's earlier correct backward were compared: AGREE
    model, X, y = _problem([4, 5, 6, 3], "tanh", "softmax", n=8)
    model.forward(X)
    model.backward(y)
    layer = model.layers[1]
    original = layer.backward

    def forgetful(delta, compute_input_grad=True):
        kept = layer.dW, layer.db
        result = original(delta, compute_input_grad)
        layer.dW, layer.db = kept
        return result

    monkeypatch.setattr(layer, "backward", forgetful)
    with pytest.raises(ValueError, match=r"layer 2's backward did not set dW"):
        nn.crosscheck(model, X, y)
    assert layer.dW is not None         # (what the learner's call left is put back)


def test_an_unchecked_numerical_column_is_shown_as_a_dash():
    model, X, y = _problem([4, 5, 3], "tanh", "softmax", n=8)
    report = nn.crosscheck(model, X, y, n_numerical=0)
    assert report.ok
    assert all(line.split()[-2:] == ["-", "ok"] for line in report.table().splitlines()[2:])


def test_small_elements_of_a_float32_gradient_are_still_judged(monkeypatch):
    # the rounding allowance is 64 units of the largest gradient's rounding, not the
    # tolerance: with tol × max|g| (1e-4 × max) a backward that flips the sign of every
    # element below 5e-5 × max got AGREE
    X = nn.data.load_digits(flatten=True, scale=True)[0][:32]
    y = nn.data.load_digits(flatten=True, scale=True)[1][:32]
    model = nn.manual.MLP([64, 256, 128, 10], ["relu", "relu", "softmax"], seed=0,
                          dtype=np.float32)
    layer = model.layers[1]
    original = layer.backward

    def flipped(delta, compute_input_grad=True):
        result = original(delta, compute_input_grad)
        g = layer.dW.copy()
        small = (g != 0) & (np.abs(g) < 5e-5 * np.abs(g).max())
        assert small.sum() > 10
        g[small] *= -1
        layer.dW = g
        return result

    monkeypatch.setattr(layer, "backward", flipped)
    report = nn.crosscheck(model, X, y)
    assert not report.manual_ok and report.rows[2].max_rel_diff > report.tol, str(report)


def test_the_kink_test_uses_the_steps_really_taken():
    # At 2**34 float64 values are 3.8e-6 apart above and 1.9e-6 below: over the nominal
    # eps the one-sided slopes of a straight line read 3.43 and 2.86, and the element was
    # judged at a kink (error 0.159 against the nearer extrapolated slope, not 0.0909)
    import importlib
    cc = importlib.import_module("nn.crosscheck")    # (nn.crosscheck is also the function)
    x = np.array([2.0 ** 34])
    loss = lambda: float(((x - 2.0 ** 34) * 3.0).sum())      # noqa: E731
    err, kink = cc._numerical_error(loss, x, 0, 1e-5, loss(), 3.6, 1e-5)
    assert not kink and err == pytest.approx(0.6 / 6.6, rel=1e-6)
    assert cc._numerical_error(loss, x, 0, 1e-5, loss(), 3.0, 1e-5) == (0.0, False)
