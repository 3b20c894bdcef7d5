"""`radadapt export` and `radadapt export verify` on the command line: results, refusals, one-line errors."""

from __future__ import annotations

import json
import shutil

from radadapt.sitekey import create_key


def test_help_has_examples_and_both_subcommands(cli):
    res = cli("export", "--help")
    assert res.exit_code == 0 and "run" in res.stdout and "verify" in res.stdout
    res = cli("export", "run", "--help")
    assert res.exit_code == 0
    for text in ("--out", "--results", "--site-key", "--private-dir", "--no-phi-scan", "--force",
                 "radadapt export verify"):
        assert text in res.stdout


def test_verify_then_tamper_then_replace(cli, rad_dino_export, export_site, tmp_path):
    run, exported, _ = rad_dino_export
    out = tmp_path / "export"
    shutil.copytree(exported, out)  # verify works on any copy
    res = cli("export", "verify", out, "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"] is True
    text = cli("export", "verify", out)
    assert text.exit_code == 0 and "8 of 8 files match provenance.json" in text.stdout
    (out / "meta" / "config.json").write_text("{}")
    (out / "preprocessor_config.json").unlink()
    (out / "notes.txt").write_text("added later")
    res = cli("export", "verify", out, "--json")
    assert res.exit_code == 3 and "error[export.verify_failed]" in res.stderr
    report = json.loads(res.stdout)
    assert report["missing"] == ["preprocessor_config.json"] and report["modified"] == ["meta/config.json"]
    assert report["extra"] == ["notes.txt"] and report["checked"] == 6
    # an earlier export may be replaced only on request, and only an export (`export RUN` = `export run RUN`)
    res = cli("export", run, "--out", out, "--site-key", export_site["key"])
    assert res.exit_code == 2 and "error[export.out_exists]" in res.stderr
    stale = tmp_path / ".export.k1ll3d.partial"  # what a killed export leaves: removed by the next one
    stale.mkdir()
    (stale / "MODEL_CARD.md").write_text("half written")
    res = cli("export", run, "--out", out, "--site-key", export_site["key"], "--force", "--json")
    assert res.exit_code == 0, res.stderr
    result = json.loads(res.stdout)
    assert result["family"] == "rad_dino" and result["phi_scan"]["status"] == "passed"
    assert cli("export", "verify", out).exit_code == 0 and not (out / "notes.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]  # nothing left beside it
    # the same run exported twice gives the same bytes (no timestamps)
    assert (out / "provenance.json").read_bytes() == (exported / "provenance.json").read_bytes()
    other = tmp_path / "not-an-export"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    res = cli("export", run, "--out", other, "--site-key", export_site["key"], "--force")
    assert res.exit_code == 2 and "error[export.out_exists]" in res.stderr and (other / "keep.txt").exists()


def test_without_an_audit_export_refuses_unless_told(cli, rad_dino_run, export_site, tmp_path):
    out = tmp_path / "export"
    res = cli("export", rad_dino_run, "--out", out)
    assert res.exit_code == 6 and "error[export.no_audit]" in res.stderr and "--no-phi-scan" in res.stderr
    res = cli("export", rad_dino_run, "--out", out, "--site-key", export_site["key"], "--private-dir", tmp_path)
    assert res.exit_code == 6 and "error[export.no_audit]" in res.stderr
    other_key = create_key(tmp_path / "other" / "site.key")
    res = cli("export", rad_dino_run, "--out", out, "--site-key", other_key, "--private-dir", export_site["private"])
    assert res.exit_code == 6 and "error[export.wrong_key]" in res.stderr
    assert not out.exists()
    res = cli("export", rad_dino_run, "--out", out, "--no-phi-scan")
    assert res.exit_code == 0, res.stderr
    assert "will NOT be checked" in res.stderr and "SKIPPED" in res.stdout
    card = (out / "MODEL_CARD.md").read_text()
    assert "The identifier scan was skipped at export" in card
    assert json.loads((out / "provenance.json").read_text())["phi_scan"]["status"] == "skipped"


def test_planted_name_in_the_card_text_stops_the_export(cli, rad_dino_run, export_site, planted_name, site_config,
                                                        tmp_path):
    cfg = site_config(f'[export]\nlicence_note = "Questions about the weights: {planted_name}"\n')
    out = tmp_path / "export"
    res = cli("export", rad_dino_run, "--out", out, "--site-key", export_site["key"], "--config", cfg)
    assert res.exit_code == 6, res.stderr
    assert "error[export.phi_found]" in res.stderr and "MODEL_CARD.md, line" in res.stderr
    assert "(section 'Licence'): a person's name" in res.stderr
    for part in planted_name.replace("^", " ").split():
        assert part.lower() not in (res.stderr + res.stdout).lower()
    assert not out.exists() and list(tmp_path.iterdir()) == [cfg]


def test_site_path_left_in_a_model_file_stops_the_export(cli, rad_dino_run, export_site, tmp_path):
    run = tmp_path / "run-with-path"
    shutil.copytree(rad_dino_run, run)
    config = json.loads((run / "final" / "config.json").read_text())
    config["notes"] = f"trained on {export_site['store'].resolve()}/images"  # transformers keeps unknown keys
    (run / "final" / "config.json").write_text(json.dumps(config))
    res = cli("export", run, "--out", tmp_path / "export", "--site-key", export_site["key"])
    assert res.exit_code == 6 and "error[export.phi_found]" in res.stderr
    assert "config.json, line" in res.stderr and "a local path of this site" in res.stderr
    assert str(export_site["store"]) not in res.stderr


def test_runs_that_cannot_be_exported(cli, make_run, rad_dino_tiny_dir, export_site, tmp_path):
    res = cli("export", tmp_path, "--out", tmp_path / "x", "--site-key", export_site["key"])
    assert res.exit_code == 2 and "error[export.not_a_run]" in res.stderr
    run = make_run("rad_dino", rad_dino_tiny_dir, status="stopped")
    res = cli("export", run, "--out", tmp_path / "x", "--site-key", export_site["key"])
    assert res.exit_code == 2 and "error[export.run_incomplete]" in res.stderr and "--resume" in res.stderr
    (run / "run.json").write_text("{not json")
    res = cli("export", run, "--out", tmp_path / "x", "--site-key", export_site["key"])
    assert res.exit_code == 3 and "error[export.bad_run]" in res.stderr
    res = cli("export", "verify", tmp_path)
    assert res.exit_code == 3 and "error[export.not_an_export]" in res.stderr
    assert "Traceback" not in res.stderr and not (tmp_path / "x").exists()
