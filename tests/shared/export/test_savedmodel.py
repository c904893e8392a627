import numpy as np

from shared.export.savedmodel import export_savedmodel
from shared.export.verify import TOLERANCES


def test_signature_takes_raw_uint8_images(exported):
    import tensorflow as tf

    run_dir, _ = exported
    loaded = tf.saved_model.load(str(run_dir / "saved_model"))
    fn = loaded.signatures["serving_default"]
    (name, spec), = fn.structured_input_signature[1].items()
    assert name == "images"
    assert spec.dtype == tf.uint8
    assert spec.shape.as_list() == [None, 28, 28, 1]
    assert list(fn.structured_outputs) == ["probabilities"]
    assert fn.structured_outputs["probabilities"].dtype == tf.float32


def test_reloads_in_fresh_process_without_dlsuite_and_agrees(exported, fashion):
    # export_run verified the temp SavedModel in a `python -I` subprocess (tensorflow + numpy only)
    _, results = exported
    r = results["savedmodel"]
    assert r["passed"] is True and r["format"] == "savedmodel" and r["path"] == "saved_model"
    assert r["dlsuite_imported"] is False
    assert r["input_name"] == "images" and r["input_dtype"] == "uint8"
    assert r["input_shape"] == [None, 28, 28, 1] and r["output_dtype"] == "float32"
    assert r["max_abs_diff"] <= TOLERANCES[("savedmodel", "none")]["max_abs_diff"]
    assert r["top1_agreement"] == 1.0 and r["num_images"] == len(fashion[2])
    assert r["size_bytes"] > 10_000 and r["latency_ms_batch1"] > 0


def test_export_savedmodel_direct_and_in_process(classifier, fashion, tmp_path):
    import tensorflow as tf

    path = export_savedmodel(classifier, tmp_path / "sm")
    assert (path / "saved_model.pb").is_file() and (path / "variables").is_dir()
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    x = fashion[2][:7]
    got = fn(images=tf.constant(x))["probabilities"].numpy()
    np.testing.assert_allclose(got, np.asarray(classifier(x)), atol=1e-6)
