"""Embedded scenes: deterministic, boxes and masks exactly match the pasted item pixels, cached once."""

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest

from apps.vision import scenes as scenes_module
from apps.vision.scenes import MAX_ITEM, MIN_ITEM, SCENE_SIZE, load_scenes, make_scenes

KEYS = ("images", "boxes", "classes", "masks")


@pytest.fixture(scope="module")
def scenes():
    return make_scenes("train", 64, seed=3, return_items=True)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSUITE_DATA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def digest(arrays):
    return hashlib.sha256(b"".join(np.ascontiguousarray(arrays[k]).tobytes() for k in KEYS)).hexdigest()


def test_shapes_dtypes_and_item_counts(scenes):
    n, s = 64, SCENE_SIZE
    assert scenes["images"].shape == (n, s, s, 3) and scenes["images"].dtype == np.uint8
    assert scenes["boxes"].shape == (n, 5, 4) and scenes["boxes"].dtype == np.float32
    assert scenes["classes"].shape == (n, 5) and scenes["classes"].dtype == np.int32
    assert scenes["masks"].shape == (n, s, s) and scenes["masks"].dtype == np.uint8
    counts = (scenes["classes"] >= 0).sum(1)
    assert counts.min() >= 1 and counts.max() <= 5 and len(set(counts.tolist())) > 1
    for classes, boxes, count in zip(scenes["classes"], scenes["boxes"], counts):
        assert (classes[:count] >= 0).all() and (classes[:count] <= 9).all()
        assert (classes[count:] == -1).all() and (boxes[count:] == 0).all()
    assert scenes["images"].std() > 20  # photos, not flat backgrounds


def test_boxes_are_inside_and_items_are_20_to_64_px(scenes):
    for boxes, classes, items in zip(scenes["boxes"], scenes["classes"], scenes["items"]):
        real = boxes[classes >= 0]
        assert (real[:, :2] >= 0).all() and (real[:, 2:] <= SCENE_SIZE).all()
        assert (real[:, 2:] > real[:, :2]).all()
        for box, item in zip(real, items):
            assert MIN_ITEM <= item["size"] <= MAX_ITEM
            longer = max(box[2] - box[0], box[3] - box[1])
            assert item["size"] - 4 <= longer <= item["size"]  # faint resized edges are not pasted


def test_boxes_and_masks_match_the_pasted_pixels(scenes):
    """Recomputed from the per-item records: box = tight box of the item's own pasted pixels
    (even where later items occlude it), mask = painter's-order composition of 1 + class."""
    for i, items in enumerate(scenes["items"]):
        mask = np.zeros((SCENE_SIZE, SCENE_SIZE), np.uint8)
        for k, item in enumerate(items):
            full = np.zeros_like(mask, dtype=bool)
            (y, x), (h, w) = item["offset"], item["alpha"].shape
            full[y:y + h, x:x + w] = item["alpha"] > 0
            rows, cols = np.flatnonzero(full.any(1)), np.flatnonzero(full.any(0))
            expected = [rows[0], cols[0], rows[-1] + 1, cols[-1] + 1]
            np.testing.assert_array_equal(scenes["boxes"][i, k], np.float32(expected))
            assert scenes["classes"][i, k] == item["class"]
            mask[full] = item["class"] + 1
        np.testing.assert_array_equal(scenes["masks"][i], mask)


def test_items_stay_mostly_visible(scenes):
    visible = []
    for i, items in enumerate(scenes["items"]):
        owner = np.zeros((SCENE_SIZE, SCENE_SIZE), np.int32)
        for k, item in enumerate(items):
            (y, x), (h, w) = item["offset"], item["alpha"].shape
            owner[y:y + h, x:x + w][item["alpha"] > 0] = k + 1
        visible += [(owner == k + 1).sum() / (item["alpha"] > 0).sum() for k, item in enumerate(items)]
    assert min(visible) > 0 and np.mean(np.asarray(visible) >= 0.5) > 0.95


def test_deterministic_per_seed_split_and_scene(scenes):
    again = make_scenes("train", 64, seed=3)
    assert digest(again) == digest(scenes)
    prefix = make_scenes("train", 8, seed=3)  # scene i does not depend on count
    assert digest(prefix) == digest({k: scenes[k][:8] for k in KEYS})
    assert not np.array_equal(make_scenes("train", 8, seed=4)["images"], prefix["images"])
    assert not np.array_equal(make_scenes("test", 8, seed=3)["images"], prefix["images"])


def test_deterministic_across_processes(scenes):
    code = ("import hashlib, numpy as np; from apps.vision.scenes import make_scenes; "
            "s = make_scenes('train', 8, seed=3); "
            "print(hashlib.sha256(b''.join(np.ascontiguousarray(s[k]).tobytes() "
            "for k in ('images', 'boxes', 'classes', 'masks'))).hexdigest())")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__)))))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == digest({k: scenes[k][:8] for k in KEYS})


def test_one_item_scenes():
    single = make_scenes("test", 16, seed=0, max_items=1)
    assert single["boxes"].shape == (16, 1, 4) and (single["classes"][:, 0] >= 0).all()
    masks_classes = [set(np.unique(m).tolist()) - {0} for m in single["masks"]]
    assert masks_classes == [{c + 1} for c in single["classes"][:, 0]]


def test_load_scenes_generates_once_then_reads_the_cache(cache, monkeypatch, capsys):
    first = load_scenes("train", 16, seed=5, max_items=3)
    files = sorted(os.listdir(cache / "scenes"))
    assert files == ["v1-train-16-5-128-1-3"]  # no temporary directory left behind

    def fail(*args, **kwargs):
        raise AssertionError("regenerated instead of reading the cache")

    monkeypatch.setattr(scenes_module, "make_scenes", fail)
    second = load_scenes("train", 16, seed=5, max_items=3)
    assert digest(first) == digest(second) == digest(make_scenes("train", 16, 5, max_items=3))
    with pytest.raises(AssertionError, match="regenerated"):
        load_scenes("train", 16, seed=6, max_items=3)
    assert capsys.readouterr().out == ""


def test_bad_arguments():
    with pytest.raises(ValueError, match="split must be"):
        make_scenes("validation", 4, 0)
    with pytest.raises(ValueError, match="min_items <= max_items"):
        make_scenes("train", 4, 0, min_items=3, max_items=2)
