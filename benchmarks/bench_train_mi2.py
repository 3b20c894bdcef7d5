"""MI2 / UniCL training: the radadapt trainer against a bare PyTorch loop, and GradCache's memory against a full batch.

Two measurements (docs/benchmarks.md "MI2 / UniCL training"):

1. **images/s**, one process, same model, loss and batch: the bare loop is ``UniCLObjective`` forward + UniCL
   loss + backward + clip + AdamW + EMA on one device-resident batch, nothing else; the trainer is
   ``radadapt.train.trainer.Trainer`` on a synthetic store with reports (its data loader, schedules, guards,
   metrics), timed from its metrics rows after the warm-up steps, with and without its data wait. Goal: >= 0.9.
2. **peak memory of one optimizer step** at the same contrastive batch ``B``: one full-batch step (accum 1) vs
   GradCache over ``K`` micro-batches of ``B/K``, each in a fresh subprocess. Method: on CUDA,
   ``torch.cuda.max_memory_allocated`` during two steps minus the memory held before them (weights, batch); on
   CPU, the growth of the process's peak resident set (``ru_maxrss``) during two steps over its value before them.
   Both include the gradients (the same size in both settings), so the difference is the activations. The point of
   GradCache: memory flat in ``B`` at a fixed micro-batch.

    python benchmarks/bench_train_mi2.py                            # CPU, tiny MI2 at 64 px
    python benchmarks/bench_train_mi2.py --device cuda --arch huge --size 480 --batch-size 16 --precision bf16 \\
        --memory-batch 256 --micro 16                               # real-size architecture (random weights)

The store is synthetic (``bench_train.make_store`` images, each with a short synthetic report); the model has
random weights (tiny: ``mi2.write_tiny``; huge: the released sizes, ``mi2_tiny.RELEASED_SIZES``). ``--json FILE``
writes every number.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import make_store  # noqa: E402 - a sibling benchmark script

WORDS = ("no acute cardiopulmonary process pleural effusion small left right pneumothorax cardiomegaly stable tube "
         "line catheter tip projects over the heart size normal consolidation lower lobe").split()


def make_report_store(root: Path, n: int, resolution: int) -> Path:
    """``bench_train.make_store`` plus a synthetic report per image (manifest.jsonl rewritten)."""
    from radadapt import atomic

    make_store(root, n, resolution)
    rng = np.random.default_rng(1)
    rows = [json.loads(line) for line in open(root / "manifest.jsonl", encoding="utf-8")]
    for r in rows:
        r["report_text"] = " ".join(rng.choice(WORDS, int(rng.integers(8, 40)))) + "."
    atomic.write_jsonl(root / "manifest.jsonl", rows)
    return root


def make_model(root: Path, arch: str) -> Path:
    import torch
    import yaml

    from radadapt.models import mi2

    if arch == "tiny":
        mi2.write_tiny(root, seed=0)
        return root
    from bench_mi2 import _padded_tokenizer  # the tiny BPE padded to the real vocabulary size

    from radadapt.models.mi2_model import MI2Config, MI2Model
    from radadapt.models.mi2_tiny import RELEASED_SIZES, config_dict

    tok = root / "tok"
    _padded_tokenizer(tok)
    text = yaml.safe_dump(config_dict(**RELEASED_SIZES), sort_keys=False)
    cfg = MI2Config(yaml.safe_load(text), source_text=text, vocab_size=49408)
    torch.manual_seed(0)
    mi2.save_model_dir(MI2Model(cfg), tok, root / "model", cfg)
    return root / "model"


def train_section(args: argparse.Namespace, batch: int, accum: int):  # noqa: ANN201
    from radadapt.config import TrainSection

    return TrainSection.model_validate({
        "batch_size": batch, "accum": accum, "precision": args.precision, "num_workers": args.workers,
        "log_every": 1, "checkpoint_minutes": 1e6, "grad_checkpointing": args.grad_checkpointing,
        "unicl": {"image_size": args.size, "sources": ["reports"], "require_labels": False},
    })


def build(args, weights: Path, store: Path, batch: int, accum: int):  # noqa: ANN001, ANN201
    from radadapt.manifest import Store
    from radadapt.train.data import select_training_set
    from radadapt.train.objectives import build_objective

    st = Store(store)
    ts = select_training_set(st)
    cfg = train_section(args, batch, accum)
    obj = build_objective("mi2", weights, cfg, n_images=len(ts.index), global_batch=batch * accum,
                          steps_per_epoch=len(ts.index) / (batch * accum))
    obj.attach_data(st, ts)
    if args.grad_checkpointing:
        obj.enable_grad_checkpointing()
    return obj, ts, cfg


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_loop(args, weights: Path, store: Path) -> float:  # noqa: ANN001
    """Images/s of the plain step on a device-resident batch."""
    import contextlib

    import torch

    from radadapt.train.trainer import resolve_precision

    obj, _, _ = build(args, weights, store, args.batch_size, 1)
    obj.to(args.device).train()
    precision = resolve_precision(args.precision, args.device)
    groups = [{**g, "lr": 1e-5, "weight_decay": 0.2 * g["wd_mult"]} for g in obj.param_groups()]
    opt = torch.optim.AdamW(groups, **({"fused": True} if args.device.startswith("cuda") else {"foreach": True}))
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    autocast = (lambda: torch.autocast(args.device.split(":")[0], dtype=dtype)) if dtype else contextlib.nullcontext
    batch = {k: v.to(args.device) for k, v in obj.dummy_batch(args.batch_size).items()}
    params = [p for p in obj.parameters() if p.requires_grad]
    times = []
    for step in range(args.warmup + args.steps):
        sync(args.device)
        t0 = time.perf_counter()
        with autocast():
            out = obj(batch)
        out["loss"].backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        obj.after_step(step, {"ema": 0.999})
        sync(args.device)
        times.append(time.perf_counter() - t0)
    return args.batch_size / statistics.median(times[args.warmup:])


def trainer_loop(args, weights: Path, store: Path, run_dir: Path) -> tuple[float, float]:  # noqa: ANN001
    """Images/s of the real trainer (metrics rows after warm-up), and with its data wait taken out."""
    import torch

    from radadapt.train import metrics
    from radadapt.train.distributed import DistEnv
    from radadapt.train.trainer import LoopSettings, Trainer, resolve_precision

    obj, ts, _ = build(args, weights, store, args.batch_size, 1)
    loop = LoopSettings(device=args.device, precision=resolve_precision(args.precision, args.device),
                        batch_size=args.batch_size, num_workers=args.workers, log_every=1, checkpoint_minutes=1e6)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(obj, str(store), ts.index, loop, DistEnv(), run_dir)
    trainer.metrics = metrics.MetricsLog(run_dir, tensorboard=False)
    trainer.set_total_steps(args.warmup + args.steps)
    torch.manual_seed(0)
    trainer.fit(0)
    trainer.metrics.close()
    rows = metrics.read(run_dir)
    first, last = rows[args.warmup - 1], rows[-1]
    rate = args.steps * args.batch_size / (last["elapsed_s"] - first["elapsed_s"])
    compute = statistics.median(r["step_s"] - r["data_wait_s"] for r in rows[args.warmup:])
    return rate, args.batch_size / compute


_MEMORY_CHILD = """
import json, resource, sys, torch, contextlib
sys.path.insert(0, {here!r})
import bench_train_mi2 as b
args = b.parse_args({argv!r})
torch.set_num_threads(args.threads)
obj, _, _ = b.build(args, b.Path({weights!r}), b.Path({store!r}), {micro}, {accum})
obj.to(args.device).train()
from radadapt.train.objectives.base import BackwardContext
from radadapt.train.trainer import resolve_precision
dtype = {{"bf16": torch.bfloat16, "fp16": torch.float16}}.get(resolve_precision(args.precision, args.device))
ac = (lambda: torch.autocast(args.device.split(":")[0], dtype=dtype)) if dtype else contextlib.nullcontext
ctx = BackwardContext(model=obj, autocast=ac, backward=lambda l: l.backward(), sync=lambda last: contextlib.nullcontext())
batch = obj.dummy_batch({micro} * {accum})
micro = [{{k: v[i * {micro}:(i + 1) * {micro}].to(args.device) for k, v in batch.items()}} for i in range({accum})]
cuda = args.device.startswith("cuda")
if cuda:
    torch.cuda.synchronize(); before = torch.cuda.memory_allocated(); torch.cuda.reset_peak_memory_stats()
else:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
for _ in range(2):  # the first step also allocates the gradients (equal in both settings)
    obj.accumulate_backward(micro, ctx)
    obj.zero_grad(set_to_none=False)
if cuda:
    torch.cuda.synchronize(); peak = torch.cuda.max_memory_allocated() - before
else:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
print(json.dumps({{"step_peak_bytes": int(peak)}}))
"""


def step_memory(args, argv: list[str], weights: Path, store: Path, micro: int, accum: int) -> int:  # noqa: ANN001
    code = _MEMORY_CHILD.format(here=str(Path(__file__).resolve().parent), argv=argv, weights=str(weights),
                                store=str(store), micro=micro, accum=accum)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["step_peak_bytes"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--arch", choices=("tiny", "huge"), default="tiny")
    ap.add_argument("--size", type=int, default=64, help="training crop size (the release trains at 480)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--images", type=int, default=96, help="synthetic store size")
    ap.add_argument("--memory-batch", type=int, nargs="+", default=[16, 64], help="contrastive batches B to compare")
    ap.add_argument("--micro", type=int, default=8, help="GradCache micro-batch")
    ap.add_argument("--json", type=Path)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    import torch

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out: dict = {"device": args.device, "arch": args.arch, "size": args.size, "batch_size": args.batch_size,
                 "threads": args.threads, "workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store = make_report_store(root / "store", args.images, max(args.size + 16, 72))
        weights = make_model(root / "mi2", args.arch)
        out["bare_images_per_s"] = round(bare_loop(args, weights, store), 2)
        rate, no_wait = trainer_loop(args, weights, store, root / "run")
        out["trainer_images_per_s"] = round(rate, 2)
        out["trainer_images_per_s_without_data_wait"] = round(no_wait, 2)
        out["ratio_trainer_over_bare"] = round(rate / out["bare_images_per_s"], 3)
        out["ratio_without_data_wait"] = round(no_wait / out["bare_images_per_s"], 3)
        memory = []
        for b in args.memory_batch:
            full = step_memory(args, argv, weights, store, b, 1)
            cached = step_memory(args, argv, weights, store, args.micro, max(1, b // args.micro))
            memory.append({"batch": b, "full_batch_mib": round(full / 2**20, 1),
                           f"gradcache_micro{args.micro}_mib": round(cached / 2**20, 1)})
        out["step_memory"] = memory
        out["memory_method"] = ("torch.cuda.max_memory_allocated minus memory before the step" if
                                args.device.startswith("cuda") else "growth of ru_maxrss over the steps (CPU)")
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
