"""Reading recordings: the default one (recorded once into the data cache), a user's
`record:DIR`, episode-wise splits and numpy arrays of the stored fields."""

import os
import sys

import numpy as np

from apps.driving import record as record_lib
from shared.data.cache import data_cache
from shared.errors import UserError

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


def recording(data, episodes, seed):
    """(directory, manifest) of `--data record` (the default recording of `episodes` expert
    episodes from `seed`, made once into the data cache) or `--data record:DIR`."""
    kind, _, arg = data.partition(":")
    if kind != "record":
        raise UserError(f"--data: expected record or record:DIR (a `dl-drive record` output); got '{data}'")
    if arg:
        return arg, record_lib.read_manifest(arg)
    directory = data_cache("driving", f"highway-fast-v{record_lib.VERSION}-{episodes}ep-seed{seed}")
    if not os.path.exists(os.path.join(directory, record_lib.MANIFEST)):
        print(f"Recording {episodes} expert episodes once into {directory} …", file=sys.stderr, flush=True)
        record_lib.record(directory, episodes, seed, progress=progress_bar(episodes))
    return directory, record_lib.read_manifest(directory)


def progress_bar(total, unit="episode"):
    """`progress(done)` drawing a progress bar on a terminal (nothing when output is piped)."""
    import keras

    bar = keras.utils.Progbar(total, unit_name=unit, verbose=1 if sys.stdout.isatty() else 0)
    return lambda done: bar.update(done)


def episode_split(manifest, validation_split, seed):
    """(train, val, test) lists of episode indices: a seeded permutation, whole episodes only."""
    n = manifest["episodes"]
    if n < 3:
        raise UserError(f"the recording has {n} episode(s); train/validation/test need at least 3")
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, int(round(n * SPLIT_FRACTIONS[2])))
    n_val = max(1, int(round(n * (validation_split or SPLIT_FRACTIONS[1]))))
    return (sorted(order[n_val + n_test:].tolist()), sorted(order[:n_val].tolist()),
            sorted(order[n_val:n_val + n_test].tolist()))


def _spec(key, manifest):
    import tensorflow as tf

    fixed = {"observation": ([25], tf.float32), "action": ([], tf.int64), "episode": ([], tf.int64),
             "step": ([], tf.int64), "ego": ([7], tf.float32)}
    if key in fixed:
        return tf.io.FixedLenFeature(*fixed[key])
    if key.endswith(("/image", "/lane_mask")):
        return tf.io.FixedLenFeature([], tf.string)
    if key.endswith("/vehicle_ids"):
        return tf.io.VarLenFeature(tf.int64)
    return tf.io.VarLenFeature(tf.float32)


def step_dataset(directory, manifest, episodes, keys):
    """Unbatched tf.data of {key: tensor} for every step of `episodes`, in order; images and
    masks decoded, boxes [M,4], lanes [L,R], others [M,7]."""
    import tensorflow as tf

    paths = record_lib.shard_paths(directory, manifest, episodes)
    spec = {k: _spec(k, manifest) for k in keys}

    def parse(serialized):
        example = tf.io.parse_single_example(serialized, spec)
        out = {}
        for key, value in example.items():
            if isinstance(value, tf.SparseTensor):
                value = tf.sparse.to_dense(value)
            if key.endswith("/image"):
                value = tf.io.decode_png(value, channels=3)
            elif key.endswith("/lane_mask"):
                value = tf.io.decode_png(value, channels=1)[..., 0]
            elif key.endswith("/boxes"):
                value = tf.reshape(value, [-1, 4])
            elif key == "others":
                value = tf.reshape(value, [-1, 7])
            out[key] = value
        return out

    return tf.data.TFRecordDataset(paths).map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def load_steps(directory, manifest, episodes, keys):
    """{key: numpy array over the steps of `episodes`} of fixed-shape fields."""
    columns = {k: [] for k in keys}
    for batch in step_dataset(directory, manifest, episodes, keys).batch(4096):
        for k in keys:
            columns[k].append(batch[k].numpy())
    return {k: np.concatenate(v) if v else np.zeros((0,)) for k, v in columns.items()}
