"""`dl-drive train detect` and `train lanes`: the shared detection and segmentation tasks
(`shared/image_tasks.py`) on a recording's camera frames, split by episode; and the lanes
task's TuSimple-style lane metrics.

- detect: (frame uint8 [H,W,3], {"boxes" [M,4], "classes" [M] (all 0: "vehicle")});
- lanes: (front frame, mask int32 [H,W]: 1 on lane-marking pixels).
"""

import numpy as np

from apps.driving.recordings import episode_split, load_steps, recording, step_dataset
from shared.data.augment import augmenter
from shared.errors import UserError
from shared.image_tasks import detection_dataset, pad_objects, segmentation_dataset
from shared.tasks import Data, DataInfo

VIEWS = ("front", "bev")
LANE_CLASSES = ("background", "marking")
LANE_TOLERANCE_PX = 20  # TuSimple: a lane point is found when a predicted marking is this close in its row
LANE_MATCH = 0.85  # TuSimple: a lane is found when this share of its points is


def _splits(cfg):
    if cfg.view not in VIEWS:
        raise UserError(f"--view: expected front or bev; got '{cfg.view}'")
    directory, manifest = recording(cfg.data, cfg.episodes, cfg.record_seed)
    if not manifest.get("views"):
        raise UserError(f"--data {cfg.data}: recorded with --no-views; it has no camera frames")
    return directory, manifest, episode_split(manifest, cfg.validation_split, cfg.seed)


def _limit(arrays, cfg, index):
    return {k: v[:cfg.max_train_examples] for k, v in arrays.items()} if index == 0 and cfg.max_train_examples else arrays


def _info(cfg, manifest, directory, splits, names, augment, extra=None):
    shape = manifest["views"][cfg.view]["shape"]
    return DataInfo(input_shape=tuple(shape), input_dtype="uint8", class_names=names,
                    num_train=len(splits[0]["images"]), num_val=len(splits[1]["images"]),
                    num_test=len(splits[2]["images"]), augment=augment, extra=extra or {},
                    source=f"{cfg.view} camera of {manifest['episodes']} expert episodes ({directory})")


def build_detect_data(cfg):
    """Vehicle boxes in the `cfg.view` frames of the recording."""
    directory, manifest, episodes = _splits(cfg)
    splits = [_limit(_boxes(directory, manifest, e, cfg.view), cfg, i) for i, e in enumerate(episodes)]
    max_objects = max(1, *(int((s["classes"] >= 0).sum(1).max(initial=0)) for s in splits))
    info = _info(cfg, manifest, directory, splits, ("vehicle",), augmenter(cfg.augment, "boxes", cfg.seed),
                 extra={"max_objects": max_objects})
    return Data(*(detection_dataset(s) for s in splits), info)


def _boxes(directory, manifest, episodes, view):
    images, boxes = [], []
    for step in step_dataset(directory, manifest, episodes, [f"{view}/image", f"{view}/boxes"]):
        images.append(step[f"{view}/image"].numpy())
        boxes.append(step[f"{view}/boxes"].numpy())
    classes = [np.zeros(len(b), np.int32) for b in boxes]  # one class: vehicle
    return pad_objects(images, boxes, classes, manifest["views"][view]["shape"])


def build_lanes_data(cfg):
    """Lane-marking masks of the front frames; the test frames' lane points go to `info.extra`."""
    if cfg.view != "front":
        raise UserError("--view: lanes are recorded for the front camera only; use --view front")
    directory, manifest, episodes = _splits(cfg)
    keys = ["front/image", "front/lane_mask", "front/lanes"]
    splits = []
    for i, e in enumerate(episodes):
        steps = load_steps(directory, manifest, e, keys)
        splits.append(_limit({"images": steps["front/image"], "masks": steps["front/lane_mask"],
                              "lanes": steps["front/lanes"]}, cfg, i))
    rows = manifest["views"]["front"]["lane_rows"]
    test_lanes = splits[2]["lanes"].reshape(len(splits[2]["lanes"]), -1, len(rows))
    info = _info(cfg, manifest, directory, splits, LANE_CLASSES, augmenter(cfg.augment, "mask", cfg.seed),
                 extra={"test_lanes": test_lanes, "lane_rows": rows})
    return Data(*(segmentation_dataset(s) for s in splits), info)


def lanes_report(serving, ds, info, plots_dir):
    """The segmentation report (marking IoU, Dice, …) and `lane_metrics` on the test frames."""
    import tensorflow as tf

    from shared.evaluation.segmentation import segmentation_report

    result, plots = segmentation_report(serving, ds, info, plots_dir)
    call = tf.function(lambda x: serving(x, training=False)["mask"], reduce_retracing=True)
    masks = np.concatenate([call(x).numpy() for x, _ in ds.batch(64)])
    result["lanes"] = lane_metrics(masks, info.extra["test_lanes"], info.extra["lane_rows"])
    return result, plots


def lane_metrics(masks, lanes, rows, tolerance=LANE_TOLERANCE_PX, match=LANE_MATCH):
    """TuSimple-style figures of predicted marking masks [N,H,W] against true lane lines [N,L,R]
    (each line's column at `rows`, -1 where unseen; dashed lines continue through their gaps):
    - `accuracy`: share of true lane points within `tolerance` px of a predicted marking pixel
      (Euclidean: a point in a dash gap is found through the dashes around it);
    - `fn_lane_rate`: share of true lines (two or more visible points) with less than `match`
      of their points found;
    - `fp_point_rate`: share of predicted marking runs at `rows` (a run's centre per row) with no
      true lane point within `tolerance` px. Per point, not per lane: a dashed line's dashes
      are separate blobs in a mask, so predicted lanes are not instances here.
    """
    from scipy import ndimage

    masks, lanes, rows = np.asarray(masks) > 0, np.asarray(lanes, np.float32), np.asarray(rows)
    found_points = total_points = lines = missed = predicted = false = 0
    for mask, frame in zip(masks, lanes):
        distance = ndimage.distance_transform_edt(~mask) if mask.any() else np.full(mask.shape, np.inf)
        truth = np.array([(rows[k] + 0.5, c) for line in frame for k, c in enumerate(line) if c >= 0]).reshape(-1, 2)
        for line in frame:
            visible = np.flatnonzero(line >= 0)
            columns = np.clip(line[visible].astype(int), 0, mask.shape[1] - 1)
            hits = distance[rows[visible], columns] <= tolerance
            found_points += int(hits.sum())
            total_points += len(visible)
            if len(visible) >= 2:
                lines += 1
                missed += hits.sum() < match * len(visible)
        for r in rows:
            columns = np.flatnonzero(mask[r])
            for run in np.split(columns, np.flatnonzero(np.diff(columns) > 1) + 1) if len(columns) else ():
                predicted += 1
                centre = np.array([r + 0.5, run.mean() + 0.5])
                false += not (len(truth) and np.hypot(*(truth - centre).T).min() <= tolerance)
    return {"accuracy": found_points / max(1, total_points), "fn_lane_rate": float(missed / max(1, lines)),
            "fp_point_rate": false / max(1, predicted), "lane_points": int(total_points), "lanes": int(lines),
            "tolerance_px": tolerance}
