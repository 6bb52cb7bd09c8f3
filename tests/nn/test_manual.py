"""Tests specific to the hand-written MLP (``nn.manual``) and ``nn.init``.

The spec's test cases, which any MLP implementation must pass, are in
``test_spec_cases.py``; this file covers the loss functions, the argument
errors and their messages, dtype handling, label formats, the output-layer
rules and the batch-1 outer-product path.
"""

from __future__ import annotations

import copy
import math
import re
import threading

import numpy as np
import pytest

import nn.init
import nn.manual
from activations import GELU, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh
from nn.data import blobs, sine, xor
from nn.manual import (
    MLP,
    Layer,
    binary_cross_entropy_loss,
    cross_entropy_loss,
    mse_loss,
    softmax,
)

ALL_ACTIVATIONS = [ReLU, LeakyReLU, Sigmoid, Tanh, GELU, SiLU]


def small_classifier(seed=0, dtype=np.float64, sizes=(4, 6, 3), hidden="relu"):
    acts = [hidden] * (len(sizes) - 2) + ["softmax"]
    return MLP(list(sizes), acts, seed=seed, dtype=dtype)


def data(n=8, d=4, k=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.integers(0, k, size=n)


# ---------------------------------------------------------------------------
# softmax and the loss functions
# ---------------------------------------------------------------------------


class TestSoftmax:
    def test_rows_sum_to_one_and_match_definition(self):
        z = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
        p = softmax(z)
        e = np.exp(z)
        np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-15)

    def test_invariant_to_adding_a_constant_per_row(self):
        z = np.random.default_rng(0).normal(size=(4, 5))
        np.testing.assert_allclose(softmax(z + 500.0), softmax(z), rtol=1e-12)

    def test_large_logits_no_overflow(self):
        with np.errstate(over="raise", invalid="raise", divide="raise"):
            p = softmax(np.array([1000.0, 999.0, -1000.0]))
        assert np.all(np.isfinite(p))
        np.testing.assert_allclose(p[:2], [1 / (1 + math.e**-1), 1 / (1 + math.e)])

    def test_1d_input_and_dtypes(self):
        assert softmax(np.array([1.0, 2.0])).shape == (2,)
        assert softmax(np.zeros((2, 3), dtype=np.float32)).dtype == np.float32
        p = softmax(np.array([[1, 2, 3]]))  # integers -> float64
        assert p.dtype == np.float64
        np.testing.assert_allclose(p.sum(), 1.0)


class TestLosses:
    def test_cross_entropy_value(self):
        p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
        Y = np.array([[1.0, 0, 0], [0, 1.0, 0]])
        assert cross_entropy_loss(p, Y) == pytest.approx(-(math.log(0.7) + math.log(0.1)) / 2)
        assert isinstance(cross_entropy_loss(p, Y), float)

    def test_cross_entropy_epsilon_clipping(self):
        p = np.array([[0.0, 1.0]])
        Y = np.array([[1.0, 0.0]])
        assert cross_entropy_loss(p, Y) == pytest.approx(-math.log(1e-12))
        assert cross_entropy_loss(p, Y, eps=1e-3) == pytest.approx(-math.log(1e-3))
        assert cross_entropy_loss(np.array([[1.0, 0.0]]), Y) == 0.0

    def test_cross_entropy_single_sample_1d(self):
        assert cross_entropy_loss(np.array([0.25, 0.75]), np.array([0.0, 1.0])) == pytest.approx(
            -math.log(0.75)
        )

    def test_mse_has_one_over_2n(self):
        pred = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
        target = np.array([[0.0, 2.0], [3.0, 1.0], [0.0, 2.0]])
        # squared errors: 1 + 9 + 4 = 14, n = 3 -> 14 / 6
        assert mse_loss(pred, target) == pytest.approx(14 / 6)
        assert mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0])) == pytest.approx(10 / 4)

    def test_binary_cross_entropy_value_and_clipping(self):
        p = np.array([[0.9], [0.2]])
        y = np.array([[1.0], [0.0]])
        assert binary_cross_entropy_loss(p, y) == pytest.approx(
            -(math.log(0.9) + math.log(0.8)) / 2
        )
        # Saturated probabilities (exactly 0 or 1, also in float32) stay finite.
        for dtype in (np.float64, np.float32):
            worst = binary_cross_entropy_loss(
                np.array([[1.0], [0.0]], dtype=dtype), np.array([[0.0], [1.0]], dtype=dtype)
            )
            assert worst == pytest.approx(-math.log(1e-12), rel=1e-5)

    @pytest.mark.parametrize(
        "fn,tname",
        [
            (cross_entropy_loss, "targets_onehot"),
            (mse_loss, "targets"),
            (binary_cross_entropy_loss, "targets"),
        ],
    )
    def test_shape_mismatch_is_an_error(self, fn, tname):
        with pytest.raises(ValueError, match=rf"predictions has shape \(3, 1\) but {tname} has shape \(3,\)"):
            fn(np.full((3, 1), 0.5), np.zeros(3))

    def test_bad_eps(self):
        with pytest.raises(ValueError, match="eps must be a number in"):
            cross_entropy_loss(np.ones((1, 2)) / 2, np.ones((1, 2)) / 2, eps=0.0)


# ---------------------------------------------------------------------------
# nn.init
# ---------------------------------------------------------------------------


class TestInit:
    def test_he_and_xavier_shapes_and_variance(self):
        rng = np.random.default_rng(0)
        W = nn.init.he_normal(300, 500, rng)
        assert W.shape == (300, 500) and W.dtype == np.float64
        assert W.var() == pytest.approx(2 / 500, rel=0.03)
        V = nn.init.xavier_normal(300, 500, rng, dtype=np.float32)
        assert V.dtype == np.float32
        assert V.var() == pytest.approx(2 / 800, rel=0.03)

    def test_init_weight_dispatch_is_reproducible(self):
        a = nn.init.init_weight("he", 3, 4, nn.init.make_rng(5))
        b = nn.init.he_normal(3, 4, np.random.default_rng(5))
        np.testing.assert_array_equal(a, b)
        c = nn.init.init_weight("Xavier", 3, 4, nn.init.make_rng(5))
        np.testing.assert_allclose(c, b * math.sqrt((2 / 7) / (2 / 4)))

    def test_float32_is_float64_draw_rounded(self):
        w64 = nn.init.he_normal(5, 7, np.random.default_rng(1))
        w32 = nn.init.he_normal(5, 7, np.random.default_rng(1), dtype=np.float32)
        np.testing.assert_array_equal(w32, w64.astype(np.float32))

    def test_unknown_method_lists_valid_names(self):
        with pytest.raises(
            ValueError,
            match=(
                r"method must be one of 'he', 'xavier', got 'kaiming'"
            ),
        ):
            nn.init.init_weight("kaiming", 2, 2, np.random.default_rng())

    def test_make_rng(self):
        g = np.random.default_rng(3)
        assert nn.init.make_rng(g) is g
        assert isinstance(nn.init.make_rng(None), np.random.Generator)
        assert nn.init.make_rng(7).random() == np.random.default_rng(7).random()
        assert nn.init.make_rng(np.int64(7)).random() == np.random.default_rng(7).random()
        with pytest.raises(TypeError, match="seed must be None, a non-negative integer"):
            nn.init.make_rng(1.5)
        with pytest.raises(TypeError):
            nn.init.make_rng(True)
        with pytest.raises(ValueError, match="got -1"):
            nn.init.make_rng(-1)

    def test_bias_zeros_and_bad_sizes(self):
        b = nn.init.zeros_bias(4, np.float32)
        assert b.shape == (4,) and b.dtype == np.float32 and not b.any()
        with pytest.raises(ValueError, match="n_in must be a positive integer"):
            nn.init.he_normal(3, 0, np.random.default_rng())
        with pytest.raises(TypeError, match="dtype must be a floating-point dtype"):
            nn.init.he_normal(3, 2, np.random.default_rng(), dtype=np.int32)


# ---------------------------------------------------------------------------
# Layer
# ---------------------------------------------------------------------------


class TestLayer:
    @pytest.mark.parametrize("name, value, error, match", [
        ("W", lambda W: W.T, ValueError, r"W of the layer 6 -> 5 has shape \(6, 5\), expected "
                                         r"\(5, 6\) \(W is \(n_out, n_in\).*use \.T\)"),
        ("W", lambda W: W.astype(int), TypeError, r"has dtype int64, .*float64.*"
                                                  r"\.astype\(np\.float64\)"),
        ("W", lambda W: W.tolist(), TypeError, r"W of the layer 6 -> 5 is a list, expected a "
                                               r"numpy array of shape \(5, 6\)"),
        ("b", lambda W: np.zeros((6, 1)), ValueError, r"b of the layer 6 -> 5 has shape "
                                                      r"\(6, 1\), expected \(5,\)"),
        ("b", lambda W: np.zeros((5, 6)), ValueError, r"has shape \(5, 6\), expected \(5,\)"),
    ])
    def test_weights_set_by_hand_are_checked_when_used(self, name, value, error, match):
        # A learner loading their own weights got numpy's gufunc or broadcast errors from deep
        # inside, an UFuncTypeError in the update, or (a (5, 6) bias) a model that trained and
        # then failed in predict.
        model = MLP([6, 5, 3], ["relu", "softmax"], seed=0)
        setattr(model.layers[0], name, value(model.layers[0].W))
        with pytest.raises(error, match=match):
            model.fit(np.ones((3, 6)), [0, 1, 2], epochs=1, learning_rate=0.1)
        with pytest.raises(error, match=match):
            model.predict(np.ones((3, 6)))

    def test_init_and_forward_caches(self):
        layer = Layer(3, 2, ReLU(), rng=0)
        assert layer.W.shape == (2, 3) and layer.b.shape == (2,) and not layer.b.any()
        assert layer.dW is None and layer.db is None and layer.z is None
        x = np.random.default_rng(0).normal(size=(4, 3))
        a = layer.forward(x)
        np.testing.assert_allclose(layer.z, x @ layer.W.T)
        np.testing.assert_allclose(a, np.maximum(layer.z, 0))
        assert layer.a is a and layer.a_prev is not None
        np.testing.assert_array_equal(layer.a_prev, x)

    def test_string_activations(self):
        assert isinstance(Layer(2, 2, "tanh", rng=0).activation, Tanh)
        assert Layer(2, 2, "softmax", rng=0).activation == "softmax"
        assert Layer(2, 2, None, rng=0).activation is None

    def test_backward_formulas(self):
        layer = Layer(3, 2, None, rng=1)
        x = np.random.default_rng(1).normal(size=(5, 3))
        layer.forward(x)
        delta = np.random.default_rng(2).normal(size=(5, 2))
        grad_in = layer.backward(delta)
        np.testing.assert_allclose(layer.dW, delta.T @ x)
        np.testing.assert_allclose(layer.db, delta.sum(axis=0))
        np.testing.assert_allclose(grad_in, delta @ layer.W)
        assert layer.backward(delta, compute_input_grad=False) is None

    def test_batch_1_outer_product_equals_matmul(self, monkeypatch):
        layer = Layer(6, 4, ReLU(), rng=2)
        rng = np.random.default_rng(3)
        x = rng.normal(size=(1, 6))
        delta = rng.normal(size=(1, 4))
        calls = []
        real_dot = np.dot
        monkeypatch.setattr(nn.manual.np, "dot", lambda a, b: calls.append(1) or real_dot(a, b))
        layer.forward(x)
        layer.backward(delta)
        assert calls == [1], "batch size 1 should use the outer-product path (np.dot)"
        np.testing.assert_array_equal(layer.dW, delta.T @ x)  # identical, not just close
        np.testing.assert_array_equal(layer.db, delta.sum(axis=0))
        assert layer.dW.shape == (4, 6) and layer.db.shape == (4,)
        # Batches of more than one row take the matmul path, and a batch's
        # gradient is the sum of the per-sample outer products.
        X = rng.normal(size=(3, 6))
        D = rng.normal(size=(3, 4))
        layer.forward(X)
        layer.backward(D)
        assert calls == [1]
        per_sample = sum(np.outer(D[i], X[i]) for i in range(3))
        np.testing.assert_allclose(layer.dW, per_sample, rtol=1e-12)

    def test_batch_1_path_in_float32(self):
        layer = Layer(3, 2, ReLU(), rng=0, dtype=np.float32)
        layer.forward(np.ones((1, 3)))
        layer.backward(np.ones((1, 2)))
        assert layer.dW.dtype == np.float32 and layer.db.dtype == np.float32

    def test_backward_before_forward(self):
        with pytest.raises(RuntimeError, match="Layer.backward called before forward"):
            Layer(3, 2, ReLU(), rng=0).backward(np.ones((1, 2)))

    def test_forward_shape_error_and_bad_sizes(self):
        layer = Layer(3, 2, None, rng=0)
        with pytest.raises(ValueError, match=r"a_prev must have shape \(n, 3\), got \(4, 2\)"):
            layer.forward(np.ones((4, 2)))
        with pytest.raises(ValueError, match="Layer: n_out must be an integer >= 1, got 0"):
            Layer(3, 0, None)
        with pytest.raises(ValueError, match="Layer: init_method must be one of 'he', 'xavier'"):
            Layer(3, 2, None, init_method="uniform")

    def test_softmax_layer_activation_backward_is_the_jacobian_product(self):
        layer = Layer(3, 4, "softmax", rng=0)
        x = np.random.default_rng(4).normal(size=(2, 3))
        s = layer.forward(x)
        g = np.random.default_rng(5).normal(size=(2, 4))
        expected = np.stack(
            [(np.diag(s[i]) - np.outer(s[i], s[i])) @ g[i] for i in range(2)]
        )
        np.testing.assert_allclose(layer.activation_backward(g), expected, rtol=1e-12)


# ---------------------------------------------------------------------------
# MLP construction
# ---------------------------------------------------------------------------


class TestConstruction:
    def test_attributes(self):
        m = MLP([4, 6, 3], ["relu", "softmax"], seed=0)
        assert m.layer_sizes == [4, 6, 3]
        assert len(m.layers) == 2
        assert isinstance(m.layers[0].activation, ReLU)
        assert m.layers[1].activation == "softmax"
        assert m.init_method == "he" and m.dtype == np.float64
        assert "layer_sizes=[4, 6, 3]" in repr(m) and "'relu'" in repr(m)

    def test_same_seed_same_weights_and_rng_argument(self):
        a = MLP([3, 5, 2], ["tanh", None], seed=42)
        b = MLP([3, 5, 2], ["tanh", None], seed=42)
        c = MLP([3, 5, 2], ["tanh", None], rng=np.random.default_rng(42))
        for la, lb, lc in zip(a.layers, b.layers, c.layers):
            np.testing.assert_array_equal(la.W, lb.W)
            np.testing.assert_array_equal(la.W, lc.W)
        # Weights are drawn layer by layer from one generator, via nn.init.
        rng = np.random.default_rng(42)
        np.testing.assert_array_equal(a.layers[0].W, nn.init.he_normal(5, 3, rng))
        np.testing.assert_array_equal(a.layers[1].W, nn.init.he_normal(2, 5, rng))

    def test_names_are_resolved_with_the_registry(self):
        m = MLP([2, 3, 3, 3, 3, 2], ["ReLU", "gelu_tanh", "swish", "leaky_relu", None], seed=0)
        kinds = [type(layer.activation) for layer in m.layers[:4]]
        assert kinds == [ReLU, GELU, SiLU, LeakyReLU]
        assert m.layers[1].activation.approximate is True
        assert m.layers[4].activation is None

    def test_shared_instance_is_copied_per_layer(self):
        """``[act] * 2`` would make both layers overwrite one cache; each layer gets its own."""
        act = Tanh()
        m = MLP([3, 4, 4, 2], [act, act, "softmax"], seed=0)
        assert m.layers[0].activation is act
        assert m.layers[1].activation is not act
        assert isinstance(m.layers[1].activation, Tanh)
        X, y = data(5, 3, 2)
        m.forward(X)
        m.backward(y)
        shared = copy.deepcopy(m)
        shared.layers[1].activation = shared.layers[0].activation  # the bug we avoid
        shared.forward(X)
        shared.backward(y)
        assert not np.allclose(shared.layers[0].dW, m.layers[0].dW)

    def test_output_kinds_and_losses(self):
        cases = [
            (["relu", "softmax"], "softmax", "cross_entropy"),
            (["relu", None], "linear", "mse"),
            (["relu", Sigmoid()], "sigmoid", "binary_cross_entropy"),
            (["relu", "sigmoid"], "sigmoid", "binary_cross_entropy"),
            (["relu", "tanh"], "activation", "mse"),
        ]
        for acts, kind, loss in cases:
            m = MLP([2, 3, 2], acts, seed=0)
            assert (m.output_kind, m.loss_name) == (kind, loss)


# ---------------------------------------------------------------------------
# Errors name the argument, what it got and what it expects
# ---------------------------------------------------------------------------


class TestErrors:
    def test_wrong_feature_count(self):
        m = small_classifier()
        with pytest.raises(
            ValueError,
            match=re.escape("MLP.forward: X has 5 features but layer 1 expects 4 (layer_sizes[0])"),
        ):
            m.forward(np.ones((2, 5)))
        with pytest.raises(ValueError, match=r"MLP.fit: X has 5 features but layer 1 expects 4"):
            m.fit(np.ones((2, 5)), [0, 1], epochs=1, learning_rate=0.1)
        with pytest.raises(ValueError, match=r"MLP.predict: X has 3 features"):
            m.predict(np.ones((2, 3)))

    def test_one_dimensional_X(self):
        with pytest.raises(
            ValueError,
            match=(
                r"X must be 2-D \(n_samples, n_features\), got shape "
                r"\(4,\).*reshape\(1, -1\)"
            ),
        ):
            small_classifier().forward(np.ones(4))

    def test_non_numeric_X(self):
        with pytest.raises(TypeError, match="X must be a numeric array, got dtype <U1"):
            small_classifier().forward(np.array([["a", "b", "c", "d"]]))

    def test_X_y_length_mismatch(self):
        X, y = data(10)
        with pytest.raises(ValueError, match="MLP.fit: X has 10 samples but y has 9"):
            small_classifier().fit(X, y[:9], epochs=1, learning_rate=0.1)
        m = small_classifier()
        m.forward(X)
        with pytest.raises(ValueError, match="MLP.backward: X has 10 samples but y has 3"):
            m.backward(y[:3])

    def test_layer_sizes_activations_length_mismatch(self):
        with pytest.raises(
            ValueError,
            match=re.escape(
                "MLP: activations has 3 entries but layer_sizes [4, 8, 3] defines 2 layers"
            ),
        ):
            MLP([4, 8, 3], ["relu", "relu", "softmax"])

    def test_bad_layer_sizes(self):
        with pytest.raises(ValueError, match=r"at least 2 entries .* got \[4\]"):
            MLP([4], [])
        with pytest.raises(
            ValueError,
            match=(
                r"MLP: layer_sizes\[1\] must be an integer >= 1, got 0"
            ),
        ):
            MLP([4, 0, 3], ["relu", "softmax"])
        with pytest.raises(TypeError, match=r"layer_sizes\[1\] must be an integer >= 1, got 2.5"):
            MLP([4, 2.5, 3], ["relu", "softmax"])
        with pytest.raises(TypeError, match="activations must be a list with one entry per layer"):
            MLP([4, 3], "softmax")

    def test_unknown_activation_name(self):
        with pytest.raises(
            ValueError, match=r"MLP: activations\[0\]='relux' is not a known activation.*valid names"
        ):
            MLP([4, 8, 3], ["relux", "softmax"])

    def test_activation_class_instead_of_instance_and_junk(self):
        with pytest.raises(
            TypeError,
            match=(
                r"activations\[0\] is the class ReLU, expected an instance such as "
                r"ReLU\(\)"
            ),
        ):
            MLP([4, 8, 3], [ReLU, "softmax"])
        with pytest.raises(TypeError, match=r"activations\[1\] must be an Activation instance"):
            MLP([4, 8, 3], ["relu", 3])

    def test_unknown_init_method(self):
        with pytest.raises(
            ValueError, match=r"MLP: init_method must be one of 'he', 'xavier', got 'kaiming'"
        ):
            MLP([4, 3], ["softmax"], init_method="kaiming")

    def test_softmax_in_hidden_layer(self):
        with pytest.raises(
            ValueError,
            match=r"activations\[0\]='softmax' but softmax is only supported at the output layer \(activations\[1\]\)",
        ):
            MLP([4, 8, 3], ["softmax", "softmax"])

    def test_labels_out_of_range(self):
        m = small_classifier()
        X, _ = data(3)
        with pytest.raises(
            ValueError,
            match=(
                r"y contains label 3 at index 1 but the output layer has 3 units, so "
                r"labels must be integers in 0..2"
            ),
        ):
            m.fit(X, [0, 3, 1], epochs=1, learning_rate=0.1)
        with pytest.raises(ValueError, match=r"label -1 at index 2"):
            m.fit(X, [0, 1, -1], epochs=1, learning_rate=0.1)
        with pytest.raises(ValueError, match=r"non-integral value 0.5 at index 0"):
            m.fit(X, [0.5, 1.0, 2.0], epochs=1, learning_rate=0.1)
        sig = MLP([4, 3, 1], ["relu", "sigmoid"], seed=0)
        with pytest.raises(
            ValueError,
            match=(
                r"0/1 labels for a sigmoid output with values in \[0, 1\], got 2.0"
            ),
        ):
            sig.fit(X, [0, 1, 2], epochs=1, learning_rate=0.1)

    def test_wrong_target_shapes(self):
        X, _ = data(3)
        with pytest.raises(
            ValueError,
            match=(
                r"y has shape \(3, 2\); for a softmax output with 3 units expected "
                r"integer labels of shape \(n,\) or one-hot targets of shape \(n, 3\)"
            ),
        ):
            small_classifier().fit(X, np.zeros((3, 2)), epochs=1, learning_rate=0.1)
        reg = MLP([4, 3, 2], ["relu", None], seed=0)
        with pytest.raises(
            ValueError,
            match=(
                r"y has shape \(3,\) but the output layer has 2 unit\(s\); expected "
                r"regression targets of shape \(n, 2\)"
            ),
        ):
            reg.fit(X, np.zeros(3), epochs=1, learning_rate=0.1)

    @pytest.mark.parametrize("bad", [0, -3])
    def test_batch_size_not_positive(self, bad):
        X, y = data()
        with pytest.raises(ValueError, match=rf"MLP.fit: batch_size must be an integer >= 1, got {bad}"):
            small_classifier().fit(X, y, epochs=1, learning_rate=0.1, batch_size=bad)

    def test_batch_size_wrong_type(self):
        X, y = data()
        with pytest.raises(TypeError, match="batch_size must be an integer >= 1, got 2.0"):
            small_classifier().fit(X, y, epochs=1, learning_rate=0.1, batch_size=2.0)

    def test_epochs_below_one(self):
        X, y = data()
        with pytest.raises(ValueError, match="MLP.fit: epochs must be an integer >= 1, got 0"):
            small_classifier().fit(X, y, epochs=0, learning_rate=0.1)

    @pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf")])
    def test_learning_rate_not_positive_or_nan(self, lr):
        X, y = data()
        m = small_classifier()
        with pytest.raises(ValueError, match=rf"MLP.fit: learning_rate must be a finite number > 0, got {lr!r}"):
            m.fit(X, y, epochs=1, learning_rate=lr)
        m.forward(X)
        m.backward(y)
        with pytest.raises(
            ValueError,
            match=(
                r"MLP.update: learning_rate must be a finite number > 0"
            ),
        ):
            m.update(lr)

    def test_backward_before_forward(self):
        with pytest.raises(
            RuntimeError,
            match=(
                r"MLP.backward called before forward: call forward\(X\) first"
            ),
        ):
            small_classifier().backward([0, 1])

    def test_backward_after_update_or_predict_needs_a_new_forward(self):
        X, y = data()
        m = small_classifier()
        m.forward(X)
        m.backward(y)
        m.update(0.1)
        with pytest.raises(RuntimeError, match="stale because update"):
            m.backward(y)
        m.forward(X)
        m.predict(X[:2])
        with pytest.raises(RuntimeError, match="caches hold the forward pass of predict"):
            m.backward(y)
        m.forward(X)
        assert math.isfinite(m.backward(y))

    def test_update_before_backward(self):
        with pytest.raises(
            RuntimeError,
            match=(
                r"layer 1 has no gradients; call forward\(X\) and backward\(y\)"
            ),
        ):
            small_classifier().update(0.1)

    def test_seed_and_rng_together_and_bad_dtype(self):
        with pytest.raises(ValueError, match="either seed or rng"):
            MLP([2, 2], ["softmax"], seed=1, rng=np.random.default_rng(1))
        with pytest.raises(
            TypeError,
            match=(
                "MLP: dtype must be a floating-point dtype .* got int64"
            ),
        ):
            MLP([2, 2], ["softmax"], dtype=np.int64)

    def test_predict_proba_and_score_need_a_classifier(self):
        reg = MLP([1, 4, 1], ["tanh", None], seed=0)
        with pytest.raises(ValueError, match="predict_proba needs a softmax or sigmoid output"):
            reg.predict_proba(np.zeros((2, 1)))
        with pytest.raises(ValueError, match="score returns classification accuracy"):
            reg.score(np.zeros((2, 1)), np.zeros(2))

    def test_fit_rejects_nan_inputs(self):
        X, y = data()
        X[2, 1] = np.nan
        with pytest.raises(ValueError, match="X contains NaN"):
            small_classifier().fit(X, y, epochs=1, learning_rate=0.1)


# ---------------------------------------------------------------------------
# dtype
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("act_cls", ALL_ACTIVATIONS)
@pytest.mark.parametrize("out", ["softmax", None, "sigmoid"])
def test_float32_model_stays_float32(act_cls, out):
    X, y = data(10, 4, 3)  # float64 inputs are cast to the model dtype
    m = MLP([4, 5, 3], [act_cls(), out], seed=0, dtype=np.float32)
    if out == "sigmoid":
        y = (np.eye(3)[y] > 0).astype(np.int64)
    elif out is None:
        y = np.random.default_rng(0).normal(size=(10, 3))
    a = m.forward(X)
    assert a.dtype == np.float32
    loss = m.backward(y)
    assert isinstance(loss, float) and math.isfinite(loss)
    for layer in m.layers:
        for arr in (layer.W, layer.b, layer.dW, layer.db, layer.z, layer.a, layer.a_prev):
            assert arr.dtype == np.float32
    m.update(0.1)
    m.fit(X, y, epochs=2, learning_rate=0.1, batch_size=3)
    m.fit(X[:1], y[:1], epochs=1, learning_rate=0.1)  # batch-1 outer path
    assert all(layer.W.dtype == np.float32 and layer.b.dtype == np.float32 for layer in m.layers)
    assert all(layer.dW.dtype == np.float32 for layer in m.layers)
    if out is None:
        assert m.predict(X).dtype == np.float32
    else:
        assert m.predict_proba(X).dtype == np.float32


def test_float32_and_float64_same_seed_same_weights_and_close_training():
    X, y = blobs(n_samples=60, n_classes=3, seed=0)
    m64 = MLP([2, 8, 3], ["relu", "softmax"], seed=3)
    m32 = MLP([2, 8, 3], ["relu", "softmax"], seed=3, dtype=np.float32)
    for l64, l32 in zip(m64.layers, m32.layers):
        np.testing.assert_array_equal(l32.W, l64.W.astype(np.float32))
    h64 = m64.fit(X, y, epochs=20, learning_rate=0.1, batch_size=10)
    h32 = m32.fit(X, y, epochs=20, learning_rate=0.1, batch_size=10)
    np.testing.assert_allclose(h32, h64, rtol=1e-4)


# ---------------------------------------------------------------------------
# Output-layer rules and label formats
# ---------------------------------------------------------------------------


def test_backward_returns_the_matching_loss():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 3))
    labels = rng.integers(0, 2, size=6)
    Y = np.eye(2)[labels]
    soft = MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    assert soft.backward.__self__ is soft
    out = soft.forward(X)
    np.testing.assert_array_equal(out, soft.layers[-1].a)
    assert not np.shares_memory(out, soft.layers[-1].a)     # a copy: the cache stays as is
    assert soft.backward(labels) == pytest.approx(cross_entropy_loss(soft.layers[-1].a, Y))
    reg = MLP([3, 4, 2], ["relu", None], seed=0)
    reg.forward(X)
    assert reg.backward(Y) == pytest.approx(mse_loss(reg.layers[-1].a, Y))
    sig = MLP([3, 4, 1], ["relu", "sigmoid"], seed=0)
    sig.forward(X)
    assert sig.backward(labels) == pytest.approx(
        binary_cross_entropy_loss(sig.layers[-1].a, labels.reshape(-1, 1))
    )


@pytest.mark.parametrize("out", ["softmax", None, "sigmoid"])
def test_output_delta_is_a_minus_y_over_n(out):
    """softmax+CE, linear+MSE and sigmoid+BCE all start backprop with δ^(L) = (a - y)/n."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(5, 3))
    m = MLP([3, 4, 2], ["tanh", out], seed=0)
    y = (rng.random((5, 2)) > 0.5).astype(float)
    if out == "softmax":
        y = np.eye(2)[rng.integers(0, 2, size=5)]
    a = m.forward(X)
    m.backward(y)
    delta = (a - y) / 5
    np.testing.assert_allclose(m.layers[1].dW, delta.T @ m.layers[0].a, rtol=1e-12)
    np.testing.assert_allclose(m.layers[1].db, delta.sum(axis=0), rtol=1e-12)


def test_other_output_activation_uses_mse_through_its_backward():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(5, 3))
    y = rng.normal(size=(5, 2)) * 0.5
    m = MLP([3, 4, 2], ["relu", Tanh()], seed=0)
    a = m.forward(X)
    loss = m.backward(y)
    assert loss == pytest.approx(np.sum((a - y) ** 2) / 10)
    delta = (a - y) / 5 * (1 - a**2)  # tanh'(z) = 1 - tanh(z)^2
    np.testing.assert_allclose(m.layers[1].dW, delta.T @ m.layers[0].a, rtol=1e-10)


def test_label_formats_give_identical_gradients():
    X, y = data(6, 4, 3)
    grads = []
    for target in (y, np.eye(3)[y], y.astype(float), list(y)):
        m = small_classifier()
        m.forward(X)
        loss = m.backward(target)
        grads.append((loss, m.layers[0].dW.copy()))
    for loss, dW in grads[1:]:
        assert loss == grads[0][0]
        np.testing.assert_array_equal(dW, grads[0][1])

    X2, y2 = xor()
    sig_grads = []
    for target in (y2, y2.reshape(-1, 1), y2.astype(bool), y2.astype(float)):
        m = MLP([2, 4, 1], ["relu", "sigmoid"], seed=0)
        m.forward(X2)
        sig_grads.append(m.backward(target))
    assert len(set(sig_grads)) == 1

    Xs, ys = sine(n_samples=10, seed=0)
    reg_losses = []
    for target in (ys, ys[:, 0]):
        m = MLP([1, 3, 1], ["tanh", None], seed=0)
        m.forward(Xs)
        reg_losses.append(m.backward(target))
    assert reg_losses[0] == reg_losses[1]


def test_predict_predict_proba_score_shapes_and_types():
    X, y = blobs(n_samples=30, n_classes=3, seed=1)
    m = MLP([2, 6, 3], ["relu", "softmax"], seed=0)
    m.fit(X, y, epochs=30, learning_rate=0.3)
    proba = m.predict_proba(X)
    assert proba.shape == (30, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    pred = m.predict(X)
    assert pred.shape == (30,) and pred.dtype.kind == "i"
    np.testing.assert_array_equal(pred, proba.argmax(axis=1))
    acc = m.score(X, y)
    assert acc == pytest.approx(np.mean(pred == y))
    assert m.score(X, np.eye(3)[y]) == acc
    proba[:] = 0  # predict_proba returns a copy, not the cache
    assert m.predict_proba(X).sum() == pytest.approx(30)

    Xx, yx = xor()
    sig = MLP([2, 4, 1], ["relu", "sigmoid"], seed=0)
    p = sig.predict_proba(Xx)
    assert p.shape == (4, 1)
    np.testing.assert_array_equal(sig.predict(Xx), (p[:, 0] > 0.5).astype(int))
    assert sig.predict(Xx).shape == (4,)

    reg = MLP([1, 3, 2], ["tanh", None], seed=0)
    assert reg.predict(np.zeros((5, 1))).shape == (5, 2)


def test_backward_twice_does_not_accumulate():
    X, y = data()
    m = small_classifier()
    m.forward(X)
    m.backward(y)
    first = [layer.dW.copy() for layer in m.layers]
    m.backward(y)
    for layer, dW in zip(m.layers, first):
        np.testing.assert_array_equal(layer.dW, dW)


def test_zero_grad_makes_update_a_no_op():
    X, y = data()
    m = small_classifier()
    m.forward(X)
    m.backward(y)
    m.zero_grad()
    before = [layer.W.copy() for layer in m.layers]
    m.update(1.0)
    for layer, W in zip(m.layers, before):
        np.testing.assert_array_equal(layer.W, W)
        assert not layer.dW.any() and not layer.db.any()


def test_update_is_gradient_descent_in_place():
    X, y = data()
    m = small_classifier()
    W_ref = [layer.W for layer in m.layers]
    m.forward(X)
    m.backward(y)
    expected = [(layer.W - 0.5 * layer.dW, layer.b - 0.5 * layer.db) for layer in m.layers]
    m.update(0.5)
    for layer, W_obj, (W, b) in zip(m.layers, W_ref, expected):
        assert layer.W is W_obj
        np.testing.assert_allclose(layer.W, W, rtol=1e-15)
        np.testing.assert_allclose(layer.b, b, rtol=1e-15)


# ---------------------------------------------------------------------------
# fit details
# ---------------------------------------------------------------------------


def test_epoch_loss_is_sample_weighted_average_of_batch_losses():
    """With a tiny learning rate the weights hardly move, so the epoch loss must equal the
    full-data loss; an unweighted mean would over-count the 1-sample last batch."""
    X, y = blobs(n_samples=21, n_classes=3, seed=2)
    m = MLP([2, 5, 3], ["relu", "softmax"], seed=0)
    m.forward(X)
    full = m.backward(y)
    history = m.fit(X, y, epochs=1, learning_rate=1e-12, batch_size=10)
    assert history[0] == pytest.approx(full, rel=1e-9)


def test_fit_does_not_modify_inputs_and_rejects_batch_size_above_n():
    X, y = data(7)
    X0, y0 = X.copy(), y.copy()
    a = small_classifier(seed=1)
    b = small_classifier(seed=1)
    # batch_size > n is a mistake (the reliability issue): a clear error, nothing trained
    with pytest.raises(ValueError, match="batch_size=100 is larger than the 7 training samples"):
        a.fit(X, y, epochs=3, learning_rate=0.1, batch_size=100)
    ha = a.fit(X, y, epochs=3, learning_rate=0.1)
    hb = b.fit(X, y, epochs=3, learning_rate=0.1, batch_size=7)
    np.testing.assert_allclose(ha, hb)  # batch_size = n is one (shuffled) batch of n
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)


def test_fit_full_batch_does_not_use_the_rng():
    X, y = data()
    m = small_classifier(seed=5)
    state = copy.deepcopy(m.rng.bit_generator.state)
    m.fit(X, y, epochs=2, learning_rate=0.1)
    assert m.rng.bit_generator.state == state
    m.fit(X, y, epochs=1, learning_rate=0.1, batch_size=3)
    assert m.rng.bit_generator.state != state


def test_fit_verbose_prints_every_n_epochs(capsys):
    X, y = data()
    history = small_classifier().fit(X, y, epochs=10, learning_rate=0.1, verbose=True, verbose_every=4)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[1] for line in lines] == ["1/10", "4/10", "8/10", "10/10"]
    assert lines[-1].endswith(f"{history[-1]:.6f}")
    small_classifier().fit(X, y, epochs=3, learning_rate=0.1)
    assert capsys.readouterr().out == ""


def test_fit_stops_when_the_loss_diverges():
    # The reliability issue: like nn.MLP.fit, stop at the first bad batch (raise by
    # default, warn when asked) instead of warning at the end of an epoch of garbage.
    X, y = sine(n_samples=20, seed=0)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError,
                                                  match=r"MLP.fit: the loss .* at epoch \d+, batch 1"):
        MLP([1, 8, 1], ["relu", None], seed=0).fit(X * 100, y, epochs=30, learning_rate=10.0)
    m = MLP([1, 8, 1], ["relu", None], seed=0)
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="MLP.fit: the loss"):
        history = m.fit(X * 100, y, epochs=30, learning_rate=10.0, on_nonfinite="warn")
    assert len(history) < 30 and all(math.isfinite(h) for h in history)
    assert all(np.isfinite(layer.W).all() for layer in m.layers)


# ---------------------------------------------------------------------------
# Docstrings carry the spec's math
# ---------------------------------------------------------------------------


def test_docstrings_state_the_spec_math():
    module_doc = nn.manual.__doc__
    assert "z^(l) = a^(l-1) W^(l)T + b^(l)" in module_doc
    assert "δ^(l) = (δ^(l+1) W^(l+1)) ⊙ f'^(l)(z^(l))" in module_doc
    mlp_doc = MLP.__doc__
    for rule in ('"softmax"', "None", "Sigmoid", "any other activation"):
        assert rule in mlp_doc
    assert "δ^(L) = (a^(L) - Y) / n" in mlp_doc
    assert "dW = delta^T a_prev" in Layer.__doc__
    assert "1/2n" in mse_loss.__doc__


# ---------------------------------------------------------------------------
# Found by an adversarial review: silent wrong answers of the manual MLP
# ---------------------------------------------------------------------------


def test_softmax_targets_whose_rows_do_not_sum_to_one_are_refused_by_both_mlps():
    X = np.ones((3, 3))
    Y = np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    for make in (lambda: MLP([3, 4, 3], ["tanh", "softmax"], seed=0),
                 lambda: nn.MLP([3, 4, 3], ["tanh", "softmax"], seed=0)):
        model = make()
        with pytest.raises(ValueError, match=r"target row 0 sums to 2"):
            model.fit(X, Y, epochs=1, learning_rate=0.1)
    manual = MLP([3, 4, 3], ["tanh", "softmax"], seed=0)
    manual.forward(X)
    with pytest.raises(ValueError, match=r"MLP.backward: target row 0 sums to 2"):
        manual.backward(Y)
    soft = np.array([[0.2, 0.3, 0.5]] * 3)             # soft targets that are distributions
    manual.forward(X)
    assert math.isfinite(manual.backward(soft))


def test_backward_does_not_see_changes_to_X_or_to_the_returned_output():
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((5, 3)), rng.integers(0, 3, 5)
    m = MLP([3, 4, 3], ["tanh", "softmax"], seed=0)
    m.forward(X)
    m.backward(y)
    expected = [layer.dW.copy() for layer in m.layers]
    out = m.forward(X)
    X[:] = 0.0                                          # the caller's input, in place
    out[:] = 0.5                                        # and the returned probabilities
    m.backward(y)
    for layer, dW in zip(m.layers, expected):
        np.testing.assert_array_equal(layer.dW, dW)


def test_one_activation_object_given_to_two_models_is_not_shared():
    act = Tanh()
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((4, 3)), rng.integers(0, 2, 4)
    m1 = MLP([3, 4, 2], [act, "softmax"], seed=0)
    m2 = MLP([3, 4, 2], [act, "softmax"], seed=0)
    assert m1.layers[0].activation is act and m2.layers[0].activation is not act
    m1.forward(X)
    m1.backward(y)
    expected = m1.layers[0].dW.copy()
    m1.forward(X)
    m2.forward(3 * X)                                   # would overwrite a shared cache
    m1.backward(y)
    np.testing.assert_array_equal(m1.layers[0].dW, expected)


@pytest.mark.parametrize("graph_first", [False, True])
def test_one_activation_object_given_to_a_manual_and_a_graph_mlp_is_not_shared(graph_first):
    # One list for both models (the cross-check set-up): the graph model's forward must not
    # leave its cache in the object the manual model's backward reads.
    act = ReLU()
    rng = np.random.default_rng(0)
    X1, X2 = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    y = np.array([0, 1, 2, 0, 1])
    acts_ = [act, "softmax"]
    if graph_first:
        g = nn.MLP([3, 4, 3], acts_, seed=0)
        m = MLP([3, 4, 3], acts_, seed=0)
    else:
        m = MLP([3, 4, 3], acts_, seed=0)
        g = nn.MLP([3, 4, 3], acts_, seed=0)
    first, second = (g.layers[1], m.layers[0]) if graph_first else (m.layers[0], g.layers[1])
    assert first.activation is act and second.activation is not act
    m.forward(X1)
    m.backward(y)
    expected = m.layers[0].dW.copy()
    m.forward(X1)
    g.loss(X2, y).backward()                            # would overwrite a shared cache
    m.backward(y)
    np.testing.assert_array_equal(m.layers[0].dW, expected)


class _LockedReLU(ReLU):
    """An activation that cannot be deep-copied (it holds a lock)."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()


class _EqualReLU(ReLU):
    """An activation with __eq__ and so no __hash__ (a WeakSet could not hold it)."""

    def __eq__(self, other):
        return isinstance(other, _EqualReLU)


class _SlottedReLU:
    """A duck-typed activation that cannot be weakly referenced."""
    __slots__ = ("cache",)
    name = "slotted_relu"

    def __init__(self):
        self.cache = None

    def forward(self, x):
        self.cache = np.asarray(x)
        return np.maximum(self.cache, 0.0)

    def backward(self, grad_output):
        return grad_output * (self.cache > 0)


def test_activation_objects_that_are_hard_to_track_are_still_never_shared():
    # these slipped through the ownership check silently (its except TypeError also caught
    # the failed copy and the failed hash), and the two models shared one cache
    for make in (_EqualReLU, _SlottedReLU):
        act = make()
        m = MLP([3, 4, 2], [act, "softmax"], seed=0)
        g = nn.MLP([3, 4, 2], [act, "softmax"], seed=0)
        assert m.layers[0].activation is not g.layers[1].activation
        assert (m.layers[0].activation is act) == (make is _EqualReLU)   # untrackable: copied
    act = _LockedReLU()
    MLP([3, 4, 2], [act, "softmax"], seed=0)
    with pytest.raises(TypeError, match=r"^nn\.MLP: activations\[0\]: the activation object "
                                        r"_LockedReLU\(\) is already used by a layer of another "
                                        r"MLP.*cannot be copied.*give each layer and each model "
                                        r"a new instance"):
        nn.MLP([3, 4, 2], [act, "softmax"], seed=0)


def test_score_of_a_multi_unit_sigmoid_with_class_labels_counts_samples():
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    for model in (MLP([4, 3], ["sigmoid"], seed=0), nn.MLP([4, 3], ["sigmoid"], seed=0)):
        proba = model.predict_proba(X)
        assert model.score(X, y) == pytest.approx(np.mean(np.argmax(proba, axis=1) == y))
        for layer_W in ([model.layers[0].W] if isinstance(model, MLP)
                        else [model.linears[0].W.data]):
            layer_W[...] = 0.0                           # every unit at 0.5: no class chosen
        if isinstance(model, MLP):
            model.layers[0].b[...] = -100.0
        else:
            model.linears[0].b.data[...] = -100.0
        # all units say "no": a per-unit count would read 2/3, per sample it is argmax's luck
        assert model.score(X, y) == pytest.approx(np.mean(y == 0))


def test_multi_unit_sigmoid_accuracy_follows_how_y_is_given_not_its_values():
    """A 0/1 matrix is multi-label: every unit is scored, also when each row happens to hold
    one 1 (that once switched to per-sample accuracy, so adding one row with two 1s moved
    the score from 1.0 to 0.73 for a model that always answers [1, 1, 0])."""
    X = np.random.default_rng(3).standard_normal((4, 2))
    for model in (MLP([2, 3], ["sigmoid"], seed=0), nn.MLP([2, 3], ["sigmoid"], seed=0)):
        W, b = ((model.layers[0].W, model.layers[0].b) if isinstance(model, MLP)
                else (model.linears[0].W.data, model.linears[0].b.data))
        W[...] = 0.0
        b[...] = [50.0, 50.0, -50.0]                     # always [1, 1, 0]
        one_hot = np.tile([1.0, 0.0, 0.0], (4, 1))
        assert model.score(X, one_hot) == pytest.approx(2 / 3)          # per unit
        assert model.score(X, np.zeros(4, int)) == 1.0                   # labels: argmax
        more = np.vstack([one_hot, [1.0, 1.0, 0.0]])
        assert model.score(np.vstack([X, X[:1]]), more) == pytest.approx(11 / 15)
    graph = nn.MLP([2, 3], ["sigmoid"], seed=0)
    h = graph.fit(X, one_hot, epochs=1, learning_rate=1e-9, validation_data=(X, np.zeros(4, int)))
    assert h.train_accuracy[0] == pytest.approx(graph.score(X, one_hot))
    assert h.val_accuracy[0] == pytest.approx(graph.score(X, np.zeros(4, int)))


@pytest.mark.parametrize("kind", ["manual", "graph"])
def test_values_that_overflow_the_model_dtype_are_refused_after_the_cast(kind):
    make = {"manual": MLP, "graph": nn.MLP}[kind]
    model = make([2, 3], ["softmax"], seed=0, dtype=np.float32)
    # (the message said "X contains ... inf" of finite data: it names the overflow now)
    with pytest.raises(ValueError, match=r"\.predict: X holds 1 value\(s\) too large for the "
                                         r"model's float32 \(the first, 1e\+39, at index \[0, "
                                         r"0\]\); they become infinite when converted"):
        model.predict(np.array([[1e39, 1.0]]))
    with pytest.raises(ValueError, match=r"X contains NaN or infinite values \(0 NaN, 1 inf"):
        model.predict(np.array([[np.inf, 1.0]]))
    reg = make([2, 1], [None], seed=0, dtype=np.float32)
    with pytest.raises(ValueError, match=r"\.fit: y holds 1 value\(s\) too large for the "
                                         r"model's float32 \(the first, 1e\+39, at index 0\)"):
        reg.fit(np.ones((2, 2)), np.array([1e39, 0.0]), epochs=1, learning_rate=0.1)


def test_softmax_of_no_classes_and_masked_inputs_are_named_errors():
    with pytest.raises(ValueError, match=r"softmax: z has shape \(3, 0\); expected at least one"):
        softmax(np.zeros((3, 0)))
    masked = np.ma.masked_array(np.ones((2, 2)), mask=[[0, 1], [0, 0]])
    for model in (MLP([2, 3], ["softmax"], seed=0), nn.MLP([2, 3], ["softmax"], seed=0)):
        with pytest.raises(TypeError, match=r"X is a masked array; its mask would be ignored"):
            model.predict(masked)


@pytest.mark.parametrize("shape, bad", [
    ((3_000, 784), (2_999, 783)),      # 2.35 M numbers: checked in slices of the first axis
    ((3_000, 784), (0, 0)),
    ((2_500_000,), (1_234_567,)),
    ((40, 300, 100), (39, 0, 5)),
    ((2, 1_500_000), (1, 1_499_999)),  # wide: taken flat in 1 M slices, not row by row
])
def test_large_arrays_are_checked_for_nan_and_inf_in_slices(shape, bad):
    from nn._spec_mlp import _FINITE_CHUNK, _all_finite, _check_finite
    arr = np.ones(shape, dtype=np.float32)
    assert arr.size > _FINITE_CHUNK and _all_finite(arr)
    _check_finite("check", "X", arr)
    arr[bad] = np.inf
    assert not _all_finite(arr)
    index = re.escape(str(list(bad) if len(bad) > 1 else bad[0]))
    with pytest.raises(ValueError, match=r"X contains NaN or infinite values \(0 NaN, 1 inf; "
                                         rf"the first at index {index}"):
        _check_finite("check", "X", arr)
    # finite values whose sum overflows are finite (the check used to be a sum)
    big = np.full(shape, 3e38, dtype=np.float32)
    assert _all_finite(big) and _all_finite(big[:10])
