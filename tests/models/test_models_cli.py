"""`radadapt models tiny | info | pull` through the real CLI (in-process)."""

from __future__ import annotations

import json
import shutil

import pytest

from radadapt.models import registry


def test_tiny_then_info(cli, tmp_path):
    out = tmp_path / "tiny"
    res = cli("models", "tiny", "rad-dino", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    result = json.loads(res.stdout)
    assert result["family"] == "rad_dino" and set(result["files"]) == {
        "config.json", "model.safetensors", "preprocessor_config.json", "backbone_compatible.safetensors",
        "dino_head.safetensors"}
    res = cli("models", "info", out, "--json", "--verify")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["layouts"] == ["transformers", "meta"] and info["backbone_parameters"] == 242_560
    assert info["architecture"]["num_attention_heads"] == 4 and info["head"]["out_dim"] == 1024
    assert info["verify"]["layouts_agree"] is True and info["preprocessing"]["crop_hw"] == [112, 112]
    by_name = {f["name"]: f["sha256"] for f in info["files"]}
    assert by_name == result["files"]
    res = cli("models", "info", out)  # human output: a table and a summary
    assert res.exit_code == 0 and "model.safetensors" in res.stdout and "out_dim=1,024" in res.stdout


@pytest.mark.parametrize("family", registry.family_names())
def test_info_works_for_every_family(cli, request, family):
    if family not in registry.available_families():
        pytest.skip(f"{family} not installed")
    path = request.getfixturevalue(f"{family}_tiny_dir")
    human = cli("models", "info", path)
    assert human.exit_code == 0, human.output
    res = cli("models", "info", path, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["family"] == family and info["files"] and all(len(f["sha256"]) == 64 for f in info["files"])


def test_tiny_refuses_a_non_empty_directory_unless_forced(cli, tmp_path):
    out = tmp_path / "tiny"
    assert cli("models", "tiny", "rad-dino", "--out", out).exit_code == 0
    res = cli("models", "tiny", "rad-dino", "--out", out, "--seed", "1")
    assert res.exit_code == 4 and "error[models.out_exists]" in res.stderr
    assert cli("models", "tiny", "rad-dino", "--out", out, "--seed", "1", "--force").exit_code == 0


def test_tiny_mi2_dispatches_to_its_family(cli, tmp_path):
    if "mi2" not in registry.available_families():
        res = cli("models", "tiny", "mi2", "--out", tmp_path / "m")
        assert res.exit_code == 4 and "models.family_unavailable" in res.stderr
        return
    res = cli("models", "tiny", "mi2", "--out", tmp_path / "m", "--json")
    assert res.exit_code == 0, res.output
    assert registry.detect_family(tmp_path / "m") == "mi2"


def test_errors_are_one_line(cli, tmp_path):
    res = cli("models", "info", tmp_path / "nothing")
    assert res.exit_code == 4 and res.stderr.startswith("error[models.not_found]")
    res = cli("models", "tiny", "dinov3", "--out", tmp_path / "x")
    assert res.exit_code == 4 and "error[models.unknown_family]" in res.stderr
    res = cli("models", "pull", "rad-dino", "--out", tmp_path / "p")  # tests run with HF_HUB_OFFLINE=1
    assert res.exit_code == 4 and "error[models.offline]" in res.stderr and "hint:" in res.stderr
    assert not (tmp_path / "p" / "pull.json").exists()


def test_help_has_examples(cli):
    for sub in ("tiny", "pull", "info"):
        res = cli("models", sub, "--help")
        assert res.exit_code == 0 and "Examples" in res.stdout, sub


def test_pull_through_the_cli_with_a_mocked_hub(cli, rad_dino_tiny_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    import huggingface_hub
    from huggingface_hub import constants

    from radadapt.models.encoder import sha256_file

    commit = "ab" * 20
    root = tmp_path / "hub"
    shutil.copytree(rad_dino_tiny_dir, root)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda _self, repo, **kw: SimpleNamespace(
        sha=commit, siblings=[SimpleNamespace(rfilename=p.name, lfs=None) for p in root.iterdir()]))

    def download(repo, name, *, revision, local_dir, **_kw):
        assert repo == "microsoft/rad-dino" and revision == commit
        (local_dir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, local_dir / name)
        return str(local_dir / name)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    out = tmp_path / "pulled"
    res = cli("models", "pull", "rad-dino", "--revision", commit, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["commit"] == commit and rec["pinned"] is True
    assert rec["files"]["model.safetensors"]["sha256"] == sha256_file(rad_dino_tiny_dir / "model.safetensors")
    assert "moving reference" not in res.stderr

