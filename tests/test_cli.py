"""CLI end to end on one tiny run: train, evaluate, predict, export, and every user error."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
from PIL import Image

from apps.vision.data import load_fashion_mnist
from tests.conftest import BIN, error_line, run_command, run_main


@pytest.fixture(scope="module")
def trained(tiny_runs, tmp_path_factory):
    home, run = tiny_runs("vision", "classify")
    images = tmp_path_factory.mktemp("images")
    _, _, x_test, y_test = load_fashion_mnist()
    paths = []
    for i in range(6):
        path = images / f"test{i}_label{y_test[i]}.png"
        Image.fromarray(x_test[i][..., 0]).save(path)
        paths.append(path)
    return home, run, paths, y_test[:6]


def test_train_writes_the_run_directory(trained):
    home, run, _, _ = trained
    for name in ("model.keras", "config.yaml", "metrics.json", "model_card.md", "history.json", "run.json",
                 "plots/confusion_matrix.png", "plots/sample_predictions.png"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["num_examples"] == 10000
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert np.array(metrics["test"]["confusion_matrix"]).sum() == 10000
    assert set(metrics["test"]["per_class"]) == {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                                                 "Shirt", "Sneaker", "Bag", "Ankle boot"}
    logs = home / "tensorboard_logs" / "vision" / "classify" / "tiny"
    assert any((logs / "train").iterdir()) and any((logs / "validation").iterdir())
    assert any((logs / "evaluation").iterdir())


def test_tensorboard_events_hold_scalars_and_images(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    home = trained[0]
    logs = home / "tensorboard_logs" / "vision" / "classify" / "tiny"
    train = EventAccumulator(str(logs / "train"), size_guidance={"tensors": 0}).Reload()
    tags = train.Tags()["tensors"]
    assert {"epoch_loss", "epoch_accuracy", "epoch_learning_rate"} <= set(tags)
    assert [e.step for e in train.Tensors("epoch_loss")] == [1, 2]
    val = EventAccumulator(str(logs / "validation"), size_guidance={"tensors": 0}).Reload()
    assert {"epoch_loss", "epoch_accuracy"} <= set(val.Tags()["tensors"])
    evaluation = EventAccumulator(str(logs / "evaluation"), size_guidance={"tensors": 0}).Reload()
    assert {"confusion_matrix", "sample_predictions"} <= set(evaluation.Tags()["tensors"])


def test_evaluate_reproduces_test_accuracy(trained):
    home, run, _, _ = trained
    before = json.loads((run / "metrics.json").read_text())["test"]["accuracy"]
    result = run_main(["dl-vision", "evaluate", run], home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["accuracy"] == pytest.approx(before, abs=1e-6)


def test_predict_json_matches_the_model(trained):
    home, run, paths, labels = trained
    result = run_main(["dl-vision", "predict", run, *paths, "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(l) for l in result.stdout.strip().splitlines()]
    assert [r["input"] for r in rows] == [str(p) for p in paths]
    import keras

    from shared import architectures

    architectures.names()  # registers the builder classes with Keras
    model = keras.saving.load_model(run / "model.keras", compile=False)
    images = np.stack([np.asarray(Image.open(p))[..., None] for p in paths])
    probs = (np.asarray(model(images)) + np.asarray(model(images[:, :, ::-1]))) / 2  # flip averaging (--augment flip)
    assert [r["index"] for r in rows] == probs.argmax(-1).tolist()
    for r, p in zip(rows, probs):
        assert r["confidence"] == pytest.approx(float(p.max()), abs=1e-5)
        assert len(r["top"]) == 3


def test_predict_out_writes_rendered_pngs(trained, tmp_path):
    home, run, paths, _ = trained
    out = tmp_path / "rendered"
    result = run_main(["dl-vision", "predict", run, *paths[:2], "--json", "--out", out], home)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(l) for l in result.stdout.strip().splitlines()]
    for path, row in zip(paths, rows):
        png = out / f"{path.stem}.png"
        assert row["rendered"] == str(png)
        picture = Image.open(png)
        assert picture.format == "PNG" and picture.size[0] >= 224


@pytest.mark.parametrize("fmt, quantize, artifact", [
    ("savedmodel", "none", "saved_model"),
    ("tflite", "int8", "model_int8.tflite"),
])
def test_export_is_verified_and_recorded(trained, fmt, quantize, artifact):
    home, run, _, _ = trained
    result = run_main(["dl-vision", "export", run, "--format", fmt, "--quantize", quantize], home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (run / artifact).exists()
    exports = json.loads((run / "metrics.json").read_text())["exports"]
    key = "savedmodel" if fmt == "savedmodel" else f"tflite_{quantize}"
    assert exports[key]["passed"] is True
    assert exports[key]["top1_agreement"] >= 0.95
    assert key in (run / "model_card.md").read_text()


def test_tasks_and_apps_listings(trained):
    home = trained[0]
    result = run_main(["dl-vision", "tasks"], home)
    assert result.returncode == 0 and result.stdout.startswith("classify")
    assert "dl-vision: classify" in run_main(["dlsuite", "apps"], home).stdout


def test_architectures_listing_has_parameter_counts(trained):
    result = run_main(["dlsuite", "architectures"], trained[0])
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {line.split()[0]: line.split()[2] for line in result.stdout.splitlines() if line.strip()}
    assert rows["resnet50"] == "25,636,712" and rows["simple_cnn"] == "34,826" and rows["cnn_bn"] == "50,474"
    assert "error" not in rows.values()


def test_train_help_lists_every_config_field(trained):
    result = run_main(["dl-vision", "train", "classify", "--help"], trained[0])
    assert result.returncode == 0
    for flag in ("--batch-size", "--distribution", "--precision", "--jit-compile", "--augment", "--data-dir"):
        assert flag in result.stdout


def _corrupt_image(tmp_path):
    path = tmp_path / "corrupt.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    return path


@pytest.mark.parametrize("case", [
    "missing_image", "corrupt_image", "unknown_task", "bad_flag_value", "unknown_flag", "empty_data_dir",
    "run_without_model", "not_a_run", "missing_config_file", "bad_quantize",
])
def test_user_errors_are_one_line(trained, tmp_path, case):
    home, run, paths, _ = trained
    empty_run = tmp_path / "empty_run"
    empty_run.mkdir()
    (empty_run / "run.json").write_text(json.dumps({"app": "vision", "task": "classify", "run_id": "x"}))
    (empty_run / "config.yaml").write_text((run / "config.yaml").read_text())
    (tmp_path / "empty_data").mkdir()
    args, expected = {
        "missing_image": (["predict", run, tmp_path / "nope.png"], "nope.png: no such file"),
        "corrupt_image": (["predict", run, paths[0], _corrupt_image(tmp_path)], "corrupt.png: not a readable image"),
        "unknown_task": (["train", "segment-everything"], "unknown vision task 'segment-everything'"),
        "bad_flag_value": (["train", "classify", "--tiny", "--batch-size", "big"], "--batch-size: expected int; got 'big'"),
        "unknown_flag": (["train", "classify", "--tiny", "--colour", "red"], "unrecognized arguments: --colour"),
        "empty_data_dir": (["train", "classify", "--tiny", "--data", f"folder:{tmp_path / 'empty_data'}"],
                           "expected one subfolder of images per class"),
        "run_without_model": (["predict", empty_run, paths[0]], "no trained model (model.keras)"),
        "not_a_run": (["evaluate", tmp_path], "not a dlsuite run directory"),
        "missing_config_file": (["train", "classify", "--config", tmp_path / "none.yaml"], "none.yaml: no such file"),
        "bad_quantize": (["export", run, "--format", "tflite", "--quantize", "int4"], "invalid choice: 'int4'"),
    }[case]
    line = error_line(run_main(["dl-vision", *args], home))
    assert line.startswith("dl-vision: error: ") and expected in line, line


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_tensorboard_server_lists_the_run(trained):
    home = trained[0]
    port = _free_port()
    env = {**os.environ, "DLSUITE_HOME": str(home)}
    proc = subprocess.Popen([os.path.join(BIN, "dlsuite"), "tensorboard", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        runs, deadline = None, time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/data/runs", timeout=5) as r:
                    runs = json.loads(r.read())
                if any("tiny" in name for name in runs):
                    break
            except OSError:
                pass
            time.sleep(1)
        assert runs is not None and "vision/classify/tiny/train" in runs, runs
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_terminal_shows_only_our_output(tmp_path):
    """TensorFlow's C++ start-up lines go to the native log, not the terminal; --verbose keeps them."""
    log = tmp_path / "tf.log"
    quiet = run_command(["dl-vision", "tasks"], tmp_path, env={"DLSUITE_NATIVE_LOG": str(log)})
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    assert quiet.stdout.startswith("classify")
    assert log.is_file()
    verbose = run_command(["dl-vision", "tasks", "--verbose"], tmp_path, env={"DLSUITE_NATIVE_LOG": str(log)})
    assert verbose.returncode == 0 and verbose.stdout == quiet.stdout


@pytest.mark.parametrize("flags, expected", [
    (["--model", "no_such_net"], "unknown architecture"),
    (["--batch-size", "100000"], "--batch-size 100000: larger than"),
])
def test_failed_start_leaves_no_run(tmp_path, flags, expected):
    """A user error found while starting leaves no run directory that a later command would resume."""
    args = ["dl-vision", "train", "classify", "--tiny", *flags]
    for _ in range(2):  # the same command again fails the same way, not by resuming a half-made run
        line = error_line(run_main(args, tmp_path))
        assert expected in line, line
        assert not list((tmp_path / "saved_models").glob("vision/classify/*"))
        assert not list((tmp_path / "tensorboard_logs").glob("vision/classify/*"))


@pytest.mark.parametrize("app, args, expected", [
    ("vision", ["train", "classify", "--epochs", "many"], "--epochs: expected int; got 'many'"),
    ("nlp", ["train", "generate", "--colour", "red"], "unrecognized arguments: --colour"),
    ("speech", ["train", "asr", "--hours", "0"], "--hours: expected a positive number"),
    ("health", ["train", "risk", "--hidden", "64,x"], "--hidden: expected a comma list"),
    ("drive", ["train", "lanes", "--precision", "fp8"], "--precision: expected one of"),
    ("vision", ["train", "segment-everything"], "unknown vision task"),
])
def test_flag_errors_cost_no_tensorflow_start_up(tmp_path, app, args, expected):
    """A training's flags are parsed and checked by the app's configs alone: the one-line error
    comes from a process that never imports TensorFlow, well within a second or two."""
    script = (f"import sys; from shared.cli import app_main; from apps import APPS; "
              f"code = app_main({app!r}, APPS[{app!r}], {[str(a) for a in args]!r}); "
              "sys.exit(10 + code if 'tensorflow' in sys.modules or 'keras' in sys.modules else code)")
    t0 = time.monotonic()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "DLSUITE_HOME": str(tmp_path)})
    seconds = time.monotonic() - t0
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])  # 12: TensorFlow was imported
    line = error_line(result)
    assert line.startswith(f"dl-{app}: error: ") and expected in line, line
    assert seconds < 3.0, seconds
