"""Integer class labels are checked in one place, ``nn.data._validation.check_class_labels``,
behind three entry points: ``nn.data.one_hot``, ``nn.SoftmaxCrossEntropy`` (through
``check_targets``) and the MLPs' ``fit``/``score`` (both ``nn.MLP`` and ``nn.manual.MLP``).

Each test below runs the same bad labels through an entry point and checks the message
names the caller, the offending value and its index, and the expected range. ``one_hot``'s
own table is in ``test_data.py``; this file covers the other entry points and the
helper itself.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

import nn
import nn.manual
import tinygraph as tg
from nn.data import one_hot
from nn.data._validation import check_class_labels

X = np.array([[0.5, -1.0], [1.5, 2.0], [-0.5, 0.0], [1.0, 1.0]])
LABELS = np.array([0, 2, 1, 2])
K = 3

MLPS = [nn.MLP, nn.manual.MLP]
MLP_IDS = ["graph", "manual"]


def _classifier(MLP, dtype=np.float64):
    return MLP([2, 4, K], ["relu", "softmax"], seed=0, dtype=dtype)


def _where(MLP) -> str:
    return "nn.MLP" if MLP is nn.MLP else "MLP"


def _loss(target, n=len(LABELS)):
    """The public loss call, on zero logits (n, K)."""
    return nn.SoftmaxCrossEntropy()(tg.Tensor(np.zeros((n, K))), target)


# Bad labels shared by the loss and the MLPs: (labels, fragments every message must hold).
# The index is the first offending one, and the value is shown as given (3.0 stays 3.0).
BAD_VALUES = [
    pytest.param([0.0, 1.5, 2.0, 0.0], ("must hold integer class labels in 0..2",
                                        "non-integral value 1.5 at index 1"), id="non-integral"),
    pytest.param([0.0, 1.0, np.nan, 0.0], ("non-integral value nan at index 2",), id="nan"),
    pytest.param([0.0, 1.0, 2.0, np.inf], ("non-integral value inf at index 3",), id="inf"),
    pytest.param([0, -1, -2, 0], ("contains label -1 at index 1", "integers in 0..2"),
                 id="negative"),
    pytest.param([0, 1, 3, 5], ("contains label 3 at index 2", "integers in 0..2"), id="== K"),
    pytest.param([0.0, 1.0, 2.0, 7.0], ("contains label 7.0 at index 3", "integers in 0..2"),
                 id="float >= K"),
    # Too large for int64: must be reported as itself, not as the value the cast wraps to.
    pytest.param([0.0, 1e30, 0.0, 0.0], ("contains label 1e+30 at index 1",), id="huge float"),
]


# ------------------------------------------------------------------ the helper
def test_helper_returns_int64_labels_and_accepts_integral_floats():
    for y in ([0, 2, 1], np.array([0.0, 2.0, 1.0]), np.array([0, 2, 1], dtype=np.uint8),
              np.array([0.0, 2.0, -0.0], dtype=np.float32)):
        labels = check_class_labels(y, 3, "caller")
        assert labels.dtype == np.int64
        np.testing.assert_array_equal(labels, np.asarray(y).astype(np.int64))


def test_helper_names_caller_argument_and_reason():
    with pytest.raises(ValueError) as info:
        check_class_labels([0, 4], 3, "Caller.method", name="target",
                           classes_from="the table has 3 rows")
    assert str(info.value) == ("Caller.method: target contains label 4 at index 1 but the "
                               "table has 3 rows, so labels must be integers in 0..2")
    with pytest.raises(ValueError, match=r"^w: y contains label 3 at index 0 but there are 3 "
                                         r"classes, so labels must be integers in 0\.\.2$"):
        check_class_labels([3], 3, "w")


def test_helper_bool_only_when_allowed():
    with pytest.raises(TypeError, match=r"^w: y must hold integer class labels in 0\.\.1 "
                                        r"\(an integer array, or a float array of whole "
                                        r"numbers\), got dtype bool$"):
        check_class_labels([True, False], 2, "w")
    np.testing.assert_array_equal(check_class_labels([True, False], 2, "w", allow_bool=True),
                                  [1, 0])


# ------------------------------------------------------- SoftmaxCrossEntropy
@pytest.mark.parametrize("labels, fragments", BAD_VALUES)
def test_loss_rejects_bad_label_values(labels, fragments):
    with pytest.raises(ValueError) as info:
        _loss(np.array(labels))
    msg = str(info.value)
    assert msg.startswith("SoftmaxCrossEntropy: target "), msg
    for fragment in fragments:
        assert fragment in msg, msg
    if "contains label" in msg:
        assert "the logits have 3 columns (classes)" in msg, msg


@pytest.mark.parametrize("target, dtype", [
    (np.array(list("abcd")), "<U1"),
    (np.array([0j, 1j, 2j, 0j]), "complex128"),
    (np.array([True, False, True, False]), "bool"),
])
def test_loss_rejects_non_numeric_and_bool_labels(target, dtype):
    with pytest.raises(TypeError) as info:
        _loss(target)
    msg = str(info.value)
    assert msg.startswith("SoftmaxCrossEntropy: target") and f"dtype {dtype}" in msg, msg


@pytest.mark.parametrize("n_labels", [3, 5])
def test_loss_rejects_labels_of_the_wrong_length(n_labels):
    with pytest.raises(ValueError, match=rf"^SoftmaxCrossEntropy: {n_labels} labels for 4 "
                                         r"samples; expected one label per row"):
        _loss(np.zeros(n_labels, dtype=int))


@pytest.mark.parametrize("logits_dtype", [np.float64, np.float32])
def test_loss_accepts_integral_float_labels_and_keeps_the_logits_dtype(logits_dtype):
    loss_fn = nn.SoftmaxCrossEntropy()
    shape = (len(LABELS), K)
    from_ints = loss_fn.check_targets(LABELS, shape, logits_dtype)
    for same in (LABELS.astype(np.float64), LABELS.astype(np.float32), LABELS.astype(np.uint8),
                 list(LABELS)):
        rows = loss_fn.check_targets(same, shape, logits_dtype)
        assert rows.dtype == logits_dtype
        np.testing.assert_array_equal(rows, from_ints)
    np.testing.assert_array_equal(from_ints, np.eye(K)[LABELS])
    z = np.random.default_rng(0).normal(size=shape)
    assert (float(_loss_value(z, LABELS.astype(float))) == float(_loss_value(z, LABELS)))


def _loss_value(z, target):
    return nn.SoftmaxCrossEntropy()(tg.Tensor(z), target).item()


# --------------------------------------------------------------------- the MLPs
@pytest.mark.parametrize("MLP", MLPS, ids=MLP_IDS)
@pytest.mark.parametrize("labels, fragments", BAD_VALUES)
def test_mlp_rejects_bad_label_values(MLP, labels, fragments):
    for call, method in ((lambda m, y: m.fit(X, y, epochs=1, learning_rate=0.1), "fit"),
                         (lambda m, y: m.score(X, y), "score")):
        with pytest.raises(ValueError) as info:
            call(_classifier(MLP), np.array(labels))
        msg = str(info.value)
        assert msg.startswith(f"{_where(MLP)}.{method}: y "), msg
        for fragment in fragments:
            assert fragment in msg, msg
        if "contains label" in msg:
            assert "the output layer has 3 units" in msg, msg


@pytest.mark.parametrize("MLP", MLPS, ids=MLP_IDS)
def test_mlp_rejects_non_numeric_labels(MLP):
    for y, what in ((np.array(list("abca")), "dtype <U1 (strings)"),
                    (np.array([0j, 1j, 2j, 0j]), "dtype complex128")):
        with pytest.raises(TypeError) as info:
            _classifier(MLP).fit(X, y, epochs=1, learning_rate=0.1)
        msg = str(info.value)
        assert msg.startswith(f"{_where(MLP)}.fit: y must be a numeric array") and what in msg


@pytest.mark.parametrize("MLP", MLPS, ids=MLP_IDS)
def test_mlp_rejects_labels_of_the_wrong_length(MLP):
    with pytest.raises(ValueError, match=rf"^{re.escape(_where(MLP))}\.fit: X has 4 samples but "
                                         r"y has 3; they must match"):
        _classifier(MLP).fit(X, LABELS[:3], epochs=1, learning_rate=0.1)


@pytest.mark.parametrize("MLP", MLPS, ids=MLP_IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mlp_accepts_integral_float_and_bool_labels_in_the_model_dtype(MLP, dtype):
    model = _classifier(MLP, dtype)
    expected = np.eye(K, dtype=dtype)[LABELS]
    # _prepare_targets is what fit, score and loss run on y; its result is what trains.
    for same in (LABELS, LABELS.astype(np.float64), LABELS.astype(np.float32), list(LABELS)):
        targets = model._prepare_targets(same, "test", len(LABELS))
        assert targets.dtype == dtype
        np.testing.assert_array_equal(targets, expected)
    # The MLPs have always read a bool y as the classes 0 and 1 (one_hot and the loss refuse it).
    flags = np.array([True, False, False, True])
    np.testing.assert_array_equal(model._prepare_targets(flags, "test", 4),
                                  np.eye(K, dtype=dtype)[flags.astype(int)])

    trained = []
    for y in (LABELS, LABELS.astype(np.float64)):
        m = _classifier(MLP, dtype)
        m.fit(X, y, epochs=2, learning_rate=0.1)
        trained.append(m.predict_proba(X))
    np.testing.assert_array_equal(trained[0], trained[1])


# ------------------------------------------------------- the three agree
@pytest.mark.parametrize("labels, fragments", BAD_VALUES)
def test_one_hot_loss_and_mlps_agree_on_what_is_wrong(labels, fragments):
    """The same bad labels give the same exception type and the same core message
    (everything after the caller's prefix up to "but") from every entry point."""
    calls = {
        "one_hot": lambda y: one_hot(y, n_classes=K),
        "loss": _loss,
        "nn.MLP": lambda y: _classifier(nn.MLP).score(X, y),
        "manual": lambda y: _classifier(nn.manual.MLP).score(X, y),
    }
    cores = {}
    for name, call in calls.items():
        with pytest.raises(ValueError) as info:
            call(np.array(labels))
        msg = str(info.value)
        # "<where>: <name> <what is wrong>[ but <why>...]": drop the caller and the name.
        core = msg.split(": ", 1)[1].split(" ", 1)[1].split(" but ")[0]
        cores[name] = core
    assert len(set(cores.values())) == 1, cores


def test_a_column_of_class_labels_is_pointed_to_ravel():
    # labels of shape (n, 1) were only "one-hot targets of shape (4, 1) do not match"
    import tinygraph as tg
    y = np.array([[0], [1], [2], [1]])
    Z = tg.Tensor(np.zeros((4, 3)), requires_grad=True)
    with pytest.raises(ValueError, match=r"do not match the logits' shape \(4, 3\) \(a column "
                                         r"of class labels\? pass y.ravel\(\), shape \(n,\)\)"):
        nn.SoftmaxCrossEntropy()(Z, y)
    for MLP in (nn.MLP, nn.manual.MLP):
        with pytest.raises(ValueError, match=r"one-hot targets of shape \(n, 3\) \(a column of "
                                             r"class labels\? pass y.ravel\(\)\)"):
            MLP([2, 3], ["softmax"], seed=0).fit(np.ones((4, 2)), y, epochs=1,
                                                  learning_rate=0.1)
    assert len(nn.MLP([2, 3], ["softmax"], seed=0).fit(np.ones((4, 2)), y.ravel(), epochs=1,
                                                       learning_rate=0.1)) == 1
