"""Where an image classifier looks: Grad-CAM and Integrated Gradients heat maps.

    from shared import explain
    heatmaps, classes, layer = explain.gradcam(model, images)           # (N, H, W) in [0, 1]
    heatmaps, classes = explain.integrated_gradients(model, images)
    explain.pointing_game(heatmaps, boxes)                              # peak-in-box hit rate
    explain.overlay_png(images[0], heatmaps[0], "cam.png")
    explain.explain(model, images, method="gradcam")                    # list of dicts (CLI)

Models take raw images (e.g. uint8) and may nest their backbone as a functional model.
"""

from shared.explain.gradcam import conv_layers, gradcam, peak, pointing_game, pointing_hits
from shared.explain.integrated_gradients import integrated_gradients
from shared.explain.render import METHODS, explain, overlay_png

__all__ = [
    "METHODS", "conv_layers", "explain", "gradcam", "integrated_gradients", "overlay_png",
    "peak", "pointing_game", "pointing_hits",
]
