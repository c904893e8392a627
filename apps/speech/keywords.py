"""Keyword spotting: data, metrics (false accepts vs false rejects) and sliding-window listening."""

import json
import os

import numpy as np

from apps.speech.data import CLIP_SAMPLES, KWS_CLASSES, corpus_source, fit_clip, kws_label, load_corpus
from shared.data.audio import SAMPLE_RATE, read_wav
from shared.errors import UserError

NUM_KEYWORDS = len(KWS_CLASSES) - 2  # the last two are _unknown_ and _silence_
LISTEN_THRESHOLD = 0.5


def build_kws_data(cfg):
    """Unbatched (one-second waveform float32 [16000], class int32) datasets of the 12 classes."""
    from shared.tasks import Data, DataInfo

    corpus = load_corpus(cfg, ("words", "silence"))
    make = lambda ds: ds.map(lambda a, t, c: (fit_clip(a), kws_label(t, c)))  # noqa: E731
    counts = {s: len(rows) for s, (_, rows) in corpus.items()}
    info = DataInfo(input_shape=(CLIP_SAMPLES,), input_dtype="float32", class_names=KWS_CLASSES,
                    num_train=counts["train"], num_val=counts["val"], num_test=counts["test"],
                    source=corpus_source(cfg), extra={"usage": USAGE})
    return Data(make(corpus["train"][0]), make(corpus["val"][0]), make(corpus["test"][0]), info)


USAGE = ["SavedModel `serving_default`: `waveform` float32 [N, 16000] (one second, 16 kHz mono in [-1, 1]) -> "
         "`probabilities` float32 [N, 12] in the order " + ", ".join(KWS_CLASSES) + ".",
         "Long recordings: `dl-speech listen RUN long.wav` slides the model over one-second windows."]


def detection_curve(y, probs):
    """False-reject rate and false accepts per hour at every threshold, for keywords as a
    whole: a keyword clip is accepted when its keyword has the top keyword score and that
    score reaches the threshold; a non-keyword clip (unknown word, silence) is a false
    accept when any keyword's score reaches it. Returns (thresholds, frr, fa_per_hour, far)."""
    y, probs = np.asarray(y).reshape(-1), np.asarray(probs)
    keyword = probs[:, :NUM_KEYWORDS]
    positive = y < NUM_KEYWORDS
    best, top = keyword.argmax(-1), keyword.max(-1)
    thresholds = np.linspace(0.0, 1.0, 201)
    hit = (best[positive] == y[positive])[None, :] & (top[positive][None, :] >= thresholds[:, None])
    frr = 1.0 - hit.mean(1) if positive.any() else np.zeros_like(thresholds)
    far = (top[~positive][None, :] >= thresholds[:, None]).mean(1) if (~positive).any() else np.zeros_like(thresholds)
    return thresholds, frr, far * 3600.0 * SAMPLE_RATE / CLIP_SAMPLES, far


def detection_curve_png(frr, fa_per_hour, point, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(np.maximum(fa_per_hour, 1e-1), frr, lw=2)
    ax.plot([max(point[0], 1e-1)], [point[1]], "o", color="red", label=f"threshold {LISTEN_THRESHOLD}")
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (non-keyword clips)")
    ax.set_ylabel("false-reject rate (keyword clips)")
    ax.set_title("Keyword spotting: false accepts vs false rejects (test)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def kws_report(model, ds, info, plots_dir):
    """Classification metrics, the detection curve (PNG) and its equal-error and 0.5-threshold points."""
    from shared.evaluation.classification import classification_metrics
    from shared.evaluation.plots import confusion_matrix_png
    from shared.evaluation.predict import predict_dataset

    _, y, probs = predict_dataset(model, ds)
    result = classification_metrics(y, probs, info.class_names)
    thresholds, frr, fa_per_hour, far = detection_curve(y, probs)
    at = int(np.argmin(np.abs(thresholds - LISTEN_THRESHOLD)))
    eer = int(np.argmin(np.abs(frr - far)))
    result.update({"false_reject_rate": float(frr[at]), "false_accepts_per_hour": float(fa_per_hour[at]),
                   "threshold": LISTEN_THRESHOLD, "equal_error_rate": float((frr[eer] + far[eer]) / 2),
                   "equal_error_threshold": float(thresholds[eer])})
    plots = [confusion_matrix_png(np.asarray(result["confusion_matrix"]), info.class_names,
                                  os.path.join(plots_dir, "confusion_matrix.png")),
             detection_curve_png(frr, fa_per_hour, (fa_per_hour[at], frr[at]),
                                 os.path.join(plots_dir, "false_accept_false_reject.png"))]
    return result, plots


def listen(serving, waveform, hop_seconds=0.25, threshold=LISTEN_THRESHOLD, batch_size=64):
    """Keywords heard in a long waveform: one-second windows every `hop_seconds`; a keyword
    is reported once per run of windows where it is the top class above `threshold`, at the
    window of its highest score. Returns [{"keyword", "time" (s, window centre), "confidence"}]."""
    hop = int(hop_seconds * SAMPLE_RATE)
    padded = np.pad(waveform, (CLIP_SAMPLES // 2, CLIP_SAMPLES // 2))
    starts = np.arange(0, max(len(padded) - CLIP_SAMPLES, 0) + 1, hop)
    windows = np.stack([padded[s:s + CLIP_SAMPLES] for s in starts]).astype(np.float32)
    probs = np.concatenate([np.asarray(serving({"waveform": windows[i:i + batch_size]})["probabilities"])
                            for i in range(0, len(windows), batch_size)])
    best, score = probs.argmax(-1), probs.max(-1)
    heard, found = [], (best < NUM_KEYWORDS) & (score >= threshold)
    i = 0
    while i < len(starts):
        if not found[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(starts) and found[j + 1] and best[j + 1] == best[i]:
            j += 1
        peak = i + int(np.argmax(score[i:j + 1]))
        heard.append({"keyword": KWS_CLASSES[best[peak]], "time": round(starts[peak] / SAMPLE_RATE, 2),
                      "confidence": round(float(score[peak]), 4)})
        i = j + 1
    return heard


# --- `dl-speech listen RUN WAV` -------------------------------------------------
def listen_command(run, task, info, args):
    from shared.training.runs import load_model

    if run.task != "kws":
        raise UserError(f"{run.path}: a {run.task} run; listen needs a kws run")
    threshold = LISTEN_THRESHOLD if args.threshold is None else args.threshold
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold: expected a probability in (0, 1]; got {threshold}")
    if not 0 < args.hop <= 1:
        raise UserError(f"--hop: expected seconds in (0, 1]; got {args.hop}")
    waveform = read_wav(args.input)
    serving = task.serving_model(load_model(run), info)
    for hit in listen(lambda x: serving(x, training=False), waveform, args.hop, threshold):
        print(json.dumps(hit) if args.json else f"{hit['time']:8.2f}s  {hit['keyword']:6s} {hit['confidence']:.3f}")
