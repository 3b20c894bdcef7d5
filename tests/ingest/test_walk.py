"""The archive walk and content-defined chunks."""

from __future__ import annotations

import os

import pytest

from radadapt.ingest.walk import chunk_id, chunked, walk
from radadapt.sitekey import SiteKey

KEY = SiteKey(b"\x03" * 32)


def make_tree(root):
    for rel in ("b/2", "b/10", "a/x", "a/y/z", "top", "c d/\u00e9.dcm"):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * len(rel))


def test_walk_is_sorted_and_counts_links_and_special_files(tmp_path):
    make_tree(tmp_path)
    os.symlink(tmp_path / "top", tmp_path / "link")
    os.symlink(tmp_path, tmp_path / "a" / "loop")  # a link to a folder is not followed
    os.mkfifo(tmp_path / "fifo")
    entries = list(walk(tmp_path))
    assert [e.relpath for e in entries] == [
        "a/loop", "a/x", "a/y/z", "b/10", "b/2", "c d/\u00e9.dcm", "fifo", "link", "top"]
    kinds = {e.relpath: e.kind for e in entries}
    assert kinds["link"] == kinds["a/loop"] == "symlink" and kinds["fifo"] == "special" and kinds["top"] == "file"


def test_unreadable_folder_is_one_entry_and_excluded_folders_are_skipped(tmp_path, monkeypatch):
    make_tree(tmp_path)
    real = os.scandir

    def scandir(path):
        if str(path).endswith("/b"):
            raise PermissionError(13, "denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    entries = list(walk(tmp_path, exclude=(tmp_path / "a",)))
    assert [(e.relpath, e.kind) for e in entries] == [("b", "unreadable"), ("c d/\u00e9.dcm", "file"), ("top", "file")]


def test_root_that_cannot_be_listed_raises(tmp_path):
    with pytest.raises(OSError):
        list(walk(tmp_path / "missing"))


def test_chunks_are_content_defined(tmp_path):
    for i in range(300):
        (tmp_path / f"f{i:04d}").write_bytes(b"1")
    before = [[e.relpath for e in c] for c in chunked(walk(tmp_path), KEY, 16)]
    assert sum(map(len, before)) == 300 and max(map(len, before)) <= 64 and len(before) > 5
    (tmp_path / "f0150x").write_bytes(b"1")  # one new file in the middle of the archive
    after = [[e.relpath for e in c] for c in chunked(walk(tmp_path), KEY, 16)]
    changed = [c for c in after if c not in before]
    assert len(changed) == 1 and "f0150x" in changed[0]
    assert list(chunked(walk(tmp_path), KEY, 1)) and all(len(c) == 1 for c in chunked(walk(tmp_path), KEY, 1))


def test_chunk_id_depends_on_size_mtime_and_settings(tmp_path):
    (tmp_path / "a").write_bytes(b"1")
    chunk = list(walk(tmp_path))
    a = chunk_id(KEY, "s1", chunk)
    assert a == chunk_id(KEY, "s1", list(walk(tmp_path))) != chunk_id(KEY, "s2", chunk)
    (tmp_path / "a").write_bytes(b"22")
    assert chunk_id(KEY, "s1", list(walk(tmp_path))) != a
