"""Assembling results.json sections from the models' scores: labels, macro averages, segmentation, zero-shot.

Label status rules (a label is never dropped silently; it stays in the file with its counts and a reason):

- ``no_positives``: no positive test image;
- ``too_few_positives``: fewer than ``min_positives`` test positives, or fewer than 2 probe-training or 1
  validation positive (a probe cannot be fitted or tuned);
- ``too_few_negatives``: the same for negatives;
- otherwise ``evaluated``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from radadapt.bench import evaluation as E
from radadapt.bench.bootstrap import PatientBootstrap
from radadapt.bench.probes import LabelTargets
from radadapt.bench.schema import (Classification, Estimate, LabelCounts, LabelResult, MacroResult, ProbeResult,
                                   SegmentationResult, ZeroShotResult)
from radadapt.bench.scoring import ModelScores
from radadapt.bench.zeroshot import PROMPT_SET, RECALL_KS


def label_counts(t: LabelTargets, j: int) -> LabelCounts:
    m = t.mask[:, j]
    pos = int((t.y[:, j].astype(bool) & m).sum())
    return LabelCounts(pos=pos, neg=int(m.sum()) - pos, excluded=int((~m).sum()))


def label_status(counts: dict[str, LabelCounts], min_positives: int, fit_splits: bool = True) -> tuple[str, str | None]:
    test = counts["test"]
    if test.pos == 0:
        return "no_positives", "no positive image in the test split"
    need = [("test", min_positives)] + ([("probe_train", 2), ("val", 1)] if fit_splits else [])
    for kind in ("pos", "neg"):
        for split, k in need:
            have = getattr(counts[split], kind)
            if have < k:
                word = "positive" if kind == "pos" else "negative"
                status = "too_few_positives" if kind == "pos" else "too_few_negatives"
                return status, f"{have} {word} image(s) in {split} (needs {k})"
    return "evaluated", None


def _probe_result(est: dict[str, Estimate], thr: float, c: float | None, val_auc: float | None,
                  counts: dict) -> ProbeResult:
    empty = Estimate(point=None, **counts)
    return ProbeResult(auroc=est.get("auroc", empty), auprc=est.get("auprc", empty),
                       sensitivity=est.get("sensitivity", empty), specificity=est.get("specificity", empty),
                       threshold=E._r(thr) if np.isfinite(thr) else None, c=c, val_auroc=E._r(val_auc)
                       if val_auc is not None and np.isfinite(val_auc) else None)


def classification(names: Sequence[str], groups: dict[str, str], counts: dict[str, dict[str, LabelCounts]],
                   statuses: dict[str, tuple[str, str | None]], label_idx: np.ndarray, t: LabelTargets,
                   patients: Sequence[str], models: Sequence[ModelScores], baseline: str, cohort: str,
                   n_boot: int, seed: int) -> Classification:
    """Per-label results on ``cohort`` (test or ood) and macro averages per group."""
    boot = PatientBootstrap(np.asarray(patients), n_boot, seed)
    candidates = [m.name for m in models if m.name != baseline]
    evaluated = {names[i]: e for e, i in enumerate(label_idx)}
    sub = LabelTargets(t.y[:, label_idx], t.mask[:, label_idx])
    scores = {m.name: {p: o.scores[cohort] for p, o in m.probes.items() if cohort in o.scores} for m in models}
    thresholds = {m.name: {p: o.thresholds for p, o in m.probes.items()} for m in models}
    labels, reps_by_group = [], {"findings": [], "devices": []}
    for name in names:
        c = counts[name]
        status, msg = statuses[name]
        tc = c.get(cohort, c["test"])
        prev = tc.pos / (tc.pos + tc.neg) if tc.pos + tc.neg else None
        res = LabelResult(label=name, group=groups[name], status=status, message=msg, counts=c,
                          prevalence=None if prev is None else round(prev, 6))
        if name in evaluated and status == "evaluated":
            e = evaluated[name]
            rep = E.replicate_label(boot, sub, e, scores, thresholds)
            m = sub.mask[:, e]
            n_counts = {"n": int(m.sum()), "n_patients": len(set(np.asarray(patients)[m])), "n_pos": tc.pos,
                        "n_neg": tc.neg}
            est = E.label_estimates(rep, n_counts)
            for model in models:
                for probe, o in model.probes.items():
                    if probe not in est.get(model.name, {}):
                        continue
                    res.results.setdefault(model.name, {})[probe] = _probe_result(
                        est[model.name][probe], float(o.thresholds[e]), None if o.c is None else float(o.c[e]),
                        None if o.val_auroc is None else float(o.val_auroc[e]), n_counts)
            res.differences = E.differences(rep, baseline, candidates)
            reps_by_group[groups[name]].append(rep)
        labels.append(res)
    macros = []
    for group, reps in reps_by_group.items():
        in_group = [n for n in names if groups[n] == group]
        if not in_group:
            continue
        done = [n for n in in_group if n in evaluated and statuses[n][0] == "evaluated"]
        mac = MacroResult(group=group, labels=done, excluded_labels=[n for n in in_group if n not in done])
        if reps:
            agg = E.macro(reps)
            counts_m = {"n": len(patients), "n_patients": boot.n_patients}
            for (model, probe, metric), point in agg.points.items():
                mac.results.setdefault(model, {}).setdefault(probe, {})[metric] = E.make_estimate(
                    point, agg.reps[(model, probe, metric)], **counts_m)
                if metric == "auroc":
                    mac.replicates.setdefault(model, {})[probe] = [round(float(v), 5) for v in agg.reps[(model, probe, metric)]]
            mac.differences = E.differences(agg, baseline, candidates)
        macros.append(mac)
    return Classification(labels=labels, macro=macros)


def segmentation(models: Sequence[ModelScores], baseline: str, devices: list[str], counts: dict[str, int],
                 test_patients: Sequence[str], n_boot: int, seed: int, mask_resolution: int | None,
                 tolerance: int) -> SegmentationResult:
    boot = PatientBootstrap(np.asarray(test_patients), n_boot, seed)
    candidates = [m.name for m in models if m.name != baseline]
    heads = sorted({h for m in models for h in m.seg})
    res = SegmentationResult(status="evaluated", devices=devices, counts=counts, heads=heads,
                             mask_resolution=mask_resolution, tolerance_px=tolerance)
    values = {}
    n_items = {}
    scopes = ["all", *devices]
    for m in models:
        for head, o in m.seg.items():
            res.overlays.setdefault(m.name, {})[head] = o.overlays
            for scope in scopes:
                sel = np.ones(o.pairs["image"].size, bool) if scope == "all" else o.pairs["channel"] == devices.index(scope)
                if not sel.any():
                    continue
                n_items[(m.name, head, scope)] = (int(sel.sum()), len({test_patients[i] for i in o.pairs["image"][sel]}))
                for metric in ("dice", "iou", "dice_tolerant"):
                    values[(m.name, f"{head}@{scope}", metric)] = (o.pairs["image"][sel], o.pairs[metric][sel])
    rep = E.replicate_means(boot, values)
    for (model, hs, metric), point in rep.points.items():
        head, scope = hs.split("@", 1)
        n, npat = n_items[(model, head, scope)]
        res.results.setdefault(model, {}).setdefault(head, {}).setdefault(scope, {})[metric] = E.make_estimate(
            point, rep.reps[(model, hs, metric)], n=n, n_patients=npat)
        if metric == "dice" and scope == "all":
            res.replicates.setdefault(model, {})[head] = [round(float(v), 5) for v in rep.reps[(model, hs, metric)]]
    for (model, probe, metric), d in _flat(E.differences(rep, baseline, candidates)):
        head, scope = probe.split("@", 1)
        res.differences.setdefault(model, {}).setdefault(head, {}).setdefault(scope, {})[metric] = d
    return res


def _flat(diffs: dict) -> list:
    return [((m, p, k), d) for m, by_p in diffs.items() for p, by_k in by_p.items() for k, d in by_k.items()]


def zero_shot(models: Sequence[ModelScores], baseline: str, names: Sequence[str], groups: dict[str, str],
              statuses: dict, label_idx: np.ndarray, t: LabelTargets, patients: Sequence[str], n_boot: int,
              seed: int) -> list[ZeroShotResult]:
    text_models = [m for m in models if m.zeroshot is not None]
    if not text_models:
        return []
    boot = PatientBootstrap(np.asarray(patients), n_boot, seed)
    evaluated = [(e, names[i]) for e, i in enumerate(label_idx) if statuses[names[i]][0] == "evaluated"]
    sub = LabelTargets(t.y[:, label_idx], t.mask[:, label_idx])
    scores = {m.name: {"zeroshot": m.zeroshot} for m in text_models}
    out = {m.name: ZeroShotResult(model=m.name, prompt_set=PROMPT_SET) for m in text_models}
    per_group: dict[str, list] = {"findings": [], "devices": []}
    for e, label in evaluated:
        rep = E.replicate_label(boot, sub, e, scores, {}, names=("auroc",))
        m = sub.mask[:, e]
        counts = {"n": int(m.sum()), "n_pos": int(sub.y[m, e].sum()), "n_neg": int((1 - sub.y[m, e]).sum())}
        for model, by in E.label_estimates(rep, counts).items():
            out[model].labels[label] = by["zeroshot"]["auroc"]
        per_group[groups[label]].append(rep)
    for name in names:
        if statuses[name][0] != "evaluated":
            for z in out.values():
                z.skipped_labels[name] = statuses[name][1] or statuses[name][0]
    for group, reps in per_group.items():
        if reps:
            agg = E.macro(reps)
            for (model, _, _), point in agg.points.items():
                out[model].macro_auroc[group] = E.make_estimate(point, agg.reps[(model, "zeroshot", "auroc")],
                                                                n=len(patients))
            if baseline in scores:
                for model, by in E.differences(agg, baseline, [m.name for m in text_models]).items():
                    out[model].differences[f"{group} macro auroc"] = by["zeroshot"]["auroc"]
    values = {}
    for m in text_models:
        if m.retrieval is None:
            out[m.name].retrieval_message = "no test image has a paired report"
            continue
        queries, hits, gallery = m.retrieval
        out[m.name].retrieval_gallery = gallery
        if queries.size == 0:
            out[m.name].retrieval_message = "fewer than two test reports"
            continue
        for k in RECALL_KS:
            values[(m.name, "retrieval", f"recall@{k}")] = (queries, hits[k])
    if values:
        rep = E.replicate_means(boot, values)
        for (model, _, metric), point in rep.points.items():
            q = values[(model, "retrieval", metric)][0]
            out[model].retrieval[metric] = E.make_estimate(point, rep.reps[(model, "retrieval", metric)], n=int(q.size),
                                                           n_patients=len({patients[i] for i in q}))
    return list(out.values())
