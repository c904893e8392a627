"""`dl-drive record`: seeded expert episodes written as TFRecord shards with a manifest.

Every step stores what the ego sees and does, and the ground truth derived from the
simulator's state (never hand-labelled):
- `observation` float32 [5,5] (highway-env's Kinematics: presence, x, y, vx, vy, normalised,
  relative to the ego) and the expert's `action` (DiscreteMetaAction index), `reward`, `crashed`;
- `ego` float32 [7] and `others` float32 [M,7] (x, y, vx, vy, heading, speed, lane);
- per view (`bev`: highway-env's bird's-eye renderer; `front`: the dash-cam of `views.py`):
  `image` (PNG), `boxes` float32 [M,4] (ymin, xmin, ymax, xmax pixels), `vehicle_ids`,
  `lane_mask` (PNG, 1 on lane markings); the front view also `lanes` float32 [L,R] (each lane
  line's column at the `lane_rows`, -1 where unseen; TuSimple-style). Each episode's front
  frames have their own randomised look (`views.appearance`: light, asphalt, worn paint,
  noise), seeded by the episode's seed; the ground truth is the geometry's.

Episodes run in parallel worker processes (one per core by default); a shard holds one
episode, written atomically; `manifest.json` (written last) lists them with the expert's
closed-loop figures. A directory without a manifest is an unfinished recording.
"""

import io
import json
import os
import shutil
import time

import numpy as np

from apps.driving import simulator
from shared.errors import UserError

MANIFEST = "manifest.json"
VERSION = 2  # 2: front frames restyled per episode (views.appearance)
APPEARANCE_SEED = 7_919


def _png(array):
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _view_fields(prefix, view):
    fields = {f"{prefix}/image": _png(view["image"]), f"{prefix}/boxes": view["boxes"].astype(np.float32),
              f"{prefix}/vehicle_ids": view["vehicle_ids"].astype(np.int64),
              f"{prefix}/lane_mask": _png(view["lane_mask"].astype(np.uint8))}
    if "lanes" in view:
        fields[f"{prefix}/lanes"] = view["lanes"].astype(np.float32)
    return fields


def record_episode(seed, views=True):
    """One expert episode: a list of per-step dicts of numpy arrays and PNG bytes, and its metrics."""
    from apps.driving import views as views_lib

    env = simulator.make_env(render=views, config=views_lib.BEV_CONFIG if views else None)
    style = views_lib.appearance(np.random.default_rng([APPEARANCE_SEED, seed]))  # the episode's look
    steps = []

    def keep(env, observation, action):
        step = {"observation": np.asarray(observation, np.float32), "action": np.int64(action),
                "ego": simulator.ego_state(env), "others": simulator.other_states(env)}
        if views:
            step.update(_view_fields("bev", views_lib.bird_eye(env)))
            step.update(_view_fields("front", views_lib.front_camera(env, style=style, step=len(steps))))
        steps.append(step)

    episode = simulator.drive_episode(env, simulator.expert, seed, on_step=keep)
    env.close()
    return steps, episode


def _feature(value):
    import tensorflow as tf

    if isinstance(value, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
    value = np.asarray(value)
    if value.dtype.kind in "iub":
        return tf.train.Feature(int64_list=tf.train.Int64List(value=value.reshape(-1).tolist()))
    return tf.train.Feature(float_list=tf.train.FloatList(value=value.reshape(-1).tolist()))


def _write_shard(path, steps, episode_index):
    import tensorflow as tf

    tmp = path + ".tmp"
    with tf.io.TFRecordWriter(tmp) as writer:
        for t, step in enumerate(steps):
            feats = {k: _feature(v) for k, v in step.items()}
            feats["episode"], feats["step"] = _feature(np.int64(episode_index)), _feature(np.int64(t))
            feats["others_count"] = _feature(np.int64(len(step["others"])))
            if "front/lanes" in step:
                feats["front/lanes_shape"] = _feature(np.array(step["front/lanes"].shape, np.int64))
            writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    os.replace(tmp, path)


def record(out, episodes, seed, views=True, workers=0, progress=None):
    """Records `episodes` expert episodes (seeds `seed`, `seed`+1, …) into `out`; returns the manifest."""
    if episodes < 1:
        raise UserError(f"--episodes: expected at least 1; got {episodes}")
    if os.path.exists(os.path.join(out, MANIFEST)):
        raise UserError(f"--out {out}: already holds a recording (manifest.json); choose another directory")
    simulator.gym_module()
    tmp = f"{out.rstrip('/')}.partial-{os.getpid()}"  # private: two recorders of one cache entry don't mix
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    seeds = [seed + k for k in range(episodes)]
    workers = min(episodes, workers or os.cpu_count() or 1)
    t0 = time.perf_counter()
    results, shards, num_steps = [], [], 0
    try:
        for k, (steps, episode) in enumerate(_episodes(seeds, views, workers)):
            name = f"episode-{k:05d}.tfrecord"
            _write_shard(os.path.join(tmp, name), steps, k)
            shards.append({"file": name, "seed": seeds[k], "steps": len(steps)})
            results.append(episode)
            num_steps += len(steps)
            if progress is not None:
                progress(k + 1)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # an interrupted recording leaves nothing behind
        raise
    seconds = time.perf_counter() - t0
    manifest = {"version": VERSION, "env": simulator.ENV_ID, "seed": seed, "episodes": episodes,
                "steps": num_steps, "actions": list(simulator.ACTIONS), "views": describe_views() if views else {},
                "expert": simulator.summarize(results), "shards": shards, "workers": workers,
                "seconds": round(seconds, 2), "steps_per_second": round(num_steps / seconds, 1)}
    with open(os.path.join(tmp, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    if os.path.exists(os.path.join(out, MANIFEST)):  # another process finished the same recording first
        shutil.rmtree(tmp)
        return read_manifest(out)
    if os.path.exists(out):
        if os.listdir(out):
            shutil.rmtree(tmp)
            raise UserError(f"--out {out}: exists and is not empty")
        os.rmdir(out)
    os.replace(tmp, out)
    return manifest


def describe_views():
    """The manifest's record of the camera views: frame shapes, the front camera and its lane rows."""
    from apps.driving import views as views_lib

    bev = views_lib.BEV_CONFIG
    return {"bev": {"shape": [bev["screen_height"], bev["screen_width"], 3], "config": bev},
            "front": {"shape": [96, 192, 3], "camera": views_lib.FRONT_CAMERA,
                      "appearance": "per episode: light, asphalt tone and grain, paint wear, sensor noise",
                      "lane_rows": [int(r) for r in views_lib.LANE_ROWS]}}


def _episodes(seeds, views, workers):
    """(steps, metrics) per seed, in seed order; from `workers` spawned processes when > 1."""
    if workers <= 1:
        for s in seeds:
            yield record_episode(s, views)
        return
    import functools
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(functools.partial(record_episode, views=views), seeds)


def read_manifest(directory):
    """The manifest of a recording directory, or a one-line UserError."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: no such recording directory")
    if not os.path.exists(path):
        raise UserError(f"{directory}: not a finished recording (no {MANIFEST}; record with `dl-drive record`)")
    try:
        with open(path) as f:
            manifest = json.load(f)
        missing = [s["file"] for s in manifest["shards"] if not os.path.exists(os.path.join(directory, s["file"]))]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: unreadable manifest ({e})") from None
    if missing:
        raise UserError(f"{directory}: {len(missing)} shard(s) listed in {MANIFEST} are missing (e.g. {missing[0]})")
    return manifest


def shard_paths(directory, manifest, episodes):
    """Paths of the shards of the given episode indices."""
    return [os.path.join(directory, manifest["shards"][k]["file"]) for k in episodes]
