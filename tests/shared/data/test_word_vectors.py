"""Word vectors: word2vec trained on real text, users' GloVe / word2vec files, the vocabulary
they extend and the embedding they initialise."""

import numpy as np
import pytest

from shared.data import word_vectors as wv
from shared.errors import UserError


def test_words_are_standardized_as_the_keras_tokenizer_does():
    import tensorflow as tf

    from shared.data.text import vocabulary, word_tokenizer

    text = "Don't PANIC: the U.S.-made towel (42%) isn't… «wet»"
    keras_words = vocabulary(word_tokenizer([text], 100, 16))[2:]
    assert sorted(wv.standardized_words(text)) == sorted(keras_words)
    assert wv.standardized_words(text)[:2] == ["dont", "panic"]
    ids = word_tokenizer([text], 100, 16)(tf.constant([text])).numpy()[0]
    assert (ids[:8] > 1).all() and (ids[8:] == 0).all()  # 8 known words, no [UNK], then padding


def test_word2vec_on_real_text_places_words_of_like_use_together(tmp_path):
    from shared.data.corpus import pydoc_paragraphs

    documents = [text for _, text in pydoc_paragraphs()]  # the Python reference topics, 0.4 MB
    vectors = wv.train_word2vec(documents, dim=32, epochs=3, min_count=5)
    assert vectors.dim == 32 and len(vectors.words) > 1000 and vectors.vectors.shape == (len(vectors.words), 32)
    assert vectors.words[0] == "the"  # most frequent first
    unit = vectors.vectors / np.linalg.norm(vectors.vectors, axis=1, keepdims=True)
    cos = lambda a, b: float(unit[vectors.index[a]] @ unit[vectors.index[b]])  # noqa: E731
    # number words are used alike in the reference; a number and a verb of the grammar are not
    assert cos("integer", "float") > cos("integer", "yield") and cos("integer", "float") > 0.4
    path = str(tmp_path / "v.npz")
    vectors.save(path)
    again = wv.WordVectors.load(path)
    assert again.words == vectors.words and np.array_equal(again.vectors, vectors.vectors)


def test_users_glove_and_word2vec_files_are_read_and_bad_ones_refused(tmp_path):
    rows = {"good": [0.5, 1.0, -0.25], "bad": [-0.5, -1.0, 0.25], "Film": [0.0, 0.1, 0.2]}
    glove = tmp_path / "glove.3d.txt"  # GloVe: no header line
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in rows.items()))
    word2vec = tmp_path / "w2v.txt"
    word2vec.write_text(f"3 3\n{glove.read_text()}")
    for path in (glove, word2vec):
        vectors = wv.load_word_vectors(str(path))
        assert vectors.words == ["good", "bad", "Film"] and vectors.dim == 3
        assert np.allclose(vectors.vectors[1], rows["bad"])
    bad = tmp_path / "notes.txt"
    bad.write_text("these are not\nvectors at all\n")
    with pytest.raises(UserError, match="not a word2vec / GloVe file"):
        wv.load_word_vectors(str(bad))
    with pytest.raises(UserError, match="no such file"):
        wv.load_word_vectors(str(tmp_path / "missing.txt"))


def test_vocabulary_extends_with_the_vectors_words_and_the_embedding_takes_their_vectors():
    vectors = wv.WordVectors(["the", "superb", "Awful", "awful", "dreadful"], np.arange(15.0).reshape(5, 3), "t")
    words = wv.extended_vocabulary(["film", "the", "plot"], vectors, 5)
    assert words == ["film", "the", "plot", "superb", "awful"]  # not standardized: "Awful" left out
    vocabulary = ["", "[UNK]", *words]
    matrix, found = wv.embedding_matrix(vocabulary, vectors)
    assert matrix.shape == (7, 3) and matrix.dtype == np.float32 and found == 3
    assert np.array_equal(matrix[0], np.zeros(3))  # padding
    assert np.array_equal(matrix[3], vectors.vectors[0]) and np.array_equal(matrix[6], vectors.vectors[3])
    assert not np.array_equal(matrix[2], np.zeros(3))  # "film": no vector, drawn at the vectors' scale
    pieces, found = wv.embedding_matrix(["[PAD]", "Superb", "##superb", "superb!"], vectors)  # cased WordPiece
    assert found == 2 and np.array_equal(pieces[1], vectors.vectors[1]) and np.array_equal(pieces[3], pieces[1])
    assert not np.array_equal(pieces[2], pieces[1])
