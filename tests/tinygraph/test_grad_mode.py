"""no_grad / enable_grad / set_grad_enabled: context managers, decorators, per-thread state."""
from __future__ import annotations

import re
import threading

import numpy as np
import pytest

import tinygraph as tg


def test_no_grad_records_nothing_and_saves_nothing():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    w = tg.Tensor([3.0, 4.0], requires_grad=True)
    assert tg.is_grad_enabled()
    with tg.no_grad():
        assert not tg.is_grad_enabled()
        y = tg.exp(x * w)
        z = (y @ w) + tg.linear(x[None, :], w[None, :])
        assert y.grad_fn is None and not y.requires_grad
        assert z.grad_fn is None and not z.requires_grad
        # nothing saved: the inputs' arrays are not locked read-only
        x.data[0] = 1.5
        w.data[1] = 4.5
    assert tg.is_grad_enabled()
    np.testing.assert_allclose(y.data, np.exp([1.0 * 3.0, 2.0 * 4.0]))
    with pytest.raises(tg.BackwardError):
        z.sum().backward()


def test_no_grad_as_decorator():
    @tg.no_grad()
    def infer(t):
        assert not tg.is_grad_enabled()
        return t * 2.0

    x = tg.Tensor([1.0], requires_grad=True)
    y = infer(x)
    assert y.grad_fn is None and not y.requires_grad
    assert tg.is_grad_enabled()
    y2 = x * 2.0
    assert y2.grad_fn is not None


def test_enable_grad_inside_no_grad_and_as_decorator():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)

    @tg.enable_grad()
    def train_step(t):
        return (t * t).sum()

    with tg.no_grad():
        with tg.enable_grad():
            assert tg.is_grad_enabled()
            y = (x * 3.0).sum()
        assert not tg.is_grad_enabled()
        z = train_step(x)
        assert not tg.is_grad_enabled()
    assert y.grad_fn is not None and z.grad_fn is not None
    y.backward()
    z.backward()
    np.testing.assert_allclose(x.grad, [3.0 + 2.0, 3.0 + 4.0])


def test_set_grad_enabled_and_restoration_after_exception():
    x = tg.Tensor([1.0], requires_grad=True)
    with tg.set_grad_enabled(False):
        assert (x * 2).grad_fn is None
    with tg.set_grad_enabled(True):
        assert (x * 2).grad_fn is not None
    with pytest.raises(ZeroDivisionError):
        with tg.no_grad():
            1 / 0
    assert tg.is_grad_enabled()
    with tg.no_grad():
        with tg.no_grad():
            pass
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_no_grad_result_can_be_used_as_constant_later():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        c = x * 10.0
    (x * c).sum().backward()
    np.testing.assert_allclose(x.grad, c.data)


def test_grad_mode_is_per_thread():
    barrier = threading.Barrier(2, timeout=10)
    results: dict = {}
    errors: list = []
    x = tg.Tensor([1.0, 2.0], requires_grad=True)

    def in_no_grad():
        try:
            with tg.no_grad():
                barrier.wait()          # 1: both threads are inside their regions
                results["no_grad_enabled"] = tg.is_grad_enabled()
                results["no_grad_fn"] = (x * 2.0).grad_fn
                barrier.wait()          # 2: the other thread has recorded meanwhile
                results["no_grad_fn_after"] = (x * 3.0).grad_fn
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def recording():
        try:
            barrier.wait()              # 1
            results["rec_enabled"] = tg.is_grad_enabled()
            y = x * 4.0
            results["rec_fn"] = y.grad_fn
            barrier.wait()              # 2
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=in_no_grad), threading.Thread(target=recording)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors, errors
    assert results["no_grad_enabled"] is False
    assert results["no_grad_fn"] is None and results["no_grad_fn_after"] is None
    assert results["rec_enabled"] is True
    assert results["rec_fn"] is not None
    assert tg.is_grad_enabled()


def test_no_grad_in_main_thread_does_not_affect_new_thread():
    out = {}
    x = tg.Tensor([1.0], requires_grad=True)
    ready = threading.Event()

    def worker():
        ready.wait(10)
        out["fn"] = (x * 2.0).grad_fn
        out["enabled"] = tg.is_grad_enabled()

    t = threading.Thread(target=worker)
    with tg.no_grad():
        t.start()
        ready.set()
        t.join(10)
        assert (x * 2.0).grad_fn is None
    assert out["enabled"] is True and out["fn"] is not None


def test_scope_and_swap_scope_label_nodes_and_restore_the_outer_label():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with tg.scope("outer"):
        a = x * 2.0
        previous = tg.swap_scope("inner")
        try:
            b = a + 1.0
        finally:
            assert tg.swap_scope(previous) == "inner"
        c = tg.exp(b)
    d = c.sum()
    assert [n.module for n in (a.grad_fn, b.grad_fn, c.grad_fn, d.grad_fn)] == \
        ["outer", "inner", "outer", None]


def test_scope_is_per_thread_and_survives_an_exception():
    seen = {}

    def other():
        seen["label"] = (tg.Tensor([1.0], requires_grad=True) * 2.0).grad_fn.module
        seen["previous"] = tg.swap_scope("other thread")
        seen["own"] = (tg.Tensor([1.0], requires_grad=True) * 2.0).grad_fn.module

    with tg.scope("main thread"):
        t = threading.Thread(target=other)
        t.start()
        t.join()
        with pytest.raises(ValueError):
            with tg.scope("failing"):
                raise ValueError("boom")
        assert (tg.Tensor([1.0], requires_grad=True) * 2.0).grad_fn.module == "main thread"
    assert seen == {"label": None, "previous": None, "own": "other thread"}
    assert (tg.Tensor([1.0], requires_grad=True) * 2.0).grad_fn.module is None


def test_a_decorated_function_calling_itself_puts_the_mode_back():
    @tg.no_grad()
    def countdown(n):
        assert not tg.is_grad_enabled()
        if n:
            countdown(n - 1)
            assert not tg.is_grad_enabled()     # still off after the inner call returned

    countdown(3)
    assert tg.is_grad_enabled()
    ng = tg.no_grad()
    with ng:
        with ng:                                  # one object entered twice
            pass
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_one_decorator_object_shared_by_threads_restores_each_threads_mode():
    inside = threading.Barrier(2, timeout=30)     # a broken run fails, never hangs
    seen = {}

    @tg.no_grad()
    def work():
        inside.wait()                             # both threads are inside at once
        inside.wait()

    def run(name):
        tg.set_grad_enabled(name == "a").__enter__()     # a enters with grad on, b with off
        work()
        seen[name] = tg.is_grad_enabled()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == {"a": True, "b": False}


def test_leaving_a_block_in_another_thread_is_a_named_error():
    ng = tg.no_grad()
    ng.__enter__()
    errors = []

    def leave():
        try:
            ng.__exit__(None, None, None)
        except RuntimeError as exc:
            errors.append(str(exc))

    t = threading.Thread(target=leave)
    t.start()
    t.join()
    ng.__exit__(None, None, None)
    assert errors and "no_grad: exited in a thread that did not enter it" in errors[0]
    assert tg.is_grad_enabled()


def test_a_scope_object_entered_again_restores_each_outer_label():
    outer = tg.scope("outer")
    with outer:
        with tg.scope("inner"):
            with outer:
                pass
            x = tg.Tensor([1.0], requires_grad=True) * 2.0
        assert x.grad_fn.module == "inner"
        y = tg.Tensor([1.0], requires_grad=True) * 2.0
    assert y.grad_fn.module == "outer"
    assert (tg.Tensor([1.0], requires_grad=True) * 2.0).grad_fn.module is None


@pytest.mark.parametrize("name, arguments", [("no_grad", "()"), ("enable_grad", "()"),
                                             ("detect_anomaly", "()"),
                                             ("set_grad_enabled", "(mode)")])
def test_a_context_manager_used_without_parentheses_says_how_to_write_it(name, arguments):
    # Python's own words were "'type' object does not support the context manager protocol"
    with pytest.raises(TypeError, match=rf"^with tg.{name}: needs parentheses: write `with "
                                        rf"tg.{name}{re.escape(arguments)}:`"):
        with getattr(tg, name):
            pass
    assert tg.is_grad_enabled()
    with getattr(tg, name)(*([False] if arguments == "(mode)" else [])):
        pass


@pytest.mark.parametrize("name, inside", [("no_grad", lambda: not tg.is_grad_enabled()),
                                          ("enable_grad", tg.is_grad_enabled),
                                          ("detect_anomaly", lambda: tg.grad_mode._state.anomaly)])
def test_a_context_manager_decorates_without_parentheses(name, inside):
    # PyTorch takes @torch.no_grad as well as @torch.no_grad(); before, Python said
    # "no_grad() takes no arguments"
    @getattr(tg, name)
    def step(t):
        """Doubles t."""
        assert inside()
        return t * 2.0

    assert step.__name__ == "step" and step.__doc__ == "Doubles t."
    x = tg.Tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = step(x)
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled() and not tg.grad_mode._state.anomaly
    assert (y.grad_fn is not None) == (name == "enable_grad")


def test_set_grad_enabled_without_its_mode_as_a_decorator_is_refused():
    with pytest.raises(TypeError, match=r"^set_grad_enabled\(mode\): got 'step', a callable; "
                                        r"expected True or False \(as a decorator: "
                                        r"@tg.set_grad_enabled\(False\)\)"):
        @tg.set_grad_enabled
        def step(t):
            return t
    with tg.set_grad_enabled(0):
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_set_grad_enabled_called_on_its_own_sets_the_mode_as_in_pytorch():
    # a plain call did nothing before: an evaluation script starting with
    # tg.set_grad_enabled(False) went on recording graphs
    x = tg.Tensor([1.0], requires_grad=True)
    try:
        tg.set_grad_enabled(False)
        assert not tg.is_grad_enabled() and (x * 2.0).grad_fn is None
        tg.set_grad_enabled(True)
        assert tg.is_grad_enabled() and (x * 2.0).grad_fn is not None
        tg.set_grad_enabled(False)
        with tg.set_grad_enabled(True):           # a block puts back the mode before it
            assert tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    finally:
        tg.set_grad_enabled(True)
    with tg.no_grad():
        with tg.set_grad_enabled(True):
            assert tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    cm = tg.set_grad_enabled(False)               # made first, entered later
    with cm:
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()

    @tg.set_grad_enabled(False)                   # decorating leaves the mode as it was
    def infer(t):
        return t * 2.0, tg.is_grad_enabled()

    assert tg.is_grad_enabled()
    for _ in range(2):                            # each call enters and leaves again
        y, inside = infer(x)
        assert not inside and y.grad_fn is None and tg.is_grad_enabled()
    with tg.no_grad():
        assert infer(x)[1] is False and not tg.is_grad_enabled()


def test_set_grad_enabled_called_in_one_thread_leaves_other_threads_alone():
    seen = []
    done = threading.Event()

    def other():
        tg.set_grad_enabled(False)
        seen.append(tg.is_grad_enabled())
        done.set()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(30)
    assert done.is_set() and seen == [False] and tg.is_grad_enabled()


@pytest.mark.parametrize("make, inside, outside", [
    (lambda: tg.no_grad(), False, True),
    (lambda: tg.set_grad_enabled(False), False, True),
    (lambda: tg.enable_grad(), True, False),
])
def test_a_decorated_generator_function_runs_each_step_in_the_mode(make, inside, outside):
    # ContextDecorator entered the block only while the generator object was made: an
    # inference generator under @no_grad() recorded graphs and kept every batch's arrays
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    seen = []

    @make()
    def predictions(scales):
        received = yield "ready"
        seen.append(("sent", received, tg.is_grad_enabled()))
        for s in scales:
            try:
                yield x * s
            except KeyError:
                seen.append(("thrown", tg.is_grad_enabled()))
                yield "recovered"
        return "done"

    with tg.set_grad_enabled(outside):
        gen = predictions([2.0, 3.0])
        assert next(gen) == "ready" and tg.is_grad_enabled() is outside
        first = gen.send("hello")
        assert first.requires_grad is inside and tg.is_grad_enabled() is outside
        assert gen.throw(KeyError("k")) == "recovered" and tg.is_grad_enabled() is outside
        assert next(gen).requires_grad is inside
        with pytest.raises(StopIteration) as stop:
            next(gen)
        assert stop.value.value == "done"                  # the body's return value
        assert tg.is_grad_enabled() is outside
    assert seen == [("sent", "hello", inside), ("thrown", inside)]
    assert tg.is_grad_enabled()

    def outer():                                          # `yield from` gets the value too
        return (yield from predictions([]))
    gen = outer()
    next(gen)
    with pytest.raises(StopIteration) as stop:
        gen.send(None)
    assert stop.value.value == "done"


def test_a_decorated_generator_closed_early_leaves_the_mode_as_it_was():
    closed = []

    @tg.no_grad()
    def numbers():
        try:
            yield 1
            yield 2
        finally:
            closed.append(tg.is_grad_enabled())     # the body's cleanup runs in the mode

    gen = numbers()
    assert next(gen) == 1
    gen.close()
    assert closed == [False] and tg.is_grad_enabled()

    @tg.detect_anomaly()
    def checked():
        yield tg.log(tg.Tensor([-1.0], requires_grad=True))

    with np.errstate(invalid="ignore"), pytest.raises(tg.AnomalyError, match="^detect_anomaly: log"):
        next(checked())


def test_blocks_closed_out_of_order_each_put_back_what_they_replaced():
    # one stack for all blocks: a decorated generator whose body held a `with` across a
    # yield popped the body's entry on the way out and left the caller in no_grad
    @tg.no_grad()
    def steps():
        with tg.enable_grad():
            yield tg.is_grad_enabled()
        yield tg.is_grad_enabled()

    gen = steps()
    assert next(gen) is True and tg.is_grad_enabled()
    assert (tg.Tensor([1.0], requires_grad=True) * 2).requires_grad
    with tg.no_grad():
        assert next(gen) is False and not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
    # two objects left out of order, by hand: each puts back its own
    a, b = tg.no_grad(), tg.enable_grad()
    a.__enter__()
    b.__enter__()
    a.__exit__(None, None, None)
    assert tg.is_grad_enabled()             # what a replaced
    b.__exit__(None, None, None)
    assert not tg.is_grad_enabled()         # what b replaced (a's mode)
    tg.set_grad_enabled(True)
    with tg.scope("x"):
        pass
    assert tg.grad_mode._state.outer_modes == {} and tg.grad_mode._state.outer_scopes == {}


def test_a_block_subclass_that_compares_by_value_still_works():
    # the per-object entries were keyed by the object: a subclass with __eq__ (and so no
    # __hash__) made `with Quiet():` a TypeError
    class Quiet(tg.no_grad):
        def __eq__(self, other):
            return isinstance(other, Quiet)

    outer, inner = Quiet(), Quiet()
    with outer:
        with tg.enable_grad():
            with inner:
                assert not tg.is_grad_enabled()
            assert tg.is_grad_enabled()
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()
