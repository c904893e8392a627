"""`dlsuite bench --task APP:TASK | --all`: every task's training throughput through the
engine against a plain Keras `model.fit` of the same model, data pipeline and batch.

Each measurement runs in a fresh subprocess (`python -m apps.benchmark`), the two sides
alternating over `rounds`; a side's figure is its median over the rounds. The engine's
side also measures the share of a real epoch (fresh iterator, shuffle-buffer fill
included) spent waiting on input. The figures come from `shared.training.throughput`.
"""

import json
import statistics
import subprocess
import sys

from apps import APPS
from shared.errors import UserError


def all_tasks():
    """Every registered `app:task`, and `app:task:mode` for each further mode of a task."""
    import importlib

    names = []
    for app, package in APPS.items():
        for name, factory in importlib.import_module(f"{package}.tasks").TASKS.items():
            names += [f"{app}:{name}", *(f"{app}:{name}:{mode}" for mode in factory().modes)]
    return names


def parse_task(spec):
    """`APP:TASK[:MODE]` -> (app, task, mode or ""), or a one-line UserError."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in APPS:
        raise UserError(f"--task {spec}: expected APP:TASK with APP one of {', '.join(APPS)}")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else ""


def parse_overrides(pairs):
    """`["field=value", …]` -> {field: value} (converted and checked by the task's config)."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UserError(f"--set {pair}: expected FIELD=VALUE, e.g. --set precision=mixed_bfloat16")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def parse_threads(value):
    """`--threads INTRA,INTER` -> [intra, inter] (0: TensorFlow's choice), or None."""
    if not value:
        return None
    parts = value.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise UserError(f"--threads {value}: expected INTRA,INTER thread counts such as 2,1")
    return [int(p) for p in parts]


def _config(app, name, mode, tiny, overrides):
    import importlib

    from shared.training import config as config_lib

    task = importlib.import_module(f"{APPS[app]}.tasks").TASKS.get(name)()
    cfg = config_lib.resolve(task.config, tiny=tiny, overrides={**({"mode": mode} if mode else {}), **overrides})
    return task, cfg


def _child(side, spec, steps, tiny, overrides, threads, wait_steps):
    """One side's figures, measured in a fresh process."""
    cmd = [sys.executable, "-m", "apps.benchmark", side, spec, str(steps), "1" if tiny else "0",
           json.dumps(overrides), json.dumps(threads), str(wait_steps)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        lines = [l for l in out.stderr.splitlines() if l.strip()]
        raise UserError(f"bench {spec} ({side}) failed: {lines[-1] if lines else out.returncode}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_task(spec, steps=60, rounds=2, tiny=False, overrides=None, threads=None, wait_steps=200):
    """{engine, keras: examples/s (median over rounds), ratio, input_wait_share, rounds: […]}."""
    parse_task(spec)
    runs = {"engine": [], "keras": []}
    for _ in range(rounds):
        for side in ("keras", "engine"):
            runs[side].append(_child(side, spec, steps, tiny, overrides or {}, threads, wait_steps))
    speed = {side: statistics.median(r["examples_per_second"] for r in rs) for side, rs in runs.items()}
    return {"task": spec, "engine": speed["engine"], "keras": speed["keras"], "ratio": speed["engine"] / speed["keras"],
            "input_wait_share": statistics.median(r["input_wait_share"] for r in runs["engine"]),
            "pipeline": statistics.median(r["pipeline_examples_per_second"] for r in runs["engine"]),
            "batch_size": runs["engine"][0]["batch_size"], "precision": runs["engine"][0]["precision"],
            "steps": steps, "rounds": runs}


def bench_tasks(specs, steps=60, rounds=2, tiny=False, overrides=None, threads=None, wait_steps=200, out=print):
    """Measures each task and prints one table row per task as it finishes (a task that fails
    gets a row saying why, and the others still run); returns the results and the failures."""
    for spec in specs:
        parse_task(spec)
    out(f"{'task':26s} {'batch':>5s} {'precision':>14s} {'plain Keras ex/s':>16s} {'engine ex/s':>11s} {'ratio':>5s} "
        f"{'input wait':>10s} {'input alone ex/s':>16s}", flush=True)
    results, failures = [], {}
    for spec in specs:
        try:
            r = bench_task(spec, steps, rounds, tiny, overrides, threads, wait_steps)
        except UserError as e:
            failures[spec] = str(e)
            out(f"{spec:26s} {e}", flush=True)
            continue
        out(f"{spec:26s} {r['batch_size']:5d} {r['precision']:>14s} {r['keras']:16.1f} {r['engine']:11.1f} "
            f"{r['ratio']:5.2f} {100 * r['input_wait_share']:9.1f}% {r['pipeline']:16.1f}", flush=True)
        results.append(r)
    return results, failures


def _measure(side, spec, steps, tiny, overrides, threads, wait_steps):
    from shared.terminal import quiet_native_stderr

    quiet_native_stderr(False)
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])
    import keras

    from shared.training.throughput import measure

    app, name, mode = parse_task(spec)
    task, cfg = _config(app, name, mode, tiny, overrides)
    result = measure(app, name, task, cfg, side, steps=steps, wait_steps=wait_steps)
    return {**result, "precision": keras.mixed_precision.global_policy().name}


if __name__ == "__main__":
    side, spec, steps, tiny, overrides, threads, wait_steps = sys.argv[1:8]
    print(json.dumps(_measure(side, spec, int(steps), tiny == "1", json.loads(overrides), json.loads(threads),
                              int(wait_steps))))
