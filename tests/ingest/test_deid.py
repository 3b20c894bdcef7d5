"""De-identification: pseudonyms, dates, ages, identifiers from every corner of a header, report scrubbing."""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radadapt.ingest import deid
from radadapt.sitekey import SiteKey

KEY = SiteKey(b"\x01" * 32)
OTHER = SiteKey(b"\x02" * 32)


def header() -> Dataset:
    ds = Dataset()
    ds.PatientName = "Doe^Johnathan^Q"
    ds.PatientID = "MRN-0012345"
    ds.IssuerOfPatientID = "SPRINGFIELD"
    ds.OtherPatientIDs = ["XY998877"]
    ds.AccessionNumber = "ACC20210042"
    ds.InstitutionName = "St Mary's General Hospital"
    ds.InstitutionAddress = "12 Elm Street, Shelbyville, 90210"
    ds.ReferringPhysicianName = "Roe^Janet"
    ds.ReferringPhysicianTelephoneNumbers = "(555) 123-4567"
    ds.PatientBirthDate = "19600304"
    ds.StudyDate = "20210305"
    nested = Dataset()
    nested.ScheduledPerformingPhysicianName = "Quimby^Bartholomew"
    nested.add_new(0x00091010, "LO", "ref 556677 mail bob.smith@example.org")
    ds.RequestAttributesSequence = Sequence([nested])
    ds.add_new(0x00091001, "LO", "PRIVATE ID 4455667")
    return ds


def test_pseudonyms_are_keyed_and_use_the_issuer():
    ds = header()
    a = deid.patient_key(KEY, ds)
    ds.IssuerOfPatientID = "OTHER-HOSPITAL"
    assert deid.patient_key(KEY, ds) != a  # the same number from another issuer is another patient
    ds.IssuerOfPatientID = "SPRINGFIELD"
    assert deid.patient_key(KEY, ds) == a and deid.patient_key(OTHER, ds) != a
    assert deid.study_key(KEY, "ACC1") == deid.study_key(KEY, " ACC1 ") != deid.study_key(OTHER, "ACC1")


def test_missing_patient_id_never_pools_patients():
    a, b = Dataset(), Dataset()
    a.StudyInstanceUID, b.StudyInstanceUID = "1.2.3", "1.2.4"
    assert deid.patient_key(KEY, a) != deid.patient_key(KEY, b)


def test_date_shift_is_per_patient_non_zero_and_keeps_intervals():
    offsets = {deid.date_offset_days(KEY, f"p{i}") for i in range(200)}
    assert len(offsets) > 150 and min(offsets) > deid.SHIFT_BASE_DAYS
    off = deid.date_offset_days(KEY, "p1")
    d1, d2 = dt.date(2021, 3, 5), dt.date(2021, 4, 5)
    s1, s2 = deid.shifted(d1, off), deid.shifted(d2, off)
    assert s1 != d1.isoformat()
    assert (dt.date.fromisoformat(s2) - dt.date.fromisoformat(s1)).days == 31
    assert int(s1[:4]) >= 2100  # shifted dates cannot be mistaken for real ones


def test_age_from_birth_date_or_age_string_capped_at_90():
    ds = header()
    assert deid.age_years(ds, deid.study_date(ds)) == 61
    old = Dataset()
    old.PatientBirthDate = "19100101"
    assert deid.age_years(old, dt.date(2021, 1, 1)) == 90
    for text, years in (("045Y", 45), ("018M", 1), ("003W", 0), ("097Y", 90)):
        d = Dataset()
        d.PatientAge = text
        assert deid.age_years(d, None) == years


def test_identifiers_come_from_nested_and_private_elements():
    items = deid.identifier_items(header())
    phrases = {p for _k, p in items}
    for expected in ("doe", "johnathan", "johnathan doe", "roe", "janet", "quimby", "bartholomew",
                     "mrn-0012345", "0012345", "xy998877", "acc20210042", "st mary's general hospital",
                     "shelbyville", "5551234567", "556677", "4455667", "bob.smith@example.org"):
        assert expected in phrases, expected
    assert "private" not in phrases  # words of private free text are not identifiers, their numbers are


def test_scrubber_removes_header_identifiers_and_patterns():
    items = deid.identifier_items(header())
    scrub = deid.Scrubber(KEY, deid.fingerprint_items(KEY, items))
    report = (
        "Chest PA for JOHNATHAN DOE, MRN 0012345, DOB 03/04/1960, at St Mary's General Hospital (Shelbyville).\n"
        "Compared with March 4, 2020, 2019-11-02 and 4 Jan 2018. Discussed with Dr. Janet Roe, (555) 123-4567, "
        "janet.roe@hosp.example. Seen by B. Quimby. Ref XY998877.\n"
        "Small left pleural effusion. Heart size normal at 4.5 cm. T12 compression. No pneumothorax.\n"
        "Dictated by: Alan Smithee"
    )
    text, n = scrub.scrub(report)
    for secret in ("JOHNATHAN", "DOE", "0012345", "1960", "Mary", "Shelbyville", "2020", "2019-11-02",
                   "Jan 2018", "Janet", "Roe", "123-4567", "hosp.example", "Quimby", "XY998877", "Smithee"):
        assert secret.lower() not in text.lower(), secret
    for kept in ("Small left pleural effusion", "4.5 cm", "T12 compression", "No pneumothorax", "Chest PA"):
        assert kept in text, kept
    assert n >= 12


def test_scrubber_with_another_key_matches_nothing_from_headers():
    items = deid.identifier_items(header())
    scrub = deid.Scrubber(OTHER, deid.fingerprint_items(KEY, items))  # fingerprints made under another key
    text, _ = scrub.scrub("Patient Quimby seen")
    assert "Quimby" in text  # proves the header pass works through the keyed fingerprints, not by accident


def test_add_values_scrubs_the_rows_own_identifiers():
    scrub = deid.Scrubber(KEY, [])
    scrub.add_values(["ACC-77", "PX12"])
    text, _ = scrub.scrub("Accession ACC-77 for patient px12 reviewed")
    assert "ACC-77" not in text and "px12" not in text.lower()


def test_identifiers_from_files_on_disk_explicit_and_implicit(tmp_path):
    """The raw-bytes path: character sets, multi-values, and private elements of unknown VR (implicit VR)."""
    import os

    from radadapt.ingest.dicomio import read_dicom

    from .factory import make_dataset, write

    ds = make_dataset(None, name="M\u00fcller^J\u00fcrgen", patient_id="ZQ-778899")
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.OtherPatientIDs = ["AB12345", "CD67890"]
    ds.add_new(0x00291010, "LO", "PRIV 4455667")
    ds.RequestAttributesSequence = Sequence([Dataset()])
    ds.RequestAttributesSequence[0].ScheduledPerformingPhysicianName = "\u0141\u00f3d\u017a^Ewa"
    for ts in ("1.2.840.10008.1.2.1", "1.2.840.10008.1.2"):
        path = write(ds, tmp_path / ts, ts)
        items = deid.identifier_items(read_dicom(path, os.path.getsize(path)).dataset)
        phrases = {p for _k, p in items}
        for expected in ("m\u00fcller", "j\u00fcrgen", "zq-778899", "778899", "ab12345", "cd67890", "4455667",
                         "\u0142\u00f3d\u017a", "ewa", "springfield general hospital"):
            assert expected in phrases, (ts, expected)
