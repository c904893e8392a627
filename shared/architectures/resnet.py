"""ResNet v1 and v2 (pre-activation) with basic or bottleneck residual blocks.

The layer layout follows `keras.applications.ResNet50`/`ResNet50V2` (conv biases,
BatchNorm epsilon 1.001e-5), so `resnet50` has exactly the same parameter count
(25,636,712 with a 1000-class head) and the same weight shapes. Downsampling is on the
3×3 conv of each stack's first block ("v1.5"/torchvision placement; same weights).
"""

import keras

from shared.architectures.base import ArgsConfig
from shared.architectures import register
from shared.architectures.cnn import (
    apply_classifier_head,
    apply_pooling,
    check_activation,
    check_input_shape,
    check_num_classes,
)

BN_EPSILON = 1.001e-5
BLOCKS = ("basic", "bottleneck")
STEMS = ("imagenet", "small")


def _bn(name):
    return keras.layers.BatchNormalization(axis=-1, epsilon=BN_EPSILON, name=name)


def apply_basic_block(x, filters, stride=1, preact=False, name="block"):
    """Two 3×3 convs with an identity (or 1×1 projection) shortcut.

    `(batch, H, W, C)` → `(batch, ceil(H/stride), ceil(W/stride), filters)`. `preact=True`
    gives the v2 (pre-activation) form: BN → ReLU before the convs, no ReLU after add.
    """
    project = stride != 1 or x.shape[-1] != filters
    if preact:
        pre = keras.layers.Activation("relu", name=f"{name}_preact_relu")(_bn(f"{name}_preact_bn")(x))
        shortcut = (
            keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_0_conv")(pre)
            if project else x
        )
        y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                name=f"{name}_1_conv")(pre)
        y = keras.layers.Activation("relu", name=f"{name}_1_relu")(_bn(f"{name}_1_bn")(y))
        y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(y)
        return keras.layers.Add(name=f"{name}_out")([shortcut, y])
    shortcut = x
    if project:
        shortcut = keras.layers.Conv2D(filters, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _bn(f"{name}_0_bn")(shortcut)
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_1_conv")(x)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(_bn(f"{name}_1_bn")(y))
    y = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_2_conv")(y)
    y = _bn(f"{name}_2_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def apply_bottleneck_block(x, filters, stride=1, preact=False, expansion=4, name="block"):
    """1×1 (filters) → 3×3 (filters, stride) → 1×1 (expansion·filters), plus shortcut.

    `(batch, H, W, C)` → `(batch, ceil(H/stride), ceil(W/stride), expansion·filters)`.
    `preact=True` gives the v2 (pre-activation) form.
    """
    out = expansion * filters
    project = stride != 1 or x.shape[-1] != out
    if preact:
        pre = keras.layers.Activation("relu", name=f"{name}_preact_relu")(_bn(f"{name}_preact_bn")(x))
        shortcut = (
            keras.layers.Conv2D(out, 1, strides=stride, name=f"{name}_0_conv")(pre)
            if project else x
        )
        y = keras.layers.Conv2D(filters, 1, use_bias=False, name=f"{name}_1_conv")(pre)
        y = keras.layers.Activation("relu", name=f"{name}_1_relu")(_bn(f"{name}_1_bn")(y))
        y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False,
                                name=f"{name}_2_conv")(y)
        y = keras.layers.Activation("relu", name=f"{name}_2_relu")(_bn(f"{name}_2_bn")(y))
        y = keras.layers.Conv2D(out, 1, name=f"{name}_3_conv")(y)
        return keras.layers.Add(name=f"{name}_out")([shortcut, y])
    shortcut = x
    if project:
        shortcut = keras.layers.Conv2D(out, 1, strides=stride, name=f"{name}_0_conv")(x)
        shortcut = _bn(f"{name}_0_bn")(shortcut)
    y = keras.layers.Conv2D(filters, 1, name=f"{name}_1_conv")(x)
    y = keras.layers.Activation("relu", name=f"{name}_1_relu")(_bn(f"{name}_1_bn")(y))
    y = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", name=f"{name}_2_conv")(y)
    y = keras.layers.Activation("relu", name=f"{name}_2_relu")(_bn(f"{name}_2_bn")(y))
    y = keras.layers.Conv2D(out, 1, name=f"{name}_3_conv")(y)
    y = _bn(f"{name}_3_bn")(y)
    y = keras.layers.Add(name=f"{name}_add")([shortcut, y])
    return keras.layers.Activation("relu", name=f"{name}_out")(y)


def _variant(depths, block, version=1, stem="imagenet", widths=(64, 128, 256, 512), **kw):
    return dict(
        input_shape=(224, 224, 3) if stem == "imagenet" else (28, 28, 1), version=version,
        block=block, stack_depths=depths, widths=widths, stem=stem,
        stem_filters=64 if stem == "imagenet" else widths[0], pooling="avg",
        num_classes=1000 if stem == "imagenet" else 10, head_activation="softmax", **kw,
    )


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "resnet",
    variants={
        "resnet18": _variant((2, 2, 2, 2), "basic"),
        "resnet34": _variant((3, 4, 6, 3), "basic"),
        "resnet50": _variant((3, 4, 6, 3), "bottleneck"),
        "resnet50_v2": _variant((3, 4, 6, 3), "bottleneck", version=2),
        "resnet_small": _variant((2, 2, 2), "basic", stem="small", widths=(32, 64, 128)),
    },
)
class ResNet(ArgsConfig, keras.Model):
    """Residual network (He et al. 2015 v1; 2016 v2 = pre-activation).

    Args:
        input_shape: `(H, W, C)` of float images; H/W may be None.
        version: 1 (post-activation) or 2 (pre-activation, final BN → ReLU).
        block: "basic" (two 3×3 convs; ResNet-18/34) or "bottleneck" (1×1-3×3-1×1 with
            4× expansion; ResNet-50+).
        stack_depths: blocks per stack; each stack after the first halves H and W.
        widths: filters per stack (bottleneck outputs 4× this).
        stem: "imagenet" (7×7/2 conv + 3×3/2 max-pool: H/4) or "small" (3×3/1 conv, no
            pool; for 28–64 px inputs).
        stem_filters: filters of the stem conv.
        pooling: "avg", "max" (global) or None (return the last feature map).
        num_classes: if set, a float32 `Dense(num_classes, head_activation)` head.
        head_activation: activation of the head.

    Output shape: `(batch, num_classes)` with a head, else `(batch, C)` with
    C = widths[-1] (basic) or 4·widths[-1] (bottleneck); with `pooling=None`,
    `(batch, H/s, W/s, C)` with s = 4 (imagenet stem) or 1 (small), × 2^(stacks−1).
    """

    _ARGS = ("input_shape", "version", "block", "stack_depths", "widths", "stem", "stem_filters", "pooling",
             "num_classes", "head_activation")

    def __init__(
        self,
        input_shape=(None, None, 3),
        version=1,
        block="bottleneck",
        stack_depths=(3, 4, 6, 3),
        widths=(64, 128, 256, 512),
        stem="imagenet",
        stem_filters=64,
        pooling="avg",
        num_classes=None,
        head_activation="softmax",
        name=None,
        **kwargs,
    ):
        check_input_shape(input_shape, 3)
        if version not in (1, 2):
            raise ValueError(f"`version` must be 1 or 2. Received: version={version}")
        if block not in BLOCKS:
            raise ValueError(f"`block` must be one of {BLOCKS}. Received: block={block}")
        stack_depths, widths = list(stack_depths), list(widths)
        if not stack_depths or any(not isinstance(d, int) or d < 1 for d in stack_depths):
            raise ValueError(f"`stack_depths` must be ints >= 1. Received: stack_depths={stack_depths}")
        if len(widths) != len(stack_depths) or any(not isinstance(w, int) or w < 1 for w in widths):
            raise ValueError(
                "`widths` must be positive ints, one per stack. Received: "
                f"widths={widths}, stack_depths={stack_depths}"
            )
        if stem not in STEMS:
            raise ValueError(f"`stem` must be one of {STEMS}. Received: stem={stem}")
        if not isinstance(stem_filters, int) or stem_filters < 1:
            raise ValueError(f"`stem_filters` must be a positive int. Received: stem_filters={stem_filters}")
        if pooling not in ("avg", "max", None):
            raise ValueError(f"`pooling` must be 'avg', 'max' or None. Received: pooling={pooling}")
        check_num_classes(num_classes)
        check_activation(head_activation, "head_activation")
        if num_classes is not None and pooling is None:
            raise ValueError("A head (`num_classes`) needs `pooling`. Received: pooling=None")

        prefix = "resnet"
        preact = version == 2
        inputs = keras.Input(shape=tuple(input_shape), name=f"{prefix}_images")
        if stem == "imagenet":
            x = keras.layers.ZeroPadding2D(3, name=f"{prefix}_stem_pad")(inputs)
            x = keras.layers.Conv2D(stem_filters, 7, strides=2, name=f"{prefix}_stem_conv")(x)
        else:
            x = keras.layers.Conv2D(stem_filters, 3, padding="same", name=f"{prefix}_stem_conv")(inputs)
        if not preact:
            x = keras.layers.Activation("relu", name=f"{prefix}_stem_relu")(_bn(f"{prefix}_stem_bn")(x))
        if stem == "imagenet":
            x = keras.layers.ZeroPadding2D(1, name=f"{prefix}_pool_pad")(x)
            x = keras.layers.MaxPooling2D(3, strides=2, name=f"{prefix}_pool")(x)
        apply_block = apply_basic_block if block == "basic" else apply_bottleneck_block
        for s, (depth, width) in enumerate(zip(stack_depths, widths)):
            for b in range(depth):
                x = apply_block(
                    x, width, stride=2 if (s > 0 and b == 0) else 1, preact=preact,
                    name=f"{prefix}_stack{s + 1}_block{b + 1}",
                )
        if preact:
            x = keras.layers.Activation("relu", name=f"{prefix}_post_relu")(_bn(f"{prefix}_post_bn")(x))
        x = apply_pooling(x, pooling, name=prefix)
        if num_classes is not None:
            x = apply_classifier_head(x, num_classes, head_activation, name=f"{prefix}_head")
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        self.input_shape_ = list(input_shape)
        self.version = version
        self.block = block
        self.stack_depths = stack_depths
        self.widths = widths
        self.stem = stem
        self.stem_filters = stem_filters
        self.pooling = pooling
        self.num_classes = num_classes
        self.head_activation = head_activation
