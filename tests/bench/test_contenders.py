"""What a MODEL path is, and the leakage check that decides whether it may be benchmarked (docs/architecture.md §5)."""

import json
import shutil

import pytest

from radadapt.bench import contenders as C
from radadapt.errors import DataError, ModelError
from tests.bench.storebuilder import make_run

TEST, VAL = {"t1", "t2"}, {"v1", "v2"}


def _writer(src):
    def write(out, seed=0):
        shutil.copytree(src, out)
    return write


def test_run_export_and_weights_are_told_apart_and_checked(tmp_path, tiny_rad_dino):
    run = make_run(tmp_path / "run", _writer(tiny_rad_dino), ["a", "b", "v1"], store_id="s")
    c = C.resolve(run, "candidate", "candidate")
    assert (c.kind, c.family, c.model_dir) == ("run", "rad_dino", run / "final")
    assert c.run.subset_n == 2000 and c.run.metrics_jsonl.endswith("metrics.jsonl") and c.run.store_id == "s"
    check = C.check_training(c, TEST, VAL, "s")
    # disjoint from test, but a validation patient overlaps: allowed, said plainly
    assert check.status == "disjoint" and check.n_train_patients == 3 and "1 validation patient" in check.message
    other_store = C.check_training(C.resolve(make_run(tmp_path / "r2", _writer(tiny_rad_dino), ["a"], "other"),
                                             "candidate", "candidate"), TEST, VAL, "s")
    assert other_store.status == "disjoint" and "another store" in other_store.message

    export = tmp_path / "export"
    shutil.copytree(tiny_rad_dino, export)
    (export / "provenance.json").write_text(json.dumps({"family": "rad_dino"}))
    e = C.resolve(export, "candidate", "candidate")
    assert e.kind == "export" and e.run is None
    ec = C.check_training(e, TEST, VAL, "s")
    assert ec.status == "unverified" and "export" in ec.message  # warned, not refused

    w = C.resolve(tiny_rad_dino, "baseline", "baseline")
    assert w.kind == "weights" and C.check_training(w, TEST, VAL, "s").status == "open_weights"
    assert C.check_training(C.resolve(tiny_rad_dino, "candidate", "candidate"), TEST, VAL, "s").status == "unverified"


def test_runs_that_cannot_be_checked_are_refused(tmp_path, tiny_rad_dino):
    run = make_run(tmp_path / "run", _writer(tiny_rad_dino), ["a", "t2"], store_id="s")
    with pytest.raises(DataError) as err:
        C.check_training(C.resolve(run, "candidate", "candidate"), TEST, VAL, "s")
    assert err.value.code == "bench.test_leak" and "1 patient" in str(err.value) and "t2" not in str(err.value)
    (run / "train_patients.txt").unlink()
    with pytest.raises(DataError) as err:
        C.check_training(C.resolve(run, "candidate", "candidate"), TEST, VAL, "s")
    assert err.value.code == "bench.no_training_record"
    (run / "run.json").write_text("{not json")
    with pytest.raises(ModelError) as err:
        C.resolve(run, "candidate", "candidate")
    assert err.value.code == "bench.bad_run"
