"""From test-set scores to ``Estimate``s and ``Difference``s: every model, probe and label on the same replicates.

One ``PatientBootstrap`` over the test images drives everything, so candidate - baseline differences are paired
and macro averages are bootstrapped jointly (each replicate averages its own per-label values). Replicates where
a metric is undefined (no positive drawn) are dropped for that metric and counted in ``n_boot``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from radadapt.bench import metrics as M
from radadapt.bench.bootstrap import PatientBootstrap, difference, percentile_interval
from radadapt.bench.probes import LabelTargets
from radadapt.bench.schema import Difference, Estimate

CLASSIFICATION_METRICS = ("auroc", "auprc", "sensitivity", "specificity")


def make_estimate(point: float, reps: np.ndarray, **counts: int | None) -> Estimate:
    iv = percentile_interval(point, reps)
    return Estimate(point=_r(iv.point), low=_r(iv.low), high=_r(iv.high), n_boot=iv.n_valid, **counts)


def make_difference(point_c: float, reps_c: np.ndarray, point_b: float, reps_b: np.ndarray) -> Difference:
    iv, v = difference(point_c, reps_c, point_b, reps_b)
    return Difference(point=_r(iv.point), low=_r(iv.low), high=_r(iv.high), verdict=v)


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 6)


@dataclass
class Replicated:
    """Point values and replicates keyed by (model, probe, metric)."""

    points: dict[tuple[str, str, str], float] = field(default_factory=dict)
    reps: dict[tuple[str, str, str], np.ndarray] = field(default_factory=dict)


def _metric_fns(s: np.ndarray, y: np.ndarray, thr: float, names: Sequence[str]) -> dict:
    fns = {
        "auroc": lambda w: M.auroc(s, y, w),
        "auprc": lambda w: M.auprc(s, y, w),
        "sensitivity": lambda w: M.sensitivity(s, y, thr, w),
        "specificity": lambda w: M.specificity(s, y, thr, w),
    }
    if not np.isfinite(thr):
        fns.pop("sensitivity")
        fns.pop("specificity")
    return {k: v for k, v in fns.items() if k in names}


def replicate_label(boot: PatientBootstrap, t: LabelTargets, j: int, scores: dict[str, dict[str, np.ndarray]],
                    thresholds: dict[str, dict[str, np.ndarray]], names: Sequence[str] = CLASSIFICATION_METRICS
                    ) -> Replicated:
    """All models and probes of label ``j`` in one pass over the replicates."""
    y, m = t.column(j)
    fns = {}
    for model, by_probe in scores.items():
        for probe, s in by_probe.items():
            thr = float(thresholds.get(model, {}).get(probe, np.full(s.shape[1], np.nan))[j])
            for metric, fn in _metric_fns(s[m, j].astype(np.float64), y, thr, names).items():
                fns[(model, probe, metric)] = fn
    keyed = {"|".join(k): f for k, f in fns.items()}
    points, reps = boot.replicate(keyed, subset=m)
    out = Replicated()
    for k in fns:
        out.points[k] = points["|".join(k)]
        out.reps[k] = reps["|".join(k)]
    return out


def label_estimates(rep: Replicated, counts: dict[str, int | None]) -> dict[str, dict[str, dict[str, Estimate]]]:
    """model -> probe -> metric -> Estimate."""
    out: dict[str, dict[str, dict[str, Estimate]]] = {}
    for (model, probe, metric), point in rep.points.items():
        out.setdefault(model, {}).setdefault(probe, {})[metric] = make_estimate(point, rep.reps[(model, probe, metric)],
                                                                                **counts)
    return out


def differences(rep: Replicated, baseline: str, candidates: Sequence[str]) -> dict[str, dict[str, dict[str, Difference]]]:
    """candidate -> probe -> metric -> Difference vs the baseline (same probe, same metric)."""
    out: dict[str, dict[str, dict[str, Difference]]] = {}
    for (model, probe, metric), point in rep.points.items():
        if model not in candidates:
            continue
        b = (baseline, probe, metric)
        if b not in rep.points:
            continue
        out.setdefault(model, {}).setdefault(probe, {})[metric] = make_difference(
            point, rep.reps[(model, probe, metric)], rep.points[b], rep.reps[b])
    return out


def macro(reps: Sequence[Replicated]) -> Replicated:
    """Mean over labels, per replicate (NaN replicates of one label are left out of that replicate's mean)."""
    out = Replicated()
    if not reps:
        return out
    keys = set(reps[0].points)
    for r in reps[1:]:
        keys &= set(r.points)
    for k in sorted(keys):
        out.points[k] = float(np.nanmean([r.points[k] for r in reps]))
        stack = np.stack([r.reps[k] for r in reps])
        with np.errstate(all="ignore"), _quiet():
            out.reps[k] = np.nanmean(stack, axis=0)
    return out


class _quiet:
    """Silence numpy's 'mean of empty slice' (an all-NaN replicate simply stays NaN)."""

    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: object) -> None:
        self._w.__exit__(*exc)


def replicate_means(boot: PatientBootstrap, values: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]]
                    ) -> Replicated:
    """Weighted means of per-item values (Dice per image-device pair, retrieval hits per query).

    ``values[key] = (item_image_index, item_values)``: each item inherits its image's bootstrap weight.
    """
    fns = {}
    for key, (img, v) in values.items():
        img = np.asarray(img, dtype=np.int64)
        v = np.asarray(v, dtype=np.float64)

        def fn(w: np.ndarray, img: np.ndarray = img, v: np.ndarray = v) -> np.ndarray:
            wi = w[:, img]
            with np.errstate(invalid="ignore", divide="ignore"):
                return (wi @ v) / wi.sum(axis=1)

        fns["|".join(key)] = fn
    points, reps = boot.replicate(fns)
    out = Replicated()
    for key in values:
        out.points[key] = points["|".join(key)]
        out.reps[key] = reps["|".join(key)]
    return out
