"""A tiny, random MI2 in exactly the released layout, with a tiny but valid CLIP BPE tokenizer.

``radadapt models tiny mi2 --out DIR`` writes it, so tests and the demo run the real code paths end to end:
the strict converter, the safetensors reader, ``transformers.CLIPTokenizer`` from local files, timm's DaViT.
Nothing here is a shortcut: the weights file uses the released key names (``image_encoder.convs.0.proj.weight``
...), the config.yaml has the released keys, and the tokenizer is byte-level BPE in CLIP's file format
(vocab.json: 256 byte symbols, their ``</w>`` variants, merged symbols, then ``<|startoftext|>`` and
``<|endoftext|>`` last, so EOS has the largest id as argmax pooling requires; merges.txt with the
``#version: 0.2`` header). The merges are learnt here from a small radiology vocabulary, deterministically.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from radadapt import atomic

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"

# Common words of chest radiograph reports and label prompts (counts are rough frequencies).
_CORPUS = """
x-ray chest anteroposterior posteroanterior lateral portable upright supine frontal view views
no acute cardiopulmonary process abnormality finding findings normal stable unchanged interval
pleural effusion effusions small moderate large bilateral left right lower upper lobe lobes lung lungs
pneumothorax pneumonia consolidation atelectasis opacity opacities edema pulmonary vascular congestion
cardiomegaly heart size enlarged cardiomediastinal silhouette mediastinum mediastinal contour contours
nodule nodules mass lesion lesions emphysema interstitial disease hernia fracture fractures rib ribs
pneumoperitoneum subcutaneous support device devices tube tubes line lines catheter catheters
endotracheal tracheostomy enteric nasogastric feeding central venous picc port pacemaker defibrillator
leads lead sternotomy wires chest drain tip terminates projects over at the in of and with without
there is are seen present absent removed resolved new increased decreased improved worsening likely
possible suggestive consistent compatible correlate clinically recommend follow-up comparison prior
degenerative changes spine thoracic osseous structures intact clear well expanded hyperinflated
costophrenic angle angles blunting hilar perihilar basilar retrocardiac apical aortic knob tortuous
calcification calcified granuloma scarring fibrosis thickening minimal mild severe trace
"""
_WEIGHTS = {"the": 30, "no": 20, "of": 20, "and": 15, "is": 15, "chest": 12, "pleural": 10, "effusion": 10,
            "x-ray": 10, "tube": 8, "left": 8, "right": 8, "lung": 8, "there": 6}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: printable bytes map to themselves, the rest to unused code points
    from 256 upwards, so every byte string is a string of visible symbols (no unknown tokens ever)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    keep += list(range(ord("®"), ord("ÿ") + 1))
    table = {b: chr(b) for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _word_symbols(word: str, alphabet: dict[int, str]) -> tuple[str, ...]:
    chars = [alphabet[b] for b in word.encode("utf-8")]
    return tuple(chars[:-1]) + (chars[-1] + "</w>",)


def learn_merges(words: Counter, n_merges: int) -> list[tuple[str, str]]:
    """Classic BPE (Sennrich et al. 2016): repeatedly merge the most frequent adjacent pair (ties broken
    lexically, so the result is deterministic)."""
    alphabet = bytes_to_unicode()
    vocab = Counter({_word_symbols(w, alphabet): c for w, c in words.items()})
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter = Counter()
        for symbols, count in vocab.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged: Counter = Counter()
        for symbols, count in vocab.items():
            out, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += count
        vocab = merged
    return merges


def tiny_vocab(n_merges: int = 300) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """vocab (symbol -> id, CLIP's order) and merges for the tiny tokenizer."""
    words = Counter()
    for w in _CORPUS.split():
        # the CLIP pre-tokenizer splits "x-ray" into "x", "-", "ray"; learn on the pieces it will see
        for piece in w.replace("-", " - ").split():
            words[piece] += _WEIGHTS.get(w, 2)
    merges = learn_merges(words, n_merges)
    base = list(bytes_to_unicode().values())
    symbols = base + [s + "</w>" for s in base] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab: dict[str, int] = {}
    for s in symbols:  # a merge may recreate an existing symbol; keep the first id, like CLIP does
        vocab.setdefault(s, len(vocab))
    return vocab, merges


def _special(content: str) -> dict:
    return {"content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": True}


def write_tokenizer(out_dir: str | Path, n_merges: int = 300) -> int:
    """Write vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json (the transformers
    4.16.2 layout that MI2 ships); returns the vocabulary size."""
    out = Path(out_dir)
    vocab, merges = tiny_vocab(n_merges)
    atomic.write_text(out / "vocab.json", json.dumps(vocab, ensure_ascii=False, indent=2) + "\n")
    atomic.write_text(out / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    special = {"bos_token": _special(BOS), "eos_token": _special(EOS), "unk_token": _special(EOS),
               "pad_token": EOS}
    atomic.write_text(out / "special_tokens_map.json", json.dumps(special, indent=2) + "\n")
    config = {
        "errors": "replace",
        "unk_token": {**_special(EOS), "__type": "AddedToken"},
        "bos_token": {**_special(BOS), "__type": "AddedToken"},
        "eos_token": {**_special(EOS), "__type": "AddedToken"},
        "pad_token": EOS,
        "add_prefix_space": False,
        "do_lower_case": True,
        "model_max_length": 77,
        "name_or_path": "openai/clip-vit-base-patch32",
        "tokenizer_class": "CLIPTokenizer",
    }
    atomic.write_text(out / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")
    return len(vocab)


# -- config.yaml ------------------------------------------------------------------------------------------------
RELEASED_SIZES = dict(image_size=480, embed_dims=[256, 512, 1024, 2048], depths=[1, 1, 9, 1],
                      num_heads=[8, 16, 32, 64], window_size=12, text_width=1024, text_layers=16, text_heads=16,
                      projection_dim=1024)
TINY_SIZES = dict(image_size=112, embed_dims=[16, 32, 64, 128], depths=[1, 1, 1, 1], num_heads=[1, 2, 4, 8],
                  window_size=12, text_width=32, text_layers=2, text_heads=2, projection_dim=32)


def config_dict(image_size: int, embed_dims: list[int], depths: list[int], num_heads: list[int],
                window_size: int, text_width: int, text_layers: int, text_heads: int,
                projection_dim: int, drop_path_rate: float = 0.2) -> dict:
    """A config.yaml mapping with the released keys and recipe, at the given sizes."""
    return {
        "TASK": "UniCLTask",
        "NAME": "radadapt tiny MI2" if image_size != 480 else "MI2",
        "FP16": True,
        "AMP": "PYTORCH",
        "GRAD_CLIPPING": 1.0,
        "IMAGE_ENCODER": {
            "NAME": "davit_v1", "NUM_CLASSES": 0, "IMAGE_SIZE": [image_size, image_size],
            "LOAD_PRETRAINED": True, "PRETRAINED": "", "PRETRAINED_LAYERS": "*",
            "IMAGE_MEAN": [0.485, 0.456, 0.406], "IMAGE_STD": [0.229, 0.224, 0.225],
            "SPEC": {
                "DROP_RATE": 0.1, "DROP_PATH_RATE": drop_path_rate,
                "PATCH_SIZE": [7, 3, 3, 3], "PATCH_STRIDE": [4, 2, 2, 2], "PATCH_PADDING": [3, 1, 1, 1],
                "PATCH_PRENORM": [False, True, True, True],
                "DIM_EMBED": list(embed_dims), "NUM_HEADS": list(num_heads), "NUM_GROUPS": list(num_heads),
                "DEPTHS": list(depths), "WINDOW_SIZE": window_size, "ENABLE_CHECKPOINT": False,
            },
        },
        "LANG_ENCODER": {
            "NAME": "transformer", "LOAD_PRETRAINED": False, "PRETRAINED": "", "PRETRAINED_LAYERS": "*",
            "TOKENIZER": "clip", "CONTEXT_LENGTH": 77, "WIDTH": text_width, "HEADS": text_heads,
            "LAYERS": text_layers, "AUTOGRESSIVE": False,
        },
        "UNICL_MODEL": {"DIM_PROJECTION": projection_dim, "GATHER_TENSORS": True, "LOAD_PRETRAINED": True,
                        "PRETRAINED": "", "PRETRAINED_LAYERS": "*"},
        "AUG": {"MIXUP_PROB": 0.0, "SCALE": [0.8, 1.0], "RATIO": [0.75, 1.3333333], "INTERPOLATION": "bicubic",
                "TORCHVISION_AUG": {"AUTO_AUGMENT": "ta_wide", "RE_PROB": 0.25, "HFLIP": 0.0, "VFLIP": 0.0}},
        "LOSS": {"LOSS": "UniCL"},
        "TEST": {"BATCH_SIZE_PER_GPU": 8, "MODEL_FILE": "", "CENTER_CROP": False},
        "TRAIN": {"BATCH_SIZE_TOTAL": 1024, "BATCH_SIZE_PER_GPU": 16, "SHUFFLE": True},
        "WEIGHT_SMOOTHING": {"decay": 0.999, "use_cpu": False, "eval_smoothed_weight": True},
        "START_LEARNING_RATE": 0.00001,
        "MAX_NUM_EPOCHS": 100,
        "OPTIMIZER": "AdamW",
        "OPTIMIZER_PARAMS": {"weight_decay": 0.2},
        "CUSTOMIZED_PARAMS_CONF": {
            "NO_WEIGHT_DECAY_MODULES": ["dw", "norm"],
            "WEIGHT_DECAY_PATTERNS": {"\\.bias$": 0.0, "logit_scale": 0.0, "positional_embedding": 0.0,
                                      "token_embedding": 0.0},
        },
        "LR_SCHEDULER": "TimmScheduler",
        "LR_SCHEDULER_PARAMS": {"sched": "cosine", "warmup_steps": 5, "warmup_lr": 1e-9, "min_lr": 1e-9},
        "GRADIENT_ACCUMULATE_STEP": -1,
    }


LOGIT_SCALE_INIT = 2.659260036932778  # log(1 / 0.07): CLIP's initial temperature (Radford et al. 2021 §2.5)


def init_std(name: str, shape: tuple[int, ...], text_layers: int) -> float | None:
    """The standard deviation of a small CLIP's initialisation for the matrix ``name`` (open_clip's rule for the
    text tower and the projections; Radford et al. 2021), or None for the image tower's matrices, which keep
    timm's own DaViT init (trunc-normal 0.02 for linear layers, PyTorch's default for convolutions).

    Why these and not a flat 0.02: the text embedding is the hidden state at EOS, the same token in every
    text. With 0.02 everywhere at width 32 the blocks add almost nothing to the residual stream (outputs of
    std ~0.02 * sqrt(32) * 0.02), so every text embeds as "EOS + its position" (mean pairwise cosine 0.995) and
    contrastive gradients see no text content. Fan-in-scaled projections make each block's output O(1), so the
    EOS state is a content-dependent mixture of the text's tokens; the token and position embeddings stay
    small so the shared EOS embedding does not dominate. The projections at width^-0.5 also keep AdamW's
    per-element steps (~lr) small relative to the weights (at std 0.02 and lr 1e-3 a step moved them 5%).
    """
    proj = len(shape) == 2 and name in ("image_projection", "lang_projection")
    if proj:
        return shape[0] ** -0.5
    if not name.startswith("lang_encoder."):
        return None
    width = shape[-1]
    residual = (2 * text_layers) ** -0.5  # branches that write into the residual stream, GPT-2 style
    if name.endswith("token_embedding.weight"):
        return 0.02
    if name.endswith("positional_embedding"):
        return 0.01
    if name.endswith("attn.in_proj_weight"):
        return width ** -0.5
    if name.endswith("mlp.c_fc.weight"):
        return (2 * width) ** -0.5
    if name.endswith(("attn.out_proj.weight", "mlp.c_proj.weight")):
        return shape[0] ** -0.5 * residual  # shape[0] = the residual width
    raise ValueError(f"no initialisation rule for {name}")


def randomise_(model, seed: int) -> None:
    """Initialise like a sensible small CLIP (``init_std``), with every 1-D tensor made distinct: norm gains
    1 + N(0, 0.02), biases N(0, 0.02). A test comparing two forwards then notices a swapped, missing or misread
    tensor (unit gains and zero biases would hide those), while the network stays as well conditioned as at
    1/0. ``logit_scale`` = log(1/0.07) (T = 14.3), CLIP's initial temperature."""
    import torch

    layers = len(model.lang_encoder.resblocks)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            noise = torch.randn(p.shape, generator=g)
            if name == "logit_scale":
                p.fill_(LOGIT_SCALE_INIT)
            elif name.endswith(".bias") or name.endswith("_bias"):
                p.copy_(0.02 * noise)
            elif p.ndim == 1:  # norm gains
                p.copy_(1.0 + 0.02 * noise)
            else:
                std = init_std(name, tuple(p.shape), layers)
                if std is not None:
                    p.copy_(noise.clamp_(-2, 2) * std)  # truncated at 2 std, as trunc_normal_


def write_tiny_model(out_dir: str | Path, seed: int = 0) -> dict[str, str]:
    """config.yaml + vision_model/medimageinsigt-v1.0.0.pt + language_model/clip_tokenizer_4.16.2/, tiny."""
    import torch
    import yaml

    from radadapt.models import mi2
    from radadapt.models.mi2_model import MI2Config, MI2Model

    out = Path(out_dir)
    vocab_size = write_tokenizer(out / mi2.TOKENIZER_DIR)
    text = "# radadapt tiny MI2: random weights, the released layout and key names, for tests and the demo\n"
    text += yaml.safe_dump(config_dict(**TINY_SIZES), sort_keys=False)
    cfg = MI2Config(yaml.safe_load(text), source_text=text, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model = MI2Model(cfg)
    randomise_(model, seed)
    return mi2.save_model_dir(model, out / mi2.TOKENIZER_DIR, out, cfg)
