"""The frozen RAD-DINO encoder for feature extraction (benchmark, export checks).

Features follow DINOv2's evaluation protocol (Oquab et al. 2023, §7 and ``dinov2/eval/linear.py``): tokens after
the final LayerNorm; ``cls`` is transformers' ``pooler_output`` (the normalised CLS token), ``patch_mean`` the mean
of the normalised patch tokens, ``patch_grid`` the normalised patch tokens as a [B, D, h, w] map (h = H / 14), and
``layers`` the CLS token of each of the last four blocks passed through the final LayerNorm
(``get_intermediate_layers(n=4, norm=True)``), [B, 4, D], for multi-layer linear probes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from radadapt.models.encoder import Encoder, fingerprint_files

if TYPE_CHECKING:
    import torch
    from transformers import Dinov2Model

    from radadapt.models.preprocessing import ImagePreprocessing

N_LAYERS = 4


class RadDinoEncoder(Encoder):
    family = "rad_dino"

    def __init__(self, backbone: "Dinov2Model", preprocessing: "ImagePreprocessing", *, fingerprint: str,
                 device: str = "cpu", layout: str = ""):
        self.backbone = backbone.to(device).eval().requires_grad_(False)
        self.preprocessing = preprocessing
        self.fingerprint = fingerprint
        self.device = str(device)
        self.layout = layout
        self.input_size = preprocessing.input_size
        self.embed_dim = int(backbone.config.hidden_size)
        patch = backbone.config.patch_size
        self.patch_size = int(patch if isinstance(patch, int) else patch[0])

    @classmethod
    def from_dir(cls, path: Path, device: str = "cpu") -> "RadDinoEncoder":
        from radadapt.models import rad_dino

        backbone, config, layout, files, _notes = rad_dino.load_backbone(path)
        pre = rad_dino.load_preprocessing(path, config.image_size)
        # Preprocessing changes the features, so it is part of the cache key.
        keyed = [path / name for name in files if name.endswith(".safetensors")]
        if (path / rad_dino.PREPROCESSOR).is_file():
            keyed.append(path / rad_dino.PREPROCESSOR)
        return cls(backbone, pre, fingerprint=fingerprint_files(keyed), device=device, layout=layout)

    def preprocess(self, images: Sequence[np.ndarray]) -> "torch.Tensor":
        return self.preprocessing(images).to(self.device)

    def features(self, pixel_values: "torch.Tensor") -> dict[str, "torch.Tensor"]:
        import torch

        # Hooks keep only the CLS token of the last blocks; output_hidden_states would hold every layer's full
        # token map (13 x B x 1370 x 768 floats at 518 px).
        blocks = list(self.backbone.encoder.layer)[-N_LAYERS:]
        cls_by_block: list["torch.Tensor"] = []

        def keep_cls(_module, _inputs, output):
            cls_by_block.append((output[0] if isinstance(output, tuple) else output)[:, 0])

        handles = [b.register_forward_hook(keep_cls) for b in blocks]
        # no_grad, not inference_mode: callers may feed the features to a probe that needs autograd.
        try:
            with torch.no_grad():
                x = pixel_values.to(self.device, dtype=torch.float32)
                out = self.backbone(pixel_values=x)
                patches = out.last_hidden_state[:, 1:]
                b, _, d = patches.shape
                h, w = x.shape[-2] // self.patch_size, x.shape[-1] // self.patch_size
                grid = patches.transpose(1, 2).reshape(b, d, h, w)
                layers = self.backbone.layernorm(torch.stack(cls_by_block, dim=1))
        finally:
            for handle in handles:
                handle.remove()
        return {"cls": out.pooler_output, "patch_mean": patches.mean(dim=1), "patch_grid": grid, "layers": layers}
