"""A training run directory from start to finish: ``radadapt train`` and ``radadapt train --resume RUN``.

The directory (docs/architecture.md §5)::

    RUN/run.json            family, status (running|completed|stopped|interrupted), base model (path, sha256 of
                            every file, revision), store (store_id, path), subset, steps planned/done, stream
                            layout, resolved settings and the rules that chose them, radadapt version
    RUN/config.json         the resolved [train] config the run uses (and a resume re-reads)
    RUN/train_patients.txt  sorted patient keys whose images pretraining used (benchmark refuses overlaps)
    RUN/metrics.jsonl       one row per logged step
    RUN/checkpoints/        see radadapt/train/checkpoint.py
    RUN/final/              the family's model directory (RAD-DINO: the EMA teacher, transformers + Meta layouts
                            and the head); ``registry.load_encoder(RUN)`` and ``AutoModel.from_pretrained`` read it

Only rank 0 writes. A resume re-derives everything (training set, objective, schedules) from run.json and
config.json, checks that the store and base model are the ones the run started from, and continues from the
checkpoint ``checkpoints/latest.json`` names (or from step 0 if the run died before its first checkpoint).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radadapt import atomic, console
from radadapt.config import TrainSection, load_config
from radadapt.errors import DataError, TrainingStopped, UsageError
from radadapt.train import rundir
from radadapt.train.rundir import CONFIG_FILE, PATIENTS_FILE, RUN_FILE


@dataclass
class TrainRequest:
    family: str = "rad-dino"
    store: Path | None = None
    weights: Path | None = None
    out: Path | None = None
    max_steps: int | None = None
    time_budget: str | None = None
    subset: int | None = None
    batch_size: int | None = None
    accum: int | None = None
    precision: str | None = None
    compile: bool | None = None
    grad_checkpointing: bool | None = None
    config: Path | None = None
    dry_run: bool = False
    device: str | None = None
    overrides: dict | None = None  # extra [train] settings (tests, benchmarks)


def _train_section(req: TrainRequest) -> TrainSection:
    base = load_config(req.config).train.model_dump()
    cli = {"batch_size": req.batch_size, "accum": req.accum, "precision": req.precision, "compile": req.compile,
           "grad_checkpointing": req.grad_checkpointing}
    base.update({k: v for k, v in cli.items() if v is not None})
    _merge(base, req.overrides or {})
    from pydantic import ValidationError

    try:
        return TrainSection.model_validate(base)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise UsageError("train.bad_option", f"invalid training setting '{where}': {first['msg']}",
                         hint="see `radadapt train --help` and templates/radadapt.toml") from None


def _merge(base: dict, extra: dict) -> None:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v


def _device(req_device: str | None, local_rank: int) -> str:
    import torch

    if req_device:
        return req_device
    return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"


def _workers(cfg: TrainSection, world: int) -> int:
    import os

    if cfg.num_workers is not None:
        return cfg.num_workers
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(16, cores // max(1, world) - 1))


class _Session:
    """Everything a start and a resume share once the inputs are checked."""

    def __init__(self, family: str, store_path: Path, weights: Path, cfg: TrainSection, subset: int | None,
                 device: str | None, env):  # noqa: ANN001 - DistEnv
        import torch

        from radadapt.manifest import Store
        from radadapt.train.data import select_training_set
        from radadapt.train.objectives import build_objective
        from radadapt.train.trainer import resolve_precision

        self.family, self.cfg, self.env, self.subset = family, cfg, env, subset
        self.store_path, self.weights = store_path, weights
        self.store = Store(store_path)
        self.training_set = select_training_set(self.store, subset)
        self.device = _device(device, env.local_rank)
        self.precision = resolve_precision(cfg.precision, self.device)
        self.global_batch = cfg.batch_size * cfg.accum * env.world_size
        self.steps_per_epoch = len(self.training_set.index) / self.global_batch
        torch.manual_seed(cfg.seed)  # a fresh head's initialisation is part of the run's definition
        self.objective = build_objective(family, weights, cfg, n_images=len(self.training_set.index),
                                         global_batch=self.global_batch, steps_per_epoch=self.steps_per_epoch)
        self.objective.attach_data(self.store, self.training_set)  # e.g. UniCL's report/label pairs

    def trainer(self, run_dir: Path | None):  # noqa: ANN201
        import torch

        from radadapt.train.trainer import LoopSettings, Trainer

        torch.manual_seed(self.cfg.seed + self.env.rank)  # training draws (drop path) differ per rank, as in DINOv2

        c = self.cfg
        loop = LoopSettings(
            device=self.device, precision=self.precision, batch_size=c.batch_size, accum=c.accum, seed=c.seed,
            num_workers=_workers(c, self.env.world_size), log_every=c.log_every,
            checkpoint_minutes=c.checkpoint_minutes, checkpoint_steps=c.checkpoint_steps,
            keep_checkpoints=c.keep_checkpoints, compile=c.compile, grad_checkpointing=c.grad_checkpointing,
            guards={"grad_factor": c.guard_grad_factor, "grad_patience": c.guard_grad_patience,
                    "collapse_patience": c.guard_collapse_patience, "fp16_skips": c.guard_fp16_skips},
        )
        return Trainer(self.objective, str(self.store_path), self.training_set.index, loop, self.env, run_dir)


def start(req: TrainRequest) -> dict[str, Any]:
    """Start a new run (or, with ``dry_run``, only plan it)."""
    from radadapt.models import registry
    from radadapt.train import distributed as dist_utils
    from radadapt.train import objectives

    for name, value in (("--store", req.store), ("--weights", req.weights)):
        if value is None:
            raise UsageError("train.missing_option", f"{name} is required to start a run",
                             hint="or continue an existing run with `radadapt train --resume RUN`")
    if req.out is None and not req.dry_run:
        raise UsageError("train.missing_option", "--out is required to start a run")
    family = registry.normalise_family(req.family)
    objectives.require(family)
    weights = registry.resolve_model_dir(req.weights)
    found = registry.detect_family(weights)
    if found != family:
        raise UsageError("train.weights_family", f"--weights holds a {found} model, but --model is {req.family}")
    if req.max_steps is not None and req.max_steps < 1:
        raise UsageError("train.bad_option", "--max-steps must be at least 1")
    out = Path(req.out) if req.out else None
    if out is not None and not req.dry_run and out.exists() and any(out.iterdir()):
        hint = f"continue it with `radadapt train --resume {out}`" if (out / RUN_FILE).is_file() else "choose a new --out"
        raise UsageError("train.run_exists", f"{out} already exists and is not empty", hint=hint)
    cfg = _train_section(req)
    budget_s = None
    if req.time_budget:
        from radadapt.train.budget import parse_duration

        budget_s = parse_duration(req.time_budget)
    t_start = time.monotonic()
    env = dist_utils.init_from_env("cuda" if (req.device or "").startswith("cuda") or _cuda() else "cpu")
    try:
        s = _Session(family, Path(req.store), weights, cfg, req.subset, req.device, env)
        steps, rule = _planned_steps(req, cfg, s.steps_per_epoch)
        if req.dry_run:
            from radadapt.train.plan import make_plan

            return make_plan(objective=s.objective, training_set=s.training_set, batch_size=cfg.batch_size,
                             accum=cfg.accum, world_size=env.world_size, steps=steps, steps_rule=rule,
                             precision=s.precision, device=s.device, keep_checkpoints=cfg.keep_checkpoints,
                             subset=req.subset)
        assert out is not None
        if env.is_main:
            out.mkdir(parents=True, exist_ok=True)
            atomic.write_text(out / PATIENTS_FILE, "".join(p + "\n" for p in s.training_set.patients))
            atomic.write_json(out / CONFIG_FILE, {"train": cfg.model_dump(mode="json"), "precision": s.precision,
                                                  "resolved": s.objective.settings.values})
            rundir.write_run(out, s, status="running", planned=steps, done=0, rule=rule, budget=req.time_budget)
        dist_utils.barrier()
        trainer = s.trainer(out)
        if budget_s is not None:
            steps = _fit_budget(trainer, s, cfg, budget_s, time.monotonic() - t_start)
            if env.is_main:
                rundir.update_run(out, planned=steps)
        trainer.set_total_steps(steps)
        return _train(out, s, trainer, start_step=0)
    finally:
        dist_utils.shutdown(env)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _planned_steps(req: TrainRequest, cfg: TrainSection, steps_per_epoch: float) -> tuple[int | None, str]:
    if req.max_steps is not None:
        return req.max_steps, "--max-steps"
    if req.time_budget:
        return None, f"--time-budget {req.time_budget}: measured at start"
    return max(1, math.ceil(cfg.epochs * steps_per_epoch)), f"[train] epochs = {cfg.epochs:g} passes over the data"


def _fit_budget(trainer, s: _Session, cfg: TrainSection, budget_s: float, spent: float) -> int:  # noqa: ANN001
    from radadapt.train.budget import steps_for_budget

    from radadapt.train.distributed import all_reduce_max

    console.info(f"measuring {cfg.budget_measure_steps} training steps to fit the time budget...")
    t_measure = time.monotonic()
    step_s = trainer.measure_step_seconds(cfg.budget_measure_steps, provisional_total=10_000)
    t0 = time.monotonic()
    trainer.save_checkpoint(0)  # also the measure of what a checkpoint costs
    ckpt_s = all_reduce_max(time.monotonic() - t0)
    spent = all_reduce_max(spent + (time.monotonic() - t_measure))
    steps = steps_for_budget(budget_s, spent, step_s, ckpt_s, cfg.checkpoint_minutes)
    console.info(f"time budget: {step_s:.3f} s per step -> {steps:,} steps")
    return steps


def _train(out: Path, s: _Session, trainer, start_step: int) -> dict[str, Any]:  # noqa: ANN001
    from radadapt.train import distributed as dist_utils
    from radadapt.train.metrics import MetricsLog

    from rich.markup import escape

    main = s.env.is_main
    if main:
        for line in s.objective.settings.rules:
            console.info(f"  {escape(line)}")
        trainer.metrics = MetricsLog(out)
        trainer.on_checkpoint = lambda step: rundir.update_run(out, done=step)
    import contextlib

    try:
        with console.progress() if main else contextlib.nullcontext() as bar:
            if main:
                trainer.progress = bar
                trainer.progress_task = bar.add_task("training", total=trainer.total_steps, completed=start_step)
            summary = trainer.fit(start_step)
    except TrainingStopped as exc:
        if main:
            rundir.update_run(out, status="stopped", stop={"code": exc.code, "message": exc.message})
        raise
    except KeyboardInterrupt:
        if main:
            rundir.update_run(out, status="interrupted")
        raise TrainingStopped("train.interrupted", "training was interrupted; the last checkpoint is kept",
                              hint=f"continue with `radadapt train --resume {out}`") from None
    finally:
        if trainer.metrics is not None:
            trainer.metrics.close()
    files: dict[str, str] = {}
    if main:
        files = s.objective.export(out / "final", extra={"run": out.name, "steps": trainer.total_steps})
        rundir.update_run(out, status="completed", done=trainer.total_steps, final={"files": files})
    dist_utils.barrier()
    return {"run": str(out), "family": s.family, "status": "completed", "steps": trainer.total_steps,
            "images": len(s.training_set.index), "global_batch": s.global_batch,
            "images_per_s": summary.get("images_per_s"), "final": str(out / "final"), "final_files": files}


def resume(run_dir: Path, *, device: str | None = None) -> dict[str, Any]:
    """Continue a run after an interruption, with the same schedule position, RNG state and data order."""
    import json

    from radadapt.train import checkpoint as ckpt
    from radadapt.train import distributed as dist_utils
    from rich.markup import escape

    from radadapt.train import metrics as metrics_mod

    run_dir = Path(run_dir)
    run = rundir.read_run(run_dir)
    if run.get("status") == "completed" and (run_dir / "final").is_dir():
        return {"run": str(run_dir), "family": run["family"], "status": "completed", "steps": run["steps"]["done"],
                "final": str(run_dir / "final"), "note": "the run was already complete"}
    try:
        cfg = TrainSection.model_validate(json.loads((run_dir / CONFIG_FILE).read_text(encoding="utf-8"))["train"])
    except (OSError, ValueError, KeyError):
        raise DataError("train.bad_run", f"{run_dir}/{CONFIG_FILE} is missing or damaged") from None
    planned = run["steps"]["planned"]
    env = dist_utils.init_from_env("cuda" if (device or "").startswith("cuda") or _cuda() else "cpu")
    try:
        if env.world_size != run["layout"]["world_size"]:
            raise UsageError(
                "train.resume_layout",
                f"the run used {run['layout']['world_size']} process(es); this resume has {env.world_size}",
                hint="resume with the same number of GPUs/processes: the data order depends on it",
            )
        s = _Session(run["family"], Path(run["store"]["path"]), Path(run["base_model"]["path"]), cfg,
                     run.get("subset"), device, env)
        rundir.check_same_inputs(run, s)
        found = ckpt.latest(run_dir / "checkpoints")
        if planned is None:  # killed while measuring the time budget: measure again
            planned = _fit_budget_again(run_dir, s, cfg, run)
        trainer = s.trainer(run_dir)
        trainer.set_total_steps(planned)
        start_step = trainer.load_checkpoint(found) if found is not None else 0
        if env.is_main:
            metrics_mod.truncate(run_dir, start_step)
            rundir.update_run(run_dir, status="running", done=start_step)
            console.info(f"resuming {escape(run_dir.name)} at step {start_step:,} of {planned:,}")
        dist_utils.barrier()
        return _train(run_dir, s, trainer, start_step)
    finally:
        dist_utils.shutdown(env)


def _fit_budget_again(run_dir: Path, s: _Session, cfg: TrainSection, run: dict) -> int:
    from radadapt.train.budget import parse_duration

    budget = run["steps"].get("time_budget")
    if not budget:
        raise DataError("train.bad_run", f"{run_dir}/{RUN_FILE} has no planned step count")
    steps = _fit_budget(s.trainer(run_dir), s, cfg, parse_duration(budget), 0.0)
    if s.env.is_main:
        rundir.update_run(run_dir, planned=steps)
    return steps
