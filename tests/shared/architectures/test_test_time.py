import keras
import numpy as np

from shared import architectures
from shared.architectures.test_time import flip_averaged

IMAGES = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28, 1)).astype("uint8")


def _classifier():
    images = keras.Input((28, 28, 1), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1 / 255)(images)
    return keras.Model(images, architectures.build("cnn_bn", filters=(4, 8), num_classes=3)(x))


def test_flip_averaged_is_the_mean_of_the_image_and_its_mirror():
    model = _classifier()
    averaged = flip_averaged(model)
    assert averaged.inputs[0].name == "images" and averaged.count_params() == model.count_params()  # shared weights
    expected = (model(IMAGES) + model(IMAGES[:, :, ::-1])) / 2
    np.testing.assert_allclose(averaged(IMAGES), expected, atol=1e-6)
    np.testing.assert_allclose(np.sum(averaged(IMAGES), -1), 1.0, atol=1e-5)
    # A mirrored input gives the same answer: the averaged model is left-right symmetric.
    np.testing.assert_allclose(averaged(IMAGES[:, :, ::-1]), averaged(IMAGES), atol=1e-6)


def test_flip_averaged_converts_to_tflite():
    import tensorflow as tf

    averaged = flip_averaged(_classifier())
    converter = tf.lite.TFLiteConverter.from_keras_model(averaged)
    interpreter = tf.lite.Interpreter(model_content=converter.convert())
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], IMAGES[:1])
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(out["index"]), averaged(IMAGES[:1]), atol=1e-5)
