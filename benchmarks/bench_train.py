"""Training throughput: the radadapt trainer against a bare PyTorch loop, and the data loader against both.

Three numbers, measured in one process on the same model, loss and batch (docs/benchmarks.md "Training"):

1. **bare loop** images/s: the DINOv2 objective's full step (student forward + backward, teacher forward, heads,
   per-module clipping, AdamW, EMA and centre updates) on one batch already on the device, nothing else: no data
   loading, no logging, no guards, no checkpoints (research note perf_anchors.md, "Suggested ratio goals" 1);
2. **trainer** images/s: ``radadapt.train.trainer.Trainer`` on a real store through its data loader, with
   schedules, guards, the per-step collective and metrics.jsonl (timed from its own metrics rows between the
   warm-up step and the last step, so the final checkpoint is not counted);
3. **loader** images/s: the DataLoader alone (store memory maps -> multi-crop -> masks -> collate) with the same
   workers, i.e. what the trainer could be fed. Goal: >= 3x what training consumes.

Ratios: trainer / bare (goal >= 0.9) and loader / trainer (goal >= 3). Also reported: the trainer's images/s with
its data wait removed, which isolates the trainer's own cost from data loading. On a machine whose loader workers
share the training cores (any CPU run) the plain ratio mostly measures that sharing; run with ``--workers 0`` there
to see the trainer's own overhead, and read the loader ratio from a separate ``--workers N`` run.

    python benchmarks/bench_train.py                                  # CPU, tiny RAD-DINO, small crops
    python benchmarks/bench_train.py --model mi2 [bench_train_mi2.py options]   # MI2 / UniCL (GradCache memory too)
    python benchmarks/bench_train.py --device cuda --arch base --global-size 224 --local-size 98 --batch-size 64
    python benchmarks/bench_train.py --device cuda --arch base --global-size 518 --local-size 224 --batch-size 16

The store is synthetic (smooth random radiograph-like images at ``--store-resolution``, 518 by default, the
ingest default), written to a temporary directory; the model has random weights of the chosen size (throughput
does not depend on the weights). ``--json FILE`` writes every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ARCHS = {  # hidden, layers, heads, head (prototypes, hidden, bottleneck)
    "tiny": (64, 4, 4, (1024, 64, 32)),
    "small": (384, 12, 6, (65536, 2048, 256)),
    "base": (768, 12, 12, (65536, 2048, 256)),
}


def make_store(root: Path, n: int, resolution: int, seed: int = 0) -> Path:
    from radadapt import atomic
    from radadapt.manifest import ImageRecord, StoreInfo

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    rows, offset = [], 0
    with open(root / "images" / "000000.u8", "wb") as fh:
        for i in range(n):
            h, w = resolution, int(resolution * rng.uniform(1.0, 1.25))
            yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
            img = 140 + 60 * np.sin(6 * xx + rng.uniform(0, 6)) * np.cos(4 * yy) + rng.normal(0, 8, (h, w))
            img = np.clip(img, 0, 255).astype(np.uint8)
            fh.write(img.tobytes())
            rows.append(ImageRecord(image_key=f"i{i:06d}", study_key=f"s{i:06d}", patient_key=f"p{i // 2:06d}",
                                    split="train", orig_height=h, orig_width=w, shard="000000", offset=offset,
                                    height=h, width=w).model_dump(mode="json"))
            offset += h * w
    atomic.write_jsonl(root / "manifest.jsonl", rows)
    info = StoreInfo(store_id="bench", radadapt_version="bench", key_fingerprint="0" * 16, resolution=resolution,
                     n_images=n, splits={"train": n}, complete=True)
    atomic.write_json(root / "store.json", info.model_dump(mode="json"))
    return root


def make_model(root: Path, arch: str, seed: int = 0) -> Path:
    import torch
    from transformers import Dinov2Config

    from radadapt.models import rad_dino
    from radadapt.models.dino_head import DINOHead

    hidden, layers, heads, (k, hdim, bdim) = ARCHS[arch]
    torch.manual_seed(seed)
    cfg = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, patch_size=14,
                       image_size=518, layer_norm_eps=1e-6)
    backbone = rad_dino.build_backbone(cfg)
    head = DINOHead(in_dim=hidden, out_dim=k, hidden_dim=hdim, bottleneck_dim=bdim)
    rad_dino.save_model_dir(backbone, head, root)
    return root


def train_section(args: argparse.Namespace):  # noqa: ANN201
    from radadapt.config import TrainSection

    return TrainSection.model_validate({
        "batch_size": args.batch_size, "precision": args.precision, "num_workers": args.workers, "log_every": 1,
        "compile": args.compile, "checkpoint_minutes": 1e6,
        "dino": {"global_crop_size": args.global_size, "local_crop_size": args.local_size,
                 "local_crops": args.local_crops, "drop_path": 0.0},
    })


def build(args, weights: Path, n_images: int):  # noqa: ANN001, ANN201
    from radadapt.train.objectives import build_objective

    cfg = train_section(args)
    return build_objective("rad_dino", weights, cfg, n_images=n_images, global_batch=args.batch_size,
                           steps_per_epoch=n_images / args.batch_size), cfg


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_loop(args, weights: Path, batch: dict, n_images: int) -> float:  # noqa: ANN001
    """Images/s of the plain step on a device-resident batch."""
    import contextlib

    import torch

    from radadapt.train.trainer import resolve_precision

    objective, _ = build(args, weights, n_images)
    objective.to(args.device).train()
    precision = resolve_precision(args.precision, args.device)
    if args.compile:
        for m in objective.compile_targets():
            m.compile()
    groups = [{**g, "lr": 1e-5 * g["lr_mult"], "weight_decay": 0.04 * g["wd_mult"]} for g in objective.param_groups()]
    opt = torch.optim.AdamW(groups, **({"fused": True} if args.device.startswith("cuda") else {"foreach": True}))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(args.device.split(":")[0], dtype=dtype)) if dtype else contextlib.nullcontext
    scaler = torch.amp.GradScaler(args.device.split(":")[0], enabled=precision == "fp16")
    values = {"teacher_temp": 0.04, "momentum": 0.996}
    batch = {k: v.to(args.device) for k, v in batch.items()}
    times = []
    for step in range(args.warmup + args.steps):
        sync(args.device)
        t0 = time.perf_counter()
        objective.set_step(step, values)
        with autocast():
            out = objective(batch)
        scaler.scale(out["loss"]).backward()
        scaler.unscale_(opt)
        for group in objective.clip_groups():
            torch.nn.utils.clip_grad_norm_(group, 3.0, foreach=True)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        objective.after_step(step, values)
        sync(args.device)
        times.append(time.perf_counter() - t0)
    return args.batch_size / statistics.median(times[args.warmup:])


def trainer_loop(args, weights: Path, store: Path, run_dir: Path) -> tuple[float, float, float]:  # noqa: ANN001
    """Images/s of the real trainer (from its metrics rows), its mean data-wait fraction, and its images/s with the
    data wait taken out (the trainer's own cost: schedules, guards, the per-step collective, logging)."""
    import torch

    from radadapt.manifest import Store
    from radadapt.train import metrics
    from radadapt.train.data import select_training_set
    from radadapt.train.distributed import DistEnv
    from radadapt.train.trainer import LoopSettings, Trainer, resolve_precision

    ts = select_training_set(Store(store))
    objective, cfg = build(args, weights, len(ts.index))
    loop = LoopSettings(device=args.device, precision=resolve_precision(args.precision, args.device),
                        batch_size=args.batch_size, num_workers=args.workers, log_every=1,
                        checkpoint_minutes=1e6, compile=args.compile)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(objective, str(store), ts.index, loop, DistEnv(), run_dir)
    trainer.metrics = metrics.MetricsLog(run_dir, tensorboard=False)
    trainer.set_total_steps(args.warmup + args.steps)
    torch.manual_seed(0)
    trainer.fit(0)
    trainer.metrics.close()
    rows = metrics.read(run_dir)
    first, last = rows[args.warmup - 1], rows[-1]
    rate = args.steps * args.batch_size / (last["elapsed_s"] - first["elapsed_s"])
    waits = [r["data_wait_s"] / r["step_s"] for r in rows[args.warmup:]]
    compute = statistics.median(r["step_s"] - r["data_wait_s"] for r in rows[args.warmup:])
    return rate, float(np.mean(waits)), args.batch_size / compute


def loader_only(args, weights: Path, store: Path) -> tuple[float, dict]:  # noqa: ANN001
    """Images/s of the DataLoader alone, and one batch (for the bare loop)."""
    import torch
    from torch.utils.data import DataLoader

    from radadapt.manifest import Store
    from radadapt.train.data import StepBatchSampler, StoreStream, StreamLayout, select_training_set, worker_init

    ts = select_training_set(Store(store))
    objective, _ = build(args, weights, len(ts.index))
    spec = objective.data_spec(0, 1, args.batch_size)
    n_batches = args.loader_batches
    loader = DataLoader(StoreStream(str(store), ts.index, spec.transform, 0),
                        batch_sampler=StepBatchSampler(StreamLayout(args.batch_size), 0, n_batches + 2),
                        collate_fn=spec.collate, num_workers=args.workers, worker_init_fn=worker_init,
                        prefetch_factor=4 if args.workers else None, pin_memory=args.device.startswith("cuda"),
                        generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    first = next(it)
    next(it)  # workers are up
    t0 = time.perf_counter()
    for _ in range(n_batches):
        next(it)
    rate = n_batches * args.batch_size / (time.perf_counter() - t0)
    return rate, first


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", choices=sorted(ARCHS), default="tiny")
    p.add_argument("--global-size", type=int, default=112)
    p.add_argument("--local-size", type=int, default=56)
    p.add_argument("--local-crops", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--precision", default="auto")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--loader-batches", type=int, default=20)
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--store-resolution", type=int, default=518)
    p.add_argument("--repeats", type=int, default=2, help="alternate bare/trainer runs this many times")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--threads", type=int, help="torch intra-op threads in the training process (default: torch's)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        store = make_store(root / "store", args.images, args.store_resolution)
        weights = make_model(root / "model", args.arch)
        loader_rate, batch = loader_only(args, weights, store)
        bare, trainer, waits, compute = [], [], [], []
        for i in range(args.repeats):
            bare.append(bare_loop(args, weights, batch, args.images))
            rate, wait, own = trainer_loop(args, weights, store, root / f"run{i}")
            trainer.append(rate)
            waits.append(wait)
            compute.append(own)
    bare_rate, trainer_rate = statistics.median(bare), statistics.median(trainer)
    compute_rate = statistics.median(compute)
    result = {
        "device": args.device if not args.device.startswith("cuda") else torch.cuda.get_device_name(),
        "arch": args.arch, "crops": f"{2}x{args.global_size} + {args.local_crops}x{args.local_size}",
        "batch_size": args.batch_size, "precision": args.precision, "workers": args.workers,
        "torch_threads": torch.get_num_threads(),
        "bare_images_per_s": round(bare_rate, 2), "trainer_images_per_s": round(trainer_rate, 2),
        "trainer_over_bare": round(trainer_rate / bare_rate, 3),
        "loader_images_per_s": round(loader_rate, 2), "loader_over_trainer": round(loader_rate / trainer_rate, 2),
        "trainer_data_wait_fraction": round(float(np.mean(waits)), 4),
        "trainer_without_data_wait_images_per_s": round(compute_rate, 2),
        "trainer_without_data_wait_over_bare": round(compute_rate / bare_rate, 3),
        "runs": {"bare": [round(x, 2) for x in bare], "trainer": [round(x, 2) for x in trainer]},
    }
    if args.device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    if sys.argv[1:3] == ["--model", "mi2"]:  # one entry point for both families; MI2 measures memory as well
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_train_mi2 import main as main_mi2

        sys.exit(0 if main_mi2(sys.argv[3:]) else 1)
    if sys.argv[1:3] == ["--model", "rad-dino"]:
        del sys.argv[1:3]
    sys.exit(0 if main() else 1)
