"""The DINOv2 objective for RAD-DINO (Oquab et al. 2023, §3; DINOv2 ``train/ssl_meta_arch.py``).

Student and EMA teacher are ``nn.ModuleDict``s with the same keys: ``backbone`` (``transformers.Dinov2Model``,
the RAD-DINO architecture) and ``dino_head`` (Meta's ``DINOHead``, shared by the DINO and iBOT losses as in
RAD-DINO and DINOv2's ViT-B default). One step, as DINOv2 computes it:

- teacher (eval mode, no gradients, no drop path): the unmasked global crops -> [CLS] head outputs, sharpened and
  centred (or Sinkhorn-Knopp), and head outputs of the patches the student sees masked;
- student (drop path 0.3): the global crops with iBOT block masks applied through ``bool_masked_pos`` (the
  backbone's own ``mask_token``) and the local crops, unmasked;
- DINO loss: every student crop against every teacher global crop of a *different* view, averaged over
  the n_g(n_g-1) + n_l*n_g pairs (2 + 16 = 18 by default);
- iBOT loss on the masked patches; KoLeo (weight 0.1) on each global crop's student [CLS] (pre-head);
- ``after_step``: EMA of every teacher parameter (cosine momentum), then the DINO and iBOT centre updates, once
  per optimizer step whatever the accumulation (docs/training.md "Gradient accumulation").

Layer-wise lr decay 0.9 over the 12 blocks (embeddings lowest), patch embedding lr x0.2, no weight decay on
biases, norms, layer-scale gammas and the cls/mask/position tokens; the head's last layer is gated to lr 0 at
the start. Resolved hyperparameters come from ``radadapt.train.scaling`` when set to "auto".
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from radadapt.errors import ConfigError
from radadapt.train import schedules
from radadapt.train.losses.dino import DINOLoss
from radadapt.train.losses.ibot import iBOTPatchLoss
from radadapt.train.losses.koleo import KoLeoLoss
from radadapt.train.objectives.base import DataSpec, Objective, Settings
from radadapt.train.objectives.dino_data import DinoCollate, make_multicrop

if TYPE_CHECKING:
    from radadapt.config import DinoSection, TrainSection
    from radadapt.models.preprocessing import ImagePreprocessing

_NO_DECAY_TOKENS = ("cls_token", "mask_token", "position_embeddings")


class DINOv2Objective(Objective):
    family = "rad_dino"

    def __init__(self, backbone: nn.Module, head: nn.Module, preprocessing: "ImagePreprocessing", cfg: "DinoSection",
                 settings: Settings, *, steps_per_epoch: float, head_source: str | None = None):
        super().__init__()
        self.cfg = cfg
        self.settings = settings
        self.steps_per_epoch = steps_per_epoch
        self.head_source = head_source
        self.preprocessing = preprocessing
        v = settings.values
        self.patch_size = int(backbone.config.patch_size)
        for name, size in (("global_crop_size", cfg.global_crop_size), ("local_crop_size", cfg.local_crop_size)):
            if size % self.patch_size:
                raise ConfigError("train.crop_size", f"[train.dino] {name} = {size} is not a multiple of the "
                                  f"patch size {self.patch_size}", hint=f"use e.g. {size // self.patch_size * self.patch_size}")
        student_cfg = copy.deepcopy(backbone.config)
        student_cfg.drop_path_rate = cfg.drop_path
        teacher_cfg = copy.deepcopy(backbone.config)
        teacher_cfg.drop_path_rate = 0.0
        student_bb = type(backbone)(student_cfg)
        student_bb.load_state_dict(backbone.state_dict(), strict=True)
        teacher_bb = type(backbone)(teacher_cfg)
        teacher_bb.load_state_dict(backbone.state_dict(), strict=True)
        self.student = nn.ModuleDict({"backbone": student_bb, "dino_head": head})
        self.teacher = nn.ModuleDict({"backbone": teacher_bb, "dino_head": copy.deepcopy(head)})
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        if cfg.ibot_weight <= 0:  # unused without iBOT; DDP must not wait for its gradient
            student_bb.embeddings.mask_token.requires_grad_(False)
        k = int(head.out_dim)
        self.out_dim = k
        self.dino_loss = DINOLoss(k, cfg.student_temp, cfg.center_momentum, cfg.centering, cfg.sinkhorn_iterations)
        self.ibot_loss = iBOTPatchLoss(k, cfg.student_temp, cfg.center_momentum, cfg.centering, cfg.sinkhorn_iterations)
        gather = None
        if cfg.koleo_scope == "global":
            from radadapt.train.distributed import gather_with_grad as gather
        self.koleo_loss = KoLeoLoss(gather=gather)
        mean = torch.tensor(preprocessing.mean[0], dtype=torch.float32)
        std = torch.tensor(preprocessing.std[0], dtype=torch.float32)
        self.register_buffer("pixel_mean", mean, persistent=False)
        self.register_buffer("pixel_std", std, persistent=False)
        self.n_global, self.n_local = cfg.global_crops, cfg.local_crops
        self._teacher_temp = float(v.get("teacher_temp_start", 0.04))
        self._ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None
        self.student_grad_checkpointing = False
        self.base_files: dict[str, str] = {}

    # -- module state ------------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> "DINOv2Objective":
        super().train(mode)
        self.teacher.eval()  # DINOv2: the teacher never drops paths
        return self

    # -- data ------------------------------------------------------------------------------------------------
    def data_spec(self, seed: int, world_size: int, batch_size: int) -> DataSpec:
        grid = self.cfg.global_crop_size // self.patch_size
        return DataSpec(
            transform=make_multicrop(self.cfg),
            collate=DinoCollate(self.cfg, (grid, grid), seed=seed, global_micro_batch=world_size * batch_size),
            images_per_sample=self.n_global + self.n_local,
        )

    def dummy_batch(self, n: int, seed: int = 0) -> dict:
        g, lsz = self.cfg.global_crop_size, self.cfg.local_crop_size
        gen = torch.Generator().manual_seed(seed)
        samples = [
            {"global": torch.randint(0, 256, (self.n_global, 1, g, g), dtype=torch.uint8, generator=gen),
             "local": torch.randint(0, 256, (self.n_local, 1, lsz, lsz), dtype=torch.uint8, generator=gen),
             "position": i}
            for i in range(n)
        ]
        grid = g // self.patch_size
        return DinoCollate(self.cfg, (grid, grid), seed=seed, global_micro_batch=n)(samples)

    def _pixels(self, u8: torch.Tensor) -> torch.Tensor:
        x = (u8.float() / 255.0 - self.pixel_mean) / self.pixel_std  # the model's own preprocessing constants
        return x.expand(-1, 3, -1, -1)  # grey -> the three identical channels the model was trained on

    # -- the objective ---------------------------------------------------------------------------------------
    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        cfg, n_g, n_l = self.cfg, self.n_global, self.n_local
        g = self._pixels(batch["global"])
        masks = batch["masks"].bool() if cfg.ibot_weight > 0 else None
        b = g.shape[0] // n_g
        temp = self._teacher_temp
        if masks is not None:
            # Indices and weights of the masked tokens come precomputed from the collate (CPU): selecting with
            # them, rather than with the boolean mask, never makes the GPU wait to learn how many there are.
            index = batch.get("mask_index")
            index = masks.flatten().nonzero().flatten() if index is None else index
            weights = batch.get("mask_weight")
            pick = lambda tokens: tokens[:, 1:].flatten(0, 1).index_select(0, index)  # noqa: E731
        with torch.no_grad():
            t_tokens = self.teacher["backbone"](pixel_values=g).last_hidden_state
            t_in = t_tokens[:, 0] if masks is None else torch.cat([t_tokens[:, 0], pick(t_tokens)])
            t_out = self.teacher["dino_head"](t_in).float()
            t_cls_probs = self.dino_loss.teacher_probs(t_out[: n_g * b], temp)
            t_patch_probs = None if masks is None else self.ibot_loss.teacher_probs(t_out[n_g * b:], temp)
        s_tokens = self.student["backbone"](pixel_values=g, bool_masked_pos=masks).last_hidden_state
        s_cls = s_tokens[:, 0]
        parts = [s_cls] if masks is None else [s_cls, pick(s_tokens)]
        if n_l > 0:
            s_local = self.student["backbone"](pixel_values=self._pixels(batch["local"])).last_hidden_state[:, 0]
            parts.insert(0, s_local)
        s_out = self.student["dino_head"](torch.cat(parts))
        s_local_out = s_out[: n_l * b]
        s_global_out = s_out[n_l * b: (n_l + n_g) * b]
        teacher_chunks = list(t_cls_probs.chunk(n_g))
        student_global = s_global_out.chunk(n_g)
        n_terms = n_g * (n_g - 1) + n_l * n_g
        dino_local = (self.dino_loss(list(s_local_out.chunk(n_l)), teacher_chunks) / n_terms if n_l
                      else s_out.new_zeros((), dtype=torch.float32))
        dino_global = sum(self.dino_loss([student_global[i]], [t for j, t in enumerate(teacher_chunks) if j != i])
                          for i in range(n_g)) / n_terms
        koleo = sum(self.koleo_loss(c) for c in s_cls.chunk(n_g)) if cfg.koleo_weight > 0 else s_cls.new_zeros(())
        ibot = (self.ibot_loss(s_out[(n_l + n_g) * b:], t_patch_probs, masks, weights) if masks is not None
                else s_out.new_zeros((), dtype=torch.float32))
        dino = dino_local + dino_global
        loss = cfg.dino_weight * dino + cfg.ibot_weight * ibot + cfg.koleo_weight * koleo
        out = {"loss": loss, "dino_loss": dino.detach(), "dino_local_loss": dino_local.detach(),
               "dino_global_loss": dino_global.detach(), "ibot_loss": ibot.detach(), "koleo_loss": koleo.detach()}
        monitor = self._monitor(t_cls_probs, t_tokens[:, 0])
        # CE = H(teacher) + KL(teacher || student): every teacher crop appears in the same number of pairs, so the
        # mean teacher entropy splits the DINO loss exactly. The KL is the part the student controls; H moves
        # with the teacher and the centre (which starts at zero and warms up), so the total is a poor monitor.
        out["dino_kl"] = dino.detach() - monitor.pop("teacher_entropy_nats")
        out.update(monitor)
        return out

    @torch.no_grad()
    def _monitor(self, probs: torch.Tensor, teacher_cls: torch.Tensor) -> dict[str, torch.Tensor]:
        """Collapse indicators (DINO paper §5.3): mean teacher entropy (-> 1 of log K: uniform collapse), entropy
        of the batch-mean teacher distribution (-> 0: every image on one prototype), feature spread."""
        p = probs.float().clamp_min(1e-12)
        log_k = math.log(p.shape[1])
        entropy_nats = -(p * p.log()).sum(1).mean()
        entropy = entropy_nats / log_k
        mean_p = p.mean(0)
        usage = -(mean_p * mean_p.log()).sum() / log_k
        feats = nn.functional.normalize(teacher_cls.float(), dim=-1)
        spread = feats.std(0).mean() * math.sqrt(feats.shape[1]) if feats.shape[0] > 1 else feats.new_zeros(())
        return {"teacher_entropy": entropy, "teacher_usage": usage, "teacher_cls_spread": spread,
                "teacher_entropy_nats": entropy_nats}

    def collapse_reason(self, metrics: dict[str, float]) -> str | None:
        ent, use = metrics.get("teacher_entropy"), metrics.get("teacher_usage")
        if ent is not None and ent > self.cfg.collapse_entropy_high:
            return f"teacher outputs are nearly uniform (entropy {ent:.3f} of the maximum)"
        if use is not None and use < self.cfg.collapse_usage_low:
            return f"teacher puts every image on the same prototype (usage {use:.3f})"
        return None

    # -- schedule hooks --------------------------------------------------------------------------------------
    def set_step(self, step: int, values: dict[str, float]) -> None:
        self._teacher_temp = float(values["teacher_temp"])

    @torch.no_grad()
    def after_step(self, step: int, values: dict[str, float]) -> None:
        if self._ema_pairs is None:
            s = dict(self.student.named_parameters())
            t = dict(self.teacher.named_parameters())
            if s.keys() != t.keys():
                raise RuntimeError("student and teacher parameters differ")
            self._ema_pairs = ([t[k] for k in s], [s[k].detach() for k in s])
        m = float(values["momentum"])
        teacher, student = self._ema_pairs
        torch._foreach_mul_(teacher, m)
        torch._foreach_add_(teacher, student, alpha=1.0 - m)
        self.dino_loss.update_center()
        self.ibot_loss.update_center()

    def discard_step(self) -> None:
        self.dino_loss.reset_statistics()
        self.ibot_loss.reset_statistics()

    def schedules(self, total_steps: int) -> dict[str, np.ndarray]:
        v, cfg = self.settings.values, self.cfg
        run_epochs = total_steps / self.steps_per_epoch if self.steps_per_epoch else 0.0
        from radadapt.train.scaling import backbone_warmup_fraction, teacher_temp_warmup_fraction

        temp_warmup = (teacher_temp_warmup_fraction(run_epochs) if cfg.teacher_temp_warmup == "auto"
                       else float(cfg.teacher_temp_warmup))
        freeze_bb = v["freeze_backbone"]
        if freeze_bb == "auto":
            freeze_bb = backbone_warmup_fraction(run_epochs) if self.head_source == "fresh" else 0.0
        return {
            "lr": schedules.cosine(v["lr"], cfg.min_lr, total_steps, warmup=round(cfg.lr_warmup * total_steps)),
            "wd": schedules.cosine(cfg.weight_decay, cfg.weight_decay_end, total_steps),
            "momentum": schedules.cosine(v["momentum_start"], cfg.momentum_end, total_steps),
            "teacher_temp": schedules.linear_warmup(v["teacher_temp_start"], v["teacher_temp"], total_steps,
                                                    round(temp_warmup * total_steps)),
            "last_layer": schedules.gate(total_steps, round(float(v["freeze_last_layer"]) * total_steps)),
            "backbone": schedules.gate(total_steps, round(float(freeze_bb) * total_steps)),
        }

    # -- optimisation ----------------------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        cfg = self.cfg
        n_layers = int(self.student["backbone"].config.num_hidden_layers)
        fused: dict[tuple, dict] = {}
        for module_name, module in self.student.items():
            for name, p in module.named_parameters():
                if not p.requires_grad:
                    continue
                lr_mult, wd_mult, gate = 1.0, 1.0, None
                if module_name == "backbone":
                    layer = n_layers + 1  # the final norm: no decay
                    if name.startswith("embeddings."):
                        layer = 0
                    elif name.startswith("encoder.layer."):
                        layer = int(name.split(".")[2]) + 1
                    lr_mult = cfg.layerwise_decay ** (n_layers + 1 - layer)
                    if "patch_embeddings" in name:
                        lr_mult *= cfg.patch_embed_lr_mult
                    if any(t in name for t in _NO_DECAY_TOKENS) or "layer_scale" in name:
                        wd_mult = 0.0
                    gate = "backbone"
                elif "last_layer" in name:
                    gate = "last_layer"
                if name.endswith(".bias") or "norm" in name:
                    wd_mult = 0.0
                key = (module_name, round(lr_mult, 12), wd_mult, gate)
                group = fused.setdefault(key, {"params": [], "lr_mult": lr_mult, "wd_mult": wd_mult, "gate": gate,
                                               "name": f"{module_name}/lr{lr_mult:.4g}/wd{wd_mult:g}/{gate}"})
                group["params"].append(p)
        return list(fused.values())

    def clip_groups(self) -> list[list[nn.Parameter]]:
        # DINOv2 clips each student sub-module (backbone, head) separately to the same norm.
        return [[p for p in m.parameters() if p.requires_grad] for m in self.student.values()]

    @property
    def clip_grad(self) -> float | None:
        return self.cfg.clip_grad if self.cfg.clip_grad > 0 else None

    def compile_targets(self) -> list[nn.Module]:
        return [self.student["backbone"], self.teacher["backbone"]]

    def enable_grad_checkpointing(self) -> None:
        self.student_grad_checkpointing = True
        bb, kwargs = self.student["backbone"], {"use_reentrant": False}
        if hasattr(bb, "activation_checkpointing_enable"):  # transformers >= 5.2x name
            bb.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            bb.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def flops_per_image(self) -> float:
        from radadapt.train.objectives.dino_data import vit_forward_flops

        c = self.student["backbone"].config
        g = vit_forward_flops(c, (self.cfg.global_crop_size // self.patch_size) ** 2)
        lo = vit_forward_flops(c, (self.cfg.local_crop_size // self.patch_size) ** 2)
        student = 3 * (self.n_global * g + self.n_local * lo)
        head = sum(p.numel() for p in self.student["dino_head"].parameters()) * 2
        masked = self.n_global * 0.5 * 0.3 * (self.cfg.global_crop_size // self.patch_size) ** 2
        rows = self.n_global + self.n_local + masked
        return student + self.n_global * g + head * (3 * rows + self.n_global + masked)

    def activation_bytes_per_image(self, precision: str) -> float:
        # Korthikanti et al. 2022: ~34 * tokens * hidden bytes per layer in 16-bit with fused attention; x2 in fp32.
        c = self.student["backbone"].config
        tokens = (self.n_global * ((self.cfg.global_crop_size // self.patch_size) ** 2 + 1)
                  + self.n_local * ((self.cfg.local_crop_size // self.patch_size) ** 2 + 1))
        per = 34 * tokens * int(c.hidden_size) * int(c.num_hidden_layers) * (2 if precision == "fp32" else 1)
        if self.student_grad_checkpointing:
            per /= int(c.num_hidden_layers)  # only each block's input is kept
        rows = self.n_global + self.n_local + self.n_global * 0.15 * (self.cfg.global_crop_size // self.patch_size) ** 2
        return per + rows * self.out_dim * 4 * 3  # head logits, softmax and their gradients in fp32

    # -- output ----------------------------------------------------------------------------------------------
    def export(self, out_dir: Path, extra: dict | None = None) -> dict[str, str]:
        from radadapt.models import rad_dino

        return rad_dino.save_model_dir(self.teacher["backbone"], self.teacher["dino_head"], out_dir,
                                       preprocessing=self.preprocessing, extra=extra, overwrite=True)


def build_objective(weights: Path, train_cfg: "TrainSection", *, n_images: int, global_batch: int,
                    steps_per_epoch: float) -> DINOv2Objective:
    """The objective for a RAD-DINO/DINOv2 model directory, with "auto" settings resolved for this data size."""
    from radadapt.models import rad_dino, weights as weight_files
    from radadapt.models.dino_head import infer_head_dims
    from radadapt.train import scaling

    cfg = train_cfg.dino
    rules: list[str] = []
    head_file = Path(weights) / rad_dino.HEAD_WEIGHTS
    file_k = None
    if head_file.is_file():
        shapes = {k.removeprefix("dino_head."): v for k, v in weight_files.header_shapes(head_file).items()}
        file_k = int(infer_head_dims(shapes)["out_dim"])
    if cfg.prototypes == "auto":
        head_mode, out_dim = ("file", None) if file_k else ("fresh", scaling.prototypes_for(n_images))
    else:
        head_mode, out_dim = ("file", None) if file_k == cfg.prototypes else ("fresh", int(cfg.prototypes))
    fresh = {"hidden_dim": cfg.head_hidden_dim, "bottleneck_dim": cfg.head_bottleneck_dim, "nlayers": cfg.head_layers}
    ck = rad_dino.load_pretrained(weights, head=head_mode, out_dim=out_dim, fresh_head=fresh)
    k = int(ck.head.out_dim)
    if ck.head_source == "file":
        rules.append(f"prototypes = {k}: kept the warm head from {rad_dino.HEAD_WEIGHTS}")
    elif cfg.prototypes == "auto":
        rules.append(f"prototypes = {k}: fresh head sized for {n_images:,} images (LightlyTrain buckets)")
    else:
        why = f" ({rad_dino.HEAD_WEIGHTS} has {file_k}; a fresh head replaces it)" if file_k else ""
        rules.append(f"prototypes = {k}: set in [train.dino]{why}")

    def pick(name: str, value, auto_value, rule: str):  # noqa: ANN001, ANN202
        if value == "auto":
            rules.append(f"{name} = {auto_value:g}: {rule}")
            return auto_value
        rules.append(f"{name} = {value:g}: set in [train.dino]")
        return float(value)

    temp_end = pick("teacher_temp", cfg.teacher_temp, scaling.teacher_temp_for(n_images),
                    f"0.02 at 20k -> 0.07 at 1.28M images, for {n_images:,}")
    temp_start = pick("teacher_temp_start", cfg.teacher_temp_start, scaling.teacher_temp_start_for(temp_end),
                      "min(end, 0.02 -> 0.04 as the end goes 0.02 -> 0.07)")
    momentum = pick("momentum_start", cfg.momentum_start, scaling.momentum_start_for(n_images),
                    f"0.99 at 20k -> 0.996 at 1.28M images, for {n_images:,}")
    lr = pick("lr", cfg.lr, scaling.scaled_lr(cfg.base_lr, global_batch, cfg.lr_reference_batch, cfg.lr_scaling),
              f"{cfg.base_lr:g} x {cfg.lr_scaling}({global_batch}/{cfg.lr_reference_batch}) ({cfg.lr_scaling} scaling rule)")
    warm = ck.head_source == "file"
    freeze_last = pick("freeze_last_layer", cfg.freeze_last_layer, 0.01 if warm else 0.0,
                       "warm head: last layer frozen for the first 1% (DINOv2: 1 of 100 epochs)" if warm
                       else "fresh head: the backbone is frozen instead, the last layer learns from the start")
    if cfg.freeze_backbone == "auto":
        rules.append("freeze_backbone: " + ("one pass over the data or 10% of the run, whichever is shorter "
                                            "(fresh head warm-up)" if not warm else "0 (warm head)"))
    if cfg.teacher_temp_warmup == "auto":
        rules.append("teacher_temp_warmup: 30% of the run, at most 30 passes over the data")
    if global_batch < scaling.SMALL_BATCH_WARNING:
        rules.append(f"warning: effective batch {global_batch} is small for DINOv2 (tuned for 1024-3072, "
                     "dinov2#298); raise --accum or use more GPUs if the loss stays flat")
    values = {"lr": lr, "teacher_temp": temp_end, "teacher_temp_start": temp_start, "momentum_start": momentum,
              "freeze_last_layer": freeze_last, "freeze_backbone": cfg.freeze_backbone, "prototypes": k,
              "head_source": ck.head_source, "layout": ck.layout}
    objective = DINOv2Objective(ck.backbone, ck.head, ck.preprocessing, cfg, Settings(values, rules + ck.notes),
                                steps_per_epoch=steps_per_epoch, head_source=ck.head_source)
    objective.base_files = dict(ck.files)
    return objective
