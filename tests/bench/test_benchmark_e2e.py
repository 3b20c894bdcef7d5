"""End to end: `radadapt benchmark` on a small labelled store with planted signals, tiny models of both families."""

import json
import shutil

import pytest

from radadapt.bench.schema import BenchmarkResults
from tests.bench.storebuilder import build_store, make_run

FAST = """[benchmark]
min_positives = 3
linear_features = ["cls", "cls+patch_mean", "layers"]
c_values = 6
max_iter = 30
refit_iter = 60
seg_epochs = 3
overlays = 2
"""


@pytest.fixture()
def fast_config(tmp_path):
    cfg = tmp_path / "radadapt.toml"
    cfg.write_text(FAST)
    return cfg


@pytest.mark.slow
def test_run_vs_open_weights_complete_results_with_ood(cli, bench_store, tiny_rad_dino, tmp_path, fast_config):
    from radadapt.models import rad_dino

    root, info = bench_store
    run = make_run(tmp_path / "run", rad_dino.write_tiny, info["train_patients"], store_id="x", seed=1)
    ood = tmp_path / "ood"
    build_store(ood, n_patients=20, seed=5, masks=False)
    out = tmp_path / "bench"
    res = cli("benchmark", "--store", root, "--baseline", tiny_rad_dino, "--candidate", run, "--out", out,
              "--ood", ood, "--bootstrap", 100, "--config", fast_config, "--json")
    assert res.exit_code == 0, res.stderr
    printed = json.loads(res.stdout)
    results = BenchmarkResults.model_validate_json((out / "results.json").read_text())
    assert printed["created"] == results.created
    # models, with what the report needs
    base, cand = results.models
    assert (base.role, base.kind, base.training_check.status) == ("baseline", "weights", "open_weights")
    assert (cand.kind, cand.training_check.status) == ("run", "disjoint")
    assert cand.run.metrics_jsonl.endswith("metrics.jsonl") and cand.run.subset_n == 2000
    assert base.fingerprint != cand.fingerprint
    assert results.store.store_json.endswith("store.json") and results.store.label_columns
    assert results.splits["test"].patients == len(info["test_patients"])
    labels = {lab.label: lab for lab in results.classification.labels}
    # nothing dropped: too-few and no-positive labels stay, with a reason
    assert labels["Pneumothorax"].status == "too_few_positives" and labels["Pneumothorax"].message
    assert labels["chest tube"].status == "no_positives"
    probes = {p.name for p in results.probes}
    assert probes == {"linear:cls", "linear:cls+patch_mean", "linear:layers", "knn:cls"}
    layers = next(p for p in results.probes if p.name == "linear:layers")
    assert layers.features == "layers"  # the family's multi-layer features (4 layers x D for RAD-DINO)
    card = labels["Cardiomegaly"]
    assert card.status == "evaluated" and set(card.results) == {"baseline", "candidate"}
    for model in ("baseline", "candidate"):
        for probe in probes:
            r = card.results[model][probe]
            for metric in (r.auroc, r.auprc, r.sensitivity, r.specificity):
                assert metric.point is not None and metric.low <= metric.point <= metric.high
                assert metric.n_pos == card.counts["test"].pos and metric.n_boot > 50
    # the planted ellipse is visible to a frozen random tiny ViT through a linear probe
    assert card.results["baseline"]["linear:cls"].auroc.point > 0.8
    assert card.results["baseline"]["linear:cls"].c is not None
    d = card.differences["candidate"]["linear:cls"]["auroc"]
    assert d.verdict in ("better", "no evidence of difference", "worse")
    macro = {m.group: m for m in results.classification.macro}
    assert "Pneumothorax" in macro["findings"].excluded_labels
    assert len(macro["findings"].replicates["candidate"]["linear:cls"]) == 100
    # segmentation with overlays on disk
    seg = results.segmentation
    assert seg.status == "evaluated" and seg.devices == ["endotracheal tube"]
    assert seg.heads == ["linear", "pyramid"]
    for head in seg.heads:
        for metric in ("dice", "iou"):
            est = seg.results["candidate"][head]["all"][metric]
            assert est.point is not None and est.n > 0 and 0 <= est.low <= est.point <= est.high <= 1
        r = seg.results["baseline"][head]["all"]
        assert r["iou"].point <= r["dice"].point + 1e-9  # IoU <= Dice for every pair, so for the mean too
        assert seg.differences["candidate"][head]["all"]["dice"].verdict
    for name in seg.overlays["baseline"]["linear"]:
        assert (out / "overlays" / name).is_file()
    # out-of-domain section
    assert results.ood is not None and results.ood.n_images > 0
    assert any(lab.status == "evaluated" for lab in results.ood.classification.labels)
    assert results.cache.models["candidate"]["computed"] > 0
    # no patient identifiers in the output
    text = (out / "results.json").read_text()
    assert not any(p in text for p in info["test_patients"] + info["train_patients"])
    assert "replicates" not in res.stdout  # --json prints the results without the bootstrap replicates
    # the terminal view lists every label, the too-few ones by status, and the macro rows
    from rich.console import Console

    from radadapt.bench.tables import summary_table, summary_text

    con = Console(width=200, record=True)
    con.print(summary_table(results))
    con.print(summary_text(results, out))
    shown = con.export_text()
    assert "too few positives" in shown and "no positives" in shown and "macro findings" in shown
    assert "segmentation Dice (pyramid)" in shown and "out-of-domain store" in shown


@pytest.mark.slow
def test_mixed_families_mi2_zero_shot_and_retrieval(tmp_path, tiny_rad_dino):
    from radadapt.bench.run import BenchmarkRequest, run_benchmark
    from radadapt.config import BenchSection
    from radadapt.models import mi2

    store = tmp_path / "store"
    build_store(store, n_patients=24, seed=3, masks=False)
    mi2.write_tiny(tmp_path / "mi2", seed=0)
    cfg = BenchSection(min_positives=2, c_values=4, max_iter=20, refit_iter=30, linear_features=["cls"],
                       segmentation=False, attentive_probe=True, attentive_epochs=4)
    res = run_benchmark(BenchmarkRequest(store=store, baseline=tiny_rad_dino, candidates=[tmp_path / "mi2"],
                                         out=tmp_path / "out", bootstrap=50, config=cfg))
    assert [m.family for m in res.models] == ["rad_dino", "mi2"]
    assert {p.name for p in res.probes} == {"linear:cls", "knn:cls", "attentive:patch"}
    evaluated = [lab for lab in res.classification.labels if lab.status == "evaluated"]
    assert evaluated and all("attentive:patch" in lab.results["candidate"] for lab in evaluated)
    cand = res.models[1]
    assert cand.training_check.status == "unverified"  # a bare model directory: warned, not refused
    assert any("carries no record" in w for w in res.warnings)
    (z,) = res.zeroshot
    assert z.model == "candidate" and z.prompt_set
    assert z.labels and all(e.point is not None for e in z.labels.values())
    assert set(z.retrieval) == {"recall@1", "recall@5", "recall@10"} and z.retrieval_gallery >= 2
    r10 = z.retrieval["recall@10"]
    assert 0 <= r10.low <= r10.point <= r10.high <= 1
    assert res.segmentation.status == "skipped" if res.segmentation else True


def test_refuses_a_run_that_saw_test_patients(cli, bench_store, tiny_rad_dino, tmp_path):
    from radadapt.models import rad_dino

    root, info = bench_store
    leaky = make_run(tmp_path / "run", rad_dino.write_tiny, info["train_patients"] + info["test_patients"][:1],
                     store_id="x")
    res = cli("benchmark", "--store", root, "--baseline", tiny_rad_dino, "--candidate", leaky, "--out", tmp_path / "o")
    assert res.exit_code == 3
    assert "error[bench.test_leak]" in res.stderr and "1 patient" in res.stderr
    assert info["test_patients"][0] not in res.stderr
    (leaky / "train_patients.txt").write_text("tampered\n")
    res = cli("benchmark", "--store", root, "--baseline", tiny_rad_dino, "--candidate", leaky, "--out", tmp_path / "o")
    assert "error[bench.training_record_mismatch]" in res.stderr


def test_bad_inputs_are_one_line_errors(cli, bench_store, tiny_rad_dino, tmp_path):
    root, _ = bench_store
    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(root, unlabelled)
    (unlabelled / "labels.csv").unlink()
    res = cli("benchmark", "--store", unlabelled, "--baseline", tiny_rad_dino, "--candidate", tiny_rad_dino,
              "--out", tmp_path / "o")
    assert res.exit_code == 3 and "error[store.no_labels]" in res.stderr and "hint:" in res.stderr
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "weights.bin").write_bytes(b"\0" * 10)
    res = cli("benchmark", "--store", root, "--baseline", tiny_rad_dino, "--candidate", junk, "--out", tmp_path / "o")
    assert res.exit_code == 4 and "error[models.unknown_format]" in res.stderr
    other = tmp_path / "other"
    build_store(other, n_patients=6, seed=9, masks=False)
    labels_json = json.loads((other / "labels.json").read_text())
    labels_json["devices"] = ["PICC"]
    (other / "labels.json").write_text(json.dumps(labels_json))
    res = cli("benchmark", "--store", root, "--baseline", tiny_rad_dino, "--candidate", tiny_rad_dino,
              "--out", tmp_path / "o", "--ood", other)
    assert res.exit_code == 3 and "error[bench.ood_schema_mismatch]" in res.stderr
    res = cli("benchmark", "--store", root, "--baseline", tiny_rad_dino, "--candidate", tiny_rad_dino,
              "--out", tmp_path / "o", "--ood", root)
    assert res.exit_code == 2 and "error[bench.ood_same_store]" in res.stderr
    for r in (res,):
        assert "Traceback" not in r.stderr


TRAIN_AND_BENCH = """[train]
num_workers = 0
log_every = 1
precision = "fp32"

[train.dino]
global_crop_size = 56
local_crop_size = 28
local_crops = 2
head_hidden_dim = 64
head_bottleneck_dim = 32

[benchmark]
min_positives = 1
c_values = 6
max_iter = 30
refit_iter = 60
seg_epochs = 2
overlays = 1
"""


@pytest.mark.slow
def test_demo_store_run_trained_by_radadapt_train_vs_its_starting_point(cli, demo_store_labelled, tiny_rad_dino,
                                                                      tmp_path):
    """The issue's end-to-end: the synthetic hospital, ingested and labelled, a tiny RAD-DINO continually pretrained
    on it by the real trainer, benchmarked against the weights it started from."""
    from radadapt.manifest import Store
    from radadapt.train.run import TrainRequest, start

    cfg = tmp_path / "radadapt.toml"
    cfg.write_text(TRAIN_AND_BENCH)
    run = tmp_path / "run"
    start(TrainRequest(store=demo_store_labelled, weights=tiny_rad_dino, out=run, max_steps=2, batch_size=4,
                       config=cfg))
    out = tmp_path / "bench"
    res = cli("benchmark", "--store", demo_store_labelled, "--baseline", tiny_rad_dino, "--candidate", run,
              "--out", out, "--config", cfg, "--bootstrap", 50, "--json")
    assert res.exit_code == 0, res.stderr
    results = BenchmarkResults.model_validate_json((out / "results.json").read_text())
    cand = results.models[1]
    train_patients = {r.patient_key for r in Store(demo_store_labelled).records("train")}
    assert cand.kind == "run" and cand.training_check.status == "disjoint"
    assert cand.training_check.n_train_patients == len(train_patients)  # the trainer's record, read and verified
    assert cand.run.subset_n == Store(demo_store_labelled).info.splits["train"]
    assert cand.run.metrics_jsonl and cand.fingerprint != results.models[0].fingerprint
    names = {lab.label for lab in results.classification.labels}
    assert names == set(results.store.label_columns)  # every schema column is accounted for
    assert any(lab.status == "evaluated" for lab in results.classification.labels)
    assert results.segmentation is not None and results.segmentation.status in ("evaluated", "skipped")
    if results.segmentation.status == "skipped":
        assert results.segmentation.message


@pytest.mark.slow
def test_no_evaluable_label_still_gives_a_complete_file_that_says_so(bench_store, tiny_rad_dino, tmp_path):
    """Bad input that is not an error: every label has too few positives. The file is complete, every label is
    listed with its reason, the macro rows are empty and a warning says why (never a silently empty table)."""
    from rich.console import Console

    from radadapt.bench.run import BenchmarkRequest, run_benchmark
    from radadapt.bench.tables import summary_table
    from radadapt.config import BenchSection

    root, _ = bench_store
    cfg = BenchSection(min_positives=10_000, linear_features=["cls"], segmentation=False, c_values=3, max_iter=10,
                       refit_iter=10)
    res = run_benchmark(BenchmarkRequest(store=root, baseline=tiny_rad_dino, candidates=[tiny_rad_dino],
                                         out=tmp_path / "out", bootstrap=10, config=cfg))
    assert (tmp_path / "out" / "results.json").is_file()
    assert [lab.label for lab in res.classification.labels] == res.store.label_columns
    assert {lab.status for lab in res.classification.labels} == {"too_few_positives", "no_positives"}
    assert all(lab.message and not lab.results for lab in res.classification.labels)
    assert all(not m.labels and m.excluded_labels and not m.results for m in res.classification.macro)
    assert any("no label has enough positives" in w for w in res.warnings)
    assert any("same weights as the baseline" in w for w in res.warnings)
    con = Console(width=200, record=True)
    con.print(summary_table(res))
    shown = con.export_text()
    assert "too few positives" in shown and "no positives" in shown
