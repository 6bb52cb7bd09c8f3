"""``detect_anomaly()``: find where a NaN or Inf first appears, forward or backward."""
from __future__ import annotations

import os
import traceback

import numpy as np

from .errors import TinygraphError
from .grad_mode import _state

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class AnomalyError(TinygraphError, FloatingPointError):
    """A NaN or Inf appeared in a forward output or a backward gradient."""


def user_frame() -> str:
    """'file:line in function: code' of the innermost caller outside tinygraph."""
    for frame in reversed(traceback.extract_stack()[:-1]):
        if not os.path.abspath(frame.filename).startswith(_PACKAGE_DIR):
            return f"{frame.filename}:{frame.lineno} in {frame.name}: {frame.line}"
    return "<unknown>"


def _describe(a) -> str:
    a = np.asarray(a)
    if a.size == 0 or a.dtype.kind not in "fiub":
        return f"shape {a.shape}"
    finite = a[np.isfinite(a)] if a.dtype.kind == "f" else a
    rng = f"range [{finite.min():.4g}, {finite.max():.4g}]" if finite.size else "no finite values"
    return f"shape {a.shape}, {rng}"


def check_forward(node, arrays, out) -> None:
    if out.dtype.kind == "f" and not np.all(np.isfinite(out)):
        inputs = "; ".join(_describe(a) for a in arrays if isinstance(a, np.ndarray))
        raise AnomalyError(f"detect_anomaly: {node._op_label()} produced NaN or Inf in its "
                           f"output of shape {out.shape} (inputs: {inputs}); the op was "
                           f"called at {node._trace}")


def check_backward(node, grads) -> None:
    for i, g in enumerate(grads):
        if g is None:
            continue
        arr = g._data if not isinstance(g, np.ndarray) else g
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise AnomalyError(f"detect_anomaly: {node.name} returned a NaN or Inf gradient for "
                               f"input {i} (shape {arr.shape}); its forward op was called at "
                               f"{node._trace}")


class detect_anomaly:
    """Context manager: every op remembers the user's line that created it; the first NaN
    or Inf in a forward output or a backward gradient raises ``AnomalyError`` naming the
    op, the shapes and value ranges, and that line. Slow: for debugging only."""

    def __enter__(self):
        self._previous = _state.anomaly
        _state.anomaly = True
        return self

    def __exit__(self, *exc_info):
        _state.anomaly = self._previous
        return False
