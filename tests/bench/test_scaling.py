import json

import numpy as np
import pytest

from radadapt.bench.scaling import fit_power_law, leave_largest_out, n_for_error
from radadapt.bench.schema import (BenchmarkResults, CacheInfo, Classification, Difference, Estimate, MacroResult,
                                   ModelInfo, RunInfo, StoreRef, TrainingCheck)
from radadapt.bench.trends import ScalingRequest, run_scaling
from radadapt.errors import DataError

A, B, C = 3.0, 0.35, 0.08
NS = np.array([3e4, 5e4, 1e5, 3e5, 1e6, 3.5e6])


def test_fit_recovers_known_a_b_c_from_noisy_points():
    rng = np.random.default_rng(0)
    errs = []
    for _ in range(10):
        e = (A * NS ** -B + C) * np.exp(rng.normal(0, 0.01, NS.size))
        f = fit_power_law(NS, e)
        errs.append((f.b, f.c, f.predict(1e7)))
    b, c, p = np.median(np.array(errs), axis=0)
    assert b == pytest.approx(B, abs=0.05)
    assert c == pytest.approx(C, abs=0.01)
    assert p == pytest.approx(A * 1e7 ** -B + C, rel=0.03)


def test_fit_is_robust_to_one_outlier_and_reports_leave_largest_out():
    e = A * NS ** -B + C
    e_bad = e.copy()
    e_bad[2] *= 1.5  # one wild point
    f = fit_power_law(NS, e_bad)
    assert f.b == pytest.approx(B, abs=0.06)
    assert leave_largest_out(NS, e, True) < 0.01
    pure = fit_power_law(NS, A * NS ** -B, floor=False)
    assert pure.b == pytest.approx(B, abs=1e-4) and pure.c == 0


def test_n_for_error_and_floor():
    f = fit_power_law(NS, A * NS ** -B + C)
    n = n_for_error(f, 0.12)
    assert f.predict(n) == pytest.approx(0.12, rel=1e-3)
    assert n_for_error(f, 0.05) is None  # below the irreducible floor
    assert fit_power_law(NS[:2], (A * NS ** -B)[:2]) is None  # 3 parameters need 3 points


def _results(tmp_path, name, n, macro_auc, reps, verdict="better"):
    est = Estimate(point=macro_auc, low=macro_auc - 0.01, high=macro_auc + 0.01, n=100)
    mac = MacroResult(group="findings", labels=["A"], excluded_labels=[],
                      results={"baseline": {"linear:cls": {"auroc": Estimate(point=0.7, n=100)}},
                               "candidate": {"linear:cls": {"auroc": est}}},
                      differences={"candidate": {"linear:cls": {"auroc": Difference(point=0.1, verdict=verdict)}}},
                      replicates={"candidate": {"linear:cls": list(reps)}})
    check = TrainingCheck(status="disjoint")
    models = [ModelInfo(name="baseline", role="baseline", path="b", model_dir="b", kind="weights", family="rad_dino",
                        fingerprint="f", embed_dim=8, input_size=8, training_check=TrainingCheck(status="open_weights")),
              ModelInfo(name="candidate", role="candidate", path="r", model_dir="r/final", kind="run",
                        family="rad_dino", fingerprint="g", embed_dim=8, input_size=8,
                        run=RunInfo(path="r", metrics_jsonl=None, subset_n=n), training_check=check)]
    res = BenchmarkResults(radadapt_version="t", created="now",
                           store=StoreRef(path="s", store_id="s", n_images=1, splits={}, store_json="s/store.json"),
                           settings={}, models=models, splits={}, probes=[], headline_probe="linear:cls",
                           classification=Classification(labels=[], macro=[mac]),
                           cache=CacheInfo(dir="c", models={}))
    d = tmp_path / name
    d.mkdir()
    (d / "results.json").write_text(res.model_dump_json())
    return d


def test_scaling_from_results_files_with_refusal_to_extrapolate(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i, n in enumerate(NS):
        e = A * n ** -B + C
        reps = 1 - e * np.exp(rng.normal(0, 0.01, 200))
        paths.append(_results(tmp_path, f"r{i}", int(n), 1 - e, reps, verdict="better" if i >= 2 else
                              "no evidence of difference"))
    res = run_scaling(ScalingRequest(inputs=paths, targets=[0.9, 0.91, 0.915, 0.95], at=[1e7, 1e9], n_boot=60,
                                     out=tmp_path / "scaling.json"))
    task = res.tasks[0]
    assert task.task.startswith("findings macro AUROC") and len(task.points) == 6
    assert task.crossover_n == int(NS[2])
    floor = task.fits[0]
    assert floor.form == "a*N^-b + c" and floor.b == pytest.approx(B, abs=0.05)
    assert floor.b_low < B < floor.b_high and floor.n_boot >= 50 and floor.dof == 3
    assert floor.rmse_log < 0.01 and floor.r2_log > 0.99  # exact points: the fit quality says so
    assert floor.loo_largest_rel_error < 0.02
    preds = {(p.form, p.target): p for p in task.predictions}
    assert preds[("a*N^-b + c", 0.95)].status == "unreachable"  # 1 - 0.95 is below the fitted floor of ~0.08
    assert preds[("a*N^-b + c", 0.9)].status == "reached"  # observed at 3.5M already
    assert preds[("a*N^-b + c", 0.91)].status == "extrapolated"  # about 3x the largest N
    assert 5e6 < preds[("a*N^-b + c", 0.91)].n < 3.5e7
    assert preds[("a*N^-b + c", 0.915)].status == "withheld_beyond_limit"  # about 24x: not shown silently
    assert preds[("a*N^-b + c", 0.915)].n is None
    assert preds[("a*N^-b + c", 1e7)].status == "extrapolated" and preds[("a*N^-b + c", 1e7)].metric is not None
    assert preds[("a*N^-b + c", 1e9)].status == "withheld_beyond_limit" and preds[("a*N^-b + c", 1e9)].metric is None
    allowed = run_scaling(ScalingRequest(inputs=paths, at=[1e9], n_boot=0, allow_extrapolation=True))
    assert allowed.tasks[0].predictions[0].status == "extrapolated"
    assert json.loads((tmp_path / "scaling.json").read_text())["format"] == "radadapt-scaling"


def test_scaling_refuses_benchmarks_without_run_sizes(tmp_path, cli):
    p = _results(tmp_path, "r", 1000, 0.8, [0.8] * 10)
    data = json.loads((p / "results.json").read_text())
    data["models"][1]["run"] = None
    (p / "results.json").write_text(json.dumps(data))
    with pytest.raises(DataError) as err:
        run_scaling(ScalingRequest(inputs=[p]))
    assert err.value.code == "scaling.no_n"
    res = cli("benchmark", "scaling", tmp_path / "missing")
    assert res.exit_code == 3 and "error[scaling.no_results]" in res.stderr


def test_n_for_error_of_a_nearly_flat_curve_is_infinite_not_an_overflow():
    from radadapt.bench.scaling import Fit

    flat = Fit(a=0.4, b=1e-4, c=0.0, cost=0.0, ok=True)
    assert n_for_error(flat, 0.3) == float("inf")  # (0.4 / 0.3) ** 10000 overflows a float
    assert n_for_error(Fit(a=0.4, b=0.5, c=0.0, cost=0.0, ok=True), 0.1) == pytest.approx(16.0)
    assert n_for_error(Fit(a=0.4, b=-0.1, c=0.0, cost=0.0, ok=True), 0.1) is None  # error grows with N
    assert n_for_error(Fit(a=0.4, b=0.5, c=0.2, cost=0.0, ok=True), 0.2) is None  # exactly the floor


def _series(tmp_path, prefix, ns, metrics, seed=0):
    rng = np.random.default_rng(seed)
    return [_results(tmp_path, f"{prefix}{i}", n, m, m + rng.normal(0, 0.005, 100), verdict="no evidence of difference")
            for i, (n, m) in enumerate(zip(ns, metrics))]


@pytest.mark.slow
def test_far_or_unreachable_targets_give_statements_not_crashes(tmp_path, cli):
    """The reported bug: a nearly flat series with --target 0.7 raised OverflowError in n_for_error."""
    paths = _series(tmp_path, "flat", [1000, 3000, 10000, 30000], [0.60, 0.599, 0.6012, 0.6005])
    res = cli("benchmark", "scaling", *paths, "--target", "0.7", "--target", "0.9", "--target", "0.99",
              "--bootstrap", "12", "--json")
    assert res.exit_code == 0, res.stderr
    preds = json.loads(res.stdout)["tasks"][0]["predictions"]
    assert len(preds) == 6
    for p in preds:
        assert p["n"] is None and p["status"] in ("unreachable", "withheld_beyond_limit") and p["message"]
    by = {(p["form"], p["target"]): p for p in preds}
    assert "nearly flat" in by[("a*N^-b", 0.9)]["message"]  # b ~ 1e-3: would need more than 1e308 images
    assert by[("a*N^-b", 0.7)]["status"] == "withheld_beyond_limit"
    # allowing extrapolation still never gives an infinite N, and the terminal says why, not just the status
    res = cli("benchmark", "scaling", *paths, "--target", "0.9", "--bootstrap", "0", "--allow-extrapolation",
              "--out", tmp_path / "scaling.json")
    assert res.exit_code == 0, res.stderr
    assert "nearly flat" in res.stdout.replace("\n", " ")
    for p in json.loads((tmp_path / "scaling.json").read_text())["tasks"][0]["predictions"]:
        assert p["status"] == "unreachable" and p["n"] is None


def test_target_above_the_fitted_ceiling_and_inverse_scaling(tmp_path):
    # error floor c = 0.25 planted: AUROC can never pass 0.75
    ns = np.array([1e3, 3e3, 1e4, 3e4, 1e5])
    paths = _series(tmp_path, "floor", ns.astype(int), 1 - (2.0 * ns ** -0.5 + 0.25), seed=1)
    res = run_scaling(ScalingRequest(inputs=paths, targets=[0.8], at=[1e6], n_boot=0, allow_extrapolation=True))
    floor_pred = next(p for p in res.tasks[0].predictions if p.form == "a*N^-b + c" and p.target == 0.8)
    assert floor_pred.status == "unreachable" and floor_pred.n is None and "ceiling" in floor_pred.message
    at = next(p for p in res.tasks[0].predictions if p.form == "a*N^-b + c" and p.target == 1e6)
    assert at.status == "extrapolated" and at.metric == pytest.approx(0.75, abs=0.01) and "10x" in at.message
    # a candidate that gets worse with more data: the pure law has b < 0 and says the error does not fall
    worse = _series(tmp_path, "worse", [1000, 3000, 10000], [0.80, 0.78, 0.76], seed=2)
    res = run_scaling(ScalingRequest(inputs=worse, targets=[0.85], n_boot=0))
    pure = next(f for f in res.tasks[0].fits if f.form == "a*N^-b")
    assert pure.b < 0
    pred = next(p for p in res.tasks[0].predictions if p.form == "a*N^-b")
    assert pred.status == "unreachable" and "does not fall" in pred.message
