"""Every registered task of every app runs its tiny() config end to end (timm-style)."""

import importlib
import json

import pytest

from shared.cli import APPS
from tests.conftest import run_command

ALL_TASKS = [(app, name) for app, module in APPS.items() for name in importlib.import_module(module).TASKS.names()]


@pytest.mark.parametrize("app, task", ALL_TASKS)
def test_task_tiny_end_to_end(tmp_path, app, task):
    result = run_command([f"dl-{app}", "train", task, "--tiny", "--run-name", "tiny", "--quiet",
                          "--export", "savedmodel,tflite"], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "saved_models" / app / task / "tiny"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"] and metrics["epochs_run"] >= 1
    assert all(r["passed"] for r in metrics["exports"].values()), metrics["exports"]
    assert (run / "saved_model" / "saved_model.pb").is_file() and (run / "model.tflite").is_file()
