"""Diverging training and numerical trouble: fit stops at the first bad batch (raise or
warn) before updating the weights with it; detect_anomaly names the op, the shapes and
ranges, the backward node and the user's line."""
from __future__ import annotations

import math
import re
import threading
from pathlib import Path

import numpy as np
import pytest

import activations
import nn
import tinygraph as tg

KINDS = {"graph": nn.MLP, "manual": nn.manual.MLP}


def _weights(model):
    if isinstance(model, nn.MLP):
        return [a.copy() for lin in model.linears for a in (lin.W.data, lin.b.data)]
    return [a.copy() for layer in model.layers for a in (layer.W, layer.b)]


def _set_weights(model, value):
    if isinstance(model, nn.MLP):
        for lin in model.linears:
            lin.W.data[...] = value
    else:
        for layer in model.layers:
            layer.W[...] = value


def _sine(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-3, 3, size=(n, 1))
    return X, np.sin(X[:, 0])


@pytest.mark.parametrize("kind", KINDS)
def test_diverging_fit_raises_naming_epoch_and_batch_with_weights_untouched(kind):
    X, y = _sine()
    model = KINDS[kind]([1, 16, 1], ["tanh", None], seed=0)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError) as info:
        model.fit(100 * X, y, epochs=50, learning_rate=0.5, batch_size=10)
    message = str(info.value)
    found = re.search(r"epoch (\d+), batch (\d+)", message)
    assert found and "learning_rate=0.5" in message, message
    epoch = int(found.group(1))
    assert epoch > 1 and int(found.group(2)) > 1, message     # (epoch 2, batch 2)
    state = "weights, optimizer and shuffling state" if kind == "graph" else \
        "weights and shuffling state"
    assert (f"Training stopped, and the model was put back as it was after epoch {epoch - 1} of "
            f"this fit (epochs_trained={epoch - 1}): {state}, so fit continues from there "
            f"exactly") in message
    assert all(np.isfinite(w).all() for w in _weights(model))
    assert model.epochs_trained == epoch - 1
    # the named epoch is the right one, and the model is exactly where a run one epoch
    # shorter ends (it held the updates of the failing epoch's good batches before)
    again = KINDS[kind]([1, 16, 1], ["tanh", None], seed=0)
    with np.errstate(all="ignore"):
        history = again.fit(100 * X, y, epochs=epoch - 1, learning_rate=0.5, batch_size=10)
    assert all(math.isfinite(h) for h in history)
    assert all(np.array_equal(a, b) for a, b in zip(_weights(model), _weights(again)))
    assert model.rng.bit_generator.state == again.rng.bit_generator.state


@pytest.mark.parametrize("kind", KINDS)
def test_warn_mode_stops_returns_the_completed_epochs_and_keeps_the_weights(kind):
    """An overflowing loss on the very first batch: the warning names epoch 1, batch 1,
    the history is empty and the weights are exactly the initial ones."""
    X, y = _sine()
    model = KINDS[kind]([1, 1], [None], seed=0)
    before = _weights(model)
    with pytest.warns(RuntimeWarning, match=r"the loss became inf at epoch 1, batch 1"):
        history = model.fit(1e200 * X, y, epochs=3, learning_rate=0.1, on_nonfinite="warn")
    assert list(history) == []
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))
    if kind == "graph":
        assert "epoch 1, batch 1" in history.stop_reason
        assert all(p.grad is None for p in model.parameters())
    # a clean fit afterwards works as usual
    assert len(model.fit(X, y, epochs=2, learning_rate=0.01)) == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_nonfinite_gradient_with_a_finite_loss_also_stops(kind):
    """z = w x with x = 1e160, w = 1e-10: the loss (~z²) is finite, the gradient
    dL/dw = (z - y) x overflows. Nothing is updated with it."""
    model = KINDS[kind]([1, 1], [None], seed=0)
    _set_weights(model, 1e-10)
    X = np.full((4, 1), 1e160)
    y = np.zeros(4)
    before = _weights(model)
    with pytest.raises(FloatingPointError, match=r"gradient .*W.* became NaN or infinite .*loss "
                                                 r"was .*epoch 1, batch 1"):
        model.fit(X, y, epochs=1, learning_rate=0.1)
    assert all(np.array_equal(a, b) for a, b in zip(before, _weights(model)))


@pytest.mark.parametrize("kind", KINDS)
def test_exploding_but_finite_loss_is_caught_by_both_mlps_at_the_same_batch(kind):
    """The stable fused softmax-cross-entropy never overflows: an exploding loss stays
    finite (1e20 and more) while the network dies; the manual MLP's spec loss clips
    probabilities at 1e-12, so it stays below 27.6. fit watches the loss computed from the
    logits in both, and stops both at the same batch with the same message."""
    X = np.random.default_rng(0).standard_normal((6, 2)) * 1000
    y = np.array([0, 1, 2, 0, 1, 2])
    model = KINDS[kind]([2, 4, 3], ["relu", "softmax"], seed=0)
    with np.errstate(all="ignore"), pytest.raises(FloatingPointError) as info:
        model.fit(X, y, epochs=20, learning_rate=1e6, batch_size=2)
    assert re.search(r"the loss exploded to 1\.27\de\+20, more than 1e\+06 times its value on "
                     r"the first batch of this fit \(613\.8\) at epoch 1, batch 2", str(info.value))
    assert model.epochs_trained == 0


def _overflowing_fit(kind, **kwargs):
    """Inputs of 1e10 and a learning rate of 1e300: every loss and gradient is finite, but
    the first update itself overflows the first layer's weights."""
    X = np.random.default_rng(0).standard_normal((6, 2)) * 1e10
    model = KINDS[kind]([2, 4, 3], ["relu", "softmax"], seed=0)
    with np.errstate(all="ignore"):
        return model, model.fit(X, np.arange(6) % 3, learning_rate=1e300, **kwargs)


WEIGHT = {"graph": "layers.0.W", "manual": "layer 1 W"}
SECOND_WEIGHT = {"graph": "layers.2.W", "manual": "layer 2 W"}


@pytest.mark.parametrize("kind", KINDS)
def test_an_update_that_overflows_the_last_batch_is_not_returned_as_a_trained_model(kind):
    # fit used to return a normal history here, its model's weights NaN, without a word;
    # then it said the weights were lost: now they are put back
    with pytest.raises(FloatingPointError) as info:
        _overflowing_fit(kind, epochs=1)
    assert (f"the weights became NaN or infinite ({WEIGHT[kind]}) in an update at epoch 1 (found "
            f"at its end); learning_rate=1e+300" in str(info.value))
    assert ("Training stopped, and the model was put back as it was before this fit "
            "(epochs_trained=0)" in str(info.value))


@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_after_an_overflowing_update_puts_the_weights_back(kind):
    # batch 1's update overflows, batch 2's loss is NaN: the message said "stopped before
    # the weights were updated with it", as if the model held the last good weights; then
    # that the weights were lost
    holder = {}
    original = KINDS[kind].fit

    def fit(self, *args, **kwargs):
        holder["model"], holder["before"] = self, _weights(self)
        return original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(KINDS[kind], "fit", fit)
        with pytest.raises(FloatingPointError) as info:
            _overflowing_fit(kind, epochs=3, batch_size=3)
    message = str(info.value)
    assert "the loss became nan at epoch 1, batch 2" in message
    assert "put back as it was before this fit (epochs_trained=0)" in message
    model = holder["model"]
    assert all(np.array_equal(a, b) for a, b in zip(holder["before"], _weights(model)))
    with np.errstate(all="ignore"):                  # and it trains again at a sane rate
        assert len(model.fit(np.ones((6, 2)), np.arange(6) % 3, epochs=1,
                             learning_rate=0.01)) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_an_overflowing_update_is_reported_before_a_checkpoint_is_written(kind, tmp_path):
    path = tmp_path / "run.npz"
    with pytest.raises(FloatingPointError, match="the weights became NaN or infinite"):
        _overflowing_fit(kind, epochs=1, checkpoint=str(path))
    assert not path.exists()


@pytest.mark.parametrize("kind", KINDS)
def test_weights_broken_before_fit_are_refused_not_blamed_on_its_updates(kind):
    # A dead ReLU keeps loss and gradients finite: fit used to train, then blame its own last
    # update and the learning rate for an Inf set by hand before it started
    model = KINDS[kind]([2, 4, 3], ["relu", "softmax"], seed=0)
    _set_weights(model, 0.5)
    if kind == "graph":
        model.linears[0].b.data[1] = -np.inf
    else:
        model.layers[0].b[1] = -np.inf
    X = np.random.default_rng(0).standard_normal((8, 2))
    with pytest.raises(ValueError, match=rf"{WEIGHT[kind].replace('W', 'b')} is NaN or infinite "
                                         rf"before training"):
        model.fit(X, np.arange(8) % 3, epochs=1, learning_rate=0.1, batch_size=4)
    assert model.epochs_trained == 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_weight_of_another_dtype_set_by_hand_is_refused_before_training(kind):
    # The graph MLP trained a float64 weight in a float32 model as it was (part of every
    # step in float64), and only save() refused the model, after the training
    model = KINDS[kind]([2, 4, 3], ["relu", "softmax"], seed=0, dtype=np.float32)
    if kind == "graph":
        model.linears[1].W.data = model.linears[1].W.data.astype(np.float64)
    else:
        model.layers[1].W = model.layers[1].W.astype(np.float64)
    before = [a.copy() for _, a in model._named_weights()]
    X = np.random.default_rng(0).standard_normal((8, 2)).astype(np.float32)
    with pytest.raises(TypeError, match=rf"fit: {SECOND_WEIGHT[kind]} has dtype "
                                        r"float64, but this is a float32 model .*"
                                        r"\.astype\(np\.float32\)"):
        model.fit(X, np.arange(8) % 3, epochs=1, learning_rate=0.1, batch_size=4)
    assert model.epochs_trained == 0
    assert all(np.array_equal(a, b) for (_, a), b in zip(model._named_weights(), before))


def test_warn_mode_reports_an_overflowing_update_and_counts_no_epoch():
    with pytest.warns(RuntimeWarning, match=r"the weights became NaN or infinite \(layers.0.W\) "
                                            r"in an update"):
        model, history = _overflowing_fit("graph", epochs=2, on_nonfinite="warn")
    assert list(history) == [] and model.epochs_trained == 0
    assert history.stop_reason == ("the weights became NaN or infinite (layers.0.W) in an update "
                                   "at epoch 1")
    assert all(np.isfinite(w).all() for w in _weights(model))


@pytest.mark.parametrize("output", ["softmax", "sigmoid"])
def test_the_manual_mlps_watched_loss_is_its_loss_until_probabilities_clip(output):
    rng = np.random.default_rng(1)
    X = rng.standard_normal((8, 3))
    k = 3 if output == "softmax" else 1
    y = rng.integers(0, k if k > 1 else 2, size=8)
    model = nn.manual.MLP([3, 5, k], ["tanh", output], seed=0)
    targets = model._prepare_targets(y, "test", 8)
    model.forward(X)
    loss = model.backward(y)
    assert model._unclipped_loss(targets, loss) == pytest.approx(loss, rel=1e-12)
    # saturated logits: the spec loss is capped at -log(1e-12), the watched one is not
    last = model.layers[-1]
    last.W[...] *= 1e6
    model.forward(X)
    capped = model.backward(y)
    assert capped <= -math.log(1e-12) + 1e-9
    assert model._unclipped_loss(targets, capped) > 1e3
    graph = nn.MLP.from_manual(model)
    assert model._unclipped_loss(targets, capped) == pytest.approx(
        float(graph.loss(X, y).item()), rel=1e-9)


def test_reasonable_training_is_not_stopped():
    X, y = _sine(seed=3)
    for MLP in KINDS.values():
        history = MLP([1, 16, 1], ["tanh", None], seed=0).fit(X, y, epochs=30, learning_rate=0.05,
                                                              batch_size=8)
        assert len(history) == 30 and history[-1] < history[0]


# ---------------------------------------------------------------------------------------
# detect_anomaly
# ---------------------------------------------------------------------------------------

def test_anomaly_in_a_model_forward_names_op_inputs_and_the_users_line():
    model = nn.MLP([2, 4, 3], ["relu", "softmax"], seed=0)
    X = np.array([[1e308, 1e308], [1.0, 2.0]])
    with np.errstate(all="ignore"), tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError) as info:
            model.loss(X, [0, 1])          # the user's line
    message = str(info.value)
    assert "linear produced 0 NaN and 1 Inf" in message
    assert "input 0: shape (2, 2), range [1, 1e+308]" in message
    assert "input 1: shape (4, 2)" in message
    assert "test_diverging.py" in message and "model.loss(X, [0, 1])" in message
    via = re.search(r"\(via nn/layers.py:\d+ in forward\)", message).group(0)
    # docs/reliability.md quotes this message: its line number must be the real one
    docs = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert docs.count(via) == 2, (via, re.findall(r"\(via nn/layers.py:\d+ in forward\)", docs))


class _NanBackward(activations.Activation):
    """Identity forward, NaN backward: a broken hand-written derivative."""
    name = "nan_backward"

    def _forward(self, x):
        return x.copy(), np.zeros_like(x)

    def _backward(self, grad_output, cache):
        return grad_output * np.nan


def test_anomaly_in_backward_names_the_node_its_module_and_the_forward_line():
    model = nn.Sequential(nn.Linear(2, 3, rng=0), nn.ActivationLayer(_NanBackward()),
                          nn.Linear(3, 1, rng=1))
    x = tg.Tensor(np.ones((4, 2)))
    with tg.detect_anomaly():
        loss = model(x).sum()
        with pytest.raises(tg.AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert "_NanBackwardBackward (module '_NanBackward')" in message
    assert "returned a NaN or Inf gradient for input 0 (shape (4, 3), 12 NaN, 0 Inf)" in message
    assert "loss = model(x).sum()" in message


def test_anomaly_input_that_already_holds_nan_says_so():
    x = tg.Tensor([np.nan, 1.0], requires_grad=True)
    with tg.detect_anomaly(), pytest.raises(tg.AnomalyError, match=r"already 1 NaN and 0 Inf"):
        x * 2.0


def test_detect_anomaly_as_decorator_reentrant_and_per_thread():
    @tg.detect_anomaly()
    def step(t):
        return tg.log(t)

    with np.errstate(invalid="ignore"):
        with pytest.raises(tg.AnomalyError):
            step(tg.Tensor([-1.0], requires_grad=True))
        assert np.isnan(tg.log(tg.Tensor([-1.0], requires_grad=True)).data[0])   # off again
        outer = tg.detect_anomaly()
        with outer:
            with outer:
                pass
            with pytest.raises(tg.AnomalyError):     # still on after the inner exit
                tg.log(tg.Tensor([-1.0], requires_grad=True))
        seen = {}
        barrier = threading.Barrier(2, timeout=10)

        def other():
            barrier.wait()
            with np.errstate(invalid="ignore"):
                seen["value"] = tg.log(tg.Tensor([-1.0], requires_grad=True)).data[0]
            barrier.wait()

        t = threading.Thread(target=other)
        t.start()
        with tg.detect_anomaly():
            barrier.wait()                       # the other thread runs its op now
            barrier.wait()
        t.join()
    assert np.isnan(seen["value"])               # no anomaly mode in the other thread


# -- found by a stateful test of the model's lifecycle (session 14) ----------------------

def _three_classes(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return np.random.default_rng(0).standard_normal((n, 4)), np.arange(n) % 3


@pytest.mark.parametrize("stop", ["explosion", "interrupt"])
def test_an_optimizer_passed_to_fit_is_put_back_when_fit_stops_in_its_first_epoch(stop,
                                                                               monkeypatch):
    """The snapshot is taken before fit adopts the optimizer given; the caller still holds
    that object and would retry with the aborted epoch's steps in it."""
    X, y = _three_classes()
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    opt = nn.Adam(model.parameters(), lr=1e30 if stop == "explosion" else 1e-3)
    if stop == "explosion":
        with pytest.raises(FloatingPointError, match="put back as it was before this fit"):
            model.fit(X, y, epochs=1, batch_size=5, optimizer=opt)
    else:
        steps = []
        real_step = nn.Adam.step

        def step_then_interrupt(self):
            real_step(self)
            steps.append(1)
            if len(steps) == 3:
                raise KeyboardInterrupt
        monkeypatch.setattr(nn.Adam, "step", step_then_interrupt)
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y, epochs=1, batch_size=5, optimizer=opt)
        monkeypatch.setattr(nn.Adam, "step", real_step)
    assert model.optimizer is None and opt.t == 0 and opt.lr == (1e30 if stop == "explosion"
                                                                 else 1e-3)
    assert all(not m.any() for m in opt.m) and all(not v.any() for v in opt.v)
    # the retry is the run that never stopped, bit for bit
    opt.lr = 1e-3
    model.fit(X, y, epochs=1, batch_size=5, optimizer=opt)
    fresh = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    fresh.fit(X, y, epochs=1, batch_size=5, optimizer=nn.Adam(fresh.parameters(), lr=1e-3))
    assert opt.t == fresh.optimizer.t == 4
    for a, b in zip(model.parameters(), fresh.parameters()):
        np.testing.assert_array_equal(a.data, b.data)


def test_fit_continues_the_optimizers_kind_after_a_parameter_was_replaced():
    X, y = _three_classes()
    model = nn.MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    model.fit(X, y, epochs=1, learning_rate=1e-3, batch_size=5,
              optimizer=nn.Adam(model.parameters(), lr=1e-3, betas=(0.8, 0.9)))
    model.linears[0].W = tg.Tensor(model.linears[0].W.data.copy(), requires_grad=True)
    with pytest.warns(RuntimeWarning, match=r"model.optimizer \(Adam after 4 steps\) holds "
                                            r"parameters this model no longer has.*state is "
                                            r"dropped"):
        model.fit(X, y, epochs=1, batch_size=5)          # optimizer=None: continue
    assert type(model.optimizer) is nn.Adam and model.optimizer.betas == (0.8, 0.9)
    assert model.optimizer.lr == 1e-3 and model.optimizer.t == 4
    assert model.optimizer.params[0] is model.linears[0].W


@pytest.mark.parametrize("MLP", [nn.MLP, nn.manual.MLP])
def test_an_update_that_leaves_the_outputs_overflowing_is_not_returned_as_trained(MLP):
    """Weights finite but ~1e200 after the last update of an epoch: no batch loss sees
    them, but the next forward pass overflows."""
    rng = np.random.default_rng(0)
    X, Y = rng.standard_normal((24, 4)), rng.standard_normal((24, 3))
    model = MLP([4, 5, 3], ["leaky_relu", None], seed=0)
    before = [a.copy() for _, a in model._named_weights()]
    with pytest.raises(FloatingPointError, match=r"the model's outputs overflow to NaN or "
                                                 r"infinity \(its largest weight is .*e\+200 .*"
                                                 r"at epoch 1 \(found at its end\)"):
        model.fit(X, Y, epochs=1, learning_rate=1e200)
    assert model.epochs_trained == 0
    for a, (_, b) in zip(before, model._named_weights()):
        np.testing.assert_array_equal(a, b)
    assert np.isfinite(model.predict(X)).all()


@pytest.mark.parametrize("MLP", [nn.MLP, nn.manual.MLP])
def test_weights_too_large_before_fit_are_refused_not_blamed_on_its_learning_rate(MLP):
    X, y = _three_classes()
    model = MLP([4, 5, 3], ["relu", "softmax"], seed=0)
    for _, a in model._named_weights():
        a *= 1e200
    with pytest.raises(ValueError, match=r"fit: the model's outputs overflow to NaN or "
                                         r"infinity .* before training"):
        model.fit(X, y, epochs=1, learning_rate=1e-3)
    with pytest.raises(FloatingPointError, match="weights are so large that the forward pass "
                                                 "overflows"), np.errstate(all="ignore"):
        model.predict(X)
