"""How much of the demo's planted signal a model could reach: the yardstick behind docs/demo.md "Headroom".

    python tools/demo_headroom.py DEMO_DIR [--family mi2] [--steps 150] [--lr 3e-4]

On a finished `radadapt demo` folder it fits the benchmark's own linear probe (same split, same code, the demo's
[benchmark] settings) on three kinds of features and prints per-label test AUROC:

- **pixels**: the store image resized to the model's centre crop, then area-averaged to 16 x 16 (256 numbers);
- **open weights**: the family's pooled feature (``cls``) of DEMO_DIR/open-weights/FAMILY;
- **supervised**: the same network fine-tuned with the labels themselves (BCE on every finding and device, the
  train split, ``--steps`` x 16 images, AdamW), i.e. what the labels can teach at the demo's compute, an upper
  reference for a self-supervised or contrastive run of the same length (not a bound in the strict sense).

A diagnostic, not part of the pipeline: it reads the store through the benchmark's own cohort and target code,
runs on a CPU in one to two minutes, and writes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from radadapt.config import BenchSection


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("demo", type=Path, help="a finished `radadapt demo --out DIR` folder")
    ap.add_argument("--family", choices=["rad-dino", "mi2"], default="rad-dino")
    ap.add_argument("--steps", type=int, default=150, help="supervised steps of 16 images")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F

    from radadapt.bench import targets as T
    from radadapt.config import load_config
    from radadapt.manifest import Store
    from radadapt.models.registry import load_encoder

    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    store = Store(args.demo / "store")
    columns = T.label_columns(store)
    cohorts = T.select_cohorts(store, {"probe_train": None, "val": None, "test": None}, seed=0,
                               splits_as={"train": "probe_train", "val": "val", "test": "test"})
    targets, _ = T.build_targets(store, cohorts, columns, "exclude")
    images = {c: [store.image_at(cohorts[c].index(), i) for i in range(len(cohorts[c]))] for c in cohorts}

    enc = load_encoder(args.demo / "open-weights" / args.family)
    pixels = {c: enc.preprocess(images[c]) for c in cohorts}
    if args.family == "rad-dino":
        net, dim = enc.backbone, enc.embed_dim

        def pooled(x: torch.Tensor) -> torch.Tensor:
            return net(pixel_values=x).pooler_output
    else:
        net, dim = enc.model.image_encoder, enc.embed_dim

        def pooled(x: torch.Tensor) -> torch.Tensor:
            return net.forward_head(net.forward_features(x), pre_logits=True)

    def features() -> dict[str, np.ndarray]:
        net.eval()
        with torch.no_grad():
            return {c: torch.cat([pooled(p[i:i + 64]) for i in range(0, len(p), 64)]).numpy()
                    for c, p in pixels.items()}

    rows = {"pixels 16x16": {c: F.adaptive_avg_pool2d(p[:, :1], 16).flatten(1).numpy() for c, p in pixels.items()},
            "open weights": features()}

    net.train().requires_grad_(True)
    y = torch.from_numpy(targets["probe_train"].y.astype(np.float32))
    known = torch.from_numpy(targets["probe_train"].mask.astype(np.float32))
    head = torch.nn.Linear(dim, len(columns))
    opt = torch.optim.AdamW([*net.parameters(), *head.parameters()], lr=args.lr, weight_decay=0.05)
    gen = torch.Generator().manual_seed(args.seed)
    for _ in range(args.steps):
        pick = torch.randint(len(pixels["probe_train"]), (16,), generator=gen)
        logits = head(pooled(pixels["probe_train"][pick]))
        loss = (F.binary_cross_entropy_with_logits(logits, y[pick], reduction="none") * known[pick]).sum()
        opt.zero_grad()
        (loss / known[pick].sum().clamp(min=1)).backward()
        opt.step()
    rows[f"supervised {args.steps} steps"] = features()

    cfg = load_config(args.demo / "site" / "radadapt.toml").benchmark
    scores = {name: probe(feats, targets, list(columns), cfg) for name, feats in rows.items()}
    labels = list(next(iter(scores.values())))
    print(f"{args.family} on {args.demo}: test AUROC per label; F / D = findings / devices macro")
    print("".ljust(22) + "".join(label[:9].rjust(10) for label in labels) + "       F      D")
    for name, s in scores.items():
        f = [s[label] for label in labels if columns[label] == "findings"]
        d = [s[label] for label in labels if columns[label] == "devices"]
        print(name.ljust(22) + "".join(f"{s[label]:10.3f}" for label in labels) + f"  {np.mean(f):.3f}  {np.mean(d):.3f}")


def probe(feats: dict[str, np.ndarray], targets: dict, names: list[str], cfg: "BenchSection") -> dict[str, float]:
    """The benchmark's own linear probe (``bench.probes.fit_linear_probe``: C swept on val, refit, float64) with
    the demo's [benchmark] settings; test AUROC of each label the benchmark would evaluate (``label_status``)."""
    from radadapt.bench.logistic import c_grid
    from radadapt.bench.metrics import auroc_matrix
    from radadapt.bench.probes import fit_linear_probe
    from radadapt.bench.results import label_counts, label_status

    fitted = fit_linear_probe(feats["probe_train"], targets["probe_train"], feats["val"], targets["val"],
                              cs=c_grid(cfg.c_values, cfg.c_min, cfg.c_max), max_iter=cfg.max_iter,
                              refit_iter=cfg.refit_iter, patience=cfg.c_patience)
    test = targets["test"]
    aucs = auroc_matrix(fitted.scores(feats["test"]), test.y.astype(bool), test.mask)
    out = {}
    for j, name in enumerate(names):
        counts = {split: label_counts(targets[split], j) for split in ("probe_train", "val", "test")}
        if label_status(counts, cfg.min_positives)[0] == "evaluated":
            out[name] = float(aucs[j])
    return out


if __name__ == "__main__":
    main()
