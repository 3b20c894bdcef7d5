"""Atomic, durable file writes.

A reader either sees the old file or the complete new one, never a torn write: data goes to a temporary file in
the same directory, is flushed and fsync'ed, then renamed over the target (rename is atomic on POSIX within a
filesystem), and the directory is fsync'ed so the rename survives a power cut. ENOSPC and friends surface as a
``DataError`` naming the target's directory, with the temporary file removed, so a full disk loses nothing.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

from radadapt.errors import DataError


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not allow opening directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, perms: int | None = None) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; on clean exit it replaces ``path`` atomically.

    ``perms`` (e.g. 0o600) is applied before any byte is written, so secrets are never world-readable.
    """
    if "w" not in mode:
        raise ValueError("atomic_open is for writing")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        # mkstemp creates 0600; ordinary outputs get the usual umask-derived mode, secrets the mode asked for.
        os.fchmod(fd, perms if perms is not None else 0o666 & ~_umask())
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline=None if "b" in mode else "") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except OSError as exc:
        _remove_quietly(tmp)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise DataError(
                "io.disk_full",
                f"no space left while writing to {target.parent}; nothing was lost, free space and rerun",
            ) from None
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise DataError("io.not_writable", f"cannot write to {target.parent} (permission denied)") from None
        raise
    except BaseException:
        _remove_quietly(tmp)
        raise


def publish_dir(staging: str | os.PathLike, out: str | os.PathLike, *, old_suffix: str = "replaced") -> None:
    """Move a finished staging folder to ``out`` (same filesystem), replacing an earlier ``out`` if present.

    Readers see the old folder or the new one, never a mix: the old one is first renamed aside to the hidden
    ``.<name>.<old_suffix>`` (removed afterwards; a crash in between leaves it for the caller's clean-up). The
    folder gets the mode a plain ``mkdir`` would give, since ``tempfile.mkdtemp`` makes it 0700.
    """
    import shutil

    staging, out = Path(staging), Path(out)
    os.chmod(staging, 0o777 & ~_umask())
    if out.is_dir():
        old = out.parent / f".{out.name}.{old_suffix}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, out)
    _fsync_dir(out.parent)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def write_bytes(path: str | os.PathLike, data: bytes, *, perms: int | None = None) -> None:
    with atomic_open(path, "wb", perms=perms) as fh:
        fh.write(data)


def write_text(path: str | os.PathLike, text: str, *, perms: int | None = None) -> None:
    with atomic_open(path, "w", perms=perms) as fh:
        fh.write(text)


def write_json(path: str | os.PathLike, obj: Any, *, perms: int | None = None) -> None:
    """Write ``obj`` as pretty, key-sorted JSON (stable bytes for stable inputs)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n", perms=perms)


def write_jsonl(path: str | os.PathLike, rows: Any, *, perms: int | None = None) -> int:
    """Write an iterable of JSON-able rows, one per line; returns the number of rows written."""
    n = 0
    with atomic_open(path, "w", perms=perms) as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Stream rows of a JSONL file (bounded memory)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)
