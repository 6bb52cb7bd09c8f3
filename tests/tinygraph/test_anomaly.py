"""detect_anomaly(): a forward NaN/Inf names the op and the user's line; a backward NaN/Inf
names the backward node."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import tinygraph as tg


def _next_line():
    return inspect.currentframe().f_back.f_lineno + 1


def test_forward_nan_names_op_and_user_line():
    x = tg.Tensor([1.0, -1.0], requires_grad=True)
    with np.errstate(invalid="ignore"), tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError) as info:
            line = _next_line()
            tg.log(x)
    msg = str(info.value)
    assert "log" in msg
    assert f"test_anomaly.py:{line}" in msg, msg
    assert issubclass(tg.AnomalyError, FloatingPointError)


def test_forward_inf_names_op():
    x = tg.Tensor([1.0, 1000.0], requires_grad=True)
    with np.errstate(over="ignore"), tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError) as info:
            line = _next_line()
            _ = (x * 2.0).exp()
    assert "exp" in str(info.value)
    assert f"test_anomaly.py:{line}" in str(info.value)


def test_backward_inf_names_backward_node_and_forward_line():
    x = tg.Tensor([0.0, 4.0], requires_grad=True)
    with np.errstate(divide="ignore"), tg.detect_anomaly():
        line = _next_line()
        y = tg.sqrt(x)                    # forward is finite: sqrt(0) = 0
        loss = (y * 3.0).sum()
        with pytest.raises(tg.AnomalyError) as info:
            loss.backward()               # d sqrt/dx at 0 = inf
    msg = str(info.value)
    assert "SqrtBackward" in msg
    assert f"test_anomaly.py:{line}" in msg


class NanGrad(tg.Function):
    @staticmethod
    def forward(ctx, x):
        return x * 2.0

    @staticmethod
    def backward(ctx, g):
        return g * np.nan


def test_backward_nan_from_custom_function_names_it():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with tg.detect_anomaly():
        y = (NanGrad.apply(x) * 1.0).sum()
        with pytest.raises(tg.AnomalyError) as info:
            y.backward()
    assert "NanGradBackward" in str(info.value)


def test_without_detect_anomaly_nans_propagate_silently():
    x = tg.Tensor([0.0, 4.0], requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        tg.sqrt(x).sum().backward()
        y = tg.log(tg.Tensor([-1.0], requires_grad=True))
    assert np.isinf(x.grad[0])
    assert np.isnan(y.data[0])


def test_detect_anomaly_is_scoped_and_clean_runs_pass():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with tg.detect_anomaly():
        loss = (tg.log(x) * tg.exp(x)).sum()
        loss.backward()
    np.testing.assert_allclose(x.grad, np.exp([1.0, 2.0]) * (1 / np.array([1.0, 2.0])
                                                            + np.log([1.0, 2.0])))
    with np.errstate(invalid="ignore"):
        y = tg.log(tg.Tensor([-1.0], requires_grad=True))   # outside: no error
    assert np.isnan(y.data[0])


def test_a_user_file_in_a_directory_named_like_the_package_is_the_users_line(tmp_path):
    # the package test was a bare prefix: .../tinygraph_examples/script.py counted as
    # tinygraph's own code, and the error named the caller's exec line instead
    import os
    package_dir = os.path.dirname(os.path.abspath(tg.__file__))
    script = package_dir + "_examples_user" + os.sep + "user_script.py"
    source = "x = Tensor([0.0], requires_grad=True)\ny = tg.log(x)\n"
    with pytest.raises(tg.AnomalyError, match=r"user_script\.py:2"):
        with np.errstate(divide="ignore"), tg.detect_anomaly():
            exec(compile(source, script, "exec"),
                 {"__name__": "__main__", "tg": tg, "Tensor": tg.Tensor})


def test_a_backward_run_inside_the_block_is_checked_even_if_recorded_before():
    # wrapping only loss.backward() in detect_anomaly() checked nothing: z.grad = [inf, 0.5]
    z = tg.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    y = tg.sqrt(z)
    with np.errstate(divide="ignore"), tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError, match=r"SqrtBackward returned a NaN or Inf gradient "
                                                  r"for input 0 .*before detect_anomaly\(\) was "
                                                  r"entered.*run the forward inside the block"):
            y.sum().backward()
    assert z.grad is None


def test_a_backward_whose_math_gives_numpy_scalars_is_checked_not_crashed():
    # 0-d products in backward (a loss times 0.5) give numpy scalars, not arrays: the check
    # read ._data off them (AttributeError), so detect_anomaly broke every scaled scalar loss
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with tg.detect_anomaly():
        loss = (x * x).sum() * 0.5
        loss.backward()
    np.testing.assert_array_equal(x.grad, [1.0, 2.0])
    s = tg.Tensor(0.0, requires_grad=True)
    with np.errstate(divide="ignore"), tg.detect_anomaly():
        with pytest.raises(tg.AnomalyError, match=r"SqrtBackward returned a NaN or Inf "
                                                  r"gradient for input 0 \(shape \(\),"):
            (tg.sqrt(s) * 0.5).backward()          # a 0-d Inf is still caught
    assert s.grad is None


def test_a_forward_anomaly_leaves_no_array_locked():
    # The half-made node of the failing op stays reachable from the traceback (a notebook
    # keeps the last one): it kept the leaves it saved read-only, so the learner could not
    # fix the data, and an optimizer refused to step, blaming a graph that had not been
    # backpropagated.
    x = tg.Tensor(np.array([-1.0, 2.0]), requires_grad=True)
    w = tg.Tensor(np.array([0.0, 1.0]), requires_grad=True)
    kept = []
    for make in (lambda: tg.log(x), lambda: x / w):       # saves x; saves x and w
        with np.errstate(invalid="ignore", divide="ignore"), \
                pytest.raises(tg.AnomalyError) as info:
            with tg.detect_anomaly():
                make()
        kept.append(info.value)                 # as sys.last_exc would keep it
        for leaf in (x, w):
            assert not tg.held_by_graph(leaf.data) and leaf.data.flags.writeable
    assert kept[1].__traceback__ is not None
    x.data[0] = 1.0
    np.testing.assert_array_equal(x.data, [1.0, 2.0])
