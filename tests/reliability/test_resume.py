"""Checkpoints and resume: 10 epochs in one go == 5, save, load in a fresh process, 5 more,
bit for bit (weights, optimizer state, shuffling random state, loss history)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nn
import nn.checkpoint
import nn.serialize

from _models import assert_same_model

ROOT = Path(__file__).resolve().parents[2]

# (kind, optimizer): the graph MLP with Adam and with SGD, and the manual MLP
SETUPS = [("graph", "adam"), ("graph", "sgd"), ("manual", None)]


def _data():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(53, 4))
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int) + (X[:, 3] > 1)
    return X, y


def _new(kind):
    MLP = nn.MLP if kind == "graph" else nn.manual.MLP
    return MLP([4, 16, 8, 3], ["relu", "tanh", "softmax"], seed=11)


def _fit(model, epochs, optimizer, **kwargs):
    X, y = _data()
    extra = {} if optimizer is None else {"optimizer": optimizer}
    lr = 0.01 if optimizer == "adam" else 0.1
    return list(model.fit(X, y, epochs=epochs, learning_rate=lr, batch_size=8, **extra, **kwargs))


@pytest.mark.parametrize("kind,optimizer", SETUPS)
def test_two_fits_of_5_equal_one_fit_of_10(kind, optimizer):
    once = _new(kind)
    h10 = _fit(once, 10, optimizer)
    twice = _new(kind)
    h5 = _fit(twice, 5, optimizer) + _fit(twice, 5, optimizer)
    assert h10 == h5
    assert_same_model(once, twice)
    assert once.epochs_trained == 10


_RESUME = r"""
import sys, json
sys.path.insert(0, sys.argv[1]); sys.path.insert(0, sys.argv[2])
import nn
import test_resume as T
model = nn.load(sys.argv[3])
history = T._fit(model, 5, None if sys.argv[5] == "None" else sys.argv[5])
model.save(sys.argv[4], optimizer=True)
print(json.dumps(history))
"""


@pytest.mark.parametrize("kind,optimizer", SETUPS)
def test_save_load_in_a_fresh_process_and_resume_is_bit_for_bit(tmp_path, kind, optimizer):
    reference = _new(kind)
    h10 = _fit(reference, 10, optimizer)
    first = _new(kind)
    h5 = _fit(first, 5, optimizer)
    first.save(tmp_path / "half.npz", optimizer=True)
    script = tmp_path / "resume.py"
    script.write_text(_RESUME)
    out = subprocess.run([sys.executable, str(script), str(ROOT), str(Path(__file__).parent),
                          str(tmp_path / "half.npz"), str(tmp_path / "done.npz"), str(optimizer)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    resumed = nn.load(tmp_path / "done.npz")
    assert h5 + json.loads(out.stdout) == h10
    reference_file = reference.save(tmp_path / "reference.npz", optimizer=True)
    assert_same_model(nn.load(reference_file), resumed)
    assert resumed.epochs_trained == 10


@pytest.mark.parametrize("kind,optimizer", SETUPS)
def test_checkpoint_every_k_epochs_and_resume_after_a_crash(tmp_path, monkeypatch, kind,
                                                            optimizer):
    saves = []
    real_save = nn.serialize.save

    def spy(model, path, *args, **kwargs):
        saves.append(model.epochs_trained)
        return real_save(model, path, *args, **kwargs)

    monkeypatch.setattr(nn.serialize, "save", spy)
    reference = _new(kind)
    h10 = _fit(reference, 10, optimizer, checkpoint=tmp_path / "run.npz", checkpoint_every=3)
    assert saves == [3, 6, 9, 10]
    # a run that "crashed" after its checkpoint at epoch 6 (we stop it at 7)
    crashed = _new(kind)
    _fit(crashed, 7, optimizer, checkpoint=tmp_path / "crash.npz", checkpoint_every=3)
    assert nn.load(tmp_path / "crash.npz").epochs_trained == 7   # the last epoch is saved too
    crashed6 = _new(kind)
    _fit(crashed6, 6, optimizer, checkpoint=tmp_path / "crash6.npz", checkpoint_every=3)
    model, remaining = nn.checkpoint.resume(tmp_path / "crash6.npz", epochs=10)
    assert remaining == 4
    tail = _fit(model, remaining, optimizer)
    assert tail == h10[6:]
    assert_same_model(reference, model)
    # the saves follow the model's epochs, not this fit's: resumed at 7, every 3 -> 9, 12, 13
    saves.clear()
    resumed = nn.load(tmp_path / "crash.npz")
    _fit(resumed, 6, optimizer, checkpoint=tmp_path / "crash.npz", checkpoint_every=3)
    assert saves == [9, 12, 13]


def test_checkpoint_of_weights_replaced_by_hand_is_refused_before_training(tmp_path):
    model = _new("graph")
    X, y = _data()
    model.linears[0].W.data = np.ones(model.linears[0].W.shape, np.float32)
    with pytest.raises(ValueError, match=r"layer 1's W has shape \(\d+, \d+\) and dtype "
                                         r"float32, but a float64 model"):
        model.fit(X, y, epochs=1, checkpoint=tmp_path / "c.npz")
    assert model.epochs_trained == 0


def test_checkpoint_argument_checks(tmp_path, monkeypatch):
    model = _new("graph")
    X, y = _data()
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        model.fit(X, y, epochs=1, checkpoint=3)
    with pytest.raises(ValueError, match=r"fit: checkpoint is an empty path; expected the \.npz "
                                         r"file to write"):
        model.fit(X, y, epochs=1, checkpoint="")
    with pytest.raises(ValueError, match="is a folder; give a file name in it"):
        model.fit(X, y, epochs=1, checkpoint=tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="is a folder; give a file name in it"):
        model.fit(X, y, epochs=1, checkpoint="runs/")       # (was written as runs.npz)
    (tmp_path / "afile").write_text("")
    with pytest.raises(ValueError, match=r"cannot write .*run.npz': .*afile' is not a folder"):
        model.fit(X, y, epochs=2, checkpoint=tmp_path / "afile" / "run.npz")
    (tmp_path / "ckpt.npz").mkdir()
    with pytest.raises(ValueError, match=r"'ckpt.npz' is a folder; give another file name"):
        model.fit(X, y, epochs=2, checkpoint="ckpt")
    if hasattr(os, "symlink"):
        os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
        with pytest.raises(ValueError, match=r"dangling' is not a folder"):
            model.fit(X, y, epochs=2, checkpoint=tmp_path / "dangling" / "c.npz")
    assert not list(tmp_path.glob("*.npz.*"))
    assert model.epochs_trained == 0                    # refused before training, not after
    with pytest.raises(ValueError, match="checkpoint_every must be an integer >= 1, got 0"):
        model.fit(X, y, epochs=1, checkpoint=tmp_path / "c.npz", checkpoint_every=0)
    class Custom(nn.SGD):
        pass

    with pytest.raises(TypeError, match="can be saved for nn.SGD and nn.Adam, got Custom"):
        model.fit(X, y, epochs=1, optimizer=Custom(model.parameters()),
                  checkpoint=tmp_path / "c.npz")
    assert model.optimizer is None and model.epochs_trained == 0     # refused before training
    model.fit(X, y, epochs=2, learning_rate=0.1, checkpoint=tmp_path / "c.npz")
    with pytest.raises(ValueError, match="more than epochs=1"):
        nn.checkpoint.resume(tmp_path / "c.npz", epochs=1)


def test_fit_continues_the_optimizer_unless_asked_for_another():
    X, y = _data()
    model = _new("graph")
    model.fit(X, y, epochs=1, learning_rate=0.01, optimizer="adam")
    adam = model.optimizer
    assert adam.t > 0
    model.fit(X, y, epochs=1)                          # None: continue, keep its lr
    assert model.optimizer is adam and adam.lr == 0.01
    model.fit(X, y, epochs=1, learning_rate=0.001, optimizer="adam")
    assert model.optimizer is adam and adam.lr == 0.001
    model.fit(X, y, epochs=1, learning_rate=0.1, optimizer="sgd")
    assert isinstance(model.optimizer, nn.SGD)
    mine = nn.Adam(model.parameters(), lr=0.005)
    model.fit(X, y, epochs=1, optimizer=mine)
    assert model.optimizer is mine and mine.lr == 0.005


def test_a_partly_frozen_model_trains_the_rest_and_an_all_frozen_one_is_refused():
    # fit failed with "SGD: every parameter must be a Tensor with requires_grad=True ...
    # at position 0" for a model with one frozen layer
    model = _new("graph")
    first = model.linears[0]
    first.W.requires_grad = False
    first.b.requires_grad = False
    W0, b0, W1 = first.W.data.copy(), first.b.data.copy(), model.linears[1].W.data.copy()
    for optimizer in ("sgd", "adam"):
        _fit(model, 1, optimizer)
    np.testing.assert_array_equal(first.W.data, W0)
    np.testing.assert_array_equal(first.b.data, b0)
    assert not np.array_equal(model.linears[1].W.data, W1)
    for p in model.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match=r"^nn.MLP.fit: every parameter is frozen "
                                         r"\(requires_grad=False\), so there is nothing to train"):
        _fit(model, 1, "sgd")


@pytest.mark.parametrize("first, again", [("adam", lambda m: nn.Adam(m.parameters(), lr=0.1)),
                                          ("momentum", lambda m: "sgd"),
                                          ("momentum", lambda m: nn.SGD(m.parameters(), lr=0.1,
                                                                        momentum=0.9))])
def test_a_fit_that_replaces_an_optimizer_with_state_of_its_kind_warns(tmp_path, first, again):
    # resuming from a checkpoint with the same optimizer= line as the first run silently
    # dropped the saved moments (or momentum)
    model = _new("graph")
    opt = "adam" if first == "adam" else nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _fit(model, 1, opt, checkpoint=tmp_path / "run.npz")
    resumed = nn.load(tmp_path / "run.npz")
    summary = "Adam after 7 steps" if first == "adam" else "SGD with momentum 0.9"
    with pytest.warns(RuntimeWarning, match=rf"^nn.MLP.fit: the optimizer asked for replaces "
                                            rf"model.optimizer \({summary}, from the last fit or "
                                            rf"the model's file\), and its state is dropped; pass "
                                            rf"optimizer=None to continue it"):
        _fit(resumed, 1, again(resumed))
    continued = nn.load(tmp_path / "run.npz")
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit(continued, 1, None)                       # continuing: no warning
        if first == "adam":
            _fit(continued, 1, "adam")                 # the same kind by name continues too


def _interrupt_at(monkeypatch, kind, step_number):
    """Make the step_number-th update raise KeyboardInterrupt after it has changed the
    weights (and the optimizer's state): the worst moment."""
    calls = []
    classes = [nn.SGD, nn.Adam] if kind == "graph" else [nn.manual.MLP]
    for cls in classes:
        name = "step" if kind == "graph" else "_step"
        original = getattr(cls, name)

        def step(self, *args, original=original):
            original(self, *args)
            calls.append(1)
            if len(calls) == step_number:
                raise KeyboardInterrupt
        monkeypatch.setattr(cls, name, step)


@pytest.mark.parametrize("kind,optimizer", SETUPS)
def test_ctrl_c_inside_fit_puts_the_model_back_after_its_last_whole_epoch(kind, optimizer,
                                                                          tmp_path):
    # the model kept the interrupted epoch's updates (Adam had counted them, the shuffling
    # generator had moved on), matching neither epochs_trained nor the checkpoint
    path = tmp_path / "run.npz"
    model = _new(kind)
    with pytest.MonkeyPatch.context() as mp:
        _interrupt_at(mp, kind, 7 * 2 + 3)                 # 7 batches an epoch: in epoch 3
        with pytest.raises(KeyboardInterrupt) as info:
            _fit(model, 4, optimizer, checkpoint=path, checkpoint_every=5)
    where = "nn.MLP.fit" if kind == "graph" else "MLP.fit"
    state = "weights, optimizer and shuffling state" if kind == "graph" else \
        "weights and shuffling state"                     # (the manual MLP has no optimizer)
    assert str(info.value).startswith(
        f"{where}: interrupted in epoch 3 of this fit; the model was put back as it was after "
        f"epoch 2 of this fit (epochs_trained=2): {state}, so fit continues from there "
        f"exactly; the checkpoint '{path}' holds that state")
    assert len(info.value.history) == 2 and model.epochs_trained == 2
    two = _new(kind)
    assert info.value.history == _fit(two, 2, optimizer)
    assert_same_model(model, two)                          # weights, optimizer, rng state
    assert_same_model(nn.load(path), two)                  # written although every=5
    _fit(model, 2, optimizer)
    four = _new(kind)
    _fit(four, 4, optimizer)
    assert_same_model(model, four)                         # as if never interrupted


def test_ctrl_c_before_the_first_epoch_ends_puts_back_the_model_before_the_fit():
    model, before = _new("graph"), _new("graph")
    _fit(model, 1, "adam")
    _fit(before, 1, "adam")
    with pytest.MonkeyPatch.context() as mp:
        _interrupt_at(mp, "graph", 1)
        with pytest.raises(KeyboardInterrupt, match=r"interrupted in epoch 1 of this fit; the "
                                                    r"model was put back as it was before this "
                                                    r"fit \(epochs_trained=1\)") as info:
            _fit(model, 3, "adam")
    assert info.value.history == []
    assert_same_model(model, before)


@pytest.mark.parametrize("kind", ["graph", "manual"])
def test_a_stop_with_checkpoint_every_writes_the_last_whole_epoch(kind, tmp_path):
    # with checkpoint_every=5 and a bad batch in epoch 2, the file held no epoch while the
    # model held 1 (and the updates of epoch 2 before the bad batch)
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(40, 1))
    y = np.sin(X[:, 0])
    MLP = nn.MLP if kind == "graph" else nn.manual.MLP
    model = MLP([1, 16, 1], ["tanh", None], seed=0)
    path = tmp_path / "run.npz"
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning) as record:
        history = model.fit(100 * X, y, epochs=50, learning_rate=0.5, batch_size=10,
                            on_nonfinite="warn", checkpoint=path, checkpoint_every=5)
    message = str(record[0].message)
    assert "at epoch 2, batch 2" in message and len(history) == 1
    assert f"; the checkpoint '{path}' holds that state" in message
    one = MLP([1, 16, 1], ["tanh", None], seed=0)
    one.fit(100 * X, y, epochs=1, learning_rate=0.5, batch_size=10)
    assert_same_model(model, one)
    assert_same_model(nn.load(path), one)


@pytest.mark.parametrize("kind,optimizer", SETUPS)
def test_ctrl_c_between_an_epochs_snapshot_and_its_save_still_saves_it(kind, optimizer,
                                                                        tmp_path):
    # the snapshot was taken before the checkpointer knew of the epoch: a Ctrl-C in between
    # (in the progress bar, in a print) left the file one epoch behind while the message
    # said it held the model's state
    path = tmp_path / "run.npz"
    model = _new(kind)
    original = nn.checkpoint.Checkpointer.epoch_done

    def epoch_done(self, epoch, last):
        if epoch == 2:
            raise KeyboardInterrupt
        original(self, epoch, last)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nn.checkpoint.Checkpointer, "epoch_done", epoch_done)
        with pytest.raises(KeyboardInterrupt, match=r"put back as it was after epoch 2 of this "
                                                    r"fit .* holds that state"):
            _fit(model, 4, optimizer, checkpoint=path)
    two = _new(kind)
    _fit(two, 2, optimizer)
    assert_same_model(model, two)
    assert_same_model(nn.load(path), two)


def test_a_stop_in_the_first_epoch_gives_back_the_optimizer_the_model_had():
    # the new fit's optimizer (and a continued one's new learning rate) stayed although the
    # message said the optimizer was put back
    model = _new("graph")
    momentum = nn.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _fit(model, 1, momentum)
    before = _new("graph")
    _fit(before, 1, nn.SGD(before.parameters(), lr=0.1, momentum=0.9))
    for optimizer, lr in (("adam", 0.01), (None, 5.0)):
        with pytest.MonkeyPatch.context() as mp:
            _interrupt_at(mp, "graph", 2)
            with pytest.raises(KeyboardInterrupt, match="put back as it was before this fit"):
                X, y = _data()
                model.fit(X, y, epochs=2, learning_rate=lr, batch_size=8, optimizer=optimizer)
        assert model.optimizer is momentum and momentum.lr == 0.1
        assert_same_model(model, before)


@pytest.mark.parametrize("kind", ["graph", "manual"])
def test_any_error_inside_an_epoch_puts_the_model_back_too(kind):
    model = _new(kind)
    name = "step" if kind == "graph" else "_step"
    classes = [nn.SGD] if kind == "graph" else [nn.manual.MLP]
    calls = []
    original = getattr(classes[0], name)

    def step(self, *args):
        original(self, *args)
        calls.append(1)
        if len(calls) == 7 + 3:                        # in epoch 2
            raise MemoryError("out of memory")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(classes[0], name, step)
        with pytest.raises(MemoryError, match="out of memory"):
            _fit(model, 3, "sgd" if kind == "graph" else None)
    one = _new(kind)
    _fit(one, 1, "sgd" if kind == "graph" else None)
    assert_same_model(model, one)


def test_a_second_ctrl_c_while_the_model_is_put_back_does_not_stop_it_half_way(tmp_path):
    path = tmp_path / "run.npz"
    model = _new("graph")
    original = nn.checkpoint.Checkpointer.catch_up
    pressed = []

    def catch_up(self):
        if not pressed:
            pressed.append(1)
            raise KeyboardInterrupt                    # the second Ctrl-C
        return original(self)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nn.checkpoint.Checkpointer, "catch_up", catch_up)
        _interrupt_at(mp, "graph", 7 + 3)              # the first, in epoch 2
        with pytest.raises(KeyboardInterrupt, match="after epoch 1 of this fit") as info:
            _fit(model, 3, "sgd", checkpoint=path, checkpoint_every=5)
    assert pressed and len(info.value.history) == 1
    one = _new("graph")
    _fit(one, 1, "sgd")
    assert_same_model(model, one)
    assert_same_model(nn.load(path), one)


@settings(max_examples=20, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(kind_opt=st.sampled_from(SETUPS), at_step=st.integers(1, 7 * 4),
       every=st.integers(1, 5))
def test_ctrl_c_at_any_step_then_resuming_equals_the_run_never_interrupted(kind_opt, at_step,
                                                                          every):
    # property form of the tests above: wherever the interrupt lands (7 steps an epoch),
    # the model is at a whole epoch, the checkpoint agrees with it, and finishing the
    # planned 4 epochs from there gives the uninterrupted run bit for bit
    kind, optimizer = kind_opt
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.npz"
        model = _new(kind)
        with pytest.MonkeyPatch.context() as mp:
            _interrupt_at(mp, kind, at_step)
            with pytest.raises(KeyboardInterrupt):
                _fit(model, 4, optimizer, checkpoint=path, checkpoint_every=every)
        done = model.epochs_trained
        assert done == (at_step - 1) // 7
        if done:
            assert_same_model(nn.load(path), model)
        else:
            assert not path.exists()
        _fit(model, 4 - done, optimizer)
        whole = _new(kind)
        _fit(whole, 4, optimizer)
        assert_same_model(model, whole)
