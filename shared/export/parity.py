"""Parity comparisons that fit each kind of output (the default, class probabilities, is
:func:`shared.export.verify.probability_parity`).

Each is ``fn(outputs, reference, fmt, quantize) -> {"passed", "tolerance", figures…}`` over
dicts of numpy arrays by output name: the exported artifact's and the Keras serving model's
on the same held-out inputs. Bounds are per (format, quantize mode): float artifacts must
agree almost exactly, quantized ones within what quantization costs.
"""

import numpy as np

# (fmt, quantize) -> (min pixel agreement, max mean |probability diff|, max max |probability
# diff| or None). Quantized modes bound the mean, not the maximum: over millions of pixel
# probabilities the maximum is set by a few pixels on a class boundary (measured on the
# default segmenter, int8: 98.8 % pixel agreement with a max diff of 0.74).
MASK_TOLERANCES = {
    ("savedmodel", "none"): (0.9999, 1e-5, 1e-4),
    ("tflite", "none"): (0.999, 1e-4, 1e-3),
    ("tflite", "float16"): (0.995, 2e-3, 1e-2),
    ("tflite", "dynamic"): (0.98, 0.02, None),
    ("tflite", "int8"): (0.95, 0.03, None),
}

# (fmt, quantize) -> (min agreement on detection counts, min mean IoU of matched boxes,
# max score diff of matched boxes); compared over detections scoring >= COMPARE_SCORE.
DETECTION_TOLERANCES = {
    ("savedmodel", "none"): (0.99, 0.99, 1e-3),
    ("tflite", "none"): (0.98, 0.98, 1e-2),
    ("tflite", "float16"): (0.95, 0.95, 0.03),
    ("tflite", "dynamic"): (0.85, 0.90, 0.1),
    ("tflite", "int8"): (0.70, 0.85, 0.2),
}
COMPARE_SCORE = 0.3


def mask_parity(outputs, reference, fmt, quantize="none"):
    """Masks by pixel agreement, probabilities by mean (and, for float artifacts, max) |diff|."""
    min_agree, max_mean, max_max = MASK_TOLERANCES[(fmt, quantize)]
    mask, ref_mask = np.asarray(outputs["mask"]), np.asarray(reference["mask"])
    if mask.shape != ref_mask.shape:
        return {"passed": False, "tolerance": {}, "error": f"mask shape {mask.shape} != {ref_mask.shape}"}
    agreement = float(np.mean(mask == ref_mask))
    diff = np.abs(np.asarray(outputs["probabilities"], np.float32) - np.asarray(reference["probabilities"], np.float32))
    mean_diff, max_diff = float(diff.mean()), float(diff.max())
    tolerance = {"pixel_agreement": min_agree, "mean_abs_diff": max_mean}
    if max_max is not None:
        tolerance["max_abs_diff"] = max_max
    passed = agreement >= min_agree and mean_diff <= max_mean and (max_max is None or max_diff <= max_max)
    return {"pixel_agreement": agreement, "mean_abs_diff": mean_diff, "max_abs_diff": max_diff,
            "tolerance": tolerance, "passed": bool(passed)}


def box_iou(a, b):
    """IoU matrix of (ymin, xmin, ymax, xmax) boxes: a [N,4] x b [M,4] -> [N,M]."""
    a, b = np.asarray(a, np.float32)[:, None], np.asarray(b, np.float32)[None]
    inter_h = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    inter_w = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = inter_h * inter_w
    area = lambda t: (t[..., 2] - t[..., 0]) * (t[..., 3] - t[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def detection_parity(outputs, reference, fmt, quantize="none"):
    """Detections by count agreement, then greedy same-class IoU matching of boxes and scores."""
    min_count, min_iou, max_score = DETECTION_TOLERANCES[(fmt, quantize)]
    counts_equal, ious, score_diffs = [], [], []
    for i in range(len(reference["num_detections"])):
        def kept(o):
            n = int(o["num_detections"][i])
            keep = np.asarray(o["scores"][i][:n]) >= COMPARE_SCORE
            return (np.asarray(o["boxes"][i][:n])[keep], np.asarray(o["scores"][i][:n])[keep],
                    np.asarray(o["classes"][i][:n])[keep])
        (b, s, c), (rb, rs, rc) = kept(outputs), kept(reference)
        counts_equal.append(len(b) == len(rb))
        matched = 0
        if len(rb) and len(b):
            iou = box_iou(rb, b) * (rc[:, None] == c[None])
            for _ in range(min(len(rb), len(b))):
                r, j = np.unravel_index(np.argmax(iou), iou.shape)
                if iou[r, j] <= 0:
                    break
                ious.append(float(iou[r, j]))
                score_diffs.append(abs(float(rs[r]) - float(s[j])))
                iou[r, :], iou[:, j] = -1, -1
                matched += 1
        ious += [0.0] * (max(len(rb), len(b)) - matched)  # an unmatched detection counts as IoU 0
    count_agreement = float(np.mean(counts_equal)) if counts_equal else 1.0
    mean_iou = float(np.mean(ious)) if ious else 1.0
    max_diff = float(max(score_diffs)) if score_diffs else 0.0
    return {"count_agreement": count_agreement, "mean_matched_iou": mean_iou, "max_score_diff": max_diff,
            "tolerance": {"count_agreement": min_count, "mean_matched_iou": min_iou, "max_score_diff": max_score},
            "passed": bool(count_agreement >= min_count and mean_iou >= min_iou and max_diff <= max_score)}
