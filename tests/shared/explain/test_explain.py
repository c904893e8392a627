"""Grad-CAM / Integrated Gradients on a tiny CNN that must find a coloured square."""

import keras
import numpy as np
import pytest

from shared import architectures
from shared import explain
from shared.errors import UserError

SIZE, SIDE = 32, 8


def squares(n, seed):
    """Dark noisy 32x32 RGB images with one bright 8x8 square; class = the square's colour
    channel. Returns uint8 images, labels and float32 (ymin, xmin, ymax, xmax) boxes."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, (n, SIZE, SIZE, 3)).astype("uint8")
    labels = rng.integers(0, 3, n)
    boxes = np.zeros((n, 4), np.float32)
    for i in range(n):
        r, c = rng.integers(0, SIZE - SIDE + 1, 2)
        images[i, r:r + SIDE, c:c + SIDE] = rng.integers(0, 60, 3)
        images[i, r:r + SIDE, c:c + SIDE, labels[i]] = rng.integers(180, 256)
        boxes[i] = (r, c, r + SIDE, c + SIDE)
    return images, labels, boxes


def classifier(variant, **kwargs):
    """Built like apps/vision/models.py: uint8 -> Rescaling -> nested builder -> softmax."""
    inputs = keras.Input(shape=(SIZE, SIZE, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    backbone = architectures.build(variant, input_shape=(SIZE, SIZE, 3), num_classes=3, **kwargs)
    return keras.Model(inputs, backbone(x), name=f"classify_{variant}")


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = classifier("simple_cnn", filters=(16, 32))
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    images, labels, _ = squares(800, seed=0)
    model.fit(images, labels, epochs=3, batch_size=32, verbose=0)
    return model


@pytest.fixture(scope="module")
def held_out():
    return squares(100, seed=1)


def test_peaks_land_on_the_square(trained, held_out):
    images, labels, boxes = held_out
    assert trained.evaluate(images, labels, verbose=0)[1] >= 0.9
    cam, cam_classes, layer = explain.gradcam(trained, images)
    ig, ig_classes = explain.integrated_gradients(trained, images)
    assert layer == "cnn_block2_conv1"
    np.testing.assert_array_equal(cam_classes, np.argmax(trained.predict(images, verbose=0), -1))
    np.testing.assert_array_equal(ig_classes, cam_classes)
    for heatmaps in (cam, ig):
        rate = explain.pointing_game(heatmaps, boxes)
        shuffled = explain.pointing_game(np.roll(heatmaps, 1, axis=0), boxes)
        assert rate >= 0.8, rate
        assert shuffled <= 0.3 and rate - shuffled >= 0.5, (rate, shuffled)


def test_nested_model_matches_its_unwrapped_backbone(trained, held_out):
    images = held_out[0][:8]
    backbone = trained.layers[-1]
    scaled = images.astype("float32") / 255
    cam, classes, layer = explain.gradcam(trained, images, class_index=1)
    ref_cam, ref_classes, ref_layer = explain.gradcam(backbone, scaled, class_index=1)
    np.testing.assert_allclose(cam, ref_cam, atol=1e-4)
    assert layer == ref_layer and (classes == 1).all() and (ref_classes == 1).all()
    ig, _ = explain.integrated_gradients(trained, images, steps=8)
    ref_ig, _ = explain.integrated_gradients(backbone, scaled, steps=8)
    np.testing.assert_allclose(ig, ref_ig, atol=1e-4)


def test_heatmap_shapes_and_ranges(trained, held_out):
    images = held_out[0][:5]
    cam, classes, _ = explain.gradcam(trained, images, layer="cnn_block1_conv1", batch_size=2)
    ig, _ = explain.integrated_gradients(trained, images, steps=4, batch_size=7, sigma=0,
                                         baseline=np.full((SIZE, SIZE, 3), 20, np.float32))
    for heatmaps in (cam, ig):
        assert heatmaps.shape == (5, SIZE, SIZE) and heatmaps.dtype == np.float32
        assert heatmaps.min() >= 0.0 and np.allclose(heatmaps.max(axis=(1, 2)), 1.0)
    assert classes.shape == (5,) and classes.dtype == np.int32


def test_automatic_layer_is_the_last_conv_map_of_the_nested_backbone():
    model = classifier("cnn_bn")
    names = explain.conv_layers(model)
    assert names[0] == "cnn_block1_conv1" and "rescale" not in names and "cnn_block2_pool" in names
    _, _, layer = explain.gradcam(model, np.zeros((2, SIZE, SIZE, 3), np.uint8))
    assert layer == "cnn_block2_act1"  # the ReLU'd last conv, not the pooled map after it


def test_unknown_layer_lists_conv_layers(trained):
    expected = "cnn_block1_conv1, cnn_block1_pool, cnn_block2_conv1, cnn_block2_pool"
    with pytest.raises(UserError, match=rf"^--layer nope: no such layer; conv layers: {expected}$"):
        explain.gradcam(trained, np.zeros((1, SIZE, SIZE, 3), np.uint8), layer="nope")


def test_argument_validation(trained):
    images = np.zeros((2, SIZE, SIZE, 3), np.uint8)
    with pytest.raises(ValueError, match="`images` must be a batch of shape"):
        explain.gradcam(trained, images[0])
    with pytest.raises(ValueError, match="`class_index`"):
        explain.gradcam(trained, images, class_index=3)
    with pytest.raises(ValueError, match="`steps`"):
        explain.integrated_gradients(trained, images, steps=0)
    with pytest.raises(UserError, match="--method shap: unknown method"):
        explain.explain(trained, images, method="shap")
    with pytest.raises(UserError, match="--layer"):
        explain.explain(trained, images, method="integrated_gradients", layer="cnn_block2_conv1")


def test_explain_returns_one_dict_per_image(trained, held_out):
    images = held_out[0][:3]
    for method in explain.METHODS:
        results = explain.explain(trained, images, method=method)
        assert len(results) == 3
        for r in results:
            assert r["heatmap"].shape == (SIZE, SIZE)
            assert r["peak"] == list(explain.peak(r["heatmap"])) and 0 <= r["class_index"] < 3
            assert ("layer" in r) == (method == "gradcam")


def test_peak_and_pointing_game_on_hand_made_maps():
    maps = np.zeros((4, 10, 10), np.float32)
    for i, (r, c) in enumerate([(2, 3), (5, 5), (9, 0), (0, 9)]):
        maps[i, r, c] = 1.0
    assert explain.peak(maps[0]) == (2, 3)
    np.testing.assert_array_equal(explain.peak(maps), [[2, 3], [5, 5], [9, 0], [0, 9]])
    boxes = np.array([[2, 3, 3, 4],     # exactly the peak pixel: hit
                      [0, 0, 5, 5],     # peak on the exclusive max edge: miss
                      [0, 0, 9, 1],     # one row below the box: miss
                      [5, 5, 10, 10]],  # far away
                     np.float32)
    np.testing.assert_array_equal(explain.pointing_hits(maps, boxes), [True, False, False, False])
    assert explain.pointing_game(maps, boxes) == 0.25
    assert explain.pointing_game(maps, boxes, tolerance=1) == 0.75
    assert explain.pointing_game(maps, boxes, tolerance=15) == 1.0
    with pytest.raises(ValueError, match="`boxes`"):
        explain.pointing_game(maps, boxes[:2])


def test_overlay_png_is_written(tmp_path, held_out):
    heatmap = np.zeros((SIZE, SIZE), np.float32)
    heatmap[4, 6] = 1.0
    for i, image in enumerate([held_out[0][0], held_out[0][0][..., :1]]):
        path = explain.overlay_png(image, heatmap, tmp_path / f"cam{i}.png", title="class 0 (0.99)")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="`heatmap`"):
        explain.overlay_png(held_out[0][0], heatmap[:8], tmp_path / "bad.png")
