"""dl-drive: the expert, deterministic recordings, behaviour cloning that learns on real
expert data, DAgger rounds, lane metrics, closed-loop driving of an exported SavedModel, the
clips and one-line CLI errors."""

import json
import os

import numpy as np
import pytest

from apps.driving import simulator
from apps.driving.perception import lane_metrics
from apps.driving.record import read_manifest, record
from apps.driving.recordings import episode_split, load_steps
from shared.errors import UserError
from tests.conftest import error_line, run_command, run_main


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """Two expert episodes with camera frames, recorded in this process."""
    out = tmp_path_factory.mktemp("rec") / "two"
    record(str(out), episodes=2, seed=5, workers=1)
    return str(out)


def test_recording_is_deterministic_and_consistent(recording, tmp_path):
    again = tmp_path / "again"
    record(str(again), episodes=2, seed=5, workers=1)
    manifest = read_manifest(recording)
    for shard in manifest["shards"]:
        assert (again / shard["file"]).read_bytes() == open(os.path.join(recording, shard["file"]), "rb").read()
    assert manifest["episodes"] == 2 and manifest["steps"] == sum(s["steps"] for s in manifest["shards"])
    assert [s["seed"] for s in manifest["shards"]] == [5, 6]
    assert set(manifest["expert"]) >= {"collision_rate", "mean_speed", "mean_return", "lane_changes_per_km"}
    steps = load_steps(recording, manifest, [0, 1], ["observation", "action", "front/image", "front/lane_mask",
                                                      "bev/image"])
    n = manifest["steps"]
    assert steps["observation"].shape == (n, 25) and steps["action"].shape == (n,)
    assert steps["front/image"].shape == (n, 96, 192, 3) and steps["bev/image"].shape == (n, 64, 256, 3)
    assert set(np.unique(steps["front/lane_mask"])) <= {0, 1} and steps["front/lane_mask"].any()
    assert set(steps["action"].tolist()) <= set(range(5))
    # the stored observation is the one the expert acted on: the ego row is present, centred
    assert np.all(steps["observation"][:, 0] == 1)


def test_an_interrupted_or_existing_recording_is_refused_or_left_clean(recording, tmp_path):
    with pytest.raises(UserError, match="already holds a recording"):
        record(recording, episodes=1, seed=0, workers=1)
    with pytest.raises(UserError, match="not a finished recording"):
        read_manifest(str(tmp_path))
    with pytest.raises(UserError, match="no such recording"):
        read_manifest(str(tmp_path / "missing"))


def test_the_expert_drives_better_than_always_idle():
    env = simulator.make_env()
    seeds = range(300, 306)
    expert, _ = simulator.drive(simulator.expert, seeds, env=env)
    idle, _ = simulator.drive(lambda env, observation: simulator.IDLE, seeds, env=env)
    assert expert["collision_rate"] < idle["collision_rate"]
    assert expert["mean_return"] > idle["mean_return"]
    assert expert["mean_length"] == 30  # no crash: the episode runs its whole duration


def test_behaviour_cloning_learns_the_expert_on_held_out_episodes(tmp_path):
    """An MLP trained on 30 recorded expert episodes predicts the expert's action on 6 held-out
    episodes far above the majority action (measured: +0.17 and +0.20 on two draws)."""
    import keras

    out = str(tmp_path / "rec")
    record(out, episodes=36, seed=0, views=False)
    manifest = read_manifest(out)
    load = lambda episodes: load_steps(out, manifest, episodes, ["observation", "action"])  # noqa: E731
    train, test = load(range(30)), load(range(30, 36))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((25,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(5, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(train["observation"], train["action"], epochs=60, batch_size=64, verbose=0)
    accuracy = model.evaluate(test["observation"], test["action"], verbose=0)[1]
    majority = np.bincount(test["action"], minlength=5).max() / len(test["action"])
    assert accuracy > majority + 0.1, (accuracy, majority)


def test_episode_split_keeps_whole_episodes_apart():
    train, val, test = episode_split({"episodes": 20}, 0.1, seed=3)
    assert sorted(train + val + test) == list(range(20)) and len(test) == 2 and len(val) == 2
    with pytest.raises(UserError, match="at least 3"):
        episode_split({"episodes": 2}, 0.1, seed=3)


def test_lane_metrics_count_points_lanes_and_false_markings():
    masks = np.zeros((1, 40, 200), np.uint8)
    rows = [5, 20, 35]
    lanes = np.array([[[10.5, 12.5, 14.5], [100.5, 140.5, -1], [190.5, -1, -1]]], np.float32)
    masks[0, 5, 30] = masks[0, 20, 32] = masks[0, 35, 34] = 1  # line 0, 20 px to the right: found
    masks[0, 5, 100] = 1  # line 1 found at row 5 only (1 of 2 points): missed
    masks[0, 35, 199] = 1  # a marking 30 px from every lane point
    m = lane_metrics(masks, lanes, rows, tolerance=20)
    assert m["lane_points"] == 6 and m["lanes"] == 2  # the one-point line is no lane
    assert m["accuracy"] == pytest.approx(4 / 6)  # 3 of line 0, 1 of line 1, none of line 2
    assert m["fn_lane_rate"] == pytest.approx(1 / 2)
    assert m["fp_point_rate"] == pytest.approx(1 / 5)
    # a point in a dash gap is found through the dash beside it (2-D distance, not its row only)
    gap = np.zeros((1, 40, 200), np.uint8)
    gap[0, 8:12, 50] = 1
    assert lane_metrics(gap, np.array([[[50.5, -1, -1]]], np.float32), rows)["accuracy"] == 1


def test_policy_run_drives_its_saved_model_in_closed_loop_and_records_a_clip(tiny_runs, tmp_path):
    home, run = tiny_runs("drive", "policy")
    metrics = json.loads((run / "metrics.json").read_text())
    history = json.loads((run / "history.json").read_text())
    assert (run / "rounds" / "round-1.npz").is_file()  # the DAgger round's expert-labelled states
    assert metrics["test"]["closed_loop"]["expert"]["episodes"] == 2
    clip = tmp_path / "clip.gif"
    result = run_main(["dl-drive", "drive", run, "--episodes", "2", "--seed", "7", "--json", "--record", clip], home)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["driver"] == "savedmodel" and figures["seeds"] == [7, 8]
    for who in ("policy", "expert"):
        assert figures[who]["episodes"] == 2 and 0 <= figures[who]["collision_rate"] <= 1
        assert figures[who]["mean_length"] >= 1 and figures[who]["mean_speed"] > 0
    from PIL import Image

    with Image.open(clip) as gif:
        assert gif.n_frames >= 1 and gif.size == (512, 128)
    assert [r.get("round", 0) for r in history] == [0, 0, 1, 1]  # 2 tiny epochs, then a DAgger round of 2


def test_saved_policy_signature_is_the_contract(tiny_runs):
    import subprocess
    import sys

    _, run = tiny_runs("drive", "policy")
    code = f"""
import numpy as np, tensorflow as tf
sig = tf.saved_model.load({str(run / 'saved_model')!r}).signatures["serving_default"]
spec = sig.structured_input_signature[1]["observation"]
assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 5, 5], spec
out = sig(observation=tf.zeros([3, 5, 5]))
assert list(out) == ["action_probabilities"] and out["action_probabilities"].shape == (3, 5)
assert np.allclose(out["action_probabilities"].numpy().sum(-1), 1, atol=1e-5)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def test_view_writes_a_clip_of_a_recorded_episode(recording, tmp_path):
    result = run_main(["dl-drive", "view", recording, "--out", tmp_path / "ep.gif", "--view", "bev"], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    with Image.open(tmp_path / "ep.gif") as gif:
        assert gif.n_frames == read_manifest(recording)["shards"][0]["steps"] and gif.size == (768, 192)


def test_cli_errors_are_one_line(tmp_path):
    line = error_line(run_main(["dl-drive", "train", "policy", "--data", f"record:{tmp_path}/none"], tmp_path))
    assert "no such recording directory" in line
    line = error_line(run_main(["dl-drive", "view", str(tmp_path), "--out", tmp_path / "x.gif"], tmp_path))
    assert "not a finished recording" in line
    # a machine without the simulator: highway_env cannot be imported
    shim = tmp_path / "shim" / "highway_env"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'highway_env'\", name='highway_env')\n")
    line = error_line(run_command(["dl-drive", "record", "--episodes", "1", "--out", tmp_path / "r"], tmp_path,
                                  env={"PYTHONPATH": str(tmp_path / "shim")}))
    assert "simulator is not installed" in line and "highway-env" in line
    assert not (tmp_path / "r").exists()


def test_view_draws_a_runs_predictions_on_a_test_episode(tiny_runs, tmp_path):
    home, run = tiny_runs("drive", "lanes")
    result = run_main(["dl-drive", "view", run, "--out", tmp_path / "lanes.gif"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    from PIL import Image

    with Image.open(tmp_path / "lanes.gif") as gif:
        assert gif.n_frames >= 1 and gif.size == (576, 288)
    _, policy = tiny_runs("drive", "policy")
    line = error_line(run_main(["dl-drive", "view", policy, "--out", tmp_path / "p.gif"], home))
    assert "a policy run" in line


def test_bench_times_every_export_per_frame_and_the_simulator(tiny_runs, tmp_path):
    home, policy = tiny_runs("drive", "policy")
    _, lanes = tiny_runs("drive", "lanes")
    result = run_main(["dl-drive", "bench", "--policy", policy, "--lanes", lanes, "--episodes", "1", "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    for task in ("policy", "lanes"):
        assert set(figures["latency_ms_batch1"][task]) == {"savedmodel", "tflite"}
        assert all(r["latency_ms"] > 0 and r["size_mb"] > 0 for r in figures["latency_ms_batch1"][task].values())
    assert figures["per_frame_ms"]["savedmodel"] == pytest.approx(
        sum(figures["latency_ms_batch1"][t]["savedmodel"]["latency_ms"] for t in ("policy", "lanes")), abs=0.01)
    assert all(r["record_steps_per_second"] > 0 and r["bare_steps_per_second"] > 0 for r in figures["simulator"].values())


def test_predict_reads_observation_files_and_names_the_action(tiny_runs, tmp_path):
    home, run = tiny_runs("drive", "policy")
    one = tmp_path / "one.json"
    one.write_text(json.dumps(np.zeros((5, 5)).tolist()))
    np.save(tmp_path / "two.npy", np.zeros((2, 5, 5), np.float32))
    result = run_main(["dl-drive", "predict", run, one, tmp_path / "two.npy", "--json"], home)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == 3 and all(r["action"] in simulator.ACTIONS for r in rows)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-4 for r in rows)
    (tmp_path / "bad.json").write_text("[1, 2]")
    line = error_line(run_main(["dl-drive", "predict", run, tmp_path / "bad.json"], home))
    assert "expected an observation of shape [5, 5]" in line
