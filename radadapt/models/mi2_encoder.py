"""The frozen MI2 encoder for benchmark features and zero-shot (the ``Encoder`` contract, encoder.py).

Preprocessing as released (research note mi2_unicl.md §4): bicubic resize straight to the config size (480 for
the real model; no aspect-preserving crop), ``ToTensor`` scaling to [0, 1], ImageNet mean/std, grey replicated
to three channels. The resize is PIL's bicubic on the uint8 image, which is what torchvision's ``Resize`` does
on the PIL images the released wrapper feeds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from radadapt.errors import ModelError
from radadapt.models.encoder import Encoder
from radadapt.models.mi2 import NAME, tokenize

if TYPE_CHECKING:
    import torch

    from radadapt.models.mi2_model import MI2Config, MI2Model


class MI2Encoder(Encoder):
    """Frozen MI2 for features and zero-shot: preprocessing as released (bicubic resize straight to the config
    size, no crop, ImageNet mean/std, grey replicated to RGB)."""

    family = NAME
    has_text = True

    def __init__(self, model: "MI2Model", tokenizer, config: "MI2Config", fingerprint: str, device: str = "cpu"):
        self.model = model.eval().requires_grad_(False).to(device)
        self.tokenizer = tokenizer
        self.config = config
        self.fingerprint = fingerprint
        self.device = device
        self.input_size = config.image_size
        self.embed_dim = config.embed_dims[-1]

    def preprocess(self, images: Sequence[np.ndarray]) -> "torch.Tensor":
        import torch
        from PIL import Image

        s = self.input_size
        batch = np.empty((len(images), s, s), dtype=np.uint8)
        for i, img in enumerate(images):
            a = np.asarray(img)
            if a.ndim == 3 and a.shape[-1] in (1, 3):
                a = a[..., 0] if a.shape[-1] == 1 else np.asarray(Image.fromarray(a).convert("L"))
            if a.ndim != 2 or a.dtype != np.uint8:
                raise ModelError("models.mi2_bad_image", f"expected a 2-D uint8 image, got {a.dtype} {a.shape}")
            batch[i] = np.asarray(Image.fromarray(a).resize((s, s), Image.BICUBIC))  # PIL, as torchvision does
        x = torch.from_numpy(batch).float().div_(255.0)[:, None].expand(-1, 3, -1, -1)
        mean = torch.tensor(self.config.image_mean).view(1, 3, 1, 1)
        std = torch.tensor(self.config.image_std).view(1, 3, 1, 1)
        return ((x - mean) / std).to(self.device)

    def features(self, pixel_values: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        """``cls``: the pooled 2048-d pre-projection feature (mean + LayerNorm, what probes should use);
        ``patch_mean``: mean of the last stage's tokens without the LayerNorm; ``patch_grid``: the last stage
        map [B, 2048, S/32, S/32]; ``layers``: the four stages' mean-pooled features concatenated (widths
        differ per stage, so L = 1 and D = 256+512+1024+2048 for the released size)."""
        import torch

        tower = self.model.image_encoder
        with torch.no_grad():
            x = tower.stem(pixel_values.to(self.device))
            pooled = []
            for stage in tower.stages:
                x = stage(x)
                pooled.append(x.mean(dim=(2, 3)))
            cls = tower.forward_head(tower.norm_pre(x), pre_logits=True)
        return {"cls": cls, "patch_mean": pooled[-1], "patch_grid": x, "layers": torch.cat(pooled, dim=1)[:, None]}

    def encode_image(self, pixel_values: "torch.Tensor") -> "torch.Tensor":
        import torch

        with torch.no_grad():
            return self.model.encode_image(pixel_values.to(self.device))

    def encode_text(self, texts: Sequence[str], batch_size: int = 256) -> "torch.Tensor":
        import torch

        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                enc = tokenize(self.tokenizer, texts[i:i + batch_size], self.config.context_length)
                out.append(self.model.encode_text(enc["input_ids"].to(self.device),
                                                  enc["attention_mask"].to(self.device)))
        return torch.cat(out) if out else torch.empty(0, self.config.projection_dim, device=self.device)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().exp())
