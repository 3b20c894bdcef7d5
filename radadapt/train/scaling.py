"""Settings chosen from the data size and the batch size ("auto" values of ``[train.dino]``).

DINOv2's defaults assume ImageNet-22k/LVD-142M and a global batch of 1024-3072 (research note rad_dino.md §2).
A hospital archive is 10^4-10^6 images on one to eight GPUs, where those defaults are known to collapse or stall
(dinov2#298, #143, #272; dino#43). The rules below follow LightlyTrain's DINOv2 method
(``lightly_train/_methods/dinov2``, ``resolve_auto``), which scales with the number of training images N:

- prototypes (fresh head only): 1,024 below 20k images, 2,048 below 50k, 4,096 below 100k, 16,384 below
  200k, 32,768 below 500k, else 65,536 (DINOv2's value). A warm head keeps its own count;
- teacher temperature after warm-up: linear in N from 0.02 at 20k to 0.07 (DINOv2) at ImageNet's 1,281,167,
  rounded to 2 digits (sharper targets avoid the uniform collapse of small data sets, dino#43);
- teacher temperature at the start: min(end, 0.02 -> 0.04 linearly as the end goes 0.02 -> 0.07);
- its warm-up: 30% of the run, but at most 30 passes over the data (DINOv2: 30 of 100 epochs);
- teacher EMA momentum at the start: linear in N from 0.99 at 20k to 0.996 at 1,281,167, 3 digits;
- peak lr: ``base_lr * sqrt(global batch / 1024)`` (DINOv2's ``sqrt_wrt_1024`` rule);
- the head's last layer frozen for the first 1% of the run with a warm head (DINOv2: 1 of 100 epochs); with a
  fresh head, the backbone is frozen instead for one pass over the data or 10% of the run, whichever is shorter
  (LightlyTrain's advice when starting from pretrained weights: 1 frozen-backbone epoch, last layer free).

Every rule used is returned as a sentence that the plan prints and run.json records.
"""

from __future__ import annotations

import math

IMAGENET_SIZE = 1_281_167
SMALL_DATA = 20_000
PROTOTYPE_BUCKETS = ((20_000, 1024), (50_000, 2048), (100_000, 4096), (200_000, 16384), (500_000, 32768))
SMALL_BATCH_WARNING = 256


def interpolate(x: float, x0: float, x1: float, y0: float, y1: float, digits: int | None = None) -> float:
    """Linear from (x0, y0) to (x1, y1), clamped outside [x0, x1]."""
    t = min(max((x - x0) / (x1 - x0), 0.0), 1.0)
    y = y0 + t * (y1 - y0)
    return round(y, digits) if digits is not None else y


def prototypes_for(n_images: int) -> int:
    for limit, k in PROTOTYPE_BUCKETS:
        if n_images < limit:
            return k
    return 65536


def teacher_temp_for(n_images: int) -> float:
    return interpolate(n_images, SMALL_DATA, IMAGENET_SIZE, 0.02, 0.07, 2)


def teacher_temp_start_for(end: float) -> float:
    return min(end, interpolate(end, 0.02, 0.07, 0.02, 0.04, 2))


def momentum_start_for(n_images: int) -> float:
    return interpolate(n_images, SMALL_DATA, IMAGENET_SIZE, 0.99, 0.996, 3)


def scaled_lr(base_lr: float, global_batch: int, reference: int, rule: str) -> float:
    if rule == "sqrt":
        return base_lr * math.sqrt(global_batch / reference)
    if rule == "linear":
        return base_lr * global_batch / reference
    return base_lr


def teacher_temp_warmup_fraction(run_epochs: float) -> float:
    """30% of the run, at most 30 passes over the data."""
    if run_epochs <= 0:
        return 0.3
    return min(0.3, 30.0 / run_epochs)


def backbone_warmup_fraction(run_epochs: float) -> float:
    """A fresh head's warm-up: one pass over the data or 10% of the run, whichever is shorter."""
    if run_epochs <= 0:
        return 0.1
    return min(0.1, 1.0 / run_epochs)
