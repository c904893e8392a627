"""`dl-health train risk`: disease risk (or a clinical quantity) from tabular records.

The records go in raw (one input per column, NaN for missing); the in-graph encoder
(`shared.architectures.tabular`) makes the feature vector; an MLP with dropout gives a logit
(or a value); a temperature fitted on validation calibrates it; Monte Carlo dropout with
fixed masks gives each prediction's uncertainty.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

from apps.healthcare.records import load_table, target_values
from shared import architectures
from shared.architectures.tabular import CalibratedOutput, MonteCarloDropout, encoder_model, find_encoder
from shared.data.tabular import fit_columns, infer_schema, records, split_indices
from shared.errors import UserError
from shared.training.config import layer_widths
from shared.evaluation import calibration as cal
from shared.tasks import Data, DataInfo, end_to_end, read_inputs, trained_part

INTENDED_USE = ("Research and teaching: a reference for building and evaluating clinical risk models. "
                "Not a medical device and not validated for diagnosis, prognosis or treatment decisions "
                "about any patient.")
LIMITATIONS = [
    "Trained on one historical cohort; risk estimates do not transfer to other hospitals, eras or "
    "populations without external validation and recalibration.",
    "Associations, not causes: an attribution says what moved this model's output, not what would "
    "change the patient's outcome.",
    "The uncertainty is Monte Carlo dropout's spread: it grows on unusual records but is not a "
    "calibrated confidence interval.",
]


def split_table(table, regression, seed):
    """(frames, targets) of the seeded train/val/test split (stratified for classification)."""
    y = target_values(table, regression)
    train, val, test = split_indices(y, seed, stratify=not regression)
    frame = table.frame.drop(columns=[table.target])
    return {name: (frame.iloc[index].reset_index(drop=True), y[index])
            for name, index in (("train", train), ("val", val), ("test", test))}


def build_risk_data(cfg):
    regression = cfg.task == "regression"
    table = load_table(cfg.data, cfg.target)
    if len(table.frame) < 20:
        raise UserError(f"--data {cfg.data}: {len(table.frame)} rows; a risk model needs at least 20")
    columns = infer_schema(table.frame.drop(columns=[table.target]), None,
                           numeric=[c for c in cfg.numeric.split(",") if c],
                           categorical=[c for c in cfg.categorical.split(",") if c], where=f"--data {cfg.data}")
    splits = split_table(table, regression, cfg.split_seed)
    fit_columns(splits["train"][0], columns)
    preprocess = encoder_model(columns)
    datasets = {name: tf.data.Dataset.from_tensor_slices((records(frame, columns), y))
                for name, (frame, y) in splits.items()}
    y_train = splits["train"][1]
    train_features = np.asarray(preprocess(records(splits["train"][0], columns)))
    saved = {"regression": regression, "baseline": train_features.mean(0).round(6).tolist(),
             "target": table.target, "positive": table.positive,
             "target_mean": float(y_train.mean()), "target_std": float(y_train.std() or 1.0),
             "mc_samples": cfg.mc_samples, "mc_seed": cfg.seed}
    names = ", ".join(f"`{c.input}` {c.dtype}" for c in columns)
    usage = [f"SavedModel `serving_default({names}, each [N]) -> "
             + ('{"prediction": float32[N], "uncertainty": float32[N]}`' if regression else
                '{"probability": float32[N], "uncertainty": float32[N]}`')
             + "; NaN (numbers) or an empty string (categories) marks a missing value.",
             f"`dl-health predict RUN records.csv` (one line per record), `dl-health explain RUN row.csv`."]
    info = DataInfo(input_shape=(len(columns),), input_dtype="record", class_names=(),
                    num_train=len(y_train), num_val=len(splits["val"][1]), num_test=len(splits["test"][1]),
                    source=table.source, preprocess=preprocess,
                    extra={"saved": saved, "usage": usage, "intended_use": INTENDED_USE,
                           "limitations": LIMITATIONS,
                           "provenance": {"provenance": table.provenance, "licence": table.licence,
                                          "target": f"{table.target} ({table.positive})" if not regression
                                          else table.target,
                                          **({"left out": "; ".join(f"`{k}`: {v}" for k, v in table.dropped.items())}
                                             if table.dropped else {})}})
    return Data(datasets["train"], datasets["val"], datasets["test"], info)


def build_risk_model(cfg, info):
    """Features -> MLP with dropout -> `CalibratedOutput` (logit, or value in target units)."""
    saved = info.extra["saved"]
    width = int(info.preprocess.outputs[0].shape[-1])
    widths = layer_widths(cfg.hidden, "hidden")
    features = keras.Input(shape=(width,), name="features")
    mlp = architectures.build(cfg.model, input_shape=(width,), widths=widths, dropout=cfg.dropout,
                              output_units=1)
    scale = (saved["target_mean"], saved["target_std"]) if saved["regression"] else (0.0, 1.0)
    out = CalibratedOutput(*scale, name="calibrated")(mlp(features))
    return keras.Model(features, out, name="risk_mlp")


def risk_loss(cfg, info):
    saved = info.extra["saved"]
    if saved["regression"]:
        std = saved["target_std"]
        return lambda y, pred: tf.square((pred - tf.reshape(y, tf.shape(pred))) / std)
    return lambda y, logits: tf.nn.sigmoid_cross_entropy_with_logits(tf.reshape(y, tf.shape(logits)), logits)


def _calibrated(model):
    return next(layer for layer in trained_part(model).layers if isinstance(layer, CalibratedOutput))


def risk_core(model, info, samples=None):
    """The numeric part (TFLite): `features` float32 [N, F] -> probability (or prediction)
    and uncertainty: the standard deviation over Monte Carlo dropout samples."""
    saved = info.extra["saved"]
    samples = samples or saved.get("mc_samples", 50)
    width = int(info.preprocess.outputs[0].shape[-1])
    features = keras.Input(shape=(width,), name="features")
    point = model(features)
    spread = MonteCarloDropout(model, samples=samples, seed=saved.get("mc_seed", 0), name="mc_dropout")(features)
    if saved["regression"]:
        outputs = {"prediction": point, "uncertainty": keras.ops.std(spread, axis=0)}
    else:
        outputs = {"probability": keras.ops.sigmoid(point),
                   "uncertainty": keras.ops.std(keras.ops.sigmoid(spread), axis=0)}
    return keras.Model(features, outputs, name="risk_core")


def risk_serving(model, info):
    """`serving_default(<column>: float32 | string [N], …) -> {"probability" | "prediction",
    "uncertainty"}`: the record encoder in front of the core."""
    return end_to_end(risk_core(trained_part(model), info), info)


def serve_dataset(serving, ds, batch_size=512):
    """(outputs dict of numpy arrays, targets) of a serving model over an (x, y) dataset."""
    call = tf.function(lambda x: serving(x, training=False), reduce_retracing=True)
    outs, ys = [], []
    for x, y in ds.batch(batch_size):
        outs.append({k: np.asarray(v) for k, v in call(x).items()})
        ys.append(y.numpy())
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}, np.concatenate(ys)


def calibrate_risk(model, data):
    """Temperature scaling and the operating point (Youden J), both on validation data."""
    saved = data.info.extra["saved"]
    if saved["regression"]:
        return {}
    layer = _calibrated(model)
    e2e = end_to_end(model, data.info)
    logits, y = [], []
    for x, target in data.val.batch(1024):
        logits.append(np.asarray(e2e(x, training=False)))
        y.append(target.numpy())
    logits, y = np.concatenate(logits).astype(np.float64), np.concatenate(y)
    before = cal.sigmoid(logits)
    temperature = cal.fit_temperature(logits, y)
    after = cal.sigmoid(logits / temperature)
    threshold = cal.operating_threshold(y, after)
    layer.temperature.assign(temperature)
    layer.threshold.assign(threshold)
    saved["threshold"] = threshold
    return {"temperature": temperature, "threshold": threshold,
            "val_ece_before": cal.expected_calibration_error(y, before),
            "val_ece_after": cal.expected_calibration_error(y, after),
            "val_log_loss_before": float(np.mean(np.logaddexp(0, logits) - y * logits)),
            "val_log_loss_after": float(np.mean(np.logaddexp(0, logits / temperature) - y * logits / temperature))}


def risk_report(model, ds, info, plots_dir):
    """Test metrics of the served predictions (calibrated, with MC-dropout uncertainty)."""
    saved = info.extra["saved"]
    outputs, y = serve_dataset(risk_serving(model, info), ds)
    uncertainty = outputs["uncertainty"]
    if saved["regression"]:
        from shared.evaluation.plots import scatter_png
        from shared.evaluation.regression import regression_metrics

        pred = outputs["prediction"]
        result = regression_metrics(y, pred)
        error = np.abs(pred - y)
        plots = [scatter_png(y, pred, os.path.join(plots_dir, "predicted_vs_true.png"))]
    else:
        p = outputs["probability"]
        threshold = float(_calibrated(model).threshold.numpy())
        result = cal.risk_metrics(y, p, threshold)
        result["accuracy_at_threshold"] = float(np.mean((p >= threshold) == (y == 1)))
        error = np.abs(p - y)
        plots = [cal.reliability_png(y, p, os.path.join(plots_dir, "reliability.png")),
                 cal.roc_png(y, p, os.path.join(plots_dir, "roc.png"), threshold=threshold)]
    from scipy.stats import spearmanr

    result["mean_uncertainty"] = float(uncertainty.mean())
    # Is the spread informative? Its rank correlation with the error, and the error of the
    # half of the test records the model is surest about against the other half.
    surest = uncertainty <= np.median(uncertainty)
    result["uncertainty_error_spearman"] = float(spearmanr(uncertainty, error).statistic) if uncertainty.std() else 0.0
    result["error_surest_half"] = float(error[surest].mean())
    result["error_other_half"] = float(error[~surest].mean()) if (~surest).any() else 0.0
    return result, plots


def decode_risk(outputs, info):
    saved = info.extra.get("saved", {})
    if saved.get("regression"):
        return [{"prediction": float(v), "uncertainty": float(u),
                 "summary": f"{saved.get('target', 'prediction')} {v:.4g} ± {u:.3g}"}
                for v, u in zip(outputs["prediction"], outputs["uncertainty"])]
    threshold = saved.get("threshold", 0.5)
    return [{"probability": float(p), "uncertainty": float(u), "flagged": bool(p >= threshold), "threshold": threshold,
             "summary": f"risk {p:.3f} ± {u:.3f}" + (f" ≥ {threshold:.3f}: flagged ({saved.get('positive', 'positive')})"
                                                     if p >= threshold else f" < {threshold:.3f}")}
            for p, u in zip(outputs["probability"], outputs["uncertainty"])]


def load_records(path, info):
    """A CSV of records (header = column names; the target column, if present, is ignored)
    as a list of one-record input dicts."""
    import pandas as pd

    from shared.data.tabular import column_values

    encoder = find_encoder(info.preprocess)
    try:
        frame = pd.read_csv(path, skipinitialspace=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: not a CSV of records ({str(e).splitlines()[0][:100]})") from None
    missing = [c.name for c in encoder.columns if c.name not in frame.columns and c.input not in frame.columns]
    if len(missing) == len(encoder.columns) or frame.empty:
        raise UserError(f"{path}: expected a header row with the columns {', '.join(c.name for c in encoder.columns[:6])}, … "
                        "and one record per line")
    for c in encoder.columns:  # a column left out is missing in every record
        if c.name not in frame.columns:
            frame[c.name] = frame[c.input] if c.input in frame.columns else np.nan
    for c in encoder.columns:
        if c.kind == "numeric":
            bad = frame[c.name].dropna()[pd.to_numeric(frame[c.name].dropna(), errors="coerce").isna()]
            if len(bad):
                raise UserError(f"{path}: column '{c.name}' expects numbers; got '{bad.iloc[0]}' on line {int(bad.index[0]) + 2}")
    values = {c.input: column_values(frame, c) for c in encoder.columns}
    return [{k: v[i] for k, v in values.items()} for i in range(len(frame))]


def explain_risk(run, model, info, args):
    """Integrated gradients of each record's probability (or prediction) per column, from the
    training-mean record; prints the largest contributions."""
    from shared.explain.features import by_column, feature_integrated_gradients

    if args.method == "gradcam" or args.layer:
        raise UserError("risk runs are explained with integrated gradients over columns (no --method gradcam, --layer)")
    saved = info.extra["saved"]
    encoder = find_encoder(info.preprocess)
    names, _, batch = read_inputs(load_records, args.inputs, info)
    features = np.asarray(info.preprocess(batch))
    fn = (lambda f: model(f)) if saved["regression"] else (lambda f: tf.sigmoid(model(f)))
    attributions, outputs, at_baseline = feature_integrated_gradients(fn, features, saved["baseline"])
    columns = by_column(attributions, encoder.feature_columns())
    what = "prediction" if saved["regression"] else "probability"
    for k, name in enumerate(names):
        ranked = sorted(columns, key=lambda c: -abs(columns[c][k]))
        row = {"input": name, what: float(outputs[k]), f"baseline_{what}": at_baseline,
               "completeness_gap": float(outputs[k] - at_baseline - attributions[k].sum()),
               "attributions": {c: round(float(columns[c][k]), 6) for c in ranked},
               "values": {c.name: _shown(batch[c.input][k]) for c in encoder.columns}}
        if args.json:
            print(json.dumps(row))
            continue
        print(f"{name}: {what} {outputs[k]:.3f} (training-mean record {at_baseline:.3f})")
        for c in ranked[:8]:
            print(f"  {columns[c][k]:+.4f}  {c} = {row['values'][c]}")


def _shown(value):
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8")
    if isinstance(value, str):
        return value or "(missing)"
    return "(missing)" if np.isnan(value) else float(value)
