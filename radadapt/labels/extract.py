"""Streaming labelling of a report CSV (``labels extract``) or an ingest store (``labels STORE``), with workers.

Rows in = rows out: every input row (CSV) or every study (store) gets exactly one output row, in input order;
an empty or missing report gives a row of blanks (section path "empty"). Memory is bounded: rows are read,
labelled in chunks (in worker processes when ``workers > 1``, at most ``2 x workers`` chunks in flight) and written
as they come. Outputs are written through radadapt.atomic, so an interrupted run leaves the previous file intact.
Only counts reach the console; report text never does.
"""

from __future__ import annotations

import csv
import multiprocessing as mp
import os
from collections import Counter, deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Iterator

from radadapt import atomic
from radadapt.errors import DataError
from radadapt.labels.labeler import DEFAULT_MAX_CHARS, Labeler, ReportLabels
from radadapt.labels.schema import load_schema
from radadapt.labels.table import CsvTable
from radadapt.labels.text import SECTION_PATHS

CHUNK = 256
_worker: dict[str, object] = {}


def _init_worker(schema_path: str | None, max_chars: int, keep_evidence: bool) -> None:
    _worker["labeler"] = Labeler(load_schema(schema_path), max_chars=max_chars)
    _worker["evidence"] = keep_evidence


def _label_chunk(texts: list[str | None]) -> list[ReportLabels]:
    labeler: Labeler = _worker["labeler"]  # type: ignore[assignment]
    keep = bool(_worker["evidence"])
    return [labeler.label(t, keep_evidence=keep) for t in texts]


def _chunks(items: Iterable, size: int) -> Iterator[list]:
    buf: list = []
    for item in items:
        buf.append(item)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def label_texts(
    texts: Iterable[str | None],
    *,
    schema_path: str | Path | None = None,
    workers: int = 1,
    max_chars: int = DEFAULT_MAX_CHARS,
    refiner=None,
) -> Iterator[ReportLabels]:
    """Label texts in order, in ``workers`` processes; optionally refine uncertain values with a plugin."""
    path = None if schema_path is None else str(schema_path)
    keep = refiner is not None
    if workers <= 1:
        _init_worker(path, max_chars, keep)
        results: Iterator[list[ReportLabels]] = map(_label_chunk, _chunks(texts, CHUNK))
        yield from _refined(results, refiner)
        return
    load_schema(path)  # fail fast on a bad schema, and let forked workers inherit the compiled copy
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=mp.get_context(method), initializer=_init_worker,
                             initargs=(path, max_chars, keep)) as pool:
        pending: deque = deque()

        def ordered() -> Iterator[list[ReportLabels]]:
            for chunk in _chunks(texts, CHUNK):
                pending.append(pool.submit(_label_chunk, chunk))
                if len(pending) >= 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

        yield from _refined(ordered(), refiner)


def _refined(chunks: Iterator[list[ReportLabels]], refiner) -> Iterator[ReportLabels]:
    for chunk in chunks:
        if refiner is not None:
            refiner.apply(chunk)
        yield from chunk


class Tally:
    """Counts for the summary and labels.json: section paths and values per column."""

    def __init__(self, columns: list[str]):
        self.columns = columns
        self.paths: Counter = Counter({p: 0 for p in SECTION_PATHS})
        self.values = [Counter() for _ in columns]
        self.truncated = 0

    def add(self, result: ReportLabels) -> None:
        self.paths[result.section_path] += 1
        self.truncated += result.truncated
        for counter, value in zip(self.values, result.values):
            if value:
                counter[value] += 1

    def counts(self) -> dict[str, dict[str, int]]:
        return {c: dict(sorted(v.items())) for c, v in zip(self.columns, self.values)}


def label_csv(
    reports: str | Path,
    out: str | Path,
    *,
    text_column: str = "report_text",
    id_column: str | None = None,
    schema_path: str | Path | None = None,
    workers: int = 1,
    encoding: str = "utf-8",
    bad_bytes: str = "error",
    max_chars: int = DEFAULT_MAX_CHARS,
    with_section_path: bool = False,
    refiner=None,
    on_row: Callable[[], None] | None = None,
) -> dict:
    """Label every row of ``reports`` into ``out`` (id column first, then the schema's columns)."""
    schema = load_schema(schema_path)
    table = CsvTable(reports, encoding=encoding, bad_bytes=bad_bytes)
    t_idx = table.column(text_column, "text column")
    i_idx = table.column(id_column, "id column") if id_column else None
    id_name = table.header[i_idx] if i_idx is not None else "row"
    ids: deque = deque()
    empty = Counter()

    def texts() -> Iterator[str]:
        for n, row in enumerate(table.rows(), start=1):
            ids.append(row[i_idx] if i_idx is not None else str(n))
            text = row[t_idx]
            empty["empty"] += not text.strip()
            yield text

    tally = Tally(schema.columns)
    header = [id_name, *schema.columns] + (["section_path"] if with_section_path else [])
    n = 0
    with atomic.atomic_open(out, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        for result in label_texts(texts(), schema_path=schema_path, workers=workers, max_chars=max_chars,
                                  refiner=refiner):
            row = [ids.popleft(), *result.values]
            if with_section_path:
                row.append(result.section_path)
            writer.writerow(row)
            tally.add(result)
            n += 1
            if on_row is not None:
                on_row()
    st = table.stats
    if n != st.rows:  # the contract; cannot happen unless a bug slips in
        raise DataError("labels.row_mismatch", f"{n} rows written for {st.rows} read; output is not trustworthy")
    return {
        "input": str(reports), "output": str(out), "rows_in": st.rows, "rows_out": n,
        "empty_reports": empty["empty"], "short_rows": st.short_rows, "long_rows": st.long_rows,
        "replaced_lines": st.replaced_lines, "replaced_line_numbers": st.replaced_line_numbers,
        "truncated_reports": tally.truncated, "section_paths": dict(tally.paths), "counts": tally.counts(),
        "schema": schema.name, "schema_sha256": schema.sha256, "columns": len(schema.columns),
    }


def _studies(store) -> Iterator[tuple[str, str | None, int]]:
    """(study_key, report text, number of differing texts) per study, from the sorted manifest, one pass."""
    key: tuple[str, str] | None = None
    text: str | None = None
    variants = 0
    for rec in store.records():
        k = (rec.patient_key, rec.study_key)
        if key is not None and k != key:
            if k < key:
                raise DataError("labels.manifest_unsorted",
                                "manifest.jsonl is not sorted by patient and study, so studies cannot be streamed",
                                hint="rerun `radadapt ingest` with this radadapt version (it writes a sorted manifest)")
            yield key[1], text, variants
            text, variants = None, 0
        key = k
        if rec.report_text and rec.report_text.strip():
            if text is None:
                text = rec.report_text
            elif rec.report_text != text:
                variants += 1
    if key is not None:
        yield key[1], text, variants


def label_store(
    store_path: str | Path,
    *,
    schema_path: str | Path | None = None,
    workers: int = 1,
    max_chars: int = DEFAULT_MAX_CHARS,
    refiner=None,
    on_row: Callable[[], None] | None = None,
) -> dict:
    """Write STORE/labels.csv (study_key + columns, one row per study) and STORE/labels.json (LabelsInfo)."""
    from radadapt import __version__
    from radadapt.manifest import LabelsInfo, Store

    store = Store(store_path)
    schema = load_schema(schema_path)
    keys: deque = deque()
    seen = Counter()

    def texts() -> Iterator[str | None]:
        for study_key, text, variants in _studies(store):
            keys.append(study_key)
            seen["studies"] += 1
            seen["with_report"] += text is not None
            seen["conflicting"] += variants > 0
            yield text

    tally = Tally(schema.columns)
    info_path = store.path / "labels.json"
    if info_path.exists():
        os.unlink(info_path)  # never leave an old labels.json describing a new labels.csv
    with atomic.atomic_open(store.labels_csv, "w") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["study_key", *schema.columns])
        for result in label_texts(texts(), schema_path=schema_path, workers=workers, max_chars=max_chars,
                                  refiner=refiner):
            writer.writerow([keys.popleft(), *result.values])
            tally.add(result)
            if on_row is not None:
                on_row()
    info = LabelsInfo(
        findings=schema.findings, devices=schema.devices, device_positions=schema.position_columns,
        n_reports=seen["with_report"], schema_sha256=schema.sha256,
        n_studies=seen["studies"], n_without_report=seen["studies"] - seen["with_report"],
        n_conflicting_reports=seen["conflicting"], n_truncated=tally.truncated,
        section_paths=dict(tally.paths), counts=tally.counts(), schema_name=schema.name,
        labeler="rules+plugin" if refiner is not None else "rules", radadapt_version=__version__,
        values={"findings": ["1", "0", "-1", ""], "devices": ["present", "removed", "uncertain", "absent", ""],
                "device_positions": ["ok", "malpositioned", "unknown", ""]},
    )
    atomic.write_json(info_path, info.model_dump(mode="json"))
    return {"store": str(store.path), "labels_csv": str(store.labels_csv), "labels_json": str(info_path),
            "studies": seen["studies"], "with_report": seen["with_report"],
            "without_report": seen["studies"] - seen["with_report"], "conflicting_reports": seen["conflicting"],
            "truncated_reports": tally.truncated, "section_paths": dict(tally.paths), "counts": tally.counts(),
            "schema": schema.name, "schema_sha256": schema.sha256}
