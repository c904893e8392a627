"""Shared fixtures: run the installed console scripts in a private DLSUITE_HOME."""

import contextlib
import functools
import io
import json
import os
import re
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
    tests (`group` keeps the files that use an app's runs on one worker)."""
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


# --- scheduling: `make test` runs test files whole on two workers (`--dist loadfile`) ----------
TESTS = os.path.dirname(os.path.abspath(__file__))
DURATIONS = os.path.join(TESTS, "durations.json")  # the last whole run's seconds per test, rewritten by it
SLOW_SECONDS = 2.0  # a test that took longer in the last whole run is `slow` (left out of `make test-fast`)
_TINY_RUN_APP = re.compile(r"\btiny_runs\b\W+\"(\w+)\"")  # tiny_runs("vision", …) / tiny_end_to_end(tiny_runs, "vision", …)


@functools.lru_cache(maxsize=None)
def group(path):
    """The scheduling unit of a test file (path relative to tests/): `tiny_runs:<app>` for every
    file that uses an app's tiny runs (they run on one worker, which trains each run once),
    else the file itself. Read from the file's source, so a new file is grouped by itself."""
    try:
        with open(os.path.join(TESTS, path)) as f:
            apps = _TINY_RUN_APP.findall(f.read())
    except OSError:
        return path
    return f"tiny_runs:{min(apps)}" if apps else path


def _relative(nodeid):
    path = nodeid.split("::", 1)[0]
    return path[len("tests/"):] if path.startswith("tests/") else path


def recorded_durations():
    """{node id: seconds} of the last whole run (empty before the first)."""
    try:
        with open(DURATIONS) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _shared_fixtures(item):
    """The fixtures set up once for many tests (by whichever runs first) that `item` uses:
    session-scoped ones by name, module-scoped ones by file and name."""
    defs = getattr(item, "_fixtureinfo", None)
    defs = defs.name2fixturedefs if defs else {}
    return {name if d[-1].scope == "session" else f"{item.path}:{name}" for name, d in defs.items()
            if d and d[-1].scope in ("module", "session") and not name.startswith("tmp_path")}


def pytest_collection_modifyitems(session, config, items):
    """Marks `slow` the tests that took over SLOW_SECONDS in the last whole run, with every test
    sharing a module or session fixture with one (its set-up moves to whichever runs first),
    and orders the groups longest first by the last whole run's durations, so pytest-xdist
    fills the end of the run with short files instead of leaving one worker idle while the
    other runs a long file it picked up last."""
    seconds = recorded_durations()
    slow_fixtures = {"tiny_runs"}
    for item in items:
        if seconds.get(item.nodeid, 0.0) > SLOW_SECONDS:
            slow_fixtures |= _shared_fixtures(item)
    for item in items:
        if seconds.get(item.nodeid, 0.0) > SLOW_SECONDS or _shared_fixtures(item) & slow_fixtures:
            item.add_marker(pytest.mark.slow)
    totals = {}
    for item in items:
        key = group(_relative(item.nodeid))
        totals[key] = totals.get(key, 0.0) + seconds.get(item.nodeid, 0.0)
    items.sort(key=lambda item: -totals[group(_relative(item.nodeid))])  # stable: file order kept within


_SECONDS = {}  # node id -> setup + call + teardown seconds of this run (the controller's, under xdist)


def pytest_runtest_logreport(report):
    _SECONDS[report.nodeid] = _SECONDS.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    """After a whole run (the test paths of setup.cfg, no -k or -m, every test passed)
    rewrites `durations.json`: the next run's slow marks and order come from it."""
    config = session.config
    whole = (config.args_source == pytest.Config.ArgsSource.TESTPATHS and not config.getoption("keyword")
             and not config.getoption("markexpr"))
    if hasattr(config, "workerinput") or exitstatus != 0 or not whole or len(_SECONDS) < session.testscollected:
        return
    with open(DURATIONS, "w") as f:
        json.dump({k: round(v, 2) for k, v in sorted(_SECONDS.items())}, f, indent=0)
        f.write("\n")


def pytest_xdist_make_scheduler(config, log):
    """`--dist loadfile` over `group`s (xdist's own `loadgroup` does not group under pytest 9:
    its node-id suffix is not applied)."""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class SharedRunScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            return group(_relative(nodeid))

    return SharedRunScheduling(config, log)
