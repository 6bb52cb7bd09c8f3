"""Stateful property tests of a model's life as a user drives it (hypothesis.stateful).

``Lifecycle`` holds two graph MLPs built alike (random architecture, hidden activation,
output kind softmax/sigmoid/linear, float32/float64, bit generator, init method):

* ``model`` is driven through every detour a user takes: saves and loads (with and
  without the optimizer, or with the user's own optimizer; ``nn.save``/``model.save``; names
  with and without ``.npz``; extra header/arrays), ``state_dict``/``load_state_dict``
  (strict or not, subsets, the other dtype, unexpected keys), into a fresh model too, fits
  that stop (absurd learning rates in raise/warn mode, NaN/Inf data, Ctrl-C or another error
  injected at a random batch), fits with checkpoints (``checkpoint_every``, a stop, a
  failing or Ctrl-C'd checkpoint write) followed by a load of the checkpoint or
  ``nn.checkpoint.resume``, trips through the manual MLP (``to_manual``/``from_manual``,
  manual files, ``nn.load(kind=...)``, ``nn.crosscheck``);
* ``ref`` (the shadow) is driven by the same *effective* operations without the detours:
  where a fit of ``model`` stopped after ``d`` whole epochs, ``ref`` fits ``d`` epochs;
  where ``model`` was saved and loaded, ``ref`` does nothing.
* Both get the same freezes/unfreezes, in-place weight edits (``p -= d`` under no_grad,
  ``p.data -= d``, ``p.data = a``, ``p.data[...] = a``), parameter tensors replaced by
  new ones, hand-written training steps, optimizer objects the user keeps across fits.

After every step both must be equal bit for bit (weights, dtypes, frozen flags, generator
state, epochs trained, optimizer kind/config/state and whether it holds the model's own
parameters; the user's own optimizer objects too), frozen parameters hold the values they
were frozen with, no temporary file is left, weights are finite and predictions are finite
(unless an absurd learning rate left huge weights). Every exception raised by tinygraph
must be a clear one: raised by the library itself (innermost frame in nn/ or tinygraph/),
with a message naming where and, for refusals, the argument.

``ManualLifecycle`` does the same for ``nn.manual.MLP`` (fit, its own forward/backward/
update with a crosscheck in between, stops, Ctrl-C/errors, checkpoints, resume, manual
files loaded as manual or via a graph model).

Environment: LIFECYCLE_EXAMPLES (default 40), LIFECYCLE_STEPS (30), LIFECYCLE_RANDOM=1
(new examples each run; default: derandomized, as the suite's profile). About 8 s for both
machines with the defaults; 250 examples of 40 steps (about 45 s) found the bugs fixed in
session 14 (their tests: test_diverging.py, nn/test_graph_mlp.py).
"""
from __future__ import annotations

import copy
import os
import shutil
import tempfile
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import nn
import tinygraph as tg

PKG_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (nn, tg))

HIDDEN = ["relu", "tanh", "sigmoid", "leaky_relu", "gelu", "silu", "gelu_tanh",
          "LeakyReLU(alpha=0.3)", "GELU(approximate=True)"]


def hidden_activation(name):
    """A name, or an activation object built from its written form (with parameters)."""
    import activations
    if "(" not in name:
        return name
    cls, args = name[:-1].split("(")
    key, value = args.split("=")
    return getattr(activations, cls)(**{key: {"True": True}.get(value) or float(value)})
OUTPUTS = ["softmax", "softmax", "sigmoid", None]
ARCHS = [[4, 5, 3], [4, 5, 3], [4, 3], [4, 6, 5, 3]]
LRS = [None, 1e-3, 0.01, 0.1, 0.5]
OPTS = [None, "sgd", "adam", "sgd-object", "momentum-sgd", "adam-object", "user-object",
        "user-object"]


# ---------------------------------------------------------------------------------------
# what a model's state is, compared bit for bit
# ---------------------------------------------------------------------------------------

def named(model):
    return list(model.named_parameters())


def opt_state(model):
    opt = model.optimizer
    if opt is None:
        return None
    return (type(opt).__name__, opt.config(), copy.deepcopy(opt.state_dict()),
            holds_own(model))


def holds_own(model):
    """Whether model.optimizer holds the model's parameters (not after a parameter tensor
    was replaced by hand)."""
    own, opt = model.parameters(), model.optimizer
    return len(opt.params) == len(own) and all(a is b for a, b in zip(opt.params, own))


def same_value(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b))
    if isinstance(a, (list, tuple)):
        return (isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(same_value(x, y) for x, y in zip(a, b)))
    if isinstance(a, dict):
        return (isinstance(b, dict) and set(a) == set(b)
                and all(same_value(a[k], b[k]) for k in a))
    return a == b and type(a) is type(b)


def _crosscheck(manual, X, y, n_numerical=0):
    """nn.crosscheck; a batch of one sample warns (and only it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rep = nn.crosscheck(manual, X, y, n_numerical=n_numerical)
    said = [w for w in caught if "a batch of 1 sample" in str(w.message)]
    assert len(said) == (len(X) == 1), [str(w.message) for w in caught]
    for w in caught:                    # (any other warning goes on as it came)
        if w not in said:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return rep


def assert_same(a, b, what="model", optimizer=True):
    assert a.layer_sizes == b.layer_sizes
    assert np.dtype(a.dtype) == np.dtype(b.dtype)
    pa, pb = named(a), named(b)
    assert [n for n, _ in pa] == [n for n, _ in pb]
    for (name, x), (_, y) in zip(pa, pb):
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: {name} dtype/shape"
        assert np.array_equal(x.data, y.data), f"{what}: {name} differs"
        assert x.requires_grad == y.requires_grad, f"{what}: {name} frozen flag differs"
    assert same_value(a.rng.bit_generator.state, b.rng.bit_generator.state), f"{what}: rng"
    assert a.epochs_trained == b.epochs_trained, \
        f"{what}: epochs_trained {a.epochs_trained} != {b.epochs_trained}"
    if optimizer:
        sa, sb = opt_state(a), opt_state(b)
        assert (sa is None) == (sb is None), f"{what}: optimizer {sa and sa[0]} vs {sb and sb[0]}"
        if sa is not None:
            assert sa[0] == sb[0] and sa[1] == sb[1], f"{what}: optimizer {sa[:2]} vs {sb[:2]}"
            assert same_value(sa[2], sb[2]), f"{what}: optimizer state differs"
            assert sa[3] == sb[3], f"{what}: optimizer holds the model's parameters or not"


def assert_clear_error(exc, *words):
    """Raised by tinygraph itself (its innermost frame in nn/ or tinygraph/), with a message
    naming where and, when given, each of ``words``."""
    frames = traceback.extract_tb(exc.__traceback__)
    assert frames, exc
    inner = frames[-1].filename
    msg = str(exc)
    assert inner.startswith(PKG_DIRS), (
        f"{type(exc).__name__} raised from {inner}:{frames[-1].lineno}, not by tinygraph: {msg}")
    assert ":" in msg and len(msg) > 20, f"unclear message: {msg!r}"
    for w in words:
        assert w in msg, f"{w!r} not named in {msg!r}"


def run(fn):
    """(result, exception, [warning messages]) of fn(); the exception's traceback kept
    (a graph held by it is dropped at the end of the step)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out, exc = fn(), None
        except (Exception, KeyboardInterrupt) as e:   # noqa: BLE001 - compared below
            out, exc = None, e
    return out, exc, [f"{w.category.__name__}: {w.message}" for w in caught]


# ---------------------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------------------

class Lifecycle(RuleBasedStateMachine):

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="tg-life-")
        self.model = self.ref = None
        self.frozen = {}                     # name -> values it was frozen with
        self.user_opt = None                 # {"model": opt, "ref": opt} kept by the user
        self.files = 0

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, suffix=True):
        self.files += 1
        name = os.path.join(self.dir, f"m{self.files}")
        return name + ".npz" if suffix else name

    # -- set up ------------------------------------------------------------------------
    @initialize(arch=st.sampled_from(ARCHS), hidden=st.sampled_from(HIDDEN),
                output=st.sampled_from(OUTPUTS),
                dtype=st.sampled_from([np.float32, np.float64]),
                seed=st.integers(0, 2**16), n=st.integers(12, 40), data_seed=st.integers(0, 99),
                bitgen=st.sampled_from([None, None, "MT19937", "Philox", "SFC64", "PCG64DXSM"]),
                init=st.sampled_from(["he", "xavier"]))
    def build(self, arch, hidden, output, dtype, seed, n, data_seed, bitgen, init):
        acts = [hidden_activation(hidden)] * (len(arch) - 2) + [output]
        self.arch, self.acts, self.dtype, self.seed = arch, acts, np.dtype(dtype), seed

        def make():
            if bitgen is None:
                return nn.MLP(arch, acts, seed=seed, dtype=dtype, init_method=init)
            rng = np.random.Generator(getattr(np.random, bitgen)(seed))
            return nn.MLP(arch, acts, rng=rng, dtype=dtype, init_method=init)
        self.model, self.ref = make(), make()
        r = np.random.default_rng(data_seed)
        self.X = r.standard_normal((n, arch[0]))
        K = arch[-1]
        if output == "softmax":
            self.y = r.integers(0, K, n)
        elif output == "sigmoid":
            self.y = r.integers(0, 2, (n, K)).astype(np.float64)
        else:
            self.y = r.standard_normal((n, K))
        self.Xv, self.yv = self.X[: n // 3 + 1], self.y[: n // 3 + 1]
        self.n = n
        note(f"nn.MLP({arch}, {acts}, seed={seed}, dtype={np.dtype(dtype).name}); n={n}")

    # -- helpers -------------------------------------------------------------------------
    def fit_kwargs(self, m, epochs, opt, lr, batch_size, validation):
        kw = dict(epochs=epochs, batch_size=batch_size)
        if opt == "user-object" and self.user_opt is None:
            opt = "adam-object"
        if opt == "user-object":
            o = self.user_opt["ref" if m is self.ref else "model"]
            if lr is not None:
                o.lr = lr                # the user sets the rate on the object
            kw["optimizer"] = o
        elif opt in ("sgd-object", "momentum-sgd", "adam-object"):
            rate = lr if lr is not None else 0.01
            o = (nn.Adam(m.parameters(), lr=rate) if opt == "adam-object" else
                 nn.SGD(m.parameters(), lr=rate, momentum=0.9 if opt == "momentum-sgd" else 0.0))
            kw["optimizer"] = o
            if lr is not None:
                kw["learning_rate"] = lr
        else:
            kw["optimizer"] = opt
            kw["learning_rate"] = lr
        if validation:
            kw["validation_data"] = (self.Xv, self.yv)
        return kw

    def both(self, fn, compare_results=True):
        """Run fn on model and ref; the outcomes must agree; returns model's outcome."""
        out_m, exc_m, w_m = run(lambda: fn(self.model))
        out_r, exc_r, w_r = run(lambda: fn(self.ref))
        assert type(exc_m) is type(exc_r), f"model raised {exc_m!r}, ref raised {exc_r!r}"
        if exc_m is not None:
            assert str(exc_m) == str(exc_r)
        assert w_m == w_r, f"warnings differ: {w_m} vs {w_r}"
        if compare_results and exc_m is None:
            assert same_value(_plain(out_m), _plain(out_r)), f"{out_m} vs {out_r}"
        return out_m, exc_m, w_m

    def record_frozen(self):
        self.frozen = {n: p.data.copy() for n, p in named(self.model) if not p.requires_grad}

    # -- rules: ordinary training ----------------------------------------------------------
    @rule(epochs=st.integers(1, 2), opt=st.sampled_from(OPTS), lr=st.sampled_from(LRS),
          bs=st.one_of(st.none(), st.integers(1, 40)), validation=st.booleans())
    def fit(self, epochs, opt, lr, bs, validation):
        bs = None if bs is None else min(bs, self.n)
        kind_before = type(self.model.optimizer)
        _, exc, w = self.both(lambda m: m.fit(self.X, self.y, **self.fit_kwargs(
            m, epochs, opt, lr, bs, validation)))
        if exc is None and opt is None and self.model.optimizer is not None:
            # optimizer=None continues model.optimizer (documented): its kind never changes
            # without a word
            assert kind_before in (type(None), type(self.model.optimizer)) or w, (
                f"fit(optimizer=None) silently replaced a {kind_before.__name__} by a "
                f"{type(self.model.optimizer).__name__}")
        if exc is None:
            # a fit returned as trained has outputs that do not overflow
            with np.errstate(all="ignore"):
                out = self.model._inference(self.X, "check")
            assert np.isfinite(out).all(), (
                "fit returned normally but the model's outputs on its training data are not "
                f"finite (weights up to "
                f"{max(float(np.abs(p.data).max()) for p in self.model.parameters()):.3g})")
        if exc is not None:
            note(f"fit refused/stopped: {exc}")
            assert isinstance(exc, (ValueError, TypeError, FloatingPointError)), repr(exc)
            assert_clear_error(exc)

    @rule(batch=st.integers(1, 40), how=st.sampled_from(["isub", "sgd", "model-opt"]),
          lr=st.sampled_from([1e-3, 0.05]))
    def own_training_step(self, batch, how, lr):
        batch = min(batch, self.n)

        def step(m):
            m.zero_grad()
            loss = m.loss(self.X[:batch], self.y[:batch])
            loss.backward()
            if how == "isub":
                with tg.no_grad():
                    for p in m.parameters():
                        if p.requires_grad and p.grad is not None:
                            p -= lr * p.grad
            elif how == "sgd":
                nn.SGD(m.parameters(), lr=lr).step()
            elif m.optimizer is not None and holds_own(m):
                m.optimizer.step()
            for name, p in m.named_parameters():
                if not p.requires_grad:
                    assert p.grad is None, f"frozen {name} got a gradient"
            return float(loss.item())
        _, exc, _ = self.both(step)
        if exc is not None:
            assert_clear_error(exc)

    # -- rules: freezing and editing weights -----------------------------------------------
    @rule(i=st.integers(0, 7), frozen=st.booleans())
    def freeze(self, i, frozen):
        for m in (self.model, self.ref):
            ps = m.parameters()
            ps[i % len(ps)].requires_grad = not frozen
        self.record_frozen()

    @rule(i=st.integers(0, 7), how=st.sampled_from(["isub", "data-isub", "data-assign",
                                                    "data-setitem"]),
          scale=st.sampled_from([1e-3, 0.1, 1.0]), seed=st.integers(0, 99))
    def edit_weights(self, i, how, scale, seed):
        ps_m, ps_r = self.model.parameters(), self.ref.parameters()
        i %= len(ps_m)
        p, q = ps_m[i], ps_r[i]
        delta = (np.random.default_rng(seed).standard_normal(p.shape) * scale).astype(p.dtype)
        expected = p.data - delta
        if how == "isub" and not p.requires_grad:
            how = "data-isub"        # (-= on a frozen tensor makes a new one: documented)
        if how == "isub":
            with tg.no_grad():
                p -= delta
        elif how == "data-isub":
            p.data -= delta
        elif how == "data-assign":
            p.data = expected.copy()
        else:
            p.data[...] = expected
        assert np.array_equal(p.data, expected) and p.data.dtype == self.dtype, how
        q.data = expected.copy()
        self.record_frozen()

    @rule(i=st.integers(0, 7), perturb=st.booleans())
    def replace_parameter_tensor(self, i, perturb):
        """``layer.W = tg.Tensor(..., requires_grad=True)``: what Module's error message
        offers; the new tensor is a parameter in the same place."""
        for m in (self.model, self.ref):
            names = [n for n, _ in named(m)]
            name = names[i % len(names)]
            mod_path, attr = name.rsplit(".", 1)
            layer = dict(m.named_modules())[mod_path]
            old = getattr(layer, attr)
            value = old.data.copy() + (np.asarray(0.01, old.dtype) if perturb else 0)
            setattr(layer, attr, tg.Tensor(value, requires_grad=True))
            assert dict(named(m))[name] is getattr(layer, attr)
        self.record_frozen()

    # -- rules: saving, loading, state dicts -------------------------------------------------
    @rule(with_opt=st.sampled_from([False, True, "user's"]),
          how=st.sampled_from(["nn.save", "model.save", "no-suffix"]), extra=st.booleans())
    def save_and_load(self, with_opt, how, extra):
        suffix = how != "no-suffix"
        path = self.path(suffix)
        if with_opt == "user's":
            if self.user_opt is None:
                with_opt = True
            else:       # save(optimizer=<an nn.Adam/nn.SGD on model.parameters()>)
                mine, theirs = self.user_opt["model"], self.user_opt["ref"]
                stale = not all(a is b for a, b in zip(mine.params, self.model.parameters()))
                if stale:
                    with_opt = True
        kw = {"optimizer": mine if with_opt == "user's" else True} if with_opt else {}
        if extra:
            kw["extra"] = {"note": "x", "n": [1, 2]}
            kw["arrays"] = {"losses": np.arange(3.0)}
        if with_opt is True and self.model.optimizer is not None and not holds_own(self.model):
            _, exc, _ = run(lambda: nn.save(self.model, path, **kw))
            assert isinstance(exc, ValueError), repr(exc)
            assert_clear_error(exc, "optimizer")
            assert not os.path.exists(path) and not os.path.exists(path + ".npz")
            return
        if how == "nn.save":
            written = nn.save(self.model, path, **kw)
        else:
            written = self.model.save(path, **kw)
        assert os.path.exists(written)
        if extra:
            loaded, ex, arrs = nn.serialize.load_with_extra(path)
            assert ex == {"note": "x", "n": [1, 2]}
            assert np.array_equal(arrs["losses"], np.arange(3.0))
        else:
            loaded = nn.load(path)
        assert isinstance(loaded, nn.MLP)
        if not with_opt or (self.model.optimizer is None and with_opt is True):
            assert loaded.optimizer is None
            self.ref.optimizer = None          # the file carries none: ref drops it too
        elif with_opt == "user's":
            # the file carries the user's optimizer: it becomes the loaded model's
            assert type(loaded.optimizer) is type(mine)
            twin = type(theirs)(self.ref.parameters(), **theirs.config())
            twin.load_state_dict(theirs.state_dict())
            self.ref.optimizer = twin
        self._replace_model(loaded)

    @rule()
    def save_load_into_fresh_model_via_state_dict(self):
        fresh = nn.MLP(self.arch, self.acts, seed=self.seed + 1, dtype=self.dtype)
        keys = fresh.load_state_dict(self.model.state_dict())
        assert keys.missing_keys == [] and keys.unexpected_keys == []
        for (n, a), (_, b) in zip(named(fresh), named(self.model)):
            assert np.array_equal(a.data, b.data) and a.dtype == b.dtype, n
        with np.errstate(all="ignore"):
            pa, pb = run(lambda: fresh.predict(self.X)), run(lambda: self.model.predict(self.X))
        assert type(pa[1]) is type(pb[1])
        if pa[1] is None:
            assert np.array_equal(pa[0], pb[0], equal_nan=True)

    @rule(subset=st.sets(st.integers(0, 7)), strict=st.booleans(), unexpected=st.booleans(),
          seed=st.integers(0, 99), as_other_dtype=st.booleans())
    def load_state_dict(self, subset, strict, unexpected, seed, as_other_dtype):
        names = [n for n, _ in named(self.model)]
        r = np.random.default_rng(seed)
        state = self.model.state_dict()
        chosen = [names[i % len(names)] for i in subset]
        other = np.float32 if self.dtype == np.float64 else np.float64
        new = {}
        for name in chosen:
            v = (state[name] + r.standard_normal(state[name].shape) * 0.1)
            new[name] = v.astype(other if as_other_dtype else self.dtype)
        if unexpected:
            new["bogus.W"] = np.zeros(2)
        full = not strict or (set(new) == set(names))

        def load(m):
            return m.load_state_dict(dict(new), strict=strict)
        out, exc, _ = self.both(load, compare_results=False)
        if exc is not None:
            assert isinstance(exc, KeyError), repr(exc)
            assert strict and not full or (new and not (set(new) & set(names))) or not new, exc
            note(f"load_state_dict refused: {exc}")
            return
        assert not strict or full
        assert sorted(out.missing_keys) == sorted(set(names) - set(new))
        assert out.unexpected_keys == (["bogus.W"] if unexpected else [])
        for name, p in named(self.model):
            if name in new:
                assert np.array_equal(p.data, new[name].astype(self.dtype)), name
            assert p.dtype == self.dtype
        self.record_frozen()

    # -- rules: fits that fail ---------------------------------------------------------------
    def _completed_on_ref(self, before, kw_for, what):
        """After model's stopped fit: ref runs the epochs model completed."""
        done = self.model.epochs_trained - before
        note(f"{what}: {done} whole epoch(s) kept")
        assert done >= 0
        kw = kw_for(self.ref, max(done, 1))     # (sets the rate of the user's optimizer)
        self.ref_history = None
        if done:
            kw["epochs"] = done
            self.ref_history, exc, _ = run(lambda: self.ref.fit(self.X, self.y, **kw))
            assert exc is None, f"ref's {done}-epoch fit raised {exc!r}"
        return done

    @rule(epochs=st.integers(1, 3), opt=st.sampled_from(OPTS[1:]),
          lr=st.sampled_from([1e4, 1e8, 1e30, 1e300]),
          bs=st.one_of(st.none(), st.integers(1, 40)), mode=st.sampled_from(["raise", "warn"]))
    def fit_with_absurd_learning_rate(self, epochs, opt, lr, bs, mode):
        bs = None if bs is None else min(bs, self.n)
        before = self.model.epochs_trained
        saved = copy.deepcopy((self.model, self.ref, self.user_opt))

        def kw_for(m, e):
            kw = self.fit_kwargs(m, e, opt, lr, bs, False)
            return kw
        hist, exc, w = run(lambda: self.model.fit(self.X, self.y, on_nonfinite=mode,
                                                  **kw_for(self.model, epochs)))
        if isinstance(exc, (ValueError, TypeError)):
            assert_clear_error(exc)      # (everything frozen, a stale optimizer)
        elif exc is not None:
            assert isinstance(exc, FloatingPointError) and mode == "raise", repr(exc)
            assert_clear_error(exc, "epoch")
            assert "put back" in str(exc)
        done = self._completed_on_ref(before, kw_for, f"absurd lr {lr}")
        if hist is not None:
            assert len(hist) == done
            if done:
                assert list(hist) == list(self.ref_history)
            if done < epochs:
                assert hist.stop_reason and any("RuntimeWarning" in x for x in w)
        self._forget_huge_weights(saved)

    def _forget_huge_weights(self, saved):
        """An absurd learning rate may leave whole epochs of finite but huge weights (fit's
        promise): both models are put back so that later steps test something else."""
        assert_same(self.model, self.ref)
        # the user lowers the absurd rate left on the optimizers (model.optimizer, their own)
        opts = [m.optimizer for m in (self.model, self.ref)] + list((self.user_opt or {}).values())
        for o in opts:
            if o is not None and o.lr > 1:
                o.lr = 0.01
        big = max(float(np.abs(p.data).max()) for p in self.model.parameters())
        if big > 100:
            note(f"weights up to {big:.3g} after an absurd learning rate: both put back")
            self.model, self.ref, self.user_opt = saved
            self.record_frozen()

    @rule(where=st.sampled_from(["X", "y"]), row=st.integers(0, 39),
          value=st.sampled_from([np.nan, np.inf, -np.inf, 1e39]))
    def fit_with_bad_data(self, where, row, value):
        X, y = self.X.copy(), np.array(self.y, dtype=np.float64)
        row %= self.n
        if where == "X":
            X[row, 0] = value
        else:
            if self.model.output_kind == "softmax":
                y = y.astype(np.float64)
            y.flat[row] = value
        if value == 1e39 and (self.dtype == np.float64 or where == "y"
                              and self.model.output_kind == "softmax"):
            assume(False)
        _, exc, _ = run(lambda: self.model.fit(X, y, epochs=1, learning_rate=0.01))
        assert isinstance(exc, (ValueError, TypeError)), repr(exc)
        assert_clear_error(exc, where)

    @rule(epochs=st.integers(1, 3), opt=st.sampled_from(OPTS), lr=st.sampled_from(LRS),
          bs=st.one_of(st.none(), st.integers(1, 40)), at=st.integers(1, 60),
          kind=st.sampled_from(["ctrl-c", "error"]), validation=st.booleans())
    def fit_interrupted(self, epochs, opt, lr, bs, at, kind, validation):
        bs = None if bs is None else min(bs, self.n)
        before = self.model.epochs_trained
        self._inject(self.model, at, kind)
        try:
            _, exc, _ = run(lambda: self.model.fit(
                self.X, self.y, **self.fit_kwargs(self.model, epochs, opt, lr, bs, validation)))
        finally:
            self._uninject(self.model)
        self._check_injected(exc, kind)
        done = self._completed_on_ref(before, lambda m, e: self.fit_kwargs(m, e, opt, lr, bs,
                                                                           validation),
                                      "interrupted")
        if isinstance(exc, KeyboardInterrupt):     # .history: the epochs completed
            h = exc.history
            assert len(h) == done and len(h.val_loss) == (done if validation else 0)
            if done:
                assert same_value(_plain(h)[:4], _plain(self.ref_history)[:4])

    def _inject(self, m, at, kind):
        real = type(m)._loss
        calls = [0]

        def wrapped(X, t):
            calls[0] += 1
            if calls[0] == at:
                raise KeyboardInterrupt() if kind == "ctrl-c" else RuntimeError("injected")
            return real(m, X, t)
        object.__setattr__(m, "_loss", wrapped)

    @staticmethod
    def _uninject(m):
        m.__dict__.pop("_loss", None)

    @staticmethod
    def _check_injected(exc, kind):
        if exc is None:
            return
        if isinstance(exc, KeyboardInterrupt):
            assert kind == "ctrl-c"
            assert "put back" in str(exc) and hasattr(exc, "history")
        elif str(exc) == "injected":
            assert kind == "error" and type(exc) is RuntimeError
        else:
            # a refusal before training (e.g. everything frozen), or a stop of a model left
            # huge by an earlier absurd learning rate
            assert isinstance(exc, (ValueError, TypeError, FloatingPointError)), repr(exc)
            assert_clear_error(exc)

    # -- rules: checkpoints -----------------------------------------------------------------
    @rule(epochs=st.integers(1, 4), every=st.integers(1, 3), opt=st.sampled_from(OPTS),
          lr=st.sampled_from(LRS), bs=st.one_of(st.none(), st.integers(1, 40)),
          at=st.one_of(st.none(), st.integers(1, 60)),
          kind=st.sampled_from(["ctrl-c", "error", "absurd-lr"]),
          reload=st.sampled_from(["load", "resume", "keep"]))
    def fit_with_checkpoint(self, epochs, every, opt, lr, bs, at, kind, reload):
        saved = copy.deepcopy((self.model, self.ref, self.user_opt))
        self._fit_with_checkpoint(epochs, every, opt, lr, bs, at, kind, reload)
        self._forget_huge_weights(saved)

    def _fit_with_checkpoint(self, epochs, every, opt, lr, bs, at, kind, reload):
        bs = None if bs is None else min(bs, self.n)
        path = self.path(True)
        before = self.model.epochs_trained
        if kind == "absurd-lr" and at is not None:
            lr = 1e300
            if opt is None:
                opt = "sgd"

        def kw_for(m, e):
            return self.fit_kwargs(m, e, opt, lr, bs, False)
        if at is not None and kind != "absurd-lr":
            self._inject(self.model, at, kind)
        try:
            _, exc, _ = run(lambda: self.model.fit(self.X, self.y, checkpoint=path,
                                                   checkpoint_every=every,
                                                   **kw_for(self.model, epochs)))
        finally:
            self._uninject(self.model)
        if kind == "absurd-lr" and exc is not None and not isinstance(exc, (ValueError,
                                                                              TypeError)):
            assert isinstance(exc, FloatingPointError), repr(exc)
        else:
            self._check_injected(exc, kind)
        done = self._completed_on_ref(before, kw_for, "checkpointed fit")
        if exc is not None and isinstance(exc, (ValueError, TypeError)):
            assert done == 0            # refused before training
            return
        # saves follow the model's epochs (every k-th of epochs_trained)
        last_saved = (before + done) // every * every
        if done == 0 or (exc is not None and kind == "error" and last_saved <= before):
            assert not os.path.exists(path), "a checkpoint written for no saved epoch"
            return
        saved = nn.load(path)
        if exc is None or kind != "error":
            # a finished fit, a Ctrl-C and a non-finite stop all leave file == model
            assert_same(saved, self.model, "checkpoint file")
            if reload == "load":
                self._replace_model(saved)
            elif reload == "resume":
                total = self.model.epochs_trained + 2
                resumed, remaining = nn.checkpoint.resume(path, epochs=total)
                assert remaining == 2
                assert_same(resumed, self.model, "resumed checkpoint")
                self._replace_model(resumed)
        else:
            # another error: the model is put back, the file holds the last k-th epoch
            assert saved.epochs_trained == last_saved, (saved.epochs_trained, before, done,
                                                        every)

    @rule(epochs=st.integers(1, 4), every=st.integers(1, 3), opt=st.sampled_from(OPTS),
          lr=st.sampled_from([1e-3, 0.01, 0.1]), bs=st.one_of(st.none(), st.integers(1, 40)),
          fail_save=st.integers(1, 4), kind=st.sampled_from(["disk-full", "ctrl-c"]),
          where=st.sampled_from(["plain", "no-suffix", "new-folder"]))
    def fit_whose_checkpoint_save_fails(self, epochs, every, opt, lr, bs, fail_save, kind,
                                        where):
        """The fail_save-th checkpoint write dies half way (a full disk, or Ctrl-C inside
        np.savez): no temporary file stays, the file holds a whole epoch, the model is put
        back after its last whole epoch."""
        bs = None if bs is None else min(bs, self.n)
        self.files += 1
        path = os.path.join(self.dir, f"c{self.files}")
        path = (path + ".npz" if where == "plain" else path if where == "no-suffix" else
                os.path.join(path, "deeper", "ckpt.npz"))
        target = path if path.endswith(".npz") else path + ".npz"
        before = self.model.epochs_trained
        real = np.savez
        calls = [0]

        def savez(f, **arrays):
            calls[0] += 1
            if calls[0] == fail_save:
                f.write(b"PK\x03\x04 half a file")
                if kind == "ctrl-c":
                    raise KeyboardInterrupt()
                raise OSError(28, "No space left on device")
            return real(f, **arrays)
        nn.serialize.np.savez = savez
        try:
            _, exc, _ = run(lambda: self.model.fit(
                self.X, self.y, checkpoint=path, checkpoint_every=every,
                **self.fit_kwargs(self.model, epochs, opt, lr, bs, False)))
        finally:
            nn.serialize.np.savez = real
        note(f"save calls {calls[0]}; {exc!r}")
        done = self._completed_on_ref(before, lambda m, e: self.fit_kwargs(m, e, opt, lr, bs,
                                                                           False), "save fails")
        saves = [e for e in range(1, done + 1) if (before + e) % every == 0 or e == epochs]
        if isinstance(exc, (ValueError, TypeError)):
            assert_clear_error(exc)             # refused before training (all frozen)
            assert done == 0 and not os.path.exists(target)
            return
        if calls[0] < fail_save:
            assert exc is None and done == epochs
        elif kind == "disk-full":
            assert isinstance(exc, OSError), repr(exc)
            assert_clear_error(exc, "save")
        else:
            assert isinstance(exc, KeyboardInterrupt), repr(exc)
        if os.path.exists(target):
            saved = nn.load(target)
            if exc is None or kind == "ctrl-c":
                # finished, or Ctrl-C: the checkpoint is brought up to the model
                # (unless the catch-up save itself was the one that failed)
                if calls[0] != fail_save or saved.epochs_trained == self.model.epochs_trained:
                    assert_same(saved, self.model, "checkpoint")
            assert before < saved.epochs_trained <= self.model.epochs_trained
        else:
            assert done == 0 or fail_save == 1 or not saves, (done, saves, calls)

    # -- rules: the manual twin ----------------------------------------------------------------
    @rule(rows=st.integers(1, 12))
    def crosscheck(self, rows):
        manual = self.model.to_manual()
        W_before = [(l.W.copy(), l.b.copy()) for l in manual.layers]
        rep = _crosscheck(manual, self.X[:rows], self.y[:rows])
        for r in rep.rows:
            assert r.max_rel_diff <= rep.tol or r.max_abs_diff <= (
                1e-12 if self.dtype == np.float64 else 1e-5), str(rep)
        for l, (W, b) in zip(manual.layers, W_before):
            assert np.array_equal(l.W, W) and np.array_equal(l.b, b)

    @rule(how=st.sampled_from(["manual-file", "graph-file-as-manual", "from_manual"]),
          with_opt=st.booleans())
    def manual_twin_round_trip(self, how, with_opt):
        manual = self.model.to_manual()
        for l, (n, p) in zip([a for l in manual.layers for a in (l.W, l.b)], named(self.model)):
            assert np.array_equal(l, p.data) and l.dtype == p.dtype, n
        assert same_value(manual.rng.bit_generator.state, self.model.rng.bit_generator.state)
        assert manual.epochs_trained == self.model.epochs_trained
        path = self.path()
        if how == "manual-file":
            manual.save(path)
            back = nn.load(path)
            assert isinstance(back, nn.manual.MLP)
            for a, b in zip([a for l in back.layers for a in (l.W, l.b)],
                            [a for l in manual.layers for a in (l.W, l.b)]):
                assert np.array_equal(a, b) and a.dtype == b.dtype
            assert same_value(back.rng.bit_generator.state, manual.rng.bit_generator.state)
            assert back.epochs_trained == manual.epochs_trained
            graph = nn.load(path, kind="graph")
        elif how == "graph-file-as-manual":
            with_opt = with_opt and self.model.optimizer is not None and holds_own(self.model)
            self.model.save(path, optimizer=with_opt)
            back = nn.load(path, kind="manual")
            assert isinstance(back, nn.manual.MLP)
            graph = nn.MLP.from_manual(back)
        else:
            graph = nn.MLP.from_manual(manual)
        assert_same(graph, self.model, how, optimizer=False) if all(
            p.requires_grad for p in self.model.parameters()) else None
        for (n, a), (_, b) in zip(named(graph), named(self.model)):
            assert np.array_equal(a.data, b.data) and a.dtype == b.dtype, n
        out_g = graph.predict(self.X)
        out_m = self.model.predict(self.X)
        assert np.array_equal(out_g, out_m, equal_nan=True)

    @precondition(lambda self: self.model is not None)
    @rule(epochs=st.integers(1, 2), bs=st.one_of(st.none(), st.integers(1, 40)),
          lr=st.sampled_from([1e-3, 0.05]))
    def manual_and_graph_train_alike(self, epochs, bs, lr):
        """The manual twin and a graph copy trained with plain SGD from the same state stay
        close (float64: 1e-10 relative gradients; a few steps)."""
        assume(self.dtype == np.float64)
        bs = None if bs is None else min(bs, self.n)
        manual = self.model.to_manual()
        graph = nn.MLP.from_manual(manual)

        def near_clipping(m):
            if m.output_kind not in ("softmax", "sigmoid"):
                return False
            p = m.predict_proba(self.X)
            return bool((p < 1e-9).any() or (p > 1 - 1e-9).any())
        clipped = near_clipping(graph)
        h_m, e_m, _ = run(lambda: manual.fit(self.X, self.y, epochs=epochs, learning_rate=lr,
                                             batch_size=bs))
        h_g, e_g, _ = run(lambda: graph.fit(self.X, self.y, epochs=epochs, learning_rate=lr,
                                            batch_size=bs, optimizer="sgd"))
        assert type(e_m) is type(e_g), (e_m, e_g)
        if e_m is not None:      # both stop, at the same epoch and batch (documented)
            assert isinstance(e_m, FloatingPointError), repr(e_m)
            at = lambda e: str(e).split(" at ", 1)[1].split(";")[0]
            assert at(e_m) == at(e_g), (str(e_m), str(e_g))
            assert manual.epochs_trained == graph.epochs_trained
            return
        clipped = clipped or near_clipping(graph)
        if not clipped:     # (the manual loss clips probabilities at 1e-12: documented)
            np.testing.assert_allclose(h_m, list(h_g), rtol=1e-8, atol=1e-12)
        for l, lin in zip(manual.layers, graph.linears):
            np.testing.assert_allclose(l.W, lin.W.data, rtol=1e-7, atol=1e-10)
        assert same_value(manual.rng.bit_generator.state, graph.rng.bit_generator.state)
        assert manual.epochs_trained == graph.epochs_trained

    # -- rules: an optimizer object the user keeps ---------------------------------------------
    @rule(kind=st.sampled_from(["adam", "adam-custom", "sgd", "momentum"]),
          lr=st.sampled_from([1e-3, 0.01, 0.1]))
    def make_user_optimizer(self, kind, lr):
        def make(m):
            ps = m.parameters()
            return (nn.Adam(ps, lr=lr) if kind == "adam" else
                    nn.Adam(ps, lr=lr, betas=(0.8, 0.99), eps=1e-6) if kind == "adam-custom" else
                    nn.SGD(ps, lr=lr, momentum=0.5 if kind == "momentum" else 0.0))
        self.user_opt = {"model": make(self.model), "ref": make(self.ref)}

    @precondition(lambda self: self.user_opt is not None)
    @rule()
    def stale_user_optimizer_is_refused(self):
        """An optimizer built on the parameters of the model before a load is refused."""
        path = self.path()
        with_opt = self.model.optimizer is not None and holds_own(self.model)
        self.model.save(path, optimizer=with_opt)
        loaded = nn.load(path)
        stale = self.user_opt["model"]
        _, exc, _ = run(lambda: loaded.fit(self.X, self.y, epochs=1, optimizer=stale))
        assert isinstance(exc, ValueError), repr(exc)
        assert_clear_error(exc, "optimizer")
        assert_same(loaded, self.model, "loaded model after a refused fit", optimizer=with_opt)

    def _replace_model(self, new):
        """The model is now another object (a load): the user's optimizer holds the old
        one's parameters, so the user makes a new one."""
        self.model = new
        self.user_opt = None

    # -- rules: refusals ----------------------------------------------------------------------
    @rule(bad=st.sampled_from([
        ("epochs", 0), ("epochs", 1.5), ("learning_rate", -1.0), ("learning_rate", np.nan),
        ("batch_size", 0), ("batch_size", 10_000), ("optimizer", "rmsprop"),
        ("on_nonfinite", "ignore"), ("checkpoint_every", 2), ("validation_data", (1,)),
        ("checkpoint", 3), ("learning_rate", "0.1"), ("batch_size", True)]))
    def refused_fit(self, bad):
        name, value = bad
        kw = dict(epochs=1, learning_rate=0.01)
        kw[name] = value
        _, exc, _ = self.both(lambda m: m.fit(self.X, self.y, **kw))
        assert isinstance(exc, (ValueError, TypeError)), repr(exc)
        if "every parameter is frozen" in str(exc):
            assert not any(p.requires_grad for p in self.model.parameters())
            name = "frozen"
        assert_clear_error(exc, name)

    @rule(bad=st.sampled_from(["wrong-shape", "nan", "ints", "ragged"]), i=st.integers(0, 7))
    def refused_load_state_dict(self, bad, i):
        names = [n for n, _ in named(self.model)]
        name = names[i % len(names)]
        state = self.model.state_dict()
        if bad == "wrong-shape":
            state[name] = np.zeros((2, 2, 2))
        elif bad == "nan":
            state[name] = state[name].copy()
            state[name].flat[0] = np.nan
        elif bad == "ints":
            state[name] = np.zeros(state[name].shape, dtype=np.int64)
        else:
            state[name] = [[1.0, 2.0], [3.0]]
        _, exc, _ = self.both(lambda m: m.load_state_dict(state))
        assert isinstance(exc, (ValueError, TypeError)), repr(exc)
        assert_clear_error(exc, name)

    @rule(n=st.integers(1, 3))
    def pending_graph_blocks_load_state_dict(self, n):
        """A loss not yet backpropagated holds the weights read-only: load_state_dict and
        an optimizer step refuse; after backward (or del) everything works again."""
        losses = [self.model.loss(self.X[:4], self.y[:4]) for _ in range(n)]
        held = [n for n, p in named(self.model) if tg.held_by_graph(p.data)]
        note(f"held by the pending graph: {held}")
        _, exc, _ = run(lambda: self.model.load_state_dict(self.model.state_dict()))
        if held:
            assert isinstance(exc, RuntimeError), repr(exc)
            assert_clear_error(exc, "backward")
        else:                  # (a one-layer network's graph saves no weight)
            assert exc is None, repr(exc)
            self.ref.load_state_dict(self.ref.state_dict())
        del exc
        if any(p.requires_grad for p in self.model.parameters()):
            for loss in losses:
                loss.backward()
        losses = loss = None
        self.model.zero_grad()
        assert not any(tg.held_by_graph(p.data) for p in self.model.parameters())

    # -- invariants ---------------------------------------------------------------------------
    @invariant()
    def same_as_the_shadow(self):
        if self.model is None:
            return
        assert_same(self.model, self.ref)

    @invariant()
    def users_optimizer_same_as_the_shadows(self):
        if self.user_opt is None:
            return
        a, b = self.user_opt["model"], self.user_opt["ref"]
        assert type(a) is type(b) and a.config() == b.config(), (a.config(), b.config())
        assert same_value(a.state_dict(), b.state_dict()), (
            f"the user's {type(a).__name__} differs from the shadow's: "
            f"{getattr(a, 't', None)} vs {getattr(b, 't', None)} steps")

    @invariant()
    def frozen_parameters_never_change(self):
        if self.model is None:
            return
        for name, p in named(self.model):
            if name in self.frozen:
                assert not p.requires_grad, name
                assert np.array_equal(p.data, self.frozen[name]), f"frozen {name} changed"
            else:
                assert p.requires_grad, name

    @invariant()
    def no_half_written_files(self):
        left = [f for f in os.listdir(self.dir) if f.endswith(".tmp") or ".npz." in f]
        assert not left, left

    @invariant()
    def weights_and_predictions_finite(self):
        if self.model is None:
            return
        for name, p in named(self.model):
            assert np.isfinite(p.data).all(), name
            assert p.dtype == self.dtype, (name, p.dtype)
        if self.model.output_kind in ("softmax", "sigmoid"):
            big = max(float(np.abs(p.data).max()) for p in self.model.parameters())
            _, exc, _ = run(lambda: self.model.predict_proba(self.X))
            pr = None if exc is not None else _
            if big < 1e15:
                assert exc is None and np.isfinite(self.model.predict_proba(self.X)).all()
            else:
                note(f"weights up to {big:.3g} (an absurd learning rate); predict_proba: "
                     f"{'finite' if exc is None else exc}")


def _plain(out):
    """Results compared between model and ref: histories as lists (plus their extras)."""
    if isinstance(out, nn.History):
        return [list(out), out.train_accuracy, out.val_loss, out.val_accuracy, out.stop_reason]
    return out


Lifecycle.TestCase.settings = settings(
    max_examples=int(os.environ.get("LIFECYCLE_EXAMPLES", 40)),
    stateful_step_count=int(os.environ.get("LIFECYCLE_STEPS", 30)),
    deadline=None, suppress_health_check=list(HealthCheck), print_blob=True,
    derandomize=not os.environ.get("LIFECYCLE_RANDOM"), database=None)
TestLifecycle = Lifecycle.TestCase


# ---------------------------------------------------------------------------------------
# the hand-written MLP's life: fit, stops, checkpoints, files, its own loop, crosscheck
# ---------------------------------------------------------------------------------------

def manual_arrays(m):
    return [a for layer in m.layers for a in (layer.W, layer.b)]


def assert_same_manual(a, b, what="manual model"):
    assert isinstance(a, nn.manual.MLP) and isinstance(b, nn.manual.MLP), (type(a), type(b))
    assert a.layer_sizes == b.layer_sizes and np.dtype(a.dtype) == np.dtype(b.dtype)
    for i, (x, y) in enumerate(zip(manual_arrays(a), manual_arrays(b))):
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: array {i} dtype/shape"
        assert np.array_equal(x, y), f"{what}: array {i} differs"
    assert same_value(a.rng.bit_generator.state, b.rng.bit_generator.state), f"{what}: rng"
    assert a.epochs_trained == b.epochs_trained, \
        f"{what}: epochs_trained {a.epochs_trained} != {b.epochs_trained}"


class ManualLifecycle(RuleBasedStateMachine):

    def __init__(self):
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="tg-manual-")
        self.model = self.ref = None
        self.files = 0

    def teardown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self):
        self.files += 1
        return os.path.join(self.dir, f"m{self.files}.npz")

    @initialize(arch=st.sampled_from(ARCHS), hidden=st.sampled_from(HIDDEN),
                output=st.sampled_from(OUTPUTS),
                dtype=st.sampled_from([np.float32, np.float64]),
                seed=st.integers(0, 2**16), n=st.integers(12, 40), data_seed=st.integers(0, 99))
    def build(self, arch, hidden, output, dtype, seed, n, data_seed):
        acts = [hidden_activation(hidden)] * (len(arch) - 2) + [output]
        self.arch, self.acts, self.dtype = arch, acts, np.dtype(dtype)
        self.model = nn.manual.MLP(arch, acts, seed=seed, dtype=dtype)
        self.ref = nn.manual.MLP(arch, acts, seed=seed, dtype=dtype)
        r = np.random.default_rng(data_seed)
        self.X = r.standard_normal((n, arch[0]))
        K = arch[-1]
        self.y = (r.integers(0, K, n) if output == "softmax" else
                  r.integers(0, 2, (n, K)).astype(np.float64) if output == "sigmoid" else
                  r.standard_normal((n, K)))
        self.n = n
        note(f"nn.manual.MLP({arch}, {acts}, seed={seed}, dtype={np.dtype(dtype).name}); n={n}")

    def both(self, fn):
        out_m, exc_m, w_m = run(lambda: fn(self.model))
        out_r, exc_r, w_r = run(lambda: fn(self.ref))
        assert type(exc_m) is type(exc_r), f"model raised {exc_m!r}, ref raised {exc_r!r}"
        if exc_m is not None:
            assert str(exc_m) == str(exc_r)
            assert_clear_error(exc_m)
        else:
            assert same_value(out_m, out_r), (out_m, out_r)
        assert w_m == w_r
        return out_m, exc_m

    def completed_on_ref(self, before, lr, bs, what):
        done = self.model.epochs_trained - before
        note(f"{what}: {done} whole epoch(s) kept")
        if done:
            self.ref.fit(self.X, self.y, epochs=done, learning_rate=lr, batch_size=bs)
        return done

    @rule(epochs=st.integers(1, 2), lr=st.sampled_from([1e-3, 0.01, 0.1, 0.5]),
          bs=st.one_of(st.none(), st.integers(1, 40)))
    def fit(self, epochs, lr, bs):
        bs = None if bs is None else min(bs, self.n)
        self.both(lambda m: m.fit(self.X, self.y, epochs=epochs, learning_rate=lr,
                                  batch_size=bs))

    @rule(batch=st.integers(1, 40), lr=st.sampled_from([1e-3, 0.05]), check=st.booleans())
    def own_step(self, batch, lr, check):
        """forward, backward, (a crosscheck in between, which must change nothing), update."""
        batch = min(batch, self.n)
        Xb, yb = self.X[:batch], self.y[:batch]
        for m in (self.model, self.ref):
            m.forward(Xb)
            m.backward(yb)
        if check:
            _crosscheck(self.model, Xb, yb, n_numerical=1)
        for m in (self.model, self.ref):
            m.update(lr)

    @rule(i=st.integers(0, 7), scale=st.sampled_from([1e-3, 0.1]), seed=st.integers(0, 99))
    def edit_weights(self, i, scale, seed):
        arrs_m, arrs_r = manual_arrays(self.model), manual_arrays(self.ref)
        i %= len(arrs_m)
        delta = (np.random.default_rng(seed).standard_normal(arrs_m[i].shape)
                 * scale).astype(self.dtype)
        arrs_m[i] -= delta
        arrs_r[i] -= delta

    @rule(epochs=st.integers(1, 3), lr=st.sampled_from([1e4, 1e8, 1e30, 1e300]),
          bs=st.one_of(st.none(), st.integers(1, 40)), mode=st.sampled_from(["raise", "warn"]))
    def fit_with_absurd_learning_rate(self, epochs, lr, bs, mode):
        bs = None if bs is None else min(bs, self.n)
        before = self.model.epochs_trained
        saved = copy.deepcopy((self.model, self.ref))
        hist, exc, w = run(lambda: self.model.fit(self.X, self.y, epochs=epochs,
                                                  learning_rate=lr, batch_size=bs,
                                                  on_nonfinite=mode))
        if exc is not None:
            assert isinstance(exc, FloatingPointError) and mode == "raise", repr(exc)
            assert_clear_error(exc, "epoch")
        done = self.completed_on_ref(before, lr, bs, f"absurd lr {lr}")
        if hist is not None:
            assert len(hist) == done
        assert_same_manual(self.model, self.ref)
        big = max(float(np.abs(a).max()) for a in manual_arrays(self.model))
        if big > 100:
            self.model, self.ref = saved

    @rule(epochs=st.integers(1, 3), lr=st.sampled_from([1e-3, 0.01, 0.1]),
          bs=st.one_of(st.none(), st.integers(1, 40)), at=st.integers(1, 60),
          kind=st.sampled_from(["ctrl-c", "error"]),
          every=st.one_of(st.none(), st.integers(1, 3)),
          reload=st.sampled_from(["load", "resume", "as-graph", "keep"]))
    def fit_interrupted_or_checkpointed(self, epochs, lr, bs, at, kind, every, reload):
        bs = None if bs is None else min(bs, self.n)
        before = self.model.epochs_trained
        path = self.path() if every is not None else None
        real = type(self.model)._backward
        calls = [0]
        m = self.model

        def wrapped(targets):
            calls[0] += 1
            if calls[0] == at:
                raise KeyboardInterrupt() if kind == "ctrl-c" else RuntimeError("injected")
            return real(m, targets)
        m._backward = wrapped
        try:
            _, exc, _ = run(lambda: m.fit(self.X, self.y, epochs=epochs, learning_rate=lr,
                                          batch_size=bs, checkpoint=path,
                                          checkpoint_every=every))
        finally:
            del m._backward
        Lifecycle._check_injected(exc, kind)
        done = self.completed_on_ref(before, lr, bs, "interrupted")
        if path is None:
            return
        # saves follow the model's epochs (every k-th of epochs_trained); an error other than
        # Ctrl-C writes no catch-up file, so the file holds the last such epoch of this fit
        last_saved = (before + done) // every * every if every else 0
        if done == 0 or (exc is not None and kind == "error" and last_saved <= before):
            assert not os.path.exists(path), "a checkpoint written for no saved epoch"
            return
        if exc is not None and kind == "error":
            assert nn.load(path).epochs_trained == last_saved
            return
        saved = nn.load(path)
        assert_same_manual(saved, self.model, "checkpoint file")
        if reload == "load":
            self.model = saved
        elif reload == "resume":
            resumed, remaining = nn.checkpoint.resume(path, epochs=self.model.epochs_trained + 1)
            assert remaining == 1
            assert_same_manual(resumed, self.model, "resumed")
            self.model = resumed
        elif reload == "as-graph":
            graph = nn.load(path, kind="graph")
            self.model = graph.to_manual()

    @rule(via=st.sampled_from(["manual", "graph"]))
    def save_and_load(self, via):
        path = self.path()
        self.model.save(path)
        if via == "manual":
            self.model = nn.load(path)
        else:
            g = nn.load(path, kind="graph")
            assert isinstance(g, nn.MLP) and g.optimizer is None
            p2 = self.path()
            g.save(p2)
            self.model = nn.load(p2, kind="manual")

    @rule(rows=st.integers(1, 12))
    def crosscheck_agrees(self, rows):
        rep = _crosscheck(self.model, self.X[:rows], self.y[:rows])
        for r in rep.rows:
            assert r.max_rel_diff <= rep.tol or r.max_abs_diff <= (
                1e-12 if self.dtype == np.float64 else 1e-5), str(rep)

    @invariant()
    def same_as_the_shadow(self):
        if self.model is not None:
            assert_same_manual(self.model, self.ref)

    @invariant()
    def no_half_written_files(self):
        left = [f for f in os.listdir(self.dir) if f.endswith(".tmp") or ".npz." in f]
        assert not left, left

    @invariant()
    def weights_finite(self):
        if self.model is not None:
            for a in manual_arrays(self.model):
                assert np.isfinite(a).all() and a.dtype == self.dtype


ManualLifecycle.TestCase.settings = Lifecycle.TestCase.settings
TestManualLifecycle = ManualLifecycle.TestCase
