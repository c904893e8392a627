"""Keyword spotting: data, metrics (false accepts vs false rejects) and sliding-window listening."""

import json
import os

import numpy as np

from apps.speech import synth
from apps.speech.data import CLIP_SAMPLES, KWS_CLASSES, corpus_source, fit_clip, kws_label, load_corpus
from shared.data.audio import SAMPLE_RATE, read_wav
from shared.errors import UserError

NUM_KEYWORDS = len(KWS_CLASSES) - 2  # the last two are _unknown_ and _silence_
LISTEN_THRESHOLD = 0.5


def build_kws_data(cfg):
    """Unbatched (one-second waveform float32 [16000], class int32) datasets of the 12 classes.
    With the embedded corpus, `info.extra["stream_hours"]` sizes the held-out streams that
    choose the listening threshold (validation) and report streaming use (test)."""
    from shared.tasks import Data, DataInfo

    corpus = load_corpus(cfg, synth.CLIP_CATEGORIES, cfg.mix)
    make = lambda ds: ds.map(lambda a, t, c: (fit_clip(a), kws_label(t, c)))  # noqa: E731
    counts = {s: len(rows) for s, (_, rows) in corpus.items()}
    extra = {"usage": USAGE, **({"stream_hours": cfg.stream_hours} if cfg.data == "synth" and cfg.stream_hours else {})}
    info = DataInfo(input_shape=(CLIP_SAMPLES,), input_dtype="float32", class_names=KWS_CLASSES,
                    num_train=counts["train"], num_val=counts["val"], num_test=counts["test"],
                    source=corpus_source(cfg, cfg.mix), extra=extra)
    return Data(make(corpus["train"][0]), make(corpus["val"][0]), make(corpus["test"][0]), info)


USAGE = ["SavedModel `serving_default`: `waveform` float32 [N, 16000] (one second, 16 kHz mono in [-1, 1]) -> "
         "`probabilities` float32 [N, 12] in the order " + ", ".join(KWS_CLASSES) + ".",
         "Long recordings: `dl-speech listen RUN long.wav` slides the model over one-second windows."]


def detection_curve(y, probs, thresholds=None):
    """False-reject rate and false accepts per hour at every threshold, for keywords as a
    whole: a keyword clip is accepted when its keyword has the top keyword score and that
    score reaches the threshold; a non-keyword clip (unknown word, silence) is a false
    accept when any keyword's score reaches it. Returns (thresholds, frr, fa_per_hour, far)."""
    y, probs = np.asarray(y).reshape(-1), np.asarray(probs)
    keyword = probs[:, :NUM_KEYWORDS]
    positive = y < NUM_KEYWORDS
    best, top = keyword.argmax(-1), keyword.max(-1)
    thresholds = np.linspace(0.0, 1.0, 201) if thresholds is None else np.asarray(thresholds, float)
    hit = (best[positive] == y[positive])[None, :] & (top[positive][None, :] >= thresholds[:, None])
    frr = 1.0 - hit.mean(1) if positive.any() else np.zeros_like(thresholds)
    far = (top[~positive][None, :] >= thresholds[:, None]).mean(1) if (~positive).any() else np.zeros_like(thresholds)
    return thresholds, frr, far * 3600.0 * SAMPLE_RATE / CLIP_SAMPLES, far


def detection_curve_png(frr, fa_per_hour, point, path, title, xlabel):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(np.maximum(fa_per_hour, 1e-1), frr, lw=2)
    ax.plot([max(point[0], 1e-1)], [point[1]], "o", color="red", label=f"threshold {point[2]:.4g}")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("false-reject rate (keywords)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _probabilities(model):
    import tensorflow as tf

    call = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda batch: np.asarray(call(tf.constant(batch)))


def _stream_rows(model, split, hours, class_names):
    from apps.speech import streams

    waveform, keywords = streams.build_stream(split, hours, verbose=True)
    times, probs = streams.window_probabilities(_probabilities(model), waveform)
    return streams.stream_curve(times, probs, keywords, class_names, len(waveform) / SAMPLE_RATE), len(keywords)


def calibrate_kws(model, data):
    """Chooses the threshold `listen` ships with, for `streams.FA_TARGET` false accepts per
    hour on validation audio: the validation stream through the listening path (embedded
    corpus), else the validation clips. Saved as `info.extra["saved"]["threshold"]`."""
    from apps.speech import streams
    from shared.evaluation.predict import predict_dataset

    info = data.info
    if info.extra.get("stream_hours"):
        rows, _ = _stream_rows(model, "val", info.extra["stream_hours"], info.class_names)
        chosen, source = streams.choose_threshold(rows), "validation stream"
    else:
        _, y, probs = predict_dataset(model, data.val)
        thresholds, frr, fa_per_hour, _ = detection_curve(y, probs)
        rows = [dict(threshold=float(t), false_reject_rate=float(r), false_accepts_per_hour=float(f))
                for t, r, f in zip(thresholds[1:], frr[1:], fa_per_hour[1:])]
        chosen, source = streams.choose_threshold(rows), "validation clips"
    info.extra.setdefault("saved", {})["threshold"] = chosen["threshold"]
    return {"threshold": chosen["threshold"], "chosen_on": source, "fa_target_per_hour": streams.FA_TARGET,
            "val_false_accepts_per_hour": chosen["false_accepts_per_hour"],
            "val_false_reject_rate": chosen["false_reject_rate"]}


def shipped_threshold(info):
    """The threshold the run chose on validation audio (older runs: 0.5)."""
    saved = (info.extra if info is not None else {}).get("saved", {})  # None: a run without data info
    return float(saved.get("threshold", LISTEN_THRESHOLD))


def kws_report(model, ds, info, plots_dir):
    """Classification metrics on the test clips, their detection curve and equal-error point;
    with the embedded corpus, the listening path over the test stream: its whole
    false-accept / false-reject curve (PNG, and the table in `stream.curve`) and the point of
    the threshold chosen on validation audio."""
    from shared.evaluation.classification import classification_metrics
    from shared.evaluation.plots import confusion_matrix_png
    from shared.evaluation.predict import predict_dataset

    _, y, probs = predict_dataset(model, ds)
    result = classification_metrics(y, probs, info.class_names)
    threshold = shipped_threshold(info)
    thresholds, frr, fa_per_hour, far = detection_curve(y, probs)
    _, frr_at, fa_at, _ = detection_curve(y, probs, [threshold])
    eer = int(np.argmin(np.abs(frr - far)))
    result.update({"false_reject_rate": float(frr_at[0]), "false_accepts_per_hour": float(fa_at[0]),
                   "threshold": threshold, "equal_error_rate": float((frr[eer] + far[eer]) / 2),
                   "equal_error_threshold": float(thresholds[eer])})
    plots = [confusion_matrix_png(np.asarray(result["confusion_matrix"]), info.class_names,
                                  os.path.join(plots_dir, "confusion_matrix.png")),
             detection_curve_png(frr, fa_per_hour, (fa_at[0], frr_at[0], threshold),
                                 os.path.join(plots_dir, "false_accept_false_reject.png"),
                                 "Keyword spotting: test clips", "false accepts per hour (non-keyword clips)")]
    if info.extra.get("stream_hours"):
        rows, count = _stream_rows(model, "test", info.extra["stream_hours"], info.class_names)
        point = min(rows, key=lambda r: abs(r["threshold"] - threshold))
        result["stream"] = {"hours": info.extra["stream_hours"], "keywords": count, "threshold": threshold,
                            "false_reject_rate": point["false_reject_rate"],
                            "false_accepts_per_hour": point["false_accepts_per_hour"], "curve": rows}
        plots.append(detection_curve_png([r["false_reject_rate"] for r in rows],
                                         [r["false_accepts_per_hour"] for r in rows],
                                         (point["false_accepts_per_hour"], point["false_reject_rate"], threshold),
                                         os.path.join(plots_dir, "stream_false_accept_false_reject.png"),
                                         "Keyword spotting: listening to the test stream",
                                         "false accepts per hour of audio"))
    return result, plots


def listen(predict, waveform, hop_seconds=0.25, threshold=LISTEN_THRESHOLD, batch_size=64):
    """Keywords heard in a long waveform by `predict` (one-second windows [N, 16000] ->
    probabilities [N, 12]): windows every `hop_seconds`, their probabilities averaged over
    neighbouring windows, one detection per run of windows whose keyword reaches `threshold`
    (at its peak) and none within a refractory second (`apps.speech.streams`). Returns
    [{"keyword", "time" (s, window centre), "confidence"}]."""
    from apps.speech import streams

    times, probs = streams.window_probabilities(predict, waveform, hop_seconds, batch_size)
    found = streams.detections(times, streams.smooth(probs), NUM_KEYWORDS, threshold)
    return [{"keyword": KWS_CLASSES[c], "time": round(t, 2), "confidence": round(p, 4)} for t, c, p in found]


# --- `dl-speech listen RUN WAV` -------------------------------------------------
def listen_command(run, task, info, args):
    from shared.training.runs import load_model

    if run.task != "kws":
        raise UserError(f"{run.path}: a {run.task} run; listen needs a kws run")
    threshold = shipped_threshold(info) if args.threshold is None else args.threshold
    if not 0 < threshold <= 1:
        raise UserError(f"--threshold: expected a probability in (0, 1]; got {threshold}")
    if not 0 < args.hop <= 1:
        raise UserError(f"--hop: expected seconds in (0, 1]; got {args.hop}")
    waveform = read_wav(args.input)
    serving = task.serving_model(load_model(run), info)
    predict = lambda batch: serving({"waveform": batch}, training=False)["probabilities"]  # noqa: E731
    for hit in listen(predict, waveform, args.hop, threshold):
        print(json.dumps(hit) if args.json else f"{hit['time']:8.2f}s  {hit['keyword']:6s} {hit['confidence']:.3f}")
