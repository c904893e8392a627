"""The WAV reader: every sample format, channels and rate in; one-line errors for bad files."""

import struct

import numpy as np
import pytest
from scipy.io import wavfile

from shared.data.audio import SAMPLE_RATE, read_wav, write_wav
from shared.errors import UserError

TONE = 0.5 * np.sin(2 * np.pi * 440 * np.arange(SAMPLE_RATE // 2) / SAMPLE_RATE).astype(np.float32)


def _pcm24(path, x, rate):
    v = np.round(x * (2 ** 23 - 1)).astype("<i4")
    data = b"".join(struct.pack("<i", int(s))[:3] for s in v)
    header = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " +
              struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 3, 3, 24) + b"data" + struct.pack("<I", len(data)))
    path.write_bytes(header + data)


@pytest.mark.parametrize("kind", ["uint8", "int16", "int24", "int32", "float32", "stereo", "44k1"])
def test_read_wav_any_format_gives_16k_mono_float(tmp_path, kind):
    path = tmp_path / f"{kind}.wav"
    rate, x = SAMPLE_RATE, TONE
    if kind == "uint8":
        wavfile.write(path, rate, np.round(x * 127 + 128).astype(np.uint8))
    elif kind == "int16":
        wavfile.write(path, rate, np.round(x * 32767).astype(np.int16))
    elif kind == "int24":
        _pcm24(path, x, rate)
    elif kind == "int32":
        wavfile.write(path, rate, np.round(x * (2 ** 31 - 1)).astype(np.int32))
    elif kind == "float32":
        wavfile.write(path, rate, x)
    elif kind == "stereo":  # the mix of the two channels
        wavfile.write(path, rate, np.stack([x * 1.5, x * 0.5], 1).astype(np.float32))
    else:  # 44.1 kHz, resampled
        rate = 44100
        wavfile.write(path, rate, (0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)).astype(np.float32))
    got = read_wav(path)
    assert got.dtype == np.float32 and got.ndim == 1 and len(got) == SAMPLE_RATE // 2
    tolerance = {"uint8": 1 / 64, "44k1": 0.02}.get(kind, 1e-3)
    middle = slice(200, -200)  # resampling filters ring at the very ends
    assert np.max(np.abs(got[middle] - TONE[middle])) < tolerance, kind


def test_write_then_read_is_lossless_to_16_bits(tmp_path):
    write_wav(tmp_path / "x.wav", TONE)
    assert np.max(np.abs(read_wav(tmp_path / "x.wav") - TONE)) <= 1 / 32767


def test_bad_files_are_one_line_errors(tmp_path):
    empty, text, truncated, silent = (tmp_path / n for n in ("empty.wav", "notes.wav", "cut.wav", "silent.wav"))
    empty.write_bytes(b"")
    text.write_text("these are not samples")
    write_wav(truncated, TONE)
    truncated.write_bytes(truncated.read_bytes()[:5000])
    wavfile.write(silent, SAMPLE_RATE, np.zeros(SAMPLE_RATE, np.int16))
    expected = {empty: "empty file (a WAV file expected)", text: "not a WAV file (RIFF/WAVE header expected)",
                truncated: "truncated WAV file (4956 of 16000 data bytes)",
                silent: "the audio is silent (peak below -80 dBFS)"}
    for path, message in expected.items():
        with pytest.raises(UserError) as e:
            read_wav(path)
        assert str(e.value) == f"{path}: {message}"
    assert read_wav(silent, allow_silence=True).max() == 0
