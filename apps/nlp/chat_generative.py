"""The `chat` task, generative mode: the translate task's Transformer encoder-decoder, loss and
beam search write a reply to the context (`previous turn [SEP] message`); its score is the
reply's mean log-probability per piece ([END] counted).

Data flow: raw examples are `{"source": context, "target": reply}` (`seq2seq_examples`), one
WordPiece vocabulary for both sides. The known replies are kept with the run, so the
evaluation can rank them as the retrieval mode does.
"""

import numpy as np

USAGE = [
    "SavedModel `serving_default(text: string[N]) -> {reply: string[N], score: float32[N]}`: the reply written "
    "by beam search (the run's `--beam-size`, `--length-penalty`) inside the graph and its mean log-probability "
    "per piece; a multi-turn context is `previous turn [SEP] message`.",
    "TFLite (`model.tflite`): the encoder and a decoder pass, `encoder_tokens` int32 [1, S] and `decoder_tokens` "
    "int32 [1, T] -> `logits` [1, T, V] (ids of `source_vocabulary.txt`, WordPiece; the two vocabularies are the "
    "same). The loop beside it: decoder_tokens = [2 ([START])], then append the argmax of the logits at the last "
    "real position until 3 ([END]).",
]
SAMPLES = 5


def build_generative_chat_data(cfg):
    """Unbatched `seq2seq_examples` of the chat splits (`chat_splits`)."""
    from apps.nlp.chat import chat_source, chat_splits, chat_vocabulary
    from apps.nlp.translation import seq2seq_examples, translation_tokenizer
    from shared.tasks import Data, DataInfo

    train, validation, test, replies = chat_splits(cfg)
    vocabulary = chat_vocabulary(cfg, train, replies)
    preprocess = translation_tokenizer(vocabulary, vocabulary, cfg.sequence_length)
    info = DataInfo(input_shape=(), input_dtype="string", num_train=len(train), num_val=len(validation),
                    num_test=len(test), preprocess=preprocess, source=chat_source(cfg, train, replies),
                    extra={"train_limited": True, "source_vocabulary_size": len(vocabulary),
                           "target_vocabulary_size": len(vocabulary), "usage": USAGE,
                           "saved": {"mode": "generative", "replies": replies, "beam_size": cfg.beam_size,
                                     "length_penalty": cfg.length_penalty}})
    return Data(*(seq2seq_examples(pairs, preprocess) for pairs in (train, validation, test)), info)


def reply_log_likelihoods(seq2seq, preprocess, contexts, replies, candidates, contexts_per_call=16):
    """Mean log-probability per piece ([END] counted) of candidate replies after each context,
    teacher forced: float32 [contexts, K] for `candidates` int [contexts, K] (reply ids)."""
    import tensorflow as tf

    from apps.nlp.translation import tokenizers
    from shared.architectures.transformer import TrimPadding

    source_tokenizer, target_tokenizer = tokenizers(preprocess)
    encoder, decoder = seq2seq.encoder_model(), seq2seq.decoder_model()
    ids = target_tokenizer(tf.constant(replies)).numpy()
    inputs, labels = ids[:, :-1], ids[:, 1:]
    k = candidates.shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32),
                                  tf.TensorSpec([None, None], tf.int32)])
    def score(source, decoder_tokens, target):
        source = TrimPadding()(source)
        width = tf.maximum(tf.reduce_max(tf.reduce_sum(tf.cast(target != 0, tf.int32), 1)), 1)
        decoder_tokens, target = decoder_tokens[:, :width], target[:, :width]
        logits = decoder({"encoder_tokens": tf.repeat(source, k, axis=0),
                          "encoder_sequence": tf.repeat(encoder(source), k, axis=0), "decoder_tokens": decoder_tokens})
        picked = tf.gather(tf.nn.log_softmax(tf.cast(logits, tf.float32)), target, batch_dims=2)
        mask = tf.cast(target != 0, tf.float32)
        return tf.reshape(tf.reduce_sum(picked * mask, -1) / tf.maximum(tf.reduce_sum(mask, -1), 1.0), [-1, k])

    out = []
    for start in range(0, len(contexts), contexts_per_call):
        rows = candidates[start:start + contexts_per_call].reshape(-1)
        out.append(score(source_tokenizer(tf.constant(contexts[start:start + contexts_per_call])),
                         tf.constant(inputs[rows]), tf.constant(labels[rows])).numpy())
    return np.concatenate(out)


def generative_chat_report(model, ds, info, plots_dir):
    """On the held-out message variants: perplexity and next-piece accuracy of the right reply
    (teacher forced); its rank by mean log-probability among `candidate_sets` (recall@1/@5,
    MRR, as the retrieval mode reports them too); and what beam search writes: exact
    match with the right reply, the share that is a known reply verbatim, chrF and BLEU."""
    import sacrebleu

    from apps.nlp.chat import candidate_figures, candidate_sets
    from apps.nlp.translation import Translator, beam_settings, teacher_forced_figures
    from shared.tasks import trained_part

    replies = info.extra["saved"]["replies"]
    index = {r: i for i, r in enumerate(replies)}
    examples = list(ds.as_numpy_iterator())
    contexts = [x["source"].decode("utf-8") for x, _ in examples]
    expected = [x["target"].decode("utf-8") for x, _ in examples]
    seq2seq = trained_part(model)
    candidates = candidate_sets([index[e] for e in expected], len(replies))
    scores = reply_log_likelihoods(seq2seq, info.preprocess, contexts, replies, candidates)
    translator = Translator(seq2seq, info.preprocess, *beam_settings(info))
    written, log_probs = translator.decode_all(contexts)
    known = set(replies)
    result = {**teacher_forced_figures(model, ds), **candidate_figures(scores, None), "num_messages": len(contexts),
              "num_replies": len(replies),
              "written": {"exact_match": float(np.mean([w == e for w, e in zip(written, expected)])),
                          "known_reply_rate": float(np.mean([w in known for w in written])),
                          "chrf": sacrebleu.corpus_chrf(written, [expected]).score,
                          "bleu": sacrebleu.corpus_bleu(written, [expected]).score,
                          "mean_log_prob": float(np.mean(log_probs))},
              "samples": [{"message": c, "reply": w, "expected": e, "score": float(s)}
                          for c, w, e, s in zip(contexts[:SAMPLES], written, expected, log_probs)]}
    return result, []


def reply_writer(model, info):
    """A graph function: text string [N] -> {"reply": string [N], "score": float32 [N]}."""
    import tensorflow as tf

    from apps.nlp.translation import Translator, beam_settings
    from shared.tasks import trained_part

    translator = Translator(trained_part(model), info.preprocess, *beam_settings(info))
    return tf.function(lambda text: _outputs(translator, text), input_signature=[tf.TensorSpec([None], tf.string)])


def _outputs(translator, text):
    reply, score = translator.scored(text)
    return {"reply": reply, "score": score}


def generative_chat_serving(model, info):
    """`serving_default(text: string[N]) -> {"reply": string[N], "score": float32[N]}`."""
    from apps.nlp.translation import seq2seq_serving

    return seq2seq_serving(model, info, _outputs)
