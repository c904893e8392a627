"""Segment, detect and explain on the embedded scenes: they learn, predict and render."""

import json

import numpy as np
import pytest
from PIL import Image

from apps.vision.tasks import TASKS, DetectConfig, SegmentConfig
from shared.training import engine
from tests.conftest import error_line, run_command


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
    run = _train("segment", cfg, "learn")
    history, test = run.read_history(), engine.read_metrics(run)["test"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert test["mean_iou"] > test["mean_iou_all_background"] + 0.01, test
    assert (scene_home / "saved_models/vision/segment/learn/plots/segmentation_overlays.png").is_file()


@pytest.fixture(scope="module")
def detect_run(scene_home):
    cfg = DetectConfig.tiny()
    cfg.epochs, cfg.num_scenes, cfg.max_train_examples, cfg.learning_rate = 5, 800, 768, 3e-3
    return _train("detect", cfg, "learn")


@pytest.mark.slow
def test_detector_learns(detect_run):
    history, test = detect_run.read_history(), engine.read_metrics(detect_run)["test"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert test["mAP50"] > 0.05, test
    from apps.vision.data import FASHION_MNIST_CLASSES

    assert set(test["per_class_AP"]) == set(FASHION_MNIST_CLASSES)


@pytest.mark.slow
def test_detect_predict_out_draws_boxes(detect_run, scene_home, tmp_path):
    from apps.vision.scenes import load_scenes

    scenes = load_scenes("test", 64, DetectConfig().seed + 1)
    path = tmp_path / "scene.png"
    Image.fromarray(scenes["images"][0]).save(path)
    out = tmp_path / "out"
    result = run_command(["dl-vision", "predict", detect_run.path, path, "--json", "--out", out], scene_home)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["rendered"] == str(out / "scene.png") and "detections" in row
    drawn = np.asarray(Image.open(out / "scene.png").convert("RGB"))
    assert drawn.shape[:2] == (256, 256)  # upscaled so labels are legible
    box_colour = np.all(drawn == [255, 32, 32], axis=-1).sum()
    assert (box_colour > 100) == bool(row["detections"]), (box_colour, row["detections"])
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\nnot an image")
    line = error_line(run_command(["dl-vision", "predict", detect_run.path, corrupt], scene_home))
    assert line == f"dl-vision: error: {corrupt}: not a readable image (PNG, JPEG, BMP or GIF expected)"


@pytest.mark.slow
def test_pointing_game_on_a_small_scenes1_run(scene_home, tmp_path):
    """A classifier trained on one-item scenes looks at the item: Grad-CAM's and IG's peaks fall
    inside its box far more often than a random peak would; `explain` writes the overlays."""
    from apps.vision.tasks import ClassifyConfig

    cfg = ClassifyConfig(data="scenes1", image_size=128, channels=3, num_scenes=1500, num_test_scenes=200,
                         epochs=4, batch_size=32, model="cnn_bn", augment="none", export="",
                         steps_per_execution=8, early_stopping_patience=0)
    run = _train("classify", cfg, "scenes1")
    test = engine.read_metrics(run)["test"]
    game = test["pointing_game"]
    assert game["num_images"] == 200 and test["accuracy"] > 0.3, test["accuracy"]  # chance: 0.1
    assert game["gradcam"] > max(0.5, 3 * game["random_peak"]), game
    assert game["integrated_gradients"] > 3 * game["random_peak"], game

    from apps.vision.scenes import load_scenes

    scene = load_scenes("test", 200, cfg.seed + 1, max_items=1)
    path = tmp_path / "scene.png"
    Image.fromarray(scene["images"][0]).save(path)
    result = run_command(["dl-vision", "explain", run.path, path, "--json", "--out", tmp_path / "cams"], scene_home)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert (tmp_path / "cams" / "scene_gradcam.png").is_file() and row["path"].endswith("scene_gradcam.png")
    assert 0 <= row["peak"][0] < 128 and 0 <= row["peak"][1] < 128 and row["label"]
