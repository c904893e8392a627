"""`dl-nlp train generate` learns on real text; its SavedModel generates and scores with plain
TensorFlow; `dl-nlp generate` streams; `dl-nlp bench` compares with the n-gram peer."""

import json
import subprocess
import sys

import numpy as np
import pytest

from shared.data.corpus import fortunes
from apps.nlp.documents import load_documents, split_documents, stream, stream_of_windows, windows
from apps.nlp.configs import GenerateConfig
from tests.conftest import error_line, run_main

# Plain TensorFlow in a fresh interpreter (no dlsuite): both signatures, exactly as a user calls them.
PLAIN_TF = r"""
import json, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
generate, score = model.signatures["serving_default"], model.signatures["score"]
spec = lambda fn: {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_input_signature[1].items()}
prompts = tf.constant(json.loads(sys.argv[2]))
call = lambda t, k, p, s: [x.decode("utf-8") for x in generate(
    prompt=prompts, max_new_tokens=tf.constant(24), temperature=tf.constant(t), top_k=tf.constant(k),
    top_p=tf.constant(p), seed=tf.constant(s))["text"].numpy()]
scored = score(text=prompts)
print(json.dumps({"generate": spec(generate), "score": spec(score),
                  "outputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in generate.structured_outputs.items()},
                  "greedy": call(0.0, 0, 1.0, 0), "greedy_again": call(0.0, 0, 1.0, 7),
                  "sampled": call(0.9, 20, 0.9, 3), "sampled_again": call(0.9, 20, 0.9, 3), "other_seed": call(0.9, 20, 0.9, 4),
                  "log_prob": scored["log_prob"].numpy().tolist(), "num_chars": scored["num_chars"].numpy().tolist()}))
"""
PROMPTS = ["The ", "Q: Why did the chicken", "", "Ünïcödé 😀 "]


def test_documents_split_by_document_and_windows_round_trip():
    a, _ = load_documents(GenerateConfig(seed=1))
    b, _ = load_documents(GenerateConfig(seed=2))
    assert a["test"] == b["test"] and a["val"] != b["val"]  # the test documents never depend on --seed
    assert not set(a["test"]) & set(a["train"])
    assert len(a["train"]) + len(a["val"]) + len(a["test"]) == len({text for _, text in fortunes()})
    ids = stream(a["test"][:50])
    x, y = windows(ids, 64)
    assert x.shape == y.shape and (x[:, 1:] == y[:, :-1]).all()
    assert np.array_equal(stream_of_windows(x, y), ids)
    rows = split_documents(ids)
    from shared.data.byte_text import decode

    assert [decode(r) for r in rows] == a["test"][:50]


def test_evaluation_gives_a_unigram_model_its_analytic_bits_per_char():
    """The metric audit: a model whose logits are the training bytes' add-one log frequencies
    (whatever the context) scores the test documents, through the report's own scoring, at
    exactly the unigram cross-entropy computed by counting."""
    import keras

    from apps.nlp.documents import unigram_bits_per_char, unigram_log_probs
    from apps.nlp.language_model import document_scores
    from shared.data.byte_text import VOCABULARY_SIZE

    splits, _ = load_documents(GenerateConfig())
    train, rows = stream(splits["train"][:2000]), split_documents(stream(splits["test"][:300]))
    bias = np.concatenate([unigram_log_probs(train), [-1e9]])  # END (id 256) never predicted
    ids = keras.Input(shape=(None,), dtype="int32")
    x = keras.layers.LSTM(2, return_sequences=True)(keras.layers.Embedding(VOCABULARY_SIZE, 4)(ids))
    head = keras.layers.Dense(VOCABULARY_SIZE, kernel_initializer="zeros")
    model = keras.Model(ids, head(x))
    head.bias.assign(bias.astype("float32"))
    log_probs, chars = document_scores(model, rows)
    bits = -log_probs.sum() / np.log(2) / chars.sum()
    assert bits == pytest.approx(unigram_bits_per_char(train, rows), rel=1e-5)
    assert 4.0 < bits < 5.5  # English bytes: ~4.7 bits


@pytest.fixture(scope="module")
def lm_home(tmp_path_factory):
    return tmp_path_factory.mktemp("lm")


@pytest.fixture(scope="module")
def lm_run(lm_home):
    result = run_main(["dl-nlp", "train", "generate", "--run-name", "fortunes", "--quiet", "--model",
                          "transformer_lm_tiny", "--sequence-length", "64", "--epochs", "3", "--jit-compile", "false",
                          "--max-train-examples", "3000", "--export", "savedmodel"], lm_home)
    assert result.returncode == 0, result.stderr[-3000:]
    return lm_home / "saved_models" / "nlp" / "generate" / "fortunes"


@pytest.mark.slow
def test_language_model_beats_the_unigram_entropy_on_held_out_fortunes(lm_run):
    test = json.loads((lm_run / "metrics.json").read_text())["test"]
    history = json.loads((lm_run / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    assert test["num_documents"] == 732 and test["num_chars"] > 100_000  # every test fortune, whole
    assert test["bits_per_char"] < test["unigram_bits_per_char"] - 0.5, test  # measured: 3.4 vs 4.73
    assert test["perplexity"] == pytest.approx(2 ** test["bits_per_byte"], rel=1e-6)


@pytest.mark.slow
def test_savedmodel_generates_and_scores_with_plain_tensorflow(lm_run):
    out = subprocess.run([sys.executable, "-I", "-c", PLAIN_TF, str(lm_run / "saved_model"), json.dumps(PROMPTS)],
                         capture_output=True, text=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["generate"] == {"prompt": ["string", [None]], "max_new_tokens": ["int32", []],
                               "temperature": ["float32", []], "top_k": ["int32", []], "top_p": ["float32", []],
                               "seed": ["int32", []]}
    assert got["score"] == {"text": ["string", [None]]} and got["outputs"] == {"text": ["string", [None]]}
    assert got["greedy"] == got["greedy_again"]  # temperature 0: greedy, the seed is unused
    assert got["sampled"] == got["sampled_again"] and got["sampled"] != got["other_seed"]
    for prompt, text in zip(PROMPTS, got["greedy"]):
        assert text.startswith(prompt) and len(text.encode()) <= len(prompt.encode()) + 24
    assert got["num_chars"] == [len(p) for p in PROMPTS]
    # score == the sum of the Keras model's next-byte log-probabilities
    import tensorflow as tf

    from shared.data.byte_text import encode
    from shared.training.runs import load_model
    from shared.training.rundir import open_run

    model = load_model(open_run(str(lm_run)))
    for prompt, log_prob in zip(PROMPTS, got["log_prob"]):
        ids = encode(prompt)
        logits = model(ids[None, :-1]) if len(ids) > 1 else np.zeros((1, 0, 257))
        expected = float(np.sum([tf.nn.log_softmax(logits[0, i])[ids[i + 1]] for i in range(len(ids) - 1)]))
        assert log_prob == pytest.approx(expected, rel=1e-4, abs=1e-4)


@pytest.mark.slow
def test_generate_command_streams_the_greedy_text(lm_run, lm_home):
    result = run_main(["dl-nlp", "generate", lm_run, "The ", "--sampler", "greedy", "--max-new-tokens", "24"],
                         lm_home)
    assert result.returncode == 0, result.stderr[-2000:]
    import tensorflow as tf

    generate = tf.saved_model.load(str(lm_run / "saved_model")).signatures["serving_default"]
    exported = generate(prompt=tf.constant(["The "]), max_new_tokens=tf.constant(24), temperature=tf.constant(0.0),
                        top_k=tf.constant(0), top_p=tf.constant(1.0), seed=tf.constant(0))["text"].numpy()[0]
    assert result.stdout.rstrip("\n") == exported.decode("utf-8")  # keras-hub's GreedySampler == the exported loop
    sampled = run_main(["dl-nlp", "generate", lm_run, "A", "B", "--sampler", "top_p", "--seed", "1", "--json"],
                          lm_home)
    rows = [json.loads(line) for line in sampled.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["A", "B"] and all(r["text"] == r["prompt"] + r["continuation"] for r in rows)
    line = error_line(run_main(["dl-nlp", "generate", lm_run, "x", "--max-new-tokens", "64"], lm_home))
    assert line == "dl-nlp: error: --max-new-tokens: this model attends over 64 bytes; expected at most 63"
    line = error_line(run_main(["dl-nlp", "generate", lm_run, "x", "--p", "0"], lm_home))
    assert line == "dl-nlp: error: --p: expected a probability in (0, 1]; got 0.0"


def test_text_data_errors_are_one_line(tmp_path):
    """Each bad --data text: file is named in one line; one through the console script (exit
    code, no run left behind), the others through the data loader itself."""
    from shared.errors import UserError

    empty, binary, ok = tmp_path / "empty.txt", tmp_path / "model.bin", tmp_path / "two.txt"
    empty.write_text("  \n")
    binary.write_bytes(bytes(range(256)) * 4)
    ok.write_text("one paragraph\n\nand another\n")
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n\n".encode("latin-1") * 5)
    line = error_line(run_main(["dl-nlp", "train", "generate", "--tiny", "--data", f"text:{empty}"], tmp_path))
    assert line == f"dl-nlp: error: --data text:{empty}: the file is empty"
    assert not (tmp_path / "saved_models" / "nlp" / "generate").exists() or not any(
        (tmp_path / "saved_models" / "nlp" / "generate").iterdir())  # a failed start leaves no run
    for data, expected in [(binary, f"--data text:{binary}: {binary} is not text (it has NUL bytes; a binary file?)"),
                           (ok, f"--data text:{ok}: 2 document(s); need at least 3 (train, validation, test) — "
                                "separate paragraphs with blank lines or give a folder of files"),
                           (tmp_path / "missing", f"--data text:{tmp_path / 'missing'}: no such file or folder"),
                           (latin1, f"--data text:{latin1}: {latin1} is not UTF-8 text (byte 3); is it a binary file?")]:
        cfg = GenerateConfig.tiny()
        cfg.data = f"text:{data}"
        with pytest.raises(UserError) as error:
            load_documents(cfg)
        assert str(error.value) == expected


def test_indexed_kneser_ney_equals_nltk():
    from nltk.lm import KneserNeyInterpolated, Vocabulary
    from nltk.util import everygrams, pad_sequence

    from shared.ngram import kneser_ney_model

    docs = [text for _, text in fortunes()[:300]]
    for order, discount in ((2, 0.1), (4, 0.75)):
        ours = kneser_ney_model(docs[:250], order, discount)
        ref = KneserNeyInterpolated(order, discount=discount, vocabulary=Vocabulary(unk_cutoff=2))
        pad = lambda d: list(pad_sequence(d, order, pad_left=True, left_pad_symbol="<s>"))  # noqa: E731
        ref.fit((everygrams(pad(d), max_len=order) for d in docs[:250]), (c for d in docs[:250] for c in d))
        for d in docs[250:253]:
            padded = ["<s>"] * (order - 1) + list(d)
            for i in range(order - 1, len(padded)):
                context = padded[i - order + 1:i]
                assert ours.score(padded[i], context) == pytest.approx(ref.score(padded[i], context), abs=1e-12)


@pytest.mark.slow
def test_bench_compares_with_the_ngram_peer_and_times_the_cache(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, (_, text) in enumerate(fortunes()[:400]):
        (corpus / f"{i:03d}.txt").write_text(text)
    result = run_main(["dl-nlp", "train", "generate", "--tiny", "--data", f"text:{corpus}", "--run-name", "b",
                          "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "saved_models" / "nlp" / "generate" / "b"
    result = run_main(["dl-nlp", "bench", run, "--orders", "2,3", "--discounts", "0.5", "--new-tokens", "16"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(result.stdout.strip().splitlines()[-1])
    assert bench["kneser_ney_order"] in (2, 3) and set(bench["kneser_ney_val_bits_per_char"]) == {"2/0.5", "3/0.5"}
    assert 1.0 < bench["kneser_ney_bits_per_char"] < bench["unigram_bits_per_char"]
    assert bench["new_tokens"] == 16 and set(bench["tokens_per_second"]) == {
        "batch_1_cached", "batch_1_uncached", "batch_8_cached", "batch_8_uncached"}
    assert json.loads((run / "metrics.json").read_text())["bench"] == bench


def test_local_tfds_text_dataset_in_tiny_shakespeare_shape(tmp_path):
    import tensorflow_datasets as tfds

    from apps.nlp.documents import build_generate_data
    from tests.conftest import store_tfds

    plays = [text for _, text in fortunes()[:90]]  # tiny_shakespeare: one `text` example per split
    splits = {"train": [{"text": "\n\n".join(plays[:60])}], "validation": [{"text": "\n\n".join(plays[60:75])}],
              "test": [{"text": "\n\n".join(plays[75:])}]}
    store_tfds("tiny_plays", tfds.features.FeaturesDict({"text": tfds.features.Text()}), splits, tmp_path)
    cfg = GenerateConfig.tiny()
    cfg.data, cfg.data_dir = "tfds:tiny_plays", str(tmp_path)
    data = build_generate_data(cfg)
    x, y = (np.stack(a) for a in zip(*data.test.as_numpy_iterator()))
    assert split_documents(stream_of_windows(x, y))[0].tolist() == stream([splits["test"][0]["text"]])[:-1].tolist()
    targets = len(stream([splits["train"][0]["text"]])) - 1
    assert data.info.num_train == -(-targets // cfg.sequence_length)  # every byte predicted once


def test_english_pretraining_data_never_holds_the_fortunes_scored_on():
    english, source = load_documents(GenerateConfig(data="english"))
    fortunes_only, _ = load_documents(GenerateConfig())
    assert english["test"] == fortunes_only["test"] and english["val"] == fortunes_only["val"]
    train = set(english["train"])
    assert not train & set(fortunes_only["test"]) and not train & set(fortunes_only["val"])
    assert set(fortunes_only["train"]) <= train and len(train) > 200000 and source.startswith("the English library")


def test_init_from_auto_finds_the_newest_pretrained_byte_lm(tmp_path, monkeypatch, capsys):
    from apps.nlp.language_model import pretrained_byte_lm
    from apps.nlp.tasks import TASKS
    from shared.training.engine import resolve_init_from
    from shared.training.rundir import RunDir

    monkeypatch.setenv("DLSUITE_HOME", str(tmp_path))
    cfg = GenerateConfig(init_from="auto")
    assert pretrained_byte_lm(cfg)[0] == ""  # none yet: from scratch, saying how to build one
    made = {}
    for name, data, status, model in (("a", "english", "complete", cfg.model), ("b", "english", "complete", cfg.model),
                                      ("c", "english", "running", cfg.model), ("d", "fortunes", "complete", cfg.model),
                                      ("e", "english", "complete", "transformer_lm_tiny")):
        run = RunDir("nlp", "generate", name)
        run.write_config(f"data: {data}\nmodel: {model}\nsequence_length: {cfg.sequence_length}\n")
        run.write_info(status=status)
        made[name] = run.path
    assert pretrained_byte_lm(cfg)[0] == made["b"]  # the newest complete english run of this model
    assert pretrained_byte_lm(GenerateConfig(data="english"))[0] == ""  # pretraining itself starts from scratch
    resolved = resolve_init_from(TASKS.get("generate")(), cfg, verbose=True)
    assert resolved.init_from == made["b"] and "pretrained byte LM" in capsys.readouterr().out
    assert resolve_init_from(TASKS.get("generate")(), GenerateConfig(init_from="x"), False).init_from == "x"
