"""Flat typed configs: every field is a CLI flag; YAML files are read first, flags override."""

import dataclasses
import typing

import yaml

from shared.errors import UserError

CHOICES = {
    "optimizer": ("adam", "adamw", "sgd", "rmsprop"),
    "lr_schedule": ("constant", "cosine", "exponential"),
    "precision": ("float32", "mixed_bfloat16", "mixed_float16", "auto"),
    "distribution": ("auto", "one_device", "mirrored", "multi_worker", "tpu"),
}
EXPORT_FORMATS = ("savedmodel", "tflite")
QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")


@dataclasses.dataclass
class TrainConfig:
    """Engine settings shared by every task (task configs subclass this)."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    warmup_epochs: int = 0
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD/RMSprop momentum; Adam's and AdamW's beta_1
    precision: str = "float32"
    jit_compile: bool = False
    distribution: str = "auto"
    cpu_replicas: int = 2
    tpu: str = ""
    steps_per_execution: int = 16
    seed: int = 42
    validation_split: float = 0.1
    early_stopping_patience: int = 0
    max_train_examples: int = 0
    export: str = "savedmodel,tflite"
    quantize: str = "none"
    init_from: str = ""  # a run whose weights (all but the classification head) start this one
    freeze_epochs: int = 0  # epochs training only the head, the transferred layers frozen
    fine_tune_lr_factor: float = 0.1  # after the frozen epochs: learning rate x this

    @classmethod
    def tiny(cls):
        """A seconds-long variant for tests and smoke runs."""
        return cls(epochs=2, batch_size=32, max_train_examples=512, steps_per_execution=4, export="")

    def validate(self):
        for name, allowed in CHOICES.items():
            value = getattr(self, name, None)
            if value is not None and value not in allowed:
                raise UserError(f"--{flag(name)}: expected one of {', '.join(allowed)}; got '{value}'")
        for name in ("epochs", "batch_size", "steps_per_execution", "cpu_replicas"):
            if getattr(self, name) < 1:
                raise UserError(f"--{flag(name)}: expected a positive integer; got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise UserError(f"--learning-rate: expected a positive number; got {self.learning_rate}")
        for name, allowed in (("export", EXPORT_FORMATS), ("quantize", QUANTIZE_MODES)):
            bad = [v for v in getattr(self, name).split(",") if v and v not in allowed]
            if bad:
                raise UserError(f"--{name}: expected a comma list of {', '.join(allowed)}; got '{bad[0]}'")
        if not 0 <= self.momentum < 1:
            raise UserError(f"--momentum: expected a number in [0, 1); got {self.momentum}")
        if not 0 < self.validation_split < 1:
            raise UserError(f"--validation-split: expected a fraction in (0, 1); got {self.validation_split}")
        if self.freeze_epochs:
            if not (self.init_from or getattr(self, "backbone_preset", "")):
                raise UserError("--freeze-epochs: needs pretrained layers to freeze (--init-from RUN"
                                + (" or --backbone-preset DIR)" if hasattr(self, "backbone_preset") else ")"))
            if not 0 < self.freeze_epochs < self.epochs:
                raise UserError(f"--freeze-epochs: expected 1..{self.epochs - 1} (fewer than --epochs); "
                                f"got {self.freeze_epochs}")
        if not 0 < self.fine_tune_lr_factor <= 1:
            raise UserError(f"--fine-tune-lr-factor: expected a number in (0, 1]; got {self.fine_tune_lr_factor}")
        return self


def flag(field_name):
    return field_name.replace("_", "-")


def fields(cls):
    """(name, type, default) of every config field, with string annotations resolved."""
    hints = typing.get_type_hints(cls)
    return [(f.name, hints[f.name], f.default) for f in dataclasses.fields(cls)]


def convert(name, kind, value):
    """Converts a flag or YAML value to the field's type, or raises a UserError."""
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            if str(value).lower() in ("1", "true", "yes", "on"):
                return True
            if str(value).lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if kind in (int, float) and isinstance(value, bool):
            raise ValueError
        return kind(value)
    except (TypeError, ValueError):
        raise UserError(f"--{flag(name)}: expected {kind.__name__}; got '{value}'") from None


def load_yaml(path):
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except yaml.YAMLError as e:
        raise UserError(f"--config {path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a mapping of field: value")
    return data


def resolve(cls, *, tiny=False, config_file=None, overrides=None):
    """Builds a config: defaults (or `tiny()`), then the YAML file, then flag overrides."""
    cfg = cls.tiny() if tiny else cls()
    known = {name: kind for name, kind, _ in fields(cls)}
    values = {}
    if config_file:
        values.update({k.replace("-", "_"): v for k, v in load_yaml(config_file).items()})
    values.update(overrides or {})
    for name, value in values.items():
        if name not in known:
            raise UserError(f"unknown config field '{name}'; expected one of: {', '.join(known)}")
        setattr(cfg, name, convert(name, known[name], value))
    return cfg.validate()


def to_dict(cfg):
    return dataclasses.asdict(cfg)


def dump_yaml(cfg):
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def layer_widths(value, flag):
    """The layer widths of a `--hidden 256,128`-style flag as a tuple of positive ints, or a
    one-line UserError naming `flag`."""
    parts = [w.strip() for w in str(value).split(",")]
    if not all(p.isdigit() and int(p) > 0 for p in parts):
        raise UserError(f"--{flag}: expected a comma list of layer widths such as 128,64; got '{value}'")
    return tuple(int(p) for p in parts)
