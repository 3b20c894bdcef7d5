"""Resume after kill -9: the rerun ends with exactly the store an uninterrupted run makes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from radadapt.config import IngestSection
from radadapt.ingest.pipeline import IngestRequest, run_ingest

from .factory import chest_phantom, make_dataset, write
from .test_pipeline import make_key, snapshot


@pytest.mark.slow
def test_kill_after_first_chunk_then_resume_equals_clean_run(tmp_path):
    archive = tmp_path / "archive"
    for i in range(16):
        ds = make_dataset(chest_phantom(256, 224, seed=i), uid=f"1.2.7.{i}", patient_id=f"P{i % 9}", accession=f"A{i}")
        write(ds, archive / f"patient {i % 9}" / f"IM{i:03d}", "1.2.840.10008.1.2.4.90" if i % 2 else "1.2.840.10008.1.2.5")
    reports = tmp_path / "reports.csv"
    reports.write_text("accession_number,report_text\n" + "".join(f"A{i},Report {i}: no effusion.\n" for i in range(16)))
    key = make_key(tmp_path / "site" / "site.key")
    cfg_file = tmp_path / "radadapt.toml"
    cfg_file.write_text("[ingest]\nchunk_files = 1\nresolution = 96\n")
    store = tmp_path / "store"
    env = dict(os.environ, RADADAPT_PROGRESS="0")
    proc = subprocess.Popen(
        [sys.executable, "-m", "radadapt.cli", "ingest", str(archive), "--reports", str(reports), "--out", str(store),
         "--site-key", str(key), "--workers", "1", "--config", str(cfg_file)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    chunks = store / ".work" / "chunks"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if chunks.is_dir() and any(not p.name.startswith(".") for p in chunks.iterdir()):
                proc.kill()  # SIGKILL: no cleanup of any kind
                break
            time.sleep(0.005)
    finally:
        proc.kill()
        proc.wait()
    committed = [p for p in chunks.iterdir() if not p.name.startswith(".")]
    assert proc.returncode == -9 and 1 <= len(committed) < 16
    assert not json.loads((store / "store.json").read_text())["complete"]

    cfg = IngestSection(chunk_files=1, resolution=96)
    resumed = run_ingest(IngestRequest(archive=archive, reports=reports, store=store, key_file=key, cfg=cfg, workers=1))
    assert resumed["store"]["chunks"]["skipped"] >= 1 and resumed["ok"] == 16
    clean = tmp_path / "clean"
    run_ingest(IngestRequest(archive=archive, reports=reports, store=clean, key_file=key, cfg=cfg, workers=1))
    a, b = snapshot(store), snapshot(clean)
    assert a.keys() == b.keys() and a == b
    assert any(k.startswith("images/") for k in a)
