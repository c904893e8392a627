import keras
import numpy as np
import pytest

from shared import architectures
from shared.architectures.video import FramesAsBatch, VideoClassifier, apply_r2plus1d_block
from tests.shared.architectures.harness import run_builder_test

RNG = np.random.default_rng(0)
CLIPS = RNG.normal(size=(2, 4, 8, 8, 1)).astype("float32")
TINY = dict(input_shape=(4, 8, 8, 1), filters=(3, 4), lstm_units=5)

SPECS = {
    "video": lambda: dict(
        init_kwargs=dict(TINY, kind="r2plus1d", num_classes=3),
        x=CLIPS,
        expected_output_shape=(2, 3),
        y=np.array([0, 2]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
}


@pytest.mark.parametrize("kind, features", [("cnn_lstm", 5), ("conv_lstm", 4), ("r2plus1d", 4)])
def test_builder_kinds(kind, features):
    model = run_builder_test(VideoClassifier, dict(TINY, kind=kind), CLIPS, (2, features))
    head = VideoClassifier(**TINY, kind=kind, num_classes=6)
    np.testing.assert_allclose(np.sum(head(CLIPS), -1), 1.0, atol=1e-5)
    assert head.count_params() == model.count_params() + features * 6 + 6


def test_layer_kinds_and_param_counts():
    lstm = VideoClassifier(**TINY, kind="cnn_lstm")
    assert any(isinstance(l, FramesAsBatch) for l in lstm.layers)  # frames folded into the batch
    # convs 1→3, 3→4 (3x3, bias); each frame's 2x2x4 map flattened; LSTM 16→5.
    assert lstm.count_params() == (9 * 1 * 3 + 3) + (9 * 3 * 4 + 4) + 4 * (5 * (16 + 5) + 5)
    # batch_norm: the convs lose their bias, each gains BN's 4 vectors (2 trainable).
    bn = VideoClassifier(**TINY, kind="cnn_lstm", batch_norm=True)
    assert bn.count_params() == lstm.count_params() - (3 + 4) + 4 * (3 + 4)
    assert sum(isinstance(l, keras.layers.BatchNormalization) for l in bn.layers) == 2
    assert architectures.build("video_cnn_lstm").get_config()["batch_norm"] is True
    conv_lstm = VideoClassifier(**TINY, kind="conv_lstm")
    assert sum(isinstance(l, keras.layers.ConvLSTM2D) for l in conv_lstm.layers) == 2
    r21 = VideoClassifier(**TINY, kind="r2plus1d")
    kernels = [tuple(l.kernel_size) for l in r21.layers if isinstance(l, keras.layers.Conv3D)]
    assert kernels == [(1, 3, 3), (3, 1, 1), (1, 3, 3), (3, 1, 1)]


@pytest.mark.parametrize("kind", ["cnn_lstm", "conv_lstm", "r2plus1d"])
def test_stride_quarters_the_first_feature_map_and_keeps_the_weights(kind):
    strided = VideoClassifier(**TINY, kind=kind, stride=2)
    if kind != "cnn_lstm":  # (its LSTM reads the flattened last map, which the stride shrinks)
        assert strided.count_params() == VideoClassifier(**TINY, kind=kind).count_params()
    first = next(l for l in strided.layers if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv3D,
                                                                   keras.layers.ConvLSTM2D)))
    assert tuple(first.strides)[-2:] == (2, 2) and strided(CLIPS).shape == (2, 4 if kind != "cnn_lstm" else 5)


def test_r2plus1d_block_keeps_time_and_space():
    x = keras.Input((4, 8, 8, 2))
    assert tuple(apply_r2plus1d_block(x, 5, temporal_kernel=2).shape) == (None, 4, 8, 8, 5)


def test_variable_length_clips_and_variants():
    model = VideoClassifier(input_shape=(None, 8, 8, 1), kind="cnn_lstm", filters=(3,), lstm_units=4)
    assert model(RNG.normal(size=(1, 7, 8, 8, 1)).astype("float32")).shape == (1, 4)
    for variant in ("video_cnn_lstm", "video_conv_lstm", "video_r2plus1d"):
        assert architectures.build(variant).output_shape == (None, 10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(kind="c3d"), "kind"),
        (dict(input_shape=(8, 8, 1)), "input_shape"),
        (dict(filters=()), "filters"),
        (dict(lstm_units=0), "lstm_units"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        VideoClassifier(**kwargs)
    assert "Received" in str(info.value)
