"""Exceptions raised by tinygraph. Each names the op, the shapes or values, and what was expected."""


class TinygraphError(Exception):
    """Base class of tinygraph's own errors."""


class ShapeError(TinygraphError, ValueError):
    """Shapes that do not fit an op, e.g. ``matmul: (64, 784) @ (256, 128): inner dimensions 784 and 256 differ``."""


class BackwardError(TinygraphError, RuntimeError):
    """A backward pass that cannot be run as asked (released graph, non-scalar output without grad, ...)."""


class InPlaceModificationError(BackwardError):
    """An array saved for backward was modified (or unlocked) before backward used it."""


class ReadOnlyWriteError(InPlaceModificationError, ValueError):
    """A user op's ``forward`` or ``backward`` wrote into a read-only array, most likely one
    the graph may still read (an input made by another op, a saved leaf array, its own
    recorded output, its gradient). A ``ValueError`` too, as numpy's own "output array is
    read-only" (quoted in the message) is."""
