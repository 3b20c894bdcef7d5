"""Probes on frozen features: the linear (logistic-regression) probe and the kNN probe.

Linear probe, following DINOv2's ``eval/log_regression.py`` protocol: features are standardised with the
probe-training split's mean and standard deviation; for every C of a log-spaced sweep (45 values in
[1e-6, 1e5] by default) one L2 logistic regression per label is fitted on the probe-training split and scored
on validation; each label keeps the C with the best validation AUROC (ties go to the smaller C, i.e. the
stronger regularisation); the model is then refitted at that C to a tight tolerance and its decision threshold
chosen on validation (Youden's J). Test images are only ever scored, never used for a choice. Optionally
(``patience``) a label's sweep ends once its validation AUROC has stopped improving for several consecutive C:
the C that win are rarely far past the best, and the weakly regularised end of the path costs the most.

A label's result does not depend on which other labels are fitted with it (issue 7; tests/bench/
test_label_independence.py): every column of the batched solver is its own problem (own curvature pairs, step,
line search, convergence test and patience), standardisation uses all probe-training images whatever their labels,
and the solve and the scores are float64 (``SOLVE_DTYPE``): in float32 the batch's shape changed the matmuls'
rounding, and at strong regularisation, where logits differ by ~1e-6 around the intercept, that reordered
validation scores and could move the chosen C.

kNN probe, following DINOv2's ``eval/knn.py``: L2-normalised features, cosine similarity to the probe-training
images, the k nearest (k=20) vote with weights exp(sim / T) (T=0.07); the score of a label is the weighted share
of positive votes among neighbours whose label is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from radadapt.bench import logistic
from radadapt.bench.metrics import auroc_matrix, youden_threshold

SOLVE_DTYPE = torch.float64  # see the module docstring: float32 let the label batch leak into each label


@dataclass
class LabelTargets:
    """Binary targets of one split: ``y`` [n, L] in {0, 1}, ``mask`` [n, L] True where the label is known."""

    y: np.ndarray
    mask: np.ndarray

    def column(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        m = self.mask[:, j]
        return self.y[m, j].astype(bool), m


@dataclass
class LinearProbe:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray  # [d + 1, L]
    c: np.ndarray  # chosen C per label
    val_auroc: np.ndarray  # [n_c, L]: the validation curve over the sweep
    thresholds: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per label, on the probability scale
    iterations: int = 0

    def scores(self, x: np.ndarray, device: str = "cpu") -> np.ndarray:
        """Probabilities [n, L], computed in float64 (see ``SOLVE_DTYPE``)."""
        xs = _standardise(x, self.mean, self.scale, device)
        w = torch.as_tensor(self.weights, dtype=SOLVE_DTYPE, device=device)
        return torch.sigmoid(logistic.decision(xs, w)).cpu().numpy()


def _standardise(x: np.ndarray, mean: np.ndarray, scale: np.ndarray, device: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x), device=device).to(SOLVE_DTYPE)
    return (t - torch.as_tensor(mean, dtype=SOLVE_DTYPE, device=device)) / torch.as_tensor(
        scale, dtype=SOLVE_DTYPE, device=device)


def fit_linear_probe(
    x_train: np.ndarray,
    t_train: LabelTargets,
    x_val: np.ndarray,
    t_val: LabelTargets,
    *,
    cs: np.ndarray,
    max_iter: int = 100,
    tol: float = 1e-5,
    refit_iter: int = 500,
    refit_tol: float = 1e-6,
    patience: int = 0,
    device: str = "cpu",
) -> LinearProbe:
    """Sweep C on validation, refit each label at its best C, choose thresholds on validation.

    ``patience`` > 0 ends a label's sweep once its validation AUROC has not improved for that many consecutive C
    (the rest of its curve stays NaN); 0 sweeps every C, as DINOv2 does.
    """
    x_train = np.asarray(x_train, dtype=np.float32)
    mean = x_train.mean(0)
    scale = x_train.std(0)
    scale[scale < 1e-6] = 1.0  # a constant feature carries nothing; leave it at zero after centring
    xt = _standardise(x_train, mean, scale, device)
    xv = _standardise(x_val, mean, scale, device)
    y = torch.as_tensor(t_train.y, dtype=SOLVE_DTYPE, device=device)
    m = torch.as_tensor(t_train.mask, dtype=SOLVE_DTYPE, device=device)
    n_labels = y.shape[1]
    curve = np.full((len(cs), n_labels), np.nan)
    w = torch.zeros(xt.shape[1] + 1, n_labels, dtype=SOLVE_DTYPE, device=device)
    best_w = w.clone()
    best_auc = np.full(n_labels, -np.inf)
    best_c = np.full(n_labels, float(cs[0]))
    alive = np.ones(n_labels, bool)
    since_best = np.zeros(n_labels, int)
    iterations = 0
    for i, c in enumerate(cs):  # small to large C, warm-started: a regularisation path
        idx_np = np.flatnonzero(alive)
        if idx_np.size == 0:
            break
        idx = torch.as_tensor(idx_np, device=device)
        fit = logistic.fit_columns(xt, y[:, idx], m[:, idx], torch.full((idx_np.size,), float(c), dtype=SOLVE_DTYPE, device=device),
                                   w[:, idx], max_iter=max_iter, tol=tol)
        w[:, idx] = fit.weights
        iterations += fit.iterations
        val = logistic.decision(xv, fit.weights).double().cpu().numpy()
        curve[i, idx_np] = auroc_matrix(val, t_val.y[:, idx_np].astype(bool), t_val.mask[:, idx_np])
        better = np.zeros(n_labels, bool)
        better[idx_np] = np.nan_to_num(curve[i, idx_np], nan=-np.inf) > best_auc[idx_np]
        if better.any():
            b = torch.as_tensor(np.flatnonzero(better), device=device)
            best_w[:, b] = w[:, b]
            best_auc[better] = curve[i][better]
            best_c[better] = c
        since_best[idx_np] = np.where(better[idx_np], 0, since_best[idx_np] + 1)
        if patience:
            alive &= since_best < patience  # this label's validation AUROC stopped improving along the path
    refit = logistic.fit_columns(xt, y, m, torch.as_tensor(best_c, dtype=SOLVE_DTYPE, device=device), best_w,
                                 max_iter=refit_iter, tol=refit_tol)
    probe = LinearProbe(mean=mean, scale=scale, weights=refit.weights.cpu().numpy(), c=best_c, val_auroc=curve,
                        iterations=iterations + refit.iterations)
    probe.thresholds = choose_thresholds(probe.scores(x_val, device), t_val)
    return probe


def choose_thresholds(val_scores: np.ndarray, t_val: LabelTargets) -> np.ndarray:
    """Youden's J threshold per label on validation scores (NaN where validation lacks a class)."""
    out = np.full(val_scores.shape[1], np.nan)
    for j in range(val_scores.shape[1]):
        yj, m = t_val.column(j)
        out[j] = youden_threshold(val_scores[m, j], yj)
    return out


def knn_scores(
    bank_x: np.ndarray,
    bank: LabelTargets,
    query_x: np.ndarray,
    *,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
    device: str = "cpu",
) -> np.ndarray:
    """Weighted kNN vote per label, [n_query, L] in [0, 1] (0.5 where no neighbour knows the label)."""
    b = torch.nn.functional.normalize(torch.as_tensor(np.asarray(bank_x, dtype=np.float32), device=device), dim=1)
    yb = torch.as_tensor(bank.y, dtype=torch.float64, device=device)
    mb = torch.as_tensor(bank.mask, dtype=torch.float64, device=device)
    k = min(k, b.shape[0])
    out = np.empty((len(query_x), yb.shape[1]), dtype=np.float64)
    for start in range(0, len(query_x), chunk):
        q = torch.as_tensor(np.asarray(query_x[start:start + chunk], dtype=np.float32), device=device)
        sim = torch.nn.functional.normalize(q, dim=1) @ b.T
        top, idx = sim.topk(k, dim=1)
        vote = torch.exp((top.double() - top[:, :1].double()) / temperature)  # shifted by the max: no overflow
        # Neighbour by neighbour, elementwise: a reduction over [q, k, L] rounds differently for different L,
        # which would make one label's score depend on how many labels are voted on (issue 7).
        num = torch.zeros(len(q), yb.shape[1], dtype=torch.float64, device=device)
        den = torch.zeros_like(num)
        for r in range(k):
            known = mb[idx[:, r]] * vote[:, r:r + 1]
            num += known * yb[idx[:, r]]
            den += known
        score = torch.where(den > 0, num / den.clamp_min(1e-30), torch.full_like(num, 0.5))
        out[start:start + len(q)] = score.cpu().numpy()
    return out
