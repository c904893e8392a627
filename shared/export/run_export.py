"""A run's exports and model card: the serving model exported (atomic, verified) into the
run directory, the results recorded in `metrics.json` and the card, and (for a TFLite file
that carries the numeric core) the preprocessing recipe written beside it."""

import numpy as np

from shared.errors import UserError
from shared.tasks import load_data
from shared.training import config as config_lib
from shared.training.runs import load_model, read_metrics, write_metrics, write_preprocess_recipe

def export_run_dir(run, task, cfg, formats, quantize, model=None, data=None, verbose=True):
    """Exports a run's serving model (atomic, verified); records the results in metrics.json and the card."""
    import tensorflow as tf

    from shared.evaluation.predict import take_inputs
    from shared.export import ExportError, export_run

    model = model or load_model(run)
    data = data or load_data(task, cfg)
    calibration = take_inputs(data.train, 256) if "int8" in quantize else None
    heldout = take_inputs(data.test, 256)
    metrics = read_metrics(run)
    # TFLite has no kernels for string ops (tokenizers): with a preprocess model it carries the
    # numeric core (e.g. token ids in), the tokenizer file beside it; SavedModel takes raw inputs.
    preprocess = data.info.preprocess
    serving = task.serving_model(model, data.info)
    whole = preprocess is None and task.core is None  # TFLite can carry the serving graph itself
    parts = [(serving, [f for f in formats if whole or f != "tflite"], calibration, heldout)]
    if not whole and "tflite" in formats:
        core = lambda x: None if x is None or preprocess is None else tf.nest.map_structure(  # noqa: E731
            np.asarray, preprocess(x))
        parts.append((task.serving_model(model, data.info, raw=False), ["tflite"],
                      calibration if preprocess is None else core(calibration),
                      heldout if preprocess is None else core(heldout)))
        if preprocess is not None:
            write_preprocess_recipe(preprocess, run.path, data.info.extra.get("saved"))
    results, failure = {}, None
    for serving, part_formats, representative, inputs in parts:
        if not part_formats:
            continue
        try:
            results.update(export_run(serving, run.path, formats=tuple(part_formats), quantize=tuple(quantize),
                                      representative_inputs=representative, heldout_inputs=inputs,
                                      parity=task.parity))
        except ExportError as e:
            results.update(e.results)
            failure = e
    metrics["exports"] = {**metrics.get("exports", {}), **results}
    write_metrics(run, metrics)
    write_card(run, task, cfg, metrics, data.info)
    if verbose:
        for name, r in results.items():
            figures = ", ".join(f"{k}={v:.4g}" for k, v in r.get("parity", {}).items())
            print(f"Export {name}: {'verified' if r.get('passed') else 'FAILED'} "
                  f"({r.get('size_bytes', 0) / 1e6:.2f} MB; {figures or r.get('error', '')})", flush=True)
    if failure is not None:
        raise UserError(f"export failed verification: {failure}")
    return results


def write_card(run, task, cfg, metrics, info):
    from shared.export.model_card import write_model_card

    write_model_card(run.path, app=run.app, task=run.task, config=config_lib.to_dict(cfg),
                     data={"source": info.source, "classes": list(info.class_names),
                           "input_shape": list(info.input_shape), "input_dtype": info.input_dtype,
                           "num_train": info.num_train, "num_val": info.num_val, "num_test": info.num_test},
                     metrics={k: v for k, v in metrics.items() if k != "exports"},
                     exports=metrics.get("exports", {}), usage=info.extra.get("usage"),
                     intended_use=info.extra.get("intended_use"), limitations=info.extra.get("limitations"),
                     provenance=info.extra.get("provenance"))
