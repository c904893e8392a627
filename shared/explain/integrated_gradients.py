"""Integrated Gradients (Sundararajan et al., 2017) for image classifiers.

Gradients are taken through a float32-input twin of the model (same weights), so models
whose input is uint8 are differentiated in the float domain right after the input.
"""

import numpy as np
import tensorflow as tf

from shared.explain.gradcam import (
    batch_slices, check_class_index, check_images, choose, compiled, image_spec, normalize, scoring_model,
)


def _baseline(baseline, images):
    """The baseline as a float32 array of `images`' shape (None = black)."""
    if baseline is None:
        return np.zeros(images.shape, np.float32)
    try:
        return np.broadcast_to(np.asarray(baseline, np.float32), images.shape)
    except ValueError:
        raise ValueError(
            f"`baseline` must be None, a number or an array broadcastable to {images.shape}. "
            f"Received shape {np.shape(baseline)}"
        ) from None


def gaussian_blur(maps, sigma):
    """Separable Gaussian blur (reflect padding) of `(N, H, W)` maps; `sigma` in pixels."""
    maps = tf.convert_to_tensor(maps, tf.float32)
    if sigma <= 0:
        return maps
    radius = min(int(round(3 * sigma)), maps.shape[1] - 1, maps.shape[2] - 1)
    if radius < 1:
        return maps
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel = tf.constant(taps / taps.sum(), tf.float32)
    x = tf.pad(maps[..., None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    x = tf.nn.conv2d(x, tf.reshape(kernel, (-1, 1, 1, 1)), 1, "VALID")
    x = tf.nn.conv2d(x, tf.reshape(kernel, (1, -1, 1, 1)), 1, "VALID")
    return x[..., 0]


def _ig_steps(model, steps):
    """tf.functions `predict(x, wanted) -> classes` and `mean_gradients(x, x0, classes)`:
    the trapezoid average of the class-score gradients along the path from x0 to x."""
    run, _ = scoring_model(model)
    alphas = tf.constant(np.linspace(0.0, 1.0, steps + 1), tf.float32)
    weights = np.full(steps + 1, 1.0 / steps, np.float32)
    weights[[0, -1]] /= 2
    weights = tf.constant(weights)

    spec, labels = image_spec(model), tf.TensorSpec([None], tf.int32)

    @tf.function(input_signature=[spec, labels])
    def predict(xs, wanted):
        return choose(run(xs)[1], wanted)

    @tf.function(input_signature=[spec, spec, labels])
    def mean_gradients(xs, bases, classes):
        n = tf.shape(xs)[0]
        path = bases[:, None] + alphas[None, :, None, None, None] * (xs - bases)[:, None]
        path = tf.reshape(path, tf.concat([[-1], tf.shape(xs)[1:]], 0))
        rows = tf.repeat(classes, steps + 1)
        with tf.GradientTape() as tape:
            tape.watch(path)
            score = tf.gather(run(path)[1], rows, batch_dims=1)
        grads = tf.reshape(tape.gradient(score, path), tf.concat([[n, steps + 1], tf.shape(xs)[1:]], 0))
        return tf.einsum("ns...,s->n...", grads, weights)

    return predict, mean_gradients


def integrated_gradients(model, images, class_index=None, steps=32, baseline=None, batch_size=128,
                         sigma=None):
    """Integrated-Gradients heat maps of `model`'s class scores for `images`.

    Args:
        model: a functional classifier (raw images in, class probabilities or logits out).
        images: `(N, H, W, C)` images as the model takes them (e.g. uint8 0-255).
        class_index: None (explain the predicted class), an int or `N` ints.
        steps: path segments; gradients are averaged over `steps + 1` points (trapezoid).
        baseline: the reference image in input units, broadcastable to `(H, W, C)` or
            `(N, H, W, C)`; None is a black image.
        batch_size: interpolated images per gradient pass.
        sigma: Gaussian smoothing of the map in pixels; None = max(1, min(H, W) / 64),
            0 disables it.

    Returns:
        `(heatmaps, classes)`: float32 `(N, H, W)` maps in [0, 1] (sum over channels of
        |attribution|, smoothed, normalised per image) and the int32 `(N,)` classes.
        The score is the pre-softmax logit when the output is a softmax.
    """
    images = check_images(model, images)
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"`steps` must be an int >= 1. Received: steps={steps}")
    if sigma is None:
        sigma = max(1.0, min(images.shape[1:3]) / 64)
    elif not np.isscalar(sigma) or sigma < 0:
        raise ValueError(f"`sigma` must be None or a number >= 0. Received: sigma={sigma!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size}")
    index = check_class_index(class_index, len(images), model.outputs[0].shape[-1])
    key = ("integrated_gradients", steps)
    predict, mean_gradients = compiled(model, key, lambda: _ig_steps(model, steps))
    x = images.astype(np.float32)
    x0 = _baseline(baseline, images)
    per_pass = max(1, batch_size // (steps + 1))
    maps, classes = [], []
    for part in batch_slices(len(x), per_pass):
        xs, bases = tf.constant(x[part]), tf.constant(x0[part])
        chosen = predict(xs, tf.constant(index[part]))
        attribution = (xs - bases) * mean_gradients(xs, bases, chosen)
        maps.append(tf.reduce_sum(tf.abs(attribution), axis=-1))
        classes.append(chosen.numpy())
    heat = normalize(gaussian_blur(tf.concat(maps, 0), sigma))
    return heat.numpy().astype(np.float32), np.concatenate(classes).astype(np.int32)
