"""Process-group set-up from the torchrun environment, and the few collectives the trainer needs.

``radadapt train`` runs single-process by default; under ``torchrun --nproc-per-node N radadapt train ...`` the
variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` are set and the trainer
joins a process group: NCCL on GPUs, gloo on CPU (used by the two-process CPU test). Only rank 0 writes to the
run directory. Every helper degrades to a no-op when no group is initialised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from radadapt.errors import UsageError


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialised_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device_type: str) -> DistEnv:
    """Join the process group torchrun describes (if any). Returns the rank layout."""
    if is_initialized():
        return DistEnv(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    world = env_world_size()
    if world <= 1:
        return DistEnv()
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise UsageError(
            "train.distributed_env",
            f"WORLD_SIZE={world} but {', '.join(missing)} is not set",
            hint="launch multi-process training with `torchrun --nproc-per-node N radadapt train ...`",
        )
    backend = "nccl" if device_type == "cuda" else "gloo"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend)
    return DistEnv(dist.get_rank(), dist.get_world_size(), local_rank, initialised_here=True)


def shutdown(env: DistEnv) -> None:
    if env.initialised_here and is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if is_initialized():
        dist.all_reduce(t)
    return t


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if is_initialized():
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def all_reduce_max(value: float) -> float:
    if not is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def broadcast_object(obj):  # noqa: ANN001, ANN201 - any picklable-free JSON-like value
    """Rank 0's ``obj`` on every rank (used for small JSON-like values such as the planned step count)."""
    if not is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _GatherWithGrad(torch.autograd.Function):
    """All-gather whose backward sums every rank's gradient for each slice and hands a rank its own slice.

    Implemented with all_gather + all_reduce (both on gloo and NCCL), not reduce_scatter, which gloo lacks.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        world = dist.get_world_size()
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: ANN001
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def gather_with_grad(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """``x`` from every rank, concatenated in rank order, with gradients flowing back to the owners; returns
    the concatenation and the offset of this rank's rows. Assumes equal sizes on every rank (fixed batches)."""
    if not is_initialized() or dist.get_world_size() == 1:
        return x, 0
    return _GatherWithGrad.apply(x), dist.get_rank() * x.shape[0]
