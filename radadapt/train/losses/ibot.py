"""The iBOT masked-patch loss (Zhou et al. 2022, iBOT; DINOv2 §3 "Patch-level objective").

For each masked patch of a student global crop, the student's head output is pulled towards the teacher's
(centred, sharpened) head output for the same, unmasked patch. DINOv2's ``iBOTPatchLoss.forward_masked``
weights every masked token by ``1 / (number of masked tokens in its image)`` and divides the sum by the number
of global crops in the batch, masked or not: each image counts once, whatever its mask ratio.

The patch centre (buffer ``center``) is an EMA (0.9) of the mean teacher output over the masked tokens,
updated once per optimizer step from statistics gathered over all micro-batches and ranks (see losses/dino.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from radadapt.train.losses.dino import _all_reduce, cross_entropy, sinkhorn_knopp


def mask_weights(masks: torch.Tensor) -> torch.Tensor:
    """Weights of the masked tokens, in ``masks[masks]`` order: 1 / (masked tokens of the same image)."""
    per_image = 1.0 / masks.sum(dim=-1).clamp(min=1).float()
    return per_image.unsqueeze(-1).expand_as(masks)[masks]


class iBOTPatchLoss(nn.Module):  # noqa: N801 - the paper's name
    def __init__(self, out_dim: int, student_temp: float = 0.1, center_momentum: float = 0.9,
                 centering: str = "centering", sinkhorn_iterations: int = 3):
        super().__init__()
        self.out_dim = out_dim
        self.student_temp = student_temp
        self.center_momentum = center_momentum
        self.centering = centering
        self.sinkhorn_iterations = sinkhorn_iterations
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.register_buffer("_sum", torch.zeros(1, out_dim), persistent=False)
        self.register_buffer("_count", torch.zeros(()), persistent=False)

    @torch.no_grad()
    def teacher_probs(self, teacher_logits: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """Targets [M, K] for the M masked tokens of this rank (teacher outputs at the masked positions)."""
        t = teacher_logits.float()
        if self.centering == "sinkhorn_knopp":
            n = torch.tensor(float(t.shape[0]), device=t.device)
            return sinkhorn_knopp(t, teacher_temp, self.sinkhorn_iterations, n_samples=_all_reduce(n))
        self._sum += t.sum(dim=0, keepdim=True)
        self._count += t.shape[0]
        return F.softmax((t - self.center) / teacher_temp, dim=-1)

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor, masks: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """``student_logits`` and ``teacher_probs`` [M, K] at ``masks[masks]`` positions; ``masks`` [n, N] bool
        over all n global crops of the batch; ``weights`` = ``mask_weights(masks)`` if precomputed.
        Returns ``(1/n) sum_masked w * CE``."""
        ce = cross_entropy(teacher_probs, student_logits, self.student_temp)
        w = mask_weights(masks) if weights is None else weights
        return (ce * w).sum() / max(masks.shape[0], 1)

    @torch.no_grad()
    def update_center(self) -> None:
        if self.centering != "centering":
            return
        stats = torch.cat([self._sum.flatten(), self._count.reshape(1)])
        _all_reduce(stats)
        count = float(stats[-1])
        if count > 0:
            self.center.mul_(self.center_momentum).add_(stats[:-1].reshape(1, -1) / count,
                                                        alpha=1 - self.center_momentum)
        self.reset_statistics()

    @torch.no_grad()
    def reset_statistics(self) -> None:
        self._sum.zero_()
        self._count.zero_()

