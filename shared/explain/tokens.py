"""Integrated Gradients over tokens (Sundararajan et al., 2017) for text models.

The path scales every token's embedding from 0 (the baseline: all-zero token embeddings;
position embeddings, where the model adds them, stay) to 1 with one scale per token, so the gradient of the output with respect to a token's scale
is that token's embedding dotted with the embedding gradient, and its path integral is the
token's attribution. By completeness the attributions sum to f(text) − f(baseline). The
model is run through its own graph with the embedding outputs scaled: any builder whose
token ids go through a Keras `Embedding` or keras-hub `TokenAndPositionEmbedding` (nested
models included) works, masks are kept.
"""

import keras
import numpy as np
import tensorflow as tf

from shared.errors import UserError
from shared.explain.gradcam import _is_graph_model

EMBEDDINGS = ("Embedding", "TokenAndPositionEmbedding")


def _is_embedding(op):
    return type(op).__name__ in EMBEDDINGS


def _has_embedding(model):
    return any(_is_embedding(op) or (_is_graph_model(op) and _has_embedding(op)) for op in model.layers)


def _run_scaled(model, token_ids, scale):
    """`model(token_ids)` with every token-embedding output multiplied by `scale` [N, L]."""
    def operation(op):
        if _is_graph_model(op):
            return lambda *args, **kwargs: _run_scaled(op, args[0], scale)
        if not _is_embedding(op):
            return op

        def scaled(*args, **kwargs):
            if type(op).__name__ == "TokenAndPositionEmbedding":  # positions stay: only tokens scale
                tokens = op.token_embedding(args[0])
                return tokens * tf.cast(scale[:, :, None], tokens.dtype) + op.position_embedding(tokens)
            out = op(*args, **kwargs)
            result = out * tf.cast(scale[:, :, None], out.dtype)
            mask = getattr(out, "_keras_mask", None)
            if mask is not None:
                result._keras_mask = mask
            return result

        return scaled

    out = model._run_through_graph(token_ids, operation_fn=operation)
    return out[0] if isinstance(out, (list, tuple)) else out


def token_integrated_gradients(model, token_ids, class_index=None, steps=32):
    """Per-token attributions `[N, L]` of `model`'s output for `token_ids` `[N, L]` (0 =
    padding, attribution 0): of the probability of `class_index` (default: the predicted
    class) for a classifier, of the value for a one-output regressor. Returns
    `(attributions, class indices or None, outputs at the text, outputs at the baseline)`."""
    if not _has_embedding(model):
        raise UserError(f"model '{model.name}' has no token embedding to attribute to")
    token_ids = tf.constant(np.asarray(token_ids, np.int32))
    n, length = token_ids.shape
    ones = tf.ones([n, length], tf.float32)
    output = np.asarray(model(token_ids, training=False))
    classifier = output.ndim == 2
    if classifier:
        index = output.argmax(-1) if class_index is None else np.broadcast_to(np.asarray(class_index), (n,))
        index = tf.constant(index.astype(np.int32))
    alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
    weights = np.full(steps + 1, 1.0 / steps, np.float32)
    weights[[0, -1]] /= 2

    @tf.function(reduce_retracing=True)
    def gradient(alpha):
        scale = ones * alpha
        with tf.GradientTape() as tape:
            tape.watch(scale)
            out = tf.cast(_run_scaled(model, token_ids, scale), tf.float32)
            value = tf.gather(out, index, batch_dims=1) if classifier else tf.reshape(out, [n])
        return tape.gradient(value, scale), value

    total = np.zeros((n, length), np.float32)
    baseline = None
    for alpha, weight in zip(alphas, weights):
        grads, value = gradient(tf.constant(alpha))
        total += weight * grads.numpy()
        if alpha == 0.0:
            baseline = value.numpy()
    total[np.asarray(token_ids) == 0] = 0.0
    at_text = np.take_along_axis(output, np.asarray(index)[:, None], 1)[:, 0] if classifier else output.reshape(n)
    return total, (np.asarray(index) if classifier else None), at_text, baseline


def colour_tokens(words, attributions):
    """The words with an ANSI background per attribution: green pushes the output up, red
    down, stronger colour for larger |attribution| (relative to the text's largest)."""
    top = max([abs(a) for a in attributions] + [1e-12])
    greens, reds = (22, 28, 34, 40, 46), (52, 88, 124, 160, 196)
    parts = []
    for word, a in zip(words, attributions):
        level = min(4, int(abs(a) / top * 5))
        colour = (greens if a >= 0 else reds)[level]
        parts.append(f"\x1b[48;5;{colour}m\x1b[97m{word}\x1b[0m")
    return " ".join(parts)
