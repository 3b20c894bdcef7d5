"""``radadapt benchmark``: is the site model better than the open weights, on this hospital's own tasks?

Steps: identify every model (fail fast on unknown formats); pick the images (probe-training sample of the train
split, validation, test; an out-of-domain store if given); refuse a model pretrained on a test patient; build
binary targets; then for one model at a time extract (or reuse) frozen features and fit the probes, the
segmentation heads and zero-shot scores; finally bootstrap everything on the same patient replicates and write
``RESULTS/results.json`` (schema: ``radadapt/bench/schema.py``, docs/benchmark.md).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from radadapt import __version__, atomic, console
from radadapt.bench import contenders as C
from radadapt.bench import results as R
from radadapt.bench import targets as T
from radadapt.bench.schema import (BenchmarkResults, CacheInfo, ModelInfo, OODResult, ProbeInfo, SplitCount,
                                   StoreRef)
from radadapt.bench.scoring import ModelScores, SegCohorts, score_model
from radadapt.config import BenchSection
from radadapt.errors import DataError, UsageError
from radadapt.manifest import Store

RESULTS_FILE = "results.json"


@dataclass
class BenchmarkRequest:
    store: Path
    baseline: Path
    candidates: list[Path]
    out: Path
    ood: Path | None = None
    masks: Path | None = None
    bootstrap: int | None = None
    device: str = "cpu"
    config: BenchSection = field(default_factory=BenchSection)


def _store_ref(store: Store) -> StoreRef:
    info = store.labels_info() if store.has_labels() else None
    return StoreRef(path=str(store.path), store_id=store.info.store_id, n_images=store.info.n_images,
                    splits=dict(store.info.splits), store_json=str(store.path / "store.json"),
                    labels_json=str(store.path / "labels.json") if info else None,
                    label_columns=(info.findings + info.devices) if info else [])


def _open_ood(path: Path, main: Store, columns: dict[str, str]) -> Store:
    ood = Store(path)
    if ood.info.store_id == main.info.store_id:
        raise UsageError("bench.ood_same_store", "--ood names the same store as --store",
                         hint="pass a store from another site or a public set, ingested with radadapt")
    theirs = T.label_columns(ood)
    missing = [c for c in columns if c not in theirs]
    extra = [c for c in theirs if c not in columns]
    if missing or extra:
        shown = ", ".join((missing + extra)[:4])
        raise DataError(
            "bench.ood_schema_mismatch",
            f"the --ood store's labels use a different schema ({len(missing)} column(s) missing, {len(extra)} extra: "
            f"{shown}{'...' if len(missing) + len(extra) > 4 else ''})",
            hint="label both stores with the same labels schema (`radadapt labels STORE --schema ...`)",
        )
    return ood


def _seg_cohorts(store: Store, masks: Path | None, cohorts: dict[str, T.Cohort], cfg: BenchSection,
                 warnings: list[str]) -> tuple[SegCohorts | None, str | None]:
    from radadapt.bench.segmentation import read_mask_index

    root = masks if masks is not None else store.path / "masks"
    if masks is None and not (root / "index.jsonl").is_file():
        return None, "the store has no masks and no --masks folder was given"
    index = read_mask_index(root)
    rows, dev_count = {}, {}
    for cname in ("probe_train", "val", "test"):
        co = cohorts[cname]
        r = [i for i, k in enumerate(co.image_keys) if k in index][: cfg.seg_images]
        rows[cname] = np.asarray(r, dtype=np.int64)
        for i in r:
            for device, _ in index[co.image_keys[i]]:
                dev_count.setdefault(device, {}).setdefault(cname, 0)
                dev_count[device][cname] += 1
    devices = sorted(d for d, c in dev_count.items() if c.get("probe_train", 0) >= 2 and c.get("test", 0) >= 1)
    for d in sorted(set(dev_count) - set(devices)):
        warnings.append(f"segmentation: too few masks of '{d}' (needs 2 in probe_train, 1 in test); not segmented")
    if not devices or any(rows[c].size == 0 for c in rows):
        return None, "too few images with masks in probe_train / val / test"
    return SegCohorts(rows=rows, devices=devices, masks=index), None


def run_benchmark(req: BenchmarkRequest) -> BenchmarkResults:
    cfg = req.config
    n_boot = cfg.bootstrap if req.bootstrap is None else req.bootstrap
    if n_boot < 0:
        raise UsageError("bench.bad_bootstrap", "--bootstrap must be 0 or more")
    warnings: list[str] = []
    store = Store(req.store)
    columns = T.label_columns(store)
    names = list(columns)
    models = [C.resolve(req.baseline, "baseline", "baseline")]
    for i, cand in enumerate(req.candidates):
        models.append(C.resolve(cand, "candidate" if len(req.candidates) == 1 else f"candidate-{i + 1}", "candidate"))
    ood_store = _open_ood(req.ood, store, columns) if req.ood is not None else None
    keep_reports = ("test",) if any(m.family == "mi2" for m in models) else ()
    cohorts = T.select_cohorts(store, {"probe_train": cfg.probe_train_images, "val": cfg.eval_images,
                                       "test": cfg.eval_images}, seed=cfg.seed, keep_reports=keep_reports,
                               splits_as={"train": "probe_train", "val": "val", "test": "test"})
    for cname, co in cohorts.items():
        if len(co) == 0:
            raise DataError("bench.empty_split", f"the store has no images in the {cname.replace('probe_', '')} split",
                            hint="a benchmark needs train (to fit probes), val and test images; check the store's "
                                 "[ingest.split] fractions")
    test_patients, val_patients = set(cohorts["test"].patient_keys), set(cohorts["val"].patient_keys)
    for m in models:
        m.check = C.check_training(m, test_patients, val_patients, store.info.store_id)
        if m.check.status == "unverified" or m.check.message:
            warnings.append(f"{m.name}: {m.check.message}")
            console.warn(f"{m.name}: {m.check.message}")
    targets, tstats = T.build_targets(store, cohorts, columns, cfg.uncertain)
    if tstats["unknown_values"]:
        warnings.append(f"{tstats['unknown_values']} label value(s) were not recognised and were excluded")
    counts = {n: {c: R.label_counts(targets[c], j) for c in cohorts} for j, n in enumerate(names)}
    statuses = {n: R.label_status(counts[n], cfg.min_positives) for n in names}
    label_idx = np.array([j for j, n in enumerate(names) if statuses[n][0] == "evaluated"], dtype=np.int64)
    if label_idx.size == 0:
        msg = "no label has enough positives and negatives to evaluate (see each label's status)"
        warnings.append(msg)
        console.warn(msg)
    ood = None
    if ood_store is not None:
        oc = T.select_cohorts(ood_store, {"ood": cfg.ood_images}, seed=cfg.seed,
                              splits_as={"train": "ood", "val": "ood", "test": "ood"})["ood"]
        if len(oc) == 0:
            raise DataError("bench.empty_ood", "the --ood store has no images")
        ood_targets, _ = T.build_targets(ood_store, {"ood": oc}, columns, cfg.uncertain)
        ood = (ood_store, oc, ood_targets["ood"])
    seg, seg_reason = (None, "disabled in the config")
    if cfg.segmentation:
        seg, seg_reason = _seg_cohorts(store, req.masks, cohorts, cfg, warnings)
    req.out.mkdir(parents=True, exist_ok=True)
    cache_root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else req.out / "cache"
    scored: list[ModelScores] = []
    with console.progress() as bar:
        for m in models:
            console.info(f"{m.name}: {m.family} model from {m.path}")
            s = score_model(m.name, m.model_dir, store, cohorts, targets, label_idx, columns, cfg,
                            cache_root=cache_root, device=req.device, ood=None if ood is None else ood[:2], seg=seg,
                            overlay_dir=req.out / "overlays", progress=bar)
            scored.append(s)
            warnings.extend(s.warnings)
            gc.collect()
    for s in scored[1:]:
        if s.fingerprint == scored[0].fingerprint:
            msg = f"{s.name} has the same weights as the baseline (fingerprint {s.fingerprint[:12]}): differences are 0"
            warnings.append(msg)
            console.warn(msg)
    return _assemble(req, cfg, n_boot, store, models, scored, cohorts, targets, names, columns, counts, statuses,
                     label_idx, ood, seg, seg_reason, cache_root, warnings)


def _assemble(req, cfg, n_boot, store, models, scored, cohorts, targets, names, columns, counts, statuses,
              label_idx, ood, seg, seg_reason, cache_root, warnings) -> BenchmarkResults:
    by_name = {s.name: s for s in scored}
    test = cohorts["test"]
    classification = R.classification(names, columns, counts, statuses, label_idx, targets["test"],
                                      test.patient_keys, scored, "baseline", "test", n_boot, cfg.seed)
    seg_result = None
    if cfg.segmentation:
        if seg is None:
            from radadapt.bench.schema import SegmentationResult

            seg_result = SegmentationResult(status="skipped", message=seg_reason)
        else:
            pats = [test.patient_keys[i] for i in seg.rows["test"]]
            seg_result = R.segmentation(scored, "baseline", seg.devices, {c: int(r.size) for c, r in seg.rows.items()},
                                        pats, n_boot, cfg.seed, scored[0].input_size, cfg.seg_tolerance_px)
    zs = R.zero_shot(scored, "baseline", names, columns, statuses, label_idx, targets["test"], test.patient_keys,
                     n_boot, cfg.seed)
    ood_result = _ood_section(ood, names, columns, counts, statuses, label_idx, scored, cfg, n_boot) if ood else None
    if ood_result:
        warnings.extend(ood_result.warnings)
    probes = [ProbeInfo(name=p, kind=o.kind, features=o.features, settings=_probe_settings(o.kind, cfg))
              for p, o in scored[0].probes.items()]
    infos = [ModelInfo(name=m.name, role=m.role, path=str(m.path), model_dir=str(m.model_dir), kind=m.kind,
                       family=by_name[m.name].family, fingerprint=by_name[m.name].fingerprint,
                       embed_dim=by_name[m.name].embed_dim, input_size=by_name[m.name].input_size, run=m.run,
                       training_check=m.check) for m in models]
    splits = {c: SplitCount(images=len(co), patients=co.n_patients,
                            labelled=int(targets[c].mask.any(axis=1).sum()) if len(co) else 0)
              for c, co in cohorts.items()}
    results = BenchmarkResults(
        radadapt_version=__version__, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        store=_store_ref(store), settings={**cfg.model_dump(mode="json"), "bootstrap": n_boot, "device": req.device},
        models=infos, splits=splits, probes=probes,
        headline_probe=probes[0].name if probes else "none", classification=classification,
        segmentation=seg_result, zeroshot=zs, ood=ood_result,
        cache=CacheInfo(dir=str(cache_root), models={s.name: s.cache for s in scored}), warnings=warnings,
    )
    atomic.write_json(req.out / RESULTS_FILE, results.model_dump(mode="json"))
    return results


def _probe_settings(kind: str, cfg: BenchSection) -> dict:
    if kind == "linear":
        return {"c_values": cfg.c_values, "c_min": cfg.c_min, "c_max": cfg.c_max, "c_patience": cfg.c_patience,
                "select": "val AUROC",
                "threshold": "val Youden J", "standardise": "probe_train mean/std"}
    if kind == "knn":
        return {"k": cfg.knn_k, "temperature": cfg.knn_temperature, "similarity": "cosine"}
    return {"pooling": "attentive", "select": "val macro AUROC"}


def _ood_section(ood, names, columns, counts, statuses, label_idx, scored, cfg, n_boot) -> OODResult:
    ood_store, oc, ot = ood
    o_counts = {n: {**counts[n], "ood": R.label_counts(ot, j)} for j, n in enumerate(names)}
    o_status = {}
    for n in names:
        if statuses[n][0] != "evaluated":
            o_status[n] = (statuses[n][0], f"not evaluated on the main store: {statuses[n][1]}")
        else:
            o_status[n] = R.label_status({"test": o_counts[n]["ood"]}, cfg.min_positives, fit_splits=False)
    cls = R.classification(names, columns, o_counts, o_status, label_idx, ot, oc.patient_keys, scored, "baseline",
                           "ood", n_boot, cfg.seed)
    warnings = []
    for lab in cls.labels + cls.macro:
        name = getattr(lab, "label", None) or f"{lab.group} macro"
        for cand, by_probe in lab.differences.items():
            for probe, by_metric in by_probe.items():
                d = by_metric.get("auroc")
                if d is not None and d.verdict == "worse":
                    warnings.append(f"OUT-OF-DOMAIN: {cand} is WORSE than the baseline on {name} ({probe}: AUROC "
                                    f"{d.point:+.3f}, 95% CI {d.low:+.3f} to {d.high:+.3f})")
    for w in warnings:
        console.warn(w)
    return OODResult(store=_store_ref(ood_store), n_images=len(oc), classification=cls, warnings=warnings)
