import json

import numpy as np
import pytest

from radadapt import atomic
from radadapt.errors import DataError
from radadapt.manifest import ImageRecord, Store, StoreInfo


def _make_store(root, images, complete=True):
    (root / "images").mkdir(parents=True)
    buf = bytearray()
    rows = []
    for i, (split, img) in enumerate(images):
        rows.append(
            ImageRecord(
                image_key=f"img{i}", study_key=f"st{i}", patient_key=f"pt{i // 2}", split=split,
                orig_height=img.shape[0] * 4, orig_width=img.shape[1] * 4,
                shard="000000", offset=len(buf), height=img.shape[0], width=img.shape[1],
            ).model_dump(mode="json")
        )
        buf += img.tobytes()
    (root / "images" / "000000.u8").write_bytes(bytes(buf))
    atomic.write_jsonl(root / "manifest.jsonl", rows)
    info = StoreInfo(store_id="s", radadapt_version="0", key_fingerprint="f", resolution=8,
                     n_images=len(rows), complete=complete)
    atomic.write_json(root / "store.json", info.model_dump(mode="json"))


def test_store_reads_records_and_pixels(tmp_path):
    rng = np.random.default_rng(0)
    imgs = [("train", rng.integers(0, 255, (8, 10), dtype=np.uint8)),
            ("test", rng.integers(0, 255, (10, 8), dtype=np.uint8)),
            ("train", rng.integers(0, 255, (8, 8), dtype=np.uint8))]
    _make_store(tmp_path / "s", imgs)
    store = Store(tmp_path / "s")
    recs = list(store.records("train"))
    assert [r.image_key for r in recs] == ["img0", "img2"]
    assert np.array_equal(store.image(recs[1]), imgs[2][1])
    idx = store.index("train")
    assert len(idx) == 2 and np.array_equal(store.image_at(idx, 0), imgs[0][1])
    assert len(store.index(patient_keys={"pt1"})) == 1


def test_incomplete_or_missing_store_is_clear(tmp_path):
    with pytest.raises(DataError) as info:
        Store(tmp_path)
    assert info.value.code == "store.not_a_store"
    _make_store(tmp_path / "s", [("train", np.zeros((4, 4), np.uint8))], complete=False)
    with pytest.raises(DataError) as info:
        Store(tmp_path / "s")
    assert info.value.code == "store.incomplete"


def test_manifest_rejects_unknown_fields():
    with pytest.raises(ValueError):
        ImageRecord.model_validate({"image_key": "a", "PatientName": "DOE^JOHN"})
