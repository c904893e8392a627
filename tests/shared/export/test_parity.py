"""Parity comparisons pass on equal outputs and fail on perturbed ones."""

import numpy as np
import pytest

from shared.export.parity import box_iou, detection_parity, mask_parity
from shared.export.verify import probability_parity


def _masks(rng):
    probabilities = rng.dirichlet(np.ones(4), size=(3, 16, 16)).astype(np.float32)
    return {"mask": probabilities.argmax(-1).astype(np.int32), "probabilities": probabilities}


def test_mask_parity():
    ref = _masks(np.random.default_rng(0))
    same = mask_parity(ref, ref, "tflite", "none")
    assert same["passed"] and same["pixel_agreement"] == 1.0 and same["max_abs_diff"] == 0.0
    flipped = {**ref, "mask": np.where(np.arange(16) < 4, (ref["mask"] + 1) % 4, ref["mask"])}
    r = mask_parity(flipped, ref, "tflite", "int8")
    assert not r["passed"] and r["pixel_agreement"] == pytest.approx(0.75)
    noisy = {**ref, "probabilities": ref["probabilities"] + 0.01}
    assert not mask_parity(noisy, ref, "savedmodel", "none")["passed"]
    assert mask_parity({**ref, "probabilities": ref["probabilities"] + 0.005}, ref, "tflite", "dynamic")["passed"]
    one_pixel = {**ref, "probabilities": ref["probabilities"].copy()}
    one_pixel["probabilities"][0, 0, 0] += 0.7  # quantized modes bound the mean, float ones the max too
    assert mask_parity(one_pixel, ref, "tflite", "int8")["passed"]
    assert not mask_parity(one_pixel, ref, "tflite", "none")["passed"]
    blurred = {**ref, "probabilities": ref["probabilities"] * 0.5 + 0.125}  # same argmax, mean |diff| > 0.03
    r = mask_parity(blurred, ref, "tflite", "int8")
    assert r["pixel_agreement"] == 1.0 and r["mean_abs_diff"] > 0.03 and not r["passed"]


def _detections():
    boxes = np.zeros((2, 5, 4), np.float32)
    boxes[0, :2] = [[10, 10, 40, 40], [50, 60, 90, 100]]
    boxes[1, :1] = [[0, 0, 20, 30]]
    scores = np.zeros((2, 5), np.float32)
    scores[0, :2], scores[1, :1] = [0.9, 0.8], [0.7]
    classes = np.zeros((2, 5), np.int32)
    classes[0, :2], classes[1, :1] = [3, 1], [2]
    return {"boxes": boxes, "scores": scores, "classes": classes, "num_detections": np.array([2, 1], np.int32)}


def test_detection_parity():
    ref = _detections()
    same = detection_parity(ref, ref, "savedmodel", "none")
    assert same["passed"] and same["matched_fraction"] == 1.0 and same["mean_matched_iou"] == pytest.approx(1.0)
    assert same["confident_detections"] == 6  # 3 on each side
    moved = {**ref, "boxes": ref["boxes"] + 8.0}  # IoU < 0.5 with every reference box
    r = detection_parity(moved, ref, "tflite", "int8")
    assert not r["passed"] and r["matched_fraction"] == 0.0
    nudged = {**ref, "boxes": ref["boxes"] + 1.0}  # IoU 0.85-0.91: fine for int8, not for float
    assert detection_parity(nudged, ref, "tflite", "int8")["passed"]
    r = detection_parity(nudged, ref, "tflite", "none")
    assert not r["passed"] and r["matched_fraction"] == 1.0 and 0.85 < r["mean_matched_iou"] < 0.9
    wrong_class = {**ref, "classes": (ref["classes"] + 1) % 10}
    assert detection_parity(wrong_class, ref, "tflite", "int8")["matched_fraction"] == 0.0
    missing = {**ref, "num_detections": np.array([1, 1], np.int32)}
    r = detection_parity(missing, ref, "tflite", "none")
    assert not r["passed"] and r["matched_fraction"] == pytest.approx(4 / 5)
    # A score crossing the compare threshold (0.3) by less than the mode's tolerance is no
    # mismatch; a larger move is.
    low = {**ref, "scores": np.where(ref["scores"] > 0, 0.35, 0.0).astype(np.float32)}
    crossed = {**low, "scores": low["scores"].copy()}
    crossed["scores"][0, 1] = 0.25
    assert detection_parity(crossed, low, "tflite", "int8")["passed"]
    assert not detection_parity(crossed, low, "tflite", "none")["passed"]
    dropped = {**ref, "scores": ref["scores"].copy()}
    dropped["scores"][0, 1] = 0.45  # 0.8 -> 0.45: matched, but the mean score diff is 0.35 / 3
    r = detection_parity(dropped, ref, "tflite", "int8")
    assert not r["passed"] and r["matched_fraction"] == 1.0
    assert r["max_score_diff"] == pytest.approx(0.35) and r["mean_score_diff"] == pytest.approx(0.35 / 3)


def test_box_iou():
    iou = box_iou([[0, 0, 10, 10]], [[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30]])
    np.testing.assert_allclose(iou, [[1.0, 25 / 175, 0.0]], atol=1e-6)


def test_probability_parity_fails_on_a_rolled_output():
    probs = np.random.default_rng(1).dirichlet(np.ones(5), size=20).astype(np.float32)
    assert probability_parity({"probabilities": probs}, {"probabilities": probs}, "tflite")["passed"]
    r = probability_parity({"probabilities": np.roll(probs, 1, axis=1)}, {"probabilities": probs}, "tflite", "int8")
    assert not r["passed"]
