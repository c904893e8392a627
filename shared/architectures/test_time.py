"""Test-time augmentation as a model transform: the trained model is unchanged (training and
Grad-CAM see one pass); what is evaluated, predicted and exported averages the passes."""

import keras


@keras.saving.register_keras_serializable(package="dlsuite")
class HorizontalFlip(keras.layers.Layer):
    """Mirrors `(batch, H, W, C)` images left-right (any dtype; TFLite `REVERSE_V2`)."""

    def call(self, images):
        return keras.ops.flip(images, axis=2)

    def compute_output_shape(self, input_shape):
        return input_shape


def flip_averaged(model):
    """`x -> (model(x) + model(mirror(x))) / 2` for a one-input, one-output image model (class
    probabilities of a left-right symmetric problem); the weights are `model`'s, shared."""
    x = model.inputs[0]
    images = keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype, name=x.name)
    mirrored = HorizontalFlip(name="test_time_flip")(images)
    averaged = keras.layers.Average(name="test_time_average")([model(images), model(mirrored)])
    return keras.Model(images, averaged, name=model.name)
