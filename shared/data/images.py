"""Image loaders: IDX files, class-per-subfolder folders, TFDS, and single image files."""

import gzip
import os

import numpy as np
import tensorflow as tf

from shared.errors import UserError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def read_idx(path):
    """Reads an IDX file (MNIST format, optionally gzipped) into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (OSError, EOFError) as e:
        raise UserError(f"{path}: cannot read IDX file ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = np.frombuffer(raw[4:4 + 4 * ndim], dtype=">u4").astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path}: truncated IDX file ({data.size} of {int(np.prod(dims))} bytes)")
    return data.reshape(dims)


def to_shape(image, shape):
    """Resizes a uint8 HxWxC tensor to `shape` (H, W, C) and converts grey <-> RGB (H, W None:
    the image's own size)."""
    height, width, channels = shape
    image = tf.convert_to_tensor(image)
    if image.shape.rank == 2:
        image = image[..., None]
    if image.shape[-1] == 4:
        image = image[..., :3]
    if channels == 1 and image.shape[-1] == 3:
        image = tf.image.rgb_to_grayscale(image)
    elif channels == 3 and image.shape[-1] == 1:
        image = tf.image.grayscale_to_rgb(image)
    if height and width and tuple(image.shape[:2]) != (height, width):
        image = tf.image.resize(image, (height, width), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(tf.cast(image, tf.float32)), 0, 255), tf.uint8)


def load_image_file(path, shape):
    """A user's image file as a uint8 array of `shape`; a UserError for missing/corrupt files."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file")
    if os.path.isdir(path):
        raise UserError(f"{path}: is a directory, expected an image file")
    try:
        image = tf.io.decode_image(tf.io.read_file(path), expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise UserError(f"{path}: not a readable image (PNG, JPEG, BMP or GIF expected)") from None
    return to_shape(image, shape).numpy()


def class_folder_files(path):
    """(image paths, class index of each, class names) of a folder holding one subfolder of
    images per class (searched recursively), classes and files in sorted order."""
    if not os.path.isdir(path):
        raise UserError(f"--data folder:{path}: no such directory")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    files, labels = [], []
    for index, name in enumerate(classes):
        for root, dirs, names in os.walk(os.path.join(path, name)):
            dirs.sort()
            for fname in sorted(names):
                if fname.lower().endswith(IMAGE_EXTENSIONS):
                    files.append(os.path.join(root, fname))
                    labels.append(index)
    return files, labels, tuple(classes)


def folder_dataset(path, shape):
    """(images uint8 [N,H,W,C], labels int [N], class names) from class-per-subfolder images."""
    files, labels, classes = class_folder_files(path)
    if len(classes) < 2 or not files:
        raise UserError(f"--data folder:{path}: expected one subfolder of images per class "
                        f"(found {len(classes)} class folders, {len(files)} images)")
    images = np.stack([load_image_file(f, shape) for f in files])
    return images, np.asarray(labels, np.int64), tuple(classes)


def tfds_dataset(name, data_dir, shape, download=False):
    """(train images, train labels, test images, test labels, class names) from a TFDS dataset.

    Offline by default: the dataset must already be prepared in `data_dir`
    (`download=True` lets TFDS fetch and prepare it where a network is available)."""
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder(name, data_dir=data_dir or None)
        if download:
            builder.download_and_prepare()
        splits = builder.info.splits
        test_split = "test" if "test" in splits else ("validation" if "validation" in splits else None)
        image_key, label_key = builder.info.supervised_keys or ("image", "label")
        train = builder.as_dataset(split="train")
        test = builder.as_dataset(split=test_split) if test_split else None
        label = builder.info.features[label_key]
        names = tuple(label.names) if hasattr(label, "names") else tuple(str(i) for i in range(label.num_classes))
    except Exception as e:  # TFDS raises many types for a missing/unprepared dataset
        raise UserError(f"--data tfds:{name} --data-dir {data_dir or '~/tensorflow_datasets'}: "
                        f"cannot load ({type(e).__name__}: {str(e).splitlines()[0][:150]})") from None

    def arrays(ds):
        xs, ys = [], []
        for example in ds:
            xs.append(to_shape(example[image_key], shape).numpy())
            ys.append(int(example[label_key]))
        return np.stack(xs), np.asarray(ys, np.int64)

    x_train, y_train = arrays(train)
    x_test, y_test = arrays(test) if test is not None else (None, None)
    return x_train, y_train, x_test, y_test, names


def split_index(n, fraction, seed):
    """Seeded, stratification-free random split of `n` examples: (index a, index b), b holding `fraction`."""
    order = np.random.default_rng(seed).permutation(n)
    n_b = max(1, int(round(n * fraction)))
    return order[n_b:], order[:n_b]


def split(x, y, fraction, seed):
    """`split_index` applied: (x_a, y_a, x_b, y_b) with b holding `fraction`."""
    a, b = split_index(len(x), fraction, seed)
    return x[a], y[a], x[b], y[b]
