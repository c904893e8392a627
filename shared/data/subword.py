"""WordPiece subwords whose tokenizer and detokenizer are core TensorFlow ops, so a
SavedModel that reads and writes text runs with plain TF.

The vocabulary is learned offline with keras-hub's `compute_word_piece_vocabulary` (the BERT
learner of tensorflow-text). Tokenizing is WordPiece's greedy longest-match-first, the
algorithm of keras-hub's `WordPieceTokenizer`, written out here with core ops
(`UnicodeSplit`, a static hash table, a bounded loop): that tokenizer needs
tensorflow-text's ops registered in the caller's process, which plain TF lacks. A test
checks the two give the same ids.

Words are split on whitespace only, so punctuation joins its word as `##` pieces and
`detokenize(tokenize(t))` gives `t` back with its spacing (whitespace runs made one
space), for any text whose characters the vocabulary has. A word with a character it lacks,
or of more than `MAX_WORD_CHARS` characters, is one `[UNK]`.

Ids: 0 `[PAD]`, 1 `[UNK]`, 2 `[START]`, 3 `[END]`, then the learned pieces.
"""

import os

import keras

RESERVED = ("[PAD]", "[UNK]", "[START]", "[END]")
PAD, UNK, START, END = range(4)
SUFFIX = "##"
MAX_WORD_CHARS = 100
# words the learner reads: its memory grows with the square of a word's length (the help
# pages' paths and URLs took gettext+help:es to an 11.8 GB peak; 1.0 GB without the words
# above 30 characters, 3,811 of 3,815 learned pieces the same). Longer words still tokenize.
LEARN_MAX_WORD_CHARS = 30


def learn_vocabulary(texts, vocabulary_size, reserved=()):
    """The WordPiece vocabulary (a list, `RESERVED` then `reserved` first) of at most
    `vocabulary_size` pieces learned from `texts` (whitespace-split words of at most
    `LEARN_MAX_WORD_CHARS` characters, case and accents kept); a reserved token is one piece
    when it stands alone as a word (`[SEP]`)."""
    import keras_hub
    import tensorflow as tf

    def short_words(batch):
        words = tf.strings.split(batch)
        return tf.ragged.boolean_mask(words, tf.strings.length(words, "UTF8_CHAR") <= LEARN_MAX_WORD_CHARS)

    words = tf.data.Dataset.from_tensor_slices(tf.constant(list(texts), tf.string)).batch(1024).map(short_words)
    return list(keras_hub.tokenizers.compute_word_piece_vocabulary(
        words, vocabulary_size, lowercase=False, strip_accents=False, split=False, suffix_indicator=SUFFIX,
        reserved_tokens=list(RESERVED) + list(reserved)))


def cached_vocabulary(texts, vocabulary_size, reserved=()):
    """`learn_vocabulary`, kept in the data cache by the texts' content: a run's evaluation,
    export and later runs on the same data get it at once."""
    import hashlib
    import json

    from shared.data.cache import data_cache
    from shared.export.atomic import atomic_write_text

    texts = list(texts)
    learner = {"max_word_chars": LEARN_MAX_WORD_CHARS}  # a vocabulary learned otherwise is not reused
    key = hashlib.sha1(json.dumps([texts, vocabulary_size, list(reserved), learner]).encode("utf-8")).hexdigest()
    path = data_cache("vocabularies", f"wordpiece-{key[:20]}.json")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    vocabulary = learn_vocabulary(texts, vocabulary_size, reserved)
    atomic_write_text(path, json.dumps(vocabulary, ensure_ascii=False))
    return vocabulary


@keras.saving.register_keras_serializable(package="dlsuite")
class WordPieceTokenizer(keras.layers.Layer):
    """`text` string [N] -> ragged int32 [N, None] WordPiece ids (see the module doc), or with
    `sequence_length`, int32 [N, sequence_length] ids, truncated and 0-padded, with
    `[START]`/`[END]` around them when `add_start_end`."""

    def __init__(self, vocabulary, sequence_length=None, add_start_end=False, **kwargs):
        kwargs.pop("trainable", None), kwargs.pop("dtype", None)  # fixed: a saved config carries them
        super().__init__(trainable=False, dtype="int32", **kwargs)
        self.vocabulary, self.sequence_length, self.add_start_end = list(vocabulary), sequence_length, add_start_end
        if list(self.vocabulary[:len(RESERVED)]) != list(RESERVED):
            raise ValueError(f"`vocabulary` must start with {RESERVED}. Received: {self.vocabulary[:4]}")
        pieces = [p[len(SUFFIX):] if p.startswith(SUFFIX) else p for p in self.vocabulary[len(RESERVED):]]
        self.max_piece_chars = max([len(p) for p in pieces] or [1])
        import tensorflow as tf

        with tf.init_scope():  # a resource made eagerly, tracked by the layer (tf.data and SavedModel capture it)
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant(self.vocabulary[len(RESERVED):]),
                                                    tf.range(len(RESERVED), len(self.vocabulary), dtype=tf.int32)),
                default_value=-1)

    def call(self, text):
        import tensorflow as tf

        ids = wordpiece_ids(tf.convert_to_tensor(text), self.table, self.max_piece_chars)
        if self.sequence_length is not None:  # truncated so that [START]/[END] still fit
            ids = ids[:, :self.sequence_length - (2 if self.add_start_end else 0)]
        if self.add_start_end:
            ends = tf.ones([ids.nrows(), 1], tf.int32)
            ids = tf.concat([ends * START, ids, ends * END], axis=1)
        return ids if self.sequence_length is None else ids.to_tensor(PAD, shape=[None, self.sequence_length])

    def compute_output_spec(self, text):
        return keras.KerasTensor((text.shape[0], self.sequence_length), dtype="int32")

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary, "sequence_length": self.sequence_length,
                "add_start_end": self.add_start_end}


def wordpiece_ids(text, table, max_piece_chars):
    """Greedy longest-match-first WordPiece of string [N] `text` with `table` (piece -> id,
    -1 when absent): ragged int32 [N, None]."""
    import tensorflow as tf

    words = tf.strings.split(text)  # [N, W]
    chars = tf.strings.unicode_split(words.flat_values, "UTF-8", errors="replace")  # [T, C]
    length = tf.cast(chars.row_lengths(), tf.int32)
    dense = chars.to_tensor("")  # [T, C]
    width = tf.shape(dense)[1]
    start = tf.range(width)[tf.newaxis, :]
    # best[t, i], piece[t, i]: the longest vocabulary piece starting at character i of word t
    best = tf.zeros_like(dense, tf.int32)
    piece = tf.fill(tf.shape(dense), -1)
    candidate = tf.fill(tf.shape(dense), "")
    for n in range(1, max_piece_chars + 1):
        shifted = tf.pad(dense, [[0, 0], [0, n - 1]])[:, n - 1:n - 1 + width]  # character i + n - 1
        candidate = tf.strings.join([candidate, shifted])
        key = tf.where(start > 0, tf.strings.join([SUFFIX, candidate]), candidate)
        found = table.lookup(key)
        ok = (found >= 0) & (start + n <= length[:, tf.newaxis])
        best = tf.where(ok, n, best)
        piece = tf.where(ok, found, piece)

    def step(k, position, failed, out):
        at = tf.stack([tf.range(tf.shape(position)[0]), tf.minimum(position, width - 1)], axis=1)
        active = position < length
        step_len = tf.gather_nd(best, at)
        failed |= active & (step_len == 0)
        out = out.write(k, tf.where(active, tf.gather_nd(piece, at), -1))
        return k + 1, position + tf.where(active, tf.maximum(step_len, 1), 0), failed, out

    steps = tf.reduce_max(tf.concat([length, [0]], 0))
    _, _, failed, out = tf.while_loop(
        lambda k, *_: k < steps, step,
        (0, tf.zeros_like(length), length > MAX_WORD_CHARS, tf.TensorArray(tf.int32, size=steps)))
    emitted = tf.transpose(tf.reshape(out.stack(), [steps, -1]))  # [T, steps]
    emitted = tf.where(failed[:, tf.newaxis], tf.one_hot(0, steps, on_value=UNK, off_value=-1, dtype=tf.int32),
                       emitted)
    per_word = tf.ragged.boolean_mask(emitted, emitted >= 0)  # [T, pieces]
    return tf.RaggedTensor.from_row_splits(per_word, tf.cast(words.row_splits, per_word.row_splits.dtype)
                                           ).merge_dims(1, 2)


def detokenize(token_ids, vocabulary):
    """int [N, L] ids -> string [N]: pieces joined, a space before each word-initial piece;
    `[PAD]`, `[START]` and `[END]` dropped, and everything after the first `[END]`."""
    import tensorflow as tf

    ids = tf.convert_to_tensor(token_ids)
    after_end = tf.cumsum(tf.cast(tf.equal(ids, END), tf.int32), axis=-1, exclusive=True) > 0
    keep = (ids != PAD) & (ids != START) & (ids != END) & ~after_end
    pieces = tf.gather(tf.constant(list(vocabulary)), tf.where(keep, ids, PAD))
    suffix = tf.strings.regex_full_match(pieces, "##.+")
    pieces = tf.where(suffix, tf.strings.regex_replace(pieces, "^##", ""), tf.strings.join([" ", pieces]))
    pieces = tf.where(keep, pieces, "")
    return tf.strings.regex_replace(tf.strings.reduce_join(pieces, axis=-1), "^ ", "")


def write_vocabularies(preprocess, directory):
    """Writes `<name>_vocabulary.txt` (line number = id) for each `<name>_tokenizer`
    WordPiece layer of a preprocess model; returns the paths (none for other tokenizers)."""
    from shared.export.atomic import atomic_write_text

    paths = []
    for layer in preprocess.layers:
        if isinstance(layer, WordPieceTokenizer):
            prefix = layer.name.removesuffix("tokenizer")  # "source_", "target_" or ""
            path = os.path.join(directory, f"{prefix}vocabulary.txt")
            atomic_write_text(path, "".join(f"{piece}\n" for piece in layer.vocabulary))
            paths.append(path)
    return paths
