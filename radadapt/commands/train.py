"""`radadapt train`: continual pretraining of a foundation encoder on the store (docs/training.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from radadapt.commands import JsonOpt, examples, setup_output


def run_training(**options: Any) -> dict[str, Any]:
    """Start, plan (``dry_run``) or resume (``resume=RUN``) a run; returns the summary or the plan."""
    from radadapt.train import run

    resume = options.pop("resume", None)
    if resume is not None:
        given = [k for k in ("store", "weights", "out", "max_steps", "time_budget", "subset", "batch_size", "accum",
                             "precision", "config") if options.get(k) is not None]
        if given or options.get("dry_run"):
            from radadapt.errors import UsageError

            raise UsageError("train.resume_options", "--resume takes no other run options (the run keeps its own)",
                             hint=f"run `radadapt train --resume {resume}` alone")
        return run.resume(resume)
    return run.start(run.TrainRequest(**options))


def _text(result: dict[str, Any]) -> str:
    if "rules" in result:  # a --dry-run plan
        from radadapt.train.plan import plan_lines

        return "\n".join(["plan (nothing was written):", *plan_lines(result)])
    lines = [f"run:    {result['run']} ({result['status']}, {result['steps']:,} steps)"]
    if result.get("images_per_s"):
        lines.append(f"speed:  {result['images_per_s']:.1f} images/s")
    lines.append(f"model:  {result['final']}")
    lines.append(f"next:   radadapt benchmark --store STORE --models {result['run']}")
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    @app.command(
        "train",
        epilog=examples(
            "radadapt train --model rad-dino --store /data/store --weights /models/rad-dino --out runs/rd1 --dry-run",
            "radadapt train --model rad-dino --store /data/store --weights /models/rad-dino --out runs/rd1 "
            "--time-budget 6h",
            "radadapt train --model rad-dino --store /data/store --weights /models/rad-dino --out runs/rd30k "
            "--subset 30000 --max-steps 20000 --batch-size 64 --accum 4",
            "torchrun --nproc-per-node 8 -m radadapt.cli train --model rad-dino --store /data/store "
            "--weights /models/rad-dino --out runs/rd8",
            "radadapt train --resume runs/rd1",
        ),
    )
    def train_cmd(
        model: Annotated[str, typer.Option("--model", help="Model family: rad-dino or mi2.")] = "rad-dino",
        store: Annotated[Optional[Path], typer.Option("--store", help="Store written by `radadapt ingest`.")] = None,
        weights: Annotated[Optional[Path], typer.Option("--weights", help="Model directory to start from (e.g. from `radadapt models pull`).")] = None,
        out: Annotated[Optional[Path], typer.Option("--out", help="New run directory.")] = None,
        max_steps: Annotated[Optional[int], typer.Option("--max-steps", help="Optimizer steps (default: [train] epochs).")] = None,
        time_budget: Annotated[Optional[str], typer.Option("--time-budget", help="Wall-clock budget, e.g. 6h or 90m: steps are fitted to it.")] = None,
        subset: Annotated[Optional[int], typer.Option("--subset", help="Use the first N train images in patient-hash order (nested).")] = None,
        batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Images per GPU per micro-batch.")] = None,
        accum: Annotated[Optional[int], typer.Option("--accum", help="Micro-batches per optimizer step.")] = None,
        precision: Annotated[Optional[str], typer.Option("--precision", help="auto, fp32, bf16 or fp16.")] = None,
        compile_: Annotated[Optional[bool], typer.Option("--compile/--no-compile", help="torch.compile the backbones.")] = None,
        grad_checkpointing: Annotated[Optional[bool], typer.Option("--grad-checkpointing/--no-grad-checkpointing", help="Recompute activations: less memory, slower.")] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan (data, steps, time, memory, disk) and stop.")] = False,
        config: Annotated[Optional[Path], typer.Option("--config", help="Site config (radadapt.toml).")] = None,
        resume: Annotated[Optional[Path], typer.Option("--resume", help="Continue an interrupted run directory.")] = None,
        json_output: JsonOpt = False,
    ) -> None:
        """Continually pretrain an encoder on the store's train split (RAD-DINO: DINOv2 + iBOT + KoLeo).

        The run directory ends with the EMA teacher in `RUN/final/` (transformers and Meta layouts plus the
        DINO head). Under `torchrun` it trains with DDP; only rank 0 writes. Checkpoints are atomic;
        `--resume RUN` continues exactly where a killed run stopped. See docs/training.md.
        """
        import os

        from radadapt import console

        main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun only rank 0 speaks
        setup_output(json_output)
        if not main_rank:
            console.set_mode(json_output=json_output, quiet=True)
        result = run_training(
            family=model, store=store, weights=weights, out=out, max_steps=max_steps, time_budget=time_budget,
            subset=subset, batch_size=batch_size, accum=accum, precision=precision, compile=compile_,
            grad_checkpointing=grad_checkpointing, dry_run=dry_run, config=config, resume=resume,
        )
        from radadapt.commands import jsonable

        if main_rank:
            console.emit(jsonable(result), text=_text(result))
