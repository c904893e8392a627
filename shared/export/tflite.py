"""TFLite export of a serving model, with optional post-training quantization.

Every mode keeps the raw inputs (uint8 images stay uint8, batch resizable) and the
serving model's named outputs (``get_signature_runner("serving_default")``).

Modes (``QUANTIZE_MODES``):

- ``none``: float32 weights and activations.
- ``dynamic``: int8 weights, float activations (dynamic-range quantization).
- ``float16``: float16 weights, float32 compute.
- ``int8``: full-integer post-training quantization calibrated on real training inputs.
  Only int8 builtin ops where the graph allows it; a graph with ops that have no int8
  kernel (NMS, argmax over a mask, …) keeps those in float (``TFLITE_BUILTINS`` allowed).
  Layers of the serving model that set ``keep_float_in_int8 = True`` (box decoding, whose
  arithmetic int8 cannot carry) stay float too: their ops are left out of quantization by
  the converter's selective quantization (``QuantizationDebugOptions(denylisted_nodes=…)``).
  A model with a single float output (class probabilities) **outputs int8** with
  quantization ``(scale=1/256, zero_point=-128)``; dequantize with
  ``(q.astype(float32) - zero_point) * scale`` (:func:`shared.export.verify.run_tflite`
  does). Other outputs keep their dtype.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np

from shared.errors import UserError
from shared.export.savedmodel import SIGNATURE_KEY, as_serving_model, export_savedmodel, input_specs

if TYPE_CHECKING:  # TF/Keras are imported when used, so `import shared.export` stays light.
    import keras

QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")
INT8_OUTPUT_DTYPE = np.int8
MAX_CALIBRATION_EXAMPLES = 300


def check_quantize(mode: str) -> str:
    if mode not in QUANTIZE_MODES:
        raise UserError(f"unknown quantize mode {mode!r}; choose one of {', '.join(QUANTIZE_MODES)}")
    return mode


def as_input_dict(model: "keras.Model", inputs) -> dict:
    """``inputs`` (one array, or a dict by input name) as ``{name: np.ndarray}``."""
    names = [spec.name for spec in input_specs(model)]
    if not isinstance(inputs, dict):
        if len(names) != 1:
            raise UserError(f"the model takes {len(names)} inputs ({', '.join(names)}); pass a dict of arrays")
        inputs = {names[0]: inputs}
    missing = set(names) - set(inputs)
    if missing:
        raise UserError(f"missing model inputs: {', '.join(sorted(missing))}")
    return {name: np.asarray(inputs[name]) for name in names}


def _calibration_set(model: "keras.Model", inputs) -> dict:
    if inputs is None:
        raise UserError(
            "int8 quantization needs representative images (a sample of real training inputs) to calibrate"
        )
    inputs = as_input_dict(model, inputs)
    for spec in input_specs(model):
        x = inputs[spec.name]
        if x.ndim != len(spec.shape) or any(d is not None and d != s for d, s in zip(spec.shape[1:], x.shape[1:])):
            raise UserError(
                f"representative images have shape {x.shape}; the model takes "
                f"(N, {', '.join(str(d) for d in spec.shape[1:])})"
            )
        if len(x) == 0:
            raise UserError("representative images are empty; int8 quantization needs some to calibrate")
    n = len(next(iter(inputs.values())))
    if n > MAX_CALIBRATION_EXAMPLES:
        idx = np.sort(np.random.default_rng(0).choice(n, MAX_CALIBRATION_EXAMPLES, replace=False))
        inputs = {k: v[idx] for k, v in inputs.items()}
    return {spec.name: inputs[spec.name].astype(spec.dtype.as_numpy_dtype, copy=False)
            for spec in input_specs(model)}


def signature_keys(saved_model_dir) -> list:
    """The signature names of a SavedModel (read from its saved_model.pb, nothing loaded),
    `serving_default` first: it becomes the TFLite file's first subgraph, the one the
    interpreter's low-level calls (`set_tensor`, `invoke`) run."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    return sorted((k for k in proto.meta_graphs[0].signature_def if not k.startswith("__")),
                  key=lambda k: (k != SIGNATURE_KEY, k))


def convert_saved_model(saved_model_dir, quantize: str = "none", representative_inputs=None,
                        *, model: "keras.Model | None" = None) -> bytes:
    """Convert an exported SavedModel (``serving_default``) to TFLite bytes."""
    import tensorflow as tf

    check_quantize(quantize)

    def converter_for(ops, mode=quantize):
        # every signature (a model's `with_extra_signatures` too), but int8 calibrates serving_default alone
        keys = [SIGNATURE_KEY] if mode == "int8" else signature_keys(saved_model_dir)
        converter = tf.lite.TFLiteConverter.from_saved_model(os.fspath(saved_model_dir), signature_keys=keys)
        if mode != "none":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if mode == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if mode == "int8":
            calib = _calibration_set(model, representative_inputs)
            n = len(next(iter(calib.values())))
            converter.representative_dataset = lambda: ({k: v[i:i + 1] for k, v in calib.items()}
                                                        for i in range(n))
            converter.target_spec.supported_ops = ops
            specs = input_specs(model)
            if all(s.dtype == tf.uint8 for s in specs):
                converter.inference_input_type = tf.uint8  # the raw image dtype; not re-quantized
            serving = as_serving_model(model)
            if len(serving.outputs) == 1 and serving.outputs[0].dtype in ("float32", "float16"):
                converter.inference_output_type = tf.int8
        return converter

    with warnings.catch_warnings():
        # int8 calibration uses the deprecated tf.lite.Interpreter internally (TF 2.21).
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        if quantize != "int8":
            return converter_for(None).convert()
        if model is None:
            raise ValueError("int8 conversion needs the Keras model to check the calibration inputs")
        float_layers = float_layer_names(model)
        if not float_layers:
            try:  # full integer where every op has an int8 kernel
                return converter_for([tf.lite.OpsSet.TFLITE_BUILTINS_INT8]).convert()
            except Exception:  # post-processing without int8 kernels stays float
                pass
        converter = converter_for([tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS])
        if not float_layers:
            return converter.convert()
        return _selectively_quantized(converter, converter_for(None, "none").convert(), float_layers)


def float_layer_names(model) -> list:
    """Names of the serving model's layers (nested models' included) that must stay float
    under int8 quantization."""
    import keras

    def flat(layers):
        for layer in layers:
            yield layer
            if isinstance(layer, keras.Model):
                yield from flat(layer.layers)

    return [layer.name for layer in flat(as_serving_model(model).layers) if getattr(layer, "keep_float_in_int8", False)]


def _selectively_quantized(converter, float_content: bytes, layer_names) -> bytes:
    """int8 conversion leaving every tensor computed inside `layer_names` in float."""
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    names = [d["name"] for d in Interpreter(model_content=float_content).get_tensor_details()]
    # TF names a layer's ops `<scope>/<layer name>[_<k>]/<op>`.
    inside = re.compile("(^|/)(" + "|".join(re.escape(n) for n in layer_names) + r")(_\d+)?/")
    denylist = [n for n in names if inside.search(n)]
    if not denylist:
        raise RuntimeError(f"no TFLite tensors found for the float layers {layer_names}")
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter, debug_dataset=converter.representative_dataset,
        debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=denylist))
    return debugger.get_nondebug_quantized_model()


def export_tflite(
    model: "keras.Model",
    path: str | os.PathLike,
    quantize: str = "none",
    representative_inputs=None,
    *,
    saved_model_dir: str | os.PathLike | None = None,
) -> Path:
    """Write ``model``'s serving model as a ``.tflite`` file at ``path`` (not atomic by itself).

    Converts from ``saved_model_dir`` if given (an export of this same model), else from a
    temporary SavedModel export. ``int8`` requires ``representative_inputs`` (real
    training inputs), else ``UserError``.
    """
    check_quantize(quantize)
    if quantize == "int8":
        _calibration_set(model, representative_inputs)  # fail fast, before exporting
    try:
        if saved_model_dir is not None:
            content = convert_saved_model(saved_model_dir, quantize, representative_inputs, model=model)
        else:
            with tempfile.TemporaryDirectory(prefix="dlsuite-tflite-") as tmp:
                sm = export_savedmodel(model, Path(tmp) / "saved_model")
                content = convert_saved_model(sm, quantize, representative_inputs, model=model)
    except Exception as e:
        if "TensorListReserve" not in str(e):
            raise
        # Keras RNNs (masked LSTM/GRU) lower to TensorList ops that TFLite builtins only take
        # with a static element shape: convert at batch 1 (LiteRT runs one example per call).
        with tempfile.TemporaryDirectory(prefix="dlsuite-tflite-") as tmp:
            sm = export_savedmodel(model, Path(tmp) / "saved_model", batch_size=1)
            content = convert_saved_model(sm, quantize, representative_inputs, model=model)
    Path(path).write_bytes(content)
    return Path(path)
