"""dl-health treatment: IHDP realisations and splits, the IPM penalties, recovery of a known
constant effect (CSV path: training, AIPW summary, SavedModel, recommend), and the bench."""

import json

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from apps.healthcare.configs import TreatmentConfig
from apps.healthcare.treatment import IHDP_COVARIATES, _ipm, build_treatment_data, realisation_splits, targeted_effect
from shared.data.tabular import input_name
from tests.conftest import error_line, run_main


def test_ihdp_realisations_have_their_own_splits_and_known_effects():
    cfg = TreatmentConfig.tiny()
    data = build_treatment_data(cfg)
    assert sorted(x.name for x in data.info.preprocess.inputs) == sorted(input_name(c) for c in IHDP_COVARIATES)
    x, y = next(iter(data.test.batch(1000)))
    assert y["y"].shape == (747, 3) and y["tau"].shape == (747, 3) and set(np.unique(y["t"])) == {0.0, 1.0}
    codes = y["split"].numpy()
    assert np.allclose((codes == 2).mean(0), 0.1, atol=0.005) and np.allclose((codes == 1).mean(0), 0.27, atol=0.005)
    assert not np.array_equal(codes[:, 0], codes[:, 1])  # each realisation its own split
    assert np.array_equal(codes, realisation_splits(747, 3))  # and the same one every time
    assert np.array_equal(y["mask"].numpy(), (codes == 2).astype(np.float32))
    assert not np.allclose(y["tau"][:, 0], y["tau"][:, 1])  # different response surfaces


def test_ipm_is_zero_for_matched_groups_and_grows_with_the_shift():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(64, 1, 4)).astype(np.float32)
    t = np.tile([1.0, 0.0], 32).astype(np.float32)
    mask = np.ones((64, 1), np.float32)
    matched = np.concatenate([base[:32], base[:32]])[np.argsort(np.r_[np.arange(0, 64, 2), np.arange(1, 64, 2)])]
    for kind in ("mmd", "wass"):
        same = float(_ipm(tf.constant(matched), tf.constant(t), tf.constant(mask), kind)[0])
        shifted = float(_ipm(tf.constant(matched + 2.0 * t[:, None, None]), tf.constant(t), tf.constant(mask), kind)[0])
        # entropic transport blurs the plan a little: near zero, not zero, for identical groups
        assert same < (1e-6 if kind == "mmd" else 0.1) and shifted > 1.0, (kind, same, shifted)


def _constant_effect_csv(path, n=800, effect=3.0):
    """Confounded records: the treated have larger x1, which also raises the outcome."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, 4))
    t = (rng.random(n) < 1 / (1 + np.exp(-1.5 * x[:, 0]))).astype(int)
    y = 2 * x[:, 0] + x[:, 1] - x[:, 2] + effect * t + rng.normal(scale=0.5, size=n)
    pd.DataFrame({"x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "x4": x[:, 3], "treated": t, "outcome": y}).to_csv(path, index=False)
    return x, t, y


def test_targeted_effect_adds_the_learned_correction_only_where_epsilon_was_learned():
    outputs = {"y0": np.array([[1.0, 2.0]]), "y1": np.array([[3.0, 2.5]]), "propensity": np.array([[0.5, 0.2]]),
               "epsilon": np.zeros((1, 2))}
    assert targeted_effect(outputs) is None  # TARNet / CFR: ε is never trained
    outputs["epsilon"] = np.array([[0.1, -0.2]])
    # Q̃(1) - Q̃(0) = τ + ε/g + ε/(1 - g)
    np.testing.assert_allclose(targeted_effect(outputs), [[2.0 + 0.1 * 4, 0.5 - 0.2 * (5 + 1.25)]])


@pytest.fixture(scope="module")
def effect_run(tmp_path_factory):
    home = tmp_path_factory.mktemp("treatment")
    _constant_effect_csv(home / "trial.csv")
    result = run_main(["dl-health", "train", "treatment", "--data", f"csv:{home / 'trial.csv'}", "--treatment",
                          "treated", "--outcome", "outcome", "--realisations", "3", "--representation", "32,32",
                          "--head", "16", "--epochs", "8", "--passes", "5", "--run-name", "known", "--quiet",
                          "--export", "savedmodel"], home)
    assert result.returncode == 0, result.stderr[-3000:]
    return home, home / "saved_models" / "health" / "treatment" / "known"


def test_a_known_constant_effect_is_recovered(effect_run):
    home, run = effect_run
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert abs(test["ate"] - 3.0) < 0.3 and abs(test["ate_plug_in"] - 3.0) < 0.3  # the naive difference: ~5.3
    assert test["ate_ci_low"] < test["ate"] < test["ate_ci_high"] < test["ate_ci_low"] + 0.5
    assert test["share_recommended"] > 0.95  # everyone benefits
    signature = tf.saved_model.load(str(run / "saved_model")).signatures["serving_default"]
    x = np.random.default_rng(2).normal(size=(50, 4)).astype(np.float32)
    out = signature(**{f"x{k + 1}": tf.constant(x[:, k]) for k in range(4)})
    assert set(out) == {"y0", "y1", "effect", "propensity"} and out["effect"].shape == (50,)
    assert abs(float(np.mean(out["effect"])) - 3.0) < 0.4
    assert np.allclose(out["effect"], out["y1"] - out["y0"], atol=1e-4)
    p = out["propensity"].numpy()
    assert ((0 < p) & (p < 1)).all() and np.corrcoef(p, x[:, 0])[0, 1] > 0.5  # confounding seen by the propensity


def test_recommend_prints_arm_benefit_and_interval(effect_run):
    home, run = effect_run
    patients = home / "patients.csv"
    pd.DataFrame({"x1": [0.0, 1.0], "x2": [0.5, -0.5], "x3": [0.0, 0.0], "x4": [1.0, -1.0]}).to_csv(patients, index=False)
    result = run_main(["dl-health", "recommend", run, patients, "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["recommendation"] for r in rows] == ["treat", "treat"]
    for r in rows:
        low, high = r["interval_95"]
        assert 2.0 < r["expected_benefit"] < 4.0 and low < r["benefit_of_treating"] < high


def test_treatment_column_mistakes_are_one_line(tmp_path):
    path = tmp_path / "trial.csv"
    _constant_effect_csv(path, n=60)
    result = run_main(["dl-health", "train", "treatment", "--tiny", "--data", f"csv:{path}", "--treatment", "x1",
                          "--outcome", "outcome"], tmp_path)
    assert result.returncode == 2 and "--treatment x1: expected 0/1 values" in error_line(result)


def test_bench_compares_with_the_three_peers_on_the_same_realisations(tmp_path):
    result = run_main(["dl-health", "train", "treatment", "--tiny", "--run-name", "ihdp", "--quiet"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "saved_models" / "health" / "treatment" / "ihdp"
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["realisations"] == 3 and test["pehe_out"] > 0 and test["pehe_out_se"] >= 0
    result = run_main(["dl-health", "bench", run, "--realisations", "1"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    bench = json.loads(result.stdout.splitlines()[-1])
    assert bench["realisations"] == 1 and len(bench["models"]) == 4
    peers = [m for name, m in bench["models"].items() if "this run" not in name]
    assert all(0 < m["pehe_out"] < 10 for m in peers)  # IHDP surface B: BART 2.3, good learners < 1.5
