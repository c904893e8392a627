"""Documents for language modelling, split by document (never by line), as byte-id windows.

- `fortunes` (default): Debian's fortunes, one document per fortune;
- `english`: the pretraining corpus: the English library (`shared.data.english_library`:
  GCIDE, the Jargon File, WordNet glosses, pydoc; about 42 MB) and the fortunes' training
  documents; validation and test are the fortunes' own (the same documents as `fortunes`
  with the same seed), so a pretrained model never saw the fortunes it is scored on;
- `text:PATH`: a UTF-8 text file (one document per blank-line-separated paragraph) or a
  folder (one document per file, recursively);
- `tfds:tiny_shakespeare` (any TFDS dataset with one text feature) from a local
  `--data-dir`: its own train / validation / test splits.

The test documents are fixed (`apps.nlp.data.TEST_SEED`), so every run, seed and peer (the n-gram
model of the bench) is scored on the same text.
"""

import os
import re

import numpy as np

from apps.nlp.data import _split_off, document_split
from shared.data.byte_text import END, encode
from shared.errors import UserError

TEST_FRACTION = 0.05
USAGE = [
    "SavedModel `serving_default`: the prompts followed by their continuations; temperature 0 is greedy, "
    "top_k 0 and top_p 1 cut nothing, the same seed gives the same text. A transformer generates within its "
    "context (`sequence_length`): at most sequence_length - 1 new bytes, the prompt cut to its last bytes.",
    "SavedModel `score`: the natural-log probability of each whole text (its bytes, from a document start) and "
    "its characters; bits per character = -log_prob / ln 2 / num_chars.",
    "TFLite: token ids are UTF-8 bytes (0 = padding), 256 starts a document; feed [256, bytes of the prompt], "
    "0-padded to sequence_length, pick the next byte from the logits at the last real position, append, repeat.",
]


def _read_text(path, flag):
    with open(path, "rb") as f:
        data = f.read()
    if b"\x00" in data[:8192]:
        raise UserError(f"{flag}: {path} is not text (it has NUL bytes; a binary file?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{flag}: {path} is not UTF-8 text (byte {e.start}); is it a binary file?") from None


def text_documents(path):
    """Documents of a text file (its paragraphs) or a folder (its files), with one-line errors."""
    flag = f"--data text:{path}"
    if os.path.isdir(path):
        files = sorted(os.path.join(d, f) for d, _, names in os.walk(path) for f in names if not f.startswith("."))
        documents = [t.strip() for t in (_read_text(f, flag) for f in files) if t.strip()]
        if not documents:
            raise UserError(f"{flag}: no non-empty files in this folder")
    elif os.path.isfile(path):
        text = _read_text(path, flag)
        if not text.strip():
            raise UserError(f"{flag}: the file is empty")
        documents = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    else:
        raise UserError(f"{flag}: no such file or folder")
    if len(documents) < 3:
        raise UserError(f"{flag}: {len(documents)} document(s); need at least 3 (train, validation, test) — "
                        "separate paragraphs with blank lines or give a folder of files")
    return documents


def tfds_documents(name, data_dir, download):
    """{split: [text]} of a TFDS text dataset (its first string feature)."""
    from shared.data.tfds import prepared_builder

    builder = prepared_builder(name, data_dir, download)
    key = next((k for k, v in builder.info.features.items() if v.dtype == "string"), None)
    if key is None:
        raise UserError(f"--data tfds:{name}: no text feature")
    return {split: [e[key].decode("utf-8") for e in builder.as_dataset(split=split).as_numpy_iterator()]
            for split in builder.info.splits}


def load_documents(cfg):
    """{"train"/"val"/"test": [document text]} and a source line for `cfg.data`."""
    kind, _, arg = cfg.data.partition(":")
    if kind == "tfds" and arg:
        splits = tfds_documents(arg, cfg.data_dir, cfg.download)
        if "train" not in splits or "test" not in splits:
            raise UserError(f"--data tfds:{arg}: needs train and test splits; has {', '.join(splits)}")
        val = splits.get("validation")
        if val is None:
            mask = _split_off(len(splits["train"]), cfg.validation_split, cfg.seed)
            val = [d for d, m in zip(splits["train"], mask) if m]
            splits["train"] = [d for d, m in zip(splits["train"], mask) if not m]
        return {"train": splits["train"], "val": val, "test": splits["test"]}, f"TFDS {arg}"
    if cfg.data in ("fortunes", "english"):
        from shared.data.corpus import fortunes

        documents, source = [text for _, text in fortunes()], "Debian fortunes (one document per fortune)"
    elif kind == "text" and arg:
        documents, source = text_documents(arg), f"text {arg}"
    else:
        raise UserError(f"--data: expected fortunes, english, text:PATH or tfds:NAME; got '{cfg.data}'")
    # A repeated document (a fortune filed under two categories) would sit on both sides of the split.
    documents = np.asarray(list(dict.fromkeys(documents)), dtype=object)
    train, val, test = document_split(len(documents), TEST_FRACTION, cfg.validation_split, cfg.seed)
    part = lambda m: list(documents[m])  # noqa: E731
    splits = {"train": part(train), "val": part(val), "test": part(test)}
    source = f"{source}, {len(documents)} unique documents"
    if cfg.data == "english":
        from shared.data.english_library import library_documents

        library = [text for _, text in library_documents()]
        train = library + splits["train"]  # shuffled: the epoch's shuffle buffer holds a part of the windows
        splits["train"] = [train[i] for i in np.random.default_rng(cfg.seed).permutation(len(train))]
        source = f"the English library ({len(library)} documents) + {source}"
    return splits, source


def stream(documents):
    """All documents as one byte-id stream, each preceded by END: int32 [total]."""
    return np.concatenate([encode(d) for d in documents] + [np.array([END], np.int32)])


def windows(ids, length):
    """Consecutive, non-overlapping (inputs, next tokens) pairs [K, length] of a stream, the
    last one 0-padded, so the windows of the test split hold its whole stream in order."""
    count = max(1, -(-(len(ids) - 1) // length))
    padded = np.zeros(count * length + 1, np.int32)
    padded[:len(ids)] = ids
    x = padded[:-1].reshape(count, length)
    y = padded[1:].reshape(count, length)
    return x, y


def stream_of_windows(x, y):
    """The stream `windows` cut (trailing padding dropped): inverse of `windows`."""
    ids = np.concatenate([np.asarray(x).reshape(-1), np.asarray(y)[-1:, -1]])
    nonzero = np.flatnonzero(ids)
    return ids[:nonzero[-1] + 1] if len(nonzero) else ids[:0]


def split_documents(ids):
    """Byte-id rows `END, bytes…` of each document of a stream (the empty tail dropped)."""
    starts = np.flatnonzero(ids == END)
    rows = [ids[s:e] for s, e in zip(starts, list(starts[1:]) + [len(ids)])]
    return [r for r in rows if len(r) > 1]


def unigram_log_probs(train_ids):
    """Natural-log probability of each of the 256 byte values: the training bytes' add-one
    smoothed frequencies (document separators left out)."""
    counts = np.bincount(train_ids[train_ids != END], minlength=256)[:256] + 1.0
    return np.log(counts / counts.sum())


def unigram_bits_per_char(train_ids, test_rows):
    """Cross-entropy of the test documents' bytes under the training bytes' frequencies
    (add-one smoothed): the baseline a language model must beat, in bits per character."""
    log2p = unigram_log_probs(train_ids) / np.log(2)
    tokens = np.concatenate([r[1:] for r in test_rows])
    chars = sum(len(bytes(r[1:].astype(np.uint8).tolist()).decode("utf-8", errors="replace")) for r in test_rows)
    return float(-log2p[tokens].sum() / max(chars, 1))


def build_generate_data(cfg):
    """Byte-id windows of `cfg.sequence_length` (inputs, next bytes) of each split's documents."""
    import tensorflow as tf

    from shared.data.byte_text import VOCABULARY_SIZE
    from shared.tasks import Data, DataInfo

    splits, source = load_documents(cfg)
    for name in ("train", "val", "test"):
        if not splits[name]:
            raise UserError(f"--data {cfg.data}: no {name} documents")
    ids = {name: stream(docs) for name, docs in splits.items()}
    pairs = {name: windows(s, cfg.sequence_length) for name, s in ids.items()}
    make = lambda name: tf.data.Dataset.from_tensor_slices(pairs[name])  # noqa: E731
    info = DataInfo(input_shape=(cfg.sequence_length,), input_dtype="int32", num_train=len(pairs["train"][0]),
                    num_val=len(pairs["val"][0]), num_test=len(pairs["test"][0]),
                    source=f"{source}: {', '.join(f'{n} {len(d)} documents' for n, d in splits.items())}",
                    extra={"vocabulary_size": VOCABULARY_SIZE,
                           "unigram_bits_per_char": unigram_bits_per_char(ids["train"], split_documents(ids["test"])),
                           "usage": USAGE})
    return Data(make("train"), make("val"), make("test"), info)
