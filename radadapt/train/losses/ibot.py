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
from radadapt.train.losses.dino import TeacherCentring, _all_reduce, cross_entropy


def mask_weights(masks: torch.Tensor) -> torch.Tensor:
    """Weights of the masked tokens, in ``masks[masks]`` order: 1 / (masked tokens of the same image)."""
    per_image = 1.0 / masks.sum(dim=-1).clamp(min=1).float()
    return per_image.unsqueeze(-1).expand_as(masks)[masks]


class iBOTPatchLoss(TeacherCentring):  # noqa: N801 - the paper's name
    @torch.no_grad()
    def teacher_probs(self, teacher_logits: torch.Tensor, teacher_temp: float) -> torch.Tensor:
        """Targets [M, K] for the M masked tokens of this rank (teacher outputs at the masked positions)."""
        n_samples = None
        if self.centering == "sinkhorn_knopp":  # masked-token counts differ by rank: the global count
            n_samples = _all_reduce(torch.tensor(float(teacher_logits.shape[0]), device=teacher_logits.device))
        return self._targets(teacher_logits, teacher_temp, n_samples)

    def forward(self, student_logits: torch.Tensor, teacher_probs: torch.Tensor, masks: torch.Tensor,
                weights: torch.Tensor | None = None) -> torch.Tensor:
        """``student_logits`` and ``teacher_probs`` [M, K] at ``masks[masks]`` positions; ``masks`` [n, N] bool
        over all n global crops of the batch; ``weights`` = ``mask_weights(masks)`` if precomputed.
        Returns ``(1/n) sum_masked w * CE``."""
        ce = cross_entropy(teacher_probs, student_logits, self.student_temp)
        w = mask_weights(masks) if weights is None else weights
        return (ce * w).sum() / max(masks.shape[0], 1)
