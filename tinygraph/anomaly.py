"""``detect_anomaly()``: find where a NaN or Inf first appears, forward or backward.

Inside ``with tinygraph.detect_anomaly():`` (also usable as a decorator; per thread, like
grad mode) every recorded op remembers the line of the user's code that created it, and

- the first op whose forward output holds NaN or Inf raises ``AnomalyError`` naming the
  op, each input's shape, value range and NaN/Inf count, and that line;
- in backward, the first node that returns a NaN or Inf gradient raises ``AnomalyError``
  naming the backward node (and the module that made it, e.g. ``'Linear 2'``), the
  input, and the line that ran its forward op.

"The user's line" is the innermost caller outside the library packages (``tinygraph``
and the packages registered with ``register_library``: ``nn`` and ``activations``); when
the op was made inside one of those (a ``Linear`` layer), the library line is added as
``(via nn/layers.py:<line> in forward)``. Slow (every op walks the stack): for debugging only.
"""
from __future__ import annotations

import linecache
import os
import sys
from types import FrameType

import numpy as np

from .errors import TinygraphError
from .grad_mode import _CalledContext, _ModeDecorator, _outer, _remember, _state

# (with the separator: a sibling directory such as tinygraph_examples/ is not the package)
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

#: Top-level packages whose frames are library code, not the user's.
LIBRARY_PACKAGES: set = {"tinygraph", "nn", "activations"}


class AnomalyError(TinygraphError, FloatingPointError):
    """A NaN or Inf appeared in a forward output or a backward gradient."""


def register_library(package: str) -> None:
    """Treat frames of ``package`` (a top-level package name) as library code when looking
    for the user's line that created an op."""
    if not isinstance(package, str) or not package or "." in package:
        raise ValueError(f"register_library: package must be a top-level package name such as "
                         f"'mylib', got {package!r}")
    LIBRARY_PACKAGES.add(package)


def _is_library(frame) -> bool:
    module = frame.f_globals.get("__name__", "")
    return module.split(".", 1)[0] in LIBRARY_PACKAGES and module != "__main__"


def _frame_text(frame) -> str:
    code = frame.f_code
    line = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}: {line}"


def user_frame() -> str:
    """'file:line in function: code' of the innermost caller outside the library packages,
    plus ``(via ...)`` the innermost frame outside tinygraph when that is library code."""
    frame: FrameType | None = sys._getframe(1)
    inner = None
    while frame is not None:
        if not os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
            if inner is None:
                inner = frame
            if not _is_library(frame):
                text = _frame_text(frame)
                if inner is not frame:
                    code = inner.f_code
                    text += (f" (via {os.path.basename(os.path.dirname(code.co_filename))}/"
                             f"{os.path.basename(code.co_filename)}:{inner.f_lineno} in "
                             f"{code.co_name})")
                return text
        frame = frame.f_back
    return _frame_text(inner) if inner is not None else "<unknown>"


def _describe(a) -> str:
    a = np.asarray(a)
    if a.size == 0 or a.dtype.kind not in "fiub":
        return f"shape {a.shape}"
    if a.dtype.kind != "f":
        return f"shape {a.shape}, range [{a.min()}, {a.max()}]"
    finite_mask = np.isfinite(a)
    finite = a[finite_mask]
    rng = f"range [{finite.min():.4g}, {finite.max():.4g}]" if finite.size else "no finite values"
    text = f"shape {a.shape}, {rng}"
    n_nan = int(np.isnan(a).sum())
    n_inf = int(a.size - finite.size) - n_nan
    if n_nan or n_inf:
        text += f", already {n_nan} NaN and {n_inf} Inf"
    return text


def _node_label(node) -> str:
    label = getattr(node, "module", None)
    return f"{node.name} (module {label!r})" if label else node.name


def check_forward(node, arrays, out) -> None:
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        n_nan = int(np.isnan(out).sum())
        n_inf = int(out.size - np.isfinite(out).sum()) - n_nan
        inputs = "; ".join(f"input {i}: {_describe(a)}" for i, a in enumerate(arrays)
                           if isinstance(a, np.ndarray))
        raise AnomalyError(f"detect_anomaly: {node._op_label()} produced {n_nan} NaN and "
                           f"{n_inf} Inf in its output of shape {out.shape} ({inputs}); the op "
                           f"was called at {node._trace}")


def check_backward(node, grads) -> None:
    for i, g in enumerate(grads):
        if g is None:
            continue
        # a Tensor under create_graph; otherwise an array, or a numpy scalar (a 0-d result)
        arr = g._data if hasattr(g, "_data") else np.asarray(g)
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            n_nan = int(np.isnan(arr).sum())
            raise AnomalyError(f"detect_anomaly: {_node_label(node)} returned a NaN or Inf "
                               f"gradient for input {i} (shape {arr.shape}, {n_nan} NaN, "
                               f"{arr.size - int(np.isfinite(arr).sum()) - n_nan} Inf); "
                               + (f"its forward op was called at {node._trace}"
                                  if node._trace is not None else
                                  "its forward op ran before detect_anomaly() was entered, so "
                                  "its line is not known: run the forward inside the block "
                                  "too"))


class detect_anomaly(_ModeDecorator, metaclass=_CalledContext):
    """Context manager (and decorator): every op remembers the user's line that created
    it; the first NaN or Inf in a forward output or a backward gradient raises
    ``AnomalyError`` naming the op, the shapes and value ranges, and that line. Per
    thread. Slow: for debugging only."""

    def __enter__(self):
        state = _state                   # (per thread and per object: see grad_mode._State)
        _remember(state.outer_anomaly, self, state.anomaly)
        state.anomaly = True
        return self

    def __exit__(self, *exc_info):
        state = _state
        state.anomaly = _outer(state.outer_anomaly, self, "detect_anomaly")
        return False
