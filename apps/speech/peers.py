"""pocketsphinx (CMU Sphinx, PyPI `pocketsphinx`, its bundled en-us acoustic model): the
offline recogniser the bench compares with, with its default language model and with a
digit grammar for the digit strings."""

import numpy as np

from apps.speech.synth import DIGITS

DIGIT_GRAMMAR = ("#JSGF V1.0;\ngrammar digits;\npublic <digits> = ( " + " | ".join(DIGITS) + " )+ ;\n")


def _decoder(grammar=None):
    from pocketsphinx import Decoder

    decoder = Decoder(samprate=16000, logfn="/dev/null")
    if grammar:
        decoder.add_jsgf_string("grammar", grammar)
        decoder.activate_search("grammar")
    return decoder


def _recognise(decoder, waveforms):
    out = []
    for x in waveforms:
        pcm = np.round(np.clip(np.asarray(x, np.float32), -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        out.append(" ".join(w for w in (hyp.hypstr if hyp else "").lower().split() if not w.startswith("<")))
    return out


def pocketsphinx_transcripts(waveforms):
    """pocketsphinx's default en-us language model: a transcript per 16 kHz float waveform."""
    return _recognise(_decoder(), waveforms)


def pocketsphinx_digits(waveforms):
    """pocketsphinx restricted to digit strings (zero … nine)."""
    return _recognise(_decoder(DIGIT_GRAMMAR), waveforms)
