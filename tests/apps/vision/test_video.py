"""Vision video: the motion clips are deterministic, move as their class says and cannot be told
apart from one frame; the video readers take files, frame folders and TFDS offline."""

import numpy as np
import pytest
from PIL import Image

from apps.vision import motion
from shared.data.video import read_video, video_folder_dataset, write_video
from shared.errors import UserError


def _centroid(frame):
    ys, xs = np.mgrid[:frame.shape[0], :frame.shape[1]]
    return (frame * xs).sum() / frame.sum(), (frame * ys).sum() / frame.sum()


def test_clips_are_deterministic_and_seeded():
    clips, labels = motion.make_clips("train", 6, seed=3)
    again, labels_again = motion.make_clips("train", 6, seed=3)
    other, _ = motion.make_clips("train", 6, seed=4)
    assert clips.shape == (6, 16, 64, 64, 3) and clips.dtype == np.uint8 and labels.dtype == np.int64
    assert np.array_equal(clips, again) and np.array_equal(labels, labels_again)
    assert not np.array_equal(clips, other)
    assert set(labels.tolist()) <= set(range(8))
    assert motion.CLASSES == ("left", "right", "up", "down", "zoom_in", "zoom_out", "rotate_cw", "rotate_ccw")


@pytest.mark.parametrize("name", motion.CLASSES)
def test_each_class_moves_as_named(name):
    label = motion.CLASSES.index(name)
    item = np.zeros((28, 28), np.uint8)
    item[12:16, 14:24] = 255  # a bar pointing right from the item's centre
    for seed in range(3):
        path = motion.motion_path(label, np.random.default_rng(seed))
        frames = motion.render_clip(np.zeros((64, 64, 3), np.uint8), item, (255, 255, 255), 1.0, path)
        steps = np.diff(path, axis=0)
        x, y, scale, angle = path.T
        assert np.all((x >= motion.MARGIN) & (x <= 64 - motion.MARGIN) & (y >= motion.MARGIN) & (y <= 64 - motion.MARGIN))
        centre = [_centroid(f[..., 0].astype(float)) for f in frames[:, :, :, :]]
        if name in ("left", "right", "up", "down"):
            axis, sign = {"left": (0, -1), "right": (0, 1), "up": (1, -1), "down": (1, 1)}[name]
            assert np.allclose(steps[:, axis], steps[0, axis]) and 1 <= sign * steps[0, axis] <= 3
            assert np.all(steps[:, 1 - axis] == 0) and np.all(steps[:, 2:] == 0)
            moved = np.subtract(centre[-1], centre[0])
            assert sign * moved[axis] > 14 and abs(moved[1 - axis]) < 3  # seen in the pixels
        elif name.startswith("zoom"):
            ratio = scale[-1] / scale[0]
            assert np.isclose(ratio, 1.4 / 0.6 if name == "zoom_in" else 0.6 / 1.4)
            area = frames[[0, -1], ..., 0].astype(float).sum(axis=(1, 2))
            assert (area[1] > 3 * area[0]) if name == "zoom_in" else (area[0] > 3 * area[1])
        else:
            turn = steps[:, 3]
            assert np.allclose(turn, turn[0]) and 5 <= abs(turn[0]) <= 15
            assert (turn[0] > 0) == (name == "rotate_cw")
            # the bar's end goes clockwise on screen (y down) for rotate_cw: cross product > 0
            a, b = (np.subtract(_centroid(f[..., 0].astype(float)), (x[0], y[0])) for f in frames[:2])
            assert (a[0] * b[1] - a[1] * b[0] > 0) == (name == "rotate_cw")


def test_one_frame_does_not_tell_the_class_but_two_do(tmp_path):
    """A frame classifier stays near chance (1/8); the same classifier on the first and last
    frames together learns the motion. Same data, features and budget."""
    from sklearn.linear_model import LogisticRegression

    clips, labels = motion.make_clips("train", 1200, seed=11)
    tiles = clips[..., 0].astype(np.float32).reshape(len(clips), 16, 16, 4, 16, 4).mean(axis=(3, 5)) / 255.0
    features = {
        "one frame": tiles[:, 8].reshape(len(clips), -1),
        "first and last": np.concatenate([tiles[:, 0], tiles[:, -1], tiles[:, -1] - tiles[:, 0]], 1).reshape(len(clips), -1),
    }
    accuracy = {}
    for name, x in features.items():
        model = LogisticRegression(max_iter=300).fit(x[:900], labels[:900])
        accuracy[name] = model.score(x[900:], labels[900:])
    assert accuracy["one frame"] < 0.2, accuracy
    assert accuracy["first and last"] > accuracy["one frame"] + 0.1, accuracy


def test_read_video_files_and_frame_folders(tmp_path):
    clip, _ = motion.make_clips("test", 1, seed=0)
    write_video(str(tmp_path / "a.gif"), clip[0])
    write_video(str(tmp_path / "a.mp4"), clip[0])
    frames = tmp_path / "frames"
    frames.mkdir()
    for k, frame in enumerate(clip[0]):
        Image.fromarray(frame).resize((96, 96)).save(frames / f"{k:03d}.png")
    gif = read_video(str(tmp_path / "a.gif"), 16, 64)
    assert gif.shape == (16, 64, 64, 3) and np.abs(gif.astype(int) - clip[0]).mean() < 12  # GIF palette
    mp4 = read_video(str(tmp_path / "a.mp4"), 16, 64)
    assert mp4.shape == (16, 64, 64, 3) and np.abs(mp4.astype(int) - clip[0]).mean() < 12  # lossy codec
    folder = read_video(str(frames), 8, 32)
    assert folder.shape == (8, 32, 32, 3)
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    for path, message in ((tmp_path / "bad.mp4", "not a readable video"), (tmp_path / "none.mp4", "no such file"),
                          (tmp_path / "x.txt", "no such file")):
        with pytest.raises(UserError, match=message):
            read_video(str(path), 16, 64)


def test_video_folder_and_tfds_datasets(tmp_path):
    import tensorflow_datasets as tfds

    from apps.vision.data import build_video_data
    from apps.vision.configs import VideoConfig
    from tests.conftest import run_main, store_tfds

    clips, labels = motion.make_clips("test", 12, seed=1)
    for k, (clip, label) in enumerate(zip(clips, labels)):
        folder = tmp_path / "videos" / motion.CLASSES[label % 2]
        folder.mkdir(parents=True, exist_ok=True)
        write_video(str(folder / f"{k}.gif"), clip)
    x, y, names = video_folder_dataset(str(tmp_path / "videos"), 16, 64)
    assert x.shape == (12, 16, 64, 64, 3) and names == ("left", "right") and sorted(y.tolist()) == sorted(labels % 2)

    features = tfds.features.FeaturesDict({
        "video": tfds.features.Video(shape=(None, 80, 80, 3)),
        "label": tfds.features.ClassLabel(names=list(motion.CLASSES))})
    big = [np.stack([np.asarray(Image.fromarray(f).resize((80, 80))) for f in c[::2]]) for c in clips]
    examples = [{"video": v, "label": int(l)} for v, l in zip(big, labels)]
    store_tfds("tiny_videos", features, {"train": examples[:9], "test": examples[9:]}, tmp_path / "tfds")
    data = build_video_data(VideoConfig(data="tfds:tiny_videos", data_dir=str(tmp_path / "tfds"), validation_split=0.2))
    assert (data.info.num_train, data.info.num_val, data.info.num_test) == (7, 2, 3)
    assert data.info.input_shape == (16, 64, 64, 3) and data.info.class_names == motion.CLASSES
    videos, test_labels = next(iter(data.test.batch(3)))
    assert videos.shape == (3, 16, 64, 64, 3) and sorted(test_labels.numpy()) == sorted(labels[9:])
    with pytest.raises(UserError, match="--data"):
        build_video_data(VideoConfig(data="tfds:nothing_here", data_dir=str(tmp_path / "tfds")))


def test_video_signature_and_predict_on_files_and_frame_folders(tiny_runs, tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import error_line, run_main

    home, run = tiny_runs("vision", "video")
    code = f"""
import numpy as np, tensorflow as tf
sig = tf.saved_model.load({str(run / 'saved_model')!r}).signatures["serving_default"]
spec = sig.structured_input_signature[1]["video"]
assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, 16, 64, 64, 3], spec
out = sig(video=tf.zeros([2, 16, 64, 64, 3], tf.uint8))
assert list(out) == ["probabilities"] and out["probabilities"].dtype == tf.float32, out
assert out["probabilities"].shape == (2, 8) and np.allclose(out["probabilities"].numpy().sum(-1), 1, atol=1e-5)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]

    clip, _ = motion.make_clips("test", 1, seed=5)
    write_video(str(tmp_path / "clip.mp4"), clip[0])
    (tmp_path / "frames").mkdir()
    for k, frame in enumerate(clip[0]):
        Image.fromarray(frame).save(tmp_path / "frames" / f"{k:02d}.png")
    result = run_main(["dl-vision", "predict", run, tmp_path / "clip.mp4", tmp_path / "frames", "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 2 and all(line["label"] in motion.CLASSES for line in lines)
    (tmp_path / "bad.mp4").write_bytes(b"nope")
    line = error_line(run_main(["dl-vision", "predict", run, tmp_path / "bad.mp4"], home))
    assert "bad.mp4: not a readable video" in line


def test_large_arrays_are_read_in_place_not_copied(tmp_path, monkeypatch):
    """Clips of 256 MB or more are read from the (memory-mapped) array as the datasets are
    iterated: the same examples, in the same order, as the sliced tensors of small arrays."""
    from types import SimpleNamespace

    from apps.vision import data as vision_data

    clips, labels = motion.make_clips("train", 12, seed=5)
    np.save(tmp_path / "clips.npy", clips)
    mapped = np.load(tmp_path / "clips.npy", mmap_mode="r")
    cfg = SimpleNamespace(validation_split=0.25, seed=0)

    def examples(x):
        data = vision_data.arrays_data(cfg, x, labels, x[:3], labels[:3], motion.CLASSES, "test")
        return [[(a.numpy(), int(b)) for a, b in ds] for ds in (data.train, data.val, data.test)], data.info

    small, small_info = examples(clips)
    monkeypatch.setattr(vision_data, "LARGE_ARRAY_BYTES", 0)
    large, large_info = examples(mapped)
    assert (large_info.num_train, large_info.num_val, large_info.num_test) == (9, 3, 3) == \
        (small_info.num_train, small_info.num_val, small_info.num_test)
    for got, want in zip(large, small):
        assert len(got) == len(want) and all(np.array_equal(a, c) and b == d for (a, b), (c, d) in zip(got, want))
    spec = vision_data.arrays_data(cfg, mapped, labels, mapped[:3], labels[:3], motion.CLASSES, "t").train.element_spec
    assert tuple(spec[0].shape) == (16, 64, 64, 3) and spec[0].dtype.name == "uint8" and tuple(spec[1].shape) == ()
