"""Atomic, pickle-free training checkpoints (docs/architecture.md §5, docs/training.md "Checkpoints").

::

    RUN/checkpoints/
      step_00001200/
        model.safetensors   the objective's state dict (student, teacher, loss centres): safetensors
        optimizer.pt        {"optimizer": ..., "scaler": ...}: tensors and plain values only, read back with
                            torch.load(weights_only=True), which refuses anything that would need unpickling code
        rng_rank<R>.pt      torch CPU (and CUDA) generator state of rank R (drop path draws), weights_only too
        state.json          step, planned steps, images seen, elapsed time, guard state, stream layout
      latest.json           {"step": 1200, "dir": "step_00001200"}, replaced atomically once the folder is complete

A checkpoint folder is written under a temporary name, every file fsync'ed, then renamed into place; only then
does ``latest.json`` move to it. A kill at any moment leaves the previous checkpoint intact and named by
``latest.json``. The newest ``keep`` folders are kept, so a damaged disk block costs at most one interval.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radadapt import atomic
from radadapt.errors import DataError

LATEST = "latest.json"
FORMAT = 1


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    step: int
    state: dict[str, Any]


def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def begin(ckpt_root: Path, step: int) -> Path:
    """Create (or empty) the temporary folder for the checkpoint at ``step``; rank 0 calls this."""
    tmp = ckpt_root / f".tmp-{step_dir_name(step)}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def write_tensors(folder: Path, name: str, tensors: dict) -> None:
    from safetensors.torch import save

    plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic.write_bytes(folder / name, save(plain))


def write_torch(folder: Path, name: str, obj: Any) -> None:
    """A torch.save file holding only tensors and plain containers (checked on the way back in)."""
    import torch

    with atomic.atomic_open(folder / name, "wb") as fh:
        torch.save(obj, fh)


def finish(ckpt_root: Path, tmp: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write state.json, move the folder into place, point latest.json at it, prune old checkpoints."""
    atomic.write_json(tmp / "state.json", {"format": FORMAT, **state, "step": step})
    final = ckpt_root / step_dir_name(step)
    if final.exists():  # re-checkpointing the same step (e.g. a resume that stopped at once)
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic._fsync_dir(ckpt_root)  # noqa: SLF001 - same package's durability helper
    atomic.write_json(ckpt_root / LATEST, {"step": step, "dir": final.name})
    prune(ckpt_root, keep)
    return final


def prune(ckpt_root: Path, keep: int) -> None:
    """Remove all but the newest ``keep`` complete checkpoints, and any half-written temporary folder."""
    latest = read_latest_name(ckpt_root)
    done = sorted(p for p in ckpt_root.glob("step_*") if p.is_dir())
    for old in done[: max(0, len(done) - keep)]:
        if old.name != latest:
            shutil.rmtree(old, ignore_errors=True)
    for tmp in ckpt_root.glob(".tmp-step_*"):
        shutil.rmtree(tmp, ignore_errors=True)


def read_latest_name(ckpt_root: Path) -> str | None:
    try:
        return json.loads((ckpt_root / LATEST).read_text(encoding="utf-8"))["dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def latest(ckpt_root: Path) -> Checkpoint | None:
    """The checkpoint ``latest.json`` names, or None when the run has none yet."""
    name = read_latest_name(ckpt_root)
    if name is None:
        return None
    folder = ckpt_root / name
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DataError(
            "train.bad_checkpoint",
            f"checkpoint {folder.name} named by {LATEST} is missing or damaged",
            hint="restore the run directory from backup, or start a new run",
        ) from None
    if state.get("format", 0) > FORMAT:
        raise DataError("train.checkpoint_too_new", f"checkpoint {folder.name} was written by a newer radadapt",
                        hint="upgrade radadapt")
    return Checkpoint(folder, int(state["step"]), state)


def read_tensors(folder: Path, name: str, device: str = "cpu") -> dict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(folder / name), device=device)
    except (OSError, SafetensorError, ValueError):
        raise DataError("train.bad_checkpoint", f"{folder.name}/{name} is missing or damaged",
                        hint="restore the run directory from backup, or start a new run") from None


def read_torch(folder: Path, name: str, device: str = "cpu") -> Any:
    import pickle

    import torch

    try:
        return torch.load(folder / name, map_location=device, weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError):
        raise DataError("train.bad_checkpoint", f"{folder.name}/{name} is missing, damaged or not plain tensor data",
                        hint="restore the run directory from backup, or start a new run") from None
