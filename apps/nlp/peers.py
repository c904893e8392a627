"""Peers scored on the same test split as our models."""

import numpy as np

from shared.evaluation.classification import classification_metrics
from shared.ngram import kneser_ney_model
from shared.evaluation.regression import regression_metrics


def vader_peer(texts, targets, groups=None, regression=False):
    """The VADER rule-based analyser (`vaderSentiment`, Hutto & Gilbert 2014) on `texts`: its
    compound score in [-1, 1] read as P(positive) = (compound + 1) / 2 (ties at 0 go to
    positive), or for `--target score` scaled by 4 to the raters' [-4, 4] range."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()
    compound = np.array([analyser.polarity_scores(t.decode("utf-8") if isinstance(t, bytes) else t)["compound"]
                         for t in texts])
    if regression:
        return regression_metrics(targets, 4 * compound, groups)
    positive = np.clip((compound + 1) / 2, 0, 1)
    positive = np.where(compound == 0, 0.5 + 1e-6, positive)
    result = classification_metrics(targets, np.stack([1 - positive, positive], -1), ("negative", "positive"), groups)
    return {k: v for k, v in result.items() if k not in ("per_class", "confusion_matrix", "log_loss")}


def ngram_bits(model, documents):
    """(total bits, characters) of `documents` under an nltk model: each character given
    the start padding and the characters before it in its document (as our LM's `score`)."""
    import math

    order = model.order
    bits, chars = 0.0, 0
    for d in documents:
        padded = ["<s>"] * (order - 1) + list(model.vocab.lookup(list(d)))
        for i in range(order - 1, len(padded)):
            bits -= math.log2(model.unmasked_score(padded[i], tuple(padded[i - order + 1:i])))
        chars += len(d)
    return bits, chars


def kneser_ney_peer(train, val, test, orders=(2, 3, 4, 5, 6, 7), discounts=(0.1, 0.5, 0.75), log=print):
    """The order and discount with the lowest bits per character on `val`, then its bits per
    character on `test`: {"order", "discount", "bits_per_char", "val_bits_per_char": {…}}."""
    best, table = None, {}
    for order in orders:
        model = kneser_ney_model(train, order)
        for discount in discounts:
            model.estimator.discount = discount
            bits, chars = ngram_bits(model, val)
            table[f"{order}/{discount}"] = bits / chars
            log(f"  Kneser-Ney order {order}, discount {discount}: {bits / chars:.4f} bits/char on validation")
            if best is None or bits / chars < table[best[2]]:
                best = (order, discount, f"{order}/{discount}", model)
    order, discount, _, _ = best
    model = kneser_ney_model(train, order, discount)
    bits, chars = ngram_bits(model, test)
    return {"order": order, "discount": discount, "bits_per_char": bits / chars, "num_chars": chars,
            "val_bits_per_char": table}


def apertium_translations(sources, pair="eng-spa"):
    """Apertium's rule-based translations of `sources` (Debian `apertium-eng-spa`, offline;
    `-u`: unknown words without the `*` mark), one per sentence; None when not installed."""
    import shutil
    import subprocess

    if shutil.which("apertium") is None:
        return None
    text = "".join(" ".join(s.split()) + "\n" for s in sources)
    out = subprocess.run(["apertium", "-u", pair], input=text, capture_output=True, text=True, timeout=1800)
    lines = out.stdout.split("\n")
    if out.returncode != 0 or len(lines) < len(sources):
        raise RuntimeError(f"apertium {pair} failed: {out.stderr.strip()[:200]}")
    return [line.strip() for line in lines[:len(sources)]]


TFIDF_PEERS = {"TF-IDF nearest message, words 1-2": dict(analyzer="word", ngram_range=(1, 2)),
               "TF-IDF nearest message, chars 2-5": dict(analyzer="char_wb", ngram_range=(2, 5))}


def tfidf_nearest_replies(messages, replies, questions, analyzer="word", ngram_range=(1, 2)):
    """The reply of the corpus message nearest each question by the cosine of TF-IDF vectors
    (sklearn, fitted on the messages, lower-cased, sublinear tf): the retrieval chat's peer."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram_range, sublinear_tf=True)
    index = vectorizer.fit_transform(messages)
    nearest = np.asarray((vectorizer.transform(questions) @ index.T).argmax(1)).reshape(-1)
    return [replies[i] for i in nearest]


TFIDF_CLASSIFIERS = {"TF-IDF words 1-2 + logistic regression": dict(analyzer="word", ngram_range=(1, 2)),
                     "TF-IDF chars 2-5 + logistic regression": dict(analyzer="char_wb", ngram_range=(2, 5))}


def tfidf_logistic_peer(train, val, test, class_names, analyzer="word", ngram_range=(1, 2), cs=(0.3, 1.0, 3.0, 10.0)):
    """TF-IDF features (sklearn, sublinear tf) and a logistic regression, its C the one with the
    lowest log loss on `val`, scored on `test` ((texts, labels) each) as our classifiers are."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    vectorizer = TfidfVectorizer(analyzer=analyzer, ngram_range=ngram_range, sublinear_tf=True, min_df=1)
    features = vectorizer.fit_transform(list(train[0]))
    fits = [LogisticRegression(C=c, max_iter=2000).fit(features, train[1]) for c in cs]
    val_x = vectorizer.transform(list(val[0]))
    best = min(fits, key=lambda m: log_loss(val[1], m.predict_proba(val_x), labels=m.classes_))
    probs = best.predict_proba(vectorizer.transform(list(test[0])))
    result = classification_metrics(np.asarray(test[1]), probs, class_names)
    return {**{k: v for k, v in result.items() if k not in ("per_class", "confusion_matrix")}, "C": best.C}
