"""The plan of the synthetic hospital: patients, studies and images, all drawn from one seed.

Planning is cheap and sequential (one ``numpy`` generator); rendering each image later uses its own seed
(``ImagePlan.seed``), so images can be rendered in any order or in parallel with identical results.

``n`` counts patient radiographs: frontal and lateral chest images plus non-chest radiographs (hand, knee,
pelvis). Special cases (pixel pipelines, selection tags, one bare dataset) are spread over frontal chest images
of single-image studies; the mess of a real export is added on top by ``mess.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from radadapt.demo import phi
from radadapt.demo.cases import CHEST_TAGGINGS, FOLDER_WEIGHTS, PIXEL_CASE_TS, TS_WEIGHTS
from radadapt.demo.pixelmodule import PIXEL_CASES
from radadapt.demo.truth import DEVICES, FINDINGS, ChestState, Device, Finding

MIN_N = 60  # guarantees enough frontal images for every special case (see _assign_special_cases)
EPOCH = dt.date(2019, 1, 7)


@dataclass
class Patient:
    index: int
    person: phi.Person
    charset_kind: str
    mrn: str
    other_id: str
    birth: dt.date
    sex: str
    institution: phi.Institution
    phone: str | None
    address: str | None
    folder_style: str
    studies: list["Study"] = field(default_factory=list)


@dataclass
class Study:
    index: int
    patient: Patient
    kind: str  # chest | hand | knee | pelvis | ct | mr (mess studies)
    accession: str
    uid: str
    study_id: str
    date: dt.date
    time: str
    referring: phi.Person
    operator: phi.Person
    modality: str  # CR | DX
    state: ChestState | None = None
    prior: "Study | None" = None
    removed: tuple[str, ...] = ()  # devices present at the prior study and gone now
    has_report: bool = True
    images: list["Image"] = field(default_factory=list)


@dataclass
class Image:
    index: int
    study: Study
    kind: str  # chest | hand | knee | pelvis
    view: str  # PA | AP | LATERAL
    shape: tuple[int, int]
    seed: int
    series: int
    instance: int
    series_uid: str
    sop_uid: str
    ts: str = "explicit"
    pixel_case: str = "standard"
    bits: int = 12
    mono1: bool = False
    tagging: str = "default"


@dataclass
class Cohort:
    seed: int
    size: int
    patients: list[Patient]
    studies: list[Study]
    images: list[Image]
    registry: phi.PhiRegistry
    extra: int = 0  # images made outside the plan (mess.py), numbered after the n planned ones


def image_shape(kind: str, view: str, size: int) -> tuple[int, int]:
    """(rows, cols), never square: a transposed image shows."""
    ratio = {("chest", "PA"): (1.0, 0.857), ("chest", "AP"): (0.9, 1.0), ("chest", "LATERAL"): (1.0, 0.86),
             ("hand", ""): (1.0, 0.75), ("knee", ""): (1.0, 0.62), ("pelvis", ""): (0.8, 1.0)}
    r, c = ratio.get((kind, view), ratio.get((kind, ""), (1.0, 0.857)))
    return int(round(size * r)), int(round(size * c))


def plan_cohort(n: int, seed: int, size: int) -> Cohort:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0407]))
    reg = phi.PhiRegistry()
    n_other = max(6, int(round(0.07 * n)))
    patients: list[Patient] = []
    studies: list[Study] = []
    images: list[Image] = []
    n_chest = n - n_other
    while len(images) < n_chest:
        p = _patient(len(patients), seed, rng, reg)
        patients.append(p)
        day = EPOCH + dt.timedelta(days=int(rng.integers(0, 1400)))
        for _ in range(int(rng.choice([1, 2, 3, 4], p=[0.5, 0.3, 0.15, 0.05]))):
            s = make_study(p, len(studies), "chest", day, seed, rng, reg)
            studies.append(s)
            views = _views(rng) if len(studies) > 8 else ["PA" if len(studies) % 2 else "AP"]
            for v in views[: n_chest - len(images)]:
                _add_image(s, "chest", v, images, seed, size)
            if not s.images:
                studies.pop()
                p.studies.pop()
                break
            day += dt.timedelta(days=int(rng.integers(1, 150)))
    for k in range(n_other):  # non-chest radiographs, in their own studies of existing patients
        p = patients[int(rng.integers(0, len(patients)))]
        kind = ("hand", "knee", "pelvis")[k % 3]
        s = make_study(p, len(studies), kind, EPOCH + dt.timedelta(days=int(rng.integers(0, 1500))), seed, rng, reg)
        s.has_report = False
        studies.append(s)
        _add_image(s, kind, "AP" if kind != "hand" else "PA", images, seed, size)
    _assign_states(studies, rng)
    for s in [s for s in studies if s.kind == "chest"][-2:]:
        s.has_report = False  # at least two chest studies whose report is missing from the export
    _assign_special_cases(studies, images, rng)
    return Cohort(seed=seed, size=size, patients=patients, studies=studies, images=images, registry=reg)


def _views(rng: np.random.Generator) -> list[str]:
    r = rng.random()
    if r < 0.35:
        return ["PA", "LATERAL"]
    if r < 0.45:
        return ["AP", "AP"]  # a repeated portable film
    return ["AP" if rng.random() < 0.45 else "PA"]


def _patient(i: int, seed: int, rng: np.random.Generator, reg: phi.PhiRegistry) -> Patient:
    person, kind = phi.patient_person(i, rng)
    inst = phi.INSTITUTIONS[0] if (kind == "ascii" and rng.random() < 0.8) else phi.INSTITUTIONS[int(rng.integers(0, 2))]
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365 * 65)))
    style = "named" if i == 0 else str(rng.choice(list(FOLDER_WEIGHTS), p=list(FOLDER_WEIGHTS.values())))
    p = Patient(i, person, kind, phi.mrn(i, seed), phi.other_patient_id(i, seed), birth,
                "M" if rng.random() < 0.5 else "F", inst,
                phi.patient_phone(i, seed) if rng.random() < 0.4 else None,
                phi.patient_address(i, rng) if rng.random() < 0.4 else None, style)
    reg.add("names", *person.strings())
    reg.add("ids", p.mrn, p.other_id)
    reg.add_date(birth)
    reg.add("phones", p.phone)
    reg.add("addresses", p.address)
    reg.add("institutions", inst.name, inst.department)
    reg.add("addresses", inst.address)
    reg.add("phones", inst.phone)
    reg.add("other", inst.issuer, *inst.stations, *inst.serials)
    return p


def make_study(p: Patient, index: int, kind: str, day: dt.date, seed: int, rng: np.random.Generator,
               reg: phi.PhiRegistry) -> Study:
    """A study of ``p`` (appended to its studies) with identifiers from the seed; registers its PHI."""
    time = f"{int(rng.integers(7, 20)):02d}{int(rng.integers(0, 60)):02d}{int(rng.integers(0, 60)):02d}"
    s = Study(index, p, kind, phi.accession(index, seed), phi.uid(seed, "study", index), phi.study_id(index, seed),
              day, time, phi.physician(int(rng.integers(0, 8))), phi.physician(int(rng.integers(0, 8))),
              "DX" if rng.random() < 0.5 else "CR")
    s.prior = next((q for q in reversed(p.studies) if q.kind == "chest"), None) if kind == "chest" else None
    p.studies.append(s)
    reg.add("accession_numbers", s.accession)
    reg.add("uids", s.uid)
    reg.add("ids", s.study_id)
    reg.add_date(day)
    reg.add("times", time)
    reg.add("physicians", *s.referring.strings(), *s.operator.strings(), f"Dr. {s.referring.given} {s.referring.family.title()}")
    return s


def _add_image(s: Study, kind: str, view: str, images: list[Image], seed: int, size: int) -> None:
    i = len(images)
    series = 2 if view == "LATERAL" else 1
    series_uid = phi.uid(seed, "series", s.index, series)
    img = Image(i, s, kind, view, image_shape(kind, view, size),
                int(np.random.SeedSequence([seed, 0x1A6E, i]).generate_state(1)[0]), series,
                len(s.images) + 1, series_uid, phi.uid(seed, "image", i))
    s.images.append(img)
    images.append(img)


def _assign_states(studies: list[Study], rng: np.random.Generator) -> None:
    for s in studies:
        if s.kind != "chest":
            continue
        st = ChestState()
        for name, prev in FINDINGS.items():
            if rng.random() < prev:
                side = str(rng.choice(["left", "right"]))
                if name == "Pleural Effusion" and rng.random() < 0.25:
                    side = "bilateral"
                st.findings[name] = Finding(name, side, str(rng.choice(["small", "moderate", "large"])),
                                            str(rng.choice(["upper", "mid", "lower"])))
        for name, prev in DEVICES.items():
            if rng.random() < prev:
                side = "left" if (name == "cardiac device" and rng.random() < 0.85) else str(rng.choice(["left", "right"]))
                if name == "central venous catheter":
                    side = "right" if rng.random() < 0.75 else "left"
                tip = None
                if name == "endotracheal tube" and rng.random() < 0.85:
                    tip = float(rng.choice([3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0]))
                st.devices[name] = Device(name, "malpositioned" if (name == "endotracheal tube" and tip is None)
                                          else "ok", side, tip)
        s.state = st
        s.has_report = rng.random() > 0.03
        if s.prior is not None and s.prior.state is not None:
            s.removed = tuple(d for d in s.prior.state.devices if d not in st.devices)


def _assign_special_cases(studies: list[Study], images: list[Image], rng: np.random.Generator) -> None:
    """Spread pixel cases, tagging cases and transfer syntaxes; every case appears at least once."""
    frontal = [im for im in images if im.kind == "chest" and im.view != "LATERAL"]
    single = [im for im in frontal if len(im.study.images) == 1]
    tags = [t for t in CHEST_TAGGINGS if t != "default"]
    pixel_specials = list(PIXEL_CASES) + ["jpeg8", "jpeg8", "bare"]
    if len(single) < len(tags) or len(frontal) < len(tags) + len(pixel_specials):
        raise ValueError("too few frontal chest images for the special cases")  # MIN_N guards this
    for t, k in zip(tags, rng.permutation(len(single))):
        single[k].tagging = t
    rest = [im for im in frontal if im.tagging == "default"]
    for case, k in zip(pixel_specials, rng.permutation(len(rest))):
        img = rest[k]
        if case == "bare":
            img.ts = "bare"
        elif case == "jpeg8":
            img.ts, img.pixel_case, img.bits = "jpeg8", "jpeg8", 8
        else:
            img.pixel_case = case
            img.ts = PIXEL_CASE_TS.get(case, "explicit")
    plain = [im for im in images if im.kind == "chest" and im.pixel_case == "standard" and im.ts == "explicit"]
    keys = list(TS_WEIGHTS)
    pool = keys + [k for k in keys for _ in range(int(round(TS_WEIGHTS[k] * len(plain))) - 1)]  # each at least once
    pool = pool[: len(plain)] + ["explicit"] * (len(plain) - len(pool))
    for im, ts in zip(plain, [pool[i] for i in rng.permutation(len(pool))]):
        im.ts = ts
        if ts == "jpeg8":
            im.pixel_case, im.bits = "jpeg8", 8
        else:
            im.bits = int(rng.choice([10, 12, 14, 16], p=[0.1, 0.7, 0.15, 0.05]))
            im.mono1 = rng.random() < 0.12
    laterals = [im for im in images if im.view == "LATERAL"]
    for k, im in enumerate(laterals):
        im.tagging = ("lateral_ll", "lateral_word", "lateral_code_only")[k] if k < 3 else "lateral_ll"
    others = [im for im in images if im.kind != "chest"]
    for im in others:
        im.tagging = "non_chest"
    hands = [im for im in others if im.kind == "hand"]
    pelvises = [im for im in others if im.kind == "pelvis"]
    hands[0].tagging = "non_chest_tagged_chest"
    pelvises[0].tagging = "non_chest_no_tags"


def new_study(cohort: Cohort, patient: Patient, kind: str) -> Study:
    """An extra study (CT, MR) of ``patient`` outside the plan; it has no report."""
    index = len(cohort.studies)
    rng = np.random.default_rng(np.random.SeedSequence([cohort.seed, 0x57D, index]))
    day = EPOCH + dt.timedelta(days=int(rng.integers(0, 1500)))
    s = make_study(patient, index, kind, day, cohort.seed, rng, cohort.registry)
    s.has_report = False
    cohort.studies.append(s)
    return s


def new_image(cohort: Cohort, study: Study, kind: str, view: str, *, shape: tuple[int, int] | None = None) -> Image:
    """An extra image of ``study`` (a mess object) with its own seed and UIDs; not one of the n radiographs.

    It is not added to ``study.images``: study descriptions and reports describe the planned images only.
    """
    i = len(cohort.images) + cohort.extra
    cohort.extra += 1
    series = 100 + cohort.extra  # never collides with planned series or another extra image
    img = Image(i, study, kind, view, shape or image_shape(kind, view, cohort.size),
                int(np.random.SeedSequence([cohort.seed, 0x1A6E, i]).generate_state(1)[0]), series, 1,
                phi.uid(cohort.seed, "series", study.index, series), phi.uid(cohort.seed, "image", i))
    cohort.registry.add("uids", img.series_uid, img.sop_uid)
    return img
