"""Keyword spotting in streaming use: long held-out recordings with known keyword times, the
`listen` path over them (sliding windows, posterior smoothing, a refractory period) and its
false-accept / false-reject curve.

A stream is an hour (`hours`) of audio with no keyword — sentences without a keyword or a
sound-alike, runs of other words, digit strings, noise and music-like tones, each with the
corpus's augmentation — with `KEYWORDS_PER_HOUR` isolated keywords embedded at random places
between them. Everything is spoken by one split's held-out voices (`synth.voice_splits`):
the validation stream chooses the shipped threshold, the test stream reports. Built once per
(split, hours, seed) into the data cache: `audio.npy` (int16, 16 kHz), `keywords.json` and
`segments.json` (every segment's kind and span).
"""

import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from apps.speech import synth
from shared.data.audio import SAMPLE_RATE
from shared.data.cache import data_cache

VERSION = 2
KEYWORDS_PER_HOUR = 300
SEGMENTS = {"sentence": 0.55, "words": 0.15, "digits": 0.1, "noise": 0.1, "tones": 0.1}
SPLIT_SEEDS = {"val": 1, "test": 2}
TOLERANCE = 0.5  # s: a detection this close to a keyword's span hears that keyword
REFRACTORY = 1.0  # s: no second detection sooner than this after one
SMOOTH = 3  # windows averaged (centred) before thresholding
HOP = 0.25  # s between one-second windows
FA_TARGET = 1.0  # false accepts per hour the shipped threshold aims at (on validation audio)
THRESHOLDS = np.unique(np.concatenate([np.linspace(0.05, 0.95, 19), 1 - np.logspace(-1.3, -4, 28)]))


def plan_stream(split, hours, seed=0):
    """The segments of a stream in order: [dict(kind, text, voice, rate, pitch, seed, keyword)]."""
    voices, pool = synth.voice_splits()[split], synth.sentence_pool()
    sentences = {k: synth.keyword_free(v) for k, v in pool.items()}
    unknown = synth.unknown_words(pool)
    rng = np.random.default_rng([seed, SPLIT_SEEDS[split]])
    kinds, probs = list(SEGMENTS), list(SEGMENTS.values())
    mean_seconds = {"sentence": 2.8, "words": 2.0, "digits": 2.4, "noise": 2.5, "tones": 2.5}
    expected = sum(p * mean_seconds[k] for k, p in SEGMENTS.items())
    count = max(int(np.ceil(hours * 3600 / expected)), 4)
    n_keywords = max(int(round(KEYWORDS_PER_HOUR * hours)), len(synth.KEYWORDS))
    keyword_at = set(rng.choice(count + n_keywords, size=n_keywords, replace=False).tolist())
    segments, k = [], 0
    for i in range(count + n_keywords):
        voice = dict(voice=str(rng.choice(voices)), rate=int(rng.integers(130, 211)), pitch=int(rng.integers(25, 76)),
                     seed=int(rng.integers(2 ** 31)))
        if i in keyword_at:
            word = synth.KEYWORDS[k % len(synth.KEYWORDS)]
            k += 1
            segments.append(dict(kind="keyword", text=word, keyword=word, **voice))
            continue
        kind = kinds[int(rng.choice(len(kinds), p=probs))]
        text = ""
        if kind == "sentence":
            text = synth._any_sentence(rng, sentences)
        elif kind == "words":
            text = " ".join(rng.choice(unknown, size=int(rng.integers(2, 6))))
        elif kind == "digits":
            text = " ".join(rng.choice(synth.DIGITS, size=int(rng.integers(3, 8))))
        segments.append(dict(kind=kind, text=text, keyword="", **voice))
    return segments


def _render(args):
    """(audio float32, the keyword's (start, end) samples or None) of one segment."""
    segment, split = args
    rng, babble = np.random.default_rng(segment["seed"]), synth._BABBLE[split]
    if segment["kind"] == "tones":
        return (synth.tones(rng, rng.uniform(1.0, 4.0)) * 10 ** (rng.uniform(-20, -3) / 20)).astype(np.float32), None
    if segment["kind"] == "noise":
        noise = synth._noise(rng, str(rng.choice(["white", "pink", "babble"])), int(rng.uniform(1.0, 4.0) * SAMPLE_RATE),
                             babble)
        return np.clip(noise / (np.sqrt(np.mean(noise ** 2)) + 1e-12) * 10 ** (rng.uniform(-45, -20) / 20),
                       -1, 1).astype(np.float32), None
    clean = synth.speak(segment["text"], segment["voice"], segment["rate"], segment["pitch"])
    audio, span = synth.augment(clean, rng, babble, span=True)
    return audio, span if segment["kind"] == "keyword" else None


def stream_dir(split, hours, seed=0):
    return data_cache("speech", f"stream-v{VERSION}-{split}-{hours:g}h-seed{seed}")


def build_stream(split, hours, seed=0, workers=2, verbose=False):
    """(waveform float32 [S], [{keyword, start, end}] in seconds) of a stream, built once."""
    out = stream_dir(split, hours, seed)
    if not os.path.isfile(os.path.join(out, "keywords.json")):
        segments = plan_stream(split, hours, seed)
        _, babble = synth.plan(0.01, seed)
        tmp = f"{out}.partial-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        pieces, keywords, spans, at = [], [], [], 0
        if verbose:
            print(f"Building the {split} keyword stream ({hours:g} h, {len(segments)} segments) into {out}", flush=True)
        with ProcessPoolExecutor(max_workers=workers, initializer=synth._render_babble, initargs=(babble,)) as pool:
            for segment, (audio, span) in zip(segments, pool.map(_render, [(s, split) for s in segments], chunksize=8)):
                if span:
                    keywords.append(dict(keyword=segment["keyword"], start=round((at + span[0]) / SAMPLE_RATE, 3),
                                         end=round((at + span[1]) / SAMPLE_RATE, 3)))
                spans.append(dict(kind=segment["kind"], start=round(at / SAMPLE_RATE, 3),
                                  end=round((at + audio.size) / SAMPLE_RATE, 3)))
                pieces.append(audio)
                at += audio.size
        np.save(os.path.join(tmp, "audio.npy"), np.round(np.concatenate(pieces) * 32767).astype(np.int16))
        with open(os.path.join(tmp, "segments.json"), "w") as f:  # what is where (false accepts by kind)
            json.dump(spans, f)
        with open(os.path.join(tmp, "keywords.json"), "w") as f:
            json.dump(keywords, f)
        try:
            os.rename(tmp, out)
        except OSError:  # another process finished it first
            shutil.rmtree(tmp, ignore_errors=True)
    with open(os.path.join(out, "keywords.json")) as f:
        keywords = json.load(f)
    return np.load(os.path.join(out, "audio.npy")).astype(np.float32) / 32768.0, keywords


# --- listening: windows, smoothing, detections -------------------------------------
def window_probabilities(predict, waveform, hop=HOP, batch_size=64):
    """(window centres in s [W], class probabilities [W, C]) of one-second windows every `hop`
    seconds (the recording zero-padded by half a window at both ends)."""
    step = int(hop * SAMPLE_RATE)
    padded = np.pad(waveform, (SAMPLE_RATE // 2, SAMPLE_RATE // 2))
    starts = np.arange(0, max(len(padded) - SAMPLE_RATE, 0) + 1, step)
    probs = []
    for i in range(0, len(starts), batch_size):
        batch = np.stack([padded[s:s + SAMPLE_RATE] for s in starts[i:i + batch_size]]).astype(np.float32)
        probs.append(np.asarray(predict(batch)))
    return starts / SAMPLE_RATE, np.concatenate(probs)


def smooth(probs, windows=SMOOTH):
    """Centred moving average of window probabilities over `windows` windows."""
    if windows <= 1:
        return probs
    kernel = np.ones(windows) / windows
    pad = np.pad(probs, ((windows // 2, windows - 1 - windows // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(pad[:, c], kernel, mode="valid") for c in range(probs.shape[1])], 1)


def detections(times, probs, num_keywords, threshold, refractory=REFRACTORY):
    """[(time, class, score)]: each run of windows whose best keyword (the same one) scores
    at least `threshold`, at the window of its highest score; none within `refractory`
    seconds after the previous one."""
    keyword = probs[:, :num_keywords]
    best, score = keyword.argmax(-1), keyword.max(-1)
    found = np.flatnonzero(score >= threshold)
    out, last = [], -np.inf
    i = 0
    while i < len(found):
        j = i
        while j + 1 < len(found) and found[j + 1] == found[j] + 1 and best[found[j + 1]] == best[found[i]]:
            j += 1
        run = found[i:j + 1]
        peak = run[int(np.argmax(score[run]))]
        if times[peak] - last >= refractory:
            out.append((float(times[peak]), int(best[peak]), float(score[peak])))
            last = times[peak]
        i = j + 1
    return out


def score_detections(found, keywords, class_names, tolerance=TOLERANCE):
    """(hits, false accepts): a detection hears a keyword when it names it and falls within
    `tolerance` s of its span, once per keyword; every other detection is a false accept."""
    events = sorted(keywords, key=lambda k: k["start"])
    matched, hits = set(), 0
    for time, cls, _ in found:
        for n, e in enumerate(events):
            if n not in matched and class_names[cls] == e["keyword"] and e["start"] - tolerance <= time <= e["end"] + tolerance:
                matched.add(n)
                hits += 1
                break
    return hits, len(found) - hits


def stream_curve(times, probs, keywords, class_names, seconds, thresholds=THRESHOLDS):
    """[{threshold, false_reject_rate, false_accepts_per_hour, false_accepts}] of a stream."""
    smoothed, rows = smooth(probs), []
    for t in thresholds:
        hits, fa = score_detections(detections(times, smoothed, len(class_names) - 2, t), keywords, class_names)
        rows.append(dict(threshold=round(float(t), 5), false_reject_rate=round(1 - hits / max(len(keywords), 1), 4),
                         false_accepts_per_hour=round(fa * 3600 / seconds, 3), false_accepts=fa))
    return rows


def choose_threshold(rows, target=FA_TARGET):
    """The lowest threshold (fewest false rejects) whose false accepts per hour are at most
    `target`, or the highest one when none is."""
    ok = [r for r in rows if r["false_accepts_per_hour"] <= target]
    return min(ok, key=lambda r: r["threshold"]) if ok else max(rows, key=lambda r: r["threshold"])
