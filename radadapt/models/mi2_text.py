"""The MedImageInsight (MI2) text tower: a CLIP-style transformer, bidirectional, TF-style LayerNorm.

No library ships this exact tower (open_clip's text transformer is causal with LayerNorm eps 1e-5), so it is
written here once, with the released module and parameter names so checkpoints map one to one:
``token_embedding``, ``positional_embedding``, ``resblocks.{k}.{attn, ln_1, mlp.c_fc, mlp.c_proj, ln_2}``,
``ln_final``. Facts (docs/models_mi2.md, research note mi2_unicl.md §1):

- pre-LN residual blocks with ``nn.MultiheadAttention`` (sequence-first), QuickGELU MLP of width 4x;
- LayerNorm with eps 1e-12 *inside* the square root, statistics computed in fp32 then cast back (as released);
- ``AUTOGRESSIVE: false`` in the released config: no causal mask, padding masked from ``attention_mask``
  (robust to the transformers 4.16 -> 4.25 change of the pad id from 0 to the EOS id);
- pooling at the first end-of-text token, found as ``argmax(input_ids)`` because EOS has the largest id.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint


class TFLayerNorm(nn.Module):
    """LayerNorm in the TF style: ``(x - mean) / sqrt(var + eps)`` in fp32, affine in the input dtype."""

    def __init__(self, width: int, eps: float = 1e-12):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.bias = nn.Parameter(torch.zeros(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        xf = x.float()
        mean = xf.mean(-1, keepdim=True)
        var = (xf - mean).pow(2).mean(-1, keepdim=True)
        xf = (xf - mean) / torch.sqrt(var + self.eps)
        return self.weight * xf.to(dtype) + self.bias


class QuickGELU(nn.Module):
    """CLIP's sigmoid approximation of GELU: x * sigmoid(1.702 x)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class DropPath(nn.Module):
    """Stochastic depth on the residual branch (per sample); identity in eval mode or at rate 0."""

    def __init__(self, rate: float = 0.0):
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.rate == 0.0 or not self.training:
            return x
        keep = 1.0 - self.rate
        # the text tower is sequence-first [L, N, D]: one draw per sample (dim 1)
        mask = x.new_empty((1, x.shape[1], 1)).bernoulli_(keep)
        return x * mask / keep


class ResidualAttentionBlock(nn.Module):
    def __init__(self, width: int, heads: int, drop_path: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = TFLayerNorm(width)
        self.mlp = nn.Sequential()
        self.mlp.add_module("c_fc", nn.Linear(width, width * 4))
        self.mlp.add_module("gelu", QuickGELU())
        self.mlp.add_module("c_proj", nn.Linear(width * 4, width))
        self.ln_2 = TFLayerNorm(width)
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None, attn_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.ln_1(x)
        h = self.attn(h, h, h, key_padding_mask=key_padding_mask, attn_mask=attn_mask, need_weights=False)[0]
        x = x + self.drop_path(h)
        return x + self.drop_path(self.mlp(self.ln_2(x)))


class MI2TextTransformer(nn.Module):
    """The released ``lang_encoder``: tokens [N, L] -> final hidden states [N, L, width] (after ``ln_final``)."""

    def __init__(
        self,
        context_length: int = 77,
        vocab_size: int = 49408,
        width: int = 1024,
        layers: int = 16,
        heads: int = 16,
        drop_path: float = 0.0,
        autoregressive: bool = False,
    ):
        super().__init__()
        self.context_length = context_length
        self.width = width
        self.autoregressive = autoregressive
        self.grad_checkpointing = False
        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        rates = torch.linspace(0, drop_path, layers, device="cpu").tolist() if layers > 1 else [drop_path] * layers
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(width, heads, r) for r in rates)
        self.ln_final = TFLayerNorm(width)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Released init: truncated normal std 0.02 for embeddings and linear weights, zero biases.
        nn.init.trunc_normal_(self.positional_embedding, std=0.02)
        nn.init.trunc_normal_(self.token_embedding.weight, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def set_drop_path(self, rate: float) -> None:
        """Linear stochastic-depth schedule from 0 to ``rate`` over the blocks (the released rule)."""
        n = len(self.resblocks)
        rates = torch.linspace(0, rate, n, device="cpu").tolist() if n > 1 else [rate] * n
        for block, r in zip(self.resblocks, rates):
            block.drop_path.rate = float(r)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        n, length = input_ids.shape
        if length > self.context_length:
            raise ValueError(f"sequence length {length} exceeds the context length {self.context_length}")
        x = self.token_embedding(input_ids) + self.positional_embedding[:length]
        x = x.permute(1, 0, 2)  # [L, N, D]: nn.MultiheadAttention is sequence-first here, as released
        attn_mask = None
        key_padding_mask = None
        if self.autoregressive:
            attn_mask = torch.full((length, length), float("-inf"), device=x.device, dtype=x.dtype).triu_(1)
        elif attention_mask is not None:
            key_padding_mask = attention_mask.to(x.device) == 0
        for block in self.resblocks:
            if self.grad_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, key_padding_mask, attn_mask, use_reentrant=False)
            else:
                x = block(x, key_padding_mask, attn_mask)
        return self.ln_final(x.permute(1, 0, 2))


def pool_first_eos(hidden: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    """Hidden state at the first end-of-text token: ``argmax(input_ids)`` (EOS has the largest id, and
    ``torch.argmax`` returns the first maximum, so padding with EOS still picks the first one)."""
    index = input_ids.argmax(dim=-1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


__all__ = ["MI2TextTransformer", "ResidualAttentionBlock", "TFLayerNorm", "QuickGELU", "pool_first_eos"]
