"""`--precision auto`: mixed precision where the hardware computes it natively, else float32."""

import tensorflow as tf

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


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
    """The Keras dtype policy name for `--precision`: `auto` is mixed_bfloat16 on a TPU, a GPU
    of compute capability ≥ 8 or a CPU with bfloat16 instructions (AVX512_BF16, AMX);
    mixed_float16 on a GPU of capability 7.x; float32 elsewhere (an emulated bfloat16 is
    slower than float32). Other names are returned unchanged."""
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
    return "mixed_bfloat16" if set(_CPU_BF16_FLAGS) & set(flags) else "float32"
