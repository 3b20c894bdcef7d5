"""The report's figures, drawn with matplotlib's object API (``Figure`` + Agg; no pyplot, no global state).

Every figure is returned as PNG bytes with an id and an alt text, so the HTML can embed it (base64) and the
markdown can write it beside itself. Colours: one per model (baseline grey), one per verdict (better green, worse
red, no evidence grey), the same in every figure and in the tables' CSS.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

from radadapt.bench.schema import Classification, Estimate, ScalingTask, SegmentationResult
from radadapt.report.load import TrainingLog

BASELINE_COLOUR = "#6b7280"
CANDIDATE_COLOURS = ["#2563eb", "#d97706", "#7c3aed", "#0d9488", "#db2777", "#65a30d"]
VERDICT_COLOURS = {"better": "#15803d", "worse": "#b91c1c", "no evidence of difference": "#6b7280",
                   "not evaluable": "#9ca3af"}
STATE_COLOURS = {"kept": "#15803d", "filtered": "#d97706", "duplicate": "#6b7280", "quarantined": "#b91c1c"}
DPI = 110
_RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "axes.spines.top": False,
       "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.25, "grid.linewidth": 0.6}


@dataclass
class Plot:
    id: str
    title: str
    alt: str
    png: bytes


def model_colours(models: list[str]) -> dict[str, str]:
    out, k = {}, 0
    for m in models:
        if m == "baseline":
            out[m] = BASELINE_COLOUR
        else:
            out[m] = CANDIDATE_COLOURS[k % len(CANDIDATE_COLOURS)]
            k += 1
    return out


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1, **kw):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})  # no matplotlib version stamp
    return buf.getvalue()


def _draw(fn, *args, **kw) -> bytes:
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = fn(*args, **kw)
        return _png(fig)


def _errbar(ax, x: Estimate | None, y: float, colour: str, label: str | None = None, marker: str = "o") -> None:
    if x is None or x.point is None:
        return
    if x.low is not None and x.high is not None:
        ax.errorbar([x.point], [y], xerr=[[x.point - x.low], [x.high - x.point]], fmt=marker, color=colour, ms=4.5,
                    capsize=2.5, elinewidth=1.2, label=label)
    else:
        ax.plot([x.point], [y], marker, color=colour, ms=4.5, label=label)


def _offsets(n: int, width: float = 0.6) -> list[float]:
    return [0.0] if n == 1 else [-width / 2 + width * i / (n - 1) for i in range(n)]


# -- per-label metrics -------------------------------------------------------------------------------------------
def label_metrics(cls: Classification, group: str, probe: str, models: list[str], fig_id: str) -> Plot | None:
    labels = [lab for lab in cls.labels if lab.group == group and lab.status == "evaluated"]
    if not labels:
        return None
    png = _draw(_label_metrics_fig, labels, probe, models)
    return Plot(fig_id, f"{group.capitalize()}: AUROC and AUPRC per label ({probe})",
                f"Per-label AUROC and AUPRC of {', '.join(models)} on {group} with 95% CI bars", png)


def _label_metrics_fig(labels, probe, models):
    colours = model_colours(models)
    fig, axes = _figure(10, 1.1 + 0.42 * len(labels) * max(1, len(models) / 2), 1, 2, sharey=True)
    offs = _offsets(len(models), 0.5)
    for ax, metric in zip(axes[0], ("auroc", "auprc")):
        for i, lab in enumerate(labels):
            y = len(labels) - 1 - i
            for m, off in zip(models, offs):
                r = lab.results.get(m, {}).get(probe)
                _errbar(ax, getattr(r, metric) if r else None, y - off, colours[m], m if i == 0 else None)
            if metric == "auprc" and lab.prevalence is not None:  # a random ranking's AUPRC is the prevalence
                ax.plot([lab.prevalence], [y], "|", color="#111827", ms=10, mew=1.2,
                        label="prevalence (chance AUPRC)" if i == 0 else None)
        if metric == "auroc":
            ax.axvline(0.5, color="#9ca3af", lw=0.8, ls=":")
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(metric.upper())
        ax.set_yticks(range(len(labels)), [lab.label for lab in reversed(labels)])
        ax.set_ylim(-0.7, len(labels) - 0.3)
    axes[0][1].legend(loc="lower right", frameon=True)
    return fig


# -- forest plot of differences ---------------------------------------------------------------------------------
def forest(cls: Classification, probe: str, candidates: list[str], fig_id: str, title: str,
           metric: str = "auroc") -> Plot | None:
    rows = []  # (name, bold, {cand: Difference})
    for mac in cls.macro:
        d = {c: mac.differences.get(c, {}).get(probe, {}).get(metric) for c in candidates}
        if mac.labels and any(v is not None for v in d.values()):
            rows.append((f"{mac.group} macro ({len(mac.labels)})", True, d))
    for lab in cls.labels:
        d = {c: lab.differences.get(c, {}).get(probe, {}).get(metric) for c in candidates}
        if lab.status == "evaluated" and any(v is not None for v in d.values()):
            rows.append((lab.label, False, d))
    if not rows:
        return None
    png = _draw(_forest_fig, rows, candidates, metric)
    return Plot(fig_id, title, f"Forest plot: {metric.upper()} difference candidate minus baseline with 95% CI per "
                                "label, coloured by verdict (green better, red worse, grey no evidence)", png)


def _forest_fig(rows, candidates, metric):
    from matplotlib.lines import Line2D

    fig, axes = _figure(10, 1.2 + 0.3 * len(rows) * max(1, len(candidates) / 2))
    ax = axes[0][0]
    offs = _offsets(len(candidates), 0.45)
    markers = ["o", "s", "D", "^", "v", "P"]
    for i, (_, bold, diffs) in enumerate(rows):
        y = len(rows) - 1 - i
        if bold:
            ax.axhspan(y - 0.5, y + 0.5, color="#f3f4f6", zorder=0)
        for k, (c, off) in enumerate(zip(candidates, offs)):
            d = diffs.get(c)
            if d is None or d.point is None:
                continue
            colour = VERDICT_COLOURS[d.verdict]
            lo = d.point - d.low if d.low is not None else 0
            hi = d.high - d.point if d.high is not None else 0
            ax.errorbar([d.point], [y - off], xerr=[[lo], [hi]], fmt=markers[k % len(markers)], color=colour,
                        ms=5 if bold else 4, capsize=2.5, elinewidth=1.6 if bold else 1.1)
            if len(candidates) == 1:  # the numbers beside the plot, as in a printed forest plot
                ci = "" if d.low is None or d.high is None else f" [{d.low:+.3f}, {d.high:+.3f}]"
                ax.text(1.01, y, f"{d.point:+.3f}{ci}", transform=ax.get_yaxis_transform(), va="center",
                        fontsize=8, color=colour, fontweight="bold" if bold else "normal")
    ax.axvline(0, color="#111827", lw=0.9)
    ax.set_yticks(range(len(rows)), [name for name, _, _ in reversed(rows)])
    for tick, (_, bold, _) in zip(ax.get_yticklabels(), list(reversed(rows))):
        if bold:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"{metric.upper()} difference (candidate − baseline), 95% CI")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLOURS.items()
               if v != "not evaluable"]
    if len(candidates) > 1:
        handles += [Line2D([], [], color="#374151", marker=markers[k % len(markers)], ls="", label=c)
                    for k, c in enumerate(candidates)]
    ax.legend(handles=handles, loc="best", frameon=True)
    return fig


# -- segmentation -----------------------------------------------------------------------------------------------
def segmentation(seg: SegmentationResult, models: list[str], fig_id: str) -> Plot | None:
    if seg.status != "evaluated" or not seg.heads:
        return None
    png = _draw(_segmentation_fig, seg, models)
    return Plot(fig_id, "Device segmentation: Dice per device with 95% CI",
                "Dice of each model's segmentation head per device and over all devices, with 95% CI bars", png)


def _segmentation_fig(seg, models):
    colours = model_colours(models)
    scopes = ["all", *seg.devices]
    fig, axes = _figure(10, 1.2 + 0.45 * len(scopes) * max(1, len(models) / 2), 1, len(seg.heads), sharey=True)
    offs = _offsets(len(models), 0.45)
    for ax, head in zip(axes[0], seg.heads):
        for i, scope in enumerate(scopes):
            y = len(scopes) - 1 - i
            for m, off in zip(models, offs):
                e = seg.results.get(m, {}).get(head, {}).get(scope, {}).get("dice")
                _errbar(ax, e, y - off, colours[m], m if i == 0 else None)
        ax.set_title(f"{head} head")
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("Dice")
        ax.set_yticks(range(len(scopes)), ["all devices" if s == "all" else s for s in reversed(scopes)])
        ax.set_ylim(-0.7, len(scopes) - 0.3)
    axes[0][-1].legend(loc="lower right", frameon=True)
    return fig


# -- scaling ----------------------------------------------------------------------------------------------------
def scaling(task: ScalingTask, max_extrapolation: float, fig_id: str) -> Plot | None:
    pts = [p for p in task.points if p.metric is not None]
    if not pts:
        return None
    png = _draw(_scaling_fig, task, pts, max_extrapolation)
    return Plot(fig_id, f"Scaling: {task.task}",
                f"{task.task} against pretraining images N (log scale) with 95% CI bars, fitted power laws and the "
                f"extrapolation limit at {max_extrapolation:g}x the largest N", png)


def _scaling_fig(task, pts, limit):
    import numpy as np

    fig, axes = _figure(8, 4.2)
    ax = axes[0][0]
    ns = np.array([p.n for p in pts], dtype=float)
    n_max = float(ns.max())
    lo_x, hi_x = float(ns.min()) / 1.6, n_max * limit * 1.6
    ax.set_xscale("log")
    for p in pts:
        colour = VERDICT_COLOURS.get(p.verdict_vs_baseline or "not evaluable", BASELINE_COLOUR)
        yerr = None if p.low is None or p.high is None else [[p.metric - p.low], [p.high - p.metric]]
        ax.errorbar([p.n], [p.metric], yerr=yerr, fmt="o", color=colour, ms=5, capsize=3, zorder=5)
    if task.baseline is not None:
        ax.axhline(task.baseline, color=BASELINE_COLOUR, ls="--", lw=1, label=f"baseline {task.baseline:.3f}")
    styles = {"a*N^-b + c": "#2563eb", "a*N^-b": "#7c3aed"}
    n0 = float(np.exp(np.mean(np.log(ns))))
    for f in task.fits:
        if f.status != "fitted" or f.a is None or f.b is None:
            continue
        colour = styles.get(f.form, "#374151")
        c = f.c or 0.0
        inside = np.geomspace(float(ns.min()), n_max, 60)
        beyond = np.geomspace(n_max, n_max * limit, 40)
        ax.plot(inside, 1 - (f.a * inside ** -f.b + c), color=colour, lw=1.6, label=_law_label(f))
        ax.plot(beyond, 1 - (f.a * beyond ** -f.b + c), color=colour, lw=1.2, ls="--")
        if f.b_low is not None and f.b_high is not None:
            # slope uncertainty only: curves with b at its CI ends, pivoting where the data are densest (n0)
            grid = np.geomspace(float(ns.min()), n_max * limit, 100)
            e0 = f.a * n0 ** -f.b
            band = [1 - (e0 * (grid / n0) ** -b + c) for b in (f.b_low, f.b_high)]
            ax.fill_between(grid, np.minimum(*band), np.maximum(*band), color=colour, alpha=0.12, lw=0)
    ax.axvspan(n_max * limit, hi_x, color="#fee2e2", alpha=0.7, lw=0)
    ax.axvline(n_max * limit, color="#b91c1c", lw=1, ls=":")
    ax.text(n_max * limit, ax.get_ylim()[0], f"  extrapolation limit ({limit:g}× largest N)", color="#b91c1c",
            fontsize=8, va="bottom", ha="left", rotation=90)
    ax.set_xlim(lo_x, hi_x)
    ax.set_xlabel("pretraining images N (log scale)")
    ax.set_ylabel(task.metric.upper() if task.metric != "dice" else "Dice")
    ax.legend(loc="lower right", frameon=True)
    return fig


def _law_label(f) -> str:
    ci = f" [{f.b_low:.2f}, {f.b_high:.2f}]" if f.b_low is not None and f.b_high is not None else ""
    floor = f" + {f.c:.3f}" if f.c is not None else ""
    return f"error = {f.a:.3g}·N^-{f.b:.3f}{ci}{floor}"


# -- training curves --------------------------------------------------------------------------------------------
def training(logs: dict[str, TrainingLog], models: list[str], fig_id: str) -> Plot | None:
    if not logs:
        return None
    names: list[str] = []
    for log in logs.values():
        for k in log.series:
            if k not in names:
                names.append(k)
    names.sort(key=lambda k: (k != "loss", not k.endswith("loss"), k))
    names = names[:8]
    png = _draw(_training_fig, logs, models, names)
    return Plot(fig_id, "Training curves", "Training loss and its parts against the optimizer step, one line per "
                                           "run", png)


def _training_fig(logs, models, names):
    from matplotlib.ticker import MaxNLocator

    colours = model_colours(models)
    ncols = min(4, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = _figure(10, 2.4 * nrows + 0.4, nrows, ncols)
    flat = [ax for row in axes for ax in row]
    for ax, key in zip(flat, names):
        for model, log in logs.items():
            if key in log.series:
                ax.plot(log.steps, log.series[key], color=colours.get(model, "#374151"), lw=1.2, label=model)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    for ax in flat[len(names):]:
        ax.set_visible(False)
    flat[0].legend(loc="best", frameon=True)
    return fig


# -- data accounting --------------------------------------------------------------------------------------------
def accounting(acc: dict, fig_id: str, duplicate_reasons: dict | None = None) -> Plot | None:
    if not isinstance(acc, dict) or "total_files" not in acc:
        return None
    png = _draw(_accounting_fig, acc, duplicate_reasons)
    return Plot(fig_id, "Data accounting: every archive file and what happened to it",
                "Bar charts of archive files kept, filtered, duplicate and quarantined, and the reasons", png)


def accounting_counts(acc: dict, duplicate_reasons: dict | None = None
                      ) -> tuple[dict[str, int], list[tuple[str, str, int]]]:
    """({state: n}, [(state, reason, n)]) from store.json's ``accounting`` and ``duplicate_reasons``
    (docs/store_format.md); zero counts are left out of the reasons."""
    def total(v: object) -> int:
        return sum(int(x) for x in v.values()) if isinstance(v, dict) else int(v or 0)

    states = {"kept": int(acc.get("ok", 0)), "filtered": total(acc.get("filtered", {})),
              "duplicate": total(acc.get("duplicate", 0)), "quarantined": total(acc.get("quarantined", {}))}
    reasons = []
    for state in ("filtered", "duplicate", "quarantined"):
        v = acc.get(state)
        if state == "duplicate" and not isinstance(v, dict):
            v = duplicate_reasons if isinstance(duplicate_reasons, dict) else {"duplicate": v or 0}
        if isinstance(v, dict):
            reasons += [(state, r, int(n)) for r, n in sorted(v.items(), key=lambda t: -int(t[1])) if int(n)]
    return states, reasons


def _accounting_fig(acc, duplicate_reasons):
    states, reasons = accounting_counts(acc, duplicate_reasons)
    fig, axes = _figure(10, 1.2 + 0.2 * max(len(reasons), 6), 1, 2, width_ratios=[1, 1.6])
    ax = axes[0][0]
    names = list(states)
    ax.barh(range(len(names))[::-1], [states[s] for s in names], color=[STATE_COLOURS[s] for s in names])
    for y, s in zip(range(len(names))[::-1], names):
        ax.text(states[s], y, f" {states[s]:,}", va="center", fontsize=8)
    ax.set_yticks(range(len(names))[::-1], names)
    ax.set_xlabel("files")
    ax.set_title(f"{int(acc.get('total_files', 0)):,} files in the archive")
    ax.margins(x=0.18)
    ax2 = axes[0][1]
    if reasons:
        ys = range(len(reasons))[::-1]
        ax2.barh(ys, [n for _, _, n in reasons], color=[STATE_COLOURS[s] for s, _, _ in reasons])
        for y, (_, _, n) in zip(ys, reasons):
            ax2.text(n, y, f" {n:,}", va="center", fontsize=8)
        ax2.set_yticks(ys, [f"{r} ({s})" for s, r, _ in reasons])
        ax2.margins(x=0.15)
    ax2.set_title("not kept, by reason")
    ax2.set_xlabel("files")
    return fig
