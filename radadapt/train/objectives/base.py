"""What an objective is: the one interface between the trainer and a model family (docs/architecture.md §5).

An objective is an ``nn.Module`` that owns everything family-specific: student (and teacher) networks, heads,
losses and their state, the data pipeline (how a store image becomes a training sample, how samples form a
batch), the hyperparameter schedules, and how the final model directory is written. The trainer owns the
rest (device, precision, DDP, accumulation, clipping, checkpoints, resume, guards, logging) and calls only
the methods below, so it never branches on the family.

A step, as the trainer drives it::

    values = {name: schedule[step] for name, schedule in objective.schedules(total).items()}
    objective.set_step(step, values)            # e.g. the teacher temperature of this step
    parts = objective.accumulate_backward(micro_batches, ctx)   # default: one forward/backward per micro-batch
    clip each of objective.clip_groups(); optimizer step (lr/wd from ``values`` and each group's multipliers)
    objective.after_step(step, values)          # EMA teacher, centre updates: once per optimizer step

``accumulate_backward`` is the hook for objectives whose loss couples all micro-batches (UniCL with GradCache
needs every micro-batch's embeddings before it can compute any gradient); they override it and use ``ctx``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn


@dataclass
class BackwardContext:
    """What ``accumulate_backward`` may use; built by the trainer for each optimizer step."""

    model: Callable[[Any], dict[str, torch.Tensor]]  # the (possibly DDP-wrapped) objective: model(batch) -> out
    autocast: Callable[[], AbstractContextManager]  # the run's mixed-precision context
    backward: Callable[[torch.Tensor], None]  # loss.backward(), with fp16 loss scaling applied
    sync: Callable[[bool], AbstractContextManager]  # sync(is_last): DDP gradient sync only on the last backward
    world_size: int = 1
    rank: int = 0


@dataclass(frozen=True)
class DataSpec:
    """How store images become batches: ``transform(image_u8, rng, image_key) -> sample`` runs in loader
    workers; ``collate(samples) -> batch`` too (samples carry their stream ``position``)."""

    transform: Callable[[np.ndarray, np.random.Generator, str], dict]
    collate: Callable[[list[dict]], dict]
    images_per_sample: int = 1  # crops (views) per image, for the plan's throughput arithmetic


@dataclass
class Settings:
    """The resolved settings an objective chose, and why (printed by the plan and recorded in run.json)."""

    values: dict[str, Any] = field(default_factory=dict)
    rules: list[str] = field(default_factory=list)


class Objective(nn.Module):
    """Base class. Subclasses implement the methods that raise ``NotImplementedError``."""

    family: str = ""
    settings: Settings

    def data_spec(self, seed: int, world_size: int, batch_size: int) -> DataSpec:
        raise NotImplementedError

    def attach_data(self, store: Any, training_set: Any) -> None:
        """Called once the training set is chosen, before anything is written (dry runs too), on every rank
        (``run._Session``): objectives whose samples need more than pixels (UniCL: reports and labels) check
        the store (``manifest.Store``) and build their lookup tables for ``training_set.index`` here."""

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """{"loss": scalar to backpropagate, named parts (detached or not), monitoring values}."""
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """AdamW groups: {"params", "lr_mult", "wd_mult", optional "gate": name of a 0/1 schedule multiplying
        the lr (e.g. a frozen-at-start last layer), "name"}."""
        raise NotImplementedError

    def schedules(self, total_steps: int) -> dict[str, np.ndarray]:
        """Step-indexed arrays; must contain "lr" and "wd"; other names feed ``set_step``/``after_step``."""
        raise NotImplementedError

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """Parameter lists clipped separately (DINOv2 clips backbone and head each to the same norm)."""
        return [[p for p in self.parameters() if p.requires_grad]]

    @property
    def clip_grad(self) -> float | None:
        return None

    def set_step(self, step: int, values: dict[str, float]) -> None:
        """Called before the step's forwards."""

    def after_step(self, step: int, values: dict[str, float]) -> None:
        """Called once after each optimizer step (also when fp16 overflow skipped the update)."""

    def discard_step(self) -> None:
        """Forget statistics gathered by forwards whose step will not be applied (time-budget measurement)."""

    def accumulate_backward(self, micro_batches: list[dict], ctx: BackwardContext) -> dict[str, torch.Tensor]:
        """Forward and backward every micro-batch; returns the step's outputs averaged over micro-batches.

        The loss of each micro-batch is divided by their number, so the gradient is the gradient of the mean
        loss over the effective batch (exactly, for losses that are means over independent samples)."""
        k = len(micro_batches)
        totals: dict[str, torch.Tensor] = {}
        for i, batch in enumerate(micro_batches):
            with ctx.sync(i == k - 1):
                with ctx.autocast():
                    out = ctx.model(batch)
                ctx.backward(out["loss"] / k)
            for name, value in out.items():
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    v = value.detach().float() / k
                    totals[name] = totals[name] + v if name in totals else v
        return totals

    def collapse_reason(self, metrics: dict[str, float]) -> str | None:
        """A short reason when the step's monitoring values show representation collapse, else None."""
        return None

    def dummy_batch(self, n: int) -> dict:
        """A correctly shaped random batch of ``n`` images (tests, benchmarks, time measurement)."""
        raise NotImplementedError

    def compile_targets(self) -> list[nn.Module]:
        """Modules worth ``torch.compile`` (``--compile``)."""
        return []

    def enable_grad_checkpointing(self) -> None:
        """Recompute activations in the backward pass (``--grad-checkpointing``)."""

    def flops_per_image(self) -> float:
        """Approximate training FLOPs per image (forward + backward + teacher), for the plan."""
        return 0.0

    def activation_bytes_per_image(self, precision: str) -> float:
        """Rough activation memory kept for the backward pass per image, for the plan."""
        return 0.0

    def export(self, out_dir: Path) -> dict:
        """Write the final model directory (family layout); returns {file name: sha256}."""
        raise NotImplementedError
