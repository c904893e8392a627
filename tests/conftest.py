"""Shared fixtures: run the installed console scripts in a private DLSUITE_HOME."""

import os
import subprocess
import sys

import pytest

BIN = os.path.dirname(sys.executable)


def run_command(args, home, timeout=900, env=None, **kwargs):
    """Runs a console script (`dl-vision`, `dlsuite`) with DLSUITE_HOME=home; returns CompletedProcess."""
    full_env = {**os.environ, "DLSUITE_HOME": str(home), "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env.pop("TF_CONFIG", None)
    return subprocess.run([os.path.join(BIN, args[0]), *map(str, args[1:])], capture_output=True, text=True,
                          timeout=timeout, env=full_env, **kwargs)


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


# The longest test files (measured: trained fixtures, end-to-end runs) start first, so
# pytest-xdist's per-file scheduling fills the end of the run with short files instead of
# leaving one worker idle while the other runs a long file it picked up last.
LONG_FIRST = (
    "apps/vision/test_scene_tasks.py", "apps/nlp/test_generate.py", "apps/nlp/test_end_to_end.py",
    "apps/vision/test_end_to_end.py", "apps/healthcare/test_imaging.py", "apps/nlp/test_sentiment.py",
    "apps/speech/test_end_to_end.py", "apps/healthcare/test_end_to_end.py", "apps/healthcare/test_treatment.py",
    "test_bench.py", "shared/training/test_distributed.py", "apps/speech/test_asr.py", "apps/healthcare/test_risk.py",
)


def pytest_collection_modifyitems(session, config, items):
    def rank(item):
        path = item.path.as_posix()
        return next((i for i, name in enumerate(LONG_FIRST) if path.endswith("tests/" + name)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: the order within a file and among the rest is kept
