"""The speech app's configs: one dataclass per task (every field is a `dl-speech train TASK`
flag) and `CONFIGS`, task name -> config class. Imports no TensorFlow, so flags are parsed and
checked before it starts."""

from dataclasses import dataclass

from shared.errors import UserError
from shared.training.config import TrainConfig


@dataclass
class SpeechConfig(TrainConfig):
    """Fields both speech tasks share: the corpus (`--data synth`: `--hours`, `--corpus-seed`)."""

    data: str = "synth"
    data_dir: str = ""
    download: bool = False
    hours: float = 4.0
    corpus_seed: int = 0
    lr_schedule: str = "cosine"

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=8, hours=0.05, steps_per_execution=2, export="")

    def validate(self):
        super().validate()
        if not self.hours > 0:
            raise UserError(f"--hours: expected a positive number of hours; got {self.hours}")
        return self


@dataclass
class AsrConfig(SpeechConfig):
    """Speech recognition. `--data synth | manifest:PATH.tsv | tfds:librispeech`."""

    model: str = "deepspeech2_small"
    spec_augment: bool = True
    epochs: int = 18
    warmup_epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 1e-3
    beam_width: int = 16

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.model, cfg.beam_width, cfg.warmup_epochs = "deepspeech2_tiny", 4, 0
        return cfg


@dataclass
class KwsConfig(SpeechConfig):
    """Keyword spotting (yes no up down left right on off stop go _unknown_ _silence_).
    `--data synth | manifest:PATH.tsv | tfds:speech_commands`."""

    model: str = "kws_matchbox"  # MatchboxNet 3x1x64; kws_small (the older CNN) measured worse (README)
    hours: float = 8.0  # of one-second clips (the keywords mix): 23k training clips
    epochs: int = 60  # 23 min here; 24 epochs (10 min): test clips 0.942 vs 0.950, stream FRR at 1 FA/h 0.55 vs 0.50
    batch_size: int = 64
    learning_rate: float = 3e-3
    quantize: str = "none,int8"  # int8: for microcontroller-class devices
    spec_augment: bool = True  # SpecAugment masks in training (the matchboxnet models)
    mix: str = "keywords"  # the embedded corpus: one-second clips only (`synth.MIXES`; "all": asr's corpus)
    stream_hours: float = 1.0  # held-out listening audio (validation: the threshold; test: the report); 0: none

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.model, cfg.quantize, cfg.stream_hours, cfg.spec_augment = "kws_tiny", "none", 0.01, False
        return cfg

    def validate(self):
        super().validate()
        if self.mix not in ("all", "keywords"):
            raise UserError(f"--mix: expected all or keywords; got '{self.mix}'")
        if not self.stream_hours >= 0:
            raise UserError(f"--stream-hours: expected hours of audio (0: none); got {self.stream_hours}")
        return self


CONFIGS = {"asr": AsrConfig, "kws": KwsConfig}
