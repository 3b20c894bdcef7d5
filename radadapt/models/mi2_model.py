"""The MI2 two-tower model: timm's DaViT image tower (used as is), the MI2 text tower, projections, temperature.

``MI2Config`` is the validated subset of the released ``config.yaml`` (read with ``yaml.safe_load``; the
released wrapper uses ``unsafe_load``). Only the architecture MI2 ships is accepted: DaViT with the Florence-2
("_fl") options (7x7/4 stem, 3x3/2 downsampling with pre-norm, window attention, channel attention with the
N^-0.5 scale, groups == heads), standard parametrisation, CLIP tokenizer. Anything else is a clear
``models.mi2_unsupported_config`` error rather than a silently different network.

``MI2Model`` mirrors the released ``UniCLModel`` (Codella et al. 2024, arXiv 2410.06542; UniCL, Yang et al.
CVPR 2022): ``encode_image`` = DaViT mean-pool + LayerNorm (2048-d) @ ``image_projection``, L2-normalised;
``encode_text`` = text tower at the first EOS @ ``lang_projection``, L2-normalised; T = exp(``logit_scale``),
unclamped. It is an ``nn.Module`` trainable end to end (drop-path, activation checkpointing, param groups).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from radadapt.errors import ModelError
from radadapt.models.mi2_text import MI2TextTransformer, TFLayerNorm, pool_first_eos

# What MI2's davit_v1 must look like for timm's davit_*_fl to be the same network.
_FL_PATCH = {"PATCH_SIZE": [7, 3, 3, 3], "PATCH_STRIDE": [4, 2, 2, 2], "PATCH_PADDING": [3, 1, 1, 1],
             "PATCH_PRENORM": [False, True, True, True]}
_FL_FLAGS = {"CONV_AT_ATTN": True, "CONV_AT_FFN": True, "DYNAMIC_SCALE": True, "STANDPARAM": True}


class MI2Config:
    """Architecture and preprocessing from config.yaml. ``raw`` keeps the whole parsed file (the training
    recipe lives there too); ``source_text`` keeps its exact text so saving writes it back byte for byte."""

    def __init__(self, raw: dict, source_text: str | None = None, vocab_size: int = 49408):
        self.raw = raw
        self.source_text = source_text
        img = _section(raw, "IMAGE_ENCODER")
        spec = _section(img, "SPEC", "IMAGE_ENCODER.")
        lang = _section(raw, "LANG_ENCODER")
        unicl = _section(raw, "UNICL_MODEL")
        _expect(img, "NAME", "davit_v1", "IMAGE_ENCODER.")
        _expect(img, "NUM_CLASSES", 0, "IMAGE_ENCODER.", default=0)
        _expect(lang, "NAME", "transformer", "LANG_ENCODER.")
        _expect(lang, "TOKENIZER", "clip", "LANG_ENCODER.")
        for key, value in _FL_PATCH.items():
            _expect(spec, key, value, "IMAGE_ENCODER.SPEC.", default=value)
        for key, value in _FL_FLAGS.items():
            _expect(spec, key, value, "IMAGE_ENCODER.SPEC.", default=value)
        _expect(lang, "STANDPARAM", True, "LANG_ENCODER.", default=True)
        _expect(unicl, "STANDPARAM", True, "UNICL_MODEL.", default=True)
        test = raw.get("TEST") or {}
        _expect(test, "CENTER_CROP", False, "TEST.", default=False)
        size = _ints(img.get("IMAGE_SIZE", [224, 224]), "IMAGE_ENCODER.IMAGE_SIZE")
        # timm's stem pads to a multiple of 4 where MI2's does not: equal only for multiples of 4
        if len(size) != 2 or size[0] != size[1] or size[0] % 4 or size[0] < 32:
            _unsupported("IMAGE_ENCODER.IMAGE_SIZE", size, "a square size, a multiple of 4, e.g. [480, 480]")
        self.image_size = size[0]
        self.image_mean = _floats3(img.get("IMAGE_MEAN", (0.485, 0.456, 0.406)), "IMAGE_ENCODER.IMAGE_MEAN")
        self.image_std = _floats3(img.get("IMAGE_STD", (0.229, 0.224, 0.225)), "IMAGE_ENCODER.IMAGE_STD")
        self.interpolation = str((raw.get("AUG") or {}).get("INTERPOLATION", "bicubic"))
        if self.interpolation != "bicubic":
            _unsupported("AUG.INTERPOLATION", self.interpolation, "bicubic")
        self.embed_dims = _ints(spec.get("DIM_EMBED"), "IMAGE_ENCODER.SPEC.DIM_EMBED")
        self.depths = _ints(spec.get("DEPTHS"), "IMAGE_ENCODER.SPEC.DEPTHS")
        self.num_heads = _ints(spec.get("NUM_HEADS"), "IMAGE_ENCODER.SPEC.NUM_HEADS")
        groups = _ints(spec.get("NUM_GROUPS", self.num_heads), "IMAGE_ENCODER.SPEC.NUM_GROUPS")
        if groups != self.num_heads:  # timm's DaVit uses one head count for both attentions
            _unsupported("IMAGE_ENCODER.SPEC.NUM_GROUPS", groups, f"equal to NUM_HEADS {self.num_heads}")
        if not (len(self.embed_dims) == len(self.depths) == len(self.num_heads) == 4):
            _unsupported("IMAGE_ENCODER.SPEC", "stage lists", "four stages (DIM_EMBED, DEPTHS, NUM_HEADS)")
        self.window_size = _ints(spec.get("WINDOW_SIZE", 7), "IMAGE_ENCODER.SPEC.WINDOW_SIZE")[0]
        self.drop_path_rate = spec.get("DROP_PATH_RATE", 0.0)
        if not isinstance(self.drop_path_rate, (int, float)) or not 0 <= self.drop_path_rate < 1:
            raise ModelError("models.mi2_bad_config", "config.yaml: IMAGE_ENCODER.SPEC.DROP_PATH_RATE must be in [0, 1)")
        self.drop_path_rate = float(self.drop_path_rate)
        self.enable_checkpoint = spec.get("ENABLE_CHECKPOINT", False) is True
        self.context_length = _ints(lang.get("CONTEXT_LENGTH", 77), "LANG_ENCODER.CONTEXT_LENGTH")[0]
        self.text_width = _ints(lang.get("WIDTH"), "LANG_ENCODER.WIDTH")[0]
        self.text_heads = _ints(lang.get("HEADS"), "LANG_ENCODER.HEADS")[0]
        self.text_layers = _ints(lang.get("LAYERS"), "LANG_ENCODER.LAYERS")[0]
        self.autoregressive = lang.get("AUTOGRESSIVE", True)  # the released key's spelling and default
        if not isinstance(self.autoregressive, bool):
            raise ModelError("models.mi2_bad_config", "config.yaml: LANG_ENCODER.AUTOGRESSIVE must be true or false")
        self.projection_dim = _ints(unicl.get("DIM_PROJECTION"), "UNICL_MODEL.DIM_PROJECTION")[0]
        if self.text_width % self.text_heads or any(d % h for d, h in zip(self.embed_dims, self.num_heads)):
            _unsupported("WIDTH / DIM_EMBED", "not divisible by the head counts", "widths divisible by heads")
        self.vocab_size = int(vocab_size)

    def timm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments that make ``timm.create_model("davit_huge_fl", **kw)`` this image tower."""
        return {"depths": tuple(self.depths), "embed_dims": tuple(self.embed_dims),
                "num_heads": tuple(self.num_heads), "window_size": self.window_size}

    @property
    def is_huge(self) -> bool:
        """True when the image tower is exactly timm's ``davit_huge_fl`` (the released MI2)."""
        return self.timm_kwargs() == {"depths": (1, 1, 9, 1), "embed_dims": (256, 512, 1024, 2048),
                                      "num_heads": (8, 16, 32, 64), "window_size": 12}


def _section(d: dict, key: str, where: str = "") -> dict:
    value = d.get(key) if isinstance(d, dict) else None
    if not isinstance(value, dict):
        raise ModelError("models.mi2_bad_config", f"config.yaml has no '{where}{key}' section")
    return value


def _unsupported(key: str, got: Any, want: str) -> None:
    raise ModelError(
        "models.mi2_unsupported_config",
        f"config.yaml sets {key} = {got!r}; radadapt supports only the released MI2 design ({want})",
    )


def _expect(d: dict, key: str, want: Any, where: str, default: Any = None) -> None:
    got = d.get(key, default)
    if got != want:
        _unsupported(where + key, got, repr(want))


def _ints(value: Any, key: str) -> list[int]:
    """Positive integers (a list, or one integer as a one-element list)."""
    values = [value] if not isinstance(value, (list, tuple)) else list(value)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
        raise ModelError("models.mi2_bad_config", f"config.yaml: {key} must be positive integer(s), got {value!r}")
    return values


def _floats3(value: Any, key: str) -> tuple[float, float, float]:
    if not isinstance(value, (list, tuple)) or len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise ModelError("models.mi2_bad_config", f"config.yaml: {key} must be three numbers, got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def mi2_drop_path_rates(depths: list[int], rate: float) -> list[list[tuple[float, float]]]:
    """MI2's stochastic-depth rule: linear from 0 to ``rate`` over all 2*sum(depths) blocks, spatial and
    channel blocks counted separately (timm's DaVit shares one rate per pair; we set MI2's after building)."""
    rates = torch.linspace(0, rate, 2 * sum(depths), device="cpu").tolist() if sum(depths) else []
    out, i = [], 0
    for depth in depths:
        out.append([(rates[i + 2 * j], rates[i + 2 * j + 1]) for j in range(depth)])
        i += 2 * depth
    return out


def build_image_tower(cfg: MI2Config, drop_path_rate: float | None = None) -> nn.Module:
    """timm's ``DaVit`` via ``davit_huge_fl`` (window 12, 3x3 downsampling, channel attention v2, named
    blocks), with the config's sizes, no classifier, and MI2's per-block drop-path schedule."""
    import timm

    tower = timm.create_model("davit_huge_fl", pretrained=False, num_classes=0, **cfg.timm_kwargs())
    set_image_drop_path(tower, cfg.depths, cfg.drop_path_rate if drop_path_rate is None else drop_path_rate)
    return tower


def set_image_drop_path(tower: nn.Module, depths: list[int], rate: float) -> None:
    from timm.layers import DropPath

    for stage, stage_rates in zip(tower.stages, mi2_drop_path_rates(depths, rate)):
        for block, (r_spatial, r_channel) in zip(stage.blocks, stage_rates):
            for sub, r in ((block.spatial_block, r_spatial), (block.channel_block, r_channel)):
                path = (DropPath(r) if r > 0 else nn.Identity()).train(tower.training)
                sub.drop_path1 = path
                sub.drop_path2 = path


class MI2Model(nn.Module):
    """MedImageInsight: image tower, text tower, projections to the joint space, learnable temperature."""

    def __init__(self, cfg: MI2Config):
        super().__init__()
        self.config = cfg
        self.image_encoder = build_image_tower(cfg)
        self.lang_encoder = MI2TextTransformer(
            context_length=cfg.context_length, vocab_size=cfg.vocab_size, width=cfg.text_width,
            layers=cfg.text_layers, heads=cfg.text_heads, autoregressive=cfg.autoregressive,
        )
        self.image_projection = nn.Parameter(torch.empty(cfg.embed_dims[-1], cfg.projection_dim))
        self.lang_projection = nn.Parameter(torch.empty(cfg.text_width, cfg.projection_dim))
        self.logit_scale = nn.Parameter(torch.ones([]))  # released init: T = e
        nn.init.trunc_normal_(self.image_projection, std=0.02)
        nn.init.trunc_normal_(self.lang_projection, std=0.02)
        if cfg.enable_checkpoint:
            self.set_grad_checkpointing(True)

    # -- image ---------------------------------------------------------------------------------------------
    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The pooled pre-projection feature: mean over the last stage's tokens, then LayerNorm ([B, 2048])."""
        tower = self.image_encoder
        return tower.forward_head(tower.forward_features(pixel_values), pre_logits=True)

    def encode_image(self, pixel_values: torch.Tensor, normalize: bool = True) -> torch.Tensor:
        x = self.image_features(pixel_values) @ self.image_projection
        return nn.functional.normalize(x, dim=-1) if normalize else x

    # -- text ----------------------------------------------------------------------------------------------
    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """The text tower's hidden state at the first end-of-text token ([B, width])."""
        return pool_first_eos(self.lang_encoder(input_ids, attention_mask), input_ids)

    def encode_text(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, normalize: bool = True
    ) -> torch.Tensor:
        x = self.text_features(input_ids, attention_mask) @ self.lang_projection
        return nn.functional.normalize(x, dim=-1) if normalize else x

    def forward(
        self, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Normalised embeddings of both towers and the temperature T = exp(logit_scale)."""
        return {
            "image_embeds": self.encode_image(pixel_values),
            "text_embeds": self.encode_text(input_ids, attention_mask),
            "logit_scale": self.logit_scale.exp(),
        }

    # -- training hooks ------------------------------------------------------------------------------------
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Activation checkpointing in both towers (timm's ``set_grad_checkpointing`` for the image)."""
        self.image_encoder.set_grad_checkpointing(enable)
        self.lang_encoder.set_grad_checkpointing(enable)

    def set_drop_path(self, image_rate: float | None = None, text_rate: float = 0.0) -> None:
        """Stochastic depth for training (image default: config DROP_PATH_RATE; the released text tower
        uses none). Inactive in eval mode either way."""
        rate = self.config.drop_path_rate if image_rate is None else image_rate
        set_image_drop_path(self.image_encoder, self.config.depths, rate)
        self.lang_encoder.set_drop_path(text_rate)

    def param_groups(self, weight_decay: float) -> list[dict[str, Any]]:
        """Two AdamW groups following the released recipe (``CUSTOMIZED_PARAMS_CONF``): no weight decay on
        biases, norms, depthwise convolutions, ``logit_scale``, ``positional_embedding``, ``token_embedding``.
        Frozen parameters (``requires_grad=False``) are left out. Each group carries its parameter ``names``."""
        no_decay_ids = set()
        for mod_name, module in self.named_modules():
            is_norm = isinstance(module, (nn.LayerNorm, TFLayerNorm))
            is_dw = isinstance(module, nn.Conv2d) and module.groups > 1 and module.groups == module.in_channels
            if is_norm or is_dw:
                no_decay_ids.update(id(p) for p in module.parameters(recurse=False))
        groups: dict[str, dict[str, Any]] = {
            "decay": {"name": "decay", "params": [], "names": [], "weight_decay": weight_decay},
            "no_decay": {"name": "no_decay", "params": [], "names": [], "weight_decay": 0.0},
        }
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            plain = (
                id(param) in no_decay_ids
                or name.endswith(".bias")
                or name in ("logit_scale", "lang_encoder.positional_embedding", "lang_encoder.token_embedding.weight")
            )
            group = groups["no_decay" if plain else "decay"]
            group["params"].append(param)
            group["names"].append(name)
        return [g for g in groups.values() if g["params"]]


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(number of tensors, number of elements) in a module's state dict."""
    sd = module.state_dict()
    return len(sd), sum(v.numel() for v in sd.values())
