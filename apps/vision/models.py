"""Vision task models: raw uint8 images in, shared builder inside, class probabilities out."""

import keras

from shared import architectures


def build_classifier(cfg, info):
    """uint8 images -> Rescaling(1/255) -> `cfg.model` (a registered architecture/variant) -> softmax."""
    inputs = keras.Input(shape=info.input_shape, dtype="uint8", name="images")
    x = keras.layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    backbone = architectures.build(cfg.model, input_shape=info.input_shape,
                                   num_classes=len(info.class_names))
    outputs = backbone(x)
    return keras.Model(inputs, outputs, name=f"classify_{cfg.model}")
