"""The augmentation hook moves boxes and masks with the pixels."""

import numpy as np
import pytest
import tensorflow as tf

from shared.data.augment import augmenter
from shared.errors import UserError

SIZE, N = 32, 24


def _scenes():
    """N images with one bright rectangle each, its box (plus a padding row) and its mask."""
    rng = np.random.default_rng(0)
    images = np.zeros((N, SIZE, SIZE, 3), np.uint8)
    boxes = np.zeros((N, 2, 4), np.float32)
    classes = np.full((N, 2), -1, np.int32)
    for i in range(N):
        y0, x0 = rng.integers(0, 16, 2)
        h, w = rng.integers(4, 16, 2)
        images[i, y0:y0 + h, x0:x0 + w] = 200
        boxes[i, 0] = (y0, x0, y0 + h, x0 + w)
        classes[i, 0] = i % 3
    masks = (images[..., 0] > 0).astype(np.int32) * 2
    return images, boxes, classes, masks


def _run(augment, x, y):
    ds = tf.data.Dataset.from_tensors((x, y)).map(augment)  # the engine runs it inside tf.data
    return next(iter(ds.as_numpy_iterator()))


def test_flip_moves_boxes_with_the_pixels_and_leaves_padding():
    images, boxes, classes, _ = _scenes()
    out, y = _run(augmenter("flip", "boxes", seed=3), images, {"boxes": boxes, "classes": classes})
    flipped = np.array([not np.array_equal(o, i) for o, i in zip(out, images)])
    assert 0 < flipped.sum() < N  # a per-example coin
    for i in range(N):
        ys, xs = np.nonzero(out[i, ..., 0])
        assert np.allclose(y["boxes"][i, 0], (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1))
        assert np.array_equal(out[i], images[i][:, ::-1] if flipped[i] else images[i])
    assert np.array_equal(y["boxes"][:, 1], boxes[:, 1]) and np.array_equal(y["classes"], classes)


def test_flip_moves_masks_and_contrast_leaves_them():
    images, _, _, masks = _scenes()
    out, y = _run(augmenter("flip,contrast", "mask", seed=4), images, masks)
    assert out.dtype == np.uint8 and y.shape == masks.shape
    assert np.array_equal(y > 0, out[..., 0] > 0)  # the mask follows the mirrored pixels
    assert not np.array_equal(y, masks) and sorted(np.unique(y)) == [0, 2]


def test_rotation_zoom_and_translation_move_masks_with_the_pixels():
    images, _, _, masks = _scenes()
    out, y = _run(augmenter("rotate,zoom,translate", "mask", seed=5), images, masks)
    assert out.dtype == np.uint8 and y.shape == masks.shape and y.dtype == masks.dtype
    assert not np.array_equal(y, masks) and set(np.unique(y)) <= {0, 2}  # moved, never interpolated
    inside = out[..., 0][y > 0]
    assert (inside > 0).mean() > 0.9  # the moved mask still covers the moved object


def test_scale_jitter_and_translation_move_boxes_with_the_pixels():
    images, boxes, classes, _ = _scenes()
    out, y = _run(augmenter("scale,translate", "boxes", seed=6), images, {"boxes": boxes, "classes": classes})
    assert out.dtype == np.uint8 and not np.array_equal(y["boxes"], boxes)
    moved = 0
    for i in range(N):
        ys, xs = np.nonzero(out[i, ..., 0] > 100)
        if y["classes"][i, 0] < 0:  # moved out of the picture: padding now
            assert len(ys) < 4 * SIZE
            continue
        truth = (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)
        assert np.abs(y["boxes"][i, 0] - truth).max() <= 1.5, (i, y["boxes"][i, 0], truth)
        moved += not np.allclose(y["boxes"][i, 0], boxes[i, 0])
    assert moved > N // 2 and np.all(y["classes"][:, 1] == -1)  # padding stays padding


def test_labels_pass_through_and_geometry_that_cannot_move_targets_is_refused():
    images, _, _, _ = _scenes()
    labels = np.arange(N)
    out, y = _run(augmenter("flip,translate", seed=1), images, labels)
    assert np.array_equal(y, labels) and out.shape == images.shape
    assert augmenter("none", "boxes") is None
    with pytest.raises(UserError, match="^--augment: 'rotate' cannot move boxes; expected a comma list of flip, translate, zoom, scale, contrast or none$"):
        augmenter("flip,rotate", "boxes")
    with pytest.raises(UserError, match="unknown augmentation 'blur'"):
        augmenter("blur", "mask")
