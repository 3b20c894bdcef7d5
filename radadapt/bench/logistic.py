"""L2-regularised logistic regression for many labels and many C at once: a column-batched L-BFGS in torch.

Each column ``j`` of the weight matrix is an independent problem (one label at one C)::

    f_j(w, b) = (1/n_j) sum_i m_ij * [softplus(z_ij) - y_ij z_ij] + ||w||^2 / (2 C_j n_j),   z = x_i.w + b

which is exactly scikit-learn's ``LogisticRegression(penalty="l2", C=C_j)`` objective divided by ``C_j n_j``
(same minimiser; the intercept is not penalised), with ``m_ij`` masking images whose label is excluded
(uncertain or unlabelled). DINOv2's linear evaluation (``dinov2/eval/log_regression.py``) fits one such model
per C on 45 log-spaced values in [1e-6, 1e5] and keeps the best on validation; doing that label by label with
scikit-learn costs minutes, so here every label's problem is solved together:

- L-BFGS (Nocedal & Wright 2006, alg. 7.4) with per-column curvature pairs, step sizes and Armijo
  backtracking, so a hard column never slows the line search of an easy one;
- each iteration costs two matmuls (``X @ D`` for the search direction, ``X.T @ R`` for the gradient);
  line-search trials reuse ``X @ D`` and are elementwise;
- the sweep walks C from small to large and warm-starts each C from the previous solution (a regularisation
  path, as in glmnet), so most C converge in a few iterations;
- float32 by default (features are standardised), any device (CUDA when asked).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

SMALL_WORK = 4e6  # multiply-adds below which one thread beats a pool (thread hand-off dominates tiny matmuls)


@contextmanager
def threads_for(work: float) -> Iterator[None]:
    """Run small problems on one CPU thread: on a busy machine a 2-thread pool makes a 50x64 matmul 40x slower."""
    if work >= SMALL_WORK or torch.get_num_threads() == 1:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def c_grid(n: int = 45, low: float = 1e-6, high: float = 1e5) -> np.ndarray:
    """DINOv2's C sweep: ``n`` values log-spaced from ``low`` to ``high`` (45 in [1e-6, 1e5] by default)."""
    if n == 1:
        return np.array([np.sqrt(low * high)])
    return np.logspace(np.log10(low), np.log10(high), n)


@dataclass
class Fit:
    weights: torch.Tensor  # [d + 1, k]: coefficients, then the intercept in the last row
    iterations: int
    converged: torch.Tensor  # [k] bool


def _loss_grad(z: torch.Tensor, y: torch.Tensor, m: torch.Tensor, inv_n: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked mean log-loss per column and its derivative with respect to the logits."""
    loss = ((torch.nn.functional.softplus(z) - y * z) * m).sum(0) * inv_n
    r = (torch.sigmoid(z) - y) * m * inv_n
    return loss, r


def _loss_change(sig: torch.Tensor, z: torch.Tensor, dz: torch.Tensor, y: torch.Tensor, m: torch.Tensor,
                 inv_n: torch.Tensor) -> torch.Tensor:
    """Masked mean of softplus(z + dz) - softplus(z) - y*dz per column, accurate when dz is tiny.

    softplus(z + dz) - softplus(z) = log1p(sigmoid(z) * expm1(dz)); subtracting two float32 losses instead
    would lose every digit once the changes fall below ~1e-7 of the loss, stalling the line search.
    """
    small = dz < 20.0
    direct = torch.nn.functional.softplus(z + dz) - torch.nn.functional.softplus(z)
    stable = torch.log1p(sig * torch.expm1(torch.where(small, dz, torch.zeros_like(dz))))
    return ((torch.where(small, stable, direct) - y * dz) * m).sum(0) * inv_n


def fit_columns(x: torch.Tensor, y: torch.Tensor, *args, **kwargs) -> Fit:
    """Minimise every column's objective (see ``_fit_columns``), single-threaded when the problem is small."""
    with threads_for(x.shape[0] * x.shape[1] * y.shape[1] if x.device.type == "cpu" else SMALL_WORK):
        return _fit_columns(x, y, *args, **kwargs)


def _fit_columns(
    x: torch.Tensor,
    y: torch.Tensor,
    mask: torch.Tensor,
    c: torch.Tensor,
    w0: torch.Tensor | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-4,
    history: int = 10,
) -> Fit:
    """Minimise every column's objective. ``x`` [n, d] (standardised), ``y``/``mask`` [n, k] in {0, 1},
    ``c`` [k]. ``tol`` bounds the largest absolute gradient entry of a converged column (scikit-learn's
    lbfgs criterion on the same mean-scaled objective)."""
    n, d = x.shape
    k = y.shape[1]
    dev, dt = x.device, x.dtype
    n_j = mask.sum(0).clamp_min(1.0)
    inv_n = 1.0 / n_j
    lam = 1.0 / (c.to(dt) * n_j)  # penalty weight per column
    w = torch.zeros(d + 1, k, device=dev, dtype=dt) if w0 is None else w0.clone()

    def logits(wt: torch.Tensor) -> torch.Tensor:
        return torch.addmm(wt[d:], x, wt[:d])

    def objective(z: torch.Tensor, wt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss, r = _loss_grad(z, y, mask, inv_n)
        pen = 0.5 * lam * (wt[:d] ** 2).sum(0)
        g = torch.empty_like(wt)
        g[:d] = x.T @ r + lam * wt[:d]
        g[d:] = r.sum(0, keepdim=True)
        return loss + pen, g

    z = logits(w)
    f, g = objective(z, w)
    s_hist = torch.zeros(history, d + 1, k, device=dev, dtype=dt)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(history, k, device=dev, dtype=dt)
    n_hist = 0
    active = g.abs().amax(0) > tol
    it = 0
    while it < max_iter and bool(active.any()):
        it += 1
        # Two-loop recursion over the stored pairs, newest first (rho = 0 marks a skipped pair).
        q = g.clone()
        alphas = []
        order = [(n_hist - 1 - i) % history for i in range(min(n_hist, history))]
        for i in order:
            a = rho[i] * (s_hist[i] * q).sum(0)
            q -= a * y_hist[i]
            alphas.append(a)
        if n_hist:
            last = order[0]
            yy = (y_hist[last] ** 2).sum(0)
            gamma = torch.where(yy > 0, (s_hist[last] * y_hist[last]).sum(0) / yy.clamp_min(1e-30), torch.ones_like(yy))
            q *= gamma
        else:
            q /= g.abs().sum(0).clamp_min(1.0)  # first step: a unit-ish move, as scipy's L-BFGS-B does
        for i, a in zip(reversed(order), reversed(alphas)):
            b = rho[i] * (y_hist[i] * q).sum(0)
            q += s_hist[i] * (a - b)
        direction = -q
        slope = (g * direction).sum(0)
        bad = slope >= 0  # not a descent direction: fall back to steepest descent for that column
        if bool(bad.any()):
            direction[:, bad] = -g[:, bad]
            slope = torch.where(bad, -(g * g).sum(0), slope)
        direction[:, ~active] = 0.0
        xd = logits(direction)  # z(w + t * direction) = z + t * xd
        step = torch.ones(k, device=dev, dtype=dt)
        accepted = ~active
        sig = torch.sigmoid(z)
        w_dir = (w[:d] * direction[:d]).sum(0)
        dir_sq = (direction[:d] ** 2).sum(0)
        for _ in range(30):  # Armijo backtracking, per column, on f(w + t*dir) - f(w) computed without cancellation
            trial = ~accepted
            if not bool(trial.any()):
                break
            delta_f = _loss_change(sig, z, xd * step, y, mask, inv_n) + lam * (step * w_dir + 0.5 * step**2 * dir_sq)
            ok = trial & (delta_f <= 1e-4 * step * slope)
            accepted = accepted | ok
            step = torch.where(trial & ~ok, step * 0.5, step)
        stalled = active & ~accepted  # no decrease possible: at numerical precision
        step = torch.where(accepted & active, step, torch.zeros_like(step))
        s = direction * step
        w_next = w + s
        z = z + xd * step
        if it % 25 == 0:
            z = logits(w_next)  # refresh accumulated float error
        f_next, g_next = objective(z, w_next)
        yv = g_next - g
        sy = (s * yv).sum(0)
        slot = n_hist % history
        s_hist[slot] = s
        y_hist[slot] = yv
        rho[slot] = torch.where(sy > 1e-10, 1.0 / sy.clamp_min(1e-10), torch.zeros_like(sy))
        n_hist += 1
        w, f, g = w_next, f_next, g_next
        active = active & ~stalled & (g.abs().amax(0) > tol)
    return Fit(weights=w, iterations=it, converged=~active)


def decision(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Logits [n, k] of standardised features ``x`` under fitted ``weights`` [d + 1, k]."""
    d = x.shape[1]
    return torch.addmm(weights[d:], x, weights[:d])
