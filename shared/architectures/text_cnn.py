"""Kim-style convolutional sentence classifier (Kim, 2014, "Convolutional Neural Networks
for Sentence Classification"): parallel 1-D convolutions of several widths over token
embeddings, max over time, dropout, dense head."""

import keras

from shared.architectures import register
from shared.architectures.base import ArgsConfig
from shared.architectures.cnn import check_activation, check_num_classes


@keras.saving.register_keras_serializable(package="dlsuite")
class MaskedGlobalMaxPooling1D(keras.layers.Layer):
    """Max over the steps where `mask` is True: `(batch, steps, c)`, bool `(batch, steps)` ->
    `(batch, c)`; an all-padding row gives zeros."""

    def call(self, x, mask):
        mask = keras.ops.cast(keras.ops.expand_dims(mask, -1), x.dtype)
        lowest = keras.ops.min(x, axis=1, keepdims=True) - 1.0
        pooled = keras.ops.max(x * mask + lowest * (1.0 - mask), axis=1)
        return pooled * keras.ops.cast(keras.ops.any(mask > 0, axis=1), x.dtype)


@keras.saving.register_keras_serializable(package="dlsuite")
@register(
    "text_cnn",
    variants={
        # Kim (2014) CNN-rand widths (3, 4, 5) at 100 filters each, a smaller embedding.
        "text_cnn": dict(vocabulary_size=8000, embedding_dim=128, kernel_sizes=(3, 4, 5), filters=100,
                         dropout=0.5, num_classes=2),
        "text_cnn_tiny": dict(vocabulary_size=1000, embedding_dim=16, kernel_sizes=(2, 3), filters=8,
                              dropout=0.1, num_classes=2),
    },
)
class TextCNN(ArgsConfig, keras.Model):
    """Token ids `(batch, steps)` int, 0 = padding -> Embedding (padding rows zeroed) ->
    per width k: Conv1D(filters, k, "same", relu) -> max over the non-padding steps ->
    concat -> dropout -> `Dense(num_classes, head_activation)` (float32).

    Padding never changes the output: padded embeddings are zero, like the convolution's own
    "same" padding, and padded steps are left out of the max.
    """

    _ARGS = ("vocabulary_size", "embedding_dim", "kernel_sizes", "filters", "dropout", "num_classes",
             "head_activation")

    def __init__(self, vocabulary_size=8000, embedding_dim=128, kernel_sizes=(3, 4, 5), filters=100,
                 dropout=0.5, num_classes=2, head_activation="softmax", name=None, **kwargs):
        for arg, value in dict(vocabulary_size=vocabulary_size, embedding_dim=embedding_dim, filters=filters).items():
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{arg}` must be a positive int. Received: {arg}={value}")
        kernel_sizes = [kernel_sizes] if isinstance(kernel_sizes, int) else list(kernel_sizes)
        if not kernel_sizes or any(not isinstance(k, int) or k <= 0 for k in kernel_sizes):
            raise ValueError(f"`kernel_sizes` must be positive ints. Received: kernel_sizes={kernel_sizes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        check_num_classes(num_classes)
        check_activation(head_activation, "head_activation")
        p = "text_cnn"
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        mask = keras.ops.not_equal(token_ids, 0)
        x = keras.layers.Embedding(vocabulary_size, embedding_dim, name=f"{p}_embedding")(token_ids)
        x = x * keras.ops.cast(keras.ops.expand_dims(mask, -1), x.dtype)
        pooled = []
        for k in kernel_sizes:
            h = keras.layers.Conv1D(filters, k, padding="same", activation="relu", name=f"{p}_conv{k}")(x)
            pooled.append(MaskedGlobalMaxPooling1D(name=f"{p}_pool{k}")(h, mask))
        x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name=f"{p}_concat")(pooled)
        if dropout:
            x = keras.layers.Dropout(dropout, name=f"{p}_dropout")(x)
        if num_classes is not None:
            x = keras.layers.Dense(num_classes, activation=head_activation, dtype="float32", name=f"{p}_head")(x)
        super().__init__(inputs=token_ids, outputs=x, name=name, **kwargs)
        self.vocabulary_size, self.embedding_dim, self.filters = vocabulary_size, embedding_dim, filters
        self.kernel_sizes, self.dropout, self.num_classes = kernel_sizes, dropout, num_classes
        self.head_activation = head_activation
