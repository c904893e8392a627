"""n-gram language models (nltk's interpolated Kneser-Ney, with an index that makes it fast):
the character-level peer of the NLP generator and the word model of speech recognition."""


def _indexed_kneser_ney():
    """nltk's `KneserNey` smoothing with its continuation counts looked up in an index built
    once per n-gram order, instead of rescanning every higher-order context per query (nltk
    3.10: 25 ms per character at order 5, 52 min for the fortunes test split; measured).
    Same formula and counts, so the same probabilities (checked against nltk in the tests)."""
    from nltk.lm.smoothing import KneserNey

    class IndexedKneserNey(KneserNey):
        def _continuation_counts(self, word, context=tuple()):
            level = len(context) + 2
            index = self.__dict__.setdefault("_index", {})
            if level not in index:
                words, totals = {}, {}
                for prefix, counts in self.counts[level].items():
                    key = prefix[1:]
                    seen = [w for w, c in counts.items() if c > 0]
                    totals[key] = totals.get(key, 0) + len(seen)
                    for w in seen:
                        words[key, w] = words.get((key, w), 0) + 1
                index[level] = (words, totals)
            words, totals = index[level]
            return words.get((context, word), 0), totals.get(context, 0)

    return IndexedKneserNey


def kneser_ney_model(documents, order, discount=0.1):
    """nltk's interpolated Kneser-Ney model of `order` on `documents` (sequences of tokens:
    a string's characters, a list of words), each padded on the left with `<s>`; tokens
    seen once become `<UNK>`, so unseen ones get mass."""
    from nltk.lm import Vocabulary
    from nltk.lm.models import InterpolatedLanguageModel
    from nltk.util import everygrams, pad_sequence

    model = InterpolatedLanguageModel(_indexed_kneser_ney(), order, vocabulary=Vocabulary(unk_cutoff=2),
                                      params={"discount": discount, "order": order})
    padded = lambda d: list(pad_sequence(d, order, pad_left=True, left_pad_symbol="<s>"))  # noqa: E731
    model.fit((everygrams(padded(d), max_len=order) for d in documents), (c for d in documents for c in d))
    return model


def log_prob(model, tokens):
    """Natural-log probability of `tokens` (each given the `<s>` padding and the tokens before it)."""
    import math

    order = model.order
    padded = ["<s>"] * (order - 1) + list(model.vocab.lookup(list(tokens)))
    return sum(math.log(max(model.unmasked_score(padded[i], tuple(padded[i - order + 1:i])), 1e-300))
               for i in range(order - 1, len(padded)))
