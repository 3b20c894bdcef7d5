"""MI2's training augmentation, kept where it suits chest radiographs (docs/training_mi2.md "Augmentation").

The released recipe (config.yaml ``AUG``; research note mi2_unicl.md §5) is RandomResizedCrop to the model size
(scale 0.8-1.0, ratio 0.75-1.33, bicubic), torchvision's TrivialAugmentWide, random erasing (p 0.25, area
0.02-0.33) and no flips. radadapt keeps the crop and the erasing as released and restricts TrivialAugment (one
operation drawn uniformly, its strength drawn uniformly from 31 bins, a random sign where it has one; Müller &
Hutter 2021) to operations a radiograph can show:

===============  ======================  ===================================================================
operation        radadapt range          TrivialAugmentWide range, and why it differs
===============  ======================  ===================================================================
identity         -                       same
rotate           +-15 degrees            +-135: patients are positioned within a few degrees, never upside down
shear_x/shear_y  +-0.2 (about 11 deg)    +-0.99 (45 deg): a sheared thorax changes the anatomy's proportions
translate_x/y    +-10% of the size       +-32 px
brightness       factor 1 +- 0.4         1 +- 0.99: a factor near 0 blanks the film
contrast         factor 1 +- 0.4         1 +- 0.99
sharpness        factor 1 +- 0.9         same range; vendors' edge enhancement differs this much
gamma            x 0.7-1.4 (log-scale)   (not in TA) the VOI/LUT curves of different vendors
autocontrast     -                       same
equalize         -                       same (histogram equalisation is a common display processing)
colour           dropped                 one grey channel has no saturation
posterize        dropped                 2-bit films do not exist
solarize         dropped                 inverting bright pixels makes bone dark, which no radiograph shows
flips            dropped                 laterality (heart on the left, markers, lines): also off in MI2's recipe
===============  ======================  ===================================================================

Geometric operations fill with black (collimated borders look like that) and use bilinear interpolation. Random
erasing is drawn here (torchvision ``RandomErasing.get_params``) but applied by the objective after normalisation,
where the release erases: filling with 0 in normalised space, i.e. the ImageNet mean per channel, which a single
uint8 grey channel could not hold. Every draw comes from the ``rng`` passed in (seeded per stream position).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from radadapt.train.augment import resized_crop_box

OPS = ("identity", "rotate", "shear_x", "shear_y", "translate_x", "translate_y", "brightness", "contrast",
       "sharpness", "gamma", "autocontrast", "equalize")
_BINS = 31  # TrivialAugmentWide's number of magnitude bins
_MAX = {"rotate": 15.0, "shear_x": 0.2, "shear_y": 0.2, "translate_x": 0.1, "translate_y": 0.1, "brightness": 0.4,
        "contrast": 0.4, "sharpness": 0.9, "gamma": math.log(1.4)}


@dataclass(frozen=True)
class MI2AugmentSpec:
    size: int
    scale: tuple[float, float] = (0.8, 1.0)
    ratio: tuple[float, float] = (0.75, 1.3333333)
    ops: tuple[str, ...] = OPS  # empty: no TrivialAugment
    erase_p: float = 0.25
    erase_scale: tuple[float, float] = (0.02, 0.33)
    erase_ratio: tuple[float, float] = (0.3, 3.3)


def erase_box(rng: np.random.Generator, size: int, p: float, scale: tuple[float, float],
              ratio: tuple[float, float]) -> np.ndarray:
    """(top, left, height, width) of the area to erase on a ``size`` x ``size`` crop, or zeros for none
    (torchvision ``RandomErasing.get_params``: 10 tries of area and log-uniform aspect)."""
    if p <= 0 or rng.uniform() >= p:
        return np.zeros(4, dtype=np.int32)
    area = size * size
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if 0 < h < size and 0 < w < size:
            return np.array([rng.integers(0, size - h + 1), rng.integers(0, size - w + 1), h, w], dtype=np.int32)
    return np.zeros(4, dtype=np.int32)


def apply_op(img: torch.Tensor, op: str, magnitude: float) -> torch.Tensor:
    """One operation on a uint8 [1, H, W] tensor; ``magnitude`` is signed where the operation has a sign."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    size = img.shape[-1]
    affine = {"interpolation": InterpolationMode.BILINEAR, "fill": [0.0]}
    if op == "identity":
        return img
    if op == "rotate":
        return TF.rotate(img, magnitude, interpolation=InterpolationMode.BILINEAR, fill=[0.0])
    if op in ("shear_x", "shear_y"):
        deg = math.degrees(math.atan(magnitude))
        shear = [deg, 0.0] if op == "shear_x" else [0.0, deg]
        return TF.affine(img, angle=0.0, translate=[0, 0], scale=1.0, shear=shear, center=[0, 0], **affine)
    if op in ("translate_x", "translate_y"):
        shift = int(round(magnitude * size))
        move = [shift, 0] if op == "translate_x" else [0, shift]
        return TF.affine(img, angle=0.0, translate=move, scale=1.0, shear=[0.0, 0.0], **affine)
    if op == "brightness":
        return TF.adjust_brightness(img, 1.0 + magnitude)
    if op == "contrast":
        return TF.adjust_contrast(img, 1.0 + magnitude)
    if op == "sharpness":
        return TF.adjust_sharpness(img, 1.0 + magnitude)
    if op == "gamma":
        return TF.adjust_gamma(img, math.exp(magnitude))
    if op == "autocontrast":
        return TF.autocontrast(img)
    if op == "equalize":
        return TF.equalize(img)
    raise ValueError(f"unknown augmentation operation {op!r}")


class MI2Augment:
    """image (H, W) uint8 -> {"image": uint8 [1, S, S], "erase": int32 [4] (top, left, h, w; zeros = none)}."""

    def __init__(self, spec: MI2AugmentSpec):
        unknown = [op for op in spec.ops if op not in OPS]
        if unknown:
            raise ValueError(f"unknown augmentation operation(s): {', '.join(unknown)}")
        self.spec = spec

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> dict[str, torch.Tensor]:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        s = self.spec
        img = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0)
        top, left, h, w = resized_crop_box(rng, img.shape[-2], img.shape[-1], s.scale, s.ratio)
        crop = TF.resized_crop(img, top, left, h, w, [s.size, s.size], interpolation=InterpolationMode.BICUBIC,
                               antialias=True)
        if s.ops:
            op = s.ops[int(rng.integers(len(s.ops)))]
            level = int(rng.integers(_BINS)) / (_BINS - 1)
            sign = -1.0 if rng.uniform() < 0.5 else 1.0
            crop = apply_op(crop, op, sign * level * _MAX.get(op, 0.0))
        box = erase_box(rng, s.size, s.erase_p, s.erase_scale, s.erase_ratio)
        return {"image": crop.contiguous(), "erase": torch.from_numpy(box)}


def erase_mask(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Boolean [B, 1, S, S] mask of the boxes (top, left, h, w) drawn by ``erase_box``; zeros mark none."""
    coords = torch.arange(size, device=boxes.device)
    top, left, h, w = (boxes[:, i, None] for i in range(4))
    rows = (coords >= top) & (coords < top + h)  # [B, S]
    cols = (coords >= left) & (coords < left + w)
    return (rows[:, :, None] & cols[:, None, :])[:, None]
