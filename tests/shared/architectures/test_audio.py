import os
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from shared.architectures.audio import (
    CTCAcousticModel,
    KeywordSpotter,
    LogMelSpectrogram,
    MatchboxNet,
    ctc_greedy_decode,
    ctc_loss,
)
from tests.shared.architectures.harness import run_builder_test

SR = 8000
FRONT = dict(sampling_rate=SR, frame_length=200, frame_step=80, fft_length=256, num_mel_bins=16,
             lower_edge_hertz=20.0, upper_edge_hertz=3800.0)
TINY_CTC = dict(vocabulary_size=5, conv_filters=(4,), conv_kernel_sizes=((5, 5),),
                conv_strides=((2, 2),), rnn_units=8, rnn_layers=1, dropout=0.0, **FRONT)
WAVES = np.random.default_rng(0).normal(0, 0.1, size=(2, 1600)).astype("float32")
# 1600 samples -> 1 + (1600 - 200) // 80 = 18 frames -> ceil(18 / 2) = 9 output frames.

TINY_MATCHBOX = dict(num_classes=3, prologue=(8, 5), blocks=((8, 5), (8, 7)), repeats=2, epilogue=(8, 5, 2),
                     dropout=0.0, **FRONT)
SPECS = {
    "ctc_acoustic": lambda: dict(
        init_kwargs=TINY_CTC, x=WAVES, expected_output_shape=(2, 9, 6),
        # Per-frame targets, one class: robust to BatchNorm moving-stat drift (CTC
        # training is checked in test_ctc_training_lowers_loss_and_decodes).
        y=np.ones((2, 9), "int32"), loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
    "keyword_spotter": lambda: dict(
        init_kwargs=dict(num_classes=3, filters=(4, 8), dropout=0.0, **FRONT),
        # One target class: a consistent direction that survives the BatchNorm moving-stat
        # drift between the harness's inference-mode loss readings (real learning is
        # checked in test_keyword_spotter_learns_tones_and_saves).
        x=WAVES, expected_output_shape=(2, 3), y=np.array([2, 2]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
    "matchboxnet": lambda: dict(
        init_kwargs={**TINY_MATCHBOX, "spec_augment": True}, x=WAVES, expected_output_shape=(2, 3), y=np.array([2, 2]),
        loss=keras.losses.SparseCategoricalCrossentropy(),
    ),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builder(name):
    cls = {"ctc_acoustic": CTCAcousticModel, "keyword_spotter": KeywordSpotter, "matchboxnet": MatchboxNet}[name]
    run_builder_test(cls, **SPECS[name]())


def _reference_log_mel(wave, sr, frame_length, frame_step, fft_length, mels, lo, hi):
    stft = tf.signal.stft(wave, frame_length=frame_length, frame_step=frame_step,
                          fft_length=fft_length)
    power = tf.abs(stft) ** 2
    matrix = tf.signal.linear_to_mel_weight_matrix(mels, fft_length // 2 + 1, sr, lo, hi)
    return tf.math.log(tf.matmul(power, matrix) + 1e-6)


def test_log_mel_matches_tf_signal_on_sine():
    sr = 16000
    t = np.arange(sr) / sr
    wave = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype("float32")[None]
    layer = LogMelSpectrogram()  # 16 kHz, 25 ms / 10 ms frames, 512-point FFT, 80 mels
    out = np.asarray(layer(wave))
    ref = np.asarray(_reference_log_mel(wave, sr, 400, 160, 512, 80, 20.0, 7600.0))
    assert out.shape == ref.shape == (1, 1 + (sr - 400) // 160, 80)
    assert out.dtype == np.float32
    # Log domain, values in about [-14, 5]: same ops, so only float rounding differs.
    np.testing.assert_allclose(out, ref, atol=1e-4, rtol=1e-5)
    # The loudest mel band is the one whose centre is nearest 440 Hz.
    mel = lambda f: 1127.0 * np.log1p(np.asarray(f) / 700.0)
    centres = np.linspace(mel(20.0), mel(7600.0), 80 + 2)[1:-1]
    assert int(np.argmax(out[0].mean(axis=0))) == int(np.argmin(np.abs(centres - mel(440.0))))


def test_keras_mel_spectrogram_frames_differ():
    """Documents why the front end is not `keras.layers.MelSpectrogram`: it centers frames."""
    wave = np.zeros((1, 16000), "float32")
    keras_out = keras.layers.MelSpectrogram(fft_length=400, sequence_stride=160,
                                            num_mel_bins=80, power_to_db=False)(wave)
    ours = LogMelSpectrogram(fft_length=400)(wave)
    assert keras_out.shape[-1] == 1 + 16000 // 160  # (batch, mels, frames), centered
    assert ours.shape[1] == 1 + (16000 - 400) // 160  # (batch, frames, mels), as tf.signal


def test_log_mel_under_mixed_precision_and_config():
    layer = LogMelSpectrogram(**FRONT)
    clone = LogMelSpectrogram.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = KeywordSpotter(num_classes=3, filters=(4,), **FRONT)
        out = model(WAVES)
        assert out.dtype == tf.float32
        assert model.get_layer("kws_log_mel").compute_dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_output_lengths():
    model = CTCAcousticModel(**TINY_CTC)
    lengths = np.array([1600, 1000, 200, 100])
    # frames: 18, 11, 1, 0 -> stride 2 (same padding): 9, 6, 1, 0
    np.testing.assert_array_equal(model.output_lengths(lengths), [9, 6, 1, 0])
    assert model.blank_index == 5
    assert model(WAVES).shape[1] == int(model.output_lengths([1600])[0])


def test_ctc_training_lowers_loss_and_decodes():
    keras.utils.set_random_seed(0)
    model = CTCAcousticModel(**{**TINY_CTC, "rnn_units": 16})
    rng = np.random.default_rng(0)
    lengths = np.array([1600, 1200], "int32")
    waves = rng.normal(0, 0.3, size=(2, 1600)).astype("float32")
    waves[1, 1200:] = 0.0  # padded example
    labels = np.array([[1, 3, 2], [4, 0, -1]], "int32")  # -1: padding past label_lengths
    label_lengths = np.array([3, 2], "int32")
    optimizer = keras.optimizers.Adam(1e-2)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            probs = model(waves, training=True)
            loss = tf.reduce_mean(model.ctc_loss(tf.maximum(labels, 0), probs, label_lengths, lengths))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    def eval_loss():
        probs = model(waves, training=False)
        return float(tf.reduce_mean(model.ctc_loss(tf.maximum(labels, 0), probs, label_lengths, lengths)))

    before = eval_loss()
    assert np.isfinite(before)
    for _ in range(60):
        step()
    after = eval_loss()
    assert after < 0.5 * before, (before, after)

    decoded = np.asarray(model.decode(model(waves, training=False), lengths))
    assert decoded.shape[0] == 2
    assert set(decoded.ravel()) <= set(range(5)) | {-1}  # never the blank


def test_ctc_loss_and_greedy_decoder_values():
    # Frames: a a blank b b | blank c -> "a b" (repeats merged), "c"
    blank = 3
    path = [[0, 0, 3, 1, 1], [3, 2, 2, 3, 3]]
    probs = np.full((2, 5, 4), 0.01, "float32")
    for b, seq in enumerate(path):
        for t, k in enumerate(seq):
            probs[b, t, k] = 0.97
    decoded = np.asarray(ctc_greedy_decode(probs, np.array([5, 5]), blank))
    assert decoded[0, :2].tolist() == [0, 1] and decoded[1, 0] == 2
    assert (decoded[1, 1:] == -1).all()
    # A matching label sequence has a much lower loss than a wrong one.
    good = ctc_loss(np.array([[0, 1], [2, 0]]), probs, np.array([2, 1]), np.array([5, 5]), blank)
    bad = ctc_loss(np.array([[2, 2], [0, 0]]), probs, np.array([2, 1]), np.array([5, 5]), blank)
    assert good.shape == (2,) and (np.asarray(good) < np.asarray(bad) - 5).all()
    assert (np.asarray(good) < 1.0).all()


@pytest.mark.parametrize("cls,kwargs", [(KeywordSpotter, dict(num_classes=2, filters=(4, 8), dropout=0.0, **FRONT)),
                                         (MatchboxNet, {**TINY_MATCHBOX, "num_classes": 2})])
def test_keyword_spotter_learns_tones_and_saves(cls, kwargs):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    t = np.arange(1600) / SR
    y = np.arange(16) % 2
    waves = np.stack([
        rng.uniform(0.1, 1.0) * np.sin(2 * np.pi * (300 if k == 0 else 1500) * t + rng.uniform(0, 6))
        + rng.normal(0, 0.05, t.shape)
        for k in y
    ]).astype("float32")
    model = cls(**kwargs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    model.fit(waves, y, epochs=20, batch_size=8, verbose=0)
    np.testing.assert_array_equal(np.argmax(model(waves, training=False), -1), y)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kws.keras")
        model.save(path)
        restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_allclose(restored(waves), model(waves), atol=1e-5)


def test_variants_and_errors():
    from shared.architectures import _BUILDERS, _VARIANTS

    for variant, (arch, kwargs) in _VARIANTS.items():
        if arch in ("keyword_spotter", "matchboxnet"):
            model = _BUILDERS.get(arch)(**kwargs)
            assert model(np.zeros((1, 16000), "float32")).shape == (1, kwargs["num_classes"])
    with pytest.raises(ValueError, match="fft_length"):
        LogMelSpectrogram(frame_length=600, fft_length=512)
    with pytest.raises(ValueError, match="upper_edge_hertz"):
        LogMelSpectrogram(sampling_rate=8000, upper_edge_hertz=7600.0)
    with pytest.raises(ValueError, match="rnn_cell"):
        CTCAcousticModel(rnn_cell="rnn")
    with pytest.raises(ValueError, match="conv_filters"):
        CTCAcousticModel(conv_filters=(8,))
    with pytest.raises(ValueError, match="num_classes"):
        KeywordSpotter(num_classes=1)
    with pytest.raises(ValueError, match="epilogue"):
        MatchboxNet(epilogue=(128, 29))
    with pytest.raises(ValueError, match="repeats"):
        MatchboxNet(repeats=0)
