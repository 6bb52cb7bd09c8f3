"""Grad mode: whether ops record nodes. Per thread, as in PyTorch."""
from __future__ import annotations

import contextlib
import functools
import inspect
import threading


class _State(threading.local):
    # Class attributes are the defaults every new thread sees.
    grad_enabled = True
    create_graph = False   # True while a backward pass is itself being recorded
    anomaly = False        # True inside detect_anomaly()
    scope: str | None = None   # label given to the nodes recorded now (see scope())

    def __init__(self) -> None:
        # What each context manager object replaced, to put back on exit: per thread, so
        # that one object may be shared by threads, and per object, a stack, so that one
        # object may be entered again (a recursive decorated function). Per object and not
        # one stack for all: blocks need not close in the reverse order they opened (a
        # generator suspended inside a block, a decorated generator's steps), and each one
        # puts back what it replaced, as PyTorch's do. (So a generator that holds a block
        # open across a yield and is resumed to its end inside another block puts back, on
        # leaving its block, the mode from before it entered it, there as in PyTorch.)
        self.outer_modes: dict = {}
        self.outer_scopes: dict = {}
        self.outer_anomaly: dict = {}


_state = _State()


def _remember(saved: dict, block: object, value: object) -> None:
    """On entering ``block``: keep the ``value`` it replaces (see ``_State``). Keyed by the
    object's id, which its entry keeps alive (a subclass may define ``__eq__``)."""
    entry = saved.get(id(block))
    if entry is None:
        saved[id(block)] = (block, [value])
    else:
        entry[1].append(value)


def _outer(saved: dict, block: object, name: str):
    """What ``block``'s innermost entry in this thread replaced (to put back on exit)."""
    entry = saved.get(id(block))
    if entry is None:
        raise RuntimeError(f"{name}: exited in a thread that did not enter it; grad mode, "
                           f"scopes and detect_anomaly are per thread, so enter and exit a "
                           f"block in the same thread")
    stack = entry[1]
    value = stack.pop()
    if not stack:
        del saved[id(block)]
    return value


class _CalledContext(type):
    """Metaclass of the context managers: ``with tg.no_grad:`` (the class, not called) says
    how to write it instead of Python's "'type' object does not support the context
    manager protocol"; ``@tg.no_grad`` without parentheses decorates the function, as
    ``@tg.no_grad()`` does (PyTorch takes both)."""
    _arguments = "()"           # how a call is written (set_grad_enabled: "(mode)")

    def __call__(cls, *args, **kwargs):
        if (cls._arguments == "()" and len(args) == 1 and not kwargs and callable(args[0])
                and not isinstance(args[0], type)):
            return super().__call__()(args[0])      # @tg.no_grad on a function
        return super().__call__(*args, **kwargs)

    def __enter__(cls):
        raise TypeError(f"with tg.{cls.__name__}: needs parentheses: write `with "
                        f"tg.{cls.__name__}{cls._arguments}:` (each block enters a new context)")

    def __exit__(cls, *exc_info):   # pragma: no cover - __enter__ always raises
        return False


class _ModeDecorator(contextlib.ContextDecorator):
    """A decorator that also holds inside generator functions. ``ContextDecorator`` enters
    the block around the call, which for a generator function only makes the generator
    object: its body would run outside the mode. Here each step of the generator runs inside
    the block and the caller's code between steps outside it, as in PyTorch."""

    def __call__(self, func):
        if not inspect.isgeneratorfunction(func):
            return super().__call__(func)

        @functools.wraps(func)
        def generator(*args, **kwargs):
            with self._recreate_cm():
                gen = func(*args, **kwargs)
            try:
                with self._recreate_cm():
                    value = next(gen)
                while True:
                    try:
                        sent = yield value
                    except GeneratorExit:
                        with self._recreate_cm():
                            gen.close()
                        raise
                    except BaseException as exc:   # g.throw(...): into the body, in mode
                        with self._recreate_cm():
                            value = gen.throw(exc)
                    else:
                        with self._recreate_cm():
                            value = gen.send(sent)
            except StopIteration as stop:          # (the body returned)
                return stop.value
        return generator


def is_grad_enabled() -> bool:
    """True when forward ops record graph nodes in this thread."""
    return _state.grad_enabled


class _GradModeSetter(_ModeDecorator, metaclass=_CalledContext):
    _enabled: bool

    def __enter__(self):
        state = _state
        _remember(state.outer_modes, self, state.grad_enabled)
        state.grad_enabled = self._enabled
        return self

    def __exit__(self, *exc_info):
        state = _state
        state.grad_enabled = _outer(state.outer_modes, self, type(self).__name__)
        return False


class no_grad(_GradModeSetter):
    """Context manager and decorator: ops inside record nothing and save nothing.

    >>> with no_grad():
    ...     y = model(x)      # inference: no graph, no saved arrays
    """
    _enabled = False


class enable_grad(_GradModeSetter):
    """Context manager and decorator that turns recording back on inside ``no_grad``."""
    _enabled = True


class set_grad_enabled(_GradModeSetter):
    """``with set_grad_enabled(flag):`` records only when ``flag`` is true; as in PyTorch, a
    plain call ``set_grad_enabled(False)`` sets this thread's mode until it is set again,
    and ``@set_grad_enabled(False)`` decorates a function (the mode at decoration time is
    left as it was)."""

    _arguments = "(mode)"

    def __init__(self, mode: bool):
        if callable(mode):          # @tg.set_grad_enabled on a function: bool(f) is True
            raise TypeError(f"set_grad_enabled(mode): got {getattr(mode, '__name__', mode)!r}, "
                            f"a callable; expected True or False (as a decorator: "
                            f"@tg.set_grad_enabled(False))")
        self._enabled = bool(mode)
        state = _state
        # Set at once: a plain call must act. A with block then puts back the mode before
        # the call, not the one the call itself set.
        self._before = (threading.get_ident(), state.grad_enabled)
        state.grad_enabled = self._enabled

    def __enter__(self):
        state = _state
        before = self._before
        self._before = None
        ours = before is not None and before[0] == threading.get_ident()
        _remember(state.outer_modes, self, before[1] if ours else state.grad_enabled)
        state.grad_enabled = self._enabled
        return self

    def __call__(self, func):
        before = self._before          # decorating: undo the call's own setting
        if before is not None and before[0] == threading.get_ident():
            _state.grad_enabled = before[1]
        self._before = None
        return super().__call__(func)


def swap_scope(label: str | None) -> str | None:
    """Label the nodes recorded from now on in this thread with ``label``; return the label
    that was in force, to be put back in a ``finally`` block::

        previous = swap_scope("Linear 1")
        try:
            ...                      # nodes recorded here carry "Linear 1"
        finally:
            swap_scope(previous)

    The low-level form of ``with scope(label)``, for code that labels every call
    (``nn.Module.__call__``): it makes no object and no method calls.
    """
    state = _state
    previous = state.scope
    state.scope = label
    return previous


class ScopeLabel(str):
    """A scope label that is a group of its own: pictures put the nodes recorded under one
    ``ScopeLabel`` object in one box, apart from those of another with the same text (a plain
    string groups by its text). Each ``nn`` module's ``label`` is one, so two layers labelled
    "Linear" are two boxes; giving a module another module's label object
    (``b.label = a.label``) draws both in one box. It is a ``str`` and compares as its text."""
    __slots__ = ()


class scope:
    """``with scope("Linear 1"):`` labels every node recorded inside (as ``node.module``);
    the innermost scope wins. Pictures group nodes by it (by its text, or by the object for a
    ``ScopeLabel``); ``nn.Module`` calls label their nodes the same way through
    ``swap_scope``."""

    __slots__ = ("label",)

    def __init__(self, label: str | None):
        self.label = label

    def __enter__(self):
        state = _state
        _remember(state.outer_scopes, self, state.scope)
        state.scope = self.label
        return self

    def __exit__(self, *exc_info):
        state = _state
        state.scope = _outer(state.outer_scopes, self, "scope")
        return False
