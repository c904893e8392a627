"""Atomic writes: a failed export never leaves a partial artifact and never destroys a good one.

Everything is written into a hidden temp sibling (same directory, so ``os.replace`` is a
rename on the same filesystem) and moved into place only when the writer finished without
raising.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterator


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _tmp_sibling(final: Path, tag: str) -> Path:
    return final.parent / f".{final.name}.{tag}-{uuid.uuid4().hex[:8]}"


def replace_path(src: str | os.PathLike, final_path: str | os.PathLike) -> Path:
    """Move ``src`` onto ``final_path`` (file or directory), replacing what was there.

    A file replaces a file with one ``os.replace``. A directory cannot be renamed over a
    non-empty directory, so the old one is first renamed aside, the new one renamed in, and
    only then the old one removed; if the second rename fails the old one is put back.
    """
    src, final = Path(src), Path(final_path)
    if final.exists() and (final.is_dir() or src.is_dir()):
        old = _tmp_sibling(final, "old")
        os.replace(final, old)
        try:
            os.replace(src, final)
        except BaseException:
            os.replace(old, final)
            raise
        _remove(old)
    else:
        os.replace(src, final)
    return final


@contextlib.contextmanager
def atomic_path(final_path: str | os.PathLike) -> Iterator[Path]:
    """Yield a hidden temp sibling of ``final_path`` to write a file or directory into.

    On normal exit the temp replaces ``final_path`` atomically. On an exception the temp is
    removed, ``final_path`` (if any) is left untouched and the exception propagates. If the
    body wrote nothing at the temp path, ``final_path`` is left unchanged.
    """
    final = Path(final_path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_sibling(final, "tmp")
    try:
        yield tmp
    except BaseException:
        _remove(tmp)
        raise
    if not tmp.exists():
        return
    try:
        replace_path(tmp, final)
    except BaseException:
        _remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (fsynced temp file, then ``os.replace``)."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding=encoding) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def _json_default(obj: Any) -> Any:
    # numpy scalars/arrays and paths show up in metrics and export results.
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (numpy values are converted)."""
    text = json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n"
    return atomic_write_text(path, text)
