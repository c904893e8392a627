"""Text classification / regression glue: reports, the step metric, decoding."""

import os

import numpy as np
import tensorflow as tf

from shared.evaluation.classification import classification_metrics, decode_probabilities
from shared.evaluation.plots import confusion_matrix_png, scatter_png
from shared.evaluation.predict import predict_dataset
from shared.evaluation.regression import regression_metrics


def squared_error(y_true, y_pred):
    """Per-example squared error of a score regression."""
    return tf.square(tf.cast(tf.reshape(y_true, [-1]), tf.float32) - tf.reshape(y_pred, [-1]))


def accuracy_or_sign(y_true, y_pred):
    """Step metric: argmax accuracy for class probabilities; for a score, whether its sign
    matches the target's (the polarity a regression implies)."""
    if len(y_pred.shape) == 1:
        y_true = tf.cast(y_true, tf.float32)
        return tf.cast(tf.equal(tf.sign(y_true), tf.sign(y_pred)), tf.float32)
    return tf.cast(tf.equal(tf.cast(tf.reshape(y_true, [-1]), tf.int64), tf.argmax(y_pred, axis=-1)), tf.float32)


def text_report(model, ds, info, plots_dir):
    """Test metrics of a model on raw text: `classification_metrics` (with per-source accuracy
    when the data names sources) and a confusion matrix, or `regression_metrics` and a scatter."""
    _, y, pred = predict_dataset(model, ds)
    groups = info.extra.get("test_groups")
    if not info.class_names:
        return regression_metrics(y, pred, groups), [scatter_png(y, pred, os.path.join(plots_dir, "scores.png"))]
    result = classification_metrics(y, pred, info.class_names, groups)
    matrix = np.asarray(result["confusion_matrix"])
    return result, [confusion_matrix_png(matrix, info.class_names, os.path.join(plots_dir, "confusion_matrix.png"))]


def decode_text_outputs(outputs, info):
    """{"probabilities"} -> labels with confidences; {"score"} -> {"score", "summary"}."""
    if "score" in outputs:
        return [{"score": float(s), "summary": f"score {float(s):+.3f}"} for s in np.asarray(outputs["score"])]
    return decode_probabilities(outputs, info)
