"""Vision face_detect: the face scenes are deterministic, keep train and test faces apart and
box only faces; precision/recall at IoU 0.5 count as defined; the Haar peer finds real faces;
the window pyramid scores every window and maps it back; a short run reports ours and the
peers on held-out scenes and on the real photographs."""

import json

import numpy as np
import pytest

from apps.vision.face_scenes import (MAX_SIDE, MIN_SIDE, PHOTOS_WITH_FACES, TRAIN_SOURCES, lfw_sources,
                                     make_face_scenes, real_photos)
from shared.evaluation.detection import precision_recall
from tests.conftest import run_main


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
    result = run_main(["dl-vision", "train", "face_detect", "--run-name", "short", "--quiet", "--num-scenes", "1300",
                          "--num-test-scenes", "100", "--max-train-examples", "1200", "--epochs", "4",
                          "--batch-size", "16", "--export", "", "--window-peer-scenes", "0"], home,
                         env={"DLSUITE_DATA_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    run = home / "saved_models" / "vision" / "face_detect" / "short"
    test = json.loads((run / "metrics.json").read_text())["test"]
    scenes, photos = test["test_scenes"], test["real_photos"]
    assert scenes["images"] == 100 and photos["images"] == 2 and set(photos["per_photo"]) == {"astronaut", "grace_hopper"}
    assert scenes["ours"]["objects"] == scenes["haar_cascade"]["objects"] > 100
    # It learns (measured, seeds 1-4: mAP@.5 0.92-0.94, recall 0.77-0.90 at the validation
    # threshold; with Keras's batch-norm momentum 0.99: 0.32-0.73 here, 0.10 on CI; the default
    # run: 0.99 and 0.97). The Haar cascade finds ~0.92 of the same faces.
    assert test["mAP50"] > 0.5 and scenes["ours"]["recall"] > 0.4, test
    assert 0.05 <= test["score_threshold"] <= 0.95
    assert (run / "plots" / "real_photos.png").is_file()


def test_window_pyramid_scores_every_window_and_maps_it_back():
    from apps.vision.face_pyramid import WINDOW, pyramid_detect, window_classifier

    model = window_classifier()
    assert model(np.zeros((1, WINDOW, WINDOW, 3), np.uint8)).shape == (1, 1, 1, 1)
    assert model(np.zeros((2, 128, 128, 3), np.uint8)).shape == (2, 53, 53, 1)  # (128 - 2) // 2 - 10

    class OneWindow:  # scores 0.9 at map cell (5, 7) of the level searching 28 px faces (128 -> 110 px)
        def predict(self, level, batch_size, verbose):
            scores = np.zeros((len(level), (level.shape[1] - 2) // 2 - 10, (level.shape[2] - 2) // 2 - 10, 1))
            if level.shape[1] == 110:
                scores[0, 5, 7, 0] = 0.9
            return scores

    boxes, scores = pyramid_detect(OneWindow(), np.zeros((2, 128, 128, 3), np.uint8))
    scale = 110 / 128
    np.testing.assert_allclose(boxes[0], [[10 / scale, 14 / scale, 34 / scale, 38 / scale]], rtol=1e-5)
    assert scores[0].tolist() == [pytest.approx(0.9)] and len(boxes[1]) == 0


def test_window_training_set_has_faces_and_non_overlapping_negatives():
    from apps.vision.face_pyramid import NEGATIVE_IOU, training_windows

    scenes = make_face_scenes("train", 12, 0)
    windows, labels = training_windows(scenes["images"], scenes["boxes"], scenes["classes"], seed=0)
    faces = int((scenes["classes"] >= 0).sum())
    assert windows.shape[1:] == (24, 24, 3) and windows.dtype == np.uint8
    assert labels.sum() == 3 * faces and (labels == 0).sum() >= 4 * 12 and NEGATIVE_IOU == 0.3


def test_tiny_run_reports_the_window_pyramid_peer(tiny_runs):
    _, run = tiny_runs("vision", "face_detect")
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["window_pyramid"]["train_scenes"] == 30 and 0.05 <= test["window_pyramid"]["score_threshold"] <= 0.999
    for name in ("test_scenes", "real_photos"):
        rows = test[name]
        assert rows["window_pyramid"]["objects"] == rows["ours"]["objects"] == rows["haar_cascade"]["objects"]
    assert set(test["real_photos"]["per_photo"]["astronaut"]) == {"ours", "haar_cascade", "window_pyramid"}
