"""The task contract: one declarative record per task, registered in its app's registry."""

import dataclasses
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
    augment: Callable | None = None  # (x, y) batch -> (x, y) batch, on training batches only
    # A keras.Model from the raw inputs to the model's inputs (e.g. a tokenizer: strings ->
    # token ids), run by the engine in tf.data, saved with the run, put in front of exports.
    preprocess: Any = None
    extra: dict = field(default_factory=dict)


@dataclass
class Data:
    """Unbatched (x, y) datasets; the engine batches, shuffles, pads and distributes them.
    `x` and `y` may each be a tensor or a dict of tensors (boxes, masks, token ids, …)."""

    train: Any
    val: Any
    test: Any
    info: DataInfo


def default_batch(ds, batch_size, drop_remainder):
    """Plain batching, for examples of fixed shape."""
    return ds.batch(batch_size, drop_remainder=drop_remainder)


def bucketed_batch(length, bounds):
    """A `train_batch`: batches of examples of similar `length(x, y)` (little padding; a
    model that trims padding then pays for what the batch holds), bucket edges `bounds`,
    repeated so an epoch never runs short (each bucket drops its remainder)."""

    def train_batch(ds, batch_size):
        return ds.bucket_by_sequence_length(length, list(bounds), [batch_size] * (len(bounds) + 1),
                                            drop_remainder=True).repeat()

    return train_batch


@dataclass
class Task:
    """A task: its config class and the functions that give it data, a model, metrics and decoding.

    config:  dataclass with defaults and a `tiny()` classmethod
    data:    cfg -> Data
    model:   (cfg, info) -> keras.Model taking raw inputs (the trained graph)
    loss:    (cfg, info) -> fn(y_true, y_pred) returning one value per example; y may be dicts
    step_metrics: {name: fn(y_true, y_pred) -> per-example values}, averaged over examples
    metrics: (model, dataset, info, plots_dir) -> (dict of final metrics, list of plot paths)
    decode:  (serving outputs: dict of numpy arrays, info) -> list of JSON-able predictions
    load_input: (path, info) -> one raw model input (raises UserError on a bad file)
    monitor: the validation metric early stopping and best-checkpointing watch ("": none,
             the last epoch's weights are kept, e.g. a GAN's)

    Optional, with defaults that fit classification:
    batch:   (dataset, batch_size, drop_remainder) -> batched dataset (e.g. `padded_batch`),
             order kept
    train_batch: (shuffled dataset, batch_size) -> training batches, at least
             num_train // batch_size of them (e.g. bucketed by length, repeated); default
             `batch(dataset, batch_size, True)`
    serving: (model, info) -> keras.Model from the named raw inputs to a dict of named
             outputs with all post-processing inside (decoding, NMS, argmax). It is what
             `predict` runs and what is exported. Default: `{"probabilities": model(images)}`.
    parity:  (outputs, reference, fmt, quantize) -> {"passed", "tolerance", figures…}: how an
             export is compared with the Keras serving model (default: probabilities).
    render:  (raw input, prediction, path) -> writes a PNG of the prediction (`predict --out`)
    core:    (model, info) -> keras.Model: the numeric part TFLite carries when the serving
             graph has ops TFLite lacks (strings, generation loops); default: the serving
             model without `preprocess`. `serving` may then return `Endpoints` (several
             signatures, unbatched inputs; see shared/export/endpoints.py).
    calibrate: (model, data) -> {figures}: fits what is fitted after training on validation
             data (a temperature, an operating threshold) into the model's weights, before it
             is saved, evaluated and exported; the figures go to metrics.json. It may put
             small JSON values `predict` needs into `info.extra["saved"]`.
    explain: (run, model, info, args) -> None: the task's own `explain` command (attributions
             for tabular records); default: Grad-CAM / integrated gradients for images, text.
    epoch_plots: (model, info, plots_dir, epoch) -> [PNG paths] written after every epoch and
             logged to TensorBoard (a generator's samples as it trains)
    grow:    (model, data, round, directory, cfg) -> Data: data aggregation (DAgger): after each
             round of `cfg.epochs` the model acts, an expert labels what it met, and the next
             round trains on the union; `cfg.dagger_rounds` rounds. It caches a round's data in
             `directory` and reloads it from there (a resumed run trains on the same data).
    float32_reason: why `--precision auto` keeps this task in float32 (its accuracy drops
             in bfloat16 at equal steps, measured); "" lets auto measure speed and decide.
    pretrained: (cfg) -> (run path or "", why): the run `--init-from auto` starts from (a
             model pretrained once and shared, e.g. the byte LM of `generate --data english`),
             "" to train from scratch, and a line saying which and why.
    modes:   {mode: {field: value}}: a task of several modes (chat's retrieval and generative)
             names, per value of its config's `mode`, the fields that differ from the record's
             own (which serve the first mode); `for_config(cfg)` gives the resolved record.
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
    batch: Callable = default_batch
    train_batch: Callable | None = None
    serving: Callable | None = None
    parity: Callable | None = None
    render: Callable | None = None
    core: Callable | None = None
    calibrate: Callable | None = None
    explain: Callable | None = None
    grow: Callable | None = None
    epoch_plots: Callable | None = None
    float32_reason: str = ""
    pretrained: Callable | None = None
    modes: dict = field(default_factory=dict)

    def for_config(self, cfg):
        """This record with the fields of `cfg.mode` (itself for a task of one mode)."""
        if not self.modes:
            return self
        return dataclasses.replace(self, **self.modes.get(cfg.mode, {}), modes={})

    def serving_model(self, model, info, raw=True):
        """The model users call: the task's serving graph, or the trained model's one output
        named `probabilities`; with the data's `preprocess` in front unless `raw` is False
        (the numeric core that TFLite carries when preprocessing has no TFLite kernels)."""
        from shared.export.savedmodel import as_serving_model

        if not raw and self.core:
            return self.core(model, info)
        if self.serving:
            return self.serving(end_to_end(model, info) if raw else model, info)
        if info.preprocess is None:
            return as_serving_model(model)  # input named `images`
        model = end_to_end(model, info) if raw else model
        return as_serving_model(model, model.inputs[0].name)  # `text` / `token_ids`


def sparse_crossentropy(label_smoothing=0.0):
    """Per-example cross-entropy of integer labels and probabilities; with `label_smoothing`
    ε the target is (1 − ε)·one-hot + ε/classes (Keras's CategoricalCrossentropy on one-hot labels)."""
    import keras

    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(reduction=None)
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing, reduction=None)
    return lambda y, p: smoothed(keras.ops.one_hot(keras.ops.cast(y, "int32"), p.shape[-1]), p)


def classifier_task(**fields):
    """A Task with one class per input: per-example cross-entropy (`--label-smoothing` where the
    config has it), the accuracy step metric, top-k decoding of `probabilities` and
    `val_accuracy` to monitor; `fields` add or override."""
    from shared.evaluation.classification import accuracy_per_example, decode_probabilities

    defaults = dict(loss=lambda cfg, info: sparse_crossentropy(getattr(cfg, "label_smoothing", 0.0)),
                    step_metrics={"accuracy": accuracy_per_example}, decode=decode_probabilities,
                    monitor="val_accuracy")
    return Task(**{**defaults, **fields})


def load_data(task, cfg):
    """The task's data with `--max-train-examples` applied."""
    data = task.data(cfg)
    limited = data.info.extra.get("train_limited")  # the data function applied it (to part of the data)
    if cfg.max_train_examples and cfg.max_train_examples < data.info.num_train and not limited:
        data.train = data.train.take(cfg.max_train_examples)
        data.info.num_train = cfg.max_train_examples
    return data


def end_to_end(model, info):
    """`model` with `info.preprocess` in front (raw inputs -> outputs), or `model` itself.
    A preprocess model of several named inputs (a record's columns) keeps them all."""
    import keras

    if info.preprocess is None:
        return model
    raw = {x.name: keras.Input(shape=tuple(x.shape[1:]), dtype=x.dtype, name=x.name) for x in info.preprocess.inputs}
    if len(raw) == 1:
        raw = next(iter(raw.values()))
    return keras.Model(raw, model(info.preprocess(raw)), name=f"{model.name}{END_TO_END}")


END_TO_END = "_end_to_end"


def trained_part(model):
    """The trained model inside `end_to_end(model, info)` (or `model` itself)."""
    return model.layers[-1] if model.name.endswith(END_TO_END) else model


def read_inputs(load, paths, info):
    """(names, inputs, batch) of a user's files: `load(path, info)` returns one input, or a list
    of them for a file of several (a CSV's records, named `PATH:LINE`); every file is read
    (and so validated) before anything runs. The batch stacks the inputs, zero-padding
    shorter ones at the end (waveforms of different lengths)."""
    import tensorflow as tf

    names, inputs = [], []
    for path in paths:
        x = load(path, info)
        if isinstance(x, list):
            inputs += x
            names += [f"{path}:{line}" for line in range(2, len(x) + 2)]
        else:
            inputs.append(x)
            names.append(path)
    return names, inputs, tf.nest.map_structure(_zero_padded_stack, *inputs)


def _zero_padded_stack(*arrays):
    import numpy as np

    shapes = {np.shape(a) for a in arrays}
    if len(shapes) == 1:
        return np.stack(arrays)
    shape = np.max(list(shapes), axis=0)
    return np.stack([np.pad(a, [(0, m - n) for m, n in zip(shape, np.shape(a))]) for a in arrays])


def task_registry(app):
    """A registry for one app's tasks; entries are zero-argument functions returning a Task."""
    return Registry(f"{app} task")
