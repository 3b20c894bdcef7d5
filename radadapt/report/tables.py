"""The report's tables as plain data (``ReportTable``: columns and rows of ``Cell``) for both templates.

Cells carry a CSS class for the HTML (verdict colours, numbers) that the markdown ignores. Every value comes
from results.json or from an aggregate file it names (store.json, labels.json, scaling fits); nothing here reads
patient-level data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from radadapt.bench.schema import BenchmarkResults, Classification, ScalingTask, SegmentationResult, ZeroShotResult
from radadapt.report.figures import accounting_counts
from radadapt.report.summary import VERDICT_CSS, Summary, fmt_difference, fmt_estimate


@dataclass
class Cell:
    text: str
    css: str = ""
    sub: str = ""  # a second, smaller line in the HTML (e.g. the verdict under a difference)


@dataclass
class ReportTable:
    id: str
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""


def _c(v: object, css: str = "") -> Cell:
    return Cell("–" if v is None else str(v), css)


def _n(v: object) -> Cell:
    return Cell("–" if v is None else (f"{v:,}" if isinstance(v, int) else str(v)), "num")


_SHORT_VERDICT = {"no evidence of difference": "no evidence", "not evaluable": "not evaluable"}


def _diff_cell(d) -> Cell:
    """The difference on one line, its CI and verdict on a second (narrow columns); the markdown joins them."""
    if d is None or d.point is None:
        return Cell("–", "muted")
    text = fmt_difference(d)
    point, _, ci = text.partition(" ")
    # no-break spaces keep the CI on one line; the verdict may wrap below it in a narrow column
    verdict = _SHORT_VERDICT.get(d.verdict, d.verdict).replace(" ", "\u00a0")
    return Cell(point, VERDICT_CSS.get(d.verdict, ""), f"{ci.replace(' ', chr(0xA0))} {verdict}".strip())


def _est_cell(e) -> Cell:
    """A point value over its CI."""
    text = fmt_estimate(e)
    point, _, ci = text.partition(" ")
    return Cell(point, "num", ci.replace(" ", "\u00a0"))


def glance_table(res: BenchmarkResults, summary: Summary) -> ReportTable:
    """One row per candidate: the macro verdicts, label counts by verdict, segmentation and the out-of-domain check."""
    probe = res.headline_probe
    seg = res.segmentation if res.segmentation is not None and res.segmentation.status == "evaluated" else None
    heads = seg.heads if seg else []
    groups = [mac for mac in res.classification.macro if mac.labels]
    t = ReportTable("tab-glance", f"At a glance (Δ = candidate − baseline with 95% CI; probe {probe})",
                    ["model", *[f"{mac.group} macro Δ AUROC" for mac in groups],
                     "labels better / worse / none", *[f"Δ Dice ({h})" for h in heads], "out of domain"])
    for cs in summary.candidates:
        row = [_c(cs.name, "strong")]
        row += [_diff_cell(mac.differences.get(cs.name, {}).get(probe, {}).get("auroc")) for mac in groups]
        row.append(_c(f"{len(cs.better)} / {len(cs.worse)} / {len(cs.no_evidence)}",
                      "worse" if cs.worse else ("better" if cs.better else "num")))
        row += [_diff_cell(seg.differences.get(cs.name, {}).get(h, {}).get("all", {}).get("dice")) for h in heads]
        if res.ood is None:
            row.append(_c("not checked", "muted"))
        else:
            n = ood_worse_count(res, cs.name)
            row.append(_c(f"worse on {n}", "worse") if n else _c("no loss found", "better"))
        t.rows.append(row)
    t.note = ("labels better / worse / none: how many evaluated labels show each verdict. Out of domain: how many "
              "label or macro results (any probe) are worse than the baseline on the other site's store.")
    return t


def ood_worse_count(res: BenchmarkResults, cand: str) -> int:
    """Out-of-domain (label or macro, probe) results where ``cand`` is worse than the baseline on AUROC."""
    items = res.ood.classification.labels + res.ood.classification.macro
    return sum(d.get("auroc") is not None and d["auroc"].verdict == "worse"
               for it in items for d in it.differences.get(cand, {}).values())


def models_table(res: BenchmarkResults) -> ReportTable:
    t = ReportTable("tab-models", "Models compared (provenance)",
                    ["name", "role", "family", "kind", "path given", "weights loaded", "fingerprint (sha256)",
                     "embedding", "input px", "trained on N images", "test-patient check"])
    for m in res.models:
        check = m.training_check.status.replace("_", " ")
        if m.training_check.message:
            check += f": {m.training_check.message}"
        css = "worse" if m.training_check.status == "unverified" else ""
        t.rows.append([_c(m.name, "strong"), _c(m.role), _c(m.family), _c(m.kind), _c(m.path, "path"),
                       _c(m.model_dir, "path"), _c(m.fingerprint, "mono"), _n(m.embed_dim), _n(m.input_size),
                       _n(m.run.subset_n if m.run else None), _c(check, css)])
    t.note = ("The fingerprint is a sha256 over the model's weight files: the same fingerprint means the same "
              "weights. 'disjoint' means the run's recorded training patients share no patient with the test split.")
    return t


def splits_table(res: BenchmarkResults) -> ReportTable:
    t = ReportTable("tab-splits", "Images evaluated per split", ["split", "images", "patients", "with labels"])
    order = {"probe_train": 0, "val": 1, "test": 2}
    for name, s in sorted(res.splits.items(), key=lambda kv: order.get(kv[0], 3)):
        t.rows.append([_c(name.replace("_", " ")), _n(s.images), _n(s.patients), _n(s.labelled)])
    t.note = "probe train fits the probes, val chooses their settings, test gives every number in this report."
    return t


def macro_table(cls: Classification, probe: str, models: list[str], tid: str, title: str) -> ReportTable:
    cands = [m for m in models if m != "baseline"]
    t = ReportTable(tid, title, ["group", "labels", "metric", *models, *[f"{c} − baseline" for c in cands]])
    for mac in cls.macro:
        for metric in ("auroc", "auprc"):
            row = [_c(mac.group, "strong"), _n(len(mac.labels)), _c(metric.upper())]
            row += [_est_cell(mac.results.get(m, {}).get(probe, {}).get(metric)) for m in models]
            row += [_diff_cell(mac.differences.get(c, {}).get(probe, {}).get(metric)) for c in cands]
            t.rows.append(row)
    t.note = (f"Macro = mean over the evaluated labels of the group, bootstrapped jointly; probe {probe}. "
              "Labels not evaluated are excluded from the mean (listed below).")
    return t


def label_table(cls: Classification, group: str, probe: str, models: list[str], tid: str, title: str,
                metric: str = "auroc") -> ReportTable:
    """One row per evaluated label of ``group``: counts, ``metric`` per model, difference per candidate."""
    cands = [m for m in models if m != "baseline"]
    t = ReportTable(tid, title, ["label", "pos / neg", "prevalence", *models, *[f"Δ {c}" for c in cands]])
    for lab in cls.labels:
        if lab.group != group or lab.status != "evaluated":
            continue
        tc = lab.counts.get("ood") or lab.counts.get("test")
        row = [_c(lab.label, "strong"), _c(f"{tc.pos} / {tc.neg}" if tc else None, "num"),
               _c(None if lab.prevalence is None else f"{lab.prevalence:.3f}", "num")]
        for m in models:
            r = lab.results.get(m, {}).get(probe)
            row.append(_est_cell(getattr(r, metric) if r else None))
        row += [_diff_cell(lab.differences.get(c, {}).get(probe, {}).get(metric)) for c in cands]
        t.rows.append(row)
    if not t.rows:
        t.note = f"No {group} label could be evaluated (see 'Labels not evaluated')."
    elif metric == "auprc":
        t.note = "AUPRC by chance equals the prevalence; compare each value with its row's prevalence."
    return t


def not_evaluated_table(cls: Classification, tid: str = "tab-not-evaluated") -> ReportTable:
    t = ReportTable(tid, "Labels not evaluated (never silently dropped)",
                    ["label", "group", "status", "reason", "test pos / neg", "probe train pos / neg", "val pos / neg"])
    for lab in cls.labels:
        if lab.status == "evaluated":
            continue
        def pn(split: str) -> Cell:
            c = lab.counts.get(split)
            return _c(f"{c.pos} / {c.neg}" if c else None, "num")
        t.rows.append([_c(lab.label, "strong"), _c(lab.group), _c(lab.status.replace("_", " "), "warn"),
                       _c(lab.message), pn("ood" if "ood" in lab.counts else "test"), pn("probe_train"), pn("val")])
    t.note = ("A label needs enough positive and negative test images for an AUROC with a meaningful CI, and "
              "enough in probe train and val to fit a probe (benchmark setting min_positives).")
    return t


def probes_table(res: BenchmarkResults, models: list[str]) -> ReportTable:
    """Δ AUROC per probe: does the verdict hold whichever probe reads the features?"""
    cands = [m for m in models if m != "baseline"]
    probes = [p.name for p in res.probes]
    t = ReportTable("tab-probes", "Δ AUROC for every probe (robustness of the verdicts)",
                    ["label", *[f"{c}: {p}" for c in cands for p in probes]])
    for mac in res.classification.macro:
        if mac.labels:
            t.rows.append([_c(f"{mac.group} macro", "strong")] + [
                _diff_cell(mac.differences.get(c, {}).get(p, {}).get("auroc")) for c in cands for p in probes])
    for lab in res.classification.labels:
        if lab.status == "evaluated":
            t.rows.append([_c(lab.label)] + [_diff_cell(lab.differences.get(c, {}).get(p, {}).get("auroc"))
                                             for c in cands for p in probes])
    t.note = "; ".join(f"{p.name}: {p.kind} probe on {p.features}" for p in res.probes)
    return t


def segmentation_table(seg: SegmentationResult, models: list[str]) -> ReportTable:
    cands = [m for m in models if m != "baseline"]
    t = ReportTable("tab-segmentation", "Device segmentation (test split)",
                    ["head", "device", "masks", *[f"Dice {m}" for m in models], *[f"IoU {m}" for m in models],
                     *[f"tolerant Dice {m}" for m in models], *[f"Δ Dice {c}" for c in cands]])
    for head in seg.heads:
        for scope in ["all", *seg.devices]:
            est = {m: seg.results.get(m, {}).get(head, {}).get(scope, {}) for m in models}
            if not any(est.values()):
                continue
            n = next((e["dice"].n for e in est.values() if "dice" in e), None)
            row = [_c(head, "strong"), _c("all devices" if scope == "all" else scope), _n(n)]
            for metric in ("dice", "iou", "dice_tolerant"):
                row += [_est_cell(est[m].get(metric)) for m in models]
            row += [_diff_cell(seg.differences.get(c, {}).get(head, {}).get(scope, {}).get("dice")) for c in cands]
            t.rows.append(row)
    t.note = (f"Masks at {seg.mask_resolution or '?'} px; tolerant Dice counts a pixel within {seg.tolerance_px} px "
              "of the reference as correct (thin tubes). Images with masks per split: "
              + ", ".join(f"{k} {v:,}" for k, v in seg.counts.items()) + ".")
    return t


def zeroshot_table(zs: list[ZeroShotResult]) -> ReportTable:
    t = ReportTable("tab-zeroshot", "Zero-shot classification and report retrieval (MI2 text tower)",
                    ["model", "what", "value [95% CI]", "vs baseline"])
    for z in zs:
        for g, e in z.macro_auroc.items():
            t.rows.append([_c(z.model, "strong"), _c(f"{g} macro AUROC"), _est_cell(e),
                           _diff_cell(z.differences.get(f"{g} macro auroc"))])
        for k, e in z.retrieval.items():
            t.rows.append([_c(z.model, "strong"), _c(f"image → report {k} (gallery {z.retrieval_gallery:,})"),
                           _est_cell(e), _c("–", "muted")])
        if z.retrieval_message:
            t.rows.append([_c(z.model, "strong"), _c("retrieval"), _c(z.retrieval_message, "muted"), _c("–")])
    return t


def ood_warnings(res: BenchmarkResults) -> list[str]:
    return list(res.ood.warnings) if res.ood is not None else []


def scaling_table(tasks: list[ScalingTask], tid: str) -> ReportTable:
    t = ReportTable(tid, "Fitted scaling laws (error = 1 − metric)",
                    ["task", "points N: metric", "form", "b [95% CI]", "c (floor)", "RMSE log", "dof",
                     "leave-largest-out error", "predictions", "better than baseline from N"])
    for task in tasks:
        pts = ", ".join(f"{p.n:,}: {p.metric:.3f}" for p in task.points if p.metric is not None)
        for i, f in enumerate(task.fits):
            first = i == 0
            preds = "; ".join(_prediction(p) for p in task.predictions if p.form == f.form) or "–"
            if f.status != "fitted":
                row = [_c(f.status.replace("_", " ") + (f": {f.message}" if f.message else ""), "muted")]
                row += [_c("–")] * 5
            else:
                b = f"{f.b:.3f}" + (f" [{f.b_low:.3f}, {f.b_high:.3f}]" if f.b_low is not None else " (no CI)")
                loo = "–" if f.loo_largest_rel_error is None else f"{100 * f.loo_largest_rel_error:.1f}%"
                row = [_c(b, "num"), _c("–" if f.c is None else f"{f.c:.4f}", "num"),
                       _c(f"{f.rmse_log:.4f}" if f.rmse_log is not None else None, "num"),
                       _c(f.dof, "warn" if f.dof == 0 else "num"), _c(loo, "num"), _c(preds)]
            t.rows.append([_c(task.task if first else "", "strong"), _c(pts if first else ""), _c(f.form), *row,
                           _c((f"{task.crossover_n:,}" if task.crossover_n else "not reached") if first else "")])
    t.note = ("dof = points minus parameters: 0 means an exact fit whose quality cannot be judged. "
              "Leave-largest-out error: the fit made without the largest N, its relative error predicting it.")
    return t


def _prediction(p) -> str:
    status = p.status.replace("_", " ")
    if p.metric is not None:
        return f"at N={p.target:,.0f}: {p.metric:.3f} ({status})"
    if p.n is not None:
        return f"{p.target:g} needs N≈{p.n:,.0f} ({status})"
    return f"{p.target:g}: {status}" + (f" ({p.message})" if p.message else "")


def accounting_table(store_info: dict) -> ReportTable:
    acc = store_info.get("accounting") or {}
    states, reasons = accounting_counts(acc, store_info.get("duplicate_reasons"))
    total = int(acc.get("total_files", 0)) or 1
    t = ReportTable("tab-accounting", "What happened to every archive file (ingest accounting)",
                    ["state", "reason", "files", "% of archive"])
    t.rows.append([_c("archive files", "strong"), _c("all"), _n(int(acc.get("total_files", 0))), _c("100.0%", "num")])
    kept = store_info.get("ok_reasons") or {"ok": states["kept"]}
    for r, n in kept.items():
        t.rows.append([_c("kept", "better"), _c(r), _n(int(n)), _c(f"{100 * int(n) / total:.1f}%", "num")])
    for s, r, n in reasons:
        t.rows.append([_c(s, "worse" if s == "quarantined" else "warn"), _c(r), _n(n),
                       _c(f"{100 * n / total:.1f}%", "num")])
    t.note = "Reasons are the fixed codes of docs/store_format.md; no file name or path appears here."
    return t


def pairing_table(store_info: dict) -> ReportTable | None:
    pairing = store_info.get("pairing")
    if not isinstance(pairing, dict) or not pairing:
        return None
    t = ReportTable("tab-pairing", "Reports and images paired at ingest", ["count", "value"])
    for k, v in pairing.items():
        t.rows.append([_c(k.replace("_", " ")), _n(v)])
    return t


def store_table(res: BenchmarkResults, store_info: dict | None, labels_info: dict | None) -> ReportTable:
    t = ReportTable("tab-store", "The site's data", ["item", "value"])
    t.rows.append([_c("store (path given)"), _c(res.store.path, "path")])
    t.rows.append([_c("store id"), _c(res.store.store_id, "mono")])
    t.rows.append([_c("images in the store"), _n(res.store.n_images)])
    order = {"train": 0, "val": 1, "test": 2}
    splits = sorted(res.store.splits.items(), key=lambda kv: order.get(kv[0], 3))
    t.rows.append([_c("images per split"), _c(", ".join(f"{k} {v:,}" for k, v in splits))])
    if store_info:
        t.rows.append([_c("stored resolution (short side, px)"), _n(store_info.get("resolution"))])
        t.rows.append([_c("site key fingerprint (not secret)"), _c(store_info.get("key_fingerprint"), "mono")])
        t.rows.append([_c("written by radadapt"), _c(store_info.get("radadapt_version"))])
    if labels_info:
        t.rows.append([_c("reports labelled"), _n(labels_info.get("n_reports"))])
        t.rows.append([_c("labeler"), _c(labels_info.get("labeler"))])
        t.rows.append([_c("label schema sha256"), _c(labels_info.get("schema_sha256"), "mono")])
    return t


def label_counts_table(labels_info: dict) -> ReportTable | None:
    counts = labels_info.get("counts")
    if not isinstance(counts, dict):
        return None
    cols = [*labels_info.get("findings", []), *labels_info.get("devices", [])]
    t = ReportTable("tab-label-counts", "Label values in the site's reports (whole store, all splits)",
                    ["label", "positive / present", "negative / absent", "uncertain", "removed"])
    for col in cols:
        c = counts.get(col) or {}
        t.rows.append([_c(col), _n(int(c.get("1", c.get("present", 0)))), _n(int(c.get("0", c.get("absent", 0)))),
                       _n(int(c.get("-1", c.get("uncertain", 0)))), _n(int(c.get("removed", 0)))])
    t.note = "Counts of studies per value; 'not mentioned' is not counted (it is unknown, not negative)."
    return t


def settings_table(res: BenchmarkResults) -> ReportTable:
    keys = ("bootstrap", "seed", "min_positives", "uncertain", "probe_train_images", "eval_images", "device",
            "seg_tolerance_px")
    t = ReportTable("tab-settings", "Benchmark settings", ["setting", "value"])
    t.rows.append([_c("headline probe"), _c(res.headline_probe)])
    for k in keys:
        if k in res.settings:
            t.rows.append([_c(k), _c(res.settings[k])])
    t.rows.append([_c("results written"), _c(res.created)])
    t.rows.append([_c("radadapt version"), _c(res.radadapt_version)])
    return t
