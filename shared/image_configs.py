"""Config fields of the image tasks more than one app trains (`shared/image_tasks.py`): mixed
into the apps' config dataclasses. No TensorFlow here, so flags are parsed without it."""

from dataclasses import dataclass


@dataclass
class DetectorFields:
    """Config fields of the RetinaNet-style detector (`shared/architectures/detection.py`)."""

    model: str = "retinanet_small"
    min_level: int = 3
    max_level: int = 4
    anchor_size: float = 3.0
    box_loss: str = "smooth_l1"
    backbone: str = ""  # "": own stages; a classifier (cnn_gap ...): its trunk (--init-from a classify run: that run's)


@dataclass
class SegmenterFields:
    """Config fields of the U-Net segmenter."""

    model: str = "unet_small"
    model_size: int = 64  # the U-Net works at this size (0: the input size); masks come out full size
    base_filters: int = 16
    depth: int = 3
    backbone: str = ""  # "": own encoder; a classifier (cnn_gap ...): its trunk (--init-from a classify run: that run's)
