"""Reading the CSV files the labels stage is given (reports, predictions, gold labels), safely.

* Bytes are decoded line by line, so a non-UTF-8 byte is reported with its line number
  (``labels.bad_encoding``); ``bad_bytes="replace"`` instead substitutes U+FFFD and counts the affected lines.
  A UTF-8 byte-order mark is dropped. Other encodings (``latin-1``, ``cp1252``) can be named.
* Fields of any size are accepted (the csv module's 128 KiB default would reject a long report).
* A missing column is reported with the columns that were found; an empty file has no header and is an error.
* Short rows (fewer fields than the header) read as blanks and are counted; nothing is dropped.
Messages name the file and line, never a cell's content (cells can hold report text).
"""

from __future__ import annotations

import codecs
import csv
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from radadapt.errors import DataError, UsageError

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))

BAD_BYTES = ("error", "replace")
_ENCODING_HINT = "re-export the file as UTF-8, name its encoding with --encoding (e.g. cp1252), or --on-bad-bytes replace"


def _looks_like_name(cell: str) -> bool:
    """Column names are short labels; a sentence-like first line is data and must not be echoed."""
    return len(cell) <= 40 and len(cell.split()) <= 4 and not any(c in cell for c in ".;:?!")


@dataclass
class ReadStats:
    rows: int = 0
    short_rows: int = 0
    long_rows: int = 0
    replaced_lines: int = 0  # lines with undecodable bytes (bad_bytes="replace")
    replaced_line_numbers: list[int] = field(default_factory=list)  # first few, for the summary


class CsvTable:
    """A CSV file opened for streaming: ``header`` and ``rows()`` (lists of strings, padded to the header)."""

    def __init__(self, path: str | Path, *, encoding: str = "utf-8", bad_bytes: str = "error"):
        self.path = Path(path)
        if bad_bytes not in BAD_BYTES:
            raise UsageError("labels.bad_option", f"--on-bad-bytes must be one of {', '.join(BAD_BYTES)}")
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise UsageError("labels.bad_option", f"unknown encoding '{encoding}'",
                             hint="use a Python codec name such as utf-8, cp1252 or latin-1") from None
        if not self.path.is_file():
            raise UsageError("labels.input_missing", f"input file not found: {self.path}")
        self.encoding = encoding
        self.bad_bytes = bad_bytes
        self.stats = ReadStats()
        self._fh = open(self.path, "rb")
        # strict: an unclosed quote is an error, not a field that silently swallows every following row.
        self._reader = csv.reader(self._lines(), strict=True)
        try:
            header = next(self._reader, None)
        except csv.Error as exc:
            self.close()
            raise self._csv_error(exc) from None
        if header is None or not any(h.strip() for h in header):
            self.close()
            raise DataError("labels.empty_input", f"{self.path} is empty (no header row)",
                            hint="the first line must name the columns, e.g. accession_number,report_text")
        self.header = [h.strip() for h in header]

    def _lines(self) -> Iterator[str]:
        decoder_errors = "strict" if self.bad_bytes == "error" else "replace"
        for n, raw in enumerate(self._fh, start=1):
            if n == 1 and raw.startswith(codecs.BOM_UTF8) and self.encoding.replace("-", "").lower().startswith("utf8"):
                raw = raw[len(codecs.BOM_UTF8) :]
            try:
                yield raw.decode(self.encoding)
            except UnicodeDecodeError as exc:
                if decoder_errors == "strict":
                    raise DataError(
                        "labels.bad_encoding",
                        f"{self.path}: line {n} is not valid {self.encoding} (byte {exc.start + 1} of the line)",
                        hint=_ENCODING_HINT,
                    ) from None
                self.stats.replaced_lines += 1
                if len(self.stats.replaced_line_numbers) < 10:
                    self.stats.replaced_line_numbers.append(n)
                yield raw.decode(self.encoding, errors="replace")

    def _csv_error(self, exc: csv.Error) -> DataError:
        return DataError("labels.bad_csv", f"{self.path}: malformed CSV near line {self._reader.line_num}",
                         hint="check quoting around that line (a report with an unclosed quote swallows the rest)")

    def column(self, name: str, what: str = "column") -> int:
        """Index of ``name`` (exact, then case-insensitive); a clear error listing the columns found."""
        if self.header.count(name) > 1:
            raise DataError("labels.duplicate_column", f"{self.path}: {what} '{name}' appears more than once")
        if name in self.header:
            return self.header.index(name)
        folded = [h.lower() for h in self.header]
        if folded.count(name.lower()) == 1:
            return folded.index(name.lower())
        if all(_looks_like_name(h) for h in self.header):
            found = "columns found: " + ", ".join(repr(h) for h in self.header[:30])
            found += " ..." if len(self.header) > 30 else ""
        else:  # a file without a header row: its first line is data (maybe report text), so it is not echoed
            found = "the first line does not look like a header row (its cells are not shown)"
        raise DataError("labels.missing_column", f"{self.path}: no {what} '{name}'; {found}",
                        hint="name the right column with --text-column / --id-column (or --map for eval); "
                             "the first line must name the columns")

    def rows(self) -> Iterator[list[str]]:
        width = len(self.header)
        try:
            for row in self._reader:
                if not row:
                    continue  # a blank line between records
                self.stats.rows += 1
                if len(row) < width:
                    self.stats.short_rows += 1
                    row = row + [""] * (width - len(row))
                elif len(row) > width:
                    self.stats.long_rows += 1
                yield row
        except csv.Error as exc:
            raise self._csv_error(exc) from None
        finally:
            self.close()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "CsvTable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
