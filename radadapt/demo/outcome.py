"""What the demo showed: a summary from each family's ``results.json`` and ``DIR/report/index.html``.

The summary is what ``radadapt demo`` prints (and ``--json`` emits): per family, the macro AUROC of the open
weights and of the adapted model on the test split with 95% patient-bootstrap CIs, the paired difference and its
verdict, from the benchmark's headline probe; device segmentation Dice and, for MI2, zero-shot AUROC when present.
Numbers are read from results.json, never recomputed. The index page links the family reports (rendered by
``radadapt.report``) and repeats these rows; it is self-contained (no external asset) like the reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radadapt import atomic

if TYPE_CHECKING:
    from radadapt.demo.pipeline import DemoLayout

INDEX = "index.html"


def _est(e: Any) -> dict | None:
    if e is None:
        return None
    return {"point": e.point, "low": e.low, "high": e.high}


def _diff(d: Any) -> dict | None:
    if d is None:
        return None
    return {"point": d.point, "low": d.low, "high": d.high, "verdict": d.verdict}


def family_outcome(results_path: Path) -> dict[str, Any]:
    """The demo's rows for one family, from its results.json."""
    from radadapt.bench.schema import BenchmarkResults

    res = BenchmarkResults.model_validate_json(results_path.read_text(encoding="utf-8"))
    probe = res.headline_probe
    rows = []
    for mac in res.classification.macro:
        rows.append({
            "task": f"{mac.group} macro AUROC ({len(mac.labels)} labels)", "group": mac.group, "labels": mac.labels,
            "baseline": _est(mac.results.get("baseline", {}).get(probe, {}).get("auroc")),
            "adapted": _est(mac.results.get("candidate", {}).get(probe, {}).get("auroc")),
            "difference": _diff(mac.differences.get("candidate", {}).get(probe, {}).get("auroc")),
        })
    seg = res.segmentation
    if seg is not None and seg.status == "evaluated":
        for head in seg.heads:
            rows.append({
                "task": f"device segmentation Dice ({head} head)", "group": "segmentation", "labels": seg.devices,
                "baseline": _est(seg.results.get("baseline", {}).get(head, {}).get("all", {}).get("dice")),
                "adapted": _est(seg.results.get("candidate", {}).get(head, {}).get("all", {}).get("dice")),
                "difference": _diff(seg.differences.get("candidate", {}).get(head, {}).get("all", {}).get("dice")),
            })
    zs = {z.model: z for z in res.zeroshot}
    if "baseline" in zs and "candidate" in zs:
        for group, est in zs["candidate"].macro_auroc.items():
            rows.append({
                "task": f"zero-shot {group} macro AUROC", "group": "zero-shot", "labels": [],
                "baseline": _est(zs["baseline"].macro_auroc.get(group)), "adapted": _est(est),
                "difference": _diff(zs["candidate"].differences.get(f"{group} macro auroc")),
            })
    return {"probe": probe, "test_images": res.splits["test"].images, "test_patients": res.splits["test"].patients,
            "bootstrap": res.settings.get("bootstrap"), "rows": rows}


def summarise_demo(layout: "DemoLayout", state: dict[str, Any]) -> dict[str, Any]:
    from radadapt.demo.pipeline import FAMILIES, NAMES, SLUG

    stages = {name: {k: v for k, v in rec.items() if k in ("status", "wall_s", "cpu_s", "reason")}
              for name, rec in state["stages"].items()}
    families = {}
    for fam in state["settings"].get("families", FAMILIES):
        path = layout.bench(fam) / "results.json"
        entry: dict[str, Any] = {"name": NAMES[fam]}
        if path.is_file():
            entry.update(family_outcome(path))
            report = layout.report(fam) / "report.html"
            entry["report"] = str(report) if report.is_file() else None
        else:
            entry["status"] = "not benchmarked"
            entry["reason"] = next((rec.get("reason") for name, rec in state["stages"].items()
                                    if name.endswith(SLUG[fam]) and rec.get("status") == "unavailable"), None)
        families[fam] = entry
    index = layout.reports / INDEX
    return {
        "out": str(layout.root), "settings": {k: state["settings"].get(k) for k in ("n", "seed", "size", "families")},
        "families": families, "stages": stages,
        "unavailable": {n: r.get("reason") for n, r in stages.items() if r.get("status") == "unavailable"},
        "wall_s": round(sum(r.get("wall_s", 0.0) for r in stages.values()), 1),
        "report": str(index) if index.is_file() else None,
    }


def fmt_estimate(e: dict | None, signed: bool = False) -> str:
    if e is None or e.get("point") is None:
        return "n/a"
    f = "{:+.3f}" if signed else "{:.3f}"
    if e.get("low") is None or e.get("high") is None:
        return f.format(e["point"])
    return f"{f.format(e['point'])} [{f.format(e['low'])}, {f.format(e['high'])}]"


def write_index(layout: "DemoLayout") -> Path:
    """DIR/report/index.html: the demo's rows per family and links to the family reports."""
    import jinja2

    from radadapt.demo.pipeline import FAMILIES, NAMES, SLUG, STATE_FILE

    state = json.loads((layout.root / STATE_FILE).read_text(encoding="utf-8"))
    families = []
    for fam in state["settings"].get("families", FAMILIES):
        path = layout.bench(fam) / "results.json"
        report = layout.report(fam) / "report.html"
        entry = {"name": NAMES[fam], "outcome": family_outcome(path) if path.is_file() else None,
                 "report": f"{SLUG[fam]}/report.html" if report.is_file() else None}
        families.append(entry)
    env = jinja2.Environment(loader=jinja2.PackageLoader("radadapt", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    order = ["site", "archive", "ingest", "labels", "weights",
             *(f"{step}-{SLUG[f]}" for f in FAMILIES for step in ("train", "benchmark", "export")), "report"]
    stages = dict(sorted(state["stages"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else 99))
    html = env.get_template("demo_index.html.j2").render(
        families=families, settings=state["settings"], stages=stages, fmt=fmt_estimate)
    out = layout.reports / INDEX
    atomic.write_text(out, html)
    return out
