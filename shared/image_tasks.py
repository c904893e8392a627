"""Image tasks that more than one app trains: object detection and semantic segmentation.

An app gives its config (its data fields plus `DetectorFields` / `SegmenterFields`) and a data
function whose unbatched examples are
- detection: (image uint8 [H,W,3], {"boxes": float32 [M,4] (ymin, xmin, ymax, xmax pixels),
  "classes": int32 [M]}), M the example's object count;
- segmentation: (image uint8 [H,W,3], mask int32 [H,W]), mask value k <-> class_names[k];
(`detection_dataset` / `segmentation_dataset` make them from padded numpy arrays), and gets
the whole task: model, loss, pycocotools / IoU reports, serving graph, parity and rendering.
"""

import keras
import numpy as np
import tensorflow as tf

from shared import architectures
from shared.data.images import load_image_file
from shared.errors import UserError
from shared.evaluation.detection_report import (decode_detections, detection_report, padded_detection_batch,
                                                 render_detections)
from shared.evaluation.segmentation import (decode_mask, pixel_accuracy_per_example, render_mask, segment_serving,
                                             segmentation_loss, segmentation_report)
from shared.export.parity import detection_parity, mask_parity
from shared.tasks import Task
from shared.training.detection_loss import detection_loss


def detection_task(config, data, description, report=detection_report):
    """The detection task over `data` (cfg -> Data of detection examples); `report(serving
    model, test dataset, info, plots_dir)` gives its test metrics."""
    return Task(
        config=config,
        data=data,
        model=build_detector,
        loss=lambda cfg, info: detection_loss(_detector(cfg, info).anchors(), len(info.class_names),
                                              box_loss=cfg.box_loss),
        metrics=lambda model, ds, info, plots: report(detect_serving(model, info), ds, info, plots),
        decode=decode_detections,
        load_input=lambda path, info: load_image_file(path, info.input_shape),
        batch=padded_detection_batch,
        serving=detect_serving,
        parity=detection_parity,
        render=render_detections,
        description=description,
    )


def segmentation_task(config, data, description, report=segmentation_report):
    """The semantic segmentation task over `data` (cfg -> Data of segmentation examples);
    `report(serving model, test dataset, info, plots_dir)` gives its test metrics."""
    return Task(
        config=config,
        data=data,
        model=build_segmenter,
        loss=lambda cfg, info: segmentation_loss,
        step_metrics={"pixel_accuracy": pixel_accuracy_per_example},
        metrics=lambda model, ds, info, plots: report(segment_serving(model, info), ds, info, plots),
        decode=decode_mask,
        load_input=lambda path, info: load_image_file(path, info.input_shape),
        monitor="val_loss",  # pixel accuracy favours all-background; the loss has a Dice term
        serving=segment_serving,
        parity=mask_parity,
        render=render_mask,
        description=description,
    )


def pad_objects(images, boxes, classes, image_shape):
    """Stacks variable-length objects into padded arrays {"images", "boxes" (0-padded),
    "classes" (-1-padded)}, the input of `detection_dataset`; `image_shape` shapes an empty stack."""
    width = max([1] + [len(c) for c in classes])
    padded_boxes = np.zeros((len(images), width, 4), np.float32)
    padded_classes = np.full((len(images), width), -1, np.int32)
    for i, (b, c) in enumerate(zip(boxes, classes)):
        padded_boxes[i, :len(c)] = b
        padded_classes[i, :len(c)] = c
    stacked = np.stack(images) if len(images) else np.zeros((0, *image_shape), np.uint8)
    return {"images": stacked, "boxes": padded_boxes, "classes": padded_classes}


def detection_dataset(arrays):
    """Unbatched (image, {"boxes", "classes"}) from padded arrays {"images", "boxes", "classes"},
    padding (class -1) stripped."""
    def strip(image, boxes, classes):
        keep = classes >= 0
        return image, {"boxes": tf.boolean_mask(boxes, keep), "classes": tf.boolean_mask(classes, keep)}

    ds = tf.data.Dataset.from_tensor_slices((arrays["images"], arrays["boxes"], arrays["classes"]))
    return ds.map(strip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def segmentation_dataset(arrays):
    """Unbatched (image, int32 mask); masks are kept as uint8 in memory."""
    ds = tf.data.Dataset.from_tensor_slices((arrays["images"], arrays["masks"]))
    return ds.map(lambda image, mask: (image, tf.cast(mask, tf.int32)),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)



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


def backbone_of(cfg):
    """The encoder of a segmenter or detector: `--backbone`, or, with `--init-from` a run and
    no `--backbone`, the run's (a classify run's `--model` when it can be a trunk), so its
    weights load by name: the usual backbone transfer. "" for the model's own encoder."""
    from shared.architectures.trunk import trunk_names
    from shared.training.rundir import open_run

    if cfg.backbone and cfg.backbone not in trunk_names():
        raise UserError(f"--backbone {cfg.backbone}: expected one of {', '.join(trunk_names())} (a classifier's trunk)")
    if cfg.backbone or not cfg.init_from:
        return cfg.backbone
    source = open_run(cfg.init_from).read_config() or {}
    name = source.get("backbone") or source.get("model", "")
    return name if name in trunk_names() else ""


def build_segmenter(cfg, info):
    """uint8 images -> Rescaling [-> resize to `cfg.model_size`] -> U-Net (`cfg.model`,
    `cfg.base_filters`, `cfg.depth`, the encoder `backbone_of(cfg)`) [-> bilinear back to the input size] -> per-pixel class
    probabilities [N, H, W, classes]: the mask still comes out at the input size."""
    height, width, channels = info.input_shape
    inputs, x = scaled_images(info, cfg.model_size)
    unet = architectures.build(cfg.model, input_shape=tuple(x.shape[1:]), num_classes=len(info.class_names),
                               base_filters=cfg.base_filters, depth=cfg.depth, backbone=backbone_of(cfg))
    probabilities = unet(x)
    if tuple(x.shape[1:3]) != (height, width):
        probabilities = keras.layers.Resizing(height, width, name="upscale", dtype="float32")(probabilities)
    return keras.Model(inputs, probabilities, name=f"segment_{cfg.model}")


def _detector(cfg, info):
    return architectures.build(cfg.model, input_shape=info.input_shape, num_classes=len(info.class_names),
                               min_level=cfg.min_level, max_level=cfg.max_level, anchor_size=cfg.anchor_size,
                               backbone=backbone_of(cfg))


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
