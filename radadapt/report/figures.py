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
DPI = 100
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


def _figure(width: float, height: float, nrows: int = 1, ncols: int = 1, *, ylabels: list[str] | None = None,
            left: float | None = None, right: float = 0.25, top: float = 0.35, wspace: float = 0.06,
            hspace: float = 0.55, **kw):
    """A figure with margins set from the tick labels (inches) rather than by a layout engine: constrained layout
    re-draws every figure once more, which doubled the report's rendering time."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    if left is None:
        left = 0.3 + (0.066 * max(map(len, ylabels)) if ylabels else 0.4)
    fig.subplots_adjust(left=left / width, right=1 - right / width, bottom=0.5 / height, top=1 - top / height,
                        wspace=wspace, hspace=hspace)
    return fig, axes


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # no matplotlib version stamp; light zlib compression (the default level costs more time than it saves bytes)
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None}, pil_kwargs={"compress_level": 3})
    return buf.getvalue()


def _draw(fn, *args, **kw) -> bytes:
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = fn(*args, **kw)
        return _png(fig)


def _errbars(ax, xs: list[Estimate | None], ys: list[float], colour: str, label: str | None = None,
             marker: str = "o", horizontal: bool = True, ms: float = 4.5, lw: float = 1.2) -> None:
    """All of one series' points and CI bars in one errorbar call (one artist per series, not per point)."""
    import numpy as np

    pts = [(x, y) for x, y in zip(xs, ys) if x is not None and x.point is not None]
    if not pts:
        return
    v = np.array([x.point for x, _ in pts])
    lo = np.array([x.point - x.low if x.low is not None and x.high is not None else 0.0 for x, _ in pts])
    hi = np.array([x.high - x.point if x.low is not None and x.high is not None else 0.0 for x, _ in pts])
    pos = np.array([y for _, y in pts])
    err = np.vstack([np.maximum(lo, 0), np.maximum(hi, 0)])
    kw = dict(fmt=marker, color=colour, ms=ms, capsize=2.5, elinewidth=lw, label=label)
    if horizontal:
        ax.errorbar(v, pos, xerr=err, **kw)
    else:
        ax.errorbar(pos, v, yerr=err, **kw)


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
    names = [lab.label for lab in labels]
    fig, axes = _figure(10, 0.9 + 0.2 * len(labels) * max(2, len(models)), 1, 2, sharey=True, ylabels=names)
    offs = _offsets(len(models), 0.5)
    ys = [len(labels) - 1 - i for i in range(len(labels))]
    for ax, metric in zip(axes[0], ("auroc", "auprc")):
        for m, off in zip(models, offs):
            est = [getattr(lab.results[m][probe], metric) if probe in lab.results.get(m, {}) else None
                   for lab in labels]
            _errbars(ax, est, [y - off for y in ys], colours[m], m)
        if metric == "auprc":  # a random ranking's AUPRC is the prevalence
            prev = [(lab.prevalence, y) for lab, y in zip(labels, ys) if lab.prevalence is not None]
            ax.plot([p for p, _ in prev], [y for _, y in prev], "|", color="#111827", ms=10, mew=1.2,
                    label="prevalence (chance AUPRC)")
        else:
            ax.axvline(0.5, color="#9ca3af", lw=0.8, ls=":")
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel(metric.upper())
        ax.set_yticks(ys, names)
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
    return Plot(fig_id, title, f"Forest plot, {title}: {metric.upper()} difference candidate minus baseline with "
                                "95% CI per label, coloured by verdict (green better, red worse, grey no evidence)", png)


def _forest_fig(rows, candidates, metric):
    from matplotlib.lines import Line2D

    names = [name for name, _, _ in rows]
    single = len(candidates) == 1
    fig, axes = _figure(10, 1.3 + 0.26 * len(rows) * max(1, len(candidates) / 2), ylabels=names,
                        right=1.75 if single else 0.25, top=0.6)
    ax = axes[0][0]
    offs = _offsets(len(candidates), 0.45)
    markers = ["o", "s", "D", "^", "v", "P"]
    ys = [len(rows) - 1 - i for i in range(len(rows))]
    for (_, bold, _), y in zip(rows, ys):
        if bold:
            ax.axhspan(y - 0.5, y + 0.5, color="#f3f4f6", zorder=0)
    for k, (c, off) in enumerate(zip(candidates, offs)):
        for verdict, colour in VERDICT_COLOURS.items():  # one errorbar call per candidate and verdict
            sel = [(d[c], y) for (_, _, d), y in zip(rows, ys) if d.get(c) is not None and d[c].verdict == verdict]
            _errbars(ax, [d for d, _ in sel], [y - off for _, y in sel], colour, marker=markers[k % len(markers)],
                     ms=4.5, lw=1.3)
        if single:  # the numbers beside the plot, as in a printed forest plot
            for (_, bold, diffs), y in zip(rows, ys):
                d = diffs.get(c)
                if d is None or d.point is None:
                    continue
                ci = "" if d.low is None or d.high is None else f" [{d.low:+.3f}, {d.high:+.3f}]"
                ax.text(1.01, y, f"{d.point:+.3f}{ci}", transform=ax.get_yaxis_transform(), va="center",
                        fontsize=8, color=VERDICT_COLOURS[d.verdict], fontweight="bold" if bold else "normal")
    ax.axvline(0, color="#111827", lw=0.9)
    ax.set_yticks(ys, names)
    for tick, (_, bold, _) in zip(ax.get_yticklabels(), rows):
        if bold:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"{metric.upper()} difference (candidate − baseline), 95% CI")
    handles = [Line2D([], [], color=c, marker="o", ls="", label=v) for v, c in VERDICT_COLOURS.items()
               if v != "not evaluable"]
    if not single:
        handles += [Line2D([], [], color="#374151", marker=markers[k % len(markers)], ls="", label=c)
                    for k, c in enumerate(candidates)]
    # above the plot: inside it, the legend would hide the bars of some label
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.01), ncol=len(handles), frameon=False,
              borderaxespad=0.0, handletextpad=0.3, columnspacing=1.2)
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
    names = ["all devices" if s == "all" else s for s in scopes]
    fig, axes = _figure(10, 1.0 + 0.2 * len(scopes) * max(2, len(models)), 1, len(seg.heads), sharey=True,
                        ylabels=names, top=0.4)
    offs = _offsets(len(models), 0.45)
    ys = [len(scopes) - 1 - i for i in range(len(scopes))]
    for ax, head in zip(axes[0], seg.heads):
        for m, off in zip(models, offs):
            est = [seg.results.get(m, {}).get(head, {}).get(scope, {}).get("dice") for scope in scopes]
            _errbars(ax, est, [y - off for y in ys], colours[m], m)
        ax.set_title(f"{head} head")
        ax.set_xlim(-0.02, 1.02)
        ax.set_xlabel("Dice")
        ax.set_yticks(ys, names)
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
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    fig, axes = _figure(9, 4.2, left=0.85)
    ax = axes[0][0]
    ns = np.array([p.n for p in pts], dtype=float)
    n_max = float(ns.max())
    lo_x, hi_x = float(ns.min()) / 1.6, n_max * limit * 4
    ax.set_xscale("log")
    for verdict, colour in VERDICT_COLOURS.items():
        sel = [p for p in pts if (p.verdict_vs_baseline or "not evaluable") == verdict]
        _errbars(ax, [Estimate(point=p.metric, low=p.low, high=p.high, n=0) for p in sel], [p.n for p in sel], colour,
                 horizontal=False, ms=5)
    if task.baseline is not None:
        ax.axhline(task.baseline, color=BASELINE_COLOUR, ls="--", lw=1, label=f"baseline {task.baseline:.3f}")
    styles = {"a*N^-b + c": "#2563eb", "a*N^-b": "#7c3aed"}
    n0 = float(np.exp(np.mean(np.log(ns))))
    ys = [v for p in pts for v in (p.metric, p.low, p.high) if v is not None]
    ys += [task.baseline] if task.baseline is not None else []
    for f in task.fits:
        if f.status != "fitted" or f.a is None or f.b is None:
            continue
        colour = styles.get(f.form, "#374151")
        c = f.c or 0.0
        inside = np.geomspace(float(ns.min()), n_max, 60)
        beyond = np.geomspace(n_max, n_max * limit, 40)
        ax.plot(inside, 1 - (f.a * inside ** -f.b + c), color=colour, lw=1.6, label=_law_label(f))
        ys += list(1 - (f.a * inside ** -f.b + c))
        ax.plot(beyond, 1 - (f.a * beyond ** -f.b + c), color=colour, lw=1.2, ls="--")
        if f.b_low is not None and f.b_high is not None:
            # slope uncertainty only: curves with b at its CI ends, pivoting where the data are densest (n0)
            grid = np.geomspace(float(ns.min()), n_max * limit, 100)
            e0 = f.a * n0 ** -f.b
            band = [1 - (e0 * (grid / n0) ** -b + c) for b in (f.b_low, f.b_high)]
            ax.fill_between(grid, np.minimum(*band), np.maximum(*band), color=colour, alpha=0.08, lw=0)
    # the y range follows the data and the fitted range; a wide band on b may leave the plot rather than flatten it
    y_lo, y_hi = min(ys), max(ys)
    pad = max(0.1 * (y_hi - y_lo), 0.01)
    ax.set_ylim(max(0.0, y_lo - pad), min(1.0, y_hi + pad))
    ax.axvspan(n_max * limit, hi_x, color="#fee2e2", alpha=0.7, lw=0)
    ax.axvline(n_max * limit, color="#b91c1c", lw=1, ls=":")
    ax.text(n_max * limit * 1.08, 0.97, f"beyond the\nextrapolation\nlimit ({limit:g}×\nlargest N):\nno prediction",
            transform=ax.get_xaxis_transform(), color="#991b1b", fontsize=7.5, va="top", ha="left")
    decades = math.log10(hi_x / lo_x)
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 4 else (1.0, 3.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlim(lo_x, hi_x)
    ax.set_xlabel("pretraining images N (log scale)")
    ax.set_ylabel(task.metric.upper() if task.metric != "dice" else "Dice")
    ax.legend(loc="lower left", frameon=True)
    return fig


def _law_label(f) -> str:
    ci = f" [{f.b_low:.3g}, {f.b_high:.3g}]" if f.b_low is not None and f.b_high is not None else ""
    floor = f", c={f.c:.3f}" if f.c is not None else ""
    return f"{f.form}: a={f.a:.3g}, b={f.b:.3g}{ci}{floor}"


# -- training curves --------------------------------------------------------------------------------------------
def training(logs: dict[str, TrainingLog], models: list[str], fig_id: str) -> Plot | None:
    if not logs:
        return None
    names: list[str] = []
    for log in logs.values():
        names += [k for k in log.series if k not in names]
    names = sorted(names, key=_curve_rank)[:6]
    png = _draw(_training_fig, logs, models, names)
    return Plot(fig_id, "Training curves", "Training loss and its parts against the optimizer step, one line per "
                                           "run", png)


def _curve_rank(key: str) -> tuple[int, str]:
    """Total loss first, then the objective's terms (dino_loss, ibot_loss, koleo_loss, ...), then diagnostics
    (KL, entropy), then sub-terms such as dino_global_loss (6 panels at most)."""
    if key == "loss":
        return 0, key
    if key.endswith("_loss") and key.count("_") == 1:
        return 1, key
    if key.endswith(("_kl", "_entropy")):
        return 2, key
    return 3, key


def _training_fig(logs, models, names):
    from matplotlib.ticker import MaxNLocator

    colours = model_colours(models)
    ncols = min(3, len(names))
    nrows = math.ceil(len(names) / ncols)
    fig, axes = _figure(10, 2.3 * nrows + 0.3, nrows, ncols, left=0.6, wspace=0.28, hspace=0.6)
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
                "Bar chart of archive files kept, filtered, duplicate and quarantined, each with its reasons", png)


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
    rows = []  # (label, n, colour, is_total): each state's total, then its reasons indented
    for state, n in states.items():
        rows.append((f"{state} (all)", n, STATE_COLOURS[state], True))
        rows += [(f"    {r}", k, STATE_COLOURS[s], False) for s, r, k in reasons if s == state]
    fig, axes = _figure(10, 0.9 + 0.19 * len(rows), ylabels=[r[0] for r in rows], right=0.6)
    ax = axes[0][0]
    ys = list(range(len(rows)))[::-1]
    ax.barh(ys, [r[1] for r in rows], color=[r[2] for r in rows], height=[0.8 if r[3] else 0.55 for r in rows])
    for y, (_, n, _, bold) in zip(ys, rows):
        ax.text(n, y, f" {n:,}", va="center", fontsize=8, fontweight="bold" if bold else "normal")
    ax.set_yticks(ys, [r[0] for r in rows])
    for tick, row in zip(ax.get_yticklabels(), rows):
        if row[3]:
            tick.set_fontweight("bold")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_xlabel("files")
    ax.set_title(f"{int(acc.get('total_files', 0)):,} files in the archive", loc="left")
    return fig
