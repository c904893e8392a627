"""Report figures as PNG files (matplotlib, headless)."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_matrix_png(matrix, class_names, path, title="Confusion matrix (test)", column_names=None):
    """Counts (rows: true `class_names`, columns: predicted, `column_names` when they differ,
    e.g. with a "missed" column) as a PNG; returns `path`."""
    matrix = np.asarray(matrix)
    columns = list(column_names or class_names)
    rows, n = len(class_names), len(columns)
    fig, ax = plt.subplots(figsize=(1.0 + 0.6 * n, 1.0 + 0.6 * rows), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), columns, rotation=45, ha="right")
    ax.set_yticks(range(rows), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for i in range(rows):
        for j in range(n):
            ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def sample_predictions_png(images, true, pred, confidence, class_names, path, columns=8):
    """A grid of images titled 'predicted (confidence)', red where wrong."""
    n = len(images)
    rows = max(1, int(np.ceil(n / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(1.6 * columns, 1.8 * rows), dpi=100)
    for k, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if k >= n:
            continue
        image = images[k]
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray" if image.shape[-1] == 1 else None)
        ax.set_title(f"{class_names[pred[k]]} ({confidence[k]:.2f})", fontsize=7,
                     color="black" if pred[k] == true[k] else "red")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def scatter_png(true, pred, path, title="Predicted vs true (test)"):
    """Predicted against true values with the identity line."""
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    ax.scatter(true, pred, s=4, alpha=0.4)
    low, high = float(min(np.min(true), np.min(pred))), float(max(np.max(true), np.max(pred)))
    ax.plot([low, high], [low, high], color="grey", lw=1)
    ax.set(xlabel="true", ylabel="predicted", title=title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
