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

import numpy as np

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
# 2024.09.27/. The weights are pinned by content (LFS sha256 and size, research note mi2_unicl.md §0);
# hub.py records the commit it resolved `HUB_REVISION` to.
HUB_REPO = "lion-ai/MedImageInsights"
HUB_REVISION = "main"
HUB_SUBDIR = "2024.09.27"
HUB_FILES = tuple(f"{HUB_SUBDIR}/{f}" for f in RELEASE_FILES)
HUB_SHA256 = {f"{HUB_SUBDIR}/{WEIGHTS_FILE}": "5eeda63bf616a61664bc95b2c09d3b3d7125209e635678bd3f5f324e9bdb1414"}
HUB_SIZES = {f"{HUB_SUBDIR}/{WEIGHTS_FILE}": 2_464_060_700}

_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit on the JSON header


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


# -- safetensors, strictly ---------------------------------------------------------------------------------------
def read_weights(path: str | Path) -> dict[str, "torch.Tensor"]:
    """Read a safetensors file after checking its header against the file size, so a truncated download or
    a pickled ``.pt`` is a clear error (radadapt never unpickles)."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise ModelError("models.mi2_incomplete", f"weights file not found: {p}")
    size = p.stat().st_size
    with open(p, "rb") as fh:
        head = fh.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        header = fh.read(n) if 0 < n <= min(_MAX_HEADER, size - 8) else b""
    try:
        meta = json.loads(header.decode("utf-8")) if header else None
    except (UnicodeDecodeError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise ModelError(
            "models.mi2_not_safetensors",
            f"{p} is not a safetensors file (a pickled torch checkpoint, or damaged)",
            hint="radadapt only loads safetensors; the released MI2 weights are safetensors despite the .pt name",
        )
    end = max((v["data_offsets"][1] for k, v in meta.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise ModelError(
            "models.mi2_truncated",
            f"{p} is truncated: {size} bytes, the header promises {8 + n + end}",
            hint="the download was interrupted; pull it again",
        )
    try:
        return load_file(str(p))
    except Exception as exc:  # safetensors raises its own error types; keep only the type name
        raise ModelError("models.mi2_not_safetensors", f"{p} cannot be read as safetensors ({type(exc).__name__})") from None


_ST_DTYPES = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64", "int64": "I64",
              "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def write_safetensors(path: str | Path, tensors: Mapping[str, "torch.Tensor"], metadata: dict | None = None) -> str:
    """Stream tensors into a safetensors file, atomically (one tensor in memory at a time, never the whole
    2.5 GB byte string); returns the file's sha256."""
    import torch

    names = sorted(tensors)
    header: dict[str, Any] = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name in names:
        t = tensors[name]
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _ST_DTYPES[str(t.dtype).removeprefix("torch.")], "shape": list(t.shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)  # the format aligns the data section to 8 bytes
    digest = hashlib.sha256()
    with atomic.atomic_open(path, "wb") as fh:
        for chunk in (struct.pack("<Q", len(blob)), blob):
            fh.write(chunk)
            digest.update(chunk)
        for name in names:
            data = tensors[name].detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy()
            fh.write(memoryview(data))
            digest.update(memoryview(data))
    return digest.hexdigest()


# -- load and save ----------------------------------------------------------------------------------------------
def load_pretrained(path: str | Path, device: str = "cpu") -> tuple["MI2Model", Any, "MI2Config", dict[str, str]]:
    """(model in eval mode on ``device``, tokenizer, config, {release file: sha256}) from an MI2 directory.

    The model is built on the meta device (no memory), every file tensor is checked by name and shape in the
    file's own naming, then converted and assigned; floating tensors are kept in fp32.
    """
    import torch

    from radadapt.models.mi2_convert import (check_state_dict, convert_radadapt_to_released,
                                             convert_released_to_radadapt, rename_legacy_keys)
    from radadapt.models.mi2_model import MI2Model

    root = resolve_release_dir(path)
    tokenizer = load_tokenizer(root / TOKENIZER_DIR)
    cfg = load_config(root / CONFIG_FILE, vocab_size=len(tokenizer))
    with torch.device("meta"):
        model = MI2Model(cfg)
    expected = convert_radadapt_to_released({k: tuple(v.shape) for k, v in model.state_dict().items()})
    state = rename_legacy_keys(read_weights(root / WEIGHTS_FILE))
    check_state_dict(state, expected, WEIGHTS_FILE)
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
    state = convert_radadapt_to_released(model.state_dict())
    write_safetensors(out / WEIGHTS_FILE, state)
    return file_hashes(out)


def save_timm_image_tower(model: "MI2Model", path: str | Path) -> str:
    """The image tower alone, timm ``DaVit`` key names, safetensors: ``timm.create_model("davit_huge_fl",
    pretrained=True, pretrained_cfg_overlay=dict(file=path), num_classes=0)`` loads it (other sizes: add the
    config's ``timm_kwargs()``). Returns the file's sha256."""
    return write_safetensors(path, model.image_encoder.state_dict())


# -- the frozen encoder -------------------------------------------------------------------------------------------
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


def load_encoder(path: str | Path, device: str = "cpu") -> MI2Encoder:
    model, tokenizer, cfg, hashes = load_pretrained(path, device=device)
    return MI2Encoder(model, tokenizer, cfg, fingerprint_from_hashes(hashes), device=device)


def write_tiny(out_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """A tiny random MI2 in exactly the released layout (see ``mi2_tiny``); returns {file: sha256}."""
    from radadapt.models.mi2_tiny import write_tiny_model

    return write_tiny_model(out_dir, seed=seed)
