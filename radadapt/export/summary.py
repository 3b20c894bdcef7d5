"""What the model card says about the data, the benchmark and the base weights, as plain aggregates.

Training data: counts only (images, patients, images per split) and breakdowns of the training images by view,
manufacturer, sex and age band, streamed from the store's manifest (bounded memory apart from the set of training
patients when a subset was used). Cells below ``min_cell`` are shown as ``<min_cell``, with a second cell
suppressed when only one would be (so a total minus the others cannot reveal it). No key, path or date is
returned. Benchmark: the headline probe's macro and per-label AUROC with 95% CIs for the open weights and this
model, from ``results.json``, matched to the run by encoder fingerprint.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from radadapt.errors import DataError

AGE_BANDS = ("0-17", "18-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90+")


def _age_band(age: int | None) -> str:
    if age is None:
        return "unknown"
    if age < 18:
        return AGE_BANDS[0]
    if age < 30:
        return AGE_BANDS[1]
    return AGE_BANDS[min(8, age // 10 - 1)]


def suppress(counts: dict[str, int], min_cell: int) -> list[tuple[str, int | str]]:
    """Rows (value, count or '<min_cell'), largest first; primary and complementary small-cell suppression."""
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    small = {k for k, v in rows if 0 < v < min_cell}
    if len(small) == 1 and len(rows) > 1:  # one hidden cell could be recomputed from the total
        others = [k for k, _v in sorted(rows, key=lambda kv: kv[1]) if k not in small]
        small.add(others[0])
    return [(k, f"<{min_cell}" if k in small else v) for k, v in rows]


def training_data(run: dict, run_dir: Path, store_path: Path | None, *, min_cell: int, manufacturers: bool,
                  progress: Any = None) -> dict[str, Any]:
    """Aggregates of the run's training images; without a readable store, the counts run.json records."""
    data = run.get("data") or {}
    out: dict[str, Any] = {"images": data.get("images"), "patients": data.get("patients"),
                           "subset": run.get("subset"), "store_id": (run.get("store") or {}).get("store_id"),
                           "breakdowns": None, "splits": None, "note": None, "min_cell": min_cell}
    if store_path is None or not (Path(store_path) / "store.json").is_file():
        out["note"] = "the store was not available at export, so only the counts recorded by training are shown"
        return out
    from radadapt.manifest import Store

    store = Store(store_path)
    if store.info.store_id != out["store_id"]:
        out["note"] = "the store found at export is not the one the run used, so only recorded counts are shown"
        return out
    out["splits"] = {s: int(store.info.splits.get(s, 0)) for s in ("train", "val", "test")}
    patients = None
    if run.get("subset") is not None:  # only a subset of the train split was used: restrict to its patients
        with open(run_dir / "train_patients.txt", encoding="utf-8") as fh:
            patients = {line.strip() for line in fh if line.strip()}
    views: Counter[str] = Counter()
    makers: Counter[str] = Counter()
    sexes: Counter[str] = Counter()
    ages: Counter[str] = Counter()
    task = progress.add_task("training data summary", total=store.info.n_images) if progress is not None else None
    with open(store.manifest_path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if task is not None and n % 10_000 == 0:
                progress.advance(task, 10_000)
            if not line.strip():
                continue
            row = json.loads(line)  # plain json: the allow-listed fields only are read
            if row.get("split") != "train" or (patients is not None and row.get("patient_key") not in patients):
                continue
            views[row.get("view") or "unknown"] += 1
            makers[(row.get("manufacturer") or "unknown").strip() or "unknown"] += 1
            sexes[row.get("sex") or "unknown"] += 1
            ages[_age_band(row.get("age"))] += 1
    if task is not None:
        progress.update(task, completed=store.info.n_images)
    breakdowns = {"view": suppress(views, min_cell), "sex": suppress(sexes, min_cell),
                  "age": sorted(suppress(ages, min_cell), key=lambda r: (r[0] == "unknown", r[0]))}
    if manufacturers:
        breakdowns["manufacturer"] = suppress(makers, min_cell)
    out["breakdowns"] = breakdowns
    out["breakdown_images"] = sum(views.values())
    return out


# -- benchmark -----------------------------------------------------------------------------------------------------
def results_file(path: Path) -> Path:
    p = Path(path)
    return p / "results.json" if p.is_dir() else p


def load_results(path: Path):  # noqa: ANN201 - BenchmarkResults
    from pydantic import ValidationError

    from radadapt.bench.schema import BenchmarkResults

    p = results_file(path)
    if not p.is_file():
        raise DataError("export.no_results", f"no benchmark results at {p}",
                        hint="pass the results.json (or its folder) that `radadapt benchmark --out` wrote")
    try:
        return BenchmarkResults.model_validate_json(p.read_text(encoding="utf-8"))
    except (ValidationError, ValueError, UnicodeDecodeError):
        raise DataError("export.bad_results", f"{p.name} is not a radadapt benchmark results file",
                        hint="re-run `radadapt benchmark`; the results format may be from another version") from None


def _est(e) -> dict | None:  # noqa: ANN001 - Estimate | None
    if e is None or e.point is None:
        return None
    return {"point": e.point, "low": e.low, "high": e.high, "n": e.n, "n_pos": e.n_pos, "n_neg": e.n_neg}


def _diff(d) -> dict | None:  # noqa: ANN001 - Difference | None
    if d is None:
        return None
    return {"point": d.point, "low": d.low, "high": d.high, "verdict": d.verdict}


def benchmark(results, fingerprint: str, store_id: str | None) -> dict[str, Any]:  # noqa: ANN001
    """The card's evaluation section for the candidate whose encoder fingerprint is ``fingerprint``."""
    cands = [m for m in results.models if m.role == "candidate" and m.fingerprint == fingerprint]
    if not cands:
        raise DataError(
            "export.results_mismatch",
            "the benchmark results do not include this run's model (no candidate has its encoder fingerprint)",
            hint="benchmark this run (`radadapt benchmark --candidate RUN ...`) and pass that results.json",
        )
    cand = cands[0].name
    base = next((m for m in results.models if m.role == "baseline"), None)
    probe = results.headline_probe
    macro = []
    for m in results.classification.macro:
        r = m.results
        macro.append({
            "group": m.group, "labels": len(m.labels),
            "baseline": _est(r.get(base.name, {}).get(probe, {}).get("auroc")) if base else None,
            "candidate": _est(r.get(cand, {}).get(probe, {}).get("auroc")),
            "difference": _diff(m.differences.get(cand, {}).get(probe, {}).get("auroc")),
        })
    labels = []
    for lab in results.classification.labels:
        row = {"label": lab.label, "group": lab.group, "status": lab.status, "test": None,
               "baseline": None, "candidate": None, "difference": None}
        test = lab.counts.get("test")
        if test is not None:
            row["test"] = {"pos": test.pos, "neg": test.neg}
        if lab.status == "evaluated":
            if base is not None and probe in lab.results.get(base.name, {}):
                row["baseline"] = _est(lab.results[base.name][probe].auroc)
            if probe in lab.results.get(cand, {}):
                row["candidate"] = _est(lab.results[cand][probe].auroc)
            row["difference"] = _diff(lab.differences.get(cand, {}).get(probe, {}).get("auroc"))
        labels.append(row)
    out: dict[str, Any] = {
        "candidate": cand, "probe": probe, "baseline_family": base.family if base else None,
        "baseline_fingerprint": base.fingerprint if base else None,
        "bootstrap": results.settings.get("bootstrap"), "macro": macro, "labels": labels,
        "test": results.splits.get("test").model_dump() if results.splits.get("test") else None,
        "training_check": cands[0].training_check.status, "same_store": results.store.store_id == store_id,
        "segmentation": _segmentation(results, base.name if base else None, cand),
        "zeroshot": _zeroshot(results, cand), "ood": _ood(results, base.name if base else None, cand, probe),
        "warnings": len(results.warnings),
    }
    return out


def _segmentation(results, base: str | None, cand: str) -> list[dict]:  # noqa: ANN001
    seg = results.segmentation
    if seg is None or seg.status != "evaluated":
        return []
    rows = []
    for head in seg.heads:
        rows.append({
            "head": head,
            "baseline": _est(seg.results.get(base, {}).get(head, {}).get("all", {}).get("dice")) if base else None,
            "candidate": _est(seg.results.get(cand, {}).get(head, {}).get("all", {}).get("dice")),
            "difference": _diff(seg.differences.get(cand, {}).get(head, {}).get("all", {}).get("dice")),
        })
    return rows


def _zeroshot(results, cand: str) -> dict | None:  # noqa: ANN001
    z = next((z for z in results.zeroshot if z.model == cand), None)
    if z is None:
        return None
    return {"macro": {g: _est(e) for g, e in z.macro_auroc.items()},
            "retrieval": {k: _est(e) for k, e in z.retrieval.items()}, "gallery": z.retrieval_gallery,
            "differences": {k: _diff(d) for k, d in z.differences.items()}}


def _ood(results, base: str | None, cand: str, probe: str) -> dict | None:  # noqa: ANN001
    if results.ood is None:
        return None
    rows = []
    for m in results.ood.classification.macro:
        rows.append({"group": m.group,
                     "baseline": _est(m.results.get(base, {}).get(probe, {}).get("auroc")) if base else None,
                     "candidate": _est(m.results.get(cand, {}).get(probe, {}).get("auroc")),
                     "difference": _diff(m.differences.get(cand, {}).get(probe, {}).get("auroc"))})
    return {"images": results.ood.n_images, "macro": rows, "warnings": len(results.ood.warnings)}


# -- base weights ----------------------------------------------------------------------------------------------
def base_licence(family: str, base: dict, base_is_tiny: bool, note: str | None) -> dict[str, Any]:
    """The licence of the base weights as recorded, never guessed."""
    repo = base.get("repo")
    if base_is_tiny:
        out = {"name": "none", "text": "random tiny weights generated by radadapt (`radadapt models tiny`); "
                                       "no third-party licence applies"}
    elif family == "rad_dino" and repo == "microsoft/rad-dino" and not base.get("earlier_export"):
        out = {"name": "MIT", "text": "MIT, as published for microsoft/rad-dino (revisions since hub PR #9; "
                                      "earlier revisions were under the MSRLA): check the LICENSE file of the "
                                      "recorded commit"}
    elif family == "rad_dino" and base.get("earlier_export") and repo == "microsoft/rad-dino":
        out = {"name": "MIT", "text": "MIT, as published for microsoft/rad-dino, the base of the earlier export "
                                      "this run continued: check the LICENSE file of the recorded commit"}
    elif family == "mi2" and repo == "lion-ai/MedImageInsights":
        out = {"name": "unknown", "text": f"not established: the hub repository {repo} is a third-party re-upload "
                                          "of Microsoft's MedImageInsight (tagged MIT on the hub); Microsoft's own "
                                          "terms were not verified: check them before redistributing"}
    else:
        out = {"name": "unknown", "text": "unknown: the base weights were not pulled from a known repository; "
                                          "record their licence before sharing this model"}
    out["note"] = note
    return out
