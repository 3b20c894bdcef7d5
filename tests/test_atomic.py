import errno

import pytest

from radadapt import atomic
from radadapt.errors import DataError


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "a.json"
    atomic.write_json(target, {"b": 1, "a": 2})
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_old_content_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    atomic.write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target, "w") as fh:
            fh.write("partial")
            raise RuntimeError("crash mid-write")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_disk_full_is_a_clear_error_and_loses_nothing(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    atomic.write_text(target, "old")
    import os as _os

    real_fsync = _os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(DataError) as info:
        atomic.write_text(target, "new")
    monkeypatch.setattr(atomic.os, "fsync", real_fsync)
    assert info.value.code == "io.disk_full"
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_jsonl_roundtrip(tmp_path):
    rows = [{"i": i, "s": "é"} for i in range(5)]
    assert atomic.write_jsonl(tmp_path / "r.jsonl", rows) == 5
    assert list(atomic.read_jsonl(tmp_path / "r.jsonl")) == rows


def test_publish_dir_replaces_a_folder_whole(tmp_path):
    out = tmp_path / "export"
    out.mkdir()
    (out / "old.txt").write_text("old")
    staging = tmp_path / ".export.partial"
    staging.mkdir(mode=0o700)
    (staging / "new.txt").write_text("new")
    atomic.publish_dir(staging, out)
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert not staging.exists() and not (tmp_path / ".export.replaced").exists()
    assert out.stat().st_mode & 0o777 == 0o777 & ~atomic._umask()
