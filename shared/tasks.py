"""The task contract: one declarative record per task, registered in its app's registry."""

from dataclasses import dataclass, field
from typing import Any, Callable

from shared.registry import Registry


@dataclass
class DataInfo:
    """What a task's data function tells the model and the engine about its data."""

    input_shape: tuple
    input_dtype: str = "uint8"
    class_names: tuple = ()
    num_train: int = 0
    num_val: int = 0
    num_test: int = 0
    source: str = ""
    augment: Callable | None = None  # batch -> batch, applied to training batches only
    extra: dict = field(default_factory=dict)


@dataclass
class Data:
    """Unbatched (x, y) datasets; the engine batches, shuffles, pads and distributes them."""

    train: Any
    val: Any
    test: Any
    info: DataInfo


@dataclass
class Task:
    """A task: its config class and the functions that give it data, a model, metrics and decoding.

    config:  dataclass with defaults and a `tiny()` classmethod
    data:    cfg -> Data
    model:   (cfg, info) -> keras.Model taking raw inputs
    loss:    (cfg, info) -> keras loss returning one value per example (reduction=None)
    step_metrics: {name: fn(y_true, y_pred) -> per-example values}, averaged over examples
    metrics: (model, dataset, info, plots_dir) -> (dict of final metrics, list of plot paths)
    decode:  (model outputs as numpy, info) -> list of JSON-able predictions
    load_input: (path, info) -> one model input (raises UserError on a bad file)
    monitor: the validation metric early stopping and best-checkpointing watch
    """

    config: type
    data: Callable
    model: Callable
    loss: Callable
    metrics: Callable
    decode: Callable
    load_input: Callable
    step_metrics: dict = field(default_factory=dict)
    monitor: str = "val_loss"
    description: str = ""


def task_registry(app):
    """A registry for one app's tasks; entries are zero-argument functions returning a Task."""
    return Registry(f"{app} task")
