import keras
import numpy as np
import pytest

from shared import architectures
from shared.errors import UserError
from shared.explain.tokens import token_integrated_gradients

IDS = np.array([[5, 7, 9, 0, 0, 0], [3, 4, 0, 0, 0, 0]], "int32")


@pytest.mark.parametrize("variant, kwargs", [
    ("text_cnn_tiny", {}),
    ("bilstm_classifier", dict(units=(4,), embedding_dim=4)),
    ("transformer_classifier_tiny", dict(sequence_length=6)),
])
def test_attributions_are_complete_and_zero_on_padding(variant, kwargs):
    keras.utils.set_random_seed(0)
    net = architectures.build(variant, vocabulary_size=20, **kwargs)
    tokens = keras.Input(shape=(6,), dtype="int32", name="token_ids")
    model = keras.Model(tokens, net(tokens))  # the builder nested, as in a task model
    attributions, classes, at_text, at_baseline = token_integrated_gradients(model, IDS, steps=64)
    assert attributions.shape == IDS.shape and (attributions[IDS == 0] == 0).all()
    np.testing.assert_array_equal(classes, np.asarray(model(IDS)).argmax(-1))
    np.testing.assert_allclose(attributions.sum(1), at_text - at_baseline, atol=2e-3)
    assert np.abs(attributions).max() > 0


def test_a_model_without_embedding_is_refused():
    inputs = keras.Input(shape=(6,))
    with pytest.raises(UserError, match="no token embedding"):
        token_integrated_gradients(keras.Model(inputs, keras.layers.Dense(2)(inputs)), IDS)
