import keras
import numpy as np
import pytest

from shared import architectures
from shared.architectures.mlp import MLP
from tests.shared.architectures.harness import run_builder_test

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 6)).astype("float32")

SPECS = {
    "mlp": lambda: dict(
        init_kwargs=dict(input_shape=(6,), widths=(8, 4), num_classes=3),
        x=X,
        expected_output_shape=(4, 3),
        y=np.array([0, 1, 2, 1]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
}


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "tanh", "gelu", "swish", "elu", "selu"])
@pytest.mark.parametrize("normalization", [None, "batch", "layer"])
def test_builder_activations_and_normalization(activation, normalization):
    run_builder_test(
        MLP,
        dict(input_dim=6, widths=(5,), activation=activation, normalization=normalization,
             dropout=0.1, l2=1e-3, output_units=2),
        X, (4, 2),
    )


def test_param_count_and_output_activations():
    m = MLP(input_dim=6, widths=(8, 4), num_classes=3)
    assert m.count_params() == (6 * 8 + 8) + (8 * 4 + 4) + (4 * 3 + 3)
    np.testing.assert_allclose(np.sum(m(X), axis=-1), 1.0, atol=1e-5)
    binary = MLP(input_dim=6, widths=(8,), num_classes=1)
    assert binary.layers[-1].get_config()["activation"] == "sigmoid"
    reg = MLP(input_dim=6, widths=(8,), output_units=2)
    assert reg.layers[-1].get_config()["activation"] == "linear"
    assert reg.layers[-1].dtype_policy.compute_dtype == "float32"
    features = MLP(input_dim=6, widths=(8, 5))
    assert features(X).shape == (4, 5)
    # BatchNorm replaces the Dense bias.
    bn = MLP(input_dim=6, widths=(8,), normalization="batch")
    assert bn.count_params() == 6 * 8 + 4 * 8


def test_l2_adds_regularization_losses():
    m = MLP(input_dim=6, widths=(8, 4), l2=0.1, output_units=1)
    m(X)
    assert len(m.losses) == 2 and all(float(l) > 0 for l in m.losses)
    assert not MLP(input_dim=6, widths=(8, 4), output_units=1).losses


def test_image_inputs_are_flattened_and_variants_build():
    m = architectures.build("mlp_mnist")
    assert m(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 10)
    assert architectures.build("mlp_regressor")(np.zeros((3, 10), "float32")).shape == (3, 1)
    assert MLP.from_config(m.get_config()).get_config() == m.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(), "input_shape"),
        (dict(input_dim=4, input_shape=(4,)), "only one"),
        (dict(input_shape=(None,)), "input_shape"),
        (dict(input_dim=4, activation="relux"), "activation"),
        (dict(input_dim=4, normalization="group"), "normalization"),
        (dict(input_dim=4, widths=(0,)), "widths"),
        (dict(input_dim=4, num_classes=2, output_units=1), "at most one"),
        (dict(input_dim=4, dropout=-0.1), "dropout"),
        (dict(input_dim=4, l2=-1.0), "l2"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        MLP(**kwargs)
    assert "Received" in str(info.value)
