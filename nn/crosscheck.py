"""Cross-check: hand-derived backprop (``nn.manual``) against autodiff (``nn.MLP``) and
against finite differences, on the same weights and the same batch."""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import tinygraph as tg

from .data._validation import check_int, check_real
from .init import make_rng


def rel_error(a: np.ndarray | np.floating, b: np.ndarray | np.floating) -> np.ndarray:
    """The spec's elementwise criterion |a - b| / (|a| + |b| + 1e-8); NaN or Inf counts as an
    infinite error (a NaN gradient must never pass)."""
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - b) / (np.abs(a) + np.abs(b) + 1e-8)
    return np.where(np.isfinite(err), err, np.inf)


#: A difference up to this many units of rounding (eps of the dtype) of a parameter's largest
#: gradient is rounding, not an error: two correct float32 backprops of the spec's network
#: differ by up to ~3 such units on elements whose sum nearly cancels (measured on the
#: digits data, batch 1 to 1437, relu/tanh/sigmoid/gelu networks).
ROUNDING_UNITS = 64


def _scaled_rel_error(a: np.ndarray, b: np.ndarray, tol: float, dtype: np.dtype) -> np.ndarray:
    """The spec's criterion, except that an element differing by less than ROUNDING_UNITS
    units of rounding of the parameter's largest gradient counts as agreeing: its error is
    given as tol × (difference / that rounding), so it passes below 1. In a sum that nearly
    cancels (an element of dW = δᵀ a / n, or of db) two correct backprops differ by rounding
    of the size of the terms, not of the result: float32's (a - y)/n against (p - y)·(1/n)
    gave a relative difference of 1e-2 on such an element, at batch sizes like 7 or 11."""
    rel = rel_error(a, b)
    if b.size:
        floor = ROUNDING_UNITS * float(np.finfo(dtype).eps) * float(np.abs(b).max())
        if floor > 0:
            with np.errstate(invalid="ignore", over="ignore"):
                scaled = tol * np.abs(a - b) / floor
            rel = np.minimum(rel, np.where(np.isfinite(scaled), scaled, np.inf))
    return rel


@dataclass
class ParamCheck:
    """One parameter's comparison."""
    name: str                  # e.g. "layers.0.W"
    layer: int                 # 1-based, the spec's l
    kind: str                  # "W" or "b"
    shape: tuple
    max_abs_diff: float        # max |manual - autodiff|
    max_rel_diff: float        # max of the spec's elementwise relative error (or rounding: above)
    numerical_rel_error: float  # worst spec criterion of the judged finite differences
    numerical_checked: int     # elements judged by finite differences
    numerical_unjudged: int = 0   # sampled elements the finite differences could not judge

    def agrees(self, tol: float) -> bool:
        """Manual and autodiff agree on this parameter."""
        return self.max_rel_diff <= tol

    def numerical_agrees(self, numerical_tol: float) -> bool:
        """The finite differences agree with autodiff on the elements they could judge."""
        return self.numerical_rel_error <= numerical_tol


@dataclass
class CrosscheckReport:
    """Manual vs autodiff gradients for every layer, and a numerical spot check.

    ``ok`` is True when every parameter agrees within ``tol`` (manual vs autodiff,
    ``manual_ok``) and the numerical check is within ``numerical_tol`` (``numerical_ok``).
    ``param_errors`` maps each parameter name to its manual-vs-autodiff relative error (what
    the backward-graph overlay colours). ``notes`` say what the numbers cannot show (a batch
    of one sample, elements at a kink). Printed, the report is a table.
    """
    rows: list[ParamCheck]
    manual_loss: float
    autodiff_loss: float
    tol: float
    numerical_tol: float
    dtype: str
    batch_size: int
    param_errors: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def manual_ok(self) -> bool:
        """The hand-written backprop agrees with autodiff on every parameter."""
        return all(r.agrees(self.tol) for r in self.rows)

    @property
    def numerical_ok(self) -> bool:
        """The finite differences agree with autodiff wherever they could judge."""
        return all(r.numerical_agrees(self.numerical_tol) for r in self.rows)

    @property
    def ok(self) -> bool:
        """True when manual backprop and the finite differences both agree with autodiff, for
        every parameter."""
        return self.manual_ok and self.numerical_ok

    def row_ok(self, row: ParamCheck) -> bool:
        """Whether one parameter's row agrees on both checks."""
        return row.agrees(self.tol) and row.numerical_agrees(self.numerical_tol)

    def __bool__(self) -> bool:
        return self.ok

    def table(self) -> str:
        """The report as a text table: one row per parameter, then the notes and the verdict
        line."""
        head = (f"{'spec':<7}{'param':<14}{'shape':<14}{'max |manual-auto|':>19}"
                f"{'max rel diff':>15}{'numerical':>12}  status")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            spec = f"{r.kind}({r.layer})"          # the spec's W^(l), b^(l)
            numerical = f"{r.numerical_rel_error:.2e}" if r.numerical_checked else "-"
            lines.append(f"{spec:<7}{r.name:<14}{str(r.shape):<14}{r.max_abs_diff:>19.3e}"
                         f"{r.max_rel_diff:>15.3e}{numerical:>12}  "
                         f"{'ok' if self.row_ok(r) else 'MISMATCH'}")
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def verdict(self) -> str:
        """One line: whether manual and autodiff agree, and whether the finite differences
        do (a wrong activation derivative, shared by both, shows only there)."""
        line = (f"manual backprop and autodiff {'AGREE' if self.manual_ok else 'DISAGREE'} "
                f"(tolerance {self.tol:g})")
        unjudged = [r.name for r in self.rows if r.numerical_unjudged and not r.numerical_checked]
        if unjudged:        # (the verdict below is then about the other parameters only)
            line += (f"; finite differences could not judge {', '.join(unjudged)} (see the "
                     f"notes)")
        if self.numerical_ok:
            return line + (f"; finite differences agree{' on the others' if unjudged else ''} "
                           f"(tolerance {self.numerical_tol:g})")
        if not self.manual_ok:
            return line + f"; finite differences DISAGREE too (tolerance {self.numerical_tol:g})"
        return (line + f"; but finite differences DISAGREE with autodiff (tolerance "
                f"{self.numerical_tol:g}): a derivative that both use, such as an "
                f"activation's backward, is wrong")

    def __str__(self) -> str:
        return (f"cross-check ({self.dtype}, batch {self.batch_size}): {self.verdict()}\n"
                f"loss: manual {self.manual_loss:.12g}, autodiff {self.autodiff_loss:.12g}\n"
                + self.table())

    __repr__ = __str__


def crosscheck(manual_mlp: Any, X: Any, y: Any, tol: float | None = None,
               n_numerical: int = 3, numerical_tol: float = 1e-5, eps: float = 1e-5,
               seed: int = 0) -> CrosscheckReport:
    """Run the manual backward and the autodiff backward on the same weights and batch.

    For every layer: the max absolute and relative difference of dW and db between
    ``manual_mlp.backward`` and ``nn.MLP.from_manual(manual_mlp)``'s autodiff, and a
    central-difference check (in float64, ε = ``eps``) of ``n_numerical`` random elements
    of each W and b against the autodiff gradient. ``tol`` defaults to 1e-10 in float64 and
    1e-4 in float32. The manual MLP is left as it was: its weights, and also the gradients
    and caches of an earlier ``forward``/``backward``, which are put back afterwards.

    What each column tests: autodiff applies the chain rule with tinygraph's ops, but
    differentiates each activation with the same hand-written ``backward`` of the
    ``activations`` package that the manual MLP calls. Manual against autodiff therefore
    checks the delta recurrence, the weight and bias gradients and the loss's δ^(L); a wrong
    activation derivative makes both agree, and only the numerical column catches it.

    What the numbers cannot show is in the report's ``notes`` (and a batch of one sample
    warns: a missing 1/n agrees at n = 1). An element at a ReLU-like kink is compared with
    the nearer one-sided slope; one whose difference lies within the finite differences' own
    error is replaced by another element. Manual and autodiff agree on an element that
    differs by less than ``ROUNDING_UNITS`` units of rounding of the parameter's largest
    gradient. A manual dW or db that is not an array of the parameter's shape is a
    ValueError naming it.
    """
    from .manual import MLP as ManualMLP
    from .mlp import MLP

    if not isinstance(manual_mlp, ManualMLP):
        hint = (" (an nn.MLP: pass model.to_manual(), its hand-written twin with the same "
                "weights)" if isinstance(manual_mlp, MLP) else "")
        raise TypeError(f"crosscheck: expected the hand-written MLP, an nn.manual.MLP, got a "
                        f"{type(manual_mlp).__module__}.{type(manual_mlp).__name__}{hint}")
    _check_options(tol, n_numerical, numerical_tol, eps)
    try:
        rng = make_rng(seed)           # (it picks the elements of the numerical check)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"crosscheck: {exc}") from None
    dtype = np.dtype(manual_mlp.dtype)
    if tol is None:
        tol = 1e-10 if dtype == np.float64 else 1e-4
    graph = MLP.from_manual(manual_mlp)
    X = manual_mlp._check_batch(X, "crosscheck")
    targets = manual_mlp._prepare_targets(y, "crosscheck", X.shape[0])

    notes = []
    if X.shape[0] == 1:
        notes.append("a batch of 1 sample: a gradient off by a factor of the batch size (a "
                     "missing or extra 1/n) agrees at n = 1; cross-check a batch of 2 or more")
        warnings.warn(f"crosscheck: {notes[-1]}", RuntimeWarning, stacklevel=2)
    with _left_as_it_was(manual_mlp):  # (its dW, db may be about to be applied)
        for layer in manual_mlp.layers:     # (a backward that sets none must not be judged
            layer.dW = layer.db = None      # on the gradients of an earlier call)
        manual_mlp.forward(X)
        manual_loss = float(manual_mlp.backward(targets))
        manual_grads = [(layer.dW, layer.db) for layer in manual_mlp.layers]
    auto_loss = graph.compute_gradients(X, targets)

    # Numerical check in float64 (finite differences need the precision): against the
    # autodiff gradients of a float64 copy when the model is float32.
    X64, T64 = X.astype(np.float64), targets.astype(np.float64)
    if dtype == np.float64:
        graph64 = graph
    else:
        graph64 = _float64_copy(manual_mlp)
        graph64.compute_gradients(X64, T64)
    T64_checked = graph64._loss_targets(T64)

    def loss64() -> float:
        with tg.no_grad():
            return float(graph64._loss(X64, T64_checked).item())

    base = loss64()
    rows = []
    param_errors = {}
    for l, (lin, lin64, (dW_m, db_m)) in enumerate(zip(graph.linears, graph64.linears, manual_grads), 1):
        for kind, p, p64, g_m in (("W", lin.W, lin64.W, dW_m), ("b", lin.b, lin64.b, db_m)):
            g_a, g_64 = p.grad, p64.grad
            assert g_a is not None and g_64 is not None     # (both backward passes have run)
            g_m = _manual_gradient(g_m, kind, l, tuple(p.shape))
            diff = np.abs(g_m.astype(np.float64) - g_a.astype(np.float64))
            rel = _scaled_rel_error(g_m.astype(np.float64), g_a.astype(np.float64), tol, dtype)
            worst_num, checked, at_kink, unjudged = 0.0, 0, [], []
            size = p64.data.size
            # (an element the finite differences cannot judge is replaced by another: up to
            # 3 × n_numerical candidates)
            for j in rng.choice(size, size=min(3 * n_numerical, size), replace=False):
                if checked == n_numerical:
                    break
                err, kink = _numerical_error(loss64, p64.data, int(j), eps, base,
                                             float(g_64.reshape(-1)[j]), numerical_tol)
                if err is None:
                    unjudged.append(int(j))
                    continue
                if kink:
                    at_kink.append(int(j))
                worst_num = max(worst_num, err)
                checked += 1
            name = p.name or f"layers.{l}.{kind}"
            for js, what in ((at_kink, _AT_A_KINK), (unjudged, _CANNOT_JUDGE)):
                if js:
                    where = [tuple(int(i) for i in np.unravel_index(j, p.shape)) for j in js]
                    more = " ..." if len(where) > 3 else ""
                    notes.append(f"{name}: element(s) {', '.join(map(str, where[:3]))}{more} "
                                 f"{what}")
            rows.append(ParamCheck(name=name, layer=l, kind=kind, shape=tuple(p.shape),
                                   max_abs_diff=float(diff.max()) if diff.size else 0.0,
                                   max_rel_diff=float(rel.max()) if rel.size else 0.0,
                                   numerical_rel_error=worst_num, numerical_checked=checked,
                                   numerical_unjudged=len(unjudged)))
            param_errors[name] = rows[-1].max_rel_diff
    return CrosscheckReport(rows=rows, manual_loss=manual_loss, autodiff_loss=auto_loss, tol=tol,
                            numerical_tol=numerical_tol, dtype=str(dtype),
                            batch_size=int(X.shape[0]), param_errors=param_errors, notes=notes)


_AT_A_KINK = ("lie at a kink of a ReLU-like activation (a pre-activation within eps/4 of 0, as "
              "for an input of zeros with zero biases), where the derivative is one of the "
              "one-sided slopes: compared with the nearer of the two")
_CANNOT_JUDGE = ("could not be judged: the difference from autodiff is within the finite "
                 "differences' own error (the loss's rounding, curvature of saturated units, "
                 "or a kink crossed within ±eps); other elements were checked instead")


def _manual_gradient(g: Any, kind: str, layer: int, shape: tuple) -> np.ndarray:
    """The manual MLP's dW or db, refused unless it is an array of the parameter's shape
    (numpy would broadcast a (1, n) db or a transposed square dW against autodiff's)."""
    what = f"crosscheck: layer {layer}'s backward"
    if g is None:
        raise ValueError(f"{what} did not set d{kind} (it is None after backward); expected "
                         f"an array of shape {shape}, the gradient of {kind}^({layer})")
    if not isinstance(g, np.ndarray) or g.shape != shape:
        got = (f"shape {g.shape}" if isinstance(g, np.ndarray) else f"a {type(g).__name__}")
        hint = (" (transposed? the spec's dW^(l) = δ^(l)ᵀ a^(l-1) has shape (n_out, n_in))"
                if kind == "W" and isinstance(g, np.ndarray) and g.shape == shape[::-1] else
                " (db summed with keepdims? expected one number per unit)" if kind == "b" else "")
        raise ValueError(f"{what} set d{kind} of {got}; expected {shape}, the shape of "
                         f"{kind}^({layer}){hint}")
    return g


def _numerical_error(loss: Callable[[], float], array: np.ndarray, j: int, eps: float,
                     base: float, analytic: float, tol: float) -> tuple[float | None, bool]:
    """(the spec's criterion between ``analytic`` and the finite difference of element j,
    whether the element lies at a kink). At a kink (one-sided slopes apart, also with the
    step eps/4) the derivative is one of the one-sided slopes, each extrapolated to a zero
    step (Richardson: (4 s(ε/4) - s(ε)) / 3): the error is against the nearer one, so a
    derivative between them (a wrong slope on one side) still fails. None instead of an
    error when the difference lies within the finite differences' own error
    (``tinygraph.central_difference_error``): they cannot judge it."""
    difference = tg.central_difference(loss, array, j, eps)
    num = difference[2]
    err = float(rel_error(np.float64(analytic), np.float64(num)))
    if err <= tol:
        return err, False
    left, right = difference.slopes(base)          # (over the steps really taken)
    left_q, right_q = tg.central_difference(loss, array, j, eps / 4).slopes(base)
    if (abs(right - left) > 1e-3 * (abs(right) + abs(left)) + 1e-6
            and abs(right_q - left_q) > 0.5 * abs(right - left)):
        sides = ((4 * left_q - left) / 3, (4 * right_q - right) / 3)
        return min(float(rel_error(np.float64(analytic), np.float64(s))) for s in sides), True
    if abs(analytic - num) <= 2 * tg.central_difference_error(loss, array, j, eps, base):
        return None, False
    return err, False


# What the manual MLP's forward and backward replace on each layer (they assign new arrays)
_LAYER_STATE = ("a_prev", "z", "a", "dW", "db")


@contextlib.contextmanager
def _left_as_it_was(manual_mlp: Any) -> Any:
    """Put back the layers' caches and gradients, the activation objects' caches and the
    model's cache state. On the model itself, not a copy: a learner's patched
    ``layer.backward`` (examples/crosscheck.py) must be what runs."""
    layers = [(layer, [getattr(layer, k) for k in _LAYER_STATE],
               getattr(layer.activation, "cache", None)) for layer in manual_mlp.layers]
    cache_state = manual_mlp._cache_state
    try:
        yield
    finally:
        for layer, values, cache in layers:
            for k, v in zip(_LAYER_STATE, values):
                setattr(layer, k, v)
            if hasattr(layer.activation, "cache"):
                layer.activation.cache = cache
        manual_mlp._cache_state = cache_state


def _check_options(tol: Any, n_numerical: Any, numerical_tol: Any, eps: Any) -> None:
    for name, value in (("tol", tol), ("numerical_tol", numerical_tol), ("eps", eps)):
        if value is not None or name != "tol":
            check_real(f"crosscheck: {name}", value, low=0, low_inclusive=False)
    check_int("crosscheck: n_numerical", n_numerical, 0)


def _float64_copy(manual_mlp: Any) -> Any:
    from .mlp import MLP
    model = MLP.from_manual(manual_mlp)
    for lin in model.linears:
        lin.W.data = lin.W.data.astype(np.float64)
        lin.b.data = lin.b.data.astype(np.float64)
    object.__setattr__(model, "dtype", np.dtype(np.float64))
    return model
