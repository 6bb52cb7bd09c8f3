"""grad_report: every parameter whose gradient is None or all zeros, with the reason."""
from __future__ import annotations

import numpy as np
import pytest

import nn
import tinygraph as tg
from tinygraph.diagnostics import GradReport, grad_report


def _params(rng):
    names = ["W1", "W2", "unused", "detached", "nograd", "data"]
    shapes = [(3, 5), (5, 2), (3, 3), (3, 3), (3, 3), (3, 3)]
    return {n: tg.Tensor(rng.normal(size=s), requires_grad=True, name=n)
            for n, s in zip(names, shapes)}


def _problem():
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.normal(size=(4, 3)))
    P = _params(rng)

    def loss_fn():
        with tg.no_grad():
            a = x @ P["nograd"]                    # recorded nothing
        b = a @ P["detached"].detach()             # a constant copy of the values
        c = b @ tg.Tensor(P["data"].data)          # .data: values only
        h = tg.relu(c @ P["W1"])
        return (h @ P["W2"]).sum()
    return P, loss_fn


def test_function_mode_tells_every_reason_apart():
    P, loss_fn = _problem()
    report = grad_report(loss_fn, P)
    assert isinstance(report, GradReport) and not report.ok
    assert report["W1"].status == "ok" and report["W2"].status == "ok"
    assert report["unused"].key == "not connected"
    assert "or only through a comparison or threshold" in report["unused"].reason
    for name in ("detached", "nograd", "data"):
        assert report[name].status == "none" and report[name].key == "cut off", report[name]
    text = str(report)
    assert "4 of 6 parameters" in text and "unused" in text and "[cut off]" in text
    # the report computes its own gradients: .grad untouched, arrays writable again
    assert all(p.grad is None for p in P.values())
    assert all(p.data.flags.writeable for p in P.values())


def test_tensor_mode_after_backward():
    P, loss_fn = _problem()
    loss = loss_fn()
    loss.backward()
    report = grad_report(loss, P)
    assert report["W1"].status == report["W2"].status == "ok"
    assert report["unused"].key == "not connected"
    assert "pass a function" in report["unused"].reason
    # without backward: connected parameters have no .grad
    P2, loss_fn2 = _problem()
    report = grad_report(loss_fn2(), P2)
    assert report["W1"].key == "no backward" and "run loss.backward()" in report["W1"].reason


def test_dead_relu_layer_and_the_layer_after_it():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(8, 2))
    y = rng.integers(0, 3, size=8)
    model = nn.MLP([2, 4, 3], ["relu", "softmax"], seed=0)
    model.linears[0].b.data[...] = -100.0          # every unit of ReLU 1 is dead
    report = model.grad_report(X, y)
    assert report["layers.0.W"].key == "dead relu"
    assert report["layers.0.b"].key == "dead relu"
    assert "ReLU 1" in report["layers.0.W"].reason
    assert report["layers.2.W"].key == "zero"      # fed only zeros by the dead ReLU
    assert "dead" in report["layers.2.W"].reason
    assert report["layers.2.b"].status == "ok"
    # after a real backward, the report on the loss tensor finds the same (nn's ReLU
    # objects keep their last cache)
    model.zero_grad()
    loss = model.loss(X, y)
    loss.backward()
    assert model.grad_report(loss)["layers.0.W"].key == "dead relu"
    # a later forward pass (an evaluation batch of the same size, with live units) replaces
    # the object's cache: the report must not read that batch's ReLU as this one's
    model.linears[0].b.data[...] = 100.0
    model.loss(X, y)
    model.linears[0].b.data[...] = -100.0
    entry = model.grad_report(loss)["layers.0.W"]
    assert entry.key == "zero" and "dead ReLUs cannot be checked after backward" in entry.reason
    # and the model still trains afterwards
    model.fit(X, y, epochs=1, learning_rate=0.1)


def test_each_dead_relu_is_walked_back_once_however_many_parameters_it_blocks(monkeypatch):
    """Four parameters behind two dead ReLUs: the leaves behind each ReLU are found once,
    not once per parameter (a big graph with many dead units stayed slow)."""
    import tinygraph.diagnostics as diag
    walks = []
    real = diag._ancestors_leaves
    monkeypatch.setattr(diag, "_ancestors_leaves", lambda n: walks.append(n) or real(n))
    rng = np.random.default_rng(1)
    model = nn.MLP([2, 4, 4, 3], ["relu", "relu", "softmax"], seed=0)
    model.linears[0].b.data[...] = -100.0          # ReLU 1 dead
    model.linears[1].b.data[...] = -100.0          # ReLU 2 dead
    report = model.grad_report(rng.normal(size=(8, 2)), rng.integers(0, 3, size=8))
    blocked = [k for k in ("layers.0.W", "layers.0.b", "layers.2.W", "layers.2.b")
               if report[k].key == "dead relu"]
    assert len(blocked) >= 3, str(report)
    assert len(walks) == len(set(map(id, walks))) == 2


def test_dead_relu_found_in_the_nodes_own_call_when_one_object_serves_two_layers():
    # The object's cache is the last call's (layer 2, alive); layer 1's node keeps its own
    # (all dead), and that is the one the report must read.
    relu = nn.ActivationLayer("relu")
    first, second = nn.Linear(2, 3, rng=0), nn.Linear(3, 3, rng=1)
    head = nn.Linear(3, 1, rng=2)
    first.b.data[...] = -100.0                       # every unit of the first use is dead
    second.b.data[...] = 100.0                       # every unit of the second use lives
    x = tg.Tensor(np.random.default_rng(0).normal(size=(4, 2)))
    params = {"first.W": first.W, "second.W": second.W}
    report = grad_report(lambda: head(relu(second(relu(first(x))))).sum(), params)
    assert report["first.W"].key == "dead relu", str(report)
    assert report["second.W"].key == "zero"          # fed only zeros: dead upstream


def test_tinygraph_relu_op_dead_and_partially_alive():
    x = tg.Tensor(np.array([[1.0, -2.0], [0.5, 3.0]]))
    W = tg.Tensor(np.array([[1.0, 1.0], [1.0, 1.0]]), requires_grad=True, name="W")
    V = tg.Tensor(np.ones((2, 1)), requires_grad=True, name="V")
    report = grad_report(lambda: (tg.relu(x @ W - 100.0) @ V).sum(), [W, V])
    assert report["W"].key == "dead relu" and "ReLUBackward" in report["W"].reason
    report = grad_report(lambda: (tg.relu(x @ W) @ V).sum(), [W, V])
    assert report.ok, str(report)


def test_zero_for_another_reason():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    report = grad_report(lambda: (w * 0.0).sum(), [w])
    assert report["w"].key == "zero"


def test_a_loss_that_depends_on_no_parameter_raises_with_the_reasons():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    u = tg.Tensor([3.0], requires_grad=True, name="u")
    with pytest.raises(tg.BackwardError) as info:
        grad_report(lambda: (w.detach() * 2.0).sum(), [w, u])
    message = str(info.value)
    assert "depends on none of the 2 parameters" in message
    assert "w: [cut off]" in message and "u: [not connected]" in message
    assert w.data.flags.writeable                  # nothing held read-only by the failure
    # and plain backward on such a loss fails at once too (the engine's message)
    with pytest.raises(tg.BackwardError, match="depends on no tensor that requires grad"):
        (w.detach() * 2.0).sum().backward()


def test_module_grad_report_argument_checks():
    model = nn.MLP([2, 3], ["softmax"], seed=0)
    with pytest.raises(TypeError, match=r"model.grad_report\(X, y\)"):
        model.grad_report(np.ones((2, 2)))
    seq = nn.Sequential(nn.Linear(2, 1))
    with pytest.raises(TypeError, match="loss\\(X, y\\) method"):
        seq.grad_report(np.ones((2, 2)), np.ones(2))
    report = seq.grad_report(lambda: seq(tg.Tensor(np.ones((2, 2)))).sum())
    assert report.ok and [e.name for e in report.entries] == ["0.W", "0.b"]


def test_shared_relu_object_after_a_plain_backward_is_not_misreported():
    # one ActivationLayer serves two layers; after backward the object's cache is the first
    # layer's, so the second layer's ReLU cannot be judged from it: no wrong "dead relu"
    relu = nn.ActivationLayer("relu")
    first, second, head = nn.Linear(2, 3, rng=0), nn.Linear(3, 3, rng=1), nn.Linear(3, 1, rng=2)
    first.b.data[...] = 100.0                     # first ReLU alive
    second.b.data[...] = -1e4                     # second ReLU dead on the whole batch
    x = tg.Tensor(np.ones((4, 2)))
    loss = head(relu(second(relu(first(x))))).sum()
    loss.backward()
    report = tg.grad_report(loss, {"first.W": first.W, "second.W": second.W})
    for name in ("first.W", "second.W"):
        entry = report[name]
        assert entry.status == "zero"
        assert "dead ReLUs cannot be checked after backward" in entry.reason, entry.reason


def test_parameters_that_share_a_name_get_their_own_reasons():
    Wa = tg.Tensor(np.ones((3, 1)), requires_grad=True, name="W")     # not used
    Wb = tg.Tensor(np.ones((3, 1)), requires_grad=True, name="W")     # used through detach()
    V = tg.Tensor(np.ones((3, 1)), requires_grad=True, name="V")

    def fn():
        return (Wb.detach() * V).sum()

    for order in ([Wa, Wb, V], [Wb, Wa, V]):
        report = tg.grad_report(fn, order)
        reasons = {id(p): e.reason for p, e in zip(order, report.entries)}
        assert reasons[id(Wa)].startswith("[not connected]"), reasons[id(Wa)]
        assert reasons[id(Wb)].startswith("[cut off]"), reasons[id(Wb)]


def test_a_nan_or_inf_gradient_is_reported_not_called_ok():
    # NaN != 0 is true: a NaN gradient was "ok (norm nan)" and the report "all nonzero"
    X = np.ones((2, 3))
    W = tg.Tensor(np.ones((3, 2)), requires_grad=True, name="W")
    s = tg.Tensor(np.array([-1.0, 1.0, 4.0]), requires_grad=True, name="s")
    with np.errstate(invalid="ignore", divide="ignore"):
        report = grad_report(lambda: (tg.Tensor(X) @ W).sum() + tg.sqrt(s).sum(),
                             {"W": W, "s": s})           # d sqrt(s)/ds at -1: NaN
    assert not report.ok and report["W"].status == "ok"
    entry = report["s"]
    assert entry.status == "nonfinite" and entry.key == "not finite"
    assert entry.reason.startswith("[not finite] 1 NaN and 0 inf in the gradient")
    assert "s (3,): gradient not finite: [not finite]" in str(report)
    model = nn.MLP([3, 4, 2], ["relu", "softmax"], seed=0)
    model.linears[1].W.data[0, 0] = np.inf
    with np.errstate(all="ignore"):
        assert not model.grad_report(np.ones((4, 3)), [0, 1, 0, 1]).ok


def test_a_vanishing_gradient_is_reported_next_to_the_largest():
    # a 20-layer sigmoid network's first layers (norms ~1e-11 against ~0.5) read "all
    # parameters have a nonzero gradient"
    X = np.random.default_rng(0).standard_normal((16, 8))
    y = np.arange(16) % 3
    deep = nn.MLP([8] + [16] * 20 + [3], ["sigmoid"] * 20 + ["softmax"], seed=0)
    report = deep.grad_report(X, y)
    assert not report.ok
    first = report["layers.0.W"]
    assert first.status == "vanishing" and first.key == "vanishing"
    top = max(e.norm for e in report.entries)
    assert first.norm < 1e-6 * top
    assert first.reason.startswith(f"[vanishing] its norm {first.norm:.3g} is "
                                   f"{first.norm / top:.1e} of the largest parameter gradient's")
    assert "layers.0.W (16, 8): gradient vanishing: [vanishing]" in str(report)
    assert all(e.norm >= 1e-6 * top for e in report.entries if e.status == "ok")
    # a shallow or ReLU network: no alarm
    for acts in (["relu", "relu", "softmax"], ["sigmoid", "sigmoid", "softmax"]):
        assert nn.MLP([8, 16, 16, 3], acts, seed=0).grad_report(X, y).ok
    # one parameter alone is never "vanishing" (nothing to compare with)
    w = tg.Tensor(np.full(3, 1e-20), requires_grad=True)
    assert grad_report(lambda: (w * w).sum(), {"w": w}).ok


def test_a_nan_loss_does_not_make_an_unused_parameter_cut_off():
    # NaN != NaN: the nudge test took every unused parameter for one the loss depends on.
    W = tg.Tensor(np.array([[1.0], [-1.0]]), requires_grad=True)
    Z = tg.Tensor(np.array([1.0]), requires_grad=True)
    report = grad_report(lambda: (W * np.nan).sum(), {"W": W, "Z": Z})
    (z,) = [e for e in report.entries if e.name == "Z"]
    assert z.key == "unknown" and z.key in tg.diagnostics.REASONS
    assert z.reason.startswith("[unknown] the loss is NaN or infinite") and "cut off" not in str(report)


def test_a_function_that_is_not_deterministic_is_named():
    # Drawing new random numbers at every call made an unused parameter "[cut off]".
    rng = np.random.default_rng(0)
    W = tg.Tensor(np.ones(3), requires_grad=True)
    U = tg.Tensor(np.ones(1), requires_grad=True)
    with pytest.raises(ValueError, match=r"^grad_report: fn gave two different losses for the "
                                         r"same parameters .* it is not deterministic"):
        grad_report(lambda: (W * tg.Tensor(rng.random(3))).sum(), {"W": W, "U": U})
    fixed = tg.Tensor(rng.random(3))
    report = grad_report(lambda: (W * fixed).sum(), {"W": W, "U": U})
    assert "[not connected]" in str(report)
