"""Detection task glue: the test report over a serving model, decoding and rendering of its outputs."""

import os

import numpy as np
import tensorflow as tf

DECODE_SCORE = 0.3  # detections shown to a user (predict); evaluation uses every detection


def predict_detections(serving, ds, batch_size=64):
    """(images, per-image padded true boxes and classes, serving outputs) over an unbatched
    (image, {boxes, classes}) dataset."""
    call = tf.function(lambda x: serving(x, training=False), reduce_retracing=True)
    images, gt_boxes, gt_classes, outs = [], [], [], []
    for x, y in padded_detection_batch(ds, batch_size):
        outs.append({k: v.numpy() for k, v in call(x).items()})
        images.append(x.numpy())
        gt_boxes += list(y["boxes"].numpy())
        gt_classes += list(y["classes"].numpy())
    pred = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]} if outs else {}
    return np.concatenate(images) if images else np.zeros((0,)), gt_boxes, gt_classes, pred


def padded_detection_batch(ds, batch_size, drop_remainder=False):
    """Images stack; boxes and classes pad to the batch's most objects (class -1 = padding)."""
    return ds.padded_batch(batch_size, padding_values=(None, {"boxes": 0.0, "classes": -1}),
                           drop_remainder=drop_remainder)


def detection_report(serving, ds, info, plots_dir, batch_size=64, predicted=None):
    """COCO mAP (pycocotools) of a serving model on an unbatched (image, {boxes, classes})
    dataset, and a PNG of test scenes with true (green) and predicted (red) boxes; with
    several classes also the class-agnostic mAP and the objects' confusion matrix (found
    where, named what; a PNG too);
    `predicted`: that dataset's `predict_detections`, when the caller has it already."""
    from shared.evaluation.detection import coco_metrics, draw_detections_png

    images, gt_boxes, gt_classes, pred = predicted or predict_detections(serving, ds, batch_size)
    outputs = (pred["boxes"], pred["scores"], pred["classes"], pred["num_detections"])
    result = coco_metrics(gt_boxes, gt_classes, *outputs, info.class_names)
    plots = []
    if len(info.class_names) > 1:  # "where" apart from "what"
        from shared.evaluation.detection import class_agnostic_metrics, item_confusion
        from shared.evaluation.plots import confusion_matrix_png

        result["class_agnostic"] = class_agnostic_metrics(gt_boxes, gt_classes, *outputs)
        matrix = item_confusion(gt_boxes, gt_classes, *outputs, len(info.class_names), min_score=DECODE_SCORE)
        found = matrix[:, :-1]
        result["confusion"] = {"matrix": matrix.tolist(), "columns": [*info.class_names, "missed"],
                               "min_score": DECODE_SCORE, "iou": 0.5,
                               "found": float(found.sum() / max(matrix.sum(), 1)),
                               "named_right_when_found": float(np.trace(found) / max(found.sum(), 1))}
        plots.append(confusion_matrix_png(matrix, info.class_names, os.path.join(plots_dir, "item_confusion.png"),
                                          "Objects: true class x detected as (score >= 0.3, IoU >= 0.5)",
                                          column_names=result["confusion"]["columns"]))
    n = min(8, len(images))
    path = draw_detections_png(images[:n], (gt_boxes[:n], gt_classes[:n]),
                               (pred["boxes"][:n], pred["scores"][:n], pred["classes"][:n],
                                pred["num_detections"][:n]), info.class_names,
                               os.path.join(plots_dir, "detections.png"))
    return result, [path, *plots]


def decode_detections(outputs, info, min_score=DECODE_SCORE):
    """Serving outputs -> per image {"detections": [{"label", "class_index", "score", "box"}], "summary"}."""
    out = []
    for boxes, scores, classes, n in zip(outputs["boxes"], outputs["scores"], outputs["classes"],
                                         outputs["num_detections"]):
        found = [{"label": info.class_names[int(c)], "class_index": int(c), "score": round(float(s), 4),
                  "box": [round(float(v), 1) for v in b]}
                 for b, s, c in zip(boxes[:int(n)], scores[:int(n)], classes[:int(n)]) if s >= min_score]
        out.append({"detections": found, "summary": ", ".join(f"{d['label']} {d['score']:.2f}" for d in found)
                    or "nothing found"})
    return out


def render_detections(image, prediction, path):
    """The image with the predicted boxes drawn, as a PNG; returns `path`."""
    from PIL import Image

    from shared.evaluation.detection import draw_boxes

    dets = prediction["detections"]
    names = {d["class_index"]: d["label"] for d in dets}
    class_names = [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)]
    drawn = draw_boxes(np.asarray(image), np.array([d["box"] for d in dets], np.float32).reshape(-1, 4),
                       np.array([d["score"] for d in dets], np.float32),
                       np.array([d["class_index"] for d in dets], np.int32), class_names)
    Image.fromarray(drawn).save(path)
    return path
