"""Planted PHI: really in headers, nested and private sequences, paths and reports; and every value registered."""

from __future__ import annotations

import csv
import re

from tests.demo.conftest import read_dicom

CLASS_UID_ROOT = "1.2.840.10008."  # SOP classes, transfer syntaxes, coding: not identifiers


def _deflate_start(raw: bytes) -> int:
    """Offset of the deflated dataset: just after the file meta group (its length is in (0002,0000))."""
    import struct

    group_len = struct.unpack("<I", raw[140:144])[0]  # preamble 128 + "DICM" + tag/VR/len 8
    return 144 + group_len


def _walk(ds, depth=0):
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item, depth + 1)
        else:
            yield elem, depth


def test_phi_sits_in_headers_sequences_and_private_tags(demo_out, truth, phi_strings):
    first = next(r for r in truth if r["kind"] == "radiograph" and r["relpath"].startswith("QUIRINUS-PEMBERTON^"))
    ds = read_dicom(demo_out / "archive" / first["relpath"])
    names, ids = set(phi_strings["names"]), set(phi_strings["ids"])
    assert str(ds.PatientName) == "QUIRINUS-PEMBERTON^Zebediah" and str(ds.PatientName) in names
    assert ds.PatientID in ids and ds.OtherPatientIDsSequence[0].PatientID in ids
    assert ds.PatientBirthDate in phi_strings["dates"] and ds.StudyDate in phi_strings["dates"]
    assert ds.AccessionNumber in phi_strings["accession_numbers"]
    assert ds.InstitutionName in phi_strings["institutions"]
    assert ds.InstitutionAddress in phi_strings["addresses"]
    assert str(ds.ReferringPhysicianName) in phi_strings["physicians"]
    assert ds.StationName in phi_strings["other"] and ds.DeviceSerialNumber in phi_strings["other"]
    request = ds.RequestAttributesSequence[0]
    assert request.AccessionNumber == ds.AccessionNumber and request.StudyInstanceUID in phi_strings["uids"]
    assert request.ScheduledProtocolCodeSequence[0].CodeValue  # a sequence nested in a sequence
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID in phi_strings["uids"]
    assert ds.ProcedureCodeSequence[0].CodeMeaning
    block = ds.private_block(0x0029, "QUILLFIELD HIS 1.0")
    assert block[0x10].value in names and block[0x11].value in ids
    item = block[0x20].value[0]
    inner = item.private_block(0x0029, "QUILLFIELD HIS 1.0")
    assert inner[0x21].value == ds.AccessionNumber
    phone = inner[0x23].value[0].private_block(0x0029, "QUILLFIELD HIS 1.0")[0x24].value
    assert phone in phi_strings["phones"]


def test_character_sets_encode_accented_names(demo_out, truth, phi_strings):
    seen = {}
    for r in truth:
        if r["kind"] != "radiograph" or r["bare_dataset"]:
            continue
        ds = read_dicom(demo_out / "archive" / r["relpath"])
        charset = ds.get("SpecificCharacterSet")
        name = str(ds.PatientName)
        raw = (demo_out / "archive" / r["relpath"]).read_bytes()
        if r["transfer_syntax_name"] == "deflated":  # zlib-compressed dataset: the name is not in the raw bytes
            import zlib

            raw = zlib.decompress(raw[_deflate_start(raw):], -15)
        assert name in phi_strings["names"]
        if any(ord(c) > 255 for c in name):
            assert charset == "ISO_IR 192" and name.encode("utf-8") in raw
            seen["utf8"] = name
        elif any(ord(c) > 127 for c in name):
            assert charset in ("ISO_IR 100", "ISO_IR 192")
            assert name.encode("latin-1" if charset == "ISO_IR 100" else "utf-8") in raw
            seen["latin1"] = name
        seen[charset] = True
    assert {"utf8", "latin1", None, "ISO_IR 100", "ISO_IR 192"} <= set(seen)


def test_every_identifying_value_written_is_registered(demo_out, truth, phi_strings):
    """So a zero-PHI grep over later outputs is complete: no identifier reaches a file without being in phi.json."""
    from radadapt.demo.dicomgen import IMPLEMENTATION_UID

    registry = {k: set(v) for k, v in phi_strings.items()}
    person = registry["names"] | registry["physicians"]
    checked = 0
    for r in truth:
        if r["transfer_syntax"] is None or r["expected_reason"] in ("unreadable_header", "truncated"):
            continue
        ds = read_dicom(demo_out / "archive" / r["relpath"], bare=r["bare_dataset"])
        for elem, _depth in _walk(ds):
            value = elem.value
            if value in (None, "") or elem.tag.group == 0x0002 and elem.keyword != "MediaStorageSOPInstanceUID":
                continue
            if elem.VR == "PN":
                assert str(value) in person, elem
            elif elem.VR == "DA":
                assert value in registry["dates"], elem
            elif elem.VR == "UI" and not str(value).startswith(CLASS_UID_ROOT) and value != IMPLEMENTATION_UID:
                assert value in registry["uids"], elem
            elif elem.keyword in ("AccessionNumber",):
                assert value in registry["accession_numbers"], elem
            elif elem.keyword in ("PatientID", "StudyID", "RequestedProcedureID", "ScheduledProcedureStepID"):
                assert value in registry["ids"], elem
            elif elem.keyword in ("InstitutionName", "InstitutionalDepartmentName"):
                assert value in registry["institutions"], elem
            elif elem.keyword in ("InstitutionAddress", "PatientAddress"):
                assert value in registry["addresses"], elem
            elif elem.keyword in ("StationName", "DeviceSerialNumber", "IssuerOfPatientID"):
                assert value in registry["other"] or value == "LEGACY-RIS", elem
            elif elem.keyword == "PatientTelephoneNumbers":
                assert value in registry["phones"], elem
            elif elem.VR == "TM":
                assert value in registry["times"], elem
            checked += 1
    assert checked > 1000


def test_reports_carry_registered_phi(demo_out, phi_strings):
    with open(demo_out / "reports.csv", encoding="utf-8", newline="") as fh:
        reports = list(csv.DictReader(fh))
    texts = [r["report_text"] for r in reports]
    ids, dates = set(phi_strings["ids"]), set(phi_strings["dates"])
    spoken = [n for n in phi_strings["names"] if " " in n and "^" not in n]
    assert any(any(n in t for n in spoken) for t in texts)  # a patient named in a report
    assert any(any(p in t for p in phi_strings["phones"]) for t in texts)
    assert any(any(d in t for d in phi_strings["physicians"] if d.startswith("Dr. ")) for t in texts)
    for t in texts:
        for mrn in re.findall(r"\bZQ\d{8}[A-Z]\b", t):
            assert mrn in ids
        for d in re.findall(r"\b\d{2}/\d{2}/\d{4}\b", t):
            assert d in dates
    assert all(r["patient_id"] in ids for r in reports)
    assert all(r["accession_number"] in phi_strings["accession_numbers"] for r in reports)


def test_phi_strings_are_distinctive(phi_strings):
    """Short or common strings would make a later zero-PHI grep flag innocent output."""
    for category, values in phi_strings.items():
        for v in values:
            if category in ("dates", "times"):
                assert len(v) >= 6
            else:
                assert len(v) >= 6 and not v.isdigit(), (category, v)
    assert all(u.startswith("2.25.") and len(u) > 30 for u in phi_strings["uids"])
