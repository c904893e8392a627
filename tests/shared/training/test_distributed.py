"""The same tiny training under every local strategy, resume after a kill, divergence stop."""

import json
import math
import os
import re
import signal
import subprocess
import time

import pytest

from tests.conftest import BIN, error_line, run_command

TINY = ["dl-vision", "train", "classify", "--tiny", "--epochs", "3"]


def _history(home, run_name):
    with open(home / "saved_models" / "vision" / "classify" / run_name / "history.json") as f:
        return json.load(f)


def _assert_learns(history):
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[-1]["loss"] < history[0]["loss"] < math.log(10) + 0.2
    assert history[-1]["val_accuracy"] > 0.3  # 10 classes: chance is 0.1


@pytest.mark.parametrize("distribution, replicas", [("one_device", 1), ("mirrored", 2)])
def test_single_process_strategies_train(home, distribution, replicas):
    result = run_command([*TINY, "--distribution", distribution, "--run-name", distribution], home)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{replicas} replica(s)" in result.stdout
    _assert_learns(_history(home, distribution))
    info = json.loads((home / "saved_models" / "vision" / "classify" / distribution / "run.json").read_text())
    assert info["status"] == "complete" and info["replicas"] == replicas
    if distribution == "one_device":  # the same command again is refused, not a silent retrain
        line = error_line(run_command([*TINY, "--distribution", distribution, "--run-name", distribution], home))
        assert "already ended (complete)" in line


def test_multi_worker_two_processes_identical_weights(home):
    result = run_command(["dlsuite", "launch", "--workers", "2", "--run-name", "mw", "--",
                          os.path.join(BIN, "dl-vision"), *TINY[1:], "--distribution", "multi_worker"], home)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    prints = dict(re.findall(r"\[worker (\d)\] Final weights fingerprint: (\w+)", result.stdout))
    assert set(prints) == {"0", "1"} and prints["0"] == prints["1"], result.stdout[-2000:]
    assert "CollectiveAllReduceStrategy, 2 replica(s)" in result.stdout
    _assert_learns(_history(home, "mw"))


def test_multi_worker_without_tf_config_is_a_user_error(home):
    line = error_line(run_command([*TINY, "--distribution", "multi_worker", "--run-name", "x"], home))
    assert "TF_CONFIG is not set" in line


def test_tpu_without_tpu_is_a_user_error(home):
    line = error_line(run_command([*TINY, "--distribution", "tpu"], home))
    assert line.startswith("dl-vision: error: --distribution tpu: no TPU found")


def test_resume_after_kill_continues_history(home):
    cmd = [os.path.join(BIN, "dl-vision"), *TINY[1:], "--epochs", "6", "--run-name", "resumable"]
    env = {**os.environ, "DLSUITE_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    history = home / "saved_models" / "vision" / "classify" / "resumable" / "history.json"
    deadline = time.monotonic() + 300
    while not history.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(json.loads(history.read_text()))
    assert 1 <= done < 6, "the kill came too late to test resuming"
    first = json.loads(history.read_text())

    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"after epoch {done}/6" in result.stdout
    epochs_run = [int(m) for m in re.findall(r"^Epoch (\d+)/6", result.stdout, re.M)]
    assert epochs_run == list(range(done + 1, 7))  # only the remaining epochs
    final = _history(home, "resumable")
    assert [r["epoch"] for r in final] == [1, 2, 3, 4, 5, 6]
    assert final[:done] == first[:done]  # the killed run's epochs kept as they were


def test_divergence_stops_with_a_clear_message(home):
    result = run_command([*TINY, "--optimizer", "sgd", "--learning-rate", "1e12", "--lr-schedule", "constant",
                          "--run-name", "boom"], home)
    line = error_line(result)
    assert "training diverged: loss became nan" in line.lower() or "loss became inf" in line.lower(), line
    info = json.loads((home / "saved_models" / "vision" / "classify" / "boom" / "run.json").read_text())
    assert info["status"] == "diverged"


@pytest.mark.parametrize("flags", [  # independent options share a run (each run is ~20 s of start-up)
    ["--precision", "mixed_bfloat16", "--optimizer", "rmsprop", "--lr-schedule", "exponential",
     "--augment", "flip,translate,rotate"],
    ["--jit-compile", "true", "--optimizer", "adamw", "--weight-decay", "0.01"],  # resnet_small here cost 70 s
])
def test_engine_options_train(home, flags):
    result = run_command([*TINY, "--epochs", "2", "--run-name", "opts", *flags], home)
    assert result.returncode == 0, result.stderr[-3000:]
    history = _history(home, "opts")
    assert len(history) == 2 and all(math.isfinite(r["loss"]) for r in history)
    assert history[-1]["loss"] < history[0]["loss"]
    import yaml

    saved = yaml.safe_load((home / "saved_models" / "vision" / "classify" / "opts" / "config.yaml").read_text())
    assert {("--" + k.replace("_", "-")): str(v).lower() for k, v in saved.items()}.items() >= \
        {flags[i]: flags[i + 1].lower() for i in range(0, len(flags), 2)}.items()
