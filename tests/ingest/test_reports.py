"""The report CSV: checked before any image work, with one clear error per problem."""

from __future__ import annotations

import pytest

from radadapt.errors import DataError, UsageError
from radadapt.ingest.reports import ReportColumns, check_reports, iter_reports

COLS = ReportColumns()


def test_valid_csv_with_bom_multiline_and_optional_columns(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text('\ufeffaccession_number,report_text,patient_id\nA1,"line one\nline two",P1\n,empty accession,P2\n',
                    encoding="utf-8")
    info = check_reports(path, COLS)
    assert info.rows == 2 and info.has_patient and not info.has_date
    rows = list(iter_reports(path, COLS))
    assert rows[0].accession == "A1" and rows[0].text == "line one\nline two" and rows[0].patient_id == "P1"
    assert rows[1].accession == ""


def test_missing_file(tmp_path):
    with pytest.raises(UsageError) as info:
        check_reports(tmp_path / "nope.csv", COLS)
    assert info.value.code == "ingest.reports_missing"


def test_wrong_columns_lists_what_was_found(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("ACC,TEXT,MRN\nA1,hello,123\n")
    with pytest.raises(DataError) as info:
        check_reports(path, COLS)
    assert info.value.code == "ingest.reports_columns"
    assert "'ACC', 'TEXT', 'MRN'" in info.value.message and "accession_number" in info.value.message
    assert "123" not in info.value.message and "hello" not in info.value.message  # values never appear
    ok = ReportColumns(accession="ACC", report="TEXT")
    assert check_reports(path, ok).rows == 1


def test_non_utf8_says_so_and_suggests_iconv(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("accession_number,report_text\nA1,Befund: Erguss links, M\u00fcller\n".encode("latin-1"))
    with pytest.raises(DataError) as info:
        check_reports(path, COLS)
    assert info.value.code == "ingest.reports_encoding"
    assert "not UTF-8" in info.value.message and "line 2" in info.value.message
    assert "iconv" in info.value.hint and "M\u00fcller" not in info.value.message


def test_empty_and_broken_csv(tmp_path):
    empty = tmp_path / "e.csv"
    empty.write_text("")
    with pytest.raises(DataError) as info:
        check_reports(empty, COLS)
    assert info.value.code == "ingest.reports_columns"
    nul = tmp_path / "n.csv"
    nul.write_bytes(b"accession_number,report_text\nA1,\"unterminated\x00\n")
    with pytest.raises(DataError) as info:
        check_reports(nul, COLS)
    assert info.value.code == "ingest.reports_format"
