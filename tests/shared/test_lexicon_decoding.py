"""The lexicon decoder never spells a word outside its lexicon and prefers a lexicon word
over a likelier misspelling; with an LM, the likelier word sequence."""

import math

import numpy as np

from shared.lexicon_decoding import Lexicon, lexicon_beam_search, ngram_word_score

ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"
BLANK = len(ALPHABET)


def frames(*steps):
    """Log-probabilities [T, 29]: each step a {character: probability} frame (the rest on the blank)."""
    out = np.full((len(steps), BLANK + 1), 1e-4)
    for t, step in enumerate(steps):
        for char, p in step.items():
            out[t, BLANK if char is None else ALPHABET.index(char)] = p
        out[t, BLANK] = max(1 - sum(step.values()), 1e-4) if None not in step else out[t, BLANK]
    return np.log(out / out.sum(1, keepdims=True))


def greedy(log_probs):
    ids = log_probs.argmax(1)
    return "".join(ALPHABET[i] for n, i in enumerate(ids) if i != BLANK and (n == 0 or i != ids[n - 1]))


def test_it_spells_lexicon_words_only_and_prefers_them_over_a_likelier_misspelling():
    # "teh cat": every frame's best is the misspelling, "the" is close behind
    lp = frames({"t": 0.9}, {"e": 0.5, "h": 0.4}, {"h": 0.5, "e": 0.4}, {None: 0.9}, {" ": 0.9},
                {"c": 0.9}, {"a": 0.9}, {"t": 0.9})
    assert greedy(lp) == "teh cat"
    lexicon = Lexicon(["the", "cat", "hat"])
    assert len(lexicon) == 3 and "the" in lexicon and "teh" not in lexicon
    assert lexicon_beam_search(lp, ALPHABET, lexicon, beam_width=8) == "the cat"
    # nothing fits: no output rather than an invented word
    assert lexicon_beam_search(lp, ALPHABET, Lexicon(["dog"]), beam_width=8) == ""


def test_repeated_letters_need_a_blank_between_them():
    lp = frames({"s": 0.9}, {"e": 0.9}, {None: 0.9}, {"e": 0.9}, {"n": 0.9})
    lexicon = Lexicon(["seen", "sen"])
    assert lexicon_beam_search(lp, ALPHABET, lexicon) == "seen"
    lp = frames({"s": 0.9}, {"e": 0.9}, {"e": 0.9}, {"n": 0.9})
    assert lexicon_beam_search(lp, ALPHABET, lexicon) == "sen"


def test_the_language_model_chooses_between_sound_alike_words():
    # "red ..." vs "read ...": the audio leans to "red", the LM knows "read a book"
    lp = frames({"r": 0.9}, {"e": 0.9}, {"a": 0.3}, {"d": 0.9}, {" ": 0.9}, {"a": 0.9}, {" ": 0.9},
                {"b": 0.9}, {"o": 0.9}, {None: 0.9}, {"o": 0.9}, {"k": 0.9})
    lexicon = Lexicon(["red", "read", "a", "book"])
    assert lexicon_beam_search(lp, ALPHABET, lexicon) == "red a book"

    def score(words, word):  # a toy bigram: "read" before "a", "red" rarely
        table = {("read",): {"a": 0.9}, ("red",): {"a": 0.01}}
        return math.log(table.get(tuple(words[-1:]), {}).get(word, 0.3))

    assert lexicon_beam_search(lp, ALPHABET, lexicon, word_score=score, alpha=1.0, beta=0.0) == "read a book"


def test_an_nltk_word_model_scores_words_in_context():
    from shared.ngram import kneser_ney_model

    model = kneser_ney_model([["turn", "on", "the", "light"], ["turn", "off", "the", "light"]] * 5, 3)
    score = ngram_word_score(model)
    assert score(("turn", "on"), "the") > score(("turn", "on"), "light")
    assert score((), "turn") > score((), "light")
