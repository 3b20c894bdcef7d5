"""One chunk of the archive, processed in a worker: every file to a state, kept images to a shard, all committed.

``process_file`` walks the reason precedence of docs/architecture.md for one entry: the file itself
(``dicomio``), what the object is and its body part and view by tags (``select.select_header``), the codec check
and one decoded frame, the pixel pipeline (``pixels.render``), the image check (``select.chest_decision``), then
builds the allow-listed record (``deid``). Any unexpected exception is caught per file and becomes a reason code
with the exception's type name in the private audit; a single bad file never stops an ingest.

``process_chunk`` commits in this order: shard, masks, private audit part, identifier part, and last the chunk's
results file (the commit marker, see ``writer``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from radadapt.ingest import deid, writer
from radadapt.ingest.audit import write_private_jsonl
from radadapt.ingest.walk import Entry

MAX_PIXELS = 100_000_000  # larger than any radiograph detector; refuse before allocating


@dataclass
class Context:
    """Everything a worker needs, set once per process."""

    archive: Path
    store: Path
    work: Path  # private work directory (chunk audit and identifier parts)
    key: Any  # SiteKey
    cfg: Any  # IngestSection
    masks_dir: Path | None = None
    masks: dict[str, list[str]] = field(default_factory=dict)  # SOPInstanceUID -> devices
    queue: Any = None  # progress: files done, posted in small batches


@dataclass
class Outcome:
    row: dict
    audit: dict
    ids: set = field(default_factory=set)
    image: Any = None
    decode_s: float = 0.0
    chest: str | None = None

    def done(self, state: str, reason: str, detail: str = "") -> "Outcome":
        self.row.update(state=state, reason=reason)
        self.audit.update(state=state, reason=reason, detail=detail)
        return self


def process_file(entry: Entry, ctx: Context) -> Outcome:
    key = ctx.key
    file_key = key.pseudonym("file", entry.relpath)
    out = Outcome(row={"file_key": file_key}, audit={"file_key": file_key, "path": entry.relpath})
    if entry.kind == "symlink":
        return out.done("filtered", "symlink")
    if entry.kind == "special":
        return out.done("filtered", "special_file")
    if entry.kind == "unreadable":
        return out.done("quarantined", "read_error", "cannot list or stat")
    stage = "unreadable_header"
    try:
        return _process_dicom(entry, ctx, out)
    except Exception as exc:  # noqa: BLE001 - see the module docstring
        stage = "decode_error" if out.row.get("image_key") else stage
        return out.done("quarantined", stage, f"unexpected:{type(exc).__name__}")


def _process_dicom(entry: Entry, ctx: Context, out: Outcome) -> Outcome:
    from radadapt.ingest.dicomio import ReadFailure, decode_first_frame, missing_decoder, read_dicom
    from radadapt.ingest.pixels import DegenerateImage, describe, render
    from radadapt.ingest.select import chest_decision, select_header

    key, cfg = ctx.key, ctx.cfg
    try:
        f = read_dicom(os.path.join(ctx.archive, entry.relpath), entry.size)
    except ReadFailure as exc:
        return out.done("quarantined", exc.reason, exc.detail)
    ds, ts = f.dataset, f.transfer_syntax
    patient = deid.patient_key(key, ds)
    accession = deid.text_value(ds.get("AccessionNumber"))
    pid = deid.text_value(ds.get("PatientID"))
    out.row.update(
        ts=ts,
        patient_key=patient,
        study_key=deid.study_key(key, accession, deid.text_value(ds.get("StudyInstanceUID"))),
        pid_fp=deid.plain_patient_fp(key, pid) if pid else None,
    )
    items = deid.identifier_items(ds)
    out.ids = {(patient, fp, kind, n) for fp, kind, n in deid.fingerprint_items(key, items)}

    sel = select_header(ds, cfg)
    if sel.state is not None:
        return out.done(sel.state, sel.reason)
    uid = deid.text_value(ds.SOPInstanceUID)
    out.row["image_key"] = key.pseudonym("image", uid)
    needed = missing_decoder(ds, ts)
    if needed:
        return out.done("quarantined", "no_decoder", needed)
    rows, cols = int(ds.Rows), int(ds.Columns)
    if rows * cols > MAX_PIXELS or rows < 1 or cols < 1:
        return out.done("quarantined", "decode_error", "implausible size")
    t0 = time.perf_counter()
    try:
        stored = decode_first_frame(ds, ts)
        if stored.shape != (rows, cols):
            return out.done("quarantined", "decode_error", "frame shape differs from Rows/Columns")
        rendered = render(stored, ds, cfg.resolution)
    except ReadFailure as exc:
        return out.done("quarantined", exc.reason, exc.detail)
    except DegenerateImage:
        return out.done("quarantined", "degenerate_image")
    finally:
        out.decode_s = time.perf_counter() - t0
    keep, decision = chest_decision(sel, rendered.image, cfg.chest_rule)
    out.chest = decision
    if not keep:
        return out.done("filtered", "not_chest")

    when = deid.study_date(ds)
    manufacturer = deid.text_value(ds.get("Manufacturer"))[:64] or None if cfg.keep_manufacturer else None
    if manufacturer and any(deid.normalize(manufacturer) == phrase for _k, phrase in items):
        manufacturer = None  # an export that put an institution or name here
    out.row["pixel_hash"] = rendered.pixel_hash
    out.row["record"] = {
        "image_key": out.row["image_key"],
        "study_key": out.row["study_key"],
        "patient_key": patient,
        "view": sel.view if sel.view in ("PA", "AP", "LATERAL") else "unknown",
        "sex": deid.sex(ds),
        "age": deid.age_years(ds, when),
        "study_date": deid.shifted(when, deid.date_offset_days(key, patient)) if cfg.dates == "shift" else None,
        "modality": deid.text_value(ds.get("Modality")).upper() or None,
        "manufacturer": manufacturer,
        "pixel_spacing_mm": _spacing(ds),
        "transfer_syntax": ts,
        **describe(ds),
        "pipeline": rendered.steps,
        "chest_decision": decision,
        "orig_height": rows,
        "orig_width": cols,
        "height": int(rendered.image.shape[0]),
        "width": int(rendered.image.shape[1]),
    }
    out.image = rendered.image
    out.row["masks"] = _masks(ctx, uid, out.row["image_key"], (rows, cols), rendered.image.shape)
    return out.done("ok", rendered.reason)


def _spacing(ds: Any) -> list[float] | None:
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            pair = [float(v) for v in value][:2] if value is not None and not isinstance(value, (str, bytes)) else []
        except (TypeError, ValueError):
            pair = []
        if len(pair) == 2 and all(math.isfinite(v) and v > 0 for v in pair):
            return pair
    return None


def _masks(ctx: Context, uid: str, image_key: str, orig: tuple[int, int], size: tuple[int, int]) -> list[dict]:
    """Device masks for this SOP Instance, resized to the stored image's geometry (area-weighted, then >= 0.5)."""
    devices = ctx.masks.get(uid) if ctx.masks_dir is not None else None
    if not devices:
        return []
    import numpy as np
    from PIL import Image

    done = []
    for device in devices:
        try:
            with Image.open(ctx.masks_dir / f"{uid}__{device}.png") as im:  # type: ignore[operator]
                arr = np.asarray(im.convert("L"), dtype=np.float32) / 255.0
        except Exception:  # noqa: BLE001 - an unreadable mask is skipped and counted, not fatal
            done.append({"device": device, "path": None, "problem": "unreadable"})
            continue
        if arr.shape != orig:
            done.append({"device": device, "path": None, "problem": "geometry"})
            continue
        small = np.asarray(Image.fromarray(arr, mode="F").resize((size[1], size[0]), Image.Resampling.BILINEAR))
        mask = np.where(small >= 0.5, 255, 0).astype(np.uint8)
        done.append({"device": device, "path": writer.write_mask(ctx.store, image_key, device, mask)})
    return done


def process_chunk(ctx: Context, chunk: str, entries: list[list]) -> dict:
    """Process and commit one chunk; returns a small summary for progress and the run's statistics."""
    # pydicom logs decoder failures with file details; whatever logging the host application set up, they stay here.
    logging.getLogger("pydicom").propagate = False
    shard = writer.ShardWriter(ctx.store, writer.shard_name(chunk))
    rows: list[dict] = []
    audits: list[dict] = []
    ids: set = set()
    decode: dict[str, list[float]] = {}
    pending = 0
    last_post = time.monotonic()
    try:
        for raw in entries:
            out = process_file(Entry.from_list(raw), ctx)
            if out.image is not None:
                rec = out.row["record"]
                rec.update(shard=shard.name, offset=shard.add(out.image))
            if out.decode_s and out.row.get("ts"):
                acc = decode.setdefault(out.row["ts"], [0, 0.0])
                acc[0] += 1
                acc[1] += out.decode_s
            if out.chest:
                out.row["chest"] = out.chest
            rows.append(out.row)
            audits.append(out.audit)
            ids |= out.ids
            pending += 1
            if ctx.queue is not None and (pending >= 16 or time.monotonic() - last_post > 0.5):
                ctx.queue.put(pending)
                pending, last_post = 0, time.monotonic()
        shard_written = shard.commit()
    except BaseException:
        shard.abort()
        raise
    if ctx.queue is not None and pending:
        ctx.queue.put(pending)
    write_private_jsonl(ctx.work / "chunks" / f"{chunk}.audit.jsonl", audits)
    write_private_jsonl(ctx.work / "chunks" / f"{chunk}.ids.jsonl", sorted(list(r) for r in ids))
    header = {"chunk": chunk, "files": len(rows), "shard": shard_written, "shard_bytes": shard.offset}
    writer.write_chunk_results(ctx.store, chunk, header, rows)
    return {"chunk": chunk, "files": len(rows), "decode": decode, "details": _details(audits)}


def _details(audits: list[dict]) -> dict[str, int]:
    """Counts of safe details worth a console line (missing decoder packages, unexpected exception types)."""
    out: dict[str, int] = {}
    for a in audits:
        d = a.get("detail") or ""
        if a.get("reason") == "no_decoder" or d.startswith("unexpected:"):
            label = f"{a['reason']}: {d}"
            out[label] = out.get(label, 0) + 1
    return out


def private_parts_present(work: Path, chunk: str) -> bool:
    return (work / "chunks" / f"{chunk}.audit.jsonl").is_file() and (work / "chunks" / f"{chunk}.ids.jsonl").is_file()
