"""`radadapt demo-archive`: summary table, --json, one-line errors."""

from __future__ import annotations

import json

from tests.demo.conftest import N, SEED, SIZE


def test_cli_prints_a_summary_and_json(cli, demo_out):
    res = cli("demo-archive", demo_out, "--n", N, "--seed", SEED, "--size", SIZE)
    assert res.exit_code == 0, res.output
    assert "reused existing" in res.stdout and "ok/ok_voi_retry" in res.stdout and "radadapt ingest" in res.stdout
    res = cli("demo-archive", demo_out, "--n", N, "--seed", SEED, "--size", SIZE, "--json")
    assert res.exit_code == 0
    summary = json.loads(res.stdout)
    info = json.loads((demo_out / "demo_archive.json").read_text(encoding="utf-8"))
    assert summary["files"] == info["files"] and summary["by_reason"] == info["by_reason"]
    assert summary["n"] == N and summary["reused"] is True


def test_cli_errors_are_one_line(cli, tmp_path, demo_out):
    res = cli("demo-archive", tmp_path / "x", "--n", "5")
    assert res.exit_code == 2
    assert "error[demo.n_too_small]" in res.stderr and "Traceback" not in res.stderr
    res = cli("demo-archive", demo_out, "--n", N + 1, "--size", SIZE)
    assert res.exit_code == 2 and "error[demo.out_exists]" in res.stderr and "--force" in res.stderr


def test_help_has_examples(cli):
    res = cli("demo-archive", "--help")
    assert res.exit_code == 0 and "radadapt demo-archive /tmp/hospital" in res.stdout
