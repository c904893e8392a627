"""Counterfactual outcome networks for treatment effects — TARNet and CFR (Shalit et al.,
2017) and Dragonnet (Shi et al., 2019) — trained as R independent copies in one graph.

Every weight has a leading realisation axis (`StackedDense`): copy r sees the same
covariates and learns its own outcome surfaces, so R benchmark realisations (or R seeds of
one data set) train in one pass instead of R runs. A copy's outputs are `[batch, R]`.
"""

import keras
import numpy as np

from shared.architectures import register
from shared.architectures.base import ArgsConfig


@keras.saving.register_keras_serializable(package="dlsuite")
class StackedDense(keras.layers.Layer):
    """R dense layers side by side: `[B, F]` (shared input) or `[B, R, F]` -> `[B, R, units]`."""

    def __init__(self, copies, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.copies, self.units = int(copies), int(units)
        self.activation = keras.activations.get(activation)

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.kernel = self.add_weight(shape=(self.copies, fan_in, self.units), name="kernel",
                                      initializer=keras.initializers.GlorotUniform())
        self.bias = self.add_weight(shape=(self.copies, self.units), name="bias", initializer="zeros")

    def call(self, x):
        if len(x.shape) == 2:
            y = keras.ops.einsum("bf,rfu->bru", x, self.kernel)
        else:
            y = keras.ops.einsum("brf,rfu->bru", x, self.kernel)
        return self.activation(y + self.bias)

    def get_config(self):
        return {**super().get_config(), "copies": self.copies, "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


@keras.saving.register_keras_serializable(package="dlsuite")
@register("counterfactual", variants={
    # IHDP's 25 covariates; the widths of the papers (Shalit et al.: 3 x 200 and 2 x 100).
    "tarnet": dict(input_dim=25, representation=(200, 200, 200), head=(100, 100), propensity_head=False),
    "cfr": dict(input_dim=25, representation=(200, 200, 200), head=(100, 100), propensity_head=False),
    "dragonnet": dict(input_dim=25, representation=(200, 200, 200), head=(100, 100), propensity_head=True),
})
class CounterfactualNet(ArgsConfig, keras.Model):
    """Shared representation Φ(x) → two outcome heads h0, h1 (TARNet; CFR adds an IPM
    penalty on Φ in its loss), and a propensity head g(Φ). With `propensity_head` (Dragonnet)
    g trains the representation; otherwise g reads Φ through a stop-gradient, so the
    propensity is estimated without changing TARNet/CFR. Dragonnet's targeted-regularisation
    ε is one weight per copy.

    Call: features `[B, F]` -> {"y0", "y1", "propensity", "epsilon": [B, R], "phi": [B, R, d]}
    (outcomes in the training scale: standardised per copy). `masks` (a list of one array
    per dropout position, each `[S, 1, R, width]`) runs S Monte Carlo copies with fixed
    dropout masks instead: every output gets a leading S axis.
    """

    _ARGS = ("input_dim", "copies", "representation", "head", "propensity_head", "dropout", "activation")

    def __init__(self, input_dim, copies=1, representation=(200, 200, 200), head=(100, 100),
                 propensity_head=False, dropout=0.0, activation="elu", name=None, **kwargs):
        for arg, value in (("input_dim", input_dim), ("copies", copies)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be an int >= 1. Received: {arg}={value}")
        for arg, value in (("representation", representation), ("head", head)):
            if not value or any(not isinstance(w, int) or w < 1 for w in value):
                raise ValueError(f"`{arg}` must be a non-empty sequence of positive ints. Received: {arg}={value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        super().__init__(name=name, **kwargs)
        self.input_dim, self.copies = int(input_dim), int(copies)
        self.representation, self.head = [int(w) for w in representation], [int(w) for w in head]
        self.propensity_head, self.dropout, self.activation = bool(propensity_head), float(dropout), activation
        r = self.copies
        self.phi_layers = [StackedDense(r, w, activation, name=f"phi_{i}") for i, w in enumerate(self.representation)]
        self.heads = {arm: [StackedDense(r, w, activation, name=f"{arm}_{i}") for i, w in enumerate(self.head)]
                      + [StackedDense(r, 1, name=f"{arm}_out")] for arm in ("y0", "y1")}
        self.y0_layers, self.y1_layers = self.heads["y0"], self.heads["y1"]  # tracked
        self.g_layers = [StackedDense(r, self.head[-1] if self.head else 32, activation, name="g_0"),
                         StackedDense(r, 1, "sigmoid", name="g_out")]
        self.epsilon = self.add_weight(shape=(r,), initializer="zeros", name="epsilon")
        self.seed_generator = keras.random.SeedGenerator(0)
        self.built = True
        self(keras.ops.zeros((1, self.input_dim)))

    def subset(self, copies):
        """A network of only the given copies (their weights, in that order): what an export
        of one realisation carries instead of all R."""
        index = list(copies)
        config = {**self.get_config(), "copies": len(index), "name": f"{self.name}_subset"}
        net = type(self).from_config(config)
        for mine, theirs in zip(net.weights, self.weights):
            value = keras.ops.convert_to_numpy(theirs)
            mine.assign(value[index] if value.ndim and value.shape[0] == self.copies else value)
        return net

    def dropout_widths(self):
        """The width at each dropout position (after every hidden layer of Φ and the heads)."""
        return list(self.representation) + list(self.head) * 2

    def call(self, features, training=False, masks=None):
        sampled = masks is not None
        h = features
        if sampled:  # [S, B, F]: the same records under S fixed dropout masks
            h = keras.ops.repeat(keras.ops.expand_dims(features, 0), len(masks[0]) if masks else 1, axis=0)
        position = [0]

        def drop(x):
            if sampled:
                x = x * masks[position[0]]
            elif self.dropout and training:
                x = keras.random.dropout(x, self.dropout, seed=self.seed_generator)
            position[0] += 1
            return x

        for layer in self.phi_layers:
            h = drop(self._dense(layer, h, sampled))
        phi = h
        out = {}
        for arm in ("y0", "y1"):
            z = phi
            for layer in self.heads[arm][:-1]:
                z = drop(self._dense(layer, z, sampled))
            out[arm] = self._dense(self.heads[arm][-1], z, sampled)[..., 0]
        g_in = phi if self.propensity_head else keras.ops.stop_gradient(phi)
        g = g_in
        for layer in self.g_layers:
            g = self._dense(layer, g, sampled)
        out["propensity"] = g[..., 0]
        out["epsilon"] = keras.ops.zeros_like(out["y0"]) + self.epsilon
        out["phi"] = phi
        return out

    @staticmethod
    def _dense(layer, x, sampled):
        if not sampled:
            return layer(x)
        s = keras.ops.shape(x)[0]
        flat = keras.ops.reshape(x, (-1,) + tuple(x.shape[2:]))  # [S*B, (R,) F]
        y = layer(flat)
        return keras.ops.reshape(y, (s, -1) + tuple(y.shape[1:]))


def dropout_masks(net, samples, seed, rate):
    """Fixed Monte Carlo dropout masks for `net`: one `[S, 1, R, width]` array per position."""
    rng = np.random.default_rng(seed)
    return [((rng.random((samples, 1, net.copies, w)) >= rate) / (1 - rate)).astype(np.float32)
            for w in net.dropout_widths()]
