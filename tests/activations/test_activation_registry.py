"""activations.get / from_config / NAMES."""

import numpy as np
import pytest

import activations
from activations import GELU, NAMES, LeakyReLU, ReLU, SiLU, Sigmoid, Tanh, from_config, get

EXPECTED = {
    "relu": (ReLU, {}),
    "leaky_relu": (LeakyReLU, {"alpha": 0.01}),
    "leakyrelu": (LeakyReLU, {"alpha": 0.01}),
    "sigmoid": (Sigmoid, {}),
    "tanh": (Tanh, {}),
    "gelu": (GELU, {"approximate": False}),
    "gelu_tanh": (GELU, {"approximate": True}),
    "silu": (SiLU, {}),
    "swish": (SiLU, {}),
}


def test_names_lists_every_accepted_name():
    assert isinstance(NAMES, tuple)
    assert set(NAMES) == set(EXPECTED)
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_get_by_name(name):
    cls, config = EXPECTED[name]
    act = get(name)
    assert type(act) is cls
    assert act.config() == config
    assert act.cache is None


@pytest.mark.parametrize("name", ["ReLU", "RELU", "LeakyReLU", "Leaky_ReLU", "GELU_TANH", "Swish", "SiLU", "TanH"])
def test_get_is_case_insensitive(name):
    assert type(get(name)) is type(get(name.lower()))


@pytest.mark.parametrize("name", [" relu", "relu ", "\tLeakyReLU\n", " gelu_tanh "])
def test_get_takes_names_with_surrounding_whitespace(name):
    # the MLPs took "relu " and nn.ActivationLayer / activations.get refused it
    assert type(get(name)) is type(get(name.strip()))


def test_get_is_exported_at_package_level():
    assert activations.get is get
    assert activations.from_config is from_config


def test_get_returns_a_new_instance_each_time():
    assert get("relu") is not get("relu")


def test_get_passes_parameters_to_the_constructor():
    act = get("leaky_relu", alpha=0.2)
    assert isinstance(act, LeakyReLU) and act.alpha == 0.2
    assert get("gelu", approximate=True).approximate is True
    assert get("gelu_tanh", approximate=True).approximate is True


def test_get_rejects_parameters_contradicting_the_name():
    with pytest.raises(ValueError, match="approximate"):
        get("gelu_tanh", approximate=False)


def test_get_rejects_parameters_the_class_does_not_take():
    with pytest.raises(TypeError, match="ReLU got unexpected parameter"):
        get("relu", alpha=0.1)
    with pytest.raises(TypeError, match="beta"):
        get("leaky_relu", beta=0.1)


def test_get_returns_an_instance_unchanged():
    act = LeakyReLU(alpha=0.3)
    act.forward(np.ones(2))
    assert get(act) is act
    assert act.cache is not None  # untouched
    with pytest.raises(TypeError, match="parameters"):
        get(act, alpha=0.1)


@pytest.mark.parametrize("name", ["softmax", "", "re lu", "gelu-tanh"])
def test_get_rejects_unknown_names_listing_valid_ones(name):
    with pytest.raises(ValueError, match="unknown activation") as error:
        get(name)
    message = str(error.value)
    assert repr(name) in message
    for valid in NAMES:
        assert valid in message


@pytest.mark.parametrize("bad", [None, 3, ReLU, ["relu"]])
def test_get_rejects_non_names(bad):
    with pytest.raises(TypeError):
        get(bad)


@pytest.mark.parametrize(
    "act",
    [ReLU(), LeakyReLU(), LeakyReLU(alpha=0.25), Sigmoid(), Tanh(), GELU(), GELU(approximate=True), SiLU()],
    ids=repr,
)
def test_from_config_round_trip(act):
    rebuilt = from_config(act.name, act.config())
    assert rebuilt is not act
    assert type(rebuilt) is type(act)
    assert rebuilt.config() == act.config()
    assert repr(rebuilt) == repr(act)
    x = np.linspace(-3, 3, 13)
    np.testing.assert_array_equal(rebuilt.forward(x), act.forward(x))


def test_from_config_accepts_a_plain_mapping_and_validates_it():
    assert from_config("leaky_relu", {"alpha": 0.5}).alpha == 0.5
    with pytest.raises(ValueError, match="alpha"):
        from_config("leaky_relu", {"alpha": float("nan")})
    with pytest.raises(ValueError, match="unknown activation"):
        from_config("nope", {})


def test_from_config_names_a_config_that_is_not_a_dict():
    with pytest.raises(TypeError, match=r"^from_config: config must be a dict of the "
                                        r"activation's parameters"):
        activations.from_config("relu", None)


def test_a_ragged_list_input_is_named():
    with pytest.raises(TypeError, match=r"^Tanh\.forward expects an array of real numbers, got "
                                        r"a list numpy cannot convert"):
        activations.Tanh().forward([[1.0, 2.0], [3.0]])
