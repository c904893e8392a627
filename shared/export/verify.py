"""Parity checks: run an exported artifact the way a user without dlsuite would, compare it
with the Keras serving model's outputs on the same (held-out) inputs.

- SavedModel: a fresh ``python -I`` subprocess that imports only tensorflow and numpy.
- TFLite: the LiteRT ``Interpreter`` (``ai_edge_litert``) through its ``serving_default``
  signature runner, batched by resizing the inputs.

Inputs and outputs are dicts by name (a single array is taken as the one input/output).
The comparison is the task's *parity* function ``parity(outputs, reference, fmt,
quantize) -> {"passed", "tolerance", figures…}``; the default,
:func:`probability_parity`, compares class probabilities by max |diff| and top-1.
Both verifiers return ``{"format", "quantize", "tolerance", "passed", "size_bytes",
"latency_ms_batch1", "num_images", "inputs", "outputs", "parity", figures…}`` and, when the
artifact could not be run at all, ``"error"`` (with ``passed`` False) instead of raising.

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


def probability_parity(outputs: dict, reference: dict, fmt: str, quantize: str = "none") -> dict:
    """Default parity: the one float output, class probabilities by max |diff| and top-1; a
    value per example (`(N,)`, e.g. a regression score) by max |diff| relative to the largest
    reference magnitude (at least 1)."""
    tol = tolerance(fmt, quantize)
    name = "probabilities" if "probabilities" in reference else next(iter(reference))
    if name not in outputs:
        return {"passed": False, "tolerance": tol, "error": f"output {name!r} missing"}
    out, ref = np.asarray(outputs[name], np.float32), np.asarray(reference[name], np.float32)
    if ref.ndim == 1:
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        out, ref = out.reshape(-1, 1) / scale, ref[:, None] / scale
    return {**compare(out, ref, tol), "tolerance": tol}


def _picklefree(x):
    """`x` as an array `np.load` reads without pickle: strings become fixed-width UTF-8 bytes."""
    x = np.asarray(x)
    if x.dtype == object or x.dtype.kind == "U":
        return np.asarray([v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in x.reshape(-1)],
                          dtype=bytes).reshape(x.shape)
    return x


def _as_dict(x, name):
    return x if isinstance(x, dict) else {name: x}


def _count(inputs: dict) -> int:
    """Examples in a batch of inputs: the length of the first batched (rank >= 1) input."""
    return int(next((len(v) for v in inputs.values() if np.ndim(v) >= 1), 1))


def _figures(result: dict) -> dict:
    """The numeric parity figures of a result (for the model card and the CLI)."""
    return {k: v for k, v in result.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("num_images",)}


def _check(outputs, reference, fmt, quantize, parity):
    missing = sorted(set(reference) - set(outputs))
    if missing:
        return {"passed": False, "error": f"outputs missing from the artifact: {', '.join(missing)}"}
    result = (parity or probability_parity)(outputs, reference, fmt, quantize)
    result["parity"] = _figures({k: v for k, v in result.items() if k != "tolerance"})
    return result


# --------------------------------------------------------------------------- SavedModel

# Runs in a fresh interpreter: tensorflow + numpy only, no dlsuite on the path (-I).
# Calls each signature named in the plan on its inputs (batched inputs in chunks of 256,
# unbatched scalars whole); outputs of signatures other than serving_default are keyed
# "signature/output".
_SAVEDMODEL_SCRIPT = r"""
import json, os, sys, time, statistics
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import tensorflow as tf
path, plan_json, out_npz, meta_json, runs, warmup = sys.argv[1:7]
runs, warmup = int(runs), int(warmup)
loaded = tf.saved_model.load(path)
outs, meta, first = {}, {"signatures": {}}, None
for signature, inputs_npz in json.load(open(plan_json)).items():
    fn = loaded.signatures[signature]
    specs = fn.structured_input_signature[1]
    data = np.load(inputs_npz)
    x = {name: data[name].astype(spec.dtype.as_numpy_dtype) if spec.dtype != tf.string else data[name]
         for name, spec in specs.items()}
    batched = [k for k, s in specs.items() if s.shape.rank]
    n = len(x[batched[0]]) if batched else 1
    parts = {}
    for i in range(0, n, 256):
        res = fn(**{k: tf.constant(v[i:i + 256] if k in batched else v) for k, v in x.items()})
        for k, y in res.items():
            parts.setdefault(k if signature == "serving_default" else signature + "/" + k, []).append(y.numpy())
    outs.update({k: np.concatenate(v) for k, v in parts.items()})
    meta["signatures"][signature] = {
        "inputs": [{"name": k, "dtype": s.dtype.name, "shape": s.shape.as_list()} for k, s in specs.items()],
        "outputs": [{"name": k, "dtype": s.dtype.name, "shape": s.shape.as_list()}
                    for k, s in fn.structured_outputs.items()]}
    if first is None or signature == "serving_default":
        first = (fn, {k: tf.constant(v[:1] if k in batched else v) for k, v in x.items()})
np.savez(out_npz, **{k: v.astype(bytes) if v.dtype == object else v for k, v in outs.items()})
fn, one = first
for _ in range(warmup):
    fn(**one)
times = []
for _ in range(runs):
    t = time.perf_counter(); [y.numpy() for y in fn(**one).values()]; times.append(time.perf_counter() - t)
meta.update(latency_ms_batch1=1000 * statistics.median(times),
            dlsuite_imported=any(m == "shared" or m.startswith(("shared.", "apps.")) for m in sys.modules))
json.dump(meta, open(meta_json, "w"))
"""


def run_savedmodel_subprocess(path, inputs, *, latency_runs: int = LATENCY_RUNS) -> tuple[dict, dict]:
    """Run the SavedModel at ``path`` in a fresh process: ``serving_default`` on ``inputs``
    (a dict by input name), or each signature on its inputs when ``inputs`` is a dict by
    signature of such dicts. Returns ``(outputs by name, meta)``; raises ``RuntimeError``
    with the subprocess stderr tail if it fails."""
    plan = inputs if all(isinstance(v, dict) for v in inputs.values()) else {"serving_default": inputs}
    with tempfile.TemporaryDirectory(prefix="dlsuite-verify-") as tmp:
        tmp = Path(tmp)
        files = {}
        for i, (signature, x) in enumerate(plan.items()):
            files[signature] = str(tmp / f"inputs{i}.npz")
            np.savez(files[signature], **{k: _picklefree(v) for k, v in x.items()})
        (tmp / "plan.json").write_text(json.dumps(files))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env.pop("PYTHONPATH", None)
        cmd = [sys.executable, "-I", "-c", _SAVEDMODEL_SCRIPT, os.fspath(Path(path).resolve()),
               str(tmp / "plan.json"), str(tmp / "out.npz"), str(tmp / "meta.json"),
               str(latency_runs), str(LATENCY_WARMUP)]
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True,
                              timeout=SUBPROCESS_TIMEOUT_S)
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"SavedModel failed to run in a fresh process (exit {proc.returncode}): {tail}")
        meta = json.loads((tmp / "meta.json").read_text())
        default = meta["signatures"].get("serving_default") or next(iter(meta["signatures"].values()))
        meta.update(inputs=default["inputs"], outputs=default["outputs"])
        with np.load(tmp / "out.npz") as out:
            return {k: out[k] for k in out.files}, meta


def _signature_fields(meta_inputs, meta_outputs) -> dict:
    fields = {"inputs": meta_inputs, "outputs": meta_outputs}
    if len(meta_inputs) == 1:
        fields.update(input_name=meta_inputs[0]["name"], input_dtype=meta_inputs[0]["dtype"],
                      input_shape=meta_inputs[0]["shape"])
    if meta_outputs:
        fields["output_dtype"] = meta_outputs[0]["dtype"]
    return fields


def verify_savedmodel(path, inputs, reference, parity=None, input_name="images") -> dict:
    """Load the SavedModel at ``path`` in a fresh process (no dlsuite), run it on ``inputs``
    and compare with ``reference`` (the Keras serving model's outputs on the same inputs).
    ``inputs`` may be a dict by signature of input dicts (``Endpoints``); ``reference`` then
    holds every signature's outputs (``signature/output`` beyond serving_default)."""
    inputs = _as_dict(inputs, input_name)
    reference = _as_dict(reference, "probabilities")
    multi = all(isinstance(v, dict) for v in inputs.values())
    result = {"format": "savedmodel", "quantize": "none",
              "num_images": _count(inputs.get("serving_default") or next(iter(inputs.values()))) if multi
              else _count(inputs),
              "size_bytes": size_bytes(path) if Path(path).exists() else 0}
    try:
        if not (Path(path) / "saved_model.pb").is_file():
            raise RuntimeError(f"no SavedModel at {path} (saved_model.pb missing)")
        outputs, meta = run_savedmodel_subprocess(path, inputs)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        return {**result, "passed": False, "latency_ms_batch1": None, "tolerance": None,
                "max_abs_diff": None, "top1_agreement": None, "output_dtype": None, "error": str(e)}
    result.update(_check(outputs, reference, "savedmodel", "none", parity))
    result.update({"latency_ms_batch1": meta["latency_ms_batch1"], "dlsuite_imported": meta["dlsuite_imported"],
                   **_signature_fields(meta["inputs"], meta["outputs"])})
    if multi:
        result["signatures"] = meta["signatures"]
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
    if not np.issubdtype(y.dtype, np.integer) or y.dtype in (np.int32, np.int64):
        return y
    scale, zero_point = detail["quantization"]
    if not scale:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


def run_tflite(path_or_bytes, inputs, *, chunk: int = TFLITE_CHUNK, interpreter=None,
               input_name: str = "images") -> dict:
    """Run a ``.tflite``'s ``serving_default`` signature on ``inputs`` (a dict by input name,
    or one array); returns its outputs by name (int8-quantized float outputs dequantized)."""
    it = interpreter or _interpreter(path_or_bytes)
    details_in, details_out = _signature_details(it)
    runner = it.get_signature_runner("serving_default")
    x = _match_inputs(details_in, _as_dict(inputs, input_name))
    if any(d["shape_signature"][0] == 1 for d in details_in.values()):
        chunk = 1  # converted at a fixed batch of 1 (recurrent layers)
    outs = {}
    for i in range(0, _count(x), chunk):
        res = runner(**{k: v[i:i + chunk] for k, v in x.items()})
        for k, y in res.items():
            outs.setdefault(k, []).append(_dequantize(np.array(y), details_out[k]))
        del res, y  # no views into the interpreter may outlive a resize
    return {k: np.concatenate(v) for k, v in outs.items()}


def _match_inputs(details_in: dict, inputs: dict) -> dict:
    """Inputs keyed and typed as the signature wants (a single input may be named differently)."""
    if len(details_in) == 1 and set(inputs) != set(details_in):
        inputs = {next(iter(details_in)): next(iter(inputs.values()))}
    return {k: np.asarray(inputs[k]).astype(d["dtype"], copy=False) for k, d in details_in.items()}


def _signature_details(it) -> tuple[dict, dict]:
    """(inputs, outputs) details of the ``serving_default`` signature, by name. The runner is
    dropped at once: while one exists the interpreter refuses its own low-level calls."""
    runner = it.get_signature_runner("serving_default")
    return runner.get_input_details(), runner.get_output_details()


def _tflite_latency_ms(it, sample: dict, runs: int = LATENCY_RUNS) -> float:
    """Median batch-1 latency with tensors allocated once (set, invoke, read every output).
    A file of several signatures runs `serving_default` through its signature runner (the
    low-level calls reach the first subgraph only, which may be another signature)."""
    if len(it.get_signature_list()) > 1:
        runner = it.get_signature_runner("serving_default")
        times = []
        for i in range(LATENCY_WARMUP + runs):
            t = time.perf_counter()
            runner(**sample)
            if i >= LATENCY_WARMUP:
                times.append(time.perf_counter() - t)
        del runner
        return 1000 * statistics.median(times)
    details_in, details_out = _signature_details(it)
    for k, v in sample.items():
        it.resize_tensor_input(details_in[k]["index"], v.shape)
    it.allocate_tensors()
    times = []
    for i in range(LATENCY_WARMUP + runs):
        t = time.perf_counter()
        for k, v in sample.items():
            it.set_tensor(details_in[k]["index"], v)
        it.invoke()
        for d in details_out.values():
            it.get_tensor(d["index"])
        if i >= LATENCY_WARMUP:
            times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def tflite_latency_ms(path, sample: dict, runs: int = LATENCY_RUNS) -> float:
    """Median batch-1 latency (ms) of the TFLite model at ``path`` on ``sample`` (inputs by name)."""
    it = _interpreter(path)
    return _tflite_latency_ms(it, _match_inputs(_signature_details(it)[0], sample), runs)


def _quantize_from_name(path) -> str:
    stem = Path(path).stem
    quantize = stem.rsplit("_", 1)[-1] if "_" in stem else "none"
    return quantize if ("tflite", quantize) in TOLERANCES else "none"


def verify_tflite(path, inputs, reference, quantize: str | None = None, parity=None,
                  input_name: str = "images") -> dict:
    """Run the ``.tflite`` at ``path`` in the LiteRT interpreter on ``inputs`` and compare with
    ``reference``. ``quantize`` selects the tolerance; if None it is read from the file name
    (``model_<mode>.tflite``; ``model.tflite`` = none)."""
    quantize = quantize or _quantize_from_name(path)
    inputs = _as_dict(inputs, input_name)
    reference = _as_dict(reference, "probabilities")
    result = {"format": "tflite", "quantize": quantize, "num_images": _count(inputs),
              "size_bytes": size_bytes(path) if Path(path).exists() else 0}
    try:
        it = _interpreter(path)
        details_in, details_out = _signature_details(it)
        outputs = run_tflite(None, inputs, interpreter=it)
        latency = _tflite_latency_ms(it, {k: v[:1] for k, v in _match_inputs(details_in, inputs).items()})
    except (RuntimeError, ValueError, OSError, KeyError) as e:
        return {**result, "passed": False, "latency_ms_batch1": None, "tolerance": None,
                "max_abs_diff": None, "top1_agreement": None, "output_dtype": None,
                "error": f"TFLite model failed to run: {e}"}
    result.update(_check(outputs, reference, "tflite", quantize, parity))
    result["latency_ms_batch1"] = latency
    describe = lambda d: {"name": d[0], "dtype": np.dtype(d[1]["dtype"]).name,  # noqa: E731
                          "shape": [int(s) for s in d[1]["shape_signature"]]}
    result.update(_signature_fields([describe(d) for d in details_in.items()],
                                    [describe(d) for d in details_out.items()]))
    if len(details_out) == 1:
        q = next(iter(details_out.values()))["quantization"]
        result["output_quantization"] = [float(q[0]), int(q[1])]
    return result
