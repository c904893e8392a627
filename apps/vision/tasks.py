"""The vision app's tasks."""

from dataclasses import dataclass

from apps.vision.data import ImageDataFields, build_classify_data, build_video_data
from apps.vision.detection_data import build_detect_data, build_segment_data
from apps.vision.models import build_classifier, build_video_classifier
from shared.data.images import load_image_file
from shared.data.video import read_video
from shared.errors import UserError
from shared.evaluation.classification import classification_report, render_label
from shared.image_tasks import DetectorFields, SegmenterFields, detection_task, segmentation_task
from shared.tasks import classifier_task, task_registry
from shared.training.config import TrainConfig

TASKS = task_registry("vision")


@dataclass
class ClassifyConfig(TrainConfig, ImageDataFields):
    """Image classification. `--data fashion_mnist | mnist | scenes1 | tfds:NAME | folder:PATH`."""

    model: str = "cnn_bn3"
    model_size: int = 0  # resize images to this inside the model (0: keep the input size)
    backbone_preset: str = ""  # a local keras-hub preset directory: its backbone (weights too) replaces --model
    augment: str = "flip"
    num_scenes: int = 20000  # --data scenes1 only
    num_test_scenes: int = 2000  # --data scenes1 only
    synthetic_from: str = ""  # a synthesize run: its generated images join the training split
    synthetic_ratio: float = 1.0  # with --synthetic-from: generated images per real training image
    label_smoothing: float = 0.0  # target (1 - e) one-hot + e / classes
    test_time_flip: bool = True  # with --augment flip: serve the mean of the image's and its mirror's probabilities
    epochs: int = 13
    batch_size: int = 128
    lr_schedule: str = "cosine"
    learning_rate: float = 2e-3
    precision: str = "auto"  # mixed_bfloat16 where the hardware has it (1.3-1.6x here), else float32
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=32, max_train_examples=512, steps_per_execution=4, precision="float32",
                   export="", model="simple_cnn", augment="flip", early_stopping_patience=0)

    def validate(self):
        if not 0 <= self.label_smoothing < 1:
            raise UserError(f"--label-smoothing: expected a number in [0, 1); got {self.label_smoothing}")
        return super().validate()


def served(model, info):
    """The classifier as it is evaluated, predicted and exported: averaged with its mirror
    image's pass when the run was trained with `--test-time-flip` (the trained model is unchanged)."""
    from shared.architectures.test_time import flip_averaged

    return flip_averaged(model) if info.extra.get("saved", {}).get("test_time_flip") else model


def classify_report(model, ds, info, plots_dir):
    """Classification metrics (of the served model); on `--data scenes1` also the pointing
    game of Grad-CAM and IG (on the trained model)."""
    result, plots = classification_report(served(model, info), ds, info, plots_dir)
    if "test_boxes" in info.extra:
        from shared.evaluation.predict import take_examples
        from shared.explain.pointing import pointing_game_report

        images, labels = take_examples(ds, 500)
        result["pointing_game"] = pointing_game_report(model, images, info.extra["test_boxes"][:len(images)], labels)
    return result, plots


@TASKS.register("classify")
def classify():
    from shared.export.savedmodel import as_serving_model

    return classifier_task(
        config=ClassifyConfig,
        data=build_classify_data,
        model=build_classifier,
        metrics=classify_report,
        serving=lambda model, info: as_serving_model(served(model, info)),
        load_input=lambda path, info: load_image_file(path, info.input_shape),
        render=render_label,
        description="image classification (Fashion-MNIST, TFDS, image folders)",
    )


@dataclass
class VideoConfig(TrainConfig):
    """Video recognition on 16-frame 64x64 clips. `--data motion | tfds:ucf101 | folder:PATH`
    (one subfolder per class of video files or frame folders)."""

    data: str = "motion"
    data_dir: str = ""
    download: bool = False
    model: str = "video_r2plus1d"  # or video_cnn_lstm, video_conv_lstm
    filters: str = "16,32,64"
    stride: int = 2  # of the first convolution: a quarter of the cost
    dropout: float = 0.0
    num_clips: int = 8000  # --data motion: train + validation clips
    num_test_clips: int = 1000  # --data motion
    epochs: int = 15
    batch_size: int = 32
    lr_schedule: str = "cosine"
    learning_rate: float = 2e-3
    early_stopping_patience: int = 0  # motion is learnt suddenly after a few flat epochs (measured: epoch 4-5)

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=16, num_clips=160, num_test_clips=32, filters="8",
                   steps_per_execution=4, export="", early_stopping_patience=0)


@TASKS.register("video")
def video():
    from shared.export.savedmodel import as_serving_model

    return classifier_task(
        config=VideoConfig,
        data=build_video_data,
        model=build_video_classifier,
        metrics=classification_report,
        load_input=lambda path, info: read_video(path, info.input_shape[0], info.input_shape[1]),
        serving=lambda model, info: as_serving_model(model, input_name="video"),
        description="video recognition (motion clips, UCF101 via TFDS, video folders)",
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


@dataclass
class FaceDetectConfig(DetectConfig):
    """Face detection. `--data faces` (embedded: real LFW faces and non-faces on photos), or
    any detection data whose one class is a face (`tfds:NAME`, `coco:ANNOTATIONS.json`)."""

    data: str = "faces"
    num_scenes: int = 6000
    num_test_scenes: int = 500
    augment: str = "flip,contrast"
    epochs: int = 8
    warmup_epochs: int = 1
    window_peer_scenes: int = 2000  # --data faces: training scenes of the window-pyramid peer (0: none)

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.window_peer_scenes = 30
        return cfg


@TASKS.register("face_detect")
def face_detect():
    from apps.vision.face_detection import calibrate_score_threshold, face_detection_report

    task = detection_task(FaceDetectConfig, build_detect_data,
                          "face detection (LFW faces on photos; Haar and window-pyramid peers)",
                          report=face_detection_report)
    task.calibrate = calibrate_score_threshold
    return task


@TASKS.register("synthesize")
def synthesize():
    from apps.vision.synthesis import synthesize_task

    return synthesize_task()


@TASKS.register("faces")
def faces():
    from apps.vision.faces import faces_task

    return faces_task()
