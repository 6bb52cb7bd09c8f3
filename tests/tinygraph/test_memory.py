"""Memory: no reference cycles (graphs die by refcount alone), saved buffers released after
backward, saved arrays read-only while the graph holds them (in-place modification checks)."""
from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest

import tinygraph as tg


class _GcDisabled:
    def __enter__(self):
        self.was_enabled = gc.isenabled()
        gc.collect()
        gc.disable()
        return self

    def __exit__(self, *exc):
        if self.was_enabled:
            gc.enable()
        return False


def _graph():
    r = np.random.default_rng(0)
    x = tg.Tensor(r.standard_normal((4, 3)), requires_grad=True)
    W = tg.Tensor(r.standard_normal((2, 3)), requires_grad=True)
    b = tg.Tensor(np.zeros(2), requires_grad=True)
    h = tg.tanh(tg.linear(x, W, b))
    inter_ref = weakref.ref(h._data)           # the intermediate array saved by tanh (h.data is a read-only view of it)
    p = tg.softmax(h * 2.0)
    out = -(tg.log(p) * np.eye(2)[[0, 1, 1, 0]]).sum() / 4 + (x[[0, 0]] ** 2).mean()
    return x, W, b, out, inter_ref


def test_no_reference_cycles_without_backward():
    with _GcDisabled():
        x, W, b, out, inter_ref = _graph()
        out_ref = weakref.ref(out)
        node_ref = weakref.ref(out.grad_fn)
        assert inter_ref() is not None
        del out
        assert out_ref() is None
        assert node_ref() is None
        assert inter_ref() is None
        # leaves' arrays are writable again once the graph is gone
        x.data[0, 0] = 1.0
        W.data[0, 0] = 1.0


def test_no_reference_cycles_after_backward():
    with _GcDisabled():
        x, W, b, out, inter_ref = _graph()
        out.backward()
        assert W.grad is not None
        out_ref = weakref.ref(out)
        node_ref = weakref.ref(out.grad_fn)
        del out
        assert out_ref() is None
        assert node_ref() is None
        assert inter_ref() is None


def test_no_reference_cycles_after_retain_graph_and_create_graph():
    with _GcDisabled():
        x, W, b, out, inter_ref = _graph()
        out.backward(retain_graph=True)
        gW, = tg.grad(out, [W], create_graph=True)
        (gW * gW).sum().backward()
        refs = [weakref.ref(out), weakref.ref(out.grad_fn), weakref.ref(gW),
                weakref.ref(gW.grad_fn)]
        del out, gW
        assert all(r() is None for r in refs)
        assert inter_ref() is None


def test_leaf_grad_does_not_keep_graph_alive():
    with _GcDisabled():
        x = tg.Tensor([1.0, 2.0], requires_grad=True)
        y = tg.exp(x)
        node_ref = weakref.ref(y.grad_fn)
        y.sum().backward()
        del y
        assert node_ref() is None
        assert x.grad is not None


def test_saved_buffers_released_after_backward_even_while_output_alive():
    x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    e = tg.exp(x)
    saved_ref = weakref.ref(e._data)        # the array itself (e.data is a read-only view)
    loss = (e * 2.0).sum()
    del e
    loss.backward(retain_graph=True)
    assert saved_ref() is not None          # retained: still held for another backward
    loss.backward()
    assert saved_ref() is None              # released although `loss` is alive
    np.testing.assert_allclose(x.grad, 4 * np.exp([1.0, 2.0, 3.0]))
    assert loss.grad_fn is not None


# -- read-only saved arrays ---------------------------------------------------------------------

def test_in_place_write_between_forward_and_backward_raises_and_gradient_stays_correct():
    x0 = np.array([1.0, 2.0, 3.0])
    x = tg.Tensor(x0.copy(), requires_grad=True)
    w = tg.Tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = (x * w).sum()                       # mul saves x (for dw) and w (for dx)
    with pytest.raises(ValueError):
        x.data[0] = 5.0
    with pytest.raises(ValueError):
        w.data -= 1.0
    y.backward()
    np.testing.assert_array_equal(w.grad, x0)
    np.testing.assert_array_equal(x.grad, [0.5, -1.0, 2.0])
    # graph released: writes and in-place parameter updates work again
    x.data[0] = 5.0
    w.data -= 0.1 * w.grad
    np.testing.assert_allclose(w.data, np.array([0.5, -1.0, 2.0]) - 0.1 * x0)


def test_training_loop_updates_parameters_in_place():
    r = np.random.default_rng(0)
    X = r.standard_normal((8, 3))
    Y = X @ np.array([[1.0], [-2.0], [0.5]])
    W = tg.Tensor(np.zeros((1, 3)), requires_grad=True)
    b = tg.Tensor(np.zeros(1), requires_grad=True)
    W_id = id(W.data)
    losses = []
    for _ in range(30):
        pred = tg.linear(X, W, b)
        loss = ((pred - Y) ** 2).mean()
        losses.append(loss.item())
        loss.backward()
        W.data -= 0.1 * W.grad
        b.data -= 0.1 * b.grad
        W.zero_grad()
        b.zero_grad()
    assert id(W.data) == W_id
    assert losses[-1] < 0.1 * losses[0]


def test_forcibly_writable_saved_array_raises_in_place_modification_error():
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    w = tg.Tensor(np.full((2, 3), 2.0), requires_grad=True)
    y = (x * w).sum()
    x.data.flags.writeable = True
    x.data[0, 0] = 5.0
    with pytest.raises(tg.InPlaceModificationError) as info:
        y.backward()
    msg = str(info.value)
    assert "mul" in msg.lower()
    assert "(2, 3)" in msg
    assert isinstance(info.value, tg.BackwardError)


def test_data_of_an_op_result_is_read_only_so_saved_outputs_cannot_change():
    x = tg.Tensor(np.array([0.5, 1.0]), requires_grad=True)
    y = tg.exp(x)                 # exp saves its output
    loss = y.sum()
    with pytest.raises(ValueError):
        y.data[0] = 100.0
    with pytest.raises(ValueError):
        y.numpy()[0] = 100.0
    loss.backward()
    np.testing.assert_allclose(x.grad, np.exp([0.5, 1.0]))
    copy = y.data.copy()          # the documented way to get values you can change
    copy[0] = 100.0
    assert y.data[0] == np.exp(0.5)


def test_forcibly_writable_saved_leaf_raises():
    x = tg.Tensor(np.array([0.5, 1.0]), requires_grad=True)
    loss = (x * x).sum()          # mul saves x's own array
    x.data.flags.writeable = True
    x.data[0] = 100.0
    with pytest.raises(tg.InPlaceModificationError) as info:
        loss.backward()
    assert "mul" in str(info.value).lower() and "(2,)" in str(info.value)


def test_dropping_an_unbackwarded_graph_makes_arrays_writable_again():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    c = np.array([1.0, 2.0, 3.0])          # a constant saved by the graph
    y = (x * c).sum() + (x * x).sum()
    assert not x.data.flags.writeable
    assert not c.flags.writeable
    del y
    assert x.data.flags.writeable and c.flags.writeable
    x.data[0] = 7.0
    c[0] = 7.0


def test_array_shared_by_two_graphs_stays_locked_until_both_are_released():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    y1 = (x * x).sum()
    y2 = tg.log(x).sum() * 2.0            # log saves x
    y1.backward()
    with pytest.raises(ValueError):
        x.data[0] = 3.0                     # still saved by y2's graph
    y2.backward()
    x.data[0] = 3.0


def test_threads_sharing_arrays_keep_the_lock_counts_right():
    # Four threads train on one input batch and one weight. The lock count of each array
    # and its writeable flag must change together: without that, one thread's release
    # made the batch writable under another thread's graph (a spurious
    # InPlaceModificationError) and left stale counts behind. And every pass sums into the
    # one W.grad: no update may be lost. Switching threads every microsecond makes the
    # interleavings that broke both happen within a few hundred steps.
    from _tgutil import run_in_threads
    from tinygraph import function

    W = tg.Tensor(np.ones((4, 4)), requires_grad=True)
    x = np.ones((2, 4))
    errors = []

    def train():
        try:
            for _ in range(1500):
                tg.linear(x, W).sum().backward()
        except Exception as exc:            # noqa: BLE001 - reported below
            errors.append(exc)

    run_in_threads(train, 4)
    assert errors == []
    assert x.flags.writeable and W.data.flags.writeable
    assert id(x) not in function._lock_counts and id(W.data) not in function._lock_counts
    np.testing.assert_allclose(W.grad, np.full((4, 4), 4 * 1500 * 2.0))


def test_a_node_freed_inside_a_lock_update_unlocks_its_arrays_when_the_update_ends():
    # The garbage collector can free a node in the middle of a lock-count update of the same
    # thread (Python 3.12+ runs it between any two bytecodes). Its unlock must then wait
    # for that update instead of racing it, and must not be lost.
    from tinygraph import function

    a = np.ones(3)
    locks = function._Locks()
    function._lock_shared(a, locks)
    assert not a.flags.writeable and function._lock_counts[id(a)] == 1
    with function._counts_guard:            # as if inside _lock_shared / _unlock
        del locks                           # the node's locks are freed right here
        assert function._deferred == [a]    # waiting, count untouched
        assert function._lock_counts[id(a)] == 1 and not a.flags.writeable
    other = np.ones(2)
    held = function._Locks()
    function._lock_shared(other, held)      # the next update drains the waiting unlock
    assert function._deferred == []
    assert a.flags.writeable and id(a) not in function._lock_counts
    held.release()
    assert other.flags.writeable and id(other) not in function._lock_counts


class _Interrupt(Exception):
    """Stands for a KeyboardInterrupt delivered between two bytecodes."""


@pytest.mark.parametrize("update", ["lock", "unlock"])
def test_an_interrupt_right_after_the_count_guard_is_taken_does_not_leave_it_held(update):
    # Python delivers Ctrl-C right after a C call returns. Taken by acquire() before a
    # try/finally, the guard would stay held if the interrupt came between the two: other
    # threads would then wait for ever and this thread's freed nodes never unlock. A with
    # block has no such gap. The profile hook raises on the return of any C call that takes
    # the guard, at the moment the guard has just been taken.
    import sys

    from tinygraph import function

    a = np.ones(3)
    locks = function._Locks()
    if update == "unlock":
        function._lock_shared(a, locks)

    def interrupt(frame, event, arg):
        if event == "c_return" and getattr(arg, "__self__", None) is function._counts_guard:
            raise _Interrupt

    sys.setprofile(interrupt)
    try:
        if update == "lock":
            function._lock_shared(a, locks)
        else:
            locks.release()
    except _Interrupt:
        pass
    finally:
        sys.setprofile(None)
    assert not function._counts_guard._is_owned()
    locks.release()
    assert a.flags.writeable and id(a) not in function._lock_counts
    assert function._deferred == []


def test_thousands_of_deferred_unlocks_are_all_drained():
    # A big graph freed by the GC inside one count update defers every node's arrays; the
    # next update must unlock them all (a flat loop: no recursion depth, nothing lost).
    from tinygraph import function

    arrays = [np.ones(2) for _ in range(5000)]
    held = []
    with function._counts_guard:
        for a in arrays:
            locks = function._Locks()
            function._lock_shared(a, locks)
            held.append(locks)
        del locks
        held.clear()                        # every node freed inside the update
        assert len(function._deferred) == 5000
    function._unlock([])
    assert function._deferred == []
    assert all(a.flags.writeable for a in arrays)
    assert not any(id(a) in function._lock_counts for a in arrays)


def test_writing_a_parameter_saved_through_a_view_cannot_corrupt_the_gradient():
    # z = x @ W.T: matmul saves the transposed *view* of W.data. Writing W between forward
    # and backward must either fail (read-only) or leave the gradient of the forward pass.
    W = tg.Tensor(np.ones((3, 2)), requires_grad=True)
    x = tg.Tensor(np.ones((4, 2)), requires_grad=True)
    z = x @ W.T
    try:
        W.data[0, 0] = 5.0
    except ValueError:
        pass
    z.sum().backward()
    np.testing.assert_allclose(x.grad, np.full((4, 2), 3.0))
    np.testing.assert_allclose(W.grad, np.full((3, 2), 4.0))
    W.data -= 0.1 * W.grad
    x.data[0, 0] = 2.0


@pytest.mark.parametrize("leaf", [False, True])
@pytest.mark.parametrize("create_graph", [False, True])
def test_an_array_read_only_before_the_forward_pass_is_watched_and_left_read_only(
        create_graph, leaf):
    """Frozen by its owner, not by the graph: saved as it is (no copy) and counted like
    the graph's own locks, so backward refuses it if the owner made it writable and changed
    it meanwhile; its flag is left as the owner set it."""
    def frozen_array():
        a = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        a.setflags(write=False)
        return a

    def loss(a):
        W = tg.Tensor(np.ones((2, 2)), requires_grad=True)
        x = tg.Tensor(a, requires_grad=leaf)
        return W, x, ((x @ W) ** 2).sum()

    def run(y, W):
        if create_graph:
            return tg.grad(y, W, create_graph=True)[0].data
        y.backward()
        return W.grad

    a = frozen_array()
    W, x, y = loss(a)
    assert sum(s is a for _, s in tg.graph.saved_arrays(y)) == 1     # itself, not a copy
    a.setflags(write=True)
    a[...] = 100.0
    with pytest.raises(tg.InPlaceModificationError, match=r"shape \(3, 2\) .* made writable"):
        run(y, W)
    a = frozen_array()                             # left alone: the right gradient, and
    W, x, y = loss(a)                              # the owner's flag as it was
    np.testing.assert_allclose(run(y, W), 2 * a.T @ (a @ np.ones((2, 2))))
    del y, x
    assert not a.flags.writeable


def test_a_frozen_array_shared_by_graphs_stays_read_only_after_the_last():
    a = np.ones(3)
    a.setflags(write=False)
    w = tg.Tensor(np.ones(3), requires_grad=True)
    y1, y2 = (w * a).sum(), (w * a * 2).sum()
    y1.backward()
    y2.backward()
    assert not a.flags.writeable and w.grad.tolist() == [3.0, 3.0, 3.0]
    b = np.ones(3)                                  # a writable one: writable again after
    (w * b).sum().backward()
    assert b.flags.writeable


def test_leaves_that_are_views_of_one_buffer():
    # two leaves viewing the same parameter buffer, each saved by its own node
    big = np.arange(1.0, 7.0)
    x1 = tg.Tensor(big[:3], requires_grad=True)
    x2 = tg.Tensor(big[3:], requires_grad=True)
    y = (x1 * x1).sum() + (x2 * x2).sum()
    y.backward()
    np.testing.assert_allclose(x1.grad, 2 * big[:3])
    np.testing.assert_allclose(x2.grad, 2 * big[3:])
    assert big.flags.writeable
    x1.data[0] = 0.0
    x2.data[0] = 0.0


def test_two_minibatch_slices_of_one_dataset_in_one_graph():
    X = np.random.default_rng(0).standard_normal((4, 3))
    W = tg.Tensor(np.ones((3, 2)), requires_grad=True)
    xb1, xb2 = tg.Tensor(X[0:2]), tg.Tensor(X[2:4])
    loss = (xb1 @ W).sum() + (xb2 @ W).sum()
    loss.backward()
    np.testing.assert_allclose(W.grad, X.sum(axis=0)[:, None] * np.ones((1, 2)))
    assert X.flags.writeable
    X[0, 0] = 1.0


def test_dropping_graph_over_views_of_one_buffer_unlocks_everything():
    big = np.arange(1.0, 7.0)
    x1 = tg.Tensor(big[:3], requires_grad=True)
    x2 = tg.Tensor(big[3:], requires_grad=True)
    y = (x1 * x1).sum() + (x2 * x2).sum()
    del y
    assert big.flags.writeable
    assert x1.data.flags.writeable and x2.data.flags.writeable


def test_user_array_wrapped_without_copy_is_locked_then_unlocked():
    arr = np.array([1.0, 2.0])
    x = tg.Tensor(arr, requires_grad=True)
    y = tg.log(x).sum()                     # log saves x
    with pytest.raises(ValueError):
        arr[0] = 3.0
    y.backward()
    arr[0] = 3.0
    assert x.data[0] == 3.0


def test_intermediate_arrays_stay_read_only_and_copies_are_writable():
    # a tensor made by a recorded op shows its data read-only, before and after backward
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = tg.tanh(x)                          # tanh saves its output h.data
    loss = (h * h).sum()
    with pytest.raises(ValueError):
        h.data[0] = 0.0
    loss.backward()
    with pytest.raises(ValueError):
        h.data[0] = 0.0
    d = h.detach()                          # detached, still the graph's array: read-only
    with pytest.raises(ValueError):
        d.data[1] = 5.0
    leaf = tg.Tensor(h.data.copy(), requires_grad=True)   # a copy is a new leaf, writable
    leaf.data[1] = 5.0
    assert leaf.data[1] == 5.0 and h.data[1] == np.tanh(2.0)

class _StopGradient(tg.Function):
    @staticmethod
    def forward(ctx, a):
        return a.copy()

    @staticmethod
    def backward(ctx, g):
        return (None,)


def test_nodes_behind_a_none_gradient_are_released_too():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    w = tg.Tensor([3.0, 4.0], requires_grad=True)
    h = x * w                               # mul saves x and w
    loss = _StopGradient.apply(h).sum() + (w * 2.0).sum()
    loss.backward()
    np.testing.assert_array_equal(w.grad, [2.0, 2.0])
    assert x.grad is None
    assert len(h.grad_fn.saved_tensors) == 0    # released although no gradient reached it
    x.data[0] = 5.0                         # after backward: writable
    w.data -= 0.1 * w.grad


def test_saved_bytes_counts_arrays_an_op_keeps_on_its_node():
    # getitem keeps a private copy of its index on ctx (keeps_arrays_on_ctx): 800 KB that
    # saved_bytes and the picture's legend left out
    x = tg.Tensor(np.arange(10.0), requires_grad=True)
    index = np.arange(100_000) % 10
    y = x[index].sum()
    assert tg.graph.saved_bytes(y) == index.nbytes
    held = [a for _, a in tg.graph.saved_arrays(y)]
    assert len(held) == 1 and np.array_equal(held[0], index) and held[0] is not index
    y.backward()
    assert tg.graph.saved_bytes(y) == 0                   # freed with the rest
