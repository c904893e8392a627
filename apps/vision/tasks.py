"""The vision app's tasks."""

from dataclasses import dataclass

import keras

from apps.vision.data import build_classify_data
from apps.vision.models import build_classifier
from shared.data.images import load_image_file
from shared.evaluation.classification import accuracy_per_example, classification_report, decode_probabilities
from shared.tasks import Task, task_registry
from shared.training.config import TrainConfig

TASKS = task_registry("vision")


@dataclass
class ClassifyConfig(TrainConfig):
    """Image classification. `--data fashion_mnist | tfds:NAME | folder:PATH`."""

    data: str = "fashion_mnist"
    data_dir: str = ""
    download: bool = False
    image_size: int = 28
    channels: int = 1
    model: str = "cnn_bn"
    augment: str = "flip"
    epochs: int = 10
    batch_size: int = 128
    lr_schedule: str = "cosine"
    learning_rate: float = 2e-3
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=32, max_train_examples=512, steps_per_execution=4,
                   export="", model="simple_cnn", augment="flip", early_stopping_patience=0)


@TASKS.register("classify")
def classify():
    return Task(
        config=ClassifyConfig,
        data=build_classify_data,
        model=build_classifier,
        loss=lambda cfg, info: keras.losses.SparseCategoricalCrossentropy(reduction=None),
        step_metrics={"accuracy": accuracy_per_example},
        metrics=classification_report,
        decode=decode_probabilities,
        load_input=lambda path, info: load_image_file(path, info.input_shape),
        monitor="val_accuracy",
        description="image classification (Fashion-MNIST, TFDS, image folders)",
    )
