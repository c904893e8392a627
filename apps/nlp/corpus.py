"""Offline English text, as documents: Debian `fortunes` (one document per fortune; the
`ascii-art` and `art` categories are drawings, not text) and Python's `pydoc_data.topics`
(one document per paragraph). Used for language-model pretraining."""

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
