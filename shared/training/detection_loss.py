"""RetinaNet training loss: anchor target assignment, sigmoid focal loss, box regression.

Pure TensorFlow ops on padded batches (no NumPy, no Python loop over examples), so it
runs inside a distributed `tf.function` (and under XLA). Box coding lives in
`shared.architectures.detection_postprocess` (`encode_boxes` / `decode_boxes`), shared
with the serving graph.

Targets (the task API): `{"boxes": float32 (B, M, 4)` `(ymin, xmin, ymax, xmax)` pixels,
`"classes": int32 (B, M)` padded with -1}`. Rows with class -1 or an empty box are ignored;
M may be 0.
"""

import numpy as np
import tensorflow as tf

from shared.architectures.detection_postprocess import (
    box_area, box_iou, decode_boxes, encode_boxes, xyxy_to_yxyx,
)

BOX_LOSSES = ("smooth_l1", "giou")
EPSILON = 1e-7  # probability clipping when the logits are not available


def _anchors_yxyx(anchors):
    anchors = np.asarray(anchors, dtype="float32")
    if anchors.ndim != 2 or anchors.shape[-1] != 4 or len(anchors) == 0:
        raise ValueError(f"`anchors` must have shape (N, 4), N >= 1. Received: anchors.shape={anchors.shape}")
    return xyxy_to_yxyx(anchors)  # make_anchors' [x1, y1, x2, y2] → our (ymin, xmin, ymax, xmax)


def _check_ious(pos_iou, neg_iou):
    if not 0.0 < neg_iou <= pos_iou <= 1.0:
        raise ValueError(f"Need 0 < neg_iou <= pos_iou <= 1. Received: pos_iou={pos_iou}, neg_iou={neg_iou}")


def assign_targets(anchors, gt_boxes, gt_classes, pos_iou=0.5, neg_iou=0.4):
    """Match anchors to ground-truth boxes (per example, batched).

    Args:
        anchors: `(N, 4)` yxyx anchor tensor (already converted from `make_anchors`' xyxy).
        gt_boxes: `(B, M, 4)` yxyx pixels. gt_classes: `(B, M)` ints, -1 = padding.
        pos_iou, neg_iou: an anchor is positive if its best IoU >= pos_iou, ignored if in
            `[neg_iou, pos_iou)`, negative below. Each valid gt box is also force-matched
            to its best-overlapping anchor (if that IoU > 0), so small objects always get
            a positive.

    Returns `(boxes (B, N, 4), classes (B, N) int32, positive (B, N) bool, ignored (B, N)
    bool)`: the matched gt box and class of every anchor; non-positive anchors get their
    own anchor box (zero deltas) and class -1.
    """
    anchors = tf.convert_to_tensor(anchors, tf.float32)
    num_anchors = anchors.shape[0]
    # One padding row so M >= 1 (reductions over an empty axis are undefined).
    gt_boxes = tf.pad(tf.cast(gt_boxes, tf.float32), [[0, 0], [0, 1], [0, 0]])
    gt_classes = tf.pad(tf.cast(gt_classes, tf.int32), [[0, 0], [0, 1]], constant_values=-1)
    valid = (gt_classes >= 0) & (box_area(gt_boxes) > 0)  # (B, M)

    iou = tf.where(valid[:, None, :], box_iou(anchors[None], gt_boxes), -1.0)  # (B, N, M)
    max_iou = tf.reduce_max(iou, axis=2)
    matched = tf.argmax(iou, axis=2, output_type=tf.int32)  # (B, N)

    best_anchor = tf.argmax(iou, axis=1, output_type=tf.int32)  # (B, M)
    forceable = valid & (tf.reduce_max(iou, axis=1) > 0)
    force = tf.cast(tf.one_hot(best_anchor, num_anchors, axis=1), tf.bool) & forceable[:, None, :]  # (B, N, M)
    forced = tf.reduce_any(force, axis=2)
    forced_gt = tf.argmax(tf.where(force, iou, -2.0), axis=2, output_type=tf.int32)  # best of several

    positive = (max_iou >= pos_iou) | forced
    matched = tf.where(forced, forced_gt, matched)
    ignored = ~positive & (max_iou >= neg_iou)
    boxes = tf.where(positive[..., None], tf.gather(gt_boxes, matched, batch_dims=1), anchors[None])
    classes = tf.where(positive, tf.gather(gt_classes, matched, batch_dims=1), -1)
    return boxes, classes, positive, ignored


def sigmoid_focal_loss(targets, probs, alpha=0.25, gamma=2.0):
    """Element-wise sigmoid focal loss (Lin et al. 2017) from probabilities.

    Uses the logits behind `probs` when Keras recorded them (`probs._keras_logits`, set
    by the Detector's sigmoid activation, in eager and graph mode): exact and with
    gradients everywhere. Otherwise falls back to probabilities clipped to
    `[EPSILON, 1 - EPSILON]` (a prediction saturated beyond the clip gets no gradient).
    """
    targets = tf.cast(targets, tf.float32)
    logits = getattr(probs, "_keras_logits", None)
    if logits is not None:
        logits = tf.cast(logits, tf.float32)
        p = tf.sigmoid(logits)
        ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=logits)
    else:
        p = tf.clip_by_value(tf.cast(probs, tf.float32), EPSILON, 1.0 - EPSILON)
        ce = -(targets * tf.math.log(p) + (1.0 - targets) * tf.math.log(1.0 - p))
    p_t = targets * p + (1.0 - targets) * (1.0 - p)
    alpha_t = targets * alpha + (1.0 - targets) * (1.0 - alpha)
    return alpha_t * tf.pow(1.0 - p_t, gamma) * ce


def generalized_iou(boxes1, boxes2):
    """Element-wise GIoU of aligned yxyx boxes `(..., 4)` → `(...)`, in [-1, 1]."""
    top_left = tf.maximum(boxes1[..., :2], boxes2[..., :2])
    inter_hw = tf.maximum(tf.minimum(boxes1[..., 2:], boxes2[..., 2:]) - top_left, 0.0)
    inter = inter_hw[..., 0] * inter_hw[..., 1]
    union = box_area(boxes1) + box_area(boxes2) - inter
    enclose_hw = tf.maximum(boxes1[..., 2:], boxes2[..., 2:]) - tf.minimum(boxes1[..., :2], boxes2[..., :2])
    enclose = enclose_hw[..., 0] * enclose_hw[..., 1]
    return tf.math.divide_no_nan(inter, union) - tf.math.divide_no_nan(enclose - union, enclose)


def _make_parts(anchors, num_classes, alpha=0.25, gamma=2.0, box_loss="smooth_l1", pos_iou=0.5, neg_iou=0.4,
                smooth_l1_beta=1.0 / 9.0):
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"`num_classes` must be an int >= 1. Received: num_classes={num_classes}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"`alpha` must be in (0, 1). Received: alpha={alpha}")
    if gamma < 0:
        raise ValueError(f"`gamma` must be >= 0. Received: gamma={gamma}")
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"`box_loss` must be one of {BOX_LOSSES}. Received: box_loss={box_loss!r}")
    if not smooth_l1_beta > 0:
        raise ValueError(f"`smooth_l1_beta` must be > 0. Received: smooth_l1_beta={smooth_l1_beta}")
    _check_ious(pos_iou, neg_iou)
    anchors_np = _anchors_yxyx(anchors)

    def parts(y_true, y_pred):
        anchors = tf.constant(anchors_np)
        probs, deltas = y_pred["classes"], tf.cast(y_pred["boxes"], tf.float32)
        boxes, classes, positive, ignored = assign_targets(
            anchors, y_true["boxes"], y_true["classes"], pos_iou, neg_iou)
        pos = tf.cast(positive, tf.float32)
        num_pos = tf.reduce_sum(pos, axis=1)
        norm = tf.maximum(num_pos, 1.0)

        targets = tf.one_hot(classes, num_classes)  # -1 → all zeros (background)
        focal = tf.reduce_sum(sigmoid_focal_loss(targets, probs, alpha, gamma), axis=2)
        class_loss = tf.reduce_sum(focal * (1.0 - tf.cast(ignored, tf.float32)), axis=1) / norm

        if box_loss == "giou":
            per_anchor = 1.0 - generalized_iou(decode_boxes(deltas, anchors[None]), boxes)
        else:
            diff = tf.abs(deltas - encode_boxes(boxes, anchors[None]))
            per_anchor = tf.reduce_sum(
                tf.where(diff < smooth_l1_beta, 0.5 * tf.square(diff) / smooth_l1_beta, diff - 0.5 * smooth_l1_beta),
                axis=2)
        box = tf.reduce_sum(tf.where(positive, per_anchor, 0.0), axis=1) / norm
        return {"class_loss": class_loss, "box_loss": box, "positives": num_pos}

    return parts


def detection_loss(anchors, num_classes, alpha=0.25, gamma=2.0, box_loss="smooth_l1", pos_iou=0.5,
                   neg_iou=0.4, smooth_l1_beta=1.0 / 9.0, box_weight=1.0):
    """RetinaNet loss `loss(y_true, y_pred) -> float32 (B,)`, one value per example.

    Args:
        anchors: `(N, 4)` `[x1, y1, x2, y2]` pixel anchors as from `Detector.anchors()`
            (converted once to yxyx here).
        num_classes: C, the Detector's classes (sigmoid, no background class).
        alpha, gamma: focal-loss parameters.
        box_loss: `"smooth_l1"` on the encoded deltas (variances 0.1/0.2, Detectron's
            beta 1/9) or `"giou"` (1 - GIoU of the decoded boxes).
        pos_iou, neg_iou: assignment thresholds (see `assign_targets`).
        smooth_l1_beta: the smooth-L1 transition point.
        box_weight: multiplier of the box term.

    `y_true` is `{"boxes": (B, M, 4) yxyx pixels, "classes": (B, M) int, -1 = padding}`,
    `y_pred` the Detector's `{"classes": (B, N, C) probabilities, "boxes": (B, N, 4)
    deltas}`. Per example: focal loss summed over classes and non-ignored anchors, plus
    `box_weight` × box loss summed over positive anchors, each divided by
    `max(1, positives)` of that example.
    """
    parts = _make_parts(anchors, num_classes, alpha, gamma, box_loss, pos_iou, neg_iou, smooth_l1_beta)

    def loss(y_true, y_pred):
        p = parts(y_true, y_pred)
        return p["class_loss"] + box_weight * p["box_loss"]

    return loss


def detection_step_metrics(anchors, num_classes, **loss_kwargs):
    """Per-example training diagnostics `{name: fn(y_true, y_pred) -> float32 (B,)}`:
    `"positives"` (positive anchors), `"class_loss"`, `"box_loss"` (the two terms of
    `detection_loss` with the same `loss_kwargs`, unweighted).

    Each function redoes the target assignment (an `(B, N, M)` IoU; small next to the
    network)."""
    loss_kwargs.pop("box_weight", None)
    parts = _make_parts(anchors, num_classes, **loss_kwargs)
    return {name: (lambda y_true, y_pred, name=name: parts(y_true, y_pred)[name])
            for name in ("positives", "class_loss", "box_loss")}

