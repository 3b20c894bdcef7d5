"""External merge sort and merge joins over JSON rows: the final merge in bounded memory.

A store can hold 10^7 images, so the final merge never holds all rows: rows are sorted in runs of at most
``run_rows`` in memory, each run is spilled to a temporary JSONL file, and the runs are merged with
``heapq.merge`` (stable: equal keys keep input order). Inputs that fit in one run never touch the disk.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

Row = Any
Key = Callable[[Row], Any]


def _dump(rows: list[Row], directory: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix="run.", suffix=".jsonl", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, separators=(",", ":")))
            fh.write("\n")
    return Path(name)


def _load(path: Path) -> Iterator[Row]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


def sort_rows(rows: Iterable[Row], key: Key, tmp_dir: Path, run_rows: int) -> Iterator[Row]:
    """Yield ``rows`` sorted by ``key`` (stable), holding at most ``run_rows`` rows in memory at once.

    Rows must be JSON-serialisable and must come back equal after a JSON round trip (lists, not tuples).
    Temporary run files are removed when the iterator is exhausted or closed.
    """
    tmp_dir.mkdir(parents=True, exist_ok=True)
    runs: list[Path] = []
    try:
        it = iter(rows)
        while True:
            batch = list(itertools.islice(it, run_rows))
            if not batch:
                break
            batch.sort(key=key)
            if not runs and len(batch) < run_rows:
                yield from batch  # everything fitted in memory
                return
            runs.append(_dump(batch, tmp_dir))
            del batch
        yield from heapq.merge(*(_load(p) for p in runs), key=key)
    finally:
        for p in runs:
            try:
                p.unlink()
            except OSError:
                pass


def group_by(rows: Iterable[Row], key: Key) -> Iterator[tuple[Any, list[Row]]]:
    """Consecutive rows with equal keys (the input must be sorted by ``key``)."""
    for k, grp in itertools.groupby(rows, key=key):
        yield k, list(grp)


def merge_join(left: Iterable[Row], right: Iterable[Row], lkey: Key, rkey: Key) -> Iterator[tuple[Any, list[Row], list[Row]]]:
    """Full outer join of two streams sorted by their keys: (key, left rows, right rows) per distinct key."""
    lg = group_by(left, lkey)
    rg = group_by(right, rkey)
    lcur = next(lg, None)
    rcur = next(rg, None)
    while lcur is not None or rcur is not None:
        if rcur is None or (lcur is not None and lcur[0] < rcur[0]):
            yield lcur[0], lcur[1], []  # type: ignore[index]
            lcur = next(lg, None)
        elif lcur is None or rcur[0] < lcur[0]:
            yield rcur[0], [], rcur[1]
            rcur = next(rg, None)
        else:
            yield lcur[0], lcur[1], rcur[1]
            lcur, rcur = next(lg, None), next(rg, None)
