"""The speech app's task registry (asr, kws): one record per task, naming its config
(`configs.py`) and the functions of its data, model, metrics and serving (in the task's own
module). The layout rule: README.md, "Layout"."""

import keras
import numpy as np

from apps.speech.configs import AsrConfig, KwsConfig
from apps.speech.data import CLIP_SAMPLES, KWS_CLASSES
from apps.speech.keywords import build_kws_data, calibrate_kws, kws_report
from apps.speech.recognition import (asr_loss, asr_parity, asr_report, asr_serving, build_asr_data,
                                     bucketed_speech_batch, decode_transcripts, logits_core,
                                     padded_speech_batch)
from shared import architectures
from shared.data.audio import read_wav
from shared.tasks import Task, classifier_task, task_registry

TASKS = task_registry("speech")


def build_asr_model(cfg, info):
    return architectures.build(cfg.model, spec_augment=cfg.spec_augment)


def build_kws_model(cfg, info):
    from shared.errors import UserError

    if cfg.spec_augment and architectures.variants("matchboxnet").get(cfg.model) is None:
        raise UserError(f"--spec-augment: only the matchboxnet models have it; not --model {cfg.model}")
    return architectures.build(cfg.model, num_classes=len(KWS_CLASSES),
                               **({"spec_augment": True} if cfg.spec_augment else {}))


def kws_serving(model, info):
    """`serving_default(waveform float32 [N, 16000]) -> {"probabilities": float32 [N, 12]}`."""
    waveform = keras.Input(shape=(CLIP_SAMPLES,), dtype="float32", name="waveform")
    return keras.Model(waveform, {"probabilities": model(waveform)}, name="kws_serving")


def load_clip(path, info):
    """A WAV file as a one-second clip (its middle second when longer: see `dl-speech listen`)."""
    waveform = read_wav(path)
    start = max(0, (len(waveform) - CLIP_SAMPLES) // 2)
    waveform = waveform[start:start + CLIP_SAMPLES]
    return np.pad(waveform, (0, CLIP_SAMPLES - len(waveform))).astype(np.float32)


@TASKS.register("asr")
def asr():
    return Task(
        config=AsrConfig,
        data=build_asr_data,
        model=build_asr_model,
        loss=asr_loss,
        metrics=lambda model, ds, info, plots: asr_report(model, ds, info, plots, beam_width=info.extra.get("beam_width", 16)),
        decode=decode_transcripts,
        load_input=lambda path, info: read_wav(path),
        batch=padded_speech_batch,
        train_batch=bucketed_speech_batch,
        serving=asr_serving,
        core=logits_core,
        parity=asr_parity,
        description="speech recognition: character CTC, greedy and beam search (synth corpus, manifests, LibriSpeech)",
    )


@TASKS.register("kws")
def kws():
    return classifier_task(
        config=KwsConfig,
        data=build_kws_data,
        model=build_kws_model,
        metrics=kws_report,
        calibrate=calibrate_kws,
        load_input=load_clip,
        serving=kws_serving,
        description="keyword spotting: 10 words + unknown + silence in 1 s clips (synth corpus, Speech Commands)",
    )
