"""Cross-check: hand-derived backprop (``nn.manual``) against autodiff (``nn.MLP``) and
against finite differences, on the same weights and the same batch."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class ParamCheck:
    """One parameter's comparison."""
    name: str                  # e.g. "layers.0.W"
    layer: int                 # 1-based, the spec's l
    kind: str                  # "W" or "b"
    shape: tuple
    max_abs_diff: float        # max |manual - autodiff|
    max_rel_diff: float        # max of the spec's elementwise relative error
    numerical_rel_error: float  # worst spec criterion of sampled finite differences vs autodiff
    numerical_checked: int


@dataclass
class CrosscheckReport:
    """Manual vs autodiff gradients for every layer, and a numerical spot check.

    ``ok`` is True when every parameter agrees within ``tol`` (manual vs autodiff) and the
    numerical check is within ``numerical_tol``. ``param_errors`` maps each parameter name
    to its manual-vs-autodiff relative error (what the backward-graph overlay colours).
    Printed, the report is a table.
    """
    rows: list[ParamCheck]
    manual_loss: float
    autodiff_loss: float
    tol: float
    numerical_tol: float
    dtype: str
    batch_size: int
    param_errors: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (all(r.max_rel_diff <= self.tol for r in self.rows)
                and all(r.numerical_rel_error <= self.numerical_tol for r in self.rows))

    def __bool__(self) -> bool:
        return self.ok

    def table(self) -> str:
        head = (f"{'spec':<7}{'param':<14}{'shape':<14}{'max |manual-auto|':>19}"
                f"{'max rel diff':>15}{'numerical':>12}  status")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            good = r.max_rel_diff <= self.tol and r.numerical_rel_error <= self.numerical_tol
            spec = f"{r.kind}({r.layer})"          # the spec's W^(l), b^(l)
            lines.append(f"{spec:<7}{r.name:<14}{str(r.shape):<14}{r.max_abs_diff:>19.3e}"
                         f"{r.max_rel_diff:>15.3e}{r.numerical_rel_error:>12.2e}  "
                         f"{'ok' if good else 'MISMATCH'}")
        return "\n".join(lines)

    def __str__(self) -> str:
        verdict = "AGREE" if self.ok else "DISAGREE"
        return (f"cross-check ({self.dtype}, batch {self.batch_size}): manual backprop and "
                f"autodiff {verdict} (tolerance {self.tol:g}; numerical {self.numerical_tol:g})\n"
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

    with _left_as_it_was(manual_mlp):  # (its dW, db may be about to be applied)
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

    rows = []
    param_errors = {}
    for l, (lin, lin64, (dW_m, db_m)) in enumerate(zip(graph.linears, graph64.linears, manual_grads), 1):
        for kind, p, p64, g_m in (("W", lin.W, lin64.W, dW_m), ("b", lin.b, lin64.b, db_m)):
            g_a, g_64 = p.grad, p64.grad
            # (for type checkers: both backward passes have run)
            assert g_a is not None and g_64 is not None and g_m is not None
            diff = np.abs(g_m.astype(np.float64) - g_a.astype(np.float64))
            rel = rel_error(g_m.astype(np.float64), g_a.astype(np.float64))
            worst_num, checked = 0.0, 0
            size = p64.data.size
            for j in rng.choice(size, size=min(n_numerical, size), replace=False):
                num = tg.central_difference(loss64, p64.data, j, eps)[2]
                ana = float(g_64.reshape(-1)[j])
                worst_num = max(worst_num, float(rel_error(np.float64(ana), np.float64(num))))
                checked += 1
            name = p.name or f"layers.{l}.{kind}"
            rows.append(ParamCheck(name=name, layer=l, kind=kind, shape=tuple(p.shape),
                                   max_abs_diff=float(diff.max()) if diff.size else 0.0,
                                   max_rel_diff=float(rel.max()) if rel.size else 0.0,
                                   numerical_rel_error=worst_num, numerical_checked=checked))
            param_errors[name] = rows[-1].max_rel_diff
    return CrosscheckReport(rows=rows, manual_loss=manual_loss, autodiff_loss=auto_loss, tol=tol,
                            numerical_tol=numerical_tol, dtype=str(dtype),
                            batch_size=int(X.shape[0]), param_errors=param_errors)


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
