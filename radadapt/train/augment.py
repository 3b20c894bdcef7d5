"""Multi-crop augmentation for grayscale chest radiographs (DINOv2 ``DataAugmentationDINO``, adapted).

What DINOv2 does, and what radadapt keeps (docs/training.md "Augmentations" explains each choice):

- Geometry, kept: ``n_global`` crops (RandomResizedCrop, scale 0.32-1.0, bicubic, antialiased) and ``n_local``
  smaller crops (scale 0.05-0.32); aspect ratio 3/4-4/3 as torchvision's default.
- Horizontal flip, OFF by default (``hflip = 0``): a chest film has a laterality (heart on the left, side markers,
  lines entering from one side); a mirrored film is a different, rarer anatomy (situs inversus), not the same
  image. Set ``hflip = 0.5`` to restore DINOv2's behaviour.
- Colour jitter becomes intensity jitter: brightness and contrast (0.4 each, applied with p 0.8 in random order,
  as ColorJitter does), plus a random gamma (log-uniform in ``gamma``) standing in for the different VOI/LUT
  curves of vendors. Saturation, hue and random grayscale are meaningless on one channel and are dropped.
- Gaussian blur as DINOv2 (kernel 9, sigma 0.1-2.0; p 1.0 on global crop 1, 0.1 on global crop 2, 0.5 on local).
- Solarisation, OFF: inverting bright pixels makes bone dark, which no radiograph shows.

Crops are made on the single uint8 channel (a third of the work of RGB) and returned as uint8 tensors
[n, 1, S, S]; the objective normalises them on the device and repeats the channel three times, exactly as the
model's own preprocessing feeds a grayscale image. Every random draw comes from the ``rng`` passed in, so a
sample's crops depend only on its seed (resume and multi-GPU runs reproduce them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CropSpec:
    count: int
    size: int
    scale: tuple[float, float]


@dataclass(frozen=True)
class IntensitySpec:
    hflip: float = 0.0
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    gamma: tuple[float, float] = (0.7, 1.4)
    blur_global: tuple[float, ...] = (1.0, 0.1)  # per global crop; the last value repeats for further crops
    blur_local: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    blur_kernel: int = 9


def resized_crop_box(rng: np.random.Generator, height: int, width: int, scale: tuple[float, float],
                     ratio: tuple[float, float] = (3 / 4, 4 / 3)) -> tuple[int, int, int, int]:
    """(top, left, h, w) as torchvision ``RandomResizedCrop.get_params`` draws it, from ``rng``."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
    in_ratio = width / height  # fallback: the central crop of the allowed aspect ratio
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


class MultiCrop:
    """image (H, W) uint8 -> {"global": uint8 [n_g, 1, G, G], "local": uint8 [n_l, 1, L, L]}."""

    def __init__(self, global_crops: CropSpec, local_crops: CropSpec, intensity: IntensitySpec = IntensitySpec()):
        self.global_crops = global_crops
        self.local_crops = local_crops
        self.intensity = intensity

    def __call__(self, image: np.ndarray, rng: np.random.Generator, key: str | None = None) -> dict[str, torch.Tensor]:
        img = torch.from_numpy(np.ascontiguousarray(image)).unsqueeze(0)  # [1, H, W] uint8
        g = self.global_crops
        blur = self.intensity.blur_global
        globals_ = [self._crop(img, rng, g.size, g.scale, blur[min(i, len(blur) - 1)]) for i in range(g.count)]
        lc = self.local_crops
        locals_ = [self._crop(img, rng, lc.size, lc.scale, self.intensity.blur_local) for _ in range(lc.count)]
        out = {"global": torch.stack(globals_)}
        out["local"] = torch.stack(locals_) if locals_ else torch.zeros(0, 1, lc.size, lc.size, dtype=torch.uint8)
        return out

    def _crop(self, img: torch.Tensor, rng: np.random.Generator, size: int, scale: tuple[float, float],
              blur_p: float) -> torch.Tensor:
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as TF

        spec = self.intensity
        top, left, h, w = resized_crop_box(rng, img.shape[-2], img.shape[-1], scale)
        crop = TF.resized_crop(img, top, left, h, w, [size, size], interpolation=InterpolationMode.BICUBIC,
                               antialias=True)[0].numpy()
        if spec.hflip > 0 and rng.uniform() < spec.hflip:
            crop = crop[:, ::-1]
        x = crop.astype(np.float32)
        if rng.uniform() < spec.jitter_p:
            x = self._jitter_lut(crop, rng)[crop]
        if blur_p > 0 and rng.uniform() < blur_p:
            x = gaussian_blur(x, float(rng.uniform(*spec.blur_sigma)), spec.blur_kernel)
        return torch.from_numpy(np.clip(np.rint(x), 0, 255).astype(np.uint8)).unsqueeze(0)

    def _jitter_lut(self, crop: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Brightness, contrast and gamma in random order (as ColorJitter), composed into one 256-entry
        lookup table: they are point operations, and the mean grey level contrast needs follows exactly from
        the crop's histogram. One table lookup replaces three passes over the pixels."""
        spec = self.intensity
        hist = np.bincount(crop.reshape(-1), minlength=256).astype(np.float64)
        lut = np.arange(256, dtype=np.float64)
        for op in rng.permutation(3):
            if op == 0 and spec.brightness > 0:
                lut = adjust_brightness(lut, rng.uniform(1 - spec.brightness, 1 + spec.brightness))
            elif op == 1 and spec.contrast > 0:
                factor = rng.uniform(1 - spec.contrast, 1 + spec.contrast)
                lut = adjust_contrast(lut, factor, mean=float(hist @ lut) / hist.sum())
            elif op == 2 and spec.gamma[0] != spec.gamma[1]:
                lut = adjust_gamma(lut, math.exp(rng.uniform(math.log(spec.gamma[0]), math.log(spec.gamma[1]))))
        return lut.astype(np.float32)


# Intensity operations on float32 images in [0, 255], each clamping to that range like torchvision's uint8 ops.
def adjust_brightness(x: np.ndarray, factor: float) -> np.ndarray:
    return np.clip(x * factor, 0, 255)


def adjust_contrast(x: np.ndarray, factor: float, mean: float | None = None) -> np.ndarray:
    """Blend with the image's mean grey level (torchvision ``adjust_contrast`` on one channel)."""
    mean = float(x.mean()) if mean is None else mean
    return np.clip(mean + (x - mean) * factor, 0, 255)


def adjust_gamma(x: np.ndarray, gamma: float) -> np.ndarray:
    return 255.0 * np.power(x / 255.0, gamma)


def gaussian_blur(x: np.ndarray, sigma: float, kernel: int = 9) -> np.ndarray:
    """Separable Gaussian blur, kernel ``kernel`` and mirror padding: the same numbers as torchvision's
    ``gaussian_blur`` (tested), several times faster on one channel."""
    from scipy import ndimage

    r = kernel // 2
    taps = np.exp(-0.5 * ((np.arange(kernel) - r) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    x = ndimage.correlate1d(x, taps, axis=0, mode="mirror")
    return ndimage.correlate1d(x, taps, axis=1, mode="mirror")
