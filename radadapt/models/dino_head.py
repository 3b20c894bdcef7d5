"""The DINO projection head of DINOv2 (Oquab et al. 2023, §4 and ``dinov2/layers/dino_head.py``).

``mlp`` (Linear-GELU-Linear-GELU-Linear for ``nlayers=3``: in -> hidden 2048 -> 2048 -> bottleneck 256), then L2
normalisation, then a weight-normalised, bias-free linear layer to ``out_dim`` prototypes (65,536 for RAD-DINO,
whose head is shared by the DINO and iBOT losses). Key names are Meta's, so RAD-DINO's
``dino_head.safetensors`` loads as is: ``mlp.0.*``, ``mlp.2.*``, ``mlp.4.*``, ``last_layer.weight_g``,
``last_layer.weight_v``.

Weight norm uses the current ``torch.nn.utils.parametrizations.weight_norm``; a state-dict hook writes the legacy
``weight_g``/``weight_v`` names (torch's own load hook reads them back), so checkpoints stay in Meta's format.
DINOv2 initialises ``weight_g`` to 1 and trains it; ``norm_last_layer=True`` instead freezes it (DINO v1,
Caron et al. 2021), i.e. prototypes of fixed unit norm.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from radadapt.errors import ModelError

_G, _V = "last_layer.parametrizations.weight.original0", "last_layer.parametrizations.weight.original1"


class DINOHead(nn.Module):
    """DINOv2's head; defaults are RAD-DINO's (ViT-B: in 768, hidden 2048, bottleneck 256, 65,536 prototypes)."""

    def __init__(
        self,
        in_dim: int = 768,
        out_dim: int = 65536,
        nlayers: int = 3,
        hidden_dim: int = 2048,
        bottleneck_dim: int = 256,
        mlp_bias: bool = True,
        norm_last_layer: bool = False,
    ):
        super().__init__()
        self.in_dim, self.out_dim, self.nlayers = in_dim, out_dim, max(nlayers, 1)
        self.hidden_dim, self.bottleneck_dim, self.mlp_bias = hidden_dim, bottleneck_dim, mlp_bias
        self.mlp = _build_mlp(self.nlayers, in_dim, bottleneck_dim, hidden_dim, mlp_bias)
        self.apply(_init_linear)
        self.last_layer = weight_norm(nn.Linear(bottleneck_dim, out_dim, bias=False))
        with torch.no_grad():
            self.last_layer.parametrizations.weight.original0.fill_(1.0)
        if norm_last_layer:
            self.last_layer.parametrizations.weight.original0.requires_grad_(False)
        self.register_state_dict_post_hook(_legacy_weight_norm_names)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.mlp(x)
        # fp16 cannot represent 1e-12; DINOv2 uses 1e-6 there.
        eps = 1e-6 if x.dtype == torch.float16 else 1e-12
        x = nn.functional.normalize(x, dim=-1, p=2, eps=eps)
        return self.last_layer(x)

    def dims(self) -> dict[str, int | bool]:
        return {
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "nlayers": self.nlayers,
            "hidden_dim": self.hidden_dim,
            "bottleneck_dim": self.bottleneck_dim,
            "mlp_bias": self.mlp_bias,
        }

    @classmethod
    def from_state_dict(cls, state_dict: Mapping[str, torch.Tensor], *, what: str = "dino_head.safetensors",
                        norm_last_layer: bool = False) -> "DINOHead":
        """Build a head with the dimensions the tensors imply and load them strictly (Meta names)."""
        from radadapt.models.weights import check_state_dict, shapes

        head = cls(**infer_head_dims(shapes(state_dict)), norm_last_layer=norm_last_layer)
        check_state_dict(shapes(head.state_dict()), shapes(state_dict), what=what)
        head.load_state_dict(dict(state_dict), strict=True)
        return head


def _build_mlp(nlayers: int, in_dim: int, bottleneck_dim: int, hidden_dim: int, bias: bool) -> nn.Module:
    if nlayers == 1:
        return nn.Linear(in_dim, bottleneck_dim, bias=bias)
    layers: list[nn.Module] = [nn.Linear(in_dim, hidden_dim, bias=bias), nn.GELU()]
    for _ in range(nlayers - 2):
        layers += [nn.Linear(hidden_dim, hidden_dim, bias=bias), nn.GELU()]
    layers.append(nn.Linear(hidden_dim, bottleneck_dim, bias=bias))
    return nn.Sequential(*layers)


def _init_linear(m: nn.Module) -> None:
    # DINOv2: truncated normal, std 0.02 (cut at +-2 absolute, as DINOv2 does), and zero biases.
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def _legacy_weight_norm_names(module: nn.Module, state_dict: dict, prefix: str, local_metadata: Any) -> None:
    for new, old in ((_G, "last_layer.weight_g"), (_V, "last_layer.weight_v")):
        if prefix + new in state_dict:
            state_dict[prefix + old] = state_dict.pop(prefix + new)


def infer_head_dims(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, int | bool]:
    """Head dimensions from Meta key shapes (``mlp.{0,2,4,...}.weight``, ``last_layer.weight_v``)."""
    if "last_layer.weight_v" not in shapes:
        raise ModelError(
            "models.key_mismatch",
            "not a DINO head: last_layer.weight_v is missing",
            hint="expected Meta DINOHead keys: mlp.0.weight ... last_layer.weight_g, last_layer.weight_v",
        )
    out_dim, bottleneck = shapes["last_layer.weight_v"]
    if "mlp.weight" in shapes:  # nlayers == 1: a single Linear, not a Sequential
        return {"in_dim": shapes["mlp.weight"][1], "out_dim": out_dim, "nlayers": 1, "hidden_dim": 0,
                "bottleneck_dim": bottleneck, "mlp_bias": "mlp.bias" in shapes}
    idx = sorted(int(k.split(".")[1]) for k in shapes if k.startswith("mlp.") and k.endswith(".weight"))
    if not idx:
        raise ModelError("models.key_mismatch", "not a DINO head: no mlp.* layers found")
    return {
        "in_dim": shapes[f"mlp.{idx[0]}.weight"][1],
        "out_dim": out_dim,
        "nlayers": len(idx),
        "hidden_dim": shapes[f"mlp.{idx[0]}.weight"][0] if len(idx) > 1 else 0,
        "bottleneck_dim": bottleneck,
        "mlp_bias": f"mlp.{idx[0]}.bias" in shapes,
    }
