"""The KoLeo regulariser (Sablayrolles et al. 2019, "Spreading vectors for similarity search"; DINOv2 §3).

``L = -1/n sum_i log(d_i)``, where ``d_i`` is the distance from the L2-normalised feature ``x_i`` to its nearest
neighbour in the batch. Computed in float32 outside autocast (DINOv2 ``KoLeoLoss``), with the same ``eps``
guarding ``log(0)`` when two images are identical (dinov2#143: duplicates make it explode).

DINOv2 finds neighbours among the images of one GPU. radadapt can search the whole global micro-batch instead
(``gather`` = an all-gather that keeps gradients, see ``radadapt.train.distributed``), which makes the loss,
and so the training run, independent of how many GPUs share the batch.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

Gather = Callable[[torch.Tensor], tuple[torch.Tensor, int]]


class KoLeoLoss(nn.Module):
    def __init__(self, eps: float = 1e-8, gather: Gather | None = None):
        super().__init__()
        self.eps = eps
        self.gather = gather  # x_local -> (x_all, offset of x_local in x_all)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        device_type = x.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            x = F.normalize(x.float(), p=2, dim=-1, eps=self.eps)
            if self.gather is not None:
                everyone, offset = self.gather(x)
            else:
                everyone, offset = x, 0
            n = x.shape[0]
            if everyone.shape[0] < 2:
                return x.new_zeros(())  # one image has no neighbour (dinov2#314): contribute nothing
            with torch.no_grad():  # the neighbour search is not differentiated, only the distances are
                dots = x @ everyone.t()
                own = torch.arange(n, device=x.device)
                dots[own, own + offset] = -2.0  # below any real cosine: never one's own neighbour
                nearest = dots.argmax(dim=1)
            distances = (x - everyone[nearest] + self.eps).norm(dim=-1)  # nn.PairwiseDistance(eps) form
            return -torch.log(distances + self.eps).mean()
