"""2D U-Net (Ronneberger et al. 2015), optionally with Attention U-Net gates on the skip
connections (Oktay et al. 2018)."""

import keras

from shared.architectures.base import ArgsConfig
from shared.architectures import register
from shared.architectures.cnn import check_input_shape
from shared.architectures.trunk import trunk_features


def apply_double_conv(x, filters, batch_norm=True, dropout=0.0, name="conv", bn_momentum=0.99):
    """2 × (3×3 same Conv2D → [BN] → ReLU) [→ Dropout]. Keeps H, W; → `filters` channels."""
    for i in (1, 2):
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=not batch_norm,
                                name=f"{name}_conv{i}")(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"{name}_bn{i}")(x)
        x = keras.layers.Activation("relu", name=f"{name}_relu{i}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def apply_attention_gate(skip, gating, inter_filters, name="gate"):
    """Additive attention gate: `skip * sigmoid(psi(relu(Wx·skip + Wg·gating)))`.

    `skip` and `gating` share H and W (gating = the upsampled decoder feature). Returns a
    tensor shaped like `skip`, each pixel scaled by a learned coefficient in (0, 1).
    """
    theta = keras.layers.Conv2D(inter_filters, 1, name=f"{name}_theta_x")(skip)
    phi = keras.layers.Conv2D(inter_filters, 1, name=f"{name}_phi_g")(gating)
    a = keras.layers.Activation("relu", name=f"{name}_relu")(keras.layers.Add(name=f"{name}_add")([theta, phi]))
    psi = keras.layers.Conv2D(1, 1, name=f"{name}_psi")(a)
    psi = keras.layers.Activation("sigmoid", name=f"{name}_sigmoid")(psi)
    return keras.layers.Multiply(name=f"{name}_scale")([skip, psi])


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "unet",
    variants={
        "unet": dict(input_shape=(128, 128, 1), depth=4, base_filters=32, num_classes=2,
                     attention_gates=False, batch_norm=True, dropout=0.0),
        "attention_unet": dict(input_shape=(128, 128, 1), depth=4, base_filters=32, num_classes=2,
                               attention_gates=True, batch_norm=True, dropout=0.0),
        "unet_small": dict(input_shape=(64, 64, 1), depth=3, base_filters=16, num_classes=1,
                           attention_gates=False, batch_norm=True, dropout=0.0),
    },
)
class UNet(ArgsConfig, keras.Model):
    """Encoder–decoder with skip connections for per-pixel classification.

    Args:
        input_shape: `(H, W, C)`; static H and W must be divisible by 2**depth (None
            is allowed: then inputs must be divisible at call time).
        depth: number of 2× downsamplings (encoder levels below the top).
        base_filters: filters of the top level; level i has base_filters·2^i.
        num_classes: output channels; softmax over classes if > 1, sigmoid if 1
            (binary masks).
        attention_gates: gate every skip connection with an additive attention gate.
        batch_norm: BatchNormalization in the conv blocks.
        bn_momentum: its moving-average momentum (0.9 suits short trainings of few steps:
            at 0.99 the inference statistics lag the weights for hundreds of steps).
        dropout: dropout after the bottleneck block.
        backbone: "" (the U-Net's own encoder), or a classifier variant (`trunk.py`) whose
            convolutional trunk is the encoder (its layers keep their names, so a classify
            run's weights load into it); `depth` is then its number of downsamplings.

    Output shape: `(batch, H, W, num_classes)` of probabilities (float32).
    """

    _ARGS = ("input_shape", "depth", "base_filters", "num_classes", "attention_gates", "batch_norm", "dropout",
             "bn_momentum", "backbone")

    def __init__(
        self,
        input_shape=(128, 128, 1),
        depth=4,
        base_filters=32,
        num_classes=2,
        attention_gates=False,
        batch_norm=True,
        dropout=0.0,
        bn_momentum=0.99,
        backbone="",
        name=None,
        **kwargs,
    ):
        check_input_shape(input_shape, 3)
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"`depth` must be an int >= 1. Received: depth={depth}")
        if any(d is not None and d % 2**depth for d in tuple(input_shape)[:2]):
            raise ValueError(
                f"Static height and width must be divisible by 2**depth={2**depth}. "
                f"Received: input_shape={input_shape}, depth={depth}"
            )
        if not isinstance(base_filters, int) or base_filters < 1:
            raise ValueError(f"`base_filters` must be a positive int. Received: base_filters={base_filters}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"`num_classes` must be an int >= 1. Received: num_classes={num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")

        prefix = "unet"
        inputs = keras.Input(shape=tuple(input_shape), name=f"{prefix}_images")
        if backbone:  # a classifier's trunk: its feature maps before each downsampling are the skips
            *skips, x = trunk_features(backbone, tuple(input_shape), name=f"{prefix}_backbone")(inputs)
            depth = len(skips)
        else:
            x, skips = inputs, []
            for i in range(depth):
                x = apply_double_conv(x, base_filters * 2**i, batch_norm, name=f"{prefix}_down{i + 1}",
                                      bn_momentum=bn_momentum)
                skips.append(x)
                x = keras.layers.MaxPooling2D(2, name=f"{prefix}_down{i + 1}_pool")(x)
        x = apply_double_conv(x, base_filters * 2**depth, batch_norm, dropout, name=f"{prefix}_bottleneck",
                              bn_momentum=bn_momentum)
        for i in reversed(range(depth)):
            filters = base_filters * 2**i
            x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"{prefix}_up{i + 1}_upconv")(x)
            skip = skips[i]
            if attention_gates:
                skip = apply_attention_gate(skip, x, max(1, filters // 2), name=f"{prefix}_up{i + 1}_gate")
            x = keras.layers.Concatenate(name=f"{prefix}_up{i + 1}_concat")([skip, x])
            x = apply_double_conv(x, filters, batch_norm, name=f"{prefix}_up{i + 1}", bn_momentum=bn_momentum)
        x = keras.layers.Conv2D(
            num_classes, 1, activation="softmax" if num_classes > 1 else "sigmoid",
            dtype="float32", name=f"{prefix}_head",
        )(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        self.input_shape_ = list(input_shape)
        self.depth = depth
        self.base_filters = base_filters
        self.num_classes = num_classes
        self.attention_gates = attention_gates
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.bn_momentum = bn_momentum
        self.backbone = backbone
