"""The frozen-encoder interface that benchmark (features) and export rely on, whatever the family.

A family module (``rad_dino.py``, ``mi2.py``) returns an ``Encoder`` from ``load_encoder(model_dir)``. It is
always in eval mode with gradients off, and carries its own preprocessing, so every model is fed exactly as its
authors fed it (RAD-DINO: shortest edge to 518, centre crop, MIMIC mean/std; MI2: squash to 480, ImageNet
mean/std), starting from the store's uint8 images.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily by families
    import torch


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def fingerprint_files(paths: Sequence[str | Path]) -> str:
    """One sha256 over the sha256 of each weight file (order-independent by name)."""
    h = hashlib.sha256()
    for p in sorted(Path(p) for p in paths):
        h.update(p.name.encode())
        h.update(sha256_file(p).encode())
    return h.hexdigest()


class Encoder:
    """Base class: a frozen image encoder with its preprocessing.

    Subclasses set ``family``, ``fingerprint``, ``input_size``, ``embed_dim``, ``device`` and implement
    ``preprocess`` and ``features``. Families with a text tower also implement ``encode_image`` and
    ``encode_text`` (L2-normalised joint-space embeddings) and set ``has_text = True``.
    """

    family: str = ""
    fingerprint: str = ""
    input_size: int = 0
    embed_dim: int = 0
    has_text: bool = False
    device: str = "cpu"

    def preprocess(self, images: Sequence[np.ndarray]) -> "torch.Tensor":
        """uint8 (H, W) store images -> float tensor [B, 3, S, S] on ``self.device``, normalised."""
        raise NotImplementedError

    def features(self, pixel_values: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """Frozen features: ``cls`` [B, D], ``patch_mean`` [B, D], ``patch_grid`` [B, D, h, w];
        optionally ``layers`` [B, L, D] (per-layer pooled tokens for multi-layer probes)."""
        raise NotImplementedError

    def encode_image(self, pixel_values: "torch.Tensor") -> "torch.Tensor":
        raise NotImplementedError(f"{self.family} has no joint image-text space")

    def encode_text(self, texts: Sequence[str]) -> "torch.Tensor":
        raise NotImplementedError(f"{self.family} has no text tower")

    @property
    def logit_scale(self) -> float:
        raise NotImplementedError(f"{self.family} has no contrastive temperature")
