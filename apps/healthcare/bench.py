"""`dl-health bench RUN`: a risk run against the tabular state of the practice on the same
splits: sklearn `LogisticRegression` (on the run's own encoded features: imputed,
standardised, one-hot, missing flags) and `HistGradientBoostingClassifier` (on the raw
columns: it handles missing values and categories natively). Each model's operating
threshold is chosen on validation the same way (Youden J); nothing is recalibrated.
Regression runs compare with `RidgeCV` and `HistGradientBoostingRegressor`.

A treatment run is compared on the same IHDP realisations and splits with a T-learner and
an X-learner over sklearn gradient boosting and econml's `CausalForestDML`, beside the
published figures of TARNet, CFR-Wass, BART and Dragonnet.
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
    from shared.training import runs

    if run.task != "risk":
        raise UserError(f"{run.path}: a {run.task} run; dl-health bench compares risk runs")
    regression = cfg.task == "regression"
    encoder = find_encoder(info.preprocess)
    splits = split_table(load_table(cfg.data, cfg.target), regression, cfg.split_seed)
    serving = risk_serving(runs.load_model(run), info)
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
    rows[f"{cfg.model} {cfg.hidden} (this run, MC-dropout)"] = scores(val[key], ours[key], runs.read_metrics(run).get("train_seconds"))
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
    metrics = runs.read_metrics(run)
    metrics["bench"] = json.loads(json.dumps({"test_records": int(len(y_test)), "models": {
        name: {c: r[c] for c in (*columns, "fit_seconds") if c in r} for name, r in rows.items()}},
        default=lambda v: float(np.asarray(v))))
    runs.write_metrics(run, metrics)
    print(json.dumps(metrics["bench"]))


PUBLISHED = {  # on the standard IHDP-100 draws (NPCI, surface B): different draws, compare as averages
    "TARNet (Shalit et al., 2017)": {"pehe_in": 0.88, "pehe_out": 0.95},
    "CFR-Wass (Shalit et al., 2017)": {"pehe_in": 0.71, "pehe_out": 0.76},
    "BART (Hill, 2011; in Shalit et al.)": {"pehe_in": 2.1, "pehe_out": 2.3},
    "Dragonnet (Shi et al., 2019)": {"ate_error_in": 0.14, "ate_error_out": 0.20},
}


def treatment_peers(seed):
    """name -> fit(x, t, y) returning an effect function, the practice's three estimators."""
    from econml.dml import CausalForestDML
    from econml.metalearners import XLearner
    from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression

    def t_learner(x, t, y):
        arms = [GradientBoostingRegressor(random_state=seed).fit(x[t == k], y[t == k]) for k in (0, 1)]
        return lambda v: arms[1].predict(v) - arms[0].predict(v)

    def x_learner(x, t, y):
        model = XLearner(models=GradientBoostingRegressor(random_state=seed),
                         propensity_model=LogisticRegression(max_iter=2000)).fit(y, t, X=x)
        return lambda v: model.effect(v)

    def causal_forest(x, t, y):
        model = CausalForestDML(model_y=GradientBoostingRegressor(random_state=seed),
                                model_t=GradientBoostingClassifier(random_state=seed), discrete_treatment=True,
                                n_estimators=200, random_state=seed).fit(y, t, X=x)
        return lambda v: model.effect(v)

    return {"T-learner (sklearn GBM)": t_learner, "X-learner (econml, GBM)": x_learner,
            "CausalForestDML (econml)": causal_forest}


def bench_treatment(run, task, cfg, info, args):
    """The run beside the three peers on the same realisations and splits, and the published anchors."""
    import warnings

    from apps.healthcare.treatment import _collect, effect_metrics, ihdp, realisation_splits, targeted_effect
    from shared.data.tabular import records
    from shared.training import engine, runs

    if cfg.data != "ihdp":
        raise UserError(f"{run.path}: dl-health bench compares treatment runs on IHDP (known effects); this is {cfg.data}")
    realisations = min(args.realisations or cfg.realisations, cfg.realisations)
    data = engine.load_data(task, cfg)
    outputs, y = _collect(runs.load_model(run), data.test, data.info)
    tau_hat = (outputs["y1"] - outputs["y0"])[:, :realisations]
    rows = {f"{cfg.model} (this run)": effect_metrics(tau_hat, y["tau"][:, :realisations], y["split"][:, :realisations])}
    targeted = targeted_effect(outputs)
    if targeted is not None:
        rows[f"{cfg.model} (this run, targeted τ̃)"] = effect_metrics(
            targeted[:, :realisations], y["tau"][:, :realisations], y["split"][:, :realisations])
    frame, t, outcomes, tau = ihdp(realisations)
    x = frame.to_numpy(np.float64)
    codes = realisation_splits(len(frame), realisations)
    for name, fit in treatment_peers(cfg.seed).items():
        estimates = np.zeros_like(tau)
        started = time.perf_counter()
        for r in range(realisations):
            inside = codes[:, r] < 2
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                effect = fit(x[inside], t[inside].astype(int), outcomes[inside, r])
                estimates[:, r] = effect(x)
        rows[name] = {**effect_metrics(estimates, tau, codes), "fit_seconds": round(time.perf_counter() - started, 1)}
        print(f"  {name}: {realisations} realisations in {rows[name]['fit_seconds']:.0f} s", flush=True)
    columns = ("pehe_in", "pehe_out", "ate_error_in", "ate_error_out", "policy_regret_out")
    print(f"IHDP surface B, {realisations} realisations (econml draws 0-{realisations - 1}), "
          "mean ± standard error; in = train + validation rows, out = test rows")
    print(f"  {'model':36s} " + " ".join(f"{c:>17s}" for c in columns))
    for name, r in rows.items():
        print(f"  {name:36s} " + " ".join(f"{r[c]:8.3f} ± {r[c + '_se']:6.3f}" for c in columns))
    print("Published, on the standard IHDP-100 draws (different draws: compare as averages):")
    for name, r in PUBLISHED.items():
        print(f"  {name:36s} " + " ".join(f"{r[c]:17.2f}" if c in r else f"{'':17s}" for c in columns))
    metrics = runs.read_metrics(run)
    metrics["bench"] = json.loads(json.dumps({"realisations": realisations, "models": rows, "published": PUBLISHED},
                                             default=lambda v: float(np.asarray(v))))
    runs.write_metrics(run, metrics)
    print(json.dumps(metrics["bench"]))
