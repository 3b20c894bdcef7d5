"""Fixtures for the report tests: a copy of the committed benchmark output (tests/report/fixture, made by the real
pipeline with make_fixture.py) with its recorded paths pointing at the copy, and one full rendering shared by the
tests that only read it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

FIXTURE = Path(__file__).parent / "fixture"
PLACEHOLDER = "@FIXTURE@"


def copy_fixture(dst: Path) -> Path:
    """Copy the fixture to ``dst`` and point its recorded paths there; returns ``dst``."""
    shutil.copytree(FIXTURE, dst, dirs_exist_ok=True)
    for f in (dst / "bench" / "results.json", dst / "scaling.json"):
        f.write_text(f.read_text(encoding="utf-8").replace(PLACEHOLDER, str(dst)), encoding="utf-8")
    return dst


def edit_results(root: Path, fn) -> Path:
    """Apply ``fn(dict) -> dict`` to root/bench/results.json; returns its path."""
    f = root / "bench" / "results.json"
    f.write_text(json.dumps(fn(json.loads(f.read_text(encoding="utf-8")))), encoding="utf-8")
    return f


@pytest.fixture(scope="session")
def bench_copy(tmp_path_factory) -> Path:
    """A read-only copy of the fixture (copy it again before changing anything)."""
    return copy_fixture(tmp_path_factory.mktemp("report_fixture"))


@pytest.fixture(scope="session")
def rendered(bench_copy, tmp_path_factory):
    """`radadapt report BENCH --out DIR --scaling scaling.json` run once: (DIR, terminal output, html, md)."""
    from typer.testing import CliRunner

    from radadapt.cli import app

    out = tmp_path_factory.mktemp("report") / "report"
    res = CliRunner().invoke(app, ["report", str(bench_copy / "bench"), "--out", str(out), "--scaling",
                                   str(bench_copy / "scaling.json")])
    assert res.exit_code == 0, res.stderr
    html = (out / "report.html").read_text(encoding="utf-8")
    return out, res.stdout, html, (out / "report.md").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def summary_json(bench_copy) -> dict:
    """The summary the report states, as `--json` prints it."""
    from radadapt.bench.schema import BenchmarkResults
    from radadapt.report.summary import summarise

    res = BenchmarkResults.model_validate_json((bench_copy / "bench" / "results.json").read_text(encoding="utf-8"))
    return summarise(res).to_json()
