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
- any dtype and device: the linear probe solves in float64 (``probes.SOLVE_DTYPE``). Every column is an
  independent problem in exact arithmetic, but a batched matmul's rounding depends on how many columns it has, so
  in float32 a label's path (and the C it wins with) moved with the set of labels fitted beside it (issue 7);
  float64 keeps that rounding ~1e-16, far below any difference a validation AUROC can resolve.
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


def _loss_change(sig: torch.Tensor, z: torch.Tensor, dz: torch.Tensor, y: torch.Tensor, m: torch.Tensor,
                 inv_n: torch.Tensor) -> torch.Tensor:
    """Masked mean of softplus(z + dz) - softplus(z) - y*dz per column, accurate when dz is tiny.

    softplus(z + dz) - softplus(z) = log1p(sigmoid(z) * expm1(dz)); subtracting two float32 losses instead
    would lose every digit once the changes fall below ~1e-7 of the loss, stalling the line search.
    """
    small = dz < 20.0
    if bool(small.all()):
        change = torch.log1p(sig * torch.expm1(dz))
    else:
        direct = torch.nn.functional.softplus(z + dz) - torch.nn.functional.softplus(z)
        stable = torch.log1p(sig * torch.expm1(torch.where(small, dz, torch.zeros_like(dz))))
        change = torch.where(small, stable, direct)
    return ((change - y * dz) * m).sum(0) * inv_n


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
    z = torch.addmm(w[d:], x, w[:d])
    g = _gradient(x, z, w, y, mask, inv_n, lam)
    s_hist = torch.zeros(history, d + 1, k, device=dev, dtype=dt)
    y_hist = torch.zeros_like(s_hist)
    rho = torch.zeros(history, k, device=dev, dtype=dt)
    n_hist = 0
    active = g.abs().amax(0) > tol
    it = 0
    while it < max_iter and bool(active.any()):
        it += 1
        # Work on the columns still active only: converged labels cost nothing more (they never reactivate).
        cols = slice(None) if bool(active.all()) else active.nonzero().squeeze(1)
        ga, wa, za = g[:, cols], w[:, cols], z[:, cols]
        ya, ma, inv_na, lama = y[:, cols], mask[:, cols], inv_n[cols], lam[cols]
        sa, yh, rhoa = s_hist[:, :, cols], y_hist[:, :, cols], rho[:, cols]
        # Two-loop recursion over the stored pairs, newest first (rho = 0 marks a skipped pair).
        q = ga.clone()
        alphas = []
        order = [(n_hist - 1 - i) % history for i in range(min(n_hist, history))]
        for i in order:
            al = rhoa[i] * (sa[i] * q).sum(0)
            q -= al * yh[i]
            alphas.append(al)
        if n_hist:
            last = order[0]
            yy = (yh[last] ** 2).sum(0)
            gamma = torch.where(yy > 0, (sa[last] * yh[last]).sum(0) / yy.clamp_min(1e-30), torch.ones_like(yy))
            q *= gamma
        else:
            q /= ga.abs().sum(0).clamp_min(1.0)  # first step: a unit-ish move, as scipy's L-BFGS-B does
        for i, al in zip(reversed(order), reversed(alphas)):
            be = rhoa[i] * (yh[i] * q).sum(0)
            q += sa[i] * (al - be)
        direction = -q
        slope = (ga * direction).sum(0)
        bad = slope >= 0  # not a descent direction: fall back to steepest descent for that column
        if bool(bad.any()):
            direction[:, bad] = -ga[:, bad]
            slope = torch.where(bad, -(ga * ga).sum(0), slope)
        xd = torch.addmm(direction[d:], x, direction[:d])  # z(w + t * direction) = z + t * xd
        ka = direction.shape[1]
        step = torch.ones(ka, device=dev, dtype=dt)
        accepted = torch.zeros(ka, dtype=torch.bool, device=dev)
        sig = torch.sigmoid(za)
        w_dir = (wa[:d] * direction[:d]).sum(0)
        dir_sq = (direction[:d] ** 2).sum(0)
        for _ in range(30):  # Armijo backtracking, per column, on f(w + t*dir) - f(w) computed without cancellation
            trial = ~accepted
            if not bool(trial.any()):
                break
            delta_f = _loss_change(sig, za, xd * step, ya, ma, inv_na) + lama * (step * w_dir + 0.5 * step**2 * dir_sq)
            ok = trial & (delta_f <= 1e-4 * step * slope)
            accepted = accepted | ok
            step = torch.where(trial & ~ok, step * 0.5, step)
        step = torch.where(accepted, step, torch.zeros_like(step))  # not accepted: at numerical precision
        s = direction * step
        wa = wa + s
        za = torch.addmm(wa[d:], x, wa[:d]) if it % 25 == 0 else za + xd * step  # refresh float drift now and then
        g_new = _gradient(x, za, wa, ya, ma, inv_na, lama)
        yv = g_new - ga
        sy = (s * yv).sum(0)
        slot = n_hist % history
        s_hist[slot][:, cols] = s
        y_hist[slot][:, cols] = yv
        rho[slot, cols] = torch.where(sy > 1e-10, 1.0 / sy.clamp_min(1e-10), torch.zeros_like(sy))
        n_hist += 1
        w[:, cols], z[:, cols], g[:, cols] = wa, za, g_new
        still = accepted & (g_new.abs().amax(0) > tol)
        if isinstance(cols, slice):
            active = still
        else:
            active = active.clone()
            active[cols] = still
    return Fit(weights=w, iterations=it, converged=~active)


def _gradient(x: torch.Tensor, z: torch.Tensor, w: torch.Tensor, y: torch.Tensor, m: torch.Tensor,
              inv_n: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Gradient of the per-column objective at logits ``z`` (= x @ w[:d] + w[d])."""
    d = x.shape[1]
    r = (torch.sigmoid(z) - y) * m * inv_n
    g = torch.empty_like(w)
    g[:d] = x.T @ r + lam * w[:d]
    g[d:] = r.sum(0, keepdim=True)
    return g


def decision(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Logits [n, k] of standardised features ``x`` under fitted ``weights`` [d + 1, k]."""
    d = x.shape[1]
    return torch.addmm(weights[d:], x, weights[:d])
