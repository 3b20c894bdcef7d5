"""`labels extract` and `labels STORE`: rows in = rows out, bad input, workers, the store format."""

from __future__ import annotations

import csv
import json

import pytest

from conftest import write_store


def _read(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(path, rows, header=("accession", "report_text")):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def test_rows_in_equal_rows_out_with_ids_blanks_and_awkward_rows(cli, tmp_path):
    src = tmp_path / "reports.csv"
    _write(src, [
        ["A1", "Small left pleural effusion."],
        ["A1", "Duplicate id: carried through, not merged. No effusion."],
        ["A3", ""],  # empty report -> all blank
        ["A4", "FINDINGS: multi-line report,\nquoted, with a comma.\nETT 4 cm above the carina."],
        ["A5"],  # short row -> blank text
        ["A6", "x" * 300_000 + " pneumothorax"],  # longer than max_report_chars: cut, counted
    ])
    out = tmp_path / "labels.csv"
    res = cli("labels", "extract", src, "--out", out, "--id-column", "accession", "--workers", "1", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    rows = _read(out)
    assert summary["rows_in"] == summary["rows_out"] == len(rows) == 6
    assert [r["accession"] for r in rows] == ["A1", "A1", "A3", "A4", "A5", "A6"]
    assert list(rows[0])[0] == "accession" and rows[0]["Pleural Effusion"] == "1" and rows[1]["Pleural Effusion"] == "0"
    assert all(v == "" for k, v in rows[2].items() if k != "accession")
    assert rows[3]["endotracheal tube position"] == "ok"
    assert summary["empty_reports"] == 2 and summary["short_rows"] == 1 and summary["truncated_reports"] == 1
    assert summary["section_paths"] == {"sections": 1, "body": 0, "whole_text": 3, "empty": 2}
    assert summary["counts"]["Pleural Effusion"] == {"0": 1, "1": 1}
    # No report text on the console, only counts.
    assert "Small left" not in res.stdout + res.stderr


def test_default_id_is_the_row_number_and_section_path_column(cli, tmp_path):
    src = _write(tmp_path / "r.csv", [["x", "INDICATION: cough.\nFINDINGS: Clear."], ["y", "Clear."]])
    out = tmp_path / "o.csv"
    assert cli("labels", "extract", src, "--out", out, "--section-path-column", "--workers", "1").exit_code == 0
    rows = _read(out)
    assert [r["row"] for r in rows] == ["1", "2"] and [r["section_path"] for r in rows] == ["sections", "whole_text"]


def test_two_workers_give_the_same_rows_in_the_same_order(cli, tmp_path):
    texts = ["No pneumothorax.", "ETT 1 cm above the carina.", "", "Possible pneumonia.", "Heart enlarged."]
    src = _write(tmp_path / "r.csv", [[f"id{i}", texts[i % 5]] for i in range(700)])  # several chunks of 256
    outs = []
    for n in ("1", "2"):
        out = tmp_path / f"o{n}.csv"
        res = cli("labels", "extract", src, "--out", out, "--id-column", "accession", "--workers", n)
        assert res.exit_code == 0, res.output
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert [r["accession"] for r in _read(tmp_path / "o2.csv")] == [f"id{i}" for i in range(700)]


@pytest.mark.parametrize(
    "content, args, code, needle",
    [
        (b"", [], "labels.empty_input", "is empty (no header row)"),
        (b"\n\n", [], "labels.empty_input", "is empty"),
        (b"accession,text\nA1,No effusion.\n", [], "labels.missing_column", "columns found: 'accession', 'text'"),
        (b"accession,report_text\nA1,fine\nA2,caf\xe9 au lait\n", [], "labels.bad_encoding", "line 3 is not valid utf-8"),
        (b'accession,report_text\nA1,"unclosed quote\nA2,more\n', [], "labels.bad_csv", "malformed CSV near line"),
        (b"accession,report_text\nA1,x\n", ["--id-column", "acc"], "labels.missing_column", "no id column 'acc'"),
        (b"accession,report_text\nA1,x\n", ["--on-bad-bytes", "ignore"], "labels.bad_option", "--on-bad-bytes"),
        (b"A1,Small left pleural effusion. No pneumothorax.\n", [], "labels.missing_column",
         "does not look like a header row"),
    ],
)
def test_bad_input_is_one_clear_line_and_writes_nothing(cli, tmp_path, content, args, code, needle):
    src = tmp_path / "in.csv"
    src.write_bytes(content)
    out = tmp_path / "out.csv"
    res = cli("labels", "extract", src, "--out", out, "--workers", "1", *args)
    assert res.exit_code != 0
    assert res.stderr.startswith(f"error[{code}]:"), res.stderr
    assert needle in res.stderr and "Traceback" not in res.stderr and "effusion" not in res.stderr
    assert not out.exists() and not list(tmp_path.glob(".out.csv.*"))  # atomic: no partial output


def test_non_utf8_replace_policy_and_other_encodings(cli, tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"\xef\xbb\xbfaccession,report_text\nA1,caf\xe9. Small effusion.\nA2,No effusion.\n")
    out = tmp_path / "out.csv"
    res = cli("labels", "extract", src, "--out", out, "--on-bad-bytes", "replace", "--workers", "1", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["replaced_lines"] == 1 and summary["replaced_line_numbers"] == [2]
    assert [r["Pleural Effusion"] for r in _read(out)] == ["1", "0"]  # BOM dropped, id column found
    res = cli("labels", "extract", src, "--out", out, "--encoding", "cp1252", "--workers", "1")
    assert res.exit_code == 0, res.output


def test_header_only_file_gives_header_only_output(cli, tmp_path):
    src = _write(tmp_path / "r.csv", [])
    out = tmp_path / "o.csv"
    assert cli("labels", "extract", src, "--out", out).exit_code == 0
    assert out.read_text().splitlines()[0].startswith("row,No Finding,") and len(out.read_text().splitlines()) == 1


def test_store_labels_one_row_per_study(cli, tmp_path):
    from radadapt.manifest import Store

    store = write_store(tmp_path / "store", [
        ("p1", "s1", ["Small left pleural effusion.", "Small left pleural effusion."]),  # two images, one report
        ("p1", "s2", [None]),  # no report -> blank row
        ("p2", "s3", ["ETT 1 cm above the carina.", "A different text for the same study."]),
    ])
    res = cli("labels", str(store), "--workers", "1", "--json")  # default sub-command: `labels STORE`
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert (summary["studies"], summary["with_report"], summary["conflicting_reports"]) == (3, 2, 1)
    st = Store(store)
    info = st.labels_info()
    assert info.n_reports == 2 and info.n_studies == 3 and info.n_without_report == 1
    assert info.findings[0] == "No Finding" and "endotracheal tube" in info.devices
    assert info.device_positions[0] == "endotracheal tube position"
    assert info.section_paths["empty"] == 1 and info.counts["Pleural Effusion"] == {"1": 1}
    assert len(info.schema_sha256) == 64
    rows = list(st.labels())
    assert [r["study_key"] for r in rows] == ["s1", "s2", "s3"] and list(rows[0])[0] == "study_key"
    assert rows[0]["Pleural Effusion"] == "1" and all(v == "" for k, v in rows[1].items() if k != "study_key")
    assert rows[2]["endotracheal tube position"] == "malpositioned"
    assert cli("labels", "store", str(store), "--workers", "2").exit_code == 0  # same via the named sub-command
    assert [r["study_key"] for r in Store(store).labels()] == ["s1", "s2", "s3"]


def test_store_errors(cli, tmp_path):
    res = cli("labels", str(tmp_path / "nowhere"))
    assert res.exit_code == 3 and res.stderr.startswith("error[store.not_a_store]")
    store = write_store(tmp_path / "s", [("p2", "s9", ["x"]), ("p1", "s1", ["y"])])  # not sorted
    res = cli("labels", str(store), "--workers", "1")
    assert res.stderr.startswith("error[labels.manifest_unsorted]") and not (store / "labels.csv").exists()
