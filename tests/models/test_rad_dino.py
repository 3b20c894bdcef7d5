"""RAD-DINO family: converters, strict loading, the DINO head, saving, preprocessing parity, the encoder."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from radadapt.errors import DataError, ModelError
from radadapt.models import convert_dinov2 as conv
from radadapt.models import rad_dino, weights
from radadapt.models.dino_head import DINOHead
from radadapt.models.preprocessing import ImagePreprocessing


def _images():
    rs = np.random.RandomState(7)
    # portrait, landscape, exactly the input size, smaller than it (upscaled), odd sizes
    return [rs.randint(0, 256, s, dtype=np.uint8) for s in [(150, 131), (112, 200), (112, 112), (60, 75), (301, 257)]]


def _copy(src, dst, names):
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(src / n, dst / n)
    return dst


# -- converters ------------------------------------------------------------------------------------------------
def test_meta_hf_round_trips_are_exact(rad_dino_tiny_dir):
    meta, _ = weights.load_file(rad_dino_tiny_dir / "backbone_compatible.safetensors")
    hf = conv.convert_meta_to_hf(meta)
    back = conv.convert_hf_to_meta(hf)
    assert set(back) == set(meta) and all(torch.equal(back[k], meta[k]) for k in meta)
    hf_file, _ = weights.load_file(rad_dino_tiny_dir / "model.safetensors")
    assert set(hf) == set(hf_file) and all(torch.equal(hf[k], hf_file[k]) for k in hf)
    # real key names on both sides
    assert {"pos_embed", "blocks.3.attn.qkv.weight", "blocks.0.ls1.gamma", "norm.weight", "mask_token"} <= set(meta)
    assert {"embeddings.position_embeddings", "encoder.layer.3.attention.attention.query.weight",
            "encoder.layer.0.layer_scale1.lambda1", "layernorm.weight"} <= set(hf)


def test_qkv_split_is_query_key_value_by_row_thirds():
    d = 4
    qkv = torch.arange(3 * d * d, dtype=torch.float32).reshape(3 * d, d)
    hf = conv.convert_meta_to_hf({"blocks.0.attn.qkv.weight": qkv, "blocks.0.attn.qkv.bias": torch.arange(3.0 * d)})
    pre = "encoder.layer.0.attention.attention."
    assert torch.equal(hf[pre + "query.weight"], qkv[:d]) and torch.equal(hf[pre + "value.weight"], qkv[2 * d:])
    assert torch.equal(hf[pre + "key.bias"], torch.arange(d, 2.0 * d))


def test_chunked_blocks_are_unchunked_and_load(rad_dino_tiny_dir, tmp_path):
    meta, md = weights.load_file(rad_dino_tiny_dir / "backbone_compatible.safetensors")
    # block_chunks=2 over 4 blocks: chunk 0 holds blocks 0-1, chunk 1 holds 2-3 (global indices kept)
    chunked = {(f"blocks.{int(k.split('.')[1]) // 2}.{k[len('blocks.'):]}" if k.startswith("blocks.") else k): v
               for k, v in meta.items()}
    assert "blocks.1.3.attn.qkv.weight" in chunked
    flat, was = conv.unchunk_blocks(chunked)
    assert was and set(flat) == set(meta)
    d = _copy(rad_dino_tiny_dir, tmp_path / "chunked", ["preprocessor_config.json"])
    weights.save_file(d / "backbone_compatible.safetensors", chunked, md)
    ck = rad_dino.load_pretrained(d, head="none")
    assert ck.layout == "meta_chunked" and any("unchunked" in n for n in ck.notes)
    bad = dict(chunked)
    bad["blocks.0.3.norm1.weight"] = bad["blocks.1.3.norm1.weight"]
    with pytest.raises(ModelError, match="block 3 appears in chunks"):
        conv.unchunk_blocks(bad)


def test_unknown_meta_key_is_an_error_not_dropped():
    with pytest.raises(ModelError) as e:
        conv.convert_meta_to_hf({"blocks.0.attn.extra.weight": torch.zeros(1), "cls_token": torch.zeros(1, 1, 4)})
    assert e.value.code == "models.key_mismatch" and "blocks.0.attn.extra.weight" in e.value.message


def test_infer_meta_config_rule_and_metadata():
    shapes = {"cls_token": (1, 1, 128), "pos_embed": (1, 65, 128), "patch_embed.proj.weight": (128, 3, 14, 14),
              "blocks.0.attn.qkv.weight": (384, 128), "blocks.0.attn.qkv.bias": (384,),
              "blocks.0.mlp.fc1.weight": (512, 128), "blocks.1.norm1.weight": (128,), "mask_token": (1, 128)}
    cfg = conv.infer_meta_config(shapes)
    assert (cfg["num_attention_heads"], cfg["num_hidden_layers"], cfg["image_size"], cfg["mlp_ratio"]) == (2, 2, 112, 4)
    assert conv.infer_meta_config(shapes, {"num_attention_heads": "8"})["num_attention_heads"] == 8
    odd = dict(shapes, cls_token=(1, 1, 96))
    with pytest.raises(ModelError) as e:
        conv.infer_meta_config(odd)
    assert e.value.code == "models.config_needed"


# -- both layouts give the same model --------------------------------------------------------------------------
def test_meta_only_and_hf_only_directories_give_the_same_features(rad_dino_tiny_dir, tmp_path):
    hf_dir = _copy(rad_dino_tiny_dir, tmp_path / "hf", ["config.json", "model.safetensors", "preprocessor_config.json"])
    meta_dir = _copy(rad_dino_tiny_dir, tmp_path / "meta", ["backbone_compatible.safetensors", "preprocessor_config.json"])
    a, b = rad_dino.load_encoder(hf_dir), rad_dino.load_encoder(meta_dir)
    assert (a.layout, b.layout) == ("transformers", "meta")
    x = a.preprocess(_images())
    fa, fb = a.features(x), b.features(x)
    for k in fa:
        assert torch.equal(fa[k], fb[k]), k
    ck = rad_dino.load_pretrained(meta_dir, head="none")  # config inferred: 4 heads from the file's metadata
    assert ck.config.num_attention_heads == 4 and ck.config.image_size == 112


def test_swiglu_and_sharded_checkpoints_round_trip(tmp_path):
    from transformers import Dinov2Config

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56,
                       use_swiglu_ffn=True)
    model = rad_dino.build_backbone(cfg).eval()
    rad_dino.save_model_dir(model, None, tmp_path / "g")
    meta = weights.header_shapes(tmp_path / "g" / "backbone_compatible.safetensors")
    assert "blocks.0.mlp.w12.weight" in meta and "blocks.0.mlp.w3.weight" in meta
    x = torch.randn(2, 3, 56, 56)
    want = model(pixel_values=x).pooler_output
    for layout in ("transformers", "meta"):
        got = rad_dino.load_backbone(tmp_path / "g", layout=layout)[0](pixel_values=x).pooler_output
        assert torch.allclose(got, want, atol=1e-6), layout
    # a sharded transformers checkpoint (model.safetensors.index.json)
    full, _ = weights.load_file(tmp_path / "g" / "model.safetensors")
    names = sorted(full)
    (tmp_path / "g" / "model.safetensors").unlink()
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for shard, keys in shards.items():
        weights.save_file(tmp_path / "g" / shard, {k: full[k] for k in keys})
    index = {"metadata": {}, "weight_map": {k: s for s, ks in shards.items() for k in ks}}
    (tmp_path / "g" / "model.safetensors.index.json").write_text(json.dumps(index))
    model2, _, layout, files, _ = rad_dino.load_backbone(tmp_path / "g")
    assert layout == "transformers" and set(shards) <= set(files)
    assert torch.allclose(model2(pixel_values=x).pooler_output, want, atol=1e-6)


def test_classification_checkpoint_prefix_is_stripped(rad_dino_tiny_dir, tmp_path):
    d = _copy(rad_dino_tiny_dir, tmp_path / "cls", ["config.json", "preprocessor_config.json"])
    sd, _ = weights.load_file(rad_dino_tiny_dir / "model.safetensors")
    sd = {f"dinov2.{k}": v for k, v in sd.items()} | {"classifier.weight": torch.zeros(3, 128)}
    weights.save_file(d / "model.safetensors", sd)
    ck = rad_dino.load_pretrained(d, head="none")
    assert any("dinov2." in n for n in ck.notes)


# -- strict loading failures -----------------------------------------------------------------------------------
def _broken_hf(src, dst, edit):
    d = _copy(src, dst, ["config.json", "preprocessor_config.json"])
    sd, md = weights.load_file(src / "model.safetensors")
    edit(sd)
    weights.save_file(d / "model.safetensors", sd, md)
    return d


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda sd: sd.pop("encoder.layer.2.norm1.weight"), "1 missing (encoder.layer.2.norm1.weight)"),
        (lambda sd: sd.__setitem__("encoder.layer.9.norm1.weight", torch.zeros(64)), "1 unexpected (encoder.layer.9"),
        (lambda sd: sd.__setitem__("embeddings.position_embeddings", torch.zeros(1, 1370, 64)),
         "embeddings.position_embeddings: file (1, 1370, 64), model (1, 65, 64)"),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_key_and_shape_mismatches_name_the_key(rad_dino_tiny_dir, tmp_path, edit, needle):
    d = _broken_hf(rad_dino_tiny_dir, tmp_path / "bad", edit)
    with pytest.raises(ModelError) as e:
        rad_dino.load_pretrained(d)
    assert e.value.code == "models.key_mismatch" and needle in e.value.message and "model.safetensors" in e.value.message


def test_meta_mismatch_is_reported_in_meta_names(rad_dino_tiny_dir, tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    sd, md = weights.load_file(rad_dino_tiny_dir / "backbone_compatible.safetensors")
    sd.pop("blocks.1.ls2.gamma")
    weights.save_file(d / "backbone_compatible.safetensors", sd, md)
    with pytest.raises(ModelError, match=r"1 missing \(blocks\.1\.ls2\.gamma\)"):
        rad_dino.load_pretrained(d)


def test_truncated_pickle_and_garbage_files_give_clear_errors(rad_dino_tiny_dir, tmp_path):
    data = (rad_dino_tiny_dir / "model.safetensors").read_bytes()
    cases = {
        "truncated": (data[: len(data) - 1000], "models.truncated_file"),
        "header_cut": (data[:20], "models.truncated_file"),
        "pickle": (None, "models.not_safetensors"),
        "garbage": (b"hello world, not weights" * 10, "models.not_safetensors"),
        "trailing": (data + b"\0" * 8, "models.bad_file"),
    }
    for name, (payload, code) in cases.items():
        d = _copy(rad_dino_tiny_dir, tmp_path / name, ["config.json"])
        if payload is None:
            torch.save({"w": torch.zeros(2)}, d / "model.safetensors")  # zip + pickle, renamed
        else:
            (d / "model.safetensors").write_bytes(payload)
        with pytest.raises(ModelError) as e:
            rad_dino.load_pretrained(d)
        assert e.value.code == code, name
        assert "model.safetensors" in e.value.message


def test_registers_and_pickle_only_directories_are_refused(rad_dino_tiny_dir, tmp_path):
    d = _copy(rad_dino_tiny_dir, tmp_path / "reg", ["model.safetensors"])
    cfg = json.loads((rad_dino_tiny_dir / "config.json").read_text())
    (d / "config.json").write_text(json.dumps(cfg | {"model_type": "dinov2_with_registers", "num_register_tokens": 4}))
    assert rad_dino.is_model_dir(d)
    with pytest.raises(ModelError) as e:
        rad_dino.load_pretrained(d)
    assert e.value.code == "models.registers_unsupported"
    with pytest.raises(ModelError) as e:
        conv.infer_meta_config({"cls_token": (1, 1, 64), "pos_embed": (1, 65, 64), "register_tokens": (1, 4, 64),
                                "patch_embed.proj.weight": (64, 3, 14, 14)})
    assert e.value.code == "models.registers_unsupported"
    p = _copy(rad_dino_tiny_dir, tmp_path / "pkl", ["config.json"])
    torch.save({}, p / "pytorch_model.bin")
    with pytest.raises(ModelError) as e:
        rad_dino.load_pretrained(p)
    assert e.value.code == "models.not_safetensors" and "pytorch_model.bin" in e.value.message


# -- DINO head -------------------------------------------------------------------------------------------------
def test_default_head_has_rad_dino_dims_and_file_size():
    with torch.device("meta"):
        head = DINOHead()
    n = sum(t.numel() for t in head.state_dict().values())
    assert n == 23_138_560  # x 4 bytes = 92.55 MB: the size of RAD-DINO's dino_head.safetensors (92.6 MB)
    assert list(head.state_dict()) == ["mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias", "mlp.4.weight",
                                       "mlp.4.bias", "last_layer.weight_g", "last_layer.weight_v"]
    assert head.state_dict()["last_layer.weight_v"].shape == (65536, 256)


def test_fresh_head_init_and_forward_match_the_definition():
    torch.manual_seed(0)
    head = DINOHead(in_dim=64, out_dim=300, hidden_dim=512, bottleneck_dim=32)
    sd = head.state_dict()
    w = sd["mlp.2.weight"]
    assert abs(float(w.std()) - 0.02) < 0.001 and float(w.abs().max()) < 0.2
    assert all(float(sd[f"mlp.{i}.bias"].abs().max()) == 0 for i in (0, 2, 4))
    assert torch.equal(sd["last_layer.weight_g"], torch.ones(300, 1))
    x = torch.randn(5, 64)
    z = torch.nn.functional.gelu(x @ sd["mlp.0.weight"].T + sd["mlp.0.bias"])
    z = torch.nn.functional.gelu(z @ sd["mlp.2.weight"].T + sd["mlp.2.bias"])
    z = z @ sd["mlp.4.weight"].T + sd["mlp.4.bias"]
    z = z / z.norm(dim=-1, keepdim=True)
    v = sd["last_layer.weight_v"]
    want = z @ (sd["last_layer.weight_g"] * v / v.norm(dim=1, keepdim=True)).T
    assert torch.allclose(head(x), want, atol=1e-5)
    assert head.last_layer.parametrizations.weight.original0.requires_grad
    frozen = DINOHead(in_dim=64, out_dim=300, hidden_dim=512, bottleneck_dim=32, norm_last_layer=True)
    assert not frozen.last_layer.parametrizations.weight.original0.requires_grad


def test_head_file_loads_strictly_in_meta_names(rad_dino_tiny_dir, tmp_path):
    ck = rad_dino.load_pretrained(rad_dino_tiny_dir)
    assert ck.head_source == "file" and ck.head.dims()["out_dim"] == 1024
    saved, _ = weights.load_file(rad_dino_tiny_dir / "dino_head.safetensors")
    assert all(torch.equal(saved[k], v) for k, v in ck.head.state_dict().items())
    # a DINOv2-checkpoint-style prefix is accepted; a missing weight_g is not
    pref = tmp_path / "pref.safetensors"
    weights.save_file(pref, {f"dino_head.{k}": v for k, v in saved.items()})
    assert rad_dino.load_head(pref).out_dim == 1024
    saved.pop("last_layer.weight_g")
    weights.save_file(tmp_path / "bad.safetensors", saved)
    with pytest.raises(ModelError, match="last_layer.weight_g"):
        rad_dino.load_head(tmp_path / "bad.safetensors")


def test_head_modes(rad_dino_tiny_dir, tmp_path):
    with pytest.raises(ModelError) as e:
        rad_dino.load_pretrained(rad_dino_tiny_dir, out_dim=4096)
    assert e.value.code == "models.head_mismatch"
    ck = rad_dino.load_pretrained(rad_dino_tiny_dir, head="fresh", out_dim=512, fresh_head={"hidden_dim": 128})
    assert ck.head_source == "fresh" and ck.head.dims()["out_dim"] == 512 and ck.head.in_dim == 64
    nohead = _copy(rad_dino_tiny_dir, tmp_path / "nohead", ["config.json", "model.safetensors"])
    ck = rad_dino.load_pretrained(nohead, out_dim=256, fresh_head={"hidden_dim": 64, "bottleneck_dim": 16})
    assert ck.head_source == "fresh" and "dino_head.safetensors" not in ck.files
    assert ck.preprocessing.input_size == 112  # no preprocessor file: RAD-DINO's scheme at the model's size
    with pytest.raises(ModelError, match="dino_head.safetensors"):
        rad_dino.load_pretrained(nohead, head="file")


# -- saving ----------------------------------------------------------------------------------------------------
def test_saved_directory_loads_offline_with_transformers_auto_classes(rad_dino_tiny_dir):
    from transformers import AutoImageProcessor, AutoModel

    model = AutoModel.from_pretrained(rad_dino_tiny_dir, local_files_only=True).eval()
    proc = AutoImageProcessor.from_pretrained(rad_dino_tiny_dir, local_files_only=True)
    enc = rad_dino.load_encoder(rad_dino_tiny_dir)
    imgs = _images()
    ours = enc.preprocess(imgs)
    theirs = proc(images=[np.repeat(i[..., None], 3, axis=-1) for i in imgs], return_tensors="pt")["pixel_values"]
    assert theirs.shape == ours.shape == (5, 3, 112, 112)
    assert torch.allclose(ours, theirs, atol=1e-5), float((ours - theirs).abs().max())
    with torch.no_grad():
        out = model(pixel_values=ours)
    assert torch.allclose(out.pooler_output, enc.features(ours)["cls"], atol=1e-5)


def test_rad_dino_processor_config_parses_to_the_published_values():
    cfg = {"crop_size": {"height": 518, "width": 518}, "do_center_crop": True, "do_normalize": True,
           "do_rescale": True, "do_resize": True, "image_mean": [0.5307, 0.5307, 0.5307],
           "image_processor_type": "BitImageProcessor", "image_std": [0.2583, 0.2583, 0.2583], "resample": 3,
           "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 518}}
    pre = ImagePreprocessing.from_processor_config(cfg)
    assert pre == ImagePreprocessing() and pre.input_size == 518
    assert ImagePreprocessing.from_processor_config(pre.to_processor_config()) == pre
    x = pre([np.full((600, 700), 255, np.uint8)])
    assert x.shape == (1, 3, 518, 518) and torch.allclose(x, torch.full_like(x, (1 - 0.5307) / 0.2583), atol=1e-5)
    with pytest.raises(ModelError):
        ImagePreprocessing.from_processor_config({"size": {"longest": 3}})
    with pytest.raises(DataError):
        pre([np.zeros((10, 10), np.float32)])


def test_save_model_dir_is_reproducible_and_refuses_to_clobber(rad_dino_tiny_dir, tmp_path):
    again = rad_dino.write_tiny(tmp_path / "again", seed=0)
    assert again == {f.name: weights_sha(f) for f in rad_dino_tiny_dir.iterdir()}
    assert rad_dino.write_tiny(tmp_path / "other", seed=1)["model.safetensors"] != again["model.safetensors"]
    with pytest.raises(ModelError) as e:
        rad_dino.write_tiny(tmp_path / "again", seed=2)
    assert e.value.code == "models.out_exists"
    rad_dino.write_tiny(tmp_path / "again", seed=2, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folders left
    cfg = json.loads((tmp_path / "again" / "config.json").read_text())
    assert cfg["radadapt"] == {"seed": 2, "tiny": True} and cfg["architectures"] == ["Dinov2Model"]


def weights_sha(path):
    from radadapt.models.encoder import sha256_file

    return sha256_file(path)


# -- encoder ---------------------------------------------------------------------------------------------------
def test_encoder_features_shapes_determinism_and_fingerprint(rad_dino_tiny_dir, tmp_path):
    enc = rad_dino.load_encoder(rad_dino_tiny_dir)
    assert (enc.family, enc.input_size, enc.embed_dim) == ("rad_dino", 112, 64)
    assert not enc.backbone.training and not any(p.requires_grad for p in enc.backbone.parameters())
    x = enc.preprocess(_images())
    f1, f2 = enc.features(x), enc.features(x)
    assert {k: tuple(v.shape) for k, v in f1.items()} == {
        "cls": (5, 64), "patch_mean": (5, 64), "patch_grid": (5, 64, 8, 8), "layers": (5, 4, 64)}
    assert all(torch.equal(f1[k], f2[k]) for k in f1)
    assert not torch.allclose(f1["cls"][0], f1["cls"][1])
    # the last entry of `layers` is the final normalised CLS; patch_mean is the grid's mean
    assert torch.allclose(f1["layers"][:, -1], f1["cls"], atol=1e-6)
    assert torch.allclose(f1["patch_grid"].mean(dim=(2, 3)), f1["patch_mean"], atol=1e-6)
    assert len(enc.fingerprint) == 64 and rad_dino.load_encoder(rad_dino_tiny_dir).fingerprint == enc.fingerprint
    other = tmp_path / "other"
    rad_dino.write_tiny(other, seed=3)
    assert rad_dino.load_encoder(other).fingerprint != enc.fingerprint
    assert math.isfinite(float(f1["cls"].sum()))


def test_load_paths_never_touch_the_network(rad_dino_tiny_dir, monkeypatch):
    import socket

    import huggingface_hub
    from transformers import AutoImageProcessor, AutoModel

    def refuse(*_a, **_k):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for name in ("hf_hub_download", "snapshot_download"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", refuse)
    rad_dino.load_pretrained(rad_dino_tiny_dir)
    rad_dino.load_encoder(rad_dino_tiny_dir).features(torch.zeros(1, 3, 112, 112))
    rad_dino.describe(rad_dino_tiny_dir, verify=True)
    AutoModel.from_pretrained(rad_dino_tiny_dir, local_files_only=True)
    AutoImageProcessor.from_pretrained(rad_dino_tiny_dir, local_files_only=True)


def test_student_drop_path_is_set_at_build_time_and_changes_no_weight(rad_dino_tiny_dir):
    plain = rad_dino.load_pretrained(rad_dino_tiny_dir, head="none").backbone
    student = rad_dino.load_pretrained(rad_dino_tiny_dir, head="none", drop_path_rate=0.3).backbone
    assert student.encoder.layer[0].drop_path.drop_prob == 0.3
    x = torch.randn(2, 3, 112, 112)
    with torch.no_grad():  # eval mode: stochastic depth is off, the networks are identical
        assert torch.equal(plain(pixel_values=x).pooler_output, student(pixel_values=x).pooler_output)
