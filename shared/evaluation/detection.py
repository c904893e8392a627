"""Object-detection metrics (COCO mAP via pycocotools) and box drawings.

Boxes are `(ymin, xmin, ymax, xmax)` pixels, as everywhere in the task API. Ground truth
comes per image as a list of `(M_i, 4)` arrays or a padded `(B, M, 4)` array with classes
-1 on padding rows; predictions are the serving outputs (`boxes (B, K, 4)`, `scores (B, K)`,
`classes (B, K)`, `num_detections (B,)`).
"""

import contextlib
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

GT_COLOR = "#00c000"
PRED_COLOR = "#ff2020"


def _gt_rows(gt_boxes, gt_classes):
    """Per image: `(boxes (m, 4) float64, classes (m,) int)` without padding rows."""
    if len(gt_boxes) != len(gt_classes):
        raise ValueError(
            "gt_boxes and gt_classes need one entry per image. Received: "
            f"len(gt_boxes)={len(gt_boxes)}, len(gt_classes)={len(gt_classes)}")
    out = []
    for boxes, classes in zip(gt_boxes, gt_classes):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        classes = np.asarray(classes).reshape(-1).astype(np.int64)
        keep = classes >= 0
        out.append((boxes[keep], classes[keep]))
    return out


def _pred_rows(pred_boxes, pred_scores, pred_classes, num_detections):
    n = np.asarray(num_detections).reshape(-1).astype(np.int64)
    return [(np.asarray(pred_boxes[i], np.float64).reshape(-1, 4)[: n[i]],
             np.asarray(pred_scores[i], np.float64).reshape(-1)[: n[i]],
             np.asarray(pred_classes[i]).reshape(-1)[: n[i]].astype(np.int64)) for i in range(len(n))]


def _xywh(box):
    ymin, xmin, ymax, xmax = (float(v) for v in box)
    return [xmin, ymin, xmax - xmin, ymax - ymin]


def _undefined(value):
    return None if value < 0 else float(value)  # pycocotools' -1: no ground truth to score


def coco_metrics(gt_boxes, gt_classes, pred_boxes, pred_scores, pred_classes, num_detections, class_names):
    """COCO bbox metrics of padded detections (pycocotools `COCOeval`, prints silenced).

    Args:
        gt_boxes, gt_classes: per image `(M_i, 4)` yxyx pixels and `(M_i,)` class indices
            (lists or padded arrays; class -1 = padding).
        pred_boxes, pred_scores, pred_classes, num_detections: the serving outputs
            `(B, K, 4)`, `(B, K)`, `(B, K)`, `(B,)`; rows from `num_detections` on are ignored.
        class_names: names of the class indices.

    Returns `{"mAP" (AP@[.5:.95]), "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large",
    "per_class_AP": {name: AP@[.5:.95]}, "num_images", "num_gt", "num_detections"}`; an AP is
    None where no ground truth defines it (a class without objects, no large objects, ...).
    COCO conventions: at most 100 detections per image are scored, categories are class
    index + 1, areas are the gt box areas.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    class_names = list(class_names)
    gts = _gt_rows(gt_boxes, gt_classes)
    preds = _pred_rows(pred_boxes, pred_scores, pred_classes, num_detections)
    if len(preds) != len(gts):
        raise ValueError(
            "Predictions and ground truth need the same number of images. Received: "
            f"{len(preds)} predicted images, {len(gts)} ground-truth images")
    for classes in [c for _, c in gts] + [c for _, _, c in preds]:
        if classes.size and classes.max() >= len(class_names):
            raise ValueError(
                f"Class index {int(classes.max())} out of range. Received: class_names={class_names}")

    images = [{"id": i + 1} for i in range(len(gts))]
    categories = [{"id": k + 1, "name": str(name)} for k, name in enumerate(class_names)]
    gt_anns, dt_anns = [], []
    for i, (boxes, classes) in enumerate(gts):
        for box, c in zip(boxes, classes):
            x, y, w, h = _xywh(box)
            gt_anns.append({"id": len(gt_anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                            "bbox": [x, y, w, h], "area": max(w, 0.0) * max(h, 0.0), "iscrowd": 0})
    for i, (boxes, scores, classes) in enumerate(preds):
        for box, s, c in zip(boxes, scores, classes):
            x, y, w, h = _xywh(box)
            dt_anns.append({"id": len(dt_anns) + 1, "image_id": i + 1, "category_id": int(c) + 1,
                            "bbox": [x, y, w, h], "area": max(w, 0.0) * max(h, 0.0), "iscrowd": 0,
                            "score": float(s)})

    result = {"num_images": len(gts), "num_gt": len(gt_anns), "num_detections": len(dt_anns)}
    keys = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large")
    if not gt_anns:
        return {**dict.fromkeys(keys), "per_class_AP": dict.fromkeys(class_names), **result}

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt, coco_dt = COCO(), COCO()
        coco_gt.dataset = {"images": images, "annotations": gt_anns, "categories": categories}
        coco_dt.dataset = {"images": images, "annotations": dt_anns, "categories": categories}
        coco_gt.createIndex()
        coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.params.imgIds = [im["id"] for im in images]
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    precision = evaluator.eval["precision"]  # (iou thresholds, recall, classes, areas, max dets)
    per_class = {}
    for k, name in enumerate(class_names):
        p = precision[:, :, k, 0, -1]
        per_class[name] = float(p[p > -1].mean()) if (p > -1).any() else None
    return {**{key: _undefined(stats[j]) for j, key in enumerate(keys)}, "per_class_AP": per_class, **result}


def _rgb(image):
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    return image


def draw_detections_png(images, gt, pred, class_names, path, columns=4, score_threshold=0.3):
    """A grid of images with true boxes (green) and predicted boxes (red, "name score").

    `gt = (boxes, classes)` per image (padded or lists, class -1 = padding), `pred =
    (boxes, scores, classes, num_detections)` (the serving outputs); predictions scoring
    below `score_threshold` are not drawn. Returns `path`."""
    if columns < 1:
        raise ValueError(f"`columns` must be >= 1. Received: columns={columns}")
    gts = _gt_rows(*gt)
    preds = _pred_rows(*pred)
    n = len(images)
    if len(gts) != n or len(preds) != n:
        raise ValueError(
            f"Need gt and predictions for each of the {n} images. Received: "
            f"{len(gts)} ground-truth and {len(preds)} predicted images")
    columns = min(columns, max(n, 1))
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(3.0 * columns, 3.0 * rows), dpi=100, squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if k >= n:
            continue
        image = _rgb(images[k])
        ax.imshow(image, cmap="gray" if image.ndim == 2 else None)
        for (ymin, xmin, ymax, xmax) in gts[k][0]:
            ax.add_patch(plt.Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False,
                                       edgecolor=GT_COLOR, linewidth=1.5))
        boxes, scores, classes = preds[k]
        for (ymin, xmin, ymax, xmax), s, c in zip(boxes, scores, classes):
            if s < score_threshold:
                continue
            ax.add_patch(plt.Rectangle((xmin, ymin), xmax - xmin, ymax - ymin, fill=False,
                                       edgecolor=PRED_COLOR, linewidth=1.0))
            name = class_names[c] if 0 <= c < len(class_names) else str(c)
            ax.text(xmin, ymin, f"{name} {s:.2f}", color="white", fontsize=6, va="bottom",
                    bbox={"facecolor": PRED_COLOR, "alpha": 0.7, "pad": 0.5, "linewidth": 0})
        ax.set_title(f"{len(gts[k][0])} true, {int(np.sum(scores >= score_threshold))} predicted", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_boxes(image, boxes, scores, classes, class_names, score_threshold=0.0, min_size=224):
    """`image` with its detections drawn (red boxes, "name score" labels) as a uint8 RGB array.

    Rows scoring `<= score_threshold` are skipped (so zero padding rows never show). Small
    images are first upscaled by an integer factor so the longer side is `>= min_size`
    (boxes scaled to match; `min_size=0` keeps the size)."""
    from PIL import Image, ImageDraw

    picture = Image.fromarray(_rgb(image)).convert("RGB")
    scale = max(1, -(-min_size // max(picture.size))) if min_size else 1
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    for box, s, c in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(scores).reshape(-1),
                         np.asarray(classes).reshape(-1)):
        if s <= score_threshold:
            continue
        ymin, xmin, ymax, xmax = (float(v) * scale for v in box)
        draw.rectangle([xmin, ymin, xmax, ymax], outline=(255, 32, 32), width=2)
        c = int(c)
        label = f"{class_names[c] if 0 <= c < len(class_names) else c} {s:.2f}"
        left, top, right, bottom = draw.textbbox((xmin + 2, ymin + 1), label)
        draw.rectangle([left - 1, top - 1, right + 1, bottom + 1], fill=(255, 32, 32))
        draw.text((xmin + 2, ymin + 1), label, fill=(255, 255, 255))
    return np.asarray(picture, dtype=np.uint8)


def precision_recall(gt_boxes, pred_boxes, pred_scores, min_score=0.5, iou=0.5):
    """One-class precision and recall over images: detections scoring >= `min_score`, each
    matched (greedily, best score first) to an unmatched true box with IoU >= `iou`.
    `gt_boxes`/`pred_boxes`: per image arrays [K, 4] (ymin, xmin, ymax, xmax); `pred_scores`: [K]."""
    from shared.export.parity import box_iou

    tp = n_pred = n_true = 0
    for truth, boxes, scores in zip(gt_boxes, pred_boxes, pred_scores):
        truth, boxes, scores = np.asarray(truth).reshape(-1, 4), np.asarray(boxes).reshape(-1, 4), np.asarray(scores)
        keep = scores >= min_score
        boxes = boxes[keep][np.argsort(-scores[keep], kind="stable")]
        n_pred, n_true = n_pred + len(boxes), n_true + len(truth)
        free = np.ones(len(truth), bool)
        overlaps = box_iou(boxes, truth) if len(boxes) and len(truth) else np.zeros((len(boxes), len(truth)))
        for row in overlaps:
            candidates = np.where(free & (row >= iou), row, -1.0)
            if len(candidates) and candidates.max() >= iou:
                free[int(candidates.argmax())] = False
                tp += 1
    return {"precision": tp / n_pred if n_pred else float("nan"), "recall": tp / n_true if n_true else float("nan"),
            "true_positives": tp, "detections": n_pred, "objects": n_true}


def _nms(boxes, scores, iou):
    """Indices of `boxes` kept by greedy non-maximum suppression, best score first."""
    from shared.export.parity import box_iou

    order, keep = np.argsort(-scores, kind="stable"), []
    while order.size:
        keep.append(order[0])
        order = order[1:][box_iou(boxes[order[:1]], boxes[order[1:]])[0] < iou] if order.size > 1 else order[1:]
    return np.asarray(keep, np.int64)


def class_agnostic_metrics(gt_boxes, gt_classes, pred_boxes, pred_scores, pred_classes, num_detections, iou=0.5):
    """COCO mAP, mAP@.5 and mAP@.75 with every object one class: where the detector finds
    objects, apart from what it calls them. Detections of different classes on one place are
    first merged by class-agnostic NMS at `iou`, as a one-class detector would have."""
    gts = _gt_rows(gt_boxes, gt_classes)
    preds = _pred_rows(pred_boxes, pred_scores, pred_classes, num_detections)
    width = max([1] + [len(s) for _, s, _ in preds])
    boxes, scores, num = np.zeros((len(preds), width, 4)), np.zeros((len(preds), width)), np.zeros(len(preds), np.int64)
    for i, (b, s, _) in enumerate(preds):
        keep = _nms(b, s, iou) if len(s) else np.zeros(0, np.int64)
        boxes[i, :len(keep)], scores[i, :len(keep)], num[i] = b[keep], s[keep], len(keep)
    result = coco_metrics([b for b, _ in gts], [np.zeros(len(c), np.int64) for _, c in gts], boxes, scores,
                          np.zeros(scores.shape, np.int64), num, ["object"])
    return {key: result[key] for key in ("mAP", "mAP50", "mAP75")}


def item_confusion(gt_boxes, gt_classes, pred_boxes, pred_scores, pred_classes, num_detections, num_classes,
                   min_score=0.3, iou=0.5):
    """[K, K + 1] counts: row = an object's true class, column = the class of the
    best-scoring detection (score >= `min_score`, any class) overlapping it with IoU >= `iou`,
    the last column when none does (missed). Its diagonal over the found objects is how often
    a found object is named right."""
    from shared.export.parity import box_iou

    matrix = np.zeros((num_classes, num_classes + 1), np.int64)
    for (truth, true_classes), (boxes, scores, classes) in zip(
            _gt_rows(gt_boxes, gt_classes), _pred_rows(pred_boxes, pred_scores, pred_classes, num_detections)):
        keep = scores >= min_score
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        overlaps = box_iou(truth, boxes) if len(truth) and len(boxes) else np.zeros((len(truth), len(boxes)))
        for row, true_class in zip(overlaps, true_classes):
            hits = row >= iou
            matrix[true_class, classes[hits][np.argmax(scores[hits])] if hits.any() else num_classes] += 1
    return matrix
