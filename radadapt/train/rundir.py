"""The run record: ``RUN/run.json`` (written, updated, read back) and the checks a resume makes against it.

run.json is rank 0's account of a run (docs/architecture.md section 5, docs/training.md "The run directory"):
what it started from (base model files and their sha256, the store id and path, the subset, the training
patients' digest), how it is laid out (batch, accumulation, processes), how long it is (planned and done steps
and the rule that set them), the resolved settings, and its status. Every write is atomic.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from radadapt import __version__, atomic
from radadapt.errors import DataError, UsageError

RUN_FILE, CONFIG_FILE, PATIENTS_FILE = "run.json", "config.json", "train_patients.txt"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def patients_digest(patients: list[str]) -> str:
    return hashlib.sha256("\n".join(patients).encode()).hexdigest()


def base_info(weights: Path, files: dict[str, str]) -> dict[str, Any]:
    info: dict[str, Any] = {"path": str(weights.resolve()), "files": files}
    pull = weights / "pull.json"
    if pull.is_file():
        try:
            rec = json.loads(pull.read_text(encoding="utf-8"))
            info.update({k: rec.get(k) for k in ("repo", "revision", "commit")})
        except ValueError:
            pass
    return info


def write_run(out: Path, s: Any, *, status: str, planned: int | None, done: int, rule: str,
               budget: str | None) -> None:
    info = s.store.info
    atomic.write_json(out / RUN_FILE, {
        "format": "radadapt-run", "version": 1, "radadapt_version": __version__, "family": s.family,
        "status": status, "created_at": now(), "updated_at": now(),
        "base_model": base_info(s.weights, getattr(s.objective, "base_files", {})),
        "store": {"store_id": info.store_id, "path": str(s.store_path.resolve()), "key_fingerprint": info.key_fingerprint},
        "subset": s.subset,
        "data": {"images": len(s.training_set.index), "patients": len(s.training_set.patients),
                 "patients_sha256": patients_digest(s.training_set.patients)},
        "layout": {"batch_size": s.cfg.batch_size, "accum": s.cfg.accum, "world_size": s.env.world_size,
                   "global_batch": s.global_batch},
        "steps": {"planned": planned, "done": done, "rule": rule, "time_budget": budget},
        "precision": s.precision, "device": s.device,
        "settings": s.objective.settings.values, "rules": s.objective.settings.rules,
        "config": s.cfg.model_dump(mode="json"),
    })


def read_run(run_dir: Path) -> dict[str, Any]:
    import json

    try:
        return json.loads((run_dir / RUN_FILE).read_text(encoding="utf-8"))
    except OSError:
        raise UsageError("train.not_a_run", f"{run_dir} is not a training run (no {RUN_FILE})",
                         hint="start one with `radadapt train --model rad-dino --store STORE --weights DIR --out RUN`") from None
    except ValueError:
        raise DataError("train.bad_run", f"{run_dir}/{RUN_FILE} is damaged") from None


def update_run(run_dir: Path, *, planned: int | None = None, done: int | None = None, status: str | None = None,
                **extra: Any) -> None:
    run = read_run(run_dir)
    if planned is not None:
        run["steps"]["planned"] = planned
    if done is not None:
        run["steps"]["done"] = done
    if status is not None:
        run["status"] = status
    run.update(extra)
    run["updated_at"] = now()
    atomic.write_json(run_dir / RUN_FILE, run)


def check_same_inputs(run: dict, s: Any) -> None:
    from radadapt.models.encoder import sha256_file

    if s.store.info.store_id != run["store"]["store_id"]:
        raise DataError("train.store_changed", "the store at the recorded path is not the one this run started from",
                        hint="restore the original store, or start a new run")
    if patients_digest(s.training_set.patients) != run["data"]["patients_sha256"] or \
            len(s.training_set.index) != run["data"]["images"]:
        raise DataError("train.store_changed", "the store's training images changed since the run started",
                        hint="a resumed run must see the same images; start a new run on the updated store")
    for name, digest in run["base_model"]["files"].items():
        path = s.weights / name
        if not path.is_file() or sha256_file(path) != digest:
            raise DataError("train.base_changed", f"base model file {name} is missing or changed since the run started",
                            hint="restore the original --weights directory, or start a new run")
    if s.objective.settings.values != run["settings"]:
        raise DataError("train.settings_changed", "this radadapt resolves the run's settings differently",
                        hint="resume with the radadapt version that started the run")
