"""Layers of tabular models: the in-graph record encoder, a calibrated output, and Monte
Carlo dropout with fixed masks (deterministic, so exports can be checked for parity)."""

from dataclasses import asdict

import keras
import numpy as np

from shared.data.tabular import CLIP, Column


@keras.saving.register_keras_serializable(package="dlsuite")
class TabularEncoder(keras.layers.Layer):
    """`{input name: [N] float32 | string}` -> float32 `[N, F]` (see the module docstring)."""

    def __init__(self, columns, **kwargs):
        super().__init__(**kwargs)
        self.columns = [c if isinstance(c, Column) else Column(**c) for c in columns]
        self.lookups = {c.input: keras.layers.StringLookup(vocabulary=c.vocabulary or ["(none)"], num_oov_indices=1,
                                                            output_mode="one_hot", name=f"lookup_{c.input}")
                        for c in self.columns if c.kind == "categorical"}

    def build(self, input_shape=None):
        self.built = True  # the lookups' vocabularies are fixed: nothing to build

    def call(self, inputs):
        parts = []
        for c in self.columns:
            x = inputs[c.input]
            if c.kind == "categorical":
                onehot = keras.ops.cast(self.lookups[c.input](keras.ops.reshape(x, (-1,))), "float32")
                # StringLookup puts the out-of-vocabulary slot first; it goes last here.
                parts.append(keras.ops.concatenate([onehot[:, 1:], onehot[:, :1]], axis=-1)
                             if c.vocabulary else onehot[:, :1])
                continue
            x = keras.ops.reshape(keras.ops.cast(x, "float32"), (-1, 1))
            missing = keras.ops.isnan(x)
            z = (keras.ops.where(missing, c.fill, x) - c.mean) / c.std
            parts.append(keras.ops.clip(z, -CLIP, CLIP))
            if c.missing:
                parts.append(keras.ops.cast(missing, "float32"))
        return keras.ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        return (None, sum(c.width() for c in self.columns))

    def feature_names(self):
        return [name for c in self.columns for name in c.feature_names()]

    def feature_columns(self):
        """The column each feature comes from (one name per feature)."""
        return [c.name for c in self.columns for _ in range(c.width())]

    def get_config(self):
        return {**super().get_config(), "columns": [asdict(c) for c in self.columns]}


def encoder_model(columns):
    """The data's `preprocess` model: one named input per column -> the feature vector."""
    inputs = {c.input: keras.Input(shape=(), dtype=c.dtype, name=c.input) for c in columns}
    return keras.Model(inputs, TabularEncoder(columns, name="tabular_encoder")(inputs), name="tabular_preprocess")


def find_encoder(model):
    """The `TabularEncoder` inside a preprocess model, or None."""
    return next((layer for layer in getattr(model, "layers", []) if isinstance(layer, TabularEncoder)), None)


@keras.saving.register_keras_serializable(package="dlsuite")
class CalibratedOutput(keras.layers.Layer):
    """`[..., 1]` -> `[...]`: `offset + scale * x / temperature`. The temperature (1 while
    training) and a classifier's operating `threshold` are fitted on validation data after
    training and saved with the model; `offset`/`scale` put a regression output back in the
    target's units."""

    def __init__(self, offset=0.0, scale=1.0, **kwargs):
        super().__init__(**kwargs)
        self.offset, self.scale = float(offset), float(scale)
        self.temperature = self.add_weight(shape=(), initializer="ones", trainable=False, name="temperature")
        self.threshold = self.add_weight(shape=(), initializer=keras.initializers.Constant(0.5),
                                         trainable=False, name="threshold")

    def call(self, x):
        return self.offset + self.scale * x[..., 0] / self.temperature

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def get_config(self):
        return {**super().get_config(), "offset": self.offset, "scale": self.scale}


def _chain(model):
    """The layers of a chain-shaped model, nested models flattened, input layers left out."""
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _chain(layer)
        elif not isinstance(layer, keras.layers.InputLayer):
            yield layer


class MonteCarloDropout(keras.layers.Layer):
    """Runs a trained chain of layers `samples` times, each with its own dropout masks
    (Gal & Ghahramani, 2016): `[N, F]` -> `[samples, N, …]`. The masks are drawn once from
    `seed`, so the same record always gets the same spread: reproducible predictions, and
    exports that can be verified against Keras (TFLite freezes the masks as constants)."""

    def __init__(self, network, samples=50, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.network, self.samples = network, int(samples)
        self.layers_ = list(_chain(network))
        rng = np.random.default_rng(seed)
        self.masks = {}
        for layer in self.layers_:
            if isinstance(layer, keras.layers.Dropout) and layer.rate > 0:
                width = int(layer.input.shape[-1])
                keep = rng.random((self.samples, 1, width)) >= layer.rate
                self.masks[layer.name] = self.add_weight(
                    shape=(self.samples, 1, width), trainable=False, name=f"mask_{layer.name}",
                    initializer=keras.initializers.Constant(keep / (1 - layer.rate)))

    def call(self, x):
        h = keras.ops.repeat(keras.ops.expand_dims(x, 0), self.samples, axis=0)
        for layer in self.layers_:
            if isinstance(layer, keras.layers.Dropout):
                h = h * self.masks[layer.name] if layer.name in self.masks else h
            else:
                h = layer(h)
        return h
