"""The healthcare app's configs: one dataclass per task (every field is a `dl-health train
TASK` flag) and `CONFIGS`, task name -> config class. Imports no TensorFlow, so flags are
parsed and checked before it starts."""

from dataclasses import dataclass

from shared.errors import UserError
from shared.training.config import TrainConfig, layer_widths


SLICE_SHAPE = (224, 192)  # (anterior-posterior rows, left-right columns) at 1 mm: Colin27's 217 x 181, padded


@dataclass
class RiskConfig(TrainConfig):
    """Disease risk from tabular records. `--data support | framingham [--target CVD] |
    breast_cancer | diabetes --task regression | csv:PATH --target COL [--numeric A,B]
    [--categorical C,D]`."""

    data: str = "support"
    target: str = ""
    task: str = "classification"
    numeric: str = ""
    categorical: str = ""
    split_seed: int = 0
    model: str = "mlp"
    # Chosen on SUPPORT's validation log loss among 6 settings (0.357 vs 0.360-0.368).
    hidden: str = "256,128"
    dropout: float = 0.5
    mc_samples: int = 50
    epochs: int = 60
    batch_size: int = 128
    optimizer: str = "adamw"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 10
    steps_per_execution: int = 8
    quantize: str = "none,float16"

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=64, hidden="32", mc_samples=8, early_stopping_patience=0, export="",
                   quantize="none")

    def validate(self):
        super().validate()
        if self.task not in ("classification", "regression"):
            raise UserError(f"--task: expected classification or regression; got '{self.task}'")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout: expected a fraction in [0, 1); got {self.dropout}")
        if self.mc_samples < 2:
            raise UserError(f"--mc-samples: expected at least 2 Monte Carlo samples; got {self.mc_samples}")
        layer_widths(self.hidden, "hidden")
        return self


@dataclass
class ImagingConfig(TrainConfig):
    """Anatomical segmentation of axial MRI slices. `--data colin27 | nifti:IMAGE,LABELS[;…] |
    nifti:DIR`; `--context K` adds the K neighbour slices on each side as channels (2.5D;
    K=0 is 2D)."""

    data: str = "colin27"
    # 2.5D by default. Measured on the default run: 3-D mean Dice 0.526 against 0.480 for 2D,
    # and HD95 11.0 mm against 13.1.
    context: int = 1
    slab: int = 6
    gap: int = 2
    model: str = "unet"
    base_filters: int = 16
    depth: int = 4
    augment: str = "flip,rotate,zoom,translate"
    epochs: int = 80
    batch_size: int = 8
    learning_rate: float = 2e-3
    lr_schedule: str = "cosine"
    warmup_epochs: int = 2
    steps_per_execution: int = 4
    early_stopping_patience: int = 0
    quantize: str = "none,float16"

    @classmethod
    def tiny(cls):
        return cls(epochs=1, batch_size=4, base_filters=4, depth=2, warmup_epochs=0, max_train_examples=16,
                   steps_per_execution=2, export="", quantize="none")

    def validate(self):
        super().validate()
        if self.context < 0 or self.slab < 1 or self.gap < 0:
            raise UserError(f"--context, --slab, --gap: expected >= 0, >= 1, >= 0; got {self.context}, {self.slab}, {self.gap}")
        if SLICE_SHAPE[0] % 2 ** self.depth or SLICE_SHAPE[1] % 2 ** self.depth:
            raise UserError(f"--depth {self.depth}: the {SLICE_SHAPE[0]}x{SLICE_SHAPE[1]} slices must divide by 2**depth")
        return self


@dataclass
class TreatmentConfig(TrainConfig):
    """Personalised treatment effects. `--data ihdp [--realisations 100] | csv:PATH --treatment
    COL --outcome COL` (csv: --realisations bootstrap copies); `--model tarnet | cfr [--ipm
    wass|mmd --alpha A] | dragonnet [--targeted-beta B]`."""

    data: str = "ihdp"
    treatment: str = ""
    outcome: str = ""
    realisations: int = 100
    model: str = "tarnet"
    representation: str = ""  # default: the paper widths of --model (200,200,200)
    head: str = ""  # default: 100,100
    dropout: float = 0.1
    ipm: str = "wass"
    alpha: float = 1.0
    targeted_beta: float = 1.0
    passes: int = 20
    epochs: int = 30
    # Validation loss bottoms out by epoch 6-7 on IHDP (TARNet, CFR); 8 more epochs without a
    # better one end the run with the same (best-epoch) weights in half the time.
    early_stopping_patience: int = 8
    # 256, not the paper's 100: 100 copies of small matrices run twice as fast per record at
    # 256 on 2 CPU cores (measured 332 vs 173 records/s), with a larger step to match.
    batch_size: int = 256
    optimizer: str = "adamw"
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"
    steps_per_execution: int = 16
    quantize: str = "none"

    @classmethod
    def tiny(cls):
        return cls(realisations=3, representation="16,16", head="8", epochs=2, passes=1, batch_size=32,
                   steps_per_execution=4, export="")

    def validate(self):
        super().validate()
        if self.model not in ("tarnet", "cfr", "dragonnet"):
            raise UserError(f"--model: expected tarnet, cfr or dragonnet; got '{self.model}'")
        if self.ipm not in ("wass", "mmd"):
            raise UserError(f"--ipm: expected wass or mmd; got '{self.ipm}'")
        if self.realisations < 1 or self.passes < 1:
            raise UserError(f"--realisations, --passes: expected positive integers; got {self.realisations}, {self.passes}")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout: expected a fraction in [0, 1); got {self.dropout}")
        for name in ("representation", "head"):
            if getattr(self, name):
                layer_widths(getattr(self, name), name)
        return self


CONFIGS = {"risk": RiskConfig, "imaging": ImagingConfig, "treatment": TreatmentConfig}
