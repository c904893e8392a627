"""`--precision auto`: mixed precision where it is measured to be faster, else float32.

GPUs and TPUs compute bfloat16 / float16 natively, so `auto` trusts them. CPUs differ: with
AVX512_BF16 some ran bfloat16 convolutions 1.3-1.6x faster and others slower, so on a CPU
with bfloat16 instructions `auto` times a few training steps of the task's own model in both
precisions, once per machine and model family, and caches the decision in the data cache
(`precision.json`). A task whose accuracy drops in bfloat16 names why in its record
(`Task.float32_reason`) and keeps float32.
"""

import json
import os
import platform
import time

import tensorflow as tf

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
MEASURE = "measure"  # resolve_precision's answer where only a measurement can decide
SPEEDUP_NEEDED = 1.1  # bfloat16 must be this much faster per step to be chosen
CACHE_FILE = "precision.json"


def cpu_flags(path="/proc/cpuinfo"):
    """The CPU's feature flags (Linux), or an empty set where they cannot be read."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def resolve_precision(name, flags=None, gpus=None, tpu=False):
    """The Keras dtype policy name for `--precision`: `auto` is mixed_bfloat16 on a TPU or a GPU
    of compute capability >= 8, mixed_float16 on a GPU of capability 7.x, `MEASURE` on a CPU
    with bfloat16 instructions (AVX512_BF16, AMX) and float32 elsewhere (an emulated bfloat16
    is slower). Other names are returned unchanged."""
    if name != "auto":
        return name
    if tpu:
        return "mixed_bfloat16"
    if gpus is None:
        gpus = [tf.config.experimental.get_device_details(g).get("compute_capability")
                for g in tf.config.list_physical_devices("GPU")]
    if gpus:
        major = min((cc or (0, 0))[0] for cc in gpus)
        return "mixed_bfloat16" if major >= 8 else "mixed_float16" if major >= 7 else "float32"
    flags = cpu_flags() if flags is None else flags
    return MEASURE if set(_CPU_BF16_FLAGS) & set(flags) else "float32"


def machine_key():
    """What the measurement depends on besides the model: the CPU, its bfloat16 flags, the cores
    TensorFlow may use and TensorFlow's version."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    flags = ",".join(sorted(set(_CPU_BF16_FLAGS) & cpu_flags()))
    return f"{model or platform.processor()}|{flags}|{os.cpu_count()} cores|tf {tf.__version__}"


def _cache_path():
    from shared.data.cache import data_cache

    return data_cache(CACHE_FILE)


def cached_decision(family):
    try:
        with open(_cache_path()) as f:
            return json.load(f).get(f"{machine_key()}|{family}")
    except (OSError, ValueError):
        return None


def cache_decision(family, decision):
    from shared.export.atomic import atomic_write_json

    try:
        with open(_cache_path()) as f:
            decisions = json.load(f)
    except (OSError, ValueError):
        decisions = {}
    decisions[f"{machine_key()}|{family}"] = decision
    atomic_write_json(_cache_path(), decisions)


def step_seconds(task, cfg, data, strategy, policy, steps=10):
    """Seconds per training step of the task's model under `policy`, on one prepared batch of its
    training data fed over and over (after as many untimed steps: tracing)."""
    import dataclasses
    import tempfile

    import keras

    from shared.training.trainer import Trainer

    keras.mixed_precision.set_global_policy(policy)
    cfg = dataclasses.replace(cfg, precision=policy, steps_per_execution=min(cfg.steps_per_execution, 5))
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer.for_task(task, cfg, data, strategy, tmp, verbose=False)
        batch = next(iter(trainer.train_batches(0)))
        iterator = iter(trainer.distribute(tf.data.Dataset.from_tensors(batch).repeat()))
        trainer.run_steps(iterator, steps)
        t0 = time.perf_counter()
        trainer.run_steps(iterator, steps)
        return (time.perf_counter() - t0) / steps


def measured_precision(task, cfg, data, strategy, family, verbose=False):
    """(policy, record) for `--precision auto` on a CPU with bfloat16 instructions: the cached
    decision for this machine and model `family`, or a new measurement of both precisions
    (then cached). The record says which, and the step times it rests on."""
    decision = cached_decision(family)
    if decision is not None:
        return decision["policy"], {**decision, "cached": True}
    if verbose:
        print(f"Precision auto: timing float32 and bfloat16 steps of {family} once on this machine", flush=True)
    times = {policy: step_seconds(task, cfg, data, strategy, policy) for policy in ("float32", "mixed_bfloat16")}
    speedup = times["float32"] / times["mixed_bfloat16"]
    decision = {"policy": "mixed_bfloat16" if speedup >= SPEEDUP_NEEDED else "float32",
                "float32_step_ms": round(1e3 * times["float32"], 2),
                "bfloat16_step_ms": round(1e3 * times["mixed_bfloat16"], 2), "bfloat16_speedup": round(speedup, 3),
                "machine": machine_key(), "measured": time.strftime("%Y-%m-%dT%H:%M:%S")}
    cache_decision(family, decision)
    return decision["policy"], {**decision, "cached": False}
