"""dl-health risk: schema inference, the in-graph encoder, leakage, calibration, errors, and a
trained tiny run's exports (NaN and unseen categories), predictions, explanations and peers."""

import argparse
import json

import numpy as np
import pandas as pd
import pytest

from apps.healthcare.records import SUPPORT_LEAKAGE, support
from apps.healthcare.configs import RiskConfig
from shared.data.tabular import fit_columns, infer_schema, input_name, records
from shared.errors import UserError
from tests.conftest import error_line, run_main


def _cfg(**overrides):
    cfg = RiskConfig.tiny()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg.validate()


def test_schema_inference_and_encoder_handle_missing_and_unseen_values():
    from shared.architectures.tabular import encoder_model

    frame = pd.DataFrame({"age": [50, np.nan, 70, 60], "sex": ["f", "m", None, "f"], "code": ["1", "2", "x", "2"],
                          "y": [0, 1, 1, 0]})
    columns = infer_schema(frame.drop(columns=["y"]), "y")
    assert [(c.name, c.kind) for c in columns] == [("age", "numeric"), ("sex", "categorical"), ("code", "categorical")]
    fit_columns(frame, columns)
    age, sex = columns[0], columns[1]
    assert age.missing and age.fill == 60 and abs(age.mean - 60) < 1e-9
    assert sex.vocabulary == ["f", "", "m"]  # most frequent first; "" = missing is a category seen in training
    encoder = encoder_model(columns)
    unseen = pd.DataFrame({"age": [np.nan, 80.0], "sex": ["other", "m"], "code": ["zzz", "1"]})
    features = np.asarray(encoder(records(unseen, columns)))
    layer = encoder.layers[-1]
    assert features.shape == (2, len(layer.feature_names())) and np.isfinite(features).all()
    names = layer.feature_names()
    row = dict(zip(names, features[0]))
    assert row["age"] == 0.0 and row["age (missing)"] == 1.0  # median-imputed (= mean here), flagged
    assert row["sex=(other)"] == 1.0 and row["code=(other)"] == 1.0
    assert dict(zip(names, features[1]))["sex=m"] == 1.0
    assert input_name("num.co") == "num_co" and input_name("mean radius") == "mean_radius" and input_name("1x") == "c_1x"


def test_declared_numeric_column_with_text_is_one_clear_error():
    frame = pd.DataFrame({"a": ["1", "two", "3"], "y": [0, 1, 0]})
    with pytest.raises(UserError, match="column 'a' is declared numeric but has non-numeric values .*'two'.*row 3"):
        infer_schema(frame, "y", numeric=["a"])


def test_support_leaves_out_every_column_recorded_after_the_outcome():
    from apps.healthcare.risk import build_risk_data

    data = build_risk_data(_cfg())
    inputs = {x.name for x in data.info.preprocess.inputs}
    assert inputs and not inputs & {input_name(c) for c in SUPPORT_LEAKAGE}
    assert "hospdead" not in inputs and {"age", "num_co", "dzgroup", "meanbp"} <= inputs
    assert data.info.num_train + data.info.num_val + data.info.num_test == len(support().frame) == 9105
    x, y = next(iter(data.test.batch(4000)))
    assert 0.2 < float(np.mean(y)) < 0.32  # in-hospital death, stratified split
    assert set(SUPPORT_LEAKAGE) <= set(data.info.extra["provenance"]["left out"].replace("`", " ").split())


@pytest.mark.parametrize("content, flags, expected", [
    ("a,b\n1,2\n3,4\n", ["--target", "y"], "--target y: no such column in .*; columns are a, b"),
    ("a,y\n" + "".join(f"{i},1\n" for i in range(30)), ["--target", "y"], "target is constant"),
    ("a,y\n" + "".join(f"{i},{i}\n" for i in range(30)), ["--target", "y"], "expected two classes .*--task regression"),
    ("", ["--target", "y"], "the file is empty"),
    ("a,y\n" + "".join(f"{'x' if i == 7 else i},{i % 2}\n" for i in range(30)), ["--target", "y", "--numeric", "a"],
     "column 'a' is declared numeric but has non-numeric values \\(e.g. 'x' in row 9\\)"),
])
def test_csv_mistakes_are_named(tmp_path, content, flags, expected):
    from apps.healthcare.risk import build_risk_data

    path = tmp_path / "records.csv"
    path.write_text(content)
    options = dict(zip([f[2:] for f in flags[::2]], flags[1::2]))
    with pytest.raises(UserError, match=expected):
        build_risk_data(_cfg(data=f"csv:{path}", **options))


def test_temperature_scaling_lowers_validation_ece():
    """Over-confident logits (a logistic regression's ×3, as an over-fitted network gives) on
    real records (Framingham CVD): the fitted temperature (> 1) brings the validation ECE down."""
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from apps.healthcare.records import framingham
    from shared.evaluation.calibration import expected_calibration_error, fit_temperature, sigmoid

    table = framingham("CVD")
    x, y = table.frame.drop(columns=["CVD"]).to_numpy(float), table.frame["CVD"].to_numpy()
    model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=1000)).fit(x[::2], y[::2])
    logits = 3 * model.decision_function(x[1::2])
    temperature = fit_temperature(logits, y[1::2])
    before, after = (expected_calibration_error(y[1::2], sigmoid(logits / t)) for t in (1.0, temperature))
    assert temperature > 2 and after < 0.5 * before, (temperature, before, after)


@pytest.fixture(scope="module")
def risk_run(tiny_runs):
    return tiny_runs("health", "risk")


def _records(n=3):
    frame = support().frame.drop(columns=["hospdead"]).head(n).copy()
    frame.loc[0, "race"] = "martian"  # a category never seen in training
    frame.loc[1, ["age", "meanbp"]] = np.nan
    return frame


def test_tiny_risk_run_learns_and_is_calibrated(risk_run):
    _, run = risk_run
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["roc_auc"] > 0.75 and test["pr_auc"] > test["prevalence"] + 0.2  # chance: 0.5 / prevalence
    assert test["ece"] < 0.1 and 0 < test["brier"] < test["prevalence"] * (1 - test["prevalence"])
    assert 0 < metrics["calibration"]["temperature"] and 0 < test["threshold"] < 1
    assert test["error_surest_half"] < test["error_other_half"]  # the uncertainty is informative
    assert {p.name for p in (run / "plots").iterdir()} >= {"reliability.png", "roc.png"}
    card = (run / "model_card.md").read_text()
    assert "not validated for diagnosis" in card and "CC BY 4.0" in card and "`slos`" in card


def test_savedmodel_takes_a_column_per_input_nan_and_unseen_categories(risk_run):
    import tensorflow as tf

    _, run = risk_run
    signature = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    assert "num_co" in inputs and inputs["race"].dtype == tf.string and inputs["age"].dtype == tf.float32
    encoder_columns = {k: v for k, v in inputs.items()}
    frame = _records()
    feed = {}
    for name, spec in encoder_columns.items():
        column = next(c for c in frame.columns if input_name(c) == name)
        values = frame[column]
        feed[name] = (tf.constant(values.astype("float32").to_numpy()) if spec.dtype == tf.float32 else
                      tf.constant(["" if pd.isna(v) else str(v) for v in values]))
    out = signature(**feed)
    assert set(out) == {"probability", "uncertainty"}
    p, u = out["probability"].numpy(), out["uncertainty"].numpy()
    assert p.shape == u.shape == (3,) and p.dtype == np.float32
    assert np.isfinite(p).all() and ((0 < p) & (p < 1)).all() and (u > 0).all()


def test_predict_and_explain_records_from_csv(risk_run, tmp_path, capsys):
    from shared.training.runs import load_run
    from apps.healthcare.tasks import TASKS
    from apps.healthcare.risk import explain_risk
    from shared.training.runs import load_model

    home, run = risk_run
    path = tmp_path / "patients.csv"
    _records().to_csv(path, index=False)
    result = run_main(["dl-health", "predict", run, path, "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["input"] for r in rows] == [f"{path}:{i}" for i in (2, 3, 4)]
    assert all(0 < r["probability"] < 1 and r["uncertainty"] > 0 and isinstance(r["flagged"], bool) for r in rows)

    run_dir, task, cfg, info = load_run("health", TASKS, str(run))
    args = argparse.Namespace(inputs=[str(path)], method=None, layer=None, json=True)
    explain_risk(run_dir, load_model(run_dir), info, args)
    explained = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(explained) == 3
    for row, predicted in zip(explained, rows):
        assert abs(row["probability"] - predicted["probability"]) < 1e-5
        assert abs(row["completeness_gap"]) < 0.01  # attributions add up to p(x) - p(baseline)
        assert set(row["attributions"]) == set(row["values"])
    assert explained[0]["values"]["race"] == "martian" and explained[1]["values"]["age"] == "(missing)"


def test_bench_reports_the_run_beside_both_sklearn_peers(risk_run):
    home, run = risk_run
    result = run_main(["dl-health", "bench", run], home)
    assert result.returncode == 0, result.stderr[-2000:]
    bench = json.loads(result.stdout.splitlines()[-1])
    assert len(bench["models"]) == 3 and bench["test_records"] == 1821
    assert all(m["roc_auc"] > 0.75 for m in bench["models"].values())


def test_bad_csv_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b\n1,2\n")
    result = run_main(["dl-health", "train", "risk", "--tiny", "--data", f"csv:{path}", "--target", "y"], tmp_path)
    assert result.returncode == 2 and "--target y: no such column" in error_line(result)
    assert not (tmp_path / "saved_models").exists()
