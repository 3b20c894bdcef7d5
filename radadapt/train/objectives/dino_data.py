"""Batches for the DINOv2 objective: multi-crop samples collated with their iBOT masks (DINOv2 ``collate.py``).

A batch is ``{"global": uint8 [n_g*B, 1, G, G], "local": uint8 [n_l*B, 1, L, L], "masks": bool [n_g*B, (G/p)^2],
"mask_index": int64 [M], "mask_weight": float32 [M], "positions": int64 [B]}`` (M masked tokens), crops ordered crop-major (all images' first global crop, then all second ones), as
DINOv2 collates them, which is what lets the loss pair crop i of the student with crop j != i of the teacher by
chunking. Masks are drawn per global micro-batch (see ``radadapt.train.masking``), so they are the same whether
the micro-batch is on one process or spread over several.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from radadapt.train.augment import CropSpec, IntensitySpec, MultiCrop
from radadapt.train.losses.ibot import mask_weights
from radadapt.train.masking import MaskPlan

if TYPE_CHECKING:
    from radadapt.config import DinoSection


def make_multicrop(cfg: "DinoSection") -> MultiCrop:
    a = cfg.augment
    return MultiCrop(
        CropSpec(cfg.global_crops, cfg.global_crop_size, tuple(cfg.global_crop_scale)),
        CropSpec(cfg.local_crops, cfg.local_crop_size, tuple(cfg.local_crop_scale)),
        IntensitySpec(hflip=a.hflip, jitter_p=a.jitter_p, brightness=a.brightness, contrast=a.contrast,
                      gamma=tuple(a.gamma), blur_global=tuple(a.blur_global), blur_local=a.blur_local,
                      blur_sigma=tuple(a.blur_sigma)),
    )


class DinoCollate:
    """Picklable collate function (runs in loader workers)."""

    def __init__(self, cfg: "DinoSection", grid: tuple[int, int], *, seed: int, global_micro_batch: int):
        self.n_global, self.n_local = cfg.global_crops, cfg.local_crops
        self.plan = MaskPlan(grid, probability=cfg.mask_probability, ratio=tuple(cfg.mask_ratio), seed=seed)
        self.global_micro_batch = global_micro_batch

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        b = len(samples)
        positions = np.array([s["position"] for s in samples], dtype=np.int64)
        gmb = self.global_micro_batch
        micro, offset = divmod(int(positions[0]), gmb)
        slots = np.array([i * gmb + offset + j for i in range(self.n_global) for j in range(b)], dtype=np.int64)
        masks = torch.from_numpy(self.plan.masks(micro, self.n_global * gmb, slots))
        out = {
            "global": torch.stack([s["global"][i] for i in range(self.n_global) for s in samples]),
            "masks": masks,
            "mask_index": masks.flatten().nonzero().flatten(),  # masked tokens, row-major
            "mask_weight": mask_weights(masks),  # 1 / masked tokens of the same crop (iBOT)
            "positions": torch.from_numpy(positions),
        }
        if self.n_local:
            out["local"] = torch.stack([s["local"][i] for i in range(self.n_local) for s in samples])
        else:
            size = samples[0]["local"].shape[-1]
            out["local"] = torch.zeros(0, 1, size, size, dtype=torch.uint8)
        return out


def vit_forward_flops(config, n_patches: int) -> float:  # noqa: ANN001 - a Dinov2Config
    """Matmul FLOPs of one ViT forward on ``n_patches`` + 1 tokens (2 per multiply-add; attention included).

    Per block: qkv and output projections 8nD^2, MLP 4*mlp_ratio*nD^2 (16nD^2 at ratio 4), attention scores and
    mixing 4n^2D; plus the patch projection. Reproduces timm's 151.7 GMACs for ViT-B/14 at 518 px."""
    d = int(config.hidden_size)
    n = n_patches + 1
    ratio = float(getattr(config, "mlp_ratio", 4))
    block = 8 * n * d * d + 4 * ratio * n * d * d + 4 * n * n * d
    patch = 2 * n_patches * 3 * int(config.patch_size) ** 2 * d
    return float(int(config.num_hidden_layers) * block + patch)
