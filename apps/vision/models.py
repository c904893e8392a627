"""The vision classifier: raw uint8 images in, a shared builder inside, class probabilities out
(detection and segmentation models: `shared/image_tasks.py`)."""

import keras

from shared import architectures
from shared.errors import UserError
from shared.image_tasks import scaled_images


def build_classifier(cfg, info):
    """uint8 images -> Rescaling(1/255) [-> resize to `cfg.model_size`] -> `cfg.model` (a
    registered architecture/variant), or the backbone of the keras-hub preset in
    `cfg.backbone_preset` (grey images repeated to its channels) + a new head -> softmax."""
    inputs, x = scaled_images(info, cfg.model_size)
    classes = len(info.class_names)
    if not cfg.backbone_preset:
        backbone = architectures.build(cfg.model, input_shape=tuple(x.shape[1:]), num_classes=classes)
        return keras.Model(inputs, backbone(x), name=f"classify_{cfg.model}")
    backbone = architectures.build("keras_hub_backbone", preset_dir=cfg.backbone_preset, num_classes=classes)
    channels = backbone.input.shape[-1]
    if channels != x.shape[-1]:
        if x.shape[-1] != 1:
            raise UserError(f"--backbone-preset {cfg.backbone_preset}: it takes {channels}-channel images; "
                            f"the data has {x.shape[-1]}")
        x = keras.layers.Concatenate(name="grey_to_channels")([x] * channels)
    return keras.Model(inputs, backbone(x), name="classify_preset")


def build_video_classifier(cfg, info):
    """uint8 clips `video` [T, H, W, 3] -> Rescaling(1/255) -> `cfg.model` (a registered video
    variant: video_cnn_lstm, video_conv_lstm, video_r2plus1d) with `cfg.filters` -> softmax."""
    inputs = keras.Input(shape=info.input_shape, dtype="uint8", name="video")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    filters = tuple(int(f) for f in str(cfg.filters).split(",") if f.strip())
    backbone = architectures.build(cfg.model, input_shape=tuple(info.input_shape), num_classes=len(info.class_names),
                                   filters=filters, stride=cfg.stride, dropout=cfg.dropout)
    return keras.Model(inputs, backbone(x), name=f"video_{cfg.model}")
