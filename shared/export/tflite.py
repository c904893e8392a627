"""TFLite export with optional post-training quantization.

All modes keep the model's raw input: the ``.tflite`` takes uint8 images ``(-1, H, W, C)``
(batch resizable with ``resize_tensor_input``) and the ``Rescaling`` stays inside the graph.

Modes (``QUANTIZE_MODES``):

- ``none``: float32 weights and activations. Output float32 probabilities.
- ``dynamic``: int8 weights, float activations (dynamic-range quantization). Output float32.
- ``float16``: float16 weights, float32 compute. Output float32.
- ``int8``: full-integer post-training quantization calibrated on ``representative_images``
  (real training images, uint8); only int8 builtin ops. Input stays raw uint8 (no
  quantization parameters: it is the image itself). **Output is int8** with quantization
  ``(scale=1/256, zero_point=-128)`` for softmax probabilities; dequantize with
  ``(q.astype(float32) - zero_point) * scale`` (see :func:`shared.export.verify.run_tflite`).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from shared.errors import UserError
from shared.export.savedmodel import SIGNATURE_KEY, export_savedmodel, input_spec

if TYPE_CHECKING:  # TF/Keras are imported when used, so `import shared.export` stays light.
    import keras

QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")
INT8_OUTPUT_DTYPE = np.int8
MAX_CALIBRATION_IMAGES = 300


def check_quantize(mode: str) -> str:
    if mode not in QUANTIZE_MODES:
        raise UserError(f"unknown quantize mode {mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    return mode


def _calibration_set(model: "keras.Model", images) -> np.ndarray:
    if images is None:
        raise UserError(
            "int8 quantization needs representative images (a sample of real training images) to calibrate"
        )
    spec = input_spec(model)
    images = np.asarray(images)
    if images.ndim != len(spec.shape) or tuple(images.shape[1:]) != tuple(spec.shape[1:]):
        raise UserError(
            f"representative images have shape {images.shape}; the model takes "
            f"(N, {', '.join(str(d) for d in spec.shape[1:])})"
        )
    if len(images) == 0:
        raise UserError("representative images are empty; int8 quantization needs some to calibrate")
    if len(images) > MAX_CALIBRATION_IMAGES:
        idx = np.random.default_rng(0).choice(len(images), MAX_CALIBRATION_IMAGES, replace=False)
        images = images[np.sort(idx)]
    return images.astype(spec.dtype.as_numpy_dtype, copy=False)


def convert_saved_model(saved_model_dir, quantize: str = "none", representative_images=None,
                        *, model: "keras.Model | None" = None) -> bytes:
    """Convert an exported SavedModel (``serving_default``) to TFLite bytes."""
    import tensorflow as tf

    check_quantize(quantize)
    converter = tf.lite.TFLiteConverter.from_saved_model(
        os.fspath(saved_model_dir), signature_keys=[SIGNATURE_KEY]
    )
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if model is None:
            raise ValueError("int8 conversion needs the Keras model to check the calibration images")
        calib = _calibration_set(model, representative_images)
        input_name = input_spec(model).name

        def representative_dataset():
            for i in range(len(calib)):
                yield {input_name: calib[i : i + 1]}

        converter.representative_dataset = representative_dataset
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8  # the raw image dtype; not re-quantized
        converter.inference_output_type = tf.int8
    with warnings.catch_warnings():
        # int8 calibration uses the deprecated tf.lite.Interpreter internally (TF 2.21).
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return converter.convert()


def export_tflite(
    model: "keras.Model",
    path: str | os.PathLike,
    quantize: str = "none",
    representative_images=None,
    *,
    saved_model_dir: str | os.PathLike | None = None,
) -> Path:
    """Write ``model`` as a ``.tflite`` file at ``path`` (not atomic by itself).

    Converts from ``saved_model_dir`` if given (an export of this same model), else from a
    temporary SavedModel export. ``quantize`` is one of ``QUANTIZE_MODES``; ``int8`` requires
    ``representative_images`` (uint8, shape ``(N, H, W, C)``), else ``UserError``.
    """
    check_quantize(quantize)
    if quantize == "int8":
        _calibration_set(model, representative_images)  # fail fast, before exporting
    if saved_model_dir is not None:
        content = convert_saved_model(saved_model_dir, quantize, representative_images, model=model)
    else:
        with tempfile.TemporaryDirectory(prefix="dlsuite-tflite-") as tmp:
            sm = export_savedmodel(model, Path(tmp) / "saved_model")
            content = convert_saved_model(sm, quantize, representative_images, model=model)
    Path(path).write_bytes(content)
    return Path(path)
