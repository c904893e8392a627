"""Vision face_detect: the face scenes are deterministic, keep train and test faces apart and
box only faces; precision/recall at IoU 0.5 count as defined; the Haar peer finds real faces;
a short run reports both on held-out scenes and on the real photographs."""

import json

import numpy as np
import pytest

from apps.vision.face_scenes import (MAX_SIDE, MIN_SIDE, PHOTOS_WITH_FACES, TRAIN_SOURCES, lfw_sources,
                                     make_face_scenes, real_photos)
from shared.evaluation.detection import precision_recall
from tests.conftest import run_command


def test_face_scenes_are_deterministic_and_box_the_pasted_faces():
    a, b = make_face_scenes("test", 6, 3), make_face_scenes("test", 6, 3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    scenes = make_face_scenes("train", 40, 0)
    assert scenes["images"].shape == (40, 128, 128, 3) and scenes["boxes"].shape == (40, 3, 4)
    faces = scenes["classes"] >= 0
    assert faces.any(1).all() and set(np.unique(scenes["classes"])) <= {-1, 0}
    sides = (scenes["boxes"][..., 2] - scenes["boxes"][..., 0])[faces]
    assert np.array_equal(sides, (scenes["boxes"][..., 3] - scenes["boxes"][..., 1])[faces])  # squares
    assert sides.min() >= MIN_SIDE and sides.max() <= MAX_SIDE
    # Each box holds a resized LFW face of the scene's split: its grey pixels match one.
    train_faces = lfw_sources()[0][:TRAIN_SOURCES].astype(np.float32)
    from PIL import Image

    y0, x0, y1, x1 = (int(v) for v in scenes["boxes"][0, 0])
    patch = scenes["images"][0, y0:y1, x0:x1].astype(np.float32).mean(-1)
    small = np.asarray(Image.fromarray(patch.astype(np.uint8)).resize((25, 25), Image.BILINEAR), np.float32)
    corr = [np.corrcoef(small.ravel(), f.ravel())[0, 1] for f in train_faces]
    assert max(corr) > 0.9, max(corr)
    assert set(PHOTOS_WITH_FACES) == {"astronaut", "camera"}


def test_real_photos_and_precision_recall():
    photos = real_photos(128)
    assert sorted(photos) == ["astronaut", "grace_hopper"]
    for image, boxes in photos.values():
        assert image.shape == (128, 128, 3) and boxes.shape == (1, 4)
        assert MIN_SIDE <= boxes[0, 2] - boxes[0, 0] <= MAX_SIDE  # the faces are in the trained size range
    truth = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.zeros((0, 4))]
    pred = [np.array([[0, 0, 10, 9], [0, 0, 10, 10], [50, 50, 60, 60]]), np.array([[1, 1, 5, 5]])]
    scores = [np.array([0.9, 0.8, 0.7]), np.array([0.6])]
    # 0.9 matches box 1; 0.8 duplicates it (false); 0.7 misses; image 2 has no faces (false)
    assert precision_recall(truth, pred, scores, 0.5) == {"precision": 0.25, "recall": 0.5, "true_positives": 1,
                                                         "detections": 4, "objects": 2}
    assert precision_recall(truth, pred, scores, 0.85)["precision"] == 1.0


def test_haar_cascade_finds_the_real_faces():
    from apps.vision.face_detection import haar_faces

    photos = real_photos(128)
    names = sorted(photos)
    found = haar_faces([photos[n][0] for n in names])
    result = precision_recall([photos[n][1] for n in names], found, [np.ones(len(f)) for f in found], 0.0)
    assert result["recall"] == 1.0, (result, found)


@pytest.mark.slow
def test_short_face_detector_run_reports_scenes_and_photos(tmp_path):
    home = tmp_path / "home"
    result = run_command(["dl-vision", "train", "face_detect", "--run-name", "short", "--quiet", "--num-scenes", "1300",
                          "--num-test-scenes", "100", "--max-train-examples", "1200", "--epochs", "4",
                          "--batch-size", "16", "--export", ""], home,
                         env={"DLSUITE_DATA_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    run = home / "saved_models" / "vision" / "face_detect" / "short"
    test = json.loads((run / "metrics.json").read_text())["test"]
    scenes, photos = test["test_scenes"], test["real_photos"]
    assert scenes["images"] == 100 and photos["images"] == 2 and set(photos["per_photo"]) == {"astronaut", "grace_hopper"}
    assert scenes["ours"]["objects"] == scenes["haar_cascade"]["objects"] > 100
    # It learns (measured: mAP@.5 0.51, recall 0.45 at the validation threshold; the default
    # run: 0.99 and 0.97). The Haar cascade finds ~0.92 of the same faces.
    assert test["mAP50"] > 0.2 and scenes["ours"]["recall"] > 0.2, test
    assert 0.05 <= test["score_threshold"] <= 0.95
    assert (run / "plots" / "real_photos.png").is_file()
