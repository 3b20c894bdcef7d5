"""Fixtures for the train stage: a small synthetic store (radiograph-like phantoms) and the tiny RAD-DINO.

The store is written with ``radadapt.manifest``'s own records, so the trainer reads it exactly as it reads an
ingested store: patient-level splits, manifest order by (patient, study, image), raw uint8 shards.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from radadapt import atomic
from radadapt.manifest import ImageRecord, StoreInfo

# Small but not trivial: the tiny model's patch is 14 px, so 56 px global crops are a 4 x 4 grid.
TINY_DINO = {
    "global_crop_size": 56, "local_crop_size": 28, "local_crops": 4, "head_hidden_dim": 64,
    "head_bottleneck_dim": 32,
}


def phantom(rng: np.random.Generator, size: int = 72) -> np.ndarray:
    """A chest-film-like uint8 image: bright body, two dark lungs, a heart blob, rib arcs, noise."""
    h, w = size, size + int(rng.integers(0, 12))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.full((h, w), 170.0) + rng.normal(0, 6, (h, w))
    for side in (-1, 1):
        cx, cy = w / 2 + side * w * rng.uniform(0.17, 0.24), h * rng.uniform(0.45, 0.55)
        rx, ry = w * rng.uniform(0.12, 0.18), h * rng.uniform(0.28, 0.36)
        img -= 90 * (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1)
    hx, hy = w / 2 + w * rng.uniform(0.02, 0.1), h * rng.uniform(0.6, 0.7)
    img += 60 * (((xx - hx) / (w * rng.uniform(0.1, 0.16))) ** 2 + ((yy - hy) / (h * 0.12)) ** 2 < 1)
    for k in range(int(rng.integers(3, 7))):
        img += 25 * (np.abs(yy - (h * 0.2 + k * h * 0.1) - 0.002 * (xx - w / 2) ** 2) < 1.2)
    return np.clip(img, 0, 255).astype(np.uint8)


def build_store(root: Path, n_patients: int = 24, images_per_patient: tuple[int, int] = (1, 3), seed: int = 0,
                splits: tuple[float, float] = (0.7, 0.85)) -> Path:
    """A complete store: patients split train/val/test by a hash, 1-3 images each."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows, buf = [], bytearray()
    for p in range(n_patients):
        patient = hashlib.sha256(f"patient{p}".encode()).hexdigest()[:20]
        u = int(hashlib.sha256(patient.encode()).hexdigest()[:8], 16) / 2**32
        split = "train" if u < splits[0] else ("val" if u < splits[1] else "test")
        for i in range(int(rng.integers(images_per_patient[0], images_per_patient[1] + 1))):
            img = phantom(rng)
            rows.append(ImageRecord(
                image_key=hashlib.sha256(f"img{p}-{i}".encode()).hexdigest()[:20], study_key=f"st{p}-{i}",
                patient_key=patient, split=split, orig_height=img.shape[0] * 8, orig_width=img.shape[1] * 8,
                shard="000000", offset=len(buf), height=img.shape[0], width=img.shape[1],
            ).model_dump(mode="json"))
            buf += img.tobytes()
    rows.sort(key=lambda r: (r["patient_key"], r["study_key"], r["image_key"]))
    (root / "images" / "000000.u8").write_bytes(bytes(buf))
    atomic.write_jsonl(root / "manifest.jsonl", rows)
    counts = {s: sum(r["split"] == s for r in rows) for s in ("train", "val", "test")}
    info = StoreInfo(store_id=f"test-store-{seed}", radadapt_version="test", key_fingerprint="0" * 16,
                     resolution=72, n_images=len(rows), splits=counts, complete=True)
    atomic.write_json(root / "store.json", info.model_dump(mode="json"))
    return root


@pytest.fixture(scope="session")
def train_store(tmp_path_factory) -> Path:
    return build_store(tmp_path_factory.mktemp("train-store") / "store", n_patients=40)


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    from radadapt.models import rad_dino

    out = tmp_path_factory.mktemp("tiny") / "rad-dino-tiny"
    rad_dino.write_tiny(out, seed=0)
    return out


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread: the tiny models are latency-bound, and CI cores are shared (oversubscription made
    a 0.2 s step take seconds)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def heldout_store(tmp_path_factory) -> Path:
    """A labelled demo store big enough to measure held-out zero-shot (tests/train/test_unicl_run.py):
    ``generate_archive(n=400, seed=1, size=128)`` ingested at 64 px with split 0.6/0.2/0.2 (by patient hash:
    280 images, 123 train and 157 val+test), then ``label_store``. About 25 s on one core; read-only."""
    from radadapt.config import IngestSection, SplitSection
    from radadapt.demo.archive import generate_archive
    from radadapt.ingest.pipeline import IngestRequest, run_ingest
    from radadapt.labels.extract import label_store

    root = tmp_path_factory.mktemp("heldout_store")
    generate_archive(root / "demo", n=400, seed=1, size=128)
    key = root / "site" / "site.key"
    atomic.write_text(key, bytes(range(32)).hex() + "\n", perms=0o600)  # a fixed test key, never a site's
    store = root / "store"
    run_ingest(IngestRequest(archive=root / "demo" / "archive", reports=root / "demo" / "reports.csv", store=store,
                             key_file=key, workers=1,
                             cfg=IngestSection(resolution=64, split=SplitSection(train=0.6, val=0.2, test=0.2))))
    label_store(store)
    return store
