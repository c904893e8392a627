"""`dl-nlp train sentiment` learns on the real VADER sentences; its exports take raw strings."""

import json

import pytest

from tests.conftest import error_line, plain_tf_text, run_main


@pytest.fixture(scope="module")
def nlp_home(tmp_path_factory):
    return tmp_path_factory.mktemp("nlp")


@pytest.fixture(scope="module")
def vader_run(nlp_home):
    # every training sentence: started from the word vectors, 8,000 of them for 3 epochs gave test
    # accuracy 0.642 (a random start 0.693); all of them, 0.740 in 47 s. Batch 64 (the default's
    # 32 took this fixture from 47 to 159 s beside the other worker)
    result = run_main(["dl-nlp", "train", "sentiment", "--run-name", "vader", "--quiet", "--epochs", "3",
                       "--batch-size", "64", "--export", "savedmodel"], nlp_home)
    assert result.returncode == 0, result.stderr[-3000:]
    return nlp_home / "saved_models" / "nlp" / "sentiment" / "vader"


def test_sentiment_learns_on_vader_and_reports_per_source(vader_run):
    metrics = json.loads((vader_run / "metrics.json").read_text())
    history = json.loads((vader_run / "history.json").read_text())
    test = metrics["test"]
    assert history[-1]["loss"] < history[0]["loss"]
    assert test["accuracy"] > 0.68, test["accuracy"]  # majority class: 0.54
    assert test["roc_auc"] > 0.75, test["roc_auc"]
    assert set(test["per_group_accuracy"]) == {"tweets", "movie_reviews", "amazon", "nyt_editorials"}
    assert len(test["confusion_matrix"]) == 2 and (vader_run / "plots" / "confusion_matrix.png").is_file()
    peer = test["peer_vader"]  # the rule-based analyser on the same sentences
    assert 0.6 < peer["accuracy"] < 0.95 and set(peer["per_group_accuracy"]) == set(test["per_group_accuracy"])


def test_savedmodel_takes_raw_strings_with_plain_tensorflow(vader_run, nlp_home):
    texts = ["What a wonderful, moving film.", "Terrible, boring and far too long.", "", "日本語 ünïcode 😀"]
    out = plain_tf_text(vader_run / "saved_model", texts)
    assert out["inputs"] == {"text": ["string", [None]]}
    assert out["outputs"] == {"probabilities": ["float32", [None, 2]]}
    probs = out["result"]["probabilities"]
    assert len(probs) == 4 and all(abs(sum(p) - 1) < 1e-5 for p in probs)
    assert probs[0][1] > 0.5 > probs[1][1]  # (negative, positive)
    predicted = run_main(["dl-nlp", "predict", vader_run, *texts[:2], "--json"], nlp_home)
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    lines = [json.loads(l) for l in predicted.stdout.splitlines()]
    assert [l["label"] for l in lines] == ["positive", "negative"]
    for line, p in zip(lines, probs):  # Keras and the SavedModel agree
        assert abs(line["top"][0][1] - max(p)) < 1e-5


def test_score_regression_exports_a_score(nlp_home):
    result = run_main(["dl-nlp", "train", "sentiment", "--tiny", "--target", "score", "--run-name", "score",
                          "--quiet", "--export", "savedmodel,tflite"], nlp_home)
    assert result.returncode == 0, result.stderr[-3000:]
    run = nlp_home / "saved_models" / "nlp" / "sentiment" / "score"
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"pearson_r", "mae", "sign_accuracy"} <= set(metrics["test"])
    assert all(r["passed"] for r in metrics["exports"].values())
    out = plain_tf_text(run / "saved_model", ["good", "bad"])
    assert out["outputs"] == {"score": ["float32", [None]]} and len(out["result"]["score"]) == 2
    vocabulary = (run / "vocabulary.txt").read_text().splitlines()  # the TFLite core's token ids
    assert vocabulary[:2] == ["", "[UNK]"]


@pytest.mark.parametrize("content, flags, expected", [
    ("text,stars\ngood,1\n", ["--label-column", "label"],
     "--label-column label: no such column in {path} (columns: text, stars)"),
    ("text,label\ngood,1\n  ,0\n", [], "{path} line 3: empty text in column 'text'"),
    ("text,label\ngood,1\nfine,1\n", [], "--label-column label: {path} has a single class ('1'); need two or more"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", [], "--data csv:{path}: not UTF-8 text (byte 0); is it a binary file?"),
])
def test_csv_mistakes_print_one_line(tmp_path, content, flags, expected):
    path, home = tmp_path / "data.csv", tmp_path / "home"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run_main(["dl-nlp", "train", "sentiment", "--tiny", "--data", f"csv:{path}", *flags], home)
    assert error_line(result) == "dl-nlp: error: " + expected.format(path=path)
    assert not (home / "saved_models").exists() or not any((home / "saved_models").rglob("run.json"))


def test_explain_attributes_the_prediction_to_words(vader_run, nlp_home):
    result = run_main(["dl-nlp", "explain", vader_run, "a wonderful and moving film", "dull and awful", "--json"],
                         nlp_home)
    assert result.returncode == 0, result.stderr[-2000:]
    good, bad = [json.loads(l) for l in result.stdout.splitlines()]
    assert (good["label"], bad["label"]) == ("positive", "negative")
    assert [t for t, _ in good["tokens"]] == ["a", "wonderful", "and", "moving", "film"]
    for row in (good, bad):  # completeness: the attributions add up to output - baseline output
        total = sum(a for _, a in row["tokens"])
        assert abs(total - (row["output"] - row["baseline_output"])) < 0.02, row
    assert max(good["tokens"], key=lambda t: t[1])[0] == "wonderful"
    assert max(bad["tokens"], key=lambda t: t[1])[0] in ("dull", "awful")


def test_hold_out_tests_on_a_whole_source_never_trained_on(tmp_path):
    from apps.nlp.configs import SentimentConfig
    from apps.nlp.data import load_texts

    splits, _, source = load_texts(SentimentConfig(hold_out="amazon").validate())
    assert set(splits["test"][2]) == {"amazon"} and len(splits["test"][0]) > 3000  # every amazon sentence
    assert "amazon" not in set(splits["train"][2]) | set(splits["val"][2]) and "test: every amazon" in source
    line = error_line(run_main(["dl-nlp", "train", "sentiment", "--tiny", "--hold-out", "imdb"], tmp_path))
    assert line == "dl-nlp: error: --hold-out imdb: expected one of tweets, movie_reviews, amazon, nyt_editorials"
    line = error_line(run_main(["dl-nlp", "train", "sentiment", "--tiny", "--data", "sms_spam", "--hold-out",
                                "tweets"], tmp_path))
    assert line == "dl-nlp: error: --hold-out tweets: only with --data vader (its sources)"


def test_a_lexicon_trains_as_one_word_examples_and_never_reaches_validation_or_test(tmp_path):
    from apps.nlp.configs import SentimentConfig
    from apps.nlp.data import load_texts
    from shared.errors import UserError

    plain, _, _ = load_texts(SentimentConfig(lexicon="").validate())
    splits, names, source = load_texts(SentimentConfig(lexicon="afinn").validate())
    added = len(splits["train"][0]) - len(plain["train"][0])
    assert 3000 < added < 3382 and "words of the afinn lexicon" in source  # AFINN-165 without its 0-rated words
    lexicon = dict(zip(splits["train"][0][-added:], splits["train"][1][-added:]))
    assert lexicon["abandon"] == 0 and lexicon["outstanding"] == 1 and set(splits["train"][2][-added:]) == {"lexicon"}
    for split in ("val", "test"):
        assert splits[split][0] == plain[split][0]
    mine = tmp_path / "mine.txt"  # VADER's format: word, mean rating, s.d., ratings
    mine.write_text("superb\t3.1\t0.5\t[3, 3]\nmeh\t0\t0.2\t[0]\n:-)\t2.0\n\ndire\t-2.5\n")  # :-) has no word
    splits, _, _ = load_texts(SentimentConfig(lexicon=str(mine)).validate())
    assert splits["train"][0][-2:] == ["superb", "dire"] and list(splits["train"][1][-2:]) == [1, 0]
    _, _, source = load_texts(SentimentConfig(data="sms_spam", lexicon="afinn").validate())
    assert "--lexicon afinn not used: the classes (ham, spam) are not negative / positive" in source
    mine.write_text("superb 3\n")
    with pytest.raises(UserError, match=r"mine.txt line 1: expected word<TAB>rating; got 'superb 3'"):
        load_texts(SentimentConfig(lexicon=str(mine)).validate())


def test_bench_puts_tfidf_and_vader_beside_the_run(vader_run, nlp_home):
    result = run_main(["dl-nlp", "bench", vader_run], nlp_home)
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(result.stdout.splitlines()[-1])
    quality = bench["quality"]
    assert len(quality) == 4 and bench["hold_out"] == "" and bench["num_test"] > 4000
    # measured on the fixed test split: TF-IDF words 0.847, chars 0.844, VADER 0.783
    assert quality["TF-IDF words 1-2 + logistic regression"]["roc_auc"] > 0.8
    assert 0.75 < quality["VADER (rule-based)"]["roc_auc"] < 0.82
    assert json.loads((vader_run / "metrics.json").read_text())["bench"] == bench


def test_a_users_glove_file_starts_the_word_embedding(tmp_path):
    import keras
    import numpy as np

    from shared.training.rundir import open_run
    from shared.training.runs import load_model, load_preprocess
    from shared.data.text import vocabulary

    rng = np.random.default_rng(0)
    rows = {w: rng.normal(size=12).round(4) for w in ("good", "bad", "great", "awful", "the", "zyzzyva")}
    glove = tmp_path / "glove.12d.txt"  # GloVe text: no header, 12-d (the default embedding is 128-d)
    glove.write_text("".join(f"{w} {' '.join(map(str, v))}\n" for w, v in rows.items()))
    home = tmp_path / "home"
    result = run_main(["dl-nlp", "train", "sentiment", "--tiny", "--word-vectors", str(glove), "--freeze-embedding", "true",
                       "--vocabulary-size", "40000", "--run-name", "glove", "--quiet"], home)
    assert result.returncode == 0, result.stderr[-3000:]
    run = open_run(str(home / "saved_models" / "nlp" / "sentiment" / "glove"))
    words = vocabulary(load_preprocess(run))
    assert 20000 < len(words) < 40000 and words[-1] == "zyzzyva"  # the training words, then the file's others
    embedding = next(l for l in load_model(run).layers[1].layers if isinstance(l, keras.layers.Embedding))
    table = embedding.get_weights()[0]
    assert table.shape == (len(words), 12)
    for word in ("good", "awful", "zyzzyva"):  # frozen: still the file's vectors after training
        assert np.allclose(table[words.index(word)], rows[word], atol=1e-6)
    line = error_line(run_main(["dl-nlp", "train", "sentiment", "--tiny", "--word-vectors", str(tmp_path / "no.txt")],
                               home))
    assert line == f"dl-nlp: error: --word-vectors {tmp_path / 'no.txt'}: no such file (expected 'english' or a " \
                   "word2vec / GloVe file)"
