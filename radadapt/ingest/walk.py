"""The archive walk: every entry under ARCHIVE, in a fixed order, with the fingerprint resume relies on.

Every regular file is considered whatever its name or extension (PACS exports use ``IM000001``, ``1.2.840...``,
``.dcm`` or no extension at all). Symbolic links are never followed (they could point outside the archive or
make a file count twice) and count as one ``symlink`` entry; FIFOs, sockets and devices count as
``special_file``; a folder that cannot be listed counts as one ``read_error`` entry, because what it holds is
unknown. Entries stream out sorted by path component, so a folder of 10^6 files costs one sorted listing, not
the whole archive in memory.

Chunks are content-defined: a chunk ends after an entry whose keyed path hash is 0 modulo ``chunk_files`` (or
when it reaches 4 x ``chunk_files`` entries). A file added to a growing archive therefore changes one chunk, not
every chunk after it, and an unchanged archive gives the same chunks, so a rerun skips them all.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from radadapt.sitekey import SiteKey

MAX_CHUNK_FACTOR = 4


@dataclass(frozen=True)
class Entry:
    relpath: str  # POSIX separators, relative to the archive root; PHI-bearing: only the private audit keeps it
    kind: str  # file | symlink | special | unreadable
    size: int
    mtime_ns: int

    def as_list(self) -> list:
        return [self.relpath, self.kind, self.size, self.mtime_ns]

    @classmethod
    def from_list(cls, row: list) -> "Entry":
        return cls(row[0], row[1], int(row[2]), int(row[3]))

    def signature(self) -> str:
        return f"{self.relpath}\x00{self.kind}\x00{self.size}\x00{self.mtime_ns}"


def walk(root: Path, exclude: tuple[Path, ...] = ()) -> Iterator[Entry]:
    """Depth-first, names sorted at each level; never raises for what lies below ``root``."""
    skip = {os.path.realpath(p) for p in exclude}
    stack: list[tuple[str, Iterator[os.DirEntry]]] = []

    def listing(path: str) -> Iterator[os.DirEntry] | None:
        try:
            with os.scandir(path) as it:
                return iter(sorted(it, key=lambda e: e.name))
        except OSError:
            return None

    top = listing(str(root))
    if top is None:
        raise OSError(f"cannot list {root}")
    stack.append(("", top))
    while stack:
        prefix, it = stack[-1]
        entry = next(it, None)
        if entry is None:
            stack.pop()
            continue
        rel = f"{prefix}{entry.name}"
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            yield Entry(rel, "unreadable", 0, 0)
            continue
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            yield Entry(rel, "symlink", 0, st.st_mtime_ns)
        elif stat.S_ISDIR(mode):
            if os.path.realpath(entry.path) in skip:
                continue
            children = listing(entry.path)
            if children is None:
                yield Entry(rel, "unreadable", 0, st.st_mtime_ns)
            else:
                stack.append((rel + "/", children))
        elif stat.S_ISREG(mode):
            yield Entry(rel, "file", st.st_size, st.st_mtime_ns)
        else:
            yield Entry(rel, "special", 0, st.st_mtime_ns)


def chunked(entries: Iterator[Entry], key: SiteKey, chunk_files: int) -> Iterator[list[Entry]]:
    """Content-defined chunks of the sorted entries (see the module docstring)."""
    cap = MAX_CHUNK_FACTOR * chunk_files
    chunk: list[Entry] = []
    for entry in entries:
        chunk.append(entry)
        boundary = int.from_bytes(key.digest("chunk-boundary", entry.relpath)[:8], "big") % chunk_files == 0
        if boundary or len(chunk) >= cap:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def chunk_id(key: SiteKey, settings_hash: str, chunk: list[Entry]) -> str:
    """Keyed id of a chunk's inputs and the per-file settings: same files + same settings = same id."""
    return key.digest("chunk", settings_hash, *(e.signature() for e in chunk)).hex()[:32]
