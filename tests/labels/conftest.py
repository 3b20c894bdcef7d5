"""Fixtures for the labels tests: the packaged labeler (compiled once per session) and a small store writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def labeler():
    from radadapt.labels import Labeler

    return Labeler()


@pytest.fixture()
def label(labeler):
    """label(text) -> {column: value} with blanks dropped."""

    def run(text: str) -> dict[str, str]:
        result = labeler.label(text)
        return {c: v for c, v in zip(labeler.columns, result.values) if v}

    return run


def write_store(path: Path, studies: list[tuple[str, str, list[str | None]]]) -> Path:
    """A minimal complete store: studies are (patient_key, study_key, [report_text per image])."""
    path.mkdir(parents=True, exist_ok=True)
    rows = []
    for patient, study, texts in studies:
        for k, text in enumerate(texts):
            rows.append({"image_key": f"{study}-img{k}", "study_key": study, "patient_key": patient, "split": "train",
                         "orig_height": 8, "orig_width": 8, "shard": "000", "offset": 64 * len(rows), "height": 8,
                         "width": 8, "report_text": text})
    (path / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (path / "store.json").write_text(json.dumps({
        "store_id": "test-store", "radadapt_version": "0", "key_fingerprint": "0" * 16, "resolution": 8,
        "n_images": len(rows), "complete": True}), encoding="utf-8")
    return path
