"""`--precision auto` on a CPU with bfloat16 instructions: measured once per machine and model
family, cached in the data cache, overridden by a task that keeps float32."""

import dataclasses
import json

import keras
import pytest
import tensorflow as tf

from shared.tasks import load_data
from shared.training.engine import choose_precision
from shared.training.precision import MEASURE, SPEEDUP_NEEDED, machine_key, measured_precision

pytestmark = pytest.mark.slow  # each test builds and trains the tiny classifier


@pytest.fixture
def classify(tmp_path, monkeypatch):
    from apps.vision.configs import ClassifyConfig
    from apps.vision.tasks import TASKS

    monkeypatch.setenv("DLSUITE_DATA_CACHE", str(tmp_path / "cache"))
    cfg = dataclasses.replace(ClassifyConfig.tiny(), precision="auto")
    task = TASKS.get("classify")()
    yield task, cfg, load_data(task, cfg)
    keras.mixed_precision.set_global_policy("float32")


def test_the_measurement_is_cached_per_machine_and_family(classify, tmp_path):
    task, cfg, data = classify
    strategy = tf.distribute.get_strategy()
    policy, record = measured_precision(task, cfg, data, strategy, "vision:classify:simple_cnn")
    assert record["cached"] is False and record["float32_step_ms"] > 0 and record["bfloat16_step_ms"] > 0
    assert policy == ("mixed_bfloat16" if record["bfloat16_speedup"] >= SPEEDUP_NEEDED else "float32")
    assert measured_precision(task, cfg, data, strategy, "vision:classify:simple_cnn") == (
        policy, {**record, "cached": True})
    stored = json.loads((tmp_path / "cache" / "precision.json").read_text())
    assert stored[f"{machine_key()}|vision:classify:simple_cnn"]["policy"] == policy


def test_a_task_that_loses_accuracy_in_bfloat16_keeps_float32(classify):
    task, cfg, data = classify
    task = dataclasses.replace(task, float32_reason="accuracy 0.80 vs 0.85 in bfloat16 at equal steps")
    policy, record = choose_precision("vision", "classify", task, cfg, data, tf.distribute.get_strategy(), None,
                                      MEASURE, False)
    assert policy == "float32" == keras.mixed_precision.global_policy().name
    assert record == {"policy": "float32", "reason": task.float32_reason}


def test_the_measurement_leaves_the_model_initialisation_unchanged(classify):
    """The real model's first weights do not depend on whether a measurement ran before it."""
    task, cfg, data = classify
    keras.utils.set_random_seed(cfg.seed)
    plain = task.model(cfg, data.info).get_weights()
    keras.utils.set_random_seed(cfg.seed)
    choose_precision("vision", "classify", task, cfg, data, tf.distribute.get_strategy(), None, MEASURE, False)
    keras.mixed_precision.set_global_policy("float32")
    after = task.model(cfg, data.info).get_weights()
    assert all((a == b).all() for a, b in zip(plain, after))
