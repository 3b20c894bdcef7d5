"""Which images a benchmark uses, and the binary target of every label for each of them.

Images come from the store's patient-level splits: probes are trained on (a patient sample of) ``train``, C and
thresholds are chosen on ``val``, and everything is scored on ``test``. When a split holds more images than the
configured cap, whole patients are kept by a deterministic hash of their pseudonym, so the sample is the same
for every model and every rerun.

Label values (``labels.csv``, docs/architecture.md §3) become binary targets:

=============  ==============  ====================  =============================
column kind    positive (1)    negative (0)          uncertain
=============  ==============  ====================  =============================
finding        ``1``           ``0``, blank          ``-1``
device         ``present``     ``absent``, ``removed``, blank   ``uncertain``
=============  ==============  ====================  =============================

Blank means "not mentioned", which reports use for absent findings (the CheXpert convention). Uncertain values
are excluded from that label by default (``[benchmark] uncertain = "exclude"``, CheXpert's U-Ignore), or counted as
positive or negative. Images whose study has no labels row are excluded from every label. ``<device> position``
columns are not classification targets here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from radadapt.bench.probes import LabelTargets
from radadapt.errors import DataError

if TYPE_CHECKING:
    from radadapt.manifest import Store, StoreIndex

Uncertain = Literal["exclude", "positive", "negative"]
_FINDING = {"1": 1, "0": 0, "": 0, "-1": -1}
_DEVICE = {"present": 1, "absent": 0, "removed": 0, "": 0, "uncertain": -1}


@dataclass
class Cohort:
    """The images of one split chosen for the benchmark, in manifest order."""

    split: str
    image_keys: list[str] = field(default_factory=list)
    patient_keys: list[str] = field(default_factory=list)
    study_keys: list[str] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    heights: list[int] = field(default_factory=list)
    widths: list[int] = field(default_factory=list)
    reports: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.image_keys)

    @property
    def n_patients(self) -> int:
        return len(set(self.patient_keys))

    def index(self) -> "StoreIndex":
        from radadapt.manifest import StoreIndex

        names: dict[str, int] = {}
        ids = [names.setdefault(s, len(names)) for s in self.shards]
        return StoreIndex(image_keys=list(self.image_keys), shard_ids=np.asarray(ids, dtype=np.int32),
                          shards=list(names), offsets=np.asarray(self.offsets, dtype=np.int64),
                          heights=np.asarray(self.heights, dtype=np.int32),
                          widths=np.asarray(self.widths, dtype=np.int32))


def patient_draw(patient_key: str, seed: int) -> float:
    """A deterministic number in [0, 1) per patient (keys are already pseudonyms; no site key needed)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{patient_key}".encode()).digest()[:8], "big") / 2**64


def select_cohorts(store: "Store", caps: dict[str, int | None], seed: int = 0, keep_reports: tuple[str, ...] = (),
                   splits_as: dict[str, str] | None = None) -> dict[str, Cohort]:
    """One streaming pass over the manifest. ``caps`` maps split -> max images (None: all).

    ``splits_as`` renames store splits to cohorts (e.g. every split of an out-of-domain store -> "ood");
    report text is kept (in memory only) for the cohorts named in ``keep_reports``.
    """
    splits_as = splits_as or {s: s for s in caps}
    sizes: dict[str, int] = {}
    for split, cohort in splits_as.items():
        sizes[cohort] = sizes.get(cohort, 0) + int(store.info.splits.get(split, 0))
    frac = {c: (1.0 if cap is None or sizes.get(c, 0) <= cap else cap / sizes[c]) for c, cap in caps.items()}
    out = {c: Cohort(split=c) for c in caps}
    for rec in store.records():
        c = splits_as.get(rec.split)
        if c is None or c not in out:
            continue
        if frac[c] < 1.0 and patient_draw(rec.patient_key, seed) >= frac[c]:
            continue
        co = out[c]
        co.image_keys.append(rec.image_key)
        co.patient_keys.append(rec.patient_key)
        co.study_keys.append(rec.study_key)
        co.shards.append(rec.shard)
        co.offsets.append(rec.offset)
        co.heights.append(rec.height)
        co.widths.append(rec.width)
        co.reports.append(rec.report_text if c in keep_reports else None)
    return out


def label_columns(store: "Store") -> dict[str, str]:
    """label -> group ("findings" / "devices"), in labels.json order. Raises store.no_labels without labels."""
    info = store.labels_info()
    cols = {name: "findings" for name in info.findings}
    cols.update({name: "devices" for name in info.devices})
    if not cols:
        raise DataError("bench.no_label_columns", f"labels.json of {store.path} lists no finding or device columns",
                        hint=f"rerun `radadapt labels {store.path}`")
    return cols


def build_targets(store: "Store", cohorts: dict[str, Cohort], columns: dict[str, str],
                  uncertain: Uncertain = "exclude") -> tuple[dict[str, LabelTargets], dict[str, int]]:
    """Binary targets per cohort; also returns {"unknown_values": n, "unlabelled_images": n}."""
    needed = {s for co in cohorts.values() for s in co.study_keys}
    names = list(columns)
    codes: dict[str, np.ndarray] = {}
    unknown = 0
    for row in store.labels():
        key = row.get("study_key")
        if key not in needed:
            continue
        vals = np.empty(len(names), dtype=np.int8)
        for j, name in enumerate(names):
            table = _FINDING if columns[name] == "findings" else _DEVICE
            raw = (row.get(name) or "").strip().lower()
            v = table.get(raw)
            if v is None:
                unknown += 1
                v = -2  # unreadable value: excluded like an unlabelled image
            vals[j] = v
        codes[key] = vals
    missing = -2 * np.ones(len(names), dtype=np.int8)
    out: dict[str, LabelTargets] = {}
    unlabelled = 0
    for name, co in cohorts.items():
        mat = np.stack([codes.get(s, missing) for s in co.study_keys]) if len(co) else np.zeros((0, len(names)), np.int8)
        unlabelled += sum(1 for s in co.study_keys if s not in codes)
        if uncertain == "positive":
            mat = np.where(mat == -1, 1, mat)
        elif uncertain == "negative":
            mat = np.where(mat == -1, 0, mat)
        out[name] = LabelTargets(y=(mat == 1).astype(np.int8), mask=(mat >= 0))
    return out, {"unknown_values": unknown, "unlabelled_images": unlabelled}
