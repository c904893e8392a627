"""The NLP app's tasks."""

from dataclasses import dataclass

import keras

from apps.nlp.data import build_sentiment_data
from apps.nlp.models import build_sentiment_model, sentiment_serving
from shared.data.text import load_text
from shared.evaluation.text import accuracy_or_sign, decode_text_outputs, squared_error, text_report
from shared.tasks import Task, task_registry
from shared.training.config import TrainConfig

TASKS = task_registry("nlp")


def sentiment_report(model, ds, info, plots_dir):
    """`text_report`; on `--data vader` also the VADER analyser on the same test sentences."""
    result, plots = text_report(model, ds, info, plots_dir)
    if info.extra.get("vader_peer"):
        from apps.nlp.peers import vader_peer
        from shared.evaluation.predict import take_examples

        texts, targets = take_examples(ds, info.num_test)
        result["peer_vader"] = vader_peer(texts, targets, info.extra.get("test_groups"), not info.class_names)
    return result, plots


@dataclass
class SentimentConfig(TrainConfig):
    """Sentence sentiment. `--data vader | sms_spam | csv:PATH | tfds:NAME`; `--target polarity | score`."""

    data: str = "vader"
    data_dir: str = ""
    download: bool = False
    text_column: str = "text"  # --data csv:PATH only
    label_column: str = "label"  # --data csv:PATH only
    target: str = "polarity"  # polarity: classes; score: regression on the label (VADER: mean rating)
    model: str = "text_cnn"
    vocabulary_size: int = 20000
    sequence_length: int = 64
    epochs: int = 8
    batch_size: int = 64
    learning_rate: float = 1e-3
    lr_schedule: str = "cosine"
    early_stopping_patience: int = 3

    @classmethod
    def tiny(cls):
        return cls(epochs=2, batch_size=32, max_train_examples=512, steps_per_execution=4, export="",
                   model="text_cnn_tiny", vocabulary_size=500, sequence_length=32, early_stopping_patience=0)

    def validate(self):
        super().validate()
        from shared.errors import UserError

        if self.target not in ("polarity", "score"):
            raise UserError(f"--target: expected polarity or score; got '{self.target}'")
        if self.vocabulary_size < 3:
            raise UserError(f"--vocabulary-size: expected at least 3 (padding, unknown, a word); got {self.vocabulary_size}")
        if self.sequence_length < 1:
            raise UserError(f"--sequence-length: expected a positive length; got {self.sequence_length}")
        return self


@TASKS.register("sentiment")
def sentiment():
    return Task(
        config=SentimentConfig,
        data=build_sentiment_data,
        model=build_sentiment_model,
        loss=lambda cfg, info: (keras.losses.SparseCategoricalCrossentropy(reduction=None) if info.class_names
                                else squared_error),
        step_metrics={"accuracy": accuracy_or_sign},
        metrics=sentiment_report,
        decode=decode_text_outputs,
        load_input=load_text,
        monitor="val_loss",
        serving=sentiment_serving,
        description="sentence sentiment / text classification (VADER, SMS spam, CSV, TFDS)",
    )
