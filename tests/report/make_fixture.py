"""Regenerate ``tests/report/fixture/`` with the real pipeline (not run by the tests: about 30 minutes on 2 cores).

    python -m tests.report.make_fixture --work /tmp/report-fixture

Steps, each skipped when its output already exists in WORK (so an interrupted run resumes): the synthetic hospital
(300 patients) and a second one as the out-of-domain site, `radadapt init`, `ingest` (with device masks) and
`labels` for both, a tiny "open-weights" RAD-DINO (`models tiny`), three `train` runs on nested subsets of 30, 60
and 98 images, `benchmark` (baseline + 3 candidates, --ood, segmentation, 100 bootstrap replicates, one overlay
per model and head) and `benchmark scaling`. Then the files the report reads are copied into the fixture, with
WORK replaced by the placeholder ``@FIXTURE@`` in every recorded path (tests/report/conftest.py puts the copy's
location back). results.json and scaling.json are re-serialised compactly; their content is unchanged.

test_fixture.py validates the committed files against the current schemas, so a schema change that would make the
fixture stale fails the tests until this script is run again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).parent / "fixture"
PLACEHOLDER = "@FIXTURE@"
RUNS = {"run30": (30, 12), "run60": (60, 10), "run98": (98, 10)}  # subset N, optimizer steps

CONFIG = """[ingest]
resolution = 112
[ingest.split]
train = 0.5
val = 0.2
test = 0.3

[train]
batch_size = 8
log_every = 2
[train.dino]
local_crops = 2
global_crop_size = 112
local_crop_size = 56

[benchmark]
min_positives = 5
c_values = 8
max_iter = 40
refit_iter = 80
seg_epochs = 5
overlays = 1
"""


def _radadapt(*args: object) -> None:
    cmd = [sys.executable, "-m", "radadapt.cli", *map(str, args)]
    print("+ radadapt", " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def build(work: Path) -> None:
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "radadapt.toml"
    cfg.write_text(CONFIG)
    if not (work / "demo" / "demo_archive.json").is_file():
        _radadapt("demo-archive", work / "demo", "--n", 300, "--seed", 0, "--size", 160, "--force")
    if not (work / "ood_demo" / "demo_archive.json").is_file():
        _radadapt("demo-archive", work / "ood_demo", "--n", 120, "--seed", 7, "--size", 160, "--force")
    if not (work / "site" / "site.key").is_file():
        _radadapt("init", work / "site")
    for name, demo, masks in (("store", "demo", True), ("ood_store", "ood_demo", False)):
        if not (work / name / "store.json").is_file():
            extra = ["--masks", work / demo / "masks"] if masks else []
            _radadapt("ingest", work / demo / "archive", "--reports", work / demo / "reports.csv", "--out", work / name,
                      "--site-key", work / "site" / "site.key", "--config", cfg, *extra)
        if not (work / name / "labels.json").is_file():
            _radadapt("labels", work / name)
    if not (work / "open_rd" / "config.json").is_file():
        _radadapt("models", "tiny", "rad-dino", "--out", work / "open_rd")
    for run, (n, steps) in RUNS.items():
        if not (work / run / "final").is_dir():
            shutil.rmtree(work / run, ignore_errors=True)
            _radadapt("train", "--store", work / "store", "--weights", work / "open_rd", "--out", work / run,
                      "--subset", n, "--max-steps", steps, "--config", cfg)
    if not (work / "bench" / "results.json").is_file():
        cands = [a for run in RUNS for a in ("--candidate", work / run)]
        _radadapt("benchmark", "--store", work / "store", "--baseline", work / "open_rd", *cands, "--out",
                  work / "bench", "--ood", work / "ood_store", "--bootstrap", 100, "--config", cfg)
    if not (work / "scaling.json").is_file():
        _radadapt("benchmark", "scaling", work / "bench", "--at", 1000, "--bootstrap", 50, "--out",
                  work / "scaling.json")


def _rel(work: Path, recorded: str) -> str:
    p = Path(recorded)
    p = p if p.is_absolute() else work / p
    return f"{PLACEHOLDER}/{p.resolve().relative_to(work.resolve()).as_posix()}"


def copy_fixture(work: Path) -> None:
    results = json.loads((work / "bench" / "results.json").read_text())
    store = results["store"]
    ood = results["ood"]["store"]
    for ref in (store, ood):
        ref["path"] = _rel(work, ref["path"])
        ref["store_json"] = _rel(work, ref["store_json"])
        if ref.get("labels_json"):
            ref["labels_json"] = _rel(work, ref["labels_json"])
    for m in results["models"]:
        m["path"], m["model_dir"] = _rel(work, m["path"]), _rel(work, m["model_dir"])
        if m.get("run"):
            m["run"]["path"] = _rel(work, m["run"]["path"])
            m["run"]["metrics_jsonl"] = _rel(work, m["run"]["metrics_jsonl"])
    results["cache"]["dir"] = _rel(work, results["cache"]["dir"])
    scaling = json.loads((work / "scaling.json").read_text())
    scaling["inputs"] = [_rel(work, p) for p in scaling["inputs"]]
    for task in scaling["tasks"]:
        for p in task["points"]:
            p["results"] = _rel(work, p["results"])
    shutil.rmtree(FIXTURE, ignore_errors=True)
    (FIXTURE / "bench" / "overlays").mkdir(parents=True)
    compact = {"separators": (",", ":"), "sort_keys": True}
    (FIXTURE / "bench" / "results.json").write_text(json.dumps(results, **compact) + "\n")
    (FIXTURE / "scaling.json").write_text(json.dumps(scaling, **compact) + "\n")
    for name in ("store", "ood_store"):
        (FIXTURE / name).mkdir()
        for f in ("store.json", "labels.json"):
            shutil.copy(work / name / f, FIXTURE / name / f)
    for run in RUNS:
        (FIXTURE / run).mkdir()
        shutil.copy(work / run / "metrics.jsonl", FIXTURE / run / "metrics.jsonl")
    for f in sorted((work / "bench" / "overlays").glob("*.png")):
        shutil.copy(f, FIXTURE / "bench" / "overlays" / f.name)
    print(f"fixture written to {FIXTURE}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="working folder (kept; reruns resume)")
    args = ap.parse_args()
    build(args.work)
    copy_fixture(args.work)


if __name__ == "__main__":
    main()
