"""The UniCL loss (Yang et al., CVPR 2022, "Unified Contrastive Learning in Image-Text-Label Space", §3.1-3.2).

A batch holds image embeddings ``u_i``, text embeddings ``v_j`` (both L2-normalised) and one label ``y_i`` per
pair. The logits are ``s_ij = T u_i . v_j`` with T = exp(learnable scalar). Targets come from label equality, by
the rule Microsoft's own trainer applies (research note mi2_unicl.md §6):

- ``y > 0``: a class id; pairs with equal ids are positives of each other (image-label data);
- ``y = 0``: a caption; it gets a fresh id of its own (max positive id + 1, + 2, ...), so it is positive only
  with its own pair (image-text data: exactly CLIP);
- ``y < 0``: ignored; the pair is removed from the batch (rows and columns), not used as a negative.

With ``M_ab = 1`` iff the (re-numbered) labels of a and b are equal, the image-to-text loss is, per row,
``-sum_b M_ab log softmax_b(s_a.) / sum_b M_ab`` (soft cross-entropy normalised by the number of positives),
averaged over rows; text-to-image is the same on the transposed logits; the loss is the mean of the two
directions. All labels distinct gives CLIP's InfoNCE; only class labels gives the cross-modal SupCon form.

The contrastive batch is the global one: ``gather`` (an argument, never a global) returns every rank's rows with
gradients flowing back to their owner (``radadapt.train.distributed.gather_with_grad``); labels travel through
the same function without gradients. Everything is computed in float32 outside autocast.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Gather = Callable[[torch.Tensor], tuple[torch.Tensor, int]]


def unicl_targets(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(kept, M): the boolean mask of pairs that take part (``labels >= 0``) and the float target matrix over
    them, ``M_ab = 1`` iff their labels are equal after every caption (0) got a fresh id."""
    kept = labels >= 0
    y = labels[kept].to(torch.int64).clone()
    captions = y == 0
    n_captions = int(captions.sum())
    if n_captions:
        start = int(y.max().clamp_min(0)) + 1
        y[captions] = torch.arange(start, start + n_captions, device=y.device)
    return kept, (y[:, None] == y[None, :]).float()


def _f32(x: torch.Tensor) -> torch.Tensor:
    return x if x.dtype == torch.float64 else x.float()  # float64 stays (gradient checks), 16-bit goes to 32


def _soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ``-sum_b t_ab log softmax(logits_a.)_b / sum_b t_ab``."""
    logp = F.log_softmax(logits, dim=1)
    return (-(targets * logp).sum(1) / targets.sum(1)).mean()


def unicl_loss(image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor,
               labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """UniCL on one (already global) batch: {"loss", "unicl_i2t", "unicl_t2i", "i2t_acc", "t2i_acc",
    "positives"}. ``logit_scale`` is T itself (not its log). Ignored pairs contribute nothing; a batch with no
    pair left gives a zero loss that still depends on the inputs (so every rank runs the same backward)."""
    with torch.autocast(device_type=image_embeds.device.type, enabled=False):
        img, txt, scale = _f32(image_embeds), _f32(text_embeds), _f32(logit_scale)
        kept, targets = unicl_targets(labels)
        if targets.shape[0] == 0:
            zero = (img.sum() + txt.sum()) * 0.0 + scale * 0.0
            nothing = zero.detach()
            return {"loss": zero, "unicl_i2t": nothing, "unicl_t2i": nothing, "i2t_acc": nothing,
                    "t2i_acc": nothing, "positives": nothing}
        img, txt, targets = img[kept], txt[kept], targets.to(img.dtype)
        logits = scale * img @ txt.t()  # [n, n]: image a (rows) against text b (columns)
        i2t = _soft_cross_entropy(logits, targets)
        t2i = _soft_cross_entropy(logits.t(), targets.t())
        with torch.no_grad():
            rows = torch.arange(targets.shape[0], device=targets.device)
            i2t_acc = targets[rows, logits.argmax(1)].mean()  # the best-scoring text is a positive
            t2i_acc = targets.t()[rows, logits.argmax(0)].mean()
        return {"loss": 0.5 * (i2t + t2i), "unicl_i2t": i2t.detach(), "unicl_t2i": t2i.detach(),
                "i2t_acc": i2t_acc, "t2i_acc": t2i_acc, "positives": targets.sum(1).mean()}


class UniCLLoss(nn.Module):
    """UniCL over the global batch. ``gather(x) -> (x_all, offset)`` collects every rank's rows (with gradients
    for embeddings); ``None`` means one process."""

    def __init__(self, gather: Gather | None = None):
        super().__init__()
        self.gather = gather

    def forward(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor, logit_scale: torch.Tensor,
                labels: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.gather is not None:
            image_embeds, _ = self.gather(image_embeds.float().contiguous())
            text_embeds, _ = self.gather(text_embeds.float().contiguous())
            labels, _ = self.gather(labels.contiguous())
        return unicl_loss(image_embeds, text_embeds, logit_scale, labels)
