"""Beam search with a word language model: the `top_paths` best CTC paths of
`tf.nn.ctc_beam_search_decoder` rescored as `log P_ctc + alpha * log P_lm + beta * words`
(shallow fusion at the sentence level), the LM an interpolated Kneser-Ney word trigram
(`shared.ngram`, nltk) of the training transcripts only, alpha and beta chosen on the
validation split. TF's decoder takes no LM, and a prefix beam search with one would be a
per-frame Python loop; rescoring its n-best list keeps the decoder in the graph."""

import itertools

ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5)
BETAS = (0.0, 1.0, 2.0, 3.0)


def word_lm(transcripts, order=3, discount=0.75):
    from shared.ngram import kneser_ney_model

    return kneser_ney_model([t.split() for t in transcripts if t.strip()], order, discount)


def n_best(model, ds, beam_width=16, top_paths=8, batch_size=32):
    """(references, [[(text, ctc log-prob)] per utterance]) over a (waveform, target) dataset."""
    top_paths = min(top_paths, beam_width)
    import tensorflow as tf

    from apps.speech.data import ids_to_text
    from apps.speech.recognition import frame_probs, log_probs, reference_texts

    @tf.function(reduce_retracing=True)
    def run(x, samples):
        probs, frames = frame_probs(model, x, samples)  # the blank is the last class, as TF's decoder wants
        decoded, scores = tf.nn.ctc_beam_search_decoder(tf.transpose(log_probs(probs), [1, 0, 2]), frames,
                                                           beam_width=beam_width, top_paths=top_paths)
        texts = tf.stack([ids_to_text(tf.sparse.to_dense(d, default_value=-1)) for d in decoded], axis=1)
        return texts, scores

    refs, lists = [], []
    for x, y in ds.padded_batch(batch_size):
        texts, scores = run(x, y["samples"])
        refs += reference_texts(y)
        lists += [[(t.decode(), float(p)) for t, p in zip(row_t, row_p)]
                  for row_t, row_p in zip(texts.numpy(), scores.numpy())]
    return refs, lists


def lm_scores(lm, lists):
    """The LM's natural-log probability of every hypothesis (computed once, reused by every alpha/beta)."""
    from shared.ngram import log_prob

    cache = {}
    for hyps in lists:
        for text, _ in hyps:
            if text not in cache:
                cache[text] = log_prob(lm, text.split())
    return cache


def rescore(lists, scores, alpha, beta):
    """The best hypothesis of each n-best list under `ctc + alpha * lm + beta * words`."""
    return [max(hyps, key=lambda h: h[1] + alpha * scores[h[0]] + beta * len(h[0].split()))[0] for hyps in lists]


def best_weights(refs, hypotheses, alphas, betas):
    """(alpha, beta, WER) of the grid point whose `hypotheses(alpha, beta)` have the lowest
    WER on these (validation) utterances; the first of equals."""
    from apps.speech.recognition import error_rates

    best = None
    for alpha, beta in itertools.product(alphas, betas):
        wer = error_rates(refs, hypotheses(alpha, beta))["wer"]
        if best is None or wer < best[2] - 1e-12:
            best = (alpha, beta, wer)
    return best


def tune(refs, lists, scores):
    """(alpha, beta, WER) of n-best rescoring with the lowest WER on these utterances."""
    return best_weights(refs, lambda alpha, beta: rescore(lists, scores, alpha, beta), ALPHAS, BETAS)


def training_transcripts(data):
    """The transcripts of an ASR `Data`'s training split, as Python strings."""
    from apps.speech.data import ids_to_text

    labels = data.train.map(lambda x, y: y["labels"]).padded_batch(256, padding_values=-1)
    return [t.decode() for batch in labels for t in ids_to_text(batch).numpy()]


def lm_beam_search(model, val, test, train_transcripts, beam_width=16, top_paths=8):
    """Hypotheses for the `test` utterances by beam search + word LM, alpha and beta tuned
    on the `val` utterances. Returns (hypotheses, {"alpha", "beta", "val_wer"})."""
    lm = word_lm(train_transcripts)
    val_refs, val_lists = n_best(model, val, beam_width, top_paths)
    alpha, beta, val_wer = tune(val_refs, val_lists, lm_scores(lm, val_lists))
    _, test_lists = n_best(model, test, beam_width, top_paths)
    return rescore(test_lists, lm_scores(lm, test_lists), alpha, beta), {"alpha": alpha, "beta": beta, "val_wer": val_wer}


# --- first-pass decoding over a lexicon with the word LM (`shared.lexicon_decoding`) ------
LEXICON_ALPHAS = (0.25, 0.5, 1.0, 1.5)
LEXICON_BETAS = (0.0, 1.0, 2.0)
ENGLISH_WORDS = 50_000  # the English library's most frequent words added to the lexicon


def lexicon_words(train_transcripts, english=True):
    """The decoder's words: every word of the training transcripts, and with `english` the
    English library's `ENGLISH_WORDS` most frequent (its word vectors' vocabulary: text
    independent of the corpus's sentences), letters and apostrophes only."""
    import re

    words = {w for t in train_transcripts for w in t.split()}
    if english:
        from shared.data.word_vectors import english_word_vectors

        plain = re.compile(r"^[a-z][a-z']*$")
        words |= {w for w in english_word_vectors().words[:ENGLISH_WORDS] if plain.match(w)}
    return sorted(words)


def frame_log_probs(model, ds, batch_size=32):
    """(references, [log-probabilities [T, 29] of each utterance's valid frames])."""
    import tensorflow as tf

    from apps.speech.recognition import frame_probs, log_probs, reference_texts

    @tf.function(reduce_retracing=True)
    def run(x, samples):
        probs, frames = frame_probs(model, x, samples)
        return log_probs(probs), frames

    refs, out = [], []
    for x, y in ds.padded_batch(batch_size):
        lp, frames = run(x, y["samples"])
        refs += reference_texts(y)
        out += [row[:n] for row, n in zip(lp.numpy(), frames.numpy())]
    return refs, out


def lexicon_decode(utterances, lexicon, word_score, alpha, beta, beam_width=16):
    from apps.speech.data import ALPHABET
    from shared.lexicon_decoding import lexicon_beam_search

    return [lexicon_beam_search(lp, ALPHABET, lexicon, word_score, alpha, beta, beam_width) for lp in utterances]


def lexicon_lm_search(model, val, test, train_transcripts, beam_width=16, english=True):
    """Hypotheses for the `test` utterances by the lexicon decoder with the word trigram LM
    of the training transcripts, alpha and beta chosen on the `val` utterances. Returns
    (hypotheses, {"alpha", "beta", "val_wer", "lexicon_words"})."""
    from shared.lexicon_decoding import Lexicon, ngram_word_score

    lexicon = Lexicon(lexicon_words(train_transcripts, english))
    score = ngram_word_score(word_lm(train_transcripts))
    val_refs, val_lp = frame_log_probs(model, val)
    best = best_weights(val_refs, lambda alpha, beta: lexicon_decode(val_lp, lexicon, score, alpha, beta, beam_width),
                        LEXICON_ALPHAS, LEXICON_BETAS)
    _, test_lp = frame_log_probs(model, test)
    hyps = lexicon_decode(test_lp, lexicon, score, best[0], best[1], beam_width)
    return hyps, {"alpha": best[0], "beta": best[1], "val_wer": best[2], "lexicon_words": len(lexicon)}
