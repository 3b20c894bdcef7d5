"""Training continues from an export (the Meta backbone with its warm head), and that real run exports again."""

from __future__ import annotations

import json

import pytest

TRAIN_CONFIG = """[train]
num_workers = 0
log_every = 1

[train.dino]
global_crop_size = 56
local_crop_size = 28
local_crops = 2
"""


@pytest.mark.slow
def test_train_from_the_export_and_export_the_new_run(cli, rad_dino_export, export_site, site_config, tmp_path):
    _, exported, _ = rad_dino_export
    run = tmp_path / "continued"
    res = cli("train", "--model", "rad-dino", "--store", export_site["store"], "--weights", exported / "meta",
              "--out", run, "--max-steps", "1", "--batch-size", "2", "--config", site_config(TRAIN_CONFIG), "--json")
    assert res.exit_code == 0, res.stderr
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["status"] == "completed" and run_json["settings"]["head_source"] == "file"
    prov = json.loads((exported / "provenance.json").read_text())
    for name, digest in run_json["base_model"]["files"].items():  # the run started from the exported files
        assert prov["files"][f"meta/{name}"]["sha256"] == digest

    out = tmp_path / "export-2"
    res = cli("export", run, "--out", out, "--site-key", export_site["key"], "--json")
    assert res.exit_code == 0, res.stderr
    again = json.loads((out / "provenance.json").read_text())
    assert again["run"]["steps"]["done"] == 1 and again["base_model"]["files"] == run_json["base_model"]["files"]
    assert again["run_fingerprint"] == again["encoder_fingerprint"]
    assert "model.safetensors" not in again["phi_scan"]["files_unchanged_from_base"]  # trained: scanned
    assert cli("export", "verify", out).exit_code == 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "an earlier radadapt export of this site (itself from radadapt's tiny random model)" in card
    assert "1 of 1 planned" in card and "Licence of the base weights: none" in card
    assert again["base_model"]["earlier_export"] is True and again["base_model"]["tiny"] is True


@pytest.mark.slow
def test_a_real_unicl_run_exports(cli, export_site, mi2_tiny_dir, site_config, tmp_path):
    run = tmp_path / "unicl-run"
    cfg = site_config('[train]\nnum_workers = 0\nlog_every = 1\n\n[train.unicl]\nsources = ["reports"]\n')
    res = cli("train", "--model", "mi2", "--store", export_site["store"], "--weights", mi2_tiny_dir, "--out", run,
              "--max-steps", "1", "--batch-size", "4", "--config", cfg)
    assert res.exit_code == 0, res.stderr
    out = tmp_path / "export"
    res = cli("export", run, "--out", out, "--site-key", export_site["key"], "--json")
    assert res.exit_code == 0, res.stderr
    prov = json.loads((out / "provenance.json").read_text())
    scan = prov["phi_scan"]
    assert prov["family"] == "mi2" and prov["run"]["steps"]["done"] == 1
    assert "mi2/vision_model/medimageinsigt-v1.0.0.pt" not in scan["files_unchanged_from_base"]  # trained
    assert "tokenizer/vocab.json" in scan["files_unchanged_from_base"]
    assert cli("export", "verify", out).exit_code == 0
    blob = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    assert str(export_site["store"]).encode() not in blob and b"unicl-run" not in blob  # the run name stays behind
