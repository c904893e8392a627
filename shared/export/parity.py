"""Parity comparisons that fit each kind of output (the default, class probabilities, is
:func:`shared.export.verify.probability_parity`).

Each is ``fn(outputs, reference, fmt, quantize) -> {"passed", "tolerance", figures…}`` over
dicts of numpy arrays by output name: the exported artifact's and the Keras serving model's
on the same held-out inputs. Bounds are per (format, quantize mode): float artifacts must
agree almost exactly, quantized ones within what quantization costs.
"""

import numpy as np

# (fmt, quantize) -> (min pixel agreement, max mean |probability diff|, max max |probability
# diff| or None). Quantized modes (float16 included) bound the mean, not the maximum: over millions of pixel
# probabilities the maximum is set by a few pixels on a class boundary (measured on the
# default segmenter, int8: 98.8 % pixel agreement, mean diff 0.0011, max diff 0.74).
MASK_TOLERANCES = {
    ("savedmodel", "none"): (0.9999, 1e-5, 1e-4),
    ("tflite", "none"): (0.999, 1e-4, 1e-3),
    # float16 is quantized too: on the 8-class MRI U-Net (16 MB) the max reached 0.036 at a few
    # boundary pixels while pixel agreement was 0.9996 and the mean 9e-5.
    ("tflite", "float16"): (0.995, 2e-3, None),
    ("tflite", "dynamic"): (0.98, 0.01, None),
    ("tflite", "int8"): (0.95, 0.01, None),
}

# (fmt, quantize) -> (min matched fraction of confident detections, min mean IoU of matched
# pairs, max mean score diff of matched pairs, score margin). See `detection_parity`. A mean,
# not a max, bounds quantized scores: on a small trained detector a few int8 scores near the
# threshold moved by 0.2-0.3 while the mean moved by a few hundredths.
DETECTION_TOLERANCES = {
    ("savedmodel", "none"): (0.99, 0.99, 1e-4, 1e-3),
    ("tflite", "none"): (0.98, 0.98, 1e-3, 1e-2),
    ("tflite", "float16"): (0.95, 0.95, 0.01, 0.05),
    ("tflite", "dynamic"): (0.90, 0.90, 0.03, 0.15),
    ("tflite", "int8"): (0.85, 0.85, 0.05, 0.2),
}
COMPARE_SCORE = 0.3  # the score threshold detections are compared at
MATCH_IOU = 0.5  # same class and at least this IoU make a match (COCO's AP50 criterion)


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


def _detections(outputs, i, min_score):
    n = int(outputs["num_detections"][i])
    scores = np.asarray(outputs["scores"][i][:n], np.float32)
    keep = scores >= min_score
    return np.asarray(outputs["boxes"][i][:n], np.float32)[keep], scores[keep], np.asarray(outputs["classes"][i][:n])[keep]


def detection_parity(outputs, reference, fmt, quantize="none"):
    """Detections matched greedily (same class, IoU >= MATCH_IOU, best IoU first), with the
    score hysteresis that quantized scores need: every detection scoring >= COMPARE_SCORE +
    margin on either side must be matched by one scoring >= COMPARE_SCORE - margin on the
    other (the margin is the mode's). So a detection whose score moves across the threshold
    by less than the margin is no mismatch, and one that appears, vanishes, moves or changes
    class is. Figures: the matched fraction of those confident detections, and the mean IoU
    and the mean (and max) score difference of the matched pairs scoring at least
    COMPARE_SCORE on one side."""
    min_matched, min_iou, max_mean_score, margin = DETECTION_TOLERANCES[(fmt, quantize)]
    high, low = COMPARE_SCORE + margin, max(COMPARE_SCORE - margin, 0.0)
    confident = matched = 0
    ious, score_diffs = [], []
    for i in range(len(reference["num_detections"])):
        (rb, rs, rc), (b, s, c) = _detections(reference, i, low), _detections(outputs, i, low)
        ref_hit, out_hit = np.zeros(len(rb), bool), np.zeros(len(b), bool)
        if len(rb) and len(b):
            iou = np.where(rc[:, None] == c[None], box_iou(rb, b), 0.0)
            while True:
                r, j = np.unravel_index(np.argmax(iou), iou.shape)
                if iou[r, j] < MATCH_IOU:
                    break
                if max(rs[r], s[j]) >= COMPARE_SCORE:  # pairs below the threshold on both sides don't count
                    ious.append(float(iou[r, j]))
                    score_diffs.append(abs(float(rs[r]) - float(s[j])))
                ref_hit[r] = out_hit[j] = True
                iou[r, :], iou[:, j] = -1, -1
        confident += int((rs >= high).sum() + (s >= high).sum())
        matched += int(ref_hit[rs >= high].sum() + out_hit[s >= high].sum())
    fraction = matched / confident if confident else 1.0
    mean_iou = float(np.mean(ious)) if ious else 1.0
    mean_diff = float(np.mean(score_diffs)) if score_diffs else 0.0
    max_diff = float(max(score_diffs)) if score_diffs else 0.0
    return {"matched_fraction": fraction, "confident_detections": confident, "mean_matched_iou": mean_iou,
            "mean_score_diff": mean_diff, "max_score_diff": max_diff,
            "tolerance": {"matched_fraction": min_matched, "mean_matched_iou": min_iou,
                          "mean_score_diff": max_mean_score, "score_margin": margin},
            "passed": bool(fraction >= min_matched and mean_iou >= min_iou and mean_diff <= max_mean_score)}


# (fmt, quantize) -> min cosine similarity between an artifact's and Keras's embedding rows.
EMBEDDING_TOLERANCES = {
    ("savedmodel", "none"): 1 - 1e-6,
    ("tflite", "none"): 1 - 1e-5,
    ("tflite", "float16"): 0.999,
    ("tflite", "dynamic"): 0.99,
    ("tflite", "int8"): 0.98,
}


def embedding_parity(outputs, reference, fmt, quantize="none"):
    """Embeddings (`"embedding"` [N, D]) by the cosine similarity of each row with Keras's."""
    bound = EMBEDDING_TOLERANCES[(fmt, quantize)]
    out, ref = np.asarray(outputs["embedding"], np.float64), np.asarray(reference["embedding"], np.float64)
    if out.shape != ref.shape:
        return {"passed": False, "tolerance": {"min_cosine": bound},
                "error": f"embedding shape {out.shape} differs from {ref.shape}"}
    norms = np.linalg.norm(out, axis=1) * np.linalg.norm(ref, axis=1)
    cosine = np.where(norms > 0, (out * ref).sum(1) / np.maximum(norms, 1e-30),
                      np.where(np.abs(out).sum(1) + np.abs(ref).sum(1) == 0, 1.0, 0.0))
    worst = float(cosine.min()) if len(cosine) else 1.0
    return {"passed": bool(worst >= bound), "tolerance": {"min_cosine": bound}, "min_cosine": worst,
            "mean_cosine": float(cosine.mean()) if len(cosine) else 1.0,
            "max_abs_diff": float(np.abs(out - ref).max()) if out.size else 0.0}


def value_parity(outputs, reference, fmt, quantize="none"):
    """Every output (values per example: a probability, a prediction, an uncertainty) by its
    max |diff| relative to its largest reference magnitude (at least 1), within the mode's
    probability bound (`shared.export.verify.TOLERANCES`)."""
    from shared.export.verify import tolerance

    bound = tolerance(fmt, quantize)["max_abs_diff"]
    figures = {}
    for name, ref in reference.items():
        ref, out = np.asarray(ref, np.float64), np.asarray(outputs[name], np.float64)
        if out.shape != ref.shape:
            return {"passed": False, "tolerance": {"max_rel_diff": bound},
                    "error": f"{name} shape {out.shape} differs from {ref.shape}"}
        scale = max(1.0, float(np.abs(ref).max(initial=0.0)))
        figures[f"{name}_max_rel_diff"] = float(np.abs(out - ref).max(initial=0.0)) / scale
    passed = all(np.isfinite(v) and v <= bound for v in figures.values())
    return {**figures, "tolerance": {"max_rel_diff": bound}, "passed": bool(passed)}


# (fmt, quantize) -> (max mean |pixel diff|, max share of pixels off by more than 2 levels) of
# uint8 images: float artifacts differ only where rounding flips a level.
IMAGE_TOLERANCES = {
    ("savedmodel", "none"): (0.01, 0.0),
    ("tflite", "none"): (0.05, 0.001),
    ("tflite", "float16"): (0.5, 0.01),
    ("tflite", "dynamic"): (2.0, 0.1),
    ("tflite", "int8"): (6.0, 0.3),
}


def image_parity(outputs, reference, fmt, quantize="none"):
    """uint8 images (`"images"` [N, H, W, C]) by mean |pixel diff| and the share off by > 2 levels."""
    max_mean, max_off = IMAGE_TOLERANCES[(fmt, quantize)]
    out, ref = np.asarray(outputs["images"], np.float64), np.asarray(reference["images"], np.float64)
    if out.shape != ref.shape:
        return {"passed": False, "tolerance": {}, "error": f"images shape {out.shape} differs from {ref.shape}"}
    diff = np.abs(out - ref)
    mean, off = float(diff.mean()), float(np.mean(diff > 2))
    return {"mean_abs_diff": mean, "share_off_by_more_than_2": off, "max_abs_diff": float(diff.max()),
            "tolerance": {"mean_abs_diff": max_mean, "share_off_by_more_than_2": max_off},
            "passed": bool(mean <= max_mean and off <= max_off)}
