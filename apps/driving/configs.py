"""The driving app's configs: one dataclass per task (every field is a `dl-drive train TASK`
flag) and `CONFIGS`, task name -> config class. Imports no TensorFlow, so flags are parsed and
checked before it starts."""

from dataclasses import dataclass

from shared.errors import UserError
from shared.image_configs import DetectorFields, SegmenterFields
from shared.training.config import TrainConfig, layer_widths


@dataclass
class RecordingConfig(TrainConfig):
    """Fields of every task trained on a recording (`--data record`: the default one, recorded once)."""

    data: str = "record"  # record (the default recording) or record:DIR (a `dl-drive record` output)
    episodes: int = 200  # episodes of the default recording
    record_seed: int = 0  # first seed of the default recording


@dataclass
class PolicyConfig(RecordingConfig):
    """Decision making: behaviour cloning of the IDM/MOBIL expert from the Kinematics observation, then
    DAgger rounds; evaluated in closed loop against the expert. `--data record | record:DIR`."""

    hidden: str = "256,256"
    dropout: float = 0.1
    dagger_rounds: int = 3
    dagger_episodes: int = 20  # episodes the policy drives (and the expert labels) per DAgger round
    eval_episodes: int = 50  # closed-loop episodes of the test report (policy and expert, same seeds)
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=32, episodes=6, hidden="32", dagger_rounds=1, dagger_episodes=2,
                   eval_episodes=2, steps_per_execution=4, export="")

    def validate(self):
        super().validate()
        layer_widths(self.hidden, "hidden")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout: expected a fraction in [0, 1); got {self.dropout}")
        for name in ("dagger_rounds", "dagger_episodes", "eval_episodes"):
            if getattr(self, name) < 0:
                raise UserError(f"--{name.replace('_', '-')}: expected a non-negative integer; got {getattr(self, name)}")
        if self.dagger_rounds and not self.dagger_episodes:
            raise UserError("--dagger-episodes: DAgger rounds need at least 1 episode each")
        return self


@dataclass
class CameraConfig(RecordingConfig):
    """Fields of the camera tasks."""

    view: str = "front"  # front (the dash-cam) or bev (highway-env's bird's-eye frames)
    augment: str = "flip"  # a mirrored road is a road; boxes and masks move with the pixels
    batch_size: int = 32
    lr_schedule: str = "cosine"

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=16, episodes=6, max_train_examples=64, steps_per_execution=4, export="")


@dataclass
class DetectConfig(CameraConfig, DetectorFields):
    """Vehicle detection in the camera frames. `--data record | record:DIR`, `--view front | bev`."""

    epochs: int = 8
    learning_rate: float = 2e-3


@dataclass
class LanesConfig(CameraConfig, SegmenterFields):
    """Lane-marking segmentation of the front-camera frames (U-Net), with TuSimple-style lane metrics."""

    model_size: int = 0  # full resolution: markings are 1-3 px wide
    epochs: int = 8
    learning_rate: float = 5e-3

    @classmethod
    def tiny(cls):
        cfg = super().tiny()
        cfg.base_filters, cfg.depth = 8, 2
        return cfg


CONFIGS = {"policy": PolicyConfig, "detect": DetectConfig, "lanes": LanesConfig}
