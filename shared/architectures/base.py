"""Pieces shared by the builders."""

import keras


class ArgsConfig:
    """`get_config`/`from_config` over the constructor arguments named in `_ARGS`.

    `config_value(arg)` gives each argument's config value: by default the attribute of the
    same name (`input_shape` from `input_shape_`: a Keras model's own `input_shape` is
    read-only), tuples as lists (as JSON makes them). Override it for an argument stored
    otherwise."""

    _ARGS = ()

    def config_value(self, arg):
        value = getattr(self, "input_shape_" if arg == "input_shape" else arg)
        return list(value) if isinstance(value, tuple) else value

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable, **{arg: self.config_value(arg) for arg in self._ARGS}}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def weighted_mean(values, weights, axis=1):
    """`sum(values * weights) / max(sum(weights), 1)` over `axis`: a masked mean that is 0,
    not NaN, where every weight is 0 (an all-padding row). `weights` broadcast to `values`."""
    weights = keras.ops.cast(weights, values.dtype)
    return keras.ops.sum(values * weights, axis=axis) / keras.ops.maximum(keras.ops.sum(weights, axis=axis), 1.0)
