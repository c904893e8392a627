"""Open-vocabulary speech recognition: character CTC over the corpus's digits, commands and
sentences; greedy and beam-search decoding; WER/CER with jiwer; the serving graph."""

import json
import os

import numpy as np

from apps.speech.data import ALPHABET, ASR_CATEGORIES, char_ids, corpus_source, ids_to_text, load_corpus
from shared.data.audio import SAMPLE_RATE, read_wav
from shared.errors import UserError

BLANK = len(ALPHABET)
USAGE = [
    "SavedModel `serving_default`: `waveform` float32 [N, S] (16 kHz mono in [-1, 1]; a batch of different "
    "lengths is zero-padded at the end) -> `transcript` string [N] (greedy CTC decoding) and `logits` float32 "
    f"[N, T, {BLANK + 1}] (log-probabilities per 20 ms frame over ' ' + \"'\" + a-z, the last class the CTC blank).",
    "TFLite: `waveform` -> `logits` (the front end inside); decode by taking the best class per frame, merging "
    "repeats and dropping blanks.",
    "Long recordings: `dl-speech transcribe RUN file.wav` cuts them into windows at quiet points.",
]


def _target(waveform, transcript):
    import tensorflow as tf

    labels = char_ids(transcript)
    return {"labels": labels, "label_length": tf.shape(labels)[0], "samples": tf.shape(waveform)[0]}


def build_asr_data(cfg):
    """Unbatched (waveform float32 [S], {"labels", "label_length", "samples"}) datasets; the
    test transcripts' categories (digits, commands, sentences) go into `info.extra`."""
    from shared.tasks import Data, DataInfo

    corpus = load_corpus(cfg, ASR_CATEGORIES)
    make = lambda ds: ds.map(lambda a, t, c: (a, _target(a, t)))  # noqa: E731
    rows = {s: r for s, (_, r) in corpus.items()}
    info = DataInfo(input_shape=(None,), input_dtype="float32", num_train=len(rows["train"]),
                    num_val=len(rows["val"]), num_test=len(rows["test"]), source=corpus_source(cfg),
                    extra={"test_categories": [r.get("category", "") for r in rows["test"]], "usage": USAGE,
                           "beam_width": cfg.beam_width,
                           "train_hours": round(sum(float(r.get("duration", 0)) for r in rows["train"]) / 3600, 3)})
    return Data(make(corpus["train"][0]), make(corpus["val"][0]), make(corpus["test"][0]), info)


def padded_speech_batch(ds, batch_size, drop_remainder=False):
    """Zero-padded waveform batches, in order."""
    return ds.padded_batch(batch_size, drop_remainder=drop_remainder)


def bucketed_speech_batch(ds, batch_size):
    """Training batches of utterances of similar length (`shared.tasks.bucketed_batch`)."""
    import tensorflow as tf

    from shared.tasks import bucketed_batch

    bounds = [int(s * SAMPLE_RATE) for s in (1.5, 2.5, 3.5, 5.0)]
    return bucketed_batch(lambda x, y: tf.shape(x)[0], bounds)(ds, batch_size)


def frames_of(cfg, samples):
    """The acoustic model's valid output frames for waveform lengths (its variant's front end and strides)."""
    from shared import architectures
    from shared.architectures.audio import ctc_output_lengths

    args = architectures.variants("ctc_acoustic")[cfg.model]
    return ctc_output_lengths(samples, args["frame_length"], args["frame_step"], args["conv_strides"])


def asr_loss(cfg, info):
    """Per-utterance CTC loss (an utterance too long for its frames counts 0, not inf)."""
    import tensorflow as tf

    from shared.architectures.audio import ctc_loss

    def loss(y_true, y_pred):
        frames = tf.minimum(frames_of(cfg, y_true["samples"]), tf.shape(y_pred)[1])
        value = ctc_loss(y_true["labels"], y_pred, y_true["label_length"], frames, BLANK)
        return tf.where(tf.math.is_finite(value), value, tf.zeros_like(value))

    return loss


def waveform_lengths(waveform):
    """Samples up to the last non-zero one of each zero-padded row: int32 [N]."""
    import tensorflow as tf

    nonzero = tf.cast(tf.not_equal(waveform, 0.0), tf.int32)
    width = tf.shape(waveform)[1]
    last = width - tf.argmax(tf.reverse(nonzero, [1]), axis=1, output_type=tf.int32)
    return tf.where(tf.reduce_any(nonzero > 0, axis=1), last, 0)


def log_probs(probs):
    """Per-frame probabilities -> log-probabilities (valid CTC logits; the blank stays last)."""
    import tensorflow as tf

    return tf.math.log(tf.maximum(probs, 1e-12))


def frame_probs(model, waveform, samples):
    """The model's per-frame probabilities and each row's valid frames for its `samples`."""
    import tensorflow as tf

    probs = model(waveform, training=False)
    return probs, tf.minimum(model.output_lengths(samples), tf.shape(probs)[1])


def reference_texts(y):
    """The transcripts of a batch of targets, as Python strings."""
    import tensorflow as tf

    ids = tf.RaggedTensor.from_tensor(y["labels"], lengths=y["label_length"]).to_tensor(default_value=-1)
    return [t.decode() for t in ids_to_text(ids).numpy()]


def greedy_transcripts(probs, frames):
    """Best-path CTC decoding -> string [N]."""
    import tensorflow as tf

    decoded, _ = tf.nn.ctc_greedy_decoder(tf.transpose(log_probs(probs), [1, 0, 2]),
                                          tf.cast(frames, tf.int32), blank_index=BLANK)
    return ids_to_text(tf.sparse.to_dense(decoded[0], default_value=-1))


def beam_transcripts(probs, frames, beam_width=16):
    """`tf.nn.ctc_beam_search_decoder` (no language model) -> string [N]."""
    import tensorflow as tf

    logits = log_probs(probs)  # the blank is the last class, as TF's decoder wants
    decoded, _ = tf.nn.ctc_beam_search_decoder(tf.transpose(logits, [1, 0, 2]), tf.cast(frames, tf.int32),
                                               beam_width=beam_width, top_paths=1)
    return ids_to_text(tf.sparse.to_dense(decoded[0], default_value=-1))


def asr_serving(model, info):
    """`serving_default(waveform float32 [N, S]) -> {"transcript" string [N], "logits" float32 [N, T, 29]}`."""
    import tensorflow as tf

    from shared.export.endpoints import Endpoints

    def transcribe(waveform):
        probs, frames = frame_probs(model, waveform, waveform_lengths(waveform))
        return {"transcript": greedy_transcripts(probs, frames), "logits": log_probs(probs)}

    def verify_inputs(waveforms):
        return {"serving_default": {"waveform": np.asarray(waveforms, np.float32)[:16]}}

    spec = [tf.TensorSpec([None, None], tf.float32, name="waveform")]
    return Endpoints({"serving_default": (transcribe, spec)}, track=[model], verify_inputs=verify_inputs)


def logits_core(model, info):
    """The TFLite part: `waveform` float32 [N, S] -> `logits` float32 [N, T, 29] (front end inside)."""
    import keras

    waveform = keras.Input(shape=(None,), dtype="float32", name="waveform")
    probs = model(waveform)
    logits = keras.layers.Lambda(lambda p: keras.ops.log(keras.ops.maximum(p, 1e-12)), name="logits")(probs)
    return keras.Model(waveform, {"logits": logits}, name="logits_core")


def error_rates(references, hypotheses):
    """jiwer's WER and CER (0 for no references)."""
    import jiwer

    pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
    if not pairs:
        return {"wer": 0.0, "cer": 0.0}
    refs, hyps = [r for r, _ in pairs], [h for _, h in pairs]
    return {"wer": float(jiwer.wer(refs, hyps)), "cer": float(jiwer.cer(refs, hyps))}


def transcribe_dataset(model, ds, batch_size=32, beam_width=0):
    """(references, greedy hypotheses, beam hypotheses or None) over a (waveform, target) dataset."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def run(x, samples):
        probs, frames = frame_probs(model, x, samples)
        beam = beam_transcripts(probs, frames, beam_width) if beam_width else tf.constant([""])
        return greedy_transcripts(probs, frames), beam

    refs, greedy, beam = [], [], []
    for x, y in ds.padded_batch(batch_size):
        g, b = run(x, y["samples"])
        refs += reference_texts(y)
        greedy += [t.decode() for t in g.numpy()]
        beam += [t.decode() for t in b.numpy()]
    return refs, greedy, (beam if beam_width else None)


def asr_report(model, ds, info, plots_dir, beam_width=16):
    """WER/CER (greedy and beam search) overall and per category, and sample transcripts."""
    refs, greedy, beam = transcribe_dataset(model, ds, beam_width=beam_width)
    categories = info.extra.get("test_categories") or [""] * len(refs)
    result = {**error_rates(refs, greedy), "num_utterances": len(refs)}
    result.update({f"beam_{k}": v for k, v in error_rates(refs, beam).items()})
    for category in sorted(set(categories)):
        picked = [i for i, c in enumerate(categories[:len(refs)]) if c == category]
        rates = error_rates([refs[i] for i in picked], [greedy[i] for i in picked])
        result[f"per_category_{category}"] = {**rates, "num_utterances": len(picked)}
    result["samples"] = [{"reference": r, "greedy": g, "beam": b} for r, g, b in list(zip(refs, greedy, beam))[:10]]
    path = os.path.join(plots_dir, "transcripts.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(f"REF  {r}\nHYP  {g}\n\n" for r, g in zip(refs, greedy))
    return result, []


def asr_parity(outputs, reference, fmt, quantize="none"):
    """Transcripts: agreement rate; logits: the per-frame probabilities by max |diff|."""
    from shared.export.verify import compare, tolerance

    tol = tolerance(fmt, quantize)
    probs = [np.exp(np.asarray(d["logits"], np.float64)).reshape(-1, BLANK + 1) for d in (outputs, reference)]
    result = {**compare(*probs, tol), "tolerance": tol}
    if "transcript" in reference:
        match = float(np.mean([a == b for a, b in zip(outputs["transcript"], reference["transcript"])]))
        result["transcript_match"] = match
        result["passed"] = bool(result["passed"] and match >= (1.0 if quantize == "none" else 0.8))
    return result


def decode_transcripts(outputs, info):
    text = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in np.asarray(outputs["transcript"]).reshape(-1)]
    return [{"transcript": t, "summary": t} for t in text]


# --- `dl-speech transcribe RUN WAV…` ----------------------------------------------
WINDOW_SECONDS = 15.0  # transcribe: longer files are cut into windows of at most this
QUIET_SEARCH_SECONDS = 3.0  # … at the quietest 50 ms within the window's last seconds


def windows(waveform, window=WINDOW_SECONDS, search=QUIET_SEARCH_SECONDS):
    """[(start, end)] sample ranges covering `waveform`, each at most `window` seconds, cut
    at the quietest 50 ms of the last `search` seconds of each window."""
    size, frame = int(window * SAMPLE_RATE), int(0.05 * SAMPLE_RATE)
    out, start = [], 0
    while len(waveform) - start > size:
        tail = waveform[start + size - int(search * SAMPLE_RATE):start + size]
        energy = np.convolve(tail ** 2, np.ones(frame), "valid")
        cut = start + size - int(search * SAMPLE_RATE) + int(np.argmin(energy)) + frame // 2
        out.append((start, cut))
        start = cut
    out.append((start, len(waveform)))
    return out


def lexicon_decoder(run, task, cfg, beam_width, words="english"):
    """`log-probabilities [T, 29] -> text` by the lexicon decoder with the word LM of the
    run's training transcripts, at the alpha and beta `dl-speech bench` chose (else 0.5, 1)."""
    from apps.speech.rescoring import lexicon_decode, lexicon_words, training_transcripts, word_lm
    from shared.lexicon_decoding import Lexicon, ngram_word_score
    from shared.training import engine, runs

    chosen = runs.read_metrics(run).get("bench", {}).get("lexicon_lm", {})
    alpha, beta = chosen.get("alpha", 0.5), chosen.get("beta", 1.0)
    print(f"Lexicon decoding with the word LM of the run's training transcripts (alpha {alpha}, beta {beta}"
          f"{'' if chosen else ': run `dl-speech bench` to choose them on validation audio'}) …", flush=True)
    train_text = training_transcripts(engine.load_data(task, cfg))
    lexicon = Lexicon(lexicon_words(train_text, english=words == "english"))
    score = ngram_word_score(word_lm(train_text))
    return lambda lp: lexicon_decode([lp], lexicon, score, alpha, beta, beam_width or 16)[0]


def transcribe_command(run, task, cfg, args):
    import tensorflow as tf

    from shared.training.runs import load_model

    if run.task != "asr":
        raise UserError(f"{run.path}: a {run.task} run; transcribe needs an asr run")
    if args.beam_width < 0:
        raise UserError(f"--beam-width: expected 0 (greedy) or a positive number; got {args.beam_width}")
    waveforms = [read_wav(path) for path in args.inputs]  # every file checked before any work
    model = load_model(run)
    with_lexicon = lexicon_decoder(run, task, cfg, args.beam_width, args.lm) if args.lm else None

    @tf.function(reduce_retracing=True)
    def decode(x):
        probs = model(x, training=False)
        frames = model.output_lengths(tf.fill([tf.shape(x)[0]], tf.shape(x)[1]))
        if args.lm:
            return log_probs(probs)[0, :frames[0]]
        return beam_transcripts(probs, frames, args.beam_width) if args.beam_width else greedy_transcripts(probs, frames)

    def transcript(x):
        out = decode(x).numpy()
        return with_lexicon(out) if args.lm else out[0].decode()

    for path, waveform in zip(args.inputs, waveforms):
        parts = [transcript(waveform[None, s:e]) for s, e in windows(waveform)]
        text = " ".join(p for p in parts if p).strip()
        if args.json:
            print(json.dumps({"input": path, "transcript": text, "seconds": round(len(waveform) / SAMPLE_RATE, 2)}))
        else:
            print(f"{path}: {text}")
