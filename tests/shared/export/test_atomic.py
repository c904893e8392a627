import json
import os

import numpy as np
import pytest

from shared.export.atomic import atomic_path, atomic_write_json, atomic_write_text


def _siblings(d):
    return sorted(os.listdir(d))


def test_file_written_and_no_temp_left(tmp_path):
    final = tmp_path / "a.txt"
    with atomic_path(final) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".")
        tmp.write_text("hello")
        assert not final.exists()
    assert final.read_text() == "hello"
    assert _siblings(tmp_path) == ["a.txt"]


def test_exception_leaves_no_file(tmp_path):
    final = tmp_path / "a.bin"
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert _siblings(tmp_path) == []


def test_exception_keeps_previous_file(tmp_path):
    final = tmp_path / "a.txt"
    atomic_write_text(final, "good")
    with pytest.raises(KeyError):
        with atomic_path(final) as tmp:
            tmp.write_text("partial")
            raise KeyError("x")
    assert final.read_text() == "good"
    assert _siblings(tmp_path) == ["a.txt"]


def test_directory_replaced_and_old_removed(tmp_path):
    final = tmp_path / "saved_model"
    for version in ("v1", "v2"):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "version").write_text(version)
            if version == "v2":
                (tmp / "extra").write_text("x")
    assert (final / "version").read_text() == "v2"
    assert sorted(os.listdir(final)) == ["extra", "version"]
    assert _siblings(tmp_path) == ["saved_model"]


def test_directory_exception_keeps_previous(tmp_path):
    final = tmp_path / "saved_model"
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "version").write_text("good")
    with pytest.raises(ValueError):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "version").write_text("bad")
            raise ValueError("failed half way")
    assert (final / "version").read_text() == "good"
    assert _siblings(tmp_path) == ["saved_model"]


def test_exception_without_previous_leaves_no_dir(tmp_path):
    final = tmp_path / "sub" / "saved_model"
    with pytest.raises(OSError):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "x").write_text("x")
            raise OSError("disk full")
    assert not final.exists()
    assert _siblings(tmp_path / "sub") == []


def test_write_json_roundtrip_with_numpy(tmp_path):
    obj = {"acc": np.float32(0.5), "n": np.int64(3), "v": np.arange(3), "nested": {"ok": True}}
    path = atomic_write_json(tmp_path / "m.json", obj)
    assert json.loads(path.read_text()) == {"acc": 0.5, "n": 3, "v": [0, 1, 2], "nested": {"ok": True}}
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "m.json", {"bad": object()})
    assert json.loads(path.read_text())["n"] == 3  # previous version intact
    assert _siblings(tmp_path) == ["m.json"]
