"""The English library language models pretrain on: reference text from Debian packages read
as data (`shared.data.debian`), one document per entry:

- `gcide`: the Collaborative International Dictionary of English (Webster's 1913 and WordNet
  definitions, with their quotations; `dict-gcide`, about 40 MB of dictd text);
- `jargon`: the Jargon File 4.4.7 (hackers' lexicon, public domain; `dict-jargon`);
- `wordnet`: WordNet 3.0 glosses, "words: gloss; examples" (`wordnet-base`);
- `pydoc`: the Python reference topics shipped with Python (`shared.data.corpus`).

Markup is removed (pronunciations `\\Ab*jure\\`, cross-reference braces, source tags such as
`[1913 Webster]`); each paragraph becomes one line. Never the other `fortune-*` packages nor
the system's gettext catalogs: those are kept for tests of generalisation.
"""

import gzip
import os
import re

from shared.data.debian import extracted_package

SOURCES = ("gcide", "jargon", "wordnet", "pydoc")
_B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_PRONUNCIATION = re.compile(r"\\[^\\\n]*\\,?")
_SOURCE_TAG = re.compile(r"\[(?:1913 Webster|Webster 1913 Suppl\.|PJC|WordNet[^\]]*|[A-Z][A-Za-z.]{0,6})\]")


def _b64(text):
    """A dictd index number (base 64, most significant digit first)."""
    value = 0
    for ch in text:
        value = value * 64 + _B64.index(ch)
    return value


def dictd_entries(directory, name):
    """[entry text] of a dictd dictionary (`name.index` + `name.dict.dz`), each once, in file
    order, the `00-database-*` header entries left out."""
    with open(os.path.join(directory, f"{name}.index"), encoding="utf-8") as f:
        spans = {}
        for line in f:
            word, offset, length = line.rstrip("\n").split("\t")[:3]
            if not word.startswith("00-database") and not word.startswith("00database"):
                spans[_b64(offset)] = _b64(length)
    with gzip.open(os.path.join(directory, f"{name}.dict.dz"), "rb") as f:
        data = f.read()
    return [data[o:o + n].decode("utf-8", errors="replace") for o, n in sorted(spans.items())]


def paragraphs_as_lines(text):
    """Blank-line separated paragraphs, each joined into one line, one line per paragraph."""
    paragraphs = (" ".join(p.split()) for p in re.split(r"\n\s*\n", text))
    return "\n".join(p for p in paragraphs if p)


def clean_entry(text):
    """A dictionary entry as prose: pronunciations, source tags and braces removed."""
    text = _SOURCE_TAG.sub("", _PRONUNCIATION.sub("", text))
    return paragraphs_as_lines(text.replace("{", "").replace("}", ""))


def gcide():
    root = os.path.join(extracted_package("dict-gcide"), "usr", "share", "dictd")
    return [t for t in (clean_entry(e) for e in dictd_entries(root, "gcide")) if len(t.split()) >= 4]


def jargon():
    root = os.path.join(extracted_package("dict-jargon"), "usr", "share", "dictd")
    return [t for t in (clean_entry(e) for e in dictd_entries(root, "jargon")) if len(t.split()) >= 4]


def wordnet():
    """One document per synset: "word, other word: gloss" (underscores made spaces)."""
    root = os.path.join(extracted_package("wordnet-base"), "usr", "share", "wordnet")
    out = []
    for part in ("noun", "verb", "adj", "adv"):
        with open(os.path.join(root, f"data.{part}"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(" ") or "|" not in line:
                    continue  # the licence header
                fields, gloss = line.split("|", 1)
                fields = fields.split()
                count = int(fields[3], 16)
                words = [re.sub(r"\(\w+\)$", "", w).replace("_", " ") for w in fields[4:4 + 2 * count:2]]
                out.append(f"{', '.join(words)}: {gloss.strip()}")
    return out


def wordnet_synonyms():
    """{word: [one-word synonyms]}: the other lemmas of a word's first common WordNet sense that
    has any (its senses in `index.*` order, most frequent first, among the tagged ones), of the
    part of speech with the most tagged senses. Lower case; multi-word lemmas left out."""
    root = os.path.join(extracted_package("wordnet-base"), "usr", "share", "wordnet")
    best = {}
    for part in ("noun", "verb", "adj", "adv"):
        synsets = {}
        with open(os.path.join(root, f"data.{part}"), encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(" ") or "|" not in line:
                    continue
                fields = line.split("|", 1)[0].split()
                count = int(fields[3], 16)
                synsets[fields[0]] = [re.sub(r"\(\w+\)$", "", w).lower() for w in fields[4:4 + 2 * count:2]]
        with open(os.path.join(root, f"index.{part}"), encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split()
                if line.startswith(" ") or len(fields) < 7 or "_" in fields[0]:
                    continue
                lemma, pointers = fields[0], int(fields[3])
                tagged, offsets = int(fields[5 + pointers]), fields[6 + pointers:]
                if lemma in best and tagged <= best[lemma][0]:
                    continue
                for offset in offsets[:max(1, tagged)]:
                    others = [w for w in synsets.get(offset, []) if "_" not in w and w != lemma]
                    if others:
                        best[lemma] = (tagged, others)
                        break
    return {word: others for word, (_, others) in best.items()}


def pydoc():
    from shared.data.corpus import pydoc_paragraphs

    return [text for _, text in pydoc_paragraphs()]


def library_documents(sources=SOURCES):
    """[(source, text)] of the library's documents, source by source."""
    readers = {"gcide": gcide, "jargon": jargon, "wordnet": wordnet, "pydoc": pydoc}
    return [(name, text) for name in sources for text in readers[name]()]
