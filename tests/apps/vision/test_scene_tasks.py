"""Segment, detect and explain on the embedded scenes: they learn, predict and render."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from apps.vision.configs import ClassifyConfig, DetectConfig, SegmentConfig
from apps.vision.tasks import TASKS
from shared.training import engine, runs
from tests.conftest import error_line, run_main


@pytest.fixture(scope="module")
def scene_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("scenes_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("DLSUITE_HOME", str(home))
    mp.setenv("DLSUITE_DATA_CACHE", str(tmp_path_factory.mktemp("cache")))
    yield home
    mp.undo()


def _train(task, cfg, name):
    return engine.train("vision", task, TASKS.get(task)(), cfg, run_name=name, verbose=False)


@pytest.mark.slow
def test_segmenter_learns_and_beats_all_background(scene_home):
    cfg = SegmentConfig.tiny()
    cfg.epochs, cfg.num_scenes, cfg.max_train_examples, cfg.learning_rate = 6, 900, 768, 1e-2
    cfg.base_filters, cfg.depth = 16, 3
    cfg.augment = "none"  # as when this config was first measured: flip,contrast once collapsed it on CI
    run = _train("segment", cfg, "learn")
    history, test = run.read_history(), runs.read_metrics(run)["test"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert test["mean_iou"] > test["mean_iou_all_background"] + 0.01, test  # measured: 0.098 vs 0.076
    assert test["mean_iou_foreground"] > 0.005, test  # it segments items, not only background
    assert (scene_home / "saved_models/vision/segment/learn/plots/segmentation_overlays.png").is_file()
    # The diagnosis beside it: where (class-agnostic) apart from what (the pixel confusion).
    agnostic, matrix = test["class_agnostic"], np.array(test["confusion_matrix"])
    assert matrix.shape == (11, 11) and matrix.sum() == cfg.num_test_scenes * 128 * 128
    assert matrix[1:, 1:].sum() > 0 and 0 < agnostic["foreground_iou"] <= 1 and 0 <= agnostic["item_accuracy"] <= 1
    assert (scene_home / "saved_models/vision/segment/learn/plots/pixel_confusion.png").is_file()


@pytest.fixture(scope="module")
def detect_run(scene_home):
    cfg = DetectConfig.tiny()
    cfg.epochs, cfg.num_scenes, cfg.max_train_examples, cfg.learning_rate = 5, 1400, 1280, 2e-3
    # Without warm-up, seed 42 sat on a plateau for 3 epochs (mAP@.5 0.087 here, 0.041 on CI;
    # seeds 1 and 2: 0.23, 0.13; lr 4e-3 diverged). With one warm-up epoch: 0.296, mAP 0.180
    # in 8 epochs; 0.249 in 5 (57 s alone; 4 epochs on 1,024: 0.054, too close).
    cfg.warmup_epochs = 1
    return _train("detect", cfg, "learn")


@pytest.mark.slow
def test_detector_learns(detect_run):
    history, test = detect_run.read_history(), runs.read_metrics(detect_run)["test"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert test["mAP50"] > 0.05, test
    from apps.vision.data import FASHION_MNIST_CLASSES

    assert set(test["per_class_AP"]) == set(FASHION_MNIST_CLASSES)
    # Where apart from what: finding items is easier than naming them.
    assert test["class_agnostic"]["mAP50"] >= test["mAP50"], test
    confusion = np.array(test["confusion"]["matrix"])
    assert confusion.shape == (10, 11) and confusion.sum() == test["num_gt"]
    assert test["confusion"]["columns"][-1] == "missed"
    assert os.path.isfile(os.path.join(detect_run.path, "plots", "item_confusion.png"))


@pytest.mark.slow
def test_detect_predict_out_draws_boxes(detect_run, scene_home, tmp_path):
    from apps.vision.scenes import load_scenes

    scenes = load_scenes("test", 64, DetectConfig().seed + 1)
    path = tmp_path / "scene.png"
    Image.fromarray(scenes["images"][0]).save(path)
    out = tmp_path / "out"
    result = run_main(["dl-vision", "predict", detect_run.path, path, "--json", "--out", out], scene_home)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["rendered"] == str(out / "scene.png") and "detections" in row
    drawn = np.asarray(Image.open(out / "scene.png").convert("RGB"))
    assert drawn.shape[:2] == (256, 256)  # upscaled so labels are legible
    box_colour = np.all(drawn == [255, 32, 32], axis=-1).sum()
    assert (box_colour > 100) == bool(row["detections"]), (box_colour, row["detections"])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    line = error_line(run_main(["dl-vision", "predict", detect_run.path, corrupt], scene_home))
    assert line == f"dl-vision: error: {corrupt}: not a readable image (PNG, JPEG, BMP or GIF expected)"



@pytest.fixture(scope="module")
def scenes1_run(scene_home):
    cfg = ClassifyConfig.tiny()
    cfg.data, cfg.image_size, cfg.channels, cfg.model, cfg.model_size = "scenes1", 128, 3, "cnn_gap", 64
    cfg.num_scenes, cfg.num_test_scenes, cfg.max_train_examples, cfg.epochs = 300, 48, 256, 1
    return _train("classify", cfg, "scenes1")


@pytest.mark.slow
def test_scenes1_evaluation_plays_the_pointing_game(scenes1_run):
    """The plumbing on a tiny run (it learns nothing in seconds; the learned rates are in the
    closing notes, and tests/shared/explain proves the maps point on a task that learns fast)."""
    from apps.vision.scenes import load_scenes

    game = runs.read_metrics(scenes1_run)["test"]["pointing_game"]
    boxes = np.asarray(load_scenes("test", 48, ClassifyConfig().seed + 1, max_items=1)["boxes"][:, 0])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / 128 ** 2
    assert game["num_images"] == 48 and game["explained_class"] == "true"
    assert game["random_peak"] == pytest.approx(area.mean(), rel=1e-5)
    assert game["gradcam_layer"] == "cnn_block3_act1"
    for key in ("gradcam", "integrated_gradients", "accuracy"):
        assert 0.0 <= game[key] <= 1.0 and (game[key] * 48) == pytest.approx(round(game[key] * 48))


@pytest.mark.slow
def test_explain_cli_writes_overlays_and_json(scenes1_run, scene_home, tmp_path):
    from apps.vision.scenes import load_scenes

    image = load_scenes("test", 48, ClassifyConfig().seed + 1, max_items=1)["images"][0]
    path = tmp_path / "scene.png"
    Image.fromarray(np.asarray(image)).save(path)
    out = tmp_path / "maps"
    for method in ("gradcam", "integrated_gradients"):
        result = run_main(["dl-vision", "explain", scenes1_run.path, path, "--method", method, "--json",
                              "--out", out], scene_home)
        assert result.returncode == 0 and result.stderr == "", result.stderr[-2000:]
        row = json.loads(result.stdout.strip().splitlines()[-1])
        assert row["path"] == str(out / f"scene_{method}.png") and (out / f"scene_{method}.png").is_file()
        assert all(0 <= p < 128 for p in row["peak"]) and 0 <= row["class_index"] < 10
    overlay = np.asarray(Image.open(out / "scene_gradcam.png").convert("RGB"))
    assert overlay.std() > 0
