"""Plain convolutional stacks (conv → [BN] → activation → pool), keras-io style.

Also home of the small helpers every image builder shares: `apply_pooling` (feature
map → vector) and `apply_classifier_head` (float32 Dense head, mixed-precision safe).
"""

import keras

from shared.architectures.base import ArgsConfig
from shared.architectures import register

POOLINGS = ("flatten", "avg", "max", None)
_DOWNSAMPLE = {"max": keras.layers.MaxPooling2D, "avg": keras.layers.AveragePooling2D}


def check_activation(activation, arg="activation"):
    """Raises ValueError unless `activation` names a `keras.activations` function."""
    try:
        ok = isinstance(activation, str) and keras.activations.get(activation) is not None
    except (ValueError, TypeError):
        ok = False
    if not ok:
        raise ValueError(
            f"`{arg}` must be the name of a keras.activations function (e.g. 'relu', "
            f"'softmax'). Received: {arg}={activation!r}"
        )


def check_input_shape(input_shape, rank, arg="input_shape"):
    """Raises ValueError unless `input_shape` is a sequence of `rank` positive ints/None."""
    if (
        not isinstance(input_shape, (tuple, list))
        or len(input_shape) != rank
        or any(d is not None and (not isinstance(d, int) or d <= 0) for d in input_shape)
    ):
        raise ValueError(
            f"`{arg}` must be a sequence of {rank} positive ints (or None). "
            f"Received: {arg}={input_shape!r}"
        )


def check_num_classes(num_classes):
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 1):
        raise ValueError(f"`num_classes` must be None or an int >= 1. Received: num_classes={num_classes}")


def apply_pooling(x, pooling, name):
    """Reduces a `(batch, *spatial, C)` map: "flatten" → `(batch, prod(spatial)·C)`,
    "avg"/"max" → `(batch, C)` (global pooling), None → unchanged."""
    rank = len(x.shape) - 2
    if pooling == "flatten":
        return keras.layers.Flatten(name=f"{name}_flatten")(x)
    if pooling == "avg":
        layer = {1: keras.layers.GlobalAveragePooling1D, 2: keras.layers.GlobalAveragePooling2D,
                 3: keras.layers.GlobalAveragePooling3D}[rank]
        return layer(name=f"{name}_avg_pool")(x)
    if pooling == "max":
        layer = {1: keras.layers.GlobalMaxPooling1D, 2: keras.layers.GlobalMaxPooling2D,
                 3: keras.layers.GlobalMaxPooling3D}[rank]
        return layer(name=f"{name}_max_pool")(x)
    return x


def apply_classifier_head(x, num_classes, activation="softmax", dropout=0.0, name="head"):
    """`Dropout(dropout)` then `Dense(num_classes, activation)` computed in float32
    (so the model works under a mixed precision policy). Output `(batch, num_classes)`."""
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.Dense(
        num_classes, activation=activation, dtype="float32", name=f"{name}_predictions"
    )(x)


def apply_conv_block(
    x, filters, kernel_size=3, activation="relu", convs=1, padding="valid",
    batch_norm=False, pool="max", pool_size=2, name="block", batch_norm_momentum=0.99, stride=1,
):
    """`convs` × (Conv2D → [BatchNorm] → activation), then an optional 2D pooling.

    `(batch, H, W, C)` → `(batch, H', W', filters)`; H' = H − convs·(kernel_size − 1) for
    "valid" padding (H for "same"), divided by the first conv's `stride`, then divided
    (floor) by `pool_size` if `pool`."""
    for i in range(convs):
        x = keras.layers.Conv2D(
            filters, kernel_size, strides=stride if i == 0 else 1, padding=padding, use_bias=not batch_norm,
            activation=None if batch_norm else activation, name=f"{name}_conv{i + 1}",
        )(x)
        if batch_norm:
            x = keras.layers.BatchNormalization(momentum=batch_norm_momentum, name=f"{name}_bn{i + 1}")(x)
            x = keras.layers.Activation(activation, name=f"{name}_act{i + 1}")(x)
    if pool:
        x = _DOWNSAMPLE[pool](pool_size, name=f"{name}_pool")(x)
    return x


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "cnn",
    variants={
        # keras-io "Simple MNIST convnet": 34,826 params at 28x28x1 / 10 classes.
        "simple_cnn": dict(
            input_shape=(28, 28, 1), filters=(32, 64), kernel_size=3, activation="relu",
            convs_per_block=1, padding="valid", batch_norm=False, pool="max", pooling="flatten",
            dropout=0.5, num_classes=10, head_activation="softmax",
        ),
        # Two BN conv blocks with "same" padding, 50,474 params at 28x28x1 / 10 classes
        # (Fashion-MNIST: 91.5 % in 10 epochs, 3.5 min on a 2-core CPU).
        "cnn_bn": dict(
            input_shape=(28, 28, 1), filters=(32, 64), kernel_size=3, activation="relu",
            convs_per_block=1, padding="same", batch_norm=True, pool="max", pooling="flatten",
            dropout=0.4, dense_units=(), num_classes=10, head_activation="softmax",
        ),
        # Default Fashion-MNIST classifier: cnn_bn with a third block at 7x7 (cheap: the
        # small maps) and lighter dropout, 104,874 params; 93 % in 13 epochs, under 5 min on a
        # 2-core CPU with bfloat16 (README "Vision: image classification").
        "cnn_bn3": dict(
            input_shape=(28, 28, 1), filters=(32, 64, 128), kernel_size=3, activation="relu",
            convs_per_block=1, padding="same", batch_norm=True, pool="max", pooling="flatten",
            dropout=0.2, dense_units=(), num_classes=10, head_activation="softmax",
        ),
        # VGG-style: two BN convs per block, global average pooling (CIFAR-sized inputs).
        "vgg_small": dict(
            input_shape=(32, 32, 3), filters=(32, 64, 128), kernel_size=3, activation="relu",
            convs_per_block=2, padding="same", batch_norm=True, pool="max", pooling="avg",
            dropout=0.3, num_classes=10, head_activation="softmax",
        ),
        # Photo scenes (128x128 scenes downscaled to 64x64 inside the classifier): three BN
        # conv blocks to stride 8, then global average pooling, so the last conv map (8x8)
        # still localises (Grad-CAM).
        "cnn_gap": dict(
            input_shape=(64, 64, 3), filters=(32, 64, 128), kernel_size=3, activation="relu",
            convs_per_block=1, padding="same", batch_norm=True, pool="max", pooling="avg",
            dropout=0.2, num_classes=10, head_activation="softmax",
        ),
        # cnn_gap with global *max* pooling (multiple-instance style): a small item in a
        # cluttered scene is not averaged away over the background positions.
        "cnn_gmp": dict(
            input_shape=(64, 64, 3), filters=(32, 64, 128), kernel_size=3, activation="relu",
            convs_per_block=1, padding="same", batch_norm=True, pool="max", pooling="max",
            dropout=0.2, num_classes=10, head_activation="softmax",
        ),
    },
)
class CNN(ArgsConfig, keras.Model):
    """A plain stack of conv blocks, each `convs_per_block` × (Conv2D → [BN] → act) → pool.

    Args:
        input_shape: `(H, W, C)` of float images (H/W may be None unless
            `pooling="flatten"`).
        filters: filters of each block (one block per entry).
        kernel_size: conv kernel size.
        activation: conv activation (a `keras.activations` name).
        convs_per_block: convolutions per block.
        padding: "valid" or "same".
        batch_norm: BatchNormalization after each conv (conv then has no bias).
        batch_norm_momentum: of its moving statistics (0.99, Keras's default, needs a few
            hundred steps to settle; small data sets want ~0.9).
        pool: per-block downsampling, "max", "avg" or None.
        pooling: final reduction — "flatten", "avg", "max" (global) or None.
        dropout: dropout rate applied after the final reduction (and before each dense layer).
        dense_units: hidden Dense layers (with `activation`) between the reduction and the head.
        num_classes: if set, a float32 `Dense(num_classes, head_activation)` head.
        head_activation: activation of the head.

    Output shape: `(batch, num_classes)` with a head; otherwise `(batch, D)` with
    D = filters[-1] ("avg"/"max") or h·w·filters[-1] ("flatten"), or the last feature
    map `(batch, h, w, filters[-1])` for `pooling=None`.
    """

    _ARGS = ("input_shape", "filters", "kernel_size", "activation", "convs_per_block", "padding", "batch_norm",
             "batch_norm_momentum", "pool", "pooling", "dropout", "dense_units", "num_classes",
             "head_activation")

    def __init__(
        self,
        input_shape=(28, 28, 1),
        filters=(32, 64),
        kernel_size=3,
        activation="relu",
        convs_per_block=1,
        padding="valid",
        batch_norm=False,
        batch_norm_momentum=0.99,
        pool="max",
        pooling="flatten",
        dropout=0.5,
        dense_units=(),
        num_classes=None,
        head_activation="softmax",
        name=None,
        **kwargs,
    ):
        check_input_shape(input_shape, 3)
        filters = [filters] if isinstance(filters, int) else list(filters)
        if not filters or any(not isinstance(f, int) or f <= 0 for f in filters):
            raise ValueError(f"`filters` must be positive ints. Received: filters={filters}")
        if not isinstance(kernel_size, int) or kernel_size <= 0:
            raise ValueError(f"`kernel_size` must be a positive int. Received: kernel_size={kernel_size}")
        check_activation(activation)
        check_activation(head_activation, "head_activation")
        if not isinstance(convs_per_block, int) or convs_per_block < 1:
            raise ValueError(f"`convs_per_block` must be an int >= 1. Received: convs_per_block={convs_per_block}")
        if padding not in ("valid", "same"):
            raise ValueError(f"`padding` must be 'valid' or 'same'. Received: padding={padding}")
        if pool not in ("max", "avg", None):
            raise ValueError(f"`pool` must be 'max', 'avg' or None. Received: pool={pool}")
        if pooling not in POOLINGS:
            raise ValueError(f"`pooling` must be one of {POOLINGS}. Received: pooling={pooling}")
        if pooling == "flatten" and None in tuple(input_shape)[:2]:
            raise ValueError(
                f"`pooling='flatten'` needs a static height and width. Received: input_shape={input_shape}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        dense_units = [dense_units] if isinstance(dense_units, int) else list(dense_units)
        if any(not isinstance(u, int) or u <= 0 for u in dense_units):
            raise ValueError(f"`dense_units` must be positive ints. Received: dense_units={dense_units}")
        check_num_classes(num_classes)
        if num_classes is not None and pooling is None:
            raise ValueError("A head (`num_classes`) needs `pooling`. Received: pooling=None")

        prefix = "cnn"
        inputs = keras.Input(shape=tuple(input_shape), name=f"{prefix}_images")
        x = inputs
        for i, f in enumerate(filters):
            x = apply_conv_block(
                x, f, kernel_size, activation, convs_per_block, padding, batch_norm, pool,
                name=f"{prefix}_block{i + 1}", batch_norm_momentum=batch_norm_momentum,
            )
        x = apply_pooling(x, pooling, name=prefix)
        for i, units in enumerate(dense_units):
            if dropout:
                x = keras.layers.Dropout(dropout, name=f"{prefix}_dense{i + 1}_dropout")(x)
            x = keras.layers.Dense(units, activation=activation, name=f"{prefix}_dense{i + 1}")(x)
        if num_classes is not None:
            x = apply_classifier_head(x, num_classes, head_activation, dropout, name=f"{prefix}_head")
        elif dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        self.input_shape_ = list(input_shape)
        self.filters = filters
        self.kernel_size = kernel_size
        self.activation = activation
        self.convs_per_block = convs_per_block
        self.padding = padding
        self.batch_norm = batch_norm
        self.batch_norm_momentum = batch_norm_momentum
        self.pool = pool
        self.pooling = pooling
        self.dropout = dropout
        self.dense_units = dense_units
        self.num_classes = num_classes
        self.head_activation = head_activation
