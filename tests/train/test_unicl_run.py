"""A real `radadapt train --model mi2` run from the tiny MI2 checkpoint on a labelled demo store: the loss falls,
label-prompt zero-shot AUROC on HELD-OUT (val+test) images rises by a clear margin, and final/ is the released MI2
layout + a timm image tower + the tokenizer.

The setting (docs/training_mi2.md "How it is tested"): the ``heldout_store`` fixture (280 images, 123 train, 157
val+test, 64 px), 48 steps of batch 16 at 64 px crops, constant lr 1e-3, no augmentation, label prompts only
(``label_fraction = 1``) with the view-free template ``"x-ray chest {label}"``, so the ten planted findings and
devices are the classes. Zero-shot score of an image for a label = cosine with that label's prompt; AUROC against
labels.csv (1 / "present" positive, anything else negative), macro over the labels with >= 5 positives and
negatives among the held-out images. Measured (seeds 0 and 1): 0.484 -> 0.644 and 0.637. Held-out image->report
MRR is printed only: a 48-step run on prompts does not move it (0.04 -> 0.04).

Evaluation runs at the training crop size (64 px), for the base model too: a DaViT's pooled feature depends on the
input size, and the same run scored at the base config's 112 px shows no gain. The run's final/config.yaml records
the 64 px it trained at, so ``load_encoder(RUN)`` (and benchmark, export) evaluate it at that size.
"""

import json
import shutil

import numpy as np
import pytest
import torch

STEPS = 48
SIZE = 64
CONFIG = f"""
[train]
num_workers = 0
log_every = 1
seed = 0

[train.unicl]
image_size = {SIZE}
label_fraction = 1.0
prompt_templates = ["x-ray chest {{label}}"]
lr = 1e-3
min_lr = 1e-3
warmup = 0.0
weight_decay = 0.0
ema = 0.5
ema_warmup = false
drop_path = 0.0
augment_ops = []
erase_p = 0.0
crop_scale = [1.0, 1.0]
crop_ratio = [1.0, 1.0]
"""


def _heldout(store_path):
    """(images, study keys, {study: labels.csv row}, {study: report}) of the val+test images."""
    import csv

    from radadapt.manifest import Store

    store = Store(store_path)
    with open(store.labels_csv, encoding="utf-8", newline="") as fh:
        labels = {row["study_key"]: row for row in csv.DictReader(fh)}
    records = list(store.records())
    reports = {}
    for r in records:
        if r.report_text and r.report_text.strip():
            reports.setdefault(r.study_key, r.report_text)
    held = [r for r in records if r.split in ("val", "test")]
    return [store.image(r) for r in held], [r.study_key for r in held], labels, reports


def _zero_shot(encoder, images, studies, labels):
    """{label: AUROC} of cosine(image, "x-ray chest {label}") for the planted findings and devices."""
    from sklearn.metrics import roc_auc_score

    from radadapt.demo.truth import DEVICE_NAMES, FINDING_NAMES

    encoder.input_size = SIZE  # score at the training crop size
    with torch.no_grad():
        u = encoder.encode_image(encoder.preprocess(images)).numpy()
        names = list(FINDING_NAMES) + list(DEVICE_NAMES)
        t = encoder.encode_text([f"x-ray chest {n}" for n in names]).numpy()
    scores = u @ t.T
    out = {}
    for j, name in enumerate(names):
        positive = "1" if name in FINDING_NAMES else "present"
        y = np.array([labels[s][name] == positive for s in studies])
        if min(y.sum(), (~y).sum()) >= 5:
            out[name] = float(roc_auc_score(y, scores[:, j]))
    return out


def _report_mrr(encoder, images, studies, reports):
    """Held-out image -> report mean reciprocal rank (gallery: one report per held-out study)."""
    encoder.input_size = SIZE
    gallery = sorted({s for s in studies if s in reports})
    col = {s: i for i, s in enumerate(gallery)}
    query = [i for i, s in enumerate(studies) if s in col]
    with torch.no_grad():
        u = encoder.encode_image(encoder.preprocess([images[i] for i in query])).numpy()
        v = encoder.encode_text([reports[s] for s in gallery]).numpy()
    sim = u @ v.T
    ranks = [1 + int((sim[k] > sim[k, col[studies[i]]]).sum()) for k, i in enumerate(query)]
    return float(np.mean([1.0 / r for r in ranks]))


@pytest.fixture(scope="module")
def unicl_run(heldout_store, mi2_tiny_dir, tmp_path_factory):
    from typer.testing import CliRunner

    from radadapt.cli import app

    torch.set_num_threads(1)  # module scope: the autouse one-thread fixture is not active yet
    root = tmp_path_factory.mktemp("unicl-run")
    cfg = root / "radadapt.toml"
    cfg.write_text(CONFIG)
    run = root / "run"
    args = ["train", "--model", "mi2", "--store", heldout_store, "--weights", mi2_tiny_dir, "--out", run,
            "--max-steps", STEPS, "--batch-size", 16, "--config", cfg, "--json"]
    res = CliRunner().invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.stderr
    return run, json.loads(res.stdout)


@pytest.mark.slow
def test_a_short_run_lowers_the_loss_and_raises_held_out_zero_shot(unicl_run, heldout_store, mi2_tiny_dir):
    from radadapt.models import registry

    run, result = unicl_run
    assert result["status"] == "completed" and result["steps"] == STEPS and result["family"] == "mi2"
    rows = [json.loads(line) for line in open(run / "metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    for r in rows:
        assert np.isfinite([r["loss"], r["unicl_i2t"], r["unicl_t2i"], r["logit_scale"]]).all()
    late = float(np.mean([r["loss"] for r in rows[-8:]]))
    assert late < rows[0]["loss"] - 0.3, (rows[0]["loss"], late)  # measured 3.5 -> 2.65
    run_json = json.loads((run / "run.json").read_text())
    assert run_json["status"] == "completed" and run_json["settings"]["sources"] == ["reports", "findings", "devices"]
    assert any("with a label prompt" in rule for rule in run_json["rules"])

    images, studies, labels, reports = _heldout(heldout_store)
    assert len(images) >= 120
    base, trained = registry.load_encoder(mi2_tiny_dir), registry.load_encoder(run)
    auc0, auc1 = _zero_shot(base, images, studies, labels), _zero_shot(trained, images, studies, labels)
    assert auc0.keys() == auc1.keys() and len(auc0) >= 8, auc0
    macro0, macro1 = float(np.mean(list(auc0.values()))), float(np.mean(list(auc1.values())))
    better = sum(auc1[k] > auc0[k] for k in auc0)
    print(f"held-out ({len(images)} images, {len(auc0)} labels): zero-shot macro AUROC {macro0:.3f} -> {macro1:.3f} "
          f"({better} labels up); image->report MRR {_report_mrr(base, images, studies, reports):.3f} -> "
          f"{_report_mrr(trained, images, studies, reports):.3f}")
    assert macro0 < 0.56, auc0  # the random checkpoint is at chance
    assert macro1 > macro0 + 0.08 and macro1 > 0.58, (auc0, auc1)  # measured 0.484 -> 0.644 (seed 1: 0.637)
    assert better >= len(auc0) // 2 + 1, (auc0, auc1)  # a broad gain, not one label


@pytest.mark.slow
def test_final_is_the_release_layout_a_timm_tower_and_the_tokenizer(unicl_run, mi2_tiny_dir, tmp_path):
    import timm
    from safetensors.torch import load_file

    from radadapt.models import mi2, registry
    from radadapt.train.objectives.unicl import RUN_INFO, TIMM_TOWER

    run, result = unicl_run
    final = run / "final"
    info = json.loads((final / RUN_INFO).read_text())
    assert info["weights"] == "ema" and info["steps"] == STEPS and info["timm_file"] == TIMM_TOWER
    assert set(result["final_files"]) >= {mi2.WEIGHTS_FILE, mi2.CONFIG_FILE, TIMM_TOWER, RUN_INFO}
    for name in ("vocab.json", "merges.txt"):  # the tokenizer, byte for byte
        assert (final / mi2.TOKENIZER_DIR / name).read_bytes() == (mi2_tiny_dir / mi2.TOKENIZER_DIR / name).read_bytes()
    assert registry.detect_family(run) == "mi2"
    model, _tok, cfg, _files = mi2.load_pretrained(final)
    base = mi2.load_pretrained(mi2_tiny_dir)[0]
    assert not torch.equal(model.image_projection, base.image_projection)  # trained weights were written

    moved = tmp_path / "elsewhere.safetensors"  # timm reads the file on its own, wherever it is
    shutil.copyfile(final / TIMM_TOWER, moved)
    tower = timm.create_model("davit_huge_fl", pretrained=True, num_classes=0, **cfg.timm_kwargs(),
                              pretrained_cfg_overlay=mi2.timm_pretrained_cfg_overlay(cfg, moved)).eval()
    saved = load_file(moved)
    assert saved.keys() == tower.state_dict().keys()
    for name, value in tower.state_dict().items():
        assert torch.equal(value, saved[name]), name
    encoder = registry.load_encoder(run)
    assert encoder.input_size == SIZE  # final/config.yaml records the size the run trained (and evaluates) at
    x = encoder.preprocess([np.full((90, 100), 120, np.uint8), np.eye(100, dtype=np.uint8) * 255])
    with torch.no_grad():
        assert torch.allclose(tower.forward_head(tower.forward_features(x), pre_logits=True),
                              encoder.features(x)["cls"], atol=1e-5)
