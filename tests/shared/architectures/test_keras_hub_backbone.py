import keras
import keras_hub
import numpy as np
import pytest

from shared import architectures
from shared.architectures.keras_hub_backbone import KerasHubBackbone
from shared.errors import UserError

RNG = np.random.default_rng(0)
TINY_RESNET = dict(
    input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 16],
    stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
    image_shape=[16, 16, 3],
)
X = RNG.normal(size=(2, 16, 16, 3)).astype("float32")

SPECS = {
    "keras_hub_backbone": lambda: dict(
        init_kwargs=dict(backbone="keras_hub:ResNetBackbone", backbone_kwargs=TINY_RESNET,
                         num_classes=3),
        x=X,
        expected_output_shape=(2, 3),
        y=np.array([0, 2]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
}


def test_config_round_trip_records_resolved_backbone():
    model = KerasHubBackbone(backbone_kwargs=TINY_RESNET, pooling="max", dropout=0.2, num_classes=4)
    config = model.get_config()
    assert config["backbone"] == "keras_hub:ResNetBackbone"
    assert config["backbone_kwargs"]["stackwise_num_filters"] == [64, 16]
    assert "dtype" not in config["backbone_kwargs"]
    clone = KerasHubBackbone.from_config(config)
    assert clone.get_config() == config
    assert isinstance(clone.backbone, keras_hub.models.ResNetBackbone)
    assert clone.count_params() == model.count_params()
    # Features without a head: the backbone's channels; no pooling: its feature map.
    assert KerasHubBackbone(backbone_kwargs=TINY_RESNET)(X).shape == (2, 16)
    fmap = KerasHubBackbone(backbone_kwargs=TINY_RESNET, pooling=None)(X)
    assert fmap.shape == tuple([2]) + tuple(model.backbone.output.shape[1:])


def test_preset_dir_loads_weights(tmp_path):
    source = keras_hub.models.ResNetBackbone(**TINY_RESNET)
    source.save_to_preset(str(tmp_path))
    model = KerasHubBackbone(preset_dir=str(tmp_path), pooling=None)
    np.testing.assert_allclose(model(X), source(X), atol=1e-5)
    config = model.get_config()
    assert config["preset_dir"] is None and config["backbone"] == "keras_hub:ResNetBackbone"
    # The config alone rebuilds the architecture (weights travel in .keras files).
    assert KerasHubBackbone.from_config(config).count_params() == source.count_params()


def test_missing_preset_dir_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="preset_dir") as info:
        KerasHubBackbone(preset_dir=str(tmp_path / "nope"))
    assert "Received" in str(info.value)


def test_variant_builds():
    model = architectures.build("hub_resnet_tiny")
    assert model(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(backbone="ResNetBackbone"), "keras_hub:"),
        (dict(backbone="keras_hub:ResNetImageClassifier"), "backbone"),
        (dict(backbone_kwargs=dict(TINY_RESNET, bogus=1)), "backbone_kwargs"),
        (dict(backbone_kwargs=TINY_RESNET, pooling="sum"), "pooling"),
        (dict(backbone_kwargs=TINY_RESNET, preset_dir="x"), "not both"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        KerasHubBackbone(**kwargs)
    assert "Received" in str(info.value)
