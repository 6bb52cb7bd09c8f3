"""tinygraph: a small reverse-mode autodiff engine on numpy.

    >>> import tinygraph as tg
    >>> x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    array([2., 4., 6.])

Every op records one node (a ``Function``); ``backward()`` walks the nodes in reverse
topological order and accumulates gradients into the leaves' ``.grad``.
"""
from . import _requirements  # noqa: F401  (first: numpy 1 is refused, with the reason)
from .anomaly import AnomalyError, detect_anomaly
from .autograd import grad
from .errors import (BackwardError, InPlaceModificationError, ReadOnlyWriteError, ShapeError,
                     TinygraphError)
from .function import Function, held_by_graph
from .grad_mode import (ScopeLabel, enable_grad, is_grad_enabled, no_grad, scope,
                        set_grad_enabled, swap_scope)
from .gradcheck import (CentralDifference, GradcheckResult, central_difference,
                        central_difference_error, gradcheck)
from .ops import (abs, add, broadcast_to, cast, clip, concatenate, div, exp, expand_dims,
                  getitem, linear, log, log_softmax, logsumexp, matmul, max, maximum, mean,
                  min, minimum, mul, neg, pow, relu, reshape, sigmoid, softmax, sqrt, squeeze,
                  stack, sub, sum, swapaxes, tanh, transpose, where)
from .tensor import Tensor, tensor
from . import diagnostics, graph
from .diagnostics import GradReport, grad_report
from . import interop as _interop  # noqa: F401  (registers numpy dispatch tables)

__version__ = "0.1.0"


def __getattr__(name: str):
    # tinygraph.viz (pictures) imports graphviz: loaded on first use, not with the engine
    if name == "viz":
        import importlib
        return importlib.import_module(".viz", __name__)
    raise AttributeError(f"module 'tinygraph' has no attribute {name!r}")

__all__ = [
    "Tensor", "tensor", "Function", "held_by_graph", "graph", "diagnostics", "grad_report", "GradReport", "grad", "gradcheck", "GradcheckResult",
    "central_difference", "CentralDifference", "central_difference_error", "no_grad",
    "enable_grad", "set_grad_enabled", "scope", "swap_scope", "ScopeLabel", "is_grad_enabled", "detect_anomaly", "AnomalyError",
    "ShapeError", "BackwardError", "InPlaceModificationError", "ReadOnlyWriteError",
    "TinygraphError",
    "abs", "add", "broadcast_to", "cast", "clip", "concatenate", "div", "exp", "expand_dims",
    "getitem", "linear", "log", "log_softmax", "logsumexp", "matmul", "max", "maximum", "mean",
    "min", "minimum", "mul", "neg", "pow", "relu", "reshape", "sigmoid", "softmax", "sqrt",
    "squeeze", "stack", "sub", "sum", "swapaxes", "tanh", "transpose", "where",
]
