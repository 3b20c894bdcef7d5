"""UniCL pairs from a real (demo) store and its `radadapt labels` output, and the MI2 augmentation."""

import csv
import shutil

import numpy as np
import pytest
import torch

from radadapt.config import TrainSection
from radadapt.errors import ConfigError, DataError
from radadapt.manifest import Store
from radadapt.train.augment_mi2 import OPS, MI2Augment, MI2AugmentSpec, apply_op, erase_box, erase_mask
from radadapt.train.data import StoreStream, select_training_set
from radadapt.train.objectives.unicl_data import (NO_TEXT, PROMPT, REPORT, VIEW_WORDS, UniCLCollate, UniCLTransform,
                                                 build_pair_tables)


def _cfg(**unicl):
    return TrainSection.model_validate({"unicl": unicl}).unicl


def _truth(store_path):
    """Per training image: (study_key, view, the study's first non-empty report, its positive facts)."""
    store = Store(store_path)
    info = store.labels_info()
    with open(store.labels_csv, encoding="utf-8", newline="") as fh:
        rows = {r["study_key"]: r for r in csv.DictReader(fh)}
    records = list(store.records())
    reports = {}
    for r in records:
        if r.report_text and r.report_text.strip():
            reports.setdefault(r.study_key, r.report_text)
    out = {}
    for r in records:
        if r.split == "train":
            row = rows[r.study_key]
            facts = [f for f in info.findings if row[f] == "1"] + [d for d in info.devices if row[d] == "present"]
            out[r.image_key] = (r.study_key, r.view, reports.get(r.study_key), facts)
    return out


def _transform(store_path, size=48, **unicl):
    store = Store(store_path)
    ts = select_training_set(store)
    cfg = _cfg(**unicl)
    tables = build_pair_tables(store, ts.index, cfg)
    return tables, UniCLTransform(tables, store.manifest_path, MI2AugmentSpec(size=size), cfg), ts


def test_tables_match_the_manifest_and_labels_csv(demo_store_labelled):
    tables, _, ts = _transform(demo_store_labelled)
    truth = _truth(demo_store_labelled)
    st = tables.stats
    assert st["images"] == len(truth) == len(ts.index)
    assert st["with_report"] == sum(t[2] is not None for t in truth.values())
    assert st["with_labels"] == sum(bool(t[3]) for t in truth.values())
    assert st["with_neither"] == sum(t[2] is None and not t[3] for t in truth.values())
    for name, count in st["facts"].items():
        assert count == sum(name in t[3] for t in truth.values()), name
    assert st["with_report"] > 10 and st["with_labels"] > 10 and sum(st["facts"].values()) > 20
    assert tables.fact_names[:2] == ["No Finding", "Enlarged Cardiomediastinum"] and "chest tube" in tables.fact_names
    # compact: a few tens of bytes per image, no text held
    per_image = sum(a.nbytes for a in (tables.keys, tables.study, tables.view, tables.report_at, tables.facts))
    assert per_image / st["images"] < 64


def test_each_image_gets_its_own_report_or_a_prompt_of_its_own_labels(demo_store_labelled):
    truth = _truth(demo_store_labelled)
    _, reports_first, _ = _transform(demo_store_labelled, label_fraction=0.0)
    _, prompts_first, _ = _transform(demo_store_labelled, label_fraction=1.0)
    image = np.full((60, 70), 128, np.uint8)
    seen = {REPORT: 0, PROMPT: 0, NO_TEXT: 0}
    prompt_class = {}
    for key, (study, view, report, facts) in truth.items():
        for transform in (reports_first, prompts_first):
            s = transform(image, np.random.default_rng(0), key)
            seen[s["kind"]] += 1
            if s["kind"] == REPORT:
                assert s["text"] == report and s["cls"] == 0
                assert transform is reports_first or not facts  # a prompt whenever labels exist, at fraction 1
            elif s["kind"] == PROMPT:
                assert transform is prompts_first or report is None
                fact = next(f for f in facts if s["text"] == " ".join(f"x-ray chest {VIEW_WORDS[view]} {f}".split()))
                prompt_class.setdefault((VIEW_WORDS[view], fact), set()).add(s["cls"])
            else:
                assert report is None and not facts and s["cls"] == -1 and s["text"] == ""
    assert min(seen.values()) > 0
    # equal labels (same view and fact) share one class id; different ones do not
    assert all(len(ids) == 1 for ids in prompt_class.values())
    ids = [next(iter(v)) for v in prompt_class.values()]
    assert len(set(ids)) == len(ids) and min(ids) > 0


def test_samples_are_deterministic_and_label_modes(demo_store_labelled):
    truth = _truth(demo_store_labelled)
    key = next(k for k, t in truth.items() if len(t[3]) >= 2)
    image = np.random.default_rng(1).integers(0, 255, (80, 90), dtype=np.uint8)
    _, one, _ = _transform(demo_store_labelled, label_fraction=1.0)
    a, b = one(image, np.random.default_rng(7), key), one(image, np.random.default_rng(7), key)
    assert a["text"] == b["text"] and torch.equal(a["image"], b["image"]) and torch.equal(a["erase"], b["erase"])
    drawn = {one(image, np.random.default_rng(s), key)["text"] for s in range(40)}
    assert len(drawn) >= 2  # one fact per prompt, drawn per sample
    _, as_set, _ = _transform(demo_store_labelled, label_fraction=1.0, label_mode="set",
                              prompt_templates=["{label} on a {view} chest film"])
    s = as_set(image, np.random.default_rng(0), key)
    facts, view = truth[key][3], VIEW_WORDS[truth[key][1]]
    assert s["text"] == " ".join(f"{', '.join(facts)} on a {view} chest film".split())


def test_collate_tokenises_and_gives_report_classes(demo_store_labelled, mi2_tiny_dir):
    from radadapt.models import mi2

    truth = _truth(demo_store_labelled)
    same_study = {}
    for key, t in truth.items():
        same_study.setdefault(t[0], []).append(key)
    pair = next(keys for keys in same_study.values() if len(keys) >= 2 and truth[keys[0]][2])
    other = next(k for k, t in truth.items() if t[2] and t[0] != truth[pair[0]][0])
    _, transform, _ = _transform(demo_store_labelled, label_fraction=0.0)
    image = np.zeros((50, 50), np.uint8)
    samples = [{**transform(image, np.random.default_rng(i), k), "position": i} for i, k in enumerate([*pair[:2], other])]
    tok_dir = mi2_tiny_dir / mi2.TOKENIZER_DIR
    batch = UniCLCollate(tok_dir, 77, "text")(samples)
    assert batch["input_ids"].shape == (3, 77) and batch["pixels"].shape == (3, 1, 48, 48)
    assert batch["pixels"].dtype == torch.uint8 and batch["kinds"].tolist() == [REPORT] * 3
    labels = batch["labels"].tolist()
    assert labels[0] == labels[1] != labels[2] and min(labels) > 0  # one study's report: one class
    assert UniCLCollate(tok_dir, 77, "unique")(samples)["labels"].tolist() == [0, 0, 0]
    eos = mi2.load_tokenizer(tok_dir).eos_token_id
    assert all(int(row[int(m.sum()) - 1]) == eos for row, m in zip(batch["input_ids"], batch["attention_mask"]))


def test_the_trainer_stream_feeds_the_transform(demo_store_labelled, mi2_tiny_dir):
    from radadapt.models import mi2

    tables, transform, ts = _transform(demo_store_labelled)
    stream = StoreStream(str(demo_store_labelled), ts.index, transform, seed=3)
    collate = UniCLCollate(mi2_tiny_dir / mi2.TOKENIZER_DIR, 77, "text")
    batch = collate([stream[p] for p in range(len(ts.index) + 5)])  # past one epoch
    assert batch["positions"].tolist() == list(range(len(ts.index) + 5))
    assert (batch["labels"] >= 0).sum() > len(ts.index) // 2


def test_store_without_labels_refused_or_reports_only(demo_store, tmp_path, mi2_tiny_dir):
    from radadapt.train.objectives.unicl import build_objective

    store = Store(demo_store)
    ts = select_training_set(store)
    strict = build_objective(mi2_tiny_dir, TrainSection(), n_images=len(ts.index), global_batch=8, steps_per_epoch=1)
    with pytest.raises(DataError) as info:
        strict.attach_data(store, ts)
    assert info.value.code == "train.unicl_no_labels" and "radadapt labels" in info.value.hint
    lenient = build_objective(mi2_tiny_dir, TrainSection.model_validate({"unicl": {"require_labels": False}}),
                              n_images=len(ts.index), global_batch=8, steps_per_epoch=1)
    lenient.attach_data(store, ts)
    assert any("WARNING" in r and "reports only" in r for r in lenient.settings.rules)
    assert lenient.tables.fact_names == [] and lenient.tables.stats["with_labels"] == 0
    assert lenient.tables.stats["with_report"] > 0


def test_stale_or_wrong_labels_are_refused(demo_store_labelled, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(demo_store_labelled, copy)
    lines = (copy / "labels.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (copy / "labels.csv").write_text("".join([lines[0], *lines[2:]]), encoding="utf-8")  # a study's row is gone
    store = Store(copy)
    with pytest.raises(DataError) as info:
        build_pair_tables(store, select_training_set(store).index, _cfg())
    assert info.value.code == "train.unicl_labels_stale"
    with pytest.raises(ConfigError) as info:
        build_pair_tables(Store(demo_store_labelled), select_training_set(Store(demo_store_labelled)).index,
                          _cfg(findings=["Pneumothorax", "Dragon Scales"]))
    assert info.value.code == "train.unicl_unknown_label" and "Dragon Scales" in info.value.message


# -- augmentation -----------------------------------------------------------------------------------------------
def test_augment_shapes_and_that_nothing_flips():
    aug = MI2Augment(MI2AugmentSpec(size=40))
    image = np.zeros((70, 60), np.uint8)
    image[:, :25] = 200  # bright left side (the patient's right on a PA film)
    for seed in range(120):
        out = aug(image, np.random.default_rng(seed))
        x = out["image"]
        assert x.shape == (1, 40, 40) and x.dtype == torch.uint8 and out["erase"].shape == (4,)
        left, right = x[0, :, :12].float().mean(), x[0, :, 28:].float().mean()
        assert left > right + 40, seed  # rotation <= 15 deg, shear <= 0.2, no flips: the left stays left


def test_each_operation_runs_and_identity_is_the_plain_resized_crop():
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    img = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (1, 32, 32), dtype=np.uint8))
    for op in OPS:
        for m in (-1.0, 0.5):
            out = apply_op(img, op, m * 0.1)
            assert out.shape == img.shape and out.dtype == torch.uint8, op
    assert not torch.equal(apply_op(img, "rotate", 10.0), img) and torch.equal(apply_op(img, "identity", 3.0), img)
    aug = MI2Augment(MI2AugmentSpec(size=24, scale=(1.0, 1.0), ratio=(1.0, 1.0), ops=("identity",), erase_p=0.0))
    square = np.random.default_rng(1).integers(0, 256, (50, 50), dtype=np.uint8)
    expected = TF.resize(torch.from_numpy(square)[None], [24, 24], interpolation=InterpolationMode.BICUBIC,
                         antialias=True)
    assert torch.equal(aug(square, np.random.default_rng(0))["image"], expected)
    with pytest.raises(ValueError):
        MI2Augment(MI2AugmentSpec(size=24, ops=("hflip",)))


def test_random_erasing_boxes_and_mask():
    rng = np.random.default_rng(0)
    boxes = np.stack([erase_box(rng, 40, 0.25, (0.02, 0.33), (0.3, 3.3)) for _ in range(4000)])
    erased = boxes[:, 2] > 0
    assert 0.22 < erased.mean() < 0.28  # p = 0.25
    b = boxes[erased]
    area = b[:, 2] * b[:, 3] / 1600
    assert area.min() >= 0.015 and area.max() <= 0.35
    assert (b[:, 0] + b[:, 2] <= 40).all() and (b[:, 1] + b[:, 3] <= 40).all() and (b[:, :2] >= 0).all()
    mask = erase_mask(torch.tensor([[2, 3, 4, 5], [0, 0, 0, 0]], dtype=torch.int32), 10)
    assert mask.shape == (2, 1, 10, 10) and int(mask[0].sum()) == 20 and int(mask[1].sum()) == 0
    assert bool(mask[0, 0, 2, 3]) and bool(mask[0, 0, 5, 7]) and not bool(mask[0, 0, 6, 7]) and not bool(mask[0, 0, 2, 8])
