"""`dl-speech bench RUN`: a run against its peer on the same test audio, and its speed.

- asr: WER/CER overall and per category of the run (greedy, beam search, beam search
  rescored with a word trigram LM of the training transcripts, and the lexicon decoder with
  that LM: `apps.speech.rescoring`) beside
  pocketsphinx (its en-us model and default language model; with a digit grammar on the
  digit strings), on the same held-out-voice test utterances; real-time factor (compute
  seconds per audio second) of the SavedModel and the TFLite model at batch 1, and of
  pocketsphinx.
- kws: test accuracy of the Keras model, the TFLite model and the int8 TFLite model on the
  same clips, false accepts per hour and false rejects, and each one's real-time factor.
"""

import json
import os
import time

import numpy as np

from shared.errors import UserError


def _test_examples(task, cfg, limit):
    from shared.training import engine

    data = engine.load_data(task, cfg)
    ds = data.test.take(limit) if limit else data.test
    return data, [(x.numpy(), y) for x, y in ds]


def _rtf(fn, waveforms):
    """Compute seconds per audio second of `fn(waveform [1, S])` over `waveforms` (after one warm-up call)."""
    fn(waveforms[0][None])
    started = time.perf_counter()
    for w in waveforms:
        fn(w[None])
    return (time.perf_counter() - started) / (sum(len(w) for w in waveforms) / 16000)


def _savedmodel_fn(run):
    import tensorflow as tf

    path = run.file("saved_model")
    if not os.path.isdir(path):
        raise UserError(f"{run.path}: no saved_model/ in this run; run `dl-speech export {run.path} --format savedmodel`")
    signature = tf.saved_model.load(path).signatures["serving_default"]
    return lambda x: signature(waveform=tf.constant(x, tf.float32))


def _tflite_fn(path):
    from shared.export.verify import run_tflite

    return lambda x: run_tflite(path, {"waveform": np.asarray(x, np.float32)}, input_name="waveform")


def bench_asr(run, task, cfg, info, args):
    from apps.speech.peers import pocketsphinx_digits, pocketsphinx_transcripts
    from apps.speech.recognition import error_rates, transcribe_dataset
    from shared.training import runs

    data, examples = _test_examples(task, cfg, args.limit)
    categories = (data.info.extra.get("test_categories") or ["all"] * len(examples))[:len(examples)]
    waveforms = [x for x, _ in examples]
    model = runs.load_model(run)
    ds = data.test.take(len(examples))
    refs, greedy, beam = transcribe_dataset(model, ds, beam_width=cfg.beam_width)
    print("Word trigram LM of the training transcripts; alpha and beta on validation …", flush=True)
    from apps.speech.rescoring import lm_beam_search, training_transcripts

    train_text = training_transcripts(data)
    with_lm, fusion = lm_beam_search(model, data.val.take(args.val_limit), ds, train_text, cfg.beam_width)
    print(f"Lexicon decoding ({args.lexicon} words) with the word LM; alpha and beta on validation …", flush=True)
    from apps.speech.rescoring import lexicon_lm_search

    with_lexicon, lexicon = lexicon_lm_search(model, data.val.take(args.val_limit), ds, train_text, cfg.beam_width,
                                              english=args.lexicon == "english")
    print(f"pocketsphinx on {len(waveforms)} test utterances …", flush=True)
    started = time.perf_counter()
    sphinx = pocketsphinx_transcripts(waveforms)
    sphinx_rtf = (time.perf_counter() - started) / (sum(len(w) for w in waveforms) / 16000)
    digits = [i for i, c in enumerate(categories) if c == "digits"]
    sphinx_digits = dict(zip(digits, pocketsphinx_digits([waveforms[i] for i in digits])))
    systems = {f"{cfg.model} greedy": greedy, f"{cfg.model} beam {cfg.beam_width}": beam,
               f"{cfg.model} beam + word LM": with_lm, f"{cfg.model} lexicon + word LM": with_lexicon,
               "pocketsphinx (en-us LM)": sphinx}
    table = {}
    for name, hyps in systems.items():
        table[name] = {"all": error_rates(refs, hyps)}
        for category in sorted(set(categories)):
            picked = [i for i, c in enumerate(categories) if c == category]
            table[name][category] = error_rates([refs[i] for i in picked], [hyps[i] for i in picked])
    if digits:
        table["pocketsphinx (digit grammar)"] = {"digits": error_rates([refs[i] for i in digits],
                                                                       [sphinx_digits[i] for i in digits])}
    timed = waveforms[:args.speed_utterances]
    speed = {"savedmodel": _rtf(_savedmodel_fn(run), timed), "pocketsphinx": sphinx_rtf}
    if os.path.isfile(run.file("model.tflite")):
        speed["tflite"] = _rtf(_tflite_fn(run.file("model.tflite")), timed)
    columns = ["all", *sorted(set(categories))]
    print(f"WER / CER on {len(refs)} test utterances (voices never heard in training):")
    print(f"  {'system':34s}" + "".join(f"{c:>16s}" for c in columns))
    for name, rates in table.items():
        cells = [f"{rates[c]['wer']:.3f} / {rates[c]['cer']:.3f}" if c in rates else "—" for c in columns]
        print(f"  {name:34s}" + "".join(f"{c:>16s}" for c in cells))
    print("Real-time factor at batch 1 (compute s per audio s): "
          + ", ".join(f"{k} {v:.4f}" for k, v in speed.items()))
    print(f"Word LM weight alpha {fusion['alpha']}, word bonus beta {fusion['beta']} (validation WER {fusion['val_wer']:.3f})")
    print(f"Lexicon of {lexicon['lexicon_words']} words: alpha {lexicon['alpha']}, beta {lexicon['beta']} "
          f"(validation WER {lexicon['val_wer']:.3f})")
    result = {"num_utterances": len(refs), "error_rates": table, "real_time_factor": speed, "word_lm": fusion,
              "lexicon_lm": {**lexicon, "words": args.lexicon},
              "samples": [{"reference": r, "ours": g, "pocketsphinx": s} for r, g, s in zip(refs[:8], greedy, sphinx)]}
    _record(run, result)


def bench_kws(run, task, cfg, info, args):
    from apps.speech.keywords import detection_curve, shipped_threshold
    from shared.training import runs

    _, examples = _test_examples(task, cfg, args.limit)
    x = np.stack([e[0] for e in examples]).astype(np.float32)
    y = np.array([int(e[1]) for e in examples])
    serving = task.serving_model(runs.load_model(run), info)
    exported = _savedmodel_fn(run)
    models = {"keras": lambda b: np.asarray(serving(b, training=False)["probabilities"]),
              "savedmodel": lambda b: exported(b)["probabilities"].numpy()}
    for name in ("model.tflite", "model_int8.tflite"):
        if os.path.isfile(run.file(name)):
            lite = _tflite_fn(run.file(name))
            models[name] = lambda b, lite=lite: lite(b)["probabilities"]
    threshold = shipped_threshold(info)
    result = {"num_clips": int(len(y)), "threshold": threshold}
    for name, fn in models.items():
        probs = np.concatenate([fn(x[i:i + 256]) for i in range(0, len(x), 256)])
        _, (frr,), (fa_per_hour,), _ = detection_curve(y, probs, [threshold])
        rtf = _rtf(lambda w: fn(w), list(x[:args.speed_utterances]))
        result[name] = {"accuracy": float(np.mean(probs.argmax(-1) == y)), "false_reject_rate": float(frr),
                        "false_accepts_per_hour": float(fa_per_hour), "real_time_factor": rtf,
                        "size_bytes": os.path.getsize(run.file(name)) if name.endswith(".tflite") else None}
        print(f"  {name:20s} accuracy {result[name]['accuracy']:.4f}  FRR@{threshold:.4g} {frr:.3f}  "
              f"FA/h {fa_per_hour:.1f}  RTF {rtf:.4f}", flush=True)
    _record(run, result)


def _record(run, result):
    from shared.training import runs

    metrics = runs.read_metrics(run)
    metrics["bench"] = json.loads(json.dumps(result, default=float))
    runs.write_metrics(run, metrics)
    print(json.dumps({k: v for k, v in metrics["bench"].items() if k != "samples"}))


def bench(run, task, cfg, info, args):
    if args.limit < 0 or args.speed_utterances < 1:
        raise UserError("--limit: expected 0 (all) or more; --speed-utterances: expected at least 1")
    return (bench_asr if run.task == "asr" else bench_kws)(run, task, cfg, info, args)
