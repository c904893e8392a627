"""Parallel text for translation, read offline into (source, target) pairs:

- `gettext:es|fr|de` (default es): the human translations of LibreOffice's user interface,
  English -> the language, from Debian's `libreoffice-l10n-LANG`. `make setup` fetches the
  packages with `apt-get download` into `.venv/debs` (installing them would pull in
  LibreOffice); the first run extracts one with `dpkg-deb -x` into the data cache and reads
  its `.mo` catalogs with Python's `gettext`: context prefixes (`msgctxt` before `\\x04`)
  dropped, plural form 0 kept, the header and untranslated entries dropped, keyboard
  accelerators (`~`, `_`, `&` before a letter) removed the same way on both sides;
- `gettext+help:es`: the same, and LibreOffice's help pages (`libreoffice-help-en-us` and
  `-es`: the paragraphs of the same page with the same id paired; ~28k more pairs), which
  only ever train: the test and validation sentences stay the catalogs' own;
- `tsv:PATH`: source<TAB>target per line (Tatoeba / Anki files: further columns ignored);
- `tfds:NAME` (e.g. `wmt14_translate/de-en`, its `supervised_keys` order) from a local `--data-dir`.

Splits are made by source sentence (a stable hash of it), so no test source occurs in
training, whatever the seed; a source with several translations keeps its most frequent one.
"""

import collections
import glob
import hashlib
import html.parser
import os
import re

from shared.data.debian import extracted_package
from shared.errors import UserError

GETTEXT_LANGUAGES = ("es", "fr", "de")
HELP_LANGUAGES = ("es",)  # `make setup` downloads the Spanish help pages only
MAX_CHARACTERS = 200  # longer catalog entries are help paragraphs, not sentences
_ACCELERATOR = re.compile(r"[_&](?=\w)")


def clean_message(text):
    """A catalog string as a sentence: accelerators removed, whitespace runs made one space.
    `~` always marks an accelerator; `_` or `&` only when it is the one before a letter."""
    text = text.replace("~", "")
    if len(_ACCELERATOR.findall(text)) == 1:
        text = _ACCELERATOR.sub("", text)
    return " ".join(text.split())


def read_catalog(path):
    """{msgid: msgstr} of one `.mo` file: context dropped, plural form 0, no header, translated only."""
    import gettext

    with open(path, "rb") as f:
        catalog = gettext.GNUTranslations(f)._catalog
    out = {}
    for key, value in catalog.items():
        if isinstance(key, tuple):  # plurals: (msgid, form)
            if key[1] != 0:
                continue
            key = key[0]
        key = key.split("\x04", 1)[-1]  # "context\x04msgid"
        if key and value:
            out[key] = value
    return out


def catalog_pairs(paths):
    """[(source, target)] of `.mo` files (`voted_pairs` of their cleaned messages)."""
    return voted_pairs((clean_message(key), clean_message(value))
                       for path in sorted(paths) for key, value in read_catalog(path).items())


def voted_pairs(pairs):
    """Each source once with its most frequent translation (ties: the first in sorted order);
    no copies, no empty side, no source without a letter or over MAX_CHARACTERS."""
    votes = collections.defaultdict(collections.Counter)
    for source, target in pairs:
        if (source and target and source != target and len(source) <= MAX_CHARACTERS
                and re.search(r"[^\W\d_]", source)):
            votes[source][target] += 1
    return [(s, min(c, key=lambda t: (-c[t], t))) for s, c in sorted(votes.items())]


class _HelpParagraphs(html.parser.HTMLParser):
    """{id: text} of a help page's paragraphs, headings, cells and list items that carry an
    id (inline markup flattened, whitespace runs made one space; an id used twice dropped)."""

    TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "td", "li"}

    def __init__(self):
        super().__init__()
        self.open, self.texts, self.repeated = [], {}, set()

    def handle_starttag(self, tag, attrs):
        if tag in self.TAGS:
            self.open.append((dict(attrs).get("id"), []))

    def handle_endtag(self, tag):
        if tag in self.TAGS and self.open:
            key, parts = self.open.pop()
            if key:
                self.repeated |= {key} & set(self.texts)
                self.texts[key] = " ".join("".join(parts).split())

    def handle_data(self, data):
        if self.open:
            self.open[-1][1].append(data)

    @classmethod
    def of(cls, path):
        parser = cls()
        with open(path, encoding="utf-8", errors="replace") as f:
            parser.feed(f.read())
        return {k: v for k, v in parser.texts.items() if v and k not in parser.repeated}


def help_pairs(language):
    """[(English, translation)] of LibreOffice's help pages (Debian `libreoffice-help-en-us`
    and `-LANG`, the same pages in both languages): the paragraphs of the same page with the
    same id paired, voted and filtered as the catalogs are (`catalog_pairs`)."""
    if language not in HELP_LANGUAGES:
        raise UserError(f"--data gettext+help:{language}: help pages are read for {', '.join(HELP_LANGUAGES)}")
    english = os.path.join(extracted_package("libreoffice-help-en-us"), "usr", "share", "libreoffice", "help", "en-US")
    other = os.path.join(extracted_package(f"libreoffice-help-{language}"), "usr", "share", "libreoffice", "help",
                         language)
    pairs = []
    for path in sorted(glob.glob(os.path.join(english, "text", "**", "*.html"), recursive=True)):
        translated = os.path.join(other, os.path.relpath(path, english))
        if os.path.isfile(translated):
            theirs = _HelpParagraphs.of(translated)
            pairs += [(text, theirs[key]) for key, text in _HelpParagraphs.of(path).items() if key in theirs]
    return voted_pairs(pairs)


def gettext_pairs(language):
    """[(English, translation)] of LibreOffice's `language` catalogs (see the module doc)."""
    if language not in GETTEXT_LANGUAGES:
        raise UserError(f"--data gettext:{language}: expected one of {', '.join(GETTEXT_LANGUAGES)}")
    root = extracted_package(f"libreoffice-l10n-{language}")
    paths = glob.glob(os.path.join(root, "usr", "lib", "libreoffice", "program", "resource", language,
                                   "LC_MESSAGES", "*.mo"))
    if not paths:
        raise UserError(f"{root}: no .mo catalogs in the extracted libreoffice-l10n-{language}")
    return catalog_pairs(paths)


def tsv_pairs(path):
    """[(source, target)] of a source<TAB>target file (further columns ignored)."""
    if not os.path.isfile(path):
        raise UserError(f"--data tsv:{path}: no such file")
    pairs = []
    with open(path, encoding="utf-8", errors="strict") as f:
        try:
            lines = f.read().splitlines()
        except UnicodeDecodeError as e:
            raise UserError(f"--data tsv:{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2 or not columns[0].strip() or not columns[1].strip():
            raise UserError(f"--data tsv:{path}: line {number}: expected source<TAB>target")
        pairs.append((" ".join(columns[0].split()), " ".join(columns[1].split())))
    if not pairs:
        raise UserError(f"--data tsv:{path}: no sentence pairs")
    return pairs


def tfds_pairs(name, data_dir, download):
    """{split: [(source, target)]} of a TFDS translation dataset (`supervised_keys` order)."""
    from shared.data.tfds import prepared_builder

    builder = prepared_builder(name, data_dir, download)
    keys = builder.info.supervised_keys
    if not keys or len(keys) != 2:
        raise UserError(f"--data tfds:{name}: expected a translation dataset (two supervised text features)")
    splits = {}
    for split in builder.info.splits:
        splits[split] = [(" ".join(e[keys[0]].decode("utf-8").split()), " ".join(e[keys[1]].decode("utf-8").split()))
                         for e in builder.as_dataset(split=split).as_numpy_iterator()]
    if "train" not in splits:
        raise UserError(f"--data tfds:{name}: no train split")
    return splits


def split_of(source, test_fraction, validation_fraction):
    """"test", "validation" or "train" for a source sentence: a stable hash of its text."""
    bucket = int.from_bytes(hashlib.sha1(source.encode("utf-8")).digest()[:8], "big") / 2 ** 64
    return "test" if bucket < test_fraction else "validation" if bucket < test_fraction + validation_fraction else "train"


def seeded_sample(rows, limit, seed):
    """`limit` rows drawn at random (seeded), in their order; all of them for 0."""
    import numpy as np

    if not limit or limit >= len(rows):
        return rows
    return [rows[i] for i in sorted(np.random.default_rng(seed).permutation(len(rows))[:limit])]


def split_pairs(pairs, test_fraction, validation_fraction):
    """{split: [(source, target)]}: each source in one split only (its first pair kept)."""
    splits, seen = {"train": [], "validation": [], "test": []}, set()
    for source, target in pairs:
        if source not in seen:
            seen.add(source)
            splits[split_of(source, test_fraction, validation_fraction)].append((source, target))
    return splits


def load_parallel(data, data_dir="", download=False, test_fraction=0.05, validation_fraction=0.05):
    """{split: [(source, target)]} of `--data` (see the module doc), test sources kept out of
    training and validation."""
    kind, _, arg = data.partition(":")
    if kind == "gettext":
        return split_pairs(gettext_pairs(arg or "es"), test_fraction, validation_fraction)
    if kind == "gettext+help":
        splits = split_pairs(gettext_pairs(arg or "es"), test_fraction, validation_fraction)
        known = {s for split in splits.values() for s, _ in split}
        extra = [p for p in help_pairs(arg or "es") if p[0] not in known]
        # the catalogs' test and validation sentences stay the held-out ones; a help paragraph trains
        # only when its source falls in the training part of the same hash
        splits["train"] += split_pairs(extra, test_fraction, validation_fraction)["train"]
        return splits
    if kind == "tsv" and arg:
        return split_pairs(tsv_pairs(arg), test_fraction, validation_fraction)
    if kind == "tfds" and arg:
        given = tfds_pairs(arg, data_dir, download)
        held_out = {s for split in ("test", "validation") for s, _ in given.get(split, [])}
        splits = {"train": [p for p in given["train"] if p[0] not in held_out]}
        if "test" not in given or "validation" not in given:  # cut the missing ones from train, by source
            cut = split_pairs(splits["train"], test_fraction if "test" not in given else 0.0,
                              validation_fraction if "validation" not in given else 0.0)
            splits["train"] = cut["train"]
        for split in ("test", "validation"):
            splits[split] = given.get(split) or cut[split]
        return splits
    raise UserError(f"--data: expected gettext:es|fr|de, gettext+help:es, tsv:PATH or tfds:NAME; got '{data}'")
