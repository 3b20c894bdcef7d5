"""The synthetic hospital end to end: every file's fate matches the generator's ground truth; zero PHI out."""

from __future__ import annotations

import json

import numpy as np

from radadapt.manifest import Store

from .test_pipeline import assert_no_phi


def _phi_strings(phi: object) -> list[str]:
    out: list[str] = []
    if isinstance(phi, str):
        out.append(phi)
    elif isinstance(phi, list):
        for v in phi:
            out += _phi_strings(v)
    elif isinstance(phi, dict):
        for v in phi.values():
            out += _phi_strings(v)
    return out


def test_demo_store_matches_ground_truth(demo_archive, demo_store):
    truth = {r["relpath"]: r for r in map(json.loads, (demo_archive / "ground_truth.jsonl").read_text().splitlines())}
    audit_file = next((demo_store.parent / "site" / "private").glob("*.audit.jsonl"))
    got = {r["path"]: r for r in map(json.loads, audit_file.read_text().splitlines()[1:])}
    assert got.keys() == truth.keys()
    wrong = {p: (truth[p]["expected_state"], truth[p]["expected_reason"], got[p]["state"], got[p]["reason"])
             for p in truth if (got[p]["state"], got[p]["reason"]) != (truth[p]["expected_state"], truth[p]["expected_reason"])}
    assert not wrong
    store = Store(demo_store)
    records = list(store.records())
    assert len(records) == sum(t["expected_state"] == "ok" for t in truth.values())
    masks = list(store.masks())
    kept = {r.image_key: r for r in records}
    assert masks and all(m.image_key in kept for m in masks)
    from PIL import Image

    for m in masks[:5]:
        with Image.open(demo_store / "masks" / m.path) as im:
            arr = im.convert("L")
            assert arr.size == (kept[m.image_key].width, kept[m.image_key].height)
            assert set(np.unique(np.asarray(arr)).tolist()) <= {0, 255}
    names = {p.name for p in (demo_store / "masks").glob("*.png")}
    assert names == {m.path for m in masks}  # no mask of a dropped image is left behind


def test_demo_zero_phi_in_store_and_console(demo_archive, tmp_path, cli):
    from radadapt import atomic

    key = tmp_path / "site" / "site.key"
    atomic.write_text(key, bytes(range(32)).hex() + "\n", perms=0o600)
    store = tmp_path / "store"
    args = ["ingest", demo_archive / "archive", "--reports", demo_archive / "reports.csv", "--out", store,
            "--site-key", key, "--resolution", "112", "--masks", demo_archive / "masks", "--workers", "1"]
    res = cli(*args)
    assert res.exit_code == 0, res.stderr
    again = cli(*args, "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["store"]["nothing_to_do"]
    phi = _phi_strings(json.loads((demo_archive / "phi.json").read_text()))
    assert len(phi) > 500
    assert_no_phi(store, res.stdout + res.stderr + again.stdout + again.stderr, phi)
