"""A label's probe result must not depend on which other labels are evaluated with it (issue 7).

The linear probe fits every label in one column-batched L-BFGS; the kNN probe votes for every label at once.
Changing ``min_positives`` changes the batch, and it once changed a label's AUROC (float32 rounding that depends on
the batch's shape, amplified by near-tied logits at strong regularisation). Here the same label is fitted alone,
with one other label and with four others: its chosen C, validation curve, weights and test scores must agree.
"""

import numpy as np
import pytest

from radadapt.bench import metrics as M
from radadapt.bench.logistic import c_grid
from radadapt.bench.probes import LabelTargets, fit_linear_probe, knn_scores

SUBSETS = ([0, 1, 2, 3, 4], [0, 1], [0])


def _problem(seed: int, n=(400, 200, 300), d=256, labels=5):
    """Low-rank features and labels of 10-30% prevalence driven by them, 10% of label values unknown."""
    rng = np.random.default_rng(seed)
    total = sum(n)
    z = rng.normal(size=(total, 8))
    x = (z @ rng.normal(size=(8, d)) + 2.0 * rng.normal(size=(total, d))).astype(np.float32)
    logit = z @ rng.normal(size=(8, labels)) * 0.6 - 1.5
    y = (rng.random((total, labels)) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    mask = rng.random((total, labels)) > 0.1
    cuts = np.cumsum((0,) + n)
    parts = [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]
    return [x[s] for s in parts], [LabelTargets(y[s], mask[s]) for s in parts]


def _sub(t: LabelTargets, idx: list[int]) -> LabelTargets:
    return LabelTargets(t.y[:, idx], t.mask[:, idx])


@pytest.mark.parametrize("seed", [1, 3])  # both gave label 0 a different test AUROC alone than in a batch before the fix
def test_linear_probe_result_of_a_label_does_not_depend_on_the_other_labels(seed):
    xs, ts = _problem(seed)
    runs = []
    for idx in SUBSETS:
        probe = fit_linear_probe(xs[0], _sub(ts[0], idx), xs[1], _sub(ts[1], idx), cs=c_grid(45), patience=6)
        y, m = _sub(ts[2], idx).column(0)
        scores = probe.scores(xs[2])[:, 0]
        runs.append((probe, scores, M.auroc(scores[m], y)[0]))
    ref, ref_scores, ref_auc = runs[0]
    assert 0.6 < ref_auc < 0.99  # a real signal, not a degenerate label
    for probe, scores, auc in runs[1:]:
        assert probe.c[0] == ref.c[0]  # the same C chosen on validation
        np.testing.assert_allclose(probe.val_auroc[:, 0], ref.val_auroc[:, 0], rtol=0, atol=1e-9, equal_nan=True)
        np.testing.assert_allclose(probe.weights[:, 0], ref.weights[:, 0], rtol=0, atol=1e-8)
        np.testing.assert_allclose(scores, ref_scores, rtol=0, atol=1e-10)
        assert abs(auc - ref_auc) <= 1e-6
        assert probe.thresholds[0] == pytest.approx(ref.thresholds[0], abs=1e-10)


def test_knn_scores_of_a_label_do_not_depend_on_the_other_labels():
    xs, ts = _problem(5, n=(600, 1, 400), d=64)
    ref = knn_scores(xs[0], ts[0], xs[2], k=20, temperature=0.07)
    assert M.auroc(ref[ts[2].mask[:, 0], 0], ts[2].y[ts[2].mask[:, 0], 0].astype(bool))[0] > 0.6
    for idx in SUBSETS[1:]:
        out = knn_scores(xs[0], _sub(ts[0], idx), xs[2], k=20, temperature=0.07)
        np.testing.assert_allclose(out, ref[:, idx], rtol=0, atol=1e-12)


def test_attentive_probe_trains_on_every_fittable_label_whatever_is_evaluated():
    """The attentive probe shares its attention across labels, so it is trained on the labels the fit splits allow
    (a fixed set for a store), not on the labels that pass the test split's min_positives."""
    from radadapt.bench.attentive import trainable_labels

    y_tr = np.array([[1, 0, 1, 1], [1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1]], np.int8)
    m_tr = np.array([[1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1], [1, 1, 0, 1]], bool)
    y_va = np.array([[1, 0, 1, 0], [0, 1, 1, 1]], np.int8)
    t_tr, t_va = LabelTargets(y_tr, m_tr), LabelTargets(y_va, np.ones_like(y_va, bool))
    # label 1: one train positive; label 2: its second train positive is unknown; label 3: no train negative
    np.testing.assert_array_equal(trainable_labels(t_tr, t_va), [0])
    y_va[1, 0] = 1  # no validation negative left for label 0
    np.testing.assert_array_equal(trainable_labels(t_tr, LabelTargets(y_va, np.ones_like(y_va, bool))), [])
