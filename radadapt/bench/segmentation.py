"""Segmentation probe for lines and tubes: a light head on frozen patch features, Dice and IoU.

Two heads, both trained on the probe-training split's masks with BCE + soft Dice, the epoch and the probability
threshold chosen on validation:

- ``linear``: a 1x1 convolution on the last layer's patch grid, logits upsampled bilinearly (the DINOv2 "lin."
  segmentation protocol, Oquab et al. 2023 §7.4);
- ``pyramid``: a small feature pyramid built from that one grid, ViTDet's simple feature pyramid (Li et al. 2022:
  deconvolutions to x4 and x2, identity, max-pool to x1/2), fused top-down as in FPN (Lin et al. 2017) into a
  x4 map, then a 3x3 and a 1x1 convolution. The study evaluated tube segmentation with such a decoder.

Masks are brought into each model's input geometry by the model's own preprocessing (a 0/255 mask goes through
the same resize and crop as the image), so Dice is measured in the region the model sees; for two models of one
family that region is identical. Metrics per (image, device) whose mask is non-empty: Dice, IoU, and a tolerant
Dice (precision against the mask dilated by ``tolerance`` pixels, recall of the mask against the dilated
prediction, harmonic mean), because tubes are thinner than one 14-pixel patch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from radadapt.errors import DataError

if TYPE_CHECKING:
    import torch

    from radadapt.models.encoder import Encoder

HEADS = ("linear", "pyramid")


def read_mask_index(root: Path) -> dict[str, list[tuple[str, Path]]]:
    """image_key -> [(device, png path)] from ``root/index.jsonl`` (the store's ``masks/`` format)."""
    from radadapt.manifest import MaskRecord

    index = root / "index.jsonl"
    if not index.is_file():
        raise DataError("bench.no_mask_index", f"{root} has no index.jsonl (not a radadapt mask folder)",
                        hint="pass the masks/ folder of a store, or one written in the same format")
    out: dict[str, list[tuple[str, Path]]] = {}
    with open(index, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    rec = MaskRecord.model_validate_json(line)
                except ValueError:
                    raise DataError("bench.bad_mask_index", f"{index} has a malformed row") from None
                out.setdefault(rec.image_key, []).append((rec.device, root / rec.path))
    return out


def read_mask(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L")) > 127
    except OSError:
        raise DataError("bench.bad_mask", f"a mask PNG in {path.parent} could not be read",
                        hint="regenerate the mask folder (`radadapt ingest --masks`)") from None


class InputGeometry:
    """Maps store-geometry arrays into an encoder's input geometry using the encoder's own preprocessing."""

    def __init__(self, encoder: "Encoder"):
        self.encoder = encoder
        self._ref: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def _levels(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if shape not in self._ref:
            x = self.encoder.preprocess([np.zeros(shape, np.uint8), np.full(shape, 255, np.uint8)])
            x = x[:, 0].float().cpu().numpy()
            self._ref[shape] = (x[0], x[1])
        return self._ref[shape]

    def unit(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """uint8 store images -> [n, S, S] in [0, 1] as the model sees them (same shape per call)."""
        lo, hi = self._levels(images[0].shape)
        x = self.encoder.preprocess(list(images))[:, 0].float().cpu().numpy()
        return np.clip((x - lo) / np.where(np.abs(hi - lo) > 1e-6, hi - lo, 1.0), 0.0, 1.0)

    def masks(self, masks: Sequence[np.ndarray]) -> np.ndarray:
        return self.unit([m.astype(np.uint8) * 255 for m in masks]) > 0.5


@dataclass
class SegData:
    """Grid features [n, D, h, w] (float16) and targets [n, K, S, S] (bool) of one split."""

    grids: np.ndarray
    targets: np.ndarray
    groups: list[str]  # patient key per image


def _heads(kind: str, dim: int, k: int) -> "torch.nn.Module":
    import torch
    from torch import nn

    class LinearHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(dim, k, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(self.conv(x), scale_factor=4, mode="bilinear", align_corners=False)

    class PyramidHead(nn.Module):
        def __init__(self, c: int = 32) -> None:
            super().__init__()
            self.p4 = nn.Sequential(nn.ConvTranspose2d(dim, c, 2, 2), nn.GELU(), nn.ConvTranspose2d(c, c, 2, 2))
            self.p2 = nn.ConvTranspose2d(dim, c, 2, 2)
            self.p1 = nn.Conv2d(dim, c, 1)
            self.p05 = nn.Sequential(nn.MaxPool2d(2, ceil_mode=True), nn.Conv2d(dim, c, 1))
            self.fuse = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.GELU(), nn.Conv2d(c, k, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            up = nn.functional.interpolate
            f = self.p05(x)
            f = self.p1(x) + up(f, size=x.shape[-2:], mode="nearest")
            p2 = self.p2(x)
            f = p2 + up(f, size=p2.shape[-2:], mode="nearest")
            p4 = self.p4(x)
            f = p4 + up(f, size=p4.shape[-2:], mode="nearest")
            return self.fuse(f)

    torch.manual_seed(0)
    return LinearHead() if kind == "linear" else PyramidHead()


def _area(t: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    import torch

    return torch.nn.functional.interpolate(t.float(), size=size, mode="area")


def train_head(kind: str, train: SegData, val: SegData, *, epochs: int = 30, batch_size: int = 16, lr: float = 1e-3,
               device: str = "cpu", seed: int = 0) -> tuple["torch.nn.Module", np.ndarray, np.ndarray, float]:
    """Fit a head; returns (head, feature mean, feature std, validation-chosen threshold)."""
    from radadapt.bench.logistic import threads_for

    n, d, h, w = train.grids.shape
    with threads_for(d * h * w * 32 * 16 if device == "cpu" else float("inf")):
        return _train_head(kind, train, val, epochs=epochs, batch_size=batch_size, lr=lr, device=device, seed=seed)


def _train_head(kind: str, train: SegData, val: SegData, *, epochs: int, batch_size: int, lr: float, device: str,
                seed: int) -> tuple["torch.nn.Module", np.ndarray, np.ndarray, float]:
    import torch

    torch.manual_seed(seed)
    g = train.grids.astype(np.float32)
    mean = g.mean(axis=(0, 2, 3), keepdims=True)[0]
    std = g.std(axis=(0, 2, 3), keepdims=True)[0] + 1e-6
    del g
    k = train.targets.shape[1]
    head = _heads(kind, train.grids.shape[1], k).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-4)
    mu, sd = torch.as_tensor(mean, device=device), torch.as_tensor(std, device=device)
    h, w = train.grids.shape[-2:]
    out_hw = (4 * h, 4 * w)
    y_train = _area(torch.as_tensor(train.targets), out_hw)  # soft targets at the head's resolution
    rng = np.random.default_rng(seed)
    best = (-1.0, None, 0.5)
    for epoch in range(epochs):
        head.train()
        order = rng.permutation(len(train.grids))
        for start in range(0, len(order), batch_size):
            idx = np.sort(order[start:start + batch_size])
            x = (torch.as_tensor(train.grids[idx], device=device).float() - mu) / sd
            y = y_train[idx].to(device)
            logits = head(x)
            p = torch.sigmoid(logits)
            inter = (p * y).sum((0, 2, 3))
            dice = 1 - (2 * inter + 1) / (p.sum((0, 2, 3)) + y.sum((0, 2, 3)) + 1)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + dice.mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if epoch == epochs - 1 or (epoch + 1) % max(1, epochs // 6) == 0:
            probs = predict(head, mean, std, val.grids, out_hw, device)
            yv = _area(torch.as_tensor(val.targets), out_hw).numpy() > 0.5
            for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
                score = _mean_dice(probs >= t, yv)
                if score > best[0]:
                    best = (score, {n: v.detach().clone() for n, v in head.state_dict().items()}, t)
    if best[1] is not None:
        head.load_state_dict(best[1])
    head.eval()
    return head, mean, std, best[2]


def predict(head: "torch.nn.Module", mean: np.ndarray, std: np.ndarray, grids: np.ndarray,
            size: tuple[int, int], device: str = "cpu", batch_size: int = 32) -> np.ndarray:
    """Probabilities [n, K, *size]."""
    import torch

    out = []
    mu, sd = torch.as_tensor(mean, device=device), torch.as_tensor(std, device=device)
    head.eval()
    with torch.no_grad():
        for s in range(0, len(grids), batch_size):
            x = (torch.as_tensor(grids[s:s + batch_size], device=device).float() - mu) / sd
            logits = head(x)
            if tuple(logits.shape[-2:]) != tuple(size):
                logits = torch.nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)
            out.append(torch.sigmoid(logits).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, *size), np.float32)


def _mean_dice(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean Dice over (image, channel) pairs with a non-empty target."""
    inter = (pred & target).sum((2, 3))
    size = pred.sum((2, 3)) + target.sum((2, 3))
    has = target.sum((2, 3)) > 0
    if not has.any():
        return 0.0
    return float((2 * inter[has] / np.maximum(size[has], 1)).mean())


def _dilate(a: np.ndarray, r: int) -> np.ndarray:
    if r <= 0:
        return a
    from scipy.ndimage import binary_dilation

    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return binary_dilation(a, structure=(yy**2 + xx**2) <= r * r)


def pair_metrics(pred: np.ndarray, target: np.ndarray, tolerance: int) -> dict[str, np.ndarray]:
    """Per (image, channel) pair with a non-empty target: dice, iou, dice_tolerant, plus image and channel ids."""
    rows: dict[str, list] = {"dice": [], "iou": [], "dice_tolerant": [], "image": [], "channel": []}
    for i in range(pred.shape[0]):
        for c in range(pred.shape[1]):
            t = target[i, c]
            if not t.any():
                continue
            p = pred[i, c]
            inter = float((p & t).sum())
            ps, ts = float(p.sum()), float(t.sum())
            rows["dice"].append(2 * inter / (ps + ts))
            rows["iou"].append(inter / (ps + ts - inter))
            prec = float((p & _dilate(t, tolerance)).sum()) / ps if ps else 0.0
            rec = float((t & _dilate(p, tolerance)).sum()) / ts
            rows["dice_tolerant"].append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
            rows["image"].append(i)
            rows["channel"].append(c)
    return {k: np.asarray(v) for k, v in rows.items()}


def write_overlay(path: Path, image: np.ndarray, target: np.ndarray, pred: np.ndarray) -> None:
    """A grey image in [0, 1] with the reference in green and the prediction in red (overlap yellow)."""
    from PIL import Image

    from radadapt import atomic

    g = (np.clip(image, 0, 1) * 200).astype(np.uint8)
    rgb = np.stack([g, g, g], axis=-1)
    t = target.any(0)
    p = pred.any(0)
    rgb[t] = (rgb[t] * 0.4 + np.array([0, 255, 0]) * 0.6).astype(np.uint8)
    rgb[p] = (rgb[p] * 0.4 + np.array([255, 0, 0]) * 0.6).astype(np.uint8)
    rgb[t & p] = np.array([255, 230, 0], np.uint8)
    import io

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    atomic.write_bytes(path, buf.getvalue())

