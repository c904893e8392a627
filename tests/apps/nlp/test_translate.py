"""`dl-nlp train translate`: the gettext reader, splits by source sentence, WordPiece in core
TF ops, beam search, and the tiny run's exports (shared with the end-to-end test)."""

import json
import struct

import numpy as np

from tests.conftest import error_line, plain_tf_text, run_main


def write_mo(path, messages):
    """A GNU .mo catalog of {msgid: msgstr} (keys may hold "ctx\\x04id" or "one\\x00many")."""
    keys = sorted(messages, key=lambda k: k.encode("utf-8"))
    ids, strs = [k.encode("utf-8") for k in keys], [messages[k].encode("utf-8") for k in keys]
    start = 7 * 4 + 16 * len(keys)
    table, data = [], b""
    for blob in ids + strs:
        table.append((len(blob), start + len(data)))
        data += blob + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, len(keys), 28, 28 + 8 * len(keys), 0, start)
    path.write_bytes(header + b"".join(struct.pack("<2I", *t) for t in table) + data)


def test_mo_reader_drops_context_plurals_header_and_untranslated(tmp_path):
    from apps.nlp.parallel import catalog_pairs, clean_message, read_catalog

    mo = tmp_path / "sw.mo"
    write_mo(mo, {
        "": "Content-Type: text/plain; charset=UTF-8\nPlural-Forms: nplurals=2; plural=(n != 1);\n",
        "menu\x04~Save": "~Guardar",
        "%1 page\x00%1 pages": "%1 página\x00%1 páginas",
        "F_irst column": "Pr_imera columna",
        "Untranslated": "",
        "OK": "OK",
        "Open  the\n file": "Abrir el archivo",
    })
    catalog = read_catalog(mo)
    assert catalog == {"~Save": "~Guardar", "%1 page": "%1 página", "F_irst column": "Pr_imera columna",
                       "OK": "OK", "Open  the\n file": "Abrir el archivo"}
    assert catalog_pairs([mo]) == [("%1 page", "%1 página"), ("First column", "Primera columna"),
                                   ("Open the file", "Abrir el archivo"), ("Save", "Guardar")]  # OK is a copy
    assert clean_message("snake_case and_more") == "snake_case and_more"  # two: not an accelerator
    assert clean_message("Save &As") == "Save As"


def test_splits_keep_every_test_source_out_of_training():
    from apps.nlp.parallel import split_pairs

    pairs = [(f"sentence {i % 700}", f"frase {i}") for i in range(1000)]  # 300 sources repeated
    splits = split_pairs(pairs, 0.1, 0.1)
    sources = {name: [s for s, _ in rows] for name, rows in splits.items()}
    assert sum(len(v) for v in sources.values()) == 700 and all(len(set(v)) == len(v) for v in sources.values())
    assert not set(sources["test"]) & (set(sources["train"]) | set(sources["validation"]))
    assert 40 < len(sources["test"]) < 100 and split_pairs(pairs[::-1], 0.1, 0.1)["test"] != []
    assert {s for s, _ in split_pairs(pairs[::-1], 0.1, 0.1)["test"]} == set(sources["test"])  # by text, not order


def test_help_pages_add_training_pairs_and_never_a_held_out_sentence(tmp_path):
    from apps.nlp.parallel import _HelpParagraphs, load_parallel

    page = tmp_path / "page.html"
    page.write_text('<h1 id="t">Insert <a href="x">Rows</a></h1><p id="a" class="p">Select the\n  rows.</p>'
                    '<p>no id</p><p id="d">one</p><p id="d">twice</p><table><tr><td id="c"><p id="in">In a '
                    'cell</p></td></tr></table>', encoding="utf-8")
    # inline markup flattened; a repeated id dropped; a cell's text is its paragraph's, once
    assert _HelpParagraphs.of(page) == {"t": "Insert Rows", "a": "Select the rows.", "in": "In a cell"}
    catalogs, both = load_parallel("gettext:es"), load_parallel("gettext+help:es")
    assert both["test"] == catalogs["test"] and both["validation"] == catalogs["validation"]
    held_out = {s for split in ("test", "validation") for s, _ in catalogs[split]}
    assert not held_out & {s for s, _ in both["train"]}
    assert len(both["train"]) > 2 * len(catalogs["train"])  # measured 36,053 against 15,675 pairs


def test_wordpiece_in_core_ops_equals_keras_hub_and_round_trips():
    import keras_hub
    import tensorflow as tf

    from shared.data.subword import LEARN_MAX_WORD_CHARS, WordPieceTokenizer, detokenize, learn_vocabulary

    long_word = "documentosdocumentosdocumentosdocumentos"  # 40 characters: not read by the learner
    train = ["Save the document as a new file.", "Open the selected files", "Guardar el documento como archivo nuevo.",
             "Abrir los archivos seleccionados", "Insert rows above", "Insertar filas encima", long_word] * 20
    vocabulary = learn_vocabulary(train, 200)
    assert vocabulary[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"]
    assert max(len(p.removeprefix("##")) for p in vocabulary) <= LEARN_MAX_WORD_CHARS
    assert 1 not in WordPieceTokenizer(vocabulary)(tf.constant([long_word])).to_list()[0]  # yet it tokenizes
    tests = ["Save the selected rows.", "Guardar filas", "unseen wörds (here)", "Ω"]
    ours = WordPieceTokenizer(vocabulary)(tf.constant(tests)).to_list()
    reference = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, lowercase=False, strip_accents=False,
                                                        split=False, oov_token="[UNK]")(tf.strings.split(tests))
    assert ours == [sum(r, []) if r and isinstance(r[0], list) else r for r in reference]
    assert ours[3] == [1]  # a word with a character the vocabulary lacks is one [UNK]
    back = [t.decode() for t in detokenize(tf.ragged.constant(ours[:2]).to_tensor(), vocabulary).numpy()]
    assert back == tests[:2]
    fixed = WordPieceTokenizer(vocabulary, sequence_length=6, add_start_end=True)(tf.constant(tests[:1])).numpy()
    assert fixed[0, 0] == 2 and fixed[0, -1] == 3 and fixed.shape == (1, 6)  # truncated, [END] kept


def test_beam_search_with_one_beam_is_greedy_and_more_beams_score_higher():
    import keras
    import tensorflow as tf

    from shared.architectures.transformer import TransformerSeq2Seq
    from shared.decoding import beam_search, greedy_decode

    keras.utils.set_random_seed(3)
    model = TransformerSeq2Seq(40, 40, 16, 2, 2, 32, 64, 0.0)
    source = tf.constant(np.random.default_rng(0).integers(4, 40, (4, 6)) * np.array([1, 1, 1, 1, 0, 0]), tf.int32)
    encoder, decoder = model.encoder_model(), model.decoder_model()
    prefix = tf.constant([[2, 7, 9]] * 4)
    full = model({"encoder_tokens": source, "decoder_tokens": prefix})
    parts = decoder({"encoder_tokens": source, "encoder_sequence": encoder(source), "decoder_tokens": prefix})
    np.testing.assert_allclose(full, parts, atol=1e-6)
    # cached decoding, a piece at a time, gives the whole prefix's logits at every position
    step, cache = model.cached_decoding(source, encoder(source), 12)
    for index in range(3):
        logits, cache = step(prefix[:, index], index, cache)
        np.testing.assert_allclose(logits, full[:, index], atol=1e-5)

    def step_fn(k):
        rows = tf.repeat(source, k, 0)
        step, cache = model.cached_decoding(rows, encoder(rows), 12)

        def next_log_probs(token, index, cache):
            logits, cache = step(token, index, cache)
            return tf.nn.log_softmax(logits), cache

        return next_log_probs, cache

    greedy = greedy_decode(*step_fn(1), 4, 12, 2, 3)
    one = beam_search(*step_fn(1), 4, 12, 2, 3, beam_size=1)
    for a, b in zip(greedy, one):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # greedy by hand with the uncached decoder: the same pieces
    tokens = tf.fill([4, 1], 2)
    for _ in range(12):
        logits = decoder({"encoder_tokens": source, "encoder_sequence": encoder(source), "decoder_tokens": tokens})
        tokens = tf.concat([tokens, tf.argmax(logits[:, -1], -1, output_type=tf.int32)[:, None]], 1)
    for row, length in zip(range(4), greedy[2].numpy()):
        np.testing.assert_array_equal(greedy[0][row, :length], tokens[row, 1:length + 1])
    four = beam_search(*step_fn(4), 4, 12, 2, 3, beam_size=4, length_penalty=0.0)
    assert np.all(four[1].numpy() >= greedy[1].numpy() - 1e-5)  # plain sums: the beam finds at least greedy's


def test_tsv_mistakes_are_one_line(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text("Hello\tHola\nno tab here\n", encoding="utf-8")
    line = error_line(run_main(["dl-nlp", "train", "translate", "--tiny", "--data", f"tsv:{path}"], tmp_path))
    assert line == f"dl-nlp: error: --data tsv:{path}: line 2: expected source<TAB>target"
    line = error_line(run_main(["dl-nlp", "train", "translate", "--tiny", "--data", "gettext:it"], tmp_path))
    assert line == "dl-nlp: error: --data gettext:it: expected one of es, fr, de"


def test_tiny_run_exports_translate_like_the_keras_model(tiny_runs):
    """The SavedModel in plain TF (no tensorflow-text) gives the Keras model's beam search
    translation; the TFLite core is recorded; vocabularies are written beside it."""
    from apps.nlp.translation import Translator
    from shared.training.runs import load_model, load_preprocess
    from shared.training.rundir import open_run

    home, run = tiny_runs("nlp", "translate")
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["num_sentences"] == 32 and {"bleu", "chrf", "ms_per_sentence"} <= set(test["greedy"])
    assert test["beam"]["beam_size"] == 2 and 0 <= test["bleu"] <= 100 and len(test["samples"]) == 5
    assert metrics["exports"]["savedmodel"]["parity"]["translation_match"] == 1.0
    history = json.loads((run / "history.json").read_text())
    assert history[-1]["loss"] < history[0]["loss"]
    sentences = ["Save the document.", "Open the file"]
    plain = plain_tf_text(run / "saved_model", sentences)
    assert plain["inputs"] == {"text": ["string", [None]]} and plain["outputs"] == {"translation": ["string", [None]]}
    opened = open_run(str(run))
    translator = Translator(load_model(opened), load_preprocess(opened), beam_size=2)
    assert translator.texts(sentences) == plain["result"]["translation"]
    import tensorflow as tf

    events = (home / "tensorboard_logs" / "nlp" / "translate" / "tiny" / "evaluation").glob("events.out.*")
    texts = {v.tag: tf.make_ndarray(v.tensor) for f in events for e in tf.compat.v1.train.summary_iterator(str(f))
             for v in e.summary.value if v.tag == "samples"}
    assert test["samples"][0]["source"].encode() in texts["samples"].item()  # the samples table in TensorBoard
    vocabulary = (run / "target_vocabulary.txt").read_text(encoding="utf-8").splitlines()
    assert vocabulary[:4] == ["[PAD]", "[UNK]", "[START]", "[END]"] and (run / "source_vocabulary.txt").is_file()


def test_translate_command_reads_arguments_and_stdin(tiny_runs, monkeypatch):
    import io

    home, run = tiny_runs("nlp", "translate")
    result = run_main(["dl-nlp", "translate", run, "Save the document.", "--json"], home)
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout.splitlines()[-1])
    assert row["text"] == "Save the document." and row["beam_size"] == 2 and isinstance(row["translation"], str)
    greedy = run_main(["dl-nlp", "translate", run, "Open the file", "--beam-size", "1"], home).stdout.splitlines()
    monkeypatch.setattr("sys.stdin", io.StringIO("Open the file\n\nSave the document.\n"))
    lines = run_main(["dl-nlp", "translate", run, "--beam-size", "1"], home).stdout.splitlines()
    assert len(lines) == 3 and lines[0] == greedy[0] and lines[1] == ""  # one output line per input line
    line = error_line(run_main(["dl-nlp", "translate", run, "x", "--beam-size", "0"], home))
    assert line == "dl-nlp: error: --beam-size: expected a positive number; got 0"


def test_bench_puts_apertium_beside_ours_and_drives_the_tflite_core(tiny_runs):
    home, run = tiny_runs("nlp", "translate")
    result = run_main(["dl-nlp", "bench", run, "--latency-sentences", "2", "--tflite-sentences", "2"], home)
    assert result.returncode == 0, result.stderr
    bench = json.loads(result.stdout.splitlines()[-1])
    assert set(bench["quality"]) == {"ours, beam 2", "ours, greedy", "Apertium eng-spa (rule-based)"}
    assert bench["quality"]["Apertium eng-spa (rule-based)"]["chrf"] > 20  # a real translator on the same sentences
    latency = bench["ms_per_sentence_batch_1"]
    assert latency["tflite_greedy_equals_keras"] == 1.0 and latency["savedmodel_beam"] > 0
    # the cached encode / decode_step signatures give the Keras greedy translations too
    assert latency["tflite_cached_equals_keras"] == 1.0 and latency["tflite_cached_greedy_loop"] > 0
