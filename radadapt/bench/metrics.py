"""Binary classification metrics, weighted and vectorised over bootstrap replicates.

Every metric takes ``scores`` [n], boolean ``y`` [n] and a weight matrix ``w`` [b, n] (one row per replicate;
a patient-cluster bootstrap row holds each image's patient multiplicity, the point estimate is a row of ones)
and returns [b] values. Sorting happens once per call, not once per replicate, so 1000 replicates of AUROC on
10^4 images cost a few cumulative sums rather than 1000 sorts.

- AUROC: the Mann-Whitney statistic, ties counted one half (Hanley & McNeil 1982); equals sklearn's
  ``roc_auc_score`` with ``sample_weight``.
- AUPRC: average precision, sum over distinct thresholds of (recall step x precision), the step-wise estimator
  of sklearn's ``average_precision_score`` (no interpolation, which overestimates; Davis & Goadrich 2006).
- Sensitivity / specificity at a fixed threshold (score >= threshold is positive); the threshold is chosen on
  the validation split by Youden's J (``youden_threshold``), never on test.

A replicate with no positive or no negative weight yields NaN; callers count and drop those.
"""

from __future__ import annotations

import numpy as np


def _as_weights(w: np.ndarray | None, n: int) -> np.ndarray:
    if w is None:
        return np.ones((1, n), dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    return w[None, :] if w.ndim == 1 else w


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Start index of each run of equal scores in a sorted array."""
    if sorted_scores.size == 0:
        return np.zeros(0, dtype=np.int64)
    change = np.flatnonzero(np.diff(sorted_scores) != 0) + 1
    return np.concatenate(([0], change))


def auroc(scores: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted AUROC per replicate row of ``w``."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    w = _as_weights(w, scores.size)
    order = np.argsort(scores, kind="mergesort")
    starts = _tie_groups(scores[order])
    ws = w[:, order]
    ys = y[order]
    if starts.size == 0:
        return np.full(w.shape[0], np.nan)
    pos = np.add.reduceat(np.where(ys, ws, 0.0), starts, axis=1)  # [b, groups]
    neg = np.add.reduceat(np.where(ys, 0.0, ws), starts, axis=1)
    neg_below = np.cumsum(neg, axis=1) - neg
    total_pos = pos.sum(axis=1)
    total_neg = neg.sum(axis=1)
    num = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = num / (total_pos * total_neg)
    out[(total_pos <= 0) | (total_neg <= 0)] = np.nan
    return out


def auprc(scores: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted average precision per replicate row of ``w``."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    w = _as_weights(w, scores.size)
    order = np.argsort(-scores, kind="mergesort")
    starts = _tie_groups(-scores[order])
    if starts.size == 0:
        return np.full(w.shape[0], np.nan)
    ws = w[:, order]
    ys = y[order]
    tp = np.add.reduceat(np.where(ys, ws, 0.0), starts, axis=1)
    fp = np.add.reduceat(np.where(ys, 0.0, ws), starts, axis=1)
    ctp = np.cumsum(tp, axis=1)
    cfp = np.cumsum(fp, axis=1)
    total_pos = ctp[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(ctp + cfp > 0, ctp / (ctp + cfp), 0.0)
        out = (tp * precision).sum(axis=1) / total_pos
    out[total_pos <= 0] = np.nan
    return out


def sensitivity(scores: np.ndarray, y: np.ndarray, threshold: float, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted true-positive rate at ``score >= threshold``."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    w = _as_weights(w, scores.size)
    hit = (scores >= threshold) & y
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ hit.astype(np.float64)) / (w @ y.astype(np.float64))


def specificity(scores: np.ndarray, y: np.ndarray, threshold: float, w: np.ndarray | None = None) -> np.ndarray:
    """Weighted true-negative rate at ``score < threshold``."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    w = _as_weights(w, scores.size)
    neg = ~y
    hit = (scores < threshold) & neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w @ hit.astype(np.float64)) / (w @ neg.astype(np.float64))


def youden_threshold(scores: np.ndarray, y: np.ndarray) -> float:
    """The score threshold maximising sensitivity + specificity - 1 (Youden's J) on these (validation) scores.

    Among equal J the higher threshold wins (fewer false positives). Returns NaN without both classes.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    s = scores[order]
    ys = y[order]
    ends = np.concatenate((np.flatnonzero(np.diff(s) != 0), [s.size - 1]))  # last index of each tie group
    tpr = np.cumsum(ys)[ends] / n_pos
    fpr = np.cumsum(~ys)[ends] / n_neg
    best = int(np.argmax(tpr - fpr))
    return float(s[ends[best]])


def auroc_matrix(scores: np.ndarray, y: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Unweighted AUROC of every column of ``scores`` [n, k] against ``y`` [n, k] (bool), ``mask`` [n, k].

    Used to pick C on validation: one call scores every (label, C) column. NaN where a column lacks a class.
    """
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y, dtype=bool)
    mask = np.ones_like(y) if mask is None else np.asarray(mask, dtype=bool)
    out = np.full(scores.shape[1], np.nan)
    for j in range(scores.shape[1]):
        m = mask[:, j]
        out[j] = auroc(scores[m, j], y[m, j])[0]
    return out
