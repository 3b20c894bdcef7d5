"""`radadapt report` on the command line: the result, and one-line errors for bad input."""

from __future__ import annotations

import json

import pytest

from tests.report.conftest import copy_fixture, edit_results


def test_terminal_summary_names_the_verdicts_and_where_the_report_is(rendered, summary_json):
    out, stdout, _, _ = rendered
    flat = " ".join(stdout.split())
    assert "Benchmark summary" in flat and f"report: {out / 'report.html'}" in flat
    assert f"markdown: {out / 'report.md'}" in flat
    for c in summary_json["candidates"]:
        assert " ".join(c["headline"].split())[:60] in flat
    for a in summary_json["alarms"]:
        assert "WARNING: " + " ".join(a.split())[:40] in flat


def _one_line_error(res, code: str, exit_code: int) -> None:
    assert res.exit_code == exit_code, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert lines[0].startswith(f"error[{code}]: "), res.stderr
    assert len(lines) <= 2 and all(ln.startswith(("error[", "  hint: ")) for ln in lines)
    assert "Traceback" not in res.stderr


def test_missing_results(cli, tmp_path):
    _one_line_error(cli("report", tmp_path / "nowhere", "--out", tmp_path / "r"), "report.no_results", 2)
    (tmp_path / "empty").mkdir()
    _one_line_error(cli("report", tmp_path / "empty", "--out", tmp_path / "r"), "report.no_results", 2)


@pytest.mark.parametrize("content, what", [
    ("", "empty"),
    ('{"format": "radadapt-benchmark", "version": 1, "models": [', "truncated"),
    ("\udcff", "not text"),
    ('{"format": "something-else"}', "another format"),
    ("[1, 2, 3]", "not an object"),
])
def test_malformed_results_are_one_line_errors(cli, tmp_path, content, what):
    f = tmp_path / "results.json"
    if what == "not text":
        f.write_bytes(b"\xff\xfe\x00garbage")
    else:
        f.write_text(content)
    res = cli("report", f, "--out", tmp_path / "r")
    _one_line_error(res, "report.bad_results", 3)
    assert str(f) in res.stderr
    assert not (tmp_path / "r").exists()  # nothing written for bad input


def test_results_that_break_the_schema_name_the_field(cli, bench_copy, tmp_path):
    root = copy_fixture(tmp_path / "fx")
    edit_results(root, lambda d: {k: v for k, v in d.items() if k != "models"})
    res = cli("report", root / "bench", "--out", tmp_path / "r")
    _one_line_error(res, "report.bad_results", 3)
    assert "models" in res.stderr
    edit_results(root, lambda d: {**json.loads((bench_copy / "bench" / "results.json").read_text()), "headline_probe": 3})
    _one_line_error(cli("report", root / "bench", "--out", tmp_path / "r"), "report.bad_results", 3)


def test_bad_scaling_files_and_output(cli, bench_copy, tmp_path):
    bench = bench_copy / "bench"
    _one_line_error(cli("report", bench, "--out", tmp_path / "r", "--scaling", tmp_path / "none.json"),
                    "report.no_scaling", 2)
    _one_line_error(cli("report", bench, "--out", tmp_path / "r", "--scaling", tmp_path), "report.bad_scaling", 2)
    bad = tmp_path / "scaling.json"
    bad.write_text('{"format": "radadapt-scaling", "tasks": 5}')
    _one_line_error(cli("report", bench, "--out", tmp_path / "r", "--scaling", bad), "report.bad_scaling", 3)
    bad.write_text("{")
    _one_line_error(cli("report", bench, "--out", tmp_path / "r", "--scaling", bad), "report.bad_scaling", 3)
    bad.write_text((bench / "results.json").read_text())  # a results file is not a scaling file
    _one_line_error(cli("report", bench, "--out", tmp_path / "r", "--scaling", bad), "report.bad_scaling", 3)
    afile = tmp_path / "afile"
    afile.write_text("x")
    _one_line_error(cli("report", bench, "--out", afile), "report.out_not_dir", 2)
    assert not (tmp_path / "r").exists()
