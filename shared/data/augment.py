"""Keras augmentation layers for uint8 image batches, run inside the tf.data pipeline."""

import keras
import tensorflow as tf

from shared.errors import UserError


def _layers(seed):
    return {
        "flip": lambda: keras.layers.RandomFlip("horizontal", seed=seed),
        "translate": lambda: keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
        "rotate": lambda: keras.layers.RandomRotation(0.05, fill_mode="constant", seed=seed),
        "zoom": lambda: keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed),
        "contrast": lambda: keras.layers.RandomContrast(0.2, value_range=(0, 255), seed=seed),
    }


AUGMENTATIONS = tuple(_layers(0))


def image_augmenter(spec, seed=0):
    """A function uint8 batch -> augmented uint8 batch for `spec` like "flip,translate" (or None)."""
    names = [s.strip() for s in spec.split(",") if s.strip() and s.strip() != "none"]
    bad = [n for n in names if n not in AUGMENTATIONS]
    if bad:
        raise UserError(f"--augment: unknown augmentation '{bad[0]}'; expected a comma list of "
                        f"{', '.join(AUGMENTATIONS)} or none")
    if not names:
        return None
    layers = [_layers(seed)[n]() for n in names]

    def augment(images):
        x = tf.cast(images, tf.float32)
        for layer in layers:
            x = layer(x, training=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), images.dtype)

    return augment
