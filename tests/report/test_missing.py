"""Missing optional inputs still give a complete, honest report; training logs are read robustly."""

from __future__ import annotations

import html as htmllib
import json
import math
import re

from radadapt.bench.schema import BenchmarkResults
from radadapt.report.load import MAX_CURVE_POINTS, load_inputs, read_training_log
from radadapt.report.summary import summarise
from tests.report.conftest import copy_fixture, edit_results
from tests.report.htmlcheck import parse


def _strip_optional(d: dict) -> dict:
    d["ood"] = None
    d["segmentation"] = None
    for m in d["models"]:
        m["run"] = None
        m["kind"] = "weights"
        if m["role"] == "candidate":
            m["training_check"] = {"status": "unverified", "n_train_patients": None,
                                   "message": "carries no record of its training patients"}
    return d


def test_report_without_scaling_runs_segmentation_ood_or_store_accounting(cli, tmp_path):
    root = copy_fixture(tmp_path / "fx")
    edit_results(root, _strip_optional)
    (root / "store" / "store.json").unlink()
    out = tmp_path / "report"
    res = cli("report", root / "bench", "--out", out, "--json")
    assert res.exit_code == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["report_html"] == str(out / "report.html") and info["report_md"] == str(out / "report.md")
    assert sorted(info["figures"]) == sorted(str(f) for f in (out / "figures").glob("*.png"))
    assert info["sections"][0] == "models" and info["summary"]["alarms"]
    html = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    text = htmllib.unescape(re.sub(r"<[^>]+>", "", html))
    facts = parse(html)
    # every section is still there, and each absent part says why
    for sid in ("summary", "models", "macro", "labels", "differences", "not-evaluated", "segmentation", "ood",
                "scaling", "training", "data", "settings"):
        assert sid in facts.ids, sid
    for phrase in ("Segmentation was not part of this benchmark",
                   "No out-of-domain store was given",
                   "was NOT checked",
                   "No scaling fit was given",
                   "No model in this benchmark is a radadapt training run",
                   "ingest accounting is not available",
                   "the store's accounting (store.json) was not found"):
        assert phrase in text, phrase
        assert phrase in md.replace("`", ""), phrase
    assert html.count('<div class="absent">') == md.count("**Not in this report:**") == 4  # seg, ood, scaling, training
    for fid in ("fig-segmentation", "fig-ood-forest", "fig-training", "fig-accounting"):
        assert fid not in facts.ids
    assert {"fig-labels-findings", "fig-forest"} <= facts.ids
    assert info["notes"]["data"] == [f"the store's accounting (store.json) was not found at {root / 'store' / 'store.json'}"]
    # a model whose training cannot be checked against the test patients is a loud warning
    assert 'id="alarms"' in html and "could not be verified that this model never saw a test patient" in text


def test_skipped_segmentation_and_damaged_training_logs_are_named(tmp_path):
    root = copy_fixture(tmp_path / "fx")
    edit_results(root, lambda d: {**d, "segmentation": {"status": "skipped", "message": "too few images with masks"}})
    run30, run60, run98 = (root / r / "metrics.jsonl" for r in ("run30", "run60", "run98"))
    run30.unlink()
    lines = run60.read_text().splitlines()
    run60.write_text("\n".join(lines[:2] + ["{not json", "[1, 2]", '{"loss": 1.0}'] + lines[2:]) + "\n")
    run98.write_text("")
    inp = load_inputs(root / "bench" / "results.json")
    notes = inp.notes["training"]
    assert any("candidate-1: training log not found" in n for n in notes)
    assert any("candidate-2: 3 unreadable row(s)" in n for n in notes)
    assert any("candidate-3: training log" in n and "no usable rows" in n for n in notes)
    assert set(inp.logs) == {"candidate-2"} and inp.logs["candidate-2"].rows == len(lines)
    from radadapt.report import render

    models = [m.name for m in inp.results.models]
    assert render._segmentation(inp, models).absent == "Segmentation was skipped: too few images with masks."
    training = render._training(inp, models)
    assert [p.id for p in training.plots] == ["fig-training"] and len(training.notes) == 3
    assert training.tables[0].rows[0][4].text == "–"  # candidate-1's log is missing: no row count


def test_training_log_is_decimated_evenly_and_keeps_non_finite_values(tmp_path):
    f = tmp_path / "metrics.jsonl"
    rows = []
    for step in range(1, 10_001):
        loss = "nan" if step == 5 else ("inf" if step == 7 else 10.0 / step)
        rows.append(json.dumps({"step": step, "loss": loss, "dino_loss": 1.0, "lr": 0.1, "elapsed_s": step / 10,
                                "images_seen": 8 * step, **({"ibot_loss": 2.0} if step > 100 else {})}))
    f.write_text("\n".join(rows) + "\n")
    log = read_training_log(f, "candidate", max_points=1000)
    assert log.rows == 10_000 and log.bad_rows == 0
    assert 500 <= len(log.steps) <= 1000 and log.steps[0] == 1
    gaps = {b - a for a, b in zip(log.steps, log.steps[1:])}
    assert len(gaps) == 1  # evenly spaced
    assert set(log.series) == {"loss", "dino_loss", "ibot_loss"}  # lr and counters are not loss curves
    assert all(len(v) == len(log.steps) for v in log.series.values())
    assert math.isnan(log.series["ibot_loss"][0]) and log.series["ibot_loss"][-1] == 2.0
    assert log.last["loss"] == 10.0 / 10_000 and log.elapsed_s == 1000.0 and log.images_seen == 80_000
    full = read_training_log(f, "candidate", max_points=MAX_CURVE_POINTS * 10)
    assert math.isnan(full.series["loss"][4]) and math.isinf(full.series["loss"][6])


def test_summary_levels_for_worse_and_out_of_domain_harm(bench_copy):
    d = json.loads((bench_copy / "bench" / "results.json").read_text())
    probe = d["headline_probe"]
    mac = d["classification"]["macro"][0]
    mac["differences"]["candidate-1"][probe]["auroc"] = {"point": -0.05, "low": -0.08, "high": -0.02, "verdict": "worse"}
    d["ood"]["warnings"] = ["OUT-OF-DOMAIN: candidate-1 is WORSE than the baseline on findings macro (x)"]
    omac = d["ood"]["classification"]["macro"][0]
    omac["differences"]["candidate-1"][probe]["auroc"] = {"point": -0.04, "low": -0.07, "high": -0.01, "verdict": "worse"}
    s = summarise(BenchmarkResults.model_validate(d))
    c1 = s.candidates[0]
    assert c1.headline.level == "bad" and "WORSE, macro AUROC -0.050 (95% CI -0.080 to -0.020)" in c1.headline.text
    assert s.alarms == d["ood"]["warnings"]
    ood_line = next(ln for ln in c1.lines if ln.text.startswith("Out of domain (findings"))
    assert ood_line.level == "alarm" and "worse" in ood_line.text


def test_mi2_zero_shot_and_retrieval_are_reported(bench_copy):
    from radadapt.bench.schema import Difference, Estimate, ZeroShotResult
    from radadapt.report.tables import zeroshot_table

    res = BenchmarkResults.model_validate_json((bench_copy / "bench" / "results.json").read_text())
    # the shape radadapt/bench/results.py zero_shot() writes for an MI2 candidate compared with an MI2 baseline
    est = Estimate(point=0.71, low=0.64, high=0.78, n=82, n_pos=20, n_neg=62, n_boot=100)
    z = ZeroShotResult(model="candidate-1", prompt_set="radadapt-v1", labels={"Cardiomegaly": est},
                       macro_auroc={"findings": est},
                       retrieval={"recall@1": Estimate(point=0.12, low=0.05, high=0.2, n=40, n_boot=100)},
                       retrieval_gallery=40,
                       differences={"findings macro auroc": Difference(point=0.05, low=0.01, high=0.09,
                                                                       verdict="better")})
    res.zeroshot = [z]
    t = zeroshot_table(res.zeroshot)
    assert [[c.text for c in row[:3]] for row in t.rows] == [["candidate-1", "findings macro AUROC", "0.710"],
                                                             ["candidate-1", "image → report recall@1 (gallery 40)",
                                                              "0.120"]]
    assert t.rows[0][3].css == "better" and t.rows[0][2].sub == "[0.640,\u00a00.780]"
    lines = [ln for ln in summarise(res).candidates[0].lines if "Zero-shot" in ln.text]
    assert lines[0].text == "Zero-shot (text prompts, no probe): findings macro AUROC 0.710 [0.640, 0.780]."
    assert lines[1].level == "good" and "AUROC +0.050 (95% CI +0.010 to +0.090)" in lines[1].text
