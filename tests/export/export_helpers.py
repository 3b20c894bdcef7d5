"""Run directories and benchmark results made to the contracts (docs/architecture.md sections 5 and 6), for the
export tests (imported by conftest.py and by tests that need another variant)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from radadapt import __version__, atomic


def _hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def write_run(run: Path, family: str, model_src: Path, site: dict, *, status: str = "completed",
              base_extra: dict | None = None) -> Path:
    """A completed run directory around a copy of ``model_src`` (as final/), on the demo store."""
    from radadapt.config import TrainSection
    from radadapt.manifest import Store

    store = Store(site["store"])
    patients = sorted({r.patient_key for r in store.records("train")})
    images = sum(1 for _ in store.records("train"))
    shutil.copytree(model_src, run / "final")
    atomic.write_text(run / "train_patients.txt", "".join(p + "\n" for p in patients))
    cfg = TrainSection().model_dump(mode="json")
    atomic.write_json(run / "config.json", {"train": cfg, "precision": "fp32", "resolved": {}})
    atomic.write_jsonl(run / "metrics.jsonl", [{"step": 1, "loss": 9.5, "elapsed_s": 1.0},
                                               {"step": 2, "loss": 8.25, "elapsed_s": 2.0}])
    atomic.write_json(run / "run.json", {
        "format": "radadapt-run", "version": 1, "radadapt_version": __version__, "family": family,
        "status": status, "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
        "base_model": {"path": str(model_src.resolve()), "files": _hashes(model_src), **(base_extra or {})},
        "store": {"store_id": site["store_id"], "path": str(Path(site["store"]).resolve()),
                  "key_fingerprint": site["key_fingerprint"]},
        "subset": None,
        "data": {"images": images, "patients": len(patients),
                 "patients_sha256": hashlib.sha256("\n".join(patients).encode()).hexdigest()},
        "layout": {"batch_size": 4, "accum": 1, "world_size": 1, "global_batch": 4},
        "steps": {"planned": 2, "done": 2, "rule": "--max-steps", "time_budget": None},
        "precision": "fp32", "device": "cpu", "settings": {"lr": 0.00025, "prototypes": 1024},
        "rules": [], "config": cfg, "final": {"files": _hashes(run / "final")},
    })
    return run


def write_results(path: Path, candidate_fingerprint: str, store_id: str, family: str = "rad_dino") -> Path:
    """A schema-valid results.json (radadapt/bench/schema.py) with a baseline and this run as candidate."""
    from radadapt.bench.schema import (BenchmarkResults, CacheInfo, Classification, Difference, Estimate,
                                       LabelCounts, LabelResult, MacroResult, ModelInfo, ProbeInfo, ProbeResult,
                                       SplitCount, StoreRef, TrainingCheck)

    def est(p, lo, hi):
        return Estimate(point=p, low=lo, high=hi, n=40, n_patients=20, n_pos=12, n_neg=28, n_boot=200)

    def probe_result(p):
        return ProbeResult(auroc=est(p, p - 0.05, p + 0.04), auprc=est(0.5, 0.4, 0.6), sensitivity=est(0.7, 0.5, 0.9),
                           specificity=est(0.7, 0.5, 0.9), threshold=0.4)

    probe = "linear:cls"
    counts = {"probe_train": LabelCounts(pos=20, neg=60, excluded=0), "val": LabelCounts(pos=5, neg=15, excluded=0),
              "test": LabelCounts(pos=12, neg=28, excluded=1)}
    labels = [
        LabelResult(label="Pleural Effusion", group="findings", status="evaluated", prevalence=0.3, counts=counts,
                    results={"baseline": {probe: probe_result(0.712)}, "candidate": {probe: probe_result(0.834)}},
                    differences={"candidate": {probe: {"auroc": Difference(point=0.122, low=0.051, high=0.190,
                                                                           verdict="better")}}}),
        LabelResult(label="Hernia", group="findings", status="too_few_positives", counts=counts),
        LabelResult(label="endotracheal tube", group="devices", status="evaluated", prevalence=0.3, counts=counts,
                    results={"baseline": {probe: probe_result(0.655)}, "candidate": {probe: probe_result(0.671)}},
                    differences={"candidate": {probe: {"auroc": Difference(point=0.016, low=-0.041, high=0.070,
                                                                           verdict="no evidence of difference")}}}),
    ]
    macro = [MacroResult(group=g, labels=[lab], excluded_labels=[],
                         results={"baseline": {probe: {"auroc": est(b, b - 0.05, b + 0.05)}},
                                  "candidate": {probe: {"auroc": est(c, c - 0.05, c + 0.05)}}},
                         differences={"candidate": {probe: {"auroc": Difference(point=c - b, low=c - b - 0.06,
                                                                                high=c - b + 0.06, verdict=v)}}})
             for g, lab, b, c, v in (("findings", "Pleural Effusion", 0.712, 0.834, "better"),
                                     ("devices", "endotracheal tube", 0.655, 0.671, "no evidence of difference"))]
    check = TrainingCheck(status="disjoint", n_train_patients=23)
    models = [ModelInfo(name="baseline", role="baseline", path="/site/base", model_dir="/site/base", kind="weights",
                        family=family, fingerprint="b" * 64, embed_dim=64, input_size=112,
                        training_check=TrainingCheck(status="open_weights")),
              ModelInfo(name="candidate", role="candidate", path="/site/run", model_dir="/site/run/final", kind="run",
                        family=family, fingerprint=candidate_fingerprint, embed_dim=64, input_size=112,
                        training_check=check)]
    res = BenchmarkResults(
        radadapt_version="test", created="2026-01-01T00:00:00Z",
        store=StoreRef(path="/site/store", store_id=store_id, n_images=44, splits={"train": 38, "val": 2, "test": 4},
                       store_json="/site/store/store.json"),
        settings={"bootstrap": 200}, models=models,
        splits={"probe_train": SplitCount(images=38, patients=23, labelled=38),
                "val": SplitCount(images=20, patients=10, labelled=20),
                "test": SplitCount(images=40, patients=20, labelled=40)},
        probes=[ProbeInfo(name=probe, kind="linear", features="cls", settings={})], headline_probe=probe,
        classification=Classification(labels=labels, macro=macro), cache=CacheInfo(dir="/site/cache", models={}),
    )
    path.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path / "results.json", res.model_dump_json(indent=2))
    return path / "results.json"
