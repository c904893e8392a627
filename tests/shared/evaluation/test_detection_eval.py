import numpy as np
import pytest
from PIL import Image

from shared.evaluation.detection import coco_metrics, draw_boxes, draw_detections_png

NAMES = ["cat", "dog", "bird"]
# Three images, padded to 3 boxes (class -1); the birds have no ground truth.
GT_BOXES = np.array([
    [[10, 10, 40, 50], [50, 60, 90, 100], [0, 0, 0, 0]],
    [[5, 5, 25, 30], [0, 0, 0, 0], [0, 0, 0, 0]],
    [[20, 10, 120, 110], [60, 0, 70, 12], [20, 70, 45, 99]],
], "float32")
GT_CLASSES = np.array([[0, 1, -1], [1, -1, -1], [0, 0, 1]])


def _perfect(k=5, shift=0.0):
    """Serving-style outputs holding the ground truth (optionally shifted right by `shift` px)."""
    boxes = np.zeros((3, k, 4), "float32")
    scores = np.zeros((3, k), "float32")
    classes = np.zeros((3, k), "int32")
    num = (GT_CLASSES >= 0).sum(1).astype("int32")
    for i in range(3):
        boxes[i, :num[i]] = GT_BOXES[i, :num[i]] + np.array([0, shift, 0, shift])
        scores[i, :num[i]] = np.linspace(0.9, 0.6, num[i])
        classes[i, :num[i]] = GT_CLASSES[i, :num[i]]
    return boxes, scores, classes, num


def test_perfect_predictions_score_one():
    result = coco_metrics(GT_BOXES, GT_CLASSES, *_perfect(), NAMES)
    for key in ("mAP", "mAP50", "mAP75"):
        assert result[key] == pytest.approx(1.0)
    assert set(result["per_class_AP"]) == set(NAMES)
    assert result["per_class_AP"]["cat"] == pytest.approx(1.0) and result["per_class_AP"]["dog"] == pytest.approx(1.0)
    assert result["per_class_AP"]["bird"] is None  # no ground truth
    assert result["num_images"] == 3 and result["num_gt"] == 6 and result["num_detections"] == 6
    # Areas: 10×12 = 120 px² is small (< 32²), 100×100 is large (> 96²), the rest medium.
    assert result["mAP_small"] == pytest.approx(1.0) and result["mAP_large"] == pytest.approx(1.0)
    # Lists of per-image arrays work like padded arrays.
    lists = coco_metrics([b[c >= 0] for b, c in zip(GT_BOXES, GT_CLASSES)],
                         [c[c >= 0] for c in GT_CLASSES], *_perfect(), NAMES)
    assert lists == result


def test_worse_predictions_score_lower():
    perfect = coco_metrics(GT_BOXES, GT_CLASSES, *_perfect(), NAMES)["mAP"]
    shifted = coco_metrics(GT_BOXES, GT_CLASSES, *_perfect(shift=4.0), NAMES)
    assert shifted["mAP"] < perfect and shifted["mAP50"] > shifted["mAP75"]
    boxes, scores, classes, num = _perfect()
    classes[:, :] = 1 - classes  # cat ↔ dog
    swapped = coco_metrics(GT_BOXES, GT_CLASSES, boxes, scores, classes, num, NAMES)
    assert swapped["mAP"] == pytest.approx(0.0)
    # Padding rows past num_detections are ignored, whatever they hold.
    boxes, scores, classes, num = _perfect()
    boxes[:, -1] = [0, 0, 50, 50]
    scores[:, -1] = 0.99
    assert coco_metrics(GT_BOXES, GT_CLASSES, boxes, scores, classes, num, NAMES)["mAP"] == pytest.approx(1.0)


def test_empty_predictions_and_empty_ground_truth():
    boxes, scores, classes, _ = _perfect()
    empty = coco_metrics(GT_BOXES, GT_CLASSES, boxes, scores, classes, np.zeros(3, "int32"), NAMES)
    assert empty["mAP"] == 0.0 and empty["mAP50"] == 0.0 and empty["num_detections"] == 0
    assert empty["per_class_AP"] == {"cat": 0.0, "dog": 0.0, "bird": None}
    nothing = coco_metrics(np.zeros((3, 0, 4)), np.zeros((3, 0)), *_perfect(), NAMES)
    assert nothing["mAP"] is None and nothing["num_gt"] == 0
    with pytest.raises(ValueError, match="Received"):
        coco_metrics(GT_BOXES, GT_CLASSES, *_perfect(), ["cat"])


def test_drawings(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 80, (3, 128, 128, 3), dtype=np.uint8)
    path = draw_detections_png(images, (GT_BOXES, GT_CLASSES), _perfect(shift=3.0), NAMES,
                               tmp_path / "detections.png", columns=2)
    with Image.open(path) as png:
        assert png.size[0] > 300 and png.size[1] > 300
        pixels = np.asarray(png.convert("RGB")).reshape(-1, 3).astype(int)
    assert ((pixels[:, 0] > 200) & (pixels[:, 1] < 80)).any()  # red predictions
    assert ((pixels[:, 1] > 150) & (pixels[:, 0] < 80)).any()  # green ground truth
    gray = rng.integers(0, 80, (2, 28, 28, 1), dtype=np.uint8)
    draw_detections_png(gray, ([[]] * 2, [[]] * 2), (np.zeros((2, 1, 4)), np.zeros((2, 1)), np.zeros((2, 1), int),
                                                     np.zeros(2, int)), NAMES, tmp_path / "empty.png")
    assert (tmp_path / "empty.png").stat().st_size > 1000

    boxes, scores, classes, num = _perfect()
    drawn = draw_boxes(images[0], boxes[0], scores[0], classes[0], NAMES)
    assert drawn.dtype == np.uint8 and drawn.shape == (256, 256, 3)  # upscaled ×2 to ≥ 224 px
    assert not np.array_equal(drawn[::2, ::2], images[0])
    red = (drawn[..., 0] == 255) & (drawn[..., 1] == 32)
    assert red[20, 20:100].all()  # top edge of the first box (ymin 10, xmin 10 → 20 px), scaled
    plain = draw_boxes(gray[0], np.zeros((4, 4)), np.zeros(4), np.zeros(4, int), NAMES, min_size=0)
    assert plain.shape == (28, 28, 3)
    np.testing.assert_array_equal(plain[..., 0], gray[0, ..., 0])  # padding rows are not drawn


def test_class_agnostic_metrics_and_item_confusion_split_where_from_what():
    from shared.evaluation.detection import class_agnostic_metrics, item_confusion

    boxes, scores, classes, num = _perfect()
    classes[:, :] = 1 - classes  # every object found, every cat called a dog and back
    assert class_agnostic_metrics(GT_BOXES, GT_CLASSES, boxes, scores, classes, num)["mAP"] == pytest.approx(1.0)
    matrix = item_confusion(GT_BOXES, GT_CLASSES, boxes, scores, classes, num, len(NAMES))
    assert matrix.shape == (3, 4)
    assert matrix[0].tolist() == [0, 3, 0, 0] and matrix[1].tolist() == [3, 0, 0, 0] and matrix[2].sum() == 0
    # A duplicate of another class on the same place is merged, not a false positive; a
    # detection scoring below min_score does not count as finding its object.
    boxes, scores, classes, num = _perfect(k=7)
    boxes[0, 2], scores[0, 2], classes[0, 2], num[0] = boxes[0, 0], 0.5, 2, 3
    agnostic = class_agnostic_metrics(GT_BOXES, GT_CLASSES, boxes, scores, classes, num)
    assert agnostic["mAP"] == pytest.approx(1.0)
    scores[2, 0] = 0.1
    matrix = item_confusion(GT_BOXES, GT_CLASSES, boxes, scores, classes, num, len(NAMES))
    assert matrix[0].tolist() == [2, 0, 0, 1]  # image 3's first cat only scored 0.1: missed
    assert matrix[1].tolist() == [0, 3, 0, 0]


def test_segmentation_scores_come_from_one_matrix_over_the_test_set():
    """A class absent from an image is not a zero IoU for that image: mIoU is computed once
    over the pixel counts of the whole set (torchmetrics / mmseg convention)."""
    from shared.evaluation.segmentation import class_agnostic_scores, pixel_counts, segmentation_scores

    a_true, a_pred = np.array([[0, 1], [1, 1]]), np.array([[0, 1], [1, 0]])  # class 2 absent
    b_true, b_pred = np.array([[0, 2], [2, 2]]), np.array([[0, 2], [1, 2]])  # class 1 absent in truth
    matrix = pixel_counts(a_true, a_pred, 3) + pixel_counts(b_true, b_pred, 3)
    scores = segmentation_scores(matrix, ["bg", "x", "y"])
    # IoU: bg 2/(2+1) (b: none lost, a: one x pixel called bg), x 2/(3+1), y 2/3.
    assert scores["mean_iou"] == pytest.approx((2 / 3 + 2 / 4 + 2 / 3) / 3)
    agnostic = class_agnostic_scores(matrix)
    # foreground: true 6 pixels, predicted 5, both 5 -> IoU 5/6; among those 5, 4 named right.
    assert agnostic["foreground_iou"] == pytest.approx(5 / 6)
    assert agnostic["item_accuracy"] == pytest.approx(4 / 5)
