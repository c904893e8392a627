"""Detection and segmentation datasets: embedded scenes, TFDS, COCO json and image/mask folders.

Everything is loaded into numpy once and served as unbatched `tf.data` datasets:
- detection: (image uint8 [S,S,3], {"boxes": float32 [M,4] (ymin, xmin, ymax, xmax) pixels,
  "classes": int32 [M]}) with M the example's object count (no padding);
- segmentation: (image uint8 [S,S,3], mask int32 [S,S]) with mask value k <-> class_names[k].

Config fields used: data, data_dir, images, download, augment, image_size, num_scenes,
num_test_scenes, seed, validation_split.
"""

import contextlib
import io
import json
import os

import numpy as np
import tensorflow as tf
from PIL import Image

from apps.vision.data import FASHION_MNIST_CLASSES
from apps.vision.scenes import load_scenes
from shared.data.augment import augmenter
from shared.data.images import IMAGE_EXTENSIONS, to_shape
from shared.data.tfds import prepared_builder
from shared.errors import UserError
from shared.image_tasks import detection_dataset, pad_objects, segmentation_dataset
from shared.tasks import Data, DataInfo

PET_TRIMAP_DATASETS = {"oxford_iiit_pet"}  # TFDS segmentation_mask 1=pet, 2=background, 3=border
PET_CLASSES = ("background", "pet", "border")
_PET_LOOKUP = np.array([0, 1, 0, 2], np.uint8)  # trimap value -> our class id
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)  # train/val/test for datasets that come unsplit


# ----------------------------------------------------------------------------- public builders

def build_detect_data(cfg):
    """Data for `detect`: `--data scenes | faces | tfds:NAME | coco:ANNOTATIONS.json` (with `--images`)."""
    kind, _, arg = cfg.data.partition(":")
    if kind == "scenes" and not arg:
        splits, names, source = _scene_detection(cfg)
    elif kind == "faces" and not arg:
        splits, names, source = _face_detection(cfg)
    elif kind == "tfds" and arg:
        splits, names, source = _tfds_detection(arg, cfg)
    elif kind == "coco" and arg:
        splits, names, source = _coco_detection(arg, cfg)
    else:
        raise UserError(f"--data: expected scenes, faces, tfds:NAME or coco:ANNOTATIONS.json for detect; "
                        f"got '{cfg.data}'")
    max_objects = max([1] + [int((s["classes"] >= 0).sum(1).max(initial=0)) for s in splits])
    extra = {"max_objects": max_objects}
    if kind == "faces" and getattr(cfg, "window_peer_scenes", 0):  # face_detect's peer trains on the same scenes
        extra["peer_scenes"] = {"train": splits[0], "val": splits[1], "seed": cfg.seed, "count": cfg.window_peer_scenes}
    info = _info(cfg, splits, names, source, extra=extra, augment=augmenter(cfg.augment, "boxes", cfg.seed))
    return Data(*(detection_dataset(s) for s in splits), info)


def build_segment_data(cfg):
    """Data for `segment`: `--data scenes | tfds:NAME | masks:IMAGES_DIR,MASKS_DIR`."""
    kind, _, arg = cfg.data.partition(":")
    if kind == "scenes" and not arg:
        splits, names, source = _scene_segmentation(cfg)
    elif kind == "tfds" and arg:
        splits, names, source = _tfds_segmentation(arg, cfg)
    elif kind == "masks" and arg:
        splits, names, source = _mask_folders(arg, cfg)
    else:
        raise UserError(f"--data: expected scenes, tfds:NAME or masks:IMAGES_DIR,MASKS_DIR for segment; "
                        f"got '{cfg.data}'")
    info = _info(cfg, splits, names, source, augment=augmenter(cfg.augment, "mask", cfg.seed))
    return Data(*(segmentation_dataset(s) for s in splits), info)


# ----------------------------------------------------------------------------- datasets

def _info(cfg, splits, names, source, extra=None, augment=None):
    size = cfg.image_size
    train, val, test = (len(s["images"]) for s in splits)
    return DataInfo(input_shape=(size, size, 3), input_dtype="uint8", class_names=tuple(names),
                    num_train=train, num_val=val, num_test=test, source=source, augment=augment,
                    extra=dict(extra or {}))


def _take(arrays, index):
    return {key: value[index] for key, value in arrays.items()}


def _split_off(arrays, fraction, seed):
    """(rest, part) with `part` a seeded random `fraction` (at least one example)."""
    n = len(arrays["images"])
    order = np.random.default_rng(seed).permutation(n)
    n_part = min(n - 1, max(1, int(round(n * fraction)))) if fraction > 0 else 0
    return _take(arrays, np.sort(order[n_part:])), _take(arrays, np.sort(order[:n_part]))


def _split_three(arrays, seed, flag):
    """Seeded train/val/test split (SPLIT_FRACTIONS) of an unsplit dataset."""
    n = len(arrays["images"])
    if n < 3:
        raise UserError(f"{flag}: need at least 3 examples to split into train/val/test; found {n}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * SPLIT_FRACTIONS[1])))
    n_test = max(1, int(round(n * SPLIT_FRACTIONS[2])))
    parts = order[n_val + n_test:], order[:n_val], order[n_val:n_val + n_test]
    return tuple(_take(arrays, np.sort(p)) for p in parts)


# ----------------------------------------------------------------------------- scenes

def _scenes(cfg, keys):
    """(train, val, test) scene arrays of `keys`: train/val split from the train scenes, test apart."""
    size = cfg.image_size
    if size < 64:
        raise UserError(f"--image-size: scenes are at least 64x64 (items are 20-64 px); got {size}")
    train = load_scenes("train", cfg.num_scenes, cfg.seed, size=size)
    test = load_scenes("test", cfg.num_test_scenes, cfg.seed + 1, size=size)
    train, val = _split_off({k: train[k] for k in keys}, cfg.validation_split, cfg.seed)
    source = (f"scenes: Fashion-MNIST items on photos, {size}x{size}, {cfg.num_scenes} train+val / "
              f"{cfg.num_test_scenes} test (seed {cfg.seed})")
    return (train, val, {k: test[k] for k in keys}), source


def _scene_detection(cfg):
    splits, source = _scenes(cfg, ("images", "boxes", "classes"))
    return splits, FASHION_MNIST_CLASSES, source


def _face_detection(cfg):
    from apps.vision.face_scenes import FACE_CLASSES, MAX_SIDE, load_face_scenes

    size = cfg.image_size
    if size < MAX_SIDE:
        raise UserError(f"--image-size: face scenes are at least {MAX_SIDE}x{MAX_SIDE}; got {size}")
    train = load_face_scenes("train", cfg.num_scenes, cfg.seed, size)
    test = load_face_scenes("test", cfg.num_test_scenes, cfg.seed + 1, size)
    train, val = _split_off(dict(train), cfg.validation_split, cfg.seed)
    source = (f"faces: skimage's LFW faces and non-faces on photos, {size}x{size}, {cfg.num_scenes} train+val / "
              f"{cfg.num_test_scenes} test (held-out faces; seed {cfg.seed})")
    return (train, val, dict(test)), FACE_CLASSES, source


def _scene_segmentation(cfg):
    splits, source = _scenes(cfg, ("images", "masks"))
    return splits, ("background", *FASHION_MNIST_CLASSES), source


# ----------------------------------------------------------------------------- TFDS

def _tfds_builder(name, cfg):
    return prepared_builder(name, cfg.data_dir, cfg.download)


def _tfds_splits(builder, name, load, cfg, labelled=lambda builder, split: True):
    """(train, val, test) arrays from a builder's train/validation/test splits.

    A missing validation split is split off train (`--validation-split`); a missing or
    unlabelled test split (COCO's has no objects) is replaced by validation, else split off train."""
    available = builder.info.splits
    train = load(builder.as_dataset(split="train"))
    val = load(builder.as_dataset(split="validation")) if "validation" in available else None
    test = None
    if "test" in available and labelled(builder, "test"):
        test = load(builder.as_dataset(split="test"))
    if test is None and val is not None:
        test, val = val, None
    elif test is None:
        train, test = _split_off(train, SPLIT_FRACTIONS[2], cfg.seed + 1)
    if val is None:
        train, val = _split_off(train, cfg.validation_split, cfg.seed)
    if not len(train["images"]):
        raise UserError(f"--data tfds:{name}: the train split is empty")
    return train, val, test


def _has_objects(builder, split, peek=32):
    """Whether any of a split's first examples has an object."""
    peek = min(peek, builder.info.splits[split].num_examples)
    return any(int(tf.size(example["objects"]["label"])) > 0
               for example in builder.as_dataset(split=f"{split}[:{peek}]"))


def _tfds_detection(name, cfg):
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, cfg)
    features = builder.info.features
    objects = features["objects"] if "objects" in features else None
    if "image" not in features or "bbox" not in getattr(objects, "feature", {}):
        raise UserError(f"--data tfds:{name}: expected 'image' and 'objects' {{'bbox', 'label'}} features "
                        f"(a detection dataset like voc or coco)")
    size = cfg.image_size

    def load(ds):
        images, boxes, classes = [], [], []
        for example in tfds.as_numpy(ds):
            objects = example["objects"]
            keep = ~objects["is_crowd"].astype(bool) if "is_crowd" in objects else slice(None)
            images.append(to_shape(example["image"], (size, size, 3)).numpy())
            boxes.append(np.asarray(objects["bbox"], np.float32).reshape(-1, 4)[keep] * size)
            classes.append(np.asarray(objects["label"], np.int32).reshape(-1)[keep])
        return pad_objects(images, boxes, classes, (size, size, 3))

    names = tuple(features["objects"]["label"].names)
    source = f"TFDS {name} ({cfg.data_dir or 'default data_dir'})"
    return _tfds_splits(builder, name, load, cfg, _has_objects), names, source


def _tfds_segmentation(name, cfg):
    import tensorflow_datasets as tfds

    builder = _tfds_builder(name, cfg)
    features = builder.info.features
    if "image" not in features or "segmentation_mask" not in features:
        raise UserError(f"--data tfds:{name}: expected 'image' and 'segmentation_mask' features "
                        f"(a segmentation dataset like oxford_iiit_pet)")
    trimap = builder.name in PET_TRIMAP_DATASETS
    size = cfg.image_size

    def load(ds):
        images, masks = [], []
        for example in tfds.as_numpy(ds):
            images.append(to_shape(example["image"], (size, size, 3)).numpy())
            mask = _resize_mask(np.asarray(example["segmentation_mask"]).reshape(example["image"].shape[:2]), size)
            masks.append(_PET_LOOKUP[np.minimum(mask, 3)] if trimap else mask)
        if not images:
            return {"images": np.zeros((0, size, size, 3), np.uint8), "masks": np.zeros((0, size, size), np.uint8)}
        return {"images": np.stack(images), "masks": np.stack(masks)}

    splits = _tfds_splits(builder, name, load, cfg)
    if trimap:
        names = PET_CLASSES
    else:
        top = max(int(s["masks"].max(initial=0)) for s in splits)
        names = ("background", *(f"class{i}" for i in range(1, top + 1)))
    return splits, names, f"TFDS {name} ({cfg.data_dir or 'default data_dir'})"


# ----------------------------------------------------------------------------- COCO json

def _coco_detection(annotations, cfg):
    """Images listed in a COCO json (boxes [x, y, w, h] pixels), split 80/10/10 with `--seed`."""
    from pycocotools.coco import COCO

    if not os.path.isfile(annotations):
        raise UserError(f"--data coco:{annotations}: no such file (expected a COCO annotations .json)")
    images_dir = getattr(cfg, "images", "")
    if not images_dir or not os.path.isdir(images_dir):
        raise UserError(f"--images: expected the directory of the COCO images; got '{images_dir}'")
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(annotations)
        categories = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
        image_records = [coco.imgs[i] for i in sorted(coco.getImgIds())]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, AssertionError) as e:
        raise UserError(f"--data coco:{annotations}: not a COCO detection annotations file "
                        f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})") from None
    if not categories or not image_records:
        raise UserError(f"--data coco:{annotations}: expected 'images' and 'categories' entries; found "
                        f"{len(image_records)} images, {len(categories)} categories")
    contiguous = {c["id"]: k for k, c in enumerate(categories)}
    size = cfg.image_size
    images, boxes, classes = [], [], []
    for record in image_records:
        image, (height, width) = _read_image(os.path.join(images_dir, record["file_name"]), size, "--images")
        anns = [a for a in coco.imgToAnns.get(record["id"], [])
                if not a.get("iscrowd", 0) and a["bbox"][2] > 0 and a["bbox"][3] > 0]
        xywh = np.asarray([a["bbox"] for a in anns], np.float32).reshape(-1, 4)
        scale = np.asarray([size / height, size / width, size / height, size / width], np.float32)
        yxyx = np.stack([xywh[:, 1], xywh[:, 0], xywh[:, 1] + xywh[:, 3], xywh[:, 0] + xywh[:, 2]], 1) * scale
        images.append(image)
        boxes.append(np.clip(yxyx, 0, size))
        classes.append(np.asarray([contiguous[a["category_id"]] for a in anns], np.int32))
    arrays = pad_objects(images, boxes, classes, (size, size, 3))
    names = tuple(str(c.get("name", c["id"])) for c in categories)
    return _split_three(arrays, cfg.seed, f"--data coco:{annotations}"), names, \
        f"COCO {os.path.abspath(annotations)} (images {os.path.abspath(images_dir)})"


# ----------------------------------------------------------------------------- image/mask folders

def _mask_folders(arg, cfg):
    """Image/mask pairs matched by file stem; masks are PNGs of class ids (0 = background)."""
    images_dir, sep, masks_dir = arg.partition(",")
    if not sep or not images_dir or not masks_dir:
        raise UserError(f"--data masks:{arg}: expected masks:IMAGES_DIR,MASKS_DIR")
    for directory in (images_dir, masks_dir):
        if not os.path.isdir(directory):
            raise UserError(f"--data masks:{arg}: {directory}: no such directory")
    image_files = _by_stem(images_dir, IMAGE_EXTENSIONS)
    mask_files = _by_stem(masks_dir, (".png",))
    unmatched = sorted(set(image_files) ^ set(mask_files))
    if unmatched or not image_files:
        raise UserError(f"--data masks:{arg}: expected one mask PNG per image with the same file name stem; "
                        f"{len(image_files)} images, {len(mask_files)} masks"
                        + (f", unmatched e.g. '{unmatched[0]}'" if unmatched else ""))
    size = cfg.image_size
    images, masks = [], []
    for stem in sorted(image_files):
        images.append(_read_image(image_files[stem], size, "--data masks:")[0])
        masks.append(_read_mask(mask_files[stem], size))
    arrays = {"images": np.stack(images), "masks": np.stack(masks)}
    top = int(arrays["masks"].max())
    names = ("background", *(f"class{i}" for i in range(1, top + 1)))
    splits = _split_three(arrays, cfg.seed, f"--data masks:{arg}")
    return splits, names, f"image/mask folders {os.path.abspath(images_dir)}, {os.path.abspath(masks_dir)}"


def _by_stem(directory, extensions):
    files = {}
    for name in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in extensions and os.path.isfile(os.path.join(directory, name)):
            if stem in files:
                raise UserError(f"{directory}: two files with the stem '{stem}'; expected one per example")
            files[stem] = os.path.join(directory, name)
    return files


def _read_image(path, size, flag):
    """(uint8 [size,size,3], original (height, width)) of an image file; UserError if unreadable."""
    if not os.path.isfile(path):
        raise UserError(f"{flag} {path}: no such image file")
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise UserError(f"{flag} {path}: not a readable image (PNG, JPEG, BMP or GIF expected)") from None
    return to_shape(image, (size, size, 3)).numpy(), tuple(image.shape[:2])


def _read_mask(path, size):
    """A class-id mask PNG resized with nearest neighbour: uint8 [size, size]."""
    try:
        with Image.open(path) as image:
            mask = np.asarray(image)
    except (OSError, ValueError):
        raise UserError(f"--data masks: {path}: not a readable PNG mask") from None
    if mask.ndim == 3 and (mask.shape[-1] == 1 or (mask == mask[..., :1]).all()):
        mask = mask[..., 0]
    if mask.ndim != 2 or mask.max(initial=0) > 255:
        raise UserError(f"--data masks: {path}: expected a single-channel PNG of class ids 0-255; "
                        f"got shape {mask.shape}")
    return _resize_mask(mask.astype(np.uint8), size)


def _resize_mask(mask, size):
    """Nearest-neighbour resize of a 2-D class-id mask to [size, size] uint8."""
    mask = np.asarray(mask, np.uint8)
    if mask.shape == (size, size):
        return mask
    return np.asarray(Image.fromarray(mask).resize((size, size), Image.NEAREST))
