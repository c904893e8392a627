"""Serving graphs that one Keras model cannot express: several named signatures, and inputs
without a batch dimension (a text generator's `max_new_tokens`, `temperature`, `seed` …).

A task's `serving(model, info)` may return `Endpoints` instead of a Keras model; the
exporter writes every signature into the SavedModel and verifies each in a fresh process.
Output names of signatures other than `serving_default` are prefixed with the signature
name (`score/log_prob`) wherever outputs of all signatures are compared together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

DEFAULT = "serving_default"


@dataclass
class Endpoints:
    """signatures: {name: (fn, [tf.TensorSpec named as the inputs])}; `fn(**tensors)`
    returns a dict of named tensors. A spec of rank 0 is an unbatched (scalar) input.
    track: the Keras models whose variables the functions use.
    defaults: values of the unbatched inputs of `serving_default`, for `predict`.
    verify_inputs: (held-out inputs of the trained model) -> {signature: {input: array}},
    what the exports are compared on."""

    signatures: dict
    track: list
    defaults: dict = field(default_factory=dict)
    verify_inputs: Callable | None = None

    def __call__(self, inputs, training=False, signature=DEFAULT):
        """Runs a signature; `inputs` is a dict by name, or the one batched input's array
        (the unbatched ones then take `defaults`)."""
        import tensorflow as tf

        fn, specs = self.signatures[signature]
        if not isinstance(inputs, dict):
            batched = [s.name for s in specs if s.shape.rank]
            inputs = {batched[0]: inputs}
        values = {s.name: tf.constant(inputs[s.name] if s.name in inputs else self.defaults[s.name], s.dtype)
                  for s in specs}
        return fn(**values)

    def run_all(self, inputs_by_signature, batch_size=256):
        """Outputs of every signature on its inputs, as one flat dict of numpy arrays
        (`name` for serving_default, `signature/name` for the others); batched inputs go
        through in chunks of `batch_size`."""
        import tensorflow as tf

        out = {}
        for signature, inputs in inputs_by_signature.items():
            fn, specs = self.signatures[signature]
            call = tf.function(fn, input_signature=specs)
            n = max((len(np.asarray(inputs[s.name])) for s in specs if s.shape.rank), default=1)
            parts = []
            for i in range(0, n, batch_size):
                chunk = {s.name: tf.constant(np.asarray(inputs[s.name])[i:i + batch_size] if s.shape.rank
                                             else inputs[s.name], s.dtype) for s in specs}
                parts.append({k: np.asarray(v) for k, v in call(**chunk).items()})
            for name in parts[0]:
                out[output_key(signature, name)] = np.concatenate([p[name] for p in parts])
        return out


def _positional(fn, names):
    """`fn` taking its named inputs positionally (a signature's arguments come in spec order)."""

    def call(*args):
        return fn(**dict(zip(names, args)))

    return call


def output_key(signature, name):
    return name if signature == DEFAULT else f"{signature}/{name}"


def write_endpoints(endpoints: Endpoints, path) -> None:
    """Writes every signature of `endpoints` as a SavedModel at `path`."""
    import keras

    archive = keras.export.ExportArchive()
    for model in endpoints.track:
        archive.track(model)
    for signature, (fn, specs) in endpoints.signatures.items():
        archive.add_endpoint(signature, _positional(fn, [s.name for s in specs]), input_signature=list(specs))
    archive.write_out(str(path), verbose=False)
