"""The UniCL objective on the tiny MI2: GradCache = one full-batch step, parameter groups, freezing, EMA, schedules,
the final model directory (MI2 release layout + a timm-loadable image tower)."""

import contextlib

import numpy as np
import pytest
import torch

from radadapt.config import TrainSection
from radadapt.errors import ConfigError
from radadapt.train.objectives.base import BackwardContext
from radadapt.train.objectives.unicl import TIMM_TOWER, build_objective

SIZE = 64  # training crops for the tests: a quarter of the tiny model's 112 px, same code paths


def _objective(weights, accum=1, **unicl):
    cfg = TrainSection.model_validate({"accum": accum, "unicl": {"image_size": SIZE, "drop_path": 0.0, **unicl}})
    return build_objective(weights, cfg, n_images=16, global_batch=8, steps_per_epoch=2.0)


@pytest.fixture(scope="module")
def objective(mi2_tiny_dir):
    torch.manual_seed(0)
    return _objective(mi2_tiny_dir).train()


def _ctx(objective):
    return BackwardContext(model=objective, autocast=contextlib.nullcontext, backward=lambda loss: loss.backward(),
                           sync=lambda last: contextlib.nullcontext())


def _split(batch, sizes):
    out, start = [], 0
    for n in sizes:
        out.append({k: v[start:start + n] for k, v in batch.items()})
        start += n
    return out


def _grads(objective, micro, seed=0):
    objective.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    parts = objective.accumulate_backward(micro, _ctx(objective))
    return parts, {n: p.grad.detach().clone() for n, p in objective.student.named_parameters() if p.grad is not None}


def _rel(a, b):
    return max(float((a[k] - b[k]).norm() / b[k].norm().clamp_min(1e-30)) for k in b)


def test_gradcache_step_equals_one_full_batch_step(objective):
    batch = objective.dummy_batch(8)
    assert set(batch["labels"].tolist()) >= {-1, 0, 1, 2}  # classes, captions and an ignored pair
    full_parts, full = _grads(objective, [batch])
    cached_parts, cached = _grads(objective, _split(batch, [4, 4]))
    uneven_parts, uneven = _grads(objective, _split(batch, [3, 2, 3]))
    assert len(full) == len(cached) == sum(p.requires_grad for p in objective.student.parameters())
    # Tolerance: 1e-5 relative (per tensor, fp32). Only the order of float additions differs.
    assert _rel(cached, full) < 1e-5 and _rel(uneven, full) < 1e-5
    assert float(cached_parts["loss"]) == pytest.approx(float(full_parts["loss"]), rel=1e-6)
    assert float(uneven_parts["unicl_i2t"]) == pytest.approx(float(full_parts["unicl_i2t"]), rel=1e-6)
    assert full["logit_scale"].abs() > 0 and full["image_projection"].abs().sum() > 0


def test_gradcache_replays_drop_path_draws(mi2_tiny_dir):
    """With drop path on, GradCache's second forward must see the first forward's draws: its gradients equal those
    of the plain computation (micro-batch embeddings with a graph, one loss, one backward) from the same RNG state."""
    from radadapt.train import gradcache
    from radadapt.train.losses.unicl import unicl_loss

    torch.manual_seed(0)
    obj = _objective(mi2_tiny_dir, drop_path=0.3).train()
    batch = obj.dummy_batch(8)
    micro = _split(batch, [4, 4])
    obj.zero_grad(set_to_none=True)
    torch.manual_seed(1)
    outs = [obj._embed(b) for b in micro]
    loss = unicl_loss(torch.cat([o["image_embeds"] for o in outs]), torch.cat([o["text_embeds"] for o in outs]),
                      outs[0]["logit_scale"], batch["labels"])["loss"]
    loss.backward()
    reference = {n: p.grad.detach().clone() for n, p in obj.student.named_parameters()}
    _, cached = _grads(obj, micro, seed=1)
    assert _rel(cached, reference) < 1e-5
    # the draws matter: without the replay the gradients are different
    restore = gradcache.RandState.restore
    gradcache.RandState.restore = lambda self: None
    try:
        _, unreplayed = _grads(obj, micro, seed=1)
    finally:
        gradcache.RandState.restore = restore
    assert _rel(unreplayed, reference) > 1e-3


def test_param_groups_follow_the_release_and_freezing_by_regex(mi2_tiny_dir, objective):
    groups = {g["name"]: g for g in objective.param_groups()}
    assert set(groups) == {"decay", "no_decay"} and groups["no_decay"]["wd_mult"] == 0.0
    no_decay = {id(p) for p in groups["no_decay"]["params"]}
    named = dict(objective.student.named_parameters())
    for name in ("logit_scale", "lang_encoder.token_embedding.weight", "lang_encoder.positional_embedding",
                 "lang_encoder.ln_final.weight", "image_encoder.stages.0.blocks.0.spatial_block.cpe1.proj.weight"):
        assert id(named[name]) in no_decay, name
    for name in ("image_projection", "lang_projection", "lang_encoder.resblocks.0.attn.in_proj_weight"):
        assert id(named[name]) not in no_decay, name
    frozen = _objective(mi2_tiny_dir, freeze=[r"^lang_encoder\.(token|positional)_embedding",
                                              r"^lang_encoder\.resblocks\.0\."])
    names = {n for n, p in frozen.student.named_parameters() if not p.requires_grad}
    assert names and all(n.startswith(("lang_encoder.token", "lang_encoder.pos", "lang_encoder.resblocks.0."))
                         for n in names)
    assert "lang_encoder.resblocks.1.attn.in_proj_weight" not in names
    kept = {id(p) for g in frozen.param_groups() for p in g["params"]}
    assert not kept & {id(p) for p in frozen.student.parameters() if not p.requires_grad}
    assert frozen.settings.values["frozen_tensors"] == len(names)
    for bad in (["^convs\\."], ["([unclosed"]):  # Microsoft's anchored example pattern matches nothing here
        with pytest.raises(ConfigError) as info:
            _objective(mi2_tiny_dir, freeze=bad)
        assert info.value.code == "train.unicl_bad_freeze"


def test_schedules_and_ema(mi2_tiny_dir):
    obj = _objective(mi2_tiny_dir, lr=1e-4, warmup=0.1, ema=0.999)
    s = obj.schedules(100)
    assert s["lr"][0] == pytest.approx(1e-9) and s["lr"][9] == pytest.approx(1e-4) and s["lr"][-1] < 1e-6
    assert np.all(s["wd"] == 0.2)
    assert s["ema"][0] == pytest.approx(0.1) and s["ema"][90] == pytest.approx(91 / 100) and s["ema"].max() <= 0.999
    assert _objective(mi2_tiny_dir, ema_warmup=False).schedules(5)["ema"].tolist() == [0.999] * 5
    with torch.no_grad():
        before = obj.ema.image_projection.clone()
        obj.student.image_projection.add_(1.0)
    obj.after_step(0, {"ema": 0.75})
    assert torch.allclose(obj.ema.image_projection, before + 0.25)  # ema = d ema + (1 - d) student
    assert not any(p.requires_grad for p in obj.ema.parameters())
    assert obj.train().ema.training is False  # the average never drops paths
    assert _objective(mi2_tiny_dir, ema=0.0).ema is None


def test_logit_scale_clamp_only_when_configured(mi2_tiny_dir):
    obj = _objective(mi2_tiny_dir, logit_scale_max=10.0, ema=0.0)
    with torch.no_grad():
        obj.student.logit_scale.fill_(5.0)  # T = e^5 = 148
    obj.after_step(0, {})
    assert float(obj.student.logit_scale.detach().exp()) == pytest.approx(10.0, rel=1e-6)
    free = _objective(mi2_tiny_dir, ema=0.0)
    with torch.no_grad():
        free.student.logit_scale.fill_(5.0)
    free.after_step(0, {})
    assert float(free.student.logit_scale.detach()) == 5.0


def test_export_is_a_release_directory_and_a_timm_tower(mi2_tiny_dir, objective, tmp_path):
    import timm
    from safetensors.torch import load_file

    from radadapt.models import mi2, registry

    with torch.no_grad():  # make the EMA differ from the student, so the test sees which one is exported
        for p in objective.ema.parameters():
            p.add_(0.01)
    files = objective.export(tmp_path / "final", extra={"run": "r1", "steps": 3})
    assert {mi2.WEIGHTS_FILE, mi2.CONFIG_FILE, TIMM_TOWER, "radadapt.json"} <= set(files)
    assert registry.detect_family(tmp_path / "final") == "mi2"
    model, _tok, cfg, hashes = mi2.load_pretrained(tmp_path / "final")
    assert hashes[mi2.WEIGHTS_FILE] == files[mi2.WEIGHTS_FILE]
    for (name, a), b in zip(objective.ema.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), name
    overlay = mi2.timm_pretrained_cfg_overlay(cfg, tmp_path / "final" / TIMM_TOWER)
    tower = timm.create_model("davit_huge_fl", pretrained=True, pretrained_cfg_overlay=overlay, num_classes=0,
                              **cfg.timm_kwargs()).eval()
    saved = load_file(tmp_path / "final" / TIMM_TOWER)
    assert saved.keys() == tower.state_dict().keys()  # timm loads *_fl non-strictly: compare after loading
    for name, value in tower.state_dict().items():
        assert torch.equal(value, saved[name]), name
    x = torch.randn(2, 3, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        assert torch.allclose(tower.forward_head(tower.forward_features(x), pre_logits=True),
                              model.image_features(x), atol=1e-6)
    enc = registry.load_encoder(tmp_path / "final")
    assert enc.family == "mi2" and enc.encode_text(["x-ray chest pneumothorax"]).shape == (1, cfg.projection_dim)
