"""`generate_archive`: write the synthetic hospital (docs/architecture.md §1, docs/demo_archive.md).

Output is deterministic in (n, seed, size): every UID, date, name and random draw comes from the seed, no
wall-clock time is written, files are written in a fixed order, and codecs are called with fixed settings,
so two runs give byte-identical trees. The archive is built in a staging directory beside OUT and renamed into
place at the end (one atomic step for thousands of files, instead of an fsync per file); ``demo_archive.json``
is written last and marks a complete archive, so an interrupted run leaves no half archive behind and a rerun
with the same parameters reuses a complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

from radadapt import __version__, atomic, console
from radadapt.demo import phi
from radadapt.demo.cases import FOLDER_STYLES, TRANSFER_SYNTAXES
from radadapt.demo.cohort import MIN_N, Cohort, Image, plan_cohort
from radadapt.demo.truth import FINDING_NAMES, mask_name
from radadapt.errors import UsageError

GENERATOR_VERSION = 1
DEFAULT_N = 300
DEFAULT_SIZE = 448
MIN_SIZE, MAX_SIZE = 128, 2048
_STAGING_MARKER = ".radadapt-demo-staging"
OUTPUTS = ("archive", "masks", "reports.csv", "report_labels.csv", "ground_truth.jsonl", "phi.json",
           "demo_archive.json")


def generate_archive(out: str | os.PathLike, n: int = DEFAULT_N, seed: int = 0, size: int = DEFAULT_SIZE, *,
                     force: bool = False, workers: int = 1) -> dict:
    """Write the demo archive to ``out`` and return a summary (the `radadapt demo-archive --json` output).

    ``workers`` > 1 renders radiographs in that many processes; the output does not depend on it.
    """
    out = Path(out)
    _check_arguments(n, seed, size)
    if workers < 1:
        raise UsageError("demo.bad_workers", f"workers must be at least 1 (got {workers})")
    params = {"n": n, "seed": seed, "size": size, "generator_version": GENERATOR_VERSION}
    reused = _existing(out, params, force)
    if reused is not None:
        return reused
    t0 = time.perf_counter()
    staging = out.parent / f".{out.name}.partial"
    _clear_staging(staging)
    staging.mkdir(parents=True)
    (staging / _STAGING_MARKER).touch()

    from radadapt.demo import mess, reports

    cohort = plan_cohort(n, seed, size)
    with console.progress() as bar:
        task = bar.add_task("demo archive", total=n)
        rows = _write_radiographs(cohort, staging, workers, lambda k: bar.advance(task, k))
    rows.extend(mess.add_mess(cohort, staging, relpath_for))
    mess.resolve_duplicates(rows)
    rows.sort(key=lambda r: r["relpath"])
    report_summary = reports.write_reports(cohort, staging)

    atomic.write_jsonl(staging / "ground_truth.jsonl", rows)
    atomic.write_json(staging / "phi.json", cohort.registry.as_json())
    info = _info(params, rows, report_summary)
    (staging / _STAGING_MARKER).unlink()
    atomic.write_json(staging / "demo_archive.json", info)
    _move_into_place(staging, out)
    return _summary(out, info, reused=False, seconds=time.perf_counter() - t0)


def relpath_for(img: Image, *, series: int | None = None, instance: int | None = None) -> str:
    """Where ``img`` lives under archive/, in its patient's folder style (export layouts seen in practice)."""
    from radadapt.demo.dicomgen import selection_tags

    study, patient = img.study, img.study.patient
    tags = selection_tags(img)
    fields = {
        "mrn": patient.mrn, "accession": study.accession, "date": study.date.strftime("%Y%m%d"),
        "yyyy": study.date.strftime("%Y"), "mm": study.date.strftime("%m"), "dd": study.date.strftime("%d"),
        "series": series if series is not None else img.series,
        "instance": instance if instance is not None else img.instance,
        "study_index": study.index, "sop": img.sop_uid, "patient_folder": patient.person.pn,
        "study_description": tags.get("StudyDescription") or "_",
        "series_description": tags.get("SeriesDescription") or "_",
    }
    rel = FOLDER_STYLES[patient.folder_style].format(**fields)
    if patient.folder_style == "unicode":  # several studies can share a date: keep folders apart
        rel = rel.replace(f"Studie {fields['date']}", f"Studie {fields['date']}-{study.index}")
    return rel


def image_row(img: Image, relpath: str, transfer_syntax: str, *, masks: list[str] | None = None,
              pixel_truth: dict | None = None, geometry: dict | None = None) -> dict:
    """The ground-truth row of a patient radiograph (state before duplicate resolution)."""
    from radadapt.demo.dicomgen import expected_view, tagging_of

    study = img.study
    chest = img.kind == "chest"
    if not chest:
        state, reason = "filtered", "not_chest"
    elif img.view == "LATERAL":
        state, reason = "filtered", "view"
    elif img.pixel_case == "flatten_window":
        state, reason = "ok", "ok_voi_retry"
    else:
        state, reason = "ok", "ok"
    findings = devices = positions = None
    if chest and study.state is not None:
        findings = study.state.finding_flags()
        if img.view == "LATERAL":
            findings["Pneumothorax"] = 0  # not drawn on laterals: image truth, not study truth
        devices = study.state.device_flags()
        positions = {k: d.position for k, d in sorted(study.state.devices.items())}
    uid, lossy = TRANSFER_SYNTAXES[transfer_syntax]
    return {
        "relpath": relpath, "expected_state": state, "expected_reason": reason, "kind": "radiograph",
        "sop_instance_uid": img.sop_uid, "study_instance_uid": study.uid, "series_instance_uid": img.series_uid,
        "accession_number": study.accession, "patient_id": study.patient.mrn, "transfer_syntax": uid,
        "transfer_syntax_name": transfer_syntax, "lossy": lossy, "bare_dataset": transfer_syntax == "bare",
        "photometric": (pixel_truth or {}).get("photometric"), "view": expected_view(img), "is_chest": chest,
        "body_part": img.kind, "chest_case": img.tagging, "chest_evidence": tagging_of(img).evidence or "image",
        "modality": study.modality, "rows": img.shape[0], "columns": img.shape[1],
        "findings": findings, "devices": devices, "device_positions": positions, "masks": masks or [],
        "pixel": pixel_truth or {}, "geometry": geometry or {}, "has_report": study.has_report and chest,
        "duplicate_of": None, "pixels_of": None, "mess": None,
    }


_CHUNK = 16
_worker: dict = {}


def _write_radiographs(cohort: Cohort, staging: Path, workers: int, advance) -> list[dict]:
    """The n planned radiographs, in plan order, in this process or in ``workers`` processes.

    Each image has its own seed, so the bytes do not depend on who renders it; a worker records the PHI it writes
    in its own registry, merged here (set union, so the order of arrival does not matter).
    """
    rows: list[dict] = []
    if workers <= 1 or len(cohort.images) <= _CHUNK:
        for img in cohort.images:
            rows.append(_write_image(img, cohort.registry, staging))
            advance(1)
        return rows
    from concurrent.futures import ProcessPoolExecutor

    chunks = [(i, min(i + _CHUNK, len(cohort.images))) for i in range(0, len(cohort.images), _CHUNK)]
    with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(cohort, staging)) as pool:
        for chunk_rows, categories in pool.map(_write_chunk, chunks):
            rows.extend(chunk_rows)
            for category, values in categories.items():
                cohort.registry.add(category, *sorted(values))
            advance(len(chunk_rows))
    return rows


def _init_worker(cohort: Cohort, staging: Path) -> None:
    _worker.update(cohort=cohort, staging=staging)


def _write_chunk(bounds: tuple[int, int]) -> tuple[list[dict], dict[str, set[str]]]:
    reg = phi.PhiRegistry()
    images = _worker["cohort"].images[bounds[0]:bounds[1]]
    return [_write_image(img, reg, _worker["staging"]) for img in images], reg.categories


def _write_image(img: Image, reg: phi.PhiRegistry, staging: Path) -> dict:
    from radadapt.demo.instance import build_instance
    from radadapt.demo.transfer import encode

    inst = build_instance(img, reg)
    rel = relpath_for(img)
    _write(staging / "archive" / rel, encode(inst.dataset, inst.pixels.stored, img.ts))
    masks = write_masks(staging, img.sop_uid, inst.masks)
    return image_row(img, rel, img.ts, masks=masks, pixel_truth=inst.pixels.truth, geometry=inst.geometry)


def write_masks(staging: Path, sop_uid: str, masks: dict) -> list[str]:
    """Binary PNG masks (0/255) at the DICOM's geometry; returns their names under masks/."""
    import io

    import numpy as np
    from PIL import Image as PILImage

    names = []
    for device in sorted(masks):
        buf = io.BytesIO()
        PILImage.fromarray(np.where(masks[device], 255, 0).astype(np.uint8), mode="L").save(buf, format="PNG")
        name = mask_name(sop_uid, device)
        _write(staging / "masks" / name, buf.getvalue())
        names.append(name)
    return names


def _write(path: Path, data: bytes) -> None:
    if path.exists():
        raise RuntimeError("two generated files share a path")  # a planning bug, never user input
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _check_arguments(n: int, seed: int, size: int) -> None:
    if n < MIN_N:
        raise UsageError("demo.n_too_small", f"--n must be at least {MIN_N} (got {n})",
                         hint=f"every special case needs an image; use --n {MIN_N} or more")
    if seed < 0:
        raise UsageError("demo.bad_seed", f"--seed must be >= 0 (got {seed})")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise UsageError("demo.bad_size", f"--size must be between {MIN_SIZE} and {MAX_SIZE} pixels (got {size})")


def _existing(out: Path, params: dict, force: bool) -> dict | None:
    """Reuse a complete archive with the same parameters; refuse to overwrite anything else."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UsageError("demo.out_not_dir", f"{out} exists and is not a directory")
    meta = out / "demo_archive.json"
    if meta.is_file():
        try:
            info = json.loads(meta.read_text(encoding="utf-8"))
        except ValueError:
            info = {}
        if not force and all(info.get(k) == v for k, v in params.items()):
            return _summary(out, info, reused=True, seconds=0.0)
        if force:
            for name in OUTPUTS:  # only what the generator itself writes
                target = out / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
            return None
        raise UsageError("demo.out_exists", f"{out} holds a demo archive made with other parameters",
                         hint="choose another OUT, or pass --force to replace it")
    if any(out.iterdir()):
        raise UsageError("demo.out_not_empty", f"{out} is not empty and is not a demo archive",
                         hint="choose a new or empty directory")
    return None


def _clear_staging(staging: Path) -> None:
    if staging.exists():
        if not (staging / _STAGING_MARKER).exists() and any(staging.iterdir()):
            raise UsageError("demo.staging_in_use", f"{staging} exists and was not made by radadapt",
                             hint="remove or rename it, then rerun")
        shutil.rmtree(staging)


def _move_into_place(staging: Path, out: Path) -> None:
    if out.exists():  # an empty directory (checked above) or one cleared by --force
        for child in sorted(staging.iterdir()):
            os.replace(child, out / child.name)
        staging.rmdir()
    else:
        os.replace(staging, out)


def _info(params: dict, rows: list[dict], report_summary: dict) -> dict:
    by_state = Counter(r["expected_state"] for r in rows)
    by_reason = Counter(f"{r['expected_state']}/{r['expected_reason']}" for r in rows)
    by_ts = Counter(r["transfer_syntax_name"] or "none" for r in rows)
    chest_ok = [r for r in rows if r["expected_state"] == "ok"]
    prevalence = {f: round(sum(r["findings"][f] for r in chest_ok) / max(len(chest_ok), 1), 3) for f in FINDING_NAMES}
    return {
        "format": "radadapt-demo-archive", "radadapt_version": __version__, **params,
        "files": len(rows), "radiographs": params["n"], "mess_files": len(rows) - params["n"],
        "by_state": dict(sorted(by_state.items())), "by_reason": dict(sorted(by_reason.items())),
        "by_transfer_syntax": dict(sorted(by_ts.items())), "masks": sum(len(r["masks"]) for r in rows),
        "finding_prevalence_ok_images": prevalence, **report_summary,
    }


def _summary(out: Path, info: dict, *, reused: bool, seconds: float) -> dict:
    return {"out": str(out), "archive": str(out / "archive"), "reused": reused, "seconds": round(seconds, 2), **info}
