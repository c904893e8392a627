import keras
import numpy as np
import pytest

from shared import architectures
from shared.architectures.detection import Detector, apply_detection_head, make_anchors
from tests.shared.architectures.harness import run_builder_test

RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 32, 32, 3)).astype("float32")
TINY = dict(input_shape=(32, 32, 3), num_classes=2, backbone_filters=(4, 4, 6, 8), min_level=2,
            max_level=3, fpn_filters=6, head_convs=1, head_filters=6, anchor_ratios=(1.0, 2.0),
            anchor_scales=(1.0,))
# Levels 2 and 3 of a 32x32 image: 8x8 + 4x4 locations, 2 anchors each.
N_TINY = (64 + 16) * 2


def _mse_dict(y, p):
    mse = keras.losses.MeanSquaredError()
    return mse(y["classes"], p["classes"]) + mse(y["boxes"], p["boxes"])


SPECS = {
    "detection": lambda: dict(
        init_kwargs=TINY,
        x=X,
        expected_output_shape={"classes": (2, N_TINY, 2), "boxes": (2, N_TINY, 4)},
        loss=_mse_dict,
    ),
}


def test_make_anchors_counts_and_positions():
    anchors = make_anchors((64, 48), levels=[3, 4], sizes=[32, 64], ratios=[0.5, 1, 2], scales=[1, 2])
    per = 3 * 2
    assert anchors.shape == ((8 * 6 + 4 * 3) * per, 4) and anchors.dtype == np.float32
    first = anchors[:per]  # level 3, cell (0, 0): centred at (4, 4)
    np.testing.assert_allclose((first[:, :2] + first[:, 2:]) / 2, 4.0)
    w, h = first[:, 2] - first[:, 0], first[:, 3] - first[:, 1]
    np.testing.assert_allclose(w * h, np.tile([32**2, 64**2], 3), rtol=1e-5)  # area = (size*scale)^2
    np.testing.assert_allclose(w / h, np.repeat([0.5, 1, 2], 2), rtol=1e-5)  # width/height = ratio
    # Row-major: the next location is one stride (8 px) to the right.
    np.testing.assert_allclose(anchors[per:2 * per, 0] - first[:, 0], 8.0)
    # After 6 columns the next row starts one stride (8 px) lower.
    np.testing.assert_allclose(anchors[6 * per, 1] - first[0, 1], 8.0)
    # Level 4 starts after all level-3 anchors, centred at (8, 8), size 64.
    l4 = anchors[8 * 6 * per]
    np.testing.assert_allclose((l4[:2] + l4[2:]) / 2, 8.0)
    np.testing.assert_allclose(l4[2] - l4[0], 64 * np.sqrt(0.5), rtol=1e-5)
    # Odd sizes round the grid up.
    assert len(make_anchors((33, 33), [3], [32], [1.0], [1.0])) == 5 * 5
    with pytest.raises(ValueError, match="Received"):
        make_anchors((32, 32), [3, 4], [32])


def test_outputs_match_anchor_count_and_prior():
    model = Detector(**TINY)
    out = model(X)
    assert len(model.anchors()) == N_TINY == out["boxes"].shape[1] == out["classes"].shape[1]
    assert out["classes"].dtype == "float32" and out["boxes"].dtype == "float32"
    # Focal-loss init: every class starts near the prior probability.
    np.testing.assert_allclose(np.mean(out["classes"]), 0.01, atol=0.005)
    variant = architectures.build("retinanet_small")
    assert variant.output["boxes"].shape[1] == len(variant.anchors()) == (16 * 16 + 8 * 8) * 9


def test_head_weights_are_shared_across_levels():
    feats = [keras.Input((8, 8, 6)), keras.Input((4, 4, 6)), keras.Input((2, 2, 6))]
    classes, boxes = apply_detection_head(feats, num_classes=3, num_anchors=2, convs=1, filters=5)
    head = keras.Model(feats, [classes, boxes])
    assert classes.shape == (None, (64 + 16 + 4) * 2, 3) and boxes.shape == (None, 84 * 2, 4)
    conv = lambda i, o: 9 * i * o + o
    # Independent of the number of levels: one tower + predictor per subnet.
    assert head.count_params() == conv(6, 5) + conv(5, 2 * 3) + conv(6, 5) + conv(5, 2 * 4)


def test_builder_with_three_levels():
    run_builder_test(
        Detector, dict(TINY, min_level=2, max_level=4), X,
        {"classes": (2, (64 + 16 + 4) * 2, 2), "boxes": (2, (64 + 16 + 4) * 2, 4)}, loss=_mse_dict,
        train=False,
    )


def test_a_classifier_trunk_gives_the_first_levels():
    """cnn_bn's trunk reaches stride 4 (level 2); an own stage adds level 3."""
    model = run_builder_test(Detector, dict(TINY, backbone="cnn_bn"), X,
                             {"classes": (2, N_TINY, 2), "boxes": (2, N_TINY, 4)}, loss=_mse_dict, train=False)
    names = {layer.name for layer in model.layers}
    assert "detector_backbone" in names and "detector_stage3_conv1" in names and "detector_stage2_conv1" not in names


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(input_shape=(36, 36, 3)), "divisible"),
        (dict(min_level=3, max_level=2), "min_level"),
        (dict(max_level=5), "max_level"),
        (dict(num_classes=0), "num_classes"),
        (dict(anchor_ratios=()), "anchor_ratios"),
        (dict(prior_probability=1.0), "prior_probability"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        Detector(**{**TINY, **kwargs})
    assert "Received" in str(info.value)
