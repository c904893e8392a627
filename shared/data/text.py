"""Text shared by every text task: a word tokenizer fitted on a task's own training text,
as a Keras model (strings in, token ids out) that runs in tf.data and inside exports.

Why Keras `TextVectorization` (lower case, punctuation stripped, whitespace split): its ops
are core TensorFlow (StringLower, RegexReplace, StringSplit, a static hash table), so an
exported SavedModel runs with plain TensorFlow; keras-hub's WordPiece, BPE and SentencePiece
tokenizers need tensorflow-text's ops registered in the caller's process (measured: a
fresh TF process fails "Op type not registered 'SentencepieceTokenizeOp'"). It adapts on
20k sentences in 0.5 s and tokenizes ≈140k sentences/s in tf.data (measured). Its ops have
no TFLite builtins, so a text model's `.tflite` takes token ids and `vocabulary.txt` (id =
line number) is written beside it.

Ids: 0 = padding, 1 = out of vocabulary, then words by training-text frequency.
"""

import os

PAD, OOV = 0, 1
VOCABULARY_FILE = "vocabulary.txt"


def word_tokenizer(texts, vocabulary_size, sequence_length, name="tokenizer", words=None):
    """`text` string [N] -> `token_ids` int32 [N, sequence_length] (truncated, 0-padded), with
    the `vocabulary_size` most frequent words of `texts`, or the given `words` (ids 2, 3, …):
    a text task's `DataInfo.preprocess`."""
    import keras
    import tensorflow as tf

    if words is not None:
        vectorize = keras.layers.TextVectorization(vocabulary=list(words), output_sequence_length=sequence_length,
                                                   name=f"{name}_vectorize")
    else:
        vectorize = keras.layers.TextVectorization(max_tokens=vocabulary_size, output_sequence_length=sequence_length,
                                                   name=f"{name}_vectorize")
        vectorize.adapt(tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(1024))
    text = keras.Input(shape=(), dtype="string", name="text")
    token_ids = keras.layers.Identity(name="token_ids", dtype="int32")(keras.ops.cast(vectorize(text), "int32"))
    return keras.Model(text, token_ids, name=name)


def _vectorizer(preprocess):
    import keras

    return next(l for l in preprocess.layers if isinstance(l, keras.layers.TextVectorization))


def vocabulary(preprocess):
    """The words of a tokenizer model, by id ("" = padding, "[UNK]" = out of vocabulary)."""
    return [str(w) for w in _vectorizer(preprocess).get_vocabulary()]


def vocabulary_size(preprocess):
    """The token-id range of a tokenizer model."""
    return int(_vectorizer(preprocess).vocabulary_size())


def detokenize(preprocess, token_ids):
    """Token ids [N, L] -> the words they stand for, space-joined, padding dropped."""
    words = vocabulary(preprocess)
    return [" ".join(words[i] for i in row if i != PAD) for row in token_ids]


def write_vocabulary(preprocess, directory):
    """Writes `vocabulary.txt` (one word per line, line number = id) into `directory`; returns its path."""
    from shared.export.atomic import atomic_write_text

    path = os.path.join(directory, VOCABULARY_FILE)
    atomic_write_text(path, "\n".join(vocabulary(preprocess)) + "\n")
    return path


def load_text(text, info=None):
    """One raw `text` input from the command line (UTF-8 bytes)."""
    return str(text).encode("utf-8")
