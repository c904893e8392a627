"""Face detection (`dl-vision train face_detect`): issue 4's detector with one class, `face`,
trained on the embedded face scenes (`apps/vision/face_scenes.py`), measured by precision and
recall at IoU 0.5 on held-out scenes and on real photographs, beside two peers on the same
images: OpenCV's Haar cascade (Viola-Jones, `haarcascade_frontalface_default.xml`) and the
other design, a face / non-face window classifier over an image pyramid
(`apps/vision/face_pyramid.py`, trained on the same scenes). A detection counts when its
score reaches the operating threshold chosen on the validation scenes (best F1)."""

import os

import numpy as np

from shared.evaluation.detection import precision_recall

# Operating points tried on the validation scenes (finer near 1, where a window classifier's
# scores crowd).
SCORE_GRID = np.concatenate([np.round(np.arange(0.05, 0.96, 0.05), 2), [0.98, 0.99, 0.995, 0.999]])


def haar_faces(images, min_side=12):
    """OpenCV's frontal-face Haar cascade on uint8 RGB images: per image float32 [K, 4] boxes
    (ymin, xmin, ymax, xmax). Images are upscaled 2x first, so faces down to `min_side` px
    fill the cascade's 24x24 window."""
    import cv2

    cascade = cv2.CascadeClassifier(os.path.join(cv2.data.haarcascades, "haarcascade_frontalface_default.xml"))
    out = []
    for image in images:
        grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        big = cv2.resize(grey, None, fx=2, fy=2, interpolation=cv2.INTER_LINEAR)
        found = cascade.detectMultiScale(big, scaleFactor=1.1, minNeighbors=5, minSize=(2 * min_side,) * 2)
        out.append(np.asarray([(y / 2, x / 2, (y + h) / 2, (x + w) / 2) for x, y, w, h in found], np.float32)
                   .reshape(-1, 4))
    return out


def _ours(serving, images):
    """Our detections on numpy images: per image (boxes [K, 4], scores [K])."""
    return _trimmed(serving.predict(np.asarray(images), batch_size=64, verbose=0))


def _trimmed(outputs):
    n = outputs["num_detections"]
    return [b[:k] for b, k in zip(outputs["boxes"], n)], [s[:k] for s, k in zip(outputs["scores"], n)]


def _truth(gt_boxes, gt_classes):
    """Padded true boxes (`predict_detections`', the scenes'), per image without the padding."""
    return [b[c >= 0] for b, c in zip(gt_boxes, gt_classes)]


def best_f1_threshold(truth, boxes, scores):
    """(threshold of SCORE_GRID with the best F1 at IoU 0.5, its F1, its precision/recall row)."""
    rows = {float(t): precision_recall(truth, boxes, scores, t) for t in SCORE_GRID}
    f1 = {t: 2 * r["precision"] * r["recall"] / max(r["precision"] + r["recall"], 1e-9) if r["detections"] else 0.0
          for t, r in rows.items()}
    best = max(f1, key=lambda t: (f1[t], t))
    return best, f1[best], rows[best]


def calibrate_score_threshold(model, data):
    """The score threshold with the best F1 (IoU 0.5) on the validation scenes; kept in the run."""
    from shared.evaluation.detection_report import predict_detections
    from shared.image_tasks import detect_serving

    _, gt_boxes, gt_classes, outputs = predict_detections(detect_serving(model, data.info), data.val)
    best, f1, row = best_f1_threshold(_truth(gt_boxes, gt_classes), *_trimmed(outputs))
    data.info.extra.setdefault("saved", {})["score_threshold"] = best
    return {"score_threshold": best, "val_f1": f1, "val_precision": row["precision"], "val_recall": row["recall"]}


def window_pyramid_peer(scenes):
    """The sliding-window design (`apps/vision/face_pyramid.py`) trained on (up to
    `scenes["count"]` of) the training scenes, its threshold chosen on the validation scenes:
    (detect(images) -> (boxes, scores), threshold, summary)."""
    import time

    from apps.vision.face_pyramid import pyramid_detect, train_window_classifier

    t0 = time.perf_counter()
    train, val = scenes["train"], scenes["val"]
    n = min(len(train["images"]), scenes["count"])
    model = train_window_classifier(*(np.asarray(train[k][:n]) for k in ("images", "boxes", "classes")),
                                    seed=scenes["seed"])
    threshold, f1, _ = best_f1_threshold(_truth(val["boxes"], val["classes"]), *pyramid_detect(model, val["images"]))
    summary = {"train_scenes": n, "score_threshold": threshold, "val_f1": f1, "params": model.count_params(),
               "seconds": round(time.perf_counter() - t0, 1)}
    return (lambda images: pyramid_detect(model, images)), threshold, summary


def face_detection_report(serving, ds, info, plots_dir):
    """COCO AP of the test scenes (`detection_report`), then precision / recall at IoU 0.5 of
    the detections scoring at least the validation threshold, on the test scenes and on the
    real photographs, with the Haar cascade's and (on `--data faces`) the window pyramid's on
    the same images."""
    from apps.vision.face_scenes import real_photos
    from shared.evaluation.detection import draw_detections_png
    from shared.evaluation.detection_report import detection_report, predict_detections

    predicted = predict_detections(serving, ds)
    result, plots = detection_report(serving, ds, info, plots_dir, predicted=predicted)
    images, gt_boxes, gt_classes, outputs = predicted
    threshold = result["score_threshold"] = info.extra.get("saved", {}).get("score_threshold", 0.5)
    photos = real_photos(info.input_shape[0])
    names = sorted(photos)
    sets = {"test_scenes": (images, _truth(gt_boxes, gt_classes), _trimmed(outputs)),
            "real_photos": ([photos[n][0] for n in names], [photos[n][1] for n in names], None)}
    pyramid = window_pyramid_peer(info.extra["peer_scenes"]) if "peer_scenes" in info.extra else None
    if pyramid:
        result["window_pyramid"] = pyramid[2]
    for name, (pictures, boxes, ours) in sets.items():
        pred_boxes, pred_scores = ours or _ours(serving, pictures)
        haar = haar_faces(pictures)
        found = {"ours": (pred_boxes, pred_scores, threshold), "haar_cascade": (haar, [np.ones(len(h)) for h in haar], 0.0)}
        if pyramid:
            found["window_pyramid"] = (*pyramid[0](np.stack(pictures)), pyramid[1])
        result[name] = {"images": len(pictures), **{k: precision_recall(boxes, b, s, t) for k, (b, s, t) in found.items()}}
        if name == "real_photos":
            result[name]["per_photo"] = {
                n: {k: precision_recall([boxes[i]], [b[i]], [s[i]], t)["recall"] for k, (b, s, t) in found.items()}
                for i, n in enumerate(names)}
            keep = [(p[s >= threshold], s[s >= threshold]) for p, s in zip(pred_boxes, pred_scores)]
            plots.append(draw_detections_png(
                np.stack(pictures), (boxes, [np.zeros(len(b), np.int32) for b in boxes]),
                (np.stack([_pad(p, 8) for p, _ in keep]), np.stack([_pad(s, 8) for _, s in keep]),
                 np.zeros((len(keep), 8), np.int32), np.asarray([min(8, len(s)) for _, s in keep])),
                info.class_names, os.path.join(plots_dir, "real_photos.png"), columns=2, score_threshold=threshold))
    return result, plots


def _pad(array, k):
    array = np.asarray(array)[:k]
    return np.concatenate([array, np.zeros((k - len(array), *array.shape[1:]), array.dtype)])
