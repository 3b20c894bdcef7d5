"""results.json sections from known per-image scores: per-label metrics at the val-chosen threshold, paired
verdicts, macro averages, labels that cannot be evaluated, and the out-of-domain warning."""

import numpy as np
import pytest

from radadapt.bench import metrics as M
from radadapt.bench import results as R
from radadapt.bench import targets as T
from radadapt.bench.probes import LabelTargets
from radadapt.bench.schema import LabelCounts
from radadapt.bench.scoring import ModelScores, ProbeOutput
from radadapt.config import BenchSection

PROBE = "linear:cls"


def _model(name: str, scores: np.ndarray, cohort: str, thresholds: np.ndarray) -> ModelScores:
    m = ModelScores(name=name, family="rad_dino", fingerprint=name * 8, embed_dim=8, input_size=56)
    m.probes[PROBE] = ProbeOutput(kind="linear", features="cls", scores={cohort: scores}, thresholds=thresholds,
                                  c=np.full(scores.shape[1], 0.1), val_auroc=np.full(scores.shape[1], 0.8))
    return m


def _counts(t: LabelTargets, j: int, cohort: str) -> dict[str, LabelCounts]:
    c = R.label_counts(t, j)
    return {"probe_train": c, "val": c, "test": c, cohort: c}


def test_label_metrics_verdicts_and_macro_from_known_scores():
    rng = np.random.default_rng(0)
    n, pats = 600, np.repeat([f"p{i}" for i in range(200)], 3)
    names = ["A", "B", "Rare", "tube"]
    groups = {"A": "findings", "B": "findings", "Rare": "findings", "tube": "devices"}
    y = (rng.random((n, 4)) < 0.3).astype(np.int8)
    y[:, 2] = 0
    y[:3, 2] = 1  # "Rare": 3 positives only
    mask = np.ones((n, 4), bool)
    mask[::7, 0] = False  # some uncertain values excluded from label A
    t = LabelTargets(y, mask)
    good = np.clip(y + rng.normal(0, 0.6, (n, 4)), -2, 3) / 5 + 0.4
    cand = good.copy()
    cand[:, 1] = rng.random(n)  # the candidate lost label B entirely
    thr = np.array([0.55, 0.5, 0.5, 0.6])  # as if chosen on validation
    models = [_model("baseline", good, "test", thr), _model("candidate", cand, "test", thr)]
    counts = {nm: _counts(t, j, "test") for j, nm in enumerate(names)}
    statuses = {nm: R.label_status(counts[nm], min_positives=10) for nm in names}
    assert statuses["Rare"][0] == "too_few_positives" and statuses["A"][0] == "evaluated"
    label_idx = np.array([j for j, nm in enumerate(names) if statuses[nm][0] == "evaluated"])
    cls = R.classification(names, groups, counts, statuses, label_idx, t, list(pats), models, "baseline", "test",
                           n_boot=200, seed=0)
    labels = {lab.label: lab for lab in cls.labels}
    assert list(labels) == names  # nothing dropped
    assert labels["Rare"].results == {} and "3 positive" in labels["Rare"].message
    # per-label values are the metrics of the known scores, over the label's known images only
    a = labels["A"].results["baseline"][PROBE]
    m = mask[:, 0]
    assert a.auroc.point == pytest.approx(M.auroc(good[m, 0], y[m, 0].astype(bool))[0], abs=1e-6)
    assert a.auprc.point == pytest.approx(M.auprc(good[m, 0], y[m, 0].astype(bool))[0], abs=1e-6)
    # sensitivity / specificity use the validation threshold as given, not one re-chosen on test
    assert a.threshold == 0.55
    assert a.sensitivity.point == pytest.approx(M.sensitivity(good[m, 0], y[m, 0].astype(bool), 0.55)[0], abs=1e-6)
    assert a.specificity.point == pytest.approx(M.specificity(good[m, 0], y[m, 0].astype(bool), 0.55)[0], abs=1e-6)
    assert (a.auroc.n, a.auroc.n_pos) == (int(m.sum()), int(y[m, 0].sum())) and a.auroc.n_patients == 200
    assert a.auroc.low < a.auroc.point < a.auroc.high and a.auroc.n_boot == 200
    # paired verdicts: identical scores give no evidence; a lost label is worse with the CI below 0
    assert labels["A"].differences["candidate"][PROBE]["auroc"].verdict == "no evidence of difference"
    db = labels["B"].differences["candidate"][PROBE]["auroc"]
    assert db.verdict == "worse" and db.high < 0
    # macro averages: the mean of the evaluated labels of each group, bootstrapped jointly
    macro = {mac.group: mac for mac in cls.macro}
    f = macro["findings"]
    assert f.labels == ["A", "B"] and f.excluded_labels == ["Rare"]
    mean_ab = np.mean([labels[x].results["candidate"][PROBE].auroc.point for x in ("A", "B")])
    assert f.results["candidate"][PROBE]["auroc"].point == pytest.approx(mean_ab, abs=1e-5)
    assert f.differences["candidate"][PROBE]["auroc"].verdict == "worse"
    assert len(f.replicates["candidate"][PROBE]) == 200
    assert macro["devices"].labels == ["tube"] and macro["devices"].results["baseline"][PROBE]["auroc"].point == \
        pytest.approx(labels["tube"].results["baseline"][PROBE].auroc.point, abs=1e-6)


def test_out_of_domain_worse_candidate_is_warned_loudly(bench_store, capsys):
    from radadapt.bench.run import _ood_section
    from radadapt.manifest import Store

    root, _ = bench_store
    store = Store(root)
    columns = T.label_columns(store)
    names = list(columns)
    oc = T.select_cohorts(store, {"ood": None}, splits_as={"train": "ood", "val": "ood", "test": "ood"})["ood"]
    ot = T.build_targets(store, {"ood": oc}, columns)[0]["ood"]
    rng = np.random.default_rng(1)
    n = len(oc)
    base = np.where(ot.y == 1, 0.8, 0.2) + rng.normal(0, 0.05, ot.y.shape)  # the baseline transfers well
    cand = base.copy()
    j = names.index("Cardiomegaly")
    cand[:, j] = rng.random(n)  # the site model lost Cardiomegaly on the other site
    thr = np.full(len(names), 0.5)
    models = [_model("baseline", base, "ood", thr), _model("candidate", cand, "ood", thr)]
    counts = {nm: _counts(ot, k, "test") for k, nm in enumerate(names)}
    statuses = {nm: R.label_status(counts[nm], min_positives=3) for nm in names}
    label_idx = np.array([k for k, nm in enumerate(names) if statuses[nm][0] == "evaluated"])
    assert j in label_idx
    res = _ood_section((store, oc, ot), names, columns, counts, statuses, label_idx, models,
                       BenchSection(min_positives=3), 200)
    assert res.n_images == n and res.store.store_id == store.info.store_id
    card = next(lab for lab in res.classification.labels if lab.label == "Cardiomegaly")
    assert card.differences["candidate"][PROBE]["auroc"].verdict == "worse"
    assert card.counts["ood"].pos == int(ot.y[ot.mask[:, j], j].sum())
    hits = [w for w in res.warnings if "Cardiomegaly" in w]
    assert len(hits) == 1 and hits[0].startswith("OUT-OF-DOMAIN: candidate is WORSE")
    assert not any("Pleural Effusion" in w for w in res.warnings)  # unchanged labels are not flagged
    assert "OUT-OF-DOMAIN" in capsys.readouterr().err  # and it is printed, not only stored
