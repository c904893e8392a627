"""SavedModel export: a ``serving_default`` signature on raw inputs, loadable without dlsuite.

What is exported is a *serving model*: a Keras model whose inputs are the raw, named
inputs (``images`` uint8, ``text`` string, ``waveform`` float32, …) and whose output is a
dict of named outputs with all post-processing inside (``probabilities``; ``boxes``,
``scores``, ``classes``, ``num_detections``; ``mask``; …). A plain model with one output
is wrapped as ``{"images": …} -> {"probabilities": …}``::

    m = tf.saved_model.load(path)
    probs = m.signatures["serving_default"](images=tf.constant(uint8_batch))["probabilities"]
"""

from __future__ import annotations

import os
from pathlib import Path

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # TF/Keras are imported when used, so `import shared.export` stays light.
    import keras
    import tensorflow as tf

SIGNATURE_KEY = "serving_default"
DEFAULT_INPUT_NAME = "images"
DEFAULT_OUTPUT_NAME = "probabilities"


def is_serving_model(model: "keras.Model") -> bool:
    """True when ``model`` already maps named inputs to a dict of named outputs."""
    return isinstance(getattr(model, "_outputs_struct", None), dict)


def as_serving_model(model: "keras.Model", input_name: str = DEFAULT_INPUT_NAME,
                     output_name: str = DEFAULT_OUTPUT_NAME) -> "keras.Model":
    """``model`` if it is a serving model, else ``{input_name: x} -> {output_name: model(x)}``."""
    import keras

    if is_serving_model(model):
        return model
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ValueError("A model with several inputs or outputs must be a serving model "
                         f"(a dict of named outputs). Received: {len(model.inputs)} inputs, "
                         f"{len(model.outputs)} outputs")
    x = model.inputs[0]
    inputs = keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype, name=input_name)
    return keras.Model(inputs, {output_name: model(inputs)}, name=f"{model.name}_serving")


def input_specs(model: "keras.Model", batch_size: int | None = None) -> list["tf.TensorSpec"]:
    """The serving model's raw-input ``TensorSpec``s (batch ``batch_size``, default any),
    named as its inputs."""
    import tensorflow as tf

    model = as_serving_model(model)
    return [tf.TensorSpec((batch_size,) + tuple(x.shape[1:]), tf.as_dtype(x.dtype), name=x.name)
            for x in model.inputs]


def input_spec(model: "keras.Model") -> "tf.TensorSpec":
    """The single raw-input spec of a one-input model."""
    specs = input_specs(model)
    if len(specs) != 1:
        raise ValueError(f"Expected a model with one input. Received: {len(specs)} inputs")
    return specs[0]


def export_savedmodel(model: "keras.Model", path: str | os.PathLike, batch_size: int | None = None) -> Path:
    """Write the serving model of ``model`` as a TF SavedModel at ``path`` (a directory; not
    atomic by itself — use :func:`shared.export.export_run`).

    The ``serving_default`` signature takes the serving model's named inputs (any batch
    size, or exactly ``batch_size``) and returns its dict of named outputs.
    """
    import keras

    from shared.export.endpoints import Endpoints, _positional, write_endpoints

    if isinstance(model, Endpoints):
        write_endpoints(model, path)
        return Path(path)
    serving = as_serving_model(model)
    specs = input_specs(serving, batch_size)

    names = [s.name for s in specs]
    by_key = ({key: names.index(tensor.name) for key, tensor in serving.input.items()}
              if isinstance(serving.input, dict) else None)

    def serve(*args):  # the signature's arguments are named by the specs
        if len(args) == 1:
            return serving(args[0], training=False)
        return serving({k: args[i] for k, i in by_key.items()} if by_key else list(args), training=False)

    archive = keras.export.ExportArchive()
    archive.track(serving)
    archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=specs)
    for name, (fn, fn_specs) in extra_signatures(model).items():
        archive.add_endpoint(name, _positional(fn, [s.name for s in fn_specs]), input_signature=list(fn_specs))
    archive.write_out(os.fspath(path), verbose=False)
    return Path(path)


EXTRA_SIGNATURES = "_dlsuite_extra_signatures"


def with_extra_signatures(model, signatures):
    """`model` carrying more signatures for its SavedModel and TFLite exports: {name: (fn,
    [tf.TensorSpec named as fn's keyword inputs])}, fn returning a dict of named tensors over
    the model's own layers (e.g. a decoder's cached step beside its `serving_default`)."""
    object.__setattr__(model, EXTRA_SIGNATURES, dict(signatures))  # not tracked as a Keras attribute
    return model


def extra_signatures(model) -> dict:
    return getattr(model, EXTRA_SIGNATURES, None) or {}
