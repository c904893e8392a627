import keras
import numpy as np
import pytest

from shared.architectures.text_cnn import TextCNN

TOKENS = np.array([[5, 3, 8, 0, 0, 0], [2, 9, 4, 7, 1, 6]], dtype="int32")
TINY = dict(vocabulary_size=20, embedding_dim=8, kernel_sizes=(2, 3), filters=4, dropout=0.0)


SPECS = {  # run through run_builder_test by test_registry
    "text_cnn": lambda: dict(init_kwargs=dict(num_classes=3, **TINY), x=TOKENS, expected_output_shape=(2, 3),
                             y=np.array([0, 2]), loss=keras.losses.SparseCategoricalCrossentropy()),
}


def test_padding_never_changes_the_output_and_regression_head_is_linear():
    keras.utils.set_random_seed(0)
    model = TextCNN(num_classes=1, head_activation="linear", **TINY)
    short = model(TOKENS[:1, :3]).numpy()
    padded = model(TOKENS[:1]).numpy()
    np.testing.assert_allclose(short, padded, atol=1e-6)
    assert short.shape == (1, 1)
    assert model(np.zeros((1, 4), "int32")).numpy().shape == (1, 1)  # empty text: no NaN
    assert np.isfinite(model(np.zeros((1, 4), "int32")).numpy()).all()


def test_arguments_are_validated():
    with pytest.raises(ValueError, match="kernel_sizes"):
        TextCNN(kernel_sizes=(0,))
    with pytest.raises(ValueError, match="head_activation"):
        TextCNN(head_activation="nope")
