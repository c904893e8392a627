"""Speech data for both tasks: unbatched `(waveform float32 [S], target)` datasets.

- `synth` (default): the embedded corpus (`apps.speech.synth`), built once into the data
  cache; its splits hold out voices. ASR reads the digits, commands and sentences; keyword
  spotting the one-second word and silence clips.
- `manifest:PATH.tsv`: `wav path<TAB>transcript` lines (paths relative to the file), any WAV
  (`shared.data.audio.read_wav`); split by a seeded hash of the path.
- `tfds:librispeech` / `tfds:speech_commands` from a local `--data-dir` (`--download` to fetch).
"""

import os
import zlib

import numpy as np

from apps.speech import synth
from shared.data.audio import SAMPLE_RATE, read_wav
from shared.errors import UserError

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # CTC classes 0..27; 28 is the blank
ASR_CATEGORIES = ("digits", "commands", "sentences")
KWS_CLASSES = (*synth.KEYWORDS, "_unknown_", "_silence_")
CLIP_SAMPLES = SAMPLE_RATE  # keyword spotting: one-second clips


def char_ids(transcripts):
    """string tensor [...] -> ragged int32 ids in ALPHABET (other characters dropped)."""
    import tensorflow as tf

    table = np.full(256, -1, np.int32)
    for i, c in enumerate(ALPHABET):
        table[ord(c)] = i
    ids = tf.gather(tf.constant(table), tf.cast(tf.strings.unicode_decode(tf.strings.lower(transcripts), "UTF-8") % 256,
                                                tf.int32))
    return tf.ragged.boolean_mask(ids, ids >= 0)


def ids_to_text(ids):
    """int ids [N, L] (-1 or out-of-range = padding) -> string [N]."""
    import tensorflow as tf

    chars = tf.constant(list(ALPHABET) + [""])
    ids = tf.where((ids >= 0) & (ids < len(ALPHABET)), ids, len(ALPHABET))
    return tf.strings.reduce_join(tf.gather(chars, ids), axis=-1)


def _synth_split(directory, split, categories):
    """(dataset of (waveform, transcript, category), rows of the manifest) of one split."""
    import tensorflow as tf

    in_split = [r for r in synth.read_manifest(directory) if r["split"] == split]
    rows = [r for r in in_split if r["category"] in categories]
    shards = sorted({r["path"].split("#")[0] for r in in_split})
    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in ("audio", "transcript", "category", "voice")}

    def parse(record):
        f = tf.io.parse_single_example(record, spec)
        return tf.io.decode_raw(f["audio"], tf.int16), f["transcript"], f["category"]

    wanted = tf.constant(list(categories))
    ds = tf.data.TFRecordDataset([os.path.join(directory, s) for s in shards]).map(parse)
    ds = ds.filter(lambda a, t, c: tf.reduce_any(tf.equal(c, wanted))).cache()
    return ds.map(lambda a, t, c: (tf.cast(a, tf.float32) / 32768.0, t, c)), rows


def synth_corpus(cfg, categories, mix="all"):
    """{split: (dataset, rows)} of the embedded corpus of a mix (built first if not cached)."""
    import sys

    directory = synth.synthesize(cfg.hours, cfg.corpus_seed, verbose=sys.stdout.isatty(), mix=mix)
    return {split: _synth_split(directory, split, categories) for split in ("train", "val", "test")}


def _hash_split(key, seed, val=0.1, test=0.1):
    u = (zlib.crc32(f"{seed}:{key}".encode()) & 0xFFFFFFFF) / 2 ** 32
    return "test" if u < test else "val" if u < test + val else "train"


def manifest_corpus(path, seed):
    """{split: (dataset, rows)} of a `wav path<TAB>transcript` file."""
    import tensorflow as tf

    flag = f"--data manifest:{path}"
    if not os.path.isfile(path):
        raise UserError(f"{flag}: no such file")
    base, splits = os.path.dirname(os.path.abspath(path)), {"train": [], "val": [], "test": []}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2:
                raise UserError(f"{flag}: line {n}: expected 'wav path<TAB>transcript'")
            wav = parts[0] if os.path.isabs(parts[0]) else os.path.join(base, parts[0])
            splits[_hash_split(parts[0], seed)].append((wav, synth.normalize(parts[1])))
    if not splits["train"]:
        raise UserError(f"{flag}: no training lines (the file is empty?)")
    out = {}
    for split, items in splits.items():
        audio = [read_wav(w) for w, _ in items]
        rows = [dict(path=w, split=split, category="manifest", transcript=t, duration=f"{len(a) / SAMPLE_RATE:.3f}")
                for (w, t), a in zip(items, audio)]
        ds = tf.data.Dataset.from_generator(
            lambda audio=audio, items=items: ((a, t, "manifest") for a, (_, t) in zip(audio, items)),
            output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.string),
                              tf.TensorSpec([], tf.string)))
        out[split] = (ds.cache(), rows)
    return out


SPLIT_NAMES = {"train": ("train", "train_clean100"), "val": ("validation", "dev_clean"), "test": ("test", "test_clean")}


def tfds_corpus(cfg):
    """{split: (dataset, rows)} of a TFDS speech dataset from a local data_dir: LibriSpeech's
    shape (`speech` int16, `text`) or Speech Commands' (`audio` int16, `label`)."""
    import tensorflow as tf

    from shared.data.tfds import prepared_builder

    name = cfg.data.split(":", 1)[1]
    builder = prepared_builder(name, cfg.data_dir, cfg.download)
    info, out = builder.info, {}
    if not ({"speech", "text"} <= set(info.features) or {"audio", "label"} <= set(info.features)):
        raise UserError(f"--data tfds:{name}: expected LibriSpeech's (speech, text) or Speech Commands' "
                        f"(audio, label) features; it has {', '.join(info.features)}")
    for split, candidates in SPLIT_NAMES.items():
        found = [c for c in candidates if c in info.splits]
        if not found:
            raise UserError(f"--data tfds:{name}: no {' or '.join(candidates)} split")
        ds = builder.as_dataset(split=found[0])
        if "speech" in info.features:
            ds = ds.map(lambda e: (tf.cast(e["speech"], tf.float32) / 32768.0, tf.strings.lower(e["text"]), "sentences"))
        else:
            names = tf.constant([_kws_name(n) for n in info.features["label"].names])
            ds = ds.map(lambda e: (tf.cast(e["audio"], tf.float32) / 32768.0, tf.gather(names, e["label"]),
                                   tf.where(tf.gather(names, e["label"]) == "", "silence", "words")))
        out[split] = (ds, [dict(category="sentences" if "speech" in info.features else "words")]
                      * int(info.splits[found[0]].num_examples))
    return out


def _kws_name(label):
    return {"_unknown_": "_unknown_", "_silence_": ""}.get(label, label)


def load_corpus(cfg, categories, mix="all"):
    """{split: (dataset of (waveform, transcript, category), manifest rows)} for `--data`
    (`mix`: which embedded corpus, `synth.MIXES`)."""
    if cfg.data == "synth":
        return synth_corpus(cfg, categories, mix)
    if cfg.data.startswith("manifest:"):
        return manifest_corpus(cfg.data.split(":", 1)[1], cfg.seed)
    if cfg.data.startswith("tfds:"):
        return tfds_corpus(cfg)
    raise UserError(f"--data: expected synth, manifest:PATH.tsv or tfds:NAME; got '{cfg.data}'")


def corpus_source(cfg, mix="all"):
    """What the model card says the data is."""
    if cfg.data == "synth":
        return (f"dl-speech synth corpus ({mix} mix, ~{cfg.hours:g} h, seed {cfg.corpus_seed}): espeak-ng voices, augmented; "
                "validation and test voices never heard in training")
    return cfg.data


def kws_label(transcript, category):
    """The keyword-spotting class of a clip: its keyword, `_unknown_` or `_silence_`."""
    import tensorflow as tf

    keywords = tf.constant(list(synth.KEYWORDS))
    hit = tf.equal(keywords, transcript)
    return tf.where(tf.equal(category, "silence") | tf.equal(transcript, ""), len(KWS_CLASSES) - 1,
                    tf.where(tf.reduce_any(hit), tf.cast(tf.argmax(tf.cast(hit, tf.int32)), tf.int32),
                             len(KWS_CLASSES) - 2))


def fit_clip(waveform, samples=CLIP_SAMPLES):
    """A waveform cut or zero-padded (centred) to `samples`."""
    import tensorflow as tf

    n = tf.shape(waveform)[0]
    start = tf.maximum(0, (n - samples) // 2)
    waveform = waveform[start:start + samples]
    pad = samples - tf.shape(waveform)[0]
    return tf.pad(waveform, [[pad // 2, pad - pad // 2]])
