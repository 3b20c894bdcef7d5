"""The committed fixture is real benchmark output that still matches the current formats (so it cannot rot).

It was made by tests/report/make_fixture.py with the real pipeline; if a schema changes, these tests fail until the
script is run again.
"""

from __future__ import annotations

import json

from radadapt.bench.schema import BenchmarkResults, ScalingResults
from radadapt.manifest import LabelsInfo, StoreInfo
from tests.report.conftest import FIXTURE, PLACEHOLDER


def test_results_and_scaling_match_the_current_schemas():
    res = BenchmarkResults.model_validate_json((FIXTURE / "bench" / "results.json").read_text())
    sc = ScalingResults.model_validate_json((FIXTURE / "scaling.json").read_text())
    # what the report is meant to exercise is really there
    assert [m.role for m in res.models] == ["baseline", "candidate", "candidate", "candidate"]
    assert all(m.run and m.run.subset_n and m.training_check.status == "disjoint" for m in res.models[1:])
    assert {lab.status for lab in res.classification.labels} >= {"evaluated", "no_positives"}
    assert {lab.group for lab in res.classification.labels if lab.status == "evaluated"} == {"findings", "devices"}
    assert res.segmentation.status == "evaluated" and res.segmentation.overlays
    assert res.ood is not None and res.ood.classification.labels
    assert len({p.n for t in sc.tasks for p in t.points}) == 3
    assert any(f.status == "fitted" for t in sc.tasks for f in t.fits)
    # every recorded path is inside the fixture (placeholder), never the machine that made it
    recorded = [res.store.path, res.store.store_json, res.store.labels_json, res.ood.store.path,
                res.ood.store.store_json, res.cache.dir, *sc.inputs, *(p.results for t in sc.tasks for p in t.points)]
    for m in res.models:
        recorded += [m.path, m.model_dir] + ([m.run.path, m.run.metrics_jsonl] if m.run else [])
    assert all(p.startswith(PLACEHOLDER + "/") for p in recorded), [p for p in recorded if PLACEHOLDER not in p]
    for f in (FIXTURE / "bench" / "results.json", FIXTURE / "scaling.json"):
        assert not [v for v in _strings(json.loads(f.read_text())) if v.startswith("/")]


def _strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v)


def test_every_file_the_results_name_is_in_the_fixture(bench_copy):
    res = BenchmarkResults.model_validate_json((bench_copy / "bench" / "results.json").read_text())
    for ref in (res.store, res.ood.store):
        StoreInfo.model_validate_json(open(ref.store_json).read())
        LabelsInfo.model_validate_json(open(ref.labels_json).read())
    info = json.loads(open(res.store.store_json).read())
    acc = info["accounting"]
    assert acc["ok"] + sum(acc["filtered"].values()) + acc["duplicate"] + sum(acc["quarantined"].values()) == acc["total_files"]
    for m in res.models[1:]:
        rows = [json.loads(line) for line in open(m.run.metrics_jsonl)]
        assert rows and all({"step", "loss", "elapsed_s", "images_seen"} <= set(r) for r in rows)
    for by_head in res.segmentation.overlays.values():
        for names in by_head.values():
            assert all((bench_copy / "bench" / "overlays" / n).is_file() for n in names)
