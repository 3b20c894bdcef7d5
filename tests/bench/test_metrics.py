import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import average_precision_score, roc_auc_score

from radadapt.bench import metrics as M


def _data(seed=0, n=300, ties=True):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.3
    s = rng.normal(size=n) + y * 0.8
    if ties:
        s = np.round(s, 1)  # many ties
    w = rng.integers(0, 4, size=n).astype(float)
    return s, y, w


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auroc_and_auprc_match_sklearn_with_weights_and_ties(seed):
    s, y, w = _data(seed)
    assert M.auroc(s, y)[0] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.auroc(s, y, w)[0] == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert M.auprc(s, y)[0] == pytest.approx(average_precision_score(y, s), abs=1e-12)
    assert M.auprc(s, y, w)[0] == pytest.approx(average_precision_score(y, s, sample_weight=w), abs=1e-12)


def test_replicate_rows_are_independent_metrics():
    s, y, _ = _data(3)
    rng = np.random.default_rng(0)
    w = rng.integers(0, 3, size=(5, s.size)).astype(float)
    batch = M.auroc(s, y, w)
    for i in range(5):
        assert batch[i] == pytest.approx(roc_auc_score(y, s, sample_weight=w[i]))


def test_planted_gaussian_signal_gives_the_theoretical_auroc():
    # Positives ~ N(d, 1), negatives ~ N(0, 1): AUROC = Phi(d / sqrt(2)).
    rng = np.random.default_rng(7)
    d, n = 1.2, 40000
    y = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    s = np.r_[rng.normal(d, 1, n), rng.normal(0, 1, n)]
    assert M.auroc(s, y)[0] == pytest.approx(norm.cdf(d / np.sqrt(2)), abs=0.005)


def test_undefined_without_both_classes():
    s = np.arange(5.0)
    assert np.isnan(M.auroc(s, np.ones(5, bool))[0])
    assert np.isnan(M.auprc(s, np.zeros(5, bool))[0])
    w = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1.0]])
    out = M.auroc(s, np.array([0, 0, 1, 1, 1], bool), w)
    assert np.isnan(out[0]) and out[1] == 1.0


def test_sensitivity_specificity_and_youden():
    s = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9])
    y = np.array([0, 0, 1, 0, 1, 0, 1, 1], bool)
    t = M.youden_threshold(s, y)
    # Candidates: >=0.6 gives tpr 3/4, fpr 1/4 (J=.5); >=0.35 gives tpr 1, fpr 2/4 (J=.5); >=0.8: J=.5; the
    # highest threshold among equal J wins.
    assert t == 0.8
    assert M.sensitivity(s, y, 0.6)[0] == pytest.approx(0.75)
    assert M.specificity(s, y, 0.6)[0] == pytest.approx(0.75)
    assert np.isnan(M.youden_threshold(s, np.ones(8, bool)))


def test_auroc_matrix_masks_each_column():
    s, y, _ = _data(4, ties=False)
    mask = np.ones((s.size, 2), bool)
    mask[:100, 1] = False
    out = M.auroc_matrix(np.c_[s, s], np.c_[y, y], mask)
    assert out[0] == pytest.approx(roc_auc_score(y, s))
    assert out[1] == pytest.approx(roc_auc_score(y[100:], s[100:]))
