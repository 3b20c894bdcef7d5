"""The models a benchmark compares: what each path is, and whether it ever saw a test patient.

A MODEL path is a training run (``run.json``), an export (``provenance.json``) or a model directory of either
family (docs/architecture.md §4). Families are detected before anything heavy starts, so an unknown format
fails in a second, not after an hour of feature extraction.

Leakage check (docs/architecture.md §5): a run records the patients whose images it pretrained on in
``train_patients.txt`` (its sha256 in ``run.json``). A run that trained on any test patient is refused, since its
test numbers would be optimistic; one without the record is refused too (it cannot be checked). An export carries
no patient list (exports hold no pseudonyms), so it gets a loud warning; open weights never saw this site.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from radadapt.bench.schema import RunInfo, TrainingCheck
from radadapt.errors import DataError, ModelError


@dataclass
class Contender:
    name: str
    role: str  # baseline | candidate
    path: Path
    model_dir: Path
    kind: str  # run | export | weights
    family: str
    run: RunInfo | None = None
    check: TrainingCheck | None = None


def _read_json(path: Path, code: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ModelError(code, f"{path} is missing or damaged") from None


def resolve(path: str | Path, name: str, role: str) -> Contender:
    """Identify a MODEL path (raises models.* errors for unknown formats or unfinished runs)."""
    from radadapt.models import registry

    p = Path(path)
    family = registry.detect_family(p)
    model_dir = registry.resolve_model_dir(p)
    run = None
    if (p / "run.json").is_file():
        kind = "run"
        meta = _read_json(p / "run.json", "bench.bad_run")
        data = meta.get("data") or {}
        metrics = p / "metrics.jsonl"
        run = RunInfo(path=str(p), metrics_jsonl=str(metrics) if metrics.is_file() else None,
                      subset_n=data.get("images") or meta.get("subset"),
                      store_id=(meta.get("store") or {}).get("store_id"), status=meta.get("status"))
    elif (p / "provenance.json").is_file() or (model_dir / "provenance.json").is_file():
        kind = "export"
    else:
        kind = "weights"
    return Contender(name=name, role=role, path=p, model_dir=model_dir, kind=kind, family=family, run=run)


def read_train_patients(run_dir: Path) -> set[str]:
    """The run's pretraining patients, checked against the digest in run.json when it has one."""
    f = run_dir / "train_patients.txt"
    if not f.is_file():
        raise DataError(
            "bench.no_training_record",
            f"run {run_dir} does not record which patients it trained on (no train_patients.txt)",
            hint="benchmark only runs made by `radadapt train`, which writes that record",
        )
    patients = [line.strip() for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    meta = _read_json(run_dir / "run.json", "bench.bad_run")
    digest = (meta.get("data") or {}).get("patients_sha256")
    if digest and hashlib.sha256("\n".join(patients).encode()).hexdigest() != digest:
        raise DataError("bench.training_record_mismatch",
                        f"train_patients.txt of run {run_dir} does not match the digest in its run.json",
                        hint="the record was edited or damaged; re-create the run")
    return set(patients)


def check_training(c: Contender, test_patients: set[str], val_patients: set[str], store_id: str) -> TrainingCheck:
    """Refuse a run that pretrained on a test patient; say what could not be checked."""
    if c.kind == "run":
        trained = read_train_patients(c.path)
        overlap = len(trained & test_patients)
        if overlap:
            raise DataError(
                "bench.test_leak",
                f"model '{c.name}' ({c.path}) was pretrained on {overlap} patient(s) of this store's test split",
                hint="benchmark it on a store whose test patients it never saw (training uses only the train split; "
                     "was the run trained on a different store that shares patients?)",
            )
        msg = None
        if trained & val_patients:
            msg = (f"pretrained on {len(trained & val_patients)} validation patient(s): C and thresholds are chosen "
                   "on validation, so its numbers may be slightly optimistic")
        elif c.run and c.run.store_id and c.run.store_id != store_id:
            msg = "trained on another store; checked by patient pseudonyms (same site key needed)"
        return TrainingCheck(status="disjoint", n_train_patients=len(trained), message=msg)
    if c.kind == "export":
        return TrainingCheck(status="unverified", message=(
            "an export carries no record of its training patients: cannot verify it never saw a test patient; "
            "benchmark the training run directory instead"))
    if c.role == "baseline":
        return TrainingCheck(status="open_weights", message=None)
    return TrainingCheck(status="unverified", message=(
        "a bare model directory carries no record of its training patients: if it was trained on this store, "
        "benchmark its run directory instead"))
