"""A classifier's convolutional trunk as the encoder of a dense-prediction model (the U-Net's
skips, the detector's pyramid): what lets a classify run that already knows the objects
start a segmenter or a detector (`--init-from`), the usual backbone transfer.

The trunk is the registered `cnn` variant without its head and final pooling, rebuilt at the
new input shape; its layers keep the classifier's names, so the run's weights load by name
(`shared/training/transfer.py`, which also inflates a grey first convolution to colour)."""

import keras

from shared import architectures


def trunk_names():
    """Classifier variants that can serve as a trunk (the plain conv stacks of `cnn` with
    "same" padding, so the feature maps halve exactly)."""
    return sorted(v for v, kwargs in architectures.variants("cnn").items() if kwargs.get("pool") and kwargs.get("padding") == "same")


def trunk_features(variant, input_shape, name="backbone"):
    """A model `images -> [feature maps]`, finest first, each 2x coarser than the one before:
    the input of every downsampling layer of the `variant` classifier's trunk, then its output."""
    if variant not in trunk_names():
        raise ValueError(f"`backbone` must be one of {trunk_names()}. Received: backbone={variant!r}")
    trunk = architectures.build(variant, input_shape=tuple(input_shape), num_classes=None, pooling=None, dropout=0.0)
    pools = [layer for layer in trunk.layers if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D))]
    return keras.Model(trunk.input, [pool.input for pool in pools] + [trunk.output], name=name)
