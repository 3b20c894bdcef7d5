"""Writes the store: image shards, device masks, per-chunk results and the final files, each atomically.

Layout (docs/store_format.md): ``images/<shard>.u8`` holds one chunk's kept images as raw uint8, row-major,
concatenated; ``.work/chunks/<chunk id>.jsonl`` holds a chunk's results (keys and states, no paths) and is
written last, so its presence means the chunk is committed. A crash at any moment leaves either a committed chunk
or no trace of it (temporary files are removed or ignored), which is what makes resume exact.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import numpy as np

from radadapt import atomic

WORK_DIR = ".work"


def chunk_results_path(store: Path, chunk: str) -> Path:
    return store / WORK_DIR / "chunks" / f"{chunk}.jsonl"


def shard_name(chunk: str) -> str:
    return chunk[:16]


class ShardWriter:
    """Appends images to one shard file, opened lazily (a chunk without kept images writes no shard)."""

    def __init__(self, store: Path, name: str):
        self.name = name
        self.path = store / "images" / f"{name}.u8"
        self._stack = contextlib.ExitStack()
        self._fh: IO[bytes] | None = None
        self.offset = 0

    def add(self, image: np.ndarray) -> int:
        if self._fh is None:
            self._fh = self._stack.enter_context(atomic.atomic_open(self.path, "wb"))
        offset = self.offset
        data = np.ascontiguousarray(image, dtype=np.uint8)
        self._fh.write(data.data)
        self.offset += data.size
        return offset

    def commit(self) -> str | None:
        """Flush, fsync and rename into place; returns the shard name, or None if nothing was added."""
        if self._fh is None:
            return None
        self._stack.close()  # atomic_open's clean exit renames the temporary file over the target
        return self.name

    def abort(self) -> None:
        if self._fh is not None:
            self._stack.__exit__(RuntimeError, RuntimeError("aborted"), None)
            self._fh = None


def write_mask(store: Path, image_key: str, device: str, mask: np.ndarray) -> str:
    """One device mask as a 0/255 PNG at the image's store geometry; returns its path relative to masks/."""
    from PIL import Image

    rel = f"{image_key}__{device}.png"
    with atomic.atomic_open(store / "masks" / rel, "wb") as fh:
        Image.fromarray(mask).save(fh, format="PNG", optimize=False)
    return rel


def write_chunk_results(store: Path, chunk: str, header: dict, rows: Iterable[dict]) -> None:
    atomic.write_jsonl(chunk_results_path(store, chunk), [header, *rows])


def read_chunk_results(store: Path, chunk: str) -> tuple[dict, Iterator[dict]]:
    path = chunk_results_path(store, chunk)
    fh = open(path, encoding="utf-8")
    header = json.loads(fh.readline())

    def rows() -> Iterator[dict]:
        with fh:
            for line in fh:
                if line.strip():
                    yield json.loads(line)

    return header, rows()


def chunk_committed(store: Path, chunk: str) -> bool:
    """The results file exists and its shard (if it has one) is complete."""
    path = chunk_results_path(store, chunk)
    if not path.is_file():
        return False
    try:
        with open(path, encoding="utf-8") as fh:
            header = json.loads(fh.readline())
    except (OSError, ValueError):
        return False
    shard = header.get("shard")
    if shard is None:
        return True
    shard_path = store / "images" / f"{shard}.u8"
    return shard_path.is_file() and shard_path.stat().st_size == header.get("shard_bytes")


def write_rows(path: Path, rows: Iterable[Any]) -> int:
    """JSONL with compact, key-sorted rows (stable bytes for stable inputs), atomically."""
    return atomic.write_jsonl(path, rows)


def remove_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
