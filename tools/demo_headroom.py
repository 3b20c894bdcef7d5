"""How much of the demo's planted signal a model could reach: the yardstick behind docs/demo.md "Headroom".

    python tools/demo_headroom.py DEMO_DIR [--family mi2] [--steps 150] [--lr 3e-4]

On a finished `radadapt demo` folder it fits one probe (logistic regression, C picked on val by AUROC, same
train/val/test split as the benchmark) on three kinds of features and prints per-label test AUROC:

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
import warnings
from pathlib import Path

import numpy as np


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

    scores = {name: probe(feats, targets, list(columns)) for name, feats in rows.items()}
    labels = list(next(iter(scores.values())))
    print(f"{args.family} on {args.demo}: test AUROC per label; F / D = findings / devices macro")
    print("".ljust(22) + "".join(label[:9].rjust(10) for label in labels) + "       F      D")
    for name, s in scores.items():
        f = [s[label] for label in labels if columns[label] == "findings"]
        d = [s[label] for label in labels if columns[label] == "devices"]
        print(name.ljust(22) + "".join(f"{s[label]:10.3f}" for label in labels) + f"  {np.mean(f):.3f}  {np.mean(d):.3f}")


def probe(feats: dict[str, np.ndarray], targets: dict, names: list[str], min_pos: int = 10) -> dict[str, float]:
    """Per label: logistic regression on standardised features, C from a small grid by val AUROC, test AUROC."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    scale = StandardScaler().fit(feats["probe_train"])
    out = {}
    for j, name in enumerate(names):
        split = {}
        for c in ("probe_train", "val", "test"):
            known = targets[c].mask[:, j].astype(bool)
            split[c] = (scale.transform(feats[c][known]), targets[c].y[known, j].astype(int))
        if any(min(int(y.sum()), int(len(y) - y.sum())) < min_pos for _, y in (split["probe_train"], split["test"])):
            continue
        if len(set(split["val"][1])) < 2:
            continue
        best, model = -1.0, None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence warnings at the largest C are expected and harmless
            for c_value in (1e-3, 1e-2, 1e-1, 1.0, 10.0):
                fit = LogisticRegression(C=c_value, max_iter=300).fit(*split["probe_train"])
                auc = roc_auc_score(split["val"][1], fit.decision_function(split["val"][0]))
                if auc > best:
                    best, model = auc, fit
        out[name] = float(roc_auc_score(split["test"][1], model.decision_function(split["test"][0])))
    return out


if __name__ == "__main__":
    main()
