"""Embedded detection/segmentation scenes: Fashion-MNIST items pasted onto real photographs.

Every scene is a random crop of a `skimage.data` photograph resized to `size`x`size`, with
1-5 Fashion-MNIST items (train items for "train" scenes, test items for "test" scenes) pasted
on it. Each item is cropped to its content, scaled so its longer side is 20-64 px (aspect
kept; faint resized edges may trim up to a few px), tinted with a random RGB colour and
alpha-blended with alpha = intensity / 255.

A *pasted pixel* of an item is one with intensity >= `ALPHA_THRESHOLD` after resizing; fainter
pixels are dropped (alpha 0), so the same pixels define the blend, the box and the mask:

- box: tight (ymin, xmin, ymax, xmax) of the item's own pasted pixels, ymax/xmax exclusive.
  Items may overlap (later ones are pasted over earlier ones), and a box stays the box of the
  whole item even where it is occluded. Positions are chosen, when possible, so that every
  earlier item keeps at least half of its pasted pixels visible.
- mask: 0 = background, 1 + c = class c, composed in painter's order (later items win).

Scenes are deterministic: scene i of (split, seed) comes from its own seeded numpy stream,
so it does not depend on `count` or on the process.
"""

import functools
import os
import shutil

import numpy as np
from PIL import Image

from shared.data.cache import data_cache

SCENE_SIZE = 128
MIN_ITEM, MAX_ITEM = 20, 64
ALPHA_THRESHOLD = 26  # ~0.1 * 255: an item pixel at least this bright is "pasted"
MIN_VISIBLE = 0.5
PLACEMENT_TRIES = 10
BACKGROUNDS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "retina", "coins",
               "hubble_deep_field", "immunohistochemistry", "moon", "page", "text", "clock", "horse",
               "colorwheel", "cat", "brick", "grass", "gravel", "cell")
_SPLITS = {"train": 0, "test": 1}
_CACHE_VERSION = "v1"
_KEYS = ("images", "boxes", "classes", "masks")


@functools.lru_cache(maxsize=2)
def backgrounds(max_side=512, levels=3, exclude=()):
    """The background photographs (but those named in `exclude`) as pyramids of RGB PIL images
    (level k is 1/2**k the size; level 0 has its longer side at most `max_side`)."""
    import skimage.data

    pyramids = []
    for name in (n for n in BACKGROUNDS if n not in exclude):
        array = np.asarray(getattr(skimage.data, name)())
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        image = Image.fromarray(array.astype(np.uint8)).convert("RGB")
        if max(image.size) > max_side:
            scale = max_side / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)), Image.BILINEAR)
        pyramid = [image]
        for _ in range(1, levels):
            pyramid.append(pyramid[-1].resize((pyramid[-1].width // 2, pyramid[-1].height // 2), Image.BILINEAR))
        pyramids.append(pyramid)
    return pyramids


def background_crop(rng, pyramids, size):
    """A random square crop (25-100% of the shorter side) of a random photo, as uint8 [size,size,3].

    The crop is resized from the smallest pyramid level still at least `size` pixels across (fast)."""
    pyramid = pyramids[rng.integers(len(pyramids))]
    width, height = pyramid[0].size
    side = max(8, int(round(rng.uniform(0.25, 1.0) * min(width, height))))
    x0, y0 = int(rng.integers(width - side + 1)), int(rng.integers(height - side + 1))
    level = 0
    while level + 1 < len(pyramid) and side / 2 ** (level + 1) >= size:
        level += 1
    image = pyramid[level]
    fx, fy = image.width / width, image.height / height
    box = (x0 * fx, y0 * fy, min(image.width, (x0 + side) * fx), min(image.height, (y0 + side) * fy))
    return np.array(image.resize((size, size), Image.BILINEAR, box=box), dtype=np.uint8)


def _item_alpha(item, longer_side):
    """An FMNIST item cropped to its content, scaled so its longer side is `longer_side`,
    thresholded and trimmed to its pasted pixels: uint8 [h, w] alpha."""
    rows = np.flatnonzero((item >= ALPHA_THRESHOLD).any(1))
    cols = np.flatnonzero((item >= ALPHA_THRESHOLD).any(0))
    crop = item[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    scale = longer_side / max(crop.shape)
    h, w = (max(1, int(round(n * scale))) for n in crop.shape)
    alpha = np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR))
    alpha = np.where(alpha >= ALPHA_THRESHOLD, alpha, 0).astype(np.uint8)
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    return alpha[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _place(rng, pasted, instances, areas, visible, size):
    """A (y, x) for a pasted-pixel patch: the first of a few random positions keeping every
    earlier item >= MIN_VISIBLE visible, else the best of them."""
    h, w = pasted.shape
    best, best_score = None, -1.0
    for _ in range(PLACEMENT_TRIES):
        y, x = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
        if not areas:
            return y, x
        covered = np.bincount(instances[y:y + h, x:x + w][pasted], minlength=len(areas) + 1)[1:]
        score = float(np.min((np.asarray(visible) - covered) / np.asarray(areas)))
        if score >= MIN_VISIBLE:
            return y, x
        if score > best_score:
            best, best_score = (y, x), score
    return best


def _scene(rng, pyramids, items, labels, size, min_items, max_items, record):
    """One scene: (image uint8, boxes, classes, mask, per-item records)."""
    image = background_crop(rng, pyramids, size)
    mask = np.zeros((size, size), np.uint8)
    instances = np.zeros((size, size), np.int16)
    count = int(rng.integers(min_items, max_items + 1))
    boxes = np.zeros((max_items, 4), np.float32)
    classes = np.full((max_items,), -1, np.int32)
    areas, visible, records = [], [], []
    for k in range(count):
        index = int(rng.integers(len(items)))
        longer = int(rng.integers(MIN_ITEM, min(MAX_ITEM, size) + 1))
        tint = rng.integers(0, 256, size=3).astype(np.uint16)
        alpha = _item_alpha(items[index], longer)
        pasted = alpha > 0
        y, x = _place(rng, pasted, instances, areas, visible, size)
        h, w = alpha.shape
        a = alpha.astype(np.uint16)[..., None]
        region = image[y:y + h, x:x + w]
        region[...] = (region * (255 - a) + tint * a + 127) // 255  # exact integer blend, < 2**16
        if areas:
            covered = np.bincount(instances[y:y + h, x:x + w][pasted], minlength=k + 1)[1:]
            visible = [v - int(c) for v, c in zip(visible, covered)]
        areas.append(int(pasted.sum()))
        visible.append(areas[-1])
        instances[y:y + h, x:x + w][pasted] = k + 1
        mask[y:y + h, x:x + w][pasted] = labels[index] + 1
        boxes[k] = (y, x, y + h, x + w)
        classes[k] = labels[index]
        if record:
            records.append({"class": int(labels[index]), "alpha": alpha, "offset": (y, x),
                            "size": longer, "tint": tuple(int(t) for t in tint), "source_index": index})
    return image, boxes, classes, mask, records


@functools.lru_cache(maxsize=2)
def fashion_items(split):
    """(uint8 [N, 28, 28], int32 [N]) Fashion-MNIST items of the train or test split."""
    from apps.vision.data import load_fashion_mnist

    x_train, y_train, x_test, y_test = load_fashion_mnist()
    items, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    items, labels = items[..., 0].copy(), labels.astype(np.int32)
    items.setflags(write=False)
    labels.setflags(write=False)
    return items, labels


def _check_args(split, count, seed, size, min_items, max_items):
    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if count < 1:
        raise ValueError(f"count must be >= 1; got {count}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0; got {seed}")
    if size < MIN_ITEM:
        raise ValueError(f"size must be >= {MIN_ITEM}; got {size}")
    if not 1 <= min_items <= max_items:
        raise ValueError(f"expected 1 <= min_items <= max_items; got {min_items}, {max_items}")


def make_scenes(split, count, seed, size=SCENE_SIZE, min_items=1, max_items=5, return_items=False):
    """Generates `count` scenes.

    Returns {"images": uint8 [N,S,S,3], "boxes": float32 [N,max_items,4] (ymin, xmin, ymax, xmax
    pixels, ymax/xmax exclusive, padded with 0), "classes": int32 [N,max_items] (padded with -1),
    "masks": uint8 [N,S,S]}. With `return_items`, also "items": per scene, a list of per-item
    records {"class", "alpha" uint8 [h,w] (0 where not pasted), "offset" (y, x), "size",
    "tint", "source_index"} in paste order.
    """
    _check_args(split, count, seed, size, min_items, max_items)
    items, labels = fashion_items(split)
    pyramids = backgrounds()
    streams = np.random.SeedSequence([int(seed), _SPLITS[split]]).spawn(count)
    out = {"images": np.empty((count, size, size, 3), np.uint8),
           "boxes": np.empty((count, max_items, 4), np.float32),
           "classes": np.empty((count, max_items), np.int32),
           "masks": np.empty((count, size, size), np.uint8)}
    records = []
    for i, stream in enumerate(streams):
        scene = _scene(np.random.default_rng(stream), pyramids, items, labels, size, min_items, max_items,
                       return_items)
        for key, value in zip(_KEYS, scene):
            out[key][i] = value
        records.append(scene[-1])
    if return_items:
        out["items"] = records
    return out


def scenes_cache_path(split, count, seed, size=SCENE_SIZE, min_items=1, max_items=5):
    """The cache directory holding one .npy file per array for these arguments."""
    name = f"{_CACHE_VERSION}-{split}-{count}-{seed}-{size}-{min_items}-{max_items}"
    return data_cache("scenes", name)


def load_scenes(split, count, seed, size=SCENE_SIZE, min_items=1, max_items=5):
    """`make_scenes` through the data cache: generated once, then memory-mapped read-only from
    the cached .npy files (index or copy them to get in-memory arrays)."""
    path = scenes_cache_path(split, count, seed, size, min_items, max_items)
    if not os.path.isdir(path):
        scenes = make_scenes(split, count, seed, size, min_items, max_items)
        write_arrays(path, {key: scenes[key] for key in _KEYS})
    return {key: np.load(os.path.join(path, f"{key}.npy"), mmap_mode="r") for key in _KEYS}


def write_arrays(path, arrays):
    """Writes {name: array} as `name.npy` files into a temporary directory, then renames it to
    `path` (a cache entry is whole or absent)."""
    tmp = f"{path}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for key, array in arrays.items():
        np.save(os.path.join(tmp, f"{key}.npy"), array)
    try:
        os.replace(tmp, path)
    except OSError:  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isdir(path):
            raise
