import numpy as np
import pytest
from scipy.stats import norm

from radadapt.bench import metrics as M
from radadapt.bench.bootstrap import PatientBootstrap, difference, percentile_interval, verdict


def test_replicates_are_deterministic_chunked_and_patient_level():
    groups = np.repeat(np.arange(30), 3)  # 3 images per patient
    a = np.concatenate(list(PatientBootstrap(groups, 50, seed=3, max_cells=500).weights()))
    b = np.concatenate(list(PatientBootstrap(groups, 50, seed=3).weights()))
    assert a.shape == (50, 90)
    np.testing.assert_array_equal(a, b)  # chunking does not change the replicates
    # every image of a patient carries its patient's multiplicity, and each replicate draws 30 patients
    assert np.all(a.reshape(50, 30, 3).std(axis=2) == 0)
    assert np.all(a.sum(1) == 90)
    c = np.concatenate(list(PatientBootstrap(groups, 50, seed=4).weights()))
    assert not np.array_equal(a, c)


def test_verdicts():
    assert verdict(percentile_interval(0.05, np.linspace(0.01, 0.09, 100))) == "better"
    assert verdict(percentile_interval(-0.05, np.linspace(-0.09, -0.01, 100))) == "worse"
    assert verdict(percentile_interval(0.01, np.linspace(-0.02, 0.04, 100))) == "no evidence of difference"
    assert verdict(percentile_interval(float("nan"), np.full(10, np.nan))) == "not evaluable"
    d, v = difference(0.8, np.full(20, 0.8), 0.7, np.full(20, 0.7))
    assert v == "better" and d.point == pytest.approx(0.1)


def _clustered(rng, n_pat, per, d, su):
    """Patient-level labels, a shared random effect per patient: marginal AUROC = Phi(d / sqrt(2 (1 + su^2)))."""
    lab = rng.random(n_pat) < 0.4
    u = rng.normal(0, su, n_pat)
    groups = np.repeat(np.arange(n_pat), per)
    y = lab[groups]
    s = u[groups] + rng.normal(0, 1, groups.size) + d * y
    return s, y, groups


def test_patient_bootstrap_ci_covers_the_truth_at_the_stated_rate():
    d, su, n_pat, per, reps = 1.0, 1.0, 80, 4, 200
    truth = norm.cdf(d / np.sqrt(2 * (1 + su**2)))
    rng = np.random.default_rng(11)
    hit_patient = hit_image = 0
    for r in range(reps):
        s, y, g = _clustered(rng, n_pat, per, d, su)
        for groups, counter in ((g, "patient"), (np.arange(g.size), "image")):
            boot = PatientBootstrap(groups, 200, seed=r)
            point, rep = boot.replicate({"auc": lambda w: M.auroc(s, y, w)})
            iv = percentile_interval(point["auc"], rep["auc"])
            covered = iv.low <= truth <= iv.high
            if counter == "patient":
                hit_patient += covered
            else:
                hit_image += covered
    cov_p, cov_i = hit_patient / reps, hit_image / reps
    # 95% nominal; binomial sd at 200 repetitions is 1.5 points: accept 3 sd either side.
    assert 0.905 <= cov_p <= 0.995, cov_p
    # Resampling images ignores the within-patient correlation and undercovers clearly.
    assert cov_i < cov_p - 0.05, (cov_i, cov_p)
