import numpy as np
import pytest

from shared.errors import UserError
from shared.export import tflite_filename
from shared.export.tflite import export_tflite
from shared.export.verify import TOLERANCES

MODES = ("none", "dynamic", "float16", "int8")


@pytest.mark.parametrize("mode", MODES)
def test_reloads_in_litert_and_agrees(exported, fashion, reference, mode):
    from ai_edge_litert.interpreter import Interpreter

    run_dir, results = exported
    xt = fashion[2]
    it = Interpreter(model_path=str(run_dir / tflite_filename(mode)))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    assert inp["dtype"] == np.uint8  # raw images in, every mode
    assert list(inp["shape_signature"]) == [-1, 28, 28, 1]
    it.resize_tensor_input(inp["index"], xt.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], xt)
    it.invoke()
    y = it.get_tensor(out["index"])
    if mode == "int8":
        assert out["dtype"] == np.int8
        scale, zero_point = out["quantization"]
        assert (scale, zero_point) == (pytest.approx(1 / 256), -128)
        y = (y.astype(np.float32) - zero_point) * scale
    else:
        assert out["dtype"] == np.float32
    assert y.shape == (len(xt), 10)
    tol = TOLERANCES[("tflite", mode)]
    assert np.abs(y - reference).max() <= tol["max_abs_diff"]
    assert np.mean(y.argmax(1) == reference.argmax(1)) >= tol["top1_agreement"]

    key = "tflite" if mode == "none" else f"tflite_{mode}"
    r = results[key]
    assert r["passed"] is True and r["quantize"] == mode and r["format"] == "tflite"
    assert r["max_abs_diff"] == pytest.approx(float(np.abs(y - reference).max()), abs=1e-6)
    assert r["size_bytes"] == (run_dir / tflite_filename(mode)).stat().st_size
    assert 0 < r["latency_ms_batch1"] < 1000


def test_quantized_models_are_smaller(exported):
    _, r = exported
    float_size = r["tflite"]["size_bytes"]
    assert r["tflite_int8"]["size_bytes"] < 0.4 * float_size
    assert r["tflite_dynamic"]["size_bytes"] < 0.4 * float_size
    assert r["tflite_float16"]["size_bytes"] < 0.6 * float_size


def test_int8_requires_representative_images(classifier, tmp_path):
    with pytest.raises(UserError, match="representative images"):
        export_tflite(classifier, tmp_path / "m.tflite", "int8")
    with pytest.raises(UserError, match="shape"):
        export_tflite(classifier, tmp_path / "m.tflite", "int8",
                      representative_inputs=np.zeros((4, 32, 32, 3), np.uint8))
    assert not (tmp_path / "m.tflite").exists()


def test_unknown_quantize_mode(classifier, tmp_path):
    with pytest.raises(UserError, match="unknown quantize mode 'int4'"):
        export_tflite(classifier, tmp_path / "m.tflite", "int4")


def test_export_tflite_direct_without_savedmodel(classifier, fashion, tmp_path):
    from shared.export.verify import run_tflite

    path = export_tflite(classifier, tmp_path / "m.tflite")
    x = fashion[2][:5]
    np.testing.assert_allclose(run_tflite(path, x)["probabilities"], np.asarray(classifier(x)), atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tflite"]  # temp SavedModel cleaned up


def test_masked_bidirectional_lstm_converts_at_batch_one(tmp_path):
    """Keras's masked LSTM lowers to TensorList ops TFLite only takes with a static shape."""
    import keras

    from shared import architectures
    from shared.export.verify import run_tflite

    keras.utils.set_random_seed(0)
    net = architectures.build("bilstm_classifier", vocabulary_size=30, units=(4,), embedding_dim=4)
    tokens = keras.Input(shape=(8,), dtype="int32", name="token_ids")
    model = keras.Model(tokens, net(tokens))
    ids = np.array([[3, 5, 7, 0, 0, 0, 0, 0], [9, 8, 7, 6, 5, 4, 3, 2], [1, 0, 0, 0, 0, 0, 0, 0]], np.int32)
    path = export_tflite(model, tmp_path / "m.tflite")
    out = run_tflite(path, {"token_ids": ids})["probabilities"]
    np.testing.assert_allclose(out, np.asarray(model(ids)), atol=1e-5)
