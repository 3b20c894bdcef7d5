"""`radadapt ingest`: archive + report export -> store, resumable, parallel, in bounded memory.

1. Check inputs before any work (archive, report CSV, key, private directory, masks).
2. Walk the archive into content-defined chunks (``walk``); the listing (paths: PHI) goes to the private work
   directory, the store id is a keyed hash of the settings, the listing and the report export.
3. Process every chunk not yet committed, in a process pool (``chunk.process_chunk``); each chunk commits its own
   shard and results atomically, so a kill -9 loses at most the chunks in flight and a rerun redoes only those.
4. Merge (``merge.final_merge``), then write ``store.json`` with ``complete: true`` last.

A rerun over an unchanged archive with the same settings and report export finds every chunk committed and the
store complete, and does no work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from radadapt import atomic
from radadapt.errors import DataError, UsageError
from radadapt.ingest import writer
from radadapt.ingest.reports import ReportColumns, check_reports

PIPELINE_VERSION = 1  # bump when per-file processing changes: every chunk is then processed again
LISTING = "listing.jsonl"


@dataclass
class IngestRequest:
    archive: Path
    reports: Path
    store: Path
    key_file: Path
    cfg: Any  # IngestSection (CLI overrides applied)
    private_dir: Path | None = None
    workers: int | None = None
    masks: Path | None = None
    run_rows: int | None = None  # rows per in-memory run of the merge's sorts (default: cfg.merge_run_rows)
    on_event: Callable[[str, Any], None] | None = field(default=None, repr=False)  # progress hooks (CLI)


def _settings_hash(req: IngestRequest, key: Any, masks: dict[str, list[str]]) -> str:
    c = req.cfg
    per_file = {
        "version": PIPELINE_VERSION, "resolution": c.resolution, "modalities": sorted(m.upper() for m in c.modalities),
        "keep_for_processing": c.keep_for_processing, "views": sorted(c.views), "chest_rule": c.chest_rule,
        "dates": c.dates, "keep_manufacturer": c.keep_manufacturer, "key": key.fingerprint(),
        "masks": hashlib.sha256(json.dumps(sorted(masks.items())).encode()).hexdigest() if req.masks else None,
    }
    return hashlib.sha256(json.dumps(per_file, sort_keys=True).encode()).hexdigest()[:32]


def _merge_hash(req: IngestRequest, reports_sig: str) -> str:
    c = req.cfg
    merge = {"split": [c.split.train, c.split.val, c.split.test], "unpaired": [c.keep_unpaired_images,
             c.keep_unpaired_reports], "columns": [c.accession_column, c.report_column, c.patient_column,
             c.date_column], "reports": reports_sig}
    return hashlib.sha256(json.dumps(merge, sort_keys=True).encode()).hexdigest()[:32]


def _check_inputs(req: IngestRequest) -> None:
    if not req.archive.exists():
        raise UsageError("ingest.archive_missing", f"archive folder not found: {req.archive}")
    if not req.archive.is_dir():
        raise UsageError("ingest.archive_missing", f"the archive must be a folder: {req.archive}")
    if not os.access(req.archive, os.R_OK | os.X_OK):
        raise DataError("ingest.archive_unreadable", f"cannot read the archive folder {req.archive} (permission denied)",
                        hint="run as a user who can read the export, or fix its permissions")
    if req.masks is not None and not req.masks.is_dir():
        raise UsageError("ingest.masks_missing", f"masks folder not found: {req.masks}")
    if req.store.exists() and not req.store.is_dir():
        raise UsageError("ingest.out_not_store", f"--out must be a folder: {req.store}")
    if req.store.is_dir() and any(req.store.iterdir()):
        if not (req.store / "store.json").is_file() and not (req.store / writer.WORK_DIR).is_dir():
            raise UsageError("ingest.out_not_store", f"{req.store} is not empty and is not a radadapt store",
                             hint="choose a new or empty folder for --out")


def _mask_index(folder: Path | None) -> dict[str, list[str]]:
    """SOPInstanceUID -> devices, from ``<SOPInstanceUID>__<device>.png`` names (listed once)."""
    index: dict[str, list[str]] = {}
    if folder is None:
        return index
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".png") or "__" not in name:
            continue
        uid, _, device = name[:-4].partition("__")
        if uid and device and "/" not in device:
            index.setdefault(uid, []).append(device)
    return index


def _listing(req: IngestRequest, key: Any, work: Path, settings: str) -> tuple[list[str], list[int], str]:
    """Walk, chunk and record the listing privately; returns (chunk ids, their sizes, listing hash)."""
    from radadapt.ingest.walk import chunk_id, chunked, walk

    private = work.parent.parent
    exclude = (req.store, private)
    ids: list[str] = []
    sizes: list[int] = []
    digest = hashlib.sha256()

    def lines() -> Iterator[list]:
        try:
            entries = walk(req.archive, exclude=exclude)
            for chunk in chunked(entries, key, req.cfg.chunk_files):
                cid = chunk_id(key, settings, chunk)
                ids.append(cid)
                sizes.append(len(chunk))
                digest.update(cid.encode())
                yield [cid, [e.as_list() for e in chunk]]
        except OSError:
            raise DataError("ingest.archive_unreadable", f"cannot list the archive folder {req.archive}") from None

    from radadapt.ingest.audit import write_private_jsonl

    write_private_jsonl(work / LISTING, lines())
    return ids, sizes, digest.hexdigest()


def _iter_listing(work: Path) -> Iterator[tuple[str, list]]:
    from radadapt.ingest.audit import read_jsonl

    for cid, entries in read_jsonl(work / LISTING):
        yield cid, entries


def run_ingest(req: IngestRequest) -> dict:
    """The whole ingest; returns the result the CLI prints (accounting first, then pairing and store)."""
    from radadapt.ingest.audit import ensure_private_dir
    from radadapt.sitekey import load_key

    _check_inputs(req)
    cfg = req.cfg
    columns = ReportColumns(cfg.accession_column, cfg.report_column, cfg.patient_column, cfg.date_column)
    reports = check_reports(req.reports, columns)
    key = load_key(req.key_file)
    private = ensure_private_dir(req.private_dir or req.key_file.parent / "private")
    masks = _mask_index(req.masks)
    req.store.mkdir(parents=True, exist_ok=True)
    with _store_lock(req.store):
        _remove_torn_writes(req.store)
        return _ingest_locked(req, cfg, columns, reports, key, private, masks)


def _ingest_locked(req: IngestRequest, cfg: Any, columns: ReportColumns, reports: Any, key: Any, private: Path,
                   masks: dict[str, list[str]]) -> dict:
    from radadapt.ingest.chunk import Context, private_parts_present
    from radadapt.manifest import StoreInfo

    previous = _previous_info(req.store)
    if previous is not None and previous.get("key_fingerprint") != key.fingerprint():
        raise DataError("ingest.key_mismatch", f"the store at {req.store} was made with a different site key",
                        hint="use the key that made it (pseudonyms must stay linkable), or a new --out")
    work_token = key.digest("work", str(req.store.resolve())).hex()[:16]
    work = private / "ingest-work" / work_token
    (work / "chunks").mkdir(parents=True, exist_ok=True, mode=0o700)
    for tmp in (work / "chunks").glob(".*.tmp"):
        writer.remove_quietly(tmp)

    settings = _settings_hash(req, key, masks)
    emit = req.on_event or (lambda *_a: None)
    emit("phase", "listing the archive")
    chunk_ids, sizes, listing_hash = _listing(req, key, work, settings)
    total = sum(sizes)
    if total == 0:
        raise DataError("ingest.archive_empty", f"the archive folder {req.archive} holds no files",
                        hint="point ARCHIVE at the folder of the PACS export")
    store_id = key.digest("store", settings, listing_hash, _merge_hash(req, reports.signature)).hex()[:16]
    done = {c for c in chunk_ids if writer.chunk_committed(req.store, c) and private_parts_present(work, c)}
    if previous is not None and previous.get("complete") and previous.get("store_id") == store_id \
            and len(done) == len(set(chunk_ids)):
        return _result_from(previous, req.store, nothing_to_do=True, chunks=(len(chunk_ids), 0))
    if previous is not None and previous.get("ingest", {}).get("settings") not in (None, settings):
        emit("info", "settings changed since the last run: every file is processed again")

    info = StoreInfo(store_id=store_id, radadapt_version=_version(), key_fingerprint=key.fingerprint(),
                     resolution=cfg.resolution, n_images=0, complete=False)
    atomic.write_json(req.store / "store.json", info.model_dump(mode="json"))
    ctx = Context(archive=req.archive, store=req.store, work=work, key=key, cfg=cfg, masks_dir=req.masks,
                  masks=masks)
    # The listing streams from the private work folder: chunk entries are never all in memory.
    pending = ((cid, entries) for cid, entries in _iter_listing(work) if cid not in done)
    n_pending = sum(1 for c in chunk_ids if c not in done)
    skipped_files = sum(n for c, n in zip(chunk_ids, sizes) if c in done)
    from radadapt.ingest.pool import run_chunks

    stats = run_chunks(req, ctx, pending, n_pending, total, skipped_files, emit)

    emit("phase", "merging")
    from radadapt.ingest.merge import MergeJob, final_merge

    job = MergeJob(store=req.store, work=work, private=private, archive=req.archive.resolve(), key=key, cfg=cfg,
                   chunks=chunk_ids, reports=req.reports, columns=columns, store_id=store_id,
                   run_rows=req.run_rows or cfg.merge_run_rows)
    t_merge = time.perf_counter()
    merged = final_merge(job)
    stats["merge_seconds"] = round(time.perf_counter() - t_merge, 3)
    _remove_stale(req.store, work, private, set(chunk_ids), store_id, previous)
    reasons = merged["reasons"]
    extra = {
        "ok_reasons": {r: reasons[r] for r in ("ok", "ok_voi_retry") if r in reasons},
        "duplicate_reasons": {r: reasons[r] for r in ("same_sop_instance", "same_pixels") if r in reasons},
        "chest_decisions": merged["chest_decisions"], "identifiers": merged["identifiers"],
        "ingest": {"settings": settings, "pipeline_version": PIPELINE_VERSION, "chunks": len(chunk_ids)},
        "pairing": merged["pairing"],
    }
    info = StoreInfo(store_id=store_id, radadapt_version=_version(), key_fingerprint=key.fingerprint(),
                     resolution=cfg.resolution, n_images=merged["n_images"], splits=merged["splits"],
                     accounting=merged["accounting"], complete=True, **extra)
    atomic.write_json(req.store / "store.json", info.model_dump(mode="json"))
    result = _result_from(info.model_dump(mode="json"), req.store, nothing_to_do=False,
                          chunks=(len(chunk_ids), n_pending))
    result["store"].update(decode=stats["decode"], details=stats["details"], merge_seconds=stats["merge_seconds"],
                           chunk_seconds=stats.get("wall_seconds"),
                           private_audit=str(private / f"{store_id}.audit.jsonl"))
    return result


@contextlib.contextmanager
def _store_lock(store: Path) -> Iterator[None]:
    """One ingest per store at a time (a second one would race on the same chunk files)."""
    import fcntl

    (store / writer.WORK_DIR).mkdir(exist_ok=True)
    fd = os.open(store / writer.WORK_DIR / "lock", os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError("ingest.store_busy", f"another ingest is writing to {store}",
                             hint="wait for it to finish (or stop it), then rerun") from None
        yield
    finally:
        os.close(fd)


def _remove_torn_writes(store: Path) -> None:
    """Temporary files of a run that was killed mid-write (atomic writes leave ``.<name>.*.tmp``)."""
    for folder in (store, store / "images", store / "masks", store / writer.WORK_DIR / "chunks"):
        if folder.is_dir():
            for tmp in folder.glob(".*.tmp"):
                writer.remove_quietly(tmp)


def _version() -> str:
    from radadapt import __version__

    return __version__


def _previous_info(store: Path) -> dict | None:
    path = store / "store.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None  # a damaged store.json is rewritten; committed chunks still count


def _result_from(info: dict, store: Path, *, nothing_to_do: bool, chunks: tuple[int, int]) -> dict:
    acc = info.get("accounting") or {}
    return {
        "total_files": acc.get("total_files", 0), "ok": acc.get("ok", 0), "filtered": acc.get("filtered", {}),
        "duplicate": acc.get("duplicate", 0), "quarantined": acc.get("quarantined", {}),
        "pairing": info.get("pairing", {}),
        "store": {
            "path": str(store), "store_id": info.get("store_id"), "n_images": info.get("n_images"),
            "splits": info.get("splits", {}), "resolution": info.get("resolution"),
            "ok_reasons": info.get("ok_reasons", {}), "duplicate_reasons": info.get("duplicate_reasons", {}),
            "chest_decisions": info.get("chest_decisions", {}), "nothing_to_do": nothing_to_do,
            "chunks": {"total": chunks[0], "processed": chunks[1], "skipped": chunks[0] - chunks[1]},
            "decode": {}, "details": {},
        },
    }


def _remove_stale(store: Path, work: Path, private: Path, keep: set[str], store_id: str, previous: dict | None) -> None:
    """Chunks of an older archive state, their shards and private parts, and the previous audit files."""
    for path in (store / writer.WORK_DIR / "chunks").glob("*.jsonl"):
        if path.stem not in keep:
            writer.remove_quietly(store / "images" / f"{writer.shard_name(path.stem)}.u8")
            writer.remove_quietly(path)
            for suffix in (".audit.jsonl", ".ids.jsonl"):
                writer.remove_quietly(work / "chunks" / f"{path.stem}{suffix}")
    old = (previous or {}).get("store_id")
    if old and old != store_id:
        for suffix in (".audit.jsonl", ".identifiers.txt"):
            writer.remove_quietly(private / f"{old}{suffix}")
