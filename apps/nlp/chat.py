"""The `chat` task, retrieval mode: a dual encoder (`transformer_dual_encoder_*`) trained
with in-batch negatives to score (context, reply) pairs; the reply to a message is the
best-scoring known reply.

Data flow: raw examples are `{"context": text, "reply": text}` with the reply's id (its
index among the distinct known replies) as the label; the data's `preprocess` (one WordPiece
tokenizer for both sides, saved with the run) makes `{"context_tokens", "reply_tokens"}`.
The known replies are kept with the run (`info.extra["saved"]["replies"]`).
"""

import json

import keras
import numpy as np
import tensorflow as tf  # loaded by keras already

from shared.errors import UserError

CANDIDATES = 100  # replies ranked per message in the figures both modes report

USAGE = [
    "SavedModel `serving_default(text: string[N]) -> {reply: string[N], score: float32[N]}`: the best-scoring "
    "known reply and its score, (1 - a - b) * the cosine of the learned embeddings + a * the best TF-IDF cosine "
    "(character 2-5-grams) of the text with a corpus message that reply answers + b * the best cosine of their "
    "IDF-weighted mean word vectors, a and b = the run's `lexical_weight` and `semantic_weight` (chosen on "
    "validation); a multi-turn context is `previous turn [SEP] message`.",
    "TFLite (`model.tflite`): `context_tokens` int32 [N, L] (ids of `vocabulary.txt`, WordPiece) -> `scores` "
    "[N, replies], the learned cosine with every known reply (the lexical and semantic halves need strings, "
    "which TFLite lacks); the reply is line argmax of `replies.txt`.",
]


def chat_splits(cfg):
    """(train, validation, test pairs, the distinct known replies): every pair trains; the test
    and validation sets are held-out variants of every message (apps.nlp.conversations), or
    of `--max-eval-messages` of them; with word vectors (English), validation adds synonym
    variants."""
    from apps.nlp.conversations import load_conversations, message_variant, synonym_variant
    from apps.nlp.parallel import seeded_sample

    pairs = load_conversations(cfg.data, cfg.language)
    validation, test = ([(message_variant(c, seed), r) for c, r in pairs] for seed in (cfg.seed + 1, 1))
    if cfg.word_vectors and cfg.language == "english":  # the semantic index's weight
        from shared.data.english_library import wordnet_synonyms

        synonyms = wordnet_synonyms()
        validation += [(v, r) for v, r in ((synonym_variant(c, synonyms, cfg.seed + 1), r) for c, r in pairs) if v]
    return (seeded_sample(pairs, cfg.max_train_examples, cfg.seed),
            seeded_sample(validation, cfg.max_eval_messages, cfg.seed),
            seeded_sample(test, cfg.max_eval_messages, cfg.seed), sorted({r for _, r in pairs}))


def chat_vocabulary(cfg, train, replies):
    """The WordPiece vocabulary of contexts and replies (cached), `[SEP]` reserved."""
    from apps.nlp.conversations import SEP
    from shared.data.subword import cached_vocabulary

    return cached_vocabulary([c for c, _ in train] + replies, cfg.vocabulary_size, reserved=(SEP,))


def chat_source(cfg, train, replies):
    return (f"{cfg.data} ({cfg.language}): {len(train)} message/reply pairs trained, {len(replies)} distinct "
            "replies; test = a held-out variant of every message")


def build_chat_data(cfg):
    """Unbatched ({"context", "reply"} strings, reply id) datasets (`chat_splits`)."""
    from apps.nlp.conversations import last_message
    from shared.data.subword import WordPieceTokenizer
    from shared.tasks import Data, DataInfo

    train, validation, test, replies = chat_splits(cfg)
    index = {r: i for i, r in enumerate(replies)}
    vocabulary = chat_vocabulary(cfg, train, replies)
    text = keras.Input(shape=(), dtype="string", name="context")
    reply = keras.Input(shape=(), dtype="string", name="reply")
    tokenizer = WordPieceTokenizer(vocabulary, cfg.sequence_length, name="tokenizer")
    preprocess = keras.Model({"context": text, "reply": reply},
                             {"context_tokens": keras.layers.Identity(name="context_tokens")(tokenizer(text)),
                              "reply_tokens": keras.layers.Identity(name="reply_tokens")(tokenizer(reply))},
                             name="chat_tokenizer")

    def make(rows):
        contexts, answers = [c for c, _ in rows], [r for _, r in rows]
        return tf.data.Dataset.from_tensor_slices((
            {"context": tf.constant(contexts, tf.string, shape=[len(rows)]),
             "reply": tf.constant(answers, tf.string, shape=[len(rows)])},
            np.array([index[r] for r in answers], np.int32)))

    messages = sorted({(last_message(c), index[r]) for c, r in train})
    source, extra = chat_source(cfg, train, replies), {}
    if cfg.word_vectors:
        from shared.data.word_vectors import embedding_matrix, load_word_vectors

        vectors = load_word_vectors(cfg.word_vectors)
        extra["embedding_init"], found = embedding_matrix(vocabulary, vectors, cfg.seed)
        source += f"; {found:,} of {len(vocabulary):,} pieces start from a {vectors.dim}-d vector of {vectors.source}"
    info = DataInfo(input_shape=(), input_dtype="string", num_train=len(train), num_val=len(validation),
                    num_test=len(test), preprocess=preprocess, source=source,
                    extra={**extra, "train_limited": True, "vocabulary_size": len(vocabulary), "usage": USAGE,
                           "saved": {"replies": replies, "messages": [m for m, _ in messages],
                                     "message_replies": [i for _, i in messages], "lexical_weight": 0.0,
                                     "semantic_weight": None, "word_vectors": cfg.word_vectors}})
    return Data(make(train), make(validation), make(test), info)


def build_dual_encoder(cfg, info):
    from shared import architectures
    from shared.errors import UserError

    if architectures.architecture_of(cfg.model) != "transformer_dual_encoder":
        raise UserError(f"--model {cfg.model}: chat retrieval needs a transformer_dual_encoder* model")
    model = architectures.build(cfg.model, vocabulary_size=info.extra["vocabulary_size"],
                                sequence_length=cfg.sequence_length, dropout=cfg.dropout)
    if info.extra.get("embedding_init") is not None:
        from apps.nlp.models import start_embedding

        start_embedding(model.get_layer("dual_embedding").token_embedding, info.extra["embedding_init"],
                        cfg.freeze_embedding)
    return model


def in_batch_loss(y_true, y_pred):
    """Per-example softmax cross-entropy of row i's reply (column i) against the batch's other
    replies; a column holding the same reply as row i (another message, same answer) is not
    counted as a negative."""
    y = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
    n = keras.ops.shape(y)[0]
    diagonal = keras.ops.eye(n, dtype="bool")
    same = keras.ops.equal(y[:, None], y[None, :]) & ~diagonal
    logits = keras.ops.where(same, -1e9, keras.ops.cast(y_pred, "float32"))
    return keras.ops.sparse_categorical_crossentropy(keras.ops.arange(n), logits, from_logits=True)


def in_batch_accuracy(y_true, y_pred):
    """Whether row i's best column is its own reply (same-reply columns count as right)."""
    y = keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,))
    best = keras.ops.argmax(y_pred, axis=-1)
    return keras.ops.cast(keras.ops.equal(keras.ops.take(y, best), y), "float32")


LEXICAL_FEATURES = 50000  # character n-grams the lexical index keeps at most (the chatterbot corpus has 15k;
# keeping only the 4,096 most frequent, the least telling, answered 10 % of the reworded questions, not 35 %)


class LexicalIndex:
    """The word-overlap half of hybrid retrieval: TF-IDF vectors of character 2-5-grams (a Keras
    `TextVectorization`, in the graph) of the corpus messages; a text's score for a known reply
    is its best cosine with a message that reply answers (0 for a reply no message has). The run
    keeps the messages, not the n-gram table: fitting it again takes 0.4 s for 417 messages."""

    def __init__(self, messages, message_replies, num_replies):
        self.vectorizer = keras.layers.TextVectorization(
            max_tokens=LEXICAL_FEATURES, standardize="lower_and_strip_punctuation", split="character",
            ngrams=(2, 3, 4, 5), output_mode="tf_idf", name="lexical_index")
        self.vectorizer.adapt(tf.constant(list(messages)))
        vectors = np.asarray(self.vectors(tf.constant(list(messages))))
        rows, columns = np.nonzero(vectors)  # sparse: a message has ~100 of the n-grams
        self.messages = tf.SparseTensor(np.stack([rows, columns], 1).astype(np.int64), vectors[rows, columns],
                                        vectors.shape)  # [M, features]
        self.message_replies = tf.constant(np.asarray(message_replies, np.int32))
        self.num_replies = int(num_replies)

    def vectors(self, text):
        return tf.math.l2_normalize(self.vectorizer(text), -1)

    def scores(self, text):
        """[N, replies] in [0, 1]."""
        per_message = tf.sparse.sparse_dense_matmul(self.messages, self.vectors(text), adjoint_b=True)  # [M, N]
        best = tf.math.unsorted_segment_max(per_message, self.message_replies, self.num_replies)
        return tf.maximum(tf.transpose(best), 0.0)


SEMANTIC_WORDS = 50000  # the vectors' most frequent words the semantic index keeps (with the corpus's own)


class SemanticIndex(tf.Module):
    """The meaning half of hybrid retrieval: a text's vector is the IDF-weighted mean of its
    words' pretrained vectors (`--word-vectors`; IDF over the corpus messages, the highest for a
    word they lack), less the messages' mean vector (the common component, after Arora et al.
    2017), L2-normalised; a text's score for a known reply is its best cosine with a message
    that reply answers (-1 for a reply no message has; 0 for a text without a known word). A
    paraphrase in other words ("hi" for "hello") scores where character n-grams cannot."""

    def __init__(self, vectors, messages, message_replies, num_replies):
        import math

        from shared.data.word_vectors import extended_vocabulary, standardized_words

        super().__init__(name="semantic_index")
        frequency = {}
        for message in messages:
            for word in set(standardized_words(message)):
                frequency[word] = frequency.get(word, 0) + 1
        words = extended_vocabulary([], vectors, SEMANTIC_WORDS)  # standardized, each once
        words += sorted({w for w in frequency if w in vectors.index} - set(words))
        self.lookup = keras.layers.TextVectorization(vocabulary=words, name="semantic_words")  # ids 2, 3, …
        table = np.zeros((len(words) + 2, vectors.dim), np.float32)
        table[2:] = vectors.vectors[[vectors.index[w] for w in words]]
        idf = np.zeros(len(words) + 2, np.float32)
        idf[2:] = [math.log((len(messages) + 1) / (frequency.get(w, 0) + 1)) + 1 for w in words]
        self.table, self.idf = tf.Variable(table, trainable=False), tf.Variable(idf, trainable=False)
        self.center = tf.Variable(np.zeros(vectors.dim, np.float32), trainable=False)
        means = np.asarray(self._means(tf.constant(list(messages))))
        known = means[np.abs(means).sum(1) > 0]  # messages with a word the vectors have
        if len(known):
            self.center.assign(known.mean(0))
        self.messages = tf.Variable(np.asarray(self.vectors(tf.constant(list(messages)))), trainable=False)
        self.message_replies = tf.constant(np.asarray(message_replies, np.int32))
        self.num_replies = int(num_replies)

    def _means(self, text):
        ids = self.lookup(text)
        weights = tf.gather(self.idf, ids)  # 0 for padding and unknown words
        total = tf.reduce_sum(weights, -1, keepdims=True)
        return tf.einsum("nl,nld->nd", weights, tf.gather(self.table, ids)) / tf.maximum(total, 1e-9)

    def vectors(self, text):
        means = self._means(text)
        known = tf.reduce_any(tf.not_equal(means, 0.0), -1, keepdims=True)
        return tf.where(known, tf.math.l2_normalize(means - self.center, -1), 0.0)

    def scores(self, text):
        """[N, replies] in [-1, 1]."""
        per_message = tf.matmul(self.messages, self.vectors(text), transpose_b=True)  # [M, N]
        best = tf.math.unsorted_segment_max(per_message, self.message_replies, self.num_replies)
        return tf.maximum(tf.transpose(best), -1.0)


class Responder:
    """Text -> (best known reply, score) with a trained dual encoder: the score is the cosine of
    the context and reply embeddings, blended with `LexicalIndex` and `SemanticIndex` by the
    weights the run chose on validation: (1 - a - b) * cosine + a * lexical + b * semantic. The
    semantic index reads the run's `--word-vectors` again (the data cache's, or the file)."""

    def __init__(self, model, preprocess, replies, batch_size=256, saved=None):
        from shared.tasks import trained_part

        dual = trained_part(model)
        self.tokenizer = preprocess.get_layer("tokenizer")
        self.context_encoder = dual.side_model("context")
        reply_encoder = dual.side_model("reply")
        self.replies = list(replies)
        self.reply_embeddings = tf.constant(np.concatenate([
            np.asarray(reply_encoder(self.tokenizer(tf.constant(self.replies[i:i + batch_size]))))
            for i in range(0, len(self.replies), batch_size)]))
        saved = saved or {}
        self.lexical_weight = float(saved.get("lexical_weight") or 0.0)
        self.semantic_weight = float(saved.get("semantic_weight") or 0.0)
        self.lexical = (LexicalIndex(saved["messages"], saved["message_replies"], len(self.replies))
                        if saved.get("messages") else None)
        self.semantic = None  # built unless validation chose weight 0 (None: not chosen yet)
        if saved.get("messages") and saved.get("word_vectors") and saved.get("semantic_weight") != 0.0:
            from shared.data.word_vectors import load_word_vectors

            self.semantic = SemanticIndex(load_word_vectors(saved["word_vectors"]), saved["messages"],
                                          saved["message_replies"], len(self.replies))
        self.respond = tf.function(self.__call__, input_signature=[tf.TensorSpec([None], tf.string)])

    def learned(self, text):
        """Cosine similarity of each text with every known reply: [N, replies]."""
        return tf.matmul(self.context_encoder(self.tokenizer(text)), self.reply_embeddings, transpose_b=True)

    def similarities(self, text, weights=None):
        """The blended score of each text with every known reply: [N, replies]; `weights`
        (lexical, semantic) default to the run's."""
        lexical, semantic = (self.lexical_weight, self.semantic_weight) if weights is None else weights
        scores = (1 - lexical - semantic) * self.learned(text)
        if lexical and self.lexical is not None:
            scores += lexical * self.lexical.scores(text)
        if semantic and self.semantic is not None:
            scores += semantic * self.semantic.scores(text)
        return scores

    def __call__(self, text):
        scores = self.similarities(text)
        best = tf.argmax(scores, -1, output_type=tf.int32)
        return {"reply": tf.gather(tf.constant(self.replies), best), "score": tf.reduce_max(scores, -1)}


def _replies(info):
    return (info.extra.get("saved") or {})["replies"]


def responder_of(model, info):
    return Responder(model, info.preprocess, _replies(info), saved=info.extra.get("saved"))


def blend_weights(semantic):
    """(lexical, semantic) weights tried on validation: steps of 0.1 summing to at most 1 (the
    learned cosine takes the rest); semantic 0 when the run has no word vectors."""
    steps = [round(0.1 * i, 1) for i in range(11)]
    return [(a, b) for a in steps for b in (steps if semantic else [0.0]) if a + b <= 1.0 + 1e-9]


def choose_blend_weights(model, data):
    """`calibrate`: the lexical and semantic weights of hybrid retrieval with the best recall@1
    (then MRR) on the validation variants, among `blend_weights`; stored with the run."""
    responder = responder_of(model, data.info)
    contexts, labels = [], []
    for x, y in data.val.as_numpy_iterator():
        contexts.append(x["context"])
        labels.append(int(y))
    if responder.lexical is None or not contexts:
        return None
    chunks = [tf.constant(np.array(contexts[i:i + 256], dtype=object)) for i in range(0, len(contexts), 256)]
    parts = {"learned": responder.learned, "lexical": responder.lexical.scores}
    if responder.semantic is not None:
        parts["semantic"] = responder.semantic.scores
    scores = {name: np.concatenate([np.asarray(fn(c)) for c in chunks]) for name, fn in parts.items()}
    table = {}
    for a, b in blend_weights(responder.semantic is not None):
        blended = (1 - a - b) * scores["learned"] + a * scores["lexical"] + b * scores.get("semantic", 0.0)
        table[(a, b)] = ranking_figures(blended, labels)
    best = max(table, key=lambda w: (table[w]["recall_at_1"], table[w]["mean_reciprocal_rank"]))
    data.info.extra["saved"].update(lexical_weight=best[0], semantic_weight=best[1])
    return {"lexical_weight": best[0], "semantic_weight": best[1],
            "val_recall_at_1_by_weights": {f"lexical {a}, semantic {b}": table[(a, b)]["recall_at_1"]
                                           for a, b in table}}


def chat_report(model, ds, info, plots_dir):
    """Recall@1 / @5 and mean reciprocal rank of the right reply among all known replies, on
    the held-out message variants, and among `candidate_sets` (as the generative mode
    reports them); chance levels beside them; a few sample answers."""
    responder = responder_of(model, info)
    contexts, labels = [], []
    for x, y in ds.as_numpy_iterator():
        contexts.append(x["context"])
        labels.append(int(y))
    scores = np.concatenate([np.asarray(responder.similarities(np.array(contexts[i:i + 256], dtype=object)))
                             for i in range(0, len(contexts), 256)])
    samples = [{"message": c.decode("utf-8"), "reply": _replies(info)[int(np.argmax(s))],
                "expected": _replies(info)[y], "score": float(np.max(s))}
               for c, s, y in zip(contexts[:5], scores[:5], labels[:5])]
    learned = np.concatenate([np.asarray(responder.learned(np.array(contexts[i:i + 256], dtype=object)))
                              for i in range(0, len(contexts), 256)])
    return {**ranking_figures(scores, labels), **candidate_figures(scores, labels), "num_messages": len(labels),
            "num_replies": scores.shape[1], "lexical_weight": responder.lexical_weight,
            "semantic_weight": responder.semantic_weight,
            "learned_only": ranking_figures(learned, labels), "samples": samples}, []


def candidate_sets(labels, num_replies, k=CANDIDATES, seed=0):
    """Reply ids int [messages, k]: the right reply first, then k - 1 others drawn at random
    (seeded: both modes rank the same sets; ranking all replies is too slow for the generative one)."""
    rng = np.random.default_rng(seed)
    k = min(k, num_replies)
    out = np.zeros((len(labels), k), int)
    for i, label in enumerate(labels):
        others = rng.choice(num_replies - 1, k - 1, replace=False)
        out[i] = [label, *(others + (others >= label))]
    return out


def ranking_figures(scores, labels, suffix=""):
    """Recall@1 / @5 and mean reciprocal rank of the right reply (`labels`, column ids) in
    `scores` [messages, replies], with chance levels; ties get the optimistic rank. Keys end
    in `suffix`."""
    labels = np.asarray(labels)
    rank = 1 + (scores > scores[np.arange(len(labels)), labels][:, None]).sum(1)
    n = scores.shape[1]
    figures = {"recall_at_1": float(np.mean(rank <= 1)), "recall_at_5": float(np.mean(rank <= 5)),
               "mean_reciprocal_rank": float(np.mean(1.0 / rank)), "chance_recall_at_1": 1.0 / n,
               "chance_recall_at_5": min(5, n) / n}
    return {f"{k}{suffix}": v for k, v in figures.items()}


def candidate_figures(scores, labels):
    """`ranking_figures` among `candidate_sets` (keys end in `_of_100`): `scores` [messages,
    all replies] or, with `labels` None, already [messages, candidates] right reply first."""
    if labels is not None:
        scores = np.take_along_axis(scores, candidate_sets(labels, scores.shape[1]), 1)
    return ranking_figures(scores, np.zeros(len(scores), int), f"_of_{scores.shape[1]}")


def chat_serving(model, info):
    """`serving_default(text: string[N]) -> {"reply": string[N], "score": float32[N]}`."""
    from shared.export.endpoints import Endpoints

    responder = responder_of(model, info)

    def verify_inputs(inputs):
        return {"serving_default": {"text": np.asarray(inputs["context"], dtype=object)[:64]}}

    lexical = [responder.lexical.vectorizer] if responder.lexical is not None else []
    semantic = [responder.semantic, responder.semantic.lookup] if responder.semantic is not None else []
    return Endpoints({"serving_default": (responder, [tf.TensorSpec([None], tf.string, name="text")])},
                     track=[responder.context_encoder, info.preprocess, *lexical, *semantic],
                     verify_inputs=verify_inputs)


def chat_core(model, info):
    """The TFLite part: the context encoder and the cosine with every known reply (see USAGE)."""
    responder = Responder(model, info.preprocess, _replies(info))  # learned scores only: no string kernels
    ids = keras.Input(shape=(responder.tokenizer.sequence_length,), dtype="int32", name="context_tokens")
    scores = keras.ops.matmul(responder.context_encoder(ids), np.asarray(responder.reply_embeddings).T)
    return keras.Model(ids, {"scores": keras.layers.Identity(name="scores")(scores)}, name="chat_core")


def chat_parity(outputs, reference, fmt, quantize="none"):
    """Replies: exact-match rate (1.0) and score by max |diff|; the TFLite core: the scores by
    max |diff| and the best reply's agreement (retrieval), next-piece probabilities (generative)."""
    from shared.export.verify import compare, tolerance

    if "scores" in reference:
        tol = tolerance(fmt, quantize)
        return {**compare(np.asarray(outputs["scores"]), np.asarray(reference["scores"]), tol), "tolerance": tol}
    if "logits" in reference:  # the generative mode's seq2seq core
        from apps.nlp.language_model import logits_parity

        return logits_parity(outputs, reference, fmt, quantize)
    match = float(np.mean([a == b for a, b in zip(outputs["reply"], reference["reply"])]))
    diff = float(np.max(np.abs(np.asarray(outputs["score"]) - np.asarray(reference["score"])), initial=0.0))
    return {"reply_match": match, "score_max_abs_diff": diff,
            "tolerance": {"reply_match": 1.0, "score_max_abs_diff": 1e-4}, "passed": match >= 1.0 and diff <= 1e-4}


def decode_replies(outputs, info):
    replies = [r.decode("utf-8", errors="replace") if isinstance(r, bytes) else str(r)
               for r in np.asarray(outputs["reply"]).reshape(-1)]
    return [{"reply": r, "score": float(s), "summary": f"{r} ({float(s):.3f})"}
            for r, s in zip(replies, np.asarray(outputs["score"]).reshape(-1))]


# --- `dl-nlp chat RUN` -----------------------------------------------------------
def chat_command(run, cfg, info, args):
    """An interactive session: the reply and its score (retrieval: the cosine; generative: the
    mean log-probability per piece) per message; `/reset` forgets the previous turn, `/quit`
    (or Ctrl-D) ends; readline keeps the history."""
    from apps.nlp.chat_generative import reply_writer
    from apps.nlp.conversations import SEP
    from shared.training.runs import load_model

    if run.task != "chat":
        raise UserError(f"{run.path}: a {run.task} run; dl-nlp chat needs a chat run")
    model = load_model(run)
    generative = cfg.mode == "generative"
    respond = (reply_writer(model, info) if generative
               else responder_of(model, info).respond)
    score_name = "log-prob/piece" if generative else "score"

    def answer(context):
        out = respond([context])
        return out["reply"].numpy()[0].decode("utf-8"), float(out["score"].numpy()[0])

    if args.once is not None:
        reply, score = answer(args.once)
        print(json.dumps({"message": args.once, "reply": reply, "score": round(score, 4)}, ensure_ascii=False)
              if args.json else reply)
        return
    try:
        import readline  # noqa: F401 -- line editing and history for input()
    except ImportError:
        pass
    print(f"Chatting ({cfg.mode}: {'replies written by the model' if generative else 'the known replies'}); "
          "/reset forgets the conversation, /quit ends.", flush=True)
    previous = None
    while True:
        try:
            message = input("you> ").strip()
        except EOFError:
            print()
            return
        if message == "/quit":
            return
        if message == "/reset":
            previous = None
            print("(conversation reset)", flush=True)
            continue
        if not message:
            continue
        reply, score = answer(f"{previous} {SEP} {message}" if previous else message)
        print(f"bot> {reply}   [{score_name} {score:.3f}]", flush=True)
        previous = reply
