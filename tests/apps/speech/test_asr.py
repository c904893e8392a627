"""ASR: CTC learns a tiny corpus, the serving graph decodes, transcribe reads any WAV, errors are one line."""

import json

import numpy as np
import pytest
import tensorflow as tf

from apps.speech import synth
from apps.speech.data import char_ids, ids_to_text
from apps.speech.recognition import asr_loss, error_rates, greedy_transcripts, waveform_lengths
from apps.speech.configs import AsrConfig
from shared import architectures
from shared.data.audio import write_wav
from tests.conftest import error_line, run_main

PHRASES = ("go left", "stop now", "turn the fan off", "say yes")


def test_characters_round_trip_and_lengths():
    ids = char_ids(tf.constant(["Go LEFT, now!", "it's 9"]))
    assert ids_to_text(ids.to_tensor(default_value=-1)).numpy().tolist() == [b"go left now", b"it's "]
    x = np.zeros((3, 10), np.float32)
    x[0, :4], x[1, :10], x[1, 3] = 0.1, -0.2, 0.0  # an inner zero is not padding
    assert waveform_lengths(tf.constant(x)).numpy().tolist() == [4, 10, 0]


@pytest.mark.slow
def test_ctc_loss_falls_and_greedy_decoding_recovers_a_training_utterance():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    audio = [synth.speak(p, "en-us", 160, 50) for p in PHRASES]
    width = max(len(a) for a in audio)
    x = tf.constant(np.stack([np.pad(a, (0, width - len(a))) for a in audio]))
    labels = char_ids(tf.constant(PHRASES))
    y = {"labels": labels.to_tensor(), "label_length": labels.row_lengths(), "samples": [len(a) for a in audio]}
    cfg = AsrConfig(model="deepspeech2_tiny")
    model = architectures.build(cfg.model, rnn_units=64)
    loss_fn, optimizer = asr_loss(cfg, None), keras.optimizers.Adam(3e-3)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(loss_fn(y, model(x, training=True)))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(250)]
    probs = model(x, training=False)
    heard = [t.decode() for t in greedy_transcripts(probs, model.output_lengths(y["samples"])).numpy()]
    assert np.mean(losses[-10:]) < 0.2 * np.mean(losses[:10]), (losses[:3], losses[-3:])
    assert error_rates(list(PHRASES), heard)["cer"] < 0.15, heard  # measured: CER 0.0


@pytest.fixture(scope="module")
def asr_run(tiny_runs):
    return tiny_runs("speech", "asr")


@pytest.mark.slow
def test_transcribe_reads_any_wav_and_long_files_in_windows(asr_run, tmp_path):
    home, run = asr_run
    tone = (0.3 * np.sin(np.arange(20 * 44100) / 7)).astype(np.float32)  # 20 s at 44.1 kHz
    long_stereo = tmp_path / "long.wav"
    from scipy.io import wavfile

    wavfile.write(long_stereo, 44100, np.stack([tone, tone * 0.5], 1))
    short = tmp_path / "short.wav"
    write_wav(short, synth.speak("stop now", "en-us", 160, 50))
    result = run_main(["dl-speech", "transcribe", run, short, long_stereo, "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in rows] == [str(short), str(long_stereo)]
    assert rows[1]["seconds"] == 20.0 and all(isinstance(r["transcript"], str) for r in rows)
    result = run_main(["dl-speech", "transcribe", run, short, "--json", "--lm", "train"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    from apps.speech.rescoring import lexicon_words

    words = set(lexicon_words([r["transcript"] for r in synth.read_manifest(synth.corpus_dir(0.05, 0))
                               if r["split"] == "train" and r["category"] in ("digits", "commands", "sentences")],
                              english=False))
    assert set(json.loads(result.stdout.splitlines()[-1])["transcript"].split()) <= words  # never a misspelt word
    empty, text = tmp_path / "empty.wav", tmp_path / "notes.wav"
    empty.write_bytes(b"")
    text.write_text("hello")
    for path, message in ((empty, "empty file (a WAV file expected)"),
                          (text, "not a WAV file (RIFF/WAVE header expected)")):
        line = error_line(run_main(["dl-speech", "transcribe", run, short, path], home))
        assert line == f"dl-speech: error: {path}: {message}"
    line = error_line(run_main(["dl-speech", "listen", run, short], home))
    assert line == f"dl-speech: error: {run}: a asr run; listen needs a kws run"


@pytest.mark.slow
def test_bench_scores_the_run_and_pocketsphinx_on_the_same_audio(asr_run):
    home, run = asr_run  # its SavedModel is timed beside pocketsphinx
    result = run_main(["dl-speech", "bench", run, "--limit", "2", "--val-limit", "4", "--speed-utterances", "2",
                       "--lexicon", "train"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads((run / "metrics.json").read_text())["bench"]
    assert bench["num_utterances"] == 2 and "pocketsphinx (en-us LM)" in bench["error_rates"]
    assert "deepspeech2_tiny lexicon + word LM" in bench["error_rates"] and bench["lexicon_lm"]["lexicon_words"] > 10
    assert all(0 <= r["all"]["cer"] for name, r in bench["error_rates"].items() if "all" in r)
    assert set(bench["real_time_factor"]) == {"savedmodel", "tflite", "pocketsphinx"}  # the run has both exports


def test_long_recordings_are_cut_at_quiet_points():
    from apps.speech.recognition import windows

    x = np.ones(40 * 16000, np.float32)
    x[14 * 16000:14 * 16000 + 1600] = 0.0  # a quiet 100 ms inside the first window's last 3 s
    cuts = windows(x)
    assert cuts[0][0] == 0 and cuts[-1][1] == len(x)
    assert all(a[1] == b[0] for a, b in zip(cuts, cuts[1:])) and all(e - s <= 15 * 16000 for s, e in cuts)
    assert 14 * 16000 <= cuts[0][1] <= 14 * 16000 + 1600


def test_manifest_data_reads_wavs_relative_to_the_file(tmp_path):
    from apps.speech.recognition import build_asr_data

    (tmp_path / "clips").mkdir()
    lines = []
    for i in range(30):
        write_wav(tmp_path / "clips" / f"{i}.wav", 0.1 * np.sin(np.arange(4000 + 100 * i) / 5))
        lines.append(f"clips/{i}.wav\tClip number {i}!")
    (tmp_path / "data.tsv").write_text("\n".join(lines) + "\n")
    cfg = AsrConfig(data=f"manifest:{tmp_path / 'data.tsv'}")
    data = build_asr_data(cfg)
    info = data.info
    assert info.num_train + info.num_val + info.num_test == 30 and info.num_train > info.num_test > 0
    for x, y in data.train.take(3):
        n = (int(x.shape[0]) - 4000) // 100
        text = ids_to_text(y["labels"][None]).numpy()[0].decode()
        from num2words import num2words

        # the digits become the words said
        assert text == f"clip number {num2words(n).replace('-', ' ')}" and int(y["samples"]) == 4000 + 100 * n
    (tmp_path / "bad.tsv").write_text("only-one-column\n")
    with pytest.raises(Exception, match="line 1: expected 'wav path<TAB>transcript'"):
        build_asr_data(AsrConfig(data=f"manifest:{tmp_path / 'bad.tsv'}"))


def test_word_lm_rescoring_prefers_known_word_sequences():
    from apps.speech.rescoring import lm_scores, rescore, tune, word_lm

    lm = word_lm(["go left now", "go right now", "stop now please", "turn the fan off", "turn the light on"] * 3)
    lists = [[("go lef now", -1.0), ("go left now", -1.2)], [("turn the fan of", -0.5), ("turn the fan off", -0.7)]]
    scores = lm_scores(lm, lists)
    assert rescore(lists, scores, 0.0, 0.0) == ["go lef now", "turn the fan of"]  # the CTC scores alone
    assert rescore(lists, scores, 1.0, 0.0) == ["go left now", "turn the fan off"]
    alpha, beta, wer = tune(["go left now", "turn the fan off"], lists, scores)
    assert alpha > 0 and wer == 0.0
