"""Exports that run without dlsuite, written atomically and verified before they are kept.

``export_run(model, run_dir, ...)`` writes ``run_dir/saved_model/`` and
``run_dir/model.tflite`` / ``run_dir/model_<mode>.tflite``. Each artifact is written to a
hidden temp sibling, verified there against the Keras model on held-out images, and only
then moved into place; a failed verification removes the temp and keeps any previous good
artifact. Results are keyed ``savedmodel``, ``tflite`` (quantize none), ``tflite_<mode>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import numpy as np

from shared.errors import UserError
from shared.export.atomic import atomic_path, atomic_write_json, atomic_write_text
from shared.export.model_card import write_model_card
from shared.export.savedmodel import export_savedmodel
from shared.export.tflite import QUANTIZE_MODES, check_quantize, export_tflite
from shared.export.verify import TOLERANCES, verify_savedmodel, verify_tflite

__all__ = [
    "ExportError", "export_run", "export_savedmodel", "export_tflite", "verify_savedmodel",
    "verify_tflite", "write_model_card", "atomic_path", "atomic_write_text", "atomic_write_json",
    "tflite_filename", "result_key", "reference_outputs", "FORMATS", "QUANTIZE_MODES", "TOLERANCES",
]

FORMATS = ("savedmodel", "tflite")
MAX_VERIFY_IMAGES = 1000


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


def reference_outputs(model, images, batch_size: int = 256) -> np.ndarray:
    """The Keras model's outputs on ``images`` (direct calls, no ``predict``: safe under a
    distribution strategy and for tiny batches)."""
    outs = [np.asarray(model(images[i : i + batch_size], training=False))
            for i in range(0, len(images), batch_size)]
    return np.concatenate(outs).astype(np.float32)


def _as_tuple(value, name) -> tuple:
    if isinstance(value, str):
        return (value,)
    try:
        return tuple(value)
    except TypeError:
        raise UserError(f"{name} must be a name or a list of names; got {value!r}") from None


def export_run(
    model,
    run_dir: str | os.PathLike,
    formats: Iterable[str] = FORMATS,
    quantize: Iterable[str] | str = ("none",),
    representative_images=None,
    heldout_images=None,
    *,
    max_verify_images: int = MAX_VERIFY_IMAGES,
) -> dict:
    """Export ``model`` into ``run_dir`` in each format (TFLite in each quantize mode),
    verify each on ``heldout_images`` (first ``max_verify_images``; falls back to
    ``representative_images``), and keep only the ones that pass.

    Returns ``{result_key: result}`` (see :mod:`shared.export.verify`; each result also has
    ``path``, relative to ``run_dir``). Raises ``ExportError`` listing the failures after
    writing the ones that passed; ``UserError`` for bad arguments (unknown format/mode, int8
    without representative images, no images to verify on).
    """
    formats = _as_tuple(formats, "formats")
    modes = _as_tuple(quantize, "quantize")
    for f in formats:
        if f not in FORMATS:
            raise UserError(f"unknown export format {f!r}; choose from {', '.join(FORMATS)}")
    for m in modes:
        check_quantize(m)
    if "tflite" in formats and "int8" in modes and representative_images is None:
        raise UserError("int8 quantization needs representative images (a sample of training images)")
    images = heldout_images if heldout_images is not None else representative_images
    if images is None or len(images) == 0:
        raise UserError("export verification needs held-out images")
    images = np.asarray(images[:max_verify_images])
    reference = reference_outputs(model, images)

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    failures: list[str] = []
    saved_model_ok = None  # a verified SavedModel to convert TFLite from

    def attempt(fmt, mode, rel, write, verify):
        key = result_key(fmt, mode)
        nonlocal saved_model_ok
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
            why = r.get("error") or (f"max_abs_diff={r['max_abs_diff']:.3g}, "
                                     f"top1_agreement={r['top1_agreement']:.3f}, tolerance={r['tolerance']}")
            failures.append(f"{key}: {why}")
            return False
        except UserError:
            raise
        except Exception as e:  # conversion/export crashed: report, keep going
            results[key] = {"format": fmt, "quantize": mode, "passed": False, "path": rel,
                            "error": f"{type(e).__name__}: {e}"}
            failures.append(f"{key}: {type(e).__name__}: {e}")
            return False
        return True

    if "savedmodel" in formats:
        ok = attempt("savedmodel", "none", "saved_model", lambda tmp: export_savedmodel(model, tmp),
                     lambda tmp: verify_savedmodel(tmp, images, reference))
        if ok:
            saved_model_ok = run_dir / "saved_model"
    if "tflite" in formats:
        for mode in modes:
            attempt("tflite", mode, tflite_filename(mode),
                    lambda tmp, mode=mode: export_tflite(model, tmp, mode, representative_images,
                                                         saved_model_dir=saved_model_ok),
                    lambda tmp, mode=mode: verify_tflite(tmp, images, reference, quantize=mode))
    if failures:
        raise ExportError("export failed: " + "; ".join(failures), results)
    return results
