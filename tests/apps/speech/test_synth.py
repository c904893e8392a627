"""The synth corpus: deterministic for a seed, voices held out, transcripts are the words spoken."""

import hashlib
import os

import numpy as np
import pytest

from apps.speech import synth
from apps.speech.peers import pocketsphinx_digits


def _digest(directory):
    return {f: hashlib.sha256(open(os.path.join(directory, f), "rb").read()).hexdigest()
            for f in sorted(os.listdir(directory))}


@pytest.mark.slow
def test_corpus_is_deterministic_for_a_seed(tmp_path):
    a = synth.synthesize(0.01, seed=3, out=str(tmp_path / "a"), verbose=False)
    b = synth.synthesize(0.01, seed=3, out=str(tmp_path / "b"), workers=1, verbose=False)
    c = synth.synthesize(0.01, seed=4, out=str(tmp_path / "c"), verbose=False)
    assert _digest(a) == _digest(b)  # also with another number of workers
    assert _digest(a)["manifest.tsv"] != _digest(c)["manifest.tsv"]
    rows = synth.read_manifest(a)
    assert len(rows) == 23 and {r["split"] for r in rows} == {"train", "val", "test"}
    assert all(float(r["duration"]) == 1.0 for r in rows if r["category"] in ("words", "silence"))
    import tensorflow as tf

    records = list(tf.data.TFRecordDataset(os.path.join(a, "train-00000.tfrecord")).as_numpy_iterator())
    train = [r for r in rows if r["split"] == "train"]
    assert len(records) == len(train)
    example = tf.train.Example.FromString(records[0]).features.feature
    assert example["transcript"].bytes_list.value[0].decode() == train[0]["transcript"]
    samples = len(example["audio"].bytes_list.value[0]) // 2
    assert samples == round(float(train[0]["duration"]) * 16000)


def test_validation_and_test_voices_are_never_heard_in_training():
    splits = synth.voice_splits()
    variant = lambda voices: {v.split("+")[1] for v in voices}  # noqa: E731
    assert not variant(splits["train"]) & variant(splits["test"])
    assert not variant(splits["train"]) & variant(splits["val"])
    assert not variant(splits["val"]) & variant(splits["test"])
    assert len(variant(splits["test"])) == synth.HELD_OUT_VARIANTS["test"] and len(splits["train"]) > 500
    utterances, _ = synth.plan(0.2, seed=0)
    for u in utterances:
        assert u["voice"] in splits[u["split"]]


def test_transcripts_are_the_normalised_text():
    utterances, _ = synth.plan(0.2, seed=1)
    digits = set(synth.DIGITS)
    for u in utterances:
        assert u["transcript"] == synth.normalize(u["text"])
        assert set(u["transcript"]) <= set(" 'abcdefghijklmnopqrstuvwxyz")
        if u["category"] == "digits":
            assert set(u["transcript"].split()) <= digits and 3 <= len(u["transcript"].split()) <= 7
        if u["category"] == "words":
            assert len(u["transcript"].split()) == 1
        if u["category"] == "silence":
            assert u["transcript"] == ""
    assert synth.normalize("Don't PANIC -- it's fine!") == "don't panic it's fine"
    assert synth.speakable("The quick brown fox jumps.") and not synth.speakable("Call me at 5 pm today")
    assert not synth.speakable("The USA is big") and not synth.speakable("Mr Smith went home")


@pytest.mark.slow
def test_the_audio_says_the_digits():
    """pocketsphinx with a digit grammar hears the planned digits in espeak-ng's clean audio
    (its plain en-us voice: many variants are too odd for pocketsphinx's American model)."""
    utterances, _ = synth.plan(0.2, seed=2)
    picked = [u for u in utterances if u["category"] == "digits"][:8]
    audio = [synth.speak(u["text"], "en-us", 150, 50) for u in picked]
    heard = pocketsphinx_digits(audio)
    import jiwer

    said = [u["transcript"] for u in picked]
    wer, wer_of_others = jiwer.wer(said, heard), jiwer.wer(said[1:] + said[:1], heard)
    assert wer < 0.5 and wer_of_others > wer + 0.3, (wer, wer_of_others, list(zip(said, heard)))  # measured 0.31 vs 0.9
    assert np.all([a.dtype == np.float32 and np.abs(a).max() <= 1 for a in audio])
