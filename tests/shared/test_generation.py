"""Byte text, cached generation and scoring on small untrained LMs (exact properties, no training)."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from shared import architectures
from shared.data import byte_text
from shared.generation import (IncrementalLM, SignatureSampler, context_window, continuation_text, generate_ids,
                               generate_text, score_texts, sequence_log_prob)

TEXTS = ["héllo wörld ✓ 日本語 😀", "", "plain ascii", "tab\tand\nnewline"]


def test_byte_text_round_trips_unicode_and_empty_strings():
    for text in TEXTS:
        ids = byte_text.encode(text)
        assert ids[0] == byte_text.END and byte_text.decode(ids) == text
    ids = byte_text.encode_graph(tf.constant(TEXTS))
    assert ids.to_list() == [byte_text.encode(t).tolist() for t in TEXTS]
    assert [t.decode("utf-8") for t in byte_text.decode_graph(ids).numpy()] == TEXTS
    assert byte_text.num_chars_graph(tf.constant(TEXTS)).numpy().tolist() == [len(t) for t in TEXTS]
    assert byte_text.encode_graph(tf.constant(["", ""])).to_list() == [[byte_text.END], [byte_text.END]]
    # invalid UTF-8 (a sampled byte soup) decodes with replacement characters, never fails
    assert byte_text.decode_graph(tf.constant([[byte_text.END, 0xC3, 65, 0]])).numpy()[0].decode() == "\ufffdA"


@pytest.fixture(scope="module", params=["transformer", "lstm"])
def lm(request):
    keras.utils.set_random_seed(3)
    if request.param == "transformer":
        return architectures.build("transformer_lm_tiny", vocabulary_size=257, sequence_length=48)
    return architectures.build("lstm_lm_tiny")


def _greedy():
    return SignatureSampler(temperature=0.0)


def test_cached_and_uncached_greedy_generation_are_identical(lm):
    prompts = tf.constant(["The ", "A longer prompt, of two parts", ""])
    cached = generate_text(lm, prompts, 16, _greedy(), cached=True).numpy()
    uncached = generate_text(lm, prompts, 16, _greedy(), cached=False).numpy()
    assert cached.tolist() == uncached.tolist()
    assert all(c.startswith(p) for c, p in zip(cached, prompts.numpy()))
    assert generate_text(lm, prompts, 16, _greedy()).numpy().tolist() == cached.tolist()  # deterministic


def test_seeded_sampling_repeats_and_top_k_1_is_greedy(lm):
    prompts = tf.constant(["Once upon", "x"])
    draw = lambda seed: generate_text(lm, prompts, 24, SignatureSampler(1.0, 0, 1.0, seed)).numpy().tolist()  # noqa
    assert draw(5) == draw(5) and draw(5) != draw(6)
    greedy = generate_text(lm, prompts, 24, _greedy()).numpy().tolist()
    assert generate_text(lm, prompts, 24, SignatureSampler(1.0, 1, 1.0, 9)).numpy().tolist() == greedy
    assert generate_text(lm, prompts, 24, SignatureSampler(1.0, 0, 1e-6, 9)).numpy().tolist() == greedy


def test_keras_hub_samplers_drive_the_cache_and_stream(lm):
    ids = byte_text.encode_graph(tf.constant(["Hello"]))
    seen = []
    out, lengths, new = generate_ids(lm, ids, 8, keras_hub.samplers.GreedySampler(),
                                     on_token=lambda ids, index: seen.append(index))
    assert int(lengths[0]) == 6 and int(new[0]) <= 8
    assert seen[-1] is None and [int(i) for i in seen[:-1]] == list(range(6, 6 + len(seen) - 1))
    greedy = continuation_text(*generate_ids(lm, ids, 8, _greedy())).numpy()
    assert continuation_text(out, lengths, new).numpy().tolist() == greedy.tolist()
    beams = generate_ids(lm, byte_text.encode_graph(tf.constant(["Hello", "Hi"])), 8,
                         keras_hub.samplers.BeamSampler(num_beams=3))
    assert continuation_text(*beams).shape == (2,)


def _manual_log_prob(model, ids, window):
    """Each next token's log-prob from its own forward pass over the (windowed) history."""
    total = 0.0
    for t in range(1, len(ids)):
        start = 0 if window is None or t <= window else (t - window // 2 - 1) // (window // 2) * (window // 2)
        history = ids[start:t]
        logits = model(history[None], training=False)[0, -1]
        total += float(tf.nn.log_softmax(logits)[ids[t]])
    return total


def test_score_is_the_sum_of_next_token_log_probs(lm):
    window = context_window(lm)
    texts = ["short text", "a" * 30 + "bcd" * 20, ""]  # the second is longer than the transformer's window
    scores = score_texts(lm, tf.constant(texts), window)
    for text, log_prob, chars in zip(texts, scores["log_prob"].numpy(), scores["num_chars"].numpy()):
        ids = byte_text.encode(text)
        assert chars == len(text)
        assert log_prob == pytest.approx(_manual_log_prob(lm, ids, window), rel=1e-4, abs=1e-4)
    assert scores["log_prob"].numpy()[2] == 0.0  # an empty text has no tokens to predict
    padded = np.zeros((1, 20), np.int32)
    padded[0, :11] = byte_text.encode("short text")
    assert float(sequence_log_prob(lm, tf.constant(padded), window)[0]) == pytest.approx(
        float(scores["log_prob"][0]), rel=1e-5)  # padding changes nothing


def test_prompts_beyond_the_context_are_cut_to_their_last_tokens():
    lm = architectures.build("transformer_lm_tiny", vocabulary_size=257, sequence_length=16)
    assert IncrementalLM.of(lm).max_length == 16
    ids, lengths, new = generate_ids(lm, byte_text.encode_graph(tf.constant(["x" * 40])), 6, _greedy())
    assert int(lengths[0]) == 10 and int(new[0]) <= 6 and ids.shape[1] == 16
    with pytest.raises(ValueError, match="not a causal LM"):
        IncrementalLM.of(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]))
