"""The training loop shared by every objective (docs/training.md; architecture §5).

The trainer owns the device, mixed precision (bf16, or fp16 with a loss scaler), DDP, gradient accumulation,
clipping, step-indexed schedules, checkpoints, resume, guards, metrics and progress; the objective owns the
model and the loss (``objectives/base.py``). Nothing here depends on the family.

One optimizer step: read the schedules at the step index, set each AdamW group's lr and weight decay
(``lr * lr_mult * gate`` and ``wd * wd_mult``), let the objective forward/backward its K micro-batches (DDP
synchronises gradients on the last one only), unscale and clip, average the step's numbers over all ranks in one
collective (the guards then decide identically everywhere), step the optimizer, and call ``after_step`` (EMA,
centres). Checkpoints are taken between steps, so a checkpoint at step k holds exactly the state an
uninterrupted run has after k steps; with the stream order and the per-rank RNG states it holds, a resumed run
continues bit for bit (tested on CPU).
"""

from __future__ import annotations

import contextlib
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from radadapt.manifest import StoreIndex
from radadapt.train import checkpoint as ckpt
from radadapt.train import distributed as dist_utils
from radadapt.train.data import StepBatchSampler, StoreStream, StreamLayout, worker_init
from radadapt.train.guards import Guards
from radadapt.train.objectives.base import BackwardContext, Objective
from radadapt.train.schedules import value_at

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LoopSettings:
    device: str = "cpu"
    precision: str = "fp32"  # resolved: fp32 | bf16 | fp16
    batch_size: int = 64
    accum: int = 1
    seed: int = 0
    num_workers: int = 0
    log_every: int = 10
    checkpoint_minutes: float = 15.0
    checkpoint_steps: int | None = None
    keep_checkpoints: int = 2
    compile: bool = False
    grad_checkpointing: bool = False
    guards: dict = field(default_factory=dict)
    prefetch_factor: int = 4


def resolve_precision(requested: str, device: str) -> str:
    if requested != "auto":
        return requested
    if device.startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def _to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class Trainer:
    def __init__(self, objective: Objective, store_path: str, index: StoreIndex, settings: LoopSettings,
                 env: dist_utils.DistEnv, run_dir: Path | None):
        self.s, self.env, self.run_dir = settings, env, run_dir
        self.device = settings.device
        self.objective = objective.to(self.device)
        if settings.grad_checkpointing:
            objective.enable_grad_checkpointing()
        if settings.compile:
            for module in objective.compile_targets():
                module.compile()
        groups = objective.param_groups()
        self.optimizer = torch.optim.AdamW(
            [{**g, "lr": 0.0, "weight_decay": 0.0} for g in groups], betas=(0.9, 0.999),
            **({"fused": True} if self.device.startswith("cuda") else {"foreach": True}),
        )
        self.model: Callable = objective
        self._ddp = None
        if env.distributed:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [env.local_rank] if self.device.startswith("cuda") else None
            self._ddp = DDP(objective, device_ids=ids, broadcast_buffers=False)
            self.model = self._ddp
        self.scaler = torch.amp.GradScaler(self.device.split(":")[0], enabled=settings.precision == "fp16")
        self.guards = Guards(**settings.guards)
        self.layout = StreamLayout(settings.batch_size, settings.accum, env.world_size, env.rank)
        spec = objective.data_spec(settings.seed, env.world_size, settings.batch_size)
        self.collate = spec.collate
        self.dataset = StoreStream(store_path, index, spec.transform, settings.seed)
        self.schedules: dict[str, np.ndarray] = {}
        self.total_steps = 0
        self.on_checkpoint: Callable[[int], None] | None = None  # run.json update (rank 0)
        self.progress: Any = None
        self.metrics: Any = None
        self._stop_requested = False
        self.started = time.monotonic()
        self.elapsed_before = 0.0  # training seconds of earlier sessions (resume)

    # -- schedules ---------------------------------------------------------------------------------------------
    def set_total_steps(self, total: int) -> None:
        self.total_steps = int(total)
        self.schedules = self.objective.schedules(self.total_steps)

    def _apply(self, step: int) -> dict[str, float]:
        values = {name: value_at(s, step) for name, s in self.schedules.items()}
        for g in self.optimizer.param_groups:
            gate = values[g["gate"]] if g.get("gate") else 1.0
            g["lr"] = values["lr"] * g["lr_mult"] * gate
            g["weight_decay"] = values["wd"] * g["wd_mult"]
        self.objective.set_step(step, values)
        return values

    # -- data --------------------------------------------------------------------------------------------------
    def _loader(self, start: int, stop: int) -> Iterator[dict]:
        from torch.utils.data import DataLoader

        workers = self.s.num_workers
        loader = DataLoader(
            self.dataset, batch_sampler=StepBatchSampler(self.layout, start, stop), collate_fn=self.collate,
            num_workers=workers, pin_memory=self.device.startswith("cuda"), worker_init_fn=worker_init,
            prefetch_factor=self.s.prefetch_factor if workers else None,
            generator=torch.Generator().manual_seed(self.s.seed),  # keeps the global RNG untouched (resume)
        )
        return iter(loader)

    # -- the loop ----------------------------------------------------------------------------------------------
    def fit(self, start: int) -> dict[str, Any]:
        """Train from step ``start`` to ``total_steps``; returns a summary. Checkpoints on schedule and at the end."""
        self.objective.train()
        if start >= self.total_steps:
            return {"steps": start, "images_per_s": None}
        with self._signals():
            rate = self._steps(start, self.total_steps, time.monotonic())
        return {"steps": self.total_steps, "images_per_s": rate}

    def _steps(self, start: int, stop: int, last_ckpt: float, *, measure: list | None = None,
               checkpointing: bool = True) -> float | None:
        it = self._loader(start, stop)
        per_step = self.layout.images_per_step
        ctx = BackwardContext(model=self.model, autocast=self._autocast, backward=self._backward, sync=self._sync,
                              world_size=self.env.world_size, rank=self.env.rank)
        rate_ema = None
        for step in range(start, stop):
            t0 = time.perf_counter()
            values = self._apply(step)
            micro = [_to_device(next(it), self.device) for _ in range(self.s.accum)]
            data_wait = time.perf_counter() - t0
            parts = self.objective.accumulate_backward(micro, ctx)
            norms = self._clip()
            due = checkpointing and self.env.is_main and self._checkpoint_due(step + 1, last_ckpt)
            names = sorted(parts)
            vec = torch.stack([parts[n].float().reshape(()) for n in names] + [n.float().reshape(()) for n in norms]
                              + [torch.tensor(float(due), device=self.device),
                                 torch.tensor(float(self._stop_requested), device=self.device)])
            vals = dist_utils.all_reduce_mean(vec).tolist()
            n = len(names)
            metrics = dict(zip(names, vals[:n]))
            grad_norms = vals[n:-2]
            due, stop_now = vals[-2] > 0, vals[-1] > 0
            skipped = self.guards.check(step, metrics["loss"], grad_norms, metrics, fp16=self.scaler.is_enabled(),
                                        collapse_reason=self.objective.collapse_reason)
            if self.scaler.is_enabled():
                self.scaler.step(self.optimizer)
                self.scaler.update()
            elif not skipped:
                self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.objective.after_step(step, values)
            dt = time.perf_counter() - t0
            if measure is not None:
                measure.append(dt)
                continue
            rate = per_step / dt
            rate_ema = rate if rate_ema is None else 0.9 * rate_ema + 0.1 * rate
            self._report(step + 1, values, metrics, grad_norms, rate_ema, data_wait, dt, skipped)
            if (due or stop_now or step + 1 == stop) and checkpointing:
                self.save_checkpoint(step + 1)
                last_ckpt = time.monotonic()
            if stop_now:
                raise KeyboardInterrupt
        return rate_ema

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.s.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.split(":")[0], dtype=_DTYPES[self.s.precision])

    def _backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def _sync(self, last: bool) -> contextlib.AbstractContextManager:
        if self._ddp is None or last:
            return contextlib.nullcontext()
        return self._ddp.no_sync()

    def _clip(self) -> list[torch.Tensor]:
        if self.scaler.is_enabled():
            self.scaler.unscale_(self.optimizer)
        limit = self.objective.clip_grad
        norms = []
        for group in self.objective.clip_groups():
            if limit:
                norms.append(torch.nn.utils.clip_grad_norm_(group, limit, foreach=True))
            else:
                grads = [p.grad for p in group if p.grad is not None]
                norms.append(torch.nn.utils.get_total_norm(grads, foreach=True) if grads
                             else torch.zeros((), device=self.device))
        return norms

    def _checkpoint_due(self, steps_done: int, last: float) -> bool:
        if self.s.checkpoint_steps and steps_done % self.s.checkpoint_steps == 0:
            return True
        return time.monotonic() - last >= self.s.checkpoint_minutes * 60

    def _report(self, steps_done: int, values: dict, metrics: dict, grad_norms: list[float], rate: float,
                data_wait: float, dt: float, skipped: bool) -> None:
        if not self.env.is_main:
            return
        if self.progress is not None:
            shown = " ".join(f"{k.removesuffix('_loss')} {metrics[k]:.3f}" for k in sorted(metrics) if k.endswith("loss"))
            self.progress.update(self.progress_task, completed=steps_done, status=f"{shown} | {rate:.0f} img/s")
        if self.metrics is not None and (steps_done % self.s.log_every == 0 or steps_done == self.total_steps):
            row = {"step": steps_done, "images_seen": steps_done * self.layout.images_per_step,
                   "elapsed_s": round(self.elapsed(), 3), "step_s": round(dt, 5), "data_wait_s": round(data_wait, 5),
                   "images_per_s": round(rate, 2), "grad_norm": grad_norms, "fp16_skipped": skipped}
            row.update({k: float(v) for k, v in values.items()})
            row.update(metrics)
            self.metrics.write(row)

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.started

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        """SIGTERM/SIGINT: finish the current step, checkpoint, stop (schedulers preempt with SIGTERM)."""
        def request(_signum: int, _frame: Any) -> None:
            if self._stop_requested:  # a second signal: give up at once
                raise KeyboardInterrupt
            self._stop_requested = True

        try:
            old = {s: signal.signal(s, request) for s in (signal.SIGTERM, signal.SIGINT)}
        except ValueError:  # not the main thread (e.g. some test runners): leave signals alone
            old = {}
        try:
            yield
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    # -- state ---------------------------------------------------------------------------------------------------
    def save_checkpoint(self, step: int) -> None:
        root = self.run_dir / "checkpoints" if self.run_dir is not None else None
        tmp = None
        if self.env.is_main:
            assert root is not None
            tmp = ckpt.begin(root, step)
            ckpt.write_tensors(tmp, "model.safetensors", self.objective.state_dict())
            ckpt.write_torch(tmp, "optimizer.pt", {"optimizer": self.optimizer.state_dict(),
                                                  "scaler": self.scaler.state_dict()})
        tmp = Path(dist_utils.broadcast_object(str(tmp))) if self.env.distributed else tmp
        dist_utils.barrier()
        ckpt.write_torch(tmp, f"rng_rank{self.env.rank}.pt", self._rng_state())
        dist_utils.barrier()
        if self.env.is_main:
            state = {"world_size": self.env.world_size, "layout": vars(self.layout) | {"rank": 0},
                     "guards": self.guards.state(), "elapsed_s": self.elapsed(),
                     "images_seen": step * self.layout.images_per_step}
            ckpt.finish(root, tmp, step, state, keep=self.s.keep_checkpoints)
            if self.on_checkpoint is not None:
                self.on_checkpoint(step)
        dist_utils.barrier()

    def load_checkpoint(self, found: ckpt.Checkpoint) -> int:
        from radadapt.errors import DataError

        tensors = ckpt.read_tensors(found.path, "model.safetensors", self.device)
        try:
            self.objective.load_state_dict(tensors, strict=True)
        except RuntimeError:
            raise DataError("train.checkpoint_mismatch", f"checkpoint {found.path.name} does not fit this model",
                            hint="resume with the radadapt version and settings that started the run") from None
        opt = ckpt.read_torch(found.path, "optimizer.pt", self.device)
        self.optimizer.load_state_dict(opt["optimizer"])
        if opt.get("scaler"):
            self.scaler.load_state_dict(opt["scaler"])
        self._set_rng_state(ckpt.read_torch(found.path, f"rng_rank{self.env.rank}.pt", "cpu"))
        self.guards.load_state(found.state.get("guards", {}))
        self.elapsed_before = float(found.state.get("elapsed_s", 0.0))
        self.started = time.monotonic()
        return found.step

    def _rng_state(self) -> dict:
        state = {"torch": torch.get_rng_state()}
        if self.device.startswith("cuda"):
            state["cuda"] = torch.cuda.get_rng_state()
        return state

    def _set_rng_state(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        if "cuda" in state and self.device.startswith("cuda"):
            torch.cuda.set_rng_state(state["cuda"])

    def measure_step_seconds(self, n_steps: int, provisional_total: int) -> float:
        """Seconds per optimizer step over ``n_steps`` real steps (data included; the first two, which include
        worker start-up, are not counted), then every state is put back as it was (``--time-budget``)."""
        saved_model = {k: v.detach().clone() for k, v in self.objective.state_dict().items()}
        saved_opt = _clone(self.optimizer.state_dict())
        saved_scaler, saved_rng, saved_guards = self.scaler.state_dict(), self._rng_state(), self.guards.state()
        self.set_total_steps(provisional_total)
        times: list[float] = []
        self.objective.train()
        self._steps(0, n_steps, time.monotonic(), measure=times, checkpointing=False)
        self.objective.load_state_dict(saved_model, strict=True)
        self.optimizer.load_state_dict(saved_opt)
        if saved_scaler:
            self.scaler.load_state_dict(saved_scaler)
        self._set_rng_state(saved_rng)
        self.guards = Guards(**self.s.guards)
        self.guards.load_state(saved_guards)
        self.objective.discard_step()
        counted = times[2:] if len(times) > 2 else times
        return dist_utils.all_reduce_max(float(np.median(counted)))


def _clone(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    if isinstance(obj, dict):
        return {k: _clone(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clone(v) for v in obj]
    return obj

