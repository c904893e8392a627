"""Vision task models: raw uint8 images in, shared builders inside, task outputs out; and the
serving graphs (post-processing inside) that `predict` runs and exports carry."""

import keras

from shared import architectures


def scaled_images(info, size=0):
    """(uint8 `images` input, float [0, 1] tensor resized to `size`x`size` when `size` is set and
    differs from the input). Working below the input size is a CPU-budget choice: a conv net's
    cost grows with the pixels, and the exported model still takes full-size raw images."""
    height, width, _ = info.input_shape
    inputs = keras.Input(shape=info.input_shape, dtype="uint8", name="images")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if size and (size, size) != (height, width):
        x = keras.layers.Resizing(size, size, name="downscale")(x)
    return inputs, x


def build_classifier(cfg, info):
    """uint8 images -> Rescaling(1/255) [-> resize to `cfg.model_size`] -> `cfg.model` (a
    registered architecture/variant) -> softmax."""
    inputs, x = scaled_images(info, cfg.model_size)
    backbone = architectures.build(cfg.model, input_shape=tuple(x.shape[1:]), num_classes=len(info.class_names))
    return keras.Model(inputs, backbone(x), name=f"classify_{cfg.model}")


def build_segmenter(cfg, info):
    """uint8 images -> Rescaling [-> resize to `cfg.model_size`] -> U-Net (`cfg.model`,
    `cfg.base_filters`, `cfg.depth`) [-> bilinear back to the input size] -> per-pixel class
    probabilities [N, H, W, classes]: the mask still comes out at the input size."""
    height, width, channels = info.input_shape
    inputs, x = scaled_images(info, cfg.model_size)
    unet = architectures.build(cfg.model, input_shape=tuple(x.shape[1:]), num_classes=len(info.class_names),
                               base_filters=cfg.base_filters, depth=cfg.depth)
    probabilities = unet(x)
    if tuple(x.shape[1:3]) != (height, width):
        probabilities = keras.layers.Resizing(height, width, name="upscale", dtype="float32")(probabilities)
    return keras.Model(inputs, probabilities, name=f"segment_{cfg.model}")


def _detector(cfg, info):
    return architectures.build(cfg.model, input_shape=info.input_shape, num_classes=len(info.class_names),
                               min_level=cfg.min_level, max_level=cfg.max_level, anchor_size=cfg.anchor_size)


def build_detector(cfg, info):
    """uint8 images -> Rescaling -> RetinaNet-style `Detector` -> {"classes": probabilities
    [N, anchors, classes], "boxes": deltas [N, anchors, 4]} (the training graph)."""
    inputs = keras.Input(shape=info.input_shape, dtype="uint8", name="images")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    return keras.Model(inputs, _detector(cfg, info)(x), name=f"detect_{cfg.model}")


def detector_anchors(model):
    """The (N, 4) xyxy anchors of a model built by `build_detector`."""
    from shared.architectures.detection import Detector

    return next(layer for layer in model.layers if isinstance(layer, Detector)).anchors()


def detect_serving(model, info, max_detections=100, score_threshold=0.05, iou_threshold=0.5):
    """images -> {"boxes" float32 [N,K,4] (ymin, xmin, ymax, xmax pixels), "scores" float32 [N,K],
    "classes" int32 [N,K], "num_detections" int32 [N]}: decoding and class-aware NMS inside."""
    from shared.architectures.detection_postprocess import DetectionPostprocess

    inputs = keras.Input(shape=info.input_shape, dtype="uint8", name="images")
    head = DetectionPostprocess(detector_anchors(model), info.input_shape[:2], max_detections=max_detections,
                                score_threshold=score_threshold, iou_threshold=iou_threshold, name="postprocess")
    return keras.Model(inputs, head(model(inputs)), name="detect_serving")
