"""Which objects become training images: SOP class, modality, pixel form, body part and view, with reasons.

Tags alone cannot identify chest radiographs (research/dicom_ingest.md: thorax files with empty Body Part and View
Position, non-chest files with View Position PA), so the decision combines the SOP class (PS3.4 B.5), Modality,
Body Part Examined (free-text variants), Study/Series Description and Protocol Name, View Position / View Code
Sequence (PS3.3 C.8.11.5), and a cheap check on the rendered image (``lung_fields``). The checks run in the order
of docs/architecture.md "Reason precedence"; ``IngestSection.chest_rule`` chooses how tags and image combine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from pydicom.dataset import Dataset

    from radadapt.config import IngestSection

CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
DX_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
RADIOGRAPH_CLASSES = {CR_IMAGE, DX_PRESENTATION, DX_PROCESSING}
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"  # SC and the multi-frame SC classes .7.1-.7.4
REQUIRED_TAGS = ("SOPInstanceUID", "Rows", "Columns", "BitsAllocated", "BitsStored", "PhotometricInterpretation")

_CHEST = re.compile(
    r"\b(CHEST|THORAX|THX|CXR|LUNGS?|PULMONARY|TORAX|TORACE|BRUST|BRUSTKORB|THORAKS|POITRINE|PECHO|BORST)\b"
)
_NOT_CHEST = re.compile(
    r"\b(SPINE|[CTL]-?SPINE|CERVICAL|LUMBAR|SACRUM|COCCYX|PELVIS|HIPS?|ABDOMEN|ABD|KUB|SKULL|HEAD|SINUS(ES)?|"
    r"FACE|FACIAL|MANDIBLE|NASAL|ORBITS?|NECK|SHOULDERS?|CLAVICLES?|SCAPULA|HUMERUS|ELBOWS?|FOREARM|WRISTS?|"
    r"HANDS?|FINGERS?|THUMB|FEMUR|KNEES?|PATELLA|TIBIA|FIBULA|LEGS?|ANKLES?|FOOT|FEET|TOES?|HEEL|CALCANEUS|"
    r"EXTREMITY|EXTREMITIES|ARMS?|MAMMO\w*|BREAST|DENTAL|TEETH|JAW)\b"
)
_VIEW_TERMS = {
    "PA": "PA", "POSTERO-ANTERIOR": "PA", "POSTEROANTERIOR": "PA",
    "AP": "AP", "ANTERO-POSTERIOR": "AP", "ANTEROPOSTERIOR": "AP",
    "LL": "LATERAL", "RL": "LATERAL", "LAT": "LATERAL", "LATERAL": "LATERAL", "LEFT LATERAL": "LATERAL",
    "RIGHT LATERAL": "LATERAL",
    "RLD": "other", "LLD": "other", "RLO": "other", "LLO": "other", "OBLIQUE": "other", "DECUBITUS": "other",
}
_VIEW_CODES = {"R-10214": "PA", "R-10206": "AP", "R-10232": "LATERAL", "R-10236": "LATERAL"}  # SNOMED-RT, CID 4010
_VIEW_TEXT = (
    (re.compile(r"\b(PA|POSTERO-?\s?ANTERIOR)\b"), "PA"),
    (re.compile(r"\b(AP|ANTERO-?\s?POSTERIOR)\b"), "AP"),
    (re.compile(r"\b(LAT|LATERAL|LL|RL)\b"), "LATERAL"),
    (re.compile(r"\b(OBL|OBLIQUE|DECUBITUS|RLD|LLD|RLO|LLO)\b"), "other"),
)


@dataclass
class Selection:
    """The header-level decision. ``state`` None means: go on to decode."""

    state: str | None
    reason: str
    view: str = "unknown"  # PA | AP | LATERAL | unknown | other
    chest_tags: str = "?"  # + (tags say chest), - (tags say another body part), ? (silent or conflicting)
    chest_why: str = "none"  # body_part | description | conflict | none


def _text(ds: Any, keyword: str) -> str:
    value = ds.get(keyword)
    if value is None:
        return ""
    if not isinstance(value, str):
        value = "\\".join(str(v) for v in value) if hasattr(value, "__iter__") else str(value)
    return re.sub(r"[_^\s]+", " ", value).strip().upper()


def _verdict(text: str) -> str:
    pos, neg = bool(_CHEST.search(text)), bool(_NOT_CHEST.search(text))
    return "+" if pos and not neg else "-" if neg and not pos else "conflict" if pos else "?"


def chest_tags(ds: Any) -> tuple[str, str]:
    """(verdict, why): Body Part Examined first, descriptions when it is silent; disagreement is ``?``."""
    body = _verdict(_text(ds, "BodyPartExamined"))
    desc = _verdict(" / ".join(_text(ds, k) for k in ("StudyDescription", "SeriesDescription", "ProtocolName")))
    if body in "+-":
        if desc in "+-" and desc != body:
            return "?", "conflict"
        return body, "body_part+description" if desc == body else "body_part"
    if desc in "+-":
        return desc, "description"
    return "?", "conflict" if "conflict" in (body, desc) else "none"


def view_of(ds: Any) -> str:
    """PA / AP / LATERAL / other / unknown from View Position, then View Code Sequence, then series text."""
    vp = _text(ds, "ViewPosition")
    if vp in _VIEW_TERMS:
        return _VIEW_TERMS[vp]
    for item in ds.get("ViewCodeSequence") or []:
        code = str(item.get("CodeValue", "") or "").strip().upper()
        if code in _VIEW_CODES:
            return _VIEW_CODES[code]
        meaning = re.sub(r"\s+", " ", str(item.get("CodeMeaning", "") or "")).strip().upper()
        for pattern, view in _VIEW_TEXT:
            if pattern.search(meaning):
                return view
    # Image-level text only: a study description ("CHEST PA AND LAT") describes several images.
    text = " / ".join(_text(ds, k) for k in ("SeriesDescription", "ProtocolName"))
    found = {view for pattern, view in _VIEW_TEXT if pattern.search(text)}
    return found.pop() if len(found) == 1 else "unknown"


def select_header(ds: Dataset, cfg: IngestSection) -> Selection:
    """Steps 2-3 of the reason precedence (what the object is, then body part and view by tags)."""
    sop = str(ds.get("SOPClassUID", "") or "").strip()
    modality = _text(ds, "Modality")
    has_pixels = "PixelData" in ds
    if not has_pixels and sop not in RADIOGRAPH_CLASSES:
        return Selection("filtered", "sop_class")
    image_type = [str(v).strip().upper() for v in (ds.get("ImageType") or [])] if not isinstance(ds.get("ImageType"), str) else [ds.ImageType.strip().upper()]
    if sop.startswith(SECONDARY_CAPTURE_PREFIX) or modality in ("OT", "SC") or image_type[1:2] == ["SECONDARY"]:
        return Selection("filtered", "secondary_capture")
    if modality not in {m.upper() for m in cfg.modalities}:
        return Selection("filtered", "modality")
    intent = _text(ds, "PresentationIntentType")
    if (sop == DX_PROCESSING or intent == "FOR PROCESSING") and not cfg.keep_for_processing:
        return Selection("filtered", "for_processing")
    if not has_pixels:
        return Selection("filtered", "no_pixel_data")
    if any(ds.get(k) in (None, "") for k in REQUIRED_TAGS):
        return Selection("quarantined", "missing_tags")
    pi = _text(ds, "PhotometricInterpretation")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1 or pi not in ("MONOCHROME1", "MONOCHROME2"):
        return Selection("filtered", "color")
    try:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        frames = 2  # an unreadable frame count: not a plain single-frame radiograph
    if frames > 1:
        return Selection("filtered", "multi_frame")
    if _text(ds, "BurnedInAnnotation") == "YES":
        return Selection("quarantined", "burned_in_annotation")
    verdict, why = chest_tags(ds)
    view = view_of(ds)
    sel = Selection(None, "", view=view, chest_tags=verdict, chest_why=why)
    if verdict == "-" and cfg.chest_rule in ("tags_and_image", "tags_only"):
        return Selection("filtered", "not_chest", view, verdict, why)
    if view == "other" or view not in cfg.views:
        return Selection("filtered", "view", view, verdict, why)
    return sel


def chest_decision(sel: Selection, image: np.ndarray, rule: str) -> tuple[bool, str]:
    """Combine the tag verdict with the image check under ``rule``; returns (keep, recorded decision).

    ``tags_and_image``: tags saying another body part drop the image (before decoding); otherwise the image
    check decides, except that Body Part Examined and a description that both say chest keep the image without
    it (it misses some abnormal chests). ``tags_only``: tags must say chest. ``image_only``: the image check
    alone. ``any``: no body-part selection. Lateral views skip the image check (it looks for two lung fields side
    by side).
    """
    tags = f"tags:{sel.chest_tags}{sel.chest_why}"
    if rule == "any":
        return True, "any"
    if rule == "tags_only":
        return sel.chest_tags == "+", tags
    if sel.view == "LATERAL":
        # The image check looks for two lung fields side by side, which a lateral view does not show.
        keep = rule == "image_only" or sel.chest_tags == "+"
        return keep, f"{tags};image:skipped_lateral" if rule != "image_only" else "image:skipped_lateral"
    if rule == "tags_and_image" and sel.chest_tags == "+" and sel.chest_why == "body_part+description":
        # The image check misses some abnormal chests (a large effusion or consolidation hides a lung), and dropping
        # them would bias the store towards normal films; two tag sources that agree decide, so it is not run.
        return True, f"{tags};image:skipped"
    ok, why = lung_fields(image)
    image_part = f"image:{'+' if ok else '-'}{why}"
    if rule == "image_only":
        return ok, image_part
    return ok and sel.chest_tags != "-", f"{tags};{image_part}"


def lung_fields(image: np.ndarray) -> tuple[bool, str]:
    """Cheap check for a frontal chest radiograph: a large dark field each side of the midline.

    On a 64x64 thumbnail (display polarity: air dark), dark regions are labelled at five thresholds (the 10th to
    50th percentile of the central area). A lung shows up whole, or cut into strips by the ribs, so each side
    of the midline collects its dark pieces of >= 1 % of the image that are solid (>= 80 % of their hole-filled
    area: speckle in a flat region is not), >= 4 pixels wide on average and touch neither the top nor the bottom
    edge. A side holds a lung field when its pieces cover >= 4 % of the image and >= 25 % of its height, centred
    in the upper three quarters; a chest has both, overlapping in height by half, areas within a factor 4
    (each side is thresholded on its own: a lung with an effusion is brighter than the other).

    Background air beside a limb or between fingers reaches an edge, and the paired holes of a pelvis
    (obturator foramina) are too small, so they fail. Limits: lungs cut off at the top or bottom edge, a
    white-out of one lung, a lateral view, or a film stored with the wrong polarity fail; a heavily rotated or
    paediatric film may fail; an axial CT slice of the thorax passes (Modality rules it out first). Measured
    on the demo phantoms and pydicom's sample radiographs: docs/ingest.md, "Chest selection".
    """
    from PIL import Image
    from scipy import ndimage

    small = np.asarray(Image.fromarray(image).resize((64, 64), Image.Resampling.BOX), dtype=np.float32)
    lo, hi = np.percentile(small, (2, 98))
    if hi - lo < 8:
        return False, "flat"
    small = np.clip((small - lo) / (hi - lo), 0, 1)
    centre = small[8:56, 8:56]
    fields: dict[str, list[tuple[int, int, int]]] = {"L": [], "R": []}
    for q in (0.1, 0.2, 0.3, 0.4, 0.5):
        dark = small < np.quantile(centre, q)
        dark[:, 31:33] = False  # split at the midline: a dark mediastinum must not join the lungs
        labels, _n = ndimage.label(dark)
        areas = np.bincount(labels.ravel())
        pieces: dict[str, list[tuple[int, int, int, float]]] = {"L": [], "R": []}
        for i, sl in enumerate(ndimage.find_objects(labels), start=1):
            rows, cols = sl
            area = int(areas[i])
            if area < 41 or rows.start == 0 or rows.stop == 64 or area / (rows.stop - rows.start) < 4:
                continue
            comp = labels[sl] == i
            if area < 0.8 * ndimage.binary_fill_holes(comp).sum():
                continue
            cy, cx = ndimage.center_of_mass(comp)
            side = "L" if (cx + cols.start) / 64 < 0.5 else "R"
            pieces[side].append((area, rows.start, rows.stop, (cy + rows.start) * area))
        for side, found in pieces.items():
            if not found:
                continue
            area = sum(p[0] for p in found)
            top, bottom = min(p[1] for p in found), max(p[2] for p in found)
            if area >= 0.04 * 4096 and bottom - top >= 16 and 0.15 <= sum(p[3] for p in found) / area / 64 <= 0.75:
                fields[side].append((area, top, bottom))
    for a in fields["L"]:
        for b in fields["R"]:
            overlap = min(a[2], b[2]) - max(a[1], b[1])
            if max(a[0], b[0]) <= 4 * min(a[0], b[0]) and overlap >= 0.5 * min(a[2] - a[1], b[2] - b[1]):
                return True, "lungs"
    return False, "no_lung_pair"
