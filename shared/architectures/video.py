"""Video clip classifiers over `(frames, H, W, C)` inputs: a per-frame CNN + LSTM, a
ConvLSTM stack, or (2+1)D factorised convolutions (Tran et al. 2018, R(2+1)D).

Per-frame layers (convs, spatial pooling) run on the frames folded into the batch
(`FramesAsBatch` / `BatchAsFrames`, two reshapes) rather than through `TimeDistributed`,
which Keras 3 unrolls into one call per frame, and the recurrent layers unroll when the
clip length is static: the graphs convert to TFLite builtins (no MaxPool3D, no TensorList).
"""

import keras

from shared.architectures.base import ArgsConfig
from shared.architectures import register
from shared.architectures.cnn import (apply_classifier_head, apply_conv_block, check_activation, check_input_shape,
                                      check_num_classes)

KINDS = ("cnn_lstm", "conv_lstm", "r2plus1d")


@keras.saving.register_keras_serializable(package="dlsuite")
class FramesAsBatch(keras.layers.Layer):
    """`(batch, T, ...)` -> `(batch * T, ...)`: per-frame layers then run as one batched call."""

    def call(self, clips):
        return keras.ops.reshape(clips, (-1, *clips.shape[2:]))

    def compute_output_shape(self, input_shape):
        return (None, *input_shape[2:])


@keras.saving.register_keras_serializable(package="dlsuite")
class BatchAsFrames(keras.layers.Layer):
    """`[(batch * T, ...), clips (batch, T, ...)]` -> `(batch, T, ...)`: undoes `FramesAsBatch`."""

    def call(self, inputs):
        frames, clips = inputs
        shape = keras.ops.shape(clips)
        return keras.ops.reshape(frames, (shape[0], shape[1], *frames.shape[1:]))

    def compute_output_shape(self, input_shape):
        frames, clips = input_shape
        return (clips[0], clips[1], *frames[1:])


def apply_per_frame(x, layer, name):
    """`layer` applied to every frame of `x` `(batch, T, ...)`, as one call on the folded frames."""
    return BatchAsFrames(name=f"{name}_unfold")([layer(FramesAsBatch(name=f"{name}_fold")(x)), x])


def apply_r2plus1d_block(x, filters, kernel_size=3, temporal_kernel=3, stride=1, name="block"):
    """Spatial Conv3D (1, k, k) with spatial `stride` → BN → ReLU, then temporal Conv3D
    (t, 1, 1) → BN → ReLU.

    `(batch, T, H, W, C)` → `(batch, T, H / stride, W / stride, filters)` (same padding)."""
    x = keras.layers.Conv3D(filters, (1, kernel_size, kernel_size), strides=(1, stride, stride), padding="same",
                            use_bias=False, name=f"{name}_spatial_conv")(x)
    x = keras.layers.Activation("relu", name=f"{name}_spatial_relu")(
        keras.layers.BatchNormalization(name=f"{name}_spatial_bn")(x))
    x = keras.layers.Conv3D(filters, (temporal_kernel, 1, 1), padding="same", use_bias=False,
                            name=f"{name}_temporal_conv")(x)
    return keras.layers.Activation("relu", name=f"{name}_temporal_relu")(
        keras.layers.BatchNormalization(name=f"{name}_temporal_bn")(x))


def _variant(kind):
    return dict(input_shape=(8, 64, 64, 3), kind=kind, filters=(16, 32), kernel_size=3,
                temporal_kernel=3, lstm_units=64, stride=1, dropout=0.0, batch_norm=kind != "conv_lstm",
                num_classes=10, head_activation="softmax")


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "video",
    variants={
        "video_cnn_lstm": _variant("cnn_lstm"),
        "video_conv_lstm": _variant("conv_lstm"),
        "video_r2plus1d": _variant("r2plus1d"),
    },
)
class VideoClassifier(ArgsConfig, keras.Model):
    """Clip classifier.

    Args:
        input_shape: `(frames, H, W, C)`; frames may be None for "cnn_lstm" and
            "conv_lstm".
        kind: "cnn_lstm" — per-frame Conv2D/max-pool stack → its last map flattened
            (global average pool when H, W are None) → LSTM(lstm_units); "conv_lstm" — ConvLSTM2D layers
            (spatial 2× max-pool between them) → global average pool; "r2plus1d" —
            (2+1)D conv blocks (spatial 2× max-pool after each) → global average pool.
        filters: filters per conv / ConvLSTM / (2+1)D block.
        kernel_size: spatial kernel size.
        temporal_kernel: temporal kernel size of the (2+1)D blocks.
        lstm_units: LSTM units ("cnn_lstm" only).
        batch_norm: BatchNormalization after each per-frame convolution ("cnn_lstm"; the
            (2+1)D blocks always have it, ConvLSTM2D never).
        stride: spatial stride of the first convolution (the first ConvLSTM's input
            convolution): 2 quarters the cost of every layer after it.
        dropout: dropout before the head.
        num_classes: if set, a float32 `Dense(num_classes, head_activation)` head.
        head_activation: activation of the head.

    Output shape: `(batch, num_classes)` with a head, else `(batch, D)` with
    D = lstm_units ("cnn_lstm") or filters[-1].
    """

    _ARGS = ("input_shape", "kind", "filters", "kernel_size", "temporal_kernel", "lstm_units", "stride",
             "dropout", "batch_norm", "num_classes", "head_activation")

    def __init__(
        self,
        input_shape=(8, 64, 64, 3),
        kind="cnn_lstm",
        filters=(16, 32),
        kernel_size=3,
        temporal_kernel=3,
        lstm_units=64,
        stride=1,
        dropout=0.0,
        batch_norm=False,
        num_classes=None,
        head_activation="softmax",
        name=None,
        **kwargs,
    ):
        check_input_shape(input_shape, 4)
        if kind not in KINDS:
            raise ValueError(f"`kind` must be one of {KINDS}. Received: kind={kind}")
        filters = [filters] if isinstance(filters, int) else list(filters)
        if not filters or any(not isinstance(f, int) or f < 1 for f in filters):
            raise ValueError(f"`filters` must be positive ints. Received: filters={filters}")
        for arg, value in (("kernel_size", kernel_size), ("temporal_kernel", temporal_kernel),
                           ("lstm_units", lstm_units), ("stride", stride)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        check_num_classes(num_classes)
        check_activation(head_activation, "head_activation")

        prefix = "video"
        inputs = keras.Input(shape=tuple(input_shape), name=f"{prefix}_clips")
        x = inputs
        unroll = input_shape[0] is not None  # static clip length: recurrences unroll (TFLite-friendly)
        if kind == "cnn_lstm":
            frames = FramesAsBatch(name=f"{prefix}_fold")(x)
            for i, f in enumerate(filters):
                frames = apply_conv_block(frames, f, kernel_size, padding="same", batch_norm=batch_norm,
                                          stride=stride if i == 0 else 1, name=f"{prefix}_frame{i + 1}")
            if None in frames.shape[1:]:
                frames = keras.layers.GlobalAveragePooling2D(name=f"{prefix}_frame_gap")(frames)
            else:  # keep the coarse layout: a motion is where the item goes, which pooling drops
                frames = keras.layers.Flatten(name=f"{prefix}_frame_flatten")(frames)
            x = BatchAsFrames(name=f"{prefix}_unfold")([frames, x])
            x = keras.layers.LSTM(lstm_units, unroll=unroll, name=f"{prefix}_lstm")(x)
        elif kind == "conv_lstm":
            for i, f in enumerate(filters):
                last = i == len(filters) - 1
                x = keras.layers.ConvLSTM2D(f, kernel_size, strides=stride if i == 0 else 1, padding="same",
                                            return_sequences=not last, unroll=unroll,
                                            name=f"{prefix}_convlstm{i + 1}")(x)
                if not last:
                    x = apply_per_frame(x, keras.layers.MaxPooling2D(2, name=f"{prefix}_pool{i + 1}"),
                                        name=f"{prefix}_pool{i + 1}")
            x = keras.layers.GlobalAveragePooling2D(name=f"{prefix}_gap")(x)
        else:
            for i, f in enumerate(filters):
                x = apply_r2plus1d_block(x, f, kernel_size, temporal_kernel, stride=stride if i == 0 else 1,
                                         name=f"{prefix}_block{i + 1}")
                x = apply_per_frame(x, keras.layers.MaxPooling2D(2, name=f"{prefix}_pool{i + 1}"),
                                    name=f"{prefix}_pool{i + 1}")
            x = keras.layers.GlobalAveragePooling3D(name=f"{prefix}_gap")(x)
        if num_classes is not None:
            x = apply_classifier_head(x, num_classes, head_activation, dropout, name=f"{prefix}_head")
        elif dropout:
            x = keras.layers.Dropout(dropout, name=f"{prefix}_dropout")(x)
        super().__init__(inputs=inputs, outputs=x, name=name, **kwargs)

        self.input_shape_ = list(input_shape)
        self.kind = kind
        self.filters = filters
        self.kernel_size = kernel_size
        self.temporal_kernel = temporal_kernel
        self.lstm_units = lstm_units
        self.stride = stride
        self.dropout = dropout
        self.batch_norm = bool(batch_norm)
        self.num_classes = num_classes
        self.head_activation = head_activation
