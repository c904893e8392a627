"""`dlsuite bench` runs both sides and reports consistent figures (small sizes; no timing limits)."""

import pytest

from apps.convnet_bench import bench


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
