"""The healthcare app's tasks: `risk` (disease prediction from records); `imaging` and
`treatment` follow (issue 9)."""

from dataclasses import dataclass

from apps.healthcare.risk import (build_risk_data, build_risk_model, calibrate_risk, decode_risk, explain_risk,
                                  load_records, risk_core, risk_loss, risk_report, risk_serving)
from shared.errors import UserError
from shared.export.parity import value_parity
from shared.tasks import Task, task_registry
from shared.training.config import TrainConfig

TASKS = task_registry("health")


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
        return cls(epochs=2, batch_size=64, hidden="32", mc_samples=8, early_stopping_patience=0, export="")

    def validate(self):
        super().validate()
        if self.task not in ("classification", "regression"):
            raise UserError(f"--task: expected classification or regression; got '{self.task}'")
        if not 0 <= self.dropout < 1:
            raise UserError(f"--dropout: expected a fraction in [0, 1); got {self.dropout}")
        if self.mc_samples < 2:
            raise UserError(f"--mc-samples: expected at least 2 Monte Carlo samples; got {self.mc_samples}")
        try:
            widths = [int(w) for w in self.hidden.split(",") if w]
        except ValueError:
            widths = [0]
        if not widths or min(widths) < 1:
            raise UserError(f"--hidden: expected a comma list of layer widths such as 128,64; got '{self.hidden}'")
        return self


@TASKS.register("risk")
def risk():
    return Task(
        config=RiskConfig,
        data=build_risk_data,
        model=build_risk_model,
        loss=risk_loss,
        metrics=risk_report,
        decode=decode_risk,
        load_input=load_records,
        serving=risk_serving,
        core=risk_core,
        parity=value_parity,
        calibrate=calibrate_risk,
        explain=explain_risk,
        description="disease risk from records: calibrated MLP with MC-dropout uncertainty (SUPPORT2, Framingham, CSV)",
    )
