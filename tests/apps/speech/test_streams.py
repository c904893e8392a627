"""Streaming keyword spotting: the held-out streams, detections on them and their curve."""

import numpy as np

from apps.speech import streams, synth
from apps.speech.data import KWS_CLASSES


def _fake_predict(events, noise_at=()):
    """A model that hears each event's keyword in windows centred within 0.3 s of its span
    (peaking in the middle), another keyword at `noise_at` times, and silence elsewhere."""
    def predict(batch):
        centres = predict.at + np.arange(len(batch)) * streams.HOP
        predict.at += len(batch) * streams.HOP
        probs = np.full((len(batch), len(KWS_CLASSES)), 0.01)
        probs[:, -1] = 0.9
        for i, t in enumerate(centres):
            for e in events:
                if e["start"] - 0.3 <= t <= e["end"] + 0.3:
                    probs[i, KWS_CLASSES.index(e["keyword"])] = 0.95 - abs(t - (e["start"] + e["end"]) / 2) / 10
            for n in noise_at:
                if abs(t - n) < 0.2:
                    probs[i, KWS_CLASSES.index("go")] = 0.7
        return probs

    predict.at = 0.0
    return predict


def test_detections_on_a_stream_with_known_keyword_times():
    events = [dict(keyword="stop", start=3.0, end=3.5), dict(keyword="yes", start=10.0, end=10.4),
              dict(keyword="left", start=20.2, end=20.8)]
    waveform = np.zeros(30 * 16000, np.float32)
    times, probs = streams.window_probabilities(_fake_predict(events, noise_at=(15.0,)), waveform, batch_size=10)
    assert len(times) == 121 and probs.shape == (121, 12)
    found = streams.detections(times, streams.smooth(probs), 10, 0.5)
    # one detection per keyword (no double counts over its windows), within the tolerance of its span
    heard = [(KWS_CLASSES[c], t) for t, c, _ in found]
    assert [k for k, _ in heard] == ["stop", "yes", "left"]
    assert all(e["start"] - streams.TOLERANCE <= t <= e["end"] + streams.TOLERANCE for (_, t), e in zip(heard, events))
    assert streams.score_detections(found, events, KWS_CLASSES) == (3, 0)
    # the one-window blip at 15 s: smoothed to (0.01 + 0.7 + 0.01) / 3 it is no detection; unsmoothed a false accept
    raw = streams.detections(times, probs, 10, 0.5)
    assert streams.score_detections(raw, events, KWS_CLASSES) == (3, 1)
    rows = streams.stream_curve(times, probs, events, KWS_CLASSES, seconds=len(waveform) / 16000)
    at = {r["threshold"]: r for r in rows}
    assert at[0.5]["false_reject_rate"] == 0 and at[0.5]["false_accepts"] == 0
    assert at[0.95]["false_reject_rate"] == 1 and at[0.95]["false_accepts_per_hour"] == 0
    assert streams.choose_threshold(rows)["threshold"] == min(r["threshold"] for r in rows if r["false_accepts"] == 0)


def test_a_detection_naming_another_keyword_or_twice_the_same_is_a_false_accept():
    events = [dict(keyword="stop", start=3.0, end=3.5)]
    found = [(3.2, KWS_CLASSES.index("go"), 0.9), (3.3, KWS_CLASSES.index("stop"), 0.9),
             (3.4, KWS_CLASSES.index("stop"), 0.9), (9.0, KWS_CLASSES.index("stop"), 0.9)]
    assert streams.score_detections(found, events, KWS_CLASSES) == (1, 3)
    # the refractory second keeps a keyword's trailing windows from counting twice
    times = np.array([3.0, 3.25, 3.5, 3.75])
    probs = np.zeros((4, 12))
    probs[[0, 1], KWS_CLASSES.index("stop")], probs[[3], KWS_CLASSES.index("go")] = 0.9, 0.9
    assert [c for _, c, _ in streams.detections(times, probs, 10, 0.5)] == [KWS_CLASSES.index("stop")]


def test_streams_hold_keywords_only_where_they_say(tmp_path, monkeypatch):
    monkeypatch.setenv("DLSUITE_DATA_CACHE", str(tmp_path))
    segments = streams.plan_stream("test", 0.01)
    banned = set(synth.KEYWORDS) | synth.SOUNDALIKES
    assert all(not banned & set(synth.normalize(s["text"]).split()) for s in segments if s["kind"] != "keyword")
    test_voices = set(synth.voice_splits()["test"])
    assert {s["voice"] for s in segments} <= test_voices
    waveform, keywords = streams.build_stream("test", 0.01)
    assert [k["keyword"] for k in keywords] == list(synth.KEYWORDS)  # each once at 0.01 h (minimum: one each)
    seconds = len(waveform) / 16000
    assert 36 < seconds < 90 and np.abs(waveform).max() <= 1
    for k in keywords:
        assert 0 <= k["start"] < k["end"] <= seconds and 0.1 < k["end"] - k["start"] < 1.5
        span = waveform[int(k["start"] * 16000):int(k["end"] * 16000)]
        assert np.sqrt(np.mean(span ** 2)) > 1e-3  # the keyword is audible where it is said to be
    again, _ = streams.build_stream("test", 0.01)  # cached
    assert np.array_equal(again, waveform)
