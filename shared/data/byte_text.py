"""Byte-level text for language models: lossless for any UTF-8 text, with core TF ops only.

Why bytes for generation: the 256 byte values cover every
text, so nothing is ever out of vocabulary, `detokenize(tokenize(t)) == t` exactly, and
bits per character are exact; its graph ops (`StringsByteSplit`, `DecodeRaw`,
`UnicodeTranscode`) are core TensorFlow, so a SavedModel that tokenizes and detokenizes
inside runs with plain TF (keras-hub's WordPiece/BPE/SentencePiece need tensorflow-text's
ops registered in the caller's process). The graph functions below use the ops of
keras-hub's `ByteTokenizer`, written out: in keras-hub 0.32 that tokenizer returns Python
lists when called eagerly, and a tokenizer must behave the same in and out of a graph. The cost is longer sequences (≈1 token per
English character) than subwords.

Ids: byte `b` is id `b` (0 = the NUL byte doubles as padding; NUL is stripped from text),
`END` = 256 separates documents: a document is `END, bytes…`, and a generation stops at END.
"""

import numpy as np

END = 256
VOCABULARY_SIZE = 257


def encode(text):
    """`END` followed by the UTF-8 bytes of `text` (NUL bytes dropped), as int32 [len + 1]."""
    data = np.frombuffer(text.encode("utf-8"), np.uint8)
    return np.concatenate([[END], data[data != 0]]).astype(np.int32)


def decode(ids):
    """The text of byte ids (END, padding and ids beyond a byte dropped; invalid UTF-8 replaced)."""
    ids = np.asarray(ids)
    return bytes(ids[(ids > 0) & (ids < 256)].astype(np.uint8).tolist()).decode("utf-8", errors="replace")


def encode_graph(texts):
    """`END` + bytes of each string of `texts` (string [N]) as a ragged int32 [N, None]."""
    import tensorflow as tf

    one_byte_strings = tf.strings.bytes_split(texts)
    ids = tf.ragged.map_flat_values(lambda b: tf.cast(tf.reshape(tf.io.decode_raw(b, tf.uint8), [-1]), tf.int32),
                                    one_byte_strings)  # reshape, not squeeze: all-empty batches too
    ids = tf.ragged.boolean_mask(ids, tf.not_equal(ids, 0))
    start = tf.fill([tf.shape(texts)[0], 1], tf.constant(END, tf.int32))
    return tf.concat([tf.RaggedTensor.from_tensor(start), ids], axis=1)


def decode_graph(ids):
    """Strings of byte ids [N, L] (dense or ragged): END, padding and non-byte ids dropped,
    invalid UTF-8 replaced by U+FFFD."""
    import tensorflow as tf

    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(ids)
    ids = tf.ragged.boolean_mask(ids, (ids > 0) & (ids < 256))
    table = tf.constant([bytes([b]) for b in range(256)])
    joined = tf.strings.reduce_join(tf.gather(table, ids), axis=-1)
    return tf.strings.unicode_transcode(joined, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD)


def num_chars_graph(texts):
    """Unicode characters per string (what bits per character divides by)."""
    import tensorflow as tf

    return tf.strings.length(texts, unit="UTF8_CHAR")
