"""`radadapt demo`: the whole journey on the synthetic hospital (docs/demo.md); `radadapt demo-archive OUT`: only the
synthetic hospital itself (docs/demo_archive.md). ``register`` calls one function per command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from radadapt.commands import JsonOpt, WorkersOpt, examples, setup_output


def register(app: typer.Typer) -> None:
    _register_demo(app)
    _register_demo_archive(app)


def _register_demo(app: typer.Typer) -> None:
    @app.command(
        "demo",
        epilog=examples(
            "radadapt demo",
            "radadapt demo --out /tmp/radadapt-demo --json",
            "radadapt demo --out /tmp/small-demo --n 300 --seed 1",
            "radadapt demo --out /tmp/dino-demo --model rad-dino",
        ),
    )
    def demo_cmd(
        out: Annotated[Path, typer.Option("--out", help="Folder for everything the demo writes (new, empty, or an "
                                          "earlier demo to continue).")] = Path("radadapt-demo"),
        n: Annotated[int, typer.Option("--n", help="Synthetic radiographs to generate (fewer: faster, wider CIs).")] = 1200,
        seed: Annotated[int, typer.Option("--seed", help="Seed of the whole demo: same seed, same results.")] = 0,
        model: Annotated[Optional[list[str]], typer.Option("--model", help="Train only this family (rad-dino or "
                                                           "mi2); repeatable. Default: both.")] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Run the whole pipeline on a built-in synthetic hospital, offline, on a CPU, in a few minutes.

        Generates a synthetic PACS + report export (fake patient data), ingests and de-identifies it, labels the
        reports, continually pretrains tiny RAD-DINO (DINOv2) and MI2 (UniCL) models from tiny random "open
        weights", benchmarks each against its starting point (linear probes, patient bootstrap CIs), exports the
        adapted models and writes the reports. Ctrl-C is safe: rerun the same command to continue. See
        docs/demo.md.
        """
        from radadapt import console
        from radadapt.demo.outcome import fmt_estimate
        from radadapt.demo.pipeline import run_demo

        from radadapt.demo.pipeline import FAMILIES, SLUG
        from radadapt.errors import UsageError

        setup_output(json_output)
        by_slug = {SLUG[f]: f for f in FAMILIES}
        if model and any(m not in by_slug for m in model):
            bad = next(m for m in model if m not in by_slug)
            raise UsageError("demo.bad_family", f"unknown model family {bad!r}", hint="choose rad-dino or mi2")
        kwargs = {"families": tuple(by_slug[m] for m in model)} if model else {}
        summary = run_demo(out, n=n, seed=seed, **kwargs)
        rows = []
        for fam in summary["families"].values():
            for row in fam.get("rows", []):
                d = row["difference"]
                # points only for the two models (their CIs: --json and the report) so a row fits 80 columns
                pts = [fmt_estimate(e and {"point": e["point"]}) for e in (row["baseline"], row["adapted"])]
                verdict = d["verdict"] if d else "not evaluable"
                rows.append((fam["name"], _short_task(row["task"]), *pts, fmt_estimate(d, signed=True),
                             "no evidence" if verdict == "no evidence of difference" else verdict))
        table = console.make_table("adapted vs open weights, test split (difference: 95% patient-bootstrap CI)",
                                   ["model", "task", "open", "adapted", "difference", "verdict"], rows)
        lines = [f"{name}: not available in this radadapt version ({why})"
                 for name, why in summary["unavailable"].items()]
        lines.append(f"stages took {summary['wall_s']:.0f} s in all; everything is under {summary['out']}")
        if summary["report"]:
            lines.append(f"Open {summary['report']} in a browser")
        console.emit(summary, table=table, text="\n".join(lines))


def _short_task(task: str) -> str:
    """'findings macro AUROC (9 labels)' -> 'findings AUROC'; 'device segmentation Dice (pyramid head)' ->
    'tube Dice, pyramid'."""
    task = task.split(" (")[0] if "macro AUROC (" in task else task
    return (task.replace(" macro AUROC", " AUROC").replace("device segmentation Dice (", "tube Dice, ")
            .replace(" head)", ""))


def _register_demo_archive(app: typer.Typer) -> None:
    @app.command(
        "demo-archive",
        epilog=examples(
            "radadapt demo-archive /tmp/hospital",
            "radadapt demo-archive /tmp/hospital --n 1000 --seed 3 --size 512 --json",
            "radadapt ingest /tmp/hospital/archive --reports /tmp/hospital/reports.csv --out /tmp/store "
            "--site-key SITE/site.key",
        ),
    )
    def demo_archive_cmd(
        out: Annotated[Path, typer.Argument(help="Directory to create (must be new, empty, or an earlier demo archive).")],
        n: Annotated[int, typer.Option("--n", help="Number of patient radiographs (chest and other); the mess of a "
                                       "real export is added on top.")] = 300,
        seed: Annotated[int, typer.Option("--seed", help="Random seed: same n, seed and size give identical bytes.")] = 0,
        size: Annotated[int, typer.Option("--size", help="Long side of the radiographs in pixels (non-square).")] = 448,
        force: Annotated[bool, typer.Option("--force", help="Replace a demo archive made with other parameters.")] = False,
        workers: WorkersOpt = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Write a synthetic hospital archive: DICOM radiographs with planted findings, devices and PHI, the mess of a
        real PACS export, a report CSV, device masks and ground truth.

        Everything is fake, deterministic and generated offline. OUT gets `archive/` (the DICOM tree),
        `reports.csv`, `report_labels.csv` (gold labels), `masks/`, `ground_truth.jsonl` (the expected fate of every
        file), `phi.json` (every planted identifier) and `demo_archive.json` (counts).
        """
        import os

        from radadapt import console
        from radadapt.demo.archive import generate_archive

        setup_output(json_output)
        result = generate_archive(out, n=n, seed=seed, size=size, force=force, workers=workers or os.cpu_count() or 1)
        table = console.make_table(
            "demo archive: expected outcome per file",
            ["state / reason", "files"],
            [*result["by_reason"].items(), ("total", result["files"])],
        )
        verb = "reused existing" if result["reused"] else f"wrote in {result['seconds']:.1f} s"
        lines = [
            f"{verb}: {result['out']}",
            f"{result['radiographs']} radiographs + {result['mess_files']} other files; {result['patients']} patients, "
            f"{result['studies']} studies, {result['reports']} reports ({result['orphan_reports']} without images), "
            f"{result['masks']} device masks",
            "transfer syntaxes: " + ", ".join(f"{k} {v}" for k, v in result["by_transfer_syntax"].items()),
            f"next: radadapt ingest {result['archive']} --reports {Path(result['out']) / 'reports.csv'} --out STORE "
            "--site-key SITE/site.key",
        ]
        console.emit(result, table=table, text="\n".join(lines))
