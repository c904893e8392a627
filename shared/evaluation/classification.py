"""Classification metrics (sklearn) with a confusion matrix and sample predictions."""

import os

import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

from shared.evaluation.plots import confusion_matrix_png, sample_predictions_png
from shared.evaluation.predict import predict_dataset


def accuracy_per_example(y_true, y_pred):
    """Step metric: 1.0 where argmax(y_pred) == y_true."""
    return tf.cast(tf.equal(tf.cast(tf.reshape(y_true, [-1]), tf.int64), tf.argmax(y_pred, axis=-1)), tf.float32)


def classification_metrics(y, probs, class_names, groups=None):
    """sklearn metrics of class probabilities `probs` [N, C] against labels `y` [N]: accuracy,
    macro F1, log loss, top-3 accuracy (more than 3 classes), ROC AUC (binary: of the positive class; else one-vs-rest
    macro, when every class occurs), per-class precision/recall/F1, the confusion matrix and,
    with `groups` (a name per example), the accuracy of each group."""
    y, probs = np.asarray(y).reshape(-1), np.asarray(probs)
    pred = probs.argmax(-1)
    labels = list(range(len(class_names)))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    matrix = skm.confusion_matrix(y, pred, labels=labels)
    result = {
        "accuracy": float(skm.accuracy_score(y, pred)),
        "macro_f1": float(f1.mean()),
        "log_loss": float(skm.log_loss(y, np.clip(probs, 1e-7, 1), labels=labels)),
        "num_examples": int(len(y)),
    }
    if len(labels) > 3:
        result["top3_accuracy"] = float(np.mean([t in p for t, p in zip(y, np.argsort(-probs, -1)[:, :3])]))
    if len(set(y.tolist())) == len(labels) > 1:
        result["roc_auc"] = float(skm.roc_auc_score(y, probs[:, 1]) if len(labels) == 2 else
                                  skm.roc_auc_score(y, probs, multi_class="ovr", labels=labels))
    if groups is not None:
        groups = np.asarray(groups)
        result["per_group_accuracy"] = {str(g): float(np.mean(pred[groups == g] == y[groups == g]))
                                        for g in sorted(set(groups.tolist()))}
    result["per_class"] = {name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                           for name, p, r, f, s in zip(class_names, precision, recall, f1, support)}
    result["confusion_matrix"] = matrix.tolist()
    return result


def classification_report(model, ds, info, plots_dir):
    """`classification_metrics` of an image (or video) classifier, confusion-matrix and
    sample-prediction PNGs (a clip shows as a strip of 4 of its frames)."""
    x, y, probs = predict_dataset(model, ds)
    if x.ndim == 5:  # [N, T, H, W, C] clips -> [N, H, 4W, C] strips
        x = np.concatenate(list(np.moveaxis(x[:32, np.linspace(0, x.shape[1] - 1, 4).astype(int)], 1, 0)), axis=2)
    pred = probs.argmax(-1)
    result = classification_metrics(y, probs, info.class_names)
    matrix = np.asarray(result["confusion_matrix"])
    plots = [
        confusion_matrix_png(matrix, info.class_names, os.path.join(plots_dir, "confusion_matrix.png")),
        sample_predictions_png(x[:32], y[:32], pred[:32], probs.max(-1)[:32], info.class_names,
                               os.path.join(plots_dir, "sample_predictions.png")),
    ]
    return result, plots


def decode_probabilities(outputs, info, top=3):
    """Class probabilities (the `probabilities` output) -> [{"label", "index", "confidence",
    "top": [[label, p], …]}]."""
    probs = outputs["probabilities"] if isinstance(outputs, dict) else outputs
    out = []
    for row in np.asarray(probs):
        order = np.argsort(-row)[:top]
        out.append({"label": info.class_names[order[0]], "index": int(order[0]),
                    "confidence": float(row[order[0]]),
                    "top": [[info.class_names[i], float(row[i])] for i in order]})
    return out


def render_label(image, prediction, path):
    """The input image (upscaled to ≥ 224 px) with the predicted label and confidence on top; returns `path`."""
    from PIL import Image, ImageDraw

    image = np.asarray(image)
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).convert("RGB")
    scale = max(1, 224 // max(picture.size))
    picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    canvas = Image.new("RGB", (picture.width, picture.height + 20), "white")
    canvas.paste(picture, (0, 20))
    ImageDraw.Draw(canvas).text((4, 4), f"{prediction['label']} ({prediction['confidence']:.2f})", fill="black")
    canvas.save(path)
    return path
