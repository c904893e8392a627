"""Run directories: `saved_models/<app>/<task>/<run_id>/` and `tensorboard_logs/<app>/<task>/<run_id>/`.

The roots live under `$DLSUITE_HOME` (default: the current directory).
"""

import json
import os
import secrets
import time
from dataclasses import dataclass

import yaml

from shared.errors import UserError
from shared.export.atomic import atomic_write_json, atomic_write_text


def home():
    return os.path.abspath(os.environ.get("DLSUITE_HOME", "."))


@dataclass(frozen=True)
class RunDir:
    app: str
    task: str
    run_id: str

    @property
    def path(self):
        return os.path.join(home(), "saved_models", self.app, self.task, self.run_id)

    @property
    def logs(self):
        return os.path.join(home(), "tensorboard_logs", self.app, self.task, self.run_id)

    def file(self, *parts):
        return os.path.join(self.path, *parts)

    # --- state -------------------------------------------------------------
    def read_info(self):
        try:
            with open(self.file("run.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def write_info(self, **updates):
        info = {**self.read_info(), "app": self.app, "task": self.task, "run_id": self.run_id, **updates}
        atomic_write_json(self.file("run.json"), info)
        return info

    def read_config(self):
        try:
            with open(self.file("config.yaml")) as f:
                return yaml.safe_load(f) or {}
        except FileNotFoundError:
            return None

    def write_config(self, text):
        atomic_write_text(self.file("config.yaml"), text)

    def read_history(self):
        try:
            with open(self.file("history.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return []

    def write_history(self, history):
        atomic_write_json(self.file("history.json"), history)


def new_run_id():
    """A readable id that never collides: timestamp plus random suffix."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)


def runs(app, task):
    root = os.path.join(home(), "saved_models", app, task)
    if not os.path.isdir(root):
        return []
    return [RunDir(app, task, name) for name in sorted(os.listdir(root))
            if os.path.isfile(os.path.join(root, name, "run.json"))]


def unfinished_run_with_config(app, task, config_dict):
    """The newest run of this task that did not finish and was started with the same config."""
    for run in reversed(runs(app, task)):
        if run.read_info().get("status") == "running" and run.read_config() == config_dict:
            return run
    return None


def open_run(path):
    """A RunDir from a user-given path; UserError when it is not a dlsuite run."""
    path = os.path.abspath(path)
    info_file = os.path.join(path, "run.json")
    if not os.path.isdir(path):
        raise UserError(f"{path}: no such run directory")
    if not os.path.isfile(info_file):
        raise UserError(f"{path}: not a dlsuite run directory (no run.json)")
    with open(info_file) as f:
        info = json.load(f)
    run = RunDir(info["app"], info["task"], info["run_id"])
    if os.path.abspath(run.path) != path:  # moved or copied: keep using the given location
        run = _RelocatedRun(info["app"], info["task"], info["run_id"], path)
    return run


@dataclass(frozen=True)
class _RelocatedRun(RunDir):
    where: str = ""

    @property
    def path(self):
        return self.where
