"""The family layouts of an export, written with the model families' own strict loaders and writers.

RAD-DINO (``write_rad_dino``)::

    config.json, model.safetensors, preprocessor_config.json    transformers Dinov2Model + BitImageProcessor
    meta/backbone_compatible.safetensors, meta/dino_head.safetensors, meta/config.json,
    meta/preprocessor_config.json                                Meta DINOv2 names + the DINO head (a complete
                                                                 model directory: `train --weights DIR/meta`)

MI2 (``write_mi2``)::

    image_tower/model.safetensors, image_tower/config.json      timm DaVit names; timm's local-dir config
    text_tower/model.safetensors, text_tower/config.json        the MI2 text transformer, released names
    projections.safetensors                                     image_projection, lang_projection, logit_scale
    tokenizer/                                                  CLIP BPE files (transformers CLIPTokenizer)
    mi2/                                                        the released layout (config.yaml, both towers
                                                                in vision_model/medimageinsigt-v1.0.0.pt, tokenizer)

Every file is written from the model as loaded strictly from the run's ``final/``; afterwards every file is read
back and compared tensor for tensor with that model (RAD-DINO: through the strict loaders of both layouts; MI2:
streamed one tensor at a time, so the 2.5 GB model is never held twice), so an export never holds weights other
than the run's. The tests load every layout with the strict loaders, transformers and timm.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Mapping

from radadapt import atomic
from radadapt.errors import ModelError

META_DIR = "meta"


def _same_file(path: Path, expected: Mapping[str, Any], what: str) -> None:
    """A safetensors file holds exactly ``expected`` (names, shapes, values), read one tensor at a time so a
    2.5 GB file never sits in memory beside the model it came from."""
    import torch
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        if set(fh.keys()) != set(expected):
            raise ModelError("export.layout_mismatch",
                             f"{what}: the exported tensors differ in names from the run's model")
        for name in expected:
            t = fh.get_tensor(name)
            if t.shape != expected[name].shape or not torch.equal(t, expected[name].detach().to(t.dtype)):
                raise ModelError("export.layout_mismatch", f"{what}: tensor {name} differs from the run's model")


def _same(a: Mapping[str, Any], b: Mapping[str, Any], what: str) -> None:
    import torch

    if set(a) != set(b):
        raise ModelError("export.layout_mismatch", f"{what}: the exported tensors differ in names from the run's model")
    bad = [k for k in a if a[k].shape != b[k].shape or not torch.equal(a[k].float(), b[k].float())]
    if bad:
        raise ModelError("export.layout_mismatch", f"{what}: {len(bad)} exported tensor(s) differ from the run's model")


def encoder_fingerprint(family: str, model_dir: Path) -> str:
    """What ``registry.load_encoder(model_dir).fingerprint`` gives (the benchmark's model identity and feature
    cache key), from file hashes alone: RAD-DINO hashes its backbone safetensors (transformers layout first, as
    ``load_backbone`` prefers) and preprocessor_config.json (models/rad_dino_encoder.py); MI2 its weights and
    config.yaml (models/mi2.py). The tests check both against the registry."""
    from radadapt.models import mi2, rad_dino
    from radadapt.models.encoder import fingerprint_files

    if family == "mi2":
        root = mi2.resolve_release_dir(model_dir)
        return mi2.fingerprint_from_hashes(mi2.file_hashes(root))
    root = Path(model_dir)
    if (root / rad_dino.HF_INDEX).is_file():
        index = json.loads((root / rad_dino.HF_INDEX).read_text(encoding="utf-8")).get("weight_map") or {}
        keyed = [root / n for n in sorted(set(index.values()))]
    elif (root / rad_dino.HF_WEIGHTS).is_file():
        keyed = [root / rad_dino.HF_WEIGHTS]
    else:
        keyed = [root / rad_dino.META_WEIGHTS]
    if (root / rad_dino.PREPROCESSOR).is_file():
        keyed.append(root / rad_dino.PREPROCESSOR)
    return fingerprint_files(keyed)


# -- RAD-DINO ------------------------------------------------------------------------------------------------------
def write_rad_dino(final: Path, out: Path, extra: Mapping[str, Any]) -> dict[str, Any]:
    """Transformers files at ``out``, the Meta backbone + head under ``out/meta``; returns what the card needs."""
    from radadapt.models import rad_dino

    has_head = (final / rad_dino.HEAD_WEIGHTS).is_file()
    ck = rad_dino.load_pretrained(final, head="file" if has_head else "none")
    staged = out / ".rad_dino"
    rad_dino.save_model_dir(ck.backbone, ck.head, staged, preprocessing=ck.preprocessing, extra=dict(extra))
    (out / META_DIR).mkdir(parents=True, exist_ok=True)
    for name in (rad_dino.CONFIG, rad_dino.HF_WEIGHTS, rad_dino.PREPROCESSOR):
        os.replace(staged / name, out / name)
    for name in (rad_dino.META_WEIGHTS, rad_dino.HEAD_WEIGHTS):
        if (staged / name).is_file():
            os.replace(staged / name, out / META_DIR / name)
    for name in (rad_dino.CONFIG, rad_dino.PREPROCESSOR):  # so meta/ alone is a complete model directory
        atomic.write_bytes(out / META_DIR / name, (out / name).read_bytes())
    shutil.rmtree(staged)

    # Read every layout back and compare with the run's model.
    reference = ck.backbone.state_dict()
    hf, *_ = rad_dino.load_backbone(out, layout="transformers")
    _same(reference, hf.state_dict(), "model.safetensors")
    meta = rad_dino.load_pretrained(out / META_DIR, layout="meta", head="file" if has_head else "none")
    _same(reference, meta.backbone.state_dict(), f"{META_DIR}/{rad_dino.META_WEIGHTS}")
    if has_head:
        _same(ck.head.state_dict(), meta.head.state_dict(), f"{META_DIR}/{rad_dino.HEAD_WEIGHTS}")
    if rad_dino.load_preprocessing(out).to_processor_config() != ck.preprocessing.to_processor_config():
        raise ModelError("export.layout_mismatch", "preprocessor_config.json differs from the run's preprocessing")

    config = ck.config
    return {
        "layout": [
            ("config.json", "transformers `Dinov2Model` configuration"),
            ("model.safetensors", "the backbone in transformers names (`AutoModel.from_pretrained`)"),
            ("preprocessor_config.json", "`AutoImageProcessor`: resize, centre crop, normalisation"),
            (f"{META_DIR}/{rad_dino.META_WEIGHTS}", "the same backbone in Meta DINOv2 names"),
            *([(f"{META_DIR}/{rad_dino.HEAD_WEIGHTS}", "the DINO head (Meta names), to continue training")]
              if has_head else []),
            (f"{META_DIR}/config.json, {META_DIR}/preprocessor_config.json", "copies, so `meta/` is a model folder"),
        ],
        "architecture": f"DINOv2 ViT, {config.num_hidden_layers} layers, width {config.hidden_size}, patch "
                        f"{config.patch_size}, {config.image_size} px",
        "run_fingerprint": encoder_fingerprint("rad_dino", final),
        "fingerprint": encoder_fingerprint("rad_dino", out),
        "has_head": has_head, "head_source": ck.head_source,
        "image_size": int(config.image_size),
    }


# -- MI2 -----------------------------------------------------------------------------------------------------------
def write_mi2(final: Path, out: Path) -> dict[str, Any]:
    """Image tower for timm, text tower, projections, tokenizer, and ``mi2/`` in the released layout."""
    from radadapt.models import mi2
    from radadapt.models import weights as wfiles

    from radadapt.models.mi2_convert import convert_radadapt_to_released

    model, _tok, cfg, hashes = mi2.load_pretrained(final)
    release = mi2.resolve_release_dir(final)
    tok_src = release / mi2.TOKENIZER_DIR
    saved = mi2.save_model_dir(model, tok_src, out / "mi2", config=cfg)
    mi2.save_timm_image_tower(model, out / "image_tower" / "model.safetensors")
    atomic.write_json(out / "image_tower" / "config.json", timm_config(cfg))
    state = model.state_dict()
    text = {k.removeprefix("lang_encoder."): v for k, v in state.items() if k.startswith("lang_encoder.")}
    mi2.write_safetensors(out / "text_tower" / "model.safetensors", text, metadata={"format": "pt"})
    atomic.write_json(out / "text_tower" / "config.json", text_config(cfg))
    heads = {k: state[k] for k in ("image_projection", "lang_projection", "logit_scale")}
    mi2.write_safetensors(out / "projections.safetensors", heads, metadata={"format": "pt"})
    for name in mi2.TOKENIZER_FILES:
        atomic.write_bytes(out / "tokenizer" / name, (tok_src / name).read_bytes())

    # Read every file back (header checked first) and compare with the run's model, tensor by tensor.
    for rel, expected in ((f"mi2/{mi2.WEIGHTS_FILE}", convert_radadapt_to_released(state)),
                          ("image_tower/model.safetensors", model.image_encoder.state_dict()),
                          ("text_tower/model.safetensors", text), ("projections.safetensors", heads)):
        wfiles.read_header(out / rel)
        _same_file(out / rel, expected, rel)
    kw = cfg.timm_kwargs()
    return {
        "layout": [
            ("image_tower/model.safetensors", "the DaViT image tower in timm names (`davit_huge_fl`)"),
            ("image_tower/config.json", "timm configuration and preprocessing (`local-dir:` loading)"),
            ("text_tower/model.safetensors", "the MI2 text transformer (released names, no prefix)"),
            ("text_tower/config.json", "text tower architecture, pooling and tokenizer"),
            ("projections.safetensors", "`image_projection`, `lang_projection` and `logit_scale`"),
            ("tokenizer/", "CLIP BPE tokenizer (`CLIPTokenizer.from_pretrained`)"),
            ("mi2/", "both towers in the released MedImageInsight layout"),
        ],
        "architecture": f"DaViT image tower (depths {list(kw['depths'])}, widths {list(kw['embed_dims'])}) and a "
                        f"{cfg.text_layers}-layer text transformer, {cfg.projection_dim}-d joint space, "
                        f"{cfg.image_size} px",
        "run_fingerprint": mi2.fingerprint_from_hashes(hashes),
        "fingerprint": mi2.fingerprint_from_hashes(saved),  # = encoder_fingerprint("mi2", out / "mi2")
        "image_size": cfg.image_size, "is_huge": cfg.is_huge, "width": cfg.embed_dims[-1],
        "timm_kwargs": ", ".join(f"{k}={tuple(v) if isinstance(v, (list, tuple)) else v}" for k, v in kw.items()),
        "tiny": str((cfg.raw or {}).get("NAME", "")).startswith("radadapt tiny"),
    }


def timm_config(cfg) -> dict[str, Any]:  # noqa: ANN001 - MI2Config
    """``image_tower/config.json`` in timm's hub format (``create_model("local-dir:...")`` reads it)."""
    s = cfg.image_size
    kw = cfg.timm_kwargs()
    return {
        "architecture": "davit_huge_fl",
        "num_classes": 0,
        "num_features": cfg.embed_dims[-1],
        "global_pool": "avg",
        "model_args": {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in kw.items()},
        "pretrained_cfg": {
            "tag": "radadapt", "custom_load": False, "input_size": [3, s, s], "fixed_input_size": False,
            "interpolation": "bicubic", "crop_pct": 1.0, "crop_mode": "squash", "mean": list(cfg.image_mean),
            "std": list(cfg.image_std), "num_classes": 0, "pool_size": None, "first_conv": "stem.conv",
            "classifier": "head.fc",
        },
    }


def text_config(cfg) -> dict[str, Any]:  # noqa: ANN001 - MI2Config
    return {
        "architecture": "MI2TextTransformer",
        "vocab_size": cfg.vocab_size, "context_length": cfg.context_length, "width": cfg.text_width,
        "layers": cfg.text_layers, "heads": cfg.text_heads, "bidirectional": not cfg.autoregressive,
        "layer_norm": "TF-style LayerNorm, eps 1e-12 inside the square root, statistics in fp32",
        "mlp": "QuickGELU, 4x width", "pooling": "hidden state at the first end-of-text token (argmax of input_ids)",
        "projection": "projections.safetensors: lang_projection [width, dim], L2-normalised output",
        "tokenizer": "../tokenizer (CLIP BPE, lower-cased, padded to context_length)",
        "key_names": "MedImageInsight release names without the lang_encoder. prefix",
    }
