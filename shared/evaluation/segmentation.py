"""Semantic segmentation metrics (confusion-matrix based, as in torchmetrics/mmseg) and overlays."""

import os

import keras
import numpy as np
import tensorflow as tf

PALETTE = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
                    [0, 128, 128], [220, 190, 255], [170, 110, 40], [128, 0, 0], [170, 255, 195]], np.uint8)


def pixel_accuracy_per_example(y_true, y_pred):
    """Step metric: the fraction of pixels whose argmax class is right, per example."""
    right = tf.equal(tf.cast(y_true, tf.int64), tf.argmax(y_pred, axis=-1))
    return tf.reduce_mean(tf.cast(right, tf.float32), axis=[1, 2])


def segmentation_loss(y_true, y_pred, smooth=1.0):
    """Per-example loss: pixel-averaged sparse cross-entropy plus a soft Dice loss on
    foreground vs background (class 0). The Dice term keeps small objects from being
    drowned by the background majority (an all-background net has Dice 0, loss 1)."""
    crossentropy = tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(y_true, y_pred), axis=[1, 2])
    foreground = 1.0 - tf.cast(y_pred[..., 0], tf.float32)
    truth = tf.cast(y_true > 0, tf.float32)
    overlap = tf.reduce_sum(foreground * truth, axis=[1, 2])
    dice = (2 * overlap + smooth) / (tf.reduce_sum(foreground, axis=[1, 2]) + tf.reduce_sum(truth, axis=[1, 2]) + smooth)
    return crossentropy + (1.0 - dice)


def segment_serving(model, info):
    """images (`info.input_dtype`) -> {"mask": int32 [N,H,W] (argmax class), "probabilities":
    float32 [N,H,W,classes]}: the serving graph of any per-pixel classifier."""
    inputs = keras.Input(shape=info.input_shape, dtype=info.input_dtype, name="images")
    probabilities = model(inputs)
    # tf.argmax, not keras.ops.argmax: Keras's NaN handling adds a BitwiseAnd TFLite cannot convert.
    mask = keras.layers.Lambda(lambda p: tf.argmax(p, axis=-1, output_type=tf.int32), name="mask")(probabilities)
    return keras.Model(inputs, {"mask": mask, "probabilities": probabilities}, name="segment_serving")


def pixel_counts(true, pred, k):
    """[K,K] (true x predicted) pixel count matrix of two label arrays of the same shape."""
    true = np.asarray(true, np.int64).ravel()
    pred = np.clip(np.asarray(pred, np.int64).ravel(), 0, k - 1)
    return np.bincount(true * k + pred, minlength=k * k).reshape(k, k)


def segmentation_scores(matrix, class_names):
    """mIoU, per-class IoU and Dice, pixel accuracy from a [K,K] (true x predicted) pixel count
    matrix. Classes absent from both truth and prediction are left out of the means."""
    matrix = np.asarray(matrix, np.float64)
    tp = np.diag(matrix)
    union = matrix.sum(0) + matrix.sum(1) - tp
    present = union > 0
    iou = np.where(present, tp / np.maximum(union, 1), np.nan)
    dice = np.where(present, 2 * tp / np.maximum(matrix.sum(0) + matrix.sum(1), 1), np.nan)
    return {
        "mean_iou": float(np.nanmean(iou)) if present.any() else 0.0,
        "mean_dice": float(np.nanmean(dice)) if present.any() else 0.0,
        "pixel_accuracy": float(tp.sum() / max(matrix.sum(), 1)),
        "mean_iou_foreground": float(np.nanmean(iou[1:])) if present[1:].any() else 0.0,
        "per_class": {name: {"iou": None if np.isnan(i) else float(i), "dice": None if np.isnan(d) else float(d),
                             "pixels": int(matrix[k].sum())}
                      for k, (name, i, d) in enumerate(zip(class_names, iou, dice))},
    }


def class_agnostic_scores(matrix):
    """Foreground (every class but 0) against background, from a [K,K] pixel count matrix:
    where the items are, apart from what they are. Returns {"foreground_iou", "mean_iou"
    (of the two), "item_accuracy" (right class among pixels both call foreground)}."""
    matrix = np.asarray(matrix, np.float64)
    two = np.array([[matrix[0, 0], matrix[0, 1:].sum()], [matrix[1:, 0].sum(), matrix[1:, 1:].sum()]])
    scores = segmentation_scores(two, ["background", "foreground"])
    return {"foreground_iou": scores["per_class"]["foreground"]["iou"], "mean_iou": scores["mean_iou"],
            "item_accuracy": float(np.trace(matrix[1:, 1:]) / max(matrix[1:, 1:].sum(), 1))}


def overlay(image, mask, alpha=0.5):
    """An RGB uint8 image with the class colours of `mask` blended over non-background pixels."""
    image = np.asarray(image)
    rgb = np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]
    colours = PALETTE[np.asarray(mask) % len(PALETTE)]
    blended = (1 - alpha) * rgb + alpha * colours
    return np.where(np.asarray(mask)[..., None] > 0, blended, rgb).astype(np.uint8)


def overlays_png(images, true_masks, pred_masks, path, columns=4):
    """Rows of (image, truth overlay, prediction overlay) triples as one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, 3 * columns, figsize=(2.0 * 3 * columns, 2.1 * rows), dpi=80)
    for ax in np.atleast_1d(axes).ravel():
        ax.axis("off")
    axes = np.atleast_2d(axes)
    for k in range(n):
        r, c = divmod(k, columns)
        for j, (picture, title) in enumerate(((images[k], "image"), (overlay(images[k], true_masks[k]), "truth"),
                                              (overlay(images[k], pred_masks[k]), "predicted"))):
            axes[r, 3 * c + j].imshow(np.asarray(picture).squeeze())
            axes[r, 3 * c + j].set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def segmentation_report(serving, ds, info, plots_dir, batch_size=64):
    """Test metrics of a serving model ({"mask"} output) over an unbatched (image, mask) dataset,
    all from one pixel count matrix over the whole test set (kept as `confusion_matrix`, rows
    true, and as a PNG of row percentages): mIoU, per class, class-agnostic, with the
    all-background baseline beside them; and an overlay PNG."""
    k = len(info.class_names)
    matrix = np.zeros((k, k), np.int64)
    background = np.zeros((k, k), np.int64)
    call = tf.function(lambda x: serving(x, training=False)["mask"], reduce_retracing=True)
    samples = None
    for x, y in ds.batch(batch_size):
        masks = call(x).numpy()
        matrix += pixel_counts(y.numpy(), masks, k)
        background[:, 0] += np.bincount(y.numpy().astype(np.int64).ravel(), minlength=k)
        if samples is None:
            samples = (x.numpy()[:8], y.numpy()[:8], masks[:8])
    result = segmentation_scores(matrix, info.class_names)
    baseline = segmentation_scores(background, info.class_names)
    result.update(mean_iou_all_background=baseline["mean_iou"],
                  pixel_accuracy_all_background=baseline["pixel_accuracy"],
                  num_examples=int(matrix.sum() // max(1, np.prod(info.input_shape[:2]))),
                  class_agnostic=class_agnostic_scores(matrix), confusion_matrix=matrix.tolist())
    plots = [overlays_png(*samples, os.path.join(plots_dir, "segmentation_overlays.png"))] if samples else []
    if k > 2:
        from shared.evaluation.plots import confusion_matrix_png

        percent = np.round(100 * matrix / np.maximum(matrix.sum(1, keepdims=True), 1))
        plots.append(confusion_matrix_png(percent, info.class_names, os.path.join(plots_dir, "pixel_confusion.png"),
                                          "Pixels: % of each true class predicted as"))
    return result, plots


def decode_mask(outputs, info):
    """Serving outputs -> [{"mask_shape", "classes": {name: pixel fraction}, "summary"}] per image."""
    out = []
    for mask in np.asarray(outputs["mask"]):
        counts = np.bincount(mask.ravel(), minlength=len(info.class_names)) / mask.size
        classes = {info.class_names[k]: round(float(f), 4) for k, f in enumerate(counts) if f > 0}
        found = [name for name in classes if name != info.class_names[0]]
        out.append({"mask_shape": list(mask.shape), "classes": classes, "mask": mask.tolist(),
                    "summary": ", ".join(f"{n} {classes[n]:.1%}" for n in found) or "background only"})
    return out


def render_mask(image, prediction, path):
    """The image with the predicted mask overlaid, as a PNG; returns `path`."""
    from PIL import Image

    Image.fromarray(overlay(image, np.asarray(prediction["mask"]))).save(path)
    return path
