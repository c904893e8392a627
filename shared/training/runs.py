"""A run directory's contents, read and written in one place: its trained models, the
preprocessing model and recipe (vocabularies, feature specs) saved beside them,
`metrics.json`, and the run as the commands load it (`load_run`: the task record, resolved
config and data description of a finished run). The directory layout is `rundir.py`'s."""

import json
import os

import keras

from shared.errors import UserError

PREPROCESS_FILE = "preprocess.keras"



def data_info_dict(info):
    """What predict needs to rebuild DataInfo without loading the data."""
    return {"input_shape": list(info.input_shape), "input_dtype": info.input_dtype,
            "class_names": list(info.class_names), "num_train": info.num_train, "num_val": info.num_val,
            "num_test": info.num_test, "source": info.source,
            **({"extra": {"saved": info.extra["saved"]}} if info.extra.get("saved") else {})}


def load_run(app, tasks, path):
    """(run, task, config, DataInfo or None) of a run directory of `dl-<app>`; UserError otherwise."""
    from shared.tasks import DataInfo
    from shared.training import config as config_lib
    from shared.training.rundir import open_run

    run = open_run(path)
    if run.app != app:
        raise UserError(f"{path}: a dl-{run.app} run, not a dl-{app} one")
    task = tasks.get(run.task)()
    saved = run.read_config()
    if saved is None:
        raise UserError(f"{run.path}: no config.yaml in this run directory")
    cfg = config_lib.resolve(task.config, overrides=saved)
    task = task.for_config(cfg)
    info = run.read_info().get("data_info")
    if not info:
        return run, task, cfg, None
    return run, task, cfg, DataInfo(**{**info, "input_shape": tuple(info["input_shape"]),
                                       "class_names": tuple(info["class_names"])}, preprocess=load_preprocess(run))


def save_model(model, path):
    from shared.export.atomic import atomic_path

    with atomic_path(path) as tmp:  # Keras insists on the .keras suffix
        model.save(f"{tmp}.keras")
        os.replace(f"{tmp}.keras", tmp)


def load_model(run, name="model.keras"):
    path = run.file(name)
    if not os.path.isfile(path):
        raise UserError(f"{run.path}: no trained model ({name}) in this run directory")
    from shared import architectures

    architectures.names()  # registers every builder class with Keras before deserializing
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as e:  # a corrupt or foreign file
        raise UserError(f"{path}: cannot load the model ({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None


def load_preprocess(run):
    """The run's saved `preprocess` model (e.g. its tokenizer), or None if it has none."""
    return load_model(run, PREPROCESS_FILE) if os.path.isfile(run.file(PREPROCESS_FILE)) else None


def read_metrics(run):
    try:
        with open(run.file("metrics.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def write_metrics(run, metrics):
    from shared.export.atomic import atomic_write_json

    atomic_write_json(run.file("metrics.json"), metrics)


def write_preprocess_recipe(preprocess, directory, saved=None):
    """What a TFLite user needs to make the core's inputs and read its outputs:
    `features.json` for a record encoder, `vocabulary.txt` for a tokenizer, and `<key>.txt`
    for each list of strings the run keeps (`info.extra["saved"]`, e.g. a chat's replies)."""
    from shared.architectures.tabular import find_encoder
    from shared.export.atomic import atomic_write_text

    for key, values in (saved or {}).items():
        if isinstance(values, list) and values and all(isinstance(v, str) for v in values):
            atomic_write_text(os.path.join(directory, f"{key}.txt"), "".join(f"{' '.join(v.split())}\n" for v in values))

    from shared.data.subword import write_vocabularies

    encoder = find_encoder(preprocess)
    if encoder is not None:
        from shared.data.tabular import write_feature_spec

        return write_feature_spec(encoder, directory)
    if write_vocabularies(preprocess, directory):
        return directory
    from shared.data.text import write_vocabulary

    return write_vocabulary(preprocess, directory)
