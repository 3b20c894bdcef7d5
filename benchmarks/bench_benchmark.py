"""Speed of `radadapt benchmark`: feature extraction against a bare forward, and the linear-probe C sweep.

1. Extraction: ``radadapt.bench.features.extract`` (store read, the model's own preprocessing on a background
   thread, forward under AMP on CUDA, float16 shards written atomically) against the bare model forward on the
   same, already preprocessed batches. Target: extraction >= 0.9 x the bare forward's images/s.
2. Probe sweep: the batched L-BFGS logistic probe, 45 C (DINOv2's grid), warm-started, on 10,000 x 768 features
   and 30 labels, validation-selected and refitted; scikit-learn's lbfgs on the same problem for one label as
   the reference (extrapolated to 30 labels). Target: under 2 minutes on CPU.

    python benchmarks/bench_benchmark.py                      # both, CPU, a ViT-S/14-sized RAD-DINO at 224 px
    python benchmarks/bench_benchmark.py --device cuda --size base --image-size 518 --images 2048
    python benchmarks/bench_benchmark.py --only probes --json

Absolute numbers depend on the machine (and on its load; the script prints the load average); the ratios are
measured in one process on the same data, best of ``--repeats``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZES = {  # Dinov2Config overrides: tiny (tests), small (ViT-S/14), base (ViT-B/14, RAD-DINO's size)
    "tiny": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256),
    "small": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def _write_store(root: Path, n: int, side: int, seed: int = 0) -> None:
    """A store of ``n`` random images (side x 1.2 side), in the real format, all in the test split."""
    from radadapt import atomic
    from radadapt.manifest import ImageRecord, StoreInfo

    rng = np.random.default_rng(seed)
    h, w = side, int(side * 1.2)
    rows, offset = [], 0
    (root / "images").mkdir(parents=True, exist_ok=True)
    with open(root / "images" / "000.u8", "wb") as fh:
        for i in range(n):
            img = rng.integers(0, 256, (h, w), dtype=np.uint8)
            fh.write(img.tobytes())
            rows.append(ImageRecord(image_key=f"{i:020d}", study_key=f"s{i}", patient_key=f"p{i}", split="test",
                                    orig_height=h, orig_width=w, shard="000", offset=offset, height=h, width=w))
            offset += img.size
    atomic.write_text(root / "manifest.jsonl", "".join(r.model_dump_json() + "\n" for r in rows))
    atomic.write_text(root / "store.json", StoreInfo(store_id="bench", radadapt_version="bench",
                                                     key_fingerprint="0" * 16, resolution=side, n_images=n,
                                                     splits={"test": n}, complete=True).model_dump_json())


def _write_model(out: Path, size: str, image_size: int) -> None:
    from transformers import Dinov2Config

    from radadapt.models import rad_dino

    cfg = Dinov2Config(patch_size=14, image_size=image_size, **SIZES[size])
    rad_dino.save_model_dir(rad_dino.build_backbone(cfg), None, out, extra={"bench": True})


def bench_extraction(args) -> dict:
    import torch

    from radadapt.bench import features as F
    from radadapt.manifest import Store
    from radadapt.models import registry

    tmp = Path(tempfile.mkdtemp(prefix="radadapt-bench-"))
    _write_store(tmp / "store", args.images, args.image_size)
    _write_model(tmp / "model", args.size, args.image_size)
    store = Store(tmp / "store")
    enc = registry.load_encoder(tmp / "model", device=args.device)
    index = store.index("test")
    cuda = args.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else None
    batches = [enc.preprocess([store.image_at(index, i) for i in range(s, min(s + args.batch, len(index)))])
               for s in range(0, len(index), args.batch)]
    F.bare_forward(enc, batches[:1], sync)  # warm-up (kernels, allocator)
    bare, full, bare_cpu, full_cpu = [], [], [], []
    for r in range(args.repeats):
        c0 = time.process_time()
        bare.append(F.bare_forward(enc, batches, sync))
        bare_cpu.append(time.process_time() - c0)
        cache = F.FeatureCache(tmp / f"cache{r}", enc.fingerprint)
        t0, c0 = time.perf_counter(), time.process_time()
        F.extract(enc, store, index, cache, batch_size=args.batch)
        if sync:
            sync()
        full.append(time.perf_counter() - t0)
        full_cpu.append(time.process_time() - c0)
    n = len(index)
    out = {
        "what": "feature extraction", "model": f"RAD-DINO-shaped ViT-{args.size}/14", "image_size": args.image_size,
        "store_image": f"{args.image_size}x{int(args.image_size * 1.2)} uint8", "images": n, "batch": args.batch,
        "device": args.device, "torch_threads": torch.get_num_threads(),
        "bare_forward_img_s": round(n / min(bare), 2), "extract_img_s": round(n / min(full), 2),
        "ratio": round(min(bare) / min(full), 3), "target": ">= 0.9",
        "cpu_ratio": round(min(bare_cpu) / min(full_cpu), 3),  # CPU seconds: robust to a busy machine on CPU
    }
    del batches
    return out


def _probe_problem(n: int, d: int, labels: int, seed: int = 0):
    """Features with low-rank structure (like real embeddings) and labels of 1-30% prevalence driven by it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 48))
    x = (z @ rng.normal(size=(48, d)) + 2.0 * rng.normal(size=(n, d))).astype(np.float32)
    prev = rng.uniform(0.01, 0.3, labels)
    logit = z @ rng.normal(size=(48, labels)) * 0.4 + np.log(prev / (1 - prev))
    y = (rng.random((n, labels)) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    return x, y


def bench_probes(args) -> dict:
    import torch
    from sklearn.linear_model import LogisticRegression

    from radadapt.bench.logistic import c_grid
    from radadapt.bench.probes import LabelTargets, fit_linear_probe

    n, nv, d, k = args.probe_images, args.probe_images // 4, args.probe_dim, args.probe_labels
    x, y = _probe_problem(n + nv, d, k)
    tr = LabelTargets(y[:n], np.ones((n, k), bool))
    va = LabelTargets(y[n:], np.ones((nv, k), bool))
    cs = c_grid(45)
    times, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        probe = fit_linear_probe(x[:n], tr, x[n:], va, cs=cs, patience=args.patience,
                                 device=args.device if args.probe_on_device else "cpu")
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    # reference: scikit-learn lbfgs, same C grid, one label (the most prevalent), cold starts as DINOv2 does
    xs = (x[:n] - x[:n].mean(0)) / x[:n].std(0)
    j = int(np.argmax(y[:n].mean(0)))
    t0 = time.perf_counter()
    for c in cs[:: args.sklearn_stride]:
        LogisticRegression(C=c, max_iter=100, tol=1e-4).fit(xs, y[:n, j])
    sk_one = (time.perf_counter() - t0) * args.sklearn_stride
    return {
        "what": "linear probe C sweep (fit on train, pick C on val, refit, thresholds)", "images": n,
        "val_images": nv, "features": d, "labels": k, "c_values": len(cs), "c_patience": args.patience, "torch_threads": torch.get_num_threads(),
        "seconds": round(min(times), 2), "cpu_seconds": round(min(cpu), 2), "target_seconds": 120, "lbfgs_iterations": probe.iterations,
        "sklearn_lbfgs_one_label_s": round(sk_one, 2), "sklearn_lbfgs_30_labels_estimate_s": round(sk_one * k, 1),
        "speedup_vs_sklearn": round(sk_one * k / min(times), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["extraction", "probes"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", choices=list(SIZES), default="small")
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--probe-images", type=int, default=10000)
    ap.add_argument("--probe-dim", type=int, default=768)
    ap.add_argument("--probe-labels", type=int, default=30)
    ap.add_argument("--patience", type=int, default=6, help="[benchmark] c_patience (0: the full 45-C sweep)")
    ap.add_argument("--probe-on-device", action="store_true", help="run the probe sweep on --device too")
    ap.add_argument("--sklearn-stride", type=int, default=5, help="time every k-th C for the sklearn reference")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, all cores)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    env = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
           "load_average_1min": round(os.getloadavg()[0], 2)}
    rows = []
    if args.only in (None, "extraction"):
        rows.append({**bench_extraction(args), **env})
    if args.only in (None, "probes"):
        rows.append({**bench_probes(args), **env, "load_average_1min_after": round(os.getloadavg()[0], 2)})
    for r in rows:
        sys.stdout.write(json.dumps(r) + "\n" if args.json else "\n".join(f"{k}: {v}" for k, v in r.items()) + "\n\n")


if __name__ == "__main__":
    main()
