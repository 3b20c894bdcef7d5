"""Attentive-pooling probe on frozen patch tokens (optional: ``[benchmark] attentive_probe = true``).

A linear probe sees one pooled vector, so a small finding in one corner is diluted by the mean. The attentive
probe learns where to look: one learned query attends over the patch tokens (multi-head cross-attention), and a
linear layer maps the pooled token to every label (the attentive probe of V-JEPA, Bardes et al. 2024, and AIM,
El-Nouby et al. 2024). It is trained, not fitted in closed form, so it costs minutes rather than seconds.

Tokens are the last layer's patch grid average-pooled to at most 8 x 8 (64 tokens; ``TOKEN_GRID``), cached as
kind ``tokens``; they are standardised per channel with the probe-training statistics. Training: masked BCE over
all labels at once, AdamW, the epoch with the best validation macro AUROC kept; thresholds chosen on validation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from radadapt.bench.metrics import auroc_matrix
from radadapt.bench.probes import LabelTargets, choose_thresholds

if TYPE_CHECKING:
    import torch

TOKEN_GRID = 8


def pool_tokens(grid: "torch.Tensor", size: int = TOKEN_GRID) -> "torch.Tensor":
    """[B, D, h, w] patch grid -> [B, T, D] tokens on an (at most) size x size grid."""
    import torch

    g = min(size, grid.shape[-2]), min(size, grid.shape[-1])
    return torch.nn.functional.adaptive_avg_pool2d(grid.float(), g).flatten(2).transpose(1, 2)


def _model(dim: int, n_labels: int) -> "torch.nn.Module":
    import torch
    from torch import nn

    class AttentiveProbe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            heads = next(h for h in (8, 4, 2, 1) if dim % h == 0)
            self.norm = nn.LayerNorm(dim)
            self.query = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
            self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
            self.head = nn.Linear(dim, n_labels)

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            t = self.norm(tokens)
            pooled, _ = self.attn(self.query.expand(t.shape[0], -1, -1), t, t, need_weights=False)
            return self.head(pooled[:, 0])

    return AttentiveProbe()


def fit_attentive_probe(x_train: np.ndarray, t_train: LabelTargets, x_val: np.ndarray, t_val: LabelTargets, *,
                        epochs: int = 20, batch_size: int = 64, lr: float = 3e-3, device: str = "cpu", seed: int = 0):
    """Train on tokens [n, T, D]; returns a function mapping tokens to probabilities [n, L], and thresholds."""
    from radadapt.bench.logistic import threads_for

    work = x_train.shape[1] * x_train.shape[2] ** 2 * batch_size if device == "cpu" else float("inf")
    with threads_for(work):
        return _fit(x_train, t_train, x_val, t_val, epochs=epochs, batch_size=batch_size, lr=lr, device=device,
                    seed=seed)


def _fit(x_train, t_train, x_val, t_val, *, epochs, batch_size, lr, device, seed):
    import torch

    torch.manual_seed(seed)
    mean = x_train.astype(np.float32).mean(axis=(0, 1))
    std = x_train.astype(np.float32).std(axis=(0, 1)) + 1e-6
    mu, sd = torch.as_tensor(mean, device=device), torch.as_tensor(std, device=device)
    model = _model(x_train.shape[-1], t_train.y.shape[1]).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    y = torch.as_tensor(t_train.y, dtype=torch.float32)
    m = torch.as_tensor(t_train.mask, dtype=torch.float32)

    def predict(x: np.ndarray) -> np.ndarray:
        model.eval()
        out = []
        with torch.no_grad():
            for s in range(0, len(x), 256):
                xb = (torch.as_tensor(x[s:s + 256], device=device).float() - mu) / sd
                out.append(torch.sigmoid(model(xb)).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, t_train.y.shape[1]))

    rng = np.random.default_rng(seed)
    best = (-np.inf, None)
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x_train))
        for s in range(0, len(order), batch_size):
            idx = np.sort(order[s:s + batch_size])
            xb = (torch.as_tensor(x_train[idx], device=device).float() - mu) / sd
            logits = model(xb)
            mb = m[idx].to(device)
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(logits, y[idx].to(device), reduction="none")
                    * mb).sum() / mb.sum().clamp_min(1.0)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        score = float(np.nanmean(auroc_matrix(predict(x_val), t_val.y.astype(bool), t_val.mask)))
        if score > best[0]:
            best = (score, {k: v.detach().clone() for k, v in model.state_dict().items()})
    if best[1] is not None:
        model.load_state_dict(best[1])
    return predict, choose_thresholds(predict(x_val), t_val)


def trainable_labels(train: LabelTargets, val: LabelTargets) -> np.ndarray:
    """Label columns with at least 2 positives and 2 negatives in probe-training and 1 of each in validation.

    The probe is one network over all its labels, so the set it is trained on shapes every label's result; this set
    depends only on the fit splits, never on the test split's ``min_positives`` rule.
    """

    def enough(t: LabelTargets, k: int) -> np.ndarray:
        known = t.mask.astype(bool)
        return ((known & (t.y == 1)).sum(0) >= k) & ((known & (t.y == 0)).sum(0) >= k)

    return np.flatnonzero(enough(train, 2) & enough(val, 1))


def attentive_outputs(enc, store, cohorts, targets: dict[str, LabelTargets], cfg, cache_root, device, ood, progress,
                      name):
    """Extract (or reuse) pooled tokens, train the probe, score val / test / ood: a ``ProbeOutput``."""
    from radadapt.bench import features as F
    from radadapt.bench.scoring import ProbeOutput

    cache = F.FeatureCache(cache_root, enc.fingerprint, "tokens")
    work = [(c, store, cohorts[c]) for c in ("probe_train", "val", "test")]
    if ood is not None:
        work.append(("ood", ood[0], ood[1]))
    tokens = {}
    for cname, st, co in work:
        tags, _ = F.extract(enc, st, co.index(), cache, batch_size=cfg.batch_size, progress=progress,
                            description=f"{name}: {cname} patch tokens")
        tokens[cname] = cache.load(tags, ["tokens"], dtype=np.float16)["tokens"]
    predict, thresholds = fit_attentive_probe(tokens["probe_train"], targets["probe_train"], tokens["val"],
                                              targets["val"], epochs=cfg.attentive_epochs, device=device,
                                              seed=cfg.seed)
    return ProbeOutput(kind="attentive", features="patch tokens",
                       scores={c: predict(tokens[c]) for c in tokens if c != "probe_train"}, thresholds=thresholds)
