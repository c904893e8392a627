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


def test_numbers_in_transcripts_are_the_words_said():
    """Users' manifests write numbers in digits; the model hears and spells words."""
    cases = {"I have 42 cats": "i have forty two cats", "the 3rd of May 1984": "the third of may nineteen eighty four",
             "pay 1,200 dollars": "pay one thousand two hundred dollars", "up 2.5%": "up two point five percent",
             "room 7": "room seven", "A4 paper": "a four paper", "version 3.10": "version three point one zero"}
    assert {text: synth.normalize(text) for text in cases} == cases


def test_the_keywords_mix_has_one_second_clips_and_speech_without_keywords():
    utterances, babble = synth.plan(0.2, seed=1, mix="keywords")
    counts = {c: sum(u["category"] == c for u in utterances) for c in ("words", "silence", "speech")}
    assert sum(counts.values()) == len(utterances) == 720 and min(counts.values()) > 10
    banned = set(synth.KEYWORDS) | synth.SOUNDALIKES
    for u in utterances:
        if u["category"] == "speech":
            assert len(u["transcript"].split()) >= 3 and not banned & set(u["transcript"].split())
    keywords = sum(u["transcript"] in synth.KEYWORDS for u in utterances if u["category"] == "words")
    assert 0.5 < keywords / counts["words"] < 0.7  # keyword_share 0.6
    assert synth.corpus_dir(1, 0, "keywords").endswith("synth-keywords-v2-1h-seed0")
    assert {u["context"] for u in utterances if u["category"] == "words"} == {0.5}
    assert {u["tones"] for u in utterances if u["category"] == "silence"} == {0.3}


def test_context_is_speech_before_and_after_the_word_with_a_gap():
    rng = np.random.default_rng(0)
    clip = np.zeros(16000, np.float32)
    clip[6000:10000] = 0.1 * np.sin(np.arange(4000) / 5)  # the word
    talkers = [0.3 * rng.standard_normal(30000)]
    sides = set()
    for seed in range(20):
        out = synth.with_context(clip, (6000, 10000), np.random.default_rng(seed), talkers)
        assert np.array_equal(out[6000:10000], clip[6000:10000])  # the word untouched
        assert not out[5520:6000].any() and not out[10000:10480].any()  # at least 30 ms of gap each side
        before, after = np.abs(out[:5500]).max(), np.abs(out[10500:]).max()
        if before:  # at the word's level, x0.5-1.5 (the word's RMS: 0.0707)
            assert 0.035 <= np.sqrt(np.mean(out[:2000] ** 2)) <= 0.107  # (a gap is at most 250 ms)
        sides |= {("before", before > 0), ("after", after > 0)}
    assert sides == {("before", True), ("before", False), ("after", True), ("after", False)}


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
