"""The family registry and the Encoder contract (docs/architecture.md §4), for every family that is installed."""

from __future__ import annotations

import importlib
import json
import shutil

import numpy as np
import pytest
import torch

from radadapt.errors import ModelError
from radadapt.models import registry


def _family_dir(request, family):
    try:
        importlib.import_module(registry._FAMILY_MODULES[family])
    except ModuleNotFoundError:
        pytest.skip(f"family module for {family} not importable yet")
    return request.getfixturevalue(f"{family}_tiny_dir")  # session fixtures in tests/conftest.py


@pytest.fixture(params=registry.family_names())
def family_dir(request):
    return request.param, _family_dir(request, request.param)


def test_family_protocol(family_dir):
    family, _ = family_dir
    mod = registry.family_module(family)
    assert mod.NAME == family
    for attr in ("is_model_dir", "load_encoder", "write_tiny", "HUB_REPO", "HUB_FILES"):
        assert hasattr(mod, attr), attr
    assert hasattr(mod, "HUB_REVISION") and isinstance(mod.HUB_FILES, tuple) and mod.HUB_FILES


def test_detection_and_encoder_contract(family_dir, tmp_path):
    family, path = family_dir
    assert registry.detect_family(path) == family
    others = [f for f in registry.available_families() if f != family]
    assert not any(registry.family_module(o).is_model_dir(path) for o in others)
    enc = registry.load_encoder(path, device="cpu")
    assert enc.family == family and len(enc.fingerprint) == 64 and enc.embed_dim > 0
    rs = np.random.RandomState(0)
    images = [rs.randint(0, 256, (140, 120), dtype=np.uint8), rs.randint(0, 256, (100, 160), dtype=np.uint8)]
    x = enc.preprocess(images)
    assert tuple(x.shape) == (2, 3, enc.input_size, enc.input_size) and x.dtype == torch.float32
    f1, f2 = enc.features(x), enc.features(x)
    d = enc.embed_dim
    assert tuple(f1["cls"].shape) == (2, d) and tuple(f1["patch_mean"].shape) == (2, d)
    g = f1["patch_grid"]
    assert g.ndim == 4 and g.shape[:2] == (2, d)
    if "layers" in f1:  # per-layer pooled tokens; their width is the tower's, which may differ from cls's
        assert f1["layers"].ndim == 3 and f1["layers"].shape[0] == 2
    assert all(torch.equal(f1[k], f2[k]) for k in f1)  # eval mode: deterministic
    assert not any(p.requires_grad for p in _params(enc))
    assert registry.load_encoder(path).fingerprint == enc.fingerprint


def _params(enc):
    for value in vars(enc).values():
        if isinstance(value, torch.nn.Module):
            yield from value.parameters()


def test_run_and_export_directories_resolve(family_dir, tmp_path):
    family, path = family_dir
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"family": family, "status": "running"}))
    with pytest.raises(ModelError) as e:
        registry.detect_family(run)
    assert e.value.code == "models.run_unfinished"
    shutil.copytree(path, run / "final")
    assert registry.detect_family(run) == family
    assert registry.load_encoder(run).fingerprint == registry.load_encoder(path).fingerprint
    exp = tmp_path / "export"
    exp.mkdir()
    (exp / "provenance.json").write_text(json.dumps({"family": family}))
    assert registry.detect_family(exp) == family


def test_unknown_directories_and_names(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ModelError) as e:
        registry.detect_family(tmp_path)
    assert e.value.code == "models.unknown_format" and "notes.txt" in e.value.message
    with pytest.raises(ModelError) as e:
        registry.detect_family(tmp_path / "missing")
    assert e.value.code == "models.not_found"
    with pytest.raises(ModelError) as e:
        registry.normalise_family("dinov3")
    assert e.value.code == "models.unknown_family"
    assert registry.normalise_family("RAD-DINO") == "rad_dino"
    # a family whose module is not installed is skipped by detection and named when asked for
    monkeypatch.setitem(registry._FAMILY_MODULES, "mi2", "radadapt.models.not_there")
    assert "mi2" not in registry.available_families()
    with pytest.raises(ModelError) as e:
        registry.family_module("mi2")
    assert e.value.code == "models.family_unavailable"
    # but an import error *inside* an existing family module is not hidden
    def broken(name):
        raise ModuleNotFoundError("No module named 'somedep'", name="somedep")

    monkeypatch.setattr(registry, "import_module", broken)
    with pytest.raises(ModuleNotFoundError):
        registry.family_module("rad_dino")


def test_describe_falls_back_to_a_file_listing(rad_dino_tiny_dir, monkeypatch):
    info = registry.describe(rad_dino_tiny_dir)
    assert info["family"] == "rad_dino" and info["layouts"] == ["transformers", "meta"]
    mod = registry.family_module("rad_dino")
    monkeypatch.delattr(mod, "describe")
    plain = registry.describe(rad_dino_tiny_dir)
    assert sorted(f["name"] for f in plain["files"]) == sorted(f["name"] for f in info["files"])
