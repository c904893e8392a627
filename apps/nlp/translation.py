"""The `translate` task: a Transformer encoder-decoder (`transformer_seq2seq_*`) over WordPiece
subwords, trained with teacher forcing and label smoothing; greedy and beam-search decoding
inside the graph; BLEU and chrF by sacrebleu.

Data flow: raw examples are `{"source": text, "target": text}`; the data's `preprocess` (the
two tokenizers, saved with the run) makes `{"encoder_tokens", "decoder_tokens"}` (the target
after `[START]`) in tf.data, and the labels are the target's pieces then `[END]`.
"""

import json
import sys
import time

import keras
import numpy as np

from shared.data.subword import END, PAD, START
from shared.errors import UserError

SAMPLES = 5  # test sentences shown in metrics.json and TensorBoard
USAGE = [
    "SavedModel `serving_default(text: string[N]) -> {translation: string[N]}`: beam search (the run's "
    "`--beam-size` and `--length-penalty`) inside the graph, WordPiece tokenizing and detokenizing in core TF ops.",
    "TFLite (`model.tflite`): the encoder and a decoder pass, `encoder_tokens` int32 [1, S] and `decoder_tokens` "
    "int32 [1, T] -> `logits` [1, T, V]. Ids come from `source_vocabulary.txt` / `target_vocabulary.txt` (id = line "
    "number; WordPiece, `##` continues a word). The loop beside it: decoder_tokens = [2 ([START])], then repeatedly "
    "append the argmax of the logits at the last real position until 3 ([END]).",
    "TFLite cached decoding (the same file, a piece per step instead of the whole prefix): `encode(encoder_tokens "
    "int32 [1, S]) -> {cross_cache, cache}`, then from token = 2 ([START]), index = 0: `decode_step(encoder_tokens, "
    "cross_cache, cache, token int32 [1], index int32 []) -> {logits [1, V], cache}`; token = argmax(logits), "
    "index += 1, until 3 ([END]) or index = S - 1.",
]


# --- data ------------------------------------------------------------------------------------
def _vocabularies(cfg, train):
    """(source vocabulary, target vocabulary) learned on the training pairs (cached)."""
    from shared.data.subword import cached_vocabulary

    sources, targets = [s for s, _ in train], [t for _, t in train]
    if cfg.shared_vocabulary:
        shared = cached_vocabulary(sources + targets, cfg.vocabulary_size)
        return shared, shared
    return cached_vocabulary(sources, cfg.vocabulary_size), cached_vocabulary(targets, cfg.vocabulary_size)


def translation_tokenizer(source_vocabulary, target_vocabulary, sequence_length):
    """The data's `preprocess`: {`source`, `target`} strings -> {`encoder_tokens`,
    `decoder_tokens`} int32 [N, sequence_length] (the target after [START], truncated)."""
    from shared.data.subword import WordPieceTokenizer

    source = keras.Input(shape=(), dtype="string", name="source")
    target = keras.Input(shape=(), dtype="string", name="target")
    encoder_tokens = WordPieceTokenizer(source_vocabulary, sequence_length, name="source_tokenizer")(source)
    target_ids = WordPieceTokenizer(target_vocabulary, sequence_length + 1, add_start_end=True,
                                    name="target_tokenizer")(target)
    decoder_tokens = keras.layers.Identity(name="decoder_tokens")(target_ids[:, :-1])
    return keras.Model({"source": source, "target": target},
                       {"encoder_tokens": keras.layers.Identity(name="encoder_tokens")(encoder_tokens),
                        "decoder_tokens": decoder_tokens}, name="translation_tokenizer")


def tokenizers(preprocess):
    """(source, target) `WordPieceTokenizer` layers of a translation run's preprocess model."""
    return preprocess.get_layer("source_tokenizer"), preprocess.get_layer("target_tokenizer")


def seq2seq_examples(pairs, preprocess):
    """Unbatched ({"source", "target"} strings, label ids int32 [sequence_length]) of (source,
    target) pairs: the labels are the target's pieces then [END]."""
    import tensorflow as tf

    _, target_tokenizer = tokenizers(preprocess)
    sources, targets = (tf.constant([p[i] for p in pairs], tf.string, shape=[len(pairs)]) for i in (0, 1))
    return tf.data.Dataset.from_tensor_slices(({"source": sources, "target": targets}, target_tokenizer(targets)[:, 1:]))


def build_translate_data(cfg):
    """Unbatched `seq2seq_examples` of the train / validation / test sentence pairs."""
    from apps.nlp.parallel import load_parallel, seeded_sample
    from shared.tasks import Data, DataInfo

    splits = load_parallel(cfg.data, cfg.data_dir, cfg.download)
    train = seeded_sample(splits["train"], cfg.max_train_examples, cfg.seed)  # before the vocabulary is learned
    test = splits["test"][:cfg.max_test_sentences] if cfg.max_test_sentences else splits["test"]
    source_vocabulary, target_vocabulary = _vocabularies(cfg, train)
    preprocess = translation_tokenizer(source_vocabulary, target_vocabulary, cfg.sequence_length)
    make = lambda pairs: seq2seq_examples(pairs, preprocess)  # noqa: E731
    info = DataInfo(input_shape=(), input_dtype="string", num_train=len(train), num_val=len(splits["validation"]),
                    num_test=len(test), preprocess=preprocess,
                    source=f"{cfg.data}: {len(train)} train / {len(splits['validation'])} validation / {len(test)} "
                           "test sentence pairs (split by source sentence)",
                    extra={"train_limited": True, "source_vocabulary_size": len(source_vocabulary),
                           "target_vocabulary_size": len(target_vocabulary), "usage": USAGE,
                           "saved": {"beam_size": cfg.beam_size, "length_penalty": cfg.length_penalty}})
    return Data(make(train), make(splits["validation"]), make(test), info)


# --- model and loss ----------------------------------------------------------------------------
def build_translation_model(cfg, info):
    """{encoder_tokens, decoder_tokens} int32 [N, L] -> next-piece logits [N, L, target vocabulary]."""
    from shared import architectures
    from shared.errors import UserError

    if architectures.architecture_of(cfg.model) != "transformer_seq2seq":
        raise UserError(f"--model {cfg.model}: expected a transformer_seq2seq* model")
    return architectures.build(cfg.model, encoder_vocabulary_size=info.extra["source_vocabulary_size"],
                               decoder_vocabulary_size=info.extra["target_vocabulary_size"],
                               sequence_length=cfg.sequence_length, dropout=cfg.dropout, trim_padding=True)


def bucketed_translation_batch(ds, batch_size):
    """Training batches of sentences of similar target length (the model trims the padding)."""
    import tensorflow as tf

    from shared.tasks import bucketed_batch

    return bucketed_batch(lambda x, y: tf.math.count_nonzero(y, dtype=tf.int32), (6, 9, 12, 16, 24, 32))(ds, batch_size)


def _labels(y_true, y_pred):
    """The labels at the model's (trimmed) decoder width: the cut columns are padding."""
    return keras.ops.cast(y_true, "int32")[:, :keras.ops.shape(y_pred)[1]]


def token_loss(label_smoothing=0.0):
    """Per-example mean cross-entropy over the non-padding target pieces, with label smoothing
    ε: (1 - ε)·(−log p(y)) + ε·mean over the vocabulary of (−log p)."""

    def loss(y_true, y_pred):
        log_probs = keras.ops.log_softmax(keras.ops.cast(y_pred, "float32"), axis=-1)
        y = _labels(y_true, y_pred)
        nll = -keras.ops.take_along_axis(log_probs, keras.ops.expand_dims(y, -1), axis=-1)[..., 0]
        per_token = (1 - label_smoothing) * nll - label_smoothing * keras.ops.mean(log_probs, axis=-1)
        mask = keras.ops.cast(keras.ops.not_equal(y, PAD), "float32")
        return keras.ops.sum(per_token * mask, -1) / keras.ops.maximum(keras.ops.sum(mask, -1), 1.0)

    return loss


def token_accuracy(y_true, y_pred):
    from shared.architectures.base import weighted_mean

    y = _labels(y_true, y_pred)
    hit = keras.ops.cast(keras.ops.equal(keras.ops.cast(keras.ops.argmax(y_pred, -1), "int32"), y), "float32")
    return weighted_mean(hit, keras.ops.not_equal(y, PAD))


# --- decoding ------------------------------------------------------------------------------------
class Translator:
    """Text -> text with a trained seq2seq model and its tokenizers: beam search (`beam_size`
    1 = greedy decoding) in one graph function."""

    def __init__(self, seq2seq, preprocess, beam_size=4, length_penalty=1.0):
        import tensorflow as tf

        self.seq2seq, self.beam_size, self.length_penalty = seq2seq, int(beam_size), float(length_penalty)
        self.source_tokenizer, self.target_tokenizer = tokenizers(preprocess)
        self.encoder = seq2seq.encoder_model()
        self.max_length = seq2seq.sequence_length - 1
        spec = [tf.TensorSpec([None], tf.string)]
        self._compiled = {greedy: tf.function(lambda t, greedy=greedy: self.scored(t, greedy), input_signature=spec)
                          for greedy in (False, True)}

    def ids(self, text, greedy=False):
        """(target piece ids int32 [N, max_length], summed log-prob [N], lengths [N]) of string [N]."""
        import tensorflow as tf

        from shared.decoding import beam_search, greedy_decode

        from shared.architectures.transformer import TrimPadding

        source = TrimPadding()(self.source_tokenizer(text))
        k = 1 if greedy else self.beam_size
        source = tf.repeat(source, k, axis=0)
        step, cache = self.seq2seq.cached_decoding(source, self.encoder(source), self.max_length)

        def next_log_probs(token, index, cache):
            logits, cache = step(token, index, cache)
            return tf.nn.log_softmax(tf.cast(logits, tf.float32)), cache

        n = tf.shape(text)[0]
        if greedy:
            return greedy_decode(next_log_probs, cache, n, self.max_length, START, END)
        return beam_search(next_log_probs, cache, n, self.max_length, START, END, k, self.length_penalty)

    def __call__(self, text, greedy=False):
        return self.scored(text, greedy)[0]

    def scored(self, text, greedy=False):
        """(output string [N], its mean log-probability per piece float32 [N], [END] counted)."""
        import tensorflow as tf

        from shared.data.subword import detokenize

        tokens, log_prob, lengths = self.ids(text, greedy)
        mean = log_prob / tf.cast(tf.maximum(lengths, 1), tf.float32)
        return detokenize(tokens, self.target_tokenizer.vocabulary), mean

    def texts(self, sources, greedy=False, batch_size=64):
        """Translations (str) of a list of sentences, in batches."""
        return self.decode_all(sources, greedy, batch_size)[0]

    def decode_all(self, sources, greedy=False, batch_size=64):
        """(outputs (str), mean log-probabilities per piece) of a list of sentences, in batches."""
        import tensorflow as tf

        texts, scores = [], []
        for i in range(0, len(sources), batch_size):
            out, score = self._compiled[greedy](tf.constant(sources[i:i + batch_size]))
            texts += [t.decode("utf-8") for t in out.numpy()]
            scores += [float(s) for s in score.numpy()]
        return texts, scores


def beam_settings(info):
    """The run's (beam size, length penalty)."""
    saved = info.extra.get("saved") or {}
    return int(saved.get("beam_size", 4)), float(saved.get("length_penalty", 1.0))


def _seq2seq(model):
    from shared.tasks import trained_part

    return trained_part(model)


# --- metrics ---------------------------------------------------------------------------------------
def translation_report(model, ds, info, plots_dir):
    """BLEU and chrF (sacrebleu, detokenized text) of beam search and of greedy decoding on the
    test split; teacher-forced token accuracy and perplexity; a few sample translations."""
    import sacrebleu
    import time

    cfg_beam, cfg_penalty = beam_settings(info)
    examples = list(ds.as_numpy_iterator())
    sources = [x["source"].decode("utf-8") for x, _ in examples]
    references = [x["target"].decode("utf-8") for x, _ in examples]
    translator = Translator(_seq2seq(model), info.preprocess, cfg_beam, cfg_penalty)
    result = {"num_sentences": len(sources)}
    for name, greedy in (("beam", False), ("greedy", True)):
        started = time.perf_counter()
        hypotheses = translator.texts(sources, greedy=greedy)
        seconds = time.perf_counter() - started
        result[name] = {**({"beam_size": cfg_beam, "length_penalty": cfg_penalty} if name == "beam" else {}),
                        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
                        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
                        "ms_per_sentence": 1000 * seconds / max(len(sources), 1)}
        if name == "beam":
            result["samples"] = [{"source": s, "reference": r, "translation": h}
                                 for s, r, h in zip(sources[:SAMPLES], references[:SAMPLES], hypotheses[:SAMPLES])]
    result["bleu"], result["chrf"] = result["beam"]["bleu"], result["beam"]["chrf"]
    result.update(teacher_forced_figures(model, ds))
    return result, []


def teacher_forced_figures(model, ds):
    """Test loss without smoothing: perplexity per target piece, and next-piece accuracy."""
    import math

    nll, hits, count = 0.0, 0.0, 0
    loss = token_loss(0.0)
    for x, y in ds.batch(128):
        logits = model(x, training=False)  # the end-to-end model: raw text pairs in
        tokens = (np.asarray(y) != PAD).sum(1)
        nll += float(np.sum(np.asarray(loss(y, logits)) * tokens))
        hits += float(np.sum(np.asarray(token_accuracy(y, logits)) * tokens))
        count += int(tokens.sum())
    return {"perplexity": math.exp(nll / max(count, 1)), "token_accuracy": hits / max(count, 1)}


# --- serving and export ------------------------------------------------------------------------------
def seq2seq_serving(model, info, outputs):
    """`serving_default(text: string[N]) -> outputs(translator, text)` (a dict of named
    tensors; beam search inside, the run's `beam_settings`)."""
    import tensorflow as tf

    from shared.export.endpoints import Endpoints

    translator = Translator(_seq2seq(model), info.preprocess, *beam_settings(info))

    def verify_inputs(inputs):
        return {"serving_default": {"text": np.asarray(inputs["source"], dtype=object)[:32]}}

    return Endpoints({"serving_default": (lambda text: outputs(translator, text),
                                          [tf.TensorSpec([None], tf.string, name="text")])},
                     track=[_seq2seq(model), info.preprocess], verify_inputs=verify_inputs)


def translation_serving(model, info):
    """`serving_default(text: string[N]) -> {"translation": string[N]}` (beam search inside)."""
    return seq2seq_serving(model, info, lambda translator, text: {"translation": translator(text)})


def translation_core(model, info):
    """The TFLite part: the encoder and a decoder pass over fixed lengths, untrimmed, as
    `serving_default`, and the cached decoding signatures `encode` and `decode_step`
    (`cached_decoding_signatures`; see USAGE)."""
    from shared.export.savedmodel import with_extra_signatures

    seq2seq = _seq2seq(model)
    length = seq2seq.sequence_length
    encoder_tokens = keras.Input(shape=(length,), dtype="int32", name="encoder_tokens")
    decoder_tokens = keras.Input(shape=(length,), dtype="int32", name="decoder_tokens")
    logits = seq2seq.decoder_model()({"encoder_tokens": encoder_tokens, "decoder_tokens": decoder_tokens,
                                      "encoder_sequence": seq2seq.encoder_model()(encoder_tokens)})
    core = keras.Model({"encoder_tokens": encoder_tokens, "decoder_tokens": decoder_tokens},
                       {"logits": keras.layers.Identity(name="logits")(logits)}, name="translation_core")
    return with_extra_signatures(core, cached_decoding_signatures(seq2seq))


def cached_decoding_signatures(seq2seq):
    """{name: (fn, specs)} of greedy decoding a piece at a time with the attention caches, at
    batch 1 (a phone translates a sentence at a time):

    - `encode(encoder_tokens int32 [1, S])` -> `cross_cache` [1, layers, 2, S, heads, head_dim]
      (the decoder's cross-attention keys/values of the sentence) and `cache` (zeros
      [1, layers, 2, S - 1, heads, head_dim]: the self-attention cache to start from);
    - `decode_step(encoder_tokens, cross_cache, cache, token int32 [1], index int32 [])` ->
      `logits` float32 [1, V] of the piece after `token` at position `index`, and `cache`
      with that position written.
    """
    import tensorflow as tf

    length = seq2seq.sequence_length
    encoder = seq2seq.encoder_model()
    cache_spec = lambda steps, name: tf.TensorSpec([1, *seq2seq.cache_shape(steps)], tf.float32, name=name)  # noqa: E731
    tokens_spec = tf.TensorSpec([1, length], tf.int32, name="encoder_tokens")

    def encode(encoder_tokens):
        cross = seq2seq.cross_attention_caches(encoder_tokens, encoder(encoder_tokens))
        return {"cross_cache": tf.cast(cross, tf.float32),
                "cache": tf.zeros([1, *seq2seq.cache_shape(length - 1)], tf.float32)}

    def decode_step(encoder_tokens, cross_cache, cache, token, index):
        logits, cache = seq2seq.decode_step(token, index, cache, cross_cache, encoder_tokens)
        return {"logits": tf.cast(logits, tf.float32), "cache": tf.cast(cache, tf.float32)}

    return {"encode": (encode, [tokens_spec]),
            "decode_step": (decode_step, [tokens_spec, cache_spec(length, "cross_cache"),
                                          cache_spec(length - 1, "cache"), tf.TensorSpec([1], tf.int32, name="token"),
                                          tf.TensorSpec([], tf.int32, name="index")])}


def tflite_greedy(path, preprocess, cached=True):
    """A function `sentences -> translations` decoding greedily with a TFLite file, a sentence
    at a time, as users' loops beside it do: by its `encode` / `decode_step` signatures (the
    attention caches; `cached_decoding_signatures`) or, with `cached=False`, by its core
    (`serving_default`: encoder + decoder over the whole prefix at every step). The
    interpreter and the traced tokenizers are made once (op by op, tokenizing alone took 42 ms
    of a sentence's 59; the TFLite part 19)."""
    import tensorflow as tf

    from shared.data.subword import detokenize
    from shared.export.verify import _interpreter

    source_tokenizer, target_tokenizer = tokenizers(preprocess)
    tokenize = tf.function(source_tokenizer, input_signature=[tf.TensorSpec([1], tf.string)])
    words = tf.function(lambda ids: detokenize(ids, target_tokenizer.vocabulary),
                        input_signature=[tf.TensorSpec([1, None], tf.int32)])
    interpreter = _interpreter(path)
    decode = _cached_pieces(interpreter) if cached else _core_pieces(interpreter)

    def translate(sentences):
        out = []
        for sentence in sentences:
            pieces = decode(np.asarray(tokenize(tf.constant([sentence])), np.int32))
            ids = np.zeros((1, max(len(pieces), 1)), np.int32)
            ids[0, :len(pieces)] = pieces
            out.append(words(tf.constant(ids)).numpy()[0].decode("utf-8"))
        return out

    return translate


def _core_pieces(interpreter):
    """source ids int32 [1, L] -> the greedy target pieces before END, by the TFLite core."""
    runner = interpreter.get_signature_runner("serving_default")

    def decode(source):
        decoder = np.zeros_like(source)
        decoder[0, 0] = START
        for t in range(source.shape[1] - 1):
            logits = runner(encoder_tokens=source, decoder_tokens=decoder)["logits"]
            decoder[0, t + 1] = int(np.argmax(logits[0, t]))
            if decoder[0, t + 1] == END:
                return list(decoder[0, 1:t + 1])
        return list(decoder[0, 1:])

    return decode


def _cached_pieces(interpreter):
    """source ids int32 [1, L] -> the greedy target pieces before END, by `encode` / `decode_step`."""
    encode, step = interpreter.get_signature_runner("encode"), interpreter.get_signature_runner("decode_step")

    def decode(source):
        state = encode(encoder_tokens=source)
        cross, cache = state["cross_cache"], state["cache"]
        pieces, token = [], START
        for index in range(cache.shape[3]):
            result = step(encoder_tokens=source, cross_cache=cross, cache=cache,
                          token=np.array([token], np.int32), index=np.array(index, np.int32))
            cache, token = result["cache"], int(np.argmax(result["logits"][0]))
            if token == END:
                break
            pieces.append(token)
        return pieces

    return decode


def translation_parity(outputs, reference, fmt, quantize="none"):
    """Translations: exact-match rate (1.0 required); the TFLite core: next-piece
    probabilities by max |diff| and top-1 agreement (`logits_parity`)."""
    if "logits" in reference:
        from apps.nlp.language_model import logits_parity

        return logits_parity(outputs, reference, fmt, quantize)
    match = float(np.mean([a == b for a, b in zip(outputs["translation"], reference["translation"])]))
    return {"translation_match": match, "tolerance": {"translation_match": 1.0}, "passed": match >= 1.0}


def decode_translations(outputs, info):
    texts = [t.decode("utf-8", errors="replace") if isinstance(t, bytes) else str(t)
             for t in np.asarray(outputs["translation"]).reshape(-1)]
    return [{"translation": t, "summary": t} for t in texts]


# --- `dl-nlp translate RUN [TEXT…]` ---------------------------------------------
def translate_command(run, cfg, info, args):
    """Translates each argument, or each line of stdin, printing one line per input line."""
    from shared.training.runs import load_model

    if run.task != "translate":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp translate needs a translate run")
    beam = cfg.beam_size if args.beam_size is None else args.beam_size
    if beam < 1:
        raise UserError(f"--beam-size: expected a positive number; got {beam}")
    translator = Translator(load_model(run), info.preprocess, beam, cfg.length_penalty)
    lines = args.texts or (line.rstrip("\n") for line in sys.stdin)
    for line in lines:
        started = time.perf_counter()
        text = translator.texts([line])[0] if line.strip() else ""
        if args.json:
            print(json.dumps({"text": line, "translation": text, "beam_size": beam,
                              "ms": round(1000 * (time.perf_counter() - started), 1)}, ensure_ascii=False), flush=True)
        else:
            print(text, flush=True)
