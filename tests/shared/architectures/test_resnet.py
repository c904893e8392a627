import keras
import numpy as np
import pytest

from shared import architectures
from shared.architectures.resnet import ResNet, apply_basic_block, apply_bottleneck_block
from tests.shared.architectures.harness import run_builder_test

RNG = np.random.default_rng(0)
TINY = dict(input_shape=(16, 16, 3), block="basic", stack_depths=(1, 1), widths=(4, 8),
            stem="small", stem_filters=4)

SPECS = {
    "resnet": lambda: dict(
        init_kwargs=dict(TINY, num_classes=3),
        x=RNG.normal(size=(2, 16, 16, 3)).astype("float32"),
        expected_output_shape=(2, 3),
        y=np.array([0, 2]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
}


def _sorted_shapes(model):
    return sorted(tuple(w.shape) for w in model.weights)


@pytest.mark.parametrize(
    "variant, reference, params",
    [("resnet50", keras.applications.ResNet50, 25_636_712),
     ("resnet50_v2", keras.applications.ResNet50V2, 25_613_800)],
)
def test_matches_keras_applications(variant, reference, params):
    model = architectures.build(variant)  # 224x224x3, 1000 classes
    ref = reference(weights=None)
    assert model.count_params() == ref.count_params() == params
    assert _sorted_shapes(model) == _sorted_shapes(ref)
    out = model(np.zeros((1, 224, 224, 3), "float32"))
    assert out.shape == (1, 1000) and out.dtype == "float32"


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("block", ["basic", "bottleneck"])
def test_builder(version, block):
    run_builder_test(
        ResNet,
        dict(TINY, version=version, block=block, stack_depths=(1, 2), num_classes=4,
             stem="imagenet" if block == "basic" else "small"),
        RNG.normal(size=(2, 16, 16, 3)).astype("float32"),
        (2, 4),
        y=np.array([1, 3]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    )


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        (dict(pooling=None), (2, 8, 8, 8)),  # small stem: no stem downsampling
        (dict(pooling=None, stem="imagenet"), (2, 2, 2, 8)),  # /4 stem, /2 stack
        (dict(pooling=None, block="bottleneck"), (2, 8, 8, 32)),  # 4x expansion
        (dict(pooling="max", version=2), (2, 8)),
        (dict(input_shape=(None, None, 3)), (2, 8)),
    ],
)
def test_feature_shapes(kwargs, shape):
    model = ResNet(**{**TINY, **kwargs})
    assert tuple(model(RNG.normal(size=(2, 16, 16, 3)).astype("float32")).shape) == shape


def test_resnet_small_for_28px():
    model = architectures.build("resnet_small")
    assert model.input_shape == (None, 28, 28, 1)
    assert not any(isinstance(l, keras.layers.MaxPooling2D) for l in model.layers)
    assert model(np.zeros((2, 28, 28, 1), "float32")).shape == (2, 10)
    features = architectures.build("resnet_small", num_classes=None, pooling=None)
    assert features(np.zeros((1, 28, 28, 1), "float32")).shape == (1, 7, 7, 128)


def test_blocks_shapes_and_projection():
    x = keras.Input((8, 8, 16))
    assert tuple(apply_basic_block(x, 16, name="a").shape) == (None, 8, 8, 16)
    assert tuple(apply_basic_block(x, 32, stride=2, name="b").shape) == (None, 4, 4, 32)
    assert tuple(apply_bottleneck_block(x, 4, name="c").shape) == (None, 8, 8, 16)
    y = apply_bottleneck_block(x, 8, stride=2, preact=True, name="d")
    assert tuple(y.shape) == (None, 4, 4, 32)
    # Identity shortcut has no projection conv; a width change adds one.
    identity = keras.Model(x, apply_basic_block(x, 16, name="e"))
    projected = keras.Model(x, apply_basic_block(x, 32, name="f"))
    assert identity.count_params() == 2 * (9 * 16 * 16 + 16) + 2 * 4 * 16
    assert projected.count_params() - (9 * 16 * 32 + 32 + 9 * 32 * 32 + 32 + 2 * 4 * 32) == 16 * 32 + 32 + 4 * 32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(version=3), "version"),
        (dict(block="wide"), "block"),
        (dict(widths=(4,)), "widths"),
        (dict(stack_depths=(0, 1)), "stack_depths"),
        (dict(stem="tiny"), "stem"),
        (dict(pooling=None, num_classes=3), "pooling"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        ResNet(**{**TINY, **kwargs})
    assert "Received" in str(info.value)
