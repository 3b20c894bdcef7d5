"""MI2 key converters (round trips, exact) and strict loading (every failure is a clear ModelError)."""

from __future__ import annotations

import shutil
import struct

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from radadapt.errors import ModelError
from radadapt.models import mi2, registry
from radadapt.models import mi2_convert as conv


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models are op-overhead bound: one thread is fastest, and robust on a busy shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture()
def tiny_copy(mi2_tiny_dir, tmp_path):
    dst = tmp_path / "mi2"
    shutil.copytree(mi2_tiny_dir, dst)
    return dst


def _raises(code, fn, *args, **kw):
    with pytest.raises(ModelError) as info:
        fn(*args, **kw)
    assert info.value.code == code, (info.value.code, info.value.message)
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    return info.value.message


# -- round trips ------------------------------------------------------------------------------------------------
def test_released_radadapt_round_trip_is_exact(mi2_tiny_dir):
    released = load_file(str(mi2_tiny_dir / mi2.WEIGHTS_FILE))
    ours = conv.convert_released_to_radadapt(released)
    assert len(ours) == len(released)
    back = conv.convert_radadapt_to_released(ours)
    assert list(sorted(back)) == list(sorted(released))
    assert all(back[k] is released[k] for k in released)  # names change, tensors are passed through
    # spot checks of the mapping in both namings
    for mi2_key, timm_key in [
        ("convs.0.proj.weight", "stem.conv.weight"),
        ("convs.2.norm.bias", "stages.2.downsample.norm.bias"),
        ("convs.3.proj.weight", "stages.3.downsample.conv.weight"),
        ("blocks.1.0.spatial_block.window_attn.fn.qkv.weight", "stages.1.blocks.0.spatial_block.attn.qkv.weight"),
        ("blocks.3.0.channel_block.channel_attn.norm.weight", "stages.3.blocks.0.channel_block.norm1.weight"),
        ("blocks.0.0.channel_block.conv2.fn.dw.bias", "stages.0.blocks.0.channel_block.cpe2.proj.bias"),
        ("blocks.2.0.spatial_block.ffn.fn.net.fc2.weight", "stages.2.blocks.0.spatial_block.mlp.fc2.weight"),
        ("blocks.2.0.spatial_block.ffn.norm.weight", "stages.2.blocks.0.spatial_block.norm2.weight"),
        ("norms.weight", "head.norm.weight"),
    ]:
        assert ours["image_encoder." + timm_key] is released["image_encoder." + mi2_key]
    assert ours["lang_encoder.resblocks.1.attn.in_proj_weight"] is released["lang_encoder.resblocks.1.attn.in_proj_weight"]


def test_image_tower_timm_round_trip_is_exact(mi2_tiny_dir):
    released = load_file(str(mi2_tiny_dir / mi2.WEIGHTS_FILE))
    timm_sd = conv.convert_image_to_timm(released)
    assert "stem.conv.weight" in timm_sd and "head.norm.weight" in timm_sd
    assert not any(k.startswith(("image_encoder.", "lang_encoder.")) for k in timm_sd)
    back = conv.convert_timm_to_image(timm_sd)
    image_part = {k: v for k, v in released.items() if k.startswith("image_encoder.")}
    assert sorted(back) == sorted(image_part) and all(back[k] is image_part[k] for k in back)
    # a radadapt state dict gives the same timm dict
    assert conv.convert_image_to_timm(conv.convert_released_to_radadapt(released)).keys() == timm_sd.keys()
    _raises("models.mi2_unknown_keys", conv.convert_timm_to_image, {**timm_sd, "head.fc.weight": torch.zeros(2, 2)})


def test_save_model_dir_writes_the_released_layout_byte_for_byte(mi2_tiny_dir, tmp_path):
    model, tok, cfg, files = mi2.load_pretrained(mi2_tiny_dir)
    out = tmp_path / "saved"
    written = mi2.save_model_dir(model, mi2_tiny_dir / mi2.TOKENIZER_DIR, out, cfg)
    assert sorted(written) == sorted(mi2.RELEASE_FILES)
    assert written == files  # same bytes: config text kept verbatim, deterministic safetensors writer
    assert mi2.is_model_dir(out)
    # write_tiny: same seed, same bytes; another seed, other weights
    assert mi2.write_tiny(tmp_path / "again", seed=0) == files
    other = mi2.write_tiny(tmp_path / "other", seed=1)
    assert other[mi2.WEIGHTS_FILE] != files[mi2.WEIGHTS_FILE] and other[mi2.CONFIG_FILE] == files[mi2.CONFIG_FILE]


def test_legacy_names_are_accepted_by_explicit_mapping(tiny_copy):
    weights = tiny_copy / mi2.WEIGHTS_FILE
    sd = load_file(str(weights))
    legacy = {}
    for k, v in sd.items():
        k = k.replace("image_encoder.", "visual.", 1).replace("lang_encoder.", "text.", 1)
        legacy[{"image_projection": "vision_projection", "lang_projection": "text_projection"}.get(k, k)] = v
    save_file(legacy, str(weights))
    model = mi2.load_pretrained(tiny_copy)[0]
    ref = conv.convert_released_to_radadapt(sd)
    assert all(torch.equal(model.state_dict()[k], ref[k]) for k in ref)
    both = {**sd, "visual.norms.weight": sd["image_encoder.norms.weight"]}
    assert "image_encoder.norms.weight" in _raises("models.mi2_duplicate_keys", conv.rename_legacy_keys, both)


# -- strict loading failures ----------------------------------------------------------------------------------
def test_missing_unexpected_and_misshaped_tensors_are_named(tiny_copy):
    weights = tiny_copy / mi2.WEIGHTS_FILE
    sd = load_file(str(weights))
    gone = "image_encoder.blocks.2.0.spatial_block.window_attn.fn.qkv.bias"
    save_file({k: v for k, v in sd.items() if k != gone}, str(weights))
    assert f"1 missing ({gone})" in _raises("models.key_mismatch", mi2.load_pretrained, tiny_copy)

    save_file({**sd, "image_encoder.head.weight": torch.zeros(3, 128)}, str(weights))
    assert "1 unexpected (image_encoder.head.weight)" in _raises("models.key_mismatch", mi2.load_pretrained, tiny_copy)

    save_file(dict(sd, lang_projection=torch.zeros(32, 16)), str(weights))
    msg = _raises("models.key_mismatch", mi2.load_pretrained, tiny_copy)
    assert "lang_projection: file (32, 16), model (32, 32)" in msg

    # config and weights that do not belong together: a wider text tower in config.yaml
    save_file(sd, str(weights))
    raw = yaml.safe_load((tiny_copy / mi2.CONFIG_FILE).read_text())
    raw["LANG_ENCODER"]["WIDTH"] = 64
    (tiny_copy / mi2.CONFIG_FILE).write_text(yaml.safe_dump(raw))
    msg = _raises("models.key_mismatch", mi2.load_pretrained, tiny_copy)
    assert "29 with the wrong shape" in msg and "missing" not in msg
    _raises("models.mi2_unknown_keys", conv.convert_released_to_radadapt, {**sd, "image_encoder.foo.weight": sd["logit_scale"]})


def test_truncated_pickled_and_garbage_weights(tiny_copy, tmp_path):
    weights_file = tiny_copy / mi2.WEIGHTS_FILE
    data = weights_file.read_bytes()
    weights_file.write_bytes(data[: len(data) - 1000])
    assert "truncated" in _raises("models.truncated_file", mi2.load_pretrained, tiny_copy)
    weights_file.write_bytes(data[:100])  # cut inside the header
    _raises("models.truncated_file", mi2.load_pretrained, tiny_copy)
    torch.save({"logit_scale": torch.ones(())}, weights_file)  # a pickled checkpoint under the released name
    assert "never unpickles" in _raises("models.not_safetensors", mi2.load_pretrained, tiny_copy)
    weights_file.write_bytes(struct.pack("<Q", 10) + b"not json!!")
    _raises("models.not_safetensors", mi2.load_pretrained, tiny_copy)


def test_config_is_parsed_safely_and_validated(tiny_copy):
    cfg_path = tiny_copy / mi2.CONFIG_FILE
    text = cfg_path.read_text()
    cfg_path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    _raises("models.mi2_bad_config", mi2.load_config, cfg_path)  # safe_load refuses Python tags
    cfg_path.write_text("IMAGE_ENCODER: [unclosed\n")
    _raises("models.mi2_bad_config", mi2.load_config, cfg_path)
    raw = yaml.safe_load(text)
    for section, key, value in [("SPEC", "NUM_GROUPS", [1, 1, 1, 1]), ("SPEC", "PATCH_SIZE", [7, 2, 2, 2]),
                                ("SPEC", "STANDPARAM", False), ("IMAGE_ENCODER", "IMAGE_SIZE", [112, 96])]:
        bad = yaml.safe_load(text)
        (bad["IMAGE_ENCODER"]["SPEC"] if section == "SPEC" else bad["IMAGE_ENCODER"])[key] = value
        cfg_path.write_text(yaml.safe_dump(bad))
        assert key in _raises("models.mi2_unsupported_config", mi2.load_config, cfg_path)
    del raw["LANG_ENCODER"]["WIDTH"]
    cfg_path.write_text(yaml.safe_dump(raw))
    assert "LANG_ENCODER.WIDTH" in _raises("models.mi2_bad_config", mi2.load_config, cfg_path)
    del raw["LANG_ENCODER"]
    cfg_path.write_text(yaml.safe_dump(raw))
    assert "LANG_ENCODER" in _raises("models.mi2_bad_config", mi2.load_config, cfg_path)


def test_directory_layouts(tiny_copy, tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(tiny_copy, hub / "2024.09.27")
    (hub / "README.md").write_text("x")
    assert mi2.resolve_release_dir(hub) == hub / "2024.09.27"
    assert registry.detect_family(hub) == "mi2"
    assert mi2.load_pretrained(hub)[2].image_size == 112
    (hub / "pull.json").write_text('{"repo": "lion-ai/MedImageInsights", "revision": "main", "commit": "abc"}')
    info = registry.describe(hub, verify=True)
    assert info["family"] == "mi2" and info["pulled_from"]["commit"] == "abc"
    assert info["verify"] == {"strict_load": "ok", "tensors": info["parameters"]["tensors"]}
    model = mi2.load_pretrained(hub)[0]
    assert info["parameters"]["image"] == sum(p.numel() for p in model.image_encoder.parameters())
    assert info["parameters"]["text"] == sum(p.numel() for p in model.lang_encoder.parameters())
    assert sorted(f["name"] for f in info["files"]) == sorted(mi2.RELEASE_FILES)
    shutil.copytree(tiny_copy, hub / "2025.01.01")
    _raises("models.mi2_ambiguous", mi2.resolve_release_dir, hub)
    (tiny_copy / mi2.TOKENIZER_DIR / "merges.txt").unlink()
    assert "merges.txt" in _raises("models.mi2_incomplete", mi2.load_pretrained, tiny_copy)
    (tiny_copy / mi2.WEIGHTS_FILE).unlink()
    assert not mi2.is_model_dir(tiny_copy)
    assert "medimageinsigt-v1.0.0.pt" in _raises("models.mi2_incomplete", mi2.resolve_release_dir, tiny_copy)
