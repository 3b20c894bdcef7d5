"""The UniCL objective for MedImageInsight (Yang et al. CVPR 2022; Codella et al. 2024; docs/training_mi2.md).

The student is the whole ``MI2Model`` (DaViT image tower, text tower, projections, temperature), trained as
Microsoft's UniCL trainer does (research note mi2_unicl.md §5): AdamW at a low lr with warm-up and cosine
decay, weight decay 0.2 except on biases, norms, depthwise convolutions, the temperature and the token/position
embeddings, gradient clipping at 1.0, an EMA of the weights (0.999) that is what ``final/`` exports, drop path
0.2 in the image tower, optional freezing of parameters by regular expression (the released fine-tuning example
freezes the text embeddings and the first text blocks).

Batches pair each image with its report or a label prompt (``unicl_data``); the loss is UniCL over the **global**
batch: all ranks' embeddings are gathered with gradients, and with gradient accumulation (``--accum K``) the K
micro-batches are combined by GradCache (``radadapt.train.gradcache``), so one GPU trains with a contrastive batch
of 1024 while holding the activations of one micro-batch. ``accumulate_backward`` is where that happens.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from radadapt import atomic
from radadapt.errors import ConfigError, DataError
from radadapt.train import schedules
from radadapt.train.augment_mi2 import MI2AugmentSpec, erase_mask
from radadapt.train.gradcache import cached_backward
from radadapt.train.losses.unicl import UniCLLoss, unicl_loss
from radadapt.train.objectives.base import BackwardContext, DataSpec, Objective, Settings
from radadapt.train.objectives.unicl_data import PairTables, UniCLCollate, UniCLTransform, build_pair_tables

if TYPE_CHECKING:
    from radadapt.config import TrainSection, UniclSection
    from radadapt.models.mi2_model import MI2Model

TIMM_TOWER = "image_tower_timm.safetensors"  # in final/: timm ``davit_huge_fl`` names (mi2.save_timm_image_tower)
RUN_INFO = "radadapt.json"  # in final/: which weights these are (EMA or trained), run name and steps
RECIPE_BATCH = 1024  # the released config's TRAIN.BATCH_SIZE_TOTAL


class UniCLObjective(Objective):
    family = "mi2"

    def __init__(self, model: "MI2Model", cfg: "UniclSection", settings: Settings, *, tokenizer_dir: Path,
                 image_size: int):
        super().__init__()
        self.cfg = cfg
        self.settings = settings
        self.tokenizer_dir = Path(tokenizer_dir)
        self.image_size = int(image_size)
        self.student = model
        self.ema: nn.Module | None = None
        if cfg.ema > 0:
            self.ema = copy.deepcopy(model).eval()
            self.ema.requires_grad_(False)
        from radadapt.train.distributed import gather_with_grad  # a no-op without a process group

        self.loss = UniCLLoss(gather=gather_with_grad)
        mc = model.config
        self.register_buffer("pixel_mean", torch.tensor(mc.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(mc.image_std).view(1, 3, 1, 1), persistent=False)
        self.tables: PairTables | None = None
        self.manifest_path: Path | None = None
        self.base_files: dict[str, str] = {}
        self.gradcache = False  # set by build_objective from the accumulation count (the plan's arithmetic)
        self.grad_checkpointing = False
        self._embed_only = False
        self._ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = None

    def train(self, mode: bool = True) -> "UniCLObjective":
        super().train(mode)
        if self.ema is not None:
            self.ema.eval()  # the average is never run with drop path
        return self

    # -- data --------------------------------------------------------------------------------------------------
    def attach_data(self, store: Any, training_set: Any) -> None:
        """Build the pair tables for the training images (every rank, dry runs too); refuses a store without
        labels when label prompts are wanted and ``require_labels`` is set."""
        from radadapt import console

        cfg = self.cfg
        wants_labels = [s for s in cfg.sources if s in ("findings", "devices")]
        if wants_labels and not store.has_labels():
            if cfg.require_labels or "reports" not in cfg.sources:
                raise DataError("train.unicl_no_labels", f"[train.unicl] sources include {' and '.join(wants_labels)} "
                                "but the store has no labels",
                                hint=f"run `radadapt labels {store.path}` first, or set [train.unicl] "
                                     "require_labels = false to train on reports only")
            message = ("WARNING: the store has no labels: training on reports only (run `radadapt labels STORE` "
                       "for the study's design, reports + findings + lines/tubes)")
            self.settings.rules.append(message)
            if _main_rank():
                console.warn(message)
        self.tables = build_pair_tables(store, training_set.index, cfg)
        self.manifest_path = store.manifest_path
        st = self.tables.stats
        if st["with_report"] + st["with_labels"] == 0:
            raise DataError("train.unicl_no_text", "no training image has a report or a label prompt to pair with",
                            hint="check [train.unicl] sources, findings and devices, and that the store has reports")
        n = max(1, st["images"])
        self.settings.rules.append(
            f"pairs: {st['images']:,} images of {st['studies']:,} studies; {st['with_report']:,} with a report, "
            f"{st['with_labels']:,} with a label prompt ({len(self.tables.fact_names)} labels), "
            f"{st['with_both']:,} with both (prompt with p {cfg.label_fraction:g})")
        if st["with_neither"]:
            self.settings.rules.append(f"warning: {st['with_neither']:,} images ({100 * st['with_neither'] / n:.1f}%) "
                                       "have neither a report nor a label: they are read but carry no loss")

    def data_spec(self, seed: int, world_size: int, batch_size: int) -> DataSpec:
        if self.tables is None or self.manifest_path is None:
            raise RuntimeError("UniCLObjective.attach_data(store, training_set) must run before data_spec")
        c = self.cfg
        spec = MI2AugmentSpec(size=self.image_size, scale=tuple(c.crop_scale), ratio=tuple(c.crop_ratio),
                              ops=tuple(c.augment_ops), erase_p=c.erase_p, erase_scale=tuple(c.erase_scale))
        return DataSpec(transform=UniCLTransform(self.tables, self.manifest_path, spec, c),
                        collate=UniCLCollate(self.tokenizer_dir, self.student.config.context_length, c.report_classes))

    def dummy_batch(self, n: int, seed: int = 0) -> dict:
        """``n`` random images with real tokenised texts: prompts sharing classes, captions, one ignored pair."""
        from radadapt.models import mi2

        gen = torch.Generator().manual_seed(seed)
        s = self.image_size
        words = ["pneumothorax", "pleural effusion", "chest tube", "cardiomegaly"]
        texts, labels = [], []
        for i in range(n):
            if i % 3 == 2:
                texts.append(f"the {words[i % 4]} is unchanged since the prior study number {i}")
                labels.append(0)
            else:
                texts.append(f"x-ray chest posteroanterior {words[i % 2]}")
                labels.append(1 + i % 2)
        if n > 3:
            labels[-1] = -1
        enc = mi2.tokenize(mi2.load_tokenizer(self.tokenizer_dir), texts, self.student.config.context_length)
        return {"pixels": torch.randint(0, 256, (n, 1, s, s), dtype=torch.uint8, generator=gen),
                "erase": torch.zeros(n, 4, dtype=torch.int32),
                "input_ids": enc["input_ids"].to(torch.int64), "attention_mask": enc["attention_mask"].to(torch.int64),
                "labels": torch.tensor(labels, dtype=torch.int64), "positions": torch.arange(n)}

    def _pixels(self, batch: dict) -> torch.Tensor:
        x = batch["pixels"].float() / 255.0  # grey [B, 1, S, S] -> the three identical channels MI2 was fed
        x = (x - self.pixel_mean) / self.pixel_std
        erase = batch.get("erase")
        if erase is not None and bool(erase[:, 2].any()):
            x = x.masked_fill(erase_mask(erase, x.shape[-1]), 0.0)  # torchvision RandomErasing(value=0)
        return x

    # -- the objective -----------------------------------------------------------------------------------------
    def _embed(self, batch: dict) -> dict[str, torch.Tensor]:
        return self.student(self._pixels(batch), batch["input_ids"], batch["attention_mask"])

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """The loss on this batch gathered over ranks; ``_embed_only`` (GradCache re-forward) returns the
        embeddings instead."""
        out = self._embed(batch)
        if self._embed_only:
            return out
        parts = self.loss(out["image_embeds"], out["text_embeds"], out["logit_scale"], batch["labels"])
        parts["logit_scale"] = out["logit_scale"].detach()
        return parts

    def accumulate_backward(self, micro_batches: list[dict], ctx: BackwardContext) -> dict[str, torch.Tensor]:
        if len(micro_batches) == 1:
            with ctx.sync(True):
                with ctx.autocast():
                    out = ctx.model(micro_batches[0])
                ctx.backward(out["loss"])
            parts = {k: v.detach().float() for k, v in out.items() if v.numel() == 1}
        else:
            self._embed_only = True
            try:
                parts = cached_backward(micro_batches, embed=self._embed, model=ctx.model, loss_fn=unicl_loss,
                                        autocast=ctx.autocast, backward=ctx.backward, sync=ctx.sync,
                                        world_size=ctx.world_size)
            finally:
                self._embed_only = False
        parts["logit_scale"] = self.student.logit_scale.detach().exp().float()
        return parts

    # -- optimisation --------------------------------------------------------------------------------------------
    def param_groups(self) -> list[dict]:
        """MI2Model's released decay / no-decay split (frozen parameters left out)."""
        return [{"params": g["params"], "lr_mult": 1.0, "wd_mult": 1.0 if g["weight_decay"] else 0.0,
                 "name": g["name"]} for g in self.student.param_groups(weight_decay=1.0)]

    @property
    def clip_grad(self) -> float | None:
        return self.cfg.clip_grad if self.cfg.clip_grad > 0 else None

    def schedules(self, total_steps: int) -> dict[str, np.ndarray]:
        c = self.cfg
        warm = round(c.warmup * total_steps)
        out = {"lr": schedules.cosine(c.lr, c.min_lr, total_steps, warmup=warm, warmup_start=1e-9),
               "wd": schedules.constant(c.weight_decay, total_steps)}
        t = np.arange(int(total_steps), dtype=np.float64)
        ema = np.full(int(total_steps), float(c.ema))
        out["ema"] = np.minimum(ema, (1.0 + t) / (10.0 + t)) if c.ema_warmup else ema
        return out

    @torch.no_grad()
    def after_step(self, step: int, values: dict[str, float]) -> None:
        if self.cfg.logit_scale_max:  # open_clip's clamp of the parameter after the update (off as released)
            limit = math.log(self.cfg.logit_scale_max)
            self.student.logit_scale.clamp_(max=limit)
        if self.ema is None:
            return
        if self._ema_pairs is None:
            s, e = dict(self.student.named_parameters()), dict(self.ema.named_parameters())
            if s.keys() != e.keys():
                raise RuntimeError("student and EMA parameters differ")
            self._ema_pairs = ([e[k] for k in s], [s[k].detach() for k in s])
        averaged, current = self._ema_pairs
        torch._foreach_lerp_(averaged, current, 1.0 - float(values["ema"]))

    def compile_targets(self) -> list[nn.Module]:
        return [self.student.image_encoder, self.student.lang_encoder]

    def enable_grad_checkpointing(self) -> None:
        self.grad_checkpointing = True
        self.student.set_grad_checkpointing(True)

    def flops_per_image(self) -> float:
        """Matmul FLOPs of one image + one text forward (counted by torch's FlopCounterMode on the meta
        device), x3 for forward + backward, x4 with GradCache (its extra graph-free forward)."""
        from torch.utils.flop_counter import FlopCounterMode

        from radadapt.models.mi2_model import MI2Model

        mc = self.student.config
        with torch.device("meta"):
            meta = MI2Model(mc)
            x = torch.empty(1, 3, self.image_size, self.image_size)
            ids = torch.zeros(1, mc.context_length, dtype=torch.int64)
        with FlopCounterMode(display=False) as counter:
            meta(x, ids, torch.ones_like(ids))
        return float(counter.get_total_flops()) * (4 if self.gradcache else 3)

    def activation_bytes_per_image(self, precision: str) -> float:
        """Rough: ~34 bytes x tokens x width per transformer-like block in 16-bit (Korthikanti et al. 2022),
        each DaViT depth unit counting as two blocks, plus window-attention scores; x2 in fp32; one block's
        input per block with activation checkpointing. Per image of one micro-batch (GradCache keeps only that)."""
        mc = self.student.config
        side, total = self.image_size / 4, 0.0
        for dim, depth, heads in zip(mc.embed_dims, mc.depths, mc.num_heads):
            tokens = side * side
            per_unit = 2 * 34 * tokens * dim + 5 * heads * tokens * mc.window_size**2
            total += depth * (per_unit if not self.grad_checkpointing else 2 * tokens * dim)
            side = math.ceil(side / 2)
        text = mc.text_layers * (34 * mc.context_length * mc.text_width + 5 * mc.text_heads * mc.context_length**2)
        return (total + text) * (2 if precision == "fp32" else 1)

    # -- output --------------------------------------------------------------------------------------------------
    def export(self, out_dir: Path, extra: dict | None = None) -> dict[str, str]:
        """final/: the MI2 release layout (EMA weights when EMA is on), the timm image tower, run info."""
        from radadapt.models import mi2
        from radadapt.models.encoder import sha256_file

        out = Path(out_dir)
        model = self.ema if self.ema is not None else self.student
        files = mi2.save_model_dir(model, self.tokenizer_dir, out, config=self._final_config(model.config))
        files[TIMM_TOWER] = mi2.save_timm_image_tower(model, out / TIMM_TOWER)
        info = {"format": "radadapt-mi2-final", "weights": "ema" if self.ema is not None else "trained",
                "ema": self.cfg.ema, "timm_model": "davit_huge_fl", "timm_kwargs": model.config.timm_kwargs(),
                "timm_file": TIMM_TOWER, **(extra or {})}
        atomic.write_json(out / RUN_INFO, info)
        files[RUN_INFO] = sha256_file(out / RUN_INFO)
        return files


    def _final_config(self, config):
        """MI2 evaluates at the size it trains at (released: 480 for both), so a run trained at another
        ``image_size`` records that size in final/config.yaml; otherwise the base config is kept byte for byte."""
        if self.image_size == config.image_size:
            return config
        import copy

        from radadapt.models.mi2_model import MI2Config

        raw = copy.deepcopy(config.raw)
        raw["IMAGE_ENCODER"]["IMAGE_SIZE"] = [self.image_size, self.image_size]
        return MI2Config(raw, source_text=None, vocab_size=config.vocab_size)


def _main_rank() -> bool:
    import os

    return os.environ.get("RANK", "0") == "0"


def _freeze(model: nn.Module, patterns: list[str]) -> tuple[int, int]:
    """requires_grad_(False) on parameters whose name matches any pattern (re.search); (tensors, elements)."""
    compiled = []
    for p in patterns:
        try:
            compiled.append(re.compile(p))
        except re.error:
            raise ConfigError("train.unicl_bad_freeze", f"[train.unicl] freeze pattern {p!r} is not a regular "
                              "expression") from None
    names = [n for n, _ in model.named_parameters()]
    for rx in compiled:
        if not any(rx.search(n) for n in names):
            raise ConfigError("train.unicl_bad_freeze", f"[train.unicl] freeze pattern {rx.pattern!r} matches no "
                              "parameter", hint="names look like lang_encoder.resblocks.0.attn.in_proj_weight or "
                              "image_encoder.stages.0.blocks.0.spatial_block.attn.qkv.weight (`radadapt models info`)")
    tensors = elements = 0
    for name, p in model.named_parameters():
        if any(rx.search(name) for rx in compiled):
            p.requires_grad_(False)
            tensors, elements = tensors + 1, elements + p.numel()
    return tensors, elements


def build_objective(weights: Path, train_cfg: "TrainSection", *, n_images: int, global_batch: int,
                    steps_per_epoch: float) -> UniCLObjective:
    """The objective for an MI2 directory (released layout), with the recipe's settings and the rules that chose
    them. Data (pairs) are attached afterwards with ``attach_data``."""
    from radadapt.models import mi2

    cfg = train_cfg.unicl
    model, _tokenizer, mcfg, files = mi2.load_pretrained(weights)
    root = mi2.resolve_release_dir(weights)
    drop_path = mcfg.drop_path_rate if cfg.drop_path == "auto" else float(cfg.drop_path)
    model.set_drop_path(drop_path)
    frozen, frozen_n = _freeze(model, cfg.freeze)
    size = mcfg.image_size if cfg.image_size == "auto" else int(cfg.image_size)
    accum = train_cfg.accum
    rules = [
        f"lr = {cfg.lr:g}: peak, warm-up {cfg.warmup:g} of the run from 1e-9, cosine to {cfg.min_lr:g} (released "
        "recipe; not scaled by batch)",
        f"weight decay {cfg.weight_decay:g} (none on biases, norms, depthwise convs, logit_scale, embeddings); "
        f"clip {cfg.clip_grad:g}; drop path {drop_path:g} in the image tower",
        f"EMA {cfg.ema:g}" + (" with warm-up min(ema, (1+t)/(10+t))" if cfg.ema_warmup and cfg.ema else "")
        + ("; final/ = the EMA weights" if cfg.ema else "; final/ = the trained weights"),
        f"contrastive batch {global_batch} (global)" + (f": GradCache over {accum} micro-batches" if accum > 1 else ""),
        f"images: {size} px crops, scale {cfg.crop_scale[0]:g}-{cfg.crop_scale[1]:g}; texts: "
        + ", ".join(cfg.sources) + f" ({cfg.label_mode} label per prompt)",
        f"temperature T = {float(model.logit_scale.detach().exp()):.4g} at start, "
        + (f"clamped at {cfg.logit_scale_max:g}" if cfg.logit_scale_max else "unclamped as released"),
    ]
    if frozen:
        rules.append(f"frozen: {frozen} tensors ({frozen_n:,} parameters) matching {', '.join(cfg.freeze)}")
    if global_batch < RECIPE_BATCH:
        rules.append(f"warning: contrastive batch {global_batch} is below the released recipe's {RECIPE_BATCH}; "
                     f"raise --accum (GradCache keeps memory flat): --accum "
                     f"{math.ceil(RECIPE_BATCH / max(1, global_batch // accum))} at this micro-batch")
    values = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "ema": cfg.ema, "drop_path": drop_path,
              "image_size": size, "sources": list(cfg.sources), "label_fraction": cfg.label_fraction,
              "label_mode": cfg.label_mode, "frozen_tensors": frozen, "gradcache": accum > 1}
    objective = UniCLObjective(model, cfg, Settings(values, rules), tokenizer_dir=root / mi2.TOKENIZER_DIR,
                               image_size=size)
    objective.gradcache = accum > 1
    below = root.relative_to(weights) if root.is_relative_to(weights) else Path()  # the hub's dated subfolder
    objective.base_files = {(below / rel).as_posix(): digest for rel, digest in files.items()}
    return objective
