"""A small labelled store with planted signals, written in the real store format (radadapt/manifest.py).

Findings and devices leave visible marks so that a frozen tiny encoder can pick them up: Cardiomegaly a bright
central ellipse, Pleural Effusion a bright lower band, an endotracheal tube a bright vertical line (with a mask).
Pneumothorax is nearly absent (too few positives) and chest tube never appears in test (no positives).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np

FINDINGS = ["No Finding", "Cardiomegaly", "Pleural Effusion", "Pneumothorax"]
DEVICES = ["endotracheal tube", "chest tube"]
H, W = 64, 80


def _key(*parts: object) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()[:20]


def _draw(rng: np.random.Generator, lab: dict) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    img = rng.normal(90, 18, (H, W))
    yy, xx = np.mgrid[0:H, 0:W]
    masks = {}
    if lab["Cardiomegaly"] == "1":
        img[((yy - 36) / 14) ** 2 + ((xx - 40) / 20) ** 2 < 1] += 70
    if lab["Pleural Effusion"] == "1":
        img[50:, :] += 60
    if lab["Pneumothorax"] == "1":
        img[:10, :20] -= 60
    if lab["endotracheal tube"] == "present":
        x0 = int(rng.integers(30, 50))
        m = np.zeros((H, W), bool)
        m[0:40, x0:x0 + 3] = True
        img[m] += 100
        masks["endotracheal tube"] = m
    if lab["chest tube"] == "present":
        m = np.zeros((H, W), bool)
        m[30:60, 8:11] = True
        img[m] += 100
        masks["chest tube"] = m
    return np.clip(img, 0, 255).astype(np.uint8), masks


def _report(lab: dict) -> str:
    parts = []
    if lab["Cardiomegaly"] == "1":
        parts.append("the heart is enlarged")
    if lab["Pleural Effusion"] == "1":
        parts.append("there is a pleural effusion")
    if lab["endotracheal tube"] == "present":
        parts.append("endotracheal tube in place")
    return ". ".join(parts) or "no acute cardiopulmonary abnormality"


def build_store(root: Path, n_patients: int = 60, seed: int = 0, *, labels: bool = True, masks: bool = True,
                store_id: str | None = None, split_fracs: tuple[float, float] = (0.5, 0.75)) -> dict:
    """Write a complete store; returns {"test_patients": [...], "train_patients": [...], "n": images}."""
    from PIL import Image

    from radadapt import atomic
    from radadapt.manifest import ImageRecord, LabelsInfo, MaskRecord, StoreInfo

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    rows, label_rows, mask_rows, pixels = [], [], [], []
    split_of = {}
    offset = 0
    for p in range(n_patients):
        pk = _key("patient", seed, p)
        u = rng.random()
        split = "train" if u < split_fracs[0] else ("val" if u < split_fracs[1] else "test")
        split_of[pk] = split
        for s in range(int(rng.integers(1, 3))):
            sk = _key("study", seed, p, s)
            lab = {"Cardiomegaly": "1" if rng.random() < 0.35 else ("-1" if rng.random() < 0.05 else ""),
                   "Pleural Effusion": "1" if rng.random() < 0.3 else ("0" if rng.random() < 0.5 else ""),
                   "Pneumothorax": "1" if (p == 1 and s == 0) else "0",
                   "endotracheal tube": "present" if rng.random() < 0.4 else ("removed" if rng.random() < 0.1 else "absent"),
                   "chest tube": "present" if (split == "train" and rng.random() < 0.3) else ("uncertain" if rng.random() < 0.05 else "")}
            lab["No Finding"] = "1" if not any(lab[f] == "1" for f in FINDINGS[1:]) else "0"
            label_rows.append({"study_key": sk, **{c: lab[c] for c in FINDINGS + DEVICES}})
            for i in range(int(rng.integers(1, 3))):
                ik = _key("image", seed, p, s, i)
                img, mk = _draw(rng, lab)
                rows.append(ImageRecord(image_key=ik, study_key=sk, patient_key=pk, split=split, view="PA",
                                        orig_height=H * 4, orig_width=W * 4, shard="000", offset=offset,
                                        height=H, width=W, report_text=_report(lab)))
                pixels.append(img.tobytes())
                offset += img.size
                for device, m in mk.items():
                    name = f"{ik}__{device}.png"
                    buf = io.BytesIO()
                    Image.fromarray((m * 255).astype(np.uint8)).save(buf, format="PNG")
                    mask_rows.append((name, buf.getvalue(), MaskRecord(image_key=ik, device=device, path=name)))
    rows.sort(key=lambda r: (r.patient_key, r.study_key, r.image_key))
    atomic.write_bytes(root / "images" / "000.u8", b"".join(pixels))
    atomic.write_text(root / "manifest.jsonl", "".join(r.model_dump_json() + "\n" for r in rows))
    atomic.write_text(root / "files.jsonl", "")
    splits = {s: sum(r.split == s for r in rows) for s in ("train", "val", "test")}
    info = StoreInfo(store_id=store_id or _key("store", seed), radadapt_version="test", key_fingerprint="0" * 16,
                     resolution=H, n_images=len(rows), splits=splits, complete=True)
    atomic.write_text(root / "store.json", info.model_dump_json(indent=2))
    if masks and mask_rows:
        for name, data, _ in mask_rows:
            atomic.write_bytes(root / "masks" / name, data)
        atomic.write_text(root / "masks" / "index.jsonl", "".join(r.model_dump_json() + "\n" for _, _, r in mask_rows))
    if labels:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=["study_key", *FINDINGS, *DEVICES], lineterminator="\n")
        w.writeheader()
        w.writerows(label_rows)
        atomic.write_text(root / "labels.csv", buf.getvalue())
        atomic.write_text(root / "labels.json", LabelsInfo(findings=FINDINGS, devices=DEVICES,
                                                           n_reports=len(label_rows)).model_dump_json(indent=2))
    return {"test_patients": sorted(k for k, s in split_of.items() if s == "test"),
            "train_patients": sorted(k for k, s in split_of.items() if s == "train"), "n": len(rows)}


def make_run(run_dir: Path, model_writer, patients: list[str], store_id: str, seed: int = 1) -> Path:
    """A run directory in the format of docs/architecture.md §5 (run.json, train_patients.txt, final/)."""
    from radadapt import atomic

    run_dir.mkdir(parents=True, exist_ok=True)
    model_writer(run_dir / "final", seed=seed)
    patients = sorted(patients)
    atomic.write_text(run_dir / "train_patients.txt", "".join(p + "\n" for p in patients))
    atomic.write_json(run_dir / "run.json", {
        "format": "radadapt-run", "version": 1, "status": "completed", "store": {"store_id": store_id},
        "subset": None, "data": {"images": 1000 * (seed + 1), "patients": len(patients),
                                 "patients_sha256": hashlib.sha256("\n".join(patients).encode()).hexdigest()}})
    atomic.write_text(run_dir / "metrics.jsonl", json.dumps({"step": 1, "loss": 1.0}) + "\n")
    return run_dir
