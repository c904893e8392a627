"""Video loaders: a clip from a video file or a folder of frames, class-per-subfolder video
folders and TFDS video datasets, all as uint8 [frames, size, size, 3] clips.

Files are decoded by imageio (its PyAV plugin for MP4/AVI/MOV/MKV/WebM, Pillow for GIF);
a clip is `frames` frames sampled evenly over the whole video (repeated when it is shorter)
and each frame resized to size x size.
"""

import os

import numpy as np
from PIL import Image

from shared.data.images import IMAGE_EXTENSIONS
from shared.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


def sample_frames(video, frames, size):
    """uint8 [frames, size, size, 3]: `frames` evenly spaced frames of `video` (uint8
    [T, H, W] or [T, H, W, C]), each resized to size x size and made RGB."""
    video = np.asarray(video)
    if video.ndim == 3:
        video = video[..., None]
    index = np.round(np.linspace(0, len(video) - 1, frames)).astype(int)
    out = np.empty((frames, size, size, 3), np.uint8)
    for k, i in enumerate(index):
        frame = video[i]
        frame = np.repeat(frame, 3, axis=-1) if frame.shape[-1] == 1 else frame[..., :3]
        if frame.shape[:2] != (size, size):
            frame = np.asarray(Image.fromarray(frame.astype(np.uint8)).resize((size, size), Image.BILINEAR))
        out[k] = frame
    return out


def read_video(path, frames, size):
    """A user's video file or folder of frame images as uint8 [frames, size, size, 3]; a
    one-line UserError for a missing, empty or unreadable one."""
    if not os.path.exists(path):
        raise UserError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS))
        if not names:
            raise UserError(f"{path}: a folder of frames needs image files ({', '.join(IMAGE_EXTENSIONS)})")
        try:
            video = [np.asarray(Image.open(os.path.join(path, n)).convert("RGB")) for n in names]
            if len({f.shape for f in video}) > 1:
                raise UserError(f"{path}: the frames have different sizes")
        except OSError as e:
            raise UserError(f"{path}: unreadable frame ({e})") from None
        return sample_frames(np.stack(video), frames, size)
    if not path.lower().endswith(VIDEO_EXTENSIONS):
        raise UserError(f"{path}: expected a video file ({', '.join(VIDEO_EXTENSIONS)}) or a folder of frames")
    import imageio.v3 as iio

    try:
        video = iio.imread(path, index=None)
    except Exception as e:  # imageio/PyAV raise many types for a corrupt or unsupported file
        detail = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: not a readable video ({detail})") from None
    if video.ndim not in (3, 4) or len(video) == 0:
        raise UserError(f"{path}: not a readable video (decoded shape {video.shape})")
    if video.ndim == 3 and not path.lower().endswith(".gif"):
        video = video[None]
    return sample_frames(video, frames, size)


def write_video(path, clip, fps=8):
    """Writes uint8 [T, H, W, 3] frames as a GIF or (by PyAV) an MP4/AVI/… file."""
    import imageio.v3 as iio

    clip = np.asarray(clip, np.uint8)
    if path.lower().endswith(".gif"):
        iio.imwrite(path, clip, duration=1000 / fps, loop=0)
    else:
        iio.imwrite(path, clip, plugin="pyav", codec="libx264" if path.lower().endswith(".mp4") else "mpeg4",
                    fps=fps)


def video_folder_dataset(path, frames, size):
    """(clips uint8 [N, frames, size, size, 3], labels int64 [N], class names) from one
    subfolder per class holding video files and/or folders of frames."""
    if not os.path.isdir(path):
        raise UserError(f"--data folder:{path}: no such directory")
    classes = sorted(d for d in os.listdir(path) if os.path.isdir(os.path.join(path, d)))
    entries, labels = [], []
    for index, name in enumerate(classes):
        folder = os.path.join(path, name)
        for entry in sorted(os.listdir(folder)):
            full = os.path.join(folder, entry)
            if os.path.isdir(full) or entry.lower().endswith(VIDEO_EXTENSIONS):
                entries.append(full)
                labels.append(index)
    if len(classes) < 2 or not entries:
        raise UserError(f"--data folder:{path}: expected one subfolder per class of video files or frame "
                        f"folders (found {len(classes)} class folders, {len(entries)} videos)")
    clips = np.stack([read_video(entry, frames, size) for entry in entries])
    return clips, np.asarray(labels, np.int64), tuple(classes)


def tfds_video_dataset(name, data_dir, frames, size, download=False):
    """(train clips, train labels, test clips or None, test labels or None, class names) of a
    prepared TFDS video dataset (e.g. ucf101) with a `video` and a `label` feature."""
    from shared.data.tfds import prepared_builder

    builder = prepared_builder(name, data_dir, download)
    video_key, label_key = builder.info.supervised_keys or ("video", "label")
    features = builder.info.features
    if video_key not in features or label_key not in features or not hasattr(features[label_key], "names"):
        raise UserError(f"--data tfds:{name}: expected a video feature '{video_key}' and a class label "
                        f"'{label_key}'; it has {', '.join(features.keys())}")

    def arrays(split):
        clips, labels = [], []
        for example in builder.as_dataset(split=split).as_numpy_iterator():
            clips.append(sample_frames(example[video_key], frames, size))
            labels.append(int(example[label_key]))
        return np.stack(clips), np.asarray(labels, np.int64)

    train = arrays("train")
    test = arrays("test") if "test" in builder.info.splits else (None, None)
    return (*train, *test, tuple(features[label_key].names))
