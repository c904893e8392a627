"""Shared fixtures: run the installed console scripts in a private DLSUITE_HOME."""

import contextlib
import io
import json
import os
import subprocess
import sys
import warnings

import pytest

BIN = os.path.dirname(sys.executable)


def run_command(args, home, timeout=900, env=None, **kwargs):
    """Runs a console script (`dl-vision`, `dlsuite`) with DLSUITE_HOME=home; returns CompletedProcess."""
    full_env = {**os.environ, "DLSUITE_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env.pop("TF_CONFIG", None)
    return subprocess.run([os.path.join(BIN, args[0]), *map(str, args[1:])], capture_output=True, text=True,
                          timeout=timeout, env=full_env, **kwargs)


def run_main(args, home, env=None):
    """`run_command` without a new process, for every command whose test is not about the
    process itself: the console script's `main(argv)` runs here with the same environment,
    its output captured, and returns a CompletedProcess. (A new process costs ~4.5 s of
    TensorFlow import. Real processes stay where the process is the point: TensorFlow's
    start-up lines kept off the terminal, distribution strategies, a missing simulator.)"""
    from importlib.metadata import entry_points

    (script,) = entry_points(group="console_scripts", name=args[0])
    saved, out, err = dict(os.environ), io.StringIO(), io.StringIO()
    os.environ.update({"DLSUITE_HOME": str(home), "DLSUITE_VERBOSE": "1", **(env or {})})  # verbose: fd 2 stays
    os.environ.pop("TF_CONFIG", None)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = script.load()([str(a) for a in args[1:]])
            except SystemExit as e:  # --help
                code = e.code
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


# Plain TensorFlow in a fresh interpreter (no dlsuite, no tensorflow-text): what a user has.
PLAIN_TF = r"""
import json, sys
import tensorflow as tf
fn = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
inputs = {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_input_signature[1].items()}
outputs = {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_outputs.items()}
texts = json.loads(sys.argv[2])
result = {k: v.numpy().tolist() for k, v in fn(text=tf.constant(texts)).items()}
print(json.dumps({"inputs": inputs, "outputs": outputs, "result": result}, default=lambda b: b.decode("utf-8")))
"""


def plain_tf_text(saved_model, texts):
    """A SavedModel's `serving_default(text=…)` run by plain TensorFlow in a fresh interpreter:
    {"inputs", "outputs": {name: [dtype, shape]}, "result": {name: values}}."""
    out = subprocess.run([sys.executable, "-I", "-c", PLAIN_TF, str(saved_model), json.dumps(texts)],
                         capture_output=True, text=True, timeout=300, env={"TF_CPP_MIN_LOG_LEVEL": "3"})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def error_line(result):
    """The one-line error a failed command printed (asserting it is exactly one line)."""
    lines = [l for l in result.stderr.splitlines() if l.strip()]  # TF's start-up lines must not show
    assert result.returncode != 0, result.stdout[-2000:]
    assert len(lines) == 1, "expected one error line, got:\n" + "\n".join(lines[-30:])
    assert "Traceback" not in result.stderr
    return lines[0]


def store_tfds(name, features, splits, data_dir):
    """Writes a small TFDS dataset `name` (splits of example dicts) into `data_dir`."""
    import tensorflow_datasets as tfds

    tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version="1.0.0", features=features, data_dir=str(data_dir),
        split_datasets={split: list(enumerate(examples)) for split, examples in splits.items()})


@pytest.fixture
def home(tmp_path):
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """`tiny_runs(app, task)` -> (home, run directory) of `dl-<app> train <task> --tiny` with
    SavedModel and TFLite exports (run in this process, `run_main`; `task:mode` adds `--mode
    mode`): trained once per test worker, shared by the end-to-end test and the app's own
    tests (`SAME_WORKER` keeps those files on one worker)."""
    runs = {}

    def get(app, task):
        if (app, task) not in runs:
            name, _, mode = task.partition(":")
            home = tmp_path_factory.mktemp(f"tiny-{app}-{name}-{mode}")
            result = run_main([f"dl-{app}", "train", name, "--tiny", "--run-name", "tiny", "--quiet",
                               "--export", "savedmodel,tflite", *(["--mode", mode] if mode else [])], home)
            runs[app, task] = home, home / "saved_models" / app / name / "tiny", result
        home, run, result = runs[app, task]
        assert result.returncode == 0, result.stderr[-3000:]
        return home, run

    return get


# Test files (under tests/) that use an app's tiny runs -> the end-to-end test file that trains
# them. `make test` schedules test files whole (`--dist loadfile`); these run with theirs.
SAME_WORKER = {
    "test_cli.py": "apps/vision/test_end_to_end.py",
    "apps/vision/test_video.py": "apps/vision/test_end_to_end.py",
    "apps/vision/test_synthesize.py": "apps/vision/test_end_to_end.py",
    "apps/vision/test_face_detection.py": "apps/vision/test_end_to_end.py",
    "apps/nlp/test_pretrain.py": "apps/nlp/test_end_to_end.py",
    "apps/nlp/test_translate.py": "apps/nlp/test_end_to_end.py",
    "apps/nlp/test_chat.py": "apps/nlp/test_end_to_end.py",
    "apps/speech/test_kws.py": "apps/speech/test_end_to_end.py",
    "apps/speech/test_asr.py": "apps/speech/test_end_to_end.py",
    "apps/healthcare/test_risk.py": "apps/healthcare/test_end_to_end.py",
    "apps/driving/test_driving.py": "apps/driving/test_end_to_end.py",
}

# The longest groups (measured: trained fixtures, end-to-end runs) start first, so
# pytest-xdist fills the end of the run with short files instead of leaving one worker idle
# while the other runs a long file it picked up last.
LONG_FIRST = (  # seconds of one worker's time, measured: 310, 280, 250, 250, 220, 180, 160, 130, 120, 100, 60, 47
    "apps/vision/test_scene_tasks.py", "apps/nlp/test_end_to_end.py", "apps/speech/test_end_to_end.py",
    "apps/vision/test_end_to_end.py", "shared/training/test_distributed.py", "apps/nlp/test_generate.py",
    "apps/driving/test_end_to_end.py", "apps/nlp/test_sentiment.py", "apps/healthcare/test_end_to_end.py",
    "apps/healthcare/test_imaging.py",
    "apps/healthcare/test_treatment.py", "apps/vision/test_faces.py",
    "test_bench.py",
)


def _group(path):
    """The scheduling unit of a test file path relative to tests/."""
    return SAME_WORKER.get(path, path)


def pytest_collection_modifyitems(session, config, items):
    tests = os.path.dirname(os.path.abspath(__file__))
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    relative = lambda item: os.path.relpath(str(item.path), tests).replace(os.sep, "/")  # noqa: E731
    items.sort(key=lambda item: rank.get(_group(relative(item)), len(LONG_FIRST)))  # stable: other orders kept


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` with the `SAME_WORKER` files joined to their end-to-end file (xdist's
    own `loadgroup` does not group under pytest 9: its node-id suffix is not applied)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedRunScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return _group(path[len("tests/"):] if path.startswith("tests/") else path)

    return SharedRunScheduling(config, log)
