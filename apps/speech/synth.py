"""`dl-speech synth`: the embedded speech corpus, spoken by espeak-ng and made less clean.

Every utterance is planned from the seed first (category, text, voice, rate, pitch and its
augmentation seed), then rendered in parallel, so a corpus is the same for a seed whatever
the number of workers. A voice is an espeak-ng English accent + a voice variant (101
variants: a speaker's timbre); the validation and test splits have variants of their own,
never heard in training (fixed, so every corpus tests on the same voices).

Categories: `words` (one word in a 1-second clip: the 10 keywords or another word, for
keyword spotting), `silence` (1 second of noise only), `digits` (3-7 spoken digits),
`commands` (short commands) and `sentences` (fortunes, chatterbot English and gettext
English lines of 3-14 plain words). Transcripts are lower-case letters, apostrophes and
spaces: exactly the words spoken.

Augmentation, each with its own probability: speed perturbation (×0.9-1.1, Kaldi-style
resampling), room reverberation (a generated exponentially decaying impulse response),
leading/trailing silence, gain, and additive white, pink or babble noise (other sentences
spoken by the split's voices) at 5-30 dB SNR.

Written as TFRecord shards (`{split}-{i:05d}.tfrecord`: 16-bit PCM at 16 kHz, transcript,
category, voice, duration) with `manifest.tsv` (path, split, category, voice, duration,
transcript), atomically, into the data cache.
"""

import os
import re
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from shared.data.audio import SAMPLE_RATE, resample
from shared.data.cache import data_cache
from shared.errors import UserError

VERSION = 1
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# A corpus's mix: its categories' shares, the mean utterance length (measured: sizes a corpus
# for --hours), the share of keywords among one-word clips and how many other words they use.
MIXES = {
    "all": dict(categories={"words": 0.45, "silence": 0.05, "digits": 0.15, "commands": 0.15, "sentences": 0.20},
                mean_seconds=1.6, keyword_share=0.7, unknown_words=300),
    # keyword spotting alone: one-second clips only, and more of them not keywords (other
    # words, and `speech`: a second cut from a sentence with no keyword in it)
    # `context`: the share of one-word clips with other speech before and after the word, as
    # a keyword said among other words is heard through a sliding window; `tones`: the share
    # of silence clips with music-like tones in their noise (background sounds, not words)
    "keywords": dict(categories={"words": 0.8, "silence": 0.05, "speech": 0.15},
                     mean_seconds=1.0, keyword_share=0.6, unknown_words=1000, context=0.5, tones=0.3, version=2),
}
CONTEXT_TALKERS = 150  # per split: the keyword-free sentences context is cut from
CLIP_CATEGORIES = ("words", "silence", "speech")  # one-second clips
SPLITS = {"val": 0.1, "test": 0.1}  # fractions of utterances; the rest is train
HELD_OUT_VARIANTS = {"val": 8, "test": 12}
SOUNDALIKES = {"know", "write", "rite", "wright", "oh", "nope", "goes", "ups"}  # near a keyword or a digit
SHARD_SIZE = 1000
_COMMANDS = ("turn {lr}", "go {dir}", "move {dir}", "look {dir}", "turn {onoff} the {thing}",
             "switch {onoff} the {thing}", "turn the {thing} {onoff}", "{stopgo} now", "please {stopgo}",
             "volume {updown}", "say {yesno}", "{yesno} please", "{dir}", "{stopgo}", "{yesno}", "{onoff}")
_SLOTS = dict(lr=("left", "right"), dir=("up", "down", "left", "right"), onoff=("on", "off"),
              thing=("light", "lights", "radio", "music", "fan", "heater", "television"),
              stopgo=("stop", "go"), updown=("up", "down"), yesno=("yes", "no"))


def espeak_data_dir():
    """espeak-ng's data directory (from `espeak-ng --version`), or a one-line error."""
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise UserError("espeak-ng not found: run `make setup` (it installs Debian's espeak-ng)") from None
    return out.split("Data at:")[-1].strip()


def voice_splits():
    """{split: [voice]}: accents × variants, the variants of val and test held out of train."""
    variants = sorted(os.listdir(os.path.join(espeak_data_dir(), "voices", "!v")))
    order = np.random.default_rng(0).permutation(len(variants))
    held, start = {}, 0
    for split, n in HELD_OUT_VARIANTS.items():
        held[split] = [variants[i] for i in order[start:start + n]]
        start += n
    held["train"] = [variants[i] for i in order[start:]]
    return {split: [f"{a}+{v}" for v in sorted(vs) for a in ACCENTS] for split, vs in held.items()}


_NUMBER = re.compile(r"(?<![\d.,])(\d{1,3}(?:,\d{3})+|\d+)((?:\.\d+)*)(st|nd|rd|th)?(%)?(?!\d)", re.IGNORECASE)


def _spoken(match):
    from num2words import num2words

    whole, fraction, ordinal, percent = match.groups()
    number = int(whole.replace(",", ""))
    if fraction:  # 3.10.2 -> three point one zero point two
        words = num2words(number) + "".join(" point " + " ".join(num2words(int(d)) for d in part)
                                            for part in fraction[1:].split("."))
    elif ordinal:
        words = num2words(number, to="ordinal")
    elif 1100 <= number <= 2099 and len(whole) == 4:  # a year, as people say it
        words = num2words(number, to="year")
    else:
        words = num2words(number)
    return f" {words}{' percent' if percent else ''} "


def spoken_numbers(text):
    """Numbers written in digits as words (`num2words`): 42 -> forty-two, 3rd -> third,
    2.50 -> two point five zero, 10% -> ten percent, A4 -> A four, 1,200 -> one thousand, two hundred, and a
    four-digit number from 1100 to 2099 as a year (1984 -> nineteen eighty-four)."""
    return _NUMBER.sub(_spoken, text) if any(c.isdigit() for c in text) else text


def normalize(text):
    """Lower-case words of letters and apostrophes, single spaces; numbers in digits
    become the words said (`spoken_numbers`)."""
    text = spoken_numbers(text).lower().replace("\u2019", "'").replace("-", " ")
    return " ".join(w.strip("'") for w in re.sub(r"[^a-z' ]", " ", text).split() if w.strip("'"))


_PLAIN = re.compile(r"^[A-Za-z][A-Za-z ,.'!?;:\-]*$")
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "vs", "etc", "eg", "ie", "ok"}


def speakable(line):
    """A line espeak-ng says as exactly its words: plain words, 3-14 of them, no acronyms,
    abbreviations or single letters other than 'a' and 'I'."""
    if not _PLAIN.match(line) or "--" in line:
        return False
    words = line.replace("-", " ").split()
    if not 3 <= len(words) <= 14:
        return False
    for w in words:
        bare = w.strip(",.'!?;:")
        if sum(c.isupper() for c in bare) > 1 or bare.lower() in _ABBREVIATIONS:
            return False
        if len(bare) == 1 and bare.lower() not in ("a", "i"):
            return False
    return True


SENTENCE_SOURCES = {"fortunes": 0.5, "chatterbot": 0.25, "gettext": 0.25}


def sentence_pool():
    """{source: speakable sentences}: fortunes (split into sentences), chatterbot English
    lines and gettext English messages."""
    from shared.data.corpus import chatterbot_english, fortunes, gettext_english

    def sentences(texts):
        found = {s.strip() for t in texts for s in re.split(r"(?<=[.!?])\s+", " ".join(t.split()))}
        return sorted(s for s in found if speakable(s))

    return {"fortunes": sentences(t for _, t in fortunes()),
            "chatterbot": sentences(t for _, t in chatterbot_english()),
            "gettext": sentences(t for _, t in gettext_english())}


def keyword_free(sentences):
    """The sentences with no keyword and no sound-alike of one among their words."""
    banned = set(KEYWORDS) | SOUNDALIKES
    return [s for s in sentences if not banned & set(normalize(s).split())]


def unknown_words(pool, count=300):
    """The most frequent words of the sentences that are not keywords, digits or sound-alikes."""
    counts = Counter(w for lines in pool.values() for s in lines for w in normalize(s).split())
    banned = set(KEYWORDS) | set(DIGITS) | SOUNDALIKES
    return [w for w, _ in counts.most_common() if w not in banned and len(w) >= 2 and "'" not in w][:count]


def _text(rng, category, sentences, unknown, keyword_share=0.7):
    if category == "words":
        return str(rng.choice(KEYWORDS)) if rng.random() < keyword_share else str(rng.choice(unknown))
    if category == "silence":
        return ""
    if category == "speech":  # `sentences` are keyword-free in a mix with this category
        return _any_sentence(rng, sentences)
    if category == "digits":
        return " ".join(rng.choice(DIGITS, size=int(rng.integers(3, 8))))
    if category == "commands":
        template = str(rng.choice(_COMMANDS))
        return template.format(**{k: str(rng.choice(v)) for k, v in _SLOTS.items()})
    source = str(rng.choice(list(SENTENCE_SOURCES), p=list(SENTENCE_SOURCES.values())))
    return str(rng.choice(sentences[source]))


def _any_sentence(rng, sentences):
    return str(rng.choice(sentences[str(rng.choice(list(SENTENCE_SOURCES)))]))


def plan(hours, seed, mix="all"):
    """The utterances of a corpus: [dict(split, category, text, transcript, voice, rate, pitch, seed)]."""
    if not hours > 0:
        raise UserError(f"--hours: expected a positive number of hours; got {hours}")
    if mix not in MIXES:
        raise UserError(f"--mix: expected one of {', '.join(MIXES)}; got '{mix}'")
    voices, sentences, recipe = voice_splits(), sentence_pool(), MIXES[mix]
    unknown = unknown_words(sentences, recipe["unknown_words"])
    if "speech" in recipe["categories"]:  # its seconds of speech must hold no keyword (babble neither)
        sentences = {k: keyword_free(v) for k, v in sentences.items()}
    rng = np.random.default_rng(seed)
    count = max(int(np.ceil(hours * 3600 / recipe["mean_seconds"])), 20)
    names, probs = list(recipe["categories"]), list(recipe["categories"].values())
    out = []
    for i in range(count):
        u = (i * 0.618033988749895) % 1.0  # low-discrepancy split assignment: exact fractions at any size
        split = "val" if u < SPLITS["val"] else "test" if u < SPLITS["val"] + SPLITS["test"] else "train"
        category = names[int(rng.choice(len(names), p=probs))]
        text = _text(rng, category, sentences, unknown, recipe["keyword_share"])
        out.append(dict(split=split, category=category, text=text, transcript=normalize(text),
                        context=recipe.get("context", 0.0) if category == "words" else 0.0,
                        tones=recipe.get("tones", 0.0) if category == "silence" else 0.0,
                        voice=str(rng.choice(voices[split])), rate=int(rng.integers(130, 211)),
                        pitch=int(rng.integers(25, 76)), seed=int(rng.integers(2 ** 31))))
    babble = {split: [dict(text=_any_sentence(rng, sentences), voice=str(rng.choice(voices[split])),
                           rate=int(rng.integers(130, 211)), pitch=int(rng.integers(25, 76)))
                      for _ in range(12)] for split in voices}
    return out, babble


def speak(text, voice, rate, pitch):
    """espeak-ng's rendering of `text` as float32 at 16 kHz."""
    result = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdin", "--stdout"],
                            input=text.encode(), capture_output=True, check=True)
    wav = result.stdout
    rate_in = int.from_bytes(wav[24:28], "little")
    samples = np.frombuffer(wav[44:44 + (len(wav) - 44) // 2 * 2], "<i2").astype(np.float32) / 32768.0
    return resample(_trim(samples), rate_in, SAMPLE_RATE)


def _trim(x, threshold=0.01):
    loud = np.flatnonzero(np.abs(x) > threshold * max(float(np.abs(x).max()), 1e-9))
    return x[loud[0]:loud[-1] + 1] if loud.size else x[:0]


def pink_noise(rng, n):
    """Noise with a 1/f power spectrum, unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1.0))
    x = np.fft.irfft(spectrum, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-9)


def tones(rng, seconds):
    """Music-like audio: notes of 0.1-0.5 s (a fundamental of 110-880 Hz with decaying
    harmonics, an attack-decay envelope), sometimes two at once. Unit peak."""
    n = int(seconds * SAMPLE_RATE)
    out, t = np.zeros(n), 0
    while t < n:
        length = min(int(rng.uniform(0.1, 0.5) * SAMPLE_RATE), n - t)
        time = np.arange(length) / SAMPLE_RATE
        for _ in range(int(rng.integers(1, 3))):
            f0 = 110 * 2 ** rng.uniform(0, 3)
            note = sum(np.sin(2 * np.pi * f0 * h * time + rng.uniform(0, 6.3)) / h ** rng.uniform(1, 2)
                       for h in range(1, 6) if f0 * h < SAMPLE_RATE / 2)
            out[t:t + length] += note * np.minimum(time / 0.01, 1) * np.exp(-time * rng.uniform(2, 8))
        t += length
    return out / (np.abs(out).max() + 1e-9)


def impulse_response(rng):
    """A room's impulse response: the direct path then exponentially decaying noise (RT60 0.15-0.7 s)."""
    rt60 = rng.uniform(0.15, 0.7)
    t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(t.size) * np.exp(-6.9 * t / rt60) * rng.uniform(0.1, 0.4)
    tail[: int(0.002 * SAMPLE_RATE)] = 0.0  # the first reflections arrive after the direct sound
    tail[0] = 1.0
    return tail


def _noise(rng, kind, n, babble):
    if kind == "white":
        return rng.standard_normal(n)
    if kind == "pink":
        return pink_noise(rng, n)
    mix = np.zeros(n)
    for k in rng.choice(len(babble), size=int(rng.integers(3, 7)), replace=False):
        talk = np.tile(babble[k], int(np.ceil(n / max(len(babble[k]), 1))) + 1)
        start = int(rng.integers(len(babble[k]) or 1))
        mix += talk[start:start + n]
    return mix


def augment(speech, rng, babble, clip_seconds=None, span=False):
    """The utterance as a recording: speed, reverb, silence (or a place in a fixed-length
    clip), gain and noise. Returns float32 in [-1, 1] (with `span`: and the (start, end)
    samples of the speech in it, reverberation tail excluded)."""
    x = speech.astype(np.float64)
    if x.size and rng.random() < 0.5:
        x = resample(x, 100, int(round(100 * rng.uniform(0.9, 1.1))))
    spoken = x.size
    if x.size and rng.random() < 0.4:
        from scipy.signal import fftconvolve

        x = fftconvolve(x, impulse_response(rng))[: x.size + int(0.3 * SAMPLE_RATE)]
    if clip_seconds:
        n = int(clip_seconds * SAMPLE_RATE)
        x = x[:n]
        start = int(rng.integers(0, n - x.size + 1))
        x = np.pad(x, (start, n - x.size - start))
    else:
        start = int(rng.uniform(0.05, 0.4) * SAMPLE_RATE)
        x = np.pad(x, (start, int(rng.uniform(0.05, 0.4) * SAMPLE_RATE)))
    peak = np.abs(x).max()
    level = 10 ** (rng.uniform(-12, -1) / 20)
    x = x * (level / peak) if peak > 0 else x
    if peak == 0 or rng.random() < 0.8:
        noise = _noise(rng, str(rng.choice(["white", "pink", "babble"])), x.size, babble)
        noise /= np.sqrt(np.mean(noise ** 2)) + 1e-12
        if peak > 0:
            speech_rms = np.sqrt(np.mean(x[np.abs(x) > 0.01 * level] ** 2)) if np.any(x) else 0.0
            x = x + noise * speech_rms / 10 ** (rng.uniform(5, 30) / 20)
        else:  # a silence clip: noise alone, from quiet to loud
            x = noise * 10 ** (rng.uniform(-50, -15) / 20)
    x = np.clip(x, -1.0, 1.0).astype(np.float32)
    return (x, (start, min(start + spoken, x.size))) if span else x


_BABBLE = {}


_CONTEXT = {}


def _render_babble(specs, context=None):
    """Renders each split's babble talkers (and context talkers) once per worker process."""
    def rendered(talkers_by_split):
        return {split: [speak(t["text"], t["voice"], t["rate"], t["pitch"]) for t in talkers]
                for split, talkers in talkers_by_split.items()}

    _BABBLE.update(rendered(specs))
    _CONTEXT.update(rendered(context or {}))


def _render(utterance):
    babble = _BABBLE[utterance["split"]]
    rng = np.random.default_rng(utterance["seed"])
    clean = speak(utterance["text"], utterance["voice"], utterance["rate"], utterance["pitch"]) \
        if utterance["text"] else np.zeros(0, np.float32)
    if utterance["category"] == "speech" and clean.size > SAMPLE_RATE:  # a random second of the sentence
        start = int(rng.integers(0, clean.size - SAMPLE_RATE + 1))
        clean = clean[start:start + SAMPLE_RATE]
    one_second = utterance["category"] in CLIP_CATEGORIES
    if utterance.get("tones"):
        audio = augment(clean, rng, babble, clip_seconds=1.0)
        if rng.random() < utterance["tones"]:
            audio = np.clip(audio + tones(rng, 1.0) * 10 ** (rng.uniform(-25, -3) / 20), -1, 1).astype(np.float32)
        return audio
    if not utterance.get("context"):
        return augment(clean, rng, babble, clip_seconds=1.0 if one_second else None)
    audio, span = augment(clean, rng, babble, clip_seconds=1.0, span=True)
    return with_context(audio, span, rng, _CONTEXT[utterance["split"]]) if rng.random() < utterance["context"] else audio


def _example(utterance, audio):
    import tensorflow as tf

    pcm = np.round(audio * 32767).astype("<i2").tobytes()
    feature = {
        "audio": tf.train.Feature(bytes_list=tf.train.BytesList(value=[pcm])),
        "transcript": tf.train.Feature(bytes_list=tf.train.BytesList(value=[utterance["transcript"].encode()])),
        "category": tf.train.Feature(bytes_list=tf.train.BytesList(value=[utterance["category"].encode()])),
        "voice": tf.train.Feature(bytes_list=tf.train.BytesList(value=[utterance["voice"].encode()])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def corpus_dir(hours, seed, mix="all"):
    version = MIXES[mix].get("version", VERSION)
    return data_cache("speech", f"synth{'' if mix == 'all' else '-' + mix}-v{version}-{hours:g}h-seed{seed}")


def context_talkers(seed):
    """{split: [dict(text, voice, rate, pitch)]}: keyword-free sentences in each split's voices."""
    voices, sentences = voice_splits(), {k: keyword_free(v) for k, v in sentence_pool().items()}
    rng = np.random.default_rng([seed, 7])
    return {split: [dict(text=_any_sentence(rng, sentences), voice=str(rng.choice(voices[split])),
                         rate=int(rng.integers(130, 211)), pitch=int(rng.integers(25, 76)))
                    for _ in range(CONTEXT_TALKERS)] for split in voices}


def with_context(clip, span, rng, talkers):
    """`clip` with the end of one context sentence before the speech at `span` and the start
    of another after it (each side with probability 0.7), 30-250 ms of gap, at the level of
    the clip's speech (x0.5-1.5)."""
    start, end = span
    level = np.sqrt(np.mean(clip[start:end] ** 2)) if end > start else 0.0
    if level == 0:
        return clip
    out = clip.astype(np.float64)
    for side in ("before", "after"):
        if rng.random() >= 0.7:
            continue
        talk = talkers[int(rng.integers(len(talkers)))]
        gap = int(rng.uniform(0.03, 0.25) * SAMPLE_RATE)
        room = start - gap if side == "before" else out.size - end - gap
        if room <= 0 or not talk.size:
            continue
        piece = talk[-room:] if side == "before" else talk[:room]
        piece = piece * level * rng.uniform(0.5, 1.5) / (np.sqrt(np.mean(piece ** 2)) + 1e-9)
        if side == "before":
            out[start - gap - piece.size:start - gap] += piece
        else:
            out[end + gap:end + gap + piece.size] += piece
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def synthesize(hours=4.0, seed=0, out=None, workers=2, verbose=True, mix="all"):
    """Builds the corpus of a mix (`MIXES`) or returns the cached one: its directory, with
    the shards and `manifest.tsv`."""
    import tensorflow as tf

    out = out or corpus_dir(hours, seed, mix)
    if os.path.isfile(os.path.join(out, "manifest.tsv")):
        return out
    utterances, babble = plan(hours, seed, mix)
    tmp = f"{out}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    progress = None
    if verbose:
        import keras

        progress = keras.utils.Progbar(len(utterances), unit_name="utterance")
    rows, writers, counts = [], {}, Counter()
    context = context_talkers(seed) if MIXES[mix].get("context") else None
    with ProcessPoolExecutor(max_workers=workers, initializer=_render_babble, initargs=(babble, context)) as pool:
        for i, audio in enumerate(pool.map(_render, utterances, chunksize=16)):
            u = utterances[i]
            shard = f"{u['split']}-{counts[u['split']] // SHARD_SIZE:05d}.tfrecord"
            if shard not in writers:
                writers[shard] = tf.io.TFRecordWriter(os.path.join(tmp, shard))
            writers[shard].write(_example(u, audio))
            rows.append((f"{shard}#{counts[u['split']] % SHARD_SIZE}", u["split"], u["category"], u["voice"],
                         f"{audio.size / SAMPLE_RATE:.3f}", u["transcript"]))
            counts[u["split"]] += 1
            if progress:
                progress.update(i + 1)
    for writer in writers.values():
        writer.close()
    with open(os.path.join(tmp, "manifest.tsv"), "w", encoding="utf-8") as f:
        f.write("path\tsplit\tcategory\tvoice\tduration\ttranscript\n")
        f.writelines("\t".join(row) + "\n" for row in rows)
    try:
        os.rename(tmp, out)
    except OSError:  # another process finished the same corpus first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        if not os.path.isfile(os.path.join(out, "manifest.tsv")):
            raise UserError(f"{out}: exists but is not a finished corpus; remove it and rerun") from None
    return out


def read_manifest(directory):
    """[dict(path, split, category, voice, duration, transcript)] of a corpus directory."""
    path = os.path.join(directory, "manifest.tsv")
    if not os.path.isfile(path):
        raise UserError(f"{directory}: no manifest.tsv (not a dl-speech synth corpus)")
    with open(path, encoding="utf-8") as f:
        header, *lines = f.read().splitlines()
    keys = header.split("\t")
    return [dict(zip(keys, line.split("\t"))) for line in lines]


# --- `dl-speech synth` ----------------------------------------------------------
def synth_command(args):
    if not args.hours > 0:
        raise UserError(f"--hours: expected a positive number of hours; got {args.hours}")
    if args.workers < 1:
        raise UserError(f"--workers: expected at least 1; got {args.workers}")
    directory = synthesize(args.hours, args.seed, out=args.out, workers=args.workers, mix=args.mix)
    rows = read_manifest(directory)
    hours = Counter()
    for r in rows:
        hours[r["split"]] += float(r["duration"]) / 3600
    print(directory)
    for split in ("train", "val", "test"):
        picked = [r for r in rows if r["split"] == split]
        counts = Counter(r["category"] for r in picked)
        voices = len({r["voice"] for r in picked})
        print(f"{split:5s} {len(picked):6d} utterances {hours[split]:6.2f} h {voices:4d} voices  "
              + " ".join(f"{c}={n}" for c, n in sorted(counts.items())))
