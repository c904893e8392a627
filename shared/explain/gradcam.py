"""Grad-CAM (Selvaraju et al., 2017) for image classifiers, plus the helpers every
explanation method shares: input validation, the "tapped" float-input twin of a model
(nested functional models included), per-image normalisation, peaks and the pointing game.
"""

import weakref

import keras
import numpy as np
import tensorflow as tf

from shared.errors import UserError

_CONV_BASES = {"BaseConv", "BaseDepthwiseConv", "BaseSeparableConv", "BaseConvTranspose"}
# Layers that never make a better Grad-CAM target than the layer feeding them.
_PASS_THROUGH = {"BasePooling", "BaseGlobalPooling", "ZeroPadding2D", "Cropping2D", "Dropout",
                 "SpatialDropout2D"}
_LISTED = 25  # conv layers named in the "--layer" error


def _bases(layer):
    return {cls.__name__ for cls in type(layer).__mro__}


def _is_graph_model(layer):
    """Whether `layer` is a functional or built Sequential model (a graph of layers)."""
    if not isinstance(layer, keras.Model):
        return False
    try:
        return bool(layer.inputs) and bool(layer.outputs)
    except (AttributeError, ValueError):
        return False


def _check_model(model):
    if not _is_graph_model(model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError(
            "`model` must be a built functional (or Sequential) keras.Model with one image "
            f"input and one output. Received: model={getattr(model, 'name', model)!r}"
        )
    shape = tuple(model.inputs[0].shape)
    if len(shape) != 4:
        raise ValueError(f"`model` must take `(batch, H, W, C)` images. Received input shape {shape}")


def check_images(model, images):
    """`images` as a numpy `(N, H, W, C)` array matching `model`'s input; ValueError otherwise."""
    _check_model(model)
    images = np.asarray(images)
    expected = tuple(model.inputs[0].shape)[1:]
    if images.ndim != 4 or any(e is not None and e != g for e, g in zip(expected, images.shape[1:])):
        raise ValueError(
            f"`images` must be a batch of shape (N, {', '.join(str(e) for e in expected)}). "
            f"Received: images.shape={images.shape}"
        )
    if len(images) == 0:
        raise ValueError("`images` must hold at least one image.")
    return images


def check_class_index(class_index, n, num_classes):
    """`class_index` (None, an int or `n` ints) as an int32 array of `n` (-1 = predicted class)."""
    if class_index is None:
        return np.full((n,), -1, np.int32)
    index = np.broadcast_to(np.asarray(class_index), (n,)) if np.ndim(class_index) == 0 \
        else np.asarray(class_index)
    if index.shape != (n,) or not np.issubdtype(index.dtype, np.integer) \
            or index.min() < 0 or index.max() >= num_classes:
        raise ValueError(
            f"`class_index` must be None, an int or {n} ints in [0, {num_classes}). "
            f"Received: class_index={class_index!r}"
        )
    return index.astype(np.int32)


def image_spec(model):
    """`tf.TensorSpec` of a float32 image batch for `model` (one trace for any batch size)."""
    return tf.TensorSpec((None, *model.inputs[0].shape[1:]), tf.float32)


def _walk(model, path=()):
    """Yields `(path, layer)` for every non-model layer, nested models expanded in place."""
    for layer in model.layers:
        if _is_graph_model(layer):
            yield from _walk(layer, path + (layer,))
        else:
            yield path, layer


def _feature_map(layer):
    """The layer's `(batch, h, w, c)` symbolic output with h, w > 1 (or unknown), else None."""
    try:
        out = layer.output
    except (AttributeError, ValueError):  # never called, or called more than once
        return None
    if not isinstance(out, keras.KerasTensor) or len(out.shape) != 4:
        return None
    return out if all(d is None or d > 1 for d in out.shape[1:3]) else None


def _candidates(model):
    """`[(path, layer)]` with a spatial feature-map output from the first conv layer on."""
    layers = [(p, l) for p, l in _walk(model) if "InputLayer" not in _bases(l)]
    first = next((i for i, (_, l) in enumerate(layers) if _bases(l) & _CONV_BASES), 0)
    return [(p, l) for p, l in layers[first:] if _feature_map(l) is not None]


def conv_layers(model):
    """Names of the layers Grad-CAM can target (nested models searched), in graph order."""
    _check_model(model)
    return [layer.name for _, layer in _candidates(model)]


def find_layer(model, layer=None):
    """`(path, layer)` of the Grad-CAM target: `layer` (a name) or, by default, the last
    conv-like layer before the global pooling/flatten (a trailing pooling layer is
    skipped in favour of the higher-resolution map feeding it)."""
    candidates = _candidates(model)
    if not candidates:
        raise UserError(f"model '{model.name}' has no convolutional feature map to explain")
    if layer is None:
        preferred = [c for c in candidates if not _bases(c[1]) & _PASS_THROUGH]
        return (preferred or candidates)[-1]
    matches = [c for c in candidates if c[1].name == layer]
    if not matches:
        names = [l.name for _, l in candidates]
        shown = names if len(names) <= _LISTED else [f"... ({len(names) - _LISTED} more)"] + names[-_LISTED:]
        raise UserError(f"--layer {layer}: no such layer; conv layers: {', '.join(shown)}")
    return matches[-1]


def _is_softmax(fn):
    return getattr(fn, "__name__", None) == "softmax"


def _logit_tap(model, path=()):
    """`(path, tensor, dense)` of the pre-softmax value feeding `model`'s output: the input
    of a final softmax `Dense` (then logits = tensor @ kernel + bias) or of a final softmax
    `Activation`; None when the output is not a softmax."""
    op, node_index, _ = model.outputs[0]._keras_history
    if _is_graph_model(op):
        return _logit_tap(op, path + (op,))
    inputs = op._inbound_nodes[node_index].input_tensors
    if len(inputs) != 1:
        return None
    if isinstance(op, keras.layers.Dense) and _is_softmax(op.activation):
        return path, inputs[0], op
    if isinstance(op, keras.layers.Activation) and _is_softmax(op.activation):
        return path, inputs[0], None
    if isinstance(op, keras.layers.Softmax):
        return path, inputs[0], None
    return None


def _tapped(model, taps, input_dtype=None):
    """A functional model `input -> [*tap values, output]` sharing `model`'s weights.

    `taps` are `(path, tensor)`: `tensor` is a symbolic tensor of the graph of the model at
    the end of `path` (nested models, outermost first). Nested models holding taps are
    re-applied as tapped twins; `input_dtype` replaces the outer input's dtype."""
    local = [t for p, t in taps if not p]
    nested = {}
    for p, t in taps:
        if p:
            nested.setdefault(id(p[0]), (p[0], []))[1].append((p[1:], t))
    base = keras.Model(model.inputs, [*local, *model.outputs])
    if not nested and input_dtype is None:
        return base
    twins = {key: (_tapped(sub, sub_taps), len(sub_taps)) for key, (sub, sub_taps) in nested.items()}
    stash = {}

    def call(layer, *args, **kwargs):
        if id(layer) not in twins:
            return layer(*args, **kwargs)
        twin, n = twins[id(layer)]
        outputs = twin(*args, **kwargs)
        stash[id(layer)] = outputs[:n]
        return outputs[n] if len(outputs) == n + 1 else outputs[n:]

    source = model.inputs[0]
    new_input = keras.Input(batch_shape=source.shape, dtype=input_dtype or source.dtype, name=source.name)
    clone = keras.models.clone_model(base, input_tensors=[new_input], clone_function=lambda l: l,
                                     call_function=call)
    values, cursor, counters = [], iter(clone.outputs[:len(local)]), {}
    for p, _ in taps:
        if not p:
            values.append(next(cursor))
        else:
            k = counters.get(id(p[0]), 0)
            counters[id(p[0])] = k + 1
            values.append(stash[id(p[0])][k])
    return keras.Model(clone.inputs, [*values, clone.outputs[-1]])


def scoring_model(model, feature=None):
    """`(run, has_logits)`: `run(float32 images) -> (feature map or None, class scores,
    probabilities)` through a float32-input twin of `model` sharing its weights; the map is
    that of `feature=(path, layer)` and the scores are the pre-softmax logits when the output
    is a softmax, else the output itself."""
    _check_model(model)
    taps = []
    if feature is not None:
        taps.append((feature[0], feature[1].output))
    logit = _logit_tap(model)
    if logit is not None:
        taps.append((logit[0], logit[1]))
    twin = _tapped(model, taps, input_dtype="float32")
    dense = logit[2] if logit is not None else None

    def run(x):
        outputs = twin(x, training=False)
        outputs = list(outputs) if isinstance(outputs, (list, tuple)) else [outputs]
        probs = tf.cast(outputs[-1], tf.float32)
        if logit is None:
            scores = probs
        elif dense is None:
            scores = tf.cast(outputs[-2], tf.float32)
        else:
            h = tf.cast(outputs[-2], dense.kernel.dtype)
            scores = tf.cast(tf.matmul(h, dense.kernel) + (dense.bias if dense.use_bias else 0.0), tf.float32)
        feat = outputs[0] if feature is not None else None
        return feat, scores, probs

    return run, logit is not None


_COMPILED = weakref.WeakKeyDictionary()  # model -> {key: traced function}


def compiled(model, key, build):
    """`build()`, made once per `(model, key)` so repeated calls reuse traced tf.functions."""
    per_model = _COMPILED.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


def choose(scores_or_probs, class_index):
    """The classes to explain: `class_index`, or the argmax where it is -1."""
    predicted = tf.argmax(scores_or_probs, axis=-1, output_type=tf.int32)
    return tf.where(class_index < 0, predicted, class_index)


def normalize(maps):
    """Per-map min-max scaling of `(N, H, W)` to [0, 1] (constant maps become 0)."""
    low = tf.reduce_min(maps, axis=(1, 2), keepdims=True)
    span = tf.reduce_max(maps, axis=(1, 2), keepdims=True) - low
    return tf.where(span > 0, (maps - low) / tf.maximum(span, 1e-12), tf.zeros_like(maps))


def batch_slices(n, batch_size):
    """Slices covering `range(n)` in chunks of `batch_size` (validated)."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be a positive int. Received: batch_size={batch_size}")
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


def _gradcam_step(model, feature):
    """A tf.function `(float32 images, wanted classes or -1) -> (normalised maps, classes)`."""
    run, _ = scoring_model(model, feature)

    @tf.function(input_signature=[image_spec(model), tf.TensorSpec([None], tf.int32)])
    def step(x, wanted):
        with tf.GradientTape() as tape:
            feat, scores, _ = run(x)
            classes = choose(scores, wanted)
            score = tf.gather(scores, classes, batch_dims=1)
        grads = tape.gradient(score, feat)
        if grads is None:
            raise ValueError(f"layer '{feature[1].name}' does not influence the model's output")
        feat, grads = tf.cast(feat, tf.float32), tf.cast(grads, tf.float32)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        cam = tf.nn.relu(tf.reduce_sum(feat * weights, axis=-1, keepdims=True))
        cam = tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]
        return normalize(cam), classes

    return step


def gradcam(model, images, class_index=None, layer=None, batch_size=64):
    """Grad-CAM heat maps of `model`'s class scores for `images`.

    Args:
        model: a functional classifier (raw images in, class probabilities or logits out);
            nested functional backbones are searched for the target layer.
        images: `(N, H, W, C)` images as the model takes them (e.g. uint8).
        class_index: None (explain the predicted class), an int or `N` ints.
        layer: name of the target layer; by default the last conv-like layer.
        batch_size: images per gradient pass.

    Returns:
        `(heatmaps, classes, layer_name)`: float32 `(N, H, W)` maps in [0, 1] at the
        input resolution, the int32 `(N,)` explained classes and the target layer's name.
    """
    images = check_images(model, images)
    feature = find_layer(model, layer)
    index = check_class_index(class_index, len(images), model.outputs[0].shape[-1])
    step = compiled(model, ("gradcam", id(feature[1])), lambda: _gradcam_step(model, feature))
    maps, classes = [], []
    for part in batch_slices(len(images), batch_size):
        m, c = step(tf.constant(images[part], tf.float32), tf.constant(index[part]))
        maps.append(m.numpy())
        classes.append(c.numpy())
    return np.concatenate(maps).astype(np.float32), np.concatenate(classes).astype(np.int32), feature[1].name


def peak(heatmap):
    """`(row, col)` of the maximum of an `(H, W)` map (first one on ties); for `(N, H, W)`
    maps an int `(N, 2)` array of them."""
    heatmap = np.asarray(heatmap)
    if heatmap.ndim == 3:
        return np.array([peak(h) for h in heatmap], dtype=np.int64).reshape(-1, 2)
    if heatmap.ndim != 2 or heatmap.size == 0:
        raise ValueError(f"`heatmap` must be (H, W) or (N, H, W). Received shape {heatmap.shape}")
    row, col = np.unravel_index(int(np.argmax(heatmap)), heatmap.shape)
    return int(row), int(col)


def pointing_hits(heatmaps, boxes, tolerance=0):
    """Bool `(N,)`: whether each map's peak pixel (its centre) lies in its box, or within
    `tolerance` pixels of it. `boxes` are `(N, 4)` `(ymin, xmin, ymax, xmax)` in pixels,
    max exclusive."""
    heatmaps = np.asarray(heatmaps)
    if heatmaps.ndim != 3:
        raise ValueError(f"`heatmaps` must be (N, H, W). Received shape {heatmaps.shape}")
    peaks = peak(heatmaps).astype(np.float64) + 0.5
    boxes = np.asarray(boxes, dtype=np.float64)
    if boxes.shape != (len(peaks), 4):
        raise ValueError(f"`boxes` must have shape ({len(peaks)}, 4). Received: boxes.shape={boxes.shape}")
    if not np.isscalar(tolerance) or tolerance < 0:
        raise ValueError(f"`tolerance` must be a number >= 0. Received: tolerance={tolerance!r}")
    dy = np.maximum.reduce([boxes[:, 0] - peaks[:, 0], peaks[:, 0] - boxes[:, 2], np.zeros(len(peaks))])
    dx = np.maximum.reduce([boxes[:, 1] - peaks[:, 1], peaks[:, 1] - boxes[:, 3], np.zeros(len(peaks))])
    return np.hypot(dy, dx) <= tolerance


def pointing_game(heatmaps, boxes, tolerance=0):
    """Pointing-game hit rate (Zhang et al., 2016): the fraction of maps whose peak falls
    in the object's box (within `tolerance` pixels; 15 is the usual on large images)."""
    return float(np.mean(pointing_hits(heatmaps, boxes, tolerance)))
