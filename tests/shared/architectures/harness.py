"""`run_builder_test`: the checks every architecture builder goes through."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf


def _allclose(a, b, atol=1e-5):
    for x, y in zip(tf.nest.flatten(a), tf.nest.flatten(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-4)


def _shapes(out):
    return tf.nest.map_structure(lambda t: tuple(t.shape), out)


def run_builder_test(cls, init_kwargs, x, expected_output_shape, y=None, loss=None, train=True):
    """Builds `cls(**init_kwargs)` and checks shape, config and `.keras` round-trips,
    that one optimizer step lowers `loss(y, model(x))` on the fixed batch, and that the
    model builds and runs inside a MirroredStrategy scope. Returns the model.

    Weights are seeded here, so the result does not depend on which tests ran before in
    the same process (pytest-xdist deals tests to workers in varying orders)."""
    keras.utils.set_random_seed(0)
    model = cls(**init_kwargs)
    out = model(x, training=False)
    assert _shapes(out) == expected_output_shape, (_shapes(out), expected_output_shape)

    clone = cls.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.count_params() == model.count_params()

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    _allclose(model(x, training=False), restored(x, training=False))

    if train:
        loss = loss or keras.losses.MeanSquaredError()
        if y is None:
            y = tf.nest.map_structure(lambda t: tf.zeros_like(t) + 0.5, out)
        optimizer = keras.optimizers.Adam(1e-3)
        # Loss is compared in inference mode. With BatchNorm's default momentum the moving
        # statistics barely move in 3 steps, so "before"/"after" would use stale
        # statistics and the check would fail at random. With momentum 0 and one
        # training-mode pass they are exactly the fixed batch's statistics.
        batch_norms = [layer for layer in model._flatten_layers(include_self=False)
                       if isinstance(layer, keras.layers.BatchNormalization)]
        for layer in batch_norms:
            layer.momentum = 0.0
        if batch_norms:
            model(x, training=True)
        before = float(loss(y, model(x, training=False)))
        for _ in range(3):
            with tf.GradientTape() as tape:
                value = loss(y, model(x, training=True))
            grads = tape.gradient(value, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if batch_norms:
            model(x, training=True)
        after = float(loss(y, model(x, training=False)))
        assert after < before, f"loss did not fall: {before} -> {after}"

    with tf.distribute.MirroredStrategy(["/cpu:0"]).scope():
        mirrored = cls(**init_kwargs)
        assert _shapes(mirrored(x, training=False)) == expected_output_shape
    return model
