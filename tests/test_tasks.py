"""Every registered task of every app runs its tiny() config end to end (timm-style).

The one parametrized test lives here (`tiny_end_to_end`); each app's
`tests/apps/<app>/test_end_to_end.py` runs it over that app's tasks, so pytest-xdist can
spread the apps' runs over its workers instead of queueing them all in one file. The runs
come from the session fixture `tiny_runs` (tests/conftest.py), which the apps' own tests
reuse."""

import importlib
import json
import pathlib

import pytest

from apps import APPS


def app_tasks(app):
    """Every registered task, and `task:mode` for each further mode of a task of several."""
    tasks = importlib.import_module(f"{APPS[app]}.tasks").TASKS
    return [name + suffix for name in tasks.names() for suffix in ["", *(f":{m}" for m in tasks.get(name)().modes)]]


def tiny_end_to_end(tiny_runs, app, task):
    _, run = tiny_runs(app, task)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"] and metrics["epochs_run"] >= 1
    assert all(r["passed"] for r in metrics["exports"].values()), metrics["exports"]
    assert (run / "saved_model" / "saved_model.pb").is_file() and (run / "model.tflite").is_file()


@pytest.mark.parametrize("app", list(APPS))
def test_every_app_runs_every_task_end_to_end(app):
    package = APPS[app].split(".")[1]  # apps.<package>
    path = pathlib.Path(__file__).parent / "apps" / package / "test_end_to_end.py"
    assert path.is_file(), f"{path} is missing"
    assert f'tiny_end_to_end(tiny_runs, "{app}", task)' in path.read_text()
    assert f'@pytest.mark.parametrize("task", app_tasks("{app}"))' in path.read_text()


@pytest.mark.parametrize("app", list(APPS))
def test_every_task_takes_its_config_from_the_apps_configs_module(app):
    """`dl-<app> train` parses flags with `configs.CONFIGS` before importing the tasks."""
    configs = importlib.import_module(f"{APPS[app]}.configs").CONFIGS
    tasks = importlib.import_module(f"{APPS[app]}.tasks").TASKS
    assert sorted(configs) == tasks.names()
    for name in tasks.names():
        assert tasks.get(name)().config is configs[name], name
