import contextlib
import io
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.architectures.detection import Detector
from shared.architectures.detection_postprocess import (
    MAX_LOG_SCALE, DetectionPostprocess, box_iou, decode_boxes, encode_boxes, xyxy_to_yxyx,
)

OUTPUTS = {"boxes": (np.float32, (100, 4)), "scores": (np.float32, (100,)),
           "classes": (np.int32, (100,)), "num_detections": (np.int32, ())}


def test_box_coding():
    anchor = tf.constant([[0.0, 0.0, 10.0, 10.0]])  # yxyx
    boxes = tf.constant([[0.0, 5.0, 10.0, 15.0], [5.0, 0.0, 15.0, 10.0], [0.0, 0.0, 20.0, 5.0]])
    deltas = encode_boxes(boxes, anchor).numpy()
    # (ty, tx, th, tw) / (0.1, 0.1, 0.2, 0.2)
    np.testing.assert_allclose(deltas, [[0, 5, 0, 0], [5, 0, 0, 0], [5, -2.5, np.log(2) / 0.2, np.log(0.5) / 0.2]],
                               atol=1e-5)
    np.testing.assert_allclose(decode_boxes(deltas, anchor), boxes, atol=1e-4)
    huge = decode_boxes(tf.constant([[0.0, 0.0, 1e4, 1e4]]), anchor).numpy()
    np.testing.assert_allclose(huge[0, 2] - huge[0, 0], 10 * np.exp(MAX_LOG_SCALE), rtol=1e-5)  # clamped
    xyxy = np.array([[1, 2, 3, 4]], "float32")
    np.testing.assert_array_equal(xyxy_to_yxyx(xyxy), [[2, 1, 4, 3]])
    np.testing.assert_array_equal(xyxy_to_yxyx(tf.constant(xyxy)).numpy(), [[2, 1, 4, 3]])
    iou = box_iou(tf.constant([[0.0, 0, 10, 10]]), tf.constant([[0.0, 5, 10, 15], [20.0, 20, 30, 30], [0, 0, 0, 0]]))
    np.testing.assert_allclose(iou, [[1 / 3, 0, 0]], atol=1e-6)


def _hand_made():
    # Anchors (xyxy) in a 40×40 image; zero deltas decode to the anchors themselves.
    anchors = np.array([
        [0, 0, 10, 10],     # 0: class 0, 0.9
        [1, 0, 11, 10],     # 1: class 0, 0.8 — IoU 0.82 with 0: suppressed
        [20, 20, 30, 30],   # 2: class 1, 0.7
        [21, 20, 31, 30],   # 3: class 2, 0.6 — overlaps 2 but another class: kept
        [30, 30, 45, 45],   # 4: class 0, 0.5 — clipped to the image
        [0, 30, 5, 35],     # 5: class 1, 0.01 — under the score threshold
    ], "float32")
    probs = np.full((2, 6, 3), 0.001, "float32")
    for i, (c, s) in enumerate([(0, 0.9), (0, 0.8), (1, 0.7), (2, 0.6), (0, 0.5), (1, 0.01)]):
        probs[0, i, c] = s
    return anchors, {"classes": tf.constant(probs), "boxes": tf.zeros((2, 6, 4))}


def test_decode_and_nms_numbers():
    anchors, inputs = _hand_made()
    layer = DetectionPostprocess(anchors, (40, 40), max_detections=5, score_threshold=0.05)
    out = {k: v.numpy() for k, v in layer(inputs).items()}
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {
        "boxes": (np.float32, (2, 5, 4)), "scores": (np.float32, (2, 5)), "classes": (np.int32, (2, 5)),
        "num_detections": (np.int32, (2,))}
    assert out["num_detections"].tolist() == [4, 0]
    np.testing.assert_allclose(out["scores"][0], [0.9, 0.7, 0.6, 0.5, 0], rtol=1e-6)
    assert out["classes"][0].tolist() == [0, 1, 2, 0, 0]
    np.testing.assert_allclose(out["boxes"][0], [[0, 0, 10, 10], [20, 20, 30, 30], [20, 21, 30, 31],
                                                 [30, 30, 40, 40], [0, 0, 0, 0]], atol=1e-4)
    for key in ("boxes", "scores", "classes"):
        assert not out[key][1].any()  # image 2: nothing above the threshold, all rows zero
    # Batch of one, and class-agnostic overlap: same class for 2 and 3 → 3 is suppressed.
    probs = inputs["classes"].numpy()[:1]
    probs[0, 3] = probs[0, 3, [0, 2, 1]]
    single = layer({"classes": tf.constant(probs), "boxes": tf.zeros((1, 6, 4))})
    assert single["num_detections"].numpy().tolist() == [3]


def test_config_round_trip_and_validation():
    anchors, inputs = _hand_made()
    layer = DetectionPostprocess(anchors, (40, 40), max_detections=5, iou_threshold=0.6, name="post")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(restored, DetectionPostprocess) and restored.get_config() == layer.get_config()
    for key, value in layer(inputs).items():
        np.testing.assert_array_equal(restored(inputs)[key], value)
    with pytest.raises(ValueError, match="anchors"):
        layer({"classes": tf.zeros((1, 7, 3)), "boxes": tf.zeros((1, 7, 4))})
    for kwargs, match in [(dict(anchors=np.zeros((3, 5))), "anchors"), (dict(image_size=(40,)), "image_size"),
                          (dict(max_detections=0), "max_detections"), (dict(iou_threshold=0.0), "iou_threshold"),
                          (dict(score_threshold=1.0), "score_threshold")]:
        with pytest.raises(ValueError, match=match) as info:
            DetectionPostprocess(**{"anchors": anchors, "image_size": (40, 40), **kwargs})
        assert "Received" in str(info.value)


# --- end to end: Keras → SavedModel → TFLite (float, int8) → LiteRT


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    detector = Detector(input_shape=(64, 64, 3), num_classes=3, backbone_filters=(8, 8, 8), min_level=2,
                        max_level=3, fpn_filters=8, head_filters=8)
    # Spread the untrained scores (and boxes) so the detections are not near-ties.
    rng = np.random.default_rng(1)
    for name, std in (("detector_head_class_predict", 10.0), ("detector_head_box_predict", 0.3)):
        layer = detector.get_layer(name)
        kernel, bias = layer.get_weights()
        layer.set_weights([rng.normal(0, std, kernel.shape).astype("float32"), np.zeros_like(bias)])
    images = keras.Input((64, 64, 3), dtype="uint8", name="images")
    outputs = DetectionPostprocess(detector.anchors(), (64, 64), score_threshold=0.97)(
        detector(keras.layers.Rescaling(1 / 255)(images)))
    model = keras.Model(images, outputs)
    path = str(tmp_path_factory.mktemp("detector") / "saved_model")
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serving_default", lambda images: model(images, training=False),
                         input_signature=[tf.TensorSpec((None, 64, 64, 3), tf.uint8, name="images")])
    archive.write_out(path, verbose=False)
    x = rng.integers(0, 256, (8, 64, 64, 3), dtype=np.uint8)
    return model, path, x


def _convert(path, quantize, calibration):
    converter = tf.lite.TFLiteConverter.from_saved_model(path, signature_keys=["serving_default"])
    if quantize == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ({"images": calibration[i:i + 1]} for i in range(len(calibration)))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.inference_input_type = tf.uint8
    else:
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    with warnings.catch_warnings():  # int8 calibration uses the deprecated tf.lite.Interpreter
        warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
        return converter.convert()


def _match_max_diff(out, ref):
    """Largest box difference (px) after matching each reference detection to the closest
    detection of the same class."""
    worst = 0.0
    for i in range(len(ref["num_detections"])):
        n = out["num_detections"][i]
        for j in range(ref["num_detections"][i]):
            same = out["classes"][i, :n] == ref["classes"][i, j]
            assert same.any()
            worst = max(worst, np.abs(out["boxes"][i, :n][same] - ref["boxes"][i, j]).max(-1).min())
    return worst


def test_savedmodel_and_keras_file_match_keras(exported, tmp_path):
    model, path, x = exported
    ref = {k: v.numpy() for k, v in model(x).items()}
    assert 0 < ref["num_detections"].min() and ref["num_detections"].max() < 100  # a real threshold cut
    model.save(tmp_path / "serving.keras")
    reloaded = keras.saving.load_model(tmp_path / "serving.keras")
    for key, value in reloaded(x).items():
        np.testing.assert_array_equal(value, ref[key])
    serve = tf.saved_model.load(path).signatures["serving_default"]
    out = {k: v.numpy() for k, v in serve(images=tf.constant(x)).items()}
    np.testing.assert_array_equal(out["num_detections"], ref["num_detections"])
    assert _match_max_diff(out, ref) < 1e-4


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_tflite_builtins_only_and_litert_outputs(exported, quantize):
    from ai_edge_litert.interpreter import Interpreter

    model, path, x = exported
    content = _convert(path, quantize, x)
    report = io.StringIO()
    with contextlib.redirect_stdout(report):
        tf.lite.experimental.Analyzer.analyze(model_content=content)
    report = report.getvalue()
    assert "Flex" not in report and "CUSTOM" not in report
    nms = [line for line in report.splitlines() if "NON_MAX_SUPPRESSION_V4(" in line]
    assert len(nms) == 1
    nms_boxes = nms[0].split("(")[1].split(",")[0].strip()  # e.g. T#2_25
    assert f"{nms_boxes}(" in report and "type:FLOAT32" in next(
        line for line in report.splitlines() if line.strip().startswith(f"{nms_boxes}("))

    runner = Interpreter(model_content=content).get_signature_runner("serving_default")
    assert list(runner.get_input_details()) == ["images"]
    assert runner.get_input_details()["images"]["dtype"] == np.uint8
    serve = tf.saved_model.load(path).signatures["serving_default"]
    for batch in (x[:2], x[:1], x):
        out = runner(images=batch)
        assert {k: (v.dtype, v.shape[1:]) for k, v in out.items()} == OUTPUTS
        assert all(v.shape[0] == len(batch) for v in out.values())
        n = out["num_detections"]
        assert np.all((n >= 0) & (n <= 100))
        pad = np.arange(100)[None] >= n[:, None]
        assert not out["boxes"][pad].any() and not out["scores"][pad].any() and not out["classes"][pad].any()
        assert out["boxes"].min() >= 0 and out["boxes"].max() <= 64
        if quantize == "none":
            ref = {k: v.numpy() for k, v in serve(images=tf.constant(batch)).items()}
            np.testing.assert_array_equal(n, ref["num_detections"])
            assert _match_max_diff(out, ref) < 1e-3
            np.testing.assert_allclose(np.sort(out["scores"], -1), np.sort(ref["scores"], -1), atol=1e-5)


def _int8_tensor_dtypes(model, x, path):
    from ai_edge_litert.interpreter import Interpreter

    from shared.export.tflite import export_tflite

    export_tflite(model, path, "int8", representative_inputs=x)
    details = Interpreter(model_path=str(path)).get_tensor_details()
    exp = {d["dtype"] for d in details if re.search(r"/Exp(_\d+)?$", d["name"])}
    head = {d["dtype"] for d in details if "detector_head_box_predict" in d["name"]}
    return exp, head


def test_int8_export_keeps_the_decode_float_and_the_backbone_int8(exported, tmp_path, monkeypatch):
    from ai_edge_litert.interpreter import Interpreter

    from shared.export.tflite import float_layer_names

    model, _, x = exported
    assert float_layer_names(model) == [model.layers[-1].name]
    exp, head = _int8_tensor_dtypes(model, x, tmp_path / "int8.tflite")
    assert exp == {np.float32} and np.int8 in head  # box decoding float, the head int8
    out = Interpreter(model_path=str(tmp_path / "int8.tflite")).get_signature_runner("serving_default")(images=x)
    assert {k: (v.dtype, v.shape[1:]) for k, v in out.items()} == OUTPUTS
    monkeypatch.setattr(DetectionPostprocess, "keep_float_in_int8", False)
    assert float_layer_names(model) == []
    exp, _ = _int8_tensor_dtypes(model, x, tmp_path / "plain.tflite")
    assert np.int8 in exp  # without the mark, the decode arithmetic is quantized
