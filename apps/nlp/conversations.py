"""Conversations for `dl-nlp train chat`, read offline into (context, reply) pairs:

- `chatterbot` (default): chatterbot-corpus's YAML conversations (PyPI, installed
  `--no-deps`, its files read, never imported) in `--language` (english: 21 categories);
- `yaml:DIR`: YAML files of the same format (`conversations:` lists of turns);
- `tsv:PATH`: message<TAB>reply lines (single turns).

Multi-turn: the context of a reply is the message before it, preceded by the turn before
that (`previous [SEP] message`) when there is one. Every pair trains; the test set is a
held-out *variant* of every message (lower-cased, punctuation dropped, a word dropped or
misspelled, a filler word added: two of these, seeded by the text), and the validation set
another, so the right reply is always among the known ones but the wording was never seen.
With word vectors, validation also holds a synonym variant of each message that has a word
WordNet gives one for (`synonym_variant`): paraphrases weigh the retrieval blend.
"""

import os
import random
import re

from shared.errors import UserError

SEP = "[SEP]"
FILLERS = ("hey", "so", "please", "well", "ok")


def _yaml_conversations(directory, flag):
    import yaml

    files = sorted(f for f in os.listdir(directory) if f.endswith((".yml", ".yaml")))
    if not files:
        raise UserError(f"{flag}: no .yml files in {directory}")
    out = []
    for name in files:
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f) or {}
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise UserError(f"{flag}: {path}: not a YAML conversation file ({type(e).__name__})") from None
        conversations = doc.get("conversations") if isinstance(doc, dict) else None
        if not isinstance(conversations, list):
            raise UserError(f"{flag}: {path}: expected a `conversations:` list of turn lists")
        out += [[" ".join(str(t).split()) for t in c] for c in conversations if isinstance(c, list)]
    return out


def chatterbot_directory(language):
    """The installed chatterbot-corpus data folder of `language`, or a one-line error."""
    import importlib.util

    spec = importlib.util.find_spec("chatterbot_corpus")  # located, not imported
    if spec is None:
        raise UserError("chatterbot-corpus is not installed; run `make setup` (pip install --no-deps chatterbot-corpus)")
    root = os.path.join(os.path.dirname(spec.origin), "data")
    if not os.path.isdir(os.path.join(root, language)):
        languages = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
        raise UserError(f"--language {language}: chatterbot-corpus has {', '.join(languages)}")
    return os.path.join(root, language)


def conversation_pairs(conversations):
    """[(context, reply)] of turn lists, each pair once (first kept), empty turns skipped."""
    pairs, seen = [], set()
    for turns in conversations:
        turns = [t for t in turns if t]
        for i in range(1, len(turns)):
            context = f"{turns[i - 2]} {SEP} {turns[i - 1]}" if i >= 2 else turns[i - 1]
            if (context, turns[i]) not in seen:
                seen.add((context, turns[i]))
                pairs.append((context, turns[i]))
    return pairs


def load_conversations(data, language="english"):
    """[(context, reply)] of `--data` (see the module doc)."""
    kind, _, arg = data.partition(":")
    if kind == "chatterbot" and not arg:
        return conversation_pairs(_yaml_conversations(chatterbot_directory(language), f"--language {language}"))
    if kind == "yaml" and arg:
        if not os.path.isdir(arg):
            raise UserError(f"--data yaml:{arg}: no such folder")
        pairs = conversation_pairs(_yaml_conversations(arg, f"--data yaml:{arg}"))
    elif kind == "tsv" and arg:
        from apps.nlp.parallel import tsv_pairs

        pairs = tsv_pairs(arg)
    else:
        raise UserError(f"--data: expected chatterbot, yaml:DIR or tsv:PATH; got '{data}'")
    if len(pairs) < 4:
        raise UserError(f"--data {data}: {len(pairs)} message/reply pairs; expected at least 4")
    return pairs


def last_message(context):
    """The message a context ends with (after its last ` [SEP] `)."""
    return context.rpartition(f" {SEP} ")[2]


def synonym_variant(context, synonyms, seed):
    """A paraphrase-like copy of the last message of `context`: up to two words of four letters
    or more replaced by a synonym (`synonyms`: word -> synonyms, e.g. WordNet's), seeded by the
    text; None when no word has one."""
    head, sep, message = context.rpartition(f" {SEP} ")
    rng = random.Random(f"{seed}\x00synonym\x00{message}")
    words = message.split()
    bare = [re.sub(r"[^\w'-]", "", w).lower() for w in words]
    options = [i for i, w in enumerate(bare) if len(w) >= 4 and synonyms.get(w)]
    if not options:
        return None
    for i in rng.sample(options, min(2, len(options))):
        words[i] = words[i].lower().replace(bare[i], rng.choice(synonyms[bare[i]]))
    return f"{head}{sep}{' '.join(words)}"


def message_variant(context, seed):
    """A reworded copy of the last message of `context` (two seeded edits; see the module doc)."""
    head, sep, message = context.rpartition(f" {SEP} ")
    rng = random.Random(f"{seed}\x00{message}")
    edits = rng.sample(("lower", "punctuation", "drop", "typo", "filler"), 2)
    words = message.split()
    for edit in edits:
        if edit == "lower":
            words = [w.lower() for w in words]
        elif edit == "punctuation":
            words = [w for w in (re.sub(r"[^\w'-]", "", w) for w in words) if w]
        elif edit == "drop" and len(words) >= 3:
            del words[rng.randrange(len(words))]
        elif edit == "typo":
            long = [i for i, w in enumerate(words) if len(w) >= 4]
            if long:
                i = rng.choice(long)
                j = rng.randrange(len(words[i]) - 1)
                w = words[i]
                words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
        elif edit == "filler":
            words = [rng.choice(FILLERS)] + words
    variant = " ".join(words) or message
    if variant == message:
        variant = f"{rng.choice(FILLERS)} {message.lower()}"
    return f"{head}{sep}{variant}"
