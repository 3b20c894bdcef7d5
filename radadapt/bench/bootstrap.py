"""Paired patient-cluster bootstrap: confidence intervals for any metric and for model differences.

Images of one patient are correlated (repeat studies, several views), so resampling images understates the
uncertainty. Each replicate draws *patients* with replacement (Efron & Tibshirani 1993, ch. 6; the cluster
bootstrap of Davison & Hinkley 1997 §3.8) and gives every image the multiplicity of its patient. The same
replicates are used for every model, label and probe, so candidate - baseline differences are paired, and
macro averages over labels are bootstrapped jointly. Intervals are percentile intervals (2.5th, 97.5th).

Replicates are generated in chunks from a seeded generator, so memory stays bounded (``max_cells`` weights at a
time) and the same seed always gives the same replicates.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import numpy as np

Verdict = Literal["better", "no evidence of difference", "worse", "not evaluable"]
ALPHA = 0.05


class PatientBootstrap:
    """Replicate weights for ``n`` images grouped by patient (``groups``: one patient id per image)."""

    def __init__(self, groups: np.ndarray | list, n_boot: int, seed: int = 0, max_cells: int = 1 << 23):
        codes, inverse = np.unique(np.asarray(groups), return_inverse=True)
        self.inverse = inverse.astype(np.int64)
        self.n_patients = int(codes.size)
        self.n_images = int(self.inverse.size)
        self.n_boot = int(n_boot)
        self.seed = int(seed)
        self._rows_per_chunk = max(1, min(self.n_boot or 1, max_cells // max(1, self.n_images + self.n_patients)))

    def counts(self) -> Iterator[np.ndarray]:
        """Patient multiplicities, [b, n_patients] per chunk; identical across calls."""
        rng = np.random.default_rng(self.seed)
        done = 0
        p = self.n_patients
        while done < self.n_boot:
            b = min(self._rows_per_chunk, self.n_boot - done)
            draws = rng.integers(0, p, size=(b, p)) + (np.arange(b) * p)[:, None]
            yield np.bincount(draws.ravel(), minlength=b * p).reshape(b, p).astype(np.float64)
            done += b

    def weights(self) -> Iterator[np.ndarray]:
        """Image weights, [b, n_images] per chunk."""
        for c in self.counts():
            yield c[:, self.inverse]

    def replicate(self, fns: dict[str, Callable[[np.ndarray], np.ndarray]], subset: np.ndarray | None = None
                  ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        """Point estimates and [n_boot] replicates of several statistics in one pass over the replicates.

        Each fn maps weights [b, m] (m = images in ``subset``, a boolean or index array) to [b] values.
        """
        m = self.n_images if subset is None else int(np.arange(self.n_images)[subset].size)
        ones = np.ones((1, m))
        points = {k: float(fn(ones)[0]) for k, fn in fns.items()}
        reps: dict[str, list[np.ndarray]] = {k: [] for k in fns}
        for w in self.weights():
            ws = w if subset is None else w[:, subset]
            for k, fn in fns.items():
                reps[k].append(fn(ws))
        out = {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in reps.items()}
        return points, out


@dataclass(frozen=True)
class Interval:
    point: float | None
    low: float | None
    high: float | None
    n_valid: int  # replicates that were defined (e.g. had a positive); the rest are dropped


def _clean(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def percentile_interval(point: float, reps: np.ndarray, alpha: float = ALPHA) -> Interval:
    """Percentile CI of ``reps`` (NaN replicates dropped) around ``point``."""
    reps = np.asarray(reps, dtype=np.float64)
    good = reps[np.isfinite(reps)]
    if good.size < 2:
        return Interval(_clean(point), None, None, int(good.size))
    lo, hi = np.quantile(good, [alpha / 2, 1 - alpha / 2])
    return Interval(_clean(point), _clean(lo), _clean(hi), int(good.size))


def difference(point_c: float, reps_c: np.ndarray, point_b: float, reps_b: np.ndarray,
               alpha: float = ALPHA) -> tuple[Interval, Verdict]:
    """Paired difference candidate - baseline (same replicates) with its percentile CI and verdict."""
    d = percentile_interval(point_c - point_b, np.asarray(reps_c) - np.asarray(reps_b), alpha)
    return d, verdict(d)


def verdict(d: Interval) -> Verdict:
    """better / worse when the CI of the difference excludes 0, else no evidence of difference."""
    if d.point is None or d.low is None or d.high is None:
        return "not evaluable"
    if d.low > 0:
        return "better"
    if d.high < 0:
        return "worse"
    return "no evidence of difference"


def weighted_mean(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A replicate statistic: the weighted mean of per-image ``values`` (Dice, recall@k hits, ...)."""
    v = np.asarray(values, dtype=np.float64)

    def fn(w: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (w @ v) / w.sum(axis=1)

    return fn
