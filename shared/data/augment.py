"""Training-batch augmentation, run inside the tf.data pipeline.

The engine's hook (`DataInfo.augment`) maps a batch `(x, y) -> (x, y)`, so a geometric change
can move the targets with the pixels: `augmenter(spec, targets=...)` builds it for labels
(images only), boxes or masks."""

import keras
import tensorflow as tf

from shared.errors import UserError


def _layers(seed, **box_format):
    geometry = dict(fill_mode="constant", seed=seed, **box_format)
    return {
        "flip": lambda: keras.layers.RandomFlip("horizontal", seed=seed),
        "translate": lambda: keras.layers.RandomTranslation(0.1, 0.1, **geometry),
        "rotate": lambda: keras.layers.RandomRotation(0.05, **geometry),
        "zoom": lambda: keras.layers.RandomZoom(0.1, **geometry),
        "scale": lambda: keras.layers.RandomZoom(0.3, **geometry),  # scale jitter: objects 0.77-1.43x
        "contrast": lambda: keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
    }


AUGMENTATIONS = tuple(_layers(0))
TARGETS = ("labels", "boxes", "mask")
# What each target kind can follow: labels ignore geometry; boxes and masks follow a mirror and
# Keras's translations and zooms (the same transform: nearest-neighbour for a mask, the box
# corners moved and clipped for boxes); a rotated box is no longer tight, so boxes refuse it.
_SUPPORTED = {"labels": AUGMENTATIONS, "boxes": ("flip", "translate", "zoom", "scale", "contrast"),
              "mask": ("flip", "translate", "rotate", "zoom", "scale", "contrast")}
GEOMETRIC = ("translate", "rotate", "zoom", "scale")
MIN_BOX = 4.0  # px: a box moved (mostly) out of the image, thinner than this, becomes padding


def _names(spec, targets):
    names = [s.strip() for s in spec.split(",") if s.strip() and s.strip() != "none"]
    allowed = _SUPPORTED[targets]
    bad = [n for n in names if n not in allowed]
    if bad:
        problem = (f"'{bad[0]}' cannot move {targets}" if bad[0] in AUGMENTATIONS
                   else f"unknown augmentation '{bad[0]}'")
        raise UserError(f"--augment: {problem}; expected a comma list of {', '.join(allowed)} or none")
    return names


def image_augmenter(spec, seed=0):
    """A function uint8 image batch -> augmented uint8 batch for `spec` like "flip,translate" (or None)."""
    names = _names(spec, "labels")
    if not names:
        return None
    layers = [_layers(seed)[n]() for n in names]

    def augment(images):
        x = tf.cast(images, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), images.dtype)

    return augment


def mirror_targets(y, flip, width, targets):
    """`y` of the examples where `flip` (bool [N]) is set, mirrored left-right in an image of
    `width` pixels: boxes `{"boxes": [N,K,4] (ymin, xmin, ymax, xmax), "classes"}` (padding
    rows, class < 0, untouched) or masks `[N,H,W]`."""
    if targets == "mask":
        return tf.where(tf.reshape(flip, [-1, 1, 1]), tf.reverse(y, [2]), y)
    boxes = y["boxes"]
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    mirrored = tf.stack([ymin, width - xmax, ymax, width - xmin], -1)
    swap = flip[:, None] & (y["classes"] >= 0)
    return {**y, "boxes": tf.where(swap[..., None], mirrored, boxes)}


def moved_boxes(y, boxes):
    """`y` with its boxes moved to `boxes`; one now thinner than `MIN_BOX` becomes padding."""
    size = tf.minimum(boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1])
    return {**y, "boxes": boxes, "classes": tf.where(size >= MIN_BOX, y["classes"], -1)}


def augmenter(spec, targets="labels", seed=0):
    """The engine hook `(x, y) -> (x, y)` for `spec` ("flip,contrast", "none", …), or None.

    targets: "labels" (y unchanged; every augmentation), "boxes" (flip, translate, zoom and
    scale move the boxes with the pixels, clipped to the image; contrast leaves them) or
    "mask" (also rotate: the mask takes the image's transform)."""
    if targets not in TARGETS:
        raise ValueError(f"`targets` must be one of {TARGETS}. Received: targets={targets!r}")
    names = _names(spec, targets)
    if not names:
        return None
    if targets == "labels":
        images_only = image_augmenter(spec, seed)
        return lambda x, y: (images_only(x), y)
    photometric = image_augmenter(",".join(n for n in names if n == "contrast") or "none", seed)
    box_format = {"bounding_box_format": "yxyx"} if targets == "boxes" else {}
    geometric = [_layers(seed, **box_format)[n]() for n in names if n in GEOMETRIC]
    generator = tf.random.Generator.from_seed(seed)

    def augment(images, y):
        if "flip" in names:
            flip = generator.uniform([tf.shape(images)[0]]) < 0.5
            images = tf.where(tf.reshape(flip, [-1, 1, 1, 1]), tf.reverse(images, [2]), images)
            y = mirror_targets(y, flip, tf.cast(tf.shape(images)[2], tf.float32), targets)
        if geometric:
            moved = {"images": tf.cast(images, tf.float32)}
            if targets == "mask":
                moved["segmentation_masks"] = tf.cast(y[..., None], tf.float32)
            else:
                moved["bounding_boxes"] = {"boxes": y["boxes"], "labels": y["classes"]}
            for layer in geometric:
                moved = layer(moved, training=True)
            pixels = moved["images"]
            if images.dtype.is_integer:
                pixels = tf.clip_by_value(tf.round(pixels), images.dtype.min, images.dtype.max)
            images = tf.cast(pixels, images.dtype)
            y = (tf.cast(tf.round(moved["segmentation_masks"][..., 0]), y.dtype) if targets == "mask"
                 else moved_boxes(y, moved["bounding_boxes"]["boxes"]))
        if photometric is not None:
            images = photometric(images)
        return images, y

    return augment
