"""RAD-DINO exports: transformers loads them with no radadapt, the Meta layout continues training, nothing private
leaves, and the card carries the benchmark with its intervals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from radadapt.export.provenance import PROVENANCE, sha256_file

EXPECTED = {"MODEL_CARD.md", "provenance.json", "config.json", "model.safetensors", "preprocessor_config.json",
            "meta/backbone_compatible.safetensors", "meta/dino_head.safetensors", "meta/config.json",
            "meta/preprocessor_config.json"}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_layout_and_provenance(rad_dino_export, export_site):
    run, out, result = rad_dino_export
    assert _files(out) == EXPECTED
    prov = json.loads((out / PROVENANCE).read_text())
    assert set(prov["files"]) == EXPECTED - {PROVENANCE}
    for rel, rec in prov["files"].items():
        assert rec == {"sha256": sha256_file(out / rel), "bytes": (out / rel).stat().st_size}, rel
    assert prov["family"] == "rad_dino" and prov["store"]["store_id"] == export_site["store_id"]
    run_json = json.loads((run / "run.json").read_text())
    assert prov["base_model"]["files"] == run_json["base_model"]["files"]
    assert prov["config"] == run_json["config"] and prov["run"]["steps"]["done"] == 2
    scan = prov["phi_scan"]
    # every file is scanned but those byte-identical to the base's: this assembled run did not train, and the
    # writers are byte-reproducible, so the weights come out identical too; config.json differs (radadapt key)
    assert scan["status"] == "passed"
    assert scan["files_scanned"] + len(scan["files_unchanged_from_base"]) == len(EXPECTED)
    assert set(scan["files_unchanged_from_base"]) == {
        "model.safetensors", "preprocessor_config.json", "meta/backbone_compatible.safetensors",
        "meta/dino_head.safetensors", "meta/preprocessor_config.json"}
    assert result["files"] == len(EXPECTED) and result["provenance_sha256"] == sha256_file(out / PROVENANCE)
    # nothing left beside the export
    assert [p.name for p in out.parent.iterdir()] == [out.name]


def test_nothing_private_is_exported(rad_dino_export, export_site):
    run, out, _ = rad_dino_export
    blob = b"".join((out / rel).read_bytes() for rel in sorted(_files(out)))
    for private in (str(run.resolve()), str(export_site["store"].resolve()), str(export_site["key"].parent),
                    run.name, "train_patients"):
        assert private.encode() not in blob, private
    keys = (run / "train_patients.txt").read_text().split()
    assert keys and not any(k.encode() in blob for k in keys)  # pseudonymous patient keys stay at the site
    store_keys = {json.loads(line)["study_key"] for line in open(export_site["store"] / "manifest.jsonl")}
    assert not any(k.encode() in blob for k in store_keys)
    config = json.loads((out / "config.json").read_text())
    assert config["radadapt"] == {"steps": 2, "radadapt_version": config["radadapt"]["radadapt_version"]}


def test_transformers_loads_it_offline_without_radadapt(rad_dino_export, tmp_path):
    run, out, result = rad_dino_export
    from radadapt.models import registry

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, size=(150, 130), dtype=np.uint8)
    np.save(tmp_path / "image.npy", np.repeat(grey[..., None], 3, axis=-1))
    script = f"""
import json, sys
repo = {str(Path(__file__).resolve().parents[2])!r}
sys.path = [p for p in sys.path if not p.startswith(repo)]
sys.modules["radadapt"] = None  # the editable install stays on sys.meta_path: make any radadapt import fail
import numpy as np, torch
from transformers import AutoImageProcessor, AutoModel
proc = AutoImageProcessor.from_pretrained(sys.argv[1])
model = AutoModel.from_pretrained(sys.argv[1]).eval()
px = proc(images=np.load(sys.argv[2]), return_tensors="pt")["pixel_values"]
with torch.no_grad():
    pooled = model(pixel_values=px).pooler_output
np.save(sys.argv[3], px.numpy()); np.save(sys.argv[4], pooled.numpy())
try:
    import radadapt
    blocked = False
except ImportError:
    blocked = True
print(json.dumps({{"blocked": blocked, "loaded": sorted(m for m, v in sys.modules.items()
                                                   if m.startswith("radadapt") and v is not None)}}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "HF_", "TRANSFORMERS"))}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    proc = subprocess.run([sys.executable, "-I", "-c", script, str(out), str(tmp_path / "image.npy"),
                           str(tmp_path / "px.npy"), str(tmp_path / "pooled.npy")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"blocked": True, "loaded": []}
    enc = registry.load_encoder(run)  # the run's final model, as the benchmark loads it
    ours = enc.preprocess([grey])
    theirs = torch.from_numpy(np.load(tmp_path / "px.npy"))
    assert theirs.shape == ours.shape == (1, 3, 112, 112) and torch.allclose(ours, theirs, atol=1e-5)
    pooled = torch.from_numpy(np.load(tmp_path / "pooled.npy"))
    assert torch.allclose(pooled, enc.features(theirs)["cls"], atol=1e-5)
    assert registry.load_encoder(out).fingerprint == enc.fingerprint == result["encoder_fingerprint"]


def test_the_cards_loading_snippet_runs(rad_dino_export):
    from radadapt.models import registry

    run, out, _ = rad_dino_export
    card = (out / "MODEL_CARD.md").read_text()
    code = card.split("```python\n", 1)[1].split("```", 1)[0].replace("EXPORT_DIR", str(out))
    grey = np.random.default_rng(1).integers(0, 256, size=(140, 120), dtype=np.uint8)
    scope = {"image": np.repeat(grey[..., None], 3, axis=-1)}
    with torch.no_grad():
        exec(compile(code, "MODEL_CARD.md", "exec"), scope)  # noqa: S102 - the card's own example, on our export
    enc = registry.load_encoder(run)
    assert torch.allclose(scope["features"], enc.features(enc.preprocess([grey]))["cls"], atol=1e-5)


def test_meta_folder_is_a_strict_model_with_the_warm_head(rad_dino_export):
    from radadapt.models import rad_dino, registry

    run, out, _ = rad_dino_export
    src = rad_dino.load_pretrained(run / "final", head="file")
    meta = rad_dino.load_pretrained(out / "meta", head="file")
    assert meta.layout == "meta" and meta.head_source == "file"
    a, b = src.backbone.state_dict(), meta.backbone.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ha, hb = src.head.state_dict(), meta.head.state_dict()
    assert ha.keys() == hb.keys() and all(torch.equal(ha[k], hb[k]) for k in ha)
    assert registry.detect_family(out) == registry.detect_family(out / "meta") == "rad_dino"
    info = rad_dino.describe(out, verify=True)
    assert info["verify"]["transformers"] == "ok"


def test_card_reports_the_benchmark_with_intervals(rad_dino_run, rad_dino_export, export_site, tmp_path):
    from export_helpers import write_results

    from radadapt.export.exporter import ExportRequest, export_run

    fp = rad_dino_export[2]["encoder_fingerprint"]
    results = write_results(tmp_path / "bench", fp, export_site["store_id"])
    out = tmp_path / "with-results"
    result = export_run(ExportRequest(run=rad_dino_run, out=out, results=results.parent, site_key=export_site["key"]))
    assert result["benchmark"] is True
    card = (out / "MODEL_CARD.md").read_text()
    for section in ("## Model", "## Files and how to load them", "## Training data", "## Training configuration",
                    "## Evaluation", "## Intended use", "## Limitations", "## Privacy", "## Licence", "## Provenance"):
        assert section in card
    assert ("| findings (macro, 1 labels) | 0.712 [0.662, 0.762] | 0.834 [0.784, 0.884] | +0.122 [+0.062, +0.182] "
            "| better |") in card
    assert ("| Pleural Effusion | 12 / 28 | 0.712 [0.662, 0.752] | 0.834 [0.784, 0.874] | +0.122 [+0.051, +0.190] "
            "| better |") in card
    assert "| Hernia | 12 / 28 | n/a | n/a | n/a | too_few_positives |" in card
    assert "disjoint (checked)" in card and "40 images of\n20 patients" in card
    assert "Out-of-domain warning" in card and "worse than the open weights on other institutions' data" in card
    assert "none (random tiny weights generated by radadapt" in card
    prov = json.loads((out / PROVENANCE).read_text())
    assert prov["benchmark"]["results_sha256"] == sha256_file(results) and "/site/" not in json.dumps(prov)
    # results of another model are refused rather than shown on this card
    other = write_results(tmp_path / "other", "f" * 64, export_site["store_id"])
    from radadapt.errors import DataError

    with pytest.raises(DataError) as err:
        export_run(ExportRequest(run=rad_dino_run, out=tmp_path / "x", results=other, site_key=export_site["key"]))
    assert err.value.code == "export.results_mismatch" and not (tmp_path / "x").exists()


def test_training_data_section_is_aggregates_only(rad_dino_export, export_site):
    from radadapt.manifest import Store

    _, out, _ = rad_dino_export
    card = (out / "MODEL_CARD.md").read_text()
    store = Store(export_site["store"])
    train = list(store.records("train"))
    assert f"Training used {len(train)} images of {len({r.patient_key for r in train})} patients" in card
    for split, n in store.info.splits.items():
        assert f"| {split} | {n:,} |" in card
    makers = {r.manufacturer for r in train if r.manufacturer}
    assert makers and all(m in card for m in makers if sum(r.manufacturer == m for r in train) >= 10)
    assert "| sex | images |" in card and "| age band (years) | images |" in card
    assert not any(r.study_date and r.study_date in card for r in train)
