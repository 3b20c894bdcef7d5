"""The report export (reports.csv) and its gold labels (report_labels.csv).

One report per chest study with frontal images, except a few studies whose report is missing from the export;
plus a few reports whose accession number matches no image. Reports describe the *study* state planted in the
pixels, through a report-level choice per label: a planted finding is stated (``1``) or hedged (``-1``); an
absent one is negated (``0``) or not mentioned (blank); a device is described (``present``, with a position
label when the text gives a tip location), hedged (``uncertain``), reported as removed since the prior study
(``removed``), or covered by "No lines or tubes." (``absent``). Styles vary: full headings (EXAMINATION,
INDICATION, COMPARISON, FINDINGS, IMPRESSION), FINDINGS/IMPRESSION only, or one headless paragraph. About a
third carry PHI (name, MRN, birth date, physician, phone, dates) that ingest must scrub.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from radadapt import atomic
from radadapt.demo import phi
from radadapt.demo.cohort import Cohort, Study
from radadapt.demo.phrases import (
    INDICATIONS, NEGATIONS, NO_LINES, NO_LINES_DEVICES, NORMAL_IMPRESSION, REMOVALS, device_sentence,
    finding_sentence,
)
from radadapt.demo.truth import DEVICE_NAMES, FINDING_NAMES, NO_FINDING, REPORT_FINDING_COLUMNS, ChestState

REPORT_COLUMNS = ("accession_number", "report_text", "patient_id", "study_date")
LABEL_COLUMNS = ("accession_number", *REPORT_FINDING_COLUMNS, *DEVICE_NAMES, *(f"{d} position" for d in DEVICE_NAMES))


def write_reports(cohort: Cohort, staging: Path) -> dict:
    """Write reports.csv and report_labels.csv; return counts for demo_archive.json."""
    reports: list[tuple[str, str, str, str]] = []
    labels: list[dict[str, str]] = []
    studies = [s for s in cohort.studies if s.kind == "chest" and s.state is not None and s.images]
    for s in studies:
        if not s.has_report:
            continue
        text, gold = compose_report(s, cohort)
        reports.append((s.accession, text, s.patient.mrn, s.date.isoformat()))
        labels.append({"accession_number": s.accession, **gold})
    n_orphans = 3 + len(cohort.images) // 200
    for j in range(n_orphans):  # reports of studies that are not in the image export
        orphan = _orphan_study(cohort, j)
        text, gold = compose_report(orphan, cohort)
        reports.insert((j * 7919) % (len(reports) + 1), (orphan.accession, text, orphan.patient.mrn,
                                                         orphan.date.isoformat()))
        labels.append({"accession_number": orphan.accession, **gold})
    atomic.write_text(staging / "reports.csv", _csv(REPORT_COLUMNS, reports))
    labels.sort(key=lambda r: r["accession_number"])
    atomic.write_text(staging / "report_labels.csv", _csv(LABEL_COLUMNS, [[r[c] for c in LABEL_COLUMNS] for r in labels]))
    return {"reports": len(reports), "orphan_reports": n_orphans,
            "chest_studies_without_report": sum(1 for s in studies if not s.has_report),
            "patients": len(cohort.patients), "studies": sum(1 for s in cohort.studies if s.images)}


def compose_report(study: Study, cohort: Cohort) -> tuple[str, dict[str, str]]:
    """The report text of ``study`` and its gold labels (column -> value)."""
    rng = np.random.default_rng(np.random.SeedSequence([cohort.seed, 0x5E9, study.index]))
    state: ChestState = study.state  # type: ignore[assignment]
    style = str(rng.choice(["headed", "short", "free"], p=[0.45, 0.25, 0.30]))
    terse = style != "headed"
    gold: dict[str, str] = {c: "" for c in LABEL_COLUMNS if c != "accession_number"}

    device_text: list[str] = []
    for name in DEVICE_NAMES:
        if name in state.devices:
            r = rng.random()
            mode = "present" if r < 0.9 else ("uncertain" if r < 0.95 else "omit")
            if mode != "omit":
                sentence, position = device_sentence(state.devices[name], mode, rng, terse)
                device_text.append(sentence)
                gold[name] = mode
                gold[f"{name} position"] = position
        elif name in study.removed and rng.random() < 0.85:
            device_text.append(str(rng.choice(REMOVALS[name])))
            gold[name] = "removed"
    if not state.devices and not study.removed and rng.random() < 0.25:
        device_text.append(NO_LINES)
        for name in NO_LINES_DEVICES:
            gold[name] = "absent"

    positives: list[str] = []
    finding_text: list[str] = []
    negated: list[str] = []
    for name in FINDING_NAMES:
        if name in state.findings:
            mode = "positive" if rng.random() < 0.82 else "uncertain"
            sentence = finding_sentence(state.findings[name], mode, rng, terse)
            finding_text.append(sentence)
            positives.append(sentence)
            gold[name] = "1" if mode == "positive" else "-1"
        elif rng.random() < 0.55:
            negated.append(name)
            gold[name] = "0"
    if "Pleural Effusion" in negated and "Pneumothorax" in negated and rng.random() < 0.7:
        negated = [n for n in negated if n not in ("Pleural Effusion", "Pneumothorax")]
        finding_text.append("No pleural effusion or pneumothorax.")
    finding_text.extend(str(rng.choice(NEGATIONS[n])) for n in negated)
    if not positives:
        gold[NO_FINDING] = "1"
    impression = positives[:3] if positives else [str(rng.choice(NORMAL_IMPRESSION))]
    if gold.get("endotracheal tube position") == "malpositioned":
        impression.append("Endotracheal tube too low, recommend retraction.")
    text = _layout(style, study, device_text, finding_text, impression, rng)
    text = _with_phi(text, study, cohort.registry, rng)
    return text, gold


def _layout(style: str, study: Study, devices: list[str], findings: list[str], impression: list[str],
            rng: np.random.Generator) -> str:
    body = " ".join(devices + findings)
    if style == "free":
        views = "PA and lateral views of the chest." if len(study.images) > 1 else "Single view of the chest."
        return f"{views} {body}"
    comparison = "None."
    if study.prior is not None:
        comparison = f"Compared with {phi.date_formats(study.prior.date)[2]}."
    if style == "short":
        return f"FINDINGS: {body}\nIMPRESSION: {' '.join(impression)}"
    numbered = " ".join(f"{i}. {s}" for i, s in enumerate(impression, 1)) if len(impression) > 1 else impression[0]
    return (f"EXAMINATION: {study_title(study)}\nINDICATION: {rng.choice(INDICATIONS)}\nCOMPARISON: {comparison}\n"
            f"FINDINGS: {body}\nIMPRESSION: {numbered}")


def study_title(study: Study) -> str:
    from radadapt.demo.dicomgen import study_description

    return study_description(study) if study.images else "XR CHEST 1V"


def _with_phi(text: str, study: Study, reg: phi.PhiRegistry, rng: np.random.Generator) -> str:
    """About a third of reports name the patient, the MRN, the birth date, a physician and a phone number."""
    r = rng.random()
    p = study.patient
    us_date = phi.date_formats(study.date)[2]
    if r < 0.12:
        dob = phi.date_formats(p.birth)[2]
        return f"Patient: {p.person.spoken}  MRN: {p.mrn}  DOB: {dob}\n{text}"
    if r < 0.24:
        doc = study.referring
        reg.add("physicians", f"Dr. {doc.spoken}")
        return (f"{text}\nFindings discussed with Dr. {doc.spoken} by telephone at {p.institution.phone} on "
                f"{us_date}.")
    if r < 0.34:
        return f"{text}\nElectronically signed by {study.operator.spoken} on {us_date}."
    return text


def _orphan_study(cohort: Cohort, j: int) -> Study:
    """A study that exists only in the RIS export (its images were never sent): same shape as a real one."""
    from radadapt.demo.cohort import make_study  # registers the PHI it invents
    from radadapt.demo.truth import Finding

    rng = np.random.default_rng(np.random.SeedSequence([cohort.seed, 0x0A9, j]))
    patient = cohort.patients[int(rng.integers(0, len(cohort.patients)))]
    index = 10**6 + j  # outside the range of real study indices: a distinct accession number
    day = patient.studies[0].date
    s = make_study(patient, index, "chest", day, cohort.seed, rng, cohort.registry)
    patient.studies.remove(s)  # not part of the patient's image history
    s.prior = None
    s.state = ChestState(findings={"Pleural Effusion": Finding("Pleural Effusion", "right", "small")} if j % 2 else {})
    return s


def _csv(header: tuple[str, ...], rows: list) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
