"""Catalogues of what the archive must contain: transfer syntaxes, chest-selection tagging cases, folder styles.

Each tagging case fixes the selection tags of an image and the outcome a sensible chest rule (tags +
descriptions + a cheap image check, ingest's default ``chest_rule = "tags_and_image"``) should reach, with the
evidence behind it. Where tags conflict the outcome follows the majority of independent evidence: a wrong
BodyPartExamined is overruled when the description and the image agree against it.
"""

from __future__ import annotations

from dataclasses import dataclass

# Transfer syntax keys -> (UID, lossy). "bare" is implicit VR little endian written without preamble or file meta.
TRANSFER_SYNTAXES: dict[str, tuple[str, bool]] = {
    "explicit": ("1.2.840.10008.1.2.1", False),
    "implicit": ("1.2.840.10008.1.2", False),
    "deflated": ("1.2.840.10008.1.2.1.99", False),
    "rle": ("1.2.840.10008.1.2.5", False),
    "jpegls": ("1.2.840.10008.1.2.4.80", False),
    "jpegls_near": ("1.2.840.10008.1.2.4.81", True),
    "j2k": ("1.2.840.10008.1.2.4.90", False),
    "j2k_lossy": ("1.2.840.10008.1.2.4.91", True),
    "jpeg8": ("1.2.840.10008.1.2.4.50", True),
    "bare": ("1.2.840.10008.1.2", False),
    "encapsulated_uncompressed": ("1.2.840.10008.1.2.1.98", False),  # no decoder in pydicom 3.0
}
# Share of each syntax among ordinary images (special cases add their own on top).
TS_WEIGHTS = {"explicit": 0.40, "implicit": 0.12, "deflated": 0.07, "rle": 0.10, "jpegls": 0.10, "j2k": 0.07,
              "j2k_lossy": 0.05, "jpeg8": 0.04, "jpegls_near": 0.05}
PIXEL_CASE_TS = {"mono1_rle": "rle"}  # special pixel cases that also need a particular syntax

SOP_CLASSES = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "DX_PROCESSING": "1.2.840.10008.5.1.4.1.1.1.1.1",
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
    "SC": "1.2.840.10008.5.1.4.1.1.7",
    "SR": "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "PR": "1.2.840.10008.5.1.4.1.1.11.1",  # Grayscale Softcopy Presentation State
    "DICOMDIR": "1.2.840.10008.1.3.10",  # Media Storage Directory
}

VIEW_CODES = {  # View Code Sequence (0054,0220), CID 4010: SNOMED CT codes and the older SNOMED-RT ones
    "SCT": {"PA": ("272479007", "postero-anterior"), "AP": ("399348003", "antero-posterior"),
            "LATERAL": ("399173006", "left lateral")},
    "SRT": {"PA": ("R-10214", "postero-anterior"), "AP": ("R-10206", "antero-posterior"),
            "LATERAL": ("R-10236", "left lateral")},
}


@dataclass(frozen=True)
class Tagging:
    """Selection tags of one image. ``None`` = element absent; "" = present but empty."""

    body_part: str | None
    study_description: str | None
    series_description: str | None
    protocol: str | None
    view_position: str | None  # "=view" means the image's own view (PA/AP/LL)
    view_code: str | None  # coding scheme of a View Code Sequence to write (SCT or SRT), None for none
    evidence: str  # why the expected decision is right (ground truth's chest_evidence)


DEFAULT_DESCRIPTIONS = {
    "PA": ("XR CHEST PA AND LAT", "PA", "CHEST PA"),
    "AP": ("XR CHEST 1V PORTABLE", "AP PORTABLE", "CHEST AP BEDSIDE"),
    "LATERAL": ("XR CHEST PA AND LAT", "LAT", "CHEST LAT"),
}

# Chest images: special cases on frontal images of single-image studies (descriptions are study-level).
CHEST_TAGGINGS: dict[str, Tagging] = {
    "default": Tagging("CHEST", "=", "=", "=", "=view", None, "body_part+description+image"),
    "thorax": Tagging("THORAX", "Thorax pa", "pa", "Thorax_PA_Erw", "=view", None, "body_part+description+image"),
    "body_part_lowercase": Tagging("Chest", "=", "=", "=", "=view", None, "body_part+description+image"),
    "body_part_empty": Tagging("", "XR CHEST PA AND LAT", "", None, "=view", None, "description+image"),
    "no_tags": Tagging(None, None, None, None, "", None, "image"),
    "body_part_wrong": Tagging("ABDOMEN", "XR CHEST 1V PORTABLE", "AP PORTABLE", "CHEST AP", "=view", None,
                               "description+image overrule body_part"),
    # Only the View Code Sequence (SNOMED CT) tells the view; no image-level text gives it away.
    "view_code_only": Tagging("CHEST", "=", "", "CHEST", None, "SCT", "body_part+description+image"),
    "view_empty": Tagging("CHEST", "=", "", "CHEST", "", None, "body_part+description+image"),
}
LATERAL_TAGGINGS: dict[str, Tagging] = {
    "lateral_ll": Tagging("CHEST", "=", "=", "=", "LL", None, "body_part+description+image"),
    "lateral_word": Tagging("CHEST", "=", "LATERAL", "=", "LATERAL", None, "body_part+description+image"),
    "lateral_code_only": Tagging("CHEST", "=", "", "CHEST", None, "SRT", "body_part+description+image"),
}
NON_CHEST_DESCRIPTIONS = {
    "hand": ("HAND", "XR WRIST 3V", "PA", "WRIST PA"),
    "knee": ("KNEE", "XR KNEE 2 VIEWS", "AP", "KNEE AP"),
    "pelvis": ("PELVIS", "XR PELVIS AP", "AP", "PELVIS AP"),
    "ct": ("CHEST", "CT CHEST WO CONTRAST", "AXIAL 1.25MM", "CT THORAX ROUTINE"),  # a chest, but not a radiograph
    "mr": ("KNEE", "MR KNEE WO CONTRAST", "PD FS COR", "MR KNEE ROUTINE"),
}
NON_CHEST_TAGGINGS = {
    "non_chest": "body_part+description+image",
    "non_chest_tagged_chest": "description+image overrule body_part",  # BodyPartExamined CHEST on a wrist
    "non_chest_no_tags": "image",
}

# Folder layouts of real exports; {..} fields come from the plan (see archive.relpath_for).
FOLDER_STYLES = {
    "pacs": "PACS_EXPORT/PAT_{mrn}/{date}_{accession}/SER{series:03d}/IMG{instance:04d}.dcm",
    "named": "{patient_folder}/{study_description}/{series_description}/{sop}.dcm",
    "dicom": "DICOM/S{study_index:07d}/S{series:07d}/I{instance:07d}",
    "deep": "export/{yyyy}/{mm}/{dd}/node01/cache/a/b/c/{accession}/{series}/{instance:05d}.DCM",
    "unicode": "Röntgen Archiv/Patient {mrn}/Studie {date}/Bild {series}-{instance}.dcm",
    "spaces": "New Folder (2)/{accession} copy/IM-{series:04d}-{instance:04d}.dcm",
}
FOLDER_WEIGHTS = {"pacs": 0.35, "named": 0.15, "dicom": 0.2, "deep": 0.1, "unicode": 0.1, "spaces": 0.1}
