"""Offline English text, as documents: Debian `fortunes` (one document per fortune; the
`ascii-art` and `art` categories are drawings, not text), Python's `pydoc_data.topics`
(one document per paragraph), chatterbot-corpus's English conversations (PyPI
`chatterbot-corpus`, read as data: one document per line) and the English messages of the
system's gettext catalogs (`msgid`s of `/usr/share/locale/*/LC_MESSAGES/*.mo`). Used for
language-model pretraining and as the speech corpus's sentences."""

import os
import re

from shared.errors import UserError

FORTUNES_DIR = "/usr/share/games/fortunes"
_NOT_PROSE = {"ascii-art", "art", "translate-me"}


def fortunes(directory=FORTUNES_DIR):
    """[(category, text)] of every fortune (Debian package `fortunes`; `make setup` installs it)."""
    if not os.path.isdir(directory):
        raise UserError(f"{directory}: no fortunes; run `make setup` (it installs Debian's fortunes package)")
    out = []
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if "." in name or name in _NOT_PROSE or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            out += [(name, t.strip()) for t in re.split(r"(?m)^%\s*$", f.read()) if t.strip()]
    return out


def pydoc_paragraphs():
    """[("pydoc", paragraph)] of the Python reference topics shipped with Python."""
    from pydoc_data.topics import topics

    out = []
    for text in topics.values():
        out += [("pydoc", p.strip()) for p in re.split(r"\n\s*\n", text) if len(p.split()) >= 4]
    return out


def english_documents():
    """[(source, text)]: fortunes then pydoc paragraphs."""
    return fortunes() + pydoc_paragraphs()


def chatterbot_english():
    """[(category, line)] of every line of chatterbot-corpus's English conversations."""
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("chatterbot_corpus")  # located, not imported
    if spec is None:
        raise UserError("chatterbot-corpus is not installed; run `make setup`")
    directory = os.path.join(os.path.dirname(spec.origin), "data", "english")
    out = []
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name), encoding="utf-8") as f:
            for conversation in yaml.safe_load(f).get("conversations") or []:
                out += [(name[:-4], str(line).strip()) for line in conversation if str(line).strip()]
    return out


def gettext_english(locale_dir="/usr/share/locale", language="de"):
    """[("gettext", msgid)]: the English source messages of one language's gettext catalogs
    (plural forms and context prefixes dropped). Empty when the system has none."""
    import gettext

    directory = os.path.join(locale_dir, language, "LC_MESSAGES")
    out = set()
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        try:
            with open(os.path.join(directory, name), "rb") as f:
                catalog = gettext.GNUTranslations(f)._catalog
        except (OSError, ValueError, UnicodeDecodeError):
            continue
        for key in catalog:
            msgid = (key[0] if isinstance(key, tuple) else key).split("\x04")[-1].strip()
            if msgid:
                out.add(msgid)
    return [("gettext", m) for m in sorted(out)]
