"""Non-image DICOM objects, non-DICOM files and duplicates found in real exports (part of the mess).

Structured reports and presentation states are DICOM but not images (``sop_class``); a DICOMDIR is a Media
Storage Directory whose SOP class is only in its file meta (``sop_class``); PDFs, PNG thumbnails, export logs,
``.DS_Store`` and a JPEG named ``.dcm`` are ``not_dicom``; a zero-byte file is ``empty_file``. Duplicates come
in three kinds: a byte copy under another name and the same image re-encoded in another transfer syntax (both
``same_sop_instance``), and the same pixels under a new SOP Instance UID (``same_pixels``).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Callable

import numpy as np

from radadapt.demo import phi
from radadapt.demo.cases import SOP_CLASSES
from radadapt.demo.cohort import Cohort, Study, new_image

LOSSLESS = ("explicit", "implicit", "deflated", "rle", "jpegls", "j2k")


def write(staging: Path, rel: str, data: bytes) -> None:
    path = staging / "archive" / rel
    if path.exists():
        raise RuntimeError("two generated files share a path")  # a planning bug, never user input
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def dataset_bytes(ds: Any) -> bytes:
    """A dataset as a DICOM file (preamble, file meta, explicit VR little endian)."""
    from pydicom import dcmwrite
    from pydicom.uid import ExplicitVRLittleEndian

    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buf = io.BytesIO()
    dcmwrite(buf, ds, enforce_file_format=True)
    return buf.getvalue()


def _non_image(cohort: Cohort, study: Study, modality: str) -> tuple[Any, Any]:
    from radadapt.demo.dicomgen import header

    img = new_image(cohort, study, "chest", "PA")
    ds = header(img, cohort.registry, modality=modality, sop_class=SOP_CLASSES[modality])
    for k in ("ImageType", "ViewPosition", "ViewCodeSequence", "PatientOrientation", "BodyPartExamined"):
        if k in ds:
            delattr(ds, k)
    return img, ds


def structured_report(cohort: Cohort, study: Study, staging: Path, relpath_for: Callable[..., str]) -> dict:
    """An Enhanced SR whose text content names the patient (filtered: sop_class)."""
    from radadapt.demo.dicomgen import _item
    from radadapt.demo.mess import mess_row

    img, ds = _non_image(cohort, study, "SR")
    patient = study.patient
    verified = f"{study.date.strftime('%Y%m%d')}{study.time}"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    ds.ConceptNameCodeSequence = [_item(CodeValue="18748-4", CodingSchemeDesignator="LN",
                                        CodeMeaning="Diagnostic Imaging Report")]
    ds.VerifyingObserverSequence = [_item(VerifyingObserverName=study.referring.pn, VerificationDateTime=verified,
                                          VerifyingOrganization=patient.institution.name)]
    ds.ContentSequence = [_item(
        RelationshipType="CONTAINS", ValueType="TEXT", TextValue=(
            f"{patient.person.spoken} ({patient.mrn}): no acute cardiopulmonary process."),
        ConceptNameCodeSequence=[_item(CodeValue="121071", CodingSchemeDesignator="DCM", CodeMeaning="Finding")])]
    cohort.registry.add("times", verified)  # a DT: date and time
    rel = relpath_for(img)
    write(staging, rel, dataset_bytes(ds))
    return mess_row(rel, "filtered", "sop_class", "structured_report", sop_instance_uid=img.sop_uid,
                    study_instance_uid=study.uid, accession_number=study.accession, patient_id=patient.mrn,
                    modality="SR", transfer_syntax="1.2.840.10008.1.2.1", transfer_syntax_name="explicit")


def presentation_state(cohort: Cohort, study: Study, staging: Path, relpath_for: Callable[..., str]) -> dict:
    """A Grayscale Softcopy Presentation State annotating an image of the study (filtered: sop_class)."""
    from radadapt.demo.dicomgen import _item
    from radadapt.demo.mess import mess_row

    img, ds = _non_image(cohort, study, "PR")
    target = study.images[0]
    ds.ReferencedSeriesSequence = [_item(SeriesInstanceUID=target.series_uid, ReferencedImageSequence=[
        _item(ReferencedSOPClassUID=SOP_CLASSES[study.modality], ReferencedSOPInstanceUID=target.sop_uid)])]
    ds.ContentLabel, ds.ContentDescription = "ANNOTATIONS", "key image"
    ds.PresentationCreationDate, ds.PresentationCreationTime = study.date.strftime("%Y%m%d"), study.time
    ds.ContentCreatorName = study.operator.pn
    ds.PresentationLUTShape = "IDENTITY"
    ds.GraphicAnnotationSequence = [_item(GraphicLayer="TEXT", TextObjectSequence=[_item(
        UnformattedTextValue=f"{study.operator.spoken}: check line, call {study.patient.institution.phone}",
        AnchorPointAnnotationUnits="PIXEL", AnchorPoint=[40.0, 40.0], AnchorPointVisibility="N")])]
    cohort.registry.add("physicians", study.operator.spoken)
    rel = relpath_for(img)
    write(staging, rel, dataset_bytes(ds))
    return mess_row(rel, "filtered", "sop_class", "presentation_state", sop_instance_uid=img.sop_uid,
                    study_instance_uid=study.uid, accession_number=study.accession, patient_id=study.patient.mrn,
                    modality="PR", transfer_syntax="1.2.840.10008.1.2.1", transfer_syntax_name="explicit")


def non_dicom(cohort: Cohort, staging: Path, rng: np.random.Generator, k: int) -> list[dict]:
    from radadapt.demo.mess import mess_row

    p0 = cohort.patients[0]
    s0 = p0.studies[0]
    rows = []

    def add(rel: str, data: bytes, mess: str, reason: str = "not_dicom") -> None:
        write(staging, rel, data)
        rows.append(mess_row(rel, "quarantined", reason, mess))

    add(f"PACS_EXPORT/Befund_{s0.accession}.pdf", _pdf(f"Befund {p0.person.spoken} {p0.mrn}"), "pdf")
    add(f"PACS_EXPORT/thumbs/{s0.accession}.png", _png(rng), "png")
    add("DICOM/IM_0001.dcm", _jpeg(rng), "jpeg_named_dcm")
    add("DICOM/EMPTY.dcm", b"", "empty", "empty_file")
    ds_store = b"\x00\x00\x00\x01Bud1" + bytes(2042)
    add(".DS_Store", ds_store, "ds_store")
    add("PACS_EXPORT/.DS_Store", ds_store, "ds_store")
    for i in range(k):
        p = cohort.patients[i % len(cohort.patients)]
        text = (f"export job {i}\npatient {p.person.pn} id {p.mrn}\naccession {p.studies[0].accession}\n"
                f"status: done\n")
        add(f"EXPORT_LOG_{i:03d}.txt" if i else "EXPORT_LOG.txt", text.encode("utf-8"), "text")
    write(staging, "DICOMDIR", _dicomdir(cohort))
    rows.append(mess_row("DICOMDIR", "filtered", "sop_class", "dicomdir",
                         transfer_syntax="1.2.840.10008.1.2.1", transfer_syntax_name="explicit"))
    return rows


def duplicates(cohort: Cohort, staging: Path, rng: np.random.Generator, k: int,
               relpath_for: Callable[..., str]) -> list[dict]:
    """k byte copies, k re-encodings (same SOP UID), k same-pixels copies (new SOP UID) of kept images."""
    from radadapt.demo.archive import image_row, write_masks
    from radadapt.demo.instance import build_instance
    from radadapt.demo.transfer import encode

    sources = [im for im in cohort.images if im.kind == "chest" and im.view != "LATERAL" and im.ts in LOSSLESS
               and im.pixel_case == "standard" and im.tagging == "default"]
    chosen = [sources[i] for i in rng.permutation(len(sources))[: 3 * k]]
    rows = []
    for j, img in enumerate(chosen):
        kind = ("exact_copy", "reencoded", "same_pixels")[j % 3]
        inst = build_instance(img, cohort.registry)
        ts, sop, masks = img.ts, img.sop_uid, [f"{img.sop_uid}__{d}.png" for d in sorted(inst.masks)]
        if kind == "exact_copy":
            rel = f"Second Export/{img.study.accession}/{Path(relpath_for(img)).name}"
            data = (staging / "archive" / relpath_for(img)).read_bytes()
        elif kind == "reencoded":
            ts = "jpegls" if img.ts != "jpegls" else "rle"
            rel = f"Reexport/{img.study.patient.mrn}/{img.sop_uid}_{ts}.dcm"
            data = encode(inst.dataset, inst.pixels.stored, ts)
        else:
            sop = phi.uid(cohort.seed, "reimport", img.index)
            series = phi.uid(cohort.seed, "reimport-series", img.index)
            inst.dataset.SOPInstanceUID = inst.dataset.file_meta.MediaStorageSOPInstanceUID = sop
            inst.dataset.SeriesInstanceUID = series
            cohort.registry.add("uids", sop, series)
            rel = f"Reimport/{img.study.accession}/IMG_{j:04d}.dcm"
            data = encode(inst.dataset, inst.pixels.stored, ts)
            masks = write_masks(staging, sop, inst.masks)
        write(staging, rel, data)
        row = image_row(img, rel, ts, masks=masks, pixel_truth=inst.pixels.truth, geometry=inst.geometry)
        row.update(kind="duplicate_copy", mess=kind, sop_instance_uid=sop,
                   pixels_of=img.sop_uid if kind == "same_pixels" else None)
        if kind == "same_pixels":
            row["series_instance_uid"] = series
        rows.append(row)
    return rows


def _pdf(text: str) -> bytes:
    """A minimal one-page PDF (PDF 1.4) whose content stream shows ``text``."""
    safe = text.encode("latin-1", "replace").replace(b"(", b"[").replace(b")", b"]")
    stream = b"BT /F1 12 Tf 72 720 Td (" + safe + b") Tj ET"
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
            b"/Resources << /Font << /F1 5 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def _png(rng: np.random.Generator) -> bytes:
    from PIL import Image

    arr = (np.linspace(0, 255, 96 * 80).reshape(96, 80) * rng.uniform(0.5, 1.0)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(rng: np.random.Generator) -> bytes:
    from PIL import Image

    arr = (np.outer(np.linspace(0, 1, 96), np.linspace(0, 1, 80)) * 255 * rng.uniform(0.5, 1.0)).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _dicomdir(cohort: Cohort) -> bytes:
    """A Media Storage Directory (PS3.10 §8, PS3.3 F.3) listing the first patient: DICOM, but not an image."""
    from pydicom.dataset import Dataset, FileMetaDataset

    p = cohort.patients[0]
    record = Dataset()
    record.OffsetOfTheNextDirectoryRecord = 0
    record.RecordInUseFlag = 0xFFFF
    record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    record.DirectoryRecordType = "PATIENT"
    record.PatientName = p.person.pn
    record.PatientID = p.mrn
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.FileSetID = "QUILLEXPORT"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = [record]
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES["DICOMDIR"]
    ds.file_meta.MediaStorageSOPInstanceUID = phi.uid(cohort.seed, "dicomdir")
    from radadapt.demo.dicomgen import IMPLEMENTATION_UID

    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_UID
    return dataset_bytes(ds)
