"""CTC prefix beam search over a word lexicon, with a word language model fused in.

The first-pass decoding of Hannun et al. (2014) and of the "lexicon + LM" decoders of
wav2letter/flashlight and pyctcdecode, in Python: hypotheses are character prefixes kept
inside a trie of the lexicon's words, a word ends (at a space or at the end of the audio)
only where a lexicon word ends, so no misspelt word can be emitted; each completed word
adds `alpha * ln P_lm(word | previous words) + beta`. Why our own: pyctcdecode needs kenlm
for an LM (a C++ build, no wheel here) and flashlight's decoder is not on PyPI for this
Python. Per frame only the characters within `prune` nats of the frame's best are expanded,
so a peaky CTC model costs a few expansions per frame.
"""

import math

_END = ""  # the trie key marking a word's end
NEG_INF = -math.inf


def _add(a, b):
    """log(exp(a) + exp(b))."""
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    return max(a, b) + math.log1p(math.exp(-abs(a - b)))


class Lexicon:
    """A character trie of words (`in`, `len`); `node(prefix)` walks it."""

    def __init__(self, words):
        self.root, self.size = {}, 0
        for word in words:
            if not word or " " in word:
                continue
            node = self.root
            for char in word:
                node = node.setdefault(char, {})
            if _END not in node:
                node[_END], self.size = True, self.size + 1

    def __len__(self):
        return self.size

    def __contains__(self, word):
        node = self.node(word)
        return node is not None and _END in node

    def node(self, prefix):
        node = self.root
        for char in prefix:
            node = node.get(char)
            if node is None:
                return None
        return node


class _Beam:
    __slots__ = ("words", "partial", "node", "blank", "char", "lm")

    def __init__(self, words, partial, node, lm):
        self.words, self.partial, self.node, self.lm = words, partial, node, lm
        self.blank = self.char = NEG_INF  # log P(prefix) ending in a blank / in its last character

    def total(self):
        return _add(self.blank, self.char)


def lexicon_beam_search(log_probs, alphabet, lexicon, word_score=None, alpha=0.5, beta=1.0, beam_width=16,
                        prune=10.0, space=" "):
    """The best transcript of one utterance's per-frame log-probabilities `[T, len(alphabet) + 1]`
    (the CTC blank last), every word from `lexicon`. `word_score(previous words tuple, word)`
    is the LM's natural-log probability (None: no LM, the lexicon alone); the score of a
    hypothesis is `ln P_ctc + alpha * ln P_lm + beta * words`. Returns "" when no lexicon
    word fits the audio."""
    blank = len(alphabet)
    space_id = alphabet.index(space)
    cache = {}

    def fused(words, word):
        if word_score is None:
            return beta
        key = (words[-3:], word)
        if key not in cache:
            cache[key] = alpha * word_score(words, word) + beta
        return cache[key]

    start = _Beam((), "", lexicon.root, 0.0)
    start.blank = 0.0
    beams = {((), ""): start}
    for frame in log_probs:
        frame = [float(v) for v in frame]
        floor = max(frame) - prune
        chars = [c for c in range(blank) if frame[c] >= floor]
        new = {}

        def get(words, partial, node, lm):
            beam = new.get((words, partial))
            if beam is None:
                beam = new[(words, partial)] = _Beam(words, partial, node, lm)
            return beam

        for beam in beams.values():
            total = beam.total()
            stay = get(beam.words, beam.partial, beam.node, beam.lm)
            stay.blank = _add(stay.blank, total + frame[blank])
            last = beam.partial[-1] if beam.partial else (space if beam.words else None)
            for c in chars:
                p = frame[c]
                if c == space_id:
                    if not beam.partial:  # a space between words (or before the first): no new text
                        stay.blank = _add(stay.blank, total + p)
                    elif _END in beam.node:  # the word ends here
                        done = get(beam.words + (beam.partial,), "", lexicon.root,
                                   beam.lm + fused(beam.words, beam.partial))
                        done.char = _add(done.char, total + p)
                    continue
                char = alphabet[c]
                if char == last:  # a repeat: merged unless a blank came between
                    stay.char = _add(stay.char, beam.char + p)
                    if beam.blank == NEG_INF:
                        continue
                    source = beam.blank
                else:
                    source = total
                child = beam.node.get(char)
                if child is None:
                    continue
                grown = get(beam.words, beam.partial + char, child, beam.lm)
                grown.char = _add(grown.char, source + p)
        beams = dict(sorted(new.items(), key=lambda kv: kv[1].total() + kv[1].lm, reverse=True)[:beam_width])
    best, best_score = "", NEG_INF
    for beam in beams.values():
        words, lm = beam.words, beam.lm
        if beam.partial:
            if _END not in beam.node:
                continue  # an unfinished word: not in the lexicon
            words, lm = words + (beam.partial,), lm + fused(beam.words, beam.partial)
        score = beam.total() + lm
        if score > best_score:
            best, best_score = " ".join(words), score
    return best


def ngram_word_score(model):
    """`word_score` of an n-gram model (`shared.ngram.kneser_ney_model` over words): the
    natural-log probability of a word given the words before it."""
    order = model.order

    def score(words, word):
        # the padding looked up as the model was fitted: nltk counted `<s>` (outside its
        # vocabulary) as `<UNK>`
        context = model.vocab.lookup(["<s>"] * (order - 1) + list(words))[-(order - 1):]
        return math.log(max(model.unmasked_score(model.vocab.lookup(word), tuple(context)), 1e-300))

    return score
