"""Detection/segmentation data: scenes, COCO json, image/mask folders and local TFDS datasets."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from apps.vision import detection_data
from apps.vision.data import FASHION_MNIST_CLASSES, build_classify_data, scenes1_test_boxes
from apps.vision.detection_data import build_detect_data, build_segment_data
from apps.vision.scenes import load_scenes
from shared.errors import UserError
from tests.conftest import store_tfds


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSUITE_DATA_CACHE", str(tmp_path / "cache"))


def config(**overrides):
    fields = dict(data="scenes", data_dir="", images="", download=False, augment="none", image_size=128, num_scenes=40,
                  num_test_scenes=12, seed=0, validation_split=0.1)
    return SimpleNamespace(**{**fields, **overrides})


def elements(ds):
    return list(ds.as_numpy_iterator())


def one_line_error(match, build, cfg):
    with pytest.raises(UserError, match=match) as error:
        build(cfg)
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------- scenes

def test_detect_on_scenes():
    data = build_detect_data(config())
    info = data.info
    assert (info.num_train, info.num_val, info.num_test) == (36, 4, 12)
    assert info.class_names == FASHION_MNIST_CLASSES and info.input_shape == (128, 128, 3)
    assert info.input_dtype == "uint8" and 1 <= info.extra["max_objects"] <= 5
    image_spec, target_spec = data.train.element_spec
    assert image_spec.shape == (128, 128, 3) and image_spec.dtype == tf.uint8
    assert target_spec["boxes"].shape.as_list() == [None, 4] and target_spec["boxes"].dtype == tf.float32
    assert target_spec["classes"].shape.as_list() == [None] and target_spec["classes"].dtype == tf.int32
    test = elements(data.test)
    scenes = load_scenes("test", 12, 1)
    for (image, target), boxes, classes in zip(test, scenes["boxes"], scenes["classes"]):
        count = int((classes >= 0).sum())
        assert target["classes"].shape == (count,) and target["boxes"].shape == (count, 4)
        np.testing.assert_array_equal(target["boxes"], boxes[:count])
    assert max(len(t["classes"]) for _, t in test + elements(data.train)) <= info.extra["max_objects"]
    images, batch = next(iter(data.train.padded_batch(8, padding_values=(None, {"boxes": 0.0, "classes": -1}))))
    assert images.shape == (8, 128, 128, 3) and batch["classes"].shape[1] <= info.extra["max_objects"]


def test_segment_on_scenes():
    data = build_segment_data(config(image_size=64))
    assert data.info.class_names == ("background", *FASHION_MNIST_CLASSES)
    image_spec, mask_spec = data.val.element_spec
    assert image_spec.shape == (64, 64, 3) and mask_spec.shape == (64, 64) and mask_spec.dtype == tf.int32
    masks = np.stack([m for _, m in elements(data.train)])
    assert masks.min() == 0 and 1 <= masks.max() <= 10 and len(np.unique(masks)) > 3


def test_classify_scenes1_and_its_test_boxes():
    cfg = SimpleNamespace(data="scenes1", data_dir="", download=False, image_size=128, channels=3, seed=0,
                          validation_split=0.25, augment="", num_scenes=16, num_test_scenes=8)
    data = build_classify_data(cfg)
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (12, 4, 8)
    scenes = load_scenes("test", 8, 1, max_items=1)
    labels = [int(y) for _, y in elements(data.test)]
    assert labels == scenes["classes"][:, 0].tolist()
    boxes = scenes1_test_boxes(cfg)
    assert boxes.shape == (8, 4) and boxes.dtype == np.float32
    np.testing.assert_array_equal(boxes, scenes["boxes"][:, 0])
    cfg.channels = 1
    one_line_error("--image-size/--channels: scenes1 images are 128x128x3", build_classify_data, cfg)


# ----------------------------------------------------------------------------- COCO json

def write_coco(root):
    """Six images of different sizes (image i is filled with 30 * i), categories 3 'cat' and 7 'dog'."""
    (root / "images").mkdir()
    images, annotations = [], []
    for i in range(6):
        height, width = 40 + 10 * i, 80
        Image.fromarray(np.full((height, width, 3), 30 * i, np.uint8)).save(root / "images" / f"im{i}.png")
        images.append({"id": 100 + i, "file_name": f"im{i}.png", "height": height, "width": width})
        if i != 5:  # image 5 has no objects
            annotations.append({"id": i, "image_id": 100 + i, "category_id": 3 if i % 2 else 7,
                                "bbox": [8.0, 4.0, 40.0, 20.0], "area": 800.0, "iscrowd": 0})
        annotations.append({"id": 50 + i, "image_id": 100 + i, "category_id": 3, "bbox": [0, 0, 80, 40],
                            "area": 3200.0, "iscrowd": 1})  # crowd regions are dropped
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}]}
    (root / "ann.json").write_text(json.dumps(coco))
    return root / "ann.json", root / "images"


def test_detect_on_coco_json(tmp_path, capsys):
    annotations, images = write_coco(tmp_path)
    data = build_detect_data(config(data=f"coco:{annotations}", images=str(images), image_size=64))
    assert data.info.class_names == ("cat", "dog")  # contiguous ids in category-id order
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (4, 1, 1)
    assert data.info.extra["max_objects"] == 1
    seen = set()
    for image, target in elements(data.train) + elements(data.val) + elements(data.test):
        i = int(round(image.mean() / 30))
        seen.add(i)
        if i == 5:
            assert target["classes"].shape == (0,) and target["boxes"].shape == (0, 4)
            continue
        height = 40 + 10 * i
        expected = [4 * 64 / height, 8 * 64 / 80, 24 * 64 / height, 48 * 64 / 80]
        np.testing.assert_allclose(target["boxes"], [expected], rtol=1e-5)
        assert target["classes"].tolist() == [0 if i % 2 else 1]
    assert seen == set(range(6)) and capsys.readouterr().out == ""  # pycocotools' prints are silenced


def test_coco_user_errors(tmp_path):
    annotations, images = write_coco(tmp_path)
    one_line_error(r"--data coco:.*nope.json: no such file", build_detect_data,
                   config(data=f"coco:{tmp_path}/nope.json", images=str(images)))
    one_line_error("--images: expected the directory", build_detect_data,
                   config(data=f"coco:{annotations}", images=str(tmp_path / "missing")))
    (tmp_path / "bad.json").write_text("{not json")
    one_line_error("not a COCO detection annotations file", build_detect_data,
                   config(data=f"coco:{tmp_path / 'bad.json'}", images=str(images)))
    (images / "im3.png").write_bytes(b"not a png")
    one_line_error(r"--images .*im3.png: not a readable image", build_detect_data,
                   config(data=f"coco:{annotations}", images=str(images)))
    one_line_error("--data: expected scenes, faces, tfds:NAME or coco:ANNOTATIONS.json for detect; got 'voc'",
                   build_detect_data, config(data="voc"))


# ----------------------------------------------------------------------------- image/mask folders

def write_mask_folders(root, count=5):
    (root / "img").mkdir()
    (root / "msk").mkdir()
    for i in range(count):
        mask = np.zeros((30, 40), np.uint8)
        mask[5:20, 10:30] = 1 + i % 3
        Image.fromarray(np.full((30, 40, 3), 40 * i, np.uint8)).save(root / "img" / f"p{i}.jpg")
        Image.fromarray(mask).save(root / "msk" / f"p{i}.png")
    return f"masks:{root / 'img'},{root / 'msk'}"


def test_segment_on_mask_folders(tmp_path):
    data = build_segment_data(config(data=write_mask_folders(tmp_path), image_size=60))
    assert data.info.class_names == ("background", "class1", "class2", "class3")
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (3, 1, 1)
    for image, mask in elements(data.train) + elements(data.val) + elements(data.test):
        i = int(round(image.mean() / 40))
        assert mask.shape == (60, 60) and mask.dtype == np.int32
        assert set(np.unique(mask).tolist()) == {0, 1 + i % 3}  # nearest neighbour: no new ids
        assert (mask[10:40, 15:45] > 0).all() and (mask[:10] == 0).all() and (mask[:, 45:] == 0).all()


def test_mask_folder_user_errors(tmp_path):
    data = write_mask_folders(tmp_path)
    (tmp_path / "msk" / "p4.png").unlink()
    one_line_error(r"expected one mask PNG per image .* 5 images, 4 masks, unmatched e.g. 'p4'",
                   build_segment_data, config(data=data))
    one_line_error(r"masks:.*: .*nowhere: no such directory", build_segment_data,
                   config(data=f"masks:{tmp_path / 'img'},{tmp_path / 'nowhere'}"))
    one_line_error("expected masks:IMAGES_DIR,MASKS_DIR", build_segment_data, config(data="masks:onlyone"))
    one_line_error("--data: expected scenes, tfds:NAME or masks:IMAGES_DIR,MASKS_DIR for segment",
                   build_segment_data, config(data="folder:x"))


# ----------------------------------------------------------------------------- local TFDS

def test_detect_on_a_local_voc_like_tfds_dataset(tmp_path):
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "objects": tfds.features.Sequence({"bbox": tfds.features.BBoxFeature(),
                                           "label": tfds.features.ClassLabel(names=["cat", "dog"])})})

    def examples(n):
        return [{"image": np.full((40 + 4 * i, 60, 3), 20 * i, np.uint8),
                 "objects": {"bbox": np.array([[0.1, 0.2, 0.5, 0.75]] * (1 + i % 2), np.float32),
                             "label": [i % 2] * (1 + i % 2)}} for i in range(n)]

    store_tfds("tiny_voc", features, {"train": examples(10), "test": examples(3)}, tmp_path)
    data = build_detect_data(config(data="tfds:tiny_voc", data_dir=str(tmp_path), image_size=64))
    assert data.info.class_names == ("cat", "dog") and data.info.extra["max_objects"] == 2
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (9, 1, 3)  # val split off train
    for image, target in elements(data.test):
        i = int(round(image.mean() / 20))
        assert image.shape == (64, 64, 3)
        np.testing.assert_allclose(target["boxes"], [[6.4, 12.8, 32.0, 48.0]] * (1 + i % 2), rtol=1e-5)
        assert target["classes"].tolist() == [i % 2] * (1 + i % 2)
    # COCO-like: an unlabelled test split is replaced by validation, and val is split off train
    unlabelled = [{**e, "objects": {"bbox": np.zeros((0, 4), np.float32), "label": []}} for e in examples(3)]
    store_tfds("tiny_coco", features, {"train": examples(10), "validation": examples(2), "test": unlabelled},
               tmp_path)
    data = build_detect_data(config(data="tfds:tiny_coco", data_dir=str(tmp_path), image_size=64))
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (9, 1, 2)
    one_line_error(r"--data tfds:not_here --data-dir .*: cannot load a prepared dataset", build_detect_data,
                   config(data="tfds:not_here", data_dir=str(tmp_path)))
    one_line_error(r"--data tfds:voc/2007 --data-dir .*: cannot load a prepared dataset", build_detect_data,
                   config(data="tfds:voc/2007", data_dir=str(tmp_path)))


def test_segment_on_a_local_pet_like_tfds_dataset(tmp_path, monkeypatch):
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict({
        "image": tfds.features.Image(shape=(None, None, 3)),
        "segmentation_mask": tfds.features.Image(shape=(None, None, 1))})
    trimap = np.full((20, 30, 1), 2, np.uint8)  # 2 = background
    trimap[4:16, 5:25] = 3  # border
    trimap[6:14, 8:22] = 1  # pet
    examples = [{"image": np.full((20, 30, 3), 9 * i, np.uint8), "segmentation_mask": trimap} for i in range(6)]
    store_tfds("tiny_pet", features, {"train": examples, "test": examples[:2]}, tmp_path)
    monkeypatch.setattr(detection_data, "PET_TRIMAP_DATASETS", {"oxford_iiit_pet", "tiny_pet"})
    data = build_segment_data(config(data="tfds:tiny_pet", data_dir=str(tmp_path), image_size=40))
    assert data.info.class_names == ("background", "pet", "border")
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (5, 1, 2)
    image, mask = elements(data.test)[0]
    assert image.shape == (40, 40, 3) and mask.shape == (40, 40) and mask.dtype == np.int32
    expected = np.asarray(Image.fromarray(np.array([0, 1, 0, 2], np.uint8)[trimap[..., 0]]).resize((40, 40), 0))
    np.testing.assert_array_equal(mask, expected)
