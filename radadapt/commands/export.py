"""`radadapt export RUN --out DIR` (default sub-command `run`) and `radadapt export verify DIR`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from radadapt.commands import DefaultCommandGroup, JsonOpt, examples, setup_output


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        cls=DefaultCommandGroup,
        no_args_is_help=True,
        rich_markup_mode="markdown",
        help="Export a finished training run as a folder that transformers (RAD-DINO) or timm (MI2 image tower) "
             "load offline, with a model card and a sha256 provenance manifest, after scanning it for patient "
             "identifiers. `radadapt export RUN --out DIR` (same as `radadapt export run ...`); "
             "`radadapt export verify DIR` re-checks an export.",
        epilog=examples("radadapt export runs/site-rad-dino --out exports/site-rad-dino --site-key site/site.key",
                        "radadapt export verify exports/site-rad-dino"),
    )

    @group.command(
        "run",
        epilog=examples(
            "radadapt export runs/site-rad-dino --out exports/site-rad-dino --site-key /data/site/site.key",
            "radadapt export runs/site-mi2 --out exports/site-mi2 --results bench/site-mi2 --site-key site.key",
            "radadapt export RUN --out DIR --site-key site.key --private-dir /secure/private --json",
            "radadapt export verify exports/site-rad-dino",
        ),
    )
    def run_cmd(
        run: Annotated[Path, typer.Argument(help="A completed training run (has run.json and final/).")],
        out: Annotated[Path, typer.Option("--out", help="Export folder to create (must not exist or be empty).")],
        results: Annotated[Optional[Path], typer.Option("--results", help="results.json (or its folder) of a "
                           "`radadapt benchmark` that evaluated this run: adds the evaluation to the card.")] = None,
        site_key: Annotated[Optional[Path], typer.Option("--site-key", help="The site key used at ingest (default: "
                            "[site] key_file of the site config); needed to read the identifier audit.")] = None,
        private_dir: Annotated[Optional[Path], typer.Option("--private-dir", help="Private audit folder (default: "
                               "private/ beside the key file, as ingest).")] = None,
        no_phi_scan: Annotated[bool, typer.Option("--no-phi-scan", help="Export WITHOUT checking for patient "
                               "identifiers (when the audit is not available). You then review every file.")] = False,
        store: Annotated[Optional[Path], typer.Option("--store", help="Where the run's store is now, if it moved "
                         "(read for the card's aggregate counts only).")] = None,
        config: Annotated[Optional[Path], typer.Option("--config", help="Site config (default: $RADADAPT_CONFIG "
                          "or ./radadapt.toml).")] = None,
        force: Annotated[bool, typer.Option("--force", help="Replace an earlier export at --out.")] = False,
        json_output: JsonOpt = False,
    ) -> None:
        """Export RUN to DIR: model files in the family's standard layouts, MODEL_CARD.md, provenance.json.

        RAD-DINO: transformers files at the top (AutoModel / AutoImageProcessor) and the Meta backbone + DINO head
        in meta/. MI2: image_tower/ (timm davit_huge_fl), text_tower/, projections.safetensors, tokenizer/ and
        mi2/ (the released layout). Everything is written to a hidden folder beside DIR and renamed at the end:
        if any exported text matches an identifier of the site's private audit, nothing is written.
        """
        from radadapt import console
        from radadapt.export.exporter import ExportRequest, export_run

        setup_output(json_output)
        result = export_run(ExportRequest(run=run, out=out, results=results, site_key=site_key,
                                          private_dir=private_dir, no_phi_scan=no_phi_scan, store=store,
                                          config=config, force=force))
        scan = result["phi_scan"]
        scan_line = (f"identifier scan: passed ({scan.get('files_scanned')} files scanned, "
                     f"{len(scan.get('files_unchanged_from_base', []))} files unchanged from the base model)"
                     if scan["status"] == "passed" else "identifier scan: SKIPPED (--no-phi-scan)")
        lines = [
            f"exported {result['family']} to {result['export']}: {result['files']} files, {result['bytes']:,} bytes",
            scan_line,
            f"provenance.json sha256: {result['provenance_sha256']} (keep it to detect a rewritten manifest)",
            f"check a copy with: radadapt export verify {result['export']}",
        ]
        console.emit(result, text="\n".join(lines))

    @group.command("verify", epilog=examples("radadapt export verify exports/site-rad-dino",
                                             "radadapt export verify /media/usb/site-mi2 --json"))
    def verify_cmd(
        export_dir: Annotated[Path, typer.Argument(help="An export folder (has provenance.json).")],
        json_output: JsonOpt = False,
    ) -> None:
        """Re-hash every file listed in provenance.json; report missing, modified and extra files.

        Exits non-zero (error export.verify_failed) on any problem.
        """
        from radadapt import console
        from radadapt.errors import DataError
        from radadapt.export.provenance import verify_export

        setup_output(json_output)
        result = verify_export(export_dir)
        rows = [("missing", f) for f in result["missing"]] + [("modified", f) for f in result["modified"]] + \
               [("extra", f) for f in result["extra"]]
        table = console.make_table("problems", ["problem", "file"], rows) if rows else None
        text = (f"{result['checked']} of {result['files']} files match provenance.json "
                f"({result['family']}, radadapt {result['radadapt_version']}); "
                f"provenance.json sha256 {result['provenance_sha256']}")
        console.emit(result, table=table, text=text)
        if not result["ok"]:
            raise DataError(
                "export.verify_failed",
                f"{export_dir} does not match its provenance.json: {len(result['missing'])} missing, "
                f"{len(result['modified'])} modified, {len(result['extra'])} extra file(s)",
                hint="copy the export again from its source; do not use a modified model",
            )

    app.add_typer(group, name="export")
