"""`models pull` machinery with huggingface_hub mocked to serve a local tiny model (no network)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from radadapt.errors import ModelError
from radadapt.models import hub, rad_dino
from radadapt.models.encoder import sha256_file

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class FakeHub:
    """Serves ``root`` as a hub repo at one commit: model_info (with LFS sha256) and hf_hub_download."""

    def __init__(self, root: Path, extra: dict[str, bytes] | None = None):
        self.root = root
        for name, data in (extra or {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        self.downloads: list[str] = []
        self.lfs_override: dict[str, str] = {}
        self.fail: BaseException | None = None

    def model_info(self, repo_id, *, revision=None, files_metadata=False, **_kw):
        if self.fail is not None:
            raise self.fail
        if revision not in ("main", COMMIT):
            raise _error("RevisionNotFoundError")
        files = [p for p in sorted(self.root.rglob("*")) if p.is_file()]
        return SimpleNamespace(sha=COMMIT, siblings=[
            SimpleNamespace(rfilename=str(p.relative_to(self.root)), size=p.stat().st_size,
                            lfs=SimpleNamespace(sha256=self.lfs_override.get(p.name, sha256_file(p)))
                            if p.suffix == ".safetensors" else None)
            for p in files])

    def download(self, repo_id, filename, *, revision=None, local_dir=None, **_kw):
        assert revision == COMMIT  # files are fetched at the resolved commit, never at a moving branch
        self.downloads.append(filename)
        target = Path(local_dir) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.root / filename, target)
        return str(target)


def _error(name):
    from huggingface_hub import errors

    cls = getattr(errors, name)
    return cls.__new__(cls)  # hub errors need an HTTP response to construct; only the type matters here


@pytest.fixture()
def fake_hub(rad_dino_tiny_dir, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    root = tmp_path / "hub"
    shutil.copytree(rad_dino_tiny_dir, root)
    fake = FakeHub(root, {"vitb14_cxr.yaml": b"student:\n  arch: vit_base\n", "README.md": b"# RAD-DINO\n"})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", fake.model_info)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake.download)
    return fake


def test_pull_records_commit_and_sha256_and_loads(fake_hub, tmp_path, capsys):
    out = tmp_path / "pulled"
    rec = hub.pull_family(rad_dino, out)
    assert rec["commit"] == COMMIT and rec["revision"] == "main" and rec["pinned"] is False and rec["complete"]
    assert "moving reference" in capsys.readouterr().err  # unpinned pulls are warned about
    assert set(rec["files"]) == set(rad_dino.HUB_FILES) | {"vitb14_cxr.yaml", "README.md"}
    for name, meta in rec["files"].items():
        assert meta["sha256"] == sha256_file(out / name) == sha256_file(fake_hub.root / name)
    assert set(rec["skipped_optional"]) == {"ssl_default_config.yaml", "augmentations.py", "LICENSE"}
    assert json.loads((out / hub.PULL_RECORD).read_text()) == rec
    assert not (out / ".pull-staging").exists()
    assert rad_dino.is_model_dir(out) and rad_dino.load_encoder(out).embed_dim == 64
    info = rad_dino.describe(out)
    assert info["pulled_from"]["commit"] == COMMIT


def test_pinned_pull_resumes_without_refetching(fake_hub, tmp_path):
    out = tmp_path / "pulled"
    rec = hub.pull_family(rad_dino, out, revision=COMMIT)
    assert rec["pinned"] is True
    n = len(fake_hub.downloads)
    (out / "model.safetensors").write_bytes(b"corrupted")  # a damaged file is fetched again, the rest is kept
    hub.pull_family(rad_dino, out, revision=COMMIT)
    assert fake_hub.downloads[n:] == ["model.safetensors"]
    assert sha256_file(out / "model.safetensors") == sha256_file(fake_hub.root / "model.safetensors")


def test_checksum_mismatch_is_refused(fake_hub, tmp_path):
    fake_hub.lfs_override["dino_head.safetensors"] = "f" * 64
    with pytest.raises(ModelError) as e:
        hub.pull_family(rad_dino, tmp_path / "p")
    assert e.value.code == "models.hub_checksum" and "dino_head.safetensors" in e.value.message
    assert not (tmp_path / "p" / "dino_head.safetensors").exists()
    with pytest.raises(ModelError) as e:  # a family's own pin is checked too
        hub.pull("x/y", ["config.json"], tmp_path / "q", expected_sha256={"config.json": "0" * 64})
    assert e.value.code == "models.hub_checksum"


def test_missing_required_file_and_hub_errors(fake_hub, tmp_path):
    (fake_hub.root / "dino_head.safetensors").unlink()
    with pytest.raises(ModelError) as e:
        hub.pull_family(rad_dino, tmp_path / "p")
    assert e.value.code == "models.hub_missing_file" and "dino_head.safetensors" in e.value.message
    with pytest.raises(ModelError) as e:
        hub.pull_family(rad_dino, tmp_path / "p", revision="no-such-branch")
    assert e.value.code == "models.hub_bad_revision"
    for err, code in [(_error("RepositoryNotFoundError"), "models.hub_not_found"),
                      (_error("GatedRepoError"), "models.hub_gated"),
                      (ConnectionError("proxy said no"), "models.hub_unreachable"),
                      (_error("OfflineModeIsEnabled"), "models.offline")]:
        fake_hub.fail = err
        with pytest.raises(ModelError) as e:
            hub.pull_family(rad_dino, tmp_path / "p")
        assert e.value.code == code
        assert "proxy said no" not in e.value.message  # raw exception text is never shown


def test_offline_mode_refuses_before_any_call(rad_dino_tiny_dir, tmp_path, monkeypatch):
    import huggingface_hub
    from huggingface_hub import constants

    def boom(*_a, **_k):
        raise AssertionError("network call attempted while offline")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", boom)
    with pytest.raises(ModelError) as e:
        hub.pull_family(rad_dino, tmp_path / "p")
    assert e.value.code == "models.offline" and e.value.hint


def test_patterns_keep_repo_paths(fake_hub, tmp_path):
    sub = fake_hub.root / "2024.09.27" / "vision_model"
    sub.mkdir(parents=True)
    shutil.copy(fake_hub.root / "config.json", sub / "w.json")
    rec = hub.pull("x/y", ["2024.09.27/*/*.json"], tmp_path / "p", revision=COMMIT, family="mi2")
    assert list(rec["files"]) == ["2024.09.27/vision_model/w.json"]
    assert (tmp_path / "p" / "2024.09.27" / "vision_model" / "w.json").is_file()
