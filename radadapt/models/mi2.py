"""MedImageInsight ("MI2") family: the released directory, strict loading, saving back, the frozen encoder.

A model directory is the released layout (docs/architecture.md §4, docs/models_mi2.md)::

    config.yaml                                        architecture + recipe (read with yaml.safe_load)
    vision_model/medimageinsigt-v1.0.0.pt              BOTH towers, safetensors despite the name (and typo)
    language_model/clip_tokenizer_4.16.2/              vocab.json, merges.txt, tokenizer_config.json,
                                                       special_tokens_map.json (transformers CLIPTokenizer)

or a directory holding exactly one dated subfolder with these (the hub's ``2024.09.27/``). Loading never
unpickles and never runs remote code; every tensor is mapped by name and checked by shape
(``mi2_convert``); inference is always in eval mode (the released wrapper forgets, so its embeddings are
stochastic under drop-path 0.2). This module imports no heavy library at import time (the registry imports
it to detect directories); torch, timm and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from radadapt import atomic
from radadapt.errors import ModelError
from radadapt.models.encoder import Encoder, sha256_file

if TYPE_CHECKING:
    import torch

    from radadapt.models.mi2_model import MI2Config, MI2Model

NAME = "mi2"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "vision_model/medimageinsigt-v1.0.0.pt"
TOKENIZER_DIR = "language_model/clip_tokenizer_4.16.2"
TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
RELEASE_FILES = (CONFIG_FILE, WEIGHTS_FILE, *(f"{TOKENIZER_DIR}/{f}" for f in TOKENIZER_FILES))

# `radadapt models pull mi2` (hub.py). A third-party re-upload of Microsoft's Azure release, files under
# 2024.09.27/. The weights are pinned by content (LFS sha256 and size, research note mi2_unicl.md §0); no
# commit could be verified offline, so no revision is pinned: pull resolves `main` and records the commit.
HUB_REPO = "lion-ai/MedImageInsights"
HUB_REVISION = None
HUB_SUBDIR = "2024.09.27"
HUB_FILES = tuple(f"{HUB_SUBDIR}/{f}" for f in RELEASE_FILES)
HUB_SHA256 = {f"{HUB_SUBDIR}/{WEIGHTS_FILE}": "5eeda63bf616a61664bc95b2c09d3b3d7125209e635678bd3f5f324e9bdb1414"}
HUB_SIZES = {f"{HUB_SUBDIR}/{WEIGHTS_FILE}": 2_464_060_700}

_MISMATCH_HINT = "config.yaml, the tokenizer and the weights file must come from the same MI2 release"


# -- the directory ---------------------------------------------------------------------------------------------
def _has_release(p: Path) -> bool:
    return (p / CONFIG_FILE).is_file() and (p / WEIGHTS_FILE).is_file()


def resolve_release_dir(path: str | Path) -> Path:
    """The directory holding config.yaml and the weights: ``path`` itself or its single dated subfolder."""
    p = Path(path)
    if _has_release(p):
        return p
    subs = [s for s in p.iterdir() if s.is_dir() and _has_release(s)] if p.is_dir() else []
    if len(subs) == 1:
        return subs[0]
    if len(subs) > 1:
        raise ModelError(
            "models.mi2_ambiguous",
            f"{p} holds {len(subs)} MI2 releases ({', '.join(sorted(s.name for s in subs))})",
            hint="point at one of the dated subfolders",
        )
    missing = [f for f in (CONFIG_FILE, WEIGHTS_FILE) if not (p / f).is_file()]
    raise ModelError(
        "models.mi2_incomplete",
        f"{p} is not an MI2 release directory (missing: {', '.join(missing)})",
        hint="download it with `radadapt models pull mi2`, or make a tiny one with `radadapt models tiny mi2`",
    )


def is_model_dir(path: str | Path) -> bool:
    try:
        resolve_release_dir(path)
    except (ModelError, OSError):
        return False
    return True


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every release file present (relative path -> hex digest)."""
    return {rel: sha256_file(root / rel) for rel in RELEASE_FILES if (root / rel).is_file()}


def fingerprint_from_hashes(hashes: Mapping[str, str]) -> str:
    """Same value as ``encoder.fingerprint_files([weights, config.yaml])`` without hashing 2.5 GB again."""
    h = hashlib.sha256()
    for rel in sorted((CONFIG_FILE, WEIGHTS_FILE), key=lambda r: Path(r)):
        h.update(Path(rel).name.encode())
        h.update(hashes[rel].encode())
    return h.hexdigest()


# -- config and tokenizer --------------------------------------------------------------------------------------
def load_config(path: str | Path, vocab_size: int = 49408) -> "MI2Config":
    """config.yaml -> ``MI2Config`` (yaml.safe_load: no Python tags, no code)."""
    import yaml

    from radadapt.models.mi2_model import MI2Config

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError("models.mi2_bad_config", f"{p} cannot be read as YAML ({type(exc).__name__})") from None
    if not isinstance(raw, dict):
        raise ModelError("models.mi2_bad_config", f"{p} is not a YAML mapping")
    return MI2Config(raw, source_text=text, vocab_size=vocab_size)


def load_tokenizer(tokenizer_dir: str | Path):
    """transformers ``CLIPTokenizer`` from the local folder only (never the hub), as the release builds it:
    EOS doubles as pad, unk and cls; EOS must be the largest id (pooling takes argmax of the ids)."""
    from transformers import CLIPTokenizer

    d = Path(tokenizer_dir)
    missing = [f for f in TOKENIZER_FILES if not (d / f).is_file()]
    if missing:
        raise ModelError("models.mi2_incomplete", f"tokenizer folder {d} lacks {', '.join(missing)}")
    try:
        tok = CLIPTokenizer.from_pretrained(str(d), local_files_only=True)
    except Exception as exc:  # transformers raises many types; keep only the type name (no paths)
        raise ModelError("models.mi2_bad_tokenizer", f"tokenizer in {d} cannot be loaded ({type(exc).__name__})") from None
    tok.add_special_tokens({"cls_token": tok.eos_token})
    if tok.eos_token_id is None or tok.eos_token_id != len(tok) - 1:
        raise ModelError(
            "models.mi2_bad_tokenizer",
            f"tokenizer in {d}: <|endoftext|> must have the largest id (MI2 pools at argmax of the ids)",
        )
    return tok


def tokenize(tokenizer, texts: Sequence[str], context_length: int = 77) -> dict[str, "torch.Tensor"]:
    """Lower-cased CLIP BPE, ``<|startoftext|> ... <|endoftext|>``, padded/truncated to ``context_length``."""
    enc = tokenizer(list(texts), padding="max_length", max_length=context_length, truncation=True,
                    return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


# -- safetensors ---------------------------------------------------------------------------------------------------
_ST_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
              "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def safetensors_header(tensors: Mapping[str, "torch.Tensor"], metadata: Mapping[str, str] | None = None) -> bytes:
    """The 8-byte length prefix and JSON header of a safetensors file holding ``tensors`` in name order (works
    on meta tensors, so the real file's size can be computed without memory)."""
    header: dict[str, Any] = {"__metadata__": dict(metadata)} if metadata else {}
    offset = 0
    for name in sorted(tensors):
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_DTYPES[str(t.dtype).removeprefix("torch.")], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the format aligns the data section to 8 bytes
    return struct.pack("<Q", len(blob)) + blob


def write_safetensors(path: str | Path, tensors: Mapping[str, "torch.Tensor"],
                      metadata: Mapping[str, str] | None = None) -> str:
    """Stream tensors into a safetensors file, atomically, one tensor in memory at a time (never the whole
    2.5 GB byte string, unlike ``safetensors.torch.save``); returns the file's sha256, computed on the way."""
    import torch

    digest = hashlib.sha256()
    with atomic.atomic_open(path, "wb") as fh:
        head = safetensors_header(tensors, metadata)
        fh.write(head)
        digest.update(head)
        for name in sorted(tensors):
            data = memoryview(tensors[name].detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy())
            fh.write(data)
            digest.update(data)
    return digest.hexdigest()


# -- load and save ----------------------------------------------------------------------------------------------
def load_pretrained(path: str | Path, device: str = "cpu") -> tuple["MI2Model", Any, "MI2Config", dict[str, str]]:
    """(model in eval mode on ``device``, tokenizer, config, {release file: sha256}) from an MI2 directory.

    The model is built on the meta device (no memory), every file tensor is checked by name and shape in the
    file's own naming, then converted and assigned; floating tensors are kept in fp32.
    """
    import torch

    from radadapt.models import weights
    from radadapt.models.mi2_convert import (convert_radadapt_to_released, convert_released_to_radadapt,
                                             rename_legacy_keys)
    from radadapt.models.mi2_model import MI2Model

    root = resolve_release_dir(path)
    tokenizer = load_tokenizer(root / TOKENIZER_DIR)
    cfg = load_config(root / CONFIG_FILE, vocab_size=len(tokenizer))
    with torch.device("meta"):
        model = MI2Model(cfg)
    expected = convert_radadapt_to_released({k: tuple(v.shape) for k, v in model.state_dict().items()})
    state = rename_legacy_keys(weights.load_file(root / WEIGHTS_FILE)[0])  # header checked before parsing
    weights.check_state_dict(expected, weights.shapes(state), what=WEIGHTS_FILE, hint=_MISMATCH_HINT)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in convert_released_to_radadapt(state).items()}
    model.load_state_dict(state, strict=True, assign=True)
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):  # pragma: no cover - a programming error
        raise RuntimeError("MI2 model has tensors left on the meta device after loading")
    model.eval().to(device)
    return model, tokenizer, cfg, file_hashes(root)


def save_model_dir(
    model: "MI2Model", tokenizer_dir_or_files: str | Path | Mapping[str, str | Path], out_dir: str | Path,
    config: "MI2Config | None" = None,
) -> dict[str, str]:
    """Write the released layout (config.yaml, the single safetensors weights file in released key names,
    the tokenizer files copied byte for byte); returns {relative path: sha256}."""
    import yaml

    from radadapt.models.mi2_convert import convert_radadapt_to_released

    out = Path(out_dir)
    cfg = config or model.config
    if isinstance(tokenizer_dir_or_files, Mapping):
        sources = {name: Path(p) for name, p in tokenizer_dir_or_files.items()}
    else:
        sources = {name: Path(tokenizer_dir_or_files) / name for name in TOKENIZER_FILES}
    missing = [n for n in TOKENIZER_FILES if n not in sources or not sources[n].is_file()]
    if missing:
        raise ModelError("models.mi2_incomplete", f"tokenizer files missing: {', '.join(missing)}")
    text = cfg.source_text if cfg.source_text is not None else yaml.safe_dump(cfg.raw, sort_keys=False)
    atomic.write_text(out / CONFIG_FILE, text)
    for name in TOKENIZER_FILES:
        atomic.write_bytes(out / TOKENIZER_DIR / name, sources[name].read_bytes())
    # no __metadata__: a real-size file is then byte-for-byte the released size (docs/models_mi2.md)
    digest = write_safetensors(out / WEIGHTS_FILE, convert_radadapt_to_released(model.state_dict()))
    hashes = {rel: sha256_file(out / rel) for rel in RELEASE_FILES if rel != WEIGHTS_FILE}
    return {**hashes, WEIGHTS_FILE: digest}


def save_timm_image_tower(model: "MI2Model", path: str | Path) -> str:
    """The image tower alone, timm ``DaVit`` key names, safetensors: ``timm.create_model("davit_huge_fl",
    pretrained=True, pretrained_cfg_overlay=dict(file=path), num_classes=0)`` loads it (other sizes: add the
    config's ``timm_kwargs()``). Returns the file's sha256."""
    return write_safetensors(path, model.image_encoder.state_dict(), metadata={"format": "pt"})


def timm_pretrained_cfg_overlay(config: "MI2Config", path: str | Path) -> dict[str, Any]:
    """``pretrained_cfg_overlay`` for timm: the saved tower file plus MI2's preprocessing (square input at the
    config size, squash resize with no crop, bicubic, ImageNet mean/std) instead of Florence-2's 768 px."""
    s = config.image_size
    return {"file": str(path), "input_size": (3, s, s), "crop_pct": 1.0, "crop_mode": "squash",
            "interpolation": "bicubic", "mean": tuple(config.image_mean), "std": tuple(config.image_std),
            "num_classes": 0}


# -- the frozen encoder and `models info` -------------------------------------------------------------------------
def load_encoder(path: str | Path, device: str = "cpu") -> Encoder:
    """The frozen ``MI2Encoder`` (``mi2_encoder``) with its fingerprint (sha256 of weights + config.yaml)."""
    from radadapt.models.mi2_encoder import MI2Encoder

    model, tokenizer, cfg, hashes = load_pretrained(path, device=device)
    return MI2Encoder(model, tokenizer, cfg, fingerprint_from_hashes(hashes), device=device)


def describe(path: str | Path, *, verify: bool = False) -> dict[str, Any]:
    """What ``radadapt models info`` shows: architecture and preprocessing from config.yaml, parameter counts
    from the weights header (no tensor read), every file with size and sha256, the pull record; ``verify``
    loads the model strictly (every tensor mapped and shape-checked)."""
    import math

    from radadapt.models import weights

    root = resolve_release_dir(path)
    cfg = load_config(root / CONFIG_FILE)
    shapes = weights.header_shapes(root / WEIGHTS_FILE)
    count = lambda prefix: sum(math.prod(s) for k, s in shapes.items() if k.startswith(prefix))  # noqa: E731
    info: dict[str, Any] = {
        "family": NAME, "path": str(root), "layouts": ["mi2-release"],
        "architecture": {"image": {"timm": "davit_huge_fl", **cfg.timm_kwargs(), "is_davit_huge_fl": cfg.is_huge},
                         "text": {"width": cfg.text_width, "layers": cfg.text_layers, "heads": cfg.text_heads,
                                  "context_length": cfg.context_length, "bidirectional": not cfg.autoregressive},
                         "projection_dim": cfg.projection_dim},
        "parameters": {"image": count("image_encoder.") + count("visual."), "text": count("lang_encoder.") + count("text."),
                       "total": sum(math.prod(s) for s in shapes.values()), "tensors": len(shapes)},
        "preprocessing": {"resize": [cfg.image_size, cfg.image_size], "crop": None, "interpolation": "bicubic",
                          "mean": list(cfg.image_mean), "std": list(cfg.image_std), "grey": "replicated to RGB"},
    }
    for base in (root, root.parent):
        if (base / "pull.json").is_file():
            pull = json.loads((base / "pull.json").read_text(encoding="utf-8"))
            info["pulled_from"] = {k: pull.get(k) for k in ("repo", "revision", "commit", "pulled_at")}
            break
    info["files"] = [{"name": rel, "bytes": (root / rel).stat().st_size, "sha256": digest}
                     for rel, digest in file_hashes(root).items()]
    if verify:
        model = load_pretrained(root)[0]
        info["verify"] = {"strict_load": "ok", "tensors": len(model.state_dict())}
    return info


def write_tiny(out_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """A tiny random MI2 in exactly the released layout (see ``mi2_tiny``); returns {file: sha256}."""
    from radadapt.models.mi2_tiny import write_tiny_model

    return write_tiny_model(out_dir, seed=seed)
