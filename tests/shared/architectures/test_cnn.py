import keras
import numpy as np
import pytest

from shared import architectures
from shared.architectures.cnn import CNN
from tests.shared.architectures.harness import run_builder_test

RNG = np.random.default_rng(0)
X28 = RNG.normal(size=(2, 28, 28, 1)).astype("float32")

SPECS = {
    "cnn": lambda: dict(
        init_kwargs=dict(input_shape=(12, 12, 1), filters=(4, 6), num_classes=3, dropout=0.0),
        x=RNG.normal(size=(2, 12, 12, 1)).astype("float32"),
        expected_output_shape=(2, 3),
        y=np.array([0, 2]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
}


def test_simple_cnn_matches_keras_io_param_count():
    model = architectures.build("simple_cnn")
    assert model.count_params() == 34_826
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["InputLayer", "Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D",
                     "Flatten", "Dropout", "Dense"]
    assert model(X28).shape == (2, 10)
    np.testing.assert_allclose(np.sum(model(X28), axis=-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(pooling="flatten", dropout=0.0), (2, 5 * 5 * 64)),
        (dict(pooling="avg"), (2, 64)),
        (dict(pooling="max", filters=(8,)), (2, 8)),
        (dict(pooling=None, filters=(8,), padding="same"), (2, 14, 14, 8)),
        (dict(pooling=None, filters=(8,), pool=None), (2, 26, 26, 8)),
        (dict(pooling="avg", filters=(4, 4), convs_per_block=2, padding="same",
              batch_norm=True, pool="avg", num_classes=5), (2, 5)),
    ],
)
def test_output_shapes(kwargs, shape):
    model = CNN(input_shape=(28, 28, 1), **kwargs)
    assert tuple(model(X28).shape) == shape


def test_builder_with_batch_norm():
    run_builder_test(
        CNN,
        dict(input_shape=(16, 16, 3), filters=(4, 8), convs_per_block=2, padding="same",
             batch_norm=True, pooling="avg", num_classes=2, head_activation="sigmoid"),
        RNG.normal(size=(3, 16, 16, 3)).astype("float32"),
        (3, 2),
    )


def test_dynamic_spatial_dims_with_global_pooling():
    model = CNN(input_shape=(None, None, 3), filters=(4,), pooling="avg")
    assert model(np.zeros((1, 20, 30, 3), "float32")).shape == (1, 4)
    assert model(np.zeros((1, 9, 9, 3), "float32")).shape == (1, 4)


def test_mixed_precision_head_is_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = CNN(input_shape=(12, 12, 1), filters=(4,), num_classes=3)
        out = model(np.zeros((1, 12, 12, 1), "float32"))
        assert out.dtype == "float32"
        assert model.layers[1].compute_dtype == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=(0,)), "filters"),
        (dict(activation="nope"), "activation"),
        (dict(pool="min"), "pool"),
        (dict(pooling="sum"), "pooling"),
        (dict(input_shape=(None, None, 1)), "static"),
        (dict(input_shape=(28, 28)), "input_shape"),
        (dict(num_classes=0), "num_classes"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        CNN(**kwargs)
    assert "Received" in str(info.value)


def test_dense_units_add_hidden_layers():
    base = CNN(input_shape=(28, 28, 1), filters=(8,), pooling="avg", num_classes=10)
    deep = CNN(input_shape=(28, 28, 1), filters=(8,), pooling="avg", num_classes=10, dense_units=(16, 12))
    assert deep.count_params() - base.count_params() == (8 * 16 + 16) + (16 * 12 + 12) + (12 * 10 + 10) - (8 * 10 + 10)
    assert [l.units for l in deep.layers if isinstance(l, keras.layers.Dense)] == [16, 12, 10]
    assert CNN.from_config(deep.get_config()).get_config() == deep.get_config()
    with pytest.raises(ValueError, match="Received: dense_units"):
        CNN(input_shape=(28, 28, 1), dense_units=(0,))


def test_cnn_bn_default_classifier_variant():
    model = architectures.build("cnn_bn")
    assert model.count_params() == 50_474
    assert tuple(model(X28).shape) == (2, 10)
