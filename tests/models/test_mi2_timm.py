"""MI2 image tower = timm's davit_huge_fl: the timm loader path, the real-size architecture, training hooks."""

from __future__ import annotations

import copy

import pytest
import torch
import yaml

from radadapt.models import mi2
from radadapt.models import mi2_convert as conv
from radadapt.models.mi2_model import MI2Config, MI2Model, count_parameters
from radadapt.models.mi2_tiny import RELEASED_SIZES, config_dict


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models are op-overhead bound: one thread is fastest, and robust on a busy shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny(mi2_tiny_dir):
    return mi2.load_pretrained(mi2_tiny_dir)


def test_timm_loads_the_saved_image_tower(tiny, tmp_path):
    import timm

    model, _, cfg, _ = tiny
    path = tmp_path / "image_tower.safetensors"
    mi2.save_timm_image_tower(model, path)
    overlay = mi2.timm_pretrained_cfg_overlay(cfg, path)
    assert overlay["input_size"] == (3, 112, 112) and overlay["crop_pct"] == 1.0
    # the tiny sizes go through the same registered entry point as the real model (kwargs override sizes)
    tower = timm.create_model("davit_huge_fl", pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0,
                              **cfg.timm_kwargs()).eval()
    # timm loads *_fl checkpoints non-strictly, so prove every tensor arrived rather than trusting it
    ours = model.image_encoder.state_dict()
    theirs = tower.state_dict()
    assert list(theirs) == list(ours) and all(torch.equal(theirs[k], ours[k]) for k in ours)
    x = torch.randn(2, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pooled = tower.forward_head(tower.forward_features(x), pre_logits=True)
        assert torch.equal(pooled, model.image_features(x))
    assert timm.data.resolve_data_config({}, model=tower)["input_size"] == (3, 112, 112)


def test_real_size_architecture_on_meta_device():
    import timm

    cfg = MI2Config(config_dict(**RELEASED_SIZES))
    assert cfg.is_huge and cfg.vocab_size == 49408 and cfg.image_size == 480
    with torch.device("meta"):
        model = MI2Model(cfg)
        reference = timm.create_model("davit_huge_fl", pretrained=False, num_classes=0)
    assert count_parameters(model.image_encoder) == (402, 360_636_416)
    assert count_parameters(model.lang_encoder) == (4 + 16 * 12, 252_214_272)
    total = count_parameters(model)
    assert total == (402 + 196 + 3, 615_996_417)  # + image_projection, lang_projection, logit_scale
    # identical to timm's registered davit_huge_fl, name for name and shape for shape
    ref = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in model.image_encoder.state_dict().items()} == ref
    # every key of the real model has a released name, and back
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    released = conv.convert_radadapt_to_released(shapes)
    assert conv.convert_released_to_radadapt(released) == shapes
    assert released["image_encoder.blocks.2.8.channel_block.channel_attn.fn.qkv.weight"] == (3072, 1024)
    assert released["image_encoder.convs.3.proj.weight"] == (2048, 1024, 3, 3)
    assert released["image_encoder.norms.weight"] == (2048,)
    assert released["image_projection"] == (2048, 1024) and released["lang_projection"] == (1024, 1024)
    assert released["lang_encoder.token_embedding.weight"] == (49408, 1024)
    # the file radadapt would write has exactly the released size (LFS record: 2,464,060,700 B): 601 fp32
    # tensors and a JSON header whose length depends on every released key name and shape
    header = mi2.safetensors_header(conv.convert_radadapt_to_released(model.state_dict()))
    assert len(header) + 4 * total[1] == mi2.HUB_SIZES[f"{mi2.HUB_SUBDIR}/{mi2.WEIGHTS_FILE}"] == 2_464_060_700


def test_param_groups_follow_the_released_recipe(tiny):
    model = copy.deepcopy(tiny[0])
    model.lang_encoder.resblocks[0].requires_grad_(False)  # frozen parameters are left out
    groups = model.param_groups(weight_decay=0.2)
    decay, plain = ({n for n in g["names"]} for g in groups)
    assert groups[0]["weight_decay"] == 0.2 and groups[1]["weight_decay"] == 0.0
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decay | plain == trainable and not decay & plain
    assert not any(n.startswith("lang_encoder.resblocks.0.") for n in decay | plain)
    for name in ["logit_scale", "lang_encoder.positional_embedding", "lang_encoder.token_embedding.weight",
                 "lang_encoder.ln_final.weight", "lang_encoder.resblocks.1.ln_1.weight",
                 "image_encoder.stem.norm.weight", "image_encoder.head.norm.weight",
                 "image_encoder.stages.1.downsample.norm.weight",
                 "image_encoder.stages.2.blocks.0.spatial_block.cpe1.proj.weight",  # depthwise conv
                 "image_encoder.stages.2.blocks.0.channel_block.attn.qkv.bias"]:
        assert name in plain, name
    for name in ["image_projection", "lang_projection", "image_encoder.stem.conv.weight",
                 "image_encoder.stages.3.downsample.conv.weight",
                 "image_encoder.stages.2.blocks.0.channel_block.attn.qkv.weight",
                 "image_encoder.stages.0.blocks.0.spatial_block.mlp.fc1.weight",
                 "lang_encoder.resblocks.1.attn.in_proj_weight", "lang_encoder.resblocks.1.mlp.c_fc.weight"]:
        assert name in decay, name


def test_trainable_end_to_end_and_checkpointing_gives_the_same_gradients(tiny):
    model, tok, cfg, _ = tiny
    enc = mi2.tokenize(tok, ["x-ray chest Pleural Effusion", "x-ray chest No Finding"])
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))  # any multiple of 4 works

    def grads(checkpointing: bool) -> dict[str, torch.Tensor]:
        m = copy.deepcopy(model).train()
        m.set_grad_checkpointing(checkpointing)
        torch.manual_seed(0)  # drop-path (0.2 in config.yaml) draws the same masks in both runs
        out = m(x, enc["input_ids"], enc["attention_mask"])
        logits = out["logit_scale"] * out["image_embeds"] @ out["text_embeds"].T
        target = torch.arange(2)
        loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        loss.backward()
        return {n: p.grad for n, p in m.named_parameters()}

    plain, ckpt = grads(False), grads(True)
    # every parameter learns (token embeddings: only the rows of the tokens used)
    assert all(g is not None for g in plain.values())
    assert all(float(g.abs().sum()) > 0 for n, g in plain.items()), [n for n, g in plain.items() if not g.abs().sum()]
    assert all(torch.allclose(plain[n], ckpt[n], atol=1e-6, rtol=1e-4) for n in plain)


def test_config_options_reach_the_model(mi2_tiny_dir):
    raw = yaml.safe_load((mi2_tiny_dir / mi2.CONFIG_FILE).read_text())
    raw["IMAGE_ENCODER"]["SPEC"]["ENABLE_CHECKPOINT"] = True
    raw["IMAGE_ENCODER"]["SPEC"]["DROP_PATH_RATE"] = 0.3
    model = MI2Model(MI2Config(raw, vocab_size=814))
    assert model.image_encoder.grad_checkpointing and model.lang_encoder.grad_checkpointing
    stages = model.image_encoder.stages
    # MI2's rule: linear over all 8 spatial/channel blocks, 0 .. 0.3
    assert isinstance(stages[0].blocks[0].spatial_block.drop_path1, torch.nn.Identity)  # rate 0
    assert stages[0].blocks[0].channel_block.drop_path1.drop_prob == pytest.approx(0.3 / 7)
    assert stages[3].blocks[0].channel_block.drop_path2.drop_prob == pytest.approx(0.3)
    assert stages[3].blocks[0].spatial_block.drop_path2.drop_prob == pytest.approx(0.3 * 6 / 7)
