"""Parity checks: run an exported artifact the way a user without dlsuite would, compare it
with the Keras model's outputs on the same (held-out) images.

- SavedModel: a fresh ``python -I`` subprocess that imports only tensorflow and numpy.
- TFLite: the LiteRT ``Interpreter`` (``ai_edge_litert``), batched by resizing the input.

Both return ``{"format", "quantize", "max_abs_diff", "mean_abs_diff", "top1_agreement",
"tolerance", "passed", "size_bytes", "latency_ms_batch1", "num_images", "output_dtype"}``
and, when the artifact could not be run at all, ``"error"`` (with ``passed`` False) instead
of raising.

Tolerances (``TOLERANCES``) were measured on a small Fashion-MNIST CNN (Rescaling → Conv2D →
MaxPool → Flatten → Dense softmax, 2 epochs) over 1,000 held-out test images; observed
figures are in the comments, bounds leave headroom for bigger models.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# (format, quantize) -> bounds. top1_agreement is a lower bound, max_abs_diff an upper bound
# on |artifact - keras| over all probabilities.
TOLERANCES: dict[tuple[str, str], dict[str, float]] = {
    # observed 2e-7 .. 6e-7 (same TF kernels, separate process), agreement 1.0
    ("savedmodel", "none"): {"max_abs_diff": 1e-5, "top1_agreement": 1.0},
    # observed 1.5e-6 .. 3.6e-6 (TFLite/XNNPACK float kernels), agreement 1.0
    ("tflite", "none"): {"max_abs_diff": 1e-4, "top1_agreement": 1.0},
    # observed 6e-5 .. 4.4e-4, agreement 1.0
    ("tflite", "float16"): {"max_abs_diff": 5e-3, "top1_agreement": 0.99},
    # observed 1.8e-3 .. 1.1e-2, agreement 0.998 .. 1.0
    ("tflite", "dynamic"): {"max_abs_diff": 0.05, "top1_agreement": 0.97},
    # observed 2.6e-2 .. 3.8e-2, agreement 0.987 .. 0.993 (output step is 1/256)
    ("tflite", "int8"): {"max_abs_diff": 0.1, "top1_agreement": 0.95},
}

LATENCY_RUNS = 20  # batch-1 timings (median reported), after LATENCY_WARMUP untimed runs
LATENCY_WARMUP = 3
TFLITE_CHUNK = 256  # images per interpreter invocation when checking parity
SUBPROCESS_TIMEOUT_S = 600


def tolerance(fmt: str, quantize: str = "none") -> dict[str, float]:
    return dict(TOLERANCES[(fmt, quantize)])


def size_bytes(path: str | os.PathLike) -> int:
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def compare(outputs, reference, tol: dict[str, float]) -> dict:
    """Parity figures of ``outputs`` against ``reference`` (both ``(N, classes)``)."""
    out = np.asarray(outputs, dtype=np.float32)
    ref = np.asarray(reference, dtype=np.float32)
    if out.shape != ref.shape:
        return {"max_abs_diff": None, "mean_abs_diff": None, "top1_agreement": None,
                "passed": False,
                "error": f"output shape {out.shape} differs from reference shape {ref.shape}"}
    diff = np.abs(out - ref)
    max_abs = float(diff.max()) if diff.size else 0.0
    if not out.size:
        return {"max_abs_diff": 0.0, "mean_abs_diff": 0.0, "top1_agreement": 1.0,
                "top1_disagreements_on_near_ties": 0, "passed": True}
    disagree = out.argmax(-1) != ref.argmax(-1)
    agree = float(1.0 - disagree.mean())
    # A flip between two classes whose reference probabilities are within the allowed numeric
    # error of each other (a near-tie) is not a real disagreement; forgiven only where the
    # bound is exact agreement (float modes).
    top2 = np.sort(ref, axis=-1)[..., -2:] if ref.shape[-1] > 1 else np.zeros(ref.shape[:-1] + (2,))
    near_tie = (top2[..., 1] - top2[..., 0]) <= 2 * tol["max_abs_diff"]
    forgiven = int(np.sum(disagree & near_tie))
    real = int(disagree.sum()) - (forgiven if tol["top1_agreement"] >= 1.0 else 0)
    effective = 1.0 - real / len(out)
    passed = bool(np.isfinite(max_abs) and max_abs <= tol["max_abs_diff"]
                  and effective >= tol["top1_agreement"])
    return {"max_abs_diff": max_abs, "mean_abs_diff": float(diff.mean()), "top1_agreement": agree,
            "top1_disagreements_on_near_ties": forgiven, "passed": passed}


# --------------------------------------------------------------------------- SavedModel

# Runs in a fresh interpreter: tensorflow + numpy only, no dlsuite on the path (-I).
_SAVEDMODEL_SCRIPT = r"""
import json, os, sys, time, statistics
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
path, images_npy, out_npy, meta_json, runs, warmup = sys.argv[1:7]
runs, warmup = int(runs), int(warmup)
loaded = tf.saved_model.load(path)
fn = loaded.signatures["serving_default"]
(name, spec), = fn.structured_input_signature[1].items()
x = np.load(images_npy).astype(spec.dtype.as_numpy_dtype)
outs = []
for i in range(0, len(x), 512):
    res = fn(**{name: tf.constant(x[i:i + 512])})
    (out_name, y), = res.items()
    outs.append(y.numpy())
y = np.concatenate(outs) if outs else np.zeros((0,))
np.save(out_npy, y)
one = tf.constant(x[:1])
for _ in range(warmup):
    fn(**{name: one})
times = []
for _ in range(runs):
    t = time.perf_counter(); fn(**{name: one})[out_name].numpy(); times.append(time.perf_counter() - t)
json.dump({"input_name": name, "input_dtype": spec.dtype.name,
           "input_shape": [d for d in spec.shape.as_list()], "output_name": out_name,
           "output_dtype": str(y.dtype), "latency_ms_batch1": 1000 * statistics.median(times),
           "dlsuite_imported": any(m == "shared" or m.startswith(("shared.", "apps.")) for m in sys.modules)},
          open(meta_json, "w"))
"""


def run_savedmodel_subprocess(path, images, *, latency_runs: int = LATENCY_RUNS) -> tuple[np.ndarray, dict]:
    """Run ``serving_default`` of the SavedModel at ``path`` on ``images`` in a fresh process.

    Returns ``(outputs, meta)``; raises ``RuntimeError`` with the subprocess stderr tail if it
    fails.
    """
    with tempfile.TemporaryDirectory(prefix="dlsuite-verify-") as tmp:
        tmp = Path(tmp)
        np.save(tmp / "images.npy", np.asarray(images))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("PYTHONPATH", None)
        cmd = [sys.executable, "-I", "-c", _SAVEDMODEL_SCRIPT, os.fspath(Path(path).resolve()),
               str(tmp / "images.npy"), str(tmp / "out.npy"), str(tmp / "meta.json"),
               str(latency_runs), str(LATENCY_WARMUP)]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT_S)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"SavedModel failed to run in a fresh process (exit {proc.returncode}): {tail}")

        meta = json.loads((tmp / "meta.json").read_text())
        return np.load(tmp / "out.npy"), meta


def verify_savedmodel(path, images, reference) -> dict:
    """Load the SavedModel at ``path`` in a fresh process (no dlsuite), run it on ``images``
    and compare with ``reference`` (the Keras model's outputs on the same images)."""
    tol = tolerance("savedmodel", "none")
    result = {"format": "savedmodel", "quantize": "none", "tolerance": tol,
              "num_images": int(len(images)), "size_bytes": size_bytes(path) if Path(path).exists() else 0}
    try:
        if not (Path(path) / "saved_model.pb").is_file():
            raise RuntimeError(f"no SavedModel at {path} (saved_model.pb missing)")
        outputs, meta = run_savedmodel_subprocess(path, images)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return {**result, "max_abs_diff": None, "mean_abs_diff": None, "top1_agreement": None,
                "passed": False, "latency_ms_batch1": None, "output_dtype": None, "error": str(e)}
    result.update(compare(outputs, reference, tol))
    result.update({"latency_ms_batch1": meta["latency_ms_batch1"], "output_dtype": meta["output_dtype"],
                   "input_name": meta["input_name"], "input_dtype": meta["input_dtype"],
                   "input_shape": meta["input_shape"], "dlsuite_imported": meta["dlsuite_imported"]})
    if meta.get("dlsuite_imported"):
        result.update(passed=False, error="the verifier process imported dlsuite modules")
    return result


# --------------------------------------------------------------------------- TFLite


def _interpreter(path_or_bytes):
    from ai_edge_litert.interpreter import Interpreter

    if isinstance(path_or_bytes, (bytes, bytearray)):
        return Interpreter(model_content=bytes(path_or_bytes))
    return Interpreter(model_path=os.fspath(path_or_bytes))


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.issubdtype(y.dtype, np.floating):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    if not scale:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


def run_tflite(path_or_bytes, images, *, chunk: int = TFLITE_CHUNK, interpreter=None) -> np.ndarray:
    """Run a single-input, single-output ``.tflite`` on ``images``; returns float32 outputs
    (an int8 output is dequantized with its scale/zero point)."""
    it = interpreter or _interpreter(path_or_bytes)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = np.asarray(images).astype(inp["dtype"], copy=False)
    outs, current = [], None
    for i in range(0, len(x), chunk):
        batch = x[i : i + chunk]
        if current != batch.shape:
            it.resize_tensor_input(inp["index"], batch.shape)
            it.allocate_tensors()
            current = batch.shape
        it.set_tensor(inp["index"], batch)
        it.invoke()
        outs.append(_dequantize(it.get_tensor(out["index"]), out))
    return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


def _tflite_latency_ms(it, sample: np.ndarray, runs: int = LATENCY_RUNS) -> float:
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], sample.shape)
    it.allocate_tensors()
    times = []
    for i in range(LATENCY_WARMUP + runs):
        t = time.perf_counter()
        it.set_tensor(inp["index"], sample)
        it.invoke()
        it.get_tensor(it.get_output_details()[0]["index"])
        if i >= LATENCY_WARMUP:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def verify_tflite(path, images, reference, quantize: str | None = None) -> dict:
    """Run the ``.tflite`` at ``path`` in the LiteRT interpreter on ``images`` and compare with
    ``reference``. ``quantize`` selects the tolerance; if None it is read from the file name
    (``model_<mode>.tflite``; ``model.tflite`` = none)."""
    if quantize is None:
        stem = Path(path).stem
        quantize = stem.rsplit("_", 1)[-1] if "_" in stem else "none"
        if ("tflite", quantize) not in TOLERANCES:
            quantize = "none"
    tol = tolerance("tflite", quantize)
    result = {"format": "tflite", "quantize": quantize, "tolerance": tol,
              "num_images": int(len(images)), "size_bytes": size_bytes(path) if Path(path).exists() else 0}
    try:
        it = _interpreter(path)
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        outputs = run_tflite(None, images, interpreter=it)
        latency = _tflite_latency_ms(it, np.asarray(images[:1]).astype(inp["dtype"], copy=False))
    except (RuntimeError, ValueError, OSError) as e:
        return {**result, "max_abs_diff": None, "mean_abs_diff": None, "top1_agreement": None,
                "passed": False, "latency_ms_batch1": None, "output_dtype": None,
                "error": f"TFLite model failed to run: {e}"}
    result.update(compare(outputs, reference, tol))
    result.update({"latency_ms_batch1": latency, "input_dtype": np.dtype(inp["dtype"]).name,
                   "input_shape": [int(d) for d in inp["shape_signature"]],
                   "output_dtype": np.dtype(out["dtype"]).name,
                   "output_quantization": [float(out["quantization"][0]), int(out["quantization"][1])]})
    return result
