"""`dlsuite bench` runs both sides and reports consistent figures (small sizes; no timing limits)."""

import pytest

from apps.convnet_bench import bench
from tests.conftest import error_line, run_main


def test_bench_reports_both_sides_and_exports(capsys):
    result = bench(epochs=2, examples=1024, batch_size=64, rounds=1)
    assert result["plain_keras_examples_per_second"] > 0 and result["suite_examples_per_second"] > 0
    assert result["ratio_suite_over_plain"] == pytest.approx(
        result["suite_examples_per_second"] / result["plain_keras_examples_per_second"])
    assert 0.0 <= result["input_wait_share"] < 1.0
    assert result["tflite_int8_bytes"] < 0.5 * result["savedmodel_bytes"]
    assert result["int8_top1_agreement"] >= 0.95
    assert 0.0 <= result["text_input_wait_share"] < 1.0 and result["text_examples_per_second"] > 0
    out = capsys.readouterr().out
    assert "plain Keras model.fit" in out and "Text pipeline" in out


@pytest.mark.slow
def test_task_bench_measures_both_sides_in_fresh_processes(tmp_path):
    """`dlsuite bench --task`: a table row per task with both sides' examples/s, their ratio
    and the engine's input-wait share, each side measured in its own process."""
    result = run_main(["dlsuite", "bench", "--task", "vision:classify", "--tiny", "--steps", "4", "--rounds", "1"],
                      tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    header, row = result.stdout.strip().splitlines()[-2:]
    assert "plain Keras ex/s" in header and "input wait" in header
    name, batch, precision, keras_speed, engine_speed, ratio, wait, alone = row.split()
    assert (name, batch, precision) == ("vision:classify", "32", "float32")
    assert float(keras_speed) > 0 and float(engine_speed) > 0
    assert float(ratio) == pytest.approx(float(engine_speed) / float(keras_speed), abs=0.01)
    assert 0.0 <= float(wait.rstrip("%")) < 100.0 and float(alone) > 0


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["vision:detect", "nlp:translate", "vision:synthesize"])
def test_the_plain_keras_side_trains_every_shape_of_task(spec):
    """Dict targets (boxes), token sequences under bucketing, a model with its own step: the
    plain `model.fit` side trains each of them with the task's own loss."""
    import keras

    from apps.benchmark import _config, parse_task
    from shared.training.throughput import measure

    app, name, mode = parse_task(spec)
    task, cfg = _config(app, name, mode, True, {})
    result = measure(app, name, task, cfg, "keras", steps=2)
    keras.mixed_precision.set_global_policy("float32")
    assert result["examples_per_second"] > 0 and result["steps"] == 2 and result["batch_size"] == cfg.batch_size


@pytest.mark.parametrize("args, expected", [
    (["--task", "vision"], "--task vision: expected APP:TASK"),
    (["--task", "vision:classify", "--set", "epochs"], "--set epochs: expected FIELD=VALUE"),
    (["--task", "vision:classify", "--threads", "two"], "--threads two: expected INTRA,INTER"),
])
def test_task_bench_flag_errors_are_one_line(tmp_path, args, expected):
    line = error_line(run_main(["dlsuite", "bench", *args], tmp_path))
    assert line.startswith("dlsuite: error: ") and expected in line, line
