"""Hyperparameter schedules as arrays indexed by optimizer step (DINOv2 ``utils.CosineScheduler`` style).

A schedule is a plain ``numpy`` array with one value per optimizer step, built once the run length is fixed.
Indexing by step (rather than stepping a stateful scheduler object) is what makes a resume exact: step k after
a restart reads the same lr, weight decay, teacher momentum and teacher temperature as step k of an
uninterrupted run. Steps past the end read the final value.
"""

from __future__ import annotations

import numpy as np


def cosine(start: float, end: float, total: int, *, warmup: int = 0, warmup_start: float = 0.0,
           freeze: int = 0) -> np.ndarray:
    """``freeze`` steps at 0, then a linear warm-up ``warmup_start -> start`` over ``warmup`` steps, then a
    half-cosine ``start -> end`` over the remaining steps (DINOv2 ``CosineScheduler``, same arithmetic)."""
    total = int(total)
    freeze = min(int(freeze), total)
    warmup = min(int(warmup), total - freeze)
    rest = total - freeze - warmup
    parts = [np.zeros(freeze), np.linspace(warmup_start, start, warmup)]
    if rest > 0:
        t = np.arange(rest)
        parts.append(end + 0.5 * (start - end) * (1.0 + np.cos(np.pi * t / rest)))
    return np.concatenate(parts).astype(np.float64)


def linear_warmup(start: float, end: float, total: int, warmup: int) -> np.ndarray:
    """Linear ``start -> end`` over ``warmup`` steps, then held at ``end`` (the DINOv2 teacher temperature)."""
    total = int(total)
    warmup = min(int(warmup), total)
    return np.concatenate([np.linspace(start, end, warmup), np.full(total - warmup, end)]).astype(np.float64)


def constant(value: float, total: int) -> np.ndarray:
    return np.full(int(total), float(value), dtype=np.float64)


def gate(total: int, closed_steps: int) -> np.ndarray:
    """0 for the first ``closed_steps`` steps, then 1: a multiplier that freezes a parameter group at the start
    (the DINO head's last layer for the first epoch; the backbone during a fresh head's warm-up)."""
    out = np.ones(int(total), dtype=np.float64)
    out[: max(0, min(int(closed_steps), int(total)))] = 0.0
    return out


def value_at(schedule: np.ndarray, step: int) -> float:
    """The value at ``step``; the final value beyond the end (a run extended by rounding never reads garbage)."""
    if len(schedule) == 0:
        raise ValueError("empty schedule")
    return float(schedule[min(step, len(schedule) - 1)])
