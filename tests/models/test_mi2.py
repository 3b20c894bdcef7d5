"""MI2 end to end on the tiny checkpoint: embeddings equal an independent plain forward; encoder contract.

The reference forward below is written from the released layout description only (research note
mi2_unicl.md §1-2): raw tensors from the safetensors file in released key names and torch.nn.functional ops;
it shares no code with radadapt's model (timm DaViT + radadapt text tower).
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from radadapt.models import mi2, registry

TOL = 2e-5  # fp32, different op orders (SDPA vs explicit softmax, windowing) on unit-norm embeddings


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models are op-overhead bound: one thread is fastest, and robust on a busy shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# -- independent reference forward ----------------------------------------------------------------------------
def _ln(x, w, b):
    return F.layer_norm(x, (x.shape[-1],), w, b, 1e-5)


def _dw(t, w, b, hw):
    (h, wd), (bsz, n, c) = hw, t.shape
    y = F.conv2d(t.transpose(1, 2).reshape(bsz, c, h, wd), w, b, padding=1, groups=c)
    return y.flatten(2).transpose(1, 2)


def _window_attention(t, p, heads, ws, hw):
    (h, wd), (bsz, n, c) = hw, t.shape
    g = t.reshape(bsz, h, wd, c)
    pb, pr = (-h) % ws, (-wd) % ws
    g = F.pad(g, (0, 0, 0, pr, 0, pb))  # zero padding, no mask (as released)
    hp, wp = h + pb, wd + pr
    win = g.reshape(bsz, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
    qkv = F.linear(win, p["qkv.weight"], p["qkv.bias"]).reshape(-1, ws * ws, 3, heads, c // heads)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)
    a = torch.softmax((q * (c // heads) ** -0.5) @ k.transpose(-2, -1), dim=-1)
    o = F.linear((a @ v).transpose(1, 2).reshape(-1, ws * ws, c), p["proj.weight"], p["proj.bias"])
    o = o.reshape(bsz, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(bsz, hp, wp, c)
    return o[:, :h, :wd].reshape(bsz, h * wd, c)


def _channel_attention(t, p, groups):
    bsz, n, c = t.shape
    qkv = F.linear(t, p["qkv.weight"], p["qkv.bias"]).reshape(bsz, n, 3, groups, c // groups)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # [B, groups, N, d]
    a = torch.softmax((q * n ** -0.5).transpose(-1, -2) @ k, dim=-1)  # [B, groups, d, d]: channels attend
    o = (a @ v.transpose(-1, -2)).transpose(-1, -2).transpose(1, 2).reshape(bsz, n, c)
    return F.linear(o, p["proj.weight"], p["proj.bias"])


def _sub(w, prefix):
    return {k[len(prefix):]: v for k, v in w.items() if k.startswith(prefix)}


def reference_image(w, x, heads, depths, ws):
    e = _sub(w, "image_encoder.")
    y = F.conv2d(x, e["convs.0.proj.weight"], e["convs.0.proj.bias"], stride=4, padding=3)
    hw = tuple(y.shape[2:])
    t = _ln(y.flatten(2).transpose(1, 2), e["convs.0.norm.weight"], e["convs.0.norm.bias"])
    for i in range(4):
        if i:
            t = _ln(t, e[f"convs.{i}.norm.weight"], e[f"convs.{i}.norm.bias"])  # pre-norm
            y = t.transpose(1, 2).reshape(t.shape[0], t.shape[2], *hw)
            y = F.conv2d(y, e[f"convs.{i}.proj.weight"], e[f"convs.{i}.proj.bias"], stride=2, padding=1)
            hw = tuple(y.shape[2:])
            t = y.flatten(2).transpose(1, 2)
        for j in range(depths[i]):
            for kind, attn in (("spatial_block", "window_attn"), ("channel_block", "channel_attn")):
                b = _sub(e, f"blocks.{i}.{j}.{kind}.")
                t = t + _dw(t, b["conv1.fn.dw.weight"], b["conv1.fn.dw.bias"], hw)
                h = _ln(t, b[f"{attn}.norm.weight"], b[f"{attn}.norm.bias"])
                p = _sub(b, f"{attn}.fn.")
                t = t + (_window_attention(h, p, heads[i], ws, hw) if kind == "spatial_block"
                         else _channel_attention(h, p, heads[i]))
                t = t + _dw(t, b["conv2.fn.dw.weight"], b["conv2.fn.dw.bias"], hw)
                h = _ln(t, b["ffn.norm.weight"], b["ffn.norm.bias"])
                h = F.linear(F.gelu(F.linear(h, b["ffn.fn.net.fc1.weight"], b["ffn.fn.net.fc1.bias"])),
                             b["ffn.fn.net.fc2.weight"], b["ffn.fn.net.fc2.bias"])
                t = t + h
    pooled = _ln(t.mean(1), e["norms.weight"], e["norms.bias"])
    return pooled, F.normalize(pooled @ w["image_projection"], dim=-1)


def _tf_ln(x, wt, b):
    u = x.mean(-1, keepdim=True)
    s = (x - u).pow(2).mean(-1, keepdim=True)
    return wt * (x - u) / torch.sqrt(s + 1e-12) + b


def reference_text(w, ids, mask, heads):
    e = _sub(w, "lang_encoder.")
    n_layers = 1 + max(int(k.split(".")[1]) for k in e if k.startswith("resblocks."))
    bsz, length = ids.shape
    x = e["token_embedding.weight"][ids] + e["positional_embedding"][:length]
    for k in range(n_layers):
        b = _sub(e, f"resblocks.{k}.")
        h = _tf_ln(x, b["ln_1.weight"], b["ln_1.bias"])
        c = h.shape[-1]
        q, kk, v = F.linear(h, b["attn.in_proj_weight"], b["attn.in_proj_bias"]).chunk(3, dim=-1)
        q, kk, v = (z.reshape(bsz, length, heads, c // heads).transpose(1, 2) for z in (q, kk, v))
        s = (q @ kk.transpose(-2, -1)) / math.sqrt(c // heads)
        s = s.masked_fill(mask[:, None, None, :] == 0, float("-inf"))  # bidirectional, padding masked
        o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(bsz, length, c)
        x = x + F.linear(o, b["attn.out_proj.weight"], b["attn.out_proj.bias"])
        h = F.linear(_tf_ln(x, b["ln_2.weight"], b["ln_2.bias"]), b["mlp.c_fc.weight"], b["mlp.c_fc.bias"])
        x = x + F.linear(h * torch.sigmoid(1.702 * h), b["mlp.c_proj.weight"], b["mlp.c_proj.bias"])
    x = _tf_ln(x, e["ln_final.weight"], e["ln_final.bias"])
    pooled = x[torch.arange(bsz), ids.argmax(-1)]
    return F.normalize(pooled @ w["lang_projection"], dim=-1)


TEXTS = ["x-ray chest anteroposterior Pleural Effusion", "No acute cardiopulmonary process.",
         "Endotracheal tube tip terminates 4 cm above the carina; left PICC line in the SVC."]


# -- tests ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder(mi2_tiny_dir):
    return registry.load_encoder(mi2_tiny_dir)  # the registry path: detection, strict load, eval mode


def test_embeddings_equal_independent_plain_forward(mi2_tiny_dir, encoder):
    enc = encoder
    cfg = enc.config
    raw = load_file(str(mi2_tiny_dir / mi2.WEIGHTS_FILE))
    rng = np.random.default_rng(0)
    # 112 px -> stage grids 28, 14, 7, 4: every stage pads to the 12-px window; odd sizes downsample
    images = [rng.integers(0, 256, (150, 130), dtype=np.uint8), rng.integers(0, 256, (112, 112), dtype=np.uint8)]
    x = enc.preprocess(images)
    pooled_ref, img_ref = reference_image(raw, x, cfg.num_heads, cfg.depths, cfg.window_size)
    assert torch.allclose(enc.features(x)["cls"], pooled_ref, atol=TOL, rtol=0)
    assert torch.allclose(enc.encode_image(x), img_ref, atol=TOL, rtol=0)
    tok = mi2.tokenize(enc.tokenizer, TEXTS)
    txt_ref = reference_text(raw, tok["input_ids"], tok["attention_mask"], cfg.text_heads)
    txt = enc.encode_text(TEXTS)
    assert torch.allclose(txt, txt_ref, atol=TOL, rtol=0)
    # the check can fail: a different tensor gives clearly different embeddings
    raw["lang_encoder.resblocks.1.ln_2.bias"] = raw["lang_encoder.resblocks.1.ln_2.bias"] + 0.1
    assert (reference_text(raw, tok["input_ids"], tok["attention_mask"], cfg.text_heads) - txt).abs().max() > 1e-3
    assert enc.logit_scale == pytest.approx(math.exp(float(raw["logit_scale"])), rel=1e-6)


def test_encoder_contract_and_preprocessing(mi2_tiny_dir, encoder):
    enc = encoder
    assert registry.detect_family(mi2_tiny_dir) == "mi2"
    assert (enc.family, enc.has_text, enc.input_size, enc.embed_dim) == ("mi2", True, 112, 128)
    assert not enc.model.training and not any(p.requires_grad for p in enc.model.parameters())
    img = np.zeros((60, 40), dtype=np.uint8)
    img[:, 20:] = 200
    x = enc.preprocess([img, np.full((30, 30, 1), 255, np.uint8)])
    assert x.shape == (2, 3, 112, 112) and x.dtype == torch.float32
    # grey replicated to 3 channels, then ImageNet mean/std per channel
    raw01 = x[0] * torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1) + torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    assert torch.allclose(raw01[0], raw01[1], atol=1e-6) and torch.allclose(raw01[0], raw01[2], atol=1e-6)
    assert raw01[0, 50, 0].item() == pytest.approx(0.0, abs=1e-6)  # squashed, not cropped: left edge stays dark
    assert raw01[0, 50, -1].item() == pytest.approx(200 / 255, abs=1e-6)
    assert torch.allclose(x[1, 0], torch.full((112, 112), (1 - 0.485) / 0.229), atol=1e-5)
    f = enc.features(x)
    assert f["cls"].shape == (2, 128) and f["patch_mean"].shape == (2, 128)
    assert f["patch_grid"].shape == (2, 128, 4, 4) and f["layers"].shape == (2, 1, 16 + 32 + 64 + 128)
    assert torch.allclose(f["patch_mean"], f["patch_grid"].mean(dim=(2, 3)), atol=1e-6)
    assert torch.allclose(f["layers"][:, 0, -128:], f["patch_mean"], atol=1e-6)
    e = enc.encode_image(x)
    assert e.shape == (2, 32) and torch.allclose(e.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert len(enc.fingerprint) == 64
    with pytest.raises(Exception) as info:
        enc.preprocess([np.zeros((10, 10), np.float32)])
    assert getattr(info.value, "code", "") == "models.mi2_bad_image"


def test_tokenizer_offline_pads_to_77_and_pools_at_first_eos(mi2_tiny_dir, encoder):
    tok_dir = mi2_tiny_dir / mi2.TOKENIZER_DIR
    vocab = json.loads((tok_dir / "vocab.json").read_text(encoding="utf-8"))
    merges = (tok_dir / "merges.txt").read_text(encoding="utf-8").splitlines()
    names = list(vocab)
    # CLIP's layout: 256 byte symbols, their </w> forms, merged symbols, then BOS and EOS (largest ids)
    assert names[:3] == ["!", '"', "#"] and vocab["!</w>"] == 256 and names[511] == names[255] + "</w>"
    assert len(set(names[:256])) == 256 and names[-2:] == ["<|startoftext|>", "<|endoftext|>"]
    assert merges[0] == "#version: 0.2" and len(merges) == 301 and len(vocab) == 512 + 300 + 2
    tok = mi2.load_tokenizer(tok_dir)
    assert tok.tokenize("pleural effusion") == ["pleural</w>", "effusion</w>"]  # learnt radiology merges
    enc = mi2.tokenize(tok, ["Pleural EFFUSION", "pleural effusion " * 60])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    assert ids.shape == (2, 77) and mask.shape == (2, 77)
    eos, bos = tok.eos_token_id, tok.bos_token_id
    assert eos == len(tok) - 1 and tok.pad_token_id == eos and tok.cls_token_id == eos
    assert torch.equal(ids[0], mi2.tokenize(tok, ["pleural effusion"])["input_ids"][0])  # lower-cased
    n = int(mask[0].sum())
    assert ids[0, 0] == bos and ids[0, n - 1] == eos and bool((ids[0, n:] == eos).all())  # padded with EOS
    assert int(mask[1].sum()) == 77 and ids[1, -1] == eos  # truncated, EOS kept
    from radadapt.models.mi2_text import pool_first_eos

    hidden = torch.arange(2 * 77, dtype=torch.float32).reshape(2, 77, 1)
    assert pool_first_eos(hidden, ids)[:, 0].tolist() == [n - 1, 77 + 76]
    # padding is masked: the embedding ignores what sits in padded positions
    model = encoder.model
    changed = ids.clone()
    changed[0, n:] = 5
    a = model.encode_text(ids[:1], mask[:1])
    assert torch.allclose(a, model.encode_text(changed[:1], mask[:1]), atol=1e-6)


def test_eval_mode_is_deterministic_train_mode_is_not(encoder):
    model = copy.deepcopy(encoder.model)
    assert not model.training
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    a, b = model.encode_image(x), model.encode_image(x)
    assert torch.equal(a, b)
    model.set_drop_path(image_rate=0.5, text_rate=0.3)
    assert torch.equal(model.encode_image(x), a)  # drop-path is inactive in eval mode
    model.train()
    torch.manual_seed(0)
    assert not torch.allclose(model.encode_image(x), a, atol=1e-4)  # stochastic depth active when training
