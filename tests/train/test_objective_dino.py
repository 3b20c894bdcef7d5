"""The DINOv2 objective: total loss against a plain per-image implementation, parameter groups, EMA, centres,
accumulation, warm vs fresh head."""

import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_DINO

from radadapt.config import TrainSection
from radadapt.errors import ConfigError
from radadapt.train.objectives import build_objective


def _objective(weights, n_images=100, global_batch=4, **dino):
    cfg = TrainSection.model_validate({"dino": {**TINY_DINO, **dino}})
    return build_objective("rad_dino", weights, cfg, n_images=n_images, global_batch=global_batch,
                           steps_per_epoch=n_images / global_batch)


def _ce(p, s, temp=0.1):
    return -(p * F.log_softmax(s / temp, dim=-1)).sum(-1)


def reference_loss(obj, batch, temp):
    """DINOv2's objective written out image by image, crop by crop (no batching tricks, no chunking)."""
    n_g, n_l = obj.n_global, obj.n_local
    b = batch["global"].shape[0] // n_g
    norm = lambda u8: ((u8.float() / 255 - obj.pixel_mean) / obj.pixel_std).expand(-1, 3, -1, -1)  # noqa: E731
    g = [[norm(batch["global"][c * b + i: c * b + i + 1]) for i in range(b)] for c in range(n_g)]
    loc = [[norm(batch["local"][c * b + i: c * b + i + 1]) for i in range(b)] for c in range(n_l)]
    masks = [[batch["masks"][c * b + i] for i in range(b)] for c in range(n_g)]
    t_bb, t_head = obj.teacher["backbone"], obj.teacher["dino_head"]
    s_bb, s_head = obj.student["backbone"], obj.student["dino_head"]
    with torch.no_grad():
        t_tok = [[t_bb(pixel_values=g[c][i]).last_hidden_state[0] for i in range(b)] for c in range(n_g)]
        t_prob = [[torch.softmax((t_head(t_tok[c][i][:1]).float() - obj.dino_loss.center) / temp, -1)[0]
                   for i in range(b)] for c in range(n_g)]
    s_tok = [[s_bb(pixel_values=g[c][i], bool_masked_pos=masks[c][i][None]).last_hidden_state[0] for i in range(b)]
             for c in range(n_g)]
    s_glob = [[s_head(s_tok[c][i][:1])[0] for i in range(b)] for c in range(n_g)]
    s_loc = [[s_head(s_bb(pixel_values=loc[c][i]).last_hidden_state[0, :1])[0] for i in range(b)] for c in range(n_l)]
    pairs = []
    for c in range(n_g):
        for c2 in range(n_g):
            if c != c2:
                pairs.append(torch.stack([_ce(t_prob[c2][i], s_glob[c][i]) for i in range(b)]).mean())
    for lc in range(n_l):
        for c2 in range(n_g):
            pairs.append(torch.stack([_ce(t_prob[c2][i], s_loc[lc][i]) for i in range(b)]).mean())
    dino = torch.stack(pairs).sum() / len(pairs)
    ibot_terms = []
    for c in range(n_g):
        for i in range(b):
            m = masks[c][i]
            if m.any():
                with torch.no_grad():
                    tp = torch.softmax((t_head(t_tok[c][i][1:][m]).float() - obj.ibot_loss.center) / temp, -1)
                ibot_terms.append(_ce(tp, s_head(s_tok[c][i][1:][m])).mean())
            else:
                ibot_terms.append(torch.zeros(()))
    ibot = torch.stack(ibot_terms).sum() / (n_g * b)
    koleo = 0
    for c in range(n_g):
        x = F.normalize(torch.stack([s_tok[c][i][0] for i in range(b)]), dim=-1)
        dists = []
        for i in range(b):
            others = [torch.linalg.vector_norm(x[i] - x[j] + 1e-8) for j in range(b) if j != i]
            dists.append(torch.stack(others).min())
        koleo = koleo - torch.log(torch.stack(dists) + 1e-8).mean()
    return dino + ibot + 0.1 * koleo, dino, ibot, koleo


def test_total_objective_matches_a_plain_implementation(tiny_weights):
    obj = _objective(tiny_weights, drop_path=0.0)
    torch.manual_seed(1)
    obj.dino_loss.center.copy_(torch.randn_like(obj.dino_loss.center) * 0.1)
    obj.ibot_loss.center.copy_(torch.randn_like(obj.ibot_loss.center) * 0.1)
    batch = obj.dummy_batch(3, seed=2)
    assert batch["masks"].any() and not batch["masks"].all(dim=1).any()
    obj.train()
    obj.set_step(0, {"teacher_temp": 0.05})
    out = obj(batch)
    ref, dino, ibot, koleo = reference_loss(obj, batch, 0.05)
    assert float(out["dino_loss"]) == pytest.approx(float(dino.detach()), rel=1e-4)
    assert float(out["ibot_loss"]) == pytest.approx(float(ibot.detach()), rel=1e-4)
    assert float(out["koleo_loss"]) == pytest.approx(float(koleo.detach()), rel=1e-4)
    assert float(out["loss"].detach()) == pytest.approx(float(ref.detach()), rel=1e-4)
    # and the gradients agree too
    out["loss"].backward()
    g_ours = {n: p.grad.clone() for n, p in obj.student.named_parameters() if p.grad is not None}
    obj.zero_grad()
    ref.backward()
    for n, p in obj.student.named_parameters():
        if n in g_ours:
            torch.testing.assert_close(g_ours[n], p.grad, rtol=1e-3, atol=1e-6)


def test_parameter_groups_follow_dinov2(tiny_weights):
    obj = _objective(tiny_weights)
    by_param = {}
    for g in obj.param_groups():
        for p in g["params"]:
            by_param[id(p)] = g
    named = dict(obj.student.named_parameters())
    n = obj.student["backbone"].config.num_hidden_layers  # 4 in the tiny model

    def group(name):
        return by_param[id(named[name])]

    assert group("backbone.embeddings.patch_embeddings.projection.weight")["lr_mult"] == pytest.approx(0.9 ** (n + 1) * 0.2)
    assert group("backbone.embeddings.cls_token")["lr_mult"] == pytest.approx(0.9 ** (n + 1))
    assert group("backbone.encoder.layer.0.mlp.fc1.weight")["lr_mult"] == pytest.approx(0.9 ** n)
    assert group(f"backbone.encoder.layer.{n - 1}.mlp.fc1.weight")["lr_mult"] == pytest.approx(0.9)
    assert group("backbone.layernorm.weight")["lr_mult"] == 1.0
    assert group("dino_head.mlp.0.weight")["lr_mult"] == 1.0
    for no_decay in ("backbone.embeddings.cls_token", "backbone.embeddings.mask_token",
                     "backbone.embeddings.position_embeddings", "backbone.encoder.layer.0.layer_scale1.lambda1",
                     "backbone.encoder.layer.0.norm1.weight", "backbone.encoder.layer.0.mlp.fc1.bias",
                     "backbone.layernorm.bias", "dino_head.mlp.0.bias"):
        assert group(no_decay)["wd_mult"] == 0.0, no_decay
    assert group("backbone.encoder.layer.0.mlp.fc1.weight")["wd_mult"] == 1.0
    assert group("dino_head.last_layer.parametrizations.weight.original1")["gate"] == "last_layer"
    assert group("backbone.encoder.layer.0.mlp.fc1.weight")["gate"] == "backbone"
    assert sum(len(g["params"]) for g in obj.param_groups()) == len(named)
    assert not any(p.requires_grad for p in obj.teacher.parameters())


def test_ema_teacher_update_and_teacher_stays_in_eval(tiny_weights):
    obj = _objective(tiny_weights)
    obj.train()
    assert obj.student.training and not obj.teacher.training
    s = obj.student["backbone"].embeddings.cls_token
    t = obj.teacher["backbone"].embeddings.cls_token
    with torch.no_grad():
        s.add_(1.0)
    before = t.detach().clone()
    obj.after_step(0, {"momentum": 0.9})
    torch.testing.assert_close(t, 0.9 * before + 0.1 * s.detach())


def _take(batch, n_g, n_l, b, idx):
    rows = lambda n: [c * b + i for c in range(n) for i in idx]  # noqa: E731 - crop-major layout
    return {"global": batch["global"][rows(n_g)], "local": batch["local"][rows(n_l)],  # mask_index recomputed
            "masks": batch["masks"][rows(n_g)], "positions": batch["positions"][idx]}


def test_accumulation_equals_the_full_batch_for_gradients_and_centres(tiny_weights):
    from radadapt.train.objectives.base import BackwardContext

    import contextlib

    grads, centres = [], []
    for split in (False, True):
        obj = _objective(tiny_weights, drop_path=0.0, koleo_weight=0.0)  # KoLeo's neighbours depend on the batch
        obj.train()
        obj.set_step(0, {"teacher_temp": 0.04})
        full = obj.dummy_batch(4, seed=3)
        micro = [_take(full, 2, 4, 4, [0, 1]), _take(full, 2, 4, 4, [2, 3])] if split else [full]
        ctx = BackwardContext(model=obj, autocast=contextlib.nullcontext, backward=lambda loss: loss.backward(),
                              sync=lambda last: contextlib.nullcontext())
        obj.accumulate_backward(micro, ctx)
        grads.append({n: p.grad.clone() for n, p in obj.student.named_parameters() if p.grad is not None})
        obj.after_step(0, {"momentum": 0.99})
        centres.append(obj.dino_loss.center.clone())
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(centres[0], centres[1])
    assert centres[0].abs().sum() > 0


def test_warm_head_is_kept_fresh_head_is_sized_from_the_data(tiny_weights, tmp_path):
    warm = _objective(tiny_weights, n_images=30_000)
    assert warm.out_dim == 1024 and warm.settings.values["head_source"] == "file"  # the tiny head's own count
    sch = warm.schedules(200)
    assert sch["last_layer"][:2].tolist() == [0.0, 0.0] and sch["last_layer"][2] == 1.0  # 1% of 200 steps
    assert sch["backbone"].min() == 1.0
    headless = tmp_path / "headless"
    shutil.copytree(tiny_weights, headless)
    (headless / "dino_head.safetensors").unlink()
    fresh = _objective(headless, n_images=30_000, global_batch=8)
    assert fresh.out_dim == 2048 and fresh.settings.values["head_source"] == "fresh"  # 20k <= 30k < 50k
    assert fresh.student["dino_head"].mlp[0].out_features == TINY_DINO["head_hidden_dim"]
    sch = fresh.schedules(1000)  # 3,750 steps per pass: the warm-up is 10% of the run
    assert sch["backbone"][:100].max() == 0.0 and sch["backbone"][100] == 1.0
    assert sch["last_layer"].min() == 1.0
    explicit = _objective(tiny_weights, n_images=30_000, prototypes=512)
    assert explicit.out_dim == 512 and explicit.settings.values["head_source"] == "fresh"


def test_auto_settings_follow_the_documented_rules(tiny_weights):
    small = _objective(tiny_weights, n_images=20_000, global_batch=256).settings.values
    assert (small["teacher_temp"], small["teacher_temp_start"], small["momentum_start"]) == (0.02, 0.02, 0.99)
    assert small["lr"] == pytest.approx(0.004 * 0.5)
    big = _objective(tiny_weights, n_images=2_000_000, global_batch=1024).settings.values
    assert (big["teacher_temp"], big["teacher_temp_start"], big["momentum_start"]) == (0.07, 0.04, 0.996)
    assert big["lr"] == pytest.approx(0.004)
    fixed = _objective(tiny_weights, teacher_temp=0.05, momentum_start=0.992, lr=1e-4).settings.values
    assert (fixed["teacher_temp"], fixed["momentum_start"], fixed["lr"]) == (0.05, 0.992, 1e-4)


def test_crop_sizes_must_be_multiples_of_the_patch(tiny_weights):
    with pytest.raises(ConfigError) as info:
        _objective(tiny_weights, global_crop_size=60)
    assert info.value.code == "train.crop_size"


def test_collapse_reasons(tiny_weights):
    obj = _objective(tiny_weights)
    assert obj.collapse_reason({"teacher_entropy": 0.5, "teacher_usage": 0.4}) is None
    assert "uniform" in obj.collapse_reason({"teacher_entropy": 0.99, "teacher_usage": 0.9})
    assert "same prototype" in obj.collapse_reason({"teacher_entropy": 0.1, "teacher_usage": 0.01})
    obj.train()
    obj.set_step(0, {"teacher_temp": 0.04})
    out = obj(obj.dummy_batch(2))
    assert 0 < float(out["teacher_entropy"]) < 1 and 0 < float(out["teacher_usage"]) <= 1
    np.testing.assert_array_less(0, float(out["teacher_cls_spread"]))


def test_activation_checkpointing_gives_the_same_gradients(tiny_weights):
    grads = []
    for checkpointing in (False, True):
        obj = _objective(tiny_weights, drop_path=0.0)
        if checkpointing:
            obj.enable_grad_checkpointing()
        obj.train()
        obj.set_step(0, {"teacher_temp": 0.04})
        obj(obj.dummy_batch(2, seed=4))["loss"].backward()
        grads.append({n: p.grad.clone() for n, p in obj.student.named_parameters() if p.grad is not None})
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-5, atol=1e-7)
