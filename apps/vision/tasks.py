"""The vision app's tasks."""

from dataclasses import dataclass

import keras

from apps.vision.data import build_classify_data
from apps.vision.detection_data import build_detect_data, build_segment_data
from apps.vision.models import build_classifier
from shared.data.images import load_image_file
from shared.evaluation.classification import (accuracy_per_example, classification_report, decode_probabilities,
                                               render_label)
from shared.image_tasks import DetectorFields, SegmenterFields, detection_task, segmentation_task
from shared.tasks import Task, task_registry
from shared.training.config import TrainConfig

TASKS = task_registry("vision")


@dataclass
class ClassifyConfig(TrainConfig):
    """Image classification. `--data fashion_mnist | scenes1 | tfds:NAME | folder:PATH`."""

    data: str = "fashion_mnist"
    data_dir: str = ""
    download: bool = False
    image_size: int = 28
    channels: int = 1
    model: str = "cnn_bn"
    model_size: int = 0  # resize images to this inside the model (0: keep the input size)
    augment: str = "flip"
    num_scenes: int = 20000  # --data scenes1 only
    num_test_scenes: int = 2000  # --data scenes1 only
    epochs: int = 10
    batch_size: int = 128
    lr_schedule: str = "cosine"
    learning_rate: float = 2e-3
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=32, max_train_examples=512, steps_per_execution=4,
                   export="", model="simple_cnn", augment="flip", early_stopping_patience=0)


def classify_report(model, ds, info, plots_dir):
    """Classification metrics; on `--data scenes1` also the pointing game of Grad-CAM and IG."""
    result, plots = classification_report(model, ds, info, plots_dir)
    if "test_boxes" in info.extra:
        from shared.evaluation.predict import take_examples
        from shared.explain.pointing import pointing_game_report

        images, labels = take_examples(ds, 500)
        result["pointing_game"] = pointing_game_report(model, images, info.extra["test_boxes"][:len(images)], labels)
    return result, plots


@TASKS.register("classify")
def classify():
    return Task(
        config=ClassifyConfig,
        data=build_classify_data,
        model=build_classifier,
        loss=lambda cfg, info: keras.losses.SparseCategoricalCrossentropy(reduction=None),
        step_metrics={"accuracy": accuracy_per_example},
        metrics=classify_report,
        decode=decode_probabilities,
        load_input=lambda path, info: load_image_file(path, info.input_shape),
        monitor="val_accuracy",
        render=render_label,
        description="image classification (Fashion-MNIST, TFDS, image folders)",
    )


@dataclass
class SceneConfig(TrainConfig):
    """Fields shared by the scene tasks (`--data scenes` is the embedded default)."""

    data: str = "scenes"
    data_dir: str = ""
    images: str = ""
    download: bool = False
    image_size: int = 128
    augment: str = "none"  # flip and contrast move boxes and masks with the pixels
    num_scenes: int = 20000
    num_test_scenes: int = 2000
    batch_size: int = 32
    lr_schedule: str = "cosine"

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=16, num_scenes=320, num_test_scenes=64, max_train_examples=256,
                   steps_per_execution=4, export="", augment="flip,contrast")


@dataclass
class SegmentConfig(SceneConfig, SegmenterFields):
    """Semantic segmentation. `--data scenes | tfds:oxford_iiit_pet | masks:IMAGES_DIR,MASKS_DIR`."""

    epochs: int = 6
    learning_rate: float = 5e-3
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.base_filters, cfg.depth, cfg.early_stopping_patience = 8, 2, 0
        return cfg


@TASKS.register("segment")
def segment():
    return segmentation_task(SegmentConfig, build_segment_data,
                             "semantic segmentation (scenes, Oxford-IIIT Pet, image/mask folders)")


@dataclass
class DetectConfig(SceneConfig, DetectorFields):
    """Object detection. `--data scenes | tfds:voc/2007 | tfds:coco/2017 | coco:ANNOTATIONS.json --images DIR`."""

    augment: str = "flip"  # measured: mAP 0.383 vs 0.371 without, same seed and budget
    epochs: int = 6
    learning_rate: float = 2e-3


@TASKS.register("detect")
def detect():
    return detection_task(DetectConfig, build_detect_data, "object detection (scenes, VOC/COCO via TFDS, COCO json)")
