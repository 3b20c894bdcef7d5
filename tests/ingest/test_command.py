"""The `radadapt ingest` command surface."""

from __future__ import annotations


def test_help_has_examples_and_every_option(cli):
    res = cli("ingest", "--help")
    assert res.exit_code == 0
    for text in ("--reports", "--out", "--site-key", "--workers", "--resolution", "--masks", "--config",
                 "--accession-column", "--report-column", "--patient-column", "--date-column", "--private-dir",
                 "--json", "Examples", "radadapt ingest /pacs/export"):
        assert text in res.stdout, text


def test_missing_key_is_a_one_line_error(cli, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f").write_bytes(b"x")
    (tmp_path / "r.csv").write_text("accession_number,report_text\n")
    res = cli("ingest", tmp_path / "a", "--reports", tmp_path / "r.csv", "--out", tmp_path / "s", "--site-key",
              tmp_path / "nokey")
    assert res.exit_code == 2 and res.stderr.startswith("error[sitekey.missing]")
