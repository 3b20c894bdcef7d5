"""reports.csv and report_labels.csv: pairing, columns, and gold labels that agree with text and pixels."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FINDINGS = ("Pleural Effusion", "Consolidation", "Nodule", "Pneumothorax", "Cardiomegaly")
TUBES = ("endotracheal tube", "enteric tube", "central venous catheter", "chest tube")


def _rows(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_one_report_per_study_with_frontal_images(demo_out, truth):
    reports = _rows(demo_out / "reports.csv")
    assert list(reports[0]) == ["accession_number", "report_text", "patient_id", "study_date"]
    accessions = [r["accession_number"] for r in reports]
    assert len(accessions) == len(set(accessions))
    frontal = [r for r in truth if r["kind"] == "radiograph" and r["is_chest"] and r["view"] != "LATERAL"]
    with_report = {r["accession_number"] for r in frontal if r["has_report"]}
    without = {r["accession_number"] for r in frontal if not r["has_report"]}
    image_accessions = {r["accession_number"] for r in truth if r["accession_number"]}
    orphans = set(accessions) - image_accessions
    assert set(accessions) - orphans == with_report
    assert len(orphans) >= 3 and len(without) >= 2 and not (without & set(accessions))
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["study_date"]) for r in reports)


def test_label_columns_use_the_schema_names(demo_out):
    labels = _rows(demo_out / "report_labels.csv")
    columns = list(labels[0])
    assert columns[0] == "accession_number"
    section = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8").split("## 3. Labels")[1].split("## 4.")[0]
    schema = set(re.findall(r"`([A-Za-z][A-Za-z ]+)`", section))
    for col in columns[1:]:
        assert col.removesuffix(" position") in schema, col
    for row in labels:
        for col, v in row.items():
            if col in FINDINGS or col == "No Finding":
                assert v in ("1", "0", "-1", "")
            elif col.endswith(" position"):
                assert v in ("ok", "malpositioned", "unknown", "")
            elif col != "accession_number":
                assert v in ("present", "removed", "uncertain", "absent", "")


def test_gold_labels_agree_with_the_pixels(demo_out, truth):
    labels = {r["accession_number"]: r for r in _rows(demo_out / "report_labels.csv")}
    frontal = [r for r in truth if r["kind"] == "radiograph" and r["is_chest"] and r["view"] != "LATERAL"]
    checked = 0
    for img in frontal:
        gold = labels.get(img["accession_number"])
        if gold is None:
            continue
        for f in FINDINGS:
            if gold[f] in ("1", "-1"):
                assert img["findings"][f] == 1, (img["relpath"], f)
            elif gold[f] == "0":
                assert img["findings"][f] == 0, (img["relpath"], f)
        for d, state in img["devices"].items():
            if gold[d] in ("present", "uncertain"):
                assert state == "present"
            elif gold[d] in ("removed", "absent"):
                assert state == "absent"
            if gold[f"{d} position"] in ("ok", "malpositioned"):
                assert img["device_positions"][d] == gold[f"{d} position"]
        if gold["No Finding"] == "1":
            assert not any(gold[f] in ("1", "-1") for f in FINDINGS)
        checked += 1
    assert checked >= 20


@pytest.fixture(scope="module")
def composed():
    """Reports of a larger plan (no files written): every phrasing occurs."""
    from radadapt.demo.cohort import plan_cohort
    from radadapt.demo.reports import compose_report

    cohort = plan_cohort(300, 5, 256)
    return [compose_report(s, cohort) for s in cohort.studies if s.kind == "chest" and s.state is not None]


def test_hand_checked_phrasings_match_their_labels(composed):
    seen = set()
    for text, gold in composed:
        if "No pleural effusion or pneumothorax." in text:
            assert gold["Pleural Effusion"] == gold["Pneumothorax"] == "0"
            seen.add("combined negation")
        m = re.search(r"Possible small (left|right|bilateral) pleural effusion", text)
        if m:
            assert gold["Pleural Effusion"] == "-1"
            seen.add("uncertain effusion")
        if re.search(r"\b(Small|Moderate|Large) (left|right|bilateral) pleural effusion", text):
            assert gold["Pleural Effusion"] == "1"
            seen.add("positive effusion")
        if "The endotracheal tube has been removed." in text or "Interval extubation." in text:
            assert gold["endotracheal tube"] == "removed"
            seen.add("ett removed")
        if "right main bronchus" in text:
            assert gold["endotracheal tube"] == "present"
            assert gold["endotracheal tube position"] == "malpositioned"
            seen.add("ett malpositioned")
        if re.search(r"(ETT|ET tube|endotracheal tube) tip (is )?\d(\.5)? cm above the carina", text):
            assert gold["endotracheal tube position"] == "ok"
            seen.add("ett tip")
        if "No lines or tubes." in text:
            assert all(gold[d] == "absent" for d in TUBES) and gold["cardiac device"] == ""
            seen.add("no lines")
        if re.search(r"\b(NGT|OGT|NG tube|Dobhoff)\b", text) and "removed" not in text:
            assert gold["enteric tube"] == "present"
            seen.add("enteric abbreviation")
        if "R IJ CVC" in text or "Right IJ central venous catheter" in text:
            assert gold["central venous catheter"] == "present"
            seen.add("cvc")
        if re.search(r"^INDICATION: Evaluate (PICC )?line placement", text, flags=re.M):
            seen.add("misleading indication")  # the labeler must not read devices from the indication
        if re.search(r"Compared with \d{2}/\d{2}/\d{4}", text):
            seen.add("prior comparison")
        if "No acute cardiopulmonary" in text:
            assert gold["No Finding"] == "1"
            seen.add("normal")
        if re.search(r"^(FINDINGS|IMPRESSION):", text, flags=re.M) is None:
            seen.add("no headings")
    assert seen == {"combined negation", "uncertain effusion", "positive effusion", "ett removed", "ett malpositioned",
                    "ett tip", "no lines", "enteric abbreviation", "cvc", "misleading indication",
                    "prior comparison", "normal", "no headings"}


def test_uncertain_labels_come_from_hedged_wording(composed):
    hedges = re.compile(r"\b(Possible|possible|may|Questionable|cannot be excluded|may represent)\b")
    n = 0
    for text, gold in composed:
        if any(v == "-1" for v in gold.values()) or "uncertain" in gold.values():
            assert hedges.search(text), text
            n += 1
    assert n >= 10
