"""Objectives by model family: the only place the trainer learns which family it trains.

Each entry names a module exposing ``build_objective(weights, train_cfg, *, n_images, global_batch,
steps_per_epoch) -> Objective`` (see ``base.py``). Adding a family is one module and one line here.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from radadapt.errors import UsageError

if TYPE_CHECKING:
    from radadapt.config import TrainSection
    from radadapt.train.objectives.base import Objective

_OBJECTIVES = {"rad_dino": "radadapt.train.objectives.dino", "mi2": "radadapt.train.objectives.unicl"}


def require(family: str) -> None:
    """Fail early, with the reason, when ``family`` cannot be trained by this version."""
    _module(family)


def _module(family: str):  # noqa: ANN202
    if family not in _OBJECTIVES:
        raise UsageError("train.unknown_family", f"no training objective for model family '{family}'")
    try:
        return import_module(_OBJECTIVES[family])
    except ModuleNotFoundError as exc:
        if exc.name != _OBJECTIVES[family]:
            raise
        raise UsageError(
            "train.objective_unavailable",
            f"training the '{family}' family is not available in this radadapt version yet",
            hint="train RAD-DINO with `--model rad-dino`; MI2 (UniCL) continual pretraining is tracked in issue 6",
        ) from None


def build_objective(family: str, weights: Path, train_cfg: "TrainSection", *, n_images: int, global_batch: int,
                    steps_per_epoch: float) -> "Objective":
    return _module(family).build_objective(weights, train_cfg, n_images=n_images, global_batch=global_batch,
                                           steps_per_epoch=steps_per_epoch)
