"""Pretrained word vectors for the word-level text tasks (`--word-vectors`): `english`, word2vec
(skip-gram with negative sampling, gensim) trained once on the English library
(`shared.data.english_library`: 6.7 M words, about 90 s on 2 cores) into the data cache, or a
user's file in the word2vec / GloVe text format (`.bin`: word2vec binary).

Words are standardized as Keras `TextVectorization` does by default (lower case, ASCII
punctuation stripped, split on whitespace), so a tokenizer's words look the vectors up as is.
The vectors initialise a model's word embedding (`embedding_matrix`), and their most frequent
words extend a task's vocabulary (`extended_vocabulary`): a word the task's training text never
had still gets its pretrained vector, which is what carries a model to other text.
"""

import functools
import os
import re

import numpy as np

from shared.errors import UserError

ENGLISH = "english"
DIM = 128  # the `text_cnn` embedding width
EPOCHS = 5
_PUNCTUATION = re.compile(r"""[!"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']""")  # TextVectorization's default strip


def standardized_words(text):
    """`text` as `TextVectorization(standardize="lower_and_strip_punctuation")` splits it."""
    return _PUNCTUATION.sub("", text.lower()).split()


class WordVectors:
    """Words (most frequent first) and their vectors float32 [words, dim]; `source` says whence."""

    def __init__(self, words, vectors, source):
        self.words, self.vectors, self.source = list(words), np.asarray(vectors, np.float32), source
        self.index = {w: i for i, w in enumerate(self.words)}

    @property
    def dim(self):
        return int(self.vectors.shape[1])

    def save(self, path):
        """Atomically, as an .npz of `words` and `vectors`."""
        from shared.export.atomic import atomic_path

        with atomic_path(path) as part, open(part, "wb") as f:
            np.savez(f, words=np.asarray(self.words, dtype=str), vectors=self.vectors)

    @classmethod
    def load(cls, path):
        with np.load(path) as f:
            return cls([str(w) for w in f["words"]], f["vectors"], path)


def train_word2vec(documents, dim=DIM, epochs=EPOCHS, min_count=3, seed=0):
    """`WordVectors` of word2vec (skip-gram, window 5, negative sampling) over `documents` (strings)."""
    from gensim.models import Word2Vec

    sentences = [standardized_words(text) for text in documents]
    model = Word2Vec(sentences=sentences, vector_size=dim, window=5, min_count=min_count, sg=1, epochs=epochs,
                     workers=os.cpu_count() or 1, seed=seed)
    return WordVectors(model.wv.index_to_key, model.wv.vectors, "word2vec")


def english_word_vectors(log=print):
    """The English library's word vectors, trained into the data cache on first use."""
    from shared.data.cache import data_cache

    path = data_cache("word_vectors", f"english_word2vec_{DIM}.npz")
    if not os.path.isfile(path):
        from shared.data.english_library import library_documents

        documents = [text for _, text in library_documents()]
        log(f"Training word vectors on the English library ({len(documents):,} documents; once, about 2 minutes) …")
        train_word2vec(documents).save(path)
    vectors = WordVectors.load(path)
    vectors.source = f"word2vec on the English library ({len(vectors.words):,} words, {path})"
    return vectors


def read_vector_file(path):
    """A word2vec / GloVe file (text; `.bin` binary; the GloVe header-less text too)."""
    from gensim.models import KeyedVectors

    if not os.path.isfile(path):
        raise UserError(f"--word-vectors {path}: no such file (expected 'english' or a word2vec / GloVe file)")
    binary = path.endswith(".bin")
    try:
        if binary:
            kv = KeyedVectors.load_word2vec_format(path, binary=True)
        else:
            with open(path, encoding="utf-8", errors="replace") as f:
                first = f.readline().split()
            header = len(first) == 2 and all(t.isdigit() for t in first)
            kv = KeyedVectors.load_word2vec_format(path, binary=False, no_header=not header)
    except Exception as e:  # a file of another format
        raise UserError(f"--word-vectors {path}: not a word2vec / GloVe file ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:120] if str(e) else ''})") from None
    return WordVectors(kv.index_to_key, kv.vectors, path)


@functools.lru_cache(maxsize=2)
def load_word_vectors(spec, log=print):
    """`--word-vectors`: `english` or a file path; read once per process (a chat run's data,
    calibration, report and export each ask)."""
    return english_word_vectors(log) if spec == ENGLISH else read_vector_file(spec)


def extended_vocabulary(own_words, vectors, size):
    """`own_words` (a task's, most frequent first), then the vectors' most frequent other words
    (standardized as the tokenizer does), `size` words in all."""
    out, seen = [], set()
    for word in [*own_words, *vectors.words]:
        if len(out) >= size:
            break
        if word and word not in seen and word == " ".join(standardized_words(word)):
            out.append(word)
            seen.add(word)
    return out


def embedding_matrix(vocabulary, vectors, seed=0):
    """float32 [len(vocabulary), dim]: each word's vector (looked up standardized: a cased
    WordPiece vocabulary's "Hello" takes "hello"'s; a "##" continuation piece has none); padding
    ("") zeros; a word without one (and `[UNK]`) drawn at the vectors' own scale. Returns
    (matrix, words found)."""
    rng = np.random.default_rng(seed)
    scale = float(vectors.vectors.std())
    matrix = rng.normal(0.0, scale, (len(vocabulary), vectors.dim)).astype(np.float32)
    found = 0
    for i, word in enumerate(vocabulary):
        key = standardized_words(word) if not word.startswith("##") else []
        row = vectors.index.get(key[0]) if len(key) == 1 else None
        if row is not None:
            matrix[i] = vectors.vectors[row]
            found += 1
        elif word == "":
            matrix[i] = 0.0
    return matrix, found
