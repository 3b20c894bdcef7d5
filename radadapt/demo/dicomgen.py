"""DICOM headers of the synthetic hospital: patient, study, series and equipment modules full of fake PHI.

PHI is planted where real exports carry it (PS3.15 Annex E lists these attributes): names, IDs, issuer,
other IDs (sequence and the retired multi-valued element), birth date, address, phone, study/series/content/
acquisition dates and times, accession number, institution name/address/department, referring, performing and
operator physicians, station name, device serial number, every UID; inside nested sequences
(RequestAttributesSequence > ScheduledProtocolCodeSequence, ReferencedStudySequence, ProcedureCodeSequence,
IssuerOfAccessionNumberSequence); and in a private block with a private sequence nested two deep. Every value
written is registered in the PhiRegistry (phi.json).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from radadapt import __version__
from radadapt.demo import phi
from radadapt.demo.cases import (
    CHEST_TAGGINGS, DEFAULT_DESCRIPTIONS, LATERAL_TAGGINGS, NON_CHEST_DESCRIPTIONS, SOP_CLASSES, VIEW_CODES, Tagging,
)
from radadapt.demo.cohort import Image, Study

PRIVATE_GROUP = 0x0029
PRIVATE_CREATOR = "QUILLFIELD HIS 1.0"
IMPLEMENTATION_UID = phi.uid(0, "implementation", "radadapt-demo")
MANUFACTURERS = (("Acme Radiography", "QX-DR 3000"), ("Zenith Detectors", "ZD-CR 12"))


def study_description(study: Study) -> str:
    views = [im.view for im in study.images]
    if study.kind != "chest":
        return NON_CHEST_DESCRIPTIONS[study.kind][1]
    if "AP" in views:
        return "XR CHEST 1V PORTABLE"
    return "XR CHEST PA AND LAT" if "LATERAL" in views else "XR CHEST 1V PA"


def tagging_of(img: Image) -> Tagging:
    if img.kind == "chest":
        return (LATERAL_TAGGINGS if img.view == "LATERAL" else CHEST_TAGGINGS)[img.tagging]
    part, study_desc, series_desc, protocol = NON_CHEST_DESCRIPTIONS[img.kind]
    if img.tagging == "non_chest_tagged_chest":
        return Tagging("CHEST", study_desc, series_desc, protocol, "=view", None, "")
    if img.tagging == "non_chest_no_tags":
        return Tagging(None, None, None, None, "=view", None, "")
    return Tagging(part, study_desc, series_desc, protocol, "=view", None, "")


def selection_tags(img: Image) -> dict[str, Any]:
    """BodyPartExamined, descriptions, protocol, ViewPosition / View Code Sequence of ``img``."""
    t = tagging_of(img)
    view = img.view if img.kind == "chest" else ("PA" if img.kind == "hand" else "AP")
    defaults = DEFAULT_DESCRIPTIONS[img.view if img.kind == "chest" else "PA"]
    resolved = {
        "BodyPartExamined": t.body_part,
        "StudyDescription": study_description(img.study) if t.study_description == "=" else t.study_description,
        "SeriesDescription": defaults[1] if t.series_description == "=" else t.series_description,
        "ProtocolName": defaults[2] if t.protocol == "=" else t.protocol,
        "ViewPosition": ({"LATERAL": "LL"}.get(view, view) if t.view_position == "=view" else t.view_position),
    }
    if img.kind in ("ct", "mr"):
        resolved["ViewPosition"] = None  # cross-sectional images have no projection view
    tags = {k: v for k, v in resolved.items() if v is not None}
    if t.view_code:
        code, meaning = VIEW_CODES[t.view_code][view]
        tags["ViewCodeSequence"] = [{"CodeValue": code, "CodingSchemeDesignator": t.view_code, "CodeMeaning": meaning}]
    return tags


def expected_view(img: Image) -> str:
    """The view a reader of the tags should record: PA / AP / LATERAL / unknown (manifest vocabulary)."""
    tags = selection_tags(img)
    vp = tags.get("ViewPosition")
    if vp in ("PA", "AP"):
        return vp
    if vp in ("LL", "RL", "LATERAL"):
        return "LATERAL"
    if "ViewCodeSequence" in tags:
        code = tags["ViewCodeSequence"][0]["CodeValue"]
        return next(v for table in VIEW_CODES.values() for v, (c, _m) in table.items() if c == code)
    return "unknown"


def header(img: Image, reg: phi.PhiRegistry, *, sop_class: str | None = None, modality: str | None = None) -> Any:
    """A pydicom Dataset with every non-pixel attribute of ``img`` (file meta included, transfer syntax unset)."""
    from pydicom import config
    from pydicom.dataelem import DataElement
    from pydicom.datadict import dictionary_VR, tag_for_keyword
    from pydicom.dataset import Dataset, FileMetaDataset

    study, patient = img.study, img.study.patient
    rng = np.random.default_rng([img.seed, 7])
    modality = modality or study.modality
    sop_class = sop_class or SOP_CLASSES[modality]
    inst = patient.institution
    kind = patient.charset_kind
    if kind == "ascii" and any(ord(ch) > 127 for ch in inst.name + inst.address + inst.department):
        kind = "latin1"
    charset = phi.charset_for(kind, rng)

    ds = Dataset()
    if charset:
        ds.SpecificCharacterSet = charset
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = img.sop_uid
    date, time = study.date.strftime("%Y%m%d"), study.time
    acq_time = f"{int(time[:2]):02d}{int(time[2:4]):02d}{(int(time[4:]) + 7 * img.instance) % 60:02d}.{img.seed % 1000000:06d}"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = date
    ds.StudyTime, ds.SeriesTime, ds.ContentTime, ds.AcquisitionTime = time, time, acq_time, acq_time
    reg.add("times", acq_time)
    ds.AccessionNumber = study.accession
    ds.IssuerOfAccessionNumberSequence = [_item(LocalNamespaceEntityID=inst.issuer)]
    ds.Modality = modality
    manufacturer, model = MANUFACTURERS[study.index % 2]
    ds.Manufacturer, ds.ManufacturerModelName = manufacturer, model
    ds.InstitutionName = inst.name
    ds.InstitutionAddress = inst.address
    ds.InstitutionalDepartmentName = inst.department
    ds.ReferringPhysicianName = study.referring.pn
    ds.PerformingPhysicianName = study.operator.pn
    ds.OperatorsName = study.operator.pn
    ds.StationName = inst.stations[img.index % len(inst.stations)]
    ds.DeviceSerialNumber = inst.serials[img.index % len(inst.serials)]
    ds.SoftwareVersions = "4.2.1"
    ds.ProcedureCodeSequence = [_item(CodeValue=f"XR{study.kind.upper()}", CodingSchemeDesignator="99LOCAL",
                                      CodeMeaning=study_description(study))]
    prior_uid = study.prior.uid if study.prior is not None else study.uid
    ds.ReferencedStudySequence = [_item(ReferencedSOPClassUID="1.2.840.10008.3.1.2.3.1",
                                        ReferencedSOPInstanceUID=prior_uid)]
    ds.RequestAttributesSequence = [_item(
        RequestedProcedureID=f"RP{study.accession[3:]}",
        ScheduledProcedureStepID=f"SPS{study.accession[3:]}",
        RequestedProcedureDescription=study_description(study),
        AccessionNumber=study.accession,
        StudyInstanceUID=study.uid,
        ReasonForTheRequestedProcedure=f"evaluate, call {inst.phone}",
        ScheduledProtocolCodeSequence=[_item(CodeValue="RPID16", CodingSchemeDesignator="RADLEX",
                                             CodeMeaning=study_description(study))],
    )]
    reg.add("ids", f"RP{study.accession[3:]}", f"SPS{study.accession[3:]}")

    ds.PatientName = patient.person.pn
    ds.PatientID = patient.mrn
    ds.IssuerOfPatientID = inst.issuer
    ds.OtherPatientIDsSequence = [_item(PatientID=patient.other_id, IssuerOfPatientID="LEGACY-RIS",
                                        TypeOfPatientID="TEXT")]
    if img.index % 3 == 0:
        ds.add_new(0x00101000, "LO", [patient.other_id, f"{patient.mrn}-OLD"])  # OtherPatientIDs (retired)
        reg.add("ids", f"{patient.mrn}-OLD")
    ds.PatientBirthDate = patient.birth.strftime("%Y%m%d")
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{min(120, (study.date - patient.birth).days // 365):03d}Y"
    if patient.address:
        ds.PatientAddress = patient.address
    if patient.phone:
        ds.PatientTelephoneNumbers = patient.phone
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = img.series_uid
    ds.StudyID = study.study_id
    ds.SeriesNumber = img.series
    ds.InstanceNumber = img.instance
    ds.PatientOrientation = ["P", "F"] if img.view == "LATERAL" else ["L", "F"]
    reg.add("uids", img.series_uid, img.sop_uid)

    for key, value in selection_tags(img).items():
        if key == "ViewCodeSequence":
            ds.ViewCodeSequence = [_item(**v) for v in value]
        else:  # no validation: some cases are deliberately non-conformant (lower-case CS "Chest")
            tag = tag_for_keyword(key)
            ds.add(DataElement(tag, dictionary_VR(tag), value, validation_mode=config.IGNORE))
    if modality in ("DX", "CR"):
        spacing = f"{430.0 / img.shape[0]:.4f}"
        ds.ImagerPixelSpacing = [spacing, spacing]
        ds.PixelSpacing = [spacing, spacing]
        ds.KVP = "110" if img.kind == "chest" else "60"
        ds.BurnedInAnnotation = "NO"
    if modality == "DX":
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.DetectorType = "SCINTILLATOR"
    _private(ds, img, reg)

    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = img.sop_uid
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_UID
    ds.file_meta.ImplementationVersionName = f"RADADAPT_{__version__}"[:16]
    return ds


def _item(**values: Any) -> Any:
    from pydicom.dataset import Dataset

    item = Dataset()
    for k, v in values.items():
        setattr(item, k, v)
    return item


def _private(ds: Any, img: Image, reg: phi.PhiRegistry) -> None:
    """A private block (0029,xxxx) copying PHI, with a private sequence nested two deep."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    study, patient = img.study, img.study.patient
    block = ds.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", patient.person.pn.replace("^", " "))
    block.add_new(0x11, "LO", f"MRN:{patient.mrn}")
    block.add_new(0x12, "DA", patient.birth.strftime("%Y%m%d"))
    inner = Dataset()
    inner.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True).add_new(0x24, "LO", patient.institution.phone)
    item = Dataset()
    ib = item.private_block(PRIVATE_GROUP, PRIVATE_CREATOR, create=True)
    ib.add_new(0x21, "LO", study.accession)
    ib.add_new(0x22, "PN", study.referring.pn)
    ib.add_new(0x23, "SQ", Sequence([inner]))
    block.add_new(0x20, "SQ", Sequence([item]))
    reg.add("names", patient.person.pn.replace("^", " "))
    reg.add("ids", f"MRN:{patient.mrn}")
