"""The vision app's task registry (classify, video, detect, segment, face_detect, synthesize,
faces): one record per task, naming its config (`configs.py`) and the functions of its data,
model, metrics and serving (in the task's own module). The layout rule: README.md, "Layout"."""

from apps.vision.configs import (ClassifyConfig, DetectConfig, FaceDetectConfig, FacesConfig, SegmentConfig,
                                 SynthesizeConfig, VideoConfig)
from apps.vision.data import build_classify_data, build_video_data
from apps.vision.detection_data import build_detect_data, build_segment_data
from apps.vision.models import build_classifier, build_video_classifier
from shared.data.images import load_image_file
from shared.data.video import read_video
from shared.evaluation.classification import classification_report, render_label
from shared.image_tasks import detection_task, segmentation_task
from shared.tasks import Task, classifier_task, task_registry

TASKS = task_registry("vision")


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


@TASKS.register("segment")
def segment():
    return segmentation_task(SegmentConfig, build_segment_data,
                             "semantic segmentation (scenes, Oxford-IIIT Pet, image/mask folders)")


@TASKS.register("detect")
def detect():
    return detection_task(DetectConfig, build_detect_data, "object detection (scenes, VOC/COCO via TFDS, COCO json)")


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
    import os

    import numpy as np

    from apps.vision.synthesis import (build_gan, build_synthesis_data, class_grid, no_input, synthesis_report,
                                       synthesis_serving)
    from shared.export.parity import image_parity

    return Task(
        config=SynthesizeConfig,
        data=build_synthesis_data,
        model=build_gan,
        loss=lambda cfg, info: None,  # the GAN's own step computes its losses
        metrics=synthesis_report,
        decode=lambda outputs, info: [{"shape": list(np.shape(x))} for x in outputs["images"]],
        load_input=no_input,
        monitor="",  # no validation figure ranks GAN epochs: the last epoch is kept
        serving=synthesis_serving,
        parity=image_parity,
        epoch_plots=lambda model, info, plots_dir, epoch: [class_grid(model, info, os.path.join(plots_dir, "samples.png"))],
        description="GAN image synthesis: class-conditional DCGAN (Fashion-MNIST)",
    )


@TASKS.register("faces")
def faces():
    from apps.vision.faces import (build_face_embedder, build_faces_data, calibrate_faces, faces_report, faces_serving,
                                   load_face)
    from shared.architectures.metric_learning import additive_angular_margin_loss
    from shared.export.parity import embedding_parity

    return classifier_task(
        config=FacesConfig,
        data=build_faces_data,
        model=build_face_embedder,
        loss=lambda cfg, info: additive_angular_margin_loss(cfg.arc_scale, cfg.arc_margin),
        metrics=faces_report,
        decode=lambda outputs, info: [{"embedding": [round(float(v), 6) for v in row]} for row in outputs["embedding"]],
        load_input=load_face,
        serving=faces_serving,
        parity=embedding_parity,
        calibrate=calibrate_faces,
        description="face verification: ArcFace CNN embedding (AT&T/ORL faces, LFW, folders)",
    )
