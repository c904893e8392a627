"""Audio files in and out: any WAV -> 16 kHz mono float32 in [-1, 1], and back.

Reading uses `scipy.io.wavfile` (PCM 8/16/24/32-bit, float 32/64, WAVE_FORMAT_EXTENSIBLE);
resampling `scipy.signal.resample_poly` (a polyphase filter, exact for rational ratios).
What scipy reports for a bad file is not a message for a user, so the file is checked
here first: empty, not RIFF/WAVE, or a data chunk shorter than its header says (truncated).
"""

import math
import struct

import numpy as np

from shared.errors import UserError

SAMPLE_RATE = 16000
SILENCE_PEAK = 1e-4  # a peak below this (-80 dBFS) is silence


def _check_wav(path):
    """Raises UserError for an empty, non-WAV or truncated file."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    if not data:
        raise UserError(f"{path}: empty file (a WAV file expected)")
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise UserError(f"{path}: not a WAV file (RIFF/WAVE header expected)")
    offset, fmt = 12, False
    while offset + 8 <= len(data):
        chunk, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if chunk == b"fmt ":
            fmt = True
        if chunk == b"data":
            if not fmt:
                raise UserError(f"{path}: not a readable WAV file (no format chunk before the data)")
            if data[:4] == b"RIFF" and offset + 8 + size > len(data):
                raise UserError(f"{path}: truncated WAV file ({len(data) - offset - 8} of {size} data bytes)")
            return
        offset += 8 + size + (size & 1)
    raise UserError(f"{path}: truncated WAV file (no audio data)")


def to_float(samples):
    """PCM or float samples as scipy returns them -> float32 in [-1, 1]."""
    if samples.dtype == np.uint8:
        return (samples.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(samples.dtype, np.integer):  # int16, int32 (24-bit comes left-justified)
        return samples.astype(np.float32) / float(2 ** (8 * samples.dtype.itemsize - 1))
    return np.clip(samples.astype(np.float32), -1.0, 1.0)


def resample(waveform, rate_in, rate_out=SAMPLE_RATE):
    """Resamples a float waveform from `rate_in` to `rate_out` Hz (polyphase)."""
    if rate_in == rate_out:
        return waveform.astype(np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(rate_in), int(rate_out))
    return resample_poly(waveform, rate_out // g, rate_in // g).astype(np.float32)


def read_wav(path, rate=SAMPLE_RATE, allow_silence=False):
    """Any WAV file -> float32 mono waveform at `rate` Hz in [-1, 1] (channels averaged).

    Raises UserError (one line, naming the file) for an unreadable, empty, truncated or
    silent file (unless `allow_silence`)."""
    import warnings

    from scipy.io import wavfile

    _check_wav(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", wavfile.WavFileWarning)  # unknown chunks (LIST, …)
            rate_in, samples = wavfile.read(path)
    except (ValueError, struct.error, EOFError) as e:
        raise UserError(f"{path}: not a readable WAV file ({e})") from None
    if samples.size == 0:
        raise UserError(f"{path}: no audio samples in this WAV file")
    waveform = to_float(samples)
    if waveform.ndim == 2:
        waveform = waveform.mean(axis=1)
    if not allow_silence and float(np.max(np.abs(waveform))) < SILENCE_PEAK:
        raise UserError(f"{path}: the audio is silent (peak below -80 dBFS)")
    return np.clip(resample(waveform, rate_in, rate), -1.0, 1.0)


def write_wav(path, waveform, rate=SAMPLE_RATE):
    """Writes a float waveform in [-1, 1] as a 16-bit PCM mono WAV file."""
    from scipy.io import wavfile

    pcm = np.round(np.clip(waveform, -1.0, 1.0) * 32767.0).astype(np.int16)
    wavfile.write(path, rate, pcm)
