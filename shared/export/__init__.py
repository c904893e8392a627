"""Exports that run without dlsuite, written atomically and verified before they are kept.

``export_run(model, run_dir, ...)`` exports a *serving model* (named raw inputs -> dict of
named outputs, post-processing inside; a plain one-output model is wrapped as
``images -> probabilities``) to ``run_dir/saved_model/`` and ``run_dir/model.tflite`` /
``run_dir/model_<mode>.tflite``. Each artifact is written to a hidden temp sibling,
verified there against the Keras serving model on held-out inputs with the task's parity
function, and only then moved into place; a failed verification removes the temp and keeps
any previous good artifact. Results are keyed ``savedmodel``, ``tflite`` (quantize none),
``tflite_<mode>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from shared.errors import UserError
from shared.export.atomic import atomic_path, atomic_write_json, atomic_write_text
from shared.export.endpoints import Endpoints
from shared.export.model_card import write_model_card
from shared.export.savedmodel import as_serving_model, export_savedmodel
from shared.export.tflite import QUANTIZE_MODES, as_input_dict, check_quantize, export_tflite
from shared.export.verify import TOLERANCES, probability_parity, verify_savedmodel, verify_tflite

__all__ = [
    "ExportError", "export_run", "export_savedmodel", "export_tflite", "verify_savedmodel",
    "verify_tflite", "write_model_card", "atomic_path", "atomic_write_text", "atomic_write_json",
    "tflite_filename", "result_key", "reference_outputs", "FORMATS", "QUANTIZE_MODES", "TOLERANCES",
    "as_serving_model", "probability_parity",
]

FORMATS = ("savedmodel", "tflite")
MAX_VERIFY_EXAMPLES = 1000


class ExportError(RuntimeError):
    """One or more exports failed (conversion error or failed parity check).

    ``results`` holds every export's result dict (the passing ones were written)."""

    def __init__(self, message: str, results: dict):
        super().__init__(message)
        self.results = results


class _VerificationFailed(Exception):
    """Raised inside ``atomic_path`` so the unverified temp artifact is discarded."""


def tflite_filename(quantize: str) -> str:
    return "model.tflite" if quantize == "none" else f"model_{quantize}.tflite"


def result_key(fmt: str, quantize: str = "none") -> str:
    if fmt == "savedmodel":
        return "savedmodel"
    return "tflite" if quantize == "none" else f"tflite_{quantize}"


def reference_outputs(model, inputs, batch_size: int = 256):
    """The Keras (serving) model's outputs on ``inputs``: a dict by output name for a serving
    model, an array for a plain one. Direct calls, no ``predict``: safe under a
    distribution strategy and for tiny batches."""
    import tensorflow as tf

    plain = not isinstance(inputs, dict) and len(model.inputs) == 1
    x = {model.inputs[0].name: inputs} if plain else inputs
    n = len(next(iter(x.values())))
    call = tf.function(lambda batch: model(batch if len(batch) > 1 else next(iter(batch.values())),
                                           training=False), reduce_retracing=True)
    outs = []
    for i in range(0, n, batch_size):
        outs.append(tf.nest.map_structure(np.asarray, call({k: v[i:i + batch_size] for k, v in x.items()})))
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *outs)


def _as_tuple(value, name) -> tuple:
    if isinstance(value, str):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise UserError(f"{name} must be a name or a list of names; got {value!r}") from None


def _slice(inputs: dict, n: int) -> dict:
    return {k: v[:n] for k, v in inputs.items()}


def export_run(
    model,
    run_dir: str | os.PathLike,
    formats: Iterable[str] = FORMATS,
    quantize: Iterable[str] | str = ("none",),
    representative_inputs=None,
    heldout_inputs=None,
    *,
    parity=None,
    max_verify_examples: int = MAX_VERIFY_EXAMPLES,
) -> dict:
    """Export ``model``'s serving model into ``run_dir`` in each format (TFLite in each
    quantize mode), verify each on ``heldout_inputs`` (first ``max_verify_examples``; falls
    back to ``representative_inputs``) with ``parity`` (default: class probabilities), and
    keep only the ones that pass. Inputs are one array or a dict by input name.

    Returns ``{result_key: result}`` (see :mod:`shared.export.verify`; each result also has
    ``path``, relative to ``run_dir``). Raises ``ExportError`` listing the failures after
    writing the ones that passed; ``UserError`` for bad arguments (unknown format/mode, int8
    without representative inputs, no inputs to verify on).
    """
    formats = _as_tuple(formats, "formats")
    modes = _as_tuple(quantize, "quantize")
    for f in formats:
        if f not in FORMATS:
            raise UserError(f"unknown export format {f!r}; choose from {', '.join(FORMATS)}")
    for m in modes:
        check_quantize(m)
    if "tflite" in formats and "int8" in modes and representative_inputs is None:
        raise UserError("int8 quantization needs representative images (a sample of training inputs)")
    inputs = heldout_inputs if heldout_inputs is not None else representative_inputs
    if inputs is None or len(inputs) == 0:
        raise UserError("export verification needs held-out images")
    if isinstance(model, Endpoints):  # several signatures, SavedModel only
        if "tflite" in formats:
            raise UserError("a serving graph of several signatures exports as SavedModel; TFLite takes its core model")
        serving = model
        inputs = model.verify_inputs(inputs)
        reference = model.run_all(inputs)
    else:
        serving = as_serving_model(model)
        inputs = _slice(as_input_dict(serving, inputs), max_verify_examples)
        if representative_inputs is not None:
            representative_inputs = as_input_dict(serving, representative_inputs)
        reference = reference_outputs(serving, inputs)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    failures: list[str] = []
    saved_model_ok = None  # a verified SavedModel to convert TFLite from

    def attempt(fmt, mode, rel, write, verify):
        key = result_key(fmt, mode)
        try:
            with atomic_path(run_dir / rel) as tmp:
                write(tmp)
                res = verify(tmp)
                res["path"] = rel
                results[key] = res
                if not res["passed"]:
                    raise _VerificationFailed
        except _VerificationFailed:
            r = results[key]
            why = r.get("error") or ", ".join(f"{k}={v:.4g}" for k, v in r.get("parity", {}).items())
            failures.append(f"{key}: {why} (tolerance {r.get('tolerance')})")
            return False
        except UserError:
            raise
        except Exception as e:  # conversion/export crashed: report, keep going
            results[key] = {"format": fmt, "quantize": mode, "passed": False, "path": rel,
                            "error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
            failures.append(f"{key}: {results[key]['error']}")
            return False
        return True

    if "savedmodel" in formats:
        ok = attempt("savedmodel", "none", "saved_model", lambda tmp: export_savedmodel(serving, tmp),
                     lambda tmp: verify_savedmodel(tmp, inputs, reference, parity=parity))
        if ok:
            saved_model_ok = run_dir / "saved_model"
    if "tflite" in formats:
        for mode in modes:
            attempt("tflite", mode, tflite_filename(mode),
                    lambda tmp, mode=mode: export_tflite(serving, tmp, mode, representative_inputs,
                                                         saved_model_dir=saved_model_ok),
                    lambda tmp, mode=mode: verify_tflite(tmp, inputs, reference, quantize=mode, parity=parity))
    if failures:
        raise ExportError("export failed: " + "; ".join(failures), results)
    return results
