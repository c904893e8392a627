"""Sentiment data (the real VADER / SMS files) and the word tokenizer."""

import numpy as np
import pytest

from apps.nlp.data import POLARITY_CLASSES, VADER_SOURCES, load_texts, sms_messages, vader_sentences
from apps.nlp.configs import SentimentConfig
from shared.data.text import detokenize, vocabulary, vocabulary_size, word_tokenizer
from shared.errors import UserError


def test_vader_sets_are_the_papers_counts():
    rows = vader_sentences()
    counts = {s: sum(r[2] == s for r in rows) for s in VADER_SOURCES}
    assert counts == {"tweets": 4200, "movie_reviews": 10605, "amazon": 3708, "nyt_editorials": 5190}
    scores = np.array([r[1] for r in rows])
    assert scores.min() >= -4 and scores.max() <= 4 and (scores > 0).any() and (scores < 0).any()
    spam = sms_messages()
    assert len(spam) > 4800 and {label for _, label in spam} == {0, 1}


def test_test_split_is_fixed_per_source_and_disjoint():
    a, names, _ = load_texts(SentimentConfig(seed=1))
    b, _, _ = load_texts(SentimentConfig(seed=7))
    assert names == POLARITY_CLASSES
    assert a["test"][0] == b["test"][0]  # never depends on --seed
    assert a["val"][0] != b["val"][0]
    assert not set(a["test"][0]) & set(a["train"][0])
    groups = a["test"][2]
    for source in VADER_SOURCES:  # a fifth of each source (after dropping exact zeros)
        total = sum((s[2] == source).sum() for s in a.values())
        assert abs((groups == source).sum() / total - 0.2) < 0.01
    regression, names, _ = load_texts(SentimentConfig(target="score"))
    assert names == () and regression["train"][1].dtype == np.float32
    assert len(regression["test"][0]) > len(a["test"][0])  # zeros are kept for the score


def test_word_tokenizer_round_trips_unicode_and_empty_text():
    texts = ["Café naïve résumé", "日本 語 text", "the cat sat", "THE CAT!"]
    tok = word_tokenizer(texts, vocabulary_size=50, sequence_length=6)
    ids = np.asarray(tok(np.array(texts + ["", "unseen words here"], dtype=object)))
    assert ids.dtype == np.int32 and ids.shape == (6, 6)
    assert detokenize(tok, ids[:4]) == ["café naïve résumé", "日本 語 text", "the cat sat", "the cat"]
    assert (ids[4] == 0).all()  # empty text: all padding
    assert list(ids[5, :3]) == [1, 1, 1]  # out of vocabulary
    assert vocabulary(tok)[:2] == ["", "[UNK]"] and vocabulary_size(tok) == len(vocabulary(tok))
    long = np.asarray(tok(np.array(["the " * 20], dtype=object)))
    assert long.shape == (1, 6) and (long > 1).all()  # truncated to sequence_length


def test_config_errors_are_one_line():
    with pytest.raises(UserError, match="^--target: expected polarity or score; got 'stars'$"):
        SentimentConfig(target="stars").validate()
    with pytest.raises(UserError, match="--data: expected vader, sms_spam, csv:PATH or tfds:NAME"):
        load_texts(SentimentConfig(data="imdb"))


def test_local_tfds_text_datasets_imdb_and_sst2_shapes(tmp_path):
    import tensorflow_datasets as tfds

    from apps.nlp.data import build_sentiment_data
    from tests.conftest import store_tfds

    imdb = tfds.features.FeaturesDict({"text": tfds.features.Text(),
                                       "label": tfds.features.ClassLabel(names=["neg", "pos"])})
    reviews = lambda n: [{"text": f"review {i} {'great' if i % 2 else 'bad'}", "label": i % 2} for i in range(n)]  # noqa: E731
    store_tfds("tiny_imdb", imdb, {"train": reviews(40), "test": reviews(10)}, tmp_path)
    data = build_sentiment_data(SentimentConfig(data="tfds:tiny_imdb", data_dir=str(tmp_path)))
    assert data.info.class_names == ("neg", "pos") and (data.info.num_train, data.info.num_val) == (36, 4)
    assert data.info.num_test == 10
    text, label = next(iter(data.test))
    assert text.dtype.name == "string" and int(label) in (0, 1)

    sst2 = tfds.features.FeaturesDict({"idx": tfds.features.Scalar(dtype=np.int32), "sentence": tfds.features.Text(),
                                       "label": tfds.features.ClassLabel(num_classes=2)})
    rows = lambda n, label=None: [{"idx": i, "sentence": f"s {i}", "label": i % 2 if label is None else label}  # noqa: E731
                                  for i in range(n)]
    store_tfds("tiny_sst2", sst2, {"train": rows(30), "validation": rows(8), "test": rows(5, -1)}, tmp_path)
    data = build_sentiment_data(SentimentConfig(data="tfds:tiny_sst2", data_dir=str(tmp_path)))
    assert data.info.num_test == 8  # GLUE's test labels are -1: validation is the test split
    assert data.info.class_names == ("0", "1")
    with pytest.raises(UserError, match=r"^--data tfds:not_here --data-dir .*: cannot load a prepared dataset"):
        build_sentiment_data(SentimentConfig(data="tfds:not_here", data_dir=str(tmp_path)))
