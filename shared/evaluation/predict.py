"""Batched inference that works under any strategy (calls the model directly, not `predict`)."""

import numpy as np
import tensorflow as tf


def predict_dataset(model, ds, batch_size=256):
    """Runs `model` over an unbatched (x, y) dataset; returns (x, y_true, y_pred) as numpy arrays."""
    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    xs, ys, preds = [], [], []
    for x, y in ds.batch(batch_size).prefetch(tf.data.AUTOTUNE):
        preds.append(np.asarray(call(x)))
        xs.append(x.numpy())
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(preds)


def take_examples(ds, n):
    """The first `n` (inputs, targets) of an unbatched (x, y) dataset, stacked as numpy (arrays,
    or dicts of arrays; inputs of different lengths zero-padded at the end)."""
    batch = next(iter(ds.padded_batch(n)))
    return tf.nest.map_structure(lambda t: t.numpy(), batch)


def take_inputs(ds, n):
    """The first `n` raw inputs of an unbatched (x, y) dataset, stacked (an array, or a dict of
    arrays for several named inputs)."""
    return take_examples(ds.map(lambda x, y: (x, 0)), n)[0]
