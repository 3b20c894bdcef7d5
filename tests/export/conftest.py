"""Fixtures for the export stage: run directories on the demo store (a real ingest with a private audit).

``make_run`` assembles a completed run exactly as docs/architecture.md section 5 describes it (run.json,
config.json, train_patients.txt, metrics.jsonl, final/) around a tiny model, so export is tested on the run
contract without paying for training; one slow test trains for real (test_roundtrip.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from export_helpers import write_run


@pytest.fixture(scope="session")
def export_site(demo_store):
    """The demo store's key, private audit folder and ids."""
    from radadapt.manifest import Store

    store = Store(demo_store)
    site = demo_store.parent / "site"
    return {"store": demo_store, "key": site / "site.key", "private": site / "private",
            "store_id": store.info.store_id, "key_fingerprint": store.info.key_fingerprint,
            "identifiers": site / "private" / f"{store.info.store_id}.identifiers.txt"}


@pytest.fixture(scope="session")
def make_run(export_site, tmp_path_factory):
    def make(family: str, model_src: Path, **kw) -> Path:  # a distinctive run name, to search exports for it
        return write_run(tmp_path_factory.mktemp("runs") / f"ward7-{family}-run", family, model_src, export_site, **kw)

    return make


@pytest.fixture(scope="session")
def rad_dino_run(make_run, rad_dino_tiny_dir):
    return make_run("rad_dino", rad_dino_tiny_dir)


@pytest.fixture(scope="session")
def rad_dino_export(rad_dino_run, export_site, tmp_path_factory):
    """(run, export dir, the export result) for the tiny RAD-DINO run, scanned against the demo audit."""
    from radadapt.export.exporter import ExportRequest, export_run

    out = tmp_path_factory.mktemp("exports") / "rad-dino"
    result = export_run(ExportRequest(run=rad_dino_run, out=out, site_key=export_site["key"]))
    return rad_dino_run, out, result


@pytest.fixture(scope="session")
def mi2_run(make_run, mi2_tiny_dir):
    return make_run("mi2", mi2_tiny_dir)


@pytest.fixture(scope="session")
def mi2_export(mi2_run, export_site, tmp_path_factory):
    from radadapt.export.exporter import ExportRequest, export_run

    out = tmp_path_factory.mktemp("exports") / "mi2"
    result = export_run(ExportRequest(run=mi2_run, out=out, site_key=export_site["key"]))
    return mi2_run, out, result


@pytest.fixture(scope="session")
def planted_name(demo_archive, export_site):
    """A person's name from the demo archive's phi.json whose fingerprint is in the private audit (the test uses
    ingest's own fingerprint function as the oracle), as written in the archive."""
    from radadapt.ingest.audit import contains
    from radadapt.ingest.deid import fingerprint, tokens
    from radadapt.sitekey import load_key

    key = load_key(export_site["key"])
    phi = json.loads((demo_archive / "phi.json").read_text(encoding="utf-8"))
    for name in phi["names"]:
        toks = tokens(name)
        if len(toks) >= 2 and contains(export_site["identifiers"], fingerprint(key, " ".join(toks))):
            return name
    raise AssertionError("no two-word name of phi.json is in the audit")


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


@pytest.fixture()
def site_config(tmp_path):
    """Write a radadapt.toml with the given TOML text; returns its path."""
    def write(text: str) -> Path:
        p = tmp_path / "radadapt.toml"
        p.write_text(text, encoding="utf-8")
        return p

    return write

