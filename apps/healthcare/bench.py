"""`dl-health bench RUN`: a risk run against the tabular state of the practice on the same
splits: sklearn `LogisticRegression` (on the run's own encoded features: imputed,
standardised, one-hot, missing flags) and `HistGradientBoostingClassifier` (on the raw
columns: it handles missing values and categories natively). Each model's operating
threshold is chosen on validation the same way (Youden J); nothing is recalibrated.
Regression runs compare with `RidgeCV` and `HistGradientBoostingRegressor`.
"""

import json
import time

import numpy as np

from shared.errors import UserError


def _hgb_frame(frame, encoder):
    """The raw columns for gradient boosting: numbers as float, categories as pandas categoricals."""
    import pandas as pd

    out = {}
    for c in encoder.columns:
        if c.kind == "numeric":
            out[c.name] = pd.to_numeric(frame[c.name], errors="coerce").astype(float)
        else:
            out[c.name] = pd.Categorical(frame[c.name].astype(str), categories=c.vocabulary or None)
    return pd.DataFrame(out)


def peers(regression, seed):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, RidgeCV

    if regression:
        return {"ridge (sklearn RidgeCV)": ("encoded", RidgeCV(alphas=np.logspace(-3, 3, 13))),
                "gradient boosting (sklearn HGB)": ("raw", HistGradientBoostingRegressor(random_state=seed))}
    return {"logistic regression (sklearn)": ("encoded", LogisticRegression(max_iter=5000)),
            "gradient boosting (sklearn HGB)": ("raw", HistGradientBoostingClassifier(random_state=seed))}


def bench_risk(run, task, cfg, info, args):
    """Prints the side-by-side table and one JSON line; records it in metrics.json as "bench"."""
    from apps.healthcare.records import load_table
    from apps.healthcare.risk import risk_serving, split_table
    from shared.architectures.tabular import find_encoder
    from shared.data.tabular import records
    from shared.evaluation import calibration as cal
    from shared.evaluation.regression import regression_metrics
    from shared.training import engine

    if run.task != "risk":
        raise UserError(f"{run.path}: a {run.task} run; dl-health bench compares risk runs")
    regression = cfg.task == "regression"
    encoder = find_encoder(info.preprocess)
    splits = split_table(load_table(cfg.data, cfg.target), regression, cfg.split_seed)
    serving = risk_serving(engine.load_model(run), info)
    rows = {}
    started = time.perf_counter()
    ours = {k: np.asarray(v) for k, v in serving(records(splits["test"][0], encoder.columns)).items()}
    val = {k: np.asarray(v) for k, v in serving(records(splits["val"][0], encoder.columns)).items()}
    seconds = time.perf_counter() - started
    y_val, y_test = splits["val"][1], splits["test"][1]

    def scores(p_val, p_test, fit_seconds):
        if regression:
            return {**regression_metrics(y_test, p_test), "fit_seconds": fit_seconds}
        return {**cal.risk_metrics(y_test, p_test, cal.operating_threshold(y_val, p_val)), "fit_seconds": fit_seconds}

    key = "prediction" if regression else "probability"
    rows[f"{cfg.model} {cfg.hidden} (this run, MC-dropout)"] = scores(val[key], ours[key], engine.read_metrics(run).get("train_seconds"))
    features = {name: np.asarray(info.preprocess(records(frame, encoder.columns))) for name, (frame, _) in splits.items()}
    raw = {name: _hgb_frame(frame, encoder) for name, (frame, _) in splits.items()}
    for name, (inputs, model) in peers(regression, cfg.seed).items():
        x = features if inputs == "encoded" else raw
        if inputs == "raw":
            model.set_params(categorical_features="from_dtype")
        started = time.perf_counter()
        model.fit(x["train"], splits["train"][1])
        fit_seconds = time.perf_counter() - started
        predict = model.predict if regression else (lambda v, m=model: m.predict_proba(v)[:, 1])
        rows[name] = scores(predict(x["val"]), predict(x["test"]), round(fit_seconds, 2))
    columns = (("r2", "mae", "rmse", "pearson_r") if regression else
               ("roc_auc", "pr_auc", "brier", "ece", "sensitivity", "specificity"))
    print(f"{cfg.data}: {len(y_test)} test records ({info.num_train} train, {info.num_val} validation); "
          f"inference of this run on test + validation {seconds:.2f} s")
    print(f"  {'model':44s} " + " ".join(f"{c:>11s}" for c in columns))
    for name, r in rows.items():
        print(f"  {name:44s} " + " ".join(f"{r[c]:11.4f}" for c in columns))
    metrics = engine.read_metrics(run)
    metrics["bench"] = json.loads(json.dumps({"test_records": int(len(y_test)), "models": {
        name: {c: r[c] for c in (*columns, "fit_seconds") if c in r} for name, r in rows.items()}},
        default=lambda v: float(np.asarray(v))))
    engine.write_metrics(run, metrics)
    print(json.dumps(metrics["bench"]))
