"""`radadapt ingest` end to end on a messy archive made here: accounting, store contents, privacy, reruns."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from radadapt.config import IngestSection
from radadapt.ingest.pipeline import IngestRequest, run_ingest
from radadapt.manifest import Store

from .factory import CT, DX, SC, SR, chest_phantom, limb_phantom, make_dataset, write

PHI = ["DOE", "JOHN", "ROE", "JANE", "QUIMBY", "PID001", "PID002", "PID003", "PID004", "ACC001", "ACC003",
       "ACC005", "19600304", "1960-03-04", "20210305", "2021-03-05", "03/05/2021", "Springfield General",
       "555-867-5309", "MRN778899"]
EXPECTED = {
    "p/DOE^JOHN/IM1": ("ok", "ok"),
    "p/DOE^JOHN/IM2": ("ok", "ok"),
    "p/ROE^JANE/IM3": ("ok", "ok"),
    "p/ROE^JANE/IM4": ("ok", "ok_voi_retry"),
    "p/conflict_a.dcm": ("ok", "ok"),
    "p/conflict_b.dcm": ("ok", "ok"),
    "p/lateral.dcm": ("filtered", "view"),
    "q/copy of IM1": ("duplicate", "same_sop_instance"),
    "q/same_pixels.dcm": ("duplicate", "same_pixels"),
    "x/burned.dcm": ("quarantined", "burned_in_annotation"),
    "x/ct.dcm": ("filtered", "modality"),
    "x/empty": ("quarantined", "empty_file"),
    "x/fifo": ("filtered", "special_file"),
    "x/flat.dcm": ("quarantined", "degenerate_image"),
    "x/jpeg12.dcm": ("quarantined", "no_decoder"),
    "x/knee.dcm": ("filtered", "not_chest"),
    "x/limb_no_tags.dcm": ("filtered", "not_chest"),
    "x/link": ("filtered", "symlink"),
    "x/multiframe.dcm": ("filtered", "multi_frame"),
    "x/nopixels.dcm": ("filtered", "no_pixel_data"),
    "x/notes.txt": ("quarantined", "not_dicom"),
    "x/sc.dcm": ("filtered", "secondary_capture"),
    "x/sr.dcm": ("filtered", "sop_class"),
    "x/truncated.dcm": ("quarantined", "truncated"),
}


def build_archive(root):
    """The mess of a real export, with known fates (EXPECTED) and planted PHI (PHI)."""
    from pydicom.encaps import encapsulate

    a = root / "archive"
    common = {"InstitutionName": "Springfield General Hospital", "ReferringPhysicianName": "QUIMBY^BART"}
    write(make_dataset(chest_phantom(seed=1), uid="1.2.9.1", patient_id="PID001", accession="ACC001", **common),
          a / "p/DOE^JOHN/IM1")
    write(make_dataset(chest_phantom(seed=2), uid="1.2.9.2", patient_id="PID001", accession="ACC002", **common),
          a / "p/DOE^JOHN/IM2", "1.2.840.10008.1.2.5")
    write(make_dataset(255 * 16 - chest_phantom(seed=3), uid="1.2.9.3", patient_id="PID002", name="ROE^JANE",
                       accession="ACC003", photometric="MONOCHROME1"), a / "p/ROE^JANE/IM3", "1.2.840.10008.1.2.4.80")
    trap = (chest_phantom(seed=4).astype(np.uint32) * 8 + 30000).astype(np.uint16)  # top of a 16-bit range
    write(make_dataset(trap, uid="1.2.9.4", patient_id="PID002", name="ROE^JANE", accession="ACC004", bits_stored=16,
                       WindowCenter=1000, WindowWidth=400), a / "p/ROE^JANE/IM4", "1.2.840.10008.1.2.4.90")
    write(make_dataset(chest_phantom(seed=5), uid="1.2.9.5", patient_id="PID003", accession="ACC005"), a / "p/conflict_a.dcm")
    write(make_dataset(chest_phantom(seed=6), uid="1.2.9.6", patient_id="PID004", accession="ACC005"), a / "p/conflict_b.dcm")
    write(make_dataset(chest_phantom(seed=7), uid="1.2.9.7", view="LL"), a / "p/lateral.dcm")
    (a / "q").mkdir()
    (a / "q/copy of IM1").write_bytes((a / "p/DOE^JOHN/IM1").read_bytes())
    write(make_dataset(chest_phantom(seed=1), uid="1.2.9.8", patient_id="PID001", accession="ACC001"), a / "q/same_pixels.dcm")
    x = a / "x"
    write(make_dataset(chest_phantom(seed=9), uid="1.2.9.9", BurnedInAnnotation="YES"), x / "burned.dcm")
    write(make_dataset(chest_phantom(seed=10), uid="1.2.9.10", sop_class=CT, modality="CT"), x / "ct.dcm")
    (x / "empty").write_bytes(b"")
    os.mkfifo(x / "fifo")
    write(make_dataset(np.full((64, 64), 700, np.uint16), uid="1.2.9.11"), x / "flat.dcm")
    jp = make_dataset(chest_phantom(seed=12), uid="1.2.9.12")
    jp.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.51"  # JPEG Extended 12-bit: needs the GPL codec
    jp.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])
    jp["PixelData"].VR = "OB"
    jp.save_as(x / "jpeg12.dcm", enforce_file_format=True)
    write(make_dataset(limb_phantom(), uid="1.2.9.13", body_part="KNEE"), x / "knee.dcm")
    write(make_dataset(limb_phantom(seed=2), uid="1.2.9.14", body_part=None, view=None), x / "limb_no_tags.dcm")
    os.symlink(a / "p/DOE^JOHN/IM1", x / "link")
    two = np.stack([chest_phantom(seed=15), chest_phantom(seed=16)])
    write(make_dataset(two.reshape(-1, 128), uid="1.2.9.15", sop_class=DX, modality="DX", Rows=160, NumberOfFrames=2),
          x / "multiframe.dcm")
    write(make_dataset(None, uid="1.2.9.16"), x / "nopixels.dcm")
    (x / "notes.txt").write_text("DOE^JOHN PID001 see scans\n")
    write(make_dataset(chest_phantom(seed=17), uid="1.2.9.17", sop_class=SC, modality="OT"), x / "sc.dcm")
    write(make_dataset(None, uid="1.2.9.18", sop_class=SR, modality="SR"), x / "sr.dcm")
    full = write(make_dataset(chest_phantom(seed=19), uid="1.2.9.19"), x / "full.dcm").read_bytes()
    (x / "truncated.dcm").write_bytes(full[: len(full) // 2])
    (x / "full.dcm").unlink()
    reports = root / "reports.csv"
    reports.write_text(
        "accession_number,report_text,patient_id,study_date\n"
        'ACC001,"Chest PA for John Doe (MRN778899), DOB 03/04/1960, exam 03/05/2021 at Springfield General '
        'Hospital. Small left pleural effusion. Call Dr. Quimby 555-867-5309.",PID001,20210305\n'
        "ACC002,No acute cardiopulmonary process.,PID001,20210305\n"
        "ACC003,Right lower lobe consolidation. Seen by JANE ROE.,PID002,20210305\n"
        "ACC005,Report that two patients share.,PID003,20210305\n"
        "ACC777,An orphan report.,PID009,20210305\n"
        ",A report without accession,PID001,\n", encoding="utf-8")
    return a, reports


def make_key(path):
    from radadapt import atomic

    atomic.write_text(path, (bytes(range(1, 33))).hex() + "\n", perms=0o600)
    return path


@pytest.fixture(scope="module")
def mess(tmp_path_factory):
    root = tmp_path_factory.mktemp("mess")
    archive, reports = build_archive(root)
    key = make_key(root / "site" / "site.key")
    cfg = root / "radadapt.toml"
    cfg.write_text("[ingest]\nchunk_files = 4\nresolution = 64\n")
    from typer.testing import CliRunner

    from radadapt.cli import app

    res = CliRunner().invoke(app, ["ingest", str(archive), "--reports", str(reports), "--out", str(root / "store"),
                                   "--site-key", str(key), "--workers", "1", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.stderr
    return {"root": root, "archive": archive, "reports": reports, "key": key, "cfg": cfg, "store": root / "store",
            "stdout": res.stdout, "stderr": res.stderr, "result": json.loads(res.stdout)}


def test_every_file_has_exactly_its_expected_state(mess):
    audit_files = list((mess["root"] / "site" / "private").glob("*.audit.jsonl"))
    assert len(audit_files) == 1
    assert stat.S_IMODE(audit_files[0].stat().st_mode) == 0o600
    rows = [json.loads(line) for line in audit_files[0].read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    assert header["format"] == "radadapt-audit"
    assert {r["path"]: (r["state"], r["reason"]) for r in rows} == EXPECTED
    no_decoder = next(r for r in rows if r["reason"] == "no_decoder")
    assert "pylibjpeg-libjpeg" in no_decoder["detail"]


def test_json_accounting_adds_up(mess):
    res = mess["result"]
    assert set(res) == {"total_files", "ok", "filtered", "duplicate", "quarantined", "pairing", "store"}
    total = res["ok"] + sum(res["filtered"].values()) + res["duplicate"] + sum(res["quarantined"].values())
    assert total == res["total_files"] == len(EXPECTED)
    assert res["ok"] == 6 and res["duplicate"] == 2 and res["filtered"]["not_chest"] == 2
    info = json.loads((mess["store"] / "store.json").read_text())
    assert info["accounting"] == {k: res[k] for k in ("total_files", "ok", "filtered", "duplicate", "quarantined")}
    assert info["complete"] is True and info["n_images"] == 6


def test_manifest_records_pairing_and_order(mess):
    store = Store(mess["store"])
    records = list(store.records())
    assert len(records) == 6
    keys = [(r.patient_key, r.study_key, r.image_key) for r in records]
    assert keys == sorted(keys)
    by_report = {r.report_text: r for r in records if r.report_text}
    assert len(by_report) == 3  # ACC001, ACC002, ACC003; ACC005 is on two patients: a conflict, not attached
    acc1 = next(t for t in by_report if "pleural effusion" in t)
    assert "[NAME]" in acc1 and "[DATE]" in acc1 and "[PHONE]" in acc1
    retry = [r for r in records if "qc:voi_flat:retry_without_voi" in r.pipeline]
    assert len(retry) == 1 and retry[0].bits_stored == 16
    for r in records:
        img = store.image(r)
        assert img.shape == (r.height, r.width) and min(img.shape) == 64 and img.std() > 10
        assert (r.orig_height, r.orig_width) == (160, 128) and r.height > r.width  # rows stay rows
        assert r.split in ("train", "val", "test") and r.study_date and r.study_date >= "2100"
        assert r.age == 61 and r.sex == "F" and r.chest_decision.startswith("tags:+")
    assert len({r.split for r in records if r.patient_key == records[0].patient_key}) == 1
    p = mess["result"]["pairing"]
    assert p["conflict_studies"] == 1 and p["conflict_images"] == 2 and p["unpaired_reports"] == 1
    assert p["reports"] == 6 and p["reports_invalid"] == 1 and p["paired_images"] == 3


def test_files_jsonl_has_one_row_per_entry_sorted_by_key(mess):
    rows = list(Store(mess["store"]).files())
    assert len(rows) == len(EXPECTED)
    assert [r.file_key for r in rows] == sorted(r.file_key for r in rows)
    assert sum(r.state == "duplicate" for r in rows) == 2


def test_no_phi_in_store_or_console(mess):
    assert_no_phi(mess["store"], mess["stdout"] + mess["stderr"], PHI + ["DOE^JOHN", "ROE^JANE"])


def assert_no_phi(store, console_text: str, phi: list[str]) -> None:
    """Every byte of every store file, and the console. Raw pixel shards are matched only for strings of 8+
    characters with letters: short digit runs occur in pixel bytes by chance and are not text."""
    needles = [s for s in phi if len(s) >= 3]
    for path in store.rglob("*"):
        if not path.is_file():
            continue
        data = path.read_bytes().lower()
        for s in needles:
            if path.suffix == ".u8" and (len(s) < 8 or not any(c.isalpha() for c in s)):
                continue
            assert s.lower().encode() not in data, f"{s!r} found in {path.relative_to(store)}"
    low = console_text.lower()
    for s in needles:
        assert s.lower() not in low, f"{s!r} found on the console"


def test_identifiers_file_is_sorted_fixed_width_and_keyed(mess):
    from radadapt.ingest import deid
    from radadapt.ingest.audit import contains
    from radadapt.sitekey import load_key

    ids = next((mess["root"] / "site" / "private").glob("*.identifiers.txt"))
    lines = ids.read_text().splitlines(keepends=True)
    assert lines == sorted(set(lines)) and {len(line) for line in lines} == {42}
    key = load_key(mess["key"])
    for token in ("doe", "quimby", "pid001", "springfield general hospital"):
        assert contains(ids, deid.fingerprint(key, token)), token
    assert not contains(ids, deid.fingerprint(key, "effusion"))


def test_second_run_does_no_work(mess, cli):
    before = {p: p.stat().st_mtime_ns for p in mess["store"].rglob("*") if p.is_file()}
    res = cli("ingest", mess["archive"], "--reports", mess["reports"], "--out", mess["store"], "--site-key",
              mess["key"], "--workers", "1", "--config", mess["cfg"], "--json")
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["store"]["nothing_to_do"] is True and out["store"]["chunks"]["processed"] == 0
    assert {k: out[k] for k in ("ok", "duplicate")} == {"ok": 6, "duplicate": 2}
    after = {p: p.stat().st_mtime_ns for p in mess["store"].rglob("*") if p.is_file()}
    assert after == before
    text = cli("ingest", mess["archive"], "--reports", mess["reports"], "--out", mess["store"], "--site-key",
               mess["key"], "--workers", "1", "--config", mess["cfg"])
    assert "nothing to do" in text.stdout


def snapshot(store) -> dict:
    """Everything a later stage reads, byte for byte (the .work folder aside)."""
    return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*"))
            if p.is_file() and ".work" not in p.parts}


def test_disk_full_stops_cleanly_and_rerun_gives_the_same_store(mess, tmp_path, monkeypatch):
    import errno

    from radadapt import atomic
    from radadapt.errors import DataError
    from radadapt.ingest import writer

    cfg = IngestSection(chunk_files=4, resolution=64)
    real = writer.write_chunk_results
    calls = {"n": 0}

    def full_disk(store, chunk, header, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            with atomic.atomic_open(writer.chunk_results_path(store, chunk), "w") as fh:
                fh.write("partial")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(store, chunk, header, rows)

    monkeypatch.setattr(writer, "write_chunk_results", full_disk)
    store = tmp_path / "store"
    req = IngestRequest(archive=mess["archive"], reports=mess["reports"], store=store, key_file=mess["key"], cfg=cfg,
                        workers=1)
    with pytest.raises(DataError) as info:
        run_ingest(req)
    assert info.value.code == "io.disk_full"
    assert not json.loads((store / "store.json").read_text())["complete"]
    assert not list((store / ".work" / "chunks").glob(".*tmp"))  # the torn write was removed
    monkeypatch.setattr(writer, "write_chunk_results", real)
    result = run_ingest(req)
    assert result["store"]["chunks"]["skipped"] == 1
    assert snapshot(store) == snapshot(mess["store"])


@pytest.mark.slow
def test_parallel_workers_and_tiny_merge_runs_give_the_same_content(mess, tmp_path):
    cfg = IngestSection(chunk_files=2, resolution=64)
    store = tmp_path / "store"
    run_ingest(IngestRequest(archive=mess["archive"], reports=mess["reports"], store=store, key_file=mess["key"],
                             cfg=cfg, workers=2, run_rows=3))
    ref, new = Store(mess["store"]), Store(store)
    strip = ("shard", "offset")
    a = [{k: v for k, v in r.model_dump().items() if k not in strip} for r in ref.records()]
    b = [{k: v for k, v in r.model_dump().items() if k not in strip} for r in new.records()]
    assert a == b
    for ra, rb in zip(ref.records(), new.records()):
        assert np.array_equal(ref.image(ra), new.image(rb))
    assert (store / "files.jsonl").read_bytes() == (mess["store"] / "files.jsonl").read_bytes()


def test_bad_inputs_are_one_line_errors(mess, cli, tmp_path):
    key, reports, archive = mess["key"], mess["reports"], mess["archive"]
    empty = tmp_path / "empty_archive"
    empty.mkdir()

    def run(arch, rep, out):
        res = cli("ingest", arch, "--reports", rep, "--out", out, "--site-key", key)
        lines = res.stderr.strip().splitlines()
        return res.exit_code, lines

    code, lines = run(empty, reports, tmp_path / "s1")
    assert code == 3 and lines[0].startswith("error[ingest.archive_empty]")
    code, lines = run(archive, tmp_path / "missing.csv", tmp_path / "s2")
    assert code == 2 and lines[0].startswith("error[ingest.reports_missing]")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("acc,txt\nA,b\n")
    code, lines = run(archive, wrong, tmp_path / "s3")
    assert code == 3 and lines[0].startswith("error[ingest.reports_columns]") and "'acc', 'txt'" in lines[0]
    latin = tmp_path / "latin.csv"
    latin.write_bytes("accession_number,report_text\nA,M\u00fcller\n".encode("latin-1"))
    code, lines = run(archive, latin, tmp_path / "s4")
    assert code == 3 and lines[0].startswith("error[ingest.reports_encoding]") and "iconv" in lines[1]
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something.txt").write_text("x")
    code, lines = run(archive, reports, busy)
    assert code == 2 and lines[0].startswith("error[ingest.out_not_store]")
    assert not (tmp_path / "s1" / "manifest.jsonl").exists()  # nothing half-written
    for line in lines:
        assert "Traceback" not in line


def test_unreadable_folder_is_counted_not_fatal(mess, tmp_path, monkeypatch):
    real = os.scandir

    def scandir(path):
        if str(path).endswith("/q"):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    res = run_ingest(IngestRequest(archive=mess["archive"], reports=mess["reports"], store=tmp_path / "store",
                                   key_file=mess["key"], cfg=IngestSection(resolution=64), workers=1))
    assert res["quarantined"]["read_error"] == 1 and res["duplicate"] == 0  # q/ held the two duplicates
    assert res["total_files"] == len(EXPECTED) - 2 + 1


def test_key_mismatch_is_refused(mess, tmp_path):
    from radadapt.errors import DataError
    from radadapt.sitekey import create_key

    other = create_key(tmp_path / "other" / "site.key")
    with pytest.raises(DataError) as info:
        run_ingest(IngestRequest(archive=mess["archive"], reports=mess["reports"], store=mess["store"], key_file=other,
                                 cfg=IngestSection(chunk_files=4, resolution=64), workers=1))
    assert info.value.code == "ingest.key_mismatch"


def test_pydicom_sample_files(tmp_path):
    """pydicom's own test files (pydicom-data): real CR radiographs among other objects."""
    import shutil

    from pydicom.data import get_testdata_file

    expected = {
        "RG1_J2KI.dcm": ("ok", "ok"), "RG1_J2KR.dcm": ("ok", "ok"),
        "RG1_UNCI.dcm": ("duplicate", "same_sop_instance"),  # same SOP Instance UID as RG1_J2KI
        "RG1_UNCR.dcm": ("duplicate", "same_pixels"),  # lossless: the same pixels as RG1_J2KR
        "RG3_UNCR.dcm": ("filtered", "not_chest"), "CT_small.dcm": ("filtered", "modality"),
        "SC_rgb.dcm": ("filtered", "secondary_capture"), "rtplan.dcm": ("filtered", "sop_class"),
        "emri_small.dcm": ("filtered", "modality"),
    }
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in expected:
        path = get_testdata_file(name)
        if path is None:
            pytest.skip("pydicom-data is not installed")
        shutil.copy(path, archive / name)
    reports = tmp_path / "r.csv"
    reports.write_text("accession_number,report_text\n")
    key = make_key(tmp_path / "site" / "site.key")
    res = run_ingest(IngestRequest(archive=archive, reports=reports, store=tmp_path / "store", key_file=key,
                                   cfg=IngestSection(resolution=128), workers=1))
    audit = next((tmp_path / "site" / "private").glob("*.audit.jsonl")).read_text().splitlines()[1:]
    assert {r["path"]: (r["state"], r["reason"]) for r in map(json.loads, audit)} == expected
    assert res["ok"] == 2 and set(res["store"]["decode"]) == {"1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"}
    records = list(Store(tmp_path / "store").records())
    assert {r.photometric for r in records} == {"MONOCHROME1"} and all(r.bits_stored == 15 for r in records)
    assert all("invert:MONOCHROME1" in r.pipeline and r.view == "PA" for r in records)


def test_unpaired_and_date_settings(mess, tmp_path):
    cfg = IngestSection(resolution=64, keep_unpaired_images=False, keep_unpaired_reports=True, dates="age_only")
    store = tmp_path / "store"
    res = run_ingest(IngestRequest(archive=mess["archive"], reports=mess["reports"], store=store, key_file=mess["key"],
                                   cfg=cfg, workers=1))
    # IM2 has ACC002's report; IM1, IM3 and IM2 are paired; IM4 has none; the conflict pair gets none.
    assert res["ok"] == 3 and res["filtered"]["no_report"] == 3
    assert res["ok"] + sum(res["filtered"].values()) + res["duplicate"] + sum(res["quarantined"].values()) == len(EXPECTED)
    records = list(Store(store).records())
    assert all(r.report_text and r.study_date is None and r.age == 61 for r in records)
    unpaired = [json.loads(line) for line in (store / "reports_unpaired.jsonl").read_text().splitlines()]
    # ACC005 (conflict: two patients, kept images) is not unpaired; ACC777 has no image at all.
    assert [u["report_text"] for u in unpaired] == ["An orphan report."]
    assert unpaired[0]["patient_key"] is None and unpaired[0]["split"] is None
