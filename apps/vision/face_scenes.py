"""Embedded face-detection scenes (`dl-vision train face_detect`, `--data faces`): real faces
pasted onto real photographs, with real non-face patches as distractors.

`skimage.data.lfw_subset()` holds 100 face crops from Labeled Faces in the Wild (forehead to
chin) and 100 non-face patches, 25x25 grey. Faces 0-69 and non-faces 0-69 make the train
scenes, 70-99 the test scenes. A scene is a random crop of a `skimage.data` photograph
(`apps/vision/scenes.py`; not the two with people in them) with 1-3 faces and 0-3 non-faces, each a square of 16-56 px, given
a random skin-like tint (grey in a quarter of the scenes, where the photo is grey too), so
neither colour nor a pasted square's edge tells a face: only its content does. Boxes are the
pasted faces' squares (ymin, xmin, ymax, xmax pixels, exclusive ends); the one class is `face`.

`real_photos()` are the two photographs with faces that packages ship (skimage's astronaut,
matplotlib's grace_hopper.jpg), padded to squares, with hand-drawn boxes of the same
forehead-to-chin extent.
"""

import functools
import os

import numpy as np
from PIL import Image

FACE_CLASSES = ("face",)
MIN_SIDE, MAX_SIDE = 16, 56
MAX_FACES, MAX_DISTRACTORS = 3, 3
TRAIN_SOURCES = 70  # of the 100 faces and 100 non-faces; the rest are the test scenes'
PHOTOS_WITH_FACES = ("astronaut", "camera")  # not backgrounds here: their faces would be "background"
_SPLITS = {"train": 0, "test": 1}
_CACHE_VERSION = "v1"
# Hand-drawn face boxes (ymin, xmin, ymax, xmax) in the original photographs' pixels.
REAL_FACES = {"astronaut": [(68, 170, 180, 280)], "grace_hopper": [(145, 160, 330, 350)]}


@functools.lru_cache(maxsize=1)
def lfw_sources():
    """(faces, non-faces): uint8 [100, 25, 25] each, from skimage's `lfw_subset`."""
    import skimage.data

    patches = np.round(skimage.data.lfw_subset() * 255).astype(np.uint8)
    return patches[:100], patches[100:]


def _split_sources(split):
    faces, others = lfw_sources()
    part = slice(None, TRAIN_SOURCES) if split == "train" else slice(TRAIN_SOURCES, None)
    return faces[part], others[part]


def _tint(rng, grey):
    """An RGB multiplier: (1, 1, 1) in a grey scene, else a random skin-like tone."""
    if grey:
        return np.ones(3)
    return np.array([1.0, rng.uniform(0.65, 0.95), rng.uniform(0.45, 0.85)]) * rng.uniform(0.8, 1.2)


def _free(occupied, y, x, side):
    return not occupied[y:y + side, x:x + side].any()


def _scene(rng, pyramids, faces, others, size):
    from apps.vision.scenes import background_crop

    image = background_crop(rng, pyramids, size).astype(np.float32)
    grey = rng.random() < 0.25
    if grey:
        image = np.repeat(image.mean(-1, keepdims=True), 3, axis=-1)
    occupied = np.zeros((size, size), bool)
    boxes = np.zeros((MAX_FACES, 4), np.float32)
    classes = np.full((MAX_FACES,), -1, np.int32)
    n_faces, n_others = int(rng.integers(1, MAX_FACES + 1)), int(rng.integers(0, MAX_DISTRACTORS + 1))
    kinds = rng.permutation([1] * n_faces + [0] * n_others)
    count = 0
    for is_face in kinds:
        source = faces if is_face else others
        side = int(rng.integers(MIN_SIDE, min(MAX_SIDE, size) + 1))
        for _ in range(20):  # a free spot: pasted squares do not overlap
            y, x = int(rng.integers(size - side + 1)), int(rng.integers(size - side + 1))
            if _free(occupied, y, x, side):
                break
        else:
            continue
        patch = Image.fromarray(source[int(rng.integers(len(source)))]).resize((side, side), Image.BILINEAR)
        image[y:y + side, x:x + side] = np.asarray(patch, np.float32)[..., None] * _tint(rng, grey)
        occupied[y:y + side, x:x + side] = True
        if is_face:
            boxes[count], classes[count] = (y, x, y + side, x + side), 0
            count += 1
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), boxes, classes


def make_face_scenes(split, count, seed, size=128):
    """{"images": uint8 [N,S,S,3], "boxes": float32 [N,3,4], "classes": int32 [N,3] (-1 pads)}."""
    from apps.vision.scenes import backgrounds

    if split not in _SPLITS or count < 1 or seed < 0 or size < MAX_SIDE:
        raise ValueError(f"expected split train|test, count >= 1, seed >= 0, size >= {MAX_SIDE}; "
                         f"got {split!r}, {count}, {seed}, {size}")
    faces, others = _split_sources(split)
    pyramids = backgrounds(exclude=PHOTOS_WITH_FACES)
    out = {"images": np.empty((count, size, size, 3), np.uint8), "boxes": np.empty((count, MAX_FACES, 4), np.float32),
           "classes": np.empty((count, MAX_FACES), np.int32)}
    for i, stream in enumerate(np.random.SeedSequence([int(seed), _SPLITS[split], 11]).spawn(count)):
        out["images"][i], out["boxes"][i], out["classes"][i] = _scene(np.random.default_rng(stream), pyramids,
                                                                      faces, others, size)
    return out


def load_face_scenes(split, count, seed, size=128):
    """`make_face_scenes` through the data cache (generated once, then memory-mapped)."""
    from apps.vision.scenes import write_arrays
    from shared.data.cache import data_cache

    path = data_cache("face_scenes", f"{_CACHE_VERSION}-{split}-{count}-{seed}-{size}")
    if not os.path.isdir(path):
        write_arrays(path, make_face_scenes(split, count, seed, size))
    return {key: np.load(os.path.join(path, f"{key}.npy"), mmap_mode="r") for key in ("images", "boxes", "classes")}


def real_photos(size=128):
    """{name: (uint8 [size,size,3] photo padded to a square (bottom/right) and resized, float32
    [K,4] hand-drawn face boxes in those pixels)} for the packages' photographs with faces."""
    import matplotlib.cbook
    import skimage.data

    photos = {"astronaut": skimage.data.astronaut(),
              "grace_hopper": np.asarray(Image.open(matplotlib.cbook.get_sample_data("grace_hopper.jpg",
                                                                                       asfileobj=False)).convert("RGB"))}
    out = {}
    for name, photo in photos.items():
        side = max(photo.shape[:2])
        square = np.zeros((side, side, 3), np.uint8)
        square[:photo.shape[0], :photo.shape[1]] = photo
        scale = size / side
        out[name] = (np.asarray(Image.fromarray(square).resize((size, size), Image.BILINEAR)),
                     np.asarray(REAL_FACES[name], np.float32) * scale)
    return out
