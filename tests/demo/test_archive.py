"""generate_archive: determinism, accounting, reuse and refusal, and agreement with the shared reason codes."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from radadapt.errors import UsageError
from tests.demo.conftest import N, SEED, SIZE

ROOT = Path(__file__).resolve().parents[2]


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_same_parameters_give_byte_identical_trees(demo_out, tmp_path):
    """Also across worker counts: the session archive was made by two processes, this one by one."""
    from radadapt.demo.archive import generate_archive

    again = tmp_path / "again"
    generate_archive(again, n=N, seed=SEED, size=SIZE, workers=1)
    first, second = _tree_digest(demo_out), _tree_digest(again)
    assert first.keys() == second.keys()
    differing = [k for k in first if first[k] != second[k]]
    assert differing == []
    assert "ground_truth.jsonl" in first and "phi.json" in first and "reports.csv" in first


def test_another_seed_gives_other_patients(phi_strings):
    from radadapt.demo.cohort import plan_cohort

    other = plan_cohort(N, SEED + 1, SIZE).registry.as_json()
    assert set(other["accession_numbers"]).isdisjoint(phi_strings["accession_numbers"])
    assert set(other["uids"]).isdisjoint(phi_strings["uids"])


def test_ground_truth_accounts_for_every_file(demo_out, truth):
    files = {str(p.relative_to(demo_out / "archive")) for p in (demo_out / "archive").rglob("*") if p.is_file()}
    relpaths = [r["relpath"] for r in truth]
    assert len(relpaths) == len(set(relpaths)) == len(files)
    assert set(relpaths) == files
    info = json.loads((demo_out / "demo_archive.json").read_text(encoding="utf-8"))
    assert info["files"] == len(files)
    assert sum(info["by_state"].values()) == len(files)
    assert info["by_reason"] == dict(Counter(f"{r['expected_state']}/{r['expected_reason']}" for r in truth))
    radiographs = [r for r in truth if r["kind"] == "radiograph"]
    assert len(radiographs) == N == info["radiographs"]
    assert 0.10 * N < info["mess_files"]  # the mess is on top of the n radiographs


def test_every_outcome_is_planted(truth):
    reasons = Counter((r["expected_state"], r["expected_reason"]) for r in truth)
    expected = {
        ("ok", "ok"), ("ok", "ok_voi_retry"), ("duplicate", "same_sop_instance"), ("duplicate", "same_pixels"),
        ("filtered", "modality"), ("filtered", "sop_class"), ("filtered", "secondary_capture"),
        ("filtered", "for_processing"), ("filtered", "color"), ("filtered", "multi_frame"),
        ("filtered", "no_pixel_data"), ("filtered", "not_chest"), ("filtered", "view"),
        ("quarantined", "not_dicom"), ("quarantined", "empty_file"), ("quarantined", "truncated"),
        ("quarantined", "unreadable_header"), ("quarantined", "missing_tags"), ("quarantined", "no_decoder"),
        ("quarantined", "decode_error"), ("quarantined", "degenerate_image"), ("quarantined", "burned_in_annotation"),
    }
    assert expected <= set(reasons)
    assert reasons[("ok", "ok_voi_retry")] == 1


def test_reason_codes_are_the_shared_ones(truth):
    """Every expected state/reason is in docs/architecture.md "Reason codes" (ingest implements the same list)."""
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    allowed: dict[str, set[str]] = {}
    for state, cell in re.findall(r"^\| (ok|filtered|duplicate|quarantined) \| (.+) \|$", doc, flags=re.M):
        allowed[state] = set(re.findall(r"`([a-z_]+)`", cell))
    assert set(allowed) == {"ok", "filtered", "duplicate", "quarantined"}
    for r in truth:
        assert r["expected_reason"] in allowed[r["expected_state"]], r["relpath"]


def test_duplicates_point_to_the_first_relpath_of_their_group(truth):
    by_path = {r["relpath"]: r for r in truth}
    dups = [r for r in truth if r["expected_state"] == "duplicate"]
    assert {r["mess"] for r in truth if r["kind"] == "duplicate_copy"} == {"exact_copy", "reencoded", "same_pixels"}
    assert len(dups) == sum(r["kind"] == "duplicate_copy" for r in truth)
    for r in dups:
        kept = by_path[r["duplicate_of"]]
        assert kept["expected_state"] == "ok" and kept["relpath"] < r["relpath"]
        if r["expected_reason"] == "same_sop_instance":
            assert kept["sop_instance_uid"] == r["sop_instance_uid"]
        else:
            assert kept["sop_instance_uid"] != r["sop_instance_uid"]
            assert (r["pixels_of"] or r["sop_instance_uid"]) == (kept["pixels_of"] or kept["sop_instance_uid"])


def test_odd_paths_are_present(truth):
    paths = [r["relpath"] for r in truth]
    assert any(" " in p for p in paths)
    assert any(any(ord(c) > 127 for c in p) for p in paths)
    assert any("." not in Path(p).name for p in paths)  # no extension
    assert max(p.count("/") for p in paths) >= 9  # deep nesting
    assert any(p.startswith("QUIRINUS-PEMBERTON^Zebediah/") for p in paths)  # a folder named after a patient
    assert {"DICOMDIR", ".DS_Store"} <= {Path(p).name for p in paths}


def test_complete_archive_is_reused_and_others_are_refused(demo_out, tmp_path):
    from radadapt.demo.archive import generate_archive

    again = generate_archive(demo_out, n=N, seed=SEED, size=SIZE)
    assert again["reused"] is True and again["files"] > N
    with pytest.raises(UsageError) as err:
        generate_archive(demo_out, n=N + 1, seed=SEED, size=SIZE)
    assert err.value.code == "demo.out_exists"
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep me")
    with pytest.raises(UsageError) as err:
        generate_archive(busy, n=N)
    assert err.value.code == "demo.out_not_empty"
    assert (busy / "mine.txt").read_text() == "keep me"
    for kwargs, code in (({"n": 10}, "demo.n_too_small"), ({"size": 16}, "demo.bad_size"),
                         ({"seed": -1}, "demo.bad_seed"), ({"workers": 0}, "demo.bad_workers")):
        with pytest.raises(UsageError) as err:
            generate_archive(tmp_path / "never", **kwargs)
        assert err.value.code == code
    assert not (tmp_path / "never").exists()


def test_interrupted_staging_is_cleared(tmp_path, monkeypatch):
    """A crash leaves only the marked staging folder; the next run removes it and finishes."""
    from radadapt.demo import archive

    out = tmp_path / "h"
    calls = {"n": 0}
    real = archive._write_image

    def crash_after_three(*a, **k):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(archive, "_write_image", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        archive.generate_archive(out, n=N, size=128)
    assert not out.exists() and (tmp_path / ".h.partial").is_dir()
    monkeypatch.setattr(archive, "_write_image", real)
    summary = archive.generate_archive(out, n=N, size=128)
    assert summary["files"] > N and not (tmp_path / ".h.partial").exists()
