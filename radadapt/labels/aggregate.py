"""Per-report aggregation: many mentions of one thing in one report become one value per column.

Findings (the CheXpert labeler's rule, research/labelers.md §1): positive beats uncertain beats negative; a
finding with no mention is blank. A child finding's mentions also count for its parents (Rib Fracture for
Fracture, Nodule and Mass for Lung Lesion). No Finding is 1 when the report had text to read and no finding other
than Support Devices, nor any other abnormality (scoliosis, granuloma...), is positive or uncertain; else blank.

Devices: present beats removed beats uncertain beats absent. "Present" needs a mention about the current study,
so "right chest tube removed; left chest tube remains" is present (one tube is still there) while "the ETT seen on
the prior study ... patient extubated" is removed: mentions that only say a device was there on an earlier study
(historical) never make it present, and alone they leave the column blank. Support Devices is 1 if any device is
present, else -1 if any is uncertain, else 0 if any is removed or absent, else blank.

A generic negated phrase ("No lines or tubes.", "Support devices: none") makes each device of its group
(``device_groups`` in the schema) absent, unless the report mentions that device otherwise.

Positions (only for a device whose final state is present: where an uncertain device lies is moot): malpositioned
beats ok beats unknown; blank when the report says nothing about where the device lies.
"""

from __future__ import annotations

from radadapt.labels.context import DeviceMention
from radadapt.labels.schema import Schema

DEVICE_PRECEDENCE = ("present", "removed", "uncertain", "absent")
POSITION_PRECEDENCE = ("malpositioned", "ok", "unknown")


def finding_value(values: list[int]) -> str:
    if not values:
        return ""
    if 1 in values:
        return "1"
    if -1 in values:
        return "-1"
    return "0"


def aggregate(
    schema: Schema,
    finding_values: list[list[int]],
    other_values: list[int],
    devices: list[DeviceMention],
    had_text: bool,
) -> list[str]:
    """One row of values in ``schema.columns`` order."""
    n_f, n_d = len(schema.findings), len(schema.devices)
    row = [""] * (n_f + 2 * n_d)
    for child, ancestors in schema.ancestors.items():
        if finding_values[child]:
            for a in ancestors:
                finding_values[a].extend(finding_values[child])
    for i, values in enumerate(finding_values):
        row[i] = finding_value(values)

    states: list[set[str]] = [set() for _ in range(n_d)]
    weak: list[set[str]] = [set() for _ in range(n_d)]
    places: list[list[str]] = [[] for _ in range(n_d)]
    for d in devices:
        (weak if d.weak else states)[d.device].add(d.state)
        if d.state == "present":
            places[d.device].extend(d.positions)
    for j in range(n_d):
        state = next((s for s in DEVICE_PRECEDENCE if s in (states[j] or weak[j])), "")
        row[n_f + j] = state
        if state == "present":
            row[n_f + n_d + j] = next((p for p in POSITION_PRECEDENCE if p in places[j]), "")

    rederive(schema, row, any(v in (1, -1) for v in other_values), had_text)
    return row


def rederive(schema: Schema, row: list[str], other_abnormal: bool, had_text: bool) -> None:
    """Set the derived columns (Support Devices, No Finding) of ``row`` from its other values, in place."""
    n_f, n_d = len(schema.findings), len(schema.devices)
    states = set(row[n_f : n_f + n_d])
    if schema.support_devices is not None:
        row[schema.support_devices] = ("1" if "present" in states else "-1" if "uncertain" in states
                                       else "0" if states & {"removed", "absent"} else "")
    if schema.no_finding is not None:
        skip = {schema.no_finding, schema.support_devices}
        abnormal = other_abnormal or any(row[i] in ("1", "-1") for i in range(n_f) if i not in skip)
        row[schema.no_finding] = "1" if had_text and not abnormal else ""
