"""The DINO self-distillation loss on [CLS] tokens (Caron et al. 2021; Oquab et al. 2023, DINOv2 §3).

Cross-entropy between the teacher's sharpened, centred distribution and the student's:
``-sum_k P_t[k] * log softmax(s / tau_s)[k]``, with ``P_t = softmax((t - c) / tau_t)`` (centring) or the
Sinkhorn-Knopp assignment of ``t / tau_t`` (SwAV-style, DINOv2 §3 "Sinkhorn-Knopp centering").

The centre ``c`` is a registered buffer (saved with the module). Its update follows DINOv2's
``DINOLoss.update_center``: an EMA with momentum 0.9 of the mean teacher logit over the batch on all ranks.
radadapt accumulates the batch statistics over every micro-batch of an optimizer step and applies the update
once in ``update_center()`` after the step, so a step of K micro-batches moves the centre exactly as one step
on the whole effective batch would (docs/training.md "Gradient accumulation"). Collectives only run when
``torch.distributed`` is initialised, so the loss works on one CPU.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(t)
    return t


@torch.no_grad()
def sinkhorn_knopp(logits: torch.Tensor, temperature: float, n_iterations: int = 3,
                   n_samples: torch.Tensor | int | None = None) -> torch.Tensor:
    """Sinkhorn-Knopp assignment (DINOv2 ``sinkhorn_knopp_teacher``): rows of the result are samples, each a
    distribution over prototypes, with every prototype receiving about the same total mass over the batch.

    ``logits`` [B, K] are this rank's; sums run over all ranks. ``n_samples`` is the global number of samples
    (default: ``B`` times the world size; the iBOT loss passes the all-reduced count of masked tokens).
    """
    q = torch.exp(logits.float() / temperature).t()  # K x B, as in the paper's notation
    k = q.shape[0]
    if n_samples is None:
        world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
        b = float(q.shape[1] * world)
    else:
        b = float(n_samples)
    q /= _all_reduce(q.sum())
    for _ in range(n_iterations):
        q /= _all_reduce(q.sum(dim=1, keepdim=True))  # each prototype: total mass 1/K
        q /= k
        q /= q.sum(dim=0, keepdim=True)  # each sample: total mass 1/B
        q /= b
    q *= b  # columns sum to 1: an assignment per sample
    return q.t()


def cross_entropy(teacher_probs: torch.Tensor, student_logits: torch.Tensor, student_temp: float) -> torch.Tensor:
    """Per-row ``-sum_k t_k log softmax(s / tau_s)_k`` in float32."""
    return -(teacher_probs.float() * F.log_softmax(student_logits.float() / student_temp, dim=-1)).sum(dim=-1)


class TeacherCentring(nn.Module):
    """Teacher targets shared by the DINO and iBOT losses: centring (EMA buffer ``center``) or Sinkhorn-Knopp.

    Centre statistics of one optimizer step (all its micro-batches, all ranks) are summed in non-persistent
    buffers and applied once by ``update_center()``; a checkpoint is taken between steps, when they are empty.
    """

    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "centering", sinkhorn_iterations: int = 3):
        super().__init__()
        if centering not in ("centering", "sinkhorn_knopp"):
            raise ValueError(f"unknown centering {centering!r}")
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.centering = centering
        self.sinkhorn_iterations = sinkhorn_iterations
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("_sum", torch.zeros(1, out_dim), persistent=False)
        self.register_buffer("_count", torch.zeros(()), persistent=False)

    @torch.no_grad()
    def _targets(self, teacher_logits: torch.Tensor, teacher_temp: float,
                 n_samples: torch.Tensor | int | None = None) -> torch.Tensor:
        t = teacher_logits.float()
        if self.centering == "sinkhorn_knopp":
            return sinkhorn_knopp(t, teacher_temp, self.sinkhorn_iterations, n_samples=n_samples)
        self._sum += t.sum(dim=0, keepdim=True)
        self._count += t.shape[0]
        return F.softmax((t - self.center) / teacher_temp, dim=-1)

    @torch.no_grad()
    def update_center(self) -> None:
        """Apply the step's centre update (once per optimizer step, after all micro-batches)."""
        if self.centering != "centering":
            return
        stats = torch.cat([self._sum.flatten(), self._count.reshape(1)])
        _all_reduce(stats)
        count = float(stats[-1])
        if count > 0:
            batch_center = stats[:-1].reshape(1, -1) / count
            self.center.mul_(self.center_momentum).add_(batch_center, alpha=1 - self.center_momentum)
        self.reset_statistics()

    @torch.no_grad()
    def reset_statistics(self) -> None:
        self._sum.zero_()
        self._count.zero_()


class DINOLoss(TeacherCentring):
    """DINO [CLS] loss with teacher centring (buffer ``center``) or Sinkhorn-Knopp."""

    @torch.no_grad()
    def teacher_probs(self, teacher_logits: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """Teacher targets [N, K] from raw teacher head outputs [N, K]; records centre statistics."""
        return self._targets(teacher_logits, teacher_temp)

    def forward(self, student_logits: list[torch.Tensor], teacher_probs: list[torch.Tensor]) -> torch.Tensor:
        """Sum over every (student chunk, teacher chunk) pair of the batch-mean cross-entropy (DINOv2 form; the
        caller divides by the number of pairs and skips same-view pairs)."""
        total = student_logits[0].new_zeros((), dtype=torch.float32)
        for s in student_logits:
            for t in teacher_probs:
                total = total + cross_entropy(t, s, self.student_temp).mean()
        return total
