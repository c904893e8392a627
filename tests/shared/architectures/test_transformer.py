import keras
import numpy as np
import pytest

from shared.architectures.transformer import (
    TransformerDecoderLM,
    TransformerDualEncoder,
    TransformerEncoderClassifier,
    TransformerSeq2Seq,
)
from tests.shared.architectures.harness import run_builder_test

TINY = dict(num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
TOKENS = np.array([[5, 3, 8, 0, 0, 0], [2, 9, 4, 7, 1, 6]], dtype="int32")
TARGETS = np.array([[1, 4, 2, 6, 0], [3, 3, 5, 2, 7]], dtype="int32")

SPECS = {
    "transformer_classifier": lambda: dict(
        init_kwargs=dict(vocabulary_size=20, sequence_length=8, num_classes=3, dropout=0.0, **TINY),
        x=TOKENS,
        expected_output_shape=(2, 3),
        y=np.array([0, 2]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
    "transformer_lm": lambda: dict(
        init_kwargs=dict(vocabulary_size=20, sequence_length=8, dropout=0.0, **TINY),
        x=TOKENS,
        expected_output_shape=(2, 6, 20),
        y=np.roll(TOKENS, -1, axis=1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ),
    "transformer_seq2seq": lambda: dict(
        init_kwargs=dict(encoder_vocabulary_size=20, decoder_vocabulary_size=12, sequence_length=8,
                         dropout=0.0, **TINY),
        x={"encoder_tokens": TOKENS, "decoder_tokens": TARGETS},
        expected_output_shape=(2, 5, 12),
        y=np.roll(TARGETS, -1, axis=1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ),
    "transformer_dual_encoder": lambda: dict(
        init_kwargs=dict(vocabulary_size=20, sequence_length=8, embedding_dim=4, dropout=0.0, **TINY),
        x={"context_tokens": TOKENS, "reply_tokens": TARGETS},
        expected_output_shape=(2, 2),
        y=np.array([0, 1]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builder(name):
    cls = {"transformer_classifier": TransformerEncoderClassifier,
           "transformer_lm": TransformerDecoderLM,
           "transformer_seq2seq": TransformerSeq2Seq,
           "transformer_dual_encoder": TransformerDualEncoder}[name]
    run_builder_test(cls, **SPECS[name]())


def _changed_after(tokens, t, vocab, seed=0):
    """Copy of `tokens` with every (non-padding) position after `t` replaced."""
    rng = np.random.default_rng(seed)
    out = tokens.copy()
    out[:, t + 1:] = rng.integers(1, vocab, size=out[:, t + 1:].shape)
    return out


def test_lm_is_causal():
    model = TransformerDecoderLM(vocabulary_size=30, sequence_length=10, num_layers=2,
                                 num_heads=2, hidden_dim=16, intermediate_dim=32)
    tokens = np.array([[4, 9, 2, 7, 11, 3, 8, 5]], dtype="int32")
    base = np.asarray(model(tokens))
    for t in (0, 3, 6):
        changed = np.asarray(model(_changed_after(tokens, t, 30, seed=t)))
        np.testing.assert_allclose(base[:, : t + 1], changed[:, : t + 1], atol=1e-5)
        assert not np.allclose(base[:, t + 1:], changed[:, t + 1:], atol=1e-5)


def test_seq2seq_decoder_is_causal_and_sees_encoder():
    model = TransformerSeq2Seq(encoder_vocabulary_size=30, decoder_vocabulary_size=25,
                               sequence_length=10, num_layers=2, num_heads=2, hidden_dim=16,
                               intermediate_dim=32)
    enc = np.array([[3, 14, 15, 9, 2]], dtype="int32")
    dec = np.array([[1, 5, 7, 19, 4, 6]], dtype="int32")
    base = np.asarray(model({"encoder_tokens": enc, "decoder_tokens": dec}))
    for t in (0, 2, 4):
        changed = np.asarray(model({"encoder_tokens": enc,
                                    "decoder_tokens": _changed_after(dec, t, 25, seed=t)}))
        np.testing.assert_allclose(base[:, : t + 1], changed[:, : t + 1], atol=1e-5)
        assert not np.allclose(base[:, t + 1:], changed[:, t + 1:], atol=1e-5)
    # Cross-attention: the encoder input affects every decoder position.
    other = np.asarray(model({"encoder_tokens": enc[:, ::-1].copy(), "decoder_tokens": dec}))
    assert not np.allclose(base[:, 0], other[:, 0], atol=1e-5)


def test_seq2seq_respects_encoder_padding():
    model = TransformerSeq2Seq(encoder_vocabulary_size=30, decoder_vocabulary_size=25,
                               sequence_length=12, num_layers=2, num_heads=2, hidden_dim=16,
                               intermediate_dim=32)
    dec = np.array([[1, 5, 7, 19]], dtype="int32")
    short = np.array([[3, 14, 15, 9]], dtype="int32")
    padded = np.array([[3, 14, 15, 9, 0, 0, 0, 0]], dtype="int32")
    a = model({"encoder_tokens": short, "decoder_tokens": dec})
    b = model({"encoder_tokens": padded, "decoder_tokens": dec})
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_classifier_respects_padding():
    model = TransformerEncoderClassifier(vocabulary_size=30, sequence_length=12, num_classes=4,
                                         **TINY)
    a = model(np.array([[3, 14, 15, 9]], dtype="int32"))
    b = model(np.array([[3, 14, 15, 9, 0, 0, 0]], dtype="int32"))
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.sum(a, axis=-1), 1.0, atol=1e-5)


def test_lm_padding_does_not_change_real_positions():
    model = TransformerDecoderLM(vocabulary_size=30, sequence_length=12, **TINY)
    a = np.asarray(model(np.array([[3, 14, 15, 9]], dtype="int32")))
    b = np.asarray(model(np.array([[3, 14, 15, 9, 0, 0]], dtype="int32")))
    np.testing.assert_allclose(a, b[:, :4], atol=1e-5)


def test_variants_round_trip():
    from shared.architectures import _BUILDERS, _VARIANTS

    for variant, (arch, kwargs) in _VARIANTS.items():
        if arch.startswith("transformer") and variant.endswith("_tiny"):
            model = _BUILDERS.get(arch)(**kwargs)
            assert type(model).from_config(model.get_config()).get_config() == model.get_config()


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (TransformerEncoderClassifier, dict(hidden_dim=10, num_heads=4), "divisible"),
        (TransformerEncoderClassifier, dict(num_classes=0), "num_classes"),
        (TransformerDecoderLM, dict(vocabulary_size=0), "vocabulary_size"),
        (TransformerDecoderLM, dict(dropout=1.0), "dropout"),
        (TransformerSeq2Seq, dict(decoder_vocabulary_size=-1), "decoder_vocabulary_size"),
    ],
)
def test_invalid_arguments(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_classifier_on_an_all_padding_row_is_finite():
    """An empty text tokenizes to all padding; the masked mean must not divide 0 by 0."""
    keras.utils.set_random_seed(0)
    model = TransformerEncoderClassifier(vocabulary_size=20, sequence_length=8, num_classes=2, dropout=0.0, **TINY)
    out = np.asarray(model(np.zeros((2, 6), "int32")))
    assert np.isfinite(out).all() and np.allclose(out.sum(-1), 1.0)


def test_seq2seq_trim_padding_cuts_only_all_padding_columns():
    kwargs = dict(encoder_vocabulary_size=20, decoder_vocabulary_size=12, sequence_length=8, dropout=0.0, **TINY)
    keras.utils.set_random_seed(1)
    trimmed = TransformerSeq2Seq(trim_padding=True, **kwargs)
    plain = TransformerSeq2Seq(**kwargs)
    plain.set_weights(trimmed.get_weights())
    padded = {"encoder_tokens": np.pad(TOKENS, [(0, 0), (0, 2)]), "decoder_tokens": np.pad(TARGETS[:, :3], [(0, 0), (0, 4)])}
    out = np.asarray(trimmed(padded))
    assert out.shape == (2, 3, 12)  # the decoder's 4 padding columns cut; the encoder's too
    np.testing.assert_allclose(out, np.asarray(plain(padded))[:, :3], atol=1e-5)


def test_dual_encoder_scores_are_scaled_cosines_of_its_sides():
    model = TransformerDualEncoder(vocabulary_size=20, sequence_length=8, embedding_dim=4, dropout=0.0, **TINY)
    scores = np.asarray(model({"context_tokens": TOKENS, "reply_tokens": TARGETS}))
    context, reply = (np.asarray(model.side_model(side)(x)) for side, x in (("context", TOKENS), ("reply", TARGETS)))
    np.testing.assert_allclose(np.linalg.norm(context, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(scores, 20.0 * context @ reply.T, atol=1e-4)
