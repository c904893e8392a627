"""`describe()`: one row per registered variant (built at its default kwargs), for
`dlsuite architectures`."""

import inspect

from shared import architectures


def _doc(cls):
    doc = inspect.getdoc(cls) or ""
    return doc.split("\n\n")[0].replace("\n", " ").strip()


def describe(names=None):
    """`[{"variant", "architecture", "params", "doc"}]` for every registered variant
    (or those in `names`), sorted by architecture then variant. Each variant is built
    as registered (variants carry a representative `input_shape`); a variant that fails
    to build gets `params=None` and an `"error"` entry instead of aborting the listing."""
    rows = []
    for variant, kwargs in architectures.variants().items():
        if names is not None and variant not in names:
            continue
        arch = architectures.architecture_of(variant)
        cls = architectures.get(arch)
        row = {"variant": variant, "architecture": arch, "params": None, "doc": _doc(cls)}
        try:
            row["params"] = int(cls(**kwargs).count_params())
        except Exception as e:  # noqa: BLE001 - reported per row, listing continues
            row["error"] = f"{type(e).__name__}: {e}"
        rows.append(row)
    return sorted(rows, key=lambda r: (r["architecture"], r["variant"]))
