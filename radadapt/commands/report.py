"""`radadapt report RESULTS --out REPORT_DIR`: the benchmark as a report people read (HTML + markdown)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from radadapt.commands import JsonOpt, examples, setup_output


def write_report(results: Path, out: Path, scaling: list[Path] | None = None, *, overlays: bool = False):
    """Load RESULTS (+ scaling fits) and render REPORT_DIR/report.html and report.md -> (Report, ReportInputs)."""
    from radadapt.report.load import load_inputs
    from radadapt.report.render import render_report

    inp = load_inputs(results, scaling, overlays=overlays)
    return render_report(inp, out), inp


def make_report(results: Path, out: Path, scaling: list[Path] | None = None, *, overlays: bool = False) -> dict:
    """``write_report`` for callers (``radadapt demo``) and ``--json``: paths written, sections, notes, summary."""
    rep, inp = write_report(results, out, scaling, overlays=overlays)
    return _as_json(rep, inp)


def _as_json(rep, inp) -> dict:
    return {"report_html": str(rep.html), "report_md": str(rep.markdown), "figures": [str(f) for f in rep.figures],
            "sections": rep.sections, "notes": inp.notes, "summary": rep.summary.to_json()}


def register(app: typer.Typer) -> None:
    @app.command(
        "report",
        epilog=examples(
            "radadapt report /data/bench --out /data/bench/report",
            "radadapt report /data/bench/results.json --out report --scaling /data/scaling.json --overlays",
            "radadapt benchmark scaling /data/bench-30k /data/bench-100k /data/bench-1m --out scaling.json && "
            "radadapt report /data/bench-1m --out report --scaling scaling.json",
        ),
    )
    def report_cmd(
        results: Annotated[Path, typer.Argument(help="The benchmark's --out folder, or its results.json.")],
        out: Annotated[Path, typer.Option("--out", help="Report folder: report.html, report.md, figures/.")],
        scaling: Annotated[
            Optional[list[Path]], typer.Option("--scaling", help="A `benchmark scaling --out` JSON file; repeatable.")
        ] = None,
        overlays: Annotated[
            bool, typer.Option("--overlays", help="Embed the segmentation overlays (test patients' radiographs).")
        ] = False,
        json_output: JsonOpt = False,
    ) -> None:
        """Write a self-contained HTML report (opens offline in any browser) and a markdown version: the verdict
        first, then per-label AUROC/AUPRC with CIs, the forest plot of differences, device segmentation, the
        out-of-domain check, scaling fits, training curves and the ingest data accounting.

        The report holds aggregates and the paths you gave, never patient data, unless --overlays adds the
        segmentation overlays (de-identified test radiographs; for review inside the hospital). Missing optional
        parts (no scaling, no training log, no segmentation, no out-of-domain store) are named in the report. See
        docs/report.md for how to read it.
        """
        from radadapt import console
        from radadapt.report.summary import console_view

        setup_output(json_output)
        rep, inp = write_report(results, out, list(scaling or []), overlays=overlays)
        console.emit(_as_json(rep, inp), table=console_view(rep.summary, str(rep.html), str(rep.markdown)))
