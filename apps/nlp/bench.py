"""`dl-nlp bench RUN`: a run against its peer on the same split, and its speed.

Translate runs: BLEU and chrF (sacrebleu) of beam search and greedy decoding beside the
rule-based Apertium system (`apertium -u eng-spa`, English -> Spanish) on the run's test
sentences; milliseconds per sentence at batch 1 for the Keras model (beam, greedy), the
SavedModel (beam, inside the graph) and the TFLite file driven by greedy loops beside it:
re-running the whole prefix through its `serving_default` core, and a piece a step with the
attention caches through its `encode` / `decode_step` signatures; both must give the Keras
greedy translations.

Chat runs: the right-reply rate on questions reworded as a person would (`--questions`,
default tests/data/chat_reworded.tsv: each question with the corpus message it means; a reply
is right when the corpus gives it to that message), beside the reply of the corpus message
nearest by TF-IDF (sklearn; word 1-2 grams and char 2-5 grams).

Sentiment runs: ROC AUC and accuracy on the run's test split (with `--hold-out SOURCE`, a
whole VADER source never trained on) beside TF-IDF (word 1-2 or char 2-5 grams) + logistic
regression fitted on the run's training split, and the VADER analyser.

Generate runs:

- Quality: bits per character on the run's test documents, beside nltk's interpolated
  Kneser-Ney character model at the order and discount best on the validation documents
  (both score each document from its start; characters, not tokens, so the figures compare).
- Speed: new tokens per second of greedy generation at batch 1 and 8, with the KV cache
  and recomputing the whole prefix every step, each as one compiled graph (as the
  SavedModel runs it), best of `rounds`.
"""

import json
import os
import time

from shared.errors import UserError


def generation_speed(model, new_tokens, batch_sizes=(1, 8), rounds=2):
    """{"batch_{n}_{cached|uncached}": tokens per second} of greedy generation from an empty prompt."""
    import tensorflow as tf

    from shared.data.byte_text import encode_graph
    from shared.generation import SignatureSampler, generate_ids

    result = {}
    for batch in batch_sizes:
        prompts = tf.constant([""] * batch)
        for cached in (True, False):
            run = tf.function(lambda p, cached=cached: generate_ids(model, encode_graph(p), new_tokens, SignatureSampler(),
                                                                    cached=cached, stop_at_end=False)[2])
            run(prompts)  # trace
            best = 0.0
            for _ in range(rounds):
                started = time.perf_counter()
                generated = int(tf.reduce_sum(run(prompts)))
                best = max(best, generated / (time.perf_counter() - started))
            result[f"batch_{batch}_{'cached' if cached else 'uncached'}"] = best
    return result


def _per_sentence_ms(fn, sentences):
    """Mean milliseconds of `fn(sentence)` over `sentences`, after one warm-up call."""
    fn(sentences[0])
    started = time.perf_counter()
    for sentence in sentences:
        fn(sentence)
    return 1000 * (time.perf_counter() - started) / len(sentences)


def bench_translate(run, cfg, info, args):
    """Prints the side-by-side table and one JSON line; records it in metrics.json as "bench"."""
    import numpy as np
    import sacrebleu
    import tensorflow as tf

    from apps.nlp.parallel import load_parallel
    from apps.nlp.peers import apertium_translations
    from apps.nlp.translation import Translator, tflite_greedy
    from shared.training import runs

    metrics = runs.read_metrics(run)
    if "beam" not in metrics.get("test", {}):
        raise UserError(f"{run.path}: no test BLEU in metrics.json; run `dl-nlp evaluate {run.path}` first")
    test = load_parallel(cfg.data, cfg.data_dir, cfg.download)["test"]
    test = test[:cfg.max_test_sentences] if cfg.max_test_sentences else test
    sources, references = [s for s, _ in test], [t for _, t in test]
    rows = {f"ours, beam {metrics['test']['beam']['beam_size']}": metrics["test"]["beam"],
            "ours, greedy": metrics["test"]["greedy"]}
    if cfg.data in ("gettext:es", "gettext+help:es"):  # the same test sentences (help pages only train)
        print(f"Apertium eng-spa on the {len(sources)} test sentences …", flush=True)
        started = time.perf_counter()
        peer = apertium_translations(sources)
        if peer is None:
            print("  apertium is not installed (make setup installs apertium-eng-spa): peer skipped")
        else:
            rows["Apertium eng-spa (rule-based)"] = {
                "bleu": sacrebleu.corpus_bleu(peer, [references]).score,
                "chrf": sacrebleu.corpus_chrf(peer, [references]).score,
                "ms_per_sentence": 1000 * (time.perf_counter() - started) / len(sources)}
    sample = sources[:args.latency_sentences]
    model = runs.load_model(run)
    beam = Translator(model, info.preprocess, cfg.beam_size, cfg.length_penalty)
    latency = {"keras_beam": _per_sentence_ms(lambda s: beam.texts([s]), sample),
               "keras_greedy": _per_sentence_ms(lambda s: beam.texts([s], greedy=True), sample)}
    saved = os.path.join(run.path, "saved_model")
    if os.path.isdir(saved):
        fn = tf.saved_model.load(saved).signatures["serving_default"]
        latency["savedmodel_beam"] = _per_sentence_ms(lambda s: fn(text=tf.constant([s])), sample)
    tflite = os.path.join(run.path, "model.tflite")
    if os.path.isfile(tflite):
        keras_greedy = beam.texts(sample, True)
        few = sample[:args.tflite_sentences]
        core, cached_loop = tflite_greedy(tflite, info.preprocess, cached=False), tflite_greedy(tflite, info.preprocess)
        core(few[:1]), cached_loop(few[:1])  # the first calls allocate and trace
        started = time.perf_counter()
        loop = core(few)
        latency["tflite_core_greedy_loop"] = 1000 * (time.perf_counter() - started) / len(few)
        latency["tflite_greedy_equals_keras"] = float(np.mean([a == b for a, b in zip(loop, keras_greedy)]))
        started = time.perf_counter()
        cached = cached_loop(sample)
        latency["tflite_cached_greedy_loop"] = 1000 * (time.perf_counter() - started) / len(sample)
        latency["tflite_cached_equals_keras"] = float(np.mean([a == b for a, b in zip(cached, keras_greedy)]))
    result = {"num_sentences": len(sources), "quality": rows, "ms_per_sentence_batch_1": latency}
    print(f"BLEU / chrF on the {len(sources)} test sentences of {cfg.data} (sacrebleu, detokenized):")
    for name, row in rows.items():
        print(f"  {name:34s} BLEU {row['bleu']:6.2f}   chrF {row['chrf']:6.2f}")
    print(f"Milliseconds per sentence at batch 1 (first {len(sample)} test sentences):")
    for name, value in latency.items():
        print(f"  {name:34s} {value:8.2f}")
    metrics["bench"] = json.loads(json.dumps(result, default=lambda v: float(np.asarray(v))))
    runs.write_metrics(run, metrics)
    print(json.dumps(metrics["bench"]))


def _numbers(text, flag, kind):
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values:
        raise UserError(f"{flag}: expected a comma list of numbers; got '{text}'")
    return values


REWORDED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        "tests", "data", "chat_reworded.tsv")


def reworded_questions(path, pairs):
    """[(question, {right replies})] of a `question<TAB>corpus message` file (`#` comments):
    a reply is right when the corpus gives it to that message (after any earlier turn)."""
    from apps.nlp.conversations import last_message

    if not os.path.isfile(path):
        raise UserError(f"--questions {path}: no such file")
    right = {}
    for context, reply in pairs:
        right.setdefault(last_message(context), set()).add(reply)
    out = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            question, _, message = (c.strip() for c in line.partition("\t"))
            if not question or message not in right:
                raise UserError(f"--questions {path}: line {number}: expected question<TAB>a message of the corpus")
            out.append((question, right[message]))
    if not out:
        raise UserError(f"--questions {path}: no questions")
    return out


def bench_chat(run, cfg, info, args):
    """Right-reply rate on reworded questions (`--questions`, default tests/data/chat_reworded.tsv)
    of the run beside the TF-IDF nearest-message peers; printed and recorded in metrics.json."""
    import numpy as np
    import tensorflow as tf

    from apps.nlp.chat import responder_of
    from apps.nlp.chat_generative import reply_writer
    from apps.nlp.conversations import last_message, load_conversations
    from apps.nlp.peers import TFIDF_PEERS, tfidf_nearest_replies
    from shared.training import runs

    pairs = load_conversations(cfg.data, cfg.language)
    questions = reworded_questions(args.questions or REWORDED, pairs)
    texts = [q for q, _ in questions]
    model = runs.load_model(run)
    if cfg.mode == "generative":
        respond = reply_writer(model, info)
    else:
        respond = responder_of(model, info).respond
    ours = [r.decode("utf-8") for r in respond(tf.constant(texts))["reply"].numpy()]
    answers = {f"ours ({cfg.mode}, {cfg.model})": ours}
    messages = [last_message(c) for c, _ in pairs]
    for name, kwargs in TFIDF_PEERS.items():
        answers[name] = tfidf_nearest_replies(messages, [r for _, r in pairs], texts, **kwargs)
    rates = {name: float(np.mean([a in right for a, (_, right) in zip(replies, questions)]))
             for name, replies in answers.items()}
    print(f"Right replies to {len(questions)} reworded questions ({args.questions or REWORDED}):")
    for name, rate in rates.items():
        print(f"  {name:40s} {rate:6.1%}")
    metrics = runs.read_metrics(run)
    metrics["bench"] = {"num_questions": len(questions), "right_reply_rate": rates}
    runs.write_metrics(run, metrics)
    print(json.dumps(metrics["bench"]))


def bench_sentiment(run, cfg, info, args):
    """ROC AUC and accuracy of the run on its test split beside TF-IDF + logistic regression
    (fitted on the run's training split) and VADER (`--data vader`); printed and recorded."""
    import numpy as np

    from apps.nlp.data import load_texts
    from apps.nlp.peers import TFIDF_CLASSIFIERS, tfidf_logistic_peer, vader_peer
    from shared.training import runs

    if cfg.target != "polarity":
        raise UserError(f"{run.path}: dl-nlp bench compares classifiers (--target polarity)")
    metrics = runs.read_metrics(run)
    if "roc_auc" not in metrics.get("test", {}):
        raise UserError(f"{run.path}: no test ROC AUC in metrics.json; run `dl-nlp evaluate {run.path}` first")
    splits, names, source = load_texts(cfg)
    rows = {f"ours ({cfg.model})": metrics["test"]}
    for name, kwargs in TFIDF_CLASSIFIERS.items():
        rows[name] = tfidf_logistic_peer(splits["train"][:2], splits["val"][:2], splits["test"][:2], names, **kwargs)
    if cfg.data == "vader":
        rows["VADER (rule-based)"] = vader_peer(splits["test"][0], splits["test"][1])
    figures = {name: {k: float(row[k]) for k in ("roc_auc", "accuracy") if k in row} for name, row in rows.items()}
    print(f"On the {len(splits['test'][0])} test texts of {source}:")
    for name, row in figures.items():
        print(f"  {name:42s} ROC AUC {row['roc_auc']:.4f}   accuracy {row.get('accuracy', float('nan')):.4f}")
    metrics["bench"] = {"num_test": len(splits["test"][0]), "hold_out": cfg.hold_out, "quality": figures}
    runs.write_metrics(run, json.loads(json.dumps(metrics, default=lambda v: float(np.asarray(v)))))
    print(json.dumps(metrics["bench"]))


def bench_run(run, task, cfg, info, args):
    """`dl-nlp bench RUN`: the translate, chat, sentiment or generate bench."""
    if run.task == "chat":
        return bench_chat(run, cfg, info, args)
    if run.task == "sentiment":
        return bench_sentiment(run, cfg, info, args)
    if run.task == "translate":
        if args.latency_sentences < 1 or args.tflite_sentences < 1:
            raise UserError("--latency-sentences, --tflite-sentences: expected positive numbers")
        return bench_translate(run, cfg, info, args)
    return bench_generate(run, task, cfg, info, args)


def bench_generate(run, task, cfg, info, args):
    """Prints the side-by-side table and one JSON line; records it in metrics.json as "bench"."""
    import numpy as np

    from apps.nlp.documents import load_documents
    from apps.nlp.peers import kneser_ney_peer
    from shared.generation import IncrementalLM
    from shared.training import runs

    if run.task != "generate":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp bench compares generate, translate, chat and "
                        "sentiment runs")
    orders = _numbers(args.orders, "--orders", int)
    discounts = _numbers(args.discounts, "--discounts", float)
    if min(orders) < 1 or not all(0 <= d <= 1 for d in discounts):
        raise UserError("--orders: expected orders >= 1; --discounts: expected values in [0, 1]")
    metrics = runs.read_metrics(run)
    if "bits_per_char" not in metrics.get("test", {}):
        raise UserError(f"{run.path}: no test bits_per_char in metrics.json; run `dl-nlp evaluate {run.path}` first")
    model = runs.load_model(run)
    context = IncrementalLM.of(model).max_length
    new_tokens = min(args.new_tokens, context - 1) if context else args.new_tokens
    splits, _ = load_documents(cfg)
    print(f"n-gram peer on {cfg.data}: {len(splits['train'])} training, {len(splits['val'])} validation, "
          f"{len(splits['test'])} test documents", flush=True)
    peer = kneser_ney_peer(splits["train"], splits["val"], splits["test"], orders, discounts)
    print(f"Generation speed ({new_tokens} new tokens, greedy, compiled):", flush=True)
    speed = generation_speed(model, new_tokens)
    ours = metrics["test"]["bits_per_char"]
    result = {"bits_per_char": ours, "kneser_ney_bits_per_char": peer["bits_per_char"],
              "kneser_ney_order": peer["order"], "kneser_ney_discount": peer["discount"],
              "kneser_ney_val_bits_per_char": peer["val_bits_per_char"],
              "unigram_bits_per_char": metrics["test"].get("unigram_bits_per_char"),
              "new_tokens": new_tokens, "tokens_per_second": speed}
    print(f"Bits per character on the {len(splits['test'])} test documents ({peer['num_chars']:,} characters):")
    print(f"  {cfg.model:34s} {ours:.4f}")
    print(f"  {'Kneser-Ney (nltk), order ' + str(peer['order']) + ', d ' + str(peer['discount']):34s} "
          f"{peer['bits_per_char']:.4f}")
    print(f"  {'unigram (training bytes)':34s} {result['unigram_bits_per_char']:.4f}")
    for key, value in speed.items():
        print(f"  {key.replace('_', ' '):22s} {value:10.1f} tokens/s")
    print(f"  KV cache speed-up: batch 1 x{speed['batch_1_cached'] / speed['batch_1_uncached']:.2f}, "
          f"batch 8 x{speed['batch_8_cached'] / speed['batch_8_uncached']:.2f}")
    metrics["bench"] = json.loads(json.dumps(result, default=lambda v: float(np.asarray(v))))
    runs.write_metrics(run, metrics)
    print(json.dumps(metrics["bench"]))
