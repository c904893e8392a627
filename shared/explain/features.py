"""Integrated Gradients over a feature vector (Sundararajan et al., 2017) for tabular models.

The path runs straight from a baseline record's features to the record's; the attribution
of feature j is (x_j - baseline_j) times the trapezoid average of d f / d x_j along it, so
the attributions sum to f(x) - f(baseline) (completeness; the gap is reported). Features
made from one column (one-hot slots, a missing flag) add up to that column's attribution.
"""

import numpy as np
import tensorflow as tf


def feature_integrated_gradients(fn, features, baseline, steps=64):
    """`fn`: float32 [M, D] -> [M] (e.g. a probability). Returns `(attributions [N, D],
    f(features) [N], f(baseline) scalar)`."""
    x = tf.constant(np.asarray(features, np.float32))
    base = tf.constant(np.asarray(baseline, np.float32).reshape(1, -1))
    alphas = tf.constant(np.linspace(0.0, 1.0, steps + 1), tf.float32)[None, :, None]
    weights = np.full(steps + 1, 1.0 / steps, np.float32)
    weights[[0, -1]] /= 2
    path = base[:, None] + alphas * (x - base)[:, None]  # [N, steps + 1, D]
    flat = tf.reshape(path, (-1, x.shape[-1]))
    with tf.GradientTape() as tape:
        tape.watch(flat)
        values = fn(flat)
    grads = tf.reshape(tape.gradient(values, flat), path.shape)
    mean_grads = tf.reduce_sum(grads * weights[None, :, None], axis=1)
    attributions = ((x - base) * mean_grads).numpy()
    return attributions, np.asarray(fn(x)), float(np.asarray(fn(base))[0])


def by_column(attributions, feature_columns):
    """Sums feature attributions [N, D] into `{column: [N]}`, in the columns' order."""
    columns = list(dict.fromkeys(feature_columns))
    index = {c: [j for j, name in enumerate(feature_columns) if name == c] for c in columns}
    return {c: np.asarray(attributions)[:, index[c]].sum(axis=1) for c in columns}
