"""Saving and loading: nothing lost, nothing executed, everything validated, writes atomic."""
from __future__ import annotations

import atexit
import functools
import json
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import activations
import nn
from nn.serialize import ModelFileError, load_with_extra

from _models import assert_same_model, weights

ROOT = Path(__file__).resolve().parents[2]


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, rng.integers(0, 4, size=n)


def _trained(kind="graph", optimizer="adam", dtype=np.float64):
    acts = [activations.LeakyReLU(alpha=0.2), activations.GELU(approximate=True), "softmax"]
    X, y = _data()
    if kind == "graph":
        model = nn.MLP([3, 5, 4, 4], acts, init_method="xavier", seed=3, dtype=dtype)
        model.fit(X, y, epochs=2, learning_rate=0.01, batch_size=5, optimizer=optimizer)
    else:
        model = nn.manual.MLP([3, 5, 4, 4], acts, init_method="xavier", seed=3, dtype=dtype)
        model.fit(X, y, epochs=2, learning_rate=0.01, batch_size=5)
    return model


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind,optimizer", [("graph", "adam"), ("graph", None), ("manual", None)])
def test_round_trip_keeps_everything(tmp_path, kind, optimizer, dtype):
    model = _trained(kind, optimizer or "sgd", dtype)
    if kind == "graph" and optimizer is None:
        model.optimizer = nn.SGD(model.parameters(), lr=0.05, momentum=0.9)
        model.compute_gradients(*_data())
        model.optimizer.step()                   # momentum velocities exist now
    path = model.save(tmp_path / "m", optimizer=True, extra={"note": "hi"},
                      arrays={"mean": np.arange(3.0)})
    assert path.name == "m.npz"
    loaded, extra, arrays = load_with_extra(path)
    assert_same_model(model, loaded)
    assert extra == {"note": "hi"} and np.array_equal(arrays["mean"], np.arange(3.0))
    X, _ = _data(seed=1)
    assert np.array_equal(model.predict_proba(X), loaded.predict_proba(X))
    # a graph file loads as the manual twin (optimizer state checked, then dropped)
    if kind == "graph":
        manual = nn.load(path, kind="manual")
        assert all(np.array_equal(a, b) for a, b in zip(weights(model), weights(manual)))


def test_optimizer_state_only_when_asked(tmp_path):
    model = _trained("graph", "adam")
    model.save(tmp_path / "plain.npz")
    assert nn.load(tmp_path / "plain.npz").optimizer is None
    with pytest.raises(TypeError, match="no optimizer state"):
        _trained("manual").save(tmp_path / "m.npz", optimizer=nn.SGD(model.parameters()))


def test_adam_per_parameter_counts_are_saved_only_when_they_differ(tmp_path):
    model = _trained("graph", "adam")
    opt = model.optimizer
    with np.load(model.save(tmp_path / "same.npz", optimizer=True)) as f:
        header = json.loads(bytes(f["header"]).decode())
    assert "steps" not in header["optimizer"]      # (readable by versions before the counts)
    params = model.parameters()
    model.compute_gradients(*_data())
    params[0].grad = None                          # one parameter misses a step
    opt.step()
    assert opt.steps[0] == opt.t - 1 and opt.steps[1] == opt.t
    path = model.save(tmp_path / "lag.npz", optimizer=True)
    loaded = nn.load(path)
    assert loaded.optimizer.steps == opt.steps and loaded.optimizer.t == opt.t
    bad = _rewrite(path, tmp_path / "bad.npz",
                   header_change=lambda h: h["optimizer"].update(steps=[1] * 5))
    with pytest.raises(ModelFileError, match="invalid optimizer state: .*steps"):
        nn.load(bad)


def test_save_refuses_weights_that_load_would_refuse_and_writes_nothing(tmp_path):
    model = _trained("manual", dtype=np.float32)
    model.layers[0].W = model.layers[0].W.astype(np.float64)      # replaced by hand
    with pytest.raises(ValueError, match=r"save: layer 1's W has shape \(5, 3\) and dtype "
                                         r"float64, but a float32 model"):
        nn.save(model, tmp_path / "m.npz")
    model.layers[0].W = np.ones((3, 5), np.float32)                # transposed
    with pytest.raises(ValueError, match=r"layer 1's W has shape \(3, 5\) .* needs \(5, 3\)"):
        nn.save(model, tmp_path / "m.npz")
    assert not list(tmp_path.iterdir())


def test_a_file_from_a_big_endian_machine_loads_with_the_same_values(tmp_path):
    model = _trained("graph", "adam")
    path = model.save(tmp_path / "m.npz", optimizer=True)
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    for k in arrays:
        if k != "header":
            arrays[k] = arrays[k].astype(arrays[k].dtype.newbyteorder(">"))
    with open(tmp_path / "big.npz", "wb") as f:
        np.savez(f, **arrays)
    loaded = nn.load(tmp_path / "big.npz")
    assert_same_model(model, loaded)
    assert all(p.data.dtype.isnative for p in loaded.parameters())


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads the umask from /proc")
def test_a_new_file_follows_the_umask_and_an_old_one_keeps_its_mode(tmp_path):
    model = _trained("graph", "adam")
    old = os.umask(0o077)
    try:
        private = model.save(tmp_path / "private.npz")
    finally:
        os.umask(old)
    assert os.stat(private).st_mode & 0o777 == 0o600
    os.chmod(private, 0o640)
    model.save(private)                                  # rewritten: keeps its mode
    assert os.stat(private).st_mode & 0o777 == 0o640


def test_save_refuses_nan_weights_and_non_json_extra(tmp_path):
    model = nn.MLP([2, 2], ["softmax"], seed=0)
    with pytest.raises(TypeError, match="JSON-able"):
        model.save(tmp_path / "a.npz", extra={"x": object()})
    model.linears[0].W.data[0, 0] = np.nan
    with pytest.raises(ValueError, match="W0 .* NaN"):
        model.save(tmp_path / "a.npz")
    assert not list(tmp_path.iterdir())


def test_version_1_files_still_load(tmp_path):
    model = nn.MLP([2, 3], ["softmax"], seed=0)
    header = {"format": "tinygraph-mlp", "version": 1, "kind": "graph", "layer_sizes": [2, 3],
              "activations": ["softmax"], "init_method": "he", "dtype": "float64", "extra": {}}
    with open(tmp_path / "v1.npz", "wb") as f:
        np.savez(f, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
                 W0=model.linears[0].W.data, b0=model.linears[0].b.data)
    loaded = nn.load(tmp_path / "v1.npz")
    assert np.array_equal(loaded.linears[0].W.data, model.linears[0].W.data)


def _rewrite(path: Path, out: Path, header_change=None, arrays_change=None) -> Path:
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    if header_change:
        header_change(header)
    if arrays_change:
        arrays_change(arrays)
    with open(out, "wb") as f:
        np.savez(f, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return out


@pytest.mark.parametrize("change,message", [
    (lambda h: h.update(format="keras"), "not a tinygraph model file"),
    (lambda h: h.pop("dtype"), r"misses key\(s\) \['dtype'\]"),
    (lambda h: h.update(surprise=1), r"unknown key\(s\) \['surprise'\]"),
    (lambda h: h.update(layer_sizes=[3, -5, 4, 4]), "layer_sizes is"),
    (lambda h: h.update(activations=["relu"]), "do not match layer_sizes"),
    (lambda h: h["activations"].__setitem__(0, {"name": "os.system", "config": {}}),
     "cannot be rebuilt"),
    (lambda h: h.update(init_method="orthogonal"), "init_method is 'orthogonal'"),
    (lambda h: h.update(dtype="float16"), "dtype is 'float16'"),
    (lambda h: h["rng"].update(bit_generator="Evil"), "bit generator 'Evil'"),
    (lambda h: h["rng"]["state"].update(state="x"), "invalid PCG64 state"),
    (lambda h: h.update(rng={"bit_generator": "MT19937", "state": {
        "key": {"ndarray": "uint32", "values": [1, 2]}, "pos": 0}}), "invalid MT19937 state"),
    (lambda h: h.update(training={"epochs_trained": -1}), "training is"),
    (lambda h: h["optimizer"].update({"class": "RMSprop"}), "optimizer class 'RMSprop'"),
    (lambda h: h["optimizer"].update(betas=[0.9, 2.0]), "invalid optimizer state"),
    (lambda h: h["optimizer"].update(t=-1), "invalid optimizer state"),
])
def test_load_refuses_a_bad_header(tmp_path, change, message):
    good = _trained("graph", "adam").save(tmp_path / "good.npz", optimizer=True)
    bad = _rewrite(good, tmp_path / "bad.npz", header_change=change)
    with pytest.raises(ModelFileError, match=message):
        nn.load(bad)


@pytest.mark.parametrize("change,message", [
    (lambda a: a.pop("optimizer/m3"), "missing array 'optimizer/m3'"),
    (lambda a: a.update({"optimizer/v0": np.zeros(3)}), r"v\[0\] has shape \(3,\)"),
    (lambda a: a.update(junk=np.zeros(2)), r"unexpected array\(s\) \['junk'\]"),
    (lambda a: a.update(W1=np.full((4, 5), np.inf)), "W1 holds NaN or infinite"),
    (lambda a: a.update(header=np.zeros(3, np.float64)), "header has dtype float64"),
])
def test_load_refuses_bad_arrays(tmp_path, change, message):
    good = _trained("graph", "adam").save(tmp_path / "good.npz", optimizer=True)
    with np.load(good, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    change(arrays)
    with open(tmp_path / "bad.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ModelFileError, match=message):
        nn.load(tmp_path / "bad.npz")


class _Exploit:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["TG_EXPLOIT_MARKER"]),))


def test_a_pickle_in_the_file_is_never_executed(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("TG_EXPLOIT_MARKER", str(marker))
    assert pickle.loads(pickle.dumps(_Exploit())) is None and marker.exists()   # it would run
    marker.unlink()
    good = nn.MLP([2, 3], ["softmax"], seed=0).save(tmp_path / "good.npz")
    with np.load(good, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["W0"] = np.array([_Exploit()], dtype=object)
    with open(tmp_path / "evil.npz", "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(ModelFileError, match="dtype object.*pickle"):
        nn.load(tmp_path / "evil.npz")
    assert not marker.exists()


def test_an_interrupted_save_leaves_the_previous_file(tmp_path, monkeypatch):
    model = nn.MLP([2, 3], ["softmax"], seed=0)
    path = model.save(tmp_path / "m.npz")
    before = path.read_bytes()
    model.linears[0].W.data[...] = 7.0

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a file")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="No space"):
        model.save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]      # no temporary left


# ---------------------------------------------------------------------------------------
# random corruption (hypothesis)
# ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _saved_file() -> tuple[Path, bytes, object]:
    """A trained model with Adam state, saved once: (directory, file bytes, loaded model)."""
    directory = Path(tempfile.mkdtemp(prefix="tg_corrupt_"))
    atexit.register(shutil.rmtree, directory, True)
    model = _trained("graph", "adam")
    path = model.save(directory / "model.npz", optimizer=True, extra={"k": [1, 2]})
    return directory, path.read_bytes(), nn.load(path)


@settings(max_examples=250, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_corrupted_files_load_identically_or_raise_model_file_error(data):
    directory, raw, original = _saved_file()
    corrupt = bytearray(raw)
    mode = data.draw(st.sampled_from(["bytes", "bytes", "truncate", "burst"]))
    if mode == "truncate":
        corrupt = corrupt[:data.draw(st.integers(0, len(raw) - 1))]
    elif mode == "burst":
        start = data.draw(st.integers(0, len(raw) - 1))
        length = data.draw(st.integers(1, 64))
        for i in range(start, min(start + length, len(raw))):
            corrupt[i] = data.draw(st.integers(0, 255))
    else:
        for _ in range(data.draw(st.integers(1, 6))):
            i = data.draw(st.integers(0, len(raw) - 1))
            corrupt[i] = (corrupt[i] + data.draw(st.integers(1, 255))) % 256
    path = directory / "corrupt.npz"
    path.write_bytes(bytes(corrupt))
    try:
        loaded = nn.load(path)
    except ModelFileError:
        return
    assert_same_model(original, loaded)


# ---------------------------------------------------------------------------------------
# killed in the middle of a save
# ---------------------------------------------------------------------------------------

_SAVER = r"""
import sys
sys.path.insert(0, sys.argv[2])
import nn
model = nn.MLP([256, 512, 512, 10], ["relu", "relu", "softmax"], seed=0)
version = int(sys.argv[3])
while True:
    version += 1
    for lin in model.linears:
        lin.W.data[...] = version
        lin.b.data[...] = version
    model.save(sys.argv[1], extra={"version": version})
    print(version, flush=True)
"""


def test_sigkill_during_saves_always_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "big.npz"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    rnd = random.Random(1234)
    seen_versions = []
    last = 0
    for trial in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(ROOT), str(last * 1000)],
                                stdout=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()          # one complete save before the kill
            assert first.strip(), "the saver did not save"
            time.sleep(rnd.uniform(0.0, 0.25))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            proc.stdout.close()
        model, extra, _ = load_with_extra(path)
        version = extra["version"]
        assert all(np.all(w == version) for w in weights(model)), f"trial {trial}: mixed file"
        seen_versions.append(version)
        last = trial + 1
    # every kill left one of the versions that were completely written
    assert len(seen_versions) == 6
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert all(name.startswith("big.npz.") for name in leftovers)
    print(f"versions on disk after each kill: {seen_versions}; {len(leftovers)} temporary file(s) left by kills mid-write")


def test_save_to_a_folder_is_refused_with_a_file_name_to_use(tmp_path, monkeypatch):
    model = nn.MLP([2, 3], ["softmax"], seed=0)
    monkeypatch.chdir(tmp_path)
    for folder in (".", str(tmp_path)):
        with pytest.raises(ValueError, match=r"save: .* is a folder; give a file name in it"):
            model.save(folder)
    (tmp_path / "adir").mkdir()
    with pytest.raises(ValueError, match=r"'adir' is a folder"):
        model.save("adir/")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir"]
    # missing folders on the way are made (documented), as for checkpoints
    path = model.save(tmp_path / "runs" / "a" / "m")
    assert path == tmp_path / "runs" / "a" / "m.npz" and nn.load(path).layer_sizes == [2, 3]


def test_save_to_a_path_ending_in_a_slash_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"'newdir' is a folder"):
        nn.MLP([2, 3], ["softmax"], seed=0).save("newdir/")
    assert list(tmp_path.iterdir()) == []


def test_models_that_could_not_be_loaded_back_are_refused_before_saving_or_training(tmp_path):
    X, y = np.ones((4, 2)), np.array([0, 1, 2, 0])
    half = nn.MLP([2, 3], ["softmax"], seed=0, dtype=np.float16)
    with pytest.raises(ValueError, match=r"save: a model of dtype float16 cannot be saved"):
        half.save(tmp_path / "h")
    before = [p.data.copy() for p in half.parameters()]
    with pytest.raises(ValueError, match=r"fit: checkpoint: a model of dtype float16"):
        half.fit(X, y, epochs=1, learning_rate=0.1, checkpoint=tmp_path / "c")
    assert all(np.array_equal(a, p.data) for a, p in zip(before, half.parameters()))

    class Duck:
        cache = None

        def forward(self, x):
            self.cache = x.copy()
            return x * 1.0

        def backward(self, g):
            return g

    duck = nn.manual.MLP([2, 3, 3], [Duck(), "softmax"], seed=0)
    with pytest.raises(ValueError, match=r"layer 1's activation, a Duck, is not one of the "
                                         r"activations package's"):
        duck.save(tmp_path / "d")
    assert list(tmp_path.iterdir()) == []


def _trains_nothing(model):
    model._loss = lambda *a: pytest.fail("trained before checking the checkpoint")
    return model


def test_a_subclass_overriding_a_method_is_refused_before_saving_or_training(tmp_path):
    # a file holds no code: TempMLP's checkpoints could not be loaded (its extra parameter
    # shifted the optimizer's arrays) and save wrote a plain nn.MLP, other predictions
    import tinygraph as tg

    class TempMLP(nn.MLP):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.log_t = tg.Tensor(np.zeros(1), requires_grad=True)

        def forward(self, x):
            return super().forward(x) * tg.exp(-self.log_t)

    class Doubled(nn.manual.MLP):
        def forward(self, X):
            return super().forward(2 * X)

    X, y = np.ones((4, 3)), np.array([0, 1, 2, 0])
    model = _trains_nothing(TempMLP([3, 5, 3], ["relu", "softmax"], seed=0))
    with pytest.raises(ValueError, match=r"^nn\.MLP\.fit: checkpoint: TempMLP overrides "
                                         r"nn\.MLP's forward; a model file holds no code"):
        model.fit(X, y, epochs=1, learning_rate=0.1, checkpoint=tmp_path / "c")
    with pytest.raises(ValueError, match=r"^save: TempMLP overrides nn\.MLP's forward"):
        nn.save(model, tmp_path / "m")
    with pytest.raises(ValueError, match=r"^nn\.MLP\.to_manual: TempMLP overrides nn\.MLP's "
                                         r"forward"):
        model.to_manual()
    with pytest.raises(ValueError, match=r"^save: Doubled overrides nn\.manual\.MLP's forward"):
        nn.save(Doubled([3, 3], ["softmax"], seed=0), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("MLP", [nn.MLP, nn.manual.MLP], ids=["graph", "manual"])
def test_a_subclass_that_only_adds_methods_saves_and_loads_as_its_base(tmp_path, MLP):
    class WithTop1(MLP):
        def __init__(self, layer_sizes, seed=0):
            super().__init__(layer_sizes, ["relu", "softmax"], seed=seed)

        def top1(self, X):
            return self.predict(X)

    X = np.random.default_rng(0).normal(size=(6, 3))
    model = WithTop1([3, 5, 3])
    loaded = nn.load(nn.save(model, tmp_path / "m"))
    assert type(loaded) is MLP
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


class _Doubled(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2.0


class _Negated(nn.ActivationLayer):
    def forward(self, z):
        return -super().forward(z)


@pytest.mark.parametrize("change, message", [
    (lambda m: setattr(m.layers[1], "activation", activations.Tanh()),
     r"layers\.1's activation is Tanh\(\), but the model was built with ReLU\(\)"),
    (lambda m: setattr(m.layers, "1", nn.ActivationLayer(activations.LeakyReLU(0.2))),
     r"layers\.1's activation is LeakyReLU\(alpha=0\.2\), but the model was built with "
     r"ReLU\(\)"),
    (lambda m: setattr(m.layers, "2", nn.Linear(5, 3, bias=False, rng=0)),
     r"layers\.2 is a Linear without a bias \(built with one\)"),
    (lambda m: setattr(m.layers, "1", nn.Linear(5, 5, rng=0)),
     r"layers\.1 is a Linear where the model was built with ActivationLayer\(relu\)"),
    (lambda m: delattr(m.layers, "1"),
     r"layers\.1 is a Linear where the model was built with ActivationLayer\(relu\)"),
    (lambda m: setattr(m, "temperature", __import__("tinygraph").Tensor(np.ones(1),
                                                                         requires_grad=True)),
     r"parameter temperature \(shape \(1,\)\) is not a layer's W or b"),
    (lambda m: delattr(m.layers[0], "b"),
     r"layers\.0 is a Linear without a bias \(built with one\)"),
    (lambda m: setattr(m.layers, "0", _Doubled(3, 5, rng=0)),
     r"layers\.0 is a _Doubled where the model was built with a Linear"),
    (lambda m: setattr(m.layers, "1", _Negated(activations.ReLU())),
     r"layers\.1 is a _Negated where the model was built with ActivationLayer\(relu\)"),
    (lambda m: setattr(m, "loss_fn", nn.MSELoss()),
     r"loss_fn is MSELoss, but the model was built with SoftmaxCrossEntropy"),
])
def test_a_model_changed_by_hand_is_refused_by_save_checkpoints_and_its_twin(tmp_path, change,
                                                                              message):
    # the file recorded the architecture the model was built with: a swapped activation
    # loaded back as the old one (predictions 0.33 off), an added parameter was dropped
    model = nn.MLP([3, 5, 3], ["relu", "softmax"], seed=0)
    change(model)
    X, y = np.ones((4, 3)), np.array([0, 1, 2, 0])
    with pytest.raises(ValueError, match=r"^save: " + message + r"; a model file holds no code, "
                                         r"only the architecture the model was built with"):
        nn.save(model, tmp_path / "m")
    with pytest.raises(ValueError, match=r"^nn\.MLP\.fit: checkpoint: " + message):
        _trains_nothing(model).fit(X, y, epochs=1, learning_rate=0.1, checkpoint=tmp_path / "c")
    with pytest.raises(ValueError, match=r"^nn\.MLP\.to_manual: " + message):
        model.to_manual()
    assert list(tmp_path.iterdir()) == []


def test_an_activation_equal_to_the_built_one_saves(tmp_path):
    model = nn.MLP([3, 5, 3], ["leaky_relu", "softmax"], seed=0)
    model.layers[1].activation = activations.LeakyReLU()     # same class and configuration
    loaded = nn.load(nn.save(model, tmp_path / "m"))
    X = np.random.default_rng(0).normal(size=(6, 3))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_weights_tied_through_a_view_are_refused_by_save(tmp_path):
    # an autoencoder's decoder as the encoder's transpose: id() did not see the tie, and the
    # file loaded untied
    model = nn.MLP([3, 4, 3], ["tanh", None], seed=0)
    model.linears[1].W.data = model.linears[0].W.data.T
    with pytest.raises(ValueError, match=r"^save: layer 2's W is a view sharing memory with "
                                         r"layer 1's W \(tied weights\)"):
        nn.save(model, tmp_path / "m")
    model.linears[1].W.data = model.linears[0].W.data.T.copy()
    nn.save(model, tmp_path / "m")


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.05, momentum=0.9),
                                  lambda ps: nn.Adam(ps, lr=0.05)], ids=["momentum", "adam"])
def test_an_optimizer_with_numpy_settings_saves_and_resumes_exactly(tmp_path, make):
    # opt.lr = np.float32(...) (a schedule array's element) passed every step, then the
    # checkpoint failed after the first epoch, blaming `extra`
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, size=40)
    runs = []
    for stop in (None, 2):
        model = nn.MLP([3, 5, 3], ["relu", "softmax"], seed=0)
        opt = make(model.parameters())
        opt.lr = np.float32(0.01)
        if isinstance(opt, nn.SGD):
            opt.momentum = np.float64(0.9)
        model.fit(X, y, epochs=stop or 4, batch_size=8, optimizer=opt,
                  checkpoint=tmp_path / f"c{stop}.npz")
        assert json.loads(json.dumps(opt.config())) == opt.config()
        if stop:
            model = nn.load(tmp_path / f"c{stop}.npz")
            model.fit(X, y, epochs=4 - stop, batch_size=8)
        runs.append(model)
    assert_same_model(runs[0], runs[1])


def test_save_refuses_a_file_beyond_what_load_reads(tmp_path, monkeypatch):
    # it wrote them, and load refused them: "header has dtype uint8 and shape (13000424,);
    # expected 1-D uint8 bytes of JSON" for a large extra, "10005 entries; not a model file"
    import nn.serialize as serialize
    model = nn.MLP([2, 3], ["softmax"], seed=0)
    saved = nn.save(model, tmp_path / "m", extra={"losses": [0.5] * 100})
    with np.load(saved) as archive:
        header_bytes = archive["header"].size
    monkeypatch.setattr(serialize, "_MAX_HEADER_BYTES", header_bytes - 1)
    with pytest.raises(ModelFileError, match=rf"header is {header_bytes:,} bytes, more than the "
                                             rf"{header_bytes - 1:,} of a model file"):
        nn.load(saved)
    with pytest.raises(ValueError, match=rf"^save: the header would be {header_bytes:,} bytes "
                                         rf"of JSON, more than the {header_bytes - 1:,} that "
                                         rf"load reads; keep large data out of extra"):
        nn.save(model, tmp_path / "big", extra={"losses": [0.5] * 100})
    monkeypatch.undo()
    monkeypatch.setattr(serialize, "_MAX_ARRAYS", 4)
    with pytest.raises(ValueError, match=r"^save: the file would hold 5 arrays, more than the 4 "
                                         r"that load reads"):
        nn.save(model, tmp_path / "many", arrays={"a": np.zeros(1), "b": np.zeros(1)})
    nn.save(model, tmp_path / "few", arrays={"a": np.zeros(1)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.npz", "m.npz"]
    nn.load(tmp_path / "few.npz")


def test_load_names_an_empty_path_and_a_bad_betas_entry(tmp_path, monkeypatch):
    # an empty path gave pathlib's "PosixPath('.') has an empty name"; betas: 0.9 in a file
    # gave "'float' object is not iterable"
    with pytest.raises(ValueError, match=r"^load: path is empty; expected a model file"):
        nn.load("")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelFileError, match=r"^load\('\.'\): cannot read the file: .*Is a "
                                             r"directory"):
        nn.load(".")
    model = nn.MLP([2, 3, 2], ["relu", "softmax"], seed=0)
    model.fit(np.zeros((4, 2)), [0, 1, 0, 1], epochs=1, optimizer="adam")
    path = nn.save(model, tmp_path / "m.npz", optimizer=True)
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    header = json.loads(arrays.pop("header").tobytes())
    header["optimizer"]["betas"] = 0.9
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    with pytest.raises(ModelFileError, match=r"invalid optimizer state: Adam: betas must be a "
                                             r"pair \(beta1, beta2\)"):
        nn.load(path)


def test_load_finds_the_file_save_named(tmp_path):
    model = nn.MLP([2, 3], ["softmax"], seed=0)
    written = model.save(tmp_path / "ckpt")
    assert written.name == "ckpt.npz"
    assert nn.load(tmp_path / "ckpt").layer_sizes == [2, 3]
    model2, remaining = nn.checkpoint.resume(tmp_path / "ckpt", 5)
    assert remaining == 5 and model2.layer_sizes == [2, 3]


def test_frozen_parameters_load_back_frozen(tmp_path):
    # a frozen layer came back trainable after save and load
    model = _trained("graph", "adam")
    model.linears[0].W.requires_grad = False
    model.linears[2].b.requires_grad = False
    loaded = nn.load(model.save(tmp_path / "m", optimizer=True))
    assert [(n, p.requires_grad) for n, p in loaded.named_parameters()] == \
        [(n, p.requires_grad) for n, p in model.named_parameters()]
    assert [n for n, p in loaded.named_parameters() if not p.requires_grad] == \
        ["layers.0.W", "layers.4.b"]
    assert_same_model(loaded, model)
    plain = _trained("graph", "adam")                # nothing frozen: the file is as before
    header = json.loads(np.load(plain.save(tmp_path / "plain"))["header"].tobytes())
    assert "frozen" not in header


def test_a_save_through_a_symbolic_link_writes_its_target(tmp_path):
    # the link was replaced by a regular file: the target, which others load, kept the
    # old model
    store = tmp_path / "store"
    store.mkdir()
    old, new = _trained("graph", "adam"), _trained("graph", "sgd")
    old.save(store / "real.npz", optimizer=True)
    (tmp_path / "link.npz").symlink_to(store / "real.npz")
    assert new.save(tmp_path / "link.npz", optimizer=True) == tmp_path / "link.npz"
    assert (tmp_path / "link.npz").is_symlink() and sorted(os.listdir(store)) == ["real.npz"]
    assert_same_model(nn.load(store / "real.npz"), new)


def test_a_read_only_model_file_is_not_replaced(tmp_path):
    # os.replace ignores the file's mode: save overwrote a file made read-only to keep it
    a, b = _trained("graph", "adam"), _trained("graph", "sgd")
    path = a.save(tmp_path / "ro.npz", optimizer=True)
    os.chmod(path, 0o444)
    try:
        with pytest.raises(PermissionError, match=r"^\[Errno 13\] save: cannot write '.*ro.npz': "
                                                  r"'.*ro.npz' is read-only \(mode 444\), so it "
                                                  r"is not replaced"):
            b.save(path)
        with pytest.raises(ValueError, match=r"read-only \(mode 444\)"):
            b.fit(*_data(), epochs=1, checkpoint=path)        # refused before training
        assert b.epochs_trained == 2
        assert_same_model(nn.load(path), a)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ro.npz"]
    finally:
        os.chmod(path, 0o644)


def test_load_of_a_name_without_suffix_refuses_when_both_files_exist(tmp_path):
    # save("ckpt") writes ckpt.npz, but load("ckpt") read a file "ckpt" when there was one
    a, b = _trained("graph", "adam"), _trained("graph", "sgd")
    shutil.copy(a.save(tmp_path / "other", optimizer=True), tmp_path / "ckpt")
    b.save(tmp_path / "ckpt", optimizer=True)
    with pytest.raises(ModelFileError, match=r"both '.*ckpt' and 'ckpt.npz' exist, and "
                                             r"save\('.*ckpt'\) writes the second"):
        nn.load(tmp_path / "ckpt")
    assert_same_model(nn.load(tmp_path / "ckpt.npz"), b)
    os.remove(tmp_path / "ckpt")
    assert_same_model(nn.load(tmp_path / "ckpt"), b)


def test_extra_with_keys_json_would_change_is_refused(tmp_path):
    # {1: "a", "1": "b"} came back as {"1": "b"}
    model = _trained("graph", "adam")
    for extra, key in (({1: "a", "1": "b"}, "1"), ({"run": {"lr": {0.1: 3}}}, "0.1"),
                       ({"runs": [{(1, 2): 0}]}, r"\(1, 2\)")):
        with pytest.raises(TypeError, match=rf"^save: extra's keys must be strings \(JSON "
                                            rf"object keys\), got {key}"):
            model.save(tmp_path / "m", extra=extra)
    assert not (tmp_path / "m.npz").exists()


def test_a_file_with_frozen_parameters_is_version_3_and_frozen_needs_it(tmp_path):
    model = _trained("graph", "adam")
    model.linears[1].W.requires_grad = False
    path = model.save(tmp_path / "m")
    header = json.loads(np.load(path)["header"].tobytes())
    assert header["version"] == 3 and header["frozen"] == ["W1"]
    header["version"] = 2                                   # a key of version 3 in version 2
    data = dict(np.load(path))
    data["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez(tmp_path / "v2.npz", **data)
    with pytest.raises(ModelFileError, match="frozen is a version 3 key, in a version 2 file"):
        nn.load(tmp_path / "v2.npz")
