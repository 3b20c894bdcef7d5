"""Pure key converters for DINOv2 ViT backbones: state_dict in, state_dict out.

Three namings of the same tensors (research note rad_dino.md §1, §5):

- **meta**: facebookresearch/dinov2 ``DinoVisionTransformer`` (RAD-DINO's ``backbone_compatible.safetensors``):
  ``cls_token``, ``mask_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.{i}.{norm1, attn.qkv (fused q|k|v),
  attn.proj, ls1.gamma, norm2, mlp.fc1, mlp.fc2 | mlp.w12, mlp.w3, ls2.gamma}``, ``norm.*``. With
  ``block_chunks > 0`` (FSDP wrapping) block keys become ``blocks.{chunk}.{i}.*``; ``unchunk_blocks`` undoes it.
- **hf**: the transformers *file* layout (``model.safetensors`` of microsoft/rad-dino, facebook/dinov2-base):
  ``embeddings.*``, ``encoder.layer.{i}.attention.attention.{query,key,value}``, ``attention.output.dense``,
  ``layer_scale{1,2}.lambda1``, ``mlp.fc1/fc2`` (SwiGLU: ``mlp.weights_in/weights_out``), ``layernorm.*``. This is the
  naming radadapt writes, so every transformers version (4.x and 5.x) loads the files.
- **runtime**: the module names of the *installed* ``transformers.Dinov2Model``. transformers 5 renamed the
  attention (``attention.q_proj`` ... ``attention.o_proj``) and split SwiGLU's fused input (``gate_proj``,
  ``up_proj``) and converts files at load time; ``hf_to_runtime`` / ``runtime_to_hf`` do the same here, and are
  the identity for transformers 4.

Every Meta key is mapped by an explicit rule; a key that matches no rule is a ``models.key_mismatch`` error, never
dropped. Shapes are checked by ``weights.check_state_dict`` against the model built from the config.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from radadapt.errors import ModelError

# (meta, hf) renames inside one block; qkv is split/fused separately.
_BLOCK_RENAMES = (
    ("norm1.", "norm1."),
    ("attn.proj.", "attention.output.dense."),
    ("ls1.gamma", "layer_scale1.lambda1"),
    ("norm2.", "norm2."),
    ("mlp.fc1.", "mlp.fc1."),
    ("mlp.fc2.", "mlp.fc2."),
    ("mlp.w12.", "mlp.weights_in."),
    ("mlp.w3.", "mlp.weights_out."),
    ("ls2.gamma", "layer_scale2.lambda1"),
)
_TOP_RENAMES = (
    ("cls_token", "embeddings.cls_token"),
    ("mask_token", "embeddings.mask_token"),
    ("pos_embed", "embeddings.position_embeddings"),
    ("patch_embed.proj.weight", "embeddings.patch_embeddings.projection.weight"),
    ("patch_embed.proj.bias", "embeddings.patch_embeddings.projection.bias"),
    ("norm.weight", "layernorm.weight"),
    ("norm.bias", "layernorm.bias"),
)
_QKV = ("query", "key", "value")
_META_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_META_CHUNKED = re.compile(r"^blocks\.(\d+)\.(\d+)\.(.+)$")
_HF_BLOCK = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
# transformers 5 runtime names (hf file name -> runtime name), applied only when the installed model uses them.
_RUNTIME_RENAMES = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
    (".mlp.weights_out.", ".mlp.down_proj."),
)


def _unknown(keys: list[str], naming: str) -> ModelError:
    shown = ", ".join(sorted(keys)[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")
    return ModelError(
        "models.key_mismatch",
        f"{len(keys)} key(s) are not part of a DINOv2 backbone in {naming} naming: {shown}",
        hint="registers (register_tokens) and non-DINOv2 checkpoints are not supported",
    )


def unchunk_blocks(state_dict: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``blocks.{chunk}.{i}.*`` (DINOv2 ``block_chunks``) -> ``blocks.{i}.*``; returns (state_dict, was_chunked).

    Meta's chunks pad with ``nn.Identity`` so ``i`` is already the global block index; a block index appearing in
    two chunks is an error (a silently merged file would load the wrong weights).
    """
    if not any(_META_CHUNKED.match(k) for k in state_dict):
        return dict(state_dict), False
    out: dict[str, Any] = {}
    owner: dict[int, int] = {}
    for key, value in state_dict.items():
        m = _META_CHUNKED.match(key)
        if not m:
            out[key] = value
            continue
        chunk, idx, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        if owner.setdefault(idx, chunk) != chunk:
            raise ModelError("models.key_mismatch", f"block {idx} appears in chunks {owner[idx]} and {chunk}")
        out[f"blocks.{idx}.{rest}"] = value
    return out, True


def convert_meta_to_hf(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Meta (``DinoVisionTransformer``) names -> transformers file names; splits ``attn.qkv`` into q, k, v.

    Accepts chunked block keys. The fused qkv rows are ordered q | k | v (Meta's ``Attention.forward`` reshapes
    to ``(B, N, 3, heads, head_dim)``), so row thirds map to query, key and value.
    """
    sd, _ = unchunk_blocks(state_dict)
    out: dict[str, Any] = {}
    top = dict(_TOP_RENAMES)
    unknown = []
    for key, value in sd.items():
        if key in top:
            out[top[key]] = value
            continue
        m = _META_BLOCK.match(key)
        if not m:
            unknown.append(key)
            continue
        i, rest = m.group(1), m.group(2)
        prefix = f"encoder.layer.{i}."
        if rest in ("attn.qkv.weight", "attn.qkv.bias"):
            if value.shape[0] % 3:
                raise ModelError("models.key_mismatch", f"{key} has {value.shape[0]} rows, not a multiple of 3")
            for name, part in zip(_QKV, value.chunk(3, dim=0)):
                out[f"{prefix}attention.attention.{name}.{rest.rsplit('.', 1)[1]}"] = part
            continue
        for meta, hf in _BLOCK_RENAMES:
            if rest.startswith(meta):
                out[prefix + hf + rest[len(meta):]] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise _unknown(unknown, "Meta")
    return out


def convert_hf_to_meta(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """transformers file names -> Meta names; fuses query/key/value into ``attn.qkv`` (q | k | v rows)."""
    import torch

    top = {hf: meta for meta, hf in _TOP_RENAMES}
    out: dict[str, Any] = {}
    qkv: dict[tuple[str, str], dict[str, Any]] = {}
    unknown = []
    for key, value in state_dict.items():
        if key in top:
            out[top[key]] = value
            continue
        m = _HF_BLOCK.match(key)
        if not m:
            unknown.append(key)
            continue
        i, rest = m.group(1), m.group(2)
        q = re.match(r"^attention\.attention\.(query|key|value)\.(weight|bias)$", rest)
        if q:
            qkv.setdefault((i, q.group(2)), {})[q.group(1)] = value
            continue
        for meta, hf in _BLOCK_RENAMES:
            if rest.startswith(hf):
                out[f"blocks.{i}.{meta}{rest[len(hf):]}"] = value
                break
        else:
            unknown.append(key)
    for (i, kind), parts in qkv.items():
        if set(parts) != set(_QKV):
            missing = sorted(set(_QKV) - set(parts))
            raise ModelError("models.key_mismatch", f"layer {i}: attention {kind} lacks {', '.join(missing)}")
        out[f"blocks.{i}.attn.qkv.{kind}"] = torch.cat([parts[n] for n in _QKV], dim=0)
    if unknown:
        raise _unknown(unknown, "transformers")
    return out


def uses_runtime_names(runtime_keys: Mapping[str, Any] | list[str]) -> bool:
    """True when the installed transformers names attention ``q_proj``/``o_proj`` (transformers >= 5)."""
    return any(".attention.q_proj." in k for k in runtime_keys)


def hf_to_runtime(state_dict: Mapping[str, Any], runtime_keys: Mapping[str, Any] | list[str]) -> dict[str, Any]:
    """File names -> the installed ``Dinov2Model``'s names (identity on transformers 4)."""
    if not uses_runtime_names(runtime_keys):
        return dict(state_dict)
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        if ".mlp.weights_in." in key:  # SwiGLU: fused [gate | up] rows -> two Linear layers
            gate, up = value.chunk(2, dim=0)
            out[key.replace(".mlp.weights_in.", ".mlp.gate_proj.")] = gate
            out[key.replace(".mlp.weights_in.", ".mlp.up_proj.")] = up
            continue
        for old, new in _RUNTIME_RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def runtime_to_hf(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """The installed ``Dinov2Model``'s names -> file names (identity on transformers 4)."""
    import torch

    out: dict[str, Any] = {}
    pending: dict[str, dict[str, Any]] = {}
    for key, value in state_dict.items():
        for part in ("gate_proj", "up_proj"):
            if f".mlp.{part}." in key:
                pending.setdefault(key.replace(f".mlp.{part}.", ".mlp.weights_in."), {})[part] = value
                break
        else:
            for old, new in _RUNTIME_RENAMES:
                key = key.replace(new, old)
            out[key] = value
    for key, parts in pending.items():
        out[key] = torch.cat([parts["gate_proj"], parts["up_proj"]], dim=0)
    return out


def infer_meta_config(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A ``Dinov2Config`` keyword dict from the shapes of a Meta-layout backbone (unchunked keys).

    Everything but the head count is in the shapes: width from ``cls_token``, depth from the block indices, patch
    size from the patch projection, image size from ``pos_embed`` (a square grid plus the class position), MLP
    ratio from ``fc1``/``w12``, qkv bias from its presence. Heads: the file's ``num_attention_heads`` metadata
    (radadapt writes it), else the DINOv2 rule that every released ViT (S/B/L/g) uses 64-dim heads; a width not
    divisible by 64 needs a ``config.json`` next to the file.
    """
    if "cls_token" not in shapes or "patch_embed.proj.weight" not in shapes or "pos_embed" not in shapes:
        raise ModelError(
            "models.key_mismatch",
            "not a Meta DINOv2 backbone: cls_token, pos_embed or patch_embed.proj.weight is missing",
        )
    if "register_tokens" in shapes:
        raise ModelError(
            "models.registers_unsupported",
            "this DINOv2 backbone has register tokens, which radadapt does not support",
            hint="use a DINOv2 model without registers (RAD-DINO, facebook/dinov2-base)",
        )
    dim = shapes["cls_token"][-1]
    patch = shapes["patch_embed.proj.weight"][-1]
    n_pos = shapes["pos_embed"][1] - 1
    grid = int(round(n_pos**0.5))
    if grid * grid != n_pos:
        raise ModelError("models.key_mismatch", f"pos_embed has {n_pos} patch positions, not a square grid")
    depth = 1 + max((int(m.group(1)) for k in shapes if (m := _META_BLOCK.match(k))), default=-1)
    swiglu = "blocks.0.mlp.w12.weight" in shapes
    if swiglu:
        hidden = shapes["blocks.0.mlp.w12.weight"][0] // 2
        mlp_ratio = 4  # SwiGLUFFNFused derives its width (2/3 of 4x, rounded to 8) from ratio 4
    else:
        hidden = shapes.get("blocks.0.mlp.fc1.weight", (4 * dim,))[0]
        mlp_ratio = hidden // dim if hidden % dim == 0 else hidden / dim
    meta_heads = (metadata or {}).get("num_attention_heads")
    if meta_heads is not None:
        heads = int(meta_heads)
    elif dim % 64 == 0:
        heads = dim // 64
    else:
        raise ModelError(
            "models.config_needed",
            f"cannot infer the number of attention heads for width {dim} (DINOv2 rule: 64 per head)",
            hint="put the model's config.json (model_type dinov2) next to backbone_compatible.safetensors",
        )
    return {
        "hidden_size": dim,
        "num_hidden_layers": depth,
        "num_attention_heads": heads,
        "mlp_ratio": mlp_ratio,
        "patch_size": patch,
        "image_size": grid * patch,
        "qkv_bias": "blocks.0.attn.qkv.bias" in shapes,
        "use_swiglu_ffn": swiglu,
        "layer_norm_eps": 1e-6,
        "use_mask_token": "mask_token" in shapes,
    }
