"""Pure key converters for MedImageInsight (MI2) checkpoints: state_dict in, state_dict out, both ways.

Three namings of the same tensors:

- **released** (the single-file safetensors ``vision_model/medimageinsigt-v1.0.0.pt``, UniCLModel names):
  ``image_encoder.*`` in MI2/Florence DaViT naming (``convs.{i}.proj``, ``blocks.{i}.{j}.spatial_block.
  window_attn.fn.qkv`` ...), ``lang_encoder.*``, ``image_projection``, ``lang_projection``, ``logit_scale``;
  older files use ``visual.*``, ``text.*``, ``vision_projection``, ``text_projection`` (accepted, renamed).
- **radadapt** (``MI2Model.state_dict()``): the same, except that the image tower is timm's ``DaVit`` and so
  carries timm's names (``image_encoder.stem.conv``, ``image_encoder.stages.{i}.blocks.{j}.spatial_block.attn
  .qkv`` ...). The text tower keeps the released names.
- **timm** (``timm.create_model("davit_huge_fl")``): the image tower alone, timm names, no prefix.

Every key is mapped by an explicit rule (one template per tensor family, compiled both ways from the same
pair, so the two directions cannot drift); a key that matches no rule is an error, never silently dropped
(the released loader drops unknown keys and loads ``strict=False``). Shapes are checked against the model by
``radadapt.models.weights.check_state_dict`` in ``mi2.load_pretrained``. Tensors are passed through untouched (no copies): only names change. The mapping follows
timm's own Florence-2 converter (``timm/models/davit.py``) plus ``norms`` -> ``head.norm``, which Florence-2
lacks and MI2 has (research note mi2_unicl.md §7).
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

from radadapt.errors import ModelError

IMAGE_PREFIX = "image_encoder."
TEXT_PREFIX = "lang_encoder."
HEAD_KEYS = ("image_projection", "lang_projection", "logit_scale")
LEGACY_PREFIXES = {"visual.": IMAGE_PREFIX, "text.": TEXT_PREFIX}
LEGACY_KEYS = {"vision_projection": "image_projection", "text_projection": "lang_projection"}

_FIELDS = {
    "s": r"\d+",  # stage
    "d": r"[1-9]\d*",  # stage with a downsampling layer (stage 0 has the stem instead)
    "b": r"\d+",  # block within a stage / text layer
    "p": r"weight|bias",
    "lin": r"qkv|proj",
    "fc": r"fc1|fc2",
    "blk": r"spatial_block|channel_block",
    "ln": r"ln_1|ln_2",
    "c": r"c_fc|c_proj",
    "mha": r"in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias",
}

# (released MI2 DaViT name, timm DaVit name); one row per tensor family.
_IMAGE_RULES = [
    ("convs.0.proj.{p}", "stem.conv.{p}"),
    ("convs.0.norm.{p}", "stem.norm.{p}"),
    ("convs.{d}.proj.{p}", "stages.{d}.downsample.conv.{p}"),
    ("convs.{d}.norm.{p}", "stages.{d}.downsample.norm.{p}"),
    ("blocks.{s}.{b}.{blk}.conv1.fn.dw.{p}", "stages.{s}.blocks.{b}.{blk}.cpe1.proj.{p}"),
    ("blocks.{s}.{b}.{blk}.conv2.fn.dw.{p}", "stages.{s}.blocks.{b}.{blk}.cpe2.proj.{p}"),
    ("blocks.{s}.{b}.spatial_block.window_attn.norm.{p}", "stages.{s}.blocks.{b}.spatial_block.norm1.{p}"),
    ("blocks.{s}.{b}.spatial_block.window_attn.fn.{lin}.{p}", "stages.{s}.blocks.{b}.spatial_block.attn.{lin}.{p}"),
    ("blocks.{s}.{b}.channel_block.channel_attn.norm.{p}", "stages.{s}.blocks.{b}.channel_block.norm1.{p}"),
    ("blocks.{s}.{b}.channel_block.channel_attn.fn.{lin}.{p}", "stages.{s}.blocks.{b}.channel_block.attn.{lin}.{p}"),
    ("blocks.{s}.{b}.{blk}.ffn.norm.{p}", "stages.{s}.blocks.{b}.{blk}.norm2.{p}"),
    ("blocks.{s}.{b}.{blk}.ffn.fn.net.{fc}.{p}", "stages.{s}.blocks.{b}.{blk}.mlp.{fc}.{p}"),
    ("norms.{p}", "head.norm.{p}"),
]

# The text tower keeps its released names; the rules only say which names exist.
_TEXT_RULES = [
    ("token_embedding.weight", "token_embedding.weight"),
    ("positional_embedding", "positional_embedding"),
    ("resblocks.{b}.attn.{mha}", "resblocks.{b}.attn.{mha}"),
    ("resblocks.{b}.{ln}.{p}", "resblocks.{b}.{ln}.{p}"),
    ("resblocks.{b}.mlp.{c}.{p}", "resblocks.{b}.mlp.{c}.{p}"),
    ("ln_final.{p}", "ln_final.{p}"),
]


def _compile(template: str) -> re.Pattern:
    parts = re.split(r"\{(\w+)\}", template)
    regex = "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>{_FIELDS[p]})" for i, p in enumerate(parts))
    return re.compile(regex)


def _rules(pairs: list[tuple[str, str]], reverse: bool) -> list[tuple[re.Pattern, str]]:
    return [(_compile(b if reverse else a), a if reverse else b) for a, b in pairs]


_IMAGE_TO_TIMM = _rules(_IMAGE_RULES, reverse=False)
_IMAGE_FROM_TIMM = _rules(_IMAGE_RULES, reverse=True)
_TEXT = _rules(_TEXT_RULES, reverse=False)


def _map_key(key: str, rules: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, target in rules:
        m = pattern.fullmatch(key)
        if m:
            return target.format(**m.groupdict())
    return None


def _list(keys: Iterable[str], limit: int = 6) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def _unknown(keys: list[str], naming: str) -> ModelError:
    return ModelError(
        "models.mi2_unknown_keys",
        f"{len(keys)} tensor(s) are not part of the MI2 {naming} layout: {_list(keys)}",
        hint="the file is not an MI2 (MedImageInsight) checkpoint, or a newer variant radadapt does not know",
    )


def _put(out: dict, key: str, value: Any, duplicates: list[str]) -> None:
    if key in out:
        duplicates.append(key)
    out[key] = value


def _raise_duplicates(duplicates: list[str]) -> None:
    if duplicates:
        raise ModelError(
            "models.mi2_duplicate_keys",
            f"{len(duplicates)} tensor(s) appear under two names (e.g. both visual.* and image_encoder.*): "
            f"{_list(duplicates)}",
        )


def rename_legacy_keys(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Old UniCL names -> current released names (``visual.`` -> ``image_encoder.``, ``text.`` ->
    ``lang_encoder.``, ``vision_projection`` -> ``image_projection``, ``text_projection`` -> ``lang_projection``)."""
    out: dict[str, Any] = {}
    duplicates: list[str] = []
    for key, value in state_dict.items():
        new = LEGACY_KEYS.get(key, key)
        for old, current in LEGACY_PREFIXES.items():
            if key.startswith(old):
                new = current + key[len(old):]
        _put(out, new, value, duplicates)
    _raise_duplicates(duplicates)
    return out


def image_key_to_timm(key: str) -> str | None:
    """One MI2 DaViT key (without ``image_encoder.``) -> timm ``DaVit`` key; None if no rule matches."""
    return _map_key(key, _IMAGE_TO_TIMM)


def image_key_from_timm(key: str) -> str | None:
    """One timm ``DaVit`` key -> MI2 DaViT key (without ``image_encoder.``); None if no rule matches."""
    return _map_key(key, _IMAGE_FROM_TIMM)


def convert_released_to_radadapt(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Released (or legacy-named) MI2 state dict -> ``MI2Model`` state dict. Unknown keys -> ModelError."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    duplicates: list[str] = []
    for key, value in rename_legacy_keys(state_dict).items():
        if key.startswith(IMAGE_PREFIX):
            new = image_key_to_timm(key[len(IMAGE_PREFIX):])
            new = None if new is None else IMAGE_PREFIX + new
        elif key.startswith(TEXT_PREFIX):
            new = _map_key(key[len(TEXT_PREFIX):], _TEXT)
            new = None if new is None else TEXT_PREFIX + new
        else:
            new = key if key in HEAD_KEYS else None
        if new is None:
            unknown.append(key)
        else:
            _put(out, new, value, duplicates)
    if unknown:
        raise _unknown(unknown, "released")
    _raise_duplicates(duplicates)
    return out


def convert_radadapt_to_released(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """``MI2Model`` state dict -> the released naming (what ``vision_model/medimageinsigt-v1.0.0.pt`` holds)."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        if key.startswith(IMAGE_PREFIX):
            new = image_key_from_timm(key[len(IMAGE_PREFIX):])
            new = None if new is None else IMAGE_PREFIX + new
        elif key.startswith(TEXT_PREFIX):
            new = key if _map_key(key[len(TEXT_PREFIX):], _TEXT) else None
        else:
            new = key if key in HEAD_KEYS else None
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise _unknown(unknown, "radadapt")
    return out


def convert_image_to_timm(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The image tower of a released *or* radadapt state dict -> timm ``davit_huge_fl`` keys (no prefix).
    Other towers' keys are ignored; an ``image_encoder.*`` key that matches no rule is an error."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in rename_legacy_keys(state_dict).items():
        if not key.startswith(IMAGE_PREFIX):
            continue
        sub = key[len(IMAGE_PREFIX):]
        new = image_key_to_timm(sub)
        if new is None and image_key_from_timm(sub) is not None:
            new = sub  # already timm-named (a radadapt state dict)
        if new is None:
            unknown.append(key)
        else:
            out[new] = value
    if unknown:
        raise _unknown(unknown, "image tower")
    return out


def convert_timm_to_image(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """timm ``DaVit`` keys -> released ``image_encoder.*`` keys. A classifier (``head.fc``) is refused:
    MI2's image tower has none."""
    out: dict[str, Any] = {}
    unknown: list[str] = []
    for key, value in state_dict.items():
        new = image_key_from_timm(key)
        if new is None:
            unknown.append(key)
        else:
            out[IMAGE_PREFIX + new] = value
    if unknown:
        raise _unknown(unknown, "timm DaViT")
    return out
