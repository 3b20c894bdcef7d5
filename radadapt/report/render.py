"""Rendering a report: ``REPORT_DIR/report.html`` (self-contained) and ``REPORT_DIR/report.md`` (+ ``figures/``).

The HTML has no external asset: CSS is inline and every image is a base64 PNG ``data:`` URI, so it opens offline
in any browser and can be mailed as one file. The markdown references PNG files in ``figures/`` beside it. Both
come from the jinja2 templates ``report.html.j2`` / ``report.md.j2`` in the ``radadapt.templates`` package, with
autoescaping on for HTML (every string in the report is data, never markup). All files are written atomically;
the figures folder is written before the markdown that points to it.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from typing import Callable
from importlib import resources
from pathlib import Path

from radadapt import __version__, atomic, console
from radadapt.errors import UsageError
from radadapt.report import figures as F
from radadapt.report import tables as T
from radadapt.report.load import ReportInputs
from radadapt.report.summary import Summary, summarise

SECTION_IDS = ("models", "macro", "labels", "differences", "not-evaluated", "segmentation", "zeroshot", "ood",
               "scaling", "training", "data", "settings")  # zeroshot only for MI2 models
HTML_FILE = "report.html"
MD_FILE = "report.md"
FIGURES_DIR = "figures"
THUMBNAIL_PX = 320  # long side of the overlay thumbnails embedded in the report


@dataclass
class Section:
    """One numbered section; ``absent`` says plainly why a section has nothing to show."""

    id: str
    title: str
    intro: str = ""
    absent: str | None = None
    alarms: list[str] = field(default_factory=list)
    plots: list[F.Plot] = field(default_factory=list)
    tables: list[T.ReportTable] = field(default_factory=list)
    thumbnails: list[tuple[str, F.Plot]] = field(default_factory=list)  # (group caption, image)
    notes: list[str] = field(default_factory=list)


@dataclass
class Report:
    html: Path
    markdown: Path
    figures: list[Path]
    summary: Summary
    sections: list[str]


def build_sections(inp: ReportInputs, step: Callable[[str], None] | None = None) -> tuple[Summary, list[Section]]:
    """The report's sections in order (the summary is separate); ``step(section_id)`` after each (progress)."""
    res = inp.results
    probe = res.headline_probe
    models = [m.name for m in res.models]
    cands = [m for m in models if m != "baseline"]
    summary = summarise(res)
    secs: list[Section] = []

    def add(sec: Section) -> None:
        secs.append(sec)
        if step is not None:
            step(sec.id)

    s = Section("models", "Models and provenance",
                "Which weights were compared, where they came from and whether a site model could have seen a test "
                "patient during pretraining.")
    s.tables += [T.models_table(res), T.splits_table(res)]
    add(s)

    s = Section("macro", "Macro averages", f"The mean over each group's evaluated labels (probe {probe}).")
    s.tables.append(T.macro_table(res.classification, probe, models, "tab-macro", "Macro AUROC and AUPRC (test)"))
    add(s)

    s = Section("labels", "Per-label results",
                "Each label's AUROC and AUPRC with 95% CIs, baseline first. The vertical tick in the AUPRC panel "
                "is the label's prevalence: the AUPRC of a ranking by chance.")
    for group in ("findings", "devices"):
        p = F.label_metrics(res.classification, group, probe, models, f"fig-labels-{group}")
        if p:
            s.plots.append(p)
        s.tables.append(T.label_table(res.classification, group, probe, models, f"tab-labels-{group}",
                                      f"{group.capitalize()}: AUROC (test, probe {probe})"))
        s.tables.append(T.label_table(res.classification, group, probe, models, f"tab-labels-{group}-auprc",
                                      f"{group.capitalize()}: AUPRC (test, probe {probe})", metric="auprc"))
    add(s)

    s = Section("differences", "Differences from the baseline (forest plot)",
                "Candidate minus baseline on the same test images and the same bootstrap replicates. A bar that "
                "does not cross 0 is a verdict: green better, red worse; grey means no evidence of a difference.")
    p = F.forest(res.classification, probe, cands, "fig-forest", f"AUROC difference per label ({probe})")
    if p:
        s.plots.append(p)
    else:
        s.absent = "No label could be compared (none was evaluated)."
    s.tables.append(T.probes_table(res, models))
    add(s)

    s = Section("not-evaluated", "Labels not evaluated",
                "These labels are in the schema but had too few positive or negative images to give a trustworthy "
                "number. They are listed, not hidden.")
    ne = T.not_evaluated_table(res.classification)
    if ne.rows:
        s.tables.append(ne)
    else:
        s.absent = "Every label in the schema was evaluated."
    add(s)

    add(_segmentation(inp, models))
    if res.zeroshot:
        s = Section("zeroshot", "Zero-shot and retrieval (MI2)",
                    "MI2's text tower scores each label from a written prompt, with no probe trained on site labels, "
                    "and retrieves each test image's own report.")
        s.tables.append(T.zeroshot_table(res.zeroshot))
        add(s)
    add(_ood(inp, probe, models, cands))
    add(_scaling(inp))
    add(_training(inp, models))
    add(_data(inp))

    s = Section("settings", "Settings, warnings and notes")
    s.tables.append(T.settings_table(res))
    s.notes = [f"benchmark warning: {w}" for w in res.warnings]
    for section, notes in inp.notes.items():
        s.notes += [f"{section}: {n}" for n in notes]
    add(s)
    return summary, secs


def _segmentation(inp: ReportInputs, models: list[str]) -> Section:
    seg = inp.results.segmentation
    s = Section("segmentation", "Device segmentation",
                "A small head on each model's frozen patch features outlines lines and tubes; Dice measures the "
                "overlap with the reference masks (1 = perfect).")
    if seg is None:
        s.absent = "Segmentation was not part of this benchmark (turned off in the benchmark settings)."
        return s
    if seg.status != "evaluated":
        s.absent = f"Segmentation was skipped: {seg.message or 'no reason recorded'}."
        return s
    p = F.segmentation(seg, models, "fig-segmentation")
    if p:
        s.plots.append(p)
    s.tables.append(T.segmentation_table(seg, models))
    n_found = sum(len(files) for by_head in inp.overlays.values() for files in by_head.values())
    if not inp.include_overlays:
        s.notes.append(f"{n_found} overlay image(s) are in {inp.results_dir / 'overlays'} but not in this report: they "
                       "show test patients' radiographs. Add --overlays to include them (for review inside the "
                       "hospital only)." if n_found else "No overlay images were written by the benchmark.")
    else:
        for model, by_head in inp.overlays.items():
            for head, files in by_head.items():
                for i, f in enumerate(files):
                    s.thumbnails.append((f"{model}, {head} head", F.Plot(
                        f"overlay-{model}-{head}-{i + 1}", f"{model} {head} #{i + 1}",
                        f"Segmentation overlay {i + 1}: {model}, {head} head (green reference, red prediction, "
                        "yellow overlap)", _thumbnail(f))))
        if not s.thumbnails:
            s.notes.append("No overlay images are available (none were written, or they are missing).")
    s.notes += inp.notes.get("segmentation", [])
    return s


def _ood(inp: ReportInputs, probe: str, models: list[str], cands: list[str]) -> Section:
    res = inp.results
    s = Section("ood", "Out-of-domain check",
                "The same probes, fitted on this site's data, applied to another site's store. A site model that "
                "is worse than the baseline here has lost generality: do not use it outside this hospital.")
    if res.ood is None:
        s.absent = ("No out-of-domain store was given (`radadapt benchmark --ood STORE`), so whether the site model "
                    "still works on other hospitals' images was NOT checked.")
        return s
    s.alarms = list(res.ood.warnings)
    s.intro += (f" Store {res.ood.store.store_id} ({res.ood.store.path}), {res.ood.n_images:,} images."
                + ("" if s.alarms else " No candidate is worse than the baseline beyond the CI."))
    s.tables.append(T.macro_table(res.ood.classification, probe, models, "tab-ood-macro",
                                  "Out-of-domain macro averages"))
    for group in ("findings", "devices"):
        s.tables.append(T.label_table(res.ood.classification, group, probe, models, f"tab-ood-{group}",
                                      f"Out-of-domain {group}: AUROC (probe {probe})"))
    p = F.forest(res.ood.classification, probe, cands, "fig-ood-forest", f"Out-of-domain AUROC difference ({probe})")
    if p:
        s.plots.append(p)
    ne = T.not_evaluated_table(res.ood.classification, "tab-ood-not-evaluated")
    if ne.rows:
        ne.title = "Out-of-domain labels not evaluated"
        s.tables.append(ne)
    s.notes += inp.notes.get("ood", [])
    return s


def _scaling(inp: ReportInputs) -> Section:
    s = Section("scaling", "Scaling with the amount of site data",
                "Runs pretrained on nested subsets of N images, fitted with error = a·N^-b + c (and a·N^-b). Solid: "
                "the fitted range; dashed: extrapolation; shaded band: the 95% CI of b (slope uncertainty only); red "
                "zone: beyond the extrapolation limit, where no prediction is made. Points are coloured by their "
                "verdict against the baseline (green better, red worse, grey no evidence of difference).")
    if not inp.scaling:
        s.absent = ("No scaling fit was given (`radadapt benchmark scaling RESULTS... --out SCALING.json`, then "
                    "`radadapt report ... --scaling SCALING.json`).")
        return s
    k = 0
    for path, sc in inp.scaling:
        s.notes.append(f"scaling file {path}: fitted {sc.created} from {len(sc.inputs)} benchmark(s)")
        s.notes += [f"scaling warning: {w}" for w in sc.warnings]
        for task in sc.tasks:
            k += 1
            p = F.scaling(task, sc.max_extrapolation, f"fig-scaling-{k}")
            if p:
                s.plots.append(p)
        s.tables.append(T.scaling_table(sc.tasks, f"tab-scaling-{len(s.tables) + 1}"))
    return s


def _training(inp: ReportInputs, models: list[str]) -> Section:
    s = Section("training", "Training curves",
                "The pretraining loss of each site model, from its run log. A falling loss shows the run learned; "
                "it does not by itself show the model is better (that is what the sections above measure).")
    s.notes += inp.notes.get("training", [])
    runs = [m for m in inp.results.models if m.run is not None]
    if not runs:
        s.absent = "No model in this benchmark is a radadapt training run, so there are no training logs to show."
        return s
    p = F.training(inp.logs, models, "fig-training")
    if p is None:
        s.absent = "No training log could be read (see the notes below)."
        return s
    s.plots.append(p)
    t = T.ReportTable("tab-training", "Runs", ["model", "run", "status", "trained on N images", "log rows",
                                               "last step", "last loss", "images seen", "wall time"])
    for m in runs:
        log = inp.logs.get(m.name)
        loss = log.last.get("loss") if log else None
        t.rows.append([T.Cell(m.name, "strong"), T.Cell(m.run.path, "path"), T.Cell(m.run.status or "–"),
                       T._n(m.run.subset_n), T._n(log.rows if log else None), T._n(log.steps[-1] if log else None),
                       T.Cell("–" if loss is None else f"{loss:.4f}", "num"), T._n(log.images_seen if log else None),
                       T.Cell("–" if not log or log.elapsed_s is None else _duration(log.elapsed_s), "num")])
    s.tables.append(t)
    return s


def _data(inp: ReportInputs) -> Section:
    res = inp.results
    s = Section("data", "Data used and data accounting",
                "What went in: every archive file ends in exactly one state with a fixed reason. Only counts are "
                "shown; no identifier, file name or report text appears in this report.")
    s.tables.append(T.store_table(res, inp.store_info, inp.labels_info))
    s.notes += inp.notes.get("data", [])
    info = inp.store_info
    if info is None or not isinstance(info.get("accounting"), dict) or "total_files" not in info["accounting"]:
        s.notes.append("The store's ingest accounting is not available, so files in / kept / filtered / "
                       "quarantined cannot be shown.")
    else:
        p = F.accounting(info["accounting"], "fig-accounting", info.get("duplicate_reasons"))
        if p:
            s.plots.append(p)
        s.tables.append(T.accounting_table(info))
        pt = T.pairing_table(info)
        if pt:
            s.tables.append(pt)
    if inp.labels_info:
        lt = T.label_counts_table(inp.labels_info)
        if lt:
            s.tables.append(lt)
    return s


def _thumbnail(path: Path) -> bytes:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        buf = io.BytesIO()
        im.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s"


def _remove_stale_figures(folder: Path, keep: list[Path]) -> None:
    """A re-rendered report must not leave an earlier report's figures behind (an overlay among them would be a
    patient image the new report did not ask for). Only files named like ours are touched."""
    if not folder.is_dir():
        return
    keep_names = {f.name for f in keep}
    for f in folder.glob("*.png"):
        if f.name not in keep_names and f.name.startswith(("fig-", "overlay-")):
            f.unlink(missing_ok=True)


def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: resources.files("radadapt.templates").joinpath(name)
                                     .read_text(encoding="utf-8")),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
    )
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    env.filters["md_cell"] = lambda text: str(text).replace("|", "\\|").replace("\n", " ").replace("\u00a0", " ")
    return env


def render_report(inp: ReportInputs, out_dir: Path) -> Report:
    """Write report.html, report.md and figures/ into ``out_dir``; returns where they are."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError("report.out_not_dir", f"--out {out_dir} is a file, not a folder",
                         hint="name a folder for the report (it is created if missing)")
    with console.progress(transient=True) as bar:
        task = bar.add_task("report", total=len(SECTION_IDS) - (0 if inp.results.zeroshot else 1))
        summary, sections = build_sections(inp, lambda sid: bar.update(task, advance=1, status=sid))
    res = inp.results
    n_images = sum(len(sec.thumbnails) for sec in sections)
    ctx = {"res": res, "summary": summary, "sections": sections, "version": __version__, "n_patient_images": n_images,
           "glance": T.glance_table(res, summary) if summary.candidates else None,
           "results_path": str(inp.results_path), "models": res.models,
           "scaling_paths": [str(p) for p, _ in inp.scaling]}
    env = _environment()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for sec in sections:
        for plot in sec.plots + [p for _, p in sec.thumbnails]:
            f = out_dir / FIGURES_DIR / f"{plot.id}.png"
            atomic.write_bytes(f, plot.png)
            written.append(f)
    md = env.get_template("report.md.j2").render(**ctx, figures_dir=FIGURES_DIR)
    atomic.write_text(out_dir / MD_FILE, md)
    html = env.get_template("report.html.j2").render(**ctx)
    atomic.write_text(out_dir / HTML_FILE, html)
    _remove_stale_figures(out_dir / FIGURES_DIR, written)
    return Report(html=out_dir / HTML_FILE, markdown=out_dir / MD_FILE, figures=written, summary=summary,
                  sections=[s.id for s in sections])
