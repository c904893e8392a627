"""The vision classifier: raw uint8 images in, a shared builder inside, class probabilities out
(detection and segmentation models: `shared/image_tasks.py`)."""

import keras

from shared import architectures
from shared.image_tasks import scaled_images


def build_classifier(cfg, info):
    """uint8 images -> Rescaling(1/255) [-> resize to `cfg.model_size`] -> `cfg.model` (a
    registered architecture/variant) -> softmax."""
    inputs, x = scaled_images(info, cfg.model_size)
    backbone = architectures.build(cfg.model, input_shape=tuple(x.shape[1:]), num_classes=len(info.class_names))
    return keras.Model(inputs, backbone(x), name=f"classify_{cfg.model}")
