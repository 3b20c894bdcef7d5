import numpy as np
import pytest
import torch
from scipy.stats import norm
from sklearn.linear_model import LogisticRegression

from radadapt.bench import metrics as M
from radadapt.bench.logistic import c_grid, fit_columns
from radadapt.bench.probes import LabelTargets, fit_linear_probe, knn_scores


def test_c_grid_is_dinov2s_sweep():
    g = c_grid()
    assert g.size == 45 and g[0] == pytest.approx(1e-6) and g[-1] == pytest.approx(1e5)
    assert np.allclose(np.diff(np.log10(g)), 11 / 44)


def test_batched_solver_matches_sklearn_per_column_with_masks_and_different_c():
    rng = np.random.default_rng(0)
    n, d, k = 600, 12, 4
    x = rng.normal(size=(n, d))
    y = (x @ rng.normal(size=(d, k)) + rng.logistic(size=(n, k)) > 0.5).astype(float)
    mask = (rng.random((n, k)) > 0.15).astype(float)
    cs = np.array([1e-3, 0.1, 1.0, 30.0])
    fit = fit_columns(torch.tensor(x), torch.tensor(y), torch.tensor(mask), torch.tensor(cs), max_iter=500, tol=1e-9)
    assert bool(fit.converged.all())
    for j in range(k):
        m = mask[:, j] > 0
        ref = LogisticRegression(C=cs[j], tol=1e-10, max_iter=10000).fit(x[m], y[m, j])
        np.testing.assert_allclose(fit.weights[:d, j].numpy(), ref.coef_[0], atol=1e-5)
        assert fit.weights[d, j].item() == pytest.approx(ref.intercept_[0], abs=1e-5)


def _gaussian_labels(rng, n, d, sep):
    """Two classes N(+/- delta/2, I) with |delta| = sep: the best linear AUROC is Phi(sep / sqrt(2))."""
    y = rng.random(n) < 0.3
    delta = np.zeros(d)
    delta[:3] = sep / np.sqrt(3)
    x = rng.normal(size=(n, d)) + np.where(y[:, None], delta / 2, -delta / 2)
    return x.astype(np.float32), y


def test_linear_probe_recovers_the_planted_auroc_and_picks_c_on_validation():
    rng = np.random.default_rng(1)
    d, sep = 32, 1.5
    xs, ys = zip(*[_gaussian_labels(rng, n, d, sep) for n in (3000, 1000, 4000)])
    # second label: pure noise, so the best C is the strongest regularisation that still ranks
    noise = [rng.random(len(y)) < 0.3 for y in ys]
    t = [LabelTargets(np.c_[y, z].astype(np.int8), np.ones((len(y), 2), bool)) for y, z in zip(ys, noise)]
    probe = fit_linear_probe(xs[0], t[0], xs[1], t[1], cs=c_grid(12))
    scores = probe.scores(xs[2])
    auc = M.auroc(scores[:, 0], ys[2])[0]
    assert auc == pytest.approx(norm.cdf(sep / np.sqrt(2)), abs=0.02)
    assert abs(M.auroc(scores[:, 1], noise[2])[0] - 0.5) < 0.05
    assert probe.val_auroc.shape == (12, 2)
    assert 0 < probe.thresholds[0] < 1  # a probability threshold chosen on validation
    sens = M.sensitivity(scores[:, 0], ys[2], probe.thresholds[0])[0]
    spec = M.specificity(scores[:, 0], ys[2], probe.thresholds[0])[0]
    assert sens + spec - 1 > 0.35  # Youden's J near the optimum for this separation (about 0.52)


def test_knn_vote_by_hand():
    bank = np.array([[1, 0], [0.9, 0.1], [0, 1.0]], np.float32)
    t = LabelTargets(np.array([[1], [0], [1]], np.int8), np.array([[True], [True], [False]]))
    out = knn_scores(bank, t, np.array([[1, 0.05]], np.float32), k=3, temperature=0.1)
    q = np.array([1, 0.05]) / np.linalg.norm([1, 0.05])
    sims = bank @ q / np.linalg.norm(bank, axis=1)
    w = np.exp(sims / 0.1)
    assert out[0, 0] == pytest.approx(w[0] / (w[0] + w[1]))  # the third neighbour's label is unknown


def test_knn_separates_clusters():
    rng = np.random.default_rng(2)
    xs, ys = zip(*[_gaussian_labels(rng, n, 8, 4.0) for n in (500, 300)])
    t = LabelTargets(ys[0][:, None].astype(np.int8), np.ones((500, 1), bool))
    s = knn_scores(xs[0], t, xs[1], k=20, temperature=0.07)
    assert M.auroc(s[:, 0], ys[1])[0] > 0.9


def test_attentive_probe_finds_a_signal_in_one_token_of_many():
    from radadapt.bench.attentive import fit_attentive_probe

    rng = np.random.default_rng(3)

    def make(n, t=16, d=16):
        y = rng.random(n) < 0.4
        x = rng.normal(size=(n, t, d)).astype(np.float32)
        where = rng.integers(0, t, n)
        x[np.arange(n), where, 0] += np.where(y, 4.0, 0.0)  # one token of sixteen carries the finding
        return x, LabelTargets(y[:, None].astype(np.int8), np.ones((n, 1), bool))

    (xt, tt), (xv, tv), (xs, ts) = make(600), make(200), make(400)
    predict, thr = fit_attentive_probe(xt, tt, xv, tv, epochs=15)
    s = predict(xs)[:, 0]
    assert M.auroc(s, ts.y[:, 0].astype(bool))[0] > 0.85
    assert 0 < thr[0] < 1
    # a mean over tokens dilutes the same signal 16-fold
    mean_auc = M.auroc(xs[:, :, 0].mean(1), ts.y[:, 0].astype(bool))[0]
    assert mean_auc + 0.05 < M.auroc(s, ts.y[:, 0].astype(bool))[0]
