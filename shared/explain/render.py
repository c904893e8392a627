"""Heat-map overlays as PNG files (matplotlib, headless) and the `explain` entry point."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from shared.errors import UserError  # noqa: E402
from shared.explain.gradcam import gradcam, peak  # noqa: E402
from shared.explain.integrated_gradients import integrated_gradients  # noqa: E402

METHODS = ("gradcam", "integrated_gradients")


def overlay_png(image, heatmap, path, title=None, alpha=0.45, cmap="jet"):
    """Saves `image` (uint8 `(H, W, C)`, C = 1 or 3, or `(H, W)`) under a `cmap` overlay of
    `heatmap` (`(H, W)` in [0, 1]) with its peak marked, as a PNG at `path`. Returns `path`."""
    image, heatmap = np.asarray(image), np.asarray(heatmap, np.float32)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] != 3):
        raise ValueError(f"`image` must be (H, W), (H, W, 1) or (H, W, 3). Received shape {image.shape}")
    if heatmap.shape != image.shape[:2]:
        raise ValueError(
            f"`heatmap` must have the image's shape {image.shape[:2]}. Received shape {heatmap.shape}"
        )
    height, width = heatmap.shape
    fig, ax = plt.subplots(figsize=(4.0, 4.0 * height / width + (0.4 if title else 0.0)), dpi=100)
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    ax.imshow(heatmap, cmap=cmap, alpha=alpha, vmin=0.0, vmax=1.0, interpolation="bilinear")
    row, col = peak(heatmap)
    ax.plot([col], [row], marker="+", markersize=14, markeredgewidth=2.5, color="white")
    ax.plot([col], [row], marker="+", markersize=12, markeredgewidth=1.2, color="black")
    ax.set_xlim(-0.5, width - 0.5)
    ax.set_ylim(height - 0.5, -0.5)
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def explain(model, images, method="gradcam", layer=None, class_index=None):
    """Explains each image: a list of `{"class_index", "heatmap", "peak": [row, col]}`
    dicts (plus `"layer"` for Grad-CAM). `method` is "gradcam" or "integrated_gradients";
    `layer` (Grad-CAM only) names the target layer."""
    if method not in METHODS:
        raise UserError(f"--method {method}: unknown method; expected one of: {', '.join(METHODS)}")
    if method == "gradcam":
        heatmaps, classes, used = gradcam(model, images, class_index=class_index, layer=layer)
        extra = {"layer": used}
    else:
        if layer is not None:
            raise UserError(f"--layer {layer}: only --method gradcam takes a layer")
        heatmaps, classes = integrated_gradients(model, images, class_index=class_index)
        extra = {}
    return [
        {"class_index": int(c), "heatmap": h, "peak": list(peak(h)), **extra}
        for h, c in zip(heatmaps, classes)
    ]
