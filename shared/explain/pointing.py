"""The pointing game as an evaluation: does the heat map's peak fall inside the object's box?"""

import numpy as np

from shared.explain.gradcam import gradcam, pointing_game
from shared.explain.integrated_gradients import integrated_gradients


def pointing_game_report(model, images, boxes, classes=None, max_images=500, ig_steps=16):
    """Hit rates of Grad-CAM and integrated gradients on the first `max_images` images, beside
    the rate a uniformly random peak would reach (the mean box area fraction).

    The maps explain the true class when `classes` is given (the protocol of Zhang et al.,
    2016), else the predicted class; `accuracy` says how often the two agree."""
    images, boxes = np.asarray(images[:max_images]), np.asarray(boxes[:max_images], np.float32)
    wanted = None if classes is None else np.asarray(classes[:max_images], np.int32)
    cam, _, layer = gradcam(model, images, class_index=wanted)
    ig, _ = integrated_gradients(model, images, class_index=wanted, steps=ig_steps)
    height, width = images.shape[1:3]
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / (height * width)
    report = {"gradcam": float(pointing_game(cam, boxes)), "integrated_gradients": float(pointing_game(ig, boxes)),
              "random_peak": float(area.mean()), "num_images": int(len(images)), "gradcam_layer": layer,
              "explained_class": "true" if classes is not None else "predicted"}
    if classes is not None:
        scores = [np.asarray(model(images[i:i + 64], training=False)) for i in range(0, len(images), 64)]
        predicted = np.argmax(np.concatenate(scores), -1)
        report["accuracy"] = float(np.mean(predicted == wanted))
    return report
