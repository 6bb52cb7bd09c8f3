"""Optimizers ``nn.SGD`` (with momentum) and ``nn.Adam``: in-place updates checked
against hand-computed reference steps, and the guard against updating a parameter
that a recorded graph still needs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nn
import tinygraph as tg


def _param(values):
    return tg.Tensor(np.array(values, dtype=float), requires_grad=True, name="p")


GRADS = [np.array([0.5, -1.0, 2.0]), np.array([-0.25, 0.75, 1.5]), np.array([1.0, 0.0, -3.0])]


def _run(opt, p):
    """Apply the three GRADS, recording the parameter after each step."""
    trajectory = []
    buffer = p.data
    for g in GRADS:
        p.grad = g.copy()
        opt.step()
        assert p.data is buffer, "the update must be in place"
        trajectory.append(p.data.copy())
    return trajectory


def test_sgd_plain_step_matches_reference():
    p = _param([1.0, 2.0, 3.0])
    theta = p.data.copy()
    traj = _run(nn.SGD([p], lr=0.1), p)
    for g, got in zip(GRADS, traj):
        theta = theta - 0.1 * g
        np.testing.assert_allclose(got, theta, rtol=1e-15)


def test_sgd_momentum_velocity_does_not_share_memory_with_the_gradient():
    # a velocity that was the gradient's own array was wiped when the gradient was zeroed in
    # place, and grew with every step without a backward in between
    p = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    p.grad = np.array([2.0, 4.0])
    opt = nn.SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    assert not np.shares_memory(opt.velocity[0], p.grad)
    p.grad[...] = 0.0
    np.testing.assert_array_equal(opt.velocity[0], [2.0, 4.0])
    opt.step()                                   # v = 0.9 v + 0 = [1.8, 3.6]
    np.testing.assert_allclose(p.data, [1.0 - 0.2 - 0.18, 2.0 - 0.4 - 0.36])


def test_sgd_momentum_matches_reference():
    p = _param([1.0, 2.0, 3.0])
    theta, v = p.data.copy(), np.zeros(3)
    traj = _run(nn.SGD([p], lr=0.05, momentum=0.9), p)
    for g, got in zip(GRADS, traj):
        v = 0.9 * v + g
        theta = theta - 0.05 * v
        np.testing.assert_allclose(got, theta, rtol=1e-15)


@pytest.mark.parametrize("lr", [0.1, np.float64(0.1)])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_sgd_step_leaves_the_gradient_alone_and_float32_in_float32(momentum, lr):
    # The update is θ -= α g through a temporary: .grad must read the same afterwards and
    # the velocity must not be scaled (an update that scaled g or v in place would save a
    # pass and silently change them), and a float32 parameter is updated in float32 math,
    # also with a numpy float64 learning rate set by hand.
    p = tg.Tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32), requires_grad=True)
    opt = nn.SGD([p], lr=0.1, momentum=momentum)
    opt.lr = lr
    buffer = p.data
    theta, v = p.data.copy(), np.zeros(3, np.float32)
    for g in GRADS:
        p.grad = g.astype(np.float32)
        kept = p.grad.copy()
        opt.step()
        np.testing.assert_array_equal(p.grad, kept)
        v = np.float32(momentum) * v + kept if momentum else kept
        theta = theta - np.float32(0.1) * v
        assert p.data is buffer and p.data.dtype == np.float32
        np.testing.assert_array_equal(p.data, theta)


def test_adam_matches_textbook_reference():
    p = _param([1.0, 2.0, 3.0])
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    theta, m, v = p.data.copy(), np.zeros(3), np.zeros(3)
    traj = _run(nn.Adam([p], lr=lr, betas=(b1, b2), eps=eps), p)
    for t, (g, got) in enumerate(zip(GRADS, traj), start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1 ** t), v / (1 - b2 ** t)
        theta = theta - lr * m_hat / (np.sqrt(v_hat) + eps)
        np.testing.assert_allclose(got, theta, rtol=1e-12)
    # The first Adam step moves every coordinate with a nonzero gradient by ~lr.
    q = _param([0.0, 0.0, 0.0])
    q.grad = np.array([1e-3, -5.0, 0.0])
    nn.Adam([q], lr=0.01).step()
    np.testing.assert_allclose(q.data, [-0.01, 0.01, 0.0], rtol=1e-4)


def test_adam_bias_correction_counts_each_parameters_own_updates():
    """A parameter whose first gradient comes at step 5 gets the full first Adam update
    (~lr), exactly as an Adam that only ever saw it would give (PyTorch's per-parameter
    step); with one global count that first update would be ~0.54·lr."""
    p, q, alone = _param([1.0, 2.0, 3.0]), _param([1.0, 2.0, 3.0]), _param([1.0, 2.0, 3.0])
    both, solo = nn.Adam([p, q], lr=0.01), nn.Adam([alone], lr=0.01)
    for step in range(8):
        p.grad = GRADS[step % 3].copy()
        q.grad = GRADS[(step + 1) % 3].copy() if step >= 4 else None
        both.step()
        if step >= 4:
            alone.grad = q.grad.copy()
            solo.step()
        np.testing.assert_array_equal(q.data, alone.data)
        if step == 4:                    # its first update: lr per coordinate with a gradient
            np.testing.assert_allclose(q.data, [0.99, 2.0, 3.01], rtol=1e-6)
    assert both.t == 8 and both.steps == [8, 4] and solo.steps == [4]


def test_adam_state_with_steps_round_trips_and_old_states_load():
    p, q = _param([1.0, 2.0, 3.0]), _param([0.0, 0.0, 0.0])
    a = nn.Adam([p, q], lr=0.01)
    p.grad = GRADS[0].copy()
    a.step()
    p.grad, q.grad = GRADS[1].copy(), GRADS[2].copy()
    a.step()
    state = a.state_dict()
    assert state["t"] == 2 and state["steps"] == [2, 1]
    b = nn.Adam([_param([1.0, 2.0, 3.0]), _param([0.0, 0.0, 0.0])], lr=0.01)
    b.load_state_dict(state)
    assert b.steps == [2, 1] and b.steps is not state["steps"]
    old = {k: v for k, v in state.items() if k != "steps"}   # saved before per-parameter counts
    b.load_state_dict(old)
    assert b.steps == [2, 2]
    for bad in ([2], [3, 1], [2, -1], [2, True], "21"):
        with pytest.raises(ValueError, match="steps .* must be a list of 2 integers from 0 to t=2"):
            b.load_state_dict(dict(state, steps=bad))


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1),
                                  lambda ps: nn.SGD(ps, lr=0.1, momentum=0.5),
                                  lambda ps: nn.Adam(ps, lr=0.1)],
                         ids=["sgd", "sgd_momentum", "adam"])
def test_optimizers_skip_parameters_without_grad_and_zero_grad(make):
    a, b = _param([1.0, 2.0]), _param([3.0, 4.0])
    opt = make([a, b])
    a.grad = np.array([1.0, 1.0])
    opt.step()
    np.testing.assert_array_equal(b.data, [3.0, 4.0])
    assert not np.array_equal(a.data, [1.0, 2.0])
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_optimizers_update_mlp_parameters_in_place_during_fit():
    X = np.random.default_rng(0).normal(size=(20, 3))
    y = (X[:, 0] > 0).astype(int)
    for make in (lambda m: nn.SGD(m.parameters(), lr=0.1, momentum=0.9),
                 lambda m: nn.Adam(m.parameters(), lr=0.01)):
        model = nn.MLP([3, 5, 2], ["tanh", "softmax"], seed=0)
        buffers = [p.data for p in model.parameters()]
        before = [b.copy() for b in buffers]
        model.fit(X, y, epochs=3, batch_size=7, optimizer=make(model))    # its own lr
        assert all(p.data is b for p, b in zip(model.parameters(), buffers))
        assert all(not np.array_equal(p.data, b0) for p, b0 in zip(model.parameters(), before))


def test_sgd_optimizer_equals_fit_default():
    X = np.random.default_rng(1).normal(size=(30, 3))
    y = (X[:, 1] > 0).astype(int)
    a = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    b = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    ha = a.fit(X, y, epochs=4, learning_rate=0.2, batch_size=8)
    hb = b.fit(X, y, epochs=4, learning_rate=0.2, batch_size=8, optimizer=nn.SGD(b.parameters(), lr=0.2))
    assert list(ha) == list(hb)
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def _model_with_pending_graph():
    model = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    X = np.random.default_rng(2).normal(size=(5, 3))
    y = np.array([0, 1, 1, 0, 1])
    model.compute_gradients(X, y)       # every parameter has a .grad
    loss = model.loss(X, y)             # a new forward pass, not backpropagated yet
    return model, loss


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1),
                                  lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: nn.Adam(ps, lr=0.1)],
                         ids=["sgd", "sgd_momentum", "adam"])
def test_step_while_a_graph_holds_a_parameter_raises(make):
    model, loss = _model_with_pending_graph()
    opt = make(model.parameters())
    with pytest.raises(RuntimeError, match=r"Run backward\(\) first, or drop the graph \(del "
                                           r"loss; also a kept traceback holds one"):
        opt.step()
    loss.backward()           # releases the graph
    before = [p.data.copy() for p in model.parameters()]
    opt.step()
    assert all(not np.array_equal(p.data, b) for p, b in zip(model.parameters(), before))


def test_step_works_again_once_the_pending_graph_is_dropped():
    model, loss = _model_with_pending_graph()
    opt = nn.SGD(model.parameters(), lr=0.1)
    with pytest.raises(RuntimeError):
        opt.step()
    del loss
    opt.step()


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1),
                                  lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: nn.Adam(ps, lr=0.1)],
                         ids=["sgd", "sgd_momentum", "adam"])
def test_refused_step_changes_nothing(make):
    """The refused step must be all or nothing: no parameter (and no optimizer state)
    may be updated before the RuntimeError. (In this network the first layer's W and
    b are not saved by the pending graph, the second layer's W is.)"""
    model, loss = _model_with_pending_graph()
    opt = make(model.parameters())
    before = model.state_dict()
    state_before = opt.state_dict()
    with pytest.raises(RuntimeError):
        opt.step()
    after = model.state_dict()
    changed = [k for k in before if not np.array_equal(before[k], after[k])]
    assert not changed, f"parameters updated by the refused step: {changed}"
    assert str(opt.state_dict()) == str(state_before)
    loss.backward()


def test_optimizer_argument_checks():
    p = _param([1.0])
    with pytest.raises(ValueError):
        nn.SGD([p], lr=-1.0)
    with pytest.raises(ValueError):
        nn.SGD([p], lr=math.nan)
    with pytest.raises(ValueError):
        nn.SGD([p], lr=0.1, momentum=1.0)
    with pytest.raises(ValueError):
        nn.Adam([p], betas=(0.9, 1.0))
    with pytest.raises(ValueError):
        nn.Adam([], lr=0.1)
    with pytest.raises(TypeError, match=r"^SGD: every parameter must be a floating-point "
                                        r"Tensor, got Tensor of dtype int64 at position 0"):
        nn.SGD([tg.Tensor([1])], lr=0.1)
    with pytest.raises(TypeError, match=r"^SGD: every parameter must be a floating-point "
                                        r"Tensor, got ndarray at position 0"):
        nn.SGD([np.ones(2)], lr=0.1)


def test_optimizer_state_dict_round_trip():
    p, q = _param([1.0, 2.0, 3.0]), _param([1.0, 2.0, 3.0])
    a, b = nn.Adam([p], lr=0.01), nn.Adam([q], lr=0.01)
    p.grad = GRADS[0].copy()
    a.step()
    b.load_state_dict(a.state_dict())
    q.data[...] = p.data
    for opt, t in ((a, p), (b, q)):
        t.grad = GRADS[1].copy()
        opt.step()
    np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: nn.Adam(ps, lr=0.1)], ids=["momentum", "adam"])
@pytest.mark.parametrize("before, after", [(np.float64, np.float32), (np.float32, np.float64)])
def test_optimizer_state_follows_a_parameter_cast_after_it_was_made(make, before, after):
    # the state kept the old dtype: float64 moments ran each update of a float32 model in
    # float64 (and its state_dict did not load into a fresh optimizer), a float32 velocity
    # rounded a float64 model's updates to float32
    p = tg.Tensor(np.array([1.0, 2.0, 3.0], dtype=before), requires_grad=True, name="p")
    opt = make([p])
    p.grad = GRADS[0].astype(before)
    opt.step()
    p.data = p.data.astype(after)
    twin = tg.Tensor(p.data.copy(), requires_grad=True)
    twin_opt = make([twin])
    twin_opt.load_state_dict(opt.state_dict())      # the old dtype's state, cast on load
    for name in opt.state_dict():
        for kept in twin_opt.state_dict()[name] if name in ("m", "v", "velocity") else ():
            assert kept.dtype == after, name
    for o, t in ((opt, p), (twin_opt, twin)):
        t.grad = GRADS[1].astype(after)
        o.step()
        assert t.data.dtype == after
        assert all(a.dtype == after for states in o._state_lists() for a in states)
    np.testing.assert_array_equal(p.data, twin.data)
    fresh = make([tg.Tensor(p.data.copy(), requires_grad=True)])
    fresh.load_state_dict(opt.state_dict())


def test_a_cast_is_not_made_by_a_refused_step():
    # a step is all or nothing: a later parameter's refusal leaves the first one's state as it was
    p = tg.Tensor(np.ones(2), requires_grad=True)
    q = tg.Tensor(np.ones(3), requires_grad=True)
    opt = nn.Adam([p, q])
    p.grad, q.grad = np.ones(2), np.ones(3)
    opt.step()
    p.data = p.data.astype(np.float32)
    p.grad = np.ones(2, dtype=np.float32)
    q.grad = np.ones(2)                                 # wrong shape: the step is refused
    with pytest.raises(ValueError, match=r"Nothing was updated"):
        opt.step()
    assert opt.m[0].dtype == np.float64 and opt.v[0].dtype == np.float64


def test_a_recast_that_would_overflow_is_refused_and_changes_nothing():
    # a float64 v of 1e300 became inf at the cast to float32: the parameter never trained again
    p = tg.Tensor(np.ones(2), requires_grad=True, name="p")
    opt = nn.Adam([p])
    opt.v[0][:] = [1e300, 1.0]
    p.data = p.data.astype(np.float32)
    p.grad = np.ones(2, dtype=np.float32)
    with pytest.raises(ValueError, match=r"^Adam\.step: the Adam state of parameter p holds "
                                         r"values too large for its new dtype float32 \(up to "
                                         r"1e\+300\); make a new optimizer for it\. Nothing was "
                                         r"updated"):
        opt.step()
    assert opt.v[0].dtype == np.float64 and opt.t == 0
    np.testing.assert_array_equal(p.data, [1.0, 1.0])


def test_adam_computes_numpy_settings_as_the_python_floats_its_file_holds():
    # config() writes floats; betas and eps set as numpy float32 computed in float32 and a
    # resumed run drifted by ~6e-8 after 5 steps
    runs = []
    for settings in ((np.float32(0.9), np.float32(0.99), np.float32(1e-3)), None):
        p = tg.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
        opt = nn.Adam([p], lr=0.1)
        if settings is not None:
            opt.betas, opt.eps = settings[:2], settings[2]
            config = opt.config()
        else:
            opt.betas, opt.eps = tuple(config["betas"]), config["eps"]
        for k in range(5):
            p.grad = GRADS[k % len(GRADS)].copy()
            opt.step()
        runs.append(p.data.copy())
    np.testing.assert_array_equal(runs[0], runs[1])


def test_optimizer_state_too_large_for_the_parameters_dtype_is_named():
    p = tg.Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=r"^SGD\.load_state_dict: velocity\[0\] holds values too "
                                         r"large for float32 \(up to 1e\+39\)"):
        nn.SGD([p], lr=0.1, momentum=0.9).load_state_dict({"velocity": [np.array([1e39, 0.0])]})
    with pytest.raises(ValueError, match=r"^SGD\.load_state_dict: velocity\[0\] has shape \(2,\) "
                                         r"and dtype int64; expected shape \(2,\) and a "
                                         r"floating-point dtype"):
        nn.SGD([p], lr=0.1, momentum=0.9).load_state_dict({"velocity": [np.array([1, 0])]})


def test_sgd_temporary_is_in_the_parameters_dtype_whatever_the_lr_type():
    # α g is one temporary of the parameter's size and dtype: a numpy float64 lr set by
    # hand must not make it float64 (twice the memory of a float32 model's largest weight)
    import tracemalloc
    p = tg.Tensor(np.zeros(1_000_000, dtype=np.float32), requires_grad=True)
    p.grad = np.ones(1_000_000, dtype=np.float32)
    opt = nn.SGD([p], lr=0.1)
    opt.lr = np.float64(0.01)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert p.data.nbytes <= peak < 1.5 * p.data.nbytes, f"peak {peak} bytes during step()"


def test_a_parameter_listed_twice_is_refused():
    # it was updated twice per step (and Adam kept two sets of moments for it)
    W = tg.Tensor(np.ones(2), requires_grad=True, name="W")
    b = tg.Tensor(np.zeros(2), requires_grad=True)
    for make in (lambda ps: nn.SGD(ps, lr=0.1), lambda ps: nn.Adam(ps)):
        with pytest.raises(ValueError, match=r"parameter W is listed twice \(positions 0 and 2\)"):
            make([W, b, W])


@pytest.mark.parametrize("state, message", [
    ({"t": 1, "m": [[[1.0, 2.0], [3.0]], [0.0, 0.0]], "v": [[0.0, 0.0]] * 2},
     r"m\[0\] is not an array of numbers"),
    ({"t": 1, "m": [[0.0, 0.0]] * 2, "v": [[0.0, np.nan], [0.0, 0.0]]},
     r"v\[0\] holds NaN or infinite values"),
    ({"t": 1, "m": [[0.0, 0.0]] * 2, "v": [[0.0, 0.0], [-1.0, 0.0]]},
     r"v\[1\] holds negative values"),
])
def test_adam_state_that_would_poison_the_weights_is_refused(state, message):
    params = [tg.Tensor(np.ones(2), requires_grad=True), tg.Tensor(np.ones(2), requires_grad=True)]
    with pytest.raises(ValueError, match=r"^Adam\.load_state_dict: " + message):
        nn.Adam(params).load_state_dict(state)


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1),
                                  lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: nn.Adam(ps, lr=0.1)])
def test_a_frozen_parameter_is_kept_by_an_optimizer_and_not_updated_while_frozen(make):
    # optimizers refused model.parameters() of a partly frozen model (PyTorch takes it)
    frozen, trained = _param([1.0, 2.0]), _param([3.0, 4.0])
    frozen.requires_grad = False
    opt = make([frozen, trained])
    frozen.grad = np.ones(2)                  # a gradient left from before it was frozen
    trained.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(frozen.data, [1.0, 2.0])
    assert np.all(trained.data < [3.0, 4.0])
    frozen.requires_grad = True               # unfrozen: trained from now on
    opt.step()
    assert np.all(frozen.data < [1.0, 2.0])


def _state_arrays(opt):
    """An optimizer's whole state as comparable values (arrays copied)."""
    return [np.array(v, copy=True) if isinstance(v, np.ndarray) else v
            for v in _flatten(opt.state_dict())]


def _flatten(value):
    if isinstance(value, dict):
        for k in sorted(value):
            yield k
            yield from _flatten(value[k])
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _flatten(v)
    else:
        yield value


@pytest.mark.parametrize("make", [lambda ps: nn.SGD(ps, lr=0.1),
                                  lambda ps: nn.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: nn.Adam(ps, lr=0.1)])
@pytest.mark.parametrize("change", ["data of another shape", "grad of another shape"])
def test_a_step_over_a_parameter_of_another_shape_is_refused_and_changes_nothing(make, change):
    # Adam updated the parameters before the mismatched one (and counted the step) and had
    # already scaled its moment when numpy's broadcast error came; momentum SGD the same
    a, b = nn.Linear(3, 2, rng=0), nn.Linear(3, 2, rng=1)
    opt = make(a.parameters() + b.parameters())
    (a(np.ones((5, 3))).sum() + b(np.ones((5, 3))).sum()).backward()
    opt.step()                                       # a state to keep (velocity, moments)
    a.zero_grad()
    b.zero_grad()
    if change == "data of another shape":
        b.W.data = np.ones((2, 4))
        (a(np.ones((5, 3))).sum() + b(np.ones((5, 4))).sum()).backward()
        expected = (r"the (SGD|Adam) state of parameter W has shape \(2, 3\), but the "
                    r"parameter now has shape \(2, 4\).*new optimizer" if
                    getattr(opt, "momentum", 1) else
                    r"parameter W has shape \(2, 4\) but its .grad has shape \(2, 3\)")
        if not getattr(opt, "momentum", 1):         # plain SGD keeps no state: a stale grad
            b.W.grad = np.ones((2, 3))
    else:
        (a(np.ones((5, 3))).sum() + b(np.ones((5, 3))).sum()).backward()
        b.W.grad = np.ones((2, 4))
        expected = r"parameter W has shape \(2, 3\) but its .grad has shape \(2, 4\)"
    weights = [p.data.copy() for p in opt.params]
    state = _state_arrays(opt)
    with pytest.raises(ValueError, match=rf"^(SGD|Adam)\.step: {expected}.*Nothing was updated"):
        opt.step()
    assert all(np.array_equal(w, p.data) for w, p in zip(weights, opt.params))
    after = _state_arrays(opt)
    assert len(after) == len(state) and all(
        np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(state, after))


@pytest.mark.parametrize("lr", ["0.1", -1.0, float("nan"), None])
def test_a_learning_rate_set_after_construction_is_checked_at_the_step(lr):
    p = _param([1.0, 2.0, 3.0])
    opt = nn.Adam([p], lr=0.1)
    opt.lr = lr
    p.grad = np.ones(3)
    with pytest.raises((TypeError, ValueError), match=r"^Adam.step: learning rate lr must be a "
                                                      r"positive finite number"):
        opt.step()
    assert p.data.tolist() == [1.0, 2.0, 3.0] and opt.t == 0
