"""The RAD-DINO family (Pérez-García et al., Nat. Mach. Intell. 2025): a DINOv2 ViT-B/14 continually pretrained on
chest X-rays, as a ``transformers.Dinov2Model`` plus Meta's DINO head.

A RAD-DINO *model directory* holds any of (research note rad_dino.md §1):

- transformers layout: ``config.json`` (``model_type: dinov2``) + ``model.safetensors`` (or a sharded
  ``model.safetensors.index.json``) + ``preprocessor_config.json``; any DINOv2 transformers checkpoint
  (facebook/dinov2-base ...) is accepted;
- Meta layout: ``backbone_compatible.safetensors`` (``DinoVisionTransformer`` keys, possibly chunked);
- ``dino_head.safetensors``: the DINO/iBOT head in Meta's keys.

``load_pretrained`` loads strictly (every key maps, every shape matches, safetensors only) and never touches the
network: the model is built from the local ``config.json`` (or inferred from the Meta file's shapes, see
``convert_dinov2.infer_meta_config``) and no transformers/hub loading function is called.
``save_model_dir`` writes every file above, so ``AutoModel``/``AutoImageProcessor.from_pretrained(dir)`` load it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping

from radadapt.errors import ModelError
from radadapt.models import convert_dinov2 as conv
from radadapt.models import weights
from radadapt.models.encoder import sha256_file
from radadapt.models.preprocessing import ImagePreprocessing

if TYPE_CHECKING:
    import torch
    from transformers import Dinov2Config, Dinov2Model

    from radadapt.models.dino_head import DINOHead

NAME = "rad_dino"
HUB_REPO = "microsoft/rad-dino"
HUB_REVISION: str | None = None  # no commit is pinned by default: `models pull` resolves and records one
HUB_FILES = ("config.json", "model.safetensors", "preprocessor_config.json",
             "backbone_compatible.safetensors", "dino_head.safetensors")
HUB_OPTIONAL_FILES = ("ssl_default_config.yaml", "vitb14_cxr.yaml", "augmentations.py", "README.md", "LICENSE")

CONFIG, PREPROCESSOR = "config.json", "preprocessor_config.json"
HF_WEIGHTS, HF_INDEX = "model.safetensors", "model.safetensors.index.json"
META_WEIGHTS, HEAD_WEIGHTS = "backbone_compatible.safetensors", "dino_head.safetensors"
# Tiny model of the same architecture for tests and the CPU demo (112 px = 8 x 8 patches of 14).
TINY_CONFIG = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "mlp_ratio": 4,
               "patch_size": 14, "image_size": 112, "layer_norm_eps": 1e-6}
TINY_HEAD = {"in_dim": 64, "out_dim": 1024, "hidden_dim": 64, "bottleneck_dim": 32}

Layout = Literal["auto", "transformers", "meta"]
HeadMode = Literal["auto", "file", "fresh", "none"]


@dataclass
class RadDinoCheckpoint:
    """What ``load_pretrained`` returns: a trainable backbone (eval mode, fp32, CPU), the head, and provenance."""

    backbone: "Dinov2Model"
    head: "DINOHead | None"
    config: "Dinov2Config"
    preprocessing: ImagePreprocessing
    files: dict[str, str]  # name -> sha256 of every file read
    layout: str  # "transformers" | "meta" | "meta_chunked"
    head_source: str | None  # "file" | "fresh" | None
    notes: list[str] = field(default_factory=list)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ModelError("models.bad_config", f"{path.name} is not valid JSON") from None
    if not isinstance(data, dict):
        raise ModelError("models.bad_config", f"{path.name} is not a JSON object")
    return data


def _model_type(path: Path) -> str | None:
    cfg = path / CONFIG
    if not cfg.is_file():
        return None
    try:
        return str(json.loads(cfg.read_text(encoding="utf-8")).get("model_type"))
    except (UnicodeDecodeError, ValueError, AttributeError):
        return None


def is_model_dir(path: str | Path) -> bool:
    """A DINOv2 transformers config (with or without registers, so the latter gets a clear error) or a Meta file."""
    p = Path(path)
    return p.is_dir() and ((p / META_WEIGHTS).is_file() or _model_type(p) in ("dinov2", "dinov2_with_registers"))


def _config_from_json(path: Path) -> "Dinov2Config":
    from transformers import Dinov2Config

    data = _read_json(path / CONFIG)
    kind = data.get("model_type")
    if kind == "dinov2_with_registers":
        raise ModelError(
            "models.registers_unsupported",
            f"{path.name}: DINOv2 with registers is not supported (RAD-DINO has no registers)",
            hint="use a DINOv2 model without registers, e.g. microsoft/rad-dino or facebook/dinov2-base",
        )
    if kind != "dinov2":
        raise ModelError("models.unknown_format", f"{CONFIG} describes a '{kind}' model, not DINOv2")
    try:
        return Dinov2Config.from_dict(data)
    except Exception as exc:  # noqa: BLE001 - transformers raises several types for a bad config
        raise ModelError("models.bad_config", f"{CONFIG} is not a valid DINOv2 config ({type(exc).__name__})") from None


def build_backbone(config: "Dinov2Config", *, empty: bool = False) -> "Dinov2Model":
    """A ``Dinov2Model``; ``empty=True`` builds it on the meta device (no memory, no init) to be filled by loading."""
    import torch
    from transformers import Dinov2Model

    if empty:
        with torch.device("meta"):
            return Dinov2Model(config)
    return Dinov2Model(config)


def _expected_hf(model: "Dinov2Model") -> dict[str, tuple[int, ...]]:
    return weights.shapes(conv.runtime_to_hf(model.state_dict()))


def _fill(model: "Dinov2Model", hf_state: Mapping[str, "torch.Tensor"]) -> "Dinov2Model":
    runtime = conv.hf_to_runtime({k: v.float() if v.is_floating_point() else v for k, v in hf_state.items()},
                                 list(model.state_dict()))
    model.load_state_dict(runtime, strict=True, assign=True)
    return model.eval()


def _load_hf_state(path: Path, files: dict[str, str], notes: list[str]) -> dict[str, "torch.Tensor"]:
    if (path / HF_INDEX).is_file():
        index = _read_json(path / HF_INDEX).get("weight_map") or {}
        files[HF_INDEX] = sha256_file(path / HF_INDEX)
        state: dict[str, Any] = {}
        for shard in sorted(set(index.values())):
            part, _ = weights.load_file(path / shard)
            files[shard] = sha256_file(path / shard)
            state.update(part)
    else:
        state, _ = weights.load_file(path / HF_WEIGHTS)
        files[HF_WEIGHTS] = sha256_file(path / HF_WEIGHTS)
    if any(k.startswith("dinov2.") for k in state):  # saved from Dinov2ForImageClassification & co.
        dropped = [k for k in state if not k.startswith("dinov2.")]
        state = {k[len("dinov2."):]: v for k, v in state.items() if k.startswith("dinov2.")}
        notes.append(f"stripped the 'dinov2.' prefix and dropped {len(dropped)} task-head tensor(s)")
    return state


def _layout(path: Path, layout: Layout) -> str:
    has_hf = (path / HF_WEIGHTS).is_file() or (path / HF_INDEX).is_file()
    has_meta = (path / META_WEIGHTS).is_file()
    if layout == "auto":
        layout = "meta" if has_meta and not has_hf else "transformers"
    if layout == "transformers" and not has_hf:
        pickled = [n for n in ("pytorch_model.bin", "model.pt", "model.bin") if (path / n).is_file()]
        if pickled:
            raise ModelError(
                "models.not_safetensors",
                f"{path.name} has only pickle weights ({pickled[0]}); radadapt loads safetensors only",
                hint="convert on a trusted machine: AutoModel.from_pretrained(DIR).save_pretrained(OUT)",
            )
        raise ModelError("models.missing_file", f"{path.name} has no {HF_WEIGHTS}")
    if layout == "meta" and not has_meta:
        raise ModelError("models.missing_file", f"{path.name} has no {META_WEIGHTS}")
    return layout


def load_backbone(
    path: str | Path, *, layout: Layout = "auto", drop_path_rate: float | None = None
) -> tuple["Dinov2Model", "Dinov2Config", str, dict[str, str], list[str]]:
    """(backbone, config, layout used, files read with sha256, notes). The transformers layout wins when both exist.

    ``drop_path_rate`` (stochastic depth, uniform over blocks as DINOv2's ``drop_path_uniform``) must be set when
    the model is built, so a training student asks for it here; it changes no weight."""
    p = Path(path)
    use = _layout(p, layout)
    files: dict[str, str] = {}
    notes: list[str] = []
    if use == "transformers":
        if not (p / CONFIG).is_file():
            raise ModelError("models.missing_file", f"{p.name} has {HF_WEIGHTS} but no {CONFIG}")
        config = _config_from_json(p)
        files[CONFIG] = sha256_file(p / CONFIG)
        state = _load_hf_state(p, files, notes)
        if drop_path_rate is not None:
            config.drop_path_rate = float(drop_path_rate)
        model = build_backbone(config, empty=True)
        weights.check_state_dict(_expected_hf(model), weights.shapes(state), what=HF_WEIGHTS)
        return _fill(model, state), config, use, files, notes
    # Meta layout: check the header first (cheap), then read the tensors once.
    from transformers import Dinov2Config

    raw, meta = weights.load_file(p / META_WEIGHTS)
    files[META_WEIGHTS] = sha256_file(p / META_WEIGHTS)
    raw, chunked = conv.unchunk_blocks(raw)
    if chunked:
        notes.append("unchunked blocks.<chunk>.<i> keys (DINOv2 block_chunks)")
    if (p / CONFIG).is_file():
        config = _config_from_json(p)
        files[CONFIG] = sha256_file(p / CONFIG)
    else:
        config = Dinov2Config(**conv.infer_meta_config(weights.shapes(raw), meta))
        notes.append(f"config inferred from {META_WEIGHTS} ({config.num_attention_heads} heads)")
    if drop_path_rate is not None:
        config.drop_path_rate = float(drop_path_rate)
    model = build_backbone(config, empty=True)
    expected = weights.shapes(conv.convert_hf_to_meta(conv.runtime_to_hf(model.state_dict())))
    weights.check_state_dict(expected, weights.shapes(raw), what=META_WEIGHTS)
    return _fill(model, conv.convert_meta_to_hf(raw)), config, "meta_chunked" if chunked else "meta", files, notes


def load_head(path: str | Path, *, in_dim: int | None = None, norm_last_layer: bool = False) -> "DINOHead":
    """``dino_head.safetensors`` (Meta keys; a uniform ``dino_head.`` prefix, as in DINOv2 checkpoints, is accepted)."""
    from radadapt.models.dino_head import DINOHead

    state, _ = weights.load_file(path)
    if state and all(k.startswith("dino_head.") for k in state):
        state = {k[len("dino_head."):]: v for k, v in state.items()}
    head = DINOHead.from_state_dict({k: v.float() for k, v in state.items()}, what=Path(path).name,
                                    norm_last_layer=norm_last_layer)
    if in_dim is not None and head.in_dim != in_dim:
        raise ModelError("models.head_mismatch", f"{Path(path).name} expects {head.in_dim}-d input, backbone gives {in_dim}")
    return head


def load_preprocessing(path: str | Path, image_size: int | None = None) -> ImagePreprocessing:
    """From ``preprocessor_config.json``; else RAD-DINO's scheme (shortest edge + centre crop at ``image_size``,
    default 518, MIMIC-CXR mean/std)."""
    p = Path(path) / PREPROCESSOR
    if p.is_file():
        return ImagePreprocessing.from_processor_config(_read_json(p))
    return ImagePreprocessing.square(int(image_size or 518))


def load_pretrained(
    path: str | Path,
    *,
    layout: Layout = "auto",
    head: HeadMode = "auto",
    out_dim: int | None = None,
    fresh_head: Mapping[str, Any] | None = None,
    norm_last_layer: bool = False,
    drop_path_rate: float | None = None,
) -> RadDinoCheckpoint:
    """Backbone and head from a model directory, strictly, for training or export.

    ``head``: ``auto`` loads ``dino_head.safetensors`` when present, else builds a fresh DINOv2-initialised head
    (``DINOHead(in_dim=hidden, out_dim=out_dim or 65536, **fresh_head)``); ``file`` requires the file; ``fresh``
    ignores it; ``none`` returns no head. With ``out_dim`` set, a head file with another prototype count is a
    ``models.head_mismatch`` error rather than a silent re-initialisation.
    """
    from radadapt.models.dino_head import DINOHead

    p = Path(path)
    backbone, config, used, files, notes = load_backbone(p, layout=layout, drop_path_rate=drop_path_rate)
    dino_head, source = None, None
    has_file = (p / HEAD_WEIGHTS).is_file()
    if head == "file" and not has_file:
        raise ModelError("models.missing_file", f"{p.name} has no {HEAD_WEIGHTS}", hint="use a fresh head instead")
    if head in ("auto", "file") and has_file:
        dino_head = load_head(p / HEAD_WEIGHTS, in_dim=config.hidden_size, norm_last_layer=norm_last_layer)
        files[HEAD_WEIGHTS] = sha256_file(p / HEAD_WEIGHTS)
        source = "file"
        if out_dim is not None and dino_head.out_dim != out_dim:
            raise ModelError(
                "models.head_mismatch",
                f"{HEAD_WEIGHTS} has {dino_head.out_dim} prototypes, {out_dim} were asked for",
                hint="keep the head's prototype count, or start a fresh head",
            )
    elif head in ("auto", "fresh"):
        kw = {"out_dim": out_dim or 65536, **dict(fresh_head or {})}
        dino_head, source = DINOHead(in_dim=config.hidden_size, norm_last_layer=norm_last_layer, **kw), "fresh"
    if (p / PREPROCESSOR).is_file():
        files[PREPROCESSOR] = sha256_file(p / PREPROCESSOR)
    return RadDinoCheckpoint(backbone, dino_head, config, load_preprocessing(p, config.image_size), files, used, source, notes)


def _config_json(config: "Dinov2Config", extra: Mapping[str, Any] | None) -> dict:
    data = config.to_diff_dict()
    data.update({"model_type": "dinov2", "architectures": ["Dinov2Model"]})
    for k in ("_name_or_path", "_attn_implementation_autoset"):
        data.pop(k, None)
    if extra:
        data["radadapt"] = dict(extra)
    return data


def save_model_dir(
    backbone: "Dinov2Model",
    head: "DINOHead | None",
    out_dir: str | Path,
    *,
    preprocessing: ImagePreprocessing | None = None,
    extra: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> dict[str, str]:
    """Write a complete RAD-DINO directory; returns ``{file name: sha256}``.

    Files: ``config.json`` (+ ``extra`` under the key ``radadapt``), ``model.safetensors`` (transformers file
    names), ``preprocessor_config.json`` (default: ``ImagePreprocessing.square(config.image_size)``),
    ``backbone_compatible.safetensors`` (Meta names; metadata ``num_attention_heads``) and, with a head,
    ``dino_head.safetensors``. The directory is assembled in a hidden sibling and renamed into place, so a crash
    never leaves a half-written model under ``out_dir``. Pass the unwrapped module (not DDP/compiled).
    """
    from radadapt import atomic

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ModelError("models.out_exists", f"{out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ModelError("models.out_exists", f"{out} exists and is not empty", hint="choose a new directory or --force")
    config = backbone.config
    pre = preprocessing or ImagePreprocessing.square(int(config.image_size))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        hf = conv.runtime_to_hf(backbone.state_dict())
        weights.save_file(tmp / HF_WEIGHTS, hf)
        heads = {"num_attention_heads": str(config.num_attention_heads)}
        weights.save_file(tmp / META_WEIGHTS, conv.convert_hf_to_meta(hf), heads)
        if head is not None:
            weights.save_file(tmp / HEAD_WEIGHTS, head.state_dict(), {k: str(v) for k, v in head.dims().items()})
        atomic.write_json(tmp / PREPROCESSOR, pre.to_processor_config())
        atomic.write_json(tmp / CONFIG, _config_json(config, extra))
        atomic.publish_dir(tmp, out, old_suffix="old")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {f.name: sha256_file(f) for f in sorted(out.iterdir()) if f.is_file()}


def write_tiny(out_dir: str | Path, seed: int = 0, *, overwrite: bool = False) -> dict[str, str]:
    """A tiny random RAD-DINO (hidden 64, 4 layers, 4 heads, 112 px; head 64-64-32 -> 1024 prototypes) in exactly
    the real file formats. Deterministic in ``seed``; does not disturb the caller's RNG."""
    import torch
    from transformers import Dinov2Config

    from radadapt.models.dino_head import DINOHead

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        backbone = build_backbone(Dinov2Config(**TINY_CONFIG))
        head = DINOHead(**TINY_HEAD)
    return save_model_dir(backbone, head, out_dir, extra={"tiny": True, "seed": seed}, overwrite=overwrite)


def load_encoder(path: str | Path, device: str = "cpu"):
    """A frozen ``RadDinoEncoder`` (see ``rad_dino_encoder``) for a model directory."""
    from radadapt.models.rad_dino_encoder import RadDinoEncoder

    return RadDinoEncoder.from_dir(Path(path), device=device)


def describe(path: str | Path, *, verify: bool = False) -> dict[str, Any]:
    """What ``radadapt models info`` shows: layouts, architecture, parameter counts (from file headers, no tensor
    read), preprocessing, every file with size and sha256, the pull record; ``verify`` loads every layout strictly
    and checks that the transformers and Meta backbones hold the same weights."""
    import math

    from radadapt.models.dino_head import infer_head_dims

    p = Path(path)
    info: dict[str, Any] = {"family": NAME, "path": str(p), "layouts": []}
    count = lambda shp: sum(math.prod(s) for s in shp.values())  # noqa: E731
    if (p / HF_WEIGHTS).is_file() or (p / HF_INDEX).is_file():
        info["layouts"].append("transformers")
        if (p / HF_WEIGHTS).is_file():
            info["backbone_parameters"] = count(weights.header_shapes(p / HF_WEIGHTS))
    if (p / META_WEIGHTS).is_file():
        info["layouts"].append("meta")
        info.setdefault("backbone_parameters", count(weights.header_shapes(p / META_WEIGHTS)))
    if (p / CONFIG).is_file():
        c = _config_from_json(p)
        info["architecture"] = {k: getattr(c, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                           "patch_size", "image_size", "mlp_ratio", "use_swiglu_ffn")}
    if (p / HEAD_WEIGHTS).is_file():
        shp = weights.header_shapes(p / HEAD_WEIGHTS)
        shp = {k.removeprefix("dino_head."): v for k, v in shp.items()}
        info["head"] = {**infer_head_dims(shp), "parameters": count(shp)}
    info["preprocessing"] = load_preprocessing(p).describe()
    if (p / "pull.json").is_file():
        pull = _read_json(p / "pull.json")
        info["pulled_from"] = {k: pull.get(k) for k in ("repo", "revision", "commit", "pulled_at")}
    info["files"] = [
        {"name": str(f.relative_to(p)), "bytes": f.stat().st_size, "sha256": sha256_file(f)}
        for f in sorted(p.rglob("*"))
        if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
    ]
    if verify:
        info["verify"] = _verify(p, info["layouts"])
    return info


def _verify(p: Path, layouts: list[str]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    loaded = {}
    for lay in layouts:
        loaded[lay] = load_backbone(p, layout=lay)[0]  # type: ignore[arg-type]
        result[lay] = "ok"
    if len(loaded) == 2:
        a, b = loaded["transformers"].state_dict(), loaded["meta"].state_dict()
        diff = max(float((a[k] - b[k]).abs().max()) for k in a)
        result["layouts_max_abs_diff"] = diff
        result["layouts_agree"] = diff == 0.0
    if (p / HEAD_WEIGHTS).is_file():
        hidden = next(iter(loaded.values())).config.hidden_size if loaded else None
        load_head(p / HEAD_WEIGHTS, in_dim=hidden)
        result["head"] = "ok"
    return result
