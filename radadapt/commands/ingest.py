"""`radadapt ingest ARCHIVE --reports CSV --out STORE --site-key KEY`: a DICOM archive becomes a private store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from radadapt.commands import JsonOpt, WorkersOpt, examples, setup_output


def register(app: typer.Typer) -> None:
    @app.command(
        "ingest",
        epilog=examples(
            "radadapt ingest /pacs/export --reports ris_reports.csv --out /data/store --site-key /data/site/site.key",
            "radadapt ingest /pacs/export --reports r.csv --out /data/store --site-key site.key --workers 16 --json",
            "radadapt ingest ARCHIVE --reports r.csv --out STORE --site-key site.key --accession-column ACC "
            "--report-column TEXT",
        ),
    )
    def ingest_cmd(
        archive: Annotated[Path, typer.Argument(help="Folder of the PACS export (searched recursively; any file names).")],
        reports: Annotated[Path, typer.Option("--reports", help="Report export: UTF-8 CSV with accession and report columns.")],
        out: Annotated[Path, typer.Option("--out", help="Store folder to create or resume.")],
        site_key: Annotated[Path, typer.Option("--site-key", help="Site key file from `radadapt init` (mode 0600).")],
        workers: WorkersOpt = None,
        resolution: Annotated[Optional[int], typer.Option("--resolution", min=32, max=4096, help="Short side of stored images in pixels (default 518).")] = None,
        masks: Annotated[Optional[Path], typer.Option("--masks", help="Folder of device masks named SOPInstanceUID__device.png.")] = None,
        config: Annotated[Optional[Path], typer.Option("--config", help="Site config (default: $RADADAPT_CONFIG or ./radadapt.toml).")] = None,
        accession_column: Annotated[Optional[str], typer.Option("--accession-column", help="CSV column with the accession number.")] = None,
        report_column: Annotated[Optional[str], typer.Option("--report-column", help="CSV column with the report text.")] = None,
        patient_column: Annotated[Optional[str], typer.Option("--patient-column", help="Optional CSV column with the patient ID.")] = None,
        date_column: Annotated[Optional[str], typer.Option("--date-column", help="Optional CSV column with the study date.")] = None,
        private_dir: Annotated[Optional[Path], typer.Option("--private-dir", help="Private audit folder (default: the folder private/ beside the key file).")] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Turn a DICOM archive and its report export into a de-identified, training-ready store.

        Every file ends in one state (ok, filtered, duplicate, quarantined) with a reason; the accounting is printed
        and kept in STORE/store.json. Rerun the same command after an interruption: finished work is kept. Paths
        and raw error texts never reach the store or the console; the private audit maps files to reasons.
        """
        from radadapt.config import load_config
        from radadapt.ingest.pipeline import IngestRequest, run_ingest

        setup_output(json_output)
        cfg = load_config(config).ingest
        overrides = {"resolution": resolution, "accession_column": accession_column, "report_column": report_column,
                     "patient_column": patient_column, "date_column": date_column}
        cfg = cfg.model_copy(update={k: v for k, v in overrides.items() if v is not None})
        with _Progress() as progress:
            req = IngestRequest(archive=archive, reports=reports, store=out, key_file=site_key, cfg=cfg,
                                private_dir=private_dir, workers=workers or cfg.workers, masks=masks,
                                on_event=progress.event)
            result = run_ingest(req)
        _print(result)


class _Progress:
    """Adapts pipeline events to console.progress (files, rate, ETA on stderr)."""

    def __enter__(self) -> "_Progress":
        from radadapt import console

        self._cm = console.progress()
        self.bar = self._cm.__enter__()
        self.task: Any = None
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)

    def event(self, kind: str, value: Any) -> None:
        import time

        from radadapt import console

        if kind == "start":
            self.workers = value["workers"]
            self.task = self.bar.add_task("ingest", total=value["total"], status=f"{self.workers} workers")
            self.t0, self.done = time.monotonic(), 0
            if value["skipped"]:
                self.bar.advance(self.task, value["skipped"])
                console.info(f"resuming: {value['skipped']} of {value['total']} files already done")
        elif kind == "advance" and self.task is not None:
            self.done += value
            rate = self.done / max(time.monotonic() - self.t0, 1e-6)
            self.bar.update(self.task, advance=value, status=f"{self.workers} workers, {rate:.1f} files/s")
        elif kind == "phase" and self.task is not None:
            self.bar.update(self.task, status=str(value))
        elif kind == "info":
            console.info(str(value))


def _print(result: dict) -> None:
    from radadapt import console

    store = result["store"]
    rows: list[tuple] = [("ok", "", result["ok"])]
    rows += [("", r, n) for r, n in sorted(store.get("ok_reasons", {}).items())]
    for state in ("filtered", "quarantined"):
        rows += [(state, r, n) for r, n in sorted(result[state].items())]
    rows.append(("duplicate", "", result["duplicate"]))
    rows += [("", r, n) for r, n in sorted(store.get("duplicate_reasons", {}).items())]
    rows.append(("total", "", result["total_files"]))
    table = console.make_table("Accounting (every file ends in one state)", ["state", "reason", "files"], rows)
    lines: list[str] = []
    if store.get("nothing_to_do"):
        lines.append("nothing to do: the archive, report export and settings are unchanged since the last run")
    decode = store.get("decode") or {}
    if decode and not console.json_mode():
        console.stdout.print(table)
        table = console.make_table(
            "Decode + pixel pipeline by transfer syntax", ["transfer syntax", "images", "img/s per worker"],
            [(_ts_name(ts), d["files"], d.get("per_second_per_worker")) for ts, d in sorted(decode.items())])
    p = result.get("pairing", {})
    if p:
        lines.append(f"reports: {p.get('report_studies', 0)} studies, {p.get('paired_studies', 0)} paired; "
                     f"images with a report: {p.get('paired_images', 0)}, without: {p.get('unpaired_images', 0)}; "
                     f"conflicts: {p.get('conflict_studies', 0)}")
    for label, n in sorted((store.get("details") or {}).items()):
        lines.append(f"{n} file(s) {label}")
    lines.append(f"store: {store['path']} ({store.get('n_images')} images, splits {store.get('splits')}; "
                 f"chunks processed {store['chunks']['processed']} of {store['chunks']['total']})")
    console.emit(result, table=table, text="\n".join(lines))


def _ts_name(uid: str) -> str:
    try:
        from pydicom.uid import UID

        return f"{UID(uid).name} ({uid})"
    except Exception:  # noqa: BLE001 - a name is a nicety
        return uid
