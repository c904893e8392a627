"""Metric learning (ArcFace, Deng et al. 2019): a cosine classifier head over L2-normalised
embeddings and its additive angular margin loss. Trained as a classifier over the training
identities; at inference only the embedding is kept, and unseen identities are compared by
cosine similarity."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="dlsuite")
class CosineHead(keras.layers.Layer):
    """cos(angle) between each (normalised) embedding and each class centre: [N, classes]."""

    def __init__(self, num_classes, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"`num_classes` must be an int >= 2. Received: num_classes={num_classes}")
        self.num_classes = num_classes

    def build(self, input_shape):
        self.centres = self.add_weight(shape=(input_shape[-1], self.num_classes), initializer="glorot_uniform",
                                       name="centres")

    def call(self, x):
        x = ops.normalize(ops.cast(x, "float32"), axis=-1)
        return ops.matmul(x, ops.normalize(self.centres, axis=0))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.num_classes)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


def additive_angular_margin_loss(scale=30.0, margin=0.5):
    """Per-example ArcFace loss on CosineHead outputs: the true class's angle is widened by
    `margin` radians, then cross-entropy on `scale` x cosines. Past the angle where
    theta + margin would wrap (theta > pi - margin), the usual linear fallback keeps it monotonic."""
    if scale <= 0 or not 0 <= margin < math.pi / 2:
        raise ValueError(f"expected scale > 0 and 0 <= margin < pi/2. Received: scale={scale}, margin={margin}")
    cos_m, sin_m = math.cos(margin), math.sin(margin)
    limit, fallback = math.cos(math.pi - margin), math.sin(math.pi - margin) * margin

    def loss(y_true, cosine):
        cosine = ops.clip(ops.cast(cosine, "float32"), -1.0 + 1e-7, 1.0 - 1e-7)
        onehot = ops.one_hot(ops.cast(ops.reshape(y_true, (-1,)), "int32"), ops.shape(cosine)[-1])
        sine = ops.sqrt(1.0 - ops.square(cosine))
        widened = ops.where(cosine > limit, cosine * cos_m - sine * sin_m, cosine - fallback)
        logits = scale * ops.where(onehot > 0, widened, cosine)
        return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True)

    return loss
