"""`radadapt benchmark`: open weights vs site models on the site's own labels; `benchmark scaling`: power-law fits."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from radadapt.commands import DefaultCommandGroup, JsonOpt, examples, jsonable, setup_output

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="Site config (default: $RADADAPT_CONFIG or ./radadapt.toml).")]


def _without_replicates(obj):
    """results.json as printed by --json: the bootstrap replicates (kept in the file for scaling) left out."""
    if isinstance(obj, dict):
        return {k: _without_replicates(v) for k, v in obj.items() if k != "replicates"}
    if isinstance(obj, list):
        return [_without_replicates(v) for v in obj]
    return obj


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        cls=DefaultCommandGroup,
        no_args_is_help=True,
        rich_markup_mode="markdown",
        help="Compare frozen encoders on the store's own labels (probes, bootstrap CIs, verdicts); fit scaling laws.",
    )

    @group.command(
        "run",
        epilog=examples(
            "radadapt benchmark --store /data/store --baseline /models/rad-dino --candidate /runs/site-rad-dino "
            "--out /data/bench",
            "radadapt benchmark --store /data/store --baseline /models/mi2 --candidate /runs/mi2-100k "
            "--candidate /runs/mi2-1m --out /data/bench --ood /data/public-store --device cuda",
            "radadapt benchmark scaling /data/bench-30k /data/bench-100k /data/bench-1m --target 0.9",
        ),
    )
    def run_cmd(
        store: Annotated[Path, typer.Option("--store", help="The ingested, labelled store (val/test splits).")],
        baseline: Annotated[Path, typer.Option("--baseline", help="Open weights (or any MODEL) to compare against.")],
        candidate: Annotated[list[Path], typer.Option("--candidate", help="A run, export or model directory; repeatable.")],
        out: Annotated[Path, typer.Option("--out", help="Results folder: results.json, cache/, overlays/.")],
        ood: Annotated[Optional[Path], typer.Option("--ood", help="Another site's store (same label schema).")] = None,
        masks: Annotated[Optional[Path], typer.Option("--masks", help="Tube mask folder in the store masks/ format.")] = None,
        bootstrap: Annotated[Optional[int], typer.Option("--bootstrap", min=0, help="Patient bootstrap replicates (default 1000).")] = None,
        device: Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1 ...")] = "cpu",
        config: ConfigOpt = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Is the site model better than the open weights? Frozen features, linear and kNN probes per label,
        tube segmentation, zero-shot for MI2, paired patient-cluster bootstrap CIs and a verdict per label.

        MODEL is a training run, an export, or a RAD-DINO / MI2 model directory; families can be mixed. A run that
        pretrained on any test patient is refused. Features are cached (rerun = resume).
        """
        from radadapt import console
        from radadapt.bench.run import BenchmarkRequest, run_benchmark
        from radadapt.bench.tables import summary_table, summary_text
        from radadapt.config import load_config

        setup_output(json_output)
        cfg = load_config(config).benchmark
        req = BenchmarkRequest(store=store, baseline=baseline, candidates=list(candidate), out=out, ood=ood,
                               masks=masks, bootstrap=bootstrap, device=device, config=cfg)
        results = run_benchmark(req)
        console.emit(_without_replicates(jsonable(results)), table=summary_table(results),
                     text=summary_text(results, out))

    @group.command(
        "scaling",
        epilog=examples(
            "radadapt benchmark scaling /data/bench-30k /data/bench-100k /data/bench-300k /data/bench-1m",
            "radadapt benchmark scaling RESULTS1 RESULTS2 RESULTS3 --target 0.9 --at 3000000 --out scaling.json",
        ),
    )
    def scaling_cmd(
        results: Annotated[list[Path], typer.Argument(help="results.json files (or their folders) of nested-subset runs.")],
        target: Annotated[Optional[list[float]], typer.Option("--target", help="Metric to reach (e.g. AUROC 0.9); repeatable.")] = None,
        at: Annotated[Optional[list[float]], typer.Option("--at", help="Predict the metric at this N; repeatable.")] = None,
        probe: Annotated[Optional[str], typer.Option("--probe", help="Probe to fit (default: each file's headline probe).")] = None,
        per_label: Annotated[bool, typer.Option("--per-label", help="Also fit every label, not only the task macros.")] = False,
        bootstrap: Annotated[int, typer.Option("--bootstrap", min=0, help="Refits for the CI on b.")] = 500,
        max_extrapolation: Annotated[float, typer.Option("--max-extrapolation", min=1.0, help="Withhold predictions beyond this multiple of the largest N.")] = 10.0,
        allow_extrapolation: Annotated[bool, typer.Option("--allow-extrapolation", help="Show predictions beyond --max-extrapolation anyway (flagged).")] = False,
        out: Annotated[Optional[Path], typer.Option("--out", help="Write the fits as JSON here.")] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Fit error = a·N^-b + c (and a·N^-b) per task across benchmarks of runs trained on nested subsets:
        bootstrap CI on b, fit quality, leave-largest-out extrapolation error, and the N needed for a target."""
        from radadapt import console
        from radadapt.bench.tables import scaling_notes, scaling_table
        from radadapt.bench.trends import ScalingRequest, run_scaling

        setup_output(json_output)
        res = run_scaling(ScalingRequest(inputs=list(results), targets=list(target or []), at=list(at or []),
                                         probe=probe, per_label=per_label, n_boot=bootstrap,
                                         max_extrapolation=max_extrapolation, allow_extrapolation=allow_extrapolation,
                                         out=out))
        console.emit(jsonable(res), table=scaling_table(res), text=scaling_notes(res))

    app.add_typer(group, name="benchmark")
