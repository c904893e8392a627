"""Anchor-based single-stage detection (RetinaNet-style, Lin et al. 2017).

- `make_anchors` — anchor boxes for a pyramid of levels, in the order the head emits
  predictions (level, row, column, ratio, scale).
- `apply_fpn` — feature pyramid (lateral 1×1, top-down 2× upsampling + add, 3×3 smooth).
- `apply_detection_head` — class and box subnets shared across levels.
- `Detector` — a small conv backbone + FPN + head.

Written with Keras core layers: keras-hub's RetinaNet `FeaturePyramid`/`PredictionHead`
are not public API, and `keras_hub.layers.AnchorGenerator` places anchor centres at the
top-left corner of each stride cell rather than its centre.
"""

import math

import keras
import numpy as np

from shared.architectures.base import ArgsConfig
from shared.architectures import register
from shared.architectures.cnn import check_input_shape
from shared.architectures.trunk import trunk_features


def make_anchors(image_shape, levels, sizes, ratios=(0.5, 1.0, 2.0), scales=(1.0, 2 ** (1 / 3), 2 ** (2 / 3))):
    """Anchor boxes `(N, 4)` as `[x1, y1, x2, y2]` in pixels (float32).

    Level `l` has stride `s = 2**l` and a `ceil(H/s) × ceil(W/s)` grid; anchors are
    centred on cell centres `((j + 0.5)·s, (i + 0.5)·s)`. At each location there are
    `len(ratios)·len(scales)` anchors of area `(size·scale)²` and width/height = ratio.
    N = Σ_l ceil(H/2^l)·ceil(W/2^l)·len(ratios)·len(scales), ordered by level, row,
    column, ratio, scale — the order of `apply_detection_head`'s outputs.
    """
    height, width = image_shape[:2]
    levels, sizes = list(levels), list(sizes)
    if len(levels) != len(sizes):
        raise ValueError(f"One size per level is required. Received: levels={levels}, sizes={sizes}")
    shapes = []
    for r in ratios:
        for s in scales:
            shapes.append((math.sqrt(r), 1 / math.sqrt(r), s))
    out = []
    for level, size in zip(levels, sizes):
        stride = 2**level
        fh, fw = math.ceil(height / stride), math.ceil(width / stride)
        cy, cx = np.meshgrid((np.arange(fh) + 0.5) * stride, (np.arange(fw) + 0.5) * stride, indexing="ij")
        wh = np.array([(size * s * rw, size * s * rh) for rw, rh, s in shapes])  # (A, 2)
        centres = np.stack([cx, cy], -1).reshape(-1, 1, 2)  # (fh·fw, 1, 2)
        boxes = np.concatenate([centres - wh / 2, centres + wh / 2], -1)  # (fh·fw, A, 4)
        out.append(boxes.reshape(-1, 4))
    return np.concatenate(out).astype("float32")


def apply_fpn(features, filters, name="fpn"):
    """Feature pyramid over `features` (finest first, each 2× coarser than the previous).

    Returns a list of the same length, each `(batch, h_l, w_l, filters)`."""
    laterals = [
        keras.layers.Conv2D(filters, 1, name=f"{name}_lateral{i}")(f) for i, f in enumerate(features)
    ]
    merged = [laterals[-1]]
    for i in range(len(laterals) - 2, -1, -1):
        up = keras.layers.UpSampling2D(2, name=f"{name}_up{i}")(merged[0])
        merged.insert(0, keras.layers.Add(name=f"{name}_merge{i}")([laterals[i], up]))
    return [
        keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_out{i}")(m)
        for i, m in enumerate(merged)
    ]


def apply_detection_head(features, num_classes, num_anchors, convs=2, filters=64,
                         prior_probability=0.01, class_activation="sigmoid", name="head"):
    """RetinaNet class and box subnets, one set of weights shared by all levels.

    `features`: list of `(batch, h_l, w_l, C)` maps. Returns `(classes, boxes)`:
    `(batch, N, num_classes)` (float32, `class_activation`, initialised so every
    class has probability ≈ `prior_probability`) and `(batch, N, 4)` box regression
    deltas (float32), N = Σ_l h_l·w_l·num_anchors.
    """
    outputs = {}
    for kind, units in (("class", num_classes), ("box", 4)):
        tower = [
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"{name}_{kind}_conv{i}")
            for i in range(convs)
        ]
        bias = (
            keras.initializers.Constant(-math.log((1 - prior_probability) / prior_probability))
            if kind == "class" else "zeros"
        )
        predict = keras.layers.Conv2D(
            num_anchors * units, 3, padding="same", bias_initializer=bias,
            kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
            name=f"{name}_{kind}_predict",
        )
        per_level = []
        for level, x in enumerate(features):
            for layer in tower:
                x = layer(x)
            x = keras.layers.Reshape((-1, units), name=f"{name}_{kind}_reshape{level}")(predict(x))
            per_level.append(x)
        outputs[kind] = keras.layers.Concatenate(axis=1, dtype="float32", name=f"{name}_{kind}_concat")(per_level)
    classes = keras.layers.Activation(class_activation, dtype="float32", name=f"{name}_classes")(outputs["class"])
    boxes = keras.layers.Activation("linear", dtype="float32", name=f"{name}_boxes")(outputs["box"])
    return classes, boxes


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "detection",
    variants={
        "retinanet_small": dict(
            input_shape=(128, 128, 3), num_classes=3, backbone_filters=(16, 32, 64, 128),
            min_level=3, max_level=4, fpn_filters=64, head_convs=2, head_filters=64,
            anchor_size=4.0, anchor_ratios=(0.5, 1.0, 2.0), anchor_scales=(1.0, 1.26, 1.587),
            prior_probability=0.01,
        ),
    },
)
class Detector(ArgsConfig, keras.Model):
    """Small single-stage anchor-based detector: conv backbone → FPN → RetinaNet head.

    Args:
        input_shape: `(H, W, C)`; static H and W must be divisible by 2**max_level.
        num_classes: object classes (no background class; sigmoid per class).
        backbone_filters: filters of the backbone stages; stage i (two 3×3 convs, the
            first with stride 2) has stride 2^(i+1) and is pyramid level i + 1.
        min_level, max_level: pyramid levels fed to the FPN (stride 2^level);
            `max_level <= len(backbone_filters)`.
        fpn_filters: FPN channels.
        head_convs, head_filters: depth and width of the class/box subnets.
        anchor_size: base anchor size relative to the stride (size = anchor_size·2^level).
        anchor_ratios, anchor_scales: anchor shapes per location (width/height ratios
            and size multipliers).
        prior_probability: initial class probability (focal-loss initialisation).
        batch_norm_momentum: of the backbone's moving statistics. 0.9 (PyTorch's default)
            rather than Keras's 0.99: with 0.99 the statistics lag the weights for a few
            hundred steps, and a 4-epoch face detector scored mAP@.5 0.32-0.73 over four
            seeds against 0.92-0.94 with 0.9.
        backbone: "" (its own stages), or a classifier variant (`trunk.py`) whose
            convolutional trunk gives the first levels (its layers keep their names, so a
            classify run's weights load into it); own stages add the levels beyond it.

    Outputs a dict: `"classes"` `(batch, N, num_classes)` probabilities and `"boxes"`
    `(batch, N, 4)` deltas, both float32, with `N = len(self.anchors())` — the anchor
    boxes in matching order.
    """

    _ARGS = ("input_shape", "num_classes", "backbone_filters", "min_level", "max_level", "fpn_filters",
             "head_convs", "head_filters", "anchor_size", "anchor_ratios", "anchor_scales",
             "prior_probability", "batch_norm_momentum", "backbone")

    def __init__(
        self,
        input_shape=(128, 128, 3),
        num_classes=3,
        backbone_filters=(16, 32, 64, 128),
        min_level=3,
        max_level=4,
        fpn_filters=64,
        head_convs=2,
        head_filters=64,
        anchor_size=4.0,
        anchor_ratios=(0.5, 1.0, 2.0),
        anchor_scales=(1.0, 1.26, 1.587),
        prior_probability=0.01,
        batch_norm_momentum=0.9,
        backbone="",
        name=None,
        **kwargs,
    ):
        check_input_shape(input_shape, 3)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be an int >= 1. Received: num_classes={num_classes}")
        backbone_filters = list(backbone_filters)
        if any(not isinstance(f, int) or f < 1 for f in backbone_filters):
            raise ValueError(f"`backbone_filters` must be positive ints. Received: backbone_filters={backbone_filters}")
        if not (1 <= min_level <= max_level <= len(backbone_filters)):
            raise ValueError(
                "Need 1 <= min_level <= max_level <= len(backbone_filters). Received: "
                f"min_level={min_level}, max_level={max_level}, backbone_filters={backbone_filters}"
            )
        if any(d is not None and d % 2**max_level for d in tuple(input_shape)[:2]):
            raise ValueError(
                f"Static height and width must be divisible by 2**max_level={2**max_level}. "
                f"Received: input_shape={input_shape}"
            )
        anchor_ratios, anchor_scales = list(anchor_ratios), list(anchor_scales)
        if not anchor_ratios or not anchor_scales or min(anchor_ratios + anchor_scales) <= 0:
            raise ValueError(
                "`anchor_ratios` and `anchor_scales` must be non-empty and positive. Received: "
                f"anchor_ratios={anchor_ratios}, anchor_scales={anchor_scales}"
            )
        if not 0.0 < prior_probability < 1.0:
            raise ValueError(f"`prior_probability` must be in (0, 1). Received: prior_probability={prior_probability}")
        for arg, value in (("fpn_filters", fpn_filters), ("head_filters", head_filters)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value}")

        prefix = "detector"
        inputs = keras.Input(shape=tuple(input_shape), name=f"{prefix}_images")
        # levels[l]: the feature map at stride 2**l; a trunk gives the first ones, own stages the rest
        levels = trunk_features(backbone, tuple(input_shape), name=f"{prefix}_backbone")(inputs) if backbone else [inputs]
        for i in range(len(levels) - 1, max_level):
            x = levels[-1]
            for j, stride in enumerate((2, 1)):
                x = keras.layers.Conv2D(backbone_filters[min(i, len(backbone_filters) - 1)], 3, strides=stride,
                                        padding="same", use_bias=False, name=f"{prefix}_stage{i + 1}_conv{j + 1}")(x)
                x = keras.layers.BatchNormalization(momentum=batch_norm_momentum,
                                                    name=f"{prefix}_stage{i + 1}_bn{j + 1}")(x)
                x = keras.layers.Activation("relu", name=f"{prefix}_stage{i + 1}_relu{j + 1}")(x)
            levels.append(x)
        pyramid = apply_fpn(levels[min_level:max_level + 1], fpn_filters, name=f"{prefix}_fpn")
        classes, boxes = apply_detection_head(
            pyramid, num_classes, len(anchor_ratios) * len(anchor_scales), head_convs, head_filters,
            prior_probability, name=f"{prefix}_head",
        )
        super().__init__(inputs=inputs, outputs={"classes": classes, "boxes": boxes}, name=name, **kwargs)

        self.input_shape_ = list(input_shape)
        self.num_classes = num_classes
        self.backbone_filters = backbone_filters
        self.min_level = min_level
        self.max_level = max_level
        self.fpn_filters = fpn_filters
        self.head_convs = head_convs
        self.head_filters = head_filters
        self.anchor_size = anchor_size
        self.anchor_ratios = anchor_ratios
        self.anchor_scales = anchor_scales
        self.prior_probability = prior_probability
        self.batch_norm_momentum = batch_norm_momentum
        self.backbone = backbone

    def anchors(self, image_shape=None):
        """The `(N, 4)` xyxy anchors matching the outputs for `image_shape` (H, W)
        (default: the static input shape)."""
        levels = range(self.min_level, self.max_level + 1)
        return make_anchors(
            image_shape or self.input_shape_[:2], levels, [self.anchor_size * 2**l for l in levels],
            self.anchor_ratios, self.anchor_scales,
        )
