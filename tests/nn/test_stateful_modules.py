"""A stateful fuzz of the generic module API: user-composed ``nn.Module`` trees driven through
random sequences of what users do, with a plain-numpy shadow model checked after every step.

``ModuleMachine`` builds a random tree (``Sequential`` at the top, or a user ``Net`` holding a
``Sequential`` body, a ``Linear`` head and a parameter of its own) from: ``Linear`` (bias or
not, float32/float64, he/xavier), ``ActivationLayer`` with every activation of the
``activations`` package (by name and as objects, one object or one layer shared by two places),
``SwiGLU`` (bias or not), nested ``Sequential``, and user modules: ``Affine`` (Tensor
attributes, plus a constant that must not register), ``Residual`` (x + f(x)), ``Twice`` (one
``Linear`` applied twice), ``Tied`` (a weight registered under two names), ``Remember`` (keeps
its last output as an attribute); a ``Linear`` may also appear twice in one ``Sequential``.
Model dtypes: all float64, all float32, or mixed per layer.

Then, in any order: forward passes with a loss (``SoftmaxCrossEntropy`` on labels, one-hot or
soft rows; ``MSELoss``; ``BCEWithLogits``; ``BCELoss`` after a sigmoid layer) on 1-D, 2-D or
3-D inputs of float64/float32/int dtype, some inputs requiring grad; backward now or later
(graphs kept pending, ``retain_graph``, a second backward after release); inference under
``no_grad``; ``zero_grad`` of the module, of an optimizer, of one tensor; ``SGD`` (momentum or
not) and ``Adam`` (betas, eps) on all, some or overlapping parameter sets, orphans included;
optimizer ``state_dict``/``load_state_dict`` round trips into a fresh optimizer and refused
loads; module ``state_dict``/``load_state_dict`` (strict or not, subsets, other values, other
dtypes, unexpected keys, refused loads); freezing and unfreezing; replacing a parameter
tensor (``layer.W = tg.Tensor(...)``), dropping a bias (``layer.b = None``), in-place
updates under ``no_grad`` (and refused ones), ``.data`` replacement; ``copy.deepcopy`` of the
model with its optimizers (checked, then adopted); ``pickle`` round trips; custom ``label``s;
central differences on float64 models; refused calls of every kind.

The shadow: a float64 numpy re-implementation of every layer's forward and backward and of
each loss, run on the values the test expects each parameter to hold; its own SGD/Adam state.
Checked: forward values and dtypes; every ``.grad`` (and an input's) after each backward
(float64 to 1e-9, float32 to a few 1e-3), and samples against float64 central differences of
the library's own loss; optimizer steps (SGD bit for bit; Adam's moments bit for bit and its
parameters to 1e-12 relative in float64); ``named_parameters()`` names, order (own parameters
first, then children), dedup of shared tensors, frozen ones kept; ``state_dict`` keys (every
name) and values bit for bit, as copies; graph node labels (each node carries the label of the
module that recorded it); ``Sequential`` labels numbered. A refused call must leave every
parameter, ``.grad``, flag and optimizer state untouched, and be a clear exception: raised by
the library itself (innermost frame in nn/, tinygraph/ or activations/), not an
AttributeError or an undocumented KeyError, naming the operation.

Run:  nice -n 19 python -m pytest tests/nn/test_stateful_modules.py -q -s
Environment: NN_FUZZ_EXAMPLES (default 100, 4-10 s here; 200-300 to hunt), NN_FUZZ_STEPS
(default 30), NN_FUZZ_SEED (derandomized by default), NN_FUZZ_NO_SHRINK=1.

What it found, each fixed and now with a test of its own (tests/nn/test_graph_nodes.py,
tests/nn/test_optim.py): a tensor made by an op kept as a module attribute (``self.last =
out``) was registered as a parameter (optimizers then refused the model, ``load_state_dict``
failed half way); an optimizer step over a parameter whose ``.data`` or ``.grad`` had another
shape than its state updated the parameters before it and then raised numpy's broadcast
error; modules in a nested list/dict or a set were silently unregistered.
"""
from __future__ import annotations

import collections
import copy
import gc
import math
import os
import pickle
import traceback
import warnings

import numpy as np
import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import activations as acts
import nn
import tinygraph as tg
from _fuzz import fuzz_test_case
from tinygraph import graph as tg_graph

PKG_DIRS = tuple(os.path.dirname(m.__file__) + os.sep for m in (nn, tg, acts))
STATS: collections.Counter = collections.Counter()

F64, F32 = np.dtype(np.float64), np.dtype(np.float32)
EPS_FD = 1e-6


class CheckFailure(AssertionError):
    pass


def fail(msg):
    raise CheckFailure(msg)


# ---------------------------------------------------------------------------------------
# user modules
# ---------------------------------------------------------------------------------------

class Affine(nn.Module):
    """x * scale + shift * const: two parameters and a constant tensor (not a parameter)."""

    def __init__(self, d, dtype, rng):
        super().__init__()
        self.scale = tg.Tensor((1 + 0.3 * rng.standard_normal(d)).astype(dtype),
                               requires_grad=True, name="scale")
        self.shift = tg.Tensor((0.3 * rng.standard_normal(d)).astype(dtype),
                               requires_grad=True, name="shift")
        self.const = tg.Tensor(np.full(d, 0.5, dtype))

    def forward(self, x):
        return x * self.scale + self.shift * self.const


class Residual(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return x + self.inner(x)


class Twice(nn.Module):
    """One Linear applied twice (a module used at two places)."""

    def __init__(self, lin, act):
        super().__init__()
        self.lin = lin
        self.act = act

    def forward(self, x):
        return self.lin(self.act(self.lin(x)))


class Tied(nn.Module):
    """Encoder weight reused as the decoder's: one tensor under two names."""

    def __init__(self, d, h, dtype, rng):
        super().__init__()
        self.enc = nn.Linear(d, h, rng=rng, dtype=dtype)
        self.dec_W = self.enc.W

    def forward(self, x):
        return tg.matmul(tg.tanh(self.enc(x)), self.dec_W)


class Remember(nn.Module):
    """Keeps its last output as an attribute (for a later look, as users do)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.last = None

    def forward(self, x):
        out = self.inner(x)
        self.last = out
        return out


class Net(nn.Module):
    def __init__(self, body, head, k, dtype, rng, scalar=False):
        super().__init__()
        self.body = body
        self.head = head
        self.temp = tg.Tensor((1 + 0.2 * rng.standard_normal(() if scalar else k)).astype(dtype),
                              requires_grad=True, name="temp")

    def forward(self, x):
        return self.head(self.body(x)) * self.temp


# ---------------------------------------------------------------------------------------
# the shadow: float64 numpy forward/backward per module kind
# ---------------------------------------------------------------------------------------

ACT_CHOICES = ["relu", "leaky_relu", "LeakyReLU", "sigmoid", "tanh", "gelu", "gelu_tanh",
               "silu", "swish", "obj:LeakyReLU(0.2)", "obj:GELU(approx)", "obj:SiLU",
               "obj:ReLU", "obj:Tanh"]
_erfc = np.vectorize(math.erfc, otypes=[np.float64])


def make_activation(choice):
    """(argument for ActivationLayer, canonical kind, alpha)."""
    if choice == "obj:LeakyReLU(0.2)":
        return acts.LeakyReLU(alpha=0.2), "leaky", 0.2
    if choice == "obj:GELU(approx)":
        return acts.GELU(approximate=True), "gelu_tanh", None
    if choice == "obj:SiLU":
        return acts.SiLU(), "silu", None
    if choice == "obj:ReLU":
        return acts.ReLU(), "relu", None
    if choice == "obj:Tanh":
        return acts.Tanh(), "tanh", None
    kind = {"relu": "relu", "leaky_relu": "leaky", "LeakyReLU": "leaky", "sigmoid": "sigmoid",
            "tanh": "tanh", "gelu": "gelu", "gelu_tanh": "gelu_tanh", "silu": "silu",
            "swish": "silu"}[choice]
    return choice, kind, (0.01 if kind == "leaky" else None)


def sig(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


def act_eval(kind, alpha, x):
    """(f(x), f'(x)) in float64."""
    if kind == "relu":
        return np.maximum(x, 0), (x > 0).astype(np.float64)
    if kind == "leaky":
        return np.where(x > 0, x, alpha * x), np.where(x > 0, 1.0, alpha)
    if kind == "sigmoid":
        s = sig(x)
        return s, s * (1 - s)
    if kind == "tanh":
        t = np.tanh(x)
        return t, 1 - t * t
    if kind == "gelu":
        phi_c = 0.5 * _erfc(-x / math.sqrt(2))
        pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        return x * phi_c, phi_c + x * pdf
    if kind == "gelu_tanh":
        c = math.sqrt(2 / math.pi)
        u = c * (x + 0.044715 * x ** 3)
        t = np.tanh(u)
        return 0.5 * x * (1 + t), 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
    if kind == "silu":
        s = sig(x)
        return x * s, s * (1 + x * (1 - s))
    raise AssertionError(kind)


class Spec:
    """The test's own description of one module: kind, the library module, its own parameter
    slots (attribute -> tensor, in registration order) and its children (attribute, Spec)."""

    def __init__(self, kind, mod, **kw):
        self.kind = kind
        self.mod = mod
        self.slots: dict = {}
        self.children: list = []
        self.__dict__.update(kw)


class Ctx:
    """One shadow pass: parameter values, gradient sums, uses (for labels), kink margins."""

    def __init__(self, machine):
        self.m = machine
        self.grads: dict = {}
        self.uses = collections.defaultdict(set)
        self.act_uses = collections.defaultdict(set)
        self.kink = math.inf
        self.f32 = False

    def val(self, t):
        v = self.m.expect[id(t)]
        if v.dtype == F32:
            self.f32 = True
        return v.astype(np.float64)

    def add(self, t, g):
        if not self.m.erg[id(t)]:
            return
        g = np.asarray(g, dtype=np.float64)
        prev = self.grads.get(id(t))
        self.grads[id(t)] = g.copy() if prev is None else prev + g

    def use(self, t, spec):
        self.uses[id(t)].add(self.m.labels[id(spec.mod)])


def promote(*dts):
    out = dts[0]
    for d in dts[1:]:
        out = np.promote_types(out, d)
    return np.dtype(out)


def sfwd(s, x, ctx):
    """(y, back, dtype) of spec s on float64 x (dtype: the library output dtype given
    ctx.dt, the input's dtype, passed through ctx)."""
    k = s.kind
    m = ctx.m
    if k == "linear":
        W_t = s.slots["W"]
        b_t = s.slots.get("b")
        W = ctx.val(W_t)
        b = ctx.val(b_t) if b_t is not None else None
        ctx.use(W_t, s)
        if b_t is not None:
            ctx.use(b_t, s)
        y = x @ W.T + (b if b is not None else 0.0)
        wdt = m.expect[id(W_t)].dtype
        dt = promote(wdt, m.expect[id(b_t)].dtype) if b_t is not None else wdt

        def back(gy):
            g2 = gy.reshape(-1, gy.shape[-1])
            x2 = x.reshape(-1, x.shape[-1])
            ctx.add(W_t, g2.T @ x2)
            if b_t is not None:
                ctx.add(b_t, g2.sum(axis=0))
            return gy @ W
        return y, back, (lambda din: dt)
    if k == "act":
        ctx.act_uses[id(s.obj)].add(m.labels[id(s.mod)])
        if s.akind in ("relu", "leaky") and x.size:
            ctx.kink = min(ctx.kink, float(np.min(np.abs(x))))
        y, d = act_eval(s.akind, s.alpha, x)
        return y, (lambda gy: gy * d), (lambda din: din if din.kind == "f" else F64)
    if k == "seq" or k == "remember":
        chain = [c for _, c in s.children]
        backs, dts = [], []
        for c in chain:
            x, b, dtf = sfwd(c, x, ctx)
            backs.append(b)
            dts.append(dtf)

        def back(gy):
            for b in reversed(backs):
                gy = b(gy)
            return gy

        def dtype(din):
            for f in dts:
                din = f(din)
            return din
        return x, back, dtype
    if k == "affine":
        sc_t, sh_t = s.slots["scale"], s.slots["shift"]
        sc, sh = ctx.val(sc_t), ctx.val(sh_t)
        ctx.use(sc_t, s)
        ctx.use(sh_t, s)
        y = x * sc + sh * 0.5
        pdt = promote(m.expect[id(sc_t)].dtype, m.expect[id(sh_t)].dtype, s.const_dt)

        def back(gy):
            g2 = gy.reshape(-1, gy.shape[-1])
            ctx.add(sc_t, (g2 * x.reshape(-1, x.shape[-1])).sum(axis=0))
            ctx.add(sh_t, 0.5 * g2.sum(axis=0))
            return gy * sc
        return y, back, (lambda din: promote(din, pdt))
    if k == "residual":
        (_, inner), = s.children
        y, b, dtf = sfwd(inner, x, ctx)
        return x + y, (lambda gy: gy + b(gy)), (lambda din: promote(din, dtf(din)))
    if k == "twice":
        lin = dict(s.children)["lin"]
        act = dict(s.children)["act"]
        h1, b1, d1 = sfwd(lin, x, ctx)
        h2, b2, d2 = sfwd(act, h1, ctx)
        y, b3, d3 = sfwd(lin, h2, ctx)
        return y, (lambda gy: b1(b2(b3(gy)))), (lambda din: d3(d2(d1(din))))
    if k == "tied":
        enc = dict(s.children)["enc"]
        D_t = s.slots["dec_W"]
        h, b1, d1 = sfwd(enc, x, ctx)
        t = np.tanh(h)
        D = ctx.val(D_t)
        ctx.use(D_t, s)
        y = t @ D
        dt = m.expect[id(D_t)].dtype

        def back(gy):
            g2 = gy.reshape(-1, gy.shape[-1])
            ctx.add(D_t, t.reshape(-1, t.shape[-1]).T @ g2)
            gt = gy @ D.T
            return b1(gt * (1 - t * t))
        return y, back, (lambda din: promote(d1(din), dt))
    if k == "swiglu":
        c = dict(s.children)
        g, bg, d1 = sfwd(c["w1"], x, ctx)
        u, bu, d3 = sfwd(c["w3"], x, ctx)
        a, ba, da = sfwd(c["act"], g, ctx)
        h = a * u
        y, by, d2 = sfwd(c["w2"], h, ctx)
        w1dt = m.expect[id(c["w1"].slots["W"])].dtype

        def dtype(din):                 # the block casts an input it would widen, once
            if promote(din, w1dt) != w1dt:
                din = w1dt
            return d2(promote(da(d1(din)), d3(din)))

        def back(gy):
            gh = by(gy)
            return bg(ba(gh * u)) + bu(gh * a)
        return y, back, dtype
    if k == "net":
        c = dict(s.children)
        h, b1, d1 = sfwd(c["body"], x, ctx)
        z, b2, d2 = sfwd(c["head"], h, ctx)
        T_t = s.slots["temp"]
        T = ctx.val(T_t)
        ctx.use(T_t, s)
        tdt = m.expect[id(T_t)].dtype

        def back(gy):
            g2 = gy.reshape(-1, gy.shape[-1]) * z.reshape(-1, z.shape[-1])
            ctx.add(T_t, g2.sum() if T.ndim == 0 else g2.sum(axis=0))
            return b1(b2(gy * T))
        return z * T, back, (lambda din: promote(d2(d1(din)), tdt))
    raise AssertionError(k)


def shadow_loss(kind, out, target, eps=1e-12):
    """(L, dL/dout, near_kink) in float64 for the model output ``out`` (BCELoss: logits that
    go through the sigmoid head first)."""
    n = out.shape[0]
    if kind == "sce":
        z = out
        sh = z - z.max(axis=1, keepdims=True)
        p = np.exp(sh)
        p /= p.sum(axis=1, keepdims=True)
        logp = sh - np.log(np.exp(sh).sum(axis=1, keepdims=True))
        return -(target * logp).sum() / n, (p - target) / n, False
    if kind == "mse":
        d = out - target
        return 0.5 * (d * d).sum() / n, d / n, False
    if kind == "bcel":
        z = out
        L = (np.maximum(z, 0) - z * target + np.log1p(np.exp(-np.abs(z)))).sum() / n
        return L, (sig(z) - target) / n, False
    if kind == "bce":
        p = sig(out)
        q = 1 - p
        L = -(target * np.log(np.clip(p, eps, 1)) + (1 - target) * np.log(np.clip(q, eps, 1))).sum() / n
        dp = -(target / p * (p >= eps) - (1 - target) / q * (q >= eps)) / n
        near = bool(np.any(p < 1e-6) or np.any(q < 1e-6))
        return L, dp * p * q, near
    raise AssertionError(kind)


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def attempt(fn):
    """(result, exception) of fn(), warnings recorded."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            return fn(), None, caught
        except Exception as e:  # noqa: BLE001 - judged by the caller
            return None, e, caught


def check_clear(exc, *words, allow=()):
    """A refusal raised by the library itself, of a clear kind, naming what it refuses."""
    frames = traceback.extract_tb(exc.__traceback__)
    inner = frames[-1].filename if frames else "?"
    msg = str(exc)
    where = f"{type(exc).__name__} from {inner}:{frames[-1].lineno if frames else '?'}: {msg[:300]}"
    exc.__traceback__ = None
    if not inner.startswith(PKG_DIRS):
        fail(f"not raised by the library (numpy's or Python's own words?): {where}")
    if isinstance(exc, (AttributeError, IndexError)) or (isinstance(exc, KeyError)
                                                         and KeyError not in allow):
        fail(f"an internal-looking {type(exc).__name__}: {where}")
    if len(msg) < 20 or ":" not in msg:
        fail(f"unclear message: {where}")
    for w in words:
        if w not in msg:
            fail(f"{w!r} not named in: {where}")


def close(lib, ref, f32, what, floor=0.0):
    """lib within tolerance of ref: relative to ref's largest magnitude (or to ``floor``, the
    largest gradient of the same pass in float32, where a saturated tanh/sigmoid cancels)."""
    lib = np.asarray(lib, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if lib.shape != ref.shape:
        fail(f"{what}: shape {lib.shape}, shadow {ref.shape}")
    if not np.all(np.isfinite(lib)):
        fail(f"{what}: not finite {lib}")
    rtol, atol = {0: (1e-9, 1e-12), 1: (3e-3, 3e-5), 2: (3e-2, 3e-4)}[int(f32)]
    scale = max(float(np.max(np.abs(ref))) if ref.size else 0.0, 1e-3, floor if f32 else 0.0)
    err = float(np.max(np.abs(lib - ref))) if ref.size else 0.0
    if err > rtol * scale + atol:
        fail(f"{what}: max error {err:.3g} (scale {scale:.3g}, f32={f32})\nlibrary {lib}\nshadow  {ref}")


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


# ---------------------------------------------------------------------------------------
# the machine
# ---------------------------------------------------------------------------------------

class ModuleMachine(RuleBasedStateMachine):

    def __init__(self):
        super().__init__()
        self.model = None
        self.T: dict = {}          # id -> tensor tracked (model parameters and orphans)
        self.expect: dict = {}     # id -> expected array (exact)
        self.egrad: dict = {}      # id -> expected .grad (exact, resynced after tolerance checks)
        self.erg: dict = {}        # id -> expected requires_grad
        self.labels: dict = {}     # id(module) -> expected label
        self.opts: list = []       # [optimizer, shadow state dict]
        self.pending: list = []    # kept graphs
        self.sig_head = nn.ActivationLayer("sigmoid")
        self.losses = {"sce": nn.SoftmaxCrossEntropy(), "mse": nn.MSELoss(),
                       "bcel": nn.BCEWithLogits(), "bce": nn.BCELoss()}
        for lm in list(self.losses.values()) + [self.sig_head]:
            self.labels[id(lm)] = lm.label
        self.rng = np.random.default_rng(0)

    # -- building ------------------------------------------------------------------------
    def track(self, t):
        if id(t) not in self.T:
            self.T[id(t)] = t
            self.expect[id(t)] = t.data.copy()
            self.egrad[id(t)] = None if t.grad is None else t.grad.copy()
            self.erg[id(t)] = t.requires_grad

    def lspec(self, n_in, n_out, dtype, data):
        bias = data.draw(st.booleans(), label="bias")
        init = data.draw(st.sampled_from(["he", "xavier"]), label="init")
        mod = nn.Linear(n_in, n_out, init=init, bias=bias, rng=int(self.rng.integers(1 << 30)),
                        dtype=dtype)
        s = Spec("linear", mod, n_in=n_in, n_out=n_out)
        s.slots["W"] = mod.W
        if bias:
            s.slots["b"] = mod.b
        self.labels[id(mod)] = "Linear"
        return s

    def aspec(self, data, obj=None):
        choice = data.draw(st.sampled_from(ACT_CHOICES), label="activation")
        arg, kind, alpha = make_activation(choice)
        if obj is not None:                         # one activation object at two places
            arg, kind, alpha = obj
        mod = nn.ActivationLayer(arg)
        s = Spec("act", mod, akind=kind, alpha=alpha, obj=mod.activation,
                 made=(arg, kind, alpha))
        self.labels[id(mod)] = type(mod.activation).__name__
        return s

    def seqspec(self, children):
        mod = nn.Sequential(*[c.mod for c in children])
        s = Spec("seq", mod)
        s.children = [(str(i), c) for i, c in enumerate(children)]
        self.labels[id(mod)] = "Sequential"
        # the documented numbering of children that share a label
        labs = [self.labels[id(c.mod)] for c in children]
        seen: dict = {}
        for c, lab in zip(children, labs):
            if labs.count(lab) > 1:
                seen[lab] = seen.get(lab, 0) + 1
                self.labels[id(c.mod)] = f"{lab} {seen[lab]}"
        return s

    def block(self, d, dtype_of, data):
        kind = data.draw(st.sampled_from(
            ["act", "linear", "affine", "residual", "twice", "tied", "swiglu", "nested",
             "shared", "remember"]), label="block")
        if kind == "act":
            if self.last_act is not None and data.draw(st.booleans(), label="share act"):
                STATS["shared activation"] += 1
                return self.last_act if data.draw(st.booleans(), label="same layer") else \
                    self.aspec(data, obj=(self.last_act.obj, self.last_act.akind, self.last_act.alpha))
            s = self.last_act = self.aspec(data)
            return s
        if kind == "linear":
            s = self.lspec(d, d, dtype_of(), data)
            self.square.append(s)
            return s
        if kind == "shared":
            if self.square:
                STATS["shared linear"] += 1
                return data.draw(st.sampled_from(self.square), label="shared")
            return self.lspec(d, d, dtype_of(), data)
        if kind == "affine":
            mod = Affine(d, dtype_of(), self.rng)
            s = Spec("affine", mod, const_dt=mod.const.dtype)
            s.slots["scale"], s.slots["shift"] = mod.scale, mod.shift
            self.labels[id(mod)] = "Affine"
            return s
        if kind == "residual":
            inner = self.seqspec([self.lspec(d, d, dtype_of(), data), self.aspec(data)])
            mod = Residual(inner.mod)
            s = Spec("residual", mod)
            s.children = [("inner", inner)]
            self.labels[id(mod)] = "Residual"
            return s
        if kind == "twice":
            lin, act = self.lspec(d, d, dtype_of(), data), self.aspec(data)
            mod = Twice(lin.mod, act.mod)
            s = Spec("twice", mod)
            s.children = [("lin", lin), ("act", act)]
            self.labels[id(mod)] = "Twice"
            return s
        if kind == "tied":
            h = data.draw(st.integers(1, 4), label="tied h")
            mod = Tied(d, h, dtype_of(), int(self.rng.integers(1 << 30)))
            enc = Spec("linear", mod.enc, n_in=d, n_out=h)
            enc.slots["W"], enc.slots["b"] = mod.enc.W, mod.enc.b
            self.labels[id(mod.enc)] = "Linear"
            s = Spec("tied", mod)
            s.slots["dec_W"] = mod.dec_W
            s.children = [("enc", enc)]
            self.labels[id(mod)] = "Tied"
            return s
        if kind == "swiglu":
            h = data.draw(st.integers(1, 5), label="swiglu h")
            bias = data.draw(st.booleans(), label="swiglu bias")
            mod = nn.SwiGLU(d, h, bias=bias, rng=int(self.rng.integers(1 << 30)), dtype=dtype_of(),
                            init=data.draw(st.sampled_from(["he", "xavier"]), label="init"))
            s = Spec("swiglu", mod)
            kids = []
            for name, (i, o) in (("w1", (d, h)), ("w3", (d, h)), ("w2", (h, d))):
                lm = getattr(mod, name)
                ls = Spec("linear", lm, n_in=i, n_out=o)
                ls.slots["W"] = lm.W
                if bias:
                    ls.slots["b"] = lm.b
                self.labels[id(lm)] = f"Linear {name}"
                kids.append((name, ls))
            act = Spec("act", mod.act, akind="silu", alpha=None, obj=mod.act.activation,
                       made=None)
            self.labels[id(mod.act)] = "SiLU"
            s.children = kids + [("act", act)]
            self.labels[id(mod)] = "SwiGLU"
            return s
        if kind == "nested":
            return self.seqspec([self.lspec(d, d, dtype_of(), data), self.aspec(data)])
        if kind == "remember":
            inner = self.lspec(d, d, dtype_of(), data)
            mod = Remember(inner.mod)
            s = Spec("remember", mod)
            s.children = [("inner", inner)]
            self.labels[id(mod)] = "Remember"
            return s
        raise AssertionError(kind)

    @initialize(data=st.data())
    def build(self, data):
        self.rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
        mode = data.draw(st.sampled_from(["f64", "f64", "f32", "mixed"]), label="dtypes")

        def dtype_of():
            if mode == "mixed":
                return data.draw(st.sampled_from([F64, F32]), label="dtype")
            return F64 if mode == "f64" else F32
        self.d_in = data.draw(st.integers(1, 4), label="d_in")
        d = data.draw(st.integers(1, 4), label="width")
        self.K = data.draw(st.integers(2, 4), label="K")
        self.last_act, self.square = None, []
        kids = [self.lspec(self.d_in, d, dtype_of(), data)]
        if data.draw(st.integers(0, 3), label="activation first") == 0:
            kids.insert(0, self.aspec(data))
        for _ in range(data.draw(st.integers(0, 4), label="blocks")):
            kids.append(self.block(d, dtype_of, data))
        top = data.draw(st.sampled_from(["seq", "net"]), label="top")
        if top == "seq":
            kids.append(self.lspec(d, self.K, dtype_of(), data))
            self.spec = self.seqspec(kids)
        else:
            body = self.seqspec(kids)
            head = self.lspec(d, self.K, dtype_of(), data)
            mod = Net(body.mod, head.mod, self.K, dtype_of(), self.rng,
                      scalar=data.draw(st.booleans(), label="0-d temp"))
            self.spec = Spec("net", mod)
            self.spec.slots["temp"] = mod.temp
            self.spec.children = [("body", body), ("head", head)]
            self.labels[id(mod)] = "Net"
        self.model = self.spec.mod
        for _, t in self.walk(self.spec):
            self.track(t)
        note(repr(self.model))
        STATS["models"] += 1
        STATS[f"models {mode}"] += 1
        # documented: a Sequential names parameters by their path
        if top == "seq":
            paths = collections.defaultdict(list)
            for path, t in self.walk(self.spec):
                paths[id(t)].append(path)
            for path, t in self.model.named_parameters():
                if len(paths[id(t)]) == 1 and t.name != path:
                    fail(f"parameter at {path} is named {t.name!r}")

    # -- the model's expected structure -------------------------------------------------
    def walk(self, s, prefix=""):
        for name, t in s.slots.items():
            yield prefix + name, t
        for name, c in s.children:
            yield from self.walk(c, prefix + name + ".")

    def specs(self, s=None, seen=None):
        s = s or self.spec
        seen = set() if seen is None else seen
        if id(s) in seen:
            return []
        seen.add(id(s))
        out = [s]
        for _, c in s.children:
            out += self.specs(c, seen)
        return out

    def expected_named(self):
        seen, out = set(), []
        for path, t in self.walk(self.spec):
            if id(t) not in seen:
                seen.add(id(t))
                out.append((path, t))
        return out

    def model_tensors(self):
        return [t for _, t in self.expected_named()]

    def f32_model(self):
        return any(self.expect[id(t)].dtype == F32 for t in self.model_tensors())

    # -- snapshots -------------------------------------------------------------------------
    def snapshot(self):
        ts = list(self.T.values())
        return ([(t, t.data.copy(), None if t.grad is None else t.grad.copy(), t.requires_grad)
                 for t in ts],
                [(s.mod, name, getattr(s.mod, name, None)) for s in self.specs()
                 for name in s.slots],
                [copy.deepcopy(o.state_dict()) for o, _ in self.opts],
                [(s.mod, s.mod.label) for s in self.specs()])

    def unchanged(self, snap, what):
        tens, slots, opts, labs = snap
        for t, d, g, rg in tens:
            if not same(t.data, d):
                fail(f"{what}: a parameter {t.name} changed")
            if not same(t.grad, g):
                fail(f"{what}: the .grad of {t.name} changed")
            if t.requires_grad != rg:
                fail(f"{what}: requires_grad of {t.name} changed")
        for mod, name, t in slots:
            if getattr(mod, name, None) is not t:
                fail(f"{what}: {type(mod).__name__}.{name} is another tensor now")
        for (o, _), st_ in zip(self.opts, opts):
            if not same_state(o.state_dict(), st_):
                fail(f"{what}: the state of {type(o).__name__} changed")
        for mod, lab in labs:
            if mod.label != lab:
                fail(f"{what}: a label changed")

    def refused(self, fn, types, *words, what, allow=()):
        snap = self.snapshot()
        out, exc, _ = attempt(fn)
        if exc is None:
            fail(f"{what}: expected {types}, got a result {out!r:.200}")
        if not isinstance(exc, types):
            fail(f"{what}: expected {types}, got {type(exc).__name__}: {exc}")
        check_clear(exc, *words, allow=allow)
        del exc
        self.unchanged(snap, what)
        STATS[f"refused: {what}"] += 1

    # -- invariants ------------------------------------------------------------------------
    @invariant()
    def consistent(self):
        if self.model is None:
            return
        assert tg.is_grad_enabled(), "grad mode left off"
        self.forget_remembered()        # (any rule may have run the model)
        exp = self.expected_named()
        got = list(self.model.named_parameters())
        if [n for n, _ in got] != [n for n, _ in exp]:
            fail(f"named_parameters names {[n for n, _ in got]}, expected {[n for n, _ in exp]}")
        for (n, a), (_, b) in zip(got, exp):
            if a is not b:
                fail(f"named_parameters: {n} is not the tensor registered there")
        params = self.model.parameters()
        if len(params) != len(exp) or any(a is not b for a, (_, b) in zip(params, exp)):
            fail("parameters() differs from named_parameters()")
        for s in self.specs():
            for name, t in s.slots.items():
                if getattr(s.mod, name) is not t:
                    fail(f"{type(s.mod).__name__}.{name} is not the expected tensor")
            if s.mod.label != self.labels[id(s.mod)]:
                fail(f"label {s.mod.label!r}, expected {self.labels[id(s.mod)]!r}")
            if s.kind == "seq":
                kids = [c.mod for _, c in s.children]
                if len(s.mod) != len(kids) or any(a is not b for a, b in zip(s.mod, kids)) \
                        or s.mod[-1] is not kids[-1]:
                    fail("Sequential: len/iter/getitem disagree with its children")
        live = any(not p["released"] for p in self.pending)
        for i, t in self.T.items():
            e = self.expect[i]
            if not same(t.data, e):
                fail(f"{t.name}: values {t.data} dtype {t.dtype}, expected {e} dtype {e.dtype}")
            if not same(t.grad, self.egrad[i]):
                fail(f"{t.name}: grad {t.grad}, expected {self.egrad[i]}")
            if t.grad is not None and (t.grad.dtype != t.dtype or t.grad.shape != t.shape):
                fail(f"{t.name}: grad of dtype {t.grad.dtype} shape {t.grad.shape} for a "
                     f"parameter of {t.dtype} {t.shape}")
            if t.requires_grad != self.erg[i]:
                fail(f"{t.name}: requires_grad {t.requires_grad}")
            if not live and (tg.held_by_graph(t.data) or not t.data.flags.writeable):
                # a graph in a reference cycle (a refused call's traceback) lives until the
                # collector runs: only one that outlives a collection is a fault
                gc.collect()
                STATS["lock released only by gc.collect()"] += 1
                if tg.held_by_graph(t.data) or not t.data.flags.writeable:
                    fail(f"{t.name}: held or read-only with no graph pending")
        for o, sh in self.opts:
            if not same_state(o.state_dict(), sh["state"]):
                fail(f"{type(o).__name__} state {o.state_dict()} != shadow {sh['state']}")

    # -- forward / backward ----------------------------------------------------------------
    def draw_batch(self, data, loss_kind=None):
        loss_kind = loss_kind or data.draw(st.sampled_from(["sce", "mse", "bcel", "bce"]),
                                           label="loss")
        shape_kind = "2d" if loss_kind == "sce" else data.draw(
            st.sampled_from(["2d", "2d", "3d", "1d"]), label="input shape")
        n = data.draw(st.integers(1, 4), label="n")
        shape = {"2d": (n, self.d_in), "3d": (2, n, self.d_in), "1d": (self.d_in,)}[shape_kind]
        xdt = data.draw(st.sampled_from(["f64", "f64", "f32", "int", "f16"]), label="x dtype")
        r = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="batch seed"))
        if xdt == "int":
            x = r.integers(-2, 3, size=shape)
        else:
            x = r.standard_normal(shape).astype({"f64": F64, "f32": F32, "f16": np.float16}[xdt])
        x_rg = xdt in ("f64", "f32") and data.draw(st.booleans(), label="x requires grad")
        xform = "tensor" if x_rg else data.draw(st.sampled_from(["tensor", "array", "list"]),
                                                label="x form")
        out_shape = shape[:-1] + (self.K,)
        if loss_kind == "sce":
            form = data.draw(st.sampled_from(["labels", "onehot", "soft"]), label="targets")
            labels = r.integers(0, self.K, size=n)
            Y = np.eye(self.K)[labels]
            if form == "soft":
                Y = r.dirichlet(np.ones(self.K), size=n)
                target, onehot = Y, Y
            else:
                target, onehot = (labels if form == "labels" else Y), Y
        elif loss_kind == "mse":
            onehot = target = r.standard_normal(out_shape)
        else:
            onehot = target = (r.integers(0, 2, size=out_shape).astype(float)
                               if data.draw(st.booleans(), label="hard") else r.random(out_shape))
        tform = data.draw(st.sampled_from(["array", "array", "tensor", "list"]), label="target form")
        if tform == "tensor":
            target = tg.Tensor(target)
        elif tform == "list":
            target = np.asarray(target).tolist()
        return dict(x=x, x_rg=x_rg, loss=loss_kind, target=target, onehot=onehot, form=xform)

    def shadow(self, b):
        """(out, out dtype, L, grads {id: g}, gx, ctx) of the shadow at the expected values."""
        ctx = Ctx(self)
        x = np.asarray(b["x"], dtype=np.float64)
        out, back, dtf = sfwd(self.spec, x, ctx)
        L, dout, near = shadow_loss(b["loss"], out, b["onehot"])
        gx = back(dout)
        xdt = np.asarray(b["x"].tolist() if b["form"] == "list" else b["x"]).dtype
        if xdt == np.float16:            # (an activation first computes in float16)
            ctx.f32 = 2
        ctx.f32 = ctx.f32 or xdt == F32
        return out, dtf(xdt if xdt.kind == "f" else np.dtype(np.int64)), L, ctx.grads, gx, ctx, near

    def run_loss(self, b):
        xt = tg.Tensor(b["x"], requires_grad=b["x_rg"])
        out = self.model({"tensor": xt, "array": b["x"], "list": b["x"].tolist()}[b["form"]])
        pred = self.sig_head(out) if b["loss"] == "bce" else out
        loss = self.losses[b["loss"]](pred, b["target"])
        return xt, out, loss

    @rule(data=st.data())
    def forward(self, data):
        self.forward_batch(self.draw_batch(data), data)

    def tame(self, *arrays):
        """Whether the shadow's values are moderate (a diverged model is not checked)."""
        with np.errstate(all="ignore"):
            ok = all(np.all(np.isfinite(a)) and np.all(np.abs(a) < 1e4) for a in arrays)
        if not ok:
            STATS["skipped: diverged values"] += 1
        return ok

    def off_kink(self, ctx):
        """Whether every ReLU/LeakyReLU input is far enough from 0 for the library's rounding
        (float32/float16) not to put it on the other side of the kink."""
        if ctx.kink < (1e-2 if ctx.f32 else 1e-7):
            STATS["skipped: a (leaky) relu input at the kink"] += 1
            return False
        return True

    def forward_batch(self, b, data, keep=True):
        with np.errstate(all="ignore"):
            out_s, dt_s, L_s, grads, gx, ctx, near = self.shadow(b)
        if not self.tame(out_s, L_s, gx, *grads.values()):
            return
        if near:                 # BCELoss where sigmoid saturates: its clipping decides
            STATS["forward skipped: saturated sigmoid"] += 1
            return
        if not self.off_kink(ctx):
            return
        res, exc, _ = attempt(lambda: self.run_loss(b))
        if exc is not None:
            check_clear(exc)
            fail(f"forward/loss raised {type(exc).__name__}: {exc}")
        xt, out, loss = res
        f32 = ctx.f32
        if out.dtype != dt_s:
            fail(f"output dtype {out.dtype}, expected {dt_s}")
        close(out.data, out_s, f32, "forward output")
        lossdt = out.dtype if out.dtype.kind == "f" else F64
        if loss.dtype != lossdt or loss.shape != ():
            fail(f"loss dtype {loss.dtype} shape {loss.shape}, expected {lossdt} ()")
        close(loss.data, L_s, f32, f"{b['loss']} loss value")
        self.check_labels(loss, ctx, b["loss"])
        STATS[f"forward {b['loss']}"] += 1
        entry = dict(loss=loss, x=xt, grads=grads, gx=gx, f32=f32, released=False,
                     requires=loss.requires_grad, kind=b["loss"])
        self.forget_remembered()
        if keep and len(self.pending) < 2 and data.draw(st.booleans(), label="keep pending"):
            self.pending.append(entry)
            STATS["graphs kept pending"] += 1
            return
        self.do_backward(entry, keep and data.draw(st.booleans(), label="retain"))
        if keep and entry["requires"] and data.draw(st.booleans(), label="second backward"):
            self.do_backward(entry, False)

    def forget_remembered(self):
        """A Remember module's kept output is a plain attribute, never a parameter; then the
        fuzz lets go of it (a kept output keeps its graph alive, and the lifetime model
        tracks graphs by the losses in ``pending`` alone)."""
        for s in self.specs():
            if s.kind == "remember" and s.mod.last is not None:
                if "last" in s.mod._parameters:
                    fail("a module's kept output (a tensor made by an op) was registered "
                         "as a parameter")
                s.mod.last = None
                STATS["kept outputs: plain attributes"] += 1

    def check_labels(self, loss, ctx, kind):
        nodes = tg_graph.nodes(loss)
        if not nodes:
            return
        want = self.labels[id(self.losses[kind])]
        if nodes[0].module != want:
            fail(f"loss node {nodes[0].name} labelled {nodes[0].module!r}, expected {want!r}")
        for node in nodes:
            for p in node.parents:
                if isinstance(p, tg.Tensor) and id(p) in ctx.uses:
                    if node.module not in ctx.uses[id(p)]:
                        fail(f"node {node.name} over {p.name} labelled {node.module!r}, "
                             f"expected one of {sorted(ctx.uses[id(p)])}")
            act = getattr(node, "activation", None)
            if act is not None and id(act) in ctx.act_uses and node.module not in ctx.act_uses[id(act)]:
                fail(f"node {node.name} labelled {node.module!r}, expected one of "
                     f"{sorted(ctx.act_uses[id(act)])}")
        STATS["labels checked"] += len(nodes)

    def do_backward(self, entry, retain):
        loss = entry["loss"]
        if entry["released"] or not entry["requires"]:
            self.refused(lambda: loss.backward(), (tg.BackwardError, RuntimeError), "backward",
                         what="backward of a released graph" if entry["released"]
                         else "backward of a loss needing no grad")
            return
        snap = self.snapshot()
        _, exc, _ = attempt(lambda: loss.backward(retain_graph=retain))
        if exc is not None:
            check_clear(exc)
            fail(f"backward raised {type(exc).__name__}: {exc}")
        floor = max([float(np.max(np.abs(g))) for g in entry["grads"].values() if g.size]
                    + [float(np.max(np.abs(entry["gx"])))])
        for i, g in entry["grads"].items():
            t = self.T.get(i)
            if t is None:
                continue
            if not self.erg[i]:            # frozen since: skipped
                continue
            prev = self.egrad[i]
            want = g if prev is None else prev + g
            if t.grad is None:
                fail(f"{t.name}: no gradient after backward")
            close(t.grad, want, entry["f32"], f"grad of {t.name}", floor)
            self.egrad[i] = t.grad.copy()
        for t, d, g, rg in snap[0]:
            if id(t) not in entry["grads"] or not self.erg[id(t)]:
                if not same(t.grad, g):
                    fail(f"{t.name}: gradient changed by a backward it is not part of")
        x = entry["x"]
        if x.requires_grad:
            if x.grad is None or x.grad.dtype != x.dtype:
                fail(f"input gradient {x.grad!r} for an input of dtype {x.dtype}")
            close(x.grad, entry["gx"], entry["f32"], "input gradient", floor)
            x.grad = None
        if not retain:
            entry["released"] = True
        STATS["backward checked"] += 1

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def backward_pending(self, data):
        entry = data.draw(st.sampled_from(self.pending), label="pending")
        self.do_backward(entry, data.draw(st.booleans(), label="retain"))

    @precondition(lambda self: self.pending)
    @rule(data=st.data())
    def drop_pending(self, data):
        i = data.draw(st.integers(0, len(self.pending) - 1), label="drop")
        del self.pending[i]
        gc.collect()

    @rule(data=st.data())
    def inference(self, data):
        b = self.draw_batch(data, "mse")
        with np.errstate(all="ignore"):
            out_s, dt_s, *_, ctx, _ = self.shadow(b)
        if not self.tame(out_s) or not self.off_kink(ctx):
            return
        snap = self.snapshot()
        with tg.no_grad():
            out, exc, _ = attempt(lambda: self.run_loss(b)[1])
        if exc is not None:
            check_clear(exc)
            fail(f"inference under no_grad raised {type(exc).__name__}: {exc}")
        if out.requires_grad or out.grad_fn is not None:
            fail("no_grad output records a graph")
        if out.dtype != dt_s:
            fail(f"no_grad output dtype {out.dtype}, expected {dt_s}")
        close(out.data, out_s, ctx.f32, "no_grad output")
        self.unchanged(snap, "inference")
        STATS["inference"] += 1

    # -- gradients -------------------------------------------------------------------------
    @rule(which=st.sampled_from(["module", "optimizer", "tensor", "tensor.zero_grad"]),
          data=st.data())
    def zero_grad(self, which, data):
        if which == "module":
            self.model.zero_grad()
            for t in self.model_tensors():
                self.egrad[id(t)] = None
        elif which == "optimizer" and self.opts:
            o, _ = data.draw(st.sampled_from(self.opts), label="opt")
            o.zero_grad()
            for t in o.params:
                self.egrad[id(t)] = None
        else:
            t = data.draw(st.sampled_from(list(self.T.values())), label="tensor")
            if which == "tensor":
                t.grad = None
            else:
                t.zero_grad()
            self.egrad[id(t)] = None

    @rule(data=st.data(), how=st.sampled_from(["attr", "method"]))
    def toggle_frozen(self, data, how):
        t = data.draw(st.sampled_from(list(self.T.values())), label="freeze which")
        flag = not t.requires_grad
        if how == "attr":
            t.requires_grad = flag
        else:
            assert t.requires_grad_(flag) is t
        self.erg[id(t)] = flag
        STATS["freeze" if not flag else "unfreeze"] += 1

    # -- optimizers ------------------------------------------------------------------------
    @rule(data=st.data(), kind=st.sampled_from(["sgd", "momentum", "adam"]))
    def make_optimizer(self, data, kind):
        pool = list(self.T.values())
        which = data.draw(st.sampled_from(["all", "all", "subset", "other opt"]), label="params")
        if which == "all":
            params = self.model.parameters()
        elif which == "other opt" and self.opts:
            o, _ = data.draw(st.sampled_from(self.opts), label="same params as")
            params = list(o.params)
        else:
            idx = data.draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, unique=True),
                            label="subset")
            params = [pool[i] for i in idx]
        if kind == "adam":
            lr = data.draw(st.sampled_from([1e-3, 0.01, 0.1]), label="lr")
            betas = data.draw(st.sampled_from([(0.9, 0.999), (0.5, 0.9), (0.0, 0.0), (0.99, 0.5)]),
                              label="betas")
            eps = data.draw(st.sampled_from([1e-8, 1e-3]), label="eps")
            o = nn.Adam(params, lr=lr, betas=betas, eps=eps)
            state = {"t": 0, "steps": [0] * len(params),
                     "m": [np.zeros_like(p.data) for p in params],
                     "v": [np.zeros_like(p.data) for p in params]}
        else:
            lr = data.draw(st.sampled_from([0.01, 0.1, 0.5]), label="lr")
            mom = 0.0 if kind == "sgd" else data.draw(st.sampled_from([0.5, 0.9]), label="mom")
            o = nn.SGD(params, lr=lr, momentum=mom)
            state = {"velocity": [None] * len(params)}
        if len(self.opts) >= 3:
            self.opts.pop(0)
        self.opts.append((o, {"state": state}))
        STATS[f"optimizer {kind} {which}"] += 1

    @precondition(lambda self: self.model is not None)
    @rule(data=st.data(), iters=st.integers(1, 4))
    def train_loop(self, data, iters):
        """The user's loop: zero_grad, forward, loss, backward, step (SGD or Adam)."""
        if not self.opts:
            self.make_optimizer(data, data.draw(st.sampled_from(["sgd", "momentum", "adam"]),
                                                label="kind"))
        o, sh = data.draw(st.sampled_from(self.opts), label="opt")
        b = self.draw_batch(data)
        for _ in range(iters):
            if data.draw(st.booleans(), label="zero_grad first"):
                o.zero_grad()
                for t in o.params:
                    self.egrad[id(t)] = None
            self.forward_batch(b, data, keep=False)
            self.step_one(o, sh)
        STATS["train loops"] += 1

    @precondition(lambda self: self.opts)
    @rule(data=st.data())
    def step(self, data):
        o, sh = data.draw(st.sampled_from(self.opts), label="opt")
        self.step_one(o, sh)

    def step_one(self, o, sh):
        if any(not np.all(np.abs(self.expect[id(p)]) < 1e4) for p in o.params):
            STATS["step skipped: large weights"] += 1
            return
        todo = [i for i, p in enumerate(o.params) if self.egrad[id(p)] is not None and self.erg[id(p)]]
        if any(not o.params[i].data.flags.writeable for i in todo):
            held = [o.params[i] for i in todo if not o.params[i].data.flags.writeable]
            assert all(tg.held_by_graph(p.data) for p in held)
            self.refused(o.step, RuntimeError, "step", "Nothing was updated",
                         what=f"{type(o).__name__}.step on a parameter held by a graph")
            return
        st_ = sh["state"]
        new_vals = {}
        if isinstance(o, nn.SGD):
            for i in todo:
                p = o.params[i]
                g = self.egrad[id(p)]
                if o.momentum:
                    v = st_["velocity"][i]
                    if v is None:
                        v = st_["velocity"][i] = g.copy()
                    else:
                        v *= o.momentum
                        v += g
                    g = v
                new_vals[id(p)] = (self.expect[id(p)] - o.lr * g, True)
        else:
            st_["t"] += 1
            b1, b2 = o.betas
            for i in todo:
                p = o.params[i]
                g = self.egrad[id(p)]
                t = st_["steps"][i] = st_["steps"][i] + 1
                m, v = st_["m"][i], st_["v"][i]
                m *= b1
                m += (1 - b1) * g
                v *= b2
                v += (1 - b2) * (g * g)
                mhat = m.astype(np.float64) / (1 - b1 ** t)
                vhat = v.astype(np.float64) / (1 - b2 ** t)
                upd = o.lr * mhat / (np.sqrt(vhat) + o.eps)
                new_vals[id(p)] = (self.expect[id(p)].astype(np.float64) - upd, upd)
        snap = self.snapshot()
        _, exc, _ = attempt(o.step)
        if exc is not None:
            check_clear(exc)
            fail(f"{type(o).__name__}.step raised {type(exc).__name__}: {exc}")
        for i, p in enumerate(o.params):
            if id(p) not in new_vals:
                if not same(p.data, self.expect[id(p)]):
                    fail(f"{type(o).__name__}.step changed {p.name}, which it had to skip")
                continue
            want, upd = new_vals[id(p)]
            if upd is True:                           # SGD: bit for bit
                if not same(p.data, want.astype(p.dtype)):
                    fail(f"SGD.step: {p.name} = {p.data}, expected {want} (bit for bit)")
            else:
                f32 = p.dtype == F32
                tol = (1e-5 if f32 else 1e-12) * (np.abs(want) + np.abs(upd)) + (1e-30 if not f32 else 1e-9)
                if p.dtype != self.expect[id(p)].dtype or np.any(np.abs(p.data - want) > tol):
                    fail(f"Adam.step: {p.name} = {p.data!r}, expected {want!r}")
                if f32:                              # float32 moments: resync within tolerance
                    lst = o.state_dict()
                    for key in ("m", "v"):
                        close(lst[key][i], st_[key][i], True, f"Adam {key}")
                        st_[key][i] = lst[key][i].copy()
            self.expect[id(p)] = p.data.copy()
        for t, d, g, rg in snap[0]:
            if not same(t.grad, g):
                fail("a step changed a gradient")
        STATS[f"step {type(o).__name__} ({len(todo)} updated)"] += 1

    @precondition(lambda self: self.opts)
    @rule(data=st.data())
    def optimizer_roundtrip(self, data):
        k = data.draw(st.integers(0, len(self.opts) - 1), label="opt")
        o, sh = self.opts[k]
        sd = o.state_dict()
        if not same_state(sd, sh["state"]):
            fail("optimizer state_dict differs from the shadow")
        # copies: changing the returned arrays changes nothing
        for arr in iter_arrays(sd):
            arr[...] = 7.0
        if not same_state(o.state_dict(), sh["state"]):
            fail("optimizer state_dict shares memory with the optimizer")
        sd = o.state_dict()
        if "steps" in sd and all(n == sd["t"] for n in sd["steps"]) and \
                data.draw(st.booleans(), label="old format"):
            del sd["steps"]                  # (a state from before per-parameter counts)
            STATS["Adam state without steps"] += 1
        if isinstance(o, nn.SGD):
            new = nn.SGD(o.params, **o.config())
        else:
            cfg = o.config()
            new = nn.Adam(o.params, lr=cfg["lr"], betas=tuple(cfg["betas"]), eps=cfg["eps"])
        new.load_state_dict(sd)
        for arr in iter_arrays(sd):
            arr[...] = 7.0
        if not same_state(new.state_dict(), sh["state"]) or new.config() != o.config():
            fail("optimizer state did not survive state_dict -> load_state_dict")
        self.opts[k] = (new, sh)
        STATS["optimizer state round trip"] += 1

    @precondition(lambda self: self.opts)
    @rule(data=st.data())
    def optimizer_bad_load(self, data):
        o, sh = data.draw(st.sampled_from(self.opts), label="opt")
        sd = o.state_dict()
        n = len(o.params)
        p0 = o.params[0]
        bad = copy.deepcopy(sd)
        how = data.draw(st.sampled_from(["short", "shape", "nan", "dtype", "not dict",
                                         "negative v", "t", "steps"]), label="bad state")
        key = "velocity" if isinstance(o, nn.SGD) else "m"
        if how == "short":
            bad[key] = bad[key][:-1] if n > 1 else []
        elif how == "shape":
            bad[key][0] = np.zeros(p0.shape + (1,), p0.dtype)
        elif how == "nan":
            bad[key][0] = np.full(p0.shape, np.nan, p0.dtype)
        elif how == "dtype":
            # (another floating dtype is cast to the parameter's: tests/nn/test_optim.py)
            bad[key][0] = np.zeros(p0.shape, np.int64)
        elif how == "not dict":
            bad = [1, 2]
        elif how == "negative v" and "v" in bad:
            bad["v"][0] = np.full(p0.shape, -1.0, p0.dtype)
        elif how == "t" and "t" in bad:
            bad["t"] = -1
        elif how == "steps" and "t" in bad:
            bad["steps"] = [bad["t"] + 1] * n
        else:
            return
        self.refused(lambda: o.load_state_dict(bad), (ValueError, TypeError), "load_state_dict",
                     what=f"{type(o).__name__}.load_state_dict ({how})")

    # -- module state -------------------------------------------------------------------------
    def check_state_dict(self, sd):
        names = [n for n, _ in self.walk(self.spec)]
        if list(sd) != names:
            fail(f"state_dict keys {list(sd)}, expected every name {names}")
        for (name, t) in self.walk(self.spec):
            if not same(sd[name], self.expect[id(t)]):
                fail(f"state_dict[{name}] differs from the parameter")
            if np.shares_memory(sd[name], t.data):
                fail(f"state_dict[{name}] shares memory with the parameter")

    @rule(data=st.data())
    def state_dict_load(self, data):
        sd = self.model.state_dict()
        self.check_state_dict(sd)
        how = data.draw(st.sampled_from(["same", "new values", "float32 values", "lists",
                                         "subset", "unexpected"]), label="load")
        r = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="values seed"))
        state = collections.OrderedDict()
        newv: dict = {}
        for name, t in self.walk(self.spec):
            if how == "same":
                v = sd[name]
            else:
                v = newv.get(id(t))
                if v is None:
                    v = newv[id(t)] = r.standard_normal(t.shape)
                if how == "float32 values":
                    v = v.astype(F32)
                elif how == "lists":
                    v = v.tolist()
            state[name] = v
        strict = True
        if how == "subset":
            keep = data.draw(st.lists(st.sampled_from(list(state)), min_size=1, unique=True),
                             label="keys")
            state = collections.OrderedDict((k, state[k]) for k in state if k in keep)
            strict = False
        elif how == "unexpected":
            state["nonexistent.W"] = np.zeros(2)
            strict = False
        # which tensors change, and to what (per documented rules)
        loaded: dict = {}
        for name, t in self.walk(self.spec):
            if name in state:
                loaded[id(t)] = (t, np.asarray(state[name]).astype(t.dtype))
        held = [t for t, _ in loaded.values() if tg.held_by_graph(t.data)]
        if held:
            self.refused(lambda: self.model.load_state_dict(state, strict=strict), RuntimeError,
                         "load_state_dict", what="load_state_dict on parameters held by a graph")
            return
        res, exc, _ = attempt(lambda: self.model.load_state_dict(state, strict=strict))
        if exc is not None:
            check_clear(exc)
            fail(f"load_state_dict ({how}) raised {type(exc).__name__}: {exc}")
        missing = [n for n, _ in self.walk(self.spec) if n not in state]
        unexpected = [k for k in state if k not in dict(self.walk(self.spec))]
        if tuple(res) != (missing, unexpected):
            fail(f"load_state_dict returned {res}, expected ({missing}, {unexpected})")
        for i, (t, v) in loaded.items():
            if not same(t.data, v):
                fail(f"load_state_dict ({how}): {t.name} = {t.data}, expected {v}")
            self.expect[i] = v.copy()
            self.egrad[i] = None           # (the library clears the loaded parameters' .grad)
        self.check_state_dict(self.model.state_dict())
        STATS[f"load_state_dict {how}"] += 1

    @rule(data=st.data())
    def state_dict_bad_load(self, data):
        sd = self.model.state_dict()
        names = list(sd)
        name = data.draw(st.sampled_from(names), label="name")
        v = sd[name]
        how = data.draw(st.sampled_from(["missing", "unexpected", "shape", "int", "nan", "none",
                                         "string", "overflow", "not mapping", "foreign",
                                         "shared differ", "ragged"]), label="bad load")
        allow = ()
        strict = True
        bad = dict(sd)
        types = (ValueError, TypeError)
        if how == "missing":
            del bad[name]
            types, allow = KeyError, (KeyError,)
        elif how == "unexpected":
            bad["zz.W"] = v
            types, allow = KeyError, (KeyError,)
        elif how == "shape":
            bad[name] = np.zeros(v.shape + (2,))
        elif how == "int":
            bad[name] = np.zeros(v.shape, dtype=np.int64)
        elif how == "nan":
            bad[name] = np.full(v.shape, np.nan)
        elif how == "none":
            bad[name] = None
        elif how == "string":
            bad[name] = "weights"
        elif how == "overflow":
            if v.dtype != F32:
                return
            bad[name] = np.full(v.shape, 1e300)
        elif how == "not mapping":
            bad = list(sd.items())
        elif how == "foreign":
            bad = {"x.W": v}
            strict = False
            types, allow = KeyError, (KeyError,)
        elif how == "shared differ":
            tensors = collections.defaultdict(list)
            for n, t in self.walk(self.spec):
                tensors[id(t)].append(n)
            multi = [ns for ns in tensors.values() if len(ns) > 1]
            if not multi:
                return
            ns = multi[0]
            bad[ns[1]] = bad[ns[1]] + 1.0
        elif how == "ragged":
            bad[name] = [[1.0, 2.0], [3.0]]
        if any(tg.held_by_graph(t.data) for t in self.model_tensors()):
            types = types + (RuntimeError,) if isinstance(types, tuple) else (types, RuntimeError)
        self.refused(lambda: self.model.load_state_dict(bad, strict=strict), types,
                     "load_state_dict", what=f"load_state_dict ({how})", allow=allow)

    # -- changing parameters by hand -----------------------------------------------------
    def slot_choices(self):
        return [(s, name) for s in self.specs() for name in s.slots]

    @rule(data=st.data())
    def replace_parameter(self, data):
        s, name = data.draw(st.sampled_from(self.slot_choices()), label="slot")
        old = s.slots[name]
        r = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
        dt = old.dtype
        if data.draw(st.integers(0, 4), label="other dtype") == 0:
            dt = F32 if dt == F64 else F64
            STATS["parameter replaced by another dtype"] += 1
        new = tg.Tensor(r.standard_normal(old.shape).astype(dt), requires_grad=True,
                        name=old.name)
        setattr(s.mod, name, new)
        # every place that held the old tensor under this slot now holds the new one; a tied
        # weight is untied (the other name keeps the old tensor)
        s.slots[name] = new
        self.track(new)
        self.forget_orphans()
        STATS["parameter replaced"] += 1

    def forget_orphans(self):
        keep = {id(t) for t in self.model_tensors()}
        keep |= {id(p) for o, _ in self.opts for p in o.params}
        for e in self.pending:
            keep |= set(e["grads"])
        for i in list(self.T):
            if i not in keep:
                for d in (self.T, self.expect, self.egrad, self.erg):
                    del d[i]

    @rule(data=st.data())
    def drop_bias(self, data):
        lins = [s for s in self.specs() if s.kind == "linear" and "b" in s.slots]
        if not lins:
            return
        s = data.draw(st.sampled_from(lins), label="linear")
        s.mod.b = None
        del s.slots["b"]
        if s.mod.b is not None:
            fail("Linear.b = None kept a bias")
        self.forget_orphans()
        STATS["bias dropped"] += 1

    @rule(data=st.data(), op=st.sampled_from(["-=", "+=", "*=", "/="]),
          mode=st.sampled_from(["no_grad", "no_grad", "recording"]))
    def inplace_update(self, data, op, mode):
        s, name = data.draw(st.sampled_from(self.slot_choices()), label="slot")
        t = s.slots[name]
        r = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
        shape = data.draw(st.sampled_from([(), t.shape, t.shape[-1:]]), label="operand shape")
        val = 1.0 + 0.1 * r.standard_normal(shape)
        if data.draw(st.booleans(), label="operand is a tensor"):
            val = tg.Tensor(val)
        raw = val.data if isinstance(val, tg.Tensor) else val
        fn = {"-=": np.subtract, "+=": np.add, "*=": np.multiply, "/=": np.divide}[op]

        def update():
            cur = getattr(s.mod, name)
            cur = {"-=": cur.__isub__, "+=": cur.__iadd__, "*=": cur.__imul__,
                   "/=": cur.__itruediv__}[op](val)
            setattr(s.mod, name, cur)
        if mode == "recording" and self.erg[id(t)]:
            self.refused(update, RuntimeError, op, what="in-place update while recording")
            return
        if not self.erg[id(t)]:
            # a frozen parameter: `mod.W -= v` makes a new tensor, refused by the module
            if mode == "no_grad":
                with tg.no_grad():
                    self.refused(update, TypeError, "frozen", what="in-place on a frozen parameter")
            return
        if tg.held_by_graph(t.data):
            with tg.no_grad():
                self.refused(update, RuntimeError, op, what="in-place update while a graph holds it")
            return
        want = self.expect[id(t)].copy()
        fn(want, raw, out=want, casting="same_kind")
        with tg.no_grad():
            _, exc, _ = attempt(update)
        if exc is not None:
            check_clear(exc)
            fail(f"in-place {op} raised {type(exc).__name__}: {exc}")
        if not same(t.data, want):
            fail(f"in-place {op}: {t.data}, expected {want}")
        self.expect[id(t)] = want
        STATS[f"in-place {op}"] += 1

    @rule(data=st.data())
    def delete_and_readd(self, data):
        """del module.W; module.W = tensor: the parameter goes to the end of its module's
        own parameters (in named_parameters and state_dict)."""
        s, name = data.draw(st.sampled_from(self.slot_choices()), label="slot")
        t = s.slots[name]
        delattr(s.mod, name)
        if any(p is t for p in s.mod._parameters.values()) and name in s.mod._parameters:
            fail(f"del {name} left it registered")
        same_tensor = t.requires_grad or data.draw(st.booleans(), label="same")
        if not same_tensor:                     # a frozen one cannot be registered again as is
            t = tg.Tensor(t.data.copy(), requires_grad=True, name=t.name)
            self.track(t)
        elif not t.requires_grad:
            return self._restore(s, name, t)
        setattr(s.mod, name, t)
        del s.slots[name]
        s.slots[name] = t
        self.forget_orphans()
        STATS["parameter deleted and re-added"] += 1

    def _restore(self, s, name, t):
        """A frozen tensor assigned to a free name is a plain attribute (not a parameter):
        documented (only tensors requiring grad register); unfreeze, assign, freeze again."""
        t.requires_grad = True
        setattr(s.mod, name, t)
        t.requires_grad = False
        del s.slots[name]
        s.slots[name] = t
        STATS["frozen parameter re-registered"] += 1

    @rule(data=st.data())
    def reassign_same(self, data):
        s, name = data.draw(st.sampled_from(self.slot_choices()), label="slot")
        snap = self.snapshot()
        setattr(s.mod, name, s.slots[name])           # also for a frozen one: kept
        self.unchanged(snap, "reassigning a parameter to itself")
        STATS["parameter reassigned to itself"] += 1

    @rule(data=st.data())
    def misc_losses(self, data):
        """Losses on integer logits (constants): float64, the shadow's value."""
        r = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
        z = r.integers(-3, 4, size=(3, self.K))
        kind = data.draw(st.sampled_from(["sce", "mse", "bcel"]), label="loss")
        labels = r.integers(0, self.K, size=3)
        Y = np.eye(self.K)[labels] if kind != "mse" else r.standard_normal((3, self.K))
        target = labels if kind == "sce" else Y
        loss, exc, _ = attempt(lambda: self.losses[kind](tg.Tensor(z), target))
        if exc is not None:
            check_clear(exc)
            fail(f"{kind} on integer logits raised {type(exc).__name__}: {exc}")
        if loss.dtype != F64:
            fail(f"{kind} on integer logits: dtype {loss.dtype}")
        close(loss.data, shadow_loss(kind, z.astype(float), Y)[0], False, f"{kind} on ints")
        STATS["losses on integer logits"] += 1

    @rule(data=st.data())
    def replace_data(self, data):
        t = data.draw(st.sampled_from(list(self.T.values())), label="tensor")
        r = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1), label="seed"))
        arr = r.standard_normal(t.shape).astype(t.dtype)
        t.data = arr
        self.expect[id(t)] = arr.copy()
        STATS["data replaced"] += 1

    # -- optimizer over a parameter whose shape changed ------------------------------------
    @precondition(lambda self: self.opts)
    @rule(data=st.data())
    def step_after_shape_change(self, data):
        o, sh = data.draw(st.sampled_from(self.opts), label="opt")
        if isinstance(o, nn.SGD) and not o.momentum:
            return
        cands = [i for i, p in enumerate(o.params) if self.erg[id(p)]
                 and not tg.held_by_graph(p.data)]
        if not cands or any(not o.params[i].data.flags.writeable for i in range(len(o.params))
                            if self.egrad[id(o.params[i])] is not None and self.erg[id(o.params[i])]):
            return
        i = data.draw(st.sampled_from(cands), label="param")
        p = o.params[i]
        if isinstance(o, nn.SGD) and sh["state"]["velocity"][i] is None:
            return
        old_data, old_grad = p.data, p.grad
        new_shape = p.shape[:-1] + (p.shape[-1] + 1,) if p.ndim else (2,)
        p.data = np.ones(new_shape, p.dtype)
        p.grad = np.ones(new_shape, p.dtype)
        try:
            snap = self.snapshot()
            out, exc, _ = attempt(o.step)
            if exc is None:
                fail(f"{type(o).__name__}.step accepted a parameter of shape {new_shape} with "
                     f"state of shape {old_data.shape}")
            check_clear(exc, "step")
            self.unchanged(snap, f"{type(o).__name__}.step refused (parameter of a new shape)")
        finally:
            p.data, p.grad = old_data, old_grad

    # -- copies ------------------------------------------------------------------------------
    @rule(data=st.data(), adopt=st.booleans())
    def deep_copy(self, data, adopt):
        memo: dict = {}
        snap = self.snapshot()
        res, exc, _ = attempt(lambda: copy.deepcopy((self.model, [o for o, _ in self.opts]), memo))
        if exc is not None:
            check_clear(exc)
            fail(f"deepcopy raised {type(exc).__name__}: {exc}")
        self.unchanged(snap, "deepcopy")
        new_model, new_opts = res
        got = list(new_model.named_parameters())
        exp = self.expected_named()
        if [n for n, _ in got] != [n for n, _ in exp]:
            fail("deepcopy: other parameter names")
        for (n, a), (_, b) in zip(got, exp):
            if memo.get(id(b)) is not a:
                fail(f"deepcopy: {n} is not the copy of the original's tensor")
            if not same(a.data, b.data) or a.requires_grad != b.requires_grad or \
                    not same(a.grad, b.grad):
                fail(f"deepcopy: {n} differs (values, grad or requires_grad)")
            if np.shares_memory(a.data, b.data) or (a.grad is not None and np.shares_memory(a.grad, b.grad)):
                fail(f"deepcopy: {n} shares memory with the original")
            if not a.data.flags.writeable:
                fail(f"deepcopy: {n} is read-only in the copy")
        for o, no in zip([o for o, _ in self.opts], new_opts):
            if not all(memo.get(id(p)) is q for p, q in zip(o.params, no.params)):
                fail("deepcopy: the copied optimizer does not hold the copied parameters")
            if not same_state(o.state_dict(), no.state_dict()):
                fail("deepcopy: optimizer state differs")
        for s in self.specs():
            if memo[id(s.mod)].label != s.mod.label:
                fail("deepcopy: a label differs")
        r = np.random.default_rng(1)
        x = r.standard_normal((3, self.d_in))
        with tg.no_grad():
            a, b = self.model(x), new_model(x)
        if not same(a.data, b.data):
            fail("deepcopy: the copy computes another output")
        STATS["deepcopy"] += 1
        if not adopt or self.pending:
            return
        # drive the copy from now on (its optimizers too)
        def remap(s, done):
            if id(s) in done:
                return done[id(s)]
            ns = copy.copy(s)
            done[id(s)] = ns
            ns.mod = memo[id(s.mod)]
            ns.slots = {k: memo[id(t)] for k, t in s.slots.items()}
            ns.children = [(k, remap(c, done)) for k, c in s.children]
            if s.kind == "act":
                ns.obj = memo[id(s.obj)]
            return ns
        self.spec = remap(self.spec, {})
        self.model = new_model
        self.labels = self.relabel(memo)
        idmap = {i: memo[id(t)] for i, t in self.T.items() if id(t) in memo}
        for name in ("expect", "egrad", "erg"):
            d = getattr(self, name)
            setattr(self, name, {id(nt): d[i] for i, nt in idmap.items()})
        self.T = {id(nt): nt for nt in idmap.values()}
        self.opts = [(no, sh) for no, (_, sh) in zip(new_opts, self.opts)]
        STATS["deepcopy adopted"] += 1

    def relabel(self, memo):
        """Expected labels keyed by the copied modules (the losses are not copied)."""
        out = {}
        for old_id, lab in self.labels.items():
            new = memo.get(old_id)
            out[id(new) if new is not None else old_id] = lab
        return out

    @rule(data=st.data())
    def pickle_roundtrip(self, data):
        if self.pending or not data.draw(st.integers(0, 3), label='pickle?') == 0:
            return
        snap = self.snapshot()
        res, exc, _ = attempt(lambda: pickle.loads(pickle.dumps(self.model)))
        if exc is not None:
            check_clear(exc)
            fail(f"pickle round trip raised {type(exc).__name__}: {exc}")
        self.unchanged(snap, "pickle")
        got = list(res.named_parameters())
        exp = self.expected_named()
        if [n for n, _ in got] != [n for n, _ in exp] or not all(
                same(a.data, b.data) and a.requires_grad == b.requires_grad
                for (_, a), (_, b) in zip(got, exp)):
            fail("pickle round trip: other parameters")
        x = np.random.default_rng(2).standard_normal((2, self.d_in))
        with tg.no_grad():
            if not same(self.model(x).data, res(x).data):
                fail("pickle round trip: other output")
        STATS["pickle"] += 1

    # -- labels ------------------------------------------------------------------------------
    @rule(data=st.data(), label=st.sampled_from(["enc", "Linear 1", "<lambda>", "blöck", "a b"]))
    def set_label(self, data, label):
        s = data.draw(st.sampled_from(self.specs()), label="module")
        s.mod.label = label
        self.labels[id(s.mod)] = label

    # -- central differences -------------------------------------------------------------
    @precondition(lambda self: self.model is not None and not self.f32_model())
    @rule(data=st.data())
    def central_differences(self, data):
        b = self.draw_batch(data)
        if np.asarray(b["x"]).dtype != F64 and b["form"] != "list":
            return
        with np.errstate(all="ignore"):
            _, _, L, grads, _, ctx, near = self.shadow(b)
        if not self.tame(L, *grads.values()):
            return
        if near or ctx.kink < 1e-4:
            STATS["fd skipped near a kink"] += 1
            return
        cands = [t for t in self.model_tensors() if id(t) in grads]
        if not cands:
            return
        t = data.draw(st.sampled_from(cands), label="fd tensor")
        j = data.draw(st.integers(0, t.size - 1), label="fd element")
        orig = t.data

        def loss_at(delta):
            arr = orig.copy()
            arr.reshape(-1)[j] += delta
            t.data = arr
            try:
                with tg.no_grad():
                    return float(self.run_loss(b)[2].item())
            finally:
                t.data = orig
        snap = self.snapshot()
        num = (loss_at(EPS_FD) - loss_at(-EPS_FD)) / (2 * EPS_FD)
        ana = float(grads[id(t)].reshape(-1)[j])
        self.unchanged(snap, "central differences")
        if abs(ana - num) / (abs(ana) + abs(num) + 1e-8) > 1e-5 and abs(ana - num) > 1e-8:
            fail(f"central difference of {t.name}[{j}]: {num}, shadow gradient {ana}")
        STATS["central differences"] += 1

    # -- refused calls -------------------------------------------------------------------
    @rule(data=st.data())
    def bad_call(self, data):
        kind = data.draw(st.sampled_from([
            "features", "sce labels", "sce range", "sce 1d", "mse shape", "mse nan",
            "bce range", "bce probs", "sgd module", "sgd empty", "sgd dup", "sgd nonleaf",
            "adam lr", "array attr", "list attr", "nested list", "linear 0", "act class",
            "act name", "seq item", "backward nonscalar", "target grad"]), label="bad call")
        m = self.model
        x = np.zeros((2, self.d_in + 1))
        z = tg.Tensor(np.zeros((2, self.K)), requires_grad=True)
        p0 = self.model_tensors()[0]
        if kind == "features":
            self.refused(lambda: m(x), tg.ShapeError, "features", what="wrong feature count")
        elif kind == "sce labels":
            self.refused(lambda: self.losses["sce"](z, [0, 1, 0]), ValueError,
                         "SoftmaxCrossEntropy", what="too many labels")
        elif kind == "sce range":
            self.refused(lambda: self.losses["sce"](z, [0, self.K]), ValueError,
                         "SoftmaxCrossEntropy", what="label out of range")
        elif kind == "sce 1d":
            self.refused(lambda: self.losses["sce"](tg.Tensor(np.zeros(3)), [0]), ValueError,
                         "SoftmaxCrossEntropy", what="1-D logits")
        elif kind == "mse shape":
            self.refused(lambda: self.losses["mse"](z, np.zeros((3, self.K))), ValueError,
                         "MSELoss", what="mse target shape")
        elif kind == "mse nan":
            self.refused(lambda: self.losses["mse"](z, np.full((2, self.K), np.nan)), ValueError,
                         "MSELoss", what="mse nan target")
        elif kind == "bce range":
            self.refused(lambda: self.losses["bcel"](z, np.full((2, self.K), 2.0)), ValueError,
                         "BCEWithLogits", what="bce target range")
        elif kind == "bce probs":
            self.refused(lambda: self.losses["bce"](z + 3.0, np.zeros((2, self.K))), ValueError,
                         "BCELoss", what="bce predictions not probabilities")
        elif kind == "sgd module":
            self.refused(lambda: nn.SGD(m, lr=0.1), TypeError, "SGD", what="SGD(model)")
        elif kind == "sgd empty":
            self.refused(lambda: nn.Adam([], lr=0.1), ValueError, "Adam", what="Adam([])")
        elif kind == "sgd dup":
            self.refused(lambda: nn.SGD([p0, p0], lr=0.1), ValueError, "twice",
                         what="SGD with a parameter listed twice")
        elif kind == "sgd nonleaf" and p0.requires_grad:
            self.refused(lambda: nn.SGD([p0 * 2.0], lr=0.1), ValueError, "leaf",
                         what="SGD on a non-leaf")
        elif kind == "adam lr":
            self.refused(lambda: nn.Adam(m.parameters(), lr=-1.0), ValueError, "lr",
                         what="Adam lr < 0")
        elif kind == "array attr":
            s, name = data.draw(st.sampled_from(self.slot_choices()), label="slot")
            value = (np.zeros(s.slots[name].shape) if data.draw(st.booleans(), label="array")
                     else tg.Tensor(np.zeros(s.slots[name].shape)))
            self.refused(lambda: setattr(s.mod, name, value), TypeError, name,
                         what="array or constant tensor assigned to a parameter")
        elif kind == "list attr":
            self.refused(lambda: setattr(m, "extra", [nn.Linear(2, 2)]), TypeError, "list",
                         what="list of modules")
        elif kind == "nested list":
            holder = data.draw(st.sampled_from(["list of list", "dict of list", "set", "tuple of tuple"]),
                               label="holder")
            lin = nn.Linear(2, 2)
            value = {"list of list": [[lin]], "dict of list": {"a": [lin]}, "set": {lin},
                     "tuple of tuple": ((lin,),)}[holder]
            self.refused(lambda: setattr(m, "extra", value), TypeError, "extra",
                         what=f"modules in a {holder}")
        elif kind == "linear 0":
            self.refused(lambda: nn.Linear(0, 3), ValueError, "n_in", what="Linear(0, 3)")
        elif kind == "act class":
            self.refused(lambda: nn.ActivationLayer(acts.ReLU), TypeError, "ActivationLayer",
                         what="ActivationLayer(class)")
        elif kind == "act name":
            self.refused(lambda: nn.ActivationLayer("reluu"), ValueError, "reluu",
                         what="ActivationLayer(unknown name)")
        elif kind == "seq item":
            self.refused(lambda: nn.Sequential(nn.Linear(2, 2), "relu"), TypeError, "Sequential",
                         what="Sequential(str)")
        elif kind == "backward nonscalar":
            xt = tg.Tensor(np.ones((2, self.d_in)))
            out = m(xt)
            if out.requires_grad:
                self.refused(lambda: out.backward(), (tg.BackwardError, ValueError, RuntimeError),
                             "backward", what="backward of a non-scalar without grad")
            del out
            gc.collect()
        elif kind == "target grad":
            self.refused(lambda: self.losses["mse"](z, z * 1.0), ValueError, "MSELoss",
                         what="targets that require grad")

    def teardown(self):
        self.pending = []
        gc.collect()


def iter_arrays(state):
    for v in state.values():
        if isinstance(v, list):
            for a in v:
                if isinstance(a, np.ndarray):
                    yield a


def same_state(a, b):
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(
            same_state(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return same(a, b)
    return a == b


TestModuleMachine = fuzz_test_case(ModuleMachine, "NN_FUZZ", examples=100, steps=30)

pytestmark = pytest.mark.usefixtures("collections_see_only_new_objects")


def teardown_module(module):
    if STATS:
        print("\nstateful module fuzz:", dict(sorted(STATS.items())))
