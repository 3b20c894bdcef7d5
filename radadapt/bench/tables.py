"""The concise terminal view of a benchmark and of a scaling fit (the full detail is in the JSON)."""

from __future__ import annotations

from pathlib import Path

from rich.table import Table

from radadapt.bench.schema import BenchmarkResults, Difference, Estimate, ScalingResults

_VERDICT_MARK = {"better": "[green]▲[/green]", "worse": "[bold red]▼[/bold red]",
                 "no evidence of difference": "[dim]≈[/dim]", "not evaluable": "[dim]n/a[/dim]"}
LEGEND = ("▲ better / ▼ worse: the 95% CI of the difference excludes 0; ≈ no evidence of difference. "
          "Full CIs for every model, probe and metric are in results.json.")


def fmt_estimate(e: Estimate | None, ci: bool = True) -> str:
    if e is None or e.point is None:
        return "-"
    if not ci or e.low is None or e.high is None:
        return f"{e.point:.3f}"
    return f"{e.point:.3f} [{e.low:.3f}, {e.high:.3f}]"


def fmt_difference(d: Difference | None) -> str:
    if d is None or d.point is None:
        return "-"
    ci = "" if d.low is None else f" [{d.low:+.3f}, {d.high:+.3f}]"
    return f"{d.point:+.3f}{ci} {_VERDICT_MARK.get(d.verdict, d.verdict)}"


def summary_table(res: BenchmarkResults) -> Table:
    """One row per label (headline probe's AUROC), then the macro averages: the baseline with its CI, each
    candidate's point value and its difference from the baseline with the CI of the difference."""
    probe = res.headline_probe
    cands = [m.name for m in res.models if m.role == "candidate"]
    t = Table(title=f"test AUROC, probe {probe} (95% patient-bootstrap CIs)", title_justify="left",
              header_style="bold")
    t.add_column("label")
    t.add_column("pos/neg", justify="right")
    t.add_column("baseline", justify="right")
    for c in cands:
        t.add_column(c, justify="right")
        t.add_column(f"{c} - baseline", justify="right")

    def est(lab_results: dict, model: str) -> Estimate | None:
        r = lab_results.get(model, {}).get(probe)
        return getattr(r, "auroc", None) if r is not None else None

    for lab in res.classification.labels:
        tc = lab.counts.get("test")
        n = f"{tc.pos}/{tc.neg}" if tc else ""
        if lab.status != "evaluated":
            t.add_row(lab.label, n, f"[yellow]{lab.status.replace('_', ' ')}[/yellow]", *[""] * (2 * len(cands)))
            continue
        row = [fmt_estimate(est(lab.results, "baseline"))]
        for c in cands:
            row += [fmt_estimate(est(lab.results, c), ci=False),
                    fmt_difference(lab.differences.get(c, {}).get(probe, {}).get("auroc"))]
        t.add_row(lab.label, n, *row)
    for mac in res.classification.macro:
        if not mac.labels:
            continue
        row = [fmt_estimate(mac.results.get("baseline", {}).get(probe, {}).get("auroc"))]
        for c in cands:
            row += [fmt_estimate(mac.results.get(c, {}).get(probe, {}).get("auroc"), ci=False),
                    fmt_difference(mac.differences.get(c, {}).get(probe, {}).get("auroc"))]
        t.add_row(f"[bold]macro {mac.group}[/bold] ({len(mac.labels)})", "", *row)
    return t


def summary_text(res: BenchmarkResults, out: Path) -> str:
    lines = [LEGEND]
    cands = [m.name for m in res.models if m.role == "candidate"]
    seg = res.segmentation
    if seg is not None and seg.status == "evaluated":
        for head in seg.heads:
            parts = [f"{m}: {fmt_estimate(seg.results.get(m, {}).get(head, {}).get('all', {}).get('dice'))}"
                     for m in ["baseline", *cands]]
            lines.append(f"segmentation Dice ({head}): " + "; ".join(parts))
    elif seg is not None:
        lines.append(f"segmentation skipped: {seg.message}")
    for z in res.zeroshot:
        macro = ", ".join(f"{g} {fmt_estimate(e)}" for g, e in z.macro_auroc.items()) or "no label evaluated"
        r1 = z.retrieval.get("recall@1")
        lines.append(f"zero-shot {z.model}: macro AUROC {macro}" + (f"; report retrieval R@1 {fmt_estimate(r1)}" if r1 else ""))
    if res.ood is not None:
        lines.append(f"out-of-domain store ({res.ood.n_images} images): "
                     + ("no candidate is worse than the baseline beyond the CI" if not res.ood.warnings
                        else f"[bold red]{len(res.ood.warnings)} WORSE result(s); see warnings[/bold red]"))
    too_few = [lab.label for lab in res.classification.labels if lab.status != "evaluated"]
    if too_few:
        lines.append(f"not evaluated ({len(too_few)} labels, too few positives/negatives): listed in results.json")
    for w in res.warnings:
        lines.append(f"[yellow]warning:[/yellow] {w}")
    lines.append(f"results: {out / 'results.json'}")
    return "\n".join(lines)


def scaling_table(res: ScalingResults) -> Table:
    t = Table(title="error = a*N^-b + c (Huber fit in log space)", title_justify="left", header_style="bold")
    for col in ("task", "points (N: metric)", "form", "b [95% CI]", "c", "RMSE log", "leave-largest-out", "predictions"):
        t.add_column(col, justify="left" if col in ("task", "points (N: metric)", "predictions") else "right")
    for task in res.tasks:
        pts = ", ".join(f"{p.n:,}: {p.metric:.3f}" for p in task.points if p.metric is not None)
        for i, f in enumerate(task.fits):
            preds = "; ".join(_fmt_pred(p) for p in task.predictions if p.form == f.form)
            if f.status != "fitted":
                t.add_row(task.task if i == 0 else "", pts if i == 0 else "", f.form, f.status.replace("_", " "),
                          "", "", "", preds)
                continue
            b = f"{f.b:.3f}" + (f" [{f.b_low:.3f}, {f.b_high:.3f}]" if f.b_low is not None else "")
            loo = "-" if f.loo_largest_rel_error is None else f"{100 * f.loo_largest_rel_error:.1f}%"
            t.add_row(task.task if i == 0 else "", pts if i == 0 else "", f.form, b,
                      "-" if f.c is None else f"{f.c:.4f}", f"{f.rmse_log:.4f}", loo, preds)
    return t


def _fmt_pred(p) -> str:
    if p.status in ("withheld_beyond_limit", "unreachable", "no_fit"):
        return f"{p.target:g}: {p.status.replace('_', ' ')}"
    if p.metric is not None:
        return f"N={p.target:,.0f} -> {p.metric:.3f} ({p.status.replace('_', ' ')})"
    return f"{p.target:g} at N={p.n:,.0f} ({p.status.replace('_', ' ')})"


def scaling_notes(res: ScalingResults) -> str:
    """Why a prediction has no number (or is unreliable), one line each, under the table (too long for a cell)."""
    lines = [f"warning: {w}" for w in res.warnings]
    for task in res.tasks:
        for p in task.predictions:
            if p.message and p.status != "reached":
                lines.append(f"{task.task}, {p.form}, {p.target:g}: {p.message}")
    return "\n".join(lines)
