"""``nn.MLP``, the spec's MLP built from tinygraph nodes: its constructor and
seeding against ``nn.manual.MLP``, weight copies both ways, step-by-step agreement of
training, the training UX (progress bar, validation history, divergence) and float32."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import nn
import nn.manual
import tinygraph as tg
from activations import GELU, LeakyReLU, ReLU, Sigmoid, SiLU, Tanh
from nn.data import blobs, load_digits, sine

ARCHS = [
    ([4, 6, 3], ["relu", "softmax"]),
    ([5, 7, 6, 2], [GELU(), Tanh(), "softmax"]),
    ([3, 8, 8, 8, 2], [SiLU(), LeakyReLU(alpha=0.1), Sigmoid(), None]),
    ([2, 4, 1], [ReLU(), Sigmoid()]),
]


def _fresh(acts):
    """New activation objects of the same kinds (each model needs its own)."""
    return [a if a is None or isinstance(a, str) else type(a)(**a.config()) for a in acts]


# ---------------------------------------------------------------------------
# Constructor and seeding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("sizes,acts", ARCHS)
@pytest.mark.parametrize("init_method", ["he", "xavier"])
def test_same_seed_same_initial_weights_as_manual(sizes, acts, init_method):
    g = nn.MLP(sizes, _fresh(acts), init_method=init_method, seed=42)
    m = nn.manual.MLP(sizes, _fresh(acts), init_method=init_method, seed=42)
    assert g.layer_sizes == m.layer_sizes == sizes
    assert len(g.linears) == len(m.layers) == len(sizes) - 1
    for lin, layer in zip(g.linears, m.layers):
        np.testing.assert_array_equal(lin.W.data, layer.W)
        np.testing.assert_array_equal(lin.b.data, layer.b)
        assert lin.W.shape == (layer.n_out, layer.n_in)
    other = nn.MLP(sizes, _fresh(acts), init_method=init_method, seed=43)
    assert not np.array_equal(other.linears[0].W.data, g.linears[0].W.data)


def test_same_seed_same_weights_float32():
    g = nn.MLP([6, 5, 3], ["tanh", "softmax"], seed=1, dtype=np.float32)
    m = nn.manual.MLP([6, 5, 3], ["tanh", "softmax"], seed=1, dtype=np.float32)
    for lin, layer in zip(g.linears, m.layers):
        assert lin.W.dtype == layer.W.dtype == np.float32
        np.testing.assert_array_equal(lin.W.data, layer.W)


def test_constructor_checks_like_manual():
    for bad_args, exc in [(([3], ["softmax"]), ValueError),
                          (([3, 2], ["relu", "softmax"]), ValueError),
                          (([3, 4, 2], ["softmax", "softmax"]), ValueError),
                          (([3, 4, 2], ["nope", "softmax"]), ValueError),
                          (([3, 4, 2], [ReLU, "softmax"]), TypeError)]:
        with pytest.raises(exc):
            nn.manual.MLP(*bad_args)
        with pytest.raises(exc):
            nn.MLP(*bad_args)
    with pytest.raises(ValueError):
        nn.MLP([3, 2], ["softmax"], init_method="uniform")
    with pytest.raises(TypeError):
        nn.MLP([3, 2], ["softmax"], dtype=np.int64)


def test_shared_activation_instance_is_copied_per_layer():
    act = Tanh()
    model = nn.MLP([3, 4, 4, 2], [act, act, "softmax"], seed=0)
    layers = [m for m in model.layers if isinstance(m, nn.ActivationLayer)]
    assert len(layers) == 2 and layers[0].activation is not layers[1].activation


def test_graph_structure_and_loss_nodes():
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    X = np.random.default_rng(0).normal(size=(6, 4))
    out = model(X)
    assert isinstance(out, tg.Tensor) and out.shape == (6, 3)
    # softmax output: model(X) is the logits; predict_proba is their softmax
    e = np.exp(out.data - out.data.max(axis=1, keepdims=True))
    np.testing.assert_allclose(model.predict_proba(X), e / e.sum(axis=1, keepdims=True),
                               rtol=1e-13)
    assert isinstance(model.loss_fn, nn.SoftmaxCrossEntropy)
    assert isinstance(nn.MLP([4, 1], [Sigmoid()], seed=0).loss_fn, nn.BCEWithLogits)
    assert isinstance(nn.MLP([4, 1], [None], seed=0).loss_fn, nn.MSELoss)
    assert isinstance(nn.MLP([4, 1], ["tanh"], seed=0).loss_fn, nn.MSELoss)
    loss = model.loss(X, np.array([0, 1, 2, 0, 1, 2]))
    assert loss.grad_fn.name == "SoftmaxCrossEntropyBackward"
    assert len(loss.grad_fn.parents) == 1 and loss.grad_fn.parents[0].name == "LinearBackward"
    kinds = [type(n).__name__ for n in tg.graph.nodes(loss)]
    assert kinds[0] == "_SoftmaxCrossEntropyNode"
    assert sum(k == "_ActivationNode" for k in kinds) == 1


def test_compute_gradients_zeroes_first_and_returns_loss():
    model = nn.MLP([4, 5, 3], ["tanh", "softmax"], seed=0)
    X = np.random.default_rng(1).normal(size=(6, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    loss1 = model.compute_gradients(X, y)
    g1 = [p.grad.copy() for p in model.parameters()]
    loss2 = model.compute_gradients(X, y)
    assert isinstance(loss1, float) and loss1 == loss2
    for p, g in zip(model.parameters(), g1):
        np.testing.assert_array_equal(p.grad, g)  # not accumulated
    assert [(W is not None, b is not None) for W, b in model.gradients()] == [(True, True)] * 2


# ---------------------------------------------------------------------------
# Copying weights both ways
# ---------------------------------------------------------------------------


def test_fit_refuses_an_empty_validation_set_before_training():
    X, y = blobs(n_samples=30, n_classes=3, seed=1)
    model = nn.MLP([2, 4, 3], ["relu", "softmax"], seed=0)
    with pytest.raises(ValueError, match="validation_data has 0 samples"):
        model.fit(X, y, epochs=1, learning_rate=0.1, validation_data=(X[:0], y[:0]))
    assert model.epochs_trained == 0


def test_sigmoid_probabilities_keep_their_digits_far_below_zero():
    """σ(z) for very negative z is about e^z, not 0 (the manual MLP's value)."""
    manual = nn.manual.MLP([1, 1], ["sigmoid"], seed=0)
    manual.layers[0].W[...] = 1.0
    graph = nn.MLP.from_manual(manual)
    X = np.array([[-30.0], [-40.0], [-100.0], [-700.0], [40.0]])
    p = graph.predict_proba(X)
    np.testing.assert_allclose(p, manual.predict_proba(X), rtol=1e-13)
    np.testing.assert_allclose(p[:4, 0], np.exp(X[:4, 0]), rtol=1e-12)


@pytest.mark.parametrize("sizes,acts", ARCHS)
def test_from_manual_and_to_manual_give_same_predictions(sizes, acts):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(9, sizes[0]))
    manual = nn.manual.MLP(sizes, _fresh(acts), init_method="xavier", seed=5)
    for layer in manual.layers:
        layer.b[...] = rng.normal(size=layer.b.shape)
    graph = nn.MLP.from_manual(manual)
    assert graph.layer_sizes == manual.layer_sizes
    assert graph.output_kind == manual.output_kind
    np.testing.assert_allclose(graph.predict(X), manual.predict(X), rtol=1e-13, atol=1e-15)
    if manual.output_kind in ("softmax", "sigmoid"):
        np.testing.assert_allclose(graph.predict_proba(X), manual.predict_proba(X), rtol=1e-13)
    back = graph.to_manual()
    assert isinstance(back, nn.manual.MLP)
    for a, b in zip(back.layers, manual.layers):
        np.testing.assert_array_equal(a.W, b.W)
        np.testing.assert_array_equal(a.b, b.b)
    np.testing.assert_array_equal(back.predict(X), manual.predict(X))


def test_copies_are_independent():
    manual = nn.manual.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    graph = nn.MLP.from_manual(manual)
    W0 = manual.layers[0].W.copy()
    graph.linears[0].W.data[...] += 1.0
    np.testing.assert_array_equal(manual.layers[0].W, W0)
    back = graph.to_manual()
    back.layers[0].W[...] = 0.0
    assert np.all(graph.linears[0].W.data != 0.0)
    # each model has its own activation objects (own caches)
    assert manual.layers[0].activation is not graph.layers[1].activation
    assert back.layers[0].activation is not graph.layers[1].activation


def test_from_manual_keeps_float32_and_init_method():
    manual = nn.manual.MLP([3, 4, 2], ["gelu", "softmax"], init_method="xavier", seed=0,
                           dtype=np.float32)
    graph = nn.MLP.from_manual(manual)
    assert graph.dtype == np.float32 and graph.init_method == "xavier"
    assert all(p.dtype == np.float32 for p in graph.parameters())
    assert graph.to_manual().layers[0].W.dtype == np.float32


# ---------------------------------------------------------------------------
# Training: the graph MLP follows the manual MLP step by step
# ---------------------------------------------------------------------------

TRAIN_CASES = {
    "softmax_ce": ([2, 9, 7, 3], ["tanh", "relu", "softmax"], "classify"),
    "linear_mse": ([1, 12, 1], ["gelu", None], "regress"),
    "sigmoid_bce": ([2, 8, 1], ["silu", Sigmoid()], "binary"),
}


def _train_data(kind):
    if kind == "classify":
        return blobs(n_samples=101, n_classes=3, seed=4)
    if kind == "regress":
        return sine(n_samples=101, seed=4)
    X, y = blobs(n_samples=101, n_classes=2, seed=4)
    return X, y


@pytest.mark.parametrize("case", list(TRAIN_CASES))
@pytest.mark.parametrize("batch_size", [None, 1, 13])
def test_fit_follows_manual_fit_step_by_step(case, batch_size):
    sizes, acts, kind = TRAIN_CASES[case]
    X, y = _train_data(kind)
    epochs = 2 if batch_size == 1 else 6
    manual = nn.manual.MLP(sizes, _fresh(acts), seed=7)
    graph = nn.MLP(sizes, _fresh(acts), seed=7)
    h_m = manual.fit(X, y, epochs=epochs, learning_rate=0.05, batch_size=batch_size)
    h_g = graph.fit(X, y, epochs=epochs, learning_rate=0.05, batch_size=batch_size)
    assert isinstance(h_g, nn.History) and isinstance(h_g, list) and len(h_g) == epochs
    np.testing.assert_allclose(h_g, h_m, rtol=1e-10)
    assert h_g[-1] < h_g[0]
    for lin, layer in zip(graph.linears, manual.layers):
        np.testing.assert_allclose(lin.W.data, layer.W, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(lin.b.data, layer.b, rtol=1e-10, atol=1e-12)


def test_fit_different_seeds_shuffle_differently():
    X, y = blobs(n_samples=60, n_classes=3, seed=5)
    a = nn.MLP([2, 6, 3], ["relu", "softmax"], seed=1)
    b = nn.MLP([2, 6, 3], ["relu", "softmax"], seed=2)
    b.load_state_dict(a.state_dict())
    h_a = a.fit(X, y, epochs=3, learning_rate=0.1, batch_size=8)
    h_b = b.fit(X, y, epochs=3, learning_rate=0.1, batch_size=8)
    assert not np.allclose(h_a, h_b, rtol=1e-8)


def test_fit_with_adam_string_and_bad_optimizer():
    X, y = blobs(n_samples=60, n_classes=3, seed=6)
    model = nn.MLP([2, 8, 3], ["relu", "softmax"], seed=0)
    h = model.fit(X, y, epochs=15, learning_rate=0.01, batch_size=10, optimizer="adam")
    assert h[-1] < 0.5 * h[0]
    with pytest.raises(ValueError, match="optimizer"):
        model.fit(X, y, epochs=1, learning_rate=0.1, optimizer="rmsprop")


# ---------------------------------------------------------------------------
# Training UX
# ---------------------------------------------------------------------------


def test_verbose_shows_a_tqdm_progress_bar_on_stderr(capsys):
    X, y = blobs(n_samples=50, n_classes=3, seed=7)
    model = nn.MLP([2, 6, 3], ["relu", "softmax"], seed=0)
    history = model.fit(X, y, epochs=3, learning_rate=0.1, batch_size=16, verbose=True)
    err = capsys.readouterr().err
    assert "training" in err
    assert "100%" in err and "12/12" in err  # 3 epochs x 4 batches
    assert "batch" in err
    assert "epoch=3" in err
    assert f"loss={history[-1]:.4f}" in err
    model.fit(X, y, epochs=2, learning_rate=0.1, batch_size=16, verbose=False)
    quiet = capsys.readouterr()
    assert quiet.err == "" and quiet.out == ""


def test_validation_data_adds_one_entry_per_epoch():
    X, y = blobs(n_samples=90, n_classes=3, seed=8)
    Xv, yv = blobs(n_samples=30, n_classes=3, seed=9)
    model = nn.MLP([2, 8, 3], ["relu", "softmax"], seed=0)
    history = model.fit(X, y, epochs=4, learning_rate=0.1, batch_size=16,
                        validation_data=(Xv, yv))
    assert len(history) == len(history.val_loss) == len(history.val_accuracy) == 4
    assert len(history.train_accuracy) == 4
    assert all(0.0 <= a <= 1.0 for a in history.val_accuracy)
    # the last entries describe the final model
    assert history.val_accuracy[-1] == model.score(Xv, yv)
    assert history.train_accuracy[-1] == model.score(X, y)
    with tg.no_grad():
        assert history.val_loss[-1] == pytest.approx(float(model.loss(Xv, yv).item()), rel=1e-12)
    assert history.val_loss[-1] < history.val_loss[0]
    # without validation data the lists stay empty
    plain = nn.MLP([2, 8, 3], ["relu", "softmax"], seed=0).fit(X, y, epochs=2, learning_rate=0.1)
    assert plain.val_loss == [] and plain.val_accuracy == []
    with pytest.raises(TypeError):
        model.fit(X, y, epochs=1, learning_rate=0.1, validation_data=Xv)


def test_validation_data_for_regression_has_loss_only():
    X, y = sine(n_samples=60, seed=1)
    Xv, yv = sine(n_samples=20, seed=2)
    model = nn.MLP([1, 8, 1], ["tanh", None], seed=0)
    history = model.fit(X, y, epochs=3, learning_rate=0.1, batch_size=10, validation_data=(Xv, yv))
    assert len(history.val_loss) == 3 and history.val_accuracy == []
    assert history.train_accuracy == []


def _diverging_fit(epochs):
    """Regression on unscaled inputs (x in [-300, 300]) with learning_rate 1e6."""
    X, y = sine(n_samples=60, seed=3)
    model = nn.MLP([1, 16, 1], ["tanh", None], seed=0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        return model, model.fit(100 * X, y, epochs=epochs, learning_rate=1e6, batch_size=10)


def test_diverging_learning_rate_raises_floating_point_error():
    with pytest.raises(FloatingPointError) as info:
        _diverging_fit(epochs=20)
    message = str(info.value)
    found = re.search(r"epoch (\d+), batch (\d+)", message)
    assert found, message
    assert "learning_rate" in message
    epoch = int(found.group(1))
    # The named epoch is the right one: one epoch less trains without error (same seed,
    # same shuffles), and leaves finite weights behind.
    if epoch > 1:
        model, history = _diverging_fit(epochs=epoch - 1)
        assert len(history) == epoch - 1 and all(math.isfinite(h) for h in history)
        assert all(np.all(np.isfinite(p.data)) for p in model.parameters())


def test_diverging_learning_rate_on_unscaled_digits_raises():
    """The issue's example: learning_rate 1e6 on unscaled data must raise a
    FloatingPointError naming the epoch and batch. On the raw digits (pixels 0..16)
    the loss explodes (epoch-1 loss 1.7e20 here; 5.9e217 for [64, 256, 128, 10] on
    pixels scaled to 0..255) but, thanks to the stable fused softmax-cross-entropy,
    never becomes inf/NaN, so fit trains on silently with a dead network (the loss
    then stays at ~4.7e5). Detecting only non-finite losses misses this."""
    X, y = load_digits(scale=False)
    model = nn.MLP([64, 32, 10], ["relu", "softmax"], seed=0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        with pytest.raises(FloatingPointError, match=r"epoch \d+, batch \d+"):
            history = model.fit(X.astype(float), y, epochs=3, learning_rate=1e6,
                                batch_size=32)
            print("losses without an error:", list(history))


def test_sigmoid_output_gradient_matches_manual_when_saturated():
    """Spec: for a sigmoid output δ^(L) = (a^(L) - y)/n. When the output saturates on
    the wrong side (here z^(L) = 40 with y = 0, or -40 with y = 1: |z| beyond ~27.6 in
    float64, ~16 in float32), the manual MLP still gets δ = ±1/n and learns, while an
    autodiff gradient through BCE's clip of p (or 1 - p) to [1e-12, 1] is exactly 0, so
    a confidently wrong unit can never recover. The softmax output has no such problem
    (its loss node is fused on the logits); a sigmoid output needs the same."""
    rng = np.random.default_rng(12)
    X = rng.normal(size=(6, 2))
    y = np.array([0.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    manual = nn.manual.MLP([2, 3, 1], ["tanh", Sigmoid()], seed=0)
    manual.layers[1].W[...] = 0.0
    manual.layers[1].b[...] = 40.0          # p = 1 for every sample
    graph = nn.MLP.from_manual(manual)
    graph.compute_gradients(X, y)
    manual.forward(X)
    manual.backward(y)
    np.testing.assert_allclose(manual.layers[1].db, [0.5], rtol=1e-12)  # Σ (1 - y)/6
    np.testing.assert_allclose(graph.linears[1].b.grad, manual.layers[1].db, rtol=1e-10)
    report = nn.crosscheck(manual, X, y)
    assert report.ok, str(report)
    # and so training moves the output off the wrong saturated side
    before = float(graph.linears[1].b.data[0])
    graph.fit(X, y, epochs=1, learning_rate=1.0)
    assert graph.linears[1].b.data[0] < before


# ---------------------------------------------------------------------------
# float32
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("acts,y_kind", [(["relu", "softmax"], "labels"),
                                         (["tanh", None], "regress"),
                                         (["gelu", "sigmoid"], "binary")])
def test_float32_model_keeps_float32(acts, y_kind):
    rng = np.random.default_rng(9)
    X = rng.normal(size=(12, 3)).astype(np.float32)
    n_out = 1 if y_kind == "binary" else 3
    y = {"labels": rng.integers(0, 3, size=12),
         "regress": rng.normal(size=(12, 3)).astype(np.float32),
         "binary": rng.integers(0, 2, size=12).astype(np.float32)}[y_kind]
    model = nn.MLP([3, 5, n_out], acts, seed=0, dtype=np.float32)
    assert all(p.dtype == np.float32 for p in model.parameters())
    with tg.no_grad():
        assert model.loss(X, y).dtype == np.float32
        assert model(X).dtype == np.float32
    model.compute_gradients(X, y)
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    if y_kind == "regress":
        assert model.predict(X).dtype == np.float32
    else:
        assert model.predict_proba(X).dtype == np.float32
    for opt in ("sgd", "adam"):
        model.fit(X, y, epochs=2, learning_rate=0.01, batch_size=5, optimizer=opt)
        assert all(p.dtype == np.float32 for p in model.parameters())
        assert all(p.grad.dtype == np.float32 for p in model.parameters())


def test_float32_model_output_is_float32_for_float64_input():
    """Like the manual MLP (which casts its input to the model dtype), the graph MLP's
    forward must not silently compute in float64 when handed float64 data."""
    X = np.random.default_rng(10).normal(size=(4, 3))  # float64
    manual = nn.manual.MLP([3, 5, 2], ["relu", "softmax"], seed=0, dtype=np.float32)
    graph = nn.MLP([3, 5, 2], ["relu", "softmax"], seed=0, dtype=np.float32)
    assert manual.forward(X).dtype == np.float32
    assert graph.predict_proba(X).dtype == np.float32
    assert graph(X).dtype == np.float32


def test_float32_fit_close_to_float64():
    X, y = blobs(n_samples=80, n_classes=3, seed=11)
    h64 = nn.MLP([2, 8, 3], ["tanh", "softmax"], seed=0).fit(X, y, epochs=5, learning_rate=0.1,
                                                            batch_size=16)
    h32 = nn.MLP([2, 8, 3], ["tanh", "softmax"], seed=0, dtype=np.float32).fit(
        X, y, epochs=5, learning_rate=0.1, batch_size=16)
    np.testing.assert_allclose(h32, h64, rtol=1e-4)


def test_module_calls_label_their_nodes_for_pictures():
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    loss = model.loss(np.random.default_rng(0).normal(size=(2, 4)), [0, 1])
    labels = [n.module for n in tg.graph.nodes(loss)]
    assert labels == ["Loss", "Linear 2", "ReLU 1", "Linear 1"]
    plain = tg.Tensor([1.0], requires_grad=True) * 2.0      # outside any module: no label
    assert plain.grad_fn.module is None


class _Doubler(nn.Module):
    """Records one node in its own forward, and counts the calls of its own __call__."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return super().__call__(x)

    def forward(self, x):
        return x * 2.0


class _Scaler(nn.Module):
    def forward(self, x):
        return x * 3.0


def test_sequential_runs_each_child_under_its_own_label_as_calling_it_would():
    inner = nn.Sequential(_Scaler(), _Scaler())
    inner.label = "inner"
    doubler = _Doubler()
    net = nn.Sequential(nn.Linear(2, 2, rng=0), inner, doubler)
    net.label = "outer"
    y = net(tg.Tensor(np.ones((1, 2))))
    labels = [n.module for n in tg.graph.nodes(y)]
    assert labels == ["_Doubler", "_Scaler 2", "_Scaler 1", "Linear"]   # repeats numbered
    assert doubler.calls == 1                       # a child's own __call__ is kept
    with tg.scope("step"):                          # and the label in force is put back,
        with pytest.raises(tg.ShapeError):          # also when a child raises
            net(tg.Tensor(np.ones((1, 3))))
        z = tg.Tensor([1.0], requires_grad=True) * 2.0
    assert z.grad_fn.module == "step"


def test_a_module_that_raises_puts_the_outer_label_back():
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    with tg.scope("training step"):
        with pytest.raises(tg.ShapeError):
            model(np.zeros((2, 7)))                 # 7 features for a 4-input layer
        with pytest.raises(tg.ShapeError):           # the loss node refuses the targets
            model._loss(np.zeros((2, 4)), np.zeros((2, 5)))
        y = tg.Tensor([1.0], requires_grad=True) * 2.0
    assert y.grad_fn.module == "training step"


def test_sequential_of_an_activations_object_says_how_to_wrap_it():
    import activations
    with pytest.raises(TypeError, match=r"Sequential: item 1 is a ReLU, not a Module; wrap it as "
                                        r"nn\.ActivationLayer\(ReLU\(\)\)"):
        nn.Sequential(nn.Linear(4, 8), activations.ReLU())
    with pytest.raises(TypeError, match=r"item 0 is a int, not a Module$"):
        nn.Sequential(3)
    with pytest.raises(TypeError, match=r"item 0 is the class ReLU, not a Module; wrap it as "
                                        r"nn\.ActivationLayer\(ReLU\(\)\)"):
        nn.Sequential(activations.ReLU)


def test_fit_refuses_a_learning_rate_its_optimizer_would_ignore():
    model = nn.MLP([2, 3], ["softmax"], seed=0)
    X, y = np.ones((4, 2)), np.array([0, 1, 2, 0])
    opt = nn.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match=r"learning_rate=5\.0 but the optimizer given has "
                                         r"lr=0\.1, which it would train with"):
        model.fit(X, y, epochs=1, learning_rate=5.0, optimizer=opt)
    assert len(model.fit(X, y, epochs=1, learning_rate=0.1, optimizer=opt)) == 1
    assert len(model.fit(X, y, epochs=1, optimizer=opt)) == 1


def test_twins_made_after_training_shuffle_and_count_epochs_like_their_source():
    rng = np.random.default_rng(3)
    X, y = rng.standard_normal((40, 3)), rng.integers(0, 2, 40)
    manual = nn.manual.MLP([3, 5, 2], ["tanh", "softmax"], seed=0)
    manual.fit(X, y, epochs=2, learning_rate=0.1, batch_size=8)
    twin = nn.MLP.from_manual(manual)
    assert twin.epochs_trained == manual.epochs_trained == 2
    h_manual = manual.fit(X, y, epochs=2, learning_rate=0.1, batch_size=8)
    h_twin = twin.fit(X, y, epochs=2, learning_rate=0.1, batch_size=8, optimizer="sgd")
    np.testing.assert_allclose(h_twin, h_manual, rtol=1e-10)         # same batches, same steps
    back = twin.to_manual()
    assert back.epochs_trained == 4
    assert back.rng.bit_generator.state == twin.rng.bit_generator.state
    assert back.rng is not twin.rng


def test_sequential_numbers_repeated_layer_labels_so_pictures_tell_them_apart():
    from tinygraph import viz
    net = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ActivationLayer("relu"), nn.Linear(3, 3, rng=1),
                        nn.ActivationLayer("relu"), nn.Linear(3, 1, rng=2))
    assert [m.label for m in net] == ["Linear 1", "ReLU 1", "Linear 2", "ReLU 2", "Linear 3"]
    y = net(tg.Tensor(np.ones((1, 2)))).sum()
    source = viz.forward_graph(y).source
    for label in ("Linear 1", "Linear 2", "Linear 3", "ReLU 1", "ReLU 2"):
        assert f"label={label!r}".replace("'", '"') in source or f'label="{label}"' in source
    single = nn.Sequential(nn.Linear(2, 2), nn.ActivationLayer("tanh"))
    assert [m.label for m in single] == ["Linear", "Tanh"]                 # no repeats: as is



@pytest.mark.parametrize("output", ["softmax", "sigmoid", None])
def test_a_loss_on_an_empty_batch_is_refused_by_name_for_every_output(output):
    # a mean over 0 rows is 0/0: the softmax loss gave NaN and a numpy warning
    model = nn.MLP([3, 4, 2], ["tanh", output], seed=0)
    X, y = np.zeros((0, 3)), np.zeros(0, int)
    for call, where in ((model.loss, "nn.MLP.loss"),
                        (model.compute_gradients, "nn.MLP.compute_gradients")):
        with pytest.raises(ValueError, match=rf"^{where}: X has 0 samples \(shape \(0, 3\)\); "
                                             rf"expected at least one row"):
            call(X, y)


def test_fit_with_an_optimizer_object_names_its_learning_rate_when_it_diverges():
    # the message named the rate of the model's previous optimizer (0.001), not the 1000
    # the given optimizer trained with
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(16, 3)), rng.integers(0, 2, 16)
    model = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    model.fit(X, y, epochs=1, learning_rate=0.001, optimizer="sgd", batch_size=8)
    with pytest.raises(FloatingPointError, match=r"learning_rate=1000\.0"):
        model.fit(X * 100, y, epochs=3, optimizer=nn.SGD(model.parameters(), lr=1e3),
                  batch_size=4)


def test_optimizer_sgd_means_plain_gradient_descent_after_a_momentum_fit():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(16, 3)), rng.integers(0, 2, 16)
    model = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    momentum_sgd = nn.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.fit(X, y, epochs=1, optimizer=momentum_sgd)
    with pytest.warns(RuntimeWarning, match=r"replaces model.optimizer \(SGD with momentum 0.9"):
        model.fit(X, y, epochs=1, learning_rate=0.05, optimizer="sgd")
    assert model.optimizer is not momentum_sgd and model.optimizer.momentum == 0.0
    model.fit(X, y, epochs=1, optimizer=momentum_sgd)
    with pytest.warns(RuntimeWarning, match="its state is dropped"):
        model.fit(X, y, epochs=1, optimizer="sgd")      # a new plain SGD: the default rate
    assert model.optimizer.momentum == 0.0 and model.optimizer.lr == 0.01
    model.fit(X, y, epochs=1, optimizer=momentum_sgd)
    model.fit(X, y, epochs=1)                           # None: continue, momentum and all
    assert model.optimizer is momentum_sgd


def test_a_checkpoint_path_that_cannot_be_created_is_refused_before_training(tmp_path,
                                                                               monkeypatch):
    # os.access says yes to root everywhere (/proc, read-only mounts): the first epoch
    # trained, then the bare OSError of the temporary file named neither fit nor checkpoint
    import nn.serialize as serialize

    def refused(*args, **kwargs):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(serialize.tempfile, "mkstemp", refused)
    model = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    monkeypatch.setattr(model, "_loss", lambda *a: pytest.fail("trained before checking"))
    X, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"^nn\.MLP\.fit: checkpoint: cannot write .*run\.npz': "
                                         r"creating a file in .* failed \(Read-only file "
                                         r"system\); choose another path"):
        model.fit(X, y, epochs=1, learning_rate=0.1, checkpoint=tmp_path / "run.npz")
    with pytest.raises(OSError, match=r"save: cannot write .*m\.npz': Read-only file system") \
            as info:
        nn.save(model, tmp_path / "m.npz")
    assert info.value.errno == 30                      # kept: callers may test it


@pytest.mark.parametrize("make", [nn.MLP, nn.manual.MLP])
@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_predict_and_score_refuse_an_output_that_is_not_finite(make, output):
    # NaN weights (a fit that diverged in its last update, which fit does not check) gave
    # NaN probabilities, which argmax or the 0.5 threshold called class 0, silently
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(8, 3)), np.arange(8) % 3
    model = make([3, 4, 3], ["relu", output], seed=0)
    W = model.linears[0].W.data if make is nn.MLP else model.layers[0].W
    W[0, 0] = np.nan
    where = "nn.MLP" if make is nn.MLP else "MLP"
    for call, name in ((lambda: model.predict(X), "predict"), (lambda: model.score(X, y), "score")):
        with pytest.raises(FloatingPointError, match=rf"^{re.escape(where)}\.{name}: the model's "
                                                     rf"output is NaN or infinite for 8 of 8 "
                                                     rf"rows although X is finite"):
            call()
    assert np.isnan(model.predict_proba(X)).all()          # the probabilities show it


@pytest.mark.parametrize("state, hint", [("method", r"\(call it: other.state_dict\(\)\)"),
                                         ("model", r"\(pass its state: other.state_dict\(\)\)"),
                                         ("pairs", r"\(dict\(pairs\) makes one\)"),
                                         ("none", "NoneType$")])
def test_load_state_dict_of_something_not_a_dict_is_named(state, hint):
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    other = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=1)
    arg = {"method": other.state_dict, "model": other,
           "pairs": list(other.state_dict().items()), "none": None}[state]
    with pytest.raises(TypeError, match=r"^MLP.load_state_dict: state must be a dict of arrays "
                                        r"by parameter name, as state_dict\(\) returns, got a "
                                        r".*" + hint):
        model.load_state_dict(arg)


@pytest.mark.parametrize("value", [None, "weights"])
def test_load_state_dict_entry_that_is_no_array_is_named(value):
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    state = model.state_dict()
    state["layers.0.W"] = value
    with pytest.raises(ValueError, match=r"layers.0.W is .* in the state; expected an array of "
                                         r"shape \(5, 4\)"):
        model.load_state_dict(state)


def test_to_manual_names_a_weight_replaced_with_another_shape():
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    model.linears[1].W.data = np.zeros((3, 6))
    with pytest.raises(ValueError, match=r"nn.MLP.to_manual: layer 2's W has shape \(3, 6\), but "
                                         r"layer_sizes \[4, 5, 3\] needs \(3, 5\)"):
        model.to_manual()


@pytest.mark.parametrize("MLP", [nn.MLP, nn.manual.MLP], ids=["graph", "manual"])
def test_fit_warns_about_raw_uint8_pixels(MLP):
    # 0..255 inputs: the first batch's loss was ~5000, then the net sat at ln 10 (accuracy
    # 0.106 on Fashion-MNIST) without a word from fit
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, size=(20, 4), dtype=np.uint8)
    X[3, 2] = 255
    y = rng.integers(0, 3, size=20)
    model = MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    with pytest.warns(UserWarning, match=r"\.fit: X is uint8 with values up to 255, raw pixel "
                                         r"values\? .* X / 255\.0") as record:
        model.fit(X, y, epochs=1, learning_rate=0.01)
    assert record[0].filename == __file__            # (points at the caller's line)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.fit(X / 255.0, y, epochs=1, learning_rate=0.01)
        model.fit((X > 128).astype(np.uint8), y, epochs=1, learning_rate=0.01)   # 0/1 masks
