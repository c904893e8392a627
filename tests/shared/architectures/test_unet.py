import keras
import numpy as np
import pytest

from shared.architectures.unet import UNet, apply_attention_gate
from tests.shared.architectures.harness import run_builder_test

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 16, 16, 1)).astype("float32")
MASK = (RNG.uniform(size=(2, 16, 16)) > 0.5).astype("int32")
TINY = dict(input_shape=(16, 16, 1), depth=2, base_filters=4)

SPECS = {
    "unet": lambda: dict(
        init_kwargs=dict(TINY, num_classes=3, attention_gates=True),
        x=X,
        expected_output_shape=(2, 16, 16, 3),
        y=np.stack([MASK, 1 - MASK, 2 * MASK], -1).argmax(-1),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
}


@pytest.mark.parametrize("attention_gates", [False, True])
def test_builder_binary_masks(attention_gates):
    model = run_builder_test(
        UNet, dict(TINY, num_classes=1, attention_gates=attention_gates, batch_norm=False),
        X, (2, 16, 16, 1), y=MASK[..., None].astype("float32"),
        loss=keras.losses.BinaryCrossentropy(),
    )
    out = np.asarray(model(X))
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_softmax_over_classes_and_dynamic_size():
    model = UNet(input_shape=(None, None, 1), depth=2, base_filters=4, num_classes=3)
    out = model(np.zeros((1, 24, 32, 1), "float32"))
    assert out.shape == (1, 24, 32, 3) and out.dtype == "float32"
    np.testing.assert_allclose(np.sum(out, -1), 1.0, atol=1e-5)


def test_param_count_and_attention_gates():
    plain = UNet(**TINY, num_classes=2, batch_norm=False)
    # down1 (1→4, 4→4), down2 (4→8, 8→8), bottleneck (8→16, 16→16),
    # up2: upconv 16→8 (2x2), convs 16→8, 8→8; up1: upconv 8→4, convs 8→4, 4→4; head 4→2.
    conv = lambda k, i, o: k * k * i * o + o
    expected = (conv(3, 1, 4) + conv(3, 4, 4) + conv(3, 4, 8) + conv(3, 8, 8)
                + conv(3, 8, 16) + conv(3, 16, 16)
                + conv(2, 16, 8) + conv(3, 16, 8) + conv(3, 8, 8)
                + conv(2, 8, 4) + conv(3, 8, 4) + conv(3, 4, 4) + conv(1, 4, 2))
    assert plain.count_params() == expected
    gated = UNet(**TINY, num_classes=2, batch_norm=False, attention_gates=True)
    # Each gate: theta (F→F/2), phi (F→F/2), psi (F/2→1), all 1x1 with bias.
    gates = sum(2 * conv(1, f, f // 2) + conv(1, f // 2, 1) for f in (8, 4))
    assert gated.count_params() == expected + gates
    assert sum("gate_scale" in l.name for l in gated.layers) == 2


def test_attention_gate_scales_skip_into_unit_interval():
    skip, gating = keras.Input((4, 4, 3)), keras.Input((4, 4, 5))
    gate = keras.Model([skip, gating], apply_attention_gate(skip, gating, 2))
    s = np.abs(RNG.normal(size=(1, 4, 4, 3))).astype("float32") + 0.1
    out = np.asarray(gate([s, RNG.normal(size=(1, 4, 4, 5)).astype("float32")]))
    ratio = out / s
    assert out.shape == s.shape
    assert (ratio > 0).all() and (ratio < 1).all()
    np.testing.assert_allclose(ratio, ratio[..., :1].repeat(3, -1), rtol=1e-5)  # one coefficient per pixel


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(20, 20, 1), depth=3), "divisible"),
        (dict(depth=0), "depth"),
        (dict(base_filters=0), "base_filters"),
        (dict(num_classes=0), "num_classes"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        UNet(**kwargs)
    assert "Received" in str(info.value)


def test_a_classifier_trunk_as_the_encoder():
    """`backbone`: the cnn_bn trunk's two downsamplings set the depth; its layers keep their
    names (a classify run's weights load by name); config and .keras round-trips hold."""
    x = RNG.normal(size=(2, 16, 16, 3)).astype("float32")
    model = run_builder_test(UNet, dict(input_shape=(16, 16, 3), depth=4, base_filters=4, num_classes=3,
                                        backbone="cnn_bn"), x, (2, 16, 16, 3), y=MASK,
                             loss=keras.losses.SparseCategoricalCrossentropy())
    names = [layer.name for layer in model.get_layer("unet_backbone").layers]
    assert model.depth == 2 and "cnn_block1_conv1" in names and "cnn_block2_bn1" in names
    with pytest.raises(ValueError, match="`backbone` must be one of"):
        UNet(input_shape=(16, 16, 3), backbone="simple_cnn")  # "valid" padding: maps would not halve
