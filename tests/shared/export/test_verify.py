import json
import shutil

import numpy as np
import pytest

import shared.export as export
from shared.errors import UserError
from shared.export import ExportError, export_run
from shared.export.verify import compare, tolerance, verify_savedmodel, verify_tflite

KEYS = {"format", "quantize", "max_abs_diff", "top1_agreement", "tolerance", "passed",
        "size_bytes", "latency_ms_batch1"}


def _wrong(reference):
    return np.roll(reference, 1, axis=1)  # a different class wins on every image


def test_result_dicts_have_the_contract_keys(exported):
    _, results = exported
    assert set(results) == {"savedmodel", "tflite", "tflite_dynamic", "tflite_float16", "tflite_int8"}
    for r in results.values():
        assert KEYS <= set(r)
        assert set(r["tolerance"]) == {"max_abs_diff", "top1_agreement"}
    assert json.loads(json.dumps(results)) == results  # plain JSON for metrics.json


def test_wrong_reference_fails_tflite(exported, fashion, reference):
    run_dir, _ = exported
    r = verify_tflite(run_dir / "model_int8.tflite", fashion[2], _wrong(reference))
    assert r["quantize"] == "int8"  # read from the file name
    assert r["passed"] is False and r["top1_agreement"] < 0.5
    ok = verify_tflite(run_dir / "model_int8.tflite", fashion[2], reference)
    assert ok["passed"] is True and ok["output_dtype"] == "int8"


def test_unloadable_artifacts_are_reported_not_raised(tmp_path, fashion, reference):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(b"not a flatbuffer")
    r = verify_tflite(bad, fashion[2], reference)
    assert r["passed"] is False and "error" in r
    r = verify_savedmodel(tmp_path / "missing", fashion[2][:2], reference[:2])
    assert r["passed"] is False and "saved_model.pb missing" in r["error"]


def test_shape_mismatch_fails():
    r = compare(np.zeros((3, 10)), np.zeros((3, 5)), tolerance("tflite", "none"))
    assert r["passed"] is False and "shape" in r["error"]


def test_float_near_ties_are_forgiven_but_real_flips_are_not():
    tol = tolerance("tflite", "none")
    ref = np.array([[0.5, 0.5 - 1e-6, 0.0], [0.9, 0.05, 0.05]], np.float32)
    tie_flip = np.array([[0.5 - 1e-6, 0.5, 0.0], [0.9, 0.05, 0.05]], np.float32)
    r = compare(tie_flip, ref, tol)
    assert r["top1_agreement"] == 0.5 and r["top1_disagreements_on_near_ties"] == 1
    assert r["passed"] is True
    real_flip = np.array([[0.5, 0.5 - 1e-6, 0.0], [0.05, 0.9, 0.05]], np.float32)
    assert compare(real_flip, ref, tol)["passed"] is False


def test_failed_verification_leaves_no_artifact_and_keeps_previous(
        exported, classifier, fashion, tmp_path, monkeypatch):
    good_dir, _ = exported
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copy(good_dir / "model.tflite", run_dir / "model.tflite")  # a previous good export
    previous = (run_dir / "model.tflite").read_bytes()
    real = export.reference_outputs
    monkeypatch.setattr(export, "reference_outputs", lambda m, x: {k: _wrong(v) for k, v in real(m, x).items()})
    with pytest.raises(ExportError) as info:
        export_run(classifier, run_dir, formats=("savedmodel", "tflite"),
                   quantize=("none", "dynamic"), heldout_inputs=fashion[2][:50])
    results = info.value.results
    assert "savedmodel" in str(info.value) and "tflite_dynamic" in str(info.value)
    assert results["savedmodel"]["max_abs_diff"] > 0.01  # ran in the subprocess, disagreed
    assert {k: r["passed"] for k, r in results.items()} == {
        "savedmodel": False, "tflite": False, "tflite_dynamic": False}
    assert sorted(p.name for p in run_dir.iterdir()) == ["model.tflite"]  # no temps, no new files
    assert (run_dir / "model.tflite").read_bytes() == previous


def test_export_run_argument_errors(classifier, fashion, tmp_path):
    with pytest.raises(UserError, match="format"):
        export_run(classifier, tmp_path, formats=("onnx",), heldout_inputs=fashion[2])
    with pytest.raises(UserError, match="quantize"):
        export_run(classifier, tmp_path, quantize="int3", heldout_inputs=fashion[2])
    with pytest.raises(UserError, match="representative"):
        export_run(classifier, tmp_path, quantize=("int8",), heldout_inputs=fashion[2])
    with pytest.raises(UserError, match="held-out"):
        export_run(classifier, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_export_run_single_tflite_mode(classifier, fashion, tmp_path):
    x, _, xt = fashion
    results = export_run(classifier, tmp_path, formats="tflite", quantize="float16",
                         heldout_inputs=xt[:64])
    assert list(results) == ["tflite_float16"] and results["tflite_float16"]["passed"]
    assert results["tflite_float16"]["num_images"] == 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model_float16.tflite"]
