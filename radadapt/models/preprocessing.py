"""A model's own input pipeline, read from (and written as) a transformers ``preprocessor_config.json``.

``ImagePreprocessing`` reproduces transformers' torchvision image processors (``BitImageProcessor`` for RAD-DINO
and DINOv2, the default backend of ``AutoImageProcessor`` since transformers 5) on single-channel store images:
resize (shortest edge, or to a fixed height x width) on the uint8 image with torchvision's antialiased
interpolation, centre crop (zero-padding a crop larger than the image, as transformers does), then rescale and
normalise per channel, the grey channel replicated to three. Resizing one grey channel and replicating it equals
resizing the RGB copy, at a third of the cost. A test compares it pixel for pixel with ``AutoImageProcessor``.

RAD-DINO's processor (research note rad_dino.md §1): shortest edge 518, centre crop 518, bicubic, rescale 1/255,
mean 0.5307 and std 0.2583 on all three channels (MIMIC-CXR statistics).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from radadapt.errors import DataError, ModelError

if TYPE_CHECKING:
    import torch

RAD_DINO_MEAN = 0.5307
RAD_DINO_STD = 0.2583
# PIL resampling codes (what preprocessor_config.json stores) -> torchvision interpolation names.
_RESAMPLE = {0: "nearest", 2: "bilinear", 3: "bicubic"}


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize, centre crop, rescale, normalise. Exactly one of ``shortest_edge`` / ``resize_hw`` when resizing."""

    shortest_edge: int | None = 518
    resize_hw: tuple[int, int] | None = None
    crop_hw: tuple[int, int] | None = (518, 518)
    resample: int = 3  # PIL code: bicubic
    rescale_factor: float = 1 / 255
    mean: tuple[float, float, float] = (RAD_DINO_MEAN,) * 3
    std: tuple[float, float, float] = (RAD_DINO_STD,) * 3
    processor_type: str = "BitImageProcessor"

    @property
    def input_size(self) -> int:
        """The side of the square network input (crop, else resize)."""
        hw = self.crop_hw or self.resize_hw or (self.shortest_edge, self.shortest_edge)
        return int(hw[0])

    @classmethod
    def square(cls, size: int, mean: float | Sequence[float] = RAD_DINO_MEAN,
               std: float | Sequence[float] = RAD_DINO_STD) -> "ImagePreprocessing":
        """Shortest edge to ``size`` then centre crop ``size`` x ``size`` (RAD-DINO's scheme at any size)."""
        return cls(shortest_edge=size, crop_hw=(size, size), mean=_triple(mean), std=_triple(std))

    @classmethod
    def from_processor_config(cls, cfg: Mapping[str, Any], *, what: str = "preprocessor_config.json") -> "ImagePreprocessing":
        """Parse a transformers image-processor config (Bit/ViT/CLIP style keys)."""
        try:
            size = cfg.get("size") or {}
            if isinstance(size, int):  # old configs store an int: the shortest edge
                size = {"shortest_edge": size}
            shortest, hw = None, None
            if cfg.get("do_resize", True):
                if "shortest_edge" in size:
                    shortest = int(size["shortest_edge"])
                elif "height" in size and "width" in size:
                    hw = (int(size["height"]), int(size["width"]))
                else:
                    raise ValueError("size")
            crop = None
            if cfg.get("do_center_crop", False):
                c = cfg.get("crop_size") or {}
                c = {"height": c, "width": c} if isinstance(c, int) else c
                crop = (int(c["height"]), int(c["width"]))
            resample = int(cfg.get("resample", 3))
            if resample not in _RESAMPLE:
                raise ValueError("resample")
            rescale = float(cfg.get("rescale_factor", 1 / 255)) if cfg.get("do_rescale", True) else 1.0
            if cfg.get("do_normalize", True):
                mean, std = _triple(cfg.get("image_mean", 0.0)), _triple(cfg.get("image_std", 1.0))
            else:
                mean, std = (0.0,) * 3, (1.0,) * 3
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(
                "models.bad_preprocessor",
                f"{what}: unsupported or malformed setting ({exc.args[0] if exc.args else type(exc).__name__})",
                hint="radadapt supports resize (shortest_edge or height/width), centre crop, rescale and normalise",
            ) from None
        return cls(shortest, hw, crop, resample, rescale, mean, std, str(cfg.get("image_processor_type", "")))

    def to_processor_config(self) -> dict[str, Any]:
        """A ``preprocessor_config.json`` that ``AutoImageProcessor.from_pretrained`` loads as this pipeline."""
        size = {"shortest_edge": self.shortest_edge} if self.shortest_edge else (
            {"height": self.resize_hw[0], "width": self.resize_hw[1]} if self.resize_hw else {})
        cfg = {
            "image_processor_type": self.processor_type or "BitImageProcessor",
            "do_resize": bool(size),
            "size": size,
            "resample": self.resample,
            "do_center_crop": self.crop_hw is not None,
            "do_rescale": True,
            "rescale_factor": self.rescale_factor,
            "do_normalize": True,
            "image_mean": list(self.mean),
            "image_std": list(self.std),
            "do_convert_rgb": True,
        }
        if self.crop_hw is not None:
            cfg["crop_size"] = {"height": self.crop_hw[0], "width": self.crop_hw[1]}
        return cfg

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["resample"] = _RESAMPLE[self.resample]
        return d

    def __call__(self, images: Sequence[np.ndarray]) -> "torch.Tensor":
        """uint8 (H, W) images -> float32 [B, 3, S, S], normalised (on CPU)."""
        import torch

        out = [self._one(img) for img in images]
        if not out:
            raise DataError("models.bad_image", "no images to preprocess")
        if len({tuple(t.shape) for t in out}) > 1:
            raise DataError("models.bad_image", "images differ in size after preprocessing (no centre crop set)")
        return torch.stack(out)

    def _one(self, img: np.ndarray) -> "torch.Tensor":
        import torch
        from torchvision.transforms.v2 import functional as tvF

        a = np.asarray(img)
        if a.ndim == 3 and a.shape[-1] == 1:
            a = a[..., 0]
        if a.ndim != 2 or a.dtype != np.uint8 or min(a.shape) < 1:
            raise DataError("models.bad_image", f"expected a uint8 grey image (H, W), got {a.dtype} {a.shape}")
        x = torch.from_numpy(np.ascontiguousarray(a))[None]
        h, w = a.shape
        if self.shortest_edge:
            short, long = (w, h) if w <= h else (h, w)
            new_long = int(self.shortest_edge * long / short)  # transformers truncates, like torchvision
            size = [new_long, self.shortest_edge] if w <= h else [self.shortest_edge, new_long]
        else:
            size = list(self.resize_hw) if self.resize_hw else None
        if size is not None and tuple(size) != (h, w):
            x = tvF.resize(x, size, interpolation=tvF.InterpolationMode(_RESAMPLE[self.resample]), antialias=True)
        if self.crop_hw is not None:
            x = _center_crop(x, self.crop_hw)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        # transformers fuses rescale into normalise: (x - mean/r) / (std/r); same arithmetic, same float result.
        return (x.to(torch.float32) - mean / self.rescale_factor) / (std / self.rescale_factor)


def _center_crop(x: "torch.Tensor", hw: tuple[int, int]) -> "torch.Tensor":
    from torchvision.transforms.v2 import functional as tvF

    ch, cw = hw
    h, w = x.shape[-2:]
    if ch > h or cw > w:  # pad symmetrically (extra pixel right/bottom), as transformers does
        pad = [max(cw - w, 0) // 2, max(ch - h, 0) // 2, (max(cw - w, 0) + 1) // 2, (max(ch - h, 0) + 1) // 2]
        x = tvF.pad(x, pad, fill=0)
        h, w = x.shape[-2:]
    top, left = int((h - ch) / 2.0), int((w - cw) / 2.0)
    return x[..., top : top + ch, left : left + cw]


def _triple(v: float | Sequence[float]) -> tuple[float, float, float]:
    if isinstance(v, (int, float)):
        return (float(v),) * 3
    vals = [float(x) for x in v]
    if len(vals) == 1:
        vals *= 3
    if len(vals) != 3:
        raise ValueError("image_mean/image_std need 1 or 3 values")
    return (vals[0], vals[1], vals[2])
