"""`dl-drive bench`: per-frame latency at batch 1 of the perception and decision runs' exports
(SavedModel in a fresh plain-TensorFlow process, each TFLite variant in the LiteRT
interpreter), their sum per camera frame, and simulator steps per second while recording
(one process against parallel worker processes)."""

import json
import os
import shutil
import tempfile
import time

import numpy as np

from shared.errors import UserError

TASKS = ("detect", "lanes", "policy")


def _sample(run, task, cfg):
    """One real batch-1 input of the run: a recorded frame or observation from its test episodes."""
    from apps.driving.recordings import episode_split, load_steps, recording

    directory, manifest = recording(cfg.data, cfg.episodes, cfg.record_seed)
    test = episode_split(manifest, cfg.validation_split, cfg.seed)[2][:1]
    if task == "policy":
        x = load_steps(directory, manifest, test, ["observation"])["observation"][:1].reshape(1, 5, 5)
        return {"observation": x.astype(np.float32)}
    key = f"{getattr(cfg, 'view', 'front')}/image"
    return {"images": load_steps(directory, manifest, test, [key])[key][:1]}


def _export_latencies(path, app_tasks):
    from shared.training.runs import load_run
    from shared.export.verify import run_savedmodel_subprocess, tflite_latency_ms
    from shared.training.runs import read_metrics

    run, task, cfg, _ = load_run("drive", app_tasks, path)
    exports = read_metrics(run).get("exports", {})
    if not exports:
        raise UserError(f"{path}: no exports; run `dl-drive export {path} --format savedmodel` (and tflite)")
    sample = _sample(run, run.task, cfg)
    rows = {}
    for name, meta in sorted(exports.items()):
        file = run.file(meta.get("path", name))
        if not meta.get("passed") or not os.path.exists(file):
            continue
        if meta["format"] == "savedmodel":
            ms = run_savedmodel_subprocess(file, sample)[1]["latency_ms_batch1"]
        else:
            ms = tflite_latency_ms(file, sample)
        rows[name] = {"latency_ms": round(ms, 3), "size_mb": round(meta["size_bytes"] / 2**20, 2)}
    return run.task, rows


def simulator_speed(episodes, workers):
    """Steps per second of `dl-drive record` (expert, both views, PNG encoding, TFRecord) with
    `workers` processes, and of the bare simulator (IDLE actions, no rendering) in one."""
    from apps.driving import simulator
    from apps.driving.record import record

    tmp = tempfile.mkdtemp(prefix="dl-drive-bench-")
    try:
        recorded = record(os.path.join(tmp, "r"), episodes, seed=0, workers=workers)["steps_per_second"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    env, steps, t0 = simulator.make_env(), 0, time.perf_counter()
    for seed in range(episodes):
        steps += simulator.drive_episode(env, lambda env, observation: simulator.IDLE, seed)["steps"]
    return {"record_steps_per_second": recorded, "bare_steps_per_second": round(steps / (time.perf_counter() - t0), 1)}


def bench_command(args):
    from apps.driving.tasks import TASKS as APP_TASKS

    runs = {t: getattr(args, t) for t in TASKS if getattr(args, t)}
    if not runs:
        raise UserError("bench: give at least one of --detect RUN, --lanes RUN, --policy RUN")
    latency = {}
    for task, path in runs.items():
        found, rows = _export_latencies(path, APP_TASKS)
        if found != task:
            raise UserError(f"--{task} {path}: a {found} run, not a {task} run")
        latency[task] = rows
    per_frame = {}
    for variant in ("savedmodel", "tflite", "tflite_float16", "tflite_dynamic", "tflite_int8"):
        # a task without this (verified) variant counts with its float TFLite, and is named
        parts = {t: rows.get(variant) or rows.get("tflite") for t, rows in latency.items()}
        if any(variant in rows for rows in latency.values()) and all(parts.values()):
            name = variant + "".join(f" ({t}: tflite)" for t, rows in latency.items() if variant not in rows)
            per_frame[name] = round(sum(p["latency_ms"] for p in parts.values()), 3)
    cores = os.cpu_count() or 1
    sim = {f"{w}_worker{'s' if w > 1 else ''}": simulator_speed(args.episodes, w) for w in sorted({1, cores})}
    figures = {"latency_ms_batch1": latency, "per_frame_ms": per_frame, "simulator": sim}
    if args.json:
        print(json.dumps(figures))
        return figures
    print(f"{'task':8s} {'export':16s} {'size MB':>8s} {'ms (batch 1)':>13s}")
    for task, rows in latency.items():
        for name, row in rows.items():
            print(f"{task:8s} {name:16s} {row['size_mb']:8.2f} {row['latency_ms']:13.3f}")
    for variant, ms in per_frame.items():
        print(f"per frame ({' + '.join(latency)}), {variant}: {ms:.2f} ms ({1000 / ms:.0f} frames/s)")
    for name, row in sim.items():
        print(f"simulator, {name}: recording {row['record_steps_per_second']} steps/s; "
              f"bare simulator {row['bare_steps_per_second']} steps/s")
    return figures
