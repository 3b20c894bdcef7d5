"""What the synthetic hospital plants: finding and device names, prevalences, and per-study records.

Names are the label columns of docs/architecture.md §3, so ground truth, gold report labels and the labels
stage speak the same vocabulary. Sides are the *patient's* sides: on a frontal image the patient's left is on
the viewer's right (radiological convention), so ``left`` maps to canonical x > 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Side = Literal["left", "right", "bilateral"]
Size = Literal["small", "moderate", "large"]

# Planted findings with their prevalence among chest studies (independent draws, issue 3).
FINDINGS: dict[str, float] = {
    "Pleural Effusion": 0.30,
    "Consolidation": 0.28,
    "Nodule": 0.25,
    "Pneumothorax": 0.22,
    "Cardiomegaly": 0.30,
}
# Planted devices with their prevalence among chest studies.
DEVICES: dict[str, float] = {
    "endotracheal tube": 0.25,
    "enteric tube": 0.25,
    "central venous catheter": 0.30,
    "chest tube": 0.18,
    "cardiac device": 0.20,
}
FINDING_NAMES = tuple(FINDINGS)
DEVICE_NAMES = tuple(DEVICES)
NO_FINDING = "No Finding"

CM_PER_UNIT = 17.5  # one canonical unit (half the image width at scale 1) is about 17.5 cm of patient

# Label columns of report_labels.csv, in the labels schema's order (CheXpert names first, then the rest).
REPORT_FINDING_COLUMNS = (NO_FINDING, "Cardiomegaly", "Consolidation", "Pneumothorax", "Pleural Effusion", "Nodule")


def mask_name(sop_instance_uid: str, device: str) -> str:
    """``<SOPInstanceUID>__<device>.png``; the device part is the label column name verbatim (spaces kept)."""
    return f"{sop_instance_uid}__{device}.png"


@dataclass(frozen=True)
class Finding:
    name: str
    side: Side = "right"
    size: Size = "moderate"
    zone: Literal["upper", "mid", "lower"] = "lower"


@dataclass(frozen=True)
class Device:
    name: str
    position: Literal["ok", "malpositioned"] = "ok"
    side: Literal["left", "right"] = "right"  # chest tube side, CVC access side, pacemaker pocket
    tip_cm: float | None = None  # ETT: tip above the carina in cm (None: in a main bronchus)


@dataclass
class ChestState:
    """The patient's chest at one study: planted findings and devices (both shown in every chest image)."""

    findings: dict[str, Finding] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)

    def finding_flags(self) -> dict[str, int]:
        return {name: int(name in self.findings) for name in FINDING_NAMES}

    def device_flags(self) -> dict[str, str]:
        return {name: ("present" if name in self.devices else "absent") for name in DEVICE_NAMES}
