"""The private audit: the only record that maps file keys back to archive paths, and identifier fingerprints.

It lives in the site's private directory (mode 0700; files 0600), never in the store, and nothing exports it.
Two files per store, named with the store id (format in docs/store_format.md, "Private audit"):

* ``<store_id>.audit.jsonl``: a header line, then one row per archive entry in walk order:
  ``{"file_key", "path", "state", "reason", "detail"}`` (``detail``: an exception type or a missing package);
* ``<store_id>.identifiers.txt``: sorted, unique, fixed-width lines ``<32 hex fingerprint> <kind padded to 8>``
  for every identifier token and phrase seen in any header, so ``radadapt export`` can test words of an export
  against them by binary search without anyone storing an identifier in clear.

While an ingest runs, each chunk writes its own part under ``ingest-work/`` in the private directory; the final
merge concatenates them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator

from radadapt import atomic
from radadapt.errors import PrivacyError

AUDIT_FORMAT = "radadapt-audit"
AUDIT_VERSION = 1
KIND_WIDTH = 8
EXPORTED_KINDS = ("name", "namepart", "id", "place", "phone", "email")  # "start" rows only serve the scrubber


def ensure_private_dir(path: Path) -> Path:
    """Create the private directory (0700) or refuse one that other users can read."""
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        os.chmod(path, 0o700)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PrivacyError(
            "ingest.private_dir_open",
            f"the private directory {path} is readable by other users (mode {mode:o}); it will hold the audit",
            hint=f"run: chmod 700 {path}",
        )
    return path


def write_private_jsonl(path: Path, rows: Iterable[Any]) -> int:
    """JSONL, 0600, ASCII-escaped (archive paths may hold bytes that are not UTF-8)."""
    n = 0
    with atomic.atomic_open(path, "w", perms=0o600) as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":"), sort_keys=isinstance(row, dict)))
            fh.write("\n")
            n += 1
    return n


def read_jsonl(path: Path) -> Iterator[Any]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def audit_path(private: Path, store_id: str) -> Path:
    return private / f"{store_id}.audit.jsonl"


def identifiers_path(private: Path, store_id: str) -> Path:
    return private / f"{store_id}.identifiers.txt"


def write_identifiers(private: Path, store_id: str, rows: Iterable[list], tmp_dir: Path, run_rows: int) -> tuple[Path, int]:
    """Sorted, unique, fixed-width lines from ``[patient, fp, kind, n]`` rows (external sort, bounded memory)."""
    from radadapt.ingest.extsort import sort_rows

    lines = (f"{fp} {kind:<{KIND_WIDTH}}\n" for _patient, fp, kind, _n in rows if kind in EXPORTED_KINDS)
    path = identifiers_path(private, store_id)
    n = 0
    with atomic.atomic_open(path, "w", perms=0o600) as fh:
        last = None
        for line in sort_rows(lines, key=lambda s: s, tmp_dir=tmp_dir, run_rows=run_rows):
            if line != last:
                fh.write(line)
                n += 1
                last = line
    return path, n


def contains(identifiers_file: Path, fp: str) -> bool:
    """Binary search of the fixed-width identifiers file (what ``radadapt export`` does, shown for reference)."""
    width = 32 + 1 + KIND_WIDTH + 1
    size = identifiers_file.stat().st_size
    lo, hi = 0, size // width
    with open(identifiers_file, "rb") as fh:
        while lo < hi:
            mid = (lo + hi) // 2
            fh.seek(mid * width)
            cur = fh.read(32).decode("ascii")
            if cur < fp:
                lo = mid + 1
            else:
                hi = mid
        if lo < size // width:
            fh.seek(lo * width)
            return fh.read(32).decode("ascii") == fp
    return False
