"""A stateful fuzz of the engine: random interleavings of what users do, invariants after
every step.

A ``hypothesis.stateful.RuleBasedStateMachine`` keeps a pool of tensors (leaves of float32 /
float64, broadcastable shapes, requires_grad or not, some frozen by their owner; results of
random ops, some recorded under ``no_grad``; detached tensors; losses) and, in any order:
applies ops (elementwise, broadcasting binary ops, reductions with axes, softmax family,
shape ops, indexing, joins, where, clip, matmul, linear, cast, numpy-protocol calls) to
random pool members, so that graphs share nodes and leaves (fan-out); runs ``backward()``
on scalars and on non-scalars with ``grad=`` (with and without ``retain_graph``, sometimes
twice); runs ``tg.grad`` on leaves and intermediates (also ``create_graph=True`` followed by
a second-order ``backward``/``grad``); zeroes gradients (``zero_grad``, ``.grad = None``, in
place); calls ``retain_grad()``; detaches; updates parameters in place under ``no_grad`` (and
outside it, and through ``.data``, and by replacing ``.data``); toggles ``requires_grad``; drops
tensors and collects garbage.

Every tensor carries a *symbolic recipe* (``Sym``): a float64 numpy re-implementation of
how it was computed from the leaves' values *as they were when each op ran*. From it:

- every op's forward value, shape and dtype are checked against numpy;
- every gradient (leaf ``.grad`` increments, ``retain_grad`` tensors, ``tg.grad`` results for
  leaves and intermediates, second-order Hessian-vector products) is checked against float64
  central differences of the recipe (skipped only near a kink: relu/abs at 0, ties of
  maximum/max, clip bounds);
- the release model (which nodes a backward/grad frees) predicts exactly which later
  backward/grad must raise ``BackwardError``; after a refused pass no ``.grad`` may change;
- the lock model (which leaf/constant arrays a live, unreleased node saved) predicts
  ``tg.held_by_graph`` and the arrays' writeable flags, and whether an in-place update of a
  parameter must be refused;
- errors for bad shapes/axes/indices must be tinygraph's (named after the op), and raised
  exactly when numpy refuses the same computation.

Invariants after every step: each leaf's ``.grad`` is None or an array of its shape and dtype,
unchanged since the last step that was supposed to change it (no aliasing between ``.grad``
arrays or with any tensor's data); ``held_by_graph`` equals the lock model and arrays are
writable exactly when nothing holds them (owner-frozen arrays stay read-only); data of
results is read-only; grad mode is back on.

Run:  nice -n 19 python -m pytest tests/tinygraph/test_stateful_engine.py -q -s
Environment: TG_FUZZ_EXAMPLES (default 60, 4-12 s here; 150 or more to hunt), TG_FUZZ_STEPS
(default 50), TG_FUZZ_SEED (derandomized by default: set it to an integer to explore other
runs), TG_FUZZ_NO_SHRINK=1 (report the first failure as found: shrinking a long state
machine can take minutes). The statistics of a run (ops applied, passes checked, refusals
seen) print at the end (-s).

What it found, each fixed and now with a test of its own: detect_anomaly() crashed on
backward math that gives numpy scalars (test_anomaly); one array object as two different
inputs (x * x.detach(), two leaves over one array) gave wrong second derivatives
(test_higher_order); a leaf used before and after its data was replaced by another shape had
its gradients broadcast together (test_autograd); a forward pass over an array made writable
by hand while an older graph held it was refused (test_autograd).
"""
from __future__ import annotations

import collections
import contextlib
import functools
import gc
import itertools
import math
import warnings
import weakref

import numpy as np
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import tinygraph as tg
from _fuzz import fuzz_test_case
from tinygraph.errors import BackwardError, TinygraphError

MAX_POOL = 30          # tensors kept in the pool (older results are dropped)
BOUND = 30.0           # results with larger values are not reused (keeps FD well conditioned)
KINK = 1e-3            # skip a finite-difference check this close to a kink
KINK2 = 2e-2           # ... and for second-order checks
KINK_F32 = 1e-4        # float32 graphs this close to a kink are not checked (the engine's
                       # float32 values may sit on the other side of it)
EPS = 1e-6

STATS: collections.Counter = collections.Counter()
# what backward()/grad() run inside (detect_anomaly: its checks run on every node)
CONTEXTS = ["plain", "plain", "plain", "no_grad", "anomaly"]
_keys = itertools.count(1)


def _parent(operand):
    """What the engine records as an operand's parent: its leaf, its node, or None."""
    t = getattr(operand, "t", None)
    if t is None or not t.requires_grad:
        return None
    return t if t.grad_fn is None else t.grad_fn


def amax(x):
    """max |x| (0 for an empty array)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.max(np.abs(x))) if x.size else 0.0


def lowp(dtype):
    """Precision level of a dtype: 0 float64 (or integer/bool), 1 float32, 2 float16."""
    return {np.dtype(np.float32): 1, np.dtype(np.float16): 2}.get(np.dtype(dtype), 0)


class CheckFailure(AssertionError):
    pass


def fail(msg):
    raise CheckFailure(msg)


# -- the symbolic model ------------------------------------------------------------------------

class NodeRec:
    """What the test knows about one recorded engine node (independently of the engine)."""
    __slots__ = ("node_ref", "parents", "leaf_vars", "saved", "released", "label", "epochs",
                 "tainted", "__weakref__")

    def __init__(self, node, parents, leaf_vars, saved, label, epochs=()):
        self.epochs = tuple(epochs)       # (var, shape epoch of the leaf when the op ran)
        self.tainted = False              # a saved array was made writable by hand
        self.node_ref = weakref.ref(node)
        self.parents = parents            # NodeRecs of the non-leaf inputs that require grad
        self.leaf_vars = leaf_vars        # var keys of leaf inputs that require grad
        self.saved = saved                # weakrefs of leaf/constant arrays the node locks
        self.released = False
        self.label = label


class Sym:
    """How a value was computed, in float64, from leaf snapshots ('var'), constants and ops."""
    __slots__ = ("key", "kind", "var", "value", "fn", "parents", "f32", "margin", "rec", "label")

    def __init__(self, kind, value, *, var=None, fn=None, parents=(), f32=False,
                 margin=math.inf, rec=None, label=""):
        self.key = next(_keys)
        self.kind = kind
        self.var = var
        self.value = value
        self.fn = fn
        self.parents = tuple(parents)
        self.f32 = f32
        self.margin = margin
        self.rec = rec
        self.label = label


def topo(roots):
    """Syms reachable from roots, parents before children."""
    order, seen = [], set()
    stack = [(r, False) for r in roots]
    while stack:
        s, done = stack.pop()
        if done:
            order.append(s)
            continue
        if s.key in seen:
            continue
        seen.add(s.key)
        stack.append((s, True))
        for p in s.parents:
            if p.key not in seen:
                stack.append((p, False))
    return order


def _eval_one(s, vals, delta):
    if s.kind == "var":
        d = delta.get(s.var)
        return s.value if d is None else s.value + d
    if s.kind == "const":
        return s.value
    v = np.asarray(s.fn(*[vals[p.key] for p in s.parents]), dtype=np.float64)
    d = delta.get(s.key)
    return v if d is None else v + d


def evaluate(order, delta):
    vals = {}
    with np.errstate(all="ignore"):
        for s in order:
            vals[s.key] = _eval_one(s, vals, delta)
    return vals


def objective_value(terms, vals):
    total = 0.0
    for s, w in terms:
        total += float(np.sum(np.asarray(vals[s.key], dtype=np.float64) * w))
    return total


def fd_grad(terms, wrt, base_delta=None, eps=EPS, kinks=None):
    """Central differences of sum_k <sym_k, w_k> with respect to each (key, shape) in wrt.
    A key is a leaf var key (all snapshots of that leaf move together) or a Sym key (an
    intermediate's output is perturbed). If ``kinks`` is a dict, it gets, per key, a bool
    array: where the one-sided differences disagree (the function has a kink there, so
    no gradient is checked)."""
    base_delta = dict(base_delta or {})
    order = topo([s for s, _ in terms])
    base = evaluate(order, base_delta)
    f0 = objective_value(terms, base)
    out = {}
    for key, shape in wrt:
        dep = set()
        for s in order:
            if (s.kind == "var" and s.var == key) or s.key == key or \
                    any(p.key in dep for p in s.parents):
                dep.add(s.key)
        sub = [s for s in order if s.key in dep]
        g = np.zeros(shape)
        kink = np.zeros(shape, dtype=bool)
        if kinks is not None:
            kinks[key] = kink
        if sub:
            for j in np.ndindex(*shape):
                fs = []
                for sign in (1.0, -1.0):
                    e = np.zeros(shape)
                    e[j] = sign * eps
                    d = dict(base_delta)
                    d[key] = d[key] + e if key in d else e
                    vals = dict(base)
                    with np.errstate(all="ignore"):
                        for s in sub:
                            vals[s.key] = _eval_one(s, vals, d)
                    fs.append(objective_value(terms, vals))
                g[j] = (fs[0] - fs[1]) / (2 * eps)
                fwd, bwd = (fs[0] - f0) / eps, (f0 - fs[1]) / eps
                # smooth: fwd - bwd ~ eps * f'' (< 1e-3 for |f''| < 1e3)
                kink[j] = not abs(fwd - bwd) <= 1e-3 * (1 + abs(fwd) + abs(bwd))
        out[key] = g
    return out, base


def dag_margin(terms):
    order = topo([s for s, _ in terms])
    return min([s.margin for s in order] + [math.inf]), max([s.f32 for s in order] + [0]), order


# -- reference (numpy) implementations ---------------------------------------------------------

def np_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    e = np.exp(x - m)
    return e / np.sum(e, axis=axis, keepdims=True)


def np_log_softmax(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return (x - m) - np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def np_logsumexp(x, axis=None, keepdims=False):
    m = np.max(x, axis=axis, keepdims=True)
    out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    if keepdims:
        return out
    if axis is None:
        return out.reshape(())
    return np.squeeze(out, axis=axis)


def np_sigmoid(x):
    return 1 / (1 + np.exp(-x))


def np_linear(x, W, b=None):
    z = x @ np.swapaxes(W, -1, -2)
    return z if b is None else z + b


def m_abs(x, *a, **k):
    x = np.asarray(x, dtype=np.float64)
    return float(np.min(np.abs(x))) if x.size else math.inf


def m_diff(a, b):
    d = np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))
    return float(np.min(d)) if d.size else math.inf


def m_clip(x, lo=None, hi=None):
    m = math.inf
    for b in (lo, hi):
        if b is not None:
            m = min(m, m_diff(x, b))
    return m


def m_reduce(x, axis=None, keepdims=False, is_max=True):
    x = np.asarray(x, dtype=np.float64)
    if x.size <= 1:
        return math.inf
    if axis is None:
        axes = tuple(range(x.ndim))
    else:
        axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
        axes = tuple(int(a) % x.ndim for a in axes)
    if not axes:
        return math.inf
    other = [i for i in range(x.ndim) if i not in axes]
    k = int(np.prod([x.shape[a] for a in axes]))
    if k < 2:
        return math.inf
    y = np.transpose(x, other + list(axes)).reshape(-1, k)
    s = np.sort(y, axis=1)
    gap = s[:, -1] - s[:, -2] if is_max else s[:, 1] - s[:, 0]
    return float(gap.min())


# which inputs each op keeps with save_for_backward (and so locks, when they are a leaf's or a
# constant's own array): the engine's documented behaviour, written down independently
def _saved_indices(op, needs):
    if op in ("user_square", "user_muladd"):
        return [0] if op == "user_square" else [0, 1]
    if op in ("mul", "matmul"):
        return [i for i in (0, 1) if needs[1 - i]]
    if op == "div":
        return ([0] if needs[1] else []) + [1]
    if op == "pow":
        return [0, 1]
    if op in ("log", "logsumexp"):
        return [0]
    if op == "where":
        return [0]
    if op == "linear":
        return ([0] if needs[1] else []) + ([1] if needs[0] else [])
    return []


# -- user ops (tinygraph.Function subclasses, as examples/custom_op.py writes them): their
# backward is checked by the engine on every call (check_backward stays True)

class UserSquare(tg.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * x * g


class UserIdentity(tg.Function):
    """Hands back its input's own array (the engine must make the output a view)."""
    @staticmethod
    def forward(ctx, x):
        return x

    @staticmethod
    def backward(ctx, g):
        return g


class UserCache(tg.Function):
    """Keeps an array on ctx (freed after backward unless retained); not twice
    differentiable under create_graph (the cache is a constant there), by design."""
    @staticmethod
    def forward(ctx, x):
        ctx.cache = (np.cos(x), [np.ones(1)])
        return np.sin(x)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.cache[0]


class UserMulAdd(tg.Function):
    """Two inputs of one shape and a keyword: a * b + k * a."""
    @staticmethod
    def forward(ctx, a, b, k=1.0):
        ctx.save_for_backward(a, b)
        ctx.k = k
        return a * b + k * a

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        n = ctx.needs_input_grad
        return (g * (b + ctx.k) if n[0] else None), (g * a if n[1] else None)


class UserHalf(tg.Function):
    """Its backward gives numpy scalars for 0-d inputs (taken as arrays by the engine)."""
    @staticmethod
    def forward(ctx, x):
        return x * 0.5

    @staticmethod
    def backward(ctx, g):
        return g * 0.5


ONCE_DIFFERENTIABLE = {"user_cache"}


class Entry:
    __slots__ = ("t", "sym", "var", "frozen", "retained", "known", "label", "__weakref__")

    def __init__(self, t, sym=None, label=""):
        self.t = t
        self.sym = sym
        self.var = next(_keys) if t.grad_fn is None else None
        self.frozen = False
        self.retained = False
        self.known = None
        self.label = label

    @property
    def is_leaf(self):
        return self.t.grad_fn is None


OP_ERRORS = (TinygraphError, TypeError, ValueError, IndexError)


def check_error_message(exc, names):
    """An error from a bad op call must be one of tinygraph's documented kinds and say which
    op refused (never numpy's words alone)."""
    if not isinstance(exc, OP_ERRORS):
        fail(f"{names[0]}: raised {type(exc).__name__}: {exc}, not a documented error type")
    msg = str(exc)
    head = msg.split(":")[0].lower()
    if not any(n in head for n in names):
        fail(f"{names[0]}: error message does not start with the op's name: "
             f"{type(exc).__name__}: {msg}")


class EngineMachine(RuleBasedStateMachine):

    def __init__(self):
        super().__init__()
        self.pool: list[Entry] = []
        self.recs: list[NodeRec] = []
        self.tracked: dict = {}          # id -> (weakref(array), frozen_by_owner)
        self.calls = 0
        self.var_epoch: dict = {}        # var -> how often its data was replaced by another shape
        self.var_tensor: dict = {}       # var -> weakref to the leaf tensor
        self.forced: dict = {}           # id -> weakref of held arrays made writable by hand
        STATS["machines"] += 1

    # -- helpers -----------------------------------------------------------------------------

    def track(self, arr, frozen=False):
        # only arrays that own their memory: a view is copied, never locked, when saved
        if isinstance(arr, np.ndarray) and arr.base is None:
            old = self.tracked.get(id(arr))
            if old is not None and old[0]() is arr:
                return
            self.tracked[id(arr)] = (weakref.ref(arr), frozen)

    def tracked_arrays(self):
        for key, (ref, frozen) in list(self.tracked.items()):
            a = ref()
            if a is None:
                del self.tracked[key]
                continue
            yield a, frozen

    def add(self, entry):
        self.pool.append(entry)
        if len(self.pool) > MAX_POOL:
            # drop the oldest result that is not a leaf
            for i, e in enumerate(self.pool):
                if not e.is_leaf:
                    del self.pool[i]
                    break
            else:
                del self.pool[0]

    def use_sym(self, o):
        if isinstance(o, Entry):
            t = o.t
            if t.grad_fn is None:
                v = np.array(t._data, dtype=np.float64)
                if t.requires_grad:
                    return Sym("var", v, var=o.var, f32=lowp(t.dtype), label="leaf")
                return Sym("const", v, f32=lowp(t.dtype), label="const")
            return o.sym
        if isinstance(o, np.ndarray):
            return Sym("const", np.array(o, dtype=np.float64), f32=lowp(o.dtype),
                       label="array")
        return Sym("const", o, label="scalar")

    def pick(self, data, cond=None, label="operand"):
        # newest first: hypothesis favours small indices, and building on recent results
        # makes deep graphs with shared nodes
        cands = [e for e in reversed(self.pool) if cond is None or cond(e)]
        if not cands:
            return None
        if self.coin(data, 0.3, label + ": newest"):
            return cands[0]
        return self.choice(data, cands, label)

    def floats(self, data):
        return self.pick(data, lambda e: e.t.dtype.kind == "f")

    def _gen(self, data, label):
        # hypothesis draws some integers (0, the bounds) far more often than others; a numpy
        # generator seeded by the drawn value *and* a per-machine counter gives unbiased
        # choices that are still reproducible (and that shrink with the draws)
        self.calls += 1
        seed = data.draw(st.integers(0, 2**32 - 1), label=label)
        return np.random.default_rng([seed, self.calls])

    def coin(self, data, p, label):
        return self._gen(data, label).random() < p

    def choice(self, data, options, label):
        options = list(options)
        return options[int(self._gen(data, label).integers(len(options)))]

    def rng(self, data):
        return self._gen(data, "seed")

    # -- applying one op -------------------------------------------------------------------------

    def apply(self, name, efn, rfn, operands, kw=None, *, op=None, names=None, no_grad=False,
              kink=None, dtype=None, keep=True, bound=BOUND, may_refuse=False):
        """Run efn on the operands' tensors and rfn on their float64 recipes; check forward
        value, shape, dtype, requires_grad and the recorded node; on success add the result to
        the pool (if keep and its values are moderate) and return its Entry."""
        kw = kw or {}
        no_grad = no_grad or not tg.is_grad_enabled()
        op = op or name
        names = names or (op,)
        STATS["op:" + name] += 1
        syms = [self.use_sym(o) for o in operands]
        natives = [o.t._data if isinstance(o, Entry) else o for o in operands]
        ref_err = ref = None
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)     # (numpy: mean of nothing)
                ref = np.asarray(rfn(*[s.value for s in syms], **kw), dtype=np.float64)
                native = np.asarray(rfn(*natives, **kw))
        except Exception as exc:      # noqa: BLE001 - numpy's verdict on the same call
            ref_err = exc
        eng = [o.t if isinstance(o, Entry) else o for o in operands]
        # arrays made writable by hand while a graph held them (before this op)
        forced = {id(a) for a in natives if isinstance(a, np.ndarray) and self.is_forced(a)}
        # one array object as two different inputs (a leaf and its detach(), tied leaves)
        aliased = any(isinstance(x, np.ndarray) and x is y and eng[i] is not eng[j]
                      for i, x in enumerate(natives) for j, y in enumerate(natives) if i < j)
        ctx = tg.no_grad() if no_grad else contextlib.nullcontext()
        held_before = self.held_now() if no_grad else None
        try:
            with ctx, warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                out = efn(*eng, **kw)
        except Exception as exc:      # noqa: BLE001
            if ref_err is None and not may_refuse:
                fail(f"{name}{kw}: tinygraph raised {type(exc).__name__}: {exc}; numpy computes "
                     f"it (shape {ref.shape}) from operand shapes "
                     f"{[np.shape(n) for n in natives]}")
            check_error_message(exc, names)
            STATS["op error (expected)"] += 1
            return None
        if ref_err is not None:
            fail(f"{name}{kw}: tinygraph computed shape {out.shape} but numpy raises "
                 f"{type(ref_err).__name__}: {ref_err} (operand shapes "
                 f"{[np.shape(n) for n in natives]})")
        if not isinstance(out, tg.Tensor):
            fail(f"{name}: returned {type(out).__name__}, not a Tensor")
        if out.shape != ref.shape:
            fail(f"{name}{kw}: shape {out.shape}, numpy gives {ref.shape}")
        want_dtype = np.dtype(dtype) if dtype is not None else native.dtype
        if out.dtype != want_dtype:
            fail(f"{name}{kw}: dtype {out.dtype}, numpy gives {want_dtype} for operand dtypes "
                 f"{[getattr(n, 'dtype', type(n).__name__) for n in natives]}")
        f32 = max([lowp(out.dtype)] + [s.f32 for s in syms])
        got = np.asarray(out._data, dtype=np.float64)
        tol = (1e-9, 2e-3, 3e-2)[f32]
        if not np.allclose(got, ref, rtol=tol, atol=tol, equal_nan=True):
            err = np.nanmax(np.abs(got - ref)) if got.size else 0
            fail(f"{name}{kw}: forward value differs from numpy by {err:.3g} "
                 f"(f32={f32})\n got {got}\n ref {ref}")
        needs = tuple(isinstance(o, Entry) and o.t.requires_grad for o in operands)
        expect_rg = (not no_grad) and any(needs) and out.dtype.kind == "f"
        if out.requires_grad != expect_rg or (out.grad_fn is not None) != expect_rg:
            fail(f"{name}: requires_grad={out.requires_grad}, grad_fn={out.grad_fn}; expected "
                 f"requires_grad={expect_rg} (no_grad={no_grad}, inputs need {needs})")
        if no_grad:
            after = self.held_now()
            if after != held_before:
                fail(f"{name} under no_grad changed which arrays a graph holds")
        rec = None
        if expect_rg:
            node = out.grad_fn
            if len(node.parents) != len(operands):
                fail(f"{name}: node has {len(node.parents)} parents for {len(operands)} inputs")
            for o, p, nd in zip(operands, node.parents, node.needs_input_grad):
                want = (o.t if o.t.grad_fn is None else o.t.grad_fn) \
                    if isinstance(o, Entry) and o.t.requires_grad else None
                if p is not want or bool(nd) != (want is not None):
                    fail(f"{name}: node parent {p!r} / needs {nd}, expected {want!r}")
            prec = [s.rec for s, o in zip(syms, operands)
                    if isinstance(o, Entry) and o.t.grad_fn is not None]
            lvars = [o.var for o in operands
                     if isinstance(o, Entry) and o.t.grad_fn is None and o.t.requires_grad]
            for o in operands:
                if isinstance(o, Entry) and o.t.grad_fn is None:
                    self.var_tensor[o.var] = weakref.ref(o.t)
            saved = []
            for i in _saved_indices(op, needs):
                o = operands[i]
                if isinstance(o, Entry):
                    if o.t.grad_fn is not None:
                        continue
                    arr = o.t._data
                else:
                    arr = o
                if op == "where" and (not isinstance(arr, np.ndarray) or arr.dtype != bool):
                    continue
                if not isinstance(arr, np.ndarray) or arr.base is not None:
                    continue                # a view: saved as a private copy
                if any(natives[j] is arr and _parent(operands[j]) is not _parent(o)
                       for j in range(i)):
                    continue                # the same array as an earlier, different input:
                                            # a view of its own, saved as a private copy
                if id(arr) in forced:
                    continue                # forced writable while an older node holds it:
                                            # a private copy (the older node still sees it)
                saved.append(weakref.ref(arr))
            rec = NodeRec(node, prec, lvars, saved, name,
                          [(v, self.var_epoch.get(v, 0)) for v in lvars])
            # an array made writable by hand while a graph held it stays so (and counted)
            # until that graph goes; a new node saving it keeps a copy, and is not refused
            STATS["node saving a forced-writable array"] += any(
                isinstance(n, np.ndarray) and id(n) in forced for n in natives)
            self.recs.append(rec)
        for o in operands:
            if isinstance(o, np.ndarray):
                self.track(o)
            elif isinstance(o, Entry) and o.t.grad_fn is None:
                self.track(o.t._data)
        margin = kink(*[s.value for s in syms], **kw) if kink else math.inf
        if expect_rg:
            sym = Sym("op", ref, fn=(lambda *v, _f=rfn, _k=kw: _f(*v, **_k)), parents=syms,
                      f32=f32, margin=margin, rec=rec,
                      label=name + (" [aliased inputs]" if aliased else ""))
            STATS["op with one array as two inputs"] += aliased
        else:
            sym = Sym("op", ref, fn=(lambda *v, _f=rfn, _k=kw: _f(*v, **_k)), parents=syms,
                      f32=f32, margin=margin, label=name)
        entry = Entry(out, None if out.grad_fn is None else sym, label=name)
        if out.grad_fn is None:
            self.track(out._data)
        else:
            d = out.data
            if d.flags.writeable:
                fail(f"{name}: .data of a recorded result is writable")
        if keep and np.all(np.isfinite(ref)) and (ref.size == 0 or np.max(np.abs(ref)) <= bound) \
                and out.dtype.kind == "f" and (out.size > 0 or self.calls % 3 == 0):
            self.add(entry)
        return entry

    # positive / bounded versions of an operand (so log, sqrt, div, pow stay well defined)
    def positive(self, e, lo=0.2):
        v = self.use_sym(e).value
        if np.size(v) and np.min(v) >= lo:
            return e
        sq = self.apply("mul", lambda a, b: a * b, lambda a, b: a * b, [e, e], keep=False)
        if sq is None:
            return None
        return self.apply("add", lambda a, c: a + c, lambda a, c: a + c, [sq, 0.5],
                          keep=False)

    def bounded(self, e, hi=3.0):
        v = self.use_sym(e).value
        if np.size(v) == 0 or np.max(v) <= hi:
            return e
        return self.apply("tanh", tg.tanh, np.tanh, [e], keep=False)

    # -- lock model ------------------------------------------------------------------------------

    def expected_held(self):
        ids = set()
        alive = []
        for r in self.recs:
            if r.node_ref() is None:
                continue
            alive.append(r)
            if r.released:
                continue
            for w in r.saved:
                a = w()
                if a is not None:
                    ids.add(id(a))
        self.recs = alive
        return ids

    def held_now(self):
        return {id(a) for a, _ in self.tracked_arrays() if tg.held_by_graph(a)}

    def reach(self, rec):
        """NodeRecs reachable from rec (rec first), and the leaf vars below them."""
        order, seen, stack = [], set(), [rec]
        while stack:
            r = stack.pop()
            if id(r) in seen:
                continue
            seen.add(id(r))
            order.append(r)
            stack.extend(r.parents)
        lv = set()
        for r in order:
            lv.update(r.leaf_vars)
        return order, lv

    def stale(self, recs, only=None, need_rg=True):
        """Leaf vars with a use recorded before their data was replaced by an array of
        another shape (the leaf alive and, for backward, still requiring grad)."""
        out = set()
        for r in recs:
            for v, ep in r.epochs:
                if ep == self.var_epoch.get(v, 0) or (only is not None and v not in only):
                    continue
                ref = self.var_tensor.get(v)
                t = ref() if ref is not None else None
                if t is not None and (t.requires_grad or not need_rg):
                    out.add(v)
        return out

    def leaf_entries(self):
        return [e for e in self.pool if e.is_leaf]

    def grads_snapshot(self):
        snap = {}
        for e in self.pool:
            if e.is_leaf or e.retained:
                g = e.t._grad
                snap[id(e)] = None if g is None else np.array(g, copy=True)
        return snap

    def assert_grads_unchanged(self, snap, why):
        for e in self.pool:
            if id(e) not in snap:
                continue
            g, old = e.t._grad, snap[id(e)]
            if (g is None) != (old is None) or (g is not None and not np.array_equal(g, old)):
                fail(f"{why}: the .grad of {e.label} changed ({old} -> {g})")

    def refresh_known(self):
        for e in self.pool:
            if e.is_leaf or e.retained:
                g = e.t._grad
                e.known = None if g is None else np.array(g, copy=True)

    _note = ""

    def compare(self, what, got, want, scale, f32, extra=0.0, kink=None):
        """Engine vs central differences. Near a kink of the graph (kink is the per-element
        mask of fd_grad), the elements at the kink are not compared and the others with a
        looser tolerance (a small slope change may go unnoticed by the one-sided test)."""
        got = np.asarray(got, dtype=np.float64)
        if got.shape != want.shape:
            fail(f"{what}: shape {got.shape}, expected {want.shape}")
        rt = (2e-6, 2e-3, 5e-2)[f32]
        if kink is not None:
            rt = max(rt, 2e-3)
            STATS["elements skipped at a kink"] += int(kink.sum())
            STATS["elements compared near a kink"] += int((~kink).sum())
            got, want = got[~kink], want[~kink]
        tol = rt * (1 + scale) + extra
        err = amax(got - want) if got.size else 0.0
        if not err <= tol:
            fail(f"{what}: differs from central differences by {err:.3g} (tol {tol:.3g}, "
                 f"f32={f32})\n engine {got}\n numeric {want}\n {self._note}")

    # -- rules: making tensors ---------------------------------------------------------------------

    @initialize(specs=st.lists(st.tuples(
        st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple), st.booleans(),
        st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)), min_size=2,
        max_size=5))
    def some_leaves(self, specs):
        for spec in specs:
            self._make_leaf(*spec)

    @precondition(lambda self: any(e.is_leaf for e in self.pool))
    @rule(data=st.data())
    def shared_leaf(self, data):
        """A second leaf over an existing leaf's array (weight tying by wrapping one numpy
        array twice), or a leaf over a view of a fresh buffer (a slice of a dataset)."""
        if self.coin(data, 0.5, "alias"):
            e = self.pick(data, lambda o: o.is_leaf and o.t.dtype.kind == "f"
                          and o.t._data.base is None)
            if e is None:
                return
            arr = e.t._data
            t = tg.Tensor(arr, requires_grad=self.coin(data, 0.7, "requires grad"))
            if t._data is not arr:
                fail("Tensor(array) copied the array")
            n = Entry(t, label="alias of " + e.label)
            n.frozen = e.frozen
            STATS["leaves: alias"] += 1
        else:
            r = self.rng(data)
            buf = np.asarray(r.uniform(-2, 2, (4, 3, 2)))
            view = self.choice(data, [buf[1:3], buf[:, 0], buf.T, buf[::2, ::-1], buf[2, 1]],
                               "view")
            t = tg.Tensor(view, requires_grad=self.coin(data, 0.7, "requires grad"))
            n = Entry(t, label=f"view leaf{view.shape}")
            STATS["leaves: view"] += 1
        self.add(n)

    @rule(shape=st.lists(st.integers(1, 3), min_size=0, max_size=3).map(tuple),
          f32=st.booleans(), rg=st.integers(0, 2**32 - 1), seed=st.integers(0, 2**32 - 1),
          frozen=st.integers(0, 2**32 - 1))
    def new_leaf(self, shape, f32, rg, seed, frozen):
        self._make_leaf(shape, f32, rg, seed, frozen)

    def _make_leaf(self, shape, f32, rg, seed, frozen):
        r = np.random.default_rng(seed)
        if shape and r.random() < 0.05:          # an empty batch: a dimension of length 0
            shape = shape[:-1] + (0,)
        arr = np.asarray(r.uniform(-2, 2, shape)).astype(np.float32 if f32 else np.float64)
        is_frozen = np.random.default_rng(frozen).random() < 0.08
        if is_frozen:
            arr.setflags(write=False)
        t = tg.Tensor(arr, requires_grad=np.random.default_rng(rg).random() < 0.75)
        assert t._data is arr
        e = Entry(t, label=f"leaf{shape}{'f32' if f32 else ''}")
        e.frozen = is_frozen
        self.track(arr, frozen=is_frozen)
        self.add(e)
        STATS["leaves"] += 1

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def unary(self, data):
        e = self.floats(data)
        if e is None:
            return
        ng = self.coin(data, 0.1, "no_grad")
        kind = self.choice(data, [
            "neg", "exp", "np.exp", "log", "sqrt", "np.sqrt", "abs", "relu", "sigmoid", "tanh",
            "np.tanh", "scale", "radd", "rsub", "rdiv", "pow", "cast", "clip", "np.clip",
            "neg_op", "rpow", "max0", "clip by tensor", "abs()", "np.abs"], "unary")
        c = self.choice(data, [0.5, -1.5, 2.0, 3.0, 0.25], "c")
        A = self.apply
        if kind in ("neg", "neg_op"):
            A("neg", (lambda t: -t) if kind == "neg_op" else tg.neg, lambda x: -x, [e],
              no_grad=ng)
        elif kind in ("exp", "np.exp"):
            b = self.bounded(e)
            if b is not None:
                A("exp", tg.exp if kind == "exp" else np.exp, np.exp, [b], no_grad=ng)
        elif kind == "log":
            p = self.positive(e)
            if p is not None:
                A("log", tg.log, np.log, [p], no_grad=ng)
        elif kind in ("sqrt", "np.sqrt"):
            p = self.positive(e)
            if p is not None:
                A("sqrt", tg.sqrt if kind == "sqrt" else np.sqrt, np.sqrt, [p], no_grad=ng)
        elif kind in ("abs", "abs()", "np.abs"):
            A("abs", {"abs": tg.abs, "abs()": abs, "np.abs": np.abs}[kind], np.abs, [e],
              kink=m_abs, no_grad=ng)
        elif kind == "rpow":          # c ** t: pow(c, t), a Python-number base
            b = self.bounded(e)
            if b is not None:
                base = self.choice(data, [0.5, 2.0, 3.0], "base")
                A("pow", lambda c, t: c ** t, lambda c, x: c ** x, [base, b], no_grad=ng)
        elif kind == "max0":
            f = self.choice(data, [tg.maximum, tg.minimum, np.maximum], "extremum")
            A("maximum" if f is not tg.minimum else "minimum", f,
              np.maximum if f is not tg.minimum else np.minimum, [e, 0.0], kink=m_diff,
              no_grad=ng)
        elif kind == "clip by tensor":
            # Tensor bounds are constants (their values), as np.clip's
            def fits(o):
                try:
                    return o.t.dtype.kind == "f" and \
                        np.broadcast_shapes(o.t.shape, e.t.shape) == e.t.shape
                except ValueError:
                    return False
            lo_e = self.pick(data, fits, "bound")
            if lo_e is not None:
                lo_t = lo_e.t
                lov = np.array(lo_t._data, dtype=np.float64)
                lon = np.array(lo_t._data)        # (its dtype, for numpy's result dtype)
                A("clip", lambda t: tg.clip(t, lo_t, None),
                  lambda x: np.clip(x, lov if x.dtype == np.float64 else lon, None),
                  [e], kink=lambda x: m_diff(x, lov), no_grad=ng)
        elif kind == "relu":
            A("relu", tg.relu, lambda x: np.maximum(x, 0), [e], kink=m_abs, no_grad=ng)
        elif kind == "sigmoid":
            A("sigmoid", tg.sigmoid, np_sigmoid, [e], no_grad=ng)
        elif kind in ("tanh", "np.tanh"):
            A("tanh", tg.tanh if kind == "tanh" else np.tanh, np.tanh, [e], no_grad=ng)
        elif kind == "scale":
            A("mul", lambda t, c: t * c, lambda x, c: x * c, [e, c], no_grad=ng)
        elif kind == "radd":          # c + t is t.__radd__(c): add(t, c)
            A("add", lambda t, c: c + t, lambda x, c: c + x, [e, c], no_grad=ng)
        elif kind == "rsub":          # c - t is sub(c, t)
            A("sub", lambda c, t: c - t, lambda c, x: c - x, [c, e], no_grad=ng)
        elif kind == "rdiv":
            p = self.positive(e, lo=0.3)
            if p is not None:
                A("div", lambda c, t: c / t, lambda c, x: c / x, [c, p], no_grad=ng)
        elif kind == "pow":
            k = self.choice(data, [2, 3, 0, 1, 0.5, -1, 1.5, 2.0], "p")
            base = e if (isinstance(k, int) and k >= 0) else self.positive(e)
            if base is not None:
                A("pow", lambda t, k: t ** k, lambda x, k: x ** k, [base, k], no_grad=ng)
        elif kind == "cast":
            to = self.choice(data, [d for d in (np.float64, np.float32, np.float64, np.float16)
                                    if d != e.t.dtype], "to dtype")
            via = self.choice(data, ["astype", "cast"], "via")
            A("cast", (lambda t: t.astype(to)) if via == "astype" else
              (lambda t: tg.cast(t, to)), lambda x: x * 1, [e], dtype=to, no_grad=ng)
        elif kind in ("clip", "np.clip"):
            r = self.rng(data)
            form = self.choice(data, ["both", "lo", "hi", "array"], "bounds")
            if form == "array":
                lo = np.asarray(np.minimum(r.uniform(-1.5, 0, e.t.shape), 0)).astype(e.t.dtype)
                hi = np.asarray(r.uniform(0.1, 1.5, e.t.shape)).astype(e.t.dtype)
            else:
                qs = np.sort(r.uniform(-1.5, 1.5, 2))
                lo = float(qs[0]) if form in ("both", "lo") else None
                hi = float(qs[1]) if form in ("both", "hi") else None
            kwargs = dict(lo=lo, hi=hi)
            if kind == "clip":
                A("clip", lambda t, lo, hi: tg.clip(t, lo, hi),
                  lambda x, lo, hi: np.clip(x, lo, hi), [e], kwargs, kink=m_clip, no_grad=ng)
            else:
                A("clip", lambda t, lo, hi: np.clip(t, lo, hi),
                  lambda x, lo, hi: np.clip(x, lo, hi), [e], kwargs, kink=m_clip, no_grad=ng)

    def _partner(self, data, e, want_compatible=True):
        def compat(o):
            try:
                np.broadcast_shapes(o.t.shape, e.t.shape)
                return o.t.dtype.kind == "f"
            except ValueError:
                return False
        if want_compatible:
            return self.pick(data, compat, label="partner")
        return self.floats(data)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def binary(self, data):
        a = self.floats(data)
        if a is None:
            return
        b = self._partner(data, a, not self.coin(data, 0.1, "compat"))
        if b is None:
            return
        ng = self.coin(data, 0.1, "no_grad")
        kind = self.choice(data, [
            "add", "sub", "mul", "div", "maximum", "minimum", "pow", "np.add", "np.multiply",
            "np.subtract", "np.maximum", "array+t", "t*array", "array-t", "same+", "same*",
            "mask*", "int", "int tensor"], "binary")
        A = self.apply
        if kind == "add":
            A("add", lambda x, y: x + y, lambda x, y: x + y, [a, b], no_grad=ng)
        elif kind == "np.add":
            A("add", np.add, np.add, [a, b], no_grad=ng)
        elif kind == "sub":
            A("sub", lambda x, y: x - y, lambda x, y: x - y, [a, b], no_grad=ng)
        elif kind == "np.subtract":
            A("sub", np.subtract, np.subtract, [a, b], no_grad=ng)
        elif kind == "mul":
            A("mul", lambda x, y: x * y, lambda x, y: x * y, [a, b], no_grad=ng)
        elif kind == "np.multiply":
            A("mul", np.multiply, np.multiply, [a, b], no_grad=ng)
        elif kind == "same+":
            A("add", lambda x, y: x + y, lambda x, y: x + y, [a, a], no_grad=ng)
        elif kind == "same*":
            A("mul", lambda x, y: x * y, lambda x, y: x * y, [a, a], no_grad=ng)
        elif kind == "div":
            p = self.positive(b, lo=0.3)
            if p is not None:
                A("div", lambda x, y: x / y, lambda x, y: x / y, [a, p], no_grad=ng)
        elif kind in ("maximum", "np.maximum"):
            A("maximum", tg.maximum if kind == "maximum" else np.maximum, np.maximum, [a, b],
              kink=m_diff, no_grad=ng)
        elif kind == "minimum":
            A("minimum", tg.minimum, np.minimum, [a, b], kink=m_diff, no_grad=ng)
        elif kind == "mask*":          # a ReLU by hand: t * (u > 0), a bool Tensor operand
            m = Entry(b.t > 0.0)
            A("mul", lambda x, y: x * y, lambda x, y: x * y, [a, m], no_grad=ng)
        elif kind in ("int", "int tensor"):
            ints = np.asarray(self.rng(data).integers(-2, 3, b.t.shape))
            o = Entry(tg.Tensor(ints)) if kind == "int tensor" else ints
            op = self.choice(data, ["add", "mul", "sub"], "int op")
            f = {"add": lambda x, y: x + y, "mul": lambda x, y: x * y,
                 "sub": lambda x, y: x - y}[op]
            A(op, f, f, [a, o] if self.coin(data, 0.5, "int first") else [o, a], no_grad=ng)
        elif kind == "pow":
            base = self.positive(a)
            ex = self.apply("tanh", tg.tanh, np.tanh, [b], keep=False)
            if base is not None and ex is not None:
                A("pow", lambda x, y: x ** y, lambda x, y: x ** y, [base, ex], no_grad=ng)
        else:
            r = self.rng(data)
            shape = a.t.shape if self.coin(data, 0.5, "same shape") else a.t.shape[1:]
            arr = np.asarray(r.uniform(-1, 1, shape)).astype(
                self.choice(data, [np.float64, np.float32], "array dtype"))
            if kind == "array+t":
                A("add", lambda y, x: y + x, lambda y, x: y + x, [arr, a], no_grad=ng)
            elif kind == "t*array":
                A("mul", lambda x, y: x * y, lambda x, y: x * y, [a, arr], no_grad=ng)
            else:
                A("sub", lambda y, x: y - x, lambda y, x: y - x, [arr, a], no_grad=ng)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def reduce(self, data):
        e = self.floats(data)
        if e is None:
            return
        nd = e.t.ndim
        ng = self.coin(data, 0.1, "no_grad")
        kind = self.choice(data, ["sum", "mean", "max", "min", "logsumexp", "np.sum",
                                          "np.mean", "np.max", "softmax", "log_softmax"], "reduce")
        axis_kind = self.choice(data, ["none", "int", "neg", "tuple", "bad", "empty"], "axis kind")
        if axis_kind == "none" or (nd == 0 and axis_kind != "bad"):
            axis = None
        elif axis_kind == "int":
            axis = data.draw(st.integers(0, nd - 1), label="axis")
        elif axis_kind == "neg":
            axis = data.draw(st.integers(-nd, -1), label="axis")
        elif axis_kind == "tuple":
            axis = tuple(data.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd,
                                            unique=True), label="axes"))
        elif axis_kind == "empty":
            axis = ()
        else:
            axis = nd + data.draw(st.integers(0, 1), label="bad axis")
        keepdims = self.coin(data, 0.5, "keepdims")
        A = self.apply
        # numpy takes axis 0 / -1 of a 0-d array in sum/max/min (not in mean); tinygraph
        # refuses all of them alike, by design
        # (and the mean of nothing, numpy's NaN with a warning, is refused too)
        A = functools.partial(A, may_refuse=(nd == 0 and axis is not None) or e.t.size == 0)
        if kind in ("softmax", "log_softmax"):
            if axis is None:
                axis = -1
            if axis == ():
                return
            A = functools.partial(self.apply, may_refuse=nd == 0)
            fn = tg.softmax if kind == "softmax" else tg.log_softmax
            A(kind, lambda t, axis: fn(t, axis=axis),
              np_softmax if kind == "softmax" else np_log_softmax, [e], dict(axis=axis),
              no_grad=ng)
            return
        kw = dict(axis=axis, keepdims=keepdims)
        if kind in ("sum", "np.sum"):
            A("sum", (lambda t, **k: t.sum(**k)) if kind == "sum" else np.sum,
              lambda x, **k: np.sum(x, **k), [e], kw, no_grad=ng)
        elif kind in ("mean", "np.mean"):
            A("mean", (lambda t, **k: t.mean(**k)) if kind == "mean" else np.mean,
              lambda x, **k: np.mean(x, **k), [e], kw, no_grad=ng)
        elif kind in ("max", "np.max"):
            A("max", (lambda t, **k: t.max(**k)) if kind == "max" else np.max,
              lambda x, **k: np.max(x, **k), [e], kw, no_grad=ng,
              kink=lambda x, **k: m_reduce(x, k["axis"], is_max=True))
        elif kind == "min":
            A("min", lambda t, **k: tg.min(t, **k), lambda x, **k: np.min(x, **k), [e], kw,
              no_grad=ng, kink=lambda x, **k: m_reduce(x, k["axis"], is_max=False))
        else:
            A("logsumexp", lambda t, **k: tg.logsumexp(t, **k), np_logsumexp, [e], kw,
              no_grad=ng)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def shape_op(self, data):
        e = self.floats(data)
        if e is None:
            return
        shape, nd, size = e.t.shape, e.t.ndim, e.t.size
        ng = self.coin(data, 0.1, "no_grad")
        kind = self.choice(data, ["reshape", "np.reshape", "transpose", "T", "swapaxes",
                                          "expand_dims", "squeeze", "broadcast_to", "getitem",
                                          "getitem", "getitem", "mask"], "shape op")
        A = self.apply
        if kind in ("reshape", "np.reshape"):
            dims = []
            rest = size
            for d in (3, 2, 1):
                if rest % d == 0 and self.coin(data, 0.5, "dim"):
                    dims.append(d)
                    rest //= d
            dims.append(rest)
            r = data.draw(st.permutations(dims), label="order")
            if self.coin(data, 0.2, "minus1"):
                r[data.draw(st.integers(0, len(r) - 1), label="where -1")] = -1
            if self.coin(data, 0.1, "bad"):
                r = list(r) + [2]
            new = tuple(r)
            A("reshape", (lambda t, shape: t.reshape(shape)) if kind == "reshape" else
              (lambda t, shape: np.reshape(t, shape)), lambda x, shape: np.reshape(x, shape),
              [e], dict(shape=new), no_grad=ng)
        elif kind == "transpose":
            axes = None if nd == 0 or self.coin(data, 0.5, "rev") else \
                tuple(data.draw(st.permutations(range(nd)), label="perm"))
            A("transpose", (lambda t, axes: np.transpose(t, axes)) if self.coin(
                data, 0.3, "via numpy") else (lambda t, axes: tg.transpose(t, axes)),
              lambda x, axes: np.transpose(x, axes), [e], dict(axes=axes), no_grad=ng)
        elif kind == "T":
            A("transpose", lambda t: t.T, lambda x: x.T, [e], no_grad=ng)
        elif kind == "swapaxes":
            if nd == 0:
                return
            a1 = data.draw(st.integers(-nd, nd), label="a1")
            a2 = data.draw(st.integers(-nd, nd - 1), label="a2")
            A("swapaxes", (lambda t, a1, a2: np.swapaxes(t, a1, a2)) if self.coin(
                data, 0.3, "via numpy") else (lambda t, a1, a2: t.swapaxes(a1, a2)),
              lambda x, a1, a2: np.swapaxes(x, a1, a2), [e], dict(a1=a1, a2=a2), no_grad=ng)
        elif kind == "expand_dims":
            ax = data.draw(st.integers(-nd - 1, nd + 1), label="axis")
            if self.coin(data, 0.3, "tuple axis"):
                ax = (ax, data.draw(st.integers(-nd - 2, nd + 1), label="axis 2"))
            A("expand_dims", np.expand_dims if self.coin(data, 0.3, "via numpy") else
              (lambda t, axis: tg.expand_dims(t, axis)),
              lambda x, axis: np.expand_dims(x, axis), [e], dict(axis=ax), no_grad=ng)
        elif kind == "squeeze":
            ax = None if nd == 0 or self.coin(data, 0.5, "all") else \
                data.draw(st.integers(0, nd - 1), label="axis")
            ones = tuple(i for i, d in enumerate(shape) if d == 1)
            if ones and self.coin(data, 0.3, "tuple axis"):
                ax = ones
            A("squeeze", (lambda t, axis: np.squeeze(t, axis)) if self.coin(
                data, 0.3, "via numpy") else (lambda t, axis: tg.squeeze(t, axis)),
              lambda x, axis: np.squeeze(x, axis), [e], dict(axis=ax), no_grad=ng)
        elif kind == "broadcast_to":
            lead = tuple(data.draw(st.lists(st.integers(1, 3), max_size=2), label="lead"))
            body = tuple(data.draw(st.integers(1, 3), label="stretch") if d == 1 else d
                         for d in shape)
            if self.coin(data, 0.1, "bad") and body:
                body = body[:-1] + (body[-1] + 1,)
            A("broadcast_to", (lambda t, shape: np.broadcast_to(t, shape)) if self.coin(
                data, 0.3, "via numpy") else (lambda t, shape: tg.broadcast_to(t, shape)),
              lambda x, shape: np.broadcast_to(x, shape), [e], dict(shape=lead + body),
              no_grad=ng)
        elif kind == "mask":
            if nd == 0:
                return
            mask = e.t > 0.0           # a bool Tensor as index: x[x > 0]
            mvals = np.array(mask.data)
            A("getitem", lambda t: t[mask], lambda x: x[mvals], [e], no_grad=ng)
        else:
            index = self._index(data, shape)
            A("getitem", lambda t, index: t[index], lambda x, index: x[index], [e],
              dict(index=index), no_grad=ng)

    def _index(self, data, shape):
        nd = len(shape)
        kind = self.choice(data, ["basic", "int array", "bool", "mixed", "bad"], "index kind")
        if nd == 0:
            return self.choice(data, [(), Ellipsis, None], "0-d index")
        if 0 in shape:                         # an empty dimension: slices only
            return tuple(slice(data.draw(st.integers(-2, 2), label="start"), None)
                         for _ in shape)
        parts = []
        if kind == "bad":
            return tuple([shape[0] + data.draw(st.integers(0, 2), label="oob")])
        if kind == "bool":
            r = self.rng(data)
            return r.random(shape[:1]) < 0.6
        if kind == "int array":
            idx = data.draw(st.lists(st.integers(-shape[0], shape[0] - 1), min_size=1,
                                     max_size=4), label="ints")
            return np.array(idx) if self.coin(data, 0.5, "as array") else idx
        for d in shape:
            c = self.choice(data, ["all", "int", "slice", "none"], "part")
            if c == "all":
                parts.append(slice(None))
            elif c == "int":
                parts.append(data.draw(st.integers(-d, d - 1), label="i"))
            elif c == "slice":
                start = data.draw(st.integers(-d, d), label="start")
                step = self.choice(data, [1, 1, 2, -1], "step")
                parts.append(slice(start, None, step))
            else:
                parts.append(None)
                parts.append(slice(None))
        if kind == "mixed" and nd >= 2:
            parts[0] = np.array(data.draw(st.lists(st.integers(0, shape[0] - 1), min_size=1,
                                                   max_size=3), label="rows"))
        if self.coin(data, 0.5, "ellipsis"):
            parts = parts[:-1] + [Ellipsis] if parts else [Ellipsis]
        return tuple(parts)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def join(self, data):
        e = self.floats(data)
        if e is None:
            return
        shape, nd = e.t.shape, e.t.ndim
        ng = self.coin(data, 0.1, "no_grad")
        kind = self.choice(data, ["concatenate", "stack", "np.concatenate"], "join")
        k = data.draw(st.integers(1, 3), label="how many")
        if kind == "stack":
            others = [self.pick(data, lambda o: o.t.shape == shape and o.t.dtype.kind == "f")
                      for _ in range(k - 1)]
            axis = data.draw(st.integers(-nd - 1, nd), label="axis")
            fn = np.stack if self.coin(data, 0.3, "via numpy") else tg.stack
            self.apply("stack", lambda *ts, axis: fn(list(ts), axis=axis),
                       lambda *xs, axis: np.stack(xs, axis=axis), [e] + others,
                       dict(axis=axis), no_grad=ng)
            return
        if nd == 0:
            return
        axis = data.draw(st.integers(-nd, nd - 1), label="axis")
        ax = axis % nd

        def fits(o):
            return o.t.ndim == nd and o.t.dtype.kind == "f" and all(
                o.t.shape[i] == shape[i] for i in range(nd) if i != ax)
        if self.coin(data, 0.1, "anything"):
            fits = None                     # noqa: F811 - a random partner (maybe an error)
        others = [o for o in (self.pick(data, fits) for _ in range(k - 1)) if o is not None]
        fn = tg.concatenate if kind == "concatenate" else np.concatenate
        self.apply("concatenate", lambda *ts, axis: fn(list(ts), axis=axis),
                   lambda *xs, axis: np.concatenate(xs, axis=axis), [e] + others,
                   dict(axis=axis), no_grad=ng)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def where_op(self, data):
        a = self.floats(data)
        if a is None:
            return
        b = self._partner(data, a)
        c = self._partner(data, a)
        ng = self.coin(data, 0.1, "no_grad")
        if self.coin(data, 0.5, "cond from tensor"):
            cond_t = c.t > 0.3
            cond = cond_t if self.coin(data, 0.5, "as Tensor") else \
                np.array(cond_t.data)
        else:
            cond = self.rng(data).random(c.t.shape) < 0.5
        # cond is an operand of its own (a leaf or a constant that the node saves, and so
        # locks, when it is a bool array)
        cop = Entry(cond) if isinstance(cond, tg.Tensor) else cond
        form = self.choice(data, ["tt", "ts", "np"], "where form")
        ref = lambda cnd, x, y: np.where(np.asarray(cnd, dtype=bool), x, y)  # noqa: E731
        if form == "ts":
            s = self.choice(data, [0.0, 1.5], "scalar")
            self.apply("where", tg.where, ref, [cop, a, s], no_grad=ng)
            return
        self.apply("where", tg.where if form == "tt" else np.where, ref, [cop, a, b],
                   no_grad=ng)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def matmul_op(self, data):
        a = self.pick(data, lambda o: o.t.ndim >= 1 and o.t.dtype.kind == "f")
        if a is None:
            return
        ng = self.coin(data, 0.1, "no_grad")
        k = a.t.shape[-1]
        kind = self.choice(data, ["@", "np.matmul", "rmat", "linear", "np.dot"], "matmul")
        if kind == "linear":
            W = self.pick(data, lambda o: o.t.ndim == 2 and o.t.shape[1] == k
                          and o.t.dtype.kind == "f")
            if W is None:
                return
            bias = self.pick(data, lambda o: o.t.shape == W.t.shape[:1] and o.t.dtype.kind == "f")
            ops = [a, W] + ([bias] if bias is not None and self.coin(data, 0.5, "bias") else [])
            self.apply("linear", lambda *ts: tg.linear(*ts), np_linear, ops, no_grad=ng)
            return
        if kind == "rmat":
            r = self.rng(data)
            m = np.asarray(r.uniform(-1, 1, (data.draw(st.integers(1, 3)), a.t.shape[0]
                                              if a.t.ndim == 1 else a.t.shape[-2])))
            self.apply("matmul", lambda mm, t: mm @ t, lambda mm, t: mm @ t, [m, a], no_grad=ng)
            return

        def fits(o):
            if o.t.dtype.kind != "f" or o.t.ndim == 0:
                return False
            inner = o.t.shape[0] if o.t.ndim == 1 else o.t.shape[-2]
            return inner == k
        b = self.pick(data, None if self.coin(data, 0.1, "anything") else fits)
        if b is None:
            return
        if kind == "np.dot":
            if a.t.ndim > 2 or b.t.ndim > 2:
                return
            self.apply("matmul", np.dot, np.dot, [a, b], no_grad=ng, names=("matmul", "mul"))
            return
        fn = (lambda x, y: x @ y) if kind == "@" else np.matmul
        self.apply("matmul", fn, np.matmul, [a, b], no_grad=ng)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def user_op(self, data):
        e = self.floats(data)
        if e is None:
            return
        ng = self.coin(data, 0.1, "no_grad")
        kind = self.choice(data, ["user_square", "user_identity", "user_cache", "user_muladd",
                                  "user_half"], "user op")
        A = self.apply
        if kind == "user_square":
            A(kind, UserSquare.apply, lambda x: x * x, [e], no_grad=ng)
        elif kind == "user_identity":
            A(kind, UserIdentity.apply, lambda x: x * 1, [e], no_grad=ng)
        elif kind == "user_cache":
            A(kind, UserCache.apply, np.sin, [e], no_grad=ng)
        elif kind == "user_half":
            A(kind, UserHalf.apply, lambda x: x * 0.5, [e], no_grad=ng)
        else:
            b = self.pick(data, lambda o: o.t.shape == e.t.shape and o.t.dtype == e.t.dtype)
            k = self.choice(data, [1.0, -0.5], "k")
            A(kind, lambda x, y, k: UserMulAdd.apply(x, y, k=k),
              lambda x, y, k: x * y + k * x, [e, b], dict(k=k), no_grad=ng)

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def augmented_assignment(self, data):
        """t op= v on anything but a parameter (a leaf that requires grad, while
        recording) is t = t op v: a new tensor, the old one and its array unchanged."""
        e = self.pick(data, lambda o: o.t.dtype.kind == "f" and not (
            o.is_leaf and o.t.requires_grad))
        if e is None:
            return
        b = self._partner(data, e)
        kind = self.choice(data, ["+=", "-=", "*=", "/="], "augmented op")
        if kind == "/=":
            b = self.positive(b, lo=0.3)
            if b is None:
                return
        before = np.array(e.t._data, copy=True)
        old_t = e.t

        def f(x, y):
            z = x
            if kind == "+=":
                z += y
            elif kind == "-=":
                z -= y
            elif kind == "*=":
                z *= y
            else:
                z /= y
            if z is x:
                fail(f"{kind} on a tensor that is no parameter changed it in place")
            return z
        ref = {"+=": np.add, "-=": np.subtract, "*=": np.multiply, "/=": np.divide}[kind]
        ng = self.coin(data, 0.1, "no_grad")
        self.apply({"+=": "add", "-=": "sub", "*=": "mul", "/=": "div"}[kind], f, ref,
                   [e, b], no_grad=ng)
        if not np.array_equal(old_t._data, before) or old_t is not e.t:
            fail(f"{kind} changed the tensor it was applied to")

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def detach(self, data):
        e = self.pick(data)
        d = e.t.detach()
        if d.grad_fn is not None or d.requires_grad:
            fail("detach() gave a tensor in the graph")
        if (e.t.size and not np.shares_memory(d._data, e.t._data)) or \
                not np.array_equal(d._data, e.t._data):
            fail("detach() does not share the values")
        if not e.is_leaf and d.data.flags.writeable:
            fail("detach() of a recorded result gave writable data")
        ent = Entry(d, label="detached " + e.label)
        self.add(ent)
        STATS["detach"] += 1

    # -- rules: gradients ------------------------------------------------------------------------

    def build_loss(self, data, r, nonlinear=False):
        k = data.draw(st.integers(1, 3), label="terms")
        parts = []
        for _ in range(k):
            e = None
            if not self.coin(data, 0.1, "any term"):
                e = self.pick(data, lambda o: o.t.dtype.kind == "f" and o.t.requires_grad)
            if e is None:
                e = self.floats(data)
            if e is None:
                return None
            if nonlinear:
                f = self.choice(data, ["tanh", "square", "sigmoid", "exp", "softmax",
                                               "logsumexp", "cube"], "nonlinearity")
                if f == "tanh":
                    e = self.apply("tanh", tg.tanh, np.tanh, [e], keep=False)
                elif f == "sigmoid":
                    e = self.apply("sigmoid", tg.sigmoid, np_sigmoid, [e], keep=False)
                elif f == "square":
                    e = self.apply("mul", lambda x, y: x * y, lambda x, y: x * y, [e, e],
                                   keep=False)
                elif f == "cube":
                    e = self.apply("pow", lambda x, k: x ** k, lambda x, k: x ** k, [e, 3],
                                   keep=False)
                elif f == "exp":
                    b = self.bounded(e)
                    e = None if b is None else self.apply("exp", tg.exp, np.exp, [b], keep=False)
                elif f == "softmax" and e.t.ndim:
                    e = self.apply("softmax", lambda x: tg.softmax(x), np_softmax, [e],
                                   keep=False)
                elif f == "logsumexp":
                    e = self.apply("logsumexp", lambda x: tg.logsumexp(x), np_logsumexp, [e],
                                   keep=False)
                if e is None:
                    return None
            W = np.asarray(r.uniform(-1, 1, e.t.shape)).astype(e.t.dtype)
            m = self.apply("mul", lambda x, w: x * w, lambda x, w: x * w, [e, W], keep=False)
            if m is None:
                return None
            red = self.choice(data, ["sum", "mean"], "reduction") if e.t.size else "sum"

            s = self.apply(red, (lambda t: t.sum()) if red == "sum" else (lambda t: t.mean()),
                           np.sum if red == "sum" else np.mean, [m], keep=False)
            parts.append(s)
        loss = parts[0]
        for p in parts[1:]:
            loss = self.apply("add", lambda x, y: x + y, lambda x, y: x + y, [loss, p],
                              keep=False)
        return loss

    def _after_backward_checks(self, root, G, before, recs, lvars, retain):
        """The pass succeeded: leaf .grad increments and retain_grad tensors must match
        central differences of the objective <root, G>."""
        obj = [(self.use_sym(root) if root.is_leaf else root.sym, 1.0 if G is None else
                np.asarray(G, dtype=np.float64))]
        margin, f32, order = dag_margin(obj)
        leaves = [e for e in self.pool if e.is_leaf]
        retained = [e for e in self.pool if e.retained and e.sym is not None
                    and e.sym.rec is not None and any(r is e.sym.rec for r in recs)]
        # leaves not reached (or no longer requiring grad) must keep their .grad
        for e in leaves:
            reached = e.var in lvars and e.t.requires_grad
            if not reached:
                old, g = before.get(id(e)), e.t._grad
                if (old is None) != (g is None) or (g is not None and not np.array_equal(g, old)):
                    fail(f"backward changed the .grad of {e.label}, which the output does not "
                         f"depend on (or that no longer requires grad)")
        for e in self.pool:
            if not e.is_leaf and not e.retained and e.t._grad is not None:
                fail(f"a non-leaf {e.label} without retain_grad() got a .grad")
        wrt = [(e.var, e.t.shape) for e in leaves if e.var in lvars and e.t.requires_grad]
        wrt += [(e.sym.key, e.t.shape) for e in retained]
        for e in leaves + retained:
            g = e.t._grad
            if g is not None and (not isinstance(g, np.ndarray) or g.shape != e.t.shape
                                  or g.dtype != e.t.dtype):
                fail(f"{e.label}: .grad {type(g).__name__} {getattr(g, 'shape', None)} "
                     f"{getattr(g, 'dtype', None)}, expected {e.t.shape} {e.t.dtype}")
        near = margin < KINK
        if near and f32 and margin < KINK_F32:
            STATS["fd skipped (float32 at a kink)"] += 1
            return
        if not wrt:
            return
        kinks = {}
        num, base = fd_grad(obj, wrt, kinks=kinks)
        L = abs(objective_value(obj, base))
        scale = max([amax(v) for v in num.values() if v.size] + [0.0])
        extra = 1e-9 * (1 + L)
        for e in leaves + retained:
            key = e.var if e.is_leaf else e.sym.key
            if key not in num:
                continue
            old = before.get(id(e))
            g = e.t._grad
            if g is None:
                fail(f"backward left the .grad of {e.label} None; it depends on it "
                     f"(numeric gradient {num[key]})")
            inc = np.asarray(g, dtype=np.float64) - (0 if old is None else
                                                     np.asarray(old, dtype=np.float64))
            sc = scale + (0 if old is None else amax(old)) if g.size else scale
            self.compare(f"backward: .grad increment of {e.label}", inc, num[key], sc, f32,
                         extra, kink=kinks[key] if near else None)
        STATS["fd checks (backward)"] += 1

    def do_backward(self, root, G, retain, data):
        t = root.t
        before = self.grads_snapshot()
        if not t.requires_grad:
            try:
                t.backward(G, retain_graph=retain) if G is not None else t.backward(
                    retain_graph=retain)
            except BackwardError as exc:
                if "depends on no tensor" not in str(exc):
                    fail(f"backward of a constant: unexpected message {exc}")
                self.assert_grads_unchanged(before, "a refused backward")
                STATS["backward refused (constant)"] += 1
                return
            fail("backward of an output that requires no grad did not raise")
        if root.is_leaf:
            recs, lvars = [], {root.var}
        else:
            recs, lvars = self.reach(root.sym.rec)
        expect_fail = any(r.released for r in recs)
        tainted = any(r.tainted and not r.released for r in recs)
        stale = self.stale(recs)
        ctx = self.choice(data, CONTEXTS, "backward context")
        try:
            with (tg.no_grad() if ctx == "no_grad" else tg.detect_anomaly() if ctx == "anomaly"
                  else contextlib.nullcontext()):
                if G is None:
                    t.backward(retain_graph=retain)
                else:
                    t.backward(G, retain_graph=retain)
        except Exception as exc:       # noqa: BLE001
            kind = self.refusal(exc, expect_fail, tainted, stale, "backward")
            self.assert_grads_unchanged(before, "a refused backward")
            if not retain:
                for r in recs:
                    r.released = True
            STATS[f"backward refused ({kind})"] += 1
            return
        if expect_fail or tainted:
            fail(f"backward ran through released node(s) "
                 f"{[r.label for r in recs if r.released]} or node(s) whose saved array was "
                 f"made writable {[r.label for r in recs if r.tainted]} without raising")
        if not retain:
            for r in recs:
                r.released = True
        if stale:
            fail(f"backward accepted gradients for leaf/leaves whose data was replaced by an "
                 f"array of another shape after they were used (and again after): .grad "
                 f"{[self.var_tensor[v]().grad for v in stale]}; expected a BackwardError "
                 f"naming the shape change, as when only the old use is in the graph")
        self._after_backward_checks(root, G, before, recs, lvars, retain)
        STATS["backward ok"] += 1

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def backward(self, data):
        r = self.rng(data)
        mode = self.choice(data, ["loss", "loss", "nonlinear loss", "grad=",
                                          "existing"], "backward mode")
        retain = self.coin(data, 0.5, "retain")
        G = None
        if mode in ("loss", "nonlinear loss"):
            ng = self.coin(data, 0.0667, "loss under no_grad")
            with tg.no_grad() if ng else contextlib.nullcontext():
                root = self.build_loss(data, r, nonlinear=mode == "nonlinear loss")
            if root is None:
                return
            if self.coin(data, 0.5, "keep loss"):
                self.add(root)
        elif mode == "existing":
            root = self.pick(data, lambda e: e.t.size == 1 and e.t.dtype.kind == "f")
            if root is None:
                return
        else:
            root = self.floats(data)
            if root is None:
                return
            G = r.uniform(-1, 1, root.t.shape)
            if self.coin(data, 0.1, "bad G") and root.t.requires_grad:
                before = self.grads_snapshot()
                try:
                    root.t.backward(np.ones(root.t.shape + (2,)), retain_graph=True)
                except BackwardError as exc:
                    if "shape" not in str(exc):
                        fail(f"backward with a grad of the wrong shape: {exc}")
                    self.assert_grads_unchanged(before, "a refused backward")
                    return
                fail("backward with a grad of the wrong shape did not raise")
            if self.coin(data, 0.5, "G as list") and G.ndim:
                G = G.tolist()
        STATS[f"backward mode {mode} rg={root.t.requires_grad}"] += 1
        if self.coin(data, 0.3, "retain an intermediate"):
            e = self.pick(data, lambda o: not o.is_leaf, "retained")
            if e is not None:
                e.t.retain_grad()
                if not e.retained:
                    e.retained = True
                    e.known = None if e.t._grad is None else np.array(e.t._grad, copy=True)
        self.do_backward(root, G, retain, data)
        if self.coin(data, 0.25, "twice"):
            self.do_backward(root, G, self.coin(data, 0.5, "retain 2"), data)
        self.refresh_known()

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def grad_call(self, data):
        r = self.rng(data)
        # outputs: one or two scalars, or a non-scalar with grad_outputs
        form = self.choice(data, ["scalar", "scalar", "two outputs", "grad_outputs"],
                           "grad form")
        roots, gouts = [], []
        for _ in range(2 if form == "two outputs" else 1):
            if form == "grad_outputs":
                root = self.pick(data, lambda e: e.t.dtype.kind == "f" and e.t.requires_grad)
                if root is None:
                    return
                gouts.append(r.uniform(-1, 1, root.t.shape))
            else:
                root = self.build_loss(data, r) if self.coin(data, 0.5, "new loss") else \
                    self.pick(data, lambda e: e.t.size == 1 and e.t.dtype.kind == "f"
                              and e.t.requires_grad)
                gouts.append(None)
            if root is None or not root.t.requires_grad:
                return
            roots.append(root)
        cands = [e for e in self.pool if e.t.requires_grad] + roots
        n = data.draw(st.integers(1, 3), label="inputs")
        inputs = [self.choice(data, cands, "input") for _ in range(n)]
        retain = self.choice(data, [None, True, False], "retain")
        create = self.coin(data, 0.25, "create")
        before = self.grads_snapshot()
        recs, lvars, seen = [], set(), set()
        for root in roots:
            if root.is_leaf:
                lvars.add(root.var)
                continue
            rr, lv = self.reach(root.sym.rec)
            recs += [x for x in rr if id(x) not in seen]
            seen.update(id(x) for x in rr)
            lvars |= lv
        # the model of grad(): only nodes with a requested tensor below them run
        wanted_vars = {e.var for e in inputs if e.is_leaf}
        wanted_recs = {id(e.sym.rec) for e in inputs if not e.is_leaf}
        needed = set()
        order = self._rec_topo(recs)
        for rec in order:               # parents before consumers
            if any(v in wanted_vars for v in rec.leaf_vars) or any(
                    id(p) in needed or id(p) in wanted_recs for p in rec.parents):
                needed.add(id(rec))
        needed_recs = [rec for rec in recs if id(rec) in needed]
        expect_fail = any(rec.released for rec in needed_recs)
        tainted = any(rec.tainted and not rec.released for rec in needed_recs)
        stale = self.stale(needed_recs, only=wanted_vars, need_rg=False)
        keep = retain if retain is not None else create
        ctx = self.choice(data, CONTEXTS, "context")
        STATS["grad calls"] += 1
        STATS[f"grad form {form}"] += 1
        try:
            with (tg.no_grad() if ctx == "no_grad" else tg.detect_anomaly() if ctx == "anomaly"
                  else contextlib.nullcontext()):
                outs = [x.t for x in roots]
                if form == "scalar" and self.coin(data, 0.5, "bare output"):
                    res = tg.grad(outs[0], [e.t for e in inputs], retain_graph=retain,
                                  create_graph=create)
                else:
                    res = tg.grad(outs, [e.t for e in inputs], retain_graph=retain,
                                  create_graph=create,
                                  grad_outputs=None if form != "grad_outputs" else gouts)
        except Exception as exc:       # noqa: BLE001
            kind = self.refusal(exc, expect_fail, tainted, stale, "grad()")
            STATS[f"grad refused ({kind})"] += 1
            self.assert_grads_unchanged(before, "a refused grad()")
            if not keep:
                for rec in needed_recs:
                    rec.released = True
            return
        if expect_fail or tainted:
            fail(f"grad() ran through released node(s) "
                 f"{[rec.label for rec in needed_recs if rec.released]} or node(s) whose "
                 f"saved array was made writable without raising")
        if not keep:
            for rec in needed_recs:
                rec.released = True
        if stale:
            fail(f"grad() returned gradients for leaf/leaves whose data was replaced by an "
                 f"array of another shape after they were used (and again after): {res}; "
                 f"expected a BackwardError naming the shape change")
        self.assert_grads_unchanged(before, "grad()")
        rec_ids = {id(rec) for rec in recs}
        obj = [(self.use_sym(root) if root.is_leaf else root.sym,
                1.0 if G is None else G) for root, G in zip(roots, gouts)]
        margin, f32, _ = dag_margin(obj)
        wrt = []
        for e, g in zip(inputs, res):
            reachable = (e.var in lvars) if e.is_leaf else (id(e.sym.rec) in rec_ids)
            if not reachable:
                if g is not None:
                    fail(f"grad(): input {e.label} is not in the output's graph but got {g}")
                continue
            if g is None:
                fail(f"grad(): input {e.label} is in the output's graph but got None")
            if create and not isinstance(g, tg.Tensor):
                fail(f"grad(create_graph=True) returned a {type(g).__name__}")
            if not create and not isinstance(g, np.ndarray):
                fail(f"grad() returned a {type(g).__name__}")
            gd = g._data if create else g
            if gd.shape != e.t.shape or gd.dtype != e.t.dtype:
                fail(f"grad(): result {gd.shape} {gd.dtype} for input {e.t.shape} {e.t.dtype}")
            wrt.append((e.var if e.is_leaf else e.sym.key, e.t.shape))
        if not create:       # results are their own arrays
            arrays = [g for g in res if g is not None]
            for i, g in enumerate(arrays):
                for h in arrays[i + 1:]:
                    if np.shares_memory(g, h):
                        fail("grad(): two results share memory")
                for G in gouts:
                    if G is not None and np.shares_memory(g, G):
                        fail("grad(): a result shares memory with grad_outputs")
                for e in self.pool:
                    if np.shares_memory(g, e.t._data) or (
                            e.t._grad is not None and np.shares_memory(g, e.t._grad)):
                        fail(f"grad(): a result shares memory with {e.label}")
        near = margin < KINK
        if not wrt or (near and f32 and margin < KINK_F32):
            return
        kinks = {}
        num, base = fd_grad(obj, list(dict(wrt).items()), kinks=kinks)
        L = abs(objective_value(obj, base))
        scale = max([amax(v) for v in num.values() if v.size] + [0.0])
        for e, g in zip(inputs, res):
            if g is None:
                continue
            key = e.var if e.is_leaf else e.sym.key
            self.compare(f"grad() w.r.t. {e.label} (create_graph={create}, {form})",
                         g._data if create else g, num[key], scale, f32, 1e-9 * (1 + L),
                         kink=kinks[key] if near else None)
        STATS["fd checks (grad)"] += 1

    @staticmethod
    def _rec_topo(recs):
        order, seen = [], set()
        for r0 in recs:
            stack = [(r0, False)]
            while stack:
                r, done = stack.pop()
                if done:
                    order.append(r)
                    continue
                if id(r) in seen:
                    continue
                seen.add(id(r))
                stack.append((r, True))
                for p in r.parents:
                    if id(p) not in seen:
                        stack.append((p, False))
        return order

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def second_order(self, data):
        try:
            self._second_order(data)
        finally:
            self.refresh_known()

    def _second_order(self, data):
        r = self.rng(data)
        loss = self.build_loss(data, r, nonlinear=True)
        if loss is None or not loss.t.requires_grad:
            return
        recs, lvars = self.reach(loss.sym.rec)
        leaves = [e for e in self.pool if e.is_leaf and e.var in lvars and e.t.requires_grad]
        if not leaves:
            return
        n = data.draw(st.integers(1, min(3, len(leaves))), label="inputs")
        idx = data.draw(st.lists(st.integers(0, len(leaves) - 1), min_size=n, max_size=n,
                                 unique=True), label="which")
        inputs = [leaves[i] for i in idx]
        if any(rec.released or rec.tainted for rec in recs) or self.stale(recs, need_rg=False):
            return                        # (first-order refusals are covered by grad_call)
        STATS["second order"] += 1
        gs = tg.grad(loss.t, [e.t for e in inputs], create_graph=True)
        obj = [(loss.sym, 1.0)]
        margin, f32, _ = dag_margin(obj)
        for e, g in zip(inputs, gs):
            if not isinstance(g, tg.Tensor) or g.shape != e.t.shape or g.dtype != e.t.dtype:
                fail(f"grad(create_graph=True): {g!r} for input {e.t.shape} {e.t.dtype}")
        V = [np.asarray(r.uniform(-1, 1, e.t.shape)).astype(e.t.dtype) for e in inputs]
        s = None
        for g, v in zip(gs, V):
            term = (g * v).sum()
            s = term if s is None else s + term
        # a gradient penalty (loss + <grad, v>, as WGAN-GP's) or the product alone
        penalty = self.coin(data, 0.3, "gradient penalty")
        if penalty:
            s = loss.t + s
            STATS["second order: gradient penalty"] += 1
        all_leaves = [e for e in self.pool if e.is_leaf and e.t.requires_grad]
        want_hvp = None
        twice = all(s_.label not in ONCE_DIFFERENTIABLE for s_ in topo([loss.sym]))
        if not f32 and margin >= KINK2 and twice:
            wrt = [(e.var, e.t.shape) for e in all_leaves if e.var in lvars]
            h = 1e-4
            dp = {e.var: h * np.asarray(v, dtype=np.float64) for e, v in zip(inputs, V)}
            dm = {k: -v for k, v in dp.items()}
            gp, _ = fd_grad(obj, wrt, dp, eps=1e-5)
            gm, _ = fd_grad(obj, wrt, dm, eps=1e-5)
            want_hvp = {e.var: (gp[e.var] - gm[e.var]) / (2 * h) if e.var in gp else
                        np.zeros(e.t.shape) for e in all_leaves}
            if penalty:
                first, _ = fd_grad(obj, wrt)
                for k, v in first.items():
                    want_hvp[k] = want_hvp[k] + v
        if not s.requires_grad:
            if want_hvp is not None and not penalty:
                for e in all_leaves:
                    if np.max(np.abs(want_hvp[e.var]), initial=0) > 1e-3:
                        fail(f"second order: the gradient does not require grad, but the "
                             f"Hessian-vector product w.r.t. {e.label} is "
                             f"{want_hvp[e.var]} (a lost second-order dependency)")
            STATS["second order: constant gradient"] += 1
            return
        # which recorded forward nodes the second pass runs through (by the engine's graph)
        node_ids = {id(nd) for nd in tg.graph.nodes(s)}
        s_recs = [rec for rec in self.recs if rec.node_ref() is not None
                  and id(rec.node_ref()) in node_ids]
        s_leaves = {id(t) for t in tg.graph.leaves(s)}
        expect_fail = any(rec.released for rec in s_recs)
        how = self.choice(data, ["backward", "grad"], "second pass")
        retain2 = self.coin(data, 0.5, "retain 2")
        before = self.grads_snapshot()
        try:
            if how == "backward":
                s.backward(retain_graph=retain2)
                res = None
            else:
                res = tg.grad(s, [e.t for e in all_leaves if id(e.t) in s_leaves] or
                              [inputs[0].t], retain_graph=retain2)
        except BackwardError as exc:
            if not expect_fail:
                fail(f"second-order pass raised {exc} but no node it runs was released")
            self.assert_grads_unchanged(before, "a refused second-order pass")
            if not retain2:               # the failed pass frees what it would have run
                self._sync_release(s_recs)
            return
        if expect_fail:
            fail("second-order pass ran through released nodes without raising")
        if not retain2 and how == "backward":
            for rec in s_recs:
                rec.released = True
        if not retain2 and how == "backward":
            for rec in s_recs:
                if not rec.node_ref()._released:
                    fail(f"backward of a gradient did not release {rec.label}")
        if not retain2 and how == "grad":
            self._sync_release(s_recs)
        if how == "grad":
            self.assert_grads_unchanged(before, "grad() of a gradient")
        if want_hvp is None:
            STATS["second order: f32/kink, not compared"] += 1
            return
        scale = max([amax(v) for v in want_hvp.values() if v.size] + [0.0])
        self._note = "loss graph: " + " ".join(x.label for x in topo([loss.sym]))
        if how == "backward":
            for e in all_leaves:
                old, g = before.get(id(e)), e.t._grad
                if id(e.t) not in s_leaves:
                    if (old is None) != (g is None) or (g is not None and
                                                       not np.array_equal(g, old)):
                        fail(f"second order: .grad of {e.label} (not in the graph) changed")
                    if np.max(np.abs(want_hvp[e.var]), initial=0) > 1e-3:
                        fail(f"second order: {e.label} is not in the gradient's graph but "
                             f"the Hessian-vector product is {want_hvp[e.var]}")
                    continue
                inc = np.asarray(g, dtype=np.float64) - (0 if old is None else old)
                self.compare(f"second order: .grad increment of {e.label}", inc,
                             want_hvp[e.var], scale + (0 if old is None else
                                                       amax(old)), False,
                             1e-4 * (1 + scale))
        else:
            got_for = [e for e in all_leaves if id(e.t) in s_leaves] or [inputs[0]]
            for e, g in zip(got_for, res):
                want = want_hvp.get(e.var)
                if want is None:
                    continue
                self.compare(f"second order grad() w.r.t. {e.label}",
                             np.zeros(e.t.shape) if g is None else g, want, scale, False,
                             1e-4 * (1 + scale))
        STATS["second order compared"] += 1

    @staticmethod
    def _sync_release(s_recs):
        # which forward nodes grad() of a gradient frees (those with a requested leaf below
        # them in the recorded backward graph) is not modelled: take the engine's word
        for rec in s_recs:
            node = rec.node_ref()
            if node is not None:
                rec.released = node._released

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def zero_grad(self, data):
        e = self.pick(data, lambda o: (o.is_leaf or o.retained) and o.t._grad is not None)
        if e is None:
            return
        how = self.choice(data, ["zero_grad", "None", "inplace0", "inplace*"], "zero how")
        g = e.t._grad
        if how == "zero_grad":
            e.t.zero_grad()
        elif how == "None":
            e.t.grad = None
        elif how == "inplace0":
            if not g.flags.writeable:
                fail(f"the .grad of {e.label} is read-only")
            g[...] = 0
        else:
            if not g.flags.writeable:
                fail(f"the .grad of {e.label} is read-only")
            g *= 0.5
        e.known = None if e.t._grad is None else np.array(e.t._grad, copy=True)
        STATS["zero_grad"] += 1

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def retain_grad(self, data):
        e = self.pick(data)
        if not e.t.requires_grad:
            try:
                e.t.retain_grad()
            except RuntimeError:
                return
            fail("retain_grad() on a tensor that does not require grad did not raise")
        e.t.retain_grad()
        if not e.is_leaf and not e.retained:
            e.retained = True
            e.known = None if e.t._grad is None else np.array(e.t._grad, copy=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                e.t.grad            # no warning once retained
        STATS["retain_grad"] += 1

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def update_parameter(self, data):
        e = self.pick(data, lambda o: o.is_leaf and o.t.requires_grad)
        if e is None:
            return
        t = e.t
        A = t._data
        kinds = ["-= grad", "*=", "+=", "/=", ".data -=", "recorded", "replace",
                 "replace by another shape"]
        how = self.choice(data, kinds, "update")
        held = tg.held_by_graph(A)
        model = id(A) in self.expected_held()
        if held != model:
            gc.collect()
            held = tg.held_by_graph(A)
            model = id(A) in self.expected_held()
            if held != model:
                fail(f"held_by_graph({e.label}) is {held}, the lock model says {model}")
        old = A.copy()
        lr = 0.1
        upd = np.asarray(lr * (t._grad if t._grad is not None else np.ones(A.shape)),
                         dtype=A.dtype)
        if how == "replace by another shape":
            # a layer resized: the parameter gets an array of another shape, its .grad reset
            shape = A.shape[:-1] + (A.shape[-1] + 1,) if A.ndim else (2,)
            newarr = np.asarray(self.rng(data).uniform(-2, 2, shape)).astype(A.dtype)
            t.grad = None
            e.known = None
            t.data = newarr
            self.track(newarr)
            olds = [o for o in self.pool if not o.is_leaf and o.t.dtype.kind == "f"
                    and e.var in self.reach(o.sym.rec)[1]]
            self.var_epoch[e.var] = self.var_epoch.get(e.var, 0) + 1
            e.label += f"->{shape}"
            STATS["data replaced by another shape"] += 1
            if olds and self.coin(data, 0.5, "use both shapes"):
                # a loss over a result of the old shape and one of the new (a training step
                # that accumulates the loss over two forward passes)
                old = self.choice(data, olds, "old result")
                sq = self.apply("mul", lambda x, y: x * y, lambda x, y: x * y, [e, e],
                                keep=False)
                parts = [self.apply("sum", lambda x: x.sum(), np.sum, [x], keep=False)
                         for x in (old, sq)]
                if None not in parts:
                    loss = self.apply("add", lambda x, y: x + y, lambda x, y: x + y, parts,
                                      keep=False)
                    STATS["loss over both shapes"] += 1
                    self.do_backward(loss, None, self.coin(data, 0.5, "retain"), data)
                    self.refresh_known()
            return
        if how == "replace":
            newarr = np.array(A * 0.9, dtype=A.dtype)
            t.data = newarr
            self.track(newarr)
            if t._data is not newarr:
                fail("t.data = array did not store the array")
            STATS["update ok"] += 1
            return
        if how == "recorded":
            try:
                t -= 0.1
            except RuntimeError as exc:
                if "no_grad" not in str(exc):
                    fail(f"in-place -= while recording: message does not say what to do: {exc}")
                if not np.array_equal(A, old):
                    fail("a refused in-place update changed the array")
                return
            fail("in-place -= on a parameter while recording did not raise")
        # (writable exactly when no graph holds it and its owner did not freeze it: that is
        # checked by the invariant for every array that owns its memory; a read-only view,
        # such as detach() of a result, is frozen by its owner)
        expect_ok = A.flags.writeable
        if held and expect_ok and not self.is_forced(A):
            fail(f"{e.label}: held by a graph but writable")
        try:
            if how == ".data -=":
                t.data[...] -= upd
                res = t
            else:
                with tg.no_grad():
                    ref = t
                    if how == "-= grad":
                        ref -= (t.grad if t.grad is not None else 1.0) * lr
                    elif how == "*=":
                        ref *= 0.9
                    elif how == "+=":
                        ref += upd
                    else:
                        ref /= 1.25
                    res = ref
        except (RuntimeError, ValueError) as exc:
            if expect_ok:
                fail(f"in-place update ({how}) of {e.label} refused although no graph holds it "
                     f"and it is not frozen: {exc}")
            msg = str(exc)
            if how != ".data -=" and held and "held read-only by a graph" not in msg:
                fail(f"in-place update refused while a graph holds the array; message: {msg}")
            if how != ".data -=" and not held and "read-only" not in msg:
                fail(f"in-place update of a frozen array; message: {msg}")
            if not np.array_equal(A, old):
                fail("a refused in-place update changed the array")
            STATS["update refused"] += 1
            return
        if not expect_ok:
            fail(f"in-place update ({how}) of {e.label} succeeded although "
                 f"{'a graph holds its array' if held else 'it is frozen by its owner'}")
        if res is not t or t._data is not A:
            fail(f"in-place update ({how}) did not keep the tensor and its array")
        want = {"-= grad": old - upd, "*=": old * A.dtype.type(0.9), "+=": old + upd,
                "/=": old / A.dtype.type(1.25), ".data -=": old - upd}[how]
        if not np.allclose(A, want, rtol=1e-6, atol=1e-6):
            fail(f"in-place update ({how}) gave {A}, expected {want}")
        self._stale_views(A)
        STATS["update ok"] += 1

    def _stale_views(self, A):
        # results that are views of the changed array changed with it: their recipe no longer
        # describes their data, so they leave the pool (PyTorch would see a version bump)
        keep = []
        for o in self.pool:
            if not o.is_leaf and np.shares_memory(o.t._data, A):
                STATS["views dropped after update"] += 1
                continue
            keep.append(o)
        self.pool = keep

    def refusal(self, exc, released, tainted, stale, what):
        """A backward/grad pass raised: it must be for a reason the model knows, with
        tinygraph's exception and words. Returns the reason."""
        msg = str(exc)
        if isinstance(exc, tg.InPlaceModificationError):
            if not tainted:
                fail(f"{what} raised {exc}, but no array its nodes saved was made writable")
            if "made writable" not in msg or "Backward" not in msg.split(":")[0]:
                fail(f"{what}: InPlaceModificationError does not name the node: {msg}")
            return "saved array made writable"
        if isinstance(exc, BackwardError) and released and (
                "second time" in msg or "earlier" in msg):
            return "released"
        if stale and not released and not tainted:
            if isinstance(exc, BackwardError) and "replaced" in msg:
                return "shape changed"
            fail(f"{what} with a leaf whose data was replaced by an array of another shape: "
                 f"{type(exc).__name__}: {exc} (expected a BackwardError naming the change)")
        fail(f"{what} raised {type(exc).__name__}: {exc}; the model expected "
             f"{'a refusal' if released or tainted or stale else 'success'} (released node: "
             f"{released}, saved array made writable: {tainted}, shape changed: {bool(stale)})")

    def is_forced(self, a):
        ref = self.forced.get(id(a))
        if ref is not None and ref() is a:
            if tg.held_by_graph(a):
                return True
            del self.forced[id(a)]
        return False

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def force_writable(self, data):
        """Someone makes an array that a graph holds writable again (and maybe writes):
        every backward through a node that saved it must raise InPlaceModificationError."""
        cands = [a for a, frozen in self.tracked_arrays() if tg.held_by_graph(a) and not frozen
                 and not self.is_forced(a)]
        if not cands:
            return
        a = self.choice(data, cands, "array")
        a.setflags(write=True)
        if a.size and self.coin(data, 0.7, "write"):
            a.flat[0] += 1.0
            self._stale_views(a)
        self.forced[id(a)] = weakref.ref(a)
        for r in self.recs:
            if r.node_ref() is not None and not r.released and any(w() is a for w in r.saved):
                r.tainted = True
        STATS["arrays forced writable"] += 1

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def toggle_requires_grad(self, data):
        e = self.pick(data, lambda o: o.is_leaf and o.t.dtype.kind == "f")
        if e is None:
            return
        e.t.requires_grad_(not e.t.requires_grad)
        STATS["toggle requires_grad"] += 1

    @precondition(lambda self: self.pool)
    @rule(data=st.data())
    def drop(self, data):
        n = len(self.pool)
        idx = set(data.draw(st.lists(st.integers(0, n - 1), max_size=max(1, n // 2)),
                            label="drop"))
        self.pool = [e for i, e in enumerate(self.pool) if i not in idx]
        if self.coin(data, 0.5, "collect"):
            gc.collect()
        STATS["drop"] += 1

    @precondition(lambda self: any(not e.is_leaf for e in self.pool))
    @rule()
    def drop_all_graphs(self):
        self.pool = [e for e in self.pool if e.is_leaf]
        gc.collect()
        for a, frozen in self.tracked_arrays():
            if tg.held_by_graph(a):
                fail(f"an array of shape {a.shape} is still held by a graph after every graph "
                     f"was dropped")
            if a.flags.writeable == frozen:
                fail(f"an array of shape {a.shape} (frozen by its owner: {frozen}) is "
                     f"{'writable' if a.flags.writeable else 'read-only'} after every graph "
                     f"was dropped")
        STATS["drop all"] += 1

    # -- invariants ------------------------------------------------------------------------------

    @invariant()
    def grad_mode_restored(self):
        if not tg.is_grad_enabled():
            fail("grad mode left off")

    @invariant()
    def grads_well_formed_and_unchanged(self):
        grads = []
        for e in self.pool:
            g = e.t._grad
            if e.is_leaf or e.retained:
                if g is not None:
                    if not isinstance(g, np.ndarray) or g.shape != e.t.shape or \
                            g.dtype != e.t.dtype:
                        fail(f".grad of {e.label}: {type(g).__name__} "
                             f"{getattr(g, 'shape', '')} {getattr(g, 'dtype', '')}, expected "
                             f"{e.t.shape} {e.t.dtype}")
                    grads.append((e, g))
                k = e.known
                if (k is None) != (g is None) or (g is not None and not np.array_equal(g, k)):
                    fail(f".grad of {e.label} changed outside a step that should change it: "
                         f"{k} -> {g}")
        for i, (e, g) in enumerate(grads):
            for f, h in grads[i + 1:]:
                if g is h or np.shares_memory(g, h):
                    fail(f".grad of {e.label} and {f.label} share memory")
            for o in self.pool:
                if np.shares_memory(g, o.t._data):
                    fail(f".grad of {e.label} shares memory with the data of {o.label}")

    @invariant()
    def locks_match_the_model(self):
        model = self.expected_held()
        mism = []
        for a, frozen in self.tracked_arrays():
            if tg.held_by_graph(a) != (id(a) in model):
                mism.append(a)
        if mism:
            gc.collect()
            model = self.expected_held()
            still = [a for a in mism if tg.held_by_graph(a) != (id(a) in model)]
            if still:
                a = still[0]
                why = [(r.label, r.released, r.tainted, getattr(r.node_ref(), "_saved_src", "?"))
                       for r in self.recs if r.node_ref() is not None
                       and any(w() is a for w in r.saved)]
                fail(f"held_by_graph of an array of shape {a.shape} is {tg.held_by_graph(a)}, "
                     f"the lock model says {id(a) in model}; nodes that saved it (label, "
                     f"released in the model, tainted, engine _saved_src): {why}")
            STATS["lock state fixed only by gc.collect()"] += 1
        for a, frozen in self.tracked_arrays():
            held = tg.held_by_graph(a)
            if frozen and a.flags.writeable:
                fail(f"an owner-frozen array of shape {a.shape} became writable")
            if not frozen and a.flags.writeable == held and not (held and self.is_forced(a)):
                fail(f"an array of shape {a.shape}: held_by_graph={held} but "
                     f"writeable={a.flags.writeable}")

    def teardown(self):
        self.pool = []
        self.recs = []
        gc.collect()


TestEngineMachine = fuzz_test_case(EngineMachine, "TG_FUZZ", examples=60, steps=50)

pytestmark = pytest.mark.usefixtures("collections_see_only_new_objects")


def teardown_module(module):
    if STATS:
        print("\nstateful engine fuzz:", dict(sorted(STATS.items())))
