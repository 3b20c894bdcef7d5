"""The final merge: committed chunks -> deduplicated, paired, split, scrubbed store files, in bounded memory.

Every step is a streaming pass over the chunks' result files, an external sort (``extsort.sort_rows``) or a merge
join of sorted streams; nothing holds all records. In order:

1. dedupe: candidates sorted by (image key, walk position): all but the first of a SOP Instance UID are
   ``same_sop_instance``; the survivors sorted by (pixel hash, position): all but the first are ``same_pixels``;
2. studies: every parsed file's (study, patient) pairs; an accession on two patients is a conflict;
3. reports: CSV rows keyed like the images (``deid.study_key``), grouped by study (addenda joined in file order),
   joined with the kept images' studies and the study->patient map; a report pairs when its study has kept images
   and no conflict (a report naming another patient in the CSV's patient column is a conflict too);
4. scrub: each report with the identifier fingerprints of every patient its accession appears with;
5. manifest: kept images get their split (patient-level, ``SiteKey.unit_interval("split", patient_key)``) and
   report; unpaired images are kept or become ``filtered/no_report``; rows sorted by (patient, study, image);
6. files.jsonl (sorted by file key), the private audit (walk order), identifiers, masks index, accounting.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from radadapt.ingest import deid, writer
from radadapt.ingest.audit import read_jsonl, write_identifiers, write_private_jsonl
from radadapt.ingest.extsort import merge_join, sort_rows
from radadapt.ingest.reports import ReportColumns, iter_reports


@dataclass
class MergeJob:
    store: Path
    work: Path
    private: Path
    archive: Path
    key: Any  # SiteKey
    cfg: Any  # IngestSection
    chunks: list[str]
    reports: Path
    columns: ReportColumns
    store_id: str
    run_rows: int = 200_000


def split_of(key: Any, patient: str, cfg: Any) -> str:
    u = key.unit_interval("split", patient)
    if u < cfg.split.train:
        return "train"
    return "val" if u < cfg.split.train + cfg.split.val else "test"


class _Merge:
    def __init__(self, job: MergeJob):
        self.job = job
        self.tmp = job.work / "tmp"
        self.tmp.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.pairing: dict[str, int] = dict.fromkeys(
            ("reports", "reports_invalid", "report_studies", "paired_studies", "paired_images", "unpaired_images",
             "unpaired_reports", "kept_unpaired_reports", "conflict_studies", "conflict_images", "report_redactions"), 0)

    def sort(self, rows: Any, key: Any) -> Iterator[Any]:
        return sort_rows(rows, key=key, tmp_dir=self.tmp, run_rows=self.job.run_rows)

    def spill(self, name: str, rows: Any) -> Path:
        path = self.tmp / name
        write_private_jsonl(path, rows)
        return path

    def rows(self) -> Iterator[tuple[list[int], dict]]:
        """Every file's result row with its walk position [chunk index, row index]."""
        for ci, chunk in enumerate(self.job.chunks):
            _header, rows = writer.read_chunk_results(self.job.store, chunk)
            for i, row in enumerate(rows):
                yield [ci, i], row

    # -- 1. dedupe ------------------------------------------------------------------------------------------------
    def losers(self) -> Path:
        cands = ([r["image_key"], pos, r["pixel_hash"]] for pos, r in self.rows() if r["state"] == "ok")

        def by_sop() -> Iterator[list]:
            prev = None
            for image_key, pos, ph in self.sort(cands, key=lambda x: (x[0], x[1])):
                yield ["L", pos, "same_sop_instance"] if image_key == prev else ["W", pos, ph]
                prev = image_key

        sop = self.spill("sop.jsonl", by_sop())

        def by_pixels() -> Iterator[list]:
            winners = ([ph, pos] for tag, pos, ph in read_jsonl(sop) if tag == "W")
            prev = None
            for ph, pos in self.sort(winners, key=lambda x: (x[0], x[1])):
                if ph == prev:
                    yield [pos, "same_pixels"]
                prev = ph
            yield from ([pos, reason] for tag, pos, reason in read_jsonl(sop) if tag == "L")

        return self.spill("losers.jsonl", self.sort(by_pixels(), key=lambda x: x[0]))

    def kept(self, losers: Path) -> Iterator[tuple[list[int], dict]]:
        lost = iter(read_jsonl(losers))
        nxt = next(lost, None)
        for pos, row in self.rows():
            while nxt is not None and nxt[0] < pos:
                nxt = next(lost, None)
            if row["state"] == "ok" and not (nxt is not None and nxt[0] == pos):
                yield pos, row

    # -- 2-4. studies, reports, scrubbing ------------------------------------------------------------------------
    def studies(self, losers: Path) -> Path:
        """Per study with a report or kept images: [study, kept?, patients, paired?, conflict?, report text]."""
        job = self.job
        kept = self.sort(([r["study_key"]] for _p, r in self.kept(losers)), key=lambda x: x[0])
        parsed = self.sort(([r["study_key"], r["patient_key"], r.get("pid_fp") or ""]
                            for _p, r in self.rows() if r.get("study_key")), key=lambda x: x[0])

        def report_rows() -> Iterator[list]:
            for rep in iter_reports(job.reports, job.columns):
                self.pairing["reports"] += 1
                if not rep.accession or not rep.text:
                    self.pairing["reports_invalid"] += 1
                    continue
                yield [deid.study_key(job.key, rep.accession), rep.row, rep.text, rep.accession, rep.patient_id]

        reports = self.sort(report_rows(), key=lambda x: (x[0], x[1]))
        with_parsed = merge_join(kept, parsed, lambda x: x[0], lambda x: x[0])

        def joined() -> Iterator[list]:
            left = ([study, bool(k), p] for study, k, p in with_parsed)
            for study, lrows, rrows in merge_join(left, reports, lambda x: x[0], lambda x: x[0]):
                has_kept = bool(lrows) and lrows[0][1]
                parsed_rows = lrows[0][2] if lrows else []
                patients = sorted({p[1] for p in parsed_rows})
                pid_fps = {p[2] for p in parsed_rows if p[2]}
                csv_pids = sorted({r[4] for r in rrows if r[4]})
                conflict = len(patients) > 1 or (
                    bool(pid_fps) and any(deid.plain_patient_fp(job.key, p) not in pid_fps for p in csv_pids)
                ) or len(csv_pids) > 1
                text = "\n\n".join(r[2] for r in rrows) if rrows else None
                extra = sorted({r[3] for r in rrows} | set(csv_pids))
                yield [study, has_kept, patients, bool(rrows) and has_kept and not conflict, conflict, text, extra]

        return self.spill("studies.jsonl", joined())

    def scrubbed(self, studies: Path) -> Path:
        """[study, has_kept, patients, paired, conflict, scrubbed text] in study order."""
        pairs = self.sort(([p, s[0]] for s in read_jsonl(studies) if s[5] is not None for p in s[2]),
                          key=lambda x: x[0])
        ids = self.sort((r for chunk in self.job.chunks for r in read_jsonl(self._ids(chunk))), key=lambda x: x[0])
        per_study = (
            [study, fp, kind, n]
            for _patient, prow, irow in merge_join(pairs, ids, lambda x: x[0], lambda x: x[0])
            for _p, study in prow
            for _pp, fp, kind, n in irow
        )
        fps = self.sort(per_study, key=lambda x: x[0])

        def out() -> Iterator[list]:
            for study, srows, frows in merge_join(read_jsonl(studies), fps, lambda x: x[0], lambda x: x[0]):
                if not srows:
                    continue
                s = srows[0]
                text = s[5]
                if text is not None:
                    scrubber = deid.Scrubber(self.job.key, ((f[1], f[2], f[3]) for f in frows))
                    scrubber.add_values(s[6])
                    text, n = scrubber.scrub(text)
                    self.pairing["report_redactions"] += n
                yield [study, s[1], s[2], s[3], s[4], text]

        return self.spill("scrubbed.jsonl", out())

    def _ids(self, chunk: str) -> Path:
        return self.job.work / "chunks" / f"{chunk}.ids.jsonl"

    # -- 5. manifest ----------------------------------------------------------------------------------------------
    def manifest(self, losers: Path, scrubbed: Path) -> tuple[Path, dict[str, int], int]:
        from radadapt.manifest import ImageRecord

        job = self.job
        kept = self.sort(([r["study_key"], pos, r] for pos, r in self.kept(losers)), key=lambda x: (x[0], x[1]))
        splits: dict[str, int] = {}
        # Side outputs go to files as they come (a large archive can drop millions of unpaired images).
        changes_raw = open(self.tmp / "changes.raw.jsonl", "w", encoding="utf-8")
        masks_raw = open(self.tmp / "masks.raw.jsonl", "w", encoding="utf-8")

        def records() -> Iterator[dict]:
            for study, krows, srows in merge_join(kept, read_jsonl(scrubbed), lambda x: x[0], lambda x: x[0]):
                s = srows[0] if srows else None
                if s is not None and s[5] is not None and not s[1]:
                    self.pairing["unpaired_reports"] += 1
                if s is not None and s[4]:
                    self.pairing["conflict_studies"] += 1
                    self.pairing["conflict_images"] += len(krows)
                if not krows:
                    continue
                paired = s is not None and s[3]
                if paired:
                    self.pairing["paired_studies"] += 1
                for _study, pos, row in krows:
                    if not paired:
                        self.pairing["unpaired_images"] += 1
                        if not job.cfg.keep_unpaired_images:
                            changes_raw.write(json.dumps([pos, "filtered", "no_report"]) + "\n")
                            continue
                    else:
                        self.pairing["paired_images"] += 1
                    rec = dict(row["record"])
                    rec["split"] = split_of(job.key, rec["patient_key"], job.cfg)
                    rec["report_text"] = s[5] if paired else None
                    splits[rec["split"]] = splits.get(rec["split"], 0) + 1
                    for m in row.get("masks") or []:
                        if m.get("path"):
                            masks_raw.write(json.dumps({"image_key": rec["image_key"], "device": m["device"],
                                                        "path": m["path"]}) + "\n")
                    yield ImageRecord.model_validate(rec).model_dump(mode="json")

        with changes_raw, masks_raw:
            ordered = self.sort(records(), key=lambda r: (r["patient_key"], r["study_key"], r["image_key"]))
            n = writer.write_rows(job.store / "manifest.jsonl", ordered)
        self.pairing["report_studies"] = sum(1 for s in read_jsonl(scrubbed) if s[5] is not None)
        self._masks_index(self.tmp / "masks.raw.jsonl")
        changes = self.spill("changes.jsonl", self.sort(read_jsonl(self.tmp / "changes.raw.jsonl"), key=lambda x: x[0]))
        for raw in ("changes.raw.jsonl", "masks.raw.jsonl"):
            writer.remove_quietly(self.tmp / raw)
        return changes, splits, n

    def _masks_index(self, raw: Path) -> None:
        """masks/index.jsonl sorted by path; PNGs it does not list (dropped images, earlier runs) are removed."""
        folder = self.job.store / "masks"
        if not folder.is_dir() and next(iter(read_jsonl(raw)), None) is None:
            return
        writer.write_rows(folder / "index.jsonl", self.sort(read_jsonl(raw), key=lambda m: m["path"]))
        wanted = (m["path"] for m in read_jsonl(folder / "index.jsonl"))
        nxt = next(wanted, None)
        for name in sorted(n for n in os.listdir(folder) if n.endswith(".png")):
            while nxt is not None and nxt < name:
                nxt = next(wanted, None)
            if name != nxt:
                writer.remove_quietly(folder / name)

    # -- 6. files, audit, identifiers, unpaired reports -----------------------------------------------------------
    def files_and_audit(self, losers: Path, changes: Path) -> dict:
        """One pass in walk order: final states, accounting, the audit (streamed); files.jsonl by file key."""
        from radadapt import atomic
        from radadapt.ingest.audit import AUDIT_FORMAT, AUDIT_VERSION, audit_path

        job = self.job
        fixes = self.sort((r for path in (losers, changes) for r in read_jsonl(path)), key=lambda x: x[0])
        accounting: dict[str, Any] = {"total_files": 0, "ok": 0, "filtered": {}, "duplicate": 0, "quarantined": {}}
        by_reason: dict[str, int] = {}
        chest: dict[str, int] = {}

        def final(audit: Any) -> Iterator[dict]:
            fix_iter = iter(fixes)
            fix = next(fix_iter, None)
            for ci, chunk in enumerate(job.chunks):
                audits = read_jsonl(job.work / "chunks" / f"{chunk}.audit.jsonl")
                _h, rows = writer.read_chunk_results(job.store, chunk)
                for i, (row, aud) in enumerate(zip(rows, audits)):
                    state, reason = row["state"], row["reason"]
                    if fix is not None and fix[0] == [ci, i]:
                        if fix[1] in ("same_sop_instance", "same_pixels"):
                            state, reason = "duplicate", fix[1]
                        else:
                            state, reason = fix[1], fix[2]
                        fix = next(fix_iter, None)
                    _count(accounting, state, reason)
                    by_reason[reason] = by_reason.get(reason, 0) + 1
                    if row.get("chest"):
                        label = _chest_label(row["chest"])
                        chest[label] = chest.get(label, 0) + 1
                    aud.update(state=state, reason=reason)
                    audit.write(json.dumps(aud, separators=(",", ":"), sort_keys=True) + "\n")
                    yield {"file_key": row["file_key"], "state": state, "reason": reason,
                           "image_key": row.get("image_key") if state in ("ok", "duplicate") else None,
                           "transfer_syntax": row.get("ts")}

        header = {"format": AUDIT_FORMAT, "version": AUDIT_VERSION, "store_id": job.store_id,
                  "archive": str(job.archive), "key_fingerprint": job.key.fingerprint()}
        with atomic.atomic_open(audit_path(job.private, job.store_id), "w", perms=0o600) as audit:
            audit.write(json.dumps(header, sort_keys=True) + "\n")
            writer.write_rows(job.store / "files.jsonl", self.sort(final(audit), key=lambda r: r["file_key"]))
        return {"accounting": accounting, "reasons": by_reason, "chest_decisions": chest}

    def identifiers(self) -> int:
        rows = (r for chunk in self.job.chunks for r in read_jsonl(self._ids(chunk)))
        return write_identifiers(self.job.private, self.job.store_id, rows, self.tmp, self.job.run_rows)[1]

    def unpaired_reports(self, scrubbed: Path) -> int:
        job = self.job
        path = job.store / "reports_unpaired.jsonl"
        if not job.cfg.keep_unpaired_reports:
            writer.remove_quietly(path)
            return 0

        def rows() -> Iterator[dict]:
            for study, has_kept, patients, _paired, _conflict, text in read_jsonl(scrubbed):
                if text is None or has_kept:
                    continue
                patient = patients[0] if len(patients) == 1 else None
                yield {"study_key": study, "patient_key": patient,
                       "split": split_of(job.key, patient, job.cfg) if patient else None, "report_text": text}

        n = writer.write_rows(path, rows())
        self.pairing["kept_unpaired_reports"] = n
        return n


def _count(acc: dict, state: str, reason: str) -> None:
    acc["total_files"] += 1
    if state == "ok":
        acc["ok"] += 1
    elif state == "duplicate":
        acc["duplicate"] += 1
    else:
        acc[state][reason] = acc[state].get(reason, 0) + 1


def _chest_label(decision: str) -> str:
    """'tags:+body_part;image:+lungs' -> 'tags+ image+' (the counts table groups by verdicts, not reasons)."""
    parts = []
    for part in decision.split(";"):
        name, _, rest = part.partition(":")
        parts.append(name + (rest[:1] if rest[:1] in "+-?" else ":" + rest))
    return " ".join(parts)


def final_merge(job: MergeJob) -> dict:
    """Run all merge steps; returns accounting, per-reason counts, pairing, splits and counts for the summary."""
    m = _Merge(job)
    losers = m.losers()
    studies = m.studies(losers)
    scrubbed = m.scrubbed(studies)
    changes, splits, n_images = m.manifest(losers, scrubbed)
    m.unpaired_reports(scrubbed)
    result = m.files_and_audit(losers, changes)
    n_ids = m.identifiers()
    for p in (losers, studies, scrubbed, changes, m.tmp / "sop.jsonl"):
        writer.remove_quietly(p)
    result.update(pairing=m.pairing, splits=splits, n_images=n_images, identifiers=n_ids)
    return result
