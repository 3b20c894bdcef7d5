"""The report export (CSV): validated before any image work starts, then streamed row by row.

A RIS export is a CSV with one row per report (addenda may repeat an accession; their texts are joined in file
order). The accession and report columns are required, the patient and date columns optional. The file must be
UTF-8 (a BOM is accepted): a legacy encoding cannot be detected reliably, so ingest stops and says so rather than
guessing and corrupting names it must later scrub. Errors name the file and the columns found, never a value.
"""

from __future__ import annotations

import csv
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from radadapt.errors import DataError, UsageError

MAX_FIELD = 16 * 1024 * 1024  # one report can be long; csv's default limit (128 KiB) would reject it


@dataclass(frozen=True)
class ReportColumns:
    accession: str = "accession_number"
    report: str = "report_text"
    patient: str = "patient_id"
    date: str = "study_date"


@dataclass(frozen=True)
class ReportRow:
    row: int  # 1-based data row number (file order)
    accession: str
    text: str
    patient_id: str
    date: str


@dataclass(frozen=True)
class ReportsInfo:
    path: Path
    rows: int
    has_patient: bool
    has_date: bool
    signature: str  # size and mtime: a changed export triggers a new final merge


def _open(path: Path):
    csv.field_size_limit(min(MAX_FIELD, sys.maxsize))
    return open(path, encoding="utf-8-sig", errors="strict", newline="")


def check_reports(path: Path, cols: ReportColumns) -> ReportsInfo:
    """Read the whole file once: it exists, is UTF-8, parses as CSV and has the required columns."""
    if not path.is_file():
        raise UsageError(
            "ingest.reports_missing",
            f"report file not found: {path}",
            hint="pass the RIS export with --reports FILE.csv (columns: accession number and report text)",
        )
    line = 1
    try:
        with _open(path) as fh:
            reader = csv.reader(fh, strict=True)
            header = next(reader, None)
            if header is None:
                raise DataError("ingest.reports_columns", f"{path} is empty (no header row)",
                                hint=f"the first row must name the columns, e.g. {cols.accession},{cols.report}")
            names = [h.strip() for h in header]
            missing = [c for c in (cols.accession, cols.report) if c not in names]
            if missing:
                found = ", ".join(repr(n[:40]) for n in names[:20]) + (" ..." if len(names) > 20 else "")
                raise DataError(
                    "ingest.reports_columns",
                    f"{path} has no column {' or '.join(repr(m) for m in missing)}; columns found: {found}",
                    hint="name the columns with --accession-column / --report-column (or [ingest] in the config)",
                )
            rows = 0
            for line, _ in enumerate(reader, start=2):
                rows += 1
    except UnicodeDecodeError:
        raise DataError(
            "ingest.reports_encoding",
            f"{path} is not UTF-8 (first invalid byte on line {_first_bad_line(path)}); its original encoding "
            "cannot be detected reliably",
            hint=f"convert it with the encoding your RIS uses, e.g. iconv -f WINDOWS-1252 -t UTF-8 {path} > reports.utf8.csv",
        ) from None
    except csv.Error as exc:
        raise DataError("ingest.reports_format", f"{path} is not a readable CSV near line {line} ({type(exc).__name__})",
                        hint="check the quoting of that line; report text with line breaks must be quoted") from None
    st = os.stat(path)
    return ReportsInfo(path, rows, cols.patient in names, cols.date in names, f"{st.st_size}:{st.st_mtime_ns}")


def _first_bad_line(path: Path) -> int:
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def iter_reports(path: Path, cols: ReportColumns) -> Iterator[ReportRow]:
    """Stream report rows (after ``check_reports``)."""
    with _open(path) as fh:
        reader = csv.DictReader(fh, strict=True)
        reader.fieldnames = [h.strip() for h in (reader.fieldnames or [])]
        for i, row in enumerate(reader, start=1):
            yield ReportRow(
                row=i,
                accession=(row.get(cols.accession) or "").strip(),
                text=(row.get(cols.report) or "").strip(),
                patient_id=(row.get(cols.patient) or "").strip(),
                date=(row.get(cols.date) or "").strip(),
            )
