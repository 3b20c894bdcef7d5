"""The mess of a real PACS export, added on top of the n radiographs (about 10-15 % more files).

DICOM objects that are not usable chest radiographs (CT, MR, secondary capture, SR, presentation state, FOR
PROCESSING, burned-in annotation, no pixel data, multi-frame, colour), broken files (truncated inside pixel
data, corrupted header bytes, a codestream no decoder accepts, a syntax nothing decodes, missing pixel tags, a
constant image), non-DICOM files (``junk.py``) and duplicates (``junk.py``). Each file is built so that one
reason applies; where a real object carries two (an RGB secondary capture with Modality OT), the expected
reason follows the precedence in docs/architecture.md §2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from radadapt.demo import junk, phi
from radadapt.demo.cases import SOP_CLASSES, TRANSFER_SYNTAXES
from radadapt.demo.cohort import Cohort, Image, Study, new_image, new_study

RelpathFn = Callable[..., str]


def scaled(n: int) -> int:
    """How many of each repeated mess kind: about 1 % of n each, at least one."""
    return max(1, int(round(0.01 * n)))


def mess_row(relpath: str, state: str, reason: str, mess: str, **extra: object) -> dict:
    row = {
        "relpath": relpath, "expected_state": state, "expected_reason": reason, "kind": "mess", "mess": mess,
        "sop_instance_uid": None, "study_instance_uid": None, "series_instance_uid": None,
        "accession_number": None, "patient_id": None, "transfer_syntax": None, "transfer_syntax_name": None,
        "lossy": False, "bare_dataset": False, "photometric": None, "view": None, "is_chest": None,
        "body_part": None, "chest_case": None, "chest_evidence": None, "modality": None, "rows": None,
        "columns": None, "findings": None, "devices": None, "device_positions": None, "masks": [], "pixel": {},
        "geometry": {}, "has_report": False, "duplicate_of": None, "pixels_of": None,
    }
    row.update(extra)
    return row


def add_mess(cohort: Cohort, staging: Path, relpath_for: RelpathFn) -> list[dict]:
    """Write every mess file under staging/archive and return their ground-truth rows."""
    rng = np.random.default_rng(np.random.SeedSequence([cohort.seed, 0x3E55]))
    chest_studies = [s for s in cohort.studies if s.kind == "chest"]
    pick = lambda: chest_studies[int(rng.integers(0, len(chest_studies)))]  # noqa: E731
    k = scaled(len(cohort.images))
    rows: list[dict] = []
    for i in range(k):
        rows.append(_cross_sectional(cohort, pick(), "ct", staging, relpath_for))
        rows.append(_dx_variant(cohort, pick(), "burned_in", staging, relpath_for))
        rows.append(_dx_variant(cohort, pick(), "for_processing", staging, relpath_for))
        rows.append(_dx_variant(cohort, pick(), "no_pixel_data", staging, relpath_for))
        rows.append(_dx_variant(cohort, pick(), "truncated_native" if i % 2 == 0 else "truncated_encapsulated",
                                staging, relpath_for))
    if k == 1:  # both truncation kinds at least once
        rows.append(_dx_variant(cohort, pick(), "truncated_encapsulated", staging, relpath_for))
    rows.append(_cross_sectional(cohort, pick(), "mr", staging, relpath_for))
    for variant in ("multi_frame", "color", "constant", "no_decoder", "decode_error", "missing_tags",
                    "unreadable_header"):
        rows.append(_dx_variant(cohort, pick(), variant, staging, relpath_for))
    rows.append(_dx_variant(cohort, pick(), "secondary_capture", staging, relpath_for))
    rows.append(junk.structured_report(cohort, pick(), staging, relpath_for))
    rows.append(junk.presentation_state(cohort, pick(), staging, relpath_for))
    rows.extend(junk.non_dicom(cohort, staging, rng, k))
    rows.extend(junk.duplicates(cohort, staging, rng, k, relpath_for))
    return rows


def resolve_duplicates(rows: list[dict]) -> None:
    """Mark duplicates the way ingest should: within a group, the smallest relpath is kept (docs §1).

    Groups are files sharing a SOP Instance UID, then (among the rest) files with identical pixels
    (``pixels_of`` names the SOP UID whose pixels a copy carries). Only files that would otherwise be kept
    take part: a broken or filtered file is never anyone's duplicate.
    """
    def regroup(key: Callable[[dict], str | None], reason: str) -> None:
        groups: dict[str, list[dict]] = {}
        for r in rows:
            if r["expected_state"] == "ok" and key(r):
                groups.setdefault(key(r), []).append(r)
        for members in groups.values():
            members.sort(key=lambda r: r["relpath"])
            for r in members[1:]:
                r["expected_state"], r["expected_reason"] = "duplicate", reason
                r["duplicate_of"] = members[0]["relpath"]

    regroup(lambda r: r["sop_instance_uid"], "same_sop_instance")
    regroup(lambda r: r["pixels_of"] or r["sop_instance_uid"], "same_pixels")


# -- DICOM mess --------------------------------------------------------------------------------------------------
def _cross_sectional(cohort: Cohort, base: Study, kind: str, staging: Path, relpath_for: RelpathFn) -> dict:
    """A CT (chest!) or MR slice in its own study: tags may say CHEST, Modality says not a radiograph."""
    from radadapt.demo.dicomgen import header
    from radadapt.demo.transfer import encode

    study = new_study(cohort, base.patient, kind)
    img = new_image(cohort, study, kind, "", shape=(256, 256))
    ds = header(img, cohort.registry, modality=kind.upper(), sop_class=SOP_CLASSES[kind.upper()])
    rng = np.random.default_rng(img.seed)
    y, x = np.mgrid[-1:1:256j, -1:1:256j]
    if kind == "ct":  # Hounsfield units + 1024: air, soft tissue, lungs, spine
        hu = np.where(x**2 / 0.8 + y**2 / 0.45 < 1, 40.0, -1000.0)
        for s in (-1, 1):
            hu = np.where((x - 0.38 * s) ** 2 / 0.08 + (y + 0.05) ** 2 / 0.12 < 1, -850.0, hu)
        hu = np.where(x**2 + (y - 0.45) ** 2 < 0.012, 700.0, hu)
        stored = np.clip(hu + 1024 + rng.normal(0, 12, hu.shape), 0, 4095).astype(np.uint16)
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
        ds.WindowCenter, ds.WindowWidth = "-600", "1500"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SliceThickness = "1.25"
    else:
        stored = np.clip(800 * np.exp(-(x**2 + y**2) * 2) + rng.normal(0, 20, x.shape), 0, 4095).astype(np.uint16)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.MagneticFieldStrength = "1.5"
    ds.FrameOfReferenceUID = phi.uid(cohort.seed, "frame", img.index)
    ds.ImagePositionPatient = ["-175", "-175", "-120"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.PixelSpacing = ["0.68", "0.68"]
    _pixel_description(ds, bits=12)
    cohort.registry.add("uids", ds.FrameOfReferenceUID)
    rel = relpath_for(img)
    junk.write(staging, rel, encode(ds, stored, "explicit"))
    return mess_row(rel, "filtered", "modality", kind, sop_instance_uid=img.sop_uid, study_instance_uid=study.uid,
                    accession_number=study.accession, patient_id=study.patient.mrn, modality=kind.upper(),
                    transfer_syntax="1.2.840.10008.1.2.1", transfer_syntax_name="explicit", is_chest=None,
                    photometric="MONOCHROME2")


_VARIANT_OUTCOME = {
    "burned_in": ("quarantined", "burned_in_annotation"), "for_processing": ("filtered", "for_processing"),
    "no_pixel_data": ("filtered", "no_pixel_data"), "truncated_native": ("quarantined", "truncated"),
    "truncated_encapsulated": ("quarantined", "truncated"), "multi_frame": ("filtered", "multi_frame"),
    "color": ("filtered", "color"), "constant": ("quarantined", "degenerate_image"),
    "no_decoder": ("quarantined", "no_decoder"), "decode_error": ("quarantined", "decode_error"),
    "missing_tags": ("quarantined", "missing_tags"), "unreadable_header": ("quarantined", "unreadable_header"),
    "secondary_capture": ("filtered", "secondary_capture"),
}


def _dx_variant(cohort: Cohort, study: Study, variant: str, staging: Path, relpath_for: RelpathFn) -> dict:
    """One more chest image of an existing study, spoilt in exactly one way."""
    from radadapt.demo.instance import build_instance, set_pixel_tags
    from radadapt.demo.pixelmodule import constant_pixels, encode_pixels
    from radadapt.demo.transfer import encode

    view = "AP" if any(im.view == "AP" for im in study.images) else "PA"
    img = new_image(cohort, study, "chest", view)
    inst = build_instance(img, cohort.registry)
    ds, stored, ts = inst.dataset, inst.pixels.stored, "explicit"
    if variant == "burned_in":
        px = encode_pixels(_burn_text(inst.display, img, colour=False), "standard", np.random.default_rng(img.seed),
                           modality=study.modality)
        set_pixel_tags(ds, px.tags)
        stored = px.stored
        ds.BurnedInAnnotation = "YES"
    elif variant in ("secondary_capture", "color"):
        stored = _burn_text(inst.display, img, colour=True)
        _pixel_description(ds, bits=8, rgb=True)
        if variant == "secondary_capture":  # a screenshot saved to PACS: SC storage, Modality OT
            ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES["SC"]
            ds.Modality, ds.ConversionType, ds.BurnedInAnnotation = "OT", "WSD", "YES"
            for k in ("PresentationIntentType", "DetectorType", "ImagerPixelSpacing", "ViewPosition"):
                if k in ds:
                    delattr(ds, k)
    elif variant == "for_processing":  # raw detector signal: log-domain, unprocessed
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = SOP_CLASSES["DX_PROCESSING"]
        ds.PresentationIntentType = "FOR PROCESSING"
        stored = np.rint(16000 * np.exp(-2.5 * inst.display)).astype(np.uint16)
        set_pixel_tags(ds, {"BitsStored": 14, "HighBit": 13})
    elif variant == "constant":
        px = constant_pixels(img.shape)
        set_pixel_tags(ds, px.tags)
        stored = px.stored
    elif variant == "multi_frame":
        stored = np.stack([stored, stored, stored])
        ds.NumberOfFrames = 3
    elif variant in ("no_decoder", "decode_error", "truncated_encapsulated"):
        ts = {"no_decoder": "encapsulated_uncompressed", "decode_error": "j2k", "truncated_encapsulated": "j2k"}[variant]
    data = b"" if variant == "no_pixel_data" else encode(ds, stored, ts)
    if variant == "no_pixel_data":
        ds.Rows, ds.Columns = img.shape
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
        data = junk.dataset_bytes(ds)
    elif variant == "missing_tags":
        del ds.Rows, ds.Columns
        data = junk.dataset_bytes(ds)
    elif variant.startswith("truncated"):
        start = data.find(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data: cut 40 % into its value
        data = data[: start + 12 + int(0.4 * (len(data) - start))]
    elif variant == "unreadable_header":
        data = data[:144] + b"\xff" * 8 + data[152:]  # garble the first file meta element after the group length
    elif variant == "decode_error":
        soc = data.find(b"\xff\x4f\xff\x51")  # JPEG 2000 SOC + SIZ: zero the image size parameters
        data = data[: soc + 4] + bytes(56) + data[soc + 60:]
    state, reason = _VARIANT_OUTCOME[variant]
    rel = relpath_for(img)
    junk.write(staging, rel, data)
    return mess_row(rel, state, reason, variant, sop_instance_uid=img.sop_uid, study_instance_uid=study.uid,
                    accession_number=study.accession, patient_id=study.patient.mrn, modality=str(ds.Modality),
                    transfer_syntax=TRANSFER_SYNTAXES[ts][0], transfer_syntax_name=ts, is_chest=True,
                    photometric=str(ds.get("PhotometricInterpretation", "")) or None, view=view,
                    rows=img.shape[0], columns=img.shape[1])


def _pixel_description(ds: object, *, bits: int, rgb: bool = False) -> None:
    from radadapt.demo.instance import set_pixel_tags

    for k in ("WindowCenter", "WindowWidth", "PresentationLUTShape", "RescaleIntercept", "RescaleSlope", "RescaleType",
              "VOILUTSequence", "ModalityLUTSequence", "PixelPaddingValue"):
        if rgb and k in ds:  # type: ignore[operator]
            delattr(ds, k)
    tags = {"SamplesPerPixel": 3 if rgb else 1, "PhotometricInterpretation": "RGB" if rgb else "MONOCHROME2",
            "BitsAllocated": 8 if bits <= 8 else 16, "BitsStored": bits, "HighBit": bits - 1, "PixelRepresentation": 0}
    if rgb:
        tags["PlanarConfiguration"] = 0
    set_pixel_tags(ds, tags)


def _burn_text(display: np.ndarray, img: Image, *, colour: bool) -> np.ndarray:
    """Text burned into the pixels (name, date, marker), as on screenshots and old CR prints."""
    from PIL import Image as PILImage, ImageDraw

    person = img.study.patient.person
    text = f"{person.spoken}  {img.study.date.strftime('%m/%d/%Y')}  PORTABLE".encode("ascii", "replace").decode()
    pil = PILImage.fromarray(np.rint(display * 255).astype(np.uint8)).convert("RGB" if colour else "L")
    draw = ImageDraw.Draw(pil)
    rows, cols = img.shape
    for k, line in enumerate((text, "R", img.study.accession)):
        draw.text((int(cols * 0.04), int(rows * (0.03 + 0.05 * k))), line, fill=(255, 220, 0) if colour else 255)
    arr = np.asarray(pil)
    return arr if colour else arr.astype(np.float32) / 255.0
