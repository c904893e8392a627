"""SavedModel export: a ``serving_default`` signature on raw inputs, loadable without dlsuite.

The exported signature takes the model's raw input (for the vision classifier: uint8 images
``(None, H, W, C)``; preprocessing such as ``Rescaling`` is inside the graph) and returns
``{"probabilities": float32 (None, num_classes)}``::

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


def input_spec(model: "keras.Model", name: str = DEFAULT_INPUT_NAME) -> "tf.TensorSpec":
    """The raw-input ``TensorSpec`` of a single-input Keras model, batch dimension ``None``."""
    import tensorflow as tf

    inputs = model.inputs
    if not inputs or len(inputs) != 1:
        raise ValueError(
            "export supports models with exactly one input. "
            f"Received: model with {len(inputs or [])} inputs"
        )
    x = inputs[0]
    shape = (None,) + tuple(x.shape[1:])
    return tf.TensorSpec(shape, tf.as_dtype(x.dtype), name=name)


def export_savedmodel(
    model: "keras.Model",
    path: str | os.PathLike,
    *,
    input_name: str = DEFAULT_INPUT_NAME,
    output_name: str = DEFAULT_OUTPUT_NAME,
) -> Path:
    """Write ``model`` as a TF SavedModel at ``path`` (a directory; not atomic by itself —
    wrap in :func:`shared.export.atomic.atomic_path` or use :func:`shared.export.export_run`).

    The ``serving_default`` signature is ``{input_name: model input} -> {output_name: model
    output}``, dtype and shape taken from the model input with batch ``None``.
    """
    if len(model.outputs) != 1:
        raise ValueError(
            f"export supports models with exactly one output. Received: {len(model.outputs)} outputs"
        )
    import keras

    spec = input_spec(model, input_name)

    # The signature's argument is named by the spec (``images=``), not by this parameter.
    def serve(x):
        return {output_name: model(x, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE_KEY, serve, input_signature=[spec])
    archive.write_out(os.fspath(path), verbose=False)
    return Path(path)
