"""The `generate` task's model, loss, metrics and serving graph: a byte-level causal LM
(`transformer_lm_*`, a miniature GPT of keras-hub decoder blocks, or `lstm_lm_*`)."""

import json
import math
import sys
import time

import keras
import numpy as np

from shared import architectures
from shared.architectures.base import weighted_mean
from shared.data.byte_text import VOCABULARY_SIZE, decode
from shared.errors import UserError

SAMPLES = 3  # test prompts continued in metrics.json


def build_language_model(cfg, info):
    """token_ids int32 [N, L] -> next-byte logits [N, L, 257] (L any length; the transformer
    attends over at most `--sequence-length` bytes)."""
    arch = architectures.architecture_of(cfg.model)
    if arch == "transformer_lm":
        net = architectures.build(cfg.model, vocabulary_size=VOCABULARY_SIZE, sequence_length=cfg.sequence_length)
    elif arch == "recurrent":
        net = architectures.build(cfg.model, vocabulary_size=VOCABULARY_SIZE, num_classes=VOCABULARY_SIZE,
                                  return_sequences=True, head_activation="linear")
    else:
        raise UserError(f"--model {cfg.model}: generate needs a transformer_lm_* or lstm_lm_* model")
    token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")  # scoring takes any length
    return keras.Model(token_ids, net(token_ids), name=f"lm_{cfg.model}")


PRETRAIN_HINT = "`dl-nlp train generate --data english` builds it once"


def pretrained_byte_lm(cfg):
    """`--init-from auto`: the newest complete `generate --data english` run (the byte LM
    pretrained on the English library) of the same `--model` and `--sequence-length`."""
    from shared.training.rundir import runs

    if cfg.data == "english":
        return "", "Pretraining the byte LM from scratch (--data english)"
    for run in reversed(runs("nlp", "generate")):
        config = run.read_config() or {}
        if (run.read_info().get("status") == "complete" and config.get("data") == "english"
                and config.get("model") == cfg.model and config.get("sequence_length") == cfg.sequence_length):
            return run.path, f"Starting from the pretrained byte LM {run.path} (--init-from auto)"
    return "", (f"No pretrained byte LM of --model {cfg.model} and --sequence-length {cfg.sequence_length}: "
                f"training from scratch ({PRETRAIN_HINT}; --init-from '' silences this)")


def next_token_loss(y_true, y_pred):
    """Per-example mean next-byte cross-entropy (nats) over the non-padding targets."""
    ce = keras.losses.sparse_categorical_crossentropy(y_true, y_pred, from_logits=True)
    return weighted_mean(ce, keras.ops.not_equal(y_true, 0))


def next_token_accuracy(y_true, y_pred):
    hit = keras.ops.cast(keras.ops.equal(keras.ops.argmax(y_pred, -1), keras.ops.cast(y_true, "int64")), "float32")
    return weighted_mean(hit, keras.ops.not_equal(y_true, 0))


def document_scores(model, rows, batch_size=32):
    """(natural-log probability, characters) of each document row `END, bytes…`."""
    import tensorflow as tf

    from shared.generation import context_window, sequence_log_prob

    window = context_window(model)
    score = tf.function(lambda ids: sequence_log_prob(model, ids, window), reduce_retracing=True)
    order = np.argsort([len(r) for r in rows])
    log_probs = np.zeros(len(rows))
    for i in range(0, len(rows), batch_size):
        batch = order[i:i + batch_size]
        width = max(len(rows[j]) for j in batch) + 1
        ids = np.zeros((len(batch), width), np.int32)
        for k, j in enumerate(batch):
            ids[k, :len(rows[j])] = rows[j]
        log_probs[batch] = np.asarray(score(tf.constant(ids)))
    chars = np.array([len(decode(r)) for r in rows])
    return log_probs, chars


def language_model_report(model, ds, info, plots_dir):
    """Held-out bits per character and per-byte perplexity over whole test documents (each
    from its start), the unigram baseline, and a few greedy continuations of test prompts."""
    import tensorflow as tf

    from apps.nlp.documents import split_documents, stream_of_windows
    from shared.generation import SignatureSampler, generate_text

    x, y = zip(*ds.as_numpy_iterator())
    rows = split_documents(stream_of_windows(np.stack(x), np.stack(y)))
    log_probs, chars = document_scores(model, rows)
    tokens = sum(len(r) - 1 for r in rows)
    nats = -float(log_probs.sum())
    prompts = [decode(r[1:17]) for r in rows[:SAMPLES]]
    texts = generate_text(model, tf.constant(prompts), 48, SignatureSampler())
    return {"bits_per_char": nats / math.log(2) / max(int(chars.sum()), 1),
            "bits_per_byte": nats / math.log(2) / max(tokens, 1),
            "perplexity": math.exp(nats / max(tokens, 1)),
            "unigram_bits_per_char": info.extra.get("unigram_bits_per_char"),
            "num_documents": len(rows), "num_chars": int(chars.sum()),
            "greedy_samples": [t.decode("utf-8", errors="replace") for t in np.asarray(texts)]}, []


DEFAULTS = {"max_new_tokens": 64, "temperature": 0.8, "top_k": 0, "top_p": 0.9, "seed": 1}


def language_model_serving(model, info):
    """`serving_default(prompt, max_new_tokens, temperature, top_k, top_p, seed) -> {"text"}`
    (prompt + continuation; temperature 0 = greedy) and `score(text) -> {"log_prob",
    "num_chars"}`, as `Endpoints`."""
    import tensorflow as tf

    from shared.export.endpoints import Endpoints
    from shared.generation import SignatureSampler, context_window, generate_text, score_texts

    window = context_window(model)

    def generate(prompt, max_new_tokens, temperature, top_k, top_p, seed):
        sampler = SignatureSampler(temperature, top_k, top_p, seed)
        return {"text": generate_text(model, prompt, max_new_tokens, sampler)}

    def score(text):
        return score_texts(model, text, window)

    scalar = lambda dtype, name: tf.TensorSpec([], dtype, name=name)  # noqa: E731
    signatures = {
        "serving_default": (generate, [tf.TensorSpec([None], tf.string, name="prompt"),
                                       scalar(tf.int32, "max_new_tokens"), scalar(tf.float32, "temperature"),
                                       scalar(tf.int32, "top_k"), scalar(tf.float32, "top_p"),
                                       scalar(tf.int32, "seed")]),
        "score": (score, [tf.TensorSpec([None], tf.string, name="text")]),
    }

    def verify_inputs(token_windows):
        rows = np.asarray(token_windows)
        prompts = np.array([decode(r[:16]).encode("utf-8") for r in rows[:8]], dtype=object)
        texts = np.array([decode(r).encode("utf-8") for r in rows[:64]], dtype=object)
        return {"serving_default": {"prompt": prompts, "max_new_tokens": np.int32(32), "temperature": np.float32(0),
                                    "top_k": np.int32(0), "top_p": np.float32(1), "seed": np.int32(0)},
                "score": {"text": texts}}

    return Endpoints(signatures, track=[model], defaults=DEFAULTS, verify_inputs=verify_inputs)


def logits_core(model, info):
    """The TFLite part: `token_ids` int32 [N, L] -> `logits` float32 [N, L, 257], L the
    training window (id 0 = padding at the end)."""
    token_ids = keras.Input(shape=tuple(info.input_shape), dtype="int32", name="token_ids")
    return keras.Model(token_ids, {"logits": keras.layers.Identity(name="logits")(model(token_ids))},
                       name="logits_core")


def generation_parity(outputs, reference, fmt, quantize="none"):
    """Generated text: exact-match rate (1.0 required); `score`: max |diff| of the log-prob
    relative to its size, characters equal; the logits core: next-byte probabilities by
    max |diff| and top-1 per position."""
    if "logits" in reference:
        return logits_parity(outputs, reference, fmt, quantize)
    tol = {"text_match": 1.0, "log_prob_rel_diff": 1e-4}
    match = float(np.mean([a == b for a, b in zip(outputs["text"], reference["text"])]))
    out, ref = np.asarray(outputs["score/log_prob"], np.float64), np.asarray(reference["score/log_prob"], np.float64)
    rel = float(np.max(np.abs(out - ref) / np.maximum(1.0, np.abs(ref)), initial=0.0))
    chars = bool(np.array_equal(outputs["score/num_chars"], reference["score/num_chars"]))
    return {"text_match": match, "log_prob_rel_diff": rel, "num_chars_equal": float(chars), "tolerance": tol,
            "passed": match >= tol["text_match"] and rel <= tol["log_prob_rel_diff"] and chars}


def logits_parity(outputs, reference, fmt, quantize="none"):
    """A logits core (`"logits"` [..., V]): next-token probabilities by max |diff| and top-1
    per position."""
    from shared.export.verify import compare, tolerance

    tol = tolerance(fmt, quantize)
    probs = [_softmax(np.asarray(d["logits"], np.float64)) for d in (outputs, reference)]
    return {**compare(*(p.reshape(-1, p.shape[-1]) for p in probs), tol), "tolerance": tol}


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def decode_generations(outputs, info):
    return [{"text": t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t),
             "summary": (t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t))}
            for t in np.asarray(outputs["text"]).reshape(-1)]


# --- `dl-nlp generate RUN PROMPT…` ----------------------------------------------
DEFAULT_NEW_TOKENS = 200


def make_sampler(args):
    """The keras-hub sampler the flags ask for, or a one-line error for a bad value."""
    import keras_hub

    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens: expected a positive number; got {args.max_new_tokens}")
    if args.sampler != "greedy" and not args.temperature > 0:
        raise UserError(f"--temperature: expected a positive number (use --sampler greedy for 0); got {args.temperature}")
    if args.sampler == "greedy":
        return keras_hub.samplers.GreedySampler()
    if args.sampler == "beam":
        if args.num_beams < 1:
            raise UserError(f"--num-beams: expected a positive number; got {args.num_beams}")
        return keras_hub.samplers.BeamSampler(num_beams=args.num_beams, temperature=args.temperature)
    seeded = dict(seed=args.seed, temperature=args.temperature)
    if args.sampler == "top_k":
        if args.k < 1:
            raise UserError(f"--k: expected a positive number; got {args.k}")
        return keras_hub.samplers.TopKSampler(k=args.k, **seeded)
    if args.sampler == "top_p":
        if not 0 < args.p <= 1:
            raise UserError(f"--p: expected a probability in (0, 1]; got {args.p}")
        return keras_hub.samplers.TopPSampler(p=args.p, **seeded)
    return keras_hub.samplers.RandomSampler(**seeded)


class _Stream:
    """Prints a row's new bytes as complete UTF-8 characters, as they are generated."""

    def __init__(self, start, out):
        import codecs

        self.next, self.done, self.out = start, False, out
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def __call__(self, ids, index):
        from shared.data.byte_text import END

        row = ids[0].numpy()
        upto = len(row) - 1 if index is None else int(index)
        while not self.done and self.next <= upto:
            token = int(row[self.next])
            self.next += 1
            if token == END:
                self.done = True
            elif 0 < token < 256:
                self.out.write(self.decoder.decode(bytes([token])))
        if index is None:
            self.out.write(self.decoder.decode(b"", final=True))
        self.out.flush()


def generate_command(run, args):
    """Continues each prompt, streaming the text to the terminal (or one JSON line each)."""
    import tensorflow as tf

    from shared.data.byte_text import encode_graph
    from shared.generation import IncrementalLM, continuation_text, generate_ids
    from shared.training.runs import load_model

    if run.task != "generate":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp generate needs a generate run")
    sampler = make_sampler(args)
    model = load_model(run)
    context = IncrementalLM.of(model).max_length
    if args.max_new_tokens is None:
        args.max_new_tokens = DEFAULT_NEW_TOKENS if context is None else min(DEFAULT_NEW_TOKENS, context - 1)
    if context is not None and args.max_new_tokens > context - 1:
        raise UserError(f"--max-new-tokens: this model attends over {context} bytes; expected at most {context - 1}")
    for prompt in args.prompts:
        ids = encode_graph(tf.constant([prompt]))
        stream = None
        if not args.json:
            sys.stdout.write(prompt)
            stream = _Stream(int(ids.row_lengths()[0]), sys.stdout) if args.sampler != "beam" else None
        started = time.perf_counter()
        out, lengths, new_lengths = generate_ids(model, ids, args.max_new_tokens, sampler, on_token=stream)
        seconds = time.perf_counter() - started
        continuation = continuation_text(out, lengths, new_lengths).numpy()[0].decode("utf-8")
        if args.json:
            print(json.dumps({"prompt": prompt, "text": prompt + continuation, "continuation": continuation,
                              "new_tokens": int(new_lengths[0]), "sampler": args.sampler,
                              "tokens_per_second": round(int(new_lengths[0]) / seconds, 1)}, ensure_ascii=False))
        else:
            if stream is None:
                sys.stdout.write(continuation)
            sys.stdout.write("\n")
            sys.stdout.flush()
