"""The verdict-first summary: which model is better on what, by how much, with 95% CIs, in plain words.

Verdicts are the benchmark's (radadapt/bench/bootstrap.py): a paired patient-cluster bootstrap CI of the
difference candidate - baseline; "better" / "worse" when the CI excludes 0, else "no evidence of difference". The
summary uses the headline probe's AUROC, as the benchmark's own table does, and says so. The same ``Summary`` feeds
the HTML, the markdown and the terminal (``console_view``), so the three never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from radadapt.bench.schema import BenchmarkResults, Difference, Estimate

Level = Literal["good", "bad", "neutral", "alarm", "info"]
VERDICT_CSS = {"better": "better", "worse": "worse", "no evidence of difference": "neutral", "not evaluable": "muted"}


def _digits(*values: float | None) -> int:
    """3 decimals, or 5 when every value rounds to 0.000 at 3 (a Dice near 0 should not read '-0.000 [-0.000, ...]')."""
    vals = [abs(v) for v in values if v is not None]
    return 5 if vals and max(vals) < 0.0005 else 3


def fmt_estimate(e: Estimate | None) -> str:
    if e is None or e.point is None:
        return "–"
    k = _digits(e.point, e.low, e.high)
    if e.low is None or e.high is None:
        return f"{e.point:.{k}f}"
    return f"{e.point:.{k}f} [{e.low:.{k}f}, {e.high:.{k}f}]"


def fmt_difference(d: Difference | None) -> str:
    if d is None or d.point is None:
        return "–"
    k = _digits(d.point, d.low, d.high)
    if d.low is None or d.high is None:
        return f"{d.point:+.{k}f}"
    return f"{d.point:+.{k}f} [{d.low:+.{k}f}, {d.high:+.{k}f}]"


def say_difference(d: Difference, metric: str = "AUROC") -> str:
    """'AUROC +0.031 (95% CI +0.012 to +0.050)'."""
    if d.point is None:
        return f"{metric} not evaluable"
    k = _digits(d.point, d.low, d.high)
    if d.low is None or d.high is None:
        return f"{metric} {d.point:+.{k}f} (no CI)"
    return f"{metric} {d.point:+.{k}f} (95% CI {d.low:+.{k}f} to {d.high:+.{k}f})"


@dataclass
class Line:
    level: Level
    text: str


@dataclass
class CandidateSummary:
    name: str
    family: str
    headline: Line
    lines: list[Line] = field(default_factory=list)
    better: list[tuple[str, Difference]] = field(default_factory=list)  # label -> AUROC difference
    worse: list[tuple[str, Difference]] = field(default_factory=list)
    no_evidence: list[str] = field(default_factory=list)


@dataclass
class Summary:
    probe: str
    candidates: list[CandidateSummary]
    alarms: list[str]  # loud: out-of-domain harm, test-patient overlap not verifiable
    general: list[Line]
    not_evaluated: list[tuple[str, str, str]]  # label, group, reason

    def to_json(self) -> dict:
        return {
            "probe": self.probe,
            "alarms": self.alarms,
            "candidates": [
                {"name": c.name, "family": c.family, "headline": c.headline.text, "verdict_level": c.headline.level,
                 "lines": [ln.text for ln in c.lines],
                 "better": {lab: d.model_dump() for lab, d in c.better},
                 "worse": {lab: d.model_dump() for lab, d in c.worse},
                 "no_evidence": c.no_evidence}
                for c in self.candidates
            ],
            "general": [ln.text for ln in self.general],
            "not_evaluated": [{"label": a, "group": g, "reason": r} for a, g, r in self.not_evaluated],
        }


def _macro_phrase(group: str, d: Difference | None) -> tuple[str, str | None]:
    if d is None or d.verdict == "not evaluable":
        return f"{group}: not evaluable", None
    words = {"better": "better", "worse": "WORSE", "no evidence of difference": "no evidence of difference"}
    return f"{group}: {words[d.verdict]}, macro {say_difference(d)}", d.verdict


def _headline(name: str, verdicts: list[str | None], phrases: list[str]) -> Line:
    v = [x for x in verdicts if x]
    if not v:
        return Line("neutral", f"{name}: no label group could be evaluated, so no verdict can be given.")
    body = "; ".join(phrases)
    if "worse" in v and "better" not in v:
        return Line("bad", f"{name} is worse than the baseline — {body}.")
    if "worse" in v:
        return Line("bad", f"{name} is mixed: better on some groups, worse on others — {body}.")
    if "better" in v:
        return Line("good", f"{name} is better than the baseline — {body}.")
    return Line("neutral", f"{name} shows no evidence of a difference from the baseline — {body}.")


def summarise(res: BenchmarkResults) -> Summary:
    probe = res.headline_probe
    by_name = {m.name: m for m in res.models}
    cands = [m.name for m in res.models if m.role == "candidate"]
    out: list[CandidateSummary] = []
    for c in cands:
        verdicts, phrases = [], []
        for mac in res.classification.macro:
            d = mac.differences.get(c, {}).get(probe, {}).get("auroc") if mac.labels else None
            text, v = _macro_phrase(f"{mac.group} ({len(mac.labels)} labels)", d)
            phrases.append(text)
            verdicts.append(v)
        cs = CandidateSummary(name=c, family=by_name[c].family,
                              headline=_headline(f"{c} ({by_name[c].path})", verdicts, phrases))
        for lab in res.classification.labels:
            d = lab.differences.get(c, {}).get(probe, {}).get("auroc")
            if lab.status != "evaluated" or d is None:
                continue
            if d.verdict == "better":
                cs.better.append((lab.label, d))
            elif d.verdict == "worse":
                cs.worse.append((lab.label, d))
            else:
                cs.no_evidence.append(lab.label)
        cs.better.sort(key=lambda t: -(t[1].point or 0))
        cs.worse.sort(key=lambda t: t[1].point or 0)
        if cs.better:
            cs.lines.append(Line("good", "Better on " + _label_list(cs.better) + "."))
        if cs.worse:
            cs.lines.append(Line("bad", "Worse on " + _label_list(cs.worse) + "."))
        if cs.no_evidence and not (cs.better or cs.worse):
            cs.lines.append(Line("neutral", f"No evidence of a difference on any of the {len(cs.no_evidence)} "
                                            "evaluated labels."))
        elif cs.no_evidence:
            cs.lines.append(Line("neutral", f"No evidence of a difference on {len(cs.no_evidence)} label(s): "
                                            + ", ".join(cs.no_evidence) + "."))
        cs.lines.extend(_segmentation_lines(res, c))
        cs.lines.extend(_zeroshot_lines(res, c))
        cs.lines.extend(_ood_lines(res, c, probe))
        out.append(cs)
    alarms = list(res.ood.warnings) if res.ood is not None else []
    for m in res.models:
        if m.role == "candidate" and m.training_check.status == "unverified":
            alarms.append(f"{m.name}: it could not be verified that this model never saw a test patient during "
                          f"pretraining ({m.training_check.message or 'no training record'}); its results may be "
                          "optimistic.")
    general = _general_lines(res)
    not_eval = [(lab.label, lab.group, lab.message or lab.status.replace("_", " "))
                for lab in res.classification.labels if lab.status != "evaluated"]
    return Summary(probe=probe, candidates=out, alarms=alarms, general=general, not_evaluated=not_eval)


def _label_list(items: list[tuple[str, Difference]]) -> str:
    return ", ".join(f"{lab} ({say_difference(d)})" for lab, d in items)


def _segmentation_lines(res: BenchmarkResults, cand: str) -> list[Line]:
    seg = res.segmentation
    if seg is None or seg.status != "evaluated":
        return []
    lines = []
    for head in seg.heads:
        d = seg.differences.get(cand, {}).get(head, {}).get("all", {}).get("dice")
        b = seg.results.get("baseline", {}).get(head, {}).get("all", {}).get("dice")
        e = seg.results.get(cand, {}).get(head, {}).get("all", {}).get("dice")
        if d is None or e is None:
            continue
        level = {"better": "good", "worse": "bad"}.get(d.verdict, "neutral")
        lines.append(Line(level, f"Device segmentation ({head} head): Dice {fmt_estimate(e)} vs baseline "
                                 f"{fmt_estimate(b)}; {d.verdict}, {say_difference(d, 'Dice')}."))
    return lines


def _zeroshot_lines(res: BenchmarkResults, cand: str) -> list[Line]:
    lines = []
    for z in res.zeroshot:
        if z.model != cand:
            continue
        macro = "; ".join(f"{g} macro AUROC {fmt_estimate(e)}" for g, e in z.macro_auroc.items())
        macro = macro or "no label evaluated"
        lines.append(Line("info", f"Zero-shot (text prompts, no probe): {macro}."))
        for key, d in z.differences.items():
            level = {"better": "good", "worse": "bad"}.get(d.verdict, "neutral")
            lines.append(Line(level, f"Zero-shot {key} vs baseline: {d.verdict}, {say_difference(d)}."))
    return lines


def _ood_lines(res: BenchmarkResults, cand: str, probe: str) -> list[Line]:
    if res.ood is None:
        return []
    lines = []
    for mac in res.ood.classification.macro:
        d = mac.differences.get(cand, {}).get(probe, {}).get("auroc") if mac.labels else None
        if d is None:
            continue
        level = {"better": "good", "worse": "alarm"}.get(d.verdict, "neutral")
        lines.append(Line(level, f"Out of domain ({mac.group}, {len(mac.labels)} labels): {d.verdict}, "
                                 f"macro {say_difference(d)}."))
    return lines


def _general_lines(res: BenchmarkResults) -> list[Line]:
    t = res.splits.get("test")
    lines = []
    if t is not None:
        lines.append(Line("info", f"Test split: {t.images:,} images of {t.patients:,} patients ({t.labelled:,} with "
                                  f"labels); CIs are 95% patient-cluster bootstrap intervals "
                                  f"({res.settings.get('bootstrap', '?')} replicates)."))
    if res.ood is None:
        lines.append(Line("info", "No out-of-domain store was evaluated: how the site model behaves on other "
                                  "hospitals' images was not checked."))
    elif not res.ood.warnings:
        lines.append(Line("good", f"Out of domain ({res.ood.n_images:,} images from store {res.ood.store.store_id}): "
                                  "no candidate is worse than the baseline beyond the CI."))
    return lines


def console_view(summary: Summary, report_html: str, report_md: str):
    """A concise rich table for the terminal: alarms, one headline per candidate, where the report is."""
    from rich.table import Table
    from rich.text import Text

    style = {"good": "green", "bad": "bold red", "alarm": "bold red", "neutral": "", "info": "dim"}
    t = Table(title=f"Benchmark summary (headline probe {summary.probe}, AUROC, 95% CI)", title_justify="left",
              show_header=False, box=None, padding=(0, 1))
    t.add_column(overflow="fold")
    for a in summary.alarms:
        t.add_row(Text(f"WARNING: {a}", style="bold red"))
    for c in summary.candidates:
        t.add_row(Text(c.headline.text, style=style[c.headline.level] or "bold"))
        for ln in c.lines:
            t.add_row(Text(f"  • {_shorten(ln.text)}", style=style[ln.level]))
    for ln in summary.general:
        t.add_row(Text(ln.text, style=style[ln.level]))
    if summary.not_evaluated:
        t.add_row(Text(f"Not evaluated ({len(summary.not_evaluated)} labels, too few positives or negatives): "
                       + ", ".join(lab for lab, _, _ in summary.not_evaluated), style="yellow"))
    t.add_row(Text(f"report:   {report_html}\nmarkdown: {report_md}", style="bold"))
    return t


def _shorten(text: str, limit: int = 400) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "… (see the report)"
