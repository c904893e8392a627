"""``model_card.md``: what the model was trained on, how, how well, and what was exported."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from shared.export.atomic import atomic_write_text

_FILENAME = "model_card.md"


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if hasattr(v, "item") and not isinstance(v, (list, tuple, dict)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3g}"
        return f"{v:.4f}".rstrip("0").rstrip(".") if v != int(v) else f"{v:.1f}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v) if len(v) <= 12 else f"[{len(v)} items]"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v).replace("|", "\\|").replace("\n", " ")


def _size(n) -> str:
    if n is None:
        return "—"
    n = int(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def _table(d: dict, key="key", value="value") -> list[str]:
    if not d:
        return ["_none recorded_", ""]
    lines = [f"| {key} | {value} |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in d.items()]
    return lines + [""]


def _flat_metrics(metrics: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in metrics.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat_metrics(v, name + "."))
        elif isinstance(v, (list, tuple)) and len(v) > 12:
            continue  # per-class arrays, confusion matrices: see metrics.json
        else:
            out[name] = v
    return out


def _exports_table(exports: dict, run_dir: Path | None = None) -> list[str]:
    if not exports:
        return ["_no exports_", ""]
    lines = ["| artifact | file | quantize | size | parity vs Keras | tolerance | "
             "latency batch-1 (ms) | verified |",
             "|---|---|---|---|---|---|---|---|"]
    for key, r in exports.items():
        tol = r.get("tolerance") or {}
        tol_s = ", ".join(f"{k} {_fmt(v)}" for k, v in tol.items()) if tol else "—"
        parity = r.get("parity") or {k: r.get(k) for k in ("max_abs_diff", "top1_agreement") if k in r}
        parity_s = ", ".join(f"{k} {_fmt(v)}" for k, v in parity.items()) or r.get("error", "—")
        size = r.get("size_bytes")
        lines.append(
            f"| {key} | `{r.get('path', '—')}` | {r.get('quantize', 'none')} | {_size(size)}"
            f"{f' ({size:,} bytes)' if size else ''} | {parity_s} | {tol_s} | "
            f"{_fmt(r.get('latency_ms_batch1'))} | {'passed' if r.get('passed') else 'FAILED'} |"
        )
    lines.append("")
    signature = next((r for r in exports.values() if r.get("inputs") and r.get("format") == "savedmodel"), None)
    if signature:
        describe = lambda t: f"`{t['name']}` {t['dtype']} {t['shape']}"  # noqa: E731
        for name, sig in (signature.get("signatures") or {"serving_default": signature}).items():
            lines += [f"Signature `{name}`: ({', '.join(describe(t) for t in sig['inputs'])}) -> "
                      f"{{{', '.join(describe(t) for t in sig['outputs'])}}}", ""]
    core = next((r for r in exports.values() if r.get("inputs") and r.get("format") == "tflite"), None)
    if core and signature and [t["name"] for t in core["inputs"]] != [t["name"] for t in signature["inputs"]]:
        describe = lambda t: f"`{t['name']}` {t['dtype']} {t['shape']}"  # noqa: E731
        lines += [f"TFLite signature `serving_default`: ({', '.join(describe(t) for t in core['inputs'])}) -> "
                  f"{{{', '.join(describe(t) for t in core['outputs'])}}}. The serving graph uses ops "
                  "without TFLite kernels (strings, loops), so the TFLite files carry the numeric core."
                  + (" Token ids come from `vocabulary.txt` beside them (id = line number; lower-cased words, "
                     "punctuation stripped, whitespace split; 0 = padding, 1 = unknown word)."
                     if run_dir is not None and (run_dir / "vocabulary.txt").is_file() else "")
                  + (" The feature vector is made from a record's columns as `features.json` beside "
                     "them says (its `recipe`, per-column statistics and vocabularies)."
                     if run_dir is not None and (run_dir / "features.json").is_file() else ""), ""]
    int8 = [r for r in exports.values() if r.get("quantize") == "int8" and r.get("output_quantization")]
    notes = ["All exports take the raw input (uint8 images for vision models); preprocessing and "
             "post-processing are inside the exported graph. Parity is measured against the Keras "
             f"serving model on held-out inputs"
             f"{'' if not exports else ' (' + _fmt(next(iter(exports.values())).get('num_images')) + ')'}; "
             "latency is the median of batch-1 runs on the export machine's CPU."]
    if int8 and int8[0].get("output_dtype") == "int8":
        scale, zp = int8[0]["output_quantization"]
        notes.append(f"The int8 TFLite model outputs int8; probabilities = (q - ({zp})) × {scale:g}.")
    return lines + notes + [""]


def write_model_card(
    run_dir: str | os.PathLike,
    *,
    app: str,
    task: str,
    config: dict,
    data: dict,
    metrics: dict,
    exports: dict,
    intended_use: str | None = None,
    limitations: list[str] | None = None,
    usage: list[str] | None = None,
    provenance: dict | None = None,
) -> Path:
    """Write ``run_dir/model_card.md`` atomically and return its path.

    ``data`` describes the dataset (name, source, sizes, classes …), ``config`` is the
    resolved training config, ``metrics`` the evaluation results (nested dicts are flattened,
    long arrays omitted), ``exports`` the results of :func:`shared.export.export_run`.
    """
    run_dir = Path(run_dir)
    title = f"{app} / {task}"
    lines = [f"# Model card: {title}", "",
             f"Run `{run_dir.name}`, written {_dt.datetime.now().isoformat(timespec='seconds')}.", ""]
    lines += ["## Intended use", "",
              intended_use or (f"A reference model for the dlsuite `{app}` application's `{task}` "
                               "task: for learning, prototyping and as a baseline to compare against. "
                               "Not validated for decisions about people, safety or health."), ""]
    lines += ["## Data", ""] + _table(data, "field", "value")
    if provenance:
        lines += [f"- **{k}**: {v}" for k, v in provenance.items()] + [""]
    lines += ["## Training config", ""] + _table(config, "option", "value")
    lines += ["## Evaluation metrics", ""] + _table(_flat_metrics(metrics), "metric", "value")
    lines += ["## Exports", ""] + _exports_table(exports, run_dir)
    if usage:
        lines += ["## Usage", ""] + [f"- {x}" for x in usage] + [""]
    lims = list(limitations or []) + [
        "Metrics hold for data like the evaluation set above; expect lower quality on other "
        "distributions (other cameras, lighting, languages, demographics, sensors).",
        "Quantized exports trade a small, measured loss of parity (table above) for size and speed.",
        "Trained with the settings above only; no fairness, robustness or calibration audit was run.",
    ]
    lines += ["## Limitations", ""] + [f"- {x}" for x in lims] + [""]
    return atomic_write_text(run_dir / _FILENAME, "\n".join(lines))
